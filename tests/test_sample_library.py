"""The sample rule library (samples/rules): every card's tests pass on every engine that is not
refused, and the converter fixes those rules brought to light stay fixed."""

from __future__ import annotations

from typing import Any

import yaml

from cqlx import convert, testing
from cqlx.api import parse
from cqlx.rules import find_rules, load_rule
from tests.conftest import SAMPLES


def test_every_sample_rule_has_tests_and_attack_techniques() -> None:
    paths = find_rules([str(SAMPLES / "rules")])
    assert len(paths) >= 7
    event_types = set()
    for path in paths:
        rule = load_rule(path)
        assert rule.card.get("tests"), path
        assert rule.meta.techniques, path
        event_types |= set(parse(rule.text).source.event_types)
    assert {"ProcessRollup2", "DnsRequest", "NetworkConnectIP4", "UserLogon", "ClassifiedModuleLoad",
            "NewExecutableWritten"} <= event_types


def test_sigma_in_on_a_file_name_field_matches_the_end_of_the_full_path() -> None:
    text = '#event_simpleName=NetworkConnectIP4 | in(ContextBaseFileName, values=["WINWORD.EXE", "excel.exe"])'
    rule: dict[str, Any] = yaml.safe_load(convert(text, to="sigma").split("---")[0])
    assert rule["detection"]["selection"] == {
        "Image|endswith|cased": ["\\WINWORD.EXE", "/WINWORD.EXE", "\\excel.exe", "/excel.exe"]}


def test_cqlx_test_skips_an_engine_whose_conversion_loses_detection() -> None:
    rule = load_rule(SAMPLES / "rules" / "rdp_logon_admin.yml")
    query = rule.parse()
    assert testing.refused(query, rule, "sigma-sqlite") is not None
    assert testing.refused(query, rule, "spl-oracle") is None
    report = testing.Report()
    testing.test_rule(rule, report)
    assert report.ok, report.findings
    assert str(report.checked[(rule.path, "sigma-sqlite")]).startswith("skipped: cqlx refuses this conversion")
    assert report.checked[(rule.path, "spl-oracle")] == len(rule.card["tests"])

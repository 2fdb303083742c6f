"""Sigma: pySigma loads it, `sigma check` passes it, and pySigma's sqlite backend selects per tier
exactly the events of that severity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cqlx import convert
from cqlx import parse as cqlx_parse
from cqlx.conversion import convert_query
from cqlx.emit.sigma import minimal_sets, sigma_string
from cqlx.engines.sigma_sqlite import run_sigma, sigma_check
from cqlx.profiles import load_profile
from cqlx.reshape import to_records
from cqlx.rules import load_rule
from tests.conftest import SEED_CARD
from tests.golden import check_golden

P = "#event_simpleName=ProcessRollup2 | "


def detection(cql: str) -> dict[str, Any]:
    rule = yaml.safe_load(convert(P + cql, to="sigma").split("---")[0])
    result: dict[str, Any] = rule["detection"]
    return result


TABLE = [
    ("CommandLine = whoami", {"selection": {"CommandLine|cased": "whoami"}, "condition": "selection"}),
    ("CommandLine = *who*", {"selection": {"CommandLine|contains|cased": "who"}, "condition": "selection"}),
    ("CommandLine = *who*ami*", {"selection": {"CommandLine|contains|cased": "who*ami"}, "condition": "selection"}),
    ("CommandLine = /who/i", {"selection": {"CommandLine|re|i": "who"}, "condition": "selection"}),
    ("CommandLine = /who/", {"selection": {"CommandLine|re": "who"}, "condition": "selection"}),
    ("CommandLine = /a.b/md", {"selection": {"CommandLine|re|m|s": "a.b"}, "condition": "selection"}),
    ("CommandLine != whoami", {"selection_not": {"CommandLine|cased": "whoami"}, "condition": "not selection_not"}),
    ("CommandLine = *", {"selection": {"CommandLine|exists": True}, "condition": "selection"}),
    ("RawProcessId >= 4", {"selection": {"ProcessId|gte": 4}, "condition": "selection"}),
    # a column the profile types as a number takes a canonical integer as a number (sigma check
    # reports a number written as a string); any other text stays a string
    ("RawProcessId = 4", {"selection": {"ProcessId": 4}, "condition": "selection"}),
    ("in(RawProcessId, values=[4, 8])", {"selection": {"ProcessId": [4, 8]}, "condition": "selection"}),
    ("RawProcessId = 04", {"selection": {"ProcessId|cased": "04"}, "condition": "selection"}),
    ("in(RawProcessId, values=[4, 8*])", {"selection": {"ProcessId|cased": ["4", "8*"]}, "condition": "selection"}),
    # in() of no values matches nothing: pySigma reads an empty list as "is null"
    ("RawProcessId=1 in(RawProcessId, values=[])",
     {"selection": {"ProcessId|exists": True}, "selection_2": {"ProcessId|exists": False},
      "selection_3": {"ProcessId": 1}, "condition": "(selection_3 and (selection and selection_2))"}),
    ("ParentBaseFileName = bash", {"selection": {"ParentImage|endswith|cased": ["\\bash", "/bash"]},
                                   "condition": "selection"}),
    ("OriginalFilename = cmd.exe", {"selection": {"OriginalFileName|cased": "cmd.exe"}, "condition": "selection"}),
    ("CommandLine = a or ImageFileName = b",
     {"selection": {"CommandLine|cased": "a"}, "selection_2": {"Image|cased": "b"},
      "condition": "(selection or selection_2)"}),
]


@pytest.mark.parametrize(("cql", "expected"), TABLE)
def test_sigma_table(cql: str, expected: dict[str, Any]) -> None:
    assert detection(cql) == expected


@pytest.mark.parametrize(("text", "glob", "expected"), [
    ("a*b", False, "a\\*b"),
    ("a*b", True, "a*b"),
    ("what?", False, "what\\?"),
    ("C:\\Windows\\*", True, "C:\\Windows\\\\*"),
    ("C:\\Windows\\x", True, "C:\\Windows\\x"),
    ("a\\\\b", False, "a\\\\\\b"),
])
def test_sigma_string_escaping(text: str, glob: bool, expected: str) -> None:
    assert sigma_string(text, glob) == expected


def test_minimal_sets() -> None:
    weights = {"p": 3, "m": 3, "e": 1, "s": 2, "x": 3}
    assert sorted(minimal_sets(weights, 3) or []) == [("e", "s"), ("m",), ("p",), ("x",)]
    six = minimal_sets(weights, 6) or []
    assert len(six) == 6 and ("e", "p", "s") in six and ("m", "p") in six
    assert minimal_sets(weights, 13) == []
    assert minimal_sets(weights, 0) is None


def _seed_sigma() -> str:
    rule = load_rule(SEED_CARD)
    return convert_query(rule.parse(), "sigma", None, rule.meta, rule.text).output


def test_seed_golden() -> None:
    check_golden("seed.sigma.yml", _seed_sigma())


def test_seed_loads_in_pysigma() -> None:
    from sigma.collection import SigmaCollection

    collection = SigmaCollection.from_yaml(_seed_sigma())
    assert [r.level.name.lower() if r.level else None for r in collection] == ["medium", "critical", "high",
                                                                                "medium"]
    for rule in collection:
        assert str(rule.logsource.category) == "process_creation" and rule.logsource.product is None
        assert "attack.t1059.013" in [str(t) for t in rule.tags]


def test_seed_passes_sigma_check(tmp_path: Path) -> None:
    path = tmp_path / "container_cli_api.yml"
    path.write_text(_seed_sigma(), encoding="utf-8")
    ok, output = sigma_check(str(path))
    assert ok, output


def test_seed_tiers_select_exactly_their_severity(seed_events: list[dict[str, Any]],
                                                  seed_expected: list[dict[str, Any]]) -> None:
    records = to_records(seed_events, load_profile("sigma"))
    kept = [i for i, r in enumerate(records) if r is not None]
    results = run_sigma(_seed_sigma(), [records[i] for i in kept])
    selected = {title: {seed_events[kept[h]]["ComputerName"] for h in hits} for title, hits in results}
    title = load_rule(SEED_CARD).meta.title
    expected: dict[str, set[str]] = {"": set()}
    for x in seed_expected:
        if x["match"]:
            expected[""].add(x["ComputerName"])
            expected.setdefault(x["Severity"], set()).add(x["ComputerName"])
    assert selected[title] == expected[""]  # the widest rule: exactly the CQL filter's events
    for tier in ("CRITICAL", "HIGH", "MEDIUM"):
        assert selected[f"{title} - {tier}"] == expected[tier], tier


def test_seed_sigma_keeps_case_sensitivity() -> None:
    rules = list(yaml.safe_load_all(_seed_sigma()))
    selections = rules[1]["detection"]
    assert "CommandLine|re" in selections["sig_host_mount"]
    assert "CommandLine|re|i" in selections["sig_privileged_container"]


def test_seed_sigma_carries_card_metadata() -> None:
    base = next(yaml.safe_load_all(_seed_sigma()))
    meta = load_rule(SEED_CARD).meta
    assert base["id"] == meta.id and base["title"] == meta.title
    assert base["references"] == list(meta.references) and base["falsepositives"] == list(meta.falsepositives)
    assert base["fields"][:2] == ["timestamp", "Computer"]
    assert "Not expressible in Sigma" in base["description"]


@pytest.mark.parametrize(("cql", "hits"), [
    ("in(CommandLine, values=[])", []),  # not the events without a command line (pySigma: [] is "is null")
    ("not in(CommandLine, values=[])", [0, 1]),
    ("in(CommandLine, values=[]) or CommandLine = a", [0]),
])
def test_in_of_no_values_matches_nothing(cql: str, hits: list[int]) -> None:
    records = [{"CommandLine": "a"}, {"Image": "/bin/x"}]
    (_, found), *_ = run_sigma(convert(P + cql, to="sigma"), records)
    assert found == hits


@pytest.mark.parametrize(("cql", "hits"), [
    ("ParentBaseFileName = /\\/tmp\\/x/", []),
    ("not ParentBaseFileName = /a\\/b/i", [0, 1]),
    ("ParentBaseFileName = /\\/x/ or CommandLine = a", [0]),
])
def test_a_file_name_regex_that_needs_a_separator_matches_nothing(cql: str, hits: list[int]) -> None:
    """No file name holds a separator, so no event matches, in LogScale as in the Sigma: written as
    the field present and absent at once (the portable subset has no regex that never matches
    without a class escape, which the rule would then be warned about)."""
    conversion = convert_query(cqlx_parse(P + cql), "sigma", query_text=P + cql)
    notes = [d.message for d in conversion.diagnostics]
    assert any("needs a path separator" in n for n in notes) and not any("class escape" in n for n in notes)
    assert not conversion.detection_loss
    records = [{"CommandLine": "a", "ParentImage": "/tmp/x"}, {"ParentImage": "C:\\a\\b"}]
    (_, found), *_ = run_sigma(conversion.output, records)
    assert found == hits


# A test cqlx cannot write in Sigma (detection loss): under --on-lossy warn the rule is still written,
# loads in pySigma, and the test matches nothing (as KQL and SPL write `false`), never the word
# `false` that pySigma's condition parser reads as a selection name.
@pytest.mark.parametrize(("cql", "hits"), [
    ("CommandLine = a or test(length(CommandLine) > 5)", [0]),
    ("CommandLine = a and test(length(CommandLine) > 5)", []),
    ("CommandLine = a or Image = /(/", [0]),  # pySigma cannot load the regex (Python's re)
    ('CommandLine = a or "whoami"', [0]),  # free text
    ("not test(length(CommandLine) > 5)", [0, 1]),
])
def test_unwritable_tests_match_nothing_under_warn(cql: str, hits: list[int]) -> None:
    from cqlx.conversion import convert_text

    conversion = convert_text(P + cql, "sigma", policy="warn")
    assert conversion.detection_loss
    condition = yaml.safe_load(conversion.output)["detection"]["condition"]
    assert "false" not in condition.split()
    records = [{"CommandLine": "a"}, {"CommandLine": "abcdefgh"}]
    (_, found), *_ = run_sigma(conversion.output, records)
    assert found == hits


def test_a_condition_too_deep_for_pysigma_is_refused_under_every_policy() -> None:
    """pySigma's recursive condition parser fails on it: nothing loadable can be written, not even
    under warn."""
    from cqlx.conversion import convert_text
    from cqlx.errors import UnsupportedError

    nested = "".join(f"(CommandLine=a{i} {'and' if i % 2 else 'or'} " for i in range(170))
    cql = f"#event_simpleName=ProcessRollup2 {nested}CommandLine=z{')' * 170}"
    for policy in ("error", "warn", "ignore"):
        with pytest.raises(UnsupportedError, match="whatever --on-lossy says") as refused:
            convert_text(cql, "sigma", policy=policy)
        assert "pySigma's condition parser" in str(refused.value)


def test_a_tier_tests_the_signal_its_score_sums_when_the_flag_is_written_again() -> None:
    """S0 written again (a weight on another condition) after the score: the tiers still test the
    first S0's condition (they tested the later one's: fuzz seed 218)."""
    cql = ('#event_simpleName=ProcessRollup2 CommandLine=/x/ | S0 := if(ComputerName = "web-01", "YES", "NO") '
           '| S0W := if(ComputerName = "web-01", 1, 0) | Score := S0W | S0 := if(ParentBaseFileName = bash, 3, 0) '
           '| Sev := if(Score >= 1, "HIGH", "LOW")')
    output = convert(cql, to="sigma")
    assert "Computer|cased: web-01" in output and "ParentImage" not in output

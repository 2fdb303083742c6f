"""A regex on the event type that lists no names (``#event_simpleName=/ProcessRollup2/``, as
published hunting queries write it): it stays a filter of the rule (SPL and the matcher test it on
each event); a profile with tables or logsources reads it as the event types it declares whose
names match, says so, and answers the regex with the table."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from cqlx import compile_matcher, convert, parse
from cqlx.conversion import convert_text
from cqlx.emit.base import DETECTION, PRESENTATION
from cqlx.errors import UnsupportedError
from cqlx.testing import check_kql
from tests.agreement import assert_agree
from tests.conftest import require_kusto

EVENTS: list[dict[str, Any]] = [
    {"#event_simpleName": "ProcessRollup2", "aid": "a1", "ComputerName": "web-01", "ImageFileName": "/usr/bin/id",
     "CommandLine": "id -u", "RawProcessId": "10"},
    {"#event_simpleName": "ProcessRollup2", "aid": "a2", "ComputerName": "web-02", "ImageFileName": "/usr/bin/ls",
     "CommandLine": "ls /", "RawProcessId": "11"},
    {"#event_simpleName": "NetworkConnectIP4", "aid": "a1", "ComputerName": "web-01", "RemoteAddressIP4": "10.0.0.9",
     "RemotePort": "443", "ContextBaseFileName": "id"},
]

# (query, target, table or logsource it reads, the event types the note names)
CASES = [
    ("#event_simpleName=/ProcessRollup2/ CommandLine=*id*", "kql", "DeviceProcessEvents",
     "ProcessRollup2, SyntheticProcessRollup2"),
    ("#event_simpleName=/^Network/ | RemotePort=443", "kql", "DeviceNetworkEvents",
     "NetworkConnectIP4, NetworkReceiveAcceptIP4"),
    ("#event_simpleName=/processrollup/i CommandLine=*id*", "sigma", "process_creation",
     "ProcessRollup2, SyntheticProcessRollup2"),
]


@pytest.mark.parametrize(("text", "target", "source", "named"), CASES)
def test_the_types_whose_names_match_choose_the_table(text: str, target: str, source: str, named: str) -> None:
    conversion = convert_text(text, target)
    assert source in conversion.output
    assert "#event_simpleName" not in conversion.output and "event_simpleName" not in conversion.output
    notes = [d for d in conversion.diagnostics if "selects event types by name" in d.message]
    assert len(notes) == 1 and notes[0].kind == PRESENTATION and f"({named})" in notes[0].message
    assert not [d for d in conversion.diagnostics if d.kind == DETECTION]


def test_the_regex_stays_a_filter_of_the_rule() -> None:
    query = parse("#event_simpleName=/ProcessRollup2/ CommandLine=*id*")
    assert query.source.event_types == () and query.source.types_pattern is not None
    rows = compile_matcher("#event_simpleName=/ProcessRollup2/ | select([aid])").run(EVENTS)
    assert rows == [{"aid": "a1"}, {"aid": "a2"}]
    assert "event_simpleName" in convert("#event_simpleName=/ProcessRollup2/ CommandLine=*id*", to="cql")


def test_a_regex_no_declared_type_matches_is_refused() -> None:
    for target in ("kql", "sigma"):
        with pytest.raises(UnsupportedError, match=r"no event type profile .* has a name the regex /Nope/"):
            convert("#event_simpleName=/Nope/ CommandLine=x", to=target)


def test_an_equality_first_keeps_its_types() -> None:
    query = parse("#event_simpleName=ProcessRollup2 #event_simpleName=/Rollup/ CommandLine=x")
    assert query.source.event_types == ("ProcessRollup2",) and query.source.types_pattern is None


def test_kql_runs_as_the_matcher_does() -> None:
    require_kusto()
    text = "#event_simpleName=/ProcessRollup2/ CommandLine=*id* | select([aid, CommandLine])"
    check_kql(convert(text, to="kql"))
    assert assert_agree(text, EVENTS, engines=("kql",)) == [(("aid", "a1"), ("CommandLine", "id -u"))]


def test_sigma_reads_the_logsource() -> None:
    rule = yaml.safe_load(convert("#event_simpleName=/ProcessRollup2/ CommandLine=*id*", to="sigma").split("---")[0])
    assert rule["logsource"] == {"category": "process_creation"}
    assert rule["detection"]["condition"] == "selection"


def test_spl_tests_the_type_on_fdr_field_names() -> None:
    """FDR events carry the type as event_simpleName: a test on #event_simpleName reads it."""
    text = "#event_simpleName=/Rollup2$/ | select([aid])"
    spl = convert(text, to="spl")
    assert "event_simpleName" in spl and "'#event_simpleName'" not in spl
    rows = assert_agree(text, EVENTS, engines=("spl",), ordered=True)
    assert rows == [(("aid", "a1"),), (("aid", "a2"),)]


@pytest.mark.parametrize("text", ["#type=falcon-raw-data #event_simpleName=ProcessRollup2",
                                  "#event_simpleName=ProcessRollup2 | groupBy([#Vendor])",
                                  # #repo the profile answers only where it leads (test_repository.py)
                                  "#event_simpleName=ProcessRollup2 | groupBy([#repo])"])
def test_spl_refuses_a_logscale_tag_raw_fdr_lacks(text: str) -> None:
    with pytest.raises(UnsupportedError, match="is a LogScale tag, which the events of profile splunk do not carry"):
        convert(text, to="spl")


@pytest.mark.parametrize("text", ["#event_simpleName=ProcessRollup2 #Vendor=crowdstrike CommandLine=/x/",
                                  "#type=falcon-raw-data #event_simpleName=ProcessRollup2 CommandLine=/x/"])
def test_sigma_refuses_a_test_on_a_logscale_tag(text: str) -> None:
    """Sigma passes an unmapped Falcon field through under its name, but no Sigma log carries a
    LogScale tag: a test on one would select nothing."""
    with pytest.raises(UnsupportedError, match="is a LogScale tag, which the events of profile sigma do not carry"):
        convert(text, to="sigma")
    shown = convert("#event_simpleName=ProcessRollup2 CommandLine=/x/ | select([#Vendor, CommandLine])", to="sigma")
    assert "'#Vendor'" in shown  # only shown: presentation loss, written

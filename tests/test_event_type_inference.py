"""Which records a KQL table or Sigma logsource is read for.

A rule that names no event type (a third of published hunting queries: ``CommandLine=/whoami/i``)
reads, on a profile with tables or logsources, the event types the profile lists that carry every
field the rule decides on, when one table or logsource holds them all: a presentation note names
them. Otherwise it is refused, and the refusal says which event types and tables the fields point
to. Event types that share a table are read together: the records of any of them (outbound and
inbound connections: every ActionType of both), never the first type's alone."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import convert
from cqlx.conversion import convert_text
from cqlx.emit.base import DETECTION, PRESENTATION, _merged_match
from cqlx.errors import UnsupportedError
from cqlx.testing import check_kql
from tests.agreement import assert_agree
from tests.conftest import require_kusto

EVENTS: list[dict[str, Any]] = [
    {"#event_simpleName": "ProcessRollup2", "aid": "a1", "ComputerName": "web-01", "ImageFileName": "/usr/bin/whoami",
     "CommandLine": "whoami", "RawProcessId": "10"},
    {"#event_simpleName": "ProcessRollup2", "aid": "a2", "ComputerName": "web-02", "ImageFileName": "/usr/bin/ls",
     "CommandLine": "ls /", "RawProcessId": "11"},
    {"#event_simpleName": "NetworkConnectIP4", "aid": "a1", "ComputerName": "web-01", "RemoteAddressIP4": "10.0.0.9",
     "RemotePort": "4444", "LocalPort": "50000", "ContextBaseFileName": "nc"},
    {"#event_simpleName": "NetworkReceiveAcceptIP4", "aid": "a3", "ComputerName": "db-01",
     "RemoteAddressIP4": "10.0.0.7", "RemotePort": "4444", "LocalPort": "22", "ContextBaseFileName": "sshd"},
    {"#event_simpleName": "NetworkConnectIP4", "aid": "a2", "ComputerName": "web-02", "RemoteAddressIP4": "10.0.0.8",
     "RemotePort": "443", "LocalPort": "50001", "ContextBaseFileName": "curl"},
]

# (query, target, what the output reads from, the event types the note names)
INFERRED = [
    ("CommandLine=/whoami/i", "kql", "DeviceProcessEvents", "ProcessRollup2"),
    ("CommandLine=/whoami/i", "sigma", "category: process_creation", "ProcessRollup2"),
    ("ImageFileName=/cmd/i CommandLine=/x/ | table([ComputerName, UserName])", "kql", "DeviceProcessEvents",
     "ProcessRollup2"),
    ("RemotePort=4444 | groupBy([ComputerName])", "kql", "DeviceNetworkEvents",
     "NetworkConnectIP4, NetworkReceiveAcceptIP4"),
    ("DomainName=*evil*", "sigma", "category: dns_query", "DnsRequest"),
    ("UserName=admin LogonDomain=CORP", "kql", "DeviceLogonEvents", "UserLogon"),
]


@pytest.mark.parametrize(("text", "target", "source", "named"), INFERRED)
def test_the_fields_choose_the_table(text: str, target: str, source: str, named: str) -> None:
    conversion = convert_text(text, target)
    assert source in conversion.output
    notes = [d for d in conversion.diagnostics if "selects no event type" in d.message]
    assert len(notes) == 1 and notes[0].kind == PRESENTATION, conversion.diagnostics
    assert f"only {named} carry every field" in notes[0].message


# (query, target, what the refusal says the fields point to)
REFUSED = [
    ("ImageFileName=/cmd/i", "kql", "ProcessRollup2, ClassifiedModuleLoad, DriverLoad, which it reads from "
                                    "DeviceEvents, DeviceImageLoadEvents, DeviceProcessEvents"),
    ("ComputerName=web-01", "kql", "needs one to choose a table or logsource"),
    ("ContextThreadId=1", "kql", "needs one to choose a table or logsource"),  # mapped nowhere: says nothing
    ("CommandLine=x RemotePort=1", "sigma", "no event type it lists has every field the rule decides on: "
                                            "CommandLine, RemotePort"),
    ("*", "kql", "needs one to choose a table or logsource"),
]


@pytest.mark.parametrize(("text", "target", "reason"), REFUSED)
def test_fields_of_several_tables_or_none_are_refused(text: str, target: str, reason: str) -> None:
    with pytest.raises(UnsupportedError, match="selects no event type") as raised:
        convert(text, to=target)
    assert reason in str(raised.value)


def test_a_field_mapped_nowhere_does_not_choose() -> None:
    """ContextThreadId has no Defender column: the table is chosen by CommandLine, and the missing
    mapping is reported on its own, with the table it was looked up in."""
    with pytest.raises(UnsupportedError, match=r"field ContextThreadId has no mapping in profile mde "
                                               r"\(DeviceProcessEvents\)"):
        convert("ContextThreadId=* CommandLine=/x/", to="kql")


def test_shown_fields_do_not_choose() -> None:
    """select/table/sort only show fields: UserName (process and logon events alike) is not what
    the rule decides on, and AccountName is shown for the process table."""
    conversion = convert_text("CommandLine=/whoami/i | table([ComputerName, UserName])", "kql")
    assert conversion.output.startswith("DeviceProcessEvents")
    assert not [d for d in conversion.diagnostics if d.kind == DETECTION]


@pytest.mark.parametrize("text", [
    "#event_simpleName=NetworkConnectIP4 or #event_simpleName=NetworkReceiveAcceptIP4 | RemotePort=4444",
    "#event_simpleName=/^Network/ | RemotePort=4444",
    "RemotePort=4444",
])
def test_types_sharing_a_table_read_the_records_of_each(text: str) -> None:
    kql = convert(text, to="kql")
    assert '"ConnectionSuccess"' in kql and '"InboundConnectionAccepted"' in kql
    sigma = convert(text, to="sigma")
    assert "- 'true'\n    - 'false'" in sigma


def test_kql_runs_as_the_matcher_does() -> None:
    require_kusto()
    for text in ("RemotePort=4444 | select([aid, RemoteAddressIP4, RemotePort])",
                 "#event_simpleName=NetworkConnectIP4 or #event_simpleName=NetworkReceiveAcceptIP4 | RemotePort=4444 "
                 "| select([aid, RemotePort])",
                 "CommandLine=/whoami/i | select([aid, CommandLine])"):
        check_kql(convert(text, to="kql"))
        rows = assert_agree(text, EVENTS, engines=("kql",))
        assert rows and len(rows) == (1 if "CommandLine" in text else 2), rows


MERGES = [
    ([(("ActionType", ("A", "B")),), (("ActionType", ("C",)),)], (("ActionType", ("A", "B", "C")),)),
    ([(("ActionType", ("A",)),), (("ActionType", ("A",)),)], (("ActionType", ("A",)),)),
    ([(("ActionType", ("A",)),), ()], ()),
    ([(("ActionType", ("A",)),), (("Initiated", ("true",)),)], None),
    ([(("ActionType", ("A",)), ("Initiated", ("true",))), (("ActionType", ("B",)), ("Initiated", ("false",)))], None),
]


@pytest.mark.parametrize(("matches", "merged"), MERGES)
def test_merged_record_tests(matches: list[Any], merged: Any) -> None:
    assert _merged_match(matches) == merged


DRIVERS: list[dict[str, Any]] = [
    {"#event_simpleName": "DriverLoad", "aid": "a1", "ComputerName": "web-01",
     "ImageFileName": "\\Device\\HarddiskVolume3\\Windows\\Temp\\mimidrv.sys", "SHA256HashData": "ab" * 32},
    {"#event_simpleName": "DriverLoad", "aid": "a2", "ComputerName": "web-02",
     "ImageFileName": "\\SystemRoot\\System32\\drivers\\ntfs.sys", "SHA256HashData": "cd" * 32},
    {"#event_simpleName": "ProcessRollup2", "aid": "a3", "ComputerName": "web-03",
     "ImageFileName": "C:\\Windows\\Temp\\mimidrv.exe", "CommandLine": "mimidrv", "RawProcessId": "12"},
]


def test_driver_loads_are_defenders_device_events() -> None:
    """Falcon DriverLoad: Defender's DeviceEvents with ActionType DriverLoad (Kusto.Language checks
    the columns; duckdb-kql runs it as the matcher does), Sigma's driver_load."""
    require_kusto()
    text = "#event_simpleName=DriverLoad ImageFileName=/\\\\Temp\\\\/i | select([aid, ImageFileName, SHA256HashData])"
    kql = convert(text, to="kql")
    check_kql(kql)
    assert kql.startswith('DeviceEvents\n| where ActionType == "DriverLoad"')
    assert assert_agree(text, DRIVERS, engines=("kql",)) == [
        (("aid", "a1"), ("ImageFileName", DRIVERS[0]["ImageFileName"]), ("SHA256HashData", "ab" * 32))]
    sigma = convert(text, to="sigma")
    assert "category: driver_load" in sigma and "ImageLoaded|re|i:" in sigma

"""``event_platform`` on KQL: Defender's event tables hold no OS column, so a platform filter reads
the device's platform from DeviceInfo (profile ``platform_lookup``). The assumption it rests on, a
device's platform is what DeviceInfo says, is tested here too (an event whose device has no
DeviceInfo row is on no platform in KQL)."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import convert
from cqlx.engines.duckdb_kql import run_kql
from cqlx.errors import ProfileError, UnsupportedError
from cqlx.profiles import load_profile, parse_profile
from cqlx.reshape import to_tables
from cqlx.testing import check_kql
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 "
DEVICES = "DeviceInfo | where {test} | distinct DeviceId"


@pytest.mark.parametrize(("rule", "test"), [
    ("event_platform=Win", 'OSPlatform startswith_cs "Windows"'),
    ("#event_platform=Lin", 'OSPlatform startswith_cs "Linux"'),
    ("event_platform=Mac or event_platform=Lin",
     '(OSPlatform startswith_cs "macOS" or OSPlatform startswith_cs "Linux")'),
    ('in(event_platform, values=["Win", "Mac"])',
     '(OSPlatform startswith_cs "Windows" or OSPlatform startswith_cs "macOS")'),
])
def test_platform_filter_reads_deviceinfo(rule: str, test: str) -> None:
    kql = convert(P + rule + " | CommandLine = /whoami/i", to="kql")
    lines = kql.splitlines()
    assert lines[0] == "DeviceProcessEvents"
    assert lines[1] == f"| where DeviceId in (({DEVICES.format(test=test)}))"
    check_kql(kql)


@pytest.mark.parametrize(("rule", "profile", "message"), [
    # ASIM's DvcOs is optional and its values are not enumerated: no exact equivalent.
    ("event_platform=Win", "sentinel-asim", "imProcessCreate has no platform column"),
    # A platform the profile gives no OSPlatform value for.
    ("event_platform=iOS", "mde", "platform iOS has no value in profile mde"),
    ("event_platform=Win or event_platform=Chrome", "mde", "platform Chrome has no value"),
])
def test_platforms_without_a_counterpart_are_refused(rule: str, profile: str, message: str) -> None:
    with pytest.raises(UnsupportedError, match=message):
        convert(P + rule + " | CommandLine = x", to="kql", profile=profile)


def _event(n: int, platform: str | None, aid: str | None, command: str) -> dict[str, Any]:
    event: dict[str, Any] = {"#event_simpleName": "ProcessRollup2", "ComputerName": f"host-{n}",
                             "CommandLine": command}
    if platform is not None:
        event["event_platform"] = platform
    if aid is not None:
        event["aid"] = aid
    return event


EVENTS = [
    _event(1, "Win", "d1", "cmd /c whoami"),
    _event(2, "Win", "d1", "cmd /c dir"),
    _event(3, "Lin", "d2", "sh -c whoami"),
    _event(4, "Mac", "d3", "zsh -c whoami"),
    _event(5, "Lin", "d4", "bash -c id"),
    _event(6, "Win", "d5", "WHOAMI /all"),
]


@pytest.mark.parametrize("rule", [
    P + "event_platform=Win | CommandLine = /whoami/i | select([ComputerName, CommandLine])",
    P + "event_platform=Lin or event_platform=Mac | select([ComputerName])",
    P + "event_platform=Lin | CommandLine = *whoami* | select([ComputerName, CommandLine])",
])
def test_platform_rows_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(rule, EVENTS)
    assert 0 < len(rows) < len(EVENTS)


def test_each_device_gets_one_deviceinfo_row() -> None:
    tables = to_tables(EVENTS, load_profile("mde"))
    _, devices = tables["DeviceInfo"]
    assert sorted((d["DeviceId"], d["OSPlatform"]) for d in devices) == [
        ("d1", "Windows"), ("d2", "Linux"), ("d3", "macOS"), ("d4", "Linux"), ("d5", "Windows")]


def test_assumption_a_device_without_deviceinfo_is_on_no_platform() -> None:
    """The KQL keeps an event only when DeviceInfo knows its device: an event of a device that
    reported no DeviceInfo row in the time searched is left out, where LogScale, which reads the
    platform from the event itself, keeps it."""
    orphan = _event(7, "Win", None, "whoami")  # no aid: no DeviceId, no DeviceInfo row
    rule = P + "event_platform=Win | select([ComputerName])"
    rows = run_kql(convert(rule, to="kql"), to_tables([orphan, *EVENTS[:1]], load_profile("mde")))
    assert [r["DeviceName"] for r in rows] == ["host-1"]


_PROFILE = """
name: p
language: kql
tables:
  Events: {DeviceId: string, Cmd: string}
  Devices: {DeviceId: string, Os: string}
platforms: {Win: Windows}
platform_lookup: {table: %s, key: %s, column: %s}
event_types:
  ProcessRollup2: {table: Events, fields: {CommandLine: Cmd}}
""" + "".join(f"  {t}: {{none: absent}}\n" for t in (
    "SyntheticProcessRollup2", "NetworkConnectIP4", "NetworkReceiveAcceptIP4", "DnsRequest",
    "ClassifiedModuleLoad", "UserLogon", "NewExecutableWritten"))


def test_a_profile_names_its_platform_table() -> None:
    profile = parse_profile(_PROFILE % ("Devices", "DeviceId", "Os"), "p.yaml")
    assert profile.platform_lookup is not None and profile.platform_lookup.column == "Os"


@pytest.mark.parametrize(("values", "message"), [
    (("Nowhere", "DeviceId", "Os"), "platform_lookup.table names 'Nowhere'"),
    (("Devices", "DeviceId", "OSName"), "platform_lookup.column 'OSName' is not a column of Devices"),
    (("Devices", "Cmd", "Os"), "platform_lookup.key 'Cmd' is not a column of Devices"),
])
def test_a_bad_platform_lookup_is_refused(values: tuple[str, str, str], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(_PROFILE % values, "p.yaml")


def test_the_key_must_join_every_event_table() -> None:
    text = _PROFILE.replace("Events: {DeviceId: string, Cmd: string}", "Events: {Host: string, Cmd: string}")
    with pytest.raises(ProfileError, match="'DeviceId' is not a column of Events"):
        parse_profile(text % ("Devices", "DeviceId", "Os"), "p.yaml")

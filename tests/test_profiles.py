"""Profiles: shipped ones load; a bad one is refused with its file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cqlx.errors import ProfileError
from cqlx.profiles import load_profile, parse_profile, shipped_profiles


def test_shipped_profiles_load() -> None:
    for name in shipped_profiles():
        profile = load_profile(name)
        assert profile.event_types
    mde = load_profile("mde")
    columns = dict(mde.tables["DeviceProcessEvents"])
    assert columns["Timestamp"] == "datetime" and columns["ProcessId"] == "long" and len(columns) >= 60


def test_mde_keeps_the_traps() -> None:
    fields = load_profile("mde").event_types["ProcessRollup2"].fields
    # Falcon-internal ids become Defender's unique process ids, never the OS pids
    assert fields["TargetProcessId"].name == "ProcessUniqueId"
    assert fields["ParentProcessId"].name == "InitiatingProcessUniqueId"
    assert fields["ParentBaseFileName"].name == "InitiatingProcessFileName"  # not ...ParentFileName (grandparent)
    assert fields["RawProcessId"].name == "ProcessId"


GOOD = """
name: t
language: kql
tables:
  T:
    A: string
event_types:
  ProcessRollup2:
    table: T
    fields:
      CommandLine: A
  SyntheticProcessRollup2: {none: no counterpart}
  NetworkConnectIP4: {none: no counterpart}
  NetworkReceiveAcceptIP4: {none: no counterpart}
  DnsRequest: {none: no counterpart}
  ClassifiedModuleLoad: {none: no counterpart}
  UserLogon: {none: no counterpart}
  NewExecutableWritten: {none: no counterpart}
"""


def test_a_minimal_profile_loads() -> None:
    assert parse_profile(GOOD, "t.yaml").event_types["ProcessRollup2"].table == "T"


@pytest.mark.parametrize(("change", "line", "words"), [
    (("language: kql", "language: kql\ncolour: blue"), 4, "unknown key 'colour'"),
    (("A: string", "A: text"), 6, "not a KQL type"),
    (("CommandLine: A", "CommandLine: A\n      CommandLine: A"), 12, "duplicate key 'CommandLine'"),
    (("CommandLine: A", "CommandLine: {name: A, transform: rot13}"), 11,
     "transform 'rot13' of field 'CommandLine' does not exist"),
    (("CommandLine: A", "CommandLine: B"), 11, "not a column of T"),
    (("language: kql", "language: cobol"), 3, "accepted: kql, spl, sigma, python"),
])
def test_bad_profiles_name_file_line_and_key(change: tuple[str, str], line: int, words: str) -> None:
    text = GOOD.replace(*change)
    with pytest.raises(ProfileError) as caught:
        parse_profile(text, "bad.yaml")
    assert words in caught.value.message
    assert caught.value.filename == "bad.yaml"
    assert caught.value.span.line == line


def test_a_profile_missing_an_event_type_is_refused() -> None:
    text = GOOD.replace("  DnsRequest: {none: no counterpart}\n", "")
    with pytest.raises(ProfileError, match="event types DnsRequest are missing"):
        parse_profile(text, "bad.yaml")


def test_an_event_type_without_counterpart_is_reported_with_the_reason() -> None:
    from cqlx import convert
    from cqlx.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="SyntheticProcessRollup2 has no counterpart in profile mde "
                                               r"\(SyntheticProcessRollup2: Falcon's reconstruction"):
        convert("#event_simpleName=SyntheticProcessRollup2 | CommandLine = x", to="kql")


def test_user_profile_extends_a_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("extends: mde\nname: mine\nevent_types:\n  ProcessRollup2:\n    fields:\n"
                    "      UserName: AccountUpn\n", encoding="utf-8")
    profile = load_profile(str(path))
    fields = profile.event_types["ProcessRollup2"].fields
    assert fields["UserName"].name == "AccountUpn" and fields["CommandLine"].name == "ProcessCommandLine"


def test_unknown_profile_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match="shipped: "):
        load_profile("nosuch")


UNLISTED = [
    ("#event_simpleName=OsVersionInfo | groupBy([aid, ProductName])",
     'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(OsVersionInfo)'),
    ("#event_simpleName=UserAccountCreated or #event_simpleName=UserAccountDeleted",
     'sourcetype="crowdstrike:events:sensor" (event_simpleName=CASE(UserAccountCreated) OR '
     "event_simpleName=CASE(UserAccountDeleted))"),
]


@pytest.mark.parametrize(("text", "search"), UNLISTED)
def test_splunk_reads_an_unlisted_type_as_a_sensor_event(text: str, search: str) -> None:
    """Raw FDR keeps every sensor event under one sourcetype: a type the profile does not list is
    searched there by its name, with a note that says what was assumed."""
    from cqlx.conversion import convert_text

    conversion = convert_text(text, "spl")
    assert conversion.output.startswith(search + "\n")
    (note,) = [d for d in conversion.diagnostics if "is not one profile splunk lists" in d.message]
    assert note.kind == "presentation" and "crowdstrike:events:sensor" in note.message


def test_an_unlisted_type_runs_on_the_spl_oracle_as_the_matcher_does() -> None:
    from tests.agreement import assert_agree

    text = "#event_simpleName=OsVersionInfo ProductName=/server/i | select([aid, ProductName])"
    events = [{"#event_simpleName": "OsVersionInfo", "aid": "a1", "ProductName": "Windows Server 2022"},
              {"#event_simpleName": "OsVersionInfo", "aid": "a2", "ProductName": "Windows 11"},
              {"#event_simpleName": "ProcessRollup2", "aid": "a3", "ProductName": "Windows Server 2019"}]
    rows = assert_agree(text, events, engines=("spl",), ordered=True)
    assert rows == [(("aid", "a1"), ("ProductName", "Windows Server 2022"))]


def test_a_type_declared_absent_stays_absent_and_other_profiles_list_theirs() -> None:
    from cqlx import convert
    from cqlx.errors import UnsupportedError

    assert load_profile("splunk").event_type("OsVersionInfo") is not None
    assert load_profile("mde").event_type("OsVersionInfo") is None  # no unlisted_event_types: refused
    with pytest.raises(UnsupportedError, match="OsVersionInfo has no counterpart in profile mde"):
        convert("#event_simpleName=OsVersionInfo | groupBy([aid])", to="kql")
    text = GOOD.replace("language: kql", "language: kql\nunlisted_event_types: ProcessRollup2")
    profile = parse_profile(text, "t.yaml")
    assert profile.event_type("DnsRequest") is None  # declared absent (none:)
    derived = profile.event_type("OsVersionInfo")
    assert derived is not None and derived.unlisted and derived.table == "T"


def test_unlisted_event_types_must_name_an_entry() -> None:
    text = GOOD.replace("language: kql", "language: kql\nunlisted_event_types: Nope")
    with pytest.raises(ProfileError, match="unlisted_event_types names 'Nope', which is not under event_types"):
        parse_profile(text, "bad.yaml")

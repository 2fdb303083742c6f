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
    assert "TargetProcessId" not in fields and "ParentProcessId" not in fields  # Falcon-internal ids
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

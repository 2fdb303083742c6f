"""Falcon fields a profile holds in another shape, computed back in the target: ``FileName`` (the
file name LogScale's Falcon parser writes) from the full path raw FDR events carry, in SPL. The
rows agree with the Python matcher on the SPL oracle."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cqlx import convert
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 "


def _event(n: int, path: str, **fields: Any) -> dict[str, Any]:
    name = path.replace("/", "\\").rsplit("\\", 1)[-1]
    # A path ending in a separator names no file: the event has no FileName.
    return {"#event_simpleName": "ProcessRollup2", "ComputerName": f"host-{n:02d}", "ImageFileName": path,
            **({"FileName": name} if name else {}), **fields}


EVENTS = [
    _event(1, "\\Device\\HarddiskVolume3\\Windows\\System32\\cmd.exe", CommandLine="cmd /c whoami"),
    _event(2, "\\Device\\HarddiskVolume3\\Windows\\System32\\WindowsPowerShell\\v1.0\\PowerShell.exe"),
    _event(3, "/usr/bin/bash", CommandLine="bash -i"),
    _event(4, "\\Device\\HarddiskVolume3\\Users\\a\\cmd.exe.bak"),
    _event(5, "\\Device\\HarddiskVolume3\\Tools\\cmd\\run.exe"),
    _event(6, "\\Device\\HarddiskVolume3\\Tools\\cmd\\"),
]

RULES = [
    "FileName = /^(cmd|powershell)\\.exe$/i | select([ComputerName, FileName])",
    "FileName = cmd.exe | select([ComputerName])",
    'in(FileName, values=["bash", "run.exe"]) | select([ComputerName, FileName])',
    "FileName = *.exe | groupBy(FileName) | select([FileName, _count])",
    "select([ComputerName, FileName])",
]


@pytest.mark.parametrize("rule", RULES)
def test_spl_computes_the_file_name_as_logscale_does(rule: str) -> None:
    rows = assert_agree(P + "| " + rule, EVENTS, engines=("spl",))
    assert rows


def test_the_file_name_is_computed_once_before_its_first_use() -> None:
    spl = convert(P + "| FileName = cmd.exe | x := lower(FileName) | select([x, FileName])", to="spl")
    assert spl.count("rex field=ImageFileName") == 1
    lines = spl.splitlines()
    assert lines[1].startswith('| rex field=ImageFileName "(?<FileName>') and "FileName" in lines[2]


ASIM_RULES = [
    *RULES,
    "FileName = /^c.d/i | select([ComputerName])",  # a regex the full path could not say
    "FileName = c*.exe | select([ComputerName, FileName])",
    "x := upper(FileName) | FileName != run.exe | select([ComputerName, x])",
    'FileName = "*\\\\cmd.exe" | select([ComputerName])',  # a name holds no separator: matches nothing
]


@pytest.mark.parametrize("rule", ASIM_RULES)
def test_kql_computes_the_file_name_where_asim_holds_the_path(rule: str) -> None:
    """ASIM's TargetProcessName is the full path: the KQL reads the file name as its last part, as
    LogScale's Falcon parser writes it, and agrees with the matcher on duckdb-kql."""
    from cqlx import testing
    from cqlx.rules import Rule, RuleMeta

    text = P + "| " + rule
    cases = [testing.Case(f"event {i}", e) for i, e in enumerate(EVENTS)]
    report = testing.Report()
    testing.test_rule(Rule(path="r.cql", text=text, meta=RuleMeta()), report, extra=cases,
                      profiles={"kql": "sentinel-asim"}, targets=("kql-duckdb",))
    assert not report.findings, [(f.case, f.message) for f in report.findings]
    assert report.checked[("r.cql", "kql-duckdb")] == len(EVENTS)


def test_kql_tests_a_plain_file_name_on_the_path_itself() -> None:
    kql = convert(P + "| FileName = cmd.exe | ParentBaseFileName = *sh", to="kql", profile="sentinel-asim")
    assert "extract(" not in kql and 'TargetProcessName endswith_cs @"\\cmd.exe"' in kql
    assert 'ActingProcessName endswith_cs "sh"' in kql
    derived = convert(P + "| FileName = /^c.d/i", to="kql", profile="sentinel-asim")
    assert 'extend FileName = extract(@"[^\\\\/]+$", 0, TargetProcessName)' in derived


SIGMA_RULES = [
    "FileName = /^(cmd|powershell)\\.exe$/i",
    "FileName = /\\.exe$/",
    "FileName = cmd.exe",
    "FileName = *md*",
    "FileName =~ wildcard(\"c*.exe\", ignoreCase=true)",
    'in(FileName, values=["r*.exe", "bash"])',
    "FileName = /^cmd/",  # not anchored at the end: the rest of the name follows the match
    "FileName = /md\\./i",
]


@pytest.mark.parametrize("rule", SIGMA_RULES)
def test_sigma_tests_the_file_name_on_the_full_path(rule: str) -> None:
    """Sigma's Image is the full path: a regex or glob on the file name becomes a regex on the
    path's last part (regexes.basename_regex, basename_glob_regex), run by pySigma's sqlite backend."""
    from cqlx import compile_matcher
    from cqlx.engines.sigma_sqlite import run_sigma
    from cqlx.profiles import load_profile
    from cqlx.reshape import to_records

    records = to_records(EVENTS, load_profile("sigma"), ["ProcessRollup2"])
    kept = [i for i, r in enumerate(records) if r is not None]
    (_, hits), *_ = run_sigma(convert(P + "| " + rule, to="sigma"), [records[i] for i in kept])
    got = {EVENTS[kept[h]]["ComputerName"] for h in hits}
    matcher = compile_matcher(P + "| " + rule)
    expected = {e["ComputerName"] for e in EVENTS if matcher.match(e) is not None}
    assert got == expected and 0 < len(expected) < len(EVENTS)


def test_a_regex_the_path_cannot_say_is_still_refused() -> None:
    with pytest.raises(Exception, match="could match a separator, holds an anchor"):
        convert(P + "| FileName = /^c.d/", to="sigma")


# ---------------------------------------------------------------- no event type: every sensor event

MIXED = [
    *EVENTS,
    {"#event_simpleName": "DnsRequest", "ComputerName": "host-07", "DomainName": "whoami.example.org",
     "event_platform": "Win"},
    {"#event_simpleName": "FileOpenInfo", "ComputerName": "host-08", "TargetFileName": "C:\\whoami.txt",
     "event_platform": "Mac"},
    {"event_simpleName": "UserLogon", "ComputerName": "host-09", "UserName": "whoami", "LogonType": "10",
     "event_platform": "Win"},
]

NO_EVENT_TYPE = [
    "CommandLine=/whoami/i | select([ComputerName, CommandLine])",
    "* | groupBy(ComputerName, function=count()) | select([ComputerName, _count])",
    "DomainName=*example* or TargetFileName=/whoami/i | select([ComputerName])",
    "event_platform=Win | LogonType=10 | select([ComputerName, LogonType])",
]


@pytest.mark.parametrize("rule", NO_EVENT_TYPE)
def test_a_rule_without_event_type_reads_every_sensor_event_in_splunk(rule: str) -> None:
    """Raw FDR keeps every sensor event under one sourcetype, the types the profile does not list
    too (FileOpenInfo here): the SPL reads them all, as LogScale does, and agrees with the matcher."""
    spl = convert(rule, to="spl")
    assert spl.startswith('sourcetype="crowdstrike:events:sensor"') and "event_simpleName" not in spl
    assert assert_agree(rule, MIXED, engines=("spl",))


@pytest.mark.parametrize("rule", ["UserName=whoami", "FileName=cmd.exe"])
def test_without_event_type_user_and_file_names_are_not_the_same_information(rule: str) -> None:
    """Raw FDR process events hold only UserSid and ImageFileName: across event types, a test on
    UserName or FileName would miss them, so the conversion is refused, naming the field."""
    from cqlx.conversion import convert_text
    from cqlx.errors import CqlError

    with pytest.raises(CqlError, match=f"field {rule.split('=')[0]} in profile splunk is not the same information"):
        convert_text(rule, "spl")


# A field the rule writes under the name a target gives another Falcon field it reads (found by the
# fuzzer: Defender's ProcessCommandLine is CommandLine there): the target's assignment would
# overwrite the column the later test reads. Refused, where the field is written.
@pytest.mark.parametrize(("rule", "target", "profile", "column"), [
    ("ProcessCommandLine := lower(SHA256HashData) | CommandLine = *a*", "kql", None, "ProcessCommandLine"),
    ('UserSid := "x" | UserSid = x | UserName = *adm*', "spl", None, "UserSid"),
    ('process.command_line := "x" | CommandLine = *a*', "python", "ecs", "process.command_line"),
    ('ProcessCommandLine := "x" | case { CommandLine = *a* | y := 1 ; * }', "kql", None, "ProcessCommandLine"),
])
def test_a_field_written_over_a_column_the_rule_reads_is_refused(rule: str, target: str, profile: str | None,
                                                                column: str) -> None:
    from cqlx.conversion import convert_text
    from cqlx.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match=f"the rule writes {re.escape(column)}, and then reads") as refused:
        convert_text(P + "| " + rule, target, profile)
    assert refused.value.span.column == len(P) + 3  # where the field is written


def test_a_copy_of_the_same_value_or_a_read_before_the_write_converts() -> None:
    for rule in ("ProcessCommandLine := CommandLine | CommandLine = *a*",
                 "CommandLine = *a* | ProcessCommandLine := lower(CommandLine) | select([ProcessCommandLine])"):
        assert "ProcessCommandLine" in convert(P + "| " + rule, to="kql")

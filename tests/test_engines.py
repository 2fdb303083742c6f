"""The engine adapters themselves, on small hand-written inputs.

Kusto.Language needs Node and `npm ci --prefix tools/kusto`; those tests skip with the
reason when either is missing. duckdb-kql and the pySigma sqlite backend are test
dependencies and are expected to be installed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from cqlx.engines import EngineUnavailable
from cqlx.engines.duckdb_kql import duckdb_kql_unavailable_reason, run_kql
from cqlx.engines.kusto_language import (
    NODE_MODULES_ENV,
    KustoDiagnostic,
    analyze,
    errors,
    kusto_unavailable_reason,
)
from cqlx.engines.sigma_sqlite import convert_to_sqlite, run_sigma, sigma_check

# --------------------------------------------------------------------------- Kusto.Language

PROCESS_TABLE: dict[str, list[tuple[str, str]]] = {
    "DeviceProcessEvents": [
        ("Timestamp", "datetime"),
        ("DeviceName", "string"),
        ("FileName", "string"),
        ("ProcessCommandLine", "string"),
        ("ProcessId", "long"),
        ("IsElevated", "bool"),
        ("@timestamp", "long"),
        ("event.action", "string"),
    ]
}


@pytest.fixture()
def kusto() -> None:
    reason = kusto_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def only_errors(diagnostics: list[KustoDiagnostic]) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in errors(diagnostics)]


@pytest.mark.usefixtures("kusto")
def test_kusto_reports_unknown_column_and_syntax_error() -> None:
    wrong_column = 'DeviceProcessEvents | where ProcessCommandline has "-enc"'
    syntax_error = 'DeviceProcessEvents | where (FileName == "cmd.exe"'
    good = 'DeviceProcessEvents | where FileName =~ "cmd.exe"'
    bad_column, bad_syntax, fine = analyze([wrong_column, syntax_error, good], PROCESS_TABLE)

    [column_error] = errors(bad_column)
    assert column_error.severity == "Error"
    assert column_error.code == "KS142"
    assert column_error.excerpt(wrong_column) == "ProcessCommandline"

    assert errors(bad_syntax), bad_syntax
    assert any("Expected: )" in d.message for d in errors(bad_syntax))

    assert only_errors(fine) == []


VALID_KQL = [
    r'DeviceProcessEvents | where ProcessCommandLine matches regex @"(?i)\bpowershell(\.exe)?\s+-enc"',
    'DeviceProcessEvents | where ProcessCommandLine matches regex "\\\\d+"',
    'DeviceProcessEvents | where not(ProcessCommandLine matches regex "x")',
    'DeviceProcessEvents | extend Kind = iff(IsElevated, "admin", "user")',
    'DeviceProcessEvents | extend Kind = iif(ProcessId > 4, "user", "system")',
    'DeviceProcessEvents | extend Size = case(ProcessId > 1000, "big", ProcessId > 10, "mid", "small")',
    "DeviceProcessEvents | project DeviceName, Cmd = ProcessCommandLine | sort by DeviceName desc | take 10",
    "DeviceProcessEvents | project-away IsElevated | order by Timestamp asc | limit 5",
    "DeviceProcessEvents | top 3 by ProcessId desc",
    'DeviceProcessEvents | where FileName =~ "CMD.EXE" or FileName in~ ("powershell.exe", "pwsh.exe")',
    r'DeviceProcessEvents | where FileName == @"C:\Windows\System32\cmd.exe" or FileName == @"a""b"',
    'DeviceProcessEvents | where FileName !in ("a") and FileName !~ "b" and FileName !contains "c"',
    'DeviceProcessEvents | where FileName has "x" and FileName contains_cs "Y" and FileName endswith_cs "Z"',
    "DeviceProcessEvents | where isnotempty(DeviceName) and isempty(FileName) and isnotnull(ProcessId)",
    'DeviceProcessEvents | extend N = tolong("5"), S = strcat(tostring(ProcessId), "-", tolower(FileName))',
    "DeviceProcessEvents | summarize count() by DeviceName, bin(Timestamp, 1h)",
    "DeviceProcessEvents | where ['event.action'] == 'start' and ['@timestamp'] > 0",
    "DeviceProcessEvents | extend T = unixtime_milliseconds_todatetime(['@timestamp'])",
    "DeviceProcessEvents | extend T = datetime_add('millisecond', ['@timestamp'], datetime(1970-01-01))",
    "let Threshold = 3; DeviceProcessEvents | where ProcessId > Threshold",
]


@pytest.mark.usefixtures("kusto")
def test_kusto_accepts_valid_queries() -> None:
    results = analyze(VALID_KQL, PROCESS_TABLE)
    assert len(results) == len(VALID_KQL)
    problems = {q: only_errors(d) for q, d in zip(VALID_KQL, results, strict=True) if errors(d)}
    assert problems == {}


@pytest.mark.usefixtures("kusto")
def test_kusto_offsets_count_code_points() -> None:
    query = 'DeviceProcessEvents | where FileName == "\U0001f600" and NoSuchColumn == 1'
    [diagnostics] = analyze([query], PROCESS_TABLE)
    [error] = errors(diagnostics)
    assert error.excerpt(query) == "NoSuchColumn"


@pytest.mark.usefixtures("kusto")
def test_kusto_rejects_unknown_column_type() -> None:
    with pytest.raises(ValueError, match="unknown type"):
        analyze(["T"], {"T": [("a", "nosuchtype")]})


@pytest.mark.usefixtures("kusto")
def test_kusto_empty_query_list() -> None:
    assert analyze([], PROCESS_TABLE) == []


def test_kusto_unavailable_with_a_wrong_node_modules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(NODE_MODULES_ENV, str(tmp_path))
    reason = kusto_unavailable_reason()
    assert reason is not None
    with pytest.raises(EngineUnavailable):
        analyze(["T"], {"T": [("a", "string")]})


def test_kusto_unavailable_without_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert kusto_unavailable_reason() == "node not found on PATH (install Node.js 18 or later)"
    with pytest.raises(EngineUnavailable, match="node not found"):
        analyze(["T"], {"T": [("a", "string")]})


# --------------------------------------------------------------------------- duckdb-kql


@pytest.fixture()
def duckdb_kql() -> None:
    reason = duckdb_kql_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


EVENT_COLUMNS = [
    ("Timestamp", "datetime"),
    ("FileName", "string"),
    ("CommandLine", "string"),
    ("Pid", "long"),
]
EVENT_ROWS: list[dict[str, object]] = [
    {
        "Timestamp": "2024-01-01T10:00:00Z",
        "FileName": "PowerShell.exe",
        "CommandLine": "powershell -enc AAA",
        "Pid": 7,
    },
    {
        "Timestamp": dt.datetime(2024, 1, 1, 11, tzinfo=dt.UTC),
        "FileName": "cmd.exe",
        "CommandLine": "cmd /c whoami",
    },
    {"Timestamp": "2024-01-01 12:00:00", "FileName": "notepad.exe", "Pid": 9},
]


@pytest.mark.usefixtures("duckdb_kql")
def test_run_kql_over_three_rows() -> None:
    kql = (
        "Events"
        ' | where FileName =~ "powershell.exe" or CommandLine has "whoami" or isempty(CommandLine)'
        ' | extend Shell = iff(FileName endswith ".exe", tolower(FileName), "")'
        " | project Timestamp, Shell, Pid"
        " | sort by Timestamp desc"
    )
    rows = run_kql(kql, {"Events": (EVENT_COLUMNS, EVENT_ROWS)})
    assert rows == [
        {"Timestamp": dt.datetime(2024, 1, 1, 12), "Shell": "notepad.exe", "Pid": 9},
        {"Timestamp": dt.datetime(2024, 1, 1, 11), "Shell": "cmd.exe", "Pid": None},
        {"Timestamp": dt.datetime(2024, 1, 1, 10), "Shell": "powershell.exe", "Pid": 7},
    ]


@pytest.mark.usefixtures("duckdb_kql")
def test_run_kql_regex_is_case_sensitive_unless_prefixed() -> None:
    tables = {"Events": (EVENT_COLUMNS, EVENT_ROWS)}
    plain = run_kql('Events | where FileName matches regex @"^powershell\\.exe$" | project Pid', tables)
    folded = run_kql('Events | where FileName matches regex @"(?i)^powershell\\.exe$" | project Pid', tables)
    assert plain == []
    assert folded == [{"Pid": 7}]


@pytest.mark.usefixtures("duckdb_kql")
def test_run_kql_rejects_unknown_types_and_columns() -> None:
    with pytest.raises(ValueError, match="unknown KQL type"):
        run_kql("T", {"T": ([("a", "nosuchtype")], [])})
    with pytest.raises(ValueError, match="not among the columns"):
        run_kql("T", {"T": ([("a", "string")], [{"b": "x"}])})


# --------------------------------------------------------------------------- Sigma on SQLite

REGEX_RULES = r"""
title: Encoded PowerShell Any Case
id: 1b0f7c9e-4a57-4d0e-9d25-3f0e8c3c7a11
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|re|i: 'powershell(\.exe)?\s+-enc\b'
    condition: selection
level: high
---
title: Encoded PowerShell Exact Case
id: 2c1a8daf-5b68-4e1f-8e36-40f19d4d8b22
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|re: 'PowerShell(\.exe)?\s+-enc\b'
    filter:
        User: 'SYSTEM'
    condition: selection and not filter
level: high
"""

SIGMA_EVENTS: list[dict[str, object]] = [
    {"CommandLine": "PowerShell.exe -enc AAAA", "User": "alice"},
    {"CommandLine": "powershell -ENC BBBB", "User": "bob"},
    {"CommandLine": "PowerShell -enc CCCC", "User": "system"},
    {"CommandLine": "cmd.exe /c whoami", "User": "alice"},
    {"User": "carol"},
    {"CommandLine": "PowerShell.exe -enc DDDD"},
]


def test_run_sigma_regex_modifiers() -> None:
    results = run_sigma(REGEX_RULES, SIGMA_EVENTS)
    assert results == [
        ("Encoded PowerShell Any Case", [0, 1, 2, 5]),
        # case-sensitive |re; plain equality "SYSTEM" is case-insensitive; a missing User is no filter
        ("Encoded PowerShell Exact Case", [0, 5]),
    ]


def test_sqlite_backend_renders_regex_flags_as_prefix() -> None:
    [(_, [any_case]), (_, [exact_case])] = convert_to_sqlite(REGEX_RULES)
    assert "REGEXP '(?i)powershell" in any_case
    assert "REGEXP 'PowerShell" in exact_case


def test_run_sigma_string_modifiers_and_missing_fields() -> None:
    rules = r"""
title: Cmd Outside Windows Directory
logsource:
    category: process_creation
detection:
    selection:
        Image|endswith: '\cmd.exe'
    filter:
        Image|startswith: 'C:\Windows\'
    cased:
        ParentImage|contains|cased: 'Explorer'
    condition: selection and not filter or cased
"""
    events: list[dict[str, object]] = [
        {"Image": "C:\\Windows\\System32\\CMD.EXE"},
        {"Image": "D:\\tools\\cmd.exe"},
        {"Image": "D:\\tools\\notepad.exe", "ParentImage": "C:\\Windows\\explorer.exe"},
        {"Image": "D:\\tools\\notepad.exe", "ParentImage": "C:\\Windows\\Explorer.EXE"},
    ]
    assert run_sigma(rules, events) == [("Cmd Outside Windows Directory", [1, 3])]


GOOD_RULE = """title: Whoami Execution
id: {id}
status: experimental
description: Detects whoami.exe.
author: cqlx
date: 2024-01-01
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\whoami.exe'
        CommandLine|re|i: '/(all|priv)'
    condition: selection
falsepositives:
    - Administrators
level: medium
"""


def test_sigma_check_ok_and_issues(tmp_path: Path) -> None:
    good = tmp_path / "proc_creation_whoami.yml"
    good.write_text(GOOD_RULE.format(id=uuid.uuid4()), encoding="utf-8")
    ok, output = sigma_check(str(good))
    assert ok, output
    assert "Found 0 errors, 0 condition errors and 0 issues." in output

    no_id = tmp_path / "proc_creation_whoami_no_id.yml"
    no_id.write_text(GOOD_RULE.replace("id: {id}\n", ""), encoding="utf-8")
    ok, output = sigma_check(str(no_id))
    assert not ok
    assert "IdentifierExistenceIssue" in output

    bad_level = tmp_path / "proc_creation_whoami_bad.yml"
    bad_level.write_text(GOOD_RULE.format(id=uuid.uuid4()).replace("level: medium", "level: severe"), "utf-8")
    ok, output = sigma_check(str(bad_level))
    assert not ok
    assert "not a valid Sigma rule level" in output

"""The point of the tool: the same rule means the same thing everywhere. For a table of filters,
the Python matcher (the reference), the KQL on duckdb-kql and the Sigma on pySigma's sqlite
backend select exactly the same events."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import compile_matcher, convert
from cqlx.engines.duckdb_kql import run_kql
from cqlx.engines.sigma_sqlite import run_sigma
from cqlx.profiles import load_profile
from cqlx.reshape import to_records, to_tables

P = "#event_simpleName=ProcessRollup2 | "


def _event(n: int, **fields: Any) -> dict[str, Any]:
    return {"#event_simpleName": "ProcessRollup2", "ComputerName": f"host-{n:02d}", **fields}


EVENTS = [
    _event(1, CommandLine="docker run --rm alpine whoami", ImageFileName="/usr/bin/docker", UserName="root"),
    _event(2, CommandLine="DOCKER RUN --privileged x", ImageFileName="/usr/bin/DOCKER", UserName="Root"),
    _event(3, CommandLine="kubectl get secrets -A", ImageFileName="/usr/local/bin/kubectl", UserName="dev"),
    _event(4, ImageFileName="/usr/bin/docker", UserName="root"),  # no CommandLine
    _event(5, CommandLine="", ImageFileName="/bin/bash"),
    _event(6, CommandLine="bash -c 'echo whoami'", ImageFileName="/bin/bash", ParentBaseFileName="sshd",
           RawProcessId="4242"),
    _event(7, CommandLine="cmd.exe /c whoami", ImageFileName="\\Device\\HarddiskVolume3\\Windows\\System32\\cmd.exe",
           ParentBaseFileName="explorer.exe", RawProcessId="17"),
    _event(8, CommandLine="Docker Exec -it c sh", ImageFileName="/usr/bin/docker", ParentBaseFileName="bash"),
    {"event_simpleName": "ProcessRollup2", "ComputerName": "host-09", "CommandLine": "docker exec -i c id",
     "ImageFileName": "/usr/bin/docker", "UserName": "svc"},
    {"#event_simpleName": "DnsRequest", "ComputerName": "host-10", "CommandLine": "docker run whoami"},
    # `$` matches before a final newline (Java, Python, PCRE), RE2's own `$` does not.
    _event(11, CommandLine="sh -c whoami\n", ImageFileName="/usr/bin/sh\n"),
]

FILTERS = [
    "CommandLine = /whoami/",
    "CommandLine = /WHOAMI/i",
    "CommandLine = /^docker (run|exec)/",
    "CommandLine = /^docker (run|exec)/i",
    "CommandLine != /docker/i",
    "not CommandLine = /docker/",
    "CommandLine = *",
    "CommandLine != *",
    "CommandLine = *whoami*",
    "CommandLine = docker*",
    "CommandLine = *sh",
    "ImageFileName = /\\/docker$/i",
    "CommandLine = /whoami$/",
    "CommandLine = /whoami\\Z/",
    "ImageFileName = /sh$/i",
    "ImageFileName = /\\\\cmd\\.exe$/i",
    'UserName = "root"',
    "UserName != root",
    'in(UserName, values=["root", "dev"])',
    'in(UserName, values=["ROOT"], ignoreCase=true)',
    "ParentBaseFileName = bash",
    "ParentBaseFileName = *.exe",
    "RawProcessId > 100",
    "RawProcessId <= 100",
    # A negated test of a number holds where the field is missing (found by the agreement fuzz):
    # Kusto's not() of a null comparison is null, and Sigma's `not x: n` holds where x is missing.
    "UserName = * not RawProcessId < 100",
    "CommandLine = /whoami/ not RawProcessId = 17",
    'CommandLine = /whoami/ !in(RawProcessId, values=["17", "4242"])',
    "CommandLine = /docker/i not (RawProcessId > 100 and UserName = root)",
    "test(RawProcessId != 17)",
    "ImageFileName = /docker/ CommandLine = /run/ or CommandLine = /exec/i",
    "ImageFileName = /docker/ and (CommandLine = /run/ or UserName = dev)",
    "not (UserName = root or UserName = dev)",
]


# Expressions Sigma has no form for: KQL types them where CQL converts at run time.
EXPRESSIONS = [
    'test(RawProcessId > "100")',
    'test(RawProcessId == "17")',
    "test(CommandLine == ParentBaseFileName)",
    "test(CommandLine != ParentBaseFileName)",
    'x := if(test(RawProcessId > 100), then="big", else=1) | test(x == "big")',
    'x := if(test(RawProcessId > 100), then="big", else=1) | test(x == 1)',
    "x := RawProcessId + 1 | test(x > 18)",
    "x := CommandLine + 1 | x = *",
    'x := "a" * 2 | x = *',
    "select([ComputerName, CommandLine]) | UserName != root",
    "select([ComputerName, CommandLine]) | UserName = root",
    # x / 0 has no value (Kusto's real division would give infinity, which is > 1)
    "z := RawProcessId - 17 | x := RawProcessId / z | x = *",
    "z := RawProcessId - 17 | x := 100 / z | test(x > 0)",
    "x := RawProcessId / 0 | x = *",
]


def _python(cql: str, events: list[dict[str, Any]] = EVENTS) -> set[str]:
    matcher = compile_matcher(P + cql)
    return {e["ComputerName"] for e in events if matcher.match(e) is not None}


# Defender stores an absent string as "" (profile mde, `missing: empty`): a field present with an
# empty value is, there, an absent field. The reference runs on the events as Defender holds them.
DEFENDER_VIEW = [{k: v for k, v in e.items() if v != ""} for e in EVENTS]


def _kql(cql: str) -> set[str]:
    kql = convert(P + cql + " | select([ComputerName])", to="kql")
    rows = run_kql(kql, to_tables(EVENTS, load_profile("mde")))
    return {str(r["DeviceName"]) for r in rows}


def _sigma(cql: str) -> set[str]:
    records = to_records(EVENTS, load_profile("sigma"), ["ProcessRollup2"])
    kept = [i for i, r in enumerate(records) if r is not None]
    (_, hits), *_ = run_sigma(convert(P + cql, to="sigma"), [records[i] for i in kept])
    return {EVENTS[kept[h]]["ComputerName"] for h in hits}


@pytest.mark.parametrize("cql", FILTERS)
def test_kql_agrees_with_the_reference(cql: str) -> None:
    assert _kql(cql) == _python(cql, DEFENDER_VIEW)


@pytest.mark.parametrize("cql", EXPRESSIONS)
def test_kql_expressions_agree_with_the_reference(cql: str) -> None:
    assert _kql(cql) == _python(cql, DEFENDER_VIEW)


# Text ordering is strcmp() in KQL, which duckdb-kql does not run: Kusto.Language checks these.
TEXT_ORDER = ['test(CommandLine < "c")', 'test(CommandLine >= ParentBaseFileName)']


@pytest.mark.parametrize("cql", TEXT_ORDER)
def test_text_ordering_is_strcmp(cql: str) -> None:
    from cqlx.testing import check_kql

    kql = convert(P + cql, to="kql")
    assert "strcmp(" in kql
    check_kql(kql)


@pytest.mark.parametrize("cql", FILTERS)
def test_sigma_agrees_with_the_reference(cql: str) -> None:
    assert _sigma(cql) == _python(cql)


def test_the_table_is_not_trivial() -> None:
    sizes = {len(_python(cql)) for cql in FILTERS}
    assert 0 not in sizes or len(sizes) > 3
    assert max(sizes) < len(EVENTS) - 1


@pytest.mark.parametrize("rule", [
    '!in(field=RemotePort, values=["80", "443"]) | select([ComputerName])',
    'in(RemotePort, values=["4444", "x"]) | select([ComputerName])',
])
def test_in_on_a_number_column_agrees_with_the_reference(rule: str) -> None:
    """Defender's RemotePort is an int: in() with integers compares numbers, with other text the
    column's text (a number column against strings is a type error in Kusto)."""
    from tests.agreement import assert_agree

    events = [{"#event_simpleName": "NetworkConnectIP4", "ComputerName": f"host-{p}", "RemotePort": str(p),
               "aid": f"a{p}"} for p in (80, 443, 4444, 8080)]
    rows = assert_agree("#event_simpleName=NetworkConnectIP4 | " + rule, events, engines=("kql",))
    assert 0 < len(rows) < len(events)

"""``join()``: a second search over the same events joined on keys (ir.Join). Lowering, the KQL
(the subquery converted by the same emitter, joined as a lookup table is), the Python matcher
(the subquery runs over the events first), canonical CQL, and what stays refused (SPL, Sigma,
another time range or repository, several rows per key)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cqlx import compile_matcher, convert, ir, parse
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION
from cqlx.emit.cql import same_ir
from cqlx.errors import CqlValueError, LookupFileError
from cqlx.explain import explain
from cqlx.spl_oracle import SplOracleError, run_spl
from cqlx.testing import check_kql
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 | "
NET = "#event_simpleName=NetworkConnectIP4"


@pytest.mark.parametrize(("text", "fields", "keys", "include", "mode", "negated"), [
    ("join({x=1}, field=aid)", ("aid",), ("aid",), (), "inner", False),
    ("join({x=1}, field=[a, b], key=[c, d], include=[e], mode=left)", ("a", "b"), ("c", "d"), ("e",), "left", False),
    ("aid =~ join({x=1}, key=id, max=1, limit=100000)", ("aid",), ("id",), (), "inner", False),
    ("!join({x=1}, field=aid)", ("aid",), ("aid",), (), "inner", True),
    ("join({x=1}, field=aid, include=[e, f, e])", ("aid",), ("aid",), ("e", "f"), "inner", False),  # e once
])
def test_join_lowers_to_a_join(text: str, fields: tuple[str, ...], keys: tuple[str, ...], include: tuple[str, ...],
                               mode: str, negated: bool) -> None:
    (step,) = parse(text).steps
    assert isinstance(step, ir.Join)
    assert (step.fields, step.keys, step.include, step.mode, step.negated) == (fields, keys, include, mode, negated)
    assert step.subquery.steps == (ir.Filter(ir.Eq("x", "1")),)


def test_the_subquery_is_a_query_of_its_own() -> None:
    (step,) = parse(f"join({{{NET} RemotePort=4444 | groupBy(aid)}}, field=aid)").steps
    assert isinstance(step, ir.Join)
    assert step.subquery.source.event_types == ("NetworkConnectIP4",)
    assert [type(s).__name__ for s in step.subquery.steps] == ["Filter", "Aggregate"]


@pytest.mark.parametrize(("text", "message"), [
    ("join(field=aid)", "needs its subquery in braces"),
    ("join({x=1})", "needs the field"),
    ("join({x=1}, field=[a, b], key=c)", "2 field.s. and 1 key"),
    ("join({x=1}, field=a, mode=outer)", "accepted: inner, left"),
    ("join({x=1}, field=a, max=0)", "at least 1"),
])
def test_bad_join_arguments(text: str, message: str) -> None:
    with pytest.raises(CqlValueError, match=message):
        parse(text)


@pytest.mark.parametrize(("text", "reason"), [
    ("join({x=1}, field=a, max=5)", "max=5"),
    ("join({x=1}, field=a, limit=10)", "limit=10"),
    ("join({x=1}, field=a, repo=weblogs)", "repo="),
    ("join({x=1}, field=a, start=7d)", "start="),
    ("!join({x=1}, field=a, mode=left)", "mode=left"),
])
def test_what_is_not_converted_stays_opaque(text: str, reason: str) -> None:
    (step,) = parse(text).steps
    assert isinstance(step, ir.Opaque) and reason in step.reason and step.text == text


def test_join_in_a_boolean_expression_is_an_opaque_test() -> None:
    (step,) = parse("a=1 or join({x=1}, field=a)").steps
    assert isinstance(step, ir.Filter) and isinstance(step.pred, ir.Or)
    assert isinstance(step.pred.items[1], ir.OpaqueTest)


RULE = P + f"join({{{NET} | RemotePort=4444}}, field=aid, include=[RemoteAddressIP4]) " \
           "| select([ComputerName, CommandLine, RemoteAddressIP4])"


def test_kql_joins_the_converted_subquery() -> None:
    kql = convert(RULE, to="kql")
    assert kql == (
        "DeviceProcessEvents\n"
        "| join kind=inner (\n"
        "    DeviceNetworkEvents\n"
        '    | where ActionType in ("ConnectionSuccess", "ConnectionFailed", "ConnectionAttempt", '
        '"ConnectionRequest")\n'
        "    | where RemotePort == 4444\n"
        "    | project _cqlx_lookup1_key1 = tostring(DeviceId), _cqlx_lookup1_value1 = tostring(RemoteIP)\n"
        "    | where isnotempty(_cqlx_lookup1_key1)\n"
        "    | summarize _cqlx_lookup1_value1 = take_any(_cqlx_lookup1_value1) by _cqlx_lookup1_key1\n"
        "   ) on $left.DeviceId == $right._cqlx_lookup1_key1\n"
        "| extend RemoteAddressIP4 = _cqlx_lookup1_value1\n"
        "| project-away _cqlx_lookup1_key1, _cqlx_lookup1_value1\n"
        "| project DeviceName, ProcessCommandLine, RemoteAddressIP4\n")


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"#event_simpleName": kind, **fields}


EVENTS = [
    _event("ProcessRollup2", aid="a1", ComputerName="h1", CommandLine="nc -e sh"),
    _event("ProcessRollup2", aid="a2", ComputerName="h2", CommandLine="curl x"),
    _event("ProcessRollup2", aid="a3", ComputerName="h3", CommandLine="id"),
    _event("ProcessRollup2", ComputerName="h4", CommandLine="no aid"),
    _event("NetworkConnectIP4", aid="a1", RemotePort="4444", RemoteAddressIP4="10.0.0.9"),
    _event("NetworkConnectIP4", aid="a1", RemotePort="4444", RemoteAddressIP4="10.0.0.9"),
    _event("NetworkConnectIP4", aid="a2", RemotePort="443", RemoteAddressIP4="10.0.0.8"),
    _event("NetworkConnectIP4", aid="a2", RemotePort="443", RemoteAddressIP4="10.0.0.7"),
    _event("NetworkConnectIP4", aid="a3", RemotePort="4444"),
]
JOINS = [
    RULE,
    P + f"join({{{NET} | RemotePort=4444}}, field=aid) | select([ComputerName])",
    P + f"join({{{NET} | RemotePort=4444}}, field=aid, include=[RemoteAddressIP4], mode=left) "
        "| select([ComputerName, RemoteAddressIP4])",
    P + f"!join({{{NET}}}, field=aid) | select([ComputerName])",
    P + f"join({{{NET} | groupBy(aid, function=count())}}, field=aid, include=[_count]) "
        "| _count > 1 | select([ComputerName, _count])",
]


@pytest.mark.parametrize("rule", JOINS)
def test_join_rows_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(rule, EVENTS, engines=("kql", "spl"))
    assert 0 < len(rows) < 4 or "mode=left" in rule
    check_kql(convert(rule, to="kql"))


# Falcon's own process ids relate a process to its parent and to what it did (network connections
# carry the acting process's id as ContextProcessId); Defender's unique process ids relate them alike.
BY_PROCESS = [
    _event("ProcessRollup2", aid="a1", TargetProcessId="101", ParentProcessId="100", FileName="powershell.exe",
           CommandLine="powershell -enc x"),
    _event("ProcessRollup2", aid="a1", TargetProcessId="102", ParentProcessId="101", FileName="whoami.exe",
           CommandLine="whoami /all"),
    _event("ProcessRollup2", aid="a2", TargetProcessId="201", ParentProcessId="200", FileName="notepad.exe",
           CommandLine="notepad"),
    _event("NetworkConnectIP4", aid="a1", ContextProcessId="101", RemotePort="4444", RemoteAddressIP4="10.0.0.9"),
    _event("NetworkConnectIP4", aid="a2", ContextProcessId="201", RemotePort="443", RemoteAddressIP4="10.0.0.8"),
]
JOINS_BY_PROCESS = [
    # the command lines of processes that connected to port 4444
    f"{NET} RemotePort=4444 | join({{#event_simpleName=ProcessRollup2}}, field=ContextProcessId, "
    "key=TargetProcessId, include=[CommandLine]) | select([RemoteAddressIP4, CommandLine])",
    # children of a process that made a network connection
    P + f"join({{{NET}}}, field=ParentProcessId, key=ContextProcessId, include=[RemotePort]) "
        "| select([FileName, RemotePort])",
    # processes started by powershell, found through the parent's own id
    P + "join({#event_simpleName=ProcessRollup2 FileName=powershell.exe}, field=ParentProcessId, "
        "key=TargetProcessId) | groupBy([FileName])",
]


# Keys and values a target computes from what its events hold (raw FDR has the full path, not the
# file name; Splunk's _time and Defender's Timestamp stand for Falcon's epoch milliseconds): the
# subquery computes them too.
BY_DERIVED = [
    _event("ProcessRollup2", aid="a1", ImageFileName="\\Device\\HarddiskVolume3\\Windows\\whoami.exe",
           FileName="whoami.exe", CommandLine="whoami /all", **{"@timestamp": "1704067200000"}),
    _event("ProcessRollup2", aid="a2", ImageFileName="\\Device\\HarddiskVolume3\\Tools\\whoami.exe",
           FileName="whoami.exe", CommandLine="whoami", **{"@timestamp": "1704067260000"}),
    _event("ProcessRollup2", aid="a3", ImageFileName="\\Device\\HarddiskVolume3\\Windows\\notepad.exe",
           FileName="notepad.exe", CommandLine="notepad", **{"@timestamp": "1704067200000"}),
]
JOINS_ON_DERIVED = [
    P + 'join({#event_simpleName=ProcessRollup2 CommandLine="whoami /all"}, field=FileName, include=[CommandLine]) '
        "| select([aid, CommandLine])",
    P + "join({#event_simpleName=ProcessRollup2 FileName=notepad.exe}, field=@timestamp, include=[CommandLine]) "
        "| select([aid, CommandLine])",
    P + "join({#event_simpleName=ProcessRollup2 aid=a2}, field=aid, key=aid, include=[@timestamp]) "
        "| Later := @timestamp + 1 | select([aid, Later])",
]


@pytest.mark.parametrize("rule", JOINS_ON_DERIVED)
def test_join_keys_and_values_the_target_computes_agree(rule: str) -> None:
    rows = assert_agree(rule, BY_DERIVED, engines=("kql", "spl"))
    assert 1 <= len(rows) <= 2, rows
    check_kql(convert(rule, to="kql"))


@pytest.mark.parametrize("rule", JOINS_BY_PROCESS)
def test_joins_on_falcon_process_ids_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(rule, BY_PROCESS, engines=("kql", "spl"))
    assert len(rows) == 1, rows
    kql = convert(rule, to="kql")
    assert "UniqueId" in kql and "ProcessId ==" not in kql  # Defender's unique ids, never the OS pids
    check_kql(kql)


def test_a_row_the_subquery_lacks_an_include_field_for_gives_empty() -> None:
    rows = compile_matcher(RULE).run(EVENTS)
    assert {r["ComputerName"]: r.get("RemoteAddressIP4") for r in rows} == {"h1": "10.0.0.9", "h3": ""}


def test_rows_of_one_key_that_disagree_are_refused() -> None:
    rule = P + f"join({{{NET}}}, field=aid, include=[RemoteAddressIP4])"
    with pytest.raises(LookupFileError, match="rows for the key a2 with different values"):
        compile_matcher(rule).run(EVENTS)


def test_match_of_one_event_joins_that_event_alone() -> None:
    matcher = compile_matcher(P + f"join({{{NET}}}, field=aid)")
    assert matcher.match(EVENTS[0]) is None  # its subquery saw no network event


def test_sigma_refuses_joins() -> None:
    conversion = convert_query(parse(RULE), "sigma")
    found = [d for d in conversion.diagnostics if "join()" in d.message]
    assert found and found[0].kind == DETECTION and "Sigma has no joins" in found[0].message


def test_spl_joins_a_subsearch() -> None:
    spl = convert(P + f"join({{{NET} | RemotePort=4444}}, field=aid, include=[RemoteAddressIP4], mode=left)",
                  to="spl")
    assert spl.splitlines()[1:] == [
        "| eval _cqlx_join1_key1=aid",
        '| join type=left max=1 _cqlx_join1_key1 [search sourcetype="crowdstrike:events:sensor" '
        'event_simpleName=CASE(NetworkConnectIP4) | where RemotePort=="4444" | eval _cqlx_join1_key1=aid, '
        '_cqlx_join1_value1=coalesce(RemoteAddressIP4, ""), _cqlx_join1_hit=1 | where isnotnull(_cqlx_join1_key1) '
        'AND _cqlx_join1_key1!="" | dedup _cqlx_join1_key1 | fields _cqlx_join1_key1 _cqlx_join1_value1 '
        "_cqlx_join1_hit]",
        "| eval RemoteAddressIP4=if(isnotnull(_cqlx_join1_hit), _cqlx_join1_value1, RemoteAddressIP4)",
        "| fields - _cqlx_join1_key1 _cqlx_join1_value1 _cqlx_join1_hit"]


ORACLE_EVENTS = [{"kind": "a", "id": "1", "v": "main"}, {"kind": "a", "id": "2"}, {"kind": "a"},
                 {"kind": "b", "id": "1", "v": "first"}, {"kind": "b", "id": "1", "v": "second"}]


@pytest.mark.parametrize(("spl", "expected"), [
    # inner: only matched results; max=1 takes the subsearch's first row; its fields overwrite
    ("search kind=a | join id [search kind=b | fields id v]", [{"kind": "a", "id": "1", "v": "first"}]),
    ("search kind=a | join type=left max=1 id [search kind=b | fields id v]",
     [{"kind": "a", "id": "1", "v": "first"}, {"kind": "a", "id": "2"}, {"kind": "a"}]),
    ("search kind=a | join type=outer id [search kind=b | dedup id | fields id]",
     [{"kind": "a", "id": "1", "v": "main"}, {"kind": "a", "id": "2"}, {"kind": "a"}]),
    ("search * | dedup kind", [{"kind": "a", "id": "1", "v": "main"}, {"kind": "b", "id": "1", "v": "first"}]),
    # max=0: a result for each matching subsearch row, in its order
    ("search kind=a | join max=0 id [search kind=b | fields id v]",
     [{"kind": "a", "id": "1", "v": "first"}, {"kind": "a", "id": "1", "v": "second"}]),
])
def test_oracle_join_and_dedup(spl: str, expected: list[dict[str, str]]) -> None:
    assert run_spl(spl, ORACLE_EVENTS) == expected


@pytest.mark.parametrize(("spl", "message"), [
    ("search * | join max=2 id [search *]", "max=1 or max=0"),
    ("search * | join id", r"subsearch in \[ \]"),
    ("search * | join id [search *", "not closed"),
])
def test_oracle_join_refuses_what_it_does_not_interpret(spl: str, message: str) -> None:
    with pytest.raises(SplOracleError, match=message):
        run_spl(spl, ORACLE_EVENTS)


CQL = [
    (P + f"join({{{NET} | RemotePort=4444}}, field=aid, key=aid, include=[RemoteAddressIP4], max=1)",
     "#event_simpleName=ProcessRollup2\n"
     "| join({#event_simpleName=NetworkConnectIP4 | RemotePort=4444}, field=aid, include=[RemoteAddressIP4])\n"),
    ("not ComputerName =~ join({x=1 | y := 2}, key=[host], mode=inner)",
     "!join({x=1 | y := 2}, field=ComputerName, key=host)\n"),
    ("join({a=1}, field=[a, b], key=[c, d], mode=left, include=[e, f])",
     "join({a=1}, field=[a, b], key=[c, d], include=[e, f], mode=left)\n"),
]


@pytest.mark.parametrize(("text", "expected"), CQL)
def test_canonical_cql_round_trips(text: str, expected: str) -> None:
    output = convert(text, to="cql")
    assert output == expected
    assert same_ir(parse(output), parse(text))


def test_explain_describes_the_join() -> None:
    text = explain(parse(RULE))
    assert "Join: match a subquery over NetworkConnectIP4 (1 step) where aid = aid; keep only the events with " \
           "a row, and write RemoteAddressIP4 from it" in text


def test_cli_run_reads_the_subquerys_events(tmp_path: Path) -> None:
    """The prefilter would skip the network events the main query's filters do not keep: off for joins."""
    rule = tmp_path / "rule.cql"
    rule.write_text(RULE + "\n", encoding="utf-8")
    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "cqlx", "run", str(rule), str(events), "--format", "jsonl"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(line)["ComputerName"] for line in result.stdout.splitlines()) == ["h1", "h3"]


def test_a_join_inside_a_subquery_is_indexed_before_the_join_it_is_in() -> None:
    """Fix: the matcher indexed joins in order, so the outer subquery looked up an inner join not
    indexed yet (an internal error, IndexError)."""
    events = [{"#event_simpleName": "ProcessRollup2", "aid": "a1", "ImageFileName": "C:\\cmd.exe", "RawProcessId": "1"},
              {"#event_simpleName": "ProcessRollup2", "aid": "a2", "ImageFileName": "C:\\ls.exe", "RawProcessId": "2"},
              {"#event_simpleName": "ProcessRollup2", "aid": "a2", "ImageFileName": "C:\\x.exe", "RawProcessId": "3"}]
    text = (f"{P}join({{{P}join({{ImageFileName=/cmd/i}}, field=aid)}}, field=aid) "
            f"| join({{{P}ImageFileName=/x\\.exe/}}, field=aid, mode=left, include=[RawProcessId]) "
            "| select([aid, RawProcessId])")
    assert [row["aid"] for row in compile_matcher(text).run(events)] == ["a1"]
    assert assert_agree(text, events, engines=("spl",)) == [(("aid", "a1"), ("RawProcessId", "1"))]


# ------------------------------------------------------------------ defineTable() and match(table=)

TABLE = f'defineTable(query={{{NET} RemotePort=4444}}, name="c2", include=[aid, ContextProcessId, RemoteAddressIP4])\n'


def test_an_ad_hoc_table_is_a_join_of_its_subquery() -> None:
    """defineTable() processes no events: the match() on its table is the join of its subquery, whose
    rows are the include fields; match()'s include defaults to every column of the table."""
    query = parse(TABLE + f"| {P}match(table=c2, field=[aid, TargetProcessId], column=[aid, ContextProcessId])")
    (step,) = query.steps
    assert isinstance(step, ir.Join) and (step.origin, step.table, step.mode) == ("defineTable", "c2", "inner")
    assert (step.fields, step.keys) == (("aid", "TargetProcessId"), ("aid", "ContextProcessId"))
    assert step.include == ("aid", "ContextProcessId", "RemoteAddressIP4")
    assert step.subquery.steps[-1] == ir.Project(("aid", "ContextProcessId", "RemoteAddressIP4"))
    loose = parse(TABLE + f"| {P}match(table=c2, field=aid, strict=false, include=[RemoteAddressIP4])").steps[0]
    assert isinstance(loose, ir.Join) and loose.mode == "left" and loose.include == ("RemoteAddressIP4",)


TABLE_RULES = [
    # the processes that connected to port 4444, and where to
    TABLE + f"| {P}match(table=c2, field=[aid, TargetProcessId], column=[aid, ContextProcessId], "
            "include=[RemoteAddressIP4]) | select([FileName, RemoteAddressIP4])",
    # every process, with where it connected when it did
    TABLE + f"| {P}match(table=\"c2\", field=[aid, TargetProcessId], column=[aid, ContextProcessId], "
            "strict=false) | select([FileName, RemoteAddressIP4])",
    # the processes that did not
    TABLE + f"| {P}!match(table=c2, field=[aid, TargetProcessId], column=[aid, ContextProcessId]) "
            "| select([FileName])",
    # a table matched by a table defined after it: the children of processes that connected
    TABLE + f'| defineTable(query={{{P}match(table=c2, field=[aid, TargetProcessId], '
            'column=[aid, ContextProcessId])}, name="parents", include=[aid, TargetProcessId, FileName])\n'
            f"| {P}match(table=parents, field=[aid, ParentProcessId], column=[aid, TargetProcessId], "
            "include=[]) | groupBy([FileName])",
]


@pytest.mark.parametrize("rule", TABLE_RULES)
def test_ad_hoc_tables_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(rule, BY_PROCESS, engines=("kql", "spl"))
    assert 0 < len(rows) < 4 or "strict=false" in rule, rows
    check_kql(convert(rule, to="kql"))
    output = convert(rule, to="cql")  # the tables at the top, each match() on its table
    assert output.startswith("defineTable(query={") and same_ir(parse(output), parse(rule))


@pytest.mark.parametrize(("text", "reason"), [
    ('defineTable(query={x=1}, name=t, include=[*]) | match(table=t, field=a)', "include=.\\*. makes a column"),
    ('defineTable(query={x=1}, name=t, include=[a], start=7d) | match(table=t, field=a)', "start= runs the subquery"),
    ('defineTable(query={x=1}, name=t, include=[a]) | match(table=t, field=a, mode=glob)', "mode=glob on an ad-hoc"),
    ('defineTable(query={x=1}, name=t, include=[a]) | match(table=t, field=a, nrows=2)', "nrows=2 on an ad-hoc"),
    ('defineTable(query={x=1}, name=t, include=[a]) | match(table=elsewhere, field=a)', "no ad-hoc table elsewhere"),
])
def test_what_is_not_converted_of_an_ad_hoc_table_stays_opaque(text: str, reason: str) -> None:
    steps = parse(text).steps
    assert isinstance(steps[-1], ir.Opaque) and re.search(reason, steps[-1].reason), steps[-1]
    assert convert(text, to="cql").startswith("defineTable(query={x=1}")  # written back as it was


@pytest.mark.parametrize(("text", "message"), [
    ("defineTable(query={x=1}, include=[a])", "needs the table's name"),
    ("defineTable(query={x=1}, name=t)", "needs the table's columns"),
    ("defineTable(name=t, include=[a])", "needs its subquery in braces"),
    ("defineTable(query={a=1}, name=t, include=[a]) | defineTable(query={b=1}, name=t, include=[b])",
     'a table named "t" is defined already'),
])
def test_bad_ad_hoc_tables(text: str, message: str) -> None:
    with pytest.raises(CqlValueError, match=message):
        parse(text)


# match(table=..., nrows=max): an event for each matching row of the table
CONNECTIONS = [
    {"#event_simpleName": "NetworkConnectIP4", "aid": "a1", "ContextProcessId": "101", "RemoteAddressIP4": "10.0.0.1"},
    {"#event_simpleName": "NetworkConnectIP4", "aid": "a1", "ContextProcessId": "101", "RemoteAddressIP4": "10.0.0.2"},
    {"#event_simpleName": "NetworkConnectIP4", "aid": "a1", "ContextProcessId": "101", "RemoteAddressIP4": "10.0.0.2"},
    {"#event_simpleName": "NetworkConnectIP4", "aid": "a2", "ContextProcessId": "201", "RemoteAddressIP4": "10.0.0.3"},
]
CONNS = ('defineTable(query={#event_simpleName=NetworkConnectIP4}, name="conns", '
         "include=[aid, ContextProcessId, RemoteAddressIP4])\n")
EVERY_ROW = [
    CONNS + f"| {P}match(table=conns, field=[aid, TargetProcessId], column=[aid, ContextProcessId], nrows=max) "
            "| select([FileName, RemoteAddressIP4])",
    CONNS + f"| {P}match(table=conns, field=[aid, TargetProcessId], column=[aid, ContextProcessId], nrows=max, "
            "strict=false) | select([FileName, RemoteAddressIP4])",
]


@pytest.mark.parametrize("rule", EVERY_ROW)
def test_every_matching_row_makes_an_event_on_every_engine(rule: str) -> None:
    rows = assert_agree(rule, BY_PROCESS + CONNECTIONS, engines=("kql", "spl"))
    assert sorted(r[1][1] for r in rows if r[0][1] == "powershell.exe") == [  # a row twice: the event twice
        "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.9"]
    (join,) = [s for s in parse(rule).steps if isinstance(s, ir.Join)]
    assert join.many
    check_kql(convert(rule, to="kql"))
    output = convert(rule, to="cql")
    assert "nrows=max" in output and same_ir(parse(output), parse(rule))
    assert "join type=" in convert(rule, to="spl") and "max=0" in convert(rule, to="spl")

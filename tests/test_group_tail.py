"""``groupBy(keys, function=tail(N))``: the newest events of each group, whole (ir.GroupTail).
Lowering, the matcher, KQL (``summarize arg_max(Timestamp, *)``), SPL (``sort`` then ``dedup``),
canonical CQL, and what stays refused (Sigma; tail(N) for N > 1 in KQL, which duckdb-kql cannot
run; tail() among other functions). Rows are checked on duckdb-kql and the SPL oracle against the matcher."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import compile_matcher, convert, ir, parse
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION
from cqlx.emit.cql import same_ir
from cqlx.explain import explain
from cqlx.testing import check_kql
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 "
T0 = 1_704_164_645_000


def _event(seconds: int, **fields: Any) -> dict[str, Any]:
    return {"#event_simpleName": "ProcessRollup2", "@timestamp": T0 + 1000 * seconds,
            "timestamp": str(T0 + 1000 * seconds), **fields}


EVENTS = [
    _event(1, aid="a1", ComputerName="h1", CommandLine="whoami"),
    _event(5, aid="a1", ComputerName="h1", CommandLine="net user"),
    _event(3, aid="a1", ComputerName="h1", CommandLine="ipconfig"),
    _event(2, aid="a2", ComputerName="h2", CommandLine="ls"),
    _event(9, ComputerName="h3", CommandLine="no aid: in no group"),
    _event(4, aid="a2", ComputerName="h2", CommandLine="id"),
]


@pytest.mark.parametrize(("text", "keys", "count", "limit"), [
    ("groupBy(aid, function=tail(1))", ("aid",), 1, 20_000),
    ("groupBy([aid, UserName], function=[tail(5)], limit=100)", ("aid", "UserName"), 5, 100),
    ("groupBy(aid, function=tail())", ("aid",), 200, 20_000),
])
def test_group_by_tail_lowers_to_a_group_tail(text: str, keys: tuple[str, ...], count: int, limit: int) -> None:
    (step,) = parse(text).steps
    assert step == ir.GroupTail(keys, count, limit)


def test_tail_among_other_functions_stays_opaque() -> None:
    (step,) = parse("groupBy(aid, function=[tail(1), count()])").steps
    assert isinstance(step, ir.Opaque) and "tail() among groupBy()'s functions with others" in step.reason


def test_the_matcher_keeps_the_newest_events_of_each_group_whole() -> None:
    rows = compile_matcher(P + "| groupBy([aid], function=tail(2))").run(EVENTS)
    assert [(r["aid"], r["CommandLine"]) for r in rows] == [("a1", "net user"), ("a1", "ipconfig"),
                                                            ("a2", "id"), ("a2", "ls")]
    assert rows[0] == EVENTS[1]  # every field of the event


RULES = [
    P + "| groupBy([aid], function=tail(1)) | select([aid, CommandLine])",
    P + "| groupBy([aid], function=tail(2)) | select([aid, CommandLine])",
    P + "| groupBy([ComputerName, aid], function=[tail(1)]) | select([ComputerName, CommandLine])",
    P + "| CommandLine != whoami | groupBy(aid, function=tail(1)) | CommandLine=/^i/ | select([aid, CommandLine])",
]


@pytest.mark.parametrize("rule", RULES)
def test_group_tail_rows_agree_on_every_engine(rule: str) -> None:
    many = "tail(2)" in rule
    rows = assert_agree(rule, EVENTS, engines=("spl",) if many else ("kql", "spl"))
    assert 0 < len(rows) <= (4 if many else 2)
    if many:
        return
    check_kql(convert(rule, to="kql"))
    output = convert(rule, to="cql")
    assert same_ir(parse(output), parse(rule))


def test_targets_write_the_newest_row_per_group() -> None:
    rule = RULES[0]
    assert "| summarize arg_max(Timestamp, *) by DeviceId\n" in convert(rule, to="kql")
    assert "| sort 0 -num(_time)\n| dedup aid\n" in convert(rule, to="spl")
    assert "Keep the newest event by @timestamp of each group of aid" in explain(parse(rule))


def test_spl_keeps_n_results_per_group_with_dedup() -> None:
    """SPL's ``dedup <int>`` keeps that many results of each combination (Search Reference, dedup)."""
    assert "| sort 0 -num(_time)\n| dedup 3 aid UserSid\n" in convert(
        P + "| groupBy([aid, UserSid], function=tail(3)) | select([aid])", to="spl")


def test_more_than_one_event_per_group_is_refused_in_kql() -> None:
    """KQL says it with row_number() over serialized rows or partition, neither of which duckdb-kql
    runs: not written until it can be checked."""
    conversion = convert_query(parse(P + "| groupBy(aid, function=tail(3))"), "kql")
    assert any(d.kind == DETECTION and "tail(3) keeps 3 events per group" in d.message for d in conversion.diagnostics)


def test_sigma_refuses_it() -> None:
    conversion = convert_query(parse(P + "CommandLine=x | groupBy(aid, function=tail(1))"), "sigma")
    assert any(d.kind == DETECTION and "newest events of each group" in d.message for d in conversion.diagnostics)

"""``{filter | function}`` among groupBy()'s functions: the function over the events of each group
that pass the filter (functions-groupby). Lowered to a scratch field set before the aggregation on
exactly those events, which the function reads (cqlx.lower ``filtered_function``); rows checked on
duckdb-kql and the SPL oracle against the Python matcher, and one table computed by hand."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import compile_matcher, convert, ir, parse
from cqlx.emit.cql import same_ir
from cqlx.testing import check_kql
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 "


def _event(aid: str, name: str, host: str, command: str, **more: Any) -> dict[str, Any]:
    return {"#event_simpleName": "ProcessRollup2", "aid": aid, "FileName": name, "ComputerName": host,
            "CommandLine": command, **more}


EVENTS = [
    _event("a1", "cmd.exe", "h1", "whoami", RawProcessId="10"),
    _event("a1", "cmd.exe", "h1", "net user", RawProcessId="30"),
    _event("a2", "cmd.exe", "h1", "whoami /all", RawProcessId="20"),
    _event("a3", "bash", "h2", "id", RawProcessId="5"),
    _event("a3", "bash", "h2", "uname -a"),
    _event("a4", "zsh", "h2", "sw_vers", RawProcessId="7"),
]

RULES = [
    # per host: all agents, and the agents that ran each shell
    P + "| groupBy(ComputerName, function=[count(aid, distinct=true, as=Total), "
        "{FileName=cmd.exe | count(aid, distinct=true, as=Windows)}, "
        "{FileName=bash | count(aid, distinct=true, as=Linux)}])",
    # counts of events, and of a field's values, behind a filter, then a threshold on one of them
    P + "| groupBy(ComputerName, function=[count(as=All), {CommandLine=/whoami/i | count(as=Who)}, "
        "{FileName!=cmd.exe | count(RawProcessId, as=Pids)}]) | Who >= 1",
    # numbers behind a filter of two conditions
    P + "| groupBy(ComputerName, function=[{FileName=cmd.exe | CommandLine!=whoami | max(RawProcessId, as=Top)}, "
        "{FileName=bash | min(RawProcessId, as=Low)}, sum(RawProcessId, as=Sum)])",
    # inside a nested groupBy(), and in stats() with no keys
    P + "| groupBy(ComputerName, function=groupBy(FileName, function=[{CommandLine=/^whoami/ | count(as=Who)}, "
        "count(as=All)]))",
    P + "| stats([{FileName=cmd.exe | count(aid, distinct=true, as=Cmd)}, count(as=All)])",
    # the values of a field among the filtered events only (not command lines: duckdb-kql sorts
    # an array of strings as JSON text, "whoami /all" before "whoami", where Kusto compares them)
    P + "| groupBy(ComputerName, function=[{CommandLine=/^whoami/ | collect([aid])}, count(as=All)])",
]


def test_the_matcher_counts_each_groups_filtered_events() -> None:
    rows = compile_matcher(RULES[0]).run(EVENTS)
    got = {r["ComputerName"]: (r["Total"], r.get("Windows"), r.get("Linux")) for r in rows}
    assert got == {"h1": (2, 2, 0), "h2": (2, 0, 1)}


@pytest.mark.parametrize("rule", RULES)
def test_rows_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(rule, EVENTS, engines=("kql", "spl"))
    assert rows
    check_kql(convert(rule, to="kql"))
    assert same_ir(parse(convert(rule, to="cql")), parse(rule))


def test_canonical_cql_writes_the_subqueries_back() -> None:
    assert convert(RULES[1], to="cql").splitlines()[1] == (
        "| groupBy(ComputerName, function=[count(as=All), {CommandLine=/whoami/i | count(as=Who)}, "
        "{FileName!=cmd.exe | count(RawProcessId, as=Pids)}])")


def test_the_filter_is_a_scratch_field_before_the_aggregation() -> None:
    steps = parse("groupBy(h, function=[{p=Win | count(aid, distinct=true, as=W)}])").steps
    assert steps[0] == ir.Case((
        ir.CaseBranch((ir.Filter(ir.Eq("p", "Win")), ir.Eval("_cqlx_where1", ir.Ref("aid")))),
        ir.CaseBranch((ir.Filter(ir.TrueP()),))))
    assert steps[1] == ir.Aggregate(("h",), (ir.AggFunc("count", "_cqlx_where1", "W", True),), 20_000)


@pytest.mark.parametrize(("function", "reason"), [
    ("{p=Win | selectFromMax(field=@timestamp, include=[x])}", "selectFromMax() in a subquery"),
    ("{p=Win | selectFromMin(field=@timestamp, include=[x])}", "selectFromMin() in a subquery"),
    ("{p=Win | collect([x, y])}", "does more than filter"),
    ("{p=Win | count() | rename(field=_count, as=n)}", "does more than filter"),
    ("{count()}", "does more than filter"),
    ("{p=Win | x := 1 | count()}", "does more than filter"),
])
def test_other_subqueries_stay_opaque(function: str, reason: str) -> None:
    (step,) = parse(f"groupBy(h, function=[{function}])").steps
    assert isinstance(step, ir.Opaque) and reason in step.reason


def test_sigma_refuses_it() -> None:
    from cqlx.conversion import convert_query
    from cqlx.emit.base import DETECTION

    conversion = convert_query(parse(RULES[1]), "sigma")
    assert any(d.kind == DETECTION for d in conversion.diagnostics)


def test_two_functions_writing_one_field_are_refused_as_without_a_filter() -> None:
    from cqlx.errors import CqlValueError

    with pytest.raises(CqlValueError, match="two functions write _count"):
        parse("groupBy(a, function=[{x=1 | count()}, count()])")


def test_the_newest_value_among_the_filtered_events_agrees_on_every_engine() -> None:
    t0 = 1_704_164_645_000
    timed = [{**event, "@timestamp": t0 + 1000 * i, "timestamp": str(t0 + 1000 * i)} for i, event in enumerate(EVENTS)]
    rule = P + "| groupBy(ComputerName, function=[{FileName=cmd.exe | selectLast([CommandLine])}, count(as=All)])"
    rows = assert_agree(rule, timed, engines=("kql", "spl"))
    assert (("ComputerName", "h1"), ("CommandLine", "whoami /all"), ("All", "3")) in rows

"""``stats()`` with a sort() among one-row functions: each row of the sort takes the others'
outputs (functions-stats: "the total output is the Cartesian product of all of the
subaggregators' outputs, except if any of the subaggregators outputs zero rows, it is taken as it
is outputting a single empty row"). ``[sum(count, as=total), sort(...)]`` after a groupBy() is how
published queries compute each group's share.

Tables: CQL → IR, what stays refused and why, each target's text; then rows on the Python matcher,
duckdb-kql and the SPL oracle, over events and over none (LogScale still gives one row)."""

from __future__ import annotations

import pytest

import cqlx
from cqlx import convert, ir
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION
from cqlx.passes import row_fields
from cqlx.spl_oracle import run_spl
from cqlx.testing import check_kql
from tests.agreement import assert_agree

P = "#event_simpleName=NetworkConnectIP4 | groupBy([RemotePort], function=count(as=n)) | "
SHARE = P + "[sum(n, as=total), max(n, as=most), sort(RemotePort, order=asc, limit=3)] " \
            "| percent := 100 * n / total | select([RemotePort, n, total, most, percent])"


def test_lowers_to_totals_then_the_order() -> None:
    steps = cqlx.parse(SHARE).steps
    totals = next(i for i, s in enumerate(steps) if isinstance(s, ir.Totals))
    assert steps[totals] == ir.Totals((ir.AggFunc("sum", "n", "total"), ir.AggFunc("max", "n", "most")))
    assert steps[totals + 1] == ir.Order((ir.SortKey("RemotePort", False),), 3)


@pytest.mark.parametrize(("cql", "reason"), [
    # the rows are events: any of them may hold `total`, which LogScale reports as an error
    ("#event_simpleName=NetworkConnectIP4 | [sum(RemotePort, as=total), sort(RemotePort)]", "not known here"),
    (P + "total := 1 | [sum(n, as=total), sort(RemotePort)]", "already have total"),
    (P + "[sum(n, as=total), sort(total)]", "sorts by none of those outputs"),
    (P + "[collect(RemotePort), sort(n)]", "collect()"),
    (P + "[sum(n), sort(n), head(2)]", "several functions that keep rows"),
    (P + "[sum(n), sort(n, order=ascending)]", "not documented"),  # LogScale documents asc and desc
])
def test_what_stays_refused(cql: str, reason: str) -> None:
    query = cqlx.parse(cql)
    for target in ("python", "kql", "spl"):
        conversion = convert_query(query, target, query_text=cql)
        assert any(d.kind == DETECTION and reason in d.message for d in conversion.diagnostics), \
            (target, conversion.diagnostics)


@pytest.mark.parametrize(("steps", "fields"), [
    ((), None),
    ((ir.Aggregate(("a",), (ir.AggFunc("count", None, "_count"),)),), {"a", "_count"}),
    ((ir.Aggregate(("a",), (ir.AggFunc("count", None, "_count"),)), ir.Eval("b", ir.Lit(1)),
      ir.Drop(("a",))), {"_count", "b"}),
    ((ir.Project(("a", "b")), ir.Opaque("x", "x()", ir.ENRICHES, None, "why")), None),
    ((ir.Project(("a",)), ir.GroupTail(("a",), 1)), None),
])
def test_row_fields_are_known_after_an_aggregation_or_a_projection(steps: tuple[ir.Step, ...],
                                                                    fields: set[str] | None) -> None:
    assert row_fields(steps) == (frozenset(fields) if fields is not None else None)


def test_cql_writes_stats_back_and_reads_the_same_ir() -> None:
    text = convert(SHARE, to="cql")
    assert "stats([sum(n, as=total), max(n, as=most), sort(RemotePort, order=asc, limit=3)])" in text
    assert cqlx.parse(text) == cqlx.parse(SHARE)


def test_kql_joins_the_rows_to_their_summary() -> None:
    kql = convert(SHARE, to="kql")
    assert "| extend _cqlx_totals1 = 1\n| join kind=rightouter (\n    DeviceNetworkEvents\n" in kql
    assert "    | summarize total = sum(n), most = max(n)\n    | extend _cqlx_totals1 = 1\n   ) on _cqlx_totals1\n" \
           "| project-away _cqlx_totals1, _cqlx_totals11\n| sort by RemotePort asc" in kql
    check_kql(kql)  # Kusto.Language over the Defender schema


def test_spl_eventstats_then_a_row_when_there_was_none() -> None:
    spl = convert(SHARE, to="spl")
    assert "| eventstats sum(n) as total, max(n) as most\n" in spl
    assert "| appendpipe [stats count as _cqlx_rows1 | where _cqlx_rows1=0 | eval total=0 | fields - _cqlx_rows1]" \
        in spl


def test_sigma_refuses_it() -> None:
    conversion = convert_query(cqlx.parse(SHARE), "sigma", query_text=SHARE)
    assert any(d.kind == DETECTION and "second aggregation" in d.message for d in conversion.diagnostics)


# ---------------------------------------------------------------- rows on every engine

def _connections(*ports: int) -> list[dict[str, object]]:
    return [{"#event_simpleName": "NetworkConnectIP4", "RemotePort": port, "aid": "a1"} for port in ports]


def test_each_row_takes_the_totals_over_all_rows_before_the_limit() -> None:
    rows = assert_agree(SHARE, _connections(443, 443, 443, 80, 22, 22, 8080, 53), ordered=True)
    # total and most are over the five ports; the sort keeps three
    assert rows == [(("RemotePort", p), ("n", n), ("total", "8"), ("most", "3"), ("percent", pct))
                    for p, n, pct in [("22", "2", "25"), ("53", "1", "12.5"), ("80", "1", "12.5")]]


def test_over_no_rows_the_totals_are_one_row() -> None:
    rule = P + "[count(as=groups), sum(n, as=total), min(n, as=least), sort(RemotePort)] " \
               "| select([RemotePort, groups, total, least])"
    rows = assert_agree(rule, [])
    assert rows == [(("RemotePort", None), ("groups", "0"), ("total", "0"), ("least", None))]
    rows = assert_agree(rule, _connections(3389))
    assert rows == [(("RemotePort", "3389"), ("groups", "1"), ("total", "1"), ("least", "1"))]


def test_a_share_threshold_detects_the_rare_ports() -> None:
    rule = P + "[sum(n, as=total), sort(RemotePort, order=asc, limit=20000)] | percent := 100 * (n / total) " \
               "| drop([total]) | percent < 10 | select([RemotePort, n])"
    rows = assert_agree(rule, _connections(*([443] * 30 + [80] * 5 + [22] * 2 + [8080])))
    assert sorted(rows) == [(("RemotePort", "22"), ("n", "2")), (("RemotePort", "8080"), ("n", "1"))]
    assert assert_agree(rule, []) == []  # the row over no events has no n: the threshold drops it


def test_the_oracle_appends_what_appendpipe_gives() -> None:
    spl = 'search * | stats count as c by x | appendpipe [stats count as n | where n=0 | eval c=0 | fields - n]'
    assert run_spl(spl, [{"x": "a"}]) == [{"x": "a", "c": 1}]
    assert run_spl(spl, []) == [{"c": 0}]

"""Aggregations (groupBy(), count(), sum()... and filters on their outputs): lowering and its errors,
each emitter's output for a table of queries, and agreement: the Python matcher (the reference)
and the KQL on duckdb-kql and the SPL on the SPL oracle give the same group rows for the same
events; the KQL passes Kusto.Language and the Sigma correlation rules load in pySigma."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from cqlx import compile_matcher, convert, ir, parse
from cqlx.conversion import convert_text
from cqlx.engines.duckdb_kql import run_kql
from cqlx.engines.sigma_sqlite import run_sigma_correlation
from cqlx.errors import CqlError
from cqlx.profiles import load_profile
from cqlx.reshape import to_records, to_tables
from cqlx.spl_oracle import run_spl
from cqlx.testing import check_kql

P = "#event_simpleName=ProcessRollup2 | "


# ---------------------------------------------------------------- lowering


def test_group_by_defaults() -> None:
    (step,) = parse("groupBy(UserName)").steps
    assert step == ir.Aggregate(("UserName",), (ir.AggFunc("count", None, "_count"),), 20_000)


def test_group_by_functions_and_names() -> None:
    (step, threshold) = parse("groupBy([UserName, ComputerName], function=[count(), sum(RawProcessId), "
                              "min(RawProcessId), max(RawProcessId), avg(RawProcessId), "
                              "count(CommandLine, distinct=true, as=lines)], limit=max) | _count > 5").steps
    assert isinstance(step, ir.Aggregate)
    assert step.keys == ("UserName", "ComputerName") and step.limit == 1_000_000
    assert step.outputs == ("_count", "_sum", "_min", "_max", "_avg", "lines")
    assert step.functions[-1] == ir.AggFunc("count", "CommandLine", "lines", True)
    assert threshold == ir.Filter(ir.Cmp("_count", ">", 5))


def test_standalone_functions_and_test_threshold() -> None:
    assert parse("count()").steps == (ir.Aggregate((), (ir.AggFunc("count", None, "_count"),)),)
    assert parse("sum(Bytes, as=total)").steps == (ir.Aggregate((), (ir.AggFunc("sum", "Bytes", "total"),)),)
    assert parse("groupBy(a) | test(_count >= 3)").steps[1] == ir.Filter(ir.Cmp("_count", ">=", 3))
    assert parse("groupBy(a, function=[])").steps == (ir.Aggregate(("a",), (), 20_000),)


@pytest.mark.parametrize(("text", "words", "column"), [
    ("groupBy()", "groupBy() needs the fields to group by", 1),
    ("groupBy(a, function=lower(x))", "accepted: count(), sum(), min(), max(), avg()", 21),
    ("groupBy(a, function=x)", "takes aggregate functions (count(), sum()", 21),
    ("groupBy(a, function=[count(), count(b)])", "two functions write _count", 31),
    ("groupBy(a, function=count(as=a))", "also groups by; give it another name with as=", 21),
    ("groupBy(a, limit=0)", "limit=0 must be a whole number from 1 to 1,000,000 or max", 18),
    ("groupBy(a, sideways=1)", "has no parameter 'sideways'; accepted: field, function, limit", 12),
    ("sum()", "sum() needs the field to aggregate", 1),
    ("count(distinct=yes)", "distinct=yes is not a boolean; accepted: true, false", 16),
    ("count(distinct=true)", "count(distinct=true) needs the field", 1),
    ("case { a=1 | count() ; * }", "count() aggregates events; it cannot stand inside case { }", 14),
    ("x := count()", "count() does not produce a value", 6),
])
def test_argument_errors(text: str, words: str, column: int) -> None:
    with pytest.raises(CqlError) as caught:
        parse(text)
    assert words in caught.value.message
    assert caught.value.span is not None and caught.value.span.column == column


# ---------------------------------------------------------------- emitters

KQL = [
    ("groupBy(UserName)", "| where isnotempty(AccountName)\n| summarize _count = count() by AccountName"),
    ("groupBy([UserName, RawProcessId]) | _count > 5",
     "| where isnotempty(AccountName) and isnotnull(ProcessId)\n"
     "| summarize _count = count() by AccountName, ProcessId\n| where _count > 5"),
    ("groupBy(UserName, function=[sum(RawProcessId), avg(CommandLine), count(ComputerName, distinct=true, as=hosts)])",
     "| where isnotempty(AccountName)\n| summarize _sum = sum(ProcessId), _avg = avg(todouble(ProcessCommandLine)), "
     "hosts = dcountif(DeviceName, isnotempty(DeviceName)) by AccountName"),
    ("groupBy(UserName, function=count(CommandLine, as=n))",
     "| where isnotempty(AccountName)\n| summarize n = countif(isnotempty(ProcessCommandLine)) by AccountName"),
    ("count()", "| summarize _count = count()"),
    ("groupBy(UserName, function=[])", "| where isnotempty(AccountName)\n| summarize by AccountName"),
    ("groupBy(UserName) | sort(_count, limit=10)",
     "| where isnotempty(AccountName)\n| summarize _count = count() by AccountName\n"
     "| sort by _count desc nulls last\n| take 10"),
]


@pytest.mark.parametrize(("cql", "kql"), KQL)
def test_kql_table(cql: str, kql: str) -> None:
    out = convert(P + cql, to="kql")
    assert out == "DeviceProcessEvents\n" + kql + "\n"
    check_kql(out)


SPL = [
    ("groupBy(ComputerName)", "| stats count as _count by aid_computer_name"),
    ("groupBy([ComputerName, CommandLine]) | _count >= 3",
     "| stats count as _count by aid_computer_name, CommandLine\n| where _count>=3"),
    ("groupBy(ComputerName, function=[sum(RawProcessId), min(RawProcessId), count(CommandLine, distinct=true)])",
     "| eval _cqlx_number1=tonumber(RawProcessId)\n"
     "| stats sum(RawProcessId) as _sum, min(_cqlx_number1) as _min, dc(CommandLine) as _count by aid_computer_name\n"
     "| eval _sum=coalesce(_sum, 0)"),
    ("count(CommandLine, as=n)", "| stats count(CommandLine) as n"),
    ("groupBy(ComputerName, function=[])",
     "| stats count as _cqlx_groups by aid_computer_name\n| fields - _cqlx_groups"),
]


@pytest.mark.parametrize(("cql", "spl"), SPL)
def test_spl_table(cql: str, spl: str) -> None:
    out = convert(P + cql, to="spl")
    assert out == 'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(ProcessRollup2)\n' + spl + "\n"


CQL = [
    ("groupBy([UserName])", "groupBy(UserName)"),
    ("groupby(UserName, function=[count()], limit=20000)", "groupBy(UserName)"),
    ("groupBy([a, b], function=[count(as=n), sum(x)], limit=max) | n > 5",
     "groupBy([a, b], function=[count(as=n), sum(x)], limit=1000000)\n| n > 5"),
    ("count(aid, distinct=true)", "count(aid, distinct=true)"),
    ('groupBy("host name", function=[])', 'groupBy("host name", function=[])'),
    ("groupBy(a) | test(_count >= 2)", "groupBy(a)\n| _count >= 2"),
]


@pytest.mark.parametrize(("cql", "canonical"), CQL)
def test_cql_table(cql: str, canonical: str) -> None:
    conversion = convert_text(cql, "cql")
    assert conversion.output == canonical + "\n" and not conversion.diagnostics


def _sigma(cql: str) -> tuple[list[dict[str, Any]], list[str]]:
    conversion = convert_text(P + cql, "sigma", policy="warn")
    return list(yaml.safe_load_all(conversion.output)), [d.describe() for d in conversion.diagnostics]


SIGMA = [
    ("groupBy([UserName, ComputerName]) | _count > 5", {"type": "event_count", "group-by": ["User", "Computer"],
                                                         "timespan": "1h", "condition": {"gte": 6}}),
    ("groupBy(UserName) | _count >= 2.5", {"type": "event_count", "group-by": ["User"], "timespan": "1h",
                                           "condition": {"gte": 3}}),
    ("groupBy(UserName) | _count < 4", {"type": "event_count", "group-by": ["User"], "timespan": "1h",
                                        "condition": {"lte": 3}}),
    ("groupBy(UserName)", {"type": "event_count", "group-by": ["User"], "timespan": "1h", "condition": {"gte": 1}}),
    ("groupBy(SHA256HashData, function=count(ComputerName, distinct=true, as=hosts)) | hosts >= 10",
     {"type": "value_count", "group-by": ["sha256"], "timespan": "1h", "condition": {"field": "Computer", "gte": 10}}),
    ("count() | _count > 100", {"type": "event_count", "timespan": "1h", "condition": {"gte": 101}}),
]


@pytest.mark.parametrize(("cql", "expected"), SIGMA)
def test_sigma_correlation_table(cql: str, expected: dict[str, Any]) -> None:
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule

    rules, diagnostics = _sigma("CommandLine = *whoami* | " + cql)
    base, correlation = rules
    assert correlation["correlation"] == {**expected, "rules": [base["id"]]} or \
        correlation["correlation"] == {"type": expected["type"], "rules": [base["id"]], **expected}
    assert base["detection"]["selection"] == {"CommandLine|contains|cased": "whoami"}
    assert any("timespan 1h" in d and d.startswith("presentation") for d in diagnostics)
    assert not any(d.startswith("detection") for d in diagnostics)
    collection = SigmaCollection.from_yaml(convert_text(P + "CommandLine = *whoami* | " + cql, "sigma").output)
    collection.resolve_rule_references()
    loaded = [r for r in collection if isinstance(r, SigmaCorrelationRule)]
    assert len(loaded) == 1 and loaded[0].rules[0].rule.id is not None


@pytest.mark.parametrize(("cql", "why"), [
    ("groupBy(UserName) | UserName = root", "not one threshold on a count"),
    ("groupBy(UserName, function=sum(RawProcessId)) | _sum > 5", "not one threshold on a count"),
    # count(f) counts the events that have f: a group whose events all lack it has 0, and no event
    # in the base rule (which keeps only events with f) to compare
    ("groupBy(UserName, function=count(CommandLine)) | _count < 5", "not one threshold on a count"),
    ("groupBy(UserName, function=count(CommandLine)) | _count != 2", "not one threshold on a count"),
    ("groupBy(UserName, function=count(CommandLine)) | _count >= 0", "not one threshold on a count"),
    ("count() | _count < 5", "not one threshold on a count"),  # LogScale: a 0 row; a correlation: nothing
    ("count() | _count >= 0", "not one threshold on a count"),
    ("count()", "without keys or a threshold, the aggregation gives a row even when no event matches"),
    ("max(RawProcessId)", "without keys or a threshold"),
    ("x := lower(UserName) | groupBy(x)", "groups by x, which it computes"),
])
def test_sigma_refuses_what_a_correlation_cannot_say(cql: str, why: str) -> None:
    _, diagnostics = _sigma("CommandLine = *whoami* | " + cql)
    assert any(d.startswith("detection") and why in d for d in diagnostics), diagnostics


def _correlated(cql: str, events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The groups the Sigma correlation of ``cql`` fires for on pySigma's sqlite backend, over
    ``events`` in one time window: each group's key and the number of events it counted."""
    sigma = convert_text(P + cql, "sigma").output
    group_by = list(yaml.safe_load_all(sigma))[1]["correlation"].get("group-by", [])
    records = [r for r in to_records(events, load_profile("sigma")) if r is not None]
    return sorted((*(records[alert[0]].get(column) for column in group_by), len(alert))
                  for alert in run_sigma_correlation(sigma, records))


@pytest.mark.parametrize(("cql", "key", "output"), [
    ("groupBy(UserName, function=count(RawProcessId, as=with_pid)) | with_pid >= 2", "UserName", "with_pid"),
    ("groupBy(UserName, function=count(RawProcessId, as=with_pid)) | with_pid > 1", "UserName", "with_pid"),
    ("groupBy(UserName, function=count(RawProcessId, as=with_pid)) | test(with_pid == 1)", "UserName", "with_pid"),
    ("groupBy(ComputerName, function=[count(RawProcessId, as=n), collect(UserName)]) | test(n > 2)",
     "ComputerName", "n"),
])
def test_a_count_of_a_field_is_a_correlation_of_the_events_that_have_it(cql: str, key: str, output: str) -> None:
    """count(f) counts the events that have f: the base rule keeps those (``f|exists``), and the
    correlation's groups are the matcher's (events 8 and 11 have no RawProcessId: they count in no
    group, and svc and db-01 have one event fewer). Event 6's user, Root, is left out: the sqlite
    backend groups it with root (SQLite's lower()), where LogScale keeps letter case apart, as the
    conversion warns."""
    base, _ = yaml.safe_load_all(convert_text(P + cql, "sigma").output)
    assert base["detection"]["selection"]["ProcessId|exists"] is True
    events = [*(e for e in EVENTS if e.get("UserName") != "Root"), _event(10, "svc", "db-01", RawProcessId="3"),
              _event(11, "dev", "db-01")]
    expected = sorted((row[key], int(row[output])) for row in compile_matcher(P + cql).run(events))
    assert expected and _correlated(cql, events) == expected


# ---------------------------------------------------------------- agreement on real engines


def _event(n: int, user: str | None, host: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"#event_simpleName": "ProcessRollup2", "ComputerName": host,
                             "ImageFileName": "/usr/bin/ssh", "CommandLine": f"ssh -p {n} x", **fields}
    if user is not None:
        event["UserName"] = user
    return event


EVENTS = [
    _event(1, "root", "web-01", RawProcessId="100"),
    _event(2, "root", "web-01", RawProcessId="250"),
    _event(3, "root", "web-02", RawProcessId="7"),
    _event(4, "dev", "web-01", RawProcessId="42"),
    _event(5, "dev", "web-01", RawProcessId="42"),
    _event(6, "Root", "web-03", RawProcessId="9"),  # another group: keys are case-sensitive
    _event(7, None, "web-01", RawProcessId="5"),  # no UserName: in no group
    _event(8, "svc", "db-01"),  # no RawProcessId: counted, no number
    _event(9, "root", "web-01", RawProcessId="1", ImageFileName="/bin/bash"),
]

AGREEMENT = [
    "groupBy(UserName)",
    "groupBy([UserName, ComputerName])",
    "groupBy(UserName) | _count >= 3",
    "groupBy(UserName) | _count > 10",
    "groupBy(UserName) | test(_count < 2)",
    "ImageFileName = /ssh$/ | groupBy([UserName, ComputerName]) | _count > 1",
    "groupBy(UserName, function=[count(), sum(RawProcessId), min(RawProcessId), max(RawProcessId)])",
    "groupBy(UserName, function=avg(RawProcessId))",
    "groupBy(ComputerName, function=count(UserName, distinct=true, as=users)) | users >= 2",
    "groupBy(ComputerName, function=count(RawProcessId, as=with_pid))",
    "groupBy(UserName, function=[])",
    "count()",
    "UserName = nobody | count()",
    "count(UserName, distinct=true)",
    "groupBy(UserName) | sort(_count, order=asc, limit=2) | select([UserName, _count])",
]


def _canon(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return round(float(value), 9)
    return str(value)


def _rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row's values in column order (keys, then outputs, in every engine), without the
    values a group has none of: the matcher leaves them out, KQL has a null column (NaN for an
    avg of nothing, in duckdb-kql)."""
    return sorted((tuple(_canon(v) for v in row.values() if v is not None and v == v) for row in rows), key=repr)


def _reference(cql: str, events: list[dict[str, Any]] = EVENTS) -> list[tuple[Any, ...]]:
    return _rows(compile_matcher(P + cql).run(events))


@pytest.mark.parametrize("cql", AGREEMENT)
def test_kql_agrees_with_the_reference(cql: str) -> None:
    kql = convert(P + cql, to="kql")
    check_kql(kql)
    rows = run_kql(kql, to_tables(EVENTS, load_profile("mde")))
    assert _rows(rows) == _reference(cql)


@pytest.mark.parametrize("cql", AGREEMENT)
def test_spl_agrees_with_the_reference(cql: str) -> None:
    # profile splunk maps UserName to UserSid (detection loss): the oracle runs the same rule on
    # ComputerName and CommandLine instead, which raw FDR has.
    cql = cql.replace("UserName", "CommandLine")
    spl = convert(P + cql, to="spl")
    records = [r for r in to_records(EVENTS, load_profile("splunk")) if r is not None]
    rows = run_spl(spl, [{**r, "sourcetype": "crowdstrike:events:sensor"} for r in records])
    assert _rows(rows) == _reference(cql)


def test_the_agreement_table_is_not_trivial() -> None:
    sizes = [len(_reference(cql)) for cql in AGREEMENT]
    assert 0 in sizes and max(sizes) >= 4 and len(set(sizes)) >= 4


def test_a_sorted_aggregation_keeps_its_order() -> None:
    cql = "groupBy(ComputerName) | sort(_count, limit=2)"
    kql_rows = run_kql(convert(P + cql, to="kql"), to_tables(EVENTS, load_profile("mde")))
    assert [r["_count"] for r in kql_rows] == [r["_count"] for r in compile_matcher(P + cql).run(EVENTS)] == [6, 1]


# ---------------------------------------------------------------- the matcher


def test_match_is_the_first_row_of_run_on_one_event() -> None:
    matcher = compile_matcher(P + "groupBy(UserName) | _count > 1")
    assert matcher.match(EVENTS[0]) is None  # one event is a group of one
    assert compile_matcher(P + "groupBy(UserName)").match(EVENTS[0]) == {"UserName": "root", "_count": 1}
    assert compile_matcher(P + "UserName = x | count()").match(EVENTS[0]) == {"_count": 0}
    assert matcher.fields == ("UserName", "_count")


def test_groups_beyond_the_limit_are_left_out() -> None:
    rows = compile_matcher(P + "groupBy(CommandLine, limit=3)").run(EVENTS)
    assert [r["CommandLine"] for r in rows] == ["ssh -p 1 x", "ssh -p 2 x", "ssh -p 3 x"]


def test_the_saved_module_aggregates(tmp_path: Any) -> None:
    import importlib.util

    source = convert(P + "groupBy(UserName) | _count >= 3", to="python")
    path = tmp_path / "rule.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("cqlx_aggregate_rule", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.run(iter(EVENTS)) == [{"UserName": "root", "_count": 4}]


def test_ecs_events_are_grouped_under_the_rule_names() -> None:
    from cqlx import compile_matcher as compile_

    events = [{"event": {"category": "process", "type": "start"}, "user": {"name": n}, "host": {"name": "h"}}
              for n in ("a", "a", "b")]
    matcher = compile_(P + "groupBy(UserName)", profile="ecs")
    assert sorted(matcher.run(events), key=repr) == [{"UserName": "a", "_count": 2}, {"UserName": "b", "_count": 1}]

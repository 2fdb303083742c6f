"""The aggregation and row-limiting family: collect(), selectLast(), selectFromMax()/selectFromMin(),
stats(), top(), bucket()/timeChart(), head()/tail() and groupBy() over them (nested groupBy()
included). Lowering and its errors, what stays opaque, each emitter's output for a table of queries,
the loss each target reports, and agreement: the Python matcher (the reference), the KQL on
duckdb-kql and the SPL on the SPL oracle give the same rows for the same events (with times)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cqlx import compile_matcher, convert, ir, parse
from cqlx.conversion import convert_text
from cqlx.emit.base import DETECTION, PRESENTATION
from cqlx.errors import CqlError, CqlValueError
from cqlx.testing import check_kql
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 | "
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z in epoch ms
C = ir.AggFunc("count", None, "_count")


# ---------------------------------------------------------------- lowering

LOWERING = [
    ("collect(CommandLine)", (ir.Aggregate((), (ir.AggFunc("collect", "CommandLine", "CommandLine", limit=2000),)),)),
    ('collect([a, b], limit=5, separator=", ")',
     (ir.Aggregate((), (ir.AggFunc("collect", "a", "a", limit=5, separator=", "),
                        ir.AggFunc("collect", "b", "b", limit=5, separator=", "))),)),
    ("groupBy(aid, function=[count(), selectLast([UserName, ComputerName])])",
     (ir.Aggregate(("aid",), (C, ir.AggFunc("selectLast", "UserName", "UserName"),
                              ir.AggFunc("selectLast", "ComputerName", "ComputerName")), 20_000),)),
    ("groupBy(aid, function=selectFromMax(@timestamp, include=[CommandLine, @timestamp]))",
     (ir.Aggregate(("aid",), (ir.AggFunc("selectFromMax", "CommandLine", "CommandLine", by="@timestamp"),
                              ir.AggFunc("selectFromMax", "@timestamp", "@timestamp", by="@timestamp")), 20_000),)),
    ("selectFromMin(field=n, include=x)", (ir.Aggregate((), (ir.AggFunc("selectFromMin", "x", "x", by="n"),)),)),
    ("stats([count(), max(n)])", (ir.Aggregate((), (C, ir.AggFunc("max", "n", "_max"))),)),
    ("stats()", (ir.Aggregate((), (C,)),)),
    # groupBy() as groupBy()'s only function: the rows of one groupBy over both keys
    ("groupBy(a, function=groupBy(b, function=max(n)))", (ir.Aggregate(("a", "b"), (ir.AggFunc("max", "n", "_max"),),
                                                                       20_000),)),
    ("top(ImageFileName)", (ir.Aggregate(("ImageFileName",), (C,)), ir.Order((ir.SortKey("_count"),), 10))),
    ("top([a, b], sum=n, as=total, percent=true, limit=3)",
     (ir.Aggregate(("a", "b"), (ir.AggFunc("sum", "n", "total"), ir.AggFunc("percent", "n", "percent"))),
      ir.Order((ir.SortKey("total"),), 3))),
    ("top(a, max=n)", (ir.Aggregate(("a",), (ir.AggFunc("max", "n", "_max"),)), ir.Order((ir.SortKey("_max"),), 10))),
    ("head(5)", (ir.Order((ir.SortKey("@timestamp", False),), 5, origin="head"),)),
    ("tail()", (ir.Order((ir.SortKey("@timestamp", True),), 200, origin="tail"),)),
    ("head(0)", (ir.Filter(ir.Not(ir.TrueP())),)),
    ("timeChart(span=15m)", (ir.Eval("_bucket", ir.Func("timebucket", (ir.Ref("@timestamp"), ir.Lit(900_000)))),
                             ir.Aggregate(("_bucket",), (C,)))),
    ("timeChart(ComputerName, span=1h, function=count(as=n), limit=3, timezone=UTC)",
     (ir.Eval("_bucket", ir.Func("timebucket", (ir.Ref("@timestamp"), ir.Lit(3_600_000), ir.Lit("UTC")))),
      ir.Aggregate(("_bucket", "ComputerName"), (ir.AggFunc("count", None, "n"),), series_limit=3))),
    ("bucket(span=90s, field=[a, b])", (ir.Eval("_bucket", ir.Func("timebucket", (ir.Ref("@timestamp"),
                                                                                  ir.Lit(90_000)))),
                                        ir.Aggregate(("_bucket", "a", "b"), (C,), series_limit=10))),
    ('bucket("1day")', (ir.Eval("_bucket", ir.Func("timebucket", (ir.Ref("@timestamp"), ir.Lit(86_400_000)))),
                        ir.Aggregate(("_bucket",), (C,)))),
]


@pytest.mark.parametrize(("text", "steps"), LOWERING)
def test_lowering(text: str, steps: tuple[ir.Step, ...]) -> None:
    assert parse(text).steps == steps


def test_a_time_zone_dependent_bucket_is_noted() -> None:
    assert any("aligns them to UTC" in note for _, note in parse("timeChart(span=1h)").notes)
    assert not parse("timeChart(span=1h, timezone=UTC)").notes
    assert not parse("timeChart(span=5m)").notes  # every zone's offset is a multiple of 15 minutes


@pytest.mark.parametrize(("text", "words", "column"), [
    ("collect()", "collect() needs fields=[...]", 1),
    ("collect(x, limit=0)", "limit=0 must be a whole number from 1", 18),
    ("collect(x, multival=maybe)", "multival=maybe is not a boolean", 21),
    ("selectFromMax(field=x)", "selectFromMax() needs include=[...]", 1),
    ("selectFromMin(include=[x])", "selectFromMin() needs the field whose value picks the event", 1),
    ("selectLast([])", "selectLast() needs fields=[...]", 1),
    ("groupBy(a, function=[collect(b), selectLast(b)])", "two functions write b", 34),
    ("top(a, sum=x, max=y)", "top() takes sum= or max=, not both", 1),
    ("top(a, limit=0)", "limit=0 must be a whole number from 1", 14),
    ("top(a, as=a)", "count() writes a, which the aggregation also groups by; give it another name with as=", 1),
    ("top([a, a])", "top() names a field twice", 5),
    ("stats(function=[])", "stats() needs at least one aggregate function", 1),
    ("timeChart(span=soon)", "span=soon is not a time span", 16),
    ("timeChart(_bucket, span=1h)", "names _bucket or a field twice", 11),
    ("timeChart(x, span=1h, limit=501)", "limit=501 must be a whole number from 1 to 500", 29),
    ("head(limit=x)", "limit=x must be a whole number", 12),
    ("tail(x)", "limit=x must be a whole number", 6),
    ("groupBy(a, function=groupBy(a))", "the inner groupBy() groups by a field the outer one also groups by", 21),
    ("case { a=1 | collect(x) ; * }", "collect() aggregates events; it cannot stand inside case { }", 14),
    # a stage in square brackets is stats()
    ("x=1 | [a, b]", "stats(function=...) takes aggregate functions", 8),
    ("x=1 | [count()", "expected a closing ']', found the end of the query", 15),
    ("x=1 | []", "stats() needs at least one aggregate function", 7),
])
def test_argument_errors(text: str, words: str, column: int) -> None:
    with pytest.raises(CqlError) as caught:
        parse(text)
    assert words in caught.value.message
    assert caught.value.span is not None and caught.value.span.column == column


@pytest.mark.parametrize(("text", "reason"), [
    ("collect(x, multival=false)", "makes a row of each value"),
    ("timeChart()", "sizes its buckets by the search's time range"),
    ("timeChart(x, span=auto)", "sizes its buckets by the search's time range"),
    ("bucket(buckets=10)", "divides the search's time range"),
    ("timeChart(span=1h, minSpan=5m)", "bounds a bucket size"),
    ("timeChart(span=1h, unit=1/s)", "converts rates"),
    ("bucket(span=1w)", "spans that divide a day"),
    ("bucket(span=7h)", "spans that divide a day"),
    ('timeChart(span=1h, timezone="Asia/Kolkata")', "aligns buckets of this span to that time zone"),
    ("top(a, rest=others)", "adds a row that counts the other values"),
    ("top(a, max=n, percent=true)", "percentage of a maximum"),
    ("groupBy(a, function=[count(), groupBy(b)])", "a Cartesian product"),
    ("groupBy(a, function=percentile(x))", "percentile"),
])
def test_what_stays_opaque(text: str, reason: str) -> None:
    (step,) = parse(text).steps
    assert isinstance(step, ir.Opaque) and step.effect == ir.AGGREGATES and reason in step.reason
    assert step.text == text


# ---------------------------------------------------------------- emitters

KQL = [
    ("groupBy(UserName, function=collect(ComputerName))",
     "| where isnotempty(AccountName)\n| summarize ComputerName = make_set(DeviceName, 2000) by AccountName\n"
     "| extend ComputerName = array_sort_asc(ComputerName)\n"
     '| extend ComputerName = strcat_array(iff(tostring(ComputerName[0]) == "", array_slice(ComputerName, 1, -1), '
     'ComputerName), "\\n")\n| project AccountName, ComputerName'),
    ("groupBy(ComputerName, function=selectLast(UserName))",
     "| where isnotempty(DeviceName)\n"
     "| extend _cqlx_pick1 = iff(isnotempty(AccountName), Timestamp, datetime(null)), _cqlx_value1_1 = AccountName\n"
     "| summarize arg_max(_cqlx_pick1, _cqlx_value1_1) by DeviceName\n"
     '| extend UserName = iff(isnull(_cqlx_pick1), "", _cqlx_value1_1)\n| project DeviceName, UserName'),
    ("selectFromMin(RawProcessId, include=[CommandLine])",
     "| extend _cqlx_pick1 = ProcessId, _cqlx_value1_1 = ProcessCommandLine\n"
     "| summarize arg_min(_cqlx_pick1, _cqlx_value1_1)\n"
     '| extend CommandLine = iff(isnull(_cqlx_pick1), "", _cqlx_value1_1)\n'
     "| project CommandLine\n| where isnotempty(CommandLine)"),
    ("top(ComputerName, limit=3)",
     "| where isnotempty(DeviceName)\n| summarize _count = count() by DeviceName\n"
     "| sort by _count desc nulls last\n| take 3"),
    ("timeChart(span=1h, timezone=UTC)",
     "| extend _bucket = tolong((bin(Timestamp, 1h) - datetime(1970-01-01)) / 1ms)\n"
     "| where isnotnull(_bucket)\n| summarize _count = count() by _bucket"),
    ("tail(20)", "| sort by Timestamp desc nulls last\n| take 20"),
    ("stats([count(), avg(RawProcessId)])", "| summarize _count = count(), _avg = avg(ProcessId)"),
]


@pytest.mark.parametrize(("cql", "kql"), KQL)
def test_kql_table(cql: str, kql: str) -> None:
    out = convert(P + cql, to="kql")
    assert out == "DeviceProcessEvents\n" + kql + "\n"
    check_kql(out)


SPL = [
    ("groupBy(ComputerName, function=collect(CommandLine))",
     "| stats values(CommandLine) as CommandLine by aid_computer_name\n"
     '| eval CommandLine=mvjoin(CommandLine, urldecode("%0A"))'),
    ('collect(CommandLine, separator=", ")',
     '| stats values(CommandLine) as CommandLine\n| eval CommandLine=mvjoin(CommandLine, ", ")\n'
     "| where isnotnull(CommandLine)"),
    ("groupBy(ComputerName, function=selectLast(CommandLine))",
     "| stats latest(CommandLine) as CommandLine by aid_computer_name"),
    ("groupBy(ComputerName, function=selectFromMax(RawProcessId, include=[CommandLine, ParentBaseFileName]))",
     "| eval _cqlx_pick1=tonumber(RawProcessId)\n"
     "| eventstats max(_cqlx_pick1) as _cqlx_best1 by aid_computer_name\n"
     "| eval _cqlx_value1_1=if(_cqlx_pick1==_cqlx_best1, CommandLine, null()), "
     "_cqlx_value1_2=if(_cqlx_pick1==_cqlx_best1, ParentBaseFileName, null())\n"
     "| stats first(_cqlx_value1_1) as CommandLine, first(_cqlx_value1_2) as ParentBaseFileName by aid_computer_name"),
    ("top(CommandLine, percent=true)",
     "| stats count as _count, count as percent by CommandLine\n"
     "| eventstats sum(percent) as _cqlx_total\n"
     "| eval percent=if(_cqlx_total>0, percent*100/_cqlx_total, null())\n| fields - _cqlx_total\n"
     "| sort 10 -num(_count)"),
    ("timeChart(span=1h, timezone=UTC)",
     "| eval _bucket=coalesce(floor(_time/3600)*3600000, _bucket)\n| stats count as _count by _bucket"),
    ("bucket(span=250ms, timezone=UTC)",
     "| eval _bucket=coalesce(floor(_time*1000/250)*250, _bucket)\n| stats count as _count by _bucket"),
    ("head(5)", "| sort 5 +num(_time)"),
]


@pytest.mark.parametrize(("cql", "spl"), SPL)
def test_spl_table(cql: str, spl: str) -> None:
    out = convert(P + cql, to="spl")
    assert out == 'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(ProcessRollup2)\n' + spl + "\n"


CQL = [
    ("collect(CommandLine)", "collect([CommandLine])"),
    ('groupBy(aid, function=[count(), collect([a, b], limit=5, separator=", "), selectLast(c)])',
     'groupBy(aid, function=[count(), collect([a, b], limit=5, separator=", "), selectLast([c])])'),
    ("groupBy(aid, function=selectFromMax(@timestamp, include=[x, @timestamp]))",
     "groupBy(aid, function=selectFromMax(@timestamp, include=[x, @timestamp]))"),
    ("stats([count(), max(n)])", "stats([count(), max(n)])"),
    ("top(ImageFileName)", "top(ImageFileName)"),
    ("top([a, b], percent=true, sum=n, limit=3, as=total)", "top([a, b], sum=n, as=total, percent=true, limit=3)"),
    ("top(a, max=n) | _max > 3", "top(a, max=n)\n| _max > 3"),
    ("head(5) | tail()", "head(5)\n| tail()"),
    ("timeChart(ComputerName, span=60m, function=count(as=n), limit=3, timezone=utc)",
     "bucket(span=1h, timezone=UTC, field=ComputerName, function=count(as=n), limit=3)"),
    ("bucket(span=90s)", "bucket(span=90s)"),
    ("groupBy(a, function=groupBy(b))", "groupBy([a, b])"),
]


@pytest.mark.parametrize(("cql", "canonical"), CQL)
def test_cql_table(cql: str, canonical: str) -> None:
    conversion = convert_text(cql, "cql")
    assert conversion.output == canonical + "\n" and not conversion.diagnostics


def _diagnostics(cql: str, target: str) -> list[tuple[str, str]]:
    return [(d.kind, d.message) for d in convert_text(P + cql, target, policy="ignore").diagnostics]


@pytest.mark.parametrize(("cql", "target", "kind", "words"), [
    # Which series timeChart() keeps: what a later filter sees, else only what is shown.
    ("timeChart(ComputerName, span=1h, timezone=UTC)", "kql", PRESENTATION, "keeps every series"),
    ("timeChart(ComputerName, span=1h, timezone=UTC) | _count > 3", "spl", DETECTION, "keeps every series"),
    ("top(ComputerName, percent=true)", "kql", PRESENTATION, "top(percent=true)"),
    ("top(ComputerName, percent=true) | percent > 50", "kql", DETECTION, "top(percent=true)"),
    ("collect(CommandLine, limit=3)", "spl", PRESENTATION, "values() keeps every value"),
    # A time shown as the target's time type: the format differs, the rows do not.
    ("selectFromMax(@timestamp, include=[@timestamp])", "kql", PRESENTATION, "shown as a KQL datetime"),
    ("selectFromMax(@timestamp, include=[@timestamp])", "spl", PRESENTATION, "shown as Splunk's _time"),
    ("groupBy(ComputerName) | tail(1)", "spl", PRESENTATION, "tail() on rows without a time"),
    ("groupBy(ComputerName) | head(1)", "kql", PRESENTATION, "head() on rows without a time"),
])
def test_loss_each_target_reports(cql: str, target: str, kind: str, words: str) -> None:
    found = [(k, m) for k, m in _diagnostics(cql, target) if words in m]
    assert found and {k for k, _ in found} == {kind}, _diagnostics(cql, target)


@pytest.mark.parametrize("cql", [
    "groupBy(ComputerName, function=[count(), collect(CommandLine), selectLast(UserName)])",
    "groupBy(ComputerName, function=selectFromMax(RawProcessId, include=[CommandLine, ParentBaseFileName]))",
    "top([ComputerName, UserName], limit=5)",
    "timeChart(span=5m) | _count > 10",
    "head(10) | select([ComputerName, CommandLine])",
    "collect([CommandLine, ComputerName])",
])
def test_kql_and_spl_convert_without_detection_loss(cql: str) -> None:
    for target in ("kql", "spl"):
        assert not [m for k, m in _diagnostics(cql, target) if k == DETECTION and "UserSid" not in m], target
    check_kql(convert(P + cql, to="kql"))


def _sigma(cql: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    conversion = convert_text(P + "CommandLine = *whoami* | " + cql, "sigma", policy="ignore")
    return list(yaml.safe_load_all(conversion.output)), [(d.kind, d.message) for d in conversion.diagnostics]


def test_sigma_counts_groups_and_shows_the_rest_in_the_description() -> None:
    rules, diagnostics = _sigma("groupBy(ComputerName, function=[count(), collect(UserName)]) | _count > 4")
    assert rules[1]["correlation"]["condition"] == {"gte": 5}
    assert rules[1]["correlation"]["group-by"] == ["Computer"]
    assert (PRESENTATION, "Sigma cannot say this (the rule outputs UserName per group); written into the "
                          "description") in diagnostics
    assert not [m for k, m in diagnostics if k == DETECTION]


@pytest.mark.parametrize(("cql", "words"), [
    ("timeChart(span=5m) | _count > 10", "groups by _bucket, which it computes"),
    ("collect(UserName)", "give a row only when an event has the field"),
    ("groupBy(ComputerName, function=collect(UserName)) | UserName = /root/", "not one threshold on a count"),
])
def test_sigma_refuses_what_a_correlation_cannot_say(cql: str, words: str) -> None:
    _, diagnostics = _sigma(cql)
    assert any(k == DETECTION and words in m for k, m in diagnostics), diagnostics


def test_explain_describes_the_family() -> None:
    from cqlx.explain import explain

    text = explain(parse(P + "timeChart(ComputerName, span=1h, timezone=UTC) | groupBy(x, function=[collect(y), "
                         "selectFromMax(n, include=[z]), selectLast(w)]) | top(a, percent=true) | tail(3)"))
    assert "_bucket := the start of the 1h bucket of @timestamp (epoch ms, UTC)" in text
    assert "keeps the 10 series with the largest values" in text
    assert 'y = the distinct values of y (up to 2000), sorted, joined by "\\n"' in text
    assert "z = z of the event with the largest n" in text and "w = w of the most recent event that has it" in text
    assert "percent = the group's share of every group's count, in %" in text
    assert "Keep the 3 newest events by @timestamp (tail())" in text


# ---------------------------------------------------------------- agreement on real engines


def _event(minute: int, host: str, command: str, **fields: Any) -> dict[str, Any]:
    return {"#event_simpleName": "ProcessRollup2", "timestamp": str(T0 + minute * 60_000), "ComputerName": host,
            "CommandLine": command, **fields}


EVENTS = [
    _event(0, "web-01", "ssh a", RawProcessId="40", ParentBaseFileName="bash"),
    _event(3, "web-01", "ssh b", RawProcessId="7", ParentBaseFileName="sshd"),
    _event(7, "web-02", "curl x", RawProcessId="90", ParentBaseFileName="bash"),
    _event(12, "web-01", "ssh a", RawProcessId="12"),
    _event(16, "web-02", "curl y", RawProcessId="5", ParentBaseFileName="cron"),
    _event(21, "db-01", "psql", ParentBaseFileName="bash"),  # no RawProcessId
    _event(29, "web-01", "wget z", RawProcessId="300", ParentBaseFileName="python"),
    _event(33, "web-03", "ssh c", RawProcessId="8", ParentBaseFileName="sshd"),
    _event(47, "web-01", "ssh b", RawProcessId="61", ParentBaseFileName="sshd"),
    {"#event_simpleName": "ProcessRollup2", "timestamp": str(T0 + 50 * 60_000), "ComputerName": "web-02",
     "RawProcessId": "3"},  # no CommandLine
]

AGREEMENT = [
    "groupBy(ComputerName, function=collect(CommandLine))",
    'groupBy(ComputerName, function=collect([CommandLine, ParentBaseFileName], separator=" | "))',
    "collect(ParentBaseFileName)",
    "groupBy(ComputerName, function=[count(), collect(CommandLine)]) | CommandLine = /ssh a/ | _count >= 2",
    "groupBy(ComputerName, function=selectLast([CommandLine, ParentBaseFileName]))",
    "selectLast(RawProcessId)",
    "groupBy(ComputerName, function=selectFromMax(RawProcessId, include=[CommandLine, ParentBaseFileName]))",
    "groupBy(ComputerName, function=selectFromMin(RawProcessId, include=[CommandLine]))",
    "selectFromMax(RawProcessId, include=[ComputerName])",
    "CommandLine = nothing | selectFromMax(RawProcessId, include=[ComputerName])",
    "stats([count(), max(RawProcessId), collect(ComputerName)])",
    "top(ComputerName, limit=2)",
    "top([ComputerName, ParentBaseFileName], sum=RawProcessId, as=total, limit=3)",
    "top(ComputerName, max=RawProcessId) | _max > 50",
    "groupBy(ComputerName, function=groupBy(ParentBaseFileName, function=count(as=n)))",
    "timeChart(span=15m) | select([_bucket, _count])",
    "bucket(span=10m, timezone=UTC, function=[count(), collect(ComputerName)]) | _count >= 2",
    "head(3) | select([ComputerName, CommandLine])",
    "tail(2) | select([ComputerName, CommandLine])",
    "ComputerName = web-01 | tail(limit=3) | select([CommandLine])",
    "groupBy(ComputerName, function=[count(@timestamp), selectLast([CommandLine, @timestamp])])",
]

# The event time read as a number first (KQL computes it from the table's datetime column, once):
# the aggregations after it still order and bucket the events by that column. The events carry
# @timestamp, as LogScale's export does.
TIME_READ = [
    "groupBy(ComputerName, function=[count(@timestamp), selectLast([CommandLine, @timestamp])])",
    "Minute := @timestamp / 60000 | bucket(span=10m, timezone=UTC, function=[count(), max(Minute)])",
    "Minute := @timestamp / 60000 | groupBy(ComputerName, function=selectFromMax(@timestamp, include=[Minute]))",
    "Minute := @timestamp / 60000 | tail(2) | select([ComputerName, Minute])",
    "Minute := @timestamp / 60000 | groupBy(ComputerName, function=selectLast(Minute))",
]


@pytest.mark.parametrize("cql", AGREEMENT)
def test_engines_agree(cql: str) -> None:
    rows = assert_agree(P + cql, EVENTS)
    assert rows or "nothing" in cql


@pytest.mark.parametrize("cql", TIME_READ)
def test_engines_agree_after_the_event_time_is_read_as_a_number(cql: str) -> None:
    events = [{**e, "@timestamp": e["timestamp"]} for e in EVENTS]
    rows = assert_agree(P + cql, events)
    assert rows and all(None not in dict(row).values() for row in rows)
    assert not convert_text(P + cql, "kql").diagnostics  # exact: no time shown otherwise, none lost


@pytest.mark.parametrize("cql", [*TIME_READ, "@timestamp > 0 | select([ComputerName])",
                                 "Minute := @timestamp / 60000 | Minute < 0 | select([ComputerName])"])
def test_engines_agree_on_the_event_time_of_raw_fdr_events(cql: str) -> None:
    # Raw FDR has no @timestamp: SPL reads the time from _time, KQL from Timestamp, the matcher from
    # timestamp (it read nothing there before, and refused every event of the filter).
    assert "@timestamp" not in EVENTS[0]
    rows = assert_agree(P + cql, EVENTS)
    assert bool(rows) != ("< 0" in cql)


def test_the_matcher_shows_the_event_time_of_raw_fdr_events() -> None:
    # select() and table() of @timestamp show raw FDR's timestamp, as every other reading of it does
    rows = _run("select([ComputerName, @timestamp])")
    assert rows and [r["@timestamp"] for r in rows] == [e["timestamp"] for e in EVENTS
                                                         if e.get("#event_simpleName") == "ProcessRollup2"]
    written = _run("@timestamp := 5 | select([@timestamp])")  # a field the rule wrote is that value
    assert {r["@timestamp"] for r in written} == {5}


def test_a_score_sums_its_own_signal_when_the_flag_is_written_again() -> None:
    # S0 written again (as a weight) after the score: the score still reads the first S0's weight;
    # every target summed the later one (fuzz seed 218).
    cql = P + ('S0 := if(ComputerName = "web-01", "YES", "NO") | S0W := if(ComputerName = "web-01", 1, 0) '
               "| Score := S0W | S0 := if(ParentBaseFileName = bash, 3, 0) | select([ComputerName, Score, S0])")
    rows = [dict(r) for r in assert_agree(cql, EVENTS)]
    assert {r["ComputerName"]: r["Score"] for r in rows} == {"web-01": "1", "web-02": "0", "web-03": "0", "db-01": "0"}
    assert {r["S0"] for r in rows} == {"0", "3"}


def test_top_percent_agrees_on_spl() -> None:
    rows = assert_agree(P + "top(ParentBaseFileName, percent=true)", EVENTS, engines=("spl",))
    assert {dict(r)["ParentBaseFileName"]: dict(r)["percent"] for r in rows}["bash"] == "37.5"  # 3 of 8 events


def test_a_sorted_top_keeps_its_order() -> None:
    rows = assert_agree(P + "top(ComputerName, sum=RawProcessId, limit=3)", EVENTS, ordered=True)
    assert [dict(r)["_sum"] for r in rows] == ["420", "98", "8"]


def test_the_agreement_table_is_not_trivial() -> None:
    sizes = [len(compile_matcher(P + cql).run(EVENTS)) for cql in AGREEMENT]
    assert 0 in sizes and max(sizes) >= 4 and len(set(sizes)) >= 4


# ---------------------------------------------------------------- the matcher


def _run(cql: str, events: list[dict[str, Any]] = EVENTS) -> list[dict[str, Any]]:
    return compile_matcher(P + cql).run(events)


def test_collect_joins_the_first_distinct_values_sorted() -> None:
    (row,) = _run("collect(CommandLine, limit=3)")
    assert row == {"CommandLine": "curl x\nssh a\nssh b"}  # the first three met, then sorted
    assert _run("collect(Nothing)") == []  # no event has the field: no row


def test_select_last_is_the_most_recent_event_with_the_field() -> None:
    shuffled = list(reversed(EVENTS))  # the time decides, not the order
    rows = _run("groupBy(ComputerName, function=selectLast(ParentBaseFileName))", shuffled)
    assert {r["ComputerName"]: r["ParentBaseFileName"] for r in rows} == {
        "web-02": "cron", "web-01": "sshd", "web-03": "sshd", "db-01": "bash"}  # web-02's newest event has none
    tie = [_event(1, "h", "first"), _event(1, "h", "second")]
    assert _run("selectLast(CommandLine)", tie) == [{"CommandLine": "second"}]  # a tie: the later event


def test_select_from_max_takes_one_event() -> None:
    rows = _run("groupBy(ComputerName, function=selectFromMax(RawProcessId, include=[CommandLine, "
                "ParentBaseFileName]))")
    assert {r["ComputerName"]: (r.get("CommandLine"), r.get("ParentBaseFileName")) for r in rows} == {
        "web-01": ("wget z", "python"), "web-02": ("curl x", "bash"), "web-03": ("ssh c", "sshd"),
        "db-01": (None, None)}  # db-01 has no number: its group row holds its key only (functions-stats)
    assert _run("selectFromMin(@timestamp, include=[CommandLine, @timestamp])") == \
        [{"CommandLine": "ssh a", "@timestamp": str(T0)}]  # raw FDR's timestamp is the event time


def test_event_times_in_iso_form_are_read() -> None:
    events = [{"@timestamp": "2024-01-01T00:05:00Z", "x": "a"}, {"@timestamp": "2024-01-01T00:01:00+00:00", "x": "b"}]
    assert compile_matcher("selectLast(x)").run(events) == [{"x": "a"}]
    assert compile_matcher("timeChart(span=1h, timezone=UTC)").run(events) == [{"_bucket": T0, "_count": 2}]


def test_time_chart_keeps_the_series_with_the_largest_values() -> None:
    rows = _run("timeChart(ComputerName, span=1h, limit=1, timezone=UTC)")
    assert rows == [{"_bucket": T0, "ComputerName": "web-01", "_count": 5}]
    events = [_event(0, "a", "x"), _event(0, "b", "x"), _event(61, "b", "x")]
    assert {r["ComputerName"] for r in _run("timeChart(ComputerName, span=1h, limit=1, timezone=UTC)", events)} \
        == {"a"}  # a and b both peak at 1 in a bucket: the first met wins


def test_head_and_tail_on_events_and_on_group_rows() -> None:
    assert [r.get("CommandLine") for r in _run("tail(2)", list(reversed(EVENTS)))] == [None, "ssh b"]
    assert [r.get("CommandLine") for r in _run("head(2)", list(reversed(EVENTS)))] == ["ssh a", "ssh b"]
    # group rows have no time: head keeps the first, tail the last (in the order groups are met)
    assert [r["ComputerName"] for r in _run("groupBy(ComputerName) | head(1)")] == ["web-01"]
    assert [r["ComputerName"] for r in _run("groupBy(ComputerName) | tail(1)")] == ["web-03"]


def test_match_is_the_first_row_of_run_on_one_event() -> None:
    matcher = compile_matcher(P + "top(ComputerName, percent=true)")
    assert matcher.match(EVENTS[0]) == {"ComputerName": "web-01", "_count": 1, "percent": 100.0}
    assert compile_matcher(P + "tail(1)").match(EVENTS[0]) == EVENTS[0]


def test_the_saved_module_runs_the_family(tmp_path: Any) -> None:
    import importlib.util

    source = convert(P + "timeChart(ComputerName, span=30m, limit=2, timezone=UTC, function=[count(), "
                         "collect(CommandLine)]) | tail(3)", to="python")
    path = tmp_path / "rule.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("cqlx_aggs_rule", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.run(iter(EVENTS)) == compile_matcher(P + "timeChart(ComputerName, span=30m, limit=2, timezone=UTC, "
                                                           "function=[count(), collect(CommandLine)]) | tail(3)"
                                                       ).run(EVENTS)


# ---------------------------------------------------------------- cqlx test on a card of the family

CARD = Path(__file__).resolve().parent / "data" / "discovery_burst_host.yml"


def test_cqlx_test_runs_the_card_on_every_engine(tmp_path: Any) -> None:
    from tests.test_cli import cqlx

    result = cqlx("test", str(CARD))
    assert result.returncode == 0, result.stdout + result.stderr
    for target in ("python", "python-module", "kql-duckdb", "kql-parser", "spl-oracle"):
        assert f"{target:<14} " in result.stdout and "failing" not in result.stdout
    # the collected tools and the first command line are compared: a wrong one fails on every engine
    wrong = tmp_path / "card.yml"
    text = CARD.read_text(encoding="utf-8")
    wrong.write_text(text.replace('\n      CommandLine: "whoami /all"', "\n      CommandLine: whoami"),
                     encoding="utf-8")
    result = cqlx("test", str(wrong))
    assert result.returncode == 1 and "three tools on one host" in result.stdout


# A step after the aggregation that keeps only some group rows, or regroups them, changes which
# groups the rule returns; a Sigma correlation fires for every group that reaches its count. These
# were written as "the rule computes fields on the group rows" (presentation loss), and a count
# filtered after a second groupBy() was read as the first one's threshold.
@pytest.mark.parametrize(("cql", "message"), [
    ("groupBy(CommandLine) | groupBy(ComputerName) | _count > 3", "a second aggregation"),
    ("groupBy(CommandLine) | regex(\"(?<x>foo)\", field=CommandLine)", "regex() after the aggregation keeps"),
    ("groupBy(CommandLine) | case { CommandLine=*a* | k := 1 ; }", "case { } after the aggregation keeps"),
    ("groupBy(CommandLine) | match(file=\"x.csv\", field=CommandLine)", "match(file=...) after the aggregation"),
    ("groupBy(CommandLine) | join({b=1}, field=CommandLine)", "join() after the aggregation keeps"),
    ("groupBy(CommandLine) | _count := _count * 2 | _count > 5", "not one threshold on a count"),
])
def test_sigma_refuses_what_keeps_some_group_rows(cql: str, message: str) -> None:
    _, diagnostics = _sigma(cql)
    assert [k for k, m in diagnostics if message in m] == [DETECTION], diagnostics


@pytest.mark.parametrize("cql", [
    "groupBy(CommandLine) | regex(\"(?<x>foo)\", field=CommandLine, strict=false)",
    "groupBy(CommandLine) | case { CommandLine=*a* | k := 1 ; * }",
    "groupBy(CommandLine) | join({b=1}, field=CommandLine, mode=left)",
    "groupBy(CommandLine) | _count > 5 | sort(_count)",
])
def test_sigma_shows_what_keeps_every_group_row_in_the_description(cql: str) -> None:
    rules, diagnostics = _sigma(cql)
    assert not [m for k, m in diagnostics if k == DETECTION], diagnostics
    assert "Not expressible in Sigma" in rules[1]["description"]


def test_sigma_cannot_limit_the_events_an_aggregation_counts() -> None:
    _, diagnostics = _sigma("head(100) | groupBy(ComputerName) | _count > 5")
    assert (DETECTION, "the aggregation counts only the 100 events head() keeps; a Sigma rule cannot limit the "
                       "events it matches") in diagnostics
    _, shown = _sigma("tail(5)")
    assert [k for k, m in shown if "limited to 5 rows" in m] == [PRESENTATION]


def test_a_function_that_writes_a_key_it_reads_adds_nothing() -> None:
    """Published queries write collect(k) or selectLast(k) for a key k: every group's value is its
    key, so the function is left out (LogScale gives the same rows)."""
    (step,) = parse("groupBy([a, b], function=[collect(a), selectLast([b, c]), count()])").steps
    assert isinstance(step, ir.Aggregate)
    assert [(f.name, f.output) for f in step.functions] == [("selectLast", "c"), ("count", "_count")]


@pytest.mark.parametrize(("text", "same_as"), [
    ("groupBy(a, function=selectLast([b, c, b]))", "groupBy(a, function=selectLast([b, c]))"),
    ("groupBy(a, function=[collect(b), count(), collect(b)])", "groupBy(a, function=[collect(b), count()])"),
    ("groupBy(a, function=[max(b, as=m), max(b, as=m)])", "groupBy(a, function=max(b, as=m))"),
])
def test_the_same_function_twice_is_one(text: str, same_as: str) -> None:
    """Published queries list a field twice (selectLast([..., MaxUsedRam, ..., MaxUsedRam])): the
    same function writes the same value to the same field, so it is one. Different functions
    writing one field still clash (above)."""
    assert parse(text).steps == parse(same_as).steps


@pytest.mark.parametrize(("text", "same_as"), [
    ("groupBy(a, function=stats([count(), max(b)]))", "groupBy(a, function=[count(), max(b)])"),
    ("groupBy(a, function=[stats(sum(b)), collect(c)])", "groupBy(a, function=[sum(b), collect(c)])"),
    ("groupBy(a, function=stats([stats(count()), min(b)]))", "groupBy(a, function=[count(), min(b)])"),
    ("bucket(span=1h, function=stats([count(), avg(b)]))", "bucket(span=1h, function=[count(), avg(b)])"),
])
def test_stats_among_the_functions_is_its_own_list(text: str, same_as: str) -> None:
    """stats() only runs the aggregates it lists (functions-stats): inside function= it is them."""
    assert parse(text).steps == parse(same_as).steps  # IR spans take no part in equality


@pytest.mark.parametrize(("text", "same_as"), [
    ("[count(), max(n)]", "stats([count(), max(n)])"),
    ("x=1 | [min(n)] | m := _min * 2", "x=1 | stats(min(n)) | m := _min * 2"),
    ("case { a=1 | b := 2 ; * } | [count(as=c), collect(b)]",
     "case { a=1 | b := 2 ; * } | stats([count(as=c), collect(b)])"),
])
def test_a_stage_in_square_brackets_is_stats(text: str, same_as: str) -> None:
    """``[f(), g()]`` as a stage is stats(function=[f(), g()]) (functions-stats, "shorthand syntax")."""
    assert parse(text).steps == parse(same_as).steps
    assert convert(text, to="cql") == convert(same_as, to="cql")


def test_stats_with_no_function_among_the_functions_is_refused() -> None:
    with pytest.raises(CqlValueError, match="stats\\(\\) needs at least one aggregate function"):
        parse("groupBy(a, function=stats())")


@pytest.mark.parametrize("text", [
    # a subquery that filters and aggregates once converts (test_filtered_functions); more does not
    "groupBy(a, function=[{x=1 | count() | y := 2}, count(as=n)])",
    "groupBy(a, function=[tail(1), count()])",  # tail() alone is ir.GroupTail (test_group_tail)
])
def test_aggregates_cqlx_cannot_nest_are_opaque(text: str) -> None:
    (step,) = parse(text).steps
    assert isinstance(step, ir.Opaque) and step.effect == ir.AGGREGATES

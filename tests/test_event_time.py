"""A rule that tests, computes with or groups by the event time (``@timestamp``, epoch
milliseconds in LogScale): Defender's ``Timestamp`` and Splunk's ``_time`` hold it in another
shape, so the KQL and SPL compute LogScale's value back before the first step that reads it
(emit.kql ``derive``, emit.spl ``derive``); only shown, it stays the target's own time column.
Rows are checked on duckdb-kql and the SPL oracle against the Python matcher."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import convert
from cqlx.testing import check_kql
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 "
T0 = 1_704_164_645_678  # 2024-01-02T03:04:05.678Z
DAY = 86_400_000


def _event(ms: int, host: str, command: str) -> dict[str, Any]:
    return {"#event_simpleName": "ProcessRollup2", "@timestamp": ms, "timestamp": str(ms), "ComputerName": host,
            "CommandLine": command}


EVENTS = [
    _event(T0, "h1", "whoami"),
    _event(T0 + 1, "h1", "whoami /all"),
    _event(T0 + DAY + 5, "h2", "net user"),
    _event(T0 - 3 * DAY, "h3", "ipconfig"),
]

RULES = [
    # a test of the event time against a constant
    P + f"| test(@timestamp > {T0}) | select([ComputerName, CommandLine])",
    # against now(): every event of these is older than a day
    P + "| test(@timestamp < (now() - duration(1d))) | select([ComputerName])",
    # arithmetic on it: milliseconds since a moment, tested and shown
    P + f"| Since := @timestamp - {T0 - 1000} | Since < 2000 | select([ComputerName, Since])",
    # grouped by it: one group per distinct millisecond
    P + "| groupBy([@timestamp, ComputerName], function=count()) | select([@timestamp, ComputerName, _count])",
]


@pytest.mark.parametrize("rule", RULES)
def test_event_time_rows_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(rule, EVENTS, engines=("kql", "spl"))
    assert rows
    kql = convert(rule, to="kql")
    assert "datetime_diff('millisecond', Timestamp, datetime(1970-01-01))" in kql
    check_kql(kql)
    assert "round(_time*1000)" in convert(rule, to="spl")


def test_falcons_own_timestamp_field_is_read_alike() -> None:
    """``timestamp`` (Falcon's, the same time as text): duckdb-kql cannot hold a column ``timestamp``
    beside ``Timestamp`` (it folds case), so the KQL is checked by Kusto's parser, the SPL run."""
    rule = P + f"| test(timestamp >= {T0 + 1}) | select([ComputerName])"
    rows = assert_agree(rule, EVENTS, engines=("spl",))
    assert sorted(rows) == [(("ComputerName", "h1"),), (("ComputerName", "h2"),)]
    kql = convert(rule, to="kql")
    assert "extend timestamp = datetime_diff('millisecond', Timestamp, datetime(1970-01-01))" in kql
    check_kql(kql)


def test_a_time_only_shown_stays_the_targets_column() -> None:
    rule = P + "| select([@timestamp, ComputerName])"
    assert "datetime_diff" not in convert(rule, to="kql") and "*1000" not in convert(rule, to="spl")


# The earliest and latest event time of a group, read by a later step (Kusto.Language refused the
# KQL that kept them as datetimes there: "the operator '<=' is not defined for datetime and long").
READ_AFTER_GROUPING = [
    (P + "| groupBy([ComputerName], function=[min(@timestamp, as=First), max(@timestamp, as=Last)]) "
         "| Span := Last - First | select([ComputerName, First, Span])", ("kql", "spl")),
    (P + "| groupBy([ComputerName], function=[min(@timestamp, as=First), max(@timestamp, as=Last)]) "
         f"| test(Last > {T0}) | select([ComputerName, Last])", ("kql", "spl")),
    # duckdb-kql multiplies 1ms by a 32-bit integer (epoch milliseconds overflow it): Kusto's
    # parser checks the KQL, the SPL oracle runs the rule
    (P + "| groupBy([ComputerName], function=[max(@timestamp, as=Last)]) "
         "| formatTime(\"%Y-%m-%d %H:%M:%S\", field=Last, as=Seen) | select([ComputerName, Seen])", ("spl",)),
]


@pytest.mark.parametrize(("rule", "engines"), READ_AFTER_GROUPING)
def test_a_grouped_time_read_later_is_epoch_milliseconds(rule: str, engines: tuple[str, ...]) -> None:
    kql = convert(rule, to="kql")
    check_kql(kql)
    assert "extend ['@timestamp'] = datetime_diff('millisecond', Timestamp, datetime(1970-01-01))" in kql
    rows = assert_agree(rule, EVENTS, engines=engines)
    assert rows


def test_a_grouped_time_only_shown_stays_a_datetime() -> None:
    rule = P + "| groupBy([ComputerName], function=[max(@timestamp, as=Last)]) | select([ComputerName, Last])"
    assert "summarize Last = max(Timestamp)" in convert(rule, to="kql")


def test_now_is_one_time_for_every_event_of_a_run() -> None:
    """functions-now: "in historical queries, the current time is when the query is issued" (as
    KQL's and SPL's now()): run() gives every event the same now(), the time it is called or the
    one it is given; match() reads one event as a live query does, at the time of the call."""
    import time

    from cqlx import compile_matcher

    matcher = compile_matcher("age := now() - @timestamp | stamp := now()")
    events = [{"@timestamp": T0 + i} for i in range(50_000)]
    before = int(time.time() * 1000)
    rows = matcher.run(events)
    assert len({row["stamp"] for row in rows}) == 1 and rows[0]["stamp"] >= before
    assert [row["age"] for row in matcher.run(events[:3], now=T0 + DAY)] == [DAY, DAY - 1, DAY - 2]
    assert (matcher.match({"@timestamp": T0}) or {})["stamp"] >= before

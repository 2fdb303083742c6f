"""The SPL oracle's aggregation subset on its own: stats values(), latest(), first(), eventstats, and
the eval functions mvjoin(), floor() and urldecode(), from the examples of Splunk's Search Reference
(multivalue stats and chart functions, time functions, event order functions, eventstats, mathematical
and text functions), and the multivalue values stats makes, which only mvjoin() reads."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx.spl_oracle import SplOracleError, run_spl


def _rows(spl: str, events: list[dict[str, Any]]) -> list[dict[str, object]]:
    return run_spl("search *\n" + spl, events)


def test_values_are_the_distinct_values_in_lexicographical_order() -> None:
    # Multivalue stats and chart functions, values(): the docs' example counts rows 1 to 1000 and
    # shows values() returning 1, 10, 100, 1000, 101, ... (lexicographical order), list() 1, 2, 3.
    events = [{"rowNumber": n} for n in range(1, 1001)] + [{"rowNumber": 10}]
    (row,) = _rows("| stats values(rowNumber) as numbers", events)
    numbers = row["numbers"]
    assert isinstance(numbers, tuple) and len(numbers) == 1000
    assert numbers[:6] == ("1", "10", "100", "1000", "101", "102")


def test_values_by_group_and_mvjoin() -> None:
    events = [{"h": "a", "c": "y"}, {"h": "a", "c": "x"}, {"h": "a", "c": "y"}, {"h": "b", "c": "z"}, {"h": "b"}]
    rows = _rows('| stats values(c) as c by h\n| eval c=mvjoin(c, ";")', events)
    assert rows == [{"h": "a", "c": "x;y"}, {"h": "b", "c": "z"}]
    # mvjoin() of a single value is that value, of null is null
    assert _rows('| eval j=mvjoin(c, ";")', [{"c": "one"}, {}]) == [{"c": "one", "j": "one"}, {}]


def test_a_multivalue_is_read_by_mvjoin_only() -> None:
    with pytest.raises(SplOracleError, match="multivalue"):
        _rows("| stats values(c) as c\n| where c==\"x\"", [{"c": "x"}, {"c": "y"}])
    # isnotnull() sees a multivalue as a value
    assert _rows("| stats values(c) as c\n| where isnotnull(c)", [{"c": "x"}]) == [{"c": ("x",)}]
    assert _rows("| stats values(c) as c\n| where isnotnull(c)", [{}]) == []


def test_latest_is_the_chronologically_latest_value() -> None:
    # Time functions, latest(): the value of the latest _time, whatever order the events come in.
    events = [{"_time": 1682900105, "u": "tomcat"}, {"_time": 1682813777, "u": "brian"},
              {"_time": 1682986000}, {"_time": 1682727541, "u": "operator"}]
    assert _rows("| stats latest(u) as u", events) == [{"u": "tomcat"}]
    # of rows with the same time, the later one (an assumption: Splunk documents no tie)
    assert _rows("| stats latest(u) as u", [{"_time": 5, "u": "a"}, {"_time": 5, "u": "b"}]) == [{"u": "b"}]


def test_first_is_the_first_value_in_the_order_rows_come() -> None:
    # Event order functions, first(): the first seen value, not the chronologically earliest.
    events = [{"_time": 3}, {"_time": 9, "v": "second-oldest"}, {"_time": 1, "v": "oldest"}]
    assert _rows("| stats first(v) as v", events) == [{"v": "second-oldest"}]


def test_eventstats_adds_the_statistics_to_each_event() -> None:
    # eventstats: "avg(duration) as avgdur" added to every event; by a field, per group; an event
    # without the BY field gets none (an assumption).
    events = [{"g": "a", "d": 10}, {"g": "a", "d": 30}, {"g": "b", "d": 5}, {"d": 100}]
    rows = _rows("| eventstats avg(d) as avgdur, max(d) as top by g", events)
    assert rows == [{"g": "a", "d": 10, "avgdur": 20, "top": 30}, {"g": "a", "d": 30, "avgdur": 20, "top": 30},
                    {"g": "b", "d": 5, "avgdur": 5, "top": 5}, {"d": 100}]
    assert _rows("| eventstats sum(d) as total", events)[0]["total"] == 145


def test_floor_and_urldecode() -> None:
    # floor(1.9) is 1 (mathematical functions); urldecode() of the docs' escaped URL.
    (row,) = _rows('| eval f=floor(1.9), g=floor(-0.5), u=urldecode("http%3A%2F%2Fwww.splunk.com%2Fdownload%3Fr'
                   '%3Dheader"), n=urldecode("%0A")', [{}])
    assert row == {"f": 1, "g": -1, "u": "http://www.splunk.com/download?r=header", "n": "\n"}
    with pytest.raises(SplOracleError, match=r"\+"):
        _rows('| eval u=urldecode("a+b")', [{}])


@pytest.mark.parametrize("spl", ["| stats values as x", "| stats latest as x", "| eventstats count",
                                 "| stats list(x) as y"])
def test_outside_the_subset(spl: str) -> None:
    with pytest.raises(SplOracleError):
        _rows(spl, [{"x": "1"}])

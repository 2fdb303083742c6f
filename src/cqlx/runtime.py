"""What generated matchers call: field access and CQL's value semantics, standard library only.

This file is copied verbatim into every module written by ``cqlx convert --to python``, so the
saved matcher runs without cqlx installed. Keep it self-contained: no cqlx imports.

Regexes run on RE2 (linear time) when the ``re2`` module is installed and the rule's pattern has
an exact RE2 plan; otherwise on ``re``, each search bounded by ``REGEX_TIME_LIMIT`` through a
``SIGALRM`` timer (``_sre`` checks for signals while it backtracks), so one hostile value cannot
stall the stream: the event is then undecided, and ``run`` counts it.

Semantics (SEMANTICS.md): a field is missing when the event lacks it or holds JSON null; string
tests see strings, and numbers as their decimal text; lists and objects are not strings, so string
tests on them are false. ``#tag`` fields are read as ``#tag``, then ``tag``.
"""

import datetime
import heapq
import ipaddress
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

try:  # google-re2: linear-time matching for every pattern it can run with the same meaning
    import re2 as _re2

    _RE2_OPTIONS: Any = _re2.Options()
    _RE2_OPTIONS.log_errors = False
except ImportError:  # pragma: no cover - the saved module also runs with the standard library only
    _re2 = None

_MISSING = None

#: Seconds one backtracking regex search may take before the event is given up as undecided;
#: 0 or less: no limit. A list, so callers can set it (``REGEX_TIME_LIMIT[0] = 0.2``).
REGEX_TIME_LIMIT = [0.05]


def get(record: dict[str, Any], name: str) -> Any:
    """The value of field ``name``: ``#name`` falls back to ``name``; ``a.b`` to nested objects."""
    value = record.get(name)
    if value is not None:
        return value
    if name[:1] == "#":
        return record.get(name[1:])
    if "." in name and name not in record:
        node: Any = record
        for part in name.split("."):
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node
    return None


def text(value: Any) -> str | None:
    """The string a string test sees, or None when there is none to test."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def number(value: Any) -> int | float | None:
    """The number a numeric test or arithmetic sees, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        stripped = value.strip()
        try:
            return int(stripped)
        except ValueError:
            pass
        try:
            result = float(stripped)
        except ValueError:
            return None
        return result if result == result and result not in (float("inf"), float("-inf")) else None
    return None


class RegexTimeout(Exception):
    """A regex search ran past ``REGEX_TIME_LIMIT``: whether the event matches is undecided."""


_ALARM = {"armed": False}


def _on_alarm(signum: int, frame: Any) -> None:
    if _ALARM["armed"]:  # a late signal, after the search ended, is ignored
        _ALARM["armed"] = False
        raise RegexTimeout(f"a regex search ran past the {REGEX_TIME_LIMIT[0] * 1000:g} ms limit")


def _bounded(method: Callable[[str], Any], string: str) -> bool:
    """``method(string) is not None``, interrupted after ``REGEX_TIME_LIMIT`` seconds when this
    thread can take a timer signal and no one else uses ``SIGALRM``."""
    return _bounded_call(method, string) is not None


def _bounded_call(method: Callable[[str], Any], string: str) -> Any:
    """``method(string)`` under the time limit of :func:`_bounded`."""
    limit = REGEX_TIME_LIMIT[0]
    if (limit <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
            or signal.getitimer(signal.ITIMER_REAL)[0]):
        return method(string)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _ALARM["armed"] = True
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return method(string)
    finally:
        _ALARM["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Regex:
    """One rule regex: ``re`` for its meaning, and the RE2 plan that has the same meaning on the
    values it covers (ASCII values for a case-insensitive plan; values without a vertical tab for
    a plan with ``\\s``). Other values, and patterns with no plan, go to ``re``, time-bounded."""

    __slots__ = ("ascii_only", "linear", "python", "vertical_tab")

    def __init__(self, python: re.Pattern[str], linear: Any, ascii_only: bool, vertical_tab: bool) -> None:
        self.python = python
        self.linear = linear
        self.ascii_only = ascii_only
        self.vertical_tab = vertical_tab

    def search(self, string: str) -> bool:
        linear = self.linear
        if (linear is not None and (not self.ascii_only or string.isascii())
                and not (self.vertical_tab and "\v" in string)):
            try:
                return linear.search(string) is not None
            except UnicodeEncodeError:  # a lone surrogate (from a JSON \ud800 escape) is not UTF-8
                pass
        return _bounded(self.python.search, string)

    def groups(self, string: str) -> dict[str, str | None] | None:
        """The named groups of the first match (None for a group that takes no part), or None
        when nothing matches. RE2 rules out values that do not match in linear time; the groups of
        a match come from ``re``, time-bounded, whose submatch rules are Java's (RE2's differ for
        repeated empty groups)."""
        if not self.search(string):
            return None
        match = _bounded_call(self.python.search, string)
        return None if match is None else match.groupdict()


def compile_regex(pattern: str, flags: int, linear: str | None = None, ascii_only: bool = False,
                  vertical_tab: bool = False) -> Regex:
    """``pattern`` for ``re`` with ``flags``; ``linear``, the RE2 plan's pattern (when RE2 is here)."""
    compiled = None
    if linear is not None and _re2 is not None:
        try:
            compiled = _re2.compile(linear, _RE2_OPTIONS)
        except Exception:  # re2.error; the plan was checked when the module was written
            compiled = None
    return Regex(re.compile(pattern, flags), compiled, ascii_only, vertical_tab)


def search(regex: Regex, value: Any) -> bool:
    string = text(value)
    return string is not None and regex.search(string)


def groups(regex: Regex, value: Any) -> dict[str, str | None] | None:
    """A field extraction's match on a value: its named groups, or None (no match, no value)."""
    string = text(value)
    return None if string is None else regex.groups(string)


def assign_groups(record: dict[str, Any], found: dict[str, str | None] | None) -> dict[str, Any]:
    """Each group that took part in the match sets the field of its name (copy-on-write record);
    one that did not leaves its field as it was."""
    if found:
        for name, value in found.items():
            if value is not None:
                record[name] = value
    return record


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(subnets: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(subnet, strict=False) for subnet in subnets)


def in_networks(value: Any, nets: tuple[Network, ...]) -> bool:
    """``cidr()``: the value is an IP address in one of the networks of its own version; a value that
    is no address (leading zeros included, which ``ipaddress`` refuses) is in none."""
    string = text(value)
    if string is None:
        return False
    try:
        address = ipaddress.ip_address(string)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in nets)


def equals(value: Any, expected: str) -> bool:
    return text(value) == expected


def equals_folded(value: Any, expected_folded: str) -> bool:
    string = text(value)
    return string is not None and string.lower() == expected_folded


def member(value: Any, values: frozenset[str]) -> bool:
    """Exact membership; a list matches when one of its items does (ECS keyword arrays)."""
    if isinstance(value, list):
        return any(text(item) in values for item in value)
    return text(value) in values


def compare(value: Any, op: str, constant: int | float) -> bool:
    left = number(value)
    if left is None:
        return False
    if op == ">=":
        return left >= constant
    if op == ">":
        return left > constant
    if op == "<=":
        return left <= constant
    if op == "<":
        return left < constant
    if op == "==":
        return left == constant
    return left != constant


def compare_values(op: str, left: Any, right: Any) -> bool:
    """``test(a OP b)``: numeric when both sides are numbers, else string comparison."""
    if left is None or right is None:
        return False
    a: Any = number(left)
    b: Any = number(right)
    if a is None or b is None:
        a, b = text(left), text(right)
        if a is None or b is None:
            return False
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == ">=":
        return bool(a >= b)
    if op == ">":
        return bool(a > b)
    if op == "<=":
        return bool(a <= b)
    return bool(a < b)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    else:
        string = text(node)
        if string is not None:
            yield string


#: Fields free text does not search (syntax-filters: "All fields (except for the special @id,
#: @timestamp, @ingesttimestamp fields and the tag fields) are searched, including @rawstring").
_NOT_SEARCHED = frozenset({"@id", "@timestamp", "@ingesttimestamp"})


def _searched(event: dict[str, Any]) -> Iterator[str]:
    for name, value in event.items():
        if name not in _NOT_SEARCHED and name[:1] != "#":
            yield from _strings(value)


def free_text(event: dict[str, Any], needle: str) -> bool:
    """Free-text search, case-sensitive, over the event as it came in (syntax-filters: fields added
    or removed in the pipeline do not count), ``@rawstring`` included."""
    return any(needle in string for string in _searched(event))


def free_regex(event: dict[str, Any], regex: Regex) -> bool:
    return any(regex.search(string) for string in _searched(event))


def arith(op: str, left: Any, right: Any) -> int | float | None:
    """CQL arithmetic: null when either side is missing or not a number (so ``:=`` sets nothing)."""
    a, b = number(left), number(right)
    if a is None or b is None:
        return None
    try:
        return _arith(op, a, b)
    except (OverflowError, ValueError):  # beyond a float: no value, as for text
        return None


def _arith(op: str, a: int | float, b: int | float) -> int | float | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        return None
    if op == "/":
        result = a / b
        return int(result) if result.is_integer() else result
    return a % b


def lower(value: Any) -> str | None:
    string = text(value)
    return None if string is None else string.lower()


def upper(value: Any) -> str | None:
    string = text(value)
    return None if string is None else string.upper()


def assign(record: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """``name := value`` on a copy-on-write record; a null value leaves the field as it was."""
    if value is None:
        return record
    record[name] = value
    return record


def project(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``select()``: the named fields in order; missing ones are left out of the row."""
    row = {}
    for name in names:
        value = get(record, name)
        if value is not None:
            row[name] = value
    return row


def drop(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``drop()``: the row without the named fields (a ``#tag`` also under its plain name)."""
    gone = set(names) | {n[1:] for n in names if n[:1] == "#"}
    return {k: v for k, v in record.items() if k not in gone}


def project_as(record: dict[str, Any], pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``select()`` under a profile: each output field read from its name in the events."""
    row = {}
    for name, source in pairs:
        value = get(record, source)
        if value is not None:
            row[name] = value
    return row


class _Descending:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: "_Descending") -> bool:
        result: bool = other.value < self.value
        return result

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]  # compared only, never hashed


def sort_key(record: dict[str, Any], keys: tuple[tuple[Any, bool, str], ...]) -> tuple[Any, ...]:
    """The key that orders rows as ``sort()``: missing or unparsable values go last, either way.
    A key of kind ``time`` names the fields that hold the event time (:func:`event_time`)."""
    parts: list[tuple[int, Any]] = []
    for name, descending, kind in keys:
        value: Any
        if kind == "time":  # name holds the time fields (event_time)
            value = event_time(record, name)
            parts.append((1, 0) if value is None else (0, -value if descending else value))
            continue
        raw = get(record, name)
        if kind == "number":
            value = number(raw)
        elif kind == "hex":
            string = text(raw)
            try:
                value = int(string, 16) if string is not None else None
            except ValueError:
                value = None
        else:
            value = text(raw)
        if value is None:
            parts.append((1, 0))
        elif descending:
            parts.append((0, -value if kind != "string" else _Descending(value)))
        else:
            parts.append((0, value))
    return tuple(parts)


def top(rows: Iterable[dict[str, Any]], keys: tuple[tuple[Any, bool, str], ...], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` rows in ``sort()`` order; ties keep their input order. Holds only
    ``limit`` rows at a time."""
    return heapq.nsmallest(limit, rows, key=lambda row: sort_key(row, keys))


def event_time(record: dict[str, Any], names: tuple[str, ...]) -> int | float | None:
    """The event's time in epoch milliseconds, from the first of ``names`` that holds one
    (``@timestamp``, then ``timestamp``: LogScale's export and raw FDR): a number or numeric text
    is epoch milliseconds, other text an ISO 8601 date and time (ECS); None when there is none."""
    for name in names:
        value = get(record, name)
        if value is None:
            continue
        millis = number(value)
        if millis is None and isinstance(value, str):
            millis = _iso_millis(value)
        if millis is not None:
            return millis
    return None


def _iso_millis(value: str) -> int | float | None:
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    millis = moment.timestamp() * 1000
    return int(millis) if millis == int(millis) else millis


def time_bucket(millis: Any, span: int) -> int | None:
    """The start of the ``span``-millisecond bucket (aligned to the epoch, UTC) that holds ``millis``."""
    if millis is None:
        return None
    return int(millis // span) * span


def _field_value(record: dict[str, Any], name: str, times: tuple[str, ...]) -> Any:
    """A field's value; a time field (``@timestamp``) falls back to the event's other time field."""
    value = get(record, name)
    if value is None and name in times:
        for other in times:
            value = get(record, other)
            if value is not None:
                break
    return value


def tail(rows: Iterable[dict[str, Any]], times: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
    """``tail()``: the ``limit`` newest rows by event time, newest first; rows without a time are
    older than any row with one, and among them the last ones are the newest. Holds ``limit`` rows."""
    def newness(item: tuple[int, dict[str, Any]]) -> tuple[int, Any, int]:
        position, row = item
        when = event_time(row, times)
        return (0, 0, position) if when is None else (1, when, position)

    return [row for _, row in heapq.nlargest(limit, enumerate(rows), key=newness)]


#: Aggregate functions that give a value (0, or none) over no events: a group of them is a row
#: even without events (count() over nothing is 0). The others (collect, selectLast,
#: selectFromMax/Min) give a row only with a value (functions-selectfrommax: zero or one event).
_ROW_ALWAYS = frozenset({"count", "sum", "min", "max", "avg", "percent"})


def _initial(function: tuple[Any, ...]) -> Any:
    name, distinct = function[0], function[3]
    if distinct:
        return set()
    if name in ("count", "sum", "percent"):
        return 0
    if name == "collect":
        return {}
    return None


class _Group:
    """The running state of one group: its key values as first met and one slot per function."""

    __slots__ = ("keys", "state")

    def __init__(self, keys: tuple[Any, ...], functions: tuple[tuple[Any, ...], ...]) -> None:
        self.keys = keys
        self.state: list[Any] = [_initial(function) for function in functions]


def _accumulate(state: list[Any], functions: tuple[tuple[Any, ...], ...], row: dict[str, Any],
                when: tuple[int, Any, int] | None, times: tuple[str, ...]) -> None:
    """Add one row to a group's state (see :func:`aggregate`)."""
    for index, function in enumerate(functions):
        name, field, _, distinct, by = function[:5]
        if field is None:
            state[index] += 1
            continue
        if by is not None:  # selectFromMax / selectFromMin: the event with the largest / smallest number
            amount = event_time(row, times) if by in times else number(get(row, by))
            best = state[index]
            if amount is not None and (best is None or (amount > best[0] if name == "selectFromMax"
                                                        else amount < best[0])):
                state[index] = (amount, _field_value(row, field, times))
            continue
        value = _field_value(row, field, times)
        if value is None:
            continue
        if name == "selectLast":
            if state[index] is None or when >= state[index][0]:  # `when` is set: selectLast makes the run timed
                state[index] = (when, value)
        elif name == "collect":
            shown = text(value)
            if shown is not None and shown not in state[index] and len(state[index]) < function[5]:
                state[index][shown] = None
        elif name == "count":
            if distinct:
                shown = text(value)
                if shown is not None:
                    state[index].add(shown)
            else:
                state[index] += 1
        else:
            amount = number(value)
            if amount is None:
                continue
            if name in ("sum", "percent"):
                state[index] += amount
            elif name == "avg":
                total, seen = state[index] or (0, 0)
                state[index] = (total + amount, seen + 1)
            elif state[index] is None or (amount < state[index] if name == "min" else amount > state[index]):
                state[index] = amount


def _result(function: tuple[Any, ...], value: Any, total: Any) -> Any:
    """A function's output from its final state (``total``: its state summed over every group)."""
    name = function[0]
    if function[3]:
        return len(value)
    if name == "avg":
        return None if value is None else value[0] / value[1]
    if name == "collect":
        return function[6].join(sorted(value)) if value else None
    if name in ("selectLast", "selectFromMax", "selectFromMin"):
        return None if value is None else value[1]
    if name == "percent":
        return value * 100 / total if total else None
    return value


def aggregate(rows: Iterable[dict[str, Any]], keys: tuple[str, ...],
              functions: tuple[tuple[Any, ...], ...], limit: int | None,
              names: tuple[str, ...] | None = None, times: tuple[str, ...] = (),
              series: int | None = None) -> list[dict[str, Any]]:
    """``groupBy()`` (or ``stats()``, ``top()``, ``bucket()``, a standalone ``count()``...): one row
    per group, holding the key fields (under ``names``, when the events name them otherwise) and
    each function's output. ``functions`` are (name, field or None, output, distinct, by, limit,
    separator); ``times`` the fields that hold the event time.

    An event without a value for every key is in no group (Splunk's stats ``by`` and LogScale's
    groupBy leave such events out). Key values are compared as the text string tests see, so 5 and
    "5" are one group. Past ``limit`` groups, events of new groups are left out (LogScale warns and
    returns a subset). Numbers are read as arithmetic reads them; a value that is no number is
    skipped. ``count(f)`` counts events that have ``f``, ``distinct`` its distinct texts; ``sum``
    of no numbers is 0, ``min``/``max``/``avg`` of none leave the output unset. ``collect`` keeps
    the first ``limit`` distinct texts and joins them sorted (LogScale's order is undefined);
    ``selectLast`` the value of the most recent event with the field (ties: the later event);
    ``selectFromMax``/``Min`` the field of the first event with the largest/smallest number in
    ``by`` (an event time when ``by`` is one); ``percent`` the group's share of every group's count
    (or sum). With ``series`` (bucket(), timeChart()), only the ``series`` series (the key values
    but ``_bucket``) with the largest output values are kept. Memory: one state per group (a
    distinct count or a collect holds its group's distinct values)."""
    groups: dict[tuple[str, ...], _Group] = {}
    timed = any(function[0] == "selectLast" for function in functions)
    for position, row in enumerate(rows):
        values = tuple(get(row, name) for name in keys)
        texts = tuple(text(value) for value in values)
        if None in texts:
            continue
        identity: tuple[str, ...] = texts  # type: ignore[assignment]  # None was ruled out above
        group = groups.get(identity)
        if group is None:
            if limit is not None and len(groups) >= limit:
                continue
            group = groups[identity] = _Group(values, functions)
        when = None
        if timed:
            moment = event_time(row, times)
            when = (0, 0, position) if moment is None else (1, moment, position)
        _accumulate(group.state, functions, row, when, times)
    if not keys and not groups:
        groups[()] = _Group((), functions)  # count() over no events is one row with 0
    totals = [sum(group.state[index] for group in groups.values()) if function[0] == "percent" else None
              for index, function in enumerate(functions)]
    always = not keys and any(function[0] in _ROW_ALWAYS for function in functions)
    out = []
    for group in groups.values():
        result: dict[str, Any] = dict(zip(names or keys, group.keys, strict=True))
        for function, value, total in zip(functions, group.state, totals, strict=True):
            value = _result(function, value, total)
            if value is not None:
                result[function[2]] = value
        if keys or always or len(result) > 0:
            out.append(result)
    if series is not None:
        out = _top_series(out, tuple(n for n in (names or keys) if n != "_bucket"),
                          tuple(function[2] for function in functions), series)
    return out


def _top_series(rows: list[dict[str, Any]], series_keys: tuple[str, ...], outputs: tuple[str, ...],
                limit: int) -> list[dict[str, Any]]:
    """The rows of the ``limit`` series whose largest output value is largest (functions-timechart:
    limit prioritises the series with the highest value across all fields); ties: the first met."""
    if not series_keys:
        return rows
    best: dict[tuple[str | None, ...], float] = {}
    for row in rows:
        identity = tuple(text(row.get(name)) for name in series_keys)
        numbers = [n for n in (number(row.get(name)) for name in outputs) if n is not None]
        peak = max(numbers) if numbers else float("-inf")
        best[identity] = max(best.get(identity, float("-inf")), peak)
    ranked = sorted(best, key=lambda identity: -best[identity])  # stable: ties keep first-met order
    kept = set(ranked[:limit])
    return [row for row in rows if tuple(text(row.get(name)) for name in series_keys) in kept]


def barrier(rows: Iterable[dict[str, Any]], spec: tuple[Any, ...]) -> list[dict[str, Any]]:
    """A stage that needs every row before it can give one: ``("sort", keys, limit)``,
    ``("tail", times, limit)`` or ``("aggregate", keys, functions, limit, key names, times,
    series limit)``."""
    if spec[0] == "sort":
        return top(rows, spec[1], spec[2])
    if spec[0] == "tail":
        return tail(rows, spec[1], spec[2])
    return aggregate(rows, spec[1], spec[2], spec[3], spec[4], spec[5], spec[6])


def counted(rows: Iterable[dict[str, Any]], counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    """Pass rows through, counting them in counts["matched"]."""
    for row in rows:
        counts["matched"] = counts.get("matched", 0) + 1
        yield row


def guarded(segment: Callable[[dict[str, Any]], Any], events: Iterable[dict[str, Any]],
            counts: dict[str, int] | None) -> Iterator[dict[str, Any]]:
    """The rows ``segment`` keeps; with ``counts``, an event whose regex ran past the time limit
    is counted in counts["timed_out"] and passed over (without, the RegexTimeout propagates)."""
    stream = iter(events)
    while True:
        try:
            for row in map(segment, stream):
                if row is not None:
                    yield row
            return
        except RegexTimeout:
            if counts is None:
                raise
            counts["timed_out"] = counts.get("timed_out", 0) + 1


# ---- lookup files (match()) ----

#: The rows of each lookup file a rule's match() reads, by file name as the rule writes it: a list
#: of {column: value} (csv.DictReader's rows). Set before running the rule.
LOOKUPS: dict[str, Any] = {}
_LOOKUP_INDEXES: dict[Any, Any] = {}


class LookupFileError(Exception):
    """A lookup file a match() reads is missing, lacks a column, or is ambiguous for an event."""


def _cell(value: Any) -> str:
    string = text(value)
    return "" if string is None else string


def _written(row: dict[str, Any], include: Any) -> dict[str, str]:
    names = list(row) if include is None else include
    return {name: _cell(row.get(name)) for name in names}


def _glob_key(cell: str, ignore_case: bool) -> "re.Pattern[str]":
    body = ".*".join(re.escape(part) for part in cell.split("*"))
    return re.compile(body + "\\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _lookup_index(spec: tuple[Any, ...]) -> tuple[Any, ...]:
    """The file's rows keyed as the match() reads them, built once per spec and rows."""
    file, _, columns, include, _, ignore_case, mode, _ = spec
    rows = LOOKUPS.get(file)
    if rows is None:
        raise LookupFileError(f"match() reads the lookup file {file!r}, which was not given (cqlx run --lookup "
                              f"{file}=PATH; API: compile_matcher(..., lookups={{{file!r}: PATH_OR_ROWS}}))")
    cached: tuple[Any, ...] | None = _LOOKUP_INDEXES.get(spec)
    if cached is not None and cached[0] is rows:
        return cached
    header = list(rows[0]) if rows else []
    for name in (*columns, *(include or ())):
        if rows and name not in header:
            raise LookupFileError(f"the lookup file {file!r} has no column {name!r} (its columns: {', '.join(header)})")
    exact: dict[tuple[str, ...], tuple[int, dict[str, str]]] = {}
    patterns: list[tuple[int, tuple[Any, ...], dict[str, str]]] = []
    for number, row in enumerate(rows, 2):  # line 1 is the header
        cells = [_cell(row.get(name)) for name in columns]
        if "" in cells:
            continue  # an empty key cell matches no event (cqlx's reading; functions-match is silent)
        written = _written(row, include)
        if mode == "string":
            key = tuple(c.lower() for c in cells) if ignore_case else tuple(cells)
            seen = exact.get(key)
            if seen is not None and seen[1] != written:
                raise LookupFileError(f"the lookup file {file!r} has rows {seen[0]} and {number} for the key "
                                      f"{', '.join(cells)} with different values in the columns match() writes; "
                                      "LogScale's match() (nrows=1) uses one of them, and which is not documented")
            exact[key] = (number, written)
        elif mode == "glob":
            patterns.append((number, tuple(_glob_key(c, ignore_case) for c in cells), written))
        else:
            try:
                networks = tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cells)
            except ValueError:
                raise LookupFileError(f"the lookup file {file!r}, line {number}: {', '.join(cells)} is not a CIDR "
                                      "subnet (match(mode=cidr))") from None
            patterns.append((number, networks, written))
    built = (rows, exact, patterns)
    _LOOKUP_INDEXES[spec] = built
    return built


def _matching_row(spec: tuple[Any, ...], values: list[str]) -> dict[str, str] | None:
    file, _, _, _, _, ignore_case, mode, _ = spec
    _, exact, patterns = _lookup_index(spec)
    if mode == "string":
        found = exact.get(tuple(v.lower() for v in values) if ignore_case else tuple(values))
        return None if found is None else found[1]
    hits: list[tuple[Any, int, dict[str, str]]] = []
    if mode == "glob":
        hits = [((), n, w) for n, keys, w in patterns
                if all(k.match(v) is not None for k, v in zip(keys, values, strict=True))]
    else:
        try:
            addresses = [ipaddress.ip_address(v.strip()) for v in values]
        except ValueError:
            return None  # not an IP: in no subnet
        for number, networks, written in patterns:
            if all(a.version == n.version and a in n for a, n in zip(addresses, networks, strict=True)):
                # functions-match: "the most specific one is selected"
                hits.append((tuple(-n.prefixlen for n in networks), number, written))
        if hits:
            best = min(h[0] for h in hits)
            hits = [h for h in hits if h[0] == best]
    if not hits:
        return None
    if any(h[2] != hits[0][2] for h in hits[1:]):
        raise LookupFileError(f"the lookup file {file!r} has rows {hits[0][1]} and {hits[1][1]} that both match "
                              f"{', '.join(values)} ({mode}) with different values in the columns match() writes; "
                              "which of them LogScale's match() (nrows=1) uses is not documented")
    return hits[0][2]


def lookup(record: dict[str, Any], spec: tuple[Any, ...]) -> dict[str, Any] | None:
    """``match()``: the record with the matching row's columns written, the record as it is
    (no match, ``strict=false``), or None (dropped). ``spec`` is (file, fields, columns, include,
    strict, ignore_case, mode, negated)."""
    fields, strict, negated = spec[1], spec[4], spec[7]
    values = [_cell(get(record, name)) for name in fields]
    row = None if "" in values else _matching_row(spec, values)
    if negated:
        return None if row is not None else record
    if row is None:
        return None if strict else record
    out = dict(record)
    out.update(row)
    return out


# ---- join() ----

#: Each join()'s subquery rows by key, set by prepare_joins() before the events run.
JOINED: list[dict[tuple[str, ...], dict[str, str]]] = []


class JoinError(Exception):
    """A join() whose subquery has rows for one key that say different things."""


def run_pipeline(segments: tuple[Any, ...], barriers: tuple[Any, ...], events: Iterable[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """The rows of a (sub)query's segments over ``events``, barriers between them."""
    rows = [row for row in map(segments[0], events) if row is not None]
    for spec, segment in zip(barriers, segments[1:], strict=True):
        rows = [row for row in map(segment, barrier(rows, spec)) if row is not None]
    return rows


def prepare_joins(joins: tuple[Any, ...], events: list[dict[str, Any]]) -> None:
    """Run each join()'s subquery over the events and index its rows: by the key fields' text
    (a row without one is left out), each holding the include fields (``""`` for one it lacks,
    functions-join). Rows of one key that differ there are refused: which one LogScale's
    ``max=1`` takes is not documented."""
    JOINED[:] = []
    for number, (segments, barriers, keys, include, names) in enumerate(joins, 1):
        index: dict[tuple[str, ...], dict[str, str]] = {}
        for row in run_pipeline(segments, barriers, events):
            values = tuple(_cell(get(row, name)) for name in keys)
            if "" in values:
                continue
            written = {shown: _cell(get(row, name)) for name, shown in zip(include, names, strict=True)}
            seen = index.get(values)
            if seen is not None and seen != written:
                raise JoinError(f"join() number {number}: its subquery has rows for the key {', '.join(values)} "
                                "with different values in the include fields; which one LogScale's join() (max=1) "
                                "takes is not documented")
            index[values] = written
        JOINED.append(index)


def join(record: dict[str, Any], number: int, fields: tuple[str, ...], strict: bool, negated: bool
         ) -> dict[str, Any] | None:
    """``join()``: the record with the matching subquery row's include fields written, the record as
    it is (no match, ``mode=left``), or None (dropped)."""
    values = tuple(_cell(get(record, name)) for name in fields)
    row = None if "" in values else JOINED[number - 1].get(values)
    if negated:
        return None if row is not None else record
    if row is None:
        return None if strict else record
    out = dict(record)
    out.update(row)
    return out

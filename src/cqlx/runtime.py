"""What generated matchers call: field access and CQL's value semantics, standard library only.

This file is copied verbatim into every module written by ``cqlx convert --to python``, so the
saved matcher runs without cqlx installed. Keep it self-contained: no cqlx imports.

Semantics (SEMANTICS.md): a field is missing when the event lacks it or holds JSON null; string
tests see strings, and numbers as their decimal text; lists and objects are not strings, so string
tests on them are false. ``#tag`` fields are read as ``#tag``, then ``tag``.
"""

import heapq
import re
from collections.abc import Iterable, Iterator
from typing import Any

_MISSING = None


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


def search(regex: re.Pattern[str], value: Any) -> bool:
    string = text(value)
    return string is not None and regex.search(string) is not None


def fullmatch(regex: re.Pattern[str], value: Any) -> bool:
    string = text(value)
    return string is not None and regex.fullmatch(string) is not None


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


def free_text(record: dict[str, Any], needle: str) -> bool:
    """Free-text search: in ``@rawstring`` when the event has it, else in every field's value."""
    raw = record.get("@rawstring")
    if isinstance(raw, str):
        return needle in raw
    return any(needle in string for string in _strings(record))


def free_regex(record: dict[str, Any], regex: re.Pattern[str]) -> bool:
    raw = record.get("@rawstring")
    if isinstance(raw, str):
        return regex.search(raw) is not None
    return any(regex.search(string) is not None for string in _strings(record))


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


def sort_key(record: dict[str, Any], keys: tuple[tuple[str, bool, str], ...]) -> tuple[Any, ...]:
    """The key that orders rows as ``sort()``: missing or unparsable values go last, either way."""
    parts: list[tuple[int, Any]] = []
    for name, descending, kind in keys:
        raw = get(record, name)
        value: Any
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


def top(rows: Iterable[dict[str, Any]], keys: tuple[tuple[str, bool, str], ...], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` rows in ``sort()`` order; ties keep their input order. Holds only
    ``limit`` rows at a time."""
    return heapq.nsmallest(limit, rows, key=lambda row: sort_key(row, keys))


def counted(rows: Iterable[dict[str, Any]], counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    """Pass rows through, counting them in counts["matched"]."""
    for row in rows:
        counts["matched"] = counts.get("matched", 0) + 1
        yield row


def compile_regex(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)

"""Event files: NDJSON (plain or ``.gz``, or ``-`` for stdin), read as a stream.

Every line is accounted for: it is an event (a JSON object), blank, or malformed (not UTF-8, not
JSON, or JSON that is not an object). Malformed lines are skipped and counted, with the first few
kept for the summary; ``strict`` stops at the first one with its file and line number.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from cqlx.ast import Span
from cqlx.errors import RuleFileError

KEEP_EXAMPLES = 5

try:  # the fastest well-kept JSON parser when installed; the standard library otherwise
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _JSONError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is a dependency
    import json

    _loads = json.loads
    _JSONError = ValueError


class EventFileError(RuleFileError):
    """An event file that cannot be read, or a malformed line under ``--strict``."""


@dataclass
class EventStats:
    lines: int = 0
    events: int = 0
    blank: int = 0
    malformed: int = 0
    matched: int = 0
    missing_fields: int = 0  # events without a field the rule's filters test
    not_text: int = 0  # events where a field the rule tests holds an array or an object
    skipped: int = 0  # lines the literal prefilter passed over unparsed: they cannot match
    timed_out: int = 0  # events given up on: a backtracking regex ran past the time limit
    examples: list[str] = field(default_factory=list)

    def tally(self, kind: str, value: Any, where: Callable[[], str]) -> bool:
        """Count one classified line (see :func:`classify`); True when it is an event."""
        if kind == "event":
            self.events += 1
            return True
        if kind == "blank":
            self.blank += 1
            return False
        self.malformed += 1
        if len(self.examples) < KEEP_EXAMPLES:
            self.examples.append(f"{where()}: {value}")
        return False

    @property
    def not_matched(self) -> int:
        return self.events - self.matched - self.timed_out

    def summary(self) -> str:
        undecided = f", {self.timed_out} undecided" if self.timed_out else ""
        text = (f"{self.lines} lines read: {self.events} events ({self.matched} matched, "
                f"{self.not_matched} not matched{undecided}), {self.blank} blank, {self.malformed} malformed")
        if self.skipped:
            text += (f", {self.skipped} skipped unparsed by the literal prefilter (they hold none of the "
                     "text a match needs)")
        if self.timed_out:
            text += ("; undecided: a regex that needs backtracking ran past the time limit on those events "
                     "(--regex-timeout raises it)")
        if self.missing_fields:
            text += f"; {_events(self.missing_fields)} without a field the rule tests"
        if self.not_text:
            text += (f"; {_events(self.not_text)} with an array or object in a field the rule tests (no string "
                     "test matches one)")
        return text


def _events(count: int) -> str:
    return f"{count} event" + ("" if count == 1 else "s")


def _open(name: str) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    path = Path(name)
    try:
        if path.suffix == ".gz":
            import gzip  # only for .gz files: not imported on every run

            return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # a binary stream of lines
        return path.open("rb")
    except FileNotFoundError:
        raise EventFileError(f"{name}: no such event file") from None
    except OSError as error:
        raise EventFileError(f"{name}: cannot read ({error.strerror or error})") from None


def classify(raw: bytes) -> tuple[str, Any]:
    """('event', dict) | ('blank', None) | ('malformed', reason) for one raw line."""
    if not raw.strip():
        return "blank", None
    try:
        value = _loads(raw)
    except _JSONError as error:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return "malformed", f"not UTF-8 (byte {bad.start})"
        if "depth limit" in str(error):
            return "malformed", "JSON nested deeper than the parser's limit of 1024 levels"
        return "malformed", f"not JSON ({error})"
    except RecursionError:
        return "malformed", "JSON nested too deeply"
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        return "malformed", f"JSON {kind}, not an object"
    return "event", value


def read_events(names: list[str], stats: EventStats, strict: bool = False) -> Iterator[dict[str, Any]]:
    """The events of the named files in order, counting every line into ``stats``."""
    for name in names:
        stream = _open(name)
        try:
            label = "<stdin>" if name == "-" else name
            for number, raw in enumerate(stream, start=1):
                stats.lines += 1
                kind, value = classify(raw)
                if strict and kind == "malformed":
                    raise EventFileError(f"{label}:{number}: malformed event line: {value}",
                                         Span(number, 1, number, 2), filename=None)
                if stats.tally(kind, value, partial("{}:{}".format, label, number)):
                    yield value
        except OSError as error:  # a corrupt .gz stream, for example
            raise EventFileError(f"{name}: cannot read ({error})") from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()

"""Reading events fast: scan raw NDJSON in large chunks for a rule's required literals and parse
only the lines that could match (:mod:`cqlx.prefilter` says why that is sound).

Every line is still accounted for: a line the prefilter passes over is counted as *skipped* (it
cannot match, and it is not parsed, so it is not known to be well-formed); parsed lines are
events, blank or malformed as in :mod:`cqlx.events`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cqlx.events import KEEP_EXAMPLES, EventFileError, EventStats, _open, classify
from cqlx.prefilter import Need, Prefilter

CHUNK = 4 << 20
_ESCAPE = b"\\u"

def _holds(line: bytes, need: Need) -> bool:
    hay = line.lower() if need.folded else line
    return any(literal in hay for literal in need.literals)


def _candidates(chunk: bytes, scan: Need) -> list[int]:
    """Start offsets of the lines of ``chunk`` that hold one of the scanned literals, or a ``\\u``
    escape (which could spell one), in order."""
    hay = chunk.lower() if scan.folded else chunk
    starts: set[int] = set()
    for literal, haystack in [*((x, hay) for x in scan.literals), (_ESCAPE, chunk)]:
        index = haystack.find(literal)
        while index != -1:
            start = chunk.rfind(b"\n", 0, index) + 1
            starts.add(start)
            end = chunk.find(b"\n", index)
            if end == -1:
                break
            index = haystack.find(literal, end)
    return sorted(starts)


def _chunks(stream: Any) -> Iterator[bytes]:
    """The stream in chunks that end at a line boundary."""
    rest = b""
    while True:
        block = stream.read(CHUNK)
        if not block:
            if rest:
                yield rest
            return
        block = rest + block
        cut = block.rfind(b"\n")
        if cut == -1:
            rest = block
            continue
        rest = block[cut + 1:]
        yield block[:cut + 1]


def scan_events(names: list[str], stats: EventStats, prefilter: Prefilter) -> Iterator[dict[str, Any]]:
    """The events of the named files that could match, in order; every line counted in ``stats``."""
    scan = prefilter.scan
    others = tuple(n for n in prefilter.needs if n is not scan)
    for name in names:
        file_lines = 0
        stream = _open(name)
        try:
            for chunk in _chunks(stream):
                lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
                first_line = file_lines + 1
                file_lines += lines
                stats.lines += lines
                starts = _candidates(chunk, scan) if scan is not None else None
                parsed = 0
                for start, raw in _lines(chunk, starts):
                    if others and not all(_holds(raw, n) for n in others) and _ESCAPE not in raw:
                        continue
                    parsed += 1
                    kind, value = classify(raw)
                    if kind == "event":
                        stats.events += 1
                        yield value
                    elif kind == "blank":
                        stats.blank += 1
                    else:
                        stats.malformed += 1
                        if len(stats.examples) < KEEP_EXAMPLES:
                            number = first_line + chunk.count(b"\n", 0, start)
                            stats.examples.append(f"{'<stdin>' if name == '-' else name}:{number}: {value}")
                stats.skipped += lines - parsed
        except OSError as error:
            raise EventFileError(f"{name}: cannot read ({error})") from None
        finally:
            if hasattr(stream, "close") and name != "-":
                stream.close()


def _lines(chunk: bytes, starts: list[int] | None) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for the given line starts, or for every line."""
    if starts is None:
        offset = 0
        for line in chunk.split(b"\n")[: chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)]:
            yield offset, line
            offset += len(line) + 1
        return
    for start in starts:
        end = chunk.find(b"\n", start)
        yield start, chunk[start:end if end != -1 else len(chunk)]

"""Reading events fast: scan raw NDJSON in large chunks for a rule's required literals and parse
only the lines that could match (:mod:`cqlx.prefilter` says why that is sound).

Every line is still accounted for: a line the prefilter passes over is counted as *skipped* (it
cannot match, and it is not parsed, so it is not known to be well-formed); parsed lines are
events, blank or malformed as in :mod:`cqlx.events`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

from cqlx.events import KEEP_EXAMPLES, EventFileError, EventStats, _open, classify
from cqlx.prefilter import Need, Prefilter

CHUNK = 4 << 20
NEWLINE = b"\n"
_ESCAPE = b"\\u"

def _holds(line: bytes, need: Need) -> bool:
    hay = line.lower() if need.folded else line
    return any(literal in hay for literal in need.literals)


def _scanner(scan: Need) -> Any:
    """One RE2 pattern for all the scanned literals and the ``\\u`` escape: RE2 finds them in a
    single linear pass (several hundred MB/s), which ``bytes.lower`` plus one ``find`` per literal
    cannot match in Python."""
    import re2

    alternatives = [re.escape(x.decode("ascii")) for x in scan.literals]
    # A JSON escape is a lower-case \u; under (?i) it would also find the \U of every escaped
    # Windows path (C:\\Users), so it keeps its case.
    escape = "(?-i:" + re.escape("\\u") + ")" if scan.folded else re.escape("\\u")
    flags = "(?i)" if scan.folded else ""
    return re2.compile((flags + "|".join([*alternatives, escape])).encode("ascii"))


def _candidates(chunk: bytes, begin: int, end: int, scanner: Any) -> list[int]:
    """Start offsets of the lines in ``chunk[begin:end]`` that hold a scanned literal or a ``\\u``
    escape. Works on offsets into the read buffer: no copy of the data is made."""
    starts: list[int] = []
    position = begin
    search = scanner.search
    while position < end:
        found = search(chunk, position, end)
        if found is None:
            break
        index = found.start()
        starts.append(chunk.rfind(b"\n", begin, index) + 1 if index > begin else begin)
        newline = chunk.find(b"\n", index, end)
        if newline == -1:
            break
        position = newline + 1
    return starts


def _windows(stream: Any) -> Iterator[tuple[bytes, int, int]]:
    """The stream as (buffer, begin, end) windows of whole lines, without copying the buffers:
    the line cut by a read boundary is joined with the start of the next read (a small copy)."""
    rest = b""
    while True:
        block = stream.read(CHUNK)
        if not block:
            if rest:
                yield rest, 0, len(rest)
            return
        first = block.find(b"\n")
        if first == -1:
            rest += block
            continue
        if rest:
            joined = rest + block[:first + 1]
            yield joined, 0, len(joined)
            begin = first + 1
        else:
            begin = 0
        last = block.rfind(b"\n")
        if last + 1 > begin:
            yield block, begin, last + 1
        rest = block[last + 1:]


def _scan_window(chunk: bytes, begin: int, end: int, scanner: Any, others: tuple[Need, ...], stats: EventStats,
                 where: Callable[[int], str]) -> Iterator[dict[str, Any]]:
    """The candidate events of one window of whole lines, counting every line."""
    lines = chunk.count(b"\n", begin, end) + (0 if chunk[end - 1:end] == b"\n" else 1)
    stats.lines += lines
    starts = _candidates(chunk, begin, end, scanner) if scanner is not None else None
    parsed = 0
    for start, raw in _lines(chunk, begin, end, starts):
        if others and not all(_holds(raw, n) for n in others) and _ESCAPE not in raw:
            continue
        parsed += 1
        kind, value = classify(raw)
        if stats.tally(kind, value, partial(where, start)):
            yield value
    stats.skipped += lines - parsed


def _parts(prefilter: Prefilter) -> tuple[Any, tuple[Need, ...]]:
    scan = prefilter.scan
    return (_scanner(scan) if scan is not None else None), tuple(n for n in prefilter.needs if n is not scan)


def scan_events(names: list[str], stats: EventStats, prefilter: Prefilter, jobs: int = 1) -> Iterator[dict[str, Any]]:
    """The events of the named files that could match, in order; every line counted in ``stats``.
    With ``jobs`` > 1, regular files are split into byte ranges scanned by that many processes."""
    scanner, others = _parts(prefilter)
    for name in names:
        if jobs > 1 and name != "-" and not name.endswith(".gz") and Path(name).is_file():
            yield from _scan_parallel(name, stats, prefilter, jobs)
            continue
        file_lines = 0
        stream = _open(name)
        label = "<stdin>" if name == "-" else name
        try:
            for chunk, begin, end in _windows(stream):
                first_line = file_lines + 1
                file_lines += chunk.count(b"\n", begin, end) + (0 if chunk[end - 1:end] == b"\n" else 1)

                def where(offset: int, chunk: bytes = chunk, begin: int = begin, first: int = first_line,
                          label: str = label) -> str:
                    return f"{label}:{first + chunk.count(NEWLINE, begin, offset)}"

                yield from _scan_window(chunk, begin, end, scanner, others, stats, where)
        except OSError as error:
            raise EventFileError(f"{name}: cannot read ({error})") from None
        finally:
            if hasattr(stream, "close") and name != "-":
                stream.close()


def _scan_range(name: str, start: int, stop: int, prefilter: Prefilter) -> tuple[list[dict[str, Any]], EventStats]:
    """One worker's share: the lines that begin in [start, stop) of a file."""
    scanner, others = _parts(prefilter)
    stats = EventStats()
    events: list[dict[str, Any]] = []
    with open(name, "rb") as stream:
        if start > 0:
            stream.seek(start - 1)
            stream.readline()  # the line under way at `start` belongs to the previous share
        position = stream.tell()
        while position < stop:
            block = stream.read(min(CHUNK, stop - position))
            if not block:
                break
            block += stream.readline() if not block.endswith(b"\n") else b""  # finish the last line
            offset = position

            def where(at: int, offset: int = offset) -> str:
                return f"{name}:byte {offset + at}"

            events.extend(_scan_window(block, 0, len(block), scanner, others, stats, where))
            position += len(block)
    return events, stats


def _scan_parallel(name: str, stats: EventStats, prefilter: Prefilter, jobs: int) -> Iterator[dict[str, Any]]:
    from concurrent.futures import ProcessPoolExecutor

    size = Path(name).stat().st_size
    pieces = max(jobs * 4, 1)
    bounds = [size * i // pieces for i in range(pieces + 1)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_scan_range, name, a, b, prefilter) for a, b in pairwise(bounds)]
        for future in futures:  # in file order: ties in a sort keep the input order
            events, part = future.result()
            for counter in ("lines", "events", "blank", "malformed", "skipped"):
                setattr(stats, counter, getattr(stats, counter) + getattr(part, counter))
            stats.examples.extend(part.examples[:max(0, KEEP_EXAMPLES - len(stats.examples))])
            yield from events


def _lines(chunk: bytes, begin: int, end: int, starts: list[int] | None) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for the given line starts, or for every line of the window."""
    if starts is None:
        offset = begin
        while offset < end:
            newline = chunk.find(b"\n", offset, end)
            stop = newline if newline != -1 else end
            yield offset, chunk[offset:stop]
            offset = stop + 1
        return
    for start in starts:
        newline = chunk.find(b"\n", start, end)
        yield start, chunk[start:newline if newline != -1 else end]

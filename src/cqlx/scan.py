"""Reading events fast: scan raw NDJSON for a rule's required literals and parse only the lines
that could match (:mod:`cqlx.prefilter` says why that is sound).

Regular files are mapped into memory (no copy) and scanned in windows of whole lines; ``-``, ``.gz``
and anything that cannot be mapped are read in large chunks. The scan is Hyperscan's (Intel's
multi-literal engine: one pass over the window for all the literals and the ``\\u`` escape) when
the ``hyperscan`` package is installed, else one RE2 alternation.

A mapped file must not shrink while it is read (as for any program that maps its input, the
operating system stops the process if it does); one that grows is read up to its size at the start.

Every line is still accounted for: a line the prefilter passes over is counted as *skipped* (it
cannot match, and it is not parsed, so it is not known to be well-formed); parsed lines are
events, blank or malformed as in :mod:`cqlx.events`.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Callable, Iterator
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

from cqlx.events import KEEP_EXAMPLES, EventFileError, EventStats, _open, classify
from cqlx.prefilter import Need, Prefilter

CHUNK = 1 << 20  # bytes per window: large enough to amortise a scan call, small enough to stay in cache
NEWLINE = b"\n"
_ESCAPE = b"\\u"
_BACKSLASH = 0x5C

Buffer = Any  # bytes or mmap.mmap: both have find, rfind, slicing and indexing


def _is_escape(buffer: Buffer, backslash: int, floor: int) -> bool:
    """Whether the backslash at ``backslash`` starts an escape: an even number of backslashes
    (down to ``floor``) come before it. ``\\\\u`` is an escaped backslash, then a plain ``u``."""
    before = 0
    position = backslash - 1
    while position >= floor and buffer[position] == _BACKSLASH:
        before += 1
        position -= 1
    return before % 2 == 0


def _line_count(buffer: Buffer, begin: int, end: int) -> int:
    """Lines in ``buffer[begin:end]`` (the last one may lack its newline). One ``find`` (memchr)
    per line: faster than ``bytes.count`` once lines are a few hundred bytes long, and it needs
    no copy of a mapped file."""
    if begin >= end:
        return 0
    count = 0
    find = buffer.find
    position = find(NEWLINE, begin, end) + 1
    while position:
        count += 1
        position = find(NEWLINE, position, end) + 1
    return count + (0 if buffer[end - 1] == NEWLINE[0] else 1)


def _holds(line: bytes, need: Need) -> bool:
    hay = line.lower() if need.folded else line
    return any(literal in hay for literal in need.literals)


class Scanner(Protocol):
    def candidates(self, buffer: Buffer, view: memoryview, begin: int, end: int) -> list[tuple[int, int]]:
        """(start, stop) of the lines in ``buffer[begin:end]`` (whole lines) that could match."""


class HyperscanScanner:
    """One Hyperscan database for the scanned need's literals and the ``\\u`` escape, run over a
    whole window; the lines it reports are checked for the other needs with a second database
    (each need's literals under the need's number, reported once per line)."""

    LITERAL, ESCAPE = 0, 1

    def __init__(self, scan: Need, others: tuple[Need, ...]) -> None:
        import hyperscan

        self._hs = hyperscan
        self._scan = self._database([scan.literals, [_ESCAPE]], [scan.folded, False], single=False)
        self._scan_scratch = hyperscan.Scratch(self._scan)
        self._others = len(others)
        self._check = None
        if others:
            self._check = self._database([n.literals for n in others], [n.folded for n in others], single=True)
            self._check_scratch = hyperscan.Scratch(self._check)
        self._seen: set[int] = set()

    def _database(self, groups: list[Any], folded: list[bool], single: bool) -> Any:
        hs = self._hs
        expressions, ids, flags = [], [], []
        for number, (literals, fold) in enumerate(zip(groups, folded, strict=True)):
            for literal in literals:
                expressions.append(literal)
                ids.append(number)
                flags.append((hs.HS_FLAG_CASELESS if fold else 0) | (hs.HS_FLAG_SINGLEMATCH if single else 0))
        database = hs.Database(mode=hs.HS_MODE_BLOCK)
        database.compile(expressions=expressions, ids=ids, flags=flags, literal=True)
        return database

    def _others_hold(self, view: memoryview, start: int, stop: int) -> bool:
        if self._check is None:
            return True
        seen = self._seen
        seen.clear()
        self._check.scan(view[start:stop], match_event_handler=lambda ident, *_: seen.add(ident),
                         scratch=self._check_scratch)
        return len(seen) == self._others

    def candidates(self, buffer: Buffer, view: memoryview, begin: int, end: int) -> list[tuple[int, int]]:
        hits: list[tuple[int, int]] = []  # (end offset in the window, database id)
        append = hits.append

        def found(ident: int, start: int, stop: int, flags: int, context: Any) -> None:
            append((stop, ident))

        self._scan.scan(view[begin:end], match_event_handler=found, scratch=self._scan_scratch)
        hits.sort()  # Hyperscan reports in end order; sorting what is sorted is one pass
        lines: list[tuple[int, int]] = []
        index, total = 0, len(hits)
        while index < total:
            at = begin + hits[index][0]
            start = buffer.rfind(NEWLINE, begin, at) + 1 or begin
            stop = buffer.find(NEWLINE, at, end)
            stop = end if stop == -1 else stop
            literal = escape = False
            while index < total and begin + hits[index][0] <= stop:
                hit, ident = hits[index]
                if ident == self.ESCAPE:
                    escape = escape or _is_escape(buffer, begin + hit - 2, start)
                else:
                    literal = True
                index += 1
            if escape or (literal and self._others_hold(view, start, stop)):
                lines.append((start, stop))
        return lines


class Re2Scanner:
    """One RE2 alternation for the scanned literals and the ``\\u`` escape; the other needs are
    checked in Python on each line it finds."""

    def __init__(self, scan: Need, others: tuple[Need, ...]) -> None:
        import re2

        alternatives = [re.escape(x.decode("ascii")) for x in scan.literals]
        # A JSON escape is a lower-case \u; under (?i) it would also find the \U of every escaped
        # Windows path (C:\\Users), so it keeps its case.
        escape = "(?-i:" + re.escape("\\u") + ")" if scan.folded else re.escape("\\u")
        flags = "(?i)" if scan.folded else ""
        self._search = re2.compile((flags + "|".join([*alternatives, escape])).encode("ascii")).search
        self._others = others

    def _others_hold(self, line: bytes) -> bool:
        return all(_holds(line, need) for need in self._others)

    def candidates(self, buffer: Buffer, view: memoryview, begin: int, end: int) -> list[tuple[int, int]]:
        lines: list[tuple[int, int]] = []
        position = begin
        search = self._search
        while position < end:
            found = search(buffer, position, end)
            if found is None:
                break
            index = found.start()
            start = buffer.rfind(NEWLINE, begin, index) + 1 or begin
            stop = buffer.find(NEWLINE, index, end)
            stop = end if stop == -1 else stop
            if found.end() - index == 2 and buffer[index:index + 2] == _ESCAPE:
                if not _is_escape(buffer, index, start):
                    position = index + 1  # an escaped backslash before a u: look further along the line
                    continue
                lines.append((start, stop))
            elif not self._others:
                lines.append((start, stop))
            else:
                line = buffer[start:stop]
                if self._others_hold(line) or _has_escape(line):
                    lines.append((start, stop))
            position = stop + 1
        return lines


def engine() -> str:
    """The scanning engine this installation uses: Hyperscan when it is installed, unless
    ``CQLX_SCANNER=re2`` asks for RE2 (to compare them)."""
    if os.environ.get("CQLX_SCANNER") == "re2":
        return "re2"
    try:
        import hyperscan  # noqa: F401
    except ImportError:
        return "re2"
    return "hyperscan"


def scanner(prefilter: Prefilter, name: str | None = None) -> tuple[Scanner | None, tuple[Need, ...]]:
    """The scanner for a prefilter (None: no need to scan for; every line is parsed) and the needs
    every parsed line is checked for instead."""
    scan = prefilter.scan
    others = tuple(n for n in prefilter.needs if n is not scan)
    if scan is None:
        return None, others
    chosen = name or engine()
    return (HyperscanScanner(scan, others) if chosen == "hyperscan" else Re2Scanner(scan, others)), ()


def _stream_windows(stream: Any) -> Iterator[tuple[bytes, int, int]]:
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


def _mapped_windows(mapped: mmap.mmap, begin: int, end: int) -> Iterator[tuple[int, int]]:
    """[begin, end) of a mapped file as windows of whole lines of about CHUNK bytes."""
    while begin < end:
        stop = min(begin + CHUNK, end)
        if stop < end:
            cut = mapped.rfind(NEWLINE, begin, stop)
            if cut == -1:  # one line longer than a window: take all of it
                cut = mapped.find(NEWLINE, stop, end)
            stop = end if cut == -1 else cut + 1
        yield begin, stop
        begin = stop


def _scan_window(buffer: Buffer, view: memoryview, begin: int, end: int, found: Scanner | None,
                 others: tuple[Need, ...], stats: EventStats, where: Callable[[int], str]
                 ) -> Iterator[dict[str, Any]]:
    """The candidate events of one window of whole lines, counting every line."""
    lines = _line_count(buffer, begin, end)
    stats.lines += lines
    parsed = 0
    for start, stop in found.candidates(buffer, view, begin, end) if found is not None else _every_line(
            buffer, begin, end):
        raw = buffer[start:stop]
        if others and not all(_holds(raw, n) for n in others) and not _has_escape(raw):
            continue
        parsed += 1
        kind, value = classify(raw)
        if stats.tally(kind, value, partial(where, start)):
            yield value
    stats.skipped += lines - parsed


def _has_escape(line: bytes) -> bool:
    index = line.find(_ESCAPE)
    while index != -1:
        if _is_escape(line, index, 0):
            return True
        index = line.find(_ESCAPE, index + 1)
    return False


def _every_line(buffer: Buffer, begin: int, end: int) -> Iterator[tuple[int, int]]:
    offset = begin
    while offset < end:
        newline = buffer.find(NEWLINE, offset, end)
        stop = newline if newline != -1 else end
        yield offset, stop
        offset = stop + 1


def _mapped(name: str) -> mmap.mmap | None:
    """The file mapped read-only, or None when it is not a regular file that can be mapped."""
    if name == "-" or name.endswith(".gz"):
        return None
    try:
        with open(name, "rb") as handle:
            if not Path(name).is_file() or os.fstat(handle.fileno()).st_size == 0:
                return None
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
        mapped.madvise(mmap.MADV_SEQUENTIAL)
    return mapped


def scan_events(names: list[str], stats: EventStats, prefilter: Prefilter, jobs: int = 1,
                engine_name: str | None = None) -> Iterator[dict[str, Any]]:
    """The events of the named files that could match, in order; every line counted in ``stats``.
    With ``jobs`` > 1, regular files are split into byte ranges scanned by that many processes."""
    found, others = scanner(prefilter, engine_name)
    for name in names:
        if jobs > 1 and name != "-" and not name.endswith(".gz") and Path(name).is_file():
            yield from _scan_parallel(name, stats, prefilter, jobs, engine_name)
            continue
        mapped = _mapped(name)
        if mapped is not None:
            yield from _scan_mapped(name, mapped, 0, len(mapped), found, others, stats, f"{name}:", True)
            continue
        yield from _scan_stream(name, found, others, stats)


def _scan_mapped(name: str, mapped: mmap.mmap, begin: int, end: int, found: Scanner | None, others: tuple[Need, ...],
                 stats: EventStats, label: str, numbered: bool) -> Iterator[dict[str, Any]]:
    """The events of [begin, end) of a mapped file (closed at the end). ``numbered``: a malformed
    line is named by its line number (else by its byte offset)."""
    file_lines = 0
    released = begin - begin % mmap.PAGESIZE
    release = getattr(mapped, "madvise", None) if hasattr(mmap, "MADV_DONTNEED") else None
    try:
        with memoryview(mapped) as view:
            for window, stop in _mapped_windows(mapped, begin, end):
                first = file_lines + 1

                def where(offset: int, window: int = window, first: int = first) -> str:
                    if numbered:
                        return f"{label}{first + mapped[window:offset].count(NEWLINE)}"
                    return f"{label}byte {offset}"

                before = stats.lines
                yield from _scan_window(mapped, view, window, stop, found, others, stats, where)
                file_lines += stats.lines - before
                if release is not None and stop - released >= 16 * CHUNK:
                    # Pages already read leave this process (the page cache keeps them): the
                    # resident size stays that of a few windows, not of the file.
                    done = stop - stop % mmap.PAGESIZE
                    release(mmap.MADV_DONTNEED, released, done - released)
                    released = done
    except OSError as error:  # the file shrank or its disk failed under the mapping
        raise EventFileError(f"{name}: cannot read ({error})") from None
    finally:
        mapped.close()


def _scan_stream(name: str, found: Scanner | None, others: tuple[Need, ...], stats: EventStats
                 ) -> Iterator[dict[str, Any]]:
    file_lines = 0
    stream = _open(name)
    label = "<stdin>" if name == "-" else name
    try:
        for chunk, begin, end in _stream_windows(stream):
            first_line = file_lines + 1

            def where(offset: int, chunk: bytes = chunk, begin: int = begin, first: int = first_line) -> str:
                return f"{label}:{first + chunk.count(NEWLINE, begin, offset)}"

            before = stats.lines
            with memoryview(chunk) as view:
                yield from _scan_window(chunk, view, begin, end, found, others, stats, where)
            file_lines += stats.lines - before
    except OSError as error:
        raise EventFileError(f"{name}: cannot read ({error})") from None
    finally:
        if hasattr(stream, "close") and name != "-":
            stream.close()


def _scan_range(name: str, start: int, stop: int, prefilter: Prefilter, engine_name: str | None
                ) -> tuple[list[dict[str, Any]], EventStats]:
    """One worker's share: the lines that begin in [start, stop) of a file."""
    found, others = scanner(prefilter, engine_name)
    stats = EventStats()
    mapped = _mapped(name)
    if mapped is None:  # empty, or on a file system that cannot map it: read the share
        return _read_range(name, start, stop, found, others, stats), stats
    size = len(mapped)
    if start > 0:  # the line under way at `start` belongs to the previous share
        cut = mapped.find(NEWLINE, start - 1, size)
        start = size if cut == -1 else cut + 1
    if stop < size:
        cut = mapped.find(NEWLINE, stop - 1, size)
        stop = size if cut == -1 else cut + 1
    if start >= stop:
        mapped.close()
        return [], stats
    events = list(_scan_mapped(name, mapped, start, stop, found, others, stats, f"{name}:", False))
    return events, stats


def _read_range(name: str, start: int, stop: int, found: Scanner | None, others: tuple[Need, ...],
                stats: EventStats) -> list[dict[str, Any]]:
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
            block += stream.readline() if not block.endswith(NEWLINE) else b""  # finish the last line

            def where(at: int, offset: int = position) -> str:
                return f"{name}:byte {offset + at}"

            with memoryview(block) as view:
                events.extend(_scan_window(block, view, 0, len(block), found, others, stats, where))
            position += len(block)
    return events


def _scan_parallel(name: str, stats: EventStats, prefilter: Prefilter, jobs: int, engine_name: str | None
                   ) -> Iterator[dict[str, Any]]:
    from concurrent.futures import ProcessPoolExecutor

    size = Path(name).stat().st_size
    pieces = max(jobs * 4, 1)
    bounds = [size * i // pieces for i in range(pieces + 1)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_scan_range, name, a, b, prefilter, engine_name) for a, b in pairwise(bounds)]
        for future in futures:  # in file order: ties in a sort keep the input order
            events, part = future.result()
            for counter in ("lines", "events", "blank", "malformed", "skipped"):
                setattr(stats, counter, getattr(stats, counter) + getattr(part, counter))
            stats.examples.extend(part.examples[:max(0, KEEP_EXAMPLES - len(stats.examples))])
            yield from events

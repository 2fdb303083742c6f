"""``cqlx convert``: convert rule files and directories to the chosen targets, on stdout or into a
directory, with a progress bar, a summary per target and a JSON report. The work is in
:mod:`cqlx.batch`; this module prints, writes and draws the progress bar (stderr, only when stderr
is a terminal or with ``--progress``; stdout is never touched by it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer

from cqlx import batch
from cqlx.errors import CqlError
from cqlx.options import ParseOptions

COMMENT = {"spl": "```{}```", "kql": "// {}", "sigma": "# {}", "python": "# {}", "cql": "// {}"}


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _write(path: Path, text: str, made: set[Path]) -> None:
    try:
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        # Three system calls: open() adds a terminal check, seeks and a stat to each of thousands of files.
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(handle, data):]
        finally:
            os.close(handle)
    except OSError as error:
        raise CqlError(f"{path}: cannot write ({error.strerror or error})") from None


_MADE: set[Path] = set()  # the output directories this process has made


def _convert(entry: batch.Entry, targets: tuple[batch.Target, ...], policy: str,
             output: Path | None, kept: bool = False) -> batch.Converted:
    """Convert one entry; with an output directory, write its files here (in the worker, so the
    writing is spread over the processes too) and return no texts."""
    converted = batch.convert_entry(entry, targets, policy, kept)
    if output is None:
        return converted
    texts = dict(converted.outputs)
    result = converted.result
    for outcome in result.outcomes if result.error is None else ():
        if outcome.written:
            _write(output / outcome.file, texts[outcome.target], _MADE)
    return batch.Converted(result, ())


class _Bar:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self.progress = progress
        self.task = task

    def step(self, label: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=label)


@contextlib.contextmanager
def _progress(show: bool, force: bool, total: int) -> Iterator[_Bar]:
    if not show:
        yield _Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True, force_terminal=True if force else None)
    columns = (TextColumn("{task.description}", style="dim", markup=False), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, redirect_stdout=False) as progress:
        yield _Bar(progress, progress.add_task("converting", total=total))


@contextlib.contextmanager
def _conversions(entries: Sequence[batch.Entry], targets: tuple[batch.Target, ...], policy: str,
                 jobs: int, output: Path | None) -> Iterator[Iterator[batch.Converted]]:
    """Each entry converted (and written, with ``output``), in order: here, or in ``jobs`` forked
    processes (the parent prints). The pool starts before the progress bar's thread does."""
    # One rule (an editor's or a pre-commit hook's convert) keeps its parse between processes: run
    # again, it imports no Lark. A library parses in process, where the parser loads once and
    # each parse costs less than keeping it would.
    work = functools.partial(_convert, targets=targets, policy=policy, output=output, kept=len(entries) == 1)
    if jobs <= 1 or len(entries) < 2:
        yield (work(entry) for entry in entries)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, min(32, len(entries) // (jobs * 8)))
    with ProcessPoolExecutor(min(jobs, len(entries)), mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool.map(work, entries, chunksize=chunk)


def run_convert(names: list[str], targets: tuple[batch.Target, ...], output: Path | None, policy: str,
                report: Path | None, progress: bool | None, jobs: int = 1,
                options: ParseOptions | None = None) -> int:
    """Run the command on the targets of :func:`cqlx.batch.parse_targets`; returns the exit status
    (0 all written, 1 some refused, 2 some failed to load or parse). ``options``: query
    parameters and saved searches every rule is parsed with."""
    collected = batch.collect(names, options)
    for path, reason in collected.skipped:
        _err(f"{path}: skipped: {reason}")
    entries = collected.entries
    if not entries:
        _err("cqlx: no rule files found")
        return 2
    several = len(entries) * len(targets) > 1
    language = {t.name: t.language for t in targets}
    show = progress if progress is not None else (len(entries) > 1 and sys.stderr.isatty())
    results: list[batch.RuleOutcome] = []
    with _conversions(entries, targets, policy, jobs, output) as conversions, \
            _progress(show, bool(progress), len(entries)) as bar:
        for converted in conversions:
            result = converted.result
            texts = dict(converted.outputs)
            told = [result.problem] if result.problem else []
            for outcome in result.outcomes if result.error is None else ():
                told += [outcome.problem] if outcome.problem else []
                told += outcome.warnings
                if not outcome.written:
                    continue
                if output is not None:
                    if len(entries) == 1:
                        told.append(f"wrote {output / outcome.file}")
                else:
                    if told:  # what is said about this output comes before it, as it always has
                        _err("\n".join(told))
                        told = []
                    text = texts[outcome.target]
                    if several:
                        head = f"{result.path} -> {outcome.target}"
                        typer.echo(COMMENT.get(language[outcome.target], "# {}").format(head))
                    typer.echo(text, nl=False)
                    if several:
                        typer.echo()
            if told:
                _err("\n".join(told))
            results.append(result)
            bar.step(result.path)
    status = batch.exit_status(results)
    if len(entries) > 1:
        _summary(results, targets, output, collected.skipped)
    if report is not None:
        data = batch.report_json(results, targets, policy, str(output) if output is not None else None,
                                 collected.skipped)
        _write(report, json.dumps(data, indent=1, ensure_ascii=False) + "\n", _MADE)
        _err(f"wrote {report}")
    return status


def _summary(results: list[batch.RuleOutcome], targets: tuple[batch.Target, ...], output: Path | None,
             skipped: tuple[tuple[str, str], ...]) -> None:
    """The per-target table and one line of totals: on stdout with --output (it is the command's
    output then), on stderr when stdout holds the conversions."""
    table = batch.totals(results, targets)
    echo = (lambda line: typer.echo(line)) if output is not None else _err
    echo("")
    for line in batch.summary_lines(table):
        echo(line)
    written = sum(c["written"] for c in table.values())
    refused = sum(c["refused"] for c in table.values())
    broken = sum(1 for r in results if r.error is not None)
    parts = [f"{len(results)} rules x {len(targets)} targets", f"{written} written"
             + (f" under {output}" if output is not None else "")]
    if refused:
        parts.append(f"{refused} refused")
    if broken:
        parts.append(f"{broken} rule{'s' if broken > 1 else ''} failed to load or parse")
    if skipped:
        parts.append(f"{len(skipped)} file{'s' if len(skipped) > 1 else ''} skipped (no query)")
    echo("; ".join(parts))

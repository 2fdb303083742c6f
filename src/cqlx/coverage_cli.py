"""``cqlx coverage``: assess a rule library, print the matrix and totals, write the reports.

Exit codes as the other commands: 0 done; 1 with ``--fail-on-gaps`` when a target lost a technique;
2 bad input (an unknown target or profile, an unreadable baseline, a rule that does not load or
parse; the reports are still written, with that rule as failed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cqlx import coverage as cov
from cqlx import coverage_report as report
from cqlx.attack import catalogue
from cqlx.errors import CqlError
from cqlx.options import ParseOptions

_STYLE = {cov.EXACT: "green", cov.PRESENTATION: "yellow", cov.DETECTION: "bold red", cov.FAILED: "bold magenta"}


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise CqlError(f"{path}: cannot write the report ({error.strerror or error})") from None
    _err(f"wrote {path}")


def read_baseline(path: Path) -> cov.Coverage:
    """A ``--json`` report of an earlier run; anything else is a :class:`CqlError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CqlError(f"{path}: cannot read the baseline ({error.strerror or error})") from None
    except ValueError as error:
        raise CqlError(f"{path}: the baseline is not JSON ({error})") from None
    return cov.from_json(data, str(path))


def print_matrix(coverage: cov.Coverage) -> None:
    """The rule x target matrix and the per-target totals, as rich tables on stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    matrix = Table(title="cqlx coverage", show_lines=False)
    matrix.add_column("rule", overflow="fold")
    matrix.add_column("techniques")
    for target in coverage.targets:
        matrix.add_column(target)
    for rule in coverage.rules:
        cells = []
        for target in coverage.targets:
            cell = rule.cell(target)
            status = cell.status if cell is not None else cov.FAILED
            cells.append(f"[{_STYLE[status]}]{cov.LABELS[status]}[/]")
        matrix.add_row(rule.title, ", ".join(rule.techniques) or "-", *cells)
    console.print(matrix)
    techniques = coverage.techniques()
    totals = Table(title="per target")
    totals.add_column("target")
    for status in cov.STATUSES:
        totals.add_column(cov.LABELS[status], justify="right")
    totals.add_column("techniques covered", justify="right")
    for target, counts in coverage.totals().items():
        totals.add_row(target, *(str(counts[s]) for s in cov.STATUSES),
                       f"{len(coverage.covered(target))}/{len(techniques)}")
    console.print(totals)


def run_coverage(rules: list[str], to: str, profiles: list[str], navigator: Path | None, html: Path | None,
                 markdown: Path | None, json_report: Path | None, baseline: Path | None, fail_on_gaps: bool,
                 options: ParseOptions | None = None) -> int:
    """Run the command; returns the exit code. ``options``: query parameters and saved searches
    every rule is parsed with."""
    from cqlx.rules import find_rules

    columns = cov.parse_columns(to, profiles)
    old = read_baseline(baseline) if baseline is not None else None
    if not find_rules(rules):
        _err("cqlx: no rule files found")
        return 2
    attack = catalogue()
    if attack.problem:
        _err(f"cqlx: note: {attack.problem}")
    coverage = cov.assess(rules, columns, attack, options)
    changes = cov.diff(old, coverage) if old is not None else None
    print_matrix(coverage)
    for line in report.terminal_lines(coverage):
        typer.echo(line)
    unknown = sorted({t.id for t in coverage.techniques() if not t.name})
    if unknown and attack.techniques:
        _err(f"cqlx: note: not in ATT&CK Enterprise v{attack.version}: {', '.join(unknown)}")
    if changes is not None:
        typer.echo("changes since the baseline:" if not changes.empty else "no change since the baseline")
        for line in report.diff_lines(changes, coverage):
            typer.echo(f"  {line}")
    if navigator is not None:
        for name, layer in report.navigator_layers(coverage).items():
            _write(navigator / name, report.dumps(layer))
    if html is not None:
        _write(html, report.html_page(coverage, changes))
    if markdown is not None:
        _write(markdown, report.markdown(coverage, changes))
    if json_report is not None:
        _write(json_report, report.dumps(cov.to_json(coverage, changes)))
    status = 0
    for rule in coverage.rules:
        if rule.error is not None:
            where = f"{rule.path}:{rule.error.line}:{rule.error.column}" if rule.error.line else rule.path
            _err(f"{where}: {rule.error.message}")
            status = 2
    if fail_on_gaps:
        gaps = changes.regressions if changes is not None else coverage.gaps()
        for target, technique in gaps:
            what = "lost since the baseline" if changes is not None else "not covered"
            _err(f"gap: {technique} is {what} on {target}")
        if gaps:
            status = max(status, 1)
    return status

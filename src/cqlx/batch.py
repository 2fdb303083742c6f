"""Batch conversion: every rule found, to every chosen target, classified, named and reported.

``cqlx convert DIR... --to all --output OUT`` runs in three steps, all here except the writing:

1. :func:`collect` finds the rule files (directories recursively), reads every query in them (a
   LogScale dashboard or a multi-document YAML holds several) and gives each query an output
   *stem*: its path under the directory it was found in, without the suffix, plus the query's
   name when its file holds several. Stems never collide (compared case-insensitively): two
   files that would share one keep their suffix (``a.cql``, ``a.yml``), then a number.
2. :func:`convert_entry` parses the rule once and converts it to each target; each cell is
   classified by :mod:`cqlx.coverage` (exact, presentation loss, detection loss, failed) and the
   lossy-conversion policy decides what is written: under ``error`` a cell with detection loss is
   refused (not written) and the batch goes on.
3. :func:`totals` and :func:`report_json` summarise the outcomes per target and per rule.

Exit status (:func:`exit_status`): 0 every conversion written; 1 some refused (detection loss
under ``--on-lossy error``, or a construct the target cannot express); 2 some rule files failed to
load or parse. The module does no output; :mod:`cqlx.batch_cli` prints and writes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from cqlx.conversion import TARGETS, apply_policy, convert_query, through_sigma_backend
from cqlx.coverage import FAILED, LABELS, STATUSES, Column, Reason, classify, failed, parse_columns
from cqlx.errors import CqlError, UnsupportedError
from cqlx.frozen import Frozen, record
from cqlx.options import ParseOptions
from cqlx.rules import NoQueryError, Rule, find_rules, load_rules

FORMAT = 1  # version of the JSON report
WRITTEN, REFUSED, ERROR = 0, 1, 2  # an outcome's code, which is also its share of the exit status


@record
class Target(Frozen):
    """A column of the batch: a language with its profile, or cqlx's Sigma through a pySigma backend."""

    column: Column
    backend: str = ""  # ``sigma:BACKEND``
    pipelines: tuple[str, ...] = ()  # pySigma processing pipelines for the backend

    @property
    def name(self) -> str:
        """``kql (mde)``, ``sigma:splunk (sigma)``: the target's label and its key in the report."""
        return f"sigma:{self.backend} ({self.column.profile})" if self.backend else self.column.name

    @property
    def language(self) -> str:
        """The language cqlx emits for it (``sigma`` for a pySigma backend too)."""
        return self.column.language


def parse_targets(to: str, profile: str | None = None, pipelines: Sequence[str] = ()) -> tuple[Target, ...]:
    """The targets of ``--to spl,kql``, ``all`` or ``sigma:BACKEND`` (comma-separated); ``profile``
    (a name or a file) applies to the target of its language. Bad names are a :class:`CqlError`."""
    names = [t.strip() for t in to.split(",") if t.strip()]
    backends = list(dict.fromkeys(n.split(":", 1)[1].strip() for n in names if n.startswith("sigma:")))
    if any(not b for b in backends):
        raise CqlError("sigma: needs the name of a pySigma backend, e.g. --to sigma:splunk")
    languages = [n for n in names if not n.startswith("sigma:")]
    if not languages and not backends:
        raise CqlError("--to names no target; accepted: " + ", ".join((*TARGETS, "all", "sigma:BACKEND")))
    wanted = set(TARGETS) if "all" in languages else set(languages)
    columns = parse_columns(",".join(languages + (["sigma"] if backends else [])), [profile] if profile else [])
    targets = [Target(c) for c in columns if c.language in wanted]
    sigma = next((c for c in columns if c.language == "sigma"), None)
    if sigma is not None:
        targets += [Target(sigma, b, tuple(pipelines)) for b in backends]
    return tuple(targets)


@record
class Entry(Frozen):
    """One query of the batch, or a rule file that could not be read."""

    path: str  # the rule file
    relative: str  # its path under the directory it was found in (the file name when named itself)
    rule: Rule | None  # None: the file could not be read (``problem`` says why)
    stem: str = ""  # where its outputs go under OUT, without the extension (POSIX, unique in the batch)
    problem: str = ""  # the load error as printed (position and caret)
    error: Reason | None = None  # the load error, placed in the file


@record
class Collected(Frozen):
    """What :func:`collect` found: the queries in order, and the files that hold none."""

    entries: tuple[Entry, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason): LogScale package assets without a query


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-.")[:60]


def _natural(entry: Entry) -> str:
    relative = PurePosixPath(entry.relative)
    stem = (relative.parent / relative.stem).as_posix()
    rule = entry.rule
    if rule is not None and rule.index:
        stem += "-" + (_slug(rule.name) or str(rule.index))
    return stem


def assign_stems(entries: Sequence[Entry]) -> tuple[str, ...]:
    """A unique output stem per entry, in order: its natural stem (relative path without suffix, the
    query's name added when its file holds several) when no other entry shares it, otherwise the
    stem with the file's suffix (``a.cql``), then a number (``a.cql-2``). Case-insensitive, as some
    file systems are."""
    natural = [_natural(e) for e in entries]
    counts = Counter(n.casefold() for n in natural)
    taken = {n.casefold() for n in natural if counts[n.casefold()] == 1}
    stems = []
    for entry, base in zip(entries, natural, strict=True):
        if counts[base.casefold()] == 1:
            stems.append(base)
            continue
        suffix = PurePosixPath(entry.relative).suffix
        first = base + suffix
        candidate, number = first, 1
        while candidate.casefold() in taken:
            number += 1
            candidate = f"{first}-{number}"
        taken.add(candidate.casefold())
        stems.append(candidate)
    return tuple(stems)


def collect(names: Sequence[str], options: ParseOptions | None = None) -> Collected:
    """Every query in the files and directories named (directories recursively, sorted), each with
    its output stem; a file named twice is read once. A file that cannot be read is an entry
    without a rule; a package asset without a query is skipped. Each rule carries ``options``
    (query parameters, saved searches), so it parses the same in a worker process."""
    entries: list[Entry] = []
    skipped: list[tuple[str, str]] = []
    seen: set[Path] = set()
    # One rule file named (an editor's or a pre-commit hook's convert) is kept as read, as its IR is
    # (batch_cli): converted again, it needs no YAML parser.
    kept = len(names) == 1 and not Path(names[0]).is_dir()
    for name in names:
        root = Path(name)
        for path in find_rules([name]):
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            relative = path.relative_to(root).as_posix() if root.is_dir() else "stdin.cql" if name == "-" \
                else path.name
            try:
                rules = load_rules(path, options, kept)
            except NoQueryError as error:
                skipped.append((str(path), error.message))
                continue
            except CqlError as error:
                problem = str(error)
                reason = failed(error, None, "").reasons[0]
                entries.append(Entry(str(path), relative, None, problem=problem, error=reason))
                continue
            entries += [Entry(str(path), relative, rule) for rule in rules]
    stems = assign_stems(entries)
    placed = tuple(Entry(e.path, e.relative, e.rule, stem, e.problem, e.error) for e, stem in zip(entries, stems,
                                                                                                   strict=True))
    return Collected(placed, tuple(skipped))


@record
class Outcome(Frozen):
    """One rule on one target: its class, what was written, and what to tell the user."""

    target: str  # Target.name
    status: str  # exact | presentation | detection | failed (cqlx.coverage)
    reasons: tuple[Reason, ...] = ()  # every diagnostic or error, placed in the rule file
    code: int = WRITTEN  # WRITTEN, REFUSED (policy or unsupported construct) or ERROR
    file: str = ""  # the output's path under OUT, POSIX ("" when not written)
    extension: str = ""
    problem: str = ""  # why it was not written, as printed (position and caret)
    warnings: tuple[str, ...] = ()  # ``path:line:column: warning: ...`` lines for what the target loses

    @property
    def written(self) -> bool:
        """The conversion was produced (to a file, or to stdout without --output)."""
        return self.code == WRITTEN


@record
class RuleOutcome(Frozen):
    """One query of the batch on every target."""

    path: str
    title: str
    id: str
    name: str  # the query's name in a file holding several
    index: int  # its position there (0: the file holds one)
    stem: str
    outcomes: tuple[Outcome, ...]
    error: Reason | None = None  # the rule did not load or parse
    problem: str = ""  # that error as printed

    @property
    def code(self) -> int:
        """ERROR when the rule did not load or parse, else the worst of its outcomes."""
        if self.error is not None:
            return ERROR
        return max((o.code for o in self.outcomes), default=WRITTEN)


@record
class Converted(Frozen):
    """A rule's outcomes and the text of each conversion to write, by target name."""

    result: RuleOutcome
    outputs: tuple[tuple[str, str], ...]  # (target name, converted text), written outcomes only


def convert_entry(entry: Entry, targets: Sequence[Target], policy: str = "error", kept: bool = False) -> Converted:
    """Parse the rule once and convert it to every target under the lossy-conversion policy;
    ``kept``: with its IR kept between processes (:meth:`cqlx.rules.Rule.parse_kept`)."""
    rule = entry.rule
    if rule is None:
        cells = tuple(Outcome(t.name, FAILED, (entry.error,) if entry.error else (), ERROR) for t in targets)
        return Converted(RuleOutcome(entry.path, PurePosixPath(entry.path).stem, "", "", 0, entry.stem, cells,
                                     entry.error or Reason(FAILED, entry.problem), entry.problem), ())
    meta = rule.meta
    try:
        query = rule.parse_kept() if kept else rule.parse()
    except CqlError as error:
        reason = failed(error, rule, "", in_file=True).reasons[0]
        cells = tuple(Outcome(t.name, FAILED, (reason,), ERROR) for t in targets)
        return Converted(RuleOutcome(rule.path, meta.title, meta.id, rule.name, rule.index, entry.stem, cells, reason,
                                     str(error)), ())
    outcomes: list[Outcome] = []
    outputs: list[tuple[str, str]] = []
    for target in targets:
        try:
            conversion = convert_query(query, target.language, target.column.load, meta, rule.text)
        except CqlError as error:
            outcomes.append(_failure(error, rule, target))
            continue
        cell = classify(conversion, rule, target.name)
        if conversion.refused(policy):
            try:
                apply_policy(conversion, policy, where=rule.location)
            except UnsupportedError as refusal:
                outcomes.append(Outcome(target.name, cell.status, cell.reasons, REFUSED,
                                        problem=str(rule.relocate(refusal))))
                continue
        if target.backend:
            try:
                conversion = through_sigma_backend(conversion, target.backend, target.pipelines)
            except CqlError as error:
                outcomes.append(_failure(error, rule, target))
                continue
        warnings = () if policy == "ignore" else tuple(
            f"{rule.location(d.span)}: warning: {d.describe()}" for d in conversion.diagnostics)
        outcomes.append(Outcome(target.name, cell.status, cell.reasons, WRITTEN, entry.stem + conversion.extension,
                                conversion.extension, warnings=warnings))
        outputs.append((target.name, conversion.output))
    result = RuleOutcome(rule.path, meta.title, meta.id, rule.name, rule.index, entry.stem, tuple(outcomes))
    return Converted(result, tuple(outputs))


def _failure(error: CqlError, rule: Rule, target: Target) -> Outcome:
    """A target that cannot convert the rule: refused when it cannot express a construct, an error else."""
    cell = failed(error, rule, target.name)
    code = REFUSED if isinstance(error, UnsupportedError) else ERROR
    return Outcome(target.name, FAILED, cell.reasons, code, problem=str(rule.relocate(error)))


def exit_status(results: Sequence[RuleOutcome]) -> int:
    """0 every conversion written; 1 some refused; 2 some rule did not load or parse."""
    return max((r.code for r in results), default=WRITTEN)


def totals(results: Sequence[RuleOutcome], targets: Sequence[Target]) -> dict[str, dict[str, int]]:
    """Per target: rules in each class (exact, presentation, detection, failed), their total, and
    how many conversions were written and refused."""
    table = {t.name: {**dict.fromkeys(STATUSES, 0), "total": 0, "written": 0, "refused": 0} for t in targets}
    for result in results:
        for outcome in result.outcomes:
            counts = table[outcome.target]
            counts[outcome.status] += 1
            counts["total"] += 1
            counts["written"] += outcome.written
            counts["refused"] += outcome.code == REFUSED
    return table


def _diagnostic(path: str, reason: Reason) -> dict[str, Any]:
    location = f"{path}:{reason.line}:{reason.column}" if reason.line else path
    return {"kind": reason.kind, "message": reason.message, "path": path, "line": reason.line,
            "column": reason.column, "location": location, "construct": reason.construct}


def report_json(results: Sequence[RuleOutcome], targets: Sequence[Target], policy: str, output: str | None,
                skipped: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The machine-readable report (``--report FILE.json``): per rule its path, title and id, and
    per target its class, the file written (or null) and each diagnostic with kind, message and
    ``path:line:column``; the totals per target; the skipped files; the exit status."""
    def file(outcome: Outcome) -> str | None:
        if not outcome.written or output is None:
            return None
        return (PurePosixPath(Path(output).as_posix()) / outcome.file).as_posix()

    return {
        "format": f"cqlx-convert/{FORMAT}",
        "policy": policy,
        "output": output,
        "targets": [{"name": t.name, "language": t.language, "profile": t.column.profile,
                     "backend": t.backend or None} for t in targets],
        "totals": totals(results, targets),
        "exit": exit_status(results),
        "rules": [{
            "path": r.path, "title": r.title, "id": r.id or None, "name": r.name or None, "index": r.index,
            "error": _diagnostic(r.path, r.error) if r.error else None,
            "targets": {o.target: {
                "class": o.status, "label": LABELS[o.status], "written": o.written, "file": file(o),
                "refused": o.code == REFUSED, "diagnostics": [_diagnostic(r.path, x) for x in o.reasons],
            } for o in r.outcomes},
        } for r in results],
        "skipped": [{"path": path, "reason": reason} for path, reason in skipped],
    }


def summary_lines(table: dict[str, dict[str, int]]) -> list[str]:
    """The per-target summary as an aligned text table, with a total row: exact, presentation-only
    loss, detection loss, failed, the total, and how many conversions were written."""
    columns = [("exact", "exact"), ("presentation", "presentation loss"), ("detection", "detection loss"),
               ("failed", "failed"), ("total", "total"), ("written", "written")]
    rows = [[name, *(str(counts[key]) for key, _ in columns)] for name, counts in table.items()]
    if len(rows) > 1:
        rows.append(["total", *(str(sum(c[key] for c in table.values())) for key, _ in columns)])
    header = ["target", *(label for _, label in columns)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                                strict=True)))
    return [line(header), *(line(row) for row in rows)]

"""Coverage of a rule library across targets: what each platform can detect from the same rules.

Every rule is converted to every chosen target (a language with a profile) and each cell of the
rule x target matrix is classified from the conversion's own diagnostics:

- ``exact``: nothing lost;
- ``presentation``: only presentation loss (which events match is unchanged);
- ``detection``: detection loss (which events match would change; ``cqlx convert`` refuses it);
- ``failed``: the rule does not load or parse, or the target cannot convert it at all.

Each loss keeps its reasons (kind, message, line and column in the rule file, the construct's
text). The ATT&CK techniques a rule covers come from its card (``mitre:``, ``attack.tNNNN`` tags,
a LogScale package's ``labels``); a technique is *covered* on a target when at least one of its
rules converts there without detection loss. This module is pure: it builds frozen values and
compares them; rendering lives in :mod:`cqlx.coverage_report`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cqlx.ast import Span
from cqlx.conversion import TARGETS, Conversion, convert_query
from cqlx.emit.base import DETECTION as _DETECTION_KIND
from cqlx.errors import CqlError
from cqlx.frozen import Frozen, record
from cqlx.options import ParseOptions
from cqlx.rules import NoQueryError, Rule, find_rules, load_rules

if TYPE_CHECKING:  # the ATT&CK data is read only where techniques are named
    from cqlx.attack import Catalogue

EXACT = "exact"
PRESENTATION = "presentation"
DETECTION = "detection"
FAILED = "failed"
STATUSES = (EXACT, PRESENTATION, DETECTION, FAILED)
LABELS = {EXACT: "exact", PRESENTATION: "presentation loss", DETECTION: "detection loss", FAILED: "failed"}
COVERING = (EXACT, PRESENTATION)  # statuses under which the rule still detects what it detects in CQL
FORMAT = 1  # version of the JSON report


@record
class Column(Frozen):
    """A target of the matrix: a language and the profile it is converted with."""

    language: str
    profile: str  # the profile's name
    source: str = ""  # what loads it, when not the name (a profile file)

    @property
    def name(self) -> str:
        """``kql (mde)``: the column's label and its key in reports."""
        return f"{self.language} ({self.profile})"

    @property
    def load(self) -> str | None:
        """What to convert with: the profile file or name (None for a target without profiles)."""
        from cqlx.profiles import DEFAULT_PROFILE

        return (self.source or self.profile) if self.language in DEFAULT_PROFILE else None

    @property
    def slug(self) -> str:
        """``kql-mde``: the column's name in file names."""
        return f"{self.language}-{self.profile}".replace("/", "-").replace(" ", "-")


@record
class Reason(Frozen):
    """Why a cell is not exact: one diagnostic or error, placed in the rule file."""

    kind: str  # presentation | detection | failed
    message: str
    line: int = 0
    column: int = 0
    construct: str = ""  # the rule's text at that place (shortened)

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line else ""
        what = f"`{self.construct}`: " if self.construct else ""
        return f"{where}{what}{self.message}"


@record
class Cell(Frozen):
    """One rule on one target."""

    target: str  # Column.name
    status: str
    reasons: tuple[Reason, ...] = ()


@record
class RuleResult(Frozen):
    """One rule of the library and its cell on every target."""

    key: str  # the rule's id, or its path under the folder it was found in: stable across copies
    path: str
    title: str
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]  # tactic shortnames the card names
    cells: tuple[Cell, ...]
    error: Reason | None = None  # the rule did not load or parse
    notes: tuple[Reason, ...] = ()  # portability notes and technique ids that are not ATT&CK ids

    def cell(self, target: str) -> Cell | None:
        """The rule's cell on a target (None when the target was not assessed)."""
        return next((c for c in self.cells if c.target == target), None)


@record
class TargetTally(Frozen):
    """How the rules of one technique fare on one target."""

    target: str
    counts: tuple[tuple[str, int], ...]  # (status, number of rules), in STATUSES order

    def count(self, status: str) -> int:
        """Rules of the technique with this status on the target."""
        return dict(self.counts).get(status, 0)

    @property
    def status(self) -> str:
        """The best status of any of the technique's rules (exact > presentation > detection > failed)."""
        return next((s for s in STATUSES if self.count(s)), FAILED)

    @property
    def covered(self) -> bool:
        """At least one rule detects the technique on this target as it does in CQL."""
        return self.status in COVERING


@record
class TechniqueCoverage(Frozen):
    """One ATT&CK technique: its rules and how they fare on each target."""

    id: str
    name: str
    tactics: tuple[str, ...]
    rules: tuple[str, ...]  # RuleResult keys
    tallies: tuple[TargetTally, ...]

    def tally(self, target: str) -> TargetTally:
        """The technique's tally on a target."""
        found = next((t for t in self.tallies if t.target == target), None)
        return found if found is not None else TargetTally(target, ())


@record
class Coverage(Frozen):
    """The whole matrix: targets, rules and the ATT&CK release names come from."""

    columns: tuple[Column, ...]
    rules: tuple[RuleResult, ...]
    attack_version: str = ""
    technique_names: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (id, name, tactics) from ATT&CK

    @property
    def targets(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(c.name for c in self.columns)

    def totals(self) -> dict[str, dict[str, int]]:
        """Per target, the number of rules in each status."""
        result = {t: dict.fromkeys(STATUSES, 0) for t in self.targets}
        for rule in self.rules:
            for cell in rule.cells:
                if cell.target in result:
                    result[cell.target][cell.status] += 1
        return result

    def techniques(self) -> tuple[TechniqueCoverage, ...]:
        """Every technique the rules claim, sorted by id, with its rules and per-target tallies."""
        names = {t: (n, tactics) for t, n, tactics in self.technique_names}
        by_technique: dict[str, list[RuleResult]] = {}
        for rule in self.rules:
            for technique in rule.techniques:
                by_technique.setdefault(technique, []).append(rule)
        found = []
        for technique in sorted(by_technique):
            rules = by_technique[technique]
            tallies = []
            for target in self.targets:
                counts = dict.fromkeys(STATUSES, 0)
                for rule in rules:
                    cell = rule.cell(target)
                    counts[cell.status if cell is not None else FAILED] += 1
                tallies.append(TargetTally(target, tuple(counts.items())))
            name, tactics = names.get(technique, ("", ()))
            if not tactics:
                tactics = tuple(dict.fromkeys(t for r in rules for t in r.tactics))
            found.append(TechniqueCoverage(technique, name, tactics, tuple(r.key for r in rules), tuple(tallies)))
        return tuple(found)

    def source_techniques(self) -> frozenset[str]:
        """The techniques claimed by rules that load and parse: what the CQL library covers."""
        return frozenset(t for r in self.rules if r.error is None for t in r.techniques)

    def covered(self, target: str) -> frozenset[str]:
        """The techniques covered on a target (a rule converts without detection loss)."""
        return frozenset(t.id for t in self.techniques() if t.tally(target).covered)

    def gaps(self) -> tuple[tuple[str, str], ...]:
        """(target, technique) for each technique of the source rules a target does not cover."""
        source = self.source_techniques()
        return tuple((target, t) for target in self.targets for t in sorted(source - self.covered(target)))


@record
class CellChange(Frozen):
    """A rule whose status on a target differs from the baseline (None: the rule is absent there)."""

    rule: str
    title: str
    target: str
    before: str | None
    after: str | None

    @property
    def regression(self) -> bool:
        """The cell got worse (or the rule went away)."""
        if self.after is None:
            return True
        return self.before is not None and STATUSES.index(self.after) > STATUSES.index(self.before)


@record
class Diff(Frozen):
    """What changed between a baseline report and this run, per target."""

    cells: tuple[CellChange, ...]
    gained: tuple[tuple[str, tuple[str, ...]], ...]  # (target, techniques now covered that were not)
    lost: tuple[tuple[str, tuple[str, ...]], ...]  # (target, techniques covered before, not now)
    names: tuple[tuple[str, str], ...] = ()  # (technique, ATT&CK name) from either run

    @property
    def regressions(self) -> tuple[tuple[str, str], ...]:
        """(target, technique) for every technique a target lost."""
        return tuple((target, t) for target, techniques in self.lost for t in techniques)

    @property
    def empty(self) -> bool:
        """Nothing changed."""
        return not self.cells and not any(t for _, t in self.gained) and not self.regressions


# ---------------------------------------------------------------- building the matrix


def parse_columns(to: str, profiles: Sequence[str] = ()) -> tuple[Column, ...]:
    """The targets from ``--to spl,kql`` and ``--profile`` (repeatable): each language in ``to``
    gets one column per profile given for it, or its default profile."""
    from cqlx.profiles import DEFAULT_PROFILE, load_profile

    languages = [t.strip() for t in to.split(",") if t.strip()]
    if "all" in languages:
        languages = list(TARGETS)
    for language in languages:
        if language not in TARGETS:
            raise CqlError(f"unknown target {language!r} for --to; accepted: {', '.join(TARGETS)} (comma-separated)")
    if not languages:
        raise CqlError("--to names no target; accepted: " + ", ".join(TARGETS))
    chosen: dict[str, list[str]] = {}
    for name in profiles:
        loaded = load_profile(name)
        if loaded.language not in languages:
            raise CqlError(f"profile {loaded.name} is for {loaded.language}, which --to does not include")
        chosen.setdefault(loaded.language, []).append(name)
    columns: list[Column] = []
    for language in dict.fromkeys(languages):
        if language not in DEFAULT_PROFILE:  # a target without profiles (cql: LogScale's own names)
            columns.append(Column(language, "logscale" if language == "cql" else language))
            continue
        for name in chosen.get(language) or [DEFAULT_PROFILE[language]]:
            loaded = load_profile(name)
            column = Column(language, loaded.name, "" if name == loaded.name else name)
            if all(c.name != column.name for c in columns):
                columns.append(column)
    return tuple(columns)


def _construct(text: str, span: Span, limit: int = 60) -> str:
    """The source text a span covers (its first line), shortened."""
    lines = text.splitlines()
    if span.line <= 0 or span.line > len(lines):
        return ""
    line = lines[span.line - 1]
    start = max(span.column - 1, 0)
    end = span.end_column - 1 if span.end_line == span.line and span.end_column > span.column else len(line)
    snippet = line[start:end].strip()
    if span.end_line > span.line:
        snippet += " ..."
    return snippet if len(snippet) <= limit else snippet[:limit - 3] + "..."


def _reason(rule: Rule, kind: str, message: str, span: Span) -> Reason:
    """A reason at a span of the rule's query, placed in the rule file."""
    if not span.line:
        return Reason(kind, message)
    return Reason(kind, message, span.line + rule.line_offset, span.column + rule.column_offset,
                  _construct(rule.text, span))


def classify(conversion: Conversion, rule: Rule, target: str) -> Cell:
    """A cell from a conversion: its status and every diagnostic as a reason."""
    reasons = tuple(_reason(rule, FAILED if d.unwritable else DETECTION if d.kind == _DETECTION_KIND
                            else PRESENTATION, d.message, d.span) for d in conversion.diagnostics)
    if any(r.kind == FAILED for r in reasons):  # nothing valid in the target can be written
        status = FAILED
    elif any(r.kind == DETECTION for r in reasons):
        status = DETECTION
    elif reasons:
        status = PRESENTATION
    else:
        status = EXACT
    rank = {FAILED: 0, DETECTION: 1}
    return Cell(target, status, tuple(sorted(reasons, key=lambda r: (rank.get(r.kind, 2), r.line, r.column))))


def failed(error: CqlError, rule: Rule | None, target: str, in_file: bool = False) -> Cell:
    """A cell for a target that could not convert the rule (or a rule that could not be read)."""
    return Cell(target, FAILED, (_error_reason(error, rule, in_file),))


def _error_reason(error: CqlError, rule: Rule | None, in_file: bool) -> Reason:
    span = error.span
    if rule is None or not span.line:
        return Reason(FAILED, error.message, span.line, span.column)
    if in_file:  # already relocated into the rule file
        return Reason(FAILED, error.message, span.line, span.column, _construct(error.source or "", span))
    return _reason(rule, FAILED, error.message, span)


def rule_techniques(rule: Rule) -> tuple[tuple[str, ...], tuple[Reason, ...]]:
    """The ATT&CK technique ids a rule claims (card ``mitre:``, ``attack.tNNNN`` tags, LogScale
    ``labels``), normalised, and a note for each claimed id that is not an ATT&CK technique id."""
    from cqlx.attack import normalise

    claimed = list(rule.meta.techniques)
    labels = rule.card.get("labels")
    for label in labels if isinstance(labels, list) else []:
        text = str(label)
        if normalise(text) is not None or text.lower().startswith(("attack.t", "mitre.t", "mitre:")):
            claimed.append(text.removeprefix("mitre:").removeprefix("MITRE:"))
    techniques: list[str] = []
    notes: list[Reason] = []
    for text in claimed:
        technique = normalise(text)
        if technique is None:
            notes.append(Reason(PRESENTATION, f"{text!r} is not an ATT&CK technique id (T1234 or T1234.001); ignored"))
        elif technique not in techniques:
            techniques.append(technique)
    return tuple(techniques), tuple(notes)


def _tactic(name: str) -> str:
    from cqlx.attack import TACTIC_NAMES

    short = name.strip().lower().replace(" ", "-")
    short = short.removeprefix("attack.")
    return short if short in TACTIC_NAMES else ""


def assess_rule(rule: Rule, key: str, columns: Sequence[Column]) -> RuleResult:
    """Convert one loaded rule to every column and classify each cell."""
    techniques, notes = rule_techniques(rule)
    tactics = tuple(dict.fromkeys(t for t in (_tactic(n) for n in rule.meta.tactics) if t))
    try:
        query = rule.parse()
    except CqlError as error:
        reason = _error_reason(error, rule, in_file=True)
        cells = tuple(Cell(c.name, FAILED, (reason,)) for c in columns)
        return RuleResult(key, rule.path, rule.meta.title, techniques, tactics, cells, reason, notes)
    notes += tuple(_reason(rule, PRESENTATION, note, span) for span, note in query.notes)
    converted: list[Cell] = []
    for column in columns:
        try:
            conversion = convert_query(query, column.language, column.load, rule.meta, rule.text)
        except CqlError as error:
            converted.append(failed(error, rule, column.name))
            continue
        converted.append(classify(conversion, rule, column.name))
    return RuleResult(key, rule.path, rule.meta.title, techniques, tactics, tuple(converted), None, notes)


def _key(rule: Rule | None, path: Path, root: Path, seen: set[str]) -> str:
    key = rule.meta.id if rule is not None and rule.meta.id else ""
    if not key or key in seen:
        try:
            key = path.relative_to(root).as_posix() if root.is_dir() else path.name
        except ValueError:
            key = path.as_posix()
        if rule is not None and rule.index:  # one of several queries in the file
            key += f"#{rule.name or rule.index}"
    while key in seen:
        key += "'"
    seen.add(key)
    return key


def assess(names: Iterable[str], columns: Sequence[Column], catalogue: Catalogue | None = None,
           options: ParseOptions | None = None) -> Coverage:
    """Assess every rule file named (directories searched recursively) on every column, each rule
    parsed with ``options`` (query parameters, saved searches)."""
    results: list[RuleResult] = []
    seen: set[str] = set()
    for name in names:
        root = Path(name)
        for path in find_rules([name]):
            try:
                rules = load_rules(path, options)
            except NoQueryError:  # a LogScale package asset without a query (manifest, parser): not a rule
                continue
            except CqlError as error:
                reason = Reason(FAILED, error.message, error.span.line, error.span.column)
                cells = tuple(Cell(c.name, FAILED, (reason,)) for c in columns)
                results.append(RuleResult(_key(None, path, root, seen), str(path), path.stem, (), (), cells, reason))
                continue
            for rule in rules:
                results.append(assess_rule(rule, _key(rule, path, root, seen), columns))
    return with_names(Coverage(tuple(columns), tuple(results)), catalogue)


def with_names(coverage: Coverage, catalogue: Catalogue | None) -> Coverage:
    """The coverage with each claimed technique's ATT&CK name and tactics from ``catalogue``."""
    if catalogue is None:
        return coverage
    ids = sorted({t for r in coverage.rules for t in r.techniques})
    named = tuple((t, catalogue.get(t).name, catalogue.get(t).tactics) for t in ids)
    return Coverage(coverage.columns, coverage.rules, catalogue.version, named)


# ---------------------------------------------------------------- comparing with a baseline


def diff(old: Coverage, new: Coverage) -> Diff:
    """Cells and covered techniques gained and lost since ``old``, on the targets both assessed."""
    shared = [t for t in new.targets if t in old.targets]
    before = {r.key: r for r in old.rules}
    after = {r.key: r for r in new.rules}
    changes: list[CellChange] = []
    for key in sorted(set(before) | set(after)):
        was, now = before.get(key), after.get(key)
        either = now if now is not None else was
        title = either.title if either is not None else key
        for target in shared:
            old_cell = was.cell(target) if was is not None else None
            new_cell = now.cell(target) if now is not None else None
            old_status = old_cell.status if old_cell is not None else None
            new_status = new_cell.status if new_cell is not None else None
            if old_status != new_status:
                changes.append(CellChange(key, title, target, old_status, new_status))
    gained = tuple((t, tuple(sorted(new.covered(t) - old.covered(t)))) for t in shared)
    lost = tuple((t, tuple(sorted(old.covered(t) - new.covered(t)))) for t in shared)
    names = {t: n for t, n, _ in old.technique_names + new.technique_names if n}
    return Diff(tuple(changes), gained, lost, tuple(sorted(names.items())))


# ---------------------------------------------------------------- the JSON report (and reading it back)


def _reason_json(reason: Reason) -> dict[str, Any]:
    return {"kind": reason.kind, "message": reason.message, "line": reason.line, "column": reason.column,
            "construct": reason.construct}


def to_json(coverage: Coverage, changes: Diff | None = None) -> dict[str, Any]:
    """The report as JSON-ready data (``--json``); :func:`from_json` reads it back as a baseline."""
    data: dict[str, Any] = {
        "format": f"cqlx-coverage/{FORMAT}",
        "attack": {"domain": "enterprise-attack", "version": coverage.attack_version},
        "targets": [{"name": c.name, "language": c.language, "profile": c.profile} for c in coverage.columns],
        "totals": coverage.totals(),
        "rules": [{
            "key": r.key, "path": r.path, "title": r.title, "techniques": list(r.techniques),
            "tactics": list(r.tactics), "error": _reason_json(r.error) if r.error else None,
            "notes": [_reason_json(n) for n in r.notes],
            "cells": {c.target: {"status": c.status, "reasons": [_reason_json(x) for x in c.reasons]}
                      for c in r.cells},
        } for r in coverage.rules],
        "techniques": {t.id: {
            "name": t.name, "tactics": list(t.tactics), "rules": list(t.rules),
            "targets": {x.target: {"status": x.status, "covered": x.covered, **dict(x.counts)} for x in t.tallies},
        } for t in coverage.techniques()},
        "gaps": [{"target": target, "technique": t} for target, t in coverage.gaps()],
    }
    if changes is not None:
        data["baseline"] = {
            "cells": [{"rule": c.rule, "title": c.title, "target": c.target, "before": c.before, "after": c.after}
                      for c in changes.cells],
            "gained": {t: list(x) for t, x in changes.gained},
            "lost": {t: list(x) for t, x in changes.lost},
        }
    return data


def _reason_from(data: Any) -> Reason:
    if not isinstance(data, Mapping):
        raise ValueError("a reason is not an object")
    return Reason(str(data["kind"]), str(data["message"]), int(data.get("line") or 0), int(data.get("column") or 0),
                  str(data.get("construct") or ""))


def from_json(data: Any, source: str = "the baseline") -> Coverage:
    """A coverage read back from a ``--json`` report; a file that is not one is a :class:`CqlError`."""
    try:
        if not isinstance(data, Mapping) or not str(data.get("format", "")).startswith("cqlx-coverage/"):
            raise ValueError("it is not a cqlx coverage report (no format: cqlx-coverage/N)")
        columns = tuple(Column(str(t["language"]), str(t["profile"])) for t in data["targets"])
        rules = []
        for item in data["rules"]:
            statuses = {str(k): v for k, v in item["cells"].items()}
            cells = []
            for target, cell in statuses.items():
                status = str(cell["status"])
                if status not in STATUSES:
                    raise ValueError(f"unknown status {status!r}")
                cells.append(Cell(target, status, tuple(_reason_from(x) for x in cell.get("reasons") or ())))
            error = _reason_from(item["error"]) if item.get("error") else None
            rules.append(RuleResult(str(item["key"]), str(item.get("path") or ""), str(item.get("title") or ""),
                                    tuple(str(t) for t in item.get("techniques") or ()),
                                    tuple(str(t) for t in item.get("tactics") or ()), tuple(cells), error,
                                    tuple(_reason_from(x) for x in item.get("notes") or ())))
        named = tuple((str(k), str(v.get("name") or ""), tuple(str(x) for x in v.get("tactics") or ()))
                      for k, v in (data.get("techniques") or {}).items())
        version = str((data.get("attack") or {}).get("version") or "")
        return Coverage(columns, tuple(rules), version, named)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise CqlError(f"{source}: not a cqlx coverage report ({detail}); "
                       "write one with cqlx coverage --json") from None

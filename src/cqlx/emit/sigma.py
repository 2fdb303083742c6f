"""IR → Sigma rules (YAML), checked by pySigma.

Facts (sigma-specification, appendix-modifiers; pySigma): plain values match case-insensitively,
``|cased`` makes them case-sensitive; ``|re`` is case-sensitive unless ``|re|i`` (``|m``, ``|s`` for
multi-line and dot-all); ``*`` and ``?`` are wildcards and ``\\`` escapes them.

Sigma has no arithmetic and no derived fields, but a scored rule's severity survives exactly: for
a score that is a sum of boolean signals with known weights, "score >= t" is the disjunction of
the minimal sets of signals whose weights reach t. The output is one rule for the base detection
(every event the CQL rule returns) and one per severity tier, each the base detection AND its
tier's condition, with ``level`` from the tier. What Sigma cannot say (the derived field values,
the sort) is written into the description and reported as presentation loss.

An aggregation (``groupBy()``, ``count()``) becomes a correlation rule (sigma-specification,
correlation rules; pySigma 1.5 loads them) over the base rule: ``event_count`` per ``group-by``,
``value_count`` for a distinct count, with the threshold a later filter sets (``_count > 5`` is
``gte: 6``). LogScale counts over the search's time range, which the query does not hold; a
correlation needs a ``timespan``, so one is written (``1h``) and reported.
"""

from __future__ import annotations

import math
import re
import uuid
from itertools import combinations
from typing import Any

import yaml

from cqlx import ir
from cqlx.emit.base import DETECTION, PRESENTATION, Generator
from cqlx.errors import UnsupportedError
from cqlx.functions import AGGREGATE_OUTPUTS, GROUP_LIMIT_DEFAULT
from cqlx.passes import case_keep, pred_fields, step_writes
from cqlx.regexes import (
    NEVER,
    SIGMA_NON_PORTABLE,
    basename_glob_regex,
    basename_regex,
    features,
    python_error,
    to_sigma,
)

MAX_SIGNALS = 16
_CORRELATION = "\0correlation"  # the rule() "tier" of the correlation rule
#: The window written into a correlation rule: LogScale's is the search's time range (module docstring).
CORRELATION_TIMESPAN = "1h"
_LEVELS = {"critical": "critical", "high": "high", "medium": "medium", "low": "low",
           "informational": "informational", "info": "informational"}
_CMP = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
# A value a number column holds as the same number: no sign on zero, no leading zero, 64 bits.
_INTEGER = re.compile(r"0|-?[1-9][0-9]{0,17}")
NAMESPACE = uuid.UUID("5b1f4d0e-8c3a-4f7e-9a61-2d4e6c8b0a17")  # cqlx's own namespace for derived ids


def sigma_string(text: str, glob: bool = False) -> str:
    """A Sigma value matching ``text`` literally; with ``glob``, CQL's ``*`` stays a wildcard."""
    items: list[tuple[str, bool]] = []  # (char, is_wildcard)
    for char in text:
        items.append((char, glob and char == "*"))
    out: list[str] = []
    for index, (char, wildcard) in enumerate(items):
        if wildcard:
            out.append("*")
        elif char in "*?":
            out.append("\\" + char)
        elif char == "\\":
            following = items[index + 1] if index + 1 < len(items) else None
            # A backslash before a wildcard or another backslash would escape it: double it.
            out.append("\\\\" if following is not None and (following[1] or following[0] in "*?\\") else "\\")
        else:
            out.append(char)
    return "".join(out)


class _Dumper(yaml.CSafeDumper):
    """LibYAML's safe dumper (the pure-Python one was most of a batch's Sigma time), but a string
    holding a Unicode line break (NEL, LS, PS) is written double-quoted, where it is escaped: plain
    or single-quoted, it is read back as a line break and folded into a space (YAML 1.1, 5.4 line
    break characters). LibYAML also escapes characters beyond the BMP (``"\\U0001F600"``), which
    read back the same."""


def _represent_str(dumper: yaml.CSafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if "\x85" in value or "\u2028" in value or "\u2029" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


#: Parentheses pySigma's condition parser reads: 160 loads, 170 is a RecursionError (measured,
#: pySigma 1.5 under CPython's default recursion limit), so a margin below that.
MAX_CONDITION_DEPTH = 150


def _depth(condition: str) -> int:
    depth = deepest = 0
    for char in _PARENTHESES.findall(condition):
        depth += 1 if char == "(" else -1
        deepest = max(deepest, depth)
    return deepest


_PARENTHESES = re.compile("[()]")


def _keeps_some(step: ir.Step) -> bool:
    """Whether a step can drop rows (or repeat them): a strict regex, a case {} without a branch
    for every row, an inner or negated join (selfJoinFilter() is joins by now) or lookup,
    groupBy(function=tail())."""
    if isinstance(step, ir.Extract):
        return step.strict or bool(step.each)
    if isinstance(step, ir.Case):
        keep = case_keep(step)
        return keep is None or not isinstance(keep, ir.TrueP)
    if isinstance(step, ir.Lookup):
        return step.filters
    if isinstance(step, ir.Join):
        return step.filters or step.many
    return isinstance(step, ir.GroupTail)


def _name(step: ir.Step) -> str:
    """The step, as the rule wrote it, for a message."""
    if isinstance(step, ir.Join):
        return f"{step.origin}()"
    return {ir.Extract: "regex()", ir.Case: "case { }", ir.Lookup: "match(file=...)",
            ir.GroupTail: "groupBy(function=tail())"}.get(type(step), "a step")


def _identifier(name: str) -> str:
    """A Sigma condition identifier: ASCII letters, digits and underscores only."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^A-Za-z0-9]+", "_", snake).strip("_").lower() or "x"


def _contained(values: tuple[str, ...]) -> tuple[str, ...] | None:
    """The middles of globs that are all ``*x*`` (x not empty), for Sigma's contains modifier."""
    if values and all(len(v) > 2 and v[0] == v[-1] == "*" and v.strip("*") for v in values):
        return tuple(v[1:-1] for v in values)
    return None


def minimal_sets(weights: dict[str, int | float], threshold: int | float) -> list[tuple[str, ...]] | None:
    """The minimal sets of signals whose weights sum to at least ``threshold`` (weights > 0).
    An empty list means no set reaches it; None means every event reaches it."""
    if threshold <= 0:
        return None
    names = sorted(n for n, w in weights.items() if w > 0)
    found: list[tuple[str, ...]] = []
    for size in range(1, len(names) + 1):
        for combo in combinations(names, size):
            if any(set(f) <= set(combo) for f in found):
                continue
            if sum(weights[n] for n in combo) >= threshold:
                found.append(combo)
    return found


class _Detection:
    def __init__(self) -> None:
        self.selections: dict[str, dict[str, Any]] = {}

    def add(self, hint: str, mapping: dict[str, Any]) -> str:
        for name, existing in self.selections.items():
            if existing == mapping:
                return name
        name = hint
        counter = 2
        while name in self.selections:
            name = f"{hint}_{counter}"
            counter += 1
        self.selections[name] = mapping
        return name


class SigmaGenerator(Generator):
    def generate(self) -> str:
        self.detection = _Detection()
        self.notes: list[str] = []
        filters: list[ir.Pred] = []
        derived: list[str] = []
        signals: dict[str, ir.Signal] = {}
        score: ir.Score | None = None
        ladder: ir.Ladder | None = None
        fields: list[str] = []
        self.aggregate: ir.Aggregate | None = None
        after: list[ir.Step] = []  # the steps on the group rows: a threshold, or what Sigma cannot say
        dropped: set[str] = set()
        for step in self.query.steps:
            if self.aggregate is not None:
                after.append(step)
                continue
            if isinstance(step, ir.Aggregate):
                self.aggregate = step
                continue
            if isinstance(step, ir.Totals):  # after a select(): no Aggregate before it
                self.unsupported("stats() gives a row of its outputs even over no events; a Sigma rule matches "
                                 "events", step.span)
            self.unextracted(step)
            if isinstance(step, ir.Filter):
                if pred_fields(step.pred) & dropped:
                    self.unsupported(f"the filter tests {', '.join(sorted(pred_fields(step.pred) & dropped))}, "
                                     "which drop() removed; Sigma cannot say that", step.span)
                filters.append(step.pred)
            elif isinstance(step, ir.Extract):
                # Sigma has no derived fields: the regex still filters; what it extracts is derived
                # (reported below, and a test on it is reported where it is made).
                if step.strict:
                    filters.append(step.test)
                if step.each and any(isinstance(s, ir.Aggregate) for s in self.query.steps):
                    self.unsupported("regex(repeat=true) makes a row of each match, so the aggregation counts "
                                     "matches, not events; a Sigma rule counts the events it matches", step.span)
                elif step.each:
                    self.note("each event gives a row per match of regex(repeat=true); a Sigma rule matches the "
                              "event once", step.span)
            elif isinstance(step, ir.Drop):
                dropped |= set(step.fields)
            elif isinstance(step, ir.Signal):
                signals[step.name] = step
            elif isinstance(step, ir.Score):
                score = step
            elif isinstance(step, ir.Ladder):
                ladder = step
            elif isinstance(step, ir.Project):
                for name in step.fields:
                    if name not in self.computed:
                        column = self.column(name, step.span, output=True)
                        if column and column not in fields:
                            fields.append(column)
            elif isinstance(step, ir.Order):
                keys = ", ".join(f"{k.field} {'desc' if k.descending else 'asc'}" for k in step.keys)
                if any(isinstance(later, ir.Aggregate) for later in self.query.steps):
                    # head(), tail(), sort() before an aggregation choose the events it counts
                    self.unsupported(f"the aggregation counts only the {step.limit} events {step.origin}() keeps; "
                                     "a Sigma rule cannot limit the events it matches", step.span)
                else:
                    self.note(f"results are sorted by {keys} and limited to {step.limit} rows", step.span)
            elif isinstance(step, ir.Case):
                # Sigma can keep the events some branch takes; what the branches assign is derived.
                self.case_unextracted(step)
                keep = case_keep(step)
                if keep is None:
                    self.unsupported("a case { } branch filters after it assigns; Sigma cannot say that", step.span)
                elif not isinstance(keep, ir.TrueP):
                    filters.append(keep)
            elif isinstance(step, ir.Opaque):
                self.opaque(step)
            elif isinstance(step, ir.Lookup):
                self.lookup_lost(step, "Sigma has no lookup files")
            elif isinstance(step, ir.Join):
                self.lookup_lost(step, "Sigma has no joins of two searches")
            elif isinstance(step, ir.GroupTail):
                self.unsupported("groupBy(function=tail()) keeps the newest events of each group; a Sigma rule "
                                 "cannot choose among the events it matches", step.span)
            self.track(step)
            if not isinstance(step, ir.Opaque | ir.Lookup | ir.Join):  # reported on its own, with its reason
                derived += [f for f in sorted(step_writes(step)) if f not in derived]
        if derived:
            self.note("the rule computes " + ", ".join(derived) + ", which Sigma cannot output",
                      self.query.steps[0].span if self.query.steps else ir.NO_SPAN)
        counted = self.counted_field(self.aggregate, after) if self.aggregate is not None else None
        if counted is not None:  # count(f) counts the events that have f: the base rule keeps only those
            filters.append(ir.Exists(*counted))
        if not filters:
            self.unsupported("the rule has no filter for Sigma's detection section")
        base = [self.condition(ir.And(tuple(filters)) if len(filters) > 1 else filters[0], "selection")] \
            if filters else [self.detection.add("selection", {"EventID|exists": True})]
        tests = self.record_tests()
        if tests:  # the event type's records within a shared logsource (network_connection: Initiated)
            mapping = {f"{column}|cased": list(values) if len(values) > 1 else values[0] for column, values in tests}
            base.insert(0, self.detection.add("source", mapping))
        rules = [self.rule("", " and ".join(base), self.lowest_level(ladder), fields)]
        if self.aggregate is not None:
            rules.append(self.correlation(self.aggregate, after, rules[0]["id"], self.lowest_level(ladder)))
        elif ladder is not None and score is not None and ladder.score_field == score.field:
            rules += self.tier_rules(base, ladder, score, signals, fields, rules[0]["id"])
        depth = max(_depth(r["detection"]["condition"]) for r in rules if "detection" in r)
        if depth > MAX_CONDITION_DEPTH:
            self.unsupported(f"the condition nests {depth} parentheses deep; pySigma's condition parser "
                             f"(recursive) fails beyond about {MAX_CONDITION_DEPTH}",
                             filters[0].span if filters else ir.NO_SPAN, unwritable=True)
        header = "# Generated by cqlx from a LogScale (CQL) rule.\n"
        return header + "---\n".join(yaml.dump(r, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
                                     for r in rules)

    def note(self, text: str, span: ir.Span) -> None:
        self.notes.append(text)
        self.unsupported(f"Sigma cannot say this ({text}); written into the description", span, PRESENTATION)

    # ------------------------------------------------------------ rules

    def level(self, label: str) -> str:
        level = _LEVELS.get(label.lower())
        if level is None:
            self.unsupported(f"severity {label!r} is not a Sigma level; written as medium", kind=PRESENTATION)
            return "medium"
        return level

    def lowest_level(self, ladder: ir.Ladder | None) -> str:
        return self.level(ladder.default) if ladder is not None else "medium"

    def rule_id(self, tier: str) -> str:
        base = self.meta.id or self.meta.title or self.query_key()
        try:
            root = uuid.UUID(base)
        except ValueError:
            root = uuid.uuid5(NAMESPACE, base)
        return str(root if not tier else uuid.uuid5(root, tier))

    def query_key(self) -> str:
        return repr(self.query.steps)

    def rule(self, tier: str, condition: str, level: str, fields: list[str],
             related: str | None = None) -> dict[str, Any]:
        title = self.meta.title or "Converted LogScale rule"
        description = self.meta.description.strip()
        if tier == _CORRELATION:
            description = ("The LogScale rule's aggregation: it fires for each group of the events of the "
                           "rule it references that reaches the count. " + description).strip()
        elif tier:
            description = (f"Tier {tier} of the rule's severity ladder. " + description).strip()
        elif self.aggregate is not None:
            description = ("The events the LogScale rule aggregates; the correlation rule that references "
                           "this one is the detection. " + description).strip()
        else:
            description = ("Base detection: every event the LogScale rule returns, whatever its severity. "
                           + description).strip() if related is None and condition else description
        if self.notes:
            description += "\n\nNot expressible in Sigma (cqlx): " + "; ".join(dict.fromkeys(self.notes)) + "."
        rule: dict[str, Any] = {"title": f"{title} - {tier}" if tier else title, "id": self.rule_id(tier)}
        if related:
            rule["related"] = [{"id": related, "type": "derived"}]
        rule["status"] = self.meta.status or "experimental"
        rule["description"] = description
        if self.meta.references:
            rule["references"] = list(self.meta.references)
        if self.meta.author:
            rule["author"] = self.meta.author
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.meta.date or ""):
            rule["date"] = self.meta.date
        tags = self.tags()
        if tags:
            rule["tags"] = tags
        rule["logsource"] = self.logsource()
        rule["detection"] = {**self.detection.selections, "condition": condition}
        if fields:
            rule["fields"] = fields
        if self.meta.falsepositives:
            rule["falsepositives"] = list(self.meta.falsepositives)
        rule["level"] = level
        return rule

    def tags(self) -> list[str]:
        # ATT&CK tactic tags as SigmaHQ writes them: attack.execution, attack.command-and-control
        tags = [f"attack.{re.sub(r'[^a-z0-9]+', '-', t.lower()).strip('-')}" for t in self.meta.tactics]
        tags += [f"attack.{t.lower()}" for t in self.meta.techniques]
        tags += [t for t in self.meta.tags if re.fullmatch(r"[a-z0-9_-]+\.[a-z0-9._-]+", t)]
        return list(dict.fromkeys(tags))

    def logsource(self) -> dict[str, str]:
        source = dict(self.event.logsource) if self.event else {}
        platforms = self.query.source.platforms
        if platforms:
            products = {self.profile.platforms.get(p) for p in platforms}
            if len(products) == 1 and None not in products:
                source["product"] = str(products.pop())
            else:
                self.unsupported("the rule selects platforms " + ", ".join(platforms)
                                 + ", which one Sigma logsource product cannot say")
        if not source:  # pySigma loads no rule without one
            self.unwritable("a Sigma rule needs a logsource")
        return source

    def correlation(self, step: ir.Aggregate, after: list[ir.Step], base_id: str, level: str) -> dict[str, Any]:
        """The aggregation as a Sigma correlation rule (sigma-specification, correlation rules):
        ``event_count`` of the base rule's events per group, or ``value_count`` for a distinct count,
        with the threshold a filter after the aggregation sets on it. Without a threshold every group
        is a result: ``gte: 1``, which is the same groups."""
        group_by: list[str] = []
        # Without a threshold every group is a result, so the keys only decide how rows are shown.
        every_group = not any(isinstance(later, ir.Filter) for later in after)
        for key in step.keys:
            if key in self.computed:
                self.unsupported(f"the rule groups by {key}, which it computes; Sigma has no computed fields",
                                 step.span)
            column = self.column(key, step.span, output=every_group)
            if column is not None:
                self.counted_whole(key, column, step.span, "groups by", every_group)
                group_by.append(column)
        by_output = {f.output: f for f in step.functions}
        threshold: tuple[ir.AggFunc, str, int] | None = None
        for later in after:
            if isinstance(later, ir.Filter):
                found = self.threshold(later.pred, by_output, bool(step.keys))
                if found is None or threshold is not None:
                    self.unsupported("a filter after the aggregation that is not one threshold on a count "
                                     "has no Sigma correlation form", later.span)
                    continue
                threshold = found
            elif isinstance(later, ir.Project | ir.Order | ir.Drop):
                self.note("the group rows are sorted or projected after the aggregation", later.span)
            elif isinstance(later, ir.Opaque):
                self.opaque(later)
            elif isinstance(later, ir.Aggregate | ir.Totals):
                self.unsupported("a second aggregation, over the group rows, has no Sigma correlation form",
                                 later.span)
                by_output = {}  # its rows are not the first one's groups: no filter after it is their count
            elif _keeps_some(later):
                self.unsupported(f"{_name(later)} after the aggregation keeps only some of the group rows; a Sigma "
                                 "correlation fires for every group that reaches its count", later.span)
            else:
                self.note("the rule computes fields on the group rows", later.span)
            # A count a step overwrites (_count := _count * 2) is no longer the aggregation's.
            by_output = {k: f for k, f in by_output.items() if k not in step_writes(later)}
            self.track(later)
        function, op, count = threshold if threshold is not None else (None, "gte", 1)
        if not step.keys and not any(f.name in AGGREGATE_OUTPUTS or f.name == "percent" for f in step.functions):
            # collect(), selectLast(), selectFromMax() alone give a row only when an event has the field;
            # an event count fires on any event of the base rule.
            self.unsupported("without keys, collect()/selectLast()/selectFromMax() give a row only when an event "
                             "has the field; a Sigma correlation counts every event", step.span)
        elif not step.keys and threshold is None:
            # without keys, LogScale's aggregation is one row even over no events (count() 0)
            self.unsupported("without keys or a threshold, the aggregation gives a row even when no event "
                             "matches (count() 0); a Sigma correlation fires only on events", step.span)
        shown = [f.output for f in step.functions if f is not function]
        if shown:
            self.note("the rule outputs " + ", ".join(shown) + " per group", step.span)
        if step.limit is not None and step.limit != GROUP_LIMIT_DEFAULT:
            self.note(f"LogScale keeps {step.limit} groups", step.span)
        correlation: dict[str, Any] = {"type": "event_count", "rules": [base_id]}
        condition: dict[str, Any] = {op: count}
        if function is not None and function.distinct:
            correlation["type"] = "value_count"
            assert function.field is not None
            column = self.column(function.field, step.span) or function.field
            self.counted_whole(function.field, column, step.span, "counts the distinct values of", False)
            condition = {"field": column, op: count}
        if group_by:
            correlation["group-by"] = group_by
            # sigma-specification does not say how group-by values compare: pySigma's sqlite backend
            # groups lower()-folded text (cqlx test does not judge streams where that matters).
            self.unsupported("LogScale's groupBy() keeps key values that differ only in letter case apart; Sigma "
                             "does not say how a backend compares group-by values, and some fold case (pySigma's "
                             "sqlite backend does)", step.span, PRESENTATION)
        # A LogScale query counts over the search's time range, which is not in the query: Sigma
        # requires a window, so one is written and reported.
        correlation["timespan"] = CORRELATION_TIMESPAN
        self.unsupported(f"the count is over the search's time range in LogScale, which the query does not "
                         f"hold; Sigma's correlation needs one: written as timespan {CORRELATION_TIMESPAN}, "
                         "set it to the alert's search window", step.span, PRESENTATION)
        correlation["condition"] = condition
        rule = self.rule(_CORRELATION, "", level, [], base_id)
        del rule["logsource"], rule["detection"]
        rule.pop("related", None)
        ordered: dict[str, Any] = {}
        for key, value in rule.items():
            if key == "level":
                ordered["correlation"] = correlation
            ordered[key] = value
        ordered["title"] = f"{self.meta.title or 'Converted LogScale rule'} - count" + \
            (f" per {', '.join(group_by)}" if group_by else "")
        return ordered

    def counted_whole(self, name: str, column: str, span: ir.Span, what: str, shown: bool) -> None:
        """A field whose value is part of its column's (a file name inside a path: ``basename``)
        cannot be grouped or counted by there: the correlation would group or count whole paths.
        ``shown``: every group is a result, so only the rows differ."""
        mapped = self.profile.field(self.event, name) if name not in self.computed else None
        if mapped is not None and mapped.transform == "basename":
            self.unsupported(f"the rule {what} {name}, which is only part of {column} ({mapped.transform}); a Sigma "
                             f"correlation would use the whole {column}", span, PRESENTATION if shown else DETECTION)

    def counted_field(self, step: ir.Aggregate, after: list[ir.Step]) -> tuple[str, ir.Span] | None:
        """The field of a ``count(f)`` the threshold is on (the events that have ``f``), with the
        aggregation's span, or None."""
        first = next((s for s in after if isinstance(s, ir.Filter)), None)
        if first is None:
            return None
        found = self.threshold(first.pred, {f.output: f for f in step.functions}, bool(step.keys))
        if found is None or found[0].field is None or found[0].distinct:
            return None
        return found[0].field, step.span

    def threshold(self, pred: ir.Pred, outputs: dict[str, ir.AggFunc], grouped: bool
                  ) -> tuple[ir.AggFunc, str, int] | None:
        """``_count > 5`` (on an event count or a distinct count) as a correlation condition; counts
        are whole numbers, so ``> 5.5`` is ``gte: 6``. ``count(f)`` counts the events that have
        ``f``: an event count of the base rule's events that have it (:meth:`counted_field`), for a
        condition no group without such an event meets (at least, or exactly, one or more)."""
        if not isinstance(pred, ir.Cmp) or pred.field not in outputs:
            return None
        function = outputs[pred.field]
        if function.name != "count":
            return None
        number = pred.number
        if pred.op in (">", ">="):
            op, count = "gte", (math.floor(number) + 1 if pred.op == ">" else math.ceil(number))
        elif pred.op in ("<", "<="):
            op, count = "lte", (math.ceil(number) - 1 if pred.op == "<" else math.floor(number))
        elif pred.op in ("==", "!=") and float(number).is_integer():
            op, count = ("eq" if pred.op == "==" else "neq"), int(number)
        else:
            return None
        if not grouped and (op in ("lte", "neq") or (op in ("eq", "gte") and count < 1)):
            # count() over no events is a row (_count 0) in LogScale; a correlation fires on events only
            return None
        if function.field is not None and not function.distinct and (op not in ("gte", "eq") or count < 1):
            # a group whose events all lack f has count(f) 0 in LogScale, and no event in the base rule
            return None
        return function, op, int(count)

    def tier_rules(self, base: list[str], ladder: ir.Ladder, score: ir.Score, signals: dict[str, ir.Signal],
                   fields: list[str], base_id: str) -> list[dict[str, Any]]:
        chosen = [signals[n] for n in score.signals if n in signals]
        if len(chosen) != len(score.signals) or len(chosen) > MAX_SIGNALS \
                or any(s.weight < 0 for s in chosen):
            self.unsupported(f"the score {score.field} cannot be written as Sigma conditions "
                             f"(needs up to {MAX_SIGNALS} signals with non-negative weights)", score.span)
            return []
        names = {s.name: self.condition(s.condition, "sig_" + _identifier(s.name)) for s in chosen}
        weights = {s.name: s.weight for s in chosen}

        def reaches(threshold: int | float) -> str | None:
            sets = minimal_sets(weights, threshold)
            if sets is None:
                return "ALWAYS"
            if not sets:
                return None
            terms = [" and ".join(names[n] for n in combo) for combo in sets]
            return "(" + " or ".join(f"({t})" if len(c) > 1 else t for t, c in zip(terms, sets, strict=True)) + ")"

        rules: list[dict[str, Any]] = []
        above: str | None = None  # condition of the tier above (score reaches its minimum)
        tiers = [(t.label, t.minimum) for t in ladder.tiers] + [(ladder.default, None)]
        for label, minimum in tiers:
            parts = list(base)
            if minimum is not None:
                here = reaches(minimum)
                if here is None:
                    self.unsupported(f"tier {label} (score >= {minimum}) can never be reached; no rule for it",
                                     ladder.span, PRESENTATION)
                    continue
                if here != "ALWAYS":
                    parts.append(here)
            if above is not None and above != "ALWAYS":
                parts.append(f"not {above}")
            rules.append(self.rule(label, " and ".join(parts), self.level(label), fields, base_id))
            if minimum is not None:
                above = reaches(minimum)
        return rules

    # ------------------------------------------------------------ conditions

    def condition(self, pred: ir.Pred, hint: str) -> str:
        if isinstance(pred, ir.And):
            merged: dict[str, Any] = {}
            rest: list[str] = []
            for item in pred.items:
                atom = self.atom(item)
                if atom is not None and atom[0] not in merged:
                    merged[atom[0]] = atom[1]
                else:
                    rest.append(self.condition(item, hint))
            parts = ([self.detection.add(hint, merged)] if merged else []) + rest
            return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"
        if isinstance(pred, ir.Or):
            return "(" + " or ".join(self.condition(p, hint) for p in pred.items) + ")"
        if isinstance(pred, ir.Not):
            inner = self.condition(pred.item, hint + "_not" if not hint.endswith("_not") else hint)
            return f"not {inner}"
        if isinstance(pred, ir.Cmp) and pred.op == "!=":
            # No Sigma modifier for "not equal", and `not x: n` holds where x is missing or no
            # number, where CQL's comparison is false: x is below or above n.
            return "(" + " or ".join(self.condition(ir.Cmp(pred.field, op, pred.number, pred.span), hint)
                                     for op in ("<", ">")) + ")"
        if isinstance(pred, ir.In) and not pred.values:  # in() of no values matches nothing
            return self.nothing(hint, self.plain_column(pred.field, pred.span))
        if isinstance(pred, ir.Regex) and self.never_on_path(pred):
            column = self.plain_column(pred.field, pred.span)
            self.unsupported(f"the regex on {pred.field} needs a path separator, which a file name never holds: it "
                             "never matches, in LogScale as here", pred.span, PRESENTATION)
            return self.nothing(hint, column)
        atom = self.atom(pred)
        if atom is None:
            if isinstance(pred, ir.TrueP):
                return self.detection.add(hint, {"EventID|exists": True})
            # a test cqlx cannot write (reported as detection loss): under --on-lossy warn the
            # rule is written with it matching nothing, as the KQL and SPL write `false`
            return self.nothing("unconverted", "EventID")
        return self.detection.add(hint, {atom[0]: atom[1]})

    def nothing(self, hint: str, column: str) -> str:
        """A condition no event meets. Sigma has no ``false``, and pySigma reads an empty value
        list as "the field is null": the field present and absent at once instead."""
        present = self.detection.add(hint, {f"{column}|exists": True})
        return f"({present} and {self.detection.add(hint, {f'{column}|exists': False})})"

    def never_on_path(self, pred: ir.Regex) -> bool:
        """Whether a regex on a file name needs a path separator, so that no file name matches."""
        return self.is_basename(pred.field) and basename_regex(pred.pattern, pred.flags) == NEVER

    def numeric(self, name: str) -> bool:
        """Whether the profile types the event field ``name`` maps to as a whole number."""
        mapped = None if name in self.computed else self.profile.field(self.event, name)
        return mapped is not None and mapped.type in ("long", "int")

    def atom(self, pred: ir.Pred) -> tuple[str, Any] | None:
        """One detection item (``Field|modifiers: value``) for a test, or None."""
        if isinstance(pred, ir.In) and not pred.values:
            return None  # no one item says "nothing" (condition)
        if isinstance(pred, ir.Eq | ir.Glob | ir.In):
            column = self.plain_column(pred.field, pred.span)
            cased = "" if pred.ignore_case else "|cased"
            if isinstance(pred, ir.In):
                if self.is_basename(pred.field):  # each file name: the full path ends with a separator and it
                    if any("*" in v for v in pred.values):
                        return self.basename_globs(column, pred.values, pred.ignore_case)
                    return f"{column}|endswith{cased}", [sep + sigma_string(v) for v in pred.values
                                                         for sep in ("\\", "/")]
                if self.numeric(pred.field) and all(_INTEGER.fullmatch(v) for v in pred.values):
                    numbers = [int(v) for v in pred.values]
                    return column, numbers if len(numbers) > 1 else numbers[0]
                inner = _contained(pred.values)
                if inner is not None:  # *x* as the contains modifier, as sigma check asks
                    return f"{column}|contains{cased}", [sigma_string(v, glob=True) for v in inner]
                return f"{column}{cased}", [sigma_string(v, glob=True) for v in pred.values]
            glob = isinstance(pred, ir.Glob)
            text = pred.pattern if isinstance(pred, ir.Glob) else pred.value
            if self.is_basename(pred.field):
                if not glob:  # a file name equals X: the full path ends with a separator and X
                    return f"{column}|endswith{cased}", ["\\" + sigma_string(text), "/" + sigma_string(text)]
                if not text.startswith("*") or "*" in text[1:]:
                    # *suffix says the same of the file name and of the full path; any other glob
                    # is a regex on the path's last part
                    return self.basename_globs(column, (text,), pred.ignore_case)
            elif glob and _contained((text,)) is not None:
                return f"{column}|contains{cased}", sigma_string(text[1:-1], glob=True)
            if not glob and self.numeric(pred.field) and _INTEGER.fullmatch(text):
                return column, int(text)  # a number column's value as a number (sigma check: NumberAsString)
            return f"{column}{cased}", sigma_string(text, glob=glob)
        if isinstance(pred, ir.Regex):
            column = self.plain_column(pred.field, pred.span)
            source = pred.pattern
            if self.is_basename(pred.field):
                on_path = basename_regex(pred.pattern, pred.flags)
                if on_path is None:
                    self.unsupported(f"a regex on {pred.field} (a file name) has no exact form on {column} "
                                     "(a full path): it could match a separator, holds an anchor cqlx cannot "
                                     "move to the path's last part, or alternates at the top level",
                                     pred.span)
                elif on_path == NEVER:
                    return None  # condition() writes a test no event meets
                else:
                    source = on_path
            pattern = to_sigma(source, pred.flags)
            lacking = features(pattern) & SIGMA_NON_PORTABLE
            if lacking:
                self.unsupported(f"the regex uses {', '.join(sorted(lacking))}, outside Sigma's portable "
                                 "regex subset; backends may read it differently", pred.span, PRESENTATION)
            error = python_error(pattern)  # pySigma checks every |re value with Python's re (sigma/types.py)
            if error is not None:
                self.unsupported(f"pySigma cannot load the regex {pattern!r} (Python's re: {error})", pred.span)
                return None
            modifiers = "".join(f"|{x}" for f, x in (("i", "i"), ("m", "m"), ("d", "s")) if f in pred.flags)
            return f"{column}|re{modifiers}", pattern
        if isinstance(pred, ir.Cmp):
            column = self.plain_column(pred.field, pred.span)
            if pred.op in _CMP:
                return f"{column}|{_CMP[pred.op]}", pred.number
            if pred.op == "==":
                return column, pred.number
            return None
        if isinstance(pred, ir.Exists):
            return f"{self.plain_column(pred.field, pred.span)}|exists", True
        if isinstance(pred, ir.Cidr):
            # |cidr (sigma-specification, appendix-modifiers): IPv4 and IPv6 networks (pySigma's
            # SigmaCIDRExpression reads both with ipaddress).
            subnets = list(pred.subnets)
            return f"{self.plain_column(pred.field, pred.span)}|cidr", subnets if len(subnets) > 1 else subnets[0]
        if isinstance(pred, ir.OpaqueTest):
            self.opaque_test(pred)
            return None
        if isinstance(pred, ir.ArrayAny):
            self.array_test(pred)
            return None
        if isinstance(pred, ir.FreeText):
            self.unsupported("free-text search reads every field of the LogScale event; Sigma's keywords match "
                             "ignoring case over whatever a backend searches, not the same fields", pred.span,
                             DETECTION)
            return None
        if isinstance(pred, ir.ExprTest):
            self.unsupported("test() has no Sigma form cqlx writes yet", pred.span, DETECTION)
            return None
        return None

    def plain_column(self, field: str, span: ir.Span) -> str:
        if field in self.computed:
            self.unsupported(f"a test on {field}, which the rule computes, has no Sigma form", span)
        column = self.column(field, span) or field
        if not column or "|" in column:  # Sigma reads `|` in a key as a modifier: no rule says this test
            raise UnsupportedError(f"the field name {column!r} cannot be a Sigma field (empty, or holds '|')", span)
        return column

    def basename_globs(self, column: str, globs: tuple[str, ...], ignore_case: bool) -> tuple[str, Any]:
        """Globs on a file name as one regex on the full path (regexes.basename_glob_regex)."""
        return f"{column}|re" + ("|i" if ignore_case else ""), basename_glob_regex(globs)

    def is_basename(self, field: str) -> bool:
        mapped = self.profile.field(self.event, field)
        return mapped is not None and mapped.transform == "basename"

    def transformed_filter(self, name: str, column: str, transform: str, span: ir.Span) -> None:
        if transform != "basename":  # basename tests are rewritten (or reported) in atom()
            super().transformed_filter(name, column, transform, span)

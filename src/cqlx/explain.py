"""``cqlx explain``: the IR as a person reads it — source, filter, signals, score, ladder, output."""

from __future__ import annotations

from cqlx import ir
from cqlx.functions import TIME_BUCKET, span_text
from cqlx.passes import atoms
from cqlx.regexes import features
from cqlx.valuefns import LAYOUTS, named_arguments


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _regex(pattern: str, flags: str) -> str:
    return "/" + pattern.replace("/", "\\/") + "/" + flags


def pred(p: ir.Pred) -> str:
    """A predicate in CQL notation (parenthesised where precedence would surprise)."""
    if isinstance(p, ir.And):
        return " and ".join(f"({pred(i)})" if isinstance(i, ir.Or) else pred(i) for i in p.items)
    if isinstance(p, ir.Or):
        return " or ".join(f"({pred(i)})" if isinstance(i, ir.And) else pred(i) for i in p.items)
    if isinstance(p, ir.Not):
        inner = pred(p.item)
        return f"not ({inner})" if isinstance(p.item, ir.And | ir.Or) else f"not {inner}"
    if isinstance(p, ir.Eq):
        return f"{p.field} = {_quote(p.value)}" + (" (ignoring case)" if p.ignore_case else "")
    if isinstance(p, ir.Glob):
        return f"{p.field} = {_quote(p.pattern)} (glob)" + (" (ignoring case)" if p.ignore_case else "")
    if isinstance(p, ir.Regex):
        return f"{p.field} = {_regex(p.pattern, p.flags)}"
    if isinstance(p, ir.Cmp):
        return f"{p.field} {p.op} {p.number}"
    if isinstance(p, ir.Exists):
        return f"{p.field} = *"
    if isinstance(p, ir.In):
        return f"in({p.field}, values=[{', '.join(_quote(v) for v in p.values)}]" \
               + (", ignoreCase=true)" if p.ignore_case else ")")
    if isinstance(p, ir.FreeText):
        return _regex(p.value, p.flags) if p.regex else _quote(p.value)
    if isinstance(p, ir.Cidr):
        return f"{p.field} in subnet {', '.join(p.subnets)}"
    if isinstance(p, ir.ExprTest):
        return f"test({expr(p.left)} {p.op} {expr(p.right)})"
    if isinstance(p, ir.OpaqueTest):
        return f"{p.text or p.name} [not converted: {p.reason}]"
    if isinstance(p, ir.ArrayAny):
        return f"some element of {p.array}[] ({p.array}[0], {p.array}[1], ...): {pred(p.test)}"
    return "*"


def expr(e: ir.Expr) -> str:
    if isinstance(e, ir.Lit):
        return _quote(e.value) if isinstance(e.value, str) else str(e.value)
    if isinstance(e, ir.Ref):
        return e.field
    if isinstance(e, ir.Cond):
        return f"if({pred(e.test)}, then={expr(e.then)}, else={expr(e.otherwise)})"
    if isinstance(e, ir.Arith):
        return f"({expr(e.left)} {e.op} {expr(e.right)})"
    if isinstance(e, ir.Null):
        return "(no value)"
    if e.name == TIME_BUCKET and len(e.args) >= 2 and isinstance(e.args[1], ir.Lit):
        return f"the start of the {span_text(int(e.args[1].value))} bucket of {expr(e.args[0])} (epoch ms, UTC)"
    if e.name in LAYOUTS:  # a value function: its arguments by name, defaults left out
        parts = [f"{name}=" + ("[" + ", ".join(expr(v) for v in value) + "]" if isinstance(value, tuple)
                               else expr(value)) for name, value in named_arguments(e)]
        return f"{e.name}({', '.join(parts)})"
    return f"{e.name}({', '.join(expr(a) for a in e.args)})"


def _function(f: ir.AggFunc) -> str:
    """One aggregate function in words."""
    if f.name == "collect":
        return (f"{f.output} = the distinct values of {f.field} (up to {f.limit}), sorted, joined by "
                + _quote(f.separator).replace("\n", "\\n").replace("\t", "\\t"))
    if f.name == "selectLast":
        return f"{f.output} = {f.field} of the most recent event that has it"
    if f.name in ("selectFromMax", "selectFromMin"):
        which = "largest" if f.name == "selectFromMax" else "smallest"
        return f"{f.output} = {f.field} of the event with the {which} {f.by}"
    if f.name == "percent":
        return f"{f.output} = the group's share of every group's {'sum of ' + f.field if f.field else 'count'}, in %"
    return f"{f.output} = {'distinct ' if f.distinct else ''}{f.name}({f.field or ''})"


def _case_sensitivity(p: ir.Pred) -> str:
    if isinstance(p, ir.Regex):
        return "case-insensitive" if "i" in p.flags else "case-sensitive"
    if isinstance(p, ir.Eq | ir.Glob | ir.In):
        return "case-insensitive" if p.ignore_case else "case-sensitive"
    return ""


def explain(query: ir.Query, title: str = "", path: str = "", line_offset: int = 0) -> str:
    """A readable account of the rule's meaning."""
    out: list[str] = []
    if title or path:
        out.append(f"Rule: {title}" + (f"  ({path})" if path else ""))
    types = ", ".join(query.source.event_types) or "any"
    platforms = ", ".join(query.source.platforms) or "any"
    out.append(f"Source: event types {types}; platforms {platforms}")
    for test in (query.source.types_test, query.source.platforms_test):
        if test is not None:
            out.append(f"  (selected by {pred(test)}, which the Python matcher and CQL keep as written)")
    signals = [s for s in query.steps if isinstance(s, ir.Signal)]
    # Filters after an aggregation or a field extraction are listed in order, where they run.
    first_group = next((i for i, s in enumerate(query.steps) if isinstance(s, ir.Aggregate | ir.Extract)),
                       len(query.steps))
    filters = [s for s in query.steps[:first_group] if isinstance(s, ir.Filter)]
    if filters:
        out.append("Filter (every test must hold):")
        for number, kept in enumerate(filters, start=1):
            note = _case_sensitivity(kept.pred)
            out.append(f"  {number}. {pred(kept.pred)}" + (f"   [{note}]" if note else ""))
    if signals:
        out.append("Signals:")
        width = max(len(s.name) for s in signals)
        for s in signals:
            outputs = []
            if s.flag_field:
                outputs.append(f"{s.flag_field} {s.flag_values[0]}/{s.flag_values[1]}")
            if s.score_field:
                outputs.append(f"{s.score_field} {s.weight}/0")
            note = _case_sensitivity(s.condition)
            out.append(f"  {s.name:<{width}}  weight {s.weight:<3} when {pred(s.condition)}"
                       + (f"   [{note}]" if note else ""))
            out.append(f"  {'':<{width}}  sets {', '.join(outputs)}")
    by_name = {s.name: s for s in signals}
    for step in query.steps:
        if isinstance(step, ir.Score):
            terms = " + ".join(f"{n}({by_name[n].weight})" if n in by_name else n for n in step.signals)
            top = sum(by_name[n].weight for n in step.signals if n in by_name)
            out.append(f"Score: {step.field} = {terms}   (0 to {top})")
        elif isinstance(step, ir.Ladder):
            arms = "; ".join(f"{t.label} if {step.score_field} >= {t.minimum}" for t in step.tiers)
            out.append(f"Ladder: {step.field} = {arms}; else {step.default}")
        elif isinstance(step, ir.Eval):
            out.append(f"Assign: {step.field} := {expr(step.expr)}")
        elif isinstance(step, ir.Extract):
            keep = "keep the events it matches" if step.strict else "keep every event"
            which = f"a row of each match, at most {step.each}" if step.each else "first match"
            out.append(f"Extract: {', '.join(step.groups)} from the named groups of {pred(step.test)} "
                       f"({which}; {keep})")
        elif isinstance(step, ir.Case):
            out.append(f"Case: {len(step.branches)} branches (the first that keeps the event wins; "
                       "no match drops it)")
        elif isinstance(step, ir.Project):
            out.append(f"Output fields: {', '.join(step.fields)}")
        elif isinstance(step, ir.Order) and step.origin in ("head", "tail"):
            which = "oldest" if step.origin == "head" else "newest"
            out.append(f"Keep the {step.limit} {which} events by @timestamp ({step.origin}())")
        elif isinstance(step, ir.Order):
            keys = ", ".join(f"{k.field} {'desc' if k.descending else 'asc'} ({k.type})" for k in step.keys)
            out.append(f"Order: {keys}; keep {step.limit} rows")
        elif isinstance(step, ir.Aggregate):
            functions = ", ".join(_function(f) for f in step.functions) or "no function"
            limit = f"up to {step.limit} groups" if step.limit is not None else "every group"
            groups = f"per {', '.join(step.keys)} (events without them are left out; {limit})" \
                if step.keys else "over all events (one row)"
            series = f"; keeps the {step.series_limit} series with the largest values" \
                if step.series_limit is not None and step.keys[1:] else ""
            out.append(f"Aggregate: {functions} {groups}{series}; later steps see the group rows")
        elif isinstance(step, ir.Totals):
            functions = ", ".join(_function(f) for f in step.functions)
            out.append(f"Add to every row: {functions} over all the rows (over none, one row of them alone)")
        elif isinstance(step, ir.Drop):
            out.append(f"Drop fields: {', '.join(step.fields)}")
        elif isinstance(step, ir.Opaque):
            effect = {ir.FILTERS: "may change which events pass", ir.ENRICHES: "adds fields",
                      ir.AGGREGATES: "replaces the events with rows of its own"}[step.effect]
            writes = "" if step.writes is None or not step.writes else f" ({', '.join(step.writes)})"
            out.append(f"Not converted: {step.text or step.name} {effect}{writes}; {step.reason}")
        elif isinstance(step, ir.Lookup):
            out.append(f"Lookup: {_lookup(step)}")
        elif isinstance(step, ir.Join):
            out.append(f"Join: {_join(step)}")
        elif isinstance(step, ir.GroupTail):
            events = "event" if step.count == 1 else f"{step.count} events"
            out.append(f"Keep the newest {events} by @timestamp of each group of {', '.join(step.keys)} "
                       "(groupBy(function=tail()))")
        elif isinstance(step, ir.SelfJoinFilter):
            wheres = "; ".join(pred(p) for p in step.wheres)
            which = "those that meet one of the filters" if step.prefilter else "every event with such a key"
            out.append(f"Self-join filter: keys {', '.join(step.fields)} for which some event meets each of: "
                       f"{wheres}; keep {which}")
        elif isinstance(step, ir.Filter) and all(step is not kept for kept in filters):
            out.append(f"Keep the rows where: {pred(step.pred)}")
    regexes = [p for p in atoms(query) if isinstance(p, ir.Regex)]
    portability = sorted({f for p in regexes for f in features(p.pattern)})
    if portability:
        out.append("Regex features used: " + ", ".join(portability))
    grouped: dict[str, list[int]] = {}
    for span, note in query.notes:
        grouped.setdefault(note, []).append(span.line + line_offset)
    for note, lines in grouped.items():
        unique = list(dict.fromkeys(lines))
        out.append(f"Note: {note}; line{'s' if len(unique) > 1 else ''} {', '.join(map(str, unique))}")
    return "\n".join(out)


def _lookup(step: ir.Lookup) -> str:
    """A ``match()`` in words: what it compares, what it keeps and what it writes."""
    pairs = ", ".join(f for f in step.fields) if step.columns == step.fields else \
        ", ".join(f"{f} against column {c}" for f, c in zip(step.fields, step.columns, strict=True))
    how = {"string": "equal", "glob": "matching the file's * patterns", "cidr": "in the file's CIDR subnets"}[step.mode]
    how += ", ignoring case" if step.ignore_case else ""
    if step.negated:
        return f"keep the events whose {pairs} ({how}) has no row in {step.file}"
    written = "every column" if step.include is None else (", ".join(step.include) or "nothing")
    keep = "keep only the events with a row" if step.strict else "keep every event"
    return f"look {pairs} up in {step.file} ({how}); {keep}, and write {written} from the matching row"


def _join(step: ir.Join) -> str:
    """A ``join()`` in words."""
    pairs = ", ".join(f"{f} = {k}" for f, k in zip(step.fields, step.keys, strict=True))
    types = ", ".join(step.subquery.source.event_types) or "any event type"
    sub = f"a subquery over {types} ({len(step.subquery.steps)} step{'s' if len(step.subquery.steps) != 1 else ''})"
    if step.origin == "defineTable":
        sub = f"the ad-hoc table {step.table} ({sub})"
    if step.negated:
        return f"keep the events with no row of {sub} where {pairs}"
    keep = "keep only the events with a row" if step.mode == "inner" else "keep every event"
    written = ", ".join(step.include) or "nothing"
    each = " (an event for each matching row)" if step.many else ""
    return f"match {sub} where {pairs}; {keep}, and write {written} from it{each}"

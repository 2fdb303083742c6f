"""IR → Splunk SPL, one method per IR node.

Facts (help.splunk.com, search reference; SEMANTICS.md): ``search`` terms and ``field=value`` are
case-insensitive, ``field=CASE(value)`` is not; ``where`` and ``eval`` comparisons are
case-sensitive; ``regex`` and ``match()`` are PCRE, so ``(?i)`` goes in only where the CQL says
``i``. A ``where`` or ``eval`` test on a missing field is null, not false, so a negation is written
``isnull(f) OR NOT ...`` to stay true for events without the field, as in CQL. ``sort`` keeps 10,000
rows unless told, LogScale's ``sort()`` 200: the count is always written (``sort 200 -num(x)``).

There is no offline Splunk to check this output against; ``cqlx.spl_oracle`` (when present) runs
exactly the subset emitted here, from Splunk's documented behaviour.
"""

from __future__ import annotations

import re

from cqlx import ir
from cqlx.emit.base import PRESENTATION, Generator
from cqlx.functions import AGGREGATE_OUTPUTS, COLLECT_LIMIT_DEFAULT, TIME_BUCKET
from cqlx.passes import decisive_within, expand_case, folds_case, pred_fields, step_writes
from cqlx.regexes import (
    flag_prefix,
    glob_to_regex,
    group_is_optional,
    may_match_nothing,
    python_error,
    to_pcre,
    to_python,
)

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # in eval, `.` concatenates: a.b must be quoted
_PLAIN_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_SEARCH_WORD = re.compile(r"^[A-Za-z0-9_.\-]+$")
#: Splunk's own fields, which a CIM data model does not prefix with its dataset's name.
BASE_FIELDS = frozenset({"host", "source", "sourcetype", "index", "splunk_server", "linecount"})


def dataset_field(prefix: str, name: str) -> str:
    """A field as a data model search names it: with its dataset's prefix (``Processes.process``),
    except Splunk's own fields (``_time``, ``host``...) (Search Reference, datamodel)."""
    return name if not prefix or name.startswith("_") or name in BASE_FIELDS else prefix + name
_CMP = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def string(value: str) -> str:
    """An SPL string literal: backslash and double quote escaped with a backslash."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def field_ref(name: str) -> str:
    """A field in eval/where: bare when plain, else in single quotes (backslash and quote escaped)."""
    return name if _PLAIN.fullmatch(name) else "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_name(name: str) -> str:
    return name if _PLAIN_TABLE.fullmatch(name) else string(name)


def _number(value: int | float) -> str:
    return repr(value)


def negate(pred: ir.Pred) -> ir.Pred:
    """Push a negation down to the tests (De Morgan), so each can be made null-safe."""
    if isinstance(pred, ir.Not):
        return pred.item
    if isinstance(pred, ir.And):
        return ir.Or(tuple(negate(p) for p in pred.items), pred.span)
    if isinstance(pred, ir.Or):
        return ir.And(tuple(negate(p) for p in pred.items), pred.span)
    return ir.Not(pred, pred.span)


def _required(pred: ir.Pred) -> set[str]:
    """Fields a predicate can only be true with (the positive conjuncts' fields)."""
    if isinstance(pred, ir.And):
        return set().union(*(_required(p) for p in pred.items))
    if isinstance(pred, ir.Or):
        sets = [_required(p) for p in pred.items]
        return set.intersection(*sets) if sets else set()
    if isinstance(pred, ir.Eq | ir.Glob | ir.Regex | ir.Cmp | ir.Exists | ir.In | ir.Cidr):
        return {pred.field}
    return set()


_LAST_PART = "(?<{name}>[^\\\\/]+)$"  # PCRE: the text after the last \\ or / (a file name)


class SplGenerator(Generator):
    present: set[str]
    numeric: set[str]

    def generate(self) -> str:
        self.present = set()
        self.numeric = set()  # computed fields known to hold numbers
        self.preamble: list[str] = []  # evals a step needs before it (derived fields)
        self.times: set[str] = set()  # event times derive() wrote as epoch ms, not written since
        lines = [self.base_search()]
        for step in self.query.steps:
            self.unextracted(step)
            ops = self.step(step)
            lines.extend(f"| {op}" for op in [*self.preamble, *ops])
            self.preamble.clear()
            self.track(step)
            if isinstance(step, ir.Filter):
                self.present |= _required(step.pred)
        return "\n".join(lines) + "\n"

    def column(self, name: str, span: ir.Span = ir.NO_SPAN, output: bool = False) -> str | None:
        derived = self.derive(name, output)
        if derived is not None:
            return derived
        mapped = super().column(name, span, output)
        if mapped is not None and self.event is not None and name not in self.computed:
            return dataset_field(self.event.prefix, mapped)
        return mapped

    def derive(self, name: str, output: bool = False) -> str | None:
        """A Falcon field the profile holds in another shape, computed back where eval can: a file
        name (``FileName``) from the full path the profile has (``ImageFileName``), as the text after
        its last ``\\`` or ``/`` — what LogScale's Falcon parser writes; an event time that a rule
        tests, computes with or groups by (``@timestamp``) as LogScale's epoch milliseconds from
        ``_time``'s epoch seconds. Computed once, before the first step that reads it; then the
        field is the rule's own."""
        if name in self.computed or not hasattr(self, "preamble"):
            return None
        mapped = self.profile.field(self.event, name)
        if mapped is None or mapped.transform not in ("basename", "splunk_time"):
            return None
        source = dataset_field(self.event.prefix, mapped.name) if self.event is not None else mapped.name
        if mapped.transform == "splunk_time":
            if output:  # only shown: Splunk's own time column, as before
                return None
            self.preamble.append(f"eval {field_ref(name)}=round({field_ref(source)}*1000)")
            self.computed.add(name)
            self.numeric.add(name)
            self.times.add(name)
            return name
        # rex sets the field only where the path has a last part: a path ending in a separator
        # names no file (as the Python matcher and Defender's FileName have it, no value).
        self.preamble.append(f"rex field={field_ref(source)} {string(_LAST_PART.format(name=name))}")
        self.computed.add(name)
        return name

    def base_search(self) -> str:
        event = self.event
        if event is not None and event.datamodel:
            # A CIM data model search (datamodel command): its fields carry the dataset's prefix.
            model, dataset = event.datamodel.split(".")
            head = f"| datamodel {model} {dataset} search"
            extra = " ".join([f"{k}={self.search_value(v)}" for k, v in event.search] + self.match_terms()
                             + self.platform_terms(None))
            return head + (f"\n| search {extra}" if extra else "")
        if event is None or not event.search:
            return "search *"
        terms: list[str] = []
        source = self.query.source
        for key, value in event.search:
            if key == "event_simpleName":
                types = source.event_types or (value,)
                terms.append(self.source_term("event_simpleName", types, folds_case(source.types_test)))
            else:
                terms.append(f"{key}={self.search_value(value)}")
        terms += self.match_terms()
        return " ".join(terms + self.platform_terms("event_platform"))

    def platform_terms(self, fallback: str | None) -> list[str]:
        """``event_platform=Win``: a search term on the profile's column for it, never dropped (the
        column's mapping reports one that is not the same information, as CIM's ``os``);
        ``fallback``: the name to search when the profile maps none (raw FDR keeps Falcon's)."""
        source = self.query.source
        column = self.column("event_platform") or fallback if source.platforms else None
        if column is None:
            return []
        return [self.source_term(table_name(column), source.platforms, folds_case(source.platforms_test))]

    def source_term(self, column: str, values: tuple[str, ...], ignore_case: bool) -> str:
        """``field=value`` in search is case-insensitive; CASE() keeps CQL's exact match (search
        manual, CASE()); a source test that ignores case (``/^ProcessRollup2$/i``) needs none."""
        alts = [f"{column}={self.search_value(v)}" if ignore_case else f"{column}=CASE({self.search_value(v)})"
                for v in values]
        return alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")"

    def match_terms(self) -> list[str]:
        """The event type's records in a shared source, case-sensitive as CASE() makes them."""
        terms = []
        for column, values in self.record_tests():
            prefixed = (self.event.prefix if self.event else "") + column
            alts = [f"{table_name(prefixed)}=CASE({self.search_value(v)})" for v in values]
            terms.append(alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")")
        return terms

    @staticmethod
    def search_value(value: str) -> str:
        return value if _SEARCH_WORD.fullmatch(value) else string(value)

    # ------------------------------------------------------------ steps

    def exists(self, field: str) -> bool:
        """Whether the events may hold the field here: the rule wrote it, or the profile maps it or
        passes every field through (raw FDR). A CIM dataset holds only the fields the profile maps,
        so a field the rule assigns for the first time starts with no value there."""
        return field in self.computed or self.profile.unmapped != "strict" or \
            self.profile.field(self.event, field) is not None

    def step(self, step: ir.Step) -> list[str]:
        if isinstance(step, ir.Extract):
            return self.extract(step)
        if isinstance(step, ir.Filter):
            pred = step.pred
            if isinstance(pred, ir.Regex) and not step_reads_computed(self, pred):
                column = self.col(pred.field, pred.span)
                # `regex` drops events without the field, as a CQL regex filter does.
                return [f"regex {table_name(column)}={string(self.pattern(pred.pattern, pred.flags, pred.span))}"]
            return [f"where {self.pred(pred)}"]
        if isinstance(step, ir.Eval):
            self.current: ir.Step | None = step
            try:
                value = self.expr(step.expr)
            finally:
                self.current = None
            if _may_be_null(step.expr) and self.exists(step.field):
                # eval would erase the field; CQL's := leaves it as it was
                value = f"coalesce({value}, {field_ref(self.col(step.field, step.span))})"
            if _numeric_expr(step.expr, self.numeric):
                self.numeric.add(step.field)
            else:
                self.numeric.discard(step.field)
            return [f"eval {field_ref(step.field)}={value}"]
        if isinstance(step, ir.Signal):
            out = []
            condition = self.condition(step.condition)
            if step.flag_field:
                yes, no = step.flag_values
                out.append(f"eval {field_ref(step.flag_field)}=if({condition}, {string(yes)}, {string(no)})")
                condition = f"{field_ref(step.flag_field)}=={string(yes)}"
            if step.score_field:
                out.append(f"eval {field_ref(step.score_field)}=if({condition}, {_number(step.weight)}, 0)")
                self.numeric.add(step.score_field)
            return out
        if isinstance(step, ir.Score):
            signals = {s.name: s for s in self.query.steps if isinstance(s, ir.Signal)}
            terms = [field_ref(signals[n].score_field or n) for n in step.signals]
            self.numeric.add(step.field)
            return [f"eval {field_ref(step.field)}={'+'.join(terms)}"]
        if isinstance(step, ir.Ladder):
            score = field_ref(step.score_field)
            arms = ", ".join(f"{score}>={_number(t.minimum)}, {string(t.label)}" for t in step.tiers)
            return [f"eval {field_ref(step.field)}=case({arms}, true(), {string(step.default)})"]
        if isinstance(step, ir.Project):
            columns = [c for c in (self.column(f, step.span, output=True) for f in step.fields) if c]
            return ["table " + " ".join(table_name(c) for c in dict.fromkeys(columns))]
        if isinstance(step, ir.Order):
            return [self.order(step)]
        if isinstance(step, ir.Aggregate):
            return self.aggregate(step)
        if isinstance(step, ir.GroupTail):
            return self.group_tail(step)
        if isinstance(step, ir.Totals):
            return self.totals(step)
        if isinstance(step, ir.Case):
            return self.case(step)
        if isinstance(step, ir.Drop):
            columns = [c for c in (self.column(f, step.span, output=True) for f in step.fields) if c]
            return ["fields - " + " ".join(table_name(c) for c in dict.fromkeys(columns))] if columns else []
        if isinstance(step, ir.Opaque):
            self.opaque(step)
            return []
        if isinstance(step, ir.Lookup):
            return self.lookup(step)
        if isinstance(step, ir.Join):
            return self.join(step)
        raise AssertionError(f"unexpected step {type(step).__name__}")

    def join(self, step: ir.Join) -> list[str]:
        """``join()`` as SPL's ``join`` with a subsearch converted by the same emitter. SPL joins on
        fields of the same name: both sides copy their keys to scratch fields (a key the subsearch
        row lacks, or empty, matches nothing); the subsearch keeps one row per key (``dedup``:
        LogScale's max=1) and its include fields as text (``""`` for one the row lacks,
        functions-join). ``type=inner`` drops unmatched events, ``type=left`` keeps them (a marker
        field says which matched; ``!join()`` keeps those without it). Splunk's join reads at most
        50,000 subsearch rows (limits.conf subsearch_maxout), LogScale's 100,000: both are assumed
        not reached."""
        tag = f"_cqlx_join{self.next_number('joins')}"
        sub = SplGenerator(step.subquery, self.profile, self.meta, self.target, subject="the join's subquery")
        lines = sub.generate().strip().split("\n")
        keys = [f"{tag}_key{i}" for i in range(1, len(step.keys) + 1)]
        sub_keys = [f"{k}={field_ref(sub.col(f, step.span))}" for k, f in zip(keys, step.keys, strict=True)]
        written = step.writes
        values = [f"{tag}_value{i}" for i in range(1, len(written) + 1)]
        sub_values = [f'{v}=coalesce({field_ref(sub.col(f, step.span))}, "")' for v, f in zip(values, written,
                                                                                               strict=True)]
        lines += [f"| {op}" for op in sub.preamble]  # what the keys and values read is derived after its steps
        self.adopt(sub.diagnostics)
        present = " AND ".join(f'isnotnull({k}) AND {k}!=""' for k in keys)
        body = " ".join(lines) if lines[0].startswith("|") else "search " + " ".join(lines)
        many = step.many and not step.negated  # nrows=max: an event for each matching row (max=0: all)
        once = "" if many else f"| dedup {' '.join(keys)} "
        subsearch = (f"[{body} | eval {', '.join([*sub_keys, *sub_values, f'{tag}_hit=1'])} | where {present} "
                     f"{once}| fields {' '.join([*keys, *values, f'{tag}_hit'])}]")
        main_keys = ", ".join(f"{k}={field_ref(self.col(f, step.span))}" for k, f in zip(keys, step.fields,
                                                                                         strict=True))
        kind = "inner" if step.filters and not step.negated else "left"
        out = [f"eval {main_keys}", f"join type={kind} max={0 if many else 1} {' '.join(keys)} {subsearch}"]
        if step.negated:
            out.append(f"where isnull({tag}_hit)")
        assignments = []
        for column, value in zip(written, values, strict=True):
            if kind == "left":
                value = f"if(isnotnull({tag}_hit), {value}, {field_ref(self.col(column, step.span))})"
            assignments.append(f"{field_ref(column)}={value}")
            self.numeric.discard(column)
        if assignments:
            out.append("eval " + ", ".join(assignments))
        out.append("fields - " + " ".join([*keys, *values, f"{tag}_hit"]))
        if kind == "inner":
            self.present |= set(step.fields)
        return out

    def lookup(self, step: ir.Lookup) -> list[str]:
        """``match()`` as ``lookup FILE column AS field ... OUTPUT column AS scratch ...``: Splunk's
        CSV lookup compares exactly and case-sensitively (transforms.conf case_sensitive_match
        defaults to true); its key column is output too, so a non-null scratch key says a row
        matched. ``where`` then keeps (strict) or drops (``!match()``) the events, and ``eval``
        writes each included column over the event's field (an empty cell as ``""``, as the
        matcher does; when not strict, only where a row matched). With several matching rows Splunk
        makes multivalue fields, where LogScale's nrows=1 takes one row: the file's keys are
        assumed unique."""
        if step.ignore_case:
            self.lookup_lost(step, "ignoreCase=true needs a lookup definition with case_sensitive_match = false "
                             "(transforms.conf); the lookup command on a file matches case-sensitively")
            return []
        if step.mode != "string":
            kind = "WILDCARD" if step.mode == "glob" else "CIDR"
            self.lookup_lost(step, f"mode={step.mode} needs a lookup definition with match_type = "
                             f"{kind}(column) (transforms.conf); the lookup command on a file matches exactly")
            return []
        tag = f"_cqlx_lookup{self.next_number('lookups')}"
        keys = ", ".join(f"{table_name(c)} AS {table_name(self.col(f, step.span))}"
                         for f, c in zip(step.fields, step.columns, strict=True))
        written = () if step.negated else (step.include or ())
        outputs = [(step.columns[0], f"{tag}_key"), *((c, f"{tag}_value{i}") for i, c in enumerate(written, 1))]
        out = [f"lookup {table_name(step.file)} {keys} OUTPUT "
               + ", ".join(f"{table_name(c)} AS {s}" for c, s in outputs)]
        matched = f"isnotnull({tag}_key)"
        if step.negated:
            out.append(f"where isnull({tag}_key)")
        elif step.strict:
            out.append(f"where {matched}")
        assignments = []
        for column, (_, scratch) in zip(written, outputs[1:], strict=True):
            value = f'coalesce({scratch}, "")'
            if not step.strict:
                value = f"if({matched}, {value}, {field_ref(self.col(column, step.span))})"
            assignments.append(f"{field_ref(column)}={value}")
            self.numeric.discard(column)
        if assignments:
            out.append("eval " + ", ".join(assignments))
        out.append("fields - " + " ".join(s for _, s in outputs))
        if step.include is None and not step.negated:
            self.lookup_lost(step, "without include= it adds every column of the file, which the SPL must name: "
                             "give include=[...]", part="columns")
        if step.filters and not step.negated:
            self.present |= set(step.fields)
        return out

    def case(self, step: ir.Case) -> list[str]:
        """SPL has no first-match branches: the branch an event takes is computed once, then each
        assigned field from it (:func:`cqlx.passes.expand_case`)."""
        # a field the events may hold keeps its value where no branch assigns it (eval reads a
        # missing one as null); one they cannot hold (a CIM dataset's unmapped field) starts empty
        steps = expand_case(self.case_without_extraction(step), f"_cqlx_case{self.next_number('cases')}",
                            self.exists)
        if steps is None:
            self.unsupported("a case { } branch filters after it assigns, or reads what it assigns; cqlx does not "
                             "convert that to SPL", step.span)
            return []
        self.needed_after += decisive_within(steps, self.decisive(step))  # what the rewritten steps lose
        out: list[str] = []
        for inner in steps:
            out += self.step(inner)
            self.track(inner)
            if isinstance(inner, ir.Filter):
                self.present |= _required(inner.pred)
        return out

    def extract(self, step: ir.Extract) -> list[str]:
        """``rex field=F "re"`` (Search Reference, rex: it matches the field against the unanchored
        regex and extracts the named groups into fields of the same names; it keeps the events it
        does not match), after the filter when strict. What rex does with a group that captures
        nothing or takes no part is not documented: a later test on such a group is reported.
        ``regex(repeat=true)``: ``max_match=N``, then :meth:`expand_each`."""
        out = self.step(ir.Filter(step.test, step.span)) if step.strict else []
        self.present |= {step.field} if step.strict else set()
        column = self.col(step.field, step.span)
        self.optional_groups(step, "Splunk's rex documentation does not say what such a group sets")
        self.numeric -= set(step.groups)
        rex = f"rex field={table_name(column)} {string(self.pattern(step.pattern, step.flags, step.span))}"
        if not step.each:
            return [*out, rex]
        # Search Reference, rex: rex [field=<field>] ( <regex-expression> [max_match=<int>] ... )
        return [*out, f"{rex} max_match={step.each}", *self.expand_each(step)]

    def expand_each(self, step: ir.Extract) -> list[str]:
        """``regex(repeat=true)``: after ``rex ... max_match=N`` (:meth:`extract`), which makes each
        group's field multivalued, one value per match, ``mvexpand`` a result of each value (Search
        Reference, rex and mvexpand). Several groups, or ``strict=false``: a result of each position (``mvrange()``
        over the first group's values, one position where it has none), each group's value at it
        (``mvindex()``); a result rex did not match keeps its fields (one value, or none), and
        mvexpand never meets a result without the field it expands (what it does then is not
        documented). Only groups that every match sets to something: the lists line up then, and
        what rex writes for a group that captures nothing or takes no part is not documented; nor
        how rex goes on after an empty match (a regex whose match may be empty is refused)."""
        for group in step.groups:
            if group_is_optional(step.pattern, step.flags, group) or may_match_nothing(step.pattern, step.flags):
                self.unsupported(f"regex(repeat=true) whose group {group} may capture nothing or whose regex may "
                                 "match nothing: what Splunk's rex max_match makes of an empty match is not "
                                 "documented", step.span)
        if len(step.groups) == 1 and step.strict:  # every result has the field: one value per match
            return [f"mvexpand {table_name(step.groups[0])} limit={step.each}"]
        index = f"_cqlx_each{self.next_number('scratch')}"
        return [f"eval {index}=mvrange(0, coalesce(mvcount({field_ref(step.groups[0])}), 1))",
                f"mvexpand {index} limit={step.each}",
                "eval " + ", ".join(f"{field_ref(g)}=mvindex({field_ref(g)}, {index})" for g in step.groups),
                f"fields - {index}"]

    def totals(self, step: ir.Totals) -> list[str]:
        """The outputs over all rows on every row (stats() with a sort(): functions-stats):
        ``eventstats`` adds them to each row (Search Reference, eventstats). Over no rows LogScale
        still gives one row, of the outputs alone: ``appendpipe`` runs its subpipeline over the
        results and appends what it gives (Search Reference, appendpipe), here a row only when
        there was none (stats count over no results is 0), holding count() and sum() as 0 (their
        value over no events; min(), max() and avg() of none leave their outputs unset)."""
        tag = f"_cqlx_rows{self.next_number('totals')}"
        out = self.aggregate(ir.Aggregate((), step.functions, None, span=step.span), "eventstats")
        zero = [f"{field_ref(f.output)}=0" for f in step.functions if f.name in ("count", "sum")]
        inner = [f"stats count as {tag}", f"where {tag}=0", *([f"eval {', '.join(zero)}"] if zero else []),
                 f"fields - {tag}"]
        return [*out, f"appendpipe [{' | '.join(inner)}]"]

    def aggregate(self, step: ir.Aggregate, command: str = "stats") -> list[str]:
        """``stats``, which leaves out events that lack a ``by`` field, as groupBy() does (Search
        Reference, stats). ``count(f)`` counts events that have f, ``dc(f)`` its distinct values;
        ``sum``/``avg`` of the numeric values; ``min``/``max`` of text compare lexicographically in
        Splunk, so they read ``tonumber()`` of the field (null when it is no number, and skipped).
        Splunk's ``sum`` of no number is null where LogScale's is 0: written back with ``coalesce``.
        The functions that keep values are :meth:`value_terms`; ``top(percent=true)`` is the
        group's count over the sum of every group's (``eventstats``)."""
        terms = []
        numbers: list[tuple[str, str]] = []  # eval before stats: min/max of the field's numbers only
        before: list[str] = []  # eval/eventstats before stats (selectFromMax's pick)
        after: list[str] = []  # eval after stats (collect's join)
        keys = [table_name(self.col(key, step.span)) for key in step.keys]
        index = 0
        while index < len(step.functions):
            function = step.functions[index]
            if function.name in ("collect", "selectLast", "selectFromMax", "selectFromMin"):
                end = index + 1
                while function.by is not None and end < len(step.functions) \
                        and (step.functions[end].name, step.functions[end].by) == (function.name, function.by):
                    end += 1
                terms += self.value_terms(step, step.functions[index:end], keys, before, after)
                index = end
                continue
            index += 1
            if function.field is None:
                call = "count"
            elif function.name in ("min", "max") and self.time_column(function.field) \
                    and not self.read_later(step, function.output):
                # the event time, only shown: Splunk's _time, epoch seconds (LogScale's is epoch
                # milliseconds); read later, it is computed back before the aggregation (derive)
                self.shown_time(step, function)
                call = f"{function.name}({table_name(self.time_column(function.field) or '_time')})"
            elif function.name in ("min", "max") and function.field not in self.numeric:
                # Splunk's min/max of text compare lexicographically; LogScale's skip what is no number.
                scratch = f"_cqlx_number{len(numbers) + 1}"
                numbers.append((scratch, f"tonumber({field_ref(self.col(function.field, step.span))})"))
                call = f"{function.name}({scratch})"
            else:
                column = table_name(self.col(function.field, step.span))
                name = "dc" if function.distinct else "sum" if function.name == "percent" else function.name
                call = f"{name}({column})"
            terms.append(f"{call} as {table_name(function.output)}")
        if not terms:
            # stats needs a function: count one and drop it again (groupBy(function=[]) lists groups)
            terms, dropped = ["count as _cqlx_groups"], True
        else:
            dropped = False
        self.group_limit_kept(step)
        if step.series_limit is not None and step.keys[1:]:
            self.unsupported(f"LogScale keeps the {step.series_limit} series with the largest values; SPL keeps "
                             "every series", step.span, self.loss(step))
        out = ["eval " + ", ".join(f"{n}={value}" for n, value in numbers)] if numbers else []
        out += before
        out.append(f"{command} " + ", ".join(terms) + (" by " + ", ".join(keys) if keys else ""))
        if command == "eventstats" and numbers:  # the rows stay: their scratch numbers go
            out.append("fields - " + " ".join(n for n, _ in numbers))
        if dropped:
            out.append("fields - _cqlx_groups")
        sums = [f.output for f in step.functions if f.name == "sum"]
        if sums:
            out.append("eval " + ", ".join(f"{field_ref(x)}=coalesce({field_ref(x)}, 0)" for x in sums))
        out += after
        for function in step.functions:
            if function.name == "percent":
                share = field_ref(function.output)
                out += [f"eventstats sum({table_name(function.output)}) as _cqlx_total",
                        f"eval {share}=if(_cqlx_total>0, {share}*100/_cqlx_total, null())", "fields - _cqlx_total"]
        if not step.keys and not any(f.name in AGGREGATE_OUTPUTS or f.name == "percent" for f in step.functions):
            # Without keys stats gives a row; LogScale's collect(), selectLast()... give none without a value.
            out.append("where " + " OR ".join(f"isnotnull({field_ref(o)})" for o in dict.fromkeys(step.outputs)))
        counted = {"count", "sum", "percent"}
        self.numeric |= {f.output for f in step.functions if f.name in AGGREGATE_OUTPUTS or f.name == "percent"}
        self.numeric -= {f.output for f in step.functions if f.name not in AGGREGATE_OUTPUTS and f.name != "percent"}
        self.present = set(step.keys) | {f.output for f in step.functions if f.name in counted}
        self.grouped = set(step.keys) | set(step.outputs)
        return out

    def value_terms(self, step: ir.Aggregate, group: tuple[ir.AggFunc, ...], keys: list[str], before: list[str],
                    after: list[str]) -> list[str]:
        """collect(): ``values()`` (the distinct values, sorted lexicographically: Search Reference,
        multivalue stats functions) joined with ``mvjoin()``, as the matcher joins them (LogScale's
        order is undefined). selectLast(): ``latest()`` (the chronologically latest value of the
        field: time functions). selectFromMax()/selectFromMin(): ``eventstats`` finds the group's
        largest/smallest number, each include field is kept only on the events that have it, and
        ``first()`` takes it; ties, which LogScale breaks at random, may mix fields of tied events."""
        scratch = self.next_number("scratch")
        first = group[0]
        if first.name == "collect":
            assert first.field is not None
            out = table_name(first.output)
            if first.limit != COLLECT_LIMIT_DEFAULT:
                self.unsupported(f"collect(limit={first.limit}): SPL's values() keeps every value, LogScale "
                                 f"{first.limit} of them", step.span, self.loss(step, frozenset({first.output})))
            after.append(f"eval {field_ref(first.output)}=mvjoin({field_ref(first.output)}, "
                         f"{self.separator(first.separator)})")
            return [f"values({table_name(self.shown(step, first.field, first.output))}) as {out}"]
        if first.name == "selectLast":
            assert first.field is not None
            self.shown_time(step, first)
            return [f"latest({table_name(self.shown(step, first.field, first.output))}) as "
                    f"{table_name(first.output)}"]
        assert first.by is not None
        pick, best = f"_cqlx_pick{scratch}", f"_cqlx_best{scratch}"
        by = field_ref(self.time_column(first.by) or self.col(first.by, step.span))
        before.append(f"eval {pick}=tonumber({by})")
        extreme = "max" if first.name == "selectFromMax" else "min"
        before.append(f"eventstats {extreme}({pick}) as {best}" + (" by " + ", ".join(keys) if keys else ""))
        values = []
        terms = []
        for number, function in enumerate(group, start=1):
            assert function.field is not None
            value = f"_cqlx_value{scratch}_{number}"
            column = self.time_column(function.field) or self.shown(step, function.field, function.output)
            values.append(f"{value}=if({pick}=={best}, {field_ref(column)}, null())")
            terms.append(f"first({value}) as {table_name(function.output)}")
            self.shown_time(step, function)
        before.append("eval " + ", ".join(values))
        return terms

    def separator(self, text: str) -> str:
        """collect()'s separator as an eval string: a control character (the default is a line
        break) cannot stand in a string literal, so such a separator is urldecode() of its %XX bytes."""
        if all(ord(c) >= 0x20 for c in text):
            return string(text)
        return f'urldecode("{"".join(f"%{b:02X}" for b in text.encode("utf-8"))}")'

    def shown(self, step: ir.Aggregate, field: str, output: str) -> str:
        """A field whose values an aggregation keeps: losing it is presentation loss unless a later
        step decides on ``output``."""
        column = self.column(field, step.span, output=self.loss(step, frozenset({output})) == PRESENTATION)
        return column or field

    def track(self, step: ir.Step) -> None:
        super().track(step)
        if self.times:  # (most rules derive no time: no second step_writes() per step for them)
            self.times -= step_writes(step)

    def time_column(self, field: str) -> str | None:
        """The column of an event-time field read as a time (Splunk's ``_time``, epoch seconds)."""
        if field in self.computed:
            return None
        mapped = self.profile.field(self.event, field)
        return mapped.name if mapped is not None and mapped.transform == "splunk_time" else None

    def shown_time(self, step: ir.Aggregate, function: ir.AggFunc) -> None:
        """A time field kept as it is: epoch seconds in Splunk, epoch milliseconds in LogScale."""
        if function.field is not None and self.time_column(function.field):
            self.unsupported(f"{function.output} is shown as Splunk's _time (epoch seconds), not as LogScale's "
                             "epoch milliseconds", step.span, self.shown_time_loss(step, function.output),
                             (function.output,))

    def time_bucket(self, expr: ir.Func) -> str:
        """bucket()'s ``_bucket``: the start of the event time's bucket in epoch milliseconds, from
        ``_time`` (epoch seconds), aligned to the epoch as LogScale's UTC buckets are (the lowering
        allows only spans that divide a day)."""
        time, span = expr.args[0], expr.args[1]
        assert isinstance(time, ir.Ref) and isinstance(span, ir.Lit) and isinstance(span.value, int)
        if time.field in self.times:  # already LogScale's epoch milliseconds (derive)
            return f"floor({field_ref(time.field)}/{span.value})*{span.value}"
        column = self.time_column(time.field)
        if column is None:
            self.unsupported("bucket() needs the event time, which has no _time here", expr.span)
            column = time.field
        if span.value % 1000 == 0:
            seconds = span.value // 1000
            return f"floor({field_ref(column)}/{seconds})*{span.value}"
        return f"floor({field_ref(column)}*1000/{span.value})*{span.value}"

    def group_tail(self, step: ir.GroupTail) -> list[str]:
        """``groupBy(keys, function=tail(N))``: the results newest first, then ``dedup N`` of the
        keys, which keeps the first N results of each combination of their values and removes
        results without one (Search Reference, dedup: ``<int>`` results per combination;
        keepempty=false), as groupBy() leaves such events out. Among results of one time, Splunk
        keeps any, LogScale the last."""
        column = self.column("@timestamp", step.span, output=True)
        if column is None:
            self.unsupported("tail() picks the newest events, and the results have no time here", step.span)
            return []
        self.group_limit_kept(step)
        keys = [table_name(self.col(key, step.span)) for key in step.keys]
        count = f"{step.count} " if step.count != 1 else ""
        return [f"sort 0 -num({table_name(column)})", f"dedup {count}{' '.join(keys)}"]

    def order(self, step: ir.Order) -> str:
        keys = []
        for key in step.keys:
            column = self.column(key.field, step.span, output=True)
            if column is None:
                continue
            kind = {"number": "num", "string": "str"}.get(key.type)
            if kind is None:
                self.unsupported(f"sort type={key.type} has no Splunk sort type; sorted automatically",
                                 step.span, PRESENTATION)
                kind = "auto"
            keys.append(f"{'-' if key.descending else '+'}{kind}({table_name(column)})")
        grouped = getattr(self, "grouped", None)
        if step.origin in ("head", "tail") and grouped is not None and "@timestamp" not in grouped:
            which = "first" if step.origin == "head" else "last"
            self.unsupported(f"{step.origin}() on rows without a time keeps the {which} rows in LogScale's order, "
                             "which is not SPL's order of the group rows", step.span, PRESENTATION)
        # Splunk's sort keeps 10,000 rows unless told; LogScale's keeps `limit` (200 by default).
        return f"sort {step.limit} " + ", ".join(keys) if keys else f"head {step.limit}"

    # ------------------------------------------------------------ predicates (where/eval syntax)

    def col(self, field: str, span: ir.Span) -> str:
        return self.column(field, span) or field

    def pattern(self, pattern: str, flags: str, span: ir.Span = ir.NO_SPAN) -> str:
        error = python_error(to_python(pattern))
        if error is not None:  # a pattern no engine accepts would be refused by Splunk at search time
            self.unsupported(f"the regex {pattern!r} does not compile ({error})", span)
        return flag_prefix(flags) + to_pcre(pattern)

    def guarded(self, field: str, test: str, span: ir.Span) -> str:
        """A positive test that must be false, not null, when the field is missing."""
        if field in self.present:
            return test
        return f"(isnotnull({field_ref(self.col(field, span))}) AND {test})"

    def pred(self, pred: ir.Pred) -> str:
        if isinstance(pred, ir.And):
            return "(" + " AND ".join(self.pred(p) for p in pred.items) + ")"
        if isinstance(pred, ir.Or):
            return "(" + " OR ".join(self.pred(p) for p in pred.items) + ")"
        if isinstance(pred, ir.Not):
            inner = pred.item
            if isinstance(inner, ir.TrueP):
                return "false()"
            if isinstance(inner, ir.And | ir.Or | ir.Not):
                return self.pred(negate(inner))
            test = self.atom(inner)
            if isinstance(inner, ir.Exists):
                return f"NOT {test}"
            # The test is null (not false) when a value it reads is missing, or, for a number, not
            # a number; CQL's negation is true then, so say so before the NOT.
            nulls = [f"isnull({value})" for value in self.null_sources(inner)]
            return f"({' OR '.join(nulls)} OR NOT {test})" if nulls else f"NOT {test}"
        if isinstance(pred, ir.TrueP):
            return "true()"
        return self.atom(pred)

    def null_sources(self, pred: ir.Pred) -> list[str]:
        """The values whose null makes ``pred`` null in eval: its fields (as numbers for a numeric test)."""
        if isinstance(pred, ir.Cmp):
            return [self.numeric_value(pred.field, pred.span)]
        if isinstance(pred, ir.ExprTest):
            return [field_ref(self.col(f, pred.span)) for f in sorted(pred_fields(pred) - {"*"})]
        fields = sorted(pred_fields(pred) - {"*"})
        return [field_ref(self.col(f, pred.span)) for f in fields if f not in self.present]

    def numeric_value(self, field: str, span: ir.Span) -> str:
        column = field_ref(self.col(field, span))
        return column if field in self.numeric else f"tonumber({column})"

    def atom(self, pred: ir.Pred) -> str:
        if isinstance(pred, ir.Eq):
            column = field_ref(self.col(pred.field, pred.span))
            if pred.ignore_case:
                return f"lower({column})=={string(pred.value.lower())}"
            return f"{column}=={string(pred.value)}"
        if isinstance(pred, ir.Glob):
            column = field_ref(self.col(pred.field, pred.span))
            pattern = ("(?i)" if pred.ignore_case else "") + glob_to_regex(pred.pattern)
            return f"match({column}, {string(pattern)})"
        if isinstance(pred, ir.Regex):
            column = field_ref(self.col(pred.field, pred.span))
            return f"match({column}, {string(self.pattern(pred.pattern, pred.flags, pred.span))})"
        if isinstance(pred, ir.Cmp):
            return f"{self.numeric_value(pred.field, pred.span)}{_CMP[pred.op]}{_number(pred.number)}"
        if isinstance(pred, ir.Exists):
            return f"isnotnull({field_ref(self.col(pred.field, pred.span))})"
        if isinstance(pred, ir.In):
            column = field_ref(self.col(pred.field, pred.span))
            if pred.ignore_case or any("*" in v for v in pred.values):
                alternatives = "|".join(glob_to_regex(v, dotall=False) for v in pred.values)
                flags = "(?i)" if pred.ignore_case else ""
                return f"match({column}, {string(flags + '(?s)(?:' + alternatives + ')')})"
            if not pred.values:
                return "false()"
            return f"in({column}, {', '.join(string(v) for v in pred.values)})"
        if isinstance(pred, ir.FreeText):
            self.unsupported("free-text search reads every field of the LogScale event; a Splunk search term reads "
                             "_raw (for FDR events, JSON text with its keys and escapes) by term and ignoring case, "
                             "so no SPL says the same", pred.span)
            return "false()"
        if isinstance(pred, ir.Cidr):
            # cidrmatch(<cidr>, <ip>), one subnet per call (Search Reference, comparison and conditional
            # functions). *Assumption*: it takes IPv6 as IPv4 (Splunk 8 and later), an address matching
            # only subnets of its own version, as cidr() does.
            column = field_ref(self.col(pred.field, pred.span))
            tests = [f"cidrmatch({string(subnet)}, {column})" for subnet in pred.subnets]
            return tests[0] if len(tests) == 1 else "(" + " OR ".join(tests) + ")"
        if isinstance(pred, ir.OpaqueTest):
            self.opaque_test(pred)
            return "false()"
        if isinstance(pred, ir.ArrayAny):
            self.array_test(pred)
            return "false()"
        if isinstance(pred, ir.ExprTest):
            return f"{self.expr(pred.left)}{_CMP[pred.op]}{self.expr(pred.right)}"
        raise AssertionError(f"unexpected predicate {type(pred).__name__}")

    def condition(self, pred: ir.Pred) -> str:
        """A condition inside if()/case(): positive tests on fields that may be missing are guarded."""
        if isinstance(pred, ir.Eq | ir.Glob | ir.Regex | ir.Cmp | ir.In | ir.Cidr):
            return self.guarded(pred.field, self.atom(pred), pred.span)
        return self.pred(pred)

    # ------------------------------------------------------------ expressions

    def expr(self, expr: ir.Expr) -> str:
        if isinstance(expr, ir.Lit):
            return string(expr.value) if isinstance(expr.value, str) else _number(expr.value)
        if isinstance(expr, ir.Ref):
            return field_ref(self.col(expr.field, expr.span))
        if isinstance(expr, ir.Cond):
            return f"if({self.condition(expr.test)}, {self.expr(expr.then)}, {self.expr(expr.otherwise)})"
        if isinstance(expr, ir.Arith):
            # In eval, + of two strings concatenates; CQL arithmetic is numeric (null otherwise).
            return f"({self.operand(expr.left)}{expr.op}{self.operand(expr.right)})"
        if isinstance(expr, ir.Func) and expr.name in ("lower", "upper"):
            return f"{expr.name}({self.expr(expr.args[0])})"
        if isinstance(expr, ir.Func) and expr.name == TIME_BUCKET:
            return self.time_bucket(expr)
        if isinstance(expr, ir.Func):
            from cqlx.emit import spl_funcs

            return spl_funcs.render(self, expr)
        if isinstance(expr, ir.Null):
            return "null()"
        raise AssertionError(f"unexpected expression {expr!r}")

    def operand(self, expr: ir.Expr) -> str:
        if isinstance(expr, ir.Ref):
            return self.numeric_value(expr.field, expr.span)
        return self.expr(expr)


def _numeric_expr(expr: ir.Expr, numeric: set[str]) -> bool:
    if isinstance(expr, ir.Lit):
        return not isinstance(expr.value, str)
    if isinstance(expr, ir.Func) and expr.name == TIME_BUCKET:
        return True
    if isinstance(expr, ir.Arith):
        return True
    if isinstance(expr, ir.Ref):
        return expr.field in numeric
    if isinstance(expr, ir.Cond):
        return _numeric_expr(expr.then, numeric) and _numeric_expr(expr.otherwise, numeric)
    return False


def _may_be_null(expr: ir.Expr) -> bool:
    """Whether an eval expression can be null: then CQL's := leaves the field as it was."""
    if isinstance(expr, ir.Lit):
        return False
    if isinstance(expr, ir.Cond):
        return _may_be_null(expr.then) or _may_be_null(expr.otherwise)
    return True


def step_reads_computed(generator: Generator, pred: ir.Pred) -> bool:
    return bool(pred_fields(pred) & generator.computed)

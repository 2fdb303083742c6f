"""IR → KQL (Microsoft Defender Advanced Hunting, Sentinel), one method per IR node.

Facts (learn.microsoft.com, Kusto query reference; SEMANTICS.md): ``==`` is case-sensitive and
``=~`` is not; ``contains``/``startswith``/``endswith`` ignore case and their ``_cs`` forms do not;
``matches regex`` is RE2 and case-sensitive, so ``(?i)`` goes in only where the CQL says ``i``.
Verbatim strings ``@"..."`` (a ``"`` doubled) keep regexes readable. ``sort by x desc`` puts nulls
last; ``asc`` puts them first, so the emitter always writes ``nulls last``: LogScale lists rows
without the field last.

KQL types its expressions where CQL converts at run time, so each expression has a *kind*:
``number``, ``text`` (a string that may spell a number), ``word`` (a string literal that does not)
or ``null`` (a field a projection dropped). Arithmetic reads text with ``todouble()``; ``test()``
compares as numbers when both sides are, else as text (``strcmp``), as the matcher does; an
``if()`` with a string and a number arm writes the number as its text.

A profile with ``missing: empty`` (Defender) stores an absent string as ``""``: a test that would
match the empty string is guarded with ``isnotempty()`` so a missing field still fails it, as in CQL.
"""

from __future__ import annotations

import re

from cqlx import ir
from cqlx.emit.base import PRESENTATION, Generator
from cqlx.errors import UnsupportedError
from cqlx.functions import AGGREGATE_OUTPUTS, TIME_BUCKET, span_text
from cqlx.passes import decisive_within, expand_case, step_writes
from cqlx.regexes import (
    RE2_UNSUPPORTED,
    features,
    flag_prefix,
    glob_to_regex,
    group_is_optional,
    group_numbers,
    linear_plan,
    matches_empty,
    may_match_nothing,
    re2_error,
    to_re2,
)
from cqlx.runtime import compare_values, number

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A whole number as its canonical text, within a long (no sign on 0, no leading zeros).
WHOLE_NUMBER = re.compile(r"0|-?[1-9]\d{0,17}")
#: Names a column may not have bare (Kusto.Language: "The name 'desc' needs to be bracketed as
#: ['desc']"), found by running it over each word of the query operators, keywords and type names
#: as a column that is assigned, renamed, sorted by, filtered on, projected, grouped by and read in
#: a call (tests/test_emit_kql.py keeps the check). Keywords are lower case (`First` is a name);
#: only `true` and `false` are literals in any case. `count` parses bare in Kusto but not in
#: duckdb-kql (`sort by count desc`); bracketed, every engine reads it.
_KQL_KEYWORDS = frozenset({
    "accumulate", "and", "as", "asc", "bagexpansion", "between", "boolean", "by", "case", "contains", "contains_cs",
    "count", "datatable", "date", "datetime", "decimal", "desc", "double", "dynamic", "endswith", "endswith_cs",
    "extend", "externaldata", "false", "find", "first", "flags", "float", "has", "has_all", "has_any", "has_cs",
    "hasprefix", "hassuffix", "iff", "in", "int", "int32", "int64", "invoke", "isfuzzy", "kind", "last", "let",
    "like", "long", "materialize", "not", "notcontains", "of", "on", "or", "print", "project", "real", "sample",
    "search", "set", "sort", "startswith", "startswith_cs", "string", "take", "time", "timespan", "title", "to",
    "top", "toscalar", "true", "union", "uniqueid", "where", "with_itemindex", "with_source", "withsource"})
_COMPARE = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
NUMBER, TEXT, WORD, NULL = "number", "text", "word", "null"  # expression kinds (module docstring)
_NUMERIC_TYPES = ("long", "int", "real", "double", "decimal")
#: Kusto.Language stops at a syntax depth ("KS245 Query syntax depth exceeds maximum safe limit"):
#: 122 nested calls pass, 123 do not (measured); a margin below that.
MAX_CALL_DEPTH = 110


def string(value: str) -> str:
    """A KQL string literal for ``value``: verbatim when it can be, escaped otherwise."""
    if any(ord(c) < 0x20 for c in value):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") \
            .replace("\r", "\\r")
        bad = next((c for c in escaped if ord(c) < 0x20), None)
        if bad is not None:
            # KQL string literals escape only quotes, \t, \n, \r and \\ (Kusto reference: the string
            # data type); there is no way to write other control characters in one.
            raise UnsupportedError(f"the value holds control character U+{ord(bad):04X}, which a KQL string "
                                   "literal cannot hold")
        return f'"{escaped}"'
    if "\\" in value:
        return '@"' + value.replace('"', '""') + '"'
    return '"' + value.replace('"', '\\"') + '"'


def name(column: str) -> str:
    """A column reference: bare when it is a plain identifier, else ``['...']`` (a string literal
    inside brackets: the same escapes as in :func:`string`)."""
    if _PLAIN_NAME.fullmatch(column) and column not in _KQL_KEYWORDS and column.lower() not in ("true", "false"):
        return column
    escaped = column.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t") \
        .replace("\r", "\\r")
    bad = next((c for c in escaped if ord(c) < 0x20), None)
    if bad is not None:
        raise UnsupportedError(f"the field name holds control character U+{ord(bad):04X}, which a KQL name cannot hold")
    return "['" + escaped + "']"


def _number(value: int | float) -> str:
    return repr(value) if isinstance(value, int) else repr(float(value))


def _whole_literals(expr: ir.Expr) -> bool:
    """Whether every value a conditional can give is a whole-number literal or no value."""
    if isinstance(expr, ir.Cond):
        return _whole_literals(expr.then) and _whole_literals(expr.otherwise)
    return isinstance(expr, ir.Null) or (isinstance(expr, ir.Lit) and type(expr.value) is int)


def _call_depth(expr: ir.Expr) -> int:
    if isinstance(expr, ir.Func):
        return 1 + max((_call_depth(a) for a in expr.args), default=0)
    if isinstance(expr, ir.Cond):  # iff(), and a conversion around an arm
        return 2 + max(_call_depth(expr.then), _call_depth(expr.otherwise))
    if isinstance(expr, ir.Arith):  # todouble() around an operand
        return 1 + max(_call_depth(expr.left), _call_depth(expr.right))
    return 0


#: The file name in a path (RE2): the text after the last \\ or / (derive).
_LAST_PART = r"[^\\/]+$"


class KqlGenerator(Generator):
    def generate(self) -> str:
        self.kinds: dict[str, str] = {}  # computed field → its kind
        self.live: set[str] | None = None  # after a projection: the fields rows still have
        self.gone: set[str] = set()  # fields a drop() removed
        self.preamble: list[str] = []  # extends a step needs before it (derive)
        # an event time derive() computed as a number → the datetime column it came from, while the
        # rows still have that column and no step has written the field since (event_time)
        self.derived: dict[str, str] = {}
        # steps track() passes over: a case left out (reported; the KQL writes none of its fields), or
        # one whose rewritten steps were tracked one by one (a group it did not extract is not written)
        self.untracked: list[ir.Step] = []
        table = self.event.table if self.event and self.event.table else None
        if table is None:  # the reason is reported (resolve_event_type)
            self.unwritable("a KQL query needs a table")
        lines = [name(table) if table else "<no table>"]
        self.written = lines  # the pipeline so far (totals() runs it again)
        for column, values in self.record_tests():  # the event type's records in a shared table
            if len(values) == 1:
                lines.append(f"| where {name(column)} == {string(values[0])}")
            else:
                lines.append(f"| where {name(column)} in ({', '.join(string(v) for v in values)})")
        if self.query.source.platforms:
            lines.extend(self.platform_filter(self.query.source.platforms))
        for step in self.query.steps:
            self.unextracted(step)
            ops = self.step(step)
            lines.extend(f"| {op}" for op in [*self.preamble, *ops])
            self.preamble.clear()
            self.track(step)
        return "\n".join(lines) + "\n"

    def derivable(self, field: str) -> bool:
        """Whether :meth:`derive` computes the field back (an event time the table holds as a datetime)."""
        if field in self.computed:
            return False
        mapped = self.profile.field(self.event, field)
        return mapped is not None and mapped.transform == "epoch_ms" and self.column_type(field) == "datetime"

    def column(self, name_: str, span: ir.Span = ir.NO_SPAN, output: bool = False) -> str | None:
        derived = self.derive(name_, output)
        return derived if derived is not None else super().column(name_, span, output)

    def derive(self, field: str, output: bool) -> str | None:
        """A Falcon field the table holds in another shape, computed back once, before the first
        step that reads it; then the field is the rule's own.

        An event time the rule tests, computes with or groups by (``@timestamp``), held as a
        datetime: LogScale's epoch milliseconds, ``datetime_diff('millisecond', Timestamp,
        datetime(1970-01-01))`` (a fraction of one dropped; Kusto reference, datetime_diff()). Only
        shown, it stays the table's column.

        A file name (``ParentBaseFileName``) where the table holds the full path (ASIM's
        ``ActingProcessName``): the text after the path's last ``\\`` or ``/``, what LogScale's
        Falcon parser writes (as the SPL's ``rex``); ``extract()`` gives "" where the path ends in
        a separator, which names no file. Equality and ``*suffix`` globs test the path itself
        (:meth:`path_column`); every other read, shown values included, reads the name."""
        if not hasattr(self, "preamble") or field in self.computed:
            return None
        mapped = self.profile.field(self.event, field)
        if mapped is not None and mapped.transform == "basename":
            self.preamble.append(f"extend {name(field)} = extract({string(_LAST_PART)}, 0, {name(mapped.name)})")
            self.computed.add(field)
            return field
        if output or not self.derivable(field):
            return None
        assert mapped is not None
        self.preamble.append(f"extend {name(field)} = datetime_diff('millisecond', {name(mapped.name)}, "
                             "datetime(1970-01-01))")
        self.computed.add(field)
        self.kinds[field] = NUMBER
        self.derived[field] = mapped.name
        return field

    def path_column(self, field: str, span: ir.Span) -> str:
        """The full-path column of a file-name field (is_basename), for the tests it answers exactly."""
        column = super().column(field, span)
        return name(column) if column else self.unknown_column(field)

    def platform_filter(self, platforms: tuple[str, ...]) -> list[str]:
        """``event_platform``: the event tables hold no OS column, so the events are kept whose
        device the profile's ``platform_lookup`` table says runs one of the platforms (Defender:
        ``DeviceInfo.OSPlatform`` starts with ``Windows``, ``Linux`` or ``macOS``). Without that
        table, or for a platform the profile has no value for, every platform would match: refused."""
        lookup = self.profile.platform_lookup
        unknown = [p for p in platforms if p not in self.profile.platforms]
        if lookup is None or unknown:
            why = (f"platform {', '.join(unknown)} has no value in profile {self.profile.name}" if lookup
                   else f"{self.event.table if self.event else 'the table'} has no platform column in profile "
                        f"{self.profile.name}")
            self.unsupported(f"the rule selects event_platform {', '.join(platforms)}; {why}, so the KQL would "
                             "match every platform")
            return []
        tests = [f"{name(lookup.column)} startswith_cs {string(self.profile.platforms[p])}" for p in platforms]
        test = tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")"
        devices = f"{name(lookup.table)} | where {test} | distinct {name(lookup.key)}"
        return [f"| where {name(lookup.key)} in (({devices}))"]

    def track(self, step: ir.Step) -> None:
        if isinstance(step, ir.Project | ir.Aggregate | ir.GroupTail | ir.Drop | ir.Opaque):
            self.derived.clear()  # the rows may have lost the column a time was derived from
        elif self.derived:  # (most rules derive no time: no second step_writes() per step for them)
            for field in step_writes(step):
                self.derived.pop(field, None)
        if isinstance(step, ir.Opaque) or any(step is s for s in self.untracked):
            return  # the KQL computes none of its fields: a later select() must not name them as columns
        super().track(step)
        if isinstance(step, ir.Project):
            self.live = {f for f in step.fields if not self.dead(f)}
            self.gone = set()
        elif isinstance(step, ir.Aggregate):
            self.live = {f for f in step.keys if not self.dead(f)} | set(step.outputs)
            self.gone = set()
        elif isinstance(step, ir.Totals):
            if self.live is not None:
                self.live |= set(step.outputs)
            self.gone -= set(step.outputs)
        elif isinstance(step, ir.Drop):
            self.gone |= set(step.fields)
        elif isinstance(step, ir.Opaque) and step.effect == ir.ENRICHES and step.writes is not None:
            # Not converted (reported): no column holds what it would write, as after a drop().
            self.gone |= {f for f in step.writes if not f.endswith("*")}
        else:
            if self.live is not None:
                self.live |= step_writes(step)
            self.gone -= step_writes(step)

    def dead(self, field: str) -> bool:
        """Whether a projection or drop() before this step removed the field: CQL reads it as missing."""
        return (self.live is not None and field not in self.live) or field in self.gone

    # ------------------------------------------------------------ steps

    def step(self, step: ir.Step) -> list[str]:
        if isinstance(step, ir.Filter):
            return [f"where {self.pred(step.pred)}"]
        if isinstance(step, ir.Extract):
            return self.extract(step)
        if isinstance(step, ir.Eval):
            if _call_depth(step.expr) > MAX_CALL_DEPTH:
                self.unsupported(f"the expression nests calls deeper than Kusto's parser accepts (about "
                                 f"{MAX_CALL_DEPTH})", step.span, unwritable=True)
            self.current: ir.Step | None = step
            try:
                value = self.expr(step.expr)
            finally:
                self.current = None
            self.kinds[step.field] = self.kind(step.expr)
            return [f"extend {name(step.field)} = {value}"]
        if isinstance(step, ir.Signal):
            return self.signal(step)
        if isinstance(step, ir.Score):
            signals = {s.name: s for s in self.query.steps if isinstance(s, ir.Signal)}
            terms = [name(signals[n].score_field or n) for n in step.signals]
            self.kinds[step.field] = NUMBER
            return [f"extend {name(step.field)} = {' + '.join(terms)}"]
        if isinstance(step, ir.Ladder):
            arms = ", ".join(f"{name(step.score_field)} >= {_number(t.minimum)}, {string(t.label)}" for t in step.tiers)
            self.kinds[step.field] = TEXT
            return [f"extend {name(step.field)} = case({arms}, {string(step.default)})"]
        if isinstance(step, ir.Project):
            kept = [f for f in step.fields if not self.dead(f)]
            columns = [c for c in (self.column(f, step.span, output=True) for f in kept) if c]
            unique = list(dict.fromkeys(columns))
            # No column left to show (each was reported): KQL has no empty projection. The rows are the
            # same; later steps read the fields it removed as missing all the same (self.live).
            return [f"project {', '.join(name(c) for c in unique)}"] if unique else []
        if isinstance(step, ir.Order):
            return self.order(step)
        if isinstance(step, ir.Aggregate):
            return self.aggregate(step)
        if isinstance(step, ir.GroupTail):
            return self.group_tail(step)
        if isinstance(step, ir.Totals):
            return self.totals(step)
        if isinstance(step, ir.Case):
            return self.case(step)
        if isinstance(step, ir.Drop):
            kept = [f for f in step.fields if not self.dead(f)]
            columns = list(dict.fromkeys(c for c in (self.column(f, step.span, output=True) for f in kept) if c))
            return [f"project-away {', '.join(name(c) for c in columns)}"] if columns else []
        if isinstance(step, ir.Opaque):
            self.opaque(step)
            return []
        if isinstance(step, ir.Lookup):
            return self.lookup(step)
        if isinstance(step, ir.Join):
            return self.join(step)
        raise AssertionError(f"unexpected step {type(step).__name__}")

    def lookup_source(self, step: ir.Lookup) -> str:
        """The table a lookup file becomes, as the profile's ``lookup_table`` says."""
        if self.profile.lookup_table == "{name}":
            return name(step.stem)
        return f"_GetWatchlist({string(step.stem)})"

    def lookup(self, step: ir.Lookup) -> list[str]:
        """``match()`` as a join with the lookup file's table: ``inner`` when strict (one row per
        matching lookup row: with unique keys, each event once; a key the file holds twice gives
        the event twice, where LogScale's nrows=1 gives it once), ``leftsemi`` when it only
        filters, ``leftouter`` when not strict, ``leftanti`` for ``!match()``. Keys are compared as
        text (``tolower()`` of both sides for ignoreCase); lookup rows with an empty key match
        nothing. The row's columns come in under scratch names and are written over the event's
        fields (when not strict, only where a row matched), as match() overwrites them."""
        if step.mode != "string":
            self.lookup_lost(step, f"mode={step.mode} has no KQL join (a join compares keys for equality)")
            return []
        keys = [f"tostring({name(c)})" for c in step.columns]
        written = () if step.negated else (step.include or ())
        if step.include is None and not step.negated:
            self.lookup_lost(step, "without include= it adds every column of the file, which KQL must name: "
                             "give include=[...]", part="columns")
        return self.join_rows(step, self.lookup_source(step), keys, written,
                              [f"tostring({name(c)})" for c in written], step.ignore_case)

    def join(self, step: ir.Join) -> list[str]:
        """``join()``: the subquery converted by the same emitter (its own table), joined as a
        ``match()`` is (:meth:`join_rows`): each subquery key once (``max=1``), its ``include``
        fields as text, ``""`` for one the row lacks (functions-join)."""
        sub = KqlGenerator(step.subquery, self.profile, self.meta, self.target, subject="the join's subquery")
        text = sub.generate().rstrip("\n")
        keys: list[str] = []
        for key in step.keys:
            if sub.dead(key):  # no subquery row has the key: none matches
                return ["where false"] if step.filters and not step.negated else []
            keys.append(f"tostring({sub.col(key, step.span)})")
        values = ['""' if sub.dead(f) else f"tostring({sub.col(f, step.span)})" for f in step.writes]
        text += "".join(f"\n| {op}" for op in sub.preamble)  # what the keys and values read, derived after its steps
        self.adopt(sub.diagnostics)
        source = "\n    " + text.replace("\n", "\n    ")
        return self.join_rows(step, source, keys, step.writes, values, False)

    def join_rows(self, step: ir.Lookup | ir.Join, source: str, keys: list[str], written: tuple[str, ...],
                  values: list[str], ignore_case: bool) -> list[str]:
        """The rows of ``source`` (keys and values as text expressions over it) joined to the events:
        ``inner`` when the step keeps only matching events (``leftsemi`` when it writes nothing),
        ``leftouter`` when it keeps them all, ``leftanti`` when negated. The right side holds each
        key once (``summarize ... take_any()`` by the keys): with unique keys each event comes out
        once, as in LogScale; a key with rows that differ in the written values gives one of them
        (the Python matcher refuses that). Keys are compared as text (``tolower()`` on both sides
        for ignoreCase); an empty key matches nothing. The values come in under scratch names and
        are written over the event's fields (when not strict, only where a row matched)."""
        if any(self.dead(f) for f in step.fields):  # no event has the key: no row matches
            return ["where false"] if step.filters and not step.negated else []
        tag = f"_cqlx_lookup{self.next_number('lookups')}"
        extends: list[str] = []
        left: list[str] = []
        right: list[tuple[str, str]] = []
        for index, (field, key) in enumerate(zip(step.fields, keys, strict=True), 1):
            value = self.col(field, step.span)
            if ignore_case or self.column_type(field) != "string" or value == self.unknown_column(field):
                text = value if self.column_type(field) == "string" else f"tostring({value})"
                extends.append(f"{tag}_left{index} = {f'tolower({text})' if ignore_case else text}")
                value = f"{tag}_left{index}"
            left.append(value)
            right.append((f"{tag}_key{index}", f"tolower({key})" if ignore_case else key))
        scratch_values = [(f"{tag}_value{i}", v) for i, v in enumerate(values, 1)]
        strict = step.filters and not step.negated
        if step.negated:
            kind = "leftanti"
        elif strict:
            kind = "inner" if scratch_values else "leftsemi"
        else:
            kind = "leftouter"
        many = isinstance(step, ir.Join) and step.many and not step.negated
        if many:  # an event for each matching row: a join of every row, each key as often as it comes
            kind = "inner" if strict else "leftouter"
        elif kind == "leftouter" and not scratch_values:
            return []  # keeps every event and writes nothing KQL can name
        project = ", ".join(f"{n} = {e}" for n, e in [*right, *scratch_values])
        nonempty = " and ".join(f"isnotempty({n})" for n, _ in right)
        by = ", ".join(n for n, _ in right)
        once = (f"summarize {', '.join(f'{n} = take_any({n})' for n, _ in scratch_values)} by {by}"
                if scratch_values else f"distinct {by}")
        on = ", ".join(f"$left.{k} == $right.{r}" for k, (r, _) in zip(left, right, strict=True))
        out = [f"extend {', '.join(extends)}"] if extends else []
        # A multi-line source (a subquery) gets its operators on lines of their own too.
        pipe = "\n    | " if "\n" in source else " | "
        right_side = pipe.join([source.rstrip(), f"project {project}", f"where {nonempty}", *([] if many else [once])])
        out.append(f"join kind={kind} ({right_side}{chr(10) + '   ' if pipe != ' | ' else ''}) on {on}")
        assignments = []
        for column, (scratch, _) in zip(written, scratch_values, strict=True):
            value = scratch
            if not strict and self.exists(column):
                before = self.expr(ir.Ref(column, step.span))
                if self.kind(ir.Ref(column)) != TEXT or self.column_type(column) != "string":
                    before = f"tostring({before})"
                value = f"iff(isnotempty({right[0][0]}), {scratch}, {before})"
            assignments.append(f"{name(column)} = {value}")
            self.kinds[column] = TEXT
        if assignments:
            out.append("extend " + ", ".join(assignments))
        scratch_columns = [e.split(" = ")[0] for e in extends]
        if kind in ("inner", "leftouter"):
            scratch_columns += [n for n, _ in [*right, *scratch_values]]
        if scratch_columns:
            out.append("project-away " + ", ".join(scratch_columns))
        return out

    def case(self, step: ir.Case) -> list[str]:
        """KQL has no first-match branches: the branch an event takes is computed once, then each
        assigned field from it (:func:`cqlx.passes.expand_case`). A field that no column holds yet
        starts as a typed null (extend cannot read a column that does not exist)."""
        steps = expand_case(self.case_without_extraction(step), f"_cqlx_case{self.next_number('cases')}",
                            self.exists)
        if steps is None:
            self.unsupported("a case { } branch filters after it assigns, or reads what it assigns; cqlx does not "
                             "convert that to KQL", step.span)
            self.untracked.append(step)
            return []
        self.needed_after += decisive_within(steps, self.decisive(step))  # what the rewritten steps lose
        out: list[str] = []
        for inner in steps:
            out += self.step(inner)
            self.track(inner)
        self.untracked.append(step)
        return out

    def exists(self, field: str) -> bool:
        """Whether rows have a column for the field here."""
        if self.dead(field):
            return False
        return field in self.computed or self.profile.field(self.event, field) is not None

    def extract(self, step: ir.Extract) -> list[str]:
        """``where F matches regex`` (when strict), then ``extend g = extract(re, n, F)`` per named
        group, by number (Kusto reference, extract(): 1 is the first parenthesis). extract() gives
        an empty string for no match (and for a group that takes no part), which KQL cannot tell from
        a missing value: a field that exists keeps its value then (when a row without a match is
        kept, or the group may capture nothing); a later test on a group a match may leave empty or
        out is reported. The source field, if a group overwrites it, is written
        last, as every group reads it. ``regex(repeat=true)``: :meth:`extract_each`."""
        out = [f"where {self.pred(step.test)}"] if step.strict else []
        if self.dead(step.field):  # a projection removed it: no match, every group keeps its value
            return [*out, self.unmatched_groups(step)]
        try:
            numbers = group_numbers(step.pattern)
        except ValueError as error:
            self.unsupported(f"the regex does not compile ({error})", step.span)
            return [*out, self.unmatched_groups(step)]
        column = self.text_col(step.field, step.span)
        pattern = string(self.re2(step.pattern, step.flags, step.span))
        for group in step.groups:
            self.kinds[group] = TEXT
        if step.each:
            return [*out, *self.extract_each(step, numbers, column, pattern)]
        self.optional_groups(step, "KQL's extract() gives an empty string for both")
        assignments = [f"{name(g)} = {self.group_value(step, g, f'extract({pattern}, {numbers[g]}, {column})')}"
                       for g in sorted(step.groups, key=lambda g: g == step.field)]
        return [*out, "extend " + ", ".join(assignments)]

    def group_value(self, step: ir.Extract, group: str, value: str) -> str:
        """What a group sets its field to: ``value``, or the field's old value where ``value`` is
        empty and the field exists. Strict, every row left is a match, in which a group that must
        take part and capture something is never empty: the old value is never kept, nor read."""
        if self.exists(group) and not (step.strict and not group_is_optional(step.pattern, step.flags, group)):
            return f"iff(isempty({value}), {self.text_col(group, step.span)}, {value})"
        return value

    def extract_each(self, step: ir.Extract, numbers: dict[str, int], column: str, pattern: str) -> list[str]:
        """``regex(repeat=true)``: ``extract_all()`` of the named groups, by number, then
        ``mv-expand ... limit N``, a row of each match (Kusto reference: extract_all() returns null
        for no match, and mv-expand makes one row of a null; limit is the most rows of one). Each
        group sets its field as in :meth:`extract`. A regex whose match may be empty is refused:
        RE2 skips an empty match next to the previous one, Java's find() does not."""
        if may_match_nothing(step.pattern, step.flags):
            self.unsupported("regex(repeat=true) with a regex that can match the empty string: KQL's extract_all() "
                             "(RE2) skips an empty match right after another match, LogScale's (Java's) does not",
                             step.span)
        self.optional_groups(step, "KQL's extract_all() gives an empty string for both")
        matches = f"_cqlx_each{self.next_number('scratch')}"
        wanted = ", ".join(str(numbers[g]) for g in step.groups)
        # One group: extract_all() gives the values themselves; more: an array per match.
        values = [f"tostring({matches})"] if len(step.groups) == 1 else \
            [f"tostring({matches}[{index}])" for index in range(len(step.groups))]
        assignments = [f"{name(g)} = {self.group_value(step, g, v)}" for g, v in zip(step.groups, values, strict=True)]
        return [f"extend {matches} = extract_all({pattern}, dynamic([{wanted}]), {column})",
                f"mv-expand {matches} to typeof(dynamic) limit {step.each}",
                "extend " + ", ".join(assignments), f"project-away {matches}"]

    def unmatched_groups(self, step: ir.Extract) -> str:
        """The groups of a regex that extracts nothing here (its field is gone, or it does not
        compile: reported), each keeping its value: still columns, so that later steps that name
        them pass Kusto's semantic check (what --on-lossy warn writes still loads)."""
        for group in step.groups:
            self.kinds[group] = TEXT
        kept = [f"{name(g)} = {self.text_col(g, step.span) if self.exists(g) else string('')}" for g in step.groups]
        return "extend " + ", ".join(kept)

    def signal(self, step: ir.Signal) -> list[str]:
        condition = self.pred(step.condition)
        out: list[str] = []
        if step.flag_field:
            yes, no = step.flag_values
            out.append(f"extend {name(step.flag_field)} = iff({condition}, {string(yes)}, {string(no)})")
            self.kinds[step.flag_field] = TEXT
            # The score reads the flag back: the condition is evaluated once per event.
            condition = f"{name(step.flag_field)} == {string(yes)}"
        if step.score_field:
            out.append(f"extend {name(step.score_field)} = iff({condition}, {_number(step.weight)}, 0)")
            self.kinds[step.score_field] = NUMBER
        return out

    def aggregate(self, step: ir.Aggregate) -> list[str]:
        """``summarize``. Unlike groupBy(), summarize makes a group of the rows without a key
        value (null, and in a ``missing: empty`` profile the empty string), so they are filtered
        out first. ``count(f)`` is ``countif()`` of f being present, ``sum``/``min``/``max``/
        ``avg`` read numbers (``todouble()`` on a string column: a value that is none is null and
        skipped, as in the matcher); ``count(f, distinct=true)`` is ``dcount()``, which estimates
        for large sets, as LogScale does (functions-count). The functions that keep values are
        :meth:`value_terms`. Without keys, a summarize always gives one row, where LogScale's
        collect()/selectLast()/selectFromMax() give none without a value: a filter says so."""
        grouped = self.group_keys(step)
        if grouped is None:
            self.untracked.append(step)  # no summarize: what reads its outputs reads no column
            return ["where false"]
        keys, tests = grouped
        out = [f"where {' and '.join(tests)}"] if tests else []
        before: list[str] = []
        after: list[str] = []
        terms: list[str] = []
        kinds: dict[str, str] = {}
        index = 0
        while index < len(step.functions):
            function = step.functions[index]
            if function.name in AGGREGATE_OUTPUTS or function.name == "percent":
                if function.name == "percent":
                    self.unsupported("top(percent=true): the share of every group's count needs the total over "
                                     "the groups, which cqlx does not write in KQL", step.span,
                                     self.loss(step, frozenset({function.output})))
                else:
                    terms.append(f"{name(function.output)} = {self.agg_term(function, step.span, step)}")
                kinds[function.output] = NUMBER
                index += 1
                continue
            end = index + 1
            while function.by is not None and end < len(step.functions) \
                    and (step.functions[end].name, step.functions[end].by) == (function.name, function.by):
                end += 1  # selectFromMax(x, include=[a, b]): one arg_max() picks one event for both
            self.value_terms(step, step.functions[index:end], before, terms, after, kinds)
            index = end
        if step.series_limit is not None and step.keys[1:]:
            self.unsupported(f"LogScale keeps the {step.series_limit} series with the largest values; KQL keeps "
                             "every series", step.span, self.loss(step))
        assert terms or keys, "an aggregation has a key or a function"
        out += before
        out.append(" ".join(["summarize", ", ".join(terms), *(["by " + ", ".join(keys)] if keys else [])])
                   .replace("summarize  by", "summarize by"))
        out += after
        if before or after:
            # The kept values are extended after the summarize: put the columns back in the order of
            # the group rows (keys, then the functions' outputs), which is what rows are compared by.
            columns = [*keys, *(name(o) for o in dict.fromkeys(step.outputs) if o in kinds and o not in
                                 {f.output for f in step.functions if f.name == "percent"})]
            out.append(f"project {', '.join(columns)}")
        if not keys and terms and not any(f.name in AGGREGATE_OUTPUTS for f in step.functions):
            present = [f"{'isnotnull' if kinds[o] == NUMBER else 'isnotempty'}({name(o)})" for o in step.outputs]
            out.append(f"where {' or '.join(dict.fromkeys(present))}")
        self.kinds.update(kinds)
        return out

    def totals(self, step: ir.Totals) -> list[str]:
        """The outputs over all rows on every row (stats() with a sort(): functions-stats): the
        rows joined ``rightouter`` on a constant to the one-row ``summarize`` of the same rows
        (the pipeline so far, run again). Each row gets the summary after its own columns; over
        no rows the summary stays, alone (a summarize without keys always gives one row, with
        count() and sum() 0: the Kusto reference's default values of aggregations), as LogScale
        gives it."""
        tag = f"_cqlx_totals{self.next_number('totals')}"
        summary = self.aggregate(ir.Aggregate((), step.functions, None, span=step.span))
        derived, self.preamble[:] = list(self.preamble), []  # what the summary reads, derived on that side
        first, *rest = self.written
        right = "\n    | ".join([first, *(line.removeprefix("| ") for line in rest), *derived, *summary,
                                   f"extend {tag} = 1"])
        # Kusto names the right side's copy of the join column with a 1 appended (join operator).
        return [f"extend {tag} = 1", f"join kind=rightouter (\n    {right}\n   ) on {tag}",
                f"project-away {tag}, {tag}1"]

    def group_tail(self, step: ir.GroupTail) -> list[str]:
        """``groupBy(keys, function=tail(1))``: ``summarize arg_max(Timestamp, *) by keys``, the newest
        row of each group with every column (Kusto reference, arg_max(): ``*`` returns them all);
        rows without a key value are no group, as in :meth:`aggregate`. Among rows of one time,
        Kusto picks any, LogScale the last. tail(N) for more than one row per group is refused."""
        time = self.event_time("@timestamp", step.span)
        if step.count != 1 or time is None:
            why = (f"tail({step.count}) keeps {step.count} events per group; cqlx writes tail(1) in KQL"
                   if step.count != 1 else "tail() picks the newest events, and the rows have no datetime column here")
            self.unsupported(why, step.span)
            return []
        grouped = self.group_keys(step)
        if grouped is None:
            return ["where false"]
        keys, tests = grouped
        return [f"where {' and '.join(tests)}", f"summarize arg_max({time}, *) by {', '.join(keys)}"]

    def group_keys(self, step: ir.Aggregate | ir.GroupTail) -> tuple[list[str], list[str]] | None:
        """The columns of a grouping's keys and the tests that leave out rows without a value for
        one (summarize makes a group of those, groupBy() does not); None, reported, when an earlier
        step removed a key (no group in CQL; KQL cannot name the column); a group limit, as
        :meth:`group_limit_kept` says."""
        keys: list[str] = []
        tests: list[str] = []
        for key in step.keys:
            if self.dead(key):
                self.unsupported(f"the aggregation groups by {key}, which an earlier step removed; cqlx does not "
                                 "write that in KQL", step.span)
                return None
            column = self.col(key, step.span)
            # a field the profile lacks is an expression: the group's column is named after it
            keys.append(f"{name(key)} = {column}" if column == self.unknown_column(key) else column)
            tests.append(f"{'isnotempty' if self.column_type(key) == 'string' else 'isnotnull'}({column})")
        self.group_limit_kept(step)
        return keys, tests

    def value_terms(self, step: ir.Aggregate, group: tuple[ir.AggFunc, ...], before: list[str], terms: list[str],
                    after: list[str], kinds: dict[str, str]) -> None:
        """collect(): ``make_set()`` of the values as text, sorted and joined as the matcher does
        (LogScale's order is undefined; the empty string, which Kusto's strings hold for a missing
        value, is left out). selectLast(): ``arg_max()`` of the time of the events that have the
        field. selectFromMax()/selectFromMin(): ``arg_max()``/``arg_min()`` of the field's number,
        returning every include field of that one row; when no row has a number, Kusto still picks
        a row, so the fields are emptied then. Ties pick any row, in Kusto as in LogScale."""
        scratch = self.next_number("scratch")
        first = group[0]
        if first.name == "collect":
            assert first.field is not None
            value = '""'
            if not self.dead(first.field):
                value = self.shown_column(step, first.field, first.output)
                value = value if self.column_type(first.field) == "string" else f"tostring({value})"
            out = name(first.output)
            terms.append(f"{out} = make_set({value}, {first.limit})")
            after.append(f"extend {out} = array_sort_asc({out})")
            after.append(f'extend {out} = strcat_array(iff(tostring({out}[0]) == "", array_slice({out}, 1, -1), '
                         f"{out}), {string(first.separator)})")
            kinds[first.output] = TEXT
            return
        if first.name == "selectLast":
            time = self.event_time("@timestamp", step.span)
            if time is None:
                self.unsupported("selectLast() picks the most recent event, and the rows have no datetime column "
                                 "here", step.span, self.loss(step, frozenset({first.output})))
                return
            assert first.field is not None
            column = self.shown_column(step, first.field, first.output)
            present = "isnotempty" if self.column_type(first.field) == "string" else "isnotnull"
            picked = f"iff({present}({column}), {time}, datetime(null))"  # the time of events with the field
            function = "arg_max"
        else:
            assert first.by is not None
            picked = self.event_time(first.by, step.span) or self.col(first.by, step.span)
            if self.column_type(first.by) not in (*_NUMERIC_TYPES, "datetime"):
                picked = f"todouble({picked})"  # LogScale picks by the field's number
            function = "arg_max" if first.name == "selectFromMax" else "arg_min"
        # arg_max() names the columns it returns after its arguments, which must be columns: each
        # value goes into a scratch column first, read back under the output's name after.
        best = f"_cqlx_pick{scratch}"
        values = [f"_cqlx_value{scratch}_{i}" for i in range(1, len(group) + 1)]
        sources = []
        for function_ in group:
            assert function_.field is not None
            sources.append(self.time_column(function_.field, step.span)
                           or self.shown_column(step, function_.field, function_.output))
            kinds[function_.output] = self.kind(ir.Ref(function_.field))
            self.shown_time(step, function_)
        before.append(f"extend {best} = {picked}, "
                      + ", ".join(f"{v} = {c}" for v, c in zip(values, sources, strict=True)))
        terms.append(f"{function}({best}, {', '.join(values)})")
        for function_, value in zip(group, values, strict=True):
            assert function_.field is not None
            # When no row has a value to pick by, Kusto still picks a row; LogScale picks none.
            after.append(f"extend {name(function_.output)} = iff(isnull({best}), {self.null_of(function_.field)}, "
                         f"{value})")

    def time_column(self, field: str, span: ir.Span) -> str | None:
        """The column of an event-time field, read as a time (bucket(), selectLast(), selectFromMax()
        by @timestamp): its epoch-milliseconds shape in LogScale is only how it is written."""
        if field in self.computed or self.dead(field):
            return None
        mapped = self.profile.field(self.event, field)
        if mapped is None or self.column_type(field) != "datetime":
            return None
        return name(mapped.name)

    def event_time(self, field: str, span: ir.Span) -> str | None:
        """The datetime column to order or bucket rows by an event time: :meth:`time_column`, or the
        column an earlier step's reading of the field was computed from (:meth:`derive`: the same
        instants, so the same order and buckets)."""
        if field in self.derived:
            return name(self.derived[field])
        return self.time_column(field, span)

    def shown_column(self, step: ir.Aggregate, field: str, output: str) -> str:
        """A column whose values an aggregation keeps (collect(), selectLast(), selectFromMax()):
        losing it is presentation loss unless a later step decides on ``output``."""
        shown = self.loss(step, frozenset({output})) == PRESENTATION
        column = self.column(field, step.span, output=shown)
        return name(column) if column else '""'  # no such column: every event lacks the field

    def null_of(self, field: str) -> str:
        """The empty value of the field's column type (a string's is "")."""
        kind = self.column_type(field)
        if kind == "string":
            return '""'
        return f"{kind if kind in ('long', 'int', 'datetime', 'bool', 'real') else 'real'}(null)"

    def shown_time(self, step: ir.Aggregate, function: ir.AggFunc) -> None:
        """A time field kept as it is: a datetime in KQL, epoch milliseconds in LogScale (detection
        loss when a later step reads it: what it computes from it differs too)."""
        if function.field is not None and self.column_type(function.field) == "datetime":
            self.unsupported(f"{function.output} is shown as a KQL datetime, not as LogScale's epoch milliseconds",
                             step.span, self.shown_time_loss(step, function.output), (function.output,))

    def agg_term(self, function: ir.AggFunc, span: ir.Span, step: ir.Aggregate | None = None) -> str:
        if function.field is None:
            return "count()"
        if self.dead(function.field):
            return "real(null)" if function.name in ("min", "max", "avg") else "0"
        if step is not None and function.name in ("min", "max") and self.column_type(function.field) == "datetime" \
                and not self.read_later(step, function.output):
            # only shown: the event time as a datetime, shown differently (presentation loss); read
            # later (formatTime(), arithmetic, a test, a sort), it is LogScale's epoch milliseconds,
            # computed back before the aggregation (derive) as for any other reading
            self.shown_time(step, function)
            column = self.column(function.field, span, output=True) or function.field
            return f"{function.name}({name(column)})"
        column = self.col(function.field, span)
        if function.name == "count":
            present = "isnotempty" if self.column_type(function.field) == "string" else "isnotnull"
            if function.distinct:
                return f"dcountif({column}, {present}({column}))"
            return f"countif({present}({column}))"
        value = column if self.kind(ir.Ref(function.field)) == NUMBER else f"todouble({column})"
        return f"{function.name}({value})"

    def order(self, step: ir.Order) -> list[str]:
        keys = []
        for key in step.keys:
            if self.dead(key.field):  # every row lacks it: the key orders nothing, in CQL too
                continue
            column = self.column(key.field, step.span, output=True)
            if column is None:
                continue
            ref = name(column)
            if key.type == "string":
                ref = f"tostring({ref})"
            elif self.column_type(key.field) == "datetime" and key.field not in self.computed:
                pass  # a time sorts as itself (a number in LogScale: epoch ms)
            elif key.type == "number" and self.kind(ir.Ref(key.field)) != NUMBER:
                ref = f"todouble({ref})"  # a string column sorted as numbers, as LogScale's default type
            elif key.type == "hex":
                self.unsupported(f"sort type=hex on {key.field} is sorted as text in KQL", step.span, PRESENTATION)
            keys.append(f"{ref} {'desc' if key.descending else 'asc'} nulls last")
        if not keys:
            if step.origin in ("head", "tail"):
                which = "first" if step.origin == "head" else "last"
                self.unsupported(f"{step.origin}() on rows without a time keeps the {which} rows in LogScale's "
                                 "order; KQL's take keeps any", step.span, PRESENTATION)
            return [f"take {step.limit}"]
        # LogScale's sort() keeps `limit` rows (200 unless told): the same limit here.
        return [f"sort by {', '.join(keys)}", f"take {step.limit}"]

    # ------------------------------------------------------------ predicates

    def pred(self, pred: ir.Pred, negated: bool = False) -> str:
        tested = getattr(pred, "field", None)
        if isinstance(tested, str) and self.dead(tested):
            return "false"  # every test on a missing field fails (a negation around it still holds)
        method = getattr(self, f"pred_{type(pred).__name__.lower()}")
        result: str = method(pred)
        return result

    def col(self, field: str, span: ir.Span) -> str:
        column = self.column(field, span)
        return name(column) if column else self.unknown_column(field)

    def unknown_column(self, field: str) -> str:
        """A field the profile does not map (its loss already reported): ``column_ifexists()`` (Kusto
        reference), so what ``--on-lossy warn`` writes still loads: empty on the profile's tables,
        where the field is missing, and the column itself on a table that has one of that name."""
        return f"column_ifexists({string(field)}, {self.null_of(field)})"

    def text_col(self, field: str, span: ir.Span) -> str:
        """A column for a string test: numbers are tested as their text (CQL tests the decimal text)."""
        column = self.col(field, span)
        return column if self.column_type(field) == "string" else f"tostring({column})"

    def empty_guard(self, column: str, test: str, could_match_empty: bool) -> str:
        if could_match_empty and self.profile.missing == "empty":
            return f"(isnotempty({column}) and {test})"
        return test

    def pred_and(self, pred: ir.And) -> str:
        return "(" + " and ".join(self.pred(p) for p in pred.items) + ")"

    def pred_or(self, pred: ir.Or) -> str:
        return "(" + " or ".join(self.pred(p) for p in pred.items) + ")"

    def pred_not(self, pred: ir.Not) -> str:
        # not() of a string test is true for an empty/missing value, as CQL's negation is. A test
        # of a number can be null (a null column, todouble() of text that is no number), and
        # not(null) is null, which where drops (Kusto reference, "null values"): coalesce() makes
        # it false first, so the negation holds where CQL's does.
        inner = self.pred(pred.item)
        return f"not(coalesce({inner}, false))" if self.nullable(pred.item) else f"not({inner})"

    def nullable(self, pred: ir.Pred) -> bool:
        """Whether the KQL of ``pred`` can be null (rather than false) on some row."""
        if isinstance(pred, ir.And | ir.Or):
            return any(self.nullable(p) for p in pred.items)
        if isinstance(pred, ir.Cmp | ir.ExprTest):
            return True
        if isinstance(pred, ir.Eq):
            return self.number_test(pred.field, (pred.value,)) and not self.is_basename(pred.field)
        if isinstance(pred, ir.In):
            return not pred.ignore_case and self.number_test(pred.field, pred.values)
        return False

    def number_column(self, field: str) -> bool:
        """Whether ``field`` is read from a column of whole numbers (not a value the rule computed)."""
        return self.column_type(field) in ("long", "int") and field not in self.computed

    def number_test(self, field: str, values: tuple[str, ...]) -> bool:
        """Whether equality of ``field`` with ``values`` is written as a comparison of numbers: a
        number column against integers."""
        return self.number_column(field) and all(WHOLE_NUMBER.fullmatch(v) for v in values)

    def pred_truep(self, pred: ir.TrueP) -> str:
        return "true"

    def transformed_filter(self, name_: str, column: str, transform: str, span: ir.Span) -> None:
        if transform != "basename":  # file-name equality is rewritten in pred_eq
            super().transformed_filter(name_, column, transform, span)

    def is_basename(self, field: str) -> bool:
        mapped = self.profile.field(self.event, field)
        return field not in self.computed and mapped is not None and mapped.transform == "basename"

    def path_test(self, field: str, value: str) -> bool:
        """Whether a test of file-name field ``field`` against ``value`` (its equality, or a glob's
        suffix) is written on the full path: a name without a separator or ``*``. A value with one
        would match a path and never a name; it is tested on the name (derive)."""
        return self.is_basename(field) and not re.search(r"[\\/*]", value)

    def pred_eq(self, pred: ir.Eq) -> str:
        if self.path_test(pred.field, pred.value):
            # Falcon holds the file name, the target the full path: the path ends in a separator
            # and the name (or is the name).
            column = self.path_column(pred.field, pred.span)
            suffix = "" if pred.ignore_case else "_cs"
            op = "=~" if pred.ignore_case else "=="
            ends = " or ".join(f"{column} endswith{suffix} {string(sep + pred.value)}" for sep in ("\\", "/"))
            return f"({column} {op} {string(pred.value)} or {ends})"
        column = self.col(pred.field, pred.span)
        op = "=~" if pred.ignore_case else "=="
        if self.number_test(pred.field, (pred.value,)):
            return f"{column} == {pred.value}"  # a number column: compare as the number the text spells
        if pred.value == "" and self.profile.missing == "empty":
            self.unsupported(f"{pred.field}=\"\" (present and empty) cannot be told from a missing field in "
                             f"{self.profile.name}, which stores both as an empty string", pred.span)
        # A number column against text that spells no integer: CQL compares the number's text.
        return f"{self.text_col(pred.field, pred.span)} {op} {string(pred.value)}"

    def pred_glob(self, pred: ir.Glob) -> str:
        if self.path_test(pred.field, pred.pattern[1:] if pred.pattern.startswith("*") else "*"):
            # *suffix says the same of the file name and of the full path; other globs read the name
            column = self.path_column(pred.field, pred.span)
        else:
            column = self.text_col(pred.field, pred.span)
        suffix = "" if pred.ignore_case else "_cs"
        parts = pred.pattern.split("*")
        inner = parts[1:-1]
        if len(parts) == 2 and parts[0] and not parts[1]:
            return f"{column} startswith{suffix} {string(parts[0])}"
        if len(parts) == 2 and parts[1] and not parts[0]:
            return f"{column} endswith{suffix} {string(parts[1])}"
        if len(parts) == 3 and not parts[0] and not parts[2] and inner[0]:
            return f"{column} contains{suffix} {string(inner[0])}"
        pattern = glob_to_regex(pred.pattern)
        if pred.ignore_case:
            pattern = "(?i)" + pattern
        test = f"{column} matches regex {string(pattern)}"
        return self.empty_guard(column, test, all(not p for p in parts))

    def pred_regex(self, pred: ir.Regex) -> str:
        column = self.text_col(pred.field, pred.span)
        pattern = self.re2(pred.pattern, pred.flags, pred.span)
        test = f"{column} matches regex {string(pattern)}"
        return self.empty_guard(column, test, matches_empty(pred.pattern, pred.flags))

    def re2(self, pattern: str, flags: str, span: ir.Span) -> str:
        # The matcher's RE2 plan keeps the source's meaning of `$` and `\Z` (also before a final
        # newline), which RE2's own `$` does not; a pattern without a plan keeps its text.
        plan = linear_plan(pattern, flags)
        lacking = frozenset() if plan else features(pattern) & RE2_UNSUPPORTED
        if lacking:
            self.unsupported(f"the regex uses {', '.join(sorted(lacking))}, which RE2 (KQL) does not have", span)
        translated = plan.pattern if plan else flag_prefix(flags) + to_re2(pattern)
        refusal = None if lacking else re2_error(translated)
        if refusal is not None:
            self.unsupported(f"RE2 rejects the regex: {refusal}", span)
        return translated

    def pred_cmp(self, pred: ir.Cmp) -> str:
        column = self.col(pred.field, pred.span)
        typed = self.column_type(pred.field)
        ref = column if typed in _NUMERIC_TYPES else f"todouble({column})"
        test = f"{ref} {_COMPARE[pred.op]} {_number(pred.number)}"
        # null != 5 is true in Kusto (Kusto reference, "logical operators"); CQL's comparison is
        # false where the field is missing or no number.
        return f"(isnotnull({ref}) and {test})" if pred.op == "!=" else test

    def column_type(self, field: str) -> str:
        if field in self.computed:
            # a value that is always missing (a field a projection removed) is written real(null)
            return "real" if self.kinds.get(field, TEXT) in (NUMBER, NULL) else "string"
        mapped = self.profile.field(self.event, field)
        table = self.event.table if self.event else None
        if mapped is None or table is None:
            return "string"
        if mapped.name != field and mapped.name in self.computed:
            # the rule wrote a field named as this one's column (reported: check_shadowing), which
            # now holds what the rule wrote there
            return self.column_type(mapped.name)
        return dict(self.profile.columns(table)).get(mapped.name, mapped.type)

    def pred_exists(self, pred: ir.Exists) -> str:
        column = self.col(pred.field, pred.span)
        if self.column_type(pred.field) == "string":
            return f"isnotempty({column})"
        return f"isnotnull({column})"

    def pred_in(self, pred: ir.In) -> str:
        column = self.col(pred.field, pred.span)
        if any("*" in v for v in pred.values):
            return "(" + " or ".join(self.pred_glob(ir.Glob(pred.field, v, pred.ignore_case, pred.span))
                                     if "*" in v else
                                     self.pred_eq(ir.Eq(pred.field, v, pred.ignore_case, pred.span))
                                     for v in pred.values) + ")"
        if not pred.values:
            return "false"
        if not pred.ignore_case and self.number_test(pred.field, pred.values):
            # a number column against integers: compared as the numbers the text spells (as pred_eq)
            return f"{column} in ({', '.join(pred.values)})"
        # in~ compares text, and a number column against other text too: tested as its text, as in CQL
        if pred.ignore_case or self.number_column(pred.field):
            column = self.text_col(pred.field, pred.span)
        op = "in~" if pred.ignore_case else "in"
        return f"{column} {op} ({', '.join(string(v) for v in pred.values)})"

    def pred_opaquetest(self, pred: ir.OpaqueTest) -> str:
        self.opaque_test(pred)
        return "false"

    def pred_arrayany(self, pred: ir.ArrayAny) -> str:
        self.array_test(pred)
        return "false"

    def pred_freetext(self, pred: ir.FreeText) -> str:
        self.unsupported("free-text search reads every field of the LogScale event and its @rawstring, which "
                         f"the columns of {self.event.table if self.event else 'the table'} do not hold one for one "
                         "(KQL's search and * has read the target's columns, by term, ignoring case)", pred.span)
        return "false"

    def pred_cidr(self, pred: ir.Cidr) -> str:
        """ipv4_is_in_any_range() / ipv6_is_in_any_range() (Kusto reference), null for a value that
        is no address, hence the coalesce (a negation must still hold there). Kusto's IPv6
        functions also read IPv4 addresses (as ::ffff:a.b.c.d), where cidr() keeps an address to
        subnets of its version: the IPv6 test runs only on values with a ':'."""
        column = self.text_col(pred.field, pred.span)
        v4 = [s for s in pred.subnets if ":" not in s]
        v6 = [s for s in pred.subnets if ":" in s]
        tests = []
        if v4:
            tests.append(f"coalesce(ipv4_is_in_any_range({column}, {', '.join(string(s) for s in v4)}), false)")
        if v6:
            tests.append(f"({column} contains \":\" and "
                         f"coalesce(ipv6_is_in_any_range({column}, {', '.join(string(s) for s in v6)}), false))")
        return tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")"

    def pred_exprtest(self, pred: ir.ExprTest) -> str:
        """``test(a OP b)``: as numbers when both sides are numbers, else as text; false when a
        side is missing (:func:`cqlx.runtime.compare_values`)."""
        left, right = pred.left, pred.right
        if NULL in (self.kind(left), self.kind(right)):
            return "false"
        if isinstance(left, ir.Lit) and isinstance(right, ir.Lit):
            return "true" if compare_values(pred.op, left.value, right.value) else "false"
        sides = (self.side(left), self.side(right))
        op = _COMPARE[pred.op]
        texts = [text for _, text, _ in sides]
        test = f"{texts[0]} {op} {texts[1]}" if op in ("==", "!=") else f"strcmp({texts[0]}, {texts[1]}) {op} 0"
        guards = [f"isnotempty({text})" for _, text, literal in sides if not literal]
        as_text = "(" + " and ".join([*guards, test]) + ")"
        numbers = [num for num, _, _ in sides]
        if None in numbers:  # a side that is no number: the matcher compares text
            return as_text
        as_numbers = f"{numbers[0]} {op} {numbers[1]}"
        if op == "!=":  # null != 5 is true in Kusto; a missing side makes CQL's test false
            present = [f"isnotnull({num})" for num, _, literal in sides if not literal]
            as_numbers = "(" + " and ".join([*present, as_numbers]) + ")" if present else as_numbers
        unsure = [num for (num, _, _), expr in zip(sides, (left, right), strict=True) if self.kind(expr) == TEXT
                  and not isinstance(expr, ir.Lit)]
        if not unsure:
            return as_numbers
        return f"iff({' and '.join(f'isnotnull({n})' for n in unsure)}, {as_numbers}, {as_text})"

    def side(self, expr: ir.Expr) -> tuple[str | None, str, bool]:
        """One side of a comparison: as a number (None when it is none), as text, and whether it is
        a literal (which needs no missing-value guard)."""
        kind = self.kind(expr)
        if isinstance(expr, ir.Lit) and isinstance(expr.value, str):
            value = number(expr.value)
            return (None if value is None else _number(value)), string(expr.value), True
        code = self.expr(expr)
        if kind == NUMBER:
            return code, f"tostring({code})", isinstance(expr, ir.Lit)
        return f"todouble({code})", code, False

    # ------------------------------------------------------------ expressions

    def kind(self, expr: ir.Expr) -> str:
        """What an expression holds in KQL (module docstring)."""
        if isinstance(expr, ir.Lit):
            if isinstance(expr.value, str):
                return TEXT if number(expr.value) is not None else WORD
            return NUMBER
        if isinstance(expr, ir.Ref):
            if self.dead(expr.field):
                return NULL
            if expr.field in self.computed:
                return self.kinds.get(expr.field, TEXT)
            if self.derivable(expr.field):
                return NUMBER  # read, it is computed back as epoch milliseconds
            return NUMBER if self.column_type(expr.field) in _NUMERIC_TYPES else TEXT
        if isinstance(expr, ir.Cond):
            arms = {self.kind(expr.then), self.kind(expr.otherwise)} - {NULL}
            if not arms:
                return NULL
            return arms.pop() if len(arms) == 1 else TEXT
        if isinstance(expr, ir.Arith):
            return NUMBER
        if isinstance(expr, ir.Null):
            return NULL
        if isinstance(expr, ir.Func) and expr.name == TIME_BUCKET:
            return NUMBER
        if isinstance(expr, ir.Func):
            from cqlx.emit import kql_funcs

            return kql_funcs.kind(self, expr)
        return TEXT

    def operand(self, expr: ir.Expr) -> str:
        """An arithmetic operand: text is read as a number (CQL arithmetic is numeric); a value that
        is no number is null, so the result is too, as in CQL."""
        kind = self.kind(expr)
        if kind == NUMBER:
            return self.expr(expr)
        if kind in (WORD, NULL):
            return "real(null)"
        if isinstance(expr, ir.Lit) and isinstance(expr.value, str):
            value = number(expr.value)
            assert value is not None  # TEXT literals spell a number
            return _number(value)
        return f"todouble({self.expr(expr)})"

    def expr(self, expr: ir.Expr) -> str:
        if isinstance(expr, ir.Lit):
            return string(expr.value) if isinstance(expr.value, str) else _number(expr.value)
        if isinstance(expr, ir.Ref):
            return "real(null)" if self.dead(expr.field) else self.col(expr.field, expr.span)
        if isinstance(expr, ir.Null):
            return "real(null)"
        if isinstance(expr, ir.Cond):
            return self.cond(expr)
        if isinstance(expr, ir.Arith):
            left, right = self.operand(expr.left), self.operand(expr.right)
            if expr.op == "/":  # LogScale divides as real numbers; KQL long / long truncates
                left = f"todouble({left})"
                # CQL's x / 0 has no value (the matcher's reading); Kusto's real division gives
                # infinity: a zero divisor is null instead
                divisor = expr.right.value if isinstance(expr.right, ir.Lit) else None
                if divisor == 0:
                    right = "real(null)"
                elif not isinstance(divisor, int | float):
                    real = right if right.startswith("todouble(") else f"todouble({right})"
                    right = f"iff({right} == 0, real(null), {real})"
            return f"({left} {expr.op} {right})"
        if isinstance(expr, ir.Func) and expr.name == TIME_BUCKET:
            return self.time_bucket(expr)
        if isinstance(expr, ir.Func):
            from cqlx.emit import kql_funcs

            return kql_funcs.render(self, expr)
        raise AssertionError(f"unexpected expression {expr!r}")

    def time_bucket(self, expr: ir.Func) -> str:
        """bucket()'s ``_bucket``: the start of the event time's bucket in epoch milliseconds, as
        LogScale writes it (functions-bucket). ``bin()`` on a datetime rounds down to a multiple of
        the span counted from 0001-01-01, a whole number of days before the epoch: for a span that
        divides a day (the lowering allows no other) that is the epoch-aligned bucket."""
        time, span = expr.args[0], expr.args[1]
        assert isinstance(time, ir.Ref) and isinstance(span, ir.Lit)
        column = self.event_time(time.field, time.span)
        if column is None:
            self.unsupported("bucket() needs the event time, which has no datetime column here", expr.span)
            column = self.unknown_column(time.field)
        return f"tolong((bin({column}, {span_text(int(span.value))}) - datetime(1970-01-01)) / 1ms)"


    def cond(self, expr: ir.Cond) -> str:
        """``iff()``, whose arms KQL needs to be of one type: with a number and a string arm the
        number is written as its text; a missing arm is the other arm's null."""
        kinds = self.kind(expr)
        # A number next to a null is written as a real (long and real(null) are two types to iff()),
        # unless every number is a whole literal: then the null is long(null).
        whole = kinds == NUMBER and _whole_literals(expr)
        real = kinds == NUMBER and self.may_be_null(expr) and not whole
        arms = []
        for arm in (expr.then, expr.otherwise):
            kind = self.kind(arm)
            if kind == NULL:
                arms.append('""' if kinds in (TEXT, WORD) else "long(null)" if whole else "real(null)")
            elif kind == NUMBER and kinds != NUMBER:
                arms.append(f"tostring({self.expr(arm)})")
            elif real and isinstance(arm, ir.Lit) and isinstance(arm.value, int | float):
                arms.append(_number(float(arm.value)))
            elif real and not isinstance(arm, ir.Cond):
                arms.append(f"todouble({self.expr(arm)})")
            else:
                arms.append(self.expr(arm))
        return f"iff({self.pred(expr.test)}, {arms[0]}, {arms[1]})"

    def may_be_null(self, expr: ir.Expr) -> bool:
        """Whether a conditional has an arm with no value (a null of some type)."""
        if isinstance(expr, ir.Cond):
            return self.may_be_null(expr.then) or self.may_be_null(expr.otherwise)
        return self.kind(expr) == NULL

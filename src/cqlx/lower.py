"""AST → IR: what each construct means (SEMANTICS.md), with both ``if()`` dialects (CQL.md).

The seed's dialect writes ``if(CommandLine = /re/i, "YES", "NO")``: a filter as the condition and
positional then/else. Real LogScale writes ``if(cond, then=..., else=...)`` with an expression
condition. Both lower to the same :class:`cqlx.ir.Cond`; the dialect-2 form is noted on the query
so ``cqlx check`` can point at it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from cqlx import ast as A
from cqlx import ir
from cqlx.ast import Span
from cqlx.errors import CqlValueError
from cqlx.functions import (
    AGGREGATE_FUNCTIONS,
    AGGREGATE_OUTPUTS,
    COLLECT_LIMIT_DEFAULT,
    DEFINE_TABLE,
    FUNCTIONS,
    GROUP_LIMIT_DEFAULT,
    GROUP_LIMIT_MAX,
    JOIN,
    JOIN_LIMIT_DEFAULT,
    JOIN_MODES,
    LOOKUP_MODES,
    MATCH,
    OPAQUE,
    REGEX_DEFAULT_FLAGS,
    REGEX_FLAGS,
    REPEAT_LIMIT,
    ROW_LIMIT_DEFAULT,
    ROW_LIMIT_MAX,
    SAVED_SEARCH,
    SELF_JOIN_FILTER,
    SERIES_LIMIT_DEFAULT,
    SERIES_LIMIT_MAX,
    SORT_ORDERS,
    SORT_TYPES,
    TIME_BUCKET,
    TOP_LIMIT_DEFAULT,
    UNKNOWN_FUNCTION_REASON,
    FunctionSpec,
    OpaqueSpec,
)
from cqlx.passes import nested_steps, row_fields
from cqlx.regexes import bad_group_name, named_groups, unname_groups

T = TypeVar("T")

_FLAG_ORDER = "imdgF"
#: Functions that are stages setting fields themselves, not values (cqlx.lower_values).
_STEP_FUNCTIONS = ("default", "rename", "eval", "setField", "lowercase")
#: Languages whose lower- and upper-casing Java (LogScale's runtime) does its own way: Unicode's
#: SpecialCasing.txt has conditional mappings for Lithuanian, Turkish and Azeri only (the dotted and
#: dotless i); in every other locale the case mappings are the default ones.
_CASING_LANGUAGES = ("lt", "tr", "az")
_ARITH = {"+", "-", "*", "/", "%"}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}
_DAY = 86_400_000
#: Relative time syntax (syntax-time-relative): each documented unit in milliseconds; a day is 24
#: hours, a week 7 days, a month 30, a quarter 90 and a year 365 (the documentation's table, as
#: duration() reads them).
RELATIVE_UNITS = {
    **dict.fromkeys(("ms", "millis", "millisecond", "milliseconds"), 1),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1000),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60_000),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600_000),
    **dict.fromkeys(("d", "day", "days"), _DAY),
    **dict.fromkeys(("w", "week", "weeks"), 7 * _DAY),
    **dict.fromkeys(("mon", "month", "months"), 30 * _DAY),
    **dict.fromkeys(("q", "qtr", "qtrs", "quarter", "quarters"), 90 * _DAY),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 365 * _DAY),
}
# A bucket's span: the units up to a day, and msec/mins as well; calendar units have no fixed
# length there (bucket() aligns them to the calendar).
_SPAN_UNITS = {**{unit: ms for unit, ms in RELATIVE_UNITS.items() if ms <= _DAY},
               **dict.fromkeys(("msec", "msecs"), 1), "mins": 60_000}
_CALENDAR_UNITS = frozenset({"w", "week", "weeks", "mon", "month", "months", "y", "year", "years", "q", "quarter",
                             "quarters"})
_QUARTER_HOUR = 900_000  # every time zone's offset is a multiple of 15 minutes


def lower(tree: A.Pipeline, text: str = "", params: Mapping[str, str] | None = None,
          saved: Mapping[str, str] | None = None) -> ir.Query:
    """The IR of a parsed query (before passes); raises :class:`CqlError` for meaningless input.

    ``text`` is the query the tree was parsed from: a stage cqlx cannot give a meaning to (a
    ``join()``, a ``$saved()`` search) keeps its text, so canonical CQL can write it back.
    ``params`` gives values to the query's parameters (``?name``); a parameter without one takes
    its ``?{name=default}``, and with neither its stage is kept as an :class:`ir.Opaque` stage.
    ``saved`` holds saved searches' bodies by name: a ``$name(...)`` stage whose name is there is
    replaced by its body (:meth:`_Lowering.saved_search`); one that is not stays opaque."""
    lowering = _Lowering(text, params or {}, saved or {})
    steps = lowering.pipeline(tree)
    # An ad-hoc table no converted match() reads (one kept opaque, a readFile(), or none) keeps its
    # defineTable() as an opaque stage, at the top where LogScale takes it, for canonical CQL to write.
    joined = {step.table for step in nested_steps(steps) if isinstance(step, ir.Join) and step.origin == "defineTable"}
    kept = tuple(step for name, step in lowering.table_calls.items() if name not in joined)
    return ir.Query(ir.Source(), (*kept, *steps), tuple(lowering.notes))


#: The aggregate functions whose value over a group's filtered events is the function of a field
#: that holds the value only on those events (``selectFromMax()`` would need its ``by`` filtered
#: too). ``collect()`` and ``selectLast()`` still write the field they were given.
_FILTERABLE = frozenset({"count", "sum", "min", "max", "avg", "collect", "selectLast"})


class _Opaque(Exception):
    """Raised inside an expression that holds something cqlx cannot give a meaning to; the stage
    around it becomes an :class:`ir.Opaque` (or the test an :class:`ir.OpaqueTest`)."""

    def __init__(self, name: str, reason: str, array: bool = False) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason
        self.array = array  # the value would be an array: the field's [0], [1], ... are written too

    def writes(self, field: str) -> tuple[str, ...]:
        """The fields a stage that sets ``field`` to this value writes."""
        return (field, f"{field}[*]") if self.array else (field,)


def _offsets(text: str) -> list[int]:
    """The offset at which each line of ``text`` starts (line 1 at index 0)."""
    return [0, *(found.end() for found in _NEWLINE.finditer(text))]


_NEWLINE = re.compile("\n")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def unescape_regex(pattern: str) -> str:
    """LogScale's ``/.../`` pattern with its ``\\/`` escapes turned into plain ``/`` (a backslash
    and the character after it are read as a pair, so ``\\\\/`` keeps its escaped backslash)."""
    if "\\/" not in pattern:
        return pattern
    return _ESCAPED.sub(lambda pair: "/" if pair.group(1) == "/" else pair.group(0), pattern)


def _number_value(expr: ir.Expr) -> int | float | None:
    """The number a literal is, else None."""
    if isinstance(expr, ir.Lit) and isinstance(expr.value, int | float) and not isinstance(expr.value, bool):
        return expr.value
    return None


def _flags(flags: str) -> str:
    return "".join(f for f in _FLAG_ORDER if f in flags)


MAX_DIGITS = 40  # longer numbers are not detection logic; Python refuses very long ones anyway


def _number(text: str, span: Span = A.NO_SPAN) -> int | float:
    if len(text) > MAX_DIGITS:
        raise CqlValueError(f"the number {text[:12]}... is longer than {MAX_DIGITS} digits", span)
    value = float(text) if "." in text else int(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise CqlValueError(f"{text} is not a finite number", span)
    return value


def _as_number(text: str) -> int | float | None:
    if len(text) > MAX_DIGITS:
        return None
    try:
        return _number(text.strip())
    except (ValueError, CqlValueError):
        try:
            value = float(text)
        except ValueError:
            return None
        return value if math.isfinite(value) else None


def _value_predicate(field: str, value: A.Node, span: Span) -> ir.Pred:
    """``field = value`` for any value form (bare, quoted, glob, regex, ``*``)."""
    if isinstance(value, A.RegexLit):
        return ir.Regex(field, unescape_regex(value.pattern), _flags(value.flags), span)
    if isinstance(value, A.Star):
        return ir.Exists(field, span)
    if isinstance(value, A.BareValue | A.StringLit | A.FieldRef | A.Number):
        text = _plain_text(value)
        if isinstance(value, A.BareValue | A.FieldRef) and text == "*":
            return ir.Exists(field, span)
        # `*` is a wildcard in bare and in quoted values alike; it cannot be escaped (SEMANTICS.md).
        if "*" in text:
            return ir.Glob(field, text, False, span)
        return ir.Eq(field, text, False, span)
    raise CqlValueError("expected a value (a word, a quoted string, a glob or a /regex/)", value.span)


def _plain_text(value: A.Node) -> str:
    if isinstance(value, A.BareValue):
        return value.text
    if isinstance(value, A.StringLit):
        return value.value
    if isinstance(value, A.FieldRef):
        return value.name
    if isinstance(value, A.Number):
        return value.text
    raise CqlValueError("expected a word or a quoted string", value.span)


def _items(value: A.Expr) -> tuple[A.Expr, ...]:
    return value.items if isinstance(value, A.Array) else (value,)


def _lookup_call(stage: A.Stage, function: str = "match") -> tuple[A.Call, bool] | None:
    """``match(...)``, ``!match(...)`` and ``f =~ match(...)`` (which is ``match(..., field=f)``)
    as a stage of their own, with whether they are negated; None for anything else. The same for
    ``join`` with ``function="join"``."""
    negated = False
    node: A.Node = stage
    if isinstance(node, A.NotFilter):
        negated, node = True, node.operand
    if isinstance(node, A.FnCompare) and node.call.name.lower() == function:
        field = A.Argument(node.field.span, "field", A.FieldRef(node.field.span, node.field.name))
        return A.Call(node.call.span, node.call.name, node.call.name_span, (*node.call.args, field)), negated
    if isinstance(node, A.Call) and node.name.lower() == function:
        return node, negated
    return None


class _SavedSearchCycle(CqlValueError):
    """A saved search that calls itself: reported once, at the outermost call."""


#: How deep saved searches may call saved searches (a guard against long chains; cycles are
#: refused as soon as a name repeats).
SAVED_SEARCH_DEPTH = 16


def _saved_name(call_name: str) -> str:
    """``$name`` and ``$"package:name"`` as the name a saved search is filed under."""
    name = call_name[1:]
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return name


def _respan(node: T, span: Span) -> T:
    """``node`` with every span in it (its own and its parts') set to ``span``: a saved search's
    steps point at the call they came from, not into a text the query does not hold."""
    if isinstance(node, tuple):
        return tuple(_respan(item, span) for item in node)  # type: ignore[return-value]
    if dataclasses.is_dataclass(node) and not isinstance(node, type | Span):
        changes: dict[str, object] = {}
        for item in dataclasses.fields(node):
            value = getattr(node, item.name)
            if item.name == "span" and isinstance(value, Span):
                changes[item.name] = span
            elif isinstance(value, tuple) or (dataclasses.is_dataclass(value) and not isinstance(value, Span)):
                changes[item.name] = _respan(value, span)
        return dataclasses.replace(node, **changes)
    return node


class _Lowering:
    def __init__(self, text: str = "", params: Mapping[str, str] | None = None,
                 saved: Mapping[str, str] | None = None, calling: tuple[str, ...] = ()) -> None:
        self.notes: list[tuple[Span, str]] = []
        self.case_depth = 0  # inside case { } branches: no aggregation there
        self.text = text
        self.params = dict(params or {})
        self.saved = dict(saved or {})
        self.calling = calling  # the saved searches being expanded, outermost first
        self.line_starts = _offsets(text)
        # defineTable()'s ad-hoc tables by name, as defined so far: the subquery's steps (ending with
        # the table's columns) and the columns, or why the table is not converted. Shared with the
        # lowerings of subqueries, which may match() a table defined before them.
        self.tables: dict[str, tuple[tuple[ir.Step, ...], tuple[str, ...]] | str] = {}
        self.table_calls: dict[str, ir.Opaque] = {}  # the converted tables' defineTable() stages, as written
        # Steps the stage being lowered needs before it (the scratch fields of groupBy()'s
        # {filter | function} subqueries), and how many such fields the query has made.
        self.pre_steps: list[ir.Step] = []
        self.scratch_count = 0
        self.before: list[ir.Step] = []  # the steps of the pipeline being lowered, so far

    def source(self, span: Span) -> str:
        """The query text of ``span`` (what an opaque stage writes back)."""
        if not self.text or span.line <= 0 or span.end_line > len(self.line_starts):
            return ""
        begin = self.line_starts[span.line - 1] + span.column - 1
        end = self.line_starts[span.end_line - 1] + span.end_column - 1
        return self.text[begin:end]

    # ------------------------------------------------------------ what cqlx cannot give a meaning

    def opaque_spec(self, call: A.Call) -> OpaqueSpec:
        if call.name.startswith("$"):
            return SAVED_SEARCH
        known = OPAQUE.get(call.name.lower())
        if known is not None:
            return known
        return OpaqueSpec(call.name, ir.FILTERS, None, UNKNOWN_FUNCTION_REASON)

    def opaque_step(self, call: A.Call) -> ir.Opaque:
        """A stage that calls a function cqlx does not convert: kept, with what it does to rows."""
        spec = self.opaque_spec(call)
        effect = spec.effect
        writes = self.opaque_writes(call, spec)
        if spec.filters_when is not None:
            name, value = spec.filters_when
            given = self.argument_word(call, name, spec)
            if given is not None and given.lower() == value:
                effect = ir.FILTERS
        return ir.Opaque(call.name, self.source(call.span), effect, writes, self.reason(call, spec), call.span)

    def reason(self, call: A.Call, spec: OpaqueSpec) -> str:
        if spec is SAVED_SEARCH:
            return f"saved search {call.name}(): {spec.reason}"
        return spec.reason if spec.reason.startswith(spec.name) else f"{call.name}(): {spec.reason}"

    def opaque_test(self, call: A.Call, span: Span | None = None) -> ir.OpaqueTest:
        spec = self.opaque_spec(call)
        span = span or call.span
        return ir.OpaqueTest(call.name, self.source(span), self.reason(call, spec), span)

    def argument_word(self, call: A.Call, name: str, spec: OpaqueSpec) -> str | None:
        for arg in call.args:
            given = arg.name if arg.name is not None else spec.default_param
            if given is not None and given.lower() == name.lower():
                value = arg.value
                if isinstance(value, A.FieldRef | A.StringLit | A.Number | A.BareValue):
                    return _plain_text(value) if not isinstance(value, A.BareValue) else value.text
                return None
        return None

    def opaque_writes(self, call: A.Call, spec: OpaqueSpec) -> tuple[str, ...] | None:
        """The fields an opaque call writes, from its spec's templates; None when unknown."""
        if spec.writes is None:
            return None
        values: dict[str, str] = {}
        for template in spec.writes:
            for name in re.findall(r"\{(\w+)\}", template):
                value = self.argument_word(call, name, spec)
                default = dict(spec.defaults).get(name)
                if value is None and default is not None:
                    inner = re.fullmatch(r"\{(\w+)\}", default)
                    value = self.argument_word(call, inner.group(1), spec) if inner else default
                if value is None:
                    return None
                values[name] = value
        return tuple(t.format(**values) for t in spec.writes)

    def param(self, node: A.Param) -> str:
        """The value of a query parameter, or :class:`_Opaque` when it has none."""
        if node.name in self.params:
            return self.params[node.name]
        if node.default is not None:
            self.notes.append((node.span, f"query parameter ?{node.name} has no value given; its default "
                                          f"{node.default!r} is used"))
            return node.default
        raise _Opaque(f"?{node.name}", f"query parameter ?{node.name} has no value (give one with "
                                        f"--param {node.name}=VALUE)")

    # ------------------------------------------------------------ stages

    def pipeline(self, tree: A.Pipeline) -> tuple[ir.Step, ...]:
        outer, self.before = self.before, []
        try:
            for stage in tree.stages:
                self.before += self.stage(stage)
            return tuple(self.before)
        finally:
            self.before = outer

    def saved_search(self, call: A.Call, body: str) -> tuple[ir.Step, ...]:
        """A ``$name(...)`` stage whose body is known: the body's pipeline in its place, with the
        call's arguments as the body's query parameters (LogScale's saved searches as user
        functions: ``$name(param=value)`` gives ``?param``; parameters the call does not give are
        the calling query's). A saved search that calls itself, directly or not, is refused."""
        name = _saved_name(call.name)
        if name in self.calling:
            chain = " -> ".join(f"${n}()" for n in (*self.calling, name))
            raise _SavedSearchCycle(f"saved search ${name}() calls itself: {chain}", call.span)
        if len(self.calling) >= SAVED_SEARCH_DEPTH:
            raise CqlValueError(f"saved searches call each other more than {SAVED_SEARCH_DEPTH} deep", call.span)
        args: dict[str, str] = {}
        for arg in call.args:
            if arg.name is None:
                raise CqlValueError(f"{call.name}() takes its arguments by name (the saved search's parameters: "
                                    "name=value)", arg.span)
            args[arg.name] = self.param(arg.value) if isinstance(arg.value, A.Param) else self.word(arg.value)
        from cqlx.errors import CqlError
        from cqlx.parser import parse as parse_text

        inner = _Lowering(body, {**self.params, **args}, self.saved, (*self.calling, name))
        inner.case_depth = self.case_depth
        try:
            steps = inner.pipeline(parse_text(body))
        except _SavedSearchCycle as error:
            raise _SavedSearchCycle(error.message, call.span) from None
        except CqlError as error:
            where = f" (line {error.span.line}, column {error.span.column} of its body)" if error.span.line else ""
            raise CqlValueError(f"in saved search {call.name}(){where}: {error.message}", call.span) from None
        self.notes.extend((call.span, note) for _, note in inner.notes)
        return _respan(steps, call.span)

    def stage(self, stage: A.Stage) -> Sequence[ir.Step]:
        outer, self.pre_steps = self.pre_steps, []
        try:
            if isinstance(stage, A.Call) and stage.name.startswith("$"):
                body = self.saved.get(_saved_name(stage.name))
                if body is not None:
                    return self.saved_search(stage, body)
            steps = self.known_stage(stage)
            return [*self.pre_steps, *steps] if self.pre_steps else steps
        except _Opaque as opaque:
            # An expression holds what cqlx cannot evaluate: the stage keeps every event (it
            # assigns) or an unknown subset of them (it filters).
            writes = opaque.writes(stage.field.name) if isinstance(stage, A.Assignment) else None
            effect = ir.ENRICHES if isinstance(stage, A.Assignment) else ir.FILTERS
            spec = self.spec(stage) if isinstance(stage, A.Call) else None
            if spec is not None and spec.kind == "aggregate":
                effect = ir.AGGREGATES
            return [ir.Opaque(opaque.name, self.source(stage.span), effect, writes, opaque.reason, stage.span)]
        finally:
            self.pre_steps = outer

    def known_stage(self, stage: A.Stage) -> Sequence[ir.Step]:
        found_lookup = _lookup_call(stage)
        if found_lookup is not None:
            return [self.lookup(*found_lookup, stage.span)]
        found_join = _lookup_call(stage, "join")
        if found_join is not None:
            return [self.join(*found_join, stage.span)]
        found_self_join = _lookup_call(stage, "selfjoinfilter")
        if found_self_join is not None:
            return [self.self_join_filter(*found_self_join, stage.span)]
        if isinstance(stage, A.Call) and stage.name.lower() == "definetable":
            return self.define_table(stage)
        if isinstance(stage, A.Assignment):
            if isinstance(stage.value, A.Call):
                spec = self.spec(stage.value)
                if spec is not None and spec.kind in _STEP_FUNCTIONS:  # b := rename(a)
                    return lower_values.assignment(self, stage, spec)
            return [ir.Eval(stage.field.name, self.expr(stage.value), stage.span)]
        if isinstance(stage, A.FnCompare):  # minutes =~ default(0) is default(0, field=minutes)
            spec = self.spec(stage.call)
            if spec is not None and (spec.kind in _STEP_FUNCTIONS or spec.name in lower_values.NAMES):
                field_arg = A.Argument(stage.field.span, "field", A.FieldRef(stage.field.span, stage.field.name))
                call = stage.call
                return self.known_stage(A.Call(stage.span, call.name, call.name_span, (*call.args, field_arg)))
        if isinstance(stage, A.MatchStmt):
            return [self.match_stmt(stage)]
        if isinstance(stage, A.CaseStmt):
            self.case_depth += 1
            try:
                branches = tuple(ir.CaseBranch(self.pipeline(b), b.span) for b in stage.branches)
            finally:
                self.case_depth -= 1
            return [ir.Case(branches, stage.span)]
        if isinstance(stage, A.Call):
            found = self.spec(stage)
            if found is None:
                return [self.opaque_step(stage)]
            spec = found
            if spec.kind == "aggregate":
                return self.aggregate(stage, spec)
            if spec.kind == "projection":
                return self.projection(stage, spec)
            if spec.kind == "drop":
                args = self.bind(stage, spec)
                if "fields" not in args:
                    raise CqlValueError("drop() needs the fields to remove, e.g. drop([aip, cid])", stage.span)
                return [ir.Drop(self.field_list(args["fields"]), stage.span)]
            if spec.kind == "order":
                return [self.order(stage, spec)]
            if spec.kind in _STEP_FUNCTIONS or (spec.kind == "value" and spec.name in lower_values.NAMES):
                return lower_values.stage(self, stage, spec)
            if spec.kind == "value":
                args = self.bind(stage, spec)
                default_out = "_if" if spec.name == "if" else f"_{spec.name}"
                out = self.field_arg(args["as"]) if "as" in args else default_out
                try:
                    return [ir.Eval(out, self.call_value(stage, spec), stage.span)]
                except _Opaque as opaque:  # a value cqlx cannot compute: the stage sets one field
                    return [ir.Opaque(opaque.name, self.source(stage.span), ir.ENRICHES, opaque.writes(out),
                                      opaque.reason, stage.span)]
        return self.filter_stage(stage)

    def lookup(self, call: A.Call, negated: bool, span: Span) -> ir.Lookup | ir.Join | ir.Opaque:
        """``match(...)`` (or ``!match(...)``) as a stage: an :class:`ir.Lookup`; what cqlx does not
        convert of it (``nrows`` other than 1, an ad-hoc ``table=``) stays an opaque stage."""
        args = self.bind(call, MATCH)
        kept = functools.partial(self.match_kept, span)

        if "table" in args:
            return self.match_table(call, args, negated, span)
        if "file" not in args:
            raise CqlValueError('match() needs the lookup file, e.g. match(file="hosts.csv", field=aid)', call.span)
        file = self.word(args["file"])
        fields, columns = self.key_pairs(call, args, "column", words=True)
        include = tuple(self.word(c) for c in _items(args["include"])) if "include" in args else None
        strict = self.boolean(args["strict"], "strict") if "strict" in args else True
        ignore_case = self.boolean(args["ignoreCase"], "ignoreCase") if "ignoreCase" in args else False
        mode = self.word(args["mode"]).lower() if "mode" in args else "string"
        if mode not in LOOKUP_MODES:
            raise CqlValueError(f"mode={self.word(args['mode'])} is not a match mode; accepted: "
                                + ", ".join(LOOKUP_MODES), args["mode"].span)
        if "glob" in args and self.boolean(args["glob"], "glob"):  # deprecated for mode=glob (1.23)
            if "mode" in args and mode != "glob":
                raise CqlValueError("glob=true and mode= disagree; keep mode=", args["glob"].span)
            mode = "glob"
        if "nrows" in args:
            rows = self.word(args["nrows"])
            if not re.fullmatch(r"[0-9]{1,9}", rows) or int(rows) < 1:
                raise CqlValueError(f"nrows={rows} must be a whole number of at least 1", args["nrows"].span)
            if int(rows) != 1:
                return kept(f"nrows={rows} makes one event of each matching row; cqlx converts nrows=1 "
                            "(one row per event)")
        if negated and not strict:
            return kept("!match(strict=false) negates a match that keeps every event; cqlx does not convert it")
        return ir.Lookup(file, fields, columns, include, strict, ignore_case, mode, negated, span)

    def match_kept(self, span: Span, reason: str) -> ir.Opaque:
        """A match() stage cqlx does not convert, kept as written with the reason."""
        return ir.Opaque("match", self.source(span), ir.FILTERS, None, f"match(): {reason}", span)

    def define_table(self, call: A.Call) -> list[ir.Step]:
        """``defineTable(query={...}, name="t", include=[...])``: no step of its own (it processes no
        events, functions-definetable); the table is kept for the ``match(table="t")`` calls after
        it. A table cqlx does not convert (``include=[*]``, another time range or view) stays an
        opaque stage, and the matches on it say why."""
        args = self.bind(call, DEFINE_TABLE)
        subquery = args.get("query")
        if not isinstance(subquery, A.SubQuery):
            raise CqlValueError('defineTable() needs its subquery in braces, e.g. defineTable(query={#event_simpleName='
                                'DnsRequest}, name="dns", include=[aid, DomainName])', (subquery or call).span)
        if "name" not in args:
            raise CqlValueError('defineTable() needs the table\'s name, e.g. name="dns"', call.span)
        if "include" not in args:
            raise CqlValueError("defineTable() needs the table's columns, e.g. include=[aid, DomainName] (or [*])",
                                call.span)
        name = self.word(args["name"])
        if name in self.tables:
            raise CqlValueError(f'defineTable(): a table named "{name}" is defined already; each table needs a name '
                                "of its own", args["name"].span)
        steps = self.subquery_steps(subquery)
        reason = None
        if any(isinstance(item, A.Star) for item in _items(args["include"])):
            reason = "include=[*] makes a column of every field of the subquery's events, which cqlx cannot name"
        elsewhere = [arg for arg in ("start", "end", "view") if arg in args]
        if elsewhere:
            reason = (f"{'/'.join(elsewhere)}= runs the subquery over other events (another time range or view) "
                      "than the query's, which the targets' tables do not say")
        if reason is not None:
            self.tables[name] = reason
            return [self.opaque_step(call)]
        columns = self.field_list(args["include"])
        self.tables[name] = ((*steps, ir.Project(columns, call.span)), columns)
        self.table_calls[name] = self.opaque_step(call)
        return []

    def match_table(self, call: A.Call, args: dict[str, A.Expr], negated: bool, span: Span) -> ir.Join | ir.Opaque:
        """``match(table="t", field, column, include, strict)`` on an ad-hoc table: the
        :class:`ir.Join` of the table's subquery (``strict=false`` is a left join; ``include``
        defaults to every column of the table, as match() includes every column of a file)."""
        name = self.word(args["table"])
        table = self.tables.get(name)
        kept = functools.partial(self.match_kept, span)

        if table is None:  # defined where cqlx does not see it (a dashboard's other query), or nowhere
            return kept(f'no ad-hoc table {name} is defined before it (defineTable(query={{...}}, name="{name}", '
                        'include=[...]))')
        if isinstance(table, str):
            return kept(f"its table {name} is not converted: {table}")
        fields, columns = self.key_pairs(call, args, "column")
        strict = self.boolean(args["strict"], "strict") if "strict" in args else True
        many = "nrows" in args and self.word(args["nrows"]).lower() == "max"
        for option, ignored in (("ignoreCase", "false"), ("mode", "string"), ("nrows", "max" if many else "1"),
                                ("glob", "false")):
            if option in args and self.word(args[option]).lower() != ignored:
                return kept(f"{option}={self.word(args[option])} on an ad-hoc table is not converted; cqlx converts "
                            "exact matches of one row per event, or of every row (nrows=max)")
        if negated and not strict:
            return kept("!match(strict=false) negates a match that keeps every event; cqlx does not convert it")
        many = many and not negated  # !match() keeps events without a row: how many rows match is moot
        steps, table_columns = table
        include = self.field_list(args["include"]) if "include" in args else table_columns
        return ir.Join(ir.Query(ir.Source(), steps), fields, columns, include, "inner" if strict else "left",
                       negated, span, origin="defineTable", table=name, many=many)

    def key_pairs(self, call: A.Call, args: dict[str, A.Expr], other: str, words: bool = False
                  ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """match()'s ``field``/``column`` and join()'s ``field``/``key``: the event fields and what
        each is matched against, in order (as many of each; ``other`` defaults to ``field``).
        ``words``: the other side names a lookup file's columns, not fields."""
        function = call.name
        if "field" not in args:
            what = "the event field(s) to look up" if other == "column" else "the field(s) to join on"
            raise CqlValueError(f"{function}() needs {what}, e.g. field=aid", call.span)
        fields = self.field_list(args["field"])
        if other not in args:
            return fields, fields
        against = tuple(self.word(c) for c in _items(args[other])) if words else self.field_list(args[other])
        if len(against) != len(fields):
            raise CqlValueError(f"{function}() has {len(fields)} field(s) and {len(against)} {other}(s); they are "
                                "matched in order and must be as many", args[other].span)
        return fields, against

    def join(self, call: A.Call, negated: bool, span: Span) -> ir.Join | ir.Opaque:
        """``join({...}, ...)`` (or ``!join(...)``) as a stage: an :class:`ir.Join` whose subquery
        is lowered as a query of its own; what cqlx does not convert of it stays opaque (another
        time range or repository, ``max`` other than 1, a ``limit`` other than the default)."""
        args = self.bind(call, JOIN)

        def kept(reason: str) -> ir.Opaque:
            return ir.Opaque("join", self.source(span), ir.FILTERS, None, f"join(): {reason}", span)

        subquery = args.get("query")
        if not isinstance(subquery, A.SubQuery):
            raise CqlValueError("join() needs its subquery in braces, e.g. join({#event_simpleName=DnsRequest}, "
                                "field=aid)", (subquery or call).span)
        fields, keys = self.key_pairs(call, args, "key")
        # a field named twice comes in once (the KQL project of the subquery's row would name it twice)
        include = tuple(dict.fromkeys(self.field_list(args["include"]))) if "include" in args else ()
        mode = self.word(args["mode"]).lower() if "mode" in args else "inner"
        if mode not in JOIN_MODES:
            raise CqlValueError(f"mode={self.word(args['mode'])} is not a join mode; accepted: "
                                + ", ".join(JOIN_MODES), args["mode"].span)
        for name in ("max", "limit"):
            if name in args:
                word = self.word(args[name])
                if not re.fullmatch(r"[0-9]{1,9}", word) or int(word) < 1:
                    raise CqlValueError(f"{name}={word} must be a whole number of at least 1", args[name].span)
        if "max" in args and int(self.word(args["max"])) != 1:
            return kept(f"max={self.word(args['max'])} emits several rows per key; cqlx converts max=1")
        if "limit" in args and int(self.word(args["limit"])) != JOIN_LIMIT_DEFAULT:
            return kept(f"limit={self.word(args['limit'])} keeps that many of the subquery's rows, and which is not "
                        f"documented; cqlx converts the default ({JOIN_LIMIT_DEFAULT:,}), assuming fewer rows")
        elsewhere = [name for name in ("start", "end", "repo", "view", "live") if name in args]
        if elsewhere:
            return kept(f"{'/'.join(elsewhere)}= runs the subquery over other events (another time range or "
                        "repository) than the query's, which the targets' tables do not say")
        if negated and mode == "left":
            return kept("!join(mode=left) negates a join that keeps every event; cqlx does not convert it")
        return ir.Join(ir.Query(ir.Source(), self.subquery_steps(subquery)), fields, keys, include, mode, negated,
                       span)

    def subquery_steps(self, subquery: A.SubQuery) -> tuple[ir.Step, ...]:
        """A ``{...}`` argument's steps, lowered as a query of its own; its notes are the rule's."""
        inner = _Lowering(self.text, self.params, self.saved, self.calling)
        inner.tables, inner.table_calls = self.tables, self.table_calls
        steps = inner.pipeline(subquery.pipeline)
        self.notes.extend(inner.notes)
        return steps

    def self_join_filter(self, call: A.Call, negated: bool, span: Span) -> ir.SelfJoinFilter | ir.Opaque:
        """``selfJoinFilter(field=[...], where=[{...}, ...])`` as an :class:`ir.SelfJoinFilter`
        whose ``where`` filters are each a query of filters; one that does more than filter (or a
        negated call) stays opaque."""
        args = self.bind(call, SELF_JOIN_FILTER)

        def kept(reason: str) -> ir.Opaque:
            return ir.Opaque("selfJoinFilter", self.source(span), ir.FILTERS, None, f"selfJoinFilter(): {reason}",
                             span)

        if "field" not in args:
            raise CqlValueError("selfJoinFilter() needs the key field(s), e.g. field=[aid, TargetProcessId]", call.span)
        where = args.get("where")
        items = _items(where) if where is not None else ()
        if not items or not all(isinstance(item, A.SubQuery) for item in items):
            raise CqlValueError("selfJoinFilter() needs its filters in braces, e.g. where=[{#event_simpleName="
                                "ProcessRollup2}, {#event_simpleName=DnsRequest}]", (where or call).span)
        fields = self.field_list(args["field"])
        prefilter = self.boolean(args["prefilter"], "prefilter") if "prefilter" in args else False
        if negated:
            return kept("!selfJoinFilter() keeps the events whose key lacks one of the filters; cqlx does not "
                        "convert it")
        wheres: list[ir.Pred] = []
        for item in items:
            assert isinstance(item, A.SubQuery)
            steps = self.subquery_steps(item)
            if not steps or not all(isinstance(step, ir.Filter) for step in steps):
                return kept("a where= clause that does more than filter events is not converted")
            preds = tuple(step.pred for step in steps if isinstance(step, ir.Filter))
            wheres.append(preds[0] if len(preds) == 1 else ir.And(preds, item.span))
        return ir.SelfJoinFilter(fields, tuple(wheres), prefilter, span)

    def match_stmt(self, stage: A.MatchStmt) -> ir.Case:
        """``field match { p => ... ; * => ... }`` is the ``case`` whose branches test ``field = p``
        (a ``*`` pattern is the default branch)."""
        branches = []
        self.case_depth += 1
        try:
            for branch in stage.branches:
                pattern = branch.pattern
                steps = self.pipeline(branch.pipeline)
                if isinstance(pattern, A.RegexLit) and named_groups(unescape_regex(pattern.pattern)):
                    # `field = /re/` with named groups extracts them (syntax-conditional: each pattern
                    # tests the field as `field = pattern` would)
                    extraction = self.extract(stage.field.name, unescape_regex(pattern.pattern),
                                              _flags(pattern.flags), True, pattern.span)
                    steps = (*extraction, *steps)
                elif not (isinstance(pattern, A.BareValue) and pattern.text == "*"):
                    test = _value_predicate(stage.field.name, pattern, pattern.span)
                    steps = (ir.Filter(test, pattern.span), *steps)
                branches.append(ir.CaseBranch(steps, branch.span))
        finally:
            self.case_depth -= 1
        return ir.Case(tuple(branches), stage.span)

    def projection(self, call: A.Call, spec: FunctionSpec) -> list[ir.Step]:
        args = self.bind(call, spec)
        if "fields" not in args:
            raise CqlValueError(f"{spec.name}() needs the fields to keep, e.g. {spec.name}([a, b])",
                                call.span)
        fields = self.field_list(args["fields"])
        if not fields:
            raise CqlValueError(f"{spec.name}() needs at least one field", call.span)
        if spec.name == "select":
            return [ir.Project(fields, call.span)]
        # table(): an aggregate that keeps `limit` rows sorted by `sortby` (functions-table).
        sortby = self.field_arg(args["sortby"]) if "sortby" in args else "@timestamp"
        key = ir.SortKey(sortby, self.sort_order(args.get("order")), self.sort_type(args.get("type")))
        return [ir.Order((key,), self.limit(args.get("limit")), span=call.span), ir.Project(fields, call.span)]

    # ------------------------------------------------------------ aggregation

    def aggregate(self, call: A.Call, spec: FunctionSpec) -> list[ir.Step]:
        """``groupBy()``, ``top()``, ``bucket()``/``timeChart()``, ``stats()``, or an aggregate
        function as a stage of its own (``count()``, ``collect(x)``...: no keys, one row)."""
        if self.case_depth:
            # Each branch of a case sees one event at a time; LogScale takes no aggregate there.
            raise CqlValueError(f"{spec.name}() aggregates events; it cannot stand inside case {{ }}", call.span)
        if spec.name == "groupBy":
            return [self.group_by(call, spec)]
        if spec.name == "top":
            return self.top(call, spec)
        if spec.name in ("bucket", "timeChart"):
            return self.time_buckets(call, spec)
        if spec.name == "stats":
            args = self.bind(call, spec)
            with_rows = self.totals(call, args.get("function"))
            if with_rows is not None:
                return with_rows
            functions = self.function_list(args.get("function"), (), call)
            if not functions:
                raise CqlValueError("stats() needs at least one aggregate function, e.g. stats([count(), "
                                    "max(Bytes)])", call.span)
            return [ir.Aggregate((), functions, None, span=call.span)]
        functions = self.agg_function(call, spec)
        self.check_outputs((), functions, [call] * len(functions))
        return [ir.Aggregate((), functions, None, span=call.span)]

    def totals(self, stats: A.Call, given: A.Expr | None) -> list[ir.Step] | None:
        """``stats([sum(count, as=total), sort(RemotePort)])``: one sort(), head() or tail() among
        functions that give one row is their outputs on every row, then the order (the Cartesian
        product: functions-stats): an :class:`ir.Totals` and an :class:`ir.Order`. None when no
        such function is among several."""
        items = self.without_stats(given.items if isinstance(given, A.Array) else (given,)) if given else []
        ordering = [i for i in items if isinstance(i, A.Call) and (found := self.spec(i)) is not None
                    and found.kind == "order"]
        if not ordering or len(items) < 2:
            return None
        call = ordering[0]
        name = self.known(call).name
        if len(ordering) > 1:
            raise _Opaque(name, "stats() with several functions that keep rows combines each row of one with "
                                "each of the other's; cqlx does not convert it")
        assert given is not None
        functions = self.function_list(A.Array(given.span, tuple(i for i in items if i is not call)), (), stats)
        if any(f.name not in AGGREGATE_OUTPUTS for f in functions):
            raise _Opaque(name, f"{name}() among stats()'s functions with collect(), selectLast() or "
                                "selectFromMax(): cqlx combines its rows only with count(), sum(), min(), max() "
                                "and avg(), which give a row over no events too")
        order = self.order(call, self.known(call))
        outputs = {f.output for f in functions}
        if not isinstance(order, ir.Order) or outputs & {key.field for key in order.keys}:
            raise _Opaque(name, f"{name}() among stats()'s functions sorts the rows before the other functions' "
                                "outputs join them; cqlx converts it only when it keeps rows and sorts by none "
                                "of those outputs")
        fields = row_fields(self.before)
        if fields is None or fields & outputs:
            what = ("the rows' fields are not known here (cqlx converts it after an aggregation)" if fields is None
                    else f"the rows already have {', '.join(sorted(fields & outputs))}")
            raise _Opaque(name, f"{name}() among stats()'s functions: each of its rows takes the other functions' "
                                f"outputs, and LogScale fails the query where a row already has one with another "
                                f"value; {what}")
        return [ir.Totals(tuple(functions), stats.span), order]

    def group_by(self, call: A.Call, spec: FunctionSpec) -> ir.Aggregate | ir.GroupTail:
        args = self.bind(call, spec)
        if "field" not in args:
            raise CqlValueError("groupBy() needs the fields to group by, e.g. groupBy([UserName, ComputerName])",
                                call.span)
        keys = self.field_list(args["field"])
        if not keys:
            raise CqlValueError("groupBy() needs at least one field to group by", args["field"].span)
        if len(set(keys)) != len(keys):
            raise CqlValueError("groupBy() names a field twice", args["field"].span)
        limit = self.group_limit(args.get("limit"))
        given = args.get("function")
        inner = self.nested_group_by(given)
        if inner is not None:
            # groupBy(a, function=groupBy(b, function=f)): each a-group's b-groups, with a: the rows
            # of groupBy([a, b], function=f) (functions-stats: a subaggregator's rows are the rows).
            # The limit is the outer one (cqlx keeps the first groups it meets).
            if set(keys) & set(inner.keys):
                raise CqlValueError("the inner groupBy() groups by a field the outer one also groups by",
                                    given.span if given is not None else call.span)
            return ir.Aggregate(keys + inner.keys, inner.functions, limit, span=call.span)
        tail = self.group_tail(given)
        if tail is not None:
            return ir.GroupTail(keys, tail, limit, call.span)
        functions = self.function_list(given, keys, call)
        return ir.Aggregate(keys, functions, limit, span=call.span)

    @staticmethod
    def only_function(given: A.Expr | None, name: str, among_others: str) -> A.Call | None:
        """The call to ``name`` when it is groupBy()'s only function; None when there is none. Among
        other functions it combines its rows with theirs (functions-stats), which cqlx does not
        convert: ``among_others`` says so."""
        calls = given.items if isinstance(given, A.Array) else (given,) if given is not None else ()
        found = [c for c in calls if isinstance(c, A.Call) and c.name.lower() == name.lower()]
        if not found:
            return None
        if len(calls) > 1:
            raise _Opaque(name, among_others)
        return found[0]

    def group_tail(self, given: A.Expr | None) -> int | None:
        """``tail(N)`` as groupBy()'s only function: the number of events it keeps per group
        (functions-tail: ``limit``, 200 by default); None for any other functions."""
        tail = self.only_function(given, "tail", "tail() among groupBy()'s functions with others combines its "
                                                 "events with their rows; cqlx converts tail() alone")
        if tail is None:
            return None
        args = self.bind(tail, FUNCTIONS["tail"])
        return self.limit(args["limit"]) if "limit" in args else ROW_LIMIT_DEFAULT

    def nested_group_by(self, given: A.Expr | None) -> ir.Aggregate | None:
        """The inner groupBy() when it is groupBy()'s only function (a Cartesian product among
        others: functions-stats)."""
        nested = self.only_function(given, "groupBy", "groupBy() inside a list of functions combines its rows with "
                                                      "the other functions' (a Cartesian product); cqlx does not "
                                                      "convert it")
        if nested is None:
            return None
        inner = self.group_by(nested, FUNCTIONS["groupby"])
        if isinstance(inner, ir.GroupTail):
            raise _Opaque("groupBy", "groupBy() inside groupBy() with tail(): cqlx does not convert it")
        return inner

    def function_list(self, given: A.Expr | None, keys: tuple[str, ...], call: A.Call) -> tuple[ir.AggFunc, ...]:
        """The functions of ``function=`` (``count()`` when not given: functions-groupby,
        functions-stats; ``[]`` groups without aggregating), with their outputs checked."""
        if given is None:
            return (ir.AggFunc("count", None, "_count"),)
        calls = self.without_stats(given.items if isinstance(given, A.Array) else (given,))
        host = self.known(call).name  # groupBy, stats (also written [f, g]), bucket, timeChart
        functions: list[ir.AggFunc] = []
        nodes: list[A.Node] = []
        for item in calls:
            # collect(k), selectLast(k)... of a key k: every row's value is the key's own (published
            # queries write it), so the function adds nothing and is left out.
            made = tuple(f for f in self.agg_function(item, host=host) if not (f.output in keys and f.field == f.output
                                                                    and f.name not in AGGREGATE_OUTPUTS))
            # The same function twice (selectLast([a, b, a]), published queries write it) writes the
            # same value to the same field: it is one function. Two different ones clash below.
            made = tuple(f for f in dict.fromkeys(made) if f not in functions)
            functions += made
            nodes += [item] * len(made)
        self.check_outputs(keys, tuple(functions), nodes)
        return tuple(functions)

    def without_stats(self, calls: Sequence[A.Expr]) -> list[A.Expr]:
        """``stats([f, g])`` among the functions is ``f, g``: stats() only runs the aggregates it
        lists, each writing its own output (functions-stats)."""
        out: list[A.Expr] = []
        for item in calls:
            if not (isinstance(item, A.Call) and item.name.lower() == "stats"):
                out.append(item)
                continue
            inner = self.bind(item, FUNCTIONS["stats"]).get("function")
            if inner is None or (isinstance(inner, A.Array) and not inner.items):
                raise CqlValueError("stats() needs at least one aggregate function, e.g. stats([count(), "
                                    "max(Bytes)])", item.span)
            out += self.without_stats(inner.items if isinstance(inner, A.Array) else (inner,))
        return out

    def check_outputs(self, keys: tuple[str, ...], functions: tuple[ir.AggFunc, ...], nodes: Sequence[A.Node]) -> None:
        seen: set[str] = set()
        for function, node in zip(functions, nodes, strict=True):
            # collect(), selectLast()... write the field they read: they take no as=
            hint = "; give it another name with as=" if function.name in AGGREGATE_OUTPUTS else ""
            if function.output in keys:
                raise CqlValueError(f"{function.name}() writes {function.output}, which the aggregation also "
                                    f"groups by{hint}", node.span)
            if function.output in seen:
                raise CqlValueError(f"two functions write {function.output}{hint.replace('it', 'one')}", node.span)
            seen.add(function.output)

    def agg_function(self, node: A.Expr, spec: FunctionSpec | None = None, host: str = "groupBy"
                     ) -> tuple[ir.AggFunc, ...]:
        """One function of ``function=...``: count(), sum(f), min(f), max(f), avg(f), collect(),
        selectLast(), selectFromMax(), selectFromMin() (one AggFunc per field a call writes);
        ``host`` names the function whose list it is, for the messages."""
        accepted = ", ".join(f"{name}()" for name in AGGREGATE_FUNCTIONS)
        if isinstance(node, A.SubQuery):  # function=[{filter | count()}, ...]: a pipeline per group
            return self.filtered_function(node)
        if not isinstance(node, A.Call):
            raise CqlValueError(f"{host}(function=...) takes aggregate functions ({accepted}), or a list of them",
                                node.span)
        if spec is None:
            spec = self.known(node)
        if spec.name not in AGGREGATE_FUNCTIONS:
            if spec.kind != "value":  # an aggregate LogScale has (stats(), tail()...) where cqlx takes none
                raise _Opaque(spec.name, f"{spec.name}() among {host}()'s functions: cqlx does not convert it")
            raise CqlValueError(f"{spec.name}() is not an aggregate function cqlx converts; accepted: {accepted}",
                                node.name_span)
        args = self.bind(node, spec)
        if spec.name == "collect":
            return self.collect(node, args)
        if spec.name == "selectLast":
            fields = self.required_fields(node, args, "fields", "selectLast([UserName, CommandLine])")
            return tuple(ir.AggFunc("selectLast", f, f) for f in fields)
        if spec.name in ("selectFromMax", "selectFromMin"):
            example = f"{spec.name}(@timestamp, include=[UserName])"
            if "field" not in args:
                raise CqlValueError(f"{spec.name}() needs the field whose value picks the event, e.g. {example}",
                                    node.span)
            by = self.field_arg(args["field"])
            include = self.required_fields(node, args, "include", example)
            return tuple(ir.AggFunc(spec.name, f, f, by=by) for f in include)
        field = self.field_arg(args["field"]) if "field" in args else None
        output = self.field_arg(args["as"]) if "as" in args else AGGREGATE_OUTPUTS[spec.name]
        distinct = self.boolean(args["distinct"], "distinct") if "distinct" in args else False
        if spec.name != "count" and field is None:
            raise CqlValueError(f"{spec.name}() needs the field to aggregate, e.g. {spec.name}(Bytes)", node.span)
        if distinct and field is None:
            raise CqlValueError("count(distinct=true) needs the field whose distinct values it counts, "
                                "e.g. count(ComputerName, distinct=true)", node.span)
        return (ir.AggFunc(spec.name, field, output, distinct),)

    def required_fields(self, node: A.Call, args: dict[str, A.Expr], param: str, example: str) -> tuple[str, ...]:
        fields = self.field_list(args[param]) if param in args else ()
        if not fields:
            raise CqlValueError(f"{node.name}() needs {param}=[...] (at least one field), e.g. {example}", node.span)
        return fields

    def filtered_function(self, node: A.SubQuery) -> tuple[ir.AggFunc, ...]:
        """``{filter | f(...)}`` among groupBy()'s functions: ``f`` over the events of each group
        that pass the filter (functions-groupby: a subquery per group). Lowered as a scratch
        field set, before the aggregation, to what ``f`` reads (1 for a count of events) on
        exactly those events and absent on the others (a ``case`` with a ``*`` branch), and ``f``
        reading that field: a count of events then counts the events that have it. Subqueries
        that do more than filter and aggregate once stay opaque."""
        steps = self.subquery_steps(node)
        filters = [step for step in steps[:-1] if isinstance(step, ir.Filter)]
        last = steps[-1] if steps else None
        if not (isinstance(last, ir.Aggregate) and not last.keys and len(last.functions) == 1 and filters
                and len(filters) == len(steps) - 1):
            raise _Opaque("groupBy", "groupBy() with a subquery among its functions that does more than filter and "
                                     "then aggregate once: cqlx does not convert it")
        function = last.functions[0]
        if function.name not in _FILTERABLE:
            raise _Opaque("groupBy", f"{function.name}() in a subquery among groupBy()'s functions: cqlx does not "
                                     "convert it")
        self.scratch_count += 1
        scratch = f"_cqlx_where{self.scratch_count}"
        span = node.span
        value: ir.Expr = ir.Ref(function.field, span) if function.field is not None else ir.Lit(1, span)
        pred = filters[0].pred if len(filters) == 1 else ir.And(tuple(f.pred for f in filters), span)
        self.pre_steps.append(ir.Case((
            ir.CaseBranch((ir.Filter(pred, span), ir.Eval(scratch, value, span)), span),
            ir.CaseBranch((ir.Filter(ir.TrueP(span), span),), span)), span))
        return (dataclasses.replace(function, field=scratch),)

    def collect(self, node: A.Call, args: dict[str, A.Expr]) -> tuple[ir.AggFunc, ...]:
        """collect(fields, limit=2000, multival=true, separator="\\n") (functions-collect)."""
        fields = self.required_fields(node, args, "fields", "collect([CommandLine])")
        if "multival" in args and not self.boolean(args["multival"], "multival"):
            raise _Opaque("collect", "collect(multival=false) makes a row of each value; cqlx does not convert it")
        limit = self.whole_number(args["limit"], "limit", 1, 10**9) if "limit" in args else COLLECT_LIMIT_DEFAULT
        separator = self.word(args["separator"]) if "separator" in args else "\n"
        return tuple(ir.AggFunc("collect", f, f, limit=limit, separator=separator) for f in fields)

    def whole_number(self, value: A.Expr, name: str, low: int, high: int) -> int:
        word = self.word(value)
        if not re.fullmatch(r"[0-9]{1,10}", word) or not low <= int(word) <= high:
            raise CqlValueError(f"{name}={word} must be a whole number from {low:,} to {high:,}", value.span)
        return int(word)

    def top(self, call: A.Call, spec: FunctionSpec) -> list[ir.Step]:
        """``top(field, limit=10, sum=, max=, as=, percent=)`` is ``groupBy(field, function=count())
        | sort(_count, limit=10)`` (functions-top; sum= and max= change the function, as= its
        output); the two steps share the call's span, so canonical CQL writes ``top()`` back."""
        args = self.bind(call, spec)
        keys = self.required_fields(call, args, "field", "top(ImageFileName)")
        if len(set(keys)) != len(keys):
            raise CqlValueError("top() names a field twice", args["field"].span)
        if "rest" in args:
            raise _Opaque("top", "top(rest=...) adds a row that counts the other values; cqlx does not convert it")
        if "sum" in args and "max" in args:
            raise CqlValueError("top() takes sum= or max=, not both", call.span)
        name = "sum" if "sum" in args else "max" if "max" in args else "count"
        field = self.field_arg(args[name]) if name != "count" else None
        output = self.field_arg(args["as"]) if "as" in args else AGGREGATE_OUTPUTS[name]
        functions = [ir.AggFunc(name, field, output)]
        if "percent" in args and self.boolean(args["percent"], "percent"):
            if name == "max":
                raise _Opaque("top", "top(max=..., percent=true): a percentage of a maximum is not documented")
            functions.append(ir.AggFunc("percent", field, "percent"))
        self.check_outputs(keys, tuple(functions), [call] * len(functions))
        limit = self.whole_number(args["limit"], "limit", 1, GROUP_LIMIT_MAX) if "limit" in args else TOP_LIMIT_DEFAULT
        return [ir.Aggregate(keys, tuple(functions), None, span=call.span),
                ir.Order((ir.SortKey(output, True, "number"),), limit, span=call.span)]

    def time_buckets(self, call: A.Call, spec: FunctionSpec) -> list[ir.Step]:
        """``bucket(span, field, function, limit)`` and ``timeChart(series, span, function, limit)``:
        ``_bucket := `` the start of the event's time bucket (epoch ms, UTC), then a groupBy over
        ``_bucket`` and the series fields, keeping the ``limit`` series with the largest values
        (functions-bucket, functions-timechart). Both steps share the call's span. Without ``span=``
        (or with ``buckets=``, ``minSpan=``) the bucket size follows the search's time range, which the
        query does not hold: the stage stays opaque, as it does for ``unit=``."""
        args = self.bind(call, spec)
        for param, why in (("buckets", "divides the search's time range, which the query does not hold"),
                           ("minSpan", "bounds a bucket size that follows the search's time range"),
                           ("unit", "converts rates to another time unit; cqlx does not convert it")):
            if param in args:
                raise _Opaque(spec.name, f"{spec.name}({param}=...) {why}")
        if "span" not in args or self.word(args["span"]).lower() == "auto":
            raise _Opaque(spec.name, f"{spec.name}() without span= sizes its buckets by the search's time range, "
                                     "which the query does not hold")
        span = self.span_ms(args["span"], spec.name)
        series_param = "field" if spec.name == "bucket" else "series"
        keys = self.field_list(args[series_param]) if series_param in args else ()
        if "_bucket" in keys or len(set(keys)) != len(keys):
            raise CqlValueError(f"{spec.name}() names _bucket or a field twice", args[series_param].span)
        arguments: tuple[ir.Expr, ...] = (ir.Ref("@timestamp", call.span), ir.Lit(span, call.span))
        if "timezone" in args:
            zone = self.word(args["timezone"]).upper()
            arguments += (ir.Lit("UTC", args["timezone"].span),)  # canonical CQL writes it back
            if zone not in ("UTC", "Z", "GMT", "ETC/UTC") and _QUARTER_HOUR % span:
                raise _Opaque(spec.name, f"{spec.name}(timezone={self.word(args['timezone'])}) aligns buckets of "
                                         "this span to that time zone; cqlx aligns them to UTC")
        elif _QUARTER_HOUR % span:
            self.notes.append((call.span, f"{spec.name}() aligns buckets to the search's time zone, which the query "
                                          "does not hold; cqlx aligns them to UTC (timezone=UTC says so)"))
        functions = self.function_list(args.get("function"), ("_bucket", *keys), call)
        limit = None
        if keys:
            limit = (self.whole_number(args["limit"], "limit", 1, SERIES_LIMIT_MAX) if "limit" in args
                     else SERIES_LIMIT_DEFAULT)
        bucket = ir.Func(TIME_BUCKET, arguments, call.span)
        return [ir.Eval("_bucket", bucket, call.span),
                ir.Aggregate(("_bucket", *keys), functions, None, series_limit=limit, span=call.span)]

    def span_ms(self, value: A.Expr, name: str) -> int:
        """A relative time (``5m``, ``1hour``, ``"30s"``) in milliseconds. Spans that do not divide
        a day (weeks, months, ``7h``) align in ways LogScale does not document: kept opaque."""
        word = self.word(value).strip()
        match = re.fullmatch(r"(\d{1,9})\s*([A-Za-z]+)", word)
        unit = _SPAN_UNITS.get(match.group(2).lower()) if match else None
        if match is None or (unit is None and match.group(2).lower() not in _CALENDAR_UNITS):
            raise CqlValueError(f"span={word} is not a time span such as 30s, 5m, 1h or 1d", value.span)
        if unit is None or int(match.group(1)) == 0 or _DAY % (int(match.group(1)) * unit):
            raise _Opaque(name, f"{name}(span={word}): cqlx converts spans that divide a day (LogScale does not "
                                "document how longer or uneven spans align)")
        return int(match.group(1)) * unit

    def group_limit(self, value: A.Expr | None) -> int:
        if value is None:
            return GROUP_LIMIT_DEFAULT
        word = self.word(value)
        if word.lower() == "max":
            return GROUP_LIMIT_MAX
        if not re.fullmatch(r"[0-9]{1,9}", word) or not 1 <= int(word) <= GROUP_LIMIT_MAX:
            raise CqlValueError(f"limit={word} must be a whole number from 1 to {GROUP_LIMIT_MAX:,} or max",
                                value.span)
        return int(word)

    def order(self, call: A.Call, spec: FunctionSpec) -> ir.Order | ir.Filter:
        args = self.bind(call, spec)
        if spec.name in ("head", "tail"):
            return self.head_tail(call, spec.name, args)
        fields = self.field_list(args["field"]) if "field" in args else ("_count",)
        orders = self.per_field(args.get("order"), len(fields), self.sort_order)
        if "reverse" in args:  # deprecated (1.100): true sorts descending, false ascending (functions-sort)
            descending = self.boolean(args["reverse"], "reverse")
            if "order" in args and any(o != descending for o in orders):
                raise CqlValueError("order= and the deprecated reverse= disagree; keep order=", args["reverse"].span)
            orders = [descending] * len(fields)
        types = self.per_field(args.get("type"), len(fields), self.sort_type)
        keys = tuple(ir.SortKey(f, o, t) for f, o, t in zip(fields, orders, types, strict=True))
        return ir.Order(keys, self.limit(args.get("limit")), span=call.span)

    def head_tail(self, call: A.Call, name: str, args: dict[str, A.Expr]) -> ir.Order | ir.Filter:
        """``head(limit=200)`` keeps the oldest events, ``tail(limit=200)`` the newest, by @timestamp
        (functions-head, functions-tail). ``head(0)`` keeps none (head's minimum is 0, tail's 1)."""
        value = args.get("limit")
        if name == "head" and value is not None and self.word(value) == "0":
            return ir.Filter(ir.Not(ir.TrueP(call.span), call.span), call.span)
        key = ir.SortKey("@timestamp", name == "tail", "number")
        return ir.Order((key,), self.limit(value), origin=name, span=call.span)

    def boolean(self, value: A.Expr, name: str) -> bool:
        word = self.word(value).lower()
        if word not in ("true", "false"):
            raise CqlValueError(f"{name}={self.word(value)} is not a boolean; accepted: true, false", value.span)
        return word == "true"

    def per_field(self, value: A.Expr | None, count: int, convert: Callable[[A.Expr | None], T]) -> list[T]:
        if isinstance(value, A.Array):
            items = [convert(item) for item in value.items]
            if len(items) != count:
                raise CqlValueError(f"expected {count} values, one per sort field", value.span)
            return items
        return [convert(value)] * count

    def sort_order(self, value: A.Expr | None) -> bool:
        if value is None:
            return True  # desc is sort()'s default (functions-sort)
        word = self.word(value).lower()
        if word in ("ascending", "descending"):
            # Published queries write them; LogScale documents only asc and desc (functions-sort).
            raise _Opaque("sort", f"order={self.word(value)}: LogScale documents asc and desc; whether it takes "
                                  f"{self.word(value)} is not documented, and cqlx does not guess")
        if word not in SORT_ORDERS:
            raise CqlValueError(f"order={self.word(value)} is not a sort order; accepted: asc, desc",
                                value.span)
        return word == "desc"

    def sort_type(self, value: A.Expr | None) -> str:
        if value is None:
            return "number"  # functions-sort: type defaults to number
        word = self.word(value).lower()
        if word == "any":
            return "number"  # deprecated in 1.125, removed in 1.142; number is what replaced it
        if word not in SORT_TYPES:
            raise CqlValueError(f"type={self.word(value)} is not a sort type; accepted: "
                                + ", ".join(SORT_TYPES), value.span)
        return word

    def limit(self, value: A.Expr | None) -> int:
        if value is None:
            return ROW_LIMIT_DEFAULT
        word = self.word(value)
        if word.lower() == "max":
            return ROW_LIMIT_MAX
        if not re.fullmatch(r"[0-9]{1,9}", word) or not 1 <= int(word) <= ROW_LIMIT_MAX:
            raise CqlValueError(f"limit={word} must be a whole number from 1 to {ROW_LIMIT_MAX} or max",
                                value.span)
        return int(word)

    # ------------------------------------------------------------ arguments

    def spec(self, call: A.Call) -> FunctionSpec | None:
        """What cqlx knows of the function; None for one it keeps as an opaque stage."""
        return FUNCTIONS.get(call.name.lower())

    def known(self, call: A.Call) -> FunctionSpec:
        """The function's spec, or :class:`_Opaque` inside an expression."""
        spec = self.spec(call)
        if spec is None:
            opaque = self.opaque_spec(call)
            raise _Opaque(call.name, self.reason(call, opaque))
        return spec

    def bind(self, call: A.Call, spec: FunctionSpec) -> dict[str, A.Expr]:
        """Named arguments by name; one unnamed argument binds to the default parameter."""
        bound: dict[str, A.Expr] = {}
        for arg in call.args:
            name = arg.name if arg.name is not None else spec.default_param
            if name is None:
                raise CqlValueError(f"{spec.name}() takes no unnamed argument", arg.span)
            canonical = next((p for p in spec.params if p.lower() == name.lower()), None)
            if canonical is None:
                raise CqlValueError(f"{spec.name}() has no parameter {name!r}; accepted: "
                                    + ", ".join(spec.params), arg.span)
            if canonical in bound:
                raise CqlValueError(f"{spec.name}() got {canonical!r} twice", arg.span)
            bound[canonical] = self.resolve(arg.value)
        return bound

    def resolve(self, value: A.Expr) -> A.Expr:
        """An argument with its query parameters replaced by their values (as quoted text)."""
        if isinstance(value, A.Param):
            return A.StringLit(value.span, self.param(value))
        if isinstance(value, A.Array) and any(isinstance(item, A.Param) for item in value.items):
            return A.Array(value.span, tuple(self.resolve(item) for item in value.items))
        return value

    def word(self, value: A.Expr) -> str:
        """An argument that names something (a field, asc/desc, a number): not a glob or a regex."""
        if isinstance(value, A.FieldRef | A.StringLit | A.Number | A.BareValue):
            return _plain_text(value)
        raise CqlValueError("expected a word", value.span)

    def field_arg(self, value: A.Expr) -> str:
        if isinstance(value, A.FieldRef | A.StringLit):
            name = self.word(value)
            if not name:
                raise CqlValueError("a field name cannot be empty", value.span)
            return name
        raise CqlValueError("expected a field name", value.span)

    def field_list(self, value: A.Expr) -> tuple[str, ...]:
        if isinstance(value, A.Array):
            return tuple(self.field_arg(item) for item in value.items)
        return (self.field_arg(value),)

    # ------------------------------------------------------------ filters

    def filter(self, node: A.Node) -> ir.Pred:
        if isinstance(node, A.AndFilter):
            return ir.And((self.filter(node.left), self.filter(node.right)), node.span)
        if isinstance(node, A.OrFilter):
            return ir.Or((self.filter(node.left), self.filter(node.right)), node.span)
        if isinstance(node, A.NotFilter):
            return ir.Not(self.filter(node.operand), node.span)
        if isinstance(node, A.MatchAll):
            return ir.TrueP(node.span)
        if isinstance(node, A.ParamFilter):
            return self.param_filter(node)
        if isinstance(node, A.Comparison):
            return self.comparison(node.field.name, node.op, node.value, node.span)
        if isinstance(node, A.FnCompare):
            field_arg = A.Argument(node.field.span, "field", A.FieldRef(node.field.span, node.field.name))
            call = A.Call(node.call.span, node.call.name, node.call.name_span, (*node.call.args, field_arg))
            if self.spec(call) is None:
                return self.opaque_test(call, node.span)
            try:
                return self.filter_call(call)
            except _Opaque as opaque:
                return ir.OpaqueTest(opaque.name, self.source(node.span), opaque.reason, node.span)
        if isinstance(node, A.FreeText):
            value = node.value
            if isinstance(value, A.RegexLit):
                return ir.FreeText(unescape_regex(value.pattern), True, _flags(value.flags), node.span)
            return ir.FreeText(_plain_text(value), False, "", node.span)
        if isinstance(node, A.Call):
            if self.spec(node) is None:
                return self.opaque_test(node)
            try:
                return self.filter_call(node)
            except _Opaque as opaque:
                return ir.OpaqueTest(opaque.name, self.source(node.span), opaque.reason, node.span)
        raise CqlValueError("expected a filter", node.span)

    def param_filter(self, node: A.ParamFilter) -> ir.Pred:
        """``?{extra=*}`` as a filter: the parameter's value is the filter's text."""
        from cqlx.parser import parse as parse_text

        try:
            text = self.param(node.param)
        except _Opaque as opaque:
            return ir.OpaqueTest(opaque.name, self.source(node.span), opaque.reason, node.span)
        pipeline = parse_text(text)
        if not pipeline.stages:
            return ir.TrueP(node.span)
        inner = _Lowering(text, self.params)
        steps = inner.pipeline(pipeline)
        if not all(isinstance(s, ir.Filter) for s in steps):
            raise CqlValueError(f"query parameter ?{node.param.name} stands as a filter, but its value "
                                f"{text!r} is not one", node.span)
        preds = tuple(s.pred for s in steps if isinstance(s, ir.Filter))
        return preds[0] if len(preds) == 1 else ir.And(preds, node.span)

    def comparison(self, field: str, op: str, value: A.Node, span: Span) -> ir.Pred:
        if isinstance(value, A.Param):
            try:
                value = A.BareValue(value.span, self.param(value))
            except _Opaque as opaque:
                return ir.OpaqueTest(opaque.name, self.source(span), opaque.reason, span)
        if op == "<=>":
            return ir.OpaqueTest("<=>", self.source(span), "<=> links the events of correlate()'s queries to "
                                 "each other; outside correlate() there is nothing to link", span)
        if op.lower() == "like":
            return self.like(field, value, span)
        if op in ("=", "!="):
            pred = _value_predicate(field, value, span)
            return ir.Not(pred, span) if op == "!=" else pred
        number = _as_number(_plain_text(value)) if not isinstance(value, A.RegexLit | A.Star) else None
        if number is None:
            raise CqlValueError(f"expected a number after '{op}'", value.span)
        return ir.Cmp(field, op, number, span)

    def filter_call(self, call: A.Call) -> ir.Pred:
        spec = self.known(call)
        if spec.kind != "filter":
            raise CqlValueError(f"{spec.name}() is not a filter: use it as a pipeline stage of its own",
                                call.span)
        args = self.bind(call, spec)
        if spec.name == "test":
            if "expression" not in args:
                raise CqlValueError("test() needs an expression", call.span)
            return self.condition(args["expression"])
        special = {"regex": self.regex_test, "wildcard": self.wildcard, "cidr": self.cidr,
                   "text:contains": self.text_contains, "array:contains": self.array_test,
                   "array:regex": self.array_test}.get(spec.name.lower())
        if special is not None:
            return special(call, args)
        # in(field, values=[...], ignoreCase=false)
        if "field" not in args or "values" not in args:
            raise CqlValueError("in() needs a field and values=[...]", call.span)
        values = args["values"]
        items = values.items if isinstance(values, A.Array) else (values,)
        texts = tuple("*" if isinstance(item, A.Star) else _plain_text(item) for item in items)
        ignore = self.boolean(args["ignoreCase"], "ignoreCase") if "ignoreCase" in args else False
        return ir.In(self.field_arg(args["field"]), texts, ignore, call.span)

    # ------------------------------------------------------------ expressions

    def expr(self, node: A.Expr) -> ir.Expr:
        if isinstance(node, A.Number):
            return ir.Lit(_number(node.text, node.span), node.span)
        if isinstance(node, A.StringLit):
            return ir.Lit(node.value, node.span)
        if isinstance(node, A.FieldRef):
            return ir.Ref(node.name, node.span)
        if isinstance(node, A.Param):
            return ir.Lit(self.param(node), node.span)
        if isinstance(node, A.Binary):
            if node.op in _ARITH:
                return ir.Arith(node.op, self.expr(node.left), self.expr(node.right), node.span)
            raise CqlValueError(f"a comparison ('{node.op}') is not a value: wrap it in if() or test()",
                                node.span)
        if isinstance(node, A.Unary):
            if node.op == "-":
                return ir.Arith("-", ir.Lit(0), self.expr(node.operand), node.span)
            raise CqlValueError("'!' negates a condition, not a value", node.span)
        if isinstance(node, A.Call):
            spec = self.known(node)
            if spec.kind != "value":
                raise CqlValueError(f"{spec.name}() does not produce a value", node.span)
            return self.call_value(node, spec)
        raise CqlValueError("expected a value or an expression", node.span)

    def call_value(self, call: A.Call, spec: FunctionSpec) -> ir.Expr:
        if spec.name == "if":
            return self.if_call(call)
        if spec.name in lower_values.NAMES:
            return lower_values.expression(self, call, spec)
        args = self.bind(call, spec)
        if "field" not in args:
            raise CqlValueError(f"{spec.name}() needs a field", call.span)
        self.casing_locale(spec.name, args.get("locale"))
        target = args["field"]
        inner = ir.Ref(target.value, target.span) if isinstance(target, A.StringLit) else self.expr(target)
        return ir.Func(spec.name, (inner,), call.span)

    def casing_locale(self, function: str, locale: A.Expr | None) -> None:
        """lower(), upper() and lowercase() with ``locale=``: the same as without one, but in the
        languages whose casing differs (:data:`_CASING_LANGUAGES`), which cqlx does not convert."""
        if locale is None:
            return
        word = self.word(locale)
        if re.split(r"[_-]", word)[0].lower() in _CASING_LANGUAGES:
            raise _Opaque(function, f"{function}(locale={word}): that language cases i and I its own way "
                                    "(Unicode SpecialCasing), which cqlx does not convert")

    def if_call(self, call: A.Call) -> ir.Cond:
        """Both dialects: ``if(c, then=a, else=b)`` and ``if(field = /re/, a, b)``."""
        named: dict[str, A.Expr] = {}
        dialect: list[str] = []
        condition: ir.Pred | None = None
        positional: list[A.Argument] = []
        for arg in call.args:
            key = arg.name.lower() if arg.name is not None else None
            if key in ("then", "else", "as", "condition"):
                named[key] = arg.value
            elif arg.name is not None:
                if condition is not None:
                    raise CqlValueError("if() takes one condition", arg.span)
                # Dialect 2: a filter as the condition (`CommandLine = /re/i`).
                condition = self.test_only(self.comparison(arg.name, "=", arg.value, arg.span))
                dialect.append("a filter as its condition")
            else:
                positional.append(arg)
        if condition is None:
            source = named.get("condition") or (positional.pop(0).value if positional else None)
            if source is None:
                raise CqlValueError("if() needs a condition", call.span)
            condition = self.condition(source)
        slots = [s for s in ("then", "else") if s not in named]
        if len(positional) > len(slots):
            raise CqlValueError("if() takes a condition, then and else", positional[len(slots)].span)
        for slot, arg in zip(slots, positional, strict=False):
            named[slot] = arg.value
        if positional:
            dialect.append("positional " + " and ".join(slots[:len(positional)]))
        if "then" not in named or "else" not in named:
            raise CqlValueError("if() needs both then= and else=", call.span)
        if dialect:
            self.notes.append((call.span, "if() with " + ", ".join(dialect) + " is the detection-library "
                               "dialect, not LogScale syntax (LogScale: if(test(...), then=..., else=...) "
                               "or case { })"))
        return ir.Cond(condition, self.expr(named["then"]), self.expr(named["else"]), call.span)

    def condition(self, node: A.Expr) -> ir.Pred:
        """An expression used as a condition (``test()``, ``if()``)."""
        if isinstance(node, A.Binary) and node.op in _COMPARE:
            left, right = node.left, node.right
            if node.op == "==" and isinstance(left, A.FieldRef) and isinstance(right, A.StringLit):
                return ir.Eq(left.name, right.value, False, node.span)
            # A field against a number is a Cmp, however the number is written (5, duration(5m)):
            # decided on the lowered sides, so canonical CQL reads back as the same test.
            low_left, low_right = self.expr(left), self.expr(right)
            number = _number_value(low_right)
            if isinstance(low_left, ir.Ref) and number is not None:
                return ir.Cmp(low_left.field, node.op, number, node.span)
            number = _number_value(low_left)
            if number is not None and isinstance(low_right, ir.Ref):
                mirror = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
                return ir.Cmp(low_right.field, mirror[node.op], number, node.span)
            return ir.ExprTest(node.op, low_left, low_right, node.span)
        if isinstance(node, A.Unary) and node.op == "!":
            return ir.Not(self.condition(node.operand), node.span)
        if isinstance(node, A.Call):
            return self.filter_call(node)
        raise CqlValueError("expected a condition such as a == b or x >= 3", node.span)

    # ------------------------------------------------------------ filter stages and filter functions

    def filter_stage(self, node: A.Node) -> list[ir.Step]:
        """A filter stage. A conjunct that is ``field = /re/`` with named groups, or a ``regex()``
        call, extracts fields (syntax-fields; functions-regex), and the conjuncts after it may test
        them: implicit AND is a pipe (syntax-filters), so the stage is cut there into filters and
        :class:`ir.Extract` steps, in order. A stage without one is a single filter, as before."""
        parts = _and_parts(node)
        if not any(self.extracts(part) for part in parts):
            return [ir.Filter(self.filter(node), node.span)]
        steps: list[ir.Step] = []
        pending: list[A.Node] = []

        def flush() -> None:
            if pending:
                preds = tuple(self.filter(part) for part in pending)
                span = _cover([part.span for part in pending])
                steps.append(ir.Filter(preds[0] if len(preds) == 1 else ir.And(preds, span), span))
                pending.clear()

        for part in parts:
            if self.extracts(part):
                flush()
                steps.extend(self.extraction(part))
            else:
                pending.append(part)
        flush()
        return steps

    def regex_call(self, node: A.Node) -> A.Call | None:
        """``regex(...)`` or ``field =~ regex(...)`` (as ``regex(..., field=field)``), else None."""
        if isinstance(node, A.Call) and node.name.lower() == "regex":
            return node
        if isinstance(node, A.FnCompare) and node.call.name.lower() == "regex":
            field_arg = A.Argument(node.field.span, "field", A.FieldRef(node.field.span, node.field.name))
            return A.Call(node.span, node.call.name, node.call.name_span, (*node.call.args, field_arg))
        return None

    def extracts(self, node: A.Node) -> bool:
        """Whether a conjunct of a filter stage is an extraction (a ``regex()`` call, which may
        also keep every event, or a regex filter with named groups)."""
        if self.regex_call(node) is not None:
            return True
        return (isinstance(node, A.Comparison) and node.op == "=" and isinstance(node.value, A.RegexLit)
                and bool(named_groups(unescape_regex(node.value.pattern))))

    def extraction(self, node: A.Node) -> list[ir.Step]:
        call = self.regex_call(node)
        if call is None:
            assert isinstance(node, A.Comparison) and isinstance(node.value, A.RegexLit)
            pattern = unescape_regex(node.value.pattern)
            return self.extract(node.field.name, pattern, _flags(node.value.flags), True, node.span)
        try:
            args = self.bind(call, FUNCTIONS["regex"])
            field, pattern, flags, strict = self.regex_arguments(call, args)
            each = self.repeat_limit(call, args, pattern)
        except _Opaque as opaque:
            return [ir.Opaque(opaque.name, self.source(node.span), ir.FILTERS, None, opaque.reason, node.span)]
        return self.extract(field, pattern, flags, strict, node.span, each)

    def extract(self, field: str, pattern: str, flags: str, strict: bool, span: Span, each: int = 0
                ) -> list[ir.Step]:
        self.check_groups(pattern, span)
        groups = named_groups(pattern)
        if each:
            return [ir.Extract(field, pattern, flags, groups, strict, span, each)]
        if not groups:  # a regex() without named groups filters (strict) or does nothing
            return [ir.Filter(ir.Regex(field, pattern, flags, span), span)] if strict else []
        if "g" in flags:
            return [ir.Opaque("/regex/g", self.source(span), ir.FILTERS, groups,
                              "a /regex/g with named groups extracts every match (syntax-regex-flags); cqlx does "
                              "not convert repeated extraction", span)]
        return [ir.Extract(field, pattern, flags, groups, strict, span)]

    def test_only(self, pred: ir.Pred) -> ir.Pred:
        """The seed dialect's ``if(field = /re/, ...)`` tests its regex and extracts nothing
        (LogScale's ``if()`` takes an expression, which has no regex; ``case { }`` extracts): its
        named groups become plain groups, which match the same text."""
        if isinstance(pred, ir.Regex) and named_groups(pred.pattern):
            self.notes.append((pred.span, "the regex's named groups extract nothing in an if() condition; write "
                                          "case { field=/re/ | ... ; * | ... } to extract them"))
            return ir.Regex(pred.field, unname_groups(pred.pattern), pred.flags, pred.span)
        return pred

    def check_groups(self, pattern: str, span: Span) -> None:
        bad = bad_group_name(pattern)
        if bad is None:
            return
        if named_groups(pattern).count(bad) > 1:
            raise CqlValueError(f"the regex names the group {bad!r} twice; LogScale refuses that", span)
        raise CqlValueError(f"the group name {bad!r} is not a field name cqlx can write: use ASCII letters, "
                            "digits and _", span)

    def regex_arguments(self, call: A.Call, args: dict[str, A.Expr]) -> tuple[str, str, str, bool]:
        """``regex()``'s field, pattern, flags and strict (functions-regex: field defaults to
        @rawstring, flags to m, strict to true); :class:`_Opaque` for ``repeat=true``."""
        if "regex" not in args:
            raise CqlValueError('regex() needs a regular expression, e.g. regex("user=(?<user>\\\\S+)")', call.span)
        given = args["regex"]
        if not isinstance(given, A.StringLit | A.FieldRef | A.BareValue | A.Number):
            raise CqlValueError("regex() takes its regular expression as a quoted string (functions-regex)",
                                given.span)
        pattern = unescape_regex(_plain_text(given))
        if not pattern:
            raise CqlValueError("regex() needs a regular expression that is not empty", given.span)
        field = self.field_arg(args["field"]) if "field" in args else "@rawstring"
        flags = REGEX_DEFAULT_FLAGS
        if "flags" in args:
            word = self.word(args["flags"])
            if set(word) - set(REGEX_FLAGS):
                raise CqlValueError(f"flags={word!r}: regex() accepts the flags d, i, m and F", args["flags"].span)
            flags = _flags(word)
        strict = self.boolean(args["strict"], "strict") if "strict" in args else True
        if "limit" in args:
            self.limit_word(args["limit"])
        return field, pattern, flags, strict

    def repeat_limit(self, call: A.Call, args: dict[str, A.Expr], pattern: str) -> int:
        """``regex(repeat=true)``: the most rows one event makes (``limit=``, default 100:
        functions-regex), or 0 for the first match only. :class:`_Opaque` for what cqlx does not
        convert: no named group (copies of the event, one per match), ``limit=max``."""
        if "repeat" not in args or not self.boolean(args["repeat"], "repeat"):
            return 0
        if not named_groups(pattern):
            raise _Opaque(call.name, "regex(repeat=true) without a named group makes a copy of the event for each "
                                     "match; cqlx does not convert it")
        limit = self.word(args["limit"]) if "limit" in args else str(REPEAT_LIMIT)
        if not limit.isdigit() or int(limit) < 1:
            raise _Opaque(call.name, f"regex(repeat=true, limit={limit}): the most events LogScale makes of one is "
                                     "not documented for this limit; give a number")
        return int(limit)

    def limit_word(self, value: A.Expr) -> None:
        word = self.word(value)
        if word.lower() != "max" and not re.fullmatch(r"[0-9]{1,9}", word):
            raise CqlValueError(f"limit={word} must be a whole number or max", value.span)

    def regex_test(self, call: A.Call, args: dict[str, A.Expr]) -> ir.Pred:
        """``regex()`` inside a boolean expression (``not regex(...)``, an ``or``): a test; its named
        groups extract nothing there (reported when a later step reads them)."""
        field, pattern, flags, strict = self.regex_arguments(call, args)
        self.check_groups(pattern, call.span)
        if self.repeat_limit(call, args, pattern):
            raise _Opaque(call.name, "regex(repeat=true) inside a test makes one event of each match there; cqlx "
                                     "does not convert it")
        return ir.Regex(field, pattern, flags, call.span) if strict else ir.TrueP(call.span)

    def wildcard(self, call: A.Call, args: dict[str, A.Expr]) -> ir.Pred:
        """``wildcard(pattern, field=[...], ignoreCase, includeEverythingOnAsterisk)``: the glob over
        each field's whole value (functions-wildcard examples: ``pattern=horse, ignoreCase=true`` is
        ``animal=/\\Ahorse\\z/i``); with several fields, any of them (an or)."""
        if "pattern" not in args:
            raise CqlValueError('wildcard() needs a pattern, e.g. wildcard(field=CommandLine, pattern="*whoami*")',
                                call.span)
        pattern = self.pattern_text(args["pattern"], "wildcard()")
        ignore = self.boolean(args["ignoreCase"], "ignoreCase") if "ignoreCase" in args else False
        everything = (self.boolean(args["includeEverythingOnAsterisk"], "includeEverythingOnAsterisk")
                      if "includeEverythingOnAsterisk" in args else False)
        if "field" not in args:
            raise _Opaque(call.name, "wildcard() without field= searches every field of the event; cqlx converts it "
                                     "with field= only")
        fields = self.field_list(args["field"])
        if not fields:
            raise CqlValueError("wildcard() needs at least one field", args["field"].span)
        if not pattern:
            raise _Opaque(call.name, "wildcard() with an empty pattern: LogScale does not document what it matches")
        if pattern == "*" and everything:
            return ir.TrueP(call.span)
        tests = tuple(_glob_test(field, pattern, ignore, call.span) for field in fields)
        return tests[0] if len(tests) == 1 else ir.Or(tests, call.span)

    def pattern_text(self, value: A.Expr, where: str) -> str:
        if isinstance(value, A.Star):
            return "*"
        if isinstance(value, A.StringLit | A.BareValue | A.FieldRef | A.Number):
            return _plain_text(value)
        raise CqlValueError(f"{where} takes one pattern, a quoted string or a glob such as *.exe", value.span)

    def cidr(self, call: A.Call, args: dict[str, A.Expr]) -> ir.Pred:
        """``cidr(field, subnet=[...])`` (functions-cidr). The deprecated ``negate=true`` lets only
        addresses outside the subnets through, where ``!cidr()`` also keeps events without the
        field: read as the field present and not in the subnets."""
        if "field" not in args:
            raise CqlValueError('cidr() needs a field, e.g. cidr(RemoteAddressIP4, subnet="10.0.0.0/8")', call.span)
        field = self.field_arg(args["field"])
        if "file" in args or "column" in args:
            raise _Opaque(call.name, "cidr(file=..., column=...) reads its subnets from an uploaded lookup file, "
                                     "which the query does not hold")
        if "subnet" not in args:
            raise CqlValueError('cidr() needs subnet=[...], e.g. cidr(aip, subnet=["10.0.0.0/8"])', call.span)
        value = args["subnet"]
        items = value.items if isinstance(value, A.Array) else (value,)
        subnets = tuple(dict.fromkeys(self.subnet(item) for item in items))
        if not subnets:
            raise CqlValueError("cidr() needs at least one subnet", value.span)
        pred = ir.Cidr(field, subnets, call.span)
        if "negate" in args and self.boolean(args["negate"], "negate"):
            self.notes.append((call.span, "cidr(negate=true) is deprecated since LogScale 1.100; write !cidr(...), "
                                          "which also keeps events without the field (cqlx reads negate=true as: "
                                          "the field is present and outside the subnets)"))
            return ir.And((ir.Exists(field, call.span), ir.Not(pred, call.span)), call.span)
        return pred

    def subnet(self, value: A.Expr) -> str:
        if not isinstance(value, A.StringLit | A.BareValue | A.FieldRef | A.Number):
            raise CqlValueError('a subnet is a quoted string such as "10.0.0.0/8"', value.span)
        text = _plain_text(value)
        import ipaddress  # only rules with cidr() need it

        try:
            return str(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise CqlValueError(f"{text!r} is not an IPv4 or IPv6 subnet (such as 10.0.0.0/8 or 2001:db8::/32)",
                                value.span) from None

    def text_contains(self, call: A.Call, args: dict[str, A.Expr]) -> ir.Pred:
        """``text:contains(string, substring)``, case-sensitive (functions-text-contains: with a field
        and a quoted substring it is ``field = /substring/``). Both may be expressions; cqlx
        converts a field and a quoted substring."""
        if "string" not in args or "substring" not in args:
            raise CqlValueError('text:contains() needs a string and a substring, e.g. '
                                'text:contains(string=CommandLine, substring="whoami")', call.span)
        string, substring = args["string"], args["substring"]
        if isinstance(string, A.FieldRef) and isinstance(substring, A.StringLit):
            return _contains_test(string.name, substring.value, call.span)
        raise _Opaque(call.name, "text:contains() of a computed string or substring; cqlx converts a field and a "
                                 "quoted substring")

    def array_test(self, call: A.Call, args: dict[str, A.Expr]) -> ir.Pred:
        """``array:contains("a[]", value=v)`` and ``array:regex("a[]", regex=r, flags=i)``: some
        element of the array equals ``v`` / matches ``r`` (flags d, i, m; none by default:
        functions-array-regex). cqlx converts an array named ``name[]``; a nested one (``a[0].b[]``,
        ``a[].b``) stays opaque."""
        name = call.name.lower()
        example = 'array:regex("Commands[]", regex="get")' if name == "array:regex" else \
            'array:contains("Commands[]", value="get")'
        wanted = "regex" if name == "array:regex" else "value"
        if "array" not in args or wanted not in args:
            raise CqlValueError(f"{call.name}() needs the array and {wanted}=, e.g. {example}", call.span)
        given = self.word(args["array"])
        if not given.endswith("[]"):
            raise CqlValueError(f"{call.name}() takes the array as its name with [] (\"{given}[]\"), e.g. {example}",
                                args["array"].span)
        array = given[:-2]
        if not array or "[" in array or "]" in array:
            raise _Opaque(call.name, f"{call.name}() of a nested array ({given}): cqlx converts an array "
                                     "named name[]")
        element = f"{array}[]"
        if name == "array:contains":
            return ir.ArrayAny(array, ir.Eq(element, self.word(args["value"]), False, call.span), call.span)
        pattern = unescape_regex(self.word(args["regex"]))
        if not pattern:
            raise CqlValueError("array:regex() needs a regular expression that is not empty", args["regex"].span)
        flags = ""
        if "flags" in args:
            word = self.word(args["flags"])
            if set(word) - set("dim"):
                raise CqlValueError(f"flags={word!r}: array:regex() accepts the flags d, i and m",
                                    args["flags"].span)
            flags = _flags(word)
        if named_groups(pattern):  # regex() extracts them; whether array:regex() does is not documented
            raise _Opaque(call.name, "array:regex() with named groups: the documentation does not say whether "
                                     "it extracts them")
        return ir.ArrayAny(array, ir.Regex(element, pattern, flags, call.span), call.span)

    def like(self, field: str, value: A.Node, span: Span) -> ir.Pred:
        """``field like "text"``: the value contains the text, case-sensitive (syntax-operators:
        ``class like "Bucket"`` is ``class like "*Bucket*"``). With a ``*`` the page says both
        "contains" and "begins with foo and ends with bar": cqlx does not guess."""
        if isinstance(value, A.RegexLit):
            raise CqlValueError("like takes a string, not a /regex/ (write field = /regex/)", value.span)
        text = _plain_text(value) if not isinstance(value, A.Star) else "*"
        if "*" in text:
            return ir.OpaqueTest("like", self.source(span), "like with a '*': LogScale's docs say both that the value "
                                 "contains the pattern and that it begins and ends with its parts; cqlx converts like "
                                 "without '*' only", span)
        return _contains_test(field, text, span)


def _and_parts(node: A.Node) -> list[A.Node]:
    """The conjuncts of a filter (implicit or explicit AND), left to right."""
    if isinstance(node, A.AndFilter):
        return _and_parts(node.left) + _and_parts(node.right)
    return [node]


def _cover(spans: Sequence[Span]) -> Span:
    """The span from the first to the last of ``spans``."""
    first, last = min(spans), max(spans, key=lambda s: (s.end_line, s.end_column))
    return Span(first.line, first.column, last.end_line, last.end_column)


def _glob_test(field: str, pattern: str, ignore_case: bool, span: Span) -> ir.Pred:
    """``field`` matches the glob over its whole value (``*`` alone: the field is present)."""
    if pattern == "*":
        return ir.Exists(field, span)
    if ignore_case:
        return ir.In(field, (pattern,), True, span)  # in() takes globs and ignoreCase (functions-in)
    return ir.Glob(field, pattern, False, span) if "*" in pattern else ir.Eq(field, pattern, False, span)


def _literal_regex(text: str) -> str:
    """A regex matching ``text`` literally (Java and the targets escape the same metacharacters)."""
    return "".join("\\" + c if c in "\\^$.|?*+()[]{}" else c for c in text)


def _contains_test(field: str, text: str, span: Span) -> ir.Pred:
    """``field`` contains ``text`` (case-sensitive): a glob when ``text`` holds no ``*`` (which a glob
    cannot escape), else a regex; the empty text is in every value, so the field need only exist."""
    if not text:
        return ir.Exists(field, span)
    if "*" in text:
        return ir.Regex(field, _literal_regex(text), "", span)
    return ir.Glob(field, f"*{text}*", False, span)

from cqlx import lower_values  # noqa: E402  # it builds on _Lowering, defined above

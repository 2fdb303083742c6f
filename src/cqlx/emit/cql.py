"""IR → canonical LogScale (CQL), one method per IR node.

CQL → CQL is exact: the output parses back (grammar/cql.lark, the lowering, the passes) to the very
IR it was written from, and the emitter checks that before it hands the text over. "Canonical" means:

- the seed dialect's ``F := if(CommandLine = /re/i, "YES", "NO")`` is written as LogScale documents
  it, ``case { CommandLine=/re/i | F := "YES" ; * | F := "NO" }`` (functions-if: ``if()`` *is* that
  case; its condition is an expression, which has no regex); a signal writes its flag and its score
  in one ``case``, a severity ladder is one ``case`` with a branch per tier; an ``if()`` whose
  condition is an expression stays ``if(cond, then=..., else=...)`` with named then/else;
- precedence LogScale readers trip over is spelled out: an ``or`` under an ``and`` and an ``and``
  under an ``or`` are parenthesised (``NOT`` > ``OR`` > ``AND``, so ``a b or c`` is ``a and (b or
  c)``), ``not`` over a group takes parentheses, and conjunctions use an explicit ``and``;
- values are bare words when the lexer reads them back unchanged, quoted otherwise (``\\``, ``"`` and
  a line break escaped; LogScale strings know no other escape); ``*`` is a wildcard even quoted, so
  a value holding one that is not a glob goes through ``test(f == "...")``; regexes are ``/.../flags``
  with ``/`` escaped again; field names that are not plain names, or are keywords, are quoted;
- the rule's source (``#event_simpleName``, ``event_platform``) comes first, as tag filters;
  defaults (``sort()``'s ``desc``, ``number``, 200 rows; ``ignoreCase=false``) are left out.

What the IR does not keep cannot come back, and the emitter, which sees only the IR, does not report
it: comments, the spelling of the event-type and platform fields (``event_simpleName`` is written
``#event_simpleName``), conditions repeated or negated twice, ``limit=max`` (written 200000),
``type=any`` (``number``), ``lower()``'s ``locale`` and ``sort()``'s ``reverse`` (which the lowering
ignores). A ``table()`` is recognised by its two steps sharing the call's span.

Field names are LogScale's own: no profile applies (:func:`identity_profile`).
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

from cqlx import ir
from cqlx.emit.base import PRESENTATION, Generator
from cqlx.errors import CqlError, UnsupportedError
from cqlx.functions import (
    AGGREGATE_OUTPUTS,
    COLLECT_LIMIT_DEFAULT,
    GROUP_LIMIT_DEFAULT,
    ROW_LIMIT_DEFAULT,
    SERIES_LIMIT_DEFAULT,
    TIME_BUCKET,
    TOP_LIMIT_DEFAULT,
    span_text,
)
from cqlx.profiles import EventType, Profile
from cqlx.regexes import named_groups
from cqlx.valuefns import DEFAULT_OUTPUT, FROM_INPUT, LAYOUTS, named_arguments

# grammar/cql.lark's NAME: what may stand unquoted as a field name (and, in an expression, must).
_NAME = re.compile(r"[#@]?[A-Za-z_][A-Za-z0-9_.]*(?::[A-Za-z_][A-Za-z0-9_.]*)*(?:\[\d+\])*")
# Words the lexer reads as keywords where a filter may continue (`and`, `or`, `not`).
_KEYWORDS = frozenset({"and", "or", "not"})
# A bare value that grammar/cql.lark's VALUE reads back as itself: no quote, bracket, operator,
# separator or space; no leading `/` (a regex) and no `//` or `/*` (comments), for the reader's sake;
# no leading `~`, which would make `f=~x` the `=~` of `f =~ fn()`.
_BARE = re.compile(r"[A-Za-z0-9_.:@#\\+\-*][A-Za-z0-9_.:@#\\+\-~*/]*")
# grammar/cql.lark's NUMBER: the only number an expression can hold (no sign, no exponent).
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# if() parameters: a dialect-2 condition on a field of one of these names would bind to it instead.
_IF_PARAMS = frozenset({"condition", "then", "else", "as"})
#: Parameters whose value is a word, written bare (what lowering reads with word()).
_WORD_PARAMETERS = frozenset({"how", "unit", "ignoreEmpty", "binary"})
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2}
_UNARY = 3
_ATOM = 4


def identity_profile() -> Profile:
    """LogScale itself as the target: every field keeps its name, no event type is mapped."""
    return Profile(name="logscale", language="cql", title="CrowdStrike Falcon LogScale", regex="java",
                   unmapped="identity", missing="null", event_types={}, tables={}, platforms={}, path="")


# ---------------------------------------------------------------- lexical forms


def string(value: str) -> str:
    """A LogScale string literal: ``\\"``, ``\\\\`` and ``\\n`` are its only escapes (CQL.md), so
    every other character, control characters included, stands for itself."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def field_name(name: str) -> str:
    """A field where a filter, an assignment or a list of fields names it: bare or quoted."""
    if _NAME.fullmatch(name) and name.lower() not in _KEYWORDS:
        return name
    return string(name)


def is_plain_name(name: str) -> bool:
    """Whether an expression can refer to the field (a quoted word there is a string literal)."""
    return _NAME.fullmatch(name) is not None


def value(text: str, glob: bool = False) -> str:
    """The right side of ``field=``: a bare word when it reads back unchanged, else a string.
    A bare ``*`` means "the field exists", so the glob ``*`` is quoted."""
    if (_BARE.fullmatch(text) and ("*" not in text or glob) and text != "*" and "//" not in text
            and "/*" not in text and text.lower() not in _KEYWORDS):
        return text
    return string(text)


def regex(pattern: str, flags: str) -> str:
    """``/pattern/flags``: the IR holds the pattern with LogScale's ``\\/`` escape removed, so each
    plain ``/`` is escaped again and every other escape pair is copied as it is."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(pattern[index:index + 2])
            index += 2
            continue
        out.append("\\/" if char == "/" else char)
        index += 1
    return "/" + "".join(out) + "/" + flags


def literal_reads_back(pattern: str, flags: str) -> bool:
    """Whether ``/pattern/flags`` is one regex literal to the grammar (an unbalanced ``[`` is not:
    a ``/`` in a character class does not end the literal)."""
    from cqlx.parser import _parser

    terminal = re.compile(_parser().get_terminal("REGEX").pattern.to_regexp())
    return terminal.fullmatch(regex(pattern, flags)) is not None


def regex_call(field: str, pattern: str, flags: str, strict: bool = True, each: int = 0) -> str:
    """``regex("pattern", field=..., flags=...)``: the same test (and extraction) as ``field=/pattern/``
    for any pattern (functions-regex; flags= written out, its default is m); ``each``: with
    ``repeat=true`` and its limit written out."""
    return (f"regex({string(pattern)}, field={field_name(field)}, flags={string(flags)}"
            + ("" if strict else ", strict=false") + (f", repeat=true, limit={each}" if each else "") + ")")


def filter_number(number: int | float) -> str:
    """A number after ``<``, ``>=``...: a bare value, where a sign and an exponent are fine."""
    return str(number) if isinstance(number, int) else repr(float(number))


def expr_number(number: int | float) -> str | None:
    """A number as an expression can hold it (digits, an optional fraction), or None. A float keeps
    its ``.`` so it reads back as a float, not as an int of the same digits."""
    if isinstance(number, bool) or number < 0:
        return None
    if isinstance(number, int):
        return str(number)
    text = format(Decimal(repr(float(number))), "f")
    if "." not in text:
        text += ".0"
    return text if _NUMBER.fullmatch(text) and float(text) == number else None


def _filter_scratch(step: ir.Step) -> tuple[str, ir.Pred, ir.Expr] | None:
    """``case { filter | _cqlx_whereN := value ; * }`` (a ``{filter | function}``'s scratch field,
    cqlx.lower): its field, filter and value; None for any other step."""
    if not isinstance(step, ir.Case) or len(step.branches) != 2:
        return None
    taken, rest = step.branches
    if rest.steps != (ir.Filter(ir.TrueP()),) or len(taken.steps) != 2:
        return None
    test, assign = taken.steps
    if not (isinstance(test, ir.Filter) and isinstance(assign, ir.Eval) and assign.field.startswith("_cqlx_where")
            and (isinstance(assign.expr, ir.Ref) or assign.expr == ir.Lit(1))):
        return None
    return assign.field, test.pred, assign.expr


def same_ir(left: object, right: object) -> bool:
    """IR equality (dataclass ``==``: spans and notes excluded) without recursion, so that a sum of
    hundreds of terms, which parses, also compares."""
    pending = [(left, right)]
    while pending:
        a, b = pending.pop()
        if dataclasses.is_dataclass(a) and not isinstance(a, type):
            if type(a) is not type(b):
                return False
            pending.extend((getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a) if f.compare)
        elif isinstance(a, tuple):
            if not isinstance(b, tuple) or len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif dataclasses.is_dataclass(b) or isinstance(b, tuple) or a != b:
            return False
    return True


def _literal_regex(text: str) -> str:
    """A Java regex body matching ``text`` literally (for an equality LogScale has no syntax for)."""
    return "".join("\\" + c if c in "\\^$.|?*+()[]{}" else c for c in text)


class CqlGenerator(Generator):
    #: A subquery's generator (join(), defineTable()): the top-level one writes the ad-hoc tables
    #: (LogScale takes them at the top of the query alone) and parses the whole text back.
    nested: bool = False

    def __post_init__(self) -> None:
        self.wheres: dict[str, tuple[ir.Pred, ir.Expr]] = {}  # filtered functions' scratch fields
        self.target = self.target or "cql"
        super().__post_init__()

    def resolve_event_type(self) -> EventType | None:
        return None  # LogScale reads Falcon's own events: nothing to map, nothing to report

    def generate(self) -> str:
        stages = [] if self.nested else self.table_definitions()
        stages += self.source()
        steps = self.query.steps
        index = 0
        while index < len(steps):
            step = steps[index]
            folded = self.filtered_functions(steps, index)
            if folded is not None:  # written back inside the aggregation as {filter | function}
                index = folded
                continue
            after = steps[index + 1] if index + 1 < len(steps) else None
            if isinstance(step, ir.Order) and isinstance(after, ir.Project) and len(step.keys) == 1 \
                    and step.span != ir.NO_SPAN and step.span == after.span:
                stages.append(self.table(step, after))  # both came from one table() call
                index += 2
                continue
            if isinstance(step, ir.Totals) and isinstance(after, ir.Order):  # stats([sum(x), sort(y)])
                calls = [*self.agg_calls(step.functions, step.span), self.step_order(after)]
                stages.append(f"stats([{', '.join(calls)}])")
                index += 2
                continue
            paired = self.paired_call(step, after)  # top(), bucket(): two steps from one call
            if paired is not None:
                stages.append(paired)
                index += 2
                continue
            renamed = self.renames(steps, index)
            if renamed is not None:
                stages.append(renamed[0])
                index = renamed[1]
                continue
            stages.append(self.step(step))
            index += 1
        text = "\n| ".join(stages or ["*"]) + "\n"
        if not self.nested:
            self.verify(text)
        return text

    def subquery(self, query: ir.Query) -> str:
        """A subquery's text on one line, written by a nested generator whose losses are ours."""
        sub = CqlGenerator(query, self.profile)
        sub.nested = True
        body = sub.generate().rstrip("\n").replace("\n", " ")
        for diagnostic in sub.diagnostics:
            self.unsupported(diagnostic.message, diagnostic.span, diagnostic.kind)
        return body

    def table_definitions(self) -> list[str]:
        """``defineTable(query={...}, name="t", include=[...])`` for each ad-hoc table the query
        matches, at any depth, a table before the tables that match it (functions-definetable:
        at the top of the query, before anything else)."""
        from cqlx.passes import nested_steps

        tables: dict[str, str] = {}
        for step in nested_steps(self.query.steps):
            if not isinstance(step, ir.Join) or step.origin != "defineTable" or step.table in tables:
                continue
            *body, columns = step.subquery.steps
            assert isinstance(columns, ir.Project)  # the lowering ends a table's subquery with it
            query = dataclasses.replace(step.subquery, steps=tuple(body))
            tables[step.table] = (f"defineTable(query={{{self.subquery(query)}}}, name={string(step.table)}, "
                                  f"include=[{', '.join(field_name(f) for f in columns.fields)}])")
        return list(tables.values())

    def verify(self, text: str) -> None:
        """Parse the output back: it must be the IR it was written from. An unexplained difference
        is a cqlx bug, reported as detection loss so that the default policy refuses the output."""
        from cqlx.api import parse
        from cqlx.passes import run_passes

        try:
            again = parse(text)
        except CqlError as error:
            self.unsupported(f"the CQL written does not parse back ({error}); this is a cqlx bug")
            return
        if not same_ir(again, run_passes(self.query)) and not any(d.kind == PRESENTATION for d in self.diagnostics):
            self.unsupported("the CQL written reads back as a different query; this is a cqlx bug")

    def normalised(self, message: str, span: ir.Span = ir.NO_SPAN) -> None:
        self.unsupported(message, span, PRESENTATION)

    # ------------------------------------------------------------ the source

    def source(self) -> list[str]:
        """The event types and platforms as the leading tag filters they were read from (the test
        itself when it was not an exact equality: ``#event_simpleName=/^ProcessRollup2$/i``)."""
        out = []
        source = self.query.source
        for name, values, test in (("#event_simpleName", source.event_types, source.types_test),
                                   ("event_platform", source.platforms, source.platforms_test)):
            if test is not None:
                out.append(self.pred(test))
            elif len(values) > 1 and not any("*" in v for v in values):
                out.append(self.pred(ir.In(name, values)))
            elif values:
                out.append(self.pred(ir.Or(tuple(ir.Eq(name, v) for v in values))
                                     if len(values) > 1 else ir.Eq(name, values[0])))
        return out

    # ------------------------------------------------------------ steps

    def step(self, step: ir.Step) -> str:
        method = getattr(self, f"step_{type(step).__name__.lower()}")
        result: str = method(step)
        return result

    def step_filter(self, step: ir.Filter) -> str:
        text = self.stage_pred(step.pred)
        if isinstance(step.pred, ir.OpaqueTest) and not _reads_as_test(text):
            # An unknown function alone is a stage of its own (ir.Opaque); next to * it is a test.
            return f"* {text}"
        return text

    def step_extract(self, step: ir.Extract) -> str:
        """``field=/re/flags`` (strict) or ``regex("re", field=..., flags=..., strict=false)``: both
        read back as the same extraction (functions-regex; flags= written out, its default is m)."""
        if step.strict and not step.each and literal_reads_back(step.pattern, step.flags):
            return f"{field_name(step.field)}={regex(step.pattern, step.flags)}"
        return regex_call(step.field, step.pattern, step.flags, step.strict, step.each)

    def step_eval(self, step: ir.Eval) -> str:
        return self.default_stage(step) or self.value_stage(step) or self.assign(step.field, step.expr)

    def step_signal(self, step: ir.Signal) -> str:
        yes, no = step.flag_values
        arms: list[tuple[str, ir.Expr, ir.Expr]] = []
        if step.flag_field:
            arms.append((step.flag_field, ir.Lit(yes), ir.Lit(no)))
        if step.score_field:
            arms.append((step.score_field, ir.Lit(step.weight), ir.Lit(0)))
        written = {name for name, _, _ in arms[:-1]}
        if len(arms) > 1 and not (written | {"*"}) & _reads(step.condition):
            # One case writes both: the condition is tested once, as the signal means.
            test = self.stage_pred(step.condition)
            then = " | ".join(self.assign(name, yes_value) for name, yes_value, _ in arms)
            other = " | ".join(self.assign(name, no_value) for name, _, no_value in arms)
            return f"case {{ {test} | {then} ; * | {other} }}"
        # A condition that reads the flag it writes is tested again for the score, as written.
        return "\n| ".join(self.assign(name, ir.Cond(step.condition, yes_value, no_value))
                           for name, yes_value, no_value in arms)

    def step_score(self, step: ir.Score) -> str:
        fields = {s.name: s.score_field for s in self.query.steps if isinstance(s, ir.Signal)}
        terms: list[ir.Expr] = [ir.Ref(fields.get(name) or name) for name in step.signals]
        total = terms[0]
        for term in terms[1:]:
            total = ir.Arith("+", total, term)
        return self.assign(step.field, total)

    def step_ladder(self, step: ir.Ladder) -> str:
        chain: ir.Expr = ir.Lit(step.default)
        for tier in reversed(step.tiers):
            chain = ir.Cond(ir.Cmp(step.score_field, ">=", tier.minimum), ir.Lit(tier.label), chain)
        return self.assign(step.field, chain)

    def step_case(self, step: ir.Case) -> str:
        branches = [" | ".join(self.step(s) for s in b.steps) or "*" for b in step.branches]
        return "case { " + " ; ".join(branches) + " }"

    def step_opaque(self, step: ir.Opaque) -> str:
        return step.text  # as written: cqlx gives it no meaning to rewrite

    def step_lookup(self, step: ir.Lookup) -> str:
        """``match(...)`` with the defaults left out (column=field, strict=true, ignoreCase=false,
        mode=string); ``!match(...)`` when negated."""
        def names(items: tuple[str, ...]) -> str:
            return field_name(items[0]) if len(items) == 1 else f"[{', '.join(field_name(i) for i in items)}]"

        args = [f"file={string(step.file)}", f"field={names(step.fields)}"]
        if step.columns != step.fields:
            args.append(f"column={names(step.columns)}")
        if step.include is not None:
            args.append(f"include=[{', '.join(field_name(i) for i in step.include)}]")
        if not step.strict:
            args.append("strict=false")
        if step.ignore_case:
            args.append("ignoreCase=true")
        if step.mode != "string":
            args.append(f"mode={step.mode}")
        return ("!" if step.negated else "") + f"match({', '.join(args)})"

    def step_join(self, step: ir.Join) -> str:
        """``join({subquery}, field=..., key=..., include=[...], mode=left)``, defaults left out;
        ``!join(...)`` when negated. The subquery is written by an emitter of its own."""
        def names(items: tuple[str, ...]) -> str:
            return field_name(items[0]) if len(items) == 1 else f"[{', '.join(field_name(i) for i in items)}]"

        if step.origin == "defineTable":  # its table is written at the top (table_definitions)
            args = [f"table={string(step.table)}", f"field={names(step.fields)}"]
            if step.keys != step.fields:
                args.append(f"column={names(step.keys)}")
            args.append(f"include=[{', '.join(field_name(i) for i in step.include)}]")
            if step.mode != "inner":
                args.append("strict=false")
            if step.many:
                args.append("nrows=max")
            return ("!" if step.negated else "") + f"match({', '.join(args)})"
        args = ["{" + self.subquery(step.subquery) + "}", f"field={names(step.fields)}"]
        if step.keys != step.fields:
            args.append(f"key={names(step.keys)}")
        if step.include:
            args.append(f"include=[{', '.join(field_name(i) for i in step.include)}]")
        if step.mode != "inner":
            args.append(f"mode={step.mode}")
        return ("!" if step.negated else "") + f"join({', '.join(args)})"

    def step_selfjoinfilter(self, step: ir.SelfJoinFilter) -> str:
        """``selfJoinFilter(field=[...], where=[{...}, ...])``, ``prefilter=true`` when set; each
        filter reads back as the same predicate (a stage of its own in braces)."""
        keys = ", ".join(field_name(f) for f in step.fields)
        wheres = ", ".join("{" + self.stage_pred(where) + "}" for where in step.wheres)
        prefilter = ", prefilter=true" if step.prefilter else ""
        return f"selfJoinFilter(field=[{keys}], where=[{wheres}]{prefilter})"

    def step_drop(self, step: ir.Drop) -> str:
        return f"drop([{', '.join(field_name(f) for f in step.fields)}])"

    def step_project(self, step: ir.Project) -> str:
        return f"select([{', '.join(field_name(f) for f in step.fields)}])"

    def step_order(self, step: ir.Order) -> str:
        if step.origin in ("head", "tail"):
            return f"{step.origin}({step.limit})" if step.limit != ROW_LIMIT_DEFAULT else f"{step.origin}()"
        keys = step.keys
        fields = [field_name(k.field) for k in keys]
        args = [fields[0] if len(fields) == 1 else f"[{', '.join(fields)}]"]
        for param, values, default in (("order", ["desc" if k.descending else "asc" for k in keys], "desc"),
                                       ("type", [k.type for k in keys], "number")):
            if len(set(values)) == 1:
                if values[0] != default:
                    args.append(f"{param}={values[0]}")
            else:
                args.append(f"{param}=[{', '.join(values)}]")
        if step.limit != ROW_LIMIT_DEFAULT:
            args.append(f"limit={step.limit}")
        return f"sort({', '.join(args)})"

    def step_aggregate(self, step: ir.Aggregate) -> str:
        """``groupBy(keys, function=...)``, defaults left out (``function=count()``, ``limit=20000``);
        a standalone function is itself (``count()``, ``collect([a, b])``), several are ``stats()``."""
        calls = self.agg_calls(step.functions, step.span)
        if not step.keys and step.limit is None and step.series_limit is None:
            return calls[0] if len(calls) == 1 else f"stats([{', '.join(calls)}])"
        if step.series_limit is not None:
            raise UnsupportedError("a series limit without its bucket() has no CQL form; this is a cqlx bug",
                                   step.span)
        args = [_fields(step.keys)]
        if step.functions != (ir.AggFunc("count", None, "_count"),):
            args.append("function=" + (calls[0] if len(calls) == 1 else f"[{', '.join(calls)}]"))
        if step.limit is None:  # no lowering writes it for groupBy(): top() and stats() have no group limit
            self.normalised("an aggregation without a group limit is written as groupBy(limit=max)", step.span)
            args.append("limit=max")
        elif step.limit != GROUP_LIMIT_DEFAULT:
            args.append(f"limit={step.limit}")
        return f"groupBy({', '.join(args)})"

    def step_totals(self, step: ir.Totals) -> str:
        raise UnsupportedError("stats()'s outputs on every row without its sort() have no CQL form; this is a "
                               "cqlx bug", step.span)

    def step_grouptail(self, step: ir.GroupTail) -> str:
        """``groupBy(keys, function=tail(N))``, defaults left out (tail()'s 200, groupBy()'s 20000)."""
        count = "" if step.count == ROW_LIMIT_DEFAULT else str(step.count)
        args = [_fields(step.keys), f"function=tail({count})"]
        if step.limit is not None and step.limit != GROUP_LIMIT_DEFAULT:
            args.append(f"limit={step.limit}")
        return f"groupBy({', '.join(args)})"

    def agg_calls(self, functions: tuple[ir.AggFunc, ...], span: ir.Span) -> list[str]:
        """The calls that write ``functions``: consecutive collect(), selectLast(), selectFromMax()
        and selectFromMin() entries that came from one call (one per field) are one call again."""
        calls: list[str] = []
        index = 0
        while index < len(functions):
            function = functions[index]
            if function.field in self.wheres or function.name not in (
                    "collect", "selectLast", "selectFromMax", "selectFromMin"):
                calls.append(self.agg_function(function, span))
                index += 1
                continue
            end = index + 1
            while end < len(functions) and dataclasses.replace(functions[end], field=function.field,
                                                               output=function.output) == function \
                    and functions[end].field == functions[end].output:
                end += 1
            calls.append(self.field_function(functions[index:end], span))
            index = end
        return calls

    def field_function(self, group: tuple[ir.AggFunc, ...], span: ir.Span) -> str:
        """collect(), selectLast(), selectFromMax(), selectFromMin() over the fields of ``group``."""
        first = group[0]
        if any(f.field is None or f.field != f.output for f in group):
            raise UnsupportedError(f"{first.name}() writing another field than it reads has no CQL form; "
                                   "this is a cqlx bug", span)
        fields = _fields(tuple(f.field for f in group if f.field is not None), bracket=True)
        if first.name in ("selectFromMax", "selectFromMin"):
            assert first.by is not None
            return f"{first.name}({field_name(first.by)}, include={fields})"
        args = [fields]
        if first.name == "collect":
            if first.limit is not None and first.limit != COLLECT_LIMIT_DEFAULT:
                args.append(f"limit={first.limit}")
            if first.separator != "\n":
                args.append(f"separator={string(first.separator)}")
        return f"{first.name}({', '.join(args)})"

    def filtered_functions(self, steps: tuple[ir.Step, ...], index: int) -> int | None:
        """The scratch-field cases a ``{filter | function}`` among an aggregation's functions was
        lowered to (cqlx.lower ``filtered_function``), starting at ``index``, when the aggregation
        after them reads each of their fields once: noted for :meth:`agg_function` to write back
        as subqueries; the index after them. None for anything else."""
        found: dict[str, tuple[ir.Pred, ir.Expr]] = {}
        end = index
        while end < len(steps) and (scratch := _filter_scratch(steps[end])) is not None:
            found[scratch[0]] = scratch[1:]
            end += 1
        aggregate = next((s for s in steps[end:end + 2] if isinstance(s, ir.Aggregate)), None)
        if not found or aggregate is None:
            return None
        reads = [f.field for f in aggregate.functions if f.field in found]
        if sorted(reads) != sorted(found):
            return None
        self.wheres.update(found)
        return end

    def agg_function(self, function: ir.AggFunc, span: ir.Span = ir.NO_SPAN) -> str:
        where = self.wheres.pop(function.field, None) if function.field is not None else None
        if where is not None:
            pred, value = where
            inner = dataclasses.replace(function, field=value.field if isinstance(value, ir.Ref) else None)
            call = self.agg_function(inner, span) if inner.name in AGGREGATE_OUTPUTS \
                else self.field_function((inner,), span)
            return f"{{{self.step_filter(ir.Filter(pred, span))} | {call}}}"
        if function.name not in AGGREGATE_OUTPUTS:
            raise UnsupportedError(f"{function.name}() outside top() has no CQL form; this is a cqlx bug", span)
        args = [field_name(function.field)] if function.field is not None else []
        if function.distinct:
            args.append("distinct=true")
        if function.output != AGGREGATE_OUTPUTS[function.name]:
            args.append(f"as={field_name(function.output)}")
        return f"{function.name}({', '.join(args)})"

    def paired_call(self, step: ir.Step, after: ir.Step | None) -> str | None:
        """``top()`` (an aggregation and its sort) and ``bucket()`` (the ``_bucket`` assignment and
        its aggregation), recognised by the two steps sharing the call's span; None otherwise."""
        if after is None or step.span == ir.NO_SPAN or step.span != after.span:
            return None
        if isinstance(step, ir.Aggregate) and isinstance(after, ir.Order) and step.limit is None \
                and step.series_limit is None and step.keys and after.origin == "sort" and len(after.keys) == 1:
            return self.top(step, after)
        if isinstance(step, ir.Eval) and isinstance(after, ir.Aggregate) and step.field == "_bucket" \
                and isinstance(step.expr, ir.Func) and step.expr.name == TIME_BUCKET \
                and after.keys[:1] == ("_bucket",) and after.limit is None:
            return self.bucket(step.expr, after)
        return None

    def top(self, step: ir.Aggregate, order: ir.Order) -> str | None:
        """``top(field, sum=/max=, as=, percent=true, limit=)``: defaults (count, _count, 10) left out."""
        main, *rest = step.functions
        (key,) = order.keys
        percent = [f for f in rest if f.name == "percent"]
        if main.name not in ("count", "sum", "max") or main.distinct or len(rest) != len(percent) \
                or len(percent) > 1 or (main.name == "count") != (main.field is None) \
                or (percent and (percent[0].field != main.field or percent[0].output != "percent")) \
                or key != ir.SortKey(main.output, True, "number"):
            return None
        args = [_fields(step.keys)]
        if main.name != "count":
            assert main.field is not None
            args.append(f"{main.name}={field_name(main.field)}")
        if main.output != AGGREGATE_OUTPUTS[main.name]:
            args.append(f"as={field_name(main.output)}")
        if percent:
            args.append("percent=true")
        if order.limit != TOP_LIMIT_DEFAULT:
            args.append(f"limit={order.limit}")
        return f"top({', '.join(args)})"

    def bucket(self, expr: ir.Func, step: ir.Aggregate) -> str:
        """``bucket(span=, field=, function=, limit=)`` (timeChart() reads back the same)."""
        span = expr.args[1]
        assert isinstance(span, ir.Lit) and isinstance(span.value, int)
        args = [f"span={span_text(span.value)}"]
        if len(expr.args) > 2:  # timezone= was given (a zone cqlx aligns as UTC: the lowering checked)
            args.append("timezone=UTC")
        if step.keys[1:]:
            args.append(f"field={_fields(step.keys[1:])}")
        if step.functions != (ir.AggFunc("count", None, "_count"),):
            calls = self.agg_calls(step.functions, step.span)
            args.append("function=" + (calls[0] if len(calls) == 1 else f"[{', '.join(calls)}]"))
        if step.series_limit is not None and step.series_limit != SERIES_LIMIT_DEFAULT:
            args.append(f"limit={step.series_limit}")
        return f"bucket({', '.join(args)})"

    def table(self, order: ir.Order, project: ir.Project) -> str:
        """``table()``: the rows sorted and limited as ``sort()`` would, then the fields selected
        (functions-table; its sort defaults to @timestamp, desc, number, 200 rows)."""
        (key,) = order.keys
        args = [f"[{', '.join(field_name(f) for f in project.fields)}]"]
        if key.field != "@timestamp":
            args.append(f"sortby={field_name(key.field)}")
        if not key.descending:
            args.append("order=asc")
        if key.type != "number":
            args.append(f"type={key.type}")
        if order.limit != ROW_LIMIT_DEFAULT:
            args.append(f"limit={order.limit}")
        return f"table({', '.join(args)})"

    # ------------------------------------------------------------ assignments

    def assign(self, field: str, expr: ir.Expr) -> str:
        """``field := expr`` as a stage; a conditional whose tests are filters, or a chain of them,
        becomes ``case { test | field := ... ; * | field := ... }``."""
        if isinstance(expr, ir.Cond) and self.needs_case(expr):
            branches: list[str] = []
            rest: ir.Expr = expr
            while isinstance(rest, ir.Cond):
                branches.append(f"{self.stage_pred(rest.test)} | {self.assign(field, rest.then)}")
                rest = rest.otherwise
            branches.append(f"* | {self.assign(field, rest)}")
            return "case { " + " ; ".join(branches) + " }"
        return f"{field_name(field)} := {self.expr(expr)}"

    def needs_case(self, expr: ir.Cond) -> bool:
        if isinstance(expr.otherwise, ir.Cond) or self.condition(expr.test) is None:
            return True
        return isinstance(expr.then, ir.Cond) and self.needs_case(expr.then)

    # ------------------------------------------------------------ predicates as filters

    def pred(self, pred: ir.Pred) -> str:
        method = getattr(self, f"pred_{type(pred).__name__.lower()}")
        result: str = method(pred)
        return result

    def pred_and(self, pred: ir.And) -> str:
        return " and ".join(f"({self.pred(p)})" if isinstance(p, ir.Or | ir.And) else self.pred(p)
                            for p in pred.items)

    def pred_or(self, pred: ir.Or) -> str:
        # `a and b or c` is `a and (b or c)` in LogScale: an and under an or needs its parentheses.
        return " or ".join(f"({self.pred(p)})" if isinstance(p, ir.And | ir.Or) else self.pred(p)
                           for p in pred.items)

    def pred_not(self, pred: ir.Not) -> str:
        item = pred.item
        if isinstance(item, ir.Regex) and literal_reads_back(item.pattern, item.flags):
            return f"{field_name(item.field)}!={regex(item.pattern, item.flags)}"
        if isinstance(item, ir.Eq | ir.Glob | ir.Exists):
            positive = self.pred(item)
            name = field_name(item.field)
            if positive.startswith(name + "="):  # f!=v is LogScale's own negation of f=v
                return f"{name}!={positive[len(name) + 1:]}"
        if isinstance(item, ir.And | ir.Or | ir.Not):
            return f"not ({self.pred(item)})"
        return f"not {self.pred(item)}"

    def pred_truep(self, pred: ir.TrueP) -> str:
        return "*"

    def pred_eq(self, pred: ir.Eq) -> str:
        if pred.ignore_case:  # no lowering writes it; in() is LogScale's case-insensitive equality
            if "*" not in pred.value:
                self.normalised(f"{pred.field}: a case-insensitive equality is written as in(..., ignoreCase=true)",
                                pred.span)
                return self.pred_in(ir.In(pred.field, (pred.value,), True, pred.span))
            self.normalised(f"{pred.field}: a case-insensitive equality is written as an anchored regex", pred.span)
            return self.pred_regex(ir.Regex(pred.field, f"^{_literal_regex(pred.value)}$", "i", pred.span))
        if "*" in pred.value:
            # `*` is a wildcard in quoted values too: only an expression says "exactly this text".
            if is_plain_name(pred.field):
                return f"test({pred.field} == {string(pred.value)})"
            self.normalised(f"{pred.field}: an equality with a '*' on a quoted field name is written as a regex",
                            pred.span)
            return self.pred_regex(ir.Regex(pred.field, f"^{_literal_regex(pred.value)}$", "", pred.span))
        return f"{field_name(pred.field)}={value(pred.value)}"

    def pred_glob(self, pred: ir.Glob) -> str:
        if pred.ignore_case:  # no lowering writes it; in() takes globs and ignoreCase
            self.normalised(f"{pred.field}: a case-insensitive glob is written as in(..., ignoreCase=true)",
                            pred.span)
            return self.pred_in(ir.In(pred.field, (pred.pattern,), True, pred.span))
        if "*" not in pred.pattern:  # no lowering writes it: a glob without a wildcard is an equality
            self.normalised(f"{pred.field}: a glob without '*' is written as an equality", pred.span)
            return self.pred_eq(ir.Eq(pred.field, pred.pattern, False, pred.span))
        return f"{field_name(pred.field)}={value(pred.pattern, glob=True)}"

    def pred_regex(self, pred: ir.Regex) -> str:
        if not literal_reads_back(pred.pattern, pred.flags):
            return regex_call(pred.field, pred.pattern, pred.flags)
        return f"{field_name(pred.field)}={regex(pred.pattern, pred.flags)}"

    def stage_pred(self, pred: ir.Pred) -> str:
        """A predicate standing as a filter stage (or a case branch's test). There a conjunct
        ``field=/re/`` with named groups would extract (ir.Extract); a regex the IR only tests (left
        by a double negation) is written ``not field!=/re/``, which tests without extracting."""
        items = pred.items if isinstance(pred, ir.And) else (pred,)
        if not any(isinstance(i, ir.Regex) and named_groups(i.pattern) for i in items):
            return self.pred(pred)
        parts = []
        for item in items:
            if isinstance(item, ir.Regex) and named_groups(item.pattern):
                parts.append(f"not {self.pred_not(ir.Not(item))}")
            else:
                parts.append(f"({self.pred(item)})" if isinstance(item, ir.Or | ir.And) else self.pred(item))
        return " and ".join(parts)

    def pred_exists(self, pred: ir.Exists) -> str:
        return f"{field_name(pred.field)}=*"

    def pred_cmp(self, pred: ir.Cmp) -> str:
        if pred.op in ("==", "!="):  # `f = 5` is a text equality: numeric == is an expression
            condition = self.cond_cmp(pred)
            if condition is None:
                raise UnsupportedError(f"test({pred.field} {pred.op} {pred.number}) has no CQL form", pred.span)
            return f"test({condition})"
        return f"{field_name(pred.field)} {pred.op} {filter_number(pred.number)}"

    def pred_in(self, pred: ir.In) -> str:
        args = [field_name(pred.field), f"values=[{', '.join(string(v) for v in pred.values)}]"]
        if pred.ignore_case:
            args.append("ignoreCase=true")
        return f"in({', '.join(args)})"

    def pred_opaquetest(self, pred: ir.OpaqueTest) -> str:
        return pred.text

    def pred_arrayany(self, pred: ir.ArrayAny) -> str:
        array = string(f"{pred.array}[]")
        if isinstance(pred.test, ir.Regex):
            flags = f", flags={string(pred.test.flags)}" if pred.test.flags else ""
            return f"array:regex({array}, regex={string(pred.test.pattern)}{flags})"
        return f"array:contains({array}, value={string(pred.test.value)})"

    def pred_cidr(self, pred: ir.Cidr) -> str:
        return f"cidr({field_name(pred.field)}, subnet=[{', '.join(string(s) for s in pred.subnets)}])"

    def pred_freetext(self, pred: ir.FreeText) -> str:
        return regex(pred.value, pred.flags) if pred.regex else string(pred.value)

    def pred_exprtest(self, pred: ir.ExprTest) -> str:
        return f"test({self.cond_exprtest(pred)})"

    # ------------------------------------------------------------ predicates as expressions

    def condition(self, pred: ir.Pred) -> str | None:
        """The predicate in the expression language (``if()``'s condition, ``test()``'s argument),
        or None when only a filter can say it (regexes, globs, and/or, in(), free text)."""
        method = getattr(self, f"cond_{type(pred).__name__.lower()}", None)
        if method is None:
            return None
        result: str | None = method(pred)
        return result

    def cond_cmp(self, pred: ir.Cmp) -> str | None:
        number = expr_number(pred.number)
        if number is None or not is_plain_name(pred.field):
            return None
        return f"{pred.field} {pred.op} {number}"

    def cond_eq(self, pred: ir.Eq) -> str | None:
        if pred.ignore_case or not is_plain_name(pred.field):
            return None
        return f"{pred.field} == {string(pred.value)}"

    def cond_exprtest(self, pred: ir.ExprTest) -> str:
        return f"{self.expr(pred.left)} {pred.op} {self.expr(pred.right)}"

    def cond_not(self, pred: ir.Not) -> str | None:
        inner = self.condition(pred.item)
        return None if inner is None else f"!({inner})"

    def nested_condition(self, pred: ir.Pred) -> str:
        """The condition of an ``if()`` inside an expression, where ``case`` cannot stand: the
        expression language if it can say it, else the seed dialect's filter condition."""
        condition = self.condition(pred)
        if condition is not None:
            return condition
        if isinstance(pred, ir.Regex | ir.Glob | ir.Eq | ir.Exists) and is_plain_name(pred.field) \
                and pred.field.lower() not in _IF_PARAMS \
                and not (isinstance(pred, ir.Eq | ir.Glob) and pred.ignore_case):
            self.normalised("an if() inside an expression tests a filter: written as the detection-library "
                            f"dialect if({pred.field}=...), which LogScale does not accept (it has no filter "
                            "condition for if(), and case { } assigns whole fields only)", pred.span)
            return self.pred(pred)
        if isinstance(pred, ir.In):
            self.normalised("an if() inside an expression tests in(): LogScale's if() takes an expression",
                            pred.span)
            return self.pred(pred)
        raise UnsupportedError("an if() inside an expression tests a combination of filters, which no "
                               "CQL expression can say", pred.span)

    # ------------------------------------------------------------ expressions

    def expr(self, expr: ir.Expr) -> str:
        return self.operand(expr)[0]

    def operand(self, expr: ir.Expr) -> tuple[str, int]:
        """The text of an expression and the precedence of its outermost operator."""
        if isinstance(expr, ir.Arith):
            return self.arith(expr)
        if isinstance(expr, ir.Lit):
            return self.lit(expr), _ATOM
        if isinstance(expr, ir.Ref):
            if not is_plain_name(expr.field):
                raise UnsupportedError(f"an expression cannot name the field {expr.field!r} (CQL quotes make it "
                                       "a string)", expr.span)
            return expr.field, _ATOM
        if isinstance(expr, ir.Cond):
            return (f"if({self.nested_condition(expr.test)}, then={self.expr(expr.then)}, "
                    f"else={self.expr(expr.otherwise)})"), _ATOM
        if isinstance(expr, ir.Func):
            return self.func(expr), _ATOM
        raise AssertionError(f"unexpected expression {expr!r}")

    def lit(self, lit: ir.Lit) -> str:
        if isinstance(lit.value, str):
            return string(lit.value)
        number = expr_number(lit.value)
        if number is None:  # no lowering writes one: `-5` is 0 - 5 in the IR
            self.normalised(f"the number {lit.value} is written as a negation", lit.span)
            return f"-{expr_number(-lit.value) or lit.value}"
        return number

    def arith(self, expr: ir.Arith) -> tuple[str, int]:
        if expr.op == "-" and isinstance(expr.left, ir.Lit) and expr.left.value == 0 \
                and not isinstance(expr.left.value, bool):
            text, level = self.operand(expr.right)  # `-x` is 0 - x in the IR
            if level < _UNARY or text.startswith("-"):
                text = f"({text})"
            return f"-{text}", _UNARY
        level = _PRECEDENCE[expr.op]
        # The left spine of a long sum iteratively: 200 terms must not cost 200 stack frames.
        spine: list[ir.Arith] = [expr]
        while isinstance(spine[-1].left, ir.Arith) and _PRECEDENCE[spine[-1].left.op] == level \
                and not _is_negation(spine[-1].left):
            spine.append(spine[-1].left)
        operands = [spine[-1].left, *(node.right for node in reversed(spine))]
        ops = [node.op for node in reversed(spine)]
        texts = []
        for index, item in enumerate(operands):
            text, item_level = self.operand(item)
            # left-associative: a - (b - c) keeps its parentheses
            if item_level < level if index == 0 else item_level <= level:
                text = f"({text})"
            elif index < len(ops) and ops[index] in "*/" and _ends_in_call(item):
                # grammar/cql.lark reads `lower(a) * b` as a call and then a match-all `*` (and
                # `f(a) / b /` as a regex), as after a filter function: a call before * or / is grouped.
                text = f"({text})"
            texts.append(text)
        parts = [texts[0], *(f"{op} {text}" for op, text in zip(ops, texts[1:], strict=True))]
        return " ".join(parts), level


    # ------------------------------------------------------------ value functions

    def func(self, expr: ir.Func) -> str:
        """A value function with its arguments by name (:func:`cqlx.valuefns.named_arguments`),
        LogScale's unnamed parameter first and unnamed, defaults left out."""
        layout = LAYOUTS.get(expr.name)
        if layout is None:  # an internal function (timebucket) a paired stage writes back
            args = [string(a.field) if isinstance(a, ir.Ref) and not is_plain_name(a.field) else self.expr(a)
                    for a in expr.args]
            return f"{expr.name}({', '.join(args)})"
        parts: list[str] = []
        for name, value in named_arguments(expr):
            text = self.argument(expr.name, name, value)
            parts.append(text if name == layout.first and not parts else f"{name}={text}")
        return f"{expr.name}({', '.join(parts)})"

    def argument(self, function: str, name: str, value: ir.Expr | tuple[ir.Expr, ...]) -> str:
        if isinstance(value, tuple):
            if name == "field" and len(value) == 1:  # field=a is field=[a]
                return self.argument(function, name, value[0])
            return "[" + ", ".join(self.argument(function, name, item) for item in value) + "]"
        if function == "concatArray" and name == "field" and isinstance(value, ir.Lit):
            return field_name(str(value.value))
        if isinstance(value, ir.Ref) and name == "field":  # a field name here, quoted when it is not plain
            return value.field if is_plain_name(value.field) else string(value.field)
        if isinstance(value, ir.Lit) and isinstance(value.value, int) and value.value < 0:
            return str(value.value)  # index=-1
        if isinstance(value, ir.Lit) and name in _WORD_PARAMETERS:
            return str(value.value)  # how=floor, unit=seconds, ignoreEmpty=false
        return self.expr(value)

    def value_stage(self, step: ir.Eval) -> str | None:
        """A value function writing the field it writes without ``as=`` is written as a stage:
        ``round(x)``, ``replace("a", field=x)``, ``format("%s", field=[a])`` (writing _format)."""
        expr = step.expr
        if not isinstance(expr, ir.Func) or expr.name not in DEFAULT_OUTPUT:
            return None
        output = DEFAULT_OUTPUT[expr.name]
        if output == FROM_INPUT:
            field = expr.args[0]
            if not (isinstance(field, ir.Ref) and field.field == step.field):
                return None
        elif output != step.field:
            return None
        return self.func(expr)

    def default_stage(self, step: ir.Eval) -> str | None:
        """``default(field=x, value=v)``: an assignment of x's own default (it has no ``:=`` form)."""
        expr = step.expr
        if not (isinstance(expr, ir.Func) and expr.name == "default" and expr.args[0] == ir.Ref(step.field)):
            return None
        value, replace_empty = expr.args[1], expr.args[2]
        assert isinstance(value, ir.Lit) and isinstance(replace_empty, ir.Lit)
        extra = ", replaceEmpty=true" if replace_empty.value == "true" else ""
        return f"default(field={field_name(step.field)}, value={string(str(value.value))}{extra})"

    def renames(self, steps: tuple[ir.Step, ...], index: int) -> tuple[str, int] | None:
        """``rename()``: pairs of ``new := old`` and ``drop([old])`` that one call wrote (one span)."""
        pairs: list[tuple[str, str]] = []
        span = steps[index].span
        while index + 1 < len(steps):
            step, after = steps[index], steps[index + 1]
            if not (isinstance(step, ir.Eval) and isinstance(step.expr, ir.Ref) and isinstance(after, ir.Drop)
                    and after.fields == (step.expr.field,) and step.field != step.expr.field
                    and span != ir.NO_SPAN and step.span == span and after.span == span):
                break
            pairs.append((step.expr.field, step.field))
            index += 2
        if not pairs:
            return None
        if len(pairs) == 1:
            return f"rename(field={field_name(pairs[0][0])}, as={field_name(pairs[0][1])})", index
        return "rename(field=[" + ", ".join(f"[{field_name(a)}, {field_name(b)}]" for a, b in pairs) + "])", index


def _fields(names: tuple[str, ...], bracket: bool = False) -> str:
    """A field list argument: one name alone (unless ``bracket``), several in brackets."""
    if len(names) == 1 and not bracket:
        return field_name(names[0])
    return f"[{', '.join(field_name(n) for n in names)}]"


def _ends_in_call(expr: ir.Expr) -> bool:
    """Whether the text of an operand written without parentheses ends with a call's ``)``."""
    if isinstance(expr, ir.Func | ir.Cond):
        return True
    return _is_negation(expr) and isinstance(expr, ir.Arith) and _ends_in_call(expr.right)


def _is_negation(expr: ir.Expr) -> bool:
    return isinstance(expr, ir.Arith) and expr.op == "-" and isinstance(expr.left, ir.Lit) and expr.left.value == 0


def _reads(pred: ir.Pred) -> frozenset[str]:
    from cqlx.passes import pred_fields

    return pred_fields(pred)


def _reads_as_test(stage: str) -> bool:
    """Whether a stage that is one function call reads back as a filter test (known filter
    functions do; an unknown function alone is an opaque stage)."""
    from cqlx.api import parse

    try:
        steps = parse(stage).steps
    except CqlError:
        return False
    return len(steps) == 1 and isinstance(steps[0], ir.Filter)

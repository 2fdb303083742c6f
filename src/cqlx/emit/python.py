"""IR → a standalone Python module: the executable reference semantics of CQL.

The module holds ``match(event) -> dict | None`` and ``run(events) -> list[dict]`` and needs only
the standard library: :mod:`cqlx.runtime` is copied into it. As in jinja2, nothing from the rule
is formatted into code: every literal (strings, numbers, patterns, field names) enters through
``repr()`` of a str/int/float, and field names stay strings looked up at run time.

Sort-like stages (``sort()``, ``table()``) and aggregations (``groupBy()``, ``count()``...) are
barriers: the pipeline is cut there into segments, and ``run`` orders, limits or groups the rows
between segments, as LogScale does. ``match(event)`` is the first row of ``run([event])``: one
event sorted is itself, and grouped it is a group of one (``_count`` 1), so a threshold such as
``_count > 5`` never holds for a single event (and ``count()`` of an event the filters drop is
``_count`` 0, as ``run([event])`` says). Memory in ``run`` is bounded by the sort's limit
and by the number of groups.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from cqlx import ir, runtime
from cqlx.emit.base import (
    BRANCH_REPEAT,
    DETECTION,
    PRESENTATION,
    Diagnostic,
    shadowing_message,
    unextracted_message,
)
from cqlx.emit.python_module import RULE_PART, runtime_source
from cqlx.errors import UnsupportedError
from cqlx.functions import TIME_BUCKET
from cqlx.passes import (
    decisive_steps,
    loss_kind_of,
    pred_fields,
    shadowed_fields,
    step_reads,
    step_unextracted,
    step_writes,
)
from cqlx.paths import DRIVE_PATH, drive_fields, extract_loss, loss, message, unix_fields, windows
from cqlx.profiles import FieldMap, Profile
from cqlx.regexes import (
    LinearPlan,
    glob_plan,
    glob_to_regex,
    linear_plan,
    python_error,
    python_flags,
    re2_error,
    to_python,
)
from cqlx.valuefns import UNIT_CONVERT_LOSS, unit_scale

#: Value functions whose runtime implementation takes the values, then the options, in order.
_SIMPLE_FUNCTIONS = {"lower": "lower", "upper": "upper", "concat": "concat", "length": "length",
                     "round": "round_number", "now": "now_millis", "base64Decode": "base64_decode",
                     "urlDecode": "url_decode", "shannonEntropy": "shannon_entropy", "crypto:md5": "md5_hex"}


def re2_compiles(pattern: str) -> bool:
    """Whether RE2 accepts the pattern (its size limits included; regexes.re2_error keeps the answer)."""
    return re2_error(pattern) is None


@dataclass
class _Module:
    """Constants shared by all generated functions, deduplicated (one compiled regex per pattern)."""

    constants: dict[str, str] = field(default_factory=dict)  # code → name
    functions: list[str] = field(default_factory=list)
    # Falcon field → the name events carry under the target profile (ECS: process.command_line).
    # Empty once the rule has projected: rows then hold the rule's own field names.
    names: dict[str, str] = field(default_factory=dict)
    computed: set[str] = field(default_factory=set)
    reshaped: frozenset[str] = frozenset()
    drive_paths: frozenset[str] = frozenset()  # fields held as Windows paths from the drive letter
    branches: int = 0
    target: str = "python"
    diagnostics: list[Diagnostic] = field(default_factory=list)
    profile: Profile | None = None
    joins: list[str] = field(default_factory=list)  # each join()'s (segments, barriers, keys, include)
    needed: list[tuple[ir.Step, frozenset[str]]] = field(default_factory=list)  # decisive_steps()

    def lose(self, kind: str, message: str, span: ir.Span) -> None:
        """What the matcher cannot compute: reported, never dropped silently (as emit.base)."""
        if not any(d.kind == kind and d.message == message for d in self.diagnostics):
            self.diagnostics.append(Diagnostic(kind, self.target, message, span))

    def decisive(self, step: ir.Step) -> frozenset[str]:
        """The fields that decide the rows after ``step`` (as ``Generator.decisive``); any field
        for a step not found (a subquery's)."""
        return next((n for s, n in self.needed if s is step), frozenset({"*"}))

    def opaque(self, step: ir.Opaque) -> None:
        if step.effect == ir.ENRICHES and not loss_kind_of(step_writes(step), self.decisive(step)):
            self.lose(PRESENTATION, step.reason + "; its fields are left out (nothing later tests them)", step.span)
        else:
            self.lose(DETECTION, step.reason, step.span)

    def field(self, name: str) -> str:
        return name if name in self.computed else self.names.get(name, name)

    def time_fallback(self) -> tuple[str, ...]:
        """Where ``@timestamp`` is read from, the first name that has a value (raw FDR has no
        ``@timestamp``, only ``timestamp``: SPL reads _time, KQL Timestamp); () when the rule wrote
        either field or the profile names them alike: then it is read as any field."""
        times = _time_fields(self)
        return times if len(times) > 1 and not {"@timestamp", "timestamp"} & self.computed else ()

    def constant(self, code: str, prefix: str) -> str:
        if code not in self.constants:
            self.constants[code] = f"_{prefix}{len(self.constants)}"
        return self.constants[code]

    def regex(self, pattern: str, flags: int, span: ir.Span = ir.NO_SPAN, plan: LinearPlan | None = None) -> str:
        """A module constant for the regex: ``re`` with ``flags``, and ``plan`` for RE2 when RE2
        compiles it (else the matcher runs ``re`` alone, under its time limit)."""
        error = python_error(pattern, flags)
        if error is not None:
            raise UnsupportedError(f"Python's re cannot run the regex {pattern!r}: {error}", span)
        if plan is None or not re2_compiles(plan.pattern):
            return self.constant(f"compile_regex({pattern!r}, {int(flags)!r})", "R")
        return self.constant(f"compile_regex({pattern!r}, {int(flags)!r}, {plan.pattern!r}, {plan.ascii_only!r}, "
                             f"{plan.vertical_tab!r})", "R")


class _Segment:
    """Code for one run of streaming steps, as the body of ``def NAME(rec):``. ``event`` says
    whether ``_event``, the event as it came in (what free text searches), is bound: in the first
    segment and the case branches it calls; after a barrier the rows are no longer events."""

    def __init__(self, module: _Module, name: str, event: bool = False, branch: bool = False) -> None:
        self.module = module
        self.name = name
        self.lines: list[str] = []
        self.owned = False  # rec is our own copy (safe to write)
        self.signals: dict[str, tuple[str, int | float]] = {}  # signal name → (variable, weight)
        self.counter = 0
        self.event = event
        self.branch = branch

    def emit(self, line: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + line)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"_{prefix}{self.counter}"

    def own(self) -> None:
        if not self.owned:
            self.emit("rec = dict(rec)")
            self.owned = True

    def source(self) -> str:
        if self.branch:
            head = [f"def {self.name}(rec, _event):"]
        else:
            head = [f"def {self.name}(rec):", *(["    _event = rec"] if self.event else [])]
        return "\n".join([*head, *self.lines, "    return rec"])

    # ------------------------------------------------------------ steps

    def step(self, step: ir.Step) -> None:
        self.unextracted(step)
        if isinstance(step, ir.Filter):
            self.emit(f"if not ({self.pred(step.pred)}):")
            self.emit("return None", 2)
        elif isinstance(step, ir.Extract) and step.each:
            # In a case branch (the pipeline cuts at the others): one record cannot become several.
            self.module.lose(DETECTION, BRANCH_REPEAT, step.span)
        elif isinstance(step, ir.Extract):
            self.extract(step)
        elif isinstance(step, ir.Eval):
            self.own()
            self.current: ir.Step | None = step
            self.emit(f"rec = assign(rec, {step.field!r}, {self.expr(step.expr)})")
            self.current = None
        elif isinstance(step, ir.Signal):
            self.signal(step)
        elif isinstance(step, ir.Score):
            self.own()
            terms = []
            for name in step.signals:
                if name in self.signals:
                    var, weight = self.signals[name]
                    terms.append(f"({weight!r} if {var} else 0)")
                else:  # the signal was set before a barrier: read its score field back
                    terms.append(f"(number(get(rec, {name!r})) or 0)")
            self.emit(f"rec[{step.field!r}] = {' + '.join(terms) or '0'}")
        elif isinstance(step, ir.Ladder):
            self.own()
            value = f"get(rec, {step.score_field!r})"
            code = repr(step.default)
            for tier in reversed(step.tiers):
                code = f"{tier.label!r} if compare({value}, '>=', {tier.minimum!r}) else {code}"
            self.emit(f"rec[{step.field!r}] = {code}")
        elif isinstance(step, ir.Case):
            self.case(step)
        elif isinstance(step, ir.Project):
            pairs = tuple((f, self.module.field(f)) for f in step.fields)
            if all(a == b for a, b in pairs):
                times = self.module.time_fallback() if "@timestamp" in step.fields else ()
                shown = f", {times!r}" if times else ""  # the event time as value() reads it
                self.emit(f"rec = project(rec, {self.module.constant(repr(step.fields), 'F')}{shown})")
            else:
                self.emit(f"rec = project_as(rec, {self.module.constant(repr(pairs), 'F')})")
            self.module.names = {}
            self.owned = True
        elif isinstance(step, ir.Drop):
            names = tuple(self.module.field(f) for f in step.fields)
            self.emit(f"rec = drop(rec, {self.module.constant(repr(names), 'F')})")
            self.owned = True
        elif isinstance(step, ir.Opaque):
            self.module.opaque(step)
        elif isinstance(step, ir.Lookup):
            self.lookup(step)
        elif isinstance(step, ir.Join):
            self.join(step)
        else:  # pragma: no cover - Order is a barrier, handled by the caller
            raise AssertionError(f"unexpected step {type(step).__name__}")

    def lookup(self, step: ir.Lookup) -> None:
        """``match()``: the runtime looks the event up in the file's rows, which the module's
        ``LOOKUPS`` holds at run time (set by :func:`cqlx.api.compile_matcher`, or by the user of
        a saved module)."""
        spec = (step.file, tuple(self.module.field(f) for f in step.fields), step.columns, step.include,
                step.strict, step.ignore_case, step.mode, step.negated)
        self.emit(f"rec = lookup(rec, {self.module.constant(repr(spec), 'L')})")
        self.emit("if rec is None:")
        self.emit("return None", 2)
        if step.strict and not step.negated:
            self.owned = True  # a record it keeps is its copy with the row written
        # negated: the record as it was; strict=false: its copy when a row matched, else itself

    def join(self, step: ir.Join) -> None:
        """``join()``: the subquery's segments are functions of the module; ``run`` runs them over
        the events first (``prepare_joins``) and indexes their rows by key, then each event is
        looked up there as a ``match()`` row would be."""
        number = _register_join(self.module, step)
        fields = tuple(self.module.field(f) for f in step.fields)
        strict = step.filters and not step.negated
        self.emit(f"rec = join(rec, {number!r}, {fields!r}, {strict!r}, {step.negated!r})")
        self.emit("if rec is None:")
        self.emit("return None", 2)
        if strict:
            self.owned = True
    def extraction_regex(self, step: ir.Extract) -> str:
        """The module constant of an extraction's regex (a test on a drive-letter path that may
        read differently is refused first)."""
        self.drive_path(frozenset({step.field}), lambda: extract_loss(step.pattern, step.flags), step.span)
        return self.module.regex(to_python(step.pattern), python_flags(step.flags), step.span,
                                 linear_plan(step.pattern, step.flags))

    def extract(self, step: ir.Extract) -> None:
        """The regex's first match sets a field per named group that takes part (ir.Extract)."""
        regex = self.extraction_regex(step)
        var = self.fresh("g")
        self.emit(f"{var} = groups({regex}, {self.tested(step.field, step.span)})")
        if step.strict:
            self.emit(f"if {var} is None:")
            self.emit("return None", 2)
        self.own()
        self.emit(f"rec = assign_groups(rec, {var})")

    def extract_each(self, step: ir.Extract) -> str:
        """``regex(repeat=true)``: its test here (a record no match makes goes, when strict), and
        the regex's constant, for the barrier that makes a row of each match (runtime.extract_each)."""
        regex = self.extraction_regex(step)
        tested = self.tested(step.field, step.span)
        if step.strict:
            self.emit(f"if not search({regex}, {tested}):")
            self.emit("return None", 2)
        return regex

    def unextracted(self, step: ir.Step) -> None:
        """A named-group regex cqlx tests without extracting (passes.unextracted_groups): detection
        loss when the step itself, a later step of its case branch, or a step after decides on the
        groups."""
        found = step_unextracted(step)
        if found is None:
            return
        needed = self.module.decisive(step)
        groups = frozenset(found[1])
        itself = loss_kind_of(groups, step_reads(step) - {"*"}) and (
            isinstance(step, ir.Filter) or loss_kind_of(step_writes(step), needed))
        kind = DETECTION if itself or loss_kind_of(groups, needed) else PRESENTATION
        self.module.lose(kind, unextracted_message(found[1]), step.span)

    def signal(self, step: ir.Signal) -> None:
        var = self.fresh("s")
        self.emit(f"{var} = {self.pred(step.condition)}")
        self.signals[step.name] = (var, step.weight)
        self.own()
        if step.flag_field:
            yes, no = step.flag_values
            self.emit(f"rec[{step.flag_field!r}] = {yes!r} if {var} else {no!r}")
        if step.score_field:
            self.emit(f"rec[{step.score_field!r}] = {step.weight!r} if {var} else 0")

    def case(self, step: ir.Case) -> None:
        names: list[str] = []
        for branch in step.branches:
            self.module.branches += 1  # one counter for the module: nested cases get their own names
            segment = _Segment(self.module, f"_branch{self.module.branches}", self.event, branch=True)
            for inner in branch.steps:
                if isinstance(inner, ir.Order):
                    raise UnsupportedError("sort() inside case { } has no meaning per event: move it after "
                                           "the case", inner.span)
                segment.step(inner)
            self.module.functions.append(segment.source())
            names.append(segment.name)
        self.emit("for _branch in (" + "".join(f"{n}, " for n in names) + "):")
        self.emit(f"_out = _branch(rec, {'_event' if self.event else 'None'})", 2)
        self.emit("if _out is not None:", 2)
        self.emit("rec = _out", 3)
        self.emit("break", 3)
        self.emit("else:")
        self.emit("return None", 2)
        self.owned = False

    # ------------------------------------------------------------ predicates and values

    def value(self, name: str) -> str:
        times = self.module.time_fallback() if name == "@timestamp" else ()
        if times:  # the event time wherever the event has it, as the aggregations and sort() read it
            return f"field_value(rec, {times[0]!r}, {times!r})"
        return f"get(rec, {self.module.field(name)!r})"

    def tested(self, name: str, span: ir.Span) -> str:
        """A field a predicate tests: refused when the profile gives its values another shape."""
        if name in self.module.reshaped and name not in self.module.computed and self.module.names:
            raise UnsupportedError(f"a test on {name} cannot run on events in this profile's shape: "
                                   f"{self.module.names.get(name, name)} holds its value differently", span)
        return self.value(name)

    def drive_path(self, fields: frozenset[str], why: Callable[[], str | None], span: ir.Span) -> None:
        """Refuse a test on a Windows path that the profile's records write from the drive letter
        when it may read Falcon's form differently (:mod:`cqlx.paths`)."""
        m = self.module
        for name in sorted(fields & m.drive_paths - m.computed):
            reason = why() if m.names else None
            if reason is not None and m.profile is not None:
                raise UnsupportedError(message(name, m.field(name), m.profile.name, reason), span)

    def pred(self, pred: ir.Pred) -> str:
        m = self.module
        if not isinstance(pred, ir.And | ir.Or | ir.Not):
            self.drive_path(pred_fields(pred), lambda: loss(pred), pred.span)
        if isinstance(pred, ir.And):
            return "(" + " and ".join(self.pred(p) for p in pred.items) + ")"
        if isinstance(pred, ir.Or):
            return "(" + " or ".join(self.pred(p) for p in pred.items) + ")"
        if isinstance(pred, ir.Not):
            return f"not {self.pred(pred.item)}"
        if isinstance(pred, ir.TrueP):
            return "True"
        if isinstance(pred, ir.Eq):
            if pred.ignore_case:
                return f"equals_folded({self.tested(pred.field, pred.span)}, {pred.value.lower()!r})"
            return f"equals({self.tested(pred.field, pred.span)}, {pred.value!r})"
        if isinstance(pred, ir.Glob):
            flags = re.IGNORECASE if pred.ignore_case else 0
            regex = m.regex(glob_to_regex(pred.pattern, "\\Z"), flags, pred.span,
                            glob_plan((pred.pattern,), pred.ignore_case))
            return f"search({regex}, {self.tested(pred.field, pred.span)})"
        if isinstance(pred, ir.Regex):
            regex = m.regex(to_python(pred.pattern), python_flags(pred.flags), pred.span,
                            linear_plan(pred.pattern, pred.flags))
            return f"search({regex}, {self.tested(pred.field, pred.span)})"
        if isinstance(pred, ir.Cmp):
            return f"compare({self.tested(pred.field, pred.span)}, {pred.op!r}, {pred.number!r})"
        if isinstance(pred, ir.Exists):
            return f"({self.value(pred.field)} is not None)"
        if isinstance(pred, ir.In):
            return self.member(pred)
        if isinstance(pred, ir.FreeText):
            if not self.event:
                self.module.lose(DETECTION, "free text after sort()/groupBy(): LogScale searches the events as they "
                                 "came in, which the rows here no longer are", pred.span)
                return "False"
            if pred.regex:
                regex = m.regex(to_python(pred.value), python_flags(pred.flags), pred.span,
                                linear_plan(pred.value, pred.flags))
                return f"free_regex(_event, {regex})"
            return f"free_text(_event, {pred.value!r})"
        if isinstance(pred, ir.Cidr):
            nets = m.constant(f"networks({pred.subnets!r})", "N")
            return f"in_networks({self.tested(pred.field, pred.span)}, {nets})"
        if isinstance(pred, ir.ArrayAny):  # the test on a record of one element, for each element
            element = m.field(pred.test.field)
            return (f"any((lambda rec: {self.pred(pred.test)})({{{element!r}: _value}}) "
                    f"for _value in array_values(rec, {m.field(pred.array)!r}))")
        if isinstance(pred, ir.OpaqueTest):
            self.module.lose(DETECTION, pred.reason, pred.span)
            return "False"
        if isinstance(pred, ir.ExprTest):
            return f"compare_values({pred.op!r}, {self.expr(pred.left)}, {self.expr(pred.right)})"
        raise AssertionError(f"unexpected predicate {type(pred).__name__}")

    def member(self, pred: ir.In) -> str:
        if any("*" in v for v in pred.values) or pred.ignore_case:
            alternatives = "|".join(glob_to_regex(v, "\\Z", dotall=False) for v in pred.values)
            flags = re.DOTALL | (re.IGNORECASE if pred.ignore_case else 0)
            regex = self.module.regex(f"(?:{alternatives})", flags, pred.span,
                                      glob_plan(pred.values, pred.ignore_case))
            return f"search({regex}, {self.value(pred.field)})"
        values = self.module.constant("frozenset(" + repr(tuple(sorted(set(pred.values)))) + ")", "S")
        return f"member({self.value(pred.field)}, {values})"

    def expr(self, expr: ir.Expr) -> str:
        if isinstance(expr, ir.Lit):
            return repr(expr.value)
        if isinstance(expr, ir.Null):
            return "None"
        if isinstance(expr, ir.Ref):
            return self.value(expr.field)
        if isinstance(expr, ir.Cond):
            return f"({self.expr(expr.then)} if {self.pred(expr.test)} else {self.expr(expr.otherwise)})"
        if isinstance(expr, ir.Arith):
            return f"arith({expr.op!r}, {self.expr(expr.left)}, {self.expr(expr.right)})"
        if isinstance(expr, ir.Func) and expr.name == TIME_BUCKET:  # bucket(): the event time's bucket
            span = expr.args[1]
            assert isinstance(span, ir.Lit)
            times = self.module.constant(repr(_time_fields(self.module)), "F")
            return f"time_bucket(event_time(rec, {times}), {span.value!r})"
        if isinstance(expr, ir.Func):
            return self.func(expr)
        raise AssertionError(f"unexpected expression {expr!r}")

    def loss_here(self) -> str:
        """What a value the current step cannot compute loses: detection when a later step decides
        rows on what it writes (or when no step is current: a filter computes it), else presentation."""
        current = getattr(self, "current", None)
        if current is None:
            return DETECTION
        return DETECTION if loss_kind_of(step_writes(current), self.module.decisive(current)) else PRESENTATION

    def readable(self, arg: ir.Expr) -> ir.Expr:
        """A field a function reads, or no value (reported) when the profile holds it in another shape
        (a datetime for epoch milliseconds): the function would read something LogScale never gives it."""
        m = self.module
        if not (isinstance(arg, ir.Ref) and arg.field in m.reshaped and arg.field not in m.computed and m.names):
            return arg
        m.lose(self.loss_here(), f"{arg.field} is {m.names.get(arg.field, arg.field)} in this profile's events, held "
                                 "in another shape: the function is not given its value", arg.span)
        return ir.Null(arg.span)

    def func(self, expr: ir.Func) -> str:
        """A value function: a call of its :mod:`cqlx.runtime` implementation; options (format
        strings, regexes) become module constants."""
        name = expr.name
        args = tuple(self.readable(a) for a in expr.args)
        options = [a.value for a in args if isinstance(a, ir.Lit)]
        if name in _SIMPLE_FUNCTIONS:
            values = [self.expr(a) for a in args if not isinstance(a, ir.Lit)]
            return f"{_SIMPLE_FUNCTIONS[name]}({', '.join(values + [repr(o) for o in options])})"
        m = self.module
        if name == "format":
            pieces = m.constant(f"format_pieces({options[0]!r})", "P")
            return f"format_string({pieces}, ({''.join(self.expr(a) + ', ' for a in args[1:])}))"
        if name == "formatTime":
            pieces = m.constant(f"time_pieces({options[0]!r})", "P")
            return f"format_time({pieces}, {self.expr(args[1])}, {options[1]!r}, {options[2]!r})"
        if name == "replace":
            pattern, replacement, flags = (str(o) for o in options)
            compiled = re.compile(to_python(pattern), python_flags(flags))
            regex = m.regex(to_python(pattern), python_flags(flags), expr.span)
            parts = runtime.replacement_pieces(replacement, compiled.groups, dict(compiled.groupindex))
            return f"replace_all({regex}, {self.expr(args[0])}, {m.constant(repr(parts), 'P')})"
        if name == "splitString":
            regex = m.regex(to_python(str(options[0])), python_flags(""), expr.span)
            return f"split_index({regex}, {self.expr(args[0])}, {options[1]!r})"
        if name == "coalesce":
            return f"coalesce({options[0] == 'true'!r}, {', '.join(self.expr(a) for a in args[1:])})"
        if name == "default":
            return f"default_value({self.expr(args[0])}, {options[0]!r}, {options[1] == 'true'!r})"
        if name == "concatArray":
            return f"concat_array(rec, {', '.join(repr(o) for o in options)})"
        if name == "unit:convert":
            m.lose(self.loss_here(), UNIT_CONVERT_LOSS, expr.span)
            op, factor = unit_scale(expr)
            return f"arith({op!r}, {self.expr(args[0])}, {factor!r})"
        raise AssertionError(f"unexpected function {name}")


def _register_join(module: _Module, step: ir.Join) -> int:
    """The join's subquery as functions of the module, for ``prepare_joins``: its number."""
    names, computed = module.names, module.computed
    module.names, module.computed = _field_names(step.subquery, module.profile), set()
    number = len(module.joins) + 1
    module.joins.append("")  # its place: a join inside the subquery comes after it
    segments, barriers = _pipeline(module, step.subquery, f"_join{number}_segment")
    keys = tuple(module.field(k) for k in step.keys)
    include = tuple(module.field(f) for f in step.include)
    module.names, module.computed = names, computed
    module.functions.extend(s.source() for s in segments)
    functions = "".join(f"{s.name}, " for s in segments)
    stops = "".join(f"{b}, " for b in barriers)
    module.joins[number - 1] = (f"(({functions}), ({stops}), {keys!r}, {include!r}, {step.include!r}, "
                                f"{step.many!r})")
    return number


def _time_fields(module: _Module) -> tuple[str, ...]:
    """Where the event time is, under the profile's names: LogScale's ``@timestamp``, then raw
    FDR's ``timestamp`` (epoch ms)."""
    return tuple(dict.fromkeys((module.field("@timestamp"), module.field("timestamp"))))


def _order_barrier(step: ir.Order, module: _Module) -> tuple[object, ...]:
    """``("sort", keys, limit)`` (an ``@timestamp`` key reads the event time wherever it is) or,
    for ``tail()``, ``("tail", time fields, limit)``."""
    if step.origin == "tail":
        return ("tail", _time_fields(module), step.limit)
    keys = tuple((_time_fields(module), k.descending, "time") if k.field == "@timestamp"
                 else (module.field(k.field), k.descending, k.type) for k in step.keys)
    return ("sort", keys, step.limit)


def _functions(step: ir.Aggregate | ir.Totals, module: _Module) -> tuple[tuple[object, ...], ...]:
    """The aggregate functions as :func:`cqlx.runtime.aggregate` takes them, their fields read
    under the profile's names."""
    def read(name: str | None) -> str | None:
        return module.field(name) if name else None

    return tuple((f.name, read(f.field), f.output, f.distinct, read(f.by), f.limit, f.separator)
                 for f in step.functions)


def _aggregate_barrier(step: ir.Aggregate, module: _Module) -> tuple[object, ...]:
    """``("aggregate", keys, functions, limit, key names, time fields, series limit)``: keys and
    fields are read under the profile's names; the group rows carry the rule's."""
    functions = _functions(step, module)
    keys_read = tuple(module.field(k) for k in step.keys)
    return ("aggregate", keys_read, functions, step.limit, step.keys, _time_fields(module), step.series_limit)


def _pipeline(module: _Module, query: ir.Query, prefix: str) -> tuple[list[_Segment], list[str]]:
    """The query's segments (named ``prefix0``, ``prefix1``...) and the barriers between them."""
    segments: list[_Segment] = [_Segment(module, f"{prefix}0", event=True)]  # the events as they came in
    barriers: list[str] = []
    for step in [*_source_filter(query, module.profile), *query.steps]:
        if isinstance(step, ir.Order):
            barriers.append(repr(_order_barrier(step, module)))
            segments.append(_Segment(module, f"{prefix}{len(segments)}"))
        elif isinstance(step, ir.Join) and step.many and not step.negated:
            # An event for each matching row: a barrier, as one record becomes several.
            number = _register_join(module, step)
            fields = tuple(module.field(f) for f in step.fields)
            barriers.append(repr(("join_rows", number, fields, step.mode == "inner")))
            segments.append(_Segment(module, f"{prefix}{len(segments)}"))
        elif isinstance(step, ir.Extract) and step.each:  # a row of each match: one record, several
            regex = segments[-1].extract_each(step)  # a module constant's name, not data (no repr)
            barriers.append(f"('extract_each', {regex}, {module.field(step.field)!r}, {step.strict!r}, {step.each!r})")
            segments.append(_Segment(module, f"{prefix}{len(segments)}"))
        elif isinstance(step, ir.GroupTail):  # the rows stay events, under the profile's names
            keys_read = tuple(module.field(k) for k in step.keys)
            barriers.append(repr(("group_tail", keys_read, step.count, step.limit, _time_fields(module))))
            segments.append(_Segment(module, f"{prefix}{len(segments)}"))
        elif isinstance(step, ir.Totals):  # every row at once: the outputs over all of them
            barriers.append(repr(("totals", _functions(step, module), _time_fields(module))))
            segments.append(_Segment(module, f"{prefix}{len(segments)}"))
        elif isinstance(step, ir.Aggregate):
            barriers.append(repr(_aggregate_barrier(step, module)))
            segments.append(_Segment(module, f"{prefix}{len(segments)}"))
            module.names = {}
        else:
            segments[-1].step(step)
        module.computed |= step_writes(step)
    return segments, barriers


def _source_filter(query: ir.Query, profile: Profile | None) -> list[ir.Step]:
    """The event-type and platform tests, which other targets turn into tables or logsources.
    Under a profile whose event types say which records they are (``match:``), those tests."""
    steps: list[ir.Step] = []
    types = query.source.event_types
    events = [profile.event_type(t) for t in types] if profile is not None else []
    if profile is not None and profile.language != "python" and not any(e and e.match for e in events):
        types = ()  # records in another target's shape (Sigma names): the logsource is the data set
    if types and events and all(e is not None and e.match for e in events):
        alternatives: list[ir.Pred] = []
        for event in events:
            assert event is not None
            tests = tuple(ir.In(f, values) for f, values in event.match)
            alternatives.append(tests[0] if len(tests) == 1 else ir.And(tests))
        steps.append(ir.Filter(alternatives[0] if len(alternatives) == 1 else ir.Or(tuple(alternatives))))
    elif types:  # the test as written, when it is not an exact equality (ir.Source)
        steps.append(ir.Filter(query.source.types_test or ir.In("#event_simpleName", types)))
    if query.source.platforms:
        steps.append(ir.Filter(query.source.platforms_test or ir.In("event_platform", query.source.platforms)))
    return steps


def _event_fields(query: ir.Query, profile: Profile | None) -> dict[str, FieldMap]:
    """The profile's mapping of the rule's (first) event type: Falcon field -> its field there."""
    if profile is None or not query.source.event_types:
        return {}
    event = profile.event_type(query.source.event_types[0])
    return event.fields if event else {}


def _field_names(query: ir.Query, profile: Profile | None) -> dict[str, str]:
    return {falcon: mapped.name for falcon, mapped in _event_fields(query, profile).items()}


def _reshaped(query: ir.Query, profile: Profile | None) -> frozenset[str]:
    """Falcon fields whose values have another shape under the profile (a path for a file name,
    a datetime for epoch milliseconds): the matcher cannot test them as CQL would. (A Windows path
    from the drive letter holds the same file: each test on one is checked, cqlx.paths.)"""
    return frozenset(f for f, m in _event_fields(query, profile).items()
                     if (m.transform and m.transform != DRIVE_PATH) or not m.exact)


def _drive_paths(query: ir.Query, profile: Profile | None) -> frozenset[str]:
    """Falcon fields the profile's records hold as Windows paths from the drive letter, but for
    those a leading filter requires to be Unix paths (as the other targets, cqlx.paths)."""
    if not windows(query.source.platforms):
        return frozenset()
    fields = _event_fields(query, profile)
    drive = drive_fields(fields)
    return drive - unix_fields(query, frozenset(fields)) if drive else drive


#: The end of every generated module: the same text for every rule, so the compile check of a
#: conversion leaves it out (cqlx.conversion).
ENTRY_POINTS = "\n".join([
    "",
    "",
    "def match(event):",
    '    """The output row for one event, or None when the rule drops it: the first row of',
    "    run([event]) (one event sorted is itself; grouped, it is a group of one).\"\"\"",
    "    if JOINS:",
    "        prepare_joins(JOINS, [event])",
    "    rec = SEGMENTS[0](event)",
    "    if not BARRIERS:",
    "        return rec",
    "    rows = [] if rec is None else [rec]",
    "    for spec, segment in zip(BARRIERS, SEGMENTS[1:]):",
    "        rows = [out for out in map(segment, barrier(rows, spec)) if out is not None]",
    "    return rows[0] if rows else None",
    "",
    "",
    "def run(events, counts=None, now=None):",
    '    """Every output row, ordered and limited as the rule\'s sort() and table() say.',
    "    With a dict ``counts``, counts['matched'] is the number of events the filters keep, and",
    "    counts['timed_out'] the number given up because a regex ran past REGEX_TIME_LIMIT.",
    "    now() is the time run() is called (a historical query's), or ``now`` (ms since the epoch).\"\"\"",
    "    QUERY_TIME[0] = now if now is not None else now_millis()",
    "    try:",
    "        if JOINS:  # each join()'s subquery runs over the same events first",
    "            events = list(events)",
    "            prepare_joins(JOINS, events)",
    "        rows = guarded(SEGMENTS[0], events, counts)",
    "        if counts is not None:",
    "            rows = counted(rows, counts)",
    "        for spec, segment in zip(BARRIERS, SEGMENTS[1:]):",
    "            rows = guarded(segment, barrier(rows, spec), counts)",
    "        return list(rows)",
    "    finally:",
    "        QUERY_TIME[0] = None",
    "",
])


def emit_python(query: ir.Query, title: str = "", query_text: str = "", profile: Profile | None = None,
                diagnostics: list[Diagnostic] | None = None) -> str:
    """The standalone matcher module for ``query``; with a ``profile`` (ECS, say) the module reads
    that profile's field names and selects its records, and its rows keep the rule's field names.

    What the matcher cannot compute (an :class:`ir.Opaque` stage) goes into ``diagnostics``; without
    that list, a detection loss raises :class:`UnsupportedError` (the in-process matcher refuses to
    run a rule it would run wrongly) and a presentation loss is left out of the rows."""
    target = f"python ({profile.name})" if profile is not None else "python (falcon)"
    module = _Module(names=_field_names(query, profile), reshaped=_reshaped(query, profile), target=target,
                     drive_paths=_drive_paths(query, profile),
                     needed=decisive_steps(query))
    module.profile = profile
    for written, read, span, shown in shadowed_fields(query.steps, module.names.get):
        module.lose(PRESENTATION if shown else DETECTION,
                    shadowing_message(written, read, profile.name if profile else "falcon"), span)
    segments, barriers = _pipeline(module, query, "_segment")
    out = [
        f'"""cqlx matcher{": " + title if title else ""}.',
        "",
        "Generated by cqlx from a LogScale query; standard library only. Entry points:",
        "match(event) -> dict | None (the output row, or None) and run(events) -> list[dict].",
        '"""',
        "",
        "# ---- cqlx runtime (src/cqlx/runtime.py) ----",
        runtime_source(),
        "",
        RULE_PART.strip("\n"),
        f"QUERY = {query_text!r}",
        "",
    ]
    out += [f"{name} = {code}" for code, name in module.constants.items()]
    out += ["", ""]
    out += [f"{fn}\n\n" for fn in module.functions]
    out += [f"{segment.source()}\n\n" for segment in segments]
    out += ["JOINS = (" + "".join(f"{spec}, " for spec in module.joins) + ")", ""]
    if diagnostics is not None:
        diagnostics.extend(module.diagnostics)
    else:
        lost = [d for d in module.diagnostics if d.kind == DETECTION]
        if lost:
            raise UnsupportedError(f"the matcher cannot run this rule as LogScale would: {lost[0].message}",
                                   lost[0].span)
    out += [
        "SEGMENTS = (" + "".join(f"{s.name}, " for s in segments) + ")",
        "BARRIERS = (" + "".join(f"{spec}, " for spec in barriers) + ")",
        ENTRY_POINTS,
    ]
    return "\n".join(out)

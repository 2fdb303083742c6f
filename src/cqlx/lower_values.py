"""Lowering of LogScale's value functions: ``format()``, ``formatTime()``, ``replace()``, ``round()``...
to :class:`cqlx.ir.Func`, and of ``rename()``, ``default()`` and ``eval()`` to steps.

Each function becomes ``Func(name, args)`` whose arguments follow :data:`cqlx.valuefns.LAYOUTS`: the
values it reads (:class:`ir.Ref` or any expression) and its options as :class:`ir.Lit` in fixed
positions, defaults filled in, so the same call written two ways is one IR and canonical CQL can
write it back. A call whose options cqlx cannot give a meaning to on every target (a ``format()``
conversion outside the converted subset, a time zone ``zoneinfo`` does not know) is kept as an
:class:`ir.Opaque` stage with the reason; an argument LogScale itself would reject is a
:class:`CqlValueError`.

``rename(field=a, as=b)`` is ``b := a`` followed by ``drop([a])``: an :class:`ir.Eval` and an
:class:`ir.Drop` with the call's span, rather than an IR node of its own, because every target already
renders both exactly (KQL ``extend`` + ``project-away``, SPL ``eval`` + ``fields -``) and the
analyses of what a step reads and writes (:mod:`cqlx.passes`) need nothing new; the CQL emitter
writes the pair back as ``rename()``. A missing source field leaves the target as it was
(*assumption*: the documentation says only that an existing target is overwritten).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from cqlx import ast as A
from cqlx import ir
from cqlx.errors import CqlValueError
from cqlx.functions import FunctionSpec
from cqlx.lower import RELATIVE_UNITS, _Lowering, _Opaque, _plain_text
from cqlx.passes import expr_fields
from cqlx.regexes import python_flags, to_python
from cqlx.valuefns import DEFAULT_OUTPUT, FROM_INPUT, UNIT_PREFIXES

__all__ = ["NAMES", "assignment", "expression", "func", "stage"]

_TIME_UNITS = ("auto", "milliseconds", "seconds")
_ROUNDING = ("round", "floor", "ceil")
_CHARSETS = ("UTF-8", "ISO-8859-1", "UTF-16BE", "UTF-16LE")
_REPLACE_FLAGS = "dim"  # functions-replace: d (dot-all), i (ignore case), m (multi-line)
#: formatTime() codes whose text depends on the locale (names, am/pm).
_LOCALE_CODES = frozenset("BbhAapc")


# ---------------------------------------------------------------- arguments


def _text(lw: _Lowering, value: A.Expr, what: str) -> str:
    if isinstance(value, A.StringLit | A.BareValue | A.FieldRef | A.Number):
        return _plain_text(value)
    raise CqlValueError(f"{what} must be a quoted string", value.span)


def _integer(value: A.Expr, what: str) -> int:
    """A whole number, possibly negative (``index=-1``)."""
    negative = isinstance(value, A.Unary) and value.op == "-"
    inner = value.operand if isinstance(value, A.Unary) and negative else value
    text = _plain_text(inner) if isinstance(inner, A.Number | A.BareValue | A.StringLit) else ""
    if not re.fullmatch(r"-?[0-9]{1,9}", text):
        raise CqlValueError(f"{what} must be a whole number", value.span)
    return -int(text) if negative else int(text)


def _choice(lw: _Lowering, value: A.Expr | None, what: str, accepted: Sequence[str], default: str) -> str:
    if value is None:
        return default
    word = lw.word(value)
    found = next((a for a in accepted if a.lower() == word.lower()), None)
    if found is None:
        raise CqlValueError(f"{what}={word} is not accepted; accepted: {', '.join(accepted)}", value.span)
    return found


def _value(lw: _Lowering, value: A.Expr) -> ir.Expr:
    """The value a function reads: a field (a quoted name is a field here, as in ``lower()``) or,
    inside an expression, any expression."""
    if isinstance(value, A.StringLit):
        return ir.Ref(value.value, value.span)
    if isinstance(value, A.FieldRef):
        return ir.Ref(value.name, value.span)
    return lw.expr(value)


def _fields(lw: _Lowering, value: A.Expr) -> tuple[ir.Expr, ...]:
    return tuple(ir.Ref(name, value.span) for name in lw.field_list(value))


def _compiles(pattern: str, flags: int, name: str) -> re.Pattern[str]:
    try:
        return re.compile(to_python(pattern), flags)
    except (re.error, ValueError, OverflowError, RecursionError) as error:
        raise _Opaque(name, f"{name}(): Python's re cannot compile the regex {pattern!r} ({error})") from None


# ---------------------------------------------------------------- calls → Func

_Builder = Callable[[_Lowering, A.Call, dict[str, A.Expr]], ir.Func | ir.Lit]


def func(lw: _Lowering, call: A.Call, spec: FunctionSpec) -> ir.Func | ir.Lit:
    """The :class:`ir.Func` of a value function call (``as=`` is the caller's business), or the
    constant it always is (``duration()``)."""
    args = lw.bind(call, spec)
    builder = _BUILDERS[spec.name]
    return builder(lw, call, args)


def _format(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "format" not in args:
        raise CqlValueError("format() needs a format string, e.g. format(\"%s/%s\", field=[a, b])", call.span)
    pattern = _text(lw, args["format"], "format")
    fields = _fields(lw, args["field"]) if "field" in args else ()
    from cqlx import runtime as R  # the matcher's own readers of these strings, imported when needed

    try:
        pieces = R.format_pieces(pattern)
    except ValueError as error:
        raise _Opaque("format", f"format(): {error}") from None
    wanted = R.format_arguments(pieces)
    if wanted > len(fields):
        raise _Opaque("format", f"format(): the format string has {wanted} conversions but {len(fields)} "
                                "fields; LogScale does not document what it writes then")
    return ir.Func("format", (ir.Lit(pattern), *fields), call.span)


def _format_time(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "format" not in args:
        raise CqlValueError("formatTime() needs a format string, e.g. formatTime(\"%Y-%m-%d\", as=day)", call.span)
    pattern = _text(lw, args["format"], "format")
    from cqlx import runtime as R

    try:
        pieces = R.time_pieces(pattern)
    except ValueError as error:
        raise _Opaque("formatTime", f"formatTime(): {error}") from None
    codes = {piece for kind, piece in pieces if kind == "code"}
    zone = _text(lw, args["timezone"], "timezone") if "timezone" in args else "UTC"
    try:
        R._zone(zone)
    except Exception:  # zoneinfo's errors: unknown key, bad name
        raise _Opaque("formatTime", f"formatTime(): the time zone {zone!r} is not one cqlx knows (an IANA "
                                    "name such as Europe/London, UTC, or an offset such as +02:00)") from None
    if "Z" in codes and zone not in ("UTC", "GMT"):
        raise _Opaque("formatTime", "formatTime(): %Z (the zone's abbreviation) is converted for UTC only; "
                                    "Java's and the tz database's abbreviations differ")
    if "locale" in args and codes & _LOCALE_CODES:
        raise _Opaque("formatTime", "formatTime(locale=...): names of months and days and am/pm in a "
                                    "locale are not converted")
    unit = _choice(lw, args.get("unit"), "unit", _TIME_UNITS, "auto")
    value = _value(lw, args["field"]) if "field" in args else ir.Ref("@timestamp", call.span)
    return ir.Func("formatTime", (ir.Lit(pattern), value, ir.Lit(zone), ir.Lit(unit)), call.span)


def _concat(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "field" not in args:
        raise CqlValueError("concat() needs the fields to concatenate, e.g. concat([a, b])", call.span)
    return ir.Func("concat", _fields(lw, args["field"]), call.span)


def _md5(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "field" not in args:
        raise CqlValueError("crypto:md5() needs the fields to hash, e.g. crypto:md5([a, b])", call.span)
    return ir.Func("crypto:md5", _fields(lw, args["field"]), call.span)


def _single(name: str) -> _Builder:
    def build(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
        if "field" not in args:
            raise CqlValueError(f"{name}() needs a field", call.span)
        return ir.Func(name, (_value(lw, args["field"]),), call.span)

    return build


def _replace(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "regex" not in args:
        raise CqlValueError("replace() needs a regex, e.g. replace(\"\\\\\\\\\", with=\"/\")", call.span)
    if "with" in args and "replacement" in args:
        raise CqlValueError("replace() takes with= or replacement= (the same parameter), not both",
                            args["replacement"].span)
    pattern = _text(lw, args["regex"], "regex")
    replacement_arg = args.get("with", args.get("replacement"))
    replacement = _text(lw, replacement_arg, "with") if replacement_arg is not None else ""
    flags = _text(lw, args["flags"], "flags") if "flags" in args else "m"
    if set(flags) - set(_REPLACE_FLAGS):
        raise CqlValueError(f"flags={flags} is not accepted; accepted: d, i, m", args["flags"].span)
    flags = "".join(f for f in _REPLACE_FLAGS if f in flags)
    compiled = _compiles(pattern, python_flags(flags), "replace")
    from cqlx import runtime as R

    try:
        R.replacement_pieces(replacement, compiled.groups, dict(compiled.groupindex))
    except ValueError as error:
        raise _Opaque("replace", f"replace(): {error}") from None
    value = _value(lw, args["field"]) if "field" in args else ir.Ref("@rawstring", call.span)
    return ir.Func("replace", (value, ir.Lit(pattern), ir.Lit(replacement), ir.Lit(flags)), call.span)


def _split_string(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "by" not in args:
        raise CqlValueError("splitString() needs by=, the string or regex to split by", call.span)
    pattern = _text(lw, args["by"], "by")
    _compiles(pattern, python_flags(""), "splitString")
    if "index" not in args:
        raise _Opaque("splitString", "splitString() without index= writes an array (one field per piece: "
                                     "[0], [1], ...), which cqlx does not convert yet", array=True)
    index = _integer(args["index"], "index")
    value = _value(lw, args["field"]) if "field" in args else ir.Ref("@rawstring", call.span)
    return ir.Func("splitString", (value, ir.Lit(pattern), ir.Lit(index)), call.span)


def _round(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "field" not in args:
        raise CqlValueError("round() needs a field", call.span)
    how = _choice(lw, args.get("how"), "how", _ROUNDING, "round")
    return ir.Func("round", (_value(lw, args["field"]), ir.Lit(how)), call.span)


def _now(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    return ir.Func("now", (), call.span)


def _duration(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Lit:
    """duration("5m") is 300000: the same number on every event, so the value itself."""
    if "duration" not in args:
        raise CqlValueError('duration() needs a time span, e.g. duration("5m")', call.span)
    word = _text(lw, args["duration"], "duration").strip()
    match = re.fullmatch(r"(\d{1,12}) ?([A-Za-z]+)", word)
    unit = RELATIVE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise CqlValueError(f"duration({word}): expected a time span such as 30s, 5m, 2h, 7d or 1w",
                            args["duration"].span)
    return ir.Lit(int(match.group(1)) * unit, call.span)


def _coalesce(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "expressions" not in args:
        raise CqlValueError("coalesce() needs a list of expressions, e.g. coalesce([UserName, \"-\"])", call.span)
    given = args["expressions"]
    items = given.items if isinstance(given, A.Array) else (given,)
    if not items:
        raise CqlValueError("coalesce() needs at least one expression", given.span)
    ignore = lw.boolean(args["ignoreEmpty"], "ignoreEmpty") if "ignoreEmpty" in args else True
    return ir.Func("coalesce", (ir.Lit("true" if ignore else "false"), *(lw.expr(i) for i in items)), call.span)


def _base64(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "field" not in args:
        raise CqlValueError("base64Decode() needs a field", call.span)
    charset = _choice(lw, args.get("charset"), "charset", _CHARSETS, "UTF-8")
    return ir.Func("base64Decode", (_value(lw, args["field"]), ir.Lit(charset)), call.span)


def _concat_array(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    if "field" not in args:
        raise CqlValueError("concatArray() needs the array's base name, e.g. concatArray(server)", call.span)
    name = lw.field_arg(args["field"])
    start = _integer(args["from"], "from") if "from" in args else 0
    stop = _integer(args["to"], "to") if "to" in args else -1
    if start < 0 or (stop >= 0 and stop < start) or ("to" in args and stop < 0):
        raise CqlValueError("concatArray() needs 0 <= from <= to", call.span)
    texts = [_text(lw, args[p], p) if p in args else "" for p in ("prefix", "separator", "suffix")]
    return ir.Func("concatArray", (ir.Lit(name), ir.Lit(start), ir.Lit(stop), *(ir.Lit(t) for t in texts)),
                   call.span)


def _unit_convert(lw: _Lowering, call: A.Call, args: dict[str, A.Expr]) -> ir.Func:
    """unit:convert() of a plain number between unit prefixes (functions-unit-convert: kMGTPEZY,
    powers of 1000, or of 1024 with binary=true). A unit named (unit=), or written back (keepUnit),
    is not converted yet: how LogScale spells and parses units is not documented beyond examples."""
    if "field" not in args:
        raise CqlValueError("unit:convert() needs a field, e.g. unit:convert(Size, to=M)", call.span)
    if "unit" in args:
        raise _Opaque("unit:convert", "unit:convert(unit=...) reads values written with their unit, which cqlx "
                                      "does not convert yet")
    if "keepUnit" in args and lw.boolean(args["keepUnit"], "keepUnit"):
        raise _Opaque("unit:convert", "unit:convert(keepUnit=true) appends the unit, which cqlx does not "
                                      "convert yet")
    prefixes: list[str] = []
    for param in ("from", "to"):
        prefix = _text(lw, args[param], param) if param in args else ""
        if prefix not in UNIT_PREFIXES:
            raise _Opaque("unit:convert", f"unit:convert({param}={prefix}): cqlx converts between the prefixes "
                                          + ", ".join(p for p in UNIT_PREFIXES if p) + " of one unit")
        prefixes.append(prefix)
    binary = lw.boolean(args["binary"], "binary") if "binary" in args else False
    return ir.Func("unit:convert", (_value(lw, args["field"]), *(ir.Lit(p) for p in prefixes),
                                    ir.Lit("true" if binary else "false")), call.span)


_BUILDERS: dict[str, _Builder] = {
    "format": _format, "formatTime": _format_time, "concat": _concat, "length": _single("length"),
    "replace": _replace, "splitString": _split_string, "round": _round, "now": _now, "coalesce": _coalesce,
    "base64Decode": _base64, "urlDecode": _single("urlDecode"), "shannonEntropy": _single("shannonEntropy"),
    "concatArray": _concat_array, "duration": _duration, "unit:convert": _unit_convert, "crypto:md5": _md5,
}
#: The value functions lowered here (lower() and upper() keep their own lowering).
NAMES = frozenset(_BUILDERS)


# ---------------------------------------------------------------- stages


def expression(lw: _Lowering, call: A.Call, spec: FunctionSpec) -> ir.Expr:
    """A value function inside an expression (``x := format(...)``): ``as=`` has no place there."""
    if spec.kind != "value":
        raise CqlValueError(f"{spec.name}() does not produce a value", call.span)
    for arg in call.args:
        if arg.name is not None and arg.name.lower() == "as":
            raise CqlValueError(f"{spec.name}(as=...) inside an assignment: the field before := is the output",
                                arg.span)
    return func(lw, call, spec)


def stage(lw: _Lowering, call: A.Call, spec: FunctionSpec) -> list[ir.Step]:
    """A value function, ``default()``, ``rename()`` or ``eval()`` as a pipeline stage."""
    if spec.kind == "default":
        return _default(lw, call, spec)
    if spec.kind == "rename":
        return _rename(lw, call, spec)
    if spec.kind == "eval":
        return _eval(lw, call)
    if spec.kind == "setField":
        return _set_field(lw, call, spec)
    if spec.kind == "lowercase":
        return _lowercase(lw, call, spec)
    args = lw.bind(call, spec)
    output = _output(lw, call, spec, args)
    try:
        return [ir.Eval(output, func(lw, call, spec), call.span)]
    except _Opaque as opaque:  # a value cqlx cannot compute: the stage keeps every event and sets one field
        return [ir.Opaque(opaque.name, lw.source(call.span), ir.ENRICHES, opaque.writes(output), opaque.reason,
                          call.span)]


def _output(lw: _Lowering, call: A.Call, spec: FunctionSpec, args: dict[str, A.Expr]) -> str:
    if "as" in args:
        return lw.field_arg(args["as"])
    default = DEFAULT_OUTPUT.get(spec.name)
    if default is None:
        raise CqlValueError(f"{spec.name}() needs as=, the field to write", call.span)
    if default == FROM_INPUT:  # round(), replace(): the input field itself
        given = args.get("field")
        if given is None:
            return "@rawstring"
        if isinstance(given, A.FieldRef | A.StringLit):
            return lw.field_arg(given)
        raise CqlValueError(f"{spec.name}() of an expression needs as=, the field to write", given.span)
    return default


def assignment(lw: _Lowering, stage_: A.Assignment, spec: FunctionSpec) -> list[ir.Step]:
    """``b := rename(a)`` (functions-rename); other value functions after ``:=`` are expressions."""
    assert isinstance(stage_.value, A.Call)
    call = stage_.value
    if spec.kind == "rename":
        with_as = A.Argument(stage_.field.span, "as", A.FieldRef(stage_.field.span, stage_.field.name))
        return _rename(lw, A.Call(stage_.span, call.name, call.name_span, (*call.args, with_as)), spec)
    raise CqlValueError(f"{spec.name}() sets fields itself; it is not a value for :=", call.span)


def _default(lw: _Lowering, call: A.Call, spec: FunctionSpec) -> list[ir.Step]:
    args = lw.bind(call, spec)
    if "value" not in args or "field" not in args:
        raise CqlValueError("default() needs field= and a value, e.g. default(field=[a, b], value=\"-\")",
                            call.span)
    value = _text(lw, args["value"], "value")
    replace_empty = lw.boolean(args["replaceEmpty"], "replaceEmpty") if "replaceEmpty" in args else False
    return [ir.Eval(name, ir.Func("default", (ir.Ref(name, call.span), ir.Lit(value),
                                              ir.Lit("true" if replace_empty else "false")), call.span), call.span)
            for name in lw.field_list(args["field"])]


def _rename(lw: _Lowering, call: A.Call, spec: FunctionSpec) -> list[ir.Step]:
    args = lw.bind(call, spec)
    if "field" not in args:
        raise CqlValueError("rename() needs field=, e.g. rename(field=a, as=b)", call.span)
    given = args["field"]
    pairs: list[tuple[str, str]] = []
    if isinstance(given, A.Array) and given.items and all(isinstance(i, A.Array) for i in given.items):
        if "as" in args:
            raise CqlValueError("rename() takes as= with one field, not with pairs", args["as"].span)
        for item in given.items:
            assert isinstance(item, A.Array)
            if len(item.items) != 2:
                raise CqlValueError("each pair of rename() is [old, new]", item.span)
            pairs.append((lw.field_arg(item.items[0]), lw.field_arg(item.items[1])))
    else:
        if "as" not in args:
            raise CqlValueError("rename() needs as=, the new name (or pairs: rename(field=[[old, new]]))", call.span)
        old = _single_name(lw, given) if isinstance(given, A.Array) else lw.field_arg(given)
        pairs.append((old, lw.field_arg(args["as"])))
    steps: list[ir.Step] = []
    for old, new in pairs:  # *assumption*: pairs apply in order, as separate renames would
        if old != new:
            steps += [ir.Eval(new, ir.Ref(old, call.span), call.span), ir.Drop((old,), call.span)]
    return steps


def _set_field(lw: _Lowering, call: A.Call, spec: FunctionSpec) -> list[ir.Step]:
    """``setField(target="x", value=expr)`` is ``x := expr`` (functions-setfield). A target read
    from the event names a field only the data knows: an opaque stage."""
    args = lw.bind(call, spec)
    if "target" not in args or "value" not in args:
        raise CqlValueError('setField() needs target= and value=, e.g. setField(target="x", value=a + 1)', call.span)
    target = args["target"]
    if not isinstance(target, A.StringLit):
        return [ir.Opaque("setField", lw.source(call.span), ir.ENRICHES, None,
                          "setField() with a target computed from the event sets a field the data names; cqlx "
                          "converts a quoted target", call.span)]
    if not target.value:
        raise CqlValueError("setField() needs a field name as target", target.span)
    return [ir.Eval(target.value, lw.expr(args["value"]), call.span)]


def _lowercase(lw: _Lowering, call: A.Call, spec: FunctionSpec) -> list[ir.Step]:
    """``lowercase(field)`` (``include=values``, the default) is ``field := lower(field)`` for each
    field (functions-lowercase). ``include=fields|both`` and ``*`` make fields named by the data
    (the documentation's examples disagree on whether the old name stays): an opaque stage."""
    args = lw.bind(call, spec)
    if "field" not in args:
        raise CqlValueError('lowercase() needs the fields, e.g. lowercase("UserName")', call.span)
    include = _choice(lw, args.get("include"), "include", ("values", "fields", "both"), "values")
    fields = lw.field_list(args["field"])
    if include != "values" or "*" in fields:
        what = "every field" if "*" in fields else f"include={include}"
        return [ir.Opaque("lowercase", lw.source(call.span), ir.ENRICHES, None,
                          f"lowercase() with {what} renames fields after their values or names; cqlx converts "
                          "lowercase() of named fields' values", call.span)]
    try:
        lw.casing_locale("lowercase", args.get("locale"))
    except _Opaque as opaque:
        return [ir.Opaque("lowercase", lw.source(call.span), ir.ENRICHES, fields, opaque.reason, call.span)]
    return [ir.Eval(name, ir.Func("lower", (ir.Ref(name, call.span),), call.span), call.span) for name in fields]


def _single_name(lw: _Lowering, given: A.Array) -> str:
    if len(given.items) != 1:
        raise CqlValueError("rename() with as= takes one field", given.span)
    return lw.field_arg(given.items[0])


def _eval(lw: _Lowering, call: A.Call) -> list[ir.Step]:
    steps: list[ir.Step] = []
    if not call.args:
        raise CqlValueError("eval() needs an assignment, e.g. eval(total = a + b)", call.span)
    for arg in call.args:
        if arg.name is None:
            raise CqlValueError("eval() takes assignments, e.g. eval(total = a + b)", arg.span)
        expr = lw.expr(arg.value)
        read = sorted(expr_fields(expr))
        if read:  # "eval() requires all used fields to be present" (functions-default)
            tests = tuple(ir.Exists(name, arg.span) for name in read)
            steps.append(ir.Filter(tests[0] if len(tests) == 1 else ir.And(tests, arg.span), arg.span))
        steps.append(ir.Eval(arg.name, expr, arg.span))
    return steps

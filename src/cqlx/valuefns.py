"""What the emitters share about value functions (:class:`cqlx.ir.Func`): the layout of each function's
arguments, the field it writes when ``as=`` is not given, and which ones give numbers.

:mod:`cqlx.lower_values` builds each ``Func`` with its arguments in the order of its
:data:`LAYOUTS` entry (defaults filled in), so a writer can name every argument back
(:func:`named_arguments`) and leave the defaults out.
"""

from __future__ import annotations

from cqlx import ir
from cqlx.frozen import Frozen, record

#: The output is the input field (round(), replace(): "as: same name as input field").
FROM_INPUT = "<the input field>"

#: The field a stage writes without ``as=`` (library.humio.com, functions-<name>: the ``as`` row);
#: None: ``as=`` is required (formatTime()). *Assumption*: now() writes ``_now`` (the documentation's
#: table names ``as`` its default argument but gives no default name).
DEFAULT_OUTPUT: dict[str, str | None] = {
    "format": "_format", "formatTime": None, "concat": "_concat", "length": "_length", "replace": FROM_INPUT,
    "splitString": "_splitstring", "round": FROM_INPUT, "now": "_now", "coalesce": "_coalesce",
    "base64Decode": "_base64Decode", "urlDecode": "_urldecode", "shannonEntropy": "_shannonentropy",
    "concatArray": "_concatArray", "duration": "_duration", "unit:convert": FROM_INPUT, "crypto:md5": "_md5",
}

#: crypto:md5() of the empty text, its value where every field is missing or empty: the KQL and
#: the SPL spell it out (Kusto's hash_md5("") is not documented; duckdb-kql gives "").
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"

#: Functions whose value is a number (the others give text).
NUMERIC = frozenset({"length", "round", "now", "shannonEntropy", "unit:convert"})

#: unit:convert()'s prefixes cqlx converts, by power of 1000 (or of 1024 with binary=true):
#: functions-unit-convert lists kMGTPEZY for binary=; Z and Y are past a 64-bit whole number.
UNIT_PREFIXES = {"": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


#: What unit:convert() cannot do in any target cqlx writes (the matcher included).
UNIT_CONVERT_LOSS = ("unit:convert(): cqlx converts a plain number (in from='s unit); a value written with its "
                     "own unit (4KiB, 514 ms), which LogScale reads, gives no value here")


def unit_scale(func: ir.Func) -> tuple[str, int]:
    """unit:convert() as one exact operation on a plain number: ``("*", n)`` or ``("/", n)``."""
    _, start, end, binary = func.args
    assert isinstance(start, ir.Lit) and isinstance(end, ir.Lit) and isinstance(binary, ir.Lit)
    steps = UNIT_PREFIXES[str(start.value)] - UNIT_PREFIXES[str(end.value)]
    base = 1024 if binary.value == "true" else 1000
    return ("*", base ** steps) if steps >= 0 else ("/", base ** -steps)


@record
class Layout(Frozen):
    """The arguments of a ``Func``: ``params`` name its fixed arguments in order, ``rest`` the
    parameter its remaining arguments form (written as an array); ``defaults`` are the values a
    writer leaves out; ``first`` is LogScale's unnamed (default) parameter."""

    params: tuple[str, ...]
    first: str | None
    rest: str | None = None
    defaults: tuple[tuple[str, ir.Expr], ...] = ()


LAYOUTS: dict[str, Layout] = {
    "lower": Layout(("field",), "field"),
    "upper": Layout(("field",), "field"),
    "format": Layout(("format",), "format", rest="field"),
    "formatTime": Layout(("format", "field", "timezone", "unit"), "format",
                         defaults=(("field", ir.Ref("@timestamp")), ("timezone", ir.Lit("UTC")),
                                   ("unit", ir.Lit("auto")))),
    "concat": Layout((), "field", rest="field"),
    "crypto:md5": Layout((), "field", rest="field"),
    "length": Layout(("field",), "field"),
    "replace": Layout(("field", "regex", "with", "flags"), "regex",
                      defaults=(("field", ir.Ref("@rawstring")), ("with", ir.Lit("")), ("flags", ir.Lit("m")))),
    "splitString": Layout(("field", "by", "index"), "field", defaults=(("field", ir.Ref("@rawstring")),)),
    "round": Layout(("field", "how"), "field", defaults=(("how", ir.Lit("round")),)),
    "now": Layout((), None),
    "coalesce": Layout(("ignoreEmpty",), "expressions", rest="expressions",
                       defaults=(("ignoreEmpty", ir.Lit("true")),)),
    "default": Layout(("field", "value", "replaceEmpty"), None, defaults=(("replaceEmpty", ir.Lit("false")),)),
    "base64Decode": Layout(("field", "charset"), "field", defaults=(("charset", ir.Lit("UTF-8")),)),
    "urlDecode": Layout(("field",), "field"),
    "shannonEntropy": Layout(("field",), "field"),
    "unit:convert": Layout(("field", "from", "to", "binary"), "field",
                           defaults=(("from", ir.Lit("")), ("to", ir.Lit("")), ("binary", ir.Lit("false")))),
    "concatArray": Layout(("field", "from", "to", "prefix", "separator", "suffix"), "field",
                          defaults=(("from", ir.Lit(0)), ("to", ir.Lit(-1)), ("prefix", ir.Lit("")),
                                    ("separator", ir.Lit("")), ("suffix", ir.Lit("")))),
}


Argument = tuple[str, ir.Expr | tuple[ir.Expr, ...]]


def named_arguments(func: ir.Func) -> list[Argument]:
    """The call's arguments by parameter name, LogScale's unnamed parameter first, defaults left out
    (an argument that is a list, ``field=[a, b]``, is a tuple)."""
    layout = LAYOUTS[func.name]
    defaults = dict(layout.defaults)
    fixed = list(zip(layout.params, func.args, strict=False))
    out: list[Argument] = [(name, value) for name, value in fixed
                           if not (name in defaults and _same(defaults[name], value))]
    if layout.rest is not None:
        out.append((layout.rest, tuple(func.args[len(layout.params):])))
    out.sort(key=lambda argument: argument[0] != layout.first)
    return out


def _same(left: ir.Expr, right: ir.Expr) -> bool:
    return type(left) is type(right) and left == right

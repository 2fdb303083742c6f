"""Value functions (:class:`cqlx.ir.Func`) in SPL ``eval``, one renderer per function, keyed by name.

Facts (help.splunk.com, Search Reference, evaluation functions): ``printf()`` is C's ``sprintf()``
with the ``'`` flag for thousands separators; ``strftime()`` writes a time in the searching user's
time zone; ``len()`` counts characters; ``replace()`` is PCRE with ``\\1`` in the replacement;
``split()`` makes a multivalue field and ``mvindex()`` picks one value (negative from the end);
``urldecode()``; ``time()`` is the wall-clock time in seconds; ``coalesce()`` takes the first
value that is not null. SPL has no Base64 decoding in ``eval``. What SPL cannot say exactly is
reported through the generator (:meth:`SplGenerator.lose`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from cqlx import ir
from cqlx import runtime as R
from cqlx.emit.kql_funcs import literal_text
from cqlx.emit.spl import string
from cqlx.regexes import to_python
from cqlx.valuefns import EMPTY_MD5, UNIT_CONVERT_LOSS, unit_scale

if TYPE_CHECKING:
    from cqlx.emit.spl import SplGenerator

_ASTRAL = string("[\\x{10000}-\\x{10FFFF}]")
_INTEGER = string("^[+-]?[0-9]+$")
_DECIMAL = string("^[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
_BAD_ESCAPE = string("%(?:[0-9A-Fa-f]?(?:[^0-9A-Fa-f]|$))")
#: formatTime() codes strftime() writes as Java does (the C library's codes, English names).
_STRFTIME = frozenset("YmdHMSIyjaAbBP")


def render(g: SplGenerator, expr: ir.Func) -> str:
    renderer = _RENDERERS.get(expr.name)
    if renderer is None:
        return _unsupported(g, expr, f"{expr.name}() has no SPL eval counterpart cqlx writes")
    return renderer(g, expr)


def _unsupported(g: SplGenerator, expr: ir.Func, message: str) -> str:
    g.lose(message, expr.span)
    return "null()"


def text(g: SplGenerator, expr: ir.Expr) -> str:
    """The value's text (a number as its decimal text); null when it is missing."""
    if isinstance(expr, ir.Lit):
        return string(str(expr.value)) if not isinstance(expr.value, str) else string(expr.value)
    return f"tostring({g.expr(expr)})"


# ---------------------------------------------------------------- renderers


def _case(g: SplGenerator, expr: ir.Func) -> str:
    return f"{expr.name}({g.expr(expr.args[0])})"


def _length(g: SplGenerator, expr: ir.Func) -> str:
    value = text(g, expr.args[0])
    # Java counts UTF-16 code units: a character beyond the BMP counts twice.
    return f"(2*len({value}) - len(replace({value}, {_ASTRAL}, \"\")))"


def _concat(g: SplGenerator, expr: ir.Func) -> str:
    if not expr.args:
        return "null()"
    values = [text(g, a) for a in expr.args]
    missing = " AND ".join(f"isnull({v})" for v in values)
    joined = " . ".join(f"coalesce({v}, \"\")" for v in values)
    return f"if({missing}, null(), {joined})"


def _md5(g: SplGenerator, expr: ir.Func) -> str:
    # md5(): the MD5 of the text as lower-case hex (Search Reference, cryptographic functions); a
    # missing field counts as "", as in crypto:md5(), and the empty text's hash is spelled out.
    joined = " . ".join(f"coalesce({text(g, a)}, \"\")" for a in expr.args) or '""'
    return f"if(len({joined})=0, {string(EMPTY_MD5)}, md5({joined}))"


def _format(g: SplGenerator, expr: ir.Func) -> str:
    pattern = expr.args[0]
    assert isinstance(pattern, ir.Lit)
    values = iter(expr.args[1:])
    layout: list[str] = []
    arguments: list[str] = []
    guards: list[str] = []
    for piece in R.format_pieces(str(pattern.value)):
        if isinstance(piece, str):
            layout.append(piece.replace("%", "%%"))
            continue
        if piece.conversion == "%":
            layout.append("%%")
            continue
        if piece.conversion == "n":
            return _unsupported(g, expr, "format(): %n (a line break) is not written into SPL's printf()")
        value = next(values)
        flags = piece.flags.replace(",", "'")
        width = "" if piece.width is None else str(piece.width)
        if piece.conversion == "s":
            if piece.width is not None or piece.precision is not None:
                return _unsupported(g, expr, "format(): a width or precision with %s counts Java chars in "
                                             "LogScale and bytes in C's printf(); not converted to SPL")
            layout.append("%s")
            arguments.append(text(g, value))
            guards.append(f"isnotnull({text(g, value)})")
        elif piece.conversion == "d":
            layout.append(f"%{flags}{width}d")
            arguments.append(f"tonumber({text(g, value)})")
            guards.append(f"match({text(g, value)}, {_INTEGER})")
        elif piece.conversion == "f":
            precision = 6 if piece.precision is None else piece.precision
            layout.append(f"%{flags}{width}.{precision}f")
            arguments.append(f"tonumber({text(g, value)})")
            guards.append(f"match({text(g, value)}, {_DECIMAL})")
            g.lose("format(): SPL's printf() rounds %f from the binary value, LogScale (Java) half up from the "
                   "shortest decimal: values halfway between two results (0.125 at %.2f) may differ", expr.span)
        else:
            return _unsupported(g, expr, f"format(): %{piece.conversion} of a negative number is Java's two's "
                                         "complement in LogScale; C's printf() in SPL does not say; not converted")
    call = f"printf({string(''.join(layout))}{''.join(', ' + a for a in arguments)})"
    return f"if({' AND '.join(guards)}, {call}, null())" if guards else call


def _format_time(g: SplGenerator, expr: ir.Func) -> str:
    pattern, value, zone, unit = expr.args
    assert isinstance(pattern, ir.Lit) and isinstance(zone, ir.Lit) and isinstance(unit, ir.Lit)
    g.lose(f"formatTime(): SPL's strftime() writes the time in the searching user's time zone; the output is "
           f"LogScale's only where that zone is {zone.value}", expr.span)
    millis = _millis(g, value, str(unit.value))
    seconds = f"floor({millis}/1000)"
    parts: list[str] = []
    layout: list[str] = []

    def flush() -> None:
        if layout:
            parts.append(f"strftime({seconds}, {string(''.join(layout))})")
            layout.clear()

    for kind, piece in R.time_pieces(str(pattern.value)):
        if kind == "text":
            layout.append(piece.replace("%", "%%"))
        elif piece in _STRFTIME:
            layout.append("%p" if piece == "P" else "%" + piece)
        elif piece in "hz":
            layout.append("%b" if piece == "h" else "%z")
        else:
            flush()
            parts.append(_time_code(piece, millis, seconds, str(zone.value)))
    flush()
    body = " . ".join(parts) if parts else '""'
    return f"if(isnull({millis}), null(), {body})"


def _millis(g: SplGenerator, value: ir.Expr, unit: str) -> str:
    """The instant in milliseconds since the epoch (Splunk's _time is seconds with a fraction)."""
    if isinstance(value, ir.Ref) and value.field not in g.computed:
        mapped = g.profile.field(g.event, value.field)
        if mapped is not None and mapped.transform == "splunk_time":
            return f"round({g.column(value.field, value.span, output=True) or '_time'}*1000)"
    number = f"tonumber({text(g, value)})"
    if unit == "seconds":
        return f"floor({number}*1000)"
    if unit == "milliseconds":
        return f"floor({number})"
    return f"if({number} <= {R.AUTO_UNIT_LIMIT}, floor({number}*1000), floor({number}))"


def _time_code(code: str, millis: str, seconds: str, zone: str) -> str:
    if code in "ekl":  # Java writes no padding
        return f"tostring(tonumber(strftime({seconds}, {string({'e': '%d', 'k': '%H', 'l': '%I'}[code])})))"
    if code == "p":
        return f"lower(strftime({seconds}, \"%p\"))"
    if code in "LN":  # the milliseconds of the second, also before 1970 (% takes the dividend's sign)
        return f"printf(\"%03d{'000000' if code == 'N' else ''}\", ({millis} % 1000 + 1000) % 1000)"
    if code == "s":
        return f"tostring({seconds})"
    if code == "Q":
        return f"tostring({millis})"
    if code == "C":
        return f"substr(strftime({seconds}, \"%Y\"), 1, 2)"
    assert code == "Z"
    return string(zone)


def _replace(g: SplGenerator, expr: ir.Func) -> str:
    value, pattern, replacement, flags = expr.args
    assert isinstance(pattern, ir.Lit) and isinstance(replacement, ir.Lit) and isinstance(flags, ir.Lit)
    compiled = re.compile(to_python(str(pattern.value)))
    rewrite: list[str] = []
    for piece in R.replacement_pieces(str(replacement.value), compiled.groups, dict(compiled.groupindex)):
        if isinstance(piece, str):
            rewrite.append(piece.replace("\\", "\\\\"))
        elif piece <= 9:
            rewrite.append(f"\\{piece}")
        else:
            return _unsupported(g, expr, f"replace(): SPL's replace() refers to groups 1 to 9, not ${piece}")
    regex = g.pattern(str(pattern.value), str(flags.value), expr.span)
    return f"replace({text(g, value)}, {string(regex)}, {string(''.join(rewrite))})"


def _split(g: SplGenerator, expr: ir.Func) -> str:
    value, by, index = expr.args
    assert isinstance(by, ir.Lit) and isinstance(index, ir.Lit)
    separator = literal_text(str(by.value))
    if separator is None:
        return _unsupported(g, expr, f"splitString(): SPL's split() takes a string, not the regex {by.value!r}")
    position = int(index.value)
    subject = text(g, value)
    trailing = string("(?:" + re.escape(separator) + ")+$")
    only = string("^(?:" + re.escape(separator) + ")+$")
    empty = '""' if position in (0, -1) else "null()"
    # Java's split: "" is one empty piece; trailing empty pieces are dropped (all of them: no piece).
    return (f"case(isnull({subject}), null(), {subject}==\"\", {empty}, match({subject}, {only}), null(), "
            f"true(), mvindex(split(replace({subject}, {trailing}, \"\"), {string(separator)}), {position}))")


def _round(g: SplGenerator, expr: ir.Func) -> str:
    value, how = expr.args
    assert isinstance(how, ir.Lit)
    number = f"tonumber({text(g, value)})"
    if how.value == "floor":
        return f"floor({number})"
    if how.value == "ceil":
        return f"ceiling({number})"
    return f"if({number} - floor({number}) >= 0.5, ceiling({number}), floor({number}))"


def _now(g: SplGenerator, expr: ir.Func) -> str:
    return "floor(time()*1000)"


def _coalesce(g: SplGenerator, expr: ir.Func) -> str:
    ignore, *values = expr.args
    assert isinstance(ignore, ir.Lit)
    codes = []
    for value in values:
        code = g.expr(value)
        if ignore.value == "true" and not isinstance(value, ir.Lit):
            code = f"if({code}==\"\", null(), {code})"
        if not (ignore.value == "true" and isinstance(value, ir.Lit) and value.value == ""):
            codes.append(code)
    if not codes:
        return "null()"
    return codes[0] if len(codes) == 1 else f"coalesce({', '.join(codes)})"


def _default(g: SplGenerator, expr: ir.Func) -> str:
    value, fallback, replace_empty = expr.args
    assert isinstance(fallback, ir.Lit) and isinstance(replace_empty, ir.Lit)
    code = g.expr(value)
    if replace_empty.value == "true":
        return f"if(isnull({code}) OR {code}==\"\", {string(str(fallback.value))}, {code})"
    return f"coalesce({code}, {string(str(fallback.value))})"


def _url_decode(g: SplGenerator, expr: ir.Func) -> str:
    value = text(g, expr.args[0])
    g.lose("urlDecode(): where the escapes are not UTF-8, LogScale writes U+FFFD; what SPL's urldecode() "
           "writes is not documented", expr.span)
    # Java's URLDecoder reads + as a space and gives up on an incomplete escape (no value).
    return f"if(match({value}, {_BAD_ESCAPE}), null(), urldecode(replace({value}, \"\\\\+\", \" \")))"


def _unit_convert(g: SplGenerator, expr: ir.Func) -> str:
    g.lose(UNIT_CONVERT_LOSS, expr.span)
    op, factor = unit_scale(expr)
    return g.expr(ir.Arith(op, expr.args[0], ir.Lit(factor), expr.span))


_RENDERERS: dict[str, Callable[[SplGenerator, ir.Func], str]] = {
    "lower": _case, "upper": _case, "length": _length, "concat": _concat, "format": _format,
    "formatTime": _format_time, "replace": _replace, "splitString": _split, "round": _round, "now": _now,
    "coalesce": _coalesce, "default": _default, "urlDecode": _url_decode, "unit:convert": _unit_convert,
    "crypto:md5": _md5,
}

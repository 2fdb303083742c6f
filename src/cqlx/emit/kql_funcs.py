"""Value functions (:class:`cqlx.ir.Func`) in KQL, one renderer per function, keyed by name.

What KQL cannot say exactly is reported through the generator (:meth:`KqlGenerator.lose`), as
presentation loss when nothing later decides rows on the field, else detection loss. Facts
(learn.microsoft.com, Kusto reference): ``strlen()`` counts Unicode code points; ``strcat()`` reads
a null as the empty string; a string is never null in KQL (an empty string stands for one), so a
string value that is missing is ``""`` here, as Defender stores it; ``coalesce()`` skips nulls and
empty strings and needs its arguments of one type; ``replace_regex()`` is RE2 with ``\\1`` in the
rewrite; ``format_datetime()`` takes the elements yyyy yy MM dd d HH H hh h mm ss fff tt;
``datetime_utc_to_local()`` moves a UTC datetime into an IANA time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cqlx import ir
from cqlx import runtime as R
from cqlx.emit.kql import NULL, NUMBER, TEXT, name, string
from cqlx.regexes import matches_empty, re2_escape, to_python
from cqlx.valuefns import EMPTY_MD5, NUMERIC, UNIT_CONVERT_LOSS, unit_scale

if TYPE_CHECKING:
    from cqlx.emit.kql import KqlGenerator

#: Java's chars count a character beyond the BMP twice; strlen() once: the difference is added.
_ASTRAL = '@"[\\x{10000}-\\x{10FFFF}]"'
_EPOCH = "datetime(1970-01-01)"
#: formatTime() codes → format_datetime() elements.
_DATETIME_ELEMENTS = {"Y": "yyyy", "y": "yy", "m": "MM", "d": "dd", "e": "d", "H": "HH", "k": "H", "I": "hh",
                      "l": "h", "M": "mm", "S": "ss", "L": "fff", "P": "tt"}
_MONTHS = 'dynamic(["January", "February", "March", "April", "May", "June", "July", "August", "September", ' \
          '"October", "November", "December"])'
_DAYS = 'dynamic(["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"])'
_BAD_ESCAPE = '@"%(?:[0-9A-Fa-f]?(?:[^0-9A-Fa-f]|$))"'
_DECIMAL = '@"^[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"'


def kind(g: KqlGenerator, expr: ir.Func) -> str:
    """What a value function holds in KQL (:mod:`cqlx.emit.kql`'s kinds)."""
    if expr.name in NUMERIC:
        return NUMBER
    if expr.name == "coalesce":
        kinds = {g.kind(a) for a in expr.args[1:]} - {NULL}
        return NUMBER if kinds == {NUMBER} else TEXT if kinds else NULL
    return TEXT


def render(g: KqlGenerator, expr: ir.Func) -> str:
    renderer = _RENDERERS.get(expr.name)
    if renderer is None:
        return _unsupported(g, expr, f"{expr.name}() has no KQL counterpart cqlx writes")
    return renderer(g, expr)


def _unsupported(g: KqlGenerator, expr: ir.Func, message: str) -> str:
    g.lose(message, expr.span)
    return "real(null)" if kind(g, expr) == NUMBER else '""'


def text(g: KqlGenerator, expr: ir.Expr) -> str:
    """The value's text: a number as its decimal text; a missing value as ``""``."""
    kind_ = g.kind(expr)
    if kind_ == NULL:
        return '""'
    code = g.expr(expr)
    return f"tostring({code})" if kind_ == NUMBER else code


def present(g: KqlGenerator, expr: ir.Expr) -> str:
    kind_ = g.kind(expr)
    if kind_ == NULL:
        return "false"
    return f"isnotnull({g.expr(expr)})" if kind_ == NUMBER else f"isnotempty({g.expr(expr)})"


def number(g: KqlGenerator, expr: ir.Expr) -> str:
    return g.operand(expr)


def strcat(parts: list[str]) -> str:
    """``strcat()`` of the parts; it takes 64 arguments at most (Kusto.Language: KS120), so longer
    lists are nested."""
    if not parts:
        return '""'
    if len(parts) == 1:
        return parts[0]
    while len(parts) > 64:
        parts = [f"strcat({', '.join(parts[i:i + 64])})" if len(parts[i:i + 64]) > 1 else parts[i]
                 for i in range(0, len(parts), 64)]
    return f"strcat({', '.join(parts)})"


def _options(expr: ir.Func) -> list[str | int | float]:
    return [a.value for a in expr.args if isinstance(a, ir.Lit)]


# ---------------------------------------------------------------- renderers


def _case(g: KqlGenerator, expr: ir.Func) -> str:
    function = "tolower" if expr.name == "lower" else "toupper"
    return f"{function}({text(g, expr.args[0])})"


def _length(g: KqlGenerator, expr: ir.Func) -> str:
    value = text(g, expr.args[0])
    return f"iff(isnotempty({value}), strlen({value}) + countof({value}, {_ASTRAL}, \"regex\"), long(null))"


def _concat(g: KqlGenerator, expr: ir.Func) -> str:
    return strcat([text(g, a) for a in expr.args])


def _md5(g: KqlGenerator, expr: ir.Func) -> str:
    # hash_md5(): lower-case hex of the UTF-8 text (Kusto reference, hash_md5()); the empty
    # text's hash spelled out (EMPTY_MD5)
    joined = strcat([text(g, a) for a in expr.args])
    return f"iff(isempty({joined}), {string(EMPTY_MD5)}, hash_md5({joined}))"


def _format(g: KqlGenerator, expr: ir.Func) -> str:
    pattern = expr.args[0]
    assert isinstance(pattern, ir.Lit)
    values = iter(expr.args[1:])
    parts: list[str] = []
    guards: list[str] = []
    for piece in R.format_pieces(str(pattern.value)):
        if isinstance(piece, str):
            parts.append(string(piece))
            continue
        if piece.conversion in "%n":
            parts.append(string(R.format_one(piece, None) or ""))
            continue
        value = next(values)
        plain = not piece.flags and piece.width is None and piece.precision is None
        if piece.conversion == "s" and plain:
            parts.append(text(g, value))
            guards.append(present(g, value))
        elif piece.conversion == "d" and plain:
            written = text(g, value)
            parts.append(f"tostring(tolong({written}))")
            guards.append(f"{written} matches regex @\"^[+-]?[0-9]+$\" and isnotnull(tolong({written}))")
        else:
            return _unsupported(g, expr, f"format(): KQL has no printf; cqlx writes %s and %d without flags, "
                                         f"width or precision, not {_spec_text(piece)}")
    body = strcat(parts)
    return f"iff({' and '.join(guards)}, {body}, \"\")" if guards else body


def _spec_text(spec: R.FormatSpec) -> str:
    width = "" if spec.width is None else str(spec.width)
    precision = "" if spec.precision is None else f".{spec.precision}"
    return f"%{spec.flags}{width}{precision}{spec.conversion}"


def _format_time(g: KqlGenerator, expr: ir.Func) -> str:
    pattern, value, zone, unit = expr.args
    assert isinstance(pattern, ir.Lit) and isinstance(zone, ir.Lit) and isinstance(unit, ir.Lit)
    utc = _instant(g, expr, value, str(unit.value))
    if utc is None:
        return '""'
    local = _local(utc, str(zone.value))
    parts = []
    for kind_, piece in R.time_pieces(str(pattern.value)):
        if kind_ == "text":
            parts.append(string(piece))
            continue
        code = _time_code(g, expr, piece, utc, local, str(zone.value))
        if code is None:
            return '""'
        parts.append(code)
    return f"iff(isnotnull({utc}), {strcat(parts)}, \"\")"


def _instant(g: KqlGenerator, expr: ir.Func, value: ir.Expr, unit: str) -> str | None:
    """The instant as a UTC datetime: a datetime column as it is, a number of seconds or
    milliseconds (formatTime(unit=)) from the epoch."""
    if isinstance(value, ir.Ref) and value.field not in g.computed and g.column_type(value.field) == "datetime":
        if unit == "seconds":
            g.lose(f"formatTime(unit=seconds): {value.field} is a datetime in KQL, not a number of seconds",
                   expr.span)
            return None
        # The column holds the instant itself (Falcon's epoch milliseconds, the shape it is read in here).
        return name(g.column(value.field, value.span, output=True) or value.field)
    if g.kind(value) == NULL:
        return "datetime(null)"
    n = number(g, value)
    if g.kind(value) != NUMBER:  # only a decimal number's text (todouble() also reads " 4" and "1_0")
        n = f"iff({text(g, value)} matches regex {_DECIMAL}, {n}, real(null))"
    seconds = f"{_EPOCH} + {n} * 1s"
    millis = f"{_EPOCH} + {n} * 1ms"
    if unit == "seconds":
        return f"({seconds})"
    if unit == "milliseconds":
        return f"({millis})"
    return f"iff({n} <= {R.AUTO_UNIT_LIMIT}, {seconds}, {millis})"


def _local(utc: str, zone: str) -> str:
    if zone in ("UTC", "GMT", "Z"):
        return utc
    offset = R._zone(zone).utcoffset(None)
    if offset is not None:  # a fixed offset
        return f"({utc} + {int(offset.total_seconds()) // 60}m)"
    return f"datetime_utc_to_local({utc}, {string(zone)})"


def _time_code(g: KqlGenerator, expr: ir.Func, code: str, utc: str, local: str, zone: str) -> str | None:
    if code in _DATETIME_ELEMENTS:
        return f"format_datetime({local}, {string(_DATETIME_ELEMENTS[code])})"
    if code == "p":
        return f"tolower(format_datetime({local}, \"tt\"))"
    if code == "N":
        return f"strcat(format_datetime({local}, \"fff\"), \"000000\")"
    if code == "j":
        day = f"dayofyear({local})"
        return f"strcat(iff({day} < 10, \"00\", iff({day} < 100, \"0\", \"\")), tostring({day}))"
    if code == "C":
        century = f"getyear({local}) / 100"
        return f"strcat(iff({century} < 10, \"0\", \"\"), tostring({century}))"
    if code in "Bbh":
        name = f"tostring({_MONTHS}[getmonth({local}) - 1])"
        return name if code == "B" else f"substring({name}, 0, 3)"
    if code in "Aa":
        name = f"tostring({_DAYS}[toint(dayofweek({local}) / 1d)])"
        return name if code == "A" else f"substring({name}, 0, 3)"
    if code in "sQ":  # whole periods, rounded down (Java's floorDiv)
        period = "second" if code == "s" else "millisecond"
        return f"tostring(datetime_diff('{period}', {utc}, {_EPOCH}))"
    if code == "Z":
        return string(zone)
    offset = R._zone(zone).utcoffset(None)
    if offset is None:
        g.lose(f"formatTime(): %z in {zone} (an offset that changes with daylight saving time) is not "
               "converted to KQL", expr.span)
        return None
    minutes = int(offset.total_seconds()) // 60
    return string(f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}")


def _replace(g: KqlGenerator, expr: ir.Func) -> str:
    value, pattern, replacement, flags = expr.args
    assert isinstance(pattern, ir.Lit) and isinstance(replacement, ir.Lit) and isinstance(flags, ir.Lit)
    regex, options = str(pattern.value), str(flags.value)
    if matches_empty(regex, options):
        g.lose("replace(): the regex can match the empty string, and RE2's replace_regex() skips an empty "
               "match right after another match, where LogScale's (Java's) replaces it", expr.span)
    import re

    compiled = re.compile(to_python(regex))
    rewrite: list[str] = []
    for piece in R.replacement_pieces(str(replacement.value), compiled.groups, dict(compiled.groupindex)):
        if isinstance(piece, str):
            rewrite.append(piece.replace("\\", "\\\\"))
        elif piece <= 9:
            rewrite.append(f"\\{piece}")
        else:
            return _unsupported(g, expr, f"replace(): RE2's rewrite refers to groups 1 to 9, not ${piece}")
    translated = g.re2(regex, options, expr.span)
    return f"replace_regex({text(g, value)}, {string(translated)}, {string(''.join(rewrite))})"


def _split(g: KqlGenerator, expr: ir.Func) -> str:
    value, by, index = expr.args
    assert isinstance(by, ir.Lit) and isinstance(index, ir.Lit)
    separator = literal_text(str(by.value))
    if separator is None:
        return _unsupported(g, expr, "splitString(): KQL's split() takes a string, not the regex "
                                     f"{by.value!r}")
    # Java's split drops trailing empty pieces: the trailing separators go first.
    array = f"split(trim_end({string('(?:' + re2_escape(separator) + ')+')}, {text(g, value)}), {string(separator)})"
    position = int(index.value)
    if position >= 0:
        return f"tostring({array}[{position}])"
    last = f"array_length({array}) - {-position}"
    return f"iff({last} >= 0, tostring({array}[{last}]), \"\")"


def literal_text(pattern: str) -> str | None:
    """The text a regex matches when it matches exactly one text (``\\\\`` → ``\\``, ``\\.`` →
    ``.``), else None."""
    import re

    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and not pattern[index + 1].isalnum():
            out.append(pattern[index + 1])
            index += 2
        elif char in "\\.^$|?*+()[]{}":
            return None
        else:
            out.append(char)
            index += 1
    literal = "".join(out)
    return literal if literal and re.fullmatch(to_python(pattern), literal) else None


def _round(g: KqlGenerator, expr: ir.Func) -> str:
    value, how = expr.args
    assert isinstance(how, ir.Lit)
    n = number(g, value)
    if how.value == "floor":
        return f"tolong(floor({n}, 1))"
    if how.value == "ceil":
        return f"tolong(ceiling({n}))"
    # Half up, towards positive infinity; n - floor(n) is exact in binary.
    return f"tolong(iff({n} - floor({n}, 1) >= 0.5, floor({n}, 1) + 1, floor({n}, 1)))"


def _now(g: KqlGenerator, expr: ir.Func) -> str:
    return f"tolong((now() - {_EPOCH}) / 1ms)"


def _coalesce(g: KqlGenerator, expr: ir.Func) -> str:
    values = [a for a in expr.args[1:] if g.kind(a) != NULL]
    if not values:
        return '""'
    as_numbers = kind(g, expr) == NUMBER  # coalesce() takes arguments of one type
    codes = [g.expr(a) if as_numbers else text(g, a) for a in values]
    return codes[0] if len(codes) == 1 else f"coalesce({', '.join(codes)})"


def _default(g: KqlGenerator, expr: ir.Func) -> str:
    value, fallback, _ = expr.args
    assert isinstance(fallback, ir.Lit)
    return f"iff({present(g, value)}, {text(g, value)}, {string(str(fallback.value))})"


def _base64(g: KqlGenerator, expr: ir.Func) -> str:
    value, charset = expr.args
    assert isinstance(charset, ir.Lit)
    if charset.value != "UTF-8":
        return _unsupported(g, expr, f"base64Decode(charset={charset.value}): KQL decodes Base64 to UTF-8 text only")
    g.lose("base64Decode(): KQL's base64_decode_tostring() gives no value where LogScale skips characters "
           "outside the Base64 alphabet or writes U+FFFD for bytes that are not UTF-8", expr.span)
    return f"base64_decode_tostring({text(g, value)})"


def _url_decode(g: KqlGenerator, expr: ir.Func) -> str:
    value = text(g, expr.args[0])
    g.lose("urlDecode(): where the escapes are not UTF-8, LogScale writes U+FFFD; what KQL's url_decode() "
           "writes is not documented", expr.span)
    # Java's URLDecoder reads + as a space and gives up on an incomplete escape (no value).
    return f"iff({value} matches regex {_BAD_ESCAPE}, \"\", url_decode(replace_string({value}, \"+\", \" \")))"


def _unit_convert(g: KqlGenerator, expr: ir.Func) -> str:
    if g.kind(expr.args[0]) != NUMBER:  # a number column holds no unit
        g.lose(UNIT_CONVERT_LOSS, expr.span)
    op, factor = unit_scale(expr)
    return g.expr(ir.Arith(op, expr.args[0], ir.Lit(factor), expr.span))


_RENDERERS: dict[str, Callable[[KqlGenerator, ir.Func], str]] = {
    "lower": _case, "upper": _case, "length": _length, "concat": _concat, "format": _format,
    "formatTime": _format_time, "replace": _replace, "splitString": _split, "round": _round, "now": _now,
    "coalesce": _coalesce, "default": _default, "base64Decode": _base64, "urlDecode": _url_decode,
    "unit:convert": _unit_convert, "crypto:md5": _md5,
}

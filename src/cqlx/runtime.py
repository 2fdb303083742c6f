"""What generated matchers call: field access and CQL's value semantics, standard library only.

This file is copied verbatim into every module written by ``cqlx convert --to python``, so the
saved matcher runs without cqlx installed. Keep it self-contained: no cqlx imports.

Regexes run on RE2 (linear time) when the ``re2`` module is installed and the rule's pattern has
an exact RE2 plan; otherwise on ``re``, each search bounded by ``REGEX_TIME_LIMIT`` through a
``SIGALRM`` timer (``_sre`` checks for signals while it backtracks), so one hostile value cannot
stall the stream: the event is then undecided, and ``run`` counts it.

Semantics (SEMANTICS.md): a field is missing when the event lacks it or holds JSON null; string
tests see strings, and numbers as their decimal text; lists and objects are not strings, so string
tests on them are false. ``#tag`` fields are read as ``#tag``, then ``tag``.
"""

import datetime
import heapq
import ipaddress
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

try:  # google-re2: linear-time matching for every pattern it can run with the same meaning
    import re2 as _re2

    _RE2_OPTIONS: Any = _re2.Options()
    _RE2_OPTIONS.log_errors = False
except ImportError:  # pragma: no cover - the saved module also runs with the standard library only
    _re2 = None

_MISSING = None

#: Seconds one backtracking regex search may take before the event is given up as undecided;
#: 0 or less: no limit. A list, so callers can set it (``REGEX_TIME_LIMIT[0] = 0.2``).
REGEX_TIME_LIMIT = [0.05]


def get(record: dict[str, Any], name: str) -> Any:
    """The value of field ``name``: ``#name`` falls back to ``name``; ``a.b`` to nested objects."""
    value = record.get(name)
    if value is not None:
        return value
    if name[:1] == "#":
        return record.get(name[1:])
    if "." in name and name not in record:
        node: Any = record
        for part in name.split("."):
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node
    return None


def text(value: Any) -> str | None:
    """The string a string test sees, or None when there is none to test."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


_INFINITY = float("inf")


def number(value: Any) -> int | float | None:
    """The number a numeric test or arithmetic sees, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):  # NaN and infinities (JSON has none; Python's reader makes them) are none
        return value if value == value and value not in (_INFINITY, -_INFINITY) else None
    if isinstance(value, str):
        stripped = value.strip()
        try:
            return int(stripped)
        except ValueError:
            pass
        try:
            result = float(stripped)
        except ValueError:
            return None
        return result if result == result and result not in (float("inf"), float("-inf")) else None
    return None


class RegexTimeout(Exception):
    """A regex search ran past ``REGEX_TIME_LIMIT``: whether the event matches is undecided."""


_ALARM = {"armed": False}


def _on_alarm(signum: int, frame: Any) -> None:
    if _ALARM["armed"]:  # a late signal, after the search ended, is ignored
        _ALARM["armed"] = False
        raise RegexTimeout(f"a regex search ran past the {REGEX_TIME_LIMIT[0] * 1000:g} ms limit")


def _bounded(method: Callable[[str], Any], string: str) -> bool:
    """``method(string) is not None``, interrupted after ``REGEX_TIME_LIMIT`` seconds when this
    thread can take a timer signal and no one else uses ``SIGALRM``."""
    return _bounded_call(method, string) is not None


def _bounded_call(method: Callable[[str], Any], string: str) -> Any:
    """``method(string)`` under the time limit of :func:`_bounded`."""
    limit = REGEX_TIME_LIMIT[0]
    if (limit <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
            or signal.getitimer(signal.ITIMER_REAL)[0]):
        return method(string)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _ALARM["armed"] = True
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return method(string)
    finally:
        _ALARM["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Regex:
    """One rule regex: ``re`` for its meaning, and the RE2 plan that has the same meaning on the
    values it covers (ASCII values for a case-insensitive plan; values without a vertical tab for
    a plan with ``\\s``). Other values, and patterns with no plan, go to ``re``, time-bounded."""

    __slots__ = ("ascii_only", "linear", "python", "vertical_tab")

    def __init__(self, python: re.Pattern[str], linear: Any, ascii_only: bool, vertical_tab: bool) -> None:
        self.python = python
        self.linear = linear
        self.ascii_only = ascii_only
        self.vertical_tab = vertical_tab

    def search(self, string: str) -> bool:
        linear = self.linear
        if (linear is not None and (not self.ascii_only or string.isascii())
                and not (self.vertical_tab and "\v" in string)):
            try:
                # The UTF-8 bytes, as RE2 reads the text either way: handed a str, the wrapper
                # encodes it and maps the match's byte offsets back to characters, which a yes/no
                # does not need (2.4x the cost of the search itself on a command line).
                return linear.search(string.encode()) is not None
            except UnicodeEncodeError:  # a lone surrogate (from a JSON \ud800 escape) is not UTF-8
                pass
        return _bounded(self.python.search, string)

    def groups(self, string: str) -> dict[str, str | None] | None:
        """The named groups of the first match (None for a group that takes no part), or None
        when nothing matches. RE2 rules out values that do not match in linear time; the groups of
        a match come from ``re``, time-bounded, whose submatch rules are Java's (RE2's differ for
        repeated empty groups)."""
        if not self.search(string):
            return None
        match = _bounded_call(self.python.search, string)
        return None if match is None else match.groupdict()

    def each_groups(self, string: str, limit: int) -> list[dict[str, str | None]]:
        """The named groups of each match, the first ``limit`` of them, in order; [] when nothing
        matches. Found as Java's ``Matcher.find()`` finds them, each search from the end of the
        match before, one character further after an empty match (``re.finditer`` differs there:
        it lets a non-empty match start where an empty one was)."""
        if not self.search(string):
            return []

        def scan(value: str) -> list[dict[str, str | None]]:
            found: list[dict[str, str | None]] = []
            start = 0
            while len(found) < limit and start <= len(value):
                match = self.python.search(value, start)
                if match is None:
                    break
                found.append(match.groupdict())
                start = match.end() + (match.end() == match.start())
            return found

        result: list[dict[str, str | None]] = _bounded_call(scan, string)
        return result


def compile_regex(pattern: str, flags: int, linear: str | None = None, ascii_only: bool = False,
                  vertical_tab: bool = False) -> Regex:
    """``pattern`` for ``re`` with ``flags``; ``linear``, the RE2 plan's pattern (when RE2 is here)."""
    compiled = None
    if linear is not None and _re2 is not None:
        try:
            compiled = _re2.compile(linear, _RE2_OPTIONS)
        except Exception:  # re2.error; the plan was checked when the module was written
            compiled = None
    return Regex(re.compile(pattern, flags), compiled, ascii_only, vertical_tab)


def search(regex: Regex, value: Any) -> bool:
    string = text(value)
    return string is not None and regex.search(string)


def groups(regex: Regex, value: Any) -> dict[str, str | None] | None:
    """A field extraction's match on a value: its named groups, or None (no match, no value)."""
    string = text(value)
    return None if string is None else regex.groups(string)


def extract_each(rows: Iterable[dict[str, Any]], regex: Regex, field: str, strict: bool, limit: int
                 ) -> list[dict[str, Any]]:
    """``regex(repeat=true)``: a copy of each record for each match (the first ``limit``), with
    that match's groups set; a record no match makes is dropped (``strict``) or kept as it is."""
    out: list[dict[str, Any]] = []
    for record in rows:
        string = text(get(record, field))
        found = [] if string is None else regex.each_groups(string, limit)
        if not found and not strict:
            out.append(record)
        out.extend(assign_groups(dict(record), groups) for groups in found)
    return out


def assign_groups(record: dict[str, Any], found: dict[str, str | None] | None) -> dict[str, Any]:
    """Each group that took part in the match sets the field of its name (copy-on-write record);
    one that did not leaves its field as it was."""
    if found:
        for name, value in found.items():
            if value is not None:
                record[name] = value
    return record


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(subnets: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(subnet, strict=False) for subnet in subnets)


def in_networks(value: Any, nets: tuple[Network, ...]) -> bool:
    """``cidr()``: the value is an IP address in one of the networks of its own version; a value that
    is no address (leading zeros included, which ``ipaddress`` refuses) is in none."""
    string = text(value)
    if string is None:
        return False
    try:
        address = ipaddress.ip_address(string)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in nets)


def equals(value: Any, expected: str) -> bool:
    return text(value) == expected


def equals_folded(value: Any, expected_folded: str) -> bool:
    string = text(value)
    return string is not None and string.lower() == expected_folded


def member(value: Any, values: frozenset[str]) -> bool:
    """Exact membership; a list matches when one of its items does (ECS keyword arrays)."""
    if isinstance(value, list):
        return any(text(item) in values for item in value)
    return text(value) in values


def compare(value: Any, op: str, constant: int | float) -> bool:
    left = number(value)
    if left is None:
        return False
    if op == ">=":
        return left >= constant
    if op == ">":
        return left > constant
    if op == "<=":
        return left <= constant
    if op == "<":
        return left < constant
    if op == "==":
        return left == constant
    return left != constant


def compare_values(op: str, left: Any, right: Any) -> bool:
    """``test(a OP b)``: numeric when both sides are numbers, else string comparison."""
    if left is None or right is None:
        return False
    a: Any = number(left)
    b: Any = number(right)
    if a is None or b is None:
        a, b = text(left), text(right)
        if a is None or b is None:
            return False
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == ">=":
        return bool(a >= b)
    if op == ">":
        return bool(a > b)
    if op == "<=":
        return bool(a <= b)
    return bool(a < b)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    else:
        string = text(node)
        if string is not None:
            yield string


#: Fields free text does not search (syntax-filters: "All fields (except for the special @id,
#: @timestamp, @ingesttimestamp fields and the tag fields) are searched, including @rawstring").
_NOT_SEARCHED = frozenset({"@id", "@timestamp", "@ingesttimestamp"})


def _searched(event: dict[str, Any]) -> Iterator[str]:
    for name, value in event.items():
        if name not in _NOT_SEARCHED and name[:1] != "#":
            yield from _strings(value)


def free_text(event: dict[str, Any], needle: str) -> bool:
    """Free-text search, case-sensitive, over the event as it came in (syntax-filters: fields added
    or removed in the pipeline do not count), ``@rawstring`` included."""
    return any(needle in string for string in _searched(event))


def free_regex(event: dict[str, Any], regex: Regex) -> bool:
    return any(regex.search(string) for string in _searched(event))


def arith(op: str, left: Any, right: Any) -> int | float | None:
    """CQL arithmetic: null when either side is missing or not a number (so ``:=`` sets nothing)."""
    a, b = number(left), number(right)
    if a is None or b is None:
        return None
    try:
        return _arith(op, a, b)
    except (OverflowError, ValueError):  # beyond a float: no value, as for text
        return None


def _arith(op: str, a: int | float, b: int | float) -> int | float | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        return None
    if op == "/":
        result = a / b
        return int(result) if result.is_integer() else result
    return a % b


def lower(value: Any) -> str | None:
    string = text(value)
    return None if string is None else string.lower()


def upper(value: Any) -> str | None:
    string = text(value)
    return None if string is None else string.upper()


# ---- value functions: format(), formatTime(), replace(), splitString()... as cqlx reads LogScale's
# documentation (library.humio.com, functions-*.html); where it is silent, the assumption is stated.
# LogScale runs on the JVM: "characters" are Java chars (UTF-16 code units), format() follows Java's
# Formatter and formatTime() its date/time conversions (functions-formattime: "a subset of the Java
# Formatter pattern format"). A function whose input is missing gives no value (``:=`` sets nothing).

_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LONG = 2 ** 63


def utf16_length(string: str) -> int:
    """The number of Java chars (UTF-16 code units) in ``string``: a character beyond the BMP is two."""
    return len(string) + sum(1 for char in string if ord(char) > 0xFFFF)


def _utf16_prefix(string: str, units: int) -> str:
    """The longest prefix of ``string`` of at most ``units`` UTF-16 code units (Java's substring
    would split a surrogate pair; keeping it whole is cqlx's choice, the text stays valid)."""
    out = []
    for char in string:
        units -= 2 if ord(char) > 0xFFFF else 1
        if units < 0:
            break
        out.append(char)
    return "".join(out)


def integer_text(value: Any) -> int | None:
    """The value as a Java long when its text is a whole number in base 10 (``"42"``, ``"-7"``)."""
    string = text(value)
    if string is None or not _INTEGER_TEXT.fullmatch(string):
        return None
    result = int(string)
    return result if -_LONG <= result < _LONG else None


def decimal_text(value: Any) -> float | None:
    """The value as a Java double when its text is a decimal number (``"2.5"``, ``"1e3"``)."""
    string = text(value)
    if string is None or not _NUMBER_TEXT.fullmatch(string):
        return None
    result = float(string)
    return result if result not in (float("inf"), float("-inf")) else None


# -- format(): Java's Formatter (%[flags][width][.precision]conversion), the subset cqlx converts

_FORMAT_SPEC = re.compile(r"%([0-9]+\$)?([-#+ 0,(<]*)([0-9]+)?(?:\.([0-9]+))?([tT]?[a-zA-Z%])")
#: Conversion → the flags it takes (Java's Formatter rejects the others).
FORMAT_FLAGS = {"s": "-", "d": "-+ 0,", "x": "-0", "X": "-0", "o": "-0", "f": "-+ 0,", "%": "", "n": ""}


class FormatSpec(NamedTuple):
    """One conversion of a format string."""

    flags: str
    width: int | None
    precision: int | None
    conversion: str


def format_pieces(pattern: str) -> list[Any]:
    """A format() string as literal texts and :class:`FormatSpec` s; ValueError names what cqlx does
    not convert (argument indexes, date/time and other conversions, flags Java rejects)."""
    pieces: list[Any] = []
    index = 0
    while True:
        found = pattern.find("%", index)
        if found < 0:
            if index < len(pattern):
                pieces.append(pattern[index:])
            return pieces
        if found > index:
            pieces.append(pattern[index:found])
        match = _FORMAT_SPEC.match(pattern, found)
        if match is None:
            raise ValueError(f"{pattern[found:found + 2]!r} is not a conversion of Java's Formatter")
        position, flags, width, precision, conversion = match.groups()
        spec = match.group(0)
        if position or "<" in flags:
            raise ValueError(f"{spec!r}: argument indexes are not converted")
        if conversion[0] in "tT" and len(conversion) == 2:
            raise ValueError(f"{spec!r}: date/time conversions are not converted (formatTime() is)")
        if conversion not in FORMAT_FLAGS:
            raise ValueError(f"{spec!r}: the conversion %{conversion} is not converted; cqlx converts "
                             "%s %d %x %X %o %f %% %n")
        bad = sorted(set(flags) - set(FORMAT_FLAGS[conversion]))
        if bad:
            raise ValueError(f"{spec!r}: Java's Formatter rejects the flag {bad[0]!r} with %{conversion}")
        if conversion in "%n" and (width or precision):
            raise ValueError(f"{spec!r}: %{conversion} takes no width or precision")
        if precision is not None and conversion not in "sf":
            raise ValueError(f"{spec!r}: Java's Formatter rejects a precision with %{conversion}")
        if ("-" in flags or "0" in flags) and not width:
            raise ValueError(f"{spec!r}: Java's Formatter needs a width with the flag '-' or '0'")
        if ("-" in flags and "0" in flags) or ("+" in flags and " " in flags):
            raise ValueError(f"{spec!r}: Java's Formatter rejects these flags together")
        if (width is not None and int(width) > 1000) or (precision is not None and int(precision) > 100):
            raise ValueError(f"{spec!r}: widths above 1000 and precisions above 100 are not converted")
        pieces.append(FormatSpec(flags, int(width) if width else None,
                                 int(precision) if precision is not None else None, conversion))
        index = match.end()


def format_arguments(pieces: list[Any]) -> int:
    """How many fields the conversions of a format string read."""
    return sum(1 for piece in pieces if isinstance(piece, FormatSpec) and piece.conversion not in "%n")


def _justify(body: str, spec: FormatSpec) -> str:
    width = spec.width
    if width is None or utf16_length(body) >= width:
        return body
    padding = width - utf16_length(body)
    if "-" in spec.flags:
        return body + " " * padding
    if "0" in spec.flags:
        sign = body[:1] if body[:1] in "+- " else ""
        return sign + "0" * padding + body[len(sign):]
    return " " * padding + body


def _signed(magnitude: str, negative: bool, flags: str) -> str:
    if negative:
        return "-" + magnitude
    return ("+" if "+" in flags else " " if " " in flags else "") + magnitude


def format_one(spec: FormatSpec, value: Any) -> str | None:
    """One conversion of a value, as Java's Formatter writes it; None when the value is missing or
    not of the conversion's kind (*assumption*: %d %x %o need a whole number's text, %f a decimal
    number's; LogScale's documentation does not say what it does with other values)."""
    conversion, flags = spec.conversion, spec.flags
    if conversion == "%":
        return "%"
    if conversion == "n":
        return "\n"
    if conversion == "s":
        string = text(value)
        if string is None:
            return None
        return _justify(string if spec.precision is None else _utf16_prefix(string, spec.precision), spec)
    if conversion == "f":
        number_ = decimal_text(value)
        if number_ is None:
            return None
        from decimal import ROUND_HALF_UP, Decimal

        # Java rounds the shortest decimal that reads back as the double, half up (FormattedFloatingDecimal).
        exact = Decimal(repr(number_)).quantize(Decimal(1).scaleb(-(6 if spec.precision is None else spec.precision)),
                                                rounding=ROUND_HALF_UP)
        negative = exact.is_signed()
        magnitude = format(abs(exact), ",f" if "," in flags else "f")
        return _justify(_signed(magnitude, negative, flags), spec)
    whole = integer_text(value)
    if whole is None:
        return None
    if conversion == "d":
        magnitude = format(abs(whole), "," if "," in flags else "d")
        return _justify(_signed(magnitude, whole < 0, flags), spec)
    unsigned = whole % (1 << 64)  # Java writes a negative long in two's complement for %x and %o
    body = format(unsigned, {"x": "x", "X": "X", "o": "o"}[conversion])
    return _justify(body, spec)


def format_string(pieces: list[Any], values: tuple[Any, ...]) -> str | None:
    """format(): the pieces with each conversion applied to the next value; None when a value is
    missing or cannot be converted (*assumption*: the output field is then not set)."""
    out = []
    values_left = iter(values)
    for piece in pieces:
        if not isinstance(piece, FormatSpec):
            out.append(piece)
            continue
        value = next(values_left, None) if piece.conversion not in "%n" else None
        written = format_one(piece, value)
        if written is None:
            return None
        out.append(written)
    return "".join(out)


# -- formatTime(): Java's date/time conversions, spelled %Y rather than %tY (functions-formattime)

#: Codes cqlx converts; composites are written out (Java's Formatter: %tR is %tH:%tM, and so on).
TIME_CODES = frozenset("HIklMSLNpzZsQBbhAaCYyjmdeRTrDFc%")
TIME_COMPOSITES = {"R": "%H:%M", "T": "%H:%M:%S", "r": "%I:%M:%S %P", "D": "%m/%d/%y", "F": "%Y-%m-%d",
                   "c": "%a %b %d %H:%M:%S %Z %Y"}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: formatTime(unit=auto): "If the number is less than or equals to 100,000,000,000, it's interpreted
#: as seconds, otherwise it's interpreted as milliseconds" (functions-formattime).
AUTO_UNIT_LIMIT = 100_000_000_000


def time_pieces(pattern: str, inner: bool = False) -> list[tuple[str, str]]:
    """A formatTime() string as ("text", literal) and ("code", letter) pieces, composites written
    out (``%P`` is upper-case AM/PM, Java's ``%Tp``, only inside ``%r``). ValueError names a code
    cqlx does not convert."""
    pieces: list[tuple[str, str]] = []

    def literal(string: str) -> None:
        if not string:
            return
        if pieces and pieces[-1][0] == "text":
            pieces[-1] = ("text", pieces[-1][1] + string)
        else:
            pieces.append(("text", string))

    index = 0
    while index < len(pattern):
        found = pattern.find("%", index)
        if found < 0:
            literal(pattern[index:])
            break
        literal(pattern[index:found])
        code = pattern[found + 1:found + 2]
        if code == "P" and inner:
            pieces.append(("code", "P"))
        elif code not in TIME_CODES:
            raise ValueError(f"'%{code}' is not a formatTime() code cqlx converts; it converts "
                             + " ".join("%" + c for c in sorted(TIME_CODES)))
        elif code == "%":
            literal("%")
        elif code in TIME_COMPOSITES:
            for kind, piece in time_pieces(TIME_COMPOSITES[code], True):
                if kind == "text":
                    literal(piece)
                else:
                    pieces.append((kind, piece))
        else:
            pieces.append(("code", code))
        index = found + 2
    return pieces


def _zone(name: str) -> Any:
    import datetime

    if name in ("UTC", "Z", "GMT"):
        return datetime.UTC
    offset = re.fullmatch(r"([+-])([0-9]{2}):?([0-9]{2})", name)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        return datetime.timezone(sign * datetime.timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3))))
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def epoch_millis(value: Any, unit: str) -> int | None:
    """The instant a field holds, in milliseconds since the epoch: seconds or milliseconds by
    ``unit`` (auto: seconds up to 100,000,000,000). *Assumption*: a fraction is kept to the
    millisecond, rounded down (the documentation speaks of 64-bit integers only)."""
    number_ = decimal_text(value)
    string = text(value)
    if number_ is None or string is None:
        return None
    from decimal import Decimal

    exact = Decimal(string)
    seconds = unit == "seconds" or (unit == "auto" and exact <= AUTO_UNIT_LIMIT)
    millis = int((exact * 1000 if seconds else exact).to_integral_value(rounding="ROUND_FLOOR"))
    return millis if -_LONG <= millis < _LONG else None


def format_time(pieces: list[tuple[str, str]], value: Any, zone: str, unit: str) -> str | None:
    """formatTime(): the instant in ``zone`` written by the pieces; None when the field is missing,
    not a number, or beyond the years 1 to 9999."""
    import datetime

    millis = epoch_millis(value, unit)
    if millis is None:
        return None
    try:
        moment = datetime.datetime.fromtimestamp(millis // 1000, _zone(zone)).replace(
            microsecond=(millis % 1000) * 1000)
    except (OverflowError, OSError, ValueError):
        return None
    return "".join(piece if kind == "text" else _time_code(piece, moment, millis, zone) for kind, piece in pieces)


def _time_code(code: str, moment: Any, millis: int, zone: str) -> str:
    hour12 = moment.hour % 12 or 12
    if code in "HMSmdjyC":
        number_ = {"H": moment.hour, "M": moment.minute, "S": moment.second, "m": moment.month,
                   "d": moment.day, "j": moment.timetuple().tm_yday, "y": moment.year % 100,
                   "C": moment.year // 100}[code]
        return f"{number_:0{3 if code == 'j' else 2}d}"
    simple = {"I": f"{hour12:02d}", "k": str(moment.hour), "l": str(hour12), "e": str(moment.day),
              "L": f"{millis % 1000:03d}", "N": f"{(millis % 1000) * 1_000_000:09d}",
              "p": "am" if moment.hour < 12 else "pm", "P": "AM" if moment.hour < 12 else "PM",
              "s": str(millis // 1000), "Q": str(millis), "Y": f"{moment.year:04d}",
              "B": _MONTHS[moment.month - 1], "b": _MONTHS[moment.month - 1][:3], "h": _MONTHS[moment.month - 1][:3],
              "A": _DAYS[moment.weekday()], "a": _DAYS[moment.weekday()][:3]}
    if code in simple:
        return simple[code]
    if code == "Z":
        return zone
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _limited(call: Callable[[], Any]) -> Any:
    """``call()`` (a regex replace or split), interrupted after ``REGEX_TIME_LIMIT`` seconds as a
    search is (:func:`_bounded`): the event is then undecided."""
    limit = REGEX_TIME_LIMIT[0]
    if (limit <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
            or signal.getitimer(signal.ITIMER_REAL)[0]):
        return call()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _ALARM["armed"] = True
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return call()
    finally:
        _ALARM["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- replace(): Java's Matcher.replaceAll; the replacement's $n and ${name} are groups, \x is x

def replacement_pieces(replacement: str, groups: int, names: dict[str, int]) -> list[Any]:
    """A replace() replacement as literal texts and group numbers (Java's appendReplacement: the
    first digit after ``$`` is a group, later digits join it while the group exists). ValueError
    for what Java rejects: a trailing ``\\`` or ``$``, ``$`` before anything else, an unknown group."""
    out: list[Any] = []
    literal: list[str] = []
    index = 0
    while index < len(replacement):
        char = replacement[index]
        if char == "\\":
            if index + 1 == len(replacement):
                raise ValueError("the replacement ends with a '\\' that escapes nothing")
            literal.append(replacement[index + 1])
            index += 2
            continue
        if char != "$":
            literal.append(char)
            index += 1
            continue
        index += 1
        if index < len(replacement) and replacement[index] == "{":
            close = replacement.find("}", index)
            name = replacement[index + 1:close] if close > 0 else ""
            if name not in names:
                raise ValueError(f"the replacement names a group {name!r} the regex does not have")
            group = names[name]
            index = close + 1
        else:
            if index == len(replacement) or replacement[index] not in "0123456789":
                raise ValueError("a '$' in the replacement must be followed by a group number or {name} "
                                 "(write \\$ for a dollar sign)")
            group = int(replacement[index])
            if group > groups:
                raise ValueError(f"the replacement refers to group {group}, which the regex does not have")
            index += 1
            while index < len(replacement) and replacement[index] in "0123456789" \
                    and group * 10 + int(replacement[index]) <= groups:
                group = group * 10 + int(replacement[index])
                index += 1
        if literal:
            out.append("".join(literal))
            literal = []
        out.append(group)
    if literal:
        out.append("".join(literal))
    return out


def replace_all(regex: Regex, value: Any, pieces: list[Any]) -> str | None:
    """replace(): every match of the regex in the value's text replaced; None when it is missing."""
    string = text(value)
    if string is None:
        return None

    def expand(match: re.Match[str]) -> str:
        return "".join(piece if isinstance(piece, str) else (match.group(piece) or "") for piece in pieces)

    result: str = _limited(lambda: regex.python.sub(expand, string))
    return result


# -- splitString(): Java's String.split

def java_split(regex: Regex, string: str) -> list[str]:
    """Java's ``String.split(regex)``: a zero-width match at the start makes no leading empty
    piece, trailing empty pieces are dropped, and a value without a match is itself."""
    cuts = [m.span() for m in _limited(lambda: list(regex.python.finditer(string))) if m.end() > 0]
    if not cuts:
        return [string]
    pieces = []
    start = 0
    for begin, end in cuts:
        pieces.append(string[start:begin])
        start = end
    pieces.append(string[start:])
    while pieces and pieces[-1] == "":
        pieces.pop()
    return pieces


def split_index(regex: Regex, value: Any, index: int) -> str | None:
    """splitString(index=i): the i-th piece (-1 the last); None when there is none."""
    string = text(value)
    if string is None:
        return None
    pieces = java_split(regex, string)
    position = index + len(pieces) if index < 0 else index
    return pieces[position] if 0 <= position < len(pieces) else None


# -- the others

def length(value: Any) -> int | None:
    """length(): the number of Java chars (UTF-16 code units) in the value's text."""
    string = text(value)
    return None if string is None else utf16_length(string)


def concat(*values: Any) -> str | None:
    """concat([a, b]): the texts of the fields that are present (*assumption*: a missing field adds
    nothing; with none present the output is not set)."""
    texts = [string for string in map(text, values) if string is not None]
    return "".join(texts) if texts else None


def md5_hex(*values: Any) -> str:
    """crypto:md5(): the MD5 of the UTF-8 encoding of the fields' texts concatenated, a missing or
    empty field counting as the empty string (functions-crypto-md5), so every event gets one.
    *Assumption*: lower-case hex digits (the documentation says "a hex string"; Splunk's md5()
    and Kusto's hash_md5() write lower case). A lone surrogate is encoded as ``?``, as Java does."""
    import hashlib

    joined = "".join(string for string in map(text, values) if string is not None)
    return hashlib.md5(joined.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()


def default_value(value: Any, fallback: Any, replace_empty: bool) -> Any:
    """default(): the field's value, or ``fallback`` when it is missing (or empty, with
    replaceEmpty=true) (functions-default)."""
    if value is None or (replace_empty and value == ""):
        return fallback
    return value


def coalesce(ignore_empty: bool, *values: Any) -> Any:
    """coalesce(): the first value that is present (and not the empty string, with ignoreEmpty,
    its default) (functions-coalesce)."""
    for value in values:
        if value is not None and not (ignore_empty and value == ""):
            return value
    return None


def round_number(value: Any, how: str) -> int | float | None:
    """round(how=round|floor|ceil): the nearest whole number; a half rounds up, towards positive
    infinity (*assumption*: Java's Math.round; the documentation says only "<0.5 rounds down,
    >0.5 rounds up"). A whole number stays as it is."""
    number_ = number(value)
    if number_ is None or isinstance(number_, int):
        return number_
    import math

    floor = math.floor(number_)
    if how == "floor":
        return floor
    if how == "ceil":
        return math.ceil(number_)
    return floor + 1 if number_ - floor >= 0.5 else floor  # number_ - floor is exact in binary


#: now()'s value while run() runs: LogScale's "in historical queries, the current time is when
#: the query is issued" (functions-now), one value for every event, as KQL's and SPL's now() are.
#: None outside run(): match() reads one event as a live query does, at the time of the call.
QUERY_TIME: list[int | None] = [None]


def now_millis() -> int:
    """now(): the query's time (:data:`QUERY_TIME`), else the current time, in milliseconds since
    the epoch."""
    import time

    issued = QUERY_TIME[0]
    return issued if issued is not None else int(time.time() * 1000)


_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_decode(value: Any, charset: str) -> str | None:
    """base64Decode(): characters outside the Base64 alphabet are ignored; an invalid encoding gives
    no value; bytes the charset cannot decode become U+FFFD (functions-base64decode). *Assumption*
    (Java's MIME decoder): padding is optional, but when present it must be complete."""
    string = text(value)
    if string is None:
        return None
    import base64

    data = "".join(char for char in string.split("=", 1)[0] if char in _BASE64)
    padding = "".join(char for char in string[len(string.split("=", 1)[0]):] if char in _BASE64 or char == "=")
    if len(data) % 4 == 1 or (padding and padding != "=" * (-len(data) % 4)):
        return None
    decoded = base64.b64decode(data + "=" * (-len(data) % 4))
    codec = {"UTF-8": "utf-8", "ISO-8859-1": "latin-1", "UTF-16BE": "utf-16-be", "UTF-16LE": "utf-16-le"}[charset]
    return decoded.decode(codec, "replace")


def url_decode(value: Any) -> str | None:
    """urlDecode(): Java's URLDecoder with UTF-8 (``+`` is a space, runs of %XX are UTF-8 bytes,
    invalid bytes become U+FFFD); *assumption*: an incomplete or non-hex escape (which Java
    rejects) gives no value."""
    string = text(value)
    if string is None:
        return None
    out: list[str] = []
    index = 0
    while index < len(string):
        char = string[index]
        if char == "+":
            out.append(" ")
            index += 1
        elif char == "%":
            run = bytearray()
            while index < len(string) and string[index] == "%":
                digits = string[index + 1:index + 3]
                if len(digits) < 2 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    return None
                run.append(int(digits, 16))
                index += 3
            out.append(run.decode("utf-8", "replace"))
        else:
            out.append(char)
            index += 1
    return "".join(out)


def shannon_entropy(value: Any) -> float | None:
    """shannonEntropy(): -sum(p * log2(p)) over the value's Java chars (functions-shannonentropy:
    example.com gives 3.095795); *assumption*: an empty value gives none."""
    string = text(value)
    if not string:
        return None
    import math

    units = string.encode("utf-16-le", "surrogatepass")
    counts: dict[bytes, int] = {}
    for offset in range(0, len(units), 2):
        unit = units[offset:offset + 2]
        counts[unit] = counts.get(unit, 0) + 1
    total = len(units) // 2
    return -sum(count / total * math.log2(count / total) for count in counts.values())


def array_values(record: dict[str, Any], name: str, start: int = 0, stop: int = -1) -> list[Any]:
    """The elements of array ``name``: the values of ``name[start]``, ``name[start + 1]``... up to
    ``name[stop]`` (-1: no end), stopping at the first index missing (the Array Syntax)."""
    values: list[Any] = []
    while stop < 0 or start + len(values) <= stop:
        value = get(record, f"{name}[{start + len(values)}]")
        if value is None:
            break
        values.append(value)
    return values


def concat_array(record: dict[str, Any], name: str, start: int, stop: int, prefix: str, separator: str,
                 suffix: str) -> str | None:
    """concatArray(): the texts of name[start], name[start + 1]... up to name[stop] (-1: no end),
    stopping at the first missing index (or one with no text); no value when the first is missing
    (functions-concatarray)."""
    texts = []
    for value in array_values(record, name, start, stop):
        string = text(value)
        if string is None:
            break
        texts.append(string)
    return prefix + separator.join(texts) + suffix if texts else None


def assign(record: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """``name := value`` on a copy-on-write record; a null value leaves the field as it was."""
    if value is None:
        return record
    record[name] = value
    return record


def project(record: dict[str, Any], names: tuple[str, ...], times: tuple[str, ...] = ()) -> dict[str, Any]:
    """``select()``: the named fields in order; missing ones are left out of the row. A time field
    of ``times`` (``@timestamp``) the record lacks is read from the other (:func:`field_value`)."""
    row = {}
    for name in names:
        value = field_value(record, name, times) if times else get(record, name)
        if value is not None:
            row[name] = value
    return row


def drop(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``drop()``: the row without the named fields (a ``#tag`` also under its plain name)."""
    gone = set(names) | {n[1:] for n in names if n[:1] == "#"}
    return {k: v for k, v in record.items() if k not in gone}


def project_as(record: dict[str, Any], pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``select()`` under a profile: each output field read from its name in the events."""
    row = {}
    for name, source in pairs:
        value = get(record, source)
        if value is not None:
            row[name] = value
    return row


class _Descending:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: "_Descending") -> bool:
        result: bool = other.value < self.value
        return result

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]  # compared only, never hashed


def sort_key(record: dict[str, Any], keys: tuple[tuple[Any, bool, str], ...]) -> tuple[Any, ...]:
    """The key that orders rows as ``sort()``: missing or unparsable values go last, either way.
    A key of kind ``time`` names the fields that hold the event time (:func:`event_time`)."""
    parts: list[tuple[int, Any]] = []
    for name, descending, kind in keys:
        value: Any
        if kind == "time":  # name holds the time fields (event_time)
            value = event_time(record, name)
            parts.append((1, 0) if value is None else (0, -value if descending else value))
            continue
        raw = get(record, name)
        if kind == "number":
            value = number(raw)
        elif kind == "hex":
            string = text(raw)
            try:
                value = int(string, 16) if string is not None else None
            except ValueError:
                value = None
        else:
            value = text(raw)
        if value is None:
            parts.append((1, 0))
        elif descending:
            parts.append((0, -value if kind != "string" else _Descending(value)))
        else:
            parts.append((0, value))
    return tuple(parts)


def top(rows: Iterable[dict[str, Any]], keys: tuple[tuple[Any, bool, str], ...], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` rows in ``sort()`` order; ties keep their input order. Holds only
    ``limit`` rows at a time."""
    return heapq.nsmallest(limit, rows, key=lambda row: sort_key(row, keys))


def event_time(record: dict[str, Any], names: tuple[str, ...]) -> int | float | None:
    """The event's time in epoch milliseconds, from the first of ``names`` that holds one
    (``@timestamp``, then ``timestamp``: LogScale's export and raw FDR): a number or numeric text
    is epoch milliseconds, other text an ISO 8601 date and time (ECS); None when there is none."""
    for name in names:
        value = get(record, name)
        if value is None:
            continue
        millis = number(value)
        if millis is None and isinstance(value, str):
            millis = _iso_millis(value)
        if millis is not None:
            return millis
    return None


def _iso_millis(value: str) -> int | float | None:
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    millis = moment.timestamp() * 1000
    return int(millis) if millis == int(millis) else millis


def time_bucket(millis: Any, span: int) -> int | None:
    """The start of the ``span``-millisecond bucket (aligned to the epoch, UTC) that holds ``millis``."""
    if millis is None:
        return None
    return int(millis // span) * span


def field_value(record: dict[str, Any], name: str, times: tuple[str, ...]) -> Any:
    """A field's value; a time field (``@timestamp``) falls back to the event's other time field
    (raw FDR carries the event time as ``timestamp``, epoch milliseconds as text)."""
    value = get(record, name)
    if value is None and name in times:
        for other in times:
            value = get(record, other)
            if value is not None:
                break
    return value


def tail(rows: Iterable[dict[str, Any]], times: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
    """``tail()``: the ``limit`` newest rows by event time, newest first; rows without a time are
    older than any row with one, and among them the last ones are the newest. Holds ``limit`` rows."""
    newest = heapq.nlargest(limit, enumerate(rows), key=lambda item: _newness(item[0], item[1], times))
    return [row for _, row in newest]


def _newness(position: int, row: dict[str, Any], times: tuple[str, ...]) -> tuple[int, Any, int]:
    """How new a row is, for tail(): by event time, a row without one older than any row with one,
    then by position (the later the newer)."""
    when = event_time(row, times)
    return (0, 0, position) if when is None else (1, when, position)


def group_tail(rows: Iterable[dict[str, Any]], keys: tuple[str, ...], count: int, limit: int | None,
               times: tuple[str, ...]) -> list[dict[str, Any]]:
    """``groupBy(keys, function=tail(count))``: of each group, its ``count`` newest rows as
    :func:`tail` picks them, whole, newest first; groups in the order first met. Groups are made as
    :func:`aggregate` makes them (no value for a key: in no group; keys compared as text; past
    ``limit`` groups, the rows of new groups are left out). Holds ``count`` rows per group."""
    groups: dict[tuple[str, ...], list[tuple[tuple[int, Any, int], int, dict[str, Any]]]] = {}
    for position, row in enumerate(rows):
        texts = tuple(text(get(row, name)) for name in keys)
        if None in texts:
            continue
        kept = groups.get(texts)  # type: ignore[arg-type]
        if kept is None:
            if limit is not None and len(groups) >= limit:
                continue
            kept = groups[texts] = []  # type: ignore[index]
        newness = _newness(position, row, times)
        entry = (newness, position, row)
        if len(kept) < count:
            heapq.heappush(kept, entry)
        elif newness > kept[0][0]:
            heapq.heapreplace(kept, entry)
    return [row for kept in groups.values() for _, _, row in sorted(kept, reverse=True)]


#: Aggregate functions that give a value (0, or none) over no events: a group of them is a row
#: even without events (count() over nothing is 0). The others (collect, selectLast,
#: selectFromMax/Min) give a row only with a value (functions-selectfrommax: zero or one event).
_ROW_ALWAYS = frozenset({"count", "sum", "min", "max", "avg", "percent"})


def _initial(function: tuple[Any, ...]) -> Any:
    name, distinct = function[0], function[3]
    if distinct:
        return set()
    if name in ("count", "sum", "percent"):
        return 0
    if name == "collect":
        return {}
    return None


class _Group:
    """The running state of one group: its key values as first met and one slot per function."""

    __slots__ = ("keys", "state")

    def __init__(self, keys: tuple[Any, ...], functions: tuple[tuple[Any, ...], ...]) -> None:
        self.keys = keys
        self.state: list[Any] = [_initial(function) for function in functions]


def _accumulate(state: list[Any], functions: tuple[tuple[Any, ...], ...], row: dict[str, Any],
                when: tuple[int, Any, int] | None, times: tuple[str, ...]) -> None:
    """Add one row to a group's state (see :func:`aggregate`)."""
    for index, function in enumerate(functions):
        name, field, _, distinct, by = function[:5]
        if field is None:
            state[index] += 1
            continue
        if by is not None:  # selectFromMax / selectFromMin: the event with the largest / smallest number
            amount = event_time(row, times) if by in times else number(get(row, by))
            best = state[index]
            if amount is not None and (best is None or (amount > best[0] if name == "selectFromMax"
                                                        else amount < best[0])):
                state[index] = (amount, field_value(row, field, times))
            continue
        value = field_value(row, field, times)
        if value is None:
            continue
        if name == "selectLast":
            if state[index] is None or when >= state[index][0]:  # `when` is set: selectLast makes the run timed
                state[index] = (when, value)
        elif name == "collect":
            shown = text(value)
            if shown is not None and shown not in state[index] and len(state[index]) < function[5]:
                state[index][shown] = None
        elif name == "count":
            if distinct:
                shown = text(value)
                if shown is not None:
                    state[index].add(shown)
            else:
                state[index] += 1
        else:
            amount = number(value)
            if amount is None:
                continue
            if name in ("sum", "percent"):
                state[index] += amount
            elif name == "avg":
                total, seen = state[index] or (0, 0)
                state[index] = (total + amount, seen + 1)
            elif state[index] is None or (amount < state[index] if name == "min" else amount > state[index]):
                state[index] = amount


def _result(function: tuple[Any, ...], value: Any, total: Any) -> Any:
    """A function's output from its final state (``total``: its state summed over every group)."""
    name = function[0]
    if function[3]:
        return len(value)
    if name == "avg":
        return None if value is None else value[0] / value[1]
    if name == "collect":
        return function[6].join(sorted(value)) if value else None
    if name in ("selectLast", "selectFromMax", "selectFromMin"):
        return None if value is None else value[1]
    if name == "percent":
        return value * 100 / total if total else None
    return value


def aggregate(rows: Iterable[dict[str, Any]], keys: tuple[str, ...],
              functions: tuple[tuple[Any, ...], ...], limit: int | None,
              names: tuple[str, ...] | None = None, times: tuple[str, ...] = (),
              series: int | None = None) -> list[dict[str, Any]]:
    """``groupBy()`` (or ``stats()``, ``top()``, ``bucket()``, a standalone ``count()``...): one row
    per group, holding the key fields (under ``names``, when the events name them otherwise) and
    each function's output. ``functions`` are (name, field or None, output, distinct, by, limit,
    separator); ``times`` the fields that hold the event time.

    An event without a value for every key is in no group (Splunk's stats ``by`` and LogScale's
    groupBy leave such events out). Key values are compared as the text string tests see, so 5 and
    "5" are one group. Past ``limit`` groups, events of new groups are left out (LogScale warns and
    returns a subset). Numbers are read as arithmetic reads them; a value that is no number is
    skipped. ``count(f)`` counts events that have ``f``, ``distinct`` its distinct texts; ``sum``
    of no numbers is 0, ``min``/``max``/``avg`` of none leave the output unset. ``collect`` keeps
    the first ``limit`` distinct texts and joins them sorted (LogScale's order is undefined);
    ``selectLast`` the value of the most recent event with the field (ties: the later event);
    ``selectFromMax``/``Min`` the field of the first event with the largest/smallest number in
    ``by`` (an event time when ``by`` is one); ``percent`` the group's share of every group's count
    (or sum). With ``series`` (bucket(), timeChart()), only the ``series`` series (the key values
    but ``_bucket``) with the largest output values are kept. Memory: one state per group (a
    distinct count or a collect holds its group's distinct values)."""
    groups: dict[tuple[str, ...], _Group] = {}
    timed = any(function[0] == "selectLast" for function in functions)
    for position, row in enumerate(rows):
        values = tuple(get(row, name) for name in keys)
        texts = tuple(text(value) for value in values)
        if None in texts:
            continue
        identity: tuple[str, ...] = texts  # type: ignore[assignment]  # None was ruled out above
        group = groups.get(identity)
        if group is None:
            if limit is not None and len(groups) >= limit:
                continue
            group = groups[identity] = _Group(values, functions)
        when = None
        if timed:
            moment = event_time(row, times)
            when = (0, 0, position) if moment is None else (1, moment, position)
        _accumulate(group.state, functions, row, when, times)
    if not keys and not groups:
        groups[()] = _Group((), functions)  # count() over no events is one row with 0
    totals = [sum(group.state[index] for group in groups.values()) if function[0] == "percent" else None
              for index, function in enumerate(functions)]
    always = not keys and any(function[0] in _ROW_ALWAYS for function in functions)
    out = []
    for group in groups.values():
        result: dict[str, Any] = dict(zip(names or keys, group.keys, strict=True))
        for function, value, total in zip(functions, group.state, totals, strict=True):
            value = _result(function, value, total)
            if value is not None:
                result[function[2]] = value
        if keys or always or len(result) > 0:
            out.append(result)
    if series is not None:
        out = _top_series(out, tuple(n for n in (names or keys) if n != "_bucket"),
                          tuple(function[2] for function in functions), series)
    return out


def _top_series(rows: list[dict[str, Any]], series_keys: tuple[str, ...], outputs: tuple[str, ...],
                limit: int) -> list[dict[str, Any]]:
    """The rows of the ``limit`` series whose largest output value is largest (functions-timechart:
    limit prioritises the series with the highest value across all fields); ties: the first met."""
    if not series_keys:
        return rows
    best: dict[tuple[str | None, ...], float] = {}
    for row in rows:
        identity = tuple(text(row.get(name)) for name in series_keys)
        numbers = [n for n in (number(row.get(name)) for name in outputs) if n is not None]
        peak = max(numbers) if numbers else float("-inf")
        best[identity] = max(best.get(identity, float("-inf")), peak)
    ranked = sorted(best, key=lambda identity: -best[identity])  # stable: ties keep first-met order
    kept = set(ranked[:limit])
    return [row for row in rows if tuple(text(row.get(name)) for name in series_keys) in kept]


def totals(rows: Iterable[dict[str, Any]], functions: tuple[tuple[Any, ...], ...],
           times: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``stats([sum(x, as=total), sort(...)])``: every row gains the outputs of ``functions`` (as
    :func:`aggregate` takes them; each gives a row over no rows) computed over all the rows, the
    Cartesian product of one row with the rows; over no rows, the outputs alone are the one row
    (functions-stats: a function with no rows counts as one empty row)."""
    kept = list(rows)
    overall = aggregate(kept, (), functions, None, None, times)[0]
    return [{**row, **overall} for row in kept] if kept else [overall]


def barrier(rows: Iterable[dict[str, Any]], spec: tuple[Any, ...]) -> list[dict[str, Any]]:
    """A stage that needs every row before it can give one: ``("sort", keys, limit)``,
    ``("tail", times, limit)``, ``("group_tail", keys, count, limit, times)``,
    ``("join_rows", join number, fields, strict)``, ``("extract_each", regex, field, strict, limit)``,
    ``("totals", functions, times)`` or ``("aggregate", keys, functions, limit, key names, times,
    series limit)``."""
    if spec[0] == "sort":
        return top(rows, spec[1], spec[2])
    if spec[0] == "tail":
        return tail(rows, spec[1], spec[2])
    if spec[0] == "group_tail":
        return group_tail(rows, spec[1], spec[2], spec[3], spec[4])
    if spec[0] == "join_rows":
        return join_rows(rows, spec[1], spec[2], spec[3])
    if spec[0] == "extract_each":
        return extract_each(rows, spec[1], spec[2], spec[3], spec[4])
    if spec[0] == "totals":
        return totals(rows, spec[1], spec[2])
    return aggregate(rows, spec[1], spec[2], spec[3], spec[4], spec[5], spec[6])


def counted(rows: Iterable[dict[str, Any]], counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    """Pass rows through, counting them in counts["matched"]."""
    for row in rows:
        counts["matched"] = counts.get("matched", 0) + 1
        yield row


def guarded(segment: Callable[[dict[str, Any]], Any], events: Iterable[dict[str, Any]],
            counts: dict[str, int] | None) -> Iterator[dict[str, Any]]:
    """The rows ``segment`` keeps; with ``counts``, an event whose regex ran past the time limit
    is counted in counts["timed_out"] and passed over (without, the RegexTimeout propagates)."""
    stream = iter(events)
    while True:
        try:
            for row in map(segment, stream):
                if row is not None:
                    yield row
            return
        except RegexTimeout:
            if counts is None:
                raise
            counts["timed_out"] = counts.get("timed_out", 0) + 1


# ---- lookup files (match()) ----

#: The rows of each lookup file a rule's match() reads, by file name as the rule writes it: a list
#: of {column: value} (csv.DictReader's rows). Set before running the rule.
LOOKUPS: dict[str, Any] = {}
_LOOKUP_INDEXES: dict[Any, Any] = {}


class LookupFileError(Exception):
    """A lookup file a match() reads is missing, lacks a column, or is ambiguous for an event."""


def _cell(value: Any) -> str:
    string = text(value)
    return "" if string is None else string


def _written(row: dict[str, Any], include: Any) -> dict[str, str]:
    names = list(row) if include is None else include
    return {name: _cell(row.get(name)) for name in names}


def _glob_key(cell: str, ignore_case: bool) -> "re.Pattern[str]":
    body = ".*".join(re.escape(part) for part in cell.split("*"))
    return re.compile(body + "\\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _lookup_index(spec: tuple[Any, ...]) -> tuple[Any, ...]:
    """The file's rows keyed as the match() reads them, built once per spec and rows."""
    file, _, columns, include, _, ignore_case, mode, _ = spec
    rows = LOOKUPS.get(file)
    if rows is None:
        raise LookupFileError(f"match() reads the lookup file {file!r}, which was not given (cqlx run --lookup "
                              f"{file}=PATH; API: compile_matcher(..., lookups={{{file!r}: PATH_OR_ROWS}}))")
    cached: tuple[Any, ...] | None = _LOOKUP_INDEXES.get(spec)
    if cached is not None and cached[0] is rows:
        return cached
    header = list(rows[0]) if rows else []
    for name in (*columns, *(include or ())):
        if rows and name not in header:
            raise LookupFileError(f"the lookup file {file!r} has no column {name!r} (its columns: {', '.join(header)})")
    exact: dict[tuple[str, ...], tuple[int, dict[str, str]]] = {}
    patterns: list[tuple[int, tuple[Any, ...], dict[str, str]]] = []
    for number, row in enumerate(rows, 2):  # line 1 is the header
        cells = [_cell(row.get(name)) for name in columns]
        if "" in cells:
            continue  # an empty key cell matches no event (cqlx's reading; functions-match is silent)
        written = _written(row, include)
        if mode == "string":
            key = tuple(c.lower() for c in cells) if ignore_case else tuple(cells)
            seen = exact.get(key)
            if seen is not None and seen[1] != written:
                raise LookupFileError(f"the lookup file {file!r} has rows {seen[0]} and {number} for the key "
                                      f"{', '.join(cells)} with different values in the columns match() writes; "
                                      "LogScale's match() (nrows=1) uses one of them, and which is not documented")
            exact[key] = (number, written)
        elif mode == "glob":
            patterns.append((number, tuple(_glob_key(c, ignore_case) for c in cells), written))
        else:
            try:
                networks = tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cells)
            except ValueError:
                raise LookupFileError(f"the lookup file {file!r}, line {number}: {', '.join(cells)} is not a CIDR "
                                      "subnet (match(mode=cidr))") from None
            patterns.append((number, networks, written))
    built = (rows, exact, patterns)
    _LOOKUP_INDEXES[spec] = built
    return built


def _matching_row(spec: tuple[Any, ...], values: list[str]) -> dict[str, str] | None:
    file, _, _, _, _, ignore_case, mode, _ = spec
    _, exact, patterns = _lookup_index(spec)
    if mode == "string":
        found = exact.get(tuple(v.lower() for v in values) if ignore_case else tuple(values))
        return None if found is None else found[1]
    hits: list[tuple[Any, int, dict[str, str]]] = []
    if mode == "glob":
        hits = [((), n, w) for n, keys, w in patterns
                if all(k.match(v) is not None for k, v in zip(keys, values, strict=True))]
    else:
        try:
            addresses = [ipaddress.ip_address(v.strip()) for v in values]
        except ValueError:
            return None  # not an IP: in no subnet
        for number, networks, written in patterns:
            if all(a.version == n.version and a in n for a, n in zip(addresses, networks, strict=True)):
                # functions-match: "the most specific one is selected"
                hits.append((tuple(-n.prefixlen for n in networks), number, written))
        if hits:
            best = min(h[0] for h in hits)
            hits = [h for h in hits if h[0] == best]
    if not hits:
        return None
    if any(h[2] != hits[0][2] for h in hits[1:]):
        raise LookupFileError(f"the lookup file {file!r} has rows {hits[0][1]} and {hits[1][1]} that both match "
                              f"{', '.join(values)} ({mode}) with different values in the columns match() writes; "
                              "which of them LogScale's match() (nrows=1) uses is not documented")
    return hits[0][2]


def lookup(record: dict[str, Any], spec: tuple[Any, ...]) -> dict[str, Any] | None:
    """``match()``: the record with the matching row's columns written, the record as it is
    (no match, ``strict=false``), or None (dropped). ``spec`` is (file, fields, columns, include,
    strict, ignore_case, mode, negated)."""
    fields, strict, negated = spec[1], spec[4], spec[7]
    values = [_cell(get(record, name)) for name in fields]
    return _with_row(record, None if "" in values else _matching_row(spec, values), strict, negated)


def _with_row(record: dict[str, Any], row: dict[str, Any] | None, strict: bool, negated: bool
              ) -> dict[str, Any] | None:
    """The record with a matching row's fields written; without one, the record (not ``strict``)
    or None; negated, the record only when nothing matched."""
    if negated:
        return None if row is not None else record
    if row is None:
        return None if strict else record
    out = dict(record)
    out.update(row)
    return out


# ---- join() ----

#: Each join()'s subquery rows by key, set by prepare_joins() before the events run.
JOINED: list[dict[tuple[str, ...], Any]] = []  # a row per key, or (nrows=max) a list of rows


class JoinError(Exception):
    """A join() whose subquery has rows for one key that say different things."""


def run_pipeline(segments: tuple[Any, ...], barriers: tuple[Any, ...], events: Iterable[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """The rows of a (sub)query's segments over ``events``, barriers between them."""
    rows = [row for row in map(segments[0], events) if row is not None]
    for spec, segment in zip(barriers, segments[1:], strict=True):
        rows = [row for row in map(segment, barrier(rows, spec)) if row is not None]
    return rows


def prepare_joins(joins: tuple[Any, ...], events: list[dict[str, Any]]) -> None:
    """Run each join()'s subquery over the events and index its rows: by the key fields' text
    (a row without one is left out), each holding the include fields (``""`` for one it lacks,
    functions-join). Rows of one key that differ there are refused: which one LogScale's
    ``max=1`` takes is not documented."""
    JOINED[:] = [{} for _ in joins]
    # A join inside a subquery is numbered after the join it is in, whose subquery reads it: the
    # last is indexed first.
    for number in range(len(joins), 0, -1):
        segments, barriers, keys, include, names, many = joins[number - 1]
        index: dict[tuple[str, ...], Any] = {}
        for row in run_pipeline(segments, barriers, events):
            values = tuple(_cell(get(row, name)) for name in keys)
            if "" in values:
                continue
            written = {shown: _cell(get(row, name)) for name, shown in zip(include, names, strict=True)}
            if many:  # match(nrows=max): every row, in the subquery's order
                index.setdefault(values, []).append(written)
                continue
            seen = index.get(values)
            if seen is not None and seen != written:
                raise JoinError(f"join() number {number}: its subquery has rows for the key {', '.join(values)} "
                                "with different values in the include fields; which one LogScale's join() (max=1) "
                                "takes is not documented")
            index[values] = written
        JOINED[number - 1] = index


def join_rows(rows: Iterable[dict[str, Any]], number: int, fields: tuple[str, ...], strict: bool
              ) -> list[dict[str, Any]]:
    """A join whose every matching row makes an event (``match(table=..., nrows=max)``): each
    record once per row of its key, the row's fields written; a record without one is dropped
    (``strict``) or kept as it is."""
    index: dict[tuple[str, ...], Any] = JOINED[number - 1]
    out: list[dict[str, Any]] = []
    for record in rows:
        values = tuple(_cell(get(record, name)) for name in fields)
        matches = None if "" in values else index.get(values)
        if not matches:
            if not strict:
                out.append(record)
            continue
        for row in matches:
            joined = dict(record)
            joined.update(row)
            out.append(joined)
    return out


def join(record: dict[str, Any], number: int, fields: tuple[str, ...], strict: bool, negated: bool
         ) -> dict[str, Any] | None:
    """``join()``: the record with the matching subquery row's include fields written, the record as
    it is (no match, ``mode=left``), or None (dropped)."""
    values = tuple(_cell(get(record, name)) for name in fields)
    return _with_row(record, None if "" in values else JOINED[number - 1].get(values), strict, negated)

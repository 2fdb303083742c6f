"""An SPL *oracle*: an interpreter for exactly the subset of Splunk SPL that cqlx's SPL emitter
(:mod:`cqlx.emit.spl`) writes, so that emitted SPL can be run offline over events and compared with
the Python matcher. It is **not Splunk**: it implements Splunk's *documented* behaviour for that
subset and refuses (:class:`SplOracleError`, with the position) everything else, rather than guess.

What it interprets (Splunk Search Reference and Search Manual, help.splunk.com):

* the initial search line (``search`` implied or written, or a ``| datamodel M D search``
  generating command): ``field=value``, ``field="quoted value"``, ``field=CASE(value)``,
  ``field!=value``, ``*``, ``( )``, ``NOT``, ``OR``, ``AND`` and implicit AND;
* the commands ``search``, ``regex``, ``rex`` (``field=``, ``max_match=``), ``mvexpand``, ``where``, ``eval``,
  ``table``, ``sort``, ``head``, ``stats`` and ``eventstats`` (count, count(X), dc, sum, min, max,
  avg, values, latest, first; ``by``), ``fields``, ``dedup``, ``lookup`` (of the CSV tables given
  to :func:`run_spl`), ``join`` (type, max=1, a field list and a ``[subsearch]`` over the same
  events) and ``appendpipe`` (a ``[subpipeline]`` of these commands);
* in ``where``/``eval``: literals, fields (bare or in single quotes), ``AND OR NOT``, comparisons,
  ``+ - * / % .``, and the functions ``if case match like isnull isnotnull lower upper tonumber in
  coalesce floor mvjoin urldecode cidrmatch true false null`` (and others: ``_FUNCTIONS``), among
  them the multivalue ``split mvindex mvcount mvrange``.

Where Splunk's documentation is silent the oracle makes an explicit assumption, marked
*assumption* below; each is covered by ``tests/test_spl_oracle.py`` so it is easy to change.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import itertools
import math
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field as dataclass_field

from cqlx.ast import Span
from cqlx.errors import CqlError
from cqlx.frozen import Frozen, record

# An eval value: strings and numbers (what fields hold), booleans (only inside expressions), null,
# and a multivalue (what stats values() makes; only mvjoin() and isnull()/isnotnull() read one).
Value = str | int | float | bool | tuple[str, ...] | None
Row = dict[str, object]
Expr = Callable[[Mapping[str, object]], Value]

__all__ = ["SplOracleError", "SplProgram", "compile_spl", "pcre_to_python", "run_spl"]


class SplOracleError(CqlError):
    """SPL the oracle does not interpret: outside cqlx's emitted subset, or malformed."""


# ------------------------------------------------------------------ positions


@record
class _Source(Frozen):
    text: str
    # Lookup tables the `lookup` command reads, by the name the SPL gives them: rows of {field: value}.
    lookups: Mapping[str, Sequence[Mapping[str, object]]] = dataclass_field(default_factory=dict)
    # The events the search runs over (a `join` subsearch reads them too), set by SplProgram.run.
    events: list[Row] = dataclass_field(default_factory=list)

    def span(self, start: int, end: int | None = None) -> Span:
        end = start + 1 if end is None or end <= start else end
        line, column = self._position(start)
        end_line, end_column = self._position(end)
        return Span(line, column, end_line, end_column)

    def _position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return line, column

    def error(self, message: str, start: int, end: int | None = None) -> SplOracleError:
        return SplOracleError(message, self.span(start, end), source=self.text)


# ------------------------------------------------------------------ values


# A number as Splunk shows it in a field: decimal, optional sign, fraction and exponent.
# *Assumption*: no surrounding blanks, no hexadecimal (tonumber's default base is 10).
_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _parse_number(text: str) -> int | float | None:
    if not _NUMERIC.fullmatch(text):
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    return _tidy(float(text))


def _tidy(number: float) -> int | float:
    """Splunk has one number type (a double, eval command, usage): integral results read as integers."""
    if math.isfinite(number) and number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def _numeric(number: int | float) -> int | float:
    return _tidy(number) if isinstance(number, float) else number


class _MultivalueError(SplOracleError):
    """A multivalue where the oracle's subset takes a single value."""

    def __init__(self) -> None:
        super().__init__("a multivalue field is outside the oracle's subset here (mvjoin() makes it one string)")


def _number(value: Value) -> int | float | None:
    """The number a value stands for: a number, or a string that is one; else None."""
    if isinstance(value, tuple):
        raise _MultivalueError()
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    return _parse_number(value)


def _text(value: Value) -> str | None:
    """The string a value reads as (numbers in their decimal form); None for null."""
    if isinstance(value, tuple):
        raise _MultivalueError()
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return str(_tidy(value)) if value.is_integer() else repr(value)
    return str(value)


def _field_value(value: object) -> str | int | float | None:
    """An event's value as a Splunk field holds it; multivalue and nested fields are not in the subset."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return value
    raise SplOracleError(f"the oracle takes single-valued fields only, not {type(value).__name__} values "
                         "(multivalue fields are outside the subset)")


def _event_row(event: Mapping[str, object]) -> Row:
    row: Row = {}
    for key, value in event.items():
        converted = _field_value(value)
        if converted is not None:
            row[str(key)] = converted
    return row


def _lookup(row: Mapping[str, object], name: str) -> Value:
    value = row.get(name)
    if value is None or isinstance(value, str | int | float | tuple):
        return value  # a tuple is a multivalue a stats function made (events hold none: _field_value)
    return _field_value(value)


# ------------------------------------------------------------------ regular expressions

# Splunk's regexes are PCRE (Search Manual, "SPL and regular expressions"; Knowledge Manager Manual,
# "About Splunk regular expressions": "Splunk regular expressions are PCRE ... and use the PCRE C
# library"). They run here on Python's `re` after rewriting the few PCRE constructs it spells
# differently; PCRE constructs `re` has no equivalent for are refused. *Assumption*: `\w \d \s \b`
# are ASCII (PCRE without UCP) and so is case folding (PCRE folds non-ASCII letters in UTF mode).

_GROUP_NAME = re.compile(r"\(\?(?:<|P<|')([A-Za-z_]\w*)[>']")
_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")
_UNSUPPORTED_ESCAPES = {
    "h": "\\h (horizontal space)", "H": "\\H", "v": "\\v (vertical space)", "V": "\\V", "R": "\\R",
    "X": "\\X", "G": "\\G", "K": "\\K", "C": "\\C", "N": "\\N", "p": "\\p{..}", "P": "\\P{..}",
    "c": "\\cX", "g": "\\g (back reference)", "o": "\\o{..}",
}
_PYTHON_FLAGS = set("imsx")


class _RegexError(Exception):
    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


def _escape(pattern: str, index: int, in_class: bool) -> tuple[str, int]:
    """One PCRE escape at ``pattern[index] == '\\'``: its Python spelling and the next index."""
    if index + 1 >= len(pattern):
        raise _RegexError("the regex ends with a lone backslash", index)
    letter = pattern[index + 1]
    if letter in _UNSUPPORTED_ESCAPES:
        raise _RegexError(f"the PCRE escape {_UNSUPPORTED_ESCAPES[letter]} is outside the oracle's regex subset",
                          index)
    if letter == "x" and pattern[index + 2:index + 3] == "{":
        close = pattern.find("}", index + 3)
        digits = pattern[index + 3:close] if close > 0 else ""
        if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", digits):
            raise _RegexError("a \\x{..} escape needs hexadecimal digits", index)
        return f"\\U{int(digits, 16):08x}", close + 1
    if letter == "e":
        return "\\x1b", index + 2
    if not in_class:
        if letter == "z":
            return "\\Z", index + 2  # PCRE \z: the very end (Python's \Z)
        if letter == "Z":
            return "(?=\\n?\\Z)", index + 2  # PCRE \Z: the end, or before a final newline
        if letter == "k":
            match = re.match(r"\\k(?:<([A-Za-z_]\w*)>|\{([A-Za-z_]\w*)\}|'([A-Za-z_]\w*)')", pattern[index:])
            if match is None:
                raise _RegexError("a \\k back reference needs a group name", index)
            name = next(g for g in match.groups() if g)
            return f"(?P={name})", index + match.end()
        if letter == "Q":
            close = pattern.find("\\E", index + 2)
            end = len(pattern) if close < 0 else close
            return re.escape(pattern[index + 2:end]), (len(pattern) if close < 0 else close + 2)
    return pattern[index:index + 2], index + 2


def _class(pattern: str, index: int) -> tuple[str, int]:
    """A character class starting at ``pattern[index] == '['``."""
    out = ["["]
    position = index + 1
    if pattern[position:position + 1] == "^":
        out.append("^")
        position += 1
    if pattern[position:position + 1] == "]":
        out.append("\\]")
        position += 1
    while position < len(pattern):
        char = pattern[position]
        if char == "]":
            out.append("]")
            return "".join(out), position + 1
        if char == "\\":
            text, position = _escape(pattern, position, in_class=True)
            out.append(text)
            continue
        if char == "[" and pattern[position + 1:position + 2] in (":", "=", "."):
            raise _RegexError("POSIX bracket classes ([:alpha:]) are outside the oracle's regex subset", position)
        if char == "[":
            out.append("\\[")  # a literal [ inside a class (Python warns about a bare one)
        else:
            out.append(char)
        position += 1
    raise _RegexError("a character class is not closed", index)


def pcre_to_python(pattern: str) -> str:
    """A PCRE pattern in Python ``re`` syntax, same matches; raises ValueError for what ``re`` lacks.

    PCRE's inline option setting ``(?i)`` changes the options for the rest of the enclosing group,
    including its later alternatives (PCRE2 pattern syntax, "Internal option setting"); Python allows
    global flags only at the very start, so each becomes a scoped group ``(?i:...)`` closed at the next
    ``|`` (and reopened after it) and at the end of its group."""
    try:
        return _translate(pattern)
    except _RegexError as error:
        raise ValueError(f"{error.message} (at offset {error.index} of the regex)") from None


def _translate(pattern: str) -> str:
    out: list[str] = []
    # For each open group, the inline option groups opened inside it (to close at | and at ")").
    frames: list[list[str]] = [[]]
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            text, index = _escape(pattern, index, in_class=False)
            out.append(text)
        elif char == "[":
            text, index = _class(pattern, index)
            out.append(text)
        elif char == "(":
            rest = pattern[index:]
            named = _GROUP_NAME.match(rest)
            flags = _INLINE_FLAGS.match(rest)
            if rest.startswith("(?#"):
                close = pattern.find(")", index)
                if close < 0:
                    raise _RegexError("a (?# comment is not closed", index)
                index = close + 1
            elif rest.startswith("(?P="):
                close = pattern.find(")", index)
                if close < 0:
                    raise _RegexError("a (?P= back reference is not closed", index)
                out.append(pattern[index:close + 1])
                index = close + 1
            elif rest.startswith(("(?<=", "(?<!")):
                out.append(rest[:4])
                frames.append([])
                index += 4
            elif named is not None:
                out.append(f"(?P<{named.group(1)}>")
                frames.append([])
                index += named.end()
            elif rest.startswith(("(?:", "(?=", "(?!", "(?>")):
                out.append(rest[:3])
                frames.append([])
                index += 3
            elif flags is not None:
                on, off, kind = flags.group(1), flags.group(2), flags.group(3)
                written = on + ("-" + off if off is not None else "")
                if not written or not set(on + (off or "")) <= _PYTHON_FLAGS:
                    raise _RegexError(f"the PCRE option (?{written}) is outside the oracle's regex subset "
                                      "(i, m, s, x)", index)
                scoped = f"(?{written}:"
                out.append(scoped)
                if kind == ":":
                    frames.append([])
                else:
                    frames[-1].append(scoped)
                index += flags.end()
            elif rest.startswith("(?"):
                raise _RegexError(f"the PCRE group {rest[:4]!r}... is outside the oracle's regex subset", index)
            else:
                out.append("(")
                frames.append([])
                index += 1
        elif char == ")":
            if len(frames) == 1:
                raise _RegexError("unbalanced parenthesis", index)
            out.append(")" * len(frames.pop()))
            out.append(")")
            index += 1
        elif char == "|":
            scopes = frames[-1]
            out.append(")" * len(scopes) + "|" + "".join(scopes))
            index += 1
        else:
            out.append(char)
            index += 1
    if len(frames) != 1:
        raise _RegexError("a group is not closed", len(pattern))
    out.append(")" * len(frames[0]))
    return "".join(out)


@functools.lru_cache(maxsize=512)
def _compile_pcre(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pcre_to_python(pattern), re.ASCII)
    except re.error as error:
        raise ValueError(f"the regex does not compile: {error}") from None


@functools.lru_cache(maxsize=512)
def _wildcard(value: str, case_sensitive: bool) -> re.Pattern[str]:
    """A search-language value: whole-value match, ``*`` any run of characters (it cannot be escaped:
    Search Manual, "Backslashes"), case-insensitive unless CASE() (Search Reference, search: CASE)."""
    body = ".*".join(re.escape(part) for part in value.split("*"))
    return re.compile(body, re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def _like(pattern: str) -> re.Pattern[str]:
    """like(): ``%`` any run of characters, ``_`` exactly one; the whole value; case-sensitive."""
    parts = []
    for char in pattern:
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


# ------------------------------------------------------------------ string literals


def _read_quoted(text: str, start: int, quote: str, source: _Source, base: int,
                 eval_escapes: bool = False) -> tuple[str, int]:
    """A quoted string at ``text[start] == quote``: (its value, the index after the closing quote).

    Inside quotes a backslash escapes a backslash or the quote; any other backslash sequence is kept
    as written, so ``"a\\\\.b"`` is the regex ``a\\.b`` (Search Manual, "Backslashes" and "SPL and
    regular expressions"). In eval string literals ``\\t`` is a tab (Search Manual, "Types of
    expressions": ``"C:\\\\windows\\temp"`` reads ``C:\\windows<tab>emp``)."""
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if following in ("\\", quote):
                out.append(following)
            elif eval_escapes and following == "t":
                out.append("\t")
            else:
                out.append(char + following)
            index += 2
            continue
        if char == quote:
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise source.error(f"unterminated {quote}-quoted string", base + start, base + len(text))


# ------------------------------------------------------------------ eval expressions


@record
class _Token(Frozen):
    kind: str  # num | str | field | name | op | end
    text: str
    value: object
    start: int  # absolute offsets in the SPL text
    end: int


_OPERATORS = ("==", "!=", "<=", ">=", "<>", "=", "<", ">", "+", "-", "*", "/", "%", ".", "(", ")", ",")
_NUMBER_TOKEN = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _tokenize(text: str, base: int, source: _Source) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        start = index
        previous_is_operand = bool(tokens) and (tokens[-1].kind in ("num", "str", "field", "name")
                                                or tokens[-1].text == ")")
        if char == '"':
            value, index = _read_quoted(text, index, '"', source, base, eval_escapes=True)
            tokens.append(_Token("str", text[start:index], value, base + start, base + index))
        elif char == "'":
            value, index = _read_quoted(text, index, "'", source, base)
            tokens.append(_Token("field", text[start:index], value, base + start, base + index))
        elif char.isdigit() or (char == "." and text[index + 1:index + 2].isdigit() and not previous_is_operand):
            match = _NUMBER_TOKEN.match(text, index)
            assert match is not None
            index = match.end()
            if index < len(text) and (text[index].isalnum() or text[index] == "_"):
                raise source.error("a field name that starts with a digit must be in single quotes "
                                   "(Search Reference, where: field names)", base + start, base + index + 1)
            number = _parse_number(match.group(0))
            tokens.append(_Token("num", match.group(0), number, base + start, base + index))
        elif char.isalpha() or char == "_":
            match = _NAME_TOKEN.match(text, index)
            assert match is not None
            index = match.end()
            tokens.append(_Token("name", match.group(0), match.group(0), base + start, base + index))
        else:
            for operator in _OPERATORS:
                if text.startswith(operator, index):
                    index += len(operator)
                    tokens.append(_Token("op", operator, operator, base + start, base + index))
                    break
            else:
                raise source.error(f"unexpected character {char!r} in an eval expression", base + index)
    tokens.append(_Token("end", "", None, base + len(text), base + len(text)))
    return tokens


def _boolean(value: Value, what: str, span_start: int, span_end: int, source: _Source) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise source.error(f"{what} needs a Boolean, not the {type(value).__name__} {value!r} "
                       "(eval type checking)", span_start, span_end)


def _compare(op: str, left: Value, right: Value) -> bool | None:
    """A comparison: null when either side is null; numeric when both sides are numbers (or strings
    that are numbers: *assumption*), else the strings compared case-sensitively (where: "The
    <eval-expression> is case-sensitive"), by code point (Search Manual, "Lexicographical order")."""
    if left is None or right is None:
        return None
    if isinstance(left, bool) or isinstance(right, bool):
        if isinstance(left, bool) and isinstance(right, bool) and op in ("==", "=", "!="):
            return (left == right) == (op != "!=")
        raise TypeError(f"{op} compares two numbers or two strings, not a Boolean")
    a: int | float | str | None = _number(left)
    b: int | float | str | None = _number(right)
    if a is None or b is None:
        a, b = _text(left), _text(right)
        assert a is not None and b is not None
    if op in ("==", "="):
        return a == b
    if op in ("!=", "<>"):
        return a != b
    if op == "<":
        return a < b  # type: ignore[operator]  # both numbers or both strings
    if op == "<=":
        return a <= b  # type: ignore[operator]
    if op == ">":
        return a > b  # type: ignore[operator]
    return a >= b  # type: ignore[operator]


def _arith(op: str, left: Value, right: Value) -> Value:
    """Arithmetic (eval: "Operators"): null in, null out; ``+`` adds two numbers and concatenates two
    strings; ``-``, ``*``, ``/``, ``%`` need numbers (else null); division by zero is null (eval
    usage: "Division by zero results in a null field"). ``.`` concatenates, numbers as text."""
    if left is None or right is None:
        return None
    if isinstance(left, bool) or isinstance(right, bool):
        raise TypeError(f"{op} does not take a Boolean")
    if op == ".":
        return (_text(left) or "") + (_text(right) or "")
    a, b = _number(left), _number(right)
    if a is None or b is None:
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            return left + right
        return None
    if op == "+":
        return _numeric(a + b)
    if op == "-":
        return _numeric(a - b)
    if op == "*":
        return _numeric(a * b)
    if b == 0:
        return None
    if op == "/":
        return _tidy(a / b)
    return _tidy(math.fmod(a, b))  # *assumption*: the sign of the dividend, as C's fmod


class _ExprParser:
    """Recursive descent over eval's grammar. Precedence (Search Manual, "Boolean expressions with
    logical operators": eval and where evaluate parentheses, then NOT, then AND, then OR), below NOT
    the comparisons, then ``+ - .``, then ``* / %``, then unary minus."""

    def __init__(self, tokens: list[_Token], source: _Source) -> None:
        self.tokens = tokens
        self.index = 0
        self.source = source

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, token: _Token | None = None) -> SplOracleError:
        token = token or self.token
        return self.source.error(message, token.start, token.end)

    def is_op(self, *texts: str) -> bool:
        return self.token.kind == "op" and self.token.text in texts

    def is_word(self, word: str) -> bool:
        return self.token.kind == "name" and self.token.text == word

    def expect_op(self, text: str) -> _Token:
        if not self.is_op(text):
            found = self.token.text or "the end"
            raise self.error(f"expected '{text}', found {found!r}")
        return self.advance()

    def parse(self) -> tuple[Expr, int, int]:
        start = self.token.start
        expr = self.parse_or()
        return expr, start, self.tokens[self.index - 1].end

    def parse_or(self) -> Expr:
        start = self.token.start
        left = self.parse_and()
        while self.is_word("OR") or self.is_word("XOR"):
            if self.is_word("XOR"):
                raise self.error("XOR is outside the oracle's subset")
            self.advance()
            right = self.parse_and()
            left = self.logical("OR", left, right, start, self.tokens[self.index - 1].end)
        return left

    def parse_and(self) -> Expr:
        start = self.token.start
        left = self.parse_not()
        while self.is_word("AND"):
            self.advance()
            right = self.parse_not()
            left = self.logical("AND", left, right, start, self.tokens[self.index - 1].end)
        return left

    def logical(self, op: str, left: Expr, right: Expr, start: int, end: int) -> Expr:
        source = self.source

        def evaluate(row: Mapping[str, object]) -> Value:
            # Three-valued (Kleene) logic. *Assumption*: Splunk documents that where keeps only
            # true results, not how AND and OR treat null; this is SQL's rule.
            a = _boolean(left(row), op, start, end, source)
            b = _boolean(right(row), op, start, end, source)
            if op == "AND":
                if a is False or b is False:
                    return False
                return None if a is None or b is None else True
            if a is True or b is True:
                return True
            return None if a is None or b is None else False

        return evaluate

    def parse_not(self) -> Expr:
        if self.is_word("NOT"):
            token = self.advance()
            operand = self.parse_not()
            end = self.tokens[self.index - 1].end
            source = self.source

            def negate(row: Mapping[str, object]) -> Value:
                value = _boolean(operand(row), "NOT", token.start, end, source)
                return None if value is None else not value

            return negate
        return self.parse_comparison()

    def parse_comparison(self) -> Expr:
        start = self.token.start
        left = self.parse_additive()
        if self.is_word("LIKE"):
            raise self.error("the LIKE operator is outside the oracle's subset (like() is in it)")
        if not self.is_op("==", "=", "!=", "<>", "<", "<=", ">", ">="):
            return left
        op = self.advance().text
        right = self.parse_additive()
        end = self.tokens[self.index - 1].end
        if self.is_op("==", "=", "!=", "<>", "<", "<=", ">", ">="):
            raise self.error("comparisons do not chain; add parentheses")
        return self.wrap(lambda row: _compare(op, left(row), right(row)), start, end)

    def parse_additive(self) -> Expr:
        start = self.token.start
        left = self.parse_multiplicative()
        while self.is_op("+", "-", "."):
            op = self.advance().text
            right = self.parse_multiplicative()
            left = self.binary(op, left, right, start)
        return left

    def parse_multiplicative(self) -> Expr:
        start = self.token.start
        left = self.parse_unary()
        while self.is_op("*", "/", "%"):
            op = self.advance().text
            right = self.parse_unary()
            left = self.binary(op, left, right, start)
        return left

    def binary(self, op: str, left: Expr, right: Expr, start: int) -> Expr:
        end = self.tokens[self.index - 1].end
        return self.wrap(lambda row: _arith(op, left(row), right(row)), start, end)

    def wrap(self, function: Expr, start: int, end: int) -> Expr:
        """Turn a TypeError while evaluating into an SplOracleError at the expression's position."""
        source = self.source

        def evaluate(row: Mapping[str, object]) -> Value:
            try:
                return function(row)
            except TypeError as error:
                raise source.error(f"{error} (eval type checking)", start, end) from None

        return evaluate

    def parse_unary(self) -> Expr:
        if self.is_op("-"):
            token = self.advance()
            operand = self.parse_unary()
            return self.binary("-", lambda row: 0, operand, token.start)
        if self.is_op("+"):
            raise self.error("a unary + is outside the oracle's subset")
        return self.parse_primary()

    def parse_primary(self) -> Expr:
        token = self.token
        if token.kind == "num":
            self.advance()
            number = token.value
            assert isinstance(number, int | float)
            return lambda row: number
        if token.kind == "str":
            self.advance()
            string = str(token.value)
            return lambda row: string
        if token.kind == "field":
            self.advance()
            return self.field(str(token.value))
        if self.is_op("("):
            self.advance()
            inner = self.parse_or()
            self.expect_op(")")
            return inner
        if token.kind == "name":
            if token.text in ("AND", "OR", "NOT", "XOR", "LIKE"):
                raise self.error(f"{token.text} needs an operand before it")
            self.advance()
            if self.is_op("("):
                return self.call(token)
            if token.text in ("true", "false", "null", "TRUE", "FALSE", "NULL"):
                raise self.error(f"bare {token.text} is outside the oracle's subset: write {token.text.lower()}()",
                                 token)
            return self.field(token.text)
        raise self.error(f"expected a value, found {token.text or 'the end'!r}")

    @staticmethod
    def field(name: str) -> Expr:
        return lambda row: _lookup(row, name)

    def call(self, name: _Token) -> Expr:
        self.expect_op("(")
        args: list[tuple[Expr, int, int]] = []
        if not self.is_op(")"):
            while True:
                start = self.token.start
                arg = self.parse_or()
                args.append((arg, start, self.tokens[self.index - 1].end))
                if self.is_op(","):
                    self.advance()
                    continue
                break
        close = self.expect_op(")")
        builder = _FUNCTIONS.get(name.text)
        if builder is None:
            raise self.error(f"the eval function {name.text}() is outside the oracle's subset", name)
        low, high, make = builder
        if len(args) < low or (high >= 0 and len(args) > high):
            expected = str(low) if low == high else f"{low} or more" if high < 0 else f"{low} to {high}"
            raise self.source.error(f"{name.text}() takes {expected} arguments, not {len(args)}",
                                    name.start, close.end)
        return make(args, self.source)


_Args = list[tuple[Expr, int, int]]
_Builder = Callable[[_Args, _Source], Expr]


def _fn_if(args: _Args, source: _Source) -> Expr:
    # if(<predicate>,<true_value>,<false_value>): "If <predicate> evaluates to TRUE, returns
    # <true_value>, otherwise returns <false_value>" (Search Reference, comparison and conditional
    # functions): a null predicate takes the false value.
    (test, start, end), (then, _, _), (otherwise, _, _) = args

    def evaluate(row: Mapping[str, object]) -> Value:
        return then(row) if _boolean(test(row), "if()", start, end, source) is True else otherwise(row)

    return evaluate


def _fn_case(args: _Args, source: _Source) -> Expr:
    # case(<condition>,<value>,...): the value of the first condition that is TRUE; "If no condition
    # evaluates to TRUE, returns NULL" (comparison and conditional functions).
    if len(args) % 2:
        raise source.error("case() takes condition, value pairs", args[-1][1], args[-1][2])
    pairs = [(args[i], args[i + 1][0]) for i in range(0, len(args), 2)]

    def evaluate(row: Mapping[str, object]) -> Value:
        for (test, start, end), value in pairs:
            if _boolean(test(row), "case()", start, end, source) is True:
                return value(row)
        return None

    return evaluate


def _regex_argument(arg: tuple[Expr, int, int], source: _Source, row: Mapping[str, object]) -> str | None:
    value = arg[0](row)
    if value is None:
        return None
    text = _text(value)
    if text is None:
        raise source.error("a regex must be a string", arg[1], arg[2])
    return text


def _fn_match(args: _Args, source: _Source) -> Expr:
    # match(<str>, <regex>): TRUE if the PCRE regex matches any part of the string; null with null.
    subject, pattern = args

    def evaluate(row: Mapping[str, object]) -> Value:
        text = _text(_boolean_free(subject[0](row), "match()", subject, source))
        regex = _regex_argument(pattern, source, row)
        if text is None or regex is None:
            return None
        try:
            return _compile_pcre(regex).search(text) is not None
        except ValueError as error:
            raise source.error(str(error), pattern[1], pattern[2]) from None

    return evaluate


def _fn_like(args: _Args, source: _Source) -> Expr:
    subject, pattern = args

    def evaluate(row: Mapping[str, object]) -> Value:
        text = _text(_boolean_free(subject[0](row), "like()", subject, source))
        wanted = _text(_boolean_free(pattern[0](row), "like()", pattern, source))
        if text is None or wanted is None:
            return None
        return _like(wanted).fullmatch(text) is not None

    return evaluate


def _boolean_free(value: Value, what: str, arg: tuple[Expr, int, int], source: _Source) -> Value:
    if isinstance(value, bool):
        raise source.error(f"{what} takes a string here, not a Boolean", arg[1], arg[2])
    return value


def _fn_isnull(args: _Args, source: _Source) -> Expr:
    [(value, _, _)] = args
    return lambda row: value(row) is None


def _fn_isnotnull(args: _Args, source: _Source) -> Expr:
    [(value, _, _)] = args
    return lambda row: value(row) is not None


def _fn_text(name: str, change: Callable[[str], Value]) -> _Builder:
    """A function of one text argument (``lower()``, ``md5()``): no value for a missing one."""
    def build(args: _Args, source: _Source) -> Expr:
        (arg,) = args

        def evaluate(row: Mapping[str, object]) -> Value:
            text = _text(_boolean_free(arg[0](row), name, arg, source))
            return None if text is None else change(text)

        return evaluate

    return build


def _fn_tonumber(args: _Args, source: _Source) -> Expr:
    # tonumber(<str>[,<base>]): the number, base 10 unless told; null when it cannot be converted
    # (conversion functions).
    def evaluate(row: Mapping[str, object]) -> Value:
        value = _boolean_free(args[0][0](row), "tonumber()", args[0], source)
        base = 10
        if len(args) == 2:
            given = _number(args[1][0](row))
            if not isinstance(given, int) or not 2 <= given <= 36:
                raise source.error("tonumber()'s base is an integer from 2 to 36", args[1][1], args[1][2])
            base = given
        if value is None or isinstance(value, int | float):
            return value
        assert isinstance(value, str)
        if base == 10:
            return _parse_number(value)
        try:
            return int(value, base)
        except ValueError:
            return None

    return evaluate


def _fn_in(args: _Args, source: _Source) -> Expr:
    # in(<value>,<list>): TRUE if the value equals one of the list's (comparison and conditional
    # functions). *Assumption*: null for a null value, as a comparison.
    subject, *values = args

    def evaluate(row: Mapping[str, object]) -> Value:
        value = _boolean_free(subject[0](row), "in()", subject, source)
        if value is None:
            return None
        return any(_compare("==", value, _boolean_free(v[0](row), "in()", v, source)) is True for v in values)

    return evaluate


def _fn_cidrmatch(args: _Args, source: _Source) -> Expr:
    # cidrmatch(<cidr>,<ip>): TRUE when the IP address belongs to the CIDR subnet (comparison and
    # conditional functions). *Assumptions*: null for a null address; false for a value that is no
    # address, or an address of the other IP version (IPv6 taken as IPv4 is, Splunk 8 and later);
    # host bits of the subnet ignored.
    cidr, address = args

    def evaluate(row: Mapping[str, object]) -> Value:
        subnet = _text(_boolean_free(cidr[0](row), "cidrmatch()", cidr, source))
        value = _text(_boolean_free(address[0](row), "cidrmatch()", address, source))
        if subnet is None or value is None:
            return None
        try:
            network = ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            raise source.error(f"cidrmatch(): {subnet!r} is not a CIDR subnet", cidr[1], cidr[2]) from None
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return False
        return ip.version == network.version and ip in network

    return evaluate


def _fn_coalesce(args: _Args, source: _Source) -> Expr:
    def evaluate(row: Mapping[str, object]) -> Value:
        for arg, _, _ in args:
            value = arg(row)
            if value is not None:
                return value
        return None

    return evaluate


def _fn_floor(args: _Args, source: _Source) -> Expr:
    # floor(<num>): "Rounds a number down to the next lowest whole number" (mathematical functions).
    # *Assumption*: null for null or a value that is no number.
    (arg,) = args

    def evaluate(row: Mapping[str, object]) -> Value:
        value = _number(_boolean_free(arg[0](row), "floor()", arg, source))
        return None if value is None else math.floor(value)

    return evaluate


def _fn_mvjoin(args: _Args, source: _Source) -> Expr:
    # mvjoin(<mv>,<delim>): the values of a multivalue field joined by the delimiter (multivalue eval
    # functions); a single value is itself, null is null.
    field, delimiter = args

    def evaluate(row: Mapping[str, object]) -> Value:
        value = _boolean_free(field[0](row), "mvjoin()", field, source)
        glue = _text(_boolean_free(delimiter[0](row), "mvjoin()", delimiter, source))
        if value is None:
            return None
        if glue is None:
            raise source.error("mvjoin() needs a delimiter string", delimiter[1], delimiter[2])
        return glue.join(value) if isinstance(value, tuple) else _text(value)

    return evaluate


def _fn_urldecode(args: _Args, source: _Source) -> Expr:
    # urldecode(<url>): "Replaces URL escaped characters with the original characters" (text
    # functions): each %XX is a byte, the bytes UTF-8. *Assumption*: whether + becomes a space is not
    # documented, so a + is outside the oracle's subset.
    (arg,) = args

    def evaluate(row: Mapping[str, object]) -> Value:
        text = _text(_boolean_free(arg[0](row), "urldecode()", arg, source))
        if text is None:
            return None
        if "+" in text:
            raise source.error("urldecode() of a '+' is outside the oracle's subset", arg[1], arg[2])
        return urllib.parse.unquote_to_bytes(text).decode("utf-8", errors="replace")

    return evaluate


def _md5(text: str) -> str:
    # md5(<str>): "computes and returns the MD5 hash of a string value" (cryptographic functions),
    # as hex: the example's md5("Hello World") is b10a8db164e0754105b7a99be72e3fe5, lower case.
    # *Assumption*: of the UTF-8 text (Splunk keeps text as UTF-8).
    return hashlib.md5(text.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()


def _constant(value: Value) -> _Builder:
    return lambda args, source: (lambda row: value)


# -- text, conversion, date and multivalue functions (Search Reference, evaluation functions), the
# ones cqlx's value functions are written with (cqlx.emit.spl_funcs).


class _MultiValue(tuple):  # type: ignore[type-arg]
    """What split() returns: only mvindex() takes it (multivalue fields are outside the subset)."""


def _values(args: _Args, row: Mapping[str, object], what: str, source: _Source) -> list[Value]:
    values = []
    for expr, start, end in args:
        value = expr(row)
        if isinstance(value, _MultiValue):
            raise source.error(f"{what} takes a single value here, not a multivalue field (outside the subset)",
                               start, end)
        values.append(_boolean_free(value, what, (expr, start, end), source))
    return values


def _fn_tostring(args: _Args, source: _Source) -> Expr:
    # tostring(<value>): a number as its text, a string as it is (conversion functions).
    def evaluate(row: Mapping[str, object]) -> Value:
        (value,) = _values(args, row, "tostring()", source)
        return _text(value)

    return evaluate


def _fn_len(args: _Args, source: _Source) -> Expr:
    # len(<str>): the number of characters (text functions). *Assumption*: Unicode code points.
    def evaluate(row: Mapping[str, object]) -> Value:
        (value,) = _values(args, row, "len()", source)
        text = _text(value)
        return None if text is None else len(text)

    return evaluate


def _replacement(template: str) -> Callable[[re.Match[str]], str]:
    """replace()'s replacement: ``\\1``..``\\9`` are the groups (text functions, replace: "use
    backreferences ... \\1"); *assumption*: ``\\\\`` is a backslash, other characters are literal."""
    pieces: list[str | int] = []
    index = 0
    while index < len(template):
        char = template[index]
        if char == "\\" and index + 1 < len(template) and template[index + 1].isdigit():
            pieces.append(int(template[index + 1]))
            index += 2
        elif char == "\\" and template[index + 1:index + 2] == "\\":
            pieces.append("\\")
            index += 2
        else:
            pieces.append(char)
            index += 1
    return lambda match: "".join(p if isinstance(p, str) else (match.group(p) or "") for p in pieces)


def _fn_replace(args: _Args, source: _Source) -> Expr:
    # replace(<str>,<regex>,<replacement>): every match of the PCRE regex replaced (text functions).
    def evaluate(row: Mapping[str, object]) -> Value:
        value, pattern, template = _values(args, row, "replace()", source)
        text, regex, replacement = _text(value), _text(pattern), _text(template)
        if text is None or regex is None or replacement is None:
            return None
        try:
            return _compile_pcre(regex).sub(_replacement(replacement), text)
        except ValueError as error:
            raise source.error(str(error), args[1][1], args[1][2]) from None

    return evaluate


_PRINTF_SPEC = re.compile(r"%([-+ 0'#]*)([0-9]*)(?:\.([0-9]+))?([diouxXfFeEgGsc%])")


def _fn_printf(args: _Args, source: _Source) -> Expr:
    # printf(<format>,<arguments>): "similar to the C sprintf() function" (conversion functions), with
    # the ' flag for thousands separators (printf("%'d",12345) is 12,345). *Assumption*: %d of a
    # number that is not whole takes its whole part, as C's conversion to an integer does.
    def evaluate(row: Mapping[str, object]) -> Value:
        layout, *values = _values(args, row, "printf()", source)
        if not isinstance(layout, str):
            raise source.error("printf() needs a format string", args[0][1], args[0][2])
        left = iter(values)
        out: list[str] = []
        index = 0
        for match in _PRINTF_SPEC.finditer(layout):
            out.append(layout[index:match.start()])
            index = match.end()
            flags, width, precision, conversion = match.groups()
            if conversion == "%":
                out.append("%")
                continue
            value = next(left, None)
            if value is None:
                raise source.error("printf() got a null argument (outside the subset)", args[0][1], args[-1][2])
            if conversion in "diFf":
                number = _number(value)
                if number is None:
                    raise source.error(f"printf() %{conversion} needs a number", args[0][1], args[-1][2])
                whole = conversion in "di"
                spec = _python_spec(flags, width, None if whole else precision or "6", "d" if whole else "f")
                out.append(format(int(number) if whole else float(number), spec))
            elif conversion == "s":
                out.append(format(_text(value) or "", _python_spec(flags.replace("0", ""), width, precision, "s")))
            else:
                raise source.error(f"printf() %{conversion} is outside the oracle's subset", args[0][1], args[0][2])
        out.append(layout[index:])
        return "".join(out)

    return evaluate


def _python_spec(flags: str, width: str, precision: str | None, conversion: str) -> str:
    """A C printf conversion's flags as Python's format spec: - left, + and space signs, 0 padding,
    ' grouping (C: "If the 0 and - flags both appear, the 0 flag is ignored")."""
    align = "<" if "-" in flags else ""
    sign = "+" if "+" in flags else " " if " " in flags else ""
    zero = "0" if "0" in flags and "-" not in flags else ""
    grouping = "," if "'" in flags else ""
    return f"{align}{sign}{zero}{width}{grouping}{'.' + precision if precision is not None else ''}{conversion}"


def _fn_strftime(args: _Args, source: _Source) -> Expr:
    # strftime(<time>,<format>): the time (seconds since the epoch) written with the C library's
    # codes (date and time format variables). *Assumption*: the searching user's time zone is UTC,
    # and the locale's names are English.
    import time

    def evaluate(row: Mapping[str, object]) -> Value:
        value, layout = _values(args, row, "strftime()", source)
        seconds = _number(value)
        if seconds is None or not isinstance(layout, str):
            return None
        moment = time.gmtime(math.floor(seconds))
        return time.strftime(layout.replace("%z", "+0000").replace("%Z", "UTC"), moment)

    return evaluate


def _fn_rounding(function: Callable[[float], int | float]) -> _Builder:
    # floor(<num>), ceiling(<num>), round(<num>) (mathematical functions). *Assumption*: round()
    # takes a half away from zero.
    def build(args: _Args, source: _Source) -> Expr:
        def evaluate(row: Mapping[str, object]) -> Value:
            (value,) = _values(args, row, "a rounding function", source)
            number = _number(value)
            return None if number is None else _numeric(function(number))

        return evaluate

    return build


def _half_away(number: float) -> int:
    return math.floor(abs(number) + 0.5) * (1 if number >= 0 else -1)


def _fn_substr(args: _Args, source: _Source) -> Expr:
    # substr(<str>,<start>,<length>): characters from start, counting from 1 (text functions).
    def evaluate(row: Mapping[str, object]) -> Value:
        value, *bounds = _values(args, row, "substr()", source)
        text = _text(value)
        numbers = [_number(b) for b in bounds]
        if text is None or None in numbers:
            return None
        start = int(numbers[0] or 0)
        begin = start - 1 if start > 0 else max(len(text) + start, 0)
        return text[begin:] if len(numbers) == 1 else text[begin:begin + int(numbers[1] or 0)]

    return evaluate


def _fn_split(args: _Args, source: _Source) -> Expr:
    # split(<str>,<delim>): a multivalue field of the pieces (multivalue eval functions).
    # *Assumption*: empty pieces are kept, as the delimiter separates them.
    def evaluate(row: Mapping[str, object]) -> Value:
        value, delimiter = _values(args, row, "split()", source)
        text, separator = _text(value), _text(delimiter)
        if text is None or not separator:
            return None
        return _MultiValue(text.split(separator))

    return evaluate


def _fn_mvindex(args: _Args, source: _Source) -> Expr:
    # mvindex(<mv>,<start>): the value at start, counting from 0; a negative index counts from the
    # end (multivalue eval functions); none beyond the values.
    def evaluate(row: Mapping[str, object]) -> Value:
        values = args[0][0](row)
        (index,) = _values(args[1:], row, "mvindex()", source)
        position = _number(index)
        if values is None or position is None:
            return None
        items = tuple(values) if isinstance(values, tuple) else (values,)  # split()'s, or stats values()'s
        at = int(position) + (len(items) if position < 0 else 0)
        return items[at] if 0 <= at < len(items) else None

    return evaluate


def _fn_mvcount(args: _Args, source: _Source) -> Expr:
    # mvcount(<mv>): the number of values; 1 for a single value, null for none (multivalue eval
    # functions).
    def evaluate(row: Mapping[str, object]) -> Value:
        values = args[0][0](row)
        if values is None:
            return None
        return len(values) if isinstance(values, tuple) else 1

    return evaluate


def _fn_mvrange(args: _Args, source: _Source) -> Expr:
    # mvrange(<start>,<end>[,<step>]): a multivalue field of the numbers from start up to, not
    # including, end (multivalue eval functions), which eval stores (as rex max_match's values;
    # split()'s stay for mvindex() alone). Whole numbers only, in the oracle's subset.
    def evaluate(row: Mapping[str, object]) -> Value:
        numbers = [_number(v) for v in _values(args, row, "mvrange()", source)]
        if any(n is None or n != int(n) for n in numbers) or (len(numbers) == 3 and not numbers[2]):
            return None
        bounds = [int(n) for n in numbers if n is not None]
        return tuple(str(n) for n in range(*bounds))

    return evaluate


def _fn_time(args: _Args, source: _Source) -> Expr:
    # time(): the wall-clock time in seconds since the epoch, with microseconds (date and time functions).
    import time

    return lambda row: time.time()


_FUNCTIONS: dict[str, tuple[int, int, _Builder]] = {
    "if": (3, 3, _fn_if),
    "case": (2, -1, _fn_case),
    "match": (2, 2, _fn_match),
    "like": (2, 2, _fn_like),
    "isnull": (1, 1, _fn_isnull),
    "isnotnull": (1, 1, _fn_isnotnull),
    "lower": (1, 1, _fn_text("lower()", str.lower)),
    "upper": (1, 1, _fn_text("upper()", str.upper)),
    "tonumber": (1, 2, _fn_tonumber),
    "in": (2, -1, _fn_in),
    "coalesce": (1, -1, _fn_coalesce),
    "floor": (1, 1, _fn_floor),
    "mvjoin": (2, 2, _fn_mvjoin),
    "tostring": (1, 1, _fn_tostring),
    "len": (1, 1, _fn_len),
    "replace": (3, 3, _fn_replace),
    "printf": (1, -1, _fn_printf),
    "strftime": (2, 2, _fn_strftime),
    "ceiling": (1, 1, _fn_rounding(math.ceil)),
    "round": (1, 1, _fn_rounding(_half_away)),
    "substr": (2, 3, _fn_substr),
    "split": (2, 2, _fn_split),
    "mvindex": (2, 2, _fn_mvindex),
    "mvcount": (1, 1, _fn_mvcount),
    "mvrange": (2, 3, _fn_mvrange),
    "time": (0, 0, _fn_time),
    "urldecode": (1, 1, _fn_urldecode),
    "md5": (1, 1, _fn_text("md5()", _md5)),
    "cidrmatch": (2, 2, _fn_cidrmatch),
    "true": (0, 0, _constant(True)),
    "false": (0, 0, _constant(False)),
    "null": (0, 0, _constant(None)),
}


def _parse_expression(text: str, base: int, source: _Source) -> tuple[Expr, int, int]:
    parser = _ExprParser(_tokenize(text, base, source), source)
    if parser.token.kind == "end":
        raise parser.error("expected an eval expression")
    expr, start, end = parser.parse()
    if parser.token.kind != "end":
        raise parser.error(f"unexpected {parser.token.text!r} after the expression")
    return expr, start, end


# ------------------------------------------------------------------ the search language


Predicate = Callable[[Mapping[str, object]], bool]


class _SearchParser:
    """The search command's terms. Its Boolean order differs from eval's: parentheses, NOT, OR, then
    AND, implicit AND included (Search Manual, "Boolean expressions with logical operators": "The
    search command evaluates OR before AND operators")."""

    _FIELD = re.compile(r"[^\s=!<>()\"]+")

    def __init__(self, text: str, base: int, source: _Source) -> None:
        self.text = text
        self.base = base
        self.source = source
        self.index = 0

    def error(self, message: str, start: int | None = None, end: int | None = None) -> SplOracleError:
        start = self.index if start is None else start
        return self.source.error(message, self.base + start, self.base + (end if end is not None else start + 1))

    def skip(self) -> None:
        while self.index < len(self.text) and self.text[self.index].isspace():
            self.index += 1

    def at_end(self) -> bool:
        self.skip()
        return self.index >= len(self.text)

    def peek_word(self, word: str) -> bool:
        self.skip()
        end = self.index + len(word)
        return self.text.startswith(word, self.index) and (end >= len(self.text) or self.text[end].isspace()
                                                           or self.text[end] == "(")

    def parse(self) -> Predicate:
        if self.at_end():
            raise self.error("the search has no terms")
        predicate = self.parse_and()
        if not self.at_end():
            raise self.error(f"unexpected {self.text[self.index]!r} in the search")
        return predicate

    def parse_and(self) -> Predicate:
        items = [self.parse_or()]
        while not self.at_end() and self.text[self.index] != ")":
            if self.peek_word("AND"):
                self.index += 3
            items.append(self.parse_or())
        if len(items) == 1:
            return items[0]
        return lambda row: all(item(row) for item in items)

    def parse_or(self) -> Predicate:
        items = [self.parse_not()]
        while self.peek_word("OR"):
            self.index += 2
            items.append(self.parse_not())
        if len(items) == 1:
            return items[0]
        return lambda row: any(item(row) for item in items)

    def parse_not(self) -> Predicate:
        if self.peek_word("NOT"):
            self.index += 3
            inner = self.parse_not()
            return lambda row: not inner(row)
        return self.parse_primary()

    def parse_primary(self) -> Predicate:
        self.skip()
        if self.index >= len(self.text):
            raise self.error("the search ends where a term was expected")
        if self.text[self.index] == "(":
            self.index += 1
            inner = self.parse_and()
            self.skip()
            if self.index >= len(self.text) or self.text[self.index] != ")":
                raise self.error("expected ')'")
            self.index += 1
            return inner
        return self.parse_term()

    def parse_term(self) -> Predicate:
        start = self.index
        if self.text[start] == "*" and (start + 1 >= len(self.text) or self.text[start + 1] in " \t\r\n)"):
            self.index += 1
            return lambda row: True
        if self.text[start] == '"':
            raise self.error("free-text (_raw) search terms are outside the oracle's subset", start)
        match = self._FIELD.match(self.text, start)
        if match is None:
            raise self.error(f"unexpected {self.text[start]!r} in the search", start)
        self.index = match.end()
        field = match.group(0)
        for word in ("AND", "OR", "NOT"):
            if field == word:
                raise self.error(f"{word} needs a term on each side", start, self.index)
        operator = re.match(r"!=|<=|>=|=|<|>", self.text[self.index:])
        if operator is None:
            raise self.error(f"the free-text term {field!r} is outside the oracle's subset (only field=value "
                             "terms are in it)", start, self.index)
        if operator.group(0) not in ("=", "!="):
            raise self.error(f"the search comparison {operator.group(0)} is outside the oracle's subset",
                             self.index, self.index + len(operator.group(0)))
        negated = operator.group(0) == "!="
        self.index += len(operator.group(0))
        value, case_sensitive = self.parse_value()
        regex = _wildcard(value, case_sensitive)

        def test(row: Mapping[str, object]) -> bool:
            text = _text(_lookup(row, field))
            if text is None:
                return False  # field!=value also needs the field (SEMANTICS.md; search: field!=value)
            return (regex.fullmatch(text) is None) if negated else (regex.fullmatch(text) is not None)

        return test

    def parse_value(self) -> tuple[str, bool]:
        start = self.index
        if self.index >= len(self.text) or self.text[self.index].isspace():
            raise self.error("a value must follow '=' (write \"\" for the empty value)", start)
        if self.text[self.index] == '"':
            value, self.index = _read_quoted(self.text, self.index, '"', self.source, self.base)
            return value, False
        for directive in ("CASE(", "TERM("):
            if self.text.startswith(directive, self.index):
                if directive == "TERM(":
                    raise self.error("TERM() is outside the oracle's subset", start, start + 4)
                self.index += len(directive)
                if self.index < len(self.text) and self.text[self.index] == '"':
                    value, self.index = _read_quoted(self.text, self.index, '"', self.source, self.base)
                else:
                    close = self.text.find(")", self.index)
                    if close < 0:
                        raise self.error("CASE( is not closed", start, len(self.text))
                    value = self.text[self.index:close]
                    self.index = close
                if self.index >= len(self.text) or self.text[self.index] != ")":
                    raise self.error("expected ')' to close CASE(", self.index)
                self.index += 1
                return value, True
        match = re.compile(r"[^\s()]+").match(self.text, self.index)
        assert match is not None
        self.index = match.end()
        return match.group(0), False


# ------------------------------------------------------------------ commands


Stage = Callable[[list[Row]], list[Row]]


def _filter(predicate: Predicate) -> Stage:
    return lambda rows: [row for row in rows if predicate(row)]


def _search_stage(text: str, base: int, source: _Source) -> Stage:
    return _filter(_SearchParser(text, base, source).parse())


def _regex_stage(text: str, base: int, source: _Source) -> Stage:
    # regex (<field>=<regex-expression> | <field>!=<regex-expression> | <regex-expression>): keeps the
    # results that match an unanchored PCRE regex, or with != those that do not; the field defaults
    # to _raw; "Quotation marks are required" (Search Reference, regex).
    index = len(text) - len(text.lstrip())
    field = "_raw"
    negated = False
    if text.startswith('"', index):
        value, after = _read_quoted(text, index, '"', source, base)
        operator = re.compile(r"\s*(!=|=)\s*").match(text, after)
        if operator is not None:  # a field name in double quotes, as the emitter writes odd names
            field, negated, index = value, operator.group(1) == "!=", operator.end()
    else:
        match = re.compile(r"([^\s=!\"]+)\s*(!=|=)\s*").match(text, index)
        if match is None:
            raise source.error('regex needs field="regex" or field!="regex"', base + index, base + len(text))
        field, negated, index = match.group(1), match.group(2) == "!=", match.end()
    if not text.startswith('"', index):
        raise source.error("the regex command's regex must be in double quotes (Search Reference, regex)",
                           base + index, base + len(text))
    start = index
    pattern, index = _read_quoted(text, index, '"', source, base)
    if text[index:].strip():
        raise source.error(f"unexpected {text[index:].strip()!r} after the regex", base + index, base + len(text))
    try:
        regex = _compile_pcre(pattern)
    except ValueError as error:
        raise source.error(str(error), base + start, base + index) from None

    def keep(row: Mapping[str, object]) -> bool:
        value = _text(_lookup(row, field))
        if value is None:
            # A result without the field has nothing to match: = drops it. *Assumption*: != keeps it.
            return negated
        return (regex.search(value) is None) == negated

    return _filter(keep)


def _rex_stage(text: str, base: int, source: _Source) -> Stage:
    # rex [field=<field>] "<regex-expression>" [max_match=<int>]: "matches the value of the specified
    # field against the unanchored regular expression and extracts the named groups into fields of
    # the corresponding names"; the field defaults to _raw; events it does not match pass unchanged
    # (Search Reference, rex). max_match "controls the number of times the regex is matched. If
    # greater than 1, the resulting fields are multivalued fields" (default 1). *Assumptions*: an
    # extracted field replaces one of the same name; a group that takes no part in the match leaves
    # its field as it was; a group that captures nothing sets its field to the empty string; with
    # max_match, the matches are found left to right, each after the end of the one before (the
    # emitter writes no regex that can match the empty string there), and a group takes the values
    # it captured, in order (one value: a plain value).
    field = "_raw"
    index = len(text) - len(text.lstrip())
    most = 1
    option = re.compile(r"field\s*=\s*").match(text, index)
    if option is not None:
        index = option.end()
        if text.startswith('"', index):
            field, index = _read_quoted(text, index, '"', source, base)
        else:
            name = re.compile(r"[^\s\"]+").match(text, index)
            if name is None:
                raise source.error("rex field= needs a field name", base + index, base + len(text))
            field, index = name.group(0), name.end()
        index += len(text[index:]) - len(text[index:].lstrip())
    if not text.startswith('"', index):
        raise source.error("rex needs its regex in double quotes (Search Reference, rex)", base + index,
                           base + len(text))
    start = index
    pattern, index = _read_quoted(text, index, '"', source, base)
    limit = re.compile(r"\s+max_match\s*=\s*(\d+)").match(text, index)
    if limit is not None:
        most, index = int(limit.group(1)), limit.end()
        if most < 1:
            raise source.error("rex max_match=0 (no limit) is outside the oracle's subset", base + start,
                               base + index)
    if text[index:].strip():
        raise source.error(f"unexpected {text[index:].strip()!r} after rex's regex (offset_field and mode=sed "
                           "are outside the oracle's subset)", base + index, base + len(text))
    try:
        regex = _compile_pcre(pattern)
    except ValueError as error:
        raise source.error(str(error), base + start, base + index) from None
    if not regex.groupindex:
        raise source.error("rex's regex needs a named group (Search Reference, rex)", base + start, base + index)

    def extract(row: Row) -> Row:
        value = _text(_lookup(row, field))
        matches = list(itertools.islice(regex.finditer(value), most)) if value is not None else []
        if not matches:
            return row
        out = dict(row)
        for name in regex.groupindex:
            values = tuple(c for c in (m.group(name) for m in matches) if c is not None)
            if values:
                out[name] = values[0] if len(values) == 1 else values
        return out

    return lambda rows: [extract(row) for row in rows]


def _mvexpand_stage(text: str, base: int, source: _Source) -> Stage:
    # mvexpand <field> [limit=<int>]: "Expands the values of a multivalue field into separate events,
    # one event for each value in the multivalue field"; limit: "the number of values of <field> to
    # use for each input event", 0 (no limit) by default (Search Reference, mvexpand). A plain value
    # is one value. *Assumption*: a result without the field passes unchanged (the emitter writes
    # mvexpand only where every result has the field).
    match = re.fullmatch(r"\s*([A-Za-z_][\w.]*)(?:\s+limit\s*=\s*(\d+))?\s*", text)
    if match is None:
        raise source.error("mvexpand takes a field name and an optional limit=N", base, base + len(text))
    name, most = match.group(1), int(match.group(2) or 0)

    def expand(row: Row) -> list[Row]:
        value = row.get(name)
        if not isinstance(value, tuple):
            return [row]
        values = value[:most] if most else value
        return [{**row, name: one} for one in values]

    return lambda rows: [out for row in rows for out in expand(row)]


def _where_stage(text: str, base: int, source: _Source) -> Stage:
    # where <eval-expression>: "returns only the results for which the eval expression returns
    # true" (Search Reference, where): false and null both drop the result.
    expr, start, end = _parse_expression(text, base, source)

    def keep(row: Mapping[str, object]) -> bool:
        return _boolean(expr(row), "where", start, end, source) is True

    return _filter(keep)


def _eval_stage(text: str, base: int, source: _Source) -> Stage:
    # eval <field>=<expression>[, <field>=<expression>]...: left to right, each seeing the ones
    # before; an existing field is overwritten; "The result of an eval expression cannot be a
    # Boolean"; and an expression that cannot be evaluated for an event (null) erases the field
    # (Search Reference, eval).
    assignments: list[tuple[str, Expr, int, int]] = []
    for piece, offset in _split_top_level(text, ",", base, source):
        match = re.match(r"\s*(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|([A-Za-z_][A-Za-z0-9_.]*))\s*=(?!=)",
                         piece)
        if match is None:
            raise source.error("eval needs field=expression", offset, offset + len(piece))
        raw = match.group(1) if match.group(1) is not None else match.group(2)
        name = re.sub(r"\\(.)", r"\1", raw) if raw is not None else match.group(3)
        expr, start, end = _parse_expression(piece[match.end():], offset + match.end(), source)
        assignments.append((name, expr, start, end))

    def run(rows: list[Row]) -> list[Row]:
        out = []
        for row in rows:
            row = dict(row)
            for name, expr, start, end in assignments:
                value = expr(row)
                if isinstance(value, bool):
                    raise source.error("an eval result cannot be a Boolean: wrap it in if() "
                                       "(Search Reference, eval)", start, end)
                if isinstance(value, _MultiValue):
                    raise source.error("a multivalue eval result is outside the subset (mvindex() takes one "
                                       "value)", start, end)
                if value == ():
                    value = None  # mvrange() of no numbers: no field
                if value is None:
                    row.pop(name, None)
                else:
                    row[name] = value
            out.append(row)
        return out

    return run


def _split_top_level(text: str, separator: str, base: int, source: _Source) -> list[tuple[str, int]]:
    """``text`` cut at ``separator`` outside quotes and parentheses: (piece, absolute offset)."""
    pieces: list[tuple[str, int]] = []
    depth = 0
    start = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char in "\"'":
            index = _read_quoted(text, index, char, source, base)[1]
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == separator and depth == 0:
            pieces.append((text[start:index], base + start))
            start = index + 1
        index += 1
    pieces.append((text[start:], base + start))
    return pieces


def _field_list(text: str, base: int, source: _Source) -> list[str]:
    """Fields separated by blanks or commas, bare or in double quotes."""
    names: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace() or char == ",":
            index += 1
        elif char == '"':
            name, index = _read_quoted(text, index, '"', source, base)
            names.append(name)
        else:
            match = re.compile(r"[^\s,\"]+").match(text, index)
            assert match is not None
            names.append(match.group(0))
            index = match.end()
    return names


def _table_stage(text: str, base: int, source: _Source) -> Stage:
    # table <wc-field-list>: the results with only those fields, as columns in that order; a field a
    # result lacks is left empty (Search Reference, table). `*` in a name is a wildcard.
    names = _field_list(text, base, source)
    if not names:
        raise source.error("table needs at least one field", base, base + len(text))
    patterns = [(name, re.compile(".*".join(re.escape(p) for p in name.split("*")), re.DOTALL) if "*" in name
                 else None) for name in names]

    def project(row: Row) -> Row:
        out: Row = {}
        for name, pattern in patterns:
            if pattern is None:
                if name in row and name not in out:
                    out[name] = row[name]
            else:
                for key, value in row.items():
                    if key not in out and pattern.fullmatch(key):
                        out[key] = value
        return out

    return lambda rows: [project(row) for row in rows]


@record
class _SortKey(Frozen):
    field: str
    kind: str  # num | str | auto
    descending: bool

    def value(self, row: Mapping[str, object]) -> Value:
        raw = _lookup(row, self.field)
        if raw is None:
            return None
        if self.kind == "num":
            return _number(raw)  # *assumption*: a value num() cannot read sorts as a missing one
        if self.kind == "str":
            return _text(raw)
        return raw

    def compare(self, left: Value, right: Value) -> int:
        # "Results missing a given field are treated as having the smallest or largest possible
        # value of that field if the order is descending or ascending, respectively" (Search
        # Reference, sort): last, either way.
        if left is None or right is None:
            return 0 if left is right else (1 if left is None else -1)
        a: int | float | str | None
        b: int | float | str | None
        if self.kind == "num":
            a, b = _number(left), _number(right)
        elif self.kind == "str":
            a, b = _text(left), _text(right)
        else:
            # auto: numerically when both are numbers, else lexicographically (sort usage; the
            # "leading number" rule for alphanumeric strings is not modelled).
            a, b = _number(left), _number(right)
            if a is None or b is None:
                a, b = _text(left), _text(right)
        assert a is not None and b is not None
        result = (a > b) - (a < b)  # type: ignore[operator]  # both numbers or both strings
        return -result if self.descending else result


_SORT_KEY = re.compile(r"\s*([+-]?)\s*(?:(num|str|auto|ip)\(\s*(\"(?:[^\"\\]|\\.)*\"|[^\s()\"]+)\s*\)"
                       r"|(\"(?:[^\"\\]|\\.)*\"|[^\s,()\"]+))\s*")


def _sort_stage(text: str, base: int, source: _Source) -> Stage:
    # sort [<count>] <sort-by-clause>... [desc]: count 10,000 unless given, 0 for all; - descending,
    # + (the default) ascending; num() str() auto() ip() (Search Reference, sort). The sort is
    # stable (*assumption*: ties keep their input order).
    index = 0
    limit = 10000
    count = re.compile(r"\s*(?:limit\s*=\s*)?(\d+)(?=\s|$)").match(text)
    if count is not None:
        limit = int(count.group(1))
        index = count.end()
    keys: list[_SortKey] = []
    reverse = False
    while index < len(text) and text[index:].strip():
        rest = text[index:]
        final = re.fullmatch(r"\s*(d|desc)\s*", rest)
        if final is not None and keys:
            reverse = True
            break
        match = _SORT_KEY.match(text, index)
        if match is None:
            raise source.error("expected a sort field", base + index, base + len(text))
        sign, kind, inner, plain = match.groups()
        if kind == "ip":
            raise source.error("sort ip() is outside the oracle's subset", base + match.start(2), base + match.end(2))
        name = inner if inner is not None else plain
        assert name is not None
        if name.startswith('"'):
            name = _read_quoted(name, 0, '"', source, base + index)[0]
        keys.append(_SortKey(name, kind or "auto", sign == "-"))
        index = match.end()
        if text[index:index + 1] == ",":
            index += 1
    if not keys:
        raise source.error("sort needs a field", base, base + len(text))
    if reverse:
        keys = [_SortKey(k.field, k.kind, not k.descending) for k in keys]

    def compare(left: tuple[list[Value], int], right: tuple[list[Value], int]) -> int:
        for key, a, b in zip(keys, left[0], right[0], strict=True):
            result = key.compare(a, b)
            if result:
                return result
        return 0

    def run(rows: list[Row]) -> list[Row]:
        decorated = [([key.value(row) for key in keys], position) for position, row in enumerate(rows)]
        ordered = sorted(decorated, key=functools.cmp_to_key(compare))
        chosen = ordered if limit == 0 else ordered[:limit]
        return [rows[position] for _, position in chosen]

    return run


def _head_stage(text: str, base: int, source: _Source) -> Stage:
    # head [<N> | limit=<int>]: the first N results, 10 by default (Search Reference, head).
    stripped = text.strip()
    if not stripped:
        return lambda rows: rows[:10]
    match = re.fullmatch(r"(?:limit\s*=\s*)?(\d+)", stripped)
    if match is None:
        raise source.error("head takes a count only, in the oracle's subset", base, base + len(text))
    count = int(match.group(1))
    return lambda rows: rows[:count]


_STATS_TERM = re.compile(r"\s*(count|dc|sum|min|max|avg|values|latest|first)"
                         r"(?:\(\s*(\"(?:[^\"\\]|\\.)*\"|[A-Za-z_][\w.]*)\s*\))?"
                         r"\s+as\s+(\"(?:[^\"\\]|\\.)*\"|[A-Za-z_][\w.]*)\s*$")


def _unquote(name: str, source: _Source, base: int) -> str:
    return _read_quoted(name, 0, '"', source, base)[0] if name.startswith('"') else name


_Term = tuple[str, str | None, str]  # function, field, output name


def _stats_terms(text: str, base: int, source: _Source, command: str) -> tuple[list[_Term], list[str]]:
    """``<function>(<field>) as <name>, ... [by <field-list>]``: the terms and the BY fields."""
    by = re.search(r"\s+by\s+(.*)$", text, re.DOTALL)
    head = text[:by.start()] if by else text
    keys = _field_list(by.group(1), base + by.start(1), source) if by else []
    terms: list[_Term] = []
    for piece, offset in _split_top_level(head, ",", base, source):
        match = _STATS_TERM.match(piece)
        if match is None:
            raise source.error(f"{command} takes count, count(X), dc(X), sum(X), min(X), max(X), avg(X), values(X), "
                               "latest(X), first(X), each with 'as NAME', in the oracle's subset",
                               offset, offset + len(piece))
        function, field, name = match.groups()
        if function != "count" and field is None:
            raise source.error(f"{function} needs a field", offset, offset + len(piece))
        terms.append((function, _unquote(field, source, offset) if field else None, _unquote(name, source, offset)))
    if not terms:
        raise source.error(f"{command} needs a function", base, base + len(text))
    return terms, keys


def _stats_result(function: str, field: str | None, rows: list[Row]) -> Value:
    """One stats function over a group's rows (Search Reference, statistical and charting functions).
    count(X) counts the rows that have X, dc(X) its distinct values; sum and avg use the numeric
    values only (no number: no value); min and max are numeric when X has numbers, else
    lexicographic. values(X) is the distinct values, in lexicographical order (multivalue stats
    functions; "lexicographical order" sorts by the UTF-8 encoding: Search Manual). first(X) is the
    first value in the order the rows come in (event order functions). latest(X) is the value of
    the chronologically latest row with X, by _time (time functions); *assumption*: a row without
    _time is older than every row with one, and of rows with the same time the later one wins."""
    if field is None:
        return len(rows)
    values = [v for v in (_lookup(row, field) for row in rows) if v is not None]
    if function == "count":
        return len(values)
    if function == "dc":
        return len({_text(v) for v in values})
    if function == "values":
        return tuple(sorted({t for t in (_text(v) for v in values) if t is not None})) or None
    if function == "first":
        return values[0] if values else None
    if function == "latest":
        dated = [((0, 0.0, i) if (t := _number(_lookup(row, "_time"))) is None else (1, t, i), value)
                 for i, row in enumerate(rows) if (value := _lookup(row, field)) is not None]
        return max(dated, key=lambda item: item[0])[1] if dated else None
    numbers = [n for n in (_number(v) for v in values) if n is not None]
    if function in ("sum", "avg"):
        if not numbers:
            return None
        total = _numeric(sum(numbers))
        return total if function == "sum" else _tidy(total / len(numbers))
    if numbers:
        return min(numbers) if function == "min" else max(numbers)
    texts = [t for t in (_text(v) for v in values) if t is not None]
    if not texts:
        return None
    return min(texts) if function == "min" else max(texts)


def _groups(rows: list[Row], keys: list[str]) -> dict[tuple[str, ...], list[int]]:
    """The rows (by position) of each BY group; rows that lack a BY field are in none."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, row in enumerate(rows):
        texts = [_text(_lookup(row, key)) for key in keys]
        if any(t is None for t in texts):
            continue
        groups.setdefault(tuple(t for t in texts if t is not None), []).append(position)
    return groups


def _stats_stage(text: str, base: int, source: _Source) -> Stage:
    # stats <function>(<field>) as <name>, ... [by <field-list>] (Search Reference, stats, in the
    # oracle's subset: see _stats_result). Events that lack a BY field are left out. With no BY
    # clause and no events, one row (count 0).
    # *Assumption*: rows come sorted by the BY values, compared as text; a group's BY values are
    # those of its first event.
    terms, keys = _stats_terms(text, base, source, "stats")

    def run(rows: list[Row]) -> list[Row]:
        groups = _groups(rows, keys)
        if not keys and not groups:
            groups[()] = []
        out: list[Row] = []
        for identity in sorted(groups):
            members = [rows[p] for p in groups[identity]]
            group: Row = {key: _lookup(members[0], key) for key in keys}
            for function, field, name in terms:
                # A function with no value leaves its column null, in its place among the
                # columns: a later eval that fills it does not move it to the end.
                group[name] = _stats_result(function, field, members)
            out.append(group)
        return out

    return run


def _eventstats_stage(text: str, base: int, source: _Source) -> Stage:
    # eventstats <function>(<field>) as <name>, ... [by <field-list>]: the same statistics as stats,
    # added to every event of the group, in the events' order (Search Reference, eventstats).
    # *Assumption*: an event that lacks a BY field is in no group and gets no statistics.
    terms, keys = _stats_terms(text, base, source, "eventstats")

    def run(rows: list[Row]) -> list[Row]:
        out = [dict(row) for row in rows]
        for positions in _groups(rows, keys).values():
            members = [rows[p] for p in positions]
            for function, field, name in terms:
                value = _stats_result(function, field, members)
                for position in positions:
                    if value is None:
                        out[position].pop(name, None)
                    else:
                        out[position][name] = value
        return out

    return run


def _fields_stage(text: str, base: int, source: _Source) -> Stage:
    # fields [+|-] <field-list>: keep only, or (with -) remove, the named fields (Search Reference,
    # fields). Wildcards are outside the oracle's subset.
    match = re.match(r"\s*([+-]?)", text)
    assert match is not None
    names = _field_list(text[match.end():], base + match.end(), source)
    if not names or any("*" in n for n in names):
        raise source.error("fields takes plain field names in the oracle's subset", base, base + len(text))
    if match.group(1) == "-":
        return lambda rows: [{k: v for k, v in row.items() if k not in names} for row in rows]
    return lambda rows: [{k: row[k] for k in names if k in row} for row in rows]


_LOOKUP_PAIR = re.compile(r"\s*(\"(?:[^\"\\]|\\.)*\"|[^\s,\"]+)(?:\s+(?i:AS)\s+(\"(?:[^\"\\]|\\.)*\"|[^\s,\"]+))?\s*,?")


def _lookup_pairs(text: str, base: int, source: _Source) -> list[tuple[str, str]]:
    """``name [AS other], ...`` as (name, other) pairs (other defaults to name)."""
    pairs: list[tuple[str, str]] = []
    index = 0
    while index < len(text) and text[index:].strip():
        match = _LOOKUP_PAIR.match(text, index)
        if match is None or match.end() == index:
            raise source.error("expected a field name", base + index, base + len(text))
        first = _unquote(match.group(1), source, base + index)
        pairs.append((first, _unquote(match.group(2), source, base + index) if match.group(2) else first))
        index = match.end()
    return pairs


def _lookup_stage(text: str, base: int, source: _Source) -> Stage:
    # lookup <lookup-table-name> (<lookup-field> [AS <event-field>])... [OUTPUT | OUTPUTNEW
    # (<lookup-destfield> [AS <event-destfield>])...] (Search Reference, lookup). A CSV lookup matches
    # exactly and case-sensitively (transforms.conf: case_sensitive_match defaults to true); an event
    # without an event field matches no row. OUTPUT overwrites existing fields; OUTPUTNEW leaves an
    # event whose destination fields all exist as it is; with neither, every column that is not a
    # match field is output. *Assumptions*: an empty cell is no value (the destination field is
    # removed), and so is no match under OUTPUT. Several matching rows make multivalue fields in
    # Splunk, which are outside the oracle's subset: refused.
    match = re.match(r"\s*(\"(?:[^\"\\]|\\.)*\"|\S+)", text)
    if match is None:
        raise source.error("lookup needs a lookup table name", base, base + len(text))
    table = _unquote(match.group(1), source, base + match.start(1))
    clause = re.search(r"\s(OUTPUTNEW|OUTPUT)\s", text[match.end():] + " ", re.IGNORECASE)
    head_end = match.end() + (clause.start() if clause else len(text) - match.end())
    keys = _lookup_pairs(text[match.end():head_end], base + match.end(), source)
    tail = match.end() + clause.end() if clause else len(text)
    outputs = _lookup_pairs(text[tail:], base + tail, source) if clause else None
    if not keys:
        raise source.error("lookup needs a lookup field", base, base + len(text))
    if table not in source.lookups:
        raise source.error(f"the lookup table {table} was not given to the oracle", base + match.start(1),
                           base + match.end(1))
    rows = [{str(k): _field_value(v) for k, v in row.items()} for row in source.lookups[table]]
    new_only = clause is not None and clause.group(1).upper() == "OUTPUTNEW"
    start, end = base + match.start(1), base + len(text)

    def run(events: list[Row]) -> list[Row]:
        out = []
        for event in events:
            values = [_text(_lookup(event, field_name)) for _, field_name in keys]
            hits = [] if None in values else [r for r in rows if all(
                _text(r.get(column)) == value for (column, _), value in zip(keys, values, strict=True))]
            if len(hits) > 1:
                raise source.error(f"{len(hits)} rows of {table} match: Splunk makes multivalue fields, which are "
                                   "outside the oracle's subset", start, end)
            pairs = outputs if outputs is not None else [
                (c, c) for c in (rows[0] if rows else {}) if c not in {k for k, _ in keys}]
            if new_only and pairs and all(dest in event for _, dest in pairs):
                out.append(event)
                continue
            event = dict(event)
            for column, dest in pairs:
                value = _lookup(hits[0], column) if hits else None
                if value is None or value == "":
                    event.pop(dest, None)
                else:
                    event[dest] = value
            out.append(event)
        return out

    return run


def _dedup_stage(text: str, base: int, source: _Source) -> Stage:
    # dedup [<int>] <field-list>: keeps the first <int> (1 by default) results of each combination
    # of the fields' values; results without one of the fields are removed (keepempty=false, the
    # default) (Search Reference, dedup).
    keep, skip = 1, 0
    count_text = re.match(r"\s*(\d+)\s+", text)
    if count_text is not None:
        keep, skip = int(count_text.group(1)), count_text.end()
        if keep < 1:
            raise source.error("dedup keeps at least 1 result per combination", base + count_text.start(1),
                               base + count_text.end(1))
    names = _field_list(text[skip:], base + skip, source)
    if not names:
        raise source.error("dedup needs a field", base, base + len(text))

    def run(rows: list[Row]) -> list[Row]:
        seen: Counter[tuple[str | None, ...]] = Counter()
        out = []
        for row in rows:
            values = tuple(_text(_lookup(row, name)) for name in names)
            if None in values or seen[values] >= keep:
                continue
            seen[values] += 1
            out.append(row)
        return out

    return run


_COMMANDS: dict[str, Callable[[str, int, _Source], Stage]] = {
    "lookup": _lookup_stage,
    "dedup": _dedup_stage,
    "stats": _stats_stage,
    "eventstats": _eventstats_stage,
    "fields": _fields_stage,
    "search": _search_stage,
    "regex": _regex_stage,
    "rex": _rex_stage,
    "mvexpand": _mvexpand_stage,
    "where": _where_stage,
    "eval": _eval_stage,
    "table": _table_stage,
    "sort": _sort_stage,
    "head": _head_stage,
}


# ------------------------------------------------------------------ the pipeline


def _split_pipeline(text: str, source: _Source) -> list[tuple[str, int]]:
    """The SPL cut at each ``|`` outside quotes: (segment, its offset in the SPL)."""
    segments: list[tuple[str, int]] = []
    start = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char in "\"'":
            # A single quote only quotes in eval expressions; elsewhere the emitter writes none.
            index = _read_quoted(text, index, char, source, 0)[1]
            continue
        if char == "[":  # a subsearch: its pipes are its own
            index = _subsearch_end(text, index, source) + 1
            continue
        if char == "|":
            segments.append((text[start:index], start))
            start = index + 1
        index += 1
    segments.append((text[start:], start))
    return segments


def _subsearch_end(text: str, start: int, source: _Source) -> int:
    """The index of the ``]`` that closes the subsearch opened at ``start`` (quotes and nested
    brackets skipped)."""
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char in "\"'":
            index = _read_quoted(text, index, char, source, 0)[1]
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise source.error("a subsearch '[' is not closed", start, len(text))


def _join_stage(text: str, base: int, source: _Source) -> Stage:
    # join [type=inner|outer|left] [max=<int>] <field-list> [subsearch] (Search Reference, join): the
    # results joined with the subsearch's on the fields of the list, which both must have; inner
    # keeps only matched results, outer/left every result; max (default 1) is how many subsearch rows
    # each result joins, 0 for no limit (a result for each matching row); the subsearch's fields
    # overwrite the result's (overwrite=true).
    # *Assumptions*: values are compared as text, case-sensitively; with max=1 the first matching
    # row in subsearch order is joined (cqlx's SPL dedups its subsearch, so it does not rely on it);
    # with max=0 the rows in subsearch order. The oracle's subset: max=1 or 0, the options type and max.
    open_at = text.find("[")
    if open_at < 0:
        raise source.error("join needs a subsearch in [ ]", base, base + len(text))
    close_at = _subsearch_end(text, open_at, source)
    if text[close_at + 1:].strip():
        raise source.error("nothing may follow join's subsearch", base + close_at + 1, base + len(text))
    words = text[:open_at].split()
    options = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words if "=" in w}
    fields = [w for w in words if "=" not in w]
    kind = options.pop("type", "inner")
    limit = options.pop("max", "1")
    if kind not in ("inner", "outer", "left") or limit not in ("0", "1") or options or not fields:
        raise source.error("join takes type=inner|outer|left, max=1 or max=0 and a field list in the oracle's "
                           "subset", base, base + open_at)
    inner = text[open_at + 1:close_at].strip()
    if inner.startswith("search "):
        inner = inner[len("search "):]
    program = compile_spl(inner, source.lookups)

    def run(rows: list[Row]) -> list[Row]:
        sub = program.run(source.events)
        out = []
        for row in rows:
            values = [_text(_lookup(row, name)) for name in fields]
            hits = [] if None in values else [s for s in sub if [_text(_lookup(s, name)) for name in fields] == values]
            if not hits:
                if kind != "inner":
                    out.append(row)
                continue
            out += [{**row, **hit} for hit in (hits if limit == "0" else hits[:1])]
        return out

    return run


_COMMANDS["join"] = _join_stage  # defined after the table: it compiles its subsearch with compile_spl


@record
class SplProgram(Frozen):
    """Compiled SPL: ``run(events)`` gives the result rows in order."""

    stages: tuple[Stage, ...]
    source: _Source | None = None

    def run(self, events: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
        rows = [_event_row(event) for event in events]
        if self.source is not None:
            self.source.events[:] = rows
        for stage in self.stages:
            rows = stage(rows)
        return rows


def compile_spl(spl: str, lookups: Mapping[str, Sequence[Mapping[str, object]]] | None = None) -> SplProgram:
    """Parse SPL of the oracle's subset; :class:`SplOracleError` (with the position) otherwise.
    ``lookups`` are the tables ``lookup`` reads, by name (``hosts.csv``): rows of {field: value}."""
    source = _Source(spl, lookups or {})
    segments = _split_pipeline(spl, source)
    stages: list[Stage] = []
    first_text, first_offset = segments[0]
    if first_text.strip():
        match = re.match(r"\s*search(?=\s|$)", first_text)
        body_start = match.end() if match else 0
        stages.append(_search_stage(first_text[body_start:], first_offset + body_start, source))
        rest = segments[1:]
    else:
        if len(segments) < 2:
            raise source.error("the SPL is empty", 0, len(spl))
        text, offset = segments[1]
        generating = re.fullmatch(r"\s*datamodel\s+([A-Za-z_]\w*)\s+([A-Za-z_]\w*)\s+search\s*", text)
        if generating is None:
            raise source.error("a search starting with '|' must start with the generating command "
                               "'datamodel <model> <dataset> search' in the oracle's subset",
                               offset, offset + len(text))
        # | datamodel <model> <dataset> search: the dataset's events, fields named with the dataset's
        # prefix (Search Reference, datamodel). *Assumption*: the events given are that dataset's.
        rest = segments[2:]
    stages += _commands(rest, source)
    return SplProgram(tuple(stages), source)


def _commands(segments: Sequence[tuple[str, int]], source: _Source) -> list[Stage]:
    """The stages of commands between pipes, each (its text, its offset in the SPL)."""
    stages: list[Stage] = []
    for text, offset in segments:
        match = re.match(r"\s*([A-Za-z_]\w*)", text)
        if match is None:
            raise source.error("expected a command after '|'", offset, offset + max(1, len(text)))
        name = match.group(1)
        builder = _COMMANDS.get(name)
        if builder is None:
            raise source.error(f"the command {name!r} is outside the oracle's subset", offset + match.start(1),
                               offset + match.end(1))
        stages.append(builder(text[match.end():], offset + match.end(), source))
    return stages


def _appendpipe_stage(text: str, base: int, source: _Source) -> Stage:
    # appendpipe [<subpipeline>]: the subpipeline runs over the results when the search reaches it,
    # and its results are appended after them (Search Reference, appendpipe). The oracle's subset:
    # the subpipeline's commands are those of the subset; run_in_preview is not taken.
    open_at = text.find("[")
    if open_at < 0 or text[:open_at].strip():
        raise source.error("appendpipe takes a subpipeline in [ ] in the oracle's subset", base, base + len(text))
    close_at = _subsearch_end(text, open_at, source)
    if text[close_at + 1:].strip():
        raise source.error("nothing may follow appendpipe's subpipeline", base + close_at + 1, base + len(text))
    start = base + open_at + 1
    inner = _split_pipeline(text[open_at + 1:close_at], source)
    stages = _commands([(part, start + offset) for part, offset in inner], source)

    def run(rows: list[Row]) -> list[Row]:
        appended = [dict(row) for row in rows]
        for stage in stages:
            appended = stage(appended)
        return [*rows, *appended]

    return run


_COMMANDS["appendpipe"] = _appendpipe_stage  # defined after the table, as join


def run_spl(spl: str, events: Iterable[Mapping[str, object]],
            lookups: Mapping[str, Sequence[Mapping[str, object]]] | None = None) -> list[dict[str, object]]:
    """Run SPL of cqlx's emitted subset over ``events`` (field → value; ``_time`` may be a number)
    as Splunk documents it, and return the result rows in order; ``lookups`` holds the tables the
    ``lookup`` command reads, by name."""
    return compile_spl(spl, lookups).run(events)


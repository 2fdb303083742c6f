"""A cheaper scanner for Lark's contextual lexer: same tokens, a fraction of the start-up.

Lark's contextual lexer gives each parser state a scanner: one Python regex that alternates every
terminal the state accepts, ``(?P<A>...)|(?P<B>...)``, compiled the first time the state is met.
The grammar has 60 such states, and a single query meets about 20: compiling those alternations
was the largest cost of a cold ``cqlx convert`` after imports (30-50 ms here), for a parse of
under a millisecond. This module compiles each terminal once and, per state, tries only the
terminals whose pattern can start with the character at the position, in Lark's order.

It answers exactly as Lark's scanner does. An alternation matches with its first alternative that
matches at the position; trying the same terminals one by one in the same order, skipping only
those that cannot start with that character, finds the same one. The first characters come from
the parsed pattern (``re._parser``) and err on the side of "any character": a category (``\\d``,
``\\w``) or a case-insensitive letter may also start with a non-ASCII character, and an element
the walk does not know stands for every character. tests/test_lexing.py checks the token streams
of the sample corpus and of generated queries against Lark's own scanner.

Lark has no public hook for a state's scanner, so :func:`install` replaces the class of the
lexers of one parser (a subclass that only overrides ``_build_scanner``) and leaves Lark's own in
place when its internals are not the ones this was written against.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any

import lark.lexer
from lark.lexer import BasicLexer, ContextualLexer

from cqlx.regexes import sre_constants as _sre
from cqlx.regexes import sre_parse as _sre_parse

# Lark's helper that folds keywords into the name terminal they also match (private: looked up,
# and the scanner left as Lark's when it is not there).
_CREATE_UNLESS: Callable[..., Any] | None = getattr(lark.lexer, "_create_unless", None)

_ASCII = tuple(chr(code) for code in range(128))


class _First:
    """What a pattern's match may start with: ``chars``, or any non-ASCII character as well
    (``wide``), or anything at all (``any``); and whether it may match nothing (``empty``)."""

    __slots__ = ("any", "chars", "empty", "wide")

    def __init__(self, chars: Iterable[str] = (), *, wide: bool = False, any_: bool = False,
                 empty: bool = False) -> None:
        self.chars = set(chars)
        self.wide = wide
        self.any = any_
        self.empty = empty

    def add(self, other: _First) -> None:
        self.chars |= other.chars
        self.wide = self.wide or other.wide
        self.any = self.any or other.any

    def admits(self, char: str) -> bool:
        return self.any or char in self.chars or (self.wide and char not in _ASCII_SET)


_ASCII_SET = frozenset(_ASCII)
_ANY = _First(any_=True)


@cache
def _category(code: Any) -> frozenset[str]:
    """The ASCII characters of a category (``\\d``, ``\\s``, ``\\w``), asked of ``re`` itself."""
    rx = re.compile({_sre.CATEGORY_DIGIT: r"\d", _sre.CATEGORY_SPACE: r"\s",
                     _sre.CATEGORY_WORD: r"\w"}.get(code, r"(?!)"))
    return frozenset(char for char in _ASCII if rx.match(char))


def _fold(chars: Iterable[str]) -> set[str]:
    return {variant for char in chars for variant in (char, char.lower(), char.upper())}


def _sequence(items: Sequence[tuple[Any, Any]], ignorecase: bool) -> _First:
    """The first characters of a sequence: those of its first element, and of the next while the
    elements before may match nothing."""
    first = _First(empty=True)
    for op, arg in items:
        element = _element(op, arg, ignorecase)
        first.add(element)
        if not element.empty:
            first.empty = False
            return first
    return first


def _element(op: Any, arg: Any, ignorecase: bool) -> _First:
    if op is _sre.LITERAL:
        chars = {chr(arg)}
        # Case-insensitive matching folds beyond ASCII (re matches 'k' with U+212A, KELVIN SIGN).
        return _First(_fold(chars), wide=True) if ignorecase else _First(chars)
    if op is _sre.IN:
        return _in(arg, ignorecase)
    if op is _sre.SUBPATTERN:
        _group, add_flags, del_flags, items = arg
        folded = (ignorecase or bool(add_flags & re.IGNORECASE)) and not del_flags & re.IGNORECASE
        return _sequence(items, folded)
    if op is _sre.BRANCH:
        union = _First()
        for items in arg[1]:
            branch = _sequence(items, ignorecase)
            union.add(branch)
            union.empty = union.empty or branch.empty
        return union
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", None)):
        low, _high, items = arg
        inner = _sequence(items, ignorecase)
        inner.empty = inner.empty or low == 0
        return inner
    if op is getattr(_sre, "ATOMIC_GROUP", None):
        return _sequence(arg, ignorecase)
    if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
        # Zero width: the match starts with what follows (a lookahead only narrows that).
        return _First(empty=True)
    return _First(any_=True)  # ANY, NOT_LITERAL, GROUPREF, ...: anything may come first


def _in(items: Sequence[tuple[Any, Any]], ignorecase: bool) -> _First:
    first = _First(wide=ignorecase)
    for op, arg in items:
        if op is _sre.NEGATE:
            return _First(any_=True)
        if op is _sre.LITERAL:
            first.chars.add(chr(arg))
        elif op is _sre.RANGE and arg[1] - arg[0] < 256:
            first.chars.update(chr(code) for code in range(arg[0], arg[1] + 1))
        elif op is _sre.CATEGORY and arg in (_sre.CATEGORY_DIGIT, _sre.CATEGORY_SPACE, _sre.CATEGORY_WORD):
            first.chars |= _category(arg)
            first.wide = True
        else:
            return _First(any_=True)
    if ignorecase:
        first.chars = _fold(first.chars)
    return first


@cache
def first_chars(pattern: str, flags: int = 0) -> _First:
    """What a match of ``pattern`` may start with (a superset: never misses a character)."""
    try:
        parsed = _sre_parse.parse(pattern, flags)
    except (re.error, AttributeError, TypeError, ValueError):  # pragma: no cover - another Python
        return _ANY
    # Flags written inline at the start of the pattern, ``(?i)``, are in the parsed state.
    first = _sequence(list(parsed), bool((flags | parsed.state.flags) & re.IGNORECASE))
    return _ANY if first.empty else first


@cache
def _compiled(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


class FirstCharScanner:
    """Stands in for ``lark.lexer.Scanner`` of one state: ``match`` gives the same (text, type)."""

    def __init__(self, terminals: Sequence[Any], flags: int) -> None:
        self.terminals = list(terminals)
        self.allowed_types = {terminal.name for terminal in self.terminals}
        self._flags = flags
        self._entries = [(terminal.name, terminal.pattern.to_regexp()) for terminal in self.terminals]
        self._by_char: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {}

    def _candidates(self, char: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
        flags = self._flags
        found = tuple((name, _compiled(pattern, flags)) for name, pattern in self._entries
                      if first_chars(pattern, flags).admits(char))
        self._by_char[char] = found
        return found

    def match(self, text: Any, pos: int) -> tuple[str, str] | None:
        # Lark 1.3 passes a TextSlice (text, start, end); earlier versions the string itself.
        source, end = (text, len(text)) if isinstance(text, str) else (text.text, text.end)
        char = source[pos]
        candidates = self._by_char.get(char)
        if candidates is None:
            candidates = self._candidates(char)
        for name, rx in candidates:
            found = rx.match(source, pos, end)
            if found:
                return found.group(0), name
        return None


class _CompileOnce:
    """``re`` as Lark's keyword folding uses it, compiling each pattern once per process: the
    states share most of their keyword sets, and the alternation of each was compiled anew."""

    error = re.error
    compile = staticmethod(_compiled)

    @staticmethod
    def match(pattern: str, text: str, flags: int = 0) -> re.Match[str] | None:
        return _compiled(pattern, flags).match(text)


class _FirstCharLexer(BasicLexer):
    """Lark's basic lexer of one parser state, with the scanner above."""

    def _build_scanner(self) -> Any:
        assert _CREATE_UNLESS is not None
        terminals, self.callback = _CREATE_UNLESS(self.terminals, self.g_regex_flags, _CompileOnce, self.use_bytes)
        for type_, callback in self.user_callbacks.items():  # none in cqlx; kept as Lark chains them
            if type_ in self.callback:
                return super()._build_scanner()
            self.callback[type_] = callback
        return FirstCharScanner(terminals, self.g_regex_flags)


def install(lexer: Any) -> bool:
    """Give the contextual ``lexer`` of a Lark parser the first-character scanner; False (and
    Lark's own scanner kept) when this Lark is not shaped as expected."""
    if _CREATE_UNLESS is None or not isinstance(lexer, ContextualLexer):
        return False
    lexers = [*lexer.lexers.values(), lexer.root_lexer]
    if not all(type(each) is BasicLexer and each.re is re and not each.use_bytes and each._scanner is None
               for each in lexers):
        return False
    for each in lexers:
        each.__class__ = _FirstCharLexer
    return True


__all__ = ["FirstCharScanner", "first_chars", "install"]

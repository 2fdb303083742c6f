"""The first-character scanner (cqlx.lexing) and the one-loop driver (cqlx.lalr) read every query
exactly as Lark's own scanner and parser do.

Two checks: what a pattern may start with is a superset of what it does start with (a table, and
a property over the grammar's own terminals); and the parser with either scanner, and the driver,
give the same AST, or the same error at the same place, over the sample corpus, hand-picked
lexical traps, and generated and mutated queries.
"""

from __future__ import annotations

import random
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import lark
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cqlx import lalr, lexing, parser
from cqlx.errors import CqlError
from cqlx.resources import data_path
from cqlx.rules import find_rules, load_rules
from tests.test_fuzz import CqlGenerator, RandomChooser, mutate

ROOT = Path(__file__).resolve().parent.parent

FIRST_CHARS = [
    # pattern, flags, starts a match, cannot start one
    ("abc", 0, "a", "bA\u00e9"),
    ("(?i)case", 0, "cC", "a"),
    ("(?i:case)", 0, "cC", "a"),
    ("case", re.IGNORECASE, "cC", "a"),
    ("a?b", 0, "ab", "c"),
    ("a*b*c", 0, "abc", "d"),
    ("(?:x|yz)+", 0, "xy", "z"),
    ("(?=x)[xy]", 0, "xy", "z"),
    (r"\bfoo", 0, "f", "o"),
    (r"\d+", 0, "09\u0663", "a"),  # Unicode digits too, as re matches them
    (r"\s", 0, " \t\n\x1c\u2028", "a"),
    (r"\w", 0, "aZ_9\u00e9", "-"),
    ("[a-c_]", 0, "abc_", "d"),
    ("[^x]", 0, "ax-", ""),
    (".", 0, "a\u00e9", ""),
    ("x*", 0, "x-", ""),  # may match nothing: anything may follow
    ("(?i)k", 0, "kK\u212a", "j"),  # re folds KELVIN SIGN into k
    ("[a-c]", re.IGNORECASE, "aAbC", "d"),
]


@pytest.mark.parametrize(("pattern", "flags", "starts", "never"), FIRST_CHARS)
def test_first_chars(pattern: str, flags: int, starts: str, never: str) -> None:
    first = lexing.first_chars(pattern, flags)
    for char in starts:
        assert first.admits(char), (pattern, char)
    for char in never:
        assert not first.admits(char), (pattern, char)


@cache
def _terminals() -> tuple[tuple[str, str], ...]:
    stock = parser.load_parser(_grammar(), None, first_char_scanner=False)
    return tuple((term.name, term.pattern.to_regexp()) for term in stock.terminals)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_first_chars_cover_every_match_of_the_grammars_terminals(data: st.DataObject) -> None:
    name, pattern = data.draw(st.sampled_from(_terminals()))
    text = data.draw(st.one_of(st.from_regex(pattern), st.text(max_size=6)))
    found = re.match(pattern, text)
    if found and found.group():
        assert lexing.first_chars(pattern).admits(text[0]), (name, text)


@cache
def _grammar() -> str:
    return data_path("grammar", "cql.lark").read_text(encoding="utf-8")


@cache
def _parsers() -> tuple[lark.Lark, lark.Lark]:
    return (parser.load_parser(_grammar(), None), parser.load_parser(_grammar(), None, first_char_scanner=False))


class _Driven:
    """The driver, and Lark where it gives up (as cqlx.parser.parse does); counts what it read."""

    def __init__(self, grammar_parser: lark.Lark) -> None:
        driver = lalr.driver(grammar_parser)
        assert driver is not None
        self.driver, self.parser, self.answered = driver, grammar_parser, 0

    def parse(self, text: str) -> Any:
        try:
            result = self.driver.parse(text)
        except lalr.Unparsed:
            return self.parser.parse(text)
        self.answered += 1
        return result


def _outcome(grammar_parser: lark.Lark | _Driven, text: str) -> Any:
    try:
        return ("ast", grammar_parser.parse(text))
    except lark.exceptions.UnexpectedInput as error:
        # What was expected is a set; its order in the message is the set's, not the scanner's.
        expected = getattr(error, "expected", None) or getattr(error, "allowed", None) or ()
        return (type(error).__name__, error.line, error.column, repr(getattr(error, "token", None)),
                getattr(error, "char", None), frozenset(expected))
    except CqlError as error:
        return (type(error).__name__, str(error))
    except RecursionError:
        return ("deep",)


def _sample_queries() -> list[str]:
    queries = []
    for path in find_rules([str(ROOT / "samples")]):
        try:
            queries.extend(rule.text for rule in load_rules(path))
        except CqlError:
            continue
    return queries


TRAPS = [
    "case { a=1 | b:=2 ; * }", "Case{a=1}", "cases=1", "casex { }", "in(f, values=[a, b])", "like=1",
    "x match { a => y:=1 ; * => * }", "a=1 or b=2 OR c=3 and not d", "andrew=1 notes=2", "NOT=1",
    'f=/a\\/b/i', 'f=/[/]/', "f=\"a\\\"b\" | g=*x*", "$saved(a=1)", '$"my search"()', "?param=x",
    "?{weird name}=1", "10.0.0.0/8", "f=10.0.0.1/33", "#event_simpleName=Process*", "@timestamp>1",
    "x:=a*2+-3", "ioc:lookup(field=x)", "test(a<b)", "f=\u212aelvin", "f=\u00e9t\u00e9", "é=1",
    "f=a\tg=b\r\nh=c", "// comment\nf=1", "/* block\n comment */ f=1", "f=1 | // trailing", "f=1d",
    "bucket(span=1h)", "a[0]=1", "a[0].b=2", "a.b.c=3", "sort(x, order=asc, limit=10)", "@rawstring=/x/",
    "f=\"unterminated", "f=/unterminated", "(((", ")", "| |", "f=\x00", "\ufeff f=1",
]


def _generated(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    seeds = _sample_queries()[:20]
    texts = []
    for index in range(count):
        chooser = RandomChooser(rng)
        generator = CqlGenerator(chooser)
        texts.append(generator.query() if index % 2 else mutate(chooser, seeds[index % len(seeds)], generator))
    return texts


def test_sample_corpus_and_traps_read_alike() -> None:
    fast, stock = _parsers()
    driven = _Driven(fast)
    texts = _sample_queries() + TRAPS
    assert len(texts) > 60
    parsed = 0
    for text in texts:
        expected = _outcome(stock, text)
        assert _outcome(fast, text) == expected, text
        assert _outcome(driven, text) == expected, text
        parsed += expected[0] == "ast"
    assert parsed > 20
    assert driven.answered == parsed  # the driver read every query Lark accepts, and no other


def test_generated_and_mutated_queries_read_alike() -> None:
    fast, stock = _parsers()
    texts = [text for text in _generated(600, seed=11) if len(text) < 4000]  # equality of huge ASTs recurses
    assert len(texts) > 500
    driven = _Driven(fast)
    parsed = 0
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 6000))  # comparing two deep ASTs (nested expressions) recurses per level
    try:
        for text in texts:
            expected = _outcome(stock, text)
            assert _outcome(fast, text) == expected, text
            assert _outcome(driven, text) == expected, text
            parsed += expected[0] == "ast"
    finally:
        sys.setrecursionlimit(limit)
    assert driven.answered == parsed > 100


def test_the_first_char_scanner_is_installed() -> None:
    fast, stock = _parsers()
    assert isinstance(fast.parser.lexer.root_lexer.scanner, lexing.FirstCharScanner)
    assert not isinstance(stock.parser.lexer.root_lexer.scanner, lexing.FirstCharScanner)
    assert isinstance(parser._parser().parser.lexer.root_lexer.scanner, lexing.FirstCharScanner)


def test_the_driver_reads_for_cqlx_parse() -> None:
    driver = parser._driver()
    assert driver is not None
    assert parser.parse("a=1 | b := c * 2") == driver.parse("a=1 | b := c * 2")
    with pytest.raises(lalr.Unparsed):
        driver.parse("a=1 | b := ")
    with pytest.raises(CqlError, match="expected"):  # Lark's error, as the user sees it
        parser.parse("a=1 | b := ")

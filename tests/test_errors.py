"""Errors say where and what, in words: line, column, the source line with a caret, the expectation."""

from __future__ import annotations

import re

import pytest

from cqlx import CqlError, convert, ir, parse
from cqlx.errors import CqlSyntaxError, CqlValueError, UnsupportedError

MESSAGES = [
    ("a = ", 1, 5, "expected a value after '='"),
    ("a = | b", 1, 5, "expected a value after '='"),
    ("x := (a + b", 1, 12, "expected a closing ')'"),
    ("select([a, b)", 1, 13, "expected a closing ']'"),
    ("a = 1)", 1, 6, "nothing is open for it to close"),
    ('f = "abc', 1, 5, "unterminated string"),
    ("f = /abc", 1, 5, "unterminated regex"),
    ("case { a=1 | x:=1 ", 1, 19, "expected a closing '}'"),
    ("sort(x, order=)", 1, 15, "expected a value after '='"),
    ("x := ", 1, 6, "an expression after ':='"),
    ("f = /x/s", 1, 5, "unknown regex flag 's'"),
    ("#event_simpleName=ProcessRollup2\n| CommandLine = ", 2, 17, "expected a value after '='"),
    # a ')' that closes what is open but incomplete: what was expected before it, not "a closing ')'"
    ("x=1 | (a=1 or )", 1, 15, "a field or function name, '(' or ... before ')'"),
    ("timestamp >= now() - 10minutes", 1, 18, "compare with a function's result in test(), e.g. test(x >= now()"),
]


@pytest.mark.parametrize(("text", "line", "column", "words"), MESSAGES)
def test_syntax_error_messages(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(CqlSyntaxError) as caught:
        parse(text)
    error = caught.value
    assert (error.span.line, error.span.column) == (line, column)
    assert words in error.message
    rendered = str(error).splitlines()
    assert rendered[0].startswith(f"<query>:{line}:{column}: ")
    assert rendered[1].rstrip().endswith(text.splitlines()[line - 1].rstrip())
    caret = rendered[2]
    assert caret.index("^") == rendered[1].index("| ") + 2 + column - 1


def test_no_raw_token_names_in_messages() -> None:
    for text, *_ in MESSAGES:
        with pytest.raises(CqlError) as caught:
            parse(text)
        for raw in ("RPAR", "RSQB", "COMPARE_OP", "$END", "VALUE", "NAME"):
            assert raw not in caught.value.message


def test_unknown_function_is_kept_and_refused_with_its_name_and_position() -> None:
    text = "#event_simpleName=ProcessRollup2\n| frobnicate(x)"
    (step,) = parse(text).steps
    assert isinstance(step, ir.Opaque) and step.text == "frobnicate(x)" and step.effect == ir.FILTERS
    for target in ("spl", "kql", "sigma", "python"):
        with pytest.raises(UnsupportedError) as caught:
            convert(text, to=target)
        assert "frobnicate(): cqlx does not know this function" in caught.value.message
        assert (caught.value.span.line, caught.value.span.column) == (2, 3)
    assert convert(text, to="cql").splitlines()[-1] == "| frobnicate(x)"


@pytest.mark.parametrize(("text", "reason"), [
    ("$falcon/helper:enrich(field=x) | x = 1", "saved search $falcon/helper:enrich(): the body"),
    ('join({#event_simpleName=DnsRequest}, field=aid, repo=dns) | x = 1', "join(): repo= runs the subquery"),
    ("CommandLine = ?cmd", "query parameter ?cmd has no value (give one with --param cmd=VALUE)"),
    ("ioc:lookup(RemoteIP, type=ip_address, strict=true)", "ioc:lookup() reads CrowdStrike's IOC database"),
])
def test_what_no_target_can_run_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(UnsupportedError, match=re.escape(reason)):
        convert(text, to="kql")


@pytest.mark.parametrize(("text", "words"), [
    ("sort(x, order=sideways)", "accepted: asc, desc"),
    ("sort(x, type=weird)", "accepted: number, string, hex"),
    ("sort(x, limit=0)", "from 1 to 200000"),
    ("sort(x, colour=red)", "no parameter 'colour'"),
    ("x := if(a == 1)", "then"),
    ("f > abc", "expected a number after '>'"),
    ("sort(x, reverse=maybe)", "accepted: true, false"),
    ("sort(x, order=desc, reverse=false)", "disagree"),
    ("in(x, values=[a], ignoreCase=yes)", "accepted: true, false"),
])
def test_wrong_arguments_name_accepted_values(text: str, words: str) -> None:
    with pytest.raises(CqlValueError, match=words):
        parse(text)


@pytest.mark.parametrize(("text", "descending"), [
    ("sort(x, reverse=true)", True), ("sort(x, reverse=false)", False), ("sort(x, reverse=true, order=desc)", True),
])
def test_deprecated_reverse_sets_the_direction(text: str, descending: bool) -> None:
    from cqlx import ir

    (step,) = parse(text).steps
    assert isinstance(step, ir.Order) and step.keys[0].descending is descending

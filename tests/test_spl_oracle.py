"""The SPL oracle on its own: a table of (SPL, events, expected rows) for each construct of the subset
cqlx emits, with the traps Splunk documents (search is case-insensitive but CASE() is not; search
evaluates OR before AND; where drops null; eval erases a field on null; sort puts missing values last
and keeps 10,000 rows unless told; SPL unescapes \\\\ and \\" before PCRE sees the regex)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cqlx.spl_oracle import SplOracleError, compile_spl, pcre_to_python, run_spl

GOLDEN = Path(__file__).resolve().parent / "golden" / "seed.spl"


def E(ident: str, **fields: Any) -> dict[str, Any]:
    return {"id": ident, **fields}


def ids(rows: list[dict[str, object]]) -> list[object]:
    return [row.get("id") for row in rows]


def spl_of(text: str) -> str:
    """A table entry that starts with a command ("| where ...") runs on every event: after `search *`,
    on its own line (a search cannot start with a non-generating command)."""
    return "search *\n" + text if text.startswith("| ") and not text.startswith("| datamodel") else text


CASING = [E("upper", x="ABC"), E("lower", x="abc"), E("other", x="abd"), E("none")]
NUMBERS = [E("n5", n="5"), E("none"), E("n10", n="10"), E("text", n="x"), E("n7", n=7), E("n100", n="100")]

# (test id, SPL, events, ids of the rows returned, in order)
FILTERS: list[tuple[str, str, list[dict[str, Any]], list[str]]] = [
    # search: field=value is case-insensitive (search-manual "Use CASE() and TERM()" / search reference)
    ("search-case-insensitive", "x=abc", CASING, ["upper", "lower"]),
    ("search-CASE", "x=CASE(abc)", CASING, ["lower"]),
    ("search-CASE-quoted", 'x=CASE("ABC")', CASING, ["upper"]),
    ("search-leading-keyword", "search x=abc", CASING, ["upper", "lower"]),
    ("search-star", "search *", CASING, ["upper", "lower", "other", "none"]),
    ("search-whole-value", "x=ab", CASING, []),
    ("search-wildcard-suffix", "x=ab*", CASING, ["upper", "lower", "other"]),
    ("search-wildcard-inner", "x=*B*", [E("a", x="abc"), E("b", x="b"), E("c", x="cd")], ["a", "b"]),
    ("search-wildcard-in-quotes", 'x="a b*"', [E("a", x="A B C"), E("b", x="a-b")], ["a"]),
    ("search-wildcard-in-CASE", "x=CASE(Ab*)", [E("a", x="Abc"), E("b", x="abc")], ["a"]),
    ("search-quoted-escapes", 'x="say \\"hi\\" C:\\\\temp"',
     [E("a", x='say "hi" C:\\temp'), E("b", x='say "hi" C:\\\\temp')], ["a"]),
    ("search-number-value", "n=7", NUMBERS, ["n7"]),
    ("search-sourcetype-is-a-field", 'sourcetype="crowdstrike:events:sensor" x=abc',
     [E("a", sourcetype="crowdstrike:events:sensor", x="abc"), E("b", sourcetype="other", x="abc"), E("c", x="abc")],
     ["a"]),
    ("search-or-group", "(x=a OR x=b) y=c",
     [E("a", x="a", y="c"), E("b", x="B", y="c"), E("c", x="c", y="c"), E("d", x="a", y="d")], ["a", "b"]),
    # search evaluates OR before AND: x=a y=b OR y=c is x=a AND (y=b OR y=c) (search-manual, Boolean
    # expressions: order of evaluation)
    ("search-or-binds-tighter-than-and", "x=a y=b OR y=c",
     [E("a", x="a", y="c"), E("b", x="z", y="c"), E("c", x="a", y="b"), E("d", x="a", y="d")], ["a", "c"]),
    ("search-explicit-and", "x=a AND y=b OR y=c", [E("a", x="a", y="c"), E("b", x="z", y="c")], ["a"]),
    ("search-NOT-keeps-missing", "NOT x=abc", CASING, ["other", "none"]),
    ("search-not-equal-needs-field", "x!=abc", CASING, ["other"]),
    ("search-NOT-group", "NOT (x=abc OR x=abd)", CASING, ["none"]),
    # regex: PCRE, unanchored, case-sensitive unless (?i); events without the field are dropped
    ("regex-unanchored", '| regex x="b"', CASING[1:], ["lower", "other"]),
    ("regex-case-sensitive", '| regex x="B"', CASING, ["upper"]),
    ("regex-(?i)", '| regex x="(?i)^abc$"', CASING, ["upper", "lower"]),
    ("regex-backslash-unescaped", '| regex x="a\\\\.c"', [E("a", x="a.c"), E("b", x="abc")], ["a"]),
    ("regex-single-backslash-kept", '| regex x="a\\.c"', [E("a", x="a.c"), E("b", x="abc")], ["a"]),
    ("regex-literal-backslash-needs-four", '| regex p="\\\\\\\\cmd\\\\.exe$"',
     [E("a", p="C:\\Windows\\cmd.exe"), E("b", p="C:/cmd.exe")], ["a"]),
    ("regex-quote", '| regex x="say \\"hi\\""', [E("a", x='they say "hi"'), E("b", x="say hi")], ["a"]),
    ("regex-not-equal", '| regex x!="^a"', CASING, ["upper", "none"]),
    ("regex-z-anchor", '| regex x="c\\\\z"', [E("a", x="abc"), E("b", x="abc\n")], ["a"]),
    ("regex-Z-anchor", '| regex x="c\\\\Z"', [E("a", x="abc"), E("b", x="abc\n"), E("c", x="abc\n\n")], ["a", "b"]),
    ("regex-mid-pattern-flag", '| regex x="a(?i)b|c"', [E("a", x="aB"), E("b", x="AB"), E("c", x="C")], ["a", "c"]),
    ("regex-on-number", '| regex n="^1"', NUMBERS, ["n10", "n100"]),
    ("regex-pipe-inside-quotes", '| regex x="abc|abd"', CASING, ["lower", "other"]),
    ("regex-quoted-field-name", '| regex "my field"="v"', [E("a", **{"my field": "v"}), E("b", x="v")], ["a"]),
    # where: keeps true only; a missing field makes the test null, and null drops the row
    ("where-equal-case-sensitive", '| where x=="abc"', CASING, ["lower"]),
    ("where-single-equals", '| where x="abc"', CASING, ["lower"]),
    ("where-missing-dropped", '| where x!="abc"', CASING, ["upper", "other"]),
    ("where-NOT-null-is-null", '| where NOT match(x, "^a")', CASING, ["upper"]),
    ("where-isnull-OR-NOT", '| where (isnull(x) OR NOT match(x, "^a"))', CASING, ["upper", "none"]),
    ("where-isnotnull-AND", '| where (isnotnull(x) AND match(x, "b"))', CASING, ["lower", "other"]),
    ("where-false-AND-null", '| where NOT (isnotnull(x) AND match(x, "b"))', CASING, ["upper", "none"]),
    ("where-NOT-isnotnull", "| where NOT isnotnull(x)", CASING, ["none"]),
    ("where-true", "| where true()", CASING[:2], ["upper", "lower"]),
    ("where-lower", '| where lower(x)=="abc"', CASING, ["upper", "lower"]),
    ("where-tonumber", "| where tonumber(n)>6", NUMBERS, ["n10", "n7", "n100"]),
    # numbers (and strings that are numbers) compare as numbers, anything else as strings: "x" > "6"
    ("where-numeric-strings-compare-as-numbers", '| where n>"6"', NUMBERS, ["n10", "text", "n7", "n100"]),
    ("where-strings-compare-by-code-point", '| where x<"abd"', CASING, ["upper", "lower"]),
    ("where-field-to-field", "| where a>b",
     [E("a", a="10", b="9"), E("b", a="b", b="a"), E("c", a="1", b="2"), E("d", a="1")], ["a", "b"]),
    ("where-in", '| where in(x, "abc", "ABC")', CASING, ["upper", "lower"]),
    ("where-like", '| where like(x, "a_c%")', [E("a", x="abc"), E("b", x="abcdef"), E("c", x="ac"),
                                               E("d", x="Abc")], ["a", "b"]),
    ("where-match-glob", '| where match(x, "(?s)^a.*c\\\\z")', [E("a", x="a\nc"), E("b", x="ac\n")], ["a"]),
    ("where-quoted-field", "| where 'a.b'==\"v\" AND 'my field'==\"w\"",
     [E("a", **{"a.b": "v", "my field": "w"}), E("b", **{"a.b": "v"})], ["a"]),
    ("where-and-before-or", '| where x=="abc" OR x=="ABC" AND isnull(x)', CASING, ["lower"]),
    ("where-time-number", "| where _time>1000", [E("a", _time=1718893200.702), E("b", _time=5)], ["a"]),
    # head and sort
    ("head", "| head 2", NUMBERS, ["n5", "none"]),
    ("head-default-10", "| head", [E(str(i)) for i in range(12)], [str(i) for i in range(10)]),
    ("sort-num-desc-limit", "| sort 2 -num(n)", NUMBERS, ["n100", "n10"]),
    ("sort-num-missing-last", "| sort -num(n)", NUMBERS, ["n100", "n10", "n7", "n5", "none", "text"]),
    ("sort-num-ascending-missing-last", "| sort +num(n)", NUMBERS, ["n5", "n7", "n10", "n100", "none", "text"]),
    ("sort-str", "| sort str(n)", NUMBERS, ["n10", "n100", "n5", "n7", "text", "none"]),
    ("sort-str-uppercase-first", "| sort -str(x)", CASING, ["other", "lower", "upper", "none"]),
    ("sort-auto", "| sort - n", NUMBERS, ["text", "n100", "n10", "n7", "n5", "none"]),
    ("sort-two-keys", "| sort 0 +str(k), -num(n)",
     [E("a", k="b", n="1"), E("b", k="a", n="1"), E("c", k="b", n="2"), E("d", n="9")], ["b", "c", "a", "d"]),
    ("sort-stable", "| sort -num(k)", [E("a", k="1"), E("b", k="2"), E("c", k="1"), E("d", k="2")],
     ["b", "d", "a", "c"]),
    ("sort-desc-keyword", "| sort num(n) desc", NUMBERS, ["n100", "n10", "n7", "n5", "none", "text"]),
    ("sort-default-10000", "| sort -num(n) | head 1", [E(str(i), n=str(i)) for i in range(10001)], ["10000"]),
    ("sort-keeps-10000", "| sort -num(n) | where n==\"0\"", [E(str(i), n=str(i)) for i in range(10001)], []),
    ("sort-0-keeps-all", "| sort 0 -num(n) | where n==\"0\"", [E(str(i), n=str(i)) for i in range(10001)], ["0"]),
    # | datamodel M D search: the oracle takes the events given as the dataset's
    ("datamodel", '| datamodel Endpoint Processes search\n| search Processes.x="ab*"',
     [E("a", **{"Processes.x": "abc"}), E("b", x="abc")], ["a"]),
]


@pytest.mark.parametrize(("spl", "events", "expected"), [c[1:] for c in FILTERS], ids=[c[0] for c in FILTERS])
def test_filters(spl: str, events: list[dict[str, Any]], expected: list[str]) -> None:
    assert ids(run_spl(spl_of(spl), events)) == expected


# (test id, SPL, events, the rows returned)
ROWS: list[tuple[str, str, list[dict[str, Any]], list[dict[str, object]]]] = [
    ("eval-lower", "| eval y=lower(x)", [{"x": "AbC"}], [{"x": "AbC", "y": "abc"}]),
    # eval: an expression that cannot be evaluated (null) erases the field, also one that was there
    ("eval-null-erases", "| eval y=lower(x)", [{"y": "old"}, {}], [{}, {}]),
    ("eval-overwrites", '| eval x="new"', [{"x": "old"}], [{"x": "new"}]),
    ("eval-left-to-right", "| eval a=1, b=a+1, c=b*2", [{}], [{"a": 1, "b": 2, "c": 4}]),
    ("eval-numeric-strings-add", "| eval s=a+b", [{"a": "2", "b": "3"}], [{"a": "2", "b": "3", "s": 5}]),
    ("eval-plus-concatenates-strings", "| eval s=a+b", [{"a": "x", "b": "y"}], [{"a": "x", "b": "y", "s": "xy"}]),
    ("eval-dot-concatenates", '| eval s=a."-".b', [{"a": "1", "b": 2}], [{"a": "1", "b": 2, "s": "1-2"}]),
    ("eval-bare-dotted-name-is-concatenation", "| eval s=a.b", [{"a": "1", "b": "2", "a.b": "no"}],
     [{"a": "1", "b": "2", "a.b": "no", "s": "12"}]),
    ("eval-minus-needs-numbers", '| eval s=a-1, t=a*2', [{"a": "x"}], [{"a": "x"}]),
    ("eval-null-propagates", "| eval s=a+1", [{}], [{}]),
    ("eval-division", "| eval q=a/b, r=a/0, m=a%b", [{"a": "7", "b": "2"}],
     [{"a": "7", "b": "2", "q": 3.5, "m": 1}]),
    ("eval-unary-minus", "| eval s=-a+10", [{"a": "3"}], [{"a": "3", "s": 7}]),
    ("eval-if", '| eval f=if(match(x, "b"), "YES", "NO")', [{"x": "abc"}, {"x": "a"}, {}],
     [{"x": "abc", "f": "YES"}, {"x": "a", "f": "NO"}, {"f": "NO"}]),
    ("eval-if-numbers", '| eval s=if(f=="YES", 3, 0)', [{"f": "YES"}, {"f": "NO"}],
     [{"f": "YES", "s": 3}, {"f": "NO", "s": 0}]),
    ("eval-case-default", '| eval v=case(n>=6, "CRITICAL", n>=3, "HIGH", true(), "MEDIUM")',
     [{"n": 7}, {"n": "3"}, {"n": 0}], [{"n": 7, "v": "CRITICAL"}, {"n": "3", "v": "HIGH"}, {"n": 0, "v": "MEDIUM"}]),
    ("eval-case-no-true-branch", '| eval v=case(n>=6, "CRITICAL")', [{"n": 1}], [{"n": 1}]),
    ("eval-case-null-condition", '| eval v=case(n>=6, "C", true(), "M")', [{}], [{"v": "M"}]),
    ("eval-coalesce", "| eval v=coalesce(a, b)", [{"b": "2"}, {"a": "1", "b": "2"}],
     [{"b": "2", "v": "2"}, {"a": "1", "b": "2", "v": "1"}]),
    ("eval-tonumber", '| eval a=tonumber(x), b=tonumber("ff", 16)', [{"x": "1.50"}, {"x": "x1"}],
     [{"x": "1.50", "a": 1.5, "b": 255}, {"x": "x1", "b": 255}]),
    ("eval-upper-of-number", "| eval u=upper(n)", [{"n": 1.5}], [{"n": 1.5, "u": "1.5"}]),
    ("eval-string-escapes", '| eval s="a\\\\b\\"c\\td\\.e"', [{}], [{"s": 'a\\b"c\td\\.e'}]),
    ("eval-quoted-target", "| eval 'my field'=1", [{}], [{"my field": 1}]),
    ("table-order-and-missing", "| table b a zz", [{"a": 1, "b": 2, "c": 3}, {"c": 3}], [{"b": 2, "a": 1}, {}]),
    ("table-quoted-and-wildcard", '| table "my field" x*', [{"xa": 1, "my field": 2, "y": 3, "xb": 4}],
     [{"my field": 2, "xa": 1, "xb": 4}]),
    ("table-commas", "| table b, a", [{"a": 1, "b": 2}], [{"b": 2, "a": 1}]),
    ("table-then-sort", "| table h s | sort 2 -num(s)", [{"h": "a", "s": 1, "z": 0}, {"h": "b", "s": "3"}, {"h": "c"}],
     [{"h": "b", "s": "3"}, {"h": "a", "s": 1}]),
    ("event-values", "search *", [{"a": None, "b": True, "t": 1.0}], [{"b": "true", "t": 1.0}]),
    # dedup [<int>]: the first N results of each combination; results without a field are removed
    ("dedup-first", "| dedup a", [{"a": 1, "n": 1}, {"a": 1, "n": 2}, {"n": 3}], [{"a": 1, "n": 1}]),
    ("dedup-count", "| dedup 2 a b", [{"a": 1, "b": 1, "n": 1}, {"a": 1, "b": 1, "n": 2}, {"a": 1, "b": 1, "n": 3},
                                     {"a": 1, "b": 2, "n": 4}],
     [{"a": 1, "b": 1, "n": 1}, {"a": 1, "b": 1, "n": 2}, {"a": 1, "b": 2, "n": 4}]),
]


@pytest.mark.parametrize(("spl", "events", "expected"), [c[1:] for c in ROWS], ids=[c[0] for c in ROWS])
def test_rows(spl: str, events: list[dict[str, Any]], expected: list[dict[str, object]]) -> None:
    assert run_spl(spl_of(spl), events) == expected


def test_rows_keep_table_order() -> None:
    (row,) = run_spl("search * | table c a b", [{"a": 1, "b": 2, "c": 3}])
    assert list(row) == ["c", "a", "b"]


def test_input_events_are_not_changed() -> None:
    events = [{"x": "a"}]
    run_spl("search * | eval x=upper(x), y=1", events)
    assert events == [{"x": "a"}]


# (test id, SPL, an event to run it on or None for a parse error, where the error points, what it says)
ERRORS: list[tuple[str, str, dict[str, Any] | None, tuple[int, int], str]] = [
    ("unsupported-command", "x=a\n| timechart count", None, (2, 3), "command 'timechart' is outside"),
    ("stats-without-as", "x=a\n| stats count", None, (2, 8), "stats takes count, count(X)"),
    ("unsupported-function", '| where sha256(x)>1', None, (2, 9), "sha256() is outside"),
    ("free-text-term", "error x=a", None, (1, 1), "free-text term"),
    ("quoted-phrase", '"web error"', None, (1, 1), "free-text"),
    ("search-comparison", "x>5", None, (1, 2), "comparison > is outside"),
    ("TERM", "x=TERM(a)", None, (1, 3), "TERM() is outside"),
    ("XOR", "| where a==1 XOR b==2", None, (2, 14), "XOR is outside"),
    ("LIKE-operator", '| where x LIKE "a%"', None, (2, 11), "LIKE operator"),
    ("unterminated-string", '| where x=="abc', None, (2, 12), "unterminated"),
    ("regex-unquoted", "| regex x=abc", None, (2, 11), "double quotes"),
    ("regex-pcre-only", '| regex x="\\\\p{L}"', None, (2, 11), "\\p{..}"),
    ("regex-does-not-compile", '| regex x="a("', None, (2, 11), "not closed"),
    ("eval-boolean-result", '| eval b=match(x, "a")', {"x": "a"}, (2, 10), "cannot be a Boolean"),
    ("where-not-boolean", "| where x", {"x": "a"}, (2, 9), "needs a Boolean"),
    ("if-not-boolean", '| eval y=if(x, 1, 0)', {"x": "a"}, (2, 13), "needs a Boolean"),
    ("AND-type-check", '| where x=="a" AND y', {"x": "a", "y": "b"}, (2, 9), "needs a Boolean"),
    ("compare-boolean", '| where match(x, "a")=="a"', {"x": "a"}, (2, 9), "not a Boolean"),
    ("bare-true", "| where true", None, (2, 9), "write true()"),
    ("digit-field", "| where 5min>1", None, (2, 9), "single quotes"),
    ("case-odd-arguments", '| eval v=case(x=="a", 1, 2)', None, (2, 26), "pairs"),
    ("if-arity", "| eval v=if(x, 1)", None, (2, 10), "takes 3 arguments"),
    ("sort-ip", "| sort ip(x)", None, (2, 8), "ip() is outside"),
    ("head-expression", "| head (x>1)", None, (2, 7), "count only"),
    ("leading-pipe", "\n| stats count", None, (2, 2), "generating command"),
    ("empty", "", None, (1, 1), "empty"),
    ("dedup-zero", "| dedup 0 a", None, (2, 9), "at least 1"),
    ("dangling-OR", "x=a OR", None, (1, 7), "term was expected"),
    ("unbalanced", "(x=a", None, (1, 5), "expected ')'"),
    ("multivalue-event", "search *", {"x": ["a", "b"]}, (0, 0), "single-valued"),
]


@pytest.mark.parametrize(("spl", "event", "where", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_outside_the_subset_raises(spl: str, event: dict[str, Any] | None, where: tuple[int, int],
                                   message: str) -> None:
    with pytest.raises(SplOracleError, match=re.escape(message)) as caught:
        if event is None:
            compile_spl(spl_of(spl))
        else:
            run_spl(spl_of(spl), [event])
    assert (caught.value.span.line, caught.value.span.column) == where


def test_error_shows_the_line_and_a_caret() -> None:
    with pytest.raises(SplOracleError) as caught:
        compile_spl('sourcetype=x\n| regex CommandLine="a"\n| transaction host')
    text = str(caught.value)
    assert text.startswith("<query>:3:3: the command 'transaction' is outside the oracle's subset")
    assert text.splitlines()[-1].endswith("^" * len("transaction"))


def test_parse_errors_need_no_events() -> None:
    program = compile_spl('search * | where x=="a"')
    assert program.run([]) == []
    with pytest.raises(SplOracleError):
        compile_spl("search * | rex field=x mode=sed \"s/a/b/\"")


def test_the_golden_seed_spl_is_in_the_subset() -> None:
    compile_spl(GOLDEN.read_text(encoding="utf-8"))


# PCRE → Python re: only the constructs spelled differently are rewritten.
PCRE = [
    ("a\\.b", "a\\.b"),
    ("(?i)abc", "(?i:abc)"),
    ("(?i)a|b", "(?i:a)|(?i:b)"),
    ("x(a(?i)b|c)d", "x(a(?i:b)|(?i:c))d"),  # PCRE: the option carries into later alternatives
    ("(?im)a", "(?im:a)"),
    ("(?i:a)b", "(?i:a)b"),
    ("(?-i)a", "(?-i:a)"),
    ("a\\z", "a\\Z"),
    ("a\\Z", "a(?=\\n?\\Z)"),
    ("(?<name>a)\\k<name>", "(?P<name>a)(?P=name)"),
    ("(?'n'a)\\k{n}", "(?P<n>a)(?P=n)"),
    ("(?<=a)b(?<!c)", "(?<=a)b(?<!c)"),
    ("\\x{41}", "\\U00000041"),
    ("\\Qa.b\\E.", "a\\.b."),
    ("[]a\\]]", "[\\]a\\]]"),
    ("a(?#note)b", "ab"),
    ("a++(?>b)", "a++(?>b)"),
]


@pytest.mark.parametrize(("pcre", "python"), PCRE)
def test_pcre_to_python(pcre: str, python: str) -> None:
    assert pcre_to_python(pcre) == python


@pytest.mark.parametrize("pcre", ["\\h", "[\\v]", "\\R", "(?|a)", "(?R)", "(?U)a", "[[:alpha:]]", "(a", "a)", "\\"])
def test_pcre_outside_the_subset(pcre: str) -> None:
    with pytest.raises(ValueError):
        pcre_to_python(pcre)

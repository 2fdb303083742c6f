"""CQL → CQL: a table of queries and the canonical LogScale cqlx writes for them, the seed's golden
output, and the round trip over every query the tests hold: parse → IR → CQL → parse gives the same IR."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

import cqlx
from cqlx import ir
from cqlx.conversion import EXTENSIONS, TARGETS, convert_query
from cqlx.emit.base import PRESENTATION
from cqlx.emit.cql import CqlGenerator, expr_number, identity_profile, regex, same_ir, string, value
from cqlx.errors import CqlError
from tests.conftest import SAMPLES, SEED_CARD
from tests.golden import check_golden

P = "#event_simpleName=ProcessRollup2 | "

# CQL as written → the canonical LogScale cqlx writes for it.
TABLE = [
    # values: bare when they read back unchanged, quoted otherwise; `*` is a wildcard even quoted
    (P + "CommandLine = whoami", "#event_simpleName=ProcessRollup2\n| CommandLine=whoami\n"),
    ('CommandLine = "say \\"hi\\""', 'CommandLine="say \\"hi\\""\n'),
    ("CommandLine = *whoami*", "CommandLine=*whoami*\n"),
    ('CommandLine = "*"', 'CommandLine="*"\n'),  # the glob *, not "the field exists"
    ("CommandLine = *", "CommandLine=*\n"),
    ("CommandLine != *", "CommandLine!=*\n"),
    ('test(CommandLine == "a*b")', 'test(CommandLine == "a*b")\n'),  # exactly a*b: no glob syntax says it
    ("url = https://x.example/path", 'url="https://x.example/path"\n'),  # no // outside a string
    ("f = C:\\Windows\\*", "f=C:\\Windows\\*\n"),
    ('f = "~x"', 'f="~x"\n'),  # f=~x would be f =~ x
    # field names: quoted when not a plain name or a keyword
    ('"host name" = "web 01"', '"host name"="web 01"\n'),
    ('"and" = x', '"and"=x\n'),
    # regexes: LogScale's \/ escape comes back, flags in order
    ("CommandLine != /who/i", "CommandLine!=/who/i\n"),
    ("ImageFileName = /\\/usr\\/bin\\//", "ImageFileName=/\\/usr\\/bin\\//\n"),
    ("/free regex/i", "/free regex/i\n"),
    ("whoami", '"whoami"\n'),
    # comparisons: = is text, == on a number is an expression
    ("RawProcessId > 100", "RawProcessId > 100\n"),
    ("x < 1.5e3", "x < 1500.0\n"),
    ("test(RawProcessId == 5)", "test(RawProcessId == 5)\n"),
    ('in(UserName, values=["root", "admin"], ignoreCase=true)',
     'in(UserName, values=["root", "admin"], ignoreCase=true)\n'),
    ("not in(UserName, values=[root])", 'not in(UserName, values=["root"])\n'),
    # precedence: NOT > OR > AND, so an or under an and is spelled out, and an and under an or must be
    ("a=1 b=2 or c=3", "a=1 and (b=2 or c=3)\n"),
    ("(a=1 b=2) or c=3", "(a=1 and b=2) or c=3\n"),
    ("not (a=1 or b=2)", "not (a=1 or b=2)\n"),
    ("!a=1", "a!=1\n"),
    ("not not a=1", "a=1\n"),
    ("not *", "not *\n"),
    # the seed dialect's if() becomes LogScale's case; an expression condition stays if()
    ('x := if(CommandLine = /x/i, "YES", "NO")', 'case { CommandLine=/x/i | x := "YES" ; * | x := "NO" }\n'),
    ('x := if(test(RawProcessId > 1), then="a", else="b")', 'x := if(RawProcessId > 1, then="a", else="b")\n'),
    ('x := if(RawProcessId > 1, "a", if(RawProcessId > 0, "b", "c"))',
     'case { RawProcessId > 1 | x := "a" ; RawProcessId > 0 | x := "b" ; * | x := "c" }\n'),
    ('case { a=1 | x := 1 ; * | x := 0 }', 'x := if(a == "1", then=1, else=0)\n'),
    ('case { a=1 | x := 1 ; b=2 | x := 2 }', "case { a=1 | x := 1 ; b=2 | x := 2 }\n"),  # drops the rest
    # expressions: parentheses only where precedence needs them; a call before * is grouped
    ("x := -a * (b - c) / 2", "x := -a * (b - c) / 2\n"),
    ("x := ((a - b) - c) + (d - e)", "x := a - b - c + (d - e)\n"),
    ("x := (lower(a)) * 2", "x := (lower(a)) * 2\n"),
    ('upper("host name", as=y)', 'y := upper("host name")\n'),
    # a signal writes its flag and score in one case; a one-tier ladder is an if()
    ('F := if(CommandLine = /a/, "YES", "NO") | S := if(CommandLine = /a/, 3, 0) | T := S '
     '| L := if(T >= 3, "HIGH", "LOW")',
     'case { CommandLine=/a/ | F := "YES" | S := 3 ; * | F := "NO" | S := 0 }\n| T := S\n'
     '| L := if(T >= 3, then="HIGH", else="LOW")\n'),
    # projection and order: table() is sort() then select(); defaults are left out
    ("table([a, b], limit=10)", "table([a, b], limit=10)\n"),
    ("table(a, sortby=x, order=asc, type=string)", "table([a], sortby=x, order=asc, type=string)\n"),
    ("sort(@timestamp, limit=10) | select([a, b])", "sort(@timestamp, limit=10)\n| select([a, b])\n"),
    ("sort([a, b], order=[asc, desc], type=string, limit=max)",
     "sort([a, b], order=[asc, desc], type=string, limit=200000)\n"),
    ("sort(x, order=desc, type=number, limit=200)", "sort(x)\n"),
    ("select(a)", "select([a])\n"),
    # the source first, as tag filters
    ("event_platform=Lin | event_simpleName=A or event_simpleName=B",
     'in(#event_simpleName, values=["A", "B"])\n| event_platform=Lin\n'),
    ("", "*\n"),
    # match(): defaults left out, the negation as !match()
    ('match(hosts.csv, field=aid, column=aid, strict=true, mode=string, include=[owner])',
     'match(file="hosts.csv", field=aid, include=[owner])\n'),
    ('not aid =~ match(file="allow.csv", column=id)', '!match(file="allow.csv", field=aid, column=id)\n'),
    # duration(): its milliseconds; a field against it is the same test as against the number
    ('test(d <= duration("15m"))', "d <= 900000\n"),
    ("test(duration(1h) > d)", "d < 3600000\n"),
]


@pytest.mark.parametrize(("query", "expected"), TABLE, ids=[q[:40] or "empty" for q, _ in TABLE])
def test_canonical_cql(query: str, expected: str) -> None:
    conversion = convert_query(cqlx.parse(query), "cql")
    assert conversion.output == expected
    assert conversion.diagnostics == ()
    assert same_ir(cqlx.parse(conversion.output), cqlx.parse(query))


def test_seed_golden(seed_text: str) -> None:
    conversion = convert_query(cqlx.parse(seed_text), "cql")
    assert conversion.diagnostics == ()  # CQL → CQL loses nothing
    check_golden("seed.cql", conversion.output)
    assert "if(" not in conversion.output  # the seed dialect's if() is gone
    assert not cqlx.parse(conversion.output).notes  # nothing for `cqlx check` to point at


def test_the_seed_reads_back_as_the_same_scored_detection(seed_text: str) -> None:
    again = cqlx.parse(cqlx.convert(seed_text, to="cql"))
    kinds = [type(step).__name__ for step in again.steps]
    assert kinds.count("Signal") == 5 and "Score" in kinds and "Ladder" in kinds
    assert same_ir(again, cqlx.parse(seed_text))


def test_an_if_inside_an_expression_says_it_is_the_seed_dialect() -> None:
    """A filter condition nested in arithmetic has no LogScale form; cqlx keeps it exact and says so."""
    conversion = convert_query(cqlx.parse("x := 1 + if(CommandLine = /x/, 1, 0)"), "cql")
    assert conversion.output == "x := 1 + if(CommandLine=/x/, then=1, else=0)\n"
    assert [d.kind for d in conversion.diagnostics] == [PRESENTATION]
    assert "detection-library dialect" in conversion.diagnostics[0].message


def test_ir_nodes_no_lowering_writes_are_written_with_presentation_loss() -> None:
    """Case-insensitive equality and globs exist in the IR but not in CQL syntax: an equivalent form."""
    query = ir.Query(ir.Source(), (ir.Filter(ir.Eq("f", "a", True)), ir.Filter(ir.Glob("g", "a*", True)),
                                   ir.Filter(ir.Eq("h", "a*", True))))
    generator = CqlGenerator(query, identity_profile())
    assert generator.generate() == ('in(f, values=["a"], ignoreCase=true)\n| in(g, values=["a*"], ignoreCase=true)\n'
                                    "| h=/^a\\*$/i\n")
    assert {d.kind for d in generator.diagnostics} == {PRESENTATION}


def test_an_unverifiable_output_is_refused() -> None:
    """The emitter parses its output back; a difference it cannot explain is detection loss."""
    query = ir.Query(ir.Source(), (ir.Case((ir.CaseBranch(()),)),))  # an empty branch: no syntax has it
    generator = CqlGenerator(query, identity_profile())
    generator.generate()
    assert [d.kind for d in generator.diagnostics] == ["detection"]


@pytest.mark.parametrize(("pattern", "written"), [
    ("a/b", "/a\\/b/"), ("a\\/b", "/a\\/b/"), ("\\\\/", "/\\\\\\//"), ("a\\\\", "/a\\\\/"), ("\\d+", "/\\d+/"),
])
def test_regex_slashes_are_escaped_again(pattern: str, written: str) -> None:
    assert regex(pattern, "") == written


@pytest.mark.parametrize(("text", "written"), [
    ("abc", "abc"), ("", '""'), ("a b", '"a b"'), ("or", '"or"'), ("a\\b", "a\\b"), ('a"b', '"a\\"b"'),
    ("line\nbreak", '"line\\nbreak"'), ("tab\t", '"tab\t"'), ("/x", '"/x"'), ("a//b", '"a//b"'), ("~a", '"~a"'),
])
def test_values(text: str, written: str) -> None:
    assert value(text) == written


def test_strings_escape_only_what_logscale_unescapes() -> None:
    from cqlx.parser import unescape_string

    for text in ('\\', '"', "\n", "\\n", "\r\x00\u2028", 'a\\"b'):
        assert unescape_string(string(text)) == text


@pytest.mark.parametrize(("number", "written"), [
    (5, "5"), (1.5, "1.5"), (1e-7, "0.0000001"), (1e20, "100000000000000000000.0"), (-1, None), (3.0, "3.0"),
])
def test_numbers_in_expressions(number: int | float, written: str | None) -> None:
    assert expr_number(number) == written


# ---------------------------------------------------------------- the API and the command line


def test_registered_as_a_target() -> None:
    assert "cql" in TARGETS and EXTENSIONS["cql"] == ".cql"
    assert cqlx.convert("CommandLine=/x/i", to="cql") == "CommandLine=/x/i\n"


def test_a_profile_does_not_apply() -> None:
    with pytest.raises(CqlError, match="no profile"):
        cqlx.convert("a=1", to="cql", profile="mde")


def test_cli_convert_to_cql() -> None:
    result = subprocess.run([sys.executable, "-m", "cqlx", "convert", str(SEED_CARD), "--to", "cql"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#event_simpleName=ProcessRollup2\n| ImageFileName=")
    assert result.stderr == ""


# ---------------------------------------------------------------- the round trip over every query in the tests

# Module-level tables of the other test modules: every string in them that parses is a query.
_TABLE_MODULES = ("test_agreement", "test_emit_kql", "test_emit_python", "test_emit_sigma", "test_emit_spl",
                  "test_grammar", "test_passes", "test_prefilter", "test_profile_data", "test_spl_agreement",
                  "test_spl_oracle", "test_testing", "test_fuzz", "test_aggs", "test_state_lookup",
                  "test_state_platform", "test_state_join", "test_state_options", "test_funcs",
                  "test_funcs_agreement", "test_filters")


def _strings(item: object) -> Iterator[str]:
    if isinstance(item, str):
        yield item
    elif isinstance(item, list | tuple | set | frozenset):
        for element in item:
            yield from _strings(element)
    elif isinstance(item, dict):
        for key, element in item.items():
            yield from _strings(key)
            yield from _strings(element)
    elif hasattr(item, "__dataclass_fields__"):  # test_fuzz's Case entries
        for name in item.__dataclass_fields__:
            yield from _strings(getattr(item, name))


def corpus() -> list[str]:
    """Every query of the sample rules, of the other test modules' tables, of the fuzz file's pinned
    cases and of its hostile literals in every template position, each also behind an event-type
    filter (as the tables use them)."""
    from cqlx.rules import find_rules, load_rule

    texts = [load_rule(path).text for path in find_rules([str(SAMPLES)])]
    for name in _TABLE_MODULES:
        module = importlib.import_module(f"tests.{name}")
        for attribute in dir(module):
            if attribute.isupper():
                texts.extend(_strings(getattr(module, attribute)))
    fuzz = importlib.import_module("tests.test_fuzz")
    texts.extend(fuzz.hostile_queries())
    texts.extend([P + text for text in texts])
    return list(dict.fromkeys(texts))


def round_trip_failure(text: str) -> str | None:
    """Why ``text`` does not survive CQL → CQL (None when it does, or does not parse at all)."""
    try:
        query = cqlx.parse(text)
    except CqlError:
        return None
    try:
        written = convert_query(query, "cql", query_text=text).output
    except CqlError as error:
        return f"{text!r}: no CQL ({error})"
    try:
        again = cqlx.parse(written)
    except CqlError as error:
        return f"{text!r}\n  -> {written!r}\n  does not parse: {error}"
    if not same_ir(again, query):
        return f"{text!r}\n  -> {written!r}\n  reads back as another IR"
    return None


def test_round_trip_over_the_corpus() -> None:
    texts = corpus()
    parsed = 0
    failures = []
    for text in texts:
        try:
            cqlx.parse(text)
        except CqlError:
            continue
        parsed += 1
        failure = round_trip_failure(text)
        if failure:
            failures.append(failure)
    assert parsed >= 3000, f"only {parsed} queries parse: the corpus is not what it was"
    assert not failures, "\n\n".join(failures[:20])

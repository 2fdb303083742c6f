"""``regex(repeat=true)``: a row of each match (functions-regex: "If set to true, multiple matches
yields multiple events"; ``limit=``, 100 by default, "the maximum number of events to produce").

Tables: CQL → IR, what stays refused, each target's text; then rows on events with several
matches, the limit, ``strict=false`` and a group that overwrites a field, on the Python matcher,
duckdb-kql and the SPL oracle; what each target refuses, and why."""

from __future__ import annotations

import pytest

import cqlx
from cqlx import convert, ir, testing
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION, PRESENTATION, RuleMeta
from cqlx.rules import Rule
from cqlx.spl_oracle import run_spl
from cqlx.testing import Case, Report, Verdict, _compare, check_kql, reference
from cqlx.witness import generate
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 | "
VARS = 'regex("(?<var>\\$[a-z])\\W", field=CommandLine, repeat=true'


def _extract(cql: str) -> ir.Extract:
    steps = [s for s in cqlx.parse(P + cql).steps if isinstance(s, ir.Extract)]
    assert len(steps) == 1
    return steps[0]


@pytest.mark.parametrize(("cql", "each", "strict"), [
    (VARS + ")", 100, True),  # limit= defaults to 100
    (VARS + ", limit=3)", 3, True),
    (VARS + ", limit=3, strict=false)", 3, False),
    ('regex("(?<var>\\$[a-z])\\W", field=CommandLine, repeat=false)', 0, True),  # the first match only
])
def test_repeat_lowers_to_an_extraction_of_each_match(cql: str, each: int, strict: bool) -> None:
    step = _extract(cql)
    assert (step.each, step.strict, step.groups) == (each, strict, ("var",))


@pytest.mark.parametrize(("cql", "reason"), [
    ('regex("\\$[a-z]", field=CommandLine, repeat=true)', "without a named group"),
    (VARS + ", limit=max)", "limit=max"),
    ("CommandLine = /(?<var>\\$[a-z])/g", "repeated extraction"),  # /re/g: the limit is not documented
    ("not " + VARS + ")", "inside a test"),
])
def test_what_stays_refused(cql: str, reason: str) -> None:
    query = cqlx.parse(P + cql)
    for target in ("kql", "spl", "sigma", "python"):
        conversion = convert_query(query, target, query_text=P + cql)
        assert any(d.kind == DETECTION and reason in d.message for d in conversion.diagnostics), target


def test_cql_writes_repeat_and_its_limit_back() -> None:
    for cql in (VARS + ")", VARS + ", limit=7, strict=false)"):
        text = convert(P + cql, to="cql")
        assert "repeat=true, limit=" in text
        assert cqlx.parse(text) == cqlx.parse(P + cql)


# ---------------------------------------------------------------- each target's text

RULE = P + VARS + ", limit=5) | select([ComputerName, var])"


def test_kql_expands_extract_all_with_the_limit() -> None:
    kql = convert(RULE, to="kql")
    assert 'extract_all(@"(?m)(?P<var>\\$[a-z])\\W", dynamic([1]), ProcessCommandLine)' in kql
    assert "mv-expand _cqlx_each1 to typeof(dynamic) limit 5" in kql
    assert "extend var = tostring(_cqlx_each1)" in kql


def test_spl_rex_max_match_then_mvexpand() -> None:
    spl = convert(RULE, to="spl")
    assert 'rex field=CommandLine "(?m)(?<var>\\\\$[a-z])\\\\W" max_match=5\n| mvexpand var limit=5' in spl


# ---------------------------------------------------------------- rows on every engine

EVENTS = [
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "h1", "CommandLine": "powershell $a; $b $c;"},
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "h2", "CommandLine": "powershell nothing"},
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "h3", "CommandLine": "$x $x $y $z $w $v-"},
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "h4"},
]


def test_rows_one_per_match_up_to_the_limit() -> None:
    rows = assert_agree(P + VARS + ", limit=5) | select([ComputerName, var])", EVENTS)
    assert sorted(rows) == sorted([(("ComputerName", h), ("var", v)) for h, v in [
        ("h1", "$a"), ("h1", "$b"), ("h1", "$c"),
        ("h3", "$x"), ("h3", "$x"), ("h3", "$y"), ("h3", "$z"), ("h3", "$w")]])  # $v: past the limit


def test_rows_counted_after_repeat_are_matches() -> None:
    rule = P + VARS + ") | groupBy([ComputerName], function=[count(as=n), count(var, distinct=true, as=d)])"
    rows = assert_agree(rule, EVENTS)
    assert sorted(rows) == [(("ComputerName", "h1"), ("n", "3"), ("d", "3")),
                            (("ComputerName", "h3"), ("n", "6"), ("d", "5"))]


def test_lax_repeat_keeps_the_events_it_does_not_match() -> None:
    rule = P + 'regex("(?<d>\\$)(?<var>[a-z])\\W", field=CommandLine, repeat=true, limit=2, strict=false)' \
        " | select([ComputerName, d, var])"
    rows = assert_agree(rule, EVENTS)  # SPL: a position per match, one where rex matched nothing
    assert (("ComputerName", "h2"), ("d", None), ("var", None)) in rows
    assert [r for r in rows if r[0] == ("ComputerName", "h1")] == [
        (("ComputerName", "h1"), ("d", "$"), ("var", "a")), (("ComputerName", "h1"), ("d", "$"), ("var", "b"))]


def test_several_groups_pair_up_match_by_match() -> None:
    """SPL: rex gives each group its own list; a result of each position takes each list's value
    there (mvrange, mvexpand, mvindex)."""
    rule = P + 'regex("(?<key>[a-z]+)=(?<value>[0-9]+)", field=CommandLine, repeat=true, limit=3)' \
        " | select([ComputerName, key, value])"
    spl = convert(rule, to="spl")
    assert "| eval _cqlx_each1=mvrange(0, coalesce(mvcount(key), 1))\n| mvexpand _cqlx_each1 limit=3\n" in spl
    check_kql(convert(rule, to="kql"))  # Kusto.Language: extract_all() of two groups, indexed
    events = [{"#event_simpleName": "ProcessRollup2", "ComputerName": "h6", "CommandLine": "run a=1 bb=22 c=3 d=4"}]
    rows = assert_agree(rule, events)
    assert sorted(rows) == [(("ComputerName", "h6"), ("key", k), ("value", v)) for k, v in
                            [("a", "1"), ("bb", "22"), ("c", "3")]]


def test_a_group_that_takes_no_part_keeps_the_field_it_overwrites() -> None:
    rule = P + 'regex("(?<FileName>u=\\w+)?(?<var>\\$[a-z]);", field=CommandLine, repeat=true)' \
        " | select([ComputerName, FileName, var])"
    events = [{"#event_simpleName": "ProcessRollup2", "ComputerName": "h5", "CommandLine": "u=bob$a; $b;",
               "FileName": "before.exe"}]
    rows = assert_agree(rule, events, engines=("kql",))
    assert sorted(rows) == [(("ComputerName", "h5"), ("FileName", "before.exe"), ("var", "$b")),
                            (("ComputerName", "h5"), ("FileName", "u=bob"), ("var", "$a"))]


# ---------------------------------------------------------------- what a target refuses

@pytest.mark.parametrize(("cql", "target", "reason"), [
    ('regex("(?<d>\\$)?(?<var>[a-z])", field=CommandLine, repeat=true)', "spl", "group d may capture nothing"),
    ('regex("(?<var>[a-z]*)\\$", field=CommandLine, repeat=true)', "spl", "may capture nothing"),
    ('regex("(?<var>\\$?[a-z]*)", field=CommandLine, repeat=true)', "kql", "match the empty string"),
    (VARS + ") | groupBy([ComputerName], function=count()) | _count > 2", "sigma", "counts matches"),
    ('case { CommandLine=/x/ | ' + VARS + '); * }', "kql", "inside a case branch"),
    ('case { CommandLine=/x/ | ' + VARS + '); * }', "spl", "inside a case branch"),
    ('case { CommandLine=/x/ | ' + VARS + '); * }', "python", "inside a case branch"),
])
def test_targets_refuse_what_they_cannot_repeat(cql: str, target: str, reason: str) -> None:
    conversion = convert_query(cqlx.parse(P + cql), target, query_text=P + cql)
    assert any(d.kind == DETECTION and reason in d.message for d in conversion.diagnostics), conversion.diagnostics


def test_sigma_matches_the_event_once_which_is_presentation() -> None:
    conversion = convert_query(cqlx.parse(RULE), "sigma", query_text=RULE)
    assert not [d for d in conversion.diagnostics if d.kind == DETECTION]
    assert any(d.kind == PRESENTATION and "row per match" in d.message for d in conversion.diagnostics)


def test_the_oracle_reads_max_match_and_mvexpand_as_documented() -> None:
    rows = run_spl('search * | rex field=c "(?<v>[0-9])" max_match=2 | mvexpand v limit=5 | table v',
                   [{"c": "a1b2c3"}, {"c": "x7"}, {"c": "none"}, {"v": "kept"}])
    assert [r.get("v") for r in rows] == ["1", "2", "7", None, "kept"]


def test_the_oracle_reads_mvcount_and_mvrange_as_documented() -> None:
    rows = run_spl('search * | rex field=c "(?<v>[0-9])" max_match=5 | eval n=mvcount(v), i=mvrange(0, n)'
                   " | mvexpand i | eval w=mvindex(v, i) | table n i w",
                   [{"c": "a1b2c3"}, {"c": "x7"}, {"c": "none"}])
    assert [(r.get("n"), r.get("i"), r.get("w")) for r in rows] == [
        (3, "0", "1"), (3, "1", "2"), (3, "2", "3"), (1, "0", "7"), (None, None, None)]


def test_cqlx_test_compares_every_row_of_an_event() -> None:
    """The harness's verdict on an event holds all its rows, in any order: a target that made a
    row of the first match only (as every emitter did before repeat=true was converted) differs."""
    [verdict] = reference(cqlx.parse(RULE), RULE, [Case("three matches", EVENTS[0])])
    assert len(verdict.each) == 3
    assert _compare(verdict, Verdict(True, each=verdict.each[:1])) is not None
    assert _compare(verdict, Verdict(True, each=tuple(reversed(verdict.each)))) is None


def test_generated_witnesses_have_several_matches_and_every_engine_agrees() -> None:
    rule = Rule("repeat.cql", RULE, RuleMeta())
    query = rule.parse()
    found = generate(query)
    assert any("several matches" in w.name for w in found)
    report = Report()
    testing.test_rule(rule, report, extra=[Case(w.name, w.event) for w in found], query=query,
              targets=("python-module", "kql-duckdb", "kql-parser", "spl-oracle", "sigma-sqlite"))
    assert report.ok, report.findings
    assert all(isinstance(n, int) and n > 0 for n in report.checked.values()), report.checked


def test_the_matcher_finds_matches_as_java_does_after_an_empty_one() -> None:
    """After an empty match Java's find() goes on one character further, so ``:+`` next to it
    takes one colon; Python's finditer would let it start at the empty match and take two."""
    rule = P + 'regex("(?<g>\\\\b|:+)", field=CommandLine, repeat=true) | select([g])'
    rows = cqlx.compile_matcher(rule).run([{"#event_simpleName": "ProcessRollup2", "CommandLine": "a::bc"}])
    assert [r.get("g") for r in rows] == ["", "", ":", "", ""]
    assert "match the empty string" in str(convert_query(cqlx.parse(rule), "kql", query_text=rule).diagnostics)


def test_equiv_compares_every_row_of_a_hand_written_rule() -> None:
    """``cqlx equiv``: a KQL or SPL rule written by hand must give an event the CQL rule's rows,
    every one: the converted rule does; one that keeps the first match only does not."""
    rule = Rule("repeat.cql", RULE, RuleMeta())
    cases = [Case(f"event {i}", e) for i, e in enumerate(EVENTS)]
    for kind in ("kql", "spl"):
        text = convert(RULE, to=kind)
        assert testing.equivalence(rule, text, kind, cases) == []
        first_only = text.replace("limit 5\n", "limit 1\n").replace("max_match=5", "max_match=1")
        assert first_only != text
        assert testing.equivalence(rule, first_only, kind, cases), kind

"""IR passes, each with input/expected pairs: lowering, normalisation, source, signals, score, ladder."""

from __future__ import annotations

import pytest

from cqlx import ir, parse
from cqlx.lower import lower, unescape_regex
from cqlx.parser import parse as parse_tree
from cqlx.passes import (
    extract_source,
    normalize,
    normalize_pred,
    recognize_ladder,
    recognize_score,
    recognize_signals,
    shadowed_fields,
)


def lowered(text: str) -> ir.Query:
    return lower(parse_tree(text))


def test_unescape_regex_removes_only_the_slash_escape() -> None:
    assert unescape_regex(r"\/usr\/bin\.x\\/") == r"/usr/bin\.x\\/"


def test_values_lower_to_their_predicates() -> None:
    steps = lowered('a = x | b = *x* | c = * | d != * | e = /r/i | f != "v" | g >= 5').steps
    preds = [s.pred for s in steps if isinstance(s, ir.Filter)]
    assert preds == [
        ir.Eq("a", "x"), ir.Glob("b", "*x*"), ir.Exists("c"), ir.Not(ir.Exists("d")),
        ir.Regex("e", "r", "i"), ir.Not(ir.Eq("f", "v")), ir.Cmp("g", ">=", 5),
    ]


def test_quoted_star_is_a_glob() -> None:
    (step,) = lowered('f = "*whoami*"').steps
    assert isinstance(step, ir.Filter) and step.pred == ir.Glob("f", "*whoami*")


def test_both_if_dialects_give_the_same_ir() -> None:
    official = lowered('x := if(test(CommandLine == "a"), then="Y", else="N")').steps
    seed = lowered('x := if(CommandLine = "a", "Y", "N")').steps
    assert official == seed


def test_normalize_flattens_dedupes_and_cancels_double_negation() -> None:
    a, b, c = ir.Eq("a", "1"), ir.Eq("b", "2"), ir.Eq("c", "3")
    assert normalize_pred(ir.And((a, ir.And((b, a)), ir.TrueP()))) == ir.And((a, b))
    assert normalize_pred(ir.Or((a, ir.Or((b, c))))) == ir.Or((a, b, c))
    assert normalize_pred(ir.Not(ir.Not(a))) == a
    assert normalize_pred(ir.Or((a, ir.TrueP()))) == ir.TrueP()


def test_extract_source_takes_event_type_and_platform() -> None:
    query = extract_source(normalize(lowered("#event_simpleName=ProcessRollup2 event_platform=Lin CommandLine=/x/")))
    assert query.source == ir.Source(("ProcessRollup2",), ("Lin",))
    assert [s.pred for s in query.steps if isinstance(s, ir.Filter)] == [ir.Regex("CommandLine", "x")]


def test_extract_source_keeps_a_case_insensitive_event_type_filter() -> None:
    """The anchored regex names the event type (the table), and the source keeps the test itself."""
    query = extract_source(normalize(lowered("#event_simpleName=/^ProcessRollup2$/i")))
    assert query.source.event_types == ("ProcessRollup2",)
    assert query.source.types_test == ir.Regex("#event_simpleName", "^ProcessRollup2$", "i")
    unanchored = extract_source(normalize(lowered("#event_simpleName=/ProcessRollup2/i")))
    assert unanchored.source.event_types == ()


def test_extract_source_alternatives() -> None:
    text = "#event_simpleName=ProcessRollup2 or #event_simpleName=SyntheticProcessRollup2"
    query = extract_source(normalize(lowered(text)))
    assert query.source.event_types == ("ProcessRollup2", "SyntheticProcessRollup2")


SCORED = """
F := if(CommandLine = /x/i, "YES", "NO")
| FScore := if(CommandLine = /x/i, 3, 0)
| GScore := if(CommandLine = /y/, 2, 0)
| S := FScore + GScore
| Sev := if(S >= 5, "HIGH", if(S >= 2, "MED", "LOW"))
"""


def test_flag_and_score_testing_one_condition_become_one_signal() -> None:
    steps = recognize_signals(lowered(SCORED)).steps
    signals = [s for s in steps if isinstance(s, ir.Signal)]
    assert signals == [
        ir.Signal("F", ir.Regex("CommandLine", "x", "i"), 3, "F", ("YES", "NO"), "FScore"),
        ir.Signal("GScore", ir.Regex("CommandLine", "y", ""), 2, None, ("YES", "NO"), "GScore"),
    ]


def test_different_case_flags_are_different_conditions() -> None:
    text = 'F := if(CommandLine = /x/i, "YES", "NO") | FScore := if(CommandLine = /x/, 3, 0)'
    signals = [s for s in recognize_signals(lowered(text)).steps if isinstance(s, ir.Signal)]
    assert [(s.flag_field, s.score_field) for s in signals] == [(None, "FScore")]


def test_signal_not_merged_across_a_write_to_its_field() -> None:
    text = ('F := if(CommandLine = /x/, "YES", "NO") | CommandLine := "changed" '
            "| FScore := if(CommandLine = /x/, 3, 0)")
    signals = [s for s in recognize_signals(lowered(text)).steps if isinstance(s, ir.Signal)]
    assert [(s.flag_field, s.score_field) for s in signals] == [(None, "FScore")]


def test_score_and_ladder() -> None:
    query = recognize_ladder(recognize_score(recognize_signals(lowered(SCORED))))
    assert ir.Score("S", ("F", "GScore")) in query.steps
    assert ir.Ladder("Sev", "S", (ir.Tier(5, "HIGH"), ir.Tier(2, "MED")), "LOW") in query.steps


def test_a_signal_written_again_under_its_name_is_told_apart() -> None:
    """A score sums the signals it names: a later signal in the same field (S0 written again as a
    weight) must not take the name the score reads (fuzz seed 218: every target summed the later one)."""
    text = ('S0 := if(aid = "x", "YES", "NO") | S0W := if(aid = "x", 1, 0) | S := S0W '
            "| S0 := if(d = m, 3, 0) | T := S0")
    query = recognize_score(recognize_signals(lowered(text)))
    assert [s.name for s in query.steps if isinstance(s, ir.Signal)] == ["S0", "S0#2"]
    assert [s for s in query.steps if isinstance(s, ir.Score)] == [ir.Score("S", ("S0",)), ir.Score("T", ("S0#2",))]


def test_ladder_with_ascending_thresholds_stays_an_eval() -> None:
    text = SCORED.replace("S >= 5", "S >= 1")
    query = recognize_ladder(recognize_score(recognize_signals(lowered(text))))
    assert not any(isinstance(s, ir.Ladder) for s in query.steps)


def test_a_query_outside_the_pattern_stays_plain() -> None:
    query = parse('x := if(CommandLine = /a/, "Y", "N") | y := x')
    assert [type(s) for s in query.steps] == [ir.Eval, ir.Eval]


def test_seed_ir(seed_text: str) -> None:
    query = parse(seed_text)
    assert query.source.event_types == ("ProcessRollup2",)
    kinds = [type(s).__name__ for s in query.steps]
    assert kinds == ["Filter", "Filter"] + ["Signal"] * 5 + ["Score", "Ladder", "Project", "Order"]
    signals = {s.name: (s.weight, s.flag_field, s.score_field, s.condition.flags)
               for s in query.steps if isinstance(s, ir.Signal) and isinstance(s.condition, ir.Regex)}
    assert signals == {
        "PrivilegedContainer": (3, "PrivilegedContainer", "PrivScore", "i"),
        "HostMount": (3, "HostMount", "MountScore", ""),
        "ContainerExec": (1, "ContainerExec", "ExecScore", "i"),
        "SecretsAccess": (2, "SecretsAccess", "SecretsScore", "i"),
        "ContainerEscape": (3, "ContainerEscape", "EscapeScore", "i"),
    }
    ladder = next(s for s in query.steps if isinstance(s, ir.Ladder))
    assert ladder.tiers == (ir.Tier(6, "CRITICAL"), ir.Tier(3, "HIGH")) and ladder.default == "MEDIUM"
    order = next(s for s in query.steps if isinstance(s, ir.Order))
    assert order.keys == (ir.SortKey("SuspicionScore", True, "number"),) and order.limit == 200


def test_a_condition_on_the_flag_it_writes_is_not_one_signal() -> None:
    """`F := if(F = "x", ...) | S := if(F = "x", 3, 0)`: the score tests F after F became YES/NO."""
    steps = parse('F := if(F = "x", "YES", "NO") | S := if(F = "x", 3, 0)').steps
    assert [type(s).__name__ for s in steps] == ["Eval", "Signal"]


def test_a_case_that_assigns_in_every_branch_is_an_if() -> None:
    """LogScale documents if() as this case (functions-if); several fields per branch split."""
    assert parse('case { a=1 | x := 1 ; * | x := 0 }').steps == parse('x := if(a = "1", 1, 0)').steps
    assert parse('case { a=1 | x := 1 | y := 2 ; b=2 | x := 3 | y := 4 ; * | x := 0 | y := 0 }').steps == \
        parse('x := if(a = "1", 1, if(b = "2", 3, 0)) | y := if(a = "1", 2, if(b = "2", 4, 0))').steps
    # no always-true branch (events are dropped), a test on a field assigned before it: stays a case
    for text in ('case { a=1 | x := 1 ; b=2 | x := 2 }', 'case { x=1 | x := 2 | y := 3 ; * | x := 0 | y := 0 }'):
        assert [type(s).__name__ for s in parse(text).steps] == ["Case"]


def test_a_flag_and_a_score_in_one_field_are_not_one_signal() -> None:
    """Fuzz finding: `S := if(c, "YES", "NO") | S := if(c, 3, 0)` became one signal whose flag and
    score share a field, which canonical CQL cannot write back as the same query."""
    from cqlx import convert, ir, parse

    text = 'S := if(UserName = /a/, "YES", "NO") | S := if(UserName = /a/, 3, 0)'
    query = parse(text)
    assert not any(isinstance(s, ir.Signal) and s.flag_field == s.score_field for s in query.steps)
    assert parse(convert(text, to="cql")).steps == query.steps


# The columns a target gives Falcon fields (Defender's names): a field the rule writes under one of
# them overwrites what a later read of that Falcon field gets in the target.
_COLUMNS = {"CommandLine": "ProcessCommandLine", "UserName": "AccountName", "ImageFileName": "FolderPath"}


@pytest.mark.parametrize(("text", "found"), [
    ("ProcessCommandLine := lower(x) | CommandLine = a", [("ProcessCommandLine", "CommandLine", False)]),
    # read before the write, or the Falcon field written first (its own value then): nothing
    ("CommandLine = a | ProcessCommandLine := lower(x)", []),
    ("CommandLine := lower(CommandLine) | CommandLine = a", []),
    # a copy of the same value is harmless
    ("ProcessCommandLine := CommandLine | CommandLine = a", []),
    ("ProcessCommandLine := CommandLine | ProcessCommandLine := lower(x) | CommandLine = a",
     [("ProcessCommandLine", "CommandLine", False)]),
    # inside a case branch; a read in a later stage of any kind; only shown (select, sort) or not
    ("case { x = 1 | AccountName := y ; * } | select([UserName])", [("AccountName", "UserName", True)]),
    ("AccountName := y | select([UserName]) | UserName = a", [("AccountName", "UserName", False)]),
    ("FolderPath := y | groupBy(ImageFileName)", [("FolderPath", "ImageFileName", False)]),
])
def test_shadowed_fields(text: str, found: list[tuple[str, str, bool]]) -> None:
    query = parse(text)
    assert [(w, r, shown) for w, r, _, shown in shadowed_fields(query.steps, _COLUMNS.get)] == found

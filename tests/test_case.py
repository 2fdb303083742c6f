"""``case { }`` and ``field match { }`` on targets without first-match branches: the rewrite
(:func:`cqlx.passes.expand_case`) as input/expected pairs, and the rows it gives on duckdb-kql and
the SPL oracle against the Python matcher, which runs ``case`` natively."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import convert, ir, parse
from cqlx.passes import branch_arm, case_keep, expand_case
from cqlx.testing import check_kql
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 "


def _event(n: int, **fields: Any) -> dict[str, Any]:
    return {"#event_simpleName": "ProcessRollup2", "ComputerName": f"host-{n:02d}", **fields}


EVENTS = [
    _event(1, CommandLine="rundll32.exe javascript:alert(1)", ParentBaseFileName="winword.exe", RawProcessId="10"),
    _event(2, CommandLine="regsvr32 /i:http://x scrobj.dll", ParentBaseFileName="explorer.exe", RawProcessId="20"),
    _event(3, CommandLine="cmd.exe /c dir", ParentBaseFileName="Explorer.EXE", RawProcessId="30"),
    _event(4, CommandLine="JAVASCRIPT: in upper case", ParentBaseFileName="excel.exe"),
    _event(5, ParentBaseFileName="svchost.exe", RawProcessId="50"),
    _event(6, CommandLine="powershell -enc AAAA", RawProcessId="60"),
]

CASES = [
    # No default branch: events no branch takes are dropped; branches assign different fields.
    """| case {
         CommandLine=/javascript:/i | Technique := "T1218.011" | Tactic := "DefenseEvasion" ;
         CommandLine=/scrobj\\.dll/i | Technique := "T1218.010" ;
       }
       | select([ComputerName, Technique, Tactic])""",
    # A default branch, and a later filter on what the branches assigned.
    """| case {
         ParentBaseFileName=/^(winword|excel)\\.exe$/i | Risk := 5 ;
         ParentBaseFileName=/^explorer\\.exe$/ | Risk := 1 | Note := "shell" ;
         * | Risk := 0 ;
       }
       | Risk >= 1
       | select([ComputerName, Risk, Note])""",
    # A branch that only filters, one that assigns from another field.
    """| case {
         RawProcessId > 55 ;
         CommandLine=* | Pid := RawProcessId ;
       }
       | select([ComputerName, Pid, RawProcessId])""",
    # A filter after an assignment it does not read; a constant the branch assigned, read back.
    """| case {
         CommandLine=/javascript:/i | Where := "script" | ParentBaseFileName=/word/i ;
         RawProcessId > 55 | Kind := "pid" | Label := Kind ;
       }
       | select([ComputerName, Where, Kind, Label])""",
    # match statement: a case over one field.
    """| ParentBaseFileName match {
         "winword.exe" => App := "Word" ;
         /^excel/ => App := "Excel" ;
         *.exe => App := "other" | Seen := 1 ;
       }
       | select([ComputerName, App, Seen])""",
    # Branches that filter on what they assign: worked out in scratch fields before the branch is
    # chosen (passes.scratch_arm); a branch that fails leaves nothing of what it assigned.
    """| case {
         CommandLine=* | n := length(CommandLine) | n > 15 | Size := "long" ;
         RawProcessId=* | n := RawProcessId | n := n * 2 | n < 100 | Size := "pid" ;
         * | Size := "short" ;
       }
       | Size != "pid"
       | select([ComputerName, n, Size])""",
    """| case {
         CommandLine=/javascript/i | Lower := lower(CommandLine) | Lower = /alert/ | Kind := "alert" ;
         ParentBaseFileName=* | Lower := lower(ParentBaseFileName) | Lower = "explorer.exe" ;
       }
       | select([ComputerName, Lower, Kind])""",
]


@pytest.mark.parametrize("rule", CASES)
def test_case_rows_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(P + rule, EVENTS)
    assert 0 < len(rows) < len(EVENTS)
    check_kql(convert(P + rule, to="kql"))  # Kusto's own parser, against Defender's columns


def test_expand_case_input_expected() -> None:
    (case,) = parse("case { a = 1 | x := 2 ; b = 3 | y := c ; }").steps
    assert isinstance(case, ir.Case)
    steps = expand_case(case, "t", existing=lambda name: name == "y")
    tag_is = lambda n: ir.Cmp("t", "==", n)  # noqa: E731
    assert steps == (
        ir.Eval("t", ir.Cond(ir.Eq("a", "1"), ir.Lit(1), ir.Cond(ir.Eq("b", "3"), ir.Lit(2), ir.Lit(0)))),
        ir.Filter(ir.Cmp("t", ">", 0)),
        ir.Eval("x", ir.Cond(tag_is(1), ir.Lit(2), ir.Null())),
        ir.Eval("y", ir.Cond(tag_is(2), ir.Ref("c"), ir.Ref("y"))),
        ir.Drop(("t",)),
    )


def test_a_default_branch_keeps_every_event_and_writes_its_value_last() -> None:
    (case,) = parse("case { a = 1 | x := 2 ; * | x := 3 | y := 4 }").steps
    assert isinstance(case, ir.Case)
    steps = expand_case(case, "t", existing=lambda name: False)
    assert steps is not None and not any(isinstance(s, ir.Filter) for s in steps)
    assert ir.Eval("x", ir.Cond(ir.Cmp("t", "==", 1), ir.Lit(2), ir.Lit(3))) in steps
    assert ir.Eval("y", ir.Lit(4)) in steps


def test_a_branch_that_filters_on_what_it_assigns_works_in_scratch_fields() -> None:
    (case,) = parse('case { a = 1 | x := lower(b) | x = "q" | y := x ; * }').steps
    assert isinstance(case, ir.Case)
    steps = expand_case(case, "t", existing=lambda name: name == "x")
    tag_is = lambda n: ir.Cmp("t", "==", n)  # noqa: E731
    assert steps == (
        ir.Eval("t_b1_x", ir.Ref("x")),  # starts as the incoming x: a null lower(b) leaves it so
        ir.Eval("t_b1_x", ir.Func("lower", (ir.Ref("b"),))),
        ir.Eval("t_b1_y", ir.Ref("t_b1_x")),
        ir.Eval("t", ir.Cond(ir.And((ir.Eq("a", "1"), ir.Eq("t_b1_x", "q"))), ir.Lit(1), ir.Lit(2))),
        ir.Eval("x", ir.Cond(tag_is(1), ir.Ref("t_b1_x"), ir.Ref("x"))),
        ir.Eval("y", ir.Cond(tag_is(1), ir.Ref("t_b1_y"), ir.Null())),
        ir.Drop(("t", "t_b1_x", "t_b1_y")),
    )


@pytest.mark.parametrize("text", [
    'case { x := 1 | "anywhere" ; * }',  # searches every field after it assigns
    "case { a = 1 | x := lower(b) ; * | y := x }",  # a branch reads what another assigns
])
def test_branches_that_are_not_tests_then_assignments_are_refused(text: str) -> None:
    (case,) = parse(text).steps
    assert isinstance(case, ir.Case) and expand_case(case, "t", lambda name: True) is None
    for target in ("kql", "spl"):
        with pytest.raises(Exception, match="case"):
            convert(P + "| " + text, to=target)


def test_branch_arms_hoist_independent_filters_and_read_constants_back() -> None:
    (case,) = parse('case { a = 1 | w := "s" | b = 2 | k := 3 | l := k + 1 }').steps
    assert isinstance(case, ir.Case)
    arm = branch_arm(case.branches[0])
    assert arm == (ir.And((ir.Eq("a", "1"), ir.Eq("b", "2"))),
                   (ir.Eval("w", ir.Lit("s")), ir.Eval("k", ir.Lit(3)),
                    ir.Eval("l", ir.Arith("+", ir.Lit(3), ir.Lit(1)))))
    (reads,) = parse('case { w := "s" | w = s ; * }').steps
    assert isinstance(reads, ir.Case) and branch_arm(reads.branches[0]) is None


def test_sigma_keeps_the_events_some_branch_takes() -> None:
    (case,) = parse("case { a = 1 | x := 2 ; b = 3 | y := 4 }").steps
    assert isinstance(case, ir.Case)
    assert case_keep(case) == ir.Or((ir.Eq("a", "1"), ir.Eq("b", "3")))
    sigma = convert(P + "| case { CommandLine = /x/ | y := 1 ; ParentBaseFileName = bash | y := 2 }", to="sigma")
    assert "condition: selection or selection_2" in sigma or "(selection or selection_2)" in sigma

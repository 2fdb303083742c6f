"""A target whose records are all of one Falcon event type answers the rule's later tests on
``#event_simpleName`` (cqlx.repository.settle_tag), and a strict regex extraction in KQL does not
read the fields its groups overwrite. Rows checked on duckdb-kql against the Python matcher."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import CqlError, convert, ir
from cqlx.api import parse
from cqlx.repository import EVENT_TYPE_TAGS, settle_tag
from tests.agreement import assert_agree

PR2 = "ProcessRollup2"


def _settled(rule: str) -> tuple[ir.Step, ...]:
    return settle_tag(parse(rule).steps, EVENT_TYPE_TAGS, PR2)


@pytest.mark.parametrize(("rule", "expected"), [
    # a filter that holds leaves; one that reads another field too keeps that part
    ("FileName=a | #event_simpleName=ProcessRollup2", "FileName=a"),
    ("FileName=a | #event_simpleName=/^Process/ CommandLine=x", "FileName=a | CommandLine=x"),
    ("FileName=a | event_simpleName!=DnsRequest", "FileName=a"),
    ("FileName=a | #event_simpleName=DnsRequest OR CommandLine=x", "FileName=a | CommandLine=x"),
    # a filter that fails outside a case stays (the rule matches nothing)
    ("FileName=a | #event_simpleName=DnsRequest", "FileName=a | #event_simpleName=DnsRequest"),
    # a branch whose test fails goes; one whose test holds loses it
    ("case { #event_simpleName=DnsRequest | x:=1; #event_simpleName=ProcessRollup2 | x:=2 }",
     "case { * | x:=2 }"),
    ("case { #event_simpleName=DnsRequest | x:=1; CommandLine=c | x:=2; * }", "case { CommandLine=c | x:=2; * }"),
    # a condition (a case made one) takes the branch its test decides
    ("x := if(#event_simpleName==\"ProcessRollup2\", then=\"p\", else=\"o\")", "x := \"p\""),
    # after a step that writes the tag, or that may remove it, tests stay
    ("#event_simpleName := \"Other\" | #event_simpleName=ProcessRollup2",
     "#event_simpleName := \"Other\" | #event_simpleName=ProcessRollup2"),
    ("groupBy([aid]) | #event_simpleName=ProcessRollup2", "groupBy([aid]) | #event_simpleName=ProcessRollup2"),
    ("select([aid]) | #event_simpleName=ProcessRollup2", "select([aid]) | #event_simpleName=ProcessRollup2"),
    # a branch that drops fields ends the answers after the case
    ("case { CommandLine=c | drop([#event_simpleName]); * } | #event_simpleName=ProcessRollup2",
     "case { CommandLine=c | drop([#event_simpleName]); * } | #event_simpleName=ProcessRollup2"),
])
def test_settle_tag(rule: str, expected: str) -> None:
    assert _settled(rule) == parse(expected).steps


CASE_RULE = """#event_simpleName=/^(ProcessRollup2$|CommandHistory$)/
| case {
    #event_simpleName=CommandHistory AND CommandHistory=/get-addresslist/i | Description:="history";
    #event_simpleName=ProcessRollup2 AND CommandLine=/get-addresslist/i | Description:="command line";
    * | Description:="other";
}
| groupBy([Description, ComputerName])"""


def _process(host: str, command: str) -> dict[str, Any]:
    return {"#event_simpleName": PR2, "aid": "a" + host, "ComputerName": host, "FileName": "powershell.exe",
            "ImageFileName": "\\Device\\HarddiskVolume3\\Windows\\System32\\powershell.exe",
            "CommandLine": command}


def test_case_branches_for_other_event_types_go_and_rows_agree() -> None:
    kql = convert(CASE_RULE, to="kql")
    assert "event_simpleName" not in kql and "history" not in kql
    rows = assert_agree(CASE_RULE, [_process("h1", "powershell Get-AddressList"), _process("h2", "whoami"),
                                    _process("h1", "GET-ADDRESSLIST -x")], engines=("kql", "spl"))
    assert {dict(r)["Description"] for r in rows} == {"command line", "other"}


def test_several_event_types_in_one_target_search_keep_their_tests() -> None:
    """Splunk's raw FDR search reads both types (one search, event_simpleName ORed): nothing is
    answered, the SPL tests event_simpleName as the rule does."""
    rule = ("#event_simpleName=ProcessRollup2 OR #event_simpleName=SyntheticProcessRollup2 "
            "| case { #event_simpleName=SyntheticProcessRollup2 | x:=1; * | x:=2 } | groupBy([x])")
    assert 'event_simpleName=="SyntheticProcessRollup2"' in convert(rule, to="spl")


STRICT = (f"#event_simpleName={PR2} "
          "| CommandLine=/\\s(?<FilePath>[A-Za-z]:\\\\\\S*\\\\)(?<Script>\\S+)/ "
          "| FilePath!=/Temp/ | groupBy([Script, FilePath])")


def test_a_strict_extraction_does_not_read_what_its_groups_overwrite() -> None:
    """Defender's FolderPath is not Falcon's FilePath, but the rule's own FilePath (a group that
    must capture something, on a match that every row left is) never reads it."""
    kql = convert(STRICT, to="kql")
    assert "FilePath = extract(" in kql and "iff(isempty" not in kql
    events = [_process("h1", "powershell -f C:\\Users\\a\\run.ps1"),
              {**_process("h2", "powershell -f C:\\Temp\\x.ps1"), "FilePath": "\\Windows\\"},
              _process("h3", "whoami")]
    rows = assert_agree(STRICT, events, engines=("kql",))
    assert [dict(r)["Script"] for r in rows] == ["run.ps1"]


@pytest.mark.parametrize("rule", [
    # not strict: a row without a match keeps Falcon's FilePath, which Defender does not hold
    STRICT.replace("| CommandLine=/", "| regex(field=CommandLine, strict=false, regex=\"").replace(
        "(?<Script>\\S+)/", "(?<Script>\\S+)\")").replace("\\", "\\\\"),
    # a group that may take no part: the old value is kept where it does not
    STRICT.replace("\\\\)(?<Script>", "\\\\)?(?<Script>"),
])
def test_an_extraction_that_may_keep_the_old_value_is_still_refused(rule: str) -> None:
    with pytest.raises(CqlError, match="FilePath becomes FolderPath"):
        convert(rule, to="kql")

"""``selfJoinFilter(field=[...], where=[{...}, ...], prefilter=...)``: keeps the events whose key
some event meets each filter with (functions-selfjoinfilter). The targets run it as one inner
``join()`` per filter over the same events (exact: LogScale's Bloom filter may let a rare false
positive through); ``--to cql`` writes it back. The matcher is the reference; KQL runs on
duckdb-kql and the SPL on the SPL oracle over the same events."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import compile_matcher, convert, ir, parse
from cqlx.errors import CqlError, UnsupportedError
from tests.agreement import assert_agree
from tests.conftest import require_kusto


def _process(aid: str | None, image: str, pid: str) -> dict[str, Any]:
    event = {"#event_simpleName": "ProcessRollup2", "ComputerName": f"host-{aid}",
             "ImageFileName": image, "CommandLine": image.rsplit("\\", 1)[-1], "RawProcessId": pid}
    if aid is not None:
        event["aid"] = aid
    return event


CMD, PWSH, NOTEPAD = "C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\powershell.exe", "C:\\notepad.exe"
EVENTS = [
    _process("a1", CMD, "1"), _process("a1", PWSH, "2"), _process("a1", NOTEPAD, "3"),  # both filters met
    _process("a2", CMD, "4"), _process("a2", NOTEPAD, "5"),                              # cmd only
    _process("a3", PWSH, "6"),                                                           # powershell only
    _process(None, CMD, "7"), _process(None, PWSH, "8"),                                 # no key
    {"#event_simpleName": "DnsRequest", "aid": "a2", "DomainName": "example.org"},       # another type
]
BOTH = "where=[{ImageFileName=/\\\\cmd\\.exe$/i}, {ImageFileName=/\\\\powershell\\.exe$/i}]"

# (rule, the RawProcessId of the rows the matcher returns)
CASES = [
    (f"#event_simpleName=ProcessRollup2 | selfJoinFilter(field=[aid], {BOTH}) | select([aid, RawProcessId])",
     ["1", "2", "3"]),
    (f"#event_simpleName=ProcessRollup2 | selfJoinFilter(field=[aid], {BOTH}, prefilter=true) "
     "| select([aid, RawProcessId])", ["1", "2"]),
    ("#event_simpleName=ProcessRollup2 | selfJoinFilter(aid, where=[{ImageFileName=/notepad/i}]) "
     "| select([aid, RawProcessId])", ["1", "2", "3", "4", "5"]),
    (f"#event_simpleName=ProcessRollup2 RawProcessId!=3 | selfJoinFilter(field=[aid], {BOTH}) "
     "| select([aid, RawProcessId])", ["1", "2"]),
    ("#event_simpleName=ProcessRollup2 | selfJoinFilter(field=[aid, ComputerName], where=[{CommandLine=cmd.exe}, "
     "{CommandLine=notepad.exe}]) | select([aid, RawProcessId])", ["1", "2", "3", "4", "5"]),
]


@pytest.mark.parametrize(("text", "pids"), CASES)
def test_the_matcher_keeps_the_keys_every_filter_meets(text: str, pids: list[str]) -> None:
    assert [row["RawProcessId"] for row in compile_matcher(text).run(EVENTS)] == pids


@pytest.mark.parametrize(("text", "pids"), CASES)
def test_kql_and_spl_run_as_the_matcher_does(text: str, pids: list[str]) -> None:
    require_kusto()
    rows = assert_agree(text, EVENTS, engines=("kql", "spl"))
    assert sorted(dict(row)["RawProcessId"] or "" for row in rows) == pids


@pytest.mark.parametrize(("text", "pids"), CASES)
def test_canonical_cql_writes_it_back(text: str, pids: list[str]) -> None:
    cql = convert(text, to="cql")
    assert "selfJoinFilter(field=[" in cql and "join(" not in cql
    assert parse(cql) == parse(text)


def test_the_targets_read_it_as_joins() -> None:
    query = parse(CASES[1][0])
    assert any(isinstance(step, ir.SelfJoinFilter) for step in query.steps)
    kql = convert(CASES[1][0], to="kql")
    assert kql.count("join kind=leftsemi") == 2
    with pytest.raises(UnsupportedError, match=r"selfJoinFilter\(\): Sigma has no joins"):
        convert(CASES[1][0], to="sigma")


@pytest.mark.parametrize(("text", "message"), [
    ("selfJoinFilter(where=[{a=1}])", "needs the key field"),
    ("selfJoinFilter(field=aid)", "needs its filters in braces"),
    ("selfJoinFilter(field=aid, where=a)", "needs its filters in braces"),
    ("selfJoinFilter(field=aid, where=[{a=1}], prefilter=maybe)", "prefilter"),
])
def test_bad_arguments_are_reported(text: str, message: str) -> None:
    with pytest.raises(CqlError, match=message):
        parse(text)


@pytest.mark.parametrize(("text", "reason"), [
    ("selfJoinFilter(field=aid, where=[{a=1 | b := 2}])", "does more than filter"),
    ("!selfJoinFilter(field=aid, where=[{a=1}])", "keeps the events whose key lacks"),
])
def test_what_is_not_converted_stays_opaque(text: str, reason: str) -> None:
    step = parse(text).steps[0]
    assert isinstance(step, ir.Opaque) and reason in step.reason
    with pytest.raises(UnsupportedError, match="selfJoinFilter"):
        convert(text, to="python")


def test_explain_says_what_it_keeps() -> None:
    from cqlx.explain import explain

    text = explain(parse(CASES[1][0]))
    assert "Self-join filter: keys aid for which some event meets each of:" in text
    assert "keep those that meet one of the filters" in text


def test_cqlx_run_keeps_the_prefilter(tmp_path: Any) -> None:
    """The joins read the rule's own source and leading filters, which the literal prefilter's
    needs come from: `cqlx run` skips the lines none of them can read, and finds the same rows."""
    import json

    from typer.testing import CliRunner

    from cqlx.cli import app

    rule = tmp_path / "rule.cql"
    rule.write_text(CASES[3][0] + "\n", encoding="utf-8")
    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    runner = CliRunner()
    fast = runner.invoke(app, ["run", str(rule), str(events), "--format", "jsonl"])
    slow = runner.invoke(app, ["run", str(rule), str(events), "--format", "jsonl", "--no-prefilter"])
    assert fast.exit_code == slow.exit_code == 0, (fast.output, slow.output)
    rows = [json.loads(line) for line in fast.stdout.splitlines() if line.startswith("{")]
    assert [r["RawProcessId"] for r in rows] == CASES[3][1]
    assert fast.stdout == slow.stdout
    assert "1 skipped unparsed by the literal prefilter" in fast.stderr


@pytest.mark.parametrize("text", [
    "case { a=1 | selfJoinFilter(field=aid, where=[{b=1}]) ; * }",
    "#event_simpleName=ProcessRollup2 | case { a=1 | selfJoinFilter(field=aid, where=[{b=1}]) ; * } | select([aid])",
])
@pytest.mark.parametrize("target", ["python", "spl", "kql", "sigma"])
def test_inside_a_case_branch_it_is_refused(text: str, target: str) -> None:
    """The events a branch's selfJoinFilter() reads are those the branch takes: no join over the
    query says that, so it is refused there (a CqlError naming it, never an internal error)."""
    with pytest.raises(UnsupportedError) as refused:  # other targets may name another reason first
        convert(text, to=target)
    assert target != "python" or "selfJoinFilter() inside a case branch" in str(refused.value)
    assert parse(convert(text, to="cql")) == parse(text)


def test_inside_a_join_subquery_it_is_the_subquery_s_own() -> None:
    text = ("#event_simpleName=ProcessRollup2 | join({#event_simpleName=ProcessRollup2 | selfJoinFilter(field=aid, "
            "where=[{ImageFileName=/cmd/i}, {ImageFileName=/powershell/i}])}, field=aid) | select([aid, RawProcessId])")
    assert [row["RawProcessId"] for row in compile_matcher(text).run(EVENTS)] == ["1", "2", "3"]
    assert assert_agree(text, EVENTS, engines=("spl",))


def test_in_a_join_subquery_inside_a_case_branch_it_is_the_subquery_s_own() -> None:
    """The subquery of a join inside a case branch is a query of its own: its selfJoinFilter()
    becomes joins there (it was left as is, and the matcher's generator failed on it)."""
    text = ("#event_simpleName=ProcessRollup2 | case { ImageFileName=/exe/i | join({#event_simpleName=ProcessRollup2 "
            f"| selfJoinFilter(field=[aid], {BOTH})}}, field=aid) }} | select([aid, RawProcessId])")
    assert [row["RawProcessId"] for row in compile_matcher(text).run(EVENTS)] == ["1", "2", "3"]

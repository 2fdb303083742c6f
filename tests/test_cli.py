"""The command line, run as a user runs it: exit codes, stdout/stderr, and never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, SEED_CARD, SEED_EVENTS, read_ndjson


def cqlx(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "cqlx", *args], capture_output=True, text=True,
                            input=stdin, timeout=120)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return result


@pytest.mark.parametrize("target", ["spl", "kql", "sigma", "python"])
def test_convert_each_target(target: str) -> None:
    result = cqlx("convert", str(SEED_CARD), "--to", target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_a_query_is_read_from_stdin(tmp_path: Path) -> None:
    """``-`` names the standard input: one query, read as a .cql file is (convert, check, explain,
    run); errors point into it as <stdin>; written files are named stdin.*."""
    query = "#event_simpleName=ProcessRollup2 CommandLine=/whoami/i | table([ComputerName])\n"
    result = cqlx("convert", "-", "--to", "kql", stdin=query)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("DeviceProcessEvents\n") and "(?i)whoami" in result.stdout
    bad = cqlx("convert", "-", "--to", "spl", stdin="CommandLine = ")
    assert bad.returncode == 2 and "<stdin>:1:15: expected a value after '='" in bad.stderr
    assert cqlx("check", "-", stdin=query).returncode == 0
    assert "Rule: stdin" in cqlx("explain", "-", stdin=query).stdout
    written = cqlx("convert", "-", "--to", "spl,cql", "--output", str(tmp_path), stdin=query)
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stdin.cql", "stdin.spl"]
    rows = cqlx("run", "-", str(SEED_EVENTS), "--format", "jsonl", stdin="CommandLine=/docker/i | select([aid])")
    assert rows.returncode == 0 and rows.stdout.count("\n") > 3, rows.stderr
    both = cqlx("run", "-", "-", stdin=query)
    assert both.returncode == 2 and "cannot both come from stdin" in both.stderr


def test_convert_all_to_a_directory(tmp_path: Path) -> None:
    result = cqlx("convert", str(SAMPLES / "rules"), "--to", "all", "--output", str(tmp_path), "--on-lossy", "warn")
    # every rule to every target, but the logon rule to Sigma: the Sigma taxonomy has no logon
    # category, and a rule without a logsource is refused under every policy
    assert result.returncode == 1, result.stderr
    assert "rdp_logon_admin.yml: cannot write sigma (sigma) for this rule, whatever --on-lossy says" in result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    seed = {"container_cli_api.kql", "container_cli_api.py", "container_cli_api.spl", "container_cli_api.yml",
            "container_cli_api.cql"}
    assert seed <= set(names) and "rdp_logon_admin.yml" not in names
    assert len(names) == 5 * len(list((SAMPLES / "rules").glob("*.yml"))) - 1


def test_run_jsonl_rows_sorted_by_score(tmp_path: Path) -> None:
    result = cqlx("run", str(SEED_CARD), str(SEED_EVENTS), "--format", "jsonl", "--no-prefilter")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = {x["ComputerName"]: (x["SuspicionScore"], x["Severity"])
                for x in read_ndjson(SAMPLES / "events" / "container_cli_api.expected.ndjson") if x["match"]}
    assert {r["ComputerName"]: (r["SuspicionScore"], r["Severity"]) for r in rows} == expected
    assert [r["SuspicionScore"] for r in rows] == sorted((r["SuspicionScore"] for r in rows), reverse=True)
    assert list(rows[0]) == ["timestamp", "ComputerName", "UserName", "ImageFileName", "CommandLine",
                             "ParentBaseFileName", "PrivilegedContainer", "HostMount", "ContainerExec",
                             "SecretsAccess", "ContainerEscape", "SuspicionScore", "Severity"]
    assert "60 lines read: 60 events (35 matched, 25 not matched), 0 blank, 0 malformed" in result.stderr


def test_run_defaults_to_jsonl_when_piped_and_reads_stdin_and_gzip(tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "events.ndjson.gz"
    packed.write_bytes(gzip.compress(SEED_EVENTS.read_bytes()))
    from_gzip = cqlx("run", str(SEED_CARD), str(packed))
    from_stdin = cqlx("run", str(SEED_CARD), "-", stdin=SEED_EVENTS.read_text(encoding="utf-8"))
    assert from_gzip.returncode == from_stdin.returncode == 0
    assert from_gzip.stdout == from_stdin.stdout and from_gzip.stdout.startswith("{")


def test_run_csv_has_the_selected_columns() -> None:
    result = cqlx("run", str(SEED_CARD), str(SEED_EVENTS), "--format", "csv")
    header = result.stdout.splitlines()[0]
    assert header.startswith("timestamp,ComputerName,UserName") and header.endswith("SuspicionScore,Severity")
    assert len(result.stdout.splitlines()) == 36


def test_run_counts_events_without_a_tested_field_but_not_the_fields_the_rule_computes(tmp_path: Path) -> None:
    rule = tmp_path / "minute.cql"
    rule.write_text("#event_simpleName=ProcessRollup2 | Minute := @timestamp / 60000 | Minute > 0 | UserName=*\n",
                    encoding="utf-8")
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(json.dumps(e) for e in [
        {"#event_simpleName": "ProcessRollup2", "timestamp": "1700000000000", "UserName": "a"},  # raw FDR
        {"#event_simpleName": "ProcessRollup2", "@timestamp": 1700000060000, "UserName": "b"},
        {"#event_simpleName": "ProcessRollup2", "@timestamp": 1700000120000}]) + "\n", encoding="utf-8")
    result = cqlx("run", str(rule), str(events), "--format", "jsonl")
    assert [json.loads(line)["UserName"] for line in result.stdout.splitlines()] == ["a", "b"]
    assert "3 events (2 matched, 1 not matched)" in result.stderr
    assert "; 1 event without a field the rule tests" in result.stderr  # UserName; Minute is the rule's


def test_malformed_lines_are_accounted_for() -> None:
    expected = json.loads((SAMPLES / "events" / "malformed.expected.json").read_text(encoding="utf-8"))
    result = cqlx("run", str(SEED_CARD), str(SAMPLES / "events" / "malformed.ndjson"), "--no-prefilter")
    assert result.returncode == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["ComputerName"]: {"SuspicionScore": r["SuspicionScore"], "Severity": r["Severity"]}
            for r in rows} == expected["matched_hosts"]
    events = expected["lines"] - expected["blank"] - expected["malformed"]
    assert (f"{expected['lines']} lines read: {events} events ({len(rows)} matched, {events - len(rows)} not "
            f"matched), {expected['blank']} blank, {expected['malformed']} malformed") in result.stderr


def test_strict_stops_at_the_first_malformed_line() -> None:
    result = cqlx("run", str(SEED_CARD), str(SAMPLES / "events" / "malformed.ndjson"), "--strict")
    assert result.returncode == 2
    assert "malformed.ndjson:2: malformed event line" in result.stderr


def test_syntax_error_exit_2_with_position_and_caret(tmp_path: Path) -> None:
    rule = tmp_path / "bad.cql"
    rule.write_text("#event_simpleName=ProcessRollup2\n| CommandLine = \n", encoding="utf-8")
    result = cqlx("convert", str(rule), "--to", "kql")
    assert result.returncode == 2
    assert f"{rule}:2:" in result.stderr and "expected a value after '='" in result.stderr
    assert "^" in result.stderr


def test_error_in_a_rule_card_points_into_the_file(tmp_path: Path) -> None:
    rule = tmp_path / "bad.yml"
    rule.write_text("title: x\nquery: |\n  #event_simpleName=ProcessRollup2\n  | frobnicate(x)\n", encoding="utf-8")
    result = cqlx("convert", str(rule))
    assert result.returncode == 1  # refused: what frobnicate() does to the events is unknown
    assert f"{rule}:4:5: detection loss on kql (mde): frobnicate(): cqlx does not know this function" \
        in result.stderr
    assert "|   | frobnicate(x)" in result.stderr


def test_detection_loss_is_refused_with_exit_1_unless_warned(tmp_path: Path) -> None:
    rule = tmp_path / "lossy.cql"
    rule.write_text("#event_simpleName=ProcessRollup2 | CommandLine = /(?<=x)y/\n", encoding="utf-8")
    refused = cqlx("convert", str(rule), "--to", "kql")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "lookbehind" in refused.stderr and ":1:" in refused.stderr
    warned = cqlx("convert", str(rule), "--to", "kql", "--on-lossy", "warn")
    assert warned.returncode == 0 and "matches regex" in warned.stdout and "warning" in warned.stderr


@pytest.mark.parametrize("args", [
    ("convert",), ("convert", "x.cql", "--to", "cobol"), ("run",), ("explain", "nosuch.yml"),
    ("convert", "nosuch.cql"), ("frobnicate",), ("run", str(SEED_CARD), "nosuch.ndjson"),
])
def test_bad_invocations_exit_2_without_traceback(args: tuple[str, ...]) -> None:
    assert cqlx(*args).returncode == 2


def test_explain_shows_the_ir() -> None:
    result = cqlx("explain", str(SEED_CARD))
    assert result.returncode == 0
    for words in ("Source: event types ProcessRollup2", "Signals:", "weight 3", "Score: SuspicionScore",
                  "Ladder: Severity = CRITICAL if SuspicionScore >= 6; HIGH if SuspicionScore >= 3; else MEDIUM",
                  "Output fields: timestamp", "Order: SuspicionScore desc (number); keep 200 rows"):
        assert words in result.stdout


def test_check_reports_dialect_and_passes() -> None:
    result = cqlx("check", str(SEED_CARD))
    assert result.returncode == 0
    assert "portability: if() with a filter as its condition" in result.stderr
    assert result.stdout.strip().endswith("ok")


def test_help_has_examples() -> None:
    result = cqlx("--help")
    assert result.returncode == 0 and "cqlx convert rule.yml --to kql" in result.stdout


def test_profiles_lists_each_with_language_and_event_types() -> None:
    result = cqlx("profiles")
    assert result.returncode == 0
    for name in ("mde", "splunk", "sigma", "falcon"):
        assert any(line.startswith(name + " ") for line in result.stdout.splitlines())
    assert "event types: ProcessRollup2" in result.stdout


def test_profiles_show() -> None:
    result = cqlx("profiles", "show", "mde")
    assert result.returncode == 0
    assert "ProcessRollup2: table DeviceProcessEvents" in result.stdout
    assert "CommandLine            -> ProcessCommandLine" in result.stdout
    assert cqlx("profiles", "show", "nosuch").returncode == 2
    sigma = cqlx("profiles", "show", "sigma").stdout
    assert "Rules in Sysmon's field names with no event type" in sigma and "service sysmon" in sigma
    assert re.search(r"^  registry_event +events 12, 13, 14$", sigma, re.MULTILINE), sigma


def test_sigma_through_a_pysigma_backend() -> None:
    from cqlx.conversion import sigma_backends

    if "kusto" not in sigma_backends():
        pytest.skip("pySigma's Kusto backend is not installed (pip install pysigma-backend-kusto)")
    result = cqlx("convert", str(SEED_CARD), "--to", "sigma:kusto")
    assert result.returncode == 0, result.stderr
    assert 'CommandLine matches regex "(-v /:/host' in result.stdout  # still case-sensitive


def test_sigma_backend_missing_is_a_clear_message() -> None:
    result = cqlx("convert", str(SEED_CARD), "--to", "sigma:nosuchbackend")
    assert result.returncode == 2
    assert "no pySigma backend 'nosuchbackend' is installed" in result.stderr


def test_prefilter_gives_the_same_rows_and_accounts_for_every_line() -> None:
    files = [str(SEED_EVENTS), str(SAMPLES / "events" / "malformed.ndjson")]
    fast = cqlx("run", str(SEED_CARD), *files)
    full = cqlx("run", str(SEED_CARD), *files, "--no-prefilter")
    assert fast.returncode == full.returncode == 0
    assert fast.stdout == full.stdout
    import re

    numbers = re.search(r"(\d+) lines read: (\d+) events \((\d+) matched, (\d+) not matched\), (\d+) blank, "
                        r"(\d+) malformed, (\d+) skipped", fast.stderr)
    assert numbers is not None, fast.stderr
    lines, events, matched, not_matched, blank, malformed, skipped = map(int, numbers.groups())
    assert lines == 74 and skipped > 0
    assert lines == events + blank + malformed + skipped and events == matched + not_matched


def test_a_refusal_lists_each_loss_at_its_place_in_the_rule_file(tmp_path: Path) -> None:
    card = tmp_path / "t.yml"
    card.write_text("title: t\nid: x\nquery: |\n  #event_simpleName=ProcessRollup2\n  | CommandLine=x\n  | a=1\n",
                    encoding="utf-8")
    result = cqlx("convert", str(card), "--to", "kql")
    assert result.returncode == 1
    assert f"  - {card}:6:5: detection loss on kql (mde): field a has no mapping" in result.stderr
    assert "line 3, column 3" not in result.stderr

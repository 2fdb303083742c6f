"""What queries are read with besides their text: query parameters (``--param NAME=VALUE``) and
saved searches (``--saved-searches``, ``$name()`` replaced by its body), through the API, the rule
loaders and every CLI command that reads rules, forked batch workers included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cqlx
from cqlx import ir, parse
from cqlx.emit.cql import same_ir
from cqlx.errors import CqlValueError, RuleFileError
from cqlx.options import ParseOptions, load_saved_searches, parse_params
from cqlx.rules import load_rule

P = "#event_simpleName=ProcessRollup2 | "


def cqlx_cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "cqlx", *args], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return result


# ---------------------------------------------------------------- query parameters


@pytest.mark.parametrize(("values", "expected"), [
    (["cmd=whoami"], (("cmd", "whoami"),)),
    (["a=1", "b=x=y", "a=2"], (("a", "2"), ("b", "x=y"))),  # the last value of a name wins
    (["empty="], (("empty", ""),)),
])
def test_parse_params(values: list[str], expected: tuple[tuple[str, str], ...]) -> None:
    assert parse_params(values) == expected


@pytest.mark.parametrize("value", ["cmd", "=x", " =x"])
def test_a_param_without_a_name_or_equals_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="is not NAME=VALUE"):
        parse_params([value])


PARAM_CARD = """title: parameterised
query: |
  #event_simpleName=ProcessRollup2
  | CommandLine = ?cmd
  | select([ComputerName, CommandLine])
tests:
  - name: the parameter's value matches
    event: {"#event_simpleName": ProcessRollup2, ComputerName: h1, CommandLine: whoami}
    match: true
  - name: another command does not
    event: {"#event_simpleName": ProcessRollup2, ComputerName: h2, CommandLine: id}
    match: false
"""


@pytest.fixture
def card(tmp_path: Path) -> Path:
    path = tmp_path / "rules" / "param.yml"
    path.parent.mkdir()
    path.write_text(PARAM_CARD, encoding="utf-8")
    return path


def test_a_rule_parses_with_its_options(card: Path) -> None:
    rule = load_rule(card, ParseOptions(params=(("cmd", "whoami"),)))
    assert ir.Filter(ir.Eq("CommandLine", "whoami")) in rule.parse().steps
    (unset,) = [s.pred for s in load_rule(card).parse().steps if isinstance(s, ir.Filter)]
    assert isinstance(unset, ir.OpaqueTest) and "?cmd has no value" in unset.reason


@pytest.mark.parametrize("command", ["convert", "check", "coverage", "explain"])
def test_every_command_takes_param(card: Path, command: str) -> None:
    extra = ["--to", "kql"] if command in ("convert", "coverage") else []
    given = cqlx_cli(command, str(card), *extra, "--param", "cmd=whoami")
    missing = cqlx_cli(command, str(card), *extra)
    assert given.returncode == 0, given.stderr
    assert "?cmd has no value" not in given.stdout + given.stderr
    if command == "convert":
        assert 'ProcessCommandLine == "whoami"' in given.stdout
        assert missing.returncode == 1 and "?cmd has no value" in missing.stderr
    if command == "explain":
        assert "CommandLine" in given.stdout and "whoami" in given.stdout


def test_run_and_test_take_param(card: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps({"#event_simpleName": "ProcessRollup2", "ComputerName": f"h{i}",
                                          "CommandLine": c}) + "\n" for i, c in enumerate(["whoami", "id"])))
    ran = cqlx_cli("run", str(card), str(events), "--param", "cmd=whoami", "--format", "jsonl")
    assert ran.returncode == 0, ran.stderr
    assert [json.loads(line)["ComputerName"] for line in ran.stdout.splitlines()] == ["h0"]
    tested = cqlx_cli("test", str(card), "--param", "cmd=whoami")
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize("command", ["convert", "run", "check", "test", "coverage", "explain"])
def test_bad_param_syntax_is_exit_2(card: Path, command: str) -> None:
    args = [command, str(card)] + (["events.ndjson"] if command == "run" else [])
    result = cqlx_cli(*args, "--param", "cmd")
    assert result.returncode == 2
    assert "'cmd' is not NAME=VALUE" in result.stderr


def test_forked_workers_get_the_params(card: Path, tmp_path: Path) -> None:
    second = card.parent / "second.cql"
    second.write_text("#event_simpleName=ProcessRollup2 | CommandLine = ?cmd\n", encoding="utf-8")
    out = tmp_path / "out"
    result = cqlx_cli("convert", str(card.parent), "--to", "kql", "--output", str(out), "--jobs", "2",
                      "--param", "cmd=whoami")
    assert result.returncode == 0, result.stderr
    for name in ("param.kql", "second.kql"):
        assert 'ProcessCommandLine == "whoami"' in (out / name).read_text(encoding="utf-8")


# ---------------------------------------------------------------- saved searches

SAVED = {
    "shells": "ImageFileName=/\\/(ba|z)?sh$/ | CommandLine=?pattern",
    "acme/hunting:wrapper": "$shells(pattern=?p) | Tagged := \"yes\"",
    "ping": "$pong()",
    "pong": "$ping()",
    "broken": "CommandLine = ((",
}


@pytest.mark.parametrize(("text", "expected"), [
    ('$shells(pattern="*curl*")', "ImageFileName=/\\/(ba|z)?sh$/ | CommandLine=*curl*"),
    ('$"acme/hunting:wrapper"(p=wget) | select([Tagged])',
     'ImageFileName=/\\/(ba|z)?sh$/ | CommandLine=wget | Tagged := "yes" | select([Tagged])'),
    ("case { $shells(pattern=x) | Hit := 1 ; * }",
     "case { ImageFileName=/\\/(ba|z)?sh$/ | CommandLine=x | Hit := 1 ; * }"),
])
def test_a_known_saved_search_is_its_body(text: str, expected: str) -> None:
    assert same_ir(parse(text, saved_searches=SAVED), parse(expected))


def test_the_calling_querys_params_reach_the_body() -> None:
    assert same_ir(parse("$shells()", params={"pattern": "x"}, saved_searches=SAVED),
                   parse("ImageFileName=/\\/(ba|z)?sh$/ | CommandLine=x"))
    (unset,) = [s.pred for s in parse("$shells()", saved_searches=SAVED).steps
                if isinstance(s, ir.Filter) and isinstance(s.pred, ir.OpaqueTest)]
    assert isinstance(unset, ir.OpaqueTest) and "?pattern has no value" in unset.reason


def test_the_body_points_at_the_call() -> None:
    query = parse(P + '$shells(pattern="*curl*")', saved_searches=SAVED)
    assert {s.span.column for s in query.steps} == {36}
    assert {s.pred.span.column for s in query.steps if isinstance(s, ir.Filter)} == {36}


@pytest.mark.parametrize(("text", "message"), [
    ("$ping()", r"saved search \$ping\(\) calls itself: \$ping\(\) -> \$pong\(\) -> \$ping\(\)"),
    ("$broken()", r"in saved search \$broken\(\) \(line 1, column \d+ of its body\)"),
    ("$shells(x)", "takes its arguments by name"),
])
def test_saved_search_errors(text: str, message: str) -> None:
    with pytest.raises(CqlValueError, match=message):
        parse(text, saved_searches=SAVED)


def test_an_unknown_saved_search_stays_opaque() -> None:
    (step,) = parse("$other()", saved_searches=SAVED).steps
    assert isinstance(step, ir.Opaque) and "body of the saved search is not in the query" in step.reason


def test_canonical_cql_writes_the_body() -> None:
    out = cqlx.convert(P + '$shells(pattern="*curl*")', to="cql", saved_searches=SAVED)
    assert out == "#event_simpleName=ProcessRollup2\n| ImageFileName=/\\/(ba|z)?sh$/\n| CommandLine=*curl*\n"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "package"
    (root / "savedSearches").mkdir(parents=True)
    (root / "manifest.yaml").write_text("name: acme/hunting\nversion: 1.0.0\n", encoding="utf-8")
    (root / "savedSearches" / "shells.yaml").write_text(
        "name: shells\nqueryString: |\n  ImageFileName=/\\/(ba|z)?sh$/\n  | CommandLine=?pattern\n", encoding="utf-8")
    (root / "parsers").mkdir()
    (root / "parsers" / "p.yaml").write_text("name: p\nscript: x\n", encoding="utf-8")  # not a saved search
    return root


def test_load_a_package_directory(package: Path) -> None:
    found = dict(load_saved_searches([package]))
    assert set(found) == {"shells", "acme/hunting:shells"}
    assert found["shells"].startswith("ImageFileName=")


def test_load_yaml_files_with_several_documents(tmp_path: Path) -> None:
    path = tmp_path / "searches.yaml"
    path.write_text("name: a\nqueryString: x=1\n---\nname: b\nqueryString: $a()\n", encoding="utf-8")
    assert load_saved_searches([path]) == (("a", "x=1"), ("b", "$a()"))
    with pytest.raises(RuleFileError, match="does not exist"):
        load_saved_searches([tmp_path / "nowhere"])


def test_cli_saved_searches(package: Path, tmp_path: Path) -> None:
    rule = tmp_path / "rule.cql"
    rule.write_text(P + '$"acme/hunting:shells"(pattern=*curl*) | select([CommandLine])\n', encoding="utf-8")
    converted = cqlx_cli("convert", str(rule), "--to", "spl", "--saved-searches", str(package))
    assert converted.returncode == 0, converted.stderr
    assert '| regex ImageFileName="/(ba|z)?sh$"' in converted.stdout and "curl" in converted.stdout
    unresolved = cqlx_cli("convert", str(rule), "--to", "spl")
    assert unresolved.returncode == 1 and "body of the saved search is not in the query" in unresolved.stderr
    missing = cqlx_cli("convert", str(rule), "--to", "spl", "--saved-searches", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr

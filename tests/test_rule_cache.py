"""``cqlx run`` keeps the rules it compiled (cqlx.cache): a rule run again skips the parser and the
generator; ``cqlx convert`` of one rule keeps its IR, so converting it again skips the parser; a
rule card and a profile are kept as read, so neither command reads YAML again. Nothing that decides
what a rule compiles to (its text, parameters, profile, cqlx's own files) can bring back another
rule's matcher or IR. A damaged, unwritable or disabled cache only costs the compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cqlx import cache
from cqlx.api import compile_rule
from cqlx.options import ParseOptions
from cqlx.rules import load_rule

# One process of `cqlx run`, then whether it imported the parser (Lark) and the generator.
_RUN = """
import sys
from cqlx.cli import main
sys.argv = ["cqlx", "run", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
print("IMPORTED", "lark" in sys.modules, "cqlx.emit.python" in sys.modules, file=sys.stderr)
"""

RULE = 'CommandLine = /docker (run|exec)/i | Level := if(CommandLine = /--privileged/, "high", "low")\n'
EVENTS = [{"CommandLine": "docker run --privileged x"}, {"CommandLine": "DOCKER EXEC y"}, {"CommandLine": "ls"}]


def _run(tmp_path: Path, rule: Path, *options: str, env: dict[str, str] | None = None) -> tuple[list[object], bool]:
    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k != "CQLX_NO_CACHE"}
    environment.update({"XDG_CACHE_HOME": str(tmp_path / "cache"), **(env or {})})
    done = subprocess.run([sys.executable, "-c", _RUN, str(rule), str(events), "-f", "jsonl", *options],
                          capture_output=True, text=True, env=environment, check=False)
    assert "IMPORTED" in done.stderr, done.stderr
    parsed = done.stderr.split("IMPORTED", 1)[1].split()
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return rows, parsed[0] == "True"


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "cqlx").glob("*.rule.pickle"))


def test_a_rule_run_again_is_not_parsed_again(tmp_path: Path) -> None:
    rule = tmp_path / "rule.cql"
    rule.write_text(RULE, encoding="utf-8")
    first, parsed_first = _run(tmp_path, rule)
    assert parsed_first and len(_entries(tmp_path)) == 1
    second, parsed_second = _run(tmp_path, rule)
    assert not parsed_second
    assert second == first == [{"CommandLine": "docker run --privileged x", "Level": "high"},
                               {"CommandLine": "DOCKER EXEC y", "Level": "low"}]


def test_what_decides_the_compile_decides_the_entry(tmp_path: Path) -> None:
    rule = tmp_path / "rule.cql"
    rule.write_text("CommandLine = ?word\n", encoding="utf-8")
    docker, _ = _run(tmp_path, rule, "--param", "word=*docker run*")
    ls, parsed = _run(tmp_path, rule, "--param", "word=ls")
    assert parsed and docker == [EVENTS[0]] and ls == [EVENTS[2]]
    rule.write_text("CommandLine = *EXEC*\n", encoding="utf-8")
    changed, parsed = _run(tmp_path, rule, "--param", "word=ls")
    assert parsed and changed == [EVENTS[1]]
    assert len(_entries(tmp_path)) == 3


def test_a_damaged_entry_is_compiled_again(tmp_path: Path) -> None:
    rule = tmp_path / "rule.cql"
    rule.write_text(RULE, encoding="utf-8")
    expected, _ = _run(tmp_path, rule)
    (entry,) = _entries(tmp_path)
    entry.write_bytes(entry.read_bytes()[:40])
    again, parsed = _run(tmp_path, rule)
    assert parsed and again == expected
    assert _run(tmp_path, rule) == (expected, False)  # and written whole again


def test_no_cache_keeps_nothing(tmp_path: Path) -> None:
    rule = tmp_path / "rule.cql"
    rule.write_text(RULE, encoding="utf-8")
    first, _ = _run(tmp_path, rule, env={"CQLX_NO_CACHE": "1"})
    second, parsed = _run(tmp_path, rule, env={"CQLX_NO_CACHE": "1"})
    assert parsed and first == second and _entries(tmp_path) == []


def test_entries_past_the_limit_go_oldest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CQLX_NO_CACHE", raising=False)
    monkeypatch.setattr(cache, "MAX_RULES", 2)
    for number in range(3):
        cache.save_rule(f"key{number}", ("value", number))
        os.utime(tmp_path / "cache" / "cqlx" / f"key{number}.rule.pickle", ns=(number * 10**9, number * 10**9))
    cache.save_rule("key3", ("value", 3))
    assert [p.name for p in _entries(tmp_path)] == ["key2.rule.pickle", "key3.rule.pickle"]
    assert cache.load_rule("key3") == ("value", 3) and cache.load_rule("key0") is None


def test_cqlx_files_are_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache.rule_key("q")
    monkeypatch.setattr(cache, "_fingerprint", lambda: "another cqlx")
    assert cache.rule_key("q") != before and cache.rule_key("q") == cache.rule_key("q")


def test_the_kept_matcher_is_the_compiled_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: the matcher from the entry and the one compiled afresh have the same query and
    module, and a profile is part of the key."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CQLX_NO_CACHE", raising=False)
    path = tmp_path / "rule.cql"
    path.write_text("#event_simpleName=ProcessRollup2 | CommandLine = /whoami/i\n", encoding="utf-8")
    rule = load_rule(str(path), ParseOptions())
    fresh = compile_rule(rule)
    kept = compile_rule(rule)
    assert (kept.query, kept.source) == (fresh.query, fresh.source) and len(_entries(tmp_path)) == 1
    ecs = compile_rule(rule, "ecs")
    assert ecs.source != fresh.source and len(_entries(tmp_path)) == 2
    assert kept.match({"event_simpleName": "ProcessRollup2", "CommandLine": "WHOAMI"}) is not None


def test_the_grammar_and_the_profiles_are_part_of_the_key() -> None:
    """A source checkout keeps grammar/ and backends/ at its top level, outside the package: an
    edited profile or grammar must compile the rule again."""
    from cqlx.resources import data_path

    kept = cache._fingerprint()
    for path in (data_path("grammar", "cql.lark"), data_path("backends", "mde.yaml"),
                 Path(cache.__file__).with_name("lower.py")):
        assert f"{path}\0{path.stat().st_size}\0{path.stat().st_mtime_ns}" in kept


# One process of `cqlx convert`, then whether it imported the parser (Lark).
_CONVERT = _RUN.replace('"run"', '"convert"').replace(', "cqlx.emit.python" in sys.modules', "")


def _convert(tmp_path: Path, *args: str) -> tuple[str, bool]:
    environment = {k: v for k, v in os.environ.items() if k != "CQLX_NO_CACHE"}
    environment["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-c", _CONVERT, *args], capture_output=True, text=True, env=environment,
                          check=False)
    assert "IMPORTED" in done.stderr, done.stderr
    return done.stdout, done.stderr.split("IMPORTED", 1)[1].split()[0] == "True"


def test_one_rule_converted_again_is_not_parsed_again(tmp_path: Path) -> None:
    rule = tmp_path / "rule.cql"
    rule.write_text(RULE, encoding="utf-8")
    first, parsed_first = _convert(tmp_path, str(rule), "--to", "kql")
    assert parsed_first and "matches regex" in first and len(_entries(tmp_path)) == 1
    second, parsed_second = _convert(tmp_path, str(rule), "--to", "kql")
    assert not parsed_second and second == first
    spl, parsed = _convert(tmp_path, str(rule), "--to", "spl")  # the IR serves every target
    assert not parsed and "regex CommandLine" in spl
    rule.write_text(RULE.replace("exec", "cp"), encoding="utf-8")  # another text: parsed
    changed, parsed = _convert(tmp_path, str(rule), "--to", "kql")
    assert parsed and "cp" in changed and len(_entries(tmp_path)) == 2


def test_a_library_is_parsed_in_process(tmp_path: Path) -> None:
    """A batch of several rules keeps nothing: one parser load serves them all."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.cql").write_text(RULE, encoding="utf-8")
    _, parsed = _convert(tmp_path, str(tmp_path / "a.cql"), str(tmp_path / "b.cql"), "--to", "kql")
    assert parsed and _entries(tmp_path) == []


def test_the_kept_ir_is_the_parsed_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CQLX_NO_CACHE", raising=False)
    path = tmp_path / "rule.cql"
    path.write_text("CommandLine = ?word\n", encoding="utf-8")
    docker = load_rule(str(path), ParseOptions(params=(("word", "docker"),)))
    ls = load_rule(str(path), ParseOptions(params=(("word", "ls"),)))
    assert docker.parse_kept() == docker.parse() == docker.parse_kept()
    assert ls.parse_kept() == ls.parse() != docker.parse()  # the parameters are part of the key
    assert len(_entries(tmp_path)) == 2


# One process of `cqlx convert`, then whether it imported PyYAML, and its exit status.
_CONVERT_YAML = _CONVERT.replace('"lark" in sys.modules', '"yaml" in sys.modules, code')

CARD = """title: Docker with a flag
description: a card
query: |
  #event_simpleName=ProcessRollup2
  | CommandLine = /docker (run|exec)/i
"""


def _convert_yaml(tmp_path: Path, *args: str) -> tuple[str, str, bool, str]:
    """stdout, stderr, whether PyYAML was imported, and the exit status of one ``cqlx convert``."""
    environment = {k: v for k, v in os.environ.items() if k != "CQLX_NO_CACHE"}
    environment["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-c", _CONVERT_YAML, *args], capture_output=True, text=True,
                          env=environment, check=False)
    assert "IMPORTED" in done.stderr, done.stderr
    head, tail = done.stderr.split("IMPORTED", 1)
    imported, code = tail.split()[:2]
    return done.stdout, head, imported == "True", code


def test_a_card_and_its_profile_converted_again_read_no_yaml(tmp_path: Path) -> None:
    card = tmp_path / "rule.yml"
    card.write_text(CARD, encoding="utf-8")
    profile = tmp_path / "mine.yaml"
    profile.write_text("extends: mde\nname: mine\n", encoding="utf-8")
    args = (str(card), "--to", "kql", "--profile", str(profile))
    first, _, read_first, code = _convert_yaml(tmp_path, *args)
    assert read_first and code == "0" and "DeviceProcessEvents" in first
    again, _, read_again, code = _convert_yaml(tmp_path, *args)
    assert not read_again and code == "0" and again == first
    assert len(list((tmp_path / "cache" / "cqlx").glob("*.profile.pickle"))) == 2  # mine.yaml and mde
    card.write_text(CARD.replace("exec", "cp"), encoding="utf-8")  # another card: read again
    changed, _, read, _ = _convert_yaml(tmp_path, *args)
    assert read and "cp" in changed and changed != first
    profile.write_text("extends: mde\nname: mine\ntitle: another\n", encoding="utf-8")  # another profile
    _, _, read, code = _convert_yaml(tmp_path, *args)
    assert read and code == "0"


def test_a_card_read_again_keeps_its_positions(tmp_path: Path) -> None:
    """What is kept of a card places the query's errors as a fresh read does."""
    card = tmp_path / "rule.yml"
    card.write_text(CARD.replace("= /docker", "= ) /docker", 1), encoding="utf-8")  # a syntax error
    errors = [_convert_yaml(tmp_path, str(card), "--to", "spl")[1:] for _ in range(2)]
    assert errors[0][0] == errors[1][0] and f"{card}:5:" in errors[0][0]
    assert [code for _, _, code in errors] == ["2", "2"] and not errors[1][1]


def test_a_broken_card_is_reported_each_time(tmp_path: Path) -> None:
    card = tmp_path / "rule.yml"
    card.write_text("title: x\nquery: [unclosed\n", encoding="utf-8")
    runs = [_convert_yaml(tmp_path, str(card), "--to", "spl") for _ in range(2)]
    assert runs[0][1] == runs[1][1] and "not valid YAML" in runs[0][1]
    assert [code for *_, code in runs] == ["2", "2"] and all(read for _, _, read, _ in runs)


def test_a_library_keeps_its_profiles_not_its_rules(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.yml").write_text(CARD, encoding="utf-8")
    _, _, read, code = _convert_yaml(tmp_path, str(tmp_path / "a.yml"), str(tmp_path / "b.yml"), "--to", "spl")
    assert read and code == "0" and _entries(tmp_path) == []
    assert [p.suffixes for p in (tmp_path / "cache" / "cqlx").glob("*.pickle")] == [[".profile", ".pickle"]]

"""The Python matcher is the executable reference semantics of CQL (SEMANTICS.md): a table of
query, event → expected row (None: dropped)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from cqlx import compile_matcher, convert

SEMANTICS: list[tuple[str, dict[str, Any], bool]] = [
    # equality: whole value, case-sensitive
    ("f = abc", {"f": "abc"}, True),
    ("f = abc", {"f": "ABC"}, False),
    ("f = abc", {"f": "abcd"}, False),
    ('f = "a b"', {"f": "a b"}, True),
    ("f = 443", {"f": 443}, True),
    # globs are anchored and case-sensitive
    ("f = *abc*", {"f": "xxabcxx"}, True),
    ("f = *abc*", {"f": "xxABCxx"}, False),
    ("f = abc*", {"f": "xabc"}, False),
    ("f = *.exe", {"f": "a.exe"}, True),
    ("f = *.exe", {"f": "a.exe.bak"}, False),
    ("f = *a*", {"f": "x\na"}, True),
    # presence
    ("f = *", {"f": ""}, True),
    ("f = *", {}, False),
    ("f = *", {"f": None}, False),
    ("f != *", {}, True),
    ('f = ""', {"f": ""}, True),
    ('f = ""', {}, False),
    # negation is true when the field is missing
    ("f != abc", {}, True),
    ("f != abc", {"f": "abc"}, False),
    ("not f = abc", {}, True),
    ("!f = /x/", {}, True),
    ("f != /x/", {"f": "axb"}, False),
    # regex: unanchored, case-sensitive unless i
    ("f = /b.c/", {"f": "aabxcdd"}, True),
    ("f = /BXC/", {"f": "abxcd"}, False),
    ("f = /BXC/i", {"f": "abxcd"}, True),
    ("f = /^a$/m", {"f": "x\na\ny"}, True),
    ("f = /^a$/", {"f": "x\na\ny"}, False),
    ("f = /a.b/", {"f": "a\nb"}, False),
    ("f = /a.b/d", {"f": "a\nb"}, True),
    ("f = /\\/bin\\/sh$/", {"f": "/usr/bin/sh"}, True),
    ("f = /x/", {}, False),
    ("f = /1/", {"f": 123}, True),
    ("f = /x/", {"f": ["x"]}, False),
    # numbers
    ("f > 5", {"f": "6"}, True),
    ("f > 5", {"f": 6}, True),
    ("f > 5", {"f": "abc"}, False),
    ("f > 5", {}, False),
    ("f <= 5.5", {"f": "5.5"}, True),
    # precedence: OR binds tighter than AND
    ("a=1 b=2 or c=3", {"a": "1", "c": "3"}, True),
    ("a=1 b=2 or c=3", {"b": "2", "c": "3"}, False),
    ("a=1 and b=2 or c=3", {"a": "1", "b": "2"}, True),
    ("not a=1 or b=2", {"a": "1", "b": "2"}, True),
    # tags read as #name, then name
    ("#event_simpleName=ProcessRollup2", {"event_simpleName": "ProcessRollup2"}, True),
    ("#event_simpleName=ProcessRollup2", {"#event_simpleName": "ProcessRollup2"}, True),
    ("#event_simpleName=ProcessRollup2", {"event_simpleName": "processrollup2"}, False),
    # in() and test()
    ('in(f, values=["a", "b"])', {"f": "b"}, True),
    ('in(f, values=["a", "b"])', {"f": "B"}, False),
    ('in(f, values=["a", "b"], ignoreCase=true)', {"f": "B"}, True),
    ("in(f, values=[*.exe, x])", {"f": "a.exe"}, True),
    ("!in(f, values=[a])", {}, True),
    ("test(a == b)", {"a": "1", "b": "1"}, True),
    ("test(a == b)", {"a": "1"}, False),
    ("test(a > 2)", {"a": "3"}, True),
    # free text
    ("whoami", {"CommandLine": "run whoami now"}, True),
    ("whoami", {"CommandLine": "WHOAMI"}, False),
    ("/who/i", {"x": {"y": "WHO"}}, True),
    # case: first branch that keeps the event wins; none drops it
    ("case { f=a | x := 1 ; f=b | x := 2 }", {"f": "c"}, False),
    ("case { f=a | x := 1 ; * | x := 0 } | x = 0", {"f": "c"}, True),
    ("case { f=a | x := 1 ; * | x := 0 } | x = 1", {"f": "a"}, True),
]


@pytest.mark.parametrize(("text", "event", "matches"), SEMANTICS)
def test_reference_semantics(text: str, event: dict[str, Any], matches: bool) -> None:
    assert (compile_matcher(text).match(event) is not None) is matches


ASSIGNMENTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("x := a + b", {"a": "2", "b": 3}, {"x": 5}),
    ("x := a * 2 - 1", {"a": "4"}, {"x": 7}),
    ("x := a / 4", {"a": "2"}, {"x": 0.5}),
    ("x := a + b", {"a": "2"}, {}),  # null: x is not set
    ("x := lower(a)", {"a": "AbC"}, {"x": "abc"}),
    ('x := if(a = /z/i, "Y", "N")', {"a": "Z"}, {"x": "Y"}),
    ('x := if(a = /z/i, "Y", "N")', {}, {"x": "N"}),
    ('x := if(a >= 6, then="C", else=if(a >= 3, then="H", else="M"))', {"a": 4}, {"x": "H"}),
    ("lower(a)", {"a": "AB"}, {"_lower": "ab"}),
    ("lower(a, as=y)", {"a": "AB"}, {"y": "ab"}),
]


@pytest.mark.parametrize(("text", "event", "fields"), ASSIGNMENTS)
def test_assignments(text: str, event: dict[str, Any], fields: dict[str, Any]) -> None:
    row = compile_matcher(text).match(event)
    assert row is not None
    produced = {k: v for k, v in row.items() if k not in event}
    assert produced == fields


def test_select_keeps_fields_in_order_and_leaves_out_missing() -> None:
    row = compile_matcher("select([c, a, missing])").match({"a": 1, "b": 2, "c": 3})
    assert row is not None and list(row.items()) == [("c", 3), ("a", 1)]


def test_sort_default_is_descending_numeric_and_keeps_200() -> None:
    events = [{"n": str(i)} for i in range(500)]
    rows = compile_matcher("sort(n)").run(events)
    assert len(rows) == 200
    assert [r["n"] for r in rows[:3]] == ["499", "498", "497"]


def test_sort_missing_values_last_and_ties_stable() -> None:
    events = [{"id": 1}, {"id": 2, "n": 1}, {"id": 3, "n": 5}, {"id": 4, "n": 1}]
    rows = compile_matcher("sort(n, order=asc)").run(events)
    assert [r["id"] for r in rows] == [2, 4, 3, 1]


def test_table_sorts_by_timestamp_before_projecting() -> None:
    events = [{"@timestamp": 1, "a": "x"}, {"@timestamp": 3, "a": "y"}, {"@timestamp": 2, "a": "z"}]
    rows = compile_matcher("table([a], limit=2)").run(events)
    assert rows == [{"a": "y"}, {"a": "z"}]


def test_seed_matcher_matches_every_expected_event(seed_text: str, seed_events: list[dict[str, Any]],
                                                   seed_expected: list[dict[str, Any]]) -> None:
    matcher = compile_matcher(seed_text)
    flags = ("PrivilegedContainer", "HostMount", "ContainerExec", "SecretsAccess", "ContainerEscape")
    for event, expected in zip(seed_events, seed_expected, strict=True):
        row = matcher.match(event)
        assert (row is not None) == expected["match"], expected
        if row is not None:
            assert row["SuspicionScore"] == expected["SuspicionScore"], expected
            assert row["Severity"] == expected["Severity"], expected
            assert {f: row[f] for f in flags} == {f: expected[f] for f in flags}
            assert list(row)[:2] == ["timestamp", "ComputerName"]


def test_seed_run_sorted_by_score_descending(seed_text: str, seed_events: list[dict[str, Any]],
                                            expected_by_host: dict[str, tuple[int, str]]) -> None:
    rows = compile_matcher(seed_text).run(seed_events)
    assert {r["ComputerName"]: (r["SuspicionScore"], r["Severity"]) for r in rows} == expected_by_host
    scores = [r["SuspicionScore"] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_standalone_module_imports_fresh_and_agrees(tmp_path: Path, seed_text: str,
                                                   seed_events: list[dict[str, Any]]) -> None:
    source = convert(seed_text, to="python")
    path = tmp_path / "seed_matcher.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("seed_matcher_fresh", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "cqlx" not in module.__dict__  # standard library only
    assert module.run(seed_events) == compile_matcher(seed_text).run(seed_events)
    imported = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imported <= set(sys.stdlib_module_names)


def test_hostile_literals_enter_code_only_through_repr() -> None:
    hostile = "x'); __import__('os').system('echo pwned'); ('"
    text = f'f = "{hostile}" | y := "{hostile}"'
    matcher = compile_matcher(text)
    row = matcher.match({"f": hostile})
    assert row is not None and row["y"] == hostile
    assert matcher.match({"f": "x"}) is None


def test_generated_code_is_deterministic(seed_text: str) -> None:
    assert convert(seed_text, to="python") == convert(seed_text, to="python")


def test_in_process_matchers_run_the_runtime_each_in_its_own_namespace() -> None:
    """compile_matcher() runs cqlx.runtime's compiled code in each matcher's namespace rather than
    compiling the module's copy of it: the definitions are the module's, the state is not shared."""
    from cqlx import runtime
    from cqlx.emit.python_module import runtime_source

    first, second = compile_matcher("f=/a+b/"), compile_matcher("f=/a+b/")
    first.limit_regex_time(0.5)
    assert second.regex_time_limit == runtime.REGEX_TIME_LIMIT[0] != 0.5
    first.namespace["LOOKUPS"]["x.csv"] = []
    assert "x.csv" not in second.namespace["LOOKUPS"] and "x.csv" not in runtime.LOOKUPS
    assert first.namespace["search"].__globals__ is first.namespace
    module: dict[str, Any] = {}
    exec(compile(runtime_source(), "<runtime copy>", "exec"), module)
    defined = {name for name in module if not name.startswith("__")}
    assert defined <= set(first.namespace)
    assert first.match({"f": "xaab"}) == {"f": "xaab"} and first.match({"f": "b"}) is None

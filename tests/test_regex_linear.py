"""The matcher's regexes: RE2 where a plan has exactly ``re``'s meaning, ``re`` bounded in time
otherwise (issue 8, ReDoS). The property test is the proof that a plan means the same: for
generated patterns and values full of the characters where the engines differ (``$`` before a
final newline, the Kelvin sign and long s under case folding, the vertical tab in ``\\s``), the
RE2 path and ``re`` agree on every value."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cqlx
from cqlx import runtime
from cqlx.api import RegexTimeoutError
from cqlx.emit.python import re2_compiles
from cqlx.lint import regex_engine_notes
from cqlx.regexes import glob_plan, glob_to_regex, linear_plan, python_flags, to_python

ROOT = Path(__file__).resolve().parent.parent

ATOMS = ["a", "b", "k", "K", "s", "S", "1", " ", "\\s", "\\S", "\\d", "\\w", "\\W", "\\b", ".", "$", "^",
         "[a-c]", "[^\\s]", "[\\sk]", "\\Z", "\\z", "\\n", "é", "\\.", "[Kk]"]
VALUES = st.text(alphabet="aAbBkKsS\u212a\u017f \n\x0b\t\u00e9\u00c91_.", max_size=12)


@st.composite
def patterns(draw: st.DrawFn, depth: int = 2) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        if depth and draw(st.integers(0, 4)) == 0:
            inner = draw(patterns(depth - 1))
            alt = draw(patterns(depth - 1)) if draw(st.booleans()) else None
            part = f"({inner}|{alt})" if alt else f"(?:{inner})"
        else:
            part = draw(st.sampled_from(ATOMS))
        if part not in ("^", "$", "\\b", "\\Z", "\\z") and draw(st.integers(0, 3)) == 0:
            part += draw(st.sampled_from(["*", "+", "?", "{1,2}", "*?"]))
        parts.append(part)
    prefix = draw(st.sampled_from(["", "", "(?i)", "(?s)"])) if depth == 2 else ""
    return prefix + "".join(parts)


def _pair(pattern: str, flags: str) -> tuple[runtime.Regex, runtime.Regex] | None:
    plan = linear_plan(pattern, flags)
    if plan is None or not re2_compiles(plan.pattern):
        return None
    python = to_python(pattern)
    try:
        re.compile(python, python_flags(flags))
    except re.error:
        return None  # the emitter refuses what re cannot compile
    linear = runtime.compile_regex(python, python_flags(flags), plan.pattern, plan.ascii_only, plan.vertical_tab)
    assert linear.linear is not None
    return linear, runtime.compile_regex(python, python_flags(flags))


@settings(max_examples=400, deadline=None)
@given(patterns(), st.sampled_from(["", "i", "m", "d", "im", "id"]), st.lists(VALUES, min_size=1, max_size=6))
def test_linear_plan_means_what_re_means(pattern: str, flags: str, values: list[str]) -> None:
    pair = _pair(pattern, flags)
    if pair is None:
        return
    linear, python = pair
    for value in values:
        assert linear.search(value) == python.search(value), (pattern, flags, value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab*.\\$(K\u212a\n", max_size=6), min_size=1, max_size=3), st.booleans(),
       st.lists(st.text(alphabet="ab.\\$(kK\u212a\n", max_size=8), min_size=1, max_size=6))
def test_glob_plan_means_what_re_means(globs: list[str], ignore_case: bool, values: list[str]) -> None:
    plan = glob_plan(tuple(globs), ignore_case)
    if plan is None:
        assert ignore_case
        return
    python = "(?:" + "|".join(glob_to_regex(g, "\\Z", dotall=False) for g in globs) + ")"
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    linear = runtime.compile_regex(python, flags, plan.pattern, plan.ascii_only, plan.vertical_tab)
    reference = runtime.compile_regex(python, flags)
    for value in values:
        assert linear.search(value) == reference.search(value), (globs, value)


@pytest.mark.parametrize(("pattern", "flags", "linear"), [
    ("foo$", "", True),  # $ before a final newline, as re
    ("(?:a$|b$)", "", True),
    ("a$|b", "", True),
    ("\\Z(?:a*)\\W", "", False),  # hypothesis finding: \W after the anchor can match the final newline
    ("(a$|c)d", "", False),
    ("(a$)?b", "", False),
    ("(?<name>x+)y", "", True),
    ("k", "i", True),  # ASCII values only: RE2 folds the Kelvin sign into k
    ("é", "i", False),  # folding beyond ASCII: the engines' tables differ
    ("a(?=b)", "", False),
    ("(a)\\1", "", False),
    ("a{,3}", "", False),  # Python reads {0,3}; RE2 the text
    ("[[:alpha:]]", "", False),
    ("(?x) a", "", False),
    ("(?m:^a)", "", False),
])
def test_which_patterns_have_a_linear_plan(pattern: str, flags: str, linear: bool) -> None:
    assert (linear_plan(pattern, flags) is not None) == linear


def test_the_dollar_and_vertical_tab_cases() -> None:
    pair = _pair("foo$", "")
    assert pair is not None
    assert pair[0].search("a foo\n") and not pair[0].search("a foo\n\n")
    pair = _pair("a\\sb", "")
    assert pair is not None and pair[0].vertical_tab
    assert pair[0].search("a\x0bb")  # Python's ASCII \s has \v; RE2's does not, so re decides


CATASTROPHIC = "CommandLine=/^(a|a?)+\\1$/"  # a backreference: RE2 cannot run it
HOSTILE = {"CommandLine": "a" * 40 + "!"}


def test_a_catastrophic_regex_on_a_hostile_event_is_bounded() -> None:
    """The search is interrupted (how fast is measured in bench/redos.py, not asserted here)."""
    matcher = cqlx.compile_matcher(CATASTROPHIC)
    assert matcher.regex_time_limit == 0.05
    with pytest.raises(RegexTimeoutError, match="ms limit"):
        matcher.match(HOSTILE)
    counts: dict[str, int] = {}
    rows = matcher.run([HOSTILE, {"CommandLine": "aa"}], counts)
    assert rows == [{"CommandLine": "aa"}]
    assert counts == {"timed_out": 1, "matched": 1}
    matcher.limit_regex_time(0)  # no limit: a value short enough to finish still matches
    assert matcher.match({"CommandLine": "aaaa"}) is not None


def test_catastrophic_nested_quantifier_runs_on_re2() -> None:
    matcher = cqlx.compile_matcher("CommandLine=/^(a+)+$/")  # exponential on re; linear on RE2
    regexes = [v for v in matcher.namespace.values() if isinstance(v, matcher.namespace["Regex"])]
    assert regexes and all(r.linear is not None for r in regexes)
    matcher.limit_regex_time(0)  # unbounded: only RE2 can answer this in time
    assert matcher.match({"CommandLine": "a" * 100_000 + "!"}) is None
    assert matcher.match({"CommandLine": "a" * 100}) is not None


def test_cli_counts_undecided_events(tmp_path: Path) -> None:
    rule = tmp_path / "r.cql"
    rule.write_text(CATASTROPHIC + "\n", encoding="utf-8")
    events = tmp_path / "e.ndjson"
    events.write_text("\n".join([json.dumps(HOSTILE), json.dumps({"CommandLine": "aa"}), "{bad", ""]) + "\n",
                      encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cqlx", "run", str(rule), str(events), "--format", "jsonl",
                           "--regex-timeout", "20"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['{"CommandLine": "aa"}']
    assert "4 lines read: 2 events (1 matched, 0 not matched, 1 undecided), 1 blank, 1 malformed" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_flags_backtracking_regexes() -> None:
    query = cqlx.parse("CommandLine=/(?<=x)y/ ImageFileName=/^[a-z]+\\.exe$/i")
    notes = regex_engine_notes(query)
    assert len(notes) == 1
    span, note = notes[0]
    assert (span.line, span.column) == (1, 1) and "lookbehind" in note

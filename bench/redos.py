#!/usr/bin/env python3
"""Catastrophic regexes against hostile events: how long the Python matcher takes (issue 8).

Two rules: one RE2 can run (``^(a+)+$``, exponential on a backtracking engine, linear on RE2) and
one it cannot (``^(a|a?)+\\1$``, a backreference, which runs on Python's ``re`` under the matcher's
time limit). Each is timed whole (compile and match) through the API, and through ``cqlx run`` on
a file of hostile events, next to plain ``re`` on the same pattern with shorter values (its time
doubles with each character, so the full value would not finish). Prints a table; run with the
project's venv: ``.venv/bin/python bench/redos.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cqlx
from cqlx.api import RegexTimeoutError

RULES = {
    "nested quantifier (RE2)": ("CommandLine=/^(a+)+$/", r"^(a+)+$"),
    "backreference (re, bounded)": ("CommandLine=/^(a|a?)+\\1$/", r"^(a|a?)+\1$"),
}
HOSTILE = "a" * 5_000 + "!"


def api_ms(rule: str) -> tuple[float, str]:
    start = time.perf_counter()
    matcher = cqlx.compile_matcher(rule)
    try:
        outcome = "no match" if matcher.match({"CommandLine": HOSTILE}) is None else "match"
    except RegexTimeoutError:
        outcome = "undecided (time limit)"
    return (time.perf_counter() - start) * 1000, outcome


def cli_ms(rule: str, directory: Path) -> float:
    path = directory / "rule.cql"
    path.write_text(rule + "\n", encoding="utf-8")
    events = directory / "events.ndjson"
    events.write_text("".join(json.dumps({"CommandLine": HOSTILE, "n": i}) + "\n" for i in range(10)), encoding="utf-8")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cqlx", "run", str(path), str(events), "--format", "jsonl"],
                   capture_output=True, check=True)
    return (time.perf_counter() - start) * 1000


def plain_re_ms(pattern: str, length: int) -> float:
    compiled = re.compile(pattern)
    start = time.perf_counter()
    compiled.search("a" * length + "!")
    return (time.perf_counter() - start) * 1000


def main() -> None:
    cqlx.compile_matcher("CommandLine=/x/").match({"CommandLine": "x"})  # imports, grammar tables: once
    print(f"{'rule':30} {'API, one event':>16} {'outcome':>24} {'cqlx run, 10 events':>20}  "
          "plain re: ms by value length")
    with tempfile.TemporaryDirectory() as directory:
        for name, (rule, pattern) in RULES.items():
            api, outcome = api_ms(rule)
            cli = cli_ms(rule, Path(directory))
            growth = ", ".join(f"{n}: {plain_re_ms(pattern, n):.0f}" for n in (16, 18, 20, 22))
            print(f"{name:30} {api:13.1f} ms {outcome:>24} {cli:17.0f} ms  {growth}")
    print(f"(the hostile value is {len(HOSTILE):,} characters; the API column is compile + match after one "
          "warm-up call; cqlx run's includes starting Python)")


if __name__ == "__main__":
    main()

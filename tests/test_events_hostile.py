"""Hostile event files (issue 8): every line is accounted for, whatever it holds.

A 10 MB line, JSON nested 5,000 deep, invalid UTF-8, JSON that is not an object, a truncated line,
a lone surrogate escape, arrays and objects where the rule tests strings, blank lines: each is an
event, blank or malformed, and ``matched + not matched + undecided = events`` and
``events + blank + malformed + skipped = lines`` in every reading mode."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "samples" / "rules" / "container_cli_api.yml"

P = {"#event_simpleName": "ProcessRollup2", "event_platform": "Lin"}
LINES: list[bytes] = [
    json.dumps({**P, "CommandLine": "docker run --privileged " + "A" * 10_000_000,
                "ImageFileName": "/usr/bin/docker", "ComputerName": "big"}).encode(),
    b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    json.dumps({**P, "CommandLine": 5, "ImageFileName": ["/usr/bin/docker"]}).encode(),
    json.dumps({**P, "CommandLine": {"x": "docker run"}, "ImageFileName": None}).encode(),
    b'\xff\xfe{"bad": "utf8"}',
    b"[1, 2]",
    b'"just a string"',
    b'{"truncated": ',
    b"",
    b"   ",
    json.dumps({**P, "CommandLine": "docker exec -it c sh", "ImageFileName": "/usr/bin/docker",
                "ComputerName": "small"}).encode(),
    b'{"CommandLine": "docker run \\ud800"}',
    b"\x00\x00\x00",
]
SUMMARY = re.compile(r"(\d+) lines read: (\d+) events \((\d+) matched, (\d+) not matched(?:, (\d+) undecided)?\), "
                     r"(\d+) blank, (\d+) malformed(?:, (\d+) skipped)?")


@pytest.fixture(scope="module")
def hostile_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "hostile.ndjson"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cqlx", "run", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", [[], ["--no-prefilter"], ["--jobs", "2"], ["--profile", "falcon"]])
def test_every_line_is_accounted_for(hostile_file: Path, mode: list[str]) -> None:
    done = _run(str(SEED), str(hostile_file), "--format", "jsonl", *mode)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    found = SUMMARY.search(done.stderr)
    assert found, done.stderr
    lines, events, matched, not_matched, undecided, blank, malformed, skipped = (int(x or 0) for x in found.groups())
    assert lines == len(LINES)
    assert events + blank + malformed + skipped == lines
    assert matched + not_matched + undecided == events
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["ComputerName"] for r in rows) == ["big", "small"]
    assert matched == 2
    if not skipped:  # every line classified: the exact split
        assert (events, blank, malformed) == (4, 2, 7)
        assert "nested deeper than the parser's limit" in done.stderr
        assert "not UTF-8" in done.stderr
        assert "2 events with an array or object in a field the rule tests" in done.stderr


def test_strict_stops_at_the_first_malformed_line(hostile_file: Path) -> None:
    done = _run(str(SEED), str(hostile_file), "--strict")
    assert done.returncode == 2
    assert f"{hostile_file}:2: malformed event line: JSON nested deeper" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_10_mb_line_is_read_in_flat_memory(hostile_file: Path) -> None:
    """The matcher holds one line at a time: the peak stays near the size of the longest line."""
    code = ("import resource, sys; from cqlx.cli import main; sys.argv = ['cqlx', 'run', sys.argv[1], sys.argv[2], "
            "'--format', 'jsonl']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(SEED), str(hostile_file)], capture_output=True, text=True,
                          timeout=120)
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    assert peak_kb < 400_000, f"peak RSS {peak_kb} KB for a 10 MB line"

"""The literal prefilter: what it requires, and that it never drops a line that could match."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cqlx import compile_matcher, parse
from cqlx.events import EventStats
from cqlx.prefilter import build, regex_need
from cqlx.scan import scan_events
from tests.test_agreement import EVENTS, FILTERS, P

NEEDS = [
    ("docker|kubectl", "", (b"docker", b"kubectl"), False),
    ("\\/(docker|ctr)$", "i", (b"ctr", b"docker"), True),
    ("abc\\d+def", "", (b"abc",), False),
    ("(abc|de)?fgh", "", (b"fgh",), False),
    ("[xy]abc", "i", (b"xabc", b"yabc"), True),
    ("chroot /host", "i", (b"chroot ",), True),  # cut at "/": JSON may write it \/
    ("a.*b", "", None, False),
    ("(?i)Hello", "", None, False),  # inline flags: no prefilter rather than a wrong one
    ("x?y?", "", None, False),
    ("caf\u00e9s", "", (b"caf",), False),  # non-ASCII may be \u-escaped: only the ASCII piece is required
]


@pytest.mark.parametrize(("pattern", "flags", "literals", "folded"), NEEDS)
def test_regex_needs(pattern: str, flags: str, literals: tuple[bytes, ...] | None, folded: bool) -> None:
    need = regex_need(pattern, flags)
    if literals is None:
        assert need is None
    else:
        assert need is not None and need.literals == literals and need.folded is folded


def _encodings(event: dict[str, Any]) -> list[str]:
    plain = json.dumps(event, ensure_ascii=False)
    return [plain, json.dumps(event), plain.replace("/", "\\/"),
            # every letter of the values spelled as a \u escape: still kept
            json.dumps({k: "".join(f"\\u{ord(c):04x}" for c in v) if isinstance(v, str) else v
                        for k, v in event.items()}).replace("\\\\u", "\\u")]


@pytest.mark.parametrize("cql", [*FILTERS, "CommandLine = /chroot \\/host/i", "CommandLine = *whoami*"])
def test_prefilter_never_drops_a_match(tmp_path: Path, cql: str) -> None:
    text = P + cql
    matcher = compile_matcher(text)
    path = tmp_path / "events.ndjson"
    lines = [line for event in EVENTS for line in _encodings(event)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parsed = [json.loads(line) for line in lines]
    expected = [e for e in parsed if matcher.match(e) is not None]
    stats = EventStats()
    kept = list(scan_events([str(path)], stats, build(parse(text))))
    assert [e for e in kept if matcher.match(e) is not None] == expected
    assert stats.lines == len(lines) == stats.events + stats.skipped + stats.blank + stats.malformed


def test_seed_prefilter_skips_most_lines(seed_text: str, seed_events: list[dict[str, Any]], tmp_path: Path) -> None:
    noise = [{"#event_simpleName": "ProcessRollup2", "ComputerName": f"w{i}", "ImageFileName": "/usr/bin/python3",
              "CommandLine": f"python3 -m http.server {8000 + i}"} for i in range(200)]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in [*seed_events, *noise]) + "\n", encoding="utf-8")
    stats = EventStats()
    kept = list(scan_events([str(path)], stats, build(parse(seed_text))))
    matcher = compile_matcher(seed_text)
    assert sorted(r["ComputerName"] for r in matcher.run(kept)) == sorted(
        r["ComputerName"] for r in matcher.run(seed_events))
    assert stats.skipped >= 200


def test_jobs_split_the_file_and_give_the_same_rows(tmp_path: Path, seed_text: str,
                                                     seed_events: list[dict[str, Any]]) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in seed_events * 40), encoding="utf-8")
    query = parse(seed_text)
    one, two = EventStats(), EventStats()
    serial = list(scan_events([str(path)], one, build(query)))
    parallel = list(scan_events([str(path)], two, build(query), jobs=2))
    assert parallel == serial
    assert (one.lines, one.events, one.skipped) == (two.lines, two.events, two.skipped)
    assert one.lines == 2400

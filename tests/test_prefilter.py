"""The literal prefilter: what it requires, and that it never drops a line that could match, with
each scanning engine (Hyperscan, RE2) and each way of reading (mapped file, stream, --jobs)."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqlx import compile_matcher, parse
from cqlx import scan as scan_module
from cqlx.errors import CqlError
from cqlx.events import EventStats
from cqlx.prefilter import build, regex_need
from cqlx.scan import engine, scan_events
from tests.test_agreement import EVENTS, FILTERS, P

try:
    import hyperscan  # noqa: F401

    HAVE_HYPERSCAN = True
except ImportError:  # pragma: no cover - the package has no wheel for this platform
    HAVE_HYPERSCAN = False

ENGINES = [pytest.param("hyperscan", marks=pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan not installed")),
           "re2"]

NEEDS = [
    ("docker|kubectl", "", (b"docker", b"kubectl"), False),
    # anchored at the end: the value's closing quote follows (or an escaped final newline)
    ("\\/(docker|ctr)$", "i", (b'ctr"', b"ctr\\n", b'docker"', b"docker\\n"), True),
    ("abc\\d+def", "", (b"abc",), False),
    ("(abc|de)?fgh", "", (b"fgh",), False),
    ("[xy]abc", "i", (b"xabc", b"yabc"), True),
    ("chroot /host", "i", (b"chroot ",), True),  # cut at "/": JSON may write it \/
    ("a.*b", "", None, False),
    ("(?i)Hello", "", None, False),  # inline flags: no prefilter rather than a wrong one
    ("x?y?", "", None, False),
    ("caf\u00e9s", "", (b"caf",), False),  # non-ASCII may be \u-escaped: only the ASCII piece is required
    ("^abc", "", (b'"abc',), False),
    ("^abc", "m", (b'"abc', b"\\nabc"), False),  # multi-line: also right after a newline in the value
    ("abc\\z", "", (b'abc"',), False),  # CQL's \z is the very end
    ("abc\\Z", "", (b"abc",), False),  # Java's \Z (before a final newline too) is a lookahead to Python
    ("^a$|bcd$", "", (b'"a"', b'"a\\n', b"bcd\"", b"bcd\\n"), False),
    ("^x/abc$", "", (b"abc\"", b"abc\\n"), False),  # the piece touching the end keeps its quote
    ("rue$", "", (b"rue",), False),  # the text of `true` has no quotes: no anchor
    ("^-12$", "", None, False),  # a number
    ("^fals", "i", (b"fals",), True),
]


@pytest.mark.parametrize(("pattern", "flags", "literals", "folded"), NEEDS)
def test_regex_needs(pattern: str, flags: str, literals: tuple[bytes, ...] | None, folded: bool) -> None:
    need = regex_need(pattern, flags)
    if literals is None:
        assert need is None
    else:
        assert need is not None and need.literals == literals and need.folded is folded


PRED_NEEDS = [
    ('a = "/usr/bin/docker"', (b'docker"',), False),
    ("a = *docker", (b'docker"',), False),
    ("a = docker*", (b'"docker',), False),
    ('a = "true"', (b"true",), False),  # the boolean true is the text "true" too
    ('in(a, values=["root", "dev"])', (b'"dev"', b'"root"'), False),
    # Unicode case folding (U+212A is k, U+017F is s, U+0131 and U+0130 are i): cut at k, s and i
    ('in(a, values=["podman"], ignoreCase=true)', (b'"podman"',), True),
    ('in(a, values=["docker"], ignoreCase=true)', (b'"doc',), True),
    ('in(a, values=["kubectl"], ignoreCase=true)', (b'ubectl"',), True),
    ("a = /docker/i", (b"docker",), True),  # a regex folds ASCII only (re.ASCII)
]


@pytest.mark.parametrize(("cql", "literals", "folded"), PRED_NEEDS)
def test_predicate_needs(cql: str, literals: tuple[bytes, ...] | None, folded: bool) -> None:
    needs = build(parse(cql)).needs
    if literals is None:
        assert needs == ()
    else:
        assert len(needs) == 1 and needs[0].literals == literals and needs[0].folded is folded


def _escaped(value: str) -> str:
    """Every character of ``value`` as a \\u escape, as it sits between the quotes of a JSON string."""
    return "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else json.dumps(c)[1:-1] for c in value)


def _encodings(event: dict[str, Any]) -> list[str]:
    plain = json.dumps(event, ensure_ascii=False)
    return [plain, json.dumps(event), plain.replace("/", "\\/"),
            # every letter of the values spelled as a \u escape: still kept
            "{" + ", ".join(f"{json.dumps(k)}: " + (f'"{_escaped(v)}"' if isinstance(v, str) else json.dumps(v))
                            for k, v in event.items()) + "}"]


EXTRA_EVENTS = [
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "k1", "ImageFileName": "/usr/bin/doc\u212aer",
     "CommandLine": "Doc\u212aer run it", "UserName": "Ro\u017ft"},
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "k2", "ImageFileName": "/usr/bin/docker\n",
     "CommandLine": "a\nwhoami\nb", "UserName": True, "RawProcessId": 1e16},
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "k3", "ImageFileName": "C:\\\\users\\\\docker",
     "CommandLine": "x\\u0041 docker run", "UserName": "\u0130root"},
]

MORE_FILTERS = [
    "CommandLine = /chroot \\/host/i",
    "CommandLine = *whoami*",
    "CommandLine = /^whoami$/m",
    "CommandLine = /^b/m",
    'in(ImageFileName, values=["/usr/bin/docker"], ignoreCase=true)',
    'in(UserName, values=["ROST", "true"], ignoreCase=true)',
    'UserName = "true"',
    'RawProcessId = "10000000000000000"',
    "ImageFileName = /docker$/",
    "ImageFileName = *docker",
    "ImageFileName = /\\/(docker|kubectl|crictl|ctr|podman|nerdctl)$/i CommandLine = /docker run|whoami/i",
]


def _check_never_drops(tmp_path: Path, cql: str, engine_name: str, mode: str) -> None:
    text = P + cql
    matcher = compile_matcher(text)
    lines = [line for event in [*EVENTS, *EXTRA_EVENTS] for line in _encodings(event)]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    parsed = [json.loads(line) for line in lines]
    expected = [e for e in parsed if matcher.match(e) is not None]
    path = tmp_path / ("events.ndjson.gz" if mode == "stream" else "events.ndjson")
    path.write_bytes(gzip.compress(data) if mode == "stream" else data)
    stats = EventStats()
    kept = list(scan_events([str(path)], stats, build(parse(text)), jobs=2 if mode == "jobs" else 1,
                            engine_name=engine_name))
    assert [e for e in kept if matcher.match(e) is not None] == expected
    assert stats.lines == len(lines) == stats.events + stats.skipped + stats.blank + stats.malformed


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("cql", [*FILTERS, *MORE_FILTERS])
def test_prefilter_never_drops_a_match(tmp_path: Path, cql: str, engine_name: str) -> None:
    _check_never_drops(tmp_path, cql, engine_name, "mapped")


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("mode", ["stream", "jobs"])
@pytest.mark.parametrize("cql", MORE_FILTERS)
def test_prefilter_never_drops_a_match_when_streamed_or_split(tmp_path: Path, cql: str, engine_name: str,
                                                              mode: str) -> None:
    _check_never_drops(tmp_path, cql, engine_name, mode)


# Values and patterns drawn from the characters that make prefiltering hard: JSON escapes, the
# anchors' neighbours, case (ASCII and Unicode), digits that a number could spell.
_ALPHABET = "abkKsSiIdD09/\\\"\n .-e\u212a\u017f\u0131\u0130\u00e9"


@pytest.mark.parametrize("engine_name", ENGINES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.text(_ALPHABET, max_size=12), st.integers(-999, 10**17), st.booleans(),
                                 st.sampled_from([1e16, 1.5, -0.0])),
                       min_size=1, max_size=6),
       needle=st.text("abkKsSiI09/.- e", min_size=1, max_size=6),
       shape=st.sampled_from(["regex", "regex_i", "begin", "end", "end_i", "both_m", "eq", "eq_i", "glob_end",
                              "glob_begin", "in_i"]))
def test_prefilter_never_drops_generated(tmp_path: Path, engine_name: str, values: list[Any], needle: str,
                                         shape: str) -> None:
    quoted = json.dumps(needle)
    escaped = "".join("\\" + c if c in "\\/.^$|?*+()[]{}-" else c for c in needle)
    cql = {"regex": f"f = /{escaped}/", "regex_i": f"f = /{escaped}/i", "begin": f"f = /^{escaped}/",
           "end": f"f = /{escaped}$/", "end_i": f"f = /{escaped}$/i", "both_m": f"f = /^{escaped}$/m",
           "eq": f"f = {quoted}", "eq_i": f"in(f, values=[{quoted}], ignoreCase=true)",
           "glob_end": f"f = {json.dumps('*' + needle)}", "glob_begin": f"f = {json.dumps(needle + '*')}",
           "in_i": f"in(f, values=[{quoted}, \"x{quoted[1:]}], ignoreCase=true)"}[shape]
    try:
        matcher = compile_matcher(cql)
    except CqlError:  # a pattern the generator made that CQL refuses: nothing to check
        return
    events = [{"f": v, "n": i} for i, v in enumerate(values)]
    lines = [line for e in events for line in (json.dumps(e), json.dumps(e, ensure_ascii=False),
                                                json.dumps(e, ensure_ascii=False).replace("/", "\\/"))]
    path = tmp_path / "events.ndjson"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    wanted = [e for e in map(json.loads, lines) if matcher.match(e) is not None]
    kept = list(scan_events([str(path)], EventStats(), build(parse(cql)), engine_name=engine_name))
    assert [e for e in kept if matcher.match(e) is not None] == wanted


@pytest.mark.parametrize("engine_name", ENGINES)
def test_only_a_real_escape_keeps_a_line(tmp_path: Path, engine_name: str) -> None:
    r"""``\\u`` in the line is an escaped backslash and a plain u (a Windows path such as
    C:\\users): it cannot spell a literal, so the line is skipped; ``\\\u0064`` is a real escape."""
    text = P + "ImageFileName = /docker/"
    lines = [r'{"#event_simpleName": "ProcessRollup2", "ImageFileName": "C:\\users\\x"}',
             r'{"#event_simpleName": "ProcessRollup2", "ImageFileName": "C:\\\u0064ocker"}',
             r'{"#event_simpleName": "ProcessRollup2", "ImageFileName": "\u0064ocker"}',
             r'{"#event_simpleName": "ProcessRollup2", "ImageFileName": "\\\\u0064ocker"}']
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = EventStats()
    kept = list(scan_events([str(path)], stats, build(parse(text)), engine_name=engine_name))
    assert [e["ImageFileName"] for e in kept] == ["C:\\docker", "docker"]
    assert stats.skipped == 2


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_windows_cut_anywhere_give_the_same_events_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               engine_name: str, chunk: int, seed_text: str,
                                                               seed_events: list[dict[str, Any]]) -> None:
    """Windows smaller than a line, blank and malformed lines, CRLF, no final newline: the mapped
    file, the stream and --jobs 2 agree with parsing every line."""
    monkeypatch.setattr(scan_module, "CHUNK", chunk)
    body = [json.dumps(e) for e in seed_events]
    lines = [*body[:5], "", "not json", body[5] + "\r", "  ", *body[6:], '{"x": "docker run -v \\/:\\/host"']
    data = "\n".join(lines).encode("utf-8")  # no final newline
    (tmp_path / "e.ndjson").write_bytes(data)
    (tmp_path / "e.ndjson.gz").write_bytes(gzip.compress(data))
    query = parse(seed_text)
    matcher = compile_matcher(seed_text)
    results = []
    for name, jobs in (("e.ndjson", 1), ("e.ndjson.gz", 1), ("e.ndjson", 2)):
        stats = EventStats()
        kept = list(scan_events([str(tmp_path / name)], stats, build(query), jobs=jobs, engine_name=engine_name))
        results.append(([r["ComputerName"] for r in matcher.run(kept)], stats.lines,
                        stats.blank + stats.malformed + stats.events + stats.skipped))
    assert results[0] == results[1] == results[2]
    assert results[0][1] == len(lines) == results[0][2]
    assert sorted(results[0][0]) == sorted(r["ComputerName"] for r in matcher.run(seed_events))


def test_malformed_lines_are_named_by_line_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_module, "CHUNK", 40)
    lines = ['{"a": "docker"}', "{docker", '{"b": 1}', "[docker]", '{"a": "docker"}']
    path = tmp_path / "e.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = EventStats()
    list(scan_events([str(path)], stats, build(parse("a = /docker/"))))
    assert [x.split(": ", 1)[0] for x in stats.examples] == [f"{path}:2", f"{path}:4"]
    assert (stats.events, stats.malformed, stats.skipped) == (2, 2, 1)


def test_re2_when_hyperscan_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hyperscan", None)  # import hyperscan raises ImportError
    monkeypatch.delenv("CQLX_SCANNER", raising=False)
    assert engine() == "re2"
    monkeypatch.setenv("CQLX_SCANNER", "re2")
    assert engine() == "re2"


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

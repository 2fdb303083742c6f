"""KQL: a table of CQL → KQL, the seed's golden output, Microsoft's parser, and duckdb-kql execution."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import convert
from cqlx.conversion import convert_text
from cqlx.engines.duckdb_kql import run_kql
from cqlx.engines.kusto_language import analyze
from cqlx.errors import UnsupportedError
from cqlx.profiles import load_profile
from cqlx.reshape import to_tables
from tests.conftest import require_kusto
from tests.golden import check_golden

P = "#event_simpleName=ProcessRollup2 | "

# CQL → the KQL line it becomes (after the table line)
TABLE = [
    ("CommandLine = whoami", '| where ProcessCommandLine == "whoami"'),
    ("CommandLine = *whoami*", '| where ProcessCommandLine contains_cs "whoami"'),
    ("CommandLine = whoami*", '| where ProcessCommandLine startswith_cs "whoami"'),
    ("CommandLine = *whoami", '| where ProcessCommandLine endswith_cs "whoami"'),
    ("CommandLine = a*b", '| where ProcessCommandLine matches regex @"(?s)^a.*b\\z"'),
    ("CommandLine = /who/i", '| where ProcessCommandLine matches regex "(?i)who"'),
    ("CommandLine = /who/", '| where ProcessCommandLine matches regex "who"'),
    ("CommandLine = /a\\.b/", '| where ProcessCommandLine matches regex @"a\\.b"'),
    ("ImageFileName = /\\/usr\\/bin\\//", '| where FolderPath matches regex "/usr/bin/"'),
    ("CommandLine = /x*/", '| where (isnotempty(ProcessCommandLine) and ProcessCommandLine matches regex "x*")'),
    ("CommandLine != /who/", '| where not(ProcessCommandLine matches regex "who")'),
    ("CommandLine = *", "| where isnotempty(ProcessCommandLine)"),
    ("CommandLine != *", "| where not(isnotempty(ProcessCommandLine))"),
    ('in(UserName, values=["root", "admin"])', '| where AccountName in ("root", "admin")'),
    ('in(UserName, values=["root"], ignoreCase=true)', '| where AccountName in~ ("root")'),
    ("RawProcessId > 100", "| where ProcessId > 100"),
    ("a = 1 | x := 1", None),  # strict profile: unmapped field `a` is refused
    ('CommandLine = "say \\"hi\\""', '| where ProcessCommandLine == "say \\"hi\\""'),
    ("UserName = root or UserName = admin", '| where (AccountName == "root" or AccountName == "admin")'),
    ("sort(RawProcessId, order=asc, limit=5)", "| sort by ProcessId asc nulls last\n| take 5"),
    ('test(CommandLine < "b")', '| where (isnotempty(ProcessCommandLine) and strcmp(ProcessCommandLine, "b") < 0)'),
    ('test(RawProcessId > "100")', "| where ProcessId > 100"),
    ('test("a" >= 1)', "| where true"),  # both literals: decided as the matcher decides (text "a" >= "1")
    ("x := CommandLine * 2", "| extend x = (todouble(ProcessCommandLine) * 2)"),
    ('x := "a" + 1', "| extend x = (real(null) + 1)"),
    ('x := if(test(RawProcessId > 1), then="hi", else=1) | sort(x)',
     '| extend x = iff(ProcessId > 1, "hi", tostring(1))\n| sort by todouble(x) desc nulls last\n| take 200'),
    ("select([CommandLine]) | UserName = root", "| project ProcessCommandLine\n| where false"),
    ("select([CommandLine]) | UserName != root", "| project ProcessCommandLine\n| where not(false)"),
    ('RawProcessId = "x y"', '| where tostring(ProcessId) == "x y"'),
    ('"a\\nb" := 1', "| extend ['a\\nb'] = 1"),
    ("OriginalFilename = /^cmd\\.exe$/i",
     r'| where ProcessVersionInfoOriginalFileName matches regex @"(?i)^cmd\.exe(?:\n?\z)"'),
]


@pytest.mark.parametrize(("cql", "kql"), TABLE)
def test_kql_table(cql: str, kql: str | None) -> None:
    if kql is None:
        with pytest.raises(UnsupportedError, match="has no mapping in profile mde"):
            convert(P + cql, to="kql")
        return
    out = convert(P + cql, to="kql")
    assert out == "DeviceProcessEvents\n" + kql + "\n"


def test_a_platform_filter_is_detection_loss() -> None:
    """ASIM's event tables have no OS platform column: dropping event_platform=Win would match
    every platform, so the conversion is refused (fuzz of the sample library found it). Defender
    reads it from DeviceInfo (tests/test_state_platform.py)."""
    with pytest.raises(UnsupportedError, match=r"event_platform Win.*would match every platform"):
        convert("#event_simpleName=ProcessRollup2 event_platform=Win | CommandLine = x", to="kql",
                profile="sentinel-asim")


def test_seed_golden(seed_text: str) -> None:
    check_golden("seed.kql", convert(seed_text, to="kql"))


def test_seed_regex_case_flags_kept(seed_text: str) -> None:
    out = convert(seed_text, to="kql")
    assert 'HostMount = iff(ProcessCommandLine matches regex @"(-v /:/host' in out  # no (?i): case-sensitive
    assert out.count("(?i)") == 6
    assert "\\/" not in out  # LogScale's \/ escape is gone


def _mde_schema() -> dict[str, list[tuple[str, str]]]:
    return {name: list(columns) for name, columns in load_profile("mde").tables.items()}


def test_kql_passes_kusto_language(seed_text: str) -> None:
    require_kusto()
    queries = [convert(seed_text, to="kql")] + [convert(P + c, to="kql") for c, k in TABLE if k]
    for query, diagnostics in zip(queries, analyze(queries, _mde_schema()), strict=True):
        assert [d for d in diagnostics if d.severity == "Error"] == [], query


def test_kusto_language_catches_a_wrong_column() -> None:
    require_kusto()
    (diagnostics,) = analyze(["DeviceProcessEvents | where CommandLine == 'x'"], _mde_schema())
    assert any(d.severity == "Error" for d in diagnostics)


def test_seed_on_duckdb_kql_matches_the_expected_rows(seed_text: str, seed_events: list[dict[str, Any]],
                                                     expected_by_host: dict[str, tuple[int, str]]) -> None:
    rows = run_kql(convert(seed_text, to="kql"), to_tables(seed_events, load_profile("mde")))
    assert {r["DeviceName"]: (r["SuspicionScore"], r["Severity"]) for r in rows} == expected_by_host
    scores = [r["SuspicionScore"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert list(rows[0])[:3] == ["Timestamp", "DeviceName", "AccountName"]


def test_regex_the_target_lacks_is_refused_with_position() -> None:
    with pytest.raises(UnsupportedError) as caught:
        convert_text(P + "CommandLine = /(?<=a)b/", "kql")
    assert "lookbehind" in caught.value.message and "RE2" in caught.value.message
    assert caught.value.span.line == 1


def test_seed_profile_fields_are_mapped(seed_text: str) -> None:
    out = convert(seed_text, to="kql")
    for falcon in ("ImageFileName", "CommandLine", "ParentBaseFileName", "ComputerName", "UserName"):
        assert falcon not in out.replace("ProcessCommandLine", "")


@pytest.mark.parametrize("cql", [
    "Foo=1",  # no event type: no table
    "#event_simpleName=ProcessRollup2 | join({Foo=1}, field=aid, include=[Foo])",  # the subquery's table
])
def test_no_table_is_refused_under_every_policy(cql: str) -> None:
    """`--on-lossy warn` never writes a query without its table (Kusto.Language rejects it)."""
    for policy in ("error", "warn", "ignore"):
        with pytest.raises(UnsupportedError, match="whatever --on-lossy says") as refused:
            convert_text(cql, "kql", policy=policy)
        assert "a KQL query needs a table" in str(refused.value)
        assert ("the join's subquery selects" if "join" in cql else "the rule selects") in str(refused.value)


PR2 = "#event_simpleName=ProcessRollup2 "


@pytest.mark.parametrize(("cql", "written"), [
    (PR2 + "WindowFlags=1025", 'where column_ifexists("WindowFlags", "") == "1025"'),
    (PR2 + "| groupBy([aid, WindowFlags])", 'by DeviceId, WindowFlags = column_ifexists("WindowFlags", "")'),
    (PR2 + "| Length := length(WindowFlags) | Length > 2", 'strlen(column_ifexists("WindowFlags", ""))'),
    (PR2 + "| join({#event_simpleName=ProcessRollup2 | ParentBaseFileName=cmd.exe}, field=WindowFlags, "
     "include=[CommandLine, CommandLine])", '_cqlx_lookup1_left1 = column_ifexists("WindowFlags", "")'),
    # a case left out (reported) writes nothing: what reads its fields after it reads no column
    (PR2 + '| case { CommandLine=/x/ | rename(field="CommandLine", as="Cmd"); * } | Cmd = x',
     'where column_ifexists("Cmd", "") == "x"'),
    # a group a case's regex does not extract (reported) is no column either
    (PR2 + "| case { CommandLine=/(?<Word>x+)/ | Seen := 1 ; * } | Word = xx",
     'where column_ifexists("Word", "") == "xx"'),
    # a field written under the column of one read later (reported): the column holds a number now
    (PR2 + "| ProcessCommandLine := RawProcessId | CommandLine = *a*",
     'where tostring(ProcessCommandLine) contains_cs "a"'),
    # a grouping by a field a projection removed writes no summarize: its outputs are no columns
    (PR2 + "| select([aid]) | groupBy(CommandLine, function=count(as=n)) | n > 3",
     "| project DeviceId\n| where false\n| where false"),
    # the groups of a regex that does not compile (reported) are still columns (fuzz seed 224)
    (PR2 + "| CommandLine=/(?P<x>a)\\k<n>/ | case { x=b | y := 1 ; * }", '| extend x = ""\n'),
])
def test_warn_writes_kql_that_loads(cql: str, written: str) -> None:
    """What `--on-lossy warn` writes passes Kusto.Language against the profile's tables: a field
    the profile does not map is read with column_ifexists() (empty here, where the field is
    missing; the column on a table that has it), never named as a column the table lacks."""
    require_kusto()
    conversion = convert_text(cql, "kql", policy="warn")
    assert conversion.detection_loss and written in conversion.output
    (diagnostics,) = analyze([conversion.output], {n: list(c) for n, c in load_profile("mde").tables.items()})
    assert [d.message for d in diagnostics if d.severity == "Error"] == []


@pytest.mark.parametrize(("cql", "written"), [
    (PR2 + "| table([ImageFileName]) | ParentBaseFileName := SHA256HashData | ParentBaseFileName = *a*",
     'where tostring(ParentBaseFileName) contains_cs "a"'),
    (PR2 + "| table([ImageFileName]) | x := coalesce([SHA256HashData, MD5HashData]) | x = 5",
     'where tostring(x) == "5"'),
])
def test_a_field_assigned_an_always_missing_value_is_tested_as_text(cql: str, written: str) -> None:
    """A field assigned one a projection removed holds real(null) (or ""): a text test reads it
    through tostring(); it compared a real with text, which Kusto.Language rejects (KS106, fuzz
    seed 217). Exact: the field is missing in LogScale too."""
    require_kusto()
    conversion = convert_text(cql, "kql")
    assert not conversion.detection_loss and written in conversion.output  # the path shown: presentation
    (diagnostics,) = analyze([conversion.output], {n: list(c) for n, c in load_profile("mde").tables.items()})
    assert [d.message for d in diagnostics if d.severity == "Error"] == []


def test_an_expression_too_deep_for_kusto_is_refused_under_every_policy() -> None:
    """Kusto's parser rejects the query (KS245): nothing loadable can be written, not even under warn."""
    cql = PR2 + "| x := " + " + ".join(["CommandLine"] * 200)
    for policy in ("error", "warn", "ignore"):
        with pytest.raises(UnsupportedError, match="whatever --on-lossy says") as refused:
            convert_text(cql, "kql", policy=policy)
        assert "nests calls deeper than Kusto's parser accepts" in str(refused.value)


# Field names Kusto reads as keywords, operators or type names: bare, the query does not parse
# ("The name 'desc' needs to be bracketed as ['desc']"); `count` parses in Kusto but not in
# duckdb-kql. Each is assigned, tested, read in a call, grouped by, sorted by and shown.
KEYWORD_NAMES = ("desc", "asc", "time", "date", "first", "last", "kind", "string", "long", "dynamic", "union", "True",
                 "as", "of", "to", "set", "search", "print", "title", "with_source", "has_any", "count")


@pytest.mark.parametrize("word", KEYWORD_NAMES)
def test_a_field_named_like_a_kql_keyword_is_bracketed(word: str) -> None:
    require_kusto()
    rule = (f'#event_simpleName=ProcessRollup2 | "{word}" := lower(CommandLine) | "{word}" = "a*" '
            f'| x := concat(["{word}", CommandLine]) | groupBy(["{word}", x], function=count(as=n)) '
            f'| sort("{word}") | select(["{word}", n])')
    kql = convert(rule, to="kql")
    assert f"['{word}']" in kql
    tables = {n: list(c) for n, c in load_profile("mde").tables.items()}
    (diagnostics,) = analyze([kql], tables)
    assert not [d.message for d in diagnostics if d.severity == "Error"], kql
    events = [{"#event_simpleName": "ProcessRollup2", "CommandLine": "ABC"},
              {"#event_simpleName": "ProcessRollup2", "CommandLine": "xyz"}]
    rows = run_kql(kql, to_tables(events, load_profile("mde")))
    assert [tuple(r.values()) for r in rows] == [("abc", 1)]

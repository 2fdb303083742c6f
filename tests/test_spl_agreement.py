"""The SPL cqlx emits, run on the SPL oracle (cqlx.spl_oracle: Splunk's documented semantics for the
emitted subset, not Splunk), selects what the Python matcher (the reference semantics of CQL) does:
the seed rule end to end, and a table of filters over events as Splunk holds them (raw FDR events
through the `splunk` profile). A case marked xfail is a known disagreement, with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import cqlx
from cqlx import compile_matcher, convert
from cqlx.profiles import load_profile
from cqlx.reshape import event_type_of, to_records
from cqlx.spl_oracle import run_spl

P = "#event_simpleName=ProcessRollup2 | "
SPLUNK = load_profile("splunk")
SOURCETYPE = "crowdstrike:events:sensor"  # what the Splunk Add-on for CrowdStrike FDR indexes them as
SEED_COLUMNS = ["_time", "aid_computer_name", "UserSid", "ImageFileName", "CommandLine", "ParentBaseFileName",
                "PrivilegedContainer", "HostMount", "ContainerExec", "SecretsAccess", "ContainerEscape",
                "SuspicionScore", "Severity"]


def splunk_events(events: list[dict[str, Any]]) -> list[dict[str, object]]:
    """Falcon events as Splunk holds them: the profile's mapped fields from
    ``cqlx.reshape.to_records``, every other field under its Falcon name (raw FDR keeps them:
    ``unmapped: identity``; a ``#tag`` loses its ``#``), ``_time`` in epoch seconds (Splunk's; the
    profile's ``splunk_time`` transform), and the sourcetype. Events of a type the profile does not map
    are still indexed (the search has to leave them out), with the same host and time fields."""
    default = SPLUNK.event_type("ProcessRollup2")
    assert default is not None
    out: list[dict[str, object]] = []
    for event, record in zip(events, to_records(events, SPLUNK), strict=True):
        name = event_type_of(event)
        event_type = (SPLUNK.event_type(name) if name else None) or default
        row: dict[str, object] = dict(record) if record is not None else {}
        if record is None:
            for falcon, mapped in event_type.fields.items():
                value = event.get(falcon)
                if value is not None and mapped.name not in row:
                    row[mapped.name] = value
        for key, value in event.items():
            if key in event_type.fields or value is None:
                continue
            row.setdefault(key[1:] if key.startswith("#") else key, value)
        time = row.get("_time")
        if time is not None and time in (event.get("timestamp"), event.get("@timestamp")):
            row["_time"] = int(str(time)) / 1000  # still Falcon's epoch milliseconds
        row["sourcetype"] = SOURCETYPE
        out.append(row)
    return out


# ------------------------------------------------------------------ (a) the seed rule


def test_seed_rows_agree_with_the_expected_results(seed_text: str, seed_events: list[dict[str, Any]],
                                                    expected_by_host: dict[str, tuple[int, str]]) -> None:
    rows = run_spl(convert(seed_text, to="spl"), splunk_events(seed_events))
    got = {str(r["aid_computer_name"]): (r["SuspicionScore"], r["Severity"]) for r in rows}
    assert len(got) == len(rows)
    assert got == expected_by_host
    scores = [r["SuspicionScore"] for r in rows]
    assert all(isinstance(s, int) for s in scores)  # numbers, as eval made them, not strings
    assert scores == sorted(expected_by_host[h][0] for h in got)[::-1]  # descending, as sort(order=desc)


def test_seed_rows_agree_with_the_python_matcher(seed_text: str, seed_events: list[dict[str, Any]]) -> None:
    reference = compile_matcher(seed_text).run(seed_events)
    rows = run_spl(convert(seed_text, to="spl"), splunk_events(seed_events))

    def shape(row: Mapping[str, object], host: str) -> tuple[object, ...]:
        return (row.get(host), row.get("SuspicionScore"), row.get("Severity"), row.get("PrivilegedContainer"),
                row.get("HostMount"), row.get("ContainerExec"), row.get("SecretsAccess"), row.get("ContainerEscape"),
                row.get("CommandLine"), row.get("ImageFileName"))

    # Same rows in the same order: ties in SuspicionScore keep the events' order in both (the
    # oracle's sort is stable, an assumption: Splunk does not document tie order).
    assert [shape(r, "aid_computer_name") for r in rows] == [shape(r, "ComputerName") for r in reference]


def test_seed_rows_have_the_table_columns(seed_text: str, seed_events: list[dict[str, Any]]) -> None:
    rows = run_spl(convert(seed_text, to="spl"), splunk_events(seed_events))
    assert rows
    for row in rows:
        assert list(row) == [c for c in SEED_COLUMNS if c in row]
        assert isinstance(row["_time"], float)  # epoch seconds
    assert {c for row in rows for c in row} == set(SEED_COLUMNS)


def test_seed_search_leaves_out_other_event_types(seed_text: str, seed_events: list[dict[str, Any]]) -> None:
    """The base search is CASE()d: the 'processrollup2' and SyntheticProcessRollup2 events that pass
    every regex are left out, as CQL's exact #event_simpleName test leaves them out."""
    records = splunk_events(seed_events)
    rows = run_spl(convert(seed_text, to="spl"), records)
    hosts = {r["aid_computer_name"] for r in rows}
    lowered = [r["aid_computer_name"] for r in records if r.get("event_simpleName") == "processrollup2"]
    synthetic = [r["aid_computer_name"] for r in records if r.get("event_simpleName") == "SyntheticProcessRollup2"]
    assert lowered and synthetic
    assert hosts.isdisjoint(lowered + synthetic)
    without_case = convert(seed_text, to="spl").replace("event_simpleName=CASE(ProcessRollup2)",
                                                        "event_simpleName=ProcessRollup2")
    assert {r["aid_computer_name"] for r in run_spl(without_case, records)} >= set(lowered)


# ------------------------------------------------------------------ (b) a table of filters


def _event(n: int, **fields: Any) -> dict[str, Any]:
    # As LogScale holds a Falcon event: @timestamp (ms, what table() sorts by) and FDR's timestamp.
    return {"#event_simpleName": "ProcessRollup2", "ComputerName": f"host-{n:02d}",
            "@timestamp": 1718893200000 + n, "timestamp": str(1718893200000 + n), **fields}


EVENTS = [
    _event(1, CommandLine="docker run --rm alpine whoami", ImageFileName="/usr/bin/docker", UserName="root"),
    _event(2, CommandLine="DOCKER RUN --privileged x", ImageFileName="/usr/bin/DOCKER", UserName="Root"),
    _event(3, CommandLine="kubectl get secrets -A", ImageFileName="/usr/local/bin/kubectl", UserName="dev"),
    _event(4, ImageFileName="/usr/bin/docker", UserName="root"),  # no CommandLine
    _event(5, CommandLine="", ImageFileName="/bin/bash"),
    _event(6, CommandLine="bash -c 'echo whoami'", ImageFileName="/bin/bash", ParentBaseFileName="sshd",
           RawProcessId="4242", ParentProcessId="5000"),
    _event(7, CommandLine="cmd.exe /c whoami", ImageFileName="\\Device\\HarddiskVolume3\\Windows\\System32\\cmd.exe",
           ParentBaseFileName="explorer.exe", RawProcessId="17", ParentProcessId="3"),
    _event(8, CommandLine="Docker Exec -it c sh", ImageFileName="/usr/bin/docker", ParentBaseFileName="bash"),
    {"event_simpleName": "ProcessRollup2", "ComputerName": "host-09", "CommandLine": "docker exec -i c id",
     "ImageFileName": "/usr/bin/docker", "UserName": "svc"},
    {"#event_simpleName": "DnsRequest", "ComputerName": "host-10", "CommandLine": "docker run whoami"},
    _event(11, CommandLine='echo "hi" | say "hi"', ImageFileName="/usr/bin/echo", ParentBaseFileName="BASH",
           RawProcessId="017"),
    {"#event_simpleName": "SyntheticProcessRollup2", "ComputerName": "host-12", "CommandLine": "docker run whoami",
     "ImageFileName": "/usr/bin/docker"},
    {"#event_simpleName": "processrollup2", "ComputerName": "host-13", "CommandLine": "docker run whoami",
     "ImageFileName": "/usr/bin/docker"},
    _event(14, CommandLine="first line\nsecond whoami", ImageFileName="/usr/bin/sh", ParentBaseFileName="bash",
           **{"a.b": "x"}),
    _event(15, CommandLine="docker run -v /:/host alpine", ImageFileName="/tmp/.x/docker", RawProcessId="50",
           ParentProcessId="100", ParentBaseFileName="containerd-shim"),
    _event(16, CommandLine="whoami", ImageFileName="/usr/bin/whoami", RawProcessId="99"),
    _event(17, CommandLine="WHOAMI", ImageFileName="/usr/bin/whoami", RawProcessId="x99"),
]

# CQL filters whose SPL must select the same events (the rule is "#event_simpleName=ProcessRollup2 | " + it).
FILTERS: list[Any] = [
    "CommandLine = /whoami/",
    "CommandLine = /WHOAMI/i",
    "CommandLine = /^docker (run|exec)/",
    "CommandLine = /^docker (run|exec)/i",
    "CommandLine = /whoami$/",
    "CommandLine = /^second/m",
    "CommandLine = /line.second/d",
    "CommandLine != /docker/i",
    "not CommandLine = /docker/",
    "CommandLine = *",
    "CommandLine != *",
    "CommandLine = *whoami*",
    "CommandLine = docker*",
    "CommandLine = *sh",
    'CommandLine = ""',
    "CommandLine = whoami",
    'CommandLine = "docker run --rm alpine whoami"',
    'CommandLine != "docker run --rm alpine whoami"',
    'CommandLine = "echo \\"hi\\" | say \\"hi\\""',
    'CommandLine = /say "hi"/',
    "CommandLine = /echo|exec/",
    "ImageFileName = /\\/docker$/i",
    "ImageFileName = /\\\\cmd\\.exe$/i",
    'ImageFileName = "\\\\Device\\\\HarddiskVolume3\\\\Windows\\\\System32\\\\cmd.exe"',
    'ImageFileName = "*\\\\System32\\\\cmd.exe"',
    "ParentBaseFileName = bash",
    "ParentBaseFileName != bash",
    "ParentBaseFileName = *.exe",
    'in(ParentBaseFileName, values=["bash", "sshd"])',
    'in(ParentBaseFileName, values=["BASH"], ignoreCase=true)',
    'in(ParentBaseFileName, values=["*.exe", "ssh*"])',
    'not in(ParentBaseFileName, values=["bash", "sshd"])',
    "RawProcessId > 100",
    "RawProcessId <= 100",
    "not RawProcessId > 100",
    "test(RawProcessId > ParentProcessId)",
    "a.b = x",
    "ImageFileName = /docker/ CommandLine = /run/ or CommandLine = /exec/i",
    "ImageFileName = /docker/i and (CommandLine = /run/ or ParentBaseFileName = bash)",
    "not (CommandLine = /docker/ and RawProcessId > 5)",
    "not (ParentBaseFileName = bash or ParentBaseFileName = sshd)",
    "CommandLine = /docker/i | ImageFileName != /DOCKER/",
    'x := lower(CommandLine) | x = *docker*',
    'x := upper(ParentBaseFileName) | x = BASH',
    'x := if(CommandLine = /docker/i, "Y", "N") | x = N',
    'x := if(CommandLine = /docker/i, "Y", "N") | x = Y',
    "x := RawProcessId * 2 | x > 100",
    "x := RawProcessId + 1 | x < 20",
    'x := if(CommandLine = /docker/, 3, 0) | y := if(ImageFileName = /docker/, 2, 0) | s := x + y | s >= 3',
    "RawProcessId = * | not RawProcessId > 100",
    "x := CommandLine | x > 5",
    "x := RawProcessId | x > 100",
    pytest.param(
        "RawProcessId = 17",
        marks=pytest.mark.xfail(strict=True, reason=(
            "doubtful Splunk semantics: the oracle compares a numeric-looking field with a string "
            "literal numerically (where RawProcessId==\"17\" is true for \"017\"), CQL compares the "
            "strings; Splunk documents neither way. If Splunk does compare numerically, the emitter "
            "would need tostring() or match() for equality on numeric-looking values"))),
    "not test(RawProcessId > ParentProcessId)",
    "x := ParentBaseFileName + ImageFileName | x = *",
    "CommandLine := lower(ParentBaseFileName) | CommandLine = *",

]


def _ids(values: list[Any]) -> list[str]:
    return [v.values[0] if hasattr(v, "values") else v for v in values]


def _python(cql: str) -> set[str]:
    matcher = compile_matcher(P + cql)
    return {e["ComputerName"] for e in EVENTS if matcher.match(e) is not None}


def _oracle(cql: str) -> set[str]:
    rows = run_spl(convert(P + cql, to="spl"), splunk_events(EVENTS))
    return {str(r["aid_computer_name"]) for r in rows}


@pytest.mark.parametrize("cql", FILTERS, ids=_ids(FILTERS))
def test_spl_oracle_agrees_with_the_reference(cql: str) -> None:
    assert _oracle(cql) == _python(cql)


# Rules whose rows must come out the same and in the same order (the sort keys have no ties here,
# except where the input order breaks them in both: the oracle's sort is stable, an assumption).
RUNS = [
    "ImageFileName = /docker/i | select([ComputerName, CommandLine, RawProcessId])",
    "select([ComputerName, RawProcessId]) | sort(RawProcessId, order=asc)",
    "sort(RawProcessId, limit=3)",
    "CommandLine = * | sort(CommandLine, type=string, order=asc, limit=4) | select([ComputerName, CommandLine])",
    "CommandLine = * | sort(CommandLine, type=string) | select([ComputerName])",
    "table([ComputerName, CommandLine])",
    'x := if(CommandLine = /docker/i, 2, 0) | y := if(ImageFileName = /docker$/, 1, 0) | s := x + y '
    "| select([ComputerName, s]) | sort(s)",
]


@pytest.mark.parametrize("cql", RUNS)
def test_spl_oracle_rows_agree_with_the_reference(cql: str) -> None:
    matcher = compile_matcher(P + cql)
    reference = matcher.run(EVENTS)
    rows = run_spl(convert(P + cql, to="spl"), splunk_events(EVENTS))
    assert [r.get("aid_computer_name") for r in rows] == [r.get("ComputerName") for r in reference]
    if matcher.fields is not None:  # the rule selects its fields: the rows are the same too
        rename = {"aid_computer_name": "ComputerName"}
        assert [{rename.get(k, k): v for k, v in row.items()} for row in rows] == reference


@pytest.mark.parametrize("rule", [
    "#event_simpleName=ProcessRollup2 event_platform=Lin | CommandLine = /docker/i",
    "#event_simpleName=ProcessRollup2 #event_platform=Win",
])
def test_platform_search_agrees_with_the_reference(rule: str) -> None:
    """event_platform=CASE(Lin) in the search: exact, as CQL's test; 'lin' is another platform."""
    events = [dict(e, event_platform=p) for e, p in zip(EVENTS, ["Lin", "lin", "Win", "Lin", "Mac"] * 4, strict=False)]
    matcher = compile_matcher(rule)
    expected = {e["ComputerName"] for e in events if matcher.match(e) is not None}
    rows = run_spl(convert(rule, to="spl"), splunk_events(events))
    assert expected and {r["aid_computer_name"] for r in rows} == expected


def test_the_table_is_not_trivial() -> None:
    plain = [f for f in FILTERS if isinstance(f, str)]
    sizes = [len(_python(cql)) for cql in plain]
    assert len(set(sizes)) > 5
    assert max(sizes) < len(EVENTS) - 2  # the event-type search always leaves some out


@pytest.mark.parametrize("cql", ["UserName = root", 'in(UserName, values=["root"])', "UserName != root"])
def test_filters_on_the_user_are_refused(cql: str) -> None:
    """Raw FDR has only the user's SID: a filter on UserName is refused, not run on UserSid."""
    with pytest.raises(cqlx.CqlError, match="UserSid"):
        convert(P + cql, to="spl")


def test_splunk_events_shape() -> None:
    records = splunk_events(EVENTS)
    first = records[0]
    assert first["aid_computer_name"] == "host-01" and "ComputerName" not in first
    assert first["event_simpleName"] == "ProcessRollup2" and "#event_simpleName" not in first
    assert first["sourcetype"] == SOURCETYPE
    assert first["_time"] == 1718893200.001
    assert first["CommandLine"] == EVENTS[0]["CommandLine"]
    dns = records[9]
    assert dns["event_simpleName"] == "DnsRequest" and dns["aid_computer_name"] == "host-10"

"""Profile data: the shipped profiles for other data models (Sentinel ASIM, Splunk CIM, Elastic ECS)
and the event types beyond process creation. Each profile loads, keeps the mapping traps, and the
seed rule means the same thing on it: Microsoft's Kusto parser accepts its KQL against the
profile's own tables, duckdb-kql and the Python matcher return the same hosts, scores and
severities on the sample events re-shaped into that data model."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import yaml

from cqlx import compile_matcher, convert
from cqlx.conversion import convert_text
from cqlx.engines.duckdb_kql import run_kql
from cqlx.engines.kusto_language import analyze
from cqlx.profiles import Profile, load_profile, shipped_profiles
from cqlx.reshape import event_type_of, to_records, to_tables
from tests.conftest import require_kusto

NEW_PROFILES = {"sentinel-asim": "kql", "splunk-cim": "spl", "ecs": "python"}
KQL_PROFILES = ("mde", "sentinel-asim")
OTHER_EVENT_TYPES = ("NetworkConnectIP4", "NetworkReceiveAcceptIP4", "DnsRequest", "ClassifiedModuleLoad",
                     "UserLogon", "NewExecutableWritten", "PeFileWritten")
# Which event types each profile has no counterpart for (the profile says why in a comment).
NO_COUNTERPART = {
    "mde": {"SyntheticProcessRollup2"},
    "sentinel-asim": {"SyntheticProcessRollup2", "ClassifiedModuleLoad"},
    "sigma": {"SyntheticProcessRollup2", "UserLogon"},
    "splunk-cim": {"SyntheticProcessRollup2", "ClassifiedModuleLoad"},
    "ecs": {"SyntheticProcessRollup2"},
    "splunk": set(),
    "falcon": set(),
}
# Columns that hold an operating-system process id, per profile: Falcon's own process ids
# (TargetProcessId, ParentProcessId, ContextProcessId) must never land in one.
OS_PID_COLUMNS = {
    "mde": {"ProcessId", "InitiatingProcessId", "InitiatingProcessParentId"},
    "sentinel-asim": {"TargetProcessId", "ActingProcessId", "ParentProcessId", "SrcProcessId", "DstProcessId"},
    "sigma": {"ProcessId", "ParentProcessId"},
    "splunk-cim": {"process_id", "parent_process_id"},
    "ecs": {"process.pid", "process.parent.pid"},
}
FALCON_IDS = ("TargetProcessId", "ParentProcessId", "ContextProcessId")
# How each KQL profile names the seed's first output columns (timestamp, ComputerName, UserName).
FIRST_COLUMNS = {"mde": ["Timestamp", "DeviceName", "AccountName"],
                 "sentinel-asim": ["TimeGenerated", "DvcHostname", "TargetUsername"]}


# ------------------------------------------------------------------ loading and traps


@pytest.mark.parametrize(("name", "language"), sorted(NEW_PROFILES.items()))
def test_new_profiles_load(name: str, language: str) -> None:
    assert name in shipped_profiles()
    profile = load_profile(name)
    assert profile.language == language and profile.name == name
    assert "ProcessRollup2" in profile.event_types


@pytest.mark.parametrize("name", sorted(NO_COUNTERPART))
def test_every_profile_has_the_other_event_types(name: str) -> None:
    profile = load_profile(name)
    wanted = {"ProcessRollup2", "SyntheticProcessRollup2", *OTHER_EVENT_TYPES} - NO_COUNTERPART[name]
    templates = {t for t in (profile.default_event_type, profile.unlisted_event_type) if t}
    assert set(profile.event_types) == wanted | MORE_EVENT_TYPES.get(name, set()) | templates


# Event types beyond the core some profiles map: PowerShell script content, console history and
# driver loads (sensor events in raw FDR; ps_script in the Sigma taxonomy).
MORE_EVENT_TYPES = {"splunk": {"ScriptControlScanTelemetry", "CommandHistory", "DriverLoad"},
                    "sigma": {"ScriptControlScanTelemetry", "DriverLoad"}, "mde": {"DriverLoad"}}


@pytest.mark.parametrize("name", sorted(OS_PID_COLUMNS))
def test_falcon_process_ids_never_become_os_pids(name: str) -> None:
    profile = load_profile(name)
    for event in profile.event_types.values():
        for falcon in FALCON_IDS:
            mapped = event.fields.get(falcon)
            assert mapped is None or mapped.name not in OS_PID_COLUMNS[name], (event.name, falcon)
        raw = event.fields.get("RawProcessId")
        if raw is not None:
            assert raw.name in OS_PID_COLUMNS[name]


def test_parent_file_name_is_the_parent_not_the_grandparent() -> None:
    # Defender's InitiatingProcessParentFileName and ASIM's ParentProcessName are one level up.
    mde = load_profile("mde").event_types["ProcessRollup2"].fields["ParentBaseFileName"]
    assert mde.name == "InitiatingProcessFileName" and mde.transform is None
    asim = load_profile("sentinel-asim").event_types["ProcessRollup2"].fields["ParentBaseFileName"]
    assert asim.name == "ActingProcessName" and asim.transform == "basename"


def test_asim_shapes() -> None:
    fields = load_profile("sentinel-asim").event_types["ProcessRollup2"].fields
    assert fields["RawProcessId"].name == "TargetProcessId" and fields["RawProcessId"].type == "string"
    assert not fields["UserName"].exact  # DOMAIN\user, UPN, ... per TargetUsernameType
    assert fields["ImageFileName"].name == "TargetProcessName"
    assert fields["timestamp"].name == "TimeGenerated" and fields["timestamp"].transform == "epoch_ms"
    assert load_profile("sentinel-asim").missing == "empty"  # Kusto strings have no null


@pytest.mark.parametrize("name", KQL_PROFILES)
def test_kql_columns_have_the_declared_types(name: str) -> None:
    """A field mapped to a non-string column says so (`type:`), so filters compare it as a number."""
    profile = load_profile(name)
    for event in profile.event_types.values():
        assert event.table is not None
        columns = dict(profile.columns(event.table))
        for falcon, mapped in event.fields.items():
            assert columns[mapped.name] == mapped.type, (name, event.name, falcon)


def test_defender_tables_are_complete() -> None:
    tables = load_profile("mde").tables
    sizes = {name: len(columns) for name, columns in tables.items()}
    assert sizes["DeviceNetworkEvents"] == 45 and sizes["DeviceFileEvents"] == 58
    assert sizes["DeviceImageLoadEvents"] == 42 and sizes["DeviceLogonEvents"] == 49
    network = dict(tables["DeviceNetworkEvents"])
    assert network["RemotePort"] == "int" and network["InitiatingProcessId"] == "long"
    assert dict(tables["DeviceLogonEvents"])["IsLocalAdmin"] == "bool"


def test_asim_tables_are_complete() -> None:
    tables = load_profile("sentinel-asim").tables
    assert set(tables) == {"imProcessCreate", "imNetworkSession", "imDns", "imAuthentication", "imFileEvent"}
    for columns in tables.values():
        names = dict(columns)
        assert names["TimeGenerated"] == "datetime" and names["EventCount"] == "int"
        assert names["AdditionalFields"] == "dynamic" and "DvcHostname" in names
    assert dict(tables["imNetworkSession"])["DstPortNumber"] == "int"
    assert dict(tables["imDns"])["DnsQuery"] == "string"


# ------------------------------------------------------------------ KQL: Kusto.Language and duckdb-kql


def _schema(profile: Profile) -> dict[str, list[tuple[str, str]]]:
    return {name: list(columns) for name, columns in profile.tables.items()}


def _probes(profile: Profile) -> list[str]:
    """Per event type, one query showing every mapped field and one testing each exact field."""
    queries = []
    for event in profile.event_types.values():
        head = f"#event_simpleName={event.name}"
        shown = ", ".join(event.fields)
        queries.append(convert_text(f"{head} | select([{shown}])", "kql", profile.name, "warn").output)
        tests = [f"{falcon} = *" for falcon, mapped in event.fields.items()
                 if mapped.exact and mapped.transform is None]
        queries.append(convert(f"{head} | " + " | ".join(tests), to="kql", profile=profile.name))
    return queries


@pytest.mark.parametrize("name", KQL_PROFILES)
def test_kql_passes_kusto_language_against_the_profile_tables(name: str, seed_text: str) -> None:
    require_kusto()
    profile = load_profile(name)
    queries = [convert(seed_text, to="kql", profile=name), *_probes(profile)]
    for query, diagnostics in zip(queries, analyze(queries, _schema(profile)), strict=True):
        assert [d for d in diagnostics if d.severity == "Error"] == [], query


@pytest.mark.parametrize("name", KQL_PROFILES)
def test_kusto_language_catches_a_falcon_name(name: str) -> None:
    require_kusto()
    profile = load_profile(name)
    table = profile.event_types["ProcessRollup2"].table
    # (not CommandLine: ASIM has a CommandLine alias column)
    (diagnostics,) = analyze([f"{table} | where ImageFileName == 'x'"], _schema(profile))
    assert any(d.severity == "Error" for d in diagnostics)


@pytest.mark.parametrize("name", KQL_PROFILES)
def test_seed_on_duckdb_kql_matches_the_expected_rows(name: str, seed_text: str, seed_events: list[dict[str, Any]],
                                                     expected_by_host: dict[str, tuple[int, str]]) -> None:
    profile = load_profile(name)
    rows = run_kql(convert(seed_text, to="kql", profile=name), to_tables(seed_events, profile))
    host = FIRST_COLUMNS[name][1]
    assert {r[host]: (r["SuspicionScore"], r["Severity"]) for r in rows} == expected_by_host
    scores = [r["SuspicionScore"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert list(rows[0])[:3] == FIRST_COLUMNS[name]


# Falcon events of the other types, for filters that must select the same ones on every target.
NETWORK_EVENTS = [
    {"#event_simpleName": "NetworkConnectIP4", "ComputerName": "h1", "RemoteAddressIP4": "10.0.0.1",
     "RemotePort": "443", "LocalAddressIP4": "10.0.0.9", "LocalPort": "50000", "Protocol": "6"},
    {"#event_simpleName": "NetworkConnectIP4", "ComputerName": "h2", "RemoteAddressIP4": "10.0.0.2",
     "RemotePort": "80", "LocalAddressIP4": "10.0.0.9", "LocalPort": "50001", "Protocol": "6"},
    {"#event_simpleName": "NetworkConnectIP4", "ComputerName": "h3", "RemoteAddressIP4": "192.168.1.7",
     "RemotePort": "4444", "LocalAddressIP4": "10.0.0.8", "LocalPort": "50002", "Protocol": "6"},
]
DNS_EVENT = {"#event_simpleName": "DnsRequest", "ComputerName": "h4", "DomainName": "evil.example"}
NETWORK_FILTERS = ["RemotePort > 442", "RemotePort <= 443", "RemoteAddressIP4 = /^10\\./",
                   'RemoteAddressIP4 = "192.168.1.7"', "LocalPort >= 50001", "RemoteAddressIP4 != /^10\\./"]


def _hosts_kql(name: str, cql: str, events: list[dict[str, Any]]) -> set[str]:
    profile = load_profile(name)
    host = profile.event_types["NetworkConnectIP4"].fields["ComputerName"].name
    rows = run_kql(convert(cql + " | select([ComputerName])", to="kql", profile=name), to_tables(events, profile))
    return {str(r[host]) for r in rows}


@pytest.mark.parametrize("name", KQL_PROFILES)
@pytest.mark.parametrize("cql", NETWORK_FILTERS)
def test_network_filters_agree_with_the_reference(name: str, cql: str) -> None:
    full = "#event_simpleName=NetworkConnectIP4 | " + cql
    matcher = compile_matcher(full)
    expected = {str(e["ComputerName"]) for e in NETWORK_EVENTS if matcher.match(e) is not None}
    assert expected  # every filter selects something
    assert _hosts_kql(name, full, NETWORK_EVENTS) == expected


def test_asim_keeps_dns_out_of_network_sessions() -> None:
    cql = "#event_simpleName=NetworkConnectIP4 | RemoteAddressIP4 != /^10\\./"
    assert _hosts_kql("sentinel-asim", cql, [*NETWORK_EVENTS, DNS_EVENT]) == {"h3"}


def test_defender_keeps_dns_out_of_connections() -> None:
    cql = "#event_simpleName=NetworkConnectIP4 | RemoteAddressIP4 != /^10\\./"
    assert _hosts_kql("mde", cql, [*NETWORK_EVENTS, DNS_EVENT]) == {"h3"}


# ------------------------------------------------------------------ ECS: the Python matcher


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """A record with dotted ECS names as the nested objects Elastic stores."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        if isinstance(value, dt.datetime):
            value = value.isoformat(timespec="milliseconds") + "Z"
        node = out
        *parents, leaf = [name] if name.startswith("@") else name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _as_ecs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Falcon events as ECS documents: the profile's names, its platform values, and the
    event.category / event.type values its `match:` selects records by."""
    profile = load_profile("ecs")
    out = []
    for event, record in zip(events, to_records(events, profile), strict=True):
        if record is None:
            continue
        name = event_type_of(event)
        assert name is not None
        if "host.os.type" in record:
            record["host.os.type"] = profile.platforms.get(record["host.os.type"], record["host.os.type"])
        for field, values in profile.event_types[name].match:
            record[field] = list(values) if field in ("event.category", "event.type") else values[0]
        out.append(_nested(record))
    return out


def test_seed_on_ecs_events_gives_the_expected_rows(seed_text: str, seed_events: list[dict[str, Any]],
                                                    expected_by_host: dict[str, tuple[int, str]]) -> None:
    ecs = _as_ecs(seed_events)
    assert ecs[0]["process"]["command_line"] and ecs[0]["host"]["name"] and "CommandLine" not in ecs[0]
    rows = compile_matcher(seed_text, profile="ecs").run(ecs)
    assert {r["ComputerName"]: (r["SuspicionScore"], r["Severity"]) for r in rows} == expected_by_host
    falcon_rows = compile_matcher(seed_text).run(seed_events)
    keys = ("ComputerName", "SuspicionScore", "Severity", "CommandLine", "ImageFileName", "ParentBaseFileName")
    assert [[r.get(k) for k in keys] for r in rows] == [[r.get(k) for k in keys] for r in falcon_rows]


def test_ecs_matcher_selects_records_by_category(seed_text: str, seed_events: list[dict[str, Any]]) -> None:
    matcher = compile_matcher(seed_text, profile="ecs")
    assert matcher.run(seed_events) == []  # Falcon-shaped events are no ECS process starts
    ecs = _as_ecs(seed_events)
    for document in ecs:
        document["event"]["category"] = ["network"]
    assert matcher.run(ecs) == []


def test_ecs_network_direction_tells_connect_from_accept() -> None:
    events = [{**NETWORK_EVENTS[0]}, {**NETWORK_EVENTS[0], "#event_simpleName": "NetworkReceiveAcceptIP4",
                                      "ComputerName": "in1"}]
    ecs = _as_ecs(events)
    assert ecs[0]["destination"]["ip"] == "10.0.0.1" and ecs[1]["source"]["ip"] == "10.0.0.1"
    shown = " | select([ComputerName])"
    outbound = compile_matcher("#event_simpleName=NetworkConnectIP4 | RemotePort > 442" + shown, profile="ecs")
    inbound = compile_matcher("#event_simpleName=NetworkReceiveAcceptIP4 | RemotePort > 442" + shown, profile="ecs")
    assert [r["ComputerName"] for r in outbound.run(ecs)] == ["h1"]
    assert [r["ComputerName"] for r in inbound.run(ecs)] == ["in1"]


# ------------------------------------------------------------------ SPL: Splunk CIM


def test_seed_spl_on_cim_names_only_processes_fields(seed_text: str) -> None:
    profile = load_profile("splunk-cim")
    out = convert(seed_text, to="spl", profile="splunk-cim")
    assert out.startswith("| datamodel Endpoint Processes search\n")
    names = set(re.findall(r"\bProcesses\.(\w+)", out)) - {"search"}
    assert names and names <= {c for c, _ in profile.tables["Endpoint.Processes"]}
    assert {"process_path", "process", "parent_process_name", "user", "dest"} <= names
    for falcon in ("ImageFileName", "CommandLine", "ParentBaseFileName", "ComputerName", "UserName"):
        assert falcon not in out


def test_cim_event_types_name_only_their_dataset_fields() -> None:
    profile = load_profile("splunk-cim")
    for event in profile.event_types.values():
        assert event.datamodel in profile.tables and event.prefix == event.datamodel.split(".")[1] + "."
        fields = {c for c, _ in profile.tables[event.datamodel]}
        assert {mapped.name for mapped in event.fields.values()} <= fields, event.name
        out = convert_text(f"#event_simpleName={event.name} | select([{', '.join(event.fields)}])", "spl",
                           "splunk-cim", "warn").output
        model, dataset = event.datamodel.split(".")
        assert out.startswith(f"| datamodel {model} {dataset} search\n")
        shown = set(re.findall(rf"\b{re.escape(event.prefix)}(\w+)", out)) - {"search"}
        assert shown and shown <= fields, event.name


def test_cim_platform_is_never_dropped() -> None:
    """event_platform=Win under CIM: the dataset's os column names the OS otherwise (Microsoft
    Windows ...), so the test is detection loss, reported; it was left out of the SPL silently."""
    from cqlx.errors import UnsupportedError

    rule = "#event_simpleName=ProcessRollup2 event_platform=Win | CommandLine=*whoami*"
    with pytest.raises(UnsupportedError, match="field event_platform becomes os, which is not the same information"):
        convert_text(rule, "spl", "splunk-cim")
    written = convert_text(rule, "spl", "splunk-cim", "warn").output
    assert written.splitlines()[1] == "| search Processes.os=CASE(Win)"


@pytest.mark.parametrize("rule", [
    "#event_simpleName=NetworkConnectIP4 RemotePort > 100 | select([ComputerName, RemotePort])",
    "#event_simpleName=NetworkReceiveAcceptIP4 LocalPort < 1000 | select([ComputerName, LocalPort])",
])
def test_cim_network_event_types_read_their_own_direction(rule: str) -> None:
    """All_Traffic holds inbound and outbound traffic, with src and dest the other way round: a
    rule on one Falcon type reads its direction only (the SPL oracle, against the matcher)."""
    from cqlx import testing
    from cqlx.rules import Rule, RuleMeta

    events = [{"#event_simpleName": kind, "ComputerName": f"{kind}-{port}", "RemotePort": str(port),
               "LocalPort": str(port), "RemoteAddressIP4": "8.8.8.8", "LocalAddressIP4": "10.0.0.5"}
              for kind in ("NetworkConnectIP4", "NetworkReceiveAcceptIP4") for port in (443, 50123)]
    report = testing.Report()
    testing.test_rule(Rule(path="r.cql", text=rule, meta=RuleMeta()), report,
                      extra=[testing.Case(e["ComputerName"], e) for e in events], profiles={"spl": "splunk-cim"},
                      targets=("spl-oracle",))
    assert not report.findings, [(f.case, f.message) for f in report.findings]
    assert report.checked[("r.cql", "spl-oracle")] == len(events)


def test_cim_logons_are_successes_and_the_machine_accounts_they_lack_are_reported() -> None:
    """Falcon UserLogon is a successful logon: CIM's Authentication also holds failures (read
    action=success), and its constraint leaves out machine accounts' successful logons, which a
    rule on UserLogon would match in LogScale: detection loss (the profile's lacks:)."""
    from cqlx.errors import UnsupportedError

    rule = "#event_simpleName=UserLogon | select([ComputerName])"
    with pytest.raises(UnsupportedError, match=r"leave out successful logons of accounts whose name ends in \$"):
        convert_text(rule, "spl", "splunk-cim")
    assert "| search Authentication.action=CASE(success)\n" in convert_text(rule, "spl", "splunk-cim", "warn").output


def test_cim_event_time_computed_from_unprefixed_time() -> None:
    """A rule that computes with @timestamp reads _time, which a data model does not prefix (it read
    'Processes._time', which holds nothing): the column and the derived time name it alike."""
    out = convert("#event_simpleName=ProcessRollup2 | x := @timestamp + 1 | select([x])", to="spl",
                  profile="splunk-cim")
    assert "| eval '@timestamp'=round(_time*1000)\n" in out and "Processes._time" not in out


def test_cim_base_fields_take_no_prefix(seed_text: str) -> None:
    out = convert(seed_text, to="spl", profile="splunk-cim")
    assert "Processes._time" not in out and re.search(r"\btable _time\b", out)


# ------------------------------------------------------------------ Sigma and raw FDR: the other event types


@pytest.mark.parametrize(("cql", "category", "field"), [
    ("#event_simpleName=NetworkConnectIP4 | RemotePort > 442", "network_connection", "DestinationPort|gt"),
    ("#event_simpleName=NetworkReceiveAcceptIP4 | RemoteAddressIP4 = /^10\\./", "network_connection",
     "DestinationIp|re"),
    ("#event_simpleName=DnsRequest | DomainName = /evil/", "dns_query", "QueryName|re"),
    ("#event_simpleName=ClassifiedModuleLoad | ImageFileName = /evil\\.dll$/i", "image_load", "ImageLoaded|re|i"),
    ("#event_simpleName=NewExecutableWritten | TargetFileName = /\\.exe$/", "file_event", "TargetFilename|re"),
    ("#event_simpleName=PeFileWritten | ContextBaseFileName = cmd.exe", "file_event", "Image|endswith|cased"),
])
def test_sigma_logsources_of_the_other_event_types(cql: str, category: str, field: str) -> None:
    rule = yaml.safe_load(convert(cql, to="sigma"))
    assert rule["logsource"] == {"category": category}
    assert field in rule["detection"]["selection"]


@pytest.mark.parametrize("event_type", OTHER_EVENT_TYPES)
def test_raw_fdr_searches_the_event_type_case_sensitively(event_type: str) -> None:
    out = convert(f"#event_simpleName={event_type} | select([ComputerName])", to="spl")
    assert out.startswith(f'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE({event_type})\n')
    assert "aid_computer_name" in out


def test_raw_fdr_user_logon_keeps_user_name() -> None:
    # UserLogon carries UserName itself; only ProcessRollup2 has just the SID in raw FDR.
    assert "| where UserName==\"admin\"" in convert("#event_simpleName=UserLogon | UserName = admin", to="spl")


def test_the_matcher_runs_on_sigma_named_records(seed_text: str, seed_events: list[dict[str, Any]],
                                                 expected_by_host: dict[str, tuple[int, str]]) -> None:
    """The mapping proven the other way: the Python matcher reads the Sigma taxonomy's names."""
    from cqlx import compile_matcher
    from cqlx.profiles import load_profile
    from cqlx.reshape import to_records

    records = [r for r in to_records(seed_events, load_profile("sigma"), ["ProcessRollup2"]) if r is not None]
    rows = compile_matcher(seed_text, profile="sigma").run(records)
    assert {r["ComputerName"]: (r["SuspicionScore"], r["Severity"]) for r in rows} == expected_by_host


def test_the_matcher_refuses_a_test_it_cannot_run_in_the_profile_shape() -> None:
    from cqlx import compile_matcher
    from cqlx.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="ParentBaseFileName"):
        compile_matcher("#event_simpleName=ProcessRollup2 | ParentBaseFileName = bash", profile="sigma")

"""Rules written in Sysmon's field names, with no event type, converted to Sigma.

Sigma-to-LogScale converters keep Sysmon's names (TargetObject, PipeName, SourceImage) for the
categories Falcon has no event type for, and write no ``#event_simpleName``. The sigma profile's
``native_events:`` lists Sysmon's events and the fields each carries: the events the rule's
leading filters can pass decide the logsource, the one holding them all with the fewest others;
none, or two alike, is a refusal that says which events they were. The Sigma rule, run over the
events of its logsource, returns what the Python matcher returns over all of them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cqlx import compile_matcher, convert, ir
from cqlx.api import parse
from cqlx.conversion import convert_text
from cqlx.emit.base import DETECTION, PRESENTATION, native_carriers
from cqlx.engines.sigma_sqlite import run_sigma, sigma_check
from cqlx.errors import ProfileError, UnsupportedError
from cqlx.profiles import load_profile, parse_profile

SYSMON = "sysmon"  # the logsource product windows, service sysmon: every Sysmon event

# (query, the logsource category it searches, or SYSMON, and the events the note names)
INFERRED = [
    (r"TargetObject=/\\CurrentVersion\\Run\\/i Image=/\\powershell\.exe$/i", "registry_event",
     "12 (registry_event), 13 (registry_set), 14 (registry_rename)"),
    (r"EventType=SetValue Details=/\\Temp\\/i", "registry_set", "13 (registry_set)"),
    (r"NewName=/\\Services\\/i", "registry_rename", "14 (registry_rename)"),
    (r"EventID=13 TargetObject=/\\Run\\/i", "registry_set", "13 (registry_set)"),
    (r"(TargetObject=/MiniNt$/i EventType=CreateKey) or NewName=/MiniNt$/i", "registry_event",
     "12 (registry_event), 13 (registry_set), 14 (registry_rename) can"),
    (r"PipeName=/^\\MSSE-/ not Image=/\\svchost\.exe$/i", "pipe_created", "17 (pipe_created), 18 (pipe_created)"),
    (r"SourceImage=/\\wscript\.exe$/i StartFunction=LoadLibraryA", "create_remote_thread", "8 (create_remote_thread)"),
    (r"QueryName=/\.onion$/i", "dns_query", "22 (dns_query)"),
    (r"DestinationHostname=/ngrok\.io$/i Initiated=true", "network_connection", "3 (network_connection)"),
    (r"ImageLoaded=/\\dbghelp\.dll$/i Image=/\\rundll32\.exe$/i", "image_load", "7 (image_load)"),
    # StartModule only under not: process access (10) passes too, and no category holds both
    (r"SourceImage=/\\wscript\.exe$/i StartModule!=*", SYSMON, "8 (create_remote_thread), 10 (process_access)"),
    (r"TargetFilename=/\.sch$/i not Image=/\\mmc\.exe$/i", SYSMON,  # created, or deleted: both
     "2 (file_change), 11 (file_event), 15 (create_stream_hash), 23 (file_delete), 26 (file_delete_detected), "
     "27 (file_block_executable), 28 (file_block_shredding), 29 (file_executable_detected)"),
    (r"PipeName=/MSSE/ or TargetObject=/Run/", SYSMON,
     "12 (registry_event), 13 (registry_set), 14 (registry_rename), 17 (pipe_created), 18 (pipe_created) can"),
]


def _logsource(category: str) -> dict[str, str]:
    return {"product": "windows", "service": "sysmon"} if category == SYSMON else \
        {"category": category, "product": "windows"}


@pytest.mark.parametrize(("text", "category", "events"), INFERRED)
def test_the_events_able_to_match_choose_the_logsource(text: str, category: str, events: str) -> None:
    conversion = convert_text(text, "sigma")
    rule = yaml.safe_load(conversion.output)
    assert rule["logsource"] == _logsource(category)
    notes = [d for d in conversion.diagnostics if "selects no event type" in d.message]
    assert len(notes) == 1 and notes[0].kind == PRESENTATION, conversion.diagnostics
    assert f"of its events only {events}" in notes[0].message
    # Sysmon's names are the logsource's own: nothing is passed through with a warning
    assert not [d for d in conversion.diagnostics if "passed through" in d.message], conversion.diagnostics


# (query, what the refusal says)
REFUSED = [
    (r"TargetObject=/Run/ Bogus=1", "no Sysmon event carries the fields its filters require"),
    (r"EventID=4688 CommandLine2=/x/", "no Sysmon event carries the fields its filters require"),
    (r"not TargetObject=/Run/", "needs one to choose a table or logsource"),  # a negation says nothing
    (r"#event_simpleName=Nope TargetObject=/Run/", "event type Nope has no counterpart in profile sigma"),
    (r"event_platform=Lin TargetObject=/Run/", "needs one to choose a table or logsource"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_events_no_one_logsource_holds_are_refused(text: str, reason: str) -> None:
    with pytest.raises(UnsupportedError) as raised:
        convert(text, to="sigma")
    assert reason in str(raised.value)


def test_without_a_service_events_no_one_category_holds_are_refused(tmp_path: Path) -> None:
    """A profile whose native events have no service for all of them refuses, naming the events."""
    sigma = load_profile("sigma")
    assert sigma.native is not None
    profile = tmp_path / "no_service.yaml"
    lines = ["extends: sigma", "native_events:", "  source: Sysmon", "  product: windows", "  events:"]
    lines += [f"    '{e}': [{', '.join(sorted(f))}]" for e, f in sigma.native.events.items()]
    lines += ["  logsources:"]
    lines += [f"    {name}: [{', '.join(repr(e) for e in held)}]" for name, held in sigma.native.logsources]
    profile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UnsupportedError, match=r"those its filters can pass are 8 \(create_remote_thread\), 10 "
                                               r"\(process_access\), which no one logsource holds"):
        convert(r"SourceImage=/\\wscript\.exe$/i", to="sigma", profile=str(profile))


# (predicate, fields the rule computed before it, the events it can pass)
CARRIERS = [
    ("PipeName=/x/", set(), {"17", "18"}),
    ("PipeName=/x/", {"PipeName"}, "all"),  # a computed field says nothing of the event
    ("PipeName=/x/ or Details=/y/", set(), {"13", "17", "18"}),
    ("PipeName=/x/ Details=/y/", set(), set()),
    ("EventID=13 or EventID=99", set(), {"13"}),
    ("not PipeName=/x/", set(), "all"),
    ("#type=sysmon", set(), "all"),
    ("Details!=*", set(), "all"),
]


@pytest.mark.parametrize(("text", "computed", "events"), CARRIERS)
def test_native_carriers(text: str, computed: set[str], events: Any) -> None:
    native = load_profile("sigma").native
    assert native is not None
    step = parse(text).steps[0]
    assert isinstance(step, ir.Filter)
    assert native_carriers(step.pred, native, computed) == (set(native.events) if events == "all" else events)


def test_only_sigma_reads_sysmon_names() -> None:
    """Defender's tables are not named after Sysmon's events: the KQL refusal is unchanged."""
    with pytest.raises(UnsupportedError, match="needs one to choose a table or logsource"):
        convert(r"TargetObject=/\\Run\\/i", to="kql")


EVENTS: list[dict[str, Any]] = [
    {"EventID": 13, "EventType": "SetValue", "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
     "TargetObject": "HKU\\S-1-5-21\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\upd",
     "Details": "C:\\Users\\a\\AppData\\Local\\Temp\\upd.exe"},
    {"EventID": 12, "EventType": "CreateKey", "Image": "C:\\Windows\\regedit.exe",
     "TargetObject": "HKLM\\SYSTEM\\CurrentControlSet\\Control\\MiniNt"},
    {"EventID": 14, "EventType": "RenameKey", "Image": "C:\\Windows\\regedit.exe",
     "TargetObject": "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Old", "NewName": "HKLM\\SYSTEM\\Control\\MiniNt"},
    {"EventID": 13, "EventType": "SetValue", "Image": "C:\\Windows\\explorer.exe",
     "TargetObject": "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\ok", "Details": "C:\\ok.exe"},
    {"EventID": 17, "EventType": "CreatePipe", "Image": "C:\\Users\\a\\beacon.exe", "PipeName": "\\MSSE-1234-server"},
    {"EventID": 17, "EventType": "CreatePipe", "Image": "C:\\Windows\\System32\\svchost.exe",
     "PipeName": "\\MSSE-5678-server"},
    {"EventID": 1, "Image": "C:\\Windows\\System32\\reg.exe", "CommandLine": "reg add ...\\CurrentVersion\\Run\\x",
     "TargetObject": "not a Sysmon field of event 1, and no registry event"},
    {"EventID": 8, "SourceImage": "C:\\Windows\\System32\\wscript.exe", "TargetImage": "C:\\Windows\\notepad.exe",
     "StartFunction": "LoadLibraryA"},
    {"EventID": 10, "SourceImage": "C:\\Windows\\System32\\wscript.exe", "TargetImage": "C:\\Windows\\lsass.exe"},
    {"EventID": 11, "Image": "C:\\Windows\\System32\\dllhost.exe", "TargetFilename": "C:\\Users\\a\\SchCache\\d.sch"},
    {"EventID": 23, "Image": "C:\\Users\\a\\wiper.exe", "TargetFilename": "C:\\Users\\a\\SchCache\\e.sch",
     "IsExecutable": "false"},
    {"EventID": 11, "Image": "C:\\Windows\\System32\\mmc.exe", "TargetFilename": "C:\\Users\\a\\SchCache\\f.sch"},
]


@pytest.mark.parametrize("text", [i[0] for i in INFERRED])
def test_the_logsource_holds_every_event_the_matcher_returns(text: str) -> None:
    """The Sigma rule over the events of its logsource (SQLite, pySigma's backend) returns the
    events the Python matcher returns over all of them (Sysmon's names are the raw events')."""
    rule = convert(text, to="sigma")
    native = load_profile("sigma").native
    assert native is not None
    category = yaml.safe_load(rule)["logsource"].get("category")
    held = dict(native.logsources)[category] if category else tuple(native.events)
    inside = [i for i, e in enumerate(EVENTS) if str(e["EventID"]) in held]
    (_, hits), *_ = run_sigma(rule, [EVENTS[i] for i in inside])
    expected = sorted(EVENTS.index(e) for e in compile_matcher(text).run(EVENTS))
    assert sorted(inside[h] for h in hits) == expected


def test_some_rules_match() -> None:
    """The agreement above is not about empty results only."""
    matched = [t for t, _, _ in INFERRED if compile_matcher(t).run(EVENTS)]
    assert len(matched) >= 8, matched


def test_the_rules_pass_sigma_check(tmp_path: Path) -> None:
    for index, text in enumerate(i[0] for i in INFERRED):
        rule = convert(text, to="sigma").replace("title: Converted LogScale rule", f"title: Sysmon-named rule {index}")
        (tmp_path / f"sysmon_named_rule_{index:02}.yml").write_text(rule, encoding="utf-8")
    ok, output = sigma_check(str(tmp_path))
    assert ok, output


NATIVE_ERRORS = [
    ("native_events: {source: S, product: windows, events: {'1': [A]}, logsources: {x: ['2']}}",
     "native_events.logsources.x must list events named under native_events.events (not there: 2)"),
    ("native_events: {source: S, product: windows, events: {'1': []}, logsources: {x: ['1']}}",
     "native_events.events.1 must be a list of field names"),
    ("native_events: {source: S, product: windows, events: {'1': [A]}, logsources: {}}",
     "native_events needs at least one entry under logsources:"),
    ("native_events: {source: S, product: windows, events: {'1': [A]}, logsources: {x: ['1']}, tables: {}}",
     "unknown key 'tables' in native_events"),
]


@pytest.mark.parametrize(("spec", "message"), NATIVE_ERRORS)
def test_native_events_are_validated(spec: str, message: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(message)):
        parse_profile(f"extends: sigma\n{spec}\n", "custom.yaml", load_profile("sigma"))


def test_only_a_sigma_profile_names_logsources() -> None:
    with pytest.raises(ProfileError, match="only a sigma profile has it"):
        parse_profile("extends: mde\nnative_events: {source: S, product: w, events: {'1': [A]}, "
                      "logsources: {x: ['1']}}\n", "custom.yaml", load_profile("mde"))


# A field the sigma profile does not map is passed through under its Falcon name: (query, field,
# the loss). Shown, or tested when the logsource's Sysmon events carry that name, it is presentation
# loss; tested otherwise, the Sigma rule reads a field its events do not carry: detection loss.
PASSED_THROUGH = [
    ("#event_simpleName=ProcessRollup2 UserSid=S-1-5-18", "UserSid", DETECTION),
    ("#event_simpleName=ProcessRollup2 CommandLine=*x* | event_platform=Win or CommandLine=*y*",
     "event_platform", DETECTION),
    ("#event_simpleName=ProcessRollup2 CommandLine=*x* | table([CommandLine, UserSid])", "UserSid", PRESENTATION),
    # Sysmon's process creation events carry IntegrityLevel, under that name
    ("#event_simpleName=ProcessRollup2 IntegrityLevel=High", "IntegrityLevel", PRESENTATION),
    # group keys decide the groups a threshold counts; without one every group is a result
    ("#event_simpleName=ProcessRollup2 CommandLine=*x* | groupBy(aid) | _count > 3", "aid", DETECTION),
    ("#event_simpleName=ProcessRollup2 CommandLine=*x* | groupBy(aid)", "aid", PRESENTATION),
    ("#event_simpleName=DnsRequest RequestType=28", "RequestType", DETECTION),
    ("#event_simpleName=DnsRequest QueryStatus=0", "QueryStatus", PRESENTATION),
]


@pytest.mark.parametrize(("text", "field", "kind"), PASSED_THROUGH)
def test_a_field_passed_through_is_detection_loss_where_its_events_lack_it(text: str, field: str, kind: str) -> None:
    conversion = convert_text(text, "sigma", policy="ignore")
    (loss,) = [d for d in conversion.diagnostics if f"field {field} is not mapped" in d.message]
    assert loss.kind == kind, loss.message
    assert ("do not carry" in loss.message) == (kind == DETECTION)

"""Windows paths: Falcon writes them from the volume's device, Defender, Sysmon (Sigma) and ASIM
from the drive letter (profile transform ``drive_path``). A test that reads the start of the path
is detection loss there; one blind to it converts, and its rows agree on duckdb-kql, whose tables
hold the drive-letter form (cqlx.reshape)."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import CqlError, convert, ir
from cqlx.paths import extract_loss, loss, unix_only
from cqlx.profiles import load_profile
from cqlx.reshape import to_tables
from tests.agreement import assert_agree

F = "ImageFileName"


@pytest.mark.parametrize(("pred", "reason"), [
    # blind to the start of the path
    (ir.Regex(F, "\\\\cmd\\.exe$", "i"), None),
    (ir.Regex(F, "\\\\Windows\\\\System32\\\\"), None),
    (ir.Glob(F, "*\\cmd.exe"), None),
    (ir.Glob(F, "*\\Temp\\*"), None),
    (ir.Eq(F, "cmd.exe"), None),  # matches no full path in either form
    (ir.Eq(F, "/usr/bin/curl"), None),  # not a Windows path: written the same
    (ir.In(F, ("*\\a.exe", "*\\b.exe")), None),
    (ir.Exists(F), None),
    (ir.Regex(F, "^\\/usr\\/bin\\/base64$", "i"), None),  # a Unix path: written the same
    (ir.Regex(F, "^/bin/dd$"), None),
    (ir.Regex(F, "\\\\DeviceCensus\\.exe$", "i"), None),  # a file named Device...: not the device
    (ir.Glob(F, "*\\Device\\*"), "names the device"),
    # reads the start of the path
    (ir.Eq(F, "\\Device\\HarddiskVolume3\\Windows\\System32\\cmd.exe"), "equality"),
    (ir.Eq(F, "C:\\Windows\\System32\\cmd.exe"), "equality"),
    (ir.Glob(F, "\\Device\\HarddiskVolume*\\Windows\\*"), "anchored at the start"),
    (ir.Glob(F, "*HarddiskVolume3\\*"), "names the device"),
    (ir.In(F, ("*\\a.exe", "C:\\b.exe")), "anchored at the start"),
    (ir.Regex(F, "^\\\\Device\\\\HarddiskVolume\\d+\\\\Windows\\\\"), "anchored at the start"),
    (ir.Regex(F, "\\AC:"), "anchored at the start"),
    (ir.Regex(F, "HarddiskVolume\\d+\\\\Users\\\\"), "names the device"),
    (ir.Regex(F, "[cC]:\\\\Windows"), "names the device"),
    # by the paths compared: depth counted from the start
    (ir.Regex(F, "^(?:[^\\\\]*\\\\){2}[^\\\\]+$"), "anchored at the start"),
    (ir.Regex(F, "(?:\\\\[^\\\\]+){3}\\\\[^\\\\]+\\.exe$"), "differently"),
    (ir.ExprTest(ir.Func("length", (ir.Ref(F),)), ">", ir.Lit(40)), "test() expression"),
])
def test_loss(pred: ir.Pred, reason: str | None) -> None:
    why = loss(pred)
    assert (why is None) if reason is None else (why is not None and reason in why), why


@pytest.mark.parametrize(("pattern", "reason"), [
    # the group is the last part of the path
    ("\\\\(?<name>[^\\\\]+)$", None),
    # the idiom of Falcon content: an optional device, then from the first folder on
    ("(\\\\Device\\\\HarddiskVolume\\d+)?(?<dir>\\\\Windows\\\\.+\\\\)(?<name>[^\\\\]+)$", None),
    # a file in the root of the volume: Falcon's form matches with the device as the folder
    ("(\\\\Device\\\\HarddiskVolume\\d+)?(?<dir>\\\\.+\\\\)(?<name>.+$)", "differently"),
    # a name among others, after a folder: never the device
    ("\\\\(?<name>(whoami|net1?|ping)\\.exe)", None),
    ("\\\\(?<name>\\w+\\.\\w{3})", None),
    # what the group takes may include the start of the path (shown by a path of the rule's words)
    ("(?<dir>.+)\\\\evil\\.exe", "captures differently"),
    ("\\\\(?<dir>\\w+)\\\\evil", "differently"),
    ("(?<dir>.+\\\\)(?<name>[^\\\\]+)$", "captures differently"),
    ("\\\\Device\\\\HarddiskVolume\\d+(?<rest>.+$)", "names the device"),
])
def test_extract_loss(pattern: str, reason: str | None) -> None:
    why = extract_loss(pattern, "")
    assert (why is None) if reason is None else (why is not None and reason in why), why


def _event(path: str) -> dict[str, Any]:
    return {"#event_simpleName": "ProcessRollup2", "aid": "a1", "ComputerName": "h1", "CommandLine": path,
            "ImageFileName": path, "FileName": path.rsplit("\\", 1)[-1]}


PATHS = ["\\Device\\HarddiskVolume3\\Windows\\System32\\cmd.exe",
         "\\Device\\HarddiskVolume3\\Users\\bob\\Downloads\\cmd.exe",
         "\\Device\\HarddiskVolume4\\Tools\\psexec.exe"]


@pytest.mark.parametrize("test", [
    "ImageFileName=/\\\\cmd\\.exe$/i",
    "ImageFileName=\"*\\\\Downloads\\\\*\"",
    "ImageFileName=/\\\\(?<exe>[^\\\\]+)$/ | exe=/^ps/",
])
def test_tests_blind_to_the_start_convert_and_rows_agree(test: str) -> None:
    rule = f"#event_simpleName=ProcessRollup2 | {test} | select([ComputerName, CommandLine])"
    rows = assert_agree(rule, [_event(p) for p in PATHS], engines=("kql", "spl"))
    assert 0 < len(rows) < len(PATHS)
    if "?<" not in test:  # (Sigma has no computed fields)
        convert(rule, to="sigma")


@pytest.mark.parametrize("target", ["kql", "sigma", "kql:sentinel-asim"])
@pytest.mark.parametrize("test", [
    "ImageFileName=/^\\\\Device\\\\HarddiskVolume\\d+\\\\Windows\\\\/",
    "ImageFileName=\"\\\\Device\\\\HarddiskVolume3\\\\Windows\\\\System32\\\\cmd.exe\"",
    "ImageFileName=/(?<dir>.+)\\\\cmd\\.exe/",
])
def test_tests_that_read_the_start_are_detection_loss(target: str, test: str) -> None:
    to, _, profile = target.partition(":")
    with pytest.raises(CqlError, match=r"from the volume's device .* from the drive letter \(C:\\\.\.\.\)"):
        convert(f"#event_simpleName=ProcessRollup2 | {test}", to=to, profile=profile or None)


def test_rules_on_other_platforms_read_unix_paths() -> None:
    """A rule over macOS or Linux events reads no Windows path: nothing to check."""
    rule = "#event_simpleName=ProcessRollup2 event_platform=Mac | ImageFileName=/^\\\\x/"
    assert "matches regex" in convert(rule, to="kql")
    with pytest.raises(CqlError, match="from the drive letter"):
        convert(rule.replace("Mac", "Win"), to="kql")


def test_raw_fdr_keeps_falcon_form() -> None:
    """Splunk over raw FDR holds Falcon's own ImageFileName: nothing to check."""
    assert "HarddiskVolume" in convert("#event_simpleName=ProcessRollup2 "
                                       "| ImageFileName=/^\\\\Device\\\\HarddiskVolume3\\\\/", to="spl")


def test_a_field_the_rule_writes_is_its_own() -> None:
    rule = "#event_simpleName=ProcessRollup2 | ImageFileName := lower(CommandLine) | ImageFileName=/^c:/"
    assert "matches regex" in convert(rule, to="kql")


def test_test_tables_hold_the_drive_letter_form() -> None:
    rows = to_tables([_event(PATHS[0]), _event(PATHS[2])], load_profile("mde"))["DeviceProcessEvents"][1]
    assert [r["FolderPath"] for r in rows] == ["C:\\Windows\\System32\\cmd.exe", "D:\\Tools\\psexec.exe"]


def test_the_matcher_on_sigma_named_records_checks_paths_too() -> None:
    """The Python matcher over records in the Sigma taxonomy's names (Sysmon's Image, from the
    drive letter): a test blind to the start runs, one that reads it is refused."""
    from cqlx import compile_matcher
    from cqlx.errors import UnsupportedError
    from cqlx.reshape import to_records

    records = [r for r in to_records([_event(p) for p in PATHS], load_profile("sigma"), ["ProcessRollup2"])
               if r is not None]
    assert records[0]["Image"] == "C:\\Windows\\System32\\cmd.exe"
    rows = compile_matcher("#event_simpleName=ProcessRollup2 | ImageFileName=/\\\\cmd\\.exe$/i",
                           profile="sigma").run(records)
    assert len(rows) == 2
    with pytest.raises(UnsupportedError, match="from the drive letter"):
        compile_matcher("#event_simpleName=ProcessRollup2 | ImageFileName=/^\\\\Device\\\\/", profile="sigma")


def test_every_target_exempts_a_unix_path_alike() -> None:
    """A field a leading filter requires to hold a '/' is a Unix path: a later anchored test on it
    converts for KQL and runs in the matcher over Sigma-named records alike; without the filter,
    both refuse it."""
    from cqlx import compile_matcher
    from cqlx.errors import UnsupportedError

    unix = "#event_simpleName=ProcessRollup2 | ImageFileName=/\\/bin\\// | ImageFileName=/^(\\/usr|\\/opt)/"
    assert "matches regex" in convert(unix, to="kql")
    assert compile_matcher(unix, profile="sigma").run([{"Image": "/usr/bin/sh"}]) is not None
    windows = "#event_simpleName=ProcessRollup2 | ImageFileName=/^\\\\Device/"
    with pytest.raises(CqlError, match="from the drive letter"):
        convert(windows, to="kql")
    with pytest.raises(UnsupportedError, match="from the drive letter"):
        compile_matcher(windows, profile="sigma")


@pytest.mark.parametrize(("rule", "noted"), [
    ("| select([ComputerName, ImageFileName])", True),
    ("| groupBy([ImageFileName])", True),
    ("| groupBy([ComputerName], function=collect([ImageFileName]))", True),
    ("| ImageFileName=/\\\\cmd\\.exe$/ | select([ComputerName])", False),  # tested, not shown
])
def test_a_path_shown_from_the_drive_letter_is_presentation_loss(rule: str, noted: bool) -> None:
    """The rows show the same file written the other way: noted (and `cqlx test` leaves the field
    out of its comparison, as it does for every field a conversion shows differently)."""
    from cqlx.api import parse
    from cqlx.conversion import convert_query

    for platform, expected in (("Win", noted), ("Mac", False)):
        text = f"#event_simpleName=ProcessRollup2 event_platform={platform} {rule}"
        diagnostics = convert_query(parse(text), "kql", query_text=text).diagnostics
        shown = [d for d in diagnostics if "is shown as FolderPath" in d.message]
        assert bool(shown) is expected, (platform, diagnostics)
        assert all(d.kind == "presentation" and d.fields == ("ImageFileName",) for d in shown)


@pytest.mark.parametrize(("pred", "unix"), [
    (ir.Regex(F, "\\/(docker|kubectl|crictl)$", "i"), True),
    (ir.Regex(F, "^/usr/(s?bin)/"), True),
    (ir.Regex(F, "(?:/)+x"), True),
    (ir.Eq(F, "/usr/bin/curl"), True),
    (ir.Glob(F, "*/bin/*"), True),
    (ir.In(F, ("/bin/sh", "/bin/bash")), True),
    # a match without a slash is possible: maybe a Windows path
    (ir.Regex(F, "(\\/docker|evil)"), False),
    (ir.Regex(F, "(?:/)*x"), False),
    (ir.Regex(F, "docker$"), False),
    (ir.In(F, ("/bin/sh", "cmd.exe")), False),
    (ir.Not(ir.Regex(F, "/")), False),
])
def test_unix_only(pred: ir.Pred, unix: bool) -> None:
    assert unix_only(pred) is unix


def test_a_rule_that_requires_a_unix_path_shows_it_as_it_is() -> None:
    """The seed reads `ImageFileName=/\\/(docker|kubectl|...)$/i`: a Unix path, the same on every
    target, so showing it is no loss (a later test on it is not checked either)."""
    from cqlx.api import parse
    from cqlx.conversion import convert_query

    text = ("#event_simpleName=ProcessRollup2 | ImageFileName=/\\/(docker|kubectl)$/i "
            "| ImageFileName=/^\\/usr/ | select([ImageFileName])")
    conversion = convert_query(parse(text), "kql", query_text=text)
    assert not conversion.diagnostics, conversion.diagnostics

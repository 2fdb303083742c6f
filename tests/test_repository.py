"""LogScale's ``#repo`` tag, answered by a profile's ``repositories:`` (cqlx.repository).

Public Falcon hunting content filters sensor events with ``#repo=base_sensor``; a target holds no
such field, but its profile says which repository its events stand for. A leading test true for
all of them leaves the rule (rows checked on duckdb-kql and the SPL oracle against the Python
matcher, over events exported with the tag); a test true for none is detection loss."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import CqlError, convert, ir
from cqlx.api import parse
from cqlx.profiles import load_profile, parse_profile
from cqlx.repository import REPO_TAG, answer_tag, tag_truth
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 "


@pytest.mark.parametrize(("pred", "value", "expected"), [
    (ir.Eq(REPO_TAG, "base_sensor"), "base_sensor", True),
    (ir.Eq(REPO_TAG, "base_sensor"), "detections", False),
    (ir.Eq(REPO_TAG, "BASE_SENSOR", ignore_case=True), "base_sensor", True),
    (ir.Eq(REPO_TAG, "BASE_SENSOR"), "base_sensor", False),
    (ir.Glob(REPO_TAG, "base_*"), "base_sensor", True),
    (ir.Glob(REPO_TAG, "*sensor"), "sensor_metadata", False),
    (ir.In(REPO_TAG, ("detections", "base_*")), "base_sensor", True),
    (ir.Regex(REPO_TAG, "^base"), "base_sensor", True),
    (ir.Regex(REPO_TAG, "SENSOR$", "i"), "base_sensor", True),
    (ir.Regex(REPO_TAG, "^detect"), "base_sensor", False),
    (ir.Exists(REPO_TAG), "base_sensor", True),
    (ir.Not(ir.Eq(REPO_TAG, "detections")), "base_sensor", True),
    (ir.Or((ir.Eq(REPO_TAG, "a"), ir.Eq(REPO_TAG, "base_sensor"))), "base_sensor", True),
    (ir.And((ir.Exists(REPO_TAG), ir.Eq(REPO_TAG, "a"))), "base_sensor", False),
    # reads another field too, or is not a test cqlx decides here: kept in the rule
    (ir.Or((ir.Eq(REPO_TAG, "base_sensor"), ir.Eq("aid", "x"))), "base_sensor", None),
    (ir.Eq("#type", "base_sensor"), "base_sensor", None),
    (ir.Regex(REPO_TAG, "(unclosed"), "base_sensor", None),
])
def test_tag_truth(pred: ir.Pred, value: str, expected: bool | None) -> None:
    assert tag_truth(pred, REPO_TAG, value) is expected


def _steps(rule: str, values: tuple[str, ...]) -> tuple[tuple[ir.Step, ...], int]:
    query, refused = answer_tag(parse(rule), REPO_TAG, values)
    return query.steps, len(refused)


@pytest.mark.parametrize(("rule", "expected", "refused"), [
    # true for every repository: the conjunct leaves; the rest of the filter stays
    ("#repo=base_sensor #event_simpleName=ProcessRollup2 | FileName=cmd.exe", "FileName=cmd.exe", 0),
    ("#repo=base_sensor | FileName=cmd.exe", "FileName=cmd.exe", 0),
    # false for every one: taken out and reported
    ("#repo=detections FileName=cmd.exe", "FileName=cmd.exe", 1),
    # true for one of two repositories only: kept
    ("#repo=base_sensor FileName=cmd.exe", "#repo=base_sensor FileName=cmd.exe", 0),
    # after a step that is not a filter, the test is not the rule's source: kept
    ("FileName=cmd.exe | groupBy([#repo]) | #repo=base_sensor",
     "FileName=cmd.exe | groupBy([#repo]) | #repo=base_sensor", 0),
])
def test_answer_tag(rule: str, expected: str, refused: int) -> None:
    values = ("base_sensor", "other") if rule.startswith("#repo=base_sensor FileName") else ("base_sensor",)
    steps, count = _steps(rule, values)
    assert steps == _steps(expected, ())[0]
    assert count == refused


def _event(repo: str, name: str) -> dict[str, Any]:
    return {"#repo": repo, "#event_simpleName": "ProcessRollup2", "ComputerName": "h1", "FileName": name,
            "ImageFileName": "\\Device\\HarddiskVolume3\\Windows\\System32\\" + name, "CommandLine": name}


def test_rows_agree_with_the_matcher_over_events_of_the_sensor_repository() -> None:
    rule = "#repo=base_sensor " + P + "| FileName=/^(cmd|whoami)\\.exe$/i | select([ComputerName, FileName])"
    rows = assert_agree(rule, [_event("base_sensor", "cmd.exe"), _event("base_sensor", "whoami.exe"),
                               _event("base_sensor", "notepad.exe")], engines=("kql", "spl"))
    assert len(rows) == 2
    for target in ("kql", "spl", "sigma"):
        assert "repo" not in convert(rule, to=target).replace("repository", "")


@pytest.mark.parametrize("target", ["kql", "spl", "sigma"])
def test_another_repository_is_detection_loss(target: str) -> None:
    with pytest.raises(CqlError, match=r"reads LogScale repositories \(#repo\) other than .*\(base_sensor\)"):
        convert("#repo=detections " + P + "| FileName=cmd.exe", to=target)


def test_the_python_matcher_keeps_testing_the_tag() -> None:
    """The reference reads the tag from the events (LogScale exports carry it): never answered."""
    assert load_profile("falcon").repositories == ()
    assert "base_sensor" in convert("#repo=base_sensor " + P + "| FileName=cmd.exe", to="python")


def test_the_profile_key_is_validated() -> None:
    text = load_profile("splunk").path
    with open(text, encoding="utf-8") as handle:
        source = handle.read().replace("repositories: [base_sensor]", "repositories: base_sensor")
    with pytest.raises(CqlError, match="repositories must be a list"):
        parse_profile(source, "bad.yaml")

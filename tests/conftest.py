"""Shared corpus: the sample rules and events in samples/, and the engines' availability."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from cqlx.engines.kusto_language import kusto_unavailable_reason

# The property tests draw the same examples on every run, so CI passes or fails on the code, not on
# the draw; CQLX_FUZZ_RANDOM=1 draws new ones (fuzz/fuzz_cql.py explores for as long as it is given).
settings.register_profile("cqlx", derandomize=os.environ.get("CQLX_FUZZ_RANDOM") != "1")
settings.load_profile("cqlx")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SEED_CARD = SAMPLES / "rules" / "container_cli_api.yml"
SEED_EVENTS = SAMPLES / "events" / "container_cli_api.ndjson"
SEED_EXPECTED = SAMPLES / "events" / "container_cli_api.expected.ndjson"


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def seed_text() -> str:
    from cqlx.rules import load_rule

    return load_rule(SEED_CARD).text


@pytest.fixture(scope="session")
def seed_events() -> list[dict[str, Any]]:
    return read_ndjson(SEED_EVENTS)


@pytest.fixture(scope="session")
def seed_expected() -> list[dict[str, Any]]:
    return read_ndjson(SEED_EXPECTED)


@pytest.fixture(scope="session")
def expected_by_host(seed_expected: list[dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """Host → (SuspicionScore, Severity) for every event the seed must return."""
    return {x["ComputerName"]: (x["SuspicionScore"], x["Severity"]) for x in seed_expected if x["match"]}


def require_kusto() -> None:
    """Skip (with the reason) when Node or the npm package is missing; under CQLX_REQUIRE_KUSTO=1
    (set by .ci/run) a missing Kusto parser is a failure, so CI never skips it silently."""
    reason = kusto_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CQLX_REQUIRE_KUSTO") == "1":
        pytest.fail(f"Kusto.Language is required here: {reason}")
    pytest.skip(reason)

"""``bench/corpus.py --causes`` sorts refusals by what stands in the way of a conversion. Its
patterns read the refusal messages cqlx writes, so each cause is checked here on a refusal the
converter really gives: a reworded message that no pattern finds any more fails here, instead of
silently counting as a gap of cqlx's own (which would overstate the ceiling)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

import cqlx

P = "#event_simpleName=ProcessRollup2 "


def _corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cqlx_bench_corpus", Path(__file__).parent.parent / "bench/corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPUS = _corpus()

# (query, target, the cause of its refusal)
CASES = [
    # what the query does not hold
    (P + "| $hunt_helper()", "python", "input"),
    (P + "| CommandLine = ?cmd", "spl", "input"),
    ('readFile("hosts.csv")', "python", "input"),
    (P + "| ipLocation(aip) | aip.country = US", "python", "input"),
    (P + "| join({#event_simpleName=DnsRequest}, field=aid, start=7d)", "python", "input"),
    (P + "| timeChart(function=count())", "kql", "input"),
    # what LogScale does not document
    (P + "| parseXml(CommandLine) | x = 1", "python", "undocumented"),
    (P + "| sort(CommandLine, order=ascending)", "python", "undocumented"),
    (P + "| hash(CommandLine) | _hash = 1", "python", "undocumented"),
    # data the target's profile does not hold
    ("#event_simpleName=OsVersionInfo", "kql", "data"),
    (P + "| ContextProcessId = 1", "kql", "data"),
    (P + "#Vendor=microsoft", "spl", "data"),
    ("CommandLine = /whoami/ #repo=detections", "spl", "data"),
    (P + '"mimikatz"', "spl", "data"),
    # what the target's language has no form for
    (P + "| join({#event_simpleName=DnsRequest}, field=aid)", "sigma", "target"),
    (P + "| x := lower(CommandLine) | x = *whoami*", "sigma", "target"),
    (P + "| d := base64Decode(CommandLine) | d = *IEX*", "spl", "target"),
    # what cqlx could convert and does not (yet)
    (P + "| neighbor(CommandLine)", "python", "cqlx"),
]


@pytest.mark.parametrize(("query", "target", "expected"), CASES)
def test_a_refusal_is_sorted_by_what_stands_in_its_way(query: str, target: str, expected: str) -> None:
    reasons = CORPUS.refusals(cqlx.parse(query), target, query)
    assert reasons, f"{target} converts {query!r}: pick a query it refuses"
    assert expected in {CORPUS.cause(r, target) for r in reasons}, {r: CORPUS.cause(r, target) for r in reasons}


def test_every_cause_is_checked_and_an_unknown_reason_is_cqlx_own() -> None:
    assert {expected for _, _, expected in CASES} == set(CORPUS.CAUSE_NAMES)
    assert CORPUS.cause("something no pattern names") == "cqlx"
    # what the Python matcher cannot run is cqlx's gap: it is cqlx's own engine
    lacking = "geohash() has no counterpart cqlx writes"
    assert CORPUS.cause(lacking, "kql") == "target" and CORPUS.cause(lacking, "python") == "cqlx"


def test_the_ceiling_counts_only_queries_refused_by_cqlx_own_gaps() -> None:
    texts = [P + "| neighbor(CommandLine)", P + "| $hunt_helper() | neighbor(CommandLine)", P + "| CommandLine=x"]
    result = CORPUS.measure([(f"q{i}", t) for i, t in enumerate(texts)])
    python = next(line for line in CORPUS.causes_report(result).splitlines() if line.strip().startswith("python"))
    # one converts, one is refused by a gap of cqlx's own, one also needs a saved search's body
    assert python.split()[-3:] == ["2", "66.7", "%"], python

"""The sample library (samples/library): realistic rules over the constructs real detection content
uses, each with golden outputs per target and the diagnostics each target reports.

A change to an emitter shows here as a diff of the goldens (tests/golden/library/); regenerate on
purpose with ``CQLX_UPDATE_GOLDEN=1`` and read the diff. The cards' own tests (events and expected
rows) run on every engine in ``cqlx test samples/`` (CI) and in tests/test_sample_library.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cqlx.conversion import TARGETS, convert_query
from cqlx.rules import load_rule
from tests.golden import check_golden

LIBRARY = Path(__file__).resolve().parent.parent / "samples" / "library"
CARDS = sorted(LIBRARY.glob("*.yml"))
EXTENSIONS = {"spl": "spl", "kql": "kql", "sigma": "sigma.yml", "python": "py.txt", "cql": "cql"}
RULE_PART = "# ---- the rule ----\n"


@pytest.mark.parametrize("card", CARDS, ids=[c.stem for c in CARDS])
def test_library_goldens(card: Path) -> None:
    rule = load_rule(card)
    query = rule.parse()
    diagnostics: list[str] = []
    for target in TARGETS:
        conversion = convert_query(query, target, None, rule.meta, rule.text)
        output = conversion.output
        if target == "python":  # the runtime before the rule is cqlx's own, the same for every rule
            output = output.split(RULE_PART, 1)[1]
        check_golden(f"library/{card.stem}.{EXTENSIONS[target]}", output)
        diagnostics += [f"{target}: {d.kind}: line {d.span.line}: {d.message}" for d in conversion.diagnostics]
    check_golden(f"library/{card.stem}.diagnostics", "\n".join(diagnostics) + "\n")


def test_the_library_covers_the_constructs() -> None:
    """Every construct family of issue 3 appears in some card (a guard against the library shrinking)."""
    text = "\n".join(card.read_text(encoding="utf-8") for card in CARDS)
    for construct in ("match {", "case {", "(?<", "regex(", "format(", "formatTime(", "lower(", "length(",
                      "concat(", "replace(", "default(", "coalesce(", "rename(", "drop(", "round(", "select(",
                      "table(", "sort(", "groupBy(", "collect(", "selectLast(", "count(", "in(", "cidr(",
                      "wildcard(", "text:contains(", "test(", "base64Decode(", "ipLocation(", "join(", "$",
                      "?{", "=~", "repeat=true", ", sort("):
        assert construct in text, construct


TESTED = [c for c in CARDS if load_rule(c).card.get("tests")]


@pytest.mark.parametrize("card", TESTED, ids=[c.stem for c in TESTED])
def test_library_card_tests_pass_on_every_engine(card: Path) -> None:
    """The card's events give the expected rows on the Python matcher, the saved module, duckdb-kql,
    Kusto.Language, pySigma's sqlite backend and the SPL oracle (engines whose conversion cqlx
    refuses are skipped with the reason)."""
    from cqlx import testing

    rule = load_rule(card)
    report = testing.Report()
    testing.test_rule(rule, report)
    assert report.ok, report.findings


def test_a_rule_no_target_can_run_is_refused_everywhere_with_reasons() -> None:
    rule = load_rule(LIBRARY / "stateful_hunt.yml")
    query = rule.parse()
    for target in ("spl", "kql", "sigma", "python"):
        lost = convert_query(query, target, None, rule.meta, rule.text).detection_loss
        messages = " ".join(d.message for d in lost)
        assert "saved search $falcon/helper:enrich()" in messages, (target, messages)
        # join() converts where the target has one; Sigma has none
        assert ("join()" in messages) == (target == "sigma"), (target, messages)

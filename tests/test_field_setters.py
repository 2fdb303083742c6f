"""Functions that set fields, written as their own stage: ``setField(target="x", value=...)`` is
``x := ...`` (functions-setfield), ``lowercase(field)`` is ``field := lower(field)`` for each field
(functions-lowercase, include=values by default). What they do beyond that (a target read from
the event, renamed fields, a Turkish locale) stays opaque, with the reason.

Tables: CQL → IR, what stays refused; then rows on the Python matcher, duckdb-kql and the SPL
oracle."""

from __future__ import annotations

import pytest

import cqlx
from cqlx import convert, ir
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 | "
A = ir.Ref("A")


@pytest.mark.parametrize(("cql", "steps"), [
    ('setField(target="x", value=A + 1)', (ir.Eval("x", ir.Arith("+", A, ir.Lit(1))),)),
    ('setField(value="v", target="x")', (ir.Eval("x", ir.Lit("v")),)),
    ('lowercase("A")', (ir.Eval("A", ir.Func("lower", (A,))),)),
    ("lowercase([A, B], include=values)", (ir.Eval("A", ir.Func("lower", (A,))),
                                           ir.Eval("B", ir.Func("lower", (ir.Ref("B"),))))),
    ("lowercase(A, locale=en_US)", (ir.Eval("A", ir.Func("lower", (A,))),)),
    ("x := lower(A, locale=da_DK)", (ir.Eval("x", ir.Func("lower", (A,))),)),  # cases as the default
])
def test_lowers_to_assignments(cql: str, steps: tuple[ir.Step, ...]) -> None:
    assert cqlx.parse(cql).steps == steps


@pytest.mark.parametrize(("cql", "writes", "reason"), [
    ("setField(target=name, value=1)", None, "target computed from the event"),
    ("lowercase(A, include=fields)", None, "include=fields"),
    ("lowercase(A, include=both)", None, "include=both"),
    ('lowercase("*")', None, "every field"),
    ("lowercase(A, locale=tr_TR)", ("A",), "locale=tr_TR"),
    ("x := lower(A, locale=az)", ("x",), "locale=az"),
    ("upper(A, locale=lt, as=y)", ("y",), "locale=lt"),
])
def test_what_stays_opaque(cql: str, writes: tuple[str, ...] | None, reason: str) -> None:
    (step,) = cqlx.parse(cql).steps
    assert isinstance(step, ir.Opaque)
    assert (step.effect, step.writes) == (ir.ENRICHES, writes)
    assert reason in step.reason


@pytest.mark.parametrize(("cql", "message"), [
    ('setField(target="x")', "needs target= and value="),
    ('setField(target="", value=1)', "needs a field name"),
    ("lowercase(A, include=keys)", "include=keys is not accepted; accepted: values, fields, both"),
    ('y := setField(target="x", value=1)', "sets fields itself"),
])
def test_bad_arguments_are_errors(cql: str, message: str) -> None:
    with pytest.raises(cqlx.CqlError, match=message):
        cqlx.parse(cql)


def test_a_test_on_what_a_turkish_lowercase_wrote_is_detection_loss() -> None:
    cql = P + "lowercase(CommandLine, locale=tr) | CommandLine = *whoami*"
    for target in ("kql", "spl", "python"):
        conversion = convert_query(cqlx.parse(cql), target, query_text=cql)
        assert any(d.kind == DETECTION and "locale=tr" in d.message for d in conversion.diagnostics), target


def test_cql_writes_the_assignments() -> None:
    cql = P + 'setField(target="Kind", value=if(UserIsAdmin == 1, then="admin", else="user")) | lowercase(FileName)'
    text = convert(cql, to="cql")
    assert 'Kind := if(UserIsAdmin == 1, then="admin", else="user")' in text
    assert "FileName := lower(FileName)" in text
    assert cqlx.parse(text) == cqlx.parse(cql)


# ---------------------------------------------------------------- rows on every engine

EVENTS = [
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "h1", "CommandLine": "C:\\Windows\\WHOAMI.EXE /all",
     "UserIsAdmin": "1"},
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "h2", "CommandLine": "whoami", "UserIsAdmin": "0"},
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "h3", "CommandLine": "notepad.exe", "UserIsAdmin": "1"},
    {"#event_simpleName": "ProcessRollup2", "ComputerName": "h4", "UserIsAdmin": "1"},
]


def test_lowercase_then_a_case_sensitive_test() -> None:
    rule = P + 'lowercase("CommandLine") | CommandLine = "*whoami*" | select([ComputerName, CommandLine])'
    rows = assert_agree(rule, EVENTS)
    assert sorted(rows) == [(("ComputerName", "h1"), ("CommandLine", "c:\\windows\\whoami.exe /all")),
                            (("ComputerName", "h2"), ("CommandLine", "whoami"))]


def test_set_field_assigns_the_value_expression() -> None:
    rule = P + 'setField(target="Kind", value=if(CommandLine == "whoami", then="recon", else="other")) ' \
               '| Kind = "other" | select([ComputerName, Kind])'
    rows = assert_agree(rule, EVENTS)
    assert sorted(rows) == [(("ComputerName", h), ("Kind", "other")) for h in ("h1", "h3", "h4")]

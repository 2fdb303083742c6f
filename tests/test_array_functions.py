"""``array:regex()`` and ``array:contains()``: whether some element of an array passes (the
elements are the fields ``a[0]``, ``a[1]``... up to the first index missing: the Array Syntax;
functions-array-regex, functions-array-contains). The Python matcher and canonical CQL convert
them; no profile of another target maps LogScale's array fields, so those refuse with the reason.

Tables: CQL → IR, what stays opaque or is an error, each target's verdict; then rows."""

from __future__ import annotations

import pytest

import cqlx
from cqlx import compile_matcher, convert, ir, testing
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION, RuleMeta
from cqlx.rules import Rule
from cqlx.witness import generate


@pytest.mark.parametrize(("cql", "pred"), [
    ('array:regex("Commands[]", regex="get|put")',
     ir.ArrayAny("Commands", ir.Regex("Commands[]", "get|put", ""))),  # no flags by default
    ('array:regex("Commands[]", regex="GET", flags=i)', ir.ArrayAny("Commands", ir.Regex("Commands[]", "GET", "i"))),
    ('array:contains("Tags[]", value="admin")', ir.ArrayAny("Tags", ir.Eq("Tags[]", "admin"))),
    ('!array:contains("Tags[]", value="admin")', ir.Not(ir.ArrayAny("Tags", ir.Eq("Tags[]", "admin")))),
])
def test_lowers_to_a_test_of_each_element(cql: str, pred: ir.Pred) -> None:
    (step,) = cqlx.parse(cql).steps
    assert step == ir.Filter(pred)


@pytest.mark.parametrize(("cql", "reason"), [
    ('array:regex("a[0].b[]", regex="x")', "nested array"),
    ('array:regex("a[]", regex="(?<g>x)")', "named groups"),
])
def test_what_stays_opaque(cql: str, reason: str) -> None:
    (step,) = cqlx.parse(cql).steps
    assert isinstance(step, ir.Filter) and isinstance(step.pred, ir.OpaqueTest)
    assert reason in step.pred.reason


@pytest.mark.parametrize(("cql", "message"), [
    ('array:regex("Commands", regex="x")', 'its name with \\[\\] \\("Commands\\[\\]"\\)'),
    ('array:regex("a[].b", regex="x")', "its name with"),  # not an array: the Array Syntax ends in []
    ('array:regex("Commands[]")', "needs the array and regex="),
    ('array:contains("Commands[]")', "needs the array and value="),
    ('array:regex("Commands[]", regex="x", flags=g)', "accepts the flags d, i and m"),
])
def test_bad_arguments_are_errors(cql: str, message: str) -> None:
    with pytest.raises(cqlx.CqlError, match=message):
        cqlx.parse(cql)


RULE = '#repo=detections | array:regex("Commands[]", regex="^(get|put) ", flags=i) ' \
       '| Commands := concatArray(Commands, separator="; ") | select([UserName, Commands])'
EVENTS = [
    {"#repo": "detections", "UserName": "u1", "Commands[0]": "ls", "Commands[1]": "GET C:\\x.txt"},
    {"#repo": "detections", "UserName": "u2", "Commands[0]": "ls", "Commands[1]": "cat x"},
    {"#repo": "detections", "UserName": "u3", "Commands[1]": "get y"},  # no Commands[0]: no elements
    {"#repo": "detections", "UserName": "u4", "Commands[0]": "put z", "Commands[2]": "x"},
    {"#repo": "detections", "UserName": "u5"},
]


def test_the_matcher_tests_each_element_up_to_the_first_missing_index() -> None:
    rows = compile_matcher(RULE).run(EVENTS)
    assert rows == [{"UserName": "u1", "Commands": "ls; GET C:\\x.txt"}, {"UserName": "u4", "Commands": "put z"}]


def test_contains_is_a_case_sensitive_equality_of_an_element() -> None:
    matcher = compile_matcher('array:contains("Tags[]", value="Admin") | select([id])')
    events = [{"id": 1, "Tags[0]": "user", "Tags[1]": "Admin"}, {"id": 2, "Tags[0]": "admin"},
              {"id": 3, "Tags[0]": "Admins"}]
    assert matcher.run(events) == [{"id": 1}]
    negated = compile_matcher('!array:contains("Tags[]", value="Admin") | select([id])')
    assert negated.run(events) == [{"id": 2}, {"id": 3}]


@pytest.mark.parametrize("target", ["kql", "spl", "sigma"])
def test_other_targets_refuse_with_the_reason(target: str) -> None:
    conversion = convert_query(cqlx.parse(RULE), target, query_text=RULE)
    assert any(d.kind == DETECTION and "tests the elements of Commands[]" in d.message
               for d in conversion.diagnostics), conversion.diagnostics


def test_cql_writes_it_back() -> None:
    for cql in (RULE, '!array:contains("Tags[]", value="a\\"b")'):
        text = convert(cql, to="cql")
        assert "array:" in text
        assert cqlx.parse(text) == cqlx.parse(cql)


def test_witnesses_run_the_matcher_and_its_module_alike() -> None:
    rule = Rule(path="array.cql", text=RULE, meta=RuleMeta())
    report = testing.Report()
    query = rule.parse()
    cases = [testing.Case(f"witness: {w.name}", w.event) for w in generate(query)]
    assert any(w.event.get("Commands[1]") for w in generate(query))  # an element past the first passes
    testing.test_rule(rule, report, extra=cases, query=query, targets=("python-module",))
    assert not report.findings, report.findings
    assert report.checked[("array.cql", "python-module")] == len(cases)

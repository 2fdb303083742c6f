"""What cqlx reads but cannot give a meaning to on other platforms (ir.Opaque, ir.OpaqueTest), and
how the loss is classified: an enrichment nothing later tests loses only presentation; a stage that
filters, aggregates or feeds a test loses detection. Also the syntax that reaches it: saved
searches, query parameters, time spans, and ``field match { }``."""

from __future__ import annotations

import pytest

from cqlx import compile_matcher, ir, parse
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION, PRESENTATION
from cqlx.errors import UnsupportedError
from cqlx.passes import decisive_after, decisive_steps

PR2 = "#event_simpleName=ProcessRollup2 "


@pytest.mark.parametrize(("text", "name", "effect", "writes"), [
    ("$falcon/helper:enrich(field=ProcessIntegrityLevel)", "$falcon/helper:enrich", ir.FILTERS, None),
    ('$"crowdstrike/fltr-core:zerotrust"()', '$"crowdstrike/fltr-core:zerotrust"', ir.FILTERS, None),
    ("ipLocation(RemoteAddressIP4)", "ipLocation", ir.ENRICHES, ("RemoteAddressIP4.*",)),
    ("ipLocation(field=aip, as=geo)", "ipLocation", ir.ENRICHES, ("geo.*",)),
    ("ioc:lookup(field=[RemoteIP], type=ip_address)", "ioc:lookup", ir.ENRICHES, ("ioc.*",)),
    ("ioc:lookup(field=[RemoteIP], type=ip_address, strict=true)", "ioc:lookup", ir.FILTERS, ("ioc.*",)),
    ("ioc:lookup(RemoteIP, prefix=hit)", "ioc:lookup", ir.ENRICHES, ("hit.*",)),
    ("join({#event_simpleName=DnsRequest}, field=aid, key=aid, max=2)", "join", ir.FILTERS, None),
    ("readFile(hosts.csv)", "readFile", ir.AGGREGATES, None),
    ("frobnicate(x)", "frobnicate", ir.FILTERS, None),
    ("x := frobnicate(y)", "frobnicate", ir.ENRICHES, ("x",)),
    ("kvParse(field=CommandLine)", "kvParse", ir.ENRICHES, None),
])
def test_opaque_stages_keep_their_text_and_effect(text: str, name: str, effect: str,
                                                  writes: tuple[str, ...] | None) -> None:
    (step,) = parse(text).steps
    assert isinstance(step, ir.Opaque)
    assert (step.name, step.text, step.effect, step.writes) == (name, text, effect, writes)


@pytest.mark.parametrize(("text", "kind"), [
    # Shown only: the enrichment is presentation loss, the rule still converts.
    (PR2 + "| ipLocation(RemoteAddressIP4) | select([aid, RemoteAddressIP4.country])", PRESENTATION),
    (PR2 + "| Age := frobnicate(x) | select([aid, Age])", PRESENTATION),
    # Tested later (directly, through an assignment, through a group key): detection loss.
    (PR2 + "| ipLocation(RemoteAddressIP4) | RemoteAddressIP4.country = RU", DETECTION),
    (PR2 + "| Age := frobnicate(x) | Old := Age * 2 | Old > 3", DETECTION),
    (PR2 + "| ipLocation(aip) | groupBy(aip.country)", DETECTION),
    (PR2 + "| kvParse(field=CommandLine) | user = root", DETECTION),
    # an array's elements are what it writes: a test on one of them is detection loss
    (PR2 + '| splitString(field=CommandLine, by=" ", as=parts) | parts[1] = "-enc"', DETECTION),
    (PR2 + '| parts := splitString(CommandLine, by=" ") | groupBy([parts[0]])', DETECTION),
    (PR2 + '| splitString(field=CommandLine, by=" ", as=parts) | select([aid, parts[0]])', PRESENTATION),
    # Filters and aggregations always change which rows come out.
    (PR2 + "| $saved_search()", DETECTION),
    (PR2 + "| readFile(x.csv)", DETECTION),
])
def test_loss_kind_follows_what_later_steps_test(text: str, kind: str) -> None:
    query = parse(text)
    for target in ("spl", "kql", "sigma", "python"):
        conversion = convert_query(query, target, query_text=text)
        opaque = [d for d in conversion.diagnostics if "frobnicate" in d.message or "ipLocation" in d.message
                  or "kvParse" in d.message or "saved search" in d.message or "readFile" in d.message
                  or "splitString" in d.message]
        assert opaque and {d.kind for d in opaque} == {kind}, (target, conversion.diagnostics)


def test_decisive_after_is_what_later_steps_decide_on() -> None:
    query = parse(PR2 + "| a := b + 1 | c := d | a > 3 | select([c])")
    needed = decisive_after(query)
    assert needed[0] == {"a"}  # after `a := b + 1`: the filter reads a; b only fed it
    assert needed[1] == {"a"}  # c is only shown
    assert needed[-1] == frozenset()
    assert decisive_after(parse("x := y | case { x = 1 | z := 2 ; * }"))[0] == {"x"}


@pytest.mark.parametrize(("text", "inner"), [
    # after `z := lower(y)` in the branch: a filter of the branch reads z
    ("case { x = 1 | z := lower(y) | z = a ; * } | select([z])", {"z"}),
    # z is only shown after the case: nothing decides on it
    ("case { x = 1 | z := lower(y) ; * } | select([z])", frozenset()),
    # a filter after the case reads z
    ("case { x = 1 | z := lower(y) ; * } | z = a", {"z"}),
    # the second branch's filter reads w, and what decides after the case counts in every branch
    ("case { x = 1 | z := lower(y) ; w = 2 | v := 1 ; * } | v = 1", {"v"}),
])
def test_decisive_steps_weighs_the_steps_of_case_branches(text: str, inner: set[str]) -> None:
    query = parse(text)
    case = query.steps[0]
    assert isinstance(case, ir.Case)
    found = dict((id(step), needed) for step, needed in decisive_steps(query))
    assignment = case.branches[0].steps[1]  # z := lower(y), after the branch's filter
    assert isinstance(assignment, ir.Eval) and found[id(assignment)] == inner
    assert found[id(case)] == decisive_after(query)[0]


def test_a_matcher_refuses_what_it_would_run_wrongly_and_leaves_out_what_is_only_shown() -> None:
    with pytest.raises(UnsupportedError, match="join"):
        compile_matcher("join({x=1}, field=aid, start=7d) | aid = 3")
    matcher = compile_matcher("ipLocation(aip) | aip = *")
    assert matcher.match({"aip": "10.0.0.1"}) == {"aip": "10.0.0.1"}


def test_opaque_tests_inside_boolean_expressions() -> None:
    query = parse('CommandLine = "x" or frob(y)')
    (step,) = query.steps
    assert isinstance(step, ir.Filter) and isinstance(step.pred, ir.Or)
    assert isinstance(step.pred.items[1], ir.OpaqueTest) and step.pred.items[1].text == "frob(y)"
    assert convert_query(query, "cql", query_text="").output.strip() == 'CommandLine=x or frob(y)'
    negated = parse("!ioc:lookup(field=x, strict=true)").steps[0]
    assert isinstance(negated, ir.Filter) and isinstance(negated.pred, ir.Not)


@pytest.mark.parametrize(("text", "params", "expected"), [
    ("CommandLine = ?cmd", {"cmd": "*whoami*"}, ir.Glob("CommandLine", "*whoami*")),
    ('CommandLine = ?{cmd="*who*"}', None, ir.Glob("CommandLine", "*who*")),
    ("CommandLine = ?{cmd=x}", {"cmd": "y"}, ir.Eq("CommandLine", "y")),
    ("n := ?limit", {"limit": "3"}, ir.Eval("n", ir.Lit("3"))),
])
def test_query_parameters_take_their_value(text: str, params: dict[str, str] | None, expected: object) -> None:
    (step,) = parse(text, params).steps
    assert (step.pred if isinstance(step, ir.Filter) else step) == expected


def test_a_parameter_without_a_value_is_opaque() -> None:
    (step,) = parse("CommandLine = ?cmd").steps
    assert isinstance(step, ir.Filter) and isinstance(step.pred, ir.OpaqueTest)
    assert "--param cmd=VALUE" in step.pred.reason
    (assigned,) = parse("n := ?limit").steps
    assert isinstance(assigned, ir.Opaque) and assigned.writes == ("n",)


def test_time_spans_are_argument_values() -> None:
    # bucket() converts spans that divide a day (tests/test_aggs.py); a week stays opaque
    (step,) = parse("bucket(span=1w, function=count())").steps
    assert isinstance(step, ir.Opaque) and step.text == "bucket(span=1w, function=count())"


MATCH = """#event_simpleName=UserLogon
| UserIsAdmin match {
    1 => Admin := "True" ;
    /^0+$/ => Admin := "False" ;
  }"""


def test_match_statement_is_a_case_over_one_field() -> None:
    (case,) = parse(MATCH).steps
    assert isinstance(case, ir.Case)
    assert [b.steps[0] for b in case.branches] == [ir.Filter(ir.Eq("UserIsAdmin", "1")),
                                                   ir.Filter(ir.Regex("UserIsAdmin", "^0+$"))]
    matcher = compile_matcher(MATCH)
    assert matcher.match({"#event_simpleName": "UserLogon", "UserIsAdmin": "1"})["Admin"] == "True"
    assert matcher.match({"#event_simpleName": "UserLogon", "UserIsAdmin": "00"})["Admin"] == "False"
    assert matcher.match({"#event_simpleName": "UserLogon", "UserIsAdmin": "2"}) is None  # no branch: dropped


def test_match_with_a_default_branch_is_an_assignment() -> None:
    text = "ImageFileName match { */curl => Tool := curl ; * => Tool := other }"
    (step,) = parse(text).steps
    assert step == ir.Eval("Tool", ir.Cond(ir.Glob("ImageFileName", "*/curl"), ir.Ref("curl"), ir.Ref("other")))


@pytest.mark.parametrize(("text", "params", "expected"), [
    ("CommandLine=x | ?extra", {"extra": "UserName=root or UserName=admin"},
     (ir.Filter(ir.Eq("CommandLine", "x")),
      ir.Filter(ir.Or((ir.Eq("UserName", "root"), ir.Eq("UserName", "admin")))))),
    ("CommandLine=x | ?{extra=*}", None, (ir.Filter(ir.Eq("CommandLine", "x")),)),
    ("in(UserName, values=[?who, admin])", {"who": "root"},
     (ir.Filter(ir.In("UserName", ("root", "admin"))),)),
    ("ImageFileName =~ !in(values=[a.exe])", None, (ir.Filter(ir.Not(ir.In("ImageFileName", ("a.exe",)))),)),
])
def test_parameters_as_filters_and_arguments(text: str, params: dict[str, str] | None,
                                             expected: tuple[ir.Step, ...]) -> None:
    assert parse(text, params).steps == expected


def test_a_filter_parameter_without_a_value_is_opaque() -> None:
    (step,) = parse("CommandLine=x ?extra").steps
    assert isinstance(step, ir.Filter) and isinstance(step.pred, ir.And)
    assert isinstance(step.pred.items[1], ir.OpaqueTest) and step.pred.items[1].name == "?extra"

"""The grammar: what it accepts, and how it shapes precedence (NOT > OR > AND, implicit AND)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cqlx import ast as A
from cqlx.errors import CqlSyntaxError
from cqlx.parser import parse

ACCEPT = [
    "#event_simpleName=ProcessRollup2",
    "@timestamp > 5",
    'host.name = "x" // a comment',
    "/* block\ncomment */ a = 1",
    '"host name" = "web 01"',
    "a.b[0] = x",
    "f = *abc*",
    "f = C:\\Windows\\*",
    "url = https://x.example/path",
    "f = *",
    "f != *",
    'f != "v"',
    "f = /a\\/b/imdgF",
    "f < 1 g <= 2 h > 3 i >= 4",
    "a=1 AND b=2 Or c=3 NOT d=4",
    "a=1 and not b=2",
    "!a=1",
    "(a=1 or b=2) c=3",
    "a=1 | b=2 | c := d + e * 2 - f / 3",
    "x := a // trailing comment",
    "x := (a + b) % 3",
    "x := -a",
    'x := lower(CommandLine)',
    'x := if(a >= 6, then="A", else="B")',
    'x := if(CommandLine = /re/i, "YES", "NO")',
    'x := if(s >= 6, "C", if(s >= 3, "H", "M"))',
    "select([a, b, c])",
    "table([a, b], limit=10)",
    "sort(x, order=desc, limit=200, type=number)",
    "sort([a, b], order=[asc, desc])",
    'in(f, values=["a", "b"], ignoreCase=true)',
    "!in(f, values=[a, b])",
    "f =~ in(values=[a, b])",
    "test(a == b)",
    "case { a=1 | x := 1 ; b=/x/ | x := 2 ; * | x := 0 }",
    "case { a=1 | x := 1 ; }",
    "text:contains(string=f, substring=\"x\")",
    "free text words",
    '"quoted free text"',
    "/free regex/i",
    "",
    # As published detection content writes them:
    "| case { a=1 | x := 1 ; * }",  # a snippet that starts with the pipe
    "EventName=/(\n    StopLogging|\n    DeleteTrail\n  )/i",  # a pattern over several lines
    "CommandLine=/[A-Za-z0-9+/=]{20,}/i",  # a slash inside a character class
    "groupBy([a], function=([count(), collect([b])]))",  # a parenthesised list of functions
    "parseUrl(web_destination[0].host_url[0], as=url)",  # a field after an index
    '!cidr(RemoteAddressIP4, subnet=["10.0.0.0/8", 127.0.0.1, 192.168.0.0/16])',  # bare addresses
    "rename([[ComputerName, Host], [UserName, User]])",  # nested arrays
    "selfJoinFilter(field=[aid], where=[{#event_simpleName=A}, {#event_simpleName=B}])",  # subqueries in arrays
    "in(field=host, values=[?system_name]) | groupBy(?GroupByValue)",  # parameters as arguments
    "?{additional_filter=*} | ?extra",  # parameters as filters
    "bucket(span=10min, function=count()) | series(maxpause=30s)",  # time spans with multi-letter units
    "correlate(first: {a=1}, second: {b=2}, within=5m)",  # named subqueries
    "ContextBaseFileName =~ !in(values=[firefox.exe, chrome.exe])",  # a negated function after =~
    "test(@timestamp < (now() - duration(7d))) | bucket(1day, function=count())",  # a bare time span argument
    "correlate(a: {x=1} include: [aid, ComputerName], b: {y=2 | aid <=> a.aid} include: [aid], within=1h)",
]

REJECT = [
    "a = ",
    "a = | b",
    "(a = 1",
    "a = 1)",
    'f = "unterminated',
    "f = /unterminated",
    "f = /x/s",  # LogScale has no s flag
    "x := ",
    "x := (a + b",
    "select([a, b)",
    "case { a=1 | x:=1",
    "sort(x, order=)",
    "a | | b",
    "f = a b := ",
    "correlate(a: {x=1} exclude: [aid])",  # a named query lists what it passes on with include: only
    "aid <=> 1",  # a link names the other query's field
]


@pytest.mark.parametrize("text", ACCEPT)
def test_accepts(text: str) -> None:
    assert isinstance(parse(text), A.Pipeline)


@pytest.mark.parametrize("text", REJECT)
def test_rejects_with_position(text: str) -> None:
    with pytest.raises(CqlSyntaxError) as caught:
        parse(text)
    assert caught.value.span.line >= 1 and caught.value.span.column >= 1


def _filter(text: str) -> A.Filter:
    stage = parse(text).stages[0]
    assert not isinstance(stage, A.Assignment | A.CaseStmt)
    return stage


def test_or_binds_tighter_than_implicit_and() -> None:
    tree = _filter("a=1 b=2 or c=3")
    assert isinstance(tree, A.AndFilter)
    assert isinstance(tree.right, A.OrFilter)


def test_or_binds_tighter_than_explicit_and() -> None:
    tree = _filter("a=1 and b=2 or c=3")
    assert isinstance(tree, A.AndFilter) and isinstance(tree.right, A.OrFilter)


def test_not_binds_tightest() -> None:
    tree = _filter("not a=1 or b=2")
    assert isinstance(tree, A.OrFilter) and isinstance(tree.left, A.NotFilter)


@pytest.mark.parametrize("keyword", ["and", "AND", "And", "aNd"])
def test_keywords_in_any_case(keyword: str) -> None:
    assert isinstance(_filter(f"a=1 {keyword} b=2"), A.AndFilter)


def test_keyword_prefix_is_a_field_name() -> None:
    tree = _filter("android=1 order=2 notes=3")
    assert isinstance(tree, A.AndFilter)
    names = {tree.left.left.field.name, tree.left.right.field.name, tree.right.field.name} \
        if isinstance(tree.left, A.AndFilter) else set()
    assert names == {"android", "order", "notes"}


def test_slash_is_division_after_an_operand_and_regex_where_a_value_starts() -> None:
    assign = parse("x := a / b").stages[0]
    assert isinstance(assign, A.Assignment) and isinstance(assign.value, A.Binary)
    assert assign.value.op == "/"
    comparison = _filter("f = /a\\/b/i")
    assert isinstance(comparison, A.Comparison) and isinstance(comparison.value, A.RegexLit)
    assert comparison.value.pattern == "a\\/b" and comparison.value.flags == "i"


@pytest.mark.parametrize("text", ["x := length(y) * 2", "x := length(y)*length(z)", "x := lower(y) * 2 + 1"])
def test_star_after_a_call_is_multiplication(text: str) -> None:
    """Found by the agreement fuzz: after a call the lexer took `*` for a match-all (LALR merges
    the state that ends a call in a filter with the one that ends it in an expression)."""
    assign = parse(text).stages[0]
    assert isinstance(assign, A.Assignment)
    product = assign.value.left if assign.value.op == "+" else assign.value  # type: ignore[union-attr]
    assert isinstance(product, A.Binary) and product.op == "*" and isinstance(product.left, A.Call)


def test_a_named_query_keeps_what_it_includes() -> None:
    (call,) = parse("correlate(a: {x=1} include: [aid, y], within=1h)").stages
    assert isinstance(call, A.Call)
    query = call.args[0].value
    assert isinstance(query, A.SubQuery) and isinstance(query.include, A.Array)
    assert [item.name for item in query.include.items] == ["aid", "y"]  # type: ignore[attr-defined]


def test_a_link_outside_correlate_is_refused_on_every_target() -> None:
    from cqlx import convert
    from cqlx.errors import UnsupportedError

    for target in ("spl", "kql", "sigma", "python"):
        with pytest.raises(UnsupportedError, match="<=> links the events of correlate"):
            convert("#event_simpleName=ProcessRollup2 | aid <=> other.aid", to=target)


def test_string_escapes() -> None:
    comparison = _filter(r'f = "a\"b\\c\nd\te"')
    assert isinstance(comparison, A.Comparison) and isinstance(comparison.value, A.StringLit)
    assert comparison.value.value == 'a"b\\c\nd\\te'  # \t is not an escape in CQL: it stays


def test_spans_point_at_the_source() -> None:
    tree = parse("a=1\n| CommandLine = /x/")
    stage = tree.stages[1]
    assert isinstance(stage, A.Comparison)
    assert (stage.span.line, stage.span.column) == (2, 3)
    assert (stage.value.span.line, stage.value.span.column) == (2, 17)


# (query, path to a node, the text its span covers): a node runs from its first token to its last,
# closing punctuation included; a parenthesised node's own span leaves out its parentheses, while
# its parent's covers them.
SPAN_TEXT = [
    ("groupBy([aid], function=count())", "stages.0", "groupBy([aid], function=count())"),
    ("groupBy([aid], function=count())", "stages.0.args.0", "[aid]"),
    ("groupBy([aid], function=count())", "stages.0.args.1.value", "count()"),
    ("x := (c + 1) * 2", "stages.0", "x := (c + 1) * 2"),
    ("x := (c + 1) * 2", "stages.0.value.left", "c + 1"),
    ("x := 2 * (c + 1)", "stages.0", "x := 2 * (c + 1)"),
    ("(a=1 or b=2)", "stages.0", "a=1 or b=2"),
    ("| (a=1 or b=2)", "", "| (a=1 or b=2)"),
    ("not (a=1)", "stages.0", "not (a=1)"),
    ("x := ((c))", "stages.0", "x := ((c))"),
    ("x := ((c))", "stages.0.value", "c"),
    ("case { a=1 | s := 1 ; * }", "stages.0", "case { a=1 | s := 1 ; * }"),
    ("f match { 1 => s := 1 }", "stages.0.branches.0", "1 => s := 1"),
]


@pytest.mark.parametrize(("text", "path", "covered"), SPAN_TEXT)
def test_a_span_covers_its_tokens(text: str, path: str, covered: str) -> None:
    node: object = parse(text)
    for step in filter(None, path.split(".")):
        node = node[int(step)] if step.isdigit() else getattr(node, step)  # type: ignore[index]
    span = node.span  # type: ignore[attr-defined]
    assert span.line == span.end_line == 1
    assert text[span.column - 1:span.end_column - 1] == covered


def test_both_if_dialects_parse_to_calls() -> None:
    official = parse('x := if(CommandLine == "a", then="Y", else="N")').stages[0]
    seed = parse('x := if(CommandLine = /a/, "Y", "N")').stages[0]
    assert isinstance(official, A.Assignment) and isinstance(official.value, A.Call)
    assert isinstance(seed, A.Assignment) and isinstance(seed.value, A.Call)
    assert [a.name for a in official.value.args] == [None, "then", "else"]
    assert [a.name for a in seed.value.args] == ["CommandLine", None, None]


def test_deep_nesting_is_refused_cleanly() -> None:
    with pytest.raises(CqlSyntaxError, match="nesting deeper"):
        parse("(" * 500 + "a=1" + ")" * 500)


def test_a_chain_on_a_deep_stack_is_a_cql_error() -> None:
    """Fuzz finding: a `!!!...` chain parsed a few frames deeper than usual (the CLI run inside
    another program) raised lark's VisitError wrapping a RecursionError. Either it parses or it
    is a CqlError, at every stack depth; run in a fresh interpreter, whose stack starts shallow."""
    import subprocess
    import sys

    data = Path(__file__).parent / "data" / "deep_bang_chain.cql"
    code = ("import sys\nfrom cqlx import parse\nfrom cqlx.errors import CqlError\n"
            f"text = open({str(data)!r}, encoding='utf-8').read()\n"
            "def nest(depth):\n    return nest(depth - 1) if depth else parse(text)\n"
            "for depth in range(200):\n    try:\n        nest(depth)\n    except CqlError:\n        pass\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_oversized_query_is_refused_up_front() -> None:
    from cqlx import parse
    from cqlx.errors import CqlSyntaxError
    from cqlx.parser import MAX_QUERY_LENGTH

    with pytest.raises(CqlSyntaxError, match="characters long"):
        parse("CommandLine=" + "a" * MAX_QUERY_LENGTH)

"""The filtering constructs of real detection content: regex field extraction (``field = /(?<x>..)/``,
``regex()``), ``wildcard()``, ``cidr()``, ``text:contains()``, the ``like`` operator, free text,
negated filter functions, ``field =~ fn()``, and Sigma-converter sources (``/^ProcessRollup2$/i``).

Tables: CQL → IR, CQL → each target's text, refusals with their reasons; then rows on events with
missing fields, mixed case and IPv6 on the Python matcher, duckdb-kql and the SPL oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import cqlx
from cqlx import compile_matcher, convert, ir
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION, PRESENTATION
from cqlx.engines.sigma_sqlite import sigma_check
from cqlx.errors import CqlError, CqlValueError, UnsupportedError
from cqlx.explain import explain
from cqlx.prefilter import build
from cqlx.regexes import group_is_optional, named_groups, unname_groups
from cqlx.spl_oracle import SplOracleError, run_spl
from cqlx.testing import check_kql
from tests.agreement import assert_agree

P = "#event_simpleName=ProcessRollup2 | "
N = "#event_simpleName=NetworkConnectIP4 | "
PR2 = ir.Source(("ProcessRollup2",))

# ---------------------------------------------------------------- CQL → IR

LOWERING = [
    # a regex filter with named groups extracts them; the conjuncts after it are later steps
    ("CommandLine=/user=(?<who>\\w+)/i who!=root x=1",
     (ir.Extract("CommandLine", "user=(?<who>\\w+)", "i", ("who",)),
      ir.Filter(ir.And((ir.Not(ir.Eq("who", "root")), ir.Eq("x", "1")))))),
    # negated, it extracts nothing (it does not match): a plain test
    ("CommandLine!=/user=(?<who>\\w+)/", (ir.Filter(ir.Not(ir.Regex("CommandLine", "user=(?<who>\\w+)"))),)),
    # regex(): field defaults to @rawstring, flags to m (functions-regex)
    ('regex("a(?<b>c)")', (ir.Extract("@rawstring", "a(?<b>c)", "m", ("b",)),)),
    ('regex("a(?<b>c)", field=F, flags=i, strict=false)', (ir.Extract("F", "a(?<b>c)", "i", ("b",), False),)),
    ('F =~ regex("a(?<b>c)", flags="")', (ir.Extract("F", "a(?<b>c)", "", ("b",)),)),
    ('regex("x\\/y", field=F)', (ir.Filter(ir.Regex("F", "x/y", "m")),)),  # no group: a filter
    ('regex("x", field=F, strict=false)', ()),  # no group, not strict: keeps every event
    ('not regex("x", field=F)', (ir.Filter(ir.Not(ir.Regex("F", "x", "m"))),)),
    ('!regex("(?<b>x)", field=F, strict=false)', (ir.Filter(ir.Not(ir.TrueP())),)),
    # wildcard(): the glob over the whole value, per field given (an or)
    ('wildcard(field=F, pattern="*a*")', (ir.Filter(ir.Glob("F", "*a*")),)),
    ('wildcard(field=F, pattern=horse)', (ir.Filter(ir.Eq("F", "horse")),)),
    ('wildcard(field=F, pattern=horse, ignoreCase=true)', (ir.Filter(ir.In("F", ("horse",), True)),)),
    ('F =~ wildcard(pattern=*h*rse*, ignoreCase=true)', (ir.Filter(ir.In("F", ("*h*rse*",), True)),)),
    ('wildcard(field=[F, G], pattern="a*")', (ir.Filter(ir.Or((ir.Glob("F", "a*"), ir.Glob("G", "a*")))),)),
    ("wildcard(field=F, pattern=*)", (ir.Filter(ir.Exists("F")),)),
    ("wildcard(field=F, pattern=*, includeEverythingOnAsterisk=true)", ()),
    ('!wildcard(field=F, pattern="a*")', (ir.Filter(ir.Not(ir.Glob("F", "a*"))),)),
    # cidr(): subnets as ipaddress writes them (host bits cleared), duplicates once
    ('cidr(ip, subnet=["10.1.2.3/8", "2001:DB8::/32", "10.0.0.0/8"])',
     (ir.Filter(ir.Cidr("ip", ("10.0.0.0/8", "2001:db8::/32"))),)),
    ('ip =~ cidr(subnet="192.0.2.1")', (ir.Filter(ir.Cidr("ip", ("192.0.2.1/32",))),)),
    ('not cidr(ip, subnet="::/0")', (ir.Filter(ir.Not(ir.Cidr("ip", ("::/0",)))),)),
    ('cidr(ip, subnet="10.0.0.0/8", negate=true)',
     (ir.Filter(ir.And((ir.Exists("ip"), ir.Not(ir.Cidr("ip", ("10.0.0.0/8",)))))),)),
    # text:contains() and like: the value contains the text, case-sensitive
    ('text:contains(string=F, substring="enc")', (ir.Filter(ir.Glob("F", "*enc*")),)),
    ('text:contains(F, substring="a*b")', (ir.Filter(ir.Regex("F", "a\\*b")),)),
    ('not text:contains(F, substring="")', (ir.Filter(ir.Not(ir.Exists("F"))),)),
    ('F like "enc"', (ir.Filter(ir.Glob("F", "*enc*")),)),
    ("F LIKE x.y", (ir.Filter(ir.Glob("F", "*x.y*")),)),
    # a match pattern tests the field as `field = pattern`, so a regex with named groups extracts
    ('F match { /(?<g>x)/ => y := g ; * => y := "n" }',
     (ir.Case((ir.CaseBranch((ir.Extract("F", "(?<g>x)", "", ("g",)), ir.Eval("y", ir.Ref("g")))),
               ir.CaseBranch((ir.Eval("y", ir.Lit("n")),)))),)),
    # the seed dialect's if() tests its regex: LogScale's if() has no regex, so nothing is extracted
    ('y := if(F=/(?<g>x)/, "a", "b")', (ir.Eval("y", ir.Cond(ir.Regex("F", "(x)"), ir.Lit("a"), ir.Lit("b"))),)),
]


@pytest.mark.parametrize(("cql", "steps"), LOWERING, ids=[c for c, _ in LOWERING])
def test_lowering(cql: str, steps: tuple[ir.Step, ...]) -> None:
    assert cqlx.parse(cql).steps == steps


def test_a_type_filter_after_an_extraction_is_still_the_source() -> None:
    """Two filters commute: the tag filter written after an extraction still picks the table."""
    query = cqlx.parse("CommandLine=/(?<a>x)/ #event_simpleName=ProcessRollup2")
    assert query.source == PR2 and [type(s) for s in query.steps] == [ir.Extract]


ERRORS = [
    ('regex("(?<a>x)(?<a>y)")', "twice"),
    ('regex("(?<\u00e9>x)")', None),  # the tokeniser does not read a non-ASCII name as a group: re refuses it
    ('regex(field=F)', "needs a regular expression"),
    ('regex("")', "not empty"),
    ('regex("x", flags=g)', "accepts the flags d, i, m and F"),
    ('regex("x", strict=maybe)', "accepted: true, false"),
    ("regex(/x/)", "quoted string"),
    ('wildcard(field=F)', "needs a pattern"),
    ('wildcard(field=F, pattern="a", includeEverythingOnEmpty=true)', "includeEverythingOnAsterisk"),
    ('cidr(subnet="10.0.0.0/8")', "needs a field"),
    ("cidr(ip)", "needs subnet"),
    ('cidr(ip, subnet="10.0.0.300/8")', "not an IPv4 or IPv6 subnet"),
    ('cidr(ip, subnet=[])', "at least one subnet"),
    ('text:contains(string=F)', "needs a string and a substring"),
    ("F like /x/", "not a /regex/"),
    ('F =~ text:contains(substring="x")', "no parameter 'field'"),
]


@pytest.mark.parametrize(("cql", "message"), ERRORS, ids=[c for c, _ in ERRORS])
def test_errors_name_what_is_wrong(cql: str, message: str | None) -> None:
    if message is None:
        with pytest.raises(CqlError):
            compile_matcher(cql)
        return
    with pytest.raises(CqlValueError, match=message):
        cqlx.parse(cql)


# What cqlx reads but does not convert: kept with its text, reported on every target.
REFUSED = [
    ("F = /(?<a>x)/g", "repeated extraction"),
    ('wildcard(pattern="*x*")', "without field="),
    ('wildcard(field=F, pattern="")', "empty pattern"),
    ('cidr(ip, file="nets.csv", column=cidr)', "lookup file"),
    ('text:contains(string=F, substring=G)', "field and a quoted substring"),
    ('text:contains(string=lower(F), substring="x")', "field and a quoted substring"),
    ('F like "a*b"', "converts like without '*'"),
]


@pytest.mark.parametrize(("cql", "reason"), REFUSED, ids=[c for c, _ in REFUSED])
def test_what_cqlx_does_not_convert_is_refused_precisely(cql: str, reason: str) -> None:
    query = cqlx.parse(P + cql)
    opaque = [s for s in query.steps if isinstance(s, ir.Opaque)] + \
        [s.pred for s in query.steps if isinstance(s, ir.Filter) and isinstance(s.pred, ir.OpaqueTest)]
    assert len(opaque) == 1 and reason in opaque[0].reason
    for target in ("kql", "spl", "sigma", "python"):
        conversion = convert_query(query, target, query_text=P + cql)
        assert any(d.kind == DETECTION and reason in d.message for d in conversion.diagnostics), target
    assert convert(P + cql, to="cql") == P.replace(" | ", "\n| ") + cql + "\n"


# Case-insensitive tests of letters beyond ASCII: LogScale does not document how it folds them and
# each SIEM folds them its own way (found by the agreement fuzz: KQL's RE2 matched "üNÏ" for /Ünï$/i,
# the SPL oracle's PCRE did not match "ÜNÏ" for in(ignoreCase=true), where the matcher did).
FOLDED = [
    ("CommandLine = /Ünï$/i", "Üï"),
    ('in(CommandLine, values=["ünï", "x"], ignoreCase=true)', "üï"),
    ('CommandLine =~ wildcard("*ÉTÉ*", ignoreCase=true)', "É"),
    ('regex("(?<who>ß\\w+)", field=CommandLine, flags=i)', "ß"),
]


@pytest.mark.parametrize(("cql", "letters"), FOLDED, ids=[c for c, _ in FOLDED])
def test_case_folding_beyond_ascii_is_detection_loss(cql: str, letters: str) -> None:
    query = cqlx.parse(P + cql)
    for target in ("kql", "spl", "sigma"):
        conversion = convert_query(query, target, query_text=P + cql)
        assert any(d.kind == DETECTION and f"test of {letters!r} (letters beyond ASCII)" in d.message
                   for d in conversion.diagnostics), (target, conversion.diagnostics)
    assert not convert_query(query, "python", query_text=P + cql).diagnostics  # the reference
    assert not convert_query(query, "cql", query_text=P + cql).diagnostics  # LogScale itself (it was refused)


# replace(flags=i) folds the same way (agreement fuzz seed 77: KQL's replace_regex turned "ÜNÏ"
# into "_" for replace("ünï", flags=i), where the matcher, as Java's regex, left it): the value
# differs, detection loss when a later step decides on it, presentation when it is only shown.
@pytest.mark.parametrize(("cql", "kind"), [
    ('V0 := replace("ünï", with="_", field=CommandLine, flags=i) | V0 = "_"', DETECTION),
    ('V0 := replace("ünï", with="_", field=CommandLine, flags=i) | select([V0])', PRESENTATION),
    ('V0 := if(CommandLine = "*a*", then=lower(replace("Ü", with="u", field=CommandLine, flags=i)), else="")'
     ' | select([V0])', PRESENTATION),
    # in a test() it decides which events match (it went unreported there)
    ('test(replace("ünï", with="_", field=CommandLine, flags=i) == "_")', DETECTION),
])
def test_replace_ignoring_case_beyond_ascii_is_reported(cql: str, kind: str) -> None:
    for target in ("kql", "spl"):
        conversion = convert_query(cqlx.parse(P + cql), target, query_text=P + cql)
        assert [d.kind for d in conversion.diagnostics if "replace() ignoring case of" in d.message] == [kind], \
            (target, conversion.diagnostics)
        if kind == PRESENTATION:  # named, so cqlx test leaves the field out (agreement fuzz seed 78)
            assert [d.fields for d in conversion.diagnostics if "replace() ignoring" in d.message] == [("V0",)]
    plain = P + 'V0 := replace("uni", with="_", field=CommandLine, flags=i) | select([V0])'
    assert not [d for d in convert_query(cqlx.parse(plain), "kql", query_text=plain).diagnostics
                if "ignoring case" in d.message]


@pytest.mark.parametrize("cql", ["CommandLine = /ünï/", 'CommandLine = "ÜNÏ"', "CommandLine = /k-€/i"])
def test_folding_only_ascii_or_no_folding_converts(cql: str) -> None:
    for target in ("kql", "spl"):
        assert convert(P + cql, to=target)


# ---------------------------------------------------------------- CQL → each target

# (CQL, KQL, SPL) for rules every target converts exactly.
TARGETS = [
    (P + "CommandLine=/user=(?<who>\\w+)/i | who != root",
     'DeviceProcessEvents\n| where ProcessCommandLine matches regex @"(?i)user=(?P<who>\\w+)"\n'
     '| extend who = extract(@"(?i)user=(?P<who>\\w+)", 1, ProcessCommandLine)\n| where not(who == "root")\n',
     'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(ProcessRollup2)\n'
     '| regex CommandLine="(?i)user=(?<who>\\\\w+)"\n| rex field=CommandLine "(?i)user=(?<who>\\\\w+)"\n'
     '| where (isnull(who) OR NOT who=="root")\n'),
    (P + 'regex("u=(?<who>\\\\w+);(?<ParentBaseFileName>\\\\w+)", field=CommandLine, flags=i, strict=false)',
     'DeviceProcessEvents\n| extend who = extract(@"(?i)u=(?P<who>\\w+);(?P<ParentBaseFileName>\\w+)", 1, '
     'ProcessCommandLine), ParentBaseFileName = iff(isempty(extract(@"(?i)u=(?P<who>\\w+);(?P<ParentBaseFileName>'
     '\\w+)", 2, ProcessCommandLine)), InitiatingProcessFileName, extract(@"(?i)u=(?P<who>\\w+);(?P<ParentBase'
     'FileName>\\w+)", 2, ProcessCommandLine))\n',
     'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(ProcessRollup2)\n'
     '| rex field=CommandLine "(?i)u=(?<who>\\\\w+);(?<ParentBaseFileName>\\\\w+)"\n'),
    (P + 'CommandLine =~ wildcard("*WHOAMI*", ignoreCase=true)',
     'DeviceProcessEvents\n| where (ProcessCommandLine contains "WHOAMI")\n',
     'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(ProcessRollup2)\n'
     '| where match(CommandLine, "(?i)(?s)(?:^.*WHOAMI.*\\\\z)")\n'),
    (P + '!wildcard(field=[CommandLine, ImageFileName], pattern="*curl*")',
     'DeviceProcessEvents\n| where not((ProcessCommandLine contains_cs "curl" or FolderPath contains_cs "curl"))\n',
     'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(ProcessRollup2)\n'
     '| where ((isnull(CommandLine) OR NOT match(CommandLine, "(?s)^.*curl.*\\\\z")) AND (isnull(ImageFileName) OR '
     'NOT match(ImageFileName, "(?s)^.*curl.*\\\\z")))\n'),
    (N + 'cidr(RemoteAddressIP4, subnet=["10.0.0.0/8", "fe80::/10"])',
     'DeviceNetworkEvents\n| where ActionType in ("ConnectionSuccess", "ConnectionFailed", "ConnectionAttempt", '
     '"ConnectionRequest")\n| where (coalesce(ipv4_is_in_any_range(RemoteIP, "10.0.0.0/8"), false) or (RemoteIP '
     'contains ":" and coalesce(ipv6_is_in_any_range(RemoteIP, "fe80::/10"), false)))\n',
     'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(NetworkConnectIP4)\n'
     '| where (cidrmatch("10.0.0.0/8", RemoteAddressIP4) OR cidrmatch("fe80::/10", RemoteAddressIP4))\n'),
    (N + '!cidr(RemoteAddressIP4, subnet="192.168.0.0/16")',
     'DeviceNetworkEvents\n| where ActionType in ("ConnectionSuccess", "ConnectionFailed", "ConnectionAttempt", '
     '"ConnectionRequest")\n| where not(coalesce(ipv4_is_in_any_range(RemoteIP, "192.168.0.0/16"), false))\n',
     'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(NetworkConnectIP4)\n'
     '| where (isnull(RemoteAddressIP4) OR NOT cidrmatch("192.168.0.0/16", RemoteAddressIP4))\n'),
    (P + 'text:contains(string=CommandLine, substring="-enc") CommandLine like "http"',
     'DeviceProcessEvents\n| where (ProcessCommandLine contains_cs "-enc" and ProcessCommandLine contains_cs "http")\n',
     'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(ProcessRollup2)\n'
     '| where (match(CommandLine, "(?s)^.*\\\\-enc.*\\\\z") AND match(CommandLine, "(?s)^.*http.*\\\\z"))\n'),
]


@pytest.mark.parametrize(("cql", "kql", "spl"), TARGETS, ids=[t[0][len(P):][:40] for t in TARGETS])
def test_targets(cql: str, kql: str, spl: str) -> None:
    query = cqlx.parse(cql)
    for target, expected in (("kql", kql), ("spl", spl)):
        conversion = convert_query(query, target, query_text=cql)
        assert (conversion.output, conversion.diagnostics) == (expected, ()), target
    check_kql(kql)
    run_spl(spl, [])  # in the oracle's subset


SIGMA = [
    (P + "CommandLine=/user=(?<who>\\w+)/i | select([CommandLine, who])",
     {"selection": {"CommandLine|re|i": "user=(\\w+)"}, "condition": "selection"}),
    (N + 'cidr(RemoteAddressIP4, subnet=["10.0.0.0/8", "fe80::/10"])',
     {"selection": {"DestinationIp|cidr": ["10.0.0.0/8", "fe80::/10"]}, "source": {"Initiated|cased": "true"},
      "condition": "source and selection"}),
    (N + 'not cidr(RemoteAddressIP4, subnet="10.0.0.0/8")',
     {"selection_not": {"DestinationIp|cidr": "10.0.0.0/8"}, "source": {"Initiated|cased": "true"},
      "condition": "source and not selection_not"}),
    (P + 'CommandLine =~ wildcard("*WHOAMI*", ignoreCase=true)',
     {"selection": {"CommandLine|contains": ["WHOAMI"]}, "condition": "selection"}),
    (P + 'text:contains(string=CommandLine, substring="-enc")',
     {"selection": {"CommandLine|contains|cased": "-enc"}, "condition": "selection"}),
]


@pytest.mark.parametrize(("cql", "detection"), SIGMA, ids=[s[0][len(P):][:40] for s in SIGMA])
def test_sigma(cql: str, detection: dict[str, Any], tmp_path: Path) -> None:
    conversion = convert_query(cqlx.parse(cql), "sigma", query_text=cql)
    assert conversion.output is not None
    assert yaml.safe_load(conversion.output)["detection"] == detection
    assert all(d.kind == PRESENTATION for d in conversion.diagnostics)
    path = tmp_path / "proc_creation_filters.yml"
    path.write_text(conversion.output, encoding="utf-8")
    ok, output = sigma_check(str(path))
    assert ok, output


def test_sigma_names_the_extracted_fields_it_cannot_output_and_refuses_a_test_on_them() -> None:
    shown = convert_query(cqlx.parse(SIGMA[0][0]), "sigma")
    assert [d.kind for d in shown.diagnostics if "who" in d.message] == [PRESENTATION]
    tested = convert_query(cqlx.parse(P + "CommandLine=/user=(?<who>\\w+)/ | who=root"), "sigma")
    assert any(d.kind == DETECTION and "who" in d.message for d in tested.diagnostics)


def test_named_groups_become_plain_groups_for_sigma() -> None:
    assert unname_groups("a(?<x>b)(?P<y>c)(?:d)(?<=e)") == "a(b)(c)(?:d)(?<=e)"
    assert named_groups("a(?<x>b)(?P<y>c)(?<=e)(?<!f)") == ("x", "y")


# ---------------------------------------------------------------- what cannot be extracted

@pytest.mark.parametrize(("cql", "kind"), [
    # under an or: LogScale does not document the extraction; cqlx tests without extracting
    (P + "CommandLine=/(?<verb>net)/ or CommandLine=/x/ | select([CommandLine])", PRESENTATION),
    (P + "CommandLine=/(?<verb>net)/ or CommandLine=/x/ | verb = net", DETECTION),
    (P + "CommandLine=/(?<verb>net)/ or CommandLine=/x/ verb = net", DETECTION),  # the same stage reads it
    (P + "/(?<verb>net)/ | select([verb])", PRESENTATION),
    # a case that assigns only (an if()): what it assigns decides, or is only shown
    (P + 'case { CommandLine=/(?<verb>n)/ or CommandLine=y | verb=n | F := 1 ; * | F := 2 } | select([F])',
     PRESENTATION),
    (P + 'case { CommandLine=/(?<verb>n)/ or CommandLine=y | verb=n | F := 1 ; * | F := 2 } | F=1', DETECTION),
])
def test_a_named_group_that_extracts_nothing_is_reported(cql: str, kind: str) -> None:
    for target in ("kql", "spl", "sigma", "python"):
        conversion = convert_query(cqlx.parse(cql), target, query_text=cql)
        found = [d for d in conversion.diagnostics if "named groups (verb)" in d.message]
        assert [d.kind for d in found] == [kind], target


@pytest.mark.parametrize(("cql", "kind"), [
    (P + 'case { CommandLine=/(?<verb>net)/ | F := "n" ; * | F := "o" } | select([F])', PRESENTATION),
    (P + 'case { CommandLine=/(?<verb>net)/ | F := "n" ; * | F := "o" } | verb = net', DETECTION),
    (P + 'case { CommandLine=/(?<verb>net)/ | F := verb ; * | F := "o" } | select([F])', DETECTION),
])
def test_extraction_inside_case_keeps_its_test_on_kql_and_spl(cql: str, kind: str) -> None:
    for target in ("kql", "spl"):
        conversion = convert_query(cqlx.parse(cql), target)
        found = [d for d in conversion.diagnostics if "extracts verb" in d.message]
        assert [d.kind for d in found] == [kind], target
    assert compile_matcher(cql.replace("| select([F])", "| select([F, verb])")).match(
        {"#event_simpleName": "ProcessRollup2", "CommandLine": "net use"}) is not None


@pytest.mark.parametrize(("pattern", "optional"), [
    ("u=(?<g>\\w+)", False), ("u=(?<g>\\w*)", True), ("(?<g>a)?", True), ("(?<g>a)|b", True),
    ("(?:x(?<g>a))+", False), ("(?:x(?<g>a)){0,2}", True), ("(?!(?<g>a))b", True),
])
def test_groups_a_match_may_leave_empty_or_out(pattern: str, optional: bool) -> None:
    assert group_is_optional(pattern, "", "g") is optional


def test_a_test_on_an_optional_group_is_refused_where_empty_and_missing_are_one() -> None:
    tested = P + "CommandLine=/u=(?<who>\\w*)/ | who = *"
    for target in ("kql", "spl"):
        diagnostics = convert_query(cqlx.parse(tested), target).diagnostics
        assert [d.kind for d in diagnostics if "who may capture nothing" in d.message] == [DETECTION], target
    shown = P + "CommandLine=/u=(?<who>\\w*)/ | select([who])"
    assert convert_query(cqlx.parse(shown), "kql").diagnostics == ()
    matcher = compile_matcher(tested)
    assert matcher.match({"#event_simpleName": "ProcessRollup2", "CommandLine": "u="}) is not None


# ---------------------------------------------------------------- rows on every engine

def _ev(n: int, name: str = "ProcessRollup2", **fields: Any) -> dict[str, Any]:
    return {"#event_simpleName": name, "ComputerName": f"host-{n:02d}", **fields}


EVENTS = [
    _ev(1, CommandLine="net user=bob /add", ImageFileName="/usr/bin/net", ParentBaseFileName="bash"),
    _ev(2, CommandLine="net USER=Alice", ImageFileName="/usr/bin/NET"),
    _ev(3, CommandLine="user=root; curl http://x", ImageFileName="/usr/bin/curl", ParentBaseFileName="sh"),
    _ev(4, ImageFileName="/bin/sh"),  # no command line
    _ev(5, CommandLine="WHOAMI /all", ImageFileName="C:\\Windows\\whoami.exe"),
    _ev(6, CommandLine="powershell -enc AAAA u=;", ParentBaseFileName="explorer.exe"),
    _ev(7, CommandLine="user=eve u=x;y"),
]

AGREE = [
    "CommandLine=/user=(?<who>\\w+)/i | who != root | select([ComputerName, who])",
    "CommandLine=/user=(?<who>\\w+)/i who=/^[a-z]+$/ | select([ComputerName, who])",
    'regex("user=(?<who>\\\\w+)", field=CommandLine, strict=false) | select([ComputerName, who, CommandLine])',
    'regex("(?<ParentBaseFileName>net|curl)", field=ImageFileName, strict=false) '
    "| select([ComputerName, ParentBaseFileName])",
    "CommandLine=/user=(?<CommandLine>\\w+)/ | select([ComputerName, CommandLine])",
    'CommandLine=/(?<verb>net|WHOAMI)/ | case { verb=net | Family := "net" ; * | Family := "other" } '
    "| select([ComputerName, verb, Family])",
    'case { CommandLine=/(?<verb>net)/ | Family := "net" ; * | Family := "other" } | select([ComputerName, Family])',
    'CommandLine =~ wildcard("*whoami*", ignoreCase=true) | select([ComputerName])',
    'wildcard(field=[CommandLine, ImageFileName], pattern="*curl*") | select([ComputerName])',
    'not wildcard(field=ImageFileName, pattern="/usr/bin/*") | select([ComputerName])',
    'wildcard(field=CommandLine, pattern=*) | select([ComputerName])',
    '!text:contains(string=CommandLine, substring="user") | select([ComputerName])',
    'CommandLine like "-enc" or CommandLine like "curl" | select([ComputerName])',
    'not regex("NET", field=ImageFileName, flags=i) | select([ComputerName])',
]


@pytest.mark.parametrize("rule", AGREE)
def test_rows_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(P + rule, EVENTS)
    assert 0 < len(rows) <= len(EVENTS)


def _net(n: int, address: str | None, **fields: Any) -> dict[str, Any]:
    event = _ev(n, "NetworkConnectIP4", RemotePort="443", **fields)
    if address is not None:
        event["RemoteAddressIP4"] = address
    return event


NETWORK = [
    _net(1, "10.1.2.3"), _net(2, "192.168.7.7"), _net(3, "8.8.8.8"), _net(4, None),
    _net(5, "fe80::1"), _net(6, "2001:db8::5"), _net(7, "::ffff:10.0.0.1"), _net(8, "not an address"),
    _net(9, "010.1.2.3"), _net(10, "FE80::ABCD"),
]

CIDR = [
    'cidr(RemoteAddressIP4, subnet=["10.0.0.0/8", "fe80::/10"])',
    '!cidr(RemoteAddressIP4, subnet=["10.0.0.0/8", "192.168.0.0/16"])',
    'RemoteAddressIP4 =~ cidr(subnet="::/0")',
    'cidr(RemoteAddressIP4, subnet="0.0.0.0/0")',
    'cidr(RemoteAddressIP4, subnet="10.0.0.0/8", negate=true)',
    'not cidr(RemoteAddressIP4, subnet=["2001:db8::/32", "::ffff:0:0/96"])',
]


@pytest.mark.parametrize("rule", CIDR)
def test_cidr_rows_agree(rule: str) -> None:
    """Matcher and SPL oracle on IPv4, IPv6, mapped, malformed and missing addresses; duckdb-kql
    does not run ipv4_is_in_any_range(), so the KQL is checked by Kusto.Language."""
    cql = N + rule + " | select([ComputerName, RemoteAddressIP4])"
    rows = assert_agree(cql, NETWORK, engines=("spl",))
    assert 0 < len(rows) < len(NETWORK)
    check_kql(convert(cql, to="kql"))


@pytest.mark.parametrize(("rule", "hosts"), [
    (CIDR[0], {1, 5, 10}), (CIDR[1], {3, 4, 5, 6, 7, 8, 9, 10}), (CIDR[2], {5, 6, 7, 10}), (CIDR[3], {1, 2, 3}),
    (CIDR[4], {2, 3, 5, 6, 7, 8, 9, 10}),
])
def test_cidr_reference_rows(rule: str, hosts: set[int]) -> None:
    """An address is only in subnets of its own version (functions-cidr: 0.0.0.0/0 checks for IPv4,
    ::/0 for IPv6); the mapped ::ffff:10.0.0.1 is IPv6; a leading zero is no IPv4 address."""
    matcher = compile_matcher(N + rule)
    assert {n for n, e in enumerate(NETWORK, 1) if matcher.match(e) is not None} == hosts


# ---------------------------------------------------------------- Sigma-converter sources

SIGMA_STYLE = ("event_platform=/^Lin$/i #event_simpleName=/^ProcessRollup2$/i or "
               "#event_simpleName=/^SyntheticProcessRollup2$/i ImageFileName=/\\/net$/i or "
               "ImageFileName=/\\/curl$/i CommandLine=/user/i not (CommandLine=/root/i) | select([ComputerName])")


def test_a_case_insensitive_anchored_source_picks_the_table_and_keeps_its_test() -> None:
    query = cqlx.parse(SIGMA_STYLE)
    assert query.source.event_types == ("ProcessRollup2", "SyntheticProcessRollup2")
    assert query.source.platforms == ("Lin",)
    assert query.source.platforms_test == ir.Regex("event_platform", "^Lin$", "i")
    spl = convert(SIGMA_STYLE, to="spl")
    assert spl.splitlines()[0] == ('sourcetype="crowdstrike:events:sensor" (event_simpleName=ProcessRollup2 OR '
                                   "event_simpleName=SyntheticProcessRollup2) event_platform=Lin")
    assert convert(SIGMA_STYLE, to="cql").startswith("#event_simpleName=/^ProcessRollup2$/i or ")
    sigma = yaml.safe_load(convert_query(query, "sigma").output or "")
    assert sigma["logsource"] == {"category": "process_creation", "product": "linux"}
    assert "case-insensitive" not in explain(query) and "selected by" in explain(query)
    need = build(query).needs[-1]
    # what the test needs, in any case: the whole value (or before a final newline: $)
    assert need.folded and {b'"processrollup2"', b'"syntheticprocessrollup2"'} <= set(need.literals)


def test_sigma_style_rows_agree_in_any_case() -> None:
    events = [
        {**_ev(1, "processrollup2", CommandLine="user x", ImageFileName="/usr/bin/NET"), "event_platform": "lin"},
        {**_ev(2, CommandLine="user root", ImageFileName="/usr/bin/net"), "event_platform": "Lin"},
        {**_ev(3, "SyntheticProcessRollup2", CommandLine="USER a", ImageFileName="/bin/curl"),
         "event_platform": "Lin"},
        {**_ev(4, CommandLine="user a", ImageFileName="/bin/curl"), "event_platform": "Win"},
        {**_ev(5, "ProcessRollup2x", CommandLine="user a", ImageFileName="/bin/curl"), "event_platform": "Lin"},
    ]
    rows = assert_agree(SIGMA_STYLE, events, engines=("spl",))
    assert sorted(r[0][1] for r in rows) == ["host-01", "host-03"]


# ---------------------------------------------------------------- free text

def test_free_text_searches_the_event_as_it_came_in() -> None:
    """syntax-filters: every field but @id, @timestamp, @ingesttimestamp and the tags, @rawstring
    included; fields added in the pipeline do not count. Case-sensitive."""
    matcher = compile_matcher('x := "needle" | "needle"')
    assert matcher.match({"a": "a needle"}) is not None
    assert matcher.match({"@rawstring": "needle", "a": "b"}) is not None
    assert matcher.match({"@timestamp": "needle", "#tag": "needle", "@id": "needle"}) is None
    assert matcher.match({"a": "NEEDLE"}) is None
    assert compile_matcher('case { "needle" | y := 1 ; * | y := 2 }').match({"a": "needle"}) == \
        {"a": "needle", "y": 1}
    with pytest.raises(UnsupportedError, match="free text after sort"):
        compile_matcher('sort(x) | "needle"')


@pytest.mark.parametrize(("target", "reason"), [
    ("kql", "do not hold one for one"), ("spl", "_raw"), ("sigma", "keywords"),
])
def test_free_text_is_refused_with_its_reason(target: str, reason: str) -> None:
    diagnostics = convert_query(cqlx.parse(P + '"whoami"'), target).diagnostics
    assert any(d.kind == DETECTION and reason in d.message for d in diagnostics)


# ---------------------------------------------------------------- the SPL oracle (Splunk's examples)

def test_oracle_rex_extracts_named_groups_and_keeps_what_it_does_not_match() -> None:
    # Search Manual, "Extract fields with search commands": From: Susan To: Bob gives from, to.
    rows = run_spl('search * | rex field=_raw "From: (?<from>\\\\S+) To: (?<to>\\\\S+)"',
                   [{"_raw": "From: Susan To: Bob"}, {"_raw": "no mail here"}])
    assert rows == [{"_raw": "From: Susan To: Bob", "from": "Susan", "to": "Bob"}, {"_raw": "no mail here"}]
    rows = run_spl('search * | rex field=a "x=(?<x>\\\\d+)(?<y>;)?"', [{"a": "x=1", "y": "old"}])
    assert rows == [{"a": "x=1", "x": "1", "y": "old"}]  # *assumption*: a group out of the match sets nothing
    with pytest.raises(SplOracleError, match="named group"):
        run_spl('search * | rex field=a "x"', [])


def test_oracle_cidrmatch() -> None:
    # Search Reference, cidrmatch(): eval matches = if(cidrmatch("123.132.32.0/25", ip), "local", "not local")
    spl = 'search * | eval matches=if(cidrmatch("123.132.32.0/25", ip), "local", "not local")'
    rows = run_spl(spl, [{"ip": "123.132.32.5"}, {"ip": "123.132.32.200"}, {"ip": "2001:db8::1"}, {}])
    assert [r["matches"] for r in rows] == ["local", "not local", "not local", "not local"]
    rows = run_spl('search * | where cidrmatch("2001:db8::/32", ip)', [{"ip": "2001:DB8::1"}, {"ip": "10.0.0.1"}])
    assert rows == [{"ip": "2001:DB8::1"}]
    with pytest.raises(SplOracleError, match="not a CIDR subnet"):
        run_spl('search * | where cidrmatch("10.0.0.0/99", ip)', [{"ip": "10.0.0.1"}])


def test_explain_describes_extractions_and_subnets() -> None:
    text = explain(cqlx.parse(P + "CommandLine=/user=(?<who>\\w+)/ | cidr(aip, subnet=\"10.0.0.0/8\")"))
    assert "Extract: who from the named groups of CommandLine = /user=(?<who>\\w+)/ (first match; keep the events " \
           "it matches)" in text
    assert "Keep the rows where: aip in subnet 10.0.0.0/8" in text


# Round trip (tests/test_emit_cql.py reads this module's tables): every query above reads back the same.
ROUND_TRIP = [
    'regex("x(?<a>\\\\d+)\\\\\\"q", field="host name", flags="", strict=false) | a > 3',
    "F=/(?<a>x)/dim a=x",
    '#event_simpleName=/^(?:ProcessRollup2|SyntheticProcessRollup2)$/ event_platform=/^Win$/i x=1',
    'in(#event_simpleName, values=["ProcessRollup2"], ignoreCase=true)',
    # a regex with named groups that is only tested (left by a double negation): not f!=/re/
    'not((\"\">0 or*)e!=/(?<x>/)',
    "not not e=/(?<x>a)/ | x=1",
    "y := 3 | case { not not e=/(?<x>a)/ f=2 | y := 1 | z := 2 ; * | y := 2 | z := 3 }",
    "e=/(?<x>a)/ or f=1",
    # a pattern no /literal/ holds (an unbalanced [: a / in a class does not end it) stays regex()
    'regex("[", field=F) | not regex("[(?<a>x)", field=G) | regex("(?<b>[)", field=H, strict=false)',
]


CIDR_CARD = """title: Outbound connection outside the private ranges
id: 0c6a3a6e-2f4e-4b8a-9a51-3d2f0e5b7c11
query: |
  #event_simpleName=NetworkConnectIP4
  | !cidr(RemoteAddressIP4, subnet=["10.0.0.0/8", "fd00::/8"])
  | select([ComputerName, RemoteAddressIP4])
tests:
  - name: public IPv4
    event: {"#event_simpleName": NetworkConnectIP4, ComputerName: a, RemoteAddressIP4: 8.8.8.8}
  - name: private IPv6
    event: {"#event_simpleName": NetworkConnectIP4, ComputerName: b, RemoteAddressIP4: "fd12::1"}
    match: false
"""


def test_cqlx_test_skips_duckdb_kql_where_it_lacks_the_ip_functions(tmp_path: Path) -> None:
    from cqlx import testing
    from cqlx.rules import load_rule

    path = tmp_path / "outbound_public.yml"
    path.write_text(CIDR_CARD, encoding="utf-8")
    report = testing.Report()
    testing.test_rule(load_rule(path), report)
    assert report.findings == []
    checked = {target: value for (_, target), value in report.checked.items()}
    assert str(checked["kql-duckdb"]).startswith("skipped: duckdb-kql does not run it")
    assert checked["kql-parser"] == 1 and checked["spl-oracle"] == 2 and checked["python"] == 2

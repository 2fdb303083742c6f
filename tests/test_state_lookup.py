"""``match()``, LogScale's lookup-file join (ir.Lookup): lowering, the rendering per target
(KQL join with the file's table, SPL lookup, Sigma's loss, canonical CQL), the Python matcher's
semantics (strict, not strict, negated, ignoreCase, glob, cidr, ambiguous files), and the rows of
the three executable engines over the same events and lookup file."""

from __future__ import annotations

from typing import Any

import pytest

import cqlx
from cqlx import compile_matcher, convert, ir, parse
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION, PRESENTATION
from cqlx.emit.cql import same_ir
from cqlx.engines.kusto_language import analyze, kusto_unavailable_reason
from cqlx.errors import CqlValueError, LookupFileError, UnsupportedError
from cqlx.explain import explain as describe
from cqlx.profiles import load_profile
from cqlx.spl_oracle import SplOracleError, run_spl
from tests.agreement import assert_agree, lookup_tables

P = "#event_simpleName=ProcessRollup2 | "


# ---------------------------------------------------------------- lowering


@pytest.mark.parametrize(("text", "expected"), [
    ('match(file="hosts.csv", field=ComputerName)', ir.Lookup("hosts.csv", ("ComputerName",), ("ComputerName",))),
    ("match(hosts.csv, field=aid, column=id, include=[owner, site])",
     ir.Lookup("hosts.csv", ("aid",), ("id",), ("owner", "site"))),
    ('match(file="n.csv", field=[a, b], column=[x, y], strict=false, ignoreCase=true, mode=cidr)',
     ir.Lookup("n.csv", ("a", "b"), ("x", "y"), None, False, True, "cidr")),
    ('match(file="g.csv", field=a, glob=true, include=k)', ir.Lookup("g.csv", ("a",), ("a",), ("k",), mode="glob")),
    ('!match(file="allow.csv", field=CommandLine, column=cmd)',
     ir.Lookup("allow.csv", ("CommandLine",), ("cmd",), negated=True)),
    ('not match(file="allow.csv", field=a)', ir.Lookup("allow.csv", ("a",), ("a",), negated=True)),
    ('UserName =~ match(file="u.csv", column=user, include=[])', ir.Lookup("u.csv", ("UserName",), ("user",), ())),
    ('match(file="h.csv", field=a, nrows=1)', ir.Lookup("h.csv", ("a",), ("a",))),
])
def test_match_lowers_to_a_lookup(text: str, expected: ir.Lookup) -> None:
    assert parse(text).steps == (expected,)


@pytest.mark.parametrize(("text", "message"), [
    ("match(field=a)", "needs the lookup file"),
    ('match(file="h.csv")', "needs the event field"),
    ('match(file="h.csv", field=[a, b], column=c)', "2 field.s. and 1 column"),
    ('match(file="h.csv", field=a, mode=regex)', "accepted: string, glob, cidr"),
    ('match(file="h.csv", field=a, strict=maybe)', "accepted: true, false"),
    ('match(file="h.csv", field=a, nrows=0)', "at least 1"),
    ('match(file="h.csv", field=a, colour=red)', "no parameter 'colour'"),
    ('match(file="h.csv", field=a, mode=cidr, glob=true)', "disagree"),
])
def test_bad_match_arguments_are_value_errors(text: str, message: str) -> None:
    with pytest.raises(CqlValueError, match=message):
        parse(text)


@pytest.mark.parametrize(("text", "reason"), [
    ('match(file="h.csv", field=a, nrows=5)', "nrows=5"),
    ('match(table="t", field=a)', "ad-hoc table"),
    ('!match(file="h.csv", field=a, strict=false)', "strict=false"),
])
def test_what_is_not_converted_stays_opaque(text: str, reason: str) -> None:
    (step,) = parse(text).steps
    assert isinstance(step, ir.Opaque) and step.text == text and reason in step.reason


def test_match_inside_a_boolean_expression_is_an_opaque_test() -> None:
    (step,) = parse('a = 1 or match(file="h.csv", field=a)').steps
    assert isinstance(step, ir.Filter) and isinstance(step.pred, ir.Or)
    opaque = step.pred.items[1]
    assert isinstance(opaque, ir.OpaqueTest) and "stage of its own" in opaque.reason


# ---------------------------------------------------------------- targets

KQL = [
    (P + 'match(file="hosts.csv", field=ComputerName, column=host, include=[owner])',
     "DeviceProcessEvents\n"
     "| join kind=inner (hosts | project _cqlx_lookup1_key1 = tostring(host), _cqlx_lookup1_value1 = tostring(owner) "
     "| where isnotempty(_cqlx_lookup1_key1) | summarize _cqlx_lookup1_value1 = take_any(_cqlx_lookup1_value1) "
     "by _cqlx_lookup1_key1) on $left.DeviceName == $right._cqlx_lookup1_key1\n"
     "| extend owner = _cqlx_lookup1_value1\n"
     "| project-away _cqlx_lookup1_key1, _cqlx_lookup1_value1\n"),
    (P + '!match(file="allow.csv", field=CommandLine, column=cmd)',
     "DeviceProcessEvents\n"
     "| join kind=leftanti (allow | project _cqlx_lookup1_key1 = tostring(cmd) "
     "| where isnotempty(_cqlx_lookup1_key1) | distinct _cqlx_lookup1_key1) "
     "on $left.ProcessCommandLine == $right._cqlx_lookup1_key1\n"),
    (P + 'match(file="hosts.csv", field=ComputerName, include=[])',
     "DeviceProcessEvents\n"
     "| join kind=leftsemi (hosts | project _cqlx_lookup1_key1 = tostring(ComputerName) "
     "| where isnotempty(_cqlx_lookup1_key1) | distinct _cqlx_lookup1_key1) "
     "on $left.DeviceName == $right._cqlx_lookup1_key1\n"),
    (P + 'match(file="pids.csv", field=RawProcessId, column=pid, include=[note], strict=false, ignoreCase=true)',
     "DeviceProcessEvents\n"
     "| extend _cqlx_lookup1_left1 = tolower(tostring(ProcessId))\n"
     "| join kind=leftouter (pids | project _cqlx_lookup1_key1 = tolower(tostring(pid)), "
     "_cqlx_lookup1_value1 = tostring(note) | where isnotempty(_cqlx_lookup1_key1) "
     "| summarize _cqlx_lookup1_value1 = take_any(_cqlx_lookup1_value1) by _cqlx_lookup1_key1) "
     "on $left._cqlx_lookup1_left1 == $right._cqlx_lookup1_key1\n"
     "| extend note = _cqlx_lookup1_value1\n"
     "| project-away _cqlx_lookup1_left1, _cqlx_lookup1_key1, _cqlx_lookup1_value1\n"),
]


@pytest.mark.parametrize(("rule", "expected"), KQL)
def test_kql_joins_the_lookup_table(rule: str, expected: str) -> None:
    assert convert(rule, to="kql") == expected


@pytest.mark.skipif(kusto_unavailable_reason() is not None, reason=str(kusto_unavailable_reason()))
def test_kql_lookups_pass_kusto_language() -> None:
    rules = [rule for rule, _ in KQL] + [
        P + 'match(file="hosts.csv", field=ComputerName, column=host, include=[ComputerName, owner], strict=false)']
    tables = {n: list(c) for n, c in load_profile("mde").tables.items()}
    for table in ("hosts", "allow", "pids"):
        tables[table] = [(c, "string") for c in ("host", "owner", "cmd", "pid", "note", "ComputerName")]
    results = analyze([convert(rule, to="kql") for rule in rules], tables)
    assert [[d.message for d in diagnostics if d.is_error] for diagnostics in results] == [[]] * len(rules)


def test_a_sentinel_watchlist_is_read_with_getwatchlist() -> None:
    profile = load_profile("sentinel-asim")
    assert profile.lookup_table == "_GetWatchlist('{name}')"
    kql = convert(P + 'match(file="hosts.csv", field=ComputerName, column=host, include=[owner])', to="kql",
                  profile="sentinel-asim")
    assert '| join kind=inner (_GetWatchlist("hosts") | project ' in kql


SPL = [
    (P + 'match(file="hosts.csv", field=ComputerName, column=host, include=[owner])',
     "| lookup hosts.csv host AS aid_computer_name OUTPUT host AS _cqlx_lookup1_key, owner AS _cqlx_lookup1_value1\n"
     "| where isnotnull(_cqlx_lookup1_key)\n"
     '| eval owner=coalesce(_cqlx_lookup1_value1, "")\n'
     "| fields - _cqlx_lookup1_key _cqlx_lookup1_value1\n"),
    (P + '!match(file="allow.csv", field=CommandLine, column=cmd)',
     "| lookup allow.csv cmd AS CommandLine OUTPUT cmd AS _cqlx_lookup1_key\n"
     "| where isnull(_cqlx_lookup1_key)\n"
     "| fields - _cqlx_lookup1_key\n"),
    (P + 'match(file="h.csv", field=[ComputerName, UserSid], column=[h, s], include=[site], strict=false)',
     "| lookup h.csv h AS aid_computer_name, s AS UserSid OUTPUT h AS _cqlx_lookup1_key, site AS _cqlx_lookup1_value1\n"
     '| eval site=if(isnotnull(_cqlx_lookup1_key), coalesce(_cqlx_lookup1_value1, ""), site)\n'
     "| fields - _cqlx_lookup1_key _cqlx_lookup1_value1\n"),
]


@pytest.mark.parametrize(("rule", "expected"), SPL)
def test_spl_runs_the_lookup_command(rule: str, expected: str) -> None:
    spl = convert(rule, to="spl")
    assert spl.split("\n", 1)[1] == expected


@pytest.mark.parametrize(("rule", "target", "kind", "message"), [
    (P + 'match(file="h.csv", field=a, include=[x])', "sigma", DETECTION, "Sigma has no lookup files"),
    (P + '!match(file="h.csv", field=a)', "sigma", DETECTION, "Sigma has no lookup files"),
    (P + 'match(file="h.csv", field=a, include=[x], strict=false) | CommandLine=/x/', "sigma", PRESENTATION,
     "columns are left out"),
    (P + 'match(file="h.csv", field=a, include=[x], strict=false) | x=1', "sigma", DETECTION, "Sigma has no"),
    (P + 'match(file="h.csv", field=ComputerName, mode=glob, include=[])', "kql", DETECTION, "mode=glob"),
    (P + 'match(file="h.csv", field=ComputerName, mode=cidr, include=[])', "spl", DETECTION, "CIDR"),
    (P + 'match(file="h.csv", field=ComputerName, ignoreCase=true, include=[])', "spl", DETECTION,
     "case_sensitive_match"),
    (P + 'match(file="h.csv", field=ComputerName, strict=false) | CommandLine=/x/', "kql", DETECTION,
     "without include="),
    (P + 'match(file="h.csv", field=ComputerName, strict=false) | select([ComputerName])', "kql", PRESENTATION,
     "without include="),
])
def test_what_a_target_cannot_do_is_reported_by_kind(rule: str, target: str, kind: str, message: str) -> None:
    conversion = convert_query(parse(rule), target)
    found = [d for d in conversion.diagnostics if "match(" in d.message]
    assert found and found[0].kind == kind and message in found[0].message, conversion.diagnostics


CQL = [
    ('match(hosts.csv, field=aid, column=id, include=[owner], strict=false, ignoreCase=true, mode=glob)',
     'match(file="hosts.csv", field=aid, column=id, include=[owner], strict=false, ignoreCase=true, mode=glob)\n'),
    ('not match(file="a b.csv", field=["host name", x])', '!match(file="a b.csv", field=["host name", x])\n'),
    ('UserName =~ match(file="u.csv", column=user, nrows=1)', 'match(file="u.csv", field=UserName, column=user)\n'),
]


@pytest.mark.parametrize(("text", "expected"), CQL)
def test_canonical_cql_round_trips(text: str, expected: str) -> None:
    output = convert(text, to="cql")
    assert output == expected
    assert same_ir(parse(output), parse(text))


def test_explain_describes_the_lookup() -> None:
    text = describe(parse('match(file="hosts.csv", field=aid, column=id, include=[owner], ignoreCase=true)'))
    assert "Lookup: look aid against column id up in hosts.csv (equal, ignoring case); keep only the events " \
           "with a row, and write owner from the matching row" in text
    assert "has no row in allow.csv" in describe(parse('!match(file="allow.csv", field=a)'))


# ---------------------------------------------------------------- the Python matcher

HOSTS = [
    {"host": "web-01", "owner": "alice", "site": "paris"},
    {"host": "WEB-02", "owner": "bob", "site": ""},
    {"host": "", "owner": "nobody", "site": "void"},  # an empty key cell matches nothing
    {"host": "db-*", "owner": "carol", "site": "rome"},
]


def _run(text: str, events: list[dict[str, Any]], rows: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    return compile_matcher(text, lookups={"hosts.csv": rows if rows is not None else HOSTS}).run(events)


EVENTS = [{"h": "web-01"}, {"h": "web-02"}, {"h": "db-7"}, {"h": ""}, {}]


@pytest.mark.parametrize(("text", "expected"), [
    ('match(file="hosts.csv", field=h, column=host, include=[owner])', [{"h": "web-01", "owner": "alice"}]),
    ('match(file="hosts.csv", field=h, column=host, include=[owner, site], ignoreCase=true)',
     [{"h": "web-01", "owner": "alice", "site": "paris"}, {"h": "web-02", "owner": "bob", "site": ""}]),
    ('match(file="hosts.csv", field=h, column=host, include=[owner], strict=false)',
     [{"h": "web-01", "owner": "alice"}, {"h": "web-02"}, {"h": "db-7"}, {"h": ""}, {}]),
    ('!match(file="hosts.csv", field=h, column=host)', [{"h": "web-02"}, {"h": "db-7"}, {"h": ""}, {}]),
    ('match(file="hosts.csv", field=h, column=host, include=[owner], mode=glob)',
     [{"h": "web-01", "owner": "alice"}, {"h": "db-7", "owner": "carol"}]),
    ('match(file="hosts.csv", field=h, column=host)',  # every column, the key column too
     [{"h": "web-01", "host": "web-01", "owner": "alice", "site": "paris"}]),
])
def test_matcher_semantics(text: str, expected: list[dict[str, Any]]) -> None:
    assert _run(text, EVENTS) == expected


def test_cidr_takes_the_most_specific_subnet() -> None:
    nets = [{"net": "10.0.0.0/8", "zone": "corp"}, {"net": "10.1.0.0/16", "zone": "lab"},
            {"net": "2001:db8::/32", "zone": "v6"}]
    matcher = compile_matcher('match(file="nets.csv", field=ip, column=net, mode=cidr, include=[zone])',
                              lookups={"nets.csv": nets})
    events = [{"ip": "10.1.2.3"}, {"ip": "10.9.0.1"}, {"ip": "2001:db8::1"}, {"ip": "192.0.2.1"}, {"ip": "x"}]
    assert matcher.run(events) == [{"ip": "10.1.2.3", "zone": "lab"}, {"ip": "10.9.0.1", "zone": "corp"},
                                   {"ip": "2001:db8::1", "zone": "v6"}]


def test_a_file_read_from_disk(tmp_path: Any) -> None:
    path = tmp_path / "hosts.csv"
    path.write_text("host,owner\nweb-01,alice\n", encoding="utf-8")
    matcher = compile_matcher('match(file="hosts.csv", field=h, column=host, include=[owner])',
                              lookups={"hosts.csv": str(path)})
    assert matcher.run(EVENTS) == [{"h": "web-01", "owner": "alice"}]


def test_a_lookup_file_not_given_is_a_clear_error() -> None:
    with pytest.raises(LookupFileError, match=r"lookup file hosts\.csv, which was not given") as error:
        compile_matcher(P + 'match(file="hosts.csv", field=h)')
    assert error.value.span.column == 36


@pytest.mark.parametrize(("text", "rows", "message"), [
    ('match(file="hosts.csv", field=h, column=host, include=[owner])',
     [{"host": "a", "owner": "x"}, {"host": "a", "owner": "y"}], "rows 2 and 3 for the key a"),
    ('match(file="hosts.csv", field=h, column=host, include=[owner], mode=glob)',
     [{"host": "a*", "owner": "x"}, {"host": "*b", "owner": "y"}], "rows 2 and 3 that both match ab"),
    ('match(file="hosts.csv", field=h, column=name)', [{"host": "a"}], "has no column 'name'"),
    ('match(file="hosts.csv", field=h, column=host, mode=cidr)', [{"host": "nope"}], "is not a CIDR subnet"),
])
def test_ambiguous_or_broken_files_are_refused(text: str, rows: list[dict[str, str]], message: str) -> None:
    with pytest.raises(LookupFileError, match=message):
        _run(text, [{"h": "ab"}], rows)


def test_duplicate_rows_that_agree_are_fine() -> None:
    rows = [{"host": "a", "owner": "x", "n": "1"}, {"host": "a", "owner": "x", "n": "2"}]
    assert _run('match(file="hosts.csv", field=h, column=host, include=[owner])', [{"h": "a"}], rows) == [
        {"h": "a", "owner": "x"}]


# ---------------------------------------------------------------- the SPL oracle's lookup


def test_oracle_lookup_as_the_search_reference_example() -> None:
    """Search Reference, lookup: ``lookup usertogroup user as local_user OUTPUT group as user_group``."""
    table = [{"user": "amy", "group": "admins"}, {"user": "bob", "group": "users"}]
    rows = run_spl("search *\n| lookup usertogroup user as local_user OUTPUT group as user_group",
                   [{"local_user": "amy"}, {"local_user": "Amy"}, {"x": "1"}], {"usertogroup": table})
    assert rows == [{"local_user": "amy", "user_group": "admins"}, {"local_user": "Amy"}, {"x": "1"}]


def test_oracle_lookup_outputnew_and_every_column() -> None:
    table = [{"user": "amy", "group": "admins", "site": "paris"}]
    new = run_spl("search *\n| lookup t user OUTPUTNEW group", [{"user": "amy", "group": "kept"}, {"user": "amy"}],
                  {"t": table})
    assert new == [{"user": "amy", "group": "kept"}, {"user": "amy", "group": "admins"}]
    every = run_spl("search *\n| lookup t user", [{"user": "amy"}], {"t": table})
    assert every == [{"user": "amy", "group": "admins", "site": "paris"}]


@pytest.mark.parametrize(("spl", "message"), [
    ("search *\n| lookup missing user", "was not given"),
    ("search *\n| lookup t user OUTPUT group", "2 rows of t match"),
])
def test_oracle_lookup_refuses_what_it_does_not_interpret(spl: str, message: str) -> None:
    table = [{"user": "amy", "group": "a"}, {"user": "amy", "group": "b"}]
    with pytest.raises(SplOracleError, match=message):
        run_spl(spl, [{"user": "amy"}], {"t": table})


# ---------------------------------------------------------------- agreement


def _event(n: int, **fields: Any) -> dict[str, Any]:
    return {"#event_simpleName": "ProcessRollup2", "ComputerName": f"host-{n:02d}", **fields}


AGREE_EVENTS = [
    _event(1, CommandLine="whoami", UserSid="S-1-5-18", RawProcessId="10"),
    _event(2, CommandLine="net user", UserSid="S-1-5-21", RawProcessId="20"),
    _event(3, CommandLine="whoami /all", UserSid="S-1-5-18", RawProcessId="30"),
    _event(4, CommandLine="ipconfig", RawProcessId="40"),
    _event(5, UserSid="S-1-5-21"),
    _event(6, CommandLine="WHOAMI", UserSid="S-1-5-18"),
]
LOOKUPS = {
    "hosts.csv": [{"host": "host-01", "owner": "alice", "site": "paris"},
                  {"host": "host-03", "owner": "bob", "site": ""},
                  {"host": "host-05", "owner": "carol", "site": "rome"},
                  {"host": "", "owner": "nobody", "site": "void"}],
    "allow.csv": [{"cmd": "whoami", "why": "admin check"}, {"cmd": "ipconfig", "why": "network"}],
    "rename.csv": [{"host": "host-01", "ComputerName": "renamed"}],
    "pairs.csv": [{"h": "host-01", "cmd": "whoami", "tag": "system"},
                  {"h": "host-02", "cmd": "whoami", "tag": "other command"}],
}
AGREE = [
    P + 'match(file="hosts.csv", field=ComputerName, column=host, include=[owner, site]) '
        "| select([ComputerName, CommandLine, owner, site])",
    P + 'match(file="hosts.csv", field=ComputerName, column=host, include=[owner], strict=false) '
        "| select([ComputerName, owner])",
    P + '!match(file="allow.csv", field=CommandLine, column=cmd) | select([ComputerName, CommandLine])',
    P + 'match(file="allow.csv", field=CommandLine, column=cmd, include=[]) | select([ComputerName])',
    P + 'match(file="pairs.csv", field=[ComputerName, CommandLine], column=[h, cmd], include=[tag]) '
        "| select([ComputerName, tag])",
    P + 'match(file="hosts.csv", field=ComputerName, column=host, include=[owner], strict=false) '
        "| owner=* | select([ComputerName, owner])",
    P + 'match(file="rename.csv", field=ComputerName, column=host, include=[ComputerName], strict=false) '
        "| select([ComputerName])",
]


@pytest.mark.parametrize("rule", AGREE)
def test_lookup_rows_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(rule, AGREE_EVENTS, lookups=LOOKUPS)
    assert rows


def test_number_columns_are_compared_as_text_in_kql() -> None:
    """RawProcessId is a long column in Defender: the key is its text, as the matcher compares it."""
    rule = P + 'match(file="pids.csv", field=RawProcessId, column=pid, include=[note]) | select([ComputerName, note])'
    lookups = {"pids.csv": [{"pid": "20", "note": "n"}, {"pid": "x", "note": "no number"}]}
    rows = assert_agree(rule, AGREE_EVENTS, engines=("kql", "spl"), lookups=lookups)
    assert [dict(r)["ComputerName"] for r in rows] == ["host-02"]


def test_duplicate_rows_that_agree_give_each_event_once_everywhere() -> None:
    """The KQL's right side holds each key once (summarize ... by key), as the matcher does."""
    rule = P + 'match(file="dup.csv", field=ComputerName, column=host, include=[owner]) | select([ComputerName, owner])'
    lookups = {"dup.csv": [{"host": "host-01", "owner": "alice", "n": "1"},
                           {"host": "host-01", "owner": "alice", "n": "2"}]}
    rows = assert_agree(rule, AGREE_EVENTS, engines=("kql",), lookups=lookups)
    assert rows == [(("ComputerName", "host-01"), ("owner", "alice"))]


def test_lookup_tables_are_named_as_the_profile_says() -> None:
    assert set(lookup_tables(LOOKUPS)) == {"hosts", "allow", "rename", "pairs"}


def test_refused_when_strict_and_the_target_cannot() -> None:
    with pytest.raises(UnsupportedError, match="Sigma has no lookup files"):
        cqlx.convert(P + 'match(file="h.csv", field=a, include=[])', to="sigma")

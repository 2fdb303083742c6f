"""Value functions on every engine: the Python matcher (the reference), the KQL on duckdb-kql and the
SPL on the SPL oracle give the same rows for the same events — events with missing fields, empty
strings, numbers written as text, non-ASCII text and characters beyond the BMP. The KQL passes
Microsoft's parser (Kusto.Language), the Sigma loads in pySigma, and the SPL oracle's new functions
give the Splunk documentation's own examples."""

from __future__ import annotations

from typing import Any

import pytest

from cqlx import convert, parse
from cqlx.conversion import convert_query
from cqlx.spl_oracle import run_spl
from cqlx.testing import check_kql
from tests.agreement import assert_agree
from tests.test_funcs import KQL

P = "#event_simpleName=ProcessRollup2 "
MS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def _event(n: int, **fields: Any) -> dict[str, Any]:
    # seven hours apart: the hours of the day, am and pm, and two dates
    return {"#event_simpleName": "ProcessRollup2", "ComputerName": f"host-{n:02d}", "@timestamp": MS + n * 25_200_000,
            **fields}


# RawProcessId is a number column in Defender (numbers written as text go in SHA256HashData, a string
# column on every engine); ImageFileName holds paths, CommandLine text.
EVENTS = [
    _event(1, CommandLine="cmd.exe /c whoami", RawProcessId=4242, ImageFileName="C:\\Windows\\System32\\cmd.exe",
           SHA256HashData="2.5"),
    _event(2, CommandLine="", RawProcessId=-17, ImageFileName="/usr/bin/bash", SHA256HashData="-2.5"),
    _event(3, ImageFileName="C:\\x\\", SHA256HashData="abc"),
    _event(4, CommandLine="pówershell -enc ZQBjAGgAbwA= ünïcödé", RawProcessId=12345678, ImageFileName="a\\b\\\\",
           SHA256HashData="1e3"),
    _event(5, CommandLine="powershell   -nop  -w hidden", ImageFileName="", SHA256HashData="0.49999999999999994"),
    _event(6, CommandLine="x\U0001F600y", RawProcessId=7, ImageFileName="\\\\", SHA256HashData="007"),
    _event(7, CommandLine="%41%zz+b", SHA256HashData="1700000000"),
]

ROWS = "| select([ComputerName, x])"
# (rule): every engine gives the reference's rows, and some row has a value for x
VALUES = [
    # format(): %s and %d on every engine (KQL writes no others); SPL also flags, widths and %f
    '| x := format("%s (%d)", field=[CommandLine, RawProcessId]) ' + ROWS,
    '| x := format("<%s>", field=SHA256HashData) ' + ROWS,
    '| x := format("%d", field=SHA256HashData) ' + ROWS,
    # formatTime(): every code, UTC (SPL's strftime is the user's zone: the oracle's is UTC)
    '| formatTime("%Y-%m-%d %H:%M:%S.%L %p|%e|%k|%l|%I|%j|%a %A %b %B|%y|%C|%s|%Q|%z|%Z|%N|%r|%c", as=x) ' + ROWS,
    '| formatTime("%F %T", as=x, field=SHA256HashData) ' + ROWS,
    '| formatTime("%F %T.%L", as=x, field=SHA256HashData, unit=milliseconds) ' + ROWS,
    "| x := length(CommandLine) " + ROWS,
    "| x := concat([CommandLine, SHA256HashData]) " + ROWS,
    # crypto:md5(): every event gets one, the hash of "" where every field is missing or empty
    "| x := crypto:md5([CommandLine, RawProcessId]) " + ROWS,
    "| crypto:md5(MD5HashData, as=x) " + ROWS,
    '| x := replace("(\\\\w+)\\\\.exe", with="[$1]", field=CommandLine, flags=i) ' + ROWS,
    '| x := replace("\\\\s+", with=" ", field=CommandLine) ' + ROWS,
    '| x := splitString(ImageFileName, by="\\\\\\\\", index=-1) ' + ROWS,
    '| x := splitString(ImageFileName, by="\\\\\\\\", index=1) ' + ROWS,
    '| x := splitString(ImageFileName, by="/", index=0) ' + ROWS,
    "| x := round(SHA256HashData) " + ROWS,
    "| x := round(SHA256HashData, how=floor) " + ROWS,
    "| x := round(SHA256HashData, how=ceil) " + ROWS,
    '| x := coalesce([CommandLine, ImageFileName, "none"]) ' + ROWS,
    '| default(field=[CommandLine, MD5HashData], value="-") | select([ComputerName, CommandLine, MD5HashData])',
    "| rename(field=CommandLine, as=x) | select([ComputerName, x, CommandLine])",
    "| rename(field=[[CommandLine, x], [ImageFileName, y]]) | select([ComputerName, x, y])",
    "| eval(x = RawProcessId * 2) " + ROWS,
    # unit:convert(): numbers between unit prefixes (numbers written as text, and text, included)
    "| x := unit:convert(RawProcessId, to=k) " + ROWS,
    "| x := unit:convert(SHA256HashData, from=M, to=k, binary=true) " + ROWS,
    "| unit:convert(RawProcessId, to=G, binary=true, as=x) " + ROWS,
]


@pytest.mark.parametrize("rule", VALUES)
def test_values_agree_on_every_engine(rule: str) -> None:
    rows = assert_agree(P + rule, EVENTS)
    assert any(value is not None for row in rows for name, value in row if name != "ComputerName")


# (rule): a later step decides rows on what a function wrote; the rows agree and are a strict subset
FILTERS = [
    "| test(length(CommandLine) > 10) | select([ComputerName])",
    '| x := replace("^p", with="P", field=CommandLine) | x = P* ' + ROWS,
    '| x := splitString(CommandLine, by=" ", index=-2) | x = "-w" ' + ROWS,
    "| x := lower(CommandLine) | x = *whoami* " + ROWS,
    "| rename(field=CommandLine, as=x) | x = * | select([ComputerName, x])",
    '| x := format("%d", field=SHA256HashData) | test(x > 5) ' + ROWS,
    "| x := round(SHA256HashData) | x >= 3 " + ROWS,
    '| default(field=CommandLine, value="none") | CommandLine = "none" | select([ComputerName])',
    '| crypto:md5([CommandLine], as=x) | x = "d41d8cd98f00b204e9800998ecf8427e" ' + ROWS,
    "| x := now() | test(x > 1700000000000) | test(length(CommandLine) >= 0) | select([ComputerName])",
]


@pytest.mark.parametrize("rule", FILTERS)
def test_filters_on_function_values_agree(rule: str) -> None:
    rows = assert_agree(P + rule, EVENTS)
    assert 0 < len(rows) < len(EVENTS)


SECONDS = [_event(n, SHA256HashData=v) for n, v in enumerate(("1.5", "-2.25", "1700000000.123", "0", "x"))]


def test_seconds_with_a_fraction_agree() -> None:
    rows = assert_agree(P + '| formatTime("%F %T.%L", as=x, field=SHA256HashData, unit=seconds) ' + ROWS, SECONDS)
    assert ("x", "2023-11-14 22:13:20.123") in [row[1] for row in rows]


SPL_ONLY = [
    # duckdb-kql has no url_decode(); KQL writes no %f, widths or flags
    "| x := urlDecode(CommandLine) " + ROWS,
    '| x := format("%,d|%05d|%-6d|%+d|% d", field=[RawProcessId, RawProcessId, RawProcessId, RawProcessId, '
    'RawProcessId]) ' + ROWS,
    '| x := format("%.2f|%,.1f|%8.3f", field=[SHA256HashData, SHA256HashData, SHA256HashData]) ' + ROWS,
]


@pytest.mark.parametrize("rule", SPL_ONLY)
def test_rows_agree_on_the_spl_oracle(rule: str) -> None:
    rows = assert_agree(P + rule, EVENTS, engines=("spl",))
    assert any(value is not None for row in rows for name, value in row if name != "ComputerName")


def test_a_formatted_hour_decides_rows_as_in_logscale() -> None:
    """Off-hours detections test formatTime()'s output: three of the seven events fall before noon."""
    rows = assert_agree(P + '| formatTime("%H", as=x) | x < 12 ' + ROWS, EVENTS, engines=("kql",))
    assert len(rows) == 3


@pytest.mark.parametrize("query", [q for q, _ in KQL])
def test_kql_passes_kusto_language(query: str) -> None:
    conversion = convert_query(parse(P + "| " + query), "kql")
    check_kql(conversion.output)


@pytest.mark.parametrize("rule", VALUES + FILTERS + SPL_ONLY)
def test_agreement_rules_pass_kusto_language(rule: str) -> None:
    check_kql(convert_query(parse(P + rule), "kql").output)


def test_sigma_keeps_the_filters_and_says_what_it_cannot_compute() -> None:
    from sigma.collection import SigmaCollection

    rule = P + '| CommandLine = *whoami* | x := format("%s", field=[CommandLine]) | rename(field=x, as=y) ' \
               '| select([ComputerName, y])'
    conversion = convert_query(parse(rule), "sigma")
    collection = SigmaCollection.from_yaml(conversion.output)
    assert len(collection.rules) == 1 and "whoami" in conversion.output
    assert {d.kind for d in conversion.diagnostics} == {"presentation"}
    assert "computes" in conversion.diagnostics[0].message and "y" in conversion.diagnostics[0].message


# ---------------------------------------------------------------- the SPL oracle: the documentation's examples


def _eval(expression: str, **fields: object) -> object:
    rows = run_spl(f"search * | eval out={expression}", [fields or {"x": 1}])
    return rows[0].get("out")


SPLUNK_EXAMPLES = [
    # conversion functions, printf: "printf("%d,%i,%d",-2,+4,30) ... returns -2,4,30" (the oracle
    # has no unary +: 4 here)
    ('printf("%d,%i,%d",-2,4,30)', "-2,4,30"),
    ("printf(\"%'d\",12345)", "12,345"),  # the ' flag: thousands separators
    ('printf("%.2f|%08.3f|%-5d|", 3.14159, -2.5, 42)', "3.14|-002.500|42   |"),
    ('printf("%.2f", 0.125)', "0.12"),  # C rounds the binary value (0.125 exactly: to even)
    # text functions: len, replace (the documentation swaps month and day), substr, urldecode
    ('len("hello")', 5),
    ('replace("1/14/2017", "^(\\d{1,2})/(\\d{1,2})/", "\\2/\\1/")', "14/1/2017"),
    ('substr("string", 1, 3) . substr("string", -3)', "string"),
    ('urldecode("http%3A%2F%2Fwww.splunk.com%2Fdownload%3Fr%3Dheader")', "http://www.splunk.com/download?r=header"),
    # cryptographic functions: md5("Hello World") (the documentation's result)
    ('md5("Hello World")', "b10a8db164e0754105b7a99be72e3fe5"),
    # mathematical functions: "ceiling(1.9) returns 2", floor(1.9) returns 1
    ("ceiling(1.9)", 2),
    ("floor(1.9)", 1),
    ("round(2.5)", 3),
    # multivalue: split() then mvindex(), counting from 0, negative from the end
    ('mvindex(split("a,b,c", ","), 1)', "b"),
    ('mvindex(split("a,b,c", ","), -1)', "c"),
    ('mvindex(split("a,b,c", ","), 3)', None),
    # date and time: strftime() (the oracle's user is in UTC), tostring()
    ('strftime(1521467703, "%Y-%m-%dT%H:%M:%S %a %b %p %j %z")', "2018-03-19T13:55:03 Mon Mar PM 078 +0000"),
    ("tostring(2.5) . tostring(7)", "2.57"),
]


@pytest.mark.parametrize(("expression", "expected"), SPLUNK_EXAMPLES, ids=[e for e, _ in SPLUNK_EXAMPLES])
def test_spl_oracle_functions(expression: str, expected: object) -> None:
    assert _eval(expression) == expected


def test_spl_oracle_refuses_a_multivalue_result() -> None:
    from cqlx.spl_oracle import SplOracleError

    with pytest.raises(SplOracleError, match="multivalue"):
        run_spl('search * | eval out=split("a,b", ",")', [{"x": 1}])


def test_convert_refuses_what_changes_detection_by_default() -> None:
    from cqlx.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="shannonEntropy"):
        convert(P + "| e := shannonEntropy(CommandLine) | e > 3.5", to="kql")

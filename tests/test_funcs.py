"""Value functions (format(), formatTime(), replace(), splitString(), round()... and rename(),
default(), eval()): how they lower to the IR, their argument errors, what cqlx keeps opaque, the
reference semantics in cqlx.runtime, and each emitter's output (KQL, SPL, canonical CQL, explain).
Agreement of the engines on events is in tests/test_funcs_agreement.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqlx import compile_matcher, ir, parse
from cqlx import runtime as R
from cqlx.conversion import convert_query
from cqlx.emit.base import DETECTION, PRESENTATION
from cqlx.emit.cql import same_ir
from cqlx.errors import CqlValueError
from cqlx.explain import explain
from cqlx.testing import check_kql
from tests.test_fuzz import FIXED_EVENTS, check_text, describe
from tests.test_fuzz import events as fuzz_events

P = "#event_simpleName=ProcessRollup2 | "
a, b, c = ir.Ref("a"), ir.Ref("b"), ir.Ref("c")


def _lit(*values: str | int) -> tuple[ir.Lit, ...]:
    return tuple(ir.Lit(v) for v in values)


# ---------------------------------------------------------------- lowering

LOWERING: list[tuple[str, tuple[ir.Step, ...]]] = [
    # format(format, field=[...], as=_format): the format string binds unnamed, wherever it stands
    ('format("%s/%s", field=[a, b], as=x)', (ir.Eval("x", ir.Func("format", (ir.Lit("%s/%s"), a, b))),)),
    ('format(field=a, "%s")', (ir.Eval("_format", ir.Func("format", (ir.Lit("%s"), a))),)),
    ('x := format("%d", field="a")', (ir.Eval("x", ir.Func("format", (ir.Lit("%d"), a))),)),
    # formatTime(): as= is required; field @timestamp, timezone UTC and unit auto by default
    ('formatTime("%H", as=h)', (ir.Eval("h", ir.Func("formatTime", (ir.Lit("%H"), ir.Ref("@timestamp"),
                                                                    *_lit("UTC", "auto")))),)),
    ('h := formatTime("%H", field=t, timezone="Europe/Oslo", unit=Seconds)',
     (ir.Eval("h", ir.Func("formatTime", (ir.Lit("%H"), ir.Ref("t"), *_lit("Europe/Oslo", "seconds")))),)),
    ("concat([a, b])", (ir.Eval("_concat", ir.Func("concat", (a, b))),)),
    ("length(a)", (ir.Eval("_length", ir.Func("length", (a,))),)),
    ('length("host name", as=n)', (ir.Eval("n", ir.Func("length", (ir.Ref("host name"),))),)),
    # replace(): the regex binds unnamed; field @rawstring, with "", flags m by default; as= the field
    ('replace("a+", with="b", field=c)', (ir.Eval("c", ir.Func("replace", (c, *_lit("a+", "b", "m")))),)),
    ('replace(regex="x", replacement="$0", flags="im", as=y)',
     (ir.Eval("y", ir.Func("replace", (ir.Ref("@rawstring"), *_lit("x", "$0", "im")))),)),
    ('splitString(a, by=",", index=-1, as=last)', (ir.Eval("last", ir.Func("splitString", (a, *_lit(",", -1)))),)),
    ("round(a)", (ir.Eval("a", ir.Func("round", (a, ir.Lit("round")))),)),
    ("round(a, how=CEIL, as=r)", (ir.Eval("r", ir.Func("round", (a, ir.Lit("ceil")))),)),
    ("now()", (ir.Eval("_now", ir.Func("now", ())),)),
    ("now(t)", (ir.Eval("t", ir.Func("now", ())),)),  # as is now()'s unnamed parameter
    # duration(): the milliseconds of a relative time, the same on every event (syntax-time-relative)
    ('duration("5m")', (ir.Eval("_duration", ir.Lit(300_000)),)),
    ("x := duration(7d) | y := duration(\"2 hours\") | z := duration(1w)",
     (ir.Eval("x", ir.Lit(604_800_000)), ir.Eval("y", ir.Lit(7_200_000)), ir.Eval("z", ir.Lit(604_800_000)))),
    ("x := duration(1mon) + duration(1q) + duration(1y)",
     (ir.Eval("x", ir.Arith("+", ir.Arith("+", ir.Lit(2_592_000_000), ir.Lit(7_776_000_000)),
                            ir.Lit(31_536_000_000))),)),
    ("test(t > now() - duration(30s))", (ir.Filter(ir.ExprTest(">", ir.Ref("t"), ir.Arith(
        "-", ir.Func("now", ()), ir.Lit(30_000)))),)),
    ('coalesce([a, "-"], ignoreEmpty=false)', (ir.Eval("_coalesce", ir.Func("coalesce", (*_lit("false"), a,
                                                                                          ir.Lit("-")))),)),
    ('base64Decode(a, charset="utf-16le")', (ir.Eval("_base64Decode", ir.Func("base64Decode",
                                                                             (a, ir.Lit("UTF-16LE")))),)),
    # crypto:md5(): the fields, hashed together, into _md5 (functions-crypto-md5)
    ("crypto:md5([a, b])", (ir.Eval("_md5", ir.Func("crypto:md5", (a, b))),)),
    ("x := crypto:md5(field=a)", (ir.Eval("x", ir.Func("crypto:md5", (a,))),)),
    ("urlDecode(a) | shannonEntropy(b)", (ir.Eval("_urldecode", ir.Func("urlDecode", (a,))),
                                          ir.Eval("_shannonentropy", ir.Func("shannonEntropy", (b,))))),
    ('concatArray(server, separator=",")', (ir.Eval("_concatArray", ir.Func("concatArray", _lit(
        "server", 0, -1, "", ",", ""))),)),
    # unit:convert(): between prefixes of one unit, the input field written unless as= (functions-unit-convert)
    ("unit:convert(a, to=k)", (ir.Eval("a", ir.Func("unit:convert", (a, *_lit("", "k", "false")))),)),
    ('x := unit:convert(a, from="M", to=k, binary=true)', (ir.Eval("x", ir.Func("unit:convert", (
        a, *_lit("M", "k", "true")))),)),
    ("unit:convert(field=a, as=b)", (ir.Eval("b", ir.Func("unit:convert", (a, *_lit("", "", "false")))),)),
    # default(): each field of the list keeps its value, or takes the default
    ('default(field=[a, b], value="-")', (ir.Eval("a", ir.Func("default", (a, *_lit("-", "false")))),
                                          ir.Eval("b", ir.Func("default", (b, *_lit("-", "false")))))),
    ("a =~ default(0, replaceEmpty=true)", (ir.Eval("a", ir.Func("default", (a, *_lit("0", "true")))),)),
    # rename(): an assignment and a drop, in the order of the pairs; to itself, nothing
    ("rename(field=a, as=b)", (ir.Eval("b", a), ir.Drop(("a",)))),
    ("b := rename(a)", (ir.Eval("b", a), ir.Drop(("a",)))),
    ("rename([[a, b], [b, c]])", (ir.Eval("b", a), ir.Drop(("a",)), ir.Eval("c", b), ir.Drop(("b",)))),
    ("rename(a, as=a)", ()),
    # eval(): the old assignment form; every field it reads must be present (functions-default)
    ("eval(x = a + b)", (ir.Filter(ir.And((ir.Exists("a"), ir.Exists("b")))),
                         ir.Eval("x", ir.Arith("+", a, b)))),
    ('eval(x = "k")', (ir.Eval("x", ir.Lit("k")),)),
    # nested in expressions and tests
    ("x := length(lower(a)) + 1", (ir.Eval("x", ir.Arith("+", ir.Func("length", (ir.Func("lower", (a,)),)),
                                                      ir.Lit(1))),)),
    ("test(length(a) > 3)", (ir.Filter(ir.ExprTest(">", ir.Func("length", (a,)), ir.Lit(3))),)),
]


@pytest.mark.parametrize(("query", "steps"), LOWERING, ids=[q for q, _ in LOWERING])
def test_lowering(query: str, steps: tuple[ir.Step, ...]) -> None:
    assert parse(query).steps == steps


ERRORS = [
    ("format(field=a)", "format() needs a format string", 1),
    ('x := format("%s", field=a, as=y)', "inside an assignment", 28),
    ('formatTime("%H")', "formatTime() needs as=", 1),
    ('formatTime("%H", as=h, unit=minutes)', "unit=minutes is not accepted; accepted: auto, milliseconds, seconds", 29),
    ('replace("a", with="b", replacement="c")', "with= or replacement=", 36),
    ('replace("a", flags=g)', "flags=g is not accepted; accepted: d, i, m", 20),
    ('splitString(a, index=1)', "splitString() needs by=", 1),
    ('splitString(a, by=",", index=one)', "index must be a whole number", 30),
    ("round(a, how=half)", "how=half is not accepted; accepted: round, floor, ceil", 14),
    ('coalesce([], as=x)', "at least one expression", 10),
    ("coalesce([a], ignoreEmpty=maybe)", "ignoreEmpty=maybe is not a boolean", 27),
    ('base64Decode(a, charset="EBCDIC")', "accepted: UTF-8, ISO-8859-1, UTF-16BE, UTF-16LE", 25),
    ('default(field=a)', "default() needs field= and a value", 1),
    ("rename(a)", "rename() needs as=", 1),
    ("rename([[a, b, c]])", "each pair of rename() is [old, new]", 9),
    ("rename([[a, b]], as=c)", "as= with one field, not with pairs", 21),
    ("x := default(a, field=b)", "sets fields itself", 6),
    ("eval(a + 1)", "eval() takes assignments", 6),
    ("length()", "length() needs a field", 1),
    ("concatArray(server, from=3, to=1)", "0 <= from <= to", 1),
    ("format(\"%s\", bogus=1)", "format() has no parameter 'bogus'", 14),
    ('x := duration("5 fortnights")', "expected a time span such as 30s", 15),
    ("x := duration()", "duration() needs a time span", 6),
]


@pytest.mark.parametrize(("query", "words", "column"), ERRORS, ids=[q for q, _, _ in ERRORS])
def test_argument_errors(query: str, words: str, column: int) -> None:
    with pytest.raises(CqlValueError, match=re.escape(words)) as caught:
        parse(query)
    assert caught.value.span is not None and caught.value.span.column == column


# What cqlx reads but does not convert: an opaque stage that keeps every event and sets one field.
OPAQUE = [
    ('format("%e", field=a, as=x)', "x", "the conversion %e is not converted"),
    ('format("%1$s", field=a)', "_format", "argument indexes are not converted"),
    ('format("%tY", field=a)', "_format", "date/time conversions are not converted"),
    ('format("%,s", field=a)', "_format", "rejects the flag ','"),
    ('format("%s %s", field=a)', "_format", "2 conversions but 1 fields"),
    ('formatTime("%Q %q", as=t)', "t", "'%q' is not a formatTime() code cqlx converts"),
    ('formatTime("%H", as=t, timezone="Mars/Olympus")', "t", "time zone 'Mars/Olympus'"),
    ('formatTime("%Z", as=t, timezone="Europe/Paris")', "t", "%Z (the zone's abbreviation) is converted for UTC"),
    ('formatTime("%B", as=t, locale=de_DE)', "t", "in a locale are not converted"),
    ('replace("(a", with="b")', "@rawstring", "cannot compile the regex"),
    ('replace("a", with="$2", as=y)', "y", "refers to group 2, which the regex does not have"),
    ('replace("a", with="cost: $", as=y)', "y", "must be followed by a group number"),
    ('splitString(a, by=",")', ("_splitstring", "_splitstring[*]"), "without index= writes an array"),
    ('splitString(a, by=",", as=parts)', ("parts", "parts[*]"), "without index= writes an array"),
    ('parts := splitString(a, by=",")', ("parts", "parts[*]"), "without index= writes an array"),
    ("unit:convert(a, to=Z)", "a", "converts between the prefixes k, M, G, T, P, E"),
    ("unit:convert(a, from=ms, to=s)", "a", "unit:convert(from=ms)"),
    ('unit:convert(a, unit="B", to=k)', "a", "unit:convert(unit=...)"),
    ("unit:convert(a, to=k, keepUnit=true, as=b)", "b", "keepUnit=true"),
]


@pytest.mark.parametrize(("query", "writes", "reason"), OPAQUE, ids=[q for q, _, _ in OPAQUE])
def test_what_cqlx_keeps_opaque(query: str, writes: str | tuple[str, ...], reason: str) -> None:
    (step,) = parse(query).steps
    assert isinstance(step, ir.Opaque)
    assert step.effect == ir.ENRICHES and step.writes == (writes if isinstance(writes, tuple) else (writes,))
    assert reason in step.reason
    assert step.text == query  # canonical CQL writes it back as it was


def test_a_locale_without_names_changes_nothing() -> None:
    (step,) = parse('formatTime("%Y-%m-%d", as=t, locale=de_DE)').steps
    assert isinstance(step, ir.Eval) and isinstance(step.expr, ir.Func)


# ---------------------------------------------------------------- the reference semantics (cqlx.runtime)

FORMATS: list[tuple[str, tuple[Any, ...], str | None]] = [
    ("%s/%s", ("a", "b"), "a/b"),
    ("%s", (5,), "5"),
    ("%s", (2.5,), "2.5"),
    ("%s|%-4s|%4s|%.2s", ("ab", "ab", "ab", "abc"), "ab|ab  |  ab|ab"),
    ("%.1s", ("\U0001F600x",), ""),  # Java chars: a character beyond the BMP is two of them
    ("%d|%d|%d", ("42", "-7", "+007"), "42|-7|7"),
    ("%,d|%05d|%-5d|%+d|% d", ("1234567", "-42", "7", "3", "3"), "1,234,567|-0042|7    |+3| 3"),
    ("%x|%X|%o", ("255", "255", "8"), "ff|FF|10"),
    ("%x", ("-1",), "ffffffffffffffff"),  # two's complement, as Java writes a negative long
    ("%d", ("4.5",), None),
    ("%d", ("9223372036854775808",), None),  # beyond a Java long
    ("%d", ("",), None),
    ("%f", ("2.5",), "2.500000"),
    ("%.2f|%.2f|%.1f|%.2f", ("0.125", "2.675", "0.15", "1.005"), "0.13|2.68|0.2|1.01"),  # half up, as Java
    ("%,.2f|%08.1f|%+.0f", ("1234567.891", "-3.14159", "2.5"), "1,234,567.89|-00003.1|+3"),
    ("%.3f", ("1e3",), "1000.000"),
    ("%f", ("abc",), None),
    ("%s%%%n", ("x",), "x%\n"),
    ("no conversions", (), "no conversions"),
    ("%s", (None,), None),
]


@pytest.mark.parametrize(("pattern", "values", "expected"), FORMATS, ids=[f[0] for f in FORMATS])
def test_format_is_javas_formatter(pattern: str, values: tuple[Any, ...], expected: str | None) -> None:
    assert R.format_string(R.format_pieces(pattern), values) == expected


MS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z, a Tuesday, day 318
TIMES: list[tuple[str, Any, str, str, str | None]] = [
    ("%Y-%m-%d %H:%M:%S.%L", MS, "UTC", "auto", "2023-11-14 22:13:20.123"),
    ("%F %T|%D|%R|%r", MS, "UTC", "auto", "2023-11-14 22:13:20|11/14/23|22:13|10:13:20 PM"),
    ("%c", MS, "UTC", "auto", "Tue Nov 14 22:13:20 UTC 2023"),
    ("%e|%k|%l|%I|%p|%j|%C|%y", MS, "UTC", "auto", "14|22|10|10|pm|318|20|23"),
    ("%a %A %b %h %B", MS, "UTC", "auto", "Tue Tuesday Nov Nov November"),
    ("%s|%Q|%N|%z|%Z", MS, "UTC", "auto", "1700000000|1700000000123|123000000|+0000|UTC"),
    ("%H:%M %z", MS, "Europe/Berlin", "auto", "23:13 +0100"),
    ("%H:%M %z", 1_690_000_000_000, "Europe/Berlin", "auto", "06:26 +0200"),  # summer time
    ("%H:%M %z", MS, "-05:30", "auto", "16:43 -0530"),
    ("%F %T", 1_700_000_000, "UTC", "auto", "2023-11-14 22:13:20"),  # auto: up to 100,000,000,000 is seconds
    ("%F %T", "100000000000", "UTC", "auto", "5138-11-16 09:46:40"),
    ("%F %T", "100000000001", "UTC", "auto", "1973-03-03 09:46:40"),
    ("%F %T.%L", "1700000000.5", "UTC", "seconds", "2023-11-14 22:13:20.500"),
    ("%F %T", "1700000000", "UTC", "milliseconds", "1970-01-20 16:13:20"),
    ("%s", "-1500", "UTC", "milliseconds", "-2"),  # floor, as Java's floorDiv
    ("%Y", "abc", "UTC", "auto", None),
    ("%Y", None, "UTC", "auto", None),
    ("%Y", "9" * 18, "UTC", "milliseconds", None),  # beyond the year 9999
    ("100%% at %H", MS, "UTC", "auto", "100% at 22"),
]


@pytest.mark.parametrize(("pattern", "value", "zone", "unit", "expected"), TIMES, ids=[t[0] for t in TIMES])
def test_format_time_is_javas_date_conversions(pattern: str, value: Any, zone: str, unit: str,
                                               expected: str | None) -> None:
    assert R.format_time(R.time_pieces(pattern), value, zone, unit) == expected


REPLACES: list[tuple[str, int, str, Any, str | None]] = [
    (r"(\d+)\.\d+", 0, "$1", "v 12.34 and 5.6", "v 12 and 5"),
    ("x*", 0, "-", "xa", "--a-"),  # Java replaces the empty match after a match too
    ("(?<n>b)", 0, "[${n}]", "abc", "a[b]c"),
    ("b", 0, r"\$1\\", "abc", "a$1\\c"),
    ("(a)|(b)", 0, "<$2>", "ab", "<><b>"),  # a group that took no part is empty
    ("(a)", 0, "$10", "a", "a0"),  # $1 then 0: there is no group 10
    ("^x", 8, "y", "x\nx", "y\ny"),  # functions-replace: flags default to m
    ("^x", 0, "y", "x\nx", "y\nx"),
    ("a", 0, "b", None, None),
    ("5", 0, "6", 5, "6"),
]


@pytest.mark.parametrize(("pattern", "flags", "replacement", "value", "expected"), REPLACES,
                         ids=[r[0] + " " + r[2] for r in REPLACES])
def test_replace_is_javas_replace_all(pattern: str, flags: int, replacement: str, value: Any,
                                      expected: str | None) -> None:
    from cqlx.regexes import to_python

    regex = R.compile_regex(to_python(pattern), flags)
    compiled = re.compile(to_python(pattern))
    pieces = R.replacement_pieces(replacement, compiled.groups, dict(compiled.groupindex))
    assert R.replace_all(regex, value, pieces) == expected


SPLITS: list[tuple[str, str, list[str]]] = [
    (",", "a,b,c", ["a", "b", "c"]),
    (",", "a,,b,,", ["a", "", "b"]),  # trailing empty pieces are dropped
    (",", ",a", ["", "a"]),
    (",", ",,,", []),
    (",", "", [""]),
    (",", "abc", ["abc"]),
    ("", "abc", ["a", "b", "c"]),  # a zero-width match at the start makes no leading piece
    ("[<>;]", "<2007-01-01>test;bar", ["", "2007-01-01", "test", "bar"]),  # functions-splitstring's example
    (r"\\", "C:\\Windows\\cmd.exe", ["C:", "Windows", "cmd.exe"]),
]


@pytest.mark.parametrize(("pattern", "value", "pieces"), SPLITS, ids=[f"{s[0]!r} {s[1]!r}" for s in SPLITS])
def test_split_is_javas_string_split(pattern: str, value: str, pieces: list[str]) -> None:
    from cqlx.regexes import to_python

    assert R.java_split(R.compile_regex(to_python(pattern), 0), value) == pieces


def test_split_index_counts_from_the_end_when_negative() -> None:
    regex = R.compile_regex(",", 0)
    assert [R.split_index(regex, "a,b,c,,", i) for i in (0, 2, 3, -1, -3, -4)] == ["a", "c", None, "c", "a", None]
    assert R.split_index(regex, None, 0) is None


def test_other_functions() -> None:
    assert [R.length(v) for v in ("abc", "", "\U0001F600", "é", 12345, None)] == [3, 0, 2, 1, 5, None]
    assert R.concat("a", None, 5, "") == "a5" and R.concat(None, None) is None
    assert R.default_value(None, "-", False) == "-" and R.default_value("", "-", False) == ""
    assert R.default_value("", "-", True) == "-" and R.default_value("x", "-", True) == "x"
    assert R.coalesce(True, None, "", "b") == "b" and R.coalesce(False, None, "", "b") == ""
    assert R.coalesce(True, None, "") is None
    rounds = [R.round_number(v, "round") for v in ("2.5", "-2.5", "2.4999", "7", 3.0, "x", None, "0.49999999999999994")]
    assert rounds == [3, -2, 2, 7, 3, None, None, 0]
    assert [R.round_number("-2.5", how) for how in ("floor", "ceil")] == [-3, -2]
    assert R.base64_decode("aGVsbG8=", "UTF-8") == "hello"
    assert R.base64_decode("aGVs\nbG8", "UTF-8") == "hello"  # outside the alphabet: ignored; padding optional
    assert R.base64_decode("aGVsbG8", "UTF-8") == "hello"
    assert R.base64_decode("aGVsbG8==", "UTF-8") is None  # padding present but wrong
    assert R.base64_decode("a", "UTF-8") is None
    assert R.base64_decode("/w==", "UTF-8") == "\ufffd"  # not UTF-8
    assert R.base64_decode("/w==", "ISO-8859-1") == "\xff"
    assert R.base64_decode("dwBoAG8AYQBtAGkA", "UTF-16LE") == "whoami"
    assert R.url_decode("https%3A%2F%2Fwww.example.com") == "https://www.example.com"  # functions-urldecode
    assert R.url_decode("a+b%20c%E2%82%AC%ff") == "a b c€\ufffd"
    assert [R.url_decode(v) for v in ("%", "%2", "%zz", None)] == [None, None, None, None]
    # MD5 of the UTF-8 text (Kusto's hash_md5("World") example; RFC 1321's "abc"); a missing or
    # empty field is the empty text, so the hash of "" when all are (functions-crypto-md5)
    assert R.md5_hex("World") == "f5a7924e621e84c9280a9a27e1bcb7f6"
    assert R.md5_hex("a", None, "", "bc") == R.md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72"
    assert R.md5_hex(None) == R.md5_hex() == "d41d8cd98f00b204e9800998ecf8427e"
    assert R.md5_hex("é", 17) == R.md5_hex("é17") != R.md5_hex("e17")
    assert round(R.shannon_entropy("example.com") or 0, 6) == 3.095795  # functions-shannonentropy
    assert R.shannon_entropy("aaaa") == 0 and R.shannon_entropy("") is None
    record = {"s[0]": "a", "s[1]": "b", "s[3]": "d"}
    assert R.concat_array(record, "s", 0, -1, "[", ",", "]") == "[a,b]"  # stops at the first gap
    assert R.concat_array(record, "s", 1, 1, "", "", "") == "b"
    assert R.concat_array(record, "s", 2, -1, "", "", "") is None


def test_the_matcher_runs_them() -> None:
    matcher = compile_matcher(P + 'x := format("%s-%05.1f", field=[a, b]) | formatTime("%F", as=d) '
                                  '| y := splitString(c, by="/", index=-1) | rename(field=a, as=z) '
                                  '| default(field=w, value="none") | select([x, d, y, z, a, w])')
    event = {"#event_simpleName": "ProcessRollup2", "a": "k", "b": "2.25", "c": "/usr/bin/", "@timestamp": MS}
    assert matcher.match(event) == {"x": "k-002.3", "d": "2023-11-14", "y": "bin", "z": "k", "w": "none"}


# ---------------------------------------------------------------- emitters

def _out(query: str, target: str) -> tuple[str, list[tuple[str, str]]]:
    conversion = convert_query(parse(P + query), target, query_text=P + query)
    return conversion.output, [(d.kind, d.message) for d in conversion.diagnostics]


# (query, what the KQL holds): each query's KQL also passes Kusto.Language (test_funcs_agreement.py).
KQL = [
    ('x := format("%s=%d", field=[CommandLine, RawProcessId])',
     'iff(isnotempty(ProcessCommandLine) and tostring(ProcessId) matches regex @"^[+-]?[0-9]+$" and '
     'isnotnull(tolong(tostring(ProcessId))), strcat(ProcessCommandLine, "=", tostring(tolong(tostring(ProcessId)))),'
     ' "")'),
    ('formatTime("%Y-%m-%d %H:%M", as=t)',
     'iff(isnotnull(Timestamp), strcat(format_datetime(Timestamp, "yyyy"), "-", format_datetime(Timestamp, "MM"), '
     '"-", format_datetime(Timestamp, "dd"), " ", format_datetime(Timestamp, "HH"), ":", '
     'format_datetime(Timestamp, "mm")), "")'),
    ('formatTime("%k %p", as=t, timezone="Europe/Oslo")', 'format_datetime(datetime_utc_to_local(Timestamp, '
                                                          '"Europe/Oslo"), "H")'),
    ('formatTime("%s", as=t, field=SHA256HashData, unit=seconds)', "datetime_diff('second', (datetime(1970-01-01) + "),
    ("l := length(CommandLine)", 'iff(isnotempty(ProcessCommandLine), strlen(ProcessCommandLine) + '
                                 'countof(ProcessCommandLine, @"[\\x{10000}-\\x{10FFFF}]", "regex"), long(null))'),
    ("c := concat([CommandLine, RawProcessId])", "strcat(ProcessCommandLine, tostring(ProcessId))"),
    ('c := replace("(\\\\w+)\\\\.exe", with="$1!", field=CommandLine, flags=i)',
     'replace_regex(ProcessCommandLine, @"(?i)(\\w+)\\.exe", @"\\1!")'),
    ('b := splitString(ImageFileName, by="\\\\\\\\", index=1)',
     'tostring(split(trim_end(@"(?:\\\\)+", FolderPath), @"\\")[1])'),
    ("r := round(RawProcessId)", "tolong(iff(ProcessId - floor(ProcessId, 1) >= 0.5, floor(ProcessId, 1) + 1, "
                                 "floor(ProcessId, 1)))"),
    ("n := now()", "tolong((now() - datetime(1970-01-01)) / 1ms)"),
    ('u := coalesce([CommandLine, RawProcessId, "-"])', 'coalesce(ProcessCommandLine, tostring(ProcessId), "-")'),
    ('default(field=CommandLine, value="none")', 'extend CommandLine = iff(isnotempty(ProcessCommandLine), '
                                                 'ProcessCommandLine, "none")'),
    ("rename(field=CommandLine, as=Cmd)", "extend Cmd = ProcessCommandLine\n| project-away ProcessCommandLine"),
    ("d := base64Decode(CommandLine)", "base64_decode_tostring(ProcessCommandLine)"),
    ("e := urlDecode(CommandLine)", 'url_decode(replace_string(ProcessCommandLine, "+", " "))'),
    ("k := unit:convert(RawProcessId, to=k)", "extend k = (todouble(ProcessId) / 1000)"),
    ("m := unit:convert(RawProcessId, from=k, to=M, binary=true)", "extend m = (todouble(ProcessId) / 1024)"),
    ("g := unit:convert(RawProcessId, from=G)", "extend g = (ProcessId * 1000000000)"),
]


@pytest.mark.parametrize(("query", "expected"), KQL, ids=[q for q, _ in KQL])
def test_kql(query: str, expected: str) -> None:
    output, _ = _out(query, "kql")
    assert expected in output


SPL = [
    ('x := format("%s=%,d %.2f", field=[CommandLine, RawProcessId, SHA256HashData])',
     'printf("%s=%\'d %.2f", tostring(CommandLine), tonumber(tostring(RawProcessId)), '
     'tonumber(tostring(SHA256HashData)))'),
    ('formatTime("%Y-%m-%d %k", as=t)', 'strftime(floor(round(_time*1000)/1000), "%Y-%m-%d ") . '
                                        'tostring(tonumber(strftime(floor(round(_time*1000)/1000), "%H")))'),
    ("l := length(CommandLine)", '(2*len(tostring(CommandLine)) - len(replace(tostring(CommandLine), '
                                 '"[\\\\x{10000}-\\\\x{10FFFF}]", "")))'),
    ("c := concat([CommandLine, RawProcessId])", 'if(isnull(tostring(CommandLine)) AND isnull(tostring(RawProcessId)),'
                                                 ' null(), coalesce(tostring(CommandLine), "") . '
                                                 'coalesce(tostring(RawProcessId), ""))'),
    ('c := replace("(\\\\w+)\\\\.exe", with="$1!", field=CommandLine, flags=i)',
     'replace(tostring(CommandLine), "(?i)(\\\\w+)\\\\.exe", "\\\\1!")'),
    ('b := splitString(ImageFileName, by="/", index=-1)',
     'mvindex(split(replace(tostring(ImageFileName), "(?:/)+$", ""), "/"), -1)'),
    ("r := round(RawProcessId, how=floor)", "floor(tonumber(tostring(RawProcessId)))"),
    ("n := now()", "floor(time()*1000)"),
    ('u := coalesce([CommandLine, "-"])', 'coalesce(if(CommandLine=="", null(), CommandLine), "-")'),
    ('default(field=CommandLine, value="none", replaceEmpty=true)',
     'eval CommandLine=coalesce(if(isnull(CommandLine) OR CommandLine=="", "none", CommandLine), CommandLine)'),
    ("rename(field=CommandLine, as=Cmd)", "eval Cmd=coalesce(CommandLine, Cmd)\n| fields - CommandLine"),
    ("e := urlDecode(CommandLine)", 'urldecode(replace(tostring(CommandLine), "\\\\+", " "))'),
    ("eval(x = RawProcessId * 2)", "where isnotnull(RawProcessId)\n| eval x=coalesce((tonumber(RawProcessId)*2), x)"),
    ("k := unit:convert(RawProcessId, to=k)", "eval k=coalesce((tonumber(RawProcessId)/1000), k)"),
    ("unit:convert(RawProcessId, from=T, to=M, binary=true)",
     "eval RawProcessId=coalesce((tonumber(RawProcessId)*1048576), RawProcessId)"),
]


@pytest.mark.parametrize(("query", "expected"), SPL, ids=[q for q, _ in SPL])
def test_spl(query: str, expected: str) -> None:
    output, _ = _out(query, "spl")
    assert expected in output


# Canonical CQL: LogScale's own spelling, defaults left out; it reads back as the same IR (the round
# trip over every query of this module is tests/test_emit_cql.py's corpus).
CQL = [
    ('format(field=[a, b], format="%s/%s", as=x)', 'x := format("%s/%s", field=[a, b])'),
    ('format("%s", field="host name")', 'format("%s", field="host name")'),
    ('formatTime(format="%H", field=@timestamp, timezone=UTC, unit=auto, as=h)', 'h := formatTime("%H")'),
    ('formatTime("%H", field=t, timezone="Europe/Oslo", unit=seconds, as=h)',
     'h := formatTime("%H", field=t, timezone="Europe/Oslo", unit=seconds)'),
    ('replace(regex="a", replacement="b", field=@rawstring, flags=m)', 'replace("a", with="b")'),
    ('replace("a", field=c, as=d, flags="i")', 'd := replace("a", field=c, flags="i")'),
    ('splitString(field=a, by=",", index=-1, as=last)', 'last := splitString(a, by=",", index=-1)'),
    ("round(a, how=round)", "round(a)"),
    ("round(field=a, how=floor, as=b)", "b := round(a, how=floor)"),
    ("now(as=t)", "t := now()"),
    ('coalesce(expressions=[a, "x"], ignoreEmpty=true)', 'coalesce([a, "x"])'),
    ('default(field=[a, b], value=0)', 'default(field=a, value="0")\n| default(field=b, value="0")'),
    ("rename(field=[[a, b], [c, d]])", "rename(field=[[a, b], [c, d]])"),
    ("b := rename(a)", "rename(field=a, as=b)"),
    ("b := a | drop([a])", "b := a\n| drop([a])"),  # two stages, not one rename()
    ("eval(x = a * 2)", "a=*\n| x := a * 2"),
    ('concatArray(field=s, from=0, separator=",")', 'concatArray(s, separator=",")'),
    ('x := base64Decode(y, charset="UTF-8")', "x := base64Decode(y)"),
    ("unit:convert(field=Size, from=\"\", to=k, binary=false)", 'unit:convert(Size, to="k")'),
    ("unit:convert(Size, to=M, binary=true, as=m)", 'm := unit:convert(Size, to="M", binary=true)'),
]


@pytest.mark.parametrize(("query", "expected"), CQL, ids=[q for q, _ in CQL])
def test_canonical_cql(query: str, expected: str) -> None:
    conversion = convert_query(parse(query), "cql")
    assert conversion.output == expected + "\n"
    assert conversion.diagnostics == ()
    assert same_ir(parse(conversion.output), parse(query))


def test_explain_names_the_arguments() -> None:
    text = explain(parse(P + 'x := format("%s/%s", field=[a, b]) | rename(field=c, as=d) | round(r, how=ceil)'))
    assert 'Assign: x := format(format="%s/%s", field=[a, b])' in text
    assert "Assign: d := c" in text and "Drop fields: c" in text
    assert 'Assign: r := round(field=r, how="ceil")' in text


# ---------------------------------------------------------------- what each target loses

# (query, target, the loss's kind, words of its message): presentation when the field is only shown,
# detection when a later step decides rows on it.
LOSSES = [
    ('x := format("%.2f", field=RawProcessId) | select([x])', "kql", PRESENTATION, "KQL has no printf"),
    ('x := format("%.2f", field=RawProcessId) | x = "1.00"', "kql", DETECTION, "KQL has no printf"),
    ('x := format("%.2f", field=RawProcessId) | select([x])', "spl", PRESENTATION, "rounds %f from the binary"),
    ('x := format("%x", field=RawProcessId) | select([x])', "spl", PRESENTATION, "two's complement"),
    ('formatTime("%H", as=h) | select([h])', "spl", PRESENTATION, "searching user's time zone"),
    ('formatTime("%H", as=h) | h = "03"', "spl", DETECTION, "searching user's time zone"),
    ('formatTime("%z", as=h, timezone="Europe/Oslo") | select([h])', "kql", PRESENTATION, "%z in Europe/Oslo"),
    ('x := replace("a*", with="-", field=CommandLine) | select([x])', "kql", PRESENTATION, "empty string"),
    ('x := splitString(ImageFileName, by="[/\\\\\\\\]", index=-1) | x = "cmd.exe"', "kql", DETECTION,
     "not the regex"),
    ('x := splitString(ImageFileName, by="[/\\\\\\\\]", index=-1) | select([x])', "spl", PRESENTATION,
     "not the regex"),
    ("x := base64Decode(CommandLine) | select([x])", "spl", PRESENTATION, "base64Decode() has no SPL"),
    ("x := base64Decode(CommandLine) | x = *whoami*", "spl", DETECTION, "base64Decode() has no SPL"),
    ("x := base64Decode(CommandLine) | x = *whoami*", "kql", DETECTION, "base64_decode_tostring()"),
    ('x := base64Decode(CommandLine, charset="UTF-16LE") | select([x])', "kql", PRESENTATION, "UTF-8 text only"),
    ("e := shannonEntropy(CommandLine) | e > 3.5", "kql", DETECTION, "shannonEntropy() has no KQL"),
    ("e := shannonEntropy(CommandLine) | e > 3.5", "spl", DETECTION, "shannonEntropy() has no SPL"),
    ("test(shannonEntropy(CommandLine) > 3.5)", "spl", DETECTION, "shannonEntropy() has no SPL"),
    ("x := concatArray(parts) | select([x])", "kql", PRESENTATION, "concatArray() has no KQL"),
    ("x := urlDecode(CommandLine) | select([x])", "spl", PRESENTATION, "urldecode() writes is not documented"),
    ("e := shannonEntropy(CommandLine) | e > 3.5", "sigma", DETECTION, "has no Sigma form"),
    ("x := length(CommandLine) | select([x])", "sigma", PRESENTATION, "computes x"),
    ("rename(field=CommandLine, as=Cmd) | CommandLine = *x*", "sigma", DETECTION, "drop() removed"),
    # unit:convert() of a value written with its unit ("4KiB") gives nothing on every target:
    # presentation when only shown, detection when a filter reads it; a number column holds no unit
    ("k := unit:convert(RawProcessId, to=k) | select(k)", "python", PRESENTATION, "written with its own unit"),
    ("k := unit:convert(RawProcessId, to=k) | k > 2", "python", DETECTION, "written with its own unit"),
    ("k := unit:convert(RawProcessId, to=k) | k > 2", "spl", DETECTION, "written with its own unit"),
    ("k := unit:convert(SHA256HashData, to=k) | k > 2", "kql", DETECTION, "written with its own unit"),
    # in a case branch alike: what decides after the case, or later in the branch
    *[(f"case {{ CommandLine = *a* | k := unit:convert(SHA256HashData, to=k){rest}", target, kind,
       "written with its own unit") for target in ("python", "spl", "kql")
      for rest, kind in ((" ; * } | select([k])", PRESENTATION), (" ; * } | k > 2", DETECTION),
                         (" | k > 2 } | select([k])", DETECTION))],
]


@pytest.mark.parametrize(("query", "target", "kind", "words"), LOSSES, ids=[f"{t} {q}" for q, t, _, _ in LOSSES])
def test_losses_are_reported_with_their_kind(query: str, target: str, kind: str, words: str) -> None:
    _, diagnostics = _out(query, target)
    assert any(k == kind and words in m for k, m in diagnostics), diagnostics


def test_a_unit_conversion_of_a_number_column_loses_nothing_in_kql() -> None:
    _, diagnostics = _out("k := unit:convert(RawProcessId, to=k) | k > 2", "kql")
    assert diagnostics == []


@pytest.mark.parametrize("query", [q for q, _ in KQL + SPL if "unit:convert" not in q])  # (LOSSES)
def test_the_python_matcher_loses_nothing(query: str) -> None:
    _, diagnostics = _out(query, "python")
    assert diagnostics == []


# ---------------------------------------------------------------- generated calls: every invariant of the fuzz tests

_FIELDS = ("CommandLine", "RawProcessId", "@timestamp", '"host name"', "ImageFileName", "a")
_OPTIONS: dict[str, tuple[str, ...]] = {
    "format": ('"%s"', '"%d"', '"%s/%s"', '"%,.2f"', '"%05d"', '"%x"', '"%-5s|"', '"%e"', '"%%%n"', '"%"', '"%1$s"',
               '"%tY"', '"%.3s"', '"text"', '""', '"%+ d"', '"%0-5d"', '"%.0f"'),
    "time": ('"%Y-%m-%d %H:%M:%S.%L"', '"%c"', '"%r %p %Z %z"', '"%q"', '"%s %Q %N"', '"%e %k %l %j %C"', '""',
             '"%%"', '"%"'),
    "regex": ('"a+"', '"(\\\\w+)"', '"x*"', '"("', '"^p"', '"\\\\s+"', '"(?<n>a)"', '"["', '"\\\\\\\\"', '"é"'),
    "with": ('""', '"$1"', '"${n}"', '"\\\\$"', '"$"', '"x\\\\\\\\y"', '"$10"', '"\\\\"'),
    "by": ('","', '"\\\\\\\\"', '"[;,]"', '""', '"."', '"/"', '" "'),
    "index": ("0", "1", "-1", "-3", "x", "99"),
    "how": ("round", "floor", "ceil", "bad"),
    "timezone": ("UTC", '"Europe/Berlin"', '"+02:00"', '"Nowhere/Else"', '"GMT"'),
    "unit": ("auto", "seconds", "milliseconds", "years"),
    "charset": ('"UTF-8"', '"UTF-16LE"', '"ISO-8859-1"', '"EBCDIC"'),
    "prefix": ('""', "k", "M", '"G"', "E", "Z", "ms", "KiB", "m"),
    "binary": ("true", "false", "maybe"),
}


@st.composite
def value_calls(draw: Any) -> str:
    """A stage that calls a value function with options drawn from valid and invalid ones, then a step
    that shows or tests what it wrote."""
    def pick(name: str) -> str:
        return draw(st.sampled_from(_OPTIONS[name]))

    field = draw(st.sampled_from(_FIELDS))
    fields = ", ".join(draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3)))
    calls = (
        f"x := format({pick('format')}, field=[{fields}])",
        f"formatTime({pick('time')}, as=x, field={field}, timezone={pick('timezone')}, unit={pick('unit')})",
        f"x := replace({pick('regex')}, with={pick('with')}, field={field})",
        f"x := splitString({field}, by={pick('by')}, index={pick('index')})",
        f"x := round({field}, how={pick('how')})",
        f"x := concat([{fields}])",
        f"x := length({field})",
        f"x := coalesce([{fields}, \"-\"])",
        f"default(field=[{fields}], value=\"-\")",
        f"rename(field={field}, as=x)",
        f"x := base64Decode({field}, charset={pick('charset')})",
        f"x := urlDecode({field}) | y := shannonEntropy(x)",
        f"eval(x = {field} + 1)",
        "x := now()",
        f"x := unit:convert({field}, from={pick('prefix')}, to={pick('prefix')}, binary={pick('binary')})",
    )
    after = draw(st.sampled_from(("| select([x])", "| x = *", "| x != *a*", "| test(length(x) > 2)", "")))
    return f"{P}{draw(st.sampled_from(calls))} {after}"


@settings(max_examples=200, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(value_calls(), fuzz_events())
def test_generated_value_calls_convert_or_raise_cql_error(text: str, evs: list[dict[str, Any]]) -> None:
    outcome = check_text(text, [*FIXED_EVENTS, *evs, {"#event_simpleName": "ProcessRollup2", "@timestamp": MS,
                                                      "CommandLine": "aGVsbG8= %41+x", "RawProcessId": "-7"}])
    assert not outcome.unexpected(), describe(outcome.unexpected())
    if outcome.kql:
        for kql in outcome.kql:
            check_kql(kql)


def test_a_non_finite_number_in_an_event_is_no_number() -> None:
    """Hypothesis finding: Python's JSON reader makes NaN and infinities (JSON has none); round()
    of one raised. They are no number, as the text "NaN" is."""
    from cqlx import compile_matcher

    matcher = compile_matcher("x := round(RawProcessId, how=round) | select([x])")
    for value in (float("nan"), float("inf"), float("-inf")):
        assert matcher.match({"RawProcessId": value}) == {}

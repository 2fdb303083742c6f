"""Hostile input: generated and mutated CQL must never crash cqlx, nor smuggle text into code.

Invariants, for any text:

* ``cqlx.parse(text)`` returns or raises a :class:`cqlx.CqlError` subclass (never another
  exception, never ``RecursionError``), and the error renders (``str(error)``);
* every conversion (spl, kql, sigma, python; under ``--on-lossy error`` and ``warn``) returns a
  string or raises ``CqlError``;
* a conversion that succeeds under the default policy is valid in its target: the Python module
  compiles, imports and names no ``eval``/``exec``/``__import__``/``os``; the Sigma YAML loads in
  pySigma with parseable conditions; the KQL has no error in Microsoft's Kusto.Language (one Node
  run per test); the SPL passes a lexical check (quotes close, no stray ``|``, backtick or ``[``);
  what ``--on-lossy warn`` writes with detection loss is checked the same (a field the profile
  does not map is ``column_ifexists()`` in KQL);
* the CQL (``--to cql``) is written for every query that parses, and parses back to the same IR;
* ``compile_matcher(text)`` returns a matcher (or raises ``CqlError``) whose ``match()`` and
  ``run()`` never raise on hostile events, and ``cqlx run``'s literal prefilter never skips an
  event line the matcher matches; ``cqlx explain`` renders;
* hostile values keep their meaning: read back from the Sigma YAML, and as a KQL equality run on
  duckdb-kql;
* ``python -m cqlx convert FILE --to kql`` never prints a traceback or reports an internal error.

The generator below builds syntactically plausible CQL from every construct of grammar/cql.lark,
with hostile literals; the mutator deletes, duplicates and inserts characters and tokens of real
queries. Both are written against a tiny :class:`Chooser` interface, so the same code drives
Hypothesis here (shrinking to a minimal case) and the long-running ``fuzz/fuzz_cql.py``. The
property tests draw the same examples on every run; ``CQLX_FUZZ_RANDOM=1`` draws new ones.

Bugs already found are listed in :data:`KNOWN_BUGS`: the property tests tolerate exactly those
(matched by target, exception type and message), and each has a minimal example in
:data:`KNOWN_CASES` (or an xfail test of its own) marked ``xfail(strict=True)``, which starts
failing (XPASS) once the fix lands, so the entry can be removed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cqlx
from cqlx import ir
from cqlx.errors import CqlError
from cqlx.testing import lookup_schema

T = TypeVar("T")

# re warns (FutureWarning) about patterns such as [[:alpha:]] that the generator writes on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

ROOT = Path(__file__).resolve().parent.parent
SEED_CARD = ROOT / "samples" / "rules" / "container_cli_api.yml"
TARGETS = ("spl", "kql", "sigma", "python", "cql")
LOSSY_CHECKED = ("spl", "kql", "sigma", "python")  # written under --on-lossy warn: still valid in the target
PREFIX = "#event_simpleName=ProcessRollup2 | "


# ================================================================ choices


class Chooser(Protocol):
    """Where the generator's decisions come from: Hypothesis, ``random.Random`` or atheris."""

    def integer(self, low: int, high: int) -> int:
        """A whole number from ``low`` to ``high`` inclusive (low is the "simplest")."""
        ...

    def text(self, max_size: int) -> str:
        """Arbitrary Unicode text (no lone surrogates) of at most ``max_size`` characters."""
        ...


def pick(c: Chooser, items: Sequence[T]) -> T:
    return items[c.integer(0, len(items) - 1)]


def chance(c: Chooser, percent: int) -> bool:
    return c.integer(0, 99) < percent


class HypothesisChooser:
    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        value: int = self.draw(st.integers(low, high))
        return value

    def text(self, max_size: int) -> str:
        value: str = self.draw(st.text(max_size=max_size))
        return value


class RandomChooser:
    """For plain loops: ``random.Random`` with a bias towards odd characters."""

    _RANGES = ((0x20, 0x7E), (0x20, 0x7E), (0x00, 0x1F), (0x80, 0x24F), (0x370, 0x3FF), (0x600, 0x6FF),
               (0x2000, 0x206F), (0x3040, 0x30FF), (0xFE00, 0xFFFF), (0x1F300, 0x1F6FF), (0xE0000, 0xE007F))

    def __init__(self, rng: Any) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        value: int = self.rng.randint(low, high)
        return value

    def text(self, max_size: int) -> str:
        size = self.rng.randint(0, max_size)
        out = []
        for _ in range(size):
            low, high = self.rng.choice(self._RANGES)
            out.append(chr(self.rng.randint(low, high)))
        return "".join(out)


# ================================================================ generation

HOSTILE: tuple[str, ...] = (
    "x", "", " ", '"', "\\", '\\"', "'", "`", "$", "${x}", "$(id)", "|", "| delete", ";", "; drop table x",
    "\n", "\r\n", "\t", "\x00", "\x01", "\x1b[31m", "\x7f", "\u2028", "\u0085", "é", "ß", "İ", "\ufeff",
    "😀", "\u202e", '") or true or ("', "' or '1'='1", "__import__('os')", "__import__('os').system('id')",
    "{{7*7}}", "%s%n", "*", "**", "?", "\\*", "a*b", "*.exe", "C:\\Windows\\*", "C:\\", "/", "\\/", "//",
    "/*", "*/", "#", "@", ":=", "=~", "(?i)", "[", "]", "{", "}", "()", "<script>", "&&", "||", "\\n",
    "\\\\", "-- ", "```", '@"', "''", '""', "\\x00", "1e999", "nan", "inf", "-0", "9" * 30, "\u00b2", "\u0661\u0662",
    "true", "null", "None", "\\u0000", "a\\", "end\\", "%", "!", "\u00a0", "ǅ", "ﬀ", "\U000e0041", "a\n", "ab\r\n",
)

FIELDS: tuple[str, ...] = (
    "CommandLine", "ImageFileName", "ParentBaseFileName", "UserName", "ComputerName", "RawProcessId",
    "SHA256HashData", "MD5HashData", "aid", "timestamp", "@timestamp", "#event_simpleName", "event_platform",
    "#event_platform", "TargetProcessId", "FileName", "@rawstring", "a.b[0]", "a.b", "#repo", "text:contains",
    "case", "where", "by", "project", "in", "if", "true", "__import__", "x", "y", "Severity", "_if", "_lower",
    "SuspicionScore", "ProcessCommandLine", "sort", "select", "table", "test", "lower", "iff", "let",
)
#: Fields the mde, splunk and sigma profiles map: conversions of tests on them can succeed.
MAPPED_FIELDS: tuple[str, ...] = ("CommandLine", "ImageFileName", "ParentBaseFileName", "ComputerName",
                                  "RawProcessId", "SHA256HashData", "MD5HashData", "aid", "UserName")

EVENT_TYPES: tuple[str, ...] = ("ProcessRollup2", "SyntheticProcessRollup2", "DnsRequest", "ProcessRollup*",
                                "processrollup2", "")

REGEX_PARTS: tuple[str, ...] = (
    "a", "abc", ".", ".*", "\\d+", "\\w", "\\s", "[a-z]", "[^/]", "(docker|kubectl)", "^", "$", "\\/",
    "(?i)", "(?=x)", "(?!x)", "(?<=x)", "(?<!x)", "(?<n>a)", "\\k<n>", "\\1", "(a)\\1", "(?>a)", "a++",
    "a*?", "\\Z", "\\z", "\\A", "\\p{L}", "\\P{Lu}", "\\h", "\\v", "\\R", "\\X", "\\G", "x{2,3}",
    "a{99999}", "a{2,1}", "(", ")", "[", "]", "*", "+", "?", "\\", "|", "\\Q.\\E", "[[:alpha:]]", "\\x41",
    "\\u0041", "\\x{41}", "\\0", "\\cA", "(?P<x>a)", "(?P=x)", "(?#c)", "(?s:a)", "(?-i)", "[\\d-z]",
    "\\b", "\\B", "\\N", "\\e", "\\'", '"', "\\\"", "é", "(?u)", "[\\w&&[^a]]", "\\8", "()", "(|)",
    "(?:)", "{", "}", "{,3}", "[]a]", "[^]", "\\-",
)

REGEX_FLAGS: tuple[str, ...] = ("", "i", "m", "d", "g", "F", "im", "id", "imdgF", "ii")
WILD_REGEX_FLAGS: tuple[str, ...] = ("x", "I", "s", "u")

NUMBERS: tuple[str, ...] = ("1", "0", "3", "6", "2.5", "1.0", "200", "20000", "20001", "99999999999999999999",
                            "0.000001", "007", "\u0661", "\u0663", "1" * 400, "4.2", "1" * 5000,
                            "10000000000000000", "100000000000000000000", "1000.0")
WILD_NUMBERS: tuple[str, ...] = ("\u00b2", "1e5", "0x10", "-1", ".5")

GLOB_VALUES: tuple[str, ...] = ("*", "**", "a*", "*a", "*a*", "a*b*c", "\\*", "*\\")

UNKNOWN_FUNCTIONS: tuple[str, ...] = ("groupBy", "count", "regex", "foo", "wildcard", "text:contains", "eval")


def cql_string(value: str) -> str:
    """A CQL "..." literal whose value is ``value``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_BARE_BAD = re.compile(r'[\s|()=!<>,"\[\]{};]')


# Stages as real content writes them: {f} a field, {s} a string, {r} a regex, {n} a number, {a} an
# array, {v} any value, {e} an expression, {match} the arms of a match statement.
REAL_STAGES = (
    "{f} match { {match} }", "$saved_search({f}={s})", '$"pkg/name:fn"()', "{f} = ?param", "{f} = ?{p={s}}",
    "x := ?{p=3} + {e}", "drop([{f}, {f}])", "bucket(span=5m, function=count())", "timeChart(span=1h)",
    "format({s}, field=[{f}, {f}], as={f})", "{f} := format({s}, field={f})", "formatTime({s}, field={f}, as={f})",
    "rename(field={f}, as={f})", "rename(field=[[{f}, {f}]])", "default(field={f}, value={s})",
    "replace({s}, with={s}, field={f}, as={f})", "concat([{f}, {f}], as={f})", "length({f}, as={f})",
    "splitString({f}, by={s}, index={n}, as={f})", "{f} := coalesce([{f}, {f}])", "round({f})",
    "{f} := now() - {f}", "base64Decode({f}, as={f})", "regex({r}, field={f})", "regex({s}, field={f}, strict=false)",
    'regex("(?<each>{f}.)", field={f}, repeat=true, limit={n})',
    'case { {f}={s} | regex("(?<each>[a-z]+)", repeat=true) ; * }',
    "{f} = /(?<grp>{f}).*/i | grp = {v}", "wildcard(field={f}, pattern={s}, ignoreCase=true)",
    "cidr({f}, subnet=[{s}, {s}])", "!cidr({f}, subnet={s})", "text:contains(string={f}, substring={s})",
    "groupBy([{f}], function=[count(), collect([{f}]), selectLast({f})])", "top({f}, limit={n})",
    "groupBy({f}, function=[count({f}, distinct=true, as=n), max({f})]) | n > {n}", "selectFromMax(field={f})",
    "stats([count(), sum({f})])", "head({n})", "tail(limit={n})", "ipLocation({f})", "ioc:lookup(field=[{f}])",
    "match(file={s}, field={f}, column={f})", "join({{f}={v}}, field={f}, key={f})", "readFile({s})",
    "kvParse(field={f})", "selfJoinFilter(field={f}, where=[{{f}={v}}])", "frobnicate({f})",
    "groupBy([{f}]) | [sum(_count, as={f}), max(_count), sort({f}, order=asc, limit={n})]",
    "[count(), sort({f})]", "setField(target={s}, value={f} + {n})", "setField(target={f}, value={s})",
    "lowercase({f})", "lowercase([{f}, {f}], include=both)", "lower({f}, locale=tr_TR, as={f})",
    'array:regex("{f}[]", regex={s}, flags=i)', '!array:contains("{f}[]", value={s})',
    "crypto:md5([{f}, {f}], as={f})", "{f} := crypto:md5({f}) | {f} = {s}", "hash([{f}], as={f})",
)


class CqlGenerator:
    """Random CQL from the constructs of grammar/cql.lark.

    ``max_depth`` bounds nesting; ``wild`` is the percentage of choices that are wrong on purpose
    (an unknown function, a bad flag, a comparison where a value belongs): with 0 nearly every
    query is valid CQL, so the emitters see it; with more, the error paths do."""

    def __init__(self, c: Chooser, max_depth: int = 3, wild: int = 8) -> None:
        self.c = c
        self.max_depth = max_depth
        self.wildness = wild

    def wild(self) -> bool:
        return chance(self.c, self.wildness)

    def choose(self, sane: Sequence[T], wild: Sequence[T]) -> T:
        return pick(self.c, wild) if wild and self.wild() else pick(self.c, sane)

    # ------------------------------------------------------------ literals

    def hostile(self) -> str:
        c = self.c
        roll = c.integer(0, 9)
        if roll < 6:
            return pick(c, HOSTILE)
        if roll < 8:
            return pick(c, HOSTILE) + c.text(6) + pick(c, HOSTILE)
        return c.text(12)

    def string(self) -> str:
        value = self.hostile()
        if chance(self.c, 10):  # raw: backslashes as written, only quotes escaped
            return '"' + value.replace('"', '\\"').rstrip("\\") + '"'
        return cql_string(value)

    def bare(self) -> str:
        text = _BARE_BAD.sub("", self.hostile())
        if not text or text[0] == "/":
            text = pick(self.c, ("x", "cmd*", "*", "*.exe", "C:\\Windows\\*", "a\\b", "é", "ok$", "`id`"))
        return text

    def regex(self) -> str:
        c = self.c
        parts = [pick(c, REGEX_PARTS) for _ in range(c.integer(1, 4))]
        if chance(c, 15):
            parts.append(re.escape(self.hostile()))
        pattern = "".join(parts).replace("\n", "\\n").replace("\r", "\\r")
        # LogScale's \/ escape: every / that is not already escaped gets one.
        pattern = re.sub(r"(?<!\\)/", r"\\/", pattern)
        if len(pattern) - len(pattern.rstrip("\\")) % 2 == 1:
            pattern += "\\"
        return f"/{pattern}/{self.choose(REGEX_FLAGS, WILD_REGEX_FLAGS)}"

    def number(self) -> str:
        return self.choose(NUMBERS, WILD_NUMBERS)

    def field(self) -> str:
        if chance(self.c, 10):
            return cql_string(self.hostile())
        return self.name()

    def name(self) -> str:
        """A field name as a bare NAME (for expressions and arrays)."""
        return pick(self.c, MAPPED_FIELDS) if chance(self.c, 50) else pick(self.c, FIELDS)

    def value(self) -> str:
        roll = self.c.integer(0, 9)
        if roll < 3:
            return self.bare()
        if roll < 6:
            return self.string()
        if roll < 8:
            return self.regex()
        if roll < 9:
            return self.number()
        return pick(self.c, GLOB_VALUES)

    def array_item(self) -> str:
        roll = self.c.integer(0, 6)
        if roll < 2:
            return self.string()
        if roll < 4:
            return self.name()
        if roll < 5:
            return pick(self.c, ("*.exe", "cmd*", "*", "*a*b*", "C:\\*"))
        if roll < 6:
            return self.number()
        return self.regex() if self.wild() else self.string()

    def array(self, items: Callable[[], str] | None = None) -> str:
        make = items or self.array_item
        return "[" + ", ".join(make() for _ in range(self.c.integer(0, 4))) + "]"

    # ------------------------------------------------------------ filters

    def filter(self, depth: int = 0) -> str:
        c = self.c
        if depth >= self.max_depth:
            return self.atom(depth)
        if depth == 0 and self.wild() and chance(c, 4):  # a long flat chain: depth without brackets
            unit, glue = pick(c, (("CommandLine=x", " or "), ("CommandLine=x", " "), ("", "!"), ("", "not ")))
            count = c.integer(100, 1200)
            return glue.join([unit or self.atom(depth)] * count) if unit else glue * count + self.atom(depth)
        roll = c.integer(0, 11)
        if roll < 5:
            return self.atom(depth)
        if roll == 5:
            return f"{self.filter(depth + 1)} and {self.filter(depth + 1)}"
        if roll == 6:
            return f"{self.filter(depth + 1)} {self.filter(depth + 1)}"
        if roll == 7:
            return f"{self.filter(depth + 1)} {pick(c, ('or', 'OR', 'Or'))} {self.filter(depth + 1)}"
        if roll == 8:
            return f"{pick(c, ('not ', 'NOT ', '!', '! '))}{self.filter(depth + 1)}"
        if roll == 9:
            return f"({self.filter(depth + 1)})"
        if roll == 10:
            return f"not ({self.filter(depth + 1)})"
        return f"({self.filter(depth + 1)} or {self.filter(depth + 1)}) and {self.filter(depth + 1)}"

    def atom(self, depth: int) -> str:
        c = self.c
        roll = c.integer(0, 13)
        if roll < 6:
            op = pick(c, ("=", "=", "!=", " = ", "<", ">", "<=", ">=", "= ", " != "))
            numeric = op.strip() in ("<", ">", "<=", ">=") and not self.wild()
            return f"{self.field()}{op}{self.number() if numeric else self.value()}"
        if roll == 6:
            return pick(c, (self.string(), self.regex(), self.name()))  # free text
        if roll == 7:
            return "*"
        if roll == 8:
            return self.in_call()
        if roll == 9:
            return f"test({self.comparison_expr(depth + 1)})"
        if roll == 10:
            call = self.in_call(False) if not self.wild() else pick(c, (self.lower_call(), "test(x)", "foo()"))
            return f"{self.field()} =~ {call}"
        if roll == 11:
            if self.wild():
                return f"{pick(c, UNKNOWN_FUNCTIONS)}({self.args()})"
            return f"{self.field()}={self.bare()}"
        if roll == 12:
            return f"{self.field()}={pick(c, GLOB_VALUES)}"
        return f"{PREFIX.split(' ')[0]}"  # a second event-type filter later in the pipeline

    def in_call(self, with_field: bool = True) -> str:
        c = self.c
        args = []
        if with_field:
            args.append(pick(c, (self.name(), f"field={self.name()}", f"field={self.string()}")))
        args.append(f"values={self.array()}" if chance(c, 90) else f"values={self.string()}")
        if chance(c, 30):
            args.append(f"ignoreCase={self.choose(('true', 'false', 'TRUE'), ('yes', '1', self.string()))}")
        if self.wild():
            args.append(pick(c, ("bogus=1", "values=[]", self.name())))
        if chance(c, 10):
            original = list(args)
            args = [original[i] for i in sorted(range(len(original)), key=lambda _: c.integer(0, 9))]
        return f"in({', '.join(args)})"

    def args(self) -> str:
        return ", ".join(pick(self.c, (self.name(), self.string(), f"{self.name()}={self.value()}", self.regex(),
                                       self.array()))
                         for _ in range(self.c.integer(0, 3)))

    # ------------------------------------------------------------ expressions

    def expr(self, depth: int = 0) -> str:
        c = self.c
        if depth >= self.max_depth:
            return pick(c, (self.number(), self.string(), self.name()))
        roll = c.integer(0, 12)
        if roll < 2:
            return self.number()
        if roll < 4:
            return self.string()
        if roll < 6:
            return self.name()
        if roll < 8:
            if depth == 0 and self.wild() and chance(c, 4):  # a long flat sum
                return " + ".join([self.name()] * c.integer(100, 1200))
            return f"{self.expr(depth + 1)} {pick(c, ('+', '-', '*', '/', '%'))} {self.expr(depth + 1)}"
        if roll == 8:
            return f"({self.expr(depth + 1)})"
        if roll == 9:
            return f"-{self.expr(depth + 1)}"
        if roll == 10:
            return self.if_call(depth + 1)
        if roll == 11:
            return self.lower_call()
        if self.wild():
            return pick(c, (self.comparison_expr(depth + 1), f"!{self.name()}", "foo(x)", "count()",
                            f"test({self.comparison_expr(depth + 1)})", "in(x, values=[1])"))
        return self.name()

    def comparison_expr(self, depth: int) -> str:
        c = self.c
        op = pick(c, ("==", ">=", ">", "<", "<=", "!="))
        roll = c.integer(0, 4)
        if roll == 0:
            return f"{self.name()} {op} {self.number()}"
        if roll == 1:
            return f"{self.number()} {op} {self.name()}"
        if roll == 2:
            return f"{self.name()} == {self.string()}"
        if roll == 3:
            return f"!({self.name()} {op} {self.expr(depth + 1)})"
        return f"{self.expr(depth + 1)} {op} {self.expr(depth + 1)}"

    def condition(self, depth: int) -> str:
        c = self.c
        roll = c.integer(0, 3)
        if roll < 2:
            return self.comparison_expr(depth)
        if roll == 2:
            return f"test({self.comparison_expr(depth)})"
        if self.wild():
            return pick(c, (self.name(), self.string(), "*", self.regex()))
        return self.in_call()

    def if_call(self, depth: int) -> str:
        c = self.c
        roll = c.integer(0, 3) if not self.wild() else c.integer(4, 5)
        then, other = self.expr(depth + 1), self.expr(depth + 1)
        if roll == 0:  # LogScale: if(condition, then=, else=)
            args = [self.condition(depth), f"then={then}", f"else={other}"]
        elif roll == 1:  # the detection-library dialect: a filter as the condition, positional arms
            value = pick(c, (self.regex(), self.string(), self.name(), "*", "*.exe", self.number()))
            args = [f"{pick(c, FIELDS)} = {value}", then, other]
        elif roll == 2:
            args = [self.condition(depth), then, other]
        elif roll == 3:
            args = [f"condition={self.condition(depth)}", f"else={other}", f"then={then}"]
        elif roll == 4:
            args = [self.condition(depth), f"then={then}"]  # no else
        else:
            args = [self.condition(depth), then, other, self.expr(depth + 1)]  # too many
        if chance(c, 15):
            args.append(f"as={self.name()}")
        return f"if({', '.join(args)})"

    def lower_call(self) -> str:
        c = self.c
        fn = pick(c, ("lower", "upper", "Lower", "UPPER"))
        args = self.choose((self.name(), f"field={self.name()}", self.string(), f"{self.name()}, as={self.name()}",
                            f"field={self.name()}, locale=en"), ("", "as=x", "x, y"))
        return f"{fn}({args})"

    # ------------------------------------------------------------ stages

    def sort_call(self) -> str:
        c = self.c
        fn = pick(c, ("sort", "Sort", "table", "select"))
        param = "field" if fn.lower() == "sort" else "fields"
        if fn == "select":
            options: tuple[str, ...] = ()
        elif fn == "table":
            options = ("limit", "sortby", "order", "type")
        else:
            options = ("order", "limit", "type", "reverse")
        if self.wild():
            param, options = pick(c, ("field", "fields", "x")), ("order", "limit", "type", "sortby", "reverse", "x")
        many = self.array(self.name)
        fields = pick(c, (self.name(), many, f"{param}={self.name()}", f"{param}={many}", self.string()))
        args = [fields] if fields else []
        values: dict[str, tuple[str, ...]] = {
            "order": ("asc", "desc", "DESC", '"asc"') + (("sideways", "[asc, desc]") if self.wild() else ()),
            "limit": ("1", "200", "max", "20000", '"5"') + (("20001", "0", "-1", "x", '"\u00b2"',
                                                             '"\u0661\u0662"') if self.wild() else ()),
            "type": ("number", "string", "hex", "any") + (("bad",) if self.wild() else ()),
            "sortby": (self.name(), '"@timestamp"'),
            "reverse": ("true", "false"),
            "x": ("1",),
        }
        for option in options:
            if chance(c, 25):
                args.append(f"{option}={pick(c, values[option])}")
        return f"{fn}({', '.join(args)})"

    def assignment(self, depth: int = 0) -> str:
        target = self.field() if chance(self.c, 95) else pick(self.c, ("_if", "#event_simpleName", "@rawstring"))
        return f"{target} := {self.expr(depth)}"

    def case(self, depth: int) -> str:
        c = self.c
        branches = []
        for _ in range(c.integer(1, 3)):
            stages = [self.filter(depth + 1)]
            for _ in range(c.integer(0, 2)):
                stages.append(self.stage(depth + 1))
            branches.append(" | ".join(stages))
        if chance(c, 60):
            branches.append(f"* | {self.name()} := {self.number()}")
        tail = ";" if chance(c, 30) else ""
        return pick(c, ("case", "CASE", "Case")) + " { " + " ; ".join(branches) + tail + " }"

    def stage(self, depth: int = 0) -> str:
        c = self.c
        roll = c.integer(0, 9)
        if roll < 4:
            return self.filter(depth)
        if roll < 6:
            return self.assignment(depth)
        if roll == 6:
            return self.sort_call()
        if roll == 7 and depth < self.max_depth:
            return self.case(depth)
        if roll == 8:
            return pick(c, (self.lower_call(), self.if_call(depth)))
        if chance(c, 50):
            return self.real_call(depth)
        return pick(c, (self.in_call(), f"test({self.comparison_expr(depth)})", "*",
                        self.signal_block()))

    def real_call(self, depth: int) -> str:
        """A stage in the shape real detection content writes it (CQL.md's frequency list), with
        this generator's values in it: what cqlx converts and what it keeps opaque alike."""
        c = self.c
        template = pick(c, REAL_STAGES)
        if "{match}" in template:
            arms = [f"{self.value()} => {self.name()} := {self.expr(depth + 1)}" for _ in range(c.integer(1, 3))]
            if chance(c, 50):
                arms.append(f"* => {self.name()} := {self.number()}")
            return template.replace("{match}", " ; ".join(arms))
        fills = {"{f}": self.name, "{s}": self.string, "{r}": self.regex, "{n}": self.number, "{a}": self.array,
                 "{v}": self.value, "{e}": lambda: self.expr(depth + 1)}
        out = template
        for key, make in fills.items():
            while key in out:
                out = out.replace(key, make(), 1)
        return out

    def signal_block(self) -> str:
        """The seed's shape: flag and weight fields per signal, a score and a severity ladder."""
        c = self.c
        names = [f"S{i}" for i in range(c.integer(1, 4))]
        out = []
        for name in names:
            test = f"{pick(c, MAPPED_FIELDS)} = {pick(c, (self.regex(), self.string(), '*x*'))}"
            out.append(f'{name} := if({test}, "YES", "NO")')
            out.append(f"{name}W := if({test}, {pick(c, ('1', '2', '3', '0', '2.5', '-1'))}, 0)")
        out.append("Score := " + " + ".join(f"{n}W" for n in names))
        tiers = sorted({int(pick(c, ("1", "3", "6", "9", "0"))) for _ in range(c.integer(1, 3))}, reverse=True)
        ladder = '"LOW"'
        for tier in reversed(tiers):
            ladder = f'if(Score >= {tier}, {pick(c, ("HIGH", "CRITICAL", "MEDIUM", "odd"))!r}, {ladder})'
        out.append(f"Sev := {ladder}".replace("'", '"'))
        return " | ".join(out)

    def separator(self) -> str:
        return pick(self.c, (" | ", "\n| ", "|", "\n|\n", " // note\n| ", " /* c */ | ", "\t|\t"))

    def query(self) -> str:
        c = self.c
        stages = []
        roll = c.integer(0, 9)
        if roll < 6:
            stages.append(PREFIX[:-3])
        elif roll < 8:
            types = [pick(c, EVENT_TYPES) for _ in range(c.integer(1, 3))]
            field_name = pick(c, ("#event_simpleName", "event_simpleName"))
            stages.append(" or ".join(f"{field_name}={t or '*'}" for t in types))
        if chance(c, 20):
            stages.append(f"{pick(c, ('event_platform', '#event_platform'))}={pick(c, ('Lin', 'Win', 'Mac', 'x'))}")
        for _ in range(c.integer(1, 5)):
            stages.append(self.stage())
        text = stages[0]
        for stage in stages[1:]:
            text += self.separator() + stage
        if chance(c, 5):
            text = pick(c, ("// leading comment\n", "/* c */", "\n\n", " ", "\ufeff")) + text
        if chance(c, 5):
            text += pick(c, ("\n", " // trailing", " |", "\n/* open", ";", " \x00"))
        return text


# ================================================================ mutation

_TOKEN = re.compile(r'\s+|"(?:[^"\\]|\\.)*"|/(?:[^/\\\n]|\\.)+/[A-Za-z]*|[#@]?[A-Za-z_][\w.]*|\d+|:=|=~|!=|'
                    r"<=|>=|==|.", re.S)

INSERTS: tuple[str, ...] = (
    "|", "(", ")", "{", "}", "[", "]", ",", ";", "=", ":=", "!=", "=~", "==", " not ", " or ", " and ", "!",
    "case {", "*", "/", "//", "/*", "*/", '"', "\\", "if(", "test(", "in(", "select(", "sort(", ")", "-",
    "+", "\n", " ", "x", "1", "#", "@", "$", "`", "\x00", "é", "😀", '") or true or ("', "__import__('os')",
    "| delete", "(((((", ")))))", "!!!!!", "1/0", "else=", "then=", "as=", "limit=", "/i", "\\/",
)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def mutate(c: Chooser, seed: str, generator: CqlGenerator | None = None) -> str:
    """``seed`` after 1 to 8 character and token edits."""
    gen = generator or CqlGenerator(c, max_depth=2)
    text = seed
    for _ in range(c.integer(1, 3) if chance(c, 75) else c.integer(1, 10)):
        if not text:
            text = gen.stage()
            continue
        kind = c.integer(0, 11)
        at = c.integer(0, len(text) - 1)
        if kind == 0:  # delete a character
            text = text[:at] + text[at + 1:]
        elif kind == 1:  # duplicate a character
            text = text[:at] + text[at] + text[at:]
        elif kind == 2:  # insert a character
            text = text[:at] + pick(c, (pick(c, INSERTS)[:1], c.text(1) or "x")) + text[at:]
        elif kind == 3:  # delete a range
            end = min(len(text), at + c.integer(1, 40))
            text = text[:at] + text[end:]
        elif kind == 4:  # truncate
            text = text[:at]
        else:
            parts = tokens(text)
            index = c.integer(0, len(parts) - 1)
            if kind == 5:  # delete a token
                del parts[index]
            elif kind == 6:  # duplicate a token (or a run of them)
                run = parts[index:index + c.integer(1, 6)]
                parts[index:index] = run * c.integer(1, 3)
            elif kind == 7:  # insert a token
                parts.insert(index, pick(c, INSERTS))
            elif kind == 8:  # insert a generated construct
                parts.insert(index, pick(c, (gen.filter(1), gen.expr(1), gen.value(), gen.stage(1) + " | ",
                                             gen.hostile())))
            elif kind == 9:  # swap two tokens
                other = c.integer(0, len(parts) - 1)
                parts[index], parts[other] = parts[other], parts[index]
            elif kind == 10:  # replace a token
                parts[index] = pick(c, (pick(c, INSERTS), gen.value(), gen.name(), gen.number()))
            else:  # repeat a whole stage
                stages = "".join(parts).split("|")
                pos = c.integer(0, len(stages) - 1)
                stages.insert(pos, stages[pos])
                parts = ["|".join(stages)]
            text = "".join(parts)
    return text


# ================================================================ events

def event_value(c: Chooser) -> Any:
    roll = c.integer(0, 13)
    if roll < 4:
        return pick(c, HOSTILE)
    if roll < 5:
        return c.text(10)
    if roll < 6:
        return pick(c, (0, 1, -1, 3, 6, 12, 2**63, -(2**63), 10**30))
    if roll < 7:
        return pick(c, (0.5, -0.0, 1e308, -1e308, 1e-320, float("nan"), float("inf"), float("-inf"), 6.0, 1e16,
                        1e20, 1e21, 1000.0, 0.0001))
    if roll < 8:
        return pick(c, (True, False, None))
    if roll < 9:
        return [event_value(c) for _ in range(c.integer(0, 2))]
    if roll < 10:
        return {pick(c, ("b", "0", "x", "")): event_value(c) for _ in range(c.integer(0, 2))}
    if roll < 11:
        return pick(c, ("/usr/bin/docker", "docker run --privileged alpine", "kubectl get secrets",
                        "-v /:/host", "nsenter -t 1", "C:\\Windows\\cmd.exe", "ProcessRollup2"))
    if roll < 12:
        return pick(c, ("1" * 400, "-" + "9" * 400, "1e400", " 7 ", "0x1F", "\u0661\u0662", "NaN", "Infinity", "1_000"))
    return pick(c, ("", " "))


def make_event(c: Chooser) -> dict[str, Any]:
    event: dict[str, Any] = {}
    if chance(c, 70):
        event["#event_simpleName"] = pick(c, ("ProcessRollup2", "ProcessRollup2", "DnsRequest", None, 1))
    for _ in range(c.integer(0, 6)):
        key = pick(c, FIELDS) if chance(c, 85) else c.text(5)
        event[key] = event_value(c)
    return event


FIXED_EVENTS: tuple[dict[str, Any], ...] = (
    {},
    {"#event_simpleName": "ProcessRollup2", "ImageFileName": "/usr/bin/docker",
     "CommandLine": "docker run --privileged -v /:/host alpine", "RawProcessId": "42", "UserName": "root"},
    {"#event_simpleName": "ProcessRollup2", "CommandLine": None, "ImageFileName": ["a"], "x": {"y": 1},
     "RawProcessId": float("nan"), "a": {"b": [1, {"c": None}]}, "@rawstring": "\x00|\"'`$"},
    {"event_simpleName": "ProcessRollup2", "CommandLine": 7, "x": True, "y": 1e308, "SuspicionScore": "inf"},
    {"#event_simpleName": "ProcessRollup2", "CommandLine": 1e16, "RawProcessId": 1e20, "UserName": "\u212a"},
)


# ================================================================ checking


@dataclass(frozen=True)
class Failure:
    target: str  # parse | spl | kql | sigma | python | matcher | match | run | kusto | cli
    kind: str  # exception type (or Kusto diagnostic code)
    message: str
    where: str  # innermost frame in cqlx (file:line), or in the generated module
    detail: str  # traceback or the offending output
    text: str  # the input
    event: str = ""  # repr of the event, for match/run failures

    @property
    def signature(self) -> str:
        return f"{self.target}:{self.kind}:{self.where}"

    def report(self) -> str:
        event = f"  event: {self.event}\n" if self.event else ""
        return (f"[{self.target}] {self.kind}: {self.message}\n  at {self.where}\n  input: {self.text!r}\n"
                f"{event}{self.detail}")


def _where(error: BaseException) -> str:
    """The innermost frame in cqlx's source or a module it generated, else the innermost frame
    of a named file (pySigma, re, lark), for grouping failures by cause."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename != "<string>"]
    ours = [f for f in frames if "/cqlx/" in f.filename or f.filename.startswith("<cqlx")]
    chosen = ours or frames
    if not chosen:
        return "?"
    frame = chosen[-1]
    name = frame.filename
    if "/cqlx/" in name:
        name = "cqlx/" + name.rsplit("/cqlx/", 1)[1]
    elif "site-packages/" in name:
        name = name.rsplit("site-packages/", 1)[1]
    elif name.startswith("<"):  # generated code: its line numbers depend on the query
        return f"{name} ({re.sub(r'[0-9]+', 'N', frame.name)})"
    else:
        name = Path(name).name
    return f"{name}:{frame.lineno} ({frame.name})"


def _failure(target: str, error: BaseException, text: str, event: Any = None) -> Failure:
    message = str(error).splitlines()[0][:300] if str(error) else ""
    detail = "".join(traceback.format_exception(type(error), error, error.__traceback__, limit=-8))
    return Failure(target, type(error).__name__, message, _where(error), detail, text,
                   "" if event is None else repr(event))


@dataclass(frozen=True)
class KnownBug:
    name: str
    targets: frozenset[str]
    kind: str
    pattern: str  # a regex searched in the message
    reason: str

    def matches(self, failure: Failure) -> bool:
        # "card" runs parse and the conversions on a query read from a rule file: any bug shows there.
        return ((failure.target in self.targets or failure.target == "card") and failure.kind == self.kind
                and re.search(self.pattern, failure.message) is not None)


_EVERYWHERE = frozenset({"parse", *TARGETS, "matcher", "match", "run", "python-output", "sigma-output",
                         "spl-output", "card", "prefilter", "explain"})

#: Bugs found by this file and not fixed yet: tolerated by the property tests (by target, exception
#: type and message), each pinned by a minimal case in KNOWN_CASES. Remove both once fixed.
KNOWN_BUGS: tuple[KnownBug, ...] = ()  # every bug found so far is fixed (FIXED below); none is tolerated


def known(failure: Failure) -> KnownBug | None:
    return next((bug for bug in KNOWN_BUGS if bug.matches(failure)), None)


@dataclass
class Outcome:
    text: str
    failures: list[Failure] = field(default_factory=list)
    kql: list[str] = field(default_factory=list)  # outputs converted without loss, for Kusto.Language
    parsed: bool = False
    converted: dict[str, bool] = field(default_factory=dict)

    def unexpected(self) -> list[Failure]:
        return [f for f in self.failures if known(f) is None]


class OutputError(Exception):
    """An output that is not what its target can run (found by the checks below)."""


def _unquoted(text: str) -> Iterator[tuple[int, str]]:
    """Each character of SPL text outside its quotes, with its index; a quoted string (in which a
    backslash escapes the next character) is yielded as its closing quote."""
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
                yield index, char
        elif char in "\"'":
            quote = char
        else:
            yield index, char
        index += 1
    if quote:
        raise OutputError(f"an unclosed {quote} quote")


def _top_level_stages(pipeline: str) -> list[str]:
    """A one-line SPL pipeline cut at each `` | `` outside quotes and subsearches (``[...]``), so a
    join inside a subsearch stays one stage."""
    stages: list[str] = []
    depth, start = 0, 0
    for index, char in _unquoted(pipeline):
        if char in "[]":
            depth += 1 if char == "[" else -1
        elif depth == 0 and pipeline.startswith(" | ", index):
            stages.append(pipeline[start:index])
            start = index + 1
    return [*stages, pipeline[start:]]


def check_spl(output: str) -> None:
    """No SPL engine runs here, so a lexical check: quotes close; outside them there is no ``|``
    but the one starting each stage's line, no backtick (macro), no ``[`` (subsearch) but the one
    a ``| join`` or ``| appendpipe`` line ends with (checked as SPL of its own), and no empty
    argument (``in(f, )``);
    no command is left without its arguments (``| table``)."""
    lines = output.split("\n")
    for number, line in enumerate(lines):
        if line.startswith(("| join ", "| appendpipe [")) and line.endswith("]") and " [" in line:
            head, _, sub = line.partition(" [")
            body = sub[:-1].removeprefix("search ")
            check_spl("\n".join(_top_level_stages(body)))  # the subsearch's stages, one a line
            lines[number] = head
    output = "\n".join(lines)
    for line in output.splitlines()[1:]:
        if re.fullmatch(r"\| (table|sort|fields|eval|where|regex|head)\s*", line):
            raise OutputError(f"a command without arguments: {line!r}")
    last = ""  # the last character outside quotes that is not a space (a closing quote: a string)
    for index, char in _unquoted(output):
        if char == "\n":
            if index + 1 < len(output) and not output.startswith("| ", index + 1):
                raise OutputError(f"a line that does not start a stage at {output[index + 1:index + 40]!r}")
        elif char == "|" and not (index == 0 or output[index - 1] == "\n"):  # `| datamodel ...` starts one
            raise OutputError(f"an unquoted '|' inside a stage at {output[max(0, index - 30):index + 10]!r}")
        elif char in "`[":
            raise OutputError(f"an unquoted {char!r} at {output[max(0, index - 30):index + 10]!r}")
        elif char == ")" and last == ",":
            raise OutputError(f"an empty argument at {output[max(0, index - 30):index + 1]!r}")
        if not char.isspace():
            last = char


#: Names no matcher module has reason to call: a literal that reached the code as code.
_FORBIDDEN_NAMES = frozenset({"__import__", "eval", "exec", "open", "os", "system", "subprocess", "compile",
                              "globals", "getattr", "breakpoint", "input"})


def check_python(output: str) -> None:
    """The module compiles, imports, and calls nothing it should not (every literal via repr)."""
    import ast

    tree = ast.parse(output)
    marker = output.find("# ---- the rule ----")
    first = output.count("\n", 0, marker) + 1 if marker >= 0 else 0  # the copied runtime is not rule code
    rule = [node for node in tree.body if node.lineno >= first]
    used = {n.id for node in rule for n in ast.walk(node) if isinstance(n, ast.Name)} & _FORBIDDEN_NAMES
    if used:
        raise OutputError(f"the module uses {sorted(used)}")
    exec(compile(tree, "<cqlx python output>", "exec"), {"__name__": "cqlx_fuzz"})


def check_cql(output: str, query: Any) -> None:
    """CQL → CQL is exact: the canonical LogScale cqlx writes parses back to the IR it came from."""
    from cqlx.emit.cql import same_ir

    if not same_ir(cqlx.parse(output), query):
        raise OutputError(f"the CQL output reads back as another query: {output!r}")


def check_sigma(output: str) -> None:
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

    collection = SigmaCollection.from_yaml(output)
    if not collection.rules:
        raise AssertionError("pySigma loaded no rule")
    collection.resolve_rule_references()  # a correlation's rules: must name rules of the collection
    for rule in collection:
        if isinstance(rule, SigmaCorrelationRule):
            if not rule.rules:
                raise AssertionError("a correlation rule that references no rule")
            continue
        if not isinstance(rule, SigmaRule):
            raise AssertionError(f"pySigma read a {type(rule).__name__}, not a rule")
        for condition in rule.detection.parsed_condition:
            condition.parse()


def _render(error: CqlError, target: str, outcome: Outcome) -> None:
    """The message the CLI prints (position, caret under the source line) must render too."""
    try:
        rendered = str(error)
        if not isinstance(rendered, str) or not rendered:
            raise OutputError("the error renders as an empty message")
    except Exception as failure:
        outcome.failures.append(_failure(f"{target}-message", failure, outcome.text))


def check_text(text: str, events: Sequence[dict[str, Any]] = FIXED_EVENTS, policies: Sequence[str] = ("error",
               "warn"), matcher: bool = True, targets: Sequence[str] = TARGETS, prefilter: bool = True
               ) -> Outcome:
    """Every invariant on one input except Kusto.Language (its KQL is collected in ``kql``);
    ``targets`` and ``matcher`` narrow the checks (to minimise one failure quickly)."""
    from cqlx.api import compile_query
    from cqlx.conversion import apply_policy, convert_query

    outcome = Outcome(text)
    try:
        query = cqlx.parse(text)
    except CqlError as error:
        _render(error, "parse", outcome)
        return outcome
    except BaseException as error:  # any other exception is the finding
        if isinstance(error, KeyboardInterrupt):
            raise
        outcome.failures.append(_failure("parse", error, text))
        return outcome
    outcome.parsed = True
    if matcher:  # `cqlx explain` renders the IR in words
        try:
            from cqlx.explain import explain

            explain(query, "fuzz", "rule.cql", 0)
        except CqlError as error:
            _render(error, "explain", outcome)
        except Exception as error:
            outcome.failures.append(_failure("explain", error, text))
    for target in targets:
        try:
            conversion = convert_query(query, target, None, None, text)
            output = conversion.output
            if not isinstance(output, str):
                raise TypeError(f"convert returned {type(output).__name__}, not str")
            clean = True
            written = False  # under some policy (--on-lossy warn writes detection loss)
            for policy in policies:
                try:
                    apply_policy(conversion, policy, text)
                    written = True
                except CqlError as error:
                    _render(error, target, outcome)
                    clean = False
        except CqlError as error:
            _render(error, target, outcome)
            if target == "cql":  # everything cqlx parses has a CQL form
                outcome.failures.append(_failure("cql-output", error, text))
            outcome.converted[target] = False
            continue
        except Exception as error:
            outcome.failures.append(_failure(target, error, text))
            continue
        outcome.converted[target] = clean
        if target == "cql":  # lossy or not: CQL → CQL must read back as the same IR
            try:
                check_cql(output, query)
            except Exception as error:
                outcome.failures.append(_failure("cql-output", error, text))
        if not written or (not clean and target not in LOSSY_CHECKED):
            continue
        if target == "python":
            try:
                check_python(output)
            except Exception as error:
                outcome.failures.append(_failure("python-output", error, text))
        elif target == "spl":
            try:
                check_spl(output)
            except Exception as error:
                outcome.failures.append(_failure("spl-output", error, text))
        elif target == "sigma":
            try:
                check_sigma(output)
            except Exception as error:
                outcome.failures.append(_failure("sigma-output", error, text))
        elif target == "kql":
            outcome.kql.append(output)
    if matcher:
        try:
            compiled = compile_query(query, text)
        except CqlError:
            return outcome
        except Exception as error:
            outcome.failures.append(_failure("matcher", error, text))
            return outcome
        for event in events:
            try:
                compiled.match(dict(event))
            except Exception as error:
                outcome.failures.append(_failure("match", error, text, event))
                break
        try:
            compiled.run([dict(e) for e in events])
        except Exception as error:
            outcome.failures.append(_failure("run", error, text, list(events)))
        if prefilter:
            try:
                check_prefilter(compiled, events)
            except Exception as error:
                outcome.failures.append(_failure("prefilter", error, text, list(events)))
        try:
            check_scoring(compiled, text, events)
        except Exception as error:
            outcome.failures.append(_failure("scoring", error, text, list(events)))
    return outcome


#: now() in the checks that compare two runs (each run's now() is the time it is called).
QUERY_TIME = 1_700_000_000_000

#: The passes that make the scoring IR (signals, score, severity ladder) of plain assignments.
SCORING_PASSES = ("recognize_signals", "recognize_score", "recognize_ladder")


def check_scoring(compiled: Any, text: str, events: Sequence[dict[str, Any]]) -> None:
    """The scoring IR means what the assignments it was made of mean: the matcher of the query
    without the scoring passes (signals, score, ladder) gives the same rows."""
    from cqlx.api import compile_query, parse_tree
    from cqlx.lower import lower
    from cqlx.passes import PASSES

    if not any(isinstance(s, ir.Signal | ir.Score | ir.Ladder) for s in compiled.query.steps):
        return
    plain = lower(parse_tree(text), text, None, None)
    for rewrite in PASSES:
        if rewrite.__name__ not in SCORING_PASSES:
            plain = rewrite(plain)
    assert not any(isinstance(s, ir.Signal | ir.Score | ir.Ladder) for s in plain.steps)
    try:
        scored = _rows_text(compiled.run([dict(e) for e in events], now=QUERY_TIME))
    except Exception:  # reported by the run check already
        return
    unscored = _rows_text(compile_query(plain, text).run([dict(e) for e in events], now=QUERY_TIME))
    if scored != unscored:
        raise OutputError(f"the scoring IR changes the rows: {unscored[:300]} becomes {scored[:300]}")


def _rows_text(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as text that compares NaN with NaN, in field-name order: an event is a set of fields
    (a signal step assigns its flag and its weight together, where the plain query assigned every
    flag first)."""
    return repr([sorted(row.items(), key=lambda item: item[0]) for row in rows])


def _json_line(event: dict[str, Any]) -> bytes:
    try:
        return json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):  # an int too long for str(): the event has no JSON form
        return b""


def _matches(compiled: Any, event: dict[str, Any]) -> bool:
    try:
        return compiled.match(dict(event)) is not None
    except Exception:  # reported by the match check already
        return False


def check_prefilter(compiled: Any, events: Sequence[dict[str, Any]]) -> None:
    """`cqlx run`'s literal prefilter skips no line the matcher would match: each event as an
    NDJSON line, read back the way `cqlx run` reads it, with and without the prefilter."""
    import tempfile

    from cqlx.events import EventStats, classify
    from cqlx.prefilter import build
    from cqlx.scan import scan_events
    from cqlx.testing import aggregates

    lines = [line for line in (_json_line(e) for e in events) if line]
    parsed = [value for kind, value in map(classify, lines) if kind == "event"]
    grouped = aggregates(compiled.query)
    # An aggregate's row is not one event's: there the rows over the kept lines must be the rows
    # over all of them (a global count is a row even when no event passes the filters).
    wanted = [e for e in parsed if grouped or _matches(compiled, e)]
    if not wanted:
        return
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.ndjson"
        path.write_bytes(b"\n".join(lines) + b"\n")
        kept = list(scan_events([str(path)], EventStats(), build(compiled.query)))
    if grouped:
        try:
            every = repr(compiled.run([dict(e) for e in parsed], now=QUERY_TIME))
            some = repr(compiled.run([dict(e) for e in kept], now=QUERY_TIME))
        except Exception:  # reported by the run check already
            return
        if every != some:
            raise OutputError(f"the prefilter changes the rows: {every[:300]} becomes {some[:300]}")
        return
    lost = [e for e in wanted if e not in kept]
    if lost:
        raise OutputError(f"the prefilter skips {len(lost)} matching event(s), first {lost[0]!r}")


def mde_tables() -> dict[str, list[tuple[str, str]]]:
    from cqlx.profiles import load_profile

    return {name: list(columns) for name, columns in load_profile("mde").tables.items()}


def check_kusto(pairs: Sequence[tuple[str, str]]) -> list[Failure]:
    """Kusto.Language errors for ``(cql, kql)`` pairs, in one Node run."""
    from cqlx.engines.kusto_language import analyze

    if not pairs:
        return []
    failures = []
    tables = mde_tables()
    for text, _ in pairs:  # the tables a match() reads are the user's: known with the columns it names
        for name, columns in lookup_schema(cqlx.parse(text)).items():
            known_columns = tables.setdefault(name, [])
            known_columns += [c for c in columns if c not in known_columns]
    results = analyze([kql for _, kql in pairs], tables)
    for (text, kql), diagnostics in zip(pairs, results, strict=True):
        for diagnostic in diagnostics:
            if diagnostic.severity == "Error":
                message = f"{diagnostic.message} at {diagnostic.excerpt(kql)!r}"
                failures.append(Failure("kusto", diagnostic.code, message, diagnostic.code, kql, text))
                break
    return failures


def describe(failures: Iterable[Failure]) -> str:
    return "\n\n".join(f.report() for f in failures)


# ================================================================ strategies


@st.composite
def cql_queries(draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    return CqlGenerator(HypothesisChooser(draw)).query()


@st.composite
def mutated(draw: Callable[[st.SearchStrategy[Any]], Any], seed: str) -> str:
    return mutate(HypothesisChooser(draw), seed)


@st.composite
def events(draw: Callable[[st.SearchStrategy[Any]], Any]) -> list[dict[str, Any]]:
    c = HypothesisChooser(draw)
    return [make_event(c) for _ in range(c.integer(1, 3))]


# No example database (nothing written into the repository); a failure prints its reproduction blob.
# Whether the examples are drawn afresh is conftest.py's Hypothesis profile.
_SETTINGS: dict[str, Any] = {"deadline": None, "database": None, "print_blob": True,
                             "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
FAST = settings(max_examples=300, **_SETTINGS)
FULL = settings(max_examples=150, **_SETTINGS)


def _parse_only(text: str) -> None:
    try:
        cqlx.parse(text)
    except CqlError:
        pass
    except Exception as error:
        failure = _failure("parse", error, text)
        if known(failure) is None:
            raise


# ================================================================ property tests


@FAST
@given(cql_queries())
def test_generated_queries_parse_or_raise_cql_error(text: str) -> None:
    _parse_only(text)


@FAST
@given(st.data())
def test_mutated_seed_parses_or_raises_cql_error(seed_text: str, data: st.DataObject) -> None:
    _parse_only(data.draw(mutated(seed_text)))


@FAST
@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_cql_error(text: str) -> None:
    _parse_only(text)


@FULL
@given(cql_queries(), events())
def test_generated_queries_convert_or_raise_cql_error(text: str, evs: list[dict[str, Any]]) -> None:
    outcome = check_text(text, [*FIXED_EVENTS, *evs])
    assert not outcome.unexpected(), describe(outcome.unexpected())


@FULL
@given(st.data())
def test_mutated_seed_converts_or_raises_cql_error(seed_text: str, data: st.DataObject) -> None:
    outcome = check_text(data.draw(mutated(seed_text)))
    assert not outcome.unexpected(), describe(outcome.unexpected())


def test_generated_kql_passes_kusto_language(seed_text: str) -> None:
    """Every lossless KQL conversion of generated and mutated queries, and of every hostile literal
    in every template position, in one Kusto.Language run."""
    from tests.conftest import require_kusto

    require_kusto()
    pairs: list[tuple[str, str]] = []

    @settings(max_examples=150, **_SETTINGS)
    @given(st.one_of(cql_queries(), mutated(seed_text)))
    def collect(text: str) -> None:
        outcome = check_text(text, policies=("error",), matcher=False, targets=("kql",))
        pairs.extend((text, kql) for kql in outcome.kql)

    collect()
    generated = len(pairs)
    for text in hostile_queries():
        pairs.extend((text, kql) for kql in check_text(text, policies=("error",), matcher=False,
                                                         targets=("kql",)).kql)
    failures = [f for f in check_kusto(pairs) if known(f) is None]
    assert generated >= 10 and len(pairs) - generated >= 100, "too few KQL outputs for the check to mean much"
    assert not failures, describe(failures)


# ================================================================ hostile literals, one by one

TEMPLATES: tuple[str, ...] = (
    PREFIX + "CommandLine={s}",
    PREFIX + "CommandLine!={s}",
    PREFIX + "{s}",
    PREFIX + "{f}=x",
    PREFIX + "{f}={s} | select([{f}, CommandLine])",
    PREFIX + "x := {s} | select([x])",
    PREFIX + "x := if(CommandLine = {s}, {s}, \"NO\")",
    PREFIX + "x := if(test(CommandLine == {s}), then={s}, else=\"b\")",
    PREFIX + "in(CommandLine, values=[{s}, \"*.exe\"], ignoreCase=true)",
    PREFIX + "in(field=CommandLine, values=[{s}])",
    PREFIX + "CommandLine=/{r}/i",
    PREFIX + "case {{ CommandLine={s} | x := {s} ; * | x := \"n\" }}",
)


def _regex_body(value: str) -> str:
    """A LogScale regex body matching ``value`` literally (``/`` as ``\\/``, no raw line breaks)."""
    special = {"/": "\\/", "\n": "\\n", "\r": "\\r"}
    return "".join(special.get(char) or re.escape(char) for char in value)


def hostile_queries(values: Iterable[str] = HOSTILE) -> list[str]:
    """Each hostile value in each template position."""
    return [template.format(s=cql_string(value), f=cql_string(value), r=_regex_body(value))
            for value in values for template in TEMPLATES]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_literal_in_every_position(value: str) -> None:
    failures = [f for text in hostile_queries([value]) for f in check_text(text).unexpected()]
    assert not failures, describe(failures)


# ================================================================ hostile values keep their meaning


def _equality(value: str) -> str:
    return PREFIX + f"CommandLine = {cql_string(value)}"


@pytest.mark.parametrize("value", HOSTILE)  # U+0085 among them: PyYAML folds it unless double-quoted
def test_hostile_value_survives_the_sigma_yaml(value: str) -> None:
    """The value a Sigma rule tests, read back from the YAML, is the value cqlx wrote."""
    import yaml

    from cqlx.emit.sigma import sigma_string

    try:
        out = cqlx.convert(_equality(value), to="sigma")
    except CqlError:
        return
    detection = next(iter(yaml.safe_load_all(out)))["detection"]
    items = {k: v for selection in detection.values() if isinstance(selection, dict) for k, v in selection.items()}
    tested = [v for k, v in items.items() if k.startswith("CommandLine")]
    assert tested == [sigma_string(value, glob="*" in value)], out


def test_hostile_values_match_themselves_in_kql_on_duckdb() -> None:
    """`CommandLine = "<value>"` selects the event holding exactly that value, in the matcher and in the
    KQL run on duckdb-kql: no value escapes its string literal."""
    from cqlx.engines.duckdb_kql import run_kql
    from cqlx.profiles import load_profile
    from cqlx.reshape import to_tables

    wrong = []
    for value in HOSTILE:
        if "*" in value or not value.strip():
            continue  # a glob, or a value Defender cannot tell from a missing one
        events = [{"#event_simpleName": "ProcessRollup2", "ComputerName": name, "CommandLine": text}
                  for name, text in (("hit", value), ("longer", value + "x"), ("inside", f"x{value}y"))]
        query = _equality(value)
        reference = {e["ComputerName"] for e in events if cqlx.compile_matcher(query).match(e) is not None}
        try:
            kql = cqlx.convert(query + " | select([ComputerName])", to="kql")
        except CqlError:
            continue
        found = {str(r["DeviceName"]) for r in run_kql(kql, to_tables(events, load_profile("mde")))}
        if not reference == found == {"hit"}:
            wrong.append(f"{value!r}: matcher {sorted(reference)}, KQL {sorted(found)}\n{kql}")
    assert not wrong, "\n".join(wrong)


# ================================================================ the bugs found so far

@dataclass(frozen=True)
class Case:
    name: str
    text: str
    target: str  # which check fails: parse, a target, python-output, sigma-output, matcher, match, kusto
    reason: str
    event: dict[str, Any] | None = None


def _chain(n: int, unit: str, glue: str) -> str:
    return PREFIX + glue.join([unit] * n)


KNOWN_CASES: tuple[Case, ...] = (
    Case("or-chain", _chain(600, "CommandLine=x", " or "), "parse", "a 600-term `or` chain: RecursionError"),
    Case("implicit-and-chain", _chain(600, "CommandLine=x", " "), "parse",
         "600 filters side by side: RecursionError (VisitError)"),
    Case("bang-chain", PREFIX + "!" * 600 + "CommandLine=x", "parse", "600 `!` in a row: RecursionError"),
    Case("sum-chain", PREFIX + "x := " + "+".join(["1"] * 600), "parse", "a 600-term sum: RecursionError"),
    Case("python-sum-200", PREFIX + "x := " + "+".join(["1"] * 201), "python-output",
         "a 201-term sum: the Python output does not compile (too many nested parentheses)"),
    Case("python-lower-199", PREFIX + "x := " + "lower(" * 199 + "CommandLine" + ")" * 199, "python-output",
         "199 nested lower() (within MAX_NESTING): the Python output does not compile"),
    Case("limit-superscript", 'sort(x, limit="\u00b2")', "parse", "limit=\"\u00b2\": ValueError from int()"),
    Case("limit-huge", "sort(x, limit=" + "1" * 4301 + ")", "parse",
         "limit= with 4301 digits: ValueError from int() (sys.int_max_str_digits)"),
    Case("inf-compare", PREFIX + "RawProcessId < 1e400", "match", "x < 1e400: NameError 'inf' in the matcher"),
    Case("nan-compare", PREFIX + "RawProcessId < nan", "match", "x < nan: NameError 'nan' in the matcher"),
    Case("sigma-inf", PREFIX + "RawProcessId < 1e400", "sigma-output", "x < 1e400: pySigma: Invalid number"),
    Case("kql-inf", PREFIX + "RawProcessId < 1e400", "kusto", "x < 1e400 becomes `ProcessId < inf` in KQL"),
    Case("spl-not-star", "not *", "spl", "not *: AssertionError in SplGenerator.atom"),
    Case("python-sort-in-case", "case { sort(x) }", "python", "sort() in case { }: ValueError"),
    Case("python-nested-case", "case { case { * } }", "match",
         "nested case { }: the branch functions share a name; match() recurses forever"),
    Case("regex-unicode-flag", PREFIX + "CommandLine=/(?u)a/", "kql", "/(?u)a/: ValueError from re"),
    Case("sigma-cmp-ne", PREFIX + "CommandLine=x | test(RawProcessId != 1)", "sigma-output",
         "test(x != 1): Sigma condition 'false' that pySigma cannot resolve"),
    Case("sigma-field-pipe", PREFIX + '"a|"=x', "sigma-output", "a field name with '|': Unknown modifier ''"),
    Case("sigma-deep-condition", PREFIX + "(CommandLine=x and (ImageFileName=y or " * 95 + "CommandLine=y"
         + "))" * 95, "sigma-output", "a condition nested 190 deep: RecursionError in pySigma"),
    Case("sigma-identifier", PREFIX + 'CommandLine=x | "\u00e9" := if(CommandLine = /a/, "YES", "NO") '
         '| W := if(CommandLine = /a/, 3, 0) | S := W | L := if(S >= 3, "HIGH", "LOW")', "sigma-output",
         "a signal named \u00e9: selection sig_\u00e9 breaks pySigma's condition parser"),
    Case("spl-field-backslash", PREFIX + '"a\\\\" := 1', "spl-output",
         "field name `a\\`: the SPL quote `'a\\'` never closes"),
    Case("spl-empty-in", PREFIX + "in(CommandLine, values=[])", "spl-output", "`| where in(CommandLine, )`"),
    Case("spl-empty-table", PREFIX + "CommandLine=x | select([])", "spl-output", "`| table ` with no field"),
    Case("runtime-overflow", PREFIX + "x := RawProcessId / 3", "match",
         "an event value of 400 digits in arithmetic: OverflowError",
         {"#event_simpleName": "ProcessRollup2", "RawProcessId": "1" * 400}),
    Case("prefilter-exponent", PREFIX + 'CommandLine = "10000000000000000"', "prefilter",
         "the event {\"CommandLine\": 1e16} matches, but its line `\"CommandLine\": 1e+16` holds no "
         "10000000000000000: cqlx run skips it", {"#event_simpleName": "ProcessRollup2", "CommandLine": 1e16}),
    Case("kql-empty-in", PREFIX + "in(CommandLine, values=[])", "kusto", "`ProcessCommandLine in ()`: KS006"),
    Case("kql-string-order", PREFIX + 'test(CommandLine < "a")', "kusto", "`ProcessCommandLine < \"a\"`: KS106"),
    Case("kql-string-arith", PREFIX + "x := CommandLine + 1", "kusto", "`ProcessCommandLine + 1`: KS106"),
    Case("kql-string-test-on-long", PREFIX + "RawProcessId=*1*", "kusto",
         "a glob on a long column: `ProcessId contains_cs \"1\"`: KS106"),
    Case("kql-newline-name", PREFIX + '"a\\nb" := 1', "kusto",
         "a field name with a newline: `extend ['a<newline>b']`, which KQL cannot parse"),
    Case("kql-literal-arith", PREFIX + 'x := -"a"', "kusto",
         "arithmetic on a string literal: `extend x = (0 - \"a\")`: KS106 (fields are converted, literals not)"),
    Case("kql-mixed-compare", PREFIX + 'test("a" >= 1)', "kusto", "`where \"a\" >= 1`: KS106"),
    Case("kql-in-on-long", PREFIX + 'in(RawProcessId, values=["1"], ignoreCase=true)', "kusto",
         "in(..., ignoreCase=true) on a long column: `ProcessId in~ (\"1\")`: KS107"),
    Case("spl-empty-table-name", PREFIX + 'CommandLine=x | select("")', "spl-output",
         "select(\"\"): `| table ` with no field (the empty name is dropped)"),
    Case("kql-projected-away", PREFIX + "select([CommandLine]) | aid=x", "kusto",
         "`project ProcessCommandLine | where DeviceId == ...`: KS142"),
    Case("kql-mixed-iff", PREFIX + 'x := if(test(RawProcessId > 1), then="a", else=1) | sort(x)', "kusto",
         "`extend x = iff(ProcessId > 1, \"a\", 1) | sort by x`: KS116 (dynamic)"),
    Case("kql-retyped-column", PREFIX + 'SHA256HashData := 1 | in(SHA256HashData, values=["1"], ignoreCase=true)',
         "kusto", "`extend SHA256 = 1 | where SHA256 in~ (\"1\")`: KS107"),
    Case("kql-text-on-long", PREFIX + 'RawProcessId="a b" or in(RawProcessId, values=["*.exe", "x"], ignoreCase=true)',
         "kusto", "a number column against text that spells no integer: `ProcessId =~ \"x\"`: KS106"),
    Case("kql-depth", PREFIX + "x := " + "lower(" * 130 + "CommandLine" + ")" * 130, "kusto",
         "130 nested tolower(): KS245 (Kusto's depth limit)"),
    Case("kql-unmapped-selectlast", PREFIX + "groupBy([UserName], function=[selectLast(text:contains)])", "kusto",
         "selectLast() of a field the table lacks: the KQL named the missing column (KS142)"),
    Case("prefilter-global-aggregate", "Mac | stats([count(), sum(e)])", "prefilter",
         "a global count is a row even when no event passes: the check compared single events"),
    Case("kql-dead-strict-extract", PREFIX + "select(SHA256HashData) | ParentBaseFileName = /(?<grp>x)/ | grp = y",
         "kusto", "a named-group regex on a field a projection removed: `where false` and no `grp` column, "
         "which the next test names (KS142)"),
    Case("cql-lone-opaque-test", "event_platform=x\ne()", "cql-output",
         "an unknown function left alone in a filter once the platform moves to the source: `| e()` "
         "reads back as a stage of its own"),
    Case("sigma-correlation-output", "event_simpleName=ProcessRollup2 | case { d=1 } | top(e)", "sigma-output",
         "top() becomes a Sigma correlation rule, which the check took for an error"),
    Case("spl-tag-only-table", 'table("#", limit="5", type=number)', "spl-output",
         "a table of one LogScale tag: `| table ` once tags were refused on raw FDR (its column now stays empty)"),
    Case("kql-unmapped-only-select", PREFIX + "select([nosuch])", "kusto",
         "a selection of fields the table lacks: `| project ` with no column"),
    Case("spl-appendpipe", "groupBy([e])|[sum(t),sort()]", "spl-output",
         "stats() with a sort(): the lexical SPL check took appendpipe's [subpipeline] for a stray '['"),
    Case("prefilter-totals-without-groups", "ame|table(c)|[count(),sort(e)]", "prefilter",
         "stats() with a sort() after a projection is a row even over no events: the check compared single "
         "events (seed 229)"),
)


@functools.cache
def _kusto_failures() -> dict[str, list[Failure]]:
    """Kusto.Language on every pinned KQL case at once (one Node start), by case text."""
    pairs = [(case.text, kql) for case in KNOWN_CASES if case.target == "kusto"
             for kql in check_text(case.text, policies=("error",), matcher=False, targets=("kql",)).kql]
    found: dict[str, list[Failure]] = {}
    for failure in check_kusto(pairs):
        found.setdefault(failure.text, []).append(failure)
    return found


def run_case(case: Case) -> list[Failure]:
    """The failures of one pinned case (empty once fixed)."""
    if case.target == "kusto":
        return _kusto_failures().get(case.text, [])
    events = [case.event] if case.event is not None else list(FIXED_EVENTS)
    outcome = check_text(case.text, events)
    return [f for f in outcome.failures if f.target == case.target]


#: Known cases fixed since they were found: they now run as ordinary regression tests.
FIXED = frozenset({
    "regex-unicode-flag",
    "kql-in-on-long",
    "spl-empty-table-name",
    "kql-retyped-column",
    "limit-huge",
    "or-chain",
    "implicit-and-chain",
    "bang-chain",
    "sum-chain",
    "python-sum-200",
    "python-lower-199",
    "limit-superscript",
    "inf-compare",
    "nan-compare",
    "sigma-inf",
    "kql-inf",
    "spl-not-star",
    "python-sort-in-case",
    "python-nested-case",
    "sigma-cmp-ne",
    "sigma-field-pipe",
    "sigma-identifier",
    "spl-field-backslash",
    "spl-empty-in",
    "spl-empty-table",
    "runtime-overflow",
    "prefilter-exponent",
    "kql-empty-in",
    "kql-string-arith",
    "kql-string-test-on-long",
    "sigma-deep-condition",
    "kql-string-order",
    "kql-newline-name",
    "kql-literal-arith",
    "kql-mixed-compare",
    "kql-projected-away",
    "kql-mixed-iff",
    "kql-depth",
    "kql-text-on-long",
    "kql-unmapped-selectlast",
    "prefilter-global-aggregate",
    "sigma-correlation-output",
    "cql-lone-opaque-test",
    "kql-dead-strict-extract",
    "spl-tag-only-table",
    "kql-unmapped-only-select",
    "spl-appendpipe",
    "prefilter-totals-without-groups",
})


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=() if c.name in FIXED else
                                               pytest.mark.xfail(strict=True, reason=c.reason))
                                  for c in KNOWN_CASES])
def test_known_failure_is_fixed(case: Case) -> None:
    if case.target == "kusto":
        from tests.conftest import require_kusto

        require_kusto()
    failures = run_case(case)
    assert not failures, describe(failures)


# ================================================================ the command line

CLI_INPUTS: tuple[tuple[str, bytes], ...] = (
    ("hostile.cql", (PREFIX + 'CommandLine="\\") or true or (\\"" | x := "`$(id)`;\x00"').encode()),
    ("regex.cql", (PREFIX + "CommandLine=/(?<=a)[/i | ImageFileName=/\\x{41}/").encode()),
    ("unterminated.cql", b'CommandLine="abc'),
    ("binary.cql", bytes(range(256))),
    ("latin1.cql", "CommandLine=caf\xe9".encode("latin-1")),
    ("bom.cql", "\ufeff".encode() + PREFIX.encode() + b"CommandLine=x"),
    ("empty.cql", b""),
    ("deep.cql", (PREFIX + "(" * 5000 + "a" + ")" * 5000).encode()),
    ("card.yml", b"title: t\nquery: [1, 2]\n"),
    ("card2.yml", b"query: |\n  " + PREFIX.encode() + b"CommandLine=\"\\u0000\"\n"),
    ("badyaml.yml", b"query: \"unterminated\n  : - ["),
    ("list.yml", b"- a\n- b\n"),
    ("anchor.yml", b"a: &x [*x]\nquery: x\n"),
    ("package.yml", b"name: p\nsearch: {queryString: 42}\n"),
)


CLI_KNOWN: tuple[tuple[str, bytes, str], ...] = (
    ("or-chain.cql", _chain(600, "CommandLine=x", " or ").encode(), "internal error: RecursionError (exit 3)"),
    ("limit.cql", 'sort(x, limit="\u00b2")'.encode(), "internal error: ValueError from int() (exit 3)"),
)


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m cqlx ARGS``: no traceback and no internal error, whatever the input."""
    result = subprocess.run([sys.executable, "-m", "cqlx", *args], capture_output=True, timeout=120, cwd=ROOT,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    out = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in out and "internal error" not in out, out
    assert result.returncode in (0, 1, 2), out
    return result


def _cli_convert(path: Path) -> None:
    _cli("convert", str(path), "--to", "kql")


@pytest.mark.parametrize(("name", "content"), CLI_INPUTS, ids=[n for n, _ in CLI_INPUTS])
def test_cli_convert_never_prints_a_traceback(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    _cli_convert(path)


@pytest.mark.parametrize(("name", "content"), [
    pytest.param(n, c, id=n) for n, c, _ in CLI_KNOWN])  # all fixed: regression tests now
def test_cli_known_internal_errors_are_fixed(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    _cli_convert(path)


def _line(image: bytes, command: bytes, extra: bytes = b"") -> bytes:
    """One raw NDJSON line of a ProcessRollup2 event, the JSON of its values written as given."""
    head = b'{"#event_simpleName":"ProcessRollup2","ImageFileName":'
    return head + image + b',"CommandLine":' + command + extra + b"}"


HOSTILE_LINES: tuple[bytes, ...] = (
    _line(b'"/usr/bin/docker"', b'"docker run --privileged"'),
    _line(b'"/usr/bin/d\\u006fcker"', b'"docker exec -it c"'),  # a \u escape spells a literal
    _line(b'"\\/usr\\/bin\\/docker"', b'"kubectl get secrets"'),  # JSON's \/ escape
    _line(b'"/usr/bin/docker"', b"NaN"),
    _line(b'"/usr/bin/docker"', b"1e999"),
    _line(b'"/usr/bin/docker"', b"1" * 5000),
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": "\xff\xfe"}',
    b"\x00\x00",
    _line(b'"/usr/bin/DOCKER"', b'"DOCKER RUN --PRIVILEGED"'),
    _line(b'"/usr/bin/docker"', b'"docker\\nrun --pid=host"'),
    _line(b'"/x/docker"', b'"docker run"', b',"CommandLine":"nsenter"'),  # a repeated key
    b'"just a string"',
    _line(b'"/usr/bin/docker"', b'["docker run"]'),
)


def _run_both(tmp_path: Path, rule: str, lines: Sequence[bytes]) -> None:
    """`cqlx run` gives the same rows with and without the literal prefilter, and never crashes."""
    rule_path, events = tmp_path / "rule.cql", tmp_path / "events.ndjson"
    rule_path.write_text(rule, encoding="utf-8")
    events.write_bytes(b"\n".join(lines) + b"\n")
    fast = _cli("run", str(rule_path), str(events), "--format", "jsonl")
    slow = _cli("run", str(rule_path), str(events), "--format", "jsonl", "--no-prefilter")
    assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
    assert fast.stdout == slow.stdout


def test_cli_run_on_hostile_event_lines(tmp_path: Path, seed_text: str) -> None:
    _run_both(tmp_path, seed_text, HOSTILE_LINES)


@pytest.mark.parametrize(("rule", "lines"), [
    pytest.param("case { case { * } }", [b'{"a": 1}'], id="nested-case"),
    pytest.param(PREFIX + "x := RawProcessId / 3", [b'{"#event_simpleName":"ProcessRollup2","RawProcessId":"'
                                                    + b"1" * 400 + b'"}'], id="overflow"),
    pytest.param(PREFIX + 'CommandLine = "10000000000000000"',
                 [b'{"#event_simpleName":"ProcessRollup2","CommandLine":1e16}'], id="prefilter-exponent"),
])
def test_cli_run_known_failures_are_fixed(tmp_path: Path, rule: str, lines: list[bytes]) -> None:
    _run_both(tmp_path, rule, lines)


# ================================================================ injection through names

@pytest.mark.parametrize("query", [
    pytest.param(PREFIX + '"CommandLine|contains"="x"', id="pipe"),
    pytest.param(PREFIX + '""="x"', id="empty"),
])
def test_sigma_field_name_stays_a_field_name(query: str) -> None:
    """A field name is a field name in Sigma too, or the conversion is refused."""
    from sigma.collection import SigmaCollection
    from sigma.rule import SigmaRule

    try:
        out = cqlx.convert(query, to="sigma")
    except CqlError:
        return
    rules = [rule for rule in SigmaCollection.from_yaml(out) if isinstance(rule, SigmaRule)]
    fields = {getattr(item, "field", "?") for rule in rules for detection in rule.detection.detections.values()
              for item in detection.detection_items}
    name = query[len(PREFIX):].split("=")[0].strip('"')
    assert fields == {name}, out


def test_spl_refuses_a_regex_no_engine_accepts() -> None:
    """/[/ is refused for Python, Sigma and KQL; SPL passes it to Splunk."""
    with pytest.raises(CqlError):
        cqlx.convert(PREFIX + "CommandLine=/[/", to="spl")


def test_spl_field_name_cannot_open_a_quote() -> None:
    try:
        out = cqlx.convert(PREFIX + r'"a\\" := 1 | b := "x' + "'" + ' | delete "', to="spl")
    except CqlError:
        return
    check_spl(out)


def load_seed() -> str:
    """The seed query (for scripts that run without pytest's fixtures)."""
    from cqlx.rules import load_rule

    return load_rule(SEED_CARD).text


def test_the_scoring_check_sees_a_score_that_differs_from_its_assignments() -> None:
    from cqlx.api import compile_query

    text = ('#event_simpleName=ProcessRollup2 | F := if(CommandLine = /a/, "YES", "NO") '
            "| W := if(CommandLine = /a/, 3, 0) | S := W")
    check_scoring(compile_query(cqlx.parse(text), text), text, FIXED_EVENTS)  # the same rows
    wrong = text.replace("3, 0", "2, 0")  # as if the scoring IR had the other weight
    with pytest.raises(OutputError, match="the scoring IR changes the rows"):
        check_scoring(compile_query(cqlx.parse(wrong), wrong), text,
                      [*FIXED_EVENTS, {"#event_simpleName": "ProcessRollup2", "CommandLine": "a"}])


def test_the_scoring_check_reads_events_as_sets_of_fields() -> None:
    """Found by CI: with no select(), the scored matcher writes each flag beside its weight and the
    plain one every flag first; the rows hold the same fields and values."""
    from cqlx.api import compile_query

    text = ('#event_simpleName=ProcessRollup2 | F := if(CommandLine = /a/, "YES", "NO") '
            '| G := if(CommandLine = /b/, "YES", "NO") | W := if(CommandLine = /a/, 3, 0) '
            "| V := if(CommandLine = /b/, 1, 0)")
    compiled = compile_query(cqlx.parse(text), text)
    assert any(isinstance(step, ir.Signal) for step in compiled.query.steps)
    event = {"#event_simpleName": "ProcessRollup2", "CommandLine": "ab"}
    (row,) = compiled.run([dict(event)])
    assert list(row)[-4:] == ["F", "W", "G", "V"]  # the order the check must not compare
    check_scoring(compiled, text, [*FIXED_EVENTS, event])

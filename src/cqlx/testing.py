"""``cqlx test``: run each rule's tests on the Python matcher (the reference semantics), then the same
events through every executable form of the rule on a real engine, and compare per event.

Engines: the standalone module written by ``--to python`` imported fresh; the KQL on duckdb-kql
(events loaded as the profile's table rows) and through Microsoft's Kusto parser; the Sigma rules on
pySigma's sqlite backend (events renamed to the Sigma taxonomy, each severity tier a rule); the
SPL on cqlx's SPL oracle (no offline Splunk exists). A disagreement names the rule, the target, the
event and both results. Output values are compared for the fields the rule computes (flags, score,
severity), which keep their names on every target.
"""

from __future__ import annotations

import importlib.util
import json
import math
import string
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cqlx import ir
from cqlx.api import Matcher, compile_query
from cqlx.ast import Span
from cqlx.conversion import convert_query
from cqlx.emit.base import PRESENTATION
from cqlx.emit.kql import WHOLE_NUMBER
from cqlx.errors import CqlError, RuleFileError
from cqlx.frozen import Frozen, record
from cqlx.passes import nested_steps, step_reads, step_writes
from cqlx.rules import Rule

if TYPE_CHECKING:
    from cqlx.profiles import EventType, Profile

TARGETS = ("python-module", "kql-duckdb", "kql-parser", "sigma-sqlite", "spl-oracle")


@record
class Case(Frozen):
    """One event to run, with what the rule card expects of it (None: no expectation)."""

    name: str
    event: dict[str, Any]
    match: bool | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    # For a rule that aggregates: the events run as one stream (``event`` then shows them); the
    # verdict is the group rows, and ``expect`` holds when one row has every expected value.
    stream: tuple[dict[str, Any], ...] = ()


@record
class Verdict(Frozen):
    matched: bool
    fields: dict[str, Any] = field(default_factory=dict)
    rows: tuple[dict[str, Any], ...] = ()
    # A rule that makes a row of each regex match (regex(repeat=true)): the fields of every row
    # one event gives, compared as a multiset (``fields`` is then empty: the rows' order is not).
    each: tuple[dict[str, Any], ...] = ()

    def show(self) -> str:
        if not self.matched:
            return "no match"
        if self.each:
            return f"{len(self.each)} rows " + json.dumps(list(self.each), sort_keys=True, default=str)
        return "match " + json.dumps(self.fields, sort_keys=True, default=str) if self.fields else "match"


@record
class Finding(Frozen):
    """A failed expectation or a disagreement between an engine and the reference."""

    rule: str
    target: str
    case: str
    message: str
    line: int = 0
    event: dict[str, Any] | None = None


@dataclass
class Report:
    rules: list[str] = field(default_factory=list)
    # (rule, target) → number of events compared, or a reason the target was skipped
    checked: dict[tuple[str, str], int | str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


# ---------------------------------------------------------------- cases from rule cards


def _lines_of_tests(text: str) -> list[int]:
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return []
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "tests" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def card_cases(rule: Rule, query: ir.Query) -> list[Case]:
    """The ``tests:`` of a rule card, validated: file and line on every error."""
    raw = rule.card.get("tests")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RuleFileError("tests: must be a list", filename=rule.path)
    lines = _lines_of_tests(Path(rule.path).read_text(encoding="utf-8")) if Path(rule.path).is_file() else []
    outputs = output_fields(query)
    cases: list[Case] = []
    for index, item in enumerate(raw):
        line = lines[index] if index < len(lines) else 0
        where = Span(line, 1, line, 2)

        def fail(message: str, where: Span = where) -> RuleFileError:
            return RuleFileError(message, where, filename=rule.path)

        if not isinstance(item, dict):
            raise fail("each test is a mapping with name, event (or events) and match/expect")
        name = str(item.get("name") or f"test {index + 1}")
        expect = item.get("expect") or {}
        if not isinstance(expect, dict):
            raise fail(f"test {name!r}: expect must map output fields to values")
        unknown = sorted(str(k) for k in expect if outputs is not None and k not in outputs)
        if unknown:
            raise fail(f"test {name!r} expects {', '.join(unknown)}, which the rule never outputs "
                       f"(it outputs {', '.join(sorted(outputs or ()))})")
        match = item.get("match")
        if match is not None and not isinstance(match, bool):
            raise fail(f"test {name!r}: match must be true or false")
        if expect and match is None:
            match = True
        events: list[dict[str, Any]]
        if "event" in item:
            if not isinstance(item["event"], dict):
                raise fail(f"test {name!r}: event must be a JSON/YAML object")
            events = [item["event"]]
        elif isinstance(item.get("events"), list):
            events = item["events"]
            if not all(isinstance(e, dict) for e in events):
                raise fail(f"test {name!r}: each of events: must be a JSON/YAML object")
        elif "events" in item:
            path = Path(rule.path).parent / str(item["events"])
            try:
                events = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
            except (OSError, ValueError) as error:
                raise fail(f"test {name!r}: cannot read events file {path}: {error}") from None
            if not all(isinstance(e, dict) for e in events):
                raise fail(f"test {name!r}: every line of {path} must be a JSON object")
        else:
            raise fail(f"test {name!r} has no event: or events:")
        if aggregates(query):
            cases.append(Case(name, {"events": events}, match, dict(expect), line, tuple(events)))
            continue
        for number, event in enumerate(events, start=1):
            label = name if len(events) == 1 else f"{name} #{number}"
            cases.append(Case(label, event, match, dict(expect), line))
    return cases


#: The first witness's time in a stream (2024-01-02T03:04:05Z), in LogScale's epoch milliseconds.
STREAM_START = 1_704_164_645_000


def witness_stream(query: ir.Query, events: Iterable[dict[str, Any]]) -> Case:
    """For a rule that aggregates: its witness events of the rule's event types as one stream, the
    first three of them twice, so some group counts more than one event (an event of a type the
    target has no table for would keep the whole stream from being compared there). Every
    LogScale event has an ``@timestamp``: one that lacks it gets one, a second after the one
    before, so "the most recent event" (``selectLast()``) is the same one on every engine."""
    from cqlx.reshape import event_type_of

    kept = tuple(e for e in events if not query.source.event_types or event_type_of(e) in query.source.event_types)
    stream = kept + kept[:3]
    return Case("witness stream", {}, stream=tuple(
        e if "@timestamp" in e else {**e, "@timestamp": STREAM_START + 1000 * i} for i, e in enumerate(stream)))


def repeats(query: ir.Query) -> bool:
    """Whether one event can give the rule several rows (``regex(repeat=true)``): its verdicts
    then hold every row (:func:`_event_verdict`)."""
    return any(isinstance(s, ir.Extract) and s.each for s in query.steps)


def aggregates(query: ir.Query) -> bool:
    """Whether the rule groups events, or computes over all of them (``stats()`` with a sort():
    a row even over none): its tests then run their events as one stream."""
    return any(isinstance(s, ir.Aggregate | ir.Totals) for s in query.steps)


def output_fields(query: ir.Query) -> frozenset[str] | None:
    """The fields rows carry (the last projection or aggregation), or None when the rule keeps
    every field."""
    from cqlx.api import output_fields as ordered

    fields = ordered(query)
    return frozenset(fields) if fields is not None else None


def computed_outputs(query: ir.Query) -> tuple[str, ...]:
    """The fields the rule computes and outputs: compared on every target."""
    written: list[str] = []
    for step in query.steps:
        written += [f for f in sorted(step_writes(step)) if f not in written]
    outputs = output_fields(query)
    return tuple(f for f in written if outputs is None or f in outputs)


# ---------------------------------------------------------------- engines


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _verdict(row: Mapping[str, Any] | None, fields: tuple[str, ...]) -> Verdict:
    if row is None:
        return Verdict(False)
    return Verdict(True, {f: row[f] for f in fields if f in row and row[f] is not None})


def _event_verdict(rows: list[dict[str, Any]], fields: tuple[str, ...], each: bool) -> Verdict:
    """One event's verdict from the rows a target gives for it: the first row's fields, or with
    ``each`` (:func:`repeats`) the fields of every row."""
    if not each:
        return _verdict(rows[0] if rows else None, fields)
    return Verdict(bool(rows), each=tuple(_verdict(row, fields).fields for row in rows))


def _canonical(value: Any) -> Any:
    """A value as rows are compared: a number, or the text of a number, as the number (LogScale's
    values are text: a group key "443" is the 443 a typed column holds; :func:`_same` compares
    single values so too), anything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return str(value)
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return str(value)
    return int(number) if number.is_integer() else round(number, 9)


def _rows_verdict(rows: list[dict[str, Any]]) -> Verdict:
    """The group rows of a stream: compared by their values in column order (keys, then the
    functions' outputs, on every target; column names differ between targets), without values a
    group has none of (missing in the matcher, null or NaN in KQL, an empty string: Defender stores
    a missing string as "", and so is ``collect()`` of no values there)."""
    shown = sorted((tuple(_canonical(v) for v in row.values() if v is not None and v == v and v != "")
                    for row in rows),
                   key=repr)
    return Verdict(bool(rows), {"rows": json.dumps(shown)}, tuple(rows))


def reference(query: ir.Query, text: str, cases: list[Case], matcher: Matcher | None = None) -> list[Verdict]:
    """The Python matcher's verdict on each case (``matcher``: the query already compiled)."""
    matcher = matcher or compile_query(query, text)
    fields, each = computed_outputs(query), repeats(query)
    return [_rows_verdict(matcher.run([dict(e) for e in c.stream])) if c.stream else
            _event_verdict(matcher.run([dict(c.event)]), fields, each) for c in cases]


def python_module(query: ir.Query, rule: Rule, cases: list[Case]) -> list[Verdict]:
    source = convert_query(query, "python", None, rule.meta, rule.text).output
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cqlx_rule_under_test.py"
        path.write_text(source, encoding="utf-8")
        name = f"cqlx_rule_under_test_{abs(hash(source))}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules.pop(name, None)
    fields, each = computed_outputs(query), repeats(query)
    return [_rows_verdict(module.run([dict(e) for e in c.stream])) if c.stream else
            _event_verdict(module.run([dict(c.event)]), fields, each) for c in cases]


class KqlEngineGap(CqlError):
    """KQL Kusto runs that duckdb-kql does not (a function it has not mapped, such as
    ``ipv4_is_in_any_range()``): the kql-duckdb engine has nothing to say; Kusto.Language still
    checks the text (the kql-parser target)."""


def collected(query: ir.Query) -> dict[str, str]:
    """The fields ``collect()`` writes, with the separator that joins their values."""
    return {f.output: f.separator for step in nested_steps(query.steps) if isinstance(step, ir.Aggregate)
            for f in step.functions if f.name == "collect" and f.separator}


def _sorted_again(row: dict[str, Any], joined: Mapping[str, str]) -> dict[str, Any]:
    """duckdb-kql's ``array_sort_asc`` sorts an array's strings by their JSON text, quotes included
    (``"a b"`` before ``"a"``, as a space is below the closing quote), where Kusto sorts the
    strings: the values cqlx's KQL sorted and joined (``collect()``) are put in the strings' order."""
    out = dict(row)
    for name, separator in joined.items():
        value = out.get(name)
        if isinstance(value, str):
            out[name] = separator.join(sorted(value.split(separator)))
    return out


def run_kql_text(kql: str, cases: list[Case], fields: tuple[str, ...], profile: str | None = None,
                 joined: Mapping[str, str] | None = None, each: bool = False) -> list[Verdict]:
    """KQL on duckdb-kql, one event at a time (loaded as a row of its table in the profile).
    ``joined``: the fields whose values cqlx's KQL sorted and joined (:func:`collected`);
    ``each``: every row an event gives is compared (:func:`repeats`)."""
    from cqlx.engines.duckdb_kql import run_kql
    from cqlx.profiles import DEFAULT_PROFILE, load_profile
    from cqlx.reshape import to_tables

    chosen = load_profile(profile or DEFAULT_PROFILE["kql"])
    verdicts = []
    for case in cases:
        try:
            rows = run_kql(kql, to_tables(list(case.stream) or [case.event], chosen))
        except CqlError:
            raise
        except Exception as error:
            # duckdb-kql's own gaps: a construct it has not mapped, and two columns whose names differ
            # only in case (FileName beside a rule's fileName), which KQL keeps apart and DuckDB
            # cannot (its rule R7). Anything else is the KQL's fault.
            gap = type(error).__name__ == "KqlUnsupportedError" or (
                type(error).__name__ == "KqlSchemaError" and "differ only in case" in str(error))
            if not gap:
                raise CqlError(f"the KQL does not run on duckdb-kql: {error}") from None
            raise KqlEngineGap(f"duckdb-kql does not run it ({error}); Kusto.Language checks it") from None
        if joined:
            rows = [_sorted_again(row, joined) for row in rows]
        verdicts.append(_rows_verdict(rows) if case.stream else _event_verdict(rows, fields, each))
    return verdicts


def run_sigma_text(sigma: str, cases: list[Case], event_types: tuple[str, ...], profile: str | None = None,
                   platforms: tuple[str, ...] = (), typeless: EventType | None = None
                   ) -> tuple[list[str], list[set[int]]]:
    """Sigma rules on pySigma's sqlite backend: each rule's title and the cases it selects. The
    logsource (category and product) is the data set: only events of the rule's event types, and of
    its platforms when it names some (``product: windows`` reads Windows events), are records.
    ``typeless``: what an event that names no type is read as (:func:`read_as`)."""
    from cqlx.engines.sigma_sqlite import run_sigma

    kept, present = _sigma_records([c.event for c in cases], event_types, profile, platforms, typeless)
    try:
        results = run_sigma(sigma, present) if kept else []
    except Exception as error:
        raise CqlError(f"the Sigma does not load or run in pySigma: {error}") from None
    return [t for t, _ in results], [{kept[h] for h in hits} for _, hits in results]


def _sigma_records(events: list[dict[str, Any]], event_types: tuple[str, ...], profile: str | None,
                   platforms: tuple[str, ...], typeless: EventType | None) -> tuple[list[int], list[dict[str, Any]]]:
    """The events that are records of the Sigma's logsource (of the rule's event types, and of its
    platforms when it names some), as the profile's records: their indices, and the records."""
    from cqlx.profiles import load_profile
    from cqlx.reshape import to_records

    records = [_whole_numbers(r) for r in to_records(events, load_profile(profile or "sigma"), event_types, typeless,
                                                       passthrough=True)]
    if platforms:
        records = [r if r is not None and _platform(e) in platforms else None for r, e in zip(records, events,
                                                                                            strict=True)]
    kept = [i for i, r in enumerate(records) if r is not None]
    return kept, [r for r in records if r is not None]


def _whole_numbers(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A record for pySigma's sqlite backend with each value that spells a whole number (``"84"``,
    as Falcon's JSON gives numbers) stored as one. SQLite orders any text above any number, so
    ``RequestType|lt: 85`` was false for ``"84"``, where a SIEM compares the number; a field the
    profile types is already one, a field it passes through was not. Text tests read the value as
    the same text (GLOB, LIKE and the regexp function convert it back), so only canonical spellings
    are converted (``"084"`` stays text)."""
    if record is None:
        return None
    return {k: int(v) if isinstance(v, str) and WHOLE_NUMBER.fullmatch(v) else v for k, v in record.items()}


def run_spl_text(spl: str, cases: list[Case], fields: tuple[str, ...], profile: str | None = None,
                 each: bool = False) -> list[Verdict]:
    """SPL on cqlx's SPL oracle, each event as the profile's data holds it: as Splunk's FDR add-on
    indexes it (profile splunk), or as a CIM data model's dataset returns it, its fields named
    with the dataset's prefix (``Processes.process``; splunk-cim)."""
    from cqlx.profiles import load_profile
    from cqlx.reshape import event_type_of, to_records
    from cqlx.spl_oracle import run_spl

    chosen = load_profile(profile or "splunk")
    verdicts = []
    for case in cases:
        events = list(case.stream) or [case.event]
        records = [_prefixed(r, chosen.event_type(event_type_of(e) or "")) for e, r in
                   zip(events, to_records(events, chosen), strict=True) if r is not None]
        if not records and not case.stream:
            verdicts.append(Verdict(False))
            continue
        rows = run_spl(spl, [{**record, "sourcetype": "crowdstrike:events:sensor"} for record in records])
        verdicts.append(_rows_verdict(rows) if case.stream else _event_verdict(rows, fields, each))
    return verdicts


def _prefixed(record: dict[str, Any], event_type: EventType | None) -> dict[str, Any]:
    """A record of a CIM dataset (``| datamodel M D search``): its fields named with the dataset's
    prefix, Splunk's own fields (``_time``, ``host``...) without (Search Reference, datamodel)."""
    from cqlx.emit.spl import dataset_field

    prefix = event_type.prefix if event_type is not None else ""
    return {dataset_field(prefix, k): v for k, v in record.items()} if prefix else record


def kql_duckdb(query: ir.Query, rule: Rule, cases: list[Case], profile: str | None = None) -> list[Verdict]:
    kql = convert_query(query, "kql", profile, rule.meta, rule.text).output
    return run_kql_text(kql, cases, computed_outputs(query), profile, collected(query), repeats(query))


def lookup_schema(query: ir.Query) -> dict[str, list[tuple[str, str]]]:
    """The tables the KQL of a query's ``match()`` stages reads (a profile whose ``lookup_table``
    is ``{name}``), with the columns it names, as strings: what Kusto.Language needs to know of
    them. A watchlist (``_GetWatchlist()``) is a function the check does not know."""
    from cqlx.api import lookup_files

    tables: dict[str, list[tuple[str, str]]] = {}
    for step in lookup_files(query):
        columns = tables.setdefault(step.stem, [])
        for column in (*step.columns, *(step.include or ())):
            if (column, "string") not in columns:
                columns.append((column, "string"))
    return tables


def kql_parser(query: ir.Query, rule: Rule, profile: str | None = None) -> list[str]:
    from cqlx.engines.kusto_language import analyze
    from cqlx.profiles import DEFAULT_PROFILE, load_profile

    kql = convert_query(query, "kql", profile, rule.meta, rule.text).output
    tables = {n: list(c) for n, c in load_profile(profile or DEFAULT_PROFILE["kql"]).tables.items()}
    tables.update(lookup_schema(query))
    (diagnostics,) = analyze([kql], tables)
    return [f"{d.code} at offset {d.start}: {d.message}" for d in diagnostics if d.severity == "Error"]


def _platform(event: dict[str, Any]) -> Any:
    return event.get("event_platform", event.get("#event_platform"))


def sigma_sqlite(query: ir.Query, rule: Rule, cases: list[Case]) -> list[Verdict]:
    """The base rule says whether an event matches; the tier rule that fires says its severity."""
    sigma = convert_query(query, "sigma", None, rule.meta, rule.text).output
    read = read_as(query, "sigma-sqlite")
    titles, hits = run_sigma_text(sigma, cases, query.source.event_types, platforms=query.source.platforms,
                                  typeless=read if read is not None and read.native else None)
    ladder = next((s for s in query.steps if isinstance(s, ir.Ladder)), None)
    verdicts = []
    for index in range(len(cases)):
        matched = bool(hits) and index in hits[0]
        fields: dict[str, Any] = {}
        if matched and ladder is not None:
            tiers = [t for t, h in zip(titles[1:], hits[1:], strict=True) if index in h]
            fields[ladder.field] = tiers[0].rsplit(" - ", 1)[-1] if len(tiers) == 1 else \
                f"<{len(tiers)} tier rules matched>"
        verdicts.append(Verdict(matched, fields))
    return verdicts


def _group_query(query: ir.Query) -> tuple[ir.Query, ir.Aggregate] | None:
    """The rule up to the groups a Sigma correlation fires for: its aggregation and the steps after
    it that decide or compute on the group rows, without those that only show or order them
    (the correlation's description says them). None when a step after it rewrites a key, which
    makes other groups of the same events."""
    index = next((i for i, s in enumerate(query.steps) if isinstance(s, ir.Aggregate)), None)
    if index is None:  # rows over all events without a grouping (stats() with a sort()): no groups
        return None
    aggregate = query.steps[index]
    assert isinstance(aggregate, ir.Aggregate)
    after = [s for s in query.steps[index + 1:] if not isinstance(s, ir.Project | ir.Order | ir.Drop)]
    if any(set(step_writes(s)) & set(aggregate.keys) for s in after):
        return None
    return replace(query, steps=(*query.steps[:index + 1], *after)), aggregate


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _ascii_lower(value: Any) -> Any:
    """A value as SQLite's lower() folds it (ASCII letters only), as pySigma's sqlite backend groups."""
    return value.translate(_ASCII_LOWER) if isinstance(value, str) else value


def _groups_verdict(keys: list[tuple[Any, ...]]) -> Verdict:
    shown = sorted({json.dumps([_canonical(v) for v in key]) for key in keys})
    return Verdict(bool(keys), {"groups": "; ".join(shown)})


def sigma_correlation(query: ir.Query, rule: Rule, cases: list[Case]) -> list[tuple[Verdict, Verdict] | None]:
    """For each case (a stream of events), the groups the reference's aggregation keeps and the
    groups the Sigma correlation rule fires for on pySigma's sqlite backend, each named by its key
    values; None for a case the backend cannot judge: two of its key values differ only in
    ASCII letter case, which the backend groups together (``lower()``) and LogScale apart.

    The backend says which events each alert counted; their keys (as the reference computes
    them before the aggregation) name the group. An alert that counts an event the reference
    drops, or events of two groups, is named so, and differs."""
    from cqlx.engines.sigma_sqlite import run_sigma_correlation

    found = _group_query(query)
    assert found is not None
    grouped, aggregate = found
    before = replace(query, steps=query.steps[:query.steps.index(aggregate)])
    prefix, groups = compile_query(before, rule.text), compile_query(grouped, rule.text)
    sigma = convert_query(query, "sigma", None, rule.meta, rule.text).output
    read = read_as(query, "sigma-sqlite")
    typeless = read if read is not None and read.native else None
    out: list[tuple[Verdict, Verdict] | None] = []
    for case in cases:
        events = [dict(e) for e in (case.stream or (case.event,))]
        rows = [prefix.match(dict(e)) for e in events]
        keys = [tuple(row.get(k) for k in aggregate.keys) if row is not None else None for row in rows]
        distinct = {k for k in keys if k is not None}
        if len({tuple(_ascii_lower(v) for v in k) for k in distinct}) != len(distinct):
            out.append(None)
            continue
        want = [tuple(row.get(k) for k in aggregate.keys) for row in groups.run([dict(e) for e in events])]
        kept, present = _sigma_records(events, query.source.event_types, None, query.source.platforms, typeless)
        try:
            alerts = run_sigma_correlation(sigma, present) if kept else []
        except Exception as error:
            raise CqlError(f"the Sigma does not load or run in pySigma: {error}") from None
        got: list[tuple[Any, ...]] = []
        for alert in alerts:
            counted = [keys[kept[i]] for i in alert]
            named = {k for k in counted if k is not None}
            if len(named) < len(set(counted)):
                got.append(("<an event the reference drops before the aggregation>",))
            elif len(named) > 1:
                got.append((f"<events of {len(named)} groups counted as one>",))
            else:
                got.extend(named)
        out.append((_groups_verdict(want), _groups_verdict(got)))
    return out


def spl_oracle(query: ir.Query, rule: Rule, cases: list[Case], profile: str | None = None) -> list[Verdict]:
    spl = convert_query(query, "spl", profile, rule.meta, rule.text).output
    return run_spl_text(spl, cases, computed_outputs(query), profile, repeats(query))


# ---------------------------------------------------------------- the run


def _compare(expected: Verdict, got: Verdict, only: Iterable[str] | None = None, every: bool = True) -> str | None:
    """What differs between two verdicts (None: nothing). ``every``: a value one side has and the
    other lacks differs too (a conversion of the rule writes every field the rule computes); off
    for a rule written by hand, which may output only some of them. An empty string is no value
    (Defender stores a missing string as "")."""
    if expected.matched != got.matched:
        return f"reference says {expected.show()}, target says {got.show()}"
    if not expected.matched:
        return None
    if expected.each and got.each:
        return _compare_each(expected.each, got.each, only, every)
    if expected.each or got.each:  # a target that says only whether an event matches (Sigma): each row
        many, one = (expected, got) if expected.each else (got, expected)
        return next((p for p in (_compare(Verdict(True, row), one, only, every) for row in many.each) if p), None)
    if only is not None:
        keys = set(only)
    elif every:
        keys = set(expected.fields) | set(got.fields)
    else:
        keys = set(expected.fields) & set(got.fields)
    for key in sorted(keys):
        want, have = expected.fields.get(key), got.fields.get(key)
        if want in (None, "") and have in (None, ""):
            continue
        if want is None or have is None or not _same(want, have):
            return f"{key}: reference {want!r}, target {have!r}"
    return None


def _compare_each(expected: tuple[dict[str, Any], ...], got: tuple[dict[str, Any], ...],
                  only: Iterable[str] | None, every: bool) -> str | None:
    """:func:`_compare` for the rows of one event (:func:`repeats`): the same rows, in any order,
    each with the same values (an empty string is no value), of the fields ``only`` names, or of
    every field (``every``), or of those both sides have."""
    if only is not None:
        keys = set(only)
    else:
        seen = [set().union(*(r for r in side)) for side in (expected, got)]
        keys = seen[0] | seen[1] if every else seen[0] & seen[1]

    def rows(side: tuple[dict[str, Any], ...]) -> list[str]:
        return sorted(json.dumps({k: _canonical(v) for k, v in row.items() if k in keys and v not in (None, "")},
                                 sort_keys=True) for row in side)

    want, have = rows(expected), rows(got)
    return None if want == have else f"rows: reference {want}, target {have}"


#: An engine runs a rule's cases: (query, rule, cases, the profile of its language or None).
Engine = Callable[[ir.Query, Rule, list[Case], "str | None"], list[Verdict]]


def _engines() -> dict[str, Engine]:
    return {"python-module": lambda query, rule, cases, _: python_module(query, rule, cases),
            "sigma-sqlite": lambda query, rule, cases, _: sigma_sqlite(query, rule, cases),
            "kql-duckdb": kql_duckdb, "spl-oracle": spl_oracle}


def unavailable(target: str) -> str | None:
    """Why a target cannot run here (None when it can)."""
    if target == "kql-parser":
        from cqlx.engines.kusto_language import kusto_unavailable_reason

        return kusto_unavailable_reason()
    if target == "kql-duckdb":
        from cqlx.engines.duckdb_kql import duckdb_kql_unavailable_reason

        return duckdb_kql_unavailable_reason()
    if target == "sigma-sqlite":
        try:
            import sigma.backends.sqlite  # noqa: F401
        except ImportError:
            return "pySigma's sqlite backend is not installed: pip install pysigma-backend-sqlite"
    return None


_LANGUAGE = {"python-module": "python", "kql-duckdb": "kql", "kql-parser": "kql", "sigma-sqlite": "sigma",
             "spl-oracle": "spl"}


def shown_differently(query: ir.Query, rule: Rule, target: str, profiles: Mapping[str, str] | None = None
                      ) -> frozenset[str]:
    """Output fields the target's conversion reports as shown differently (presentation loss: the
    event time in seconds, say): not compared, since which rows come out is what is tested."""
    try:
        conversion = convert_query(query, _LANGUAGE[target], (profiles or {}).get(_LANGUAGE[target]), rule.meta,
                                   rule.text)
    except CqlError:
        return frozenset()
    return frozenset(f for d in conversion.diagnostics if d.kind == PRESENTATION for f in d.fields)


def _without(verdict: Verdict, fields: frozenset[str], query: ir.Query) -> Verdict:
    """The verdict without those fields: by name, and for group rows (compared in column order)
    by name where a row is keyed by the rule's output fields (the matcher's, which leaves out a
    field with no value), else by position among them (a target's columns, all of them)."""
    if verdict.rows:
        from cqlx.api import output_fields as ordered

        names = ordered(query) or ()
        skip = {i for i, name in enumerate(names) if name in fields}
        rows = [{k: v for k, v in row.items() if k not in fields} if set(row) <= set(names) else
                {k: v for i, (k, v) in enumerate(row.items()) if i not in skip} for row in verdict.rows]
        return _rows_verdict(rows)
    return Verdict(verdict.matched, {k: v for k, v in verdict.fields.items() if k not in fields}, verdict.rows,
                   tuple({k: v for k, v in row.items() if k not in fields} for row in verdict.each))


def target_profile(target: str, profiles: Mapping[str, str] | None = None) -> Profile:
    """The profile a target's conversion uses."""
    from cqlx.profiles import DEFAULT_PROFILE, load_profile

    language = _LANGUAGE[target]
    return load_profile((profiles or {}).get(language) or DEFAULT_PROFILE[language])


def read_as(query: ir.Query, target: str, profiles: Mapping[str, str] | None = None) -> EventType | None:
    """For a rule that names no event type: what the target reads an event that names none as (a
    witness, a card test without ``#event_simpleName``), the profile's entry for the event type it
    searches, chosen from the rule's fields (``native``: the profile's native events, Sysmon's for
    Sigma, which keep their names). None when the rule names a type, or the target reads every
    event (the Python matcher, raw FDR's default search), or the conversion chose nothing."""
    from cqlx.emit.base import Generator

    if query.source.event_types or query.source.types_pattern is not None or _LANGUAGE[target] == "python":
        return None
    profile = target_profile(target, profiles)
    try:
        event = Generator(query, profile).event
    except CqlError:
        return None
    return None if event is None or event.name == profile.default_event_type else event


def _held(target: str, profiles: Mapping[str, str] | None) -> Callable[[Case], bool]:
    """Whether the target's data holds a case's events: not when one is of an event type its
    profile has no entry for, or declares it has no counterpart for. The conversion reports such
    types (a rule that also names a type the target holds; a regex on ``#event_simpleName`` that
    admits types the profile does not declare) and reads the others; a rule of such types alone
    is refused, so never compared. Nor when one is stored in a LogScale repository other than
    those the profile's events stand for (``repositories:``), or holds a file name with a ``/`` or
    ``\\`` where the profile reads the name from a full path: the target holds no such event."""
    from cqlx.reshape import event_type_of

    if _LANGUAGE[target] == "python":
        return lambda case: True
    profile = target_profile(target, profiles)
    repositories = profile.repositories

    def held(case: Case) -> bool:
        events = case.stream or (case.event,)
        names = [event_type_of(e) for e in events]
        # nor an event of a LogScale repository other than those the profile's events stand for
        return (all(n is None or profile.event_type(n) is not None for n in names)
                and all(_in_repositories(e, repositories) for e in events)
                # a file name the target reads from a path holds no separator there
                and not any(isinstance(e.get(name), str) and ("/" in e[name] or "\\" in e[name])
                            for e in events for name, _ in _file_names(profile, e, None)))
    return held


def _sqlite_judges(query: ir.Query, profile: Profile) -> Callable[[Case], bool] | None:
    """Whether pySigma's sqlite backend can judge a case the way a SIEM would; None when it judges
    every case. Not where a field the rule tests holds a value of the wrong kind for the test:
    - ``|cidr`` is tested by the text's prefix (``LIKE '8.8.8.%'``), so a value that is no address
      but starts like one (``8.8.8.8x``) matches there, and nowhere else;
    - SQLite orders any text above any number, so ``RequestType|gt: 150`` holds for ``"151 9"``
      in a field the profile passes through (one it maps with a number type holds no text),
      where CQL's comparison is false."""
    import ipaddress

    from cqlx.passes import atoms
    from cqlx.reshape import event_type_of
    from cqlx.runtime import number

    found = atoms(query)
    addresses = {p.field for p in found if isinstance(p, ir.Cidr)}
    numbers = {p.field for p in found if isinstance(p, ir.Cmp)}
    if not addresses and not numbers:
        return None

    def address(value: Any) -> bool:
        try:
            ipaddress.ip_address(str(value))
        except ValueError:
            return False
        return True

    def text_in_number(event: Mapping[str, Any], field: str) -> bool:
        value = event.get(field)
        if not isinstance(value, str) or number(value) is not None:
            return False
        return profile.field(profile.event_type(event_type_of(event) or ""), field) is None

    def judges(case: Case) -> bool:
        events = case.stream or (case.event,)
        return all(event.get(f) is None or address(event[f]) for event in events for f in addresses) and \
            not any(text_in_number(event, f) for event in events for f in numbers)
    return judges


def sqlite_gap(query: ir.Query) -> str | None:
    """Why pySigma's sqlite backend cannot run the rule's Sigma as written (None when it can).
    Without a cidr function it writes ``|cidr`` as text prefixes, one ``LIKE`` per prefix; a
    subnet that is not on an octet (IPv4) or hex digit (IPv6) boundary takes several, which it
    joins with OR without parentheses, so beside another test ``A OR B AND C`` reads as
    ``A OR (B AND C)`` (pysigma-backend-sqlite 2.0)."""
    import ipaddress

    from cqlx.passes import atoms

    for pred in atoms(query):
        if isinstance(pred, ir.Cidr):
            for subnet in pred.subnets:
                network = ipaddress.ip_network(subnet, strict=False)
                if network.prefixlen % (8 if network.version == 4 else 4):
                    return (f"pySigma's sqlite backend writes |cidr {subnet} as several LIKE tests joined by OR "
                            "without parentheses, so the rule's other tests bind to the last one only")
    return None


def stored_in(query: ir.Query, target: str, profiles: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The LogScale repositories the target's events stand for (the profile's ``repositories:``),
    for a rule that reads ``#repo``; empty otherwise."""
    from cqlx.repository import REPO_TAG

    if _LANGUAGE[target] == "python" or not any(REPO_TAG in step_reads(s) for s in query.steps):
        return ()
    return target_profile(target, profiles).repositories


def _in_repositories(event: Mapping[str, Any], repositories: tuple[str, ...]) -> bool:
    """Whether a target whose events stand for ``repositories`` (none: any) holds the event: one
    that names no repository, or one of them."""
    return not repositories or "#repo" not in event or event["#repo"] in repositories


def _each_event(case: Case, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Case:
    """The case with ``change`` made to its event and to each event of its stream."""
    return replace(case, event=change(case.event), stream=tuple(change(e) for e in case.stream))


def _stored(case: Case, repositories: tuple[str, ...]) -> Case:
    """The case as the target holds it: each event that names no repository stored in the first of
    ``repositories``; a stream without the events of other repositories (the target does not hold
    them; a single such event is not compared at all: :func:`_held`)."""
    kept = replace(case, stream=tuple(e for e in case.stream if _in_repositories(e, repositories)))
    return _each_event(kept, lambda event: event if "#repo" in event else {**event, "#repo": repositories[0]})


def _file_names(profile: Profile, event: Mapping[str, Any], read: EventType | None
                ) -> list[tuple[str, str | None]]:
    """The file-name fields of an event that the profile reads from a full path (``transform:
    basename``: ``FileName`` from ``ImageFileName``), each with the Falcon field that holds the
    path there, if the profile names one (None: it keeps the path under the column's own name, as
    raw FDR does)."""
    from cqlx.reshape import event_type_of

    name = event_type_of(event)
    event_type = (profile.event_type(name) if name else None) or read or profile.default_event()
    if event_type is None:
        return []
    out: list[tuple[str, str | None]] = []
    for falcon, mapped in event_type.fields.items():
        if mapped.transform == "basename":
            full = next((f for f, m in event_type.fields.items() if m.name == mapped.name and not m.transform
                         and f != falcon), None)
            if full is None and profile.unmapped == "identity":
                full = mapped.name
            out.append((falcon, full))
    return out


def _with_paths(case: Case, profile: Profile, read: EventType | None) -> Case:
    """The case as a target that reads a file name from a full path holds it: an event with the
    file name and without the path gets the path the target's records are given (the name after
    a ``/``: :mod:`cqlx.reshape`), so the reference reads the same path."""
    from cqlx.reshape import basename_path

    def completed(event: dict[str, Any]) -> dict[str, Any]:
        added = {full: basename_path(event[name]) for name, full in _file_names(profile, event, read)
                 if full is not None and full not in event and isinstance(event.get(name), str)}
        return {**event, **added} if added else event
    return _each_event(case, completed)


def _typed(case: Case, name: str) -> Case:
    """The case with each of its events that names no event type read as ``name``."""
    from cqlx.reshape import event_type_of

    def typed(event: dict[str, Any]) -> dict[str, Any]:
        return event if event_type_of(event) else {**event, "#event_simpleName": name}
    return _each_event(case, typed)


def refused(query: ir.Query, rule: Rule, target: str, profiles: Mapping[str, str] | None = None) -> str | None:
    """Why an engine has nothing to check: the conversion loses detection logic, so ``cqlx convert``
    refuses it (None when the conversion keeps which events match)."""
    language = _LANGUAGE[target]
    try:
        lost = convert_query(query, language, (profiles or {}).get(language), rule.meta, rule.text).detection_loss
    except CqlError:
        return None  # the engine's own conversion reports it as a finding
    if not lost:
        return None
    return f"cqlx refuses this conversion (detection loss: {lost[0].message})"


def test_rule(rule: Rule, report: Report, extra: list[Case] | None = None,
              profiles: Mapping[str, str] | None = None, query: ir.Query | None = None,
              targets: tuple[str, ...] = TARGETS) -> None:
    """Run one rule's card tests (and ``extra`` cases, e.g. witnesses) on the reference and on
    ``targets``; record findings. ``profiles`` maps a language to the profile its target uses
    (``{"kql": "sentinel-asim"}``); ``query``: the rule already parsed."""
    kql_profile = (profiles or {}).get("kql")
    query = query if query is not None else rule.parse()
    cases = card_cases(rule, query) + list(extra or [])
    report.rules.append(rule.path)
    try:
        matcher = compile_query(query, rule.text)
    except CqlError as refusal:
        # A rule no engine can run as LogScale would (a saved search, a join with another search):
        # every conversion refuses it with this reason, so there is nothing to compare.
        for target in ("python", *targets):
            report.checked[(rule.path, target)] = f"skipped: {refusal.message}"
        return
    if not cases:
        report.findings.append(Finding(rule.path, "python", "-", "the rule has no tests (add tests: to its card, "
                                       "or run with --generate)"))
        return
    expected = reference(query, rule.text, cases, matcher)
    for case, verdict in zip(cases, expected, strict=True):
        if case.match is not None and verdict.matched != case.match:
            wanted = "a match" if case.match else "no match"
            report.findings.append(Finding(rule.path, "python", case.name, f"expected {wanted}, got {verdict.show()}",
                                           case.line, case.event))
        if case.stream:
            if case.expect and verdict.matched and not any(
                    all(_same(row.get(k), v) for k, v in case.expect.items()) for row in verdict.rows):
                report.findings.append(Finding(rule.path, "python", case.name, f"expected a row with {case.expect!r}, "
                                               f"got {list(verdict.rows)!r}", case.line, case.event))
            continue
        for key, value in case.expect.items():
            if verdict.each and not any(_same(row.get(key), value) for row in verdict.each):
                report.findings.append(Finding(rule.path, "python", case.name, f"expected a row with {key}: "
                                               f"{value!r}, got {list(verdict.each)!r}", case.line, case.event))
            elif not verdict.each and verdict.matched and not _same(verdict.fields.get(key), value):
                got = verdict.fields.get(key)
                report.findings.append(Finding(rule.path, "python", case.name,
                                               f"expected {key}: {value!r}, got {got!r}", case.line, case.event))
    report.checked[(rule.path, "python")] = len(cases)
    for target in targets:
        reason = unavailable(target) or refused(query, rule, target, profiles)
        if reason is None and target == "sigma-sqlite":
            reason = sqlite_gap(query)
        if reason is None and target == "sigma-sqlite" and aggregates(query) and _group_query(query) is None:
            reason = ("a step after the aggregation rewrites a key, so the correlation's groups are not the rule's "
                      "rows; not compared")
        if reason is not None:
            report.checked[(rule.path, target)] = f"skipped: {reason}"
            continue
        # A rule that names no event type: the target searches one (chosen from its fields), so an
        # event that names none is read as of that type, by the reference too.
        read = read_as(query, target, profiles)
        target_cases = cases
        if read is not None and not read.native:
            target_cases = [_typed(c, read.name) for c in target_cases]
        # A rule that tests #repo, on a target whose profile says which repositories its events
        # stand for: an event that names none is stored in the first of them there.
        repositories = stored_in(query, target, profiles)
        if repositories:
            target_cases = [_stored(c, repositories) for c in target_cases]
        if _LANGUAGE[target] != "python":
            target_cases = [_with_paths(c, target_profile(target, profiles), read) for c in target_cases]
        target_expected = expected if target_cases == cases else reference(query, rule.text, target_cases, matcher)
        try:
            if target == "kql-parser":
                errors = kql_parser(query, rule, kql_profile)
                for error in errors:
                    report.findings.append(Finding(rule.path, target, "-",
                                                   f"the KQL does not pass Kusto.Language: {error}"))
                report.checked[(rule.path, target)] = 1
                continue
            if target == "sigma-sqlite" and aggregates(query):
                _compare_groups(rule, query, target_cases, report)
                continue
            verdicts = _engines()[target](query, rule, target_cases, (profiles or {}).get(_LANGUAGE[target]))
        except KqlEngineGap as error:
            report.checked[(rule.path, target)] = f"skipped: {error.message}"
            continue
        except CqlError as error:
            report.findings.append(Finding(rule.path, target, "-", f"cannot convert: {error.message}"))
            continue
        # Sigma outputs no fields: what it says is which tier rule fired, i.e. the severity.
        ladder = next((s for s in query.steps if isinstance(s, ir.Ladder)), None)
        only = ([ladder.field] if ladder else []) if target == "sigma-sqlite" else None
        shown = shown_differently(query, rule, target, profiles)
        held = _held(target, profiles)
        judged = _sqlite_judges(query, target_profile(target, profiles)) if target == "sigma-sqlite" else None
        compared = 0
        for case, want, got in zip(target_cases, target_expected, verdicts, strict=True):
            if not held(case):
                continue  # an event type the target has no counterpart for: the conversion said so
            if judged is not None and not judged(case):
                continue
            compared += 1
            if shown:
                want, got = _without(want, shown, query), _without(got, shown, query)
            problem = _compare(want, got, only)
            if problem:
                report.findings.append(Finding(rule.path, target, case.name, problem, case.line, case.event))
        report.checked[(rule.path, target)] = compared


def _compare_groups(rule: Rule, query: ir.Query, cases: list[Case], report: Report) -> None:
    """A Sigma correlation rule on pySigma's sqlite backend against the reference: the groups
    each stream gives (:func:`sigma_correlation`)."""
    held = _held("sigma-sqlite", None)
    judged = _sqlite_judges(query, target_profile("sigma-sqlite"))
    compared = 0
    for case, pair in zip(cases, sigma_correlation(query, rule, cases), strict=True):
        if pair is None or not held(case) or (judged is not None and not judged(case)):
            continue
        compared += 1
        want, got = pair
        if want.fields != got.fields:
            report.findings.append(Finding(rule.path, "sigma-sqlite", case.name,
                                           f"reference groups: {want.fields['groups'] or 'none'}; the correlation "
                                           f"fires for: {got.fields['groups'] or 'none'}", case.line, case.event))
    report.checked[(rule.path, "sigma-sqlite")] = compared


# ---------------------------------------------------------------- reports


def summary(report: Report) -> str:
    lines = []
    for (rule, target), value in sorted(report.checked.items()):
        count = sum(1 for f in report.findings if f.rule == rule and f.target == target)
        state = value if isinstance(value, str) else \
            (f"{value} events, {count} failing" if count else f"{value} events ok")
        lines.append(f"{rule}  {target:<14} {state}")
    for finding in report.findings:
        where = f"{finding.rule}:{finding.line}" if finding.line else finding.rule
        lines.append(f"FAIL {where} [{finding.target}] {finding.case}: {finding.message}")
        if finding.event is not None:
            lines.append(f"     event: {json.dumps(finding.event, sort_keys=True, default=str)}")
    compared = sum(v for v in report.checked.values() if isinstance(v, int))
    lines.append(f"{len(report.rules)} rules, {compared} comparisons, {len(report.findings)} failures")
    return "\n".join(lines)


def junit(report: Report) -> str:
    """JUnit XML: one testcase per rule and target."""
    from xml.etree import ElementTree as ET

    suite = ET.Element("testsuite", name="cqlx", tests=str(len(report.checked)),
                       failures=str(len({(f.rule, f.target) for f in report.findings})))
    for (rule, target), value in sorted(report.checked.items()):
        case = ET.SubElement(suite, "testcase", classname=rule, name=target)
        failing = [f for f in report.findings if f.rule == rule and f.target == target]
        if isinstance(value, str):
            ET.SubElement(case, "skipped", message=value)
        elif failing:
            failure = ET.SubElement(case, "failure", message=f"{len(failing)} failing events")
            failure.text = "\n".join(f"{f.case}: {f.message}" for f in failing)
    for finding in report.findings:
        if (finding.rule, finding.target) not in report.checked:
            case = ET.SubElement(suite, "testcase", classname=finding.rule, name=finding.target)
            ET.SubElement(case, "failure", message=finding.message)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def as_json(report: Report) -> str:
    return json.dumps({
        "rules": report.rules,
        "targets": [{"rule": r, "target": t, "result": v} for (r, t), v in sorted(report.checked.items())],
        "failures": [f.__dict__ for f in report.findings],
        "ok": report.ok,
    }, indent=2, default=str)


def sarif(report: Report) -> str:
    """SARIF 2.1.0: one result per failure, pointing at the rule file and line."""
    results: list[dict[str, Any]] = []
    for finding in report.findings:
        location: dict[str, Any] = {"artifactLocation": {"uri": Path(finding.rule).as_posix()}}
        if finding.line:
            location["region"] = {"startLine": finding.line}
        results.append({
            "ruleId": f"cqlx/{finding.target}",
            "level": "error",
            "message": {"text": f"{finding.case}: {finding.message}"},
            "locations": [{"physicalLocation": location}],
        })
    targets = sorted({f"cqlx/{t}" for _, t in report.checked} | {r["ruleId"] for r in results})
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "cqlx",
                                      "rules": [{"id": t, "shortDescription": {"text": f"agreement on {t[5:]}"}}
                                                for t in targets]}},
                  "results": results}],
    }
    return json.dumps(document, indent=2)


# ---------------------------------------------------------------- equivalence with a rule written elsewhere


def check_kql(text: str, profile: str | None = None,
              extra: dict[str, list[tuple[str, str]]] | None = None) -> None:
    """A KQL query that Microsoft's parser rejects is bad input: raise with its line and column.
    ``extra`` tables are known besides the profile's (a rule's lookup files: :func:`lookup_schema`)."""
    from cqlx.engines.kusto_language import analyze, kusto_unavailable_reason
    from cqlx.profiles import DEFAULT_PROFILE, load_profile

    if kusto_unavailable_reason() is not None:
        return  # duckdb-kql still reports what it cannot run
    tables = {n: list(c) for n, c in load_profile(profile or DEFAULT_PROFILE["kql"]).tables.items()}
    tables.update(extra or {})
    (diagnostics,) = analyze([text], tables)
    errors = [d for d in diagnostics if d.severity == "Error"]
    if errors:
        first = errors[0]
        line = text.count("\n", 0, first.start) + 1
        column = first.start - (text.rfind("\n", 0, first.start) + 1) + 1
        raise CqlError(f"the KQL does not pass Kusto.Language: {first.code} {first.message}",
                       Span(line, column, line, column + max(1, first.length)), text)


def other_verdicts(text: str, kind: str, cases: list[Case], fields: tuple[str, ...], query: ir.Query,
                   profile: str | None = None) -> list[Verdict]:
    """Run a rule written for another platform (``kind``: kql, sigma, spl, python) on the cases;
    every row of an event where the CQL rule repeats (:func:`repeats`)."""
    each = repeats(query)
    if kind == "kql":
        check_kql(text, profile)
        return run_kql_text(text, cases, fields, profile, each=each)
    if kind == "sigma":
        _, hits = run_sigma_text(text, cases, query.source.event_types, profile, query.source.platforms)
        return [Verdict(any(i in h for h in hits)) for i in range(len(cases))]
    if kind == "spl":
        return run_spl_text(text, cases, fields, profile, each)
    if kind == "python":
        namespace: dict[str, Any] = {"__name__": "cqlx_other_rule"}
        try:
            exec(compile(text, "<other rule>", "exec"), namespace)
        except Exception as error:
            raise CqlError(f"the Python module does not load: {error}") from None
        match, run = namespace.get("match"), namespace.get("run")
        if each and callable(run):  # every row of an event, as cqlx's own modules give them
            return [_event_verdict(list(run([dict(c.event)])), fields, True) for c in cases]
        if not callable(match):
            raise CqlError("the Python module has no match(event) function")
        return [_verdict(match(dict(c.event)), fields) for c in cases]
    raise CqlError(f"--as {kind}: choose kql, sigma, spl or python")


def equivalence(rule: Rule, text: str, kind: str, cases: list[Case], profile: str | None = None
                ) -> list[tuple[Case, Verdict, Verdict, str]]:
    """The cases on which the other rule and the CQL rule disagree, smallest event first."""
    query = rule.parse()
    fields = computed_outputs(query)
    expected = reference(query, rule.text, cases)
    got = other_verdicts(text, kind, cases, fields, query, profile)
    only: list[str] | None = [] if kind == "sigma" else None
    differences = []
    for case, want, have in zip(cases, expected, got, strict=True):
        problem = _compare(want, have, only, every=False)
        if problem:
            differences.append((case, want, have, problem))
    return sorted(differences, key=lambda d: len(json.dumps(d[0].event, sort_keys=True, default=str)))

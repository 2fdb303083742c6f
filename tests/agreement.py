"""Run one rule on every executable engine over the same events and compare the rows.

The Python matcher is the reference (CQL's semantics); the KQL runs on duckdb-kql over the events
as Defender holds them (profile ``mde``), the SPL on cqlx's SPL oracle over the events as Splunk
holds raw FDR events (profile ``splunk``). Rows are compared under the rule's own (Falcon) field
names, Defender's drive-letter paths read back in Falcon's form, values as text (``5``, ``5.0``
and ``"5"`` are one value; an empty string is no value, as Defender stores it), as a multiset
unless ``ordered``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from cqlx import compile_matcher, convert
from cqlx.api import output_fields, parse
from cqlx.emit.base import Generator
from cqlx.engines.duckdb_kql import run_kql
from cqlx.paths import DRIVE_PATH
from cqlx.profiles import load_profile
from cqlx.reshape import to_tables
from cqlx.spl_oracle import run_spl
from tests.test_spl_agreement import splunk_events

Row = tuple[tuple[str, str | None], ...]


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _renames(profile_name: str, rule: str) -> dict[str, str]:
    """Target column → the rule's field name, for the fields the rule outputs."""
    query = parse(rule)
    profile = load_profile(profile_name)
    event = Generator(query, profile).event  # the event type the emitters read, however chosen
    fields = output_fields(query) or ()
    out: dict[str, str] = {}
    for name in fields:
        mapped = profile.field(event, name) if event is not None else None
        out[mapped.name if mapped is not None else name] = name
    return out


def _rows(rows: list[dict[str, Any]], fields: tuple[str, ...], renames: dict[str, str]) -> list[Row]:
    out = []
    for row in rows:
        named = {renames.get(k, k): v for k, v in row.items()}
        out.append(tuple((f, _text(named.get(f))) for f in fields))
    return out


#: Lookup files by the name match() gives them: rows of {column: value}.
Lookups = dict[str, list[dict[str, str]]]


def lookup_tables(lookups: Lookups) -> dict[str, tuple[tuple[tuple[str, str], ...], list[dict[str, Any]]]]:
    """The lookup files as KQL tables (profile mde: a file x.csv is the table x), every column a string."""
    tables = {}
    for file, rows in lookups.items():
        columns = tuple((c, "string") for c in (rows[0] if rows else {}))
        tables[parse(f'match(file="{file}", field=x)').steps[0].stem] = (columns, [dict(r) for r in rows])  # type: ignore[union-attr]
    return tables


def python_rows(rule: str, events: list[dict[str, Any]], lookups: Lookups | None = None) -> list[Row]:
    matcher = compile_matcher(rule, lookups=lookups)
    fields = matcher.fields
    assert fields is not None, "the rule must select its output fields"
    return _rows(matcher.run(events), fields, {})


def kql_rows(rule: str, events: list[dict[str, Any]], lookups: Lookups | None = None) -> list[Row]:
    fields = output_fields(parse(rule))
    assert fields is not None
    tables = {**to_tables(events, load_profile("mde")), **lookup_tables(lookups or {})}
    rows = run_kql(convert(rule, to="kql"), tables)
    return _rows([_falcon_paths(row, _drive_paths("mde", rule)) for row in rows], fields, _renames("mde", rule))


def _drive_paths(profile_name: str, rule: str) -> frozenset[str]:
    """The target columns that hold Windows paths from the drive letter (cqlx.paths)."""
    profile = load_profile(profile_name)
    event = Generator(parse(rule), profile).event
    return frozenset(m.name for m in (event.fields.values() if event else ()) if m.transform == DRIVE_PATH)


def _falcon_paths(row: dict[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    """The row with drive-letter paths written back in Falcon's form, as cqlx.reshape wrote them
    (volume N is the Nth letter): the two forms of one path are one value."""
    def back(value: Any) -> Any:
        drive = re.match(r"([A-Z]):(\\.*)\Z", value, re.DOTALL) if isinstance(value, str) else None
        return f"\\Device\\HarddiskVolume{ord(drive.group(1)) - 64}{drive.group(2)}" if drive else value
    return {k: back(v) if k in columns else v for k, v in row.items()}


def spl_rows(rule: str, events: list[dict[str, Any]], lookups: Lookups | None = None) -> list[Row]:
    fields = output_fields(parse(rule))
    assert fields is not None
    rows = run_spl(convert(rule, to="spl"), splunk_events(events), lookups)
    return _rows(rows, fields, _renames("splunk", rule))


ENGINES = {"kql": kql_rows, "spl": spl_rows}


def assert_agree(rule: str, events: list[dict[str, Any]], engines: tuple[str, ...] = ("kql", "spl"),
                 ordered: bool = False, lookups: Lookups | None = None) -> list[Row]:
    """Every engine returns the reference's rows; returns them (so a test can check they are not
    trivial). Defender's view drops empty strings from the reference's events too. ``lookups``
    are the files the rule's match() reads, given to every engine."""
    reference = python_rows(rule, events, lookups)
    for engine in engines:
        view = [{k: v for k, v in e.items() if v != ""} for e in events] if engine == "kql" else events
        expected = python_rows(rule, view, lookups) if engine == "kql" else reference
        got = ENGINES[engine](rule, events, lookups)
        if ordered:
            assert got == expected, (engine, got, expected)
        else:
            assert Counter(got) == Counter(expected), (engine, sorted(got, key=str), sorted(expected, key=str))
    return reference

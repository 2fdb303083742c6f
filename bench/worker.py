"""One benchmark job in its own process, so that its imports count in the whole-process time.

    python bench/worker.py JOB RULE EVENTS OUT.json

JOB is ``reference`` (the Python matcher over every line with stdlib json: the full match set the
engines are checked against), ``kql-adapter`` (duckdb-kql, loaded by cqlx's own adapter,
``cqlx.engines.duckdb_kql``), ``kql-bulk`` (duckdb-kql, the same rows bulk-loaded through DuckDB's
``read_json``), ``sigma`` (pySigma's sqlite backend, as ``cqlx.engines.sigma_sqlite`` runs it) or
``batch`` (EVENTS is then ``COUNT:SEED``: that many generated rules converted to every target).

Each job writes OUT.json: its phase times (seconds from the first line of this script) and what it
selected, for run.py to compare. The timed part ends at the rule's result; the extra queries that
fetch the full match set for checking are made afterwards and are not timed.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import datetime as dt  # noqa: E402  (after the clock starts: imports are part of the cost)
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

EPOCH = dt.datetime(1970, 1, 1)
FLAGS = ("PrivilegedContainer", "HostMount", "ContainerExec", "SecretsAccess", "ContainerEscape")


class Clock:
    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.last = STARTED

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.last
        self.last = now

    def total(self) -> float:
        return self.last - STARTED


def _ms(value: Any) -> int:
    """An event time as epoch milliseconds: Falcon's string, or the datetime Defender rows hold."""
    if isinstance(value, dt.datetime):
        return round((value - EPOCH).total_seconds() * 1000)
    return int(value)


def _key(row: dict[str, Any], host: str, ts: str) -> list[Any]:
    return [_ms(row[ts]), row.get(host), row.get("SuspicionScore"), row.get("Severity"),
            [row.get(flag) for flag in FLAGS]]


# ---------------------------------------------------------------------------------------------- jobs


def reference(rule: str, events: str, clock: Clock) -> dict[str, Any]:
    from cqlx.api import compile_query
    from cqlx.rules import load_rule

    clock.lap("import")
    loaded = load_rule(rule)
    matcher = compile_query(loaded.parse(), loaded.text, loaded.meta.title)
    clock.lap("compile")
    match = matcher.match
    matches: list[list[Any]] = []
    count = 0
    with open(events, "rb") as stream:
        for line in stream:
            if not line.strip():
                continue
            row = match(json.loads(line))
            if row is not None:
                matches.append([count, *_key(row, "ComputerName", "timestamp")])
            count += 1
    clock.lap("match")
    return {"events": count, "matches": matches}


def _kql_text(rule: str) -> tuple[str, str]:
    """The seed's KQL, and the same without its final sort and take (every matching row)."""
    import cqlx
    from cqlx.rules import load_rule

    kql = cqlx.convert(load_rule(rule).text, to="kql")
    lines = kql.rstrip("\n").split("\n")
    if not (lines[-1].startswith("| take ") and lines[-2].startswith("| sort by ")):
        raise SystemExit(f"unexpected end of the KQL (wanted '| sort by' then '| take'):\n{kql}")
    return kql, "\n".join(lines[:-2])


def _bulk_load(con: Any, name: str, table: Any, engine: Any) -> None:
    """Load one table through DuckDB's JSON reader: the values converted exactly as cqlx's adapter
    converts them (``engine._convert``), empty strings left out of the file and put back by
    COALESCE (every string column of a Defender row holds "" when absent: ``missing: empty``)."""
    columns, rows = table
    types = {column: kind for column, kind in columns}
    ddl = ", ".join(f"{engine._quote_ident(c)} {engine._duckdb_type(name, c, k)}" for c, k in columns)
    con.execute(f"CREATE TABLE {engine._quote_ident(name)} ({ddl})")
    if not rows:
        return
    convert = engine._convert
    with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False, encoding="utf-8") as out:
        path = out.name
        write = out.write
        for row in rows:
            record = {}
            for column, value in row.items():
                if value == "" or value is None:
                    continue
                value = convert(types[column], value)
                record[column] = value.isoformat() if isinstance(value, dt.datetime) else value
            write(json.dumps(record, ensure_ascii=False))
            write("\n")
    try:
        spec = ", ".join(f"'{c}': '{engine._duckdb_type(name, c, k)}'" for c, k in columns)
        select = ", ".join(f"COALESCE({engine._quote_ident(c)}, '')" if k == "string" else engine._quote_ident(c)
                           for c, k in columns)
        con.execute(f"INSERT INTO {engine._quote_ident(name)} SELECT {select} FROM read_json('{path}', "
                    f"format='newline_delimited', columns={{{spec}}})")
    finally:
        Path(path).unlink()


def kql(rule: str, events: str, clock: Clock, bulk: bool) -> dict[str, Any]:
    from cqlx.engines import duckdb_kql as engine
    from cqlx.events import EventStats, read_events
    from cqlx.profiles import load_profile
    from cqlx.reshape import to_tables

    _, duckdb_kql = engine._modules()
    clock.lap("import")
    query, full_query = _kql_text(rule)
    clock.lap("convert")
    parsed = list(read_events([events], EventStats()))
    clock.lap("parse")
    tables = to_tables(parsed, load_profile("mde"))
    count = len(parsed)
    del parsed
    clock.lap("reshape")
    con = duckdb_kql.connect()
    for name, table in tables.items():
        if bulk:
            _bulk_load(con, name, table, engine)
        else:
            engine._load(con, name, table)  # what cqlx.engines.duckdb_kql.run_kql does
    rows_loaded = sum(len(rows) for _, rows in tables.values())
    del tables
    clock.lap("load")
    relation = duckdb_kql.query(con, query)
    columns = list(relation.columns)
    top = [dict(zip(columns, values, strict=True)) for values in relation.fetchall()]
    clock.lap("query")
    relation = duckdb_kql.query(con, full_query)  # not timed: every matching row, for the check
    columns = list(relation.columns)
    full = [dict(zip(columns, values, strict=True)) for values in relation.fetchall()]
    con.close()
    return {"events": count, "rows_loaded": rows_loaded, "top": [_key(r, "DeviceName", "Timestamp") for r in top],
            "matches": [_key(r, "DeviceName", "Timestamp") for r in full]}


def sigma(rule: str, events: str, clock: Clock) -> dict[str, Any]:
    import sqlite3

    from cqlx.conversion import convert_query
    from cqlx.engines import sigma_sqlite as engine
    from cqlx.events import EventStats, read_events
    from cqlx.profiles import load_profile
    from cqlx.reshape import to_records
    from cqlx.rules import load_rule

    clock.lap("import")
    loaded = load_rule(rule)
    sigma_text = convert_query(loaded.parse(), "sigma", None, loaded.meta, loaded.text).output
    clock.lap("convert")
    parsed = list(read_events([events], EventStats()))
    clock.lap("parse")
    records = to_records(parsed, load_profile("sigma"))
    count = len(parsed)
    del parsed
    kept = [index for index, record in enumerate(records) if record is not None]
    rows = [records[index] for index in kept]
    del records
    clock.lap("reshape")
    rules, required = engine._convert(sigma_text)  # pySigma: the Sigma rules to SQLite SQL
    clock.lap("sigma-to-sql")
    # the rest is cqlx.engines.sigma_sqlite.run_sigma, cut into load and query
    regexp = engine._Regexp()
    con = sqlite3.connect(":memory:")
    con.create_function("regexp", 2, regexp, deterministic=True)
    engine._load_events(con, rows, engine._columns(rows, required))
    clock.lap("load")
    results = {}
    for name, queries in rules:
        matched: set[int] = set()
        for sql in queries:
            if not sql.startswith(engine._SELECT_PREFIX):
                raise SystemExit(f"unexpected SQL from the sqlite backend: {sql}")
            where = sql[len(engine._SELECT_PREFIX):]
            matched.update(row[0] for row in con.execute(f"SELECT rowid FROM {engine._TABLE} WHERE {where}"))
        results[name] = sorted(kept[h] for h in matched)
    clock.lap("query")
    con.close()
    return {"events": count, "rows_loaded": len(rows), "rules": results, "sigma": sigma_text}


def batch(spec: str, clock: Clock) -> dict[str, Any]:
    import rulegen

    import cqlx

    clock.lap("import")
    count, seed = (int(part) for part in spec.split(":"))
    texts = rulegen.rules(count, seed)
    clock.lap("generate")
    targets = ["spl", "kql", "sigma", "python"]
    try:
        cqlx.convert(texts[0], to="cql")
        targets.append("cql")
    except cqlx.CqlError:
        pass  # no canonical CQL emitter (yet)
    for text in texts:
        cqlx.parse(text)
    clock.lap("parse")
    per_target: dict[str, float] = {}
    failures: dict[str, int] = {}
    out_bytes = 0
    for target in targets:
        started = time.perf_counter()
        for text in texts:
            try:
                out_bytes += len(cqlx.convert(text, to=target))
            except cqlx.CqlError:
                failures[target] = failures.get(target, 0) + 1
        per_target[target] = time.perf_counter() - started
    clock.lap("convert")
    # the CLI's way: parse once, then each target from the same IR
    from cqlx.conversion import convert_query

    started = time.perf_counter()
    for text in texts:
        query = cqlx.parse(text)
        for target in targets:
            convert_query(query, target, None, None, text)
    parse_once = time.perf_counter() - started
    clock.lap("parse-once")
    return {"rules": count, "targets": targets, "per_target": per_target, "failures": failures,
            "output_bytes": out_bytes, "parse_once": parse_once}


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    job, rule, events, out = argv
    clock = Clock()
    if job == "reference":
        result = reference(rule, events, clock)
    elif job in ("kql-adapter", "kql-bulk"):
        result = kql(rule, events, clock, bulk=job == "kql-bulk")
    elif job == "sigma":
        result = sigma(rule, events, clock)
    elif job == "batch":
        result = batch(events, clock)
    else:
        print(f"unknown job {job!r}", file=sys.stderr)
        return 2
    result["phases"] = clock.phases
    result["inside"] = clock.total()
    Path(out).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

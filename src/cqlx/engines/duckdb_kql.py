"""Execute KQL on DuckDB with the ``duckdb-kql`` package.

``duckdb-kql`` translates KQL to DuckDB SQL and runs it; it covers a large part
of the query language and raises ``KqlUnsupportedError`` for what it does not,
rather than returning something wrong. The test suite uses :func:`run_kql` to run
the KQL cqlx emits over small hand-made tables and compare the rows it selects.

``duckdb`` and ``duckdb_kql`` are test-only dependencies (``pip install
'duckdb-kql[duckdb]'``), imported inside the functions; without them the
functions raise :class:`~cqlx.engines.EngineUnavailable`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cqlx.engines import EngineUnavailable

__all__ = ["KQL_TO_DUCKDB", "Table", "duckdb_kql_unavailable_reason", "run_kql", "to_sql"]

#: KQL scalar type -> the DuckDB column type it is stored as. The same choices
#: duckdb-kql makes for its own casts, so values compare the way its SQL expects.
KQL_TO_DUCKDB: dict[str, str] = {
    "string": "VARCHAR",
    "long": "BIGINT",
    "int": "INTEGER",
    "real": "DOUBLE",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "boolean": "BOOLEAN",
    "datetime": "TIMESTAMP",
    "date": "TIMESTAMP",
    "timespan": "INTERVAL",
    "time": "INTERVAL",
    "guid": "UUID",
    "dynamic": "JSON",
    "decimal": "DECIMAL(38,9)",
}

#: One table: its columns as ``(name, kql_type)`` and its rows as dicts (a missing key is NULL).
Table = tuple[Sequence[tuple[str, str]], Sequence[Mapping[str, object]]]

_INSTALL_HINT = "pip install 'duckdb-kql[duckdb]'"


def duckdb_kql_unavailable_reason() -> str | None:
    """Why :func:`run_kql` cannot run here, or ``None`` when duckdb and duckdb_kql import."""
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return f"python package duckdb not installed: {_INSTALL_HINT}"
    try:
        import duckdb_kql  # noqa: F401
    except ImportError:
        return f"python package duckdb-kql not installed: {_INSTALL_HINT}"
    return None


def _modules() -> tuple[Any, Any]:
    reason = duckdb_kql_unavailable_reason()
    if reason is not None:
        raise EngineUnavailable(reason)
    import duckdb
    import duckdb_kql

    return duckdb, duckdb_kql


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_type(table: str, column: str, kql_type: str) -> str:
    try:
        return KQL_TO_DUCKDB[kql_type.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(KQL_TO_DUCKDB))
        raise ValueError(
            f"table {table}: column {column} has unknown KQL type {kql_type!r} (known: {known})"
        ) from None


def _to_utc_naive(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _datetime_value(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return _to_utc_naive(value)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _to_utc_naive(dt.datetime.fromisoformat(text))
        except ValueError:
            raise ValueError(f"not an ISO 8601 datetime: {value!r}") from None
    raise TypeError(f"a datetime column takes a datetime or an ISO 8601 string, not {value!r}")


def _convert(kql_type: str, value: object) -> object:
    """A Python value as DuckDB should receive it for a column of *kql_type*."""
    if value is None:
        return None
    kind = kql_type.strip().lower()
    if kind in ("datetime", "date"):
        return _datetime_value(value)
    if kind == "dynamic":
        return json.dumps(value, default=str)
    if kind in ("timespan", "time"):
        if isinstance(value, dt.timedelta | str):
            return value
        raise TypeError(f"a timespan column takes a timedelta or an interval string, not {value!r}")
    if kind == "guid":
        return str(value) if isinstance(value, uuid.UUID) else value
    if kind in ("long", "int"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"an integer column takes an int, not {value!r}")
        return value
    if kind in ("real", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"a real column takes a number, not {value!r}")
        return value
    if kind == "decimal":
        if isinstance(value, float):
            return decimal.Decimal(repr(value))
        return value
    if kind in ("bool", "boolean") and not isinstance(value, bool | str):
        raise TypeError(f"a bool column takes a bool, not {value!r}")
    if kind == "string" and not isinstance(value, str):
        raise TypeError(f"a string column takes a str, not {value!r}")
    return value


def _load(con: Any, name: str, table: Table) -> None:
    columns, rows = table
    if not columns:
        raise ValueError(f"table {name} has no columns")
    names = [column for column, _ in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"table {name} has duplicate column names")
    types = {column: kql_type for column, kql_type in columns}
    ddl = ", ".join(
        f"{_quote_ident(column)} {_duckdb_type(name, column, kql_type)}" for column, kql_type in columns
    )
    con.execute(f"CREATE TABLE {_quote_ident(name)} ({ddl})")
    if not rows:
        return
    known = set(names)
    values: list[list[object]] = []
    for index, row in enumerate(rows):
        unknown = set(row) - known
        if unknown:
            raise ValueError(f"table {name}: row {index} has keys not among the columns: {sorted(unknown)}")
        try:
            values.append([_convert(types[column], row.get(column)) for column in names])
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"table {name}: row {index}: {exc}") from None
    placeholders = ", ".join("?" for _ in names)
    con.executemany(f"INSERT INTO {_quote_ident(name)} VALUES ({placeholders})", values)


def run_kql(kql: str, tables: Mapping[str, Table]) -> list[dict[str, object]]:
    """Run *kql* over *tables* on a fresh in-memory DuckDB and return the result rows.

    Each table is ``(columns, rows)``: columns as ``(name, kql_type)`` pairs, rows as
    dicts from column name to value (a missing key is NULL). Datetimes may be given as
    :class:`datetime.datetime` (an aware one is converted to UTC) or ISO 8601 strings;
    they come back as naive UTC :class:`datetime.datetime`. ``dynamic`` values are
    stored as their JSON encoding and come back as JSON text.

    Raises :class:`~cqlx.engines.EngineUnavailable` when duckdb or duckdb-kql is
    missing; duckdb-kql's own errors (``KqlSyntaxError``, ``KqlUnsupportedError``,
    ``KqlSchemaError``) and DuckDB's errors propagate unchanged.
    """
    _, duckdb_kql = _modules()
    con = duckdb_kql.connect()
    try:
        for name, table in tables.items():
            _load(con, name, table)
        relation = duckdb_kql.query(con, kql)
        if relation is None:
            return []
        columns: list[str] = list(relation.columns)
        return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]
    finally:
        con.close()


def to_sql(kql: str) -> str:
    """The DuckDB SQL that duckdb-kql runs for *kql* (for failure messages and debugging)."""
    _, duckdb_kql = _modules()
    return str(duckdb_kql.to_sql(kql))

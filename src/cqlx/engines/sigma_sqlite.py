"""Run Sigma rules on SQLite with pySigma's sqlite backend, and check them with ``sigma check``.

:func:`run_sigma` converts each rule of a Sigma collection with
``pysigma-backend-sqlite`` and runs the SQL over a list of events loaded into an
in-memory table ``logs``: one column per field name, values stored as given
(text stays text, numbers stay numbers). The columns are declared without a type
and ``COLLATE NOCASE``, the way Zircolite (the backend's own consumer) builds its
table, because Sigma's plain string equality is case-insensitive and the backend
emits it as ``=``.

How the backend renders the modifiers (pySigma 1.5, pysigma-backend-sqlite 2.0)::

    Field: 'v'                 Field='v'                      (case-insensitive through the column collation)
    Field: 'a*b?'              Field LIKE 'a%b_' ESCAPE '\\'   (LIKE is ASCII case-insensitive)
    Field|contains: 'v'        Field LIKE '%v%' ESCAPE '\\'
    Field|startswith: 'v'      Field LIKE 'v%' ESCAPE '\\'
    Field|endswith: 'v'        Field LIKE '%v' ESCAPE '\\'
    Field|cased: 'v'           Field GLOB 'v'                 (case-sensitive; |contains|cased -> GLOB '*v*')
    Field|re: 'p'              Field REGEXP 'p'
    Field|re|i: 'p'            Field REGEXP '(?i)p'           (|m and |s likewise: '(?ms)p')
    not X                      NOT COALESCE((X), 0)           (an absent field makes X false, so "not X" true)

``X REGEXP Y`` calls the SQL function ``regexp(Y, X)``, which SQLite does not
define; this module registers one that searches (unanchored, like Sigma) with
Python's :mod:`re`, case-sensitively unless the pattern carries the ``(?i)`` the
backend prepends for ``|i``, and treats a NULL value as no match.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cqlx.engines import EngineError, EngineUnavailable

__all__ = ["SIGMA_CHECK_EXCLUDED", "convert_to_sqlite", "run_sigma", "run_sigma_correlation", "sigma_check",
           "sigma_executable"]

#: Validators left out of ``sigma check``: the MITRE ATT&CK and D3FEND tag checks download
#: their data and fail offline, and the ``sigmahq_*`` ones (from pySigma-validators-sigmahq,
#: when installed) judge SigmaHQ repository conventions rather than rule validity. sigma-cli
#: warns "Invalid validators name" for the ones that are not installed and carries on.
SIGMA_CHECK_EXCLUDED: tuple[str, ...] = (
    "attacktag",
    "d3_fendtag",
    "sigmahq_fieldname_cast",
    "sigmahq_invalid_fieldname",
    "sigmahq_redundant_field",
    "sigmahq_logsource_unknown",
    "sigmahq_tags_techniques_without_tactics",
    "sigmahq_filename_prefix",
)

_TABLE = "logs"
_SELECT_PREFIX = f"SELECT * FROM {_TABLE} WHERE "
_RESERVED_COLUMNS = frozenset({"rowid", "oid", "_rowid_"})
_INSTALL_HINT = "pip install pysigma-backend-sqlite sigma-cli"


@functools.lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class _Regexp:
    """The SQL function ``regexp(pattern, value)``; remembers the first bad pattern it met."""

    def __init__(self) -> None:
        self.error: str | None = None

    def __call__(self, pattern: object, value: object) -> int:
        if pattern is None or value is None:
            return 0
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        try:
            compiled = _compile(str(pattern))
        except re.error as exc:
            if self.error is None:
                self.error = f"invalid regular expression {pattern!r}: {exc}"
            raise
        return 1 if compiled.search(text) else 0


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_value(index: int, key: str, value: object) -> object:
    if value is None or isinstance(value, str | int | float):
        return value  # bool is an int: stored as 1/0, which the backend's bool test accepts
    raise TypeError(f"event {index}: field {key!r} has a {type(value).__name__}; use str, int, float or None")


def _columns(events: Sequence[Mapping[str, object]], required: Sequence[str]) -> list[str]:
    """Event keys in first-seen order, then the fields the rules need that no event has.

    SQLite column names are case-insensitive, so two keys differing only in case are refused.
    """
    columns: list[str] = []
    seen: dict[str, str] = {}
    for index, event in enumerate(events):
        for key in event:
            if not isinstance(key, str) or not key:
                raise ValueError(f"event {index}: field names must be non-empty strings, not {key!r}")
            folded = key.lower()
            if folded in _RESERVED_COLUMNS:
                raise ValueError(f"event {index}: field name {key!r} is reserved by SQLite")
            if folded in seen:
                if seen[folded] != key:
                    raise ValueError(
                        f"fields {seen[folded]!r} and {key!r} differ only in case, "
                        "which one SQLite table cannot hold"
                    )
                continue
            seen[folded] = key
            columns.append(key)
    for field in required:
        folded = field.lower()
        if folded not in seen and folded not in _RESERVED_COLUMNS:
            seen[folded] = field
            columns.append(field)
    return columns


def _load_events(con: sqlite3.Connection, events: Sequence[Mapping[str, object]], columns: list[str]) -> None:
    if not columns:
        columns = ["_cqlx_no_fields"]
    ddl = ", ".join(f"{_quote_ident(column)} COLLATE NOCASE" for column in columns)
    con.execute(f"CREATE TABLE {_TABLE} ({ddl})")
    names = ", ".join(["rowid", *(_quote_ident(column) for column in columns)])
    placeholders = ", ".join("?" for _ in range(len(columns) + 1))
    rows = [
        [index, *(_check_value(index, column, event.get(column)) for column in columns)]
        for index, event in enumerate(events)
    ]
    con.executemany(f"INSERT INTO {_TABLE} ({names}) VALUES ({placeholders})", rows)


def _sigma_modules() -> tuple[Any, Any, Any]:
    try:
        from sigma.backends.sqlite.sqlite import sqliteBackend
        from sigma.collection import SigmaCollection
        from sigma.rule import SigmaRule
    except ImportError as exc:
        raise EngineUnavailable(
            f"pySigma with its sqlite backend is not installed ({exc}): {_INSTALL_HINT}"
        ) from exc
    return SigmaCollection, SigmaRule, sqliteBackend


def _rule_name(rule: Any) -> str:
    title = getattr(rule, "title", None)
    if title:
        return str(title)
    return str(getattr(rule, "id", "") or "")


def _convert(rules_yaml: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Each rule as ``(name, queries)``, and every field the rules name."""
    sigma_collection, sigma_rule, sqlite_backend = _sigma_modules()
    collection = sigma_collection.from_yaml(rules_yaml)
    backend = sqlite_backend()
    rules: list[tuple[str, list[str]]] = []
    required: list[str] = []
    for rule in collection.rules:
        if not isinstance(rule, sigma_rule):
            raise NotImplementedError(f"only detection rules are supported, not {type(rule).__name__}")
        rules.append((_rule_name(rule), [str(query) for query in backend.convert_rule(rule)]))
        required.extend(str(field) for field in backend.required_fields(rule))
    return rules, required


def convert_to_sqlite(rules_yaml: str) -> list[tuple[str, list[str]]]:
    """Each rule of the collection as ``(title or id, [SQL query, ...])``, as the backend writes it."""
    return _convert(rules_yaml)[0]


def run_sigma(rules_yaml: str, events: Sequence[Mapping[str, object]]) -> list[tuple[str, list[int]]]:
    """Run every rule of a (possibly multi-document) Sigma collection over *events*.

    Returns, for each rule in the collection's order, its title (its id when it has no
    title) and the sorted indices of the events it matches. Fields a rule names that no
    event carries are NULL columns. Raises pySigma's errors for an invalid rule or one
    the backend cannot convert (e.g. keyword searches), :class:`NotImplementedError` for
    correlation rules, and :class:`~cqlx.engines.EngineUnavailable` without pySigma.
    """
    rules, required = _convert(rules_yaml)
    regexp = _Regexp()
    con = sqlite3.connect(":memory:")
    try:
        con.create_function("regexp", 2, regexp, deterministic=True)
        _load_events(con, events, _columns(events, required))
        results: list[tuple[str, list[int]]] = []
        for name, queries in rules:
            matched: set[int] = set()
            for query in queries:
                if not query.startswith(_SELECT_PREFIX):
                    raise EngineError(f"rule {name!r}: unexpected SQL from the sqlite backend: {query}")
                sql = f"SELECT rowid FROM {_TABLE} WHERE " + query[len(_SELECT_PREFIX) :]
                try:
                    matched.update(row[0] for row in con.execute(sql))
                except sqlite3.Error as exc:
                    detail = regexp.error or str(exc)
                    raise EngineError(f"rule {name!r}: SQLite refused {sql!r}: {detail}") from exc
            results.append((name, sorted(matched)))
        return results
    finally:
        con.close()


#: The column that holds each event's time for a correlation's window: every event gets the
#: same time, so one window holds them all (a LogScale aggregation counts over the whole search).
_TIME = "_cqlx_time"
_ONE_TIME = "2026-01-01T00:00:00"


def run_sigma_correlation(rules_yaml: str, events: Sequence[Mapping[str, object]]) -> list[list[int]]:
    """Run the correlation rule of a Sigma collection (its base rules referenced, not output)
    over *events*, all at one time, so the window holds every one of them.

    Returns, for each alert (each group that reaches the count), the sorted indices of the
    events it counted (the backend's evidence). Raises pySigma's errors for a rule it cannot
    convert, :class:`NotImplementedError` for a collection without exactly one correlation rule,
    and :class:`~cqlx.engines.EngineUnavailable` without pySigma.
    """
    sigma_collection, sigma_rule, sqlite_backend = _sigma_modules()
    collection = sigma_collection.from_yaml(rules_yaml)
    backend = sqlite_backend(timestamp_field=_TIME)
    queries = [str(query) for query in backend.convert(collection)]
    correlations = [rule for rule in collection.rules if not isinstance(rule, sigma_rule)]
    if len(correlations) != 1 or len(queries) != 1:
        raise NotImplementedError(f"expected one correlation rule and its query, got {len(correlations)} rules "
                                  f"and {len(queries)} queries")
    # The base rules' fields, and the correlation's group-by and counted fields.
    fieldref = getattr(correlations[0].condition, "fieldref", None)
    required = [str(f) for rule in collection.rules if isinstance(rule, sigma_rule)
                for f in backend.required_fields(rule)]
    required += [str(f) for f in correlations[0].group_by or []]
    required += [str(f) for f in ([fieldref] if isinstance(fieldref, str) else fieldref or [])]
    regexp = _Regexp()
    con = sqlite3.connect(":memory:")
    try:
        con.create_function("regexp", 2, regexp, deterministic=True)
        timed = [{**event, _TIME: _ONE_TIME} for event in events]
        _load_events(con, timed, _columns(timed, required))
        try:
            cursor = con.execute(queries[0])
            alerts = cursor.fetchall()
            names = [d[0] for d in cursor.description]
        except sqlite3.Error as exc:
            raise EngineError(f"SQLite refused the correlation's query: {regexp.error or exc}") from exc
        evidence = names.index("event_ids")
        # The backend names an event "<source>:<rowid>" (one source here: the logs table).
        return [sorted(int(str(e).rsplit(":", 1)[1]) for e in json.loads(row[evidence])) for row in alerts]
    finally:
        con.close()


def sigma_executable() -> Path:
    """The ``sigma`` command of sigma-cli installed beside the running Python."""
    directory = Path(sys.executable).parent
    for name in ("sigma", "sigma.exe"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise EngineUnavailable(f"sigma-cli's `sigma` command not found in {directory}: {_INSTALL_HINT}")


def sigma_check(path: str) -> tuple[bool, str]:
    """Run ``sigma check`` on a rule file or a directory of ``*.yml`` rules.

    Runs with ``--fail-on-error --fail-on-issues`` and the validators of
    :data:`SIGMA_CHECK_EXCLUDED` left out, so *ok* (exit status 0) means no rule errors
    (invalid metadata such as a bad status, level, date or UUID), no condition errors and
    no validation issues (e.g. a missing id, a filename shorter than 10 or longer than 90
    characters, escaped wildcards, unknown tag namespaces). Returns ``(ok, output)`` with
    sigma-cli's stdout followed by its stderr.
    """
    command = [str(sigma_executable()), "check", "--fail-on-error", "--fail-on-issues"]
    for validator in SIGMA_CHECK_EXCLUDED:
        command += ["-x", validator]
    command.append(path)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"sigma check {path} did not finish in 600 s") from exc
    output = done.stdout + (("\n" + done.stderr) if done.stderr else "")
    return done.returncode == 0, output

"""Adapters that run generated queries on real engines.

The test suite uses them to prove that converted rules are correct:

* :mod:`cqlx.engines.kusto_language` - Microsoft's Kusto.Language parser and
  semantic analyser (through Node), for KQL that a real Kusto would accept;
* :mod:`cqlx.engines.duckdb_kql` - KQL executed on DuckDB by duckdb-kql;
* :mod:`cqlx.engines.sigma_sqlite` - Sigma rules converted by pySigma's sqlite
  backend and run on SQLite, plus ``sigma check``.

None of the engines is a runtime dependency of cqlx: each adapter imports or
locates its engine only when called and raises :class:`EngineUnavailable` when
it is missing.
"""

from __future__ import annotations

__all__ = ["EngineError", "EngineUnavailable"]


class EngineUnavailable(RuntimeError):
    """The engine an adapter needs is not installed or cannot be found.

    The message says what is missing and how to install it.
    """


class EngineError(RuntimeError):
    """The engine was found but failed to run (a crash, not a finding about the query)."""

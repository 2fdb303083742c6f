"""Check KQL with Microsoft's Kusto.Language parser and semantic analyser.

Kusto.Language ships on npm as ``@kusto/language-service-next`` (C# compiled to
JavaScript with Bridge.NET). This module runs ``kusto_check.js`` under Node: one
process loads the library once and analyses every query of a call against the
tables given, so a whole test module can be checked for the price of one start.

The package is found, in order, in:

1. the ``node_modules`` directory named by ``CQLX_KUSTO_NODE_MODULES``;
2. ``tools/kusto/node_modules``, looked for in the current directory, the
   directory of this file, and every parent of both (``npm ci --prefix tools/kusto``
   installs it there);
3. the global ``node_modules`` that ``npm root -g`` reports.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from cqlx.engines import EngineError, EngineUnavailable
from cqlx.frozen import Frozen, record

__all__ = [
    "NODE_MODULES_ENV",
    "PACKAGE",
    "KustoDiagnostic",
    "analyze",
    "errors",
    "kusto_unavailable_reason",
    "string_literals",
]

PACKAGE = "@kusto/language-service-next"
NODE_MODULES_ENV = "CQLX_KUSTO_NODE_MODULES"

_SCRIPT = Path(__file__).with_name("kusto_check.js")
_REQUIRED_FILES = ("bridge.js", "Kusto.Language.Bridge.js")
_INSTALL_HINT = "run `npm ci --prefix tools/kusto`"
#: Seconds for one Node run: loading the library takes about a second, each query milliseconds.
_TIMEOUT = 600.0


@record
class KustoDiagnostic(Frozen):
    """One diagnostic of Kusto.Language for a query.

    ``severity`` is Kusto's name (``Error``, ``Warning``, ``Suggestion``, ``Information``);
    ``start`` and ``length`` are in characters (code points) of the query text.
    """

    severity: str
    code: str
    start: int
    length: int
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == "Error"

    def excerpt(self, query: str) -> str:
        """The part of *query* the diagnostic points at (may be empty, e.g. for "Expected: )")."""
        return query[self.start : self.start + self.length]


def _node() -> str | None:
    return shutil.which("node")


@functools.cache
def _npm_root_global() -> Path | None:
    npm = shutil.which("npm")
    if npm is None:
        return None
    try:
        done = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    root = done.stdout.strip()
    if done.returncode != 0 or not root:
        return None
    return Path(root)


def _ancestors(start: Path) -> Iterator[Path]:
    start = start.resolve()
    yield start
    yield from start.parents


def _candidate_node_modules() -> Iterator[Path]:
    configured = os.environ.get(NODE_MODULES_ENV)
    if configured:
        yield Path(configured)
    seen: set[Path] = set()
    for start in (Path.cwd(), Path(__file__).parent):
        for directory in _ancestors(start):
            candidate = directory / "tools" / "kusto" / "node_modules"
            if candidate not in seen:
                seen.add(candidate)
                yield candidate
    global_root = _npm_root_global()
    if global_root is not None:
        yield global_root


def _package_dir(node_modules: Path) -> Path:
    return node_modules.joinpath(*PACKAGE.split("/"))


def _is_installed(package_dir: Path) -> bool:
    return all((package_dir / name).is_file() for name in _REQUIRED_FILES)


def _locate() -> tuple[str, Path] | str:
    """``(node, package_dir)``, or the reason they cannot be had."""
    node = _node()
    if node is None:
        return "node not found on PATH (install Node.js 18 or later)"
    if not _SCRIPT.is_file():
        return f"{_SCRIPT} is missing from the cqlx installation"
    configured = os.environ.get(NODE_MODULES_ENV)
    if configured:
        # An explicit setting that is wrong is reported, not silently replaced by another copy.
        package_dir = _package_dir(Path(configured))
        if not _is_installed(package_dir):
            return f"npm package {PACKAGE} not found in {NODE_MODULES_ENV}={configured}"
        return node, package_dir
    for node_modules in _candidate_node_modules():
        package_dir = _package_dir(node_modules)
        if _is_installed(package_dir):
            return node, package_dir
    return f"npm package {PACKAGE} not installed: {_INSTALL_HINT}"


def kusto_unavailable_reason() -> str | None:
    """Why :func:`analyze` cannot run here, or ``None`` when node and the npm package are found."""
    found = _locate()
    return found if isinstance(found, str) else None


def _check_tables(tables: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, list[list[str]]]:
    checked: dict[str, list[list[str]]] = {}
    for name, columns in tables.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"table name must be a non-empty string, not {name!r}")
        rows: list[list[str]] = []
        for column in columns:
            col_name, col_type = column
            if not isinstance(col_name, str) or not isinstance(col_type, str):
                raise ValueError(f"table {name}: column must be (name, type) strings, not {column!r}")
            rows.append([col_name, col_type])
        checked[name] = rows
    return checked


def _parse_diagnostic(raw: object) -> KustoDiagnostic:
    if not isinstance(raw, dict):
        raise EngineError(f"kusto_check.js wrote an unexpected diagnostic: {raw!r}")
    return KustoDiagnostic(
        severity=str(raw["severity"]),
        code=str(raw["code"]),
        start=int(raw["start"]),
        length=int(raw["length"]),
        message=str(raw["message"]),
    )


def string_literals(queries: Sequence[str]) -> list[list[str]]:
    """The value of every string literal in each query (``['name']`` brackets included), as
    Kusto.Language reads it: the proof that a value cqlx escaped reads back as itself."""
    return _run([str(q) for q in queries], {}, literals=True)[1]


def analyze(
    queries: Sequence[str], tables: Mapping[str, Sequence[tuple[str, str]]]
) -> list[list[KustoDiagnostic]]:
    """Parse and semantically analyse each query against *tables* with Kusto.Language.

    *tables* maps a table name to its columns as ``(name, kql_type)`` pairs. Returns,
    for each query in order, all of its diagnostics (errors, warnings and suggestions;
    callers usually keep only ``severity == "Error"``, see :func:`errors`).

    Raises :class:`~cqlx.engines.EngineUnavailable` when node or the npm package is
    missing, :class:`~cqlx.engines.EngineError` when the checker fails, and
    :class:`ValueError` for a malformed table (for example an unknown column type).
    """
    if isinstance(queries, str):
        raise TypeError("queries must be a sequence of strings, not a single string")
    return _run([str(q) for q in queries], tables)[0]


def _run(query_list: list[str], tables: Mapping[str, Sequence[tuple[str, str]]], literals: bool = False
         ) -> tuple[list[list[KustoDiagnostic]], list[list[str]]]:
    request: dict[str, object] = {"tables": _check_tables(tables), "queries": query_list, "literals": literals}
    found = _locate()
    if isinstance(found, str):
        raise EngineUnavailable(found)
    if not query_list:
        return [], []
    node, package_dir = found
    try:
        done = subprocess.run(
            [node, str(_SCRIPT), str(package_dir)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"kusto_check.js did not finish in {_TIMEOUT:.0f} s") from exc
    except OSError as exc:
        raise EngineUnavailable(f"cannot run {node}: {exc}") from exc
    if done.returncode == 2:
        raise ValueError(done.stderr.strip() or "kusto_check.js rejected the request")
    if done.returncode == 3:
        raise EngineUnavailable(done.stderr.strip())
    if done.returncode != 0:
        raise EngineError(
            f"kusto_check.js exited with status {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    try:
        response = json.loads(done.stdout)
        results = response["results"]
        values = response.get("literals", [])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise EngineError(f"kusto_check.js wrote an unreadable answer: {done.stdout[:500]!r}") from exc
    if not isinstance(results, list) or len(results) != len(query_list):
        raise EngineError("kusto_check.js answered for a different number of queries")
    diagnostics = [[_parse_diagnostic(raw) for raw in per_query] for per_query in results]
    return diagnostics, [[str(v) for v in per_query] for per_query in values]


def errors(diagnostics: Sequence[KustoDiagnostic]) -> list[KustoDiagnostic]:
    """The diagnostics of severity ``Error`` - the ones that make Kusto refuse a query."""
    return [d for d in diagnostics if d.is_error]

"""What a query is read with besides its text: values for its parameters (``?name``) and the
saved searches its ``$name()`` calls may name. The CLI's ``--param`` and ``--saved-searches``
build one :class:`ParseOptions` and every rule it loads carries it (batch workers too)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cqlx.errors import RuleFileError
from cqlx.frozen import Frozen, record


@record
class ParseOptions(Frozen):
    """``params``: (name, value) pairs for ``?name``; ``saved_searches``: (name, query) pairs, a
    saved search under its own name and, from a LogScale package, also as ``package:name``."""

    params: tuple[tuple[str, str], ...] = ()
    saved_searches: tuple[tuple[str, str], ...] = ()

    @property
    def param_values(self) -> dict[str, str] | None:
        return dict(self.params) or None

    @property
    def saved(self) -> dict[str, str] | None:
        return dict(self.saved_searches) or None


def parse_params(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``NAME=VALUE`` strings as pairs; :class:`ValueError` names one without ``=`` or a name."""
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{value!r} is not NAME=VALUE")
        pairs[name.strip()] = rest
    return tuple(pairs.items())


def _documents(path: Path) -> list[Any]:
    import yaml  # only with --saved-searches: its import is ~40 ms of a cold start

    try:
        return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RuleFileError(f"cannot read saved searches from {path}: {error}", filename=str(path)) from None


def _package_name(directory: Path) -> str | None:
    """A LogScale package's name (``scope/package``), from its manifest."""
    for name in ("manifest.yaml", "manifest.yml"):
        manifest = directory / name
        if manifest.is_file():
            documents = _documents(manifest)
            if documents and isinstance(documents[0], Mapping) and isinstance(documents[0].get("name"), str):
                return str(documents[0]["name"])
    return None


def load_saved_searches(paths: Iterable[str | Path]) -> tuple[tuple[str, str], ...]:
    """Saved searches from YAML files holding ``name`` and ``queryString`` (a LogScale package's
    saved-search assets; several YAML documents per file are fine), or from directories searched
    for them (a package directory: its manifest's name also qualifies each, ``package:name``).
    Files without a ``queryString`` (a package's other assets) are passed over."""
    found: dict[str, str] = {}
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            package = _package_name(path)
            files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.is_file():
            package, files = None, [path]
        else:
            raise RuleFileError(f"saved searches: {path} does not exist", filename=str(path))
        for file in files:
            for document in _documents(file):
                if not isinstance(document, Mapping):
                    continue
                name, query = document.get("name"), document.get("queryString")
                if isinstance(name, str) and isinstance(query, str) and name:
                    found[name] = query
                    if package:
                        found[f"{package}:{name}"] = query
    return tuple(sorted(found.items()))

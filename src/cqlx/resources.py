"""Where the data files live: inside the installed package, or at the top of a source checkout.

``grammar/`` and ``backends/`` sit at the repository's top level (they are the specification, not
code) and the wheel ships them inside the package as ``cqlx/grammar`` and ``cqlx/backends``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_path(kind: str, name: str) -> Path:
    """Path of ``kind/name`` (``grammar/cql.lark``, ``backends/mde.yaml``)."""
    for base in (_PACKAGE / kind, _PACKAGE.parent.parent / kind):
        candidate = base / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"cqlx data file {kind}/{name} is missing from the installation")


def data_dir(kind: str) -> Path:
    """The directory holding ``kind`` data files."""
    for base in (_PACKAGE / kind, _PACKAGE.parent.parent / kind):
        if base.is_dir():
            return base
    raise FileNotFoundError(f"cqlx data directory {kind}/ is missing from the installation")

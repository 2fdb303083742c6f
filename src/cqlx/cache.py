"""What cqlx keeps between runs, in one private directory: Lark's LALR tables (:mod:`cqlx.parser`),
the rules ``cqlx run`` compiled, and what a one-rule command read (the rule file, its IR, the
profiles), so that running it again neither parses CQL nor imports PyYAML.

A rule is compiled again only when something that decides what it compiles to has changed: the
query's text, its ``--param`` values and saved searches, the profile, the rule's title, cqlx's own
files (their sizes and modification times) or Python's version. A run that finds its rule here
skips the parser, lowering and code generation (the seed's start: 0.20 s -> 0.14 s), and
imports neither Lark nor the lowering modules. ``CQLX_NO_CACHE=1`` turns it off; an entry that
cannot be read is compiled again, one that cannot be written only costs the next run its compile.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

#: Compiled rules kept; past this, the least recently written go.
MAX_RULES = 256
_PACKAGE = Path(__file__).resolve().parent
_SUFFIX = ".rule.pickle"
#: The kind of entry a profile read from YAML is kept as: a library's batch keeps its profiles
#: (read once per process), not its rules.
PROFILES = ".profile.pickle"


def cache_dir() -> Path | None:
    """Where cqlx's caches are kept: ``$XDG_CACHE_HOME/cqlx`` (``~/.cache/cqlx``), created private
    to the user. None, so nothing is kept, when it cannot be created or is not the user's own
    private directory (files there are unpickled: no other user may be able to write them)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = Path(base) / "cqlx"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = directory.stat()
    except OSError:
        return None
    if hasattr(os, "getuid") and (status.st_uid != os.getuid() or status.st_mode & 0o022):
        return None
    return directory


@cache
def _fingerprint() -> str:
    """cqlx's own files (code, and the grammar and profiles, which a source checkout keeps at its
    top level) by path, size and modification time, and Python's version: an installed upgrade or
    an edited checkout changes it."""
    from cqlx.resources import data_dir

    files = {p for p in _PACKAGE.rglob("*") if "__pycache__" not in p.parts}
    for kind in ("grammar", "backends"):
        files |= set(data_dir(kind).rglob("*"))
    parts = [sys.version]
    for path in sorted(files):
        if path.suffix in (".py", ".lark", ".yaml", ".yml"):
            status = path.stat()
            parts.append(f"{path}\0{status.st_size}\0{status.st_mtime_ns}")
    return "\n".join(parts)


def rule_key(*parts: str) -> str:
    """The name an entry is kept under, for what the compiled rule was made from."""
    digest = hashlib.sha256("\0\0".join([_fingerprint(), *parts]).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:40]


def _rule_path(key: str, suffix: str) -> Path | None:
    if os.environ.get("CQLX_NO_CACHE"):
        return None
    directory = cache_dir()
    return None if directory is None else directory / f"{key}{suffix}"


def load_rule(key: str, suffix: str = _SUFFIX) -> Any:
    """The entry kept under ``key``, or None (not kept, unreadable, or the cache is off). ``suffix``:
    the kind of entry (rules, by default, or :data:`PROFILES`), each kind with its own limit."""
    path = _rule_path(key, suffix)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception:  # not kept, damaged, truncated, or of classes since changed: compile again
        return None


def save_rule(key: str, value: Any, suffix: str = _SUFFIX) -> None:
    """Keep ``value`` under ``key`` (written whole or not at all), then drop the oldest entries of its
    kind past :data:`MAX_RULES`."""
    path = _rule_path(key, suffix)
    if path is None:
        return
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(partial, "wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)
        kept = sorted(path.parent.glob(f"*{suffix}"), key=lambda p: p.stat().st_mtime_ns)
        for old in kept[:-MAX_RULES]:
            old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError, RecursionError):  # a full disk, a read-only directory
        partial.unlink(missing_ok=True)


def kept(key: str, kind: type[_T], make: Callable[[], _T], suffix: str = _SUFFIX) -> _T:
    """The ``kind`` kept under ``key``; else ``make()``'s, kept for the next process. An error
    ``make`` raises is not kept: it is raised again, with its position, each time."""
    found = load_rule(key, suffix)
    if isinstance(found, kind):
        return found
    value = make()
    save_rule(key, value, suffix)
    return value

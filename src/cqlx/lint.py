"""Lint notes on a parsed query that do not depend on a target: how the Python matcher will run it.

``cqlx check`` prints these next to each target's diagnostics.
"""

from __future__ import annotations

from cqlx import ir
from cqlx.ast import Span
from cqlx.passes import atoms
from cqlx.regexes import BACKTRACKING, features, linear_plan


def regex_engine_notes(query: ir.Query, limit_ms: float = 50) -> list[tuple[Span, str]]:
    """One note per regex RE2 cannot run with the same meaning: the matcher runs it on Python's
    backtracking ``re``, where a hostile value can take exponential time, so each search is
    bounded (``cqlx run --regex-timeout``) and an event that hits the bound is undecided."""
    from cqlx.emit.python import re2_compiles

    notes: list[tuple[Span, str]] = []
    for atom in atoms(query):
        if isinstance(atom, ir.Regex):
            pattern, flags = atom.pattern, atom.flags
        elif isinstance(atom, ir.FreeText) and atom.regex:
            pattern, flags = atom.value, atom.flags
        else:
            continue
        plan = linear_plan(pattern, flags)
        if plan is not None and re2_compiles(plan.pattern):
            continue
        uses = sorted(features(pattern) & BACKTRACKING)
        why = ("it uses " + ", ".join(uses)) if uses else "RE2 reads its syntax differently or cannot hold it"
        notes.append((atom.span, f"regex /{pattern}/ needs a backtracking engine ({why}): the Python matcher "
                                 f"bounds each search at {limit_ms:g} ms, and an event past it is undecided"))
    return notes

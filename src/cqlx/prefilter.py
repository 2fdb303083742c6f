"""Literal prefilters: what every matching event's raw JSON line must contain.

For each conjunct of a rule's filters, the set of literals at least one of which a matching value
must contain (``/\\/(docker|kubectl)$/i`` → ``docker`` or ``kubectl``, ignoring case). A line that
contains none of them cannot match and need not be parsed. Soundness rules:

- literals are cut at characters JSON may write escaped (``"``, ``\\``, ``/`` as ``\\/``, control
  characters, non-ASCII as ``\\uXXXX``): only a piece of plain ASCII is required, which is weaker;
- a line holding any ``\\u`` escape is always kept (it could spell a literal in escapes);
- case-insensitive literals are compared with the line lowered (ASCII only, which is what the
  matcher's ``re.ASCII | re.IGNORECASE`` folds);
- anything the analysis does not understand gives no prefilter for that conjunct (keep the line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cqlx import ir
from cqlx.regexes import INLINE_FLAGS, features, sre_parse, to_python
from cqlx.regexes import sre_constants as C

AT, BRANCH, IN, LITERAL = C.AT, C.BRANCH, C.IN, C.LITERAL
MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT, SUBPATTERN = C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT, C.SUBPATTERN

_SAFE = re.compile(r"[A-Za-z0-9 !#$%&'()*+,\-.:;<=>?@\[\]^_`{|}~]+")
MIN_LITERAL = 3  # shorter literals would keep nearly every line: no better than no prefilter


@dataclass(frozen=True)
class Need:
    """At least one of ``literals`` occurs in a matching line (lowered first when ``folded``)."""

    literals: tuple[bytes, ...]
    folded: bool

    @property
    def weakest(self) -> int:
        return min(len(x) for x in self.literals)


@dataclass(frozen=True)
class Prefilter:
    """Needs that every matching line satisfies; ``scan`` is the one used to find candidates."""

    needs: tuple[Need, ...]
    scan: Need | None


def _safe_piece(text: str) -> str | None:
    pieces = _SAFE.findall(text)
    best = max(pieces, key=len, default="")
    return best if len(best) >= MIN_LITERAL else None


# ---------------------------------------------------------------- regex analysis

# An analysis result: the alternatives of required literal strings (any one occurs), or None.
Alts = frozenset[str] | None


def _exact(items: Any, folded: bool) -> frozenset[str] | None:
    """The finite set of strings a (small, literal-only) subpattern matches, or None."""
    results: frozenset[str] = frozenset({""})
    for op, arg in items:
        if op is LITERAL:
            char = chr(arg).lower() if folded else chr(arg)
            results = frozenset(r + char for r in results)
        elif op is SUBPATTERN:
            inner = _exact(arg[-1], folded)
            if inner is None:
                return None
            results = frozenset(a + b for a in results for b in inner)
        elif op is BRANCH:
            options: set[str] = set()
            for branch in arg[1]:
                inner = _exact(branch, folded)
                if inner is None:
                    return None
                options |= inner
            results = frozenset(a + b for a in results for b in options)
        elif op is IN and all(kind is LITERAL for kind, _ in arg) and len(arg) <= 8:
            chars = {chr(code).lower() if folded else chr(code) for _, code in arg}
            results = frozenset(r + c for r in results for c in chars)
        elif op is AT:
            continue
        else:
            return None
        if len(results) > 64:
            return None
    return results


def _required(items: Any, folded: bool) -> Alts:
    """Alternatives of literals one of which any match of the sequence contains."""
    exact = _exact(items, folded)
    if exact is not None:
        return exact if all(exact) else None
    best: Alts = None
    run: list[tuple[Any, Any]] = []

    def consider(candidate: Alts) -> None:
        nonlocal best
        if candidate and all(candidate) and (best is None or min(map(len, candidate)) > min(map(len, best))):
            best = candidate

    for op, arg in items:
        if op in (LITERAL, AT):
            run.append((op, arg))
            continue
        if run:
            consider(_exact(run, folded))
            run = []
        if op is SUBPATTERN:
            consider(_required(arg[-1], folded))
        elif op is BRANCH:
            options: set[str] = set()
            for branch in arg[1]:
                inner = _required(branch, folded)
                if inner is None:
                    options = set()
                    break
                options |= inner
            consider(frozenset(options) if options else None)
        elif op in (MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT) and arg[0] >= 1:
            consider(_required(arg[2], folded))
    if run:
        consider(_exact(run, folded))
    return best


def regex_need(pattern: str, flags: str) -> Need | None:
    if INLINE_FLAGS in features(pattern):
        return None  # (?i) inside the pattern changes case rules part-way: keep every line
    folded = "i" in flags
    try:
        parsed = sre_parse.parse(to_python(pattern), re.ASCII | (re.IGNORECASE if folded else 0))
    except (re.error, RecursionError, OverflowError):
        return None
    alternatives = _required(list(parsed), folded)
    return _need(alternatives, folded)


_NUMBER_LIKE = re.compile(r"[0-9.eE+\-]+")


def _need(alternatives: Alts, folded: bool) -> Need | None:
    if not alternatives:
        return None
    if any(_NUMBER_LIKE.fullmatch(x) for x in alternatives):
        return None  # a JSON number may spell the same value otherwise (1e16 for 10000000000000000)
    pieces = []
    for literal in alternatives:
        piece = _safe_piece(literal)
        if piece is None:
            return None
        pieces.append(piece.lower() if folded else piece)
    unique = sorted(set(pieces), key=lambda x: (-len(x), x))
    # A literal that contains another is implied by it: keep the shorter one only.
    kept = [p for p in unique if not any(q != p and q in p for q in unique)]
    return Need(tuple(p.encode("ascii") for p in sorted(kept)), folded)


# ---------------------------------------------------------------- predicates


def pred_need(pred: ir.Pred) -> Need | None:
    if isinstance(pred, ir.Regex):
        return regex_need(pred.pattern, pred.flags)
    if isinstance(pred, ir.Eq | ir.Glob):
        text = pred.value if isinstance(pred, ir.Eq) else max(pred.pattern.split("*"), key=len)
        return _need(frozenset({text}) if text else None, pred.ignore_case)
    if isinstance(pred, ir.In) and not any("*" in v for v in pred.values):
        return _need(frozenset(pred.values), pred.ignore_case)
    if isinstance(pred, ir.FreeText) and not pred.regex:
        return _need(frozenset({pred.value}), False)
    if isinstance(pred, ir.FreeText):
        return regex_need(pred.value, pred.flags)
    if isinstance(pred, ir.Or):
        needs = [pred_need(p) for p in pred.items]
        if any(n is None for n in needs) or len({n.folded for n in needs if n}) != 1:
            return None
        literals = tuple(sorted({x for n in needs if n for x in n.literals}))
        return Need(literals, needs[0].folded if needs[0] else False)
    return None  # Not, Cmp, Exists, ExprTest: nothing a line must contain


def build(query: ir.Query) -> Prefilter:
    """The prefilter of a rule: needs from its leading filters (before anything that computes)."""
    needs: list[Need] = []
    source_needs: list[Need] = []
    if query.source.event_types:
        need = _need(frozenset(query.source.event_types), False)
        if need:
            source_needs.append(need)
    for step in query.steps:
        if not isinstance(step, ir.Filter):
            break  # later filters may test computed fields, which the raw line does not hold
        conjuncts = step.pred.items if isinstance(step.pred, ir.And) else (step.pred,)
        for conjunct in conjuncts:
            need = pred_need(conjunct)
            if need is not None:
                needs.append(need)
    # Scanning costs one pass over the data per literal: scan for the need with the fewest
    # literals (then the longest). The event type is in nearly every line, so it is checked per
    # candidate but never scanned for.
    scan = min(needs, key=lambda n: (len(n.literals), -n.weakest), default=None)
    return Prefilter(tuple(needs + source_needs), scan)

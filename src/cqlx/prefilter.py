"""Literal prefilters: what every matching event's raw JSON line must contain.

For each conjunct of a rule's filters, the set of literals at least one of which a matching value
must contain (``/\\/(docker|kubectl)/i`` → ``docker`` or ``kubectl``, ignoring case). A line that
contains none of them cannot match and need not be parsed. Soundness rules:

- literals are cut at characters JSON may write escaped (``"``, ``\\``, ``/`` as ``\\/``, control
  characters, non-ASCII as ``\\uXXXX``): only a piece of plain ASCII is required, which is weaker;
- a line holding any ``\\u`` escape is always kept (it could spell a literal in escapes);
- case-insensitive literals are compared ignoring ASCII case, which is what the matcher's
  ``re.ASCII | re.IGNORECASE`` folds. Equality, globs and ``in()`` with ``ignoreCase`` fold Unicode
  (``str.lower``, ``re.IGNORECASE``), where U+212A (Kelvin sign), U+017F, U+0131 and U+0130 meet
  ``k``, ``s`` and ``i``: their literals are also cut at those three letters;
- a text anchored at the start or end of the value (``^``, ``$``, ``\\A``, ``\\Z``, an equality, a
  glob's first or last part) sits right after or before the value's quote in JSON (or a ``\\n``
  escape, where ``$`` or multi-line ``^`` allow a newline there), so the quote is required too:
  ``/\\/docker$/`` needs ``docker"``. Not when the text could be all or part of the text the
  matcher reads from a JSON number, ``true`` or ``false``, which have no quotes;
- anything the analysis does not understand gives no prefilter for that conjunct (keep the line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from cqlx import ir
from cqlx.frozen import Frozen, record
from cqlx.regexes import INLINE_FLAGS, features, sre_parse, to_python
from cqlx.regexes import sre_constants as C

AT, BRANCH, IN, LITERAL = C.AT, C.BRANCH, C.IN, C.LITERAL
MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT, SUBPATTERN = C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT, C.SUBPATTERN

_SAFE = re.compile(r"[A-Za-z0-9 !#$%&'()*+,\-.:;<=>?@\[\]^_`{|}~]+")
# The same without the letters that non-ASCII characters fold to under Unicode case rules.
_SAFE_UNICODE_FOLD = re.compile(r"[A-HJLMN-RT-Za-hjlmn-rt-z0-9 !#$%&'()*+,\-.:;<=>?@\[\]^_`{|}~]+")
MIN_LITERAL = 3  # shorter literals would keep nearly every line: no better than no prefilter

QUOTE = '"'  # what JSON writes right before and after a string value
NEWLINE = "\\n"  # how JSON writes a newline inside a string (or \u000a, which any \u keeps)
# The texts the matcher reads from JSON values that are not strings, besides numbers (``nan`` and
# ``inf`` only where the standard library's json stands in for orjson).
_UNQUOTED = ("true", "false", "nan", "inf", "-inf")
_NUMBER_LIKE = re.compile(r"[0-9.eE+\-]+")


@record
class Need(Frozen):
    """At least one of ``literals`` occurs in a matching line (ignoring ASCII case when ``folded``;
    folded literals are lower case)."""

    literals: tuple[bytes, ...]
    folded: bool

    @property
    def weakest(self) -> int:
        return min(len(x) for x in self.literals)


@record
class Prefilter(Frozen):
    """Needs that every matching line satisfies; ``scan`` is the one used to find candidates."""

    needs: tuple[Need, ...]
    scan: Need | None


@record
class Alternative(Frozen):
    """A text that a match holds; ``before``/``after``: when the text starts or ends the value, what
    the JSON line holds right before or after it (one of them), else empty."""

    text: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


def _unquoted(text: str, before: bool, after: bool) -> bool:
    """Whether ``text`` could be (at the anchored ends) the text of a number, boolean, NaN or infinity."""
    if _NUMBER_LIKE.fullmatch(text):
        return True
    lowered = text.lower()
    return any((not before or x.startswith(lowered)) and (not after or x.endswith(lowered)) and lowered in x
               for x in _UNQUOTED)


def _literals(alternative: Alternative, folded: bool, unicode_fold: bool) -> list[str] | None:
    """The literals (any one) a line with this alternative holds: the best piece of plain ASCII,
    with the value's quote when the piece is where the value starts or ends."""
    text, before, after = alternative.text, alternative.before, alternative.after
    if (before or after) and _unquoted(text, bool(before), bool(after)):
        before = after = ()
    best: list[str] | None = None
    for found in (_SAFE_UNICODE_FOLD if unicode_fold else _SAFE).finditer(text):
        piece = found.group().lower() if folded else found.group()
        heads = before if before and found.start() == 0 else ("",)
        tails = after if after and found.end() == len(text) else ("",)
        variants = [head + piece + tail for head in heads for tail in tails]
        if min(map(len, variants)) >= MIN_LITERAL and (best is None or min(map(len, variants)) > min(map(len, best))):
            best = variants
    return best


def _need(alternatives: Iterable[Alternative] | None, folded: bool, unicode_fold: bool = False) -> Need | None:
    """The need of a set of alternatives (a match holds one of them), or None when one of them
    gives no literal."""
    if alternatives is None:
        return None
    alternatives = list(alternatives)
    if not alternatives or any(not a.text for a in alternatives):
        return None
    if any(_NUMBER_LIKE.fullmatch(a.text) for a in alternatives):
        return None  # a JSON number may spell the same value otherwise (1e16 for 10000000000000000)
    pieces: set[str] = set()
    for alternative in alternatives:
        literals = _literals(alternative, folded, unicode_fold)
        if literals is None:
            return None
        pieces.update(literals)
    unique = sorted(pieces, key=lambda x: (-len(x), x))
    # A literal that contains another is implied by it: keep the shorter one only.
    kept = [p for p in unique if not any(q != p and q in p for q in unique)]
    return Need(tuple(p.encode("ascii") for p in sorted(kept)), folded)


def _plain(texts: Iterable[str]) -> list[Alternative]:
    return [Alternative(text) for text in texts]


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


def _anchored(items: Any, folded: bool, multiline: bool) -> list[Alternative] | None:
    """The strings of a literal-only pattern with its anchors: ``^abc$`` is ``"abc"`` in the line.
    A pattern that is one alternation at the top (``^a$|b``) is read branch by branch."""
    if len(items) == 1 and items[0][0] is BRANCH:
        alternatives: list[Alternative] = []
        for branch in items[0][1][1]:
            inner = _anchored(branch, folded, multiline)
            if inner is None:
                return None
            alternatives += inner
        return alternatives
    exact = _exact(items, folded)
    if exact is None or not all(exact):
        return None
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    if items and items[0][0] is AT:
        if items[0][1] is C.AT_BEGINNING_STRING or (items[0][1] is C.AT_BEGINNING and not multiline):
            before = (QUOTE,)
        elif items[0][1] is C.AT_BEGINNING:
            before = (QUOTE, NEWLINE)
    if items and items[-1][0] is AT:
        if items[-1][1] is C.AT_END_STRING:
            after = (QUOTE,)
        elif items[-1][1] is C.AT_END:  # the end, or before a (final, unless multi-line) newline
            after = (QUOTE, NEWLINE)
    return [Alternative(text, before, after) for text in sorted(exact)]


def regex_need(pattern: str, flags: str) -> Need | None:
    if INLINE_FLAGS in features(pattern):
        return None  # (?i) inside the pattern changes case rules part-way: keep every line
    folded = "i" in flags
    try:
        parsed = list(sre_parse.parse(to_python(pattern), re.ASCII | (re.IGNORECASE if folded else 0)))
    except (re.error, RecursionError, OverflowError):
        return None
    anchored = _need(_anchored(parsed, folded, "m" in flags), folded)
    if anchored is not None:
        return anchored
    required = _required(parsed, folded)
    return _need(_plain(required) if required else None, folded)


# ---------------------------------------------------------------- predicates


def _glob_need(pattern: str, ignore_case: bool) -> Need | None:
    """A glob matches the whole value: its first part starts it, its last part ends it, and every
    part is required; the part with the longest literal is kept."""
    parts = pattern.split("*")
    best: Need | None = None
    for index, part in enumerate(parts):
        before = (QUOTE,) if index == 0 else ()
        after = (QUOTE,) if index == len(parts) - 1 else ()
        need = _need([Alternative(part, before, after)], ignore_case, ignore_case) if part else None
        if need is not None and (best is None or need.weakest > best.weakest):
            best = need
    return best


def pred_need(pred: ir.Pred) -> Need | None:
    if isinstance(pred, ir.Regex):
        return regex_need(pred.pattern, pred.flags)
    if isinstance(pred, ir.Eq):
        exact = [Alternative(pred.value, (QUOTE,), (QUOTE,))] if pred.value else None
        return _need(exact, pred.ignore_case, pred.ignore_case)
    if isinstance(pred, ir.Glob):
        return _glob_need(pred.pattern, pred.ignore_case)
    if isinstance(pred, ir.In) and not any("*" in v for v in pred.values):
        values = [Alternative(v, (QUOTE,), (QUOTE,)) for v in pred.values]
        return _need(values, pred.ignore_case, pred.ignore_case)
    if isinstance(pred, ir.FreeText) and not pred.regex:
        return _need([Alternative(pred.value)], False)
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
        # A source test that is not an exact equality (/^ProcessRollup2$/i) needs what the test needs.
        test = query.source.types_test
        need = pred_need(test) if test is not None else \
            _need([Alternative(t, (QUOTE,), (QUOTE,)) for t in query.source.event_types], False)
        if need:
            source_needs.append(need)
    for step in query.steps:
        if isinstance(step, ir.Extract) and step.strict:
            need = pred_need(step.test)  # the regex must match; what it extracts is computed
            if need is not None:
                needs.append(need)
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

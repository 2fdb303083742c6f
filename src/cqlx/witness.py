"""Witness events: positive and negative events derived from a rule's IR, so that every rule gets a
differential test without hand-written events.

For each signal and severity tier the generator builds an event that reaches it and events that
just miss: the signal's text in the other letter case (a case-sensitive test must then fail, a
case-insensitive one must still hold), the field missing, a tier's minimal set of signals less one.
Strings come from the regexes themselves (Python's regex parser walks the pattern). Labels are not
guessed: the Python matcher, the reference semantics, decides what each witness should give, and
every other engine is compared with it. Deterministic: the same rule and seed give the same events.
"""

from __future__ import annotations

import random
import re
from typing import Any

from cqlx import ir
from cqlx.emit.sigma import minimal_sets
from cqlx.frozen import Frozen, record
from cqlx.passes import pred_fields, step_writes
from cqlx.regexes import python_flags, sre_parse, to_python
from cqlx.regexes import sre_constants as C

MAX_REPEAT_SAMPLE = 3


@record
class Witness(Frozen):
    name: str  # what the event exercises, e.g. "signal HostMount, other case"
    event: dict[str, Any]


def sample(pattern: str, flags: str, rng: random.Random) -> str | None:
    """A string the pattern matches (searched), or None when the pattern is beyond the sampler."""
    try:
        parsed = sre_parse.parse(to_python(pattern), python_flags(flags))
    except Exception:
        return None
    out: list[str] = []
    try:
        _emit(list(parsed), rng, out, 0)
    except _Unsupported:
        return None
    return "".join(out)


class _Unsupported(Exception):
    pass


_CATEGORY = {
    "CATEGORY_DIGIT": "7", "CATEGORY_NOT_DIGIT": "x", "CATEGORY_SPACE": " ", "CATEGORY_NOT_SPACE": "x",
    "CATEGORY_WORD": "w", "CATEGORY_NOT_WORD": "-",
}


def _class_char(items: Any, rng: random.Random) -> str:
    negate = any(op is C.NEGATE for op, _ in items)
    if negate:
        excluded: set[int] = set()
        for op, arg in items:
            if op is C.LITERAL:
                excluded.add(arg)
            elif op is C.RANGE:
                excluded.update(range(arg[0], arg[1] + 1))
        for candidate in "xqz7_-Q ":
            if ord(candidate) not in excluded:
                return candidate
        raise _Unsupported
    options: list[str] = []
    for op, arg in items:
        if op is C.LITERAL:
            options.append(chr(arg))
        elif op is C.RANGE:
            options.append(chr(arg[0]))
        elif op is C.CATEGORY:
            options.append(_CATEGORY.get(str(arg), "x"))
    if not options:
        raise _Unsupported
    return rng.choice(options)


def _emit(items: Any, rng: random.Random, out: list[str], depth: int) -> None:
    if depth > 50:
        raise _Unsupported
    for op, arg in items:
        if op is C.LITERAL:
            out.append(chr(arg))
        elif op is C.NOT_LITERAL:
            out.append("x" if arg != ord("x") else "y")
        elif op is C.ANY:
            out.append("x")
        elif op is C.IN:
            out.append(_class_char(arg, rng))
        elif op is C.CATEGORY:
            out.append(_CATEGORY.get(str(arg), "x"))
        elif op is C.BRANCH:
            _emit(list(rng.choice(arg[1])), rng, out, depth + 1)
        elif op is C.SUBPATTERN:
            _emit(list(arg[-1]), rng, out, depth + 1)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)):
            low, high, inner = arg
            count = low if low > 0 else rng.choice((0, 1))
            count = min(max(count, low), MAX_REPEAT_SAMPLE if high == C.MAXREPEAT else high)
            for _ in range(count):
                _emit(list(inner), rng, out, depth + 1)
        elif op is C.AT:
            continue  # the sample is used as a whole value or on its own: anchors hold or the
            # reference says otherwise
        elif op is C.ASSERT or op is C.ASSERT_NOT:
            continue
        else:
            raise _Unsupported


# ---------------------------------------------------------------- conditions → field values


def _satisfy(pred: ir.Pred, rng: random.Random) -> dict[str, str] | None:
    """Field values that make a test hold (None when cqlx cannot construct them)."""
    if isinstance(pred, ir.Regex):
        text = sample(pred.pattern, pred.flags, rng)
        return None if text is None else {pred.field: text}
    if isinstance(pred, ir.Eq):
        return {pred.field: pred.value}
    if isinstance(pred, ir.Glob):
        return {pred.field: pred.pattern.replace("*", "x")}
    if isinstance(pred, ir.In):
        return {pred.field: rng.choice(pred.values).replace("*", "x")}
    if isinstance(pred, ir.Exists):
        return {pred.field: "present"}
    if isinstance(pred, ir.Cmp):
        value = pred.number + (1 if pred.op in (">",) else -1 if pred.op == "<" else 0)
        return {pred.field: str(value if pred.op != "!=" else pred.number + 1)}
    if isinstance(pred, ir.And):
        merged: dict[str, str] = {}
        for item in pred.items:
            part = _satisfy(item, rng)
            if part is None:
                return None
            _merge(merged, part)
        return merged
    if isinstance(pred, ir.Or):
        return _satisfy(rng.choice(pred.items), rng)
    if isinstance(pred, ir.ArrayAny):  # an element that passes, after one that does not
        element = _satisfy(pred.test, rng)
        if element is None:
            return None
        return {f"{pred.array}[0]": "-", f"{pred.array}[1]": element[pred.test.field]}
    if isinstance(pred, ir.Not | ir.TrueP):
        return {}
    return None


def _merge(into: dict[str, str], part: dict[str, str]) -> None:
    """Values for the same field are joined with a space: regex tests are searches, so each still
    finds its text (anchored ones may not: the reference decides)."""
    for field, value in part.items():
        into[field] = f"{into[field]} {value}" if field in into and value not in into[field] else \
            into.get(field, value)


def _holds(pred: ir.Pred, values: dict[str, str]) -> bool:
    """A quick check of a regex/equality test on constructed values (used only to choose samples)."""
    import re

    if isinstance(pred, ir.Regex) and pred.field in values:
        try:
            return re.search(to_python(pred.pattern), values[pred.field], python_flags(pred.flags)) is not None
        except re.error:
            return False
    if isinstance(pred, ir.Eq):
        return values.get(pred.field) == pred.value
    return False


def _flip_case(values: dict[str, str]) -> dict[str, str]:
    return {k: v.swapcase() for k, v in values.items()}


def _parser_fields(event: dict[str, Any], dropped: tuple[str, ...]) -> None:
    """Fill in what LogScale's Falcon parser derives on ingest, so that a witness is an event as
    LogScale holds it: ``FileName`` is the text after the last ``\\`` or ``/`` of ``ImageFileName``
    (unless the witness is about ``FileName`` missing)."""
    path = event.get("ImageFileName")
    if isinstance(path, str) and "FileName" not in event and "FileName" not in dropped:
        name = re.split(r"[\\/]", path)[-1]
        if name:  # a path ending in a separator names no file
            event["FileName"] = name


def _host(number: int) -> dict[str, str]:
    """The host fields every Falcon event carries: a name and an agent id (``aid``, 32 hex digits),
    which a target keys host facts on (Defender's DeviceInfo platform is joined on DeviceId)."""
    return {"ComputerName": f"witness-{number:03d}", "aid": f"{number:032x}"}


def _repeated_matches(query: ir.Query, values: dict[str, str], rng: random.Random) -> list[tuple[str, str]]:
    """For each ``regex(repeat=true)`` on an event field: the field's value with several more
    strings its regex matches after it, one more than its limit when that is small (a row per
    match, and the limit, are what the targets must agree on)."""
    found: list[tuple[str, str]] = []
    computed: set[str] = set()
    for step in query.steps:
        if isinstance(step, ir.Extract) and step.each and step.field not in computed:
            samples = [sample(step.pattern, step.flags, rng) for _ in range(min(step.each + 1, MAX_REPEAT_SAMPLE + 1))]
            if all(samples):
                found.append((step.field, " ".join([*filter(None, [values.get(step.field)]), *map(str, samples)])))
        computed |= step_writes(step)
    return found


def generate(query: ir.Query, seed: int = 0) -> list[Witness]:
    """Witness events for ``query``, deterministic for a given seed."""
    rng = random.Random(seed)
    base: dict[str, Any] = {}
    if query.source.event_types:
        base["#event_simpleName"] = query.source.event_types[0]
    if query.source.platforms:
        base["event_platform"] = query.source.platforms[0]
    # The filters on the event's own fields: a test of a field an earlier step computes (a length,
    # a renamed field) is not met by putting that field in the event.
    filters: list[ir.Pred] = []
    computed: set[str] = set()
    for step in query.steps:
        pred = step.pred if isinstance(step, ir.Filter) else step.test if (
            isinstance(step, ir.Extract) and step.strict) else None
        if pred is not None and not pred_fields(pred) & computed:
            filters.append(pred)
        computed |= step_writes(step)
    signals = [s for s in query.steps if isinstance(s, ir.Signal)]
    # The filters' values: of a few samples, the one that sets off the fewest signals, so that the
    # signal witnesses differ from the base by one signal each.
    best: tuple[int, dict[str, str]] | None = None
    for _ in range(12):
        candidate: dict[str, str] = {}
        for pred in filters:
            part = _satisfy(pred, rng)
            if part is not None:
                _merge(candidate, part)
        fired = sum(1 for s in signals if _holds(s.condition, candidate))
        if best is None or fired < best[0]:
            best = (fired, candidate)
    filter_values = best[1] if best else {}
    witnesses: list[Witness] = []
    number = 0

    seen: dict[str, int] = {}

    def add(name: str, values: dict[str, str], drop: tuple[str, ...] = ()) -> None:
        nonlocal number
        content = {**base, **values}
        for field in drop:
            content.pop(field, None)
        _parser_fields(content, drop)
        key = repr(sorted(content.items()))
        if key in seen:  # the same event exercises two things: say both
            index = seen[key]
            witnesses[index] = Witness(f"{witnesses[index].name}; {name}", witnesses[index].event)
            return
        seen[key] = len(witnesses)
        number += 1
        witnesses.append(Witness(name, {**_host(number), **content}))

    add("every filter holds, no signal", dict(filter_values))
    for field, text in _repeated_matches(query, filter_values, rng):
        add(f"{field} with several matches of regex(repeat=true)", {**filter_values, field: text})
    for field in sorted(filter_values):
        add(f"{field} missing", dict(filter_values), drop=(field,))
        add(f"{field} in the other letter case", {**filter_values, **_flip_case({field: filter_values[field]})})
        add(f"{field} upper case", {**filter_values, field: filter_values[field].upper()})
    if "#event_simpleName" in base:
        add("another event type", {**filter_values, "#event_simpleName": base["#event_simpleName"] + "X"})
        raw = dict(filter_values)
        raw.pop("#event_simpleName", None)
        number += 1
        fdr = {**_host(number), "event_simpleName": base["#event_simpleName"], **raw}
        _parser_fields(fdr, ())  # the event type's key in FDR's shape is what this witness is about
        witnesses.append(Witness("event type under event_simpleName (FDR shape)", fdr))
    signal_values: dict[str, dict[str, str]] = {}
    for signal in signals:
        values = _satisfy(signal.condition, rng)
        if values is None:
            continue
        signal_values[signal.name] = values
        merged = dict(filter_values)
        _merge(merged, values)
        add(f"signal {signal.name}", merged)
        flipped = dict(filter_values)
        _merge(flipped, _flip_case(values))
        add(f"signal {signal.name}, other letter case", flipped)
        upper = dict(filter_values)
        _merge(upper, {k: v.upper() for k, v in values.items()})
        add(f"signal {signal.name}, upper case", upper)
    ladder = next((s for s in query.steps if isinstance(s, ir.Ladder)), None)
    weights = {s.name: s.weight for s in signals if s.name in signal_values}
    if ladder is not None and weights:
        for tier in ladder.tiers:
            sets = minimal_sets(weights, tier.minimum) or []
            for combo in sets[:3]:
                merged = dict(filter_values)
                for name in combo:
                    _merge(merged, signal_values[name])
                add(f"tier {tier.label} reached by {', '.join(combo)}", merged)
                if len(combo) > 1:
                    short = dict(filter_values)
                    for name in combo[:-1]:
                        _merge(short, signal_values[name])
                    add(f"tier {tier.label} just missed (without {combo[-1]})", short)
    everything = dict(filter_values)
    for values in signal_values.values():
        _merge(everything, values)
    add("every signal", everything)
    return witnesses

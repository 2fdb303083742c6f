"""Tests on LogScale's ``#repo`` tag that a target profile answers.

``#repo`` is the repository an event is stored in (LogScale's built-in tag). A target holds no
such field, but a profile may say which LogScale repositories its events stand for
(``repositories:``, e.g. raw FDR in Splunk: Falcon's sensor repository ``base_sensor``). A leading
test on the tag is then known for every event of the target: true (it leaves the rule, exactly)
or false (the rule reads other data than the profile's: detection loss). An IR -> IR pass.
"""

from __future__ import annotations

import re
from dataclasses import replace

from cqlx import ir
from cqlx.passes import fold_expr_preds, leading_conjuncts, pred_fields, step_writes
from cqlx.regexes import glob_to_regex, python_error, python_flags, to_python

#: LogScale's repository tag.
REPO_TAG = "#repo"


def tag_truth(pred: ir.Pred, tag: str, value: str) -> bool | None:
    """Whether ``pred`` holds for an event whose only known field is ``tag`` = ``value``, by the
    Python matcher's semantics; None when the test reads anything else or is not one cqlx decides
    here (it is then kept in the rule)."""
    if isinstance(pred, ir.TrueP):
        return True
    if pred_fields(pred) != {tag}:
        return None  # (tested first: most of a rule reads other fields)
    if isinstance(pred, ir.Not):
        inner = tag_truth(pred.item, tag, value)
        return None if inner is None else not inner
    if isinstance(pred, ir.And | ir.Or):
        truths = [tag_truth(item, tag, value) for item in pred.items]
        if any(t is None for t in truths):
            return None
        return all(truths) if isinstance(pred, ir.And) else any(truths)
    if isinstance(pred, ir.Exists):
        return True
    if isinstance(pred, ir.Eq):
        return pred.value.casefold() == value.casefold() if pred.ignore_case else pred.value == value
    if isinstance(pred, ir.Glob | ir.In):
        patterns = (pred.pattern,) if isinstance(pred, ir.Glob) else pred.values
        flags = re.IGNORECASE if pred.ignore_case else 0
        return any(re.match(glob_to_regex(p, "\\Z"), value, flags) is not None for p in patterns)
    if isinstance(pred, ir.Regex) and set(pred.flags) <= set("imdF"):
        source, flags = to_python(pred.pattern), python_flags(pred.flags)
        if python_error(source, flags) is not None:
            return None
        return re.search(source, value, flags) is not None
    return None


def answer_tag(query: ir.Query, tag: str, values: tuple[str, ...]) -> tuple[ir.Query, tuple[ir.Pred, ...]]:
    """The query without the conjuncts of its leading filters (:func:`cqlx.passes.leading_conjuncts`)
    that test only ``tag`` and hold for every one of ``values``, and the conjuncts that hold for
    none of them (taken out too: the caller reports them as detection loss). Conjuncts true for
    some values only stay."""
    if not values:
        return query, ()
    refused: list[ir.Pred] = []

    def keep(conjunct: ir.Pred) -> bool:
        truths = {tag_truth(conjunct, tag, value) for value in values}
        if truths == {False}:
            refused.append(conjunct)
        return truths not in ({True}, {False})

    steps = leading_conjuncts(query.steps, frozenset({tag}), keep)
    return replace(query, steps=steps), tuple(refused)


#: Falcon's event type, as LogScale tags it and as raw events name it.
EVENT_TYPE_TAGS = ("#event_simpleName", "event_simpleName")


#: Steps after which each row still holds the fields it had (save what the step writes).
_ROW_KEEPING = (ir.Filter, ir.Eval, ir.Extract, ir.Case, ir.Signal, ir.Score, ir.Ladder, ir.Order)


def settle_tag(steps: tuple[ir.Step, ...], tags: tuple[str, ...], value: str) -> tuple[ir.Step, ...]:
    """The steps with every test that reads only one of ``tags`` (filters anywhere, case branches
    included) answered as for an event whose tag is ``value``, up to the first step that writes
    one of them or that changes which fields the rows have (an aggregation, select(), drop(), a
    join: the tag may be gone after it): for a target whose records are all of one Falcon event
    type, ``#event_simpleName`` is that type on every row. A filter that holds leaves the steps; a
    case branch with a filter that fails is never taken and goes. A filter that fails outside a
    branch stays as it was (the rule matches nothing; the target says so with its own refusal), as
    does a case left with no branch."""
    settled = _settle(steps, tags, value, branch=False)
    assert settled is not None  # (only a branch is ever given up)
    return settled


def _settle(steps: tuple[ir.Step, ...], tags: tuple[str, ...], value: str, branch: bool) -> tuple[ir.Step, ...] | None:
    """:func:`settle_tag`; in a case ``branch``, None when a filter fails (the branch is never taken)."""
    out: list[ir.Step] = []
    for index, step in enumerate(steps):
        if not isinstance(step, _ROW_KEEPING) or (step_writes(step) & {*tags, "*"} and not isinstance(step, ir.Case)):
            return (*out, *steps[index:])
        if isinstance(step, ir.Filter):
            answer = _settle_pred(step.pred, tags, value)
            if answer is False and branch:
                return None
            if answer is True:
                continue
            out.append(step if answer is False else replace(step, pred=answer))
        elif isinstance(step, ir.Case):
            branches = []
            for taken in step.branches:
                kept = _settle(taken.steps, tags, value, branch=True)
                if kept is not None:
                    branches.append(replace(taken, steps=kept or (ir.Filter(ir.TrueP(taken.span), taken.span),)))
            first = branches[0].steps if branches else ()
            if branches and all(isinstance(s, ir.Eval) or s == ir.Filter(ir.TrueP()) for s in first):
                # The first branch left takes every event: the case is its assignments.
                out.extend(s for s in first if isinstance(s, ir.Eval))
            else:
                out.append(replace(step, branches=tuple(branches)) if branches else step)
            reshaped = any(not isinstance(s, _ROW_KEEPING) for b in step.branches for s in b.steps)
            if reshaped or step_writes(step) & {*tags, "*"}:
                return (*out, *steps[index + 1:])
        elif isinstance(step, ir.Eval):
            # a condition (as cqlx makes a case of, passes.cases_to_conds) takes the branch answered
            out.append(replace(step, expr=fold_expr_preds(step.expr, lambda p: _as_pred(p, tags, value))))
        else:
            out.append(step)
    return tuple(out)


def _as_pred(pred: ir.Pred, tags: tuple[str, ...], value: str) -> ir.Pred:
    """:func:`_settle_pred` as a predicate: true is ``*``, false ``not *``."""
    answer = _settle_pred(pred, tags, value)
    if isinstance(answer, bool):
        return ir.TrueP(pred.span) if answer else ir.Not(ir.TrueP(pred.span), pred.span)
    return answer


def _settle_pred(pred: ir.Pred, tags: tuple[str, ...], value: str) -> ir.Pred | bool:
    """``pred`` with its tests on the tags answered: True or False when the whole of it is."""
    fields = pred_fields(pred)
    if fields.isdisjoint(tags):
        return pred  # (most of a rule: nothing to answer below)
    if len(fields) == 1:
        truth = tag_truth(pred, next(iter(fields)), value)
        if truth is not None:
            return truth
    if isinstance(pred, ir.Not):
        inner = _settle_pred(pred.item, tags, value)
        return (not inner) if isinstance(inner, bool) else replace(pred, item=inner)
    if isinstance(pred, ir.And | ir.Or):
        decisive = isinstance(pred, ir.Or)  # the value that decides: True for Or, False for And
        items: list[ir.Pred] = []
        for item in pred.items:
            answer = _settle_pred(item, tags, value)
            if isinstance(answer, bool):
                if answer is decisive:
                    return decisive
                continue
            items.append(answer)
        if not items:
            return not decisive
        return items[0] if len(items) == 1 else replace(pred, items=tuple(items))
    return pred

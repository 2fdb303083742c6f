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
from cqlx.passes import leading_conjuncts, pred_fields
from cqlx.regexes import glob_to_regex, python_error, python_flags, to_python

#: LogScale's repository tag.
REPO_TAG = "#repo"


def tag_truth(pred: ir.Pred, tag: str, value: str) -> bool | None:
    """Whether ``pred`` holds for an event whose only known field is ``tag`` = ``value``, by the
    Python matcher's semantics; None when the test reads anything else or is not one cqlx decides
    here (it is then kept in the rule)."""
    if isinstance(pred, ir.TrueP):
        return True
    if isinstance(pred, ir.Not):
        inner = tag_truth(pred.item, tag, value)
        return None if inner is None else not inner
    if isinstance(pred, ir.And | ir.Or):
        truths = [tag_truth(item, tag, value) for item in pred.items]
        if any(t is None for t in truths):
            return None
        return all(truths) if isinstance(pred, ir.And) else any(truths)
    if pred_fields(pred) != {tag}:
        return None
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

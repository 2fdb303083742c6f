"""IR → IR rewrites: small pure functions, applied in the order of :data:`PASSES`.

Each pass keeps the meaning of the query; a query that does not fit a pattern (signals, score,
ladder) passes through unchanged and still converts as plain ``Eval`` steps.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from itertools import pairwise

from cqlx import ir

# ---------------------------------------------------------------- what steps read and write


def pred_fields(pred: ir.Pred) -> frozenset[str]:
    """Fields a predicate reads (free text reads every field: ``*``)."""
    if isinstance(pred, ir.And | ir.Or):
        return frozenset().union(*(pred_fields(p) for p in pred.items))
    if isinstance(pred, ir.Not):
        return pred_fields(pred.item)
    if isinstance(pred, ir.ExprTest):
        return expr_fields(pred.left) | expr_fields(pred.right)
    if isinstance(pred, ir.FreeText | ir.OpaqueTest):
        return frozenset({"*"})  # every field, or fields nobody knows
    if isinstance(pred, ir.TrueP):
        return frozenset()
    if isinstance(pred, ir.ArrayAny):
        return frozenset({f"{pred.array}[*]"})  # its elements (matches_field)
    return frozenset({pred.field})


def expr_fields(expr: ir.Expr) -> frozenset[str]:
    if isinstance(expr, ir.Ref):
        return frozenset({expr.field})
    if isinstance(expr, ir.Cond):
        return pred_fields(expr.test) | expr_fields(expr.then) | expr_fields(expr.otherwise)
    if isinstance(expr, ir.Arith):
        return expr_fields(expr.left) | expr_fields(expr.right)
    if isinstance(expr, ir.Func):
        return frozenset().union(*(expr_fields(a) for a in expr.args))
    return frozenset()


def step_writes(step: ir.Step) -> frozenset[str]:
    if isinstance(step, ir.Eval):
        return frozenset({step.field})
    if isinstance(step, ir.Extract):
        return frozenset(step.groups)
    if isinstance(step, ir.Signal):
        return frozenset(f for f in (step.flag_field, step.score_field) if f)
    if isinstance(step, ir.Score | ir.Ladder):
        return frozenset({step.field})
    if isinstance(step, ir.Case):
        return frozenset().union(*(step_writes(s) for b in step.branches for s in b.steps))
    if isinstance(step, ir.Aggregate | ir.Totals):
        return frozenset(step.outputs)
    if isinstance(step, ir.Opaque):
        return frozenset(step.writes) if step.writes is not None else frozenset({"*"})
    if isinstance(step, ir.Lookup):
        return frozenset(step.writes) if step.writes is not None else frozenset({"*"})
    if isinstance(step, ir.Join):
        return frozenset(step.writes)
    return frozenset()


def nested_steps(steps: tuple[ir.Step, ...]) -> Iterator[ir.Step]:
    """Every step, at any depth: each step, then the steps of its case branches; a join's subquery
    steps before the join itself (so a join comes after the joins its subquery holds)."""
    for step in steps:
        if isinstance(step, ir.Join):
            yield from nested_steps(step.subquery.steps)
        yield step
        if isinstance(step, ir.Case):
            for branch in step.branches:
                yield from nested_steps(branch.steps)


def row_fields(steps: Sequence[ir.Step]) -> frozenset[str] | None:
    """The fields the rows can have after ``steps``, where that is known: after an aggregation or
    a projection, what it keeps and later steps write or drop; None while the rows are events
    (any field) or a step writes fields not named (an opaque stage, a lookup of every column)."""
    known: frozenset[str] | None = None
    for step in steps:
        if isinstance(step, ir.Aggregate):
            known = frozenset(step.keys) | frozenset(step.outputs)
        elif isinstance(step, ir.Project):
            known = frozenset(step.fields)
        elif isinstance(step, ir.GroupTail):
            known = None
        elif isinstance(step, ir.Drop) and known is not None:
            known = known - frozenset(step.fields)
        elif known is not None:
            written = step_writes(step)
            known = None if any("*" in name for name in written) else known | written
    return known


def step_reads(step: ir.Step) -> frozenset[str]:
    if isinstance(step, ir.Filter):
        return pred_fields(step.pred)
    if isinstance(step, ir.Extract):
        return frozenset({step.field})
    if isinstance(step, ir.Eval):
        return expr_fields(step.expr)
    if isinstance(step, ir.Signal):
        return pred_fields(step.condition)
    if isinstance(step, ir.Ladder):
        return frozenset({step.score_field})
    if isinstance(step, ir.Case):
        return frozenset().union(*(step_reads(s) for b in step.branches for s in b.steps))
    if isinstance(step, ir.Project):
        return frozenset(step.fields)
    if isinstance(step, ir.Order):
        return frozenset(k.field for k in step.keys)
    if isinstance(step, ir.Aggregate):
        return frozenset(step.keys) | frozenset().union(*(_function_reads(f) for f in step.functions))
    if isinstance(step, ir.Totals):
        return frozenset().union(*(_function_reads(f) for f in step.functions))
    if isinstance(step, ir.GroupTail):
        return frozenset({*step.keys, "@timestamp"})
    if isinstance(step, ir.Opaque):
        return frozenset({"*"})
    if isinstance(step, ir.Lookup | ir.Join):
        return frozenset(step.fields)
    if isinstance(step, ir.SelfJoinFilter):
        return frozenset(step.fields).union(*(pred_fields(p) for p in step.wheres))
    return frozenset()  # Score reads its signals' fields, which are written in the same run


def _function_reads(function: ir.AggFunc) -> frozenset[str]:
    """What an aggregate function reads: its field, the field that picks the event
    (selectFromMax/Min), the event time (selectLast picks the most recent event)."""
    reads = {function.field} if function.field else set()
    if function.by:
        reads.add(function.by)
    if function.name == "selectLast":
        reads.add("@timestamp")
    return frozenset(reads)


def matches_field(patterns: frozenset[str] | set[str], name: str) -> bool:
    """Whether ``name`` is one of ``patterns``: a name, ``prefix.*``, ``array[*]`` (its elements
    ``array[0]``, ``array[1].x``, ...) or ``*`` (any field)."""
    if "*" in patterns or name in patterns:
        return True
    return any((p.endswith(".*") and name.startswith(p[:-1])) or (p.endswith("[*]") and name.startswith(p[:-2]))
               for p in patterns)


def _overlaps(writes: frozenset[str], needed: set[str]) -> bool:
    if not needed:
        return False
    if "*" in writes or "*" in needed:
        return True
    return any(matches_field(needed, w) or matches_field(writes, n) for w in writes for n in needed)


def decisive_after(query: ir.Query) -> list[frozenset[str]]:
    """For each step of ``query``, the fields whose values after that step still decide which rows
    the query returns: what later filters, case branches, aggregation keys and counts test, and
    what the assignments feeding them read (``*``: any field). A target that cannot compute a
    field outside this set loses only presentation; inside it, detection.

    The analysis runs backwards over the steps; sorting is presentation here (SEMANTICS.md: the
    rows a query returns are the events it keeps), as everywhere in cqlx."""
    return _decisive_before(query.steps, frozenset())


def _decisive_before(steps: tuple[ir.Step, ...] | list[ir.Step], last: frozenset[str]) -> list[frozenset[str]]:
    needed: set[str] = set(last)
    after: list[frozenset[str]] = []
    for step in reversed(steps):
        after.append(frozenset(needed))
        needed |= _decisive_reads(step, needed)
    after.reverse()
    return after


def shadowed_fields(steps: tuple[ir.Step, ...], column_of: Callable[[str], str | None]
                    ) -> list[tuple[str, str, ir.Span, bool]]:
    """Falcon fields read after the rule wrote a field of the name the target gives them
    (``ProcessCommandLine := ...`` then ``CommandLine = x``, where ``column_of("CommandLine")`` is
    ``ProcessCommandLine``): in the target the assignment overwrites the column the test reads. Each
    as (the field written, the field read, where it was written, whether it is only shown:
    select(), table(), sort())."""
    found: dict[tuple[str, str], tuple[str, str, ir.Span, bool]] = {}

    def visit(run: tuple[ir.Step, ...], written: dict[str, ir.Span], computed: set[str]) -> None:
        for step in run:
            for name in sorted(step_reads(step) - computed - {"*"}):
                column = column_of(name)
                if column is not None and column != name and column in written:
                    before = found.get((column, name))
                    shown = isinstance(step, ir.Project | ir.Order) and (before is None or before[3])
                    found[column, name] = (column, name, written[column], shown)
            if isinstance(step, ir.Case):
                for branch in step.branches:
                    visit(branch.steps, dict(written), set(computed))
            copy = isinstance(step, ir.Eval) and isinstance(step.expr, ir.Ref) \
                and column_of(step.expr.field) == step.field  # `ProcessCommandLine := CommandLine`: the same value
            for name in sorted(step_writes(step)) if not copy else ():
                written.setdefault(name, step.span)
            computed |= step_writes(step)

    visit(steps, {}, set())
    return list(found.values())


def decisive_steps(query: ir.Query) -> list[tuple[ir.Step, frozenset[str]]]:
    """:func:`decisive_after` for every step, the steps of ``case`` branches included: after a
    branch's step, what the branch's later steps decide on and what decides after the ``case``.
    Pairs are found by identity (``s is step``); a step object met twice has the union."""
    return decisive_within(query.steps, frozenset())


def decisive_within(steps: tuple[ir.Step, ...] | list[ir.Step], last: frozenset[str]
                    ) -> list[tuple[ir.Step, frozenset[str]]]:
    """:func:`decisive_steps` of a run of steps after which ``last`` decides the rows (a ``case``
    an emitter rewrote as plain steps: what decides after the ``case``)."""
    pairs: dict[int, tuple[ir.Step, set[str]]] = {}

    def note(step: ir.Step, needed: frozenset[str]) -> None:
        kept = pairs.setdefault(id(step), (step, set()))
        kept[1].update(needed)
        if isinstance(step, ir.Case):
            for branch in step.branches:
                inner = set(needed)
                for inner_step in reversed(branch.steps):
                    note(inner_step, frozenset(inner))
                    inner |= _decisive_reads(inner_step, inner)

    for step, needed in zip(steps, _decisive_before(steps, last), strict=True):
        note(step, needed)
    return [(step, frozenset(needed)) for step, needed in pairs.values()]


def _decisive_reads(step: ir.Step, needed: set[str]) -> frozenset[str]:
    """What a step reads that decides the rows, given the fields ``needed`` after it."""
    if isinstance(step, ir.Filter):
        return pred_fields(step.pred)
    if isinstance(step, ir.Extract) and step.strict:
        return frozenset({step.field})  # it drops what it does not match
    if isinstance(step, ir.Case):
        reads: set[str] = set()
        for branch in step.branches:
            inner = set(needed)
            for inner_step in reversed(branch.steps):
                reads |= _decisive_reads(inner_step, inner)
                inner |= reads
        return frozenset(reads)
    if isinstance(step, ir.Aggregate):
        # The series limit keeps the series with the largest values: every output decides then.
        counted = frozenset().union(*(_function_reads(f) for f in step.functions
                                      if step.series_limit is not None or _overlaps(frozenset({f.output}), needed)))
        return frozenset(step.keys) | counted
    if isinstance(step, ir.GroupTail):  # which events it keeps: per group, the newest
        return frozenset({*step.keys, "@timestamp"})
    if isinstance(step, ir.Opaque):
        if step.effect != ir.ENRICHES or _overlaps(step_writes(step), needed):
            return frozenset({"*"})
        return frozenset()
    if isinstance(step, ir.Project | ir.Order | ir.Drop):
        return frozenset()
    if isinstance(step, ir.Lookup | ir.Join):  # its keys decide which rows it keeps, or what it writes
        return frozenset(step.fields) if step.filters or _overlaps(step_writes(step), needed) else frozenset()
    if isinstance(step, ir.Score):  # reads its signals, named as they are
        return frozenset(step.signals) if _overlaps(frozenset({step.field}), needed) else frozenset()
    writes = step_writes(step) | ({step.name} if isinstance(step, ir.Signal) else set())
    if _overlaps(writes, needed):
        return step_reads(step)
    return frozenset()


def loss_kind_of(writes: frozenset[str], needed: frozenset[str]) -> bool:
    """Whether losing a step that writes ``writes`` changes which rows come out, given the
    fields ``needed`` after it (:func:`decisive_after`)."""
    return _overlaps(writes, set(needed))


# ---------------------------------------------------------------- boolean normalisation


def normalize_pred(pred: ir.Pred) -> ir.Pred:
    """Flatten nested And/Or, drop ``*`` from conjunctions, remove repeated conditions, and
    cancel double negation."""
    if isinstance(pred, ir.Not):
        inner = normalize_pred(pred.item)
        if isinstance(inner, ir.Not):
            return inner.item
        return replace(pred, item=inner)
    if isinstance(pred, ir.And | ir.Or):
        kind = type(pred)
        items: list[ir.Pred] = []
        for item in (normalize_pred(p) for p in pred.items):
            parts = item.items if isinstance(item, kind) else (item,)
            for part in parts:
                if kind is ir.And and isinstance(part, ir.TrueP):
                    continue
                if part not in items:
                    items.append(part)
        if kind is ir.Or and any(isinstance(p, ir.TrueP) for p in items):
            return ir.TrueP(pred.span)
        if not items:
            return ir.TrueP(pred.span)
        if len(items) == 1:
            return items[0]
        return replace(pred, items=tuple(items))
    return pred


def normalize(query: ir.Query) -> ir.Query:
    steps = tuple(_map_preds(step, normalize_pred) for step in query.steps)
    return replace(query, steps=steps)


def _map_preds(step: ir.Step, fn: Callable[[ir.Pred], ir.Pred]) -> ir.Step:
    if isinstance(step, ir.Filter):
        return replace(step, pred=fn(step.pred))
    if isinstance(step, ir.Signal):
        return replace(step, condition=fn(step.condition))
    if isinstance(step, ir.Case):
        return _map_branches(step, lambda steps: tuple(_map_preds(s, fn) for s in steps))
    if isinstance(step, ir.Eval):
        return replace(step, expr=_map_expr_preds(step.expr, fn))
    if isinstance(step, ir.SelfJoinFilter):
        return replace(step, wheres=tuple(fn(p) for p in step.wheres))
    return step


def _map_expr_preds(expr: ir.Expr, fn: Callable[[ir.Pred], ir.Pred],
                    ref: Callable[[ir.Ref], ir.Expr] | None = None, fold: bool = False) -> ir.Expr:
    """``expr`` with ``fn`` applied to the predicates in it (and ``ref`` to its field references);
    ``fold``: a condition whose test ``fn`` makes true (``*``) or false (``not *``) is the branch it
    takes."""
    if isinstance(expr, ir.Ref):
        return ref(expr) if ref is not None else expr
    if isinstance(expr, ir.Cond):
        test = fn(expr.test)
        if fold and isinstance(test, ir.TrueP):
            return _map_expr_preds(expr.then, fn, ref, fold)
        if fold and test == ir.Not(ir.TrueP()):
            return _map_expr_preds(expr.otherwise, fn, ref, fold)
        return replace(expr, test=test, then=_map_expr_preds(expr.then, fn, ref, fold),
                       otherwise=_map_expr_preds(expr.otherwise, fn, ref, fold))
    if isinstance(expr, ir.Arith):
        return replace(expr, left=_map_expr_preds(expr.left, fn, ref, fold),
                       right=_map_expr_preds(expr.right, fn, ref, fold))
    if isinstance(expr, ir.Func):
        return replace(expr, args=tuple(_map_expr_preds(a, fn, ref, fold) for a in expr.args))
    return expr


def fold_expr_preds(expr: ir.Expr, fn: Callable[[ir.Pred], ir.Pred]) -> ir.Expr:
    """``expr`` with ``fn`` applied to the tests of its conditions, each condition whose test it
    answers (``*`` true, ``not *`` false) replaced by the branch taken."""
    return _map_expr_preds(expr, fn, fold=True)


def atoms(query: ir.Query) -> list[ir.Pred]:
    """Every predicate that is not And/Or/Not/TrueP, in order, wherever it is in the query
    (filters, signals, case branches, conditions inside expressions)."""
    found: list[ir.Pred] = []

    def visit(pred: ir.Pred) -> ir.Pred:
        if isinstance(pred, ir.And | ir.Or):
            for item in pred.items:
                visit(item)
        elif isinstance(pred, ir.Not):
            visit(pred.item)
        elif isinstance(pred, ir.ExprTest):
            found.append(pred)
            _map_expr_preds(pred.left, visit)
            _map_expr_preds(pred.right, visit)
        elif not isinstance(pred, ir.TrueP):
            found.append(pred)
        return pred

    def visit_step(step: ir.Step) -> None:
        if isinstance(step, ir.Extract):
            found.append(step.test)
        elif isinstance(step, ir.Case):
            for branch in step.branches:
                for inner in branch.steps:
                    visit_step(inner)
        else:
            _map_preds(step, visit)

    for step in query.steps:
        visit_step(step)
    return found


def cases_to_conds(query: ir.Query) -> ir.Query:
    """``case { c1 | F := a ; c2 | F := b ; * | F := c }`` is ``F := if(c1, a, if(c2, b, c))``.

    LogScale documents ``if()`` as exactly this ``case`` (functions-if), and it is how canonical
    LogScale writes a condition that is a filter (a regex, a glob) rather than an expression: the CQL
    emitter writes the seed dialect's ``if(CommandLine = /re/, "YES", "NO")`` this way. Reading both
    forms as the same :class:`ir.Eval` lets signals and ladders be recognised in either, and makes
    CQL → CQL → IR a fixed point. Branches may assign several fields (``F := "YES" | S := 3``): each
    becomes its own ``Eval`` when no test reads a field an earlier assignment of the branch writes.
    A ``case`` without an always-true last branch drops events, so it stays a :class:`ir.Case`."""
    return replace(query, steps=_cases_to_conds(query.steps))


def _cases_to_conds(steps: tuple[ir.Step, ...]) -> tuple[ir.Step, ...]:
    out: list[ir.Step] = []
    for step in steps:
        if isinstance(step, ir.Case):
            # Inner cases first, so a nested case that is an assignment counts as one below.
            step = _map_branches(step, _cases_to_conds)
            out.extend(_case_assignments(step) or (step,))
        else:
            out.append(step)
    return tuple(out)


def _case_assignments(case: ir.Case) -> tuple[ir.Eval, ...] | None:
    arms: list[tuple[ir.Pred, tuple[ir.Eval, ...], ir.Span]] = []
    fields: tuple[str, ...] | None = None
    for branch in case.branches:
        count = next((i for i, s in enumerate(branch.steps) if not isinstance(s, ir.Filter)), len(branch.steps))
        tests = [s.pred for s in branch.steps[:count] if isinstance(s, ir.Filter)]
        evals = tuple(s for s in branch.steps[count:] if isinstance(s, ir.Eval))
        if not evals or len(evals) != len(branch.steps) - count:
            return None
        names = tuple(e.field for e in evals)
        if len(set(names)) != len(names) or (fields is not None and names != fields):
            return None
        fields = names
        test = normalize_pred(ir.And(tuple(tests), branch.span)) if tests else ir.TrueP(branch.span)
        arms.append((test, evals, branch.span))
        if isinstance(test, ir.TrueP):
            break  # this branch keeps every event: the branches after it never run
    else:
        return None
    assert fields is not None
    # Split into one Eval per field, each test is evaluated after the earlier fields are written.
    earlier = set(fields[:-1])
    if earlier and any(pred_fields(test) & (earlier | {"*"}) for test, _, _ in arms):
        return None
    out: list[ir.Eval] = []
    for index, name in enumerate(fields):
        expr = arms[-1][1][index].expr
        for test, evals, span in reversed(arms[:-1]):
            expr = ir.Cond(test, evals[index].expr, expr, span)
        out.append(ir.Eval(name, expr, case.span))
    return tuple(out)


def branch_arm(branch: ir.CaseBranch) -> tuple[ir.Pred, tuple[ir.Eval, ...]] | None:
    """A ``case`` branch as (its test, on the event as it came in; the assignments it makes), or
    None when it is not filters and assignments that way.

    A filter that reads nothing the branch assigned before it tests the incoming event, so it may
    sit after an assignment (``t = x | Where := "a" | CommandLine = /y/``). An assignment that reads
    one made earlier in the branch gets its value when that value is a constant (which cannot be
    null, so the earlier ``:=`` did set the field); anything else is left to targets that run
    branches as written (the Python matcher, LogScale)."""
    tests: list[ir.Pred] = []
    values: dict[str, ir.Expr] = {}
    for step in branch.steps:
        if isinstance(step, ir.Filter):
            read = pred_fields(step.pred)
            if values and (read & values.keys() or "*" in read):
                return None
            tests.append(step.pred)
        elif isinstance(step, ir.Eval):
            expr = _substitute(step.expr, values)
            if expr is None or step.field in values:
                return None
            values[step.field] = expr
        else:
            return None
    test = normalize_pred(ir.And(tuple(tests), branch.span)) if tests else ir.TrueP(branch.span)
    return test, tuple(ir.Eval(f, e, branch.span) for f, e in values.items())


def _constant(expr: ir.Expr) -> bool:
    if isinstance(expr, ir.Lit):
        return True
    return isinstance(expr, ir.Cond) and _constant(expr.then) and _constant(expr.otherwise)


def _substitute(expr: ir.Expr, values: dict[str, ir.Expr]) -> ir.Expr | None:
    """``expr`` with references to ``values`` replaced by them, or None when that is not exact."""
    read = expr_fields(expr) & values.keys()
    if not read:
        return None if "*" in expr_fields(expr) and values else expr
    if not all(_constant(values[f]) for f in read):
        return None
    if isinstance(expr, ir.Ref):
        return values[expr.field]
    if isinstance(expr, ir.Arith):
        left, right = _substitute(expr.left, values), _substitute(expr.right, values)
        return None if left is None or right is None else replace(expr, left=left, right=right)
    if isinstance(expr, ir.Cond) and not pred_fields(expr.test) & values.keys():
        then, other = _substitute(expr.then, values), _substitute(expr.otherwise, values)
        return None if then is None or other is None else replace(expr, then=then, otherwise=other)
    return None  # a function or a condition over an assigned field: the target runs it as written


def expand_case(case: ir.Case, tag: str, existing: Callable[[str], bool]) -> tuple[ir.Step, ...] | None:
    """A ``case { }`` as steps a target without first-match branches can run, or None when a branch
    is not filters and assignments (:func:`branch_arm`, :func:`scratch_arm`).

    ``tag := if(test1, 1, if(test2, 2, ... 0))`` records which branch takes the event (tests read
    the event as it came in, or a branch's scratch fields); ``tag != 0`` keeps what some branch
    takes (unless one is ``*``); each assigned field becomes ``F := if(tag == i, value_i, ..., F)``
    over the branches that assign it, keeping its value elsewhere (:class:`ir.Null` when
    ``existing(F)`` says it has none yet); then the tag and the scratch fields are dropped. Every
    value reads the event as it came in or a scratch field, so the order of the rewritten
    assignments does not matter."""
    arms: list[tuple[ir.Pred, tuple[ir.Eval, ...]]] = []
    before: list[ir.Step] = []  # the scratch fields' assignments, ahead of the tag
    for index, branch in enumerate(case.branches, 1):
        arm = branch_arm(branch)
        if arm is None:
            scratch = scratch_arm(branch, f"{tag}_b{index}", existing)
            if scratch is None:
                return None
            before += scratch[0]
            arm = scratch[1:]
        arms.append(arm)
        if isinstance(arm[0], ir.TrueP):
            break
    written = {e.field for _, evals in arms for e in evals}
    if any(expr_fields(e.expr) & (written | {"*"}) for _, evals in arms for e in evals):
        return None  # a value reads a field another branch assigns: the rewritten order would matter
    chain: ir.Expr = ir.Lit(0)
    for index in range(len(arms), 0, -1):
        test = arms[index - 1][0]
        chain = ir.Lit(index) if isinstance(test, ir.TrueP) else ir.Cond(test, ir.Lit(index), chain, case.span)
    steps: list[ir.Step] = [*before, ir.Eval(tag, chain, case.span)]
    if not isinstance(arms[-1][0], ir.TrueP):
        # the tag is 0 where no branch is taken, else the number of the branch (never missing)
        steps.append(ir.Filter(ir.Cmp(tag, ">", 0, case.span), case.span))
    fields = list(dict.fromkeys(e.field for _, evals in arms for e in evals))
    for name in fields:
        value: ir.Expr = ir.Ref(name, case.span) if existing(name) else ir.Null(case.span)
        for index in range(len(arms), 0, -1):
            assigned = next((e for e in arms[index - 1][1] if e.field == name), None)
            if assigned is None:
                continue
            if index == len(arms) and isinstance(arms[-1][0], ir.TrueP):
                value = assigned.expr  # the default branch: every event no earlier branch took
            else:
                value = ir.Cond(ir.Cmp(tag, "==", index), assigned.expr, value, assigned.span)
        steps.append(ir.Eval(name, value, case.span))
    scratch_fields = [s.field for s in before if isinstance(s, ir.Eval)]
    steps.append(ir.Drop((tag, *dict.fromkeys(scratch_fields)), case.span))
    return tuple(steps)


def scratch_arm(branch: ir.CaseBranch, prefix: str, existing: Callable[[str], bool]
                ) -> tuple[list[ir.Step], ir.Pred, tuple[ir.Eval, ...]] | None:
    """A ``case`` branch that filters on, or computes from, what it assigns (``n := length(x) |
    n > 10``), as :func:`branch_arm` gives it, with the steps to run before the branch is chosen:
    each field ``F`` it assigns is worked out in a scratch field ``{prefix}_F`` of its own, which
    starts as the incoming ``F``, so that ``:=``'s rule (a null value leaves the field as it was)
    holds; its filters test the scratch fields; its assignments copy them. Running these steps on
    every event is exact because they only write scratch fields, and the branch's test decides.
    None when a step is not a filter or an assignment, or a filter searches every field."""
    renames: dict[str, str] = {}
    before: list[ir.Step] = []
    tests: list[ir.Pred] = []
    for step in branch.steps:
        if isinstance(step, ir.Filter):
            if "*" in pred_fields(step.pred):
                return None
            tests.append(rename_pred(step.pred, renames))
        elif isinstance(step, ir.Eval):
            expr = rename_expr(step.expr, renames)
            if step.field not in renames:
                renames[step.field] = f"{prefix}_{step.field}"
                if existing(step.field):
                    before.append(ir.Eval(renames[step.field], ir.Ref(step.field, step.span), step.span))
            before.append(ir.Eval(renames[step.field], expr, step.span))
        else:
            return None
    test = normalize_pred(ir.And(tuple(tests), branch.span)) if tests else ir.TrueP(branch.span)
    return before, test, tuple(ir.Eval(f, ir.Ref(s, branch.span), branch.span) for f, s in renames.items())


def rename_pred(pred: ir.Pred, renames: dict[str, str]) -> ir.Pred:
    """``pred`` reading ``renames[F]`` wherever it reads a field ``F`` that ``renames`` lists."""
    if isinstance(pred, ir.And | ir.Or):
        return replace(pred, items=tuple(rename_pred(p, renames) for p in pred.items))
    if isinstance(pred, ir.Not):
        return replace(pred, item=rename_pred(pred.item, renames))
    if isinstance(pred, ir.ExprTest):
        return replace(pred, left=rename_expr(pred.left, renames), right=rename_expr(pred.right, renames))
    if isinstance(pred, ir.FreeText | ir.OpaqueTest | ir.TrueP | ir.ArrayAny):
        return pred  # an array's elements are no field a rename makes
    return replace(pred, field=renames.get(pred.field, pred.field))


def rename_expr(expr: ir.Expr, renames: dict[str, str]) -> ir.Expr:
    """:func:`rename_pred` for an expression."""
    return _map_expr_preds(expr, lambda pred: rename_pred(pred, renames),
                           lambda ref: replace(ref, field=renames.get(ref.field, ref.field)))


def case_keep(case: ir.Case) -> ir.Pred | None:
    """Which events a ``case`` keeps (the disjunction of its branches' tests), for targets that can
    filter but not assign; None when a branch is not filters and assignments (:func:`branch_arm`)."""
    tests: list[ir.Pred] = []
    # A field extraction keeps what its regex matches (when strict); what it writes is derived.
    for branch in extraction_as_test(case)[0].branches:
        arm = branch_arm(branch)
        if arm is None:
            return None
        tests.append(arm[0])
    return normalize_pred(ir.Or(tuple(tests), case.span))


def extraction_as_test(case: ir.Case) -> tuple[ir.Case, tuple[str, ...], bool]:
    """The ``case`` with each field extraction in its branches reduced to the test it makes (a
    strict one filters, a lax one keeps every event), the fields they would have written, and
    whether a later step of the same branch reads one of them: for a target that can branch but not
    extract there, which reports those fields as lost (detection loss when a branch reads them)."""
    lost: list[str] = []
    read_inside = False

    def steps(branch_steps: tuple[ir.Step, ...]) -> tuple[ir.Step, ...]:
        nonlocal read_inside
        out: list[ir.Step] = []
        written: set[str] = set()
        for step in branch_steps:
            if written and _overlaps(frozenset(written), set(step_reads(step))):
                read_inside = True
            if isinstance(step, ir.Extract):
                lost.extend(g for g in step.groups if g not in lost)
                written |= set(step.groups)
                if step.strict:
                    out.append(ir.Filter(step.test, step.span))
            elif isinstance(step, ir.Case):
                out.append(_map_branches(step, steps))
            else:
                out.append(step)
        return tuple(out)

    rewritten = _map_branches(case, steps)
    return rewritten, tuple(lost), read_inside


def step_unextracted(step: ir.Step) -> tuple[ir.Pred, tuple[str, ...]] | None:
    """:func:`unextracted_groups` over every test of a step that is not a ``case`` (a filter, a
    signal's condition, the conditions inside an assignment)."""
    if isinstance(step, ir.Case):
        return None
    found: list[tuple[ir.Pred, tuple[str, ...]]] = []

    def visit(pred: ir.Pred) -> ir.Pred:
        result = unextracted_groups(pred)
        if result is not None:
            found.append(result)
        return pred

    _map_preds(step, visit)
    return found[0] if found else None


def unextracted_groups(pred: ir.Pred) -> tuple[ir.Pred, tuple[str, ...]] | None:
    """A regex with named groups in a place where cqlx tests it but extracts nothing, though
    LogScale may: under an ``or`` (syntax-filters: an OR's operands "can't be a Regex with named
    groups"; newer LogScale reads ``a or b`` as ``case { a ; b }``, which would extract), or a
    free-text regex (which extracts from whichever field matches first, syntax-filters). A negated
    regex extracts nothing. The first such regex and its groups, else None."""
    from cqlx.regexes import named_groups

    def walk(node: ir.Pred, under_or: bool) -> tuple[ir.Pred, tuple[str, ...]] | None:
        if isinstance(node, ir.Not):
            return None
        if isinstance(node, ir.And | ir.Or):
            for item in node.items:
                found = walk(item, under_or or isinstance(node, ir.Or))
                if found is not None:
                    return found
            return None
        if isinstance(node, ir.Regex) and under_or:
            groups = named_groups(node.pattern)
            return (node, groups) if groups else None
        if isinstance(node, ir.FreeText) and node.regex:
            groups = named_groups(node.value)
            return (node, groups) if groups else None
        return None

    return walk(pred, False)


def drop_true_filters(query: ir.Query) -> ir.Query:
    """A ``*`` filter stage keeps every event."""
    steps = tuple(s for s in query.steps if not (isinstance(s, ir.Filter) and isinstance(s.pred, ir.TrueP)))
    return replace(query, steps=steps)


# ---------------------------------------------------------------- the source

EVENT_TYPE_FIELDS = ("#event_simpleName", "event_simpleName")
PLATFORM_FIELDS = ("event_platform", "#event_platform")


_NAME_ALTERNATION = re.compile(r"\^(?:\(\?:|\()?([A-Za-z0-9_]+(?:\|[A-Za-z0-9_]+)*)\)?\$")


def _anchored_names(pattern: str) -> tuple[str, ...] | None:
    """The names of ``^Name$``, ``^(A|B)$`` or ``^(?:A|B)$``, else None."""
    match = _NAME_ALTERNATION.fullmatch(pattern)
    grouped = pattern[1:2] == "("
    if match is None or grouped != pattern.endswith(")$"):
        return None
    names = tuple(match.group(1).split("|"))
    return names if grouped or len(names) == 1 else None  # ^A|B$ is (^A)|(B$)


def _selected_values(pred: ir.Pred, fields: tuple[str, ...]) -> tuple[tuple[str, ...], bool] | None:
    """The values of ``field = v1 or field = v2 ...`` and whether the test is exactly that (an
    equality or in(), case-sensitive). An anchored regex of plain names (``/^ProcessRollup2$/i``,
    as Sigma converters write) selects the same event types or platforms, which are names without
    line breaks (so ``$`` before a final newline never differs), ignoring case with ``i``: not
    exact, so the test is kept with the values (:class:`ir.Source`). Else None."""
    if isinstance(pred, ir.Eq) and pred.field in fields:
        return (pred.value,), not pred.ignore_case
    if isinstance(pred, ir.In) and pred.field in fields and not any("*" in v for v in pred.values) and pred.values:
        return pred.values, not pred.ignore_case
    if isinstance(pred, ir.Regex) and pred.field in fields and set(pred.flags) <= set("iF"):
        names = _anchored_names(pred.pattern)
        return (names, False) if names is not None else None
    if isinstance(pred, ir.Or):
        found: list[str] = []
        exact = True
        for item in pred.items:
            selected = _selected_values(item, fields)
            if selected is None:
                return None
            found.extend(v for v in selected[0] if v not in found)
            exact = exact and selected[1]
        return tuple(found), exact
    return None


def _exact_values(pred: ir.Pred, fields: tuple[str, ...]) -> tuple[str, ...] | None:
    """The values of ``field = v1 or field = v2 ...`` (exact, case-sensitive), else None."""
    selected = _selected_values(pred, fields)
    return selected[0] if selected is not None and selected[1] else None


def folds_case(pred: ir.Pred | None) -> bool:
    """Whether a source test ignores case (a regex with ``i``, a case-insensitive equality)."""
    if pred is None:
        return False
    if isinstance(pred, ir.Or | ir.And):
        return any(folds_case(p) for p in pred.items)
    if isinstance(pred, ir.Regex):
        return pred.ignore_case
    return bool(getattr(pred, "ignore_case", False))


def leading_conjuncts(steps: tuple[ir.Step, ...], guarded: frozenset[str],
                      keep: Callable[[ir.Pred], bool]) -> tuple[ir.Step, ...]:
    """The steps with the conjuncts of their leading filters that ``keep`` rejects taken out (a
    filter left with none goes). The leading filters are those before the first step that is
    neither a filter nor a field extraction, or that writes one of ``guarded``: an extraction that
    writes none of them does not end them (two filters commute). ``keep`` sees the conjuncts in
    order."""
    out: list[ir.Step] = []
    leading = True
    for step in steps:
        if not isinstance(step, ir.Filter | ir.Extract) or step_writes(step) & guarded:
            leading = False
        if not (leading and isinstance(step, ir.Filter)):
            out.append(step)
            continue
        kept = [c for c in (step.pred.items if isinstance(step.pred, ir.And) else (step.pred,)) if keep(c)]
        if kept:
            out.append(replace(step, pred=kept[0] if len(kept) == 1 else ir.And(tuple(kept), step.pred.span)))
    return tuple(out)


def extract_source(query: ir.Query) -> ir.Query:
    """Move the leading ``#event_simpleName=...`` and ``event_platform=...`` conjuncts of the
    first filters (:func:`leading_conjuncts`) into :class:`Source`; a target profile turns them
    into tables or logsources. A test that is not an exact equality is kept in the source with its
    values. A regex on the type that lists no names stays a filter, and is noted as
    ``types_pattern``."""
    source = query.source
    event_types, platforms = source.event_types, source.platforms
    types_test, platforms_test = source.types_test, source.platforms_test
    pattern = source.types_pattern

    def keep(conjunct: ir.Pred) -> bool:
        nonlocal event_types, platforms, types_test, platforms_test, pattern
        types = _selected_values(conjunct, EVENT_TYPE_FIELDS)
        plats = _selected_values(conjunct, PLATFORM_FIELDS)
        if types is not None and not event_types:
            event_types = types[0]
            types_test = None if types[1] else conjunct
            return False
        if plats is not None and not platforms:
            platforms = plats[0]
            platforms_test = None if plats[1] else conjunct
            return False
        if (pattern is None and not event_types and isinstance(conjunct, ir.Regex)
                and conjunct.field in EVENT_TYPE_FIELDS and set(conjunct.flags) <= set("iF")):
            pattern = conjunct
        return True

    steps = leading_conjuncts(query.steps, frozenset({*EVENT_TYPE_FIELDS, *PLATFORM_FIELDS}), keep)
    if event_types:
        pattern = None  # a later regex on the type only narrows the types already chosen
    return replace(query, source=ir.Source(event_types, platforms, types_test, platforms_test, pattern),
                   steps=steps)


# ---------------------------------------------------------------- signals, score, ladder


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _flag(step: ir.Step) -> tuple[ir.Pred, tuple[str, str]] | None:
    if isinstance(step, ir.Eval) and isinstance(step.expr, ir.Cond):
        then, other = step.expr.then, step.expr.otherwise
        if isinstance(then, ir.Lit) and isinstance(other, ir.Lit) \
                and isinstance(then.value, str) and isinstance(other.value, str) and then.value != other.value:
            return step.expr.test, (then.value, other.value)
    return None


def _weight(step: ir.Step) -> tuple[ir.Pred, int | float] | None:
    if isinstance(step, ir.Eval) and isinstance(step.expr, ir.Cond):
        then, other = step.expr.then, step.expr.otherwise
        if isinstance(then, ir.Lit) and isinstance(other, ir.Lit) and _is_number(then.value) \
                and other.value == 0 and then.value != 0:
            assert isinstance(then.value, int | float)
            return step.expr.test, then.value
    return None


def _undisturbed(steps: tuple[ir.Step, ...], start: int, end: int, guarded: frozenset[str],
                 moved: str) -> bool:
    """No step strictly between ``start`` and ``end`` writes a guarded field or reads ``moved``."""
    for step in steps[start + 1:end]:
        if isinstance(step, ir.Aggregate):
            return False  # the rows after it are groups: the earlier step's fields are gone
        if step_writes(step) & guarded or moved in step_reads(step) or "*" in step_reads(step):
            return False
    return True


def recognize_signals(query: ir.Query) -> ir.Query:
    """A flag field (``"YES"/"NO"``) and a score field (``w/0``) that test the same condition
    become one :class:`Signal`; a lone score field becomes a signal too."""
    steps = query.steps
    merged: dict[int, ir.Signal] = {}
    removed: set[int] = set()
    for index, step in enumerate(steps):
        weight = _weight(step)
        if weight is None or index in removed:
            continue
        assert isinstance(step, ir.Eval)
        condition, value = weight
        guarded = pred_fields(condition) | {step.field}
        partner = None
        for other_index, other in enumerate(steps):
            flag = _flag(other)
            if flag is None or flag[0] != condition or other_index in merged or other_index in removed:
                continue
            assert isinstance(other, ir.Eval)
            if other.field == step.field:  # one field written twice is not a flag and a score
                continue
            lo, hi = sorted((index, other_index))
            moved = step.field if other_index < index else other.field
            # The later of the two tests its condition after the earlier one has written its field:
            # a condition that reads that field (or every field) is not one test for both.
            first_written = other.field if other_index < index else step.field
            if first_written in pred_fields(condition) or "*" in pred_fields(condition):
                continue
            if _undisturbed(steps, lo, hi, guarded | {other.field}, moved):
                partner = (other_index, other, flag[1])
                break
        if partner is not None:
            other_index, other, values = partner
            first = min(index, other_index)
            merged[first] = ir.Signal(other.field, condition, value, other.field, values, step.field,
                                      steps[first].span)
            removed.add(max(index, other_index))
        else:
            merged[index] = ir.Signal(step.field, condition, value, None, ("YES", "NO"), step.field,
                                      step.span)
    out = tuple(merged.get(i, s) for i, s in enumerate(steps) if i not in removed)
    return replace(query, steps=_distinct_names(out))


def _distinct_names(steps: tuple[ir.Step, ...]) -> tuple[ir.Step, ...]:
    """Signals named alike (a rule that writes ``S0`` again later) told apart, ``S0``, ``S0#2``...
    in step order: a :class:`Score` names the signals it sums, and must name the right one."""
    seen: Counter[str] = Counter()
    out = []
    for step in steps:
        if isinstance(step, ir.Signal):
            seen[step.name] += 1
            if seen[step.name] > 1:
                step = replace(step, name=f"{step.name}#{seen[step.name]}")
        out.append(step)
    return tuple(out)


def _summands(expr: ir.Expr) -> Iterator[ir.Expr]:
    if isinstance(expr, ir.Arith) and expr.op == "+":
        yield from _summands(expr.left)
        yield from _summands(expr.right)
    else:
        yield expr


def recognize_score(query: ir.Query) -> ir.Query:
    """``S := a + b + c`` where every term is a signal's score field becomes :class:`Score`."""
    score_of: dict[str, ir.Signal] = {}
    out: list[ir.Step] = []
    for step in query.steps:
        if isinstance(step, ir.Signal) and step.score_field:
            score_of[step.score_field] = step
        elif isinstance(step, ir.Eval):
            terms = list(_summands(step.expr))
            if all(isinstance(t, ir.Ref) and t.field in score_of for t in terms):
                names = tuple(score_of[t.field].name for t in terms if isinstance(t, ir.Ref))
                if len(set(names)) == len(names):
                    step = ir.Score(step.field, names, step.span)
        for written in step_writes(step):
            if not (isinstance(step, ir.Signal) and written == step.score_field):
                score_of.pop(written, None)
        if isinstance(step, ir.Aggregate):
            score_of.clear()  # a group row holds its keys and outputs only, no score fields
        out.append(step)
    return replace(query, steps=tuple(out))


def _ladder(expr: ir.Expr, score: str) -> tuple[list[ir.Tier], str] | None:
    tiers: list[ir.Tier] = []
    while isinstance(expr, ir.Cond):
        test, then = expr.test, expr.then
        if not (isinstance(test, ir.Cmp) and test.field == score and test.op == ">="
                and isinstance(then, ir.Lit) and isinstance(then.value, str)):
            return None
        tiers.append(ir.Tier(test.number, then.value))
        expr = expr.otherwise
    if not tiers or not (isinstance(expr, ir.Lit) and isinstance(expr.value, str)):
        return None
    if any(b.minimum >= a.minimum for a, b in pairwise(tiers)):
        return None  # a lower tier first would shadow the higher one; keep it as plain if()
    return tiers, expr.value


def recognize_ladder(query: ir.Query) -> ir.Query:
    """``Sev := if(S >= 6, "CRITICAL", if(S >= 3, "HIGH", "MEDIUM"))`` over a :class:`Score`
    becomes :class:`Ladder`."""
    scores: set[str] = set()
    out: list[ir.Step] = []
    for step in query.steps:
        if isinstance(step, ir.Score):
            scores.add(step.field)
        elif isinstance(step, ir.Eval):
            for score in scores:
                found = _ladder(step.expr, score)
                if found is not None:
                    step = ir.Ladder(step.field, score, tuple(found[0]), found[1], step.span)
                    break
        if not isinstance(step, ir.Score):
            scores -= step_writes(step)
        if isinstance(step, ir.Aggregate):
            scores.clear()
        out.append(step)
    return replace(query, steps=tuple(out))


def join_subqueries(query: ir.Query) -> ir.Query:
    """Each ``join()``'s subquery is a query of its own: the same passes, its own source."""
    def rewrite(steps: tuple[ir.Step, ...]) -> tuple[ir.Step, ...]:
        out: list[ir.Step] = []
        for step in steps:
            if isinstance(step, ir.Join):
                step = replace(step, subquery=run_passes(step.subquery))
            elif isinstance(step, ir.Case):
                step = _map_branches(step, rewrite)
            out.append(step)
        return tuple(out)

    return replace(query, steps=rewrite(query.steps))


def self_joins_as_joins(query: ir.Query) -> ir.Query:
    """Each ``selfJoinFilter()`` as the ``join()``s that mean the same, for the targets (which have
    joins, not self-join filters): one inner join per ``where`` filter, on the key fields, with the
    subquery the query's own source and steps up to that stage followed by the filter (it runs over
    the same events, so it finds the keys some event reaching the stage meets the filter with);
    ``prefilter=true`` then keeps the events that meet one of the filters."""
    steps: list[ir.Step] = []
    for step in query.steps:
        if not isinstance(step, ir.SelfJoinFilter):
            steps.append(_self_joins_within(step))
            continue
        prefix = tuple(steps)
        for where in step.wheres:
            subquery = ir.Query(query.source, (*prefix, ir.Filter(where, step.span)))
            steps.append(ir.Join(subquery, step.fields, step.fields, (), "inner", False, step.span, "selfJoinFilter"))
        if step.prefilter:
            steps.append(ir.Filter(step.wheres[0] if len(step.wheres) == 1 else ir.Or(step.wheres, step.span),
                                   step.span))
    return replace(query, steps=tuple(steps))


def _self_joins_within(step: ir.Step) -> ir.Step:
    """A step's own subqueries with their self-join filters as joins (a join's subquery is a query
    of its own); in a case branch, a ``selfJoinFilter()`` is kept as a stage cqlx does not convert:
    the events it would read are those the branch takes, which no join over the query says."""
    if isinstance(step, ir.Join):
        return replace(step, subquery=self_joins_as_joins(step.subquery))
    if isinstance(step, ir.Case):
        return _map_branches(step, lambda steps: tuple(_self_join_refused(s) for s in steps))
    return step


def _self_join_refused(step: ir.Step) -> ir.Step:
    if isinstance(step, ir.SelfJoinFilter):
        return ir.Opaque("selfJoinFilter", "", ir.FILTERS, (), "selfJoinFilter() inside a case branch is not "
                         "converted; cqlx converts it as a stage of the query", step.span)
    return _self_joins_within(step)


def _map_branches(case: ir.Case, fn: Callable[[tuple[ir.Step, ...]], tuple[ir.Step, ...]]) -> ir.Case:
    """The case with ``fn`` applied to the steps of each of its branches."""
    return replace(case, branches=tuple(replace(b, steps=fn(b.steps)) for b in case.branches))


PASSES: tuple[Callable[[ir.Query], ir.Query], ...] = (
    join_subqueries,
    cases_to_conds,
    normalize,
    drop_true_filters,
    extract_source,
    recognize_signals,
    recognize_score,
    recognize_ladder,
)


def run_passes(query: ir.Query) -> ir.Query:
    for rewrite in PASSES:
        query = rewrite(query)
    return query

"""The scoring IR: what a CQL detection means, independent of any platform.

A query is a :class:`Source` (event types and platform) and a sequence of steps. Predicates and
expressions are frozen dataclasses compared by structure; spans are carried for diagnostics but do
not take part in equality, so the same condition written twice is one condition.

Semantics (SEMANTICS.md): string tests are case-sensitive unless marked, regexes are unanchored
searches, a test on a missing field is false, and ``Not`` is true when the field is missing.
"""

from __future__ import annotations

from dataclasses import field

from cqlx.ast import NO_SPAN, Span
from cqlx.frozen import Frozen, record

__all__ = ["NO_SPAN", "Span"]  # re-exported for emitters


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---------------------------------------------------------------- predicates


@record
class Eq(Frozen):
    """Whole value equal to ``value``."""

    field: str
    value: str
    ignore_case: bool = False
    span: Span = _span()


@record
class Glob(Frozen):
    """Anchored ``*`` pattern over the whole value; ``*`` cannot be escaped."""

    field: str
    pattern: str
    ignore_case: bool = False
    span: Span = _span()


@record
class Regex(Frozen):
    """Unanchored search. ``pattern`` is LogScale's with the ``\\/`` escape already removed;
    ``flags`` a sorted subset of ``imdgF``."""

    field: str
    pattern: str
    flags: str = ""
    span: Span = _span()

    @property
    def ignore_case(self) -> bool:
        return "i" in self.flags


@record
class Cmp(Frozen):
    """Numeric comparison of a field with a constant; false when missing or not a number."""

    field: str
    op: str  # < <= > >= == !=
    number: int | float
    span: Span = _span()


@record
class Exists(Frozen):
    """The field is present (``f=*``)."""

    field: str
    span: Span = _span()


@record
class In(Frozen):
    """Membership in ``values`` (each value may be a ``*`` glob, as in LogScale's ``in()``)."""

    field: str
    values: tuple[str, ...]
    ignore_case: bool = False
    span: Span = _span()


@record
class Cidr(Frozen):
    """The field holds an IP address (v4 or v6) inside one of ``subnets`` (written as
    ``ipaddress`` writes the network: host bits cleared); false when missing or not an address.
    An address only falls in a subnet of its own version (functions-cidr: ``0.0.0.0/0`` checks for
    IPv4, ``::/0`` for IPv6)."""

    field: str
    subnets: tuple[str, ...]
    span: Span = _span()


@record
class FreeText(Frozen):
    """A string or regex searched for in every field of the event (``@rawstring`` semantics)."""

    value: str
    regex: bool = False
    flags: str = ""
    span: Span = _span()


@record
class ExprTest(Frozen):
    """A comparison of two expressions (``test(a == b)``); false when either side is missing."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@record
class ArrayAny(Frozen):
    """``array:regex("a[]", regex=...)`` or ``array:contains("a[]", value=...)``: some element of
    the array passes ``test``, a :class:`Regex` or :class:`Eq` on the field ``a[]`` (standing for
    each element in turn). The elements are the fields ``a[0]``, ``a[1]``... up to the first index
    missing (the Array Syntax); an event without ``a[0]`` does not pass (functions-array-regex,
    functions-array-contains: "excludes the event ... if it does not match on any value")."""

    array: str  # the array's name, without []
    test: Regex | Eq
    span: Span = _span()

    @property
    def field(self) -> str:
        """What the test reads, ``a[]``: no profile maps it, so a target that reads fields by name
        finds no column for it."""
        return self.test.field


@record
class OpaqueTest(Frozen):
    """A filter cqlx reads but gives no meaning to (``ioc:lookup()``, a ``$saved()`` search, a
    function it does not know) inside a boolean expression. ``text`` is the call as canonical
    CQL, which the CQL emitter writes back; every other target reports it."""

    name: str
    text: str
    reason: str
    span: Span = _span()


@record
class And(Frozen):
    """Every item holds."""

    items: tuple[Pred, ...]
    span: Span = _span()


@record
class Or(Frozen):
    """Some item holds."""

    items: tuple[Pred, ...]
    span: Span = _span()


@record
class Not(Frozen):
    """The item does not hold."""

    item: Pred
    span: Span = _span()


@record
class TrueP(Frozen):
    """Always true (``*``)."""

    span: Span = _span()


Pred = (Eq | Glob | Regex | Cmp | Exists | In | Cidr | FreeText | ExprTest | ArrayAny | OpaqueTest | And | Or | Not
        | TrueP)


# ---------------------------------------------------------------- expressions


@record
class Lit(Frozen):
    """A constant in an expression."""

    value: str | int | float
    span: Span = _span()


@record
class Ref(Frozen):
    """A field's value in an expression."""

    field: str
    span: Span = _span()


@record
class Cond(Frozen):
    """``if(test, then, else)``."""

    test: Pred
    then: Expr
    otherwise: Expr
    span: Span = _span()


@record
class Arith(Frozen):
    """``left op right`` with ``+ - * / %``."""

    op: str  # + - * / %
    left: Expr
    right: Expr
    span: Span = _span()


@record
class Func(Frozen):
    """A value function (``format``, ``replace``, ``round``...): ``args`` are the values it reads and its
    options as :class:`Lit`, in the order of :data:`cqlx.valuefns.LAYOUTS`."""

    name: str
    args: tuple[Expr, ...]
    span: Span = _span()


@record
class Null(Frozen):
    """No value. Assigned, it leaves the field as it was; only rewrites write it
    (:func:`cqlx.passes.expand_case`), for a field that does not exist yet."""

    span: Span = _span()


Expr = Lit | Ref | Cond | Arith | Func | Null


# ---------------------------------------------------------------- steps


@record
class Filter(Frozen):
    """Keep the events the predicate holds for."""

    pred: Pred
    span: Span = _span()


@record
class Extract(Frozen):
    """A regex with named groups, run on ``field``: each group that takes part in the first match
    sets the field of its name (a group that does not take part leaves its field as it was).
    ``strict`` drops the events it does not match (``field = /re/`` and ``regex()``'s default);
    without it they pass unchanged (``regex(..., strict=false)``). library.humio.com:
    syntax-fields (regex field extraction), functions-regex."""

    field: str
    pattern: str  # LogScale's, the \/ escape removed
    flags: str
    groups: tuple[str, ...]  # the named groups, in order
    strict: bool = True
    span: Span = _span()
    # regex(repeat=true, limit=N): a row for each match (the first N), each with that match's
    # groups set; 0: the first match only. A row no match makes is dropped (strict) or kept as it
    # was (functions-regex: "If set to true, multiple matches yields multiple events").
    each: int = 0

    @property
    def test(self) -> Regex:
        """The regex as a test (what the step keeps, when strict)."""
        return Regex(self.field, self.pattern, self.flags, self.span)


@record
class Eval(Frozen):
    """``field := expr``; when ``expr`` is null (a missing field) the field is left as it was."""

    field: str
    expr: Expr
    span: Span = _span()


@record
class Signal(Frozen):
    """One risk dimension: a condition worth ``weight``. It may write a flag field
    (``flag_values[0]`` when the condition holds, else ``flag_values[1]``) and a score field
    (``weight`` or 0)."""

    name: str
    condition: Pred
    weight: int | float
    flag_field: str | None = None
    flag_values: tuple[str, str] = ("YES", "NO")
    score_field: str | None = None
    span: Span = _span()


@record
class Score(Frozen):
    """``field`` is the sum of the weights of the signals (by name) that hold."""

    field: str
    signals: tuple[str, ...]
    span: Span = _span()


@record
class Tier(Frozen):
    """One rung of a severity ladder: ``label`` from ``minimum`` up."""

    minimum: int | float
    label: str


@record
class Ladder(Frozen):
    """A severity ladder: the label of the first tier whose minimum the score reaches, else
    ``default``. Tiers are in descending order of minimum."""

    field: str
    score_field: str
    tiers: tuple[Tier, ...]
    default: str
    span: Span = _span()


@record
class CaseBranch(Frozen):
    """One branch of a ``case``: its steps, the first of which decide whether it is taken."""

    steps: tuple[Step, ...]
    span: Span = _span()


@record
class Case(Frozen):
    """``case { ... }``: the first branch through which the event survives wins; if none does, the
    event is dropped (a ``*`` branch keeps it)."""

    branches: tuple[CaseBranch, ...]
    span: Span = _span()


@record
class Project(Frozen):
    """``select()`` (``limit`` None) or ``table()`` (which also sorts and keeps ``limit`` rows)."""

    fields: tuple[str, ...]
    span: Span = _span()


@record
class SortKey(Frozen):
    """One field of a sort: direction and LogScale's sort type."""

    field: str
    descending: bool = True
    type: str = "number"  # number | string | hex


@record
class Order(Frozen):
    """Sort by ``keys`` and keep the first ``limit`` rows (LogScale's ``sort()`` keeps 200).

    ``origin`` is the function it came from: ``sort`` (and ``table()``, ``top()``), or ``head`` /
    ``tail``, which keep the ``limit`` oldest / newest events by ``@timestamp`` (functions-head,
    functions-tail); on rows without a time (after an aggregation) ``head`` keeps the first rows
    and ``tail`` the last."""

    keys: tuple[SortKey, ...]
    limit: int = 200
    origin: str = "sort"  # sort | head | tail
    span: Span = _span()


@record
class AggFunc(Frozen):
    """One aggregate function: ``count`` (of events, or with ``field`` of events that have it, or
    with ``distinct`` of its distinct values), ``sum``, ``min``, ``max`` or ``avg`` of a field's
    numbers; ``output`` is the field it writes (``_count``... unless ``as=``).

    The functions that keep values of a field write them under the field's own name:
    ``collect`` its distinct values (at most ``limit``, joined by ``separator``: functions-collect);
    ``selectLast`` its value in the most recent event that has it (functions-selectlast);
    ``selectFromMax`` / ``selectFromMin`` its value in the event with the largest / smallest number
    in field ``by`` (one :class:`AggFunc` per ``include`` field: they pick the same event).
    ``percent`` is ``top(percent=true)``'s share of all counted events (of the sum of ``field``
    when it has one), in percent."""

    name: str  # count | sum | min | max | avg | collect | selectLast | selectFromMax | selectFromMin | percent
    field: str | None
    output: str
    distinct: bool = False
    by: str | None = None  # selectFromMax/Min: the field whose number picks the event
    limit: int | None = None  # collect: the most distinct values it keeps
    separator: str = "\n"  # collect: what joins the values


@record
class Aggregate(Frozen):
    """``groupBy(keys, function=[...], limit=...)``, or an aggregate function as a stage of its
    own (``count()``: no keys, one row). The rows become one per group: its key fields and the
    functions' outputs, nothing else. An event without a value for every key is in no group; at
    most ``limit`` groups are kept (functions-groupby; cqlx keeps the first ``limit`` it meets)."""

    keys: tuple[str, ...]
    functions: tuple[AggFunc, ...]
    limit: int | None = None  # None: no group limit (a standalone function, one row; top())
    # bucket()/timeChart(): the keys are `_bucket` (the time bucket, computed by the Eval before
    # this step) and the series fields; only the `series_limit` series with the largest value of
    # any output are kept (functions-timechart: limit). None: every group.
    series_limit: int | None = None
    span: Span = _span()

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(f.output for f in self.functions)


@record
class Totals(Frozen):
    """``stats([sum(x, as=total), sort(...)])``: one-row functions next to a function that keeps
    rows. stats() gives the Cartesian product of its functions' outputs (functions-stats), so each
    row gains the outputs of ``functions`` computed over all the rows; a function with no rows
    counts as one empty row, so over no rows the outputs make one row of their own. The sort()
    follows as an :class:`Order`. Only functions that always give a row (count, sum, min, max,
    avg) are taken, and only where the rows' fields are known not to clash with the outputs
    (LogScale reports a field two functions give different values as an error)."""

    functions: tuple[AggFunc, ...]
    span: Span = _span()

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(f.output for f in self.functions)


@record
class GroupTail(Frozen):
    """``groupBy(keys, function=tail(count))``: of each group of events (those with a value for
    every key), the ``count`` most recent, whole: the rows are the events themselves, every field
    they have (functions-tail: by ``@timestamp``, newest first; an event without a time is older
    than any with one). At most ``limit`` groups (cqlx keeps the first it meets)."""

    keys: tuple[str, ...]
    count: int
    limit: int | None = None
    span: Span = _span()


@record
class Drop(Frozen):
    """``drop([fields])``: the rows lose these fields."""

    fields: tuple[str, ...]
    span: Span = _span()


#: What an :class:`Opaque` stage does to the rows, as far as LogScale documents it.
FILTERS = "filter"  # may drop events (or add them: join, readFile): which rows come out is unknown
ENRICHES = "enrich"  # keeps every event and adds fields
AGGREGATES = "aggregate"  # replaces the events with rows of its own


@record
class Opaque(Frozen):
    """A stage cqlx reads but cannot give a meaning to on other platforms: ``join()``, a
    ``$saved()`` search whose body is unknown, ``ioc:lookup()``, a function it does not know.
    ``text`` is the call as canonical CQL (the CQL emitter writes it back); ``effect`` says what it
    does to the rows (:data:`FILTERS`, :data:`ENRICHES`, :data:`AGGREGATES`) and ``writes`` the
    fields it sets (``name.*`` for a prefix; None when unknown). Whether a target losing it loses
    detection depends on that: an enrichment nothing later tests only changes what is shown."""

    name: str
    text: str
    effect: str
    writes: tuple[str, ...] | None
    reason: str
    span: Span = _span()


@record
class Lookup(Frozen):
    """``match(file, field, column, include, strict, ignoreCase, mode)``: each event is looked up
    in the lookup file's rows, its ``fields`` against their ``columns`` (all must match; an event
    without a value for one of them matches no row, nor does a row with an empty key cell). A
    matching row's ``include`` columns (every column when None) are written to the event under
    their column names; ``strict`` drops the events no row matches; ``negated`` (``!match()``)
    keeps only those, adding nothing. ``mode`` is how a key cell is read: ``string`` (equal),
    ``glob`` (a ``*`` pattern) or ``cidr`` (a subnet holding the field's IP). One row per event
    (``nrows=1``, functions-match's default)."""

    file: str
    fields: tuple[str, ...]
    columns: tuple[str, ...]
    include: tuple[str, ...] | None = None
    strict: bool = True
    ignore_case: bool = False
    mode: str = "string"
    negated: bool = False
    span: Span = _span()

    @property
    def filters(self) -> bool:
        """Whether it drops events (strict, or negated)."""
        return self.strict or self.negated

    @property
    def writes(self) -> tuple[str, ...] | None:
        """The fields it writes: none when negated, None when every column of the file."""
        return () if self.negated else self.include

    @property
    def stem(self) -> str:
        """The file name without its ``.csv``/``.json`` suffix (the name targets give the table)."""
        for suffix in (".csv", ".json"):
            if self.file.lower().endswith(suffix):
                return self.file[: -len(suffix)]
        return self.file


@record
class Join(Frozen):
    """``join({subquery}, field, key=field, include=[...], mode=inner|left)``: the subquery runs
    over the same events; an event whose ``fields`` equal (as text) the ``keys`` of one of the
    subquery's rows gets that row's ``include`` fields (``""`` for one the row lacks); an event or
    row without a key value matches nothing. ``mode=inner`` drops the events no row matches,
    ``left`` keeps them; ``negated`` (``!join()``) keeps only those, adding nothing. One row per key
    (``max=1``, functions-join's default).

    ``match(table=name, ...)`` against an ad-hoc table (``defineTable(query={...}, name, include)``,
    functions-definetable: a subquery over the same events, its rows the ``include`` fields) is
    such a join too (``origin`` "defineTable", ``table`` the name): the subquery ends with the
    table's :class:`Project`, ``strict=false`` is ``left``; ``nrows=max`` is ``many``: an event
    comes out once for each matching row (functions-match), none of them left out."""

    subquery: Query
    fields: tuple[str, ...]
    keys: tuple[str, ...]
    include: tuple[str, ...] = ()
    mode: str = "inner"
    negated: bool = False
    span: Span = _span()
    origin: str = "join"  # the function the rule wrote: join, selfJoinFilter (read as joins), defineTable
    table: str = ""  # origin defineTable: the ad-hoc table's name
    many: bool = False  # every matching row makes an event of its own (match(table=..., nrows=max))

    @property
    def filters(self) -> bool:
        """Whether it drops events (inner, or negated)."""
        return self.mode == "inner" or self.negated

    @property
    def writes(self) -> tuple[str, ...]:
        return () if self.negated else self.include


@record
class SelfJoinFilter(Frozen):
    """``selfJoinFilter(field=[...], where=[{...}, ...], prefilter=false)``: of the events reaching
    this stage, keeps those whose ``fields`` hold the values of a key for which each ``where`` filter
    is met by some event with that key (each by a different event, maybe); an event without a value
    for a key field has no key. ``prefilter``: only those that also meet one of the filters
    (functions-selfjoinfilter). LogScale's runs on a Bloom filter (rare false positives); cqlx's is
    exact. The targets run it as one ``join()`` per filter (:func:`cqlx.passes.self_joins_as_joins`);
    ``--to cql`` writes it back."""

    fields: tuple[str, ...]
    wheres: tuple[Pred, ...]
    prefilter: bool = False
    span: Span = _span()


Step = (Filter | Extract | Eval | Signal | Score | Ladder | Case | Project | Order | Aggregate | Totals | GroupTail
        | Drop | Opaque | Lookup | Join | SelfJoinFilter)


@record
class Source(Frozen):
    """The event types (``#event_simpleName``) and platforms (``event_platform``) a rule reads.

    ``types_test`` / ``platforms_test`` hold the test that selected them when it is not a plain
    exact equality (``#event_simpleName=/^ProcessRollup2$/i``, as Sigma converters write): the
    values name the table or logsource, the test is what the Python matcher and canonical CQL keep
    (:func:`cqlx.passes.extract_source`)."""

    event_types: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    types_test: Pred | None = None
    platforms_test: Pred | None = None
    #: A leading regex on the event type that names no list of types (``/ProcessRollup2/``,
    #: ``/Written$/i``): it stays a filter of the rule; a profile with tables or logsources reads
    #: it as the event types it maps whose names match (Generator.resolve_event_type).
    types_pattern: Regex | None = None


@record
class Query(Frozen):
    """A lowered rule: what it reads (``source``), its steps, and notes for the user."""

    source: Source
    steps: tuple[Step, ...]
    # Dialect-2 constructs met while lowering (for `cqlx check`), as (span, message).
    notes: tuple[tuple[Span, str], ...] = field(default=(), compare=False)

"""The CQL syntax tree: one frozen dataclass per grammar rule of ``grammar/cql.lark``.

The tree says what was written, not what it means: ``if(CommandLine = /x/i, "YES", "NO")`` stays a
call with a named argument here; :mod:`cqlx.lower` decides that it is the seed dialect's
filter-condition form. Every node carries the :class:`Span` of its source text.
"""

from __future__ import annotations

from dataclasses import dataclass

from cqlx.frozen import Frozen, record


@dataclass(frozen=True, order=True)
class Span:
    """Where a node stands in the query text (1-based lines and columns, end exclusive)."""

    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}"


NO_SPAN = Span(0, 0, 0, 0)


@record
class Node(Frozen):
    """Every syntax-tree node: where it stands in the query text."""

    span: Span


# ---------------------------------------------------------------- leaves and values


@record
class FieldName(Node):
    """A field as written: ``ImageFileName``, ``#event_simpleName``, ``@timestamp``, ``"host name"``."""

    name: str


@record
class StringLit(Node):
    """A quoted string, escapes already resolved."""

    value: str


@record
class RegexLit(Node):
    """``/pattern/flags`` as written: ``pattern`` still holds LogScale's ``\\/`` escapes."""

    pattern: str
    flags: str


@record
class BareValue(Node):
    """An unquoted value after ``=``: a word, a number, a glob (``*abc*``) or a path."""

    text: str


@record
class Star(Node):
    """A lone ``*``: match-all as a filter, the default branch of ``case``, ``f=*``."""


# ---------------------------------------------------------------- expressions


@record
class Number(Node):
    """A number as written (``10``, ``1.5``); lowering reads its value."""

    text: str


@record
class FieldRef(Node):
    """A bare word inside an expression: the value of that field."""

    name: str


@record
class Param(Node):
    """A query parameter: ``?name``, or ``?{name=default}`` (syntax-query-parameters)."""

    name: str
    default: str | None


@record
class Binary(Node):
    """``left op right`` in the expression sub-language (arithmetic and comparisons)."""

    op: str
    left: Expr
    right: Expr


@record
class Unary(Node):
    """``-x`` or ``!x`` in an expression."""

    op: str
    operand: Expr


@record
class Array(Node):
    """``[a, b, ...]``: an argument's list of values, fields, calls or subqueries."""

    items: tuple[Expr, ...]


@record
class SubQuery(Node):
    """``{ pipeline }``; ``include`` is correlate()'s ``name: { ... } include: [fields]``."""

    pipeline: Pipeline
    include: Array | None = None


@record
class Argument(Node):
    """One argument of a call; ``name`` is None for a positional one, ``op`` is ``=`` when named."""

    name: str | None
    value: Expr


@record
class Call(Node):
    """A function call ``name(args)``, or a saved search ``$name(args)``."""

    name: str
    name_span: Span
    args: tuple[Argument, ...]


Expr = Number | StringLit | FieldRef | Param | Binary | Unary | Call | Array | SubQuery | RegexLit | Star | BareValue


# ---------------------------------------------------------------- filters and stages


@record
class Comparison(Node):
    """``field OP value`` with OP one of ``= != < <= > >=``."""

    field: FieldName
    op: str
    value: StringLit | RegexLit | BareValue | Param


@record
class FnCompare(Node):
    """``field =~ fn(args)``, which LogScale reads as ``fn(args, field=field)``."""

    field: FieldName
    call: Call


@record
class FreeText(Node):
    """A bare word, quoted string or regex standing alone: searched for in any field."""

    value: FieldRef | StringLit | RegexLit


@record
class AndFilter(Node):
    """``left and right``, or two filters side by side."""

    left: Filter
    right: Filter


@record
class OrFilter(Node):
    """``left or right``."""

    left: Filter
    right: Filter


@record
class NotFilter(Node):
    """``not x`` or ``!x``."""

    operand: Filter


@record
class MatchAll(Node):
    """``*`` as a filter."""


@record
class ParamFilter(Node):
    """A query parameter standing as a filter (``?{extra=*}``): its value is a filter's text."""

    param: Param


Filter = Comparison | FnCompare | FreeText | AndFilter | OrFilter | NotFilter | MatchAll | Call | ParamFilter


@record
class Assignment(Node):
    """``field := expr``."""

    field: FieldName
    value: Expr


@record
class CaseStmt(Node):
    """``case { branch ; branch ; ... }``: each branch is a pipeline."""

    branches: tuple[Pipeline, ...]


@record
class MatchBranch(Node):
    """``pattern => pipeline`` of a match statement; a ``*`` pattern takes every event."""

    pattern: StringLit | RegexLit | BareValue
    pipeline: Pipeline


@record
class MatchStmt(Node):
    """``field match { pattern => pipeline ; ... }`` (syntax-conditional)."""

    field: FieldName
    branches: tuple[MatchBranch, ...]


Stage = Filter | Assignment | CaseStmt | MatchStmt


@record
class Pipeline(Node):
    """Stages joined by ``|``: the whole query, a subquery, or a case branch."""

    stages: tuple[Stage, ...]

"""LogScale's functions as cqlx knows them: parameters, the default (unnamed) parameter, defaults.

Facts from library.humio.com (functions-*.html). A single unnamed argument binds to the function's
default parameter wherever it appears in the argument list (CQL.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # canonical spelling
    params: tuple[str, ...]
    default_param: str | None
    kind: str  # filter | value | projection | order | aggregate


FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name.lower(): spec
    for spec in (
        # if(condition, then=, else=, as=_if) — functions-if
        FunctionSpec("if", ("condition", "then", "else", "as"), "condition", "value"),
        # in(field, values=[...], ignoreCase=false) — functions-in
        FunctionSpec("in", ("field", "values", "ignoreCase"), "field", "filter"),
        # test(expression) — functions-test
        FunctionSpec("test", ("expression",), "expression", "filter"),
        # lower(field, as=_lower, locale) / upper(field, as=_upper, locale) — functions-lower/upper
        FunctionSpec("lower", ("field", "as", "locale"), "field", "value"),
        FunctionSpec("upper", ("field", "as", "locale"), "field", "value"),
        # select(fields) — functions-select: projection, no limit, no sort
        FunctionSpec("select", ("fields",), "fields", "projection"),
        # table(fields, limit=200, sortby=@timestamp, order=desc, type=number) — functions-table
        FunctionSpec("table", ("fields", "limit", "sortby", "order", "type"), "fields", "projection"),
        # sort(field, order=desc, limit=200, type=number) — functions-sort
        FunctionSpec("sort", ("field", "order", "limit", "type", "reverse"), "field", "order"),
        # groupBy(field, function=count(as=_count), limit=20000) — functions-groupby
        FunctionSpec("groupBy", ("field", "function", "limit"), "field", "aggregate"),
        # count(field, distinct=false, as=_count) — functions-count: with a field, only events that
        # have it are counted; distinct=true counts its distinct values
        FunctionSpec("count", ("field", "distinct", "as"), "field", "aggregate"),
        # sum/min/max/avg(field, as=_sum/_min/_max/_avg) — functions-sum, -min, -max, -avg
        FunctionSpec("sum", ("field", "as"), "field", "aggregate"),
        FunctionSpec("min", ("field", "as"), "field", "aggregate"),
        FunctionSpec("max", ("field", "as"), "field", "aggregate"),
        FunctionSpec("avg", ("field", "as"), "field", "aggregate"),
    )
}

#: The aggregate functions groupBy(function=...) takes, and the field each writes unless as= says
#: otherwise (functions-count, -sum, -min, -max, -avg).
AGGREGATE_OUTPUTS = {"count": "_count", "sum": "_sum", "min": "_min", "max": "_max", "avg": "_avg"}
#: groupBy()'s limit: GroupDefaultLimit is 20,000 and the documented maximum 1,000,000; ``max``
#: means GroupMaxLimit, configurable per cluster, read here as that maximum (functions-groupby).
GROUP_LIMIT_DEFAULT = 20_000
GROUP_LIMIT_MAX = 1_000_000

# Functions LogScale has that cqlx does not convert yet: a clear "not supported" instead of the
# "unknown function" a typo gets (CQL.md, the frequency list of real detection content).
KNOWN_UNSUPPORTED = frozenset(name.lower() for name in (
    "format", "collect", "formatTime", "rename", "regex", "drop", "selectLast", "match",
    "join", "top", "ipLocation", "selfJoinFilter", "replace", "selectFromMax", "round", "wildcard",
    "ioc:lookup", "timeChart", "cidr", "now", "splitString", "formatDuration", "split", "bucket",
    "concat", "length", "stats", "asn", "parseTimestamp", "readFile", "concatArray", "base64Decode",
    "urlDecode", "kvParse", "rdns", "parseJson", "defineTable", "correlate", "shannonEntropy", "tail", "eval",
    "head", "coalesce", "default", "like", "text:contains", "array:contains", "bitfield:extractFlags",
    "lookup",
))

SORT_ORDERS = ("asc", "desc")
SORT_TYPES = ("number", "string", "hex")
ROW_LIMIT_DEFAULT = 200
ROW_LIMIT_MAX = 20_000

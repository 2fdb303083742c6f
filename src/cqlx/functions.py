"""LogScale's functions as cqlx knows them: parameters, the default (unnamed) parameter, defaults.

Facts from library.humio.com (functions-*.html). A single unnamed argument binds to the function's
default parameter wherever it appears in the argument list (CQL.md).
"""

from __future__ import annotations

from cqlx.frozen import Frozen, record


@record
class FunctionSpec(Frozen):
    """A LogScale function cqlx reads: its parameters, the one an unnamed argument binds to, and its
    kind."""

    name: str  # canonical spelling
    params: tuple[str, ...]
    default_param: str | None
    kind: str  # filter | value | projection | order | aggregate


#: Value functions (:mod:`cqlx.lower_values` lowers them to :class:`cqlx.ir.Func`; each emitter renders
#: them by name). Parameters and default parameters from library.humio.com, functions-<name>.html.
VALUE_FUNCTIONS = (
    # format(format, field=[...], as=_format, timezone) — functions-format
    FunctionSpec("format", ("format", "field", "as", "timezone"), "format", "value"),
    # formatTime(format, as (required), field=@timestamp, locale, timezone=UTC, unit=auto) — functions-formattime
    FunctionSpec("formatTime", ("format", "as", "field", "locale", "timezone", "unit"), "format", "value"),
    # concat(field=[...], as=_concat) — functions-concat
    FunctionSpec("concat", ("field", "as"), "field", "value"),
    # length(field, as=_length) — functions-length
    FunctionSpec("length", ("field", "as"), "field", "value"),
    # replace(regex, with= (or replacement=), field=@rawstring, as=<field>, flags=m) — functions-replace
    FunctionSpec("replace", ("regex", "with", "replacement", "field", "as", "flags"), "regex", "value"),
    # splitString(field=@rawstring, by, index, as=_splitstring) — functions-splitstring
    FunctionSpec("splitString", ("field", "by", "index", "as"), "field", "value"),
    # round(field, as=<field>, how=round|floor|ceil) — functions-round
    FunctionSpec("round", ("field", "as", "how"), "field", "value"),
    # now(as) — functions-now (the time functions table: now([as]), default argument as)
    FunctionSpec("now", ("as",), "as", "value"),
    # duration(duration, as=_duration) — functions-duration: the milliseconds in a relative time
    FunctionSpec("duration", ("duration", "as"), "duration", "value"),
    # coalesce(expressions=[...], as=_coalesce, ignoreEmpty=true) — functions-coalesce
    FunctionSpec("coalesce", ("expressions", "as", "ignoreEmpty"), "expressions", "value"),
    # base64Decode(field, as=_base64Decode, charset=UTF-8) — functions-base64decode
    FunctionSpec("base64Decode", ("field", "as", "charset"), "field", "value"),
    # urlDecode(field, as=_urldecode) — functions-urldecode
    FunctionSpec("urlDecode", ("field", "as"), "field", "value"),
    # shannonEntropy(field, as=_shannonentropy) — functions-shannonentropy
    FunctionSpec("shannonEntropy", ("field", "as"), "field", "value"),
    # unit:convert(field, as=<field>, binary=false, from, keepUnit=false, to, unit) — functions-unit-convert
    FunctionSpec("unit:convert", ("field", "as", "binary", "from", "keepUnit", "to", "unit"), "field", "value"),
    # crypto:md5(field=[...], as=_md5) — functions-crypto-md5
    FunctionSpec("crypto:md5", ("field", "as"), "field", "value"),
    # concatArray(field, as=_concatArray, from=0, to, prefix, separator, suffix) — functions-concatarray
    FunctionSpec("concatArray", ("field", "as", "from", "to", "prefix", "separator", "suffix"), "field", "value"),
    # default(value, field=[...], replaceEmpty=false): sets each missing field — functions-default
    FunctionSpec("default", ("value", "field", "replaceEmpty"), "value", "default"),
    # rename(field, as) or rename(field=[[old, new], ...]) — functions-rename
    FunctionSpec("rename", ("field", "as"), "field", "rename"),
    # setField(target, value): sets the field named by the target expression's value to the value
    # expression's (functions-setfield: with a quoted target, the same as target := value)
    FunctionSpec("setField", ("target", "value"), None, "setField"),
    # lowercase(field, include=values, locale): lower-cases each field's value in place, or with
    # include=fields|both its name (functions-lowercase; deprecated in queries for lower())
    FunctionSpec("lowercase", ("field", "include", "locale"), "field", "lowercase"),
    # eval(x = expression, ...): the old assignment form; every field it reads must be present
    # (functions-default: "eval() requires all used fields to be present", else the event is discarded)
    FunctionSpec("eval", (), None, "eval"),
)

FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name.lower(): spec
    for spec in (
        # if(condition, then=, else=, as=_if) — functions-if
        FunctionSpec("if", ("condition", "then", "else", "as"), "condition", "value"),
        # in(field, values=[...], ignoreCase=false) — functions-in
        FunctionSpec("in", ("field", "values", "ignoreCase"), "field", "filter"),
        # test(expression) — functions-test
        FunctionSpec("test", ("expression",), "expression", "filter"),
        # regex(regex, field=@rawstring, flags=m, strict=true, repeat=false, limit=100) —
        # functions-regex: filters, and extracts its named groups into fields
        FunctionSpec("regex", ("regex", "field", "flags", "strict", "repeat", "limit"), "regex", "filter"),
        # wildcard(pattern, field=[...], ignoreCase=false, includeEverythingOnAsterisk=false) —
        # functions-wildcard: a glob over the whole value of each field given
        FunctionSpec("wildcard", ("pattern", "field", "ignoreCase", "includeEverythingOnAsterisk"), "pattern",
                     "filter"),
        # cidr(field, subnet=[...], negate=false (deprecated 1.100), file, column) — functions-cidr
        FunctionSpec("cidr", ("field", "subnet", "negate", "file", "column"), "field", "filter"),
        # array:contains(array, value) and array:regex(array, regex, flags) — functions-array-contains,
        # functions-array-regex: some element of the array ("name[]") equals / matches
        FunctionSpec("array:contains", ("array", "value"), "array", "filter"),
        FunctionSpec("array:regex", ("array", "regex", "flags"), "array", "filter"),
        # text:contains(string, substring) — functions-text-contains: both are expressions
        FunctionSpec("text:contains", ("string", "substring"), "string", "filter"),
        # lower(field, as=_lower, locale) / upper(field, as=_upper, locale) — functions-lower/upper
        FunctionSpec("lower", ("field", "as", "locale"), "field", "value"),
        FunctionSpec("upper", ("field", "as", "locale"), "field", "value"),
        # drop(fields) — functions-drop: the rows lose these fields
        FunctionSpec("drop", ("fields",), "fields", "drop"),
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
        # collect(fields, limit=2000, multival=true, separator="\n") — functions-collect: the distinct
        # values of each field, in no defined order, joined by the separator
        FunctionSpec("collect", ("fields", "limit", "multival", "separator"), "fields", "aggregate"),
        # selectLast(fields) — functions-selectlast: each field's value in the most recent event with it
        FunctionSpec("selectLast", ("fields",), "fields", "aggregate"),
        # selectFromMax/selectFromMin(field, include) — functions-selectfrommax/-min: the include
        # fields of the event with the largest/smallest field; ties pick any one of them
        FunctionSpec("selectFromMax", ("field", "include"), "field", "aggregate"),
        FunctionSpec("selectFromMin", ("field", "include"), "field", "aggregate"),
        # stats(function=count(as=_count)) — functions-stats: aggregate functions without grouping
        FunctionSpec("stats", ("function",), "function", "aggregate"),
        # top(field, limit=10, sum, max, as=_count|_sum, percent=false, rest, error=5) — functions-top:
        # groupBy(field, function=count()) | sort(_count, limit=10)
        FunctionSpec("top", ("field", "limit", "sum", "max", "as", "percent", "rest", "error"), "field",
                     "aggregate"),
        # bucket(span, field, function=count(), limit=10, buckets, minSpan, timezone, unit) and
        # timeChart(series, span, function=count(), limit=10, ...) — functions-bucket,
        # functions-timechart: groupBy over _bucket (the bucket's start, epoch ms UTC) and the series
        FunctionSpec("bucket", ("span", "field", "function", "limit", "buckets", "minSpan", "timezone", "unit"),
                     "span", "aggregate"),
        FunctionSpec("timeChart", ("series", "span", "function", "limit", "buckets", "minSpan", "timezone",
                                   "unit"), "series", "aggregate"),
        # head(limit=200) / tail(limit=200) — functions-head, functions-tail: the oldest / newest events
        FunctionSpec("head", ("limit",), "limit", "order"),
        FunctionSpec("tail", ("limit",), "limit", "order"),
        *VALUE_FUNCTIONS,
    )
}

#: The aggregate functions groupBy(function=...) takes, and the field each writes unless as= says
#: otherwise (functions-count, -sum, -min, -max, -avg).
AGGREGATE_OUTPUTS = {"count": "_count", "sum": "_sum", "min": "_min", "max": "_max", "avg": "_avg"}
#: Every function groupBy(function=...), stats(), bucket() and timeChart() take: those above, and
#: those that keep a field's values under its own name.
AGGREGATE_FUNCTIONS = (*AGGREGATE_OUTPUTS, "collect", "selectLast", "selectFromMax", "selectFromMin")
#: collect()'s limit on distinct values (functions-collect).
COLLECT_LIMIT_DEFAULT = 2000
#: top()'s default row count (functions-top); timeChart()/bucket()'s default and maximum number of
#: series (functions-timechart: limit, Maximum 500).
TOP_LIMIT_DEFAULT = 10
SERIES_LIMIT_DEFAULT = 10
SERIES_LIMIT_MAX = 500
#: The name of the IR function that computes bucket()'s _bucket from @timestamp: not a LogScale
#: function (the CQL emitter writes the bucket() call back).
TIME_BUCKET = "timebucket"


def span_text(millis: int) -> str:
    """A span in the largest unit that divides it (``1h``, ``90s``, ``250ms``): LogScale's relative
    time syntax and KQL's timespan literals both read it."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"
#: regex()'s flags (functions-regex): d dot-all, i ignore case, m multi-line, F LogScale's regex engine v2.
REGEX_FLAGS = "dimF"
#: regex() without flags= runs with m (functions-regex; syntax-regex-flags: "enabled by default in
#: the regex() function").
REGEX_DEFAULT_FLAGS = "m"
#: regex(repeat=true)'s limit= default: "the maximum number of events to produce" (functions-regex).
REPEAT_LIMIT = 100

#: groupBy()'s limit: GroupDefaultLimit is 20,000 and the documented maximum 1,000,000; ``max``
#: means GroupMaxLimit, configurable per cluster, read here as that maximum (functions-groupby).
GROUP_LIMIT_DEFAULT = 20_000
GROUP_LIMIT_MAX = 1_000_000

@record
class OpaqueSpec(Frozen):
    """A LogScale function cqlx reads but does not convert: what it does to the rows, so that a
    target losing it is reported as the right kind of loss (an enrichment whose fields nothing
    later tests only changes what is shown).

    ``writes`` are templates over the call's arguments (``{as}``, ``{prefix}.*``), filled in with
    ``defaults`` where an argument is not given (a default may name another argument: ``{field}``);
    None when the fields it writes depend on the data (``kvParse()``). ``filters_when`` is an
    argument and value under which an enrichment also drops events (``strict=true``)."""

    name: str
    effect: str  # ir.FILTERS | ir.ENRICHES | ir.AGGREGATES
    default_param: str | None
    reason: str
    writes: tuple[str, ...] | None = None
    defaults: tuple[tuple[str, str], ...] = ()
    filters_when: tuple[str, str] | None = None


_STATE = "it reads state the target does not have"
_ENRICH = "no target cqlx writes has this enrichment"

# Facts from library.humio.com (functions-*.html): default parameters, output fields and defaults.
OPAQUE: dict[str, OpaqueSpec] = {
    spec.name.lower(): spec
    for spec in (
        OpaqueSpec("join", "filter", "query", "join() inside a boolean expression (and/or) is not converted; "
                   "cqlx converts it as a stage of its own: | join(...) or | !join(...)"),
        OpaqueSpec("selfJoin", "filter", "field", "selfJoin() keeps events by what other events in the search "
                   "hold; cqlx does not convert it"),
        OpaqueSpec("selfJoinFilter", "filter", "field", "selfJoinFilter() inside a boolean expression (and/or) "
                   "is not converted; cqlx converts it as a stage of its own: | selfJoinFilter(...)"),
        OpaqueSpec("ioc:lookup", "enrich", "field", "ioc:lookup() reads CrowdStrike's IOC database, which no other "
                   "platform has", ("{prefix}.*",), (("prefix", "ioc"),), ("strict", "true")),
        OpaqueSpec("readFile", "aggregate", "file", "readFile() reads an uploaded file instead of events; "
                   + _STATE),
        OpaqueSpec("defineTable", "enrich", "query", "defineTable() runs a subquery for later match() calls; "
                   "cqlx does not convert it", ()),
        OpaqueSpec("correlate", "aggregate", "query", "correlate() matches sequences across searches; cqlx does "
                   "not convert it"),
        OpaqueSpec("lookup", "filter", "file", "lookup() (match() before LogScale 1.51) reads a lookup file; "
                   "cqlx does not convert it"),
        # A match() stage is converted (ir.Lookup); inside a boolean expression it is kept as is.
        OpaqueSpec("match", "filter", "file", "match() inside a boolean expression (and/or) is not converted; "
                   "cqlx converts it as a stage of its own: | match(...) or | !match(...)"),
        OpaqueSpec("ipLocation", "enrich", "field", "ipLocation() reads a GeoIP database; " + _ENRICH,
                   ("{as}.*",), (("as", "{field}"),)),
        OpaqueSpec("asn", "enrich", "field", "asn() reads an ASN database; " + _ENRICH,
                   ("{as}.*",), (("as", "{field}"),)),
        # hash(field=[...], as=_hash, limit, seed): "a non-cryptographic hash ... an integer in the
        # range [0,4294967295]" (functions-hash); which hash is not documented.
        OpaqueSpec("hash", "enrich", "field", "hash(): LogScale documents its range, 0 to 4294967295, not its "
                   "algorithm, so no other engine can compute the same numbers", ("{as}",), (("as", "_hash"),)),
        OpaqueSpec("rdns", "enrich", "field", "rdns() makes DNS lookups at search time; " + _ENRICH,
                   ("{as}",), (("as", "hostname"),)),
        OpaqueSpec("kvParse", "enrich", "field", "kvParse() creates fields named by the data; cqlx does not "
                   "convert it"),
        OpaqueSpec("parseJson", "enrich", "field", "parseJson() creates fields named by the data; cqlx does not "
                   "convert it"),
        OpaqueSpec("parseXml", "enrich", "field", "parseXml() creates fields named by the data; cqlx does not "
                   "convert it"),
        OpaqueSpec("parseCsv", "enrich", "field", "parseCsv() creates fields named by the data; cqlx does not "
                   "convert it"),
        OpaqueSpec("parseUrl", "enrich", "field", "cqlx does not convert parseUrl() yet", ("{as}.*",),
                   (("as", "{field}"),)),
        OpaqueSpec("parseTimestamp", "enrich", "format", "cqlx does not convert parseTimestamp() yet", ("{as}",),
                   (("as", "@timestamp"),)),
        OpaqueSpec("split", "filter", "field", "split() turns one event into several; cqlx does not convert it"),
        OpaqueSpec("series", "aggregate", "collect", "cqlx does not convert series()"),
        OpaqueSpec("sequence", "aggregate", "function", "cqlx does not convert sequence()"),
        OpaqueSpec("window", "aggregate", "function", "cqlx does not convert window()"),
        OpaqueSpec("session", "aggregate", "function", "cqlx does not convert session()"),
        OpaqueSpec("fieldstats", "aggregate", None, "cqlx does not convert fieldstats()"),
        OpaqueSpec("sample", "filter", "percentage", "sample() keeps a random share of the events"),
        OpaqueSpec("worldMap", "aggregate", "ip", "worldMap() is a chart"),
        OpaqueSpec("sankey", "aggregate", "source", "sankey() is a chart"),
        OpaqueSpec("transpose", "aggregate", "header", "cqlx does not convert transpose()"),
        OpaqueSpec("geohash", "enrich", None, "geohash() has no counterpart cqlx writes", ("{as}",),
                   (("as", "_geohash"),)),
        OpaqueSpec("eventSize", "enrich", None, "eventSize() measures LogScale's stored event", ("{as}",),
                   (("as", "_eventSize"),)),
        OpaqueSpec("eventFieldCount", "enrich", None, "eventFieldCount() counts LogScale's stored fields",
                   ("{as}",), (("as", "_eventFieldCount"),)),
        OpaqueSpec("bitfield:extractFlags", "enrich", "field", "cqlx does not convert bitfield:extractFlags() "
                   "yet"),
        OpaqueSpec("array:filter", "enrich", "array", "cqlx does not convert array:filter() yet"),
        OpaqueSpec("array:eval", "enrich", "array", "cqlx does not convert array:eval() yet"),
        OpaqueSpec("formatDuration", "enrich", "field", "formatDuration() is not converted: its documentation "
                   "shows one output (23452553 ms is 6h30m52s553ms), not how zero units, negative values or "
                   "precision= are written", ("{as}",), (("as", "{field}"),)),
        OpaqueSpec("json:prettyPrint", "enrich", "field", "json:prettyPrint() only reformats a field",
                   ("{as}",), (("as", "{field}"),)),
        OpaqueSpec("xml:prettyPrint", "enrich", "field", "xml:prettyPrint() only reformats a field",
                   ("{as}",), (("as", "{field}"),)),
    )
}

# Functions real detection content uses that cqlx reads but does not convert yet (CQL.md's
# frequency list), with what they do to the rows.
_PENDING = {
    "enrich": ("math:log", "math:abs", "math:floor", "math:ceil", "md5", "sha1",
               "sha256", "tokenHash"),
    "filter": ("dedup",),
    "aggregate": ("percentile", "stdDev", "range", "counterAsRate", "linReg"),
}
for _effect, _names in _PENDING.items():
    for _name in _names:
        OPAQUE.setdefault(_name.lower(), OpaqueSpec(_name, _effect, None, f"cqlx does not convert {_name}() yet"))

#: What a ``$saved()`` search does is its body, which the query does not hold.
SAVED_SEARCH = OpaqueSpec("$saved", "filter", None, "the body of the saved search is not in the query, so what "
                          "it does to the events is unknown")
#: A name LogScale does not document: most likely a typo, or a function newer than cqlx.
UNKNOWN_FUNCTION_REASON = "cqlx does not know this function (a typo, or newer than cqlx)"

SORT_ORDERS = ("asc", "desc")
SORT_TYPES = ("number", "string", "hex")
ROW_LIMIT_DEFAULT = 200
# StateRowLimit: 200,000 rows by default in LogScale (configuration-dynamic-config-settingdetails-state_row_limit;
# 20,000 before 1.44)
ROW_LIMIT_MAX = 200_000

#: match(file, field, column=field, include=every column, strict=true, ignoreCase=false,
#: mode=string, nrows=1, glob=false; table= names an ad-hoc table) — functions-match. ``file`` is
#: the default parameter ("The argument name file can be omitted").
MATCH = FunctionSpec("match", ("file", "field", "column", "include", "strict", "ignoreCase", "mode", "nrows",
                               "glob", "table"), "file", "lookup")
LOOKUP_MODES = ("string", "glob", "cidr")
#: join(query, field, key=field, include=[], mode=inner, max=1, limit=100000, start, end, repo, view,
#: live) — functions-join: ``query`` (the subquery) is the default parameter.
JOIN = FunctionSpec("join", ("query", "field", "key", "include", "mode", "max", "limit", "start", "end", "repo",
                             "view", "live"), "query", "join")
#: selfJoinFilter(field, where, prefilter=false) — functions-selfjoinfilter: ``field`` (the key
#: fields) is the default parameter; ``where`` is a list of filters in braces.
SELF_JOIN_FILTER = FunctionSpec("selfJoinFilter", ("field", "where", "prefilter"), "field", "selfJoinFilter")
#: defineTable(query, name, include, start, end, view) — functions-definetable: ``query`` (the
#: subquery) is the default parameter; the table's rows are its events' ``include`` fields.
DEFINE_TABLE = FunctionSpec("defineTable", ("query", "name", "include", "start", "end", "view"), "query",
                            "defineTable")
JOIN_MODES = ("inner", "left")
JOIN_LIMIT_DEFAULT = 100_000

"""The Python API: ``parse``, ``convert``, ``compile_matcher``.

Every failure a caller can cause raises a :class:`cqlx.CqlError` subclass carrying the span.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cqlx import ir
from cqlx.ast import Pipeline
from cqlx.errors import CqlError, LookupFileError
from cqlx.frozen import Frozen, record

if TYPE_CHECKING:
    from cqlx.rules import Rule

#: A lookup file as compile_matcher() takes it: a CSV file's path, or its rows ({column: value}).
LookupSource = str | Path | Iterable[Mapping[str, Any]]


def parse_tree(text: str) -> Pipeline:
    """The syntax tree of a CQL query."""
    from cqlx.errors import CqlSyntaxError
    from cqlx.parser import parse as parse_text

    try:
        return parse_text(text)
    except RecursionError:
        raise CqlSyntaxError("the query is nested too deeply (chains of hundreds of operators); split it into "
                             "pipeline stages", source=text) from None


def parse(text: str, params: Mapping[str, str] | None = None,
          saved_searches: Mapping[str, str] | None = None) -> ir.Query:
    """The IR of a CQL query: lowered from the syntax tree and normalised by the passes.
    ``params`` gives values to the query's parameters (``?name``); ``saved_searches`` the bodies of
    the saved searches its ``$name()`` calls may name (by name, ``package:name`` for a package's)."""
    from cqlx.lower import lower
    from cqlx.passes import run_passes

    tree = parse_tree(text)
    try:
        return run_passes(lower(tree, text, params, saved_searches))
    except CqlError as error:
        raise error.located(text) from None
    except RecursionError:
        raise CqlError("the query is nested too deeply to convert; split it into pipeline stages",
                       source=text) from None


class RegexTimeoutError(CqlError):
    """An event on which a backtracking regex ran past the matcher's time limit: undecided."""


@record
class Matcher(Frozen):
    """A compiled rule: ``match(event)`` gives the output row or None; ``run(events)`` all rows,
    ordered and limited as the rule says. ``source`` is the standalone module's code."""

    query: ir.Query
    source: str
    namespace: dict[str, Any]

    def match(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The output row for ``event``, or None; :class:`RegexTimeoutError` when a regex that
        needs backtracking ran past :attr:`regex_time_limit` on it."""
        try:
            result: dict[str, Any] | None = self.namespace["match"](event)
        except self.namespace["RegexTimeout"] as error:
            raise RegexTimeoutError(str(error)) from None
        except (self.namespace["LookupFileError"], self.namespace["JoinError"]) as error:
            raise LookupFileError(str(error)) from None
        return result

    def run(self, events: Iterable[dict[str, Any]], counts: dict[str, int] | None = None,
            now: int | None = None) -> list[dict[str, Any]]:
        """All output rows; with ``counts``, ``counts["matched"]`` is how many events matched
        (before any sort limit) and ``counts["timed_out"]`` how many were given up on because a
        regex ran past the time limit (without ``counts``, that raises :class:`RegexTimeoutError`).
        ``now()`` is one time for every event, as in a historical LogScale query: when ``run()``
        is called, or ``now`` (milliseconds since the epoch)."""
        try:
            result: list[dict[str, Any]] = self.namespace["run"](events, counts, now)
        except self.namespace["RegexTimeout"] as error:
            raise RegexTimeoutError(str(error)) from None
        except (self.namespace["LookupFileError"], self.namespace["JoinError"]) as error:
            raise LookupFileError(str(error)) from None
        return result

    @property
    def regex_time_limit(self) -> float:
        """Seconds one search of a regex RE2 cannot run may take (0: no limit). RE2 runs every
        other regex in linear time, unbounded."""
        limit: float = self.namespace["REGEX_TIME_LIMIT"][0]
        return limit

    def limit_regex_time(self, seconds: float) -> None:
        """Set :attr:`regex_time_limit` (the namespace is this matcher's own)."""
        self.namespace["REGEX_TIME_LIMIT"][0] = seconds

    @property
    def fields(self) -> tuple[str, ...] | None:
        """The output fields in order when the rule selects them (or groups: the keys and the
        functions' outputs), with what later steps write, else None (:func:`output_fields`)."""
        return output_fields(self.query)


def output_fields(query: ir.Query) -> tuple[str, ...] | None:
    """The fields a rule's rows hold, in order: its last projection's, or its last aggregation's
    keys and outputs, then what later steps write (a ``stats()`` with a sort(), an assignment)
    less what they drop; None when the rows keep every field of the event."""
    from cqlx.passes import step_writes

    steps = query.steps
    last = next((i for i in range(len(steps) - 1, -1, -1) if isinstance(steps[i], ir.Project | ir.Aggregate)), None)
    if last is None:
        return None
    base = steps[last]
    if isinstance(base, ir.Project):
        fields = list(base.fields)
    else:
        assert isinstance(base, ir.Aggregate)
        fields = [*base.keys, *base.outputs]
    for step in steps[last + 1:]:
        if isinstance(step, ir.Drop):
            fields = [f for f in fields if f not in step.fields]
            continue
        written: tuple[str, ...]
        if isinstance(step, ir.Eval):
            written = (step.field,)
        elif isinstance(step, ir.Extract):
            written = step.groups
        elif isinstance(step, ir.Totals):
            written = step.outputs
        else:
            written = tuple(sorted(step_writes(step)))
        fields += [f for f in written if f not in fields and "*" not in f]
    return tuple(fields)


def compile_matcher(text: str, title: str = "", profile: str | None = None,
                    params: Mapping[str, str] | None = None,
                    lookups: Mapping[str, LookupSource] | None = None) -> Matcher:
    """Compile a CQL query into an in-process matcher (the same code ``--to python`` writes).
    ``profile`` names the shape of the events: ``falcon`` (the default), ``ecs`` for Elastic events,
    or any profile whose field names the events carry (``sigma`` for Sigma-named records);
    ``params`` gives values to the query's parameters (``?name``); ``lookups`` gives each lookup
    file a ``match()`` reads, by its name in the rule (``{"hosts.csv": "path/to/hosts.csv"}``, or
    its rows). A rule the matcher cannot run as LogScale would (a ``join()``, a ``$saved()``
    search) raises :class:`UnsupportedError`; a lookup file it reads and is not given,
    :class:`LookupFileError`."""
    return compile_query(parse(text, params), text, title, profile, lookups)


def lookup_files(query: ir.Query) -> list[ir.Lookup]:
    """The ``match()`` stages of a query, case branches and join() subqueries included, in order."""
    from cqlx.passes import nested_steps

    return [step for step in nested_steps(query.steps) if isinstance(step, ir.Lookup)]


def load_lookup(name: str, source: LookupSource) -> list[dict[str, Any]]:
    """A lookup file's rows: read from a CSV file (its first line names the columns), or given."""
    import csv

    if isinstance(source, str | Path):
        try:
            with open(source, encoding="utf-8-sig", newline="") as handle:
                return [dict(row) for row in csv.DictReader(handle)]
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise LookupFileError(f"cannot read the lookup file {name} from {source}: {error}") from None
    rows = [dict(row) for row in source]
    if any(not all(isinstance(k, str) for k in row) for row in rows):
        raise LookupFileError(f"the rows of the lookup file {name} must map column names to values")
    return rows


def compile_query(query: ir.Query, text: str = "", title: str = "", profile: str | None = None,
                  lookups: Mapping[str, LookupSource] | None = None, source: str | None = None) -> Matcher:
    """Compile an already-parsed query into a :class:`Matcher`; ``source``, the module
    :func:`cqlx.emit.python.emit_python` wrote for it with this title, text and profile, if known."""
    from cqlx.emit.python_module import rule_part, runtime_code
    from cqlx.passes import self_joins_as_joins

    query = self_joins_as_joins(query)  # the matcher runs a self-join filter as its joins
    try:
        if source is None:
            from cqlx.emit.python import emit_python
            from cqlx.profiles import load_profile

            source = emit_python(query, title, text, load_profile(profile) if profile else None)
        namespace: dict[str, Any] = {"__name__": "cqlx_matcher"}
        # The module's runtime part is cqlx.runtime itself: its compiled code runs in this
        # matcher's namespace (its state is the matcher's own), and only the rule is compiled.
        exec(runtime_code(), namespace)
        exec(compile(rule_part(source), "<cqlx matcher>", "exec"), namespace)
    except (RecursionError, MemoryError, SyntaxError) as error:  # SyntaxError: too many nested parentheses
        raise CqlError(f"the query is nested too deeply for a Python matcher ({type(error).__name__})",
                       source=text) from None
    given = dict(lookups or {})
    for step in lookup_files(query):
        if step.file not in given:
            raise LookupFileError(f"match() reads the lookup file {step.file}, which was not given (cqlx run "
                                  f"--lookup {step.file}=PATH; API: lookups={{{step.file!r}: PATH_OR_ROWS}})",
                                  step.span, text)
        if step.file not in namespace["LOOKUPS"]:
            namespace["LOOKUPS"][step.file] = load_lookup(step.file, given[step.file])
    return Matcher(query, source, namespace)


def compile_rule(rule: Rule, profile: str | None = None, lookups: Mapping[str, LookupSource] | None = None
                 ) -> Matcher:
    """The :class:`Matcher` of a rule file's query, as :func:`compile_query` makes it, with the
    compiled rule kept between processes (:mod:`cqlx.cache`): a rule run again skips parsing,
    lowering and code generation. Errors are the rule file's, as from :meth:`Rule.parse`."""
    from cqlx import cache

    chosen = ""
    if profile:
        from cqlx.profiles import load_profile

        chosen = repr(load_profile(profile))
    key = cache.rule_key(rule.text, repr(rule.options), rule.meta.title, chosen)
    kept = cache.load_rule(key)
    if isinstance(kept, tuple) and len(kept) == 2 and isinstance(kept[0], ir.Query) and isinstance(kept[1], str):
        return compile_query(kept[0], rule.text, rule.meta.title, profile, lookups, kept[1])
    query = rule.parse()
    try:
        matcher = compile_query(query, rule.text, rule.meta.title, profile, lookups)
    except LookupFileError:
        raise
    except CqlError as error:
        raise rule.relocate(error) from None
    cache.save_rule(key, (query, matcher.source))
    return matcher

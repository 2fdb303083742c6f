"""The ``cqlx`` command line: thin, all logic lives in the library.

Exit codes: 0 success, 1 findings (a lossy conversion refused, a check that fails), 2 bad input
(syntax error, unknown option, unreadable file). Errors are printed with their position and the
source line; no traceback ever reaches the user (an unexpected one is reported as an internal
error, exit 3).
"""

# No `from __future__ import annotations` here: Typer reads every command's annotations on each
# run, and string annotations cost it an eval() each (~140 of them; issue 7, cold convert).
import csv
import gc
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cqlx.errors import CqlError
from cqlx.options import ParseOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Convert CrowdStrike Falcon LogScale (CQL) detections to Splunk SPL, Microsoft KQL, Sigma and "
         "Python matchers, and run them over events.\n\n"
         "Examples:\n\n"
         "  cqlx convert rule.yml --to kql\n\n"
         "  cqlx convert samples/rules --to all --output out/\n\n"
         "  cqlx run rule.yml events.ndjson --format table\n\n"
         "  cqlx explain rule.yml",
)

TARGET_CHOICES = ("spl", "kql", "sigma", "python", "cql", "all")

# Options every command that reads rules takes: what the queries are read with (cqlx.options).
ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", help="A value for the query parameter ?NAME: NAME=VALUE (repeatable).", show_default=False)]
SavedOption = Annotated[list[Path] | None, typer.Option(
    "--saved-searches", help="Saved searches that $name() calls expand to: a LogScale package directory or YAML "
                             "files with name and queryString (repeatable).", show_default=False)]


def _parse_options(param: list[str] | None, saved: list[Path] | None) -> ParseOptions:
    """--param and --saved-searches as the options rules are parsed with; bad input is exit 2."""
    from cqlx.options import load_saved_searches, parse_params

    try:
        params = parse_params(param or [])
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--param") from None
    try:
        searches = load_saved_searches(saved or [])
    except CqlError as error:
        raise typer.BadParameter(error.message, param_hint="--saved-searches") from None
    return ParseOptions(params, searches)


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _fail(code: int) -> typer.Exit:
    return typer.Exit(code)


@app.command()
def convert(
    rules: Annotated[list[str], typer.Argument(help="Rule files (.cql, rule cards .yml, LogScale package "
                                                    "YAML: saved searches, alerts, dashboards) or directories "
                                                    "(searched recursively); - reads one query from stdin.",
                                               show_default=False)],
    to: Annotated[str, typer.Option("--to", "-t", help="Targets, comma-separated: spl, kql, sigma, python, cql, "
                                                      "all, or sigma:BACKEND (an installed pySigma backend).")
                  ] = "kql",
    profile: Annotated[str | None, typer.Option(help="Target profile name or YAML file, for the target of its "
                                                     "language (default: each target's own: splunk, mde, sigma, "
                                                     "falcon).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write one file per rule and target "
                                                                        "into this directory, keeping the rules' "
                                                                        "folders.")] = None,
    on_lossy: Annotated[str, typer.Option(help="When a target cannot express the rule exactly: error "
                                               "(refuse detection loss: that rule is not written for that "
                                               "target, the rest go on), warn, or ignore.")] = "error",
    sigma_pipeline: Annotated[list[str] | None, typer.Option(
        help="With --to sigma:BACKEND: a pySigma processing pipeline to apply (repeatable).")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write a JSON report: per rule and target "
                                                                 "its class, the file written, every "
                                                                 "diagnostic at path:line:column.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar on "
                                                  "stderr (default: when stderr is a terminal and there are "
                                                  "several rules).", show_default=False)] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Processes that convert the rules (the "
                                                                  "output is the same).")] = 1,
    param: ParamOption = None,
    saved_searches: SavedOption = None,
) -> None:
    """Convert rules to other platforms. Output goes to stdout unless --output.

    With several rules, a summary per target follows (exact, presentation-only loss, detection
    loss, failed): on stdout with --output, else on stderr. Output files keep each rule's folder
    under --output and never overwrite each other (a file holding several queries writes one file
    per query). Exit status: 0 every conversion written; 1 some refused (detection loss under
    --on-lossy error, or a construct a target cannot express); 2 some rule failed to load or parse
    (the others are still converted), or bad options.

    Examples: cqlx convert samples/rules/container_cli_api.yml --to spl;
    cqlx convert rules/ --to all --output out/ --report report.json;
    cqlx convert rule.yml --to sigma:splunk (through pySigma's Splunk backend)
    """
    from cqlx.batch_cli import run_convert
    from cqlx.conversion import POLICIES

    if on_lossy not in POLICIES:
        raise typer.BadParameter(f"{on_lossy!r}; choose from {', '.join(POLICIES)}", param_hint="--on-lossy")
    from cqlx.batch import parse_targets

    try:
        targets = parse_targets(to, profile, sigma_pipeline or ())
    except CqlError as error:
        raise typer.BadParameter(f"{error.message} (targets: {', '.join(TARGET_CHOICES)} or sigma:BACKEND)",
                                 param_hint="--to/--profile") from None
    options = _parse_options(param, saved_searches)
    status = run_convert(rules, targets, output, on_lossy, report, progress, jobs, options)
    if status:
        raise _fail(status)


@app.command()
def run(
    rule: Annotated[str, typer.Argument(help="The rule file, or - for a query on stdin.", show_default=False)],
    events: Annotated[list[str], typer.Argument(help="NDJSON event files (.gz too), or - for stdin.",
                                                show_default=False)],
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="jsonl, table or csv (default: table on a "
                                                                   "terminal, jsonl otherwise).")] = None,
    strict: Annotated[bool, typer.Option(help="Stop at the first malformed event line.")] = False,
    profile: Annotated[str | None, typer.Option(help="The shape of the events: falcon (default), ecs, or a "
                                                     "python profile file.")] = None,
    prefilter: Annotated[bool, typer.Option(help="Skip, unparsed, lines that hold none of the text a match "
                                                 "needs (off with --strict, which checks every line).")] = True,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Processes that scan each event file "
                                                                  "(regular files; with the prefilter).")] = 1,
    regex_timeout: Annotated[float, typer.Option(min=0, help="Milliseconds one search of a regex that needs "
                                                              "backtracking (RE2 cannot run it) may take on an event; "
                                                              "the event is then counted undecided. 0: no limit.")
                             ] = 50,
    lookup: Annotated[list[str] | None, typer.Option("--lookup", help="A lookup file the rule's match() reads: "
                                                     "NAME=PATH (NAME as the rule writes it, PATH a CSV file); "
                                                     "repeatable.", show_default=False)] = None,
    param: ParamOption = None,
    saved_searches: SavedOption = None,
) -> None:
    """Run a rule over events with the Python matcher; print the rule's output rows.

    Example: cqlx run samples/rules/container_cli_api.yml samples/events/container_cli_api.ndjson
    """
    from cqlx import ir
    from cqlx.api import compile_rule
    from cqlx.events import EventStats, read_events
    from cqlx.passes import pred_fields, step_writes
    from cqlx.rules import load_rule
    from cqlx.runtime import field_value

    chosen = fmt or ("table" if sys.stdout.isatty() else "jsonl")
    if chosen not in ("jsonl", "table", "csv"):
        raise typer.BadParameter(f"{chosen!r}; choose from jsonl, table, csv", param_hint="--format")
    if rule == "-" and "-" in events:
        raise typer.BadParameter("the rule and the events cannot both come from stdin", param_hint="RULE")
    loaded = load_rule(rule, _parse_options(param, saved_searches), kept=True)
    matcher = compile_rule(loaded, profile, _pairs(lookup or [], "--lookup", "PATH"))
    query = matcher.query
    matcher.limit_regex_time(regex_timeout / 1000)
    stats = EventStats()
    # The fields the filters test that the event itself must hold: not those the rule computed first.
    reads: set[str] = set()
    written: set[str] = {"*"}
    for step in query.steps:
        if isinstance(step, ir.Filter):
            reads |= pred_fields(step.pred) - written
        written |= step_writes(step)
    tested = sorted(reads)
    times = ("@timestamp", "timestamp")  # raw FDR's event time is timestamp (field_value)
    plain = tuple(n for n in tested if n[:1] != "#" and "." not in n and n not in times)  # dict.get for these
    special = tuple(n for n in tested if n not in plain)

    def counted(stream: Any) -> Any:
        missing = odd = 0
        try:
            for event in stream:
                values = [*map(event.get, plain), *(field_value(event, name, times) for name in special)]
                if None in values:
                    missing += 1
                kinds = set(map(type, values))
                if list in kinds or dict in kinds:
                    odd += 1
                yield event
        finally:
            stats.missing_fields += missing
            stats.not_text += odd

    counts: dict[str, int] = {}
    # A join()'s subquery reads other events than the rule's filters keep: no prefilter then. The
    # joins of a selfJoinFilter() read the rule's own source and leading filters, which the
    # prefilter's needs come from (prefilter.build): every event they can read is a candidate.
    joins = any(isinstance(step, ir.Join) and step.origin != "selfJoinFilter" for step in query.steps)
    if prefilter and not strict and profile is None and not joins:
        from cqlx.prefilter import build
        from cqlx.scan import scan_events

        stream = scan_events(events, stats, build(query), jobs)
    else:
        stream = read_events(events, stats, strict)
    rows = matcher.run(counted(stream), counts)
    stats.matched = counts.get("matched", 0)
    stats.timed_out = counts.get("timed_out", 0)
    _write_rows(rows, matcher.fields, chosen)
    _err(stats.summary())
    for example in stats.examples:
        _err(f"  malformed: {example}")
    if stats.matched > len(rows):
        _err(f"  {len(rows)} rows shown: the rule's sort()/table() keeps that many")


def _pairs(values: list[str], option: str, what: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a mapping; one without ``=`` or a name is bad input (exit 2)."""
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{value!r} is not NAME={what}", param_hint=option)
        pairs[name] = rest
    return pairs


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _write_rows(rows: list[dict[str, Any]], fields: tuple[str, ...] | None, fmt: str) -> None:
    columns = list(fields) if fields else list(dict.fromkeys(k for row in rows for k in row))
    if fmt == "jsonl":
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _cell(row[c]) for c in columns])
        typer.echo(buffer.getvalue(), nl=False)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if row.get(c) is None else _cell(row[c]) for c in columns))
        Console().print(table)


@app.command()
def explain(rule: Annotated[str, typer.Argument(help="The rule file, or - for a query on stdin.",
                                                show_default=False)],
            param: ParamOption = None, saved_searches: SavedOption = None) -> None:
    """Show what a rule means: source, filter, signals with weights, score, ladder, output, order.

    Example: cqlx explain samples/rules/container_cli_api.yml
    """
    from cqlx.explain import explain as describe
    from cqlx.rules import load_rule

    loaded = load_rule(rule, _parse_options(param, saved_searches))
    typer.echo(describe(loaded.parse(), loaded.meta.title, loaded.path, loaded.line_offset))


@app.command()
def check(
    rules: Annotated[list[str], typer.Argument(help="Rule files or directories; - reads one query from stdin.",
                                               show_default=False)],
    on_lossy: Annotated[str, typer.Option(help="The policy a conversion would run under.")] = "error",
    param: ParamOption = None,
    saved_searches: SavedOption = None,
) -> None:
    """Parse and lint rules: portability notes, and what each target could not express.

    Exits 1 when a conversion would be refused under --on-lossy. Example: cqlx check samples/rules
    """
    from cqlx.conversion import apply_policy, convert_query
    from cqlx.lint import regex_engine_notes
    from cqlx.rules import NoQueryError, find_rules, load_rules

    options = _parse_options(param, saved_searches)
    status = 0
    for path in find_rules(rules):
        try:
            loaded = load_rules(path, options)
        except NoQueryError as error:
            _err(f"{path}: skipped: {error.message}")
            continue
        except CqlError as error:
            _err(str(error))
            status = 2
            continue
        for rule in loaded:
            try:
                query = rule.parse()
            except CqlError as error:
                _err(str(error))
                status = 2
                continue
            problems = 0
            for span, note in query.notes:
                _err(f"{rule.location(span)}: portability: {note}")
            for span, note in regex_engine_notes(query):
                _err(f"{rule.location(span)}: matcher: {note}")
            for target in ("spl", "kql", "sigma", "python"):
                try:
                    conversion = apply_policy(convert_query(query, target, None, rule.meta, rule.text), "ignore")
                except CqlError as error:  # the target cannot express a construct at all
                    _err(str(rule.relocate(error)))
                    problems += 1
                    continue
                for diagnostic in conversion.diagnostics:
                    _err(f"{rule.location(diagnostic.span)}: {diagnostic.describe()}")
                try:
                    apply_policy(conversion, on_lossy)
                except CqlError:
                    problems += 1
            name = f"{rule.path} ({rule.name})" if rule.index else rule.path
            typer.echo(f"{name}: {'ok' if not problems else f'{problems} target(s) would refuse it'}")
            if problems:
                status = max(status, 1)
    if status:
        raise _fail(status)


@app.command("test")
def test_command(
    rules: Annotated[list[str], typer.Argument(help="Rule files or directories; - reads one query from stdin.",
                                               show_default=False)],
    generate: Annotated[bool, typer.Option("--generate", help="Also run witness events derived from each rule "
                                                              "(positive and just-missing events).")] = False,
    seed: Annotated[int, typer.Option(help="Seed for --generate.")] = 0,
    write_witnesses: Annotated[Path | None, typer.Option(help="Save the generated witnesses here, one NDJSON "
                                                              "file per rule.")] = None,
    junit: Annotated[Path | None, typer.Option(
        help="Write a JUnit XML report (a testcase per rule and target).")] = None,
    json_report: Annotated[Path | None, typer.Option("--json", help="Write a JSON report.")] = None,
    sarif: Annotated[Path | None, typer.Option(help="Write a SARIF 2.1.0 report.")] = None,
    profile: Annotated[list[str] | None, typer.Option(
        help="A profile for its language's target, e.g. --profile sentinel-asim for the KQL (repeatable).")] = None,
    param: ParamOption = None,
    saved_searches: SavedOption = None,
) -> None:
    """Run each rule's tests on the Python matcher and compare every target on a real engine:
    the KQL on duckdb-kql and Kusto.Language, the Sigma on pySigma's sqlite backend, the saved
    Python module, the SPL on cqlx's SPL oracle. Exit 0 when all agree, 1 on any failure, 2 when
    a rule fails to load or parse (the others are still tested).

    Example: cqlx test samples/rules --generate --junit report.xml
    """
    from cqlx import testing
    from cqlx.profiles import load_profile
    from cqlx.rules import find_rules, load_rule
    from cqlx.witness import generate as witnesses

    chosen = {load_profile(p).language: p for p in profile or []}
    options = _parse_options(param, saved_searches)
    report = testing.Report()
    paths = find_rules(rules)
    if not paths:
        _err("cqlx: no rule files found")
        raise _fail(2)
    broken = 0
    for path in paths:
        try:
            rule = load_rule(path, options)
            query = rule.parse()
        except CqlError as error:  # reported, and the run goes on with the other rules
            _err(str(error))
            broken += 1
            continue
        extra: list[testing.Case] = []
        if generate:
            found = witnesses(query, seed)
            extra = [testing.Case(f"witness: {w.name}", w.event) for w in found]
            if testing.aggregates(query):  # and together, so that groups count several events
                extra.append(testing.witness_stream(query, (w.event for w in found)))
            if write_witnesses is not None:
                write_witnesses.mkdir(parents=True, exist_ok=True)
                target = write_witnesses / f"{path.stem}.witnesses.ndjson"
                target.write_text("".join(json.dumps(w.event, sort_keys=True) + "\n" for w in found), encoding="utf-8")
        testing.test_rule(rule, report, extra, chosen, query)
    typer.echo(testing.summary(report))
    if broken:
        _err(f"cqlx: {broken} of {len(paths)} rule files failed to load or parse (above); the others were tested")
    for destination, render in ((junit, testing.junit), (json_report, testing.as_json), (sarif, testing.sarif)):
        if destination is not None:
            destination.write_text(render(report), encoding="utf-8")
    if broken:
        raise _fail(2)
    if not report.ok:
        raise _fail(1)


@app.command()
def equiv(
    rule: Annotated[str, typer.Argument(help="The CQL rule.", show_default=False)],
    other: Annotated[Path, typer.Argument(help="The rule written for another platform.", show_default=False)],
    kind: Annotated[str, typer.Option("--as", help="What OTHER is: kql, sigma, spl or python.")],
    profile: Annotated[str | None, typer.Option(help="The data model OTHER is written for.")] = None,
    events: Annotated[list[Path] | None, typer.Option("--events", help="More events (NDJSON) to compare on.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the witness events.")] = 0,
    param: ParamOption = None,
    saved_searches: SavedOption = None,
) -> None:
    """Is a rule written for another platform equivalent to the CQL rule? Both run over witness
    events derived from the CQL (and --events); exit 0 when they agree on every event, 1 when not,
    with the smallest disagreeing event. SPL runs on cqlx's SPL oracle, not on Splunk.

    Example: cqlx equiv samples/rules/container_cli_api.yml mine.kql --as kql
    """
    from cqlx import testing
    from cqlx.rules import load_rule
    from cqlx.witness import generate as witnesses

    if kind not in ("kql", "sigma", "spl", "python"):
        raise typer.BadParameter(f"{kind!r}; choose from kql, sigma, spl, python", param_hint="--as")
    loaded = load_rule(rule, _parse_options(param, saved_searches))
    cases = [testing.Case(f"witness: {w.name}", w.event) for w in witnesses(loaded.parse(), seed)]
    for path in events or []:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                value = json.loads(line)
                if isinstance(value, dict):
                    cases.append(testing.Case(f"{path}:{number}", value))
    try:
        text = other.read_text(encoding="utf-8")
    except OSError as error:
        raise CqlError(f"{other}: cannot read ({error.strerror or error})") from None
    if kind == "spl":
        _err("note: SPL is run on cqlx's SPL oracle (the subset cqlx emits, from Splunk's documented "
             "behaviour), not on Splunk")
    try:
        differences = testing.equivalence(loaded, text, kind, cases, profile)
    except CqlError as error:
        raise error.located(text, str(other)) from None
    if not differences:
        typer.echo(f"equivalent on {len(cases)} events")
        return
    case, want, have, problem = differences[0]
    typer.echo(f"NOT equivalent: {len(differences)} of {len(cases)} events differ")
    typer.echo(f"smallest disagreeing event ({case.name}):")
    typer.echo(f"  {json.dumps(case.event, sort_keys=True, default=str)}")
    typer.echo(f"  CQL rule:   {want.show()}")
    typer.echo(f"  {kind} rule: {have.show()}")
    typer.echo(f"  {problem}")
    raise _fail(1)


@app.command("coverage")
def coverage_command(
    rules: Annotated[list[str], typer.Argument(help="Rule files or directories; - reads one query from stdin.",
                                               show_default=False)],
    to: Annotated[str, typer.Option("--to", "-t", help="Targets, comma-separated: spl, kql, sigma, python "
                                                      "(or all).")] = "spl,kql,sigma,python",
    profile: Annotated[list[str] | None, typer.Option(
        help="A profile for its language's target (repeatable; two for one language compares them).")] = None,
    navigator: Annotated[Path | None, typer.Option(help="Write ATT&CK Navigator layers (format 4.5) into this "
                                                        "directory: one per target and a comparison.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown report (for a pull request).")] = None,
    json_report: Annotated[Path | None, typer.Option("--json", help="Write a JSON report (a later "
                                                                    "--baseline).")] = None,
    baseline: Annotated[Path | None, typer.Option(help="A JSON report of an earlier run: show what was gained "
                                                       "and lost.")] = None,
    fail_on_gaps: Annotated[bool, typer.Option("--fail-on-gaps", help="Exit 1 when a technique the source rules "
                                               "cover is lost on a target (with --baseline: covered there before, "
                                               "not now).")] = False,
    param: ParamOption = None,
    saved_searches: SavedOption = None,
) -> None:
    """Convert every rule to every target and show which convert exactly, with presentation loss,
    with detection loss, or not at all; and which ATT&CK techniques each target covers.

    Example: cqlx coverage samples/ --navigator layers/ --html coverage.html --json coverage.json
    """
    from cqlx.coverage_cli import run_coverage

    status = run_coverage(rules, to, profile or [], navigator, html, markdown, json_report, baseline, fail_on_gaps,
                          _parse_options(param, saved_searches))
    if status:
        raise _fail(status)


profiles_app = typer.Typer(help="Target profiles: the data models cqlx converts to.", no_args_is_help=False)
app.add_typer(profiles_app, name="profiles")


@profiles_app.callback(invoke_without_command=True)
def profiles_list(ctx: typer.Context) -> None:
    """List the shipped profiles with their language and event types. Example: cqlx profiles"""
    if ctx.invoked_subcommand is not None:
        return
    from cqlx.profiles import load_profile, shipped_profiles

    for name in shipped_profiles():
        profile = load_profile(name)
        typer.echo(f"{name:<16} {profile.language:<7} {profile.title}")
        typer.echo(f"{'':<24} event types: {', '.join(profile.event_types)}")
        if profile.absent:
            typer.echo(f"{'':<24} no counterpart: {', '.join(profile.absent)}")


@profiles_app.command("show")
def profiles_show(name: Annotated[str, typer.Argument(help="A shipped profile name or a profile file.",
                                                      show_default=False)]) -> None:
    """Show a profile: where each event type goes and how each Falcon field is named there.

    Example: cqlx profiles show mde
    """
    from cqlx.profiles import load_profile

    profile = load_profile(name)
    typer.echo(f"{profile.name}: {profile.title}  ({profile.path})")
    typer.echo(f"language {profile.language}; regex {profile.regex}; unmapped fields {profile.unmapped}; "
               f"absent strings are {profile.missing}")
    for absent, reason in profile.absent.items():
        typer.echo(f"\n{absent}: no counterpart ({reason})")
    for event in profile.event_types.values():
        where = [f"table {event.table}"] if event.table else []
        where += [f"datamodel {event.datamodel}"] if event.datamodel else []
        where += [" ".join(f"{k}={v}" for k, v in event.search)] if event.search else []
        where += ["logsource " + ", ".join(f"{k}: {v}" for k, v in event.logsource)] if event.logsource else []
        where += ["records with " + ", ".join(f"{k}={'|'.join(v)}" for k, v in event.match)] if event.match else []
        typer.echo(f"\n{event.name}: {'; '.join(where) or '(Falcon names)'}")
        for falcon, mapped in event.fields.items():
            extra = [x for x in (mapped.type if mapped.type != "string" else "", mapped.transform or "",
                                 "not exact" if not mapped.exact else "", mapped.note) if x]
            typer.echo(f"  {falcon:<22} -> {event.prefix}{mapped.name}" + (f"  ({'; '.join(extra)})" if extra else ""))
    native = profile.native
    if native is not None:
        typer.echo(f"\nRules in {native.source}'s field names with no event type: the logsource holding the "
                   f"{native.source} events their filters can pass (product {native.product}"
                   + (f"; every event: service {native.service}" if native.service else "") + ")")
        for logsource, held in native.logsources:
            typer.echo(f"  {logsource:<26} events {', '.join(held)}")


def main() -> None:
    """Console entry point: every error becomes a message and an exit code, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except CqlError as error:
        _err(str(error))
        code = 2
    except typer.Abort:
        _err("aborted")
        code = 130
    except BrokenPipeError:
        code = 0
    except KeyboardInterrupt:
        code = 130
    except Exception as error:
        show = getattr(error, "show", None)
        if callable(show) and isinstance(getattr(error, "exit_code", None), int):
            show()  # a usage error from typer's click (bad option, missing argument): already worded
            code = 2
        else:  # the last line of defence: a bug, reported without a traceback
            _err(f"cqlx: internal error: {type(error).__name__}: {error} (please report it with the rule)")
            code = 3
    # Leave without the collector's last walk over every object the run made (the parser's tables,
    # the modules): the process ends anyway, and that walk was ~50 ms of a 300 ms cold convert.
    gc.freeze()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

"""How much of a query library cqlx reads and converts: parse and conversion rates per target.

    .venv/bin/python bench/corpus.py DIR [DIR...] [--top 25] [--json OUT.json] [--causes]

Every ``.cql`` (or rule card / LogScale package YAML) under the directories goes through the Python
API as a user's script would: ``cqlx.parse`` then, per target, a conversion under the default policy
(detection loss refuses it). A query *converts* when the target writes it without detection loss.
Anything raised that is not a ``CqlError`` is a cqlx bug and is listed with its traceback's last
line. The most frequent reasons for refusals are counted per target, so the next piece of work is
the one that converts the most queries.

``--causes`` sorts every refusal reason into what stands in the way (:data:`CAUSES`): what the
query does not hold (a saved search's body, a parameter's value, an uploaded file, a GeoIP
database, another time range), data the target's profile does not hold (an event type, a field,
a LogScale tag), what the target's language cannot say, what LogScale does not document, and the
rest: what cqlx could convert and does not (yet). Per target it prints how many queries each
cause refuses and the *ceiling*: the queries that convert plus those refused by cqlx's own gaps
alone, i.e. the most any work on cqlx could convert without converting wrongly. A reason no
pattern names counts as cqlx's own, so the ceiling is never understated.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

TARGETS = ("spl", "kql", "sigma", "python", "cql")


def _queries(paths: list[str]) -> list[tuple[str, str]]:
    from cqlx.rules import NoQueryError, find_rules, load_rules

    found: list[tuple[str, str]] = []
    for path in find_rules(paths):
        if path.suffix == ".cql" or path.suffix not in (".yml", ".yaml"):
            found.append((str(path), path.read_text(encoding="utf-8", errors="replace")))
            continue
        try:
            found += [(f"{r.path}#{r.index}" if r.index else str(r.path), r.text) for r in load_rules(path)]
        except NoQueryError:
            continue
        except Exception as error:  # a file cqlx cannot read is reported, not counted as a query
            print(f"{path}: {error}", file=sys.stderr)
    return found


_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|/[^ ]*/[a-zA-Z]*|\b\d+\b")


def reason_key(message: str) -> str:
    """A refusal's reason without the rule's own names and values, to count alike reasons together."""
    head = message.split("\n")[0]
    opaque = re.match(r"(saved search )?(\$?[\w:/.\"-]+)\(\): ", head)
    if opaque:
        return ("saved search $...()" if opaque.group(1) else f"{opaque.group(2)}()") + ": " \
            + _VARIABLE.sub("…", head[opaque.end():])[:90]
    return _VARIABLE.sub("…", head)[:120]  # field names stay: a missing mapping is worth naming


#: What stands in the way of a conversion, by a refusal reason's text (the first pattern that
#: finds it decides; no pattern: "cqlx", a gap cqlx could fill).
CAUSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("input", (  # the query depends on something it does not hold
        r"^query parameter \?", r"^saved search ", r"^readFile\(\)", r"reads a GeoIP database",
        r"reads an ASN database", r"runs the subquery over other events", r"by the search's time range",
        r"follows the search's time range", r"^setTimeInterval\(\)", r"of the file, which (the )?\w+ must name",
        r"needs a lookup definition")),
    ("undocumented", (  # LogScale (or the target) does not document what would have to be matched
        r"not documented", r"does not document", r"does not guess", r"documentation shows one output",
        r"^parseXml\(\)", r"^hash\(\)", r"does not say")),
    ("data", (  # the target's profile does not hold the data the query reads
        r"has no mapping in profile", r"is not mapped by profile", r"is a LogScale tag",
        r"has no counterpart in profile", r"selects no event type", r"subquery decides on",
        r"is not the same information", r"reads LogScale repositories", r"^free-text search",
        r"holds Windows paths from the volume", r"no datetime column", r"has no _time here",
        r"needs the event time", r"cannot be told from a missing field", r"declares has a name the regex",
        r"has no value in profile", r"name the fields it uses differently", r"which profile \w+ has no count",
        r"is only part of", r"has no exact form on", r"is shown as Splunk")),
    ("target", (  # the target's language has no form for it
        r"Sigma", r"correlation", r"logsources in profile sigma", r"has no \w+ eval counterpart",
        r"has no KQL counterpart", r"no counterpart cqlx writes", r"decodes Base64", r"s time zone", r"does not have",
        r"keeps every series", r"keeps every value", r"has no printf", r"has no KQL join",
        r"may capture nothing", r"counts Java chars", r"has no KQL$", r"has no SPL$")),
)
CAUSE_NAMES = (*(name for name, _ in CAUSES), "cqlx")
_CAUSE_PATTERNS = tuple((name, tuple(re.compile(p) for p in patterns)) for name, patterns in CAUSES)


def cause(reason: str, target: str = "") -> str:
    """What stands in the way of a refusal reason (:data:`CAUSES`). The Python matcher is cqlx's
    own engine: what it cannot run is a gap of cqlx's, never of its language."""
    found = next((name for name, patterns in _CAUSE_PATTERNS if any(p.search(reason) for p in patterns)), "cqlx")
    return "cqlx" if found == "target" and target == "python" else found


def causes_report(result: dict[str, Any]) -> str:
    """Per target: the queries each cause refuses (a query with several counts under each), and
    the ceiling: converted, plus refused only by what cqlx could convert."""
    total = result["queries"] or 1
    lines = ["what stands in the way (queries; a query refused for several causes counts under each):",
             f"  {'target':<8}" + "".join(f"{name:>14}" for name in CAUSE_NAMES) + f"{'ceiling':>18}"]
    for target in TARGETS:
        counts = Counter[str]()
        only_cqlx = 0
        for record in result["per_query"]:
            reasons = record["targets"].get(target)
            if not isinstance(reasons, list):
                continue
            found = {cause(r, target) for r in reasons}
            counts.update(found)
            only_cqlx += found == {"cqlx"}
        ceiling = result["converted"].get(target, 0) + only_cqlx
        lines.append(f"  {target:<8}" + "".join(f"{counts[name]:>14}" for name in CAUSE_NAMES)
                     + f"{ceiling:>10} {100 * ceiling / total:5.1f} %")
    return "\n".join(lines)


def refusals(query: Any, target: str, text: str) -> set[str]:
    """Why the target refuses a parsed query under the default policy (:func:`reason_key` of each
    reason); empty when it converts."""
    import cqlx
    from cqlx.conversion import convert_query

    try:
        conversion = convert_query(query, target, query_text=text)
    except cqlx.CqlError as error:  # the target cannot express a construct at all
        return {reason_key(error.message)}
    # The default policy: any detection loss refuses the conversion (apply_policy).
    return {reason_key(d.message) for d in conversion.detection_loss}


def measure(queries: list[tuple[str, str]]) -> dict[str, Any]:
    import cqlx

    parsed = 0
    converted = Counter[str]()
    reasons: dict[str, Counter[str]] = {t: Counter() for t in TARGETS}
    parse_errors = Counter[str]()
    crashes: list[dict[str, str]] = []
    per_query: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name, text in queries:
        record: dict[str, Any] = {"query": name, "parsed": False, "targets": {}}
        per_query.append(record)
        try:
            query = cqlx.parse(text)
        except cqlx.CqlError as error:
            parse_errors[reason_key(error.message)] += 1
            record["error"] = error.message.split("\n")[0]
            continue
        except Exception as error:
            crashes.append({"query": name, "stage": "parse", "error": _last_line(error)})
            continue
        parsed += 1
        record["parsed"] = True
        for target in TARGETS:
            try:
                keys = refusals(query, target, text)
            except Exception as error:
                crashes.append({"query": name, "stage": target, "error": _last_line(error)})
                record["targets"][target] = ["crash"]
                continue
            if not keys:
                converted[target] += 1
                record["targets"][target] = "ok"
                continue
            for key in keys:
                reasons[target][key] += 1
            record["targets"][target] = sorted(keys)
    return {"queries": len(queries), "parsed": parsed, "converted": dict(converted),
            "parse_errors": parse_errors, "reasons": reasons, "crashes": crashes, "per_query": per_query,
            "seconds": time.perf_counter() - started}


def _last_line(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(error).__name__}: {error} ({where})"


def report(result: dict[str, Any], top: int) -> str:
    total = result["queries"] or 1
    lines = [f"{result['queries']} queries, read in {result['seconds']:.1f} s",
             f"parse       {result['parsed']:>5} / {result['queries']}  {100 * result['parsed'] / total:6.1f} %"]
    for target in TARGETS:
        count = result["converted"].get(target, 0)
        lines.append(f"{target:<11} {count:>5} / {result['queries']}  {100 * count / total:6.1f} %")
    lines.append(f"exceptions other than CqlError: {len(result['crashes'])}")
    for crash in result["crashes"][:top]:
        lines.append(f"  {crash['query']} [{crash['stage']}]: {crash['error']}")
    if result["parse_errors"]:
        lines.append("parse errors:")
        lines += [f"  {n:>4}  {key}" for key, n in result["parse_errors"].most_common(top)]
    for target in TARGETS:
        if result["reasons"][target]:
            lines.append(f"why {target} refuses (queries):")
            lines += [f"  {n:>4}  {key}" for key, n in result["reasons"][target].most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="directories or files of queries")
    parser.add_argument("--top", type=int, default=25, help="reasons to list per target")
    parser.add_argument("--json", type=Path, help="write every query's outcome here")
    parser.add_argument("--causes", action="store_true",
                        help="sort the refusals by what stands in the way, and print each target's ceiling")
    args = parser.parse_args()
    result = measure(_queries(args.paths))
    print(report(result, args.top))
    if args.causes:
        print(causes_report(result))
    if args.json:
        serialisable = {k: (dict(v) if isinstance(v, Counter) else v) for k, v in result.items()}
        serialisable["reasons"] = {t: dict(c) for t, c in result["reasons"].items()}
        args.json.write_text(json.dumps(serialisable, indent=1, default=str), encoding="utf-8")
    return 1 if result["crashes"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

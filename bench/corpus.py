"""How much of a query library cqlx reads and converts: parse and conversion rates per target.

    .venv/bin/python bench/corpus.py DIR [DIR...] [--top 25] [--json OUT.json] [--show TARGET]

Every ``.cql`` (or rule card / LogScale package YAML) under the directories goes through the Python
API as a user's script would: ``cqlx.parse`` then, per target, a conversion under the default policy
(detection loss refuses it). A query *converts* when the target writes it without detection loss.
Anything raised that is not a ``CqlError`` is a cqlx bug and is listed with its traceback's last
line. The most frequent reasons for refusals are counted per target, so the next piece of work is
the one that converts the most queries.
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


def measure(queries: list[tuple[str, str]]) -> dict[str, Any]:
    import cqlx
    from cqlx.conversion import convert_query

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
                conversion = convert_query(query, target, query_text=text)
            except cqlx.CqlError as error:  # the target cannot express a construct at all
                keys = {reason_key(error.message)}
            except Exception as error:
                crashes.append({"query": name, "stage": target, "error": _last_line(error)})
                record["targets"][target] = ["crash"]
                continue
            else:
                # The default policy: any detection loss refuses the conversion (apply_policy).
                keys = {reason_key(d.message) for d in conversion.detection_loss}
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
    args = parser.parse_args()
    result = measure(_queries(args.paths))
    print(report(result, args.top))
    if args.json:
        serialisable = {k: (dict(v) if isinstance(v, Counter) else v) for k, v in result.items()}
        serialisable["reasons"] = {t: dict(c) for t, c in result["reasons"].items()}
        args.json.write_text(json.dumps(serialisable, indent=1, default=str), encoding="utf-8")
    return 1 if result["crashes"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

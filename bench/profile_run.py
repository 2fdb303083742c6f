"""Profile ``cqlx run`` on the seed rule with cProfile and say where the time goes.

    python bench/profile_run.py EVENTS.ndjson [--top 25]

Profiles the whole CLI process twice (default options, and ``--no-prefilter`` when cqlx has it),
prints the top functions by own time and a breakdown by kind of work: JSON parsing, the literal
prefilter's scan, field access, regex, row building, sorting, output, imports and start-up.
Profiles are kept in bench/data/*.prof for ``python -m pstats`` or snakeviz.
"""

from __future__ import annotations

import argparse
import pstats
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RULE = ROOT / "samples" / "rules" / "container_cli_api.yml"

FIELD = frozenset({"get", "text", "number", "equals", "equals_folded", "member", "compare", "compare_values"})
REGEX = frozenset({"search", "fullmatch", "free_regex", "free_text", "compile_regex"})
SORT = frozenset({"top", "sort_key", "__lt__", "__eq__", "<lambda>", "nsmallest"})
STARTUP = ("<frozen ", "lark", "yaml", "typer", "click", "rich", "dataclasses", "enum.py", "typing.py", "re/_",
           "sre_", "parser.py", "lower.py", "passes.py", "emit/", "profiles.py", "rules.py", "functools",
           "abc.py", "inspect.py", "ast.py", "api.py:compile_query", "importlib", "pkgutil", "tokenize",
           "linecache", "collections/__init__")


def category(filename: str, name: str) -> str:
    """The kind of work a (Python) function does; builtins are charged to their callers."""
    if filename == "<cqlx matcher>" or filename.endswith("runtime.py"):  # the runtime copied into the matcher
        if name in FIELD:
            return "field access (get, text, member)"
        if name in REGEX:
            return "regex (runtime search)"
        if name in SORT or name == "_Descending":
            return "sorting (sort() top-k)"
        return "matcher pipeline (segments, eval, select)"
    if "heapq" in filename:
        return "sorting (sort() top-k)"
    if filename.endswith("cli.py") and name in ("counted", "<genexpr>"):
        return "missing-field count (cli counted())"
    if filename.endswith("cli.py") and name in ("_write_rows", "_cell"):
        return "output (jsonl)"
    if filename.endswith("events.py") and name in ("classify", "_classify"):
        return "JSON parsing (orjson + classify)"
    if filename.endswith("events.py"):
        return "line reading, event accounting (read_events)"
    if filename.endswith(("scan.py", "prefilter.py")):
        return "prefilter scan (mapped bytes: Hyperscan or RE2, line counting)"
    if "/re2/" in filename:  # pyre2's Python wrapper: the matcher's regexes (and the scan's under CQLX_SCANNER=re2)
        return "regex (runtime search)"
    if "json/" in filename:
        return "output (jsonl)" if "encoder" in filename else "JSON parsing (orjson + classify)"
    if any(part in filename for part in STARTUP):
        return "start-up: imports, grammar, rule compile"
    return "other"


def label(func: tuple[str, int, str]) -> str:
    filename, _, name = func
    if filename == "~":
        return name
    short = filename.split("site-packages/")[-1].split("src/cqlx/")[-1].split("lib/python3.11/")[-1]
    return f"{short}:{name}"


def own_category(func: tuple[str, int, str], entries: dict, depth: int = 0) -> dict[str, float]:  # type: ignore[type-arg]
    """Seconds of ``func``'s own time per category; a builtin's own time goes to its callers'."""
    filename, _, name = func
    own = entries[func][2]
    if filename != "~":
        return {category(filename, name): own}
    if "orjson" in name or "json.loads" in name:
        return {"JSON parsing (orjson + classify)": own}
    callers = entries[func][4]
    if not callers or depth > 3:
        return {"start-up: imports, grammar, rule compile" if "exec" in name or "compile" in name else "other": own}
    out: dict[str, float] = {}
    for caller, (_, _, tottime, _) in callers.items():
        parent = own_category(caller, entries, depth + 1) if caller[0] == "~" else {category(caller[0], caller[2]): 1}
        top = max(parent, key=lambda key: parent[key])
        out[top] = out.get(top, 0.0) + tottime
    return out


def report(profile: Path, top: int) -> None:
    stats = pstats.Stats(str(profile))
    entries = stats.stats  # type: ignore[attr-defined]  # func -> (cc, nc, tottime, cumtime, callers)
    total = sum(entry[2] for entry in entries.values())
    print(f"\n### {profile.name}: {total:.2f} s profiled\n")
    print("| function | calls | own s | own % | cumulative s |\n|---|---:|---:|---:|---:|")
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
    for func, (_, calls, own, cumulative, _) in ranked[:top]:
        print(f"| `{label(func)}` | {calls:,} | {own:.3f} | {own / total * 100:.1f} | {cumulative:.3f} |")
    by_category: dict[str, float] = {}
    for func in entries:
        for name, seconds in own_category(func, entries).items():
            by_category[name] = by_category.get(name, 0.0) + seconds
    print("\n| kind of work (own time; a builtin counts for its caller) | s | % |\n|---|---:|---:|")
    for name, seconds in sorted(by_category.items(), key=lambda item: item[1], reverse=True):
        print(f"| {name} | {seconds:.2f} | {seconds / total * 100:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    cqlx_help = subprocess.run([sys.executable, "-m", "cqlx", "run", "--help"], capture_output=True, text=True,
                               check=False).stdout
    variants: list[tuple[str, list[str]]] = [("default", [])]
    if "--no-prefilter" in cqlx_help:
        variants.append(("no-prefilter", ["--no-prefilter"]))
    print(f"## cProfile of cqlx run over {args.events.name}")
    for name, extra in variants:
        profile = BENCH / "data" / f"cqlx-run-{name}-{args.events.stem}.prof"
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "cqlx", "run", str(RULE),
                   str(args.events), "--format", "jsonl", *extra]
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        print(f"\n`cqlx run {' '.join(extra) or '(default options)'}`: {done.stderr.strip().splitlines()[0]}")
        report(profile, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())

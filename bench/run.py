"""Benchmark ``cqlx run`` against the other engines on one generated corpus, in one run.

    python bench/run.py [--events N] [--seed S] [--quick] [--profile]

Generates (or reuses) ``bench/data/events-seed{S}-{N}.ndjson``, then times, as whole processes
on the same file: ``cqlx run`` on the seed rule, the seed's KQL on duckdb-kql, the seed's Sigma on
pySigma's sqlite backend, and ``grep -ciE`` for the rule's tool names (the scan-speed limit). Every
engine's match set is checked against the Python matcher's (same events, scores, severities and
flags); any difference fails the run (exit 1). Then: cold ``cqlx convert SEED --to spl``, cold
``sigma convert -t splunk`` on the seed's Sigma, and a batch of generated rules converted to every
target in one process. See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import generate_events

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RULE = ROOT / "samples" / "rules" / "container_cli_api.yml"
WORKER = BENCH / "worker.py"
BIN = Path(sys.executable).parent
TOOLS_PATTERN = "docker|kubectl|crictl|ctr|podman|nerdctl"  # the literals the seed's ImageFileName test needs
LIMIT = 200  # the seed's sort() keeps 200 rows
FLAGS = ("PrivilegedContainer", "HostMount", "ContainerExec", "SecretsAccess", "ContainerEscape")


@dataclass
class Run:
    """One timed process: wall seconds, CPU seconds (user + system) and peak RSS of the child."""

    wall: float
    cpu: float
    rss_mb: float
    code: int
    stdout: str = ""
    stderr: str = ""


def timed(command: list[str], stdout_path: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Run ``command`` to completion; stdout to ``stdout_path`` (or /dev/null), stderr captured."""
    err_path = BENCH / "data" / ".stderr"
    with open(stdout_path or os.devnull, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = stdout_path.read_text(encoding="utf-8") if stdout_path and stdout_path.stat().st_size < 50e6 else ""
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode, stdout,
               err_path.read_text(encoding="utf-8", errors="replace"))


@dataclass
class Job:
    command: list[str]
    stdout_path: Path | None = None
    env: dict[str, str] | None = None
    runs: list[Run] = field(default_factory=list)

    def median(self) -> Run:
        """Median wall and median CPU seconds, largest RSS; stdout and stderr of the last run."""
        last = self.runs[-1]
        return Run(statistics.median(r.wall for r in self.runs), statistics.median(r.cpu for r in self.runs),
                   max(r.rss_mb for r in self.runs), last.code, last.stdout, last.stderr)


def interleaved(jobs: dict[str, Job], repeat: int, check: Any = None) -> dict[str, Run]:
    """Run the jobs in ``repeat`` rounds (A B C A B C ...), so that a change in the machine's load
    falls on all of them; ``check(name, run)`` sees every run. Returns each job's median run."""
    for _ in range(repeat):
        for name, job in jobs.items():
            run = timed(job.command, job.stdout_path, job.env)
            if run.code != 0:
                raise SystemExit(f"FAILED: {' '.join(job.command)} exited {run.code}\n{run.stderr[-3000:]}")
            if check is not None:
                check(name, run)
            job.runs.append(run)
    return {name: job.median() for name, job in jobs.items()}


# ---------------------------------------------------------------------------------------------- corpus


def generator_digest() -> str:
    return hashlib.sha256((BENCH / "generate_events.py").read_bytes()).hexdigest()[:16]


def ensure_corpus(data: Path, events: int, seed: int, regenerate: bool) -> tuple[Path, float | None]:
    """The corpus file, regenerated when missing or written by another version of the generator."""
    path = data / f"events-seed{seed}-{events}.ndjson"
    meta_path = path.with_suffix(".meta.json")
    meta = {"events": events, "seed": seed, "generator": generator_digest()}
    if not regenerate and path.exists() and meta_path.exists():
        try:
            stored = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError:
            stored = {}
        if {k: stored.get(k) for k in meta} == meta and stored.get("bytes") == path.stat().st_size:
            return path, None
    seconds = generate_events.write_corpus(path, events, seed)
    meta["bytes"] = path.stat().st_size
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return path, seconds


def head(path: Path, lines: int, target: Path) -> Path:
    """The first ``lines`` lines of ``path`` (a slice of the same corpus)."""
    if not target.exists() or target.stat().st_mtime < path.stat().st_mtime:
        with path.open("rb") as source, target.open("wb") as out:
            for number, line in enumerate(source):
                if number >= lines:
                    break
                out.write(line)
    return target


# ---------------------------------------------------------------------------------------------- checks


Key = tuple[Any, ...]  # (host, score, severity, flags)


@dataclass
class Reference:
    """The Python matcher's full match set: event index and timestamp (ms) → what the row says."""

    events: int
    by_ts: dict[int, Key]
    by_index: dict[int, int]  # event index → timestamp
    problems: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, result: dict[str, Any]) -> Reference:
        by_ts: dict[int, Key] = {}
        by_index: dict[int, int] = {}
        for index, ts, host, score, severity, flags in result["matches"]:
            if ts in by_ts:
                raise SystemExit(f"FAILED: two matching events share timestamp {ts}: the corpus must not repeat one")
            by_ts[ts] = (host, score, severity, tuple(flags))
            by_index[index] = ts
        return cls(result["events"], by_ts, by_index)

    def fail(self, engine: str, message: str) -> None:
        self.problems.append(f"{engine}: {message}")

    def check_full(self, engine: str, rows: list[list[Any]]) -> None:
        got = {ts: (host, score, severity, tuple(flags)) for ts, host, score, severity, flags in rows}
        if len(got) != len(rows):
            self.fail(engine, f"{len(rows) - len(got)} duplicate rows")
        if got != self.by_ts:
            missing = sorted(set(self.by_ts) - set(got))
            extra = sorted(set(got) - set(self.by_ts))
            differ = sorted(ts for ts in set(got) & set(self.by_ts) if got[ts] != self.by_ts[ts])
            detail = [f"{len(missing)} missing (e.g. {missing[:3]})", f"{len(extra)} extra (e.g. {extra[:3]})",
                      f"{len(differ)} differ"]
            detail += [f"  ts {ts}: reference {self.by_ts[ts]} vs {got[ts]}" for ts in differ[:3]]
            self.fail(engine, "match set differs from the Python matcher's: " + "; ".join(detail))

    def check_top(self, engine: str, rows: list[list[Any]], limit: int = LIMIT) -> None:
        """The rule's output rows: min(limit, matches) rows, each a matching event as the reference
        scores it, in descending score order, with the scores of the true top ``limit`` (rows tied
        at the cut may be any of the tied events: LogScale does not order ties either)."""
        want = min(limit, len(self.by_ts))
        if len(rows) != want:
            self.fail(engine, f"{len(rows)} output rows, expected {want}")
        for ts, host, score, severity, flags in rows:
            expected = self.by_ts.get(ts)
            if expected != (host, score, severity, tuple(flags)):
                self.fail(engine, f"output row ts {ts} {(host, score, severity, flags)} is not the reference's "
                                  f"{expected}")
                return
        scores = [row[2] for row in rows]
        if scores != sorted(scores, reverse=True):
            self.fail(engine, "output rows are not sorted by SuspicionScore descending")
        best = sorted((key[1] for key in self.by_ts.values()), reverse=True)[:want]
        if sorted(scores, reverse=True) != best:
            self.fail(engine, "output rows are not the top-scored events")

    def check_sigma(self, engine: str, rules: dict[str, list[int]], title: str) -> None:
        expected: dict[str, set[int]] = {title: set(self.by_index)}
        for index, ts in self.by_index.items():
            expected.setdefault(f"{title} - {self.by_ts[ts][2]}", set()).add(index)
        for name in sorted(set(expected) | set(rules)):
            got, want = set(rules.get(name, [])), expected.get(name, set())
            if got != want:
                self.fail(engine, f"rule {name!r} selects {len(got)} events, the Python matcher {len(want)} "
                                  f"({len(got - want)} extra, {len(want - got)} missing)")


def cqlx_rows(text: str) -> list[list[Any]]:
    rows = []
    for line in text.splitlines():
        row = json.loads(line)
        rows.append([int(row["timestamp"]), row.get("ComputerName"), row.get("SuspicionScore"), row.get("Severity"),
                     [row.get(flag) for flag in FLAGS]])
    return rows


def matched_count(stderr: str) -> int | None:
    found = re.search(r"\((\d+) matched", stderr)
    return int(found.group(1)) if found else None


# ---------------------------------------------------------------------------------------------- table


@dataclass
class Row:
    engine: str
    events: int
    run: Run
    baseline: Run | None  # cqlx run on the same events
    matched: str
    note: str = ""
    walls: list[float] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)


def table(rows: list[Row]) -> str:
    lines = ["| engine | events | seconds | CPU s | events/s | ratio vs cqlx run | CPU ratio | peak RSS MB | matched |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        ratio = f"{row.run.wall / row.baseline.wall:.2f}" if row.baseline else "-"
        cpu_ratio = f"{row.run.cpu / row.baseline.cpu:.2f}" if row.baseline and row.baseline.cpu else "-"
        engine = row.engine.replace("|", "\\|")
        lines.append(f"| {engine} | {row.events:,} | {row.run.wall:.2f} | {row.run.cpu:.2f} | "
                     f"{row.events / row.run.wall:,.0f} | {ratio} | {cpu_ratio} | {row.run.rss_mb:,.0f} | "
                     f"{row.matched} |")
    return "\n".join(lines)


def phases_text(rows: list[Row]) -> str:
    out = []
    for row in rows:
        if row.phases:
            parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in row.phases.items())
            startup = row.run.wall - sum(row.phases.values())
            out.append(f"- {row.engine}: interpreter start {startup:.2f}, {parts} (seconds)")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- main


def worker(job: str, events: Path | str, out: Path) -> tuple[Run, dict[str, Any]]:
    run = timed([sys.executable, str(WORKER), job, str(RULE), str(events), str(out)])
    if run.code != 0:
        raise SystemExit(f"FAILED: worker {job} exited {run.code}\n{run.stderr[-3000:]}")
    return run, json.loads(out.read_text(encoding="utf-8"))


def scan_engine() -> str:
    """The engine ``cqlx run`` scans with in this venv (Hyperscan, or RE2 where it is not installed)."""
    done = subprocess.run([sys.executable, "-c", "from cqlx.scan import engine; print(engine())"], capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def compile_bytecode() -> None:
    """Write cqlx's bytecode before timing: an installed wheel has it (pip compiles at install), an
    editable checkout under PYTHONDONTWRITEBYTECODE=1 (as on this project's machines) never does,
    and compiling 40 modules at every start would be timed as cqlx's."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True,
                   stdout=subprocess.DEVNULL)


def cqlx_run_supports(option: str) -> bool:
    done = subprocess.run([str(BIN / "cqlx"), "run", "--help"], capture_output=True, text=True, check=False)
    return option in done.stdout


def event_engines(args: argparse.Namespace, corpus: Path, data: Path, results: dict[str, Any]) -> list[str]:
    """Time every engine over the corpus (and the adapter slice); returns the check failures."""
    cqlx = str(BIN / "cqlx")
    repeat = args.repeat
    rows: list[Row] = []
    subprocess.run(["cat", str(corpus)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    print(f"timing over {corpus.name} ({args.events:,} events, {corpus.stat().st_size / 1e6:,.0f} MB); "
          f"cqlx run, grep and wc: {repeat} interleaved rounds, medians", file=sys.stderr)
    ref_run, ref_result = worker("reference", corpus, data / f"w-reference-{corpus.stem}.json")
    reference = Reference.load(ref_result)

    run_command = [cqlx, "run", str(RULE), str(corpus), "--format", "jsonl"]
    # cqlx run keeps the rules it compiled (cqlx.cache): the default rows find the seed compiled, as
    # every run after a rule's first does; one more row compiles it each time, as a first run does.
    empty = data / "empty.ndjson"
    empty.write_bytes(b"")
    timed([cqlx, "run", str(RULE), str(empty), "--format", "jsonl"])
    jobs = {"cqlx run (default)": Job(run_command, data / f"out-cqlx-run-{corpus.stem}.jsonl")}
    jobs["cqlx run, rule compiled afresh (CQLX_NO_CACHE=1)"] = Job(
        run_command, data / f"out-cqlx-run-nocache-{corpus.stem}.jsonl", {"CQLX_NO_CACHE": "1"})
    if cqlx_run_supports("--no-prefilter"):
        jobs["cqlx run --no-prefilter"] = Job([*run_command, "--no-prefilter"],
                                              data / f"out-cqlx-run-noprefilter-{corpus.stem}.jsonl")
    if scan_engine() == "hyperscan":  # the fallback where Hyperscan has no wheel, on the same file
        jobs["cqlx run, RE2 scan (CQLX_SCANNER=re2)"] = Job(run_command, data / f"out-cqlx-run-re2-{corpus.stem}.jsonl",
                                                           {"CQLX_SCANNER": "re2"})
    grep_name = f"grep -ciE '{TOOLS_PATTERN}' (LC_ALL=C)"
    jobs[grep_name] = Job(["grep", "-ciE", TOOLS_PATTERN, str(corpus)], data / ".grep", {"LC_ALL": "C"})
    grep_cs_name = f"grep -cE '{TOOLS_PATTERN}' (LC_ALL=C, case-sensitive)"
    jobs[grep_cs_name] = Job(["grep", "-cE", TOOLS_PATTERN, str(corpus)], data / ".grep-cs", {"LC_ALL": "C"})
    jobs["wc -l (read floor)"] = Job(["wc", "-l", str(corpus)], data / ".wc")

    def check(name: str, run: Run) -> None:
        if name.startswith("cqlx run"):
            if matched_count(run.stderr) != len(reference.by_ts):
                reference.fail(name, f"says {matched_count(run.stderr)} matched, the Python matcher "
                                     f"{len(reference.by_ts)} ({run.stderr.strip().splitlines()[:1]})")
            reference.check_top(name, cqlx_rows(run.stdout))
        elif name == grep_name and int(run.stdout.strip()) < len(reference.by_ts):
            reference.fail("grep", f"counts {run.stdout.strip()} lines, fewer than the {len(reference.by_ts)} matches")

    medians = interleaved(jobs, repeat, check)
    base = medians["cqlx run (default)"]
    for name, run in medians.items():
        if name.startswith("cqlx run"):
            matched = str(matched_count(run.stderr))
        elif name in (grep_name, grep_cs_name):
            matched = f">= ({int(run.stdout.strip()):,})" if name == grep_name else f"({int(run.stdout.strip()):,})"
        else:
            matched = "-"
        rows.append(Row(name, args.events, run, base, matched, walls=[r.wall for r in jobs[name].runs]))
    rows.append(Row("Python API: json.loads + Matcher.match per line", args.events, ref_run, base,
                    str(len(reference.by_ts)), phases=ref_result["phases"]))

    sig_run, sig = worker("sigma", corpus, data / f"w-sigma-{corpus.stem}.json")
    title = next(iter(sig["rules"]))
    reference.check_sigma("sigma sqlite", sig["rules"], title)
    rows.append(Row("pySigma sqlite (base rule + 3 tiers)", args.events, sig_run, base,
                    str(len(sig["rules"][title])), phases=sig["phases"]))

    if not args.skip_bulk:
        bulk_run, bulk = worker("kql-bulk", corpus, data / f"w-kql-bulk-{corpus.stem}.json")
        reference.check_full("duckdb-kql (bulk load)", bulk["matches"])
        reference.check_top("duckdb-kql (bulk load)", bulk["top"])
        rows.append(Row("duckdb-kql, bench bulk load (read_json)", args.events, bulk_run, base,
                        str(len(bulk["matches"])), phases=bulk["phases"]))

    # cqlx's own duckdb-kql adapter loads row by row (executemany): a slice of the same corpus
    slice_rows: list[Row] = []
    if args.kql_adapter_events:
        part = head(corpus, args.kql_adapter_events, data / f"slice-{args.kql_adapter_events}-{corpus.name}")
        n = min(args.kql_adapter_events, args.events)
        _, slice_ref_result = worker("reference", part, data / f"w-reference-{part.stem}.json")
        slice_ref = Reference.load(slice_ref_result)
        slice_job = Job([cqlx, "run", str(RULE), str(part), "--format", "jsonl"],
                        data / f"out-cqlx-run-{part.stem}.jsonl")
        slice_base = interleaved({"slice": slice_job}, repeat)["slice"]
        slice_ref.check_top("cqlx run (slice)", cqlx_rows(slice_base.stdout))
        walls = [r.wall for r in slice_job.runs]
        ad_run, ad = worker("kql-adapter", part, data / f"w-kql-adapter-{part.stem}.json")
        slice_ref.check_full("duckdb-kql (cqlx adapter)", ad["matches"])
        slice_ref.check_top("duckdb-kql (cqlx adapter)", ad["top"])
        slice_rows.append(Row("cqlx run (default), slice", n, slice_base, slice_base,
                              str(matched_count(slice_base.stderr)), walls=walls))
        slice_rows.append(Row("duckdb-kql via cqlx.engines.duckdb_kql (executemany)", n, ad_run, slice_base,
                              str(len(ad["matches"])), phases=ad["phases"]))
        reference.problems += slice_ref.problems

    print("\n## Engines over the same events\n")
    print(table(rows))
    if slice_rows:
        print(f"\nThe project's duckdb-kql adapter on the first {args.kql_adapter_events:,} events of the same file "
              "(ratio against cqlx run on that slice):\n")
        print(table(slice_rows))
    print("\nPhases inside each worker process:\n")
    print(phases_text(rows + slice_rows))
    results["engines"] = [row_json(r) for r in rows]
    results["adapter_slice"] = [row_json(r) for r in slice_rows]
    results["reference_matches"] = len(reference.by_ts)
    return reference.problems


def row_json(row: Row) -> dict[str, Any]:
    return {"engine": row.engine, "events": row.events, "wall": row.run.wall, "cpu": row.run.cpu,
            "rss_mb": row.run.rss_mb, "ratio": row.run.wall / row.baseline.wall if row.baseline else None,
            "cpu_ratio": row.run.cpu / row.baseline.cpu if row.baseline and row.baseline.cpu else None,
            "matched": row.matched, "walls": row.walls, "phases": row.phases}


def conversions(args: argparse.Namespace, data: Path, results: dict[str, Any]) -> None:
    cqlx = str(BIN / "cqlx")
    runs = args.convert_runs
    lines = ["| command | runs | median s | min s | max s |", "|---|---:|---:|---:|---:|"]

    def measure(label: str, command: list[str]) -> float:
        walls = []
        for _ in range(runs):
            run = timed(command)
            if run.code != 0:
                raise SystemExit(f"FAILED: {' '.join(command)} exited {run.code}\n{run.stderr[-2000:]}")
            walls.append(run.wall)
        median = statistics.median(walls)
        lines.append(f"| `{label}` | {runs} | {median:.3f} | {min(walls):.3f} | {max(walls):.3f} |")
        results.setdefault("convert", {})[label] = walls
        return median

    measure("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"])
    measure("cqlx convert SEED --to spl", [cqlx, "convert", str(RULE), "--to", "spl"])
    measure("cqlx convert SEED --to sigma", [cqlx, "convert", str(RULE), "--to", "sigma"])
    sigma_file = data / "seed.sigma.yml"
    done = subprocess.run([cqlx, "convert", str(RULE), "--to", "sigma"], capture_output=True, text=True, check=True)
    sigma_file.write_text(done.stdout, encoding="utf-8")
    sigma = BIN / "sigma"
    if sigma.exists():
        measure("sigma convert -t splunk --without-pipeline SEED.sigma.yml",
                [str(sigma), "convert", "-t", "splunk", "--without-pipeline", str(sigma_file)])
        measure("sigma convert -t splunk -p splunk_windows SEED.sigma.yml",
                [str(sigma), "convert", "-t", "splunk", "-p", "splunk_windows", str(sigma_file)])
    else:
        lines.append("| sigma convert | - | sigma-cli not installed | | |")
    print("\n## Cold conversion (whole process)\n")
    print("\n".join(lines))

    run, batch = worker("batch", f"{args.batch_rules}:{args.seed}", data / "w-batch.json")
    targets = batch["targets"]
    total = sum(batch["per_target"].values())
    n = batch["rules"] * len(targets)
    print(f"\n## Batch: {batch['rules']:,} generated rules x {len(targets)} targets ({', '.join(targets)}) "
          "via the Python API, one process\n")
    if "cql" not in targets:
        print("(5th target, a canonical CQL emitter, does not exist yet: 4 targets measured.)\n")
    print("| part | seconds | per rule ms |\n|---|---:|---:|")
    print(f"| whole process | {run.wall:.2f} | {run.wall / batch['rules'] * 1000:.2f} |")
    print(f"| parse only (cqlx.parse) | {batch['phases']['parse']:.2f} | "
          f"{batch['phases']['parse'] / batch['rules'] * 1000:.2f} |")
    for target, seconds in batch["per_target"].items():
        print(f"| cqlx.convert(to={target!r}) | {seconds:.2f} | {seconds / batch['rules'] * 1000:.2f} |")
    print(f"| all conversions (cqlx.convert parses the text for each target) | {total:.2f} | "
          f"{total / batch['rules'] * 1000:.2f} |")
    once = batch["parse_once"]
    print(f"| parse once + conversion.convert_query per target (as the CLI does) | {once:.2f} | "
          f"{once / batch['rules'] * 1000:.2f} |")
    print(f"\n{n / total:,.0f} conversions/s; refused: {batch['failures'] or 'none'}; "
          f"{batch['output_bytes'] / 1e6:.1f} MB written")
    results["batch"] = {**batch, "wall": run.wall}
    cli_batch(args, data, results)


def cli_batch(args: argparse.Namespace, data: Path, results: dict[str, Any]) -> None:
    """``cqlx convert DIR --to all --output OUT --report R`` on the generated rules (one .cql file each),
    as a whole process: what a user's CI runs (rules read, parsed once, five targets, files written)."""
    import rulegen

    rules_dir, out = data / "batch-rules", data / "batch-out"
    shutil.rmtree(rules_dir, ignore_errors=True)
    rules_dir.mkdir()
    for number, text in enumerate(rulegen.rules(args.batch_rules, args.seed)):
        (rules_dir / f"rule-{number:04d}.cql").write_text(text, encoding="utf-8")
    runs = max(1, min(3, args.convert_runs))
    print(f"\n## Batch through the CLI: `cqlx convert DIR --to all --output OUT --report R`, "
          f"{args.batch_rules:,} rule files, whole process, {runs} runs\n")
    print("| command | runs | median s | min s | CPU s (median) | files written |\n|---|---:|---:|---:|---:|---:|")
    # Each run writes into a directory of its own, deleted only after the last run: creating 5,000
    # files where 5,000 were just deleted costs ext4 about a second of kernel time (it skips
    # recently freed inodes), which a conversion into a fresh checkout never pays.
    shutil.rmtree(out, ignore_errors=True)
    for jobs in (1, 2):
        walls, cpus, written = [], [], 0
        for number in range(runs):
            into = out / f"jobs{jobs}-run{number}"
            run = timed([str(BIN / "cqlx"), "convert", str(rules_dir), "--to", "all", "--output", str(into),
                         "--report", str(data / "batch-report.json"), "--jobs", str(jobs)])
            if run.code != 0:
                raise SystemExit(f"FAILED: cqlx convert of the batch exited {run.code}\n{run.stderr[-2000:]}")
            walls.append(run.wall)
            cpus.append(run.cpu)
            written = sum(1 for p in into.rglob("*") if p.is_file())
        print(f"| `cqlx convert DIR --to all --output OUT --jobs {jobs}` | {runs} | {statistics.median(walls):.2f} | "
              f"{min(walls):.2f} | {statistics.median(cpus):.2f} | {written:,} |")
        results.setdefault("cli_batch", {})[f"jobs{jobs}"] = {"walls": walls, "cpus": cpus, "written": written}


def targets(results: dict[str, Any]) -> str:
    """Each of issue 7's targets with the figure this run measured for it: met or not."""
    lines = ["| target | measured | met |", "|---|---|---|"]

    def add(target: str, measured: str, met: bool) -> None:
        lines.append(f"| {target} | {measured} | {'yes' if met else 'no'} |")

    engines = {row["engine"]: row for row in results.get("engines", [])}
    base = engines.get("cqlx run (default)")
    if base:
        rate = base["events"] / base["wall"]
        add("`cqlx run` >= 1,000,000 events/s, whole process, one core",
            f"{rate:,.0f} events/s wall ({base['wall']:.2f} s; {base['events'] / base['cpu']:,.0f} per CPU s)",
            rate >= 1_000_000)
        for prefix, times in (("duckdb-kql", 3), ("pySigma sqlite", 20)):
            other = next((row for name, row in engines.items() if name.startswith(prefix)), None)
            if other:
                add(f"`cqlx run` >= {times}x faster than {prefix}", f"{other['ratio']:.1f}x wall, "
                    f"{other['cpu_ratio']:.1f}x CPU", other["ratio"] >= times)
        for name, row in engines.items():
            if name.startswith("grep"):
                add(f"`cqlx run` within 3x of {name.split(' (')[0]}", f"{1 / row['ratio']:.2f}x grep's wall time",
                    1 / row["ratio"] <= 3)
    convert = results.get("convert", {}).get("cqlx convert SEED --to spl")
    if convert:
        median = statistics.median(convert)
        add("cold `cqlx convert SEED --to spl` <= 150 ms median", f"{median * 1000:.0f} ms", median <= 0.150)
    cli = results.get("cli_batch", {})
    rules = results.get("batch", {}).get("rules", 0)
    if cli and rules >= 1000:
        best = min(min(run["walls"]) for run in cli.values())
        jobs1 = cli.get("jobs1", {})
        add(f"1,000 rules x 5 targets <= 3 s (CLI, whole process; {rules:,} rules here)",
            f"{best:.2f} s best wall; {statistics.median(jobs1.get('cpus', [0])):.2f} CPU s median (--jobs 1)",
            best * 1000 / rules <= 3)
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="corpus size (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (another seed: a held-out corpus)")
    parser.add_argument("--quick", action="store_true", help="100,000 events, a CI-sized run")
    parser.add_argument("--repeat", type=int, default=3,
                        help="interleaved rounds of cqlx run, grep and wc, medians kept (default 3); the engine "
                             "workers run once")
    parser.add_argument("--kql-adapter-events", type=int, default=5000,
                        help="events for cqlx's own duckdb-kql adapter, which loads ~300 rows/s (0: skip)")
    parser.add_argument("--skip-bulk", action="store_true", help="skip duckdb-kql with the bulk loader")
    parser.add_argument("--convert-runs", type=int, default=10, help="runs of each cold conversion command")
    parser.add_argument("--batch-rules", type=int, default=1000, help="rules in the conversion batch")
    parser.add_argument("--only", choices=("engines", "convert"), help="run only one part")
    parser.add_argument("--profile", action="store_true",
                        help="also profile cqlx run with cProfile (bench/profile_run.py) on 100,000 events")
    parser.add_argument("--regenerate", action="store_true", help="write the corpus again even if it exists")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 100_000
    data = BENCH / "data"
    data.mkdir(exist_ok=True)
    results: dict[str, Any] = {
        "events": args.events, "seed": args.seed, "python": platform.python_version(), "cpus": os.cpu_count(),
        "machine": platform.platform(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    compile_bytecode()
    results["scan_engine"] = scan_engine()
    print(f"# cqlx bench: {args.events:,} events, seed {args.seed}; {os.cpu_count()} CPUs "
          f"(shared: compare ratios within one run); Python {platform.python_version()}; "
          f"cqlx run scans with {results['scan_engine']}")
    problems: list[str] = []
    if args.only in (None, "engines"):
        corpus, seconds = ensure_corpus(data, args.events, args.seed, args.regenerate)
        if seconds is not None:
            print(f"\ngenerated {corpus.name} in {seconds:.1f} s ({args.events / seconds:,.0f} events/s)")
            results["generate_seconds"] = seconds
        problems = event_engines(args, corpus, data, results)
    if args.only in (None, "convert"):
        conversions(args, data, results)
    if args.profile:
        profile_corpus, _ = ensure_corpus(data, 100_000, args.seed, False)
        subprocess.run([sys.executable, str(BENCH / "profile_run.py"), str(profile_corpus)], check=True)
    targets_text = targets(results)
    if targets_text:
        print("\n## Issue 7's targets, from the figures above\n")
        print(targets_text)
    out = data / f"results-seed{args.seed}-{args.events}{'-' + args.only if args.only else ''}.json"
    results["problems"] = problems
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"\n(results: {out.relative_to(ROOT)})")
    if problems:
        print("\nFAILED: the engines do not agree with the Python matcher:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    if args.only != "convert":
        print("\nall match sets agree: cqlx run, duckdb-kql, pySigma sqlite and the Python matcher select the "
              "same events with the same scores, severities and flags; grep counts at least as many lines")
    return 0


if __name__ == "__main__":
    if shutil.which("grep") is None:
        raise SystemExit("grep is needed")
    sys.exit(main())

#!/usr/bin/env python3
"""Long-running fuzzer for cqlx: generated and mutated CQL, every invariant of tests/test_fuzz.py.

Each input is checked as tests/test_fuzz.py does (parse, the four targets under both lossy
policies, the Python output compiled and imported, the Sigma output loaded in pySigma, the
matcher run over generated events); lossless KQL is sent to Kusto.Language in batches (one Node
start per batch); now and then an input goes through ``python -m cqlx convert FILE --to kql``.

Every failing input is written to the output directory, one set of files per distinct failure
(target, exception type and the innermost cqlx frame): ``<signature>.cql`` (the smallest input
seen, minimised when first found), ``<signature>.txt`` (the report with the traceback) and an
``index.json`` of all signatures with their counts. Known bugs (tests/test_fuzz.py KNOWN_BUGS) are
written too, under ``known-``.

Engines: ``loop`` (random generation and mutation with ``random.Random``; the default) or
``atheris`` (coverage-guided over the same generator, when ``pip install atheris`` works).
See fuzz/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.test_fuzz import (  # noqa: E402 - after the path set-up
    FIXED_EVENTS,
    CqlGenerator,
    Failure,
    RandomChooser,
    _failure,
    check_kusto,
    check_text,
    known,
    load_seed,
    make_event,
    mutate,
    tokens,
)

_LOG: Any = sys.stderr


def log(message: str) -> None:
    print(message, file=_LOG, flush=True)


def silence_native_stderr() -> None:
    """RE2 logs every pattern it rejects to file descriptor 2 (absl); keep our own messages apart."""
    global _LOG
    _LOG = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = _LOG


class Hang(Exception):
    """One input took longer than --timeout seconds."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang("the input took longer than the time limit")


# ================================================================ recording


def slug(signature: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9]+", "-", signature).strip("-")[:80]
    return f"{readable}-{hashlib.sha1(signature.encode()).hexdigest()[:8]}"


def kusto_signature(failure: Failure) -> str:
    """Kusto errors grouped by code and message without the quoted parts."""
    general = re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "_", failure.message.split(" at ")[0])
    return f"kusto:{failure.kind}:{general[:80]}"


def signature_of(failure: Failure) -> str:
    return kusto_signature(failure) if failure.target == "kusto" else failure.signature


class Recorder:
    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        index = out / "index.json"
        self.index: dict[str, dict[str, Any]] = json.loads(index.read_text()) if index.is_file() else {}

    def seen(self, signature: str) -> bool:
        return signature in self.index

    def record(self, failure: Failure, signature: str) -> bool:
        """Store the failure; True when its signature is new."""
        entry = self.index.get(signature)
        new = entry is None
        bug = known(failure)
        name = ("known-" if bug else "") + slug(signature)
        if entry is None:
            entry = {"count": 0, "file": name, "known": bug.name if bug else None, "length": None}
            self.index[signature] = entry
        entry["count"] += 1
        if entry["length"] is None or len(failure.text) < entry["length"]:
            entry["length"] = len(failure.text)
            entry.update(target=failure.target, kind=failure.kind, message=failure.message,
                         where=failure.where, input=failure.text, event=failure.event)
            (self.out / f"{name}.cql").write_text(failure.text, encoding="utf-8", errors="surrogatepass")
            (self.out / f"{name}.txt").write_text(failure.report(), encoding="utf-8", errors="surrogatepass")
        if new or entry["count"] % 50 == 0:
            self.save()
        return new

    def save(self) -> None:
        (self.out / "index.json").write_text(json.dumps(self.index, indent=1, ensure_ascii=False),
                                             encoding="utf-8", errors="surrogatepass")


# ================================================================ minimising


def narrowing(target: str) -> dict[str, Any]:
    """The check_text arguments that still show a failure of ``target``, and little else."""
    if target == "parse":
        return {"targets": (), "matcher": False}
    if target in ("matcher", "match", "run"):
        return {"targets": ()}
    base = target.split("-")[0]
    if base in ("spl", "kql", "sigma", "python"):
        return {"targets": (base,), "matcher": False}
    return {}


def minimise(text: str, still_fails: Callable[[str], bool], budget_seconds: float = 60.0) -> str:
    """A smaller input with the same failure: drop runs of tokens, then of characters (ddmin-like)."""
    deadline = time.monotonic() + budget_seconds
    best = text
    for unit in ("token", "char"):
        progress = True
        while progress and time.monotonic() < deadline:
            progress = False
            parts = tokens(best) if unit == "token" else list(best)
            size = max(1, len(parts) // 2)
            while size >= 1 and time.monotonic() < deadline:
                start = 0
                while start < len(parts) and time.monotonic() < deadline:
                    candidate = "".join(parts[:start] + parts[start + size:])
                    if candidate != best and still_fails(candidate):
                        best = candidate
                        parts = parts[:start] + parts[start + size:]
                        progress = True
                    else:
                        start += size
                size //= 2
    return best


# ================================================================ the run


class Fuzzer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.chooser = RandomChooser(self.rng)
        self.recorder = Recorder(Path(args.out))
        self.seeds = [load_seed(), *self.sample_seeds()]
        self.corpus: list[str] = list(self.seeds)
        self.pending: list[tuple[str, str]] = []
        self.count = 0
        self.parsed = 0
        self.failures = 0
        self.kusto_checked = 0
        self.cli_runs = 0
        self.started = time.monotonic()
        self.kusto = not args.no_kusto and self.kusto_available()

    @staticmethod
    def sample_seeds() -> list[str]:
        prefix = "#event_simpleName=ProcessRollup2 | "
        return [
            prefix + 'CommandLine=*whoami* ImageFileName=/\\\\cmd\\.exe$/i | select([CommandLine])',
            prefix + 'in(ImageFileName, values=["*\\\\powershell.exe", "*pwsh*"], ignoreCase=true) '
                     '| x := lower(CommandLine) | test(x == "a")',
            prefix + 'case { CommandLine=/a/ | s := 1 ; * | s := 0 } | sort(s, order=asc, limit=10)',
            prefix + 'not (UserName="root" or !ComputerName=*) | r := RawProcessId * 2 + 1 '
                     '| table([r, CommandLine], limit=5, sortby=r, order=desc, type=number)',
            prefix + 'Score := if(test(RawProcessId > 3), then=2, else=0) | Sev := if(Score >= 2, "HIGH", "LOW")',
        ]

    @staticmethod
    def kusto_available() -> bool:
        from cqlx.engines.kusto_language import kusto_unavailable_reason

        reason = kusto_unavailable_reason()
        if reason:
            log(f"fuzz: Kusto.Language check off: {reason}")
        return reason is None

    # ------------------------------------------------------------ inputs

    def next_input(self) -> str:
        c = self.chooser
        roll = self.rng.random()
        generator = CqlGenerator(c, max_depth=self.rng.randint(1, 4))
        if roll < 0.4:
            return generator.query()
        if roll < 0.65:
            return mutate(c, self.rng.choice(self.seeds), generator)
        if roll < 0.9:
            return mutate(c, self.rng.choice(self.corpus), generator)
        if roll < 0.95:  # splice two inputs at a stage boundary
            a, b = self.rng.choice(self.corpus), self.rng.choice(self.corpus)
            left, right = a.split("|"), b.split("|")
            return "|".join(left[:self.rng.randint(1, len(left))] + right[self.rng.randint(0, len(right) - 1):])
        return c.text(self.rng.randint(1, 80))

    def events(self) -> list[dict[str, Any]]:
        return [*FIXED_EVENTS, *(make_event(self.chooser) for _ in range(self.rng.randint(1, 4)))]

    # ------------------------------------------------------------ checking

    def guarded(self, text: str, events: Sequence[dict[str, Any]]) -> list[Failure]:
        """check_text with a time limit: a hang is a failure too."""
        signal.setitimer(signal.ITIMER_REAL, self.args.timeout)
        try:
            outcome = check_text(text, events)
        except Hang as error:
            return [Failure("timeout", "Hang", str(error), "?", "", text)]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if outcome.parsed:
            self.parsed += 1
            if len(self.corpus) < 2000:
                self.corpus.append(text)
            else:
                self.corpus[self.rng.randrange(len(self.corpus))] = text
        if self.kusto:
            self.pending.extend((text, kql) for kql in outcome.kql)
        return outcome.failures

    def handle(self, failures: list[Failure], events: Sequence[dict[str, Any]]) -> None:
        for failure in failures:
            self.failures += 1
            signature = signature_of(failure)
            if not self.recorder.seen(signature) and not self.args.no_minimise \
                    and failure.target not in ("kusto", "cli"):
                failure = self.minimise(failure, signature, events)
            if self.recorder.record(failure, signature):
                label = "known" if known(failure) else "NEW"
                log(f"fuzz: {label} failure {signature}\n  input: {failure.text[:300]!r}")

    def minimise(self, failure: Failure, signature: str, events: Sequence[dict[str, Any]]) -> Failure:
        narrow = narrowing(failure.target)

        def same(candidate: str) -> bool:
            signal.setitimer(signal.ITIMER_REAL, self.args.timeout)
            try:
                found = check_text(candidate, events, **narrow).failures
            except Hang:
                return signature.startswith("timeout")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            return any(signature_of(f) == signature for f in found)

        small = minimise(failure.text, same, self.args.minimise_seconds)
        if small == failure.text:
            return failure
        found = [f for f in check_text(small, events, **narrow).failures if signature_of(f) == signature]
        return found[0] if found else failure

    def flush_kusto(self, force: bool = False) -> None:
        if not self.pending or (len(self.pending) < self.args.kusto_batch and not force):
            return
        batch, self.pending = self.pending, []
        try:
            failures = check_kusto(batch)
        except Exception as error:  # the checker itself failing is worth knowing, not fatal
            log(f"fuzz: Kusto.Language run failed: {error}")
            return
        self.kusto_checked += len(batch)
        for failure in failures:
            self.failures += 1
            signature = signature_of(failure)
            if self.recorder.record(failure, signature):
                label = "known" if known(failure) else "NEW"
                log(f"fuzz: {label} failure {signature}\n  input: {failure.text[:300]!r}")

    def check_cli(self, text: str) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "rule.cql"
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            try:
                result = subprocess.run([sys.executable, "-m", "cqlx", "convert", str(path), "--to", "kql"],
                                        capture_output=True, timeout=120, cwd=ROOT)
            except subprocess.TimeoutExpired:
                output, code = "timed out", -1
            else:
                output = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
                code = result.returncode
        if "Traceback" in output or code not in (0, 1, 2) or "internal error" in output:
            failure = Failure("cli", f"exit{code}", output.strip().splitlines()[-1][:300] if output.strip() else "",
                              "cli", output[-3000:], text)
            self.handle([failure], [])

    #: The commands the in-process CLI check rotates through ({rule}, {events}, {out} filled in).
    CLI_COMMANDS: tuple[tuple[str, ...], ...] = (
        ("convert", "{rule}", "--to", "kql"),
        ("check", "{rule}"),
        ("run", "{rule}", "{events}", "--format", "jsonl"),
        ("convert", "{rule}", "--to", "sigma", "--on-lossy", "warn"),
        ("explain", "{rule}"),
        ("convert", "{rule}", "--to", "spl"),
        ("run", "{rule}", "{events}", "--format", "csv", "--no-prefilter"),
        ("convert", "{rule}", "--to", "all", "--output", "{out}", "--on-lossy", "ignore"),
        ("convert", "{rule}", "--to", "python"),
    )

    def check_cli_inprocess(self, text: str, events: Sequence[dict[str, Any]]) -> None:
        """One ``cqlx`` command, run in this process (``cqlx.cli.main`` with sys.argv set, output
        captured): its exit code is 0, 1 or 2 and it prints no traceback and no internal error."""
        import contextlib
        import io

        from cqlx.cli import main as cli_main

        command = self.CLI_COMMANDS[self.count % len(self.CLI_COMMANDS)]
        with tempfile.TemporaryDirectory() as directory:
            rule = Path(directory) / "rule.cql"
            rule.write_text(text, encoding="utf-8", errors="surrogatepass")
            stream = Path(directory) / "events.ndjson"
            stream.write_text("".join(json.dumps(e, default=str) + "\n" for e in events), encoding="utf-8",
                              errors="surrogatepass")
            argv = ["cqlx", *(a.format(rule=rule, events=stream, out=Path(directory) / "out") for a in command)]
            out, err = io.StringIO(), io.StringIO()
            saved = sys.argv
            sys.argv = argv
            signal.setitimer(signal.ITIMER_REAL, self.args.timeout)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    cli_main()
                code: int | str | None = 0
            except SystemExit as exit_:
                code = exit_.code
            except Hang:
                code = "hang"
            except BaseException as error:  # anything past cqlx.cli.main's own handler
                code = f"raised {type(error).__name__}: {error}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                sys.argv = saved
        self.cli_runs += 1
        output = out.getvalue() + err.getvalue()
        if "Traceback" in output or code not in (0, 1, 2, None) or "internal error" in output:
            failure = Failure("cli-inprocess", f"{command[0]}-exit{code}",
                              (output.strip().splitlines() or [""])[-1][:300], "cli", output[-3000:], text)
            self.handle([failure], [])

    def check_card(self, text: str) -> None:
        """The query inside a rule card and a LogScale package: errors point into the file and render."""
        from cqlx.conversion import apply_policy, convert_query
        from cqlx.errors import CqlError
        from cqlx.rules import load_rule

        block = "".join(f"  {line}\n" if line.strip() else "\n" for line in text.splitlines())
        cards = {
            "card.yml": f"title: fuzz\nid: x\nmitre: {{techniques: [T1059]}}\nquery: |\n{block}",
            "package.yaml": "name: p\nqueryString: " + json.dumps(text, ensure_ascii=False) + "\n",
        }
        with tempfile.TemporaryDirectory() as directory:
            for name, content in cards.items():
                path = Path(directory) / name
                path.write_text(content, encoding="utf-8", errors="surrogatepass")
                try:
                    rule = load_rule(path)
                    query = rule.parse()
                    for target in ("kql", "sigma", "spl"):
                        conversion = convert_query(query, target, None, rule.meta, rule.text)
                        for diagnostic in conversion.diagnostics:
                            rule.location(diagnostic.span)
                        try:
                            apply_policy(conversion, "error", rule.text)
                        except CqlError as error:
                            str(rule.relocate(error))
                except CqlError as error:
                    try:
                        str(error)
                    except Exception as failure:
                        self.handle([_failure("card-message", failure, text)], [])
                except Exception as error:
                    self.handle([_failure("card", error, text)], [])

    # ------------------------------------------------------------ main loop

    def one(self, text: str, events: Sequence[dict[str, Any]]) -> None:
        self.count += 1
        self.handle(self.guarded(text, events), events)
        self.flush_kusto()
        if self.args.cli_every and self.count % self.args.cli_every == 0:
            self.check_cli(text)
        if self.args.cli_inprocess_every and self.count % self.args.cli_inprocess_every == 0:
            self.check_cli_inprocess(text, events)
        if self.args.card_every and self.count % self.args.card_every == 0:
            self.check_card(text)

    def progress(self) -> None:
        elapsed = time.monotonic() - self.started
        log(f"fuzz: {self.count} inputs ({self.parsed} parsed) in {elapsed:.0f} s, "
            f"{self.count / max(elapsed, 1e-9):.0f}/s; {self.kusto_checked} KQL outputs checked; "
            f"{self.cli_runs} CLI commands run; "
            f"{self.failures} failures, {len(self.recorder.index)} distinct")

    def loop(self) -> None:
        deadline = self.started + self.args.time if self.args.time else None
        try:
            while (deadline is None or time.monotonic() < deadline) and \
                    (not self.args.count or self.count < self.args.count):
                self.one(self.next_input(), self.events())
                if self.count % self.args.report_every == 0:
                    self.progress()
        except KeyboardInterrupt:
            log("fuzz: interrupted")
        finally:
            self.flush_kusto(force=True)
            self.recorder.save()
            self.progress()


# ================================================================ atheris


class FdpChooser:
    """Choices from atheris' FuzzedDataProvider (zeros once the data runs out)."""

    def __init__(self, fdp: Any) -> None:
        self.fdp = fdp

    def integer(self, low: int, high: int) -> int:
        value: int = self.fdp.ConsumeIntInRange(low, high)
        return value

    def text(self, max_size: int) -> str:
        value: str = self.fdp.ConsumeUnicodeNoSurrogates(max_size)
        return value


def run_atheris(fuzzer: Fuzzer, argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["cqlx", "lark"]):
        import cqlx.api
        import cqlx.conversion
        import cqlx.emit.kql
        import cqlx.emit.python
        import cqlx.emit.sigma
        import cqlx.emit.spl
        import cqlx.lower
        import cqlx.parser
        import cqlx.passes
        import cqlx.regexes  # noqa: F401 - imported to be instrumented

    def test_one_input(data: bytes) -> None:
        # The first byte picks the mode; raw inputs are UTF-8, so the corpus can hold plain queries.
        mode, rest = (data[0] % 4, data[1:]) if data else (0, b"")
        if mode == 0:
            text = rest.decode("utf-8", "replace")
            events: list[dict[str, Any]] = list(FIXED_EVENTS)
        else:
            chooser = FdpChooser(atheris.FuzzedDataProvider(rest))
            events = [*FIXED_EVENTS, make_event(chooser)]
            generator = CqlGenerator(chooser, max_depth=3)
            if mode == 1:
                text = generator.query()
            else:
                text = mutate(chooser, fuzzer.seeds[chooser.integer(0, len(fuzzer.seeds) - 1)], generator)
        fuzzer.one(text, events)
        if fuzzer.count % fuzzer.args.report_every == 0:
            fuzzer.progress()
        if fuzzer.count % 100 == 0:  # libFuzzer ends the process without unwinding: flush as we go
            fuzzer.flush_kusto(force=True)
            fuzzer.recorder.save()

    if not any(not arg.startswith("-") for arg in argv):  # no corpus directory given: start one
        corpus = Path(fuzzer.args.out) / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            for index, seed in enumerate(fuzzer.seeds):
                (corpus / f"seed{index}").write_bytes(b"\x00" + seed.encode("utf-8"))
        argv = [*argv, str(corpus)]
    atheris.Setup([sys.argv[0], *argv], test_one_input)
    try:
        atheris.Fuzz()
    finally:
        fuzzer.flush_kusto(force=True)
        fuzzer.recorder.save()


# ================================================================ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Arguments after -- go to libFuzzer (atheris engine).")
    parser.add_argument("--engine", choices=("loop", "atheris"), default="loop")
    parser.add_argument("--time", type=float, default=0, help="stop after this many seconds (0: never)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many inputs (0: never)")
    parser.add_argument("--out", default=str(ROOT / "fuzz" / "failures"), help="where failing inputs go")
    parser.add_argument("--seed", type=int, default=None, help="random seed (loop engine)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds one input may take")
    parser.add_argument("--kusto-batch", type=int, default=300, help="KQL outputs per Kusto.Language run")
    parser.add_argument("--no-kusto", action="store_true", help="skip the Kusto.Language check")
    parser.add_argument("--cli-every", type=int, default=1000, help="run the CLI on every Nth input (0: never)")
    parser.add_argument("--cli-inprocess-every", type=int, default=1,
                        help="run one cqlx command in this process on every Nth input (0: never)")
    parser.add_argument("--card-every", type=int, default=20,
                        help="check every Nth input inside a rule card and a LogScale package (0: never)")
    parser.add_argument("--no-minimise", action="store_true", help="keep failing inputs as found")
    parser.add_argument("--minimise-seconds", type=float, default=60.0,
                        help="time spent shrinking each new failure's input")
    parser.add_argument("--report-every", type=int, default=1000, help="print progress every N inputs")
    parser.add_argument("--native-stderr", action="store_true",
                        help="let RE2's own messages through to stderr (they are dropped by default)")
    own: list[str] = list(argv if argv is not None else sys.argv[1:])
    extra: list[str] = []
    if "--" in own:
        cut = own.index("--")
        own, extra = own[:cut], own[cut + 1:]
    args = parser.parse_args(own)
    if not args.native_stderr:
        silence_native_stderr()
    warnings.simplefilter("ignore")  # FutureWarning from re about odd character sets, and such
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    log(f"fuzz: engine {args.engine}, seed {args.seed}, failures to {args.out}")
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill PID: stop as Ctrl-C does, saving the index
    fuzzer = Fuzzer(args)
    if args.engine == "atheris":
        try:
            import atheris  # noqa: F401
        except ImportError:
            log("fuzz: atheris is not installed (pip install atheris); using the plain loop")
        else:
            run_atheris(fuzzer, extra)
            return 0
    fuzzer.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

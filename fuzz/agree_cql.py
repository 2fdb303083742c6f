#!/usr/bin/env python3
"""Long-running engine-agreement fuzzer: generated detections, their witness events, every engine.

Each query from :class:`tests.agreement_fuzz.DetectionGenerator` runs over the witness events
:func:`cqlx.witness.generate` derives from it, on the Python matcher (the reference) and on every
executable target (:func:`tests.agreement_fuzz.check_agreement`). A query on which a target
disagrees is written to the output directory as ``NNNN.cql`` with ``NNNN.txt`` (the report: the
target, the witness event and both verdicts), and counted; the run ends with a summary of what was
compared and which conversions were refused, and why.

    python fuzz/agree_cql.py --time 600 --seed 1 --out /tmp/agree

See fuzz/README.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cqlx.errors import CqlError  # noqa: E402
from cqlx.profiles import load_profile  # noqa: E402
from tests.agreement_fuzz import DetectionGenerator, check_agreement, describe  # noqa: E402
from tests.test_fuzz import RandomChooser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time", type=float, default=300, help="seconds to run (default 300)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many queries (0: no limit)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator (default 0)")
    parser.add_argument("--out", type=Path, default=Path("agree-findings"), help="where findings are written")
    parser.add_argument("--profile", action="append", default=[], metavar="PROFILE",
                        help="a profile for its language's target, e.g. sentinel-asim for the KQL (repeatable)")
    parser.add_argument("--aggregating", action="store_true",
                        help="run only the generated queries that aggregate (Sigma: correlation rules)")
    parser.add_argument("--repeating", action="store_true",
                        help="run only the generated queries with regex(repeat=true) (a row of each match)")
    args = parser.parse_args(argv)
    try:
        profiles = {load_profile(name).language: name for name in args.profile}
    except CqlError as error:
        parser.error(error.message)
    generator = DetectionGenerator(RandomChooser(random.Random(args.seed)))
    compared: Counter[str] = Counter()
    skipped: Counter[tuple[str, str]] = Counter()
    queries = failing = 0
    start = time.monotonic()
    while time.monotonic() - start < args.time and (not args.count or queries < args.count):
        text = generator.query()
        if args.aggregating and "groupBy(" not in text:  # the generator's only aggregation
            continue
        if args.repeating and "repeat=true" not in text:
            continue
        report = check_agreement(text, seed=queries, profiles=profiles)
        queries += 1
        for (_, target), result in report.checked.items():
            if isinstance(result, int):
                compared[target] += 1
            else:
                skipped[(target, result.split(":", 1)[-1].strip()[:100])] += 1
        if report.findings:
            failing += 1
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{queries:04d}.cql").write_text(text, encoding="utf-8")
            (args.out / f"{queries:04d}.txt").write_text(describe(report, text) + "\n", encoding="utf-8")
            print(f"query {queries}: {len(report.findings)} disagreements, written to {args.out}", file=sys.stderr)
        if queries % 50 == 0:
            print(f"{queries} queries, {failing} with disagreements, {time.monotonic() - start:.0f} s",
                  file=sys.stderr)
    print(f"{queries} queries in {time.monotonic() - start:.0f} s (seed {args.seed}); "
          f"{failing} with disagreements")
    print("compared (queries): " + ", ".join(f"{t} {n}" for t, n in sorted(compared.items())))
    for (target, reason), count in skipped.most_common(10):
        print(f"  not compared on {target} ({count}): {reason}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())

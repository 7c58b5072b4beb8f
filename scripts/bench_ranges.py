"""Benchmark: what a scenario's `ranges:` cost on top of its estimate (costsim/ranges.py), in process, warm.

    python scripts/bench_ranges.py [--runs N] [SCENARIO ...]

For each scenario (default: the shipped ones with ranges): the median wall seconds of one `estimate` and of
`assumption_ranges` (every value of every range, then the grid), the number of estimates the ranges run, and the
seconds per estimate. Not a test: the figures go into the issue notes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench_serving import median_s as median_seconds   # scripts/ is on sys.path when run as a script
from costsim.estimate import estimate
from costsim.ranges import assumption_ranges, count_runs
from costsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    paths = args.scenarios or [p for p in sorted((ROOT / "scenarios").glob("*.yaml")) if load_scenario(p).ranges]
    for path in paths:
        sc = load_scenario(path)
        one = median_seconds(lambda: estimate(sc, base_dir=path.parent), args.runs)
        rng = median_seconds(lambda: assumption_ranges(sc, path.parent), args.runs)
        n = count_runs(sc)
        print(f"{path.name}: estimate {one:.3f} s; {len(sc.ranges)} range(s), {n} estimates: {rng:.3f} s "
              f"({rng / max(n, 1):.3f} s each)")


if __name__ == "__main__":
    main()

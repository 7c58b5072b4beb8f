#!/usr/bin/env python
"""Benchmark `costsim search` (issue 8): plans per second on GPT-3 175B / 1024 A100-80GB (batch 1536 × 2048)
over the `wide` space, and the time of a single `costsim estimate` process.

By default the whole wide space (every shipped GPU × num_gpus 256…4096 × every parallel dimension, 2.02M
candidate plans) runs through the fast engine in this process: plans per second (evaluated / wall seconds, as
`search` reports configs_per_s), whole-space seconds, CPU seconds and the peak RSS of the process. Then the
exact engine (`estimate_phase` per plan, the reference) runs the first `--exact-sample` plans of the same
space, and the fast engine's figures for them are checked against it (1e-9).

    python scripts/bench_search.py [--engine fast|exact] [--jobs N] [--limit N] [--exact-sample N]
                                   [--estimate-runs 3]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costsim.hardware import list_profiles  # noqa: E402
from costsim.scenario import parse_scenario  # noqa: E402
from costsim.search.engine import _combos, search  # noqa: E402
from costsim.search.space import resolve_space  # noqa: E402

GPT3 = {
    "name": "GPT-3 175B on 1024 A100-80GB",
    "model": "gpt3-175b",
    "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 1024, "gpus_per_node": 8},
    "phases": [{"name": "pre-training", "precision": "bf16", "seq_len": 2048, "global_batch_size": 1536,
                "tokens": 300e9}],
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_search(engine: str, limit: int | None, jobs: int, exact_sample: int) -> None:
    from costsim.model import resolve_model
    sc = parse_scenario(GPT3, "bench")
    model = resolve_model(sc.model, ROOT)
    dims = resolve_space(None, model, sc, 2048, True, list_profiles())
    whole, _ = _combos(dims)
    print(f"wide space, GPT-3 175B: {whole:,} candidate plans "
          f"({len(dims['gpu'])} GPUs × num_gpus {dims['num_gpus']} × parallel dimensions); "
          f"{os.cpu_count()} CPUs, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'all')}")
    t0, c0 = time.perf_counter(), time.process_time()
    res = search(sc, base_dir=ROOT, wide=True, limit=limit, top=5, engine=engine, jobs=jobs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    label = "whole wide space" if res.evaluated == whole else f"first {res.evaluated:,} plans of the wide space"
    print(f"{engine} engine, {label}: {res.evaluated:,} plans in {wall:.2f} s wall ({cpu:.2f} s CPU of this "
          f"process{'' if jobs == 1 else f', plus {jobs} worker processes'}): {res.configs_per_s:,.0f} plans/s "
          f"(search's configs_per_s), {res.evaluated / max(cpu, 1e-9):,.0f} per CPU-second of this process; "
          f"{len(res.feasible):,} feasible; rejected {res.rejected}")
    print(f"peak RSS {peak_rss_mib():,.0f} MiB (this process, imports included); engine: {res.engine}")
    best = res.top[0] if res.feasible else None
    if best:
        print(f"cheapest: {best.plan} — {best.step_time_s:.2f} s/step, {best.wall_clock_days:.1f} days, "
              f"${best.cost_usd:,.0f}, MFU {best.mfu:.1%}, {best.memory_gib_per_gpu:.1f} GiB/GPU")
    if res.evaluated < whole:
        print(f"whole wide space at this rate: ~{whole / res.configs_per_s:,.1f} s wall; target 1,000,000 "
              f"plans/s = {whole / 1e6:.1f} s")
    if exact_sample and engine == "fast":
        ex = search(sc, base_dir=ROOT, wide=True, limit=exact_sample, top=5, engine="exact")
        fa = search(sc, base_dir=ROOT, wide=True, limit=exact_sample, top=5, engine="fast")
        same = ex.evaluated == fa.evaluated and ex.rejected == fa.rejected and len(ex.feasible) == len(fa.feasible)
        worst = 0.0
        for a, b in zip(fa.feasible, ex.feasible):
            same &= a.plan == b.plan
            for k in ("step_time_s", "cost_usd", "mfu", "memory_gib_per_gpu"):
                worst = max(worst, abs(getattr(a, k) - getattr(b, k)) / abs(getattr(b, k)))
        print(f"exact engine, first {ex.evaluated:,} plans: {ex.seconds:.1f} s, {ex.configs_per_s:,.0f} plans/s; "
              f"fast engine agrees: {same and worst <= 1e-9} (same plans and rejections; worst relative "
              f"difference {worst:.1e})")


def bench_estimate(runs: int) -> None:
    cmd = [sys.executable, "-m", "costsim", "estimate", str(ROOT / "scenarios/deepseek-v3.yaml"), "--format",
           "json"]
    walls, cpus = [], []
    subprocess.run(cmd, check=True, capture_output=True)      # warm the numba cache
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ})
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    print(f"costsim estimate scenarios/deepseek-v3.yaml (warm process, {runs} runs): wall "
          f"{min(walls):.2f} s min / {sum(walls) / runs:.2f} s mean, CPU {min(cpus):.2f} s min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=("fast", "exact"), default="fast")
    ap.add_argument("--limit", type=int, default=None, help="stop after this many candidate plans")
    ap.add_argument("--jobs", type=int, default=1, help="local processes (search --jobs)")
    ap.add_argument("--exact-sample", type=int, default=5000, help="plans to check against the exact engine")
    ap.add_argument("--estimate-runs", type=int, default=3)
    args = ap.parse_args()
    bench_search(args.engine, args.limit, args.jobs, args.exact_sample)
    if args.estimate_runs:
        bench_estimate(args.estimate_runs)


if __name__ == "__main__":
    main()

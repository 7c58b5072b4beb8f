#!/usr/bin/env python
"""Benchmark `costsim search` (issue 8): plans per second on GPT-3 175B / 1024 A100-80GB (batch 1536 × 2048)
over the `wide` space, and the time of a single `costsim estimate` process.

The whole wide space (every shipped GPU × num_gpus 256…4096 × every parallel dimension) is counted; by
default only its 1024 × A100-80GB slice is evaluated (one of its gpu × num_gpus slices; the same parallel
dimensions), and the time for the whole space is extrapolated from that rate. `--full` runs all of it.

    python scripts/bench_search.py [--full] [--limit N] [--estimate-runs 3]
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
from costsim.search.space import SearchSpace, resolve_space  # noqa: E402

GPT3 = {
    "name": "GPT-3 175B on 1024 A100-80GB",
    "model": "gpt3-175b",
    "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 1024, "gpus_per_node": 8},
    "phases": [{"name": "pre-training", "precision": "bf16", "seq_len": 2048, "global_batch_size": 1536,
                "tokens": 300e9}],
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_search(full: bool, limit: int | None) -> None:
    from costsim.model import resolve_model
    sc = parse_scenario(GPT3, "bench")
    model = resolve_model(sc.model, ROOT)
    dims = resolve_space(None, model, sc, 2048, True, list_profiles())
    whole, _ = _combos(dims)
    print(f"wide space, GPT-3 175B: {whole:,} candidate plans "
          f"({len(dims['gpu'])} GPUs × num_gpus {dims['num_gpus']} × parallel dimensions)")
    if full:
        space, label = None, "whole wide space"
    else:
        space = SearchSpace(gpu="a100-sxm-80gb", num_gpus=1024)
        label = "wide space, 1024 × a100-sxm-80gb slice"
    t0, c0 = time.perf_counter(), time.process_time()
    res = search(sc, base_dir=ROOT, wide=True, space=space, limit=limit, top=5)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate = res.evaluated / wall
    print(f"{label}: {res.evaluated:,} plans in {wall:.1f} s wall ({cpu:.1f} s CPU, one process): "
          f"{rate:,.0f} plans/s wall, {res.evaluated / cpu:,.0f} per CPU-second; {len(res.feasible):,} feasible; "
          f"rejected {res.rejected}")
    best = res.top[0] if res.feasible else None
    if best:
        print(f"cheapest: {best.plan} — {best.step_time_s:.2f} s/step, {best.wall_clock_days:.1f} days, "
              f"${best.cost_usd:,.0f}, MFU {best.mfu:.1%}, {best.memory_gib_per_gpu:.1f} GiB/GPU")
    if not full:
        print(f"whole wide space at this rate: ~{whole / rate / 60:,.0f} min wall, "
              f"~{whole / (res.evaluated / cpu) / 60:,.0f} min CPU (rejections by divisibility are "
              f"memoised, so the other slices run at a similar rate); target 1,000,000 plans/s = "
              f"{whole / 1e6:.1f} s")
    print(f"peak RSS {peak_rss_mib():,.0f} MiB")


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
    ap.add_argument("--full", action="store_true", help="evaluate the whole wide space (slow: see the note)")
    ap.add_argument("--limit", type=int, default=None, help="stop after this many candidate plans")
    ap.add_argument("--estimate-runs", type=int, default=3)
    args = ap.parse_args()
    bench_search(args.full, args.limit)
    if args.estimate_runs:
        bench_estimate(args.estimate_runs)


if __name__ == "__main__":
    main()

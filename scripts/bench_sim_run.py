"""Benchmark: one Monte-Carlo replicate of a 54-day run on 16,384 GPUs with failures (goal < 1 s).

    python scripts/bench_sim_run.py [--repeats N]

A Llama 3 405B-like run: 405e9 parameters (checkpoint 5.67 TB at the default 100 GB/s → δ ≈ 57 s), 10 s
steps, default reliability (per-GPU MTBF from Llama 3 → job MTBF 3.1 h, Daly interval, 15 min restart), with
enough steps for ~54 wall-clock days. Also a worst case for the event count: a checkpoint every step.
Plain time.perf_counter; medians of a few repeats. Not a test.
"""
from __future__ import annotations

import argparse
import statistics
import time

from costsim.sim.reliability import Reliability, checkpoint_bytes_for
from costsim.sim.run import simulate_run

NUM_GPUS = 16_384
STEP_S = 10.0
STEPS = 395_000        # ~45.7 days of compute → ~54 days of wall clock with the default reliability


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    ckpt = checkpoint_bytes_for(405e9)
    phases = [("pretrain", STEPS, STEP_S)]
    cases = [("default (Daly interval)", Reliability(replicates=1)),
             ("checkpoint every step", Reliability(replicates=1, checkpoint_interval_s=STEP_S)),
             ("stragglers 1e-4 × 1.1", Reliability(replicates=1, straggler_fraction=1e-4, straggler_slowdown=1.1))]
    print(f"run: {STEPS:,} steps × {STEP_S:g} s on {NUM_GPUS:,} GPUs, checkpoint {ckpt / 1e12:.2f} TB")
    for label, rel in cases:
        secs, s = timed(lambda: simulate_run(phases, NUM_GPUS, ckpt, rel), args.repeats)
        r = s.replicates[0]
        print(f"{label:26s} one replicate {secs * 1e3:7.1f} ms  (goal < 1000 ms)  "
              f"wall {r.wall_clock_s / 86400:5.1f} d  failures {r.failures}  checkpoints {r.checkpoints:,}  "
              f"goodput {r.goodput:.3f}  τ {s.checkpoint_interval_s:.0f} s  δ {s.checkpoint_write_s:.1f} s")
    secs, s = timed(lambda: simulate_run(phases, NUM_GPUS, ckpt, Reliability()), 1)
    d = s.as_dict()
    print(f"{'16 replicates (default)':26s} {secs * 1e3:7.1f} ms  wall days mean {d['wall_clock_days']['mean']:.1f} "
          f"p10 {d['wall_clock_days']['p10']:.1f} p90 {d['wall_clock_days']['p90']:.1f}  "
          f"failures mean {d['failures']['mean']:.0f}  goodput mean {d['goodput']['mean']:.3f}  "
          f"analytic waste {d['analytic_waste_fraction']:.3f}")


if __name__ == "__main__":
    main()

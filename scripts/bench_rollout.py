"""Benchmark: the full R1-Zero RL simulation, 650 rollout rounds × 8,192 sequences (goal < 5 s).

    python scripts/bench_rollout.py [--repeats N]

The GRPO schedule of docs/reference/deepseek-r1-and-inference.md §2: 10,400 steps, one rollout of 8,192
outputs per 16 steps (650 rounds), limit 32,768 tokens until step 8,200 then 65,536; 512 GPUs. The length
model and the step time are placeholders for timing only (a lognormal whose mean grows 1K → 9K → 12K
tokens, σ = 1; a decode step linear in batch and context) — not an R1 assumption, which a scenario states.
Cases: the pool holds every sequence (64 per GPU), a queue (8 per GPU: 4,096 slots, list scheduling), and
a scalar step time (Python max: does not broadcast) through tabulated_step_time, and raw (called 3 times
per segment, ~10M calls; the goal is not meant for it). Plain time.perf_counter; medians of a few repeats.
Not a test.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from costsim.rollout_lengths import LengthModel
from costsim.sim.rollout import RolloutPool, rl_rounds, simulate_rl, tabulated_step_time

LENGTHS = LengthModel("lognormal", [(0, 1000), (8200, 9000), (10400, 12000)], 1.0)
ROUNDS = rl_rounds(650, 16, 8192, 500, LENGTHS, [(0, 32768), (8200, 65536)])


def step_time(b, ctx):
    """Seconds of a decode step: 20 ms of weights, plus per-sequence and KV terms (broadcasts)."""
    return 0.02 + 4e-4 * b + 4e-9 * b * ctx


def step_time_scalar(b, ctx):
    return max(0.02, 4e-4 * b + 4e-9 * b * ctx)


# the scalar step time made broadcasting: a 65 × 129 grid (per-GPU batch 1/8..64, context 0..70K), tabulated once
TABULATED = tabulated_step_time(step_time_scalar, np.linspace(1 / 8, 64, 65), np.linspace(0, 70_000, 129))


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    update = lambda k, tokens: 2e-5 * tokens      # noqa: E731  placeholder update time
    cases = [("64 seq/GPU, vectorised step_time", RolloutPool(512, 64, step_time), False),
             ("64 seq/GPU, async", RolloutPool(512, 64, step_time), True),
             ("8 seq/GPU (queue), vectorised", RolloutPool(512, 8, step_time), False),
             ("64 seq/GPU, scalar tabulated", RolloutPool(512, 64, TABULATED), False),
             ("8 seq/GPU (queue), scalar tabulated", RolloutPool(512, 8, TABULATED), False),
             ("64 seq/GPU, scalar, not tabulated", RolloutPool(512, 64, step_time_scalar), False)]
    print(f"R1-Zero schedule: {len(ROUNDS)} rounds × {ROUNDS[0].n:,} sequences on 512 GPUs")
    for label, pool, async_ in cases:
        secs, r = timed(lambda: simulate_rl(ROUNDS, pool, update, async_, seed=0), args.repeats)
        print(f"{label:36s} {secs:6.2f} s  (goal < 5 s)  wall {r.seconds / 3600:7.1f} h  "
              f"generation {r.generation_s / 3600:6.1f} h  update {r.update_s / 3600:6.1f} h  "
              f"idle {r.idle_fraction:5.1%} of generation  segments {sum(x.segments for x in r.rounds):,}")


if __name__ == "__main__":
    main()

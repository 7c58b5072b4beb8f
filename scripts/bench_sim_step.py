"""Benchmark the SimPy step simulator (goal: a DeepSeek-V3 DualPipe step, 16 stages, with its flows, in well
under a second; issue 3's 50 ms was before transfers became flows on shared links).

16 stages, all 120 micro-batches of a 15,360-sequence batch per data-parallel replica, and the same with the
batch doubled (240). Prints the median of repeated runs, without and with the trace the timeline needs, and the
closed-form step for comparison.

    python scripts/bench_sim_step.py
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import dataclasses

from costsim.estimate import estimate
from costsim.scenario import load_scenario
from costsim.sim.step import simulate_phase

SCEN = Path(__file__).resolve().parent.parent / "scenarios"


def _median_ms(fn, repeats: int = 7) -> float:
    fn()   # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main() -> None:
    cases = [("deepseek-v3.yaml", 1, "DeepSeek-V3 DualPipe, pp 16, 120 micro-batches"),
             ("deepseek-v3.yaml", 2, "DeepSeek-V3 DualPipe, pp 16, 240 micro-batches"),
             ("gpt3-175b-h100.yaml", 1, "GPT-3 175B interleaved, pp 8 × v 12, 64 micro-batches")]
    print(f"{'case':58s} {'sim ms':>8s} {'+trace':>8s} {'events':>8s} {'sim s':>8s} {'closed s':>9s}")
    for name, k, label in cases:
        est = estimate(load_scenario(SCEN / name), SCEN)
        p = est.phases[0]
        pc = p.costs
        if k > 1:   # k times the micro-batches per step (the closed form below is for the scenario's batch)
            pc = dataclasses.replace(pc, plan=dataclasses.replace(
                pc.plan, global_batch_size=k * pc.plan.global_batch_size))
        s = est.efficiency.overlap_slowdown
        plain = _median_ms(lambda: simulate_phase(pc, overlap_slowdown=s))
        traced = _median_ms(lambda: simulate_phase(pc, overlap_slowdown=s, trace=True))
        res = simulate_phase(pc, overlap_slowdown=s, trace=True)
        print(f"{label:58s} {plain:8.1f} {traced:8.1f} {len(res.trace):8d} {res.step_time_s:8.2f} "
              f"{p.step_time_s if k == 1 else float('nan'):9.2f}")


if __name__ == "__main__":
    main()

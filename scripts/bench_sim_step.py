"""Benchmark the SimPy step simulator (issue 3 goal: a DeepSeek-V3 DualPipe step in under 50 ms).

16 stages, all 120 micro-batches of a 15,360-sequence batch per data-parallel replica. Prints the median of
repeated runs, without and with the trace the timeline needs, and the closed-form step for comparison.

    python scripts/bench_sim_step.py
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

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
    cases = [("deepseek-v3.yaml", "DeepSeek-V3 DualPipe, pp 16, 120 micro-batches"),
             ("gpt3-175b-h100.yaml", "GPT-3 175B interleaved, pp 8 × v 12, 64 micro-batches")]
    print(f"{'case':58s} {'sim ms':>8s} {'+trace':>8s} {'events':>8s} {'sim s':>8s} {'closed s':>9s}")
    for name, label in cases:
        est = estimate(load_scenario(SCEN / name), SCEN)
        p = est.phases[0]
        omega = est.efficiency.overlap_efficiency
        plain = _median_ms(lambda: simulate_phase(p.costs, omega))
        traced = _median_ms(lambda: simulate_phase(p.costs, omega, trace=True))
        res = simulate_phase(p.costs, omega, trace=True)
        print(f"{label:58s} {plain:8.1f} {traced:8.1f} {len(res.trace):8d} {res.step_time_s:8.2f} "
              f"{p.step_time_s:9.2f}")


if __name__ == "__main__":
    main()

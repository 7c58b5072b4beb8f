"""Benchmark: the serving model's hot paths — one decode batch choice and a serve phase's plan search.

    python scripts/bench_serving.py [--repeats N]

Prints the median wall time of
- `decode_for_speed` (binary search for the largest batch meeting the speed target, then scan_batches) on
  DeepSeek-V3 EP144 at 21 tokens/s per request, DeepSeek-V3 EP16 without a target, Llama 3.1 70B TP8 at 20;
- `estimate` of scenarios/deepseek-v3-serving.yaml and scenarios/deepseek-r1.yaml (warm process);
- `costsim search` over scenarios/deepseek-v3-serving.yaml's serve phase (prefill and decode instances).
Plain time.perf_counter; medians of a few repeats. Not a test.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from costsim.efficiency import fitted
from costsim.estimate import estimate
from costsim.hardware import load_profile
from costsim.infer import ServingPlan, decode_for_speed
from costsim.model import load_builtin
from costsim.scenario import load_scenario
from costsim.search.serve import search_serve

SCEN = Path(__file__).resolve().parent.parent / "scenarios"


def median_s(fn, repeats: int) -> float:
    fn()                                        # warm: caches, lazy imports
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    n = ap.parse_args().repeats
    eff, h800, h100 = fitted(), load_profile("h800-sxm"), load_profile("h100-sxm")
    v3, l70 = load_builtin("deepseek-v3"), load_builtin("llama3.1-70b")
    cases = [
        ("V3 decode EP144, 21 tok/s", v3, h800, ServingPlan(dp=144, ep=144, precision="fp8", redundant_experts=32,
                                                            overlap_comm=True, mtp_tokens=1.875), 4989, 21.0),
        ("V3 decode EP16, no target", v3, h800, ServingPlan(dp=16, ep=16, precision="fp8", redundant_experts=32,
                                                            overlap_comm=True), 4989, None),
        ("Llama 3.1 70B TP8, 20 tok/s", l70, h100, ServingPlan(tp=8), 2000, 20.0),
    ]
    for label, m, hw, plan, ctx, target in cases:
        s = median_s(lambda: decode_for_speed(m, hw, plan, eff, ctx, target), n)
        pt = decode_for_speed(m, hw, plan, eff, ctx, target)
        print(f"decode_for_speed  {label:30s} {s * 1e3:7.1f} ms   batch {pt.batch_per_gpu:g} ({pt.limited_by})")
    for name in ("deepseek-v3-serving", "deepseek-r1"):
        sc = load_scenario(SCEN / f"{name}.yaml")
        s = median_s(lambda: estimate(sc, SCEN), max(1, n // 2))
        print(f"estimate          {name:30s} {s:7.2f} s")
    sc = load_scenario(SCEN / "deepseek-v3-serving.yaml")
    t = time.perf_counter()
    res = search_serve(sc, 0, SCEN)
    tried = sum(res.evaluated.values())
    print(f"search (serve)    {'deepseek-v3-serving':30s} {time.perf_counter() - t:7.2f} s   {tried:,} instances "
          f"({len(res.prefill) + len(res.decode):,} feasible)")


if __name__ == "__main__":
    main()

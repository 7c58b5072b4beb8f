"""Benchmark: scenario latency, cost-kernel throughput (ops/s, configs/s) and the plain-Python twin's ops/s.

    python scripts/bench.py [--quick]

Plain time.perf_counter; medians of a few repeats. Not a test. Runs in well under a minute on 2 cores.
The CPU time of a whole `costsim estimate` process against a baseline commit: scripts/bench_estimate.py.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "deepseek-v3.yaml"

_t0 = time.perf_counter()
import numpy as np  # noqa: E402

from costsim.estimate import estimate  # noqa: E402
from costsim.hardware import load_profile  # noqa: E402
from costsim.kernels import hw_row, op_seconds  # noqa: E402
from costsim.layers import pipeline_units, unit_ops  # noqa: E402
from costsim.model import load_builtin  # noqa: E402
from costsim.ops import OpTable  # noqa: E402
from costsim.scenario import load_scenario  # noqa: E402

IMPORT_S = time.perf_counter() - _t0
sys.path.insert(0, str(ROOT / "tests"))
import naive  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, object]:
    """(median seconds, last result) over `repeats` calls."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


COLD_SNIPPET = """
import time; t = time.perf_counter()
from costsim.estimate import estimate; from costsim.scenario import load_scenario
t_imp = time.perf_counter() - t; t = time.perf_counter()
estimate(load_scenario({path!r}), {base!r})
print(t_imp, time.perf_counter() - t)
"""


def cold_call(cache_dir: str | None) -> tuple[float, float]:
    """(import s, first estimate s) in a fresh interpreter; cache_dir: an empty numba cache forces a compile."""
    env = dict(os.environ)
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    code = COLD_SNIPPET.format(path=str(SCENARIO), base=str(SCENARIO.parent))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    imp, first = map(float, out.stdout.split())
    return imp, first


def op_table(model, plan) -> dict:
    """Structure of arrays of every unit kind's ops for one micro-batch (what estimate() evaluates)."""
    return OpTable([o for u in sorted(set(pipeline_units(model))) + ["p2p"] for o in unit_ops(model, plan, u)]).arrays()


def tile(arrays: dict, reps: int) -> dict:
    return {k: np.tile(v, reps) for k, v in arrays.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, no cold-compile subprocess")
    args = ap.parse_args()
    n_ops = 200_000 if args.quick else 1_000_000
    n_cfg = 10_000 if args.quick else 50_000
    rows: list[tuple[str, str]] = []

    # (a) scenario latency
    sc = load_scenario(SCENARIO)
    t = time.perf_counter()
    estimate(sc, SCENARIO.parent)
    first_in_process = time.perf_counter() - t
    warm, _ = timed(lambda: estimate(sc, SCENARIO.parent), 5)
    rows.append(("import costsim (this process)", f"{IMPORT_S * 1e3:8.1f} ms"))
    rows.append(("estimate deepseek-v3.yaml, first call", f"{first_in_process * 1e3:8.1f} ms"))
    rows.append(("estimate deepseek-v3.yaml, warm (median of 5)", f"{warm * 1e3:8.1f} ms"))
    imp, first = cold_call(None)
    rows.append(("fresh process: import + first call (cache load)", f"{imp * 1e3:8.1f} + {first * 1e3:.1f} ms"))
    if not args.quick:
        with tempfile.TemporaryDirectory() as cache:
            imp, first = cold_call(cache)
        rows.append(("fresh process, empty numba cache (compile)", f"{imp * 1e3:8.1f} + {first * 1e3:.1f} ms"))

    # (b) kernel throughput
    plan = estimate(sc, SCENARIO.parent).phases[0].plan      # DeepSeek-V3 pre-training
    model, hw = load_builtin("deepseek-v3"), load_profile("h800-sxm")
    table = op_table(model, plan)
    n_table = len(table["kind"])
    row = hw_row(hw, sm_frac=1 - plan.comm_sms / hw.num_sms)
    big = tile(table, -(-n_ops // n_table))
    t_big, _ = timed(lambda: op_seconds(big, row, engine="numba"), 3)
    n_big = len(big["kind"])
    rows.append((f"kernel: {n_big:,} ops (DeepSeek table ×{n_big // n_table}), one config",
                 f"{n_big / t_big / 1e6:8.1f} M ops/s ({t_big * 1e3:.1f} ms)"))

    rng = np.random.default_rng(0)
    hw_rows = np.array([hw_row(hw, sm_frac=1 - c / hw.num_sms, derate=d, overhead_s=o)
                        for c, d, o in zip(rng.integers(0, 33, n_cfg), rng.uniform(0.6, 1.0, n_cfg),
                                           rng.uniform(0, 1e-5, n_cfg))])
    sweep = tile(table, n_cfg)
    sweep["config"] = np.repeat(np.arange(n_cfg, dtype=np.int32), n_table)
    t_sweep, secs = timed(lambda: op_seconds(sweep, hw_rows, engine="numba"), 3)
    assert secs.shape == (n_cfg * n_table,)
    rows.append((f"kernel: {n_cfg:,} hardware rows × {n_table} ops",
                 f"{n_cfg / t_sweep / 1e3:8.1f} k configs/s ({n_cfg * n_table / t_sweep / 1e6:.1f} M ops/s)"))
    t_arr, _ = timed(lambda: op_table(model, plan), 5)
    rows.append((f"op table build + arrays ({n_table} ops)", f"{t_arr * 1e3:8.2f} ms"))

    # (c) the twin
    n_twin = 20_000 if not args.quick else 5_000
    small = tile(table, -(-n_twin // n_table))
    cfg = [naive.Config(hw, 1 - plan.comm_sms / hw.num_sms)]
    t_twin, slow = timed(lambda: naive.op_seconds(small, cfg), 1)
    fast = op_seconds(small, row, engine="numba")
    assert np.allclose(fast, slow, rtol=1e-9, atol=0)
    n_small = len(small["kind"])
    rows.append((f"twin (tests/naive.py): {n_small:,} ops", f"{n_small / t_twin / 1e3:8.1f} k ops/s"))
    # the kernel's own code without numba: what a single estimate runs (kernels.NUMBA_MIN_ROWS)
    t_py, py = timed(lambda: op_seconds(small, row, engine="python"), 3)
    assert np.array_equal(py, fast)
    rows.append((f"kernel as plain Python: {n_small:,} ops", f"{n_small / t_py / 1e3:8.1f} k ops/s"))
    rows.append(("kernel speed-up over the twin", f"{(n_big / t_big) / (n_small / t_twin):8.0f} ×"))

    width = max(len(k) for k, _ in rows)
    print(f"costsim bench  (python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs)")
    print("-" * (width + 30))
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()

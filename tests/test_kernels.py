"""The numba cost kernel against its plain-Python twin (tests/naive.py), plus the knobs and the GEMM shape model.

Tests named `test_twin_*` also run in a subprocess with NUMBA_DISABLE_JIT=1 (test_twin_agreement_without_jit),
so coverage sees the kernel bodies (STYLE.md habit 5).
"""
from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import naive
from conftest import build_plan
from costsim import kernels
from costsim.hardware import load_profile
from costsim.kernels import N_PARAMS, gemm_shape_efficiency, hw_row, op_seconds
from costsim.layers import pipeline_units, unit_ops
from costsim.model import load_builtin
from costsim.ops import ATTN_B, ATTN_F, COLL, GEMM, MEM, Op, OpTable
from costsim.plan import A2A_MIXED, HIERARCHICAL, NETWORK, NVLINK

RTOL = 1e-9
NOJIT_CHILD = "COSTSIM_TEST_NOJIT_CHILD"
INT_FIELDS = ("kind", "prec", "coll", "tier", "config")


@lru_cache(maxsize=None)
def profile(name: str):
    return load_profile(name)


def rows_of(configs: list[naive.Config]) -> np.ndarray:
    return np.array([hw_row(c.hw, sm_frac=c.sm_frac, derate=c.derate, overhead_s=c.overhead_s,
                            sustained=c.sustained) for c in configs])


def both(arrays: dict, configs: list[naive.Config]) -> tuple[np.ndarray, np.ndarray]:
    """(kernel seconds, twin seconds) for the same ops and configurations. The kernel runs through both of its
    engines, numba and the same code as plain Python (small tables, kernels.op_seconds), which must agree to
    the last bit: `costsim estimate` takes the Python one, a search the numba one."""
    rows = rows_of(configs)
    jit, py = op_seconds(arrays, rows, engine="numba"), op_seconds(arrays, rows, engine="python")
    np.testing.assert_array_equal(jit.view(np.int64), py.view(np.int64))     # bit for bit, not just close
    return jit, np.array(naive.op_seconds(arrays, configs))


def concat(tables: list[dict]) -> dict:
    return {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}


def one(op: Op, cfg: naive.Config) -> float:
    return float(op_seconds(OpTable([op]).arrays(), rows_of([cfg]))[0])


# ---- (a) every op of real op tables ---------------------------------------------------------------------

REAL = [  # (model, profile, plan overrides, derate, overhead_s)
    ("deepseek-v3", "h800-sxm", dict(pp=16, ep=64, dp=128, schedule="dualpipe", recompute="selective",
                                     comm_sms=20, precision="fp8"), 1.0, 0.0),
    ("deepseek-v3", "h800-sxm", dict(cp=8, ep=8, dp=8, seq_len=32768, recompute="selective", comm_sms=20),
     0.9, 4e-6),
    ("deepseek-v3", "h800-sxm", dict(tp=2, sequence_parallel=True, ep=16, dp=32, pp=4, recompute="full",
                                     precision="fp8", attention="unfused"), 0.8, 2e-6),
    ("gpt3-175b", "h100-sxm", dict(tp=8, sequence_parallel=True, pp=8, dp=4, seq_len=2048, attention="unfused",
                                   recompute="selective"), 1.0, 0.0),
    ("gpt3-175b", "h100-sxm", dict(tp=16, pp=4, dp=2, seq_len=2048, recompute="full", precision="fp8",
                                   micro_batch_size=2), 0.85, 3e-6),
    ("gpt3-175b", "a100-sxm-80gb", dict(tp=4, cp=4, dp=2, seq_len=2048, attention="unfused"), 1.0, 5e-6),
    ("llama3.1-70b", "a100-sxm-80gb", dict(tp=8, cp=2, pp=4, dp=2, seq_len=8192, recompute="full"), 0.9, 0.0),
    ("llama3.1-70b", "h100-sxm", dict(tp=4, sequence_parallel=True, pp=2, dp=4, seq_len=8192,
                                      precision="fp8", comm_sms=16), 1.0, 1e-6),
]


def real_table(model_name: str, plan_kw: dict) -> dict:
    model, plan = load_builtin(model_name), build_plan(**plan_kw)
    ops = [o for u in sorted(set(pipeline_units(model))) + ["p2p"] for o in unit_ops(model, plan, u)]
    return OpTable(ops).arrays()


def real_config(hw_name: str, plan_kw: dict, derate: float, overhead_s: float) -> naive.Config:
    hw = profile(hw_name)
    return naive.Config(hw, 1.0 - plan_kw.get("comm_sms", 0) / hw.num_sms, derate, overhead_s)


@pytest.mark.parametrize("model_name, hw_name, plan_kw, derate, overhead_s", REAL,
                         ids=[f"{m}-{h}-{i}" for i, (m, h, *_) in enumerate(REAL)])
def test_twin_real_op_tables(model_name, hw_name, plan_kw, derate, overhead_s):
    arrays = real_table(model_name, plan_kw)
    got, want = both(arrays, [real_config(hw_name, plan_kw, derate, overhead_s)])
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


def test_real_op_tables_cover_every_kind_tier_and_collective():
    """The plans above are chosen so (a) sees every op kind, link tier and collective type."""
    seen = concat([real_table(m, kw) for m, _, kw, *_ in REAL])
    assert set(seen["kind"]) == {GEMM, ATTN_F, ATTN_B, MEM, COLL}
    coll = seen["kind"] == COLL
    assert set(seen["tier"][coll]) == {NVLINK, NETWORK, A2A_MIXED, HIERARCHICAL}
    assert set(seen["coll"][coll]) == {0, 1, 2, 3, 4}
    assert set(seen["prec"][seen["kind"] == GEMM]) == {0, 1}


# ---- (b) random ops ---------------------------------------------------------------------------------------

def random_configs() -> list[naive.Config]:
    h800, h100, a100, b200 = (profile(n) for n in ("h800-sxm", "h100-sxm", "a100-sxm-80gb", "b200"))
    return [naive.Config(h800, 1 - 20 / 132, 0.93, 3e-6), naive.Config(h100), naive.Config(b200, 0.61, 0.8, 1e-5),
            naive.Config(a100, 0.9, 0.7, 6e-6),
            naive.Config(dataclasses.replace(h100, gemm_k_half=0.0, gemm_tile_m=64, gemm_tile_n=256), 0.37)]


def log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def random_arrays(rng: np.random.Generator, n: int, configs: list[naive.Config]) -> dict:
    """Random ops of every kind on random configs: tiny M, K = 1, huge N, many groups, all tiers/collectives."""
    fp8 = np.array([c.hw.supports("fp8") for c in configs])
    cfg = rng.integers(0, len(configs), n)
    kind = rng.integers(0, 5, n)
    m = np.round(log_uniform(rng, 1, 1e6, n))
    m = np.where(rng.random(n) < 0.1, rng.integers(1, 9, n), m)                          # tiny M
    nn = np.round(log_uniform(rng, 1, 3e7, n))                                            # up to huge N
    k = np.where(rng.random(n) < 0.1, 1.0, np.round(log_uniform(rng, 1, 2e5, n)))          # K = 1
    groups = np.where(rng.random(n) < 0.2, rng.integers(1, 513, n), 1).astype(float)
    gemm_flops = 2.0 * m * nn * k * groups
    attn = (kind == ATTN_F) | (kind == ATTN_B)
    m = np.where(attn, log_uniform(rng, 0.5, 2e6, n), m)                                  # sequence length
    flops = np.where(attn, log_uniform(rng, 1e3, 1e15, n), gemm_flops)
    nbytes = np.where(rng.random(n) < 0.05, 0.0, log_uniform(rng, 1, 1e11, n))
    bytes2 = np.where(rng.random(n) < 0.05, 0.0, log_uniform(rng, 1, 1e11, n))
    return {
        "kind": kind.astype(np.int32), "prec": np.where(fp8[cfg], rng.integers(0, 2, n), 0).astype(np.int32),
        "m": m, "n": nn, "k": k, "groups": groups, "flops": flops, "bytes": nbytes, "bytes2": bytes2,
        "launches": rng.integers(1, 31, n).astype(float), "coll": rng.integers(0, 5, n).astype(np.int32),
        "tier": rng.integers(0, 4, n).astype(np.int32), "lat_steps": rng.integers(0, 1025, n).astype(float),
        "config": cfg.astype(np.int32)}


def test_twin_random_ops():
    rng = np.random.default_rng(20250611)
    configs = random_configs()
    arrays = random_arrays(rng, 20_000, configs)
    got, want = both(arrays, configs)
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


# ---- (c) edge cases ---------------------------------------------------------------------------------------

def edge_ops() -> list[Op]:
    """Boundaries of every branch: tile and wave edges, K = 1, the attention curve's ends and knots, zeros."""
    ops = []
    for prec in (0, 1):
        for m, n, k, g in [(1, 1, 1, 1), (1, 7168, 16384, 1), (4096, 3e7, 1, 1), (128, 128, 128, 1),
                           (129, 128, 4096, 1), (128 * 132, 128, 8192, 1), (128 * 132 + 1, 128, 8192, 1),
                           (128 * 133, 128, 8192, 1), (64, 7168, 2048, 256), (2048, 2048, 13312, 1),
                           (4096, 7168, 16384, 1)]:
            f = 2.0 * m * n * k * g
            ops.append(Op("g", "u", "F", GEMM, prec, m, n, k, g, f, f, bytes=2.0 * (m * k + k * n + m * n) * g))
        ops.append(Op("g0", "u", "F", GEMM, prec, 4096, 4096, 4096, 1, 0.0, bytes=0.0, launches=3))
        ops.append(Op("gmem", "u", "F", GEMM, prec, 8, 8, 8, 1, 1024.0, bytes=1e12))       # memory-bound
    for kind in (ATTN_F, ATTN_B):
        for seq in (0.0, 0.5, 1.0, 100.0, 511.0, 512.0, 513.0, 700.0, 1024.0, 3000.0, 4096.0, 16384.0, 16385.0, 1e7):
            ops.append(Op("a", "u", "F", kind, m=seq, flops=1e13, bytes=1e8))
        ops.append(Op("amem", "u", "F", kind, m=4096.0, flops=1.0, bytes=1e12))
    ops += [Op("e", "u", "F", MEM, bytes=b, launches=l) for b, l in ((0.0, 1), (1.0, 1), (1e12, 4))]
    for tier in (NVLINK, NETWORK, A2A_MIXED, HIERARCHICAL):
        for c in range(5):
            for steps, b1, b2 in ((0.0, 0.0, 0.0), (1.0, 1e3, 0.0), (1022.0, 3e9, 7e8), (7.0, 1e5, 4e9)):
                ops.append(Op("c", "u", "F", COLL, bytes=b1, bytes2=b2, coll=c, tier=tier, lat_steps=steps))
    return ops


def edge_configs() -> list[naive.Config]:
    h100, h800, b200, a100 = (profile(n) for n in ("h100-sxm", "h800-sxm", "b200", "a100-sxm-80gb"))
    fp8_shaped = dataclasses.replace(h100, gemm_mamf_shape={"bf16": (2048, 2048, 13312), "fp8": (4096, 7168, 16384)})
    return [naive.Config(h100), naive.Config(h800, 1 - 20 / 132, 0.75, 4e-6),
            naive.Config(b200, derate=0.5), naive.Config(fp8_shaped, 0.5, 1.0, 1e-6),
            naive.Config(dataclasses.replace(h100, gemm_k_half=0.0)),
            naive.Config(h100, sm_frac=1e-3),               # one SM left
            naive.Config(a100, 0.95, 0.9, 2e-6)]


def edge_arrays(configs: list[naive.Config]) -> dict:
    tables = []
    for i, c in enumerate(configs):
        ops = [o for o in edge_ops() if c.hw.supports("fp8") or o.prec == 0]
        tables.append({**OpTable(ops).arrays(), "config": np.full(len(ops), i, np.int32)})
    return concat(tables)


def test_twin_edge_cases():
    configs = edge_configs()
    got, want = both(edge_arrays(configs), configs)
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


def test_twin_shape_efficiency_function():
    """The public gemm_shape_efficiency agrees with the twin's on a grid of shapes."""
    hw = profile("h100-sxm")
    for m in (1, 64, 127, 128, 129, 4096, 16896):
        for n in (1, 128, 2112, 7168, 32768):
            for k in (1, 512, 7168):
                for g in (1, 3, 256):
                    for sms in (1, 66, 132):
                        want = naive.shape_efficiency(m, n, k, g, hw, sms)
                        got = gemm_shape_efficiency(m, n, k, g, hw.gemm_tile_m, hw.gemm_tile_n, sms, hw.gemm_k_half)
                        assert got == pytest.approx(want, rel=1e-12)
                        assert 0 < got <= 1


def test_plateau_reproduces_mamf_at_its_own_shape():
    """hw_row normalises MAMF by its shape's efficiency, so the MAMF shape runs at exactly MAMF."""
    for name in ("h100-sxm", "a100-sxm-80gb"):
        hw = profile(name)
        m, n, k = hw.gemm_mamf_shape["bf16"]
        f = 2.0 * m * n * k
        t = one(Op("g", "u", "F", GEMM, 0, m, n, k, 1, f, bytes=0.0), naive.Config(hw, sustained=False))
        assert f / t == pytest.approx(hw.gemm_mamf_flops["bf16"], rel=1e-12)
        # in training, Hopper tensor cores run at the throttled clock (0.874 of it); A100 at its own
        sustained = one(Op("g", "u", "F", GEMM, 0, m, n, k, 1, f, bytes=0.0), naive.Config(hw))
        assert f / sustained == pytest.approx(hw.gemm_mamf_flops["bf16"] * hw.sustained_clock_fraction, rel=1e-12)
        assert hw.sustained_clock_fraction == (0.874 if name == "h100-sxm" else 1.0)


# ---- the parameter row and the knobs ----------------------------------------------------------------------

def test_many_configs_at_once_equal_each_alone():
    """One call over 3 hardware rows equals three calls with one row each (ops pick rows by `config`)."""
    h800, h100, a100 = (profile(n) for n in ("h800-sxm", "h100-sxm", "a100-sxm-80gb"))
    configs = [naive.Config(h800, 1 - 20 / 132, 1.0, 0.0), naive.Config(h100, 1.0, 0.8, 2e-6),
               naive.Config(a100, 1.0, 1.0, 5e-6)]
    base = real_table("llama3.1-70b", dict(tp=8, pp=2, seq_len=8192, recompute="full"))
    n = len(base["kind"])
    rng = np.random.default_rng(7)
    order = rng.permutation(3 * n)                      # interleave the three configs' ops
    mixed = {k: np.concatenate([base[k]] * 3)[order] for k in base}
    mixed["config"] = (order // n).astype(np.int32)     # position j holds base op order[j] % n
    together = op_seconds(mixed, rows_of(configs))
    for i, c in enumerate(configs):
        alone = op_seconds(base, rows_of([c]))
        mine = mixed["config"] == i
        np.testing.assert_array_equal(together[mine], alone[order[mine] % n])


def big_gemm(prec: int = 0, launches: float = 1.0) -> Op:
    m, n, k = 128 * 132, 128 * 4, 8192                    # 4 full waves on 132 SMs, 8 on 66
    f = 2.0 * m * n * k
    return Op("g", "u", "F", GEMM, prec, m, n, k, 1, f, bytes=2.0 * (m * k + k * n + m * n), launches=launches)


def test_derate_halved_doubles_compute_bound_time():
    hw = profile("h100-sxm")
    for op in (big_gemm(0), big_gemm(1), Op("a", "u", "F", ATTN_F, m=4096.0, flops=1e13, bytes=1e6),
               Op("a", "u", "B", ATTN_B, m=2000.0, flops=1e13, bytes=1e6)):
        full, half = one(op, naive.Config(hw)), one(op, naive.Config(hw, derate=0.5))
        assert half == pytest.approx(2 * full, rel=1e-12)
    memory_bound = Op("g", "u", "F", GEMM, 0, 8, 8, 8, 1, 1024.0, bytes=1e11)
    elementwise = Op("e", "u", "F", MEM, bytes=1e10)
    for op in (memory_bound, elementwise):
        assert one(op, naive.Config(hw, derate=0.5)) == one(op, naive.Config(hw))


def test_sm_frac_scales_compute_only():
    hw = profile("h800-sxm")
    full, half = naive.Config(hw), naive.Config(hw, sm_frac=0.5)        # 66 SMs left
    assert one(big_gemm(), half) == pytest.approx(2 * one(big_gemm(), full), rel=1e-12)
    single_tile = Op("g", "u", "F", GEMM, 0, 128, 128, 8192, 1, 2.0 * 128 * 128 * 8192, bytes=0.0)
    assert one(single_tile, half) == pytest.approx(one(single_tile, full), rel=1e-12)   # one SM either way
    attn = Op("a", "u", "F", ATTN_F, m=4096.0, flops=1e13, bytes=0.0)
    assert one(attn, half) == pytest.approx(2 * one(attn, full), rel=1e-12)
    for op in (Op("e", "u", "F", MEM, bytes=1e10),
               Op("c", "u", "F", COLL, bytes=1e9, bytes2=1e9, coll=3, tier=A2A_MIXED, lat_steps=63)):
        assert one(op, half) == one(op, full)


def test_kernel_overhead_per_launch():
    hw = profile("h100-sxm")
    o = 7e-6
    for op in (big_gemm(launches=3), Op("a", "u", "F", ATTN_F, m=4096.0, flops=1e12, launches=2),
               Op("e", "u", "F", MEM, bytes=1e8, launches=10)):
        assert one(op, naive.Config(hw, overhead_s=o)) - one(op, naive.Config(hw)) == pytest.approx(o * op.launches,
                                                                                                  rel=1e-9)
    coll = Op("c", "u", "F", COLL, bytes2=1e9, coll=0, tier=NVLINK, lat_steps=14, launches=5)
    assert one(coll, naive.Config(hw, overhead_s=o)) == one(coll, naive.Config(hw))   # α stands for the launch


def test_op_seconds_validates_its_inputs():
    arrays = OpTable([big_gemm()]).arrays(config=1)
    row = hw_row(profile("h100-sxm"))
    with pytest.raises(ValueError, match="index outside hw_rows"):
        op_seconds(arrays, row)
    with pytest.raises(ValueError, match=f"expected {N_PARAMS} columns"):
        op_seconds(OpTable([big_gemm()]).arrays(), row[:-1])
    assert op_seconds(OpTable([]).arrays(), row).shape == (0,)


# ---- regressions of fixed bugs ---------------------------------------------------------------------------

def test_twin_reserving_c_sms_leaves_num_sms_minus_c():
    for name in ("h800-sxm", "a100-sxm-80gb", "b200"):
        hw = profile(name)
        for c in range(hw.num_sms):
            cfg = naive.Config(hw, sm_frac=1.0 - c / hw.num_sms)
            left = hw.num_sms - c
            m, n, k = 128 * left, 128, 4096                 # exactly one full wave on the SMs left
            op = Op("g", "u", "F", GEMM, 0, m, n, k, 1, 2.0 * m * n * k, bytes=0.0)
            got, want = one(op, cfg), naive.one_op_seconds(naive.rows(OpTable([op]).arrays())[0], cfg)
            assert got == pytest.approx(want, rel=RTOL), f"{name}: comm_sms={c}"


def test_twin_long_attention_curve_is_used_or_rejected():
    hw = profile("h100-sxm")
    seq = tuple(float(2 ** i) for i in range(9, 19))         # 512 … 131072: ten points
    fwd = tuple(3e14 + 3e13 * i for i in range(10))
    long = dataclasses.replace(hw, attn_seq_len=seq, attn_fwd_flops=fwd, attn_bwd_flops=fwd)
    try:
        row = hw_row(long)
    except ValueError:
        return                                               # rejecting the profile is a fix too
    op = Op("a", "u", "F", ATTN_F, m=131072.0, flops=1e13, bytes=0.0)
    got = op_seconds(OpTable([op]).arrays(), row)[0]
    assert got == pytest.approx(naive.one_op_seconds(naive.rows(OpTable([op]).arrays())[0], naive.Config(long)),
                                rel=RTOL)


# ---- GEMM shape model against DeepGEMM (hardware.md, H800, FP8) -------------------------------------------

DEEPGEMM = [  # M, N, K, published TFLOPS (deepseek-ai/DeepGEMM, H800 SXM5, FP8 e4m3)
    (4096, 7168, 16384, 1520), (4096, 4096, 7168, 1410), (4096, 7168, 2048, 1168),
    (4096, 24576, 1536, 1212), (4096, 32768, 512, 775), (4096, 2112, 7168, 1127)]
DEEPGEMM_SMALL_M = [(64, 7168, 16384, 336), (128, 7168, 16384, 645), (128, 4096, 7168, 533)]


def deepgemm_rates(shapes) -> list[tuple[int, int, int, float, float]]:
    """(M, N, K, published, modelled) TFLOPS: kernel time on the h800 profile, FP8, bytes as FP8 in, BF16 out."""
    hw = profile("h800-sxm")
    ops = [Op("g", "u", "F", GEMM, 1, m, n, k, 1, 2.0 * m * n * k, bytes=m * k + k * n + 2.0 * m * n)
           for m, n, k, _ in shapes]
    secs = op_seconds(OpTable(ops).arrays(), hw_row(hw, sustained=False))   # a single-GPU microbenchmark
    return [(m, n, k, pub, 2.0 * m * n * k / s / 1e12) for (m, n, k, pub), s in zip(shapes, secs)]


def test_gemm_shape_model_against_deepgemm(capsys):
    rates = deepgemm_rates(DEEPGEMM)
    logs = np.array([math.log(model / pub) for *_, pub, model in rates])
    rmse = float(np.sqrt(np.mean(logs ** 2)))
    # the shape model alone: the best single plateau for these six (geometric mean of published / efficiency)
    hw = profile("h800-sxm")
    eff = np.array([naive.shape_efficiency(m, n, k, 1, hw, hw.num_sms) for m, n, k, _ in DEEPGEMM])
    pub = np.array([p for *_, p in DEEPGEMM])
    best_plateau = float(np.exp(np.mean(np.log(pub / eff))))
    shape_rmse = float(np.sqrt(np.mean(np.log(best_plateau * eff / pub) ** 2)))
    with capsys.disabled():
        print(f"\nDeepGEMM FP8 on H800 vs the h800-sxm profile (plateau {hw_row(hw)[kernels.P_RATE_FP8] / 1e12:.1f} "
              f"TFLOPS = FP8 MAMF, no FP8 MAMF shape published)")
        print(f"{'M':>6} {'N':>6} {'K':>6} {'published':>9} {'model':>7} {'model/pub':>9}")
        for m, n, k, p, r in rates + deepgemm_rates(DEEPGEMM_SMALL_M):
            note = "" if m >= 4096 else "  (small M: few tokens per expert)"
            print(f"{m:>6} {n:>6} {k:>6} {p:>9.0f} {r:>7.0f} {r / p:>9.3f}{note}")
        print(f"log-RMSE (6 large-M shapes) {rmse:.3f}; shape model alone with its best plateau "
              f"{best_plateau:.0f} TFLOPS: {shape_rmse:.3f}")
    assert rmse < 0.2
    assert all(abs(model / p - 1) < 0.15 for *_, p, model in rates)
    # grouped-expert shapes with few rows: the tile choice (a smaller block fills the SMs) keeps them within 20%
    # (with the 128×128 tile alone, 128×4096×7168 was modelled at 318 TFLOPS against DeepGEMM's 533)
    assert all(abs(model / p - 1) < 0.2 for *_, p, model in deepgemm_rates(DEEPGEMM_SMALL_M))
    assert shape_rmse < 0.05


# ---- the same twin comparisons with the JIT off ------------------------------------------------------------

@pytest.mark.skipif(os.environ.get(NOJIT_CHILD) == "1", reason="this is the NUMBA_DISABLE_JIT child run")
def test_twin_agreement_without_jit():
    """Re-run the test_twin_* tests with NUMBA_DISABLE_JIT=1: the kernel bodies run as Python (coverage)."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", NOJIT_CHILD: "1"}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider",
                           "-k", "twin", __file__], env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = proc.stdout.strip().splitlines()[-1]
    n_passed = int(summary.split(" passed")[0].split()[-1])
    assert n_passed >= 12 and " failed" not in summary and " error" not in summary, summary


@pytest.mark.skipif(os.environ.get(NOJIT_CHILD) != "1", reason="only in the NUMBA_DISABLE_JIT child run")
def test_twin_child_really_runs_python():
    from numba.core import config
    assert config.DISABLE_JIT
    assert not hasattr(kernels._jitted()._op_seconds, "signatures")   # a plain function, not a numba dispatcher


def test_attention_head_dim_64_runs_at_the_published_share_of_128():
    """hardware.md FA3 hd64 vs hd128 (forward, non-causal): 0.737 on average; same FLOPs take 1/0.737 as long."""
    hw = profile("h100-sxm")
    row = hw_row(hw)
    ops = [Op("a", "u", "F", ATTN_F, m=4096.0, k=d, flops=1e13, bytes=0.0) for d in (128.0, 64.0, 96.0, 192.0)]
    t128, t64, t96, t192 = op_seconds(OpTable(ops).arrays(), row)
    assert t64 / t128 == pytest.approx(1 / 0.737, rel=1e-9)
    assert t96 / t128 == pytest.approx(1 / (0.737 + 0.5 * 0.263), rel=1e-9)
    assert t192 == pytest.approx(t128, rel=1e-12)                  # MLA's 192: no gain claimed above 128


def test_engine_choice():
    """auto: plain Python below NUMBA_MIN_ROWS while numba is not imported (it costs ~0.3 s to load), numba
    beyond or once imported; the figures are the same either way (both() checks every twin table bit for
    bit; test_single_estimate_does_not_load_numba the first case in a fresh process)."""
    assert 10_000 <= kernels.NUMBA_MIN_ROWS <= 1_000_000
    arrays, row = OpTable([big_gemm()]).arrays(), hw_row(profile("h100-sxm"))
    assert op_seconds(arrays, row, engine="numba") == op_seconds(arrays, row, engine="python")
    assert kernels.numba_loaded()                     # imported now: auto takes numba from here on
    with pytest.raises(ValueError, match="engine"):
        op_seconds(arrays, row, engine="cuda")


def test_single_estimate_does_not_load_numba():
    """A `costsim estimate` costs ~1,000 ops: it runs them as plain Python and never imports numba (issue 8:
    importing numba and loading its cache was ~0.35 s of a 0.9 s estimate)."""
    root = Path(__file__).resolve().parent.parent
    code = ("import sys; from costsim.cli import app\n"
            "try:\n    app(['estimate', 'scenarios/deepseek-v3.yaml', '--format', 'json'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('numba' in sys.modules, 'typer.rich_utils' in sys.modules, file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.split()[-2:] == ["False", "False"]

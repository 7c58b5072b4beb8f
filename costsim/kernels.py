"""Numba cost kernel: op table × hardware-parameter rows → seconds per op.

Shape-aware roofline (NVIDIA, "Matrix Multiplication Background User's Guide"): a GEMM runs at the
achievable rate for its shape — tile padding, wave quantization over the SMs, and a K fall-off K/(K+K½) fitted
to DeepGEMM's table (scripts/fit_gemm_shape.py) — or at HBM speed if its bytes take longer; element-wise ops
stream at the element-wise bandwidth; every kernel pays a launch overhead. Collectives follow the α–β model
with measured busbw: t = steps·α + wire_bytes / busbw (formulas.md, nccl-tests conventions).

Layout: ops are rows of a structure of arrays, each row naming the hardware-parameter row (`config`) it runs
on, so one call evaluates one configuration or a million (a sweep concatenates op tables).

Two engines, one source: the kernel functions below are plain Python; `_jitted()` compiles the very same
code objects with numba (helpers rebound to their compiled twins). Numba is imported only for a table big
enough to pay for it: importing numba and loading its cache took ~0.35 s of a 0.9 s `costsim estimate`
(issue 8) to cost ~1,000 ops, which the plain-Python loop does in a few ms. Both give bit-identical seconds
(tests/test_kernels.py checks every twin table through both engines).
"""
from __future__ import annotations

import math
import sys
import types
from functools import lru_cache

import numpy as np

from .hardware import HardwareProfile

# The K fall-off is a fixed per-tile cost (prologue, epilogue writing the output tile) worth K½ multiply-adds of
# the main loop; it was fitted as K½ = 500 on H800 FP8 (DeepGEMM table). The same per-tile cost is worth fewer
# K-steps when the main loop is slower relative to memory, so K½ scales with the GEMM's FLOP-per-byte ratio:
# K½(rate, bw) = k_half · (rate / bw) / REF_FLOP_PER_BYTE, with the reference taken at the fit's conditions:
# H800 FP8 MAMF 1402.6 TFLOPS over 3.0 TB/s streaming bandwidth (hardware.md).
REF_FLOP_PER_BYTE = 1402.6e12 / 3.0e12

# Hardware-parameter row layout (SI units).
(P_RATE_BF16, P_RATE_FP8, P_TILE_M, P_TILE_N, P_K_HALF, P_SMS, P_SM_FRAC, P_DERATE, P_OVERHEAD,
 P_HBM_STREAM, P_HBM_ELEM, P_NVL_LAT, P_NET_LAT) = range(13)
P_NVL_BW = 13          # 5 collectives: all_reduce, all_gather, reduce_scatter, all_to_all, p2p
P_NET_BW = 18
P_ATT_N = 23           # number of attention curve points (≤ MAX_ATT_POINTS)
MAX_ATT_POINTS = 16
P_ATT_SEQ, P_ATT_F, P_ATT_B = 24, 24 + MAX_ATT_POINTS, 24 + 2 * MAX_ATT_POINTS
N_PARAMS = 24 + 3 * MAX_ATT_POINTS
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p")


def gemm_shape_efficiency(m, n, k, groups, tile_m, tile_n, sms, k_half):
    """Fraction of the plateau rate a GEMM of this shape reaches: padding × waves × K fall-off, for the best of
    the profile's tile and its halves and quarter in N (cuBLAS/CUTLASS heuristics and DeepGEMM pick smaller
    blocks for small GEMMs to fill the SMs; NVIDIA "Matrix Multiplication Background", tile quantization). A
    smaller tile reuses each loaded operand less — bm·bn/(bm + bn) multiply-adds per element loaded — so it
    runs at that reuse relative to the profile's tile (which reaches the plateau)."""
    reuse_full = tile_m * tile_n / (tile_m + tile_n)
    best = 0.0
    for c in range(4):
        bm = tile_m / 2 if c == 1 else tile_m
        bn = tile_n / 2 if c == 2 else (tile_n / 4 if c == 3 else tile_n)
        tm = math.ceil(m / bm)
        tn = math.ceil(n / bn)
        tiles = tm * tn * groups
        waves = math.ceil(tiles / sms)
        wave_eff = tiles / (waves * sms)
        pad_eff = (m * n) / (tm * bm * tn * bn)
        reuse = bm * bn / (bm + bn) / reuse_full
        best = max(best, wave_eff * pad_eff * reuse)
    return best * k / (k + k_half)


def hw_row(hw: HardwareProfile, *, sm_frac: float = 1.0, derate: float = 1.0,
           overhead_s: float = 0.0, attention: str = "flash", sustained: bool = True) -> np.ndarray:
    """One hardware-parameter row: MAMF rates normalised to the plateau by the MAMF shape's own efficiency.
    `attention`: "flash2" runs attention at the profile's FlashAttention-2 curve where it has one (frameworks
    on PyTorch SDPA / flash-attn 2 run FA2 on Hopper, not FA3), forward and backward at its fwd+bwd rate.
    `sustained`: tensor cores at the clock the GPU sustains under training load (the profile's
    sustained_clock_fraction); False: at the microbenchmarks' clock (to compare with a microbenchmark)."""
    row = np.zeros(N_PARAMS)
    for col, prec in ((P_RATE_BF16, "bf16"), (P_RATE_FP8, "fp8")):
        mamf = hw.gemm_mamf_flops.get(prec, 0.0)
        shape = hw.gemm_mamf_shape.get(prec)
        row[col] = mamf / _mamf_shape_efficiency(hw, mamf, shape)
    row[P_TILE_M], row[P_TILE_N], row[P_K_HALF] = hw.gemm_tile_m, hw.gemm_tile_n, hw.gemm_k_half
    # tensor-core work runs at the clock the GPU sustains in training, relative to the microbenchmarks' clock
    row[P_SMS], row[P_SM_FRAC], row[P_OVERHEAD] = hw.num_sms, sm_frac, overhead_s
    row[P_DERATE] = derate * (hw.sustained_clock_fraction if sustained else 1.0)
    row[P_HBM_STREAM], row[P_HBM_ELEM] = hw.hbm_bw_stream, hw.hbm_bw_elementwise
    row[P_NVL_LAT], row[P_NET_LAT] = hw.nvlink_latency_s, hw.net_latency_s
    for i, c in enumerate(COLLECTIVES):
        row[P_NVL_BW + i] = hw.nvlink_busbw[c]
        row[P_NET_BW + i] = hw.net_busbw[c]
    npts = len(hw.attn_seq_len)
    if npts > MAX_ATT_POINTS:
        raise ValueError(f"{hw.name}: attention curve has {npts} points; the cost kernel takes at most "
                         f"{MAX_ATT_POINTS}")
    row[P_ATT_N] = npts
    row[P_ATT_SEQ:P_ATT_SEQ + npts] = hw.attn_seq_len[:npts]
    fa2 = attention == "flash2" and len(hw.attn_fa2_flops) == npts
    row[P_ATT_F:P_ATT_F + npts] = (hw.attn_fa2_flops if fa2 else hw.attn_fwd_flops)[:npts]
    row[P_ATT_B:P_ATT_B + npts] = (hw.attn_fa2_flops if fa2 else hw.attn_bwd_flops)[:npts]
    return row


def _mamf_shape_efficiency(hw: HardwareProfile, mamf: float, shape) -> float:
    """Efficiency of the shape at which MAMF was measured, so that MAMF / it is the plateau rate. The plateau
    enters K½ too, so iterate (converges in a few steps); unpublished shape: MAMF is the plateau."""
    if not shape or not mamf:
        return 1.0
    eff = 1.0
    for _ in range(20):
        k_half = hw.gemm_k_half * (mamf / eff) / hw.hbm_bw_stream / REF_FLOP_PER_BYTE
        eff = gemm_shape_efficiency(*shape, 1, hw.gemm_tile_m, hw.gemm_tile_n, hw.num_sms, k_half)
    return eff


# FlashAttention's rate at head dimension 64 relative to 128: hardware.md, Attention (FA3 forward, non-causal,
# H100): 333/467, 392/565, 460/625, 476/638, 496/646, 497/648 from 512 to 16K tokens, mean 0.737. The profiles'
# curves are head dimension 128; below it fewer FLOPs per loaded tile (linear between 64 and 128, held below 64).
HD64_FACTOR = 0.737


def head_dim_factor(d):
    if d <= 0.0 or d >= 128.0:
        return 1.0
    if d <= 64.0:
        return HD64_FACTOR
    return HD64_FACTOR + (1.0 - HD64_FACTOR) * (d - 64.0) / 64.0


def _attn_rate(hw, seq, col):
    """Attention FLOP/s at this sequence length: linear in log2(seq) between measured points, clamped."""
    npts = int(hw[P_ATT_N])
    x = math.log2(max(seq, 1.0))
    if x <= math.log2(hw[P_ATT_SEQ]):
        return hw[col]
    for i in range(1, npts):
        x1 = math.log2(hw[P_ATT_SEQ + i])
        if x <= x1:
            x0 = math.log2(hw[P_ATT_SEQ + i - 1])
            w = (x - x0) / (x1 - x0)
            return hw[col + i - 1] * (1.0 - w) + hw[col + i] * w
    return hw[col + npts - 1]


def _op_seconds(kind, prec, m, n, k, groups, flops, nbytes, bytes2, launches, coll, tier, lat_steps,
                config, hw, out):
    # len(), not .shape: the plain-Python engine passes lists (indexing numpy scalars one at a time is ~10x
    # slower than lists of floats, and the values and arithmetic are the same IEEE doubles either way)
    for i in range(len(kind)):
        p = hw[config[i]]
        overhead = p[P_OVERHEAD] * launches[i]
        sms = max(1.0, math.floor(p[P_SMS] * p[P_SM_FRAC] + 1e-9))   # guard 132·(1 − 23/132) = 108.999…
        compute_scale = p[P_DERATE] * sms / p[P_SMS]
        kd = kind[i]
        if kd == 0:    # GEMM
            rate = p[P_RATE_FP8] if prec[i] == 1 else p[P_RATE_BF16]
            k_half = p[P_K_HALF] * rate / p[P_HBM_STREAM] / REF_FLOP_PER_BYTE
            eff = gemm_shape_efficiency(m[i], n[i], k[i], groups[i], p[P_TILE_M], p[P_TILE_N], sms, k_half)
            t_c = flops[i] / (rate * eff * compute_scale)
            out[i] = overhead + max(t_c, nbytes[i] / p[P_HBM_STREAM])
        elif kd == 1 or kd == 2:   # attention forward / backward
            rate = _attn_rate(p, m[i], P_ATT_F if kd == 1 else P_ATT_B) * compute_scale * head_dim_factor(k[i])
            out[i] = overhead + max(flops[i] / rate, nbytes[i] / p[P_HBM_STREAM])
        elif kd == 3:  # memory-bound element-wise
            out[i] = overhead + nbytes[i] / p[P_HBM_ELEM]
        else:          # collective: α–β with measured busbw per tier
            c = coll[i]
            t_net = nbytes[i] / p[P_NET_BW + c]
            t_nvl = bytes2[i] / p[P_NVL_BW + c]
            if tier[i] == 0:
                out[i] = lat_steps[i] * p[P_NVL_LAT] + t_nvl
            elif tier[i] == 1:
                out[i] = lat_steps[i] * p[P_NET_LAT] + t_net
            elif tier[i] == 2:     # all-to-all across nodes: NIC and NVLink shares run at once
                out[i] = lat_steps[i] * p[P_NET_LAT] + max(t_net, t_nvl)
            else:                  # hierarchical: in-node phase, then cross-node phase
                out[i] = lat_steps[i] * p[P_NET_LAT] + t_net + t_nvl
    return out


# Rows from which numba pays for itself, measured on the 2-core dev box: importing numba ~0.12 s and loading
# its cached kernels ~0.15 s, against ~1.7 us a row for the plain-Python loop (100,000 random rows in 0.17 s),
# so numba wins from ~160,000 rows; 100,000 errs towards numba. Once numba is imported in the process (a
# search's own kernels, a test) it is used for every table: a call then costs ~10 us at any size up to a few
# hundred rows, against ~40 us for 8 rows in Python (the per-key unit tables a search costs by the thousand).
NUMBA_MIN_ROWS = 100_000
_KERNEL_FUNCS = ("gemm_shape_efficiency", "head_dim_factor", "_attn_rate", "_op_seconds")
_FIELDS = ("kind", "prec", "m", "n", "k", "groups", "flops", "bytes", "bytes2", "launches", "coll", "tier",
           "lat_steps")


@lru_cache(maxsize=None)
def _jitted() -> types.SimpleNamespace:
    """The kernel functions compiled by numba (cache=True: compiled once per machine, loaded afterwards). Each
    is the same code object as its plain-Python original, with globals in which the helpers it calls are the
    compiled ones (numba resolves globals at compile time and cannot call plain Python functions)."""
    from numba import njit
    namespace = dict(globals())
    compiled = {}
    for name in _KERNEL_FUNCS:
        py = globals()[name]
        clone = types.FunctionType(py.__code__, namespace, py.__name__, py.__defaults__, py.__closure__)
        clone.__qualname__, clone.__doc__ = py.__qualname__, py.__doc__
        compiled[name] = namespace[name] = njit(cache=True)(clone)
    return types.SimpleNamespace(**compiled)


def numba_loaded() -> bool:
    """True once numba is imported in this process (loading the cached kernels then costs ~0.15 s, once)."""
    return "numba" in sys.modules


def op_seconds(arrays: dict[str, np.ndarray], hw_rows: np.ndarray, engine: str = "auto") -> np.ndarray:
    """Seconds per op. `arrays` from OpTable.arrays(); `hw_rows` shape (n_configs, N_PARAMS).
    `engine`: "numba", "python" or "auto" (numba for big tables or once loaded; same figures either way)."""
    hw_rows = np.ascontiguousarray(np.atleast_2d(hw_rows), dtype=np.float64)
    if hw_rows.shape[1] != N_PARAMS:
        raise ValueError(f"hw_rows: expected {N_PARAMS} columns, got {hw_rows.shape[1]}")
    cfg = arrays["config"]
    if cfg.size and (cfg.min() < 0 or cfg.max() >= hw_rows.shape[0]):
        raise ValueError("arrays.config: index outside hw_rows")
    if engine not in ("auto", "numba", "python"):
        raise ValueError(f"engine: 'auto', 'numba' or 'python', got {engine!r}")
    n = cfg.shape[0]
    if engine == "auto":
        engine = "numba" if n >= NUMBA_MIN_ROWS or numba_loaded() else "python"
    if engine == "numba":
        return _jitted()._op_seconds(*(arrays[f] for f in _FIELDS), cfg, hw_rows, np.empty(n))
    out = [0.0] * n
    _op_seconds(*(arrays[f].tolist() for f in _FIELDS), cfg.tolist(), hw_rows.tolist(), out)
    return np.array(out, dtype=np.float64)

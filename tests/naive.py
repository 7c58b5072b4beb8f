"""Slow twin of the numba cost kernel `costsim.kernels._op_seconds` (STYLE.md habit 5; stumpy's tests/naive.py).

Plain Python, one op at a time, hardware numbers read by name from a `HardwareProfile` (never the packed
parameter row), written from the kernel's module docstring and docs/reference/{hardware,formulas}.md:

- GEMM: seconds = max(FLOPs / achievable rate, HBM bytes / streaming bandwidth) + launch overhead. The
  achievable rate is the plateau rate × the shape efficiency (tile padding × wave quantization over the SMs
  left to compute × K fall-off K/(K+K½); NVIDIA "Matrix Multiplication Background"), scaled by the compute
  derate and by the share of SMs left to compute. The plateau is the published MAMF divided by the shape
  efficiency of the MAMF's own best shape (the MAMF *is* the rate at that shape); MAMF is taken as the
  plateau itself where no shape is published.
- attention: rate linear in log2(sequence length) between the profile's points, clamped to the end points.
- element-wise: bytes / element-wise bandwidth + launch overhead.
- collectives (α–β, nccl-tests busbw convention, formulas.md): steps·α + wire bytes / busbw on the op's tier;
  NVLink tier uses the NVLink α; the other tiers the network α; a cross-node all-to-all runs its NIC and
  NVLink shares at once (max), a hierarchical collective runs them one after the other (sum). Collectives pay
  no launch overhead (α stands for it).

The one place the twin says what is *meant* rather than what the float arithmetic does: the SMs left to
compute are ⌊num_sms · sm_frac⌋ with a tolerance, so sm_frac = 1 − c/num_sms leaves exactly num_sms − c SMs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from costsim.hardware import HardwareProfile

GEMM, ATTN_F, ATTN_B, MEM, COLL = 0, 1, 2, 3, 4            # costsim.ops kind codes
PRECISION = {0: "bf16", 1: "fp8"}                          # costsim.ops.PRECISION_CODE, inverted
COLLECTIVE = {0: "all_reduce", 1: "all_gather", 2: "reduce_scatter", 3: "all_to_all", 4: "p2p"}
NVLINK, NETWORK, A2A_MIXED, HIERARCHICAL = 0, 1, 2, 3      # costsim.plan link tiers
FIELDS = ("kind", "prec", "m", "n", "k", "groups", "flops", "bytes", "bytes2", "launches", "coll", "tier",
          "lat_steps", "config")


@dataclass(frozen=True)
class Config:
    """One hardware configuration: a profile plus the run-time knobs hw_row() takes."""
    hw: HardwareProfile
    sm_frac: float = 1.0        # share of SMs left to compute kernels
    derate: float = 1.0         # sustained / microbenchmark tensor-core throughput
    overhead_s: float = 0.0     # seconds per kernel launch
    sustained: bool = True      # tensor clock under training load (False: the microbenchmarks' clock)


def compute_sms(hw: HardwareProfile, sm_frac: float) -> int:
    """Whole SMs left to compute kernels (at least one)."""
    return max(1, math.floor(hw.num_sms * sm_frac + 1e-9))


FIT_FLOP_PER_BYTE = 1402.6e12 / 3.0e12    # H800 FP8 MAMF over streaming bandwidth, where K½ was fitted


def tile_efficiency(m: float, n: float, groups: float, hw: HardwareProfile, sms: int) -> float:
    """Busy SM-slots × useful share of the padded tiles × operand reuse, for `groups` GEMMs with M×N outputs on
    `sms` SMs, with the best block among the profile's tile, half its M, half its N and a quarter of its N."""
    tm0, tn0 = hw.gemm_tile_m, hw.gemm_tile_n
    candidates = [(tm0, tn0), (tm0 / 2, tn0), (tm0, tn0 / 2), (tm0, tn0 / 4)]
    out = []
    for bm, bn in candidates:
        tiles_m = math.ceil(m / bm)
        tiles_n = math.ceil(n / bn)
        tiles = tiles_m * tiles_n * groups
        waves = math.ceil(tiles / sms)
        busy_slots = tiles / (waves * sms)                               # the last wave may be partial
        useful = (m * n) / (tiles_m * bm * tiles_n * bn)                 # edge tiles are padded
        # multiply-adds per loaded operand element, relative to the profile's tile
        reuse = (bm * bn / (bm + bn)) / (tm0 * tn0 / (tm0 + tn0))
        out.append(busy_slots * useful * reuse)
    return max(out)


def k_half(hw: HardwareProfile, plateau_flops: float) -> float:
    """K at which the K fall-off halves the rate, for a main loop running at `plateau_flops`."""
    return hw.gemm_k_half * (plateau_flops / hw.hbm_bw_stream) / FIT_FLOP_PER_BYTE


def shape_efficiency(m: float, n: float, k: float, groups: float, hw: HardwareProfile, sms: int,
                     k_half_: float | None = None) -> float:
    """Fraction of the plateau rate reached by `groups` GEMMs of M×N×K on `sms` SMs (K½ default: the profile's)."""
    kh = hw.gemm_k_half if k_half_ is None else k_half_
    return tile_efficiency(m, n, groups, hw, sms) * k / (k + kh)


def gemm_plateau_flops(hw: HardwareProfile, precision: str) -> float:
    """Large-shape plateau FLOP/s P: MAMF = P · tiles(MAMF shape) · K/(K + K½(P)). With K½(P) = c·P this is
    MAMF·(K + c·P) = P·tiles·K, so P = MAMF·K / (tiles·K − c·MAMF)."""
    mamf = hw.gemm_mamf_flops[precision]
    shape = hw.gemm_mamf_shape.get(precision)
    if shape is None:
        return mamf
    m, n, k = shape
    c = k_half(hw, 1.0)                                       # K½ per FLOP/s of plateau
    return mamf * k / (tile_efficiency(m, n, 1, hw, hw.num_sms) * k - c * mamf)


def head_dim_share(d: float) -> float:
    """FlashAttention at head dimension d vs the profiles' 128: hardware.md FA3 hd64/hd128 pairs average 0.737;
    straight line from 64 to 128; 1 at 128 and above (MLA's 192), and 0.737 below 64; d = 0: not given."""
    if d == 0 or d >= 128:
        return 1.0
    return 0.737 if d <= 64 else 0.737 + (d - 64) / 64 * (1 - 0.737)


def attention_flops(seq_points: Sequence[float], rates: Sequence[float], seq: float) -> float:
    """FLOP/s at `seq` tokens: piecewise linear in log2(seq) through the measured points, flat outside."""
    x = math.log2(max(seq, 1.0))
    xs = [math.log2(s) for s in seq_points]
    if x <= xs[0]:
        return rates[0]
    if x >= xs[-1]:
        return rates[-1]
    for j in range(1, len(xs)):
        if x <= xs[j]:
            share = (x - xs[j - 1]) / (xs[j] - xs[j - 1])
            return rates[j - 1] + share * (rates[j] - rates[j - 1])
    raise AssertionError("unreachable")


def one_op_seconds(op: Mapping[str, float], cfg: Config) -> float:
    """Seconds for one op (a mapping with the FIELDS keys) on one configuration."""
    hw = cfg.hw
    kind = int(op["kind"])
    if kind == COLL:
        name = COLLECTIVE[int(op["coll"])]
        nic_s = op["bytes"] / hw.net_busbw[name]
        nvlink_s = op["bytes2"] / hw.nvlink_busbw[name]
        tier = int(op["tier"])
        if tier == NVLINK:
            return op["lat_steps"] * hw.nvlink_latency_s + nvlink_s
        alpha_s = op["lat_steps"] * hw.net_latency_s
        if tier == NETWORK:
            return alpha_s + nic_s
        if tier == A2A_MIXED:
            return alpha_s + max(nic_s, nvlink_s)
        return alpha_s + nic_s + nvlink_s                     # hierarchical

    launch_s = cfg.overhead_s * op["launches"]
    if kind == MEM:
        return launch_s + op["bytes"] / hw.hbm_bw_elementwise
    sms = compute_sms(hw, cfg.sm_frac)
    # reserved SMs do no math; tensor cores run at the clock the GPU sustains under training load
    clock = hw.sustained_clock_fraction if cfg.sustained else 1.0
    scale = cfg.derate * clock * sms / hw.num_sms
    memory_s = op["bytes"] / hw.hbm_bw_stream
    if kind == GEMM:
        plateau = gemm_plateau_flops(hw, PRECISION[int(op["prec"])])
        rate = plateau * shape_efficiency(op["m"], op["n"], op["k"], op["groups"], hw, sms, k_half(hw, plateau))
    elif kind == ATTN_F:
        rate = attention_flops(hw.attn_seq_len, hw.attn_fwd_flops, op["m"]) * head_dim_share(op["k"])
    elif kind == ATTN_B:
        rate = attention_flops(hw.attn_seq_len, hw.attn_bwd_flops, op["m"]) * head_dim_share(op["k"])
    else:
        raise ValueError(f"unknown op kind {kind}")
    return launch_s + max(op["flops"] / (rate * scale), memory_s)


def rows(arrays: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """The structure of arrays (OpTable.arrays()) as a list of plain per-op dicts."""
    n = len(arrays["kind"])
    return [{f: float(arrays[f][i]) for f in FIELDS} for i in range(n)]


def op_seconds(arrays: Mapping[str, Sequence[float]], configs: Sequence[Config]) -> list[float]:
    """Seconds per op; op i runs on configs[arrays['config'][i]]."""
    return [one_op_seconds(op, configs[int(op["config"])]) for op in rows(arrays)]

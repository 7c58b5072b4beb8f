"""`costsim calibrate compare`: the cost kernel's prediction for every entry of results files, with the error.

Predictions are the kernel's own (kernels.op_seconds on one hardware row, no derate, no overhead: an isolated
microbenchmark), through the op table's conventions: a GEMM moves (MK + KN)·bytes_in + MN·2 bytes; attention is
the FlashAttention curve (the kernel ignores head dim and causality) with the op table's I/O bytes where batch
and heads are given; element-wise kernels (copy, write, the copy engine) run at hbm_bw_elementwise, streaming
ones (read, a named streaming kernel) at hbm_bw_stream; collectives follow the α–β model per tier, the
hierarchical one as formulas.md (in-node phase, then the cross-node phase on S/k); a figure without a size is
a plateau (no latency term). Error = predicted / measured − 1; log error = ln(predicted / measured).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..hardware import COLLECTIVES, HardwareProfile, load_profile
from ..kernels import hw_row, op_seconds
from ..ops import ATTN_B, ATTN_F, COLL, GEMM, MEM, Op, OpTable
from ..plan import HIERARCHICAL, NETWORK, NVLINK
from .fit import Source, load_sources
from .fit_curves import factor, steps

TIER_CODE = {"intra_node": NVLINK, "inter_node": NETWORK, "hierarchical": HIERARCHICAL}


@dataclass
class Row:
    file: str
    family: str
    what: str
    unit: str
    measured: float
    predicted: float | None
    source: str

    @property
    def error(self) -> float | None:
        return None if self.predicted is None else self.predicted / self.measured - 1

    @property
    def log_error(self) -> float | None:
        return None if self.predicted is None else math.log(self.predicted / self.measured)


def _seconds(op: Op, row: np.ndarray) -> float:
    return float(op_seconds(OpTable([op]).arrays(), row)[0])


def _gemm(e, hw: HardwareProfile, row) -> tuple[str, float | None]:
    if e.m is None:
        what = f"{e.dtype} {e.kernel} {e.probe or ''} shape not given".replace("  ", " ")
        return what, hw.gemm_mamf_flops.get(e.dtype, 0) / 1e12 or None
    b_in = 1 if e.dtype == "fp8" else 2
    flops = 2.0 * e.m * e.n * e.k * e.groups
    nbytes = e.groups * ((e.m * e.k + e.k * e.n) * b_in + e.m * e.n * 2)
    op = Op("gemm", "x", "F", GEMM, 1 if e.dtype == "fp8" else 0, e.m, e.n, e.k, e.groups, flops, flops, nbytes)
    g = f" x{e.groups}" if e.groups > 1 else ""
    what = f"{e.dtype} {e.kernel} {e.m}x{e.n}x{e.k}{g}"
    if e.dtype not in hw.gemm_mamf_flops:
        return what, None
    return what, flops / _seconds(op, row) / 1e12


def _attention(e, row) -> tuple[str, float]:
    dv = e.head_dim_v or e.head_dim
    b, h, s = e.batch or 1, e.heads or 1, e.seq_len
    fwd = 2.0 * b * h * s * s * (e.head_dim + dv) * (0.5 if e.causal else 1.0)
    io = 2.0 * b * s * h * (2 * e.head_dim + 2 * dv) if e.batch and e.heads else 0.0
    t_f = _seconds(Op("a", "x", "F", ATTN_F, m=s, flops=fwd, bytes=io), row)
    t_b = _seconds(Op("a", "x", "B", ATTN_B, m=s, flops=2.5 * fwd, bytes=2.5 * io), row)
    rate = {"fwd": fwd / t_f, "bwd": 2.5 * fwd / t_b, "fwd_bwd": 3.5 * fwd / (t_f + t_b)}[e.direction]
    hd = f"{e.head_dim}/{dv}" if dv != e.head_dim else str(e.head_dim)
    return f"{e.kernel} {e.direction} {'causal' if e.causal else 'full'} hd{hd} s{s}", rate / 1e12


def _memory(e, hw: HardwareProfile, row) -> tuple[str, float]:
    size = f" {e.bytes / 2**20:g} MiB" if e.bytes else ""
    if e.op in ("read", "stream"):
        return f"{e.op}{size}", hw.hbm_bw_stream / 1e9
    nbytes = e.bytes or 2.0**30
    return f"{e.op}{size}", nbytes / _seconds(Op("m", "x", "F", MEM, bytes=nbytes), row) / 1e9


def _collective(e, row) -> tuple[str, float]:
    n, size = e.ranks, e.size_bytes
    s = size or 2.0**30
    f = factor(e.collective, n)
    tier = TIER_CODE[e.tier]
    lat = steps(e.collective, n) if size else 0.0
    net, nvl = (0.0, f * s) if tier == NVLINK else (f * s, 0.0)
    if tier == HIERARCHICAL:
        k = e.ranks_per_node or 8
        nodes = max(n // k, 1)
        mult = 2.0 if e.collective == "all_reduce" else 1.0
        nvl, net = mult * (k - 1) / k * s, mult * (nodes - 1) / nodes * s / k
        lat = mult * ((k - 1) + (nodes - 1)) if size else 0.0
    op = Op("c", "x", "F", COLL, bytes=net, bytes2=nvl, coll=COLLECTIVES.index(e.collective), tier=tier,
            lat_steps=lat)
    where = f" {size / 2**20:g} MiB" if size else ""
    return f"{e.collective} {e.tier} n{n} {e.algo}{where}", f * s / _seconds(op, row) / 1e9


def _latency(e, hw: HardwareProfile) -> tuple[str, float]:
    alpha = hw.nvlink_latency_s if e.tier == "intra_node" else hw.net_latency_s
    bw = (hw.nvlink_busbw if e.tier == "intra_node" else hw.net_busbw)["p2p"]
    return f"{e.tier} {e.path or ''} {e.size_bytes} B".replace("  ", " "), (alpha + e.size_bytes / bw) * 1e6


UNITS = {"gemm": "TFLOPS", "attention": "TFLOPS", "memory": "GB/s", "collective": "GB/s", "latency": "us",
         "launch": "us"}


def compare_entries(sources: list[Source], hw: HardwareProfile) -> list[Row]:
    row = hw_row(hw, sustained=False)   # microbenchmarks run at the unthrottled clock
    out = []
    for src in sources:
        for e in src.results.entries:
            measured = {"gemm": "tflops", "attention": "tflops", "memory": "gbps", "collective": "busbw_gbs",
                        "latency": "time_us", "launch": "time_us"}[e.family]
            if e.family == "gemm":
                what, pred = _gemm(e, hw, row)
            elif e.family == "attention":
                what, pred = _attention(e, row)
            elif e.family == "memory":
                what, pred = _memory(e, hw, row)
            elif e.family == "collective":
                what, pred = _collective(e, row)
            elif e.family == "latency":
                what, pred = _latency(e, hw)
            else:
                what, pred = f"launch {e.op}", None    # the global kernel_overhead_us, not a profile field
            out.append(Row(src.path, e.family, what, UNITS[e.family], getattr(e, measured), pred, e.source or ""))
    return out


def compare(paths: list[str], profile: str) -> tuple[HardwareProfile, list[Row]]:
    hw = load_profile(profile)
    return hw, compare_entries(load_sources(paths), hw)


def summarize(rows: list[Row]) -> dict[str, dict]:
    """Per family: entries, entries with a prediction, log-RMSE, median |error|, worst error."""
    out = {}
    for fam in dict.fromkeys(r.family for r in rows):
        rs = [r for r in rows if r.family == fam]
        errs = [r for r in rs if r.error is not None]
        logs = np.array([r.log_error for r in errs])
        out[fam] = {"entries": len(rs), "predicted": len(errs),
                    "log_rmse": float(np.sqrt(np.mean(logs ** 2))) if errs else None,
                    "median_abs_error": float(np.median(np.abs([r.error for r in errs]))) if errs else None,
                    "worst_error": max((r.error for r in errs), key=abs) if errs else None}
    return out

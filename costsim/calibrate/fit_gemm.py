"""Fit the cost kernel's GEMM model — plateau rate per precision, tile shape and K½ — to measured GEMMs.

The model is the kernel's own (costsim/kernels.py): rate = plateau · padding · waves · K/(K + K½_eff), with
K½_eff = k_half · (plateau / streaming bandwidth) / REF_FLOP_PER_BYTE. Entries come in *series*, one per
(kernel, precision). Series of the framework's own matmul (`kernel: torch`: mamf-finder, `calibrate run`) set
the profile's plateau for their precision; other kernels (e.g. DeepGEMM) get a free scale of their own and
inform only the shape model — exactly how scripts/fit_gemm_shape.py fits DeepGEMM's table: a grid over four
tile shapes and K½ ∈ {0, 10, …, 1490}, the free plateau in closed form (geometric mean of measured/efficiency).

Only compute-bound entries enter: arithmetic intensity (FLOPs per HBM byte, the op table's byte convention)
at least the ridge point (best measured rate of the precision)/bandwidth, so the GEMM is not memory-bound. Shapeless
entries (a published MAMF without its shape) are the plateau itself. Tile and K½ are fitted only when series
with two or more usable entries hold at least MIN_SHAPE_ENTRIES; otherwise the base profile's stay.
The written MAMF is the kernel's rate at the best measured shape, so the kernel's plateau round-trips.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..hardware import HardwareProfile
from ..kernels import REF_FLOP_PER_BYTE, hw_row, P_RATE_BF16, P_RATE_FP8
from .results import GemmEntry

TILES = ((64, 128), (128, 128), (128, 256), (256, 128))   # scripts/fit_gemm_shape.py's candidates
K_HALF_GRID = np.arange(0, 1500, 10)                      # its grid, in reference K½ (kernels.py)
MIN_SHAPE_ENTRIES = 4
FRAMEWORK = "torch"


@dataclass
class GemmPoint:
    entry: GemmEntry
    ref: object                      # whatever the caller uses to trace the entry back to its file

    @property
    def series(self) -> tuple[str, str]:
        return (self.entry.kernel, self.entry.dtype)

    @property
    def shaped(self) -> bool:
        return self.entry.m is not None


@dataclass
class GemmFit:
    plateau_flops: dict[str, float]                # dtype -> kernel plateau FLOP/s (framework series only)
    mamf: dict[str, tuple[float, tuple | None, list]]  # dtype -> (MAMF FLOP/s, shape or None, points)
    tile: tuple[int, int] | None                   # None: not identifiable, base kept
    k_half: float | None
    shape_points: list[GemmPoint] = field(default_factory=list)
    used: list[GemmPoint] = field(default_factory=list)
    log_rmse: float = 0.0
    shape_rmse: float = 0.0
    scales: dict = field(default_factory=dict)     # series -> fitted scale FLOP/s


def shape_efficiency(m, n, k, groups, tile_m, tile_n, sms, k_half):
    """Vectorised kernels.gemm_shape_efficiency (same arithmetic, numpy arrays)."""
    tm = np.ceil(m / tile_m)
    tn = np.ceil(n / tile_n)
    tiles = tm * tn * groups
    waves = np.ceil(tiles / sms)
    return (tiles / (waves * sms)) * ((m * n) / (tm * tile_m * tn * tile_n)) * k / (k + k_half)


def intensity(e: GemmEntry) -> float:
    """FLOPs per HBM byte by the op table's convention (ops._Builder.gemm, forward: BF16 output)."""
    b_in = 1 if e.dtype == "fp8" else 2
    nbytes = e.groups * ((e.m * e.k + e.k * e.n) * b_in + e.m * e.n * 2)
    return 2.0 * e.m * e.n * e.k * e.groups / nbytes


def base_plateaus(base: HardwareProfile) -> dict[str, float]:
    row = hw_row(base, sustained=False)   # microbenchmarks run at the unthrottled clock
    return {"bf16": float(row[P_RATE_BF16]), "fp8": float(row[P_RATE_FP8])}


class _Data:
    """Arrays per series for fast evaluation over the grid."""

    def __init__(self, points: list[GemmPoint]):
        self.series: dict[tuple, list[GemmPoint]] = {}
        for p in points:
            self.series.setdefault(p.series, []).append(p)
        self.arr = {}
        for s, pts in self.series.items():
            shaped = [p for p in pts if p.shaped]
            self.arr[s] = (
                np.array([p.entry.m for p in shaped], float), np.array([p.entry.n for p in shaped], float),
                np.array([p.entry.k for p in shaped], float), np.array([p.entry.groups for p in shaped], float),
                np.array([p.entry.tflops * 1e12 for p in shaped]), np.array([intensity(p.entry) for p in shaped]),
                np.array([p.entry.tflops * 1e12 for p in pts if not p.shaped]), shaped)


class Infeasible(ArithmeticError):
    """No plateau explains the measurements at this tile and K½."""


def _solve_plateau(logs_at, start: float) -> float:
    """The plateau P with log P = mean(log(measured / efficiency(P))): efficiency falls as P raises K½_eff, so
    x − mean(logs(e^x)) increases with x (slope ≥ 1 − K½/(K + K½) > 0); bisection in log space."""
    g = lambda x: x - float(np.mean(logs_at(math.exp(x))))
    lo = hi = start
    while g(lo) > 0:
        lo -= 1.0
    while g(hi) < 0:   # g levels off when K½_eff ≫ K: then no plateau explains the data at this tile and K½
        hi += 1.0
        if hi > start + 30:
            raise Infeasible
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if g(mid) < 0 else (lo, mid)
        if hi - lo < 1e-14:
            break
    return math.exp(0.5 * (lo + hi))


def _evaluate(data: _Data, tile, k_half, sms, bw, ridge: dict[str, float], plateau0: dict[str, float]):
    """Plateaus (framework series) and scales (others) for one tile and K½.
    Returns (plateaus, scales, {series: (log residuals, used points, shaped count)})."""
    plateau = dict(plateau0)
    scales, resid = {}, {}
    for s in sorted(data.arr, key=lambda s: s[0] != FRAMEWORK):   # framework series first: they set P
        m, n, k, g, meas, inten, flat, shaped = data.arr[s]
        dtype, own = s[1], s[0] == FRAMEWORK
        mask = inten >= ridge[dtype]
        if not mask.any() and not (own and flat.size):
            continue

        def logs_at(p, mask=mask, m=m, n=n, k=k, g=g, meas=meas, flat=flat, own=own):
            eff = shape_efficiency(m[mask], n[mask], k[mask], g[mask], tile[0], tile[1], sms,
                                   k_half * p / bw / REF_FLOP_PER_BYTE)
            return np.concatenate([np.log(meas[mask] / eff), np.log(flat) if own else np.zeros(0)])

        if own:
            plateau[dtype] = _solve_plateau(logs_at, float(np.mean(np.log(np.concatenate([meas, flat])))))
        logs = logs_at(plateau[dtype])
        scales[s] = float(np.exp(logs.mean()))
        used = [p for p, u in zip(shaped, mask) if u]
        if own:
            used += [p for p in data.series[s] if not p.shaped]
        resid[s] = (logs - logs.mean(), used, int(mask.sum()))
    return plateau, scales, resid


def _shape_rmse(resid) -> tuple[float, int]:
    logs = [r for r, _, n_shaped in resid.values() if n_shaped >= 2 for r in r[:n_shaped]]
    return (math.sqrt(float(np.mean(np.square(logs)))) if logs else 0.0), len(logs)


def fit_gemm(points: list[GemmPoint], base: HardwareProfile, bw_stream: float) -> GemmFit | None:
    """Plateaus, tile and K½ from GEMM entries; None if there are none."""
    if not points:
        return None
    data = _Data(points)
    sms = base.num_sms
    plateau0 = base_plateaus(base)
    best_rate = dict(plateau0)    # compute-bound = above the ridge of the best measured framework rate
    for (kernel, dtype), pts in data.series.items():
        if kernel == FRAMEWORK:
            best_rate[dtype] = max(p.entry.tflops for p in pts) * 1e12
    ridge = {d: r / bw_stream for d, r in best_rate.items()}
    informative = sum(n for s, (_, _, _, _, _, inten, _, _) in data.arr.items()
                      if (n := int((inten >= ridge[s[1]]).sum())) >= 2)
    tile, k_half = None, None
    if informative >= MIN_SHAPE_ENTRIES:
        best = (math.inf, None, None)
        for t in TILES:
            for kh in K_HALF_GRID:
                try:
                    rmse, _ = _shape_rmse(_evaluate(data, t, float(kh), sms, bw_stream, ridge, plateau0)[2])
                except Infeasible:
                    continue
                if rmse < best[0]:
                    best = (rmse, t, float(kh))
        _, tile, k_half = best
    use_tile = tile or (base.gemm_tile_m, base.gemm_tile_n)
    use_kh = base.gemm_k_half if k_half is None else k_half
    try:
        plateau, scales, resid = _evaluate(data, use_tile, use_kh, sms, bw_stream, ridge, plateau0)
    except Infeasible:
        raise ValueError(f"gemm: no plateau rate explains the measurements with tile {use_tile[0]}x{use_tile[1]} "
                         f"and K_half {use_kh:g}") from None
    fit = GemmFit({}, {}, tile, k_half, scales=scales)
    fit.shape_rmse, _ = _shape_rmse(resid)
    all_logs = np.concatenate([r for r, _, _ in resid.values()]) if resid else np.zeros(0)
    fit.log_rmse = math.sqrt(float(np.mean(np.square(all_logs)))) if all_logs.size else 0.0
    fit.used = [p for _, used, _ in resid.values() for p in used]
    fit.shape_points = [p for _, used, n in resid.values() if n >= 2 for p in used if p.shaped]
    for (kernel, dtype), pts in data.series.items():
        if kernel != FRAMEWORK or (kernel, dtype) not in scales:
            continue
        fit.plateau_flops[dtype] = plateau[dtype]
        best = max((p for p in pts if not p.shaped or p.entry.groups == 1), key=lambda p: p.entry.tflops)
        if best.shaped:
            e = best.entry
            kh = use_kh * plateau[dtype] / bw_stream / REF_FLOP_PER_BYTE
            eff = float(shape_efficiency(e.m, e.n, e.k, e.groups, use_tile[0], use_tile[1], sms, kh))
            fit.mamf[dtype] = (plateau[dtype] * eff, (e.m, e.n, e.k), pts)
        else:
            fit.mamf[dtype] = (plateau[dtype], None, pts)
    return fit

"""`costsim calibrate fit`: results files + a base profile → the cost kernel's hardware parameters, with provenance.

Fitted: GEMM plateau (as MAMF at its shape), tile and K½ (fit_gemm.py); streaming and element-wise HBM
bandwidth, the attention curves, busbw per collective and tier, latency per tier (fit_curves.py). Each fitted
number's source reads ``fit: <results file>, <date>, <environment>; … — <method>``; every other number keeps
the base profile's value and source. Values are rounded to three significant figures, but never coarser
than 0.1 TFLOPS, 1 GB/s, 0.001 TB/s, 0.01 µs (so published figures survive a round trip).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CostsimError
from ..safe_load import clip
from ..hardware import HardwareProfile, load_profile
from ..kernels import MAX_ATT_POINTS
from .fit_curves import fit_attention, fit_bandwidth, fit_collectives, fit_latency, rmse
from .fit_gemm import K_HALF_GRID, TILES, GemmPoint, fit_gemm
from .results import Results, load_results

MIN_DECIMALS = {"TFLOPS": 1, "TB/s": 3, "GB/s": 0, "us": 2}
TIERS = ("intra_node", "inter_node")


class FitError(CostsimError):
    """The results cannot make a valid profile on this base (one line)."""


@dataclass(frozen=True, eq=False)
class Source:
    """A results file as the user named it."""
    path: str
    results: Results

    def cite(self) -> str:
        return f"{self.path}, {self.results.date}, {self.results.environment.summary}"


@dataclass
class Param:
    path: str              # dotted YAML path in the profile
    value: object          # YAML units; None removes the leaf
    unit: str
    refs: list             # Sources of the entries it was fitted on
    detail: str

    @property
    def source(self) -> str:
        return "fit: " + "; ".join(s.cite() for s in self.refs) + f" -- {self.detail}"


@dataclass
class Family:
    name: str
    entries: int
    log_rmse: float
    note: str


@dataclass
class ProfileFit:
    base: HardwareProfile
    sources: list[Source]
    params: list[Param] = field(default_factory=list)
    families: list[Family] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, path: str, value, unit: str, used, detail: str) -> None:
        refs = list(dict.fromkeys(r for _, r in used))
        self.params.append(Param(path, _round(value, unit), unit, refs, detail))


def round_value(x: float, unit: str) -> float:
    """Three significant figures, never coarser than the unit's MIN_DECIMALS."""
    if x == 0 or not math.isfinite(x):
        return x
    decimals = max(MIN_DECIMALS.get(unit, 0), 2 - math.floor(math.log10(abs(x))))
    return round(x, decimals)


def _round(value, unit: str):
    if value is None or unit in ("MxNxK", "tokens"):
        return None if value is None else [int(v) for v in value]
    if unit == "count":
        return int(round(value))
    if isinstance(value, (list, tuple)):
        return [round_value(v, unit) for v in value]
    return round_value(value, unit)


def _n(count: int, noun: str, plural: str | None = None) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {plural or (noun[:-1] + 'ies' if noun.endswith('entry') else noun + 's')}"


def load_sources(paths: list[str | Path]) -> list[Source]:
    if not paths:
        raise FitError("calibrate fit: give at least one results file")
    return [Source(Path(p).as_posix(), load_results(p)) for p in paths]


def fit_profile(paths: list[str | Path], base: str) -> ProfileFit:
    """Fit every parameter the results inform; raises FitError / ResultsError / HardwareError (one line)."""
    sources = load_sources(paths)
    hw = load_profile(base)
    out = ProfileFit(hw, sources)
    by_family: dict[str, list] = {}
    for src in sources:
        for e in src.results.entries:
            by_family.setdefault(e.family, []).append((e, src))
    bw = _fit_memory(out, by_family.get("memory", []))
    _fit_gemm(out, by_family.get("gemm", []), bw)
    _fit_attention(out, by_family.get("attention", []))
    _fit_network(out, by_family.get("collective", []), by_family.get("latency", []))
    launches = by_family.get("launch", [])
    if launches:
        t = sorted(e.time_us for e, _ in launches)[len(launches) // 2]
        out.notes.append(f"launch overhead {t:.2f} us per kernel (median of {len(launches)}); not a profile "
                         f"field: the global kernel_overhead_us is fitted by `costsim validate --fit`")
    if not out.params:
        names = clip(", ".join(str(p) for p in paths), 120)
        raise FitError(f"{names}: no entries to fit (the results hold no gemm, memory, attention, collective or "
                       "latency measurements); nothing written")
    _check(out)
    return out


def _fit_memory(out: ProfileFit, samples) -> float:
    """hbm_bw_stream and hbm_bw_elementwise; returns the streaming bandwidth the GEMM fit uses (B/s)."""
    hw, bw = out.base, out.base.hbm_bw_stream
    stream = [s for s in samples if s[0].op == "stream"] or [s for s in samples if s[0].op == "read"]
    for path, group, what in (("memory.hbm_bw_stream_tbs", stream, "streaming"),
                              ("memory.hbm_bw_elementwise_tbs", [s for s in samples if s[0].op == "copy"],
                               "element-wise (copy)")):
        if not group:
            continue
        f = fit_bandwidth(group)
        ops = "/".join(sorted({e.op for e, _ in group}))
        out.add(path, f.value / 1e12, "TB/s", group,
                f"{what} bandwidth B of t = t0 + S/B over {_n(len(group), repr(ops) + ' entry')}, "
                f"log-RMSE {rmse(f.residuals):.3f}")
        out.families.append(Family(f"memory {ops}", len(group), rmse(f.residuals),
                                   f"B {f.value / 1e12:.3f} TB/s, t0 {f.extra['t0_s'] * 1e6:.1f} us"))
        if path.endswith("stream_tbs"):
            bw = f.value
    if bw > hw.hbm_bw_peak * (1 + 1e-9):
        raise FitError(f"memory.hbm_bw_stream_tbs: fitted {bw / 1e12:.3f} TB/s exceeds the base profile's peak "
                       f"{hw.hbm_bw_peak / 1e12:.3f} TB/s; use the base profile of the GPU that was measured")
    return bw


def _fit_gemm(out: ProfileFit, samples, bw: float) -> None:
    try:
        fit = fit_gemm([GemmPoint(e, r) for e, r in samples], out.base, bw)
    except ValueError as exc:
        raise FitError(str(exc)) from None
    if fit is None:
        return
    pairs = lambda pts: [(p.entry, p.ref) for p in pts]
    if fit.tile is not None:
        shape = pairs(fit.shape_points)
        detail = (f"tile {fit.tile[0]}x{fit.tile[1]}, K_half {fit.k_half:.0f}: best of tiles "
                  f"{'/'.join(f'{a}x{b}' for a, b in TILES)} x K_half {K_HALF_GRID[0]}-{K_HALF_GRID[-1]} step "
                  f"{K_HALF_GRID[1] - K_HALF_GRID[0]}, log-RMSE {fit.shape_rmse:.3f} over {len(shape)} "
                  f"compute-bound shapes, free scale per kernel")
        out.add("compute.gemm.tile_m", fit.tile[0], "count", shape, detail)
        out.add("compute.gemm.tile_n", fit.tile[1], "count", shape, detail)
        out.add("compute.gemm.k_half", fit.k_half, "count", shape, detail)
    else:
        out.notes.append("gemm: too few compute-bound shapes to fit tile and K_half; the base profile's are kept")
    for dtype, (mamf, shape, pts) in fit.mamf.items():
        used = [p for p in fit.used if p.series == ("torch", dtype)]
        plateau = fit.plateau_flops[dtype] / 1e12
        how = (f"MAMF = the kernel's rate at the best measured shape {'x'.join(map(str, shape))}" if shape
               else "no shape given, so MAMF = the plateau")
        detail = f"plateau {plateau:.1f} TFLOPS over {_n(len(used), 'compute-bound entry')}; {how}"
        out.add(f"compute.gemm.mamf_tflops.{dtype}", mamf / 1e12, "TFLOPS", pairs(used), detail)
        if shape or dtype in out.base.gemm_mamf_shape:
            best = [(p.entry, p.ref) for p in pts if p.shaped and (p.entry.m, p.entry.n, p.entry.k) == shape]
            out.add(f"compute.gemm.mamf_shape.{dtype}", shape, "MxNxK", best or pairs(used),
                    "best measured shape of the framework's matmul" if shape else "removed: best entry has no shape")
    out.families.append(Family("gemm", len(fit.used), fit.log_rmse,
                               "plateau per precision, tile, K_half; free scale per non-torch kernel"))


def _fit_attention(out: ProfileFit, samples) -> None:
    hw = out.base
    try:
        fits = fit_attention(samples, hw.attn_fwd_flops, hw.attn_bwd_flops, MAX_ATT_POINTS)
    except ValueError as exc:
        raise FitError(str(exc)) from None
    if fits is None:
        return
    fwd, bwd = fits
    seqs, f_rate = fwd.value
    _, b_rate = bwd.value
    n = len(seqs)
    out.add("compute.attention.seq_len", seqs, "tokens", fwd.used, f"sequence lengths of {len(fwd.used)} causal "
            f"hd128 forward entries")
    out.add("compute.attention.fwd_tflops", [v / 1e12 for v in f_rate], "TFLOPS", fwd.used,
            f"causal hd128 forward at {n} sequence lengths (geometric mean where several), log-RMSE "
            f"{rmse(fwd.residuals):.3f}")
    derived, measured = bwd.extra["derived"], n - bwd.extra["derived"]
    how = [f"measured causal hd128 backward at {measured} lengths"] if measured else []
    if derived:
        how.append(f"forward x {bwd.extra['ratio']:.4f} (bwd/fwd over {bwd.extra['pairs']} same-setting "
                   f"pairs) at {_n(derived, 'length')}" if bwd.extra["pairs"] else
                   f"forward x the base profile's bwd/fwd ratio {bwd.extra['ratio']:.4f} at {_n(derived, 'length')}")
    out.add("compute.attention.bwd_tflops", [v / 1e12 for v in b_rate], "TFLOPS", bwd.used or fwd.used, "; ".join(how))
    if hw.attn_fa2_flops and [float(x) for x in seqs] != [float(x) for x in hw.attn_seq_len]:
        # the base's FlashAttention-2 curve is given at the base's sequence lengths: it no longer lines up
        out.add("compute.attention.fa2_tflops", None, "TFLOPS", fwd.used,
                "removed: the measured curve has other sequence lengths than the base's FlashAttention-2 curve")
    logs = fwd.residuals + bwd.residuals
    out.families.append(Family("attention", len(logs), rmse(logs), "causal hd128 curve (fwd, bwd)"))


def _fit_network(out: ProfileFit, collectives, latencies) -> None:
    hw = out.base
    for tier in TIERS:
        base_alpha = hw.nvlink_latency_s if tier == "intra_node" else hw.net_latency_s
        lat = fit_latency([s for s in latencies if s[0].tier == tier])
        if lat is not None:
            out.add(f"{tier}.latency_us", lat.value * 1e6, "us", lat.used,
                    f"slowest of {_n(len(lat.used), 'small-message latency', 'latencies')} (collectives "
                    f"cross the slowest path)")
            out.families.append(Family(f"latency {tier}", len(lat.used), rmse(lat.residuals), "max"))
        alpha = base_alpha if lat is None else lat.value
        fits, alpha_fit, usable = fit_collectives([s for s in collectives if s[0].tier == tier], alpha,
                                                  fit_alpha=lat is None)
        if not fits:
            continue
        if lat is None and alpha_fit != alpha:
            out.add(f"{tier}.latency_us", alpha_fit * 1e6, "us", usable,
                    f"alpha of the alpha-beta fit over {len(usable)} sized collective entries")
        for coll, f in fits.items():
            algos = "/".join(sorted({e.algo for e, _ in f.used}))
            out.add(f"{tier}.busbw_gbs.{coll}", f.value / 1e9, "GB/s", f.used,
                    f"{coll} busbw over {_n(len(f.used), 'entry')} ({algos}), log-RMSE {rmse(f.residuals):.3f}")
        logs = [x for f in fits.values() for x in f.residuals]
        out.families.append(Family(f"collective {tier}", len(logs), rmse(logs),
                                   ", ".join(f"{c} {f.value / 1e9:.0f}" for c, f in fits.items()) + " GB/s"))


def _check(out: ProfileFit) -> None:
    hw = out.base
    for p in out.params:
        if p.path.startswith("compute.gemm.mamf_tflops."):
            dtype = p.path.rsplit(".", 1)[1]
            peak = hw.peak_flops.get(dtype)
            if peak is None or p.value * 1e12 > peak:
                limit = "no peak" if peak is None else f"the peak {peak / 1e12:.1f} TFLOPS"
                raise FitError(f"{p.path}: fitted {p.value} TFLOPS but the base profile {hw.name} has {limit} for "
                               f"{dtype}; use the base profile of the GPU that was measured")
        if p.path == "memory.hbm_bw_elementwise_tbs" and p.value * 1e12 > hw.hbm_bw_peak:
            raise FitError(f"{p.path}: fitted {p.value} TB/s exceeds the base profile's peak "
                           f"{hw.hbm_bw_peak / 1e12:.3f} TB/s; use the base profile of the GPU that was measured")

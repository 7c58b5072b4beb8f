"""Fits of the non-GEMM families: memory bandwidth, the attention curve, collective busbw and latency.

- Memory (α–β per kernel kind): t(S) = t0 + S/B, fitted in log space of the achieved bandwidth; figures
  without a size are large-transfer plateaus (B itself). The profile keeps B: `stream` (a named streaming
  kernel) or else `read` gives hbm_bw_stream (memory-bound GEMMs and attention read their operands);
  `copy` gives hbm_bw_elementwise (framework element-wise ops read and write, like a copy).
- Attention: the kernel's curve is FlashAttention forward, causal, head dim 128, piecewise linear in log2(seq)
  (kernels._attn_rate): the fit takes those entries' rates at their sequence lengths (geometric mean where
  several); the backward curve is the measured causal hd128 backward where present, else forward × the
  geometric mean of backward/forward over same-setting pairs (head dim 128 first, any head dim if none).
- Collectives (α–β, formulas.md; the kernel's form): t = steps·α + factor·S / busbw, steps 2(n−1) for
  all-reduce, 1 for p2p, n−1 otherwise. Per tier, α is the slowest measured small-message latency (a job's
  collectives cross the slowest path), or fitted with the busbw's from sized entries, or the base's. In-switch
  and in-network reductions (NVLS, SHARP) and latency-optimised kernels are left out: the kernel models
  neither. Plateau figures (no size) pool by geometric mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..fit import nelder_mead

EXCLUDED_ALGOS = frozenset({"nvls", "sharp", "low_latency"})
CURVE_HEAD_DIM = 128
STEPS = {"all_reduce": lambda n: 2.0 * (n - 1), "p2p": lambda n: 1.0}
FACTOR = {"all_reduce": lambda n: 2.0 * (n - 1) / n, "p2p": lambda n: 1.0}


def steps(coll: str, n: int) -> float:
    return STEPS.get(coll, lambda n: n - 1.0)(n)


def factor(coll: str, n: int) -> float:
    return FACTOR.get(coll, lambda n: (n - 1.0) / n)(n)


def geomean(values) -> float:
    return float(math.exp(np.mean(np.log(np.asarray(values, float)))))


def rmse(logs) -> float:
    logs = np.asarray(logs, float)
    return math.sqrt(float(np.mean(logs ** 2))) if logs.size else 0.0


@dataclass
class CurveFit:
    """A fitted quantity with the entries behind it and its residuals (log of predicted/measured)."""
    value: object
    used: list = field(default_factory=list)     # (entry, ref) pairs
    residuals: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


# -- memory ------------------------------------------------------------------------------------------------

def fit_bandwidth(samples) -> CurveFit:
    """B (B/s) and launch floor t0 (s) of t = t0 + S/B over (entry, ref) memory samples."""
    sized = [(e.bytes, e.gbps * 1e9) for e, _ in samples if e.bytes]
    flat = [e.gbps * 1e9 for e, _ in samples if not e.bytes]
    s = np.array([b for b, _ in sized], float)
    bw = np.array([g for _, g in sized], float)

    def logs(b_bw: float, t0: float) -> np.ndarray:
        pred = s / (t0 + s / b_bw)
        return np.concatenate([np.log(pred / bw), np.log(b_bw / np.array(flat, float))])

    if not sized:
        b, t0 = geomean(flat), 0.0
    else:
        b0 = float(np.max(bw)) if not flat else geomean(flat + [float(np.max(bw))])
        f = lambda x: float(np.mean(logs(math.exp(x[0]), abs(x[1]) * 1e-6) ** 2))
        x, _ = nelder_mead(f, np.array([math.log(b0), 1.0]), np.array([0.2, 2.0]), iters=600, tol=1e-14)
        b, t0 = math.exp(x[0]), abs(x[1]) * 1e-6
    return CurveFit(b, list(samples), list(logs(b, t0)), {"t0_s": t0})


# -- attention ---------------------------------------------------------------------------------------------

def _curve_key(e) -> bool:
    return e.causal and e.head_dim == CURVE_HEAD_DIM and e.head_dim_v in (None, CURVE_HEAD_DIM)


def fit_attention(samples, base_fwd, base_bwd, max_points: int) -> tuple[CurveFit, CurveFit] | None:
    """(forward curve, backward curve), each value (seq tuple, FLOP/s tuple); None without causal hd128 fwd."""
    fwd = [(e, r) for e, r in samples if e.direction == "fwd" and _curve_key(e)]
    if not fwd:
        return None
    seqs = sorted({e.seq_len for e, _ in fwd})
    if len(seqs) > max_points:
        raise ValueError(f"attention: {len(seqs)} sequence lengths of causal hd{CURVE_HEAD_DIM} forward entries; "
                         f"the cost kernel takes at most {max_points}")
    f_rate = [geomean([e.tflops * 1e12 for e, _ in fwd if e.seq_len == s]) for s in seqs]
    bwd = {s: [(e, r) for e, r in samples if e.direction == "bwd" and _curve_key(e) and e.seq_len == s]
           for s in seqs}
    ratio, pairs = _bwd_ratio(samples, base_fwd, base_bwd)
    b_rate = [geomean([e.tflops * 1e12 for e, _ in bwd[s]]) if bwd[s] else f * ratio for s, f in zip(seqs, f_rate)]
    fwd_fit = CurveFit((tuple(seqs), tuple(f_rate)), fwd,
                       [math.log(f_rate[seqs.index(e.seq_len)] / (e.tflops * 1e12)) for e, _ in fwd])
    measured_b = [x for s in seqs for x in bwd[s]]
    bwd_fit = CurveFit((tuple(seqs), tuple(b_rate)), measured_b + pairs,
                       [math.log(b_rate[seqs.index(e.seq_len)] / (e.tflops * 1e12)) for e, _ in measured_b],
                       {"ratio": ratio, "derived": sum(1 for s in seqs if not bwd[s]), "pairs": len(pairs) // 2})
    return fwd_fit, bwd_fit


def _bwd_ratio(samples, base_fwd, base_bwd) -> tuple[float, list]:
    """Geometric mean of bwd/fwd over same-setting pairs, head dim 128 first; else the base curves' ratio."""
    def setting(e):
        return (e.kernel, e.causal, e.head_dim, e.head_dim_v, e.seq_len)
    fwd = {}
    for e, r in samples:
        if e.direction == "fwd":
            fwd.setdefault(setting(e), []).append((e, r))
    pairs = [(fwd[setting(e)], (e, r)) for e, r in samples if e.direction == "bwd" and setting(e) in fwd]
    for wanted in (lambda e: e.head_dim == CURVE_HEAD_DIM, lambda e: True):
        chosen = [(f, b) for f, b in pairs if wanted(b[0])]
        if chosen:
            ratios = [b[0].tflops / geomean([x.tflops for x, _ in f]) for f, b in chosen]
            used = [x for f, b in chosen for x in (*f, b)]
            return geomean(ratios), used
    return geomean(np.array(base_bwd) / np.array(base_fwd)), []


# -- collectives -------------------------------------------------------------------------------------------

def fit_latency(samples) -> CurveFit | None:
    """α (s) of one tier: the slowest measured small-message latency."""
    if not samples:
        return None
    worst = max(e.time_us for e, _ in samples) * 1e-6
    return CurveFit(worst, list(samples), [math.log(worst / (e.time_us * 1e-6)) for e, _ in samples])


def predicted_busbw(coll: str, n: int, size: float | None, alpha: float, busbw: float) -> float:
    """busbw the α–β model gives at `size` bytes (nccl-tests size); no size: the plateau."""
    if not size:
        return busbw
    wire = factor(coll, n) * size
    return wire / (steps(coll, n) * alpha + wire / busbw)


def fit_collectives(samples, alpha: float, fit_alpha: bool) -> tuple[dict[str, CurveFit], float, list]:
    """busbw (B/s) per collective of one tier, and α (fitted if `fit_alpha` and sized entries exist)."""
    usable = [(e, r) for e, r in samples if e.algo not in EXCLUDED_ALGOS]
    names = sorted({e.collective for e, _ in usable})
    if not names:
        return {}, alpha, []
    by = {c: [(e, r) for e, r in usable if e.collective == c] for c in names}
    sized = any(e.size_bytes for e, _ in usable)
    fit_alpha = fit_alpha and sized

    # When every transfer is latency-bound (tiny messages, e.g. a CPU --quick run) the bandwidth is not
    # identifiable and the fit would run off to absurd values: cap it at 10× the best busbw any entry reached.
    caps = [math.log(10 * max(e.busbw_gbs for e, _ in by[c]) * 1e9) for c in names]

    def bw(x: np.ndarray, i: int) -> float:
        return math.exp(min(x[i], caps[i]))

    def logs(x: np.ndarray) -> dict[str, np.ndarray]:
        a = math.exp(x[-1]) if fit_alpha else alpha
        return {c: np.array([math.log(predicted_busbw(c, e.ranks, e.size_bytes, a, bw(x, i))
                                      / (e.busbw_gbs * 1e9)) for e, _ in by[c]]) for i, c in enumerate(names)}

    x0 = [math.log(max(e.busbw_gbs for e, _ in by[c]) * 1e9) for c in names]
    if fit_alpha:
        x0.append(math.log(alpha if alpha > 0 else 5e-6))
    if not sized:   # plateaus only: closed form
        x = np.array([math.log(geomean([e.busbw_gbs * 1e9 for e, _ in by[c]])) for c in names])
    else:
        f = lambda x: float(np.mean(np.concatenate(list(logs(x).values())) ** 2))
        x, _ = nelder_mead(f, np.array(x0), np.full(len(x0), 0.3), iters=3000, tol=1e-14)
    res = logs(x)
    fits = {c: CurveFit(bw(x, i), by[c], list(res[c])) for i, c in enumerate(names)}
    return fits, (math.exp(x[-1]) if fit_alpha else alpha), usable

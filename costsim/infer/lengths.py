"""Prompt lengths that differ from request to request: a lognormal spread around the mean, as classes.

Prefill attention over a prompt of L tokens costs ∝ L² (every token attends to those before it: FlashAttention,
Dao et al. 2022, causal; full attention — a sliding window caps it), while GEMMs, norms and the KV cache grow
∝ L. A batch of unequal prompts therefore costs more attention than the same tokens in prompts of the mean
length: E[L²] / E[L]² = exp(σ²) for a lognormal of log-sd σ. The spread is carried as Gauss–Hermite classes
(weight, length / mean), exact for E[L] and within 2e-8 of E[L²] up to σ = 1.5 (3e-5 at σ = 2, the schema's
limit), so each class's attention is priced at its own length (the FlashAttention rate depends on it).

No prompt is longer than the model's context (max_position_embeddings): classes above it are cut to it and the
others stretched by a common factor so the mean stays the phase's (a truncated lognormal, to first order).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

NODES = 16      # Gauss–Hermite nodes: E[L²] within 2e-8 of exp(σ²) at σ ≤ 1.5 (tests/test_prompt_spread.py)
MAX_SIGMA = 2.0
EQUAL = ((1.0, 1.0),)


@lru_cache(maxsize=64)
def prompt_classes(sigma: float, cap: float = math.inf) -> tuple[tuple[float, float], ...]:
    """((weight, length over the mean), ...) for a lognormal of log-sd `sigma` with mean 1, no length above `cap`
    (the context limit over the mean prompt, ≥ 1); weights sum to 1. sigma 0: every prompt has the mean length."""
    if not 0 <= sigma <= MAX_SIGMA:
        raise ValueError(f"prompt_sigma={sigma} must be a number in [0, {MAX_SIGMA:g}]")
    if not cap >= 1:
        raise ValueError(f"the mean prompt is longer than the model's context (cap {cap:g} < 1)")
    if sigma == 0:
        return EQUAL
    x, w = np.polynomial.hermite.hermgauss(NODES)          # ∫ e^{-x²} f(x) dx
    w = w / math.sqrt(math.pi)                             # z = √2·x is standard normal
    scale = np.exp(sigma * math.sqrt(2.0) * x - sigma * sigma / 2.0)
    scale = scale / float(np.dot(w, scale))                # mean exactly 1
    if scale.max() > cap:
        # stretch by k so that Σ w·min(k·x, cap) = 1: monotone in k, from < 1 at k = 1 to cap ≥ 1 at k = cap/min
        lo, hi = 1.0, cap / float(scale.min())
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if float(np.dot(w, np.minimum(mid * scale, cap))) < 1.0 else (lo, mid)
        scale = np.minimum(hi * scale, cap)
    return tuple((float(wi), float(si)) for wi, si in zip(w, scale) if wi > 1e-15)

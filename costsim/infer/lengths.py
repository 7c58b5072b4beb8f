"""Prompt lengths that differ from request to request: a lognormal spread around the mean, as classes.

Prefill attention over a prompt of L tokens costs ∝ L² (every token attends to those before it: FlashAttention,
Dao et al. 2022, causal), while GEMMs, norms and the KV cache grow ∝ L. A batch of unequal prompts therefore costs
more attention than the same tokens in prompts of the mean length: E[L²] / E[L]² = exp(σ²) for a lognormal of
log-sd σ. The spread is carried as Gauss–Hermite classes (weight, length / mean), exact for E[L] and within 2e-8 of
E[L²] up to σ = 1.5 (3e-5 at σ = 2, the schema's limit), so each class's attention is priced at its own length (the FlashAttention
rate depends on it).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

NODES = 16      # Gauss–Hermite nodes: E[L²] within 2e-8 of exp(σ²) at σ ≤ 1.5 (tests/test_prompt_spread.py)
EQUAL = ((1.0, 1.0),)


@lru_cache(maxsize=64)
def prompt_classes(sigma: float) -> tuple[tuple[float, float], ...]:
    """((weight, length over the mean), ...) for a lognormal of log-sd `sigma` with mean 1; weights sum to 1.
    sigma 0: every prompt has the mean length."""
    if sigma < 0 or not math.isfinite(sigma):
        raise ValueError(f"prompt_sigma={sigma} must be a finite number ≥ 0")
    if sigma == 0:
        return EQUAL
    x, w = np.polynomial.hermite.hermgauss(NODES)          # ∫ e^{-x²} f(x) dx
    w = w / math.sqrt(math.pi)                             # z = √2·x is standard normal
    scale = np.exp(sigma * math.sqrt(2.0) * x - sigma * sigma / 2.0)
    scale = scale / float(np.dot(w, scale))                # mean exactly 1
    return tuple((float(wi), float(si)) for wi, si in zip(w, scale) if wi > 1e-15)

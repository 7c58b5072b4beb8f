"""Token load imbalance across expert-parallel ranks: the max/mean of routed tokens in one micro-batch.

A MoE layer's grouped expert GEMMs and its all-to-all finish when the most loaded EP rank finishes, so the
critical path scales with max/mean load, not with the mean (model FLOPs do not change).

Default — the statistical floor of perfectly balanced routing: every routed copy lands on a uniformly random
EP rank, so one rank's load is Binomial(N, 1/n) for N copies over n ranks, and the maximum of n such loads is
μ + √(2·μ·ln n)·(1 + o(1)) with μ = N/n (Raab & Steger 1998, "Balls into Bins — A Simple and Tight Analysis",
Theorem 1, the m ≫ n·log n regime). Real routers are skewed above this floor (a load-balancing loss or
DeepSeek-V3's bias adjustment (V3 report §2.1.2) keeps the skew small but not zero): give the measured ratio as
`moe.load_imbalance`. A token-dropping capacity factor caps each expert's load at factor × mean, so it bounds
the imbalance (Fedus et al. 2021, Switch Transformer §2.2); dropless routing (the default) has no cap.
"""
from __future__ import annotations

import math


def balanced_floor(copies_per_rank: float, ranks: int) -> float:
    """Expected max/mean load over `ranks` EP ranks with `copies_per_rank` routed copies each on average."""
    if ranks <= 1 or copies_per_rank <= 0:
        return 1.0
    return 1.0 + math.sqrt(2.0 * math.log(ranks) / copies_per_rank)


def load_imbalance(copies_per_rank: float, ranks: int, given: float | None, capacity_factor: float | None) -> float:
    """max/mean routed load per EP rank: the user's measured ratio, else the balanced floor; capped by the
    capacity factor when tokens beyond it are dropped."""
    imb = given if given is not None else balanced_floor(copies_per_rank, ranks)
    if capacity_factor is not None:
        imb = min(imb, max(capacity_factor, 1.0))
    return imb

"""The few global efficiency parameters the cost model fits on the public set (costsim/fitted.json).

- compute_derate: sustained tensor-core throughput inside a training step as a fraction of the isolated
  microbenchmark (MAMF, FlashAttention): clocks under whole-node power, kernel interference, layouts.
- kernel_overhead_us: launch and framework time per kernel on the critical path.
- overlap_efficiency: fraction of communication scheduled to overlap compute that actually hides.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources

from .scenario import Efficiency as EfficiencyOverride


@dataclass(frozen=True)
class Efficiency:
    compute_derate: float = 1.0
    kernel_overhead_s: float = 0.0
    overlap_efficiency: float = 1.0


def fitted() -> Efficiency:
    raw = json.loads(resources.files("costsim").joinpath("fitted.json").read_text())
    return Efficiency(raw["compute_derate"], raw["kernel_overhead_us"] * 1e-6, raw["overlap_efficiency"])


def with_overrides(base: Efficiency, o: EfficiencyOverride) -> Efficiency:
    changes = {}
    if o.compute_derate is not None:
        changes["compute_derate"] = o.compute_derate
    if o.kernel_overhead_us is not None:
        changes["kernel_overhead_s"] = o.kernel_overhead_us * 1e-6
    if o.overlap_efficiency is not None:
        changes["overlap_efficiency"] = o.overlap_efficiency
    return replace(base, **changes)

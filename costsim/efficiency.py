"""The few global efficiency parameters the cost model fits on the public set (costsim/fitted.json).

Each has a physical meaning and a plausible range with a source (the fit's bounds are those ranges; a
parameter that ends at a bound is a missing mechanism, not a result):

- compute_derate: sustained tensor-core throughput inside a training step as a fraction of the isolated
  microbenchmark (MAMF, FlashAttention): clocks under whole-node power and heat, layouts, kernel selection.
  Range 0.7–1.0: MAMF is itself a sustained best-shape rate (Bekman, ml-engineering "MAMF finder"), and
  H100 clocks under sustained all-GPU load sit 5–25% below boost (NVIDIA H100 datasheet: 1,980 MHz boost vs
  1,590 MHz base for SXM5 with power capping at 700 W).
- kernel_overhead_us: launch and framework time per kernel on the critical path. Range 0–20 µs: CUDA launch
  latency is ~3–5 µs, eager PyTorch dispatch ~10–20 µs per op (PyTorch performance tuning guide; CUDA graphs
  remove most of it).
- overlap_slowdown: fraction of compute throughput lost while a communication kernel runs beside it, because
  NCCL kernels occupy SMs (1 per channel, 8–32 channels by default on NVLink/IB, NCCL docs NCCL_MIN/MAX_NCHANNELS)
  and compete for HBM bandwidth. Range 0–0.4: 8–32 of 132 SMs is 6–24% of the GPU, plus the memory
  contention (Jangda et al., ASPLOS '22, "Breaking the Computation and Communication Abstraction Barrier",
  show overlapped kernels slowing each other for both reasons). Not charged where SMs are reserved for communication for the whole step
  (`comm_sms`), which is the explicit form of the same cost.

It replaces the former catch-all `overlap_efficiency` (share of overlappable communication that hides): the
scenario key is kept as an alias, overlap_slowdown = 1 − overlap_efficiency.
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
    overlap_slowdown: float = 0.0


def load_fitted(record: dict) -> Efficiency:
    return Efficiency(record["compute_derate"], record["kernel_overhead_us"] * 1e-6, record["overlap_slowdown"])


def fitted_record() -> dict:
    return json.loads(resources.files("costsim").joinpath("fitted.json").read_text())


def fitted() -> Efficiency:
    return load_fitted(fitted_record())


def with_overrides(base: Efficiency, o: EfficiencyOverride) -> Efficiency:
    changes = {}
    if o.compute_derate is not None:
        changes["compute_derate"] = o.compute_derate
    if o.kernel_overhead_us is not None:
        changes["kernel_overhead_s"] = o.kernel_overhead_us * 1e-6
    if o.overlap_efficiency is not None:
        changes["overlap_slowdown"] = 1.0 - o.overlap_efficiency
    if o.overlap_slowdown is not None:
        changes["overlap_slowdown"] = o.overlap_slowdown
    return replace(base, **changes)

"""The scenario's `reliability:` block and the closed forms of checkpoint/restart (Young 1974, Daly 2006).

Sources: docs/reference/formulas.md, "Failures, checkpoints, restarts". Times in seconds inside,
except where a name says `_h` (hours, as users write MTBF) or `_gbps` (GB/s, 1e9 bytes per second).
"""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from ..fields import Float, Int


# Llama 3 405B (arXiv 2407.21783 §3.3.4): 419 unexpected interruptions in 54 days on 16,384 H100.
# A job's failures are the sum of its GPUs' (independent, exponential) failures, so per-GPU MTBF =
# 54 d × 24 h × 16,384 GPUs / 419 ≈ 50,677 h ≈ 5.8 years (job MTBF ≈ 1296 h / 419 ≈ 3.1 h).
LLAMA3_DAYS = 54
LLAMA3_GPUS = 16_384
LLAMA3_UNEXPECTED_INTERRUPTIONS = 419
LLAMA3_GPU_MTBF_H = LLAMA3_DAYS * 24 * LLAMA3_GPUS / LLAMA3_UNEXPECTED_INTERRUPTIONS

# Assumption, not a measurement: 100 GB/s aggregate write bandwidth of a parallel file system to one job.
# Set yours; it sets the checkpoint write time δ = checkpoint_bytes / bandwidth.
DEFAULT_CHECKPOINT_WRITE_GBPS = 100.0
# Assumption, not a measurement: 15 min from a failure to training again (detect, drain and replace the
# node, relaunch, load the last checkpoint). formulas.md gives no restart time.
DEFAULT_RESTART_S = 15 * 60.0
# For scale: Llama 3 reports > 90% effective training time; a 405B checkpoint (5.67 TB) on 16,384 GPUs with
# these defaults simulates a goodput of ≈ 0.83 (scripts/bench_sim_run.py), so they lean pessimistic: > 90%
# needs restart + half an interval ≲ 10 min per failure, i.e. faster storage and restarts than assumed here.


MAX_REPLICATES = 1000


class Reliability(BaseModel):
    """Failures, checkpoints, restarts and stragglers of a whole run (the scenario's `reliability:` block)."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu_mtbf_hours: Float = Field(
        default=LLAMA3_GPU_MTBF_H, ge=1e-3,
        description="mean time between unexpected failures per GPU, hours; default from Llama 3 "
                    "(419 in 54 days on 16,384 H100 ≈ 50,677 h); .inf switches failures off")
    checkpoint_interval_s: Float | None = Field(
        default=None, ge=1e-3, le=1e9, allow_inf_nan=False,
        description="compute seconds between checkpoints; None = Daly's optimum")
    checkpoint_write_gbps: Float = Field(
        default=DEFAULT_CHECKPOINT_WRITE_GBPS, ge=1e-3, le=1e7, allow_inf_nan=False,
        description="aggregate storage write bandwidth for the job, GB/s (assumed 100; set yours)")
    checkpoint_bytes: Float | None = Field(
        default=None, gt=0, le=1e18, allow_inf_nan=False,
        description="checkpoint size in bytes; None = BF16 weights + FP32 master + Adam moments of the model")
    restart_s: Float = Field(
        default=DEFAULT_RESTART_S, ge=0, le=1e7, allow_inf_nan=False,
        description="seconds from a failure to training again (assumed 900 s)")
    straggler_fraction: Float = Field(
        default=0.0, ge=0, le=1, allow_inf_nan=False, description="probability that a GPU is a straggler (per replicate)")
    straggler_slowdown: Float = Field(
        default=1.0, ge=1, le=100, allow_inf_nan=False,
        description="step-time factor when at least one GPU straggles (the step waits for the slowest)")
    replicates: Int = Field(default=16, ge=1, le=MAX_REPLICATES, description="Monte-Carlo replicates")
    seed: Int = Field(default=0, ge=0, le=2**63 - 1, description="seed of the Monte-Carlo replicates")


def checkpoint_bytes_for(params: float, moment_dtype: str = "fp32") -> float:
    """Checkpoint bytes of a model: BF16 weights + FP32 master weights + Adam m and v, per parameter."""
    from ..memory import MASTER_BYTES, MOMENT_BYTES, WEIGHT_BYTES   # here: the scenario imports this module
    return params * (WEIGHT_BYTES + MASTER_BYTES + MOMENT_BYTES[moment_dtype])


def job_mtbf_s(gpu_mtbf_h: float, num_gpus: int) -> float:
    """Job MTBF in seconds: independent exponential GPU failures add rates, so M = MTBF_gpu / N."""
    if num_gpus <= 0:
        raise ValueError(f"num_gpus must be positive (got {num_gpus})")
    return gpu_mtbf_h * 3600.0 / num_gpus


def young_interval(delta_s: float, mtbf_s: float) -> float:
    """Young's optimal compute seconds between checkpoints: τ* = √(2δM) (formulas.md)."""
    return math.sqrt(2.0 * delta_s * mtbf_s)


def daly_interval(delta_s: float, mtbf_s: float) -> float:
    """Daly's optimum, seconds: τ* = √(2δM)·[1 + ⅓√(δ/2M) + (1/9)(δ/2M)] − δ for δ < 2M, else M (Daly 2006)."""
    if math.isinf(mtbf_s):
        return math.inf
    if delta_s >= 2.0 * mtbf_s:
        return mtbf_s
    x = delta_s / (2.0 * mtbf_s)
    return math.sqrt(2.0 * delta_s * mtbf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta_s


def analytic_waste_fraction(tau_s: float, delta_s: float, mtbf_s: float, restart_s: float) -> float:
    """First-order wasted fraction of wall clock: δ/τ + τ/(2M) + R/M (formulas.md; valid for δ ≪ τ ≪ M)."""
    checkpointing = delta_s / tau_s          # writing a checkpoint every τ of compute
    rework = tau_s / (2.0 * mtbf_s)          # a failure loses half an interval on average
    restarting = restart_s / mtbf_s          # one restart per MTBF
    return checkpointing + rework + restarting

"""Whole-run Monte-Carlo: phases × steps on N GPUs with failures, checkpoints, restarts and stragglers.

The step is not simulated here (its time comes in with each phase); the run is. A job process computes
segments of whole steps, each ending with a checkpoint write; a failure process draws exponential
inter-arrival times (rate N / per-GPU MTBF, formulas.md) and interrupts the job (SimPy's machine-shop
pattern). A failure, during compute or a checkpoint write, loses everything since the last completed
checkpoint and costs a restart; a failure during a restart starts the restart over.

Granularity: between two failures nothing random happens, so the job yields one timeout to the end of the
run and, when interrupted, finds the last completed checkpoint in the cumulative segment ends. Events are
proportional to failures, not to steps or checkpoints: a 54-day run on 16,384 GPUs (~400 failures) takes
milliseconds per replicate (scripts/bench_sim_run.py).

Segments: within a phase, a checkpoint every k = max(1, round(τ / step time)) steps; each phase ends with a
checkpoint (phase changes restart from one), so the last segment of a phase may be shorter.

Stragglers: each GPU is a straggler with probability `straggler_fraction`, drawn once per replicate
(Binomial(N, f)). Every step waits for the slowest GPU, so if at least one straggles, every step of that
replicate takes `straggler_slowdown` times longer; with N in the thousands any f ≳ 1/N slows nearly every
replicate. Useful work is counted at the nominal step time, so a straggler's slowdown lowers goodput.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import numpy as np
import simpy

from ..errors import CostsimError
from .reliability import Reliability, analytic_waste_fraction, daly_interval, job_mtbf_s


class RunPhase(NamedTuple):
    """A training phase as the run sees it: `steps` steps of `step_time_s` seconds each."""
    name: str
    steps: int
    step_time_s: float


@dataclass(frozen=True)
class ReplicateResult:
    """One Monte-Carlo replicate. gpu_hours = wall clock × N: lost work, restarts and writes included."""
    wall_clock_s: float
    gpu_hours: float
    useful_gpu_hours: float     # steps × nominal step time × N
    goodput: float              # useful / total
    failures: int               # including failures during a restart
    checkpoints: int            # completed writes, rewrites after a rollback included
    lost_work_s: float          # compute and partial writes since the last checkpoint, summed over failures
    restart_s: float            # time spent restarting, interrupted restarts included
    checkpoint_s: float         # time spent on completed checkpoint writes
    stragglers: int             # straggling GPUs drawn for this replicate


@dataclass(frozen=True)
class Stat:
    mean: float
    p10: float
    p90: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "Stat":
        a = np.asarray(list(values), dtype=float)   # (replicates,)
        p10, p90 = np.percentile(a, [10, 90])
        return cls(float(a.mean()), float(p10), float(p90))

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "p10": self.p10, "p90": self.p90}


@dataclass(frozen=True)
class RunSummary:
    """Distribution over replicates, and the closed-form figures the run used."""
    replicates: tuple[ReplicateResult, ...]
    num_gpus: int
    seed: int
    checkpoint_interval_s: float    # τ, compute seconds between checkpoints (target; rounded to whole steps)
    checkpoint_write_s: float       # δ
    job_mtbf_h: float               # M
    analytic_waste_fraction: float  # δ/τ + τ/(2M) + R/M
    wall_clock_days: Stat
    gpu_hours: Stat
    goodput: Stat
    failures: Stat

    def as_dict(self) -> dict:
        """Plain floats and ints for JSON (an infinite MTBF or interval becomes None)."""
        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None
        return {
            "wall_clock_days": self.wall_clock_days.as_dict(),
            "gpu_hours": self.gpu_hours.as_dict(),
            "goodput": self.goodput.as_dict(),
            "failures": self.failures.as_dict(),
            "checkpoint_interval_s": num(self.checkpoint_interval_s),
            "checkpoint_write_s": num(self.checkpoint_write_s),
            "job_mtbf_h": num(self.job_mtbf_h),
            "analytic_waste_fraction": num(self.analytic_waste_fraction),
            "replicates": len(self.replicates),
            "seed": self.seed,
        }


@dataclass
class _Tally:
    failures: int = 0
    checkpoints: int = 0
    lost_work_s: float = 0.0
    restart_s: float = 0.0
    wall_clock_s: float = 0.0


# Bounds that keep a hostile reliability block from hanging the simulation (events grow with failures).
MAX_EXPECTED_FAILURES = 20_000      # per replicate; the shipped scenarios expect tens to hundreds
MAX_FAILURE_EVENTS = 500_000        # replicates × expected failures: ~13 µs each, so seconds of SimPy
MAX_SEGMENTS = 10_000_000           # checkpoints in the run (one array entry each)


class NoProgress(CostsimError):
    """The run cannot finish in any useful simulated time: failures come faster than it checkpoints and restarts."""


def _segments(phases: list[RunPhase], tau_s: float, slowdown: float) -> list[tuple[int, int, float]]:
    """(steps per segment k, segment count, step seconds) per phase and remainder."""
    out = []
    for ph in phases:
        step_s = ph.step_time_s * slowdown
        k = ph.steps if math.isinf(tau_s) else min(ph.steps, max(1, round(min(tau_s / step_s, 1e18))))
        n_full, rest = divmod(ph.steps, k)
        out.append((k, n_full, step_s))
        if rest:
            out.append((rest, 1, step_s))
    return out


def _check_progress(phases: list[RunPhase], tau_s: float, delta_s: float, mtbf_s: float, rel: Reliability,
                    num_gpus: int, slowdown: float) -> float:
    """Expected failures per replicate, Σ over segments (e^{L/M} − 1)·e^{R/M}; NoProgress past the bound."""
    segs = _segments(phases, tau_s, slowdown)
    count = sum(n for _, n, _ in segs)
    if count > MAX_SEGMENTS:
        raise NoProgress(f"reliability: the run has {count:,} checkpoints; the limit is {MAX_SEGMENTS:,} "
                         "(raise checkpoint_interval_s or give fewer steps)")
    if math.isinf(mtbf_s):
        return 0.0
    restart_factor = math.exp(min(rel.restart_s / mtbf_s, 700.0))
    expected = 0.0
    worst = max(segs, key=lambda s: s[0] * s[2])
    for k, n, step_s in segs:
        x = (k * step_s + delta_s) / mtbf_s
        expected += n * (math.expm1(min(x, 700.0)) * restart_factor)
    if expected > MAX_EXPECTED_FAILURES:
        k, _, step_s = worst
        stuck = k * step_s + delta_s + rel.restart_s >= mtbf_s
        why = "failures come faster than the run can checkpoint and restart" if stuck else \
            "the run would barely progress"
        raise NoProgress(
            f"reliability: {why}: job MTBF {mtbf_s:.4g} s (gpu_mtbf_hours {rel.gpu_mtbf_hours:g} / {num_gpus:,} "
            f"GPUs) vs {k * step_s:.4g} s of compute + {delta_s:.4g} s checkpoint write between checkpoints and a "
            f"{rel.restart_s:.4g} s restart: about {expected:.3g} failures expected per replicate (the simulator "
            f"stops at {MAX_EXPECTED_FAILURES:,}); raise gpu_mtbf_hours or checkpoint_write_gbps, or lower "
            "restart_s, checkpoint_bytes or straggler_slowdown")
    return expected


def _segment_ends(phases: list[RunPhase], tau_s: float, delta_s: float, slowdown: float) -> np.ndarray:
    """Failure-free wall seconds at the end of each segment (compute + its checkpoint write); (n_segments,)."""
    parts = [np.full(n, k * step_s + delta_s) for k, n, step_s in _segments(phases, tau_s, slowdown)]
    return np.cumsum(np.concatenate(parts))


def _restart(env: simpy.Environment, restart_s: float, tally: _Tally):
    """Restart after a failure; another failure meanwhile starts it over."""
    while True:
        start = env.now
        try:
            yield env.timeout(restart_s)
            tally.restart_s += restart_s
            return
        except simpy.Interrupt:
            tally.restart_s += env.now - start
            tally.failures += 1
            if tally.failures > 10 * MAX_EXPECTED_FAILURES:
                raise NoProgress(f"reliability: restarts never finish: {tally.failures:,} failures during "
                                 f"restarts of {restart_s:.4g} s; it cannot make progress")


def _job(env: simpy.Environment, seg_end: np.ndarray, restart_s: float, tally: _Tally):
    """Run from the last checkpoint to the end; on a failure roll back to the last completed checkpoint."""
    n = len(seg_end)
    done = 0        # segments whose checkpoint write has completed
    pos_s = 0.0     # failure-free run time at that checkpoint
    while done < n:
        start = env.now
        try:
            yield env.timeout(seg_end[-1] - pos_s)
            tally.checkpoints += n - done
            done = n
        except simpy.Interrupt:
            reached_s = pos_s + (env.now - start)
            k = int(np.searchsorted(seg_end, reached_s, side="right"))   # checkpoints completed by now
            tally.checkpoints += k - done
            done = k
            if done == n:   # the failure came with the final write: the run is over
                return
            new_pos_s = float(seg_end[k - 1]) if k else 0.0
            tally.lost_work_s += reached_s - new_pos_s
            pos_s = new_pos_s
            tally.failures += 1
            if tally.failures > 10 * MAX_EXPECTED_FAILURES:    # the horizon: never loop without end
                raise NoProgress(f"reliability: the run did not finish within {tally.failures:,} failures "
                                 f"({env.now / 86400:.3g} simulated days); it cannot make progress")
            yield from _restart(env, restart_s, tally)


def _failures(env: simpy.Environment, rng: np.random.Generator, mtbf_s: float, job: simpy.Process):
    """Poisson failures of the whole job: exponential inter-arrival times of mean M."""
    while True:
        yield env.timeout(rng.exponential(mtbf_s))
        if not job.is_alive:
            return
        job.interrupt("failure")


def _replicate(seg_end: np.ndarray, rng: np.random.Generator, mtbf_s: float, restart_s: float) -> _Tally:
    env = simpy.Environment()
    tally = _Tally()
    job = env.process(_job(env, seg_end, restart_s, tally))
    if math.isfinite(mtbf_s):
        env.process(_failures(env, rng, mtbf_s, job))
    env.run(until=job)
    tally.wall_clock_s = float(env.now)
    return tally


def _phases(phases) -> list[RunPhase]:
    out = []
    for p in phases:
        p = p if isinstance(p, RunPhase) else RunPhase(*p)
        if p.steps < 0 or not p.step_time_s > 0 or not math.isfinite(p.step_time_s):
            raise ValueError(f"phase {p.name}: steps must be ≥ 0 and step_time_s positive and finite "
                             f"(got {p.steps}, {p.step_time_s})")
        if p.steps:
            out.append(p)
    if not out:
        raise ValueError("the run has no steps to simulate")
    return out


def simulate_run(phases, num_gpus: int, checkpoint_bytes: float, rel: Reliability) -> RunSummary:
    """Monte-Carlo of a whole run over `rel.replicates` replicates; deterministic for `rel.seed`.

    `phases`: RunPhase or (name, steps, step_time_s) tuples. `checkpoint_bytes`: the model's checkpoint
    size (see reliability.checkpoint_bytes_for); `rel.checkpoint_bytes`, when set, overrides it.
    """
    phases = _phases(phases)
    if num_gpus <= 0:
        raise ValueError(f"num_gpus must be positive (got {num_gpus})")
    ckpt_bytes = rel.checkpoint_bytes if rel.checkpoint_bytes is not None else checkpoint_bytes
    if not ckpt_bytes > 0:
        raise ValueError(f"checkpoint_bytes must be positive (got {ckpt_bytes})")
    delta_s = ckpt_bytes / (rel.checkpoint_write_gbps * 1e9)
    mtbf_s = job_mtbf_s(rel.gpu_mtbf_hours, num_gpus)
    tau_s = rel.checkpoint_interval_s if rel.checkpoint_interval_s is not None else daly_interval(delta_s, mtbf_s)
    useful_s = sum(p.steps * p.step_time_s for p in phases)
    slowdowns = {1.0, rel.straggler_slowdown} if rel.straggler_fraction > 0 else {1.0}
    expected = max(_check_progress(phases, tau_s, delta_s, mtbf_s, rel, num_gpus, sd) for sd in slowdowns)
    if expected * rel.replicates > MAX_FAILURE_EVENTS:
        fit = max(1, int(MAX_FAILURE_EVENTS // max(expected, 1)))
        raise NoProgress(f"reliability.replicates: {rel.replicates} replicates × about {expected:,.0f} failures "
                         f"each is over the limit of {MAX_FAILURE_EVENTS:,} simulated failures; use at most {fit}")
    seg_ends: dict[float, np.ndarray] = {}
    results = []
    for r in range(rel.replicates):
        # (seed, replicate) seeds a SeedSequence: adjacent seeds share no replicate streams
        rng = np.random.Generator(np.random.PCG64([rel.seed, r]))
        n_slow = int(rng.binomial(num_gpus, rel.straggler_fraction)) if rel.straggler_fraction > 0 else 0
        slowdown = rel.straggler_slowdown if n_slow else 1.0
        if slowdown not in seg_ends:
            seg_ends[slowdown] = _segment_ends(phases, tau_s, delta_s, slowdown)
        t = _replicate(seg_ends[slowdown], rng, mtbf_s, rel.restart_s)
        results.append(ReplicateResult(
            wall_clock_s=t.wall_clock_s, gpu_hours=t.wall_clock_s * num_gpus / 3600.0,
            useful_gpu_hours=useful_s * num_gpus / 3600.0, goodput=useful_s / t.wall_clock_s,
            failures=t.failures, checkpoints=t.checkpoints, lost_work_s=t.lost_work_s,
            restart_s=t.restart_s, checkpoint_s=t.checkpoints * delta_s, stragglers=n_slow))
    waste = analytic_waste_fraction(tau_s, delta_s, mtbf_s, rel.restart_s) if math.isfinite(mtbf_s) \
        else delta_s / tau_s
    return RunSummary(
        replicates=tuple(results), num_gpus=num_gpus, seed=rel.seed,
        checkpoint_interval_s=tau_s, checkpoint_write_s=delta_s, job_mtbf_h=mtbf_s / 3600.0,
        analytic_waste_fraction=waste,
        wall_clock_days=Stat.of(x.wall_clock_s / 86400.0 for x in results),
        gpu_hours=Stat.of(x.gpu_hours for x in results),
        goodput=Stat.of(x.goodput for x in results),
        failures=Stat.of(x.failures for x in results))


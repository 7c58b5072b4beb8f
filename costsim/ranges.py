"""Assumption ranges: what a scenario costs across the inputs it is not sure of.

The model-error band (costsim/uncertainty.py) says how wrong costsim's own model has been on published runs it
never saw. It says nothing about the inputs: a range a source publishes (DeepSeek's "20–22 tokens/s per
request"), an acceptance rate given as 85–90%, or an assumption nobody published (R1's response lengths). A
scenario lists those under `ranges:` (a key, the values it may take, their source) and the estimate is repeated

- at each value of each range, the rest as written: which input moves the answer, and by how much;
- over every combination of all the ranges' values: the span of GPU-hours, days and dollars they allow
  together (min and max over the grid, which bound the answer wherever it moves monotonically in each input).

Each point is a whole closed-form estimate (costsim.estimate.estimate; not --simulate's Monte-Carlo) of the
scenario with those keys set (scenario.vary), so nothing is linearised. Every value must make a valid scenario
(checked before anything is costed); a combination whose plan cannot run (memory, a divisibility) is reported
with its reason and left out of the span.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import CostsimError, PlanError
from .safe_load import clip, short
from .scenario import Scenario, vary

FIGURES = ("gpu_hours", "wall_clock_days", "cost_usd")


@dataclass(frozen=True)
class Outcome:
    """The estimate with `values` (range label → value; a range's every key takes its value) set: totals and
    per-phase figures (FIGURES), or why that combination cannot run (`error`, figures empty)."""
    values: dict[str, Any]
    total: dict[str, float]
    by_phase: dict[str, dict[str, float]]
    error: str | None = None


@dataclass(frozen=True)
class KeyRange:
    key: str | list[str]             # as the scenario gives it
    label: str                       # as shown: the first key (+N more)
    source: str | None
    outcomes: list[Outcome]          # one per value, in the scenario's order


@dataclass(frozen=True)
class Ranges:
    keys: list[KeyRange]
    combinations: int                              # points of the grid of every range's values
    total: dict[str, tuple[float, float]] | None   # figure → (min, max) over the grid's runnable points
    by_phase: dict[str, dict[str, tuple[float, float]]]
    lowest: dict[str, Any] | None                  # the combination at the lowest cost (label → value)
    highest: dict[str, Any] | None                 # … and at the highest
    failed: list[Outcome]                          # grid points that cannot run, with the reason

    @property
    def runnable(self) -> int:
        return self.combinations - len(self.failed)


def _figures(est) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    total = {f: float(getattr(est, f)) for f in FIGURES}
    return total, {p.name: {f: float(getattr(p, f)) for f in FIGURES} for p in est.phases}


def _span(outcomes: list[Outcome]) -> tuple[dict | None, dict]:
    ok = [o for o in outcomes if o.error is None]
    if not ok:
        return None, {}
    total = {f: (min(o.total[f] for o in ok), max(o.total[f] for o in ok)) for f in FIGURES}
    by_phase = {n: {f: (min(o.by_phase[n][f] for o in ok), max(o.by_phase[n][f] for o in ok)) for f in FIGURES}
                for n in ok[0].by_phase}
    return total, by_phase


def count_runs(sc: Scenario) -> int:
    """Estimates assumption_ranges runs (the grid, plus each range's values with the others as written)."""
    if not sc.ranges:
        return 0
    combos = 1
    for r in sc.ranges:
        combos *= len(r.values)
    return combos + (sum(len(r.values) for r in sc.ranges) if len(sc.ranges) > 1 else 0)


def _setting(sc: Scenario, values: dict[str, Any]) -> dict[str, Any]:
    """range label → value, as scenario key → value (a range's every key takes its value)."""
    return {k: values[r.label] for r in sc.ranges if r.label in values for k in r.keys}


def check_values(sc: Scenario, source: str = "scenario") -> None:
    """Every value of every range makes a valid scenario (ScenarioError naming the range and value otherwise)."""
    for i, r in enumerate(sc.ranges):
        for v in r.values:
            vary(sc, _setting(sc, {r.label: v}), f"{source}: ranges[{i}]")


def assumption_ranges(sc: Scenario, base_dir: Path = Path("."),
                      progress: Callable[[int, int], None] | None = None, source: str = "scenario") -> Ranges | None:
    """The scenario's `ranges` costed (see the module's doc); None when it has none. Every value is checked
    before anything is costed; a combination the estimate refuses (a plan that does not fit, a divisibility) is
    kept with its reason and left out of the span. progress(done, total) after each estimate."""
    from .estimate import estimate

    if not sc.ranges:
        return None
    check_values(sc, source)
    runs = count_runs(sc)
    memo: dict[str, Outcome] = {}

    def outcome(values: dict[str, Any]) -> Outcome:
        """values: range label → value."""
        tag = repr(list(values.items()))
        if tag not in memo:
            varied = vary(sc, _setting(sc, values), f"{source}: ranges")
            try:
                memo[tag] = Outcome(dict(values), *_figures(estimate(varied, base_dir=base_dir)))
            except PlanError as exc:          # this plan cannot run: kept with its reason
                memo[tag] = Outcome(dict(values), {}, {}, error=str(exc))
            except CostsimError as exc:       # the scenario itself is wrong (a model, a file): stop, saying where
                label = ", ".join(f"{k}={short(v, 40)}" for k, v in values.items())
                raise type(exc)(f"{source}: ranges ({clip(label, 100)}): {exc}") from None
            if progress:
                progress(len(memo), runs)
        return memo[tag]

    keys = [KeyRange(r.key, r.label, r.source, [outcome({r.label: v}) for v in r.values]) for r in sc.ranges]
    grid = [outcome(dict(zip((r.label for r in sc.ranges), combo)))
            for combo in itertools.product(*(r.values for r in sc.ranges))]
    total, by_phase = _span(grid)
    ok = [o for o in grid if o.error is None]
    lowest = min(ok, key=lambda o: o.total["cost_usd"]).values if ok else None
    highest = max(ok, key=lambda o: o.total["cost_usd"]).values if ok else None
    if progress and len(memo) < runs:       # repeated points (a range listing a value twice) were not re-run
        progress(runs, runs)
    return Ranges(keys, len(grid), total, by_phase, lowest, highest, [o for o in grid if o.error is not None])


__all__ = ["FIGURES", "KeyRange", "Outcome", "Ranges", "assumption_ranges", "check_values", "count_runs"]

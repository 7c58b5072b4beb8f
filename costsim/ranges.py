"""Assumption ranges: what a scenario costs across the inputs it is not sure of.

The model-error band (costsim/uncertainty.py) says how wrong costsim's own model has been on published runs it
never saw. It says nothing about the inputs: a range a source publishes (DeepSeek's "20–22 tokens/s per
request"), an acceptance rate given as 85–90%, or an assumption nobody published (R1's response lengths). A
scenario lists those under `ranges:` (a key, the values it may take, their source) and the estimate is repeated

- at each value of each range, the rest as written: which input moves the answer, and by how much;
- over every combination of all the ranges' values: the span of GPU-hours, days and dollars they allow
  together (min and max over the grid, which bound the answer wherever it moves monotonically in each input).

Each point is a whole closed-form estimate (costsim.estimate.estimate) of the scenario with those keys set
(scenario.vary), so nothing is linearised, and a value that makes the plan infeasible fails with its reason.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import CostsimError
from .scenario import Scenario, vary

FIGURES = ("gpu_hours", "wall_clock_days", "cost_usd")


@dataclass(frozen=True)
class Outcome:
    """The estimate with `values` (range label → value; a range's every key takes its value) set: totals and
    per-phase figures (FIGURES)."""
    values: dict[str, Any]
    total: dict[str, float]
    by_phase: dict[str, dict[str, float]]


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
    total: dict[str, tuple[float, float]]          # figure → (min, max) over the grid
    by_phase: dict[str, dict[str, tuple[float, float]]]
    lowest: dict[str, Any]                         # the combination at the lowest cost
    highest: dict[str, Any]                        # … and at the highest


def _figures(est) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    total = {f: float(getattr(est, f)) for f in FIGURES}
    return total, {p.name: {f: float(getattr(p, f)) for f in FIGURES} for p in est.phases}


def _span(outcomes: list[Outcome]) -> tuple[dict, dict]:
    total = {f: (min(o.total[f] for o in outcomes), max(o.total[f] for o in outcomes)) for f in FIGURES}
    names = dict.fromkeys(n for o in outcomes for n in o.by_phase)
    by_phase = {n: {f: (min(o.by_phase[n][f] for o in outcomes if n in o.by_phase),
                        max(o.by_phase[n][f] for o in outcomes if n in o.by_phase)) for f in FIGURES}
                for n in names}
    return total, by_phase


def count_runs(sc: Scenario) -> int:
    """Estimates assumption_ranges runs (the grid, plus each range's values with the others as written)."""
    if not sc.ranges:
        return 0
    combos = 1
    for r in sc.ranges:
        combos *= len(r.values)
    return combos + (sum(len(r.values) for r in sc.ranges) if len(sc.ranges) > 1 else 0)


def assumption_ranges(sc: Scenario, base_dir: Path = Path("."),
                      progress: Callable[[int, int], None] | None = None) -> Ranges | None:
    """The scenario's `ranges` costed (see the module's doc); None when it has none. progress(done, total)
    after each estimate."""
    from .estimate import estimate

    if not sc.ranges:
        return None
    runs = count_runs(sc)
    memo: dict[str, Outcome] = {}

    def outcome(values: dict[str, Any]) -> Outcome:
        """values: range label → value."""
        tag = json.dumps(sorted(values.items()), sort_keys=True, default=str)
        if tag not in memo:
            setting = {k: values[r.label] for r in sc.ranges if r.label in values for k in r.keys}
            varied = vary(sc, setting)
            try:
                est = estimate(varied, base_dir=base_dir)
            except CostsimError as exc:
                label = ", ".join(f"{k}={v}" for k, v in values.items())
                raise type(exc)(f"ranges ({label}): {exc}") from None
            memo[tag] = Outcome(dict(values), *_figures(est))
            if progress:
                progress(len(memo), runs)
        return memo[tag]

    keys = [KeyRange(r.key, r.label, r.source, [outcome({r.label: v}) for v in r.values]) for r in sc.ranges]
    grid = [outcome(dict(zip((r.label for r in sc.ranges), combo)))
            for combo in itertools.product(*(r.values for r in sc.ranges))]
    total, by_phase = _span(grid)
    lowest = min(grid, key=lambda o: o.total["cost_usd"]).values
    highest = max(grid, key=lambda o: o.total["cost_usd"]).values
    if progress and len(memo) < runs:       # repeated points (a range listing a value twice) were not re-run
        progress(runs, runs)
    return Ranges(keys, len(grid), total, by_phase, lowest, highest)


__all__ = ["FIGURES", "KeyRange", "Outcome", "Ranges", "assumption_ranges", "count_runs"]

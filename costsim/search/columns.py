"""Feasible plans as numpy columns (`FeasibleTable`, what `evaluate_space_fast` returns), the integer codes of
their schedule and recompute columns, and `FastStats` (how the fast engine costed them, carried by the table).

A PlanResult is made only when a row is read, so a search over millions of plans keeps no object per plan;
the orders and the Pareto frontier are computed on the columns (search/output.py, search/space.py read them).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .engine import PlanResult

# the codes of the schedule and recompute columns; the kernels (search/combine.py) compare schedule codes as
# literals (1 interleaved, 2 zero-bubble, 3 dualpipe), so the order is fixed
SCHEDULES = ("1f1b", "interleaved", "zero-bubble", "dualpipe")
S_1F1B, S_INTER, S_ZB, S_DUAL = range(4)
RECOMPUTE = ("none", "selective", "full")


@dataclass
class FastStats:
    """What the fast engine did: plans it combined itself, plans sent to the per-plan engine (and why)."""
    vectorised: int = 0
    fallback: int = 0
    fallback_reason: str | None = None
    unit_keys: int = 0
    p2p_keys: int = 0
    rank_step_keys: int = 0
    act_keys: int = 0
    seconds: dict = field(default_factory=dict)


_PLAN_INT = ("num_gpus", "tp", "pp", "cp", "ep", "etp", "dp", "zero_stage", "micro_batch_size", "virtual_stages")
_FIG = ("step_time_s", "wall_clock_days", "gpu_hours", "cost_usd", "mfu", "memory_gib_per_gpu")


class FeasibleTable(Sequence):
    """Feasible plans in enumeration order, as numpy columns; a PlanResult is made only when one is read."""

    def __init__(self, gpus: list[str], cols: dict[str, np.ndarray], stats: "FastStats | None" = None):
        self.gpus = list(gpus)
        self.cols = cols
        self.stats = stats if stats is not None else FastStats()   # how the plans were costed
        self._memo: dict = {}          # orders and the frontier (the columns never change)

    @classmethod
    def from_results(cls, gpus: list[str], results: list[PlanResult], stats: "FastStats") -> "FeasibleTable":
        """The exact engine's PlanResults as columns (where the fast engine hands a space to it)."""
        cols = {k: np.array([r.plan[k] for r in results], np.int64) for k in _PLAN_INT}
        cols["gpu"] = np.array([gpus.index(r.plan["gpu"]) for r in results], np.int64)
        cols["schedule"] = np.array([SCHEDULES.index(r.plan["schedule"]) for r in results], np.int64)
        cols["recompute"] = np.array([RECOMPUTE.index(r.plan["recompute"]) for r in results], np.int64)
        cols["sp"] = np.array([r.plan["sequence_parallel"] for r in results], np.int64)
        cols.update({k: np.array([getattr(r, k) for r in results], float) for k in _FIG})
        return cls(gpus, cols, stats)

    @classmethod
    def empty(cls, gpus: list[str]) -> "FeasibleTable":
        cols = {k: np.zeros(0, np.int64) for k in (*_PLAN_INT, "gpu", "schedule", "recompute", "sp")}
        cols.update({k: np.zeros(0) for k in _FIG})
        return cls(gpus, cols)

    @classmethod
    def concat(cls, parts: list["FeasibleTable"]) -> "FeasibleTable":
        gpus: list[str] = []
        for p in parts:
            gpus += [g for g in p.gpus if g not in gpus]
        if not parts:
            return cls.empty(gpus)
        cols = {}
        for k in parts[0].cols:
            if k == "gpu":   # re-index each part's GPU names into the merged list
                cols[k] = np.concatenate([np.array([gpus.index(g) for g in p.gpus], np.int64)[p.cols[k]]
                                          if len(p) else p.cols[k] for p in parts])
            else:
                cols[k] = np.concatenate([p.cols[k] for p in parts])
        stats = FastStats(vectorised=sum(p.stats.vectorised for p in parts),
                          fallback=sum(p.stats.fallback for p in parts),
                          fallback_reason="; ".join(dict.fromkeys(p.stats.fallback_reason for p in parts
                                                                  if p.stats.fallback_reason)) or None)
        return cls(gpus, cols, stats)

    def __len__(self) -> int:
        return len(self.cols["step_time_s"])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self._row(i)

    def _row(self, i: int) -> PlanResult:
        c = self.cols
        plan = {"tp": int(c["tp"][i]), "pp": int(c["pp"][i]), "cp": int(c["cp"][i]), "ep": int(c["ep"][i]),
                "etp": int(c["etp"][i]), "zero_stage": int(c["zero_stage"][i]),
                "micro_batch_size": int(c["micro_batch_size"][i]), "recompute": RECOMPUTE[c["recompute"][i]],
                "schedule": SCHEDULES[c["schedule"][i]], "virtual_stages": int(c["virtual_stages"][i]),
                "sequence_parallel": bool(c["sp"][i]), "dp": int(c["dp"][i]), "num_gpus": int(c["num_gpus"][i]),
                "gpu": self.gpus[c["gpu"][i]]}
        return PlanResult(plan=plan, **{k: float(c[k][i]) for k in _FIG})

    def rows(self, idx) -> list[PlanResult]:
        return [self._row(int(i)) for i in idx]

    def order(self, objective: str) -> np.ndarray:
        """Indices sorted as `sorted(feasible, key=…)` sorts (stable): by (cost, days) or (days, cost)."""
        key = "time" if objective == "time" else "cost"
        if key not in self._memo:
            cost, days = self.cols["cost_usd"], self.cols["wall_clock_days"]
            self._memo[key] = np.lexsort((days, cost)) if key == "cost" else np.lexsort((cost, days))
        return self._memo[key]

    def csv_rows(self, plan_cols: tuple, figures: tuple, chunk: int = 65536):
        """Rows (plan columns, figures as repr, 1/0 on the frontier) by ascending (cost, days), made from the
        columns a chunk at a time (no PlanResult per plan)."""
        order = self.order("cost")
        front = np.zeros(len(self), np.int64)
        front[self.pareto_indices()] = 1
        names = {"gpu": self.gpus, "recompute": RECOMPUTE, "schedule": SCHEDULES}
        for lo in range(0, len(order), chunk):
            idx = order[lo:lo + chunk]
            cols = []
            for k in plan_cols:
                vals = self.cols["sp" if k == "sequence_parallel" else k][idx].tolist()
                cols.append([names[k][x] for x in vals] if k in names
                            else [bool(x) for x in vals] if k == "sequence_parallel" else vals)
            cols += [[repr(x) for x in self.cols[f][idx].tolist()] for f in figures]
            yield from zip(*cols, front[idx].tolist())

    def pareto_indices(self) -> np.ndarray:
        """`engine.pareto_front` over the columns: by ascending (cost, days), each plan faster than all before."""
        if "pareto" not in self._memo:
            o = self.order("cost")
            days = self.cols["wall_clock_days"][o]
            best_before = np.concatenate(([np.inf], np.minimum.accumulate(days)[:-1]))
            self._memo["pareto"] = o[days < best_before]
        return self._memo["pareto"]

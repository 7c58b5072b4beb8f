"""Fit the global efficiency parameters (costsim/efficiency.py) on the whole public set.

Objective: mean squared log error of every validation case marked `fitted_on` (derived duplicates such as
DeepSeek's total GPU-hours are left out so one run does not vote three times). Minimised by Nelder–Mead
inside the parameters' physical bounds. Three global parameters for ~30 cases from four sources.
"""
from __future__ import annotations

import json
import math
import statistics
from datetime import date
from importlib import resources
from typing import Callable

import numpy as np

from .efficiency import Efficiency
from .validate import all_cases, run_cases

BOUNDS = {"compute_derate": (0.4, 1.0), "kernel_overhead_us": (0.0, 50.0), "overlap_efficiency": (0.0, 1.0)}
NAMES = list(BOUNDS)


def _to_eff(x: np.ndarray) -> Efficiency:
    d, o, w = (min(max(v, lo), hi) for v, (lo, hi) in zip(x, BOUNDS.values()))
    return Efficiency(compute_derate=d, kernel_overhead_s=o * 1e-6, overlap_efficiency=w)


def objective(eff: Efficiency, cases) -> float:
    res = [r for r in run_cases(efficiency=eff, cases=cases) if r.fitted_on]
    return statistics.fmean(math.log(r.predicted / r.published) ** 2 for r in res)


def nelder_mead(f: Callable[[np.ndarray], float], x0: np.ndarray, step: np.ndarray, iters: int = 80,
                tol: float = 1e-6) -> tuple[np.ndarray, float]:
    """Plain Nelder–Mead (reflection 1, expansion 2, contraction ½, shrink ½)."""
    simplex = [x0] + [x0 + np.eye(len(x0))[i] * step[i] for i in range(len(x0))]
    values = [f(x) for x in simplex]
    for _ in range(iters):
        order = np.argsort(values)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if values[-1] - values[0] < tol:
            break
        centroid = np.mean(simplex[:-1], axis=0)
        xr = centroid + (centroid - simplex[-1])
        fr = f(xr)
        if fr < values[0]:
            xe = centroid + 2 * (centroid - simplex[-1])
            fe = f(xe)
            simplex[-1], values[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (simplex[-1] - centroid)
            fc = f(xc)
            if fc < values[-1]:
                simplex[-1], values[-1] = xc, fc
            else:
                simplex = [simplex[0]] + [simplex[0] + 0.5 * (x - simplex[0]) for x in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
    best = int(np.argmin(values))
    return simplex[best], values[best]


def fit(progress: Callable[[int], None] | None = None) -> tuple[Efficiency, float, float]:
    """Returns (fitted efficiency, objective before = neutral parameters, objective after)."""
    cases = all_cases()
    calls = [0]

    def f(x: np.ndarray) -> float:
        calls[0] += 1
        if progress:
            progress(calls[0])
        return objective(_to_eff(x), cases)

    neutral = np.array([1.0, 0.0, 1.0])
    before = f(neutral)
    x, after = nelder_mead(f, np.array([0.8, 5.0, 0.8]), np.array([0.1, 5.0, 0.15]))
    return _to_eff(x), before, after


def write_fitted(eff: Efficiency, before: float, after: float, n_cases: int) -> str:
    """Write costsim/fitted.json (the package data the estimate reads) and return its path."""
    path = resources.files("costsim").joinpath("fitted.json")
    record = {
        "_about": "Global efficiency parameters fitted on the whole public validation set by "
                  "`costsim validate --fit` (costsim/fit.py). Not per run, not per scenario.",
        "compute_derate": round(eff.compute_derate, 4),
        "kernel_overhead_us": round(eff.kernel_overhead_s * 1e6, 3),
        "overlap_efficiency": round(eff.overlap_efficiency, 4),
        "fit": {"date": date.today().isoformat(), "cases": n_cases, "objective": "mean squared log error",
                "rmse_log_before": round(math.sqrt(before), 4), "rmse_log_after": round(math.sqrt(after), 4),
                "bounds": BOUNDS},
    }
    with open(str(path), "w") as fh:
        json.dump(record, fh, indent=2)
        fh.write("\n")
    return str(path)

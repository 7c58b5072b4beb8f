"""In-sample and leave-one-source-out predictions of every validation case (see fit.py for the fit itself).

In-sample: the global parameters, fitted on every source. Cross-validated: each case predicted with the
parameters refitted without its own source (fitted.json `loso`), i.e. as a run costsim has never seen. The
cross-validated error is the honest one; the in-sample error shows how much the fit flatters.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable

from .efficiency import fitted_record, load_fitted
from .validate import CaseResult, all_cases, fit_groups, run_cases


@dataclass(frozen=True)
class Row:
    result: CaseResult           # in-sample
    cv_predicted: float          # with the parameters fitted without this case's source

    @property
    def cv_error(self) -> float:
        return (self.cv_predicted - self.result.published) / self.result.published


def _stats(errors: list[float]) -> dict:
    ok = [abs(e) for e in errors if math.isfinite(e)]
    return {"median_abs": statistics.median(ok) if ok else math.nan, "max_abs": max(ok) if ok else math.nan,
            "cases": len(ok), "failed": len(errors) - len(ok)}


def cross_validate(progress: Callable[[int, int], None] | None = None, cases=None,
                   record: dict | None = None) -> tuple[list[Row], dict]:
    """Rows of (in-sample result, cross-validated prediction) and the summary the CLI and JSON show."""
    cases = list(cases or all_cases())
    record = record or fitted_record()
    total, done = 2 * len(cases), [0]

    def tick(i: int, n: int) -> None:
        if progress:
            progress(done[0] + i, total)

    in_sample = run_cases(progress=tick, cases=cases)
    done[0] = len(cases)
    cv: dict[int, CaseResult] = {}
    loso = record.get("loso", {})
    for group in dict.fromkeys(c.group for c in cases):
        idx = [i for i, c in enumerate(cases) if c.group == group]
        eff = load_fitted(loso[group]) if group in loso else None
        res = run_cases(cases=[cases[i] for i in idx], efficiency=eff) if eff else [in_sample[i] for i in idx]
        cv.update(zip(idx, res))
        done[0] += len(idx)
        tick(0, total)
    # a source without refitted parameters (fitted.json older than the source) has no held-out prediction
    # a source the fit never uses (fit_groups) is held out already: its in-sample prediction is held out
    fitted = fit_groups(cases)
    rows = [Row(r, cv[i].predicted if r.group in loso else r.predicted if r.group not in fitted else math.nan)
            for i, r in enumerate(in_sample)]
    return rows, summarize(rows)


def summarize(rows: list[Row]) -> dict:
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.result.group, []).append(r)
    worst = max((r for r in rows if math.isfinite(r.cv_error)), key=lambda r: abs(r.cv_error), default=None)
    return {
        "cases": len(rows),
        "in_sample": _stats([r.result.error for r in rows]),
        "cross_validated": _stats([r.cv_error for r in rows]),
        "worst_cross_validated": f"{worst.result.group}: {worst.result.case}" if worst else "",
        "by_source": {g: {"in_sample": _stats([r.result.error for r in rs]),
                          "cross_validated": _stats([r.cv_error for r in rs])} for g, rs in groups.items()},
    }

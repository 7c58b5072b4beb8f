"""How sure is an estimate: a p10–p90 band from the cross-validated (held-out) errors of the validation set.

Each validation case is predicted with the global parameters refitted without its own source (crossval.py), so
its error is what costsim gets wrong on a run it has never seen. In time terms the log error of a case is
e = log(predicted time / published time): a step-time or GPU-hours case as is, a throughput case (tokens/s,
TFLOP/s) with its sign flipped (a rate too high is a time too short). If an estimate T errs as the held-out
cases do, the true time is T·exp(−e), so the band is

    p10 = T · exp(−q90(e)),   p90 = T · exp(−q10(e)),

and GPU-hours, dollars and wall-clock days, all proportional to the step time, scale by the same factors. The
quantiles weigh every source the same (as the fit's objective does: a 142-row table does not outvote a 10-row
paper); derived duplicates (`fitted_on=False`) and failed predictions are left out. By regime: the phase's
precision (bf16, fp8) where a regime has at least MIN_CASES cases from MIN_SOURCES sources, else all cases
(MoE runs: DeepSeek-V3 only, too few, so MoE phases take their precision's band).

Comparing plans (`costsim search`) needs a different figure: not how far one estimate is off, but how far the
ratio of two estimates is. Two runs of one source share its hardware, software and reporting, so the error of
their ratio is the difference of their held-out log errors, e_a − e_b; `comparison` holds the quantiles of
|e_a − e_b| over every pair of cases of one source and one metric, every source weighed the same. A plan costed
r times the best one is in fact cheaper with probability P(e_a − e_b > ln r) = ½·P(|e_a − e_b| > ln r) (the
pair's order is arbitrary, so the difference is symmetric): `p_beats_best`.

The quantiles are computed when fitting (`costsim validate --fit`, fit.py) and stored in costsim/fitted.json
as `error_band`; `python -m costsim.uncertainty` recomputes them from the current fitted.json without
refitting. Estimating reads them; it never runs the validation.
"""
from __future__ import annotations

import json
import math
from typing import Iterable

import numpy as np

QUANTILES = tuple(round(0.05 * i, 2) for i in range(1, 20))   # 0.05 … 0.95; p10 and p90 among them
PAIR_QUANTILES = tuple(round(0.01 * i, 2) for i in range(1, 100))   # 0.01 … 0.99 of |e_a − e_b|
MARGINS = (0.0, 0.03, 0.08, 0.15, 0.3, 1e9)   # predicted gap between two runs, for the calibration by margin
MIN_CASES = 30
MIN_SOURCES = 3
ABOUT = ("p10–p90 band of the model's own error, from the held-out (leave-one-source-out) errors of the "
         "validation set (costsim/uncertainty.py). log_error_quantiles: quantiles of log(predicted time / "
         "published time) at `quantiles`, every source weighed the same; p10/p90: the factors an estimate's "
         "step time, GPU-hours, cost and days are multiplied by.")


def _timelike(metric: str) -> bool:
    return "time" in metric.lower() or "gpu-hours" in metric.lower()


def _time_log_error(metric: str, predicted: float, published: float) -> float:
    """log(predicted time / true time): time-like metrics as is, rates inverted."""
    e = math.log(predicted / published)
    return e if _timelike(metric) else -e


def _precision(scenario: dict) -> str:
    phases = scenario.get("phases") or [{}]
    return str(phases[0].get("precision") or "bf16")


def _is_moe(scenario: dict) -> bool:
    m = scenario.get("model")
    if isinstance(m, str):
        from .model import load_builtin
        try:
            return load_builtin(m).active_params() < load_builtin(m).total_params()
        except Exception:  # noqa: BLE001 — an unknown name is simply not counted as MoE
            return False
    return isinstance(m, dict) and any(m.get(k) for k in ("n_routed_experts", "num_local_experts", "num_experts"))


def weighted_quantiles(values: list[float], weights: list[float], qs: Iterable[float]) -> list[float]:
    """Quantiles of a weighted sample (midpoint rule, linear between points)."""
    order = np.argsort(values)
    v = np.asarray(values, float)[order]
    w = np.asarray(weights, float)[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return [float(x) for x in np.interp(list(qs), cum, v)]


def _regime(samples: list[tuple[str, float]]) -> dict:
    """samples: (source, log error). Every source weighs the same."""
    per_source: dict[str, int] = {}
    for g, _ in samples:
        per_source[g] = per_source.get(g, 0) + 1
    q = weighted_quantiles([e for _, e in samples], [1 / per_source[g] for g, _ in samples], QUANTILES)
    at = dict(zip(QUANTILES, q))
    return {"cases": len(samples), "sources": len(per_source),
            "log_error_quantiles": [round(x, 4) for x in q],
            "p10": round(math.exp(-at[0.9]), 4), "p90": round(math.exp(-at[0.1]), 4)}


def error_band(rows, cases) -> dict:
    """The `error_band` record from cross-validated rows (crossval.cross_validate) and their cases (same order)."""
    samples: dict[str, list[tuple[str, float]]] = {"all": []}
    for row, case in zip(rows, cases):
        r = row.result
        cv = row.cv_predicted
        if not r.fitted_on or not (math.isfinite(cv) and cv > 0):
            continue
        s = (r.group, _time_log_error(r.metric, cv, r.published))
        samples["all"].append(s)
        samples.setdefault(_precision(case.scenario), []).append(s)
        samples.setdefault("moe" if _is_moe(case.scenario) else "dense", []).append(s)
    regimes, too_few = {}, {}
    pairs = comparison(rows, cases)
    for name, ss in samples.items():
        n_src = len({g for g, _ in ss})
        if name == "all" or (len(ss) >= MIN_CASES and n_src >= MIN_SOURCES):
            regimes[name] = _regime(ss)
        else:
            too_few[name] = {"cases": len(ss), "sources": n_src}
    return {"_about": ABOUT, "quantiles": list(QUANTILES), "min_cases": MIN_CASES, "min_sources": MIN_SOURCES,
            "selection": "the phase's precision (bf16, fp8) where that regime has enough cases, else all",
            "regimes": dict(sorted(regimes.items())), "too_few": dict(sorted(too_few.items())),
            "comparison": pairs}


COMPARISON_ABOUT = ("how far costsim's ratio of two runs is off: quantiles (`quantiles`) of |e_a − e_b| over every "
                    "pair of validation cases of one source and one metric, e the held-out log error in time, every "
                    "source weighed the same (costsim/uncertainty.py); a plan costed r × the best is in fact "
                    "cheaper with probability ½·P(|e_a − e_b| > ln r)")


def _gpu(case) -> str | None:
    cluster = (getattr(case, "scenario", None) or {}).get("cluster") or {}
    return cluster.get("gpu") if isinstance(cluster, dict) else None


def _pair_record(pairs: dict[str, list[tuple[float, float, float]]]) -> dict | None:
    """Quantiles of |e_a − e_b| over `pairs` (source → [(|e_a − e_b|, predicted |log time ratio|, flipped)]),
    every source weighed the same, and how often the predicted order was in fact wrong against how often the
    record itself says it would be (its calibration on the same pairs)."""
    pairs = {g: d for g, d in pairs.items() if d}
    if not pairs:
        return None
    values = [x[0] for d in pairs.values() for x in d]
    weights = [1.0 / len(d) for d in pairs.values() for _ in d]
    q = weighted_quantiles(values, weights, PAIR_QUANTILES)
    record = {"_about": COMPARISON_ABOUT, "pairs": len(values), "sources": len(pairs),
              "quantiles": list(PAIR_QUANTILES), "abs_log_diff_quantiles": [round(x, 4) for x in q],
              "median": round(math.exp(q[PAIR_QUANTILES.index(0.5)]) - 1, 4)}
    ranked = [(w, x) for w, x in zip(weights, (x for d in pairs.values() for x in d)) if x[1] > 0]

    def rates(sel: list) -> dict:
        total = sum(w for w, _ in sel)
        return {"ordered_pairs": len(sel), "flipped": round(sum(w * x[2] for w, x in sel) / total, 4),
                "predicted": round(sum(w * p_beats_best(math.exp(x[1]), record) for w, x in sel) / total, 4)}
    if ranked:
        record["calibration"] = rates(ranked) | {"by_margin": [
            {"margin": [lo, hi]} | rates(sel) for lo, hi in zip(MARGINS, MARGINS[1:])
            if (sel := [(w, x) for w, x in ranked if lo <= math.exp(x[1]) - 1 < hi])]}
    return record


def comparison(rows, cases=None) -> dict | None:
    """The `comparison` record (see the module's doc): pairs of one source and one metric on the same GPU type,
    with `cross_gpu` the same for pairs on different GPU types (a search over GPU types compares those); None
    without two comparable cases. `cases` (same order as rows) give the GPU types; without them all pairs count
    as one GPU's."""
    by: dict[tuple[str, str], list[tuple[float, float, float, str | None]]] = {}
    for i, row in enumerate(rows):
        r, cv = row.result, row.cv_predicted
        if not r.fitted_on or not (math.isfinite(cv) and cv > 0):
            continue
        e = _time_log_error(r.metric, cv, r.published)
        pred = math.log(cv) if _timelike(r.metric) else -math.log(cv)      # predicted, as a log time
        by.setdefault((r.group, r.metric), []).append((e, pred, pred - e, _gpu(cases[i]) if cases else None))
    same: dict[str, list] = {}
    cross: dict[str, list] = {}
    for (group, _), xs in by.items():
        for i, a in enumerate(xs):
            for b in xs[i + 1:]:
                x = abs(a[1] - b[1])                                   # predicted |log time ratio|
                flipped = float((a[1] - b[1]) * (a[2] - b[2]) < 0)     # the published order is the other way
                (same if a[3] == b[3] else cross).setdefault(group, []).append((abs(a[0] - b[0]), x, flipped))
    record = _pair_record(same)
    if record is not None:
        record["cross_gpu"] = _pair_record(cross)
    return record


def p_beats_best(ratio: float, record: dict | None) -> float | None:
    """Chance that a plan costed `ratio` (≥ 1) × the best is in fact cheaper (or faster), from the `comparison`
    record: ½·P(|e_a − e_b| > ln ratio), the empirical CDF interpolated between its quantiles (from 0 at 0).
    Past the last stored quantile it stays at ½·(1 − 0.99): an upper bound. None without a record."""
    if not record or not math.isfinite(ratio):
        return None
    x = math.log(max(ratio, 1.0))
    qs = [0.0, *record["abs_log_diff_quantiles"]]
    ps = [0.0, *record["quantiles"]]
    cdf = float(np.interp(x, qs, ps))
    return 0.5 * (1.0 - cdf)


def compute_band(progress=None) -> dict:
    """Cross-validate with the current fitted.json (its `loso` refits) and return the `error_band` record."""
    from .crossval import cross_validate
    from .validate import all_cases
    cases = list(all_cases())
    rows, _ = cross_validate(progress=progress, cases=cases)
    return error_band(rows, cases)


def write_band(band: dict, path: str | None = None) -> bool:
    """Put `band` into fitted.json as `error_band` (nothing else changes); False when it was already there."""
    from .paths import fitted_json
    path = str(path or fitted_json())
    record = json.loads(open(path, encoding="utf-8").read())
    if record.get("error_band") == band:
        return False
    record["error_band"] = band
    text = json.dumps(record, indent=2) + "\n"
    try:
        from .safe_write import write_text
        write_text(path, text, what="costsim/fitted.json")
    except ImportError:   # pragma: no cover — the helper ships beside this module
        open(path, "w", encoding="utf-8").write(text)
    return True


# ---- reading: what an estimate shows ----

def load_band() -> dict | None:
    """The stored `error_band`, or None (a fitted.json from before it existed)."""
    from .efficiency import fitted_record
    return fitted_record().get("error_band")


def regime_for(band: dict, precision: str | None) -> str:
    return precision if precision in band.get("regimes", {}) else "all"


def factors(band: dict | None, precision: str | None) -> tuple[float, float] | None:
    """(p10, p90) multipliers for a phase of this precision, or None without a band."""
    if not band:
        return None
    r = band["regimes"][regime_for(band, precision)]
    return r["p10"], r["p90"]


def time_factor_samples(band: dict, precision: str | None) -> list[float]:
    """exp(−log error) at the stored quantiles: equally likely multipliers on time (for combining)."""
    r = band["regimes"][regime_for(band, precision)]
    return [math.exp(-e) for e in r["log_error_quantiles"]]


def combine(values: Iterable[float], phases: list[tuple[float, str | None]], band: dict | None,
            qs: tuple[float, float] = (10, 90)) -> tuple[float, float] | None:
    """p10/p90 of Monte-Carlo replicate `values` (e.g. GPU-hours with failures) times the model's error.

    The error is independent of the failures; its factor for the whole run mixes the phases' regimes at each
    quantile, weighted by the phases' closed-form GPU-hours (`phases`: (hours, precision)), since one model
    errs the same way on every phase. Each replicate is paired with every stored quantile (equally likely)."""
    if not band or not phases:
        return None
    total = sum(h for h, _ in phases)
    per_q = np.zeros(len(band["quantiles"]))
    for hours, precision in phases:
        per_q += (hours / total) * np.asarray(time_factor_samples(band, precision))
    sample = np.outer(np.asarray(list(values), float), per_q).ravel()
    lo, hi = np.percentile(sample, qs)
    return float(lo), float(hi)


def beats_best(values: list[float], cross_gpu: list[bool] | None = None) -> list[float | None]:
    """p_beats_best of each of `values` (costs or days, best first) against the first; None for the first and
    for all when fitted.json has no comparison record. `cross_gpu[i]`: plan i runs on another GPU type than the
    first (its record: `cross_gpu`)."""
    record = (load_band() or {}).get("comparison")
    if not values or not record:
        return [None] * len(values)
    best = values[0]
    cross = cross_gpu or [False] * len(values)
    return [None] + [p_beats_best(v / best, (record.get("cross_gpu") or record) if c else record)
                     if best > 0 else None for v, c in zip(values[1:], cross[1:])]


def main() -> None:   # python -m costsim.uncertainty
    band = compute_band()
    changed = write_band(band)
    for name, r in band["regimes"].items():
        print(f"{name:>5}: {r['cases']:3d} cases, {r['sources']} sources: p10 ×{r['p10']:.3f}, p90 ×{r['p90']:.3f}")
    for name, r in band["too_few"].items():
        print(f"{name:>5}: {r['cases']:3d} cases, {r['sources']} sources: too few, not used")
    c = band.get("comparison")
    if c:
        print(f"comparing two runs of one source: {c['pairs']:,} pairs, {c['sources']} sources, median error of "
              f"the ratio ±{100 * c['median']:.1f}%")
    print(("wrote" if changed else "unchanged:") + " error_band in costsim/fitted.json")


if __name__ == "__main__":
    main()

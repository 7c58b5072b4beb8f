"""costsim/fitted.json is the output of the fit, not a hand-set value: the global parameters sit at a minimum of
the objective inside their physical ranges, and every source has its leave-one-out refit."""
import json
from importlib import resources

import pytest

from costsim.efficiency import Efficiency, fitted, fitted_record, load_fitted
from costsim.fit import BOUNDS, FitResult, nelder_mead, objective, to_eff, to_x
from costsim.validate import all_cases


@pytest.fixture(scope="module")
def cases():
    return all_cases()


def _is_local_minimum(x, cases, frac: float = 0.03) -> None:
    best = objective(to_eff(x), cases)
    for i, (name, (lo, hi)) in enumerate(BOUNDS.items()):
        step = frac * (hi - lo)
        for sign in (-1, 1):
            y = list(x)
            y[i] = min(max(y[i] + sign * step, lo), hi)
            if y[i] == x[i]:
                continue                      # at a bound: only the inward direction exists
            assert objective(to_eff(y), cases) >= best - 1e-6, f"moving {name} improves the fit"


def test_fitted_parameters_are_a_local_minimum(cases):
    _is_local_minimum(list(to_x(fitted())), cases)


def test_one_leave_one_out_refit_is_a_local_minimum(cases):
    """The held-out parameters of the largest source are the fit without it (checked for one source: each
    check costs a few objective evaluations)."""
    record = fitted_record()
    groups = {}
    for c in cases:
        groups[c.group] = groups.get(c.group, 0) + 1
    biggest = max(groups, key=groups.get)
    kept = [c for c in cases if c.group != biggest]
    _is_local_minimum(list(to_x(load_fitted(record["loso"][biggest]))), kept)


def test_fit_record_is_consistent(cases):
    raw = json.loads(resources.files("costsim").joinpath("fitted.json").read_text())
    assert raw["fit"]["cases"] == sum(c.fitted_on for c in cases)
    assert raw["fit"]["rmse_log_after"] < raw["fit"]["rmse_log_before"]
    # every source the fit uses needs its leave-one-out parameters (the post-training ones are never fitted on)
    assert set(raw["loso"]) == {c.group for c in cases if c.fitted_on}, "every fitted source needs its refit"
    for rec in [raw, *raw["loso"].values()]:
        for name, (lo, hi) in BOUNDS.items():
            assert lo <= rec[name] <= hi


def test_bound_detection():
    lo = {n: b[0] for n, b in BOUNDS.items()}
    res = FitResult(Efficiency(0.85, 0.0, BOUNDS["overlap_slowdown"][1]), 1.0, 0.5)
    assert res.at_bound() == ["overlap_slowdown"]
    assert lo["compute_derate"] < 0.85


def test_nelder_mead_finds_a_known_minimum():
    x, v = nelder_mead(lambda p: (p[0] - 0.3) ** 2 + 2 * (p[1] + 1.5) ** 2, [0.0, 0.0], [0.5, 0.5], iters=300)
    assert x[0] == pytest.approx(0.3, abs=1e-3) and x[1] == pytest.approx(-1.5, abs=1e-3) and v < 1e-6

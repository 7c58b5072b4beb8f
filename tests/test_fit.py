"""costsim/fitted.json is the output of the fit, not a hand-set value: it sits at a minimum of the objective."""
import json
from importlib import resources

import pytest

from costsim.efficiency import Efficiency, fitted
from costsim.fit import BOUNDS, nelder_mead, objective
from costsim.validate import all_cases


@pytest.fixture(scope="module")
def cases():
    return all_cases()


def _eff(d: float, o_us: float, w: float) -> Efficiency:
    return Efficiency(compute_derate=d, kernel_overhead_s=o_us * 1e-6, overlap_efficiency=w)


def test_fitted_parameters_are_a_local_minimum(cases):
    eff = fitted()
    x = [eff.compute_derate, eff.kernel_overhead_s * 1e6, eff.overlap_efficiency]
    best = objective(_eff(*x), cases)
    for i, (name, (lo, hi)) in enumerate(BOUNDS.items()):
        step = 0.03 * (hi - lo)
        for sign in (-1, 1):
            y = list(x)
            y[i] = min(max(y[i] + sign * step, lo), hi)
            if y[i] == x[i]:
                continue                      # at a bound: only the inward direction exists
            assert objective(_eff(*y), cases) >= best - 1e-6, f"moving {name} improves the fit"


def test_fit_record_is_consistent(cases):
    raw = json.loads(resources.files("costsim").joinpath("fitted.json").read_text())
    assert raw["fit"]["cases"] == sum(c.fitted_on for c in cases)
    assert raw["fit"]["rmse_log_after"] < raw["fit"]["rmse_log_before"]
    for name, (lo, hi) in BOUNDS.items():
        assert lo <= raw[name] <= hi


def test_nelder_mead_finds_a_known_minimum():
    x, v = nelder_mead(lambda p: (p[0] - 0.3) ** 2 + 2 * (p[1] + 1.5) ** 2, [0.0, 0.0], [0.5, 0.5], iters=300)
    assert x[0] == pytest.approx(0.3, abs=1e-3) and x[1] == pytest.approx(-1.5, abs=1e-3) and v < 1e-6

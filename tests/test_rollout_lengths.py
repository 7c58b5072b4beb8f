"""Response-length families (costsim.rollout_lengths): analytic moments against sampling and quadrature."""
import math

import numpy as np
import pytest

from costsim.rollout_lengths import LengthModel, untruncated_mean

MODELS = [LengthModel("lognormal", 4000.0, 0.6), LengthModel("lognormal", 2000.0, 1.2),
          LengthModel("table", 3000.0, points=(1, 2, 3, 10, 25)), LengthModel("constant", 5000.0)]


def test_mean_schedule_is_piecewise_linear_and_clamped():
    m = LengthModel("lognormal", [(0, 500), (8200, 5000), (10400, 9000)])
    assert m.mean == ((0, 500.0), (8200, 5000.0), (10400, 9000.0))      # stored as a hashable tuple
    assert m.mean_at(0) == 500 and m.mean_at(4100) == pytest.approx(2750)
    assert m.mean_at(9300) == pytest.approx(7000) and m.mean_at(20000) == 9000 and m.mean_at(-5) == 500
    hash(m)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m.family}-{m.sigma}")
@pytest.mark.parametrize("max_tokens", [32768, 6000])
def test_expected_matches_sampling(model, max_tokens):
    x = model.sample(np.random.default_rng(1), 400_000, 0, max_tokens)
    assert x.max() <= max_tokens
    assert model.expected(0, max_tokens) == pytest.approx(x.mean(), rel=0.01)
    assert model.truncated_fraction(0, max_tokens) == pytest.approx(np.mean(x >= max_tokens), abs=0.005)


def test_expected_without_truncation_is_the_mean_and_truncation_lowers_it():
    m = LengthModel("lognormal", 1000.0, 0.5)
    assert m.expected(0, 1e9) == pytest.approx(1000.0, rel=1e-9)
    assert m.expected(0, 1500) < m.expected(0, 3000) < 1000.0
    assert m.truncated_fraction(0, 1e9) < 1e-12


def _expected_max_x_space(model, n, max_tokens, points=2_000_001):
    """Independent quadrature: ∫₀^M (1 − F(x)ⁿ) dx on a fine linear grid in x."""
    x = np.linspace(0.0, max_tokens, points)
    sf = model.survival(x[:-1], 0, max_tokens)
    with np.errstate(divide="ignore"):
        f = -np.expm1(n * np.log1p(-np.minimum(sf, 1.0)))
    return float(np.sum(f) * (x[1] - x[0]))


@pytest.mark.parametrize("model", MODELS[:3], ids=lambda m: f"{m.family}-{m.sigma}")
@pytest.mark.parametrize("n, max_tokens", [(1, 32768), (16, 32768), (8192, 65536), (8192, 16384)])
def test_expected_max_matches_an_independent_quadrature(model, n, max_tokens):
    assert model.expected_max(n, 0, max_tokens) == pytest.approx(_expected_max_x_space(model, n, max_tokens),
                                                                rel=2e-3)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m.family}-{m.sigma}")
def test_expected_max_of_one_is_the_expected_length_and_grows_with_n(model):
    assert model.expected_max(1, 0, 32768) == pytest.approx(model.expected(0, 32768), rel=2e-3)
    a, b, c = (model.expected_max(n, 0, 32768) for n in (4, 64, 8192))
    assert a <= b <= c <= 32768


def test_expected_max_against_sampling():
    m = LengthModel("lognormal", 3000.0, 0.8)
    rng = np.random.default_rng(5)
    maxima = np.array([m.sample(rng, 1024, 0, 65536).max() for _ in range(2000)])
    se = maxima.std() / math.sqrt(len(maxima))
    assert abs(m.expected_max(1024, 0, 65536) - maxima.mean()) < 4 * se


def test_long_tail_hits_the_limit():
    # σ = 1.2 and 8,192 draws: the maximum is almost surely the limit
    m = LengthModel("lognormal", 4000.0, 1.2)
    assert m.expected_max(8192, 0, 32768) == pytest.approx(32768, rel=1e-4)


def test_untruncated_mean_inverts_expected():
    for fam, kw in (("lognormal", {"sigma": 0.9}), ("table", {"points": (1, 2, 7)})):
        mu = untruncated_mean(3000.0, 4000.0, fam, **kw)
        assert mu > 3000
        assert LengthModel(fam, mu, **kw).expected(0, 4000.0) == pytest.approx(3000.0, rel=1e-9)


def test_sampling_is_deterministic_per_generator():
    m = MODELS[0]
    a = m.sample(np.random.default_rng(7), 100, 0, 32768)
    b = m.sample(np.random.default_rng(7), 100, 0, 32768)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kw", [dict(family="gamma", mean=1.0), dict(family="lognormal", mean=0.0),
                                dict(family="lognormal", mean=10.0, sigma=0.0), dict(family="table", mean=10.0),
                                dict(family="table", mean=10.0, points=(1.0, -1.0)),
                                dict(family="constant", mean=[(5, 1.0), (5, 2.0)]),
                                dict(family="constant", mean=[])])
def test_bad_models_are_refused(kw):
    with pytest.raises(ValueError):
        LengthModel(**kw)


def test_bad_max_tokens_refused():
    with pytest.raises(ValueError):
        MODELS[0].expected(0, 0)
    with pytest.raises(ValueError):
        MODELS[0].sample(np.random.default_rng(0), 3, 0, math.inf)

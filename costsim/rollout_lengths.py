"""Response-length distributions for RL rollouts: the length of one sampled response, by training step.

Why a distribution and not a mean: a rollout round ends when its *longest* response ends (continuous
batching keeps the pool full only while sequences are waiting), so RL wall-clock at tens of thousands of
tokens is set by the upper tail, not by the average (issue 11). A model of lengths therefore needs its
shape, the truncation at the maximum output length (a response that reaches the limit is cut there), and the
expected maximum of n draws.

No curve for DeepSeek-R1 is chosen here: the paper gives only a qualitative one (average length growing from
hundreds to thousands of tokens, with a jump after the limit is raised at step 8,200;
docs/reference/deepseek-r1-and-inference.md §2). A scenario states its own assumption; this module supplies
the families:

- ``lognormal``: L = exp(N(μ, σ²)) with E[L] = mean, so μ = ln(mean) − σ²/2. Response lengths of sampled
  LLM outputs are right-skewed with a long tail; the lognormal is the usual two-parameter fit of such data
  (e.g. the length predictors of serving schedulers). σ is the log-space standard deviation: 0.6 gives a
  p99/median ratio of e^{2.33·0.6} ≈ 4.
- ``constant``: every response has the mean length (the closed-form twin's case).
- ``table``: an empirical shape — ``points`` are relative lengths, equally likely (e.g. the quantiles of an
  observed length histogram), rescaled at each step so that their mean is ``mean_at(step)``.

For every family ``mean`` is either one number or a table of (step, mean) points interpolated linearly in
step (clamped at both ends): the growth of the average length during training. ``mean`` is the mean of
the *untruncated* length; ``expected`` gives the mean after truncation, and ``untruncated_mean`` inverts it
for a scenario that states the observed (truncated) average, which is what training curves plot.

Lengths are continuous (tokens as a real number); the rollout simulator rounds a response up to whole
decode steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FAMILIES = ("lognormal", "constant", "table")

_SQRT2 = math.sqrt(2.0)
_erfc = np.frompyfunc(math.erfc, 1, 1)      # no scipy: math.erfc element-wise (a few thousand points at most)
_QUAD_POINTS = 4097                          # log-space grid of expected_max's quadrature (error ≪ 0.1%)


def _norm_sf(z) -> np.ndarray:
    """Survival function of the standard normal, 1 − Φ(z), accurate in the upper tail (erfc, not 1 − erf)."""
    return 0.5 * np.asarray(_erfc(np.asarray(z, dtype=float) / _SQRT2), dtype=float)


@dataclass(frozen=True)
class LengthModel:
    """Response length in tokens of one sample, by training step."""
    family: str                                    # "lognormal" | "constant" | "table"
    mean: float | tuple[tuple[int, float], ...]    # mean tokens, or (step, mean) points, linear in step
    sigma: float = 0.6                             # lognormal shape (log-space std)
    points: tuple[float, ...] | None = None        # "table": relative lengths, equally likely

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"length family must be one of {', '.join(FAMILIES)} (got {self.family!r})")
        if isinstance(self.mean, (int, float)):
            if not (self.mean > 0 and math.isfinite(self.mean)):
                raise ValueError(f"mean response length must be positive and finite (got {self.mean})")
        else:
            pts = tuple((int(s), float(m)) for s, m in self.mean)
            if not pts:
                raise ValueError("mean response length table is empty")
            steps = [s for s, _ in pts]
            if any(b <= a for a, b in zip(steps, steps[1:])):
                raise ValueError(f"mean response length table: steps must increase (got {steps})")
            if not all(m > 0 and math.isfinite(m) for _, m in pts):
                raise ValueError("mean response length table: every mean must be positive and finite")
            object.__setattr__(self, "mean", pts)
        if self.family == "lognormal" and not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"lognormal sigma must be positive and finite (got {self.sigma})")
        if self.family == "table":
            if not self.points:
                raise ValueError("length family 'table' needs points (relative lengths, equally likely)")
            pts = tuple(float(p) for p in self.points)
            if not all(p > 0 and math.isfinite(p) for p in pts):
                raise ValueError("length table points must be positive and finite")
            object.__setattr__(self, "points", pts)

    # -- the schedule -------------------------------------------------------------------------------------
    def mean_at(self, step: int) -> float:
        """Untruncated mean length at a training step (piecewise-linear in step, clamped at the ends)."""
        if isinstance(self.mean, tuple):
            s, m = zip(*self.mean)
            return float(np.interp(step, s, m))
        return float(self.mean)

    def _mu(self, step: int) -> float:
        return math.log(self.mean_at(step)) - 0.5 * self.sigma ** 2

    def _table_values(self, step: int) -> np.ndarray:
        p = np.asarray(self.points, dtype=float)
        return p * (self.mean_at(step) / p.mean())

    # -- draws ----------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, n: int, step: int, max_tokens: float) -> np.ndarray:
        """n response lengths, truncated: a response that reaches max_tokens is cut there (= max_tokens)."""
        _check_max(max_tokens)
        if self.family == "lognormal":
            x = rng.lognormal(self._mu(step), self.sigma, n)
        elif self.family == "constant":
            x = np.full(n, self.mean_at(step))
        else:
            x = rng.choice(self._table_values(step), size=n)
        return np.minimum(x, float(max_tokens))

    # -- analytic moments -----------------------------------------------------------------------------------
    def truncated_fraction(self, step: int, max_tokens: float) -> float:
        """P(L ≥ max_tokens): the share of responses cut at the limit."""
        _check_max(max_tokens)
        if self.family == "lognormal":
            return float(_norm_sf((math.log(max_tokens) - self._mu(step)) / self.sigma))
        if self.family == "constant":
            return float(self.mean_at(step) >= max_tokens)
        return float(np.mean(self._table_values(step) >= max_tokens))

    def expected(self, step: int, max_tokens: float) -> float:
        """E[min(L, max_tokens)], closed form.

        Lognormal: E[min(L, M)] = e^{μ+σ²/2}·Φ((ln M − μ − σ²)/σ) + M·(1 − Φ((ln M − μ)/σ)) (the partial
        expectation of a lognormal plus the mass cut at M).
        """
        _check_max(max_tokens)
        if self.family == "lognormal":
            mu, s, lm = self._mu(step), self.sigma, math.log(max_tokens)
            below = self.mean_at(step) * (1.0 - float(_norm_sf((lm - mu - s * s) / s)))
            return below + max_tokens * float(_norm_sf((lm - mu) / s))
        if self.family == "constant":
            return min(self.mean_at(step), float(max_tokens))
        return float(np.minimum(self._table_values(step), max_tokens).mean())

    def expected_max(self, n: int, step: int, max_tokens: float) -> float:
        """E[max of n truncated draws], without sampling.

        E[max] = ∫₀^M (1 − F(x)ⁿ) dx for a variable bounded by M. Lognormal: trapezoid quadrature in u = ln x
        (dx = eᵘ du) on a grid from μ − 10σ to ln M, with Fⁿ = exp(n·log1p(−S)) so that the upper tail
        (S ~ 1/n) keeps its precision; the part below the grid adds at most e^{μ−10σ}. Table: exact over the
        sorted support, E = Σ v_j (F_jⁿ − F_{j−1}ⁿ).
        """
        _check_max(max_tokens)
        if n < 1:
            raise ValueError(f"expected_max needs n ≥ 1 (got {n})")
        if self.family == "constant":
            return min(self.mean_at(step), float(max_tokens))
        if self.family == "table":
            v = np.sort(np.minimum(self._table_values(step), max_tokens))
            vals, counts = np.unique(v, return_counts=True)
            cdf = np.cumsum(counts) / len(v)
            cdf_n = cdf ** n
            return float(np.sum(vals * np.diff(np.concatenate(([0.0], cdf_n)))))
        mu, s = self._mu(step), self.sigma
        hi = math.log(max_tokens)
        lo = min(mu - 10.0 * s, hi - 1e-9)
        u = np.linspace(lo, hi, _QUAD_POINTS)
        sf = _norm_sf((u - mu) / s)
        with np.errstate(divide="ignore"):
            not_all_below = -np.expm1(n * np.log1p(-np.minimum(sf, 1.0)))   # 1 − F(eᵘ)ⁿ
        f = not_all_below * np.exp(u)
        integral = float(np.sum((f[1:] + f[:-1]) * np.diff(u)) / 2.0)
        return min(integral + math.exp(lo) * float(not_all_below[0]), float(max_tokens))   # trapezoid on eᵘ errs up

    def survival(self, x, step: int, max_tokens: float) -> np.ndarray:
        """P(min(L, M) > x) for an array x (0 at and above M)."""
        _check_max(max_tokens)
        x = np.asarray(x, dtype=float)
        if self.family == "lognormal":
            with np.errstate(divide="ignore"):
                z = (np.log(np.maximum(x, 0.0)) - self._mu(step)) / self.sigma
            out = _norm_sf(z)
        elif self.family == "constant":
            out = (x < self.mean_at(step)).astype(float)
        else:
            v = np.sort(self._table_values(step))
            out = 1.0 - np.searchsorted(v, x, side="right") / len(v)
        return np.where(x >= max_tokens, 0.0, out)


def untruncated_mean(observed: float, max_tokens: float, family: str = "lognormal", sigma: float = 0.6,
                     points: tuple[float, ...] | None = None) -> float:
    """The untruncated mean whose truncated mean E[min(L, M)] equals `observed` (bisection in log space).

    Training curves plot the average of responses as generated, i.e. cut at the limit; a scenario that reads
    such a curve passes the reading through this to get the model's `mean`.
    """
    _check_max(max_tokens)
    if not 0 < observed < max_tokens:
        raise ValueError(f"observed mean {observed} must lie in (0, max_tokens = {max_tokens})")

    def trunc(m: float) -> float:
        return LengthModel(family, m, sigma, points).expected(0, max_tokens)

    lo, hi = math.log(observed), math.log(observed)
    while trunc(math.exp(hi)) < observed:
        hi += 1.0
        if hi > math.log(observed) + 60:
            raise ValueError(f"no untruncated mean gives a truncated mean of {observed} under {max_tokens}")
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if trunc(math.exp(mid)) < observed else (lo, mid)
    return math.exp(0.5 * (lo + hi))


def _check_max(max_tokens: float) -> None:
    if not (max_tokens > 0 and math.isfinite(max_tokens)):
        raise ValueError(f"max_tokens must be positive and finite (got {max_tokens})")

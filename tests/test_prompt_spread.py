"""Prompt-length spread in prefill (costsim.infer.lengths): a lognormal of log-sd sigma around the mean prompt.

Checks: the classes' moments against the lognormal's closed form; attention FLOPs against a Monte Carlo twin that
builds each sampled prompt on its own at sigma 0 (no classes); everything linear in the tokens left unchanged;
the serve phase and its error line."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from costsim.cli import app
from costsim.efficiency import Efficiency, fitted
from costsim.errors import PlanError
from costsim.hardware import load_profile
from costsim.infer import ServingPlan, prefill
from costsim.infer.forward import PREFILL, forward_units
from costsim.infer.lengths import EQUAL, prompt_classes
from costsim.model import load_builtin

L8 = load_builtin("llama3.1-8b")
V3 = load_builtin("deepseek-v3")
H100 = load_profile("h100-sxm")
H800 = load_profile("h800-sxm")
EFF = fitted()


@pytest.mark.parametrize("sigma,tol", [(0.3, 1e-12), (0.6, 1e-12), (1.0, 1e-10), (1.5, 2e-8), (2.0, 3e-5)])
def test_classes_have_the_lognormal_moments(sigma, tol):
    c = prompt_classes(sigma)
    assert sum(w for w, _ in c) == pytest.approx(1.0, abs=1e-12)
    assert sum(w * x for w, x in c) == pytest.approx(1.0, abs=1e-12)
    assert sum(w * x * x for w, x in c) == pytest.approx(math.exp(sigma ** 2), rel=tol)


def test_no_spread_is_one_class_and_bad_sigma_is_refused():
    assert prompt_classes(0.0) == EQUAL
    with pytest.raises(ValueError, match="prompt_sigma"):
        prompt_classes(-0.1)
    with pytest.raises(PlanError, match="prompt_sigma"):
        prefill(L8, H100, ServingPlan(), EFF, 1000, 0, 1, prompt_sigma=5.0)


def _flash_flops(units) -> float:
    return sum(count * op.flops for _, count, ops in units for op in ops if op.name.startswith("attn.flash"))


def _linear_ops(units) -> dict[str, float]:
    return {f"{u}:{op.name}": count * op.flops for u, count, ops in units for op in ops
            if not op.name.startswith("attn.flash")}


@pytest.mark.parametrize("model,hw,plan", [
    (L8, H100, ServingPlan()),
    (V3, H800, ServingPlan(dp=32, ep=32, precision="fp8", redundant_experts=32)),
])
def test_attention_flops_match_a_monte_carlo_twin(model, hw, plan):
    """Twin: 1,000,000 prompts drawn from the lognormal, each built alone at sigma 0 (its own length, the same
    cached share); the mean of their attention FLOPs per sequence against the classed batch's."""
    sigma, mean, hit = 0.8, 3000.0, 0.5
    rng = np.random.default_rng(7)
    lengths = mean * np.exp(sigma * rng.standard_normal(1_000_000) - sigma ** 2 / 2)
    # attention FLOPs of one sequence are a quadratic in its length: three exact builds give it everywhere
    xs = np.array([0.5, 1.0, 2.0]) * mean
    ys = [_flash_flops(forward_units(model, plan, hw, 1.0, x * (1 - hit), x * hit, PREFILL)) for x in xs]
    quad = np.polyfit(xs, ys, 2)
    twin = float(np.mean(np.polyval(quad, lengths)))
    classed = _flash_flops(forward_units(model, plan, hw, 1.0, mean * (1 - hit), mean * hit, PREFILL,
                                         prompt_classes(sigma)))
    assert classed == pytest.approx(twin, rel=0.015)      # Monte Carlo sd of E[L²] at σ 0.8: 0.35%
    equal = _flash_flops(forward_units(model, plan, hw, 1.0, mean * (1 - hit), mean * hit, PREFILL))
    assert classed / equal == pytest.approx(math.exp(sigma ** 2), rel=0.01)


def test_spread_changes_only_attention():
    plan = ServingPlan(dp=32, ep=32, precision="fp8", redundant_experts=32)
    a = forward_units(V3, plan, H800, 3.0, 1916, 2468, PREFILL)
    b = forward_units(V3, plan, H800, 3.0, 1916, 2468, PREFILL, prompt_classes(1.0))
    assert _linear_ops(a) == _linear_ops(b)
    slow = prefill(V3, H800, plan, EFF, 4384, 2468, 3, prompt_sigma=1.0)
    fast = prefill(V3, H800, plan, EFF, 4384, 2468, 3)
    assert slow.seconds > fast.seconds and slow.tokens == fast.tokens


def _serve(tmp_path, **extra):
    raw = {"name": "t", "model": "llama3.1-8b", "cluster": {"gpu": "h100-sxm", "num_gpus": 8},
           "phases": [{"name": "day", "kind": "serve", "hours": 24, "input_tokens": 1e9, "output_tokens": 2e8,
                       "prompt_tokens": 4000, **extra}]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return CliRunner().invoke(app, ["estimate", str(path), "--format", "json"])


def test_serve_phase_prompt_sigma(tmp_path):
    plain, spread = _serve(tmp_path), _serve(tmp_path, prompt_sigma=1.0)
    assert plain.exit_code == 0 and spread.exit_code == 0
    f0 = json.loads(plain.stdout)["phases"][0]
    f1 = json.loads(spread.stdout)["phases"][0]
    assert f1["prefill_capacity_tokens_per_s_per_node"] < f0["prefill_capacity_tokens_per_s_per_node"]
    assert f1["decode_capacity_tokens_per_s_per_node"] == f0["decode_capacity_tokens_per_s_per_node"]
    bad = _serve(tmp_path, prompt_sigma=2.5)
    assert bad.exit_code == 2 and "prompt_sigma" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_no_prompt_is_longer_than_the_context():
    """Classes above the model's context are cut to it; the others stretch so the mean prompt is unchanged."""
    cap = V3.max_position_embeddings / 4384
    c = prompt_classes(2.0, cap)
    assert max(x for _, x in c) == pytest.approx(cap)
    assert sum(w * x for w, x in c) == pytest.approx(1.0, abs=1e-9)
    assert sum(w * x * x for w, x in c) < math.exp(4.0)
    assert prompt_classes(0.5, 1e9) == prompt_classes(0.5)          # a far limit cuts nothing
    with pytest.raises(PlanError, match="context"):
        prefill(L8, H100, ServingPlan(), EFF, L8.max_position_embeddings + 1, 0, 1)


def test_length_classes_share_one_launch():
    """A vanishing spread costs (almost) nothing even with a per-kernel overhead: the classes are one
    variable-length kernel, not 16 launches."""
    slow = Efficiency(EFF.compute_derate, 10e-6, EFF.overlap_slowdown)
    a = prefill(L8, H100, ServingPlan(), slow, 4000, 0, 2)
    b = prefill(L8, H100, ServingPlan(), slow, 4000, 0, 2, prompt_sigma=1e-6)
    assert b.seconds == pytest.approx(a.seconds, rel=1e-5)

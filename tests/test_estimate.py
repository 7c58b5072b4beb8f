"""The end-to-end flow on the shipped scenarios: inheritance, reported phases, what-ifs, accounting."""
from pathlib import Path

import pytest

from costsim.errors import PlanError
from costsim.estimate import estimate
from costsim.scenario import load_scenario

SCEN = Path(__file__).resolve().parent.parent / "scenarios"


@pytest.fixture(scope="module")
def h800():
    return estimate(load_scenario(SCEN / "deepseek-v3.yaml"))


@pytest.fixture(scope="module")
def h100():
    return estimate(load_scenario(SCEN / "deepseek-v3-on-h100.yaml"))


def test_phases_inherit_precision_and_take_their_own_overrides(h800):
    pre, ctx32, ctx128, post = h800.phases
    assert pre.plan.precision == ctx32.plan.precision == ctx128.plan.precision == "fp8"
    assert (ctx32.plan.cp, ctx128.plan.cp) == (8, 32)
    assert ctx32.plan.pp == pre.plan.pp == 16                      # untouched fields come from the scenario
    assert post.reported and post.gpu_hours == 5000 and post.cost_usd == pytest.approx(10_000)


def test_totals_add_up_and_dollars_follow_the_price(h800):
    assert h800.gpu_hours == pytest.approx(sum(p.gpu_hours for p in h800.phases))
    assert h800.cost_usd == pytest.approx(2.0 * h800.gpu_hours)
    pre = h800.phases[0]
    assert pre.gpu_hours == pytest.approx(2048 * pre.steps * pre.step_time_s / 3600)
    assert pre.steps == round(14.8e12 / (15360 * 4096))


def test_step_breakdowns_sum_to_the_step(h800):
    for p in h800.phases[:3]:
        bd = p.breakdown
        assert bd.total == pytest.approx(p.step_time_s)
        assert sum(bd.dualpipe_phases.values()) == pytest.approx(p.step_time_s)
        assert min(bd.as_dict().values()) >= 0


def test_h100_what_if_only_changes_nvlink(h800, h100):
    a, b = h800.phases[0], h100.phases[0]
    assert b.link_busy_s["network"] == pytest.approx(a.link_busy_s["network"])
    # NVLink traffic is the same bytes over a faster link (hardware.md: 400 vs 900 GB/s bidirectional)
    assert b.link_busy_s["nvlink"] < 0.6 * a.link_busy_s["nvlink"]
    assert b.step_time_s <= a.step_time_s
    assert h100.cost_usd > h800.cost_usd                            # $4.92 vs $2.00 per GPU-hour


def test_nvlink_heavy_plan_shows_the_h800_gap():
    over = ["parallelism.tp=8", "parallelism.ep=8", "parallelism.pp=16", "parallelism.sequence_parallel=true",
            "parallelism.schedule=1f1b", "phases.0.global_batch_size=1920", "phases=[{name: p, precision: fp8, "
            "seq_len: 4096, global_batch_size: 1920, steps: 10}]"]
    t800 = estimate(load_scenario(SCEN / "deepseek-v3.yaml", over)).phases[0].step_time_s
    t100 = estimate(load_scenario(SCEN / "deepseek-v3-on-h100.yaml", over)).phases[0].step_time_s
    assert t100 < 0.95 * t800


def test_a_plan_that_does_not_fit_says_why():
    with pytest.raises(PlanError, match=r"needs [\d.]+ GiB per GPU .* but h800-sxm has 80.0 GiB"):
        estimate(load_scenario(SCEN / "deepseek-v3.yaml", ["parallelism.recompute=none"]))

"""Whole-run Monte-Carlo (costsim.sim.run) against the closed forms of formulas.md (Young, Daly, Llama 3)."""
import json
import math

import pytest
from pydantic import ValidationError

from costsim.sim.reliability import (
    LLAMA3_GPU_MTBF_H, Reliability, analytic_waste_fraction, checkpoint_bytes_for, daly_interval, job_mtbf_s,
    young_interval)
from costsim.sim.run import RunPhase, simulate_run

GB = 1e9


def _renewal_waste(tau_s, delta_s, mtbf_s, restart_s):
    """Exact waste of the simulated model. A segment of τ + δ with Poisson failures (rate 1/M), each costing the
    elapsed segment plus a restart R that failures also interrupt, takes E = M·e^{R/M}·(e^{(τ+δ)/M} − 1)
    (renewal argument; Daly 2006's complete model); waste = 1 − τ/E."""
    e = mtbf_s * math.exp(restart_s / mtbf_s) * math.expm1((tau_s + delta_s) / mtbf_s)
    return 1.0 - tau_s / e


def test_deterministic_per_seed_and_different_across_seeds():
    phases = [("pre", 200_000, 8.0)]
    rel = Reliability(replicates=4, seed=7)
    a = simulate_run(phases, 4096, checkpoint_bytes_for(70e9), rel)
    b = simulate_run(phases, 4096, checkpoint_bytes_for(70e9), rel)
    c = simulate_run(phases, 4096, checkpoint_bytes_for(70e9), rel.model_copy(update={"seed": 8}))
    assert a == b
    assert [r.wall_clock_s for r in a.replicates] != [r.wall_clock_s for r in c.replicates]
    # replicates of one seed differ from each other, and adjacent seeds share no replicate
    assert len({r.wall_clock_s for r in a.replicates + c.replicates}) == 8


@pytest.mark.parametrize("mtbf_h", [math.inf, 1e15])
def test_no_failures_wall_clock_is_compute_plus_checkpoint_writes(mtbf_h):
    # 1000 s interval: 100 steps of 10 s, 40 steps of 25 s; both phases end with a shorter segment
    phases = [RunPhase("short", 1_050, 10.0), RunPhase("long", 130, 25.0)]
    rel = Reliability(gpu_mtbf_hours=mtbf_h, checkpoint_interval_s=1000.0, checkpoint_write_gbps=2.0,
                      restart_s=600.0, replicates=3)
    s = simulate_run(phases, 512, 60 * GB, rel)
    compute_s = 1_050 * 10.0 + 130 * 25.0
    checkpoints = 11 + 4          # ceil(1050/100) + ceil(130/40)
    for r in s.replicates:
        assert r.failures == 0 and r.lost_work_s == 0 and r.restart_s == 0
        assert r.checkpoints == checkpoints
        assert r.wall_clock_s == pytest.approx(compute_s + checkpoints * 30.0, rel=1e-12)
        assert r.goodput == pytest.approx(compute_s / r.wall_clock_s, rel=1e-12)
        assert r.gpu_hours == pytest.approx(r.wall_clock_s * 512 / 3600, rel=1e-12)


def test_time_accounting_closes_with_failures():
    s = simulate_run([("pre", 500_000, 5.0)], 16_384, checkpoint_bytes_for(405e9), Reliability(replicates=4))
    for r in s.replicates:
        assert r.failures > 0
        assert r.wall_clock_s == pytest.approx(
            500_000 * 5.0 + r.checkpoint_s + r.lost_work_s + r.restart_s, rel=1e-9)
        assert r.useful_gpu_hours / r.gpu_hours == pytest.approx(r.goodput, rel=1e-12)


def test_mean_waste_matches_young_daly_analytic():
    # δ ≪ τ ≪ M (δ = 10 s, τ ≈ Young's 1414 s, M = 1e5 s, R = 60 s): the first-order δ/τ + τ/2M + R/M is
    # 0.5% above the exact renewal waste. 40 replicates × ~1000 failures put MC noise near 0.3%.
    mtbf_s, delta_s, tau_s, restart_s, n = 1e5, 10.0, 1400.0, 60.0, 1000
    rel = Reliability(gpu_mtbf_hours=mtbf_s * n / 3600, checkpoint_interval_s=tau_s,
                      checkpoint_write_gbps=1.0, restart_s=restart_s, replicates=40, seed=3)
    s = simulate_run([("pre", 10_000_000, 10.0)], n, delta_s * GB, rel)
    simulated = 1.0 - s.goodput.mean
    analytic = analytic_waste_fraction(tau_s, delta_s, mtbf_s, restart_s)
    assert s.analytic_waste_fraction == pytest.approx(analytic)
    assert simulated == pytest.approx(analytic, rel=0.02)
    assert simulated == pytest.approx(_renewal_waste(tau_s, delta_s, mtbf_s, restart_s), rel=0.01)


def test_default_mtbf_reproduces_llama3_failures():
    # formulas.md: 419 unexpected interruptions in 54 days on 16,384 H100 → per-GPU MTBF ≈ 5.8 years
    assert LLAMA3_GPU_MTBF_H == pytest.approx(54 * 24 * 16_384 / 419)
    assert LLAMA3_GPU_MTBF_H / (365.25 * 24) == pytest.approx(5.8, abs=0.05)
    rel = Reliability(replicates=64, seed=1)
    assert rel.gpu_mtbf_hours == LLAMA3_GPU_MTBF_H
    assert job_mtbf_s(rel.gpu_mtbf_hours, 16_384) / 3600 == pytest.approx(1296 / 419)
    s = simulate_run([("pre", 400_000, 10.0)], 16_384, checkpoint_bytes_for(405e9), rel)
    per_54_days = [r.failures / (r.wall_clock_s / 86400) * 54 for r in s.replicates]
    assert sum(per_54_days) / len(per_54_days) == pytest.approx(419, rel=0.03)


def test_job_failure_rate_scales_with_gpu_count():
    assert job_mtbf_s(50_000, 2_048) == pytest.approx(4 * job_mtbf_s(50_000, 8_192))
    rel = Reliability(gpu_mtbf_hours=5_000, checkpoint_interval_s=1800, restart_s=300, replicates=16)
    rates = []
    for n in (2_048, 8_192):
        s = simulate_run([("pre", 200_000, 10.0)], n, 1e12, rel)
        rates.append(sum(r.failures for r in s.replicates) / sum(r.wall_clock_s for r in s.replicates))
        assert rates[-1] * 3600 == pytest.approx(n / 5_000, rel=0.05)
    assert rates[1] / rates[0] == pytest.approx(4, rel=0.05)


def test_stragglers_slow_the_run():
    phases = [("pre", 10_000, 6.0)]
    base = Reliability(gpu_mtbf_hours=math.inf, checkpoint_interval_s=600, replicates=8)
    slow = base.model_copy(update={"straggler_fraction": 0.05, "straggler_slowdown": 1.3})
    ref = simulate_run(phases, 16, 1e11, base)
    s = simulate_run(phases, 16, 1e11, slow)
    counts = [r.stragglers for r in s.replicates]
    assert 0 in counts and any(counts)    # P(no straggler among 16) = 0.95^16 ≈ 0.44
    for r in s.replicates:
        factor = 1.3 if r.stragglers else 1.0    # the interval counts slowed steps: 77 of 7.8 s, not 100
        assert r.wall_clock_s == pytest.approx(10_000 * 6.0 * factor + r.checkpoint_s, rel=1e-12)
        assert r.checkpoints == (130 if r.stragglers else 100)
    assert s.wall_clock_days.mean > ref.wall_clock_days.mean
    assert s.goodput.mean < ref.goodput.mean
    # thousands of GPUs: nearly every replicate has a straggler
    big = simulate_run(phases, 4096, 1e11, slow.model_copy(update={"straggler_fraction": 0.01}))
    assert all(r.stragglers for r in big.replicates)


@pytest.mark.parametrize("field,value", [
    ("gpu_mtbf_hours", -1.0), ("gpu_mtbf_hours", 0), ("checkpoint_interval_s", 0),
    ("checkpoint_write_gbps", 0), ("checkpoint_bytes", -5), ("restart_s", -1), ("straggler_fraction", 1.5),
    ("straggler_slowdown", 0.5), ("replicates", 0), ("seed", -1), ("mtbf", 3.0)])
def test_bad_reliability_values_name_the_field(field, value):
    with pytest.raises(ValidationError) as exc:
        Reliability(**{field: value})
    assert exc.value.errors()[0]["loc"] == (field,)
    assert field in str(exc.value)


def test_closed_forms():
    assert young_interval(10.0, 1e5) == pytest.approx(math.sqrt(2e6))
    # Daly → Young as δ/M → 0; Daly's τ = M beyond δ ≥ 2M
    assert daly_interval(1.0, 1e8) == pytest.approx(young_interval(1.0, 1e8), rel=1e-4)
    assert daly_interval(60.0, 3600.0) == pytest.approx(
        math.sqrt(7200 * 60) * (1 + math.sqrt(60 / 7200) / 3 + 60 / 7200 / 9) - 60)
    assert daly_interval(500.0, 200.0) == 200.0
    tau = young_interval(10.0, 1e5)
    assert analytic_waste_fraction(tau, 10.0, 1e5, 60.0) == pytest.approx(math.sqrt(2 * 10 / 1e5) + 60 / 1e5)
    assert checkpoint_bytes_for(1e9) == 14e9 and checkpoint_bytes_for(1e9, "bf16") == 10e9


def test_default_interval_is_daly_and_reliability_bytes_override():
    rel = Reliability(checkpoint_write_gbps=50.0, replicates=2)
    s = simulate_run([("pre", 100_000, 10.0)], 8_192, 4e12, rel)
    delta = 4e12 / 50e9
    assert s.checkpoint_write_s == pytest.approx(delta)
    assert s.checkpoint_interval_s == pytest.approx(daly_interval(delta, job_mtbf_s(LLAMA3_GPU_MTBF_H, 8_192)))
    over = simulate_run([("pre", 100_000, 10.0)], 8_192, 4e12, rel.model_copy(update={"checkpoint_bytes": 1e12}))
    assert over.checkpoint_write_s == pytest.approx(1e12 / 50e9)


def test_summary_as_dict_is_plain_json():
    s = simulate_run([RunPhase("pre", 50_000, 10.0)], 1_024, 1e12, Reliability(replicates=5))
    d = s.as_dict()
    json.dumps(d, allow_nan=False)
    for key in ("wall_clock_days", "gpu_hours", "goodput", "failures"):
        assert set(d[key]) == {"mean", "p10", "p90"}
        assert all(type(v) is float for v in d[key].values())
        assert d[key]["p10"] <= d[key]["mean"] <= d[key]["p90"] or d[key]["p10"] == d[key]["p90"]
    for key in ("checkpoint_interval_s", "checkpoint_write_s", "job_mtbf_h"):
        assert type(d[key]) is float
    off = simulate_run([("pre", 10, 1.0)], 8, 1e9, Reliability(gpu_mtbf_hours=math.inf, replicates=1))
    assert off.as_dict()["job_mtbf_h"] is None and off.goodput.mean < 1


def test_bad_phases():
    with pytest.raises(ValueError, match="step_time_s"):
        simulate_run([("pre", 10, 0.0)], 8, 1e9, Reliability())
    with pytest.raises(ValueError, match="no steps"):
        simulate_run([("pre", 0, 1.0)], 8, 1e9, Reliability())
    with pytest.raises(ValueError, match="num_gpus"):
        simulate_run([("pre", 10, 1.0)], 0, 1e9, Reliability())

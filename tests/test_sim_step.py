"""The SimPy step simulator against the schedules' definitions and the closed forms (formulas.md)."""
from collections import Counter

import pytest

from costsim.estimate import estimate
from costsim.scenario import load_scenario, parse_scenario
from costsim.sim.schedules import dualpipe, interleaved, one_f_one_b, rank_actions
from costsim.sim.step import ChunkTimes, simulate_phase, simulate_step
from costsim.sim.timeline import write_timeline
from costsim.validate import SCENARIOS, all_cases

SHAPES = [(1.0, 1.0, 0.5), (1.0, 2.0, 1.0), (1.3, 1.7, 0.4)]   # F, B (input grad), W per chunk


def closed_form_bubble(schedule: str, p: int, v: int, f: float, b: float, w: float) -> float:
    """formulas.md with B = full backward = b + w; DualPipe's F&B = F + B with no communication."""
    full = b + w
    return {"1f1b": (p - 1) * (f + full), "interleaved": (p - 1) * (f + full) / v,
            "zero-bubble": (p - 1) * (f + full - 2 * w),
            "dualpipe": (p / 2 - 1) * ((f + full) + full - 3 * w)}[schedule]


@pytest.mark.parametrize("schedule, p, m, v", [
    ("1f1b", 4, 16, 1), ("1f1b", 8, 64, 1), ("interleaved", 4, 16, 2), ("interleaved", 8, 32, 4),
    ("zero-bubble", 4, 16, 1), ("zero-bubble", 8, 32, 1), ("dualpipe", 4, 16, 1), ("dualpipe", 16, 120, 1)])
@pytest.mark.parametrize("f, b, w", SHAPES)
def test_uniform_stages_bubble_equals_closed_form(schedule, p, m, v, f, b, w):
    chunks = 2 if schedule == "dualpipe" else v
    ct = ChunkTimes(f / v, b / v, w / v) if schedule == "interleaved" else ChunkTimes(f, b, w)
    res = simulate_step([[ct] * chunks for _ in range(p)], schedule, m, v)
    bubble = res.step_time_s - m * (f + b + w)
    assert bubble == pytest.approx(closed_form_bubble(schedule, p, v, f, b, w), rel=0.01)
    assert max(res.busy_s) == pytest.approx(m * (f + b + w))


def test_1f1b_warmup_steady_cooldown_counts():
    p, m = 4, 10
    for r in range(p):
        kinds = "".join(a.kind for a in one_f_one_b(p, m, r))
        warm = p - r - 1
        assert kinds == "F" * warm + "FB" * (m - warm) + "B" * warm
        assert [a.mb for a in one_f_one_b(p, m, r) if a.kind == "B"] == list(range(m))


def test_interleaved_order_follows_megatron():
    p, m, v = 4, 8, 2
    acts = interleaved(p, m, v, 0)
    first = [(a.chunk, a.mb) for a in acts[:8]]
    assert first == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]   # groups of p
    warm = (p - 1) * 2 + (v - 1) * p
    assert all(a.kind == "F" for a in acts[:warm + 1]) and acts[warm + 1].kind == "B"
    assert Counter(a.kind for a in acts) == {"F": m * v, "B": m * v}


def test_zero_bubble_splits_backward_and_defers_weights():
    p, m = 4, 8
    for r in range(p):
        acts = one_f_one_b(p, m, r, zero_bubble=True)
        assert Counter(a.kind for a in acts) == {"F": m, "B": m, "W": m}
        assert all(a.zb for a in acts if a.kind == "B")
        # a weight gradient never precedes its input gradient
        seen_b = 0
        for a in acts:
            seen_b += a.kind == "B"
            assert a.kind != "W" or a.mb < seen_b


def test_dualpipe_program_shape():
    p, m = 8, 20
    for r in range(p):
        acts = dualpipe(p, m, r)
        fwd = sum(1 for a in acts if a.kind in ("F", "FB"))
        bwd = sum(1 for a in acts if a.kind == "B") + sum(1 for a in acts if a.kind == "FB")
        assert fwd == bwd == m                                   # every micro-batch once on every rank
        assert sum(a.zb for a in acts if a.kind == "B") == sum(a.kind == "W" for a in acts)
        assert any(a.kind == "FB" for a in acts)                 # the overlapped pairs of the steady state
        assert {a.chunk for a in acts if a.kind == "F"} == {0, 1}  # both directions


def _cases():
    seen, out = set(), []
    for c in all_cases():
        if id(c.scenario) not in seen:
            seen.add(id(c.scenario))
            out.append((f"{c.group}: {c.case}", c.scenario))
    return out


@pytest.mark.parametrize("name, raw", _cases(), ids=[n for n, _ in _cases()])
def test_simulated_step_agrees_with_closed_form_on_validation_cases(name, raw):
    est = estimate(parse_scenario(dict(raw)), SCENARIOS)
    p = est.phases[0]
    sim = simulate_phase(p.costs, est.efficiency.overlap_efficiency)
    assert sim.step_time_s == pytest.approx(p.step_time_s, rel=0.05)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS.glob("*.yaml")), ids=lambda s: s.name)
def test_simulated_step_agrees_with_closed_form_on_shipped_scenarios(scenario):
    est = estimate(load_scenario(scenario), scenario.parent)
    for p in est.phases:
        if not p.reported:
            sim = simulate_phase(p.costs, est.efficiency.overlap_efficiency)
            assert sim.step_time_s == pytest.approx(p.step_time_s, rel=0.05), p.name


def test_timeline_has_one_compute_trace_per_stage(tmp_path):
    est = estimate(load_scenario(SCENARIOS / "deepseek-v3.yaml"), SCENARIOS)
    p = est.phases[0]
    res = simulate_phase(p.costs, est.efficiency.overlap_efficiency, trace=True)
    out = write_timeline(res, "DeepSeek-V3", tmp_path / "t.html")
    html = out.read_text()
    assert html.lower().startswith("<!doctype html>") and "plotly" in html.lower() and '<script src="http' not in html   # self-contained
    for r in range(p.plan.pp):
        assert f'"name":"stage {r}"' in html
    assert f'"name":"stage {p.plan.pp}"' not in html


def test_rank_actions_dispatch():
    assert rank_actions("zero-bubble", 4, 8, 1, 0)[0].kind == "F"
    assert any(a.kind == "FB" for a in rank_actions("dualpipe", 4, 8, 1, 1))

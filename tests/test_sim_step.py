"""The SimPy step simulator against the schedules' definitions and the closed forms (formulas.md)."""
from collections import Counter

import pytest

import ast
import dataclasses
from pathlib import Path

from costsim.errors import PlanError
from costsim.estimate import estimate
from costsim.schedule import StageCost
from costsim.scenario import load_scenario, parse_scenario
from costsim.sim.schedules import dualpipe, interleaved, one_f_one_b, rank_actions
from costsim.sim.step import RankTail, Rules, phase_inputs, run_flows, simulate_phase, simulate_step
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
    ct = StageCost(f=f / v, b=b / v, w=w / v) if schedule == "interleaved" else StageCost(f=f, b=b, w=w)
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


POST_TRAINING_GROUPS = ("DeepSeek serving day", "DeepSeek-R1")


def _cases():
    seen, out = set(), []
    for c in all_cases():
        if c.group in POST_TRAINING_GROUPS:   # no training step as their first phase
            continue
        if id(c.scenario) not in seen:
            seen.add(id(c.scenario))
            out.append((f"{c.group}: {c.case}", c.scenario))
    return out


def _sim(est, p):
    return simulate_phase(p.costs, overlap_slowdown=est.efficiency.overlap_slowdown)


@pytest.mark.parametrize("name, raw", _cases(), ids=[n for n, _ in _cases()])
def test_simulated_step_agrees_with_closed_form_on_validation_cases(name, raw):
    try:
        est = estimate(parse_scenario(dict(raw)), SCENARIOS)
    except PlanError as exc:     # a failed prediction in `costsim validate`; nothing to simulate
        pytest.skip(str(exc))
    p = est.phases[0]
    assert _sim(est, p).step_time_s == pytest.approx(p.step_time_s, rel=0.10)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS.glob("*.yaml")), ids=lambda s: s.name)
def test_simulated_step_agrees_with_closed_form_on_shipped_scenarios(scenario):
    """Within 10%: where they differ the simulator is the better account (costsim/sim/step.py docstring)."""
    est = estimate(load_scenario(scenario), scenario.parent)
    for p in est.phases:
        if p.trained:       # generate, rl and serve phases have no training step (rl: tests/test_rollout_sim.py)
            assert _sim(est, p).step_time_s == pytest.approx(p.step_time_s, rel=0.10), p.name


def test_float_second_argument_is_the_former_overlap_efficiency():
    est = estimate(load_scenario(SCENARIOS / "gpt3-175b-h100.yaml"), SCENARIOS)
    p = est.phases[0]
    s = est.efficiency.overlap_slowdown
    assert simulate_phase(p.costs, 1.0 - s).step_time_s == pytest.approx(_sim(est, p).step_time_s)


# -- links: processor sharing ---------------------------------------------------------------------------
# A transfer is (seconds alone, NVLink work s, NIC work s); work = wire bytes / busbw.

def test_two_equal_flows_on_one_nic_take_twice_as_long_as_one():
    assert run_flows([(0.0, (1.0, 0.0, 1.0))]) == pytest.approx([1.0])
    assert run_flows([(0.0, (1.0, 0.0, 1.0)), (0.0, (1.0, 0.0, 1.0))]) == pytest.approx([2.0, 2.0])


def test_flow_starting_when_another_is_half_done():
    # A alone for 1 s (half done), then both at half speed: A's last second of work takes 2 s (ends at 3),
    # in which B does 1 of its 2; B alone again for the rest (ends at 4)
    assert run_flows([(0.0, (2.0, 0.0, 2.0)), (1.0, (2.0, 0.0, 2.0))]) == pytest.approx([3.0, 4.0])


def test_nvlink_flows_do_not_slow_nic_flows():
    assert run_flows([(0.0, (1.0, 0.0, 1.0)), (0.0, (1.0, 1.0, 0.0))]) == pytest.approx([1.0, 1.0])
    # a cross-node all-to-all uses both: it shares the NIC with the other NIC flow, not its NVLink part
    assert run_flows([(0.0, (1.0, 1.0, 1.0)), (0.0, (1.0, 0.0, 1.0)), (0.0, (1.0, 1.0, 0.0))]) == \
        pytest.approx([2.0, 2.0, 2.0])
    # its NVLink half, at half speed beside an NVLink flow, ends with its NIC part at 1.0; the other flow has
    # the NVLink to itself for its last 0.5
    assert run_flows([(0.0, (1.0, 0.5, 1.0)), (0.0, (1.0, 1.0, 0.0))]) == pytest.approx([1.0, 1.5])


def test_latency_is_a_fixed_delay_not_shared():
    # 1.5 s alone with 1 s of NIC work: 0.5 s latency first, while the other flow has the NIC to itself; then
    # both at half speed until the other's last 0.5 is done (1.5), then the rest of the first alone (2.0)
    assert run_flows([(0.0, (1.5, 0.0, 1.0)), (0.0, (1.0, 0.0, 1.0))]) == pytest.approx([2.0, 1.5])


def _one_stage(f=0.0, b=0.0, w=0.0, comm=None, net=None, nvl=None):
    return StageCost(f=f, b=b, w=w, comm=comm or {}, comm_net_s=net or {}, comm_nvl_s=nvl or {})


def test_two_overlapped_collectives_on_one_nic_share_it():
    both = {("F", "tp"): 1.0, ("F", "ep"): 1.0}
    cost = _one_stage(f=0.1, comm=both, net=both)
    res = simulate_step([[cost]], "1f1b", 1, rules=Rules(tp=True, ep=True))
    assert res.step_time_s == pytest.approx(2.0)        # the closed form prices each alone: 1.0
    one = _one_stage(f=0.1, comm={("F", "tp"): 1.0}, net={("F", "tp"): 1.0})
    assert simulate_step([[one]], "1f1b", 1, rules=Rules(tp=True)).step_time_s == pytest.approx(1.0)


def test_dp_reduction_slows_the_blocking_all_to_all_of_the_last_backward():
    ep = {("B", "ep"): 1.0}
    cost = _one_stage(f=1.0, b=1.0, comm=ep, net=ep)
    tail = RankTail(grad_s=1.0, update_s=0.1)
    res = simulate_step([[cost]], "1f1b", 1, tails=[tail])
    # F 1; then B's all-to-all and the DP reduction share the NIC (both end at 2 s), B compute 1, update 0.1.
    # The closed form: 1 + (1 + 1) + max(0, 1 − 1) + 0.1 = 3.1
    assert res.step_time_s == pytest.approx(1.0 + 2.0 + 1.0 + 0.1)


def test_chunk_costs_carry_their_wire_bytes_and_link_seconds():
    est = estimate(load_scenario(SCENARIOS / "deepseek-v3.yaml"), SCENARIOS)
    hw = est.hardware
    for c in est.phases[0].costs.chunk_cost:
        assert sum(c.comm_net_s.values()) == pytest.approx(c.network_busy)
        assert sum(c.comm_nvl_s.values()) == pytest.approx(c.nvlink_busy)
        for key, t in c.comm.items():   # a flow alone takes the cost model's seconds: latency + the slower link
            assert t >= max(c.comm_net_s.get(key, 0.0), c.comm_nvl_s.get(key, 0.0)) - 1e-12
        for key in c.comm_net_bytes:    # link seconds are wire bytes over a busbw of the profile
            if c.comm_net_bytes[key]:
                bw = c.comm_net_bytes[key] / c.comm_net_s[key]
                assert min(hw.net_busbw.values()) <= bw * (1 + 1e-9) and bw <= max(hw.net_busbw.values()) * (1 + 1e-9)
    moe = next(c for c in est.phases[0].costs.chunk_cost if c.comm_net_bytes.get(("F", "ep")))
    assert moe.comm_nvl_bytes[("F", "ep")] > 0              # cross-node all-to-all: NIC and NVLink shares
    doubled = moe + moe
    assert doubled.comm_net_bytes[("F", "ep")] == pytest.approx(2 * moe.comm_net_bytes[("F", "ep")])
    assert moe.scaled(0.5).comm_nvl_s[("B", "ep")] == pytest.approx(moe.comm_nvl_s[("B", "ep")] / 2)


# -- overlap: what it costs compute -------------------------------------------------------------------

def test_comm_fully_behind_compute_costs_slowdown_times_comm():
    tp = {("F", "tp"): 2.0}
    cost = _one_stage(f=10.0, comm=tp, nvl=tp)
    for s in (0.0, 0.15, 0.3):
        res = simulate_step([[cost]], "1f1b", 1, rules=Rules(tp=True, slowdown=s))
        assert res.step_time_s == pytest.approx(10.0 + s * 2.0)
        assert res.slowed_s[0] == pytest.approx(s * 2.0)
    # without TP overlap it blocks: 10 + 2
    assert simulate_step([[cost]], "1f1b", 1, rules=Rules(slowdown=0.15)).step_time_s == pytest.approx(12.0)
    # comm longer than compute: the pass takes the comm's time
    long = _one_stage(f=1.0, comm=tp, nvl=tp)
    assert simulate_step([[long]], "1f1b", 1, rules=Rules(tp=True, slowdown=0.15)).step_time_s == \
        pytest.approx(2.0)


def test_no_slowdown_where_sms_are_reserved_for_communication():
    s = 0.15
    for name, sms in (("deepseek-v3.yaml", True), ("gpt3-175b-h100.yaml", False)):
        est = estimate(load_scenario(SCENARIOS / name), SCENARIOS)
        pc = est.phases[0].costs
        assert (pc.plan.comm_sms > 0) == sms
        _, rules, _, _ = phase_inputs(pc, s)
        assert rules.slowdown == (0.0 if sms else s)
        assert rules.tp == pc.plan.tp_comm_overlap


def test_dp_reduction_behind_the_last_backward_costs_slowdown():
    cost = _one_stage(f=1.0, b=3.0)
    tail = RankTail(grad_s=1.0, update_s=0.5)
    res = simulate_step([[cost]], "1f1b", 1, rules=Rules(slowdown=0.2), tails=[tail])
    assert res.step_time_s == pytest.approx(1.0 + 3.0 + 0.2 * 1.0 + 0.5)
    # last bucket after the backward: 4 buckets of 0.25 s, three beside it
    res = simulate_step([[cost]], "1f1b", 1, rules=Rules(slowdown=0.2), tails=[RankTail(1.0, 4, update_s=0.5)])
    assert res.step_time_s == pytest.approx(1.0 + 3.0 + 0.2 * 0.75 + 0.25 + 0.5)
    # without dp_comm_overlap it runs after the backward
    res = simulate_step([[cost]], "1f1b", 1, rules=Rules(slowdown=0.2, dp=False), tails=[tail])
    assert res.step_time_s == pytest.approx(1.0 + 3.0 + 1.0 + 0.5)


def test_asynchronous_pipeline_sends():
    # p 2, m 2, F = B = 1, sends 0.5: rank 1 runs F0 1.5–2.5, B0 2.5–3.5, F1 3.5–4.5 (not 4.0–5.0 as with a
    # blocking send of B0), B1 4.5–5.5; its gradient reaches rank 0 at 6.0, whose B1 ends at 7.0
    pp = {("F", "pp"): 0.5, ("B", "pp"): 0.5}
    cost = _one_stage(f=1.0, b=1.0, comm=pp, net=pp)
    res = simulate_step([[cost], [cost]], "1f1b", 2, rules=Rules(pp_async=True), trace=True)
    assert res.step_time_s == pytest.approx(7.0)
    sends = sorted(t for e in res.trace if e.stream == "nic" and e.rank == 0 for t in (e.start, e.end))
    assert sends == pytest.approx([1.0, 1.5, 2.0, 2.5])   # rank 0's F1 did not wait for the first send
    # blocking (Megatron's 1F1B batched send/receive): rank 0's F1 runs 1.5–2.5, its send ends at 3.0; rank 1's
    # F1 after B0 and its send: 4.0–5.0, B1 5.0–6.0, send to 6.5; rank 0's B1 6.5–7.5
    res = simulate_step([[cost], [cost]], "1f1b", 2, rules=Rules(pp_async=False))
    assert res.step_time_s == pytest.approx(7.5)
    assert res.exposed_s == pytest.approx([1.0, 1.0])     # two sends each


def test_plan_decides_which_sends_are_asynchronous():
    pc = estimate(load_scenario(SCENARIOS / "gpt3-175b-h100.yaml"), SCENARIOS).phases[0].costs
    for schedule, async_ in (("interleaved", True), ("dualpipe", True), ("1f1b", False), ("zero-bubble", False)):
        pc2 = dataclasses.replace(pc, plan=dataclasses.replace(pc.plan, schedule=schedule))
        assert phase_inputs(pc2, 0.1)[1].pp_async == async_


def test_simulator_does_not_import_the_closed_forms_exposure_rules():
    banned = {"exposed", "exposed_pass_comm", "rank_times", "step_breakdown", "pipelined", "pipeline_bubble",
              "micro_batch_time", "Overlap", "RankTimes"}
    for path in (Path(__file__).parent.parent / "costsim" / "sim").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("schedule"):
                names = {a.name for a in node.names}
                assert not names & banned, f"{path.name} imports {names & banned} from {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.endswith("costsim.schedule") for a in node.names), path.name


def test_timeline_has_one_compute_trace_per_stage(tmp_path):
    est = estimate(load_scenario(SCENARIOS / "deepseek-v3.yaml"), SCENARIOS)
    p = est.phases[0]
    res = simulate_phase(p.costs, overlap_slowdown=est.efficiency.overlap_slowdown, trace=True)
    out = write_timeline(res, "DeepSeek-V3", tmp_path / "t.html")
    html = out.read_text()
    assert html.lower().startswith("<!doctype html>") and "plotly" in html.lower() and '<script src="http' not in html   # self-contained
    for r in range(p.plan.pp):
        assert f'"name":"stage {r}"' in html
        assert f'"name":"stage {r} nic"' in html and f'"name":"stage {r} nvlink"' in html   # the flows
    assert f'"name":"stage {p.plan.pp}"' not in html


def test_rank_actions_dispatch():
    assert rank_actions("zero-bubble", 4, 8, 1, 0)[0].kind == "F"
    assert any(a.kind == "FB" for a in rank_actions("dualpipe", 4, 8, 1, 1))

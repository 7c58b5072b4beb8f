"""Issue 11: the scenario keys of generate, rl and serve phases — parsing, errors, inheritance."""
from __future__ import annotations

import math

import pytest

from costsim.errors import ScenarioError
from costsim.hardware import load_profile
from costsim.model import load_builtin
from costsim.plan import resolve_phases
from costsim.scenario import parse_scenario

BASE = {"name": "t", "model": "llama3.1-8b", "cluster": {"gpu": "h100-sxm", "num_gpus": 8}}
RL = {"name": "rl", "kind": "rl", "steps": 32, "prompts_per_step": 4, "samples_per_prompt": 4,
      "outputs_per_rollout": 64, "prompt_tokens": 200, "max_output_tokens": 1024,
      "response_length": {"mean": 300, "sigma": 0.5}}
GEN = {"name": "gen", "kind": "generate", "prompts": 1000, "input_tokens": 200, "output_tokens": 500}
SERVE = {"name": "day", "kind": "serve", "hours": 24, "input_tokens": 1e9, "output_tokens": 2e8,
         "prompt_tokens": 1000}


def parse(*phases):
    return parse_scenario(BASE | {"phases": list(phases)})


def error(*phases) -> str:
    with pytest.raises(ScenarioError) as exc:
        parse(*phases)
    return str(exc.value)


def test_each_kind_parses_to_its_own_model():
    sc = parse({"name": "pre", "tokens": 1e9, "seq_len": 1024, "global_batch_size": 8}, GEN, RL, SERVE)
    assert [p.kind for p in sc.phases] == ["train", "generate", "rl", "serve"]
    assert type(sc.phases[0]).__name__ == "Phase"


def test_unknown_kind_is_one_line_naming_the_kinds():
    msg = error({"name": "x", "kind": "distill", "tokens": 1})
    assert msg == ("scenario: phases.0.kind: 'distill' is not a phase kind; expected one of train, generate, "
                   "rl, serve")


def test_errors_name_the_field_without_the_union_tag():
    assert error({**GEN, "prompts": -1}).startswith("scenario: phases.0.prompts:")
    assert error({**RL, "bogus": 1}) == "scenario: phases.0.bogus: unknown key"
    assert "phases.0.response_length.sigma" in error({**RL, "response_length": {"mean": 10, "sigma": -1}})
    assert "phases.0.hours" in error({k: v for k, v in SERVE.items() if k != "hours"})


def test_rl_checks_rollout_batch_limits_and_placement():
    assert "not a multiple of prompts_per_step·samples_per_prompt = 16" in error({**RL, "outputs_per_rollout": 20})
    assert "first entry must have from_step: 0" in error(
        {**RL, "max_output_tokens": [{"from_step": 5, "tokens": 10}]})
    assert "from_step must increase" in error(
        {**RL, "max_output_tokens": [{"from_step": 0, "tokens": 10}, {"from_step": 0, "tokens": 20}]})
    assert "generation_gpus: required" in error({**RL, "placement": "split"})
    assert "needs placement: split" in error({**RL, "async_rollout": True})
    assert "table steps must increase" in error({**RL, "response_length": {"mean": [[5, 10], [1, 20]]}})


def test_rl_length_limit_by_step():
    sc = parse({**RL, "max_output_tokens": [{"from_step": 0, "tokens": 32768}, {"from_step": 8200, "tokens": 65536}]})
    ph = sc.phases[0]
    assert [ph.max_tokens_at(s) for s in (0, 8199, 8200, 10_000)] == [32768, 32768, 65536, 65536]


def test_a_training_phase_after_rl_inherits_its_precision():
    sc = parse({"name": "pre", "tokens": 1e9, "seq_len": 1024, "global_batch_size": 8},
               {**RL, "precision": "fp8", "fp8_recipe": "current"},
               {"name": "sft", "tokens": 1e8})
    plans = resolve_phases(sc, load_builtin("llama3.1-8b"), load_profile("h100-sxm"))
    assert [p.name for p in plans] == ["pre", "sft"]
    assert plans[1].plan.precision == "fp8" and plans[1].plan.fp8_recipe == "current"
    assert plans[1].plan.seq_len == 1024


def test_a_reported_phase_may_say_kind_train():
    sc = parse({"name": "post", "kind": "train", "gpu_hours": 5000})
    assert sc.phases[0].gpu_hours == 5000


# ---- end to end: the CLI's JSON for each kind ---------------------------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

from test_cli import make_runner  # noqa: E402
from costsim.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
runner = make_runner()
SMALL_RL = {**RL, "parallelism": {"tp": 8}, "rollout": {"tp": 1, "dp": 8}}


def run_json(tmp_path, raw) -> tuple[int, dict | str]:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = runner.invoke(app, ["estimate", str(path), "--format", "json"])
    return res.exit_code, (json.loads(res.stdout) if res.exit_code == 0 else res.stderr)


def test_generate_rl_serve_json_keys(tmp_path):
    code, d = run_json(tmp_path, BASE | {"phases": [GEN, SMALL_RL, {**SERVE, "tokens_per_s_per_request": 20}]})
    assert code == 0, d
    gen, rl, serve = d["phases"]
    assert [p["kind"] for p in d["phases"]] == ["generate", "rl", "serve"]
    for p in (gen, serve):
        for key in ("prefill_tokens_per_s_per_node", "decode_tokens_per_s_per_node", "tokens_per_s_per_request",
                    "nodes"):
            assert p[key] > 0, key
        assert p["mfu"] is None and p["plan"] is None        # training-step keys are null, not missing
    assert serve["tokens_per_s_per_request"] >= 20 * (1 - 1e-9)
    split = rl["time_split"]
    assert set(split) == {"generation", "update", "idle"} and sum(split.values()) == pytest.approx(1)
    assert rl["rounds"] == 8 and rl["steps_per_round"] == 4 and rl["steps"] == 32 and rl["generated_tokens"] == pytest.approx(rl["tokens"])
    # GPU-hours = the phase's GPUs × its wall clock; the total adds the phases
    for p in (gen, rl, serve):
        assert p["gpu_hours"] == pytest.approx(p["num_gpus"] * p["wall_clock_days"] * 24, rel=1e-9)
    assert d["total"]["gpu_hours"] == pytest.approx(sum(p["gpu_hours"] for p in d["phases"]))


def test_generate_phase_is_input_over_prefill_plus_output_over_decode(tmp_path):
    from costsim.efficiency import fitted
    from costsim.infer.cost import decode_for_speed, prefill_throughput
    from costsim.infer.plan import ServingPlan
    code, d = run_json(tmp_path, BASE | {"phases": [GEN]})
    assert code == 0, d
    model, hw, plan = load_builtin("llama3.1-8b"), load_profile("h100-sxm"), ServingPlan()
    pf = prefill_throughput(model, hw, plan, fitted(), 200, 0.0)
    dec = decode_for_speed(model, hw, plan, fitted(), 200 + 500 / 2, None).tokens_per_s_per_gpu
    gpu_s = 1000 * 200 / pf + 1000 * 500 / dec
    assert d["phases"][0]["gpu_hours"] == pytest.approx(gpu_s / 3600, rel=1e-9)
    assert d["phases"][0]["wall_clock_days"] == pytest.approx(gpu_s / 8 / 86400, rel=1e-9)


def test_serve_nodes_are_the_volumes_over_the_rates(tmp_path):
    code, d = run_json(tmp_path, BASE | {"phases": [SERVE]})
    assert code == 0, d
    p = d["phases"][0]
    secs = 24 * 3600
    nodes = 1e9 / secs / p["prefill_tokens_per_s_per_node"] + 2e8 / secs / p["decode_tokens_per_s_per_node"]
    assert p["nodes"] == pytest.approx(nodes, rel=1e-9)
    assert p["num_gpus"] == pytest.approx(8 * nodes, rel=1e-9)


def test_an_unreachable_speed_target_is_one_line_with_the_speed(tmp_path):
    code, err = run_json(tmp_path, BASE | {"phases": [{**SERVE, "tokens_per_s_per_request": 5000}]})
    assert code == 2 and err.count("\n") == 1
    assert "speed target 5000 tokens/s per request is out of reach" in err and "tokens/s at" in err


def test_a_bad_serving_instance_names_the_phase_and_field(tmp_path):
    code, err = run_json(tmp_path, BASE | {"phases": [{**GEN, "serving": {"tp": 3}}]})
    assert code == 2 and "phases[0] (gen)" in err and "tp=3 does not divide num_attention_heads=32" in err
    code, err = run_json(tmp_path, BASE | {"phases": [{**GEN, "serving": {"tp": 1, "dp": 16}}]})
    assert code == 2 and "16 GPUs do not tile the phase's 8 GPUs" in err


def test_async_split_placement_is_no_slower_than_sync(tmp_path):
    split = {**SMALL_RL, "placement": "split", "generation_gpus": 4, "rollout": {"tp": 1, "dp": 4},
             "parallelism": {"tp": 4}, "steps": 96}
    code, sync = run_json(tmp_path, BASE | {"phases": [split]})
    assert code == 0, sync
    code, asyn = run_json(tmp_path, BASE | {"phases": [{**split, "async_rollout": True}]})
    assert code == 0, asyn
    assert asyn["phases"][0]["wall_clock_days"] <= sync["phases"][0]["wall_clock_days"] * (1 + 1e-9)
    assert asyn["phases"][0]["async_overlap_s"] > 0


def test_longer_responses_cost_more_and_a_longer_tail_idles_more(tmp_path):
    def phase(mean, sigma):
        return {**SMALL_RL, "response_length": {"mean": mean, "sigma": sigma}}
    _, a = run_json(tmp_path, BASE | {"phases": [phase(200, 0.5)]})
    _, b = run_json(tmp_path, BASE | {"phases": [phase(400, 0.5)]})
    _, c = run_json(tmp_path, BASE | {"phases": [phase(200, 1.2)]})
    assert b["phases"][0]["gpu_hours"] > a["phases"][0]["gpu_hours"]
    assert c["phases"][0]["time_split"]["idle"] > a["phases"][0]["time_split"]["idle"]


@pytest.mark.parametrize("name", ["deepseek-r1.yaml", "deepseek-v3-serving.yaml", "distillation.yaml"])
def test_shipped_post_training_scenarios_run(name, tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios" / name).read_text())
    code, d = run_json(tmp_path, raw)
    assert code == 0, d
    assert d["total"]["gpu_hours"] > 0


def test_rl_interpolated_tables_stay_near_the_direct_costs():
    """The decode table (batch × context, bilinear) and the update grid (8 lengths, linear) that let the rollout
    simulator run fast stay within 3% of the inference model and estimate_phase evaluated directly."""
    import numpy as np
    from costsim.efficiency import fitted
    from costsim.infer.cost import decode_step
    from costsim.infer.plan import ServingPlan
    from costsim.rl import decode_table, update_times
    from costsim.scenario import load_scenario
    model, hw, eff = load_builtin("deepseek-v3"), load_profile("h800-sxm"), fitted()
    plan = ServingPlan(tp=1, dp=32, ep=32, precision="fp8")
    table = decode_table(model, hw, plan, eff, 16, 33068, 300)
    rng = np.random.default_rng(0)
    for b, ctx in zip(rng.uniform(1, 16, 12), np.exp(rng.uniform(np.log(300), np.log(33068), 12))):
        direct = decode_step(model, hw, plan, eff, b, ctx).seconds
        assert float(table(b, ctx)) == pytest.approx(direct, rel=0.03), (b, ctx)
    sc = load_scenario(ROOT / "scenarios" / "deepseek-r1.yaml")
    ph = sc.phases[0]
    seqs = [800.0, 2500.0, 7000.0, 12800.0]
    interp, _, grid = update_times(sc, 0, ph, model, hw, eff, 2.0, 512, [min(seqs), *seqs, max(seqs)])
    direct, _, _ = update_times(sc, 0, ph, model, hw, eff, 2.0, 512, [3584.0])   # on the 512-token grid: costed as is
    mid, _, _ = update_times(sc, 0, ph, model, hw, eff, 2.0, 512, [800.0, 3584.0, 12800.0])
    assert len(grid) <= 8
    assert mid[1] == pytest.approx(direct[0], rel=0.03)


def test_serve_errors_name_the_instance_at_fault(tmp_path):
    code, err = run_json(tmp_path, BASE | {"phases": [{**SERVE, "prefill": {"tp": 3}}]})
    assert code == 2 and err.startswith("error: phases[0] (day).prefill: tp=3 does not divide"), err
    code, err = run_json(tmp_path, BASE | {"phases": [{**SERVE, "decode": {"ep": 2}}]})
    assert code == 2 and err.startswith("error: phases[0] (day).decode: ep=2"), err


def test_serve_utilization_scales_nodes_and_delivered_rates(tmp_path):
    frac = {**SERVE, "whole_instances": False}       # the load itself, not rounded up to whole instances
    _, full = run_json(tmp_path, BASE | {"phases": [frac]})
    _, part = run_json(tmp_path, BASE | {"phases": [{**frac, "utilization": 0.8}]})
    f, p = full["phases"][0], part["phases"][0]
    assert p["nodes"] == pytest.approx(f["nodes"] / 0.8, rel=1e-12)
    assert p["cost_usd"] == pytest.approx(f["cost_usd"] / 0.8, rel=1e-12)
    assert p["prefill_tokens_per_s_per_node"] == pytest.approx(0.8 * f["prefill_tokens_per_s_per_node"], rel=1e-12)
    assert p["decode_capacity_tokens_per_s_per_node"] == pytest.approx(f["decode_tokens_per_s_per_node"], rel=1e-12)


def test_review_fixes_edges_are_one_line_errors_or_sane(tmp_path):
    # sigma 0 is refused by the schema (family constant is the way to say equal lengths)
    code, err = run_json(tmp_path, BASE | {"phases": [{**SMALL_RL, "response_length": {"mean": 300, "sigma": 0}}]})
    assert code == 2 and "response_length.sigma" in err
    # too many rounds or sequences: refused before any work
    code, err = run_json(tmp_path, BASE | {"phases": [{**SMALL_RL, "steps": 100_000_000, "prompts_per_step": 1,
                                                          "samples_per_prompt": 1, "outputs_per_rollout": 1}]})
    assert code == 2 and "rollout rounds" in err and "the limit is 100,000" in err
    code, err = run_json(tmp_path, BASE | {"phases": [{**SMALL_RL, "prompts_per_step": 10_000_000,
                                                          "samples_per_prompt": 100_000}]})
    assert code == 2 and "sequences per step" in err
    # a partial last round: the mean response is over the responses generated
    code, d = run_json(tmp_path, BASE | {"phases": [{**SMALL_RL, "steps": 17,
                                                        "response_length": {"family": "constant", "mean": 300}}]})
    assert code == 0, d
    assert d["phases"][0]["mean_response_tokens"] == pytest.approx(300, rel=0.02)


def test_max_decode_batch_at_tiny_contexts_is_not_zero():
    from costsim.infer.memory import max_decode_batch
    from costsim.infer.plan import ServingPlan
    m, hw = load_builtin("deepseek-v3"), load_profile("h800-sxm")
    plan = ServingPlan(tp=1, dp=32, ep=32, precision="fp8")
    sizes = [max_decode_batch(m, hw, plan, c) for c in (1, 10, 12, 100, 5000)]
    assert all(a > b for a, b in zip(sizes, sizes[1:])) and sizes[-1] > 0


def test_a_prefill_instance_that_cannot_hold_the_model_is_refused(tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios" / "deepseek-v3-serving.yaml").read_text())
    raw["phases"][0]["prefill"] = {"tp": 1, "dp": 1, "ep": 1, "precision": "fp8"}
    code, err = run_json(tmp_path, raw)
    assert code == 2 and "phases[0] (serving-day).prefill: a prefill batch does not fit" in err


def test_serve_runs_whole_instances(tmp_path):
    """Each role's GPUs are its load rounded up to whole instances (tp·dp GPUs); the per-node figures are the
    role's tokens over its deployed node-time; whole_instances false gives the load itself."""
    big = {**SERVE, "input_tokens": 3e11, "output_tokens": 6e10, "prefill": {"dp": 8}, "decode": {"tp": 2, "dp": 2}}
    _, whole = run_json(tmp_path, BASE | {"phases": [big]})
    _, frac = run_json(tmp_path, BASE | {"phases": [{**big, "whole_instances": False}]})
    w, f = whole["phases"][0], frac["phases"][0]
    assert f["prefill_nodes"] == pytest.approx(w["prefill_load_nodes"]) and not f["whole_instances"]
    assert w["prefill_nodes"] == w["prefill_instances"] * 8 / 8 >= w["prefill_load_nodes"]
    assert w["decode_nodes"] == w["decode_instances"] * 4 / 8 >= w["decode_load_nodes"]
    assert w["prefill_instances"] == math.ceil(w["prefill_load_nodes"] - 1e-9)
    assert w["decode_instances"] == math.ceil(w["decode_load_nodes"] * 2 - 1e-9)
    assert w["prefill_tokens_per_s_per_node"] == pytest.approx(3e11 / 86400 / w["prefill_nodes"], rel=1e-12)
    assert w["decode_tokens_per_s_per_node"] == pytest.approx(6e10 / 86400 / w["decode_nodes"], rel=1e-12)
    assert w["gpu_hours"] == pytest.approx(w["nodes"] * 8 * 24, rel=1e-12)
    assert w["gpu_hours"] >= f["gpu_hours"]

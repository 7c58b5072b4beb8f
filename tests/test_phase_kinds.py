"""Issue 11: the scenario keys of generate, rl and serve phases — parsing, errors, inheritance."""
from __future__ import annotations

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

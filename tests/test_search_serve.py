"""`costsim search` on a serve phase (costsim/search/serve.py): the best prefill and decode instances, checked
against `costsim.estimate.estimate` of the scenario with those instances set (a different route: the scenario
parsed again with `--set` overrides, costed by serving.estimate_serve), not against the search's own helpers."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from costsim.cli import app
from costsim.estimate import estimate
from costsim.scenario import load_scenario
from costsim.search.serve import serve_phase_index

ROOT = Path(__file__).resolve().parent.parent
DSV3 = ROOT / "scenarios/deepseek-v3-serving.yaml"
runner = CliRunner()
TOP = 3


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


def _json(path: Path, *args: str) -> dict:
    out = runner.invoke(app, ["search", str(path), "--format", "json", *args])
    assert out.exit_code == 0, out.output[-2000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def dsv3() -> dict:
    return _json(DSV3, "--top", str(TOP))


def _serve_estimate(path: Path, i: int = 0, **roles: dict):
    sets = [f"phases.{i}.{role}.{k}={v}" for role, s in roles.items() for k, v in s.items()]
    sc = load_scenario(path, sets)
    return next(p for p in estimate(sc, path.parent).phases if p.name == sc.phases[i].name)


def test_json_keys(dsv3):
    assert set(dsv3) == {"kind", "scenario", "phase", "objective", "evaluated", "feasible", "rejected", "seconds",
                         "grid", "top_prefill", "top_decode", "best", "scenario_plan"}
    assert dsv3["kind"] == "serve" and dsv3["phase"] == "serving-day" and dsv3["objective"] == "cost"
    for role in ("prefill", "decode"):
        assert dsv3["evaluated"][role] == dsv3["feasible"][role] + sum(dsv3["rejected"][role].values())
    assert set(dsv3["top_prefill"][0]) == {"serving", "instance_gpus", "input_tokens_per_s_per_gpu",
                                           "input_tokens_per_s_per_node", "prefill_nodes", "prefill_instances"}
    assert set(dsv3["top_decode"][0]) == {"serving", "instance_gpus", "output_tokens_per_s_per_gpu",
                                          "output_tokens_per_s_per_node", "decode_nodes", "decode_instances",
                                          "tokens_per_s_per_request", "batch_per_gpu", "limited_by"}
    assert set(dsv3["top_prefill"][0]["serving"]) == {"tp", "dp", "ep", "precision", "redundant_experts"}
    assert set(dsv3["best"]) == {"prefill", "decode", "gpus", "nodes", "prefill_nodes", "decode_nodes",
                                 "gpu_hours", "cost_usd"}
    assert set(dsv3["scenario_plan"]) == set(dsv3["best"]) | {"cost_over_best", "saving_usd"}
    assert len(dsv3["top_prefill"]) == len(dsv3["top_decode"]) == TOP
    # the grid holds DeepSeek's own instance sizes
    assert {32, 144} <= set(dsv3["grid"]["instance_gpus"]) and dsv3["grid"]["precision"] == ["bf16", "fp8"]


def test_top_instances_equal_estimate(dsv3):
    """Each top instance, set into the scenario, gives the same figures from `estimate` (to 1e-9)."""
    for role, word in (("prefill", "input"), ("decode", "output")):   # best first: fewest nodes, then rate
        keys = [(round(x[f"{role}_nodes"], 9), -x[f"{word}_tokens_per_s_per_gpu"]) for x in dsv3[f"top_{role}"]]
        assert all(a[0] < b[0] or (a[0] == b[0] and a[1] <= b[1] * (1 - 1e-12)) for a, b in zip(keys, keys[1:]))
    for x in dsv3["top_prefill"]:
        f = _serve_estimate(DSV3, prefill=x["serving"]).figures
        assert close(x["input_tokens_per_s_per_node"], f["prefill_tokens_per_s_per_node"])
        assert close(x["prefill_nodes"], f["prefill_nodes"]) and x["prefill_instances"] == f["prefill_instances"]
    for x in dsv3["top_decode"]:
        f = _serve_estimate(DSV3, decode=x["serving"]).figures
        assert close(x["output_tokens_per_s_per_node"], f["decode_tokens_per_s_per_node"])
        assert close(x["tokens_per_s_per_request"], f["tokens_per_s_per_request"])
        assert x["batch_per_gpu"] == f["decode_batch_per_gpu"]
        assert close(x["decode_nodes"], f["decode_nodes"]) and x["decode_instances"] == f["decode_instances"]
        assert x["tokens_per_s_per_request"] >= 21 * (1 - 1e-9)     # the phase's speed target


def test_best_combination_equals_estimate_and_beats_scenario(dsv3):
    best, own = dsv3["best"], dsv3["scenario_plan"]
    est = _serve_estimate(DSV3, prefill=best["prefill"], decode=best["decode"])
    assert close(best["cost_usd"], est.cost_usd) and close(best["gpu_hours"], est.gpu_hours)
    assert close(best["nodes"], est.figures["nodes"])
    plain = _serve_estimate(DSV3)
    assert close(own["cost_usd"], plain.cost_usd) and close(own["nodes"], plain.figures["nodes"])
    assert best["cost_usd"] <= own["cost_usd"] * (1 + 1e-12)
    assert close(own["cost_over_best"], own["cost_usd"] / best["cost_usd"])


@pytest.mark.parametrize("scenario, phase, kind", [("scenarios/deepseek-r1.yaml", "r1-zero", "rl")])
def test_rl_phases_one_line(scenario, phase, kind):        # generate phases: tests/test_search_generate.py
    out = runner.invoke(app, ["search", str(ROOT / scenario), "--phase", phase])
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and phase in lines[0] and f"{kind} phases are not searched" in lines[0]


DENSE = """name: dense serving
model: llama3.1-8b
cluster: {gpu: h100-sxm, num_gpus: 64, gpus_per_node: 8}
phases:
  - name: warmup
    gpu_hours: 10
  - name: chat
    kind: serve
    hours: 2
    input_tokens: 2.0e9
    output_tokens: 4.0e8
    prompt_tokens: 2000
    output_per_request: 400
    tokens_per_s_per_request: 40
    utilization: 0.5
    prefill: {tp: 1, dp: 1}
    decode: {tp: 2, dp: 1}
pricing: {usd_per_gpu_hour: 2.0}
"""


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "dense.yaml"
    path.write_text(DENSE)
    return path


def test_dense_serve_phase(dense):
    res = _json(dense, "--top", "50")    # no training phase to search: the first serve phase
    assert res["phase"] == "chat" and res["feasible"]["decode"] > 0
    for x in res["top_prefill"] + res["top_decode"]:
        assert x["serving"]["ep"] == 1 and x["serving"]["redundant_experts"] == 0
    assert res["grid"]["redundant_experts"] == [0] and res["grid"]["precision"] == ["bf16"]
    best = res["best"]
    est = _serve_estimate(dense, 1, prefill=best["prefill"], decode=best["decode"])
    assert close(best["cost_usd"], est.cost_usd) and best["cost_usd"] <= res["scenario_plan"]["cost_usd"]
    f = _serve_estimate(dense, 1, decode=res["top_decode"][-1]["serving"]).figures   # utilization applied alike
    assert close(res["top_decode"][-1]["output_tokens_per_s_per_node"], f["decode_tokens_per_s_per_node"])


def test_dense_csv_and_table(dense):
    out = runner.invoke(app, ["search", str(dense), "--phase", "chat", "--format", "csv"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["role"] for r in rows} == {"prefill", "decode"} and {r["ep"] for r in rows} == {"1"}
    assert sum(int(r["best"]) for r in rows) == 2
    out = runner.invoke(app, ["search", str(dense), "--top", "2"])
    assert out.exit_code == 0 and "best:" in out.stdout and "scenario:" in out.stdout
    out = runner.invoke(app, ["search", str(dense), "-o", str(dense.parent / "p.html")])
    assert out.exit_code == 2 and len(out.stderr.strip().splitlines()) == 1


def test_which_phase_is_searched(dense):
    sc = load_scenario(dense)
    assert serve_phase_index(sc, None) == 1 and serve_phase_index(sc, "chat") == 1
    assert serve_phase_index(sc, "warmup") is None
    # a training phase to search comes first: the training search, as before
    trained = sc.model_copy(update={"phases": [sc.phases[1], load_scenario(ROOT / "scenarios/gpt3-175b-h100.yaml")
                                               .phases[0]]})
    assert serve_phase_index(trained, None) is None and serve_phase_index(trained, "chat") == 0


def test_tiny_volumes_still_run_one_instance(tmp_path):
    """A load far below one instance still deploys one (no division by zero nodes)."""
    res = runner.invoke(app, ["estimate", str(ROOT / "scenarios" / "deepseek-v3-serving.yaml"), "--set",
                              "phases.0.input_tokens=1", "--set", "phases.0.output_tokens=1", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    ph = json.loads(res.stdout)["phases"][0]
    assert ph["prefill_instances"] == 1 and ph["decode_instances"] == 1
    assert ph["nodes"] == (32 + 144) / 8


def test_serve_search_refuses_other_objectives():
    res = runner.invoke(app, ["search", str(ROOT / "scenarios" / "deepseek-v3-serving.yaml"), "--objective",
                              "time"])
    assert res.exit_code == 2 and "only objective" in res.stderr and len(res.stderr.strip().splitlines()) == 1

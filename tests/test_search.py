"""`costsim search`: the space, one cost path with `estimate`, reasons, output, bad input."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from costsim import run_costs
from costsim.cli import app
from costsim.estimate import estimate
from costsim.scenario import load_scenario
from costsim.search.engine import PlanResult, pareto_front, reason_key, search
from costsim.search.space import SearchSpace

runner = CliRunner()

SCENARIO = {
    "name": "Llama 2 7B search",
    "model": "llama2-7b",
    "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 64},
    "phases": [{"name": "pre-training", "seq_len": 4096, "global_batch_size": 512, "tokens": 1e11}],
    "search": {"tp": [1, 2, 4], "pp": [1, 2, 4], "micro_batch_size": [1, 4], "zero_stage": [0, 1, 3],
               "recompute": ["none", "full"], "schedule": ["1f1b", "interleaved", "zero-bubble", "dualpipe"],
               "gpu": ["a100-sxm-80gb", "h100-sxm"], "num_gpus": [32, 64], "virtual_stages": [2]},
}

MOE = {
    "name": "DeepSeek-V3 search",
    "model": "deepseek-v3",
    "cluster": {"gpu": "h800-sxm", "num_gpus": 2048},
    "parallelism": {"comm_sms": 20},
    "phases": [{"name": "pre-training", "precision": "fp8", "fp8_recipe": "blockwise", "seq_len": 4096,
                "global_batch_size": 15360, "tokens": 14.8e12}],
    "search": {"tp": [1, 2], "pp": [8, 16], "ep": [32, 64], "etp": [1, 2], "zero_stage": [1, 3],
               "micro_batch_size": [1], "recompute": ["selective", "full"],
               "schedule": ["dualpipe", "1f1b", "interleaved"], "virtual_stages": [2]},
}

FIGURES = ("step_time_s", "wall_clock_days", "gpu_hours", "cost_usd", "mfu")


def _write(tmp_path: Path, raw: dict, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    path = _write(tmp_path_factory.mktemp("search"), SCENARIO)
    return path, search(load_scenario(path), base_dir=path.parent, top=5)


def _sets(plan: dict) -> list[str]:
    keys = ("tp", "pp", "cp", "ep", "etp", "dp", "zero_stage", "micro_batch_size", "recompute", "schedule",
            "virtual_stages", "sequence_parallel")
    return ([f"parallelism.{k}={json.dumps(plan[k])}" for k in keys]
            + [f"cluster.num_gpus={plan['num_gpus']}", f"cluster.gpu={plan['gpu']}"])


def _same_as_estimate(path: Path, r: PlanResult) -> None:
    run_costs._RANK_STEPS.clear()   # estimate from scratch: a memo that search filled cannot vouch for itself
    est = estimate(load_scenario(path, _sets(r.plan)), base_dir=path.parent).phases[0]
    for k in FIGURES:
        assert getattr(r, k) == pytest.approx(getattr(est, k), rel=1e-9, abs=0), (k, r.plan)
    assert r.memory_gib_per_gpu == pytest.approx(est.memory.total / 2 ** 30, rel=1e-9)


def test_counts_add_up_and_reasons_are_short_keys(dense):
    _, res = dense
    assert res.evaluated == len(res.feasible) + sum(res.rejected.values())
    assert res.feasible and res.rejected
    assert "memory" in res.rejected and "other" not in res.rejected
    assert all(len(k) <= 30 for k in res.rejected)
    plans = [tuple(sorted(r.plan.items())) for r in res.feasible]
    assert len(plans) == len(set(plans)), "no plan evaluated twice"


def test_search_equals_estimate_on_random_plans(dense):
    """One cost path: search's figures are `estimate --set …` of the same plan, to 1e-9."""
    path, res = dense
    rng = random.Random(8)
    for r in rng.sample(res.feasible, 150) + res.pareto + res.top:
        _same_as_estimate(path, r)


def test_search_equals_estimate_moe(tmp_path):
    path = _write(tmp_path, MOE)
    res = search(load_scenario(path), base_dir=path.parent)
    assert res.feasible and res.evaluated == len(res.feasible) + sum(res.rejected.values())
    rng = random.Random(3)
    for r in rng.sample(res.feasible, min(50, len(res.feasible))):
        _same_as_estimate(path, r)


def test_rejected_plans_really_fail_estimate(dense, tmp_path):
    """A plan search rejects for memory is rejected by estimate too (the same memory model)."""
    path = _write(tmp_path, {**SCENARIO, "search": {"tp": [1], "pp": [1], "cp": 1, "micro_batch_size": [8],
                                                    "zero_stage": [0], "recompute": ["none"], "num_gpus": [64],
                                                    "gpu": ["a100-sxm-80gb"], "schedule": ["1f1b"]}})
    res = search(load_scenario(path), base_dir=path.parent)
    assert res.rejected == {"memory": 1} and not res.feasible
    out = runner.invoke(app, ["estimate", str(path), "--set", "parallelism.micro_batch_size=8",
                              "--set", "parallelism.zero_stage=0", "--set", "parallelism.recompute=none"])
    assert out.exit_code == 2 and "does not fit in memory" in out.output


def test_objectives_and_pareto(dense):
    _, res = dense
    front = res.pareto
    assert front == sorted(front, key=lambda r: r.cost_usd)
    for a, b in zip(front, front[1:]):
        assert b.wall_clock_days < a.wall_clock_days
    for r in res.feasible:    # nothing dominates a frontier plan
        for f in front:
            assert not (r.cost_usd < f.cost_usd and r.wall_clock_days < f.wall_clock_days)
    assert res.top[0].cost_usd == min(r.cost_usd for r in res.feasible)
    res.objective = "time"
    assert res.top[0].wall_clock_days == min(r.wall_clock_days for r in res.feasible)
    res.objective = "cost"
    assert pareto_front([]) == []


def test_cli_json_keys_and_csv(dense, tmp_path):
    path, _ = dense
    space = tmp_path / "space.yaml"
    space.write_text("tp: [2, 4]\npp: 2\nmicro_batch_size: [1, 2]\nrecompute: selective\n")
    out = runner.invoke(app, ["search", str(path), "--space", str(space), "--format", "json", "--top", "3"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    for k in ("scenario", "phase", "space", "evaluated", "feasible", "rejected", "seconds", "configs_per_s",
              "top", "pareto"):
        assert k in d
    assert len(d["top"]) == 3
    entry = d["top"][0]
    assert set(entry) == {"plan", "step_time_s", "wall_clock_days", "gpu_hours", "cost_usd", "mfu",
                          "memory_gib_per_gpu", "p_beats_best"}
    assert entry["plan"]["pp"] == 2 and entry["plan"]["tp"] in (2, 4)
    assert {"tp", "pp", "cp", "ep", "zero_stage", "micro_batch_size", "num_gpus", "gpu"} <= set(entry["plan"])
    out = runner.invoke(app, ["search", str(path), "--space", str(space), "--format", "csv"])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].startswith("gpu,num_gpus,tp") and len(lines) == d["feasible"] + 1


def test_cli_table_and_html(dense, tmp_path):
    path, _ = dense
    space = tmp_path / "space.yaml"
    space.write_text("tp: 2\npp: [1, 2]\nmicro_batch_size: 1\n")
    html = tmp_path / "pareto.html"
    html.write_text("old")
    out = runner.invoke(app, ["search", str(path), "--space", str(space), "-o", str(html)])
    assert out.exit_code == 0, out.output
    assert "Pareto frontier" in out.output
    text = html.read_text()
    assert "plotly" in text and "Pareto frontier" in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pareto")] == []
    d = tmp_path / "adir"
    d.mkdir()
    out = runner.invoke(app, ["search", str(path), "--space", str(space), "-o", str(d)])
    assert out.exit_code == 2 and "is a directory" in out.output


@pytest.mark.parametrize("args, needle", [
    (["--space", "nope.yaml"], "file not found"),
    (["--phase", "nope"], "no training phase"),
    (["--objective", "cost", "--top", "0"], "--top 0"),
])
def test_cli_bad_input_one_line(dense, args, needle):
    path, _ = dense
    out = runner.invoke(app, ["search", str(path), *args])
    assert out.exit_code == 2
    assert needle in out.output and len(out.output.strip().splitlines()) == 1


@pytest.mark.parametrize("block, needle", [
    ({"tp": [1, 0]}, "search.tp"),
    ({"tpp": [1]}, "unknown key"),
    ({"schedule": ["gpipe"]}, "search.schedule"),
    ({"tp": []}, "empty list"),
])
def test_search_block_is_strict(tmp_path, block, needle):
    path = _write(tmp_path, {**SCENARIO, "search": block})
    out = runner.invoke(app, ["search", str(path)])
    assert out.exit_code == 2 and needle in out.output, out.output
    assert len(out.output.strip().splitlines()) == 1


def test_bad_space_file(tmp_path, dense):
    path, _ = dense
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    out = runner.invoke(app, ["search", str(path), "--space", str(bad)])
    assert out.exit_code == 2 and "expected a mapping" in out.output
    bad.write_text("tp: [1, {a: 2}]\n")
    out = runner.invoke(app, ["search", str(path), "--space", str(bad)])
    assert out.exit_code == 2 and len(out.output.strip().splitlines()) == 1


def test_reason_keys():
    assert reason_key("phases[0] (x): parallelism.tp=3 does not divide num_attention_heads=32") == "tp divides heads"
    assert reason_key("plan does not fit in memory: needs 1 GiB") == "memory"
    assert reason_key("something new") == "other"


def test_wide_space_dimensions(dense):
    path, _ = dense
    sc = load_scenario(path)
    res = search(sc.model_copy(update={"search": None}), base_dir=path.parent, wide=True, limit=300)
    assert res.evaluated == 300
    dims = res.dimensions
    assert dims["num_gpus"] == [16, 32, 64, 128, 256]
    assert len(dims["gpu"]) >= 5 and "h100-sxm" in dims["gpu"]
    assert dims["zero_stage"] == [0, 1, 2, 3]


def test_dask_executor_same_as_local(dense):
    """--executor dask (a LocalCluster) gives the local result: same plans, figures, counts."""
    pytest.importorskip("distributed")
    from costsim.search.dask_exec import run_dask
    from costsim.search.engine import evaluate_space

    path, res = dense
    sc = load_scenario(path)
    dims = {**res.dimensions, "micro_batch_size": [1], "zero_stage": [1], "num_gpus": [64]}
    local = evaluate_space(sc, path.parent, None, dims)
    dist = run_dask(sc, path.parent, None, dims,
                    cluster_kwargs={"processes": False, "n_workers": 2, "threads_per_worker": 1,
                                    "dashboard_address": None})
    assert dist[0] == local[0] and dist[2] == local[2]
    assert [r.to_dict() for r in dist[1]] == [r.to_dict() for r in local[1]]


def test_cli_dask_bad_scheduler(dense):
    pytest.importorskip("distributed")
    path, _ = dense
    out = runner.invoke(app, ["search", str(path), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"])
    assert out.exit_code == 2 and "cannot connect" in out.output
    assert len(out.output.strip().splitlines()) == 1
    out = runner.invoke(app, ["search", str(path), "--scheduler", "tcp://127.0.0.1:9"])
    assert out.exit_code == 2 and "only with --executor dask" in out.output


def test_space_too_large_is_one_line(tmp_path):
    big = list(range(1, 4097))
    path = _write(tmp_path, {**SCENARIO, "search": {"tp": big, "pp": big, "micro_batch_size": big}})
    out = runner.invoke(app, ["search", str(path)])
    assert out.exit_code == 2 and "candidate plans, more than" in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_unknown_gpu_in_space_is_one_line(tmp_path):
    path = _write(tmp_path, {**SCENARIO, "search": {"gpu": ["h100-sxm", "no-such-gpu"], "tp": 1, "pp": 1}})
    out = runner.invoke(app, ["search", str(path)])
    assert out.exit_code == 2 and "no-such-gpu" in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_local_processes_same_as_one(dense):
    """--jobs 2: the parts over two processes, merged in order: the one-process result."""
    path, _ = dense
    sc = load_scenario(path)
    space = SearchSpace(tp=[1, 2], pp=[1, 2], micro_batch_size=1, zero_stage=1, num_gpus=64)
    one = search(sc, base_dir=path.parent, space=space)
    two = search(sc, base_dir=path.parent, space=space, jobs=2)
    assert two.evaluated == one.evaluated and two.rejected == one.rejected
    assert [r.to_dict() for r in two.feasible] == [r.to_dict() for r in one.feasible]
    out = runner.invoke(app, ["search", str(path), "--jobs", "0"])
    assert out.exit_code == 2 and "--jobs 0" in out.output

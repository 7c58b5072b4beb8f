"""`costsim search --phase NAME` on a generate phase (costsim/search/generate.py): the serving instance(s) that
generate cheapest, checked against `costsim.estimate.estimate` of the scenario with them set through `--set`
overrides (a different route: the scenario parsed again, costed by serving.estimate_generate)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from test_search_serve import _json, close  # noqa: E402  (the same CLI runner and tolerance as the serve search)
from costsim.cli import app
from costsim.estimate import estimate
from costsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
DISTILL = ROOT / "scenarios/distillation.yaml"
PHASE = "generate-800k-samples"
runner = CliRunner()


def _estimate(path: Path, i: int, **roles: dict):
    sets = [f"phases.{i}.{role}.{k}={v}" for role, s in roles.items() if s for k, v in s.items()]
    sc = load_scenario(path, sets)
    return estimate(sc, path.parent).phases[i]


def _matches(c: dict, p, gpus: int) -> None:
    assert close(c["gpu_hours"], p.gpu_hours) and close(c["cost_usd"], p.cost_usd)
    assert close(c["wall_clock_days"], p.wall_clock_days)
    f = p.figures
    assert close(c["decode_tokens_per_s_per_gpu"] * 8, f["decode_tokens_per_s_per_node"])
    assert close(c["prefill_tokens_per_s_per_gpu"] * 8, f["prefill_tokens_per_s_per_node"])
    assert close(c["tokens_per_s_per_request"], f["tokens_per_s_per_request"])
    assert c["batch_per_gpu"] == f["decode_batch_per_gpu"]
    for s in [c["serving"]] + ([c["prefill"]] if "prefill" in c else []):
        assert gpus % (s["tp"] * s["dp"]) == 0          # instances tile the phase's GPUs


@pytest.fixture(scope="module")
def distill() -> dict:
    return _json(DISTILL, "--phase", PHASE, "--top", "3")


def test_shared_instance_candidates_equal_estimate(distill):
    d = distill
    assert d["kind"] == "generate" and d["shared_instance"] and d["num_gpus"] == 256
    assert set(d) == {"kind", "scenario", "phase", "objective", "num_gpus", "shared_instance", "evaluated",
                      "feasible", "rejected", "seconds", "grid", "top", "best", "scenario_plan"}
    hours = [c["gpu_hours"] for c in d["top"]]
    assert hours == sorted(hours) and d["best"] == d["top"][0]
    for c in d["top"]:
        _matches(c, _estimate(DISTILL, 0, serving=c["serving"]), 256)
    own = d["scenario_plan"]
    _matches(own, _estimate(DISTILL, 0), 256)
    assert d["best"]["cost_usd"] <= own["cost_usd"] and own["cost_over_best"] >= 1
    assert all(256 % g == 0 for g in d["grid"]["instance_gpus"])


def test_separate_prefill_instance(tmp_path):
    raw = {"name": "gen", "model": "llama3.1-8b", "cluster": {"gpu": "h100-sxm", "num_gpus": 8},
           "phases": [{"name": "g", "kind": "generate", "prompts": 1e5, "input_tokens": 2000, "output_tokens": 400,
                       "tokens_per_s_per_request": 40, "serving": {"tp": 2, "dp": 1},
                       "prefill": {"tp": 1, "dp": 2}}]}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    d = _json(path, "--phase", "g", "--top", "2")
    assert not d["shared_instance"] and all("prefill" in c for c in d["top"])
    for c in d["top"]:
        _matches(c, _estimate(path, 0, serving=c["serving"], prefill=c["prefill"]), 8)
    assert d["best"]["cost_usd"] <= d["scenario_plan"]["cost_usd"]
    assert d["best"]["serving"]["ep"] == 1 and d["best"]["serving"]["redundant_experts"] == 0


def test_table_csv_and_refusals():
    out = runner.invoke(app, ["search", str(DISTILL), "--phase", PHASE, "--top", "2"])
    assert out.exit_code == 0 and "generate phase" in out.stdout and "scenario:" in out.stdout
    out = runner.invoke(app, ["search", str(DISTILL), "--phase", PHASE, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert out.exit_code == 0 and rows and rows[0]["rank"] == "1"
    assert [float(r["gpu_hours"]) for r in rows] == sorted(float(r["gpu_hours"]) for r in rows)
    for args, words in ((["--objective", "time"], "only objective"), (["-o", "x.html"], "Pareto chart")):
        out = runner.invoke(app, ["search", str(DISTILL), "--phase", PHASE, *args])
        assert out.exit_code == 2 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = runner.invoke(app, ["search", str(DISTILL)])            # no --phase: the training phase, as before
    assert out.exit_code == 0 and "generate phase" not in out.stdout


def test_sizes_tile_odd_gpu_counts(tmp_path):
    """7 GPUs: instances of 1 and 7 GPUs are tried (every size that tiles them), nothing else."""
    raw = {"name": "g7", "model": "llama3.1-8b", "cluster": {"gpu": "h100-sxm", "num_gpus": 7},
           "phases": [{"name": "g", "kind": "generate", "prompts": 1000, "input_tokens": 100, "output_tokens": 100}]}
    path = tmp_path / "g7.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    d = _json(path, "--phase", "g")
    assert d["grid"]["instance_gpus"] == [1, 7]
    assert {c["serving"]["tp"] * c["serving"]["dp"] for c in d["top"]} == {1, 7}
    for c in d["top"]:
        _matches(c, _estimate(path, 0, serving=c["serving"]), 7)

"""calibrate run on the CPU end to end (run → fit → estimate with the fitted profile) and its errors; needs
PyTorch (the calibrate extra), skipped without it."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from test_calibrate_cli import invoke, one_line_error

ROOT = Path(__file__).resolve().parent.parent
GPT3 = str(ROOT / "scenarios" / "gpt3-175b-h100.yaml")


def test_device_cuda_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    one_line_error(invoke("calibrate", "run", "--device", "cuda", "-o", str(tmp_path / "r.json")),
                   "--device cuda: no CUDA GPU")


def test_unknown_family(tmp_path):
    one_line_error(invoke("calibrate", "run", "--device", "cpu", "--only", "gemm,warp", "-o", str(tmp_path / "r.json")),
                   "unknown family 'warp'")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    result = invoke("calibrate", "run", "--device", "cpu", "--quick", "-o", str(tmp / "r.json"))
    assert result.exit_code == 0, result.output
    return tmp


def test_quick_cpu_run_writes_a_valid_results_file(quick_run):
    from costsim.calibrate.results import load_results
    r = load_results(quick_run / "r.json")
    families = {e.family for e in r.entries}
    assert families == {"gemm", "memory", "attention", "launch"}
    assert r.environment.device == "cpu" and "torch" in r.environment.summary
    assert r.settings["statistic"] == "median" and r.settings["l2_flush_bytes"] > 0
    assert {e.op for e in r.entries if e.family == "memory"} == {"copy", "read", "write"}
    att = [e for e in r.entries if e.family == "attention"]
    assert {e.head_dim for e in att} == {64, 128, 192} and {e.causal for e in att} == {True, False}
    assert {e.direction for e in att} == {"fwd", "bwd"}
    assert all(e.time_s > 0 and e.repeats >= 3 for e in r.entries if e.family != "launch")


def _finite_positive(node) -> None:
    if isinstance(node, dict):
        for v in node.values():
            _finite_positive(v)
    elif isinstance(node, list):
        for v in node:
            _finite_positive(v)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        assert math.isfinite(node) and node >= 0


def test_quick_run_fit_then_estimate(quick_run, monkeypatch):
    from costsim.hardware import load_profile
    profile = quick_run / "cpu.yaml"
    result = invoke("calibrate", "fit", str(quick_run / "r.json"), "--base", "h100-sxm", "-o", str(profile))
    assert result.exit_code == 0, result.output
    assert "log-RMSE" in result.stdout and "gemm" in result.stdout
    hw = load_profile(str(profile))
    assert hw.name == "cpu" and hw.gemm_mamf_flops["bf16"] < 100e12          # a CPU, not an H100
    assert hw.sources["memory.hbm_bw_stream_tbs"].startswith("fit: ")
    estimates = []
    for gpu in (str(profile), "cpu.yaml"):                                    # absolute, then relative to cwd
        monkeypatch.chdir(quick_run)
        res = invoke("estimate", GPT3, "--set", f"cluster.gpu={gpu}", "--format", "json")
        assert res.exit_code == 0, res.stderr
        data = json.loads(res.stdout)
        _finite_positive(data)
        assert data["gpu"] == "cpu" and data["total"]["gpu_hours"] > 0
        estimates.append(data["total"]["gpu_hours"])
    assert estimates[0] == estimates[1]
    res = invoke("calibrate", "compare", str(quick_run / "r.json"), "--profile", str(profile), "--format", "json")
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)["summary"]
    assert summary["gemm"]["predicted"] == summary["gemm"]["entries"] > 0


def test_collectives_through_torchrun_on_the_cpu(tmp_path):
    result = invoke("calibrate", "run", "--device", "cpu", "--quick", "--only", "collective", "--ranks", "2",
                    "-o", str(tmp_path / "c.json"))
    assert result.exit_code == 0, result.output
    from costsim.calibrate.results import load_results
    entries = load_results(tmp_path / "c.json").entries
    assert {e.collective for e in entries} >= {"all_reduce", "all_gather", "all_to_all"}
    assert all(e.ranks == 2 and e.busbw_gbs > 0 and e.size_bytes for e in entries)

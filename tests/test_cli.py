"""The command line through CliRunner: every command runs, JSON has the documented shape, help everywhere."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from costsim.cli import app

ROOT = Path(__file__).resolve().parent.parent
V3 = str(ROOT / "scenarios" / "deepseek-v3.yaml")
V3_H100 = str(ROOT / "scenarios" / "deepseek-v3-on-h100.yaml")
WIDE = {"COLUMNS": "120"}

PHASE_KEYS = {"name", "tokens", "steps", "step_time_s", "gpu_hours", "wall_clock_days", "cost_usd", "mfu",
              "model_tflops_per_gpu", "hardware_tflops_per_gpu", "tokens_per_s_per_gpu", "step_breakdown_s",
              "memory_gib_per_gpu"}
BREAKDOWN_KEYS = {"forward", "backward", "bubble", "exposed_comm", "optimizer"}
MEMORY_KEYS = {"weights", "gradients", "optimizer", "activations", "total", "capacity"}
TOTAL_KEYS = {"gpu_hours", "wall_clock_days", "cost_usd", "energy_mwh"}


def make_runner() -> CliRunner:
    """A runner with stdout and stderr apart (click < 8.2 needs mix_stderr=False; later ones always split)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


runner = make_runner()


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env or WIDE)


def _estimate_json(*args: str) -> dict:
    result = run("estimate", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def v3_json() -> dict:
    return _estimate_json(V3)


def _plain_floats(node) -> None:
    """Every number in the JSON tree is a plain int/float (json.loads gives nothing else, so re-dump strictly)."""
    json.dumps(node, allow_nan=False)


def test_estimate_table_names_phases_and_total():
    result = run("estimate", V3)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for name in ("pre-training", "context-extension-32k", "context-extension-128k", "post-training"):
        assert name in out
    assert "Total" in out and "GPU-h" in out and "$" in out
    assert "reported" in out                      # post-training is a reported figure
    assert "step breakdown" in out and "memory per GPU" in out and "F compute" in out
    assert "TP1 PP16 EP64" in out and "dualpipe" in out
    assert "compute_derate" in out               # the global efficiency parameters in use
    assert "estimating" not in out               # the spinner goes to stderr, never stdout


def test_estimate_table_narrow_terminal_keeps_numbers_whole():
    result = run("estimate", V3, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert "…" not in result.stdout              # columns split instead of truncating
    assert "context-extension-128k" in result.stdout


def test_estimate_json_has_the_documented_keys(v3_json):
    assert {"scenario", "phases", "total"} <= set(v3_json)
    assert v3_json["scenario"] == "DeepSeek-V3"
    assert TOTAL_KEYS <= set(v3_json["total"])
    names = [p["name"] for p in v3_json["phases"]]
    assert names == ["pre-training", "context-extension-32k", "context-extension-128k", "post-training"]
    for phase in v3_json["phases"]:
        assert PHASE_KEYS <= set(phase)
        if phase["reported"]:
            assert phase["step_breakdown_s"] is None and phase["memory_gib_per_gpu"] is None
            assert phase["gpu_hours"] == 5000.0
            continue
        assert BREAKDOWN_KEYS <= set(phase["step_breakdown_s"])
        assert MEMORY_KEYS <= set(phase["memory_gib_per_gpu"])
        assert sum(phase["step_breakdown_s"][k] for k in BREAKDOWN_KEYS) == pytest.approx(phase["step_time_s"])
        assert 0 < phase["mfu"] < 1
    _plain_floats(v3_json)
    total = sum(p["gpu_hours"] for p in v3_json["phases"])
    assert v3_json["total"]["gpu_hours"] == pytest.approx(total)


def test_set_override_changes_step_time_and_plan(v3_json):
    # pp 8 alone needs ~100 GiB per H800 (twice the layers per GPU); full recompute brings it under 80
    changed = _estimate_json(V3, "--set", "parallelism.pp=8", "--set", "parallelism.recompute=full")
    before, after = v3_json["phases"][0], changed["phases"][0]
    assert after["plan"]["pp"] == 8 and before["plan"]["pp"] == 16
    assert after["step_time_s"] != pytest.approx(before["step_time_s"])
    table = run("estimate", V3, "-s", "parallelism.pp=8", "-s", "parallelism.recompute=full")
    assert table.exit_code == 0, table.stderr
    assert "PP8 " in table.stdout


def test_h100_what_if_differs_from_h800(v3_json):
    h100 = _estimate_json(V3_H100)
    assert h100["gpu"] == "h100-sxm" and v3_json["gpu"] == "h800-sxm"
    a, b = v3_json["phases"][0], h100["phases"][0]
    assert (a["step_breakdown_s"]["exposed_comm"] != pytest.approx(b["step_breakdown_s"]["exposed_comm"])
            or a["step_time_s"] != pytest.approx(b["step_time_s"]))


def test_schema_is_json_with_the_top_level_keys():
    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"model", "cluster", "parallelism", "phases", "pricing"} <= set(schema["properties"])


def test_profiles_lists_gpus_and_models():
    result = run("profiles")
    assert result.exit_code == 0, result.stderr
    for name in ("h100-sxm", "h800-sxm", "a100-sxm-80gb", "h200-sxm", "b200", "deepseek-v3", "llama3.1-405b"):
        assert name in result.stdout


def test_profiles_show_gives_sources():
    from costsim.hardware import load_profile

    result = run("profiles", "--show", "h800-sxm", env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.stderr
    profile = load_profile("h800-sxm")
    assert "compute.peak_tflops.bf16" in result.stdout
    assert profile.sources["compute.peak_tflops.bf16"] in result.stdout
    assert "989.4" in result.stdout


@pytest.mark.parametrize("command", [[], ["estimate"], ["schema"], ["profiles"], ["validate"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_no_args_shows_help_and_version():
    result = run()
    assert "estimate" in result.stdout and "profiles" in result.stdout
    version = run("--version")
    assert version.exit_code == 0 and version.stdout.startswith("costsim ")


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "costsim", "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("costsim ")


# ---- validate, against a stand-in for costsim.crossval ----

@dataclass(frozen=True)
class FakeCase:
    case: str
    group: str
    metric: str
    published: float
    predicted: float
    source: str
    fitted_on: bool = True

    @property
    def error(self) -> float:
        return (self.predicted - self.published) / self.published


@pytest.fixture
def fake_validate(monkeypatch):
    from costsim.crossval import Row, summarize

    cases = [FakeCase("145.6B", "Megatron-LM Table 1", "step time (s)", 10.0, 10.5, "arXiv 2104.04473 Table 1"),
             FakeCase("310.1B", "Megatron-LM Table 1", "step time (s)", 20.0, 19.0, "arXiv 2104.04473 Table 1"),
             FakeCase("V3 pre-training", "DeepSeek-V3", "GPU-hours", 2.664e6, 2.7e6, "arXiv 2412.19437 Table 1")]
    held_out = [11.0, 18.0, 2.9e6]
    calls = []

    def cross_validate(progress=None, record=None):
        for i in range(len(cases)):
            if progress:
                progress(i + 1, len(cases))
            calls.append(i)
        rows = [Row(c, p) for c, p in zip(cases, held_out)]
        return rows, summarize(rows)

    module = types.ModuleType("costsim.crossval")
    module.cross_validate = cross_validate
    monkeypatch.setitem(sys.modules, "costsim.crossval", module)
    return calls


def test_validate_table(fake_validate):
    result = run("validate")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert fake_validate == [0, 1, 2]
    assert "Megatron-LM Table 1" in out and "DeepSeek-V3" in out
    assert "145.6B" in out and "+10.0%" in out and "-10.0%" in out     # held out
    assert "+5.0%" in out and "-5.0%" in out                            # in-sample
    assert "3 cases" in out and "310.1B" in out and "arXiv 2104.04473" in out
    assert "leave one source out" in out


def test_validate_json(fake_validate):
    result = run("validate", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["cases"]) == 3 and data["summary"]["cases"] == 3
    assert data["cases"][0]["error"] == pytest.approx(0.05)
    assert data["cases"][0]["cv_predicted"] == pytest.approx(11.0)
    assert data["cases"][0]["cv_error"] == pytest.approx(0.10)
    s = data["summary"]
    assert s["in_sample"]["median_abs"] == pytest.approx(0.05) and s["in_sample"]["max_abs"] == pytest.approx(0.05)
    assert s["cross_validated"]["max_abs"] == pytest.approx(0.10)
    assert s["cross_validated"]["median_abs"] == pytest.approx(0.10)     # |errors| 0.10, 0.10, 0.089
    assert s["worst_cross_validated"] == "Megatron-LM Table 1: 145.6B"


def test_validate_output_needs_fit_and_a_file(tmp_path):
    """`-o PATH` names the file --fit writes: alone it is refused, and a directory is refused before any fitting."""
    alone = run("validate", "-o", str(tmp_path / "f.json"))
    assert alone.exit_code == 2 and "--fit" in alone.stderr and len(alone.stderr.strip().splitlines()) == 1
    folder = run("validate", "--fit", "-o", str(tmp_path))
    assert folder.exit_code == 2 and "is a directory" in folder.stderr


def test_usage_errors_one_line_in_a_fresh_process():
    """typer.rich_utils is imported only for --help or an error (costsim/cli.py patches it as it loads, ~0.08 s
    saved on every command); a usage error in a fresh interpreter is still our one line, help still renders."""
    done = subprocess.run([sys.executable, "-m", "costsim", "estimate", V3, "--seed", "abc"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: costsim estimate: Invalid value for '--seed'"), lines
    done = subprocess.run([sys.executable, "-m", "costsim", "estimate", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0 and "Usage" in done.stdout and "--simulate" in done.stdout

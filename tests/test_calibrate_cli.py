"""calibrate on the command line without PyTorch: bad input is one line and exit code 2; torch stays optional."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from test_cli import make_runner
from costsim.cli import app

ROOT = Path(__file__).resolve().parent.parent
GPT3 = str(ROOT / "scenarios" / "gpt3-175b-h100.yaml")
runner = make_runner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def one_line_error(result, match: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], result.stderr


def test_importing_costsim_does_not_import_torch():
    code = "import sys, costsim.cli, costsim.calibrate.fit, costsim.calibrate.compare; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_without_torch_says_install_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)     # `import torch` raises ImportError
    one_line_error(invoke("calibrate", "run", "--device", "cpu", "-o", str(tmp_path / "r.json")),
                   "pip install torch")


def test_fit_unknown_base_profile(tmp_path):
    from calibrate_synth import memory_entries, write
    path = write(tmp_path / "r.json", memory_entries())
    one_line_error(invoke("calibrate", "fit", str(path), "--base", "no-such-gpu", "-o", str(tmp_path / "p.yaml")),
                   "unknown hardware profile 'no-such-gpu'")
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize("content, match", [
    ('{"format": "costsim-calibration-results", "version": 99, "entries": []}', "version 99 is not supported"),
    ('[1, 2, 3]', "not a costsim calibration results file"),
    ('{"format": "costsim-calibration-results", "version": 1, "entries": 3}', "r.json: "),
    ('not json', "cannot read results file"),
])
def test_fit_and_compare_bad_results_file(tmp_path, content, match):
    path = tmp_path / "r.json"
    path.write_text(content)
    one_line_error(invoke("calibrate", "fit", str(path), "--base", "h100-sxm", "-o", str(tmp_path / "p.yaml")), match)
    one_line_error(invoke("calibrate", "compare", str(path), "--profile", "h100-sxm"), match)


def test_missing_results_file(tmp_path):
    one_line_error(invoke("calibrate", "compare", str(tmp_path / "nope.json"), "--profile", "h100-sxm"), "not found")




def test_scenario_gemm_shapes_come_from_the_op_table():
    from costsim.calibrate.bench_gemm import plan, scenario_shapes
    root = Path(__file__).resolve().parent.parent
    shapes = scenario_shapes(root / "scenarios" / "deepseek-v3.yaml")
    assert 0 < len(shapes) <= 48 and {s[0] for s in shapes} == {"bf16", "fp8"}
    dtype, m, n, k, g = shapes[0]
    assert (dtype, k, n, m, g) in shapes or (dtype, m, k, n, g) in shapes   # its weight- or input-grad GEMM
    cases = plan("cuda", True, shapes, fp8=True)
    assert sum(c.probe == "scenario" for c in cases) == len(shapes)
    assert {c.probe for c in cases} >= {"grid", "wave", "tile", "k", "small_m"}

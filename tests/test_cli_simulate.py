"""`costsim estimate --simulate`, `costsim timeline`, and the reliability block's errors, through the CLI."""
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from costsim.cli import app

SCEN = Path(__file__).resolve().parent.parent / "scenarios" / "deepseek-v3.yaml"
runner = CliRunner()


def _json(*args: str) -> dict:
    res = runner.invoke(app, ["estimate", str(SCEN), "--format", "json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_simulate_adds_keys_and_keeps_the_pinned_ones():
    d = _json("--simulate", "--seed", "1", "--replicates", "4")
    plain = _json()
    assert set(plain) <= set(d) and set(plain["phases"][0]) <= set(d["phases"][0])
    assert d["phases"][0]["simulated_step_time_s"] == pytest.approx(d["phases"][0]["step_time_s"], rel=0.05)
    sim = d["simulation"]
    assert sim["replicates"] == 4 and sim["seed"] == 1
    for key in ("wall_clock_days", "gpu_hours", "goodput", "failures"):
        assert sim[key]["p10"] <= sim[key]["mean"] <= sim[key]["p90"] or sim[key]["p10"] == sim[key]["p90"]
    assert 0.5 < sim["goodput"]["mean"] <= 1.0
    # failures, checkpoints and restarts only add time to the failure-free simulated run
    assert sim["gpu_hours"]["mean"] > sum(p["gpu_hours"] for p in d["phases"] if not p["reported"]) * 0.99


def test_simulate_is_deterministic_for_a_seed():
    a = _json("--simulate", "--seed", "7", "--replicates", "3")["simulation"]
    b = _json("--simulate", "--seed", "7", "--replicates", "3")["simulation"]
    c = _json("--simulate", "--seed", "8", "--replicates", "3")["simulation"]
    assert a == b and a != c


def test_simulate_table_output():
    res = runner.invoke(app, ["estimate", str(SCEN), "--simulate", "--replicates", "2"])
    assert res.exit_code == 0, res.output
    assert "simulated step" in res.stdout and "goodput" in res.stdout


def test_timeline_writes_self_contained_html(tmp_path):
    out = tmp_path / "t.html"
    res = runner.invoke(app, ["timeline", str(SCEN), "-o", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert '<script src="http' not in html
    assert sum(f'"name":"stage {r}"' in html for r in range(16)) == 16


def test_timeline_unknown_phase_is_one_line(tmp_path):
    res = runner.invoke(app, ["timeline", str(SCEN), "-o", str(tmp_path / "t.html"), "--phase", "nope"])
    assert res.exit_code == 2
    assert "no training phase of that name" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("key, value, field", [
    ("gpu_mtbf_hours", -5, "reliability.gpu_mtbf_hours"),
    ("checkpoint_interval_s", 0, "reliability.checkpoint_interval_s"),
    ("replicates", 0, "reliability.replicates"),
    ("straggler_fraction", 2, "reliability.straggler_fraction"),
    ("mtbf", 5, "reliability.mtbf"),
])
def test_bad_reliability_block_is_one_line(tmp_path, key, value, field):
    raw = yaml.safe_load(SCEN.read_text())
    raw["reliability"] = {key: value}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = runner.invoke(app, ["estimate", str(path), "--simulate"])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in res.output


def test_replicates_zero_on_the_command_line_is_one_line():
    res = runner.invoke(app, ["estimate", str(SCEN), "--simulate", "--replicates", "0"])
    assert res.exit_code == 2 and "reliability.replicates" in res.output

"""Issue 9's small fixes: a new cluster.gpu brings its own price unless the scenario pins one (and the output
says which), schema descriptions, plain boolean flags in --help, --format csv, profiles at 80 columns."""
import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from costsim.cli import app

ROOT = Path(__file__).resolve().parent.parent
V3 = str(ROOT / "scenarios" / "deepseek-v3.yaml")          # pins $2/GPU-hour
GPT3 = str(ROOT / "scenarios" / "gpt3-175b-h100.yaml")     # no pricing block
runner = CliRunner()


def run(*args, columns=120):
    res = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    return res.stdout


def _json(*args):
    return json.loads(run("estimate", *args, "--format", "json"))


def test_new_gpu_brings_its_own_price():
    d = _json(GPT3, "--set", "cluster.gpu=b200")
    assert d["usd_per_gpu_hour"] == d["profile_usd_per_gpu_hour"] == 7.38 and d["usd_per_gpu_hour_source"] == "profile"
    assert "b200's price, from its profile" in run("estimate", GPT3, "--set", "cluster.gpu=b200", columns=200)


def test_pinned_price_stays_and_the_output_says_so():
    d = _json(V3, "--set", "cluster.gpu=h100-sxm")
    assert d["usd_per_gpu_hour"] == 2.0 and d["usd_per_gpu_hour_source"] == "scenario"
    assert d["profile_usd_per_gpu_hour"] == 4.92
    out = " ".join(run("estimate", V3, "--set", "cluster.gpu=h100-sxm", columns=300).split())
    assert "set by the scenario's pricing.usd_per_gpu_hour, kept; h100-sxm's own price is $4.92" in out
    # unpinned on the command line, the GPU's own price applies
    assert _json(V3, "--set", "cluster.gpu=h100-sxm", "--set", "pricing.usd_per_gpu_hour=null")["usd_per_gpu_hour"] == 4.92


def _properties(node, path=""):
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{path}.{name}", prop
        for key, child in node.items():
            yield from _properties(child, f"{path}/{key}" if key != "properties" else path)


def test_every_scenario_schema_property_has_a_description():
    schema = json.loads(run("schema"))
    missing = [p for p, prop in _properties(schema) if "description" not in prop]
    assert not missing, missing


@pytest.mark.parametrize("command", [["estimate"], ["validate"], ["profiles"], ["calibrate", "run"]])
def test_boolean_options_are_plain_flags(command):
    out = run(*command, "--help")
    assert "<bool>" not in out
    assert "--help" in out


def test_estimate_csv_has_a_row_per_phase_and_the_total():
    rows = list(csv.DictReader(io.StringIO(run("estimate", V3, "--format", "csv"))))
    d = _json(V3)
    assert [r["phase"] for r in rows] == [p["name"] for p in d["phases"]] + ["total"]
    assert float(rows[0]["gpu_hours"]) == pytest.approx(d["phases"][0]["gpu_hours"])
    assert float(rows[-1]["cost_usd_p90"]) == pytest.approx(d["total"]["cost_usd_p90"])
    assert rows[-2]["step_time_s"] == ""            # the reported post-training phase has no step


def test_profiles_fit_80_columns():
    out = run("profiles", columns=80)
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    lines = out.splitlines()
    for name in ("a100-sxm-40gb", "h100-sxm-96gb-hbm2e", "h800-sxm"):
        # the name whole, and its description on one line (cut with an ellipsis)
        hits = [line for line in lines if line.strip().startswith(name + " ")]
        assert hits and any("NVIDIA" in line for line in hits), name

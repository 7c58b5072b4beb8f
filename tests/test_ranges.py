"""Assumption ranges (`ranges:` in a scenario, costsim/ranges.py): each point equals `estimate --set` with that
value, the span is the min and max of `estimate --set` over every combination (run here one by one through the
CLI's --set path, not through costsim.ranges), and bad ranges fail with one line naming them."""
from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import pytest
import yaml

from test_cli import make_runner
from costsim.cli import app
from costsim.scenario import MAX_RANGE_COMBINATIONS, load_scenario

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "scenarios" / "gpt3-175b-h100.yaml"
SERVING = ROOT / "scenarios" / "deepseek-v3-serving.yaml"
runner = make_runner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def estimate_json(path, *sets) -> dict:
    res = invoke("estimate", path, "--format", "json", "--no-ranges", *[x for s in sets for x in ("--set", s)])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def with_ranges(tmp_path: Path, ranges: list, base: Path = SMALL) -> Path:
    raw = yaml.safe_load(base.read_text())
    raw["ranges"] = ranges
    out = tmp_path / "ranged.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return out


SMALL_RANGES = [
    {"key": "parallelism.recompute", "values": ["selective", "full"], "source": "assumed"},
    {"key": ["phases.0.tokens", "phases.1.tokens"], "values": [2.0e11, 3.0e11, 4.0e11]},
]


def _yaml_value(v) -> str:
    return json.dumps(v)


def test_points_and_span_equal_estimate_with_set(tmp_path):
    path = with_ranges(tmp_path, SMALL_RANGES)
    res = invoke("estimate", path, "--format", "json")
    assert res.exit_code == 0, res.stderr
    r = json.loads(res.stdout)["assumption_ranges"]
    assert r["combinations"] == 6
    # each value with the other range as the scenario writes it
    for spec, got in zip(SMALL_RANGES, r["keys"]):
        keys = [spec["key"]] if isinstance(spec["key"], str) else spec["key"]
        assert got["key"] == spec["key"] and got["source"] == spec.get("source")
        for v, point in zip(spec["values"], got["values"]):
            want = estimate_json(SMALL, *[f"{k}={_yaml_value(v)}" for k in keys])["total"]
            assert point["value"] == v
            for f in ("gpu_hours", "wall_clock_days", "cost_usd"):
                assert point[f] == pytest.approx(want[f], rel=1e-12), (spec["key"], v, f)
    # the span: min and max over the whole grid, each grid point estimated on its own
    totals, phases = [], []
    for rc, tokens in itertools.product(["selective", "full"], [2.0e11, 3.0e11, 4.0e11]):
        d = estimate_json(SMALL, f"parallelism.recompute={rc}", f"phases.0.tokens={tokens}",
                          f"phases.1.tokens={tokens}")
        totals.append(d["total"])
        phases.append({p["name"]: p for p in d["phases"]})
    for f in ("gpu_hours", "wall_clock_days", "cost_usd"):
        assert r["total"][f] == pytest.approx([min(t[f] for t in totals), max(t[f] for t in totals)], rel=1e-12)
        for name in phases[0]:
            assert r["by_phase"][name][f] == pytest.approx(
                [min(p[name][f] for p in phases), max(p[name][f] for p in phases)], rel=1e-12)
    cheapest = min(range(6), key=lambda i: totals[i]["cost_usd"])
    rc, tokens = list(itertools.product(["selective", "full"], [2.0e11, 3.0e11, 4.0e11]))[cheapest]
    assert r["lowest_cost_at"] == [{"key": "parallelism.recompute", "value": rc},
                                   {"key": ["phases.0.tokens", "phases.1.tokens"], "value": tokens}]
    assert r["runnable"] == 6 and r["cannot_run"] == []
    assert (rc, tokens) == ("selective", 2.0e11)        # less recompute, fewer tokens: the obvious cheapest


def test_table_csv_and_no_ranges(tmp_path):
    path = with_ranges(tmp_path, SMALL_RANGES)
    table = invoke("estimate", path)
    assert table.exit_code == 0, table.stderr
    assert "assumption ranges" in table.stdout and "all ranges together" in table.stdout
    assert "phases.0.tokens (+1 more)" in table.stdout and "no source given" in table.stdout
    rows = list(csv.DictReader(io.StringIO(invoke("estimate", path, "--format", "csv").stdout)))
    data = json.loads(invoke("estimate", path, "--format", "json").stdout)["assumption_ranges"]
    total = next(row for row in rows if row["phase"] == "total")
    assert float(total["cost_usd_range_min"]) == pytest.approx(data["total"]["cost_usd"][0])
    assert float(total["gpu_hours_range_max"]) == pytest.approx(data["total"]["gpu_hours"][1])
    first = rows[0]
    assert float(first["cost_usd_range_max"]) == pytest.approx(data["by_phase"][first["phase"]]["cost_usd"][1])
    off = json.loads(invoke("estimate", path, "--format", "json", "--no-ranges").stdout)
    assert off["assumption_ranges"] is None
    assert "all ranges together" not in invoke("estimate", path, "--no-ranges").stdout
    emptied = json.loads(invoke("estimate", path, "--format", "json", "--set", "ranges=[]").stdout)
    assert emptied["assumption_ranges"] is None


def test_scenario_without_ranges_has_none():
    assert estimate_json(SMALL)["assumption_ranges"] is None


def test_serving_day_states_the_published_ranges():
    """The shipped serving day: its two published ranges, each end costed; the scenario's own point inside."""
    sc = load_scenario(SERVING)
    assert [r.key for r in sc.ranges] == ["phases.0.tokens_per_s_per_request", "phases.0.decode.mtp_tokens"]
    assert [r.values for r in sc.ranges] == [[20, 22], [1.85, 1.90]]
    assert all(r.source for r in sc.ranges)
    res = invoke("estimate", SERVING, "--format", "json")
    d = json.loads(res.stdout)
    lo, hi = d["assumption_ranges"]["total"]["cost_usd"]
    assert lo <= d["total"]["cost_usd"] <= hi and lo < hi


def test_a_set_applies_before_the_ranges_and_pins_its_key(tmp_path):
    """--set changes the base the ranges vary; a range over a key --set pins (or a key holding it) is left out."""
    path = with_ranges(tmp_path, SMALL_RANGES)
    base = json.loads(invoke("estimate", path, "--format", "json", "--set", "pricing.usd_per_gpu_hour=4").stdout)
    want = estimate_json(SMALL, "pricing.usd_per_gpu_hour=4", "parallelism.recompute=full")["total"]
    assert base["assumption_ranges"]["keys"][0]["values"][1]["cost_usd"] == pytest.approx(want["cost_usd"])
    for pin in ("parallelism.recompute=none", "parallelism={tp: 4, pp: 8}"):
        over = json.loads(invoke("estimate", path, "--format", "json", "--set", pin).stdout)["assumption_ranges"]
        assert [k["key"] for k in over["keys"]] == [["phases.0.tokens", "phases.1.tokens"]], pin
    one = json.loads(invoke("estimate", path, "--format", "json", "--set", "phases.1.tokens=1e11").stdout)
    assert [k["key"] for k in one["assumption_ranges"]["keys"]] == ["parallelism.recompute"]


@pytest.mark.parametrize("ranges, expect", [
    ([{"key": "phases.0.tokenz", "values": [1, 2]}], "ranges[0] (phases.0.tokenz=1): phases.0.tokenz: unknown key"),
    ([{"key": "phases.0.tokens", "values": [3e11, -1]}], "ranges[0] (phases.0.tokens=-1): phases.0.tokens"),
    ([{"key": "phases.7.tokens", "values": [1, 2]}], "index 7 out of range"),
    ([{"key": "phases.0.tokens", "values": [3e11]}], "ranges.0.values"),
    ([{"key": "ranges.0.values", "values": [1, 2]}], "a range cannot vary the ranges themselves"),
    ([{"key": "phases.0.tokens", "values": [1e11, 2e11]}, {"key": ["phases.1.tokens", "phases.0.tokens"],
                                                           "values": [1e11, 2e11]}],
     "ranges[1].key: 'phases.0.tokens' sets the same value as 'phases.0.tokens' of ranges[0]"),
    ([{"key": "phases.0.tokens", "values": [1e11, 2e11]}, {"key": "phases.00.tokens", "values": [1e11, 2e11]}],
     "sets the same value as 'phases.0.tokens' of ranges[0]"),
    ([{"key": "phases.0.tokens", "values": [1e11, 2e11]}, {"key": "phases.+0.tokens", "values": [1e11, 2e11]}],
     "sets the same value as 'phases.0.tokens' of ranges[0]"),
    ([{"key": "phases.0.tokens", "values": [1e11, 2e11]}, {"key": "phases.0_0.tokens", "values": [1e11, 2e11]}],
     "sets the same value as 'phases.0.tokens' of ranges[0]"),
    ([{"key": "cluster.²", "values": [1, 2]}], "cluster.²: unknown key"),
    ([{"key": "parallelism.recompute", "values": ["none", "full"]},
      {"key": "parallelism", "values": [{"tp": 4}, {"tp": 8}]}], "overlaps 'parallelism.recompute'"),
    ([{"key": "reliability.gpu_mtbf_hours", "values": [1e3, 1e6]}], "does not change the closed-form estimate"),
    ([{"key": "search.tp", "values": [4, 8]}], "does not change the closed-form estimate"),
    ([{"key": "name", "values": ["a", "b"]}], "cannot rename, add or remove phases"),
    ([{"key": "phases.0", "values": [{}, {}]}], "cannot rename, add or remove phases"),
    ([{"key": "phases.1.name", "values": ["a", "b"]}], "cannot rename, add or remove phases"),
    ([{"key": "model", "values": ["gpt3-175b", {"hidden_size": {1: 2, "a": 3}}]}],
     "ranges (model={'hidden_size': {1: 2, 'a': 3}}): model.hidden_act"),
    ([{"key": "phases.0.tokens", "values": [3e11, "x" * 5000]}], "phases.0.tokens"),
    ([{"key": ["phases.0.tokens", "phases.0.tokens"], "values": [1e11, 2e11]}], "is listed twice"),
    ([{"key": f"phases.0.k{i}", "values": list(range(4))} for i in range(5)], "1,024 combinations"),
    ([{"key": "phases.0.tokens", "values": [1e11, 2e11], "sauce": "x"}], "ranges.0.sauce: unknown key"),
    ([{"key": [], "values": [1, 2]}], "expected one key or a list of 1 to 32"),
])
def test_bad_ranges_fail_in_one_line(tmp_path, ranges, expect):
    path = with_ranges(tmp_path, ranges)
    res = invoke("estimate", path, "--format", "json")
    assert res.exit_code == 2, res.stdout[-500:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert expect in lines[0], lines[0]


def test_a_value_that_cannot_run_is_reported_and_left_out(tmp_path):
    """Valid as a scenario, infeasible as a plan: the point carries the estimate's reason, the span the rest."""
    path = with_ranges(tmp_path, [{"key": "parallelism.tp", "values": [4, 3]}])
    res = invoke("estimate", path, "--format", "json")
    assert res.exit_code == 0, res.stderr
    r = json.loads(res.stdout)["assumption_ranges"]
    bad = r["keys"][0]["values"][1]
    assert bad["value"] == 3 and bad["cost_usd"] is None and "tp" in bad["error"]
    assert r["runnable"] == 1 and r["cannot_run"] == [{"at": [{"key": "parallelism.tp", "value": 3}],
                                                         "error": bad["error"]}]
    ok = r["keys"][0]["values"][0]["cost_usd"]
    assert r["total"]["cost_usd"] == [ok, ok]
    table = invoke("estimate", path).stdout
    assert "cannot run" in table and "1 of 2 combinations cannot run" in table
    none = with_ranges(tmp_path, [{"key": "parallelism.tp", "values": [3, 5]}])
    r = json.loads(invoke("estimate", none, "--format", "json").stdout)["assumption_ranges"]
    assert r["total"] is None and r["lowest_cost_at"] is None and r["runnable"] == 0
    assert "none of the 2 combinations can run" in invoke("estimate", none).stdout


def test_only_the_commands_that_cost_ranges_check_their_values(tmp_path):
    """A range value that makes no valid scenario fails `estimate`, not --no-ranges or the other commands."""
    path = with_ranges(tmp_path, [{"key": "phases.0.tokens", "values": [3e11, -1]}])
    assert invoke("estimate", path, "--format", "json").exit_code == 2
    assert invoke("estimate", path, "--format", "json", "--no-ranges").exit_code == 0
    assert invoke("timeline", path, "-o", tmp_path / "t.html").exit_code == 0
    space = tmp_path / "space.yaml"
    space.write_text("tp: 8\npp: [2, 4]\nmicro_batch_size: 1\nzero_stage: 1\n")
    assert invoke("search", path, "--space", space, "--top", "2").exit_code == 0


def test_a_copy_with_updates_forgets_the_file():
    sc = load_scenario(SERVING)
    assert sc.raw["name"] == sc.name
    changed = sc.model_copy(update={"name": "changed"})
    assert changed.raw["name"] == "changed" and sc.raw["name"] != "changed"


def test_the_combination_limit_is_the_documented_one():
    assert MAX_RANGE_COMBINATIONS == 256


def test_the_file_is_never_written(tmp_path):
    path = with_ranges(tmp_path, SMALL_RANGES)
    before = path.read_bytes()
    assert invoke("estimate", path).exit_code == 0
    assert path.read_bytes() == before


def test_range_on_the_command_line_adds_to_the_files(tmp_path):
    path = with_ranges(tmp_path, SMALL_RANGES[:1])
    res = invoke("estimate", path, "--format", "json", "--range", "pricing.usd_per_gpu_hour=[2, 3]",
                 "-r", "phases.1.tokens=[1e11, 2e11]")
    assert res.exit_code == 0, res.stderr
    keys = json.loads(res.stdout)["assumption_ranges"]["keys"]
    assert [k["key"] for k in keys] == ["parallelism.recompute", "pricing.usd_per_gpu_hour", "phases.1.tokens"]
    assert keys[1]["source"] == "--range (command line)"
    want = estimate_json(SMALL, "pricing.usd_per_gpu_hour=3")["total"]["cost_usd"]
    assert keys[1]["values"][1]["cost_usd"] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("arg, expect", [
    ("phases.0.tokens=2e11", "expected a list of at least 2 values in brackets"),
    ("phases.0.tokens", "expected key=[v1, v2, …]"),
    ("=[1, 2]", "expected key=[v1, v2, …]"),
    ("phases.0.tokens=[1,", "not valid YAML"),
    ("phases.0.tokenz=[1, 2]", "ranges[0] (phases.0.tokenz=1): phases.0.tokenz: unknown key"),
])
def test_bad_command_line_ranges_fail_in_one_line(arg, expect):
    res = invoke("estimate", SMALL, "--range", arg)
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and expect in line, line


@pytest.mark.parametrize("pin", ["phases.+0.tokens=3e11", "phases.00.tokens=3e11", "phases. 0 .tokens=3e11"])
def test_any_spelling_of_an_index_pins(tmp_path, pin):
    path = with_ranges(tmp_path, [{"key": "phases.0.tokens", "values": [2e11, 4e11]}])
    d = json.loads(invoke("estimate", path, "--format", "json", "--set", pin).stdout)
    assert d["assumption_ranges"] is None


def test_a_set_key_that_is_no_number_stays_a_one_line_error():
    res = invoke("estimate", SMALL, "--set", "cluster.²=1")
    assert res.exit_code == 2 and res.stderr.strip().startswith("error: ") and "\n" not in res.stderr.strip()

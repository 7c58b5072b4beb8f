"""Fuzz the scenario file (issue 10): mutate every shipped scenario at every key and check what comes out.

Each example takes a shipped scenario, applies one to three mutations — a key set to a value of the wrong type,
NaN, ±inf, a huge, tiny, zero or negative number, an unknown name; a numeric value scaled; a key removed; an
unknown key added; a phase duplicated; a top-level key given twice in the YAML text — and runs
`costsim estimate --format json` in-process (one in ten with `--simulate`). Either it exits 2 with one line `error: …`, or it exits 0 and every
number is finite and consistent: non-negative, MFU ≤ 1, memory within capacity, GPU-hours = GPUs × days × 24,
cost = GPU-hours × price, the total the sum of the phases.

Seeded and derandomized (the same examples every run); about a minute. Every key path of every scenario is also
swept once with a wrong-typed value (cheap: validation errors).
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from test_cli import make_runner  # noqa: E402
from test_hostile import deadline  # noqa: E402
from costsim.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "scenarios").glob("*.yaml"))}
runner = make_runner()

# keys the shipped scenarios leave out, so the fuzz reaches them too
ABSENT = [("reliability", k) for k in ("gpu_mtbf_hours", "checkpoint_interval_s", "checkpoint_write_gbps",
                                        "checkpoint_bytes", "restart_s", "straggler_fraction",
                                        "straggler_slowdown", "replicates", "seed")] + \
    [("efficiency", k) for k in ("compute_derate", "kernel_overhead_us", "overlap_efficiency", "overlap_slowdown")] + \
    [("pricing", "pue"), ("pricing", "usd_per_gpu_hour"), ("cluster", "network_gbps_per_gpu"),
     ("cluster", "gpus_per_node"), ("moe", "load_imbalance"), ("moe", "capacity_factor"),
     ("optimizer", "moment_dtype")] + \
    [("parallelism", k) for k in ("tp", "pp", "ep", "cp", "dp", "etp", "virtual_stages", "micro_batch_size",
                                  "zero_shard_size", "recompute_fraction", "comm_sms", "zero_stage", "schedule",
                                  "attention", "stage_layout", "recompute", "sequence_parallel")] + \
    [("phases", 0, k) for k in ("prompt_sigma", "whole_instances", "utilization")] + \
    [("phases", 0, "decode", k) for k in ("custom_all_reduce", "moe_load_imbalance", "comm_sms")]

HOSTILE_VALUES = [None, True, False, 0, -1, -1e10, 1e-300, 1e300, 10 ** 30, float("nan"), float("inf"),
                  float("-inf"), "", "x", "no-such-name", "1e3", [], [1], {}, {"bogus": 1}, 1, 2, 3, 7, 64, 1024,
                  0.5, 1.5, 1e9, 1e17]
SCALES = [1e-9, 1e-3, 0.1, 0.5, 2, 3, 10, 1000, 1e6, 1e12]


def key_paths(node, prefix=()):
    """Every key path in a parsed scenario: mapping keys and list indices, interior nodes included."""
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from key_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from key_paths(v, prefix + (i,))


def all_paths(raw: dict) -> list[tuple]:
    paths = list(key_paths(raw))
    return paths + [p for p in ABSENT if p not in paths]


def _get(raw, path):
    node = raw
    for part in path:
        node = node[part] if isinstance(node, list) else node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _set(raw, path, value) -> None:
    node = raw
    for part in path[:-1]:
        if isinstance(node, list):
            node = node[part]
        else:
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
    if isinstance(node, list):
        node[path[-1]] = value
    else:
        node[path[-1]] = value


def _delete(raw, path) -> None:
    parent = _get(raw, path[:-1]) if len(path) > 1 else raw
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
    elif isinstance(parent, list) and len(parent) > 1:
        parent.pop(path[-1])


def mutate(raw: dict, kind: str, path: tuple, value, scale: float) -> str | None:
    """Apply one mutation to `raw` in place; returns extra YAML text to append (duplicate keys) or None."""
    if kind == "set":
        _set(raw, path, copy.deepcopy(value))
    elif kind == "scale":
        old = _get(raw, path)
        if isinstance(old, (int, float)) and not isinstance(old, bool):
            new = old * scale
            _set(raw, path, int(new) if isinstance(old, int) and abs(new) < 2 ** 62 else new)
    elif kind == "delete":
        _delete(raw, path)
    elif kind == "unknown":
        parent = _get(raw, path[:-1]) if len(path) > 1 else raw
        if isinstance(parent, dict):
            parent["bogus_" + str(path[-1])] = 1
    elif kind == "dup_phase":
        raw["phases"].append(copy.deepcopy(raw["phases"][0]))
    elif kind == "dup_key":
        return f"\n{path[0]}: {json.dumps(_get(raw, path[:1]))}\n"
    return None


def run_estimate(tmp_path: Path, raw: dict, tail: str | None, simulate: bool = False):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False) + (tail or ""))
    extra = ["--simulate", "--replicates", "4"] if simulate else []
    with deadline(30):
        return runner.invoke(app, ["estimate", str(path), "--format", "json", *extra], env={"COLUMNS": "200"})


def _finite_numbers(node, where="") -> None:
    if isinstance(node, bool) or node is None or isinstance(node, str):
        return
    if isinstance(node, (int, float)):
        assert math.isfinite(node), where
        return
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        _finite_numbers(v, f"{where}.{k}")


def check_outcome(result) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback: {result.exception!r}") from result.exception
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) < 1500, result.stderr[-2000:]
        return
    assert result.exit_code == 0, (result.exit_code, result.stderr[-2000:])
    data = json.loads(result.stdout)           # strict JSON: NaN or Infinity would not even be written
    _finite_numbers(data)
    n, price = data["num_gpus"], data["usd_per_gpu_hour"]
    assert n >= 1 and price > 0
    total_h = 0.0
    for ph in data["phases"]:
        for key in ("gpu_hours", "wall_clock_days", "cost_usd", "energy_mwh"):
            assert ph[key] >= 0, (ph["name"], key, ph[key])
        # a generate, rl or serve phase may run on GPUs of its own (`num_gpus`; serve: the average it needs)
        ph_n = ph.get("num_gpus") or n
        assert ph["gpu_hours"] == pytest.approx(ph_n * ph["wall_clock_days"] * 24, rel=1e-6), ph["name"]
        assert ph["cost_usd"] == pytest.approx(ph["gpu_hours"] * price, rel=1e-6), ph["name"]
        total_h += ph["gpu_hours"]
        if ph["kind"] != "train":
            assert ph["tokens"] > 0 and ph["tokens_per_s_per_gpu"] > 0, ph["name"]
        elif not ph["reported"]:
            assert ph["step_time_s"] > 0 and ph["steps"] >= 1
            assert 0 < ph["mfu"] <= 1, (ph["name"], ph["mfu"])
            assert ph["hardware_tflops_per_gpu"] >= ph["model_tflops_per_gpu"] * (1 - 1e-9) > 0
            mem = ph["memory_gib_per_gpu"]
            assert 0 < mem["total"] <= mem["capacity"], (ph["name"], mem)
            assert all(v >= 0 for v in mem.values())
            assert all(v >= 0 for v in ph["step_breakdown_s"].values())
    tot = data["total"]
    assert tot["gpu_hours"] == pytest.approx(total_h, rel=1e-6)
    assert tot["cost_usd"] == pytest.approx(tot["gpu_hours"] * price, rel=1e-6)
    assert tot["wall_clock_days"] == pytest.approx(sum(ph["wall_clock_days"] for ph in data["phases"]), rel=1e-6)
    ranges = data.get("assumption_ranges")
    if ranges:
        assert ranges["combinations"] >= 2
        for span in [ranges["total"], *ranges["by_phase"].values()]:
            for key, (lo, hi) in span.items():
                assert 0 <= lo <= hi, (key, lo, hi)
    sim = data.get("simulation")
    if sim:
        for key in ("wall_clock_days", "gpu_hours", "goodput", "failures"):
            assert 0 <= sim[key]["p10"] <= sim[key]["p90"] and sim[key]["mean"] >= 0, (key, sim[key])
        assert 0 < sim["goodput"]["mean"] <= 1
        assert sim["gpu_hours"]["mean"] == pytest.approx(n * sim["wall_clock_days"]["mean"] * 24, rel=1e-6)


PATHS = {name: all_paths(raw) for name, raw in SCENARIOS.items()}
KINDS = ["set", "set", "set", "scale", "scale", "delete", "unknown", "dup_phase", "dup_key"]


@st.composite
def mutations(draw):
    name = draw(st.sampled_from(sorted(SCENARIOS)))
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        steps.append((draw(st.sampled_from(KINDS)), draw(st.sampled_from(PATHS[name])),
                      draw(st.sampled_from(HOSTILE_VALUES)), draw(st.sampled_from(SCALES))))
    return name, steps, draw(st.sampled_from([False] * 9 + [True]))


@settings(max_examples=1500, derandomize=True, deadline=None, database=None, print_blob=True,
          suppress_health_check=list(HealthCheck))
@given(mutations())
def test_fuzz_scenarios(tmp_path_factory, case):
    name, steps, simulate = case
    raw = copy.deepcopy(SCENARIOS[name])
    tail = None
    for kind, path, value, scale in steps:
        try:
            tail = mutate(raw, kind, path, value, scale) or tail
        except (IndexError, KeyError, TypeError, AttributeError):
            pass            # the path went away with an earlier mutation of this example
    check_outcome(run_estimate(tmp_path_factory.mktemp("fuzz"), raw, tail, simulate))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_key_wrong_type(tmp_path, name):
    """Every key path once with a wrong-typed value and once with NaN: exit 2 with one line (or a clean run)."""
    for path in PATHS[name]:
        for value in ({"bogus": [1]}, float("nan")):
            raw = copy.deepcopy(SCENARIOS[name])
            _set(raw, path, value)
            check_outcome(run_estimate(tmp_path, raw, None))

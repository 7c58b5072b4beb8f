"""The fast search engine (costsim/search/fast.py) against the exact one (`estimate_phase` per plan): the same
plans in the same order, the same rejection counts by reason, figures to 1e-9, the same top and frontier —
on a dense model and on DeepSeek-V3 (MoE, MLA, FP8 blockwise, DualPipe, comm_sms, dp_comm_overlap false)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from costsim.cli import app
from costsim.errors import PlanError
from costsim.estimate import load_context
from costsim.hardware import list_profiles
from costsim.plan import make_plan
from costsim.scenario import Parallelism, load_scenario
from costsim.search.engine import SearchResult, evaluate_space, phase_inputs, reason_key, search
from costsim.search.fast import FastStats, FeasibleTable, evaluate_space_fast
from costsim.search.space import SearchSpace, resolve_space

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("step_time_s", "wall_clock_days", "gpu_hours", "cost_usd", "mfu", "memory_gib_per_gpu")
runner = CliRunner()

DENSE = {
    "name": "Llama 2 7B search",
    "model": "llama2-7b",
    "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 64},
    "phases": [{"name": "pre-training", "seq_len": 4096, "global_batch_size": 512, "tokens": 1e11}],
}
# odd sizes too: every divisibility rule gets plans that fail it
DENSE_SPACE = SearchSpace(tp=[1, 2, 3, 4, 8], pp=[1, 2, 3, 4, 8], cp=[1, 3], micro_batch_size=[1, 3, 8],
                          zero_stage=[0, 3], recompute=["none", "full"],
                          schedule=["1f1b", "interleaved", "zero-bubble", "dualpipe"], virtual_stages=[2, 3],
                          sequence_parallel=[False, True], gpu=["a100-sxm-40gb", "h100-sxm"], num_gpus=[48, 64])
MOE_SPACE = SearchSpace(tp=[1, 2], pp=[4, 8, 16], ep=[8, 32, 64, 3], etp=[1, 2], zero_stage=[1, 3],
                        micro_batch_size=1, recompute=["selective", "full"],
                        schedule=["dualpipe", "1f1b", "interleaved", "zero-bubble"], virtual_stages=[2],
                        num_gpus=[1024, 2048])


def _dims(sc, base_dir, space, phase=None):
    model, _ = load_context(sc, base_dir)
    return resolve_space(space, model, sc, phase_inputs(sc, phase).seq_len, False, list_profiles())


def _assert_same(fast, exact, rel=1e-9):
    fe, ff, fr = fast
    se, sf, sr = exact
    assert fe == se
    assert fr == sr, (fr, sr)
    assert isinstance(ff, FeasibleTable) and len(ff) == len(sf)
    for a, b in zip(ff, sf):        # enumeration order, plan by plan
        assert a.plan == b.plan
        for k in FIGURES:
            assert getattr(a, k) == pytest.approx(getattr(b, k), rel=rel, abs=0), (k, b.plan)


def _assert_same_lists(fast: list, exact: list, rel=1e-9):
    """Top / frontier lists: the same figures; the same plans except where two plans tie to rounding."""
    assert len(fast) == len(exact)
    for i, (a, b) in enumerate(zip(fast, exact)):
        for k in FIGURES:
            assert getattr(a, k) == pytest.approx(getattr(b, k), rel=rel, abs=0)
        tied = any(abs(x.cost_usd - b.cost_usd) <= 1e-9 * b.cost_usd for j, x in enumerate(exact) if j != i)
        assert a.plan == b.plan or tied


def _assert_same_results(sc, fast, exact, top=20):
    for objective in ("cost", "time", "pareto"):
        rf = SearchResult(sc.name, "p", "s", objective, fast[0], fast[1], fast[2], 1.0, top)
        rx = SearchResult(sc.name, "p", "s", objective, exact[0], exact[1], exact[2], 1.0, top)
        _assert_same_lists(rf.top, rx.top)
        if objective == "pareto":
            _assert_same_lists(rf.pareto, rx.pareto)
            assert rf.to_dict()["rejected"] == rx.to_dict()["rejected"]


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    path = tmp_path_factory.mktemp("fast") / "dense.yaml"
    path.write_text(yaml.safe_dump(DENSE))
    return path, load_scenario(path)


def test_fast_equals_exact_dense(dense):
    path, sc = dense
    dims = _dims(sc, path.parent, DENSE_SPACE)
    stats = FastStats()
    fast = evaluate_space_fast(sc, path.parent, None, dims, stats=stats)
    exact = evaluate_space(sc, path.parent, None, dims)
    assert fast[0] > 10_000 and stats.vectorised == fast[0] and stats.fallback == 0
    assert len(fast[2]) >= 7 and len(fast[1]) > 500       # most reasons occur
    _assert_same(fast, exact)
    _assert_same_results(sc, fast, exact)


def test_fast_equals_exact_deepseek_fp8():
    path = ROOT / "scenarios" / "deepseek-v3.yaml"
    sc = load_scenario(path)
    dims = _dims(sc, path.parent, MOE_SPACE)
    fast = evaluate_space_fast(sc, path.parent, None, dims)
    exact = evaluate_space(sc, path.parent, None, dims)
    assert fast[0] >= 2000 and len(fast[1]) > 200 and "memory" in fast[2]
    _assert_same(fast, exact)
    _assert_same_results(sc, fast, exact)


def test_small_chunks_and_a_limit_change_nothing(dense, monkeypatch):
    """Enumeration in chunks (fast.CHUNK plans at a time) and a limit that ends mid-chunk: the exact result."""
    from costsim.search import fast
    path, sc = dense
    dims = _dims(sc, path.parent, SearchSpace(tp=[1, 2, 4], pp=[1, 2, 4], micro_batch_size=[1, 2], cp=[1, 2],
                                                zero_stage=[1, 3], recompute=["none", "full"], num_gpus=[32, 64],
                                                gpu=["a100-sxm-80gb", "h100-sxm"]))
    monkeypatch.setattr(fast, "CHUNK", 97)
    for limit in (None, 1500):
        _assert_same(evaluate_space_fast(sc, path.parent, None, dims, limit=limit),
                     evaluate_space(sc, path.parent, None, dims, limit=limit))


def test_fast_equals_exact_deepseek_phase_override():
    """A later phase (seq 32K, cp 8 from the phase's parallelism) and a limit mid-block."""
    path = ROOT / "scenarios" / "deepseek-v3.yaml"
    sc = load_scenario(path)
    space = SearchSpace(tp=[1, 2], pp=[8, 16], ep=[32, 64], etp=1, zero_stage=[1, 3], micro_batch_size=1,
                        recompute=["selective", "full"], schedule=["dualpipe", "1f1b"], num_gpus=2048)
    dims = _dims(sc, path.parent, space, "context-extension-32k")
    fast = evaluate_space_fast(sc, path.parent, "context-extension-32k", dims, limit=50)
    exact = evaluate_space(sc, path.parent, "context-extension-32k", dims, limit=50)
    assert fast[0] == 50
    _assert_same(fast, exact)


def test_fast_equals_exact_edge_cases(dense):
    """Interleaved as the only schedule (pp = 1 then runs two chunks on one stage), 4 GPUs per node (other
    collective tiers); FP8 on a GPU without FP8 tensor cores (every legal plan rejected for precision)."""
    path, sc = dense
    sc4 = sc.model_copy(update={"cluster": sc.cluster.model_copy(update={"gpus_per_node": 4})})
    dims = _dims(sc4, path.parent, SearchSpace(tp=[1, 2, 4, 8], pp=[1, 2, 4], virtual_stages=[2, 3],
                                                 schedule="interleaved", micro_batch_size=[1, 2],
                                                 zero_stage=[1, 3], recompute="selective", num_gpus=[32, 64]))
    fast = evaluate_space_fast(sc4, path.parent, None, dims)
    assert any(r.plan["pp"] == 1 and r.plan["virtual_stages"] == 2 for r in fast[1])
    _assert_same(fast, evaluate_space(sc4, path.parent, None, dims))

    ds = ROOT / "scenarios" / "deepseek-v3.yaml"
    sc = load_scenario(ds)
    dims = _dims(sc, ds.parent, SearchSpace(gpu=["a100-sxm-80gb", "h800-sxm"], tp=1, pp=[8, 16], ep=[32, 64],
                                             zero_stage=1, micro_batch_size=1, recompute="full",
                                             schedule=["dualpipe", "zero-bubble"]))
    fast = evaluate_space_fast(sc, ds.parent, None, dims)
    assert fast[2].get("precision unsupported") and all(r.plan["gpu"] == "h800-sxm" for r in fast[1])
    _assert_same(fast, evaluate_space(sc, ds.parent, None, dims))
    dims = {**dims, "gpu": ["a100-sxm-80gb"]}      # no GPU of the space can run it
    fast = evaluate_space_fast(sc, ds.parent, None, dims)
    assert not fast[1] and "precision unsupported" in fast[2]
    _assert_same(fast, evaluate_space(sc, ds.parent, None, dims))


@pytest.mark.parametrize("par", [
    {"tp_comm_overlap": True, "grad_dtype": "bf16", "attention": "unfused", "dp_comm_overlap": False},
    {"attention": "flash2", "comm_sms": 16},
])
def test_fast_equals_exact_plan_flags(dense, par):
    """The scenario's fixed plan fields the kernels read: overlap flags, gradient dtype, attention kernel, SMs."""
    path, sc = dense
    sc2 = sc.model_copy(update={"parallelism": sc.parallelism.model_copy(update=par)})
    dims = _dims(sc2, path.parent, SearchSpace(tp=[1, 2, 4], pp=[1, 2, 4], micro_batch_size=[1, 2],
                                                 zero_stage=[0, 1, 2, 3], recompute=["none", "selective", "full"],
                                                 schedule=["1f1b", "interleaved", "dualpipe"], virtual_stages=2,
                                                 gpu=["a100-sxm-80gb", "h100-sxm"]))
    _assert_same(evaluate_space_fast(sc2, path.parent, None, dims), evaluate_space(sc2, path.parent, None, dims))


def test_fast_equals_exact_moe_ep_overlap():
    path = ROOT / "scenarios" / "deepseek-v3.yaml"
    sc = load_scenario(path)
    sc2 = sc.model_copy(update={"parallelism": sc.parallelism.model_copy(
        update={"ep_comm_overlap": True, "tp_comm_overlap": True, "dp_comm_overlap": True, "comm_sms": 0})})
    dims = _dims(sc2, path.parent, SearchSpace(tp=[1, 2], pp=[8, 16], ep=[16, 64], etp=[1, 2], zero_stage=[1, 3],
                                                 micro_batch_size=1, recompute=["selective", "full"],
                                                 schedule=["1f1b", "zero-bubble", "dualpipe"], num_gpus=2048))
    _assert_same(evaluate_space_fast(sc2, path.parent, None, dims), evaluate_space(sc2, path.parent, None, dims))


def test_verdicts_match_make_plan_on_random_plans(dense):
    """Each random plan alone: the fast engine's one rejection reason (or none) is make_plan's."""
    path, sc = dense
    model, _ = load_context(sc, path.parent)
    ph = phase_inputs(sc, None)
    rng = random.Random(11)
    checked = set()
    for _ in range(120):
        values = dict(tp=rng.choice([1, 2, 3, 4, 5, 8, 16, 64]), pp=rng.choice([1, 2, 3, 4, 8, 16, 64]),
                      cp=rng.choice([1, 2, 3, 8]), micro_batch_size=rng.choice([1, 2, 3, 4, 16]),
                      schedule=rng.choice(["1f1b", "interleaved", "zero-bubble", "dualpipe"]),
                      zero_stage=rng.choice([0, 1, 2, 3]), recompute=rng.choice(["none", "selective", "full"]))
        values["virtual_stages"] = rng.choice([2, 3, 4]) if values["schedule"] == "interleaved" else 1
        if values["pp"] == 1:
            values["schedule"], values["virtual_stages"] = "1f1b", 1
        n = rng.choice([24, 64, 96, 128])
        gpu = rng.choice(["a100-sxm-80gb", "h100-sxm"])
        space = SearchSpace(gpu=gpu, num_gpus=n, sequence_parallel=False, **values)
        evaluated, feasible, rejected = evaluate_space_fast(sc, path.parent, None, _dims(sc, path.parent, space))
        assert evaluated == 1
        sc_g = sc.model_copy(update={"cluster": sc.cluster.model_copy(update={"gpu": gpu, "num_gpus": n})})
        _, hw = load_context(sc_g, path.parent)
        try:
            make_plan(sc_g, Parallelism.model_validate({**sc.parallelism.model_dump(), **values}), model, hw,
                      ph.precision, ph.seq_len, ph.global_batch_size)
            verdict = None
        except PlanError as exc:
            verdict = reason_key(str(exc))
        if verdict is None:     # legal: feasible, or rejected for memory only
            assert len(feasible) == 1 or rejected == {"memory": 1}
        else:
            assert rejected == {verdict: 1}
        checked.add(verdict)
    assert len(checked) >= 6


def test_unsupported_features_fall_back_and_say_so(dense):
    path, sc = dense
    sc2 = sc.model_copy(update={"parallelism": sc.parallelism.model_copy(update={"stage_layout": "balanced"})})
    dims = _dims(sc2, path.parent, SearchSpace(tp=[1, 2], pp=[2, 4], micro_batch_size=1, zero_stage=1,
                                                 recompute="full", schedule="1f1b"))
    stats = FastStats()
    fast = evaluate_space_fast(sc2, path.parent, None, dims, stats=stats)
    assert stats.fallback == fast[0] > 0 and stats.vectorised == 0 and "balanced" in stats.fallback_reason
    _assert_same(fast, evaluate_space(sc2, path.parent, None, dims))
    assert fast[1].stats is stats
    res = search(sc2, base_dir=path.parent, space=SearchSpace(tp=[1, 2], pp=2, micro_batch_size=1))
    assert res.to_dict()["engine"] == {"name": "fast", "vectorised": 0, "fallback": res.evaluated,
                                       "fallback_reason": "stage_layout: balanced"}


def test_search_engines_and_processes_agree(dense):
    """`search` with the default (fast) engine, with --engine exact, and fast over two processes."""
    path, sc = dense
    space = SearchSpace(tp=[1, 2], pp=[1, 2], micro_batch_size=[1, 2], zero_stage=[1, 3], num_gpus=[32, 64])
    fast = search(sc, base_dir=path.parent, space=space, top=5)
    exact = search(sc, base_dir=path.parent, space=space, top=5, engine="exact")
    two = search(sc, base_dir=path.parent, space=space, top=5, jobs=2)
    assert fast.evaluated == exact.evaluated == two.evaluated and fast.rejected == exact.rejected == two.rejected
    assert [r.to_dict() for r in two.feasible] == [r.to_dict() for r in fast.feasible]
    _assert_same_lists(fast.top, exact.top)
    _assert_same_lists(fast.pareto, exact.pareto)
    d = fast.to_dict()
    assert d["configs_per_s"] == d["evaluated"] / d["seconds"]
    assert d["engine"] == {"name": "fast", "vectorised": d["evaluated"], "fallback": 0}
    assert exact.to_dict()["engine"] == {"name": "exact"}


def test_dask_fast_same_as_local(dense):
    pytest.importorskip("distributed")
    from costsim.search.dask_exec import run_dask

    path, sc = dense
    dims = _dims(sc, path.parent, SearchSpace(tp=[1, 2], pp=[1, 2], micro_batch_size=1, zero_stage=1,
                                                num_gpus=[32, 64], gpu=["a100-sxm-80gb", "h100-sxm"]))
    local = evaluate_space_fast(sc, path.parent, None, dims)
    dist = run_dask(sc, path.parent, None, dims, engine="fast",
                    cluster_kwargs={"processes": False, "n_workers": 2, "threads_per_worker": 1,
                                    "dashboard_address": None})
    assert dist[0] == local[0] and dist[2] == local[2]
    assert [r.to_dict() for r in dist[1]] == [r.to_dict() for r in local[1]]


def test_cli_engine_option(dense, tmp_path):
    path, _ = dense
    space = tmp_path / "space.yaml"
    space.write_text("tp: [1, 2]\npp: [1, 2]\nmicro_batch_size: 1\nzero_stage: 1\n")
    outs = {}
    for engine in ("fast", "exact"):
        out = runner.invoke(app, ["search", str(path), "--space", str(space), "--format", "csv",
                                  "--engine", engine])
        assert out.exit_code == 0, out.output
        outs[engine] = out.output.splitlines()
    assert len(outs["fast"]) == len(outs["exact"]) > 1
    assert [ln.split(",")[:14] for ln in outs["fast"]] == [ln.split(",")[:14] for ln in outs["exact"]]
    out = runner.invoke(app, ["search", str(path), "--engine", "slow"])
    assert out.exit_code == 2

"""Model FLOPs per token from the op table against published figures and 6·N + attention (formulas.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import build_plan
from costsim.estimate import estimate
from costsim.layers import pipeline_units, unit_ops
from costsim.model import flops_per_token_6n, load_builtin
from costsim.scenario import load_scenario, parse_scenario

GFLOP = 1e9
LAYERS = ("dense", "moe", "mtp")


def per_token(model, plan, units=None) -> tuple[float, float]:
    """(model, hardware) FLOPs per token of the whole model: per-GPU op FLOPs × TP·CP over the micro-batch tokens."""
    units = pipeline_units(model) if units is None else units
    ops = [o for u in units for o in unit_ops(model, plan, u)]
    scale = plan.tp * plan.cp / (plan.micro_batch_size * plan.seq_len)
    return sum(o.model_flops for o in ops) * scale, sum(o.flops for o in ops) * scale


# ---- DeepSeek-V3 ------------------------------------------------------------------------------------------

def test_deepseek_v3_against_isca_table_2():
    """ISCA '25 Table 2: 250 GFLOPs per token at seq 4096. The op table includes the MTP module (depth 1: one MoE
    block, the 2h→h projection and a second pass through the output head), ≈ +10 GFLOPs; without it the op table
    is 250.4 GFLOPs. Both are within 5% of 250."""
    ds = load_builtin("deepseek-v3")
    plan = build_plan(seq_len=4096, ep=8, dp=8, precision="fp8", recompute="selective")
    with_mtp, _ = per_token(ds, plan)
    without_mtp, _ = per_token(ds, plan, [u for u in pipeline_units(ds) if u != "mtp"])
    print(f"\nDeepSeek-V3 seq 4096: op table {with_mtp / GFLOP:.1f} GFLOPs/token with MTP, "
          f"{without_mtp / GFLOP:.1f} without; ISCA '25 Table 2: 250")
    assert with_mtp == pytest.approx(250 * GFLOP, rel=0.05)
    assert without_mtp == pytest.approx(250 * GFLOP, rel=0.05)
    # and the op table agrees with the closed form, MTP included or not
    assert with_mtp == pytest.approx(flops_per_token_6n(ds, 4096, include_mtp=True), rel=1e-3)
    assert without_mtp == pytest.approx(flops_per_token_6n(ds, 4096), rel=1e-3)


def test_deepseek_v3_through_estimate():
    """The flow's PhaseEstimate.model_flops_per_token is the op-table figure (pre-training phase, 2048 H800)."""
    root = Path(__file__).resolve().parent.parent
    est = estimate(load_scenario(root / "scenarios" / "deepseek-v3.yaml"), root / "scenarios")
    pre = est.phases[0]
    ds = load_builtin("deepseek-v3")
    assert pre.model_flops_per_token == pytest.approx(per_token(ds, pre.plan)[0], rel=1e-9)
    assert pre.model_flops_per_token == pytest.approx(250 * GFLOP, rel=0.05)


# ---- dense models against 6·N + attention ---------------------------------------------------------------

DENSE = [("gpt3-175b", 2048), ("llama3.1-8b", 8192), ("llama3.1-70b", 8192), ("llama3.1-405b", 8192)]


@pytest.mark.parametrize("name, seq", DENSE)
@pytest.mark.parametrize("tp", [1, 2, 8])
def test_dense_models_match_6n_plus_attention(name, seq, tp):
    model = load_builtin(name)
    got, _ = per_token(model, build_plan(tp=tp, seq_len=seq, sequence_parallel=tp > 1))
    assert got == pytest.approx(flops_per_token_6n(model, seq), rel=0.02)


def test_small_scenario_through_estimate():
    """Llama 3.1 8B on 8 H100 (tp 2, pp 2, dp 2): the Estimate's FLOPs per token = op table = 6N + attention."""
    sc = parse_scenario({
        "name": "small", "model": "llama3.1-8b", "cluster": {"gpu": "h100-sxm", "num_gpus": 8},
        "parallelism": {"tp": 2, "pp": 2, "sequence_parallel": True, "micro_batch_size": 1},
        "phases": [{"name": "pre", "precision": "bf16", "seq_len": 8192, "global_batch_size": 16, "steps": 10}]})
    phase = estimate(sc).phases[0]
    model = load_builtin("llama3.1-8b")
    assert phase.model_flops_per_token == pytest.approx(per_token(model, phase.plan)[0], rel=1e-9)
    assert phase.model_flops_per_token == pytest.approx(flops_per_token_6n(model, 8192), rel=0.02)
    assert phase.hardware_tflops_per_gpu >= phase.model_tflops_per_gpu


# ---- what must not change model FLOPs, and what recompute adds to hardware FLOPs ----------------------------

@pytest.mark.parametrize("name, seq, attention", [("gpt3-175b", 2048, "flash"), ("gpt3-175b", 2048, "unfused"),
                                                  ("llama3.1-70b", 8192, "flash"), ("deepseek-v3", 4096, "flash")])
def test_recompute_raises_hardware_flops_only(name, seq, attention):
    model = load_builtin(name)
    kw = dict(seq_len=seq, attention=attention)
    none_m, none_h = per_token(model, build_plan(recompute="none", **kw))
    for mode in ("selective", "full"):
        m, h = per_token(model, build_plan(recompute=mode, **kw))
        assert m == pytest.approx(none_m, rel=1e-12)
        assert h >= none_h
    # full recompute repeats every layer's forward: + the F-pass FLOPs of the layers, ≈ 1/3 of layer FLOPs
    plan = build_plan(recompute="none", **kw)
    layer_units = [u for u in pipeline_units(model) if u in LAYERS]
    layer_ops = [o for u in layer_units for o in unit_ops(model, plan, u)]
    scale = 1.0 / seq
    fwd = sum(o.flops for o in layer_ops if o.pass_ == "F") * scale
    layer_total = sum(o.flops for o in layer_ops) * scale
    _, full_h = per_token(model, build_plan(recompute="full", **kw))
    assert full_h - none_h == pytest.approx(fwd, rel=1e-9)
    assert 0.28 < fwd / layer_total <= 1 / 3 + 1e-12     # attention backward is 2.5× forward, GEMMs 2×


def test_selective_recompute_repeats_the_attention_core():
    """Unfused attention under selective recompute: QKᵀ and AV forwards run again (Korthikanti et al. 2022)."""
    model, seq = load_builtin("gpt3-175b"), 2048
    plan = build_plan(recompute="none", attention="unfused", seq_len=seq)
    core = sum(o.flops for o in unit_ops(model, plan, "dense") if o.name in ("attn.qk.F", "attn.av.F"))
    _, none_h = per_token(model, plan)
    _, sel_h = per_token(model, build_plan(recompute="selective", attention="unfused", seq_len=seq))
    assert sel_h - none_h == pytest.approx(core * model.num_layers / seq, rel=1e-9)


@pytest.mark.parametrize("name, seq", [("llama3.1-70b", 8192), ("deepseek-v3", 4096), ("gpt3-175b", 2048)])
def test_fp8_changes_no_flops(name, seq):
    model = load_builtin(name)
    bf16 = per_token(model, build_plan(seq_len=seq, precision="bf16"))
    fp8 = per_token(model, build_plan(seq_len=seq, precision="fp8"))
    assert fp8 == pytest.approx(bf16, rel=1e-12)


@pytest.mark.parametrize("name, seq", [("llama3.1-70b", 8192), ("gpt3-175b", 2048), ("deepseek-v3", 4096)])
@pytest.mark.parametrize("kw", [dict(cp=2), dict(cp=8), dict(micro_batch_size=2), dict(pp=4)],
                         ids=["cp2", "cp8", "mbs2", "pp4"])
def test_model_flops_independent_of_cp_batch_and_pp(name, seq, kw):
    model = load_builtin(name)
    assert per_token(model, build_plan(seq_len=seq, **kw))[0] == pytest.approx(
        per_token(model, build_plan(seq_len=seq))[0], rel=1e-12)


def test_model_flops_independent_of_tp_dense():
    model = load_builtin("llama3.1-70b")
    base = per_token(model, build_plan(seq_len=8192))[0]
    for tp in (2, 4, 8):
        assert per_token(model, build_plan(tp=tp, seq_len=8192))[0] == pytest.approx(base, rel=1e-12)


# ---- regressions of fixed bugs ---------------------------------------------------------------------------------

def test_model_flops_independent_of_tp_mla():
    model = load_builtin("deepseek-v3")
    base = per_token(model, build_plan(seq_len=4096))[0]
    for tp in (2, 8):
        assert per_token(model, build_plan(tp=tp, seq_len=4096))[0] == pytest.approx(base, rel=1e-12), f"tp={tp}"


@pytest.mark.parametrize("name, seq", [("gpt3-175b", 2048), ("llama3.1-70b", 8192)])
def test_unfused_attention_keeps_model_flops(name, seq):
    model = load_builtin(name)
    flash = per_token(model, build_plan(seq_len=seq, attention="flash"))[0]
    assert per_token(model, build_plan(seq_len=seq, attention="unfused"))[0] == pytest.approx(flash, rel=1e-9)


def test_unfused_mla_attention_flops():
    model = load_builtin("deepseek-v3")
    plan = build_plan(seq_len=4096, attention="unfused")
    ops = unit_ops(model, plan, "moe")
    core = sum(o.model_flops for o in ops if o.name in ("attn.qk.F", "attn.av.F"))
    s, heads = plan.seq_len, model.num_heads
    assert core == pytest.approx(2.0 * s * s * heads * (model.qk_head_dim + model.v_dim) * 0.5, rel=1e-9)


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_recompute_fraction_repeats_that_share_of_the_forward(fraction):
    """recompute: full on a fraction of the layers adds that fraction of the layers' forward FLOPs."""
    model, seq = load_builtin("llama3.1-8b"), 8192
    _, none_h = per_token(model, build_plan(recompute="none", seq_len=seq))
    _, full_h = per_token(model, build_plan(recompute="full", seq_len=seq))
    _, part_h = per_token(model, build_plan(recompute="full", recompute_fraction=fraction, seq_len=seq))
    assert part_h - none_h == pytest.approx(fraction * (full_h - none_h), rel=1e-9)

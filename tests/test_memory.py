"""Activation memory against Korthikanti et al. 2022 (arXiv 2205.05198, §4; formulas.md), in-flight micro-batches
per schedule, and what each ZeRO stage shards."""
from __future__ import annotations

import pytest

from conftest import build_plan
from costsim.layers import pipeline_units
from costsim.memory import gpu_params, in_flight, layer_activation_bytes, rank_memory
from costsim.model import from_hf_config, load_builtin

REL = 1e-12

# A GPT layer as Korthikanti et al. count it: GeLU MLP of 4h, MHA, LayerNorm, dropout 0.1, 16-bit activations.
GPT_22B = from_hf_config({"hidden_size": 6144, "num_hidden_layers": 48, "num_attention_heads": 64,
                          "hidden_act": "gelu", "vocab_size": 51200, "max_position_embeddings": 2048,
                          "hidden_dropout": 0.1, "attention_dropout": 0.1}, "gpt-22b")
GPT3 = load_builtin("gpt3-175b")
MODELS = [GPT_22B, GPT3]


def act(model, recompute="none", attention="unfused", **kw) -> float:
    plan = build_plan(recompute=recompute, attention=attention, precision="bf16", **kw)
    return layer_activation_bytes(model, plan, "dense")


def sbh(model, s, mbs):
    return s * mbs * model.hidden_size


def score_term(model, s):
    """5·a·s/h: softmax output, dropout mask and dropout output of the a×s×s attention scores."""
    return 5 * model.num_heads * s / model.hidden_size


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("s, mbs", [(2048, 1), (2048, 4), (4096, 1)])
def test_no_parallelism_no_recompute(model, s, mbs):
    assert act(model, seq_len=s, micro_batch_size=mbs) == pytest.approx(
        sbh(model, s, mbs) * (34 + score_term(model, s)), rel=REL)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("t", [2, 4, 8])
def test_tensor_parallel_only(model, t):
    s, mbs = 2048, 1
    assert act(model, tp=t, seq_len=s) == pytest.approx(
        sbh(model, s, mbs) * (10 + 24 / t + score_term(model, s) / t), rel=REL)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("t", [2, 4, 8])
def test_tensor_and_sequence_parallel(model, t):
    s = 2048
    assert act(model, tp=t, sequence_parallel=True, seq_len=s) == pytest.approx(
        sbh(model, s, 1) * (34 + score_term(model, s)) / t, rel=REL)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("t", [1, 2, 8])
def test_sequence_parallel_and_selective_recompute(model, t):
    s = 2048
    assert act(model, "selective", tp=t, sequence_parallel=t > 1, seq_len=s) == pytest.approx(
        sbh(model, s, 1) * 34 / t, rel=REL)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("t, sp", [(1, False), (4, False), (4, True), (8, True)])
def test_full_recompute_keeps_the_layer_input(model, t, sp):
    s = 2048
    want = 2 * sbh(model, s, 2) / (t if sp else 1)
    assert act(model, "full", tp=t, sequence_parallel=sp, seq_len=s, micro_batch_size=2) == pytest.approx(want, rel=REL)
    assert act(model, "full", "flash", tp=t, sequence_parallel=sp, seq_len=s, micro_batch_size=2) == pytest.approx(
        want, rel=REL)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
@pytest.mark.parametrize("t, sp", [(1, False), (4, False), (4, True)])
def test_flash_attention_drops_the_score_term(model, t, sp):
    s = 2048
    unfused = act(model, tp=t, sequence_parallel=sp, seq_len=s)
    flash = act(model, attention="flash", tp=t, sequence_parallel=sp, seq_len=s)
    assert unfused - flash == pytest.approx(sbh(model, s, 1) * score_term(model, s) / t, rel=1e-9)
    assert flash == pytest.approx(act(model, "selective", tp=t, sequence_parallel=sp, seq_len=s), rel=REL)


def test_context_parallel_splits_the_sequence():
    """CP ranks hold s/cp tokens each (the score term keeps the full key length s)."""
    s, c = 8192, 4
    full = sbh(GPT_22B, s, 1) * 34 / c
    assert act(GPT_22B, attention="flash", cp=c, seq_len=s) == pytest.approx(full, rel=REL)


# ---- micro-batches in flight ---------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [2, 4, 8, 16])
def test_in_flight_1f1b(p):
    plan = build_plan(pp=p, microbatches=64)
    assert [in_flight(plan, r) for r in range(p)] == [p - r for r in range(p)]


@pytest.mark.parametrize("p, v", [(4, 2), (8, 2), (8, 4), (16, 3)])
def test_in_flight_interleaved(p, v):
    plan = build_plan(pp=p, schedule="interleaved", virtual_stages=v, microbatches=64)
    assert in_flight(plan, 0) == pytest.approx(p * (1 + (p - 1) / (p * v)), rel=REL)


@pytest.mark.parametrize("p", [2, 8, 16])
def test_in_flight_dualpipe(p):
    plan = build_plan(pp=p, schedule="dualpipe", microbatches=64)
    assert all(in_flight(plan, r) == p + 1 for r in range(p))


@pytest.mark.parametrize("schedule, v", [("1f1b", 1), ("interleaved", 2), ("dualpipe", 1), ("zero-bubble", 1)])
def test_in_flight_capped_by_micro_batches(schedule, v):
    plan = build_plan(pp=16, schedule=schedule, virtual_stages=v, microbatches=4)
    assert in_flight(plan, 0) == 4


# ---- ZeRO ----------------------------------------------------------------------------------------------------

BYTES = {"weights": 2, "gradients": 4, "optimizer": {"fp32": 4 + 8, "bf16": 4 + 4}}   # formulas.md, Megatron


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
@pytest.mark.parametrize("moment", ["fp32", "bf16"])
def test_zero_stages_shard_over_dp(zero, moment):
    model = load_builtin("deepseek-v3")
    plan = build_plan(tp=2, dp=16, ep=8, pp=1, zero_stage=zero, recompute="full")
    units = pipeline_units(model)
    params = gpu_params(model, plan, units)
    assert params.expert > 0 and params.dense > 0
    mem = rank_memory(model, plan, units, [units], 0, moment, 80 * 2 ** 30)
    # parallel folding: experts are replicated over a stage's tp·cp·dp ranks ÷ (ep·etp) = 2·16/8 = 4
    dense_dp, expert_dp = plan.dp * plan.cp, 4

    def held(per_param: float, sharded: bool) -> float:
        if not sharded:
            return (params.dense + params.expert) * per_param
        return params.dense * per_param / dense_dp + params.expert * per_param / expert_dp

    assert mem.optimizer == pytest.approx(held(BYTES["optimizer"][moment], zero >= 1), rel=REL)
    assert mem.gradients == pytest.approx(held(BYTES["gradients"], zero >= 2), rel=REL)
    assert mem.weights == pytest.approx(held(BYTES["weights"], zero >= 3), rel=REL)


def test_gpu_params_split_dense_by_tp_and_experts_by_ep():
    model = load_builtin("deepseek-v3")
    units = pipeline_units(model)
    one = gpu_params(model, build_plan(), units)
    split = gpu_params(model, build_plan(tp=4, dp=8, ep=8), units)
    assert split.dense == pytest.approx(one.dense / 4, rel=REL)
    assert split.expert == pytest.approx(one.expert / 8, rel=REL)
    routed = model.num_moe_layers + model.num_nextn_predict_layers
    assert one.expert == routed * model.n_routed_experts * 3 * model.hidden_size * model.moe_intermediate_size


# ---- activations per rank: interleaved vs 1F1B vs DualPipe (issue 7) ------------------------------------------

GPT3_LAYER = 2048 * 12288 * 34 / 8   # s·b·h·34/t bytes: TP 8 + SP + selective recompute (Korthikanti §4.2)


@pytest.mark.parametrize("v, factor", [(1, 8.0), (2, 8 * (1 + 7 / 16)), (4, 8 * (1 + 7 / 32))])
def test_interleaved_rank_holds_all_its_chunks(v, factor):
    """GPT-3 175B, PP 8: rank 0 holds 12 layers as v chunks of 12/v, and every micro-batch passes all v. Its peak
    is 12 layers × p·(1 + (p−1)/(p·v)) micro-batches (Korthikanti et al. 2022 §4.2.3; Narayanan et al. 2021):
    1F1B 12·8 layer-activations, v=2 12·11.5, v=4 12·9.75 — more with interleaving, never less."""
    schedule = "1f1b" if v == 1 else "interleaved"
    plan = build_plan(tp=8, pp=8, sequence_parallel=True, recompute="selective", seq_len=2048, schedule=schedule,
                      virtual_stages=v, microbatches=64)
    stages = [["dense"] * (12 // v)] * v
    mem = rank_memory(GPT3, plan, [u for st in stages for u in st], stages, 0, "fp32", 80 * 2 ** 30)
    assert mem.activations == pytest.approx(12 * GPT3_LAYER * factor, rel=REL)
    assert mem.activations >= 12 * GPT3_LAYER * 8


def test_dualpipe_rank_holds_one_stage_per_microbatch():
    """DualPipe: a micro-batch passes one of the rank's two stages: (p + 1) × one stage (DeepSeek-V3 Table 2)."""
    plan = build_plan(tp=8, pp=8, sequence_parallel=True, recompute="selective", seq_len=2048, schedule="dualpipe",
                      microbatches=64)
    stages = [["dense"] * 6, ["dense"] * 6]
    mem = rank_memory(GPT3, plan, [u for st in stages for u in st], stages, 0, "fp32", 80 * 2 ** 30)
    assert mem.activations == pytest.approx(6 * GPT3_LAYER * 9, rel=REL)


# ---- reserved memory: "fits" means fits -----------------------------------------------------------------------

MIB = 2 ** 20


def test_reserve_deepseek_plan():
    """DeepSeek-V3 (PP 16, EP 64, DP 128): CUDA context 512 MiB; NCCL rings for dense DP (128) and expert DP
    (128/64 = 2): 2 × 16 channels × 2 peers × 4 MiB = 256 MiB; point-to-point peers: 2 pipeline neighbours + 63 EP
    ranks, 2 channels × 4 MiB each = 520 MiB; cuBLAS 2 × 32 MiB; fragmentation 5% of the allocated 60 GiB."""
    from costsim.memory import reserved_bytes
    plan = build_plan(pp=16, ep=64, dp=128, schedule="dualpipe", microbatches=120)
    allocated = 60 * 2 ** 30
    want = 512 * MIB + 256 * MIB + 520 * MIB + 64 * MIB + 3 * 2 ** 30
    assert reserved_bytes(plan, allocated) == pytest.approx(want, rel=REL)


def test_total_includes_the_reserve():
    plan = build_plan(tp=8, pp=1, sequence_parallel=True, recompute="selective", seq_len=2048, dp=1)
    units = ["dense"] * 4
    mem = rank_memory(GPT3, plan, units, [units], 0, "fp32", 80 * 2 ** 30)
    allocated = mem.weights + mem.gradients + mem.optimizer + mem.activations
    # TP 8 ring (16 × 2 × 4 MiB = 128 MiB), no other group; context 512 MiB; cuBLAS 64 MiB; 5% fragmentation
    assert mem.reserved == pytest.approx(704 * MIB + 0.05 * allocated, rel=REL)
    assert mem.total == pytest.approx(allocated + mem.reserved, rel=REL)
    assert set(mem.gib()) == {"weights", "gradients", "optimizer", "activations", "reserved", "total", "capacity"}


# ---- MoE unpermute -----------------------------------------------------------------------------------------------

def test_unpermute_reads_k_rows_writes_one():
    """Per token: read k BF16 expert outputs (2k B per element of h), write one BF16 row (2 B): per routed copy
    (2k + 2)/k = 2 + 2/k B; DeepSeek-V3 k = 8: 2.25 B."""
    from costsim.layers import unit_ops
    model = load_builtin("deepseek-v3")
    plan = build_plan(seq_len=4096, moe_load_imbalance=1.0)
    ops = {o.name: o for o in unit_ops(model, plan, "moe")}
    copies = 4096 * 8 * 7168
    assert ops["moe.unpermute.F"].bytes == pytest.approx(copies * 2.25, rel=REL)
    assert ops["moe.unpermute.B"].bytes == pytest.approx(copies * 2.25, rel=REL)


def test_deepseek_v3_fits_with_the_reserve_and_the_error_names_it():
    """DeepSeek-V3 really ran on 80 GB H800s: its plan must fit after the reserve; a plan that does not fit says
    how much of its need is the reserve."""
    from pathlib import Path

    from costsim.errors import PlanError
    from costsim.estimate import estimate
    from costsim.scenario import load_scenario
    scen = Path(__file__).resolve().parent.parent / "scenarios" / "deepseek-v3.yaml"
    mem = estimate(load_scenario(scen)).phases[0].memory
    assert mem.reserved > 2 ** 30 and mem.total <= mem.capacity
    with pytest.raises(PlanError, match=r"reserved [\d.]+ for CUDA context, NCCL, cuBLAS and fragmentation"):
        estimate(load_scenario(scen, ["parallelism.recompute=none"]))


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_recompute_fraction_mixes_input_only_and_full_layers(fraction):
    """Full recompute on a fraction f of the layers: per layer on average f·(input only) + (1 − f)·(everything)."""
    model = load_builtin("llama3.1-8b")
    kw = dict(seq_len=8192, attention="flash")
    full = layer_activation_bytes(model, build_plan(recompute="full", **kw), "dense")
    none = layer_activation_bytes(model, build_plan(recompute="none", **kw), "dense")
    part = layer_activation_bytes(model, build_plan(recompute="full", recompute_fraction=fraction, **kw), "dense")
    assert full == 2.0 * 8192 * 4096                       # the layer input, BF16
    assert part == pytest.approx(fraction * full + (1 - fraction) * none, rel=1e-12)

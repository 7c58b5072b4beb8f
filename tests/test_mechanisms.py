"""Issue-7 mechanisms, each against a hand-computed number: MoE load imbalance and parallel folding, ZeRO-3 /
FSDP / HSDP collectives, gradient buckets, the optimizer step's passes, the network override and the
FlashAttention-2 curve."""
from __future__ import annotations

import math

import pytest

from conftest import build_plan
from costsim.efficiency import Efficiency
from costsim.errors import PlanError
from costsim.estimate import estimate
from costsim.hardware import load_profile, with_network
from costsim.kernels import P_ATT_B, P_ATT_F, hw_row
from costsim.layers import unit_ops
from costsim.memory import gpu_params
from costsim.model import load_builtin
from costsim.moe_balance import balanced_floor, load_imbalance
from costsim.ops import ALL_GATHER, ALL_REDUCE, REDUCE_SCATTER, _Builder
from costsim.plan import HIERARCHICAL, NETWORK, NVLINK
from costsim.run_costs import BUCKET_PARAMS, _rank_ops, dp_and_optimizer
from costsim.scenario import parse_scenario

REL = 1e-12


# ---- MoE: load imbalance ---------------------------------------------------------------------------------

def test_balanced_floor_is_the_balls_into_bins_maximum():
    """32,768 routed copies per rank on average over 64 ranks: max/mean = 1 + √(2·ln 64 / 32768) = 1.0159."""
    assert balanced_floor(32768, 64) == pytest.approx(1 + math.sqrt(2 * math.log(64) / 32768), rel=REL)
    assert balanced_floor(32768, 64) == pytest.approx(1.0159, abs=1e-4)
    assert balanced_floor(100, 1) == 1.0                                  # one rank: nothing to balance


def test_given_imbalance_and_capacity_factor():
    assert load_imbalance(1000, 8, 1.4, None) == 1.4                      # measured ratio wins
    assert load_imbalance(1000, 8, 1.4, 1.25) == 1.25                     # dropping caps the load
    assert load_imbalance(1000, 8, None, 2.0) == pytest.approx(balanced_floor(1000, 8), rel=REL)


def test_imbalance_slows_expert_gemms_but_not_model_flops():
    ds = load_builtin("deepseek-v3")
    kw = dict(seq_len=4096, ep=8, dp=8, precision="bf16")
    base = {o.name: o for o in unit_ops(ds, build_plan(moe_load_imbalance=1.0, **kw), "moe")}
    skew = {o.name: o for o in unit_ops(ds, build_plan(moe_load_imbalance=1.5, **kw), "moe")}
    for name in ("moe.expert_up.F", "moe.expert_down.B", "moe.expert_up.W"):
        assert skew[name].flops == pytest.approx(1.5 * base[name].flops, rel=REL)
        assert skew[name].model_flops == pytest.approx(base[name].model_flops, rel=REL)
    assert skew["moe.dispatch.F"].bytes2 == pytest.approx(1.5 * base["moe.dispatch.F"].bytes2, rel=REL)
    assert skew["mla.kv_a.F"].flops == base["mla.kv_a.F"].flops              # attention is not routed


# ---- MoE: parallel folding ---------------------------------------------------------------------------------

def _moe_scenario(**par) -> dict:
    return {"name": "fold", "model": "deepseek-v3", "cluster": {"gpu": "h800-sxm", "num_gpus": 512},
            "parallelism": {"pp": 8, "schedule": "1f1b", "recompute": "full", **par},
            "phases": [{"name": "p", "precision": "bf16", "seq_len": 4096, "global_batch_size": 512, "steps": 1}],
            "efficiency": {"compute_derate": 0.8}}


def test_folding_lets_ep_span_the_tensor_parallel_ranks():
    """TP 2, PP 8, EP 64 on 512 GPUs: dp = 32, so EP 64 > dp·cp (refused when EP was carved out of DP); folded,
    the experts of a stage lay out over its tp·cp·dp = 64 ranks."""
    plan = estimate(parse_scenario(_moe_scenario(tp=2, ep=64, zero_stage=1))).phases[0].plan
    assert (plan.tp, plan.dp, plan.ep, plan.etp) == (2, 32, 64, 1)
    with pytest.raises(PlanError, match=r"ep·etp = 64·2 = 128 must divide a stage's tp·cp·dp = 2·1·32 = 64"):
        estimate(parse_scenario(_moe_scenario(tp=2, ep=64, etp=2)))


def test_expert_tensor_parallel_splits_the_expert_width():
    """etp 2: each GPU holds half of each of its experts' width and computes twice the rows (the ETP group's
    tokens), so expert FLOPs per GPU are unchanged and expert parameters per GPU halve."""
    ds = load_builtin("deepseek-v3")
    kw = dict(seq_len=4096, tp=2, dp=8, ep=8, moe_load_imbalance=1.0)
    one = {o.name: o for o in unit_ops(ds, build_plan(etp=1, **kw), "moe")}
    two = {o.name: o for o in unit_ops(ds, build_plan(etp=2, **kw), "moe")}
    up1, up2 = one["moe.expert_up.F"], two["moe.expert_up.F"]
    assert (up2.m, up2.n) == (2 * up1.m, up1.n / 2) and up2.flops == pytest.approx(up1.flops, rel=REL)
    assert "moe.etp_gather" in two and "moe.etp_gather" not in one      # the ETP group gathers its tokens
    units = ["moe"]
    assert gpu_params(ds, build_plan(etp=2, **kw), units).expert == pytest.approx(
        gpu_params(ds, build_plan(etp=1, **kw), units).expert / 2, rel=REL)


# ---- ZeRO-3 / FSDP / HSDP ------------------------------------------------------------------------------------

def _ops(plan, dense=1e9):
    b = _Builder(load_builtin("llama3.1-8b"), plan, "dp")
    return _rank_ops(b, dense, 0.0)


def test_zero3_gathers_twice_and_reduce_scatters_every_micro_batch():
    """FSDP over 8 ranks in a node, 1e9 parameters: gather BF16 before forward and backward (7/8 × 2 GB each on
    NVLink), reduce-scatter FP32 gradients (7/8 × 4 GB) — per micro-batch; nothing left for the step."""
    grad, gather, z3 = _ops(build_plan(dp=8, zero_stage=3))
    assert not grad and not gather
    got = {(o.name, o.pass_): o for o in z3}
    assert got[("zero3.gather.F", "F")].bytes2 == pytest.approx(7 / 8 * 2e9, rel=REL)
    assert got[("zero3.gather.B", "B")].bytes2 == pytest.approx(7 / 8 * 2e9, rel=REL)
    assert got[("zero3.reduce_scatter.B", "B")].bytes2 == pytest.approx(7 / 8 * 4e9, rel=REL)
    assert all(o.tier == NVLINK and o.bytes == 0 for o in z3)


def test_zero3_gather_once_moves_the_traffic_to_the_step():
    grad, gather, z3 = _ops(build_plan(dp=8, zero_stage=3, zero3_gather_once=True))
    assert not z3
    assert [o.coll for o in grad] == [REDUCE_SCATTER] and [o.coll for o in gather] == [ALL_GATHER]


def test_hsdp_shards_in_the_node_and_all_reduces_shards_across_nodes():
    """dp 32, shard 8: gathers over the 8 GPUs of a node; once per step the 1e9/8 gradient shard (FP32) is
    all-reduced over the 4 replicas at stride 8 — one GPU per node, on the network: 2·3/4 × 0.5 GB."""
    grad, gather, z3 = _ops(build_plan(dp=32, zero_stage=3, zero_shard_size=8))
    assert all(o.tier == NVLINK for o in z3)
    (ar,) = grad
    assert ar.coll == ALL_REDUCE and ar.tier == NETWORK
    assert ar.bytes == pytest.approx(2 * 3 / 4 * 1e9 / 8 * 4, rel=REL)


def test_zero1_reduce_scatter_and_gather_per_step():
    grad, gather, z3 = _ops(build_plan(dp=32, zero_stage=1))
    assert not z3 and grad[0].coll == REDUCE_SCATTER and gather[0].coll == ALL_GATHER
    assert grad[0].tier == HIERARCHICAL                                 # 32 ranks over 4 nodes


def test_gradient_buckets_and_optimizer_passes():
    """Llama 3.1 8B, dp 8, ZeRO-1, FP32 moments: buckets of max(40M, 1M·8) parameters; the optimizer step reads
    and writes, per local parameter, norm 4 + clip 8 + Adam 28 + master copy 6 = 46 B, plus zeroing the full
    FP32 gradient buffer (4 B per parameter on the GPU)."""
    sc = parse_scenario({"name": "b", "model": "llama3.1-8b", "cluster": {"gpu": "h100-sxm", "num_gpus": 8},
                         "parallelism": {"zero_stage": 1, "recompute": "full"},
                         "phases": [{"name": "p", "seq_len": 4096, "global_batch_size": 8, "steps": 1}]})
    est = estimate(sc)
    ph = est.phases[0]
    model, plan, hw = est.model, ph.plan, est.hardware
    (step,) = ph.costs.steps
    params = gpu_params(model, plan, [u for ch in ph.layout for u in ch])
    total = params.dense + params.expert
    assert step.grad_pieces == math.ceil(total / BUCKET_PARAMS)
    eff = Efficiency(1.0, 0.0, 0.0)
    (bare,) = dp_and_optimizer(model, hw, plan, eff, ph.layout, ph.costs.per_rank, sc)
    expect = (total / 8 * 46 + total * 4) / hw.hbm_bw_elementwise
    assert bare.update == pytest.approx(expect, rel=1e-9)


# ---- hardware: network override, FlashAttention-2 ------------------------------------------------------------

def test_network_override_scales_the_scale_out_bandwidths():
    """1600 Gb/s RoCE per 8-GPU node = 200 Gb/s = 25 GB/s per GPU: every inter-node busbw × 25/50."""
    h100 = load_profile("h100-sxm")
    slow = with_network(h100, 200)
    assert slow.net_bw_per_gpu == pytest.approx(25e9, rel=REL)
    for k, v in h100.net_busbw.items():
        assert slow.net_busbw[k] == pytest.approx(v * 0.5, rel=REL)
    assert slow.nvlink_busbw == h100.nvlink_busbw


def test_flash2_uses_the_fa2_curve_for_both_passes():
    h100 = load_profile("h100-sxm")
    fa3, fa2 = hw_row(h100), hw_row(h100, attention="flash2")
    n = len(h100.attn_seq_len)
    assert list(fa2[P_ATT_F:P_ATT_F + n]) == list(h100.attn_fa2_flops) == list(fa2[P_ATT_B:P_ATT_B + n])
    assert list(fa3[P_ATT_F:P_ATT_F + n]) == list(h100.attn_fwd_flops)
    a100 = load_profile("a100-sxm-80gb")                      # no separate FA2 curve: its flash curve is FA2
    assert list(hw_row(a100, attention="flash2")) == list(hw_row(a100))


@pytest.mark.parametrize("par, message", [
    ({"zero_stage": 3, "zero_shard_size": 3}, "zero_shard_size=3 does not divide dp·cp = 8·1 = 8"),
    ({"zero_stage": 0, "zero_shard_size": 4}, "zero_shard_size=4 needs zero_stage ≥ 1"),
    ({"recompute": "selective", "recompute_fraction": 0.5}, "recompute_fraction=0.5 applies to recompute: full"),
    ({"zero_stage": 1, "zero3_gather_once": True}, "zero3_gather_once needs zero_stage 3"),
])
def test_new_plan_keys_are_checked(par, message):
    sc = parse_scenario({"name": "c", "model": "llama3.1-8b", "cluster": {"gpu": "h100-sxm", "num_gpus": 8},
                         "parallelism": {"recompute": "full", **par},
                         "phases": [{"name": "p", "seq_len": 4096, "global_batch_size": 8, "steps": 1}]})
    with pytest.raises(PlanError, match=message.replace("·", ".").replace("(", r"\(")):
        estimate(sc)


def test_bf16_gradients_halve_the_reduction_and_the_buffer():
    """grad_dtype bf16 (Megatron-Core's default): 2 B per gradient on the wire and in the buffer."""
    _, _, z3_fp32 = _ops(build_plan(dp=8, zero_stage=3))
    _, _, z3_bf16 = _ops(build_plan(dp=8, zero_stage=3, grad_dtype="bf16"))
    rs = {o.name: o for o in z3_fp32}["zero3.reduce_scatter.B"]
    rs16 = {o.name: o for o in z3_bf16}["zero3.reduce_scatter.B"]
    assert rs16.bytes2 == pytest.approx(rs.bytes2 / 2, rel=REL) == pytest.approx(7 / 8 * 2e9, rel=REL)
    from costsim.memory import grad_bytes
    assert grad_bytes(build_plan(grad_dtype="bf16")) == 2 and grad_bytes(build_plan()) == 4


def test_sliding_window_attends_to_fewer_keys():
    """Mistral-7B-v0.1 (window 4096) at 8192 tokens: a query attends to 4096 − 4096²/(2·8192) = 3072 keys on
    average instead of 4096, so attention FLOPs are 3/4 of full causal; at 4096 tokens nothing changes; Gemma 2
    windows half its layers; Qwen's sliding_window is off unless use_sliding_window."""
    from pathlib import Path

    from costsim.model import load_hf_config_file
    cfgs = Path(__file__).resolve().parent / "hf_configs"
    mistral = load_hf_config_file(cfgs / "mistralai__Mistral-7B-v0.1.json")
    assert (mistral.sliding_window, mistral.sliding_window_share) == (4096, 1.0)
    assert mistral.attended_keys(8192) == pytest.approx(3072, rel=REL)
    assert mistral.attended_keys(4096) == 2048
    plan = build_plan(seq_len=8192)
    flash = {o.name: o for o in unit_ops(mistral, plan, "dense")}["attn.flash.F"]
    full = mistral.__class__(**{**mistral.__dict__, "sliding_window": 0})
    flash_full = {o.name: o for o in unit_ops(full, plan, "dense")}["attn.flash.F"]
    assert flash.flops == pytest.approx(0.75 * flash_full.flops, rel=REL)
    assert load_hf_config_file(cfgs / "Qwen__Qwen2.5-7B.json").sliding_window == 0
    half = mistral.__class__(**{**mistral.__dict__, "sliding_window_share": 0.5})
    assert half.attended_keys(8192) == pytest.approx(0.5 * 3072 + 0.5 * 4096, rel=REL)

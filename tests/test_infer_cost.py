"""Inference cost model: prefill and decode on the op-level kernel, checked against hand-computed numbers."""
from __future__ import annotations

import math

import pytest

from costsim.efficiency import Efficiency, fitted
from costsim.errors import PlanError
from costsim.hardware import load_profile
from costsim.infer import (ServingPlan, decode_for_speed, decode_step, max_decode_batch, prefill,
                           prefill_throughput)
from costsim.infer.cost import (DEFAULT_PREFILL_TOKENS, custom_all_reduce_seconds, default_prefill_seqs,
                                ll_seconds)
from costsim.infer.forward import (DECODE, PREFILL, experts_touched, forward_units, keys_per_new_token)
from costsim.infer.memory import weight_bytes_per_gpu
from costsim.model import load_builtin

V3 = load_builtin("deepseek-v3")
L8 = load_builtin("llama3.1-8b")
L70 = load_builtin("llama3.1-70b")
H800 = load_profile("h800-sxm")
H100 = load_profile("h100-sxm")
EFF = fitted()
NEUTRAL = Efficiency()
DECODE_UNIT = ServingPlan(dp=144, ep=144, precision="fp8", redundant_experts=32, mtp_tokens=1.85,
                          overlap_comm=True)


def ops_named(units, name):
    return [(count, op) for _, count, ops in units for op in ops if op.name == name]


def test_tiny_batch_decode_reads_the_weights():
    """Llama 3.1 8B, one sequence, 1 cached token: the step reads the weights (less the embedding table, of which
    one row is read) once; its time is that read at streaming HBM bandwidth (BF16 GEMMs at M = 1 split K to
    fill the SMs), within 2%."""
    c = decode_step(L8, H100, ServingPlan(), EFF, 1, 1)
    weights = weight_bytes_per_gpu(L8, ServingPlan())
    embed = 128256 * 4096 * 2
    assert c.hbm_bytes == pytest.approx(weights - embed, rel=2e-3)
    roof = (weights - embed) / H100.hbm_bw_stream
    assert roof <= c.seconds <= 1.02 * roof
    assert c.comm_s == 0 and c.tokens == 1


def test_tp8_decode_weights_and_all_reduces_by_hand():
    """Llama 3.1 70B on 8 H100 (TP 8), one sequence: compute ≈ the GPU's weight share (less its embedding shard)
    at streaming bandwidth; communication = 161 all-reduces (embedding + 2 per layer) of one BF16 hidden vector.
    NCCL's ring (custom_all_reduce false): 2(n−1)·α + 2(n−1)/n · 16 KiB / busbw each (α–β, nccl-tests
    conventions, formulas.md). Engines' one-shot all-reduce (the default): 2α + (n−1) · 16 KiB / all-to-all busbw."""
    size = 2 * 8192
    ring = ServingPlan(tp=8, custom_all_reduce=False)
    c = decode_step(L70, H100, ring, EFF, 1 / 8, 1)          # one sequence per TP group
    weights = weight_bytes_per_gpu(L70, ring) - 128256 * 8192 * 2 / 8
    assert weights / H100.hbm_bw_stream <= c.compute_s <= 1.03 * weights / H100.hbm_bw_stream
    one = 14 * H100.nvlink_latency_s + 2 * 7 / 8 * size / H100.nvlink_busbw["all_reduce"]
    assert c.comm_s == pytest.approx(161 * one, rel=1e-9)
    assert c.seconds == pytest.approx(c.compute_s + c.comm_s)
    fast = decode_step(L70, H100, ServingPlan(tp=8), EFF, 1 / 8, 1)
    shot = 2 * H100.nvlink_latency_s + 7 * size / H100.nvlink_busbw["all_to_all"]
    assert fast.comm_s == pytest.approx(161 * shot, rel=1e-9)
    assert fast.compute_s == c.compute_s


def test_custom_all_reduce_picks_the_faster_shot_and_never_beats_the_ring_when_it_is_faster():
    """Small buffers: one-shot (2 barriers); mid-size: two-shot (3 barriers, 2(n−1)/n of the bytes); large ones
    keep NCCL's ring where that is faster (its busbw is above the P2P read rate on H100)."""
    lat, a2a = H100.nvlink_latency_s, H100.nvlink_busbw["all_to_all"]
    small, mid = 16 * 1024, 4 * 2**20
    assert custom_all_reduce_seconds(H100, small, 8) == pytest.approx(2 * lat + 7 * small / a2a)
    assert custom_all_reduce_seconds(H100, mid, 8) == pytest.approx(3 * lat + 2 * 7 / 8 * mid / a2a)
    assert custom_all_reduce_seconds(H100, small, 1) == 0.0
    big = 64 * 2**20                      # 1 token × 8192 wide ... × 4096 tokens: a prefill batch
    ring = 14 * lat + 2 * 7 / 8 * big / H100.nvlink_busbw["all_reduce"]
    tokens = big / (2 * 8192)
    c_ring = prefill(L70, H100, ServingPlan(tp=8, custom_all_reduce=False), EFF, tokens, 0, 1 / 8)
    c_fast = prefill(L70, H100, ServingPlan(tp=8), EFF, tokens, 0, 1 / 8)
    assert c_fast.comm_s == pytest.approx(c_ring.comm_s * min(1.0, custom_all_reduce_seconds(H100, big, 8) / ring),
                                          rel=0.02)
    assert c_fast.comm_s <= c_ring.comm_s


def test_decode_kv_read_and_mla_flops_by_hand():
    """Absorbed MLA (FlashMLA): KV read B·L·576·2 B per layer; 2·128·L·(576 + 512) FLOPs per query token."""
    B, L = 64, 4989
    plan = DECODE_UNIT
    units = forward_units(V3, plan, H800, B, 2, L, DECODE)      # 1 + 1 draft tokens per sequence
    (count, attn), = [x for x in ops_named(units, "attn.flashmla.F") if x[1].unit == "moe"]
    assert count == 58
    keys = L + 1.0                                                 # mean over the two new tokens: L + 1
    assert keys_per_new_token(V3, 2, L) == pytest.approx(keys)
    assert attn.flops == pytest.approx(2 * 128 * keys * 1088 * B * 2)
    kv = B * (L + 2) * 576 * 2
    q_and_out = 2 * (B * 2) * 128 * (576 + 512)    # BF16 queries in, latent outputs out, per head
    assert attn.bytes == pytest.approx(kv + q_and_out)


def test_gqa_decode_kv_read_by_hand():
    units = forward_units(L8, ServingPlan(kv_dtype="fp8"), H100, 32, 1, 2048, DECODE)
    (count, attn), = ops_named(units, "attn.flash.F")
    assert count == 32
    kv = 32 * 2049 * 2 * 8 * 128 * 1                # B · L · 2·kv_heads·head_dim · 1 B
    assert attn.bytes == pytest.approx(kv + 2 * 32 * 32 * 2 * 128)
    assert attn.flops == pytest.approx(2 * 32 * 2048.5 * 32 * 2 * 128)


def test_prefill_flops_by_hand_llama8b():
    """One 2048-token prompt, no cache: 2·(non-embedding GEMM params)·s + causal attention
    2·s·(s/2)·heads·(2·128) per layer + logits for the last token only."""
    s = 2048
    c = prefill(L8, H100, ServingPlan(), NEUTRAL, s)
    h, V = 4096, 128256
    gemm_params = L8.total_params() - 2 * V * h - (2 * 32 + 1) * h      # no embedding/head/norms
    expected = 2 * gemm_params * s + 32 * 2 * s * (s / 2) * 32 * 256 + 2 * h * V
    assert c.flops == pytest.approx(expected, rel=1e-9)
    assert c.tokens == s


def test_prefill_flops_by_hand_deepseek_v3():
    """V3, one 4096-token prompt, EP 1: every expert is touched, so 2·(active GEMM parameters)·s — active
    parameters less embedding, head, norms (MLA's inner q/kv norms included) and the router's score bias — plus
    causal MLA attention 2·s·(s/2)·128·(192 + 128) per layer and the logits of the last token."""
    s, h, V, E = 4096, 7168, 129280, 256
    c = prefill(V3, H800, ServingPlan(precision="fp8"), NEUTRAL, s)
    gemm_active = V3.active_params() - 2 * V * h - (61 * 2 + 1) * h - 58 * E - 61 * (1536 + 512)
    expected = 2 * gemm_active * s + 61 * 2 * s * (s / 2) * 128 * 320 + 2 * h * V
    assert c.flops == pytest.approx(expected, rel=1e-6)


def test_cached_tokens_skip_their_compute():
    """Half the prompt cached: linear layers for half the tokens, attention from the new half over all keys."""
    s = 4096
    full = prefill(L8, H100, ServingPlan(), NEUTRAL, s)
    half = prefill(L8, H100, ServingPlan(), NEUTRAL, s, cached_tokens=s / 2)
    attn_full = 32 * 2 * s * (s / 2) * 32 * 256
    attn_half = 32 * 2 * (s / 2) * (s * s / 2 - (s / 2) ** 2 / 2) / (s / 2) * 32 * 256
    linear_full = full.flops - attn_full
    assert half.flops - attn_half == pytest.approx((linear_full - 2 * 4096 * 128256) / 2 + 2 * 4096 * 128256,
                                                   rel=1e-9)
    assert half.seconds < full.seconds and half.tokens == full.tokens


def test_prefill_throughput_counts_cached_tokens():
    plan = ServingPlan(dp=32, ep=32, precision="fp8", redundant_experts=32, overlap_comm=True)
    t0 = prefill_throughput(V3, H800, plan, EFF, 4096, 0.0)
    t5 = prefill_throughput(V3, H800, plan, EFF, 4096, 0.5)
    assert t5 > 1.5 * t0                            # half the prompt costs almost nothing to "process"
    assert default_prefill_seqs(plan, 4096, 0.5) == math.ceil(DEFAULT_PREFILL_TOKENS / 2048)


def test_deepep_low_latency_against_hardware_md():
    """hardware.md, DeepEP low-latency kernels: 128 tokens, hidden 7168, top-8: dispatch (FP8) 163–194 µs,
    combine (BF16) 318–369 µs."""
    copies = 128 * 8 * 7168
    assert 163e-6 <= ll_seconds(H800, copies * (1 + 4 / 128)) <= 194e-6
    assert 318e-6 <= ll_seconds(H800, copies * 2) <= 369e-6


def test_decode_dispatch_uses_low_latency_ops_across_nodes_only():
    cross = forward_units(V3, DECODE_UNIT, H800, 8, 2, 1000, DECODE)
    assert ops_named(cross, "moe.dispatch.ll.F") and not ops_named(cross, "moe.dispatch.F")
    one_node = ServingPlan(dp=8, ep=8, precision="fp8")
    inside = forward_units(V3, one_node, H800, 8, 1, 1000, DECODE)
    assert ops_named(inside, "moe.dispatch.F") and not ops_named(inside, "moe.dispatch.ll.F")


def test_split_k_for_small_bf16_gemms_only():
    """M = 1, N = 1280, K = 8192 (Llama 70B qkv at TP 8): 10 output tiles on 132 SMs; split K fills them. FP8
    GEMMs (DeepGEMM) are not split."""
    units = forward_units(L70, ServingPlan(tp=8), H100, 1, 1, 100, DECODE)
    (_, qkv), = ops_named(units, "attn.qkv.F")
    assert qkv.groups > 1 and qkv.k * qkv.groups == 8192 and qkv.flops == 2 * 1 * 1280 * 8192
    units8 = forward_units(L70, ServingPlan(tp=8, precision="fp8"), H100, 1, 1, 100, DECODE)
    (_, qkv8), = ops_named(units8, "attn.qkv.F")
    assert qkv8.groups == 1 and qkv8.k == 8192
    big = forward_units(L8, ServingPlan(), H100, 4, 1024, 0, PREFILL)
    (_, up), = ops_named(big, "mlp.up.F")
    assert up.groups == 1                            # 4096 rows fill the GPU unsplit


def test_experts_touched_by_hand():
    assert experts_touched(1, 4) == pytest.approx(0.25)
    assert experts_touched(2, 4) == pytest.approx(1 - 0.75 ** 2)
    assert experts_touched(0, 4) == 0.0
    assert experts_touched(1e6, 288) == pytest.approx(1.0)


def test_small_decode_batch_reads_only_touched_experts():
    """EP 1: one token touches 8 of 256 routed experts (+1 shared); only their weights are read."""
    units = forward_units(V3, ServingPlan(precision="fp8"), H800, 1, 1, 100, DECODE)
    (_, up), = [x for x in ops_named(units, "moe.expert_up.F") if x[1].unit == "moe"]
    assert up.groups == pytest.approx(256 * experts_touched(8, 256)) and up.groups == pytest.approx(7.89, abs=0.01)
    assert up.m * up.groups == pytest.approx(8.0)   # 8 routed copies in all


def test_decode_step_grows_with_batch_and_context():
    prev = 0.0
    for b in (1, 8, 32, 64):
        s = decode_step(V3, H800, DECODE_UNIT, EFF, b, 4989).seconds
        assert s > prev
        prev = s
    assert (decode_step(V3, H800, DECODE_UNIT, EFF, 32, 8000).seconds
            > decode_step(V3, H800, DECODE_UNIT, EFF, 32, 2000).seconds)


def test_decode_tokens_count_mtp_and_instance():
    c = decode_step(V3, H800, DECODE_UNIT, EFF, 10, 4989)
    assert c.tokens == pytest.approx(10 * 144 * 1.85)
    assert c.tokens_per_s_per_gpu == pytest.approx(10 * 1.85 / c.seconds)


def test_overlap_hides_all_to_all():
    plain = ServingPlan(dp=144, ep=144, precision="fp8", redundant_experts=32)
    over = ServingPlan(dp=144, ep=144, precision="fp8", redundant_experts=32, overlap_comm=True)
    a = decode_step(V3, H800, plain, EFF, 64, 4989)
    b = decode_step(V3, H800, over, EFF, 64, 4989)
    assert a.seconds == pytest.approx(a.compute_s + a.comm_s)
    assert b.seconds < a.seconds and b.exposed_comm_s < a.exposed_comm_s
    assert b.seconds >= max(b.compute_s, b.comm_s) - 1e-12


def _slow_decode_for_speed(model, hw, plan, eff, ctx, target):
    """Slow twin: every whole number of sequences per TP group from 1 to the memory limit; of those that meet
    the speed (all of them with no target), the one with the most tokens/s per GPU."""
    n_max = int(round(max_decode_batch(model, hw, plan, ctx) * plan.tp))
    rates = {}
    for n in range(1, n_max + 1):
        c = decode_step(model, hw, plan, eff, n / plan.tp, ctx)
        if target is None or c.seconds <= plan.mtp_tokens / target:
            rates[n] = c.tokens_per_s_per_gpu
    if not rates:
        return None
    top = max(rates.values())
    return max(n for n, r in rates.items() if r >= top / (1 + 1e-12))


@pytest.mark.parametrize("model,hw,plan,ctx,target", [
    (L8, H100, ServingPlan(), 24000, 80.0),
    (L8, H100, ServingPlan(kv_dtype="fp8"), 30000, 60.0),
    (L70, H100, ServingPlan(tp=8), 30000, 40.0),
    (L8, H100, ServingPlan(), 8000, None),
    (L8, H100, ServingPlan(), 1000, None),       # the best batch (a wave edge) far below the memory limit
    (L8, H100, ServingPlan(kv_dtype="fp8"), 300, 26.1),
    (V3, H800, ServingPlan(dp=16, ep=16, precision="fp8", redundant_experts=32, overlap_comm=True), 4989, 20.0),
])
def test_decode_for_speed_matches_slow_twin(model, hw, plan, ctx, target):
    pt = decode_for_speed(model, hw, plan, EFF, ctx, target)
    n = _slow_decode_for_speed(model, hw, plan, EFF, ctx, target)
    assert n is not None
    assert pt.batch_per_gpu == pytest.approx(n / plan.tp)
    if target is not None:
        assert pt.tokens_per_s_per_request >= target - 1e-9
    assert pt.step_s == pytest.approx(decode_step(model, hw, plan, EFF, n / plan.tp, ctx).seconds)


def test_decode_batch_skips_a_tile_edge():
    """DeepSeek-V3 decode on EP144: 116 sequences per GPU cross a GEMM tile edge and give fewer tokens/s than
    115, so with a target that 116–128 also meet, the batch stays at or below 115 (scan_batches)."""
    plan = ServingPlan(dp=144, ep=144, precision="fp8", redundant_experts=32, overlap_comm=True, mtp_tokens=1.875)
    rate = {n: decode_step(V3, H800, plan, EFF, n, 4989).tokens_per_s_per_gpu for n in (115, 116, 128)}
    assert rate[116] < rate[115] and rate[128] < rate[115]
    speed_128 = plan.mtp_tokens / decode_step(V3, H800, plan, EFF, 128, 4989).seconds
    pt = decode_for_speed(V3, H800, plan, EFF, 4989, speed_128 * 0.999)
    assert pt.batch_per_gpu <= 115 and pt.tokens_per_s_per_gpu >= rate[115]


def test_decode_for_speed_limits():
    mem = decode_for_speed(L8, H100, ServingPlan(), EFF, 2048, None)
    assert mem.limited_by == "memory" and mem.batch_per_gpu <= max_decode_batch(L8, H100, ServingPlan(), 2048)
    assert mem.max_batch_per_gpu == max_decode_batch(L8, H100, ServingPlan(), 2048)
    slow = decode_for_speed(L8, H100, ServingPlan(), EFF, 2048, 10_000.0)
    assert slow.limited_by == "too-slow" and slow.batch_per_gpu == 1
    easy = decode_for_speed(L8, H100, ServingPlan(), EFF, 2048, 1.0)
    assert easy.limited_by == "memory"
    mid = decode_for_speed(L8, H100, ServingPlan(), EFF, 2048, 100.0)
    assert mid.limited_by == "speed" and 1 < mid.batch_per_gpu < mem.batch_per_gpu
    assert mid.tokens_per_s_per_gpu > slow.tokens_per_s_per_gpu


def test_plan_errors_name_the_field():
    with pytest.raises(PlanError, match="ep=7"):
        decode_step(V3, H800, ServingPlan(dp=8, ep=7), EFF, 1, 10)
    with pytest.raises(PlanError, match="no experts"):
        decode_step(L8, H100, ServingPlan(ep=2, dp=2), EFF, 1, 10)
    with pytest.raises(PlanError, match="MTP"):
        decode_step(L8, H100, ServingPlan(mtp_tokens=1.8), EFF, 1, 10)
    with pytest.raises(PlanError, match="fp8"):
        decode_step(L8, load_profile("a100-sxm-80gb"), ServingPlan(precision="fp8"), EFF, 1, 10)
    with pytest.raises(PlanError, match="cached_tokens"):
        prefill(L8, H100, ServingPlan(), EFF, 100, 200)
    with pytest.raises(PlanError, match="no room"):
        decode_for_speed(V3, H800, ServingPlan(precision="fp8"), EFF, 1000, 20.0)


@pytest.mark.parametrize("name", ["gpt3-175b", "mpt-7b", "llama2-70b", "nemotron-22b", "llama3.1-405b"])
def test_every_kind_of_builtin_model_runs(name):
    m = load_builtin(name)
    plan = ServingPlan(tp=8, precision="fp8")
    d = decode_step(m, H100, plan, EFF, 4, 1024)
    p = prefill(m, H100, plan, EFF, 1024, 256)
    for c in (d, p):
        assert math.isfinite(c.seconds) and c.seconds > 0 and c.flops > 0 and c.hbm_bytes > 0


def test_comm_sms_takes_sms_from_overlapped_compute_instead_of_the_fitted_slowdown():
    """comm_sms > 0 under overlap: every compute kernel runs on the SMs communication leaves (GEMMs slower by
    about num_sms / (num_sms − comm_sms)), and overlap_slowdown is no longer charged on top; without overlap the
    SMs are not held and comm_sms changes nothing."""
    base = dict(dp=32, ep=32, precision="fp8", redundant_experts=32, overlap_comm=True)
    free = prefill(V3, H800, ServingPlan(**base), EFF, 4384, 2468, 3)
    held = prefill(V3, H800, ServingPlan(**base, comm_sms=20), EFF, 4384, 2468, 3)
    ratio = held.compute_s / free.compute_s
    assert 1.05 < ratio <= H800.num_sms / (H800.num_sms - 20) + 1e-9
    no_slow = Efficiency(EFF.compute_derate, EFF.kernel_overhead_s, 0.0)
    free0 = prefill(V3, H800, ServingPlan(**base), no_slow, 4384, 2468, 3)
    held0 = prefill(V3, H800, ServingPlan(**base, comm_sms=20), no_slow, 4384, 2468, 3)
    assert held0.seconds == pytest.approx(held.seconds, rel=1e-12)      # the fitted slowdown is not charged
    assert free0.seconds < free.seconds
    plain = dict(base, overlap_comm=False)
    assert (prefill(V3, H800, ServingPlan(**plain, comm_sms=20), EFF, 4384, 2468, 3).seconds
            == pytest.approx(prefill(V3, H800, ServingPlan(**plain), EFF, 4384, 2468, 3).seconds, rel=1e-12))


def test_comm_sms_must_leave_sms_for_compute():
    with pytest.raises(PlanError, match=r"comm_sms=132 .*132 SMs"):
        decode_step(V3, H800, ServingPlan(dp=8, ep=8, comm_sms=132), EFF, 1, 10)


def test_low_latency_decode_holds_no_sms():
    """Decode across nodes runs DeepEP's low-latency kernels, which hold no SM: comm_sms changes nothing there."""
    base = dict(dp=144, ep=144, precision="fp8", redundant_experts=32, overlap_comm=True)
    a = decode_step(V3, H800, ServingPlan(**base), EFF, 64, 4989)
    b = decode_step(V3, H800, ServingPlan(**base, comm_sms=20), EFF, 64, 4989)
    assert b.seconds == a.seconds


def test_comm_sms_needs_an_expert_all_to_all():
    """A dense model (or ep 1) has no all-to-all to overlap: comm_sms holds no SMs there."""
    a = prefill(L8, H100, ServingPlan(overlap_comm=True), EFF, 4000, 0, 2)
    b = prefill(L8, H100, ServingPlan(overlap_comm=True, comm_sms=20), EFF, 4000, 0, 2)
    assert b.seconds == a.seconds


def test_measured_expert_imbalance_slows_the_instance(tmp_path):
    """moe_load_imbalance on a serving instance reaches the cost model: the most loaded EP rank's expert GEMMs
    and all-to-all grow with it (scenario key → ServingPlan, like training's moe.load_imbalance)."""
    from costsim.phase_kinds import Serving
    s = Serving(dp=32, ep=32, precision="fp8", moe_load_imbalance=1.3)
    plan = ServingPlan(**s.model_dump())
    assert plan.moe_load_imbalance == 1.3
    base = prefill(V3, H800, ServingPlan(dp=32, ep=32, precision="fp8"), EFF, 4384, 2468, 3)
    skew = prefill(V3, H800, plan, EFF, 4384, 2468, 3)
    assert skew.seconds > base.seconds * 1.05


def test_measured_imbalance_needs_more_than_one_ep_rank():
    one = ServingPlan(tp=8, precision="fp8")
    skew = ServingPlan(tp=8, precision="fp8", moe_load_imbalance=1.3)
    assert (prefill(V3, H800, skew, EFF, 4384, 2468, 1).seconds
            == prefill(V3, H800, one, EFF, 4384, 2468, 1).seconds)

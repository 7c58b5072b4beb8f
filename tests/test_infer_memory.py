"""Inference memory: KV bytes per token, weights per GPU, the decode batch that fits (hand-computed numbers)."""
from __future__ import annotations

import pytest

from costsim.hardware import load_profile
from costsim.infer import ServingPlan, kv_bytes_per_token, max_decode_batch
from costsim.infer.memory import (GPU_MEMORY_UTILIZATION, activation_bytes, fixed_reserve_bytes,
                                  kv_bytes_per_token_gpu, weight_bytes_per_gpu)
from costsim.model import load_builtin

V3 = load_builtin("deepseek-v3")
L8 = load_builtin("llama3.1-8b")
L70 = load_builtin("llama3.1-70b")


def test_kv_bytes_mla_deepseek_v3():
    # 61 layers × (kv_lora_rank 512 + qk_rope_head_dim 64) × 2 B (DeepSeek-V2 §2.1; V3 config)
    assert kv_bytes_per_token(V3, "bf16") == 61 * 576 * 2 == 70272
    assert kv_bytes_per_token(V3, "fp8") == 61 * 576


def test_kv_bytes_gqa_llama():
    # Llama 3.1 8B: 32 layers × 2 (K, V) × 8 KV heads × 128 × 2 B = 128 KiB per token
    assert kv_bytes_per_token(L8, "bf16") == 32 * 2 * 8 * 128 * 2 == 131072
    # 70B: 80 layers, 8 KV heads of 128
    assert kv_bytes_per_token(L70) == 80 * 2 * 8 * 128 * 2


def test_kv_bytes_per_gpu_sharding_and_mtp():
    # GQA heads split by TP, replicated once TP exceeds them
    assert kv_bytes_per_token_gpu(L70, ServingPlan(tp=8)) == 80 * 2 * 1 * 128 * 2
    assert kv_bytes_per_token_gpu(L70, ServingPlan(tp=4)) == 80 * 2 * 2 * 128 * 2
    # MLA latent replicated on every TP rank; the MTP module's layer joins when it drafts
    assert kv_bytes_per_token_gpu(V3, ServingPlan(tp=8)) == 61 * 576 * 2
    assert kv_bytes_per_token_gpu(V3, ServingPlan(mtp_tokens=1.85)) == 62 * 576 * 2


def test_weight_bytes_dense_bf16_is_params_times_two():
    assert weight_bytes_per_gpu(L8, ServingPlan()) == pytest.approx(L8.total_params() * 2, rel=1e-12)
    # TP 8 of the 70B: everything (embedding and head vocab-parallel) ÷ 8, bar the norms
    w = weight_bytes_per_gpu(L70, ServingPlan(tp=8))
    assert w == pytest.approx(L70.total_params() * 2 / 8, rel=1e-3)


def test_weight_bytes_deepseek_v3_fp8_by_hand():
    """EP 1 without MTP: GEMM weights 1 B (+ one FP32 scale per 128×128 block), embedding, head, router, norms
    BF16: V3 §3.3."""
    h, E = 7168, 256
    bf16 = 2 * (129280 * h) + 58 * (h * E + E) + (61 * 2 + 1) * h
    gemm = V3.total_params() - bf16
    expected = gemm * (1 + 4 / 128 ** 2) + bf16 * 2
    assert weight_bytes_per_gpu(V3, ServingPlan(precision="fp8")) == pytest.approx(expected, rel=1e-9)


def test_weight_bytes_deepseek_decode_unit():
    """EP144 with 32 redundant experts: 2 routed experts per layer per GPU (serving note: '2 routed + 1 shared
    expert per GPU'); the rest (attention, shared expert, dense layers, embedding, head) whole on every GPU."""
    plan = ServingPlan(dp=144, ep=144, precision="fp8", redundant_experts=32)
    full = ServingPlan(precision="fp8")
    expert = 3 * 7168 * 2048 * (1 + 4 / 128 ** 2)
    expected = weight_bytes_per_gpu(V3, full) - 58 * (256 - 2) * expert
    assert weight_bytes_per_gpu(V3, plan) == pytest.approx(expected, rel=1e-9)
    # about 23 GiB: ~15B non-expert parameters + 2 × 58 experts of 44M in FP8, plus the BF16 embedding and head
    assert 20 < weight_bytes_per_gpu(V3, plan) / 2 ** 30 < 26


@pytest.mark.parametrize("name,plan,ctx", [
    ("llama3.1-8b", ServingPlan(), 2048),
    ("llama3.1-8b", ServingPlan(kv_dtype="fp8"), 8192),
    ("deepseek-v3", ServingPlan(dp=144, ep=144, precision="fp8", redundant_experts=32, mtp_tokens=1.85), 4989),
])
def test_max_decode_batch_is_the_memory_edge(name, plan, ctx):
    m = load_builtin(name)
    hw = load_profile("h800-sxm")
    b = max_decode_batch(m, hw, plan, ctx)
    assert b >= 1 and b == int(b)

    def used(n):
        return (weight_bytes_per_gpu(m, plan) + n * ctx * kv_bytes_per_token_gpu(m, plan)
                + activation_bytes(m, plan, n * (1 + plan.draft_tokens)) + fixed_reserve_bytes())

    cap = GPU_MEMORY_UTILIZATION * hw.hbm_capacity_bytes
    assert used(b) <= cap < used(b + 1)


def test_max_decode_batch_hand_llama8b():
    # 0.9 × 80 GiB − 16.06 GB weights − 0.5625 GiB reserve, ÷ (2048 × 128 KiB), less a little for activations
    hw = load_profile("h100-sxm")
    free = 0.9 * 80 * 2 ** 30 - 8_030_261_248 * 2 - 0.5 * 2 ** 30 - 64 * 2 ** 20
    upper = free / (2048 * 131072)
    b = max_decode_batch(L8, hw, ServingPlan(), 2048)
    assert upper - 5 < b <= upper


def test_max_decode_batch_tp_is_per_gpu():
    hw = load_profile("h100-sxm")
    b8 = max_decode_batch(L70, hw, ServingPlan(tp=8), 2048)
    assert b8 * 8 == int(round(b8 * 8))          # whole sequences per TP group
    assert b8 > 10


def test_weights_that_do_not_fit_leave_zero():
    hw = load_profile("h800-sxm")
    assert max_decode_batch(V3, hw, ServingPlan(precision="fp8"), 1000) == 0

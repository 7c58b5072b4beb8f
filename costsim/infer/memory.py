"""Inference memory of one GPU: weights (its share), the KV cache, a reserve; the decode batch that fits.

Sources: DeepSeek-V3 report §3.3 (FP8 GEMM weights with one FP32 scale per 128×128 block; embedding, output
head, gating and norms kept in BF16); DeepSeek-V2 §2.1 (MLA caches the kv_lora_rank latent plus the decoupled
rope key per token per layer); the serving note (reference deepseek-r1-and-inference.md §4: 9 routed + 1 shared
expert per prefill GPU, 2 routed + 1 shared per decode GPU).
"""
from __future__ import annotations

import math

from ..memory import CUBLAS_WORKSPACE_BYTES, CUBLAS_WORKSPACES, CUDA_CONTEXT_BYTES
from ..model import ModelSpec
from .plan import KV_DTYPES, ServingPlan

# vLLM's engine argument gpu_memory_utilization, default 0.9 (vLLM docs, "Engine Arguments"): the share of HBM a
# serving process lets itself use for weights, activations and KV cache; the rest covers the CUDA context,
# communication buffers (NCCL / DeepEP) and allocator slack. Assumption: the same share for any engine.
GPU_MEMORY_UTILIZATION = 0.9
WEIGHT_SCALE_BYTES = 4.0 / (128 * 128)      # FP8 weights: one FP32 scale per 128×128 block (V3 §3.3)


def kv_elems_per_layer(model: ModelSpec) -> float:
    """Cached elements per token per attention layer: MLA (kv_lora_rank + qk_rope_head_dim), GQA 2·kv_heads·
    head_dim."""
    if model.uses_mla:
        return float(model.kv_lora_rank + model.qk_rope_head_dim)
    return 2.0 * model.num_kv_heads * model.head_dim


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str = "bf16") -> float:
    """KV-cache bytes of one token over the main layers (no MTP module), unsharded."""
    return model.num_layers * kv_elems_per_layer(model) * KV_DTYPES[kv_dtype]


def kv_bytes_per_token_gpu(model: ModelSpec, plan: ServingPlan) -> float:
    """KV-cache bytes one GPU holds per token of a request it serves: GQA heads split over TP (replicated when
    tp exceeds them), the MLA latent replicated on every TP rank; the MTP module's layer too when it drafts."""
    layers = model.num_layers + (model.num_nextn_predict_layers if plan.draft_tokens else 0)
    elems = kv_elems_per_layer(model)
    if not model.uses_mla:
        elems = 2.0 * max(1.0, model.num_kv_heads / plan.tp) * model.head_dim
    return layers * elems * KV_DTYPES[plan.kv_dtype]


def weight_bytes_per_gpu(model: ModelSpec, plan: ServingPlan) -> float:
    """Weights one GPU holds: attention, dense FFN and shared experts ÷ TP (MLA's q_a/kv_a replicated), routed
    experts and their redundant replicas ÷ EP; embedding and head vocab-parallel over TP, BF16."""
    h = model.hidden_size
    wb = 1.0 + WEIGHT_SCALE_BYTES if plan.precision == "fp8" else 2.0
    tp = plan.tp

    def attention() -> float:
        if model.uses_mla:
            replicated = h * ((model.q_lora_rank or 0) + model.kv_lora_rank + model.qk_rope_head_dim)
            return replicated * wb + (model.attention_params() - replicated) / tp * wb
        return model.attention_params() / tp * wb

    def layer(kind: str) -> float:
        norms = 2 * model.norm_params() * 2.0
        if kind == "dense":
            return attention() + norms + model.mlp_params(model.intermediate_size) / tp * wb
        expert = model.mlp_params(model.moe_intermediate_size)
        router = (h * model.n_routed_experts + model.n_routed_experts) * 2.0
        shared = model.n_shared_experts * expert / tp * wb
        routed = (model.n_routed_experts + plan.redundant_experts) / plan.ep * expert * wb
        return attention() + norms + router + shared + routed

    total = sum(layer(k) for k in model.layer_kinds())
    total += (model.embedding_params() + model.head_params()) / tp * 2.0 + model.norm_params() * 2.0
    if plan.draft_tokens:
        per_depth = 3 * model.norm_params() * 2.0 + 2 * h * h * wb + layer(model.layer_kinds()[-1])
        total += model.num_nextn_predict_layers * per_depth
    return total


def activation_bytes(model: ModelSpec, plan: ServingPlan, tokens: float) -> float:
    """Transient activations of one forward over `tokens` tokens on one GPU: the residual stream (two BF16
    copies) plus the larger of the logits (BF16 + FP32 probabilities) and one MoE layer's routed copies and
    expert intermediates (BF16) — a peak, not a sum over layers (activations are freed layer by layer)."""
    h = model.hidden_size
    logits = tokens * model.vocab_size / plan.tp * 6.0
    inner = model.intermediate_size / plan.tp
    ffn = tokens * inner * 3 * 2.0
    if model.is_moe:
        copies = tokens / plan.tp * model.num_experts_per_tok
        ffn = max(ffn, copies * (2 * h * 2.0 + 3 * model.moe_intermediate_size * 2.0))
    return 2 * tokens * h * 2.0 + max(logits, ffn)


def fixed_reserve_bytes() -> float:
    """CUDA context and cuBLAS workspaces (costsim.memory: 0.5 GiB assumption; PyTorch's 2 × 32 MiB)."""
    return CUDA_CONTEXT_BYTES + CUBLAS_WORKSPACES * CUBLAS_WORKSPACE_BYTES


def kv_budget_bytes(model: ModelSpec, hw, plan: ServingPlan, tokens_in_flight: float) -> float:
    """HBM left for the KV cache: the engine's share of HBM less weights, a step's activations and the fixed
    reserve."""
    return (GPU_MEMORY_UTILIZATION * hw.hbm_capacity_bytes - weight_bytes_per_gpu(model, plan)
            - activation_bytes(model, plan, tokens_in_flight) - fixed_reserve_bytes())


def max_decode_batch(model: ModelSpec, hw, plan: ServingPlan, context_tokens: float) -> float:
    """Largest decode batch per GPU at `context_tokens` cached tokens per sequence (paged KV cache: the mean
    length sets the memory): the whole sequences one TP group holds ÷ tp (an integer when tp = 1). 0 when the
    weights alone do not fit."""
    per_seq = max(context_tokens, 1.0) * kv_bytes_per_token_gpu(model, plan)
    tokens_per_seq = 1 + plan.draft_tokens
    # a step's activations are linear in its tokens (activation_bytes: a sum and a max of terms proportional to
    # them), so KV + activations of `batch` sequences fit the budget left at zero tokens: solve directly
    act_per_seq = activation_bytes(model, plan, 1.0) * tokens_per_seq
    batch = max(0.0, kv_budget_bytes(model, hw, plan, 0.0) / (per_seq + act_per_seq))
    n = int(math.floor(batch + 1e-9))
    return n if plan.tp == 1 else n / plan.tp

"""Memory per GPU: weights, gradients, optimizer state (by ZeRO stage) and activations (by recompute mode).

Activation bytes per layer follow Korthikanti et al. 2022 (arXiv 2205.05198, §4): for a GPT layer they reduce
to s·b·h·(34 + 5·a·s/h) with no parallelism, s·b·h·(10 + 24/t + 5·a·s/(h·t)) with TP, s·b·h·34/t with TP + SP +
selective recompute, and 2·s·b·h (÷t with SP) with full recompute. The same tensor-by-tensor count extends to
gated MLPs, GQA, MLA and MoE. Under FP8, GEMM inputs are cached in FP8 (DeepSeek-V3 §3.3; Transformer Engine).
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import ModelSpec
from .plan import ParallelPlan

GIB = 2.0 ** 30
WEIGHT_BYTES = 2      # BF16 working weights
GRAD_BYTES = 4        # FP32 main gradients (Megatron main_grad; DeepSeek-V3 §3.3 keeps FP32 gradients)
MASTER_BYTES = 4      # FP32 master weights
MOMENT_BYTES = {"fp32": 8, "bf16": 4}   # Adam m and v (DeepSeek-V3 stores them in BF16)


@dataclass(frozen=True)
class UnitParams:
    dense: float        # replicated across EP; split by TP where the layer is tensor-parallel
    expert: float       # routed experts, split by EP


def unit_params(model: ModelSpec, unit: str, pp: int) -> UnitParams:
    """Parameters of one pipeline unit."""
    if unit == "embed":
        return UnitParams(model.embedding_params(), 0.0)
    if unit == "head":
        tied_same_stage = model.tie_word_embeddings and pp == 1
        return UnitParams(0.0 if tied_same_stage else model.vocab_size * model.hidden_size, 0.0)
    kind = ("moe" if model.is_moe else "dense") if unit == "mtp" else unit
    total = (model.mtp_params() / model.num_nextn_predict_layers if unit == "mtp" else model.layer_params(kind))
    expert = (model.n_routed_experts * (3 if model.gated_mlp else 2) * model.hidden_size
              * model.moe_intermediate_size) if kind == "moe" else 0.0
    return UnitParams(total - expert, expert)


def gpu_params(model: ModelSpec, plan: ParallelPlan, units: list[str]) -> UnitParams:
    """Parameters held by one GPU for these units (dense ÷ TP, experts ÷ EP)."""
    dense = sum(unit_params(model, u, plan.pp).dense for u in units) / plan.tp
    expert = sum(unit_params(model, u, plan.pp).expert for u in units) / (plan.ep * plan.etp)
    return UnitParams(dense, expert)


def layer_activation_bytes(model: ModelSpec, plan: ParallelPlan, kind: str, recompute: str | None = None) -> float:
    """Bytes one layer keeps for backward per micro-batch on one GPU."""
    m, p = model, plan
    recompute = recompute or p.recompute
    t, tp, h = p.tokens_per_microbatch, p.tp, m.hidden_size
    rep = 1.0 / tp if p.sequence_parallel else 1.0       # replicated across TP unless sequence-parallel
    if recompute == "full":
        return 2.0 * t * h * rep                          # only the layer input
    lowp = 1.0 if p.precision == "fp8" else 2.0           # GEMM inputs cached in FP8
    drop = m.dropout > 0
    heads = m.num_heads / tp
    # norm outputs (the projection inputs) are recomputed under MLA's selective recompute (DeepSeek-V3 §3.2.3)
    norm_out = 0.0 if (m.uses_mla and recompute == "selective") else lowp * h * rep
    per_tok = 2 * h * rep + norm_out + (h * rep if drop else 0)           # norm in, projection in, mask
    # the attention output, also read by attention's backward, is cached in E5M6 (12 bits) under DeepSeek's
    # FP8 recipe (DeepSeek-V3 §3.3); BF16 otherwise
    o_bytes = 1.5 if lowp == 1.0 else 2.0
    if m.uses_mla:
        per_tok += 2 * m.q_lora_rank + lowp * m.q_lora_rank + 2 * (m.kv_lora_rank + m.qk_rope_head_dim)
        per_tok += lowp * m.kv_lora_rank
        if recompute == "none":                           # q, k, v from the up-projections
            per_tok += 2 * heads * (2 * m.qk_head_dim + m.v_dim)
        per_tok += o_bytes * heads * m.v_dim              # attention output (O-projection input)
    else:
        per_tok += 2 * (m.num_heads + 2 * m.num_kv_heads) * m.head_dim / tp + o_bytes * heads * m.head_dim
        if p.attention == "unfused" and recompute == "none":
            per_tok += (5 if drop else 2) * heads * p.seq_len   # softmax out, mask, dropout out (5·a·s/t)
    per_tok += 2 * h * rep + (h * rep if drop else 0)     # FFN norm input, dropout mask
    if kind == "moe":
        k, inner = m.num_experts_per_tok, m.moe_intermediate_size
        per_tok += norm_out                               # router / dispatch input
        # per routed copy: expert input, activation input(s) and output, expert output kept for the combine
        per_tok += k * (lowp * h + _act_bytes(m, inner, lowp) + lowp * h) / tp
        per_tok += _mlp_tokens(m, m.n_shared_experts * inner, lowp, tp, norm_out) if m.n_shared_experts else 0
    else:
        per_tok += _mlp_tokens(m, m.intermediate_size, lowp, tp, norm_out)
    return per_tok * t


def _act_bytes(m: ModelSpec, inner: float, lowp: float) -> float:
    """Activation-function input(s) and output per token. Under FP8, gated inputs are cached in FP8 and the
    output recomputed (DeepSeek-V3 §3.3); otherwise BF16 input(s) and the output at GEMM-input precision."""
    if lowp == 1.0 and m.gated_mlp:
        return 2 * inner
    return 2 * (2 if m.gated_mlp else 1) * inner + lowp * inner


def _mlp_tokens(m: ModelSpec, inner: float, lowp: float, tp: int, ffn_in: float) -> float:
    """FFN input, activation input(s) and activation output per token (GeLU: 2h + 8h + 8h of Korthikanti)."""
    return ffn_in + _act_bytes(m, inner, lowp) / tp


def unit_activation_bytes(model: ModelSpec, plan: ParallelPlan, unit: str) -> float:
    if unit in ("dense", "moe"):
        return layer_activation_bytes(model, plan, unit)
    if unit == "mtp":
        kind = "moe" if model.is_moe else "dense"
        return layer_activation_bytes(model, plan, kind) + 4.0 * plan.tokens_per_microbatch * model.hidden_size
    return 0.0


def head_transient_bytes(model: ModelSpec, plan: ParallelPlan) -> float:
    """Logits (BF16) and their FP32 softmax for one micro-batch on the last stage."""
    return 6.0 * plan.tokens_per_microbatch * model.vocab_size / plan.tp


@dataclass(frozen=True)
class MemoryBreakdown:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    capacity: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    def gib(self) -> dict[str, float]:
        return {k: v / GIB for k, v in (("weights", self.weights), ("gradients", self.gradients),
                                        ("optimizer", self.optimizer), ("activations", self.activations),
                                        ("total", self.total), ("capacity", self.capacity))}


def in_flight(plan: ParallelPlan, rank: int) -> float:
    """Micro-batches whose activations a pipeline rank holds at its peak (formulas.md, DeepSeek-V3 Table 2)."""
    p, m, v = plan.pp, plan.num_microbatches, plan.virtual_stages
    if plan.schedule == "dualpipe":
        return min(m, p + 1)
    n = p - rank
    if plan.schedule == "interleaved":
        n *= 1 + (p - 1) / (p * v)
    return min(m, n)


def rank_memory(model: ModelSpec, plan: ParallelPlan, units: list[str], stage_units: list[list[str]],
                rank: int, moment_dtype: str, capacity: float) -> MemoryBreakdown:
    """Memory of one pipeline rank holding `units`; `stage_units` are its stages (two under DualPipe)."""
    params = gpu_params(model, plan, units)
    dp_dense = plan.dp * plan.cp
    dp_expert = max(1, plan.tp * plan.cp * plan.dp // (plan.ep * plan.etp))   # expert-DP (parallel folding)
    z = plan.zero_stage

    def shard(dense_bytes: float, expert_bytes: float, sharded: bool) -> float:
        if not sharded:
            return params.dense * dense_bytes + params.expert * expert_bytes
        return params.dense * dense_bytes / dp_dense + params.expert * expert_bytes / dp_expert

    weights = shard(WEIGHT_BYTES, WEIGHT_BYTES, z >= 3)
    grads = shard(GRAD_BYTES, GRAD_BYTES, z >= 2)
    opt_b = MASTER_BYTES + MOMENT_BYTES[moment_dtype]
    optim = shard(opt_b, opt_b, z >= 1)
    per_mb = sum(sum(unit_activation_bytes(model, plan, u) for u in st) for st in stage_units) / len(stage_units)
    acts = per_mb * in_flight(plan, rank)
    if plan.recompute == "full":   # one layer's full activations exist while it is recomputed
        kinds = [u for u in units if u in ("dense", "moe")]
        acts += max((layer_activation_bytes(model, plan, k, "none") for k in kinds), default=0.0)
    if "head" in units:
        acts += head_transient_bytes(model, plan)
    return MemoryBreakdown(weights, grads, optim, acts, capacity)

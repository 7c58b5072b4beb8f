"""Memory per GPU: weights, gradients, optimizer state (by ZeRO stage) and activations (by recompute mode).

Activation bytes per layer follow Korthikanti et al. 2022 (arXiv 2205.05198, §4): for a GPT layer they reduce
to s·b·h·(34 + 5·a·s/h) with no parallelism, s·b·h·(10 + 24/t + 5·a·s/(h·t)) with TP, s·b·h·34/t with TP + SP +
selective recompute, and 2·s·b·h (÷t with SP) with full recompute. The same tensor-by-tensor count extends to
gated MLPs, GQA, MLA and MoE. Under FP8, what a GEMM keeps for backward depends on the recipe (costsim/fp8.py):
its FP8 copy under Transformer Engine and DeepSeek's recipe, the BF16 input under torchao's recipes; DeepSeek's
further savings (§3.3: E5M6 attention output, FP8 SwiGLU inputs with the output recomputed) go with its recipe.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .fp8 import deepseek_storage, gemm_input_bytes
from .model import ModelSpec
from .plan import ParallelPlan

GIB = 2.0 ** 30
WEIGHT_BYTES = 2      # BF16 working weights
GRAD_BYTES = 4        # FP32 main gradients (Megatron main_grad; DeepSeek-V3 §3.3 keeps FP32 gradients)


def grad_bytes(plan) -> int:
    """Bytes per gradient in the buffer and on the wire: 4 (FP32) or 2 with `grad_dtype: bf16`."""
    return 2 if getattr(plan, "grad_dtype", "fp32") == "bf16" else GRAD_BYTES
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
    dense, expert = _params_sum(model, tuple(units), plan.pp)
    return UnitParams(dense / plan.tp, expert / (plan.ep * plan.etp))


@lru_cache(maxsize=4096)
def _params_sum(model: ModelSpec, units: tuple[str, ...], pp: int) -> tuple[float, float]:
    """Dense and expert parameters of these units (memoised: `costsim search` asks for the same ones often)."""
    return (sum(unit_params(model, u, pp).dense for u in units),
            sum(unit_params(model, u, pp).expert for u in units))


def layer_activation_bytes(model: ModelSpec, plan: ParallelPlan, kind: str, recompute: str | None = None) -> float:
    """Bytes one layer keeps for backward per micro-batch on one GPU."""
    m, p = model, plan
    if recompute is None and p.recompute == "full" and p.recompute_fraction < 1.0:
        # full recompute on a fraction of the layers: on average, that mix of input-only and full layers
        f = p.recompute_fraction
        return f * layer_activation_bytes(m, p, kind, "full") + (1 - f) * layer_activation_bytes(m, p, kind, "none")
    recompute = recompute or p.recompute
    t, tp, h = p.tokens_per_microbatch, p.tp, m.hidden_size
    rep = 1.0 / tp if p.sequence_parallel else 1.0       # replicated across TP unless sequence-parallel
    if recompute == "full":
        return 2.0 * t * h * rep                          # only the layer input
    lowp = gemm_input_bytes(p)                            # a GEMM input kept for backward (fp8.py)
    ds = deepseek_storage(p)
    drop = m.dropout > 0
    heads = m.num_heads / tp
    # norm outputs (the projection inputs) are recomputed under MLA's selective recompute (DeepSeek-V3 §3.2.3)
    norm_out = 0.0 if (m.uses_mla and recompute == "selective") else lowp * h * rep
    per_tok = 2 * h * rep + norm_out + (h * rep if drop else 0)           # norm in, projection in, mask
    # the attention output: FlashAttention keeps it (BF16) for its backward, and under TE the O-projection keeps
    # its own FP8 copy beside it; DeepSeek caches one E5M6 (12-bit) copy for both (DeepSeek-V3 §3.3)
    o_bytes = 1.5 if ds else 2.0 + (lowp if lowp < 2.0 else 0.0)
    if m.uses_mla:
        per_tok += 2 * m.q_lora_rank + 2 * (m.kv_lora_rank + m.qk_rope_head_dim)   # latents (norm inputs)
        if recompute == "none":
            # up-projection inputs (the normed latents) and q, k, v; under selective recompute the norms and
            # up-projections are recomputed (DeepSeek-V3 §3.2.3), so neither is kept
            per_tok += lowp * (m.q_lora_rank + m.kv_lora_rank) + 2 * heads * (2 * m.qk_head_dim + m.v_dim)
        per_tok += o_bytes * heads * m.v_dim              # attention output (O-projection input)
    else:
        per_tok += 2 * (m.num_heads + 2 * m.num_kv_heads) * m.head_dim / tp + o_bytes * heads * m.head_dim
        if p.attention == "unfused" and recompute == "none":
            per_tok += (5 if drop else 2) * heads * p.seq_len   # softmax out, mask, dropout out (5·a·s/t)
    per_tok += 2 * h * rep + (h * rep if drop else 0)     # FFN norm input, dropout mask
    if kind == "moe":
        k, inner = m.num_experts_per_tok, m.moe_intermediate_size
        per_tok += norm_out                               # router / dispatch input
        # per routed copy: expert input, activation input(s) and output, and the expert output (BF16, the
        # down-projection's output) that the gating weight's gradient dL/dg = <dy, y_e> needs (Megatron-LM's
        # unpermute with probs, HF Mixtral). Not under DeepSeek's recipe: it recomputes the SwiGLU output from
        # FP8 inputs, and the gating weight folded into that recomputed SwiGLU (as Megatron-Core's weighted SwiGLU
        # does) gets its gradient from there; keeping the 7168-wide BF16 outputs of all 8 copies would cost 3.5×
        # the SwiGLU inputs DeepSeek compressed to FP8 (inferred, not stated in the report)
        out = 0.0 if (ds and m.gated_mlp) else 2.0 * h
        per_tok += k * (lowp * h + _act_bytes(m, inner, lowp, ds) + out) / tp
        per_tok += _mlp_tokens(m, m.n_shared_experts * inner, lowp, ds, tp, norm_out) if m.n_shared_experts else 0
    else:
        per_tok += _mlp_tokens(m, m.intermediate_size, lowp, ds, tp, norm_out)
    return per_tok * t


def _act_bytes(m: ModelSpec, inner: float, lowp: float, ds: bool) -> float:
    """Activation-function input(s) and output per token. DeepSeek's recipe caches gated inputs in FP8 and
    recomputes the output (DeepSeek-V3 §3.3); otherwise BF16 input(s) and the output at GEMM-input precision."""
    if ds and m.gated_mlp:
        return 2 * inner * lowp
    return 2 * (2 if m.gated_mlp else 1) * inner + lowp * inner


def _mlp_tokens(m: ModelSpec, inner: float, lowp: float, ds: bool, tp: int, ffn_in: float) -> float:
    """FFN input, activation input(s) and activation output per token (GeLU: 2h + 8h + 8h of Korthikanti)."""
    return ffn_in + _act_bytes(m, inner, lowp, ds) / tp


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


# ---- reserved beside the tensors: "fits" means fits -------------------------------------------------------
# Memory a training process holds that none of the tensors above account for, taken from HBM before a plan fits.

# Assumption, range 0.3–1 GiB: the CUDA context with the kernel images of PyTorch, cuBLAS, cuDNN and NCCL loaded.
# No published constant; it is the gap between nvidia-smi's per-process usage and torch.cuda.memory_reserved()
# (PyTorch docs, "CUDA semantics", memory management: the allocator's statistics leave the context out). Lazy
# module loading (CUDA_MODULE_LOADING=LAZY, which PyTorch sets by default) keeps it toward the low end.
CUDA_CONTEXT_BYTES = 0.5 * GIB
# NCCL docs, Environment Variables: NCCL_BUFFSIZE, default 4194304 (4 MiB), the Simple-protocol buffer of one
# connection (a channel to one peer). A ring collective has two peers per channel (previous and next rank).
NCCL_BUFFSIZE_BYTES = 4 * 2 ** 20
# Assumption: channels of one ring communicator. NCCL picks them per topology, at most 32 (NCCL_MAX_NCHANNELS,
# MAXCHANNELS); 16 sits between the ~2 per NIC it opens across nodes and the 16–32 it opens over NVSwitch.
NCCL_RING_CHANNELS = 16
# Point-to-point (pipeline send/recv, all-to-all): NCCL docs, NCCL_NCHANNELS_PER_NET_PEER, default 2 channels to
# each peer; an all-to-all connects to every other rank of its group.
NCCL_P2P_CHANNELS_PER_PEER = 2
# PyTorch (aten/src/ATen/cuda/CublasHandlePool.cpp; docs "CUDA semantics", cuBLAS workspaces): one workspace
# per (cuBLAS handle, stream), CUBLAS_WORKSPACE_CONFIG default ":4096:8" = 32 MiB on Hopper (sm90). Transformer
# Engine keeps its own 32 MiB on Hopper; two workspaces is an assumption (one GEMM stream + TE's or a second one).
CUBLAS_WORKSPACE_BYTES = 32 * 2 ** 20
CUBLAS_WORKSPACES = 2
# Assumption, 5% of the allocated tensors (range ~0–30%): the caching allocator's fragmentation, reserved but
# unusable. GMLake (Guo et al., ASPLOS 2024, arXiv 2401.08156) measured PyTorch's allocator on LLM training with
# recompute and ZeRO and removed 15% (up to 33%) fragmentation by stitching virtual memory, as PyTorch's
# expandable_segments now does; fixed shapes (fixed sequence length, balanced experts) keep it low.
FRAGMENTATION = 0.05


def nccl_buffer_bytes(plan: ParallelPlan) -> float:
    """NCCL connection buffers of one GPU: channels × peers × NCCL_BUFFSIZE per communicator it belongs to."""
    ring = NCCL_RING_CHANNELS * 2 * NCCL_BUFFSIZE_BYTES
    p2p_peer = NCCL_P2P_CHANNELS_PER_PEER * NCCL_BUFFSIZE_BYTES
    dp_expert = plan.tp * plan.cp * plan.dp // (plan.ep * plan.etp)
    rings = sum(n > 1 for n in (plan.tp, plan.cp, plan.dp * plan.cp, plan.etp, dp_expert if plan.ep > 1 else 1))
    peers = (2 if plan.pp > 2 else plan.pp - 1) + (plan.ep - 1)          # pipeline neighbours, EP all-to-all
    return rings * ring + peers * p2p_peer


def reserved_bytes(plan: ParallelPlan, allocated: float) -> float:
    """Bytes outside the tensors: CUDA context, NCCL buffers, cuBLAS workspaces, allocator fragmentation."""
    return (CUDA_CONTEXT_BYTES + nccl_buffer_bytes(plan) + CUBLAS_WORKSPACES * CUBLAS_WORKSPACE_BYTES
            + FRAGMENTATION * allocated)


@dataclass(frozen=True)
class MemoryBreakdown:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    capacity: float
    reserved: float = 0.0     # CUDA context, NCCL buffers, cuBLAS workspaces, fragmentation (reserved_bytes)

    @property
    def allocated(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    @property
    def total(self) -> float:
        return self.allocated + self.reserved

    def gib(self) -> dict[str, float]:
        return {k: v / GIB for k, v in (("weights", self.weights), ("gradients", self.gradients),
                                        ("optimizer", self.optimizer), ("activations", self.activations),
                                        ("reserved", self.reserved), ("total", self.total),
                                        ("capacity", self.capacity))}


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

    # under FP8, the cached FP8 + transposed FP8 copies of a weight take the 2 B of its BF16 copy (fp8.py)
    weights = shard(WEIGHT_BYTES, WEIGHT_BYTES, z >= 3)
    grads = shard(grad_bytes(plan), grad_bytes(plan), z >= 2)
    opt_b = MASTER_BYTES + MOMENT_BYTES[moment_dtype]
    optim = shard(opt_b, opt_b, z >= 1)
    # a micro-batch passes every chunk of its rank (interleaved: all v; Korthikanti et al. 2022 §4.2.3), except
    # under DualPipe, where it passes one of the rank's two stages
    act = {u: unit_activation_bytes(model, plan, u) for st in stage_units for u in set(st)}   # once per kind
    per_mb = sum(sum(act[u] for u in st) for st in stage_units)
    if plan.schedule == "dualpipe":
        per_mb /= len(stage_units)
    acts = per_mb * in_flight(plan, rank)
    if plan.recompute == "full":   # one layer's full activations exist while it is recomputed
        kinds = {u for u in units if u in ("dense", "moe")}
        acts += max((layer_activation_bytes(model, plan, k, "none") for k in kinds), default=0.0)
    if "head" in units:
        acts += head_transient_bytes(model, plan)
    allocated = weights + grads + optim + acts
    return MemoryBreakdown(weights, grads, optim, acts, capacity, reserved_bytes(plan, allocated))

"""Layer descriptions: which ops each kind of pipeline unit runs, per micro-batch, per GPU.

Megatron-LM layouts (Shoeybi et al. 2019; Korthikanti et al. 2022) for TP/SP; DeepSeek-V3 (arXiv 2412.19437)
for MLA, fine-grained MoE, FP8 placement and multi-token prediction.
"""
from __future__ import annotations

from dataclasses import replace

from .model import ModelSpec
from .moe_balance import load_imbalance
from .ops import (ADD_BYTES, ALL_GATHER, CE_BYTES, DROPOUT_ADD_BYTES, MEM, NORM_BYTES, P2P,
                  REDUCE_SCATTER, ROPE_BYTES, Op, _Builder)
from .plan import ParallelPlan


def _residual(b: _Builder, tokens: float) -> None:
    h = b.m.hidden_size
    b.mem("residual", tokens * h, DROPOUT_ADD_BYTES if b.m.dropout > 0 else ADD_BYTES)


def _sp_tokens(b: _Builder) -> float:
    """Tokens whose norms/residuals this GPU computes: split by TP under sequence parallelism."""
    t = b.p.tokens_per_microbatch
    return t / b.p.tp if b.p.sequence_parallel else t


def attention_block(b: _Builder) -> None:
    m, p = b.m, b.p
    t, tp, h = p.tokens_per_microbatch, p.tp, m.hidden_size
    b.mem("attn.norm", _sp_tokens(b) * h, NORM_BYTES, selective=m.uses_mla)
    b.tp_collective("attn.tp_in", t, h, ALL_GATHER)
    heads = m.num_heads / tp
    if m.uses_mla:
        _mla_projections(b, t, heads)
    else:
        qkv = (m.num_heads + 2 * m.num_kv_heads) * m.head_dim / tp
        b.gemm("attn.qkv", t, qkv, h)
        if m.gated_mlp:   # Llama-style models use rotary embeddings; GPT-style ones learned positions
            b.mem("attn.rope", t * (m.num_heads + m.num_kv_heads) * m.head_dim / tp, ROPE_BYTES)
    if p.cp > 1:  # ring attention: K and V of the other CP ranks, gradients back in backward
        if m.uses_mla:
            # MLA exchanges the compressed latent and up-projects the other ranks' keys locally
            kv = 2.0 * (m.kv_lora_rank + m.qk_rope_head_dim)
            n0 = len(b.ops)
            b.gemm("mla.kv_b.cp_remote", t * (p.cp - 1), heads * (m.qk_nope_head_dim + m.v_head_dim),
                   m.kv_lora_rank)
            for op in b.ops[n0:]:
                op.model_flops = 0.0      # duplicated work, not model FLOPs
        else:
            kv = 2.0 * (m.qk_head_dim + m.v_dim) * m.num_kv_heads / tp
        b.coll("attn.cp_kv.F", ALL_GATHER, kv * t * p.cp, p.cp, tp, "cp", "F")
        b.coll("attn.cp_kv.B", REDUCE_SCATTER, 2 * kv * t * p.cp, p.cp, tp, "cp", "B")
    if p.attention != "unfused":
        b.flash_attention(t, heads, m.qk_head_dim, m.v_dim)
    else:
        b.unfused_attention(heads, m.qk_head_dim, m.v_dim)
    b.gemm("attn.out", t, h, heads * m.v_dim)
    b.tp_collective("attn.tp_out", t, h, REDUCE_SCATTER)
    _residual(b, _sp_tokens(b))


def _mla_projections(b: _Builder, t: float, heads: float) -> None:
    """Multi-head latent attention (DeepSeek-V2/V3): low-rank q and compressed kv; up-projections recomputed
    under selective recompute (DeepSeek-V3 §3.2.3)."""
    m, h = b.m, b.m.hidden_size
    qk = m.qk_nope_head_dim + m.qk_rope_head_dim
    if m.q_lora_rank:
        b.gemm("mla.q_a", t, m.q_lora_rank, h, replicated=True)
        b.mem("mla.q_norm", t * m.q_lora_rank, NORM_BYTES, selective=True)
        b.gemm("mla.q_b", t, heads * qk, m.q_lora_rank, selective=True)
    else:
        b.gemm("mla.q", t, heads * qk, h)
    b.gemm("mla.kv_a", t, m.kv_lora_rank + m.qk_rope_head_dim, h, replicated=True)
    b.mem("mla.kv_norm", t * m.kv_lora_rank, NORM_BYTES, selective=True)
    b.gemm("mla.kv_b", t, heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, selective=True)
    b.mem("mla.rope", t * (heads + 1) * m.qk_rope_head_dim, ROPE_BYTES)


def _activation(b: _Builder, name: str, rows: float, inner: float) -> None:
    # SwiGLU reads gate and up, writes one (6 B/elem of `inner`); GeLU reads and writes one (4 B)
    per = (6, 10) if b.m.gated_mlp else (4, 6)
    b.mem(name, rows * inner, per)


def mlp_block(b: _Builder, inner: int, prefix: str = "mlp") -> None:
    """Dense FFN: column-parallel up (gate+up when gated), activation, row-parallel down."""
    m, p = b.m, b.p
    t, tp, h = p.tokens_per_microbatch, p.tp, m.hidden_size
    width = inner / tp
    b.gemm(f"{prefix}.up", t, (2 if m.gated_mlp else 1) * width, h)
    _activation(b, f"{prefix}.act", t, width)
    b.gemm(f"{prefix}.down", t, h, width)


def dense_ffn(b: _Builder, inner: int) -> None:
    t, h = b.p.tokens_per_microbatch, b.m.hidden_size
    b.mem("mlp.norm", _sp_tokens(b) * h, NORM_BYTES, selective=b.m.uses_mla)
    b.tp_collective("mlp.tp_in", t, h, ALL_GATHER)
    mlp_block(b, inner)
    b.tp_collective("mlp.tp_out", t, h, REDUCE_SCATTER)
    _residual(b, _sp_tokens(b))


def moe_ffn(b: _Builder) -> None:
    """Fine-grained MoE: router, dispatch, grouped expert GEMMs, combine; shared experts beside them.

    Parallel folding (Megatron-Core MoE; Liu et al. 2025, arXiv 2504.14960): the experts of a stage are laid out
    over its tp·cp·dp ranks as an etp × ep grid of their own (etp innermost), independent of attention's TP.
    Each GPU routes its own t/tp tokens (sequence-parallel split); an expert-TP group all-gathers the tokens it
    received so each member computes 1/etp of every local expert's width. The most loaded EP rank sets the time
    (moe_balance.py): its expert GEMMs and all-to-all carry `imb` × the mean rows; model FLOPs stay at the mean.
    """
    m, p = b.m, b.p
    t, tp, h = p.tokens_per_microbatch, p.tp, m.hidden_size
    E, topk, inner = m.n_routed_experts, m.num_experts_per_tok, m.moe_intermediate_size
    b.mem("moe.norm", _sp_tokens(b) * h, NORM_BYTES, selective=m.uses_mla)
    b.tp_collective("moe.tp_in", t, h, ALL_GATHER)
    t_route = t / tp                                       # tokens routed by this GPU
    b.gemm("moe.router", t_route, E, h, lowp=False)        # gating stays BF16 (DeepSeek-V3 §3.3)
    b.mem("moe.topk", t_route * E, (8, 8))                # FP32 scores: read and write, both passes
    imb = load_imbalance(t_route * topk * p.etp, p.ep, p.moe_load_imbalance, p.moe_capacity_factor)
    routed = t_route * topk * imb                          # routed copies on the most loaded rank
    # DeepSeek dispatches tokens in FP8 (+ one FP32 scale per 128 values, V3 §3.3); Transformer Engine-era
    # Megatron dispatches BF16 and casts before the expert GEMM
    fp8_dispatch = b.fp8 and p.fp8_recipe == "blockwise"
    disp_bytes = 1.0 + 4 / 128 if fp8_dispatch else 2.0
    b.mem("moe.permute", routed * h, (2 + disp_bytes, 2 + disp_bytes))
    b.all_to_all("moe.dispatch.F", t_route * imb, h, disp_bytes, "F")
    _expert_tp(b, "moe.etp_gather", routed * h * disp_bytes, ALL_GATHER, "F")
    local = E / p.ep
    rows = t_route * topk * p.etp * p.ep / E               # mean tokens per local expert on this GPU
    width = inner / p.etp
    n0 = len(b.ops)
    b.gemm("moe.expert_up", rows * imb, (2 if m.gated_mlp else 1) * width, h, groups=local,
           input_fp8=fp8_dispatch)                         # dispatched in FP8: cast in moe.permute
    _activation(b, "moe.expert_act", rows * imb * local, width)
    b.gemm("moe.expert_down", rows * imb, h, width, groups=local)
    for op in b.ops[n0:]:
        op.model_flops /= imb                              # the excess is waiting, not model work
    _expert_tp(b, "moe.etp_scatter", routed * h * 2.0, REDUCE_SCATTER, "F")
    b.all_to_all("moe.combine.F", t_route * imb, h, 2.0, "F")
    # unpermute reads the k BF16 expert outputs of a token and writes one row: (2k + 2)/k = 2 + 2/k B per copy
    b.mem("moe.unpermute", routed * h, (2 + 2 / topk, 2 + 2 / topk))
    b.all_to_all("moe.dispatch.B", t_route * imb, h, disp_bytes, "B")   # output grads to the experts
    _expert_tp(b, "moe.etp_gather.B", routed * h * 2.0, ALL_GATHER, "B")
    _expert_tp(b, "moe.etp_scatter.B", routed * h * 2.0, REDUCE_SCATTER, "B")
    b.all_to_all("moe.combine.B", t_route * imb, h, 2.0, "B")           # input grads back to the tokens
    if m.n_shared_experts:
        mlp_block(b, m.n_shared_experts * inner, prefix="moe.shared")
    b.tp_collective("moe.tp_out", t, h, REDUCE_SCATTER)
    _residual(b, _sp_tokens(b))


def _expert_tp(b: _Builder, name: str, nbytes_per_rank: float, kind: int, pass_: str) -> None:
    """Expert-TP all-gather / reduce-scatter of the dispatched tokens over etp consecutive ranks."""
    if b.p.etp > 1:
        b.coll(name, kind, nbytes_per_rank * b.p.etp, b.p.etp, 1, "ep", pass_)


def transformer_layer(b: _Builder, kind: str) -> None:
    attention_block(b)
    if kind == "moe":
        moe_ffn(b)
    else:
        dense_ffn(b, b.m.intermediate_size)


def embedding(b: _Builder) -> None:
    t, h = b.p.tokens_per_microbatch, b.m.hidden_size
    b.ops.append(Op("embed.lookup.F", b.unit, "F", MEM, bytes=t * h * 4))
    b.ops.append(Op("embed.grad.W", b.unit, "W", MEM, bytes=t * h * 10))   # scatter-add into FP32 grads
    b.tp_collective("embed.tp", t, h, REDUCE_SCATTER)                      # vocab-parallel embedding


def output_head(b: _Builder, final_norm: bool = True) -> None:
    """Final norm, vocab-parallel logits GEMM (BF16, DeepSeek-V3 §3.3) and cross-entropy."""
    m, p = b.m, b.p
    t, h = p.tokens_per_microbatch, m.hidden_size
    if final_norm:
        b.mem("head.norm", _sp_tokens(b) * h, NORM_BYTES)
    b.tp_collective("head.tp_in", t, h, ALL_GATHER)
    vocab = m.vocab_size / p.tp
    b.gemm("head.logits", t, vocab, h, lowp=False)
    b.mem("head.cross_entropy", t * vocab, CE_BYTES)


def mtp_module(b: _Builder) -> None:
    """One multi-token-prediction depth: norms, 2h→h projection, a transformer block, the shared head."""
    t, h = b.p.tokens_per_microbatch, b.m.hidden_size
    b.ops.append(Op("mtp.embed.F", b.unit, "F", MEM, bytes=t * h * 4))
    b.mem("mtp.norms", 2 * _sp_tokens(b) * h, NORM_BYTES)
    b.gemm("mtp.proj", t, h, 2 * h, replicated=True)
    transformer_layer(b, "moe" if b.m.is_moe else "dense")
    output_head(b)


def pipeline_p2p(b: _Builder) -> None:
    """Activation send to the next stage and gradient send back (scatter-gather over TP: ÷ tp)."""
    p = b.p
    if p.pp == 1:
        return
    size = 2.0 * p.tokens_per_microbatch * b.m.hidden_size / p.tp
    stride = p.tp * p.cp * p.dp
    b.coll("pp.send.F", P2P, size, 2, stride, "pp", "F")
    b.coll("pp.send.B", P2P, size, 2, stride, "pp", "B")


UNIT_BUILDERS = {
    "embed": embedding,
    "dense": lambda b: transformer_layer(b, "dense"),
    "moe": lambda b: transformer_layer(b, "moe"),
    "mtp": mtp_module,
    "head": output_head,
    "p2p": pipeline_p2p,
}


def unit_ops(model: ModelSpec, plan: ParallelPlan, unit: str) -> list[Op]:
    """Ops of one unit kind for one micro-batch, with recompute ops (pass R) added per the plan."""
    b = _Builder(model, plan, unit)
    UNIT_BUILDERS[unit](b)
    ops = b.ops
    if unit in ("dense", "moe", "mtp") and plan.recompute != "none":
        full = plan.recompute == "full"
        again = [o for o in ops if o.pass_ == "F" and (full or o.selective) and not o.per_step]
        # recompute: full on a fraction of the layers (Megatron --recompute-num-layers, torchtitan every k-th
        # layer): per layer on average, that fraction of a forward again
        share = plan.recompute_fraction if full else 1.0
        ops = ops + [_as_recompute(o, share) for o in again]
    return ops


def _as_recompute(op: Op, share: float = 1.0) -> Op:
    return replace(op, name=op.name[:-2] + ".R", pass_="R", model_flops=0.0, flops=op.flops * share,
                   bytes=op.bytes * share, launches=op.launches * share)


def pipeline_units(model: ModelSpec) -> list[str]:
    """The model as a sequence of pipeline units: embedding, layers, MTP blocks, head."""
    return ["embed", *model.layer_kinds(), *(["mtp"] * model.num_nextn_predict_layers), "head"]

"""Forward-only op lists of one GPU for inference: a prefill batch or a decode step.

Built with the training op builder (costsim.ops._Builder: the same GEMM, attention, element-wise and collective
ops the cost kernel prices), forward pass only: no backward, weight-gradient or recompute ops, no cross-entropy,
and no weight casts (FP8 weights are stored in FP8). Both phases are "`new` tokens of each of `seqs` sequences
attend to `context` cached tokens plus themselves"; prefill has new = the uncached prompt, decode new = 1 + the
draft tokens verified per step. What differs:

- MLA (DeepSeek-V2/V3). Prefill up-projects the latent into per-head keys and values (kv_b, also over the cached
  prefix) and runs FlashAttention with qk 192 / v 128. Decode absorbs W_UK into the query and W_UV into the
  output (DeepSeek-V2 §2.1.2, "absorbed" MLA; FlashMLA) and attends in the 512 + 64 latent space: KV read
  B·L·576·bytes per layer, 2·heads·L·(576 + 512) FLOPs per query token.
- MoE dispatch/combine. Prefill: DeepEP normal kernels (node-limited routing, NVLink forwarding; the training
  all-to-all of costsim.ops). Decode across nodes: DeepEP low-latency kernels, every routed copy sent by RDMA
  (hardware.md, DeepEP: "128 tokens, pure RDMA", 39–46 GB/s), see LL_NIC_FRACTION.
- Logits: prefill only for the last token of each sequence; decode for every new token.
GEMMs: FP8 ones as DeepGEMM runs them (no split-K), BF16 ones split K when M·N leaves SMs idle (SPLIT_K);
MLA's q_a and kv_a fused into one GEMM. MoE experts: only those the batch touches are read (experts_touched).
"""
from __future__ import annotations

from functools import lru_cache

from ..fp8 import CAST_BYTES
from ..kernels import P_K_HALF, P_RATE_BF16, REF_FLOP_PER_BYTE, gemm_shape_efficiency, hw_row
from ..model import ModelSpec
from ..moe_balance import load_imbalance
from ..ops import (ADD_BYTES, ALL_REDUCE, ALL_TO_ALL, ATTN_F, COLL, MEM, NORM_BYTES, PRECISION_CODE,
                   ROPE_BYTES, Op, _Builder)
from ..plan import NETWORK
from .lengths import EQUAL
from .plan import KV_DTYPES, ServingPlan, as_parallel_plan

PREFILL, DECODE = "prefill", "decode"

# DeepEP low-latency kernels (hardware.md, "Expert-parallel all-to-all on H800"): 128 tokens, hidden 7168, top-8,
# FP8 dispatch / BF16 combine, pure RDMA: dispatch 163–194 µs, combine 318–369 µs for EP 8–256, i.e. 39–46 GB/s
# per GPU on a 400 Gb/s (50 GB/s) CX7 NIC. Taken as the midpoint 42.5 / 50 = 0.85 of the NIC's line rate
# (assumption: the same fraction on other GPUs' NICs).
LL_NIC_FRACTION = 42.5 / 50.0
FP8_DISPATCH_BYTES = 1.0 + 4.0 / 128      # FP8 + one FP32 scale per 128 values (DeepSeek-V3 §3.3; DeepEP)
SAMPLE_BYTES = 6.0                         # per logit: read BF16, write FP32 probabilities (softmax / top-p)
# Split-K for BF16 GEMMs (cuBLAS / cuBLASLt heuristics split K across CTAs when M·N gives too few tiles to fill
# the SMs — cuBLASLt CUBLASLT_ALGO_CONFIG_SPLITK_NUM; NVIDIA "Matrix Multiplication Background", wave
# quantization): the factor that maximises the kernel's own shape efficiency, each slice at least MIN_SPLIT_K
# deep, partial sums in FP32 written and read back once. FP8 GEMMs (DeepGEMM) are not split: DeepGEMM's M=128,
# N=4096, K=7168 runs at 533 TFLOPS (hardware.md), 1.35× its weight-read time, i.e. wave-limited.
SPLIT_K = (1, 2, 4, 8, 16, 32)
MIN_SPLIT_K = 256   # assumption, not measured: a slice keeps ≥ 4 K-tiles of 64 (CUTLASS's Hopper BF16 tile depth)


def attended_pairs(model: ModelSpec, n: float) -> float:
    """Query–key pairs of causal attention over a sequence of n tokens (ModelSpec.attended_keys per query)."""
    return model.attended_keys(n) * n if n > 0 else 0.0


def keys_per_new_token(model: ModelSpec, new: float, context: float) -> float:
    """Mean keys each of `new` tokens appended after `context` cached ones attends to (causal; windows)."""
    return (attended_pairs(model, context + new) - attended_pairs(model, context)) / new


@lru_cache(maxsize=64)
def _k_half_bf16(hw) -> float:
    """K½ at the BF16 plateau, as the cost kernel derives it (costsim.kernels._op_seconds)."""
    row = hw_row(hw)
    return float(row[P_K_HALF] * row[P_RATE_BF16] / hw.hbm_bw_stream / REF_FLOP_PER_BYTE)


class FwdBuilder(_Builder):
    """_Builder emitting forward ops only; FP8 GEMMs read FP8 weights and cast only their input activation."""

    def __init__(self, model: ModelSpec, splan: ServingPlan, hw, unit: str, lengths=EQUAL):
        super().__init__(model, as_parallel_plan(splan, hw), unit)
        self.s = splan
        self.hw = hw
        self.k_half_bf16 = _k_half_bf16(hw)
        self.lengths = lengths      # prefill prompt-length classes (weight, length / mean): costsim.infer.lengths

    def split_k(self, m: float, n: float, k: float, groups: float) -> int:
        """Split-K factor of a BF16 GEMM (SPLIT_K): the best shape efficiency over the allowed factors."""
        hw = self.hw
        best, best_eff = 1, -1.0
        for s in SPLIT_K:
            if s > 1 and k / s < MIN_SPLIT_K:
                break
            eff = gemm_shape_efficiency(m, n, k / s, groups * s, hw.gemm_tile_m, hw.gemm_tile_n, hw.num_sms,
                                        self.k_half_bf16)
            if eff > best_eff * 1.0001:
                best, best_eff = s, eff
        return best

    def gemm(self, name: str, m: float, n: float, k: float, *, lowp: bool = True, groups: float = 1,
             weight: bool = True, selective: bool = False, replicated: bool = False,
             input_fp8: bool = False) -> None:
        if m <= 0 or groups <= 0:
            return
        prec = PRECISION_CODE["fp8" if (lowp and self.fp8) else "bf16"]
        b_in = 1 if prec == 1 else 2
        flops = 2.0 * m * n * k * groups
        nbytes = groups * ((m * k + k * n) * b_in + m * n * 2)
        split = self.split_k(m, n, k, groups) if prec == 0 else 1
        if split > 1:
            nbytes += groups * m * n * 4.0 * 2 * split          # FP32 partial sums written, then reduced
        self.ops.append(Op(f"{name}.F", self.unit, "F", 0, prec, m, n, k / split, groups * split, flops,
                           flops / self.p.tp if replicated else flops, nbytes))
        if prec == 1 and not input_fp8:   # 1×128-tile activation cast (DeepSeek-V3 §3.3), weights stored FP8
            c = CAST_BYTES["blockwise"]
            self._cast(f"{name}.fp8cast_x.F", "F", m * k * groups * c.act_f, c.launches_act_f)

    def fmem(self, name: str, nbytes: float) -> None:
        if nbytes > 0:
            self.ops.append(Op(f"{name}.F", self.unit, "F", MEM, bytes=nbytes))

    def attention(self, name: str, flops: float, nbytes: float, kv_len: float, d_qk: float,
                  launches: float = 1.0) -> None:
        """One attention kernel: FLOPs at the profile's FlashAttention rate for this KV length and head dim, or
        its bytes at streaming HBM bandwidth, whichever is longer (costsim.kernels). Length classes of one batch
        share one launch (engines run a variable-length kernel over the whole batch)."""
        self.ops.append(Op(name, self.unit, "F", ATTN_F, m=max(kv_len, 1.0), k=d_qk, flops=flops,
                           model_flops=flops, bytes=nbytes, launches=launches))

    def tp_all_reduce(self, name: str, tokens: float) -> None:
        self.coll(f"{name}.F", ALL_REDUCE, 2.0 * tokens * self.m.hidden_size, self.p.tp, 1, "tp", "F")


def _classes(b: FwdBuilder, seqs: float, new: float, context: float):
    """(sequences, new tokens, cached tokens) of each prompt-length class of a prefill batch (b.lengths): a class
    holds its weight of the sequences, and its prompts are `scale` times the mean, uncached share unchanged."""
    return [(seqs * w, new * x, context * x) for w, x in b.lengths]


def _flash_name(k: int) -> str:
    return "attn.flash.F" if k == 0 else f"attn.flash.F.{k}"


def attention_layer(b: FwdBuilder, seqs: float, new: float, context: float, mode: str) -> None:
    m, s = b.m, b.s
    tp, h = s.tp, m.hidden_size
    t = seqs * new
    L = context + new
    keys = keys_per_new_token(m, new, context)
    kvb = KV_DTYPES[s.kv_dtype]
    heads = m.num_heads / tp
    b.fmem("attn.norm", t * h * NORM_BYTES[0])
    if m.uses_mla:
        lat = m.kv_lora_rank + m.qk_rope_head_dim
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            # q_a and kv_a read the same input: one fused GEMM of N = q_lora_rank + 576 (2112 for V3, a shape of
            # DeepGEMM's benchmark table, hardware.md; SGLang's fused_qkv_a_proj_with_mqa)
            b.gemm("mla.qkv_a", t, m.q_lora_rank + lat, h, replicated=True)
            b.fmem("mla.q_norm", t * m.q_lora_rank * NORM_BYTES[0])
            b.gemm("mla.q_b", t, heads * qk, m.q_lora_rank)
        else:
            b.gemm("mla.q", t, heads * qk, h)
            b.gemm("mla.kv_a", t, lat, h, replicated=True)
        b.fmem("mla.kv_norm", t * m.kv_lora_rank * NORM_BYTES[0])
        b.fmem("mla.rope", t * (heads + 1) * m.qk_rope_head_dim * ROPE_BYTES[0])
        b.fmem("mla.kv_write", t * lat * (2 + kvb))          # read the BF16 latent, write the cache entry
        if mode == PREFILL:
            # keys and values up-projected for every token attended, cached prefix included
            b.gemm("mla.kv_b", seqs * L, heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank)
            if context > 0:
                b.fmem("mla.kv_read", seqs * context * lat * kvb)
            width = heads * (qk + m.v_head_dim)          # q·k and p·v per key, all heads
            for k, (s_k, n_k, c_k) in enumerate(_classes(b, seqs, new, context)):
                flops = 2.0 * s_k * n_k * keys_per_new_token(m, n_k, c_k) * width
                io = 2.0 * (s_k * n_k * width + s_k * (c_k + n_k) * width)
                b.attention(_flash_name(k), flops, io, c_k + n_k, qk, launches=1.0 if k == 0 else 0.0)
        else:
            # weight absorption (DeepSeek-V2 §2.1.2; FlashMLA): q_nope·W_UK per head, attention over the latent,
            # output·W_UV per head; both batched GEMMs in BF16 ("BF16 core MLA", serving note)
            b.gemm("mla.q_absorb", t, m.kv_lora_rank, m.qk_nope_head_dim, groups=heads, lowp=False)
            flops = 2.0 * t * keys * heads * (lat + m.kv_lora_rank)
            io = seqs * L * lat * kvb + 2.0 * t * heads * (lat + m.kv_lora_rank)
            b.attention("attn.flashmla.F", flops, io, L, lat)
            b.gemm("mla.v_absorb", t, m.v_head_dim, m.kv_lora_rank, groups=heads, lowp=False)
        b.gemm("attn.out", t, h, heads * m.v_head_dim)
    else:
        kvh = max(1.0, m.num_kv_heads / tp)                    # KV heads replicated when tp > kv heads
        hd = m.head_dim
        b.gemm("attn.qkv", t, (heads + 2 * kvh) * hd, h)
        if m.gated_mlp:
            b.fmem("attn.rope", t * (heads + kvh) * hd * ROPE_BYTES[0])
        b.fmem("attn.kv_write", t * 2 * kvh * hd * (2 + kvb))
        for k, (s_k, n_k, c_k) in enumerate(_classes(b, seqs, new, context) if mode == PREFILL
                                            else ((seqs, new, context),)):
            flops = 2.0 * s_k * n_k * keys_per_new_token(m, n_k, c_k) * heads * 2 * hd
            io = s_k * (c_k + n_k) * 2 * kvh * hd * kvb + 2.0 * s_k * n_k * heads * 2 * hd
            b.attention(_flash_name(k), flops, io, c_k + n_k, hd, launches=1.0 if k == 0 else 0.0)
        b.gemm("attn.out", t, h, heads * hd)
    b.tp_all_reduce("attn.tp", t)
    b.fmem("attn.residual", t * h * ADD_BYTES[0])


def _mlp(b: FwdBuilder, prefix: str, t: float, inner: float) -> None:
    m = b.m
    width = inner / b.s.tp
    b.gemm(f"{prefix}.up", t, (2 if m.gated_mlp else 1) * width, m.hidden_size)
    b.fmem(f"{prefix}.act", t * width * (6 if m.gated_mlp else 4))
    b.gemm(f"{prefix}.down", t, m.hidden_size, width)


def dense_ffn(b: FwdBuilder, t: float) -> None:
    b.fmem("mlp.norm", t * b.m.hidden_size * NORM_BYTES[0])
    _mlp(b, "mlp", t, b.m.intermediate_size)
    b.tp_all_reduce("mlp.tp", t)
    b.fmem("mlp.residual", t * b.m.hidden_size * ADD_BYTES[0])


def experts_touched(copies: float, replicas: float) -> float:
    """Expected share of expert replicas that receive at least one of `copies` routed copies spread uniformly:
    1 − (1 − 1/replicas)^copies (an untouched expert's weights are not read)."""
    if copies <= 0:
        return 0.0
    return 1.0 - (1.0 - 1.0 / replicas) ** copies


def moe_ffn(b: FwdBuilder, t: float, mode: str) -> None:
    """Routed experts over EP (with redundant replicas), shared experts data-parallel beside them."""
    m, s = b.m, b.s
    h, E, topk = m.hidden_size, m.n_routed_experts, m.num_experts_per_tok
    replicas = E + s.redundant_experts
    b.fmem("moe.norm", t * h * NORM_BYTES[0])
    t_route = t / s.tp                                   # TP ranks hold the same tokens: each routes 1/tp
    b.gemm("moe.router", t_route, E, h, lowp=False)      # gating stays BF16 (DeepSeek-V3 §3.3)
    b.fmem("moe.topk", t_route * E * 8)                  # FP32 scores read and written
    # costsim.moe_balance; one EP rank holds every routed copy, so a measured imbalance has nothing to skew
    imb = load_imbalance(t_route * topk, s.ep, s.moe_load_imbalance if s.ep > 1 else None, None)
    routed = t_route * topk * imb                        # copies on the most loaded EP rank
    fp8 = b.fp8
    disp = FP8_DISPATCH_BYTES if fp8 else 2.0
    b.fmem("moe.permute", routed * h * (2 + disp))
    _dispatch(b, "moe.dispatch", t_route, imb, disp, mode)
    local = replicas / s.ep
    copies_group = s.ep * t_route * topk                 # routed copies of the whole EP group
    touched = experts_touched(copies_group, replicas)
    rows = copies_group / replicas * imb / touched if touched > 0 else 0.0   # rows per touched local expert
    groups = local * touched
    n0 = len(b.ops)
    b.gemm("moe.expert_up", rows, (2 if m.gated_mlp else 1) * m.moe_intermediate_size, h, groups=groups,
           input_fp8=fp8)
    b.fmem("moe.expert_act", rows * groups * m.moe_intermediate_size * (6 if m.gated_mlp else 4))
    b.gemm("moe.expert_down", rows, h, m.moe_intermediate_size, groups=groups)
    for op in b.ops[n0:]:
        op.model_flops /= imb
    _dispatch(b, "moe.combine", t_route, imb, 2.0, mode)
    b.fmem("moe.unpermute", routed * h * (2 + 2 / topk))
    if m.n_shared_experts:
        _mlp(b, "moe.shared", t, m.n_shared_experts * m.moe_intermediate_size)
    # TP ranks sum the row-parallel shared expert and exchange their routed tokens' outputs: one all-reduce
    b.tp_all_reduce("moe.tp", t)
    b.fmem("moe.residual", t * h * ADD_BYTES[0])


def _dispatch(b: FwdBuilder, name: str, t_route: float, imb: float, row_bytes: float, mode: str) -> None:
    p = b.p
    if p.ep <= 1:
        return
    across_nodes = p.ranks_per_node(1, p.ep) < p.ep
    if mode == DECODE and across_nodes:
        # DeepEP low-latency: every routed copy is its own RDMA write (no node dedup); priced in cost.py
        nbytes = t_route * imb * b.m.num_experts_per_tok * b.m.hidden_size * row_bytes
        b.ops.append(Op(f"{name}.ll.F", b.unit, "F", COLL, bytes=nbytes, coll=ALL_TO_ALL, tier=NETWORK,
                        lat_steps=1.0, overlap="ep"))
    else:
        b.all_to_all(f"{name}.F", t_route * imb, b.m.hidden_size, row_bytes, "F")


def transformer_layer(b: FwdBuilder, kind: str, seqs: float, new: float, context: float, mode: str) -> None:
    # Attention is data-parallel: below one sequence per rank on average (a rollout round's tail) a rank that
    # still holds one runs its attention and KV read whole, and the step waits for it; the experts see the
    # routed tokens of the whole EP group (the mean).
    attention_layer(b, max(seqs, 1.0) if mode == DECODE and 0 < seqs < 1 else seqs, new, context, mode)
    (moe_ffn(b, seqs * new, mode) if kind == "moe" else dense_ffn(b, seqs * new))


def embedding(b: FwdBuilder, t: float) -> None:
    b.fmem("embed.lookup", t * b.m.hidden_size * 4)
    if b.s.tp > 1:
        b.tp_all_reduce("embed.tp", t)                   # vocab-parallel embedding


def output_head(b: FwdBuilder, t: float) -> None:
    """Final norm, logits (BF16, DeepSeek-V3 §3.3) for `t` tokens, sampling."""
    m = b.m
    vocab = m.vocab_size / b.s.tp
    b.fmem("head.norm", t * m.hidden_size * NORM_BYTES[0])
    b.gemm("head.logits", t, vocab, m.hidden_size, lowp=False)
    b.fmem("head.sample", t * vocab * SAMPLE_BYTES)


def mtp_module(b: FwdBuilder, seqs: float, new: float, context: float, mode: str, logits_tokens: float) -> None:
    """One MTP depth (DeepSeek-V3 §2.2): two norms, the 2h→h projection, a block of the last layer's kind, the
    shared head (here for `logits_tokens` tokens)."""
    m = b.m
    t = seqs * new
    b.fmem("mtp.embed", t * m.hidden_size * 4)
    b.fmem("mtp.norms", 2 * t * m.hidden_size * NORM_BYTES[0])
    b.gemm("mtp.proj", t, m.hidden_size, 2 * m.hidden_size, replicated=True)
    transformer_layer(b, m.layer_kinds()[-1], seqs, new, context, mode)
    output_head(b, logits_tokens)


def forward_units(model: ModelSpec, splan: ServingPlan, hw, seqs: float, new: float, context: float,
                  mode: str, lengths=EQUAL) -> list[tuple[str, float, list[Op]]]:
    """(unit, times it runs, ops of one run) for one prefill batch or one decode step on one GPU.

    Prefill: `new` uncached prompt tokens of each of `seqs` sequences after `context` cached ones; the MTP
    module (when the plan drafts) also runs over them to fill its own KV cache. Decode: `new` = 1 + drafts tokens
    per sequence through the main model, then each draft token by the MTP module, one token per sequence.
    `lengths` (prefill): prompt-length classes around the mean (costsim.infer.lengths); attention is priced per
    class, everything linear in the tokens at the mean."""
    out: list[tuple[str, float, list[Op]]] = []

    def unit(name: str, count: float, fn) -> None:
        if count > 0:
            b = FwdBuilder(model, splan, hw, name, lengths)
            fn(b)
            out.append((name, count, b.ops))

    t = seqs * new
    unit("embed", 1, lambda b: embedding(b, t))
    kinds = model.layer_kinds()
    for kind in ("dense", "moe"):
        unit(kind, kinds.count(kind), lambda b, k=kind: transformer_layer(b, k, seqs, new, context, mode))
    drafts = splan.draft_tokens
    if mode == PREFILL:
        unit("head", 1, lambda b: output_head(b, seqs))
        unit("mtp", 1 if drafts else 0, lambda b: mtp_module(b, seqs, new, context, mode, seqs))
    else:
        unit("head", 1, lambda b: output_head(b, t))
        # the d-th draft attends to the context, the verified tokens and the drafts before it
        unit("mtp", drafts, lambda b: mtp_module(b, seqs, 1.0, context + new, mode, seqs))
    return out

"""Op table: every GEMM, attention kernel, element-wise op and collective of one micro-batch, per GPU.

Each pipeline *unit* (embedding, a dense layer, an MoE layer, an MTP block, the output head) becomes a list
of ops in passes F (forward), B (input gradient), W (weight gradient) and R (recompute before B). Shapes are
per GPU after TP/SP/CP/EP sharding. FLOP conventions: a GEMM is 2·M·N·K; attention forward is
2·s_q·s_kv·heads·(d_qk + d_v), halved when causal (FlashAttention skips masked blocks; formulas.md), and its
backward is 2.5× forward in hardware FLOPs (hardware.md, Attention) but 2× in model FLOPs (PaLM App. B).
Model FLOPs never include recompute.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fp8 import CAST_BYTES, microbatches_per_chunk, weight_cached
from .model import ModelSpec
from .plan import A2A_MIXED, HIERARCHICAL, NVLINK, ParallelPlan

GEMM, ATTN_F, ATTN_B, MEM, COLL = 0, 1, 2, 3, 4
PRECISION_CODE = {"bf16": 0, "fp8": 1}
ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL, P2P = 0, 1, 2, 3, 4

# Bytes moved per element by element-wise kernels (reads + writes, BF16 = 2 B, FP32 = 4 B), forward/backward.
NORM_BYTES = (4, 6)            # y = norm(x): read x, write y | read x and dy, write dx
ADD_BYTES = (6, 6)             # residual add: read two, write one
DROPOUT_ADD_BYTES = (7, 5)     # fused bias-dropout-add: + 1-byte mask (Korthikanti et al. 2022, §4.1)
SOFTMAX_BYTES = (4, 6)         # fused scale-mask-softmax on the s×s scores
ATTN_DROPOUT_BYTES = (5, 5)    # dropout on attention probabilities: read, write, mask
ROPE_BYTES = (4, 4)
CE_BYTES = (6, 6)              # cross-entropy over logits: read BF16, write FP32 | read FP32, write BF16


@dataclass
class Op:
    """One kernel (or a fused group of `launches` kernels) of one micro-batch on one GPU."""
    name: str
    unit: str
    pass_: str
    kind: int
    prec: int = 0
    m: float = 0.0
    n: float = 0.0
    k: float = 0.0
    groups: float = 1.0
    flops: float = 0.0           # hardware FLOPs
    model_flops: float = 0.0     # FLOPs counted for MFU (no recompute, causal attention halved)
    bytes: float = 0.0           # HBM bytes (compute ops) | network wire bytes (collectives)
    bytes2: float = 0.0          # NVLink wire bytes for mixed / hierarchical collectives
    launches: float = 1.0
    coll: int = -1
    tier: int = NVLINK
    lat_steps: float = 0.0
    overlap: str = ""            # collectives: tp | ep | cp | pp | dp
    selective: bool = False      # recomputed under recompute: selective
    per_step: bool = False       # a once-per-step cost spread over the micro-batches; never recomputed


@dataclass
class OpTable:
    ops: list[Op] = field(default_factory=list)

    def arrays(self, config: int = 0) -> dict[str, np.ndarray]:
        """Structure of arrays for the cost kernel; `config` indexes the hardware-parameter row."""
        cols = {
            "kind": ("kind", np.int32), "prec": ("prec", np.int32), "m": ("m", float), "n": ("n", float),
            "k": ("k", float), "groups": ("groups", float), "flops": ("flops", float),
            "bytes": ("bytes", float), "bytes2": ("bytes2", float), "launches": ("launches", float),
            "coll": ("coll", np.int32), "tier": ("tier", np.int32), "lat_steps": ("lat_steps", float)}
        out = {key: np.array([getattr(o, attr) for o in self.ops], dtype=dt) for key, (attr, dt) in cols.items()}
        out["config"] = np.full(len(self.ops), config, dtype=np.int32)
        return out


class _Builder:
    """Appends ops for one unit; `pass_` switches between F and B/W while a layer is described."""

    def __init__(self, model: ModelSpec, plan: ParallelPlan, unit: str):
        self.m, self.p, self.unit = model, plan, unit
        self.ops: list[Op] = []
        self.fp8 = plan.precision == "fp8"

    # -- compute ------------------------------------------------------------------------------------
    def gemm(self, name: str, m: float, n: float, k: float, *, lowp: bool = True, groups: float = 1,
             weight: bool = True, selective: bool = False, replicated: bool = False,
             input_fp8: bool = False) -> None:
        """A linear layer's forward, input-grad and weight-grad GEMMs (M×K · K×N); FP8 if `lowp` and fp8.
        `replicated`: every TP rank computes the same GEMM, so only 1/tp of it counts as model FLOPs.
        `input_fp8`: the forward input arrives already in FP8 (MoE tokens dispatched in FP8: the cast was
        charged in moe.permute), so no forward input cast."""
        prec = PRECISION_CODE["fp8" if (lowp and self.fp8) else "bf16"]
        b_in = 1 if prec == 1 else 2
        shapes = [("F", m, n, k), ("B", m, k, n), ("W" if weight else "B", k, n, m)]
        for pass_, mm, nn, kk in shapes:
            out_bytes = 4 if pass_ == "W" else 2
            flops = 2.0 * mm * nn * kk * groups
            model_flops = flops / self.p.tp if replicated else flops
            self.ops.append(Op(f"{name}.{pass_}", self.unit, pass_, GEMM, prec, mm, nn, kk, groups, flops,
                               model_flops, groups * ((mm * kk + kk * nn) * b_in + mm * nn * out_bytes),
                               selective=selective and pass_ == "F"))
        if prec == 1:
            self._fp8_casts(name, m, n, k, groups, weight, selective, input_fp8)

    def _fp8_casts(self, name: str, m: float, n: float, k: float, groups: float, weight: bool,
                   selective: bool, input_fp8: bool = False) -> None:
        """The casts around one FP8 GEMM under the plan's recipe (costsim/fp8.py): the input X (m×k) in forward
        and, where the recipe re-casts it, in backward; the output gradient dY (m×n) in backward; the weight W
        (k×n) once per step when its FP8 copies are cached, else every micro-batch. A GEMM without weight
        (`weight=False`) takes no weight cast."""
        c = CAST_BYTES[self.p.fp8_recipe]
        x, dy, w = m * k * groups, m * n * groups, k * n * groups
        if not input_fp8:
            self._cast(f"{name}.fp8cast_x.F", "F", x * c.act_f, c.launches_act_f, selective=selective)
        self._cast(f"{name}.fp8cast_x.B", "B", x * c.act_b, c.launches_act_b)
        self._cast(f"{name}.fp8cast_dy.B", "B", dy * c.grad_b, c.launches_grad_b)
        if not weight:
            return
        if weight_cached(self.p):   # cast on the chunk's first micro-batch of the step, reused by the others
            share = 1.0 / microbatches_per_chunk(self.p)
            self._cast(f"{name}.fp8cast_w.F", "F", w * c.w_f * share, c.launches_w_f * share, per_step=True)
        else:
            self._cast(f"{name}.fp8cast_w.F", "F", w * c.w_f, c.launches_w_f, selective=selective)
            self._cast(f"{name}.fp8cast_w.B", "B", w * c.w_b, c.launches_w_b)

    def _cast(self, name: str, pass_: str, nbytes: float, launches: float, *, selective: bool = False,
              per_step: bool = False) -> None:
        if nbytes > 0:
            self.ops.append(Op(name, self.unit, pass_, MEM, bytes=nbytes, launches=launches,
                               selective=selective and pass_ == "F", per_step=per_step))

    def mem(self, name: str, elements: float, per_elem: tuple[float, float], *, selective: bool = False) -> None:
        """A memory-bound element-wise kernel over `elements` values, forward and backward."""
        fwd, bwd = per_elem
        self.ops.append(Op(f"{name}.F", self.unit, "F", MEM, bytes=elements * fwd, selective=selective))
        if bwd:
            self.ops.append(Op(f"{name}.B", self.unit, "B", MEM, bytes=elements * bwd))

    def flash_attention(self, tokens_q: float, heads: float, d_qk: int, d_v: int) -> None:
        s = self.p.seq_len
        # causal: half the score matrix; a sliding window attends to fewer keys (ModelSpec.attended_keys)
        fwd = 2.0 * tokens_q * self.m.attended_keys(s) * heads * (d_qk + d_v)
        io = 2.0 * tokens_q * heads * (2 * d_qk + 2 * d_v) + 2.0 * s * heads * (d_qk + d_v) / self.p.cp
        seq_eff = s / self.p.cp
        # k carries the query/key head dimension: the kernel's rate depends on it (kernels.head_dim_factor)
        self.ops.append(Op("attn.flash.F", self.unit, "F", ATTN_F, m=seq_eff, k=d_qk, flops=fwd, model_flops=fwd,
                           bytes=io))
        self.ops.append(Op("attn.flash.B", self.unit, "B", ATTN_B, m=seq_eff, k=d_qk, flops=2.5 * fwd,
                           model_flops=2.0 * fwd, bytes=2.5 * io))

    def unfused_attention(self, heads: float, d_qk: int, d_v: int) -> None:
        """QKᵀ, softmax, dropout, AV as separate kernels over the full s×s scores (Megatron 2021)."""
        b, s, cp = self.p.micro_batch_size, self.p.seq_len, self.p.cp
        sq = s / cp
        g = b * heads
        n0 = len(self.ops)
        self.gemm("attn.qk", sq, s, d_qk, lowp=False, groups=g, weight=False, selective=True)
        self.gemm("attn.av", sq, d_v, s, lowp=False, groups=g, weight=False, selective=True)
        # causal: the model needs only half of the score FLOPs (PaLM App. B), the kernels do all of them
        for op in self.ops[n0:]:
            op.model_flops = op.flops / 2
        scores = g * sq * s
        self.mem("attn.softmax", scores, SOFTMAX_BYTES, selective=True)
        if self.m.dropout > 0:
            self.mem("attn.dropout", scores, ATTN_DROPOUT_BYTES, selective=True)

    # -- communication ------------------------------------------------------------------------------
    def coll(self, name: str, kind: int, size_bytes: float, n: int, stride: int, overlap: str,
             pass_: str) -> None:
        """A collective over `n` ranks at rank `stride`: wire bytes per GPU by nccl-tests' factors."""
        if n <= 1 or size_bytes <= 0:
            return
        tier = self.p.tier(stride, n)
        factor = {ALL_REDUCE: 2.0 * (n - 1) / n, ALL_GATHER: (n - 1) / n, REDUCE_SCATTER: (n - 1) / n,
                  P2P: 1.0}[kind]
        steps = {ALL_REDUCE: 2.0 * (n - 1), P2P: 1.0}.get(kind, n - 1.0)
        net, nvl = factor * size_bytes, 0.0
        if tier == NVLINK:
            net, nvl = 0.0, factor * size_bytes
        elif tier == HIERARCHICAL:  # formulas.md: hierarchical = in-node phase + cross-node on S/k
            k = self.p.ranks_per_node(stride, n)
            nodes = n // k
            f = 2.0 if kind == ALL_REDUCE else 1.0
            nvl = f * (k - 1) / k * size_bytes
            net = f * (nodes - 1) / nodes * size_bytes / k
            steps = f * ((k - 1) + (nodes - 1))
        self.ops.append(Op(name, self.unit, pass_, COLL, bytes=net, bytes2=nvl, coll=kind, tier=tier,
                           lat_steps=steps, overlap=overlap))

    def tp_collective(self, name: str, tokens: float, width: int, fwd_kind: int) -> None:
        """Megatron's f/g pair: forward all-reduce (or SP all-gather/reduce-scatter) and its mirror."""
        p = self.p
        if p.tp == 1:
            return
        size = 2.0 * tokens * width
        if p.sequence_parallel:
            bwd_kind = REDUCE_SCATTER if fwd_kind == ALL_GATHER else ALL_GATHER
            self.coll(f"{name}.F", fwd_kind, size, p.tp, 1, "tp", "F")
            self.coll(f"{name}.B", bwd_kind, size, p.tp, 1, "tp", "B")
        elif fwd_kind == REDUCE_SCATTER:  # without SP: all-reduce after the row-parallel GEMM ...
            self.coll(f"{name}.F", ALL_REDUCE, size, p.tp, 1, "tp", "F")
        else:                             # ... and all-reduce of the input gradient of the column-parallel one
            self.coll(f"{name}.B", ALL_REDUCE, size, p.tp, 1, "tp", "B")

    def all_to_all(self, name: str, tokens: float, width: int, bytes_per: float, pass_: str) -> None:
        """EP dispatch/combine of `tokens`×top-k rows (formulas.md: share (n−k)/n crosses the NICs)."""
        m, p = self.m, self.p
        ep, topk = p.ep, m.num_experts_per_tok
        if ep <= 1:
            return
        stride = p.etp            # parallel folding: the EP group of a stage sits at stride etp (layers.moe_ffn)
        k_node = p.ranks_per_node(stride, ep)
        nodes = max(1, ep // k_node)
        row = width * bytes_per
        total = tokens * topk * row
        if nodes == 1:
            net, nvl, tier = 0.0, total * (ep - 1) / ep, NVLINK
        else:
            if m.n_group and m.topk_group:
                # node-limited routing + one copy per node, forwarded on NVLink (DeepSeek-V3 §3.2.2, DeepEP)
                distinct = min(nodes * (1 - (1 - 1 / nodes) ** topk), m.topk_group * nodes / m.n_group
                               if m.n_group >= nodes else m.topk_group)
                net = tokens * row * distinct * (nodes - 1) / nodes
            else:
                net = total * (ep - k_node) / ep
            nvl = total * (k_node - 1) / k_node
            tier = A2A_MIXED
        self.ops.append(Op(name, self.unit, pass_, COLL, bytes=net, bytes2=nvl, coll=ALL_TO_ALL, tier=tier,
                           lat_steps=ep - 1.0, overlap="ep"))

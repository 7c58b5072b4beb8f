"""Inference cost of one serving instance: a prefill batch, a decode step, and the decode batch a per-request
speed target allows.

Each phase becomes forward-only op lists per GPU (forward.py) priced by the training cost kernel
(costsim.kernels.op_seconds: shape-aware roofline GEMMs, so small-M decode GEMMs are weight-read bound;
FlashAttention curve or KV bytes at streaming HBM bandwidth, whichever is longer; α–β collectives). Per unit
(layer kind), communication is either exposed (added) or, with `overlap_comm`, hidden behind compute:
the batch runs as two micro-batches (every kernel and weight read twice, OVERLAP_MICROBATCHES) and a layer
takes max(compute + overlap_slowdown·min(compute, comm), comm) — DeepSeek's dual micro-batch prefill and
5-stage decode pipeline (serving note, reference deepseek-r1-and-inference.md §4); the fitted overlap_slowdown
charges the SMs and HBM the communication kernels take from compute (costsim.efficiency). TP collectives stay
exposed. With `comm_sms` > 0 the cost is explicit instead, as in training (costsim.estimate): the overlapped
all-to-all kernels hold that many SMs, so every compute kernel of the overlapped batch runs on the rest (the
GEMM library is told its SM count once — DeepGEMM's set_num_sms — not kernel by kernel) and overlap_slowdown
is not charged as well. DeepEP's normal kernels (prefill) take SMs; its low-latency kernels (decode) hold none
(their RDMA runs in the background, hardware.md "Expert-parallel all-to-all").
All data-parallel ranks run the same batch (balanced), so one GPU's time is the instance's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from ..efficiency import Efficiency
from ..errors import PlanError
from ..hardware import HardwareProfile
from ..kernels import hw_row, op_seconds
from ..model import ModelSpec
from ..ops import ALL_REDUCE, COLL, OpTable
from ..plan import NVLINK
from .forward import DECODE, LL_NIC_FRACTION, PREFILL, forward_units
from .lengths import EQUAL, MAX_SIGMA, prompt_classes
from .memory import kv_bytes_per_token, max_decode_batch  # noqa: F401  (part of this module's API)
from .memory import kv_budget_bytes, kv_bytes_per_token_gpu, weight_bytes_per_gpu
from .plan import ServingPlan, check_serving_plan

# Prefill batch when none is given: enough whole sequences per DP rank for 4096 computed tokens, the batch of
# DeepEP's normal (prefill) kernel benchmarks on H800 (hardware.md, "Expert-parallel all-to-all": 4096 tokens per
# batch). DeepSeek does not publish its prefill batch: an assumption.
DEFAULT_PREFILL_TOKENS = 4096
# Overlap splits the batch into two micro-batches, one computing while the other's all-to-all runs (DeepSeek's
# serving note, reference §4: dual micro-batch prefill, and the decode 5-stage pipeline, also over two
# micro-batches, deepseek-ai/profile-data). Each micro-batch runs every kernel — and reads every weight — again.
OVERLAP_MICROBATCHES = 2


@dataclass
class InferCost:
    seconds: float              # wall time of the batch / step (every GPU of the instance in parallel)
    tokens: float               # tokens produced (decode) or processed, cached included (prefill), whole instance
    flops: float                # hardware FLOPs, whole instance
    hbm_bytes: float            # HBM bytes of the compute ops, whole instance
    comm_s: float               # communication time per GPU (exposed or not)
    compute_s: float = 0.0      # compute time per GPU
    exposed_comm_s: float = 0.0 # communication left on the critical path
    model_flops: float = 0.0    # FLOPs without the MoE imbalance excess, whole instance
    gpus: int = 1
    seqs_per_gpu: float = 0.0   # sequences per GPU (a TP group's sequences ÷ tp)
    by_unit: dict[str, float] = field(default_factory=dict)   # seconds per unit kind (all its layers)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens / self.seconds / self.gpus


@dataclass
class DecodePoint:
    batch_per_gpu: float                 # sequences per GPU (a TP group's whole sequences ÷ tp)
    step_s: float
    tokens_per_s_per_gpu: float
    tokens_per_s_per_request: float
    max_batch_per_gpu: float = 0.0       # the memory limit at this context length
    limited_by: str = "memory"           # memory | speed | too-slow (even one sequence misses the target)
    cost: InferCost | None = None


@lru_cache(maxsize=64)
def _row(hw: HardwareProfile, eff: Efficiency, comm_sms: int = 0):
    # the same hardware row training uses (estimate.unit_costs), less the SMs communication holds
    row = hw_row(hw, sm_frac=1.0 - comm_sms / hw.num_sms, derate=eff.compute_derate,
                 overhead_s=eff.kernel_overhead_s, attention="flash")
    row.setflags(write=False)
    return row


def ll_seconds(hw: HardwareProfile, nbytes: float) -> float:
    """DeepEP low-latency dispatch/combine: one network latency (all RDMA writes in flight together) plus the
    bytes at LL_NIC_FRACTION of the NIC line rate (forward.py)."""
    return hw.net_latency_s + nbytes / (LL_NIC_FRACTION * hw.net_bw_per_gpu)


def custom_all_reduce_seconds(hw: HardwareProfile, size_bytes: float, n: int) -> float:
    """An all-reduce of `size_bytes` per rank over `n` GPUs of one node as inference engines run it for small
    messages (vLLM's custom_all_reduce, SGLang's and TensorRT-LLM's one-shot / two-shot AllReduce): ranks signal
    each other through flags in peer memory and read their peers' buffers over NVLink P2P, so a call costs a
    barrier latency per phase plus the bytes, not NCCL's 2(n−1) ring steps of latency.
    - one-shot: barrier, read the (n−1) peers' whole buffers and sum, barrier: 2 latencies + (n−1)·S;
    - two-shot: reduce-scatter then all-gather by P2P reads, 3 barriers: 3 latencies + 2(n−1)/n·S;
    whichever is faster (engines switch by message size). Bytes at the profile's NVLink all-to-all busbw (every
    GPU reading from every peer through the NVSwitch), barriers at its NVLink latency (ISCA '25 Table 5, 3.33 µs
    for 64 B)."""
    if n <= 1 or size_bytes <= 0:
        return 0.0
    lat, bw = hw.nvlink_latency_s, hw.nvlink_busbw["all_to_all"]
    one_shot = 2.0 * lat + (n - 1) * size_bytes / bw
    two_shot = 3.0 * lat + 2.0 * (n - 1) / n * size_bytes / bw
    return min(one_shot, two_shot)


def _evaluate(model: ModelSpec, hw: HardwareProfile, plan: ServingPlan, eff: Efficiency, seqs: float, new: float,
              context: float, mode: str, tokens: float, lengths=EQUAL) -> InferCost:
    check_serving_plan(model, hw, plan)
    # overlap needs two micro-batches to alternate: prefill splits the batch's tokens (a long prompt in two
    # chunks); decode splits sequences, so with a single sequence its communication stays exposed
    overlap = plan.overlap_comm and (mode == PREFILL or seqs >= OVERLAP_MICROBATCHES)
    mb = OVERLAP_MICROBATCHES if overlap else 1
    units = [(name, count * mb, uops) for name, count, uops in forward_units(model, plan, hw, seqs / mb, new,
                                                                               context, mode, lengths)]
    ops = [o for _, _, uops in units for o in uops]
    # SMs held by communication only while it overlaps compute; then its cost is those SMs, not the fitted slowdown.
    # DeepEP's low-latency kernels (decode across nodes) hold none, whatever the instance states.
    # Nor are SMs held where there is no expert all-to-all to overlap (a dense model, ep 1).
    low_latency = any(o.name.endswith(".ll.F") for o in ops)
    has_ep = any(o.kind == COLL and o.overlap == "ep" for o in ops)
    comm_sms = plan.comm_sms if overlap and has_ep and not low_latency else 0
    slowdown = 0.0 if comm_sms else eff.overlap_slowdown
    secs = op_seconds(OpTable(ops).arrays(), _row(hw, eff, comm_sms)).tolist()
    custom_ar = plan.custom_all_reduce and plan.tp > 1
    i = 0
    total = compute_all = comm_all = exposed_all = flops = mflops = hbm = 0.0
    by_unit: dict[str, float] = {}
    for name, count, uops in units:
        compute = ep = tp = 0.0
        for op in uops:
            t = secs[i]
            i += 1
            if op.kind == COLL:
                if op.name.endswith(".ll.F"):
                    t = ll_seconds(hw, op.bytes)
                elif custom_ar and op.coll == ALL_REDUCE and op.tier == NVLINK and op.overlap == "tp":
                    # the builder's bytes2 is the ring's wire bytes 2(n−1)/n·S: back to the buffer S
                    size = op.bytes2 / (2.0 * (plan.tp - 1) / plan.tp)
                    t = min(t, custom_all_reduce_seconds(hw, size, plan.tp))
                if op.overlap == "ep":
                    ep += t
                else:
                    tp += t
            else:
                compute += t
                hbm += count * op.bytes
            flops += count * op.flops
            mflops += count * op.model_flops
        if overlap:
            t_unit = max(compute + slowdown * min(compute, ep), ep) + tp
        else:
            t_unit = compute + ep + tp
        by_unit[name] = count * t_unit
        total += count * t_unit
        compute_all += count * compute
        comm_all += count * (ep + tp)
        exposed_all += count * (t_unit - compute)
    g = plan.gpus
    return InferCost(seconds=total, tokens=tokens, flops=flops * g, hbm_bytes=hbm * g, comm_s=comm_all,
                     compute_s=compute_all, exposed_comm_s=exposed_all, model_flops=mflops * g, gpus=g,
                     seqs_per_gpu=seqs / plan.tp, by_unit=by_unit)


def prefill(model: ModelSpec, hw: HardwareProfile, plan: ServingPlan, eff: Efficiency, prompt_tokens: float,
            cached_tokens: float = 0.0, seqs_per_gpu: float = 1, prompt_sigma: float = 0.0) -> InferCost:
    """One prefill batch through the instance: `seqs_per_gpu` sequences per GPU (a TP group holds tp× that) of
    `prompt_tokens` each, the first `cached_tokens` of which come from the KV cache: attention over all
    prompt_tokens keys, everything else only for the uncached tokens (at least one: the logits need it).
    `prompt_sigma` > 0: prompts of a lognormal spread around that mean (log-sd), each with the same cached share;
    attention is priced per length class (costsim.infer.lengths), the rest is linear in the tokens.
    `tokens` counts the whole prompts, cached tokens included (DeepSeek's metric)."""
    if (prompt_tokens <= 0 or cached_tokens < 0 or cached_tokens > prompt_tokens or seqs_per_gpu <= 0
            or not 0 <= prompt_sigma <= MAX_SIGMA):
        raise PlanError(f"prefill: need prompt_tokens > 0, 0 ≤ cached_tokens ≤ prompt_tokens, seqs_per_gpu > 0 and "
                        f"0 ≤ prompt_sigma ≤ {MAX_SIGMA:g} (got {prompt_tokens}, {cached_tokens}, {seqs_per_gpu}, "
                        f"{prompt_sigma})")
    if prompt_tokens > model.max_position_embeddings:
        raise PlanError(f"prefill: a {prompt_tokens:,.0f}-token prompt is longer than {model.name}'s context of "
                        f"{model.max_position_embeddings:,} tokens")
    new = max(prompt_tokens - cached_tokens, 1.0)
    context = prompt_tokens - new
    seqs = seqs_per_gpu * plan.tp
    return _evaluate(model, hw, plan, eff, seqs, new, context, PREFILL,
                     tokens=seqs_per_gpu * plan.gpus * prompt_tokens,
                     lengths=prompt_classes(prompt_sigma, model.max_position_embeddings / prompt_tokens))


def decode_step(model: ModelSpec, hw: HardwareProfile, plan: ServingPlan, eff: Efficiency, batch_per_gpu: float,
                context_tokens: float) -> InferCost:
    """One decode step: each of the batch's sequences (batch_per_gpu per GPU; a TP group holds tp× that) runs
    1 + draft tokens through the main model against `context_tokens` cached ones and the MTP module once per
    draft, and emits plan.mtp_tokens tokens on average. Weights (the GPU's share, experts only where the batch
    touches them) and the KV cache are read once per step."""
    if batch_per_gpu <= 0 or context_tokens < 0:
        raise PlanError(f"decode_step: need batch_per_gpu > 0 and context_tokens ≥ 0 (got {batch_per_gpu}, "
                        f"{context_tokens})")
    seqs = batch_per_gpu * plan.tp
    return _evaluate(model, hw, plan, eff, seqs, 1.0 + plan.draft_tokens, context_tokens, DECODE,
                     tokens=batch_per_gpu * plan.gpus * plan.mtp_tokens)


def _point(model, hw, plan, eff, seqs_rank: int, context: float, limit: str, max_b: float) -> DecodePoint:
    c = decode_step(model, hw, plan, eff, seqs_rank / plan.tp, context)
    b = seqs_rank / plan.tp
    return DecodePoint(b, c.seconds, c.tokens_per_s_per_gpu, plan.mtp_tokens / c.seconds, max_b, limit, c)


def max_seqs_per_rank(model: ModelSpec, hw: HardwareProfile, plan: ServingPlan, context_tokens: float) -> int:
    """Whole sequences one DP rank (TP group) can hold at this context length."""
    return int(round(max_decode_batch(model, hw, plan, context_tokens) * plan.tp))


# Decode throughput is not monotone in the batch: GEMM tiles and waves quantise (a batch just past a tile edge
# runs a mostly empty extra tile, and past a wave edge a mostly empty extra wave), so below the largest batch
# the limits allow a smaller one can give more tokens/s. Within a stretch between two edges throughput rises
# with the batch, so the best batch is the largest allowed one or one that just fills a tile: those are tried
# (scan_batches) — the NEAR_SCAN batches below the limit, and every batch whose tokens per micro-batch fill whole
# row tiles of the GEMMs (dense and shared layers; the routed experts' rows per expert for MoE).
NEAR_SCAN = 64


def scan_batches(model: ModelSpec, hw: HardwareProfile, plan: ServingPlan, lo: int) -> list[int]:
    """Whole sequences per TP group worth trying at or below `lo` (NEAR_SCAN above): largest first."""
    new = 1.0 + plan.draft_tokens
    mb = OVERLAP_MICROBATCHES if plan.overlap_comm else 1
    rows_per_seq = [new / mb]                                   # M of the attention / dense / shared GEMMs
    if model.is_moe:                                           # rows of one expert, balanced routing
        replicas = model.n_routed_experts + plan.redundant_experts
        rows_per_seq.append(new / mb / plan.tp * model.num_experts_per_tok * plan.ep / replicas)
    out = set(range(max(1, lo - NEAR_SCAN + 1), lo + 1))
    for r in rows_per_seq:
        k = 1
        while True:
            n = math.floor(k * hw.gemm_tile_m / r + 1e-9)      # the largest batch whose rows fit k tiles
            if n > lo:
                break
            if n >= 1:
                out.add(n)
            k += 1
    return sorted(out, reverse=True)


def decode_for_speed(model: ModelSpec, hw: HardwareProfile, plan: ServingPlan, eff: Efficiency,
                     context_tokens: float, tokens_per_s_per_request: float | None) -> DecodePoint:
    """The batch per GPU with the most tokens/s per GPU among those that meet the per-request speed
    (step_s ≤ mtp_tokens / target) and fit in memory. No target: memory alone limits. A target even one sequence
    misses: one sequence per DP rank, limited_by "too-slow". Step time grows with the batch (more tokens, more
    KV), so the largest allowed batch is found by binary search (limited_by "speed" or "memory"); a smaller one
    that fills GEMM tiles better is found among scan_batches (limited_by "tiles")."""
    check_serving_plan(model, hw, plan)
    n_max = max_seqs_per_rank(model, hw, plan, context_tokens)
    if n_max < 1:
        raise PlanError(f"decode: {model.name} leaves no room for the KV cache of one {context_tokens:.0f}-token "
                        f"sequence on {hw.name} with tp={plan.tp}, ep={plan.ep} ({plan.precision} weights "
                        f"{weight_bytes_per_gpu(model, plan) / 2**30:.1f} GiB per GPU)")
    max_b = n_max / plan.tp
    limit_s = None if tokens_per_s_per_request is None else plan.mtp_tokens / tokens_per_s_per_request

    def ok(n: int) -> bool:
        return decode_step(model, hw, plan, eff, n / plan.tp, context_tokens).seconds <= limit_s

    if limit_s is None or ok(n_max):
        lo, limit = n_max, "memory"
    elif not ok(1):
        return _point(model, hw, plan, eff, 1, context_tokens, "too-slow", max_b)
    else:
        lo, hi, limit = 1, n_max, "speed"      # ok(lo), not ok(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    best = _point(model, hw, plan, eff, lo, context_tokens, limit, max_b)
    for n in scan_batches(model, hw, plan, lo)[1:]:
        pt = _point(model, hw, plan, eff, n, context_tokens, "tiles", max_b)
        if pt.tokens_per_s_per_gpu > best.tokens_per_s_per_gpu * (1 + 1e-12) and (limit_s is None
                                                                                 or pt.step_s <= limit_s):
            best = pt
    return best


def default_prefill_seqs(plan: ServingPlan, prompt_tokens: float, cache_hit: float) -> float:
    """Sequences per GPU for DEFAULT_PREFILL_TOKENS computed tokens per DP rank (whole sequences per rank)."""
    computed = max(prompt_tokens * (1.0 - cache_hit), 1.0)
    return max(1, math.ceil(DEFAULT_PREFILL_TOKENS / computed - 1e-9)) / plan.tp


def prefill_throughput(model: ModelSpec, hw: HardwareProfile, plan: ServingPlan, eff: Efficiency,
                       prompt_tokens: float, cache_hit: float, seqs_per_gpu: float | None = None,
                       prompt_sigma: float = 0.0) -> float:
    """Input tokens/s per GPU in prefill, cached tokens counted (DeepSeek's metric). `cache_hit`: share of each
    prompt served from the KV cache. seqs_per_gpu None: default_prefill_seqs. prompt_sigma: see prefill()."""
    if not 0.0 <= cache_hit <= 1.0:
        raise PlanError(f"prefill_throughput: cache_hit={cache_hit} must lie in [0, 1]")
    seqs = default_prefill_seqs(plan, prompt_tokens, cache_hit) if seqs_per_gpu is None else seqs_per_gpu
    return prefill(model, hw, plan, eff, prompt_tokens, prompt_tokens * cache_hit, seqs,
                   prompt_sigma).tokens_per_s_per_gpu


__all__ = ["DecodePoint", "InferCost", "decode_for_speed", "decode_step", "kv_bytes_per_token", "kv_budget_bytes",
           "kv_bytes_per_token_gpu", "max_decode_batch", "prefill", "prefill_throughput", "weight_bytes_per_gpu"]

"""Once-per-step and per-micro-batch data-parallel costs: gradient reduction, ZeRO/FSDP parameter gathers, and
the optimizer step.

Groups (rank order tp → cp → dp within a stage, Megatron's default): dense parameters are replicated over the
dp·cp ranks at stride tp; routed experts over the expert-data-parallel ranks tp·cp·dp / (ep·etp) at stride
ep·etp (Megatron-Core MoE parallel folding). ZeRO shards over `zero_shard_size` of those ranks (all of them by
default); smaller = HSDP: shard inside the group, all-reduce the gradient shards across the groups
(PyTorch FSDP HYBRID_SHARD; Zhao et al. 2023, "PyTorch FSDP", §3.2).

When each piece runs (the exposure itself is in schedule.py):
- ZeRO-0/1/2: gradients are reduced in buckets as the last micro-batch's backward produces them; Megatron-Core
  sizes a bucket max(40M, 1M·dp) parameters (megatron/core/distributed/distributed_data_parallel_config.py,
  `bucket_size`), so the last bucket is exposed. ZeRO-1/2 all-gather the updated parameters afterwards, bucket by
  bucket ahead of the next step's forward (--overlap-param-gather).
- ZeRO-3 (FSDP): every micro-batch all-gathers each layer's parameters before its forward and again before its
  backward (reshard after forward), prefetching the next layer; gradients are reduce-scattered layer by layer in
  the backward (FSDP paper §3.3–3.4). `zero3_gather_once` keeps the gathered parameters for the whole step:
  one gather before the first forward, one reduce-scatter after the last backward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .kernels import hw_row, op_seconds
from .memory import GRAD_BYTES, MASTER_BYTES, MOMENT_BYTES, WEIGHT_BYTES, gpu_params, grad_bytes
from .ops import ALL_GATHER, ALL_REDUCE, MEM, REDUCE_SCATTER, Op, OpTable, _Builder

OPTIMIZER_LAUNCHES = 10   # assumption: multi-tensor-apply kernels (norm, scale, Adam, copy, zero) over a handful
                          # of chunks; only multiplies the fitted per-kernel overhead
BUCKET_PARAMS = 40e6      # Megatron-Core DDP bucket: max(40M, 1M·dp) parameters (see module docstring)
LAYER_UNITS = ("dense", "moe", "mtp")

# Optimizer step, bytes per parameter of the local shard (HBM reads + writes), as Megatron-Core runs it:
GRAD_NORM_BYTES = GRAD_BYTES               # multi_tensor_l2norm reads every FP32 gradient
CLIP_BYTES = 2 * GRAD_BYTES                # multi_tensor_scale by the clip coefficient: read and write
MASTER_COPY_BYTES = MASTER_BYTES + WEIGHT_BYTES   # FP32 master → BF16 model weight (_copy_main_params_to_model)


def adam_bytes(moment: int) -> float:
    """Adam: read/write the FP32 master and both moments, read the FP32 gradient."""
    return 2 * MASTER_BYTES + GRAD_BYTES + 2 * moment


@dataclass
class RankStep:
    """One pipeline rank's data-parallel and optimizer costs, before overlap."""
    grad: float = 0.0            # per step: gradient reduction after the last backward
    grad_pieces: float = 1.0     # buckets (or layers) it is issued in
    gather: float = 0.0          # per step: parameter all-gather (ZeRO-1/2 after the update; gather-once ZeRO-3)
    gather_pieces: float = 1.0
    update: float = 0.0          # grad norm, clip, Adam, master copy, zeroing the gradient buffer
    zero: dict = field(default_factory=dict)   # per micro-batch ZeRO-3 comm {(pass, "zero"): s}
    zero_pieces: float = 1.0     # layers on the rank: the prefetch granularity of ZeRO-3 gathers


def _groups(p, dense: float, expert: float) -> list[tuple[float, int, int, int, int]]:
    """(params, shard size, shard stride, replicas, replica stride) for dense and expert parameters."""
    out = []
    for params, size, stride in ((dense, p.dp * p.cp, p.tp),
                                 (expert, p.tp * p.cp * p.dp // (p.ep * p.etp), p.ep * p.etp)):
        if params <= 0:
            continue
        shard = min(size, p.zero_shard_size or size)
        out.append((params, shard, stride, max(1, size // shard), stride * shard))
    return out


def _rank_ops(b: _Builder, dense: float, expert: float):
    """(grad, gather, zero-3 per micro-batch) collectives of one rank."""
    p = b.p
    z = p.zero_stage
    gb = grad_bytes(p)
    grad, gather, z3 = [], [], []

    def add(target, name, kind, nbytes, size, stride, pass_):
        n0 = len(b.ops)
        b.coll(name, kind, nbytes, size, stride, "zero", pass_)
        target.extend(b.ops[n0:])

    for params, shard, stride, replicas, rstride in _groups(p, dense, expert):
        if z == 0:
            add(grad, "dp.all_reduce", ALL_REDUCE, params * gb, shard * replicas, stride, "O")
            continue
        per_mb = z == 3 and not p.zero3_gather_once
        if per_mb:
            add(z3, "zero3.gather.F", ALL_GATHER, params * WEIGHT_BYTES, shard, stride, "F")
            add(z3, "zero3.gather.B", ALL_GATHER, params * WEIGHT_BYTES, shard, stride, "B")
            add(z3, "zero3.reduce_scatter.B", REDUCE_SCATTER, params * gb, shard, stride, "B")
        else:
            add(grad, "dp.reduce_scatter", REDUCE_SCATTER, params * gb, shard, stride, "O")
            add(gather, "dp.all_gather", ALL_GATHER, params * WEIGHT_BYTES, shard, stride, "O")
        # HSDP: the gradient shards are all-reduced across the replica groups once per step
        add(grad, "hsdp.all_reduce", ALL_REDUCE, params / shard * gb, replicas, rstride, "O")
    return grad, gather, z3


def dp_and_optimizer(model, hw, plan, eff, chunk_units, per_rank, sc) -> list[RankStep]:
    """Per pipeline rank: gradient reduction, parameter gathers, ZeRO-3 per-micro-batch comm, optimizer."""
    row = hw_row(hw, derate=eff.compute_derate, overhead_s=eff.kernel_overhead_s)
    moment = MOMENT_BYTES[sc.optimizer.moment_dtype]
    out = []
    for chs in per_rank:
        units = [u for c in chs for u in chunk_units[c]]
        # memoised on what a rank's step reads (`costsim search` costs many plans that share it)
        key = (model, hw, eff.compute_derate, eff.kernel_overhead_s, moment, tuple(units), plan.tp, plan.cp,
               plan.dp, plan.ep, plan.etp, plan.pp, plan.zero_stage, plan.zero_shard_size, plan.zero3_gather_once,
               plan.grad_dtype,
               plan.gpus_per_node)
        hit = _RANK_STEPS.get(key)
        if hit is None:
            if len(_RANK_STEPS) > 100_000:
                _RANK_STEPS.clear()
            hit = _RANK_STEPS[key] = _rank_step(model, plan, row, moment, units)
        out.append(replace(hit, zero=dict(hit.zero)))
    return out


_RANK_STEPS: dict[tuple, RankStep] = {}


def _rank_step(model, plan, row, moment, units) -> RankStep:
    """One rank's gradient reduction, parameter gathers, ZeRO-3 per-micro-batch comm and optimizer update."""
    rs = rank_step_ops(model, plan, moment, units)
    return rs.assemble(op_seconds(OpTable(rs.ops).arrays(), row).tolist())


# what each op of a rank's step adds to (RankStepOps.role)
ROLE_GRAD, ROLE_GATHER, ROLE_ZERO_F, ROLE_ZERO_B, ROLE_UPDATE = range(5)


@dataclass
class RankStepOps:
    """One rank's step as ops; `assemble(seconds of those ops)` → its RankStep. Split from the costing so
    `costsim search` can cost the ops of many ranks in one kernel call (op seconds are element-wise)."""
    ops: list
    role: list[int]            # per op: ROLE_* (the ZeRO-3 ops by pass)
    pieces: float
    layers: int

    def assemble(self, secs: list[float]) -> RankStep:
        grad = gather = update = 0.0
        zero: dict[tuple[str, str], float] = {}
        for role, t in zip(self.role, secs):   # in op order: the sums of the original, term by term
            if role == ROLE_GRAD:
                grad += t
            elif role == ROLE_GATHER:
                gather += t
            elif role == ROLE_UPDATE:
                update = t
            else:
                key = ("F" if role == ROLE_ZERO_F else "B", "zero")
                zero[key] = zero.get(key, 0.0) + t
        return RankStep(grad=grad, grad_pieces=self.pieces, gather=gather, gather_pieces=self.pieces,
                        update=update, zero=zero, zero_pieces=self.layers)


def rank_step_ops(model, plan, moment, units) -> RankStepOps:
    params = gpu_params(model, plan, units)
    b = _Builder(model, plan, "dp")
    grad, gather, z3 = _rank_ops(b, params.dense, params.expert)
    z = plan.zero_stage
    # optimizer state this GPU updates: its shard of each group's parameters (ZeRO ≥ 1), else all of them
    local = (sum(n / shard for n, shard, *_ in _groups(plan, params.dense, params.expert))
             if z >= 1 else params.dense + params.expert)
    grad_buffer = local if z >= 2 else params.dense + params.expert
    update_bytes = local * (GRAD_NORM_BYTES + CLIP_BYTES + adam_bytes(moment) + MASTER_COPY_BYTES)
    update_bytes += grad_buffer * grad_bytes(plan)    # zero the gradient buffer for the next step
    update = Op("optimizer.step", "dp", "O", MEM, bytes=update_bytes, launches=OPTIMIZER_LAUNCHES)
    layers = max(1, sum(1 for u in units if u in LAYER_UNITS))
    if z == 3:
        pieces = layers
    else:
        pieces = max(1, math.ceil((params.dense + params.expert)
                                  / max(BUCKET_PARAMS, 1e6 * plan.dp * plan.cp)))
    role = ([ROLE_GRAD] * len(grad) + [ROLE_GATHER] * len(gather)
            + [ROLE_ZERO_F if o.pass_ == "F" else ROLE_ZERO_B for o in z3] + [ROLE_UPDATE])
    return RankStepOps(grad + gather + z3 + [update], role, pieces, layers)

"""Once-per-step costs: data-parallel gradient reduction, ZeRO parameter gathers and the optimizer update."""
from __future__ import annotations

from .kernels import hw_row, op_seconds
from .memory import GRAD_BYTES, MASTER_BYTES, MOMENT_BYTES, WEIGHT_BYTES, gpu_params
from .ops import ALL_GATHER, ALL_REDUCE, MEM, REDUCE_SCATTER, Op, OpTable, _Builder

OPTIMIZER_LAUNCHES = 10   # assumption: multi-tensor-apply Adam is a handful of fused kernels; only multiplies
                          # the fitted per-kernel overhead (0 µs today), so it does not move any estimate


def _dp_ops(b: _Builder, dense: float, expert: float, zero: int) -> tuple[list, list, list]:
    """(gradient reduction, parameter gather after the update, per-micro-batch ZeRO-3 ops) for one rank."""
    p = b.p
    groups = [(dense, p.dp * p.cp, p.tp), (expert, p.dp * p.cp // p.ep, p.tp * p.cp * p.ep)]
    grad, gather, z3 = [], [], []
    steps = [(grad, ALL_REDUCE if zero == 0 else REDUCE_SCATTER, GRAD_BYTES, "O")]
    if zero in (1, 2):     # updated shards are gathered back after the optimizer step
        steps.append((gather, ALL_GATHER, WEIGHT_BYTES, "O"))
    if zero == 3:          # weights are gathered for every micro-batch's forward and backward
        steps += [(z3, ALL_GATHER, WEIGHT_BYTES, "F"), (z3, ALL_GATHER, WEIGHT_BYTES, "B")]
    for params, size, stride in groups:
        for target, kind, nbytes, pass_ in steps:
            n0 = len(b.ops)
            b.coll(f"dp.{kind}", kind, params * nbytes, size, stride, "zero", pass_)
            target.extend(b.ops[n0:])
    return grad, gather, z3


def dp_and_optimizer(model, hw, plan, eff, chunk_units, per_rank, sc):
    """Per pipeline rank: DP gradient-reduction seconds, optimizer seconds, and per-micro-batch ZeRO-3 comm."""
    row = hw_row(hw, derate=eff.compute_derate, overhead_s=eff.kernel_overhead_s)
    moment = MOMENT_BYTES[sc.optimizer.moment_dtype]
    dp_s, opt_s, zero_comm = [], [], []
    for chs in per_rank:
        units = [u for c in chs for u in chunk_units[c]]
        params = gpu_params(model, plan, units)
        b = _Builder(model, plan, "dp")
        grad, gather, z3 = _dp_ops(b, params.dense, params.expert, plan.zero_stage)
        dp_size = plan.dp * plan.cp
        local = (params.dense / dp_size + params.expert / max(1, dp_size // plan.ep)
                 if plan.zero_stage >= 1 else params.dense + params.expert)
        # Adam: read/write FP32 master and both moments, read the FP32 gradient, write the BF16 weight
        update_bytes = local * (2 * MASTER_BYTES + GRAD_BYTES + 2 * moment + WEIGHT_BYTES)
        update = Op("optimizer.update", "dp", "O", MEM, bytes=update_bytes, launches=OPTIMIZER_LAUNCHES)
        ops = grad + gather + z3 + [update]
        secs = op_seconds(OpTable(ops).arrays(), row).tolist()
        t = dict(zip(map(id, ops), secs))
        dp_s.append(sum(t[id(o)] for o in grad))
        opt_s.append(t[id(update)] + sum(t[id(o)] for o in gather))
        z: dict[tuple[str, str], float] = {}
        for o in z3:
            z[(o.pass_, "zero")] = z.get((o.pass_, "zero"), 0.0) + t[id(o)]
        if z:   # ZeRO-3 also reduce-scatters gradients every micro-batch
            z[("B", "zero")] += dp_s[-1]
            dp_s[-1] = 0.0
        zero_comm.append(z)
    return dp_s, opt_s, zero_comm

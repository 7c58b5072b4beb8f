"""The fast search engine: the plans, rejection counts and figures of `engine.evaluate_space` (one
`make_plan` + `estimate_phase` per plan), without one Python object per plan.

How (issue 8, "a shape that would get there"):
1. The space's product is enumerated as integer index arrays, one num_gpus at a time and at most CHUNK plans
   at a time (every GPU shares the arrays), and the feasible plans are put back in the order of
   `engine._combos` at the end, as numpy columns (`FeasibleTable`: a PlanResult is made only when read).
2. `make_plan`'s divisibility and capability checks run as numpy masks, in its order, so each rejected plan
   gets the reason key of the first check it fails (`engine._REASONS`; tests/test_search_fast.py compares the
   verdicts with `make_plan` on random plans, and the counts with the exact engine).
3. What costs a Python call is computed once per distinct key and kept in tables: per-unit op costs per layer
   key (the op tables of `estimate.unit_costs`, keyed as `engine.UnitCostCache` but for the recompute mode,
   whose three variants one op table gives, and the micro-batches that share an FP8 weight cast, which only
   scale the cast ops: a small table of their own), the p2p unit per (tp, cp, mbs, pp == 1, dp), per-rank DP /
   optimizer costs per (rank parameters, tp, cp, dp, ep, etp, zero) (`run_costs.rank_step_ops`), per-unit
   activation bytes per (tp, sp, cp, mbs, recompute) (`memory.unit_activation_bytes`), per-rank unit counts and parameters per pipeline layout (pp, schedule, v)
   (`layout.layout`, `layout.rank_chunks`, `memory._params_sum`). The op tables of a batch of new keys go
   through the cost kernel (`kernels.op_seconds`) in one call, on every GPU of the space at once, and their
   seconds are summed op by op in the order `unit_costs` / `RankStepOps.assemble` sum them.
4. Two numba kernels combine the tables per plan, in parallel over plans: the memory check first
   (`memory.rank_memory` per rank; the worst rank against each GPU's HBM, as `estimate._check_memory`), then
   the step time of the plans that fit (`schedule.rank_times`, `step_breakdown`, `estimate.dp_exposed` /
   `gather_exposed`), spelled out over scalars. The figures (`estimate._figures`) are numpy expressions.

Scenarios that set what this path does not model (a balanced stage layout, HSDP `zero_shard_size`,
`zero3_gather_once`, `recompute_fraction` < 1) go through the exact engine instead; `FastStats` counts them
and `search` reports it. Sums run in another order than the per-plan path (a rank's units by kind, not unit by
unit), so figures agree to rounding (the tests check 1e-9 relative; measured ~1e-15), not bit for bit.
"""
from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .engine import PlanResult, _REASONS, phase_inputs

# reason keys in the order make_plan checks them (index 0 = legal)
REASONS = ("", "tp divides heads", "tp divides ffn", "tp divides kv heads", "tp·pp·cp divides num_gpus",
           "ep divides experts", "ep·etp divides tp·cp·dp", "etp divides expert ffn", "no experts for ep",
           "cp divides seq_len", "dp·mbs divides batch", "layers fill pp·v", "dualpipe even pp",
           "interleaved micro-batches", "precision unsupported", "comm_sms", "memory")
assert set(REASONS[1:]) <= {k for k, _ in _REASONS}
_R = {k: i for i, k in enumerate(REASONS)}

SCHEDULES = ("1f1b", "interleaved", "zero-bubble", "dualpipe")
S_1F1B, S_INTER, S_ZB, S_DUAL = range(4)
RECOMPUTE = ("none", "selective", "full")

# StageCost as a row: compute, attention, the F / B communication of the five exposure classes, FLOPs
F_F, F_B, F_W, F_AF, F_AB = range(5)
_CLASSES = ("tp", "cp", "zero", "pp", "ep")
F_COMM = {("F", c): 5 + i for i, c in enumerate(_CLASSES)} | {("B", c): 10 + i for i, c in enumerate(_CLASSES)}
F_MFLOPS, F_HWFLOPS = 15, 16
NF = 17
# RankStep as a row
RS_GRAD, RS_GRAD_P, RS_GATHER, RS_GATHER_P, RS_UPDATE, RS_ZF, RS_ZB, RS_ZP = range(8)
NRS = 8
# per-unit activation table columns: unit_activation_bytes of each kind, head transient, layer bytes without
# recompute (what one layer holds while it is recomputed under recompute: full)
KINDS = ("embed", "dense", "moe", "mtp", "head")
NK = len(KINDS)
A_HEAD, A_NONE_DENSE, A_NONE_MOE = NK, NK + 1, NK + 2
NA = NK + 3


def unsupported(sc, base_par: dict, dims: dict | None = None, gbs: int = 1) -> str | None:
    """Why the scenario's fixed plan fields (or a space too large for the packed int64 keys) need the per-plan
    engine, or None."""
    if dims is not None:
        n = len(dims["tp"]) * len(dims["sequence_parallel"])
        widest = max(n * len(dims["cp"]) * len(dims["ep"]) * len(dims["etp"]) * len(dims["micro_batch_size"])
                     * len(dims["recompute"]) * 2 * (gbs + 1),                     # layer keys
                     len(dims["pp"]) * len(dims["schedule"]) * (len(dims["virtual_stages"]) + 1) * n
                     * len(dims["cp"]) * (max(dims["num_gpus"]) + 1) * len(dims["ep"]) * len(dims["etp"])
                     * len(dims["zero_stage"]))                                   # plan-level rank step keys
        if widest * 64 >= 2 ** 62:       # × the node-size and rank-class columns (see _pack)
            return "search space too wide for the fast engine's keys"
    if base_par.get("stage_layout", "uniform") != "uniform":
        return "stage_layout: balanced"
    if base_par.get("zero_shard_size") is not None:
        return "zero_shard_size"
    if base_par.get("zero3_gather_once"):
        return "zero3_gather_once"
    if base_par.get("recompute_fraction", 1.0) != 1.0:
        return "recompute_fraction"
    return None


# ---- feasible plans as columns ----------------------------------------------------------------------------

_PLAN_INT = ("num_gpus", "tp", "pp", "cp", "ep", "etp", "dp", "zero_stage", "micro_batch_size", "virtual_stages")
_FIG = ("step_time_s", "wall_clock_days", "gpu_hours", "cost_usd", "mfu", "memory_gib_per_gpu")


class FeasibleTable(Sequence):
    """Feasible plans in enumeration order, as numpy columns; a PlanResult is made only when one is read."""

    def __init__(self, gpus: list[str], cols: dict[str, np.ndarray], stats: "FastStats | None" = None):
        self.gpus = list(gpus)
        self.cols = cols
        self.stats = stats if stats is not None else FastStats()   # how the plans were costed
        self._memo: dict = {}          # orders and the frontier (the columns never change)

    @classmethod
    def from_results(cls, gpus: list[str], results: list[PlanResult], stats: "FastStats") -> "FeasibleTable":
        """The exact engine's PlanResults as columns (where the fast engine hands a space to it)."""
        cols = {k: np.array([r.plan[k] for r in results], np.int64) for k in _PLAN_INT}
        cols["gpu"] = np.array([gpus.index(r.plan["gpu"]) for r in results], np.int64)
        cols["schedule"] = np.array([SCHEDULES.index(r.plan["schedule"]) for r in results], np.int64)
        cols["recompute"] = np.array([RECOMPUTE.index(r.plan["recompute"]) for r in results], np.int64)
        cols["sp"] = np.array([r.plan["sequence_parallel"] for r in results], np.int64)
        cols.update({k: np.array([getattr(r, k) for r in results], float) for k in _FIG})
        return cls(gpus, cols, stats)

    @classmethod
    def empty(cls, gpus: list[str]) -> "FeasibleTable":
        cols = {k: np.zeros(0, np.int64) for k in (*_PLAN_INT, "gpu", "schedule", "recompute", "sp")}
        cols.update({k: np.zeros(0) for k in _FIG})
        return cls(gpus, cols)

    @classmethod
    def concat(cls, parts: list["FeasibleTable"]) -> "FeasibleTable":
        gpus: list[str] = []
        for p in parts:
            gpus += [g for g in p.gpus if g not in gpus]
        if not parts:
            return cls.empty(gpus)
        cols = {}
        for k in parts[0].cols:
            if k == "gpu":   # re-index each part's GPU names into the merged list
                cols[k] = np.concatenate([np.array([gpus.index(g) for g in p.gpus], np.int64)[p.cols[k]]
                                          if len(p) else p.cols[k] for p in parts])
            else:
                cols[k] = np.concatenate([p.cols[k] for p in parts])
        stats = FastStats(vectorised=sum(p.stats.vectorised for p in parts),
                          fallback=sum(p.stats.fallback for p in parts),
                          fallback_reason="; ".join(dict.fromkeys(p.stats.fallback_reason for p in parts
                                                                  if p.stats.fallback_reason)) or None)
        return cls(gpus, cols, stats)

    def __len__(self) -> int:
        return len(self.cols["step_time_s"])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self._row(i)

    def _row(self, i: int) -> PlanResult:
        c = self.cols
        plan = {"tp": int(c["tp"][i]), "pp": int(c["pp"][i]), "cp": int(c["cp"][i]), "ep": int(c["ep"][i]),
                "etp": int(c["etp"][i]), "zero_stage": int(c["zero_stage"][i]),
                "micro_batch_size": int(c["micro_batch_size"][i]), "recompute": RECOMPUTE[c["recompute"][i]],
                "schedule": SCHEDULES[c["schedule"][i]], "virtual_stages": int(c["virtual_stages"][i]),
                "sequence_parallel": bool(c["sp"][i]), "dp": int(c["dp"][i]), "num_gpus": int(c["num_gpus"][i]),
                "gpu": self.gpus[c["gpu"][i]]}
        return PlanResult(plan=plan, **{k: float(c[k][i]) for k in _FIG})

    def rows(self, idx) -> list[PlanResult]:
        return [self._row(int(i)) for i in idx]

    def order(self, objective: str) -> np.ndarray:
        """Indices sorted as `sorted(feasible, key=…)` sorts (stable): by (cost, days) or (days, cost)."""
        key = "time" if objective == "time" else "cost"
        if key not in self._memo:
            cost, days = self.cols["cost_usd"], self.cols["wall_clock_days"]
            self._memo[key] = np.lexsort((days, cost)) if key == "cost" else np.lexsort((cost, days))
        return self._memo[key]

    def csv_rows(self, plan_cols: tuple, figures: tuple, chunk: int = 65536):
        """Rows (plan columns, figures as repr, 1/0 on the frontier) by ascending (cost, days), made from the
        columns a chunk at a time (no PlanResult per plan)."""
        order = self.order("cost")
        front = np.zeros(len(self), np.int64)
        front[self.pareto_indices()] = 1
        names = {"gpu": self.gpus, "recompute": RECOMPUTE, "schedule": SCHEDULES}
        for lo in range(0, len(order), chunk):
            idx = order[lo:lo + chunk]
            cols = []
            for k in plan_cols:
                vals = self.cols["sp" if k == "sequence_parallel" else k][idx].tolist()
                cols.append([names[k][x] for x in vals] if k in names
                            else [bool(x) for x in vals] if k == "sequence_parallel" else vals)
            cols += [[repr(x) for x in self.cols[f][idx].tolist()] for f in figures]
            yield from zip(*cols, front[idx].tolist())

    def pareto_indices(self) -> np.ndarray:
        """`engine.pareto_front` over the columns: by ascending (cost, days), each plan faster than all before."""
        if "pareto" not in self._memo:
            o = self.order("cost")
            days = self.cols["wall_clock_days"][o]
            best_before = np.concatenate(([np.inf], np.minimum.accumulate(days)[:-1]))
            self._memo["pareto"] = o[days < best_before]
        return self._memo["pareto"]


# ---- tables built once per distinct key -------------------------------------------------------------------

@dataclass
class Layout:
    """One (pp, schedule, v): per rank its unit counts by kind, chunks, parameters and what it holds."""
    pp: int
    schedule: str
    v: int
    chunk_units: list[list[str]]
    per_rank: list[list[int]]
    cnt: np.ndarray          # (pp, NK) units of each kind over the rank's chunks
    nch: np.ndarray          # (pp,) chunks on the rank
    dense: np.ndarray        # (pp,) dense / expert parameters of the rank's units (before ÷ tp, ÷ ep·etp)
    expert: np.ndarray
    head: np.ndarray         # (pp,) 1 where the rank holds the head
    has_dense: np.ndarray    # (pp,) 1 where the rank holds a dense / MoE layer (recompute: full transient)
    has_moe: np.ndarray


def make_layout(model, units: list[str], pp: int, schedule: str, v: int) -> Layout:
    from ..layout import layout, rank_chunks
    from ..memory import _params_sum

    chunks = pp * (v if schedule == "interleaved" else 1)
    chunk_units = layout(units, {}, chunks, "uniform")
    per_rank = rank_chunks(chunks, pp, schedule)
    cnt = np.zeros((pp, NK))
    dense, expert = np.zeros(pp), np.zeros(pp)
    nch = np.zeros(pp)
    head, has_d, has_m = np.zeros(pp, np.int64), np.zeros(pp, np.int64), np.zeros(pp, np.int64)
    for r, chs in enumerate(per_rank):
        us = [u for c in chs for u in chunk_units[c]]
        for u in us:
            cnt[r, KINDS.index(u)] += 1
        nch[r] = len(chs)
        dense[r], expert[r] = _params_sum(model, tuple(us), pp)
        head[r], has_d[r], has_m[r] = "head" in us, "dense" in us, "moe" in us
    return Layout(pp, schedule, v, chunk_units, per_rank, cnt, nch, dense, expert, head, has_d, has_m)


class _Plans:
    """The ParallelPlan `make_plan` builds for a plan that passed its checks: `make_plan` itself for the first
    plan of each (gpu, num_gpus), a copy with the searched fields replaced for the others (every other
    field comes from the scenario, the phase and the GPU, the same for all of them)."""

    def __init__(self, model, base_par: dict, ph):
        self.model, self.base_par, self.ph = model, base_par, ph
        self.templates: dict = {}

    def __call__(self, ctx, tp, sp, pp, cp, ep, etp, sched, v, mbs, zero, rec, dp):
        import copy

        from ..plan import make_plan
        from ..scenario import Parallelism
        values = dict(tp=tp, pp=pp, cp=cp, ep=ep, etp=etp, zero_stage=zero, micro_batch_size=mbs, recompute=rec,
                      schedule=sched, virtual_stages=v, sequence_parallel=sp)
        template = self.templates.get(id(ctx))
        if template is None:
            sc_g, hw, _ = ctx
            ph = self.ph
            par = Parallelism.model_validate({**self.base_par, **values})
            template = self.templates[id(ctx)] = make_plan(sc_g, par, self.model, hw, ph.precision, ph.seq_len,
                                                           ph.global_batch_size, fp8_recipe=ph.fp8_recipe)
            assert template.dp == dp
        # dataclasses.replace without its per-call field walk: a copy of the frozen template with the searched
        # fields set (ParallelPlan has no __post_init__ and no slots; hash and eq read the fields)
        plan = copy.copy(template)
        plan.__dict__.update(values, dp=dp)
        return plan


@dataclass
class FastStats:
    """What the fast engine did: plans it combined itself, plans sent to the per-plan engine (and why)."""
    vectorised: int = 0
    fallback: int = 0
    fallback_reason: str | None = None
    unit_keys: int = 0
    p2p_keys: int = 0
    rank_step_keys: int = 0
    act_keys: int = 0
    seconds: dict = field(default_factory=dict)


# ---- the kernels ------------------------------------------------------------------------------------------

_KERNELS = None
# one search at a time in the parallel kernels of a process: numba's workqueue threading layer (the fallback
# where neither TBB nor OpenMP is installed) must not be entered by two threads at once (a dask worker runs
# parts on threads); each call still runs on every core
_KERNEL_LOCK = threading.Lock()
CHUNK = 1 << 19         # plans enumerated at a time (per num_gpus): bounds the engine's working arrays
prange = range          # the kernels' loop over plans; numba's prange when compiled (_compiled)


def _exposed(comm, under, slowdown):
    # schedule.exposed
    return max(comm - under, slowdown * min(comm, under), 0.0)


def _pipelined(comm, under, pieces, slowdown):
    # schedule.pipelined
    if pieces <= 1:
        return comm
    piece = comm / pieces
    under2 = under * (pieces - 1) / pieces
    c = comm - piece
    return piece + max(c - under2, slowdown * min(c, under2), 0.0)


def _memory_kernel(lay, pp, sched_code, v, m, dp, tp, cp, ep, etp, zero, full, act_idx,
                   L_cnt, L_dense, L_expert, L_head, L_hasd, L_hasm, act, consts, out_total):
    """memory.rank_memory for every rank of each plan; the worst rank's total (estimate._check_memory). The
    formulas are memory.py's, term by term: weights / gradients / optimizer state sharded by ZeRO stage over
    dp·cp (dense) and the expert-data-parallel ranks tp·cp·dp/(ep·etp) (parallel folding); activations per
    micro-batch (Korthikanti et al. 2022, per unit in `act`) times the micro-batches in flight (memory.in_flight:
    p − rank for 1F1B, × (1 + (p−1)/(p·v)) interleaved, min(m, p+1) DualPipe, DeepSeek-V3 Table 2); one layer's
    full activations while it is recomputed; the head's logits; the runtime reserve (memory.reserved_bytes:
    CUDA context, NCCL buffers per communicator and peer, cuBLAS workspaces, 5% fragmentation)."""
    grad_b, opt_b, ring, p2p_peer, cuda, frag, cublas = (consts[0], consts[1], consts[2], consts[3], consts[4],
                                                         consts[5], consts[6])
    n = lay.shape[0]
    nk = L_cnt.shape[2]
    for i in prange(n):
        L, p, sk, z = lay[i], pp[i], sched_code[i], zero[i]
        t, c, d, e, et = tp[i], cp[i], dp[i], ep[i], etp[i]
        a = act_idx[i]
        dp_dense = d * c
        dpe_raw = (t * c * d) // (e * et)
        dp_expert = max(1, dpe_raw)
        rings = (1 if t > 1 else 0) + (1 if c > 1 else 0) + (1 if d * c > 1 else 0) + (1 if et > 1 else 0) \
            + (1 if (dpe_raw if e > 1 else 1) > 1 else 0)
        peers = (2 if p > 2 else p - 1) + (e - 1)
        nccl = rings * ring + peers * p2p_peer
        worst = -1.0
        for r in range(p):
            dense = L_dense[L, r] / t
            expert = L_expert[L, r] / (e * et)
            if z >= 3:
                weights = dense * 2.0 / dp_dense + expert * 2.0 / dp_expert
            else:
                weights = dense * 2.0 + expert * 2.0
            if z >= 2:
                grads = dense * grad_b / dp_dense + expert * grad_b / dp_expert
            else:
                grads = dense * grad_b + expert * grad_b
            if z >= 1:
                optim = dense * opt_b / dp_dense + expert * opt_b / dp_expert
            else:
                optim = dense * opt_b + expert * opt_b
            per_mb = 0.0
            for k in range(nk):
                per_mb += L_cnt[L, r, k] * act[a, k]
            if sk == 3:
                per_mb /= 2.0
                infl = float(min(m[i], p + 1))
            else:
                nn = float(p - r)
                if sk == 1:
                    nn *= 1 + (p - 1) / (p * v[i])
                infl = min(float(m[i]), nn)
            acts = per_mb * infl
            if full[i]:
                extra = 0.0
                if L_hasd[L, r]:
                    extra = act[a, nk + 1]
                if L_hasm[L, r]:
                    extra = max(extra, act[a, nk + 2]) if L_hasd[L, r] else act[a, nk + 2]
                acts += extra
            if L_head[L, r]:
                acts += act[a, nk]
            allocated = weights + grads + optim + acts
            total = allocated + (cuda + nccl + cublas + frag * allocated)
            if total > worst:
                worst = total
        out_total[i] = worst
    return out_total


def _time_kernel(lay, pp, sched_code, v, m, u_idx, x_idx, p_idx, q_start, q_rows, C_cnt, C_nch, C_mult, C_h, C_n, U,
                 UX, P, RS, flags, out_step):
    """Step time of each plan (estimate.estimate_phase → schedule.rank_times / step_breakdown): the slowest
    rank's m micro-batches + its exposed DP tail + optimizer, plus the pipeline bubble. Per rank, as
    schedule.exposed_by_class: TP beside the pass's GEMMs (with tp_comm_overlap), CP beside attention, ZeRO-3
    gathers layer by layer with one exposed, PP sends beside compute under interleaved / DualPipe, EP beside the
    other micro-batch (ep_comm_overlap) or, under DualPipe, beside the paired chunk. Bubbles (schedule.py's
    docstring): 1F1B Σx − max x with x = F + B + W (equal stages: (p−1)(F+B)); interleaved ÷ v (Narayanan et
    al. 2021); zero-bubble x = F + B − W; DualPipe (p/2 − 1)·max(F&B + B − 3W) (DeepSeek-V3 report, Table 2),
    with dualpipe_unpaired's warm-up and cool-down chunks that cannot hide their all-to-all."""
    sd, ov_tp, ov_ep, dp_overlap = flags[0], flags[1] > 0, flags[2] > 0, flags[3] > 0
    n = lay.shape[0]
    nk = C_cnt.shape[2]
    nf = U.shape[2]
    for i in prange(n):
        rc = np.empty(nf)
        L, p, sk, mm = lay[i], pp[i], sched_code[i], m[i]
        dual = sk == 3
        ov_pp = sk == 1 or sk == 3
        ui, xi, pi = u_idx[i], x_idx[i], p_idx[i]
        best = -1e300
        sumx = 0.0
        maxx = -1e300
        for r in range(C_n[L]):          # rank classes (see C_mult), each as one of its ranks
            # the rank's StageCost: its units' costs by kind (skipping kinds it lacks), the p2p unit per chunk
            for f in range(15):          # the FLOPs columns are not read here
                rc[f] = 0.0
            for k in range(nk):
                c = C_cnt[L, r, k]
                if c != 0.0:
                    for f in range(15):
                        rc[f] += c * U[ui, k, f]
                    rc[0] += c * UX[xi, k]   # the kind's FP8 weight casts (forward)
            c = C_nch[L, r]
            for f in range(15):
                rc[f] += c * P[pi, f]
                if dual:
                    rc[f] *= 0.5
            row = q_rows[q_start[i] + r]
            grad, gp, gather, gap, update = RS[row, 0], RS[row, 1], RS[row, 2], RS[row, 3], RS[row, 4]
            zp = RS[row, 7]
            rc[7] += RS[row, 5]
            rc[12] += RS[row, 6]
            f_, b_, w_, af, ab = rc[0], rc[1], rc[2], rc[3], rc[4]
            # forward: compute f beside attention af
            cf = f_
            ef = (_exposed(rc[5], cf - af, sd) if ov_tp else rc[5]) + _exposed(rc[6], af, sd) \
                + _pipelined(rc[7], cf, zp, sd) + (_exposed(rc[8], cf, sd) if ov_pp else rc[8]) \
                + (0.0 if dual else (_exposed(rc[9], cf, sd) if ov_ep else rc[9]))
            cb = b_ + w_
            eb = (_exposed(rc[10], cb - ab, sd) if ov_tp else rc[10]) + _exposed(rc[11], ab, sd) \
                + _pipelined(rc[12], cb, zp, sd) + (_exposed(rc[13], cb, sd) if ov_pp else rc[13]) \
                + (0.0 if dual else (_exposed(rc[14], cb, sd) if ov_ep else rc[14]))
            sends = rc[8] + rc[13] if ov_pp else 0.0
            rf = f_ + ef
            rb = b_ + eb
            pair = 0.0
            a2a = 0.0
            if dual:
                busy = f_ + b_ + w_ + ef + eb
                a2a = rc[9] + rc[14]
                pair = busy + _exposed(a2a, busy, sd)
            if pair != 0.0:
                h = C_h[L, r]
                unp = min(mm, 3 * (p // 2) - h - 1)
                mbt = (mm - unp) * pair + unp * (rf + rb + w_ + a2a)
            else:
                mbt = mm * (rf + rb + w_)
            tail = _pipelined(grad, b_ + w_, gp, sd) if dp_overlap else grad
            opt = update + (_pipelined(gather, f_, gap, sd) if dp_overlap else gather)
            tot = mbt + tail + opt
            if tot > best:
                best = tot
            if dual:
                x = pair + rb + w_ - 3 * w_ + sends
            elif sk == 2:
                x = rf + rb - w_ + sends
            else:
                x = rf + rb + w_ + sends
            sumx += C_mult[L, r] * x
            if x > maxx:
                maxx = x
        if p == 1:
            bubble = 0.0
        elif dual:
            bubble = (p / 2 - 1) * maxx
        elif sk == 1:
            bubble = (sumx - maxx) / v[i]
        else:
            bubble = sumx - maxx
        out_step[i] = best + bubble
    return out_step


# ---- the engine -------------------------------------------------------------------------------------------

def _tp_sp(dims):
    return [(t, s) for t in dims["tp"] for s in (dims["sequence_parallel"] if t > 1 else [False])]


def _pp_sched(dims):
    # as engine._combos: virtual stages only under interleaved; pp = 1 gets one schedule
    sched_v = [(s, v) for s in dims["schedule"] for v in (dims["virtual_stages"] if s == "interleaved" else [1])]
    one = "1f1b" if "1f1b" in dims["schedule"] else dims["schedule"][0]
    sched_v1 = [sv for sv in sched_v if sv[0] == one][:1]
    return [(pp, s, v) for pp in dims["pp"] for s, v in (sched_v1 if pp == 1 else sched_v)]


class _Grown:
    """A table grown by rows, and the row of each packed key seen so far."""

    def __init__(self, shape: tuple, dtype=float):
        self.keys: dict[int, int] = {}
        self.arr = np.zeros((0, *shape), dtype)

    def lookup(self, packed: np.ndarray, make_batch: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Row per element of `packed`; `make_batch(positions)` builds the rows of keys not seen before, from
        the plan at each key's first position."""
        if not len(packed):
            return np.zeros(0, np.int64)
        uniq, first, inv = np.unique(packed, return_index=True, return_inverse=True)
        get = self.keys.get
        idx = np.fromiter((get(k, -1) for k in uniq.tolist()), np.int64, len(uniq))
        new = np.flatnonzero(idx < 0)
        if len(new):
            base = len(self.arr)
            self.arr = np.concatenate([self.arr, make_batch(first[new])])
            for j, k in enumerate(uniq[new].tolist()):
                self.keys[k] = base + j
            idx[new] = base + np.arange(len(new))
        return idx[inv.reshape(-1)]


def _pack(*cols) -> np.ndarray:
    """Mixed-radix int64 key of (values, radix) columns."""
    key = np.zeros(len(cols[0][0]), np.int64)
    span = 1
    for a, radix in cols:
        span *= int(radix)
        key = key * int(radix) + a
    assert span < 2 ** 62, "search key space too large to pack"
    return key


def _unit_ops(model, plan, kinds: list[str], variants: bool = False):
    """estimate.unit_costs' op tables and its accumulation rules: (ops, kind index, StageCost column of each
    op's seconds (-1: none the schedule reads), attention column (-1: not attention), FLOPs, the once-per-step
    FP8 weight casts apart: (their ops, kind index)).

    `variants`: `plan` at recompute "none", and the three recompute modes from its ops — layers.unit_ops builds
    a unit's ops without reading the recompute mode, then appends a pass-R copy of each forward op that the
    mode recomputes (every one under full, the `selective` ones under selective; never a per-step cast), with
    flops, bytes and launches × recompute_fraction (1 here: other fractions go to the exact engine), so the
    copy costs its forward op's seconds, into the backward's columns (collectives: their (B, class) column).
    Then the columns, the op index of each entry (an R copy: its forward op's) and FLOPs come per mode:
    lists of three, in RECOMPUTE order, each in unit_costs' order (a unit's ops, then its R copies)."""
    from ..layers import unit_ops
    from ..ops import ATTN_B, ATTN_F, COLL
    ops, kind, f1, f2, casts, cast_kind, redo = [], [], [], [], [], [], []
    mf = {k: 0.0 for k in kinds}
    hf = {k: 0.0 for k in kinds}
    for o in (o for k in kinds for o in unit_ops(model, plan, k)):
        ki = KINDS.index(o.unit) if o.unit in KINDS else NK
        mf[o.unit] += o.model_flops
        hf[o.unit] += o.flops
        if o.per_step:             # an F pass memory op (fp8._fp8_casts): its seconds add to f
            casts.append(o)
            cast_kind.append(ki)
            continue
        ops.append(o)
        kind.append(ki)
        if o.kind == COLL:
            f1.append(F_COMM.get((o.pass_ if o.pass_ != "R" else "B", o.overlap), -1))
            f2.append(-1)
        elif o.pass_ == "F":
            f1.append(F_F)
            f2.append(F_AF if o.kind == ATTN_F else -1)
        elif o.pass_ == "W":
            f1.append(F_W)
            f2.append(-1)
        else:                      # B and R (recompute runs just before the backward)
            f1.append(F_B)
            f2.append(F_AB if o.kind == ATTN_B else -1)
        if variants and o.pass_ == "F" and o.unit in ("dense", "moe", "mtp"):
            redo.append((len(ops) - 1, o.selective,
                         F_COMM.get(("B", o.overlap), -1) if o.kind == COLL else F_B))
    cast_part = (casts, cast_kind)

    def flops_of(extra_hw: dict) -> np.ndarray:
        fl = np.zeros((NK + 1, 2))
        for k in kinds:
            fl[KINDS.index(k) if k in KINDS else NK] = (mf[k], extra_hw.get(k, hf[k]))
        return fl

    if not variants:
        return ops, kind, f1, f2, flops_of({}), cast_part
    idx, c1, c2, fls = [], [], [], []
    base = list(range(len(ops)))
    for mode in RECOMPUTE:
        # unit_costs' order: per unit kind, its ops then its R copies (bins are per kind: only the order within
        # a kind matters)
        r = [(j, col) for j, sel, col in redo if mode == "full" or (mode == "selective" and sel)]
        idx.append(base + [j for j, _ in r])
        c1.append(f1 + [col for _, col in r])
        c2.append(f2 + [-1] * len(r))
        extra = dict(hf)
        for j, _ in r:             # an R copy's hardware FLOPs (flops × share 1); no model FLOPs
            extra[ops[j].unit] += ops[j].flops
        fls.append(flops_of(extra))
    return ops, kind, (idx, c1, c2), None, fls, cast_part


def _chunked(make: Callable[[np.ndarray], np.ndarray], size: int) -> Callable[[np.ndarray], np.ndarray]:
    """`make` over at most `size` new keys at a time (bounds the op tables of one kernel call)."""
    return lambda at: np.concatenate([make(at[i:i + size]) for i in range(0, len(at), size)])


def _op_seconds_all_gpus(ops: list, configs: np.ndarray, hw_rows: np.ndarray) -> np.ndarray:
    """Seconds of `ops` on each hardware row in `configs`: (len(configs) · len(ops)), GPU-major. One kernel
    call for a whole batch of keys (op seconds are element-wise, so batching changes no figure)."""
    from ..ops import OpTable
    if not ops:
        return np.zeros(0)
    return _op_arrays_all_gpus(OpTable(ops).arrays(), configs, hw_rows)


def _op_arrays_all_gpus(arrays: dict, configs: np.ndarray, hw_rows: np.ndarray) -> np.ndarray:
    from ..kernels import op_seconds
    n = len(arrays["kind"])
    tiled = {k: np.tile(a, len(configs)) for k, a in arrays.items() if k != "config"}
    tiled["config"] = np.repeat(configs.astype(np.int32), n)
    if "engine" in inspect.signature(op_seconds).parameters:   # numba for these batches (same figures)
        return op_seconds(tiled, hw_rows, engine="numba")
    return op_seconds(tiled, hw_rows)


def _unit_rows(model, plans: list, kinds: list[str], hw_rows: np.ndarray, gs: np.ndarray, G: int,
               casts: list | None = None, variants: bool = False) -> np.ndarray:
    """(len(plans), G, NK + 1, NF): estimate.unit_costs of each plan on each GPU in `gs` (rows of the others
    stay zero: GPUs that cannot run the phase get no plans), as StageCost rows, without the once-per-step FP8
    weight casts (appended to `casts`, per plan, for _cast_rows); `variants`: (len(plans), G, 3, NK + 1, NF),
    the three recompute modes (_unit_ops). The seconds of each (plan, GPU, kind, column) add up op by op in the
    order unit_costs adds them (bincount)."""
    built = [_unit_ops(model, pl, kinds, variants) for pl in plans]
    if casts is not None:
        casts.extend(b[5] for b in built)
    ops = [o for b in built for o in b[0]]
    starts = np.concatenate(([0], np.cumsum([len(b[0]) for b in built])))
    secs = _op_seconds_all_gpus(ops, gs, hw_rows).reshape(len(gs), len(ops))
    V = 3 if variants else 1
    K = NK + 1
    size = len(plans) * G * V * K * NF
    out = np.zeros(size)
    # entries: (plan, mode, op index, kind, column); seconds per GPU from the op index
    keyv, opi, kd, col1, col2 = [], [], [], [], []
    for j, b in enumerate(built):
        kinds_j = np.array(b[1], np.int64)
        if variants:
            idx, c1, c2 = b[2]
            for v in range(V):
                ii = np.array(idx[v], np.int64)
                keyv.append(np.full(len(ii), j * V + v, np.int64))
                opi.append(starts[j] + ii)
                kd.append(kinds_j[ii] if len(ii) else ii)
                col1.append(np.array(c1[v], np.int64))
                col2.append(np.array(c2[v], np.int64))
        else:
            n = len(b[0])
            keyv.append(np.full(n, j, np.int64))
            opi.append(starts[j] + np.arange(n))
            kd.append(kinds_j)
            col1.append(np.array(b[2], np.int64))
            col2.append(np.array(b[3], np.int64))
    keyv, opi, kd, col1, col2 = (np.concatenate(x) if x else np.zeros(0, np.int64)
                                 for x in (keyv, opi, kd, col1, col2))
    for gi, g in enumerate(gs):
        t = secs[gi, opi] if len(opi) else np.zeros(0)
        plan_j, v = keyv // V, keyv % V
        seg = (((plan_j * G + g) * V + v) * K + kd) * NF
        for c in (col1, col2):
            keep = c >= 0
            out += np.bincount((seg + c)[keep], t[keep], size)
    out = out.reshape(len(plans), G, V, K, NF)
    fl = np.array([b[4] if variants else [b[4]] for b in built])          # (plans, V, K, 2)
    out[..., F_MFLOPS] = fl[:, None, :, :, 0]
    out[..., F_HWFLOPS] = fl[:, None, :, :, 1]
    return out if variants else out[:, :, 0]


def _cast_rows(casts: list, mpcs: list[int], hw_rows: np.ndarray, gs: np.ndarray, G: int) -> np.ndarray:
    """(len(casts), G, NK): seconds of each layer key's once-per-step FP8 weight casts at its micro-batches per
    chunk, per kind (they add to f). The ops were built at one micro-batch per chunk (share 1); fp8._fp8_casts
    spreads a cast over `mpc` micro-batches as bytes · (1/mpc) and launches · (1/mpc), so the same products
    are formed here from the share-1 values (exactly its floats), then costed."""
    from ..ops import OpTable
    rows, kind, keyid, share = [], [], [], []
    for j, ((ops, ks), mpc) in enumerate(zip(casts, mpcs)):
        rows += ops
        kind += ks
        keyid += [j] * len(ops)
        share += [1.0 / mpc if mpc else 0.0] * len(ops)
    out = np.zeros((len(casts), G, NK))
    if not rows:
        return out
    arrays = OpTable(rows).arrays()
    share = np.array(share)
    arrays["bytes"] = arrays["bytes"] * share
    arrays["launches"] = arrays["launches"] * share
    secs = _op_arrays_all_gpus(arrays, gs, hw_rows)
    n = len(rows)
    seg = (np.tile(np.array(keyid, np.int64), len(gs)) * G + np.repeat(gs, n)) * NK \
        + np.tile(np.array(kind, np.int64), len(gs))
    return np.bincount(seg, secs, len(casts) * G * NK).reshape(len(casts), G, NK)


def _rank_step_rows(steps: list, hw_rows: np.ndarray, gs: np.ndarray, G: int) -> np.ndarray:
    """(len(steps), G, NRS): RankStepOps.assemble of each rank step on each GPU in `gs` (hardware rows G + g)."""
    from ..run_costs import ROLE_GATHER, ROLE_GRAD, ROLE_UPDATE, ROLE_ZERO_B, ROLE_ZERO_F
    ops, role, keyid = [], [], []
    for j, rs in enumerate(steps):
        ops += rs.ops
        role += rs.role
        keyid += [j] * len(rs.ops)
    secs = _op_seconds_all_gpus(ops, G + gs, hw_rows)
    n = len(ops)
    seg = (np.tile(np.array(keyid, np.int64), len(gs)) * G + np.repeat(gs, n)) * 5 \
        + np.tile(np.array(role, np.int64), len(gs))
    sums = np.bincount(seg, secs, len(steps) * G * 5).reshape(len(steps), G, 5)
    out = np.zeros((len(steps), G, NRS))
    out[..., RS_GRAD], out[..., RS_GATHER], out[..., RS_UPDATE] = (sums[..., ROLE_GRAD], sums[..., ROLE_GATHER],
                                                                   sums[..., ROLE_UPDATE])
    out[..., RS_ZF], out[..., RS_ZB] = sums[..., ROLE_ZERO_F], sums[..., ROLE_ZERO_B]
    out[..., RS_GRAD_P] = out[..., RS_GATHER_P] = np.array([rs.pieces for rs in steps], float)[:, None]
    out[..., RS_ZP] = np.array([rs.layers for rs in steps], float)[:, None]
    return out


def evaluate_space_fast(sc, base_dir: Path, phase: str | None, dims: dict[str, list],
                        progress: Callable[[int, int], None] | None = None, limit: int | None = None,
                        stats: FastStats | None = None):
    """(evaluated, feasible plans in enumeration order as a FeasibleTable, rejected by reason) over `dims`:
    `engine.evaluate_space`'s result, computed over arrays."""
    import time

    from ..efficiency import fitted, with_overrides
    from ..estimate import load_context, overlap_slowdown
    from ..kernels import hw_row
    from ..layers import pipeline_units
    from ..memory import (CUBLAS_WORKSPACE_BYTES, CUBLAS_WORKSPACES, CUDA_CONTEXT_BYTES, FRAGMENTATION, MASTER_BYTES,
                          MOMENT_BYTES, NCCL_BUFFSIZE_BYTES, NCCL_P2P_CHANNELS_PER_PEER, NCCL_RING_CHANNELS,
                          grad_bytes, head_transient_bytes, layer_activation_bytes, unit_activation_bytes)
    from ..run_costs import LAYER_UNITS, rank_step_ops
    from ..scenario import Parallelism
    from .engine import evaluate_space

    stats = stats if stats is not None else FastStats()
    t_start = time.perf_counter()
    model, hw0 = load_context(sc, base_dir)
    ph = phase_inputs(sc, phase)
    base_par = Parallelism.model_validate({**sc.parallelism.model_dump(), **ph.override}).model_dump()
    base_par.pop("dp", None)
    why = unsupported(sc, base_par, dims, ph.global_batch_size)
    if why is not None:   # the per-plan engine, counted as such
        evaluated, feasible, rejected = evaluate_space(sc, base_dir, phase, dims, progress, limit)
        stats.fallback, stats.fallback_reason = evaluated, why
        return evaluated, FeasibleTable.from_results(dims["gpu"], feasible, stats), rejected

    eff = with_overrides(fitted(), sc.efficiency)
    kern_mem, kern_time = _compiled()
    units = pipeline_units(model)
    nunits = model.num_layers + model.num_nextn_predict_layers
    tot_cnt = np.array([units.count(k) for k in KINDS], float)
    kinds = sorted(set(units))
    moment = MOMENT_BYTES[sc.optimizer.moment_dtype]
    # memory.rank_memory's constants: gradient and optimizer bytes per parameter, NCCL buffers per ring
    # communicator and per point-to-point peer, the CUDA context, fragmentation, cuBLAS workspaces
    consts = np.array([float(grad_bytes(_GradProbe(base_par["grad_dtype"]))), float(MASTER_BYTES + moment),
                       float(NCCL_RING_CHANNELS * 2 * NCCL_BUFFSIZE_BYTES),
                       float(NCCL_P2P_CHANNELS_PER_PEER * NCCL_BUFFSIZE_BYTES),
                       float(CUDA_CONTEXT_BYTES), float(FRAGMENTATION),
                       float(CUBLAS_WORKSPACES * CUBLAS_WORKSPACE_BYTES)])
    flags = np.array([overlap_slowdown(_SlowProbe(base_par["comm_sms"]), eff), float(base_par["tp_comm_overlap"]),
                      float(base_par["ep_comm_overlap"]), float(base_par["dp_comm_overlap"])])

    gpus, ns = dims["gpu"], dims["num_gpus"]
    G = len(gpus)
    TS, PS = _tp_sp(dims), _pp_sched(dims)
    CP, EP, ETP, MBS, Z = dims["cp"], dims["ep"], dims["etp"], dims["micro_batch_size"], dims["zero_stage"]
    REC, TPS = dims["recompute"], dims["tp"]
    inner = (len(TS), len(PS), len(CP), len(EP), len(ETP), len(MBS), len(Z), len(REC))
    B = math.prod(inner)
    total = G * len(ns) * B
    count = min(total, limit) if limit is not None else total
    gbs, seq = ph.global_batch_size, ph.seq_len
    max_dp = max(ns) + 1

    # value lookups per dimension index
    ts_tp = np.array([t for t, _ in TS], np.int64)
    ts_tpi = np.array([TPS.index(t) for t, _ in TS], np.int64)
    ts_sp = np.array([s for _, s in TS], np.int64)
    ps_pp = np.array([p for p, _, _ in PS], np.int64)
    ps_s = np.array([SCHEDULES.index(s) for _, s, _ in PS], np.int64)
    ps_v = np.array([v for _, _, v in PS], np.int64)
    cp_v, ep_v, etp_v = (np.array(x, np.int64) for x in (CP, EP, ETP))
    mbs_v, z_v = np.array(MBS, np.int64), np.array(Z, np.int64)
    rec_v = np.array([RECOMPUTE.index(r) for r in REC], np.int64)

    layouts = [make_layout(model, units, p, s, v) for p, s, v in PS]
    maxp = max(int(ps_pp.max()), 1)
    L_cnt = np.zeros((len(PS), maxp, NK))
    L_dense, L_expert = np.zeros((len(PS), maxp)), np.zeros((len(PS), maxp))
    L_head, L_hasd, L_hasm, L_pc = (np.zeros((len(PS), maxp), np.int64) for _ in range(4))
    # a rank's (dense, expert) parameters, its layer count and pp == 1 (the tied head), numbered, with units
    # that have them (rank step keys)
    classes: dict[tuple, int] = {}
    pc_units: list[tuple] = []
    for j, lo in enumerate(layouts):
        p = lo.pp
        L_cnt[j, :p], L_dense[j, :p], L_expert[j, :p] = lo.cnt, lo.dense, lo.expert
        L_head[j, :p], L_hasd[j, :p], L_hasm[j, :p] = lo.head, lo.has_dense, lo.has_moe
        for r, chs in enumerate(lo.per_rank):
            us = tuple(u for c in chs for u in lo.chunk_units[c])
            key = (float(lo.dense[r]), float(lo.expert[r]), sum(u in LAYER_UNITS for u in us), p == 1)
            if key not in classes:
                classes[key] = len(pc_units)
                pc_units.append(us)
            L_pc[j, r] = classes[key]
    # ranks with the same units by kind, chunks and parameters (and, under DualPipe, the same distance from the
    # ends, which sets its unpaired chunks) have the same step time: the step-time kernel costs one rank per
    # class and counts it `C_mult` times in the bubble's Σ (a uniform layout has a few classes, not pp ranks)
    C_cnt = np.zeros((len(PS), maxp, NK))
    C_nch, C_mult = np.zeros((len(PS), maxp)), np.zeros((len(PS), maxp))
    C_pc, C_h = np.zeros((len(PS), maxp), np.int64), np.zeros((len(PS), maxp), np.int64)
    C_n = np.zeros(len(PS), np.int64)
    for j, lo in enumerate(layouts):
        groups: dict[tuple, int] = {}
        for r in range(lo.pp):
            h = min(r, lo.pp - 1 - r) if lo.schedule == "dualpipe" else 0
            key = (tuple(lo.cnt[r]), lo.nch[r], int(L_pc[j, r]), h)
            c = groups.setdefault(key, len(groups))
            C_cnt[j, c], C_nch[j, c], C_pc[j, c], C_h[j, c] = lo.cnt[r], lo.nch[r], L_pc[j, r], h
            C_mult[j, c] += 1
        C_n[j] = len(groups)

    contexts: dict = {}
    profiles: dict = {}

    def context(g: int, n: int):
        ctx = contexts.get((g, n))
        if ctx is None:
            gpu = gpus[g]
            cluster = sc.cluster.model_copy(update={"gpu": gpu, "num_gpus": n})
            sc_g = sc.model_copy(update={"cluster": cluster})
            if gpu not in profiles:   # the profile does not depend on num_gpus: read once per GPU
                profiles[gpu] = hw0 if gpu == sc.cluster.gpu else load_context(sc_g, base_dir)[1]
            hw = profiles[gpu]
            price = sc.pricing.usd_per_gpu_hour or hw.price_usd_per_gpu_hour
            ctx = contexts[(g, n)] = (sc_g, hw, price)
        return ctx

    # hardware rows per GPU: unit ops (estimate.unit_costs) at rows 0..G-1, DP/optimizer ops
    # (run_costs.dp_and_optimizer) at G..2G-1; gpus_per_node per GPU (it sets every collective's tier)
    hw_rows, gpn = [], []
    for g in range(G):
        _, hw, _ = context(g, ns[0])
        hw_rows.append(hw_row(hw, sm_frac=1.0 - base_par["comm_sms"] / hw.num_sms, derate=eff.compute_derate,
                              overhead_s=eff.kernel_overhead_s, attention=base_par["attention"]))
        gpn.append(sc.cluster.gpus_per_node or hw.gpus_per_node)
    for g in range(G):
        _, hw, _ = context(g, ns[0])
        hw_rows.append(hw_row(hw, derate=eff.compute_derate, overhead_s=eff.kernel_overhead_s))
    hw_rows = np.array(hw_rows)
    # the GPUs that can run the phase at all (make_plan's last two checks); the others get no plans and no costs
    runs = np.array([g for g in range(G) if context(g, ns[0])[1].supports(ph.precision)
                     and base_par["comm_sms"] < context(g, ns[0])[1].num_sms], np.int64)
    gpn_list = sorted(set(gpn))
    gpn_i = [gpn_list.index(x) for x in gpn]

    make = _Plans(model, base_par, ph)
    acts = _Grown((NA,))
    # tables per hardware-independent key, a row per GPU
    U, P, RS = _Grown((G, 3, NK, NF)), _Grown((G, NF)), _Grown((G, NRS))
    UX = _Grown((G, NK))                     # once-per-step FP8 weight casts per (layer key, micro-batches)
    cast_ops: dict[int, tuple] = {}          # layer key → its weight casts at one micro-batch (_cast_rows)
    Q = _Grown((2,), np.int64)               # plan-level rank step key → (start, pp) in q_rows
    q_rows = np.zeros(0, np.int64)

    rejected = np.zeros(len(REASONS), np.int64)
    parts: dict[tuple[int, int], dict] = {}
    evaluated = 0
    t_tables = t_kern = 0.0
    # num_gpus outer, GPU inner: legality, memory and the keys depend on num_gpus only (a GPU adds its HBM
    # capacity and two yes/no capability checks), so they are computed once per num_gpus; the parts are put
    # back in the exact engine's (gpu, num_gpus) order at the end
    for ni, n in enumerate(ns):
        blocks = [(g, (g * len(ns) + ni) * B) for g in range(G) if (g * len(ns) + ni) * B < count]
        if not blocks:
            continue
        nmax = max(min(B, count - start) for _, start in blocks)
        # at most CHUNK plans at a time: the arrays of a block stay small whatever the space
        for lo in range(0, nmax, CHUNK):
            hi = min(nmax, lo + CHUNK)
            t0 = time.perf_counter()
            i_ts, i_ps, i_cp, i_ep, i_etp, i_mbs, i_z, i_rec = np.unravel_index(np.arange(lo, hi), inner)
            tp, sp = ts_tp[i_ts], ts_sp[i_ts]
            pp, sch, v = ps_pp[i_ps], ps_s[i_ps], ps_v[i_ps]
            cp, ep, etp, mbs, zero, rec = cp_v[i_cp], ep_v[i_ep], etp_v[i_etp], mbs_v[i_mbs], z_v[i_z], rec_v[i_rec]
            reason = np.zeros(hi - lo, np.int64)

            def fail(cond, key):
                reason[cond & (reason == 0)] = _R[key]

            # make_plan → _check_tp, then the cluster, then check_plan, in its order (the two GPU checks, last
            # there, per GPU below)
            fail(model.num_heads % tp != 0, "tp divides heads")
            fail(model.intermediate_size % tp != 0, "tp divides ffn")
            fail((0 if model.uses_mla else model.num_kv_heads) % tp != 0, "tp divides kv heads")
            mp = tp * pp * cp
            fail(n % mp != 0, "tp·pp·cp divides num_gpus")
            dp = np.maximum(n // mp, 1)
            if model.is_moe:
                fail(model.n_routed_experts % ep != 0, "ep divides experts")
                fail((tp * cp * dp) % (ep * etp) != 0, "ep·etp divides tp·cp·dp")
                fail(model.moe_intermediate_size % etp != 0, "etp divides expert ffn")
            else:
                fail((ep != 1) | (etp != 1), "no experts for ep")
            fail(seq % cp != 0, "cp divides seq_len")
            fail(gbs % (dp * mbs) != 0, "dp·mbs divides batch")
            chunks = pp * np.where(sch == S_INTER, v, 1)
            fail(nunits < chunks, "layers fill pp·v")
            m = gbs // (dp * mbs)
            dual = sch == S_DUAL
            fail(dual & (pp % 2 != 0), "dualpipe even pp")
            fail(dual & ((m % 2 != 0) | (m < 2 * pp)), "dualpipe even pp")
            fail((sch == S_INTER) & (m % pp != 0) & (pp != 1), "interleaved micro-batches")
            ok_all = np.flatnonzero(reason == 0)
            ok = ok_all if len(runs) else ok_all[:0]      # no GPU of the space can run the phase: nothing to cost
            ctx0 = context(int(runs[0]) if len(runs) else 0, n)

            def plan_at(i, ctx=ctx0):
                return make(ctx, int(tp[i]), bool(sp[i]), int(pp[i]), int(cp[i]), int(ep[i]), int(etp[i]),
                            SCHEDULES[sch[i]], int(v[i]), int(mbs[i]), int(zero[i]), RECOMPUTE[rec[i]], int(dp[i]))

            # memory first (no GPU field but the capacity enters it), with per-unit activation bytes per
            # (tp·sp, cp, mbs, recompute)
            def act_rows(at):
                out = np.zeros((len(at), NA))
                for j, a in enumerate(at):
                    pl = plan_at(ok[a])
                    for k, u in enumerate(KINDS):
                        out[j, k] = unit_activation_bytes(model, pl, u)
                    out[j, A_HEAD] = head_transient_bytes(model, pl)
                    out[j, A_NONE_DENSE] = layer_activation_bytes(model, pl, "dense", "none")
                    out[j, A_NONE_MOE] = layer_activation_bytes(model, pl, "moe", "none") if model.is_moe else 0.0
                return out

            o_ps, o_pp, o_sch, o_v, o_m, o_dp = i_ps[ok], pp[ok], sch[ok], v[ok], m[ok], dp[ok]
            o_tp, o_cp, o_ep, o_etp, o_z, o_rec = tp[ok], cp[ok], ep[ok], etp[ok], zero[ok], rec[ok]
            a_idx = acts.lookup(_pack((i_ts[ok], len(TS)), (i_cp[ok], len(CP)), (i_mbs[ok], len(MBS)),
                                      (i_rec[ok], len(REC))), act_rows)
            t1 = time.perf_counter()
            mem_ok = np.empty(len(ok))
            with _KERNEL_LOCK:
                kern_mem(o_ps, o_pp, o_sch, o_v, o_m, o_dp, o_tp, o_cp, o_ep, o_etp, o_z,
                         (o_rec == 2).astype(np.int64), a_idx, L_cnt, L_dense, L_expert, L_head, L_hasd, L_hasm,
                         acts.arr, consts, mem_ok)
            t2 = time.perf_counter()
            # keys without the GPU's node size (added per GPU): unit costs per layer key (engine.UnitCostCache's key:
            # the layer fields, FP8 weight caching and the micro-batches it is amortised over)
            # the micro-batches per chunk (fp8.microbatches_per_chunk) only scale the once-per-step weight casts:
            # they key a small table of their own (_cast_rows), not the layers' op tables
            cached = _weight_cached(ph, o_z)
            mpc_ok = np.where(cached, np.where(o_sch == S_DUAL, np.maximum(1, o_m // 2), np.maximum(1, o_m)), 0)
            # (the recompute mode is not in the key: each row holds the three modes, see _unit_ops)
            uo_ok = _pack((i_ts[ok], len(TS)), (i_cp[ok], len(CP)), (i_ep[ok], len(EP)), (i_etp[ok], len(ETP)),
                          (i_mbs[ok], len(MBS)), (cached, 2))
            # the p2p unit (layers.pipeline_p2p) reads pp == 1, the micro-batch's tokens (mbs, cp), tp and its stride
            # tp·cp·dp with the node size; the tests vary the other layer fields against the exact engine
            po_ok = _pack((ts_tpi[i_ts[ok]], len(TPS)), (i_cp[ok], len(CP)), (i_mbs[ok], len(MBS)),
                          ((o_pp == 1).astype(np.int64), 2), (o_dp, max_dp))
            # per-rank DP / optimizer costs: a plan-level key (layout, tp, cp, dp, ep, etp, zero), then per rank
            qk_ok = _pack((o_ps, len(PS)), (ts_tpi[i_ts[ok]], len(TPS)), (i_cp[ok], len(CP)), (o_dp, max_dp),
                          (i_ep[ok], len(EP)), (i_etp[ok], len(ETP)), (i_z[ok], len(Z)))
            t_tables += (t1 - t0) + (time.perf_counter() - t2)
            t_kern += t2 - t1

            for g, start in blocks:
                t0 = time.perf_counter()
                nb = min(B, count - start) - lo    # this block's plans in the chunk
                if nb <= 0:
                    continue
                nb = min(nb, hi - lo)
                sc_g, hw, price = ctx = context(g, n)
                evaluated += nb
                stats.vectorised += nb
                rejected += np.bincount(reason[:nb], minlength=len(REASONS))
                legal = np.ones(len(ok_all), bool) if nb == hi - lo else ok_all < nb
                if not hw.supports(ph.precision) or not base_par["comm_sms"] < hw.num_sms:
                    why = "precision unsupported" if not hw.supports(ph.precision) else "comm_sms"
                    rejected[_R[why]] += int(legal.sum())
                    if progress is not None:
                        progress(evaluated, count)
                    continue
                fits = mem_ok <= hw.hbm_capacity_bytes
                rejected[_R["memory"]] += int((legal & ~fits).sum())
                so = np.flatnonzero(legal & fits)          # into the ok arrays
                sel = ok[so]                               # into the block's arrays
                gk = gpn_i[g]

                def plan_g(i, ctx=ctx):
                    return plan_at(i, ctx)

                def one_mb(i):   # the plan at one micro-batch per step (its weight casts at share 1, see
                    plan = plan_g(i)             # _cast_rows) and without recompute (the modes: _unit_ops); a copy
                    plan.__dict__.update(global_batch_size=plan.dp * plan.micro_batch_size, recompute="none")
                    return plan

                uk = uo_ok[so] * len(gpn_list) + gk

                def u_make(at):
                    casts: list = []
                    rows = _unit_rows(model, [one_mb(sel[a]) for a in at], kinds, hw_rows, runs, G, casts, True)
                    cast_ops.update(zip(uk[at].tolist(), casts))
                    return rows[:, :, :, :NK, :]

                u_idx = U.lookup(uk, _chunked(u_make, 16)) * 3 + o_rec[so]    # the plan's recompute mode
                xk = uk * (gbs + 1) + mpc_ok[so]
                x_idx = UX.lookup(xk, _chunked(lambda at: _cast_rows(
                    [cast_ops[k] for k in uk[at].tolist()], mpc_ok[so][at].tolist(), hw_rows, runs, G), 4096))
                p_idx = P.lookup(po_ok[so] * len(gpn_list) + gk, _chunked(lambda at: _unit_rows(
                    model, [plan_g(sel[a]) for a in at], ["p2p"], hw_rows, runs, G)[:, :, NK, :], 2048))

                def q_make(at):
                    nonlocal q_rows
                    i = sel[at]
                    reps = C_n[i_ps[i]]                    # rank classes of each plan's layout
                    owner = np.repeat(np.arange(len(at)), reps)
                    r = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
                    ii = i[owner]
                    pc = C_pc[i_ps[ii], r]
                    # run_costs.rank_step_ops reads the rank's units only through their parameters (dense, expert,
                    # memory._params_sum with pp) and the count of layers: keyed on those values (L_pc), not the
                    # units' tuple, with the plan fields it reads (tp, cp, dp, ep, etp, zero; the node size)
                    rk = _pack((pc, len(pc_units)), (ts_tpi[i_ts[ii]], len(TPS)), (i_cp[ii], len(CP)),
                               (dp[ii], max_dp), (i_ep[ii], len(EP)), (i_etp[ii], len(ETP)), (i_z[ii], len(Z)),
                               (np.full(len(ii), gk), len(gpn_list)))
                    rows = RS.lookup(rk, _chunked(lambda at2: _rank_step_rows(
                        [rank_step_ops(model, plan_g(ii[a]), moment, list(pc_units[pc[a]])) for a in at2], hw_rows,
                        runs, G), 2048))
                    out = np.stack([len(q_rows) + np.cumsum(reps) - reps, reps], axis=1)
                    q_rows = np.concatenate([q_rows, rows])
                    return out

                q_idx = Q.lookup(qk_ok[so] * len(gpn_list) + gk, q_make)
                t3 = time.perf_counter()
                step = np.empty(len(so))
                Ug = np.ascontiguousarray(U.arr[:, g]).reshape(-1, NK, NF)    # row: layer key · 3 + mode
                Pg = np.ascontiguousarray(P.arr[:, g])
                with _KERNEL_LOCK:
                    kern_time(o_ps[so], o_pp[so], o_sch[so], o_v[so], o_m[so], u_idx, x_idx, p_idx, Q.arr[q_idx, 0],
                              q_rows, C_cnt, C_nch, C_mult, C_h, C_n, Ug, np.ascontiguousarray(UX.arr[:, g]), Pg,
                              np.ascontiguousarray(RS.arr[:, g]), flags, step)
                t4 = time.perf_counter()
                t_tables += t3 - t0
                t_kern += t4 - t3

                # estimate._figures
                mf_units = (Ug[u_idx, :, F_MFLOPS] * tot_cnt).sum(axis=1)
                model_flops = (mf_units + chunks[sel] * Pg[p_idx, F_MFLOPS]) * (tp[sel] * cp[sel] * m[sel] * dp[sel])
                seconds = ph.steps * step
                hours = n * seconds / 3600
                # plan columns in the narrowest type that holds the space's values (memory per feasible plan)
                parts[(g, ni, lo)] = {
                    "gpu": np.full(len(sel), g, _int_type(G)), "num_gpus": np.full(len(sel), n, _int_type(n)),
                    **{k: a[sel].astype(_int_type(a.max(initial=0))) for k, a in (
                        ("tp", tp), ("pp", pp), ("cp", cp), ("ep", ep), ("etp", etp), ("dp", dp),
                        ("zero_stage", zero), ("micro_batch_size", mbs), ("virtual_stages", v), ("schedule", sch),
                        ("recompute", rec), ("sp", sp))},
                    "step_time_s": step, "wall_clock_days": seconds / 86400, "gpu_hours": hours,
                    "cost_usd": hours * price, "mfu": model_flops / n / step / hw.peak_flops["bf16"],
                    "memory_gib_per_gpu": mem_ok[so] / 2 ** 30}
                if progress is not None:
                    progress(evaluated, count)
    ordered = [parts[k] for k in sorted(parts)]
    parts.clear()
    if ordered:
        cols = {}
        for k in list(ordered[0]):      # column by column, each part's copy freed once merged (peak memory)
            cols[k] = np.concatenate([p[k] for p in ordered])
            for p in ordered:
                del p[k]
        table = FeasibleTable(gpus, cols, stats)
    else:
        table = FeasibleTable.empty(gpus)
        table.stats = stats
    stats.unit_keys, stats.p2p_keys, stats.rank_step_keys, stats.act_keys = len(U.arr), len(P.arr), len(RS.arr), \
        len(acts.arr)
    stats.seconds = {"tables": t_tables, "kernels": t_kern, "total": time.perf_counter() - t_start}
    rejected[0] = 0
    return evaluated, table, {REASONS[i]: int(c) for i, c in enumerate(rejected) if c and i}


class _GradProbe:
    def __init__(self, grad_dtype):
        self.grad_dtype = grad_dtype


class _SlowProbe:
    def __init__(self, comm_sms):
        self.comm_sms = comm_sms


def _int_type(largest: int):
    return np.int8 if largest < 2 ** 7 else np.int16 if largest < 2 ** 15 else np.int32


def _weight_cached(ph, zero: np.ndarray) -> np.ndarray:
    # fp8.weight_cached (zero3_gather_once goes to the per-plan engine)
    if ph.precision == "fp8" and ph.fp8_recipe in ("delayed", "blockwise"):
        return (zero < 3).astype(np.int64)
    return np.zeros(len(zero), np.int64)


def _compiled():
    global _KERNELS
    if _KERNELS is None:
        import types

        from numba import njit
        # numba resolves globals at compile time: the kernels' namespace holds the helpers' compiled twins
        from numba import prange
        ns = {**_time_kernel.__globals__, "_exposed": njit(_exposed), "_pipelined": njit(_pipelined),
              "prange": prange}
        # parallel: plans are independent, so the loop over them runs on every core
        _KERNELS = tuple(njit(cache=True, parallel=True)(types.FunctionType(f.__code__, ns, f.__name__))
                         for f in (_memory_kernel, _time_kernel))
    return _KERNELS

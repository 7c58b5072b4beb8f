"""The fast search engine: the plans, rejection counts and figures of `engine.evaluate_space` (one
`make_plan` + `estimate_phase` per plan), without one Python object per plan.

How (issue 8, "a shape that would get there"):
1. The space's product is enumerated as integer index arrays, one num_gpus at a time and at most CHUNK plans
   at a time (every GPU shares the arrays), and the feasible plans are put back in the order of
   `engine._combos` at the end, as numpy columns (`FeasibleTable`, search/columns.py: a PlanResult is made
   only when read).
2. `make_plan`'s divisibility and capability checks run as numpy masks, in its order, so each rejected plan
   gets the reason key of the first check it fails (`engine._REASONS`; tests/test_search_fast.py compares the
   verdicts with `make_plan` on random plans, and the counts with the exact engine).
3. What costs a Python call is computed once per distinct key and kept in tables: per-unit op costs per layer
   key (the op tables of `estimate.unit_costs`, keyed as `engine.UnitCostCache` but for the recompute mode,
   whose three variants one op table gives, and the micro-batches that share an FP8 weight cast, which only
   scale the cast ops: a small table of their own), the p2p unit per (tp, cp, mbs, pp == 1, dp), per-rank DP /
   optimizer costs per (rank parameters, tp, cp, dp, ep, etp, zero) (`run_costs.rank_step_ops`), per-unit
   activation bytes per (tp, sp, cp, mbs, recompute) (`memory.unit_activation_bytes`), per-rank unit counts
   and parameters per pipeline layout (pp, schedule, v) (`layout.layout`, `layout.rank_chunks`,
   `memory._params_sum`). The op tables of a batch of new keys go
   through the cost kernel (`kernels.op_seconds`) in one call, on every GPU of the space at once, and their
   seconds are summed op by op in the order `unit_costs` / `RankStepOps.assemble` sum them (the tables and
   their row layouts: search/key_tables.py).
4. Two numba kernels (search/combine.py) combine the tables per plan, in parallel over plans: the memory
   check first (`memory.rank_memory` per rank; the worst rank against each GPU's HBM, as
   `estimate._check_memory`), then the step time of the plans that fit (`schedule.rank_times`,
   `step_breakdown`, `estimate.dp_exposed` / `gather_exposed`), spelled out over scalars. The figures
   (`estimate._figures`) are numpy expressions.

Scenarios that set what this path does not model (a balanced stage layout, HSDP `zero_shard_size`,
`zero3_gather_once`, `recompute_fraction` < 1) go through the exact engine instead; `FastStats` counts them
and `search` reports it. Sums run in another order than the per-plan path (a rank's units by kind, not unit by
unit), so figures agree to rounding (the tests check 1e-9 relative; measured ~1e-15), not bit for bit.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from .columns import RECOMPUTE, S_DUAL, S_INTER, SCHEDULES, FastStats, FeasibleTable
from .combine import _KERNEL_LOCK, _compiled
from .engine import _REASONS, phase_inputs
from .key_tables import (A_HEAD, A_NONE_DENSE, A_NONE_MOE, F_MFLOPS, KINDS, NA, NF, NK, NRS, _cast_rows, _chunked,
                         _Grown, _pack, _rank_step_rows, _unit_rows, make_layout)

__all__ = ["CHUNK", "REASONS", "FastStats", "FeasibleTable", "evaluate_space_fast", "unsupported"]

# reason keys in the order make_plan checks them (index 0 = legal)
REASONS = ("", "tp divides heads", "tp divides ffn", "tp divides kv heads", "tp·pp·cp divides num_gpus",
           "ep divides experts", "ep·etp divides tp·cp·dp", "etp divides expert ffn", "no experts for ep",
           "cp divides seq_len", "dp·mbs divides batch", "layers fill pp·v", "dualpipe even pp",
           "interleaved micro-batches", "precision unsupported", "comm_sms", "memory")
assert set(REASONS[1:]) <= {k for k, _ in _REASONS}
_R = {k: i for i, k in enumerate(REASONS)}

CHUNK = 1 << 19         # plans enumerated at a time (per num_gpus): bounds the engine's working arrays


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


# ---- the engine -------------------------------------------------------------------------------------------

def _tp_sp(dims):
    return [(t, s) for t in dims["tp"] for s in (dims["sequence_parallel"] if t > 1 else [False])]


def _pp_sched(dims):
    # as engine._combos: virtual stages only under interleaved; pp = 1 gets one schedule
    sched_v = [(s, v) for s in dims["schedule"] for v in (dims["virtual_stages"] if s == "interleaved" else [1])]
    one = "1f1b" if "1f1b" in dims["schedule"] else dims["schedule"][0]
    sched_v1 = [sv for sv in sched_v if sv[0] == one][:1]
    return [(pp, s, v) for pp in dims["pp"] for s, v in (sched_v1 if pp == 1 else sched_v)]


def evaluate_space_fast(sc, base_dir: Path, phase: str | None, dims: dict[str, list],
                        progress: Callable[[int, int], None] | None = None, limit: int | None = None,
                        stats: FastStats | None = None):
    """(evaluated, feasible plans in enumeration order as a FeasibleTable, rejected by reason) over `dims`:
    `engine.evaluate_space`'s result, computed over arrays."""
    import time

    from ..efficiency import fitted, with_overrides
    from ..estimate import load_context, overlap_slowdown
    from ..layers import pipeline_units
    from ..memory import MOMENT_BYTES, head_transient_bytes, layer_activation_bytes, unit_activation_bytes
    from ..run_costs import rank_step_ops
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
    consts = _memory_constants(base_par, moment)
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

    (L_cnt, L_dense, L_expert, L_head, L_hasd, L_hasm), (C_cnt, C_nch, C_mult, C_pc, C_h, C_n), pc_units = \
        _layout_tables(model, units, PS)

    context = _Contexts(sc, base_dir, gpus, hw0)
    hw_rows, gpn, runs = _hardware_rows(context, G, ns[0], sc, ph, base_par, eff)
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
            reason, dp, m, chunks = _legality(model, n, seq, gbs, nunits, tp, pp, cp, ep, etp, mbs, sch, v)
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
    table = _join_parts(parts, gpus, stats)
    stats.unit_keys, stats.p2p_keys, stats.rank_step_keys, stats.act_keys = len(U.arr), len(P.arr), len(RS.arr), \
        len(acts.arr)
    stats.seconds = {"tables": t_tables, "kernels": t_kern, "total": time.perf_counter() - t_start}
    rejected[0] = 0
    return evaluated, table, {REASONS[i]: int(c) for i, c in enumerate(rejected) if c and i}


# ---- the engine's steps -----------------------------------------------------------------------------------

def _memory_constants(base_par: dict, moment: float) -> np.ndarray:
    """memory.rank_memory's constants, as the memory kernel reads them: gradient and optimizer bytes per
    parameter, NCCL buffers per ring communicator and per point-to-point peer, the CUDA context, fragmentation,
    cuBLAS workspaces."""
    from ..memory import (CUBLAS_WORKSPACE_BYTES, CUBLAS_WORKSPACES, CUDA_CONTEXT_BYTES, FRAGMENTATION, MASTER_BYTES,
                          NCCL_BUFFSIZE_BYTES, NCCL_P2P_CHANNELS_PER_PEER, NCCL_RING_CHANNELS, grad_bytes)
    return np.array([float(grad_bytes(_GradProbe(base_par["grad_dtype"]))), float(MASTER_BYTES + moment),
                     float(NCCL_RING_CHANNELS * 2 * NCCL_BUFFSIZE_BYTES),
                     float(NCCL_P2P_CHANNELS_PER_PEER * NCCL_BUFFSIZE_BYTES),
                     float(CUDA_CONTEXT_BYTES), float(FRAGMENTATION),
                     float(CUBLAS_WORKSPACES * CUBLAS_WORKSPACE_BYTES)])


def _layout_tables(model, units: list[str], PS: list[tuple]):
    """Per pipeline layout (pp, schedule, v) of the space, padded to the largest pp: what the memory kernel reads
    per rank (L_*: units by kind, dense / expert parameters, head, dense / MoE layer held), the step-time
    kernel's rank classes (C_*), and the units of each rank-parameter class (the rank step keys)."""
    from ..run_costs import LAYER_UNITS
    layouts = [make_layout(model, units, p, s, v) for p, s, v in PS]
    maxp = max(max(p for p, _, _ in PS), 1)
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
    return (L_cnt, L_dense, L_expert, L_head, L_hasd, L_hasm), (C_cnt, C_nch, C_mult, C_pc, C_h, C_n), pc_units


class _Contexts:
    """(scenario, hardware profile, price) per (GPU index, num_gpus), made once: the same tuple each time (the
    plan templates of _Plans are keyed on it)."""

    def __init__(self, sc, base_dir: Path, gpus: list[str], hw0):
        self.sc, self.base_dir, self.gpus, self.hw0 = sc, base_dir, gpus, hw0
        self._made: dict = {}
        self._profiles: dict = {}

    def __call__(self, g: int, n: int):
        from ..estimate import load_context
        ctx = self._made.get((g, n))
        if ctx is None:
            sc = self.sc
            gpu = self.gpus[g]
            cluster = sc.cluster.model_copy(update={"gpu": gpu, "num_gpus": n})
            sc_g = sc.model_copy(update={"cluster": cluster})
            if gpu not in self._profiles:   # the profile does not depend on num_gpus: read once per GPU
                self._profiles[gpu] = self.hw0 if gpu == sc.cluster.gpu else load_context(sc_g, self.base_dir)[1]
            hw = self._profiles[gpu]
            price = sc.pricing.usd_per_gpu_hour or hw.price_usd_per_gpu_hour
            ctx = self._made[(g, n)] = (sc_g, hw, price)
        return ctx


def _hardware_rows(context: _Contexts, G: int, n0: int, sc, ph, base_par: dict, eff):
    """(hardware rows, gpus_per_node per GPU, the GPUs that can run the phase)."""
    from ..kernels import hw_row
    # hardware rows per GPU: unit ops (estimate.unit_costs) at rows 0..G-1, DP/optimizer ops
    # (run_costs.dp_and_optimizer) at G..2G-1; gpus_per_node per GPU (it sets every collective's tier)
    hw_rows, gpn = [], []
    for g in range(G):
        _, hw, _ = context(g, n0)
        hw_rows.append(hw_row(hw, sm_frac=1.0 - base_par["comm_sms"] / hw.num_sms, derate=eff.compute_derate,
                              overhead_s=eff.kernel_overhead_s, attention=base_par["attention"]))
        gpn.append(sc.cluster.gpus_per_node or hw.gpus_per_node)
    for g in range(G):
        _, hw, _ = context(g, n0)
        hw_rows.append(hw_row(hw, derate=eff.compute_derate, overhead_s=eff.kernel_overhead_s))
    hw_rows = np.array(hw_rows)
    # the GPUs that can run the phase at all (make_plan's last two checks); the others get no plans and no costs
    runs = np.array([g for g in range(G) if context(g, n0)[1].supports(ph.precision)
                     and base_par["comm_sms"] < context(g, n0)[1].num_sms], np.int64)
    return hw_rows, gpn, runs


def _legality(model, n: int, seq: int, gbs: int, nunits: int, tp, pp, cp, ep, etp, mbs, sch, v):
    """The reason index (0: legal) of the first check of make_plan each plan fails, with its dp, micro-batches
    per step and pipeline chunks."""
    reason = np.zeros(len(tp), np.int64)

    def fail(cond, key):
        reason[cond & (reason == 0)] = _R[key]

    # make_plan → _check_tp, then the cluster, then check_plan, in its order (the two GPU checks, last
    # there, per GPU in evaluate_space_fast)
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
    return reason, dp, m, chunks


def _join_parts(parts: dict, gpus: list[str], stats: FastStats) -> FeasibleTable:
    """The feasible plans of each (gpu, num_gpus, chunk) part, in that order (the exact engine's), as one
    table; `parts` is emptied."""
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
    return table


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

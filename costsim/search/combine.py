"""The two numba kernels of the fast engine (search/fast.py, step 4 of its docstring), which combine the key
tables (search/key_tables.py) per plan, in parallel over plans: `_memory_kernel` (the worst rank's memory) and
`_time_kernel` (the step time), with the schedule helpers they inline, and `_compiled`, which compiles them once
per process (numba's on-disk cache: cache=True, next to this file).
"""
from __future__ import annotations

import threading

import numpy as np

_KERNELS = None         # (memory, time) compiled, once per process (_compiled)
# one search at a time in the parallel kernels of a process: numba's workqueue threading layer (the fallback
# where neither TBB nor OpenMP is installed) must not be entered by two threads at once (a dask worker runs
# parts on threads); each call still runs on every core
_KERNEL_LOCK = threading.Lock()
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

"""The fast engine's tables built once per distinct key (search/fast.py, step 3 of its docstring): the row
layouts the numba kernels read (search/combine.py), a pipeline layout's per-rank units and parameters
(`Layout`), the grown key → row tables (`_Grown`, `_pack`), and the rows themselves — per-unit op costs of
`estimate.unit_costs` (`_unit_ops`, `_unit_rows`), the once-per-step FP8 weight casts (`_cast_rows`) and the
per-rank DP / optimizer costs of `RankStepOps.assemble` (`_rank_step_rows`) — each a batch of op tables costed
on every GPU of the space in one cost-kernel call (`kernels.op_seconds`), summed op by op in the per-plan
path's order.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .columns import RECOMPUTE

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

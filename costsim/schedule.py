"""Step time from per-stage costs: closed-form pipeline bubbles and what communication stays exposed.

Bubbles (formulas.md): 1F1B (p−1)(F+B); interleaved (p−1)(F+B)/v (Narayanan et al. 2021); zero-bubble ZB1P
(p−1)(F+B−2W); DualPipe (p/2−1)(F&B+B−3W) (DeepSeek-V3 report, Table 2), with B the full backward (input- and
weight-grad) and F&B an overlapped forward+backward pair. With unequal stages the fill-and-drain generalises to
Σᵢ Xᵢ − maxᵢ Xᵢ (equal stages give (p−1)·X).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class StageCost:
    """Seconds per micro-batch on one pipeline stage (or rank)."""
    f: float = 0.0                 # forward compute
    b: float = 0.0                 # input-gradient compute, including recompute
    w: float = 0.0                 # weight-gradient compute
    attn_f: float = 0.0            # attention part of f / b (ring-attention CP exchange hides behind it)
    attn_b: float = 0.0
    comm: dict[tuple[str, str], float] = field(default_factory=dict)   # (pass, overlap class) → s
    model_flops: float = 0.0       # per micro-batch, this GPU
    hw_flops: float = 0.0
    nvlink_busy: float = 0.0       # seconds the GPU's NVLink / network port carries this stage's traffic
    network_busy: float = 0.0
    # what `comm` puts on the wires, keyed like it (the step simulator turns it into flows on link resources):
    comm_net_bytes: dict[tuple[str, str], float] = field(default_factory=dict)   # network wire bytes
    comm_nvl_bytes: dict[tuple[str, str], float] = field(default_factory=dict)   # NVLink wire bytes
    comm_net_s: dict[tuple[str, str], float] = field(default_factory=dict)       # bytes / the collective's busbw:
    comm_nvl_s: dict[tuple[str, str], float] = field(default_factory=dict)       # the link busy, had it to itself

    _FLOATS: ClassVar = ("f", "b", "w", "attn_f", "attn_b", "model_flops", "hw_flops", "nvlink_busy",
                         "network_busy")
    _DICTS: ClassVar = ("comm", "comm_net_bytes", "comm_nvl_bytes", "comm_net_s", "comm_nvl_s")

    def __add__(self, o: "StageCost") -> "StageCost":
        # spelled out (no getattr loops): `costsim search` adds many of these; the same sums, term by term
        def merged(a: dict, b: dict) -> dict:
            d = dict(a)
            for key, v in b.items():
                d[key] = d.get(key, 0.0) + v
            return d

        return StageCost(self.f + o.f, self.b + o.b, self.w + o.w, self.attn_f + o.attn_f,
                         self.attn_b + o.attn_b, merged(self.comm, o.comm), self.model_flops + o.model_flops,
                         self.hw_flops + o.hw_flops, self.nvlink_busy + o.nvlink_busy,
                         self.network_busy + o.network_busy, merged(self.comm_net_bytes, o.comm_net_bytes),
                         merged(self.comm_nvl_bytes, o.comm_nvl_bytes), merged(self.comm_net_s, o.comm_net_s),
                         merged(self.comm_nvl_s, o.comm_nvl_s))

    def scaled(self, k: float) -> "StageCost":
        out = {name: getattr(self, name) * k for name in self._FLOATS}
        out.update({name: {key: v * k for key, v in getattr(self, name).items()} for name in self._DICTS})
        return StageCost(**out)

    def c(self, pass_: str, cls: str) -> float:
        return self.comm.get((pass_, cls), 0.0)


def exposed(comm: float, under: float, slowdown: float) -> float:
    """Seconds `comm` adds to the critical path when it runs beside `under` seconds of compute. While both run,
    compute slows by the SMs and HBM bandwidth the communication kernel takes (efficiency.py: overlap_slowdown):
    the pair ends at max(comm, under + slowdown·min(comm, under)) — when the communication is the longer, the
    slowed compute is off the critical path."""
    return max(comm - under, slowdown * min(comm, under), 0.0)


def pipelined(comm: float, under: float, pieces: float, slowdown: float) -> float:
    """Communication issued in `pieces` equal parts, each overlapping the compute next to it — FSDP's prefetch of
    the next layer's gather, DDP/Megatron gradient buckets: one piece (the first gather, the last bucket) has
    nothing to hide behind; the rest hides behind the other pieces' compute."""
    if pieces <= 1:
        return comm
    piece = comm / pieces
    return piece + exposed(comm - piece, under * (pieces - 1) / pieces, slowdown)


@dataclass(frozen=True)
class RankTimes:
    """One rank's per-micro-batch times: compute, and communication left exposed."""
    f_compute: float
    b_compute: float
    w: float
    exposed_f: float
    exposed_b: float
    pair: float = 0.0              # DualPipe: an overlapped forward+backward chunk pair (F&B)
    a2a: float = 0.0               # DualPipe: EP all-to-all of one forward + one backward chunk
    a2a_f: float = 0.0             # DualPipe: the forward chunk's share of `a2a`
    sends: float = 0.0             # PP sends of one micro-batch when they overlap compute: they still delay
                                   # the fill and drain, hop by hop (pipeline_bubble)

    @property
    def f(self) -> float:
        return self.f_compute + self.exposed_f

    @property
    def b(self) -> float:
        return self.b_compute + self.exposed_b

    @property
    def steady(self) -> float:
        """Time per micro-batch in the steady state."""
        return self.pair if self.pair else self.f + self.b + self.w


@dataclass(frozen=True)
class Overlap:
    """What may overlap compute in this plan, and at what cost (see exposed_pass_comm)."""
    tp: bool = False               # TP collectives overlapped with the neighbouring GEMMs (TE userbuffers, async TP)
    ep: bool = False               # EP all-to-all overlapped with the other micro-batch's compute (Megatron-Core)
    slowdown: float = 0.0          # compute lost while communication runs beside it (0 when SMs are reserved)
    zero_pieces: float = 1.0       # ZeRO-3 layers on the rank: gathers prefetched one layer ahead
    pp: bool = False               # PP sends asynchronous beside compute (interleaved: Megatron-Core
                                   # overlap_p2p_comm; DualPipe); 1F1B and ZB-H1 wait for them


def overlap_for(plan, slowdown: float, zero_pieces: float = 1.0) -> Overlap:
    """What the plan overlaps: its flags, plus PP sends under the schedules that issue them asynchronously."""
    return Overlap(tp=plan.tp_comm_overlap, ep=plan.ep_comm_overlap, slowdown=slowdown, zero_pieces=zero_pieces,
                   pp=plan.schedule in ("interleaved", "dualpipe"))


def exposed_by_class(s: StageCost, pass_: str, schedule: str, ov: Overlap, with_pp: bool = True) -> dict[str, float]:
    """Communication of one pass (F or B) left on the critical path, per overlap class. Each overlapped stream
    hides behind the compute it actually runs next to: TP beside the pass's GEMMs (not attention), ring-attention
    CP beside attention, ZeRO-3 gathers (and backward reduce-scatters) layer by layer with one layer exposed, EP
    beside the paired chunk under DualPipe (see rank_times) or the other micro-batch with EP overlap; PP sends
    exposed."""
    compute, attn = (s.f, s.attn_f) if pass_ == "F" else (s.b + s.w, s.attn_b)
    tp, ep = s.c(pass_, "tp"), s.c(pass_, "ep")
    out = {"tp": exposed(tp, compute - attn, ov.slowdown) if ov.tp else tp,
           "cp": exposed(s.c(pass_, "cp"), attn, ov.slowdown),
           "zero": pipelined(s.c(pass_, "zero"), compute, ov.zero_pieces, ov.slowdown),
           "pp": (exposed(s.c(pass_, "pp"), compute, ov.slowdown) if ov.pp else s.c(pass_, "pp")) if with_pp else 0.0,
           "ep": 0.0 if schedule == "dualpipe" else (exposed(ep, compute, ov.slowdown) if ov.ep else ep)}
    return out


def exposed_pass_comm(s: StageCost, pass_: str, schedule: str, ov: Overlap, with_pp: bool = True) -> float:
    """Communication of one pass left on the critical path (the sum of exposed_by_class)."""
    return sum(exposed_by_class(s, pass_, schedule, ov, with_pp).values())


def rank_times(s: StageCost, schedule: str, ov: Overlap) -> RankTimes:
    dual = schedule == "dualpipe"
    ef = exposed_pass_comm(s, "F", schedule, ov)
    eb = exposed_pass_comm(s, "B", schedule, ov)
    sends = s.c("F", "pp") + s.c("B", "pp") if ov.pp else 0.0
    if not dual:
        return RankTimes(s.f, s.b, s.w, ef, eb, sends=sends)
    # DualPipe: the EP all-to-all of one chunk hides behind the compute of the paired chunk
    busy = s.f + s.b + s.w + ef + eb
    a2a = s.c("F", "ep") + s.c("B", "ep")
    return RankTimes(s.f, s.b, s.w, ef, eb, pair=busy + exposed(a2a, busy, ov.slowdown), a2a=a2a,
                     a2a_f=s.c("F", "ep"), sends=sends)


@dataclass(frozen=True)
class StepBreakdown:
    forward: float
    backward: float
    bubble: float
    exposed_comm: float
    optimizer: float
    critical_rank: int
    per_mb: RankTimes
    dualpipe_phases: dict[str, float] | None = None   # the ISCA '25 Table 4 view of a DualPipe step

    @property
    def total(self) -> float:
        return self.forward + self.backward + self.bubble + self.exposed_comm + self.optimizer

    def as_dict(self) -> dict[str, float]:
        return {"forward": self.forward, "backward": self.backward, "bubble": self.bubble,
                "exposed_comm": self.exposed_comm, "optimizer": self.optimizer}


def pipeline_bubble(ranks: list[RankTimes], schedule: str, v: int) -> float:
    """Idle time per step by schedule (closed forms in the module docstring)."""
    p = len(ranks)
    if p == 1:
        return 0.0
    if schedule == "dualpipe":
        return (p / 2 - 1) * max(r.pair + (r.b + r.w) - 3 * r.w + r.sends for r in ranks)
    if schedule == "zero-bubble":
        x = [r.f + r.b - r.w + r.sends for r in ranks]      # F + B_full − 2W with B_full = b + w
    else:
        x = [r.f + r.b + r.w + r.sends for r in ranks]
    fill = sum(x) - max(x)
    return fill / v if schedule == "interleaved" else fill


def dualpipe_unpaired(p: int, rank: int, m: int) -> int:
    """Forward (and as many backward) chunks a DualPipe rank runs without a partner to hide its all-to-all, counted
    from the eight-step program of deepseek-ai/DualPipe (h = min(rank, p−1−rank), p/2 ranks per half): step 1
    runs 2(p/2 − h − 1) forwards, step 2 h + 1 pairs of forwards, step 3 p/2 − h − 1 zero-bubble forwards —
    3·p/2 − h − 1 in all (23 on the end ranks and 16 in the middle for p = 16); the cool-down mirrors them."""
    h = min(rank, p - 1 - rank)
    return min(m, 3 * (p // 2) - h - 1)


def dualpipe_separate_w(p: int, rank: int, m: int) -> int:
    """Weight-gradient chunks a DualPipe rank runs on their own (zero-bubble), from the same program: p/2 − h − 1
    in step 3, p/2 − h − 1 in step 7 and h + 1 in step 8; its other backward chunks run B and W together."""
    h = min(rank, p - 1 - rank)
    return min(dualpipe_unpaired(p, rank, m), 2 * (p // 2) - h - 1)


def micro_batch_time(r: RankTimes, m: int, unpaired: int) -> float:
    """All m micro-batches of one rank. Under DualPipe the warm-up forwards and cool-down backwards that have
    no partner chunk (`unpaired` of each, as many as micro-batches in flight) cannot hide their all-to-all."""
    if not r.pair:
        return m * r.steady
    alone = r.f + r.b + r.w + r.a2a
    return (m - unpaired) * r.pair + unpaired * alone


def step_breakdown(ranks: list[RankTimes], schedule: str, v: int, m: int, dp_exposed: list[float],
                   optimizer: list[float], unpaired: int | list[int] = 0) -> StepBreakdown:
    """Step = m micro-batches on the slowest rank + bubble + exposed DP tail + optimizer. `unpaired`: DualPipe
    chunks without a partner, one count for every rank or one per rank."""
    per = unpaired if isinstance(unpaired, list) else [unpaired] * len(ranks)
    crit = max(range(len(ranks)),
               key=lambda i: micro_batch_time(ranks[i], m, per[i]) + dp_exposed[i] + optimizer[i])
    r = ranks[crit]
    unpaired = per[crit]
    compute = m * (r.f_compute + r.b_compute + r.w)
    bubble = float(pipeline_bubble(ranks, schedule, v))
    phases = None
    if r.pair:   # warm-up forwards, paired steady state, cool-down backward and weight-grad chunks
        # as ISCA '25 Table 4 splits it: a cool-down backward that runs with its weight gradient counts in 1B
        alone_w = dualpipe_separate_w(len(ranks), crit, m) if schedule == "dualpipe" else unpaired
        alone_w = min(alone_w, unpaired)
        phases = {"1F": unpaired * (r.f + r.a2a_f),
                  "1B": unpaired * (r.b + r.a2a - r.a2a_f) + (unpaired - alone_w) * r.w,
                  "1W": alone_w * r.w, "1F1B": (m - unpaired) * r.pair, "bubble": bubble,
                  "optimizer": float(optimizer[crit]) + dp_exposed[crit]}
        phases = {k: float(v) for k, v in phases.items()}
    return StepBreakdown(forward=float(m * r.f_compute), backward=float(m * (r.b_compute + r.w)),
                         bubble=bubble,
                         exposed_comm=float(micro_batch_time(r, m, unpaired) - compute + dp_exposed[crit]),
                         optimizer=float(optimizer[crit]), critical_rank=crit, per_mb=r, dualpipe_phases=phases)

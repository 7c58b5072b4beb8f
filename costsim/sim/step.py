"""One training step as a discrete-event simulation (SimPy): pipeline ranks run their schedule's actions.

Each rank is a process with one compute stream; activations and gradients travel between ranks as transfers on
the sender's link (a SimPy Resource per rank and direction); a rank starts an action once its input has arrived.
Durations come from the op-level cost model (per chunk: forward, input-grad, weight-grad compute with the
exposed TP/CP/ZeRO communication folded in the same way as the closed form; the EP all-to-all hidden inside a
DualPipe pair up to the pair's compute, exposed elsewhere). After its last backward a rank's data-parallel
gradient reduction runs on its network stream, overlapping that backward, then the optimizer step. One
data-parallel replica is simulated: the others are identical.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import simpy

from ..schedule import StageCost, exposed, exposed_pass_comm
from .schedules import Action, rank_actions


@dataclass(frozen=True)
class ChunkTimes:
    """Seconds per micro-batch of one model chunk on one rank."""
    f: float                  # forward (with exposed TP/CP/ZeRO comm; EP too unless DualPipe)
    b: float                  # input gradient (with recompute and exposed comm)
    w: float                  # weight gradient
    a2a_f: float = 0.0        # DualPipe: EP all-to-all of the forward / backward chunk
    a2a_b: float = 0.0
    send_f: float = 0.0       # activation / gradient transfer to the neighbouring stage
    send_b: float = 0.0


def chunk_times(s: StageCost, schedule: str, tp_overlap: bool, omega: float) -> ChunkTimes:
    """The closed form's exposure rules (schedule.exposed_pass_comm), per chunk, with PP transfers kept apart."""
    f = s.f + exposed_pass_comm(s, "F", schedule, tp_overlap, omega, with_pp=False)
    b = s.b + exposed_pass_comm(s, "B", schedule, tp_overlap, omega, with_pp=False)
    a2a_f, a2a_b = (s.c("F", "ep"), s.c("B", "ep")) if schedule == "dualpipe" else (0.0, 0.0)
    return ChunkTimes(f, b, s.w, a2a_f, a2a_b, s.c("F", "pp"), s.c("B", "pp"))


@dataclass
class TraceEvent:
    rank: int
    stream: str          # compute | link
    label: str           # F0.3 = forward, chunk 0, micro-batch 3; FB = a DualPipe pair
    start: float
    end: float


@dataclass
class StepResult:
    step_time_s: float
    busy_s: list[float]                 # compute busy time per rank (pipeline work only)
    trace: list[TraceEvent] = field(default_factory=list)
    pipeline_s: float = 0.0             # until the last rank's last pipeline action ends


class _StepSim:
    def __init__(self, times: list[list[ChunkTimes]], schedule: str, m: int, v: int, omega: float,
                 dp_s: list[float], opt_s: list[float], trace: bool):
        self.env = simpy.Environment()
        self.t, self.schedule, self.m, self.v, self.omega = times, schedule, m, v, omega
        self.p = len(times)
        self.dp_s, self.opt_s = dp_s, opt_s
        self.trace: list[TraceEvent] | None = [] if trace else None
        self.arrived: dict[tuple, simpy.Event] = {}
        # each rank's communication streams: one for pipeline sends, one for the data-parallel reduction (NCCL
        # runs them on separate channels; their sharing of NIC bandwidth is not modelled)
        self.links = [simpy.Resource(self.env, 1) for _ in range(self.p)]
        self.dp_streams = [simpy.Resource(self.env, 1) for _ in range(self.p)]
        self.busy = [0.0] * self.p
        self.done_at = [0.0] * self.p
        self.pipeline_end = 0.0

    # -- topology ---------------------------------------------------------------------------------------
    def stage(self, rank: int, chunk: int) -> tuple[int, int]:
        """(position along this chunk's pipeline, number of positions) for the chunk on this rank."""
        if self.schedule == "dualpipe":
            return (rank if chunk == 0 else self.p - 1 - rank), self.p
        return chunk * self.p + rank, self.p * self.v

    def at(self, pos: int, direction: int) -> tuple[int, int]:
        """(rank, chunk) holding pipeline position `pos`; DualPipe has one pipeline per direction."""
        if self.schedule == "dualpipe":
            return (pos if direction == 0 else self.p - 1 - pos), direction
        return pos % self.p, pos // self.p

    def inbox(self, kind: str, rank: int, chunk: int, mb: int) -> simpy.Event:
        key = (kind, rank, chunk, mb)
        if key not in self.arrived:
            self.arrived[key] = self.env.event()
        return self.arrived[key]

    # -- processes --------------------------------------------------------------------------------------
    def send(self, rank: int, seconds: float, target: simpy.Event, label: str):
        if seconds > 0:
            with self.links[rank].request() as req:
                yield req
                start = self.env.now
                yield self.env.timeout(seconds)
                self._log(rank, "link", label, start)
        target.succeed()

    def dp_reduce(self, rank: int, done: simpy.Event):
        """Gradient reduce-scatter / all-reduce in buckets, from the rank's last backward on, overlapping it."""
        with self.dp_streams[rank].request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(self.dp_s[rank])
            self._log(rank, "link", "DP grads", start)
        done.succeed()

    def after(self, rank: int, kind: str, chunk: int, mb: int):
        """Hand this chunk's output to the next stage (forward) or the previous one (backward). The send is
        blocking for the sender, as Megatron's batched send/receive is (and as the closed form counts it)."""
        pos, n = self.stage(rank, chunk)
        ct = self.t[rank][chunk]
        family = chunk if self.schedule == "dualpipe" else 0
        if kind == "F" and pos + 1 == n:
            self.inbox("B", rank, chunk, mb).succeed()           # the loss: backward starts here
        elif kind == "F":
            r2, c2 = self.at(pos + 1, family)
            yield from self.send(rank, ct.send_f, self.inbox("F", r2, c2, mb), f"send F{chunk}.{mb}")
        elif pos > 0:
            r2, c2 = self.at(pos - 1, family)
            yield from self.send(rank, ct.send_b, self.inbox("B", r2, c2, mb), f"send B{chunk}.{mb}")

    def wait_for(self, rank: int, kind: str, chunk: int, mb: int):
        pos, _ = self.stage(rank, chunk)
        if kind == "F" and pos == 0:
            return None
        return self.inbox(kind, rank, chunk, mb)

    def rank(self, r: int, actions: list[Action]):
        env = self.env
        pending_w: deque[int] = deque()
        last_bwd = max(i for i, a in enumerate(actions) if a.kind != "F")   # the DP reduction starts with it
        dp_done = env.event()
        for i, a in enumerate(actions):
            if i == last_bwd and a.kind == "W":
                env.process(self.dp_reduce(r, dp_done))
            if a.kind == "W":
                chunk = pending_w.popleft()
                yield from self._run(r, f"W{chunk}", self.t[r][chunk].w)
                continue
            if a.kind == "FB":
                for kind, c, mb in (("F", a.chunk, a.mb), ("B", a.chunk2, a.mb2)):
                    ev = self.wait_for(r, kind, c, mb)
                    if ev is not None and not ev.triggered:
                        yield ev
                tf, tb = self.t[r][a.chunk], self.t[r][a.chunk2]
                busy = tf.f + tb.b + tb.w
                dur = busy + exposed(tf.a2a_f + tb.a2a_b, busy, self.omega)
                if i == last_bwd:
                    env.process(self.dp_reduce(r, dp_done))
                yield from self._run(r, f"FB F{a.chunk}.{a.mb} B{a.chunk2}.{a.mb2}", dur, busy)
                yield from self.after(r, "F", a.chunk, a.mb)
                yield from self.after(r, "B", a.chunk2, a.mb2)
                continue
            ev = self.wait_for(r, a.kind, a.chunk, a.mb)
            if ev is not None and not ev.triggered:
                yield ev
            ct = self.t[r][a.chunk]
            if a.kind == "F":
                yield from self._run(r, f"F{a.chunk}.{a.mb}", ct.f + ct.a2a_f, ct.f)
            else:
                dur = ct.b + ct.a2a_b + (0.0 if a.zb else ct.w)
                if i == last_bwd:
                    env.process(self.dp_reduce(r, dp_done))
                yield from self._run(r, f"B{a.chunk}.{a.mb}", dur, dur - ct.a2a_b)
                if a.zb:
                    pending_w.append(a.chunk)
            yield from self.after(r, a.kind, a.chunk, a.mb)
        end_pipeline = env.now
        if not dp_done.triggered:
            yield dp_done
        yield from self._run(r, "optimizer", self.opt_s[r], 0.0)
        self.done_at[r] = env.now
        self.pipeline_end = max(self.pipeline_end, end_pipeline)

    def _run(self, r: int, label: str, seconds: float, busy: float | None = None):
        start = self.env.now
        yield self.env.timeout(seconds)
        self.busy[r] += seconds if busy is None else busy
        self._log(r, "compute", label, start)

    def _log(self, r: int, stream: str, label: str, start: float) -> None:
        if self.trace is not None:
            self.trace.append(TraceEvent(r, stream, label, start, self.env.now))


def simulate_step(times: list[list[ChunkTimes]], schedule: str, m: int, v: int = 1, omega: float = 1.0,
                  dp_s: list[float] | None = None, opt_s: list[float] | None = None,
                  trace: bool = False) -> StepResult:
    """Simulate one step; `times[rank][chunk]` are per-micro-batch chunk times (DualPipe: chunk 0 is the rank's
    direction-0 stage, chunk 1 its direction-1 stage)."""
    p = len(times)
    sim = _StepSim(times, schedule, m, v, omega, dp_s or [0.0] * p, opt_s or [0.0] * p, trace)
    for r in range(p):
        sim.env.process(sim.rank(r, rank_actions(schedule, p, m, v, r)))
    sim.env.run()
    stuck = [k for k, ev in sim.arrived.items() if not ev.triggered]
    if stuck or max(sim.done_at) == 0.0 and m > 0:
        raise RuntimeError(f"schedule {schedule} deadlocked: waiting on {stuck[:3]}")
    return StepResult(max(sim.done_at), sim.busy, sim.trace or [], pipeline_s=sim.pipeline_end)


def phase_chunk_times(pc, omega: float) -> list[list[ChunkTimes]]:
    """Per rank, per chunk times for a phase's costs (`costsim.estimate.PhaseCosts`)."""
    plan = pc.plan
    out = []
    for r, chunks in enumerate(pc.per_rank):
        zero = pc.zero_comm[r]
        row = []
        for c in chunks:
            cost = pc.chunk_cost[c]
            if zero:   # ZeRO-3 gathers of this rank's weights, spread over its chunks
                cost = cost + StageCost(comm={k: v / len(chunks) for k, v in zero.items()})
            row.append(chunk_times(cost, plan.schedule, plan.tp_comm_overlap, omega))
        out.append(row)
    return out


def simulate_phase(pc, omega: float, trace: bool = False) -> StepResult:
    """Simulate one step of a phase from the costs the closed form uses."""
    plan = pc.plan
    return simulate_step(phase_chunk_times(pc, omega), plan.schedule, plan.num_microbatches, pc.v, omega,
                         pc.dp_comm, pc.optimizer, trace)

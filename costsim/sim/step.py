"""One training step as a discrete-event simulation (SimPy): pipeline ranks run their schedule's actions, and
every transfer is a flow on the links it uses.

What is simulated, per pipeline rank of one data-parallel replica (the other replicas are identical):

- Compute: one stream running the rank's schedule (1F1B, interleaved, ZB-H1, DualPipe; see schedules.py); an
  action starts once its input has arrived. Its seconds are the op-level cost model's (StageCost f, b, w).
- Links: the rank's NVLink port and its NIC, each a processor-sharing server: the n flows active on a link each
  progress at 1/n of its bandwidth, and completion times are re-planned whenever a flow starts or ends. A flow's
  work on a link is the seconds it would take alone there (wire bytes / the collective's busbw: StageCost
  comm_nvl_s, comm_net_s); a flow with work on both links (expert all-to-all across nodes) advances on both at
  once and ends when both are done. The rest of a transfer's cost-model time (α latency per step, and what
  summing per-op times adds over the per-link totals) is a fixed delay, not shared; so a flow alone takes
  exactly the cost model's seconds. A rank's NIC carries its sends (the receive side is the same traffic in the
  other direction of a full-duplex port; collectives are symmetric over their members).
- Which communication may run beside compute is a property of the plan, stated here: TP collectives beside the
  GEMMs of their pass only with `tp_comm_overlap`; ring-attention CP exchanges beside attention; ZeRO-3 gathers
  (and backward reduce-scatters) beside the pass's compute one layer ahead, so one layer's share waits in front;
  EP all-to-all beside the paired chunk of a DualPipe forward+backward pair (unpaired warm-up and cool-down
  chunks wait for theirs), or beside its pass with `ep_comm_overlap`; PP sends asynchronous under interleaved
  1F1B (Megatron-Core overlap_p2p_comm) and DualPipe: the sender goes on computing while its activation or
  gradient is on the wire, the receiver waits for it; under 1F1B and ZB-H1 the sender waits too (batched
  send/receive). Everything else blocks compute: the transfer runs, then compute continues.
- Overlap is not free: while a rank has any flow running, its compute runs at 1 − `overlap_slowdown` of its
  speed (SMs and HBM bandwidth taken by NCCL kernels), unless the plan reserves SMs for communication for the
  whole step (`comm_sms` > 0: the compute costs already run on fewer SMs; both are never charged).
- Data parallelism (`dp_comm_overlap`, Megatron-Core overlap_grad_reduce / overlap_param_gather): a chunk's
  gradient buckets are reduced from the start of its last backward on, beside whatever the rank does next; the
  step's last bucket waits for the backward to end; then the optimizer update. The previous update's ZeRO-1/2
  parameter gather opens the step: its first bucket in front, the rest chunk by chunk beside compute, each
  chunk's first forward waiting for its parameters. Without `dp_comm_overlap` both block.

The closed form (schedule.py) prices each overlap in isolation, per class and per pass on the critical rank:
exposed = max(0, comm − compute) + slowdown · min(comm, compute), plus a bubble computed from the ranks' times.
The simulator does not import those rules; it runs the flows. Where the two disagree the simulator is the
better account, for reasons the closed form cannot express:
(1) contention: flows running at once on one link share it (a DualPipe pair's two all-to-alls, PP sends and the
DP reduction on the NIC; TP and EP on NVLink), so each is slower than priced alone — on the shipped scenarios
this costs 0.2–0.6% of the step against unshared links (the links are far from saturated), more where
communication nears compute;
(2) idle time hides communication: gradient buckets of chunks whose last backward is early (interleaved, in the
cool-down) and parameter gathers of ranks that wait for the pipeline fill cost nothing, where the closed form
charges the critical rank one micro-batch's compute worth of cover (Megatron-Core GPT 70B TP8 PP2: about −7%);
(3) the slowdown costs time only while compute is the longer of the two: `exposed` charges
slowdown · min(comm, compute) even when the communication is longer and the slowed compute still ends first;
(4) the schedule as run: DualPipe's program leaves rank 0 23 unpaired warm-up forwards and 23 cool-down
backwards (ranks 7–8: 16), whose all-to-all nothing hides, where the closed form takes the micro-batches in
flight (17) for every rank; and the fill and drain pass through the middle ranks, whose unpaired MoE chunks
wait for their all-to-all, while the closed-form bubble is computed without it (DeepSeek-V3 pre-training:
about +3–4%; with those all-to-alls hidden the simulated step would fall about 4% below the closed form).
The closed form stays the estimate of record because the global parameters are fitted with it; the simulator
shows where, and by how much, it is optimistic or pessimistic. Simplifications: a hierarchical collective's
in-node and cross-node phases are taken as concurrent on their two links (the sequential share sits in the
fixed delay); per-step DP traffic (run_costs.py gives seconds, not bytes) is put whole on the NIC when the DP
group leaves the node, on NVLink otherwise.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import simpy

from ..efficiency import fitted
from ..plan import NVLINK
from ..schedule import StageCost
from .schedules import Action, rank_actions

LINKS = ("nvlink", "nic")

Spec = tuple[float, float, float]   # a transfer: (seconds alone, NVLink work s, NIC work s)


def _merge(*specs: Spec | None) -> Spec | None:
    out = [s for s in specs if s is not None]
    if not out:
        return None
    return (sum(s[0] for s in out), sum(s[1] for s in out), sum(s[2] for s in out))


def _part(s: Spec | None, k: float) -> Spec | None:
    return None if s is None or k <= 0 else (s[0] * k, s[1] * k, s[2] * k)


@dataclass(frozen=True)
class Rules:
    """What may run beside compute in this plan, and what overlap costs compute (see the module docstring)."""
    tp: bool = False               # plan.tp_comm_overlap
    ep: bool = False               # plan.ep_comm_overlap (DualPipe pairs overlap their all-to-all regardless)
    dp: bool = True                # dp_comm_overlap: gradient buckets and parameter gathers beside compute
    slowdown: float = 0.0          # compute throughput lost while a flow runs on the rank (0 with comm_sms)
    pp_async: bool = True          # PP sends beside compute (interleaved: Megatron-Core overlap_p2p_comm;
                                   # DualPipe); 1F1B and ZB-H1 wait for them (batched send/receive)


@dataclass(frozen=True)
class RankTail:
    """A rank's once-per-step work: DP gradient reduction, ZeRO-1/2 parameter gather, optimizer update."""
    grad_s: float = 0.0
    grad_pieces: float = math.inf  # buckets: the last one waits for the backward to end
    gather_s: float = 0.0
    gather_pieces: float = math.inf
    update_s: float = 0.0
    link: str = "nic"              # where the DP traffic runs


@dataclass
class TraceEvent:
    rank: int
    stream: str          # compute | nvlink | nic
    label: str           # F0.3 = forward, chunk 0, micro-batch 3; FB = a DualPipe pair; links: "ep F0.3" …
    start: float
    end: float


@dataclass
class StepResult:
    step_time_s: float
    busy_s: list[float]                 # compute per rank (pipeline work, at full speed)
    trace: list[TraceEvent] = field(default_factory=list)
    pipeline_s: float = 0.0             # until the last rank's last pipeline action ends
    slowed_s: list[float] = field(default_factory=list)       # compute time lost to overlap slowdown, per rank
    exposed_s: list[float] = field(default_factory=list)      # time compute waited for the rank's own transfers
    link_busy_s: list[dict[str, float]] = field(default_factory=list)   # per rank: seconds each link was busy


@dataclass
class _PassWork:
    """One pass (F or B) of one chunk on one rank, sorted by how its communication runs."""
    compute: float = 0.0
    attn: float = 0.0
    block: Spec | None = None                  # blocks compute (runs first)
    cp: Spec | None = None                     # beside attention
    beside: list = field(default_factory=list)  # [(class, Spec)] beside the rest of the pass's compute
    ep: Spec | None = None                     # DualPipe: beside the paired chunk, else blocking
    pp: Spec | None = None                     # to the next (F) / previous (B) stage, asynchronous


def _spec(s: StageCost, key: tuple[str, str]) -> Spec | None:
    c = s.comm.get(key, 0.0)
    if c <= 0:
        return None
    return (c, s.comm_nvl_s.get(key, 0.0), s.comm_net_s.get(key, 0.0))


def pass_work(s: StageCost, pass_: str, schedule: str, rules: Rules, zero_pieces: float = 1.0) -> _PassWork:
    """The plan's overlap rules applied to one chunk's pass."""
    compute, attn = (s.f, s.attn_f) if pass_ == "F" else (s.b, s.attn_b)
    pw = _PassWork(compute, attn)
    block = []
    for (p, cls) in s.comm:
        if p != pass_:
            continue
        sp = _spec(s, (p, cls))
        if sp is None:
            continue
        if cls == "pp":
            pw.pp = sp
        elif cls == "cp" and attn > 0:
            pw.cp = sp
        elif cls == "tp" and rules.tp:
            pw.beside.append(("tp", sp))
        elif cls == "ep" and schedule == "dualpipe":
            pw.ep = sp
        elif cls == "ep" and rules.ep:
            pw.beside.append(("ep", sp))
        elif cls == "zero":   # prefetched one layer ahead: the first layer's share waits in front
            first = 1.0 / max(1.0, zero_pieces)
            block.append(_part(sp, first))
            if first < 1.0:
                pw.beside.append(("zero", _part(sp, 1.0 - first)))
        else:
            block.append(sp)
    pw.block = _merge(*block)
    return pw


class _Link:
    """Processor sharing: the n parts on the link each progress at 1/n; re-planned on every start and end."""
    __slots__ = ("sim", "rank", "name", "parts", "t", "gen", "busy")

    def __init__(self, sim: "_StepSim", rank: int, name: str):
        self.sim, self.rank, self.name = sim, rank, name
        self.parts: list[list] = []      # [remaining work s, flow, start time]
        self.t = 0.0
        self.gen = 0
        self.busy = 0.0

    def _advance(self, now: float) -> None:
        n = len(self.parts)
        if n:
            d = (now - self.t) / n
            for part in self.parts:
                part[0] -= d
            self.busy += now - self.t
        self.t = now

    def add(self, work: float, flow: "_Flow") -> None:
        now = self.sim.env.now
        self._advance(now)
        self.parts.append([work, flow, now])
        self._replan()

    def _replan(self) -> None:
        self.gen += 1
        if self.parts:
            rem = min(part[0] for part in self.parts)
            gen = self.gen
            self.sim.env.timeout(max(rem, 0.0) * len(self.parts)).callbacks.append(lambda _: self._fire(gen))

    def _fire(self, gen: int) -> None:
        if gen != self.gen:
            return
        now = self.sim.env.now
        self._advance(now)
        low = min(part[0] for part in self.parts)
        tol = low + 1e-12 * max(1.0, now)
        done = [part for part in self.parts if part[0] <= tol]
        self.parts = [part for part in self.parts if part[0] > tol]
        self._replan()
        for _, flow, start in done:
            self.sim.log(self.rank, self.name, flow.label, start)
            flow.part_done()


class _Flow:
    __slots__ = ("sim", "rank", "label", "pending", "done", "nvl", "net")

    def __init__(self, sim: "_StepSim", rank: int, spec: Spec, label: str, done: simpy.Event):
        self.sim, self.rank, self.label, self.done = sim, rank, label, done
        total, self.nvl, self.net = spec
        fixed = total - max(self.nvl, self.net)
        sim.ranks[rank].flows(+1)
        if fixed > 1e-15:
            sim.env.timeout(fixed).callbacks.append(lambda _: self._on_links())
        else:
            self._on_links()

    def _on_links(self) -> None:
        links = self.sim.links[self.rank]
        self.pending = (self.nvl > 0) + (self.net > 0)
        if not self.pending:
            self._finish()
            return
        if self.nvl > 0:
            links["nvlink"].add(self.nvl, self)
        if self.net > 0:
            links["nic"].add(self.net, self)

    def part_done(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self._finish()

    def _finish(self) -> None:
        self.sim.ranks[self.rank].flows(-1)
        self.done.succeed()


class _Compute:
    """A rank's compute stream: one task at a time, at 1 − slowdown of full speed while any flow of the rank runs."""
    __slots__ = ("sim", "active", "rem", "t", "gen", "ev", "wall")

    def __init__(self, sim: "_StepSim"):
        self.sim = sim
        self.active = 0
        self.rem, self.t, self.gen, self.ev = 0.0, 0.0, 0, None
        self.wall = 0.0

    def _rate(self) -> float:
        return self.sim.speed if self.active else 1.0

    def run(self, seconds: float) -> simpy.Event:
        env = self.sim.env
        if self.sim.speed == 1.0:
            self.wall += seconds
            return env.timeout(seconds)
        self.ev, self.rem, self.t = env.event(), seconds, env.now
        self._plan()
        return self.ev

    def _plan(self) -> None:
        self.gen += 1
        gen = self.gen
        self.sim.env.timeout(self.rem / self._rate()).callbacks.append(lambda _: self._fire(gen))

    def _fire(self, gen: int) -> None:
        if gen == self.gen and self.ev is not None:
            ev, self.ev = self.ev, None
            self.wall += self.sim.env.now - self.t
            ev.succeed()

    def flows(self, delta: int) -> None:
        was = self.active
        self.active += delta
        if self.ev is not None and (was == 0) != (self.active == 0):   # the rate changes: re-plan the task
            now = self.sim.env.now
            self.rem -= (now - self.t) * (self.sim.speed if was else 1.0)
            self.wall += now - self.t
            self.t = now
            self._plan()


def _last_weight_grads(actions: list[Action]) -> dict[int, int]:
    """Action index → how many chunks finish their weight gradients for the step in it (B, FB, or a deferred W,
    which takes the oldest pending zero-bubble B's chunk)."""
    pending: deque[int] = deque()
    last: dict[int, int] = {}
    for i, a in enumerate(actions):
        if a.kind == "W":
            last[pending.popleft()] = i
        elif a.kind in ("B", "FB"):
            chunk = a.chunk if a.kind == "B" else a.chunk2
            if a.zb:
                pending.append(chunk)
            else:
                last[chunk] = i
    out: dict[int, int] = {}
    for i in last.values():
        out[i] = out.get(i, 0) + 1
    return out


class _StepSim:
    def __init__(self, work: list[list[dict[str, _PassWork]]], w: list[list[float]], schedule: str, m: int,
                 v: int, rules: Rules, tails: list[RankTail], trace: bool):
        self.env = simpy.Environment()
        self.work, self.w, self.schedule, self.m, self.v = work, w, schedule, m, v
        self.rules, self.tails = rules, tails
        self.speed = 1.0 - rules.slowdown
        self.p = len(work)
        self.trace: list[TraceEvent] | None = [] if trace else None
        self.arrived: dict[tuple, simpy.Event] = {}
        self.links = [{name: _Link(self, r, name) for name in LINKS} for r in range(self.p)]
        self.ranks = [_Compute(self) for _ in range(self.p)]
        self.busy = [0.0] * self.p
        self.exposed = [0.0] * self.p
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

    # -- flows and compute ------------------------------------------------------------------------------
    def flow(self, rank: int, spec: Spec | None, label: str, done: simpy.Event | None = None) -> simpy.Event:
        """Start a transfer from `rank`; the returned event fires when it has arrived."""
        done = done if done is not None else self.env.event()
        if spec is None or spec[0] <= 0:
            done.succeed()
        else:
            _Flow(self, rank, spec, label, done)
        return done

    def compute(self, r: int, seconds: float):
        if seconds > 0:
            yield self.ranks[r].run(seconds)

    # -- processes --------------------------------------------------------------------------------------
    def after(self, rank: int, kind: str, chunk: int, mb: int) -> simpy.Event | None:
        """Send this chunk's output to the next stage (forward) or its input gradient to the previous one: a
        flow on the sender's links, which the receiver waits for (and the sender too unless sends are async)."""
        pos, n = self.stage(rank, chunk)
        family = chunk if self.schedule == "dualpipe" else 0
        if kind == "F" and pos + 1 == n:
            self.inbox("B", rank, chunk, mb).succeed()           # the loss: backward starts here
            return None
        if kind == "F":
            r2, c2 = self.at(pos + 1, family)
            return self.flow(rank, self.work[rank][chunk]["F"].pp, f"send F{chunk}.{mb}",
                             self.inbox("F", r2, c2, mb))
        if pos > 0:
            r2, c2 = self.at(pos - 1, family)
            return self.flow(rank, self.work[rank][chunk]["B"].pp, f"send B{chunk}.{mb}",
                             self.inbox("B", r2, c2, mb))
        return None

    def send(self, r: int, *outputs: tuple[str, int, int]):
        sent = [self.after(r, *o) for o in outputs]
        if not self.rules.pp_async:
            yield from self.wait(r, *(ev for ev in sent if ev is not None))

    def wait_for(self, rank: int, kind: str, chunk: int, mb: int):
        pos, _ = self.stage(rank, chunk)
        if kind == "F" and pos == 0:
            return None
        return self.inbox(kind, rank, chunk, mb)

    def run_pass(self, r: int, pw: _PassWork, extra: float, label: str):
        """Compute of one pass (+ `extra`: its weight gradient) with its CP flow beside attention and its other
        overlapped flows beside the rest."""
        rest = pw.compute + extra
        if pw.cp is not None:
            ev = self.flow(r, pw.cp, f"cp {label}")
            yield from self.compute(r, pw.attn)
            yield from self.wait(r, ev)
            rest -= pw.attn
        evs = [self.flow(r, sp, f"{cls} {label}") for cls, sp in pw.beside]
        yield from self.compute(r, rest)
        yield from self.wait(r, *evs)

    def wait(self, r: int, *evs: simpy.Event):
        """Wait for the rank's own transfers; the time counts as exposed communication."""
        t = self.env.now
        for ev in evs:
            if not ev.triggered:
                yield ev
        self.exposed[r] += self.env.now - t

    def block(self, r: int, spec: Spec | None, label: str):
        """A transfer that blocks compute: it runs, then compute continues."""
        if spec is not None:
            yield from self.wait(r, self.flow(r, spec, label))

    def rank(self, r: int, actions: list[Action]):
        env, rules, tail = self.env, self.rules, self.tails[r]
        work, wgrad = self.work[r], self.w[r]
        pending_w: deque[int] = deque()
        grads_at = _last_weight_grads(actions)      # a chunk's gradients are reduced from its last backward on
        share = tail.grad_s * (1.0 - 1.0 / tail.grad_pieces) / max(1, len(work))
        t0 = env.now
        # ZeRO-1/2: the previous update's parameters, gathered bucket by bucket ahead of this step's forwards: the
        # first bucket in front, the rest chunk by chunk beside compute; a chunk's first forward needs all of its
        gathered: dict[int, simpy.Event] = {}
        needs: set[int] = set()
        if tail.gather_s > 0 and rules.dp:
            first = 1.0 / tail.gather_pieces
            yield from self.block(r, (tail.gather_s * first, *self._dp_work(tail, tail.gather_s * first)),
                                  "DP gather")
            order = list(dict.fromkeys(c for a in actions if a.kind in ("F", "FB") for c in (a.chunk,)))
            gathered = {c: env.event() for c in order}
            needs = set(order)
            env.process(self._gather(r, tail, tail.gather_s * (1.0 - first) / len(order), order, gathered))
        grad_early = []
        for i, a in enumerate(actions):
            if i in grads_at and share > 0 and rules.dp:   # its buckets (but the step's last) beside it
                for _ in range(grads_at[i]):
                    grad_early.append(self.flow(r, (share, *self._dp_work(tail, share)), "DP grads"))
            start = env.now
            if a.kind == "W":
                chunk = pending_w.popleft()
                yield from self.compute(r, wgrad[chunk])
                self.busy[r] += wgrad[chunk]
                self.log(r, "compute", f"W{chunk}", start)
                continue
            if a.kind == "FB":
                for kind, c, mb in (("F", a.chunk, a.mb), ("B", a.chunk2, a.mb2)):
                    ev = self.wait_for(r, kind, c, mb)
                    if ev is not None and not ev.triggered:
                        yield ev
                start = env.now
                pf, pb = work[a.chunk]["F"], work[a.chunk2]["B"]
                label_f, label_b = f"F{a.chunk}.{a.mb}", f"B{a.chunk2}.{a.mb2}"
                # the pair's all-to-alls run beside the whole pair, both on the same links
                a2a = [self.flow(r, pf.ep, f"ep {label_f}"), self.flow(r, pb.ep, f"ep {label_b}")]
                yield from self.block(r, _merge(pf.block, pb.block), f"comm {label_f} {label_b}")
                yield from self.run_pass(r, pf, 0.0, label_f)
                if a.chunk in needs:
                    needs.discard(a.chunk)
                    yield from self.wait(r, gathered[a.chunk])
                yield from self.run_pass(r, pb, wgrad[a.chunk2], label_b)
                yield from self.wait(r, *a2a)
                self.busy[r] += pf.compute + pb.compute + wgrad[a.chunk2]
                self.log(r, "compute", f"FB {label_f} {label_b}", start)
                yield from self.send(r, ("F", a.chunk, a.mb), ("B", a.chunk2, a.mb2))
                continue
            ev = self.wait_for(r, a.kind, a.chunk, a.mb)
            if ev is not None and not ev.triggered:
                yield ev
            start = env.now
            pw = work[a.chunk][a.kind]
            label = f"{a.kind}{a.chunk}.{a.mb}"
            extra = wgrad[a.chunk] if a.kind == "B" and not a.zb else 0.0
            # outside a DualPipe pair the all-to-all has nothing to hide behind
            yield from self.block(r, _merge(pw.block, pw.ep), f"comm {label}")
            yield from self.run_pass(r, pw, extra, label)
            if a.kind == "F" and a.chunk in needs:
                needs.discard(a.chunk)
                yield from self.wait(r, gathered[a.chunk])
            self.busy[r] += pw.compute + extra
            if a.zb:
                pending_w.append(a.chunk)
            self.log(r, "compute", label, start)
            yield from self.send(r, (a.kind, a.chunk, a.mb))
        end_pipeline = env.now
        yield from self.wait(r, *grad_early)
        last = tail.grad_s / tail.grad_pieces if rules.dp else tail.grad_s
        if last > 0:
            yield from self.block(r, (last, *self._dp_work(tail, last)), "DP grads")
        start = env.now
        yield from self.compute(r, tail.update_s)
        if tail.gather_s > 0 and not rules.dp:
            yield from self.block(r, (tail.gather_s, *self._dp_work(tail, tail.gather_s)), "DP gather")
        self.log(r, "compute", "optimizer", start)
        self.done_at[r] = env.now - t0
        self.pipeline_end = max(self.pipeline_end, end_pipeline)

    def _gather(self, r: int, tail: RankTail, share: float, order: list[int], gathered: dict[int, simpy.Event]):
        for c in order:
            yield self.flow(r, (share, *self._dp_work(tail, share)), "DP gather")
            gathered[c].succeed()

    @staticmethod
    def _dp_work(tail: RankTail, seconds: float) -> tuple[float, float]:
        return (seconds, 0.0) if tail.link == "nvlink" else (0.0, seconds)

    def log(self, r: int, stream: str, label: str, start: float) -> None:
        if self.trace is not None:
            self.trace.append(TraceEvent(r, stream, label, start, self.env.now))


def simulate_step(costs: list[list[StageCost]], schedule: str, m: int, v: int = 1, rules: Rules = Rules(),
                  tails: list[RankTail] | None = None, zero_pieces: list[list[float]] | None = None,
                  trace: bool = False) -> StepResult:
    """Simulate one step; `costs[rank][chunk]` are per-micro-batch chunk costs (DualPipe: chunk 0 is the rank's
    direction-0 stage, chunk 1 its direction-1 stage)."""
    p = len(costs)
    work = [[{ps: pass_work(c, ps, schedule, rules, zero_pieces[r][i] if zero_pieces else 1.0) for ps in "FB"}
             for i, c in enumerate(row)] for r, row in enumerate(costs)]
    w = [[c.w for c in row] for row in costs]
    sim = _StepSim(work, w, schedule, m, v, rules, tails or [RankTail()] * p, trace)
    for r in range(p):
        sim.env.process(sim.rank(r, rank_actions(schedule, p, m, v, r)))
    sim.env.run()
    stuck = [k for k, ev in sim.arrived.items() if not ev.triggered]
    if stuck or max(sim.done_at) == 0.0 and m > 0:
        raise RuntimeError(f"schedule {schedule} deadlocked: waiting on {stuck[:3]}")
    return StepResult(max(sim.done_at), sim.busy, sim.trace or [], pipeline_s=sim.pipeline_end,
                      slowed_s=[c.wall - b - t.update_s for c, b, t in zip(sim.ranks, sim.busy, sim.tails)],
                      exposed_s=sim.exposed,
                      link_busy_s=[{k: lk.busy for k, lk in links.items()} for links in sim.links])


def run_flows(flows: list[tuple[float, Spec]]) -> list[float]:
    """When each transfer (start time, (seconds alone, NVLink work, NIC work)) ends when all run from one rank's
    links: the link model on its own."""
    sim = _StepSim([], [], "1f1b", 0, 1, Rules(), [], False)
    sim.links = [{name: _Link(sim, 0, name) for name in LINKS}]
    sim.ranks = [_Compute(sim)]
    out = [0.0] * len(flows)

    def one(i: int, t0: float, spec: Spec):
        yield sim.env.timeout(t0)
        yield sim.flow(0, spec, f"flow {i}")
        out[i] = sim.env.now

    for i, (t0, spec) in enumerate(flows):
        sim.env.process(one(i, t0, spec))
    sim.env.run()
    return out


# -- from the estimate's phase costs ------------------------------------------------------------------------

def _dp_link(plan) -> str:
    return "nvlink" if plan.tier(plan.tp, plan.dp * plan.cp) == NVLINK else "nic"


def _rank_inputs(pc) -> tuple[list[RankTail], list[dict], list[float]]:
    """Per rank: the once-per-step tail, the per-micro-batch ZeRO-3 comm, and its prefetch granularity (layers)."""
    link = _dp_link(pc.plan)
    tails = [RankTail(s.grad, s.grad_pieces, s.gather, s.gather_pieces, s.update, link) for s in pc.steps]
    return tails, [dict(s.zero) for s in pc.steps], [float(s.zero_pieces) for s in pc.steps]


def phase_inputs(pc, slowdown: float) -> tuple[list[list[StageCost]], Rules, list[RankTail], list[list[float]]]:
    """Per-rank chunk costs, overlap rules, tails and ZeRO-3 prefetch pieces of a phase
    (`costsim.estimate.PhaseCosts`)."""
    plan = pc.plan
    tails, zero, layers = _rank_inputs(pc)
    link = tails[0].link if tails else "nic"
    costs, pieces = [], []
    for r, chunks in enumerate(pc.per_rank):
        k = len(chunks)
        z = zero[r]
        row = []
        for c in chunks:
            cost = pc.chunk_cost[c]
            if z:   # ZeRO-3 gathers / reduce-scatters of this rank's weights, spread over its chunks
                share = {key: s / k for key, s in z.items()}   # on the DP group's link, as in the tail
                cost = cost + StageCost(comm=share, comm_nvl_s=share if link == "nvlink" else {},
                                        comm_net_s=share if link == "nic" else {})
            row.append(cost)
        costs.append(row)
        pieces.append([max(1.0, layers[r] / k)] * k)
    rules = Rules(tp=plan.tp_comm_overlap, ep=plan.ep_comm_overlap, dp=plan.dp_comm_overlap,
                  slowdown=0.0 if plan.comm_sms > 0 else slowdown,
                  pp_async=plan.schedule in ("interleaved", "dualpipe"))
    return costs, rules, tails, pieces


# About 0.1 ms of SimPy per chunk pass: the bound keeps one simulated step to seconds (DeepSeek-V3: 3,840).
MAX_SIM_CHUNK_PASSES = 100_000


def simulate_phase(pc, overlap_efficiency: float | None = None, *, overlap_slowdown: float | None = None,
                   trace: bool = False) -> StepResult:
    """Simulate one step of a phase from the costs the closed form uses.

    `overlap_slowdown`: compute throughput lost while communication runs beside it (Efficiency.overlap_slowdown;
    default: the fitted value). A float second argument is the former `overlap_efficiency`, read as
    overlap_slowdown = 1 − it (the alias costsim.efficiency defines)."""
    if overlap_slowdown is None:
        overlap_slowdown = (1.0 - overlap_efficiency if overlap_efficiency is not None
                            else fitted().overlap_slowdown)
    plan = pc.plan
    passes = plan.pp * plan.num_microbatches * pc.v
    if passes > MAX_SIM_CHUNK_PASSES:
        from ..errors import PlanError
        raise PlanError(f"the step simulation would run pp · micro-batches · chunks = {plan.pp} · "
                        f"{plan.num_microbatches:,} · {pc.v} = {passes:,} chunk passes; the limit is "
                        f"{MAX_SIM_CHUNK_PASSES:,} (fewer micro-batches: a larger micro_batch_size or a smaller "
                        "global_batch_size; or leave out --simulate)")
    costs, rules, tails, pieces = phase_inputs(pc, overlap_slowdown)
    return simulate_step(costs, plan.schedule, plan.num_microbatches, pc.v, rules, tails, pieces, trace)

"""The flow: scenario → plan → op table → cost kernel → step time → run → Estimate (STYLE.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .efficiency import Efficiency, fitted, with_overrides
from .errors import PlanError, ScenarioError
from .hardware import HardwareProfile, load_profile, with_network
from .kernels import COLLECTIVES, hw_row, op_seconds
from .layers import pipeline_units, unit_ops
from .layout import layout, rank_chunks
from .memory import MemoryBreakdown, rank_memory
from .model import ModelSpec, resolve_model
from .ops import ATTN_B, ATTN_F, COLL, OpTable
from .plan import ParallelPlan, PhasePlan, resolve_phases
from .run_costs import RankStep, dp_and_optimizer
from .scenario import Scenario
from .schedule import (RankTimes, dualpipe_unpaired, overlap_for, StageCost, StepBreakdown, exposed_by_class, micro_batch_time, pipelined,
                       rank_times, step_breakdown)


@dataclass
class PhaseEstimate:
    name: str
    tokens: float
    steps: int
    step_time_s: float
    gpu_hours: float
    wall_clock_days: float
    cost_usd: float
    energy_mwh: float
    mfu: float = 0.0
    model_tflops_per_gpu: float = 0.0
    hardware_tflops_per_gpu: float = 0.0
    tokens_per_s_per_gpu: float = 0.0
    model_flops_per_token: float = 0.0
    link_busy_s: dict[str, float] = field(default_factory=dict)   # per step, critical rank: nvlink, network
    exposed_by_class: dict[str, float] = field(default_factory=dict)   # per step: tp, cp, ep, pp, zero, dp
    costs: "PhaseCosts | None" = None                              # what the simulator starts from
    simulated: "object | None" = None                              # costsim.sim.step.StepResult when simulated
    breakdown: StepBreakdown | None = None
    memory: MemoryBreakdown | None = None
    plan: ParallelPlan | None = None
    layout: list[list[str]] = field(default_factory=list)
    reported: bool = False
    kind: str = "train"                                            # train | generate | rl | serve
    num_gpus: float | None = None                                  # the phase's own GPUs (serve: the average)
    figures: dict = field(default_factory=dict)                    # per kind (costsim/serving.py, costsim/rl.py)

    @property
    def trained(self) -> bool:
        """A costed training phase: it has a plan, a step breakdown and per-rank costs."""
        return self.kind == "train" and not self.reported


@dataclass
class Estimate:
    scenario: str
    model: ModelSpec
    hardware: HardwareProfile
    num_gpus: int
    usd_per_gpu_hour: float
    efficiency: Efficiency
    phases: list[PhaseEstimate]
    run: "object | None" = None          # costsim.sim.run.RunSummary when simulated
    price_pinned: bool = False           # usd_per_gpu_hour from the scenario's pricing, not the GPU's profile
    ranges: "object | None" = None       # costsim.ranges.Ranges when the scenario's `ranges:` were costed

    @property
    def gpu_hours(self) -> float:
        return sum(p.gpu_hours for p in self.phases)

    @property
    def wall_clock_days(self) -> float:
        return sum(p.wall_clock_days for p in self.phases)

    @property
    def cost_usd(self) -> float:
        return sum(p.cost_usd for p in self.phases)

    @property
    def energy_mwh(self) -> float:
        return sum(p.energy_mwh for p in self.phases)


def energy_mwh(sc: Scenario, hw: HardwareProfile, gpu_hours: float) -> float:
    """GPU TDP × time × PUE: an upper bound on the GPUs' energy (README, pricing.pue)."""
    return gpu_hours * hw.power_w * sc.pricing.pue / 1e6


def load_context(sc: Scenario, base_dir: Path) -> tuple[ModelSpec, HardwareProfile]:
    try:
        model = resolve_model(sc.model, base_dir)
    except ValueError as exc:
        raise ScenarioError(str(exc) if str(exc).startswith("model") else f"model: {exc}") from None
    hw = load_profile(sc.cluster.gpu, base_dir)
    if sc.cluster.network_gbps_per_gpu:
        hw = with_network(hw, sc.cluster.network_gbps_per_gpu)
    return model, hw


def estimate(sc: Scenario, base_dir: Path = Path("."), simulate: bool = False) -> Estimate:
    """Every phase of a scenario; raises ScenarioError / PlanError with a one-line reason.
    `simulate`: also run the SimPy step simulator on each phase and the Monte-Carlo of the whole run with
    failures and checkpoints (the scenario's `reliability:` block)."""
    model, hw = load_context(sc, base_dir)
    eff = with_overrides(fitted(), sc.efficiency)
    price = sc.pricing.usd_per_gpu_hour or hw.price_usd_per_gpu_hour
    plans = {ph.name: ph for ph in resolve_phases(sc, model, hw)}
    phases = []
    for i, ph in enumerate(sc.phases):
        if ph.kind == "train":
            phases.append(_in_phase(i, ph.name, estimate_phase, sc, model, hw, plans[ph.name], eff, price))
        else:
            from .post_training import estimate_other   # generation, RL and serving phases
            phases.append(_in_phase(i, ph.name, estimate_other, sc, i, ph, model, hw, eff, price, base_dir))
    est = Estimate(sc.name, model, hw, sc.cluster.num_gpus, price, eff, phases,
                   price_pinned=sc.pricing.usd_per_gpu_hour is not None)
    if simulate:
        _simulate(est, sc)
    return est


def _in_phase(i: int, name: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), with a PlanError that does not name its phase prefixed by `phases[i] (name): `."""
    try:
        return fn(*args, **kwargs)
    except PlanError as exc:
        if str(exc).startswith("phases["):
            raise
        raise PlanError(f"phases[{i}] ({name}): {exc}") from None


def _simulate(est: Estimate, sc: Scenario) -> None:
    from .sim.reliability import checkpoint_bytes_for
    from .sim.run import simulate_run
    from .sim.step import simulate_phase

    runs = []
    for i, p in enumerate(est.phases):
        if p.trained:
            p.simulated = _in_phase(i, p.name, simulate_phase, p.costs,
                                   overlap_slowdown=est.efficiency.overlap_slowdown)
            runs.append((p.name, p.steps, p.simulated.step_time_s))
    if runs:
        ckpt = checkpoint_bytes_for(est.model.total_params(include_mtp=True), sc.optimizer.moment_dtype)
        est.run = simulate_run(runs, est.num_gpus, ckpt, sc.reliability)


def unit_costs(model: ModelSpec, hw: HardwareProfile, plan: ParallelPlan, eff: Efficiency,
               kinds: list[str]) -> dict[str, StageCost]:
    """Per-micro-batch cost of each unit kind on one GPU, from one cost-kernel call."""
    tables = {k: unit_ops(model, plan, k) for k in kinds}
    ops = [o for k in kinds for o in tables[k]]
    row = hw_row(hw, sm_frac=1.0 - plan.comm_sms / hw.num_sms, derate=eff.compute_derate,
                 overhead_s=eff.kernel_overhead_s, attention=plan.attention)
    secs = op_seconds(OpTable(ops).arrays(), row).tolist()   # plain floats from here on
    out: dict[str, StageCost] = {k: StageCost() for k in kinds}
    for op, t in zip(ops, secs):
        c = out[op.unit]
        c.model_flops += op.model_flops
        c.hw_flops += op.flops
        if op.kind == COLL:
            key = (op.pass_ if op.pass_ != "R" else "B", op.overlap)
            c.comm[key] = c.comm.get(key, 0.0) + t
            name = COLLECTIVES[op.coll]
            nvl_s, net_s = op.bytes2 / hw.nvlink_busbw[name], op.bytes / hw.net_busbw[name]
            c.nvlink_busy += nvl_s
            c.network_busy += net_s
            for d, v in ((c.comm_net_bytes, op.bytes), (c.comm_nvl_bytes, op.bytes2), (c.comm_net_s, net_s),
                         (c.comm_nvl_s, nvl_s)):
                d[key] = d.get(key, 0.0) + v
        elif op.pass_ == "F":
            c.f += t
            c.attn_f += t if op.kind == ATTN_F else 0.0
        elif op.pass_ == "W":
            c.w += t
        else:                      # B and R (recompute runs just before the backward)
            c.b += t
            c.attn_b += t if op.kind == ATTN_B else 0.0
    return out


def estimate_phase(sc: Scenario, model: ModelSpec, hw: HardwareProfile, ph: PhasePlan, eff: Efficiency,
                   price: float, unit_costs_fn=None) -> PhaseEstimate:
    """`unit_costs_fn`: a drop-in for `unit_costs` (costsim.search passes a memoised one; same figures)."""
    n = sc.cluster.num_gpus
    if ph.plan is None:   # a reported figure, shown as given
        hours = ph.reported_gpu_hours
        return PhaseEstimate(ph.name, 0.0, 0, 0.0, hours, hours / n / 24, hours * price,
                             energy_mwh(sc, hw, hours), reported=True)
    plan = ph.plan
    mem = None
    if plan.stage_layout == "uniform":   # memory first (the layout needs no costs): a plan that does not fit
        mem = _check_memory(sc, model, hw, plan, layout(pipeline_units(model), {}, plan.num_chunks, "uniform"),
                            rank_chunks(plan.num_chunks, plan.pp, plan.schedule))
    pc = phase_costs(sc, model, hw, plan, eff, unit_costs_fn)
    slowdown = overlap_slowdown(plan, eff)
    times = [rank_times(rc, plan.schedule, overlap_for(plan, slowdown, st.zero_pieces))
             for rc, st in zip(pc.ranks_cost, pc.steps)]
    m = plan.num_microbatches
    unpaired = ([dualpipe_unpaired(plan.pp, r, m) for r in range(plan.pp)] if plan.schedule == "dualpipe"
                else [0] * plan.pp)
    dp_tail = [dp_exposed(plan, st, t, slowdown) for st, t in zip(pc.steps, times)]
    optimizer = [st.update + gather_exposed(plan, st, t, slowdown) for st, t in zip(pc.steps, times)]
    bd = step_breakdown(times, plan.schedule, pc.v, m, dp_tail, optimizer, unpaired)
    by_class = _exposed_by_class(pc, bd, times, plan, m, unpaired[bd.critical_rank], dp_tail, slowdown)
    mem = mem or _check_memory(sc, model, hw, plan, pc.chunk_units, pc.per_rank)
    est = _figures(sc, hw, ph, plan, bd, mem, pc.chunk_units, pc.chunk_cost, price)
    crit = pc.ranks_cost[bd.critical_rank]
    est.link_busy_s = {"nvlink": m * crit.nvlink_busy, "network": m * crit.network_busy}
    est.costs = pc
    est.exposed_by_class = by_class
    return est


def _exposed_by_class(pc: PhaseCosts, bd: StepBreakdown, times: list[RankTimes], plan: ParallelPlan, m: int,
                      unpaired: int, dp_tail: list[float], slowdown: float) -> dict[str, float]:
    """The step's exposed communication on the critical rank, per stream: sums to bd.exposed_comm."""
    i = bd.critical_rank
    st, r = pc.steps[i], times[i]
    ov = overlap_for(plan, slowdown, st.zero_pieces)
    out = {k: 0.0 for k in ("tp", "cp", "ep", "pp", "zero")}
    for pass_ in ("F", "B"):
        for k, v in exposed_by_class(pc.ranks_cost[i], pass_, plan.schedule, ov).items():
            out[k] += m * v
    if r.pair:   # DualPipe: what the pairs and the unpaired chunks leave of the all-to-all
        out["ep"] = micro_batch_time(r, m, unpaired) - m * (r.f + r.b + r.w)
    out["dp"] = dp_tail[i]
    return {k: float(v) for k, v in out.items()}


@dataclass
class PhaseCosts:
    """Everything the closed form and the simulator share: per-chunk and per-rank costs of one micro-batch."""
    plan: ParallelPlan
    chunk_units: list[list[str]]
    chunk_cost: list[StageCost]
    per_rank: list[list[int]]
    ranks_cost: list[StageCost]
    steps: list[RankStep]             # per rank: DP gradient reduction, ZeRO gathers, optimizer (before overlap)

    @property
    def v(self) -> int:
        return self.plan.virtual_stages if self.plan.schedule == "interleaved" else 1


def phase_costs(sc: Scenario, model: ModelSpec, hw: HardwareProfile, plan: ParallelPlan,
                eff: Efficiency, unit_costs_fn=None) -> PhaseCosts:
    units = pipeline_units(model)
    costs = (unit_costs_fn or unit_costs)(model, hw, plan, eff, sorted(set(units)) + ["p2p"])
    chunk_units = layout(units, {u: costs[u].f + costs[u].b + costs[u].w for u in set(units)},
                         plan.num_chunks, plan.stage_layout)
    sums: dict[tuple[str, ...], StageCost] = {}   # chunks holding the same units cost the same (summed once)
    for ch in chunk_units:
        if tuple(ch) not in sums:
            sums[tuple(ch)] = sum((costs[u] for u in ch), StageCost()) + costs["p2p"]
    chunk_cost = [sums[tuple(ch)] for ch in chunk_units]
    per_rank = rank_chunks(plan.num_chunks, plan.pp, plan.schedule)
    ranks_cost = [_rank_cost(chunk_cost, chs, plan.schedule) for chs in per_rank]
    steps = dp_and_optimizer(model, hw, plan, eff, chunk_units, per_rank, sc)
    for rc, st in zip(ranks_cost, steps):
        for key, v in st.zero.items():
            rc.comm[key] = rc.comm.get(key, 0.0) + v
    return PhaseCosts(plan, chunk_units, chunk_cost, per_rank, ranks_cost, steps)


def _rank_cost(chunk_cost: list[StageCost], chunks: list[int], schedule: str) -> StageCost:
    total = sum((chunk_cost[c] for c in chunks), StageCost())
    # DualPipe: each micro-batch passes one of the rank's two stages, so per micro-batch it costs their mean
    return total.scaled(1 / len(chunks)) if schedule == "dualpipe" else total


def overlap_slowdown(plan: ParallelPlan, eff: Efficiency) -> float:
    """Compute lost while communication runs beside it; none where SMs are reserved for communication for the
    whole step (`comm_sms` already takes them from every kernel: never charge both)."""
    return 0.0 if plan.comm_sms else eff.overlap_slowdown


def dp_exposed(plan: ParallelPlan, st: RankStep, r: RankTimes, slowdown: float) -> float:
    """Gradient reduction bucket by bucket beside the last micro-batch's backward; the last bucket exposed."""
    if not plan.dp_comm_overlap:
        return st.grad
    return pipelined(st.grad, r.b_compute + r.w, st.grad_pieces, slowdown)


def gather_exposed(plan: ParallelPlan, st: RankStep, r: RankTimes, slowdown: float) -> float:
    """Parameter all-gather bucket by bucket ahead of the next step's first forward; the first bucket exposed."""
    if not plan.dp_comm_overlap:
        return st.gather
    return pipelined(st.gather, r.f_compute, st.gather_pieces, slowdown)


def _check_memory(sc, model, hw, plan, chunk_units, per_rank) -> MemoryBreakdown:
    worst = None
    for r, chs in enumerate(per_rank):
        stages = [chunk_units[c] for c in chs]
        units = [u for st in stages for u in st]
        mem = rank_memory(model, plan, units, stages, r, sc.optimizer.moment_dtype, hw.hbm_capacity_bytes)
        if worst is None or mem.total > worst.total:
            worst = mem
    if worst.total > worst.capacity:
        g = worst.gib()
        raise PlanError(
            f"plan does not fit in memory: needs {g['total']:.1f} GiB per GPU (weights {g['weights']:.1f}, "
            f"gradients {g['gradients']:.1f}, optimizer {g['optimizer']:.1f}, activations {g['activations']:.1f}, "
            f"reserved {g['reserved']:.1f} for CUDA context, NCCL, cuBLAS and fragmentation)"
            f" but {hw.name} has {g['capacity']:.1f} GiB; try more pp/tp, zero_stage, or recompute: full")
    return worst


def _figures(sc, hw, ph, plan, bd, mem, chunk_units, chunk_cost, price) -> PhaseEstimate:
    n = sc.cluster.num_gpus
    step = bd.total
    m = plan.num_microbatches
    # FLOPs per step over the whole job: per-GPU op FLOPs × the GPUs sharing each micro-batch (TP·CP)
    model_flops = sum(c.model_flops for c in chunk_cost) * plan.tp * plan.cp * m * plan.dp
    hw_flops = sum(c.hw_flops for c in chunk_cost) * plan.tp * plan.cp * m * plan.dp
    tokens_per_step = plan.global_batch_size * plan.seq_len
    seconds = ph.steps * step
    hours = n * seconds / 3600
    return PhaseEstimate(
        name=ph.name, tokens=ph.tokens, steps=ph.steps, step_time_s=step, gpu_hours=hours,
        wall_clock_days=seconds / 86400, cost_usd=hours * price,
        energy_mwh=energy_mwh(sc, hw, hours),
        mfu=model_flops / n / step / hw.peak_flops["bf16"],      # PaLM MFU vs the dense BF16 peak
        model_tflops_per_gpu=model_flops / n / step / 1e12,
        hardware_tflops_per_gpu=hw_flops / n / step / 1e12,
        tokens_per_s_per_gpu=tokens_per_step / step / n,
        model_flops_per_token=model_flops / tokens_per_step,
        breakdown=bd, memory=mem, plan=plan, layout=chunk_units)

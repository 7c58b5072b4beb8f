"""Parallel plan: sizes derived and checked against the model and cluster (PlanError says which fails)."""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from .errors import PlanError
from .safe_load import clip
from .hardware import HardwareProfile
from .model import ModelSpec
from .scenario import MAX_STEPS, Parallelism, Precision, Scenario, one_line

NVLINK, NETWORK, A2A_MIXED, HIERARCHICAL = 0, 1, 2, 3  # link tiers, as the cost kernel numbers them


@dataclass(frozen=True)
class ParallelPlan:
    """One phase's resolved plan: every size known, every divisibility checked."""
    num_gpus: int
    gpus_per_node: int
    tp: int
    pp: int
    ep: int
    cp: int
    dp: int
    sequence_parallel: bool
    zero_stage: int
    schedule: str
    virtual_stages: int
    micro_batch_size: int
    recompute: str
    attention: str
    tp_comm_overlap: bool
    comm_sms: int
    stage_layout: str
    precision: str
    seq_len: int
    global_batch_size: int
    etp: int = 1
    ep_comm_overlap: bool = False
    dp_comm_overlap: bool = True
    grad_dtype: str = "fp32"
    zero_shard_size: int | None = None
    zero3_gather_once: bool = False
    recompute_fraction: float = 1.0
    fp8_recipe: str = "delayed"
    moe_load_imbalance: float | None = None
    moe_capacity_factor: float | None = None

    @property
    def num_microbatches(self) -> int:
        """Micro-batches per pipeline (per data-parallel replica) per step."""
        return self.global_batch_size // (self.dp * self.micro_batch_size)

    @property
    def tokens_per_microbatch(self) -> int:
        """Tokens one GPU processes per micro-batch (sequence split by CP)."""
        return self.micro_batch_size * self.seq_len // self.cp

    @property
    def num_chunks(self) -> int:
        """Pipeline chunks in the model: stages × virtual stages (DualPipe: one chunk per stage)."""
        return self.pp * (self.virtual_stages if self.schedule == "interleaved" else 1)

    # Rank order tp → cp → dp(ep) → pp (Megatron's default): a group's stride tells which link it crosses.
    def ranks_per_node(self, stride: int, size: int) -> int:
        """How many members of a group of `size` ranks at `stride` share one node."""
        if stride >= self.gpus_per_node:
            return 1
        return max(1, min(size, self.gpus_per_node // stride))

    def tier(self, stride: int, size: int) -> int:
        """Link tier of a group: NVLink when it fits in a node, else hierarchical (NVLink + network)."""
        k = self.ranks_per_node(stride, size)
        if k >= size:
            return NVLINK
        return NETWORK if k == 1 else HIERARCHICAL


@dataclass(frozen=True)
class PhasePlan:
    name: str
    plan: ParallelPlan | None            # None for a reported figure
    steps: int
    tokens: float
    reported_gpu_hours: float | None = None


def _merged_parallelism(base: Parallelism, override: dict | None, phase: str) -> Parallelism:
    if not override:
        return base
    try:
        return Parallelism.model_validate({**base.model_dump(), **override})
    except ValidationError as exc:
        raise PlanError(one_line(exc, f"phases[{phase}].parallelism.")) from None


def resolve_phases(sc: Scenario, model: ModelSpec, hw: HardwareProfile) -> list[PhasePlan]:
    """Fill each phase from the one before it and check its plan (see README: phase inheritance)."""
    out: list[PhasePlan] = []
    precision, seq_len, gbs, recipe = "bf16", None, None, "delayed"
    for i, ph in enumerate(sc.phases):
        if ph.kind != "train":          # generation, RL and serving phases: costsim/post_training.py
            if ph.kind == "rl":         # an RL phase's update passes its precision on, as a training phase's
                precision = ph.precision or precision
                recipe = ph.fp8_recipe or recipe
            continue
        if ph.gpu_hours is not None:
            out.append(PhasePlan(ph.name, None, 0, 0.0, ph.gpu_hours))
            continue
        precision = ph.precision or precision
        recipe = ph.fp8_recipe or recipe
        seq_len = ph.seq_len or seq_len
        gbs = ph.global_batch_size or gbs
        where = f"phases[{i}] ({ph.name})"
        if seq_len is None or gbs is None:
            missing = "seq_len" if seq_len is None else "global_batch_size"
            raise PlanError(f"{where}.{missing}: required (not given here nor in an earlier phase)")
        par = _merged_parallelism(sc.parallelism, ph.parallelism, f"{i}")
        try:
            plan = make_plan(sc, par, model, hw, precision, seq_len, gbs, where, recipe)
        except PlanError as exc:
            if str(exc).startswith(where):
                raise
            own = ", ".join(f"{k}={v}" for k, v in (ph.parallelism or {}).items())
            raise PlanError(f"{where}: {exc}" + (f" (this phase sets parallelism {clip(own, 80)})" if own else "")) from None
        tokens_per_step = gbs * seq_len
        if ph.steps is not None:
            steps, tokens = ph.steps, float(ph.steps * tokens_per_step)
        else:
            if ph.tokens < tokens_per_step:
                raise PlanError(f"{where}.tokens: {ph.tokens:.4g} is less than one step of global_batch_size · "
                                f"seq_len = {gbs:,} · {seq_len:,} = {tokens_per_step:,} tokens")
            steps = max(1, round(ph.tokens / tokens_per_step))
            tokens = float(ph.tokens)
        if steps > MAX_STEPS:
            raise PlanError(f"{where}: {steps:.4g} steps of {tokens_per_step:,} tokens; the limit is "
                            f"{MAX_STEPS:,} steps")
        out.append(PhasePlan(ph.name, plan, steps, tokens))
    return out


def make_plan(sc: Scenario, par: Parallelism, model: ModelSpec, hw: HardwareProfile,
              precision: Precision, seq_len: int, gbs: int, where: str = "parallelism",
              fp8_recipe: str = "delayed") -> ParallelPlan:
    n = sc.cluster.num_gpus
    gpn = sc.cluster.gpus_per_node or hw.gpus_per_node
    _check_tp(par.tp, model, where)   # the model's own divisibility first: it names the real culprit
    mp = par.tp * par.pp * par.cp
    if n % mp:
        raise PlanError(f"cluster.num_gpus: {n} is not divisible by tp·pp·cp = {par.tp}·{par.pp}·{par.cp} = {mp}")
    dp = n // mp
    if par.dp is not None and par.dp != dp:
        raise PlanError(f"parallelism.dp: given {par.dp} but num_gpus/(tp·pp·cp) = {n}/{mp} = {dp}")
    plan = ParallelPlan(
        num_gpus=n, gpus_per_node=gpn, tp=par.tp, pp=par.pp, ep=par.ep, cp=par.cp, dp=dp,
        sequence_parallel=par.sequence_parallel, zero_stage=par.zero_stage, schedule=par.schedule,
        virtual_stages=par.virtual_stages, micro_batch_size=par.micro_batch_size, recompute=par.recompute,
        attention=par.attention, tp_comm_overlap=par.tp_comm_overlap, comm_sms=par.comm_sms,
        stage_layout=par.stage_layout, precision=precision, seq_len=seq_len, global_batch_size=gbs,
        etp=par.etp, ep_comm_overlap=par.ep_comm_overlap, dp_comm_overlap=par.dp_comm_overlap,
        grad_dtype=par.grad_dtype,
        zero_shard_size=par.zero_shard_size,
        zero3_gather_once=par.zero3_gather_once, recompute_fraction=par.recompute_fraction,
        fp8_recipe=fp8_recipe, moe_load_imbalance=sc.moe.load_imbalance,
        moe_capacity_factor=sc.moe.capacity_factor)
    check_plan(plan, model, hw, where)
    return plan


def _check_tp(tp: int, m: ModelSpec, where: str) -> None:
    for size, key in ((m.num_heads, "num_attention_heads"), (m.intermediate_size, "intermediate_size"),
                      (0 if m.uses_mla else m.num_kv_heads, "num_key_value_heads")):
        if size % tp:
            raise PlanError(f"{where}: parallelism.tp={tp} does not divide {key}={size}")


def check_plan(p: ParallelPlan, m: ModelSpec, hw: HardwareProfile, where: str) -> None:
    """Raise PlanError naming the first divisibility or capability that fails."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise PlanError(f"{where}: {msg}")

    _check_tp(p.tp, m, where)
    if m.is_moe:
        need(m.n_routed_experts % p.ep == 0,
             f"parallelism.ep={p.ep} does not divide n_routed_experts={m.n_routed_experts}")
        stage = p.tp * p.cp * p.dp
        need(stage % (p.ep * p.etp) == 0,
             f"parallelism: ep·etp = {p.ep}·{p.etp} = {p.ep * p.etp} must divide a stage's tp·cp·dp = "
             f"{p.tp}·{p.cp}·{p.dp} = {stage} (MoE parallel folding)")
        need(m.moe_intermediate_size % p.etp == 0,
             f"parallelism.etp={p.etp} does not divide moe_intermediate_size={m.moe_intermediate_size}")
    else:
        need(p.ep == 1 and p.etp == 1, f"parallelism: ep={p.ep}, etp={p.etp} but the model has no experts")
    need(p.seq_len % p.cp == 0, f"parallelism.cp={p.cp} does not divide seq_len={p.seq_len}")
    if p.zero_shard_size is not None:
        need(p.zero_stage >= 1, f"parallelism.zero_shard_size={p.zero_shard_size} needs zero_stage ≥ 1 (it shards "
             f"ZeRO state)")
        need((p.dp * p.cp) % p.zero_shard_size == 0,
             f"parallelism.zero_shard_size={p.zero_shard_size} does not divide dp·cp = {p.dp}·{p.cp} = {p.dp * p.cp}")
    need(p.recompute_fraction == 1.0 or p.recompute == "full",
         f"parallelism.recompute_fraction={p.recompute_fraction} applies to recompute: full (this plan: "
         f"{p.recompute})")
    need(not p.zero3_gather_once or p.zero_stage == 3,
         f"parallelism.zero3_gather_once needs zero_stage 3 (this plan: {p.zero_stage})")
    per_step = p.dp * p.micro_batch_size
    need(p.global_batch_size % per_step == 0,
         f"global_batch_size={p.global_batch_size} is not divisible by dp·micro_batch_size = "
         f"{p.dp}·{p.micro_batch_size} = {per_step}")
    units = m.num_layers + m.num_nextn_predict_layers
    need(units >= p.num_chunks,
         f"parallelism: {units} layers cannot fill pp·virtual_stages = {p.num_chunks} pipeline chunks")
    if p.schedule == "dualpipe":
        need(p.pp % 2 == 0, f"parallelism.pp={p.pp}: DualPipe needs an even number of stages")
        mb = p.num_microbatches     # deepseek-ai/DualPipe: half enter at each end, at least two per stage
        need(mb % 2 == 0 and mb >= 2 * p.pp,
             f"DualPipe needs an even number of micro-batches, at least 2·pp = {2 * p.pp}; this plan has "
             f"global_batch_size / (dp·micro_batch_size) = {p.global_batch_size} / ({p.dp}·{p.micro_batch_size})"
             f" = {mb}")
    if p.schedule == "interleaved":
        need(p.num_microbatches % p.pp == 0 or p.pp == 1,
             f"interleaved schedule needs micro-batches ({p.num_microbatches}) divisible by pp={p.pp}")
    need(hw.supports(p.precision), f"precision {p.precision}: {hw.name} has no {p.precision} tensor cores")
    need(p.comm_sms < hw.num_sms, f"parallelism.comm_sms={p.comm_sms} must be below the GPU's {hw.num_sms} SMs")

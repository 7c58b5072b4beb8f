"""Enumerate legal plans and cost each through `estimate_phase` — the one cost path `costsim estimate` uses.

Per plan: `make_plan` (the same divisibility checks as `estimate`; its verdict is memoised on the fields those
checks read), then `estimate_phase` — which checks memory before any costing, so infeasible plans are cheap —
with a memoised `unit_costs`: per-unit op tables and their kernel seconds depend
only on the layer-level plan fields, so each distinct layer key goes through the cost kernel once. The
figures are those of `costsim estimate --set …` of the same plan (tests/test_search.py checks it to 1e-9).

That is the exact engine (`--engine exact`, `evaluate_space`): the reference, at a few thousand plans per
second. The default engine (`--engine fast`, search/fast.py) computes the same plans, rejection counts and
figures over arrays, a million and more plans per second; tests/test_search_fast.py holds the two together.
The exact engine imports nothing from the fast one, so it stays an independent check of it.
"""
from __future__ import annotations

import itertools
import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from ..errors import PlanError, ScenarioError
from ..fp8 import microbatches_per_chunk, weight_cached
from ..scenario import Parallelism, Scenario
from .space import DIMENSIONS, PRICE_KEY, SearchSpace, resolve_space, with_prices

if TYPE_CHECKING:
    from .serve import ServeSearchResult

# A PlanError message → a short reason key (first match wins).
_REASONS = (
    ("memory", "does not fit in memory"),
    ("tp divides heads", r"tp=\d+ does not divide num_attention_heads"),
    ("tp divides kv heads", r"tp=\d+ does not divide num_key_value_heads"),
    ("tp divides ffn", r"tp=\d+ does not divide intermediate_size"),
    ("tp·pp·cp divides num_gpus", r"is not divisible by tp·pp·cp"),
    ("ep divides experts", r"ep=\d+ does not divide n_routed_experts"),
    ("ep·etp divides tp·cp·dp", r"ep·etp"),
    ("etp divides expert ffn", r"etp=\d+ does not divide"),
    ("no experts for ep", r"the model has no experts"),
    ("cp divides seq_len", r"cp=\d+ does not divide seq_len"),
    ("dp·mbs divides batch", r"global_batch_size=\d+ is not divisible"),
    ("layers fill pp·v", r"cannot fill"),
    ("dualpipe even pp", r"DualPipe needs an even"),
    ("interleaved micro-batches", r"interleaved schedule needs"),
    ("precision unsupported", r"tensor cores"),
    ("comm_sms", r"comm_sms"),
    ("dp given", r"parallelism\.dp"),
)


def reason_key(message: str) -> str:
    for key, pattern in _REASONS:
        if re.search(pattern, message):
            return key
    return "other"


@dataclass(frozen=True)
class PlanResult:
    plan: dict                       # scenario keys: tp, pp, … (parallelism), num_gpus, gpu (cluster)
    step_time_s: float
    wall_clock_days: float
    gpu_hours: float
    cost_usd: float
    mfu: float
    memory_gib_per_gpu: float

    def to_dict(self) -> dict:
        return {"plan": dict(self.plan), "step_time_s": self.step_time_s, "wall_clock_days": self.wall_clock_days,
                "gpu_hours": self.gpu_hours, "cost_usd": self.cost_usd, "mfu": self.mfu,
                "memory_gib_per_gpu": self.memory_gib_per_gpu}


@dataclass
class SearchResult:
    scenario: str
    phase: str
    space: str
    objective: str
    evaluated: int
    feasible: list[PlanResult]
    rejected: dict[str, int]
    seconds: float
    top_n: int
    dimensions: dict[str, list] = field(default_factory=dict)
    engine: dict = field(default_factory=dict)   # which engine costed the plans; the fast one's fallbacks

    @property
    def configs_per_s(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else 0.0

    @property
    def pareto(self) -> list[PlanResult]:
        if hasattr(self.feasible, "pareto_indices"):   # the fast engine's columns (search/fast.py)
            return self.feasible.rows(self.feasible.pareto_indices())
        return pareto_front(self.feasible)

    @property
    def top(self) -> list[PlanResult]:
        if self.objective == "pareto":
            return self.pareto[: self.top_n]
        if hasattr(self.feasible, "order"):
            return self.feasible.rows(self.feasible.order(self.objective)[: self.top_n])
        key = ((lambda r: (r.cost_usd, r.wall_clock_days)) if self.objective == "cost"
               else (lambda r: (r.wall_clock_days, r.cost_usd)))
        return sorted(self.feasible, key=key)[: self.top_n]

    def beats_best(self, top: list[PlanResult] | None = None) -> list[float | None]:
        """Per top plan: the chance it is in fact cheaper (objective cost) or faster (time) than the first, from
        the model's held-out errors between two runs of one source (uncertainty.p_beats_best; the cross-GPU
        record for a plan on another GPU type). The same run as the first at another price carries no model
        error: 0 when it costs more (objective cost), None (objective time: it is the same run). None for the
        first, and for all under the pareto objective."""
        top = self.top if top is None else top
        if self.objective not in ("cost", "time") or not top:
            return [None] * len(top)
        from ..uncertainty import beats_best

        def run(r: PlanResult) -> dict:
            return {k: v for k, v in r.plan.items() if k != "usd_per_gpu_hour"}
        first = run(top[0])
        gpu = top[0].plan.get("gpu")
        out = beats_best([r.cost_usd if self.objective == "cost" else r.wall_clock_days for r in top],
                         [r.plan.get("gpu") != gpu for r in top])
        for i, r in enumerate(top[1:], 1):
            if run(r) == first:
                out[i] = (0.0 if r.cost_usd > top[0].cost_usd else 0.5) if self.objective == "cost" else None
        return out

    def to_dict(self) -> dict:
        from ..uncertainty import COMPARISON_ABOUT, load_band
        top = self.top
        record = (load_band() or {}).get("comparison") if self.objective in ("cost", "time") else None
        cross = (record or {}).get("cross_gpu") or {}
        return {"scenario": self.scenario, "phase": self.phase, "space": self.space, "objective": self.objective,
                "evaluated": self.evaluated, "feasible": len(self.feasible),
                "rejected": dict(sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0]))),
                "seconds": self.seconds, "configs_per_s": self.configs_per_s, "engine": dict(self.engine),
                "top": [r.to_dict() | {"p_beats_best": p} for r, p in zip(top, self.beats_best(top))],
                "pareto": [r.to_dict() for r in self.pareto],
                "comparison": None if record is None else {
                    "what": COMPARISON_ABOUT, "pairs": record["pairs"], "sources": record["sources"],
                    "median_ratio_error": record["median"],
                    "cross_gpu_median_ratio_error": cross.get("median")}}


def pareto_front(results: list[PlanResult]) -> list[PlanResult]:
    """Plans no other plan beats on both cost and wall-clock (ties: the first), by ascending cost."""
    out: list[PlanResult] = []
    best_days = math.inf
    for r in sorted(results, key=lambda r: (r.cost_usd, r.wall_clock_days)):
        if r.wall_clock_days < best_days:
            out.append(r)
            best_days = r.wall_clock_days
    return out


class UnitCostCache:
    """Memoised `estimate.unit_costs`: one kind at a time, keyed on the plan fields its op table reads.

    Op seconds are element-wise per op, so costing one kind alone gives the same floats as costing all kinds
    in one call. Layer units read no pipeline / data-parallel / ZeRO field except through FP8 weight casts
    (costsim/fp8.py: cast once per step and amortised over the micro-batches that pass a chunk, unless ZeRO-3
    re-gathers them), so the key carries those two derived values; the p2p unit reads pp (== 1) and dp (its
    stride). tests/test_search.py compares against uncached `estimate` on random plans, dense and MoE/FP8."""

    _NEUTRAL = dict(pp=1, dp=1, num_gpus=1, schedule="1f1b", virtual_stages=1, zero_stage=0,
                    global_batch_size=1, stage_layout="uniform", dp_comm_overlap=True, zero_shard_size=None,
                    zero3_gather_once=False)

    def __init__(self) -> None:
        from ..estimate import unit_costs
        self._unit_costs = unit_costs
        self._cache: dict = {}
        self.hits = self.misses = 0

    def __call__(self, model, hw, plan, eff, kinds):
        cached = weight_cached(plan)
        base = (replace(plan, **self._NEUTRAL), cached, microbatches_per_chunk(plan) if cached else 0)
        out, missing = {}, []
        for k in kinds:
            key = (id(hw), id(model), k, base, (plan.pp == 1, plan.dp) if k == "p2p" else None)
            hit = self._cache.get(key)
            if hit is None:
                missing.append((k, key))
            else:
                out[k] = hit
        self.hits += len(kinds) - len(missing)
        for k, key in missing:
            self.misses += 1
            self._cache[key] = out[k] = self._unit_costs(model, hw, plan, eff, [k])[k]
        return {k: out[k] for k in kinds}


@dataclass(frozen=True)
class PhaseInputs:
    index: int
    name: str
    precision: str
    fp8_recipe: str
    seq_len: int
    global_batch_size: int
    steps: int
    tokens: float
    override: dict


def phase_inputs(sc: Scenario, phase: str | None) -> PhaseInputs:
    """The searched phase with what it inherits (README: phase inheritance), as `resolve_phases` fills it."""
    precision, seq_len, gbs, recipe = "bf16", None, None, "delayed"
    names = []
    for i, ph in enumerate(sc.phases):
        if ph.kind == "rl":     # passes its update's precision on, as resolve_phases does; not searched
            precision, recipe = ph.precision or precision, ph.fp8_recipe or recipe
            continue
        if ph.kind != "train" or ph.gpu_hours is not None:
            continue
        precision = ph.precision or precision
        recipe = ph.fp8_recipe or recipe
        seq_len = ph.seq_len or seq_len
        gbs = ph.global_batch_size or gbs
        names.append(ph.name)
        if phase is None or ph.name == phase:
            if seq_len is None or gbs is None:
                missing = "seq_len" if seq_len is None else "global_batch_size"
                raise PlanError(f"phases[{i}] ({ph.name}).{missing}: required (not given here nor in an earlier "
                                "phase)")
            tokens_per_step = gbs * seq_len
            if ph.steps is not None:
                steps, tokens = ph.steps, float(ph.steps * tokens_per_step)
            else:
                steps, tokens = max(1, round(ph.tokens / tokens_per_step)), float(ph.tokens)
            return PhaseInputs(i, ph.name, precision, recipe, seq_len, gbs, steps, tokens, dict(ph.parallelism or {}))
    if phase is None:
        raise ScenarioError("phases: no phase to search (every phase is a reported gpu_hours figure or a "
                            "generate or rl phase)")
    kind = next((ph.kind for ph in sc.phases if ph.name == phase), None)
    if kind == "rl":
        raise ScenarioError(f"--phase {phase}: rl phases are not searched (search plans training, serve and "
                            f"generate phases); training phases: {', '.join(names) or 'none'}")
    raise ScenarioError(f"--phase {phase}: no training phase (nor serve phase) of that name; training phases: "
                        f"{', '.join(names) or 'none'}")


def _combos(dims: dict[str, list]) -> tuple[int, Iterator[tuple]]:
    """(count, iterator) of (gpu, n, tp, sp, pp, cp, ep, etp, schedule, v, mbs, zero, recompute); sequence
    parallelism only where tp > 1, virtual stages only under the interleaved schedule (no duplicate plans)."""
    sp_vals = dims["sequence_parallel"]
    v_vals = dims["virtual_stages"]
    tp_sp = [(t, s) for t in dims["tp"] for s in (sp_vals if t > 1 else [False])]
    sched_v = [(s, v) for s in dims["schedule"] for v in (v_vals if s == "interleaved" else [1])]
    # one stage has no pipeline schedule to choose: one plan (1f1b where listed), not four of the same
    one = "1f1b" if "1f1b" in dims["schedule"] else dims["schedule"][0]
    sched_v1 = [sv for sv in sched_v if sv[0] == one][:1]
    pp_sched = [(pp, sv) for pp in dims["pp"] for sv in (sched_v1 if pp == 1 else sched_v)]
    lists = (dims["gpu"], dims["num_gpus"], tp_sp, pp_sched, dims["cp"], dims["ep"], dims["etp"],
             dims["micro_batch_size"], dims["zero_stage"], dims["recompute"])
    count = math.prod(len(x) for x in lists)

    def gen():
        for gpu, n, (tp, sp), (pp, (sched, v)), cp, ep, etp, mbs, zero, rec in itertools.product(*lists):
            yield gpu, n, tp, sp, pp, cp, ep, etp, sched, v, mbs, zero, rec
    return count, gen()


MAX_PLANS = 100_000_000     # a space beyond this is a mistake at today's rate (about a day of CPU per 10^8)


def search(sc: Scenario, base_dir: Path = Path("."), phase: str | None = None, objective: str = "cost",
           top: int = 10, space: SearchSpace | None = None, wide: bool = False,
           progress: Callable[[int, int], None] | None = None, space_name: str | None = None,
           limit: int | None = None, executor: str = "local", scheduler: str | None = None,
           jobs: int = 1, engine: str = "fast") -> "SearchResult | ServeSearchResult":
    """Every legal plan of the space for one phase; `limit` stops after that many candidates (benchmarks).
    `executor="dask"`: the space is split (`partitions`) over a dask.distributed cluster (`scheduler`
    address, else a LocalCluster); the parts are merged in enumeration order, so results equal the local run.
    `jobs` > 1: the same parts over that many local processes.
    `engine`: "fast" (search/fast.py: numpy masks, key tables and numba kernels over arrays) or "exact"
    (`evaluate_space`: `estimate_phase` per plan); the same plans, counts and figures (to 1e-9).
    A serve phase (`--phase` naming one, or the first when no training phase is searchable) gets
    search/serve.py's ServeSearchResult instead: its best prefill and decode instances."""
    from ..estimate import load_context
    from ..hardware import list_profiles

    if objective not in ("cost", "time", "pareto"):
        raise ScenarioError(f"--objective {objective}: expected cost, time or pareto")
    if top < 1:
        raise ScenarioError(f"--top {top}: must be at least 1")
    if executor not in ("local", "dask"):
        raise ScenarioError(f"--executor {executor}: expected local or dask")
    if not 1 <= jobs <= 1024:
        raise ScenarioError(f"--jobs {jobs}: expected 1 to 1024 processes")
    if engine not in ENGINES:
        raise ScenarioError(f"--engine {engine}: expected fast or exact")
    from .serve import search_serve, serve_phase_index
    serve = serve_phase_index(sc, phase)
    if serve is not None:   # a serve phase: its prefill and decode instances (search/serve.py), not a training plan
        if space is not None or wide or executor != "local":
            raise ScenarioError(f"phases[{serve}] ({sc.phases[serve].name}): a serve phase searches its own grid "
                                "of serving instances in this process (no --space, --executor dask)")
        return search_serve(sc, serve, base_dir, objective, top, progress)
    from .generate import generate_phase_index, search_generate
    gen = generate_phase_index(sc, phase)
    if gen is not None:     # a generate phase: its serving instance(s) (search/generate.py)
        if space is not None or wide or executor != "local":
            raise ScenarioError(f"phases[{gen}] ({sc.phases[gen].name}): a generate phase searches its own grid "
                                "of serving instances in this process (no --space, --executor dask)")
        return search_generate(sc, gen, base_dir, objective, top, progress)
    t0 = time.perf_counter()
    model, _ = load_context(sc, base_dir)
    ph = phase_inputs(sc, phase)
    space = space if space is not None else sc.search
    dims = resolve_space(space, model, sc, ph.seq_len, wide, list_profiles())
    for gpu in dims["gpu"]:   # every profile readable before the first plan (one line if not)
        load_context(sc.model_copy(update={"cluster": sc.cluster.model_copy(update={"gpu": gpu})}), base_dir)
    count, _ = _combos(dims)
    if count > MAX_PLANS and limit is None:
        raise ScenarioError(f"search space: {count:,} candidate plans, more than {MAX_PLANS:,}; fix or shorten "
                            "some dimensions (search: block or --space file)")
    if executor == "dask":
        if limit is not None:
            raise ScenarioError("--executor dask: runs the whole space (no limit)")
        from .dask_exec import run_dask
        evaluated, feasible, rejected = run_dask(sc, base_dir, phase, dims, scheduler, progress, engine=engine)
    elif jobs > 1 and limit is None:
        evaluated, feasible, rejected = _run_processes(sc, base_dir, phase, dims, jobs, progress, engine)
    else:
        evaluated, feasible, rejected = space_evaluator(engine)(sc, base_dir, phase, dims, progress, limit)
    # the fast engine says how many plans it combined itself and how many it handed to the exact one (and why)
    st = getattr(feasible, "stats", None)
    engine_info = {"name": engine} if st is None else {
        "name": engine, "vectorised": st.vectorised, "fallback": st.fallback,
        **({"fallback_reason": st.fallback_reason} if st.fallback_reason else {})}
    evaluated, feasible, rejected = with_prices(dims[PRICE_KEY], evaluated, feasible, rejected)
    seconds = time.perf_counter() - t0
    name = space_name or ("wide" if wide else "scenario" if sc.search is not None and space is sc.search
                          else "file" if space is not None else "default")
    return SearchResult(sc.name, ph.name, name, objective, evaluated, feasible, rejected, seconds, top,
                        {k: dims[k] for k in DIMENSIONS}, engine_info)


ENGINES = ("fast", "exact")


def space_evaluator(engine: str) -> Callable:
    """The function that evaluates a space (or one part of it) under `engine`."""
    if engine == "exact":
        return evaluate_space
    from .fast import evaluate_space_fast
    return evaluate_space_fast


def merge_parts(results: list) -> tuple[int, list[PlanResult], dict[str, int]]:
    """Parts' (evaluated, feasible, rejected), in partition order, as one result (the fast engine's parts:
    one FeasibleTable)."""
    evaluated, feasible, rejected = 0, [], {}
    for n, feas, rej in results:
        evaluated += n
        feasible.append(feas)
        for k, v in rej.items():
            rejected[k] = rejected.get(k, 0) + v
    if feasible and all(hasattr(f, "cols") for f in feasible):   # the fast engine's columns
        from .fast import FeasibleTable
        return evaluated, FeasibleTable.concat(feasible), rejected
    return evaluated, [r for f in feasible for r in f], rejected


def _run_processes(sc, base_dir, phase, dims, jobs, progress, engine="exact"):
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # the fast engine shares its key tables across a part's plans: fewer, bigger parts (gpu, num_gpus) suit it
    parts = partitions(dims) if engine == "exact" else gpu_partitions(dims)
    results: list = [None] * len(parts)
    fn = space_evaluator(engine)
    # spawned, not forked: the fast engine's parallel numba kernels (GNU OpenMP) cannot run in a forked child
    import multiprocessing
    ctx = multiprocessing.get_context("spawn" if engine != "exact" else None)
    with ProcessPoolExecutor(max_workers=min(jobs, len(parts)), mp_context=ctx) as pool:
        futures = {pool.submit(fn, sc, Path(base_dir).resolve(), phase, d): i
                   for i, d in enumerate(parts)}
        for done, fut in enumerate(as_completed(futures), 1):
            results[futures[fut]] = fut.result()
            if progress is not None:
                progress(done, len(parts))
    return merge_parts(results)


def partitions(dims: dict[str, list]) -> list[dict[str, list]]:
    """The space split by (gpu, num_gpus, tp, sequence_parallel, pp) — the outer dimensions of `_combos`, in
    its order — so the parts' plans, concatenated, come in the order of the whole."""
    sp = dims["sequence_parallel"]
    return [{**dims, "gpu": [g], "num_gpus": [n], "tp": [t], "sequence_parallel": [s], "pp": [p]}
            for g in dims["gpu"] for n in dims["num_gpus"] for t in dims["tp"]
            for s in (sp if t > 1 else sp[:1]) for p in dims["pp"]]


def gpu_partitions(dims: dict[str, list]) -> list[dict[str, list]]:
    """The space split by (gpu, num_gpus) — the outermost dimensions of `_combos`, in its order."""
    return [{**dims, "gpu": [g], "num_gpus": [n]} for g in dims["gpu"] for n in dims["num_gpus"]]


def evaluate_space(sc: Scenario, base_dir: Path, phase: str | None, dims: dict[str, list],
                   progress: Callable[[int, int], None] | None = None,
                   limit: int | None = None) -> tuple[int, list[PlanResult], dict[str, int]]:
    """(evaluated, feasible plans in enumeration order, rejected by reason) over `dims`."""
    from ..efficiency import fitted, with_overrides
    from ..estimate import estimate_phase, load_context
    from ..plan import PhasePlan, make_plan

    model, hw0 = load_context(sc, base_dir)
    ph = phase_inputs(sc, phase)
    eff = with_overrides(fitted(), sc.efficiency)
    cache = UnitCostCache()
    where = f"phases[{ph.index}] ({ph.name})"
    base_par = {**sc.parallelism.model_dump(), **ph.override}
    base_par.pop("dp", None)

    contexts: dict[tuple[str, int], tuple] = {}

    def context(gpu: str, n: int):
        ctx = contexts.get((gpu, n))
        if ctx is None:
            cluster = sc.cluster.model_copy(update={"gpu": gpu, "num_gpus": n})
            sc_g = sc.model_copy(update={"cluster": cluster})
            _, hw = (model, hw0) if gpu == sc.cluster.gpu else load_context(sc_g, base_dir)
            price = sc.pricing.usd_per_gpu_hour or hw.price_usd_per_gpu_hour
            ctx = contexts[(gpu, n)] = (sc_g, hw, price)
        return ctx

    verdicts: dict[tuple, str | None] = {}
    rejected: dict[str, int] = {}
    feasible: list[PlanResult] = []
    count, combos = _combos(dims)
    if limit is not None:
        count = min(count, limit)
        combos = itertools.islice(combos, limit)
    evaluated = 0
    step = max(1, count // 200)

    def reject(key: str) -> None:
        rejected[key] = rejected.get(key, 0) + 1

    for gpu, n, tp, sp, pp, cp, ep, etp, sched, v, mbs, zero, rec in combos:
        evaluated += 1
        if progress is not None and evaluated % step == 0:
            progress(evaluated, count)
        sc_g, hw, price = context(gpu, n)
        # make_plan's checks read these fields only: its verdict is memoised on them
        dkey = (gpu, n, tp, pp, cp, ep, etp, sched, v, mbs)
        verdict = verdicts.get(dkey, "")
        if verdict:
            reject(verdict)
            continue
        values = dict(tp=tp, pp=pp, cp=cp, ep=ep, etp=etp, zero_stage=zero, micro_batch_size=mbs, recompute=rec,
                      schedule=sched, virtual_stages=v, sequence_parallel=sp)
        try:
            par = Parallelism.model_validate({**base_par, **values})
            plan = make_plan(sc_g, par, model, hw, ph.precision, ph.seq_len, ph.global_batch_size, where,
                             ph.fp8_recipe)
        except PlanError as exc:
            verdicts[dkey] = reason_key(str(exc))
            reject(verdicts[dkey])
            continue
        verdicts[dkey] = None
        try:   # estimate_phase checks memory before it costs anything (uniform stage layout)
            est = estimate_phase(sc_g, model, hw, PhasePlan(ph.name, plan, ph.steps, ph.tokens), eff, price,
                                 unit_costs_fn=cache)
        except PlanError as exc:
            reject(reason_key(str(exc)))
            continue
        feasible.append(PlanResult(
            plan={**values, "dp": plan.dp, "num_gpus": n, "gpu": gpu}, step_time_s=est.step_time_s,
            wall_clock_days=est.wall_clock_days, gpu_hours=est.gpu_hours, cost_usd=est.cost_usd, mfu=est.mfu,
            memory_gib_per_gpu=est.memory.total / 2 ** 30))
    if progress is not None:
        progress(evaluated, count)
    return evaluated, feasible, rejected

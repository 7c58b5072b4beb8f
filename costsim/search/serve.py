"""`costsim search` for a `kind: serve` phase: the cheapest prefill and decode instances.

A serve phase's GPUs are the prefill load (input rate / prefill tokens/s per GPU) and the decode load (output
rate / decode tokens/s per GPU), each rounded up to whole instances (costsim/serving.py: estimate_serve,
`whole_instances`): two independent terms — so the cheapest plan is the prefill instance that needs the fewest
GPUs plus the decode instance that does at the phase's speed target, each searched on its own (a grid of
n + m candidates, not n·m pairs). With whole instances a smaller, slower instance can beat a faster one that
rounds up worse. Every candidate is costed by `serving.prefill_rate` / `serving.decode_point`, the functions
`estimate` costs the scenario's own instances with, so its figures are those of `costsim estimate --set
phases.I.decode.dp=…` (tests/test_search_serve.py).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..errors import PlanError, ScenarioError

# Instance sizes tried beside the scenario's own: powers of two, and 3·2^k (24, 48, 96, 192) so that instances
# of whole nodes other than powers of two are seen. Decode costs ~10–40 ms a feasible candidate (decode_for_speed
# tries ~100 batches), so the grid stays at ~14 sizes rather than every multiple of a node (DeepSeek's day: 12 s).
MAX_INSTANCE_GPUS = 256

_REASONS = (   # a PlanError message → a short reason key (first match wins)
    ("memory", r"no room|does not fit|no decode batch fits"),
    ("speed target", r"out of reach"),
    ("tp divides heads", r"does not divide num_attention_heads"),
    ("ep divides experts", r"does not divide n_routed_experts"),
    ("ep divides tp·dp", r"must divide the instance"),
    ("no experts for ep", r"has no experts"),
    ("precision unsupported", r"tensor cores"),
)


def reason_key(message: str) -> str:
    return next((k for k, pattern in _REASONS if re.search(pattern, message)), "other")


def serve_phase_index(sc, phase: str | None) -> int | None:
    """The serve phase `costsim search` plans: the one `--phase` names, else the first serve phase when the
    scenario has no training phase to search; None when the training search applies (or errs)."""
    if phase is not None:
        return next((i for i, ph in enumerate(sc.phases) if ph.name == phase and ph.kind == "serve"), None)
    if any(ph.kind == "train" and ph.gpu_hours is None for ph in sc.phases):
        return None
    return next((i for i, ph in enumerate(sc.phases) if ph.kind == "serve"), None)


@dataclass(frozen=True)
class Instance:
    role: str                    # prefill | decode
    serving: dict                # the instance as the scenario writes it (phases.I.prefill / .decode)
    gpus: int                    # tp·dp
    tokens_per_s_per_gpu: float  # capacity: input (prefill) or output (decode) tokens/s per GPU
    tokens_per_s_per_node: float # what a deployed node delivers (the role's tokens over its node-time), as estimate
    nodes: float                 # the phase's prefill (decode) nodes on instances like this one
    instances: int
    tokens_per_s_per_request: float | None = None   # decode only
    batch_per_gpu: float | None = None
    limited_by: str | None = None

    def to_dict(self) -> dict:
        d = {"serving": dict(self.serving), "instance_gpus": self.gpus}
        word = "input" if self.role == "prefill" else "output"
        d |= {f"{word}_tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
              f"{word}_tokens_per_s_per_node": self.tokens_per_s_per_node,
              f"{self.role}_nodes": self.nodes, f"{self.role}_instances": self.instances}
        if self.role == "decode":
            d |= {"tokens_per_s_per_request": self.tokens_per_s_per_request, "batch_per_gpu": self.batch_per_gpu,
                  "limited_by": self.limited_by}
        return d


@dataclass(frozen=True)
class Combination:
    prefill: Instance
    decode: Instance
    gpus: float
    nodes: float
    gpu_hours: float
    cost_usd: float

    def to_dict(self) -> dict:
        return {"prefill": dict(self.prefill.serving), "decode": dict(self.decode.serving), "gpus": self.gpus,
                "nodes": self.nodes, "prefill_nodes": self.prefill.nodes, "decode_nodes": self.decode.nodes,
                "gpu_hours": self.gpu_hours, "cost_usd": self.cost_usd}


@dataclass
class ServeSearchResult:
    scenario: str
    phase: str
    objective: str
    prefill: list[Instance]      # feasible, best first
    decode: list[Instance]
    evaluated: dict[str, int]
    rejected: dict[str, dict[str, int]]
    best: Combination | None
    scenario_plan: Combination | None
    scenario_error: str | None
    seconds: float
    top_n: int
    grid: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict:
        own = scenario_plan_dict(self.scenario_plan, self.best, self.scenario_error)
        return {"kind": "serve", "scenario": self.scenario, "phase": self.phase, "objective": "cost",
                "evaluated": dict(self.evaluated),
                "feasible": {"prefill": len(self.prefill), "decode": len(self.decode)},
                "rejected": {r: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0])))
                             for r, v in self.rejected.items()},
                "seconds": self.seconds, "grid": dict(self.grid),
                "top_prefill": [x.to_dict() for x in self.prefill[: self.top_n]],
                "top_decode": [x.to_dict() for x in self.decode[: self.top_n]],
                "best": self.best.to_dict() if self.best else None, "scenario_plan": own}


def scenario_plan_dict(own, best, error: str | None) -> dict:
    """The scenario's own plan in a search's JSON: its figures and how much dearer than the best, or its error."""
    if own is None:
        return {"error": error}
    d = own.to_dict()
    if best is not None:
        d |= {"cost_over_best": own.cost_usd / best.cost_usd, "saving_usd": own.cost_usd - best.cost_usd}
    return d


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def grid(model, hw, ph) -> dict[str, list]:
    gpn = hw.gpus_per_node
    own = (ph.prefill, ph.decode)
    cap = max([MAX_INSTANCE_GPUS] + [s.tp * s.dp for s in own])
    sizes = {2 ** k for k in range(cap.bit_length()) if 2 ** k <= cap}
    sizes |= {3 * 2 ** k for k in range(cap.bit_length()) if gpn <= 3 * 2 ** k <= cap}
    sizes |= {s.tp * s.dp for s in own}
    tps = sorted({t for t in _divisors(model.num_heads) if t <= gpn} | {s.tp for s in own})
    precision = sorted({s.precision for s in own} | ({"bf16"} if any(s.precision == "fp8" for s in own) else set()))
    redundant = sorted({s.redundant_experts for s in own} | {0}) if model.is_moe else [0]
    return {"tp": tps, "instance_gpus": sorted(sizes), "precision": precision, "redundant_experts": redundant}


def candidates(model, base, dims) -> list:
    """Instances like `base` (its other fields kept) over tp, dp = gpus / tp, ep | tp·dp (MoE), precision and
    redundant experts; ep values the model rejects are kept and counted by check_serving's reason. A measured
    moe_load_imbalance belongs to the scenario's own ep and redundant experts: other layouts get the balanced
    floor."""
    out = []
    for prec in dims["precision"]:
        for red in dims["redundant_experts"]:
            for tp in dims["tp"]:
                for g in dims["instance_gpus"]:
                    if g % tp:
                        continue
                    for ep in (_divisors(g) if model.is_moe else [1]):
                        same = ep == base.ep and red == base.redundant_experts
                        out.append(base.model_copy(update=dict(
                            tp=tp, dp=g // tp, ep=ep, precision=prec, redundant_experts=red,
                            moe_load_imbalance=base.moe_load_imbalance if same else None)))
    return list({s.model_dump_json(): s for s in out}.values())     # dedupe, first order kept


_KEYS = ("tp", "dp", "ep", "precision", "redundant_experts")


def phase_context(sc, index: int, base_dir: Path, objective: str, top: int, what: str):
    """(phase, its error label, model, hardware, efficiency, $/GPU-hour) of an inference phase, as
    estimate_other sets them up: the scenario's node size sets the link tiers; the phase may run its own model.
    Refuses objectives other than cost (`what`: the phase kind's reason) and --top below 1."""
    from ..efficiency import fitted, with_overrides
    from ..estimate import load_context
    from ..model import resolve_model

    if objective != "cost":
        raise ScenarioError(f"--objective {objective}: {what}, so cost is its only objective (leave --objective "
                            "out)")
    if top < 1:
        raise ScenarioError(f"--top {top}: must be at least 1")
    ph = sc.phases[index]
    where = f"phases[{index}] ({ph.name})"
    model, hw = load_context(sc, base_dir)
    if sc.cluster.gpus_per_node and sc.cluster.gpus_per_node != hw.gpus_per_node:
        hw = replace(hw, gpus_per_node=sc.cluster.gpus_per_node)
    if ph.model is not None:
        try:
            model = resolve_model(ph.model, base_dir)
        except ValueError as exc:
            raise ScenarioError(f"{where}.model: {exc}") from None
    price = sc.pricing.usd_per_gpu_hour or hw.price_usd_per_gpu_hour
    return ph, where, model, hw, with_overrides(fitted(), sc.efficiency), price


def search_serve(sc, index: int, base_dir: Path = Path("."), objective: str = "cost", top: int = 10,
                 progress: Callable[[int, int], None] | None = None) -> ServeSearchResult:
    from ..post_training import ceil_div, nodes
    from ..serving import decode_point, deployed_gpus, prefill_rate, serve_context

    t0 = time.perf_counter()
    ph, where, model, hw, eff, price = phase_context(sc, index, base_dir, objective, top,
                                                     "a serve phase's period is fixed")
    _, context = serve_context(ph)
    seconds, u, target = ph.hours * 3600, ph.utilization, ph.tokens_per_s_per_request
    # the prefill instance runs MTP over the prompt when decode drafts (serving.prefill_rate): decode's mtp_tokens
    # is the scenario's in every candidate, so prefill's rate does not depend on which decode instance is chosen
    mtp = ph.decode.mtp_tokens

    def cost_prefill(s):
        pf = prefill_rate(model, hw, eff, s, mtp, ph.prompt_tokens, ph.cache_hit, ph.prompt_sigma,
                          f"{where}.prefill")
        g = deployed_gpus(ph.input_tokens / seconds / (pf * u), s.tp * s.dp, ph.whole_instances)
        return Instance("prefill", {k: getattr(s, k) for k in _KEYS}, s.tp * s.dp, pf,
                        ph.input_tokens / seconds / nodes(g, hw), nodes(g, hw), ceil_div(g, s.tp * s.dp))

    def cost_decode(s):
        pt = decode_point(model, hw, eff, s, context, target, f"{where}.decode")
        g = deployed_gpus(ph.output_tokens / seconds / (pt.tokens_per_s_per_gpu * u), s.tp * s.dp,
                          ph.whole_instances)
        return Instance("decode", {k: getattr(s, k) for k in _KEYS}, s.tp * s.dp, pt.tokens_per_s_per_gpu,
                        ph.output_tokens / seconds / nodes(g, hw), nodes(g, hw), ceil_div(g, s.tp * s.dp),
                        pt.tokens_per_s_per_request, pt.batch_per_gpu, pt.limited_by)

    def combine(p: Instance, d: Instance) -> Combination:
        gpus = (p.nodes + d.nodes) * hw.gpus_per_node            # each role on whole instances (or its load)
        hours = gpus * ph.hours
        return Combination(p, d, gpus, nodes(gpus, hw), hours, hours * price)

    dims = grid(model, hw, ph)
    todo = [("prefill", c, cost_prefill) for c in candidates(model, ph.prefill, dims)] + \
           [("decode", c, cost_decode) for c in candidates(model, ph.decode, dims)]
    found: dict[str, list[Instance]] = {"prefill": [], "decode": []}
    rejected: dict[str, dict[str, int]] = {"prefill": {}, "decode": {}}
    evaluated = {"prefill": 0, "decode": 0}
    step = max(1, len(todo) // 200)
    for i, (role, s, fn) in enumerate(todo, 1):
        evaluated[role] += 1
        try:
            found[role].append(fn(s))
        except PlanError as exc:
            key = reason_key(str(exc))
            rejected[role][key] = rejected[role].get(key, 0) + 1
        if progress is not None and (i % step == 0 or i == len(todo)):
            progress(i, len(todo))
    # fewest GPUs deployed first (whole instances: a smaller instance can waste less on rounding than a faster
    # one), then most tokens/s per GPU; ties (to 12 digits: instances of the same ep and tp but more dp ranks
    # often differ only by rounding): the smaller instance, then enumeration order
    for role in found:
        found[role].sort(key=lambda x: (float(f"{x.nodes:.12g}"), -float(f"{x.tokens_per_s_per_gpu:.12g}"), x.gpus))
    best = combine(found["prefill"][0], found["decode"][0]) if found["prefill"] and found["decode"] else None
    own, own_error = None, None
    try:
        own = combine(cost_prefill(ph.prefill), cost_decode(ph.decode))
    except PlanError as exc:
        own_error = str(exc)
    return ServeSearchResult(sc.name, ph.name, objective, found["prefill"], found["decode"], evaluated, rejected,
                             best, own, own_error, time.perf_counter() - t0, top, dims)

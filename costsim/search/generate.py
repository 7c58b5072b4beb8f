"""`costsim search --phase NAME` for a `kind: generate` phase: the serving instance that generates cheapest.

A generate phase (costsim/serving.py: estimate_generate) runs `prompts` requests on its `num_gpus` GPUs, tiled by
instances of tp·dp GPUs; GPU-seconds = input tokens / prefill tokens/s per GPU + output tokens / decode tokens/s
per GPU. With one instance for both (no `prefill` key) the two rates belong to the same candidate, so candidates
are ranked by that sum; with a separate `prefill` instance the two terms are independent and each role is ranked
on its own (most tokens/s per GPU), as for a serve phase (search/serve.py, whose grid and candidates this reuses,
keeping only instance sizes that tile the GPUs). Every candidate is costed through `serving._rates`, the code
`estimate` runs, so its figures are those of `costsim estimate --set phases.I.serving.dp=…`
(tests/test_search_generate.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from ..errors import PlanError
from .serve import _KEYS, candidates, grid, phase_context, reason_key, scenario_plan_dict


def generate_phase_index(sc, phase: str | None) -> int | None:
    """The generate phase `--phase` names, else None (a generate phase is searched only when named)."""
    if phase is None:
        return None
    return next((i for i, ph in enumerate(sc.phases) if ph.name == phase and ph.kind == "generate"), None)


@dataclass(frozen=True)
class GenCandidate:
    prefill: dict | None          # the prefill instance (tp, dp, ep, precision, redundant_experts); None: shared
    serving: dict                 # the decode (or shared) instance
    prefill_tokens_per_s_per_gpu: float
    decode_tokens_per_s_per_gpu: float
    tokens_per_s_per_request: float
    batch_per_gpu: float
    gpu_hours: float
    wall_clock_days: float
    cost_usd: float

    def to_dict(self) -> dict:
        d = {"serving": dict(self.serving)}
        if self.prefill is not None:
            d["prefill"] = dict(self.prefill)
        return d | {k: getattr(self, k) for k in ("prefill_tokens_per_s_per_gpu", "decode_tokens_per_s_per_gpu",
                                                  "tokens_per_s_per_request", "batch_per_gpu", "gpu_hours",
                                                  "wall_clock_days", "cost_usd")}


@dataclass
class GenerateSearchResult:
    scenario: str
    phase: str
    num_gpus: int
    shared: bool                  # one instance prefills and decodes (no `prefill` key)
    top: list[GenCandidate]       # best first: shared, whole candidates; separate, best prefill × each decode
    ranked: list[GenCandidate]    # every costed candidate (pair) in that order: the CSV
    evaluated: int
    feasible: int
    rejected: dict[str, int]
    best: GenCandidate | None
    scenario_plan: GenCandidate | None
    scenario_error: str | None
    seconds: float
    grid: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict:
        own = scenario_plan_dict(self.scenario_plan, self.best, self.scenario_error)
        return {"kind": "generate", "scenario": self.scenario, "phase": self.phase, "objective": "cost",
                "num_gpus": self.num_gpus, "shared_instance": self.shared, "evaluated": self.evaluated,
                "feasible": self.feasible,
                "rejected": dict(sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0]))),
                "seconds": self.seconds, "grid": dict(self.grid), "top": [c.to_dict() for c in self.top],
                "best": self.best.to_dict() if self.best else None, "scenario_plan": own}


def search_generate(sc, index: int, base_dir: Path = Path("."), objective: str = "cost", top: int = 10,
                    progress: Callable[[int, int], None] | None = None) -> GenerateSearchResult:
    from ..serving import _rates

    t0 = time.perf_counter()
    ph, where, model, hw, eff, price = phase_context(sc, index, base_dir, objective, top,
                                                     "a generate phase's work is fixed")
    n = ph.num_gpus or sc.cluster.num_gpus
    context = ph.input_tokens + ph.output_tokens / 2                     # as estimate_generate
    inp, outp = ph.prompts * ph.input_tokens, ph.prompts * ph.output_tokens
    shared = ph.prefill is None

    def cost(prefill, serving) -> GenCandidate:
        for s, key in ((prefill, f"{where}.prefill"), (serving, f"{where}.serving")):
            if n % (s.tp * s.dp):
                raise PlanError(f"{key}: instances of {s.tp * s.dp} GPUs do not tile the phase's {n} GPUs")
        pf, pt = _rates(model, hw, eff, prefill, serving, ph.input_tokens, ph.cache_hit, context,
                        ph.tokens_per_s_per_request, f"{where}.prefill", f"{where}.serving", ph.prompt_sigma)
        gpu_s = inp / pf + outp / pt.tokens_per_s_per_gpu
        return GenCandidate(None if shared else {k: getattr(prefill, k) for k in _KEYS},
                            {k: getattr(serving, k) for k in _KEYS}, pf, pt.tokens_per_s_per_gpu,
                            pt.tokens_per_s_per_request, pt.batch_per_gpu, gpu_s / 3600, gpu_s / n / 86400,
                            gpu_s / 3600 * price)

    own_prefill = ph.prefill or ph.serving
    dims = grid(model, hw, SimpleNamespace(prefill=own_prefill, decode=ph.serving))
    # only sizes that tile the phase's GPUs, and every such size up to the grid's largest (7 GPUs: 1 and 7)
    cap = max(dims["instance_gpus"])
    dims["instance_gpus"] = sorted({g for g in dims["instance_gpus"] if n % g == 0}
                                   | {g for g in range(1, min(n, cap) + 1) if n % g == 0})
    decode_cands = candidates(model, ph.serving, dims)
    prefill_cands = [None] if shared else candidates(model, ph.prefill, dims)
    rejected: dict[str, int] = {}
    found: list[GenCandidate] = []
    evaluated = feasible = 0

    def attempt(p, d) -> GenCandidate | None:
        nonlocal evaluated
        evaluated += 1
        try:
            return cost(p if p is not None else d, d)
        except PlanError as exc:
            key = reason_key(str(exc))
            key = "does not tile the GPUs" if key == "other" and "do not tile" in str(exc) else key
            rejected[key] = rejected.get(key, 0) + 1
            return None

    total = len(decode_cands) + (0 if shared else len(prefill_cands))
    step = max(1, total // 200)
    if shared:
        for i, d in enumerate(decode_cands, 1):
            c = attempt(None, d)
            found += [c] if c else []
            if progress is not None and (i % step == 0 or i == total):
                progress(i, total)
        found.sort(key=lambda c: (float(f"{c.gpu_hours:.12g}"), c.serving["tp"] * c.serving["dp"]))
        feasible = len(found)
    else:
        # separate instances: the roles are independent given the other's instance (prefill's MTP follows the
        # scenario's decode mtp_tokens, kept in every decode candidate), so each is ranked against the
        # scenario's own instance of the other role, then the best of each are paired
        pre = [c for c in (attempt(p, ph.serving) for p in prefill_cands) if c]
        pre.sort(key=lambda c: -float(f"{c.prefill_tokens_per_s_per_gpu:.12g}"))
        dec = [c for c in (attempt(ph.prefill, d) for d in decode_cands) if c]
        dec.sort(key=lambda c: -float(f"{c.decode_tokens_per_s_per_gpu:.12g}"))
        feasible = len(pre) + len(dec)
        if progress is not None:
            progress(total, total)
        if pre and dec:
            n_tried = evaluated           # the pairs below re-cost candidates already counted
            best_p = next(p for p in prefill_cands if p is not None
                          and {k: getattr(p, k) for k in _KEYS} == pre[0].prefill)
            found = [c for c in (attempt(best_p, next(d for d in decode_cands
                                                       if {k: getattr(d, k) for k in _KEYS} == x.serving))
                                 for x in dec[:top]) if c]
            found.sort(key=lambda c: float(f"{c.gpu_hours:.12g}"))
            evaluated = n_tried
    own, own_error = None, None
    try:
        own = cost(own_prefill, ph.serving)
    except PlanError as exc:
        own_error = str(exc)
    return GenerateSearchResult(sc.name, ph.name, n, shared, found[:top], found, evaluated, feasible, rejected,
                                found[0] if found else None, own, own_error, time.perf_counter() - t0, dims)

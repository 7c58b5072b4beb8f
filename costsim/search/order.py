"""Does costsim order plans as reality does? Kendall τ between predicted and published values, per group of
validation cases that measured several plans of one model on one GPU type and count (same sequence length,
same metric): e.g. torchtitan's vanilla vs async TP and BF16 vs Float8 rows, fms-fsdp's AC and batch variants,
llm-foundry's BF16 vs FP8 rows. Groups whose cases share one scenario (the same plan measured on several
software releases) order nothing and are left out; so are groups of phases of one run (DeepSeek-V3).

Not checked, for want of numbers: Narayanan et al. 2021 (arXiv 2104.04473) §5.4–5.6, its comparisons of
tensor vs pipeline vs data-parallel degree, micro-batch size and activation recomputation on one model and
GPU count. docs/reference/published-runs.md transcribes only its Table 1 (weak scaling: one plan per model
size and GPU count, so no group of plans) and published-runs-2.md none of those sections; no figure is
invented here. `NARAYANAN_TABLE1` names that group so the test can show it orders nothing."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass


NARAYANAN_TABLE1 = "Megatron-LM Table 1"     # costsim/cases: Narayanan et al. 2021 Table 1, one plan per row


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's τ-b (ties in either list handled); nan when either list is constant."""
    n = len(x)
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / denom if denom else math.nan


@dataclass
class OrderGroup:
    key: str                     # source · model · gpu × count · seq_len
    cases: list[str]
    published: list[float]
    predicted: list[float]

    @property
    def tau(self) -> float:
        return kendall_tau(self.predicted, self.published)

    @property
    def pairs(self) -> tuple[int, int]:
        """(concordant, discordant) plan pairs, ties left out."""
        c = d = 0
        for i in range(len(self.cases)):
            for j in range(i + 1, len(self.cases)):
                s = (self.predicted[i] - self.predicted[j]) * (self.published[i] - self.published[j])
                c, d = c + (s > 0), d + (s < 0)
        return c, d


def _key(case) -> tuple:
    s = case.scenario
    model = s["model"] if isinstance(s["model"], str) else json.dumps(s["model"], sort_keys=True)
    ph = s["phases"][0]
    return (case.group, case.metric, model, s["cluster"]["gpu"], s["cluster"]["num_gpus"], ph.get("seq_len"))


def plan_groups(cases, min_size: int = 2) -> list[list]:
    """Cases grouped by (source, metric, model, GPU type, GPU count, sequence length): groups with at
    least two different scenarios (plan, precision or batch), not phases of one run."""
    groups = defaultdict(list)
    for c in cases:
        if c.group.startswith("DeepSeek"):
            continue
        groups[_key(c)].append(c)
    out = []
    for members in groups.values():
        distinct = {json.dumps({k: v for k, v in c.scenario.items() if k != "name"}, sort_keys=True)
                    for c in members}
        if len(members) >= min_size and len(distinct) >= 2:   # same-plan duplicates stay, as ties (τ-b)
            out.append(members)
    return out


def order_agreement(cases=None, min_size: int = 2) -> list[OrderGroup]:
    """Predict the grouped cases (costsim.validate.run_cases) and pair them with the published values."""
    from ..validate import all_cases, run_cases

    groups = plan_groups(cases if cases is not None else all_cases(), min_size)
    flat = [c for g in groups for c in g]
    results = {r.case: r for r in run_cases(cases=flat)}
    out = []
    for g in groups:
        c0 = g[0]
        key = (f"{c0.group} · {c0.scenario['model'] if isinstance(c0.scenario['model'], str) else 'custom'} · "
               f"{c0.scenario['cluster']['gpu']}×{c0.scenario['cluster']['num_gpus']} · "
               f"seq {c0.scenario['phases'][0].get('seq_len')}")
        rows = [results[c.case] for c in g if math.isfinite(results[c.case].predicted)]
        out.append(OrderGroup(key, [r.case for r in rows], [r.published for r in rows],
                              [r.predicted for r in rows]))
    return out

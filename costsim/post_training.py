"""Phases beyond training — generate, rl, serve — costed on the inference model (costsim/infer/) and, for RL,
the rollout simulator (costsim/sim/rollout.py). Each returns a PhaseEstimate like a training phase's, with
`kind` and its own `figures` (README: phase kinds)."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from .errors import PlanError, ScenarioError
from .estimate import PhaseEstimate
from .hardware import HardwareProfile
from .model import ModelSpec, resolve_model
from .phase_kinds import Serving


def estimate_other(sc, i: int, ph, model: ModelSpec, hw: HardwareProfile, eff, price: float,
                   base_dir: Path = Path(".")) -> PhaseEstimate:
    """The estimate of a generate, rl or serve phase (`ph.kind`)."""
    gpn = sc.cluster.gpus_per_node
    if gpn and gpn != hw.gpus_per_node:   # the scenario's node size sets the link tiers, as for training plans
        hw = replace(hw, gpus_per_node=gpn)
    if getattr(ph, "model", None) is not None:
        try:
            model = resolve_model(ph.model, base_dir)
        except ValueError as exc:
            raise ScenarioError(f"phases[{i}].model: {exc}") from None
    if ph.kind == "rl":
        from .rl import estimate_rl
        return estimate_rl(sc, i, ph, model, hw, eff, price)
    from .serving import estimate_generate, estimate_serve
    fn = estimate_serve if ph.kind == "serve" else estimate_generate
    return fn(sc, i, ph, model, hw, eff, price)


def check_serving(model: ModelSpec, hw: HardwareProfile, s: Serving, key: str) -> None:
    """Raise PlanError naming the phase key and the first size or capability a serving instance fails."""
    from .infer.plan import ServingPlan, check_serving_plan
    try:
        check_serving_plan(model, hw, ServingPlan(**s.model_dump()))
    except PlanError as exc:
        raise PlanError(f"{key}: {str(exc).removeprefix('serving plan: ')}") from None


def nodes(gpus: float, hw: HardwareProfile) -> float:
    """GPUs as nodes of the phase's profile (estimate_other gives it the scenario's gpus_per_node)."""
    return gpus / hw.gpus_per_node


def ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b - 1e-9))

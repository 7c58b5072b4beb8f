"""Validation cases beyond pre-training (docs/reference/deepseek-r1-and-inference.md), never fitted on.

- DeepSeek serving day (§4, open-infra-index day 6, 2025-03-01): per-node prefill and decode throughput and the
  day's cost, from scenarios/deepseek-v3-serving.yaml (its assumptions are written there).
- DeepSeek-R1 (§1, Nature 2025 Supplementary Table 7): R1-Zero's and the total H800 GPU-hours, from
  scenarios/deepseek-r1.yaml — a loose case: its response lengths are assumed, not published.

The global parameters are fitted on training steps only, so these cases are held out by construction: their
cross-validated prediction is their in-sample one.
"""
from __future__ import annotations

import yaml

from ..paths import scenarios_dir
from ..validate import Case

SRC_SERVE = "DeepSeek open-infra-index day 6, inference system overview (2025-03-01)"
SRC_R1 = "DeepSeek-R1, Nature 645 (2025), Supplementary Table 7"
GROUP_SERVE = "DeepSeek serving day"
GROUP_R1 = "DeepSeek-R1"


def _figure(key: str):
    return lambda est: est.phases[0].figures[key]


def serving_cases() -> list[Case]:
    sc = yaml.safe_load((scenarios_dir() / "deepseek-v3-serving.yaml").read_text())
    return [
        Case("prefill per node", GROUP_SERVE, "input tokens/s per node", 73.7e3, SRC_SERVE, sc,
             _figure("prefill_tokens_per_s_per_node"), fitted_on=False),
        Case("decode per node", GROUP_SERVE, "output tokens/s per node", 14.8e3, SRC_SERVE, sc,
             _figure("decode_tokens_per_s_per_node"), fitted_on=False),
        Case("day's cost", GROUP_SERVE, "USD per day", 87_072, SRC_SERVE, sc, lambda est: est.cost_usd,
             fitted_on=False),
    ]


def r1_cases() -> list[Case]:
    sc = yaml.safe_load((scenarios_dir() / "deepseek-r1.yaml").read_text())
    return [
        Case("R1-Zero", GROUP_R1, "H800 GPU-hours", 101e3, SRC_R1, sc, lambda est: est.phases[0].gpu_hours,
             fitted_on=False),
        Case("total", GROUP_R1, "H800 GPU-hours", 147e3, SRC_R1, sc, lambda est: est.gpu_hours, fitted_on=False),
    ]


def post_training_cases() -> list[Case]:
    return serving_cases() + r1_cases()

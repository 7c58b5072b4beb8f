"""Shared fixtures: a ParallelPlan built directly (no scenario file), every size given or derived."""
from __future__ import annotations

import pytest

from costsim.plan import ParallelPlan

PLAN_DEFAULTS = dict(
    gpus_per_node=8, tp=1, pp=1, ep=1, cp=1, dp=1, sequence_parallel=False, zero_stage=1, schedule="1f1b",
    virtual_stages=1, micro_batch_size=1, recompute="none", attention="flash", tp_comm_overlap=False,
    comm_sms=0, stage_layout="uniform", precision="bf16", seq_len=4096)


def build_plan(microbatches: int = 16, **kw) -> ParallelPlan:
    """ParallelPlan from keyword overrides; num_gpus = tp·pp·cp·dp, global batch = dp·mbs·microbatches."""
    d = {**PLAN_DEFAULTS, **kw}
    d.setdefault("num_gpus", d["tp"] * d["pp"] * d["cp"] * d["dp"])
    d.setdefault("global_batch_size", d["dp"] * d["micro_batch_size"] * microbatches)
    return ParallelPlan(**d)


@pytest.fixture
def make_plan():
    """The plan factory `build_plan` as a fixture (parametrize with kwargs dicts, build inside the test)."""
    return build_plan

"""Validation cases from docs/reference/published-runs-2.md, one module per source repository.

Each module returns `list[Case]` (costsim/validate.py); `group` is the source repository, so a fit can leave one
source out at a time; the table id of published-runs-2.md starts each case name. The rules for plan details a
table leaves unstated are in each module's docstring, next to the rows they apply to.
"""
from __future__ import annotations

from .fms_fsdp import fms_fsdp_cases
from .llm_foundry import llm_foundry_cases
from .megatron_core import megatron_core_cases
from .nemo import nemo_cases
from .torchtitan import torchtitan_cases

__all__ = ["runs2_cases", "torchtitan_cases", "llm_foundry_cases", "fms_fsdp_cases", "megatron_core_cases",
           "nemo_cases"]


def runs2_cases() -> list:
    """Every case of published-runs-2.md: torchtitan, llm-foundry (MPT), fms-fsdp, Megatron-Core README, NeMo."""
    return torchtitan_cases() + llm_foundry_cases() + fms_fsdp_cases() + megatron_core_cases() + nemo_cases()

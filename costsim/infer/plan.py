"""Serving plan: how one inference instance (a prefill or a decode unit) is laid out over its GPUs.

Attention and dense layers run data-parallel over `dp` groups of `tp` tensor-parallel GPUs (each DP rank holds
its own requests and their KV cache); routed experts are spread over all tp·dp GPUs of the instance by expert
parallelism (`ep`, the MoE "parallel folding" of costsim.layers). DeepSeek's serving system (reference
deepseek-r1-and-inference.md §4): prefill EP32/DP32, decode EP144/DP144, TP 1, FP8 GEMMs, 32 redundant experts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import PlanError
from ..hardware import HardwareProfile
from ..model import ModelSpec
from ..plan import ParallelPlan

PRECISIONS = ("bf16", "fp8")
KV_DTYPES = {"bf16": 2.0, "fp8": 1.0}   # bytes per cached element


@dataclass(frozen=True)
class ServingPlan:
    tp: int = 1            # tensor parallel inside an instance (attention and dense layers)
    dp: int = 1            # attention data-parallel ranks inside an instance (DeepSeek: DP32 prefill, DP144 decode)
    ep: int = 1            # expert parallel over the instance's tp·dp GPUs (must divide it)
    precision: str = "bf16"     # GEMM precision: bf16 | fp8 (weights stored in FP8: no per-step weight casts)
    kv_dtype: str = "bf16"      # KV-cache element type: bf16 | fp8
    mtp_tokens: float = 1.0     # tokens emitted per decode step (speculative decoding with MTP: 1 + acceptance)
    overlap_comm: bool = False  # all-to-all hidden behind compute (DeepSeek: dual micro-batch prefill, 5-stage decode)
    redundant_experts: int = 0  # extra expert replicas spread over the instance
    moe_load_imbalance: float | None = None   # measured max/mean tokens per EP rank; None: the balanced floor
    comm_sms: int = 0           # SMs the overlapped all-to-all kernels hold (compute gets the rest); see cost.py
    custom_all_reduce: bool = True   # TP all-reduce in a node by NVLink P2P (engines' one-/two-shot); see cost.py

    @property
    def gpus(self) -> int:
        return self.tp * self.dp

    @property
    def draft_tokens(self) -> int:
        """Draft tokens verified per sequence per decode step: ⌈mtp_tokens − 1⌉ (1 for MTP depth 1 at any
        acceptance above 0; DeepSeek-V3 report §5.4.3)."""
        return max(0, math.ceil(self.mtp_tokens - 1.0 - 1e-9))


def check_serving_plan(model: ModelSpec, hw: HardwareProfile, plan: ServingPlan) -> None:
    """Raise PlanError naming the first size or capability that fails."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise PlanError(f"serving plan: {msg}")

    for key in ("tp", "dp", "ep"):
        v = getattr(plan, key)
        need(isinstance(v, int) and v >= 1, f"{key}={v!r} must be an integer ≥ 1")
    need(plan.precision in PRECISIONS, f"precision={plan.precision!r} must be one of {', '.join(PRECISIONS)}")
    need(plan.kv_dtype in KV_DTYPES, f"kv_dtype={plan.kv_dtype!r} must be one of {', '.join(KV_DTYPES)}")
    need(hw.supports(plan.precision), f"precision {plan.precision}: {hw.name} has no {plan.precision} tensor cores")
    need(model.num_heads % plan.tp == 0, f"tp={plan.tp} does not divide num_attention_heads={model.num_heads}")
    need(plan.mtp_tokens >= 1.0, f"mtp_tokens={plan.mtp_tokens} must be ≥ 1 (tokens emitted per step)")
    need(plan.mtp_tokens == 1.0 or model.num_nextn_predict_layers >= plan.draft_tokens,
         f"mtp_tokens={plan.mtp_tokens} needs {plan.draft_tokens} draft token(s) per step; {model.name} has "
         f"{model.num_nextn_predict_layers} MTP module(s)")
    need(plan.moe_load_imbalance is None or plan.moe_load_imbalance >= 1.0,
         f"moe_load_imbalance={plan.moe_load_imbalance} must be ≥ 1 (max/mean load)")
    need(plan.redundant_experts >= 0, f"redundant_experts={plan.redundant_experts} must be ≥ 0")
    need(isinstance(plan.comm_sms, int) and 0 <= plan.comm_sms < hw.num_sms,
         f"comm_sms={plan.comm_sms} must be an integer in [0, {hw.num_sms}) ({hw.name} has {hw.num_sms} SMs)")
    if model.is_moe:
        need(plan.gpus % plan.ep == 0, f"ep={plan.ep} must divide the instance's tp·dp = {plan.tp}·{plan.dp} = "
             f"{plan.gpus} GPUs")
        # experts and their redundant replicas are spread evenly over the EP ranks (DeepSeek: 256 + 32 = 288 over
        # 32 GPUs = 9 per GPU in prefill, over 144 GPUs = 2 per GPU in decode)
        need((model.n_routed_experts + plan.redundant_experts) % plan.ep == 0,
             f"ep={plan.ep} does not divide n_routed_experts + redundant_experts = {model.n_routed_experts} + "
             f"{plan.redundant_experts}")
    else:
        need(plan.ep == 1 and plan.redundant_experts == 0,
             f"ep={plan.ep}, redundant_experts={plan.redundant_experts} but {model.name} has no experts")


def as_parallel_plan(plan: ServingPlan, hw: HardwareProfile) -> ParallelPlan:
    """The training ParallelPlan the op builder reads (sizes, link tiers, FP8 recipe): one pipeline stage, no
    recompute, no sequence parallelism; FP8 under DeepSeek-V3's blockwise recipe (§3.3: 1×128 activation tiles,
    FP8 dispatch). Batch fields are placeholders: the inference builder passes its token counts itself."""
    return ParallelPlan(
        num_gpus=plan.gpus, gpus_per_node=hw.gpus_per_node, tp=plan.tp, pp=1, ep=plan.ep, cp=1, dp=plan.dp,
        sequence_parallel=False, zero_stage=0, schedule="1f1b", virtual_stages=1, micro_batch_size=1,
        recompute="none", attention="flash", tp_comm_overlap=False, comm_sms=0, stage_layout="uniform",
        precision=plan.precision, seq_len=1, global_batch_size=plan.dp, etp=1, ep_comm_overlap=plan.overlap_comm,
        fp8_recipe="blockwise")

"""FP8 training recipes: what each one casts (HBM bytes per element, per pass), what it caches, what it keeps.

A linear layer Y = X·W (X: m×k activations, W: k×n weight, Y: m×n) runs three GEMMs: forward X·W, dgrad dY·Wᵀ
and wgrad Xᵀ·dY. Hopper's FP8 tensor cores take only the "TN" layout, both operands K-major (cuBLASLt docs,
cublasLtMatmul FP8 requirements; DeepGEMM likewise supports only NT), so every operand whose contraction axis
changes between the GEMMs needs a transposed FP8 copy: X for wgrad (contracts over m), dY for wgrad, W for dgrad.

Recipes (`fp8_recipe` in a phase):

- delayed — Transformer Engine's default DelayedScaling, per-tensor scales from an amax history. One fused
  cast-transpose kernel reads BF16 once and writes the FP8 copy and its transpose (TE `fp8_cast_transpose_fused`),
  the amax is reduced inside it; the history roll and scale update is a tiny kernel per tensor (a launch).
- current — per-tensor scales from this tensor's own amax, as torchao's "tensorwise" dynamic scaling does it
  (torchtitan's default float8): the amax must be known before the cast, so an amax pass reads the BF16 tensor
  first. torchao keeps the BF16 input and weight for backward and casts them again there
  (`matmul_with_hp_or_float8_args`), amax pass included; weights are cast every micro-batch. (Transformer Engine's
  Float8CurrentScaling keeps FP8 copies instead; costsim does not tell the two apart.)
- rowwise — torchao's per-row ("axiswise") scales. The row amax is fused into the cast, but the wgrad and dgrad
  GEMMs contract over the other axis, which needs column scales: torchao re-casts the kept BF16 input and weight
  column-wise in backward, a column amax pass plus a cast.
  torchtitan measured rowwise below tensorwise (published-runs-2.md §1.4) but no microbenchmark isolates the GEMM
  rate, so rowwise GEMMs run at the same FP8 rate here.
- blockwise — DeepSeek-V3 §3.3: 1×128 tiles for activations and output gradients, 128×128 blocks for weights,
  one FP32 scale per tile fused into the cast, no amax pass. The forward stores only the 1×128-tile copy; the
  backward reads it, dequantises, transposes and re-quantises into 128×1 tiles for wgrad (DeepSeek-V3 §3.5,
  "Support for Transposed GEMM Operations"). A 128×128 weight block transposes as a block, so the weight's two
  copies come from one cast.

Which GEMMs stay BF16 (`lowp=False` in the layers), the same under every recipe: the MoE router (DeepSeek-V3 §3.3
keeps gating in BF16/FP32; Megatron's router is a plain torch matmul, outside TE) and the output head's logits
(DeepSeek-V3 §3.3; Megatron's output layer is not a TE module; torchtitan's float8 converter filters `output`).
Attention's QKᵀ and AV stay BF16 (FlashAttention), as do embedding lookups and norms.

Weight casts: the weights do not change between the micro-batches of a step (gradients accumulate; the optimizer
runs once), so TE casts each weight (and its transpose) on the first micro-batch and reuses the cached FP8 copies
for the rest of the step (`is_first_microbatch`, which Megatron-LM sets per step). costsim charges that cast once
per step, spread evenly over the micro-batches that pass the chunk. It does so for blockwise too (DeepSeek does not
say; nothing forces a re-cast). Not cached: current and rowwise (torchao casts the BF16 weight every forward and
backward) and ZeRO-3 without gather-once (the weight is re-gathered every micro-batch, and cast with it).

Memory of the cached copies: FP8 + transposed FP8 = 2 B per weight, the same as the BF16 working copy they replace
when the FP8 copies are the compute weights (Megatron-LM --fp8-param-gather / TE fp8_model_init, which NeMo's FP8
recipes use; DeepSeek keeps its master weights in FP32 in the optimizer, §3.3), so the weight memory stays 2 B per
parameter. A TE run that keeps the BF16 weights too holds 2 B more per FP8-GEMM weight: not modelled (NeMo's FP8
runs of the validation set would not fit with it).
"""
from __future__ import annotations

from dataclasses import dataclass

from .plan import ParallelPlan

RECIPES = ("delayed", "current", "rowwise", "blockwise")

BLOCK_SCALE_BYTES = 4.0 / 128        # one FP32 scale per 128 values (DeepSeek-V3 §3.3 tiles)


@dataclass(frozen=True)
class CastBytes:
    """HBM bytes per element (reads + writes) and kernel launches of the casts around one FP8 GEMM.
    `act_f`: the input activation X in the forward; `act_b`: X again in backward (column-scaled or re-tiled copy
    for wgrad, where the recipe makes it then); `grad_b`: the output gradient dY in backward; `w_f`, `w_b`: the
    weight W in forward (+ its transposed copy) and in backward."""
    act_f: float
    act_b: float
    grad_b: float
    w_f: float
    w_b: float
    launches_act_f: float = 1
    launches_act_b: float = 1
    launches_grad_b: float = 1
    launches_w_f: float = 1
    launches_w_b: float = 1


# read BF16 (2 B) · write FP8 (1 B) per copy; "2 +" = a separate amax pass reading the BF16 tensor
_S = BLOCK_SCALE_BYTES
CAST_BYTES = {
    # cast-transpose: read 2, write FP8 + FP8ᵀ; + amax-history/scale-update kernel per tensor
    "delayed": CastBytes(act_f=2 + 2, act_b=0, grad_b=2 + 2, w_f=2 + 2, w_b=0,
                         launches_act_f=2, launches_grad_b=2, launches_w_f=2),
    # amax pass, then cast: X and W in forward, again (transposed, from the kept BF16) in backward; dY cast and
    # transposed copy after its amax pass
    "current": CastBytes(act_f=2 + 2 + 1, act_b=2 + 2 + 1, grad_b=2 + 2 + 2, w_f=2 + 2 + 1, w_b=2 + 2 + 1,
                         launches_act_f=2, launches_act_b=2, launches_grad_b=2, launches_w_f=2, launches_w_b=2),
    # row-scaled cast (row amax fused): read 2, write 1; column-scaled cast: amax pass 2 + read 2, write 1.
    # dY needs both (dgrad: rows, wgrad: columns); X and W get their column-scaled copies in backward
    "rowwise": CastBytes(act_f=2 + 1, act_b=2 + 2 + 1, grad_b=(2 + 1) + (2 + 2 + 1), w_f=2 + 1, w_b=2 + 2 + 1,
                         launches_act_b=2, launches_grad_b=3, launches_w_b=2),
    # 1×128 tiles: read 2, write 1 + scales; backward re-tiles X from its FP8 copy (read 1 + s, write 1 + s);
    # dY is cast into both tilings at once (read 2, write 2 × (1 + s)); 128×128 weight blocks + transposed copy
    "blockwise": CastBytes(act_f=2 + 1 + _S, act_b=2 * (1 + _S), grad_b=2 + 2 * (1 + _S), w_f=2 + 2, w_b=0),
}


def gemm_input_bytes(plan: ParallelPlan) -> float:
    """Bytes per element of a GEMM input kept for backward: the FP8 copy under TE (delayed) and DeepSeek's recipe
    (with its tile scales); BF16 under torchao's current and rowwise (it keeps the BF16 input and casts it again in
    backward; torchtitan measured the same peak memory with and without float8, published-runs-2.md §1.3) and
    under BF16."""
    if plan.precision != "fp8" or plan.fp8_recipe in ("current", "rowwise"):
        return 2.0
    return 1.0 + BLOCK_SCALE_BYTES if plan.fp8_recipe == "blockwise" else 1.0


def deepseek_storage(plan: ParallelPlan) -> bool:
    """DeepSeek-V3 §3.3's further activation savings, taken with its recipe: the attention output cached once in
    E5M6, SwiGLU inputs cached in FP8 and the SwiGLU output recomputed."""
    return plan.precision == "fp8" and plan.fp8_recipe == "blockwise"


def weight_cached(plan: ParallelPlan) -> bool:
    """FP8 weight copies cast once per step and kept across its micro-batches (see the module docstring)."""
    return (plan.precision == "fp8" and plan.fp8_recipe in ("delayed", "blockwise")
            and (plan.zero_stage < 3 or plan.zero3_gather_once))


def microbatches_per_chunk(plan: ParallelPlan) -> int:
    """Micro-batches that pass one pipeline chunk per step: all of them, except under DualPipe, where each of a
    rank's two stages is passed by the half fed from its end."""
    m = plan.num_microbatches
    return max(1, m // 2) if plan.schedule == "dualpipe" else max(1, m)

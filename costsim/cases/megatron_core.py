"""NVIDIA/Megatron-LM README GPT weak-scaling table (docs/reference/published-runs-2.md, 4.1) as cases.

Source: NVIDIA/Megatron-LM README.md + images/model_table.png @ d98e8a64ddf34856e74b24714e3bedb2f5a39553
(Megatron-Core r0.8.0, H100). The table prints per-GPU teraFLOP/s, so the prediction counts FLOPs the way
Megatron-Core r0.8 does (megatron/training/training.py `num_floating_point_operations`):
12·B·s·L·h²·((1 + groups/heads + s/h)·(q_proj/h) + (ffn/h)·topk·(3/2 if swiglu else 1) + V/(2·L·h)),
over the predicted step time, per GPU. With the printed MFU = TFLOP/s / 989.4 (H100 dense BF16 peak) the
table is self-consistent (tests/test_cases_runs2.py).

Rules for what the README leaves unstated (every row):
(Repository code cited in a rule — file names, defaults — is as recalled from that repository, not
re-read for this module; the published figures themselves come from the transcription.)
- Model: GPT as in the README's benchmark configuration: vocab 131072, sequence 4096, MHA (groups = heads),
  plain GELU MLP of 4h, untied input/output embeddings, Megatron's default dropout 0.1; learned positions
  (costsim's convention for a plain-MLP model, 4096·h parameters).
- Precision BF16: the printed MFU is TFLOP/s over the BF16 peak (465.9 / 989.4 = 47%).
- Gradients reduced in BF16 (grad_dtype bf16: Megatron-Core's DistributedDataParallelConfig default
  grad_reduce_in_fp32 = False; the README names no override).
- Distributed optimizer (zero_stage 1), TP comm overlap (--tp-comm-overlap, named in the README) when TP > 1,
  sequence parallelism when TP > 1, FlashAttention, micro-batch 1 (Megatron's default), no activation
  recomputation (Megatron's default; the README lists the flags it used and names no recompute flag).
- Pipeline: interleaved 1F1B when PP > 1 (Megatron's schedule for virtual stages) with virtual stages = the
  smallest divisor > 1 of the layers per stage — the rule of costsim/validate.py for Megatron Table 1.
- Hardware: h100-sxm (H100 80GB, 400 Gb/s per GPU, DGX/Eos-class) — the README names the GPU only.

Skipped rows: none. The strong-scaling chart (images/strong_scaling.png) prints no values.
"""
from __future__ import annotations

from ..validate import Case, _chunks
from ._common import FIT_ON, REFERENCE, scenario, tflops_per_gpu

GROUP = "Megatron-Core README"
METRIC = "TFLOP/s per GPU (MCore r0.8 formula)"
SOURCE = (f"NVIDIA/Megatron-LM README.md + images/model_table.png @ d98e8a64ddf34856e74b24714e3bedb2f5a39553 "
          f"({REFERENCE} 4.1)")
VOCAB, SEQ = 131072, 4096
H100_BF16_PEAK_TFLOPS = 989.4

T4_1 = [  # size, heads, hidden, layers, TP, PP, DP, GPUs, batch, TFLOP/s per GPU, MFU
    ("1.7B", 16, 2048, 24, 1, 1, 48, 48, 192, 408.8, 0.41), ("7.1B", 32, 4096, 30, 2, 1, 48, 96, 192, 465.9, 0.47),
    ("16B", 48, 6144, 32, 4, 1, 48, 192, 192, 489.1, 0.49), ("32B", 56, 7168, 48, 8, 1, 48, 384, 192, 459.6, 0.46),
    ("70B", 64, 8192, 84, 8, 2, 48, 768, 384, 419.7, 0.42), ("119B", 80, 10240, 92, 8, 4, 48, 1536, 768, 420.5, 0.43),
    ("177B", 96, 12288, 96, 8, 6, 48, 2304, 1152, 432.8, 0.44),
    ("314B", 128, 16384, 96, 8, 8, 48, 3072, 1536, 474.4, 0.48),
    ("462B", 144, 18432, 112, 8, 16, 48, 6144, 3072, 459.9, 0.47),
]


def mcore_flops(batch: int, seq: int, layers: int, hidden: int, heads: int, vocab: int, ffn: int,
                groups: int | None = None, kv_channels: int | None = None, swiglu: bool = False,
                topk: int = 1) -> float:
    """FLOPs per iteration by Megatron-Core r0.8's num_floating_point_operations (forward + backward, no
    recompute, full (non-causal) attention)."""
    groups = heads if groups is None else groups
    q_proj = (kv_channels or hidden // heads) * heads
    return (12 * batch * seq * layers * hidden * hidden
            * ((1 + groups / heads + seq / hidden) * (q_proj / hidden)
               + (ffn / hidden) * topk * (1.5 if swiglu else 1.0)
               + vocab / (2 * layers * hidden)))


def gpt_model(hidden: int, heads: int, layers: int) -> dict:
    return {"name": f"mcore-gpt-h{hidden}-l{layers}", "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": 4 * hidden, "vocab_size": VOCAB,
            "hidden_act": "gelu", "max_position_embeddings": SEQ, "tie_word_embeddings": False,
            "hidden_dropout": 0.1, "attention_dropout": 0.1}


def megatron_core_cases() -> list[Case]:
    out = []
    for size, heads, h, layers, tp, pp, dp, gpus, batch, tflops, _mfu in T4_1:
        if tp * pp * dp != gpus:
            raise ValueError(f"4.1 {size}: TP x PP x DP != GPUs")
        par = {"tp": tp, "pp": pp, "zero_stage": 1, "grad_dtype": "bf16",
               "sequence_parallel": tp > 1, "tp_comm_overlap": tp > 1,
               "attention": "flash", "micro_batch_size": 1, "recompute": "none",
               "schedule": "interleaved" if pp > 1 else "1f1b",
               "virtual_stages": _chunks(layers, pp) if pp > 1 else 1}
        name = f"4.1 GPT {size} TP{tp} PP{pp} DP{dp} {gpus} GPUs"
        sc = scenario(f"megatron-core {name}", gpt_model(h, heads, layers), "h100-sxm", gpus, SEQ, batch, **par)
        flops = mcore_flops(batch, SEQ, layers, h, heads, VOCAB, 4 * h)
        out.append(Case(name, GROUP, METRIC, tflops, SOURCE, sc, tflops_per_gpu(flops, gpus), FIT_ON))
    return out

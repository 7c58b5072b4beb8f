"""NVIDIA/NeMo performance tables (docs/reference/published-runs-2.md, section 5) as validation cases.

Metric: tokens/s per GPU (the tables' "Tokens / sec / GPU") = GBS × sequence length / predicted step / GPUs.
5.3 prints only model TFLOP/s per GPU; there the prediction counts FLOPs as NeMo does for Llama 2
(nemo/utils/flops_formulas.py `llama2`): GBS·s·L·h²·(12 + 12·g/a + 18·ffn/h + 12·s/h + 6·V/(L·h)) over the
predicted step time, per GPU — it reproduces 5.4's printed TFLOP/s-to-tokens/s ratio (tests/test_cases_runs2.py).

Rules for what the tables leave unstated (every row; the tables print GPUs, GBS, MBS, sequence, TP, PP, CP, VP):
(Repository code cited in a rule — file names, defaults — is as recalled from that repository, not
re-read for this module; the published figures themselves come from the transcription.)
- Precision: FP8 (every table's caption) → fp8 with fp8_recipe delayed (Transformer Engine's default recipe).
- Distributed optimizer (zero_stage 1); sequence parallelism and TP communication overlap when TP > 1 (NeMo's
  performance recipes); FlashAttention; no activation recomputation (NeMo's default).
- Pipeline: interleaved with virtual_stages = VP when VP > 1, else 1F1B.
- Hardware: DGX-H100 → h100-sxm (its network, 400 Gb/s per GPU, is DGX H100's 8 × 400 Gb/s).
- Models: GPT3-5B/20B → costsim/models/gpt3-5b.json / gpt3-20b.json and Nemotron-22B → nemotron-22b.json
  (architectures from NeMo's configs, checked against the printed TFLOP/s-to-tokens/s ratios; see their
  _source); LLAMA2-* → llama2-*.json; LLAMA3-8B/70B → llama3.1-8b/70b (same architecture as Llama 3).
- Repeats: 5.2 (earlier revisions of 5.1, same configurations, other measurements) and 5.3's H100 "With CP"
  columns (the same runs as 5.4: same container, same TFLOP/s) are cases, with fitted_on False so one run does
  not vote twice in a fit.

Skipped rows: 5.3 LLAMA3-8B on DGX-B200 (all 8): the printed plan is inconsistent — TP·PP·DP·CP is a quarter
of "# of GPUs" in every row (e.g. 8K: 1·1·2·1 = 2 of 8 GPUs) — and the b200 profile's attention and
collective numbers are H100 figures scaled by assumption. 5.3 "Without CP" columns (both systems): their
plans are not printed ("the most performant model- and data-parallel configurations without CP").
"""
from __future__ import annotations

from ..validate import Case
from ._common import FIT_ON, REFERENCE, scenario, tflops_per_gpu, tokens_per_s_per_gpu

GROUP = "NeMo"
METRIC = "tokens/s per GPU"
METRIC_TFLOPS = "model TFLOP/s per GPU (NeMo llama2 formula)"
_DOCS = "NVIDIA/NeMo docs/source/performance"
SRC_5_1 = f"{_DOCS}/performance_summary.md @ 0b8a80ee066472c96fcb1e317b8aa071277b9aa7 ({REFERENCE} 5.1)"
SRC_5_2 = {"783173549": f"{_DOCS}/performance_summary.md @ 783173549 (blob 5877cf2b, 2024-08-12) ({REFERENCE} 5.2)",
           "cd17e099e": f"{_DOCS}/performance_summary.md @ cd17e099e (blob 49059311, 2024-08-21) ({REFERENCE} 5.2)"}
SRC_5_3 = f"{_DOCS}/performance_long_sequence.md @ 8cfedd7203462cb251a914e700e5605444277561 ({REFERENCE} 5.3)"
SRC_5_4 = f"{_DOCS}/performance_summary.md @ 35029a0c84e7c9f2c56e2b2256746654a5084432 ({REFERENCE} 5.4)"

MODEL = {"GPT3-5B": "gpt3-5b", "GPT3-20B": "gpt3-20b", "LLAMA2-7B": "llama2-7b", "LLAMA2-13B": "llama2-13b",
         "LLAMA2-70B": "llama2-70b", "Nemotron-22B": "nemotron-22b", "LLAMA3-8B": "llama3.1-8b",
         "LLAMA3-70B": "llama3.1-70b"}

# model → (GPUs, GBS, MBS, seq, TP, PP, CP, VP): the configuration columns, identical in 5.1 and 5.2
CONFIG_5_1 = {
    "GPT3-5B": (64, 2048, 4, 2048, 1, 1, 1, 1), "GPT3-20B": (64, 256, 2, 2048, 2, 1, 1, 1),
    "LLAMA2-7B": (8, 128, 1, 4096, 1, 1, 1, 1), "LLAMA2-13B": (16, 128, 1, 4096, 1, 4, 1, 10),
    "LLAMA2-70B": (64, 128, 1, 4096, 4, 4, 1, 20), "Nemotron-22B": (64, 256, 2, 4096, 2, 4, 1, 10),
    "LLAMA3-8B": (8, 128, 1, 8192, 1, 1, 2, 1), "LLAMA3-70B": (64, 128, 1, 8192, 4, 4, 2, 5),
}
T5_1 = [  # model, tokens/s/GPU, model TFLOP/s/GPU
    ("GPT3-5B", 23406, 765), ("GPT3-20B", 5851, 750), ("LLAMA2-7B", 16934, 780), ("LLAMA2-13B", 8715, 760),
    ("LLAMA2-70B", 1728, 768), ("Nemotron-22B", 4312, 562), ("LLAMA3-8B", 12273, 711), ("LLAMA3-70B", 1524, 734),
]
T5_2 = [  # revision, model, tokens/s/GPU, model TFLOP/s/GPU
    ("783173549", "GPT3-5B", 22521, 736), ("783173549", "LLAMA2-7B", 16847, 776),
    ("783173549", "LLAMA2-13B", 8646, 754), ("783173549", "LLAMA2-70B", 1707, 759),
    ("783173549", "Nemotron-22B", 4256, 554), ("783173549", "LLAMA3-8B", 12036, 697),
    ("783173549", "LLAMA3-70B", 1533, 738),
    ("cd17e099e", "GPT3-5B", 23574, 770), ("cd17e099e", "GPT3-20B", 5894, 755), ("cd17e099e", "LLAMA2-7B", 16634, 767),
    ("cd17e099e", "LLAMA2-70B", 1717, 763), ("cd17e099e", "Nemotron-22B", 4289, 559),
    ("cd17e099e", "LLAMA3-8B", 11883, 688), ("cd17e099e", "LLAMA3-70B", 1549, 746),
]
T5_3_H100 = [  # LLAMA2-7B, FP8, DGX-H100: seq (K), GPUs, batch, With CP: TP, PP, DP, CP, TFLOP/s per GPU
    (4, 4, 1024, 1, 1, 4, 1, 768), (8, 8, 512, 1, 2, 4, 1, 730), (16, 16, 256, 2, 1, 8, 1, 660),
    (32, 32, 128, 2, 1, 8, 2, 610), (64, 64, 64, 4, 1, 8, 2, 574), (128, 128, 32, 4, 1, 8, 4, 555),
    (256, 256, 16, 4, 1, 8, 8, 549), (512, 512, 8, 8, 1, 4, 16, 549), (1024, 1024, 4, 8, 1, 4, 32, 536),
]
T5_4 = [  # LLAMA2-7B, FP8, DGX-H100: seq (K), GPUs, GBS, MBS, TP, PP, CP, VP, DP, tokens/s/GPU, TFLOP/s/GPU
    (4, 4, 1024, 1, 1, 1, 1, 1, 4, 16671, 768), (8, 8, 512, 1, 1, 2, 1, 1, 4, 13907, 730),
    (16, 16, 256, 1, 2, 1, 1, 1, 8, 10082, 660), (32, 32, 128, 1, 2, 1, 2, 1, 8, 6687, 610),
    (64, 64, 64, 1, 4, 1, 2, 1, 8, 4021, 574), (128, 128, 32, 1, 4, 1, 4, 1, 8, 2260, 555),
    (256, 256, 16, 1, 4, 1, 8, 1, 8, 1214, 549), (512, 512, 8, 1, 8, 1, 16, 1, 4, 635, 549),
    (1024, 1024, 4, 1, 8, 1, 32, 1, 4, 318, 536),
]
LLAMA2_7B = {"layers": 32, "hidden": 4096, "heads": 32, "groups": 32, "ffn": 11008, "vocab": 32000}


def nemo_llama_flops(gbs: int, seq: int, layers: int, hidden: int, heads: int, groups: int, ffn: int,
                     vocab: int) -> float:
    """Model FLOPs per step by NeMo's Llama formula (nemo/utils/flops_formulas.py): GEMMs of a gated MLP,
    GQA projections, full (non-causal) attention, the output head; forward + backward, no recompute."""
    return (gbs * seq * layers * hidden * hidden
            * (12 + 12 * groups / heads + 18 * ffn / hidden + 12 * seq / hidden + 6 * vocab / (layers * hidden)))


def _scenario(name: str, model: str, gpus: int, gbs: int, mbs: int, seq: int, tp: int, pp: int, cp: int,
              vp: int) -> dict:
    if gpus % (tp * pp * cp):
        raise ValueError(f"{name}: TP·PP·CP does not divide {gpus} GPUs")
    par = {"tp": tp, "pp": pp, "cp": cp, "zero_stage": 1, "sequence_parallel": tp > 1, "tp_comm_overlap": tp > 1,
           "attention": "flash", "micro_batch_size": mbs, "recompute": "none",
           "schedule": "interleaved" if vp > 1 else "1f1b", "virtual_stages": vp}
    return scenario(f"nemo {name}", model, "h100-sxm", gpus, seq, gbs, "fp8", "delayed", **par)


def _summary_case(table: str, src: str, model: str, tps: float, fitted: bool, tag: str = "") -> Case:
    gpus, gbs, mbs, seq, tp, pp, cp, vp = CONFIG_5_1[model]
    name = f"{table}{tag} {model} {gpus} GPUs TP{tp} PP{pp} CP{cp} VP{vp}"
    sc = _scenario(name, MODEL[model], gpus, gbs, mbs, seq, tp, pp, cp, vp)
    return Case(name, GROUP, METRIC, tps, src, sc, tokens_per_s_per_gpu(gbs, seq, gpus), fitted)


def nemo_cases() -> list[Case]:
    out = [_summary_case("5.1", SRC_5_1, model, tps, FIT_ON) for model, tps, _tflops in T5_1]
    out += [_summary_case("5.2", SRC_5_2[rev], model, tps, False, f" r{rev[:7]}") for rev, model, tps, _tf in T5_2]
    for k, gpus, gbs, tp, pp, dp, cp, tflops in T5_3_H100:
        seq = k * 1024
        if tp * pp * dp * cp != gpus:
            raise ValueError(f"5.3 {k}K: TP·PP·DP·CP != GPUs")
        name = f"5.3 LLAMA2-7B {k}K {gpus} GPUs TP{tp} PP{pp} CP{cp}"
        sc = _scenario(name, "llama2-7b", gpus, gbs, 1, seq, tp, pp, cp, 1)
        flops = nemo_llama_flops(gbs, seq, **LLAMA2_7B)
        out.append(Case(name, GROUP, METRIC_TFLOPS, tflops, SRC_5_3, sc, tflops_per_gpu(flops, gpus), False))
    for k, gpus, gbs, mbs, tp, pp, cp, vp, dp, tps, _tflops in T5_4:
        seq = k * 1024
        if tp * pp * dp * cp != gpus:
            raise ValueError(f"5.4 {k}K: TP·PP·DP·CP != GPUs")
        name = f"5.4 LLAMA2-7B {k}K {gpus} GPUs TP{tp} PP{pp} CP{cp}"
        sc = _scenario(name, "llama2-7b", gpus, gbs, mbs, seq, tp, pp, cp, vp)
        out.append(Case(name, GROUP, METRIC, tps, SRC_5_4, sc, tokens_per_s_per_gpu(gbs, seq, gpus), FIT_ON))
    return out

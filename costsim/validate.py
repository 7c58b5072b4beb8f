"""The public validation set (docs/reference/published-runs.md, deepseek-v3.md, and the runs of
docs/reference/published-runs-2.md in costsim/cases/): predicted vs published.

Like is compared with like: Megatron-LM Table 1 reports TFLOP/s per GPU by its eq. (3), which counts the
recompute forward and the full (non-causal) attention, so the prediction is eq. (3) FLOPs over the predicted
step time; Korthikanti Table 5 and NVIDIA's GPT-3 recipe report seconds per step; DeepSeek-V3 reports step
time and H800 GPU-hours. Where a paper leaves a plan detail unstated, the choice is one rule for all rows,
written next to it.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable, Iterable

import yaml

from .efficiency import Efficiency
from .errors import PlanError
from .estimate import Estimate, estimate
from .paths import scenarios_dir
from .scenario import parse_scenario

SCENARIOS = scenarios_dir()   # the checkout's scenarios/ or the installed copy (costsim/paths.py)


@dataclass(frozen=True)
class CaseResult:
    case: str
    group: str
    metric: str
    published: float
    predicted: float
    source: str
    fitted_on: bool = True      # used by `costsim validate --fit` (derived duplicates are not)
    note: str = ""              # "plan error: ..." when the scenario could not be planned (predicted is nan)
    published_memory_gib: float | None = None   # peak memory per GPU where the source prints it
    predicted_memory_gib: float | None = None   # costsim's memory per GPU for that case

    @property
    def error(self) -> float:
        """Relative error; nan for a failed prediction."""
        return (self.predicted - self.published) / self.published

    @property
    def failed(self) -> bool:
        return not math.isfinite(self.predicted)


@dataclass(frozen=True)
class Case:
    case: str
    group: str
    metric: str
    published: float
    source: str
    scenario: dict
    extract: Callable[[Estimate], float]
    fitted_on: bool = True
    published_memory_gib: float | None = None   # peak memory per GPU, where the source prints it (not scored)


def _gpt(h: int, heads: int, layers: int, vocab: int = 51200) -> dict:
    """GPT architecture of the Megatron papers: MHA, FFN 4h, GeLU, dropout 0.1, tied embeddings."""
    return {"name": f"gpt-h{h}-l{layers}", "hidden_size": h, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": 4 * h, "vocab_size": vocab,
            "hidden_act": "gelu", "max_position_embeddings": 2048, "tie_word_embeddings": True,
            "hidden_dropout": 0.1, "attention_dropout": 0.1}


def _chunks(layers: int, pp: int) -> int:
    """Virtual stages for 'interleaved' runs whose chunk count is unpublished: the smallest divisor > 1 of the
    layers per stage (one rule for every row)."""
    per = layers // pp
    return next((v for v in range(2, per + 1) if per % v == 0), 1)


def _step(est: Estimate) -> float:
    return est.phases[0].step_time_s


# -- Megatron-LM weak scaling (Narayanan et al., SC'21, arXiv 2104.04473, Table 1) -------------------------
MEGATRON_T1 = [  # params B, heads, hidden, layers, TP, PP, GPUs, batch, TFLOP/s per GPU
    (1.7, 24, 2304, 24, 1, 1, 32, 512, 137), (3.6, 32, 3072, 30, 2, 1, 64, 512, 138),
    (7.5, 32, 4096, 36, 4, 1, 128, 512, 142), (18.4, 48, 6144, 40, 8, 1, 256, 1024, 135),
    (39.1, 64, 8192, 48, 8, 2, 512, 1536, 138), (76.1, 80, 10240, 60, 8, 4, 1024, 1792, 140),
    (145.6, 96, 12288, 80, 8, 8, 1536, 2304, 148), (310.1, 128, 16384, 96, 8, 16, 1920, 2160, 155),
    (529.6, 128, 20480, 105, 8, 35, 2520, 2520, 163), (1008.0, 160, 25600, 128, 8, 64, 3072, 3072, 163),
]
SRC_MEGATRON = "Narayanan et al. SC'21 (arXiv 2104.04473) Table 1, via published-runs.md"


def _megatron_eq3_flops(batch: int, s: int, layers: int, h: int, vocab: int) -> float:
    """Megatron eq. (3): 96·B·s·l·h²·(1 + s/6h + V/16lh) FLOPs per iteration (includes the recompute pass)."""
    return 96 * batch * s * layers * h * h * (1 + s / (6 * h) + vocab / (16 * layers * h))


def megatron_cases() -> list[Case]:
    out = []
    for params, heads, h, layers, tp, pp, gpus, batch, tflops in MEGATRON_T1:
        sc = {"name": f"megatron-{params}B", "model": _gpt(h, heads, layers),
              "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": gpus, "gpus_per_node": 8},
              # Megatron-LM 2021: interleaved 1F1B, full recompute, no SP, fused softmax (no FlashAttention),
              # plain DP all-reduce (no distributed optimizer) after the backward, not overlapped (Megatron-LM
              # 2021's local DDP; bucketed overlap came with Megatron-Core's --overlap-grad-reduce);
              # micro-batch unpublished → 1
              "parallelism": {"tp": tp, "pp": pp, "schedule": "interleaved" if pp > 1 else "1f1b",
                              "virtual_stages": _chunks(layers, pp) if pp > 1 else 1, "recompute": "full",
                              "attention": "unfused", "zero_stage": 0, "micro_batch_size": 1,
                              "dp_comm_overlap": False},
              "phases": [{"name": "step", "precision": "bf16", "seq_len": 2048,
                          "global_batch_size": batch, "steps": 1}]}
        flops = _megatron_eq3_flops(batch, 2048, layers, h, 51200)
        out.append(Case(f"{params}B", "Megatron-LM Table 1", "TFLOP/s per GPU (eq. 3)", tflops, SRC_MEGATRON,
                        sc, lambda est, f=flops, n=gpus: f / _step(est) / n / 1e12))
    return out


# -- Activation recomputation (Korthikanti et al. 2022, arXiv 2205.05198, Table 5) -------------------------
KORTHIKANTI_T5 = [  # name, heads, hidden, layers, PP, GPUs, batch, micro-batch, full (s), SP+selective (s)
    ("22B", 64, 6144, 48, 1, 8, 4, 4, 1.42, 1.10), ("175B", 96, 12288, 96, 8, 64, 64, 1, 18.13, 13.75),
    ("530B", 128, 20480, 105, 35, 280, 280, 1, 49.05, 37.83), ("1T", 160, 25600, 128, 64, 512, 512, 1, 94.42, 71.49),
]
SRC_KORTHIKANTI = "Korthikanti et al. 2022 (arXiv 2205.05198) Table 5, via published-runs.md"


def korthikanti_cases() -> list[Case]:
    out = []
    for name, heads, h, layers, pp, gpus, batch, mbs, full_s, sel_s in KORTHIKANTI_T5:
        for mode, published, sp, recompute in (("full recompute", full_s, False, "full"),
                                               ("SP + selective", sel_s, True, "selective")):
            sc = {"name": f"korthikanti-{name}-{recompute}", "model": _gpt(h, heads, layers),
                  "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": gpus, "gpus_per_node": 8},
                  "parallelism": {"tp": 8, "pp": pp, "schedule": "interleaved" if pp > 1 else "1f1b",
                                  "virtual_stages": _chunks(layers, pp) if pp > 1 else 1,
                                  "sequence_parallel": sp, "recompute": recompute, "attention": "unfused",
                                  "zero_stage": 0, "micro_batch_size": mbs},
                  "phases": [{"name": "step", "precision": "bf16", "seq_len": 2048,
                              "global_batch_size": batch, "steps": 1}]}
            out.append(Case(f"{name} {mode}", "Korthikanti Table 5", "step time (s)", published,
                            SRC_KORTHIKANTI, sc, _step))
    return out


# -- NVIDIA GPT-3 175B recipe on H100 (NVIDIA/dgxc-benchmarking, NeMo 24.11) --------------------------------
NVIDIA_GPT3 = {128: (8.91, 5.92), 256: (8.95, 5.96), 512: (9.09, 6.44), 1024: (9.01, 6.72), 2048: (9.02, 6.24)}
SRC_NVIDIA = "NVIDIA/dgxc-benchmarking GPT-3 175B, NeMo 24.11, via published-runs.md"


def nvidia_cases() -> list[Case]:
    out = []
    for gpus, (bf16_s, fp8_s) in NVIDIA_GPT3.items():
        for prec, published in (("bf16", bf16_s), ("fp8", fp8_s)):
            sc = {"name": f"nvidia-gpt3-{gpus}-{prec}", "model": "gpt3-175b",
                  "cluster": {"gpu": "h100-sxm", "num_gpus": gpus, "gpus_per_node": 8},
                  # NeMo recipe: TP 4, PP 8, VP 12, mbs 1, SP, distributed optimizer, TP comm overlap, flash
                  "parallelism": {"tp": 4, "pp": 8, "schedule": "interleaved", "virtual_stages": 12,
                                  "sequence_parallel": True, "recompute": "selective", "zero_stage": 1,
                                  "tp_comm_overlap": True, "micro_batch_size": 1},
                  "phases": [{"name": "step", "precision": prec, "seq_len": 2048,
                              "global_batch_size": 2 * gpus, "steps": 1}]}
            out.append(Case(f"{gpus} GPUs {prec.upper()}", "NVIDIA GPT-3 175B H100", "step time (s)",
                            published, SRC_NVIDIA, sc, _step))
    return out


# -- DeepSeek-V3 (deepseek-v3.md) ------------------------------------------------------------------------
def deepseek_cases() -> list[Case]:
    sc = yaml.safe_load((SCENARIOS / "deepseek-v3.yaml").read_text())
    ctx = lambda est: sum(p.gpu_hours for p in est.phases if p.name.startswith("context"))  # noqa: E731
    return [
        Case("pre-training step", "DeepSeek-V3", "step time (s)", 19.926, "ISCA '25 (arXiv 2505.09343) Table 4",
             sc, _step),
        Case("context extension", "DeepSeek-V3", "H800 GPU-hours", 119e3, "V3 report (arXiv 2412.19437) Table 1",
             sc, ctx),
        Case("pre-training", "DeepSeek-V3", "H800 GPU-hours", 2664e3, "V3 report Table 1", sc,
             lambda est: est.phases[0].gpu_hours, fitted_on=False),
        Case("total", "DeepSeek-V3", "H800 GPU-hours", 2788e3, "V3 report Table 1", sc,
             lambda est: est.gpu_hours, fitted_on=False),
    ]


def published_runs_cases() -> list[Case]:
    """The first public set (published-runs.md, deepseek-v3.md)."""
    return deepseek_cases() + megatron_cases() + korthikanti_cases() + nvidia_cases()


def all_cases() -> list[Case]:
    from .cases import runs2_cases   # costsim/cases imports Case from here
    from .cases.post_training import post_training_cases
    return published_runs_cases() + runs2_cases() + post_training_cases()


def fit_groups(cases: Iterable[Case]) -> set[str]:
    """Sources the global fit uses: those with at least one fitted_on case (the others are held out always)."""
    return {c.group for c in cases if c.fitted_on}


def run_cases(progress: Callable[[int, int], None] | None = None, efficiency: Efficiency | None = None,
              cases: Iterable[Case] | None = None) -> list[CaseResult]:
    """Predict every case; `efficiency` overrides the fitted global parameters (used by the fit).

    A case whose plan costsim rejects (PlanError, e.g. "does not fit in memory") is a failed prediction:
    predicted = nan and the reason in `note`; the runs really ran, so it is counted, never dropped."""
    cases = list(cases or all_cases())
    results, cache = [], {}
    for i, c in enumerate(cases):
        key = id(c.scenario)
        if key not in cache:
            raw = dict(c.scenario)
            if efficiency is not None:
                raw["efficiency"] = {"compute_derate": efficiency.compute_derate,
                                     "kernel_overhead_us": efficiency.kernel_overhead_s * 1e6,
                                     "overlap_slowdown": efficiency.overlap_slowdown}
            try:
                cache[key] = estimate(parse_scenario(raw, c.scenario["name"]), SCENARIOS)
            except PlanError as exc:
                cache[key] = exc
        est = cache[key]
        if isinstance(est, PlanError):
            results.append(CaseResult(c.case, c.group, c.metric, c.published, math.nan, c.source, c.fitted_on,
                                      f"plan error: {est}", c.published_memory_gib))
        else:
            mem = est.phases[0].memory
            results.append(CaseResult(c.case, c.group, c.metric, c.published, c.extract(est), c.source,
                                      c.fitted_on, "", c.published_memory_gib,
                                      mem.total / 2**30 if mem is not None else None))
        if progress:
            progress(i + 1, len(cases))
    return results


def summarize(results: list[CaseResult]) -> dict:
    """Median and max |error| over the cases that were predicted; failed ones (nan) are counted apart."""
    ok = [r for r in results if math.isfinite(r.predicted)]
    errs = [abs(r.error) for r in ok]
    worst = max(ok, key=lambda r: abs(r.error)) if ok else None
    return {"cases": len(results), "failed": len(results) - len(ok),
            "median_abs_error": statistics.median(errs) if errs else math.nan,
            "max_abs_error": max(errs) if errs else math.nan,
            "worst_case": f"{worst.group}: {worst.case}" if worst else "-"}

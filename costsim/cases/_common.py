"""What the case modules of published-runs-2 share: the reference path, the metrics, scenario building.

"Like with like": these sources print throughput in tokens/s per GPU, so the prediction is the global batch in
tokens over the predicted step time over the GPUs (no MFU definition involved). The Megatron-LM README and one
NeMo table print model TFLOP/s per GPU instead; their modules count FLOPs the way the source does.
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Callable

from ..estimate import Estimate

REFERENCE = "docs/reference/published-runs-2.md"   # verbatim copy of the transcription, in this repository

# Whether `costsim validate --fit` uses these cases (each source weighs the same in the fit's objective; cases
# that fail to plan are left out of it). Repeats of a run (NeMo 5.2, 5.3) are never fitted on. fitted.json must
# be refitted after the set changes (tests/test_fit.py checks its case count and its per-source refits).
FIT_ON = True

# Scale-out line rate per GPU (Gb/s) from what a source prints: a node figure is divided by the GPUs per node.
def network_gbps_per_gpu(gbps: float, per: str, gpus_per_node: int = 8) -> float:
    """`per` is 'node' or 'gpu'. 1600 Gb/s per 8-GPU node (MPT's RoCE) = 200; 400 Gb/s per GPU = 400."""
    if per not in ("node", "gpu"):
        raise ValueError(f"per must be 'node' or 'gpu', got {per!r}")
    return gbps / gpus_per_node if per == "node" else float(gbps)


def step_s(est: Estimate) -> float:
    return est.phases[0].step_time_s


def tokens_per_s_per_gpu(global_batch: int, seq_len: int, gpus: int) -> Callable[[Estimate], float]:
    """Predicted tokens/s per GPU = global batch (sequences) × seq_len / step time / GPUs."""
    return lambda est: global_batch * seq_len / step_s(est) / gpus


def tflops_per_gpu(flops_per_step: float, gpus: int) -> Callable[[Estimate], float]:
    """A source's FLOPs per step (its own formula) over the predicted step time, per GPU, in TFLOP/s."""
    return lambda est: flops_per_step / step_s(est) / gpus / 1e12


def builtin_with(name: str, **keys) -> dict:
    """A built-in model's Hugging Face keys as an inline mapping with some keys changed (e.g. MPT's learned
    position embeddings sized to the run's sequence length)."""
    raw = json.loads(resources.files("costsim").joinpath("models", f"{name}.json").read_text())
    cfg = {k: v for k, v in raw.items() if not k.startswith("_") and k not in ("architectures",)}
    cfg.update(keys)
    cfg["name"] = f"{name}@" + ",".join(f"{k}={v}" for k, v in keys.items())
    return cfg


def scenario(name: str, model: str | dict, gpu: str, gpus: int, seq_len: int, global_batch: int,
             precision: str = "bf16", fp8_recipe: str | None = None, network_gbps: float | None = None,
             **parallelism) -> dict:
    """One training step of a published run as a scenario mapping (the keys of costsim/scenario.py)."""
    cluster = {"gpu": gpu, "num_gpus": gpus, "gpus_per_node": 8}
    if network_gbps is not None:
        cluster["network_gbps_per_gpu"] = network_gbps
    phase = {"name": "step", "precision": precision, "seq_len": seq_len, "global_batch_size": global_batch,
             "steps": 1}
    if fp8_recipe is not None:
        phase["fp8_recipe"] = fp8_recipe
    return {"name": name, "model": model, "cluster": cluster, "parallelism": dict(parallelism), "phases": [phase]}

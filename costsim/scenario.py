"""Scenario file: the public interface (YAML → validated pydantic models).

Keys documented in README.md; `extra="forbid"` so a misspelled key is an error, never silently dropped.
Phases inherit `precision`, `seq_len` and `global_batch_size` from the phase before them, and each phase's
`parallelism` mapping overrides only the fields it names on top of the scenario-level `parallelism`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ScenarioError
from .sim.reliability import Reliability

Precision = Literal["bf16", "fp8"]
Schedule = Literal["1f1b", "interleaved", "zero-bubble", "dualpipe"]
Recompute = Literal["none", "selective", "full"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cluster(_Strict):
    gpu: str = Field(description="hardware profile name (see `costsim profiles`) or path to a profile YAML")
    num_gpus: int = Field(gt=0)
    gpus_per_node: int | None = Field(default=None, gt=0, description="defaults to the profile's value")
    network_gbps_per_gpu: float | None = Field(
        default=None, gt=0, le=1e5, description="scale-out line rate per GPU in Gb/s (e.g. 1600 Gb/s RoCE per "
        "8-GPU node = 200); scales the profile's inter-node bandwidths; default: the profile's network")


class Parallelism(_Strict):
    tp: int = Field(default=1, gt=0, description="tensor parallel size")
    pp: int = Field(default=1, gt=0, description="pipeline parallel size (stages)")
    ep: int = Field(default=1, gt=0, description="expert parallel size (carved out of data parallel)")
    cp: int = Field(default=1, gt=0, description="context parallel size")
    dp: int | None = Field(default=None, gt=0, description="derived as num_gpus/(tp·pp·cp); checked if given")
    sequence_parallel: bool = False
    zero_stage: Literal[0, 1, 2, 3] = 1
    schedule: Schedule = "1f1b"
    virtual_stages: int = Field(default=1, gt=0, description="model chunks per device (interleaved)")
    micro_batch_size: int = Field(default=1, gt=0, description="sequences per micro-batch")
    recompute: Recompute = "selective"
    # Additions beyond the pinned keys:
    attention: Literal["flash", "flash2", "unfused"] = Field(
        default="flash", description="flash: the profile's fused attention kernel (FlashAttention-3 class on "
        "Hopper: cuDNN/TE, FA3); flash2: FlashAttention-2 (PyTorch SDPA, flash-attn 2), where the profile gives "
        "its curve; unfused: QK^T/softmax/AV as separate kernels")
    tp_comm_overlap: bool = Field(default=False, description="TP collectives overlapped with GEMMs")
    comm_sms: int = Field(default=0, ge=0, description="SMs reserved for communication kernels (DeepSeek: 20)")
    stage_layout: Literal["uniform", "balanced"] = Field(
        default="uniform", description="uniform: equal layer counts per stage; balanced: min-max stage time")
    etp: int = Field(default=1, gt=0, description="expert tensor parallel size (Megatron-Core MoE parallel "
                     "folding): experts split over etp ranks; ep·etp must divide tp·cp·dp of a stage")
    ep_comm_overlap: bool = Field(default=False, description="EP all-to-all overlapped with the other "
                                  "micro-batch's compute outside DualPipe (Megatron-Core --overlap-moe-expert-"
                                  "parallel-comm)")
    dp_comm_overlap: bool = Field(default=True, description="gradient reduction overlapped bucket by bucket "
                                  "with the last backward, ZeRO parameter gathers with the next forward "
                                  "(Megatron-Core --overlap-grad-reduce/--overlap-param-gather, DDP and FSDP "
                                  "defaults); false: both run after the backward")
    zero_shard_size: int | None = Field(default=None, gt=0, description="ZeRO/FSDP shard group size in "
                                        "data-parallel ranks; smaller than dp·cp = HSDP (shard inside a group, "
                                        "replicate across groups); default: all dp·cp ranks")
    zero3_gather_once: bool = Field(default=False, description="ZeRO-3/FSDP: gather parameters once per step "
                                    "and keep them across micro-batches (more memory) instead of re-gathering "
                                    "every micro-batch")
    recompute_fraction: float = Field(default=1.0, gt=0, le=1, description="share of layers recomputed under "
                                      "recompute: full (Megatron --recompute-num-layers; torchtitan "
                                      "selective-layer AC every k-th layer = 1/k)")


Fp8Recipe = Literal["delayed", "current", "rowwise", "blockwise"]


class Phase(_Strict):
    name: str
    precision: Precision | None = None
    fp8_recipe: Fp8Recipe | None = Field(
        default=None, description="FP8 scaling: delayed (Transformer Engine per-tensor, amax history; the "
        "default), current (per-tensor, this step's amax), rowwise (per-row, torchao), blockwise (DeepSeek-V3 "
        "1x128 activations / 128x128 weights); inherited from the phase before")
    seq_len: int | None = Field(default=None, gt=0)
    global_batch_size: int | None = Field(default=None, gt=0, description="sequences per step")
    tokens: float | None = Field(default=None, gt=0)
    steps: int | None = Field(default=None, gt=0)
    gpu_hours: float | None = Field(default=None, ge=0, description="a reported figure, shown as given")
    parallelism: dict[str, Any] | None = Field(default=None, description="overrides of scenario parallelism")

    @model_validator(mode="after")
    def _one_amount(self) -> "Phase":
        given = [k for k in ("tokens", "steps", "gpu_hours") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of tokens, steps, gpu_hours (got {', '.join(given) or 'none'})")
        return self


class Pricing(_Strict):
    usd_per_gpu_hour: float | None = Field(default=None, gt=0, description="defaults to the profile's price")
    pue: float = Field(default=1.2, ge=1.0, description="power usage effectiveness for energy (assumption)")


class Optimizer(_Strict):
    moment_dtype: Literal["fp32", "bf16"] = "fp32"


class Moe(_Strict):
    """Routing as the cost model sees it."""
    load_imbalance: float | None = Field(default=None, ge=1, le=64, description="max/mean routed tokens per EP "
                                         "rank in one micro-batch; default: the statistical floor of balanced "
                                         "routing (costsim/moe_balance.py)")
    capacity_factor: float | None = Field(default=None, gt=0, le=64, description="token-dropping capacity "
                                          "factor (caps each expert at this × mean); default: dropless")


class Efficiency(_Strict):
    """Global parameters fitted on the public set (costsim/fitted.json); override here for what-ifs."""
    compute_derate: float | None = Field(default=None, gt=0, le=1)
    kernel_overhead_us: float | None = Field(default=None, ge=0)
    overlap_efficiency: float | None = Field(default=None, ge=0, le=1, description="former parameter: "
                                             "share of overlapped communication that hides; sets "
                                             "overlap_slowdown = 1 − this")
    overlap_slowdown: float | None = Field(default=None, ge=0, le=1, description="fraction of compute throughput "
                                           "lost while a communication kernel runs beside it")


class Scenario(_Strict):
    name: str
    model: str | dict[str, Any]
    cluster: Cluster
    parallelism: Parallelism = Parallelism()
    phases: list[Phase] = Field(min_length=1)
    pricing: Pricing = Pricing()
    optimizer: Optimizer = Optimizer()
    moe: Moe = Moe()
    efficiency: Efficiency = Efficiency()
    reliability: Reliability = Reliability()


def _loc(err: dict) -> str:
    parts = [str(p) for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-after"))]
    return ".".join(parts) or "scenario"


def one_line(exc: ValidationError, prefix: str = "") -> str:
    """First pydantic error as 'field.path: message' (the CLI shows one line)."""
    err = exc.errors()[0]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    loc = _loc(err)
    return f"{prefix}{loc}: {msg}"


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a raw scenario mapping."""
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set {item}: expected key=value, e.g. parallelism.pp=8")
        key, value = item.split("=", 1)
        path = key.strip().split(".")
        node = raw
        for part in path[:-1]:
            if isinstance(node, list):
                node = node[_index(part, key)]
            else:
                node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise ScenarioError(f"--set {key}: '{part}' is not a mapping")
        leaf = path[-1]
        parsed = yaml.safe_load(value)
        if isinstance(node, list):
            node[_index(leaf, key)] = parsed
        else:
            node[leaf] = parsed
    return raw


def _index(part: str, key: str) -> int:
    try:
        return int(part)
    except ValueError:
        raise ScenarioError(f"--set {key}: '{part}' must be a list index") from None


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ScenarioError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ScenarioError(f"{path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping of scenario keys at the top level")
    return raw


def parse_scenario(raw: dict, source: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(one_line(exc, f"{source}: ")) from None


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read and validate a scenario YAML, with optional `key=value` overrides."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), overrides or [])
    return parse_scenario(raw, str(path))

"""The plan space `costsim search` enumerates: the scenario's `search:` block or a `--space` file, over defaults.

Every dimension may be fixed (a scalar) or listed; what is not given takes a default that is sensible for the
model (powers of two within its limits). `wide` is the named benchmark space of issue 8: every dimension
open, `num_gpus` from a quarter to four times the scenario's and every shipped GPU profile.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ScenarioError

DIMENSIONS = ("gpu", "num_gpus", "tp", "pp", "cp", "ep", "etp", "zero_stage", "micro_batch_size", "recompute",
              "schedule", "virtual_stages", "sequence_parallel")
PARALLEL_KEYS = DIMENSIONS[2:]          # keys under `parallelism:` in a scenario (plus the derived dp)

_Pos = Union[int, list[int]]


def _positive_list(v: Any) -> Any:
    if isinstance(v, list):
        if not v:
            raise ValueError("an empty list leaves nothing to search")
        if len(v) > 4096:
            raise ValueError("more than 4096 values")
    return v


class SearchSpace(BaseModel):
    """A `search:` block: each key a value or a list of values to search; omitted keys take defaults."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: str | list[str] | None = Field(default=None, description="hardware profile name(s); each at its "
                                        "own price unless pricing.usd_per_gpu_hour pins one")
    num_gpus: _Pos | None = Field(default=None, description="GPU count(s); default: the scenario's")
    tp: _Pos | None = Field(default=None, description="tensor parallel size(s); default: powers of two "
                            "dividing the heads")
    pp: _Pos | None = Field(default=None, description="pipeline stage count(s); default: powers of two up "
                            "to the layers")
    cp: _Pos | None = Field(default=None, description="context parallel size(s); default: the scenario's")
    ep: _Pos | None = Field(default=None, description="expert parallel size(s) (MoE only); default: powers "
                            "of two dividing the experts")
    etp: _Pos | None = Field(default=None, description="expert tensor parallel size(s) (MoE only)")
    zero_stage: Literal[0, 1, 2, 3] | list[Literal[0, 1, 2, 3]] | None = Field(
        default=None, description="ZeRO stage(s) 0-3")
    micro_batch_size: _Pos | None = Field(default=None, description="sequences per micro-batch")
    recompute: Literal["none", "selective", "full"] | list[Literal["none", "selective", "full"]] | None = Field(
        default=None, description="activation recompute mode(s)")
    schedule: (Literal["1f1b", "interleaved", "zero-bubble", "dualpipe"]
               | list[Literal["1f1b", "interleaved", "zero-bubble", "dualpipe"]] | None) = Field(
        default=None, description="pipeline schedule(s); one schedule when pp = 1")
    virtual_stages: _Pos | None = Field(default=None, description="searched with the interleaved schedule "
                                        "only (1 for the others)")
    sequence_parallel: bool | list[bool] | None = Field(default=None, description="searched where tp > 1")

    @field_validator("*", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _positive_list(v)

    @field_validator("num_gpus", "tp", "pp", "cp", "ep", "etp", "micro_batch_size", "virtual_stages")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        for x in (v if isinstance(v, list) else [v] if v is not None else []):
            if x <= 0 or x > 1 << 24:
                raise ValueError(f"{x} must be a positive integer up to {1 << 24}")
        return v


def _pow2(lo: int, hi: int) -> list[int]:
    out, x = [], 1
    while x <= hi:
        if x >= lo:
            out.append(x)
        x *= 2
    return out


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(dict.fromkeys(v if isinstance(v, list) else [v]))   # de-duplicated, order kept


def defaults(model, scenario, seq_len: int, wide: bool, all_gpus: list[str]) -> dict[str, list]:
    """Default values per dimension for this model and scenario (the `search:` block overrides them)."""
    n = scenario.cluster.num_gpus
    gpn = scenario.cluster.gpus_per_node or 8
    units = model.num_layers + model.num_nextn_predict_layers
    heads = model.num_heads
    d: dict[str, list] = {
        "gpu": list(all_gpus) if wide else [scenario.cluster.gpu],
        "num_gpus": sorted({max(1, n // 4), max(1, n // 2), n, 2 * n, 4 * n}) if wide else [n],
        "tp": [t for t in _pow2(1, min(heads, 64 if wide else gpn))],
        "pp": _pow2(1, min(units, 64 if wide else 32)),
        "cp": [c for c in _pow2(1, 32 if wide else 16) if seq_len % c == 0 and seq_len // c >= 1024],
        "ep": ([e for e in _pow2(1, min(model.n_routed_experts, 256 if wide else 64))]
               if model.is_moe else [1]),
        "etp": _pow2(1, 8 if wide else 1) if model.is_moe else [1],
        "zero_stage": [0, 1, 2, 3],
        "micro_batch_size": _pow2(1, 16 if wide else 8),
        "recompute": ["none", "selective", "full"],
        "schedule": ["1f1b", "interleaved", "zero-bubble", "dualpipe"],
        "virtual_stages": _pow2(2, 8 if wide else 4),
        "sequence_parallel": [False, True],
    }
    return d


def resolve_space(space: SearchSpace | None, model, scenario, seq_len: int, wide: bool,
                  all_gpus: list[str]) -> dict[str, list]:
    """Per dimension the list of values to search: the given ones over the defaults."""
    d = defaults(model, scenario, seq_len, wide, all_gpus)
    if space is not None:
        for key in DIMENSIONS:
            given = _as_list(getattr(space, key))
            if given:
                d[key] = given
    return d


def load_space_file(path: str | Path) -> SearchSpace:
    """A `--space` YAML file: the keys of a `search:` block at the top level (or under `search:`)."""
    p = Path(path)
    if not p.is_file():
        raise ScenarioError(f"--space {path}: file not found (or give `wide`)")
    try:
        from ..safe_load import load_yaml   # size, depth and alias limits, one-line errors
    except ImportError:                     # pragma: no cover
        load_yaml = None
    if load_yaml is not None:
        raw = load_yaml(p, "--space file")
    else:
        try:
            raw = yaml.safe_load(p.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            raise ScenarioError(f"--space {path}: not valid YAML") from None
    if isinstance(raw, dict) and set(raw) == {"search"}:
        raw = raw["search"]
    if not isinstance(raw, dict):
        raise ScenarioError(f"--space {path}: expected a mapping of search keys ({', '.join(DIMENSIONS)})")
    return parse_space(raw, f"--space {path}")


def parse_space(raw: dict, where: str) -> SearchSpace:
    from ..scenario import one_line
    try:
        return SearchSpace.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(one_line(exc, f"{where}: ")) from None

"""The calibration results file: one JSON object per measured (or transcribed) environment, versioned.

Format ``costsim-calibration-results``, version 1 (calibration/README.md shows an example)::

    {"format": "costsim-calibration-results", "version": 1,
     "created": "2026-11-27T21:40:00Z",            # when measured (or transcribed); ISO 8601, UTC
     "tool": "costsim 0.1.0 calibrate run",         # what wrote it
     "environment": {"summary": "1x NVIDIA H100 80GB HBM3, torch 2.13.0, CUDA 12.8, driver 570.86",
                     "device": "cuda" | "cpu" | "published", ...},   # see Environment
     "settings": {...},                             # free-form: quick, warm-up, repeats, L2 flush, skipped
     "entries": [{"family": "gemm", ...}, ...]}     # one per measurement, fields by family below

Units are fixed by the field name: TFLOPS = 1e12 FLOP/s, GB/s = 1e9 B/s, bytes, seconds (`time_s`, the
median of the repeats) or microseconds (`time_us`). Every entry may carry `source` (required when the
environment's device is "published": the publication and table it was transcribed from) and `note`.
FLOP conventions: a GEMM is 2·M·N·K·groups; attention forward is 2·b·h·s²·(d + d_v), halved when causal,
backward 2.5× forward (hardware.md, Attention); collective busbw follows nccl-tests (algbw × factor).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import CostsimError
from ..safe_load import short

FORMAT = "costsim-calibration-results"
VERSION = 1
COLLECTIVE_NAMES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p")

Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PosInt = Annotated[int, Field(gt=0)]


class ResultsError(CostsimError):
    """A results file is missing, not JSON, of another format or version, or malformed (one line)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Entry(_Strict):
    source: Optional[str] = None       # publication + table (reference files), absent for measurements
    note: Optional[str] = None
    time_s: Optional[Pos] = None       # median seconds per call, where measured
    repeats: Optional[PosInt] = None   # timed calls behind the median


class GemmEntry(_Entry):
    """C = A·B with A M×K, B K×N (`groups` independent ones); shape absent where a publication gives none."""
    family: Literal["gemm"]
    dtype: Literal["bf16", "fp8"]
    m: Optional[PosInt] = None
    n: Optional[PosInt] = None
    k: Optional[PosInt] = None
    groups: PosInt = 1
    kernel: str = "torch"              # torch (matmul / _scaled_mm, as mamf-finder) | deepgemm | ...
    probe: Optional[str] = None        # grid | mamf | wave | tile | k | small_m | scenario
    tflops: Pos

    @model_validator(mode="after")
    def _shape_all_or_none(self):
        given = [v is not None for v in (self.m, self.n, self.k)]
        if any(given) and not all(given):
            raise ValueError("give all of m, n, k or none")
        return self


class MemoryEntry(_Entry):
    """Achieved bandwidth of one memory-bound kernel, bytes read + written counted."""
    family: Literal["memory"]
    op: Literal["copy", "read", "write", "stream", "dma_copy"]
    bytes: Optional[PosInt] = None     # bytes moved per call; absent: a large-transfer figure
    gbps: Pos


class AttentionEntry(_Entry):
    family: Literal["attention"]
    kernel: str                        # sdpa-flash | sdpa | fa3 | fa2 | flashmla ...
    direction: Literal["fwd", "bwd", "fwd_bwd"]
    causal: bool
    head_dim: PosInt                   # of q and k
    head_dim_v: Optional[PosInt] = None  # of v, if different
    seq_len: PosInt
    batch: Optional[PosInt] = None
    heads: Optional[PosInt] = None
    dtype: str = "bf16"
    tflops: Pos


class CollectiveEntry(_Entry):
    family: Literal["collective"]
    collective: Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p"]
    tier: Literal["intra_node", "inter_node", "hierarchical"]
    ranks: Annotated[int, Field(ge=2)]
    ranks_per_node: Optional[PosInt] = None
    algo: str = "default"              # ring | nvls | sharp | low_latency | deepep | default
    size_bytes: Optional[PosInt] = None  # nccl-tests size; absent: a large-message (plateau) figure
    busbw_gbs: Pos


class LatencyEntry(_Entry):
    """One-way latency of a small message on a link tier."""
    family: Literal["latency"]
    tier: Literal["intra_node", "inter_node"]
    path: Optional[str] = None         # e.g. "same leaf", "cross leaf"
    size_bytes: PosInt
    time_us: Pos


class LaunchEntry(_Entry):
    """Host time per launch of a trivial kernel, back to back."""
    family: Literal["launch"]
    op: str
    time_us: Pos


Entry = Annotated[Union[GemmEntry, MemoryEntry, AttentionEntry, CollectiveEntry, LatencyEntry, LaunchEntry],
                  Field(discriminator="family")]


class Environment(_Strict):
    summary: str = Field(min_length=1)  # one line: what ran it; quoted in fitted profiles' sources
    device: Literal["cuda", "cpu", "published"]
    gpu_name: Optional[str] = None
    gpu_count: Optional[int] = None
    nodes: Optional[int] = None
    driver: Optional[str] = None
    cuda: Optional[str] = None
    torch: Optional[str] = None
    python: Optional[str] = None
    platform: Optional[str] = None
    cpu: Optional[str] = None
    costsim: Optional[str] = None
    gpus: list[dict[str, Any]] = []     # per GPU from nvidia-smi: clocks, power, temperature
    note: Optional[str] = None


class Results(_Strict):
    format: Literal["costsim-calibration-results"]
    version: Literal[1]
    created: str = Field(min_length=10)
    tool: str
    environment: Environment
    settings: dict[str, Any] = {}
    entries: list[Entry]

    @model_validator(mode="after")
    def _published_entries_cite(self):
        if self.environment.device == "published":
            for i, e in enumerate(self.entries):
                if not (e.source or "").strip():
                    raise ValueError(f"entries.{i}.source: every published entry needs a source")
        return self

    @property
    def date(self) -> str:
        """YYYY-MM-DD of `created`."""
        return self.created[:10]


def parse_results(raw: Any, where: str) -> Results:
    """Validate a decoded results object; ResultsError with one line naming the field otherwise."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ResultsError(f"{where}: not a costsim calibration results file (expected a JSON object with "
                           f"\"format\": \"{FORMAT}\")")
    if raw.get("version") != VERSION:
        raise ResultsError(f"{where}: results format version {short(raw.get('version'))} is not supported; "
                           f"this costsim reads version {VERSION}")
    try:
        return Results.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if p not in _UNION_TAGS)
        msg = err["msg"].removeprefix("Value error, ")
        raise ResultsError(f"{where}: {loc or 'file'}: {msg}") from None


_UNION_TAGS = {"gemm", "memory", "attention", "collective", "latency", "launch"}


MAX_RESULTS_BYTES = 16 << 20    # a full calibration run writes a few hundred KiB


def load_results(path: str | Path) -> Results:
    """Read and validate a results file."""
    from ..safe_load import LoadError, load_json
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: results file not found")
    try:
        raw = load_json(path, "results file", max_bytes=MAX_RESULTS_BYTES)
    except LoadError as exc:
        raise ResultsError(f"cannot read results file: {exc}") from None
    return parse_results(raw, str(path))


def dump_results(results: Results) -> str:
    """JSON text of a results file, entries one per line (diff-friendly)."""
    data = results.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    head = {k: v for k, v in data.items() if k != "entries"}
    if not head["environment"].get("gpus"):
        head["environment"].pop("gpus", None)
    text = json.dumps(head, indent=2, allow_nan=False, ensure_ascii=False)[:-2]
    rows = ",\n".join("    " + json.dumps(_ordered(e), allow_nan=False, ensure_ascii=False) for e in data["entries"])
    return f"{text},\n  \"entries\": [\n{rows}\n  ]\n}}\n"


def _ordered(entry: dict) -> dict:
    """family first, source and note last: a row reads as what, how much, where from."""
    tail = ("time_s", "repeats", "source", "note")
    rest = {k: v for k, v in entry.items() if k not in ("family", *tail)}
    return {"family": entry["family"], **rest, **{k: entry[k] for k in tail if k in entry}}


def save_results(raw: dict, path: str | Path) -> Results:
    """Validate `raw` and write it to `path`; returns the parsed results."""
    from ..safe_write import write_text
    results = parse_results(raw, str(path))
    write_text(path, dump_results(results), what="--output")
    return results

"""Scenario file: the public interface (YAML → validated pydantic models).

Keys documented in README.md; `extra="forbid"` so a misspelled key is an error, never silently dropped.
Phases inherit `precision`, `seq_len` and `global_batch_size` from the phase before them, and each phase's
`parallelism` mapping overrides only the fields it names on top of the scenario-level `parallelism`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, PrivateAttr, Tag, ValidationError, field_validator, model_validator

from .errors import ScenarioError
from .fields import MAX_SIZE, MAX_TOKENS, Float, Int, Strict
from .phase_kinds import GeneratePhase, RLPhase, ServePhase
from .safe_load import LoadError, clip, load_yaml, parse_yaml, short
from .sim.reliability import Reliability
from .search.space import SearchSpace

Precision = Literal["bf16", "fp8"]
Schedule = Literal["1f1b", "interleaved", "zero-bubble", "dualpipe"]
Recompute = Literal["none", "selective", "full"]


MAX_STEPS = 1_000_000_000       # a phase's steps, given or derived from its tokens
MAX_PHASES = 32


_Strict = Strict


class Cluster(_Strict):
    gpu: str = Field(description="hardware profile name (see `costsim profiles`) or path to a profile YAML")
    num_gpus: Int = Field(gt=0, le=10_000_000, description="GPUs in the job (tp·pp·cp·dp)")
    gpus_per_node: Int | None = Field(default=None, gt=0, le=1024, description="defaults to the profile's value; "
                                      "must divide num_gpus (or exceed it: one partial node)")
    network_gbps_per_gpu: Float | None = Field(
        default=None, ge=1e-3, le=1e5, description="scale-out line rate per GPU in Gb/s (e.g. 1600 Gb/s RoCE per "
        "8-GPU node = 200); scales the profile's inter-node bandwidths; default: the profile's network")

    @model_validator(mode="after")
    def _whole_nodes(self) -> "Cluster":
        n, per = self.num_gpus, self.gpus_per_node
        if per is not None and n > per and n % per:
            raise ValueError(f"gpus_per_node={per} does not divide num_gpus={n} (whole nodes, or one partial "
                             "node when num_gpus < gpus_per_node)")
        return self


class Parallelism(_Strict):
    tp: Int = Field(default=1, gt=0, le=MAX_SIZE, description="tensor parallel size")
    pp: Int = Field(default=1, gt=0, le=MAX_SIZE, description="pipeline parallel size (stages)")
    ep: Int = Field(default=1, gt=0, le=MAX_SIZE, description="expert parallel size (carved out of data parallel)")
    cp: Int = Field(default=1, gt=0, le=MAX_SIZE, description="context parallel size")
    dp: Int | None = Field(default=None, gt=0, le=MAX_SIZE, description="derived as num_gpus/(tp·pp·cp); checked if given")
    sequence_parallel: bool = Field(default=False, description="Megatron sequence parallelism: norm and dropout "
                                    "activations sharded over the TP group")
    zero_stage: Literal[0, 1, 2, 3] = Field(default=1, description="ZeRO: 0 none, 1 optimizer states sharded over DP, "
                                            "2 also gradients, 3 also parameters (FSDP)")
    schedule: Schedule = Field(default="1f1b", description="pipeline schedule: 1f1b, interleaved (virtual_stages "
                               "chunks per device), zero-bubble (ZB-H1), dualpipe")
    virtual_stages: Int = Field(default=1, gt=0, le=MAX_SIZE, description="model chunks per device (interleaved)")
    micro_batch_size: Int = Field(default=1, gt=0, le=MAX_SIZE, description="sequences per micro-batch")
    recompute: Recompute = Field(default="selective", description="activation recomputation: none, selective "
                                 "(attention core, Korthikanti et al. 2022), full (recompute_fraction of the layers)")
    # Additions beyond the pinned keys:
    attention: Literal["flash", "flash2", "unfused"] = Field(
        default="flash", description="flash: the profile's fused attention kernel (FlashAttention-3 class on "
        "Hopper: cuDNN/TE, FA3); flash2: FlashAttention-2 (PyTorch SDPA, flash-attn 2), where the profile gives "
        "its curve; unfused: QK^T/softmax/AV as separate kernels")
    tp_comm_overlap: bool = Field(default=False, description="TP collectives overlapped with GEMMs")
    comm_sms: Int = Field(default=0, ge=0, le=1024, description="SMs reserved for communication kernels (DeepSeek: 20)")
    stage_layout: Literal["uniform", "balanced"] = Field(
        default="uniform", description="uniform: equal layer counts per stage; balanced: min-max stage time")
    etp: Int = Field(default=1, gt=0, le=MAX_SIZE, description="expert tensor parallel size (Megatron-Core MoE parallel "
                     "folding): experts split over etp ranks; ep·etp must divide tp·cp·dp of a stage")
    ep_comm_overlap: bool = Field(default=False, description="EP all-to-all overlapped with the other "
                                  "micro-batch's compute outside DualPipe (Megatron-Core --overlap-moe-expert-"
                                  "parallel-comm)")
    dp_comm_overlap: bool = Field(default=True, description="gradient reduction overlapped bucket by bucket "
                                  "with the last backward, ZeRO parameter gathers with the next forward "
                                  "(Megatron-Core --overlap-grad-reduce/--overlap-param-gather, DDP and FSDP "
                                  "defaults); false: both run after the backward")
    grad_dtype: Literal["fp32", "bf16"] = Field(
        default="fp32", description="gradient buffer and data-parallel reduction precision (Megatron-Core "
        "grad_reduce_in_fp32, default false = bf16; Megatron-LM main_grad and FSDP reduce_dtype float32 = fp32)")
    zero_shard_size: Int | None = Field(default=None, gt=0, le=MAX_SIZE, description="ZeRO/FSDP shard group size in "
                                        "data-parallel ranks; smaller than dp·cp = HSDP (shard inside a group, "
                                        "replicate across groups); default: all dp·cp ranks")
    zero3_gather_once: bool = Field(default=False, description="ZeRO-3/FSDP: gather parameters once per step "
                                    "and keep them across micro-batches (more memory) instead of re-gathering "
                                    "every micro-batch")
    recompute_fraction: Float = Field(default=1.0, gt=0, le=1, description="share of layers recomputed under "
                                      "recompute: full (Megatron --recompute-num-layers; torchtitan "
                                      "selective-layer AC every k-th layer = 1/k)")


Fp8Recipe = Literal["delayed", "current", "rowwise", "blockwise"]


class Phase(_Strict):
    kind: Literal["train"] = Field(default="train", description="train (the default): pre-training, context "
                                   "extension, fine-tuning; other kinds: generate, rl, serve")
    name: str = Field(min_length=1, max_length=200,
                      description="phase name, shown in the output (and `costsim timeline --phase`)")
    precision: Precision | None = Field(default=None, description="bf16 or fp8 GEMMs; default: the phase before's "
                                       "(the first phase: bf16)")
    fp8_recipe: Fp8Recipe | None = Field(
        default=None, description="FP8 scaling: delayed (Transformer Engine per-tensor, amax history; the "
        "default), current (per-tensor, this step's amax), rowwise (per-row, torchao), blockwise (DeepSeek-V3 "
        "1x128 activations / 128x128 weights); inherited from the phase before")
    seq_len: Int | None = Field(default=None, gt=0, le=100_000_000, description="tokens per sequence; default: the "
                                "phase before's")
    global_batch_size: Int | None = Field(default=None, gt=0, le=1_000_000_000, description="sequences per step")
    tokens: Float | None = Field(default=None, gt=0, le=MAX_TOKENS, allow_inf_nan=False,
                                 description="training tokens of the phase (or give steps)")
    steps: Int | None = Field(default=None, gt=0, le=MAX_STEPS, description="optimizer steps of the phase (or give "
                              "tokens)")
    gpu_hours: Float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False, description="a reported figure, shown as given")
    parallelism: dict[str, Any] | None = Field(default=None, description="overrides of scenario parallelism")

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        if value not in PHASE_KINDS:
            raise ValueError(f"{short(value)} is not a phase kind; expected one of {', '.join(PHASE_KINDS)}")
        return value

    @model_validator(mode="after")
    def _one_amount(self) -> "Phase":
        given = [k for k in ("tokens", "steps", "gpu_hours") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of tokens, steps, gpu_hours (got {', '.join(given) or 'none'})")
        if self.gpu_hours is not None:
            other = [k for k in self.model_fields_set if k not in ("name", "gpu_hours", "kind")]
            if other:
                raise ValueError(f"a reported phase (gpu_hours) takes only name and gpu_hours; remove "
                                 f"{', '.join(sorted(other))}")
        return self


def _phase_kind(value: Any) -> str:
    kind = value.get("kind", "train") if isinstance(value, dict) else getattr(value, "kind", "train")
    return kind if kind in PHASE_KINDS else "train"   # an unknown kind fails on Phase's own Literal


PHASE_KINDS = ("train", "generate", "rl", "serve")
AnyPhase = Annotated[
    Annotated[Phase, Tag("train")] | Annotated[GeneratePhase, Tag("generate")] | Annotated[RLPhase, Tag("rl")]
    | Annotated[ServePhase, Tag("serve")], Discriminator(_phase_kind)]


class Pricing(_Strict):
    usd_per_gpu_hour: Float | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False, description="defaults to the profile's price")
    pue: Float = Field(default=1.2, ge=1.0, le=10, allow_inf_nan=False, description="power usage effectiveness for energy (assumption)")


class Optimizer(_Strict):
    moment_dtype: Literal["fp32", "bf16"] = Field(default="fp32", description="dtype of the Adam moments (DeepSeek-V3: "
                                                  "bf16)")


class Moe(_Strict):
    """Routing as the cost model sees it."""
    load_imbalance: Float | None = Field(default=None, ge=1, le=64, description="max/mean routed tokens per EP "
                                         "rank in one micro-batch; default: the statistical floor of balanced "
                                         "routing (costsim/moe_balance.py)")
    capacity_factor: Float | None = Field(default=None, gt=0, le=64, description="token-dropping capacity "
                                          "factor (caps each expert at this × mean); default: dropless")


class Efficiency(_Strict):
    """Global parameters fitted on the public set (costsim/fitted.json); override here for what-ifs."""
    compute_derate: Float | None = Field(default=None, ge=0.01, le=1, description="sustained tensor-core rate in a "
                                         "step ÷ microbenchmark; default: the fitted value")
    kernel_overhead_us: Float | None = Field(default=None, ge=0, le=100_000, allow_inf_nan=False,
                                             description="launch and framework time per kernel on the critical "
                                             "path, µs (not fitted: 0 by default)")
    overlap_efficiency: Float | None = Field(default=None, ge=0, le=1, description="former parameter: "
                                             "share of overlapped communication that hides; sets "
                                             "overlap_slowdown = 1 − this")
    overlap_slowdown: Float | None = Field(default=None, ge=0, le=1, description="fraction of compute throughput "
                                           "lost while a communication kernel runs beside it")


MAX_RANGES = 8
MAX_RANGE_VALUES = 16
MAX_RANGE_COMBINATIONS = 256
MAX_RANGE_KEYS = 32


def normal_key(key: str) -> str:
    """A dotted key as costsim compares it: parts stripped, list indices as plain numbers (`phases.00`,
    `phases.+0` → `phases.0`)."""
    return ".".join(_normal_part(part) for part in key.strip().split("."))


def _normal_part(part: str) -> str:
    """A list index as set_key reads it (int(): '00', '+0', '0_0' and ' 0 ' are all 0); anything else stripped."""
    part = part.strip()
    try:
        return str(int(part))
    except ValueError:
        return part


def overlaps(a: str, b: str) -> bool:
    """Whether two normal keys set the same value, or one sets a mapping or list holding the other."""
    pa, pb = a.split("."), b.split(".")
    n = min(len(pa), len(pb))
    return pa[:n] == pb[:n]


def unrangeable(key: str) -> str | None:
    """Why a key cannot be a range (the ranges cost closed-form estimates with fixed phases), or None."""
    parts = key.split(".")
    if parts[0] == "ranges":
        return "a range cannot vary the ranges themselves"
    if parts[0] in ("reliability", "search"):
        return (f"{parts[0]} does not change the closed-form estimate the ranges cost (reliability: --simulate; "
                "search: costsim search)")
    if parts[0] == "name" or (parts[0] == "phases" and (len(parts) < 3 or parts[2] == "name")):
        return "a range cannot rename, add or remove phases (vary a key inside one: phases.0.tokens)"
    return None


class Range(_Strict):
    """An input the scenario is not sure of: the values it may take, and where they come from. `costsim estimate`
    costs the scenario at each value (the rest as written) and over every combination of the ranges
    (costsim/ranges.py)."""
    key: str | list[str] = Field(description="the scenario key to vary, written as for --set (e.g. "
                                 "phases.0.tokens_per_s_per_request), or a list of keys that take the same value "
                                 "(one assumption used in several places)")
    values: list[Any] = Field(min_length=2, max_length=MAX_RANGE_VALUES, description="the values it may take "
                              "(any YAML value the key accepts), e.g. the ends of a published range")
    source: str | None = Field(default=None, max_length=400, description="where the values come from (a "
                               "publication, a measurement, or 'assumed: …')")

    @field_validator("key")
    @classmethod
    def _keys(cls, value: str | list[str]) -> str | list[str]:
        keys = [value] if isinstance(value, str) else value
        if not 1 <= len(keys) <= MAX_RANGE_KEYS:
            raise ValueError(f"expected one key or a list of 1 to {MAX_RANGE_KEYS}; got {len(keys)}")
        out = []
        for k in keys:
            k = normal_key(k)
            if not k or len(k) > 200 or not all(k.split(".")):
                raise ValueError(f"'{clip(k, 60)}': a key must hold 1 to 200 characters, no empty part")
            why = unrangeable(k)
            if why:
                raise ValueError(f"'{clip(k, 60)}': {why}")
            out.append(k)
        return out[0] if isinstance(value, str) else out

    @property
    def keys(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)

    @property
    def label(self) -> str:
        """The key as shown: the first one, and how many more take the same value."""
        more = len(self.keys) - 1
        return self.keys[0] + (f" (+{more} more)" if more else "")


class Scenario(_Strict):
    name: str = Field(max_length=200, description="scenario name, shown in the output")
    model: str | dict[str, Any] = Field(description="a built-in model name (`costsim profiles`), "
                                        "{hf_config: path/to/config.json}, or an inline mapping of Hugging Face "
                                        "config keys")
    cluster: Cluster = Field(description="the GPUs: profile, count, GPUs per node, network")
    parallelism: Parallelism = Field(default=Parallelism(), description="the parallel plan; a phase's "
                                     "`parallelism` overrides the fields it names")
    phases: list[AnyPhase] = Field(min_length=1, max_length=MAX_PHASES, description="phases in order: training "
                                   "(tokens, steps or a reported gpu_hours), generate, rl or serve (`kind`)")
    pricing: Pricing = Field(default=Pricing(), description="price per GPU-hour (default: the GPU profile's) and PUE")
    optimizer: Optimizer = Field(default=Optimizer(), description="optimizer state precision")
    moe: Moe = Field(default=Moe(), description="MoE routing: load imbalance, capacity factor")
    efficiency: Efficiency = Field(default=Efficiency(), description="overrides of the global fitted parameters "
                                   "(costsim/fitted.json), for what-ifs")
    reliability: Reliability = Field(default=Reliability(), description="failures, checkpoints and restarts for "
                                     "--simulate (defaults: costsim/sim/reliability.py)")
    search: SearchSpace | None = Field(default=None, description="plan space for `costsim search` (each key a "
                                       "value or a list; omitted keys take defaults)")
    ranges: list[Range] = Field(default=[], max_length=MAX_RANGES, description="inputs the scenario is not sure "
                                "of, each a key and the values it may take: `costsim estimate` shows the cost at "
                                "each value and the span over every combination (costsim/ranges.py)")
    _raw: dict | None = PrivateAttr(default=None)   # the validated mapping, for costsim/ranges.py to vary

    @property
    def raw(self) -> dict:
        """A copy of the mapping this scenario was validated from (overrides applied)."""
        if self._raw is None:
            return self.model_dump(mode="json", exclude_unset=True)
        return copy.deepcopy(self._raw)

    @field_validator("model", mode="before")
    @classmethod
    def _model_kind(cls, value: Any) -> Any:
        if not isinstance(value, (str, dict)):
            raise ValueError(f"expected a built-in name (see `costsim profiles`), {{hf_config: path}} or a mapping "
                             f"of Hugging Face config keys; got {short(value)}")
        return value

    @model_validator(mode="after")
    def _unique_phase_names(self) -> "Scenario":
        seen: dict[str, int] = {}
        for i, ph in enumerate(self.phases):
            if ph.name in seen:
                raise ValueError(f"phases[{i}].name: '{clip(ph.name, 40)}' repeats phases[{seen[ph.name]}].name; "
                                 "phase names must be unique")
            seen[ph.name] = i
        return self

    @model_validator(mode="after")
    def _ranges_apart(self) -> "Scenario":
        seen: list[tuple[str, int]] = []
        combos = 1
        for i, r in enumerate(self.ranges):
            for k in r.keys:
                for other, j in seen:
                    if overlaps(k, other):
                        same = "is listed twice" if k == other and i == j else (
                            f"sets the same value as '{clip(other, 60)}'" if k == other else
                            f"overlaps '{clip(other, 60)}' (one holds the other)")
                        where = "" if i == j else f" of ranges[{j}]"
                        raise ValueError(f"ranges[{i}].key: '{clip(k, 60)}' {same}{where}")
                seen.append((k, i))
            combos *= len(r.values)
        if combos > MAX_RANGE_COMBINATIONS:
            raise ValueError(f"ranges: {combos:,} combinations of their values; the limit is "
                             f"{MAX_RANGE_COMBINATIONS} (fewer values or fewer ranges)")
        return self

    def model_copy(self, *, update=None, deep: bool = False) -> "Scenario":
        """A copy; one with fields updated forgets the mapping it was read from (`raw` then dumps the copy)."""
        out = super().model_copy(update=update, deep=deep)
        if update:
            out._raw = None
        return out


def _loc(err: dict) -> str:
    parts = [str(p) for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-after")
                                                                        or p in PHASE_KINDS))]
    return clip(".".join(parts), 120) or "scenario"


def one_line(exc: ValidationError, prefix: str = "") -> str:
    """First pydantic error as 'field.path: message' (the CLI shows one line)."""
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        missing = [str(e["loc"][-1]) for e in errors
                   if e["type"] == "missing" and tuple(e["loc"][:-1]) == tuple(err["loc"][:-1])]
        msg = "unknown key" + (f" (and {', '.join(missing)} is missing: a misspelling?)" if missing else "")
    loc = _loc(err)
    return f"{prefix}{loc}: {msg}"


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a raw scenario mapping."""
    if len(overrides) > MAX_OVERRIDES:
        raise ScenarioError(f"--set: {len(overrides)} overrides; the limit is {MAX_OVERRIDES}")
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set {clip(item, 60)}: expected key=value, e.g. parallelism.pp=8")
        key, value = item.split("=", 1)
        shown = clip(key, 60)
        try:
            parsed = parse_yaml(value, f"--set {shown}")
        except LoadError as exc:
            raise ScenarioError(str(exc)) from None
        set_key(raw, key, parsed, f"--set {shown}", value)
    return raw


def set_key(raw: dict, key: str, value: Any, where: str, shown_value: str | None = None) -> dict:
    """raw[a][b][c] = value for the dotted key `a.b.c` (list indices as numbers; missing mappings created);
    errors start with `where`."""
    path = key.strip().split(".")
    if len(path) > 16:
        raise ScenarioError(f"{where}: {len(path)} levels of keys; the limit is 16")
    if not all(part.strip() for part in path):
        shown = f"={clip(shown_value, 30)}" if shown_value is not None else ""
        raise ScenarioError(f"{where}{shown}: empty key name; expected key=value, e.g. parallelism.pp=8")
    node = raw
    for part in path[:-1]:
        if isinstance(node, list):
            node = node[_index(part, key, len(node), where)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ScenarioError(f"{where}: '{clip(part, 40)}' is not a mapping")
    leaf = path[-1]
    if isinstance(node, list):
        node[_index(leaf, key, len(node), where)] = value
    else:
        node[leaf] = value
    return raw


MAX_OVERRIDES = 100


def _index(part: str, key: str, length: int, where: str) -> int:
    try:
        i = int(part)
    except ValueError:
        raise ScenarioError(f"{where}: '{clip(part, 40)}' must be a list index") from None
    if not 0 <= i < length:
        raise ScenarioError(f"{where}: index {i} out of range (the list has {length} entries: "
                            f"0…{length - 1})")
    return i


def read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ScenarioError(f"{path}: file not found")
    try:
        raw = load_yaml(path, "scenario file")
    except LoadError as exc:
        raise ScenarioError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping of scenario keys at the top level")
    return raw


def parse_scenario(raw: dict, source: str = "scenario") -> Scenario:
    """Validate a raw mapping. Its `ranges` are checked as ranges here; the scenarios their values make are
    checked where they are costed (costsim/ranges.py), so a command that does not cost them never fails on them."""
    try:
        sc = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(one_line(exc, f"{source}: ")) from None
    sc._raw = copy.deepcopy(raw)
    return sc


def vary(sc: Scenario, values: dict[str, Any], where: str = "ranges") -> Scenario:
    """The scenario with each key of `values` set to its value, its ranges dropped; errors start with `where` and
    name the key and value."""
    raw = sc.raw
    raw.pop("ranges", None)
    label = ", ".join(f"{k}={clip(short(v), 40)}" for k, v in values.items())
    for k, v in values.items():
        set_key(raw, k, v, f"{where} ({clip(label, 100)})")
    try:
        out = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(one_line(exc, f"{where} ({clip(label, 100)}): ")) from None
    out._raw = raw
    return out


def load_scenario(path: str | Path, overrides: list[str] | None = None,
                  ranges: list[str] | None = None) -> Scenario:
    """Read and validate a scenario YAML, with optional `key=value` overrides and `key=[v1, v2, …]` ranges
    added to the file's own (the command line's --range)."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), overrides or [])
    pinned = [normal_key(o.split("=", 1)[0]) for o in overrides or []]
    if pinned and isinstance(raw.get("ranges"), list):
        raw["ranges"] = [r for r in raw["ranges"] if not _pinned(r, pinned)]
    if ranges:
        raw["ranges"] = list(raw.get("ranges") or []) + [parse_range(item) for item in ranges]
    return parse_scenario(raw, str(path))


def _pinned(entry: Any, pinned: list[str]) -> bool:
    """Whether a file's range varies a key that --set pins (then the --set wins and the range is left out)."""
    if not isinstance(entry, dict):
        return False
    keys = entry.get("key")
    keys = [keys] if isinstance(keys, str) else keys if isinstance(keys, list) else []
    return any(isinstance(k, str) and not p.startswith("ranges") and overlaps(normal_key(k), p)
               for k in keys for p in pinned)


def parse_range(item: str) -> dict:
    """`key=[v1, v2, …]` (values as YAML) → a `ranges:` entry sourced to the command line."""
    key, sep, value = item.partition("=")
    shown = clip(key, 60)
    if not sep or not key.strip():
        raise ScenarioError(f"--range {clip(item, 60)}: expected key=[v1, v2, …], e.g. "
                            "phases.0.tokens_per_s_per_request=[20, 22]")
    try:
        values = parse_yaml(value, f"--range {shown}")
    except LoadError as exc:
        raise ScenarioError(str(exc)) from None
    if not isinstance(values, list) or len(values) < 2:
        raise ScenarioError(f"--range {shown}: expected a list of at least 2 values in brackets, e.g. "
                            f"{shown}=[v1, v2]; got {clip(value, 40)}")
    return {"key": key.strip(), "values": values, "source": "--range (command line)"}

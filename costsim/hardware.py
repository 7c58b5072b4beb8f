"""Hardware profiles: per-GPU peaks, measured achievable rates and prices, loaded from hwprofiles/*.yaml.

Every number in a profile file is ``{value, unit, source}``; units are human in YAML (TFLOPS, TB/s, GB/s,
GB, us, W, USD/h) and SI in :class:`HardwareProfile` (FLOP/s, B/s, bytes, s, W, USD/h). GB = 1e9 bytes.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import CostsimError

PRECISIONS = ("bf16", "fp8", "tf32", "fp32")
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p")

# YAML unit -> factor to SI.
_UNIT_TO_SI = {
    "TFLOPS": 1e12, "TB/s": 1e12, "GB/s": 1e9, "GB": 1e9, "GiB": 2.0**30, "MiB": 2.0**20,
    "us": 1e-6, "W": 1.0, "USD/h": 1.0, "count": 1.0, "tokens": 1.0, "MxNxK": 1.0, "fraction": 1.0,
}
_LEAF_KEYS = {"value", "unit", "source"}


def _short(value: Any) -> str:
    from .safe_load import short
    return short(value)


class ReadOnlyDict(dict):
    """A dict that refuses changes: load_profile() hands every caller the same cached profile, so one caller
    writing into its `net_busbw` would change every later estimate in the process. Pickles (dask ships
    profiles to workers) and compares as a plain dict; `dataclasses.replace(hw, net_busbw={...})` still makes a
    changed copy (with_network)."""

    def _refuse(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise TypeError("hardware profile fields are read-only (profiles are shared); use dataclasses.replace")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self):  # noqa: ANN204
        return (ReadOnlyDict, (dict(self),))


class HardwareError(CostsimError):
    """A hardware profile is unknown, missing or malformed (a ValueError with one line)."""


@dataclass(frozen=True)
class _Field:
    """One row of the YAML -> attribute table."""

    path: str                       # dotted YAML path
    attr: str                       # HardwareProfile attribute
    unit: str                       # unit the YAML must state
    kind: str = "float"             # float | int | seq | shape
    keys: tuple[str, ...] = ()      # dict-valued attribute: required sub-keys
    optional: tuple[str, ...] = ()  # dict-valued attribute: sub-keys that may be absent
    zero_ok: bool = False           # allow 0 (else strictly positive)
    required: bool = True           # False: the key may be absent (a list is then empty, a scalar ratio 1.0)


_FIELDS = (
    _Field("compute.num_sms", "num_sms", "count", "int"),
    _Field("compute.sustained_clock_fraction", "sustained_clock_fraction", "fraction", required=False),
    _Field("compute.peak_tflops", "peak_flops", "TFLOPS", keys=("bf16", "tf32", "fp32"), optional=("fp8",)),
    _Field("compute.gemm.mamf_tflops", "gemm_mamf_flops", "TFLOPS", keys=("bf16",), optional=("fp8",)),
    _Field("compute.gemm.mamf_shape", "gemm_mamf_shape", "MxNxK", "shape", optional=("bf16", "fp8")),
    _Field("compute.gemm.tile_m", "gemm_tile_m", "count", "int"),
    _Field("compute.gemm.tile_n", "gemm_tile_n", "count", "int"),
    _Field("compute.gemm.k_half", "gemm_k_half", "count", zero_ok=True),
    _Field("compute.attention.seq_len", "attn_seq_len", "tokens", "seq"),
    _Field("compute.attention.fwd_tflops", "attn_fwd_flops", "TFLOPS", "seq"),
    _Field("compute.attention.bwd_tflops", "attn_bwd_flops", "TFLOPS", "seq"),
    _Field("compute.attention.fa2_tflops", "attn_fa2_flops", "TFLOPS", "seq", required=False),
    _Field("memory.hbm_capacity_gib", "hbm_capacity_bytes", "GiB"),
    _Field("memory.hbm_bw_peak_tbs", "hbm_bw_peak", "TB/s"),
    _Field("memory.hbm_bw_stream_tbs", "hbm_bw_stream", "TB/s"),
    _Field("memory.hbm_bw_elementwise_tbs", "hbm_bw_elementwise", "TB/s"),
    _Field("intra_node.gpus_per_node", "gpus_per_node", "count", "int"),
    _Field("intra_node.link_bw_bidir_gbs", "nvlink_bw_bidir", "GB/s"),
    _Field("intra_node.busbw_gbs", "nvlink_busbw", "GB/s", keys=COLLECTIVES),
    _Field("intra_node.latency_us", "nvlink_latency_s", "us", zero_ok=True),
    _Field("inter_node.link_bw_gbs", "net_bw_per_gpu", "GB/s"),
    _Field("inter_node.busbw_gbs", "net_busbw", "GB/s", keys=COLLECTIVES),
    _Field("inter_node.latency_us", "net_latency_s", "us", zero_ok=True),
    _Field("power.tdp_w", "power_w", "W"),
    _Field("pricing.usd_per_gpu_hour", "price_usd_per_gpu_hour", "USD/h", zero_ok=True),
)
_TEXT_KEYS = ("name", "description")


@dataclass(frozen=True)
class HardwareProfile:
    """One GPU type and its node/network, in SI units (FLOP/s, B/s, bytes, s, W, USD per GPU-hour)."""

    name: str
    description: str
    num_sms: int
    peak_flops: dict[str, float]          # 'bf16','fp8','tf32','fp32' -> FLOP/s, dense (fp8 absent if unsupported)
    gemm_mamf_flops: dict[str, float]     # 'bf16','fp8' -> maximum achievable matmul FLOP/s
    gemm_mamf_shape: dict[str, tuple[int, int, int]]  # precision -> best (M, N, K) where published
    gemm_tile_m: int
    gemm_tile_n: int
    gemm_k_half: float                    # K at which the K-efficiency factor is 1/2
    attn_seq_len: tuple[float, ...]       # tokens, increasing
    attn_fwd_flops: tuple[float, ...]     # FLOP/s, causal hd128 BF16, one per attn_seq_len
    attn_bwd_flops: tuple[float, ...]
    hbm_capacity_bytes: float
    hbm_bw_peak: float                    # B/s
    hbm_bw_stream: float                  # B/s, large streaming kernels
    hbm_bw_elementwise: float             # B/s, framework element-wise ops
    gpus_per_node: int
    nvlink_bw_bidir: float                # B/s
    nvlink_busbw: dict[str, float]        # collective -> busbw B/s (nccl-tests convention)
    nvlink_latency_s: float
    net_bw_per_gpu: float                 # B/s
    net_busbw: dict[str, float]           # collective -> per-GPU busbw B/s
    net_latency_s: float
    power_w: float
    price_usd_per_gpu_hour: float
    sources: dict[str, str]               # dotted YAML path -> source text, for every numeric leaf
    path: str                             # file it was loaded from
    attn_fa2_flops: tuple[float, ...] = ()   # FlashAttention-2 fwd+bwd FLOP/s per attn_seq_len, where published
    sustained_clock_fraction: float = 1.0   # tensor clock in multi-GPU training ÷ the microbenchmarks' clock

    def supports(self, precision: str) -> bool:
        """True if the GPU has a dense peak for this precision ('bf16', 'fp8', 'tf32', 'fp32')."""
        return precision.lower() in self.peak_flops

    # dict fields make the generated hash fail; identity is the file and its name.
    def __hash__(self) -> int:
        return hash((self.path, self.name))


def profiles_dir() -> Path:
    """Directory of shipped profiles: $COSTSIM_HWPROFILES, else hwprofiles/ (the checkout's or the installed copy)."""
    override = os.environ.get("COSTSIM_HWPROFILES")
    if override:
        return Path(override)
    from .paths import hwprofiles_dir
    return hwprofiles_dir()


def list_profiles() -> list[str]:
    """Names (file stems) of the profiles in profiles_dir(), sorted."""
    directory = profiles_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str, base_dir: Path | None = None) -> HardwareProfile:
    """Load a profile by name (from profiles_dir()) or by path (.yaml/.yml or containing '/'); a relative path is
    looked up next to the scenario (`base_dir`) first, then in the working directory (e.g. from `--set`)."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_absolute() and base_dir is not None and (Path(base_dir) / path).is_file():
            path = Path(base_dir) / path   # relative to the scenario file first, then to the working directory
        elif not path.is_absolute() and base_dir is not None and not path.is_file():
            path = Path(base_dir) / path
        if not path.is_file():
            what = "is a directory, not a hardware profile" if path.is_dir() else \
                "not a regular file (a FIFO or device), not a hardware profile" if path.exists() else \
                "hardware profile file not found"
            raise HardwareError(f"{path}: {what}")
    else:
        path = profiles_dir() / f"{text}.yaml"
        if not path.is_file():
            known = ", ".join(list_profiles()) or "(none)"
            raise HardwareError(f"cluster.gpu: unknown hardware profile '{text}'; known: {known}")
    return _parse_cached(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _parse_cached(path: str, mtime_ns: int) -> HardwareProfile:
    """Parse once per file version: re-reading the YAML took 13.6 ms of a 20 ms estimate (issue 8). Every
    caller shares the returned profile: the dataclass is frozen and its dict fields are ReadOnlyDicts."""
    return _parse(Path(path))


def with_network(hw: HardwareProfile, gbps_per_gpu: float) -> HardwareProfile:
    """The same GPU on another scale-out network: inter-node busbw scaled by the line-rate ratio (the profile's
    busbw figures are NIC-bound, so they scale with the NIC), e.g. 1600 Gb/s RoCE per 8-GPU node = 200."""
    ratio = gbps_per_gpu / 8 * 1e9 / hw.net_bw_per_gpu
    return replace(hw, net_bw_per_gpu=hw.net_bw_per_gpu * ratio,
                   net_busbw={k: v * ratio for k, v in hw.net_busbw.items()},
                   name=f"{hw.name}@{gbps_per_gpu:g}Gbps")


def _parse(path: Path) -> HardwareProfile:
    where = str(path)
    from .safe_load import LoadError, load_yaml
    try:
        raw = load_yaml(path, "hardware profile")
    except LoadError as exc:
        raise HardwareError(f"cannot read hardware profile: {exc}") from None
    if not isinstance(raw, dict):
        raise HardwareError(f"{where}: hardware profile must be a YAML mapping")
    _check_no_unknown_keys(raw, where)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in _TEXT_KEYS:
        text = raw.get(key)
        if not isinstance(text, str) or not text.strip():
            raise HardwareError(f"{where}: {key}: required, a non-empty string")
        values[key] = text.strip()
    for field in _FIELDS:
        node = _lookup(raw, field.path)
        if field.keys or field.optional:
            if node is None and field.keys:
                raise HardwareError(f"{where}: {field.path}: missing required key")
            node = node if node is not None else {}
            if not isinstance(node, dict) or _is_leaf(node):
                names = ", ".join(field.keys + field.optional)
                raise HardwareError(f"{where}: {field.path}: must be a mapping of {names}")
            entry = {}
            for sub in field.keys + field.optional:
                if sub not in node:
                    if sub in field.keys:
                        raise HardwareError(f"{where}: {field.path}.{sub}: missing required key")
                    continue
                entry[sub] = _leaf(node[sub], f"{field.path}.{sub}", field, where, sources)
            values[field.attr] = ReadOnlyDict(entry)
        else:
            if node is None and not field.required:
                values[field.attr] = () if field.kind == "seq" else 1.0   # optional scalars are ratios
                continue
            if node is None:
                raise HardwareError(f"{where}: {field.path}: missing required key")
            values[field.attr] = _leaf(node, field.path, field, where, sources)
    profile = HardwareProfile(**values, sources=ReadOnlyDict(sources), path=where)
    _check_consistency(profile, where)
    return profile


def _lookup(raw: dict, dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or _is_leaf(node) or part not in node:
            return None
        node = node[part]
    return node


def _is_leaf(node: Any) -> bool:
    return isinstance(node, dict) and "value" in node


def _known_paths() -> tuple[frozenset[str], frozenset[str]]:
    """(leaf paths, inner-node paths) allowed in a profile file."""
    leaves = set(_TEXT_KEYS)
    for field in _FIELDS:
        subs = field.keys + field.optional
        if subs:
            leaves.update(f"{field.path}.{s}" for s in subs)
        else:
            leaves.add(field.path)
    inner = {".".join(leaf.split(".")[:i]) for leaf in leaves for i in range(1, leaf.count(".") + 1)}
    return frozenset(leaves), frozenset(inner)


_LEAF_PATHS, _INNER_PATHS = _known_paths()


def _check_no_unknown_keys(node: dict, where: str, prefix: str = "") -> None:
    for key, child in node.items():
        path = f"{prefix}{key}"
        if path in _LEAF_PATHS:
            continue
        if path not in _INNER_PATHS:
            raise HardwareError(f"{where}: {path}: unknown key")
        if _is_leaf(child) or not isinstance(child, dict):
            raise HardwareError(f"{where}: {path}: must be a mapping, not a value")
        _check_no_unknown_keys(child, where, f"{path}.")


def _leaf(node: Any, path: str, field: _Field, where: str, sources: dict[str, str]) -> Any:
    """Validate one {value, unit, source} leaf, record its source, return the value in SI."""
    if not isinstance(node, dict):
        if _is_number(node) or (isinstance(node, list) and node):
            raise HardwareError(f"{where}: {path}: every number needs a source ({{value, unit, source}})")
        raise HardwareError(f"{where}: {path}: must be a mapping {{value, unit, source}}")
    extra = set(node) - _LEAF_KEYS
    if extra:
        raise HardwareError(f"{where}: {path}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    if "value" not in node:
        raise HardwareError(f"{where}: {path}: missing value")
    source = node.get("source")
    if not isinstance(source, str) or not source.strip():
        raise HardwareError(f"{where}: {path}: every number needs a source")
    if node.get("unit") != field.unit:
        raise HardwareError(f"{where}: {path}: unit must be '{field.unit}', got {_short(node.get('unit'))}")
    sources[path] = source.strip()
    value, scale = node["value"], _UNIT_TO_SI[field.unit]
    if field.kind in ("seq", "shape"):
        if not isinstance(value, list) or not value:
            raise HardwareError(f"{where}: {path}: value must be a non-empty list of numbers")
        if field.kind == "shape" and len(value) != 3:
            raise HardwareError(f"{where}: {path}: value must be [M, N, K]")
        items = [_number(v, path, where, field.kind == "shape", False) for v in value]
        return tuple(items) if field.kind == "shape" else tuple(v * scale for v in items)
    number = _number(value, path, where, field.kind == "int", field.zero_ok)
    return number if field.kind == "int" else number * scale


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any, path: str, where: str, integer: bool, zero_ok: bool) -> float:
    if not _is_number(value) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise HardwareError(f"{where}: {path}: value must be {kind}, got {_short(value)}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = "non-negative" if zero_ok else "positive"
        raise HardwareError(f"{where}: {path}: value must be {bound}, got {_short(value)}")
    if value and not PROFILE_MIN <= value <= PROFILE_MAX:   # in the profile's human units (TFLOPS, GB/s, us, …)
        raise HardwareError(f"{where}: {path}: value {_short(value)} is outside {PROFILE_MIN:g} … {PROFILE_MAX:g}")
    return value if integer else float(value)


PROFILE_MIN, PROFILE_MAX = 1e-6, 1e9    # shipped profiles span 0.8 … 16,384


def _check_consistency(p: HardwareProfile, where: str) -> None:
    """Cross-field checks: curve lengths, ordering, achievable <= peak."""
    n = len(p.attn_seq_len)
    if p.attn_fa2_flops and len(p.attn_fa2_flops) != n:
        raise HardwareError(f"{where}: compute.attention.fa2_tflops: needs one value per seq_len ({n})")
    if len(p.attn_fwd_flops) != n or len(p.attn_bwd_flops) != n:
        raise HardwareError(f"{where}: compute.attention: fwd_tflops and bwd_tflops need one value per seq_len ({n})")
    if any(b <= a for a, b in zip(p.attn_seq_len, p.attn_seq_len[1:])):
        raise HardwareError(f"{where}: compute.attention.seq_len: must be strictly increasing")
    for prec, flops in p.gemm_mamf_flops.items():
        if prec not in p.peak_flops:
            raise HardwareError(f"{where}: compute.gemm.mamf_tflops.{prec}: no compute.peak_tflops.{prec}")
        if flops > p.peak_flops[prec]:
            raise HardwareError(f"{where}: compute.gemm.mamf_tflops.{prec}: exceeds the peak")
    for prec in p.gemm_mamf_shape:
        if prec not in p.gemm_mamf_flops:
            raise HardwareError(f"{where}: compute.gemm.mamf_shape.{prec}: no compute.gemm.mamf_tflops.{prec}")
    for key in ("hbm_bw_stream_tbs", "hbm_bw_elementwise_tbs"):
        if getattr(p, key.removesuffix("_tbs")) > p.hbm_bw_peak:
            raise HardwareError(f"{where}: memory.{key}: exceeds memory.hbm_bw_peak_tbs")

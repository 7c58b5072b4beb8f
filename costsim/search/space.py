"""The plan space `costsim search` enumerates: the scenario's `search:` block or a `--space` file, over defaults.

Every dimension may be fixed (a scalar) or listed; what is not given takes a default that is sensible for the
model (powers of two within its limits). `wide` is the named benchmark space of issue 8: every dimension
open, `num_gpus` from a quarter to four times the scenario's and every shipped GPU profile.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ScenarioError

PARALLEL_KEYS = ("tp", "pp", "cp", "ep", "etp", "zero_stage", "micro_batch_size", "recompute", "schedule",
                 "virtual_stages", "sequence_parallel")   # keys under `parallelism:` (plus the derived dp)
PRICE_KEY = "usd_per_gpu_hour"          # searched in the result layer (with_prices), not by the engines
DIMENSIONS = ("gpu", "num_gpus", *PARALLEL_KEYS, PRICE_KEY)
MAX_USD_PER_GPU_HOUR = 10_000           # the scenario's pricing.usd_per_gpu_hour bound (costsim/scenario.py)

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
                                        "own price unless pricing.usd_per_gpu_hour pins one or "
                                        "usd_per_gpu_hour below lists prices")
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
    usd_per_gpu_hour: float | list[float] | None = Field(
        default=None, description="price(s) per GPU-hour: every plan costed at each (its plan gets the key "
        "usd_per_gpu_hour), over the GPU's own price and the scenario's pricing.usd_per_gpu_hour")

    @field_validator("*", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _positive_list(v)

    @field_validator("usd_per_gpu_hour", mode="before")
    @classmethod
    def _price_is_a_number(cls, v: Any) -> Any:
        for x in (v if isinstance(v, list) else [v] if v is not None else []):
            if isinstance(x, bool) or not isinstance(x, (int, float)):   # lax mode would take true or "2.5"
                raise ValueError(f"{str(x)[:40]!r} is not a number (USD per GPU-hour)")
        return v

    @field_validator("usd_per_gpu_hour")
    @classmethod
    def _price(cls, v: Any) -> Any:
        for x in (v if isinstance(v, list) else [v] if v is not None else []):
            if not math.isfinite(x) or not 0 < x <= MAX_USD_PER_GPU_HOUR:
                raise ValueError(f"{x} must be a price above 0 and up to {MAX_USD_PER_GPU_HOUR:,} USD per GPU-hour")
        return v

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
        # None: each GPU at its own price, or at the scenario's pricing.usd_per_gpu_hour where it pins one
        PRICE_KEY: [None],
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


def with_prices(prices: list, evaluated: int, feasible: Sequence, rejected: dict[str, int]
                ) -> tuple[int, Sequence, dict[str, int]]:
    """Every plan at every listed price (`usd_per_gpu_hour` in the space), as the engines' (evaluated,
    feasible, rejected) after the merge of all parts. A price changes no plan's time, memory or feasibility,
    only its dollars: cost_usd = gpu_hours × price, the very product `estimate` forms (estimate._figures), so
    a priced plan equals `estimate --set pricing.usd_per_gpu_hour=P` of it bit for bit. Hence the plans are
    costed once and priced here rather than once per price in the engines. Each (plan, price) counts as a
    candidate: evaluated and the rejected counts are multiplied by the number of prices; the order is the
    engines' with price innermost. No price listed ([None]): unchanged, no usd_per_gpu_hour key in the plans."""
    prices = [p for p in prices if p is not None]
    if not prices:
        return evaluated, feasible, rejected
    k = len(prices)
    rejected = {reason: count * k for reason, count in rejected.items()}
    if isinstance(feasible, list):
        feasible = [_priced(r, p) for r in feasible for p in prices]
    else:                         # a column table (costsim.search.fast): stay lazy, no object per plan
        feasible = PricedTable(feasible, prices)
    return evaluated * k, feasible, rejected


def _priced(result, price: float):
    """A PlanResult at another price: the plan carries it, the dollars follow it."""
    return dataclasses.replace(result, plan={**result.plan, PRICE_KEY: price}, cost_usd=result.gpu_hours * price)


class PricedTable(Sequence):
    """`base` (feasible plans, a sequence of PlanResult) × `prices`, row i = plan i // k at price i % k; made
    a PlanResult only when read. Offers what a column table offers (`cols`, `order`, `pareto_indices`,
    `rows`), computed from the base's columns where it has them (`cols`: numpy arrays, one row per plan)."""

    def __init__(self, base: Sequence, prices: list[float]):
        self.base, self.prices = base, list(prices)
        self._cols = None

    def __len__(self) -> int:
        return len(self.base) * len(self.prices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        plan, price = divmod(i, len(self.prices))
        return _priced(self.base[plan], self.prices[price])

    def rows(self, idx) -> list:
        return [self[int(i)] for i in idx]

    @property
    def cols(self) -> dict:
        """The base's columns, each repeated per price (shape (len(self),)), priced cost and the price."""
        if self._cols is None:
            import numpy as np
            k = len(self.prices)
            base = getattr(self.base, "cols", None)
            if base is None:      # plain rows: the figure columns only
                base = {f: np.array([getattr(r, f) for r in self.base], dtype=float)
                        for f in ("wall_clock_days", "gpu_hours")}
            cols = {key: np.repeat(v, k) for key, v in base.items()}
            cols[PRICE_KEY] = np.tile(np.asarray(self.prices, dtype=float), len(self.base))
            cols["cost_usd"] = cols["gpu_hours"] * cols[PRICE_KEY]
            self._cols = cols
        return self._cols

    def order(self, objective: str):
        """Indices sorted (stably) by (cost, days), or by (days, cost) for objective "time"."""
        import numpy as np
        cost, days = self.cols["cost_usd"], self.cols["wall_clock_days"]
        return np.lexsort((days, cost)) if objective != "time" else np.lexsort((cost, days))

    def pareto_indices(self):
        """Plans no other beats on both cost and days: by ascending (cost, days), each faster than all before."""
        import numpy as np
        if not len(self):
            return np.zeros(0, np.int64)
        o = self.order("cost")
        days = self.cols["wall_clock_days"][o]
        best_before = np.concatenate(([np.inf], np.minimum.accumulate(days)[:-1]))
        return o[days < best_before]


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

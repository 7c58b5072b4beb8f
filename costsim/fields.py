"""Field types and bounds shared by the scenario's models (scenario.py, phase_kinds.py)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is a boolean; expected a number")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]          # YAML true/false are not 1/0 here
Float = Annotated[float, BeforeValidator(_no_bool)]
MAX_SIZE = 1_000_000            # any parallel size
MAX_TOKENS = 1e17               # ~7,000 × DeepSeek-V3's 14.8T


class Strict(BaseModel):
    """Unknown keys are errors (a misspelled key is never silently dropped); values are frozen."""
    model_config = ConfigDict(extra="forbid", frozen=True)

"""The scenario's assumption ranges (costsim/ranges.py) as JSON, CSV columns and a terminal table."""
from __future__ import annotations

import json

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .ranges import FIGURES, Ranges

ABOUT = ("the scenario's `ranges:` (inputs it is not sure of, each a key, the values it may take and their "
         "source): the estimate at each value with the rest as written, and the min and max over every "
         "combination of the values (costsim/ranges.py). Separate from error_band, the model's own error.")
CSV_KEYS = tuple(f"{f}_range_{end}" for f in FIGURES for end in ("min", "max"))


def _num(x: float) -> float:
    return float(x)


def _value(v):
    """A range value as JSON (YAML values are JSON already; anything else as text)."""
    try:
        json.dumps(v, allow_nan=False)
        return v
    except (TypeError, ValueError):
        return str(v)


def ranges_dict(r: Ranges | None) -> dict | None:
    if r is None:
        return None
    return {
        "what": ABOUT,
        "combinations": r.combinations,
        "keys": [{"key": k.key, "source": k.source,
                  "values": [{"value": _value(o.values[k.label])} | {f: _num(o.total[f]) for f in FIGURES}
                             for o in k.outcomes]} for k in r.keys],
        "total": {f: [_num(lo), _num(hi)] for f, (lo, hi) in r.total.items()},
        "by_phase": {n: {f: [_num(lo), _num(hi)] for f, (lo, hi) in figs.items()} for n, figs in r.by_phase.items()},
        "lowest_cost_at": {k: _value(v) for k, v in r.lowest.items()},
        "highest_cost_at": {k: _value(v) for k, v in r.highest.items()},
    }


def csv_keys(r: Ranges | None, phase: str | None) -> dict:
    """{gpu_hours_range_min: …, …} of a phase (None: the total); empty without ranges."""
    if r is None:
        return {}
    span = r.total if phase is None else r.by_phase.get(phase)
    if span is None:
        return {}
    return {f"{f}_range_{end}": span[f][i] for f in FIGURES for i, end in enumerate(("min", "max"))}


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    text = json.dumps(_value(v), ensure_ascii=False) if not isinstance(v, str) else v
    return text if len(text) <= 28 else text[:27] + "…"


def ranges_render(r: Ranges, base_cost: float, fmt_hours, fmt_days, fmt_usd) -> Group:
    """Each range's values (cost against the scenario as written), then the span over all combinations."""
    t = Table(title="assumption ranges (the scenario's `ranges:`; each value with the rest as written)",
              title_justify="left", title_style="bold", box=None, pad_edge=False)
    for col, justify in (("key", "left"), ("value", "right"), ("GPU-h", "right"), ("days", "right"),
                         ("cost", "right"), ("vs scenario", "right")):
        t.add_column(col, justify=justify, overflow="fold")
    for k in r.keys:
        for i, o in enumerate(k.outcomes):
            rel = o.total["cost_usd"] / base_cost - 1 if base_cost else 0.0
            t.add_row(k.label if i == 0 else "", _short(o.values[k.label]), fmt_hours(o.total["gpu_hours"]),
                      fmt_days(o.total["wall_clock_days"]), fmt_usd(o.total["cost_usd"]), f"{100 * rel:+.1f}%")
    sources = [Text.assemble(f"{k.label}: ", (k.source or "no source given", "dim")) for k in r.keys]
    (hlo, hhi), (dlo, dhi), (clo, chi) = (r.total[f] for f in FIGURES)
    what = "combination" if r.combinations == 1 else "combinations"
    span = Text.assemble(
        ("all ranges together ", "bold"), f"{fmt_hours(hlo)}–{fmt_hours(hhi)} GPU-h · {fmt_days(dlo)}–"
        f"{fmt_days(dhi)} days · {fmt_usd(clo)}–{fmt_usd(chi)}",
        (f"  (min–max over {r.combinations} {what}; lowest cost at "
         f"{', '.join(f'{k}={_short(v)}' for k, v in r.lowest.items())})", "dim"))
    return Group(Text(""), t, *sources, span)


__all__ = ["ABOUT", "CSV_KEYS", "csv_keys", "ranges_dict", "ranges_render"]

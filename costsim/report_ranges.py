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


def _value(v):
    """A range value as JSON (YAML values are JSON already; anything else as text)."""
    try:
        json.dumps(v, allow_nan=False)
        return v
    except (TypeError, ValueError):
        return str(v)


def _at(r: Ranges, values: dict | None) -> list | None:
    """A combination as [{key, value}] in the ranges' order (key as the scenario gives it: a string or a list)."""
    if values is None:
        return None
    return [{"key": k.key, "value": _value(values[k.label])} for k in r.keys]


def _point(o) -> dict:
    figures = {f: (None if o.error else float(o.total[f])) for f in FIGURES}
    return figures | ({"error": o.error} if o.error else {})


def ranges_dict(r: Ranges | None) -> dict | None:
    if r is None:
        return None
    span = (lambda d: None if d is None else {f: [float(lo), float(hi)] for f, (lo, hi) in d.items()})
    return {
        "what": ABOUT,
        "combinations": r.combinations,
        "runnable": r.runnable,
        "keys": [{"key": k.key, "source": k.source,
                  "values": [{"value": _value(o.values[k.label])} | _point(o) for o in k.outcomes]}
                 for k in r.keys],
        "total": span(r.total),
        "by_phase": {n: span(figs) for n, figs in r.by_phase.items()},
        "lowest_cost_at": _at(r, r.lowest),
        "highest_cost_at": _at(r, r.highest),
        "cannot_run": [{"at": _at(r, o.values), "error": o.error} for o in r.failed],
    }


def csv_keys(r: Ranges | None, phase: str | None) -> dict:
    """{gpu_hours_range_min: …, …} of a phase (None: the total); empty without ranges."""
    if r is None:
        return {}
    span = r.total if phase is None else r.by_phase.get(phase)
    if not span:
        return {}
    return {f"{f}_range_{end}": span[f][i] for f in FIGURES for i, end in enumerate(("min", "max"))}


def _short(v) -> str:
    """A value for a table cell: floats to 10 significant digits (values a user tells apart stay apart)."""
    if isinstance(v, float):
        return f"{v:.10g}"
    text = v if isinstance(v, str) else json.dumps(_value(v), ensure_ascii=False)
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
            head = (k.label if i == 0 else "", _short(o.values[k.label]))
            if o.error:
                t.add_row(*head, "cannot run", "", "", "")
                continue
            rel = o.total["cost_usd"] / base_cost - 1 if base_cost else 0.0
            t.add_row(*head, fmt_hours(o.total["gpu_hours"]), fmt_days(o.total["wall_clock_days"]),
                      fmt_usd(o.total["cost_usd"]), f"{100 * rel:+.1f}%")
    sources = [Text.assemble(f"{k.label}: ", (k.source or "no source given", "dim")) for k in r.keys]
    what = "combination" if r.combinations == 1 else "combinations"
    if r.total is None:
        span = Text.assemble(("all ranges together ", "bold"), f"none of the {r.combinations} {what} can run")
    else:
        (hlo, hhi), (dlo, dhi), (clo, chi) = (r.total[f] for f in FIGURES)
        runs = f"{r.runnable} of {r.combinations} {what}" if r.failed else f"{r.combinations} {what}"
        span = Text.assemble(
            ("all ranges together ", "bold"), f"{fmt_hours(hlo)}–{fmt_hours(hhi)} GPU-h · {fmt_days(dlo)}–"
            f"{fmt_days(dhi)} days · {fmt_usd(clo)}–{fmt_usd(chi)}",
            (f"  (min–max over {runs}; lowest cost at "
             f"{', '.join(f'{k}={_short(v)}' for k, v in r.lowest.items())})", "dim"))
    notes = []
    if r.failed:
        first = r.failed[0]
        at = ", ".join(f"{k}={_short(v)}" for k, v in first.values.items())
        notes.append(Text(f"{len(r.failed)} of {r.combinations} {what} cannot run, left out of the span; e.g. "
                          f"{at}: {first.error}", style="dim"))
    return Group(Text(""), t, *sources, span, *notes)


__all__ = ["ABOUT", "CSV_KEYS", "csv_keys", "ranges_dict", "ranges_render"]

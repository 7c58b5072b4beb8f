"""Presenting results: Estimate → JSON-ready dict or rich tables; hardware profiles; validation cases.

Pure presentation: nothing here computes a cost. SI in the objects, human units (GiB, ms, K GPU-h, $M) only here.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

import yaml
from rich import box
from rich.columns import Columns
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .estimate import Estimate, PhaseEstimate
from .hardware import HardwareProfile
from .model import ModelSpec
from .report_ranges import CSV_KEYS as RANGE_CSV_KEYS, csv_keys as range_csv_keys, ranges_dict, ranges_render

_BREAKDOWN_KEYS = ("forward", "backward", "bubble", "exposed_comm", "optimizer")
_MEMORY_KEYS = ("weights", "gradients", "optimizer", "activations", "reserved", "total", "capacity")
_PER_MB = (("f_compute", "F compute"), ("b_compute", "B compute (incl. recompute)"), ("w", "W (weight grads)"),
           ("exposed_f", "F exposed comm"), ("exposed_b", "B exposed comm"), ("pair", "F&B pair (DualPipe)"))


# ---- numbers for humans ----

def num(x: Any) -> float | None:
    """Plain Python float (numpy scalars converted); None for NaN/inf so the JSON stays valid."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def fmt_si(x: float, digits: int = 3) -> str:
    """14.8e12 → '14.8T', 62.9e9 → '62.9B' (counts: tokens, parameters)."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{unit}"
    return f"{x:.{digits}g}"


def fmt_hours(h: float) -> str:
    """GPU-hours as papers print them: 2,664K; 19.5K; 5,000."""
    if h >= 100e3:
        return f"{h / 1e3:,.0f}K"
    if h >= 10e3:
        return f"{h / 1e3:.1f}K"
    return f"{h:,.0f}"


def fmt_usd(x: float) -> str:
    """$5.33M, $39.1K, $950."""
    if x >= 1e6:
        return f"${x / 1e6:,.2f}M"
    if x >= 1e3:
        return f"${x / 1e3:.1f}K"
    return f"${x:,.0f}"


def fmt_s(x: float) -> str:
    """Seconds: 13.83, 136.2, 0.08."""
    return f"{x:,.1f}" if x >= 100 else f"{x:.2f}"


def fmt_days(d: float) -> str:
    return f"{d:,.1f}" if d >= 10 else f"{d:.2f}"


def fmt_pct(x: float) -> str:
    return f"{100 * x:.1f}%"


# ---- JSON ----

def estimate_to_dict(est: Estimate) -> dict:
    """The whole estimate as plain JSON types (floats, ints, str, None), phases then totals."""
    bands = phase_bands(est)
    return {
        "scenario": est.scenario,
        "model": _model_dict(est.model),
        "gpu": est.hardware.name,
        "num_gpus": int(est.num_gpus),
        "usd_per_gpu_hour": num(est.usd_per_gpu_hour),
        "usd_per_gpu_hour_source": "scenario" if getattr(est, "price_pinned", False) else "profile",
        "profile_usd_per_gpu_hour": num(est.hardware.price_usd_per_gpu_hour),
        "efficiency": {k: num(v) for k, v in asdict(est.efficiency).items()},
        "phases": [phase_to_dict(p) | _band_keys(b) for p, b in zip(est.phases, bands)],
        "total": {"gpu_hours": num(est.gpu_hours), "wall_clock_days": num(est.wall_clock_days),
                  "cost_usd": num(est.cost_usd), "energy_mwh": num(est.energy_mwh)}
                 | {k: v for k, v in _band_keys(_total_band(bands)).items() if not k.startswith("step_time")},
        "simulation": _simulation_dict(est),
        "error_band": _band_about(est),
        "assumption_ranges": ranges_dict(est.ranges),
    }


# ---- CSV: a row per phase, then the total (the JSON's figures, same names) ----

CSV_COLUMNS = ("scenario", "phase", "reported", "gpu", "num_gpus", "usd_per_gpu_hour", "tokens", "steps",
               "step_time_s", "step_time_s_p10", "step_time_s_p90", "gpu_hours", "gpu_hours_p10", "gpu_hours_p90",
               "wall_clock_days", "wall_clock_days_p10", "wall_clock_days_p90", "cost_usd", "cost_usd_p10",
               "cost_usd_p90", "energy_mwh", "mfu", "model_tflops_per_gpu", "hardware_tflops_per_gpu",
               "tokens_per_s_per_gpu", "simulated_step_time_s", "kind") + RANGE_CSV_KEYS


def estimate_to_csv(est: Estimate) -> str:
    import csv
    import io
    d = estimate_to_dict(est)
    common = {"scenario": d["scenario"], "gpu": d["gpu"], "num_gpus": d["num_gpus"],
              "usd_per_gpu_hour": d["usd_per_gpu_hour"]}
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    r = est.ranges
    for p in d["phases"]:
        w.writerow(common | {k: p.get(k) for k in CSV_COLUMNS if k in p} | {"phase": p["name"]}
                   | range_csv_keys(r, p["name"]))
    w.writerow(common | {"phase": "total", "reported": ""} | d["total"] | range_csv_keys(r, None))
    return buf.getvalue()


# ---- the model's own error: p10–p90 from the held-out validation errors (costsim/uncertainty.py) ----

_BAND_FIGURES = ("step_time_s", "gpu_hours", "wall_clock_days", "cost_usd")


def phase_bands(est: Estimate) -> list[dict | None]:
    """Per phase {figure: (p10, p90)} for step time, GPU-hours, days and dollars; a reported phase is given
    (p10 = p90 = the figure, no step time); None for every phase when fitted.json has no `error_band`."""
    from .uncertainty import factors, load_band
    band = load_band()
    out: list[dict | None] = []
    for p in est.phases:
        f = factors(band, p.plan.precision if p.plan else None)
        if f is None or p.kind != "train":   # the held-out errors are of training steps only
            out.append(None)
        elif p.reported:
            out.append({k: (getattr(p, k), getattr(p, k)) for k in _BAND_FIGURES[1:]} | {"step_time_s": None})
        else:
            out.append({k: (getattr(p, k) * f[0], getattr(p, k) * f[1]) for k in _BAND_FIGURES})
    return out


def _total_band(bands: list[dict | None]) -> dict | None:
    """Phases add up at the same quantile: one model, so its error moves every phase the same way."""
    if not bands or any(b is None for b in bands):
        return None
    return {k: tuple(sum(b[k][i] for b in bands) for i in (0, 1)) for k in _BAND_FIGURES[1:]}


def _band_keys(b: dict | None) -> dict:
    keys = {}
    for k in _BAND_FIGURES:
        lo_hi = b.get(k) if b else None
        keys[f"{k}_p10"], keys[f"{k}_p90"] = (num(lo_hi[0]), num(lo_hi[1])) if lo_hi else (None, None)
    return keys


def _band_cell(b: dict | None) -> str:
    if not b:
        return "—"
    lo, hi = b["gpu_hours"]
    return fmt_hours(lo) if lo == hi else f"{fmt_hours(lo)}–{fmt_hours(hi)}"


def _regimes_text(est: Estimate) -> str:
    about = _band_about(est) or {}
    seen = dict.fromkeys(f"{r['regime']}: {r['cases']} cases from {r['sources']} sources"
                         for r in about.get("by_phase", {}).values())
    return "; ".join(seen)


def _band_about(est: Estimate) -> dict | None:
    from .uncertainty import load_band, regime_for
    band = load_band()
    if not band:
        return None
    regimes = {}
    for p in est.phases:
        if p.plan:
            name = regime_for(band, p.plan.precision)
            r = band["regimes"][name]
            regimes[p.name] = {"regime": name, "cases": r["cases"], "sources": r["sources"],
                               "p10_factor": r["p10"], "p90_factor": r["p90"]}
    return {"what": "p10–p90 of the model's own error: held-out (leave-one-source-out) errors of the "
                    "validation set, every source weighed the same (costsim/uncertainty.py)",
            "by_phase": regimes}


def _simulation_dict(est: Estimate) -> dict | None:
    """The whole-run Monte-Carlo (simulated phases only; reported phases are not re-simulated)."""
    run = getattr(est, "run", None)
    if run is None:
        return None
    out = run.as_dict()
    reported = sum(p.gpu_hours for p in est.phases if p.reported)
    out["gpu_hours_with_reported_phases"] = {k: num(v + reported) for k, v in out["gpu_hours"].items()}
    out["cost_usd"] = {k: num((v + reported) * est.usd_per_gpu_hour) for k, v in out["gpu_hours"].items()}
    out["with_model_error"] = _simulation_with_model_error(est)
    return out


def _simulation_with_model_error(est: Estimate) -> dict | None:
    """p10/p90 of the failure Monte-Carlo combined with the model's own error (costsim/uncertainty.py)."""
    from .uncertainty import combine, load_band
    band = load_band()
    phases = [(p.gpu_hours, p.plan.precision) for p in est.phases if not p.reported and p.plan]
    hours = combine([r.gpu_hours for r in est.run.replicates], phases, band)
    days = combine([r.wall_clock_s / 86400 for r in est.run.replicates], phases, band)
    if hours is None or days is None:
        return None
    reported = [p for p in est.phases if p.reported]
    rep_h, rep_d = sum(p.gpu_hours for p in reported), sum(p.wall_clock_days for p in reported)

    def pair(lo_hi: tuple[float, float], add: float = 0.0, scale: float = 1.0) -> dict:
        return {"p10": num((lo_hi[0] + add) * scale), "p90": num((lo_hi[1] + add) * scale)}
    return {"gpu_hours": pair(hours), "gpu_hours_with_reported_phases": pair(hours, rep_h),
            "wall_clock_days": pair(days), "wall_clock_days_with_reported_phases": pair(days, rep_d),
            "cost_usd": pair(hours, rep_h, est.usd_per_gpu_hour)}


def _model_dict(m: ModelSpec) -> dict:
    return {"name": m.name, "total_params": int(m.total_params()), "active_params": int(m.active_params())}


def phase_to_dict(p: PhaseEstimate) -> dict:
    """One phase; a reported phase has only its given GPU-hours and what follows from them, the rest null.
    Generate, rl and serve phases carry their own figures (costsim/serving.py, costsim/rl.py) and null for
    the training-step keys."""
    if p.kind != "train":
        return _other_phase_dict(p)
    sim = not p.reported
    out = {
        "name": p.name, "kind": p.kind, "reported": p.reported,
        "tokens": num(p.tokens) if sim else None, "steps": int(p.steps) if sim else None,
        "step_time_s": num(p.step_time_s) if sim else None,
        "gpu_hours": num(p.gpu_hours), "wall_clock_days": num(p.wall_clock_days), "cost_usd": num(p.cost_usd),
        "energy_mwh": num(p.energy_mwh),
    }
    for key in ("mfu", "model_tflops_per_gpu", "hardware_tflops_per_gpu", "tokens_per_s_per_gpu",
                "model_flops_per_token"):
        out[key] = num(getattr(p, key)) if sim else None
    bd, mem = p.breakdown, p.memory
    out["step_breakdown_s"] = {k: num(v) for k, v in bd.as_dict().items()} if bd else None
    out["exposed_comm_by_stream_s"] = {k: num(v) for k, v in p.exposed_by_class.items()} if bd else None
    out["per_microbatch_s"] = ({"critical_rank": int(bd.critical_rank)}
                               | {k: num(getattr(bd.per_mb, k)) for k, _ in _PER_MB}) if bd else None
    sim = getattr(p, "simulated", None)
    out["simulated_step_time_s"] = num(sim.step_time_s) if sim else None
    out["link_busy_s_per_step"] = {k: num(v) for k, v in p.link_busy_s.items()} if p.link_busy_s else None
    out["dualpipe_phases_s"] = ({k: num(v) for k, v in bd.dualpipe_phases.items()}
                                if bd and bd.dualpipe_phases else None)
    out["memory_gib_per_gpu"] = {k: num(v) for k, v in mem.gib().items()} if mem else None
    out["plan"] = _plan_dict(p) if p.plan else None
    out["stages"] = [list(ch) for ch in p.layout] if p.layout else None
    return out


_TRAIN_ONLY = ("mfu", "model_tflops_per_gpu", "hardware_tflops_per_gpu", "model_flops_per_token",
               "step_breakdown_s", "exposed_comm_by_stream_s", "per_microbatch_s", "simulated_step_time_s",
               "link_busy_s_per_step", "dualpipe_phases_s", "memory_gib_per_gpu", "plan", "stages")


def _other_phase_dict(p: PhaseEstimate) -> dict:
    rl = p.kind == "rl"
    out = {"name": p.name, "kind": p.kind, "reported": False, "tokens": num(p.tokens),
           "steps": int(p.steps) if rl else None, "step_time_s": num(p.step_time_s) if rl else None,
           "gpu_hours": num(p.gpu_hours), "wall_clock_days": num(p.wall_clock_days), "cost_usd": num(p.cost_usd),
           "energy_mwh": num(p.energy_mwh), "tokens_per_s_per_gpu": num(p.tokens_per_s_per_gpu),
           "num_gpus": num(p.num_gpus) if p.num_gpus is not None else None}   # serve: the period's average
    out |= {k: None for k in _TRAIN_ONLY}
    out |= {k: _plain(v) for k, v in p.figures.items()}
    return out


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (bool, str)) or v is None:
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    return num(float(v))


def _plan_dict(p: PhaseEstimate) -> dict:
    plan = p.plan
    return asdict(plan) | {"num_microbatches": int(plan.num_microbatches),
                           "tokens_per_microbatch": int(plan.tokens_per_microbatch)}


# ---- tables: estimate ----

def render_estimate(est: Estimate, console: Console) -> None:
    """Phases table, then per simulated phase its plan, step breakdown and memory, then totals."""
    m = est.model
    console.print(Text.assemble(
        (est.scenario, "bold"), f" — {m.name} ({fmt_si(m.total_params())} params, "
        f"{fmt_si(m.active_params())} active) on {est.num_gpus:,} × {est.hardware.name} "
        f"at ${est.usd_per_gpu_hour:,.2f}/GPU-h", (f" ({price_note(est)})", "dim")))
    for table in _phases_tables(est, console):
        console.print(table)
    for p in est.phases:
        if p.trained:
            console.print(_phase_detail(p))
        elif p.kind != "train":
            console.print(_other_detail(p))
    console.print(Text.assemble(
        ("\nTotal  ", "bold"), (f"{fmt_hours(est.gpu_hours)} GPU-h", "bold cyan"), " · ",
        (f"{fmt_days(est.wall_clock_days)} days", "bold"), " · ", (fmt_usd(est.cost_usd), "bold green"),
        " · ", f"{est.energy_mwh:,.0f} MWh"))
    total = _total_band(phase_bands(est))
    if total:
        lo, hi = zip(total["gpu_hours"], total["wall_clock_days"], total["cost_usd"])
        console.print(Text.assemble(
            ("p10–p90 ", "bold"), f"{fmt_hours(lo[0])}–{fmt_hours(hi[0])} GPU-h · {fmt_days(lo[1])}–"
            f"{fmt_days(hi[1])} days · {fmt_usd(lo[2])}–{fmt_usd(hi[2])}",
            (f"  (the model's own error: held-out validation errors, {_regimes_text(est)})", "dim")))
    if est.ranges is not None:
        console.print(ranges_render(est.ranges, est.cost_usd, fmt_hours, fmt_days, fmt_usd))
    console.print(Text("efficiency (global): " + efficiency_line(est), style="dim"))
    if getattr(est, "run", None) is not None:
        console.print(_simulation_table(est))


def price_note(est: Estimate) -> str:
    """Where the price comes from: the scenario pins it (and keeps it when cluster.gpu changes), or the GPU's
    profile brings its own."""
    hw = est.hardware
    if not getattr(est, "price_pinned", False):
        return f"{hw.name}'s price, from its profile"
    if math.isclose(hw.price_usd_per_gpu_hour, est.usd_per_gpu_hour):
        return "set by the scenario's pricing.usd_per_gpu_hour"
    return (f"set by the scenario's pricing.usd_per_gpu_hour, kept; {hw.name}'s own price is "
            f"${hw.price_usd_per_gpu_hour:,.2f}: --set pricing.usd_per_gpu_hour={hw.price_usd_per_gpu_hour:g} to use it")


def _simulation_table(est: Estimate) -> Group:
    """Simulated step next to the closed form, then the whole run with failures and checkpoints."""
    run = est.run
    steps = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left",
                  title="simulated step (SimPy) vs closed form")
    for col in ("phase", "closed form (s)", "simulated (s)", "difference"):
        steps.add_column(col, justify="left" if col == "phase" else "right")
    for p in est.phases:
        if p.simulated is not None:
            d = p.simulated.step_time_s / p.step_time_s - 1
            steps.add_row(p.name, f"{p.step_time_s:,.2f}", f"{p.simulated.step_time_s:,.2f}", f"{d:+.1%}")
    d = run.as_dict()
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left",
              title=f"whole run with failures ({d['replicates']} replicates, seed {d['seed']}; "
                    "simulated phases only)")
    for col in ("", "mean", "p10", "p90"):
        t.add_column(col, justify="left" if not col else "right")
    rows = (("wall-clock days", "wall_clock_days", "{:,.1f}"), ("GPU-hours", "gpu_hours", None),
            ("goodput", "goodput", "{:.1%}"), ("failures", "failures", "{:,.0f}"))
    for label, key, fmt in rows:
        vals = [d[key][q] for q in ("mean", "p10", "p90")]
        t.add_row(label, *[(fmt_hours(v) if fmt is None else fmt.format(v)) for v in vals])
    note = Text(f"job MTBF {d['job_mtbf_h']:,.1f} h · checkpoint every {d['checkpoint_interval_s'] / 60:,.0f} min,"
                f" write {d['checkpoint_write_s']:,.0f} s · first-order analytic waste "
                f"{d['analytic_waste_fraction']:.1%}", style="dim")
    both = _simulation_with_model_error(est)
    if both:
        h, dd = both["gpu_hours"], both["wall_clock_days"]
        note = Group(note, Text.assemble(
            ("with the model's own error ", "bold"), f"p10–p90 {fmt_hours(h['p10'])}–{fmt_hours(h['p90'])} GPU-h · "
            f"{fmt_days(dd['p10'])}–{fmt_days(dd['p90'])} days (simulated phases; failures × held-out error)"))
    return Group(Text(""), steps, Text(""), t, note)


def efficiency_line(est: Estimate) -> str:
    """'compute_derate 0.85 · kernel_overhead 4.0 µs · …': every global parameter, whatever fields it has."""
    parts = []
    for key, v in asdict(est.efficiency).items():
        parts.append(f"{key.removesuffix('_s')} {v * 1e6:.1f} µs" if key.endswith("_s") else f"{key} {v:.3g}")
    return " · ".join(parts)


_BAND_COL = "GPU-h\np10–p90"
_COST_COLS = ("tokens", "steps", "step\n(s)", "GPU-h", "days", "cost")
_RATE_COLS = ("MFU", "model\nTFLOPS", "HW\nTFLOPS", "tokens/s")


def _phases_tables(est: Estimate, console: Console) -> list[Table]:
    """One table of phases; two (costs, then rates) when one would not fit the terminal."""
    whole = _phases_table(est, _COST_COLS + (_BAND_COL,) + _RATE_COLS)
    if Measurement.get(console, console.options.update_width(10_000), whole).maximum <= console.width:
        return [whole]
    return [_phases_table(est, _COST_COLS), _phases_table(est, ("phase", _BAND_COL) + _RATE_COLS)]


def _phases_table(est: Estimate, columns: tuple[str, ...]) -> Table:
    rates = "MFU" in columns
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, caption_justify="left", caption_style="dim",
              caption="MFU: model FLOPs over the dense BF16 peak (PaLM App. B); TFLOPS and tokens/s per GPU"
              if rates else None)
    t.add_column("phase", no_wrap=True)
    for head in columns:
        if head != "phase":
            t.add_column(head, justify="right", no_wrap=True)
    bands = phase_bands(est) if _BAND_COL in columns else [None] * len(est.phases)
    for p, b in zip(est.phases, bands):
        t.add_row(p.name, *((_phase_cells(p) | {_BAND_COL: _band_cell(b)})[c] for c in columns if c != "phase"))
    if "cost" in columns or _BAND_COL in columns:
        t.add_section()
        bold = {"GPU-h": fmt_hours(est.gpu_hours), "days": fmt_days(est.wall_clock_days),
                "cost": fmt_usd(est.cost_usd), _BAND_COL: _band_cell(_total_band(bands))}
        t.add_row(Text("total", style="bold"), *(Text(bold.get(c, ""), style="bold") for c in columns if c != "phase"))
    return t


def _phase_cells(p: PhaseEstimate) -> dict[str, str | Text]:
    cells = {"GPU-h": fmt_hours(p.gpu_hours), "days": fmt_days(p.wall_clock_days), "cost": fmt_usd(p.cost_usd)}
    if p.kind != "train":
        rl = p.kind == "rl"
        return cells | {c: "—" for c in _RATE_COLS} | {
            "tokens": fmt_si(p.tokens), "steps": f"{p.steps:,}" if rl else "—",
            "step\n(s)": fmt_s(p.step_time_s) if rl else Text(p.kind, style="italic"),
            "tokens/s": f"{p.tokens_per_s_per_gpu:,.0f}"}
    if p.reported:
        return cells | {c: "—" for c in ("tokens", "steps") + _RATE_COLS} | {
            "step\n(s)": Text("reported", style="italic")}
    return cells | {
        "tokens": fmt_si(p.tokens), "steps": f"{p.steps:,}", "step\n(s)": fmt_s(p.step_time_s),
        "MFU": fmt_pct(p.mfu), "model\nTFLOPS": f"{p.model_tflops_per_gpu:,.0f}",
        "HW\nTFLOPS": f"{p.hardware_tflops_per_gpu:,.0f}", "tokens/s": f"{p.tokens_per_s_per_gpu:,.0f}"}


def plan_line(p: PhaseEstimate) -> str:
    """'TP1 PP16 EP64 CP1 DP128 · dualpipe, 120 micro-batches of 1×4,096 · fp8, selective recompute, ZeRO-1'."""
    pl = p.plan
    sched = pl.schedule + (f" (v={pl.virtual_stages})" if pl.schedule == "interleaved" else "")
    extras = [pl.precision, f"{pl.recompute} recompute", f"ZeRO-{pl.zero_stage}"]
    extras += (["SP"] if pl.sequence_parallel else []) + ([f"{pl.comm_sms} comm SMs"] if pl.comm_sms else [])
    return (f"TP{pl.tp} PP{pl.pp} EP{pl.ep} CP{pl.cp} DP{pl.dp} · {sched}, "
            f"{pl.num_microbatches:,} micro-batches of {pl.micro_batch_size}×{pl.seq_len:,} · " + ", ".join(extras))


def _phase_detail(p: PhaseEstimate) -> Group:
    bd, mem = p.breakdown, p.memory
    links = ""
    if p.link_busy_s:
        links = (f"\nlinks busy per step (critical rank): NVLink {p.link_busy_s['nvlink']:,.2f} s · "
                 f"network {p.link_busy_s['network']:,.2f} s")
    head = Text.assemble(("\n" + p.name, "bold"), f" — step {fmt_s(p.step_time_s)} s\n", ("plan: ", "dim"),
                         plan_line(p), (links, "dim"))
    parts = [x for x in (_breakdown_table(bd, p.exposed_by_class), _dualpipe_table(bd), _per_mb_table(bd), _memory_table(mem))
             if x is not None]
    return Group(head, Columns(parts, padding=(1, 4)))   # side by side where the terminal is wide enough


def _other_detail(p: PhaseEstimate) -> Text:
    """A generate, rl or serve phase in two lines: its rates and where its time goes."""
    f = p.figures
    if p.kind == "rl":
        sp = f["time_split"]
        body = (f"{f['rounds']:,} rollout rounds × {f['steps_per_round']} policy steps on {p.num_gpus:,} GPUs · "
                f"{fmt_si(f['generated_tokens'])} tokens generated, mean response {f['mean_response_tokens']:,.0f}"
                f"\ntime: generation {sp['generation']:.0%} · idle in the long tail {sp['idle']:.0%} · update "
                f"{sp['update']:.0%}; decode batch ≤ {f['decode_batch_per_gpu']:,} per GPU")
    else:
        if p.kind == "serve" and f.get("whole_instances"):
            where = (f"{f['nodes']:,.1f} nodes on average (prefill {f['prefill_nodes']:,.1f} = "
                     f"{f['prefill_instances']:,} instances for a load of {f['prefill_load_nodes']:,.1f}, decode "
                     f"{f['decode_nodes']:,.1f} = {f['decode_instances']:,} for {f['decode_load_nodes']:,.1f})")
        elif p.kind == "serve":
            where = (f"{f['nodes']:,.1f} nodes on average (prefill {f['prefill_nodes']:,.1f}, decode "
                     f"{f['decode_nodes']:,.1f})")
        else:
            where = f"{p.num_gpus:,} GPUs"
        body = (f"{where} · per node: prefill {fmt_si(f['prefill_tokens_per_s_per_node'])} input tokens/s, "
                f"decode {fmt_si(f['decode_tokens_per_s_per_node'])} output tokens/s at "
                f"{f['tokens_per_s_per_request']:,.1f} tokens/s per request (batch {f['decode_batch_per_gpu']:,.0f}"
                " per GPU)")
    return Text.assemble(("\n" + p.name, "bold"), f" — {p.kind}\n", (body, ""))


def _small(title: str, unit: str) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    t.add_column(title, no_wrap=True, style="")
    t.add_column(unit, justify="right")
    return t


_STREAMS = {"tp": "TP", "cp": "CP (ring attention)", "ep": "EP all-to-all", "pp": "PP sends",
            "zero": "ZeRO-3 / FSDP", "dp": "DP gradient tail"}


def _breakdown_table(bd, by_stream: dict | None = None) -> Table:
    t = _small("step breakdown", "s")
    t.add_column("%", justify="right")
    total = bd.total
    for key in _BREAKDOWN_KEYS:
        v = getattr(bd, key)
        t.add_row(key.replace("_", " "), f"{v:,.2f}", fmt_pct(v / total) if total else "—")
        if key == "exposed_comm" and by_stream:
            for k, x in by_stream.items():
                if x > 5e-4 * total:
                    t.add_row(Text(f"  {_STREAMS.get(k, k)}", style="dim"), Text(f"{x:,.2f}", style="dim"),
                              Text(fmt_pct(x / total), style="dim"))
    t.add_section()
    t.add_row(Text("step", style="bold"), Text(f"{total:,.2f}", style="bold"), "100%")
    return t


def _dualpipe_table(bd) -> Table | None:
    """The same step as ISCA '25 Table 4 splits it: warm-up forwards, paired steady state, cool-down."""
    if not bd.dualpipe_phases:
        return None
    t = _small("DualPipe view", "s")
    labels = {"1F": "1F (warm-up)", "1B": "1B (cool-down)", "1W": "1W (cool-down)", "1F1B": "1F1B (paired)",
              "bubble": "bubble", "optimizer": "optimizer + DP tail"}
    for key, v in bd.dualpipe_phases.items():
        t.add_row(labels.get(key, key), f"{v:,.2f}")
    return t


def _per_mb_table(bd) -> Table:
    t = _small(f"per micro-batch (critical rank {bd.critical_rank})", "ms")
    for key, label in _PER_MB:
        v = getattr(bd.per_mb, key)
        if key == "pair" and not v:
            continue
        t.add_row(label, f"{v * 1e3:,.2f}")
    return t


def _memory_table(mem) -> Table | None:
    if mem is None:
        return None
    g = mem.gib()
    t = _small("memory per GPU", "GiB")
    for key in ("weights", "gradients", "optimizer", "activations", "reserved"):
        t.add_row(key, f"{g[key]:,.1f}")
    t.add_section()
    full = g["total"] / g["capacity"] if g["capacity"] else 0.0
    style = "bold red" if full > 0.95 else "bold"
    t.add_row(Text("total / capacity", style="bold"),
              Text(f"{g['total']:,.1f} / {g['capacity']:,.1f} ({full:.0%})", style=style))
    return t


# ---- profiles ----

def profiles_table(profiles: Iterable[HardwareProfile], width: int | None = None) -> Table | Group:
    """One line per profile at any width (`width`: the terminal's by default). Descriptions are cut to what is
    left (`costsim profiles --show NAME` prints one whole); where the numbers leave too little room (80
    columns), the descriptions follow in a table of their own."""
    profiles = list(profiles)
    console = Console(width=width) if width else Console()

    def cut(text: str, room: int) -> str:
        return text if len(text) <= room else text[: max(room - 1, 1)].rstrip() + "…"

    def table(room: int | None) -> Table:
        t = Table(title="hardware profiles", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        t.add_column("name", no_wrap=True, style="bold")
        for head in ("BF16\nTFLOPS", "FP8\nTFLOPS", "HBM\nGiB", "NVLink\na2a GB/s", "net\na2a GB/s", "$ per\nGPU-h"):
            t.add_column(head, justify="right", no_wrap=True)
        if room is not None:
            t.add_column("description", no_wrap=True)
        for p in profiles:
            fp8 = p.peak_flops.get("fp8")
            row = [p.name, f"{p.peak_flops['bf16'] / 1e12:,.0f}", f"{fp8 / 1e12:,.0f}" if fp8 else "—",
                   f"{p.hbm_capacity_bytes / 2**30:,.0f}", f"{p.nvlink_busbw['all_to_all'] / 1e9:,.0f}",
                   f"{p.net_busbw['all_to_all'] / 1e9:,.0f}", f"{p.price_usd_per_gpu_hour:.2f}"]
            t.add_row(*row, *([cut(p.description, room)] if room is not None else []))
        return t

    def measure(t: Table) -> int:
        return Measurement.get(console, console.options.update_width(10_000), t).maximum

    room = console.width - measure(table(None)) - 3
    if room >= 30:
        return table(room)
    names = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    names.add_column("name", no_wrap=True, style="bold")
    names.add_column("description", no_wrap=True)
    room = console.width - max(len(p.name) for p in profiles) - 6   # the name column, padding and edges
    for p in profiles:
        names.add_row(p.name, cut(p.description, max(room, 12)))
    return Group(table(None), names)


def models_table(models: Iterable[ModelSpec]) -> Table:
    t = Table(title="built-in models", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("name", no_wrap=True, style="bold")
    for head in ("layers", "hidden", "experts", "total params (B)", "active params (B)"):
        t.add_column(head, justify="right")
    for m in models:
        experts = f"{m.n_routed_experts} (top-{m.num_experts_per_tok})" if m.is_moe else "—"
        t.add_row(m.name, str(m.num_layers), f"{m.hidden_size:,}", experts,
                  f"{m.total_params() / 1e9:,.1f}", f"{m.active_params() / 1e9:,.1f}")
    return t


def profile_fields(p: HardwareProfile) -> list[tuple[str, str, str, str]]:
    """(dotted path, value, unit, source) for every sourced number of a profile, as written in its file."""
    raw = yaml.safe_load(Path(p.path).read_text(encoding="utf-8"))
    rows = []
    for path, source in p.sources.items():
        node = raw
        for part in path.split("."):
            node = node[part]
        value = node["value"]
        shown = " ".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value:g}"
        rows.append((path, shown, str(node["unit"]), source))
    return rows


def profile_table(p: HardwareProfile) -> Table:
    t = Table(title=f"{p.name} — {p.description}\n{p.path}", title_justify="left", box=box.SIMPLE_HEAD,
              pad_edge=False)
    t.add_column("field", no_wrap=True, style="bold")
    t.add_column("value", justify="right", max_width=24, overflow="fold")
    t.add_column("unit", no_wrap=True)
    t.add_column("source", overflow="fold")
    for row in profile_fields(p):
        t.add_row(*row)
    return t


# ---- validation ----

def validation_to_dict(results: list, summary: dict) -> dict:
    cases = [{"case": r.case, "group": r.group, "metric": r.metric, "published": num(r.published),
              "predicted": num(r.predicted), "error": num(r.error), "source": r.source} for r in results]
    return {"cases": cases, "summary": {k: num(v) if isinstance(v, float) else v for k, v in summary.items()}}


def fmt_value(x: float) -> str:
    """A published or predicted figure, alike for both: 2,664K; 8,264; 159.3; 13.75; 1.28; 0.938."""
    a = abs(x)
    if a >= 1e5:
        return f"{x / 1e3:,.0f}K"
    if a >= 1e3:
        return f"{x:,.0f}"
    return f"{x:.1f}" if a >= 100 else f"{x:.2f}" if a >= 1 else f"{x:.3g}"


def render_validation(results: list, summary: dict, console: Console) -> None:
    """Predicted vs published per case, one section per group (its source on the group row when shared),
    then the summary line."""
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    t.add_column("case", no_wrap=True)
    t.add_column("metric", no_wrap=True)
    t.add_column("published", justify="right", no_wrap=True)
    t.add_column("predicted", justify="right", no_wrap=True)
    t.add_column("error", justify="right", no_wrap=True, min_width=7)
    t.add_column("source", overflow="fold", style="dim", min_width=12)
    groups: dict[str, list] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r)
    for i, (group, rows) in enumerate(groups.items()):
        if i:
            t.add_section()
        shared = rows[0].source if len({r.source for r in rows}) == 1 else ""
        t.add_row(Text(group, style="bold"), "", "", "", "", shared)
        for r in rows:
            err = r.error
            style = "green" if abs(err) <= 0.1 else "yellow" if abs(err) <= 0.25 else "red"
            t.add_row("  " + r.case, r.metric, fmt_value(r.published), fmt_value(r.predicted),
                      Text(f"{100 * err:+.1f}%", style=style), "" if shared else r.source)
    console.print(t)
    console.print(Text.assemble(
        ("\nsummary  ", "bold"), f"{summary['cases']} cases · median |error| {fmt_pct(summary['median_abs_error'])}"
        f" · max |error| {fmt_pct(summary['max_abs_error'])} (worst: {summary['worst_case']})"))

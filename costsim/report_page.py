"""`costsim report`: one self-contained HTML page about a scenario, readable offline.

plotly.js is inlined once, in the page's <head>; every figure is a plain <div> written by
`fig.to_html(include_plotlyjs=False, full_html=False)`. The page holds, in order: cost by phase; the step
breakdown as a waterfall (exposed communication split by stream); memory per GPU stacked against capacity; one
simulated step as a timeline; days and dollars against GPU count (the estimate re-run at ¼, ½, 1, 2 and 4 × the
scenario's GPUs); the same run on each shipped GPU type at that GPU's own price; and the p10–p90 band of the
model's own error (held-out validation errors, costsim/uncertainty.py), with the scenario's assumption ranges
(costsim/ranges.py) under it where it states any.

Variants that cannot run (a GPU count the plan does not divide, a plan that does not fit a GPU's memory, FP8 on a
GPU without it) are left out of their figure and listed under it with the reason.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Callable

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import __version__
from .errors import CostsimError
from .estimate import Estimate, estimate as run_estimate
from .report import _total_band, fmt_days, fmt_hours, fmt_usd, phase_bands, price_note
from .scenario import load_scenario

GPU_FACTORS = (Fraction(1, 4), Fraction(1, 2), Fraction(1), Fraction(2), Fraction(4))

# Figure ids, in page order: tests look for each one's <div>.
FIGURE_IDS = ("fig-cost-by-phase", "fig-step-waterfall", "fig-memory", "fig-timeline", "fig-gpu-count",
              "fig-gpu-types", "fig-uncertainty")

_STREAMS = {"tp": "exposed TP", "cp": "exposed CP (ring attention)", "ep": "exposed EP all-to-all",
            "pp": "exposed PP sends", "zero": "exposed ZeRO-3 / FSDP gathers", "dp": "exposed DP gradient tail"}
_MEMORY = (("weights", "#4C78A8"), ("gradients", "#72B7B2"), ("optimizer", "#F58518"),
           ("activations", "#E45756"), ("reserved", "#BAB0AC"))
_GIB = 1024 ** 3

Progress = Callable[[str], None]


@dataclass
class Variant:
    label: str
    est: Estimate | None = None
    skipped: str | None = None     # why it did not run


@dataclass
class PageData:
    est: Estimate
    scenario_path: Path
    overrides: list[str]
    by_count: list[Variant] = field(default_factory=list)
    by_gpu: list[Variant] = field(default_factory=list)
    timeline: go.Figure | None = None
    timeline_note: str = ""


# ---- collecting the estimates ----

def collect(scenario: Path, overrides: list[str] | None = None, progress: Progress | None = None) -> PageData:
    """Run the base estimate (its errors propagate: CostsimError), then every variant (errors noted)."""
    from .hardware import list_profiles

    from .ranges import assumption_ranges, count_runs

    say = progress or (lambda msg: None)
    overrides = list(overrides or [])
    gpus = list_profiles()
    sc = load_scenario(scenario, overrides)
    total = 2 + len(GPU_FACTORS) + len(gpus) + bool(sc.ranges)
    step = iter(range(1, total + 1))

    say(f"[{next(step)}/{total}] estimating {scenario}")
    est = run_estimate(sc, base_dir=scenario.parent)
    if sc.ranges:
        say(f"[{next(step)}/{total}] costing the scenario's {len(sc.ranges)} range(s): {count_runs(sc)} estimates")
        est.ranges = assumption_ranges(sc, base_dir=scenario.parent, source=str(scenario))
    data = PageData(est=est, scenario_path=scenario, overrides=overrides)

    say(f"[{next(step)}/{total}] simulating one step for the timeline")
    data.timeline, data.timeline_note = _timeline(est)

    n = est.num_gpus
    for f in GPU_FACTORS:
        count = n * f
        label = f"{'×' if f >= 1 else '÷'}{f if f >= 1 else 1 / f} = {float(count):g} GPUs"
        say(f"[{next(step)}/{total}] estimating at {float(count):g} GPUs")
        if f == 1:
            data.by_count.append(Variant(label, est))
        elif count.denominator != 1:
            data.by_count.append(Variant(label, skipped=f"{n} GPUs × {f} is not a whole number of GPUs"))
        else:
            data.by_count.append(_variant(label, scenario, overrides + [f"cluster.num_gpus={int(count)}"]))

    for name in gpus:
        say(f"[{next(step)}/{total}] estimating on {name}")
        if name == est.hardware.name and not est.price_pinned:
            data.by_gpu.append(Variant(name, est))
            continue
        data.by_gpu.append(_variant(name, scenario, overrides + [f"cluster.gpu={name}",
                                                                  "pricing.usd_per_gpu_hour=null"]))
    return data


def _variant(label: str, scenario: Path, overrides: list[str]) -> Variant:
    try:
        sc = load_scenario(scenario, overrides)
        return Variant(label, run_estimate(sc, base_dir=scenario.parent))
    except CostsimError as exc:
        return Variant(label, skipped=" ".join(str(exc).split()))


def _timeline(est: Estimate) -> tuple[go.Figure | None, str]:
    from .sim.step import simulate_phase
    from .sim.timeline import timeline_figure

    chosen = next((p for p in est.phases if p.trained and p.costs is not None), None)
    if chosen is None:
        return None, "no training phase: every phase is a reported figure or a generate, rl or serve phase"
    try:
        res = simulate_phase(chosen.costs, overlap_slowdown=est.efficiency.overlap_slowdown, trace=True)
    except CostsimError as exc:
        return None, f"the step simulation refused this phase: {' '.join(str(exc).split())}"
    fig = timeline_figure(res, f"{chosen.name}: one simulated step, {res.step_time_s:.2f} s")
    ranks = len({e.rank for e in res.trace})
    note = (f"{chosen.name}, {ranks} pipeline stages, simulated step {res.step_time_s:.2f} s (closed form "
            f"{chosen.step_time_s:.2f} s).")
    return fig, note


# ---- figures ----

def _layout(fig: go.Figure, title: str, **kw) -> go.Figure:
    kw.setdefault("margin", {"t": 90, "l": 70, "r": 30, "b": 60})
    fig.update_layout(title=title, template="plotly_white", **kw)
    return fig


def fig_cost_by_phase(est: Estimate) -> go.Figure:
    ph = est.phases
    fig = go.Figure(go.Bar(
        x=[p.name + (" (reported)" if p.reported else "") for p in ph], y=[p.cost_usd for p in ph],
        text=[fmt_usd(p.cost_usd) for p in ph], textposition="outside",
        customdata=[[fmt_hours(p.gpu_hours), fmt_days(p.wall_clock_days)] for p in ph],
        hovertemplate="%{x}<br>%{text}<br>%{customdata[0]} GPU-h · %{customdata[1]} days<extra></extra>",
        marker_color=["#BAB0AC" if p.reported else "#4C78A8" for p in ph], name="cost"))
    return _layout(fig, f"Cost by phase — total {fmt_usd(est.cost_usd)}, {fmt_hours(est.gpu_hours)} GPU-h",
                   yaxis_title="US$", showlegend=False)


def fig_step_waterfall(est: Estimate) -> go.Figure:
    ph = [p for p in est.phases if not p.reported and p.breakdown is not None]
    fig = make_subplots(rows=max(1, len(ph)), cols=1, subplot_titles=[p.name for p in ph] or [""],
                        vertical_spacing=0.12 if len(ph) > 1 else 0.1)
    for i, p in enumerate(ph, start=1):
        bd = p.breakdown
        items = [("forward", bd.forward), ("backward", bd.backward), ("pipeline bubble", bd.bubble)]
        split = {k: v for k, v in p.exposed_by_class.items() if v > 0}
        rest = bd.exposed_comm - sum(split.values())
        if split:
            items += [(_STREAMS.get(k, f"exposed {k}"), v) for k, v in split.items()]
            if abs(rest) > 1e-6 * max(bd.total, 1e-12):
                items.append(("exposed, other", rest))
        else:
            items.append(("exposed communication", bd.exposed_comm))
        items.append(("optimizer", bd.optimizer))
        fig.add_trace(go.Waterfall(
            x=[k for k, _ in items] + ["step"], y=[v for _, v in items] + [0],
            measure=["relative"] * len(items) + ["total"],
            text=[f"{v:.3g} s" for _, v in items] + [f"{bd.total:.3g} s"], textposition="outside",
            connector={"line": {"color": "#999"}}, name=p.name, showlegend=False,
            increasing={"marker": {"color": "#4C78A8"}}, decreasing={"marker": {"color": "#54A24B"}},
            totals={"marker": {"color": "#F58518"}}), row=i, col=1)
        fig.update_yaxes(title_text="seconds per step", row=i, col=1)
    return _layout(fig, "Step breakdown (closed form, critical rank)", height=max(420, 380 * len(ph)))


def fig_memory(est: Estimate) -> go.Figure:
    ph = [p for p in est.phases if not p.reported and p.memory is not None]
    names = [p.name for p in ph]
    fig = go.Figure()
    for key, color in _MEMORY:
        vals = [getattr(p.memory, key) / _GIB for p in ph]
        fig.add_trace(go.Bar(x=names, y=vals, name=key, marker_color=color,
                             hovertemplate=f"{key}: %{{y:.1f}} GiB<extra>%{{x}}</extra>"))
    caps = [p.memory.capacity / _GIB for p in ph]
    fig.add_trace(go.Scatter(x=names, y=caps, name=f"capacity ({est.hardware.name})", mode="markers+lines",
                             line={"color": "black", "dash": "dash"}, marker={"symbol": "line-ew-open", "size": 40},
                             hovertemplate="capacity %{y:.1f} GiB<extra></extra>"))
    totals = [p.memory.total / _GIB for p in ph]
    fig.add_trace(go.Scatter(x=names, y=totals, mode="text", text=[f"{t:.1f} GiB" for t in totals],
                             textposition="top center", showlegend=False, hoverinfo="skip"))
    return _layout(fig, "Memory per GPU (peak, most loaded rank) against capacity", barmode="stack",
                   yaxis_title="GiB per GPU")


def _band_totals(est: Estimate) -> dict | None:
    return _total_band(phase_bands(est))


def fig_gpu_count(data: PageData) -> go.Figure:
    ok = [v for v in data.by_count if v.est is not None]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    xs = [v.est.num_gpus for v in ok]
    for what, key, color, fmt, secondary in (("wall-clock days", "wall_clock_days", "#4C78A8", fmt_days, False),
                                             ("cost (US$)", "cost_usd", "#E45756", fmt_usd, True)):
        ys = [getattr(v.est, key) for v in ok]
        bands = [_band_totals(v.est) for v in ok]
        err = None
        if all(bands):
            err = {"type": "data", "symmetric": False, "array": [b[key][1] - y for b, y in zip(bands, ys)],
                   "arrayminus": [y - b[key][0] for b, y in zip(bands, ys)], "color": color, "thickness": 1}
        fig.add_trace(go.Scatter(x=xs, y=ys, name=what, mode="lines+markers", line={"color": color},
                                 error_y=err, text=[fmt(y) for y in ys],
                                 hovertemplate="%{x} GPUs: %{text}<extra>" + what + "</extra>"),
                      secondary_y=secondary)
    fig.update_xaxes(type="log", title_text="GPUs", tickvals=xs, ticktext=[f"{x:,}" for x in xs])
    fig.update_yaxes(title_text="days", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="US$", secondary_y=True, rangemode="tozero")
    return _layout(fig, f"Days and dollars against GPU count ({data.est.hardware.name}, same plan, data parallel "
                        "scaled; bars: p10–p90)", legend={"orientation": "h", "y": 1.08, "x": 0})


def fig_gpu_types(data: PageData) -> go.Figure:
    ok = [v for v in data.by_gpu if v.est is not None]
    names = [f"{v.label}<br>${v.est.usd_per_gpu_hour:,.2f}/GPU-h" for v in ok]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("cost at each GPU's own price", "wall-clock days"))
    colors = ["#F58518" if v.label == data.est.hardware.name else "#4C78A8" for v in ok]
    fig.add_trace(go.Bar(x=names, y=[v.est.cost_usd for v in ok], marker_color=colors, name="cost",
                         text=[fmt_usd(v.est.cost_usd) for v in ok], textposition="outside",
                         hovertemplate="%{x}<br>%{text}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=[v.est.wall_clock_days for v in ok], marker_color=colors, name="days",
                         text=[fmt_days(v.est.wall_clock_days) for v in ok], textposition="outside",
                         hovertemplate="%{x}<br>%{text} days<extra></extra>"), row=1, col=2)
    fig.update_yaxes(title_text="US$", row=1, col=1)
    fig.update_yaxes(title_text="days", row=1, col=2)
    return _layout(fig, f"The same run on each shipped GPU type ({data.est.num_gpus:,} GPUs, same plan)",
                   showlegend=False, height=480)


def fig_uncertainty(est: Estimate) -> go.Figure:
    bands = phase_bands(est)
    total = _total_band(bands)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65],
                        subplot_titles=("total cost, p10–p90", "each phase: p10–p90 as % of its estimate"))
    if total:
        lo, hi = total["cost_usd"]
        fig.add_trace(go.Bar(x=["total"], y=[est.cost_usd], marker_color="#F58518", width=0.5,
                             text=[f"{fmt_usd(est.cost_usd)}<br>p10–p90 {fmt_usd(lo)}–{fmt_usd(hi)}"],
                             textposition="inside", hovertemplate="%{text}<extra></extra>",
                             error_y={"type": "data", "symmetric": False, "array": [hi - est.cost_usd],
                                      "arrayminus": [est.cost_usd - lo], "color": "black", "thickness": 1.5,
                                      "width": 12}), row=1, col=1)
    names, mid, up, down, text = [], [], [], [], []
    for p, b in zip(est.phases, bands):
        if not b or p.reported or not p.cost_usd:
            continue
        lo, hi = b["cost_usd"]
        names.append(p.name)
        mid.append(100.0)
        up.append(100 * (hi / p.cost_usd - 1))
        down.append(100 * (1 - lo / p.cost_usd))
        text.append(f"{fmt_usd(p.cost_usd)} (p10–p90 {fmt_usd(lo)}–{fmt_usd(hi)}; GPU-h "
                    f"{fmt_hours(b['gpu_hours'][0])}–{fmt_hours(b['gpu_hours'][1])}; days "
                    f"{fmt_days(b['wall_clock_days'][0])}–{fmt_days(b['wall_clock_days'][1])})")
    fig.add_trace(go.Scatter(x=mid, y=names, mode="markers", marker={"size": 10, "color": "#4C78A8"},
                             text=text, hovertemplate="%{y}<br>%{text}<extra></extra>",
                             error_x={"type": "data", "symmetric": False, "array": up, "arrayminus": down,
                                      "color": "#4C78A8", "thickness": 2, "width": 8}), row=1, col=2)
    fig.update_yaxes(title_text="US$", row=1, col=1)
    fig.update_xaxes(title_text="% of the estimate", row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    return _layout(fig, "Uncertainty: the p10–p90 band of the model's own error", showlegend=False,
                   margin={"t": 90, "l": 150, "r": 30, "b": 60})


# ---- the page ----

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1300px;padding:1em 2em;
color:#222}
h1{margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .8em;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}.caption{color:#555;font-size:.92em;max-width:70em}
.skipped{color:#8a4b00;font-size:.9em}.meta{color:#777;font-size:.85em}
"""


def _fig_html(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(include_plotlyjs=False, full_html=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _skipped(variants: list[Variant]) -> str:
    gone = [v for v in variants if v.est is None]
    if not gone:
        return ""
    items = "".join(f"<li><b>{html.escape(v.label)}</b>: {html.escape(v.skipped or '')}</li>" for v in gone)
    return f'<div class="skipped">Left out:<ul>{items}</ul></div>'


def _summary_table(est: Estimate) -> str:
    bands = phase_bands(est)
    total = _total_band(bands)
    rows = []
    for p, b in zip(est.phases, bands):
        band = (f"{fmt_usd(b['cost_usd'][0])}–{fmt_usd(b['cost_usd'][1])}" if b and not p.reported else "—")
        rows.append(f"<tr><td>{html.escape(p.name)}{' (reported)' if p.reported else ''}</td>"
                    f"<td>{fmt_hours(p.gpu_hours)}</td><td>{fmt_days(p.wall_clock_days)}</td>"
                    f"<td>{fmt_usd(p.cost_usd)}</td><td>{band}</td>"
                    f"<td>{'' if p.reported else f'{100 * p.mfu:.1f}%'}</td></tr>")
    tband = f"{fmt_usd(total['cost_usd'][0])}–{fmt_usd(total['cost_usd'][1])}" if total else "—"
    rows.append(f"<tr><th>total</th><th>{fmt_hours(est.gpu_hours)}</th><th>{fmt_days(est.wall_clock_days)}</th>"
                f"<th>{fmt_usd(est.cost_usd)}</th><th>{tband}</th><th></th></tr>")
    return ("<table><tr><th>phase</th><th>GPU-hours</th><th>days</th><th>cost</th><th>cost p10–p90</th>"
            "<th>MFU</th></tr>" + "".join(rows) + "</table>")


def _ranges_html(est: Estimate) -> str:
    """The scenario's assumption ranges: each value's cost against the scenario's, and the span of them all."""
    r = est.ranges
    if r is None:
        return ""
    esc = html.escape
    rows = []
    for k in r.keys:
        for i, o in enumerate(k.outcomes):
            first = (f"<td rowspan=\"{len(k.outcomes)}\">{esc(k.label)}<br><span class=\"meta\">"
                     f"{esc(k.source or 'no source given')}</span></td>") if i == 0 else ""
            if o.error:
                rows.append(f"<tr>{first}<td>{esc(str(o.values[k.label]))}</td><td colspan=\"4\">cannot run: "
                            f"{esc(o.error)}</td></tr>")
                continue
            rel = o.total["cost_usd"] / est.cost_usd - 1 if est.cost_usd else 0.0
            rows.append(f"<tr>{first}<td>{esc(str(o.values[k.label]))}</td><td>{fmt_hours(o.total['gpu_hours'])}"
                        f"</td><td>{fmt_days(o.total['wall_clock_days'])}</td><td>{fmt_usd(o.total['cost_usd'])}"
                        f"</td><td>{100 * rel:+.1f}%</td></tr>")
    if r.total is None:
        together = f"<tr><th>all together</th><th colspan=\"5\">none of the {r.combinations} combinations can run</th></tr>"
    else:
        (hlo, hhi), (dlo, dhi), (clo, chi) = (r.total[f] for f in ("gpu_hours", "wall_clock_days", "cost_usd"))
        together = (f"<tr><th>all together ({r.runnable} of {r.combinations} combinations run)</th><th></th>"
                    f"<th>{fmt_hours(hlo)}–{fmt_hours(hhi)}</th><th>{fmt_days(dlo)}–{fmt_days(dhi)}</th>"
                    f"<th>{fmt_usd(clo)}–{fmt_usd(chi)}</th><th></th></tr>")
    if r.failed:
        first = r.failed[0]
        at = ", ".join(f"{k}={v}" for k, v in first.values.items())
        together += (f"<tr><td colspan=\"6\" class=\"meta\">{len(r.failed)} of {r.combinations} combinations "
                     f"cannot run and are left out of the span; e.g. {esc(at)}: {esc(first.error or '')}</td></tr>")
    return ("<h3>The inputs it is not sure of</h3><p class=\"caption\">The scenario's <code>ranges:</code>: "
            "each value costed with the rest as written, then every combination of the values (costsim/ranges.py). "
            "This is the spread of the inputs, not the model's error above.</p><table><tr><th>key</th><th>value"
            "</th><th>GPU-hours</th><th>days</th><th>cost</th><th>vs scenario</th></tr>" + "".join(rows)
            + together + "</table>")


def build_page(data: PageData) -> str:
    """The whole page as one string: plotly.js once in <head>, then a section per figure."""
    from plotly.offline import get_plotlyjs

    est = data.est
    m = est.model
    esc = html.escape
    band_about = ("the p10–p90 band of the model's own error: the held-out (leave-one-source-out) errors of "
                  "the validation set (costsim validate), applied to every phase at the same quantile")
    sections = [
        ("Cost by phase", FIGURE_IDS[0], fig_cost_by_phase(est),
         "Dollars per phase at the run's price; hover for GPU-hours and days. Grey bars are reported figures "
         "taken as given, not estimated.", ""),
        ("Where a step goes", FIGURE_IDS[1], fig_step_waterfall(est),
         "The closed-form step of each estimated phase on its critical pipeline rank: forward and backward "
         "compute, the pipeline bubble, the communication compute could not hide — split by stream (TP, CP, EP "
         "all-to-all, PP sends, ZeRO-3 gathers, the DP gradient tail) — and the optimizer; the last bar is the "
         "step.", ""),
        ("Memory per GPU", FIGURE_IDS[2], fig_memory(est),
         "Peak memory of the most loaded GPU, stacked: weights, gradients, optimizer state, activations in "
         "flight and reserved memory (CUDA context, NCCL buffers, workspaces, fragmentation); the dashed line "
         f"is {esc(est.hardware.name)}'s capacity.", ""),
    ]
    if data.timeline is not None:
        sections.append((
            "One step, simulated", FIGURE_IDS[3], data.timeline,
            f"{esc(data.timeline_note)} A row per pipeline stage for compute, and thinner rows for the links it "
            "uses (<i>nvlink</i>, <i>nic</i>); overlapping bars on a link row are flows sharing its bandwidth; gaps "
            "in a compute row are the pipeline bubble. Bar labels (hover): <b>F1.3</b> is the forward of chunk 1 "
            "for micro-batch 3, <b>B</b> the backward, <b>W</b> a weight-gradient pass, <b>FB F1.8 B0.2</b> a "
            "DualPipe pair running a forward and a backward together; on link rows the stream comes first "
            "(<b>ep F1.8</b>: the all-to-all of that forward, <b>send</b>: a pipeline send, <b>comm</b>: a "
            "transfer the compute waits for).", ""))
    else:
        sections.append(("One step, simulated", FIGURE_IDS[3], None, esc(data.timeline_note), ""))
    sections += [
        ("Days and dollars against GPU count", FIGURE_IDS[4], fig_gpu_count(data),
         "The estimate re-run at ¼, ½, 1, 2 and 4 × the scenario's GPU count with the same plan (TP, PP, EP, "
         "CP fixed; data parallelism and micro-batches per step change). Error bars: " + band_about + ".",
         _skipped(data.by_count)),
        ("The same run on each GPU type", FIGURE_IDS[5], fig_gpu_types(data),
         "The scenario on every shipped hardware profile, each at its own list price from its profile (a price "
         "pinned in the scenario is dropped here), same GPU count and plan; the scenario's own GPU in orange.",
         _skipped(data.by_gpu)),
        ("How sure is it?", FIGURE_IDS[6], fig_uncertainty(est),
         "Left: the whole run's cost with its band; right: each estimated phase's band, as a percentage of its "
         "estimate (hover for dollars, GPU-hours and days). The band is " + band_about + ". Reported phases "
         "are taken as given and carry no band.", _ranges_html(est)),
    ]
    body = []
    for title, div_id, fig, caption, extra in sections:
        inner = _fig_html(fig, div_id) if fig is not None else f'<div id="{div_id}"><p><i>not drawn</i></p></div>'
        body.append(f"<section><h2>{esc(title)}</h2>{inner}<p class=\"caption\">{caption}</p>{extra}</section>")
    sets = "".join(f" --set {esc(o)}" for o in data.overrides)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"<h1>{esc(est.scenario)}</h1><p>{esc(m.name)} ({m.total_params() / 1e9:,.1f}B parameters, "
            f"{m.active_params() / 1e9:,.1f}B active) on {est.num_gpus:,} × {esc(est.hardware.name)} at "
            f"${est.usd_per_gpu_hour:,.2f}/GPU-hour ({esc(price_note(est))}).</p>" + _summary_table(est)
            + f'<p class="meta">costsim {esc(__version__)} · <code>costsim report {esc(str(data.scenario_path))}'
              f"{sets}</code> · {when}</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(est.scenario)} — costsim report</title><style>{_CSS}</style>\n"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head><body>"
            + head + "".join(body) + "</body></html>\n")


def write_report(scenario: Path, output: str | Path, overrides: list[str] | None = None,
                 progress: Progress | None = None) -> tuple[str, PageData]:
    """Collect, build and write the page (atomically for a regular file; `-` is standard output)."""
    from .safe_write import check_target, write_text

    check_target(output, "--output")
    data = collect(Path(scenario), overrides, progress)
    page = build_page(data)
    return write_text(output, page, what="--output"), data

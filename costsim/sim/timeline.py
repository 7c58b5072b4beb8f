"""A plotly Gantt chart of one simulated step: a row per pipeline stage (rank) for compute, and one for each of
its links (NVLink, NIC) with the flows on it; overlapping bars on a link row are flows sharing its bandwidth.

Idle gaps in a row are the pipeline bubble; the DualPipe picture (paired forward/backward chunks in the middle,
warm-up forwards and cool-down backwards at the ends) appears as DeepSeek-V3's report draws it.
"""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from .step import StepResult

COLORS = {"F": "#4C78A8", "B": "#72B7B2", "W": "#54A24B", "FB": "#B279A2", "optimizer": "#F58518",
          "send": "#BAB0AC", "DP": "#E45756", "ep": "#9D755D", "tp": "#FF9DA6", "cp": "#EECA3B",
          "zero": "#79706E", "comm": "#D67195"}


# What each colour is, for the legend (labels: F1.3 = forward of chunk 1, micro-batch 3; FB F1.8 B0.2 = a DualPipe
# pair of the forward of chunk 1, micro-batch 8 and the backward of chunk 0, micro-batch 2).
KIND_NAMES = {
    "F": "F — forward of one chunk (F<i>c.m</i>: chunk c, micro-batch m)",
    "B": "B — backward (input gradients) of one chunk",
    "W": "W — weight-gradient pass (zero-bubble / DualPipe split)",
    "FB": "FB — a DualPipe pair: a forward and a backward overlapped",
    "optimizer": "optimizer step",
    "send": "PP send of activations / gradients to the next stage",
    "DP": "DP gradient reduce-scatter / parameter gather",
    "ep": "EP all-to-all (dispatch / combine)",
    "tp": "TP collective",
    "cp": "CP ring-attention transfer",
    "zero": "ZeRO-3 / FSDP gather",
    "comm": "communication the compute waits for (blocking)",
}


def _kind(label: str) -> str:
    if label.startswith("FB"):
        return "FB"
    first = label.split()[0]
    if first in COLORS:
        return first
    return label[0]


def timeline_figure(result: StepResult, title: str) -> go.Figure:
    """One bar trace per rank for compute (`stage r`) and one per link it used (`stage r nvlink`, `stage r nic`)."""
    fig = go.Figure()
    ranks = sorted({e.rank for e in result.trace})
    for r in ranks:
        for stream, suffix, width in (("compute", "", 0.8), ("nvlink", " nvlink", 0.3), ("nic", " nic", 0.3)):
            evs = [e for e in result.trace if e.rank == r and e.stream == stream]
            if not evs and stream != "compute":
                continue
            fig.add_trace(go.Bar(
                name=f"stage {r}{suffix}", orientation="h", y=[f"stage {r}{suffix}"] * len(evs),
                base=[e.start for e in evs], x=[e.end - e.start for e in evs], width=width,
                marker_color=[COLORS.get(_kind(e.label), "#999999") for e in evs],
                text=[e.label for e in evs], textposition="none",
                hovertemplate="%{text}<br>%{base:.4f} s + %{x:.4f} s<extra></extra>",
                showlegend=False))
    used = set()
    for tr in fig.data:            # rounded to the microsecond: the page stays small, the picture the same
        tr.base = [round(b, 6) for b in tr.base]
        tr.x = [round(x, 6) for x in tr.x]
        tr.marker.line.width = 0   # no white outline: thousands of short bars (interleaved plans) stay solid
        used.update(tr.marker.color)
    for kind, color in COLORS.items():   # a real legend: one entry per kind that appears, explained
        if color in used:
            fig.add_trace(go.Bar(x=[None], y=[None], orientation="h", marker_color=color,
                                 name=KIND_NAMES.get(kind, kind), showlegend=True, hoverinfo="skip"))
    rows = len({(e.rank, e.stream) for e in result.trace})
    fig.update_layout(title={"text": title, "y": 0.99, "yanchor": "top"}, barmode="overlay",
                      xaxis_title="seconds into the step", yaxis={"autorange": "reversed"}, bargap=0.1,
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "font": {"size": 11}},
                      height=max(440, 230 + 26 * rows), margin={"t": 120, "b": 60})
    return fig


def write_timeline(result: StepResult, title: str, path: str | Path) -> Path:
    """Write a self-contained HTML file (plotly.js embedded); returns its path."""
    from ..safe_write import check_target, write_text
    check_target(path, "--output")
    html = timeline_figure(result, title).to_html(include_plotlyjs=True, full_html=True)
    write_text(path, html, what="--output")   # atomic for files; devices and - (stdout) written directly
    return Path(path)

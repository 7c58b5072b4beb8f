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
    fig.update_layout(title=title, barmode="overlay", xaxis_title="seconds into the step",
                      yaxis={"autorange": "reversed"}, height=120 + 70 * len(ranks), bargap=0.1,
                      annotations=[{"text": " · ".join(f"<span style='color:{c}'>■</span> {k}"
                                                       for k, c in COLORS.items()),
                                    "xref": "paper", "yref": "paper", "x": 0, "y": 1.06, "showarrow": False}])
    return fig


def write_timeline(result: StepResult, title: str, path: str | Path) -> Path:
    """Write a self-contained HTML file (plotly.js embedded); returns its path."""
    from ..safe_write import check_target, write_text
    check_target(path, "--output")
    html = timeline_figure(result, title).to_html(include_plotlyjs=True, full_html=True)
    write_text(path, html, what="--output")   # atomic for files; devices and - (stdout) written directly
    return Path(path)

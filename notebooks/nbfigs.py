"""Figures for the notebooks: an interactive plotly figure with a static PNG fallback in the same output.

`show(fig)` draws the plotly figure's traces again with matplotlib (same data: bars, grouped or stacked, and
lines/markers) and displays one output carrying both the plotly JSON and the PNG. Jupyter renders the plotly
figure; viewers without JavaScript (GitHub, nbconvert to PDF, a terminal) fall back to the PNG. Why matplotlib
and not plotly's own static export: plotly's export (kaleido ≥ 1) drives a Chrome it downloads or finds on the
machine, and this project's machines cannot download one, so the PNG would fail where it matters most.
"""
from __future__ import annotations

import base64
import io
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from IPython.display import display  # noqa: E402


def _text(t) -> str:
    return (t.text if t is not None and t.text else "") or ""


def _esc(s) -> str:
    """A literal dollar sign for matplotlib (it reads $...$ as math)."""
    return str(s).replace("$", r"\$")


def to_matplotlib(fig):
    """A matplotlib figure of the plotly figure's bar and scatter traces (the same numbers)."""
    lay = fig.layout
    mfig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    bars = [t for t in fig.data if t.type == "bar"]
    stacked = lay.barmode in ("stack", "relative")
    horizontal = bool(bars) and all(t.orientation == "h" for t in bars)
    if bars:
        cats = []
        for t in bars:
            for c in (t.y if horizontal else t.x):
                if c not in cats:
                    cats.append(c)
        pos = {c: i for i, c in enumerate(cats)}
        width = 0.8 if stacked or len(bars) == 1 else 0.8 / len(bars)
        base = [0.0] * len(cats)
        for k, t in enumerate(bars):
            keys, vals = (t.y, t.x) if horizontal else (t.x, t.y)
            idx = [pos[c] for c in keys]
            off = 0 if stacked or len(bars) == 1 else (k - (len(bars) - 1) / 2) * width
            at = [i + off for i in idx]
            bottom = [base[i] for i in idx] if stacked else None
            color = t.marker.color if isinstance(t.marker.color, str) else None
            draw = ax.barh if horizontal else ax.bar
            kw = {"left": bottom} if horizontal else {"bottom": bottom}
            draw(at, list(vals), width, label=_esc(t.name) if t.name else None, color=color, **kw)
            if stacked:
                for i, v in zip(idx, vals):
                    base[i] += v
        (ax.set_yticks if horizontal else ax.set_xticks)(range(len(cats)))
        (ax.set_yticklabels if horizontal else ax.set_xticklabels)([_esc(c) for c in cats],
                                                                    rotation=0 if horizontal else 20,
                                                                    ha="right" if not horizontal else "right")
    for t in fig.data:
        if t.type == "scatter":
            mode = t.mode or "lines"
            style = ("-" if "lines" in mode else "") + ("o" if "markers" in mode else "")
            ax.plot(list(t.x), list(t.y), style or "-", label=_esc(t.name) if t.name else None)
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    for axis, kind in ((ax.xaxis, lay.xaxis.type), (ax.yaxis, lay.yaxis.type)):
        if kind == "log":
            (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log")
            axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(_esc(_text(lay.title)), fontsize=11)
    ax.set_xlabel(_esc(_text(lay.xaxis.title)))
    ax.set_ylabel(_esc(_text(lay.yaxis.title)))
    if any(t.name for t in fig.data) and len(fig.data) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    mfig.tight_layout()
    return mfig


def png_bytes(fig) -> bytes:
    mfig = to_matplotlib(fig)
    buf = io.BytesIO()
    mfig.savefig(buf, format="png")
    plt.close(mfig)
    return buf.getvalue()


def show(fig) -> None:
    """Display `fig` as one output: plotly JSON for Jupyter, a PNG for everything else."""
    fig.update_layout(template="plotly_white")
    bundle = {
        "application/vnd.plotly.v1+json": json.loads(fig.to_json()),
        "image/png": base64.b64encode(png_bytes(fig)).decode(),
        "text/plain": f"<figure: {_text(fig.layout.title)}>",
    }
    display(bundle, raw=True)

"""Presenting the validation: every case in-sample and cross-validated (leave one source out), per source."""
from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .report import fmt_pct, fmt_value, num


def _stats_dict(s: dict) -> dict:
    return {"median_abs": num(s["median_abs"]), "max_abs": num(s["max_abs"]), "cases": s["cases"],
            "failed": s["failed"]}


def rows_to_dict(rows: list, summary: dict) -> dict:
    """Pinned keys per case: case, group, metric, published, predicted, error, cv_predicted, cv_error, source;
    summary: in_sample / cross_validated {median_abs, max_abs}, by_source, and the former flat keys."""
    cases = []
    for row in rows:
        r = row.result
        d = {"case": r.case, "group": r.group, "metric": r.metric, "published": num(r.published),
             "predicted": num(r.predicted), "error": num(r.error), "cv_predicted": num(row.cv_predicted),
             "cv_error": num(row.cv_error), "source": r.source, "fitted_on": r.fitted_on}
        for key in ("note", "published_memory_gib", "predicted_memory_gib"):
            if getattr(r, key, None):
                d[key] = num(getattr(r, key)) if key.endswith("gib") else getattr(r, key)
        cases.append(d)
    ins, cv = summary["in_sample"], summary["cross_validated"]
    out = {"cases": summary["cases"], "in_sample": _stats_dict(ins), "cross_validated": _stats_dict(cv),
           "worst_cross_validated": summary["worst_cross_validated"],
           "by_source": {g: {k: _stats_dict(v) for k, v in s.items()} for g, s in summary["by_source"].items()},
           # the former flat keys (in-sample), kept for existing readers
           "median_abs_error": num(ins["median_abs"]), "max_abs_error": num(ins["max_abs"])}
    return {"cases": cases, "summary": out}


def _err_cell(e: float) -> Text:
    if not math.isfinite(e):
        return Text("—", style="red")
    style = "green" if abs(e) <= 0.1 else "yellow" if abs(e) <= 0.25 else "red"
    return Text(f"{100 * e:+.1f}%", style=style)


def render(rows: list, summary: dict, console: Console) -> None:
    """Per case: published, predicted out of sample (its source held out of the fit), that error, and the
    in-sample error; then a per-source table and the summary lines."""
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    t.add_column("case", no_wrap=True, max_width=38)
    t.add_column("metric", no_wrap=True, max_width=22)
    t.add_column("published", justify="right", no_wrap=True)
    t.add_column("predicted", justify="right", no_wrap=True)
    t.add_column("error\n(held out)", justify="right", no_wrap=True, min_width=7)
    t.add_column("in-\nsample", justify="right", no_wrap=True, min_width=7)
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row.result.group, []).append(row)
    for i, (group, rs) in enumerate(groups.items()):
        if i:
            t.add_section()
        sources = {row.result.source for row in rs}
        t.add_row(Text(group, style="bold"), Text(next(iter(sources)) if len(sources) == 1 else "", style="dim"))
        for row in rs:
            r = row.result
            if not math.isfinite(r.predicted):
                t.add_row("  " + r.case, r.metric, fmt_value(r.published), Text("failed", style="red"),
                          Text("—", style="red"), Text(getattr(r, "note", "") or "no prediction", style="red"))
                continue
            pred = row.cv_predicted if math.isfinite(row.cv_predicted) else r.predicted
            t.add_row("  " + r.case, r.metric, fmt_value(r.published), fmt_value(pred), _err_cell(row.cv_error),
                      _err_cell(r.error))
    console.print(t)
    s = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title="by source (|error|)")
    for col in ("source", "cases", "held out: median", "max", "in-sample: median", "max "):
        s.add_column(col, justify="left" if col == "source" else "right", no_wrap=True)
    for g, st in summary["by_source"].items():
        cv, ins = st["cross_validated"], st["in_sample"]
        s.add_row(g, str(cv["cases"] + cv["failed"]), fmt_pct(cv["median_abs"]), fmt_pct(cv["max_abs"]),
                  fmt_pct(ins["median_abs"]), fmt_pct(ins["max_abs"]))
    console.print(s)
    ins, cv = summary["in_sample"], summary["cross_validated"]
    failed = ins["failed"]
    console.print(Text.assemble(
        ("\nheld out (leave one source out)  ", "bold"),
        f"{summary['cases']} cases · median |error| {fmt_pct(cv['median_abs'])} · max {fmt_pct(cv['max_abs'])}"
        f" (worst: {summary['worst_cross_validated']})",
        ("\nin-sample (fitted on every source) ", "bold"),
        f"median |error| {fmt_pct(ins['median_abs'])} · max {fmt_pct(ins['max_abs'])}"
        + (f" · {failed} failed (plan error; not in the median/max)" if failed else "")))

"""`costsim search` output: a table, CSV, and the Pareto chart (plotly HTML, written atomically)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .engine import PlanResult, SearchResult

_PLAN_COLS = ("gpu", "num_gpus", "tp", "pp", "cp", "ep", "etp", "dp", "zero_stage", "micro_batch_size",
              "recompute", "schedule", "virtual_stages", "sequence_parallel")
_FIGURES = ("step_time_s", "wall_clock_days", "gpu_hours", "cost_usd", "mfu", "memory_gib_per_gpu")


def plan_label(plan: dict) -> str:
    p = plan
    parts = [f"{p['gpu']}×{p['num_gpus']}", f"tp{p['tp']} pp{p['pp']} dp{p['dp']}"]
    if p["cp"] > 1:
        parts.append(f"cp{p['cp']}")
    if p["ep"] > 1 or p["etp"] > 1:
        parts.append(f"ep{p['ep']} etp{p['etp']}")
    sched = p["schedule"] + (f" v{p['virtual_stages']}" if p["schedule"] == "interleaved" else "")
    parts += [sched, f"mbs{p['micro_batch_size']}", f"zero{p['zero_stage']}", f"rc:{p['recompute']}"]
    if p["sequence_parallel"]:
        parts.append("sp")
    return " ".join(parts)


def fmt_chance(p: float | None) -> str:
    """A chance as a table cell: '—' for none, '0%' for a certainty, '<1%' below one percent (0.5% is the
    record's floor)."""
    if p is None:
        return "—"
    if p == 0:
        return "0%"
    return "<1%" if p < 0.01 else f"{p:.0%}"


def _table(title: str, rows: list[PlanResult], beats: list[float | None] | None = None) -> Table:
    t = Table(title=title, title_justify="left")
    cols = ("#", "plan", "step s", "days", "GPU-h", "$", "MFU", "GiB/GPU") + (("beats #1",) if beats else ())
    for col in cols:
        t.add_column(col, justify="left" if col == "plan" else "right")
    for i, r in enumerate(rows, 1):
        t.add_row(str(i), plan_label(r.plan), f"{r.step_time_s:.3f}", f"{r.wall_clock_days:.2f}",
                  f"{r.gpu_hours:,.0f}", f"{r.cost_usd:,.0f}", f"{r.mfu:.1%}", f"{r.memory_gib_per_gpu:.1f}",
                  *([fmt_chance(beats[i - 1])] if beats else []))
    return t


def _beats_note(res: SearchResult, beats: list[float | None]) -> str | None:
    """How sure the ranking is: the caption of the 'beats #1' column."""
    import math

    from ..uncertainty import load_band
    record = (load_band() or {}).get("comparison")
    if record is None or not any(p is not None for p in beats):
        return None
    what, more = ("cheaper", "dearer") if res.objective == "cost" else ("faster", "slower")
    close = sum(1 for p in beats if p is not None and p >= 0.25)
    sure = math.exp(record["abs_log_diff_quantiles"][record["quantiles"].index(0.8)]) - 1   # ½·(1 − 0.8) = 10%
    cross = record.get("cross_gpu")
    return (f"beats #1: the chance a plan is in fact {what} than #1, from costsim's held-out errors on the ratio "
            f"of two runs of one source (median ±{100 * record['median']:.1f}% on one GPU type"
            + (f", ±{100 * cross['median']:.1f}% across types" if cross else "")
            + f"; {record['pairs']:,} pairs, {record['sources']} sources); a plan {100 * sure:.0f}% {more} than #1 "
            "on the same GPU type has a 10% chance; the same run at another price, none. "
            + (f"{close} of the others shown are too close to call (≥ 25%)." if close
               else "#1 leads every other plan shown by more than the median error."))


def render(res: SearchResult, console: Console) -> None:
    rejected = ", ".join(f"{k} {v:,}" for k, v in sorted(res.rejected.items(), key=lambda kv: -kv[1]))
    console.print(f"[bold]{res.scenario}[/bold] — phase {res.phase}, space {res.space}: {res.evaluated:,} plans "
                  f"in {res.seconds:.1f} s ({res.configs_per_s:,.0f}/s); {len(res.feasible):,} feasible; "
                  f"rejected: {rejected or 'none'}", highlight=False)
    if res.engine.get("fallback"):
        console.print(f"{res.engine['fallback']:,} plans costed one by one by the exact engine "
                      f"({res.engine.get('fallback_reason')}: not in the fast engine)", highlight=False)
    if not res.feasible:
        console.print("no feasible plan in this space; widen it (--space, a search: block) or add GPUs")
        return
    top = res.top
    beats = res.beats_best(top)
    console.print(_table(f"top {len(top)} by {res.objective}", top,
                         beats if any(p is not None for p in beats) else None))
    note = _beats_note(res, beats)
    if note:
        console.print(note, style="dim", highlight=False)
    console.print(_table(f"Pareto frontier (cost vs wall-clock): {len(res.pareto)} plans", res.pareto))


def _by_cost(res: SearchResult) -> tuple[list[PlanResult], list[bool]]:
    """Feasible plans by ascending (cost, days), and whether each is on the Pareto frontier."""
    feas = res.feasible
    if hasattr(feas, "order"):            # the fast engine's columns: sort indices, then make the rows
        order = feas.order("cost")
        front = set(feas.pareto_indices().tolist())
        return feas.rows(order), [int(i) in front for i in order]
    front_ids = {id(r) for r in res.pareto}
    rows = sorted(feas, key=lambda r: (r.cost_usd, r.wall_clock_days))
    return rows, [id(r) in front_ids for r in rows]


def to_csv(res: SearchResult) -> str:
    """Every feasible plan, one row each; `pareto` marks the frontier."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*_PLAN_COLS, *_FIGURES, "pareto"])
    if hasattr(res.feasible, "csv_rows"):   # the fast engine's columns, written without a PlanResult per plan
        w.writerows(res.feasible.csv_rows(_PLAN_COLS, _FIGURES))
        return buf.getvalue()
    for r, on_front in zip(*_by_cost(res)):
        w.writerow([r.plan[k] for k in _PLAN_COLS] + [repr(getattr(r, k)) for k in _FIGURES] + [int(on_front)])
    return buf.getvalue()


def write_pareto_html(res: SearchResult, path: str | Path) -> Path:
    """Plotly scatter of cost vs days for the feasible plans, the frontier highlighted, the plan on hover.
    Written like every file the CLI writes (costsim/safe_write.py): a new path or a regular file is replaced
    through a unique temporary file; a device or FIFO is written into; `-` is standard output."""
    import plotly.graph_objects as go

    from ..safe_write import check_target, write_text

    check_target(path, "-o")                    # refuse a directory or a missing folder before any work
    if hasattr(res.feasible, "order"):          # the fast engine's columns: sample before making rows
        order = res.feasible.order("cost")
        feas = res.feasible.rows(order[::len(order) // 50_000 + 1] if len(order) > 50_000 else order)
    else:
        feas = sorted(res.feasible, key=lambda r: (r.cost_usd, r.wall_clock_days))
    if len(feas) > 50_000:                      # keep the page usable: the frontier plus a sample of the rest
        step = len(feas) // 50_000 + 1
        feas = feas[::step]
    front = res.pareto

    def trace(rows: list[PlanResult], name: str, **kw) -> "go.Scattergl":
        return go.Scattergl(
            x=[r.wall_clock_days for r in rows], y=[r.cost_usd for r in rows], name=name,
            text=[f"{plan_label(r.plan)}<br>step {r.step_time_s:.3f} s, MFU {r.mfu:.1%}, "
                  f"{r.memory_gib_per_gpu:.1f} GiB/GPU, {r.gpu_hours:,.0f} GPU-h" for r in rows],
            hovertemplate="%{text}<br>%{x:.2f} days, $%{y:,.0f}<extra></extra>", **kw)

    fig = go.Figure([trace(feas, f"feasible plans ({len(res.feasible):,})", mode="markers",
                           marker=dict(size=5, color="lightsteelblue", opacity=0.6)),
                     trace(front, f"Pareto frontier ({len(front)})", mode="lines+markers",
                           marker=dict(size=9, color="crimson"), line=dict(color="crimson", shape="hv"))])
    fig.update_layout(title=f"{res.scenario} — {res.phase}: cost vs wall-clock ({res.evaluated:,} plans, "
                            f"space {res.space})", xaxis_title="wall-clock days", yaxis_title="cost (USD)",
                      template="plotly_white")
    return Path(write_text(path, fig.to_html(include_plotlyjs=True, full_html=True), "-o"))


# ---- a serve phase (search/serve.py) ----

_SERVE_COLS = ("role", "tp", "dp", "ep", "precision", "redundant_experts", "instance_gpus", "tokens_per_s_per_gpu",
               "tokens_per_s_per_node", "nodes", "instances", "tokens_per_s_per_request", "batch_per_gpu",
               "limited_by", "best")


def serving_label(s: dict) -> str:
    return (f"tp{s['tp']} dp{s['dp']} ep{s['ep']} {s['precision']}"
            + (f" r{s['redundant_experts']}" if s["redundant_experts"] else ""))   # r: redundant experts


def _vs_best(own, best) -> str:
    """How much dearer the scenario's own plan is than the search's best ('' without a best)."""
    if best is None:
        return ""
    return f" — {own.cost_usd / best.cost_usd - 1:+.2%} vs best (${own.cost_usd - best.cost_usd:,.0f})"


def render_serve(res, console: Console) -> None:
    def counts(role: str) -> str:
        rej = ", ".join(f"{k} {v:,}" for k, v in sorted(res.rejected[role].items(), key=lambda kv: -kv[1]))
        return (f"{role} {res.evaluated[role]:,} tried, {len(getattr(res, role)):,} feasible"
                + (f" (rejected: {rej})" if rej else ""))
    console.print(f"[bold]{res.scenario}[/bold] — serve phase {res.phase}: {counts('prefill')}; {counts('decode')}; "
                  f"{res.seconds:.1f} s. Ranked by cost: the role's deployed nodes, then tokens/s per GPU (the period is fixed: cost is the "
                  "only objective); r: redundant experts; batch: sequences per GPU", highlight=False)
    t = Table(title=f"top {min(res.top_n, len(res.prefill))} prefill instances", title_justify="left")
    for col in ("#", "instance", "GPUs", "in tok/s/node", "nodes", "instances"):
        t.add_column(col, justify="left" if col == "instance" else "right", no_wrap=col == "instance")
    for i, x in enumerate(res.prefill[: res.top_n], 1):
        t.add_row(str(i), serving_label(x.serving), str(x.gpus), f"{x.tokens_per_s_per_node:,.0f}",
                  f"{x.nodes:.1f}", str(x.instances))
    console.print(t)
    t = Table(title=f"top {min(res.top_n, len(res.decode))} decode instances", title_justify="left")
    for col in ("#", "instance", "GPUs", "out/s/node", "tok/s/req", "batch", "limit", "nodes"):
        t.add_column(col, justify="left" if col == "instance" else "right", no_wrap=col == "instance")
    for i, x in enumerate(res.decode[: res.top_n], 1):
        t.add_row(str(i), serving_label(x.serving), str(x.gpus), f"{x.tokens_per_s_per_node:,.0f}",
                  f"{x.tokens_per_s_per_request:.1f}", f"{x.batch_per_gpu:g}", x.limited_by, f"{x.nodes:.1f}")
    console.print(t)

    def line(c) -> str:
        return (f"prefill {serving_label(c.prefill.serving)} + decode {serving_label(c.decode.serving)}: "
                f"{c.nodes:.1f} nodes (prefill {c.prefill.nodes:.1f}, decode {c.decode.nodes:.1f}), "
                f"{c.gpu_hours:,.0f} GPU-h, ${c.cost_usd:,.0f}")
    if res.best is None:
        console.print("no feasible " + " or ".join(r for r in ("prefill", "decode") if not getattr(res, r))
                      + " instance in the grid")
    else:
        console.print("best:     " + line(res.best), highlight=False)
    if res.scenario_plan is not None:
        console.print("scenario: " + line(res.scenario_plan) + _vs_best(res.scenario_plan, res.best),
                      highlight=False)
    else:
        console.print(f"scenario: infeasible: {res.scenario_error}", highlight=False)


def serve_csv(res) -> str:
    """Every feasible prefill and decode instance, best first within each role; `best` marks the chosen pair."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_SERVE_COLS)
    for role in ("prefill", "decode"):
        chosen = getattr(res.best, role) if res.best else None
        for x in getattr(res, role):
            row = {**x.serving, "role": role, "instance_gpus": x.gpus,
                   "tokens_per_s_per_gpu": repr(x.tokens_per_s_per_gpu),
                   "tokens_per_s_per_node": repr(x.tokens_per_s_per_node), "nodes": repr(x.nodes),
                   "instances": x.instances, "best": int(x is chosen),
                   "tokens_per_s_per_request": "" if x.tokens_per_s_per_request is None else
                   repr(x.tokens_per_s_per_request),
                   "batch_per_gpu": "" if x.batch_per_gpu is None else repr(x.batch_per_gpu),
                   "limited_by": x.limited_by or ""}
            w.writerow([row[k] for k in _SERVE_COLS])
    return buf.getvalue()


_GEN_COLS = ("rank", "prefill", "serving", "prefill_tokens_per_s_per_gpu", "decode_tokens_per_s_per_gpu",
             "tokens_per_s_per_request", "batch_per_gpu", "gpu_hours", "wall_clock_days", "cost_usd")


def _gen_label(c) -> str:
    return (f"prefill {serving_label(c.prefill)} + " if c.prefill is not None else "") + serving_label(c.serving)


def render_generate(res, console: Console) -> None:
    rej = ", ".join(f"{k} {v:,}" for k, v in sorted(res.rejected.items(), key=lambda kv: -kv[1]))
    how = ("one instance prefills and decodes: candidates ranked by GPU-hours" if res.shared else
           "separate prefill instance: each role ranked on its own, the best prefill paired with the top decode "
           "instances")
    console.print(f"[bold]{res.scenario}[/bold] — generate phase {res.phase} on {res.num_gpus:,} GPUs: "
                  f"{res.evaluated:,} candidates, {res.feasible:,} feasible" + (f" (rejected: {rej})" if rej else "")
                  + f"; {res.seconds:.1f} s; {how}; pf/dec: prefill input and decode output tokens/s per GPU, tok/s/r: "
                  "per request, r: redundant experts", highlight=False)
    if not res.top:
        console.print("no feasible instance in the grid (see the rejections; more GPUs, fp8, or a lower speed "
                      "target)")
    t = Table(title=f"top {len(res.top)} by cost", title_justify="left")
    for col in ("#", "instance", "pf/GPU", "dec/GPU", "tok/s/r", "batch", "GPU-h", "days", "$"):
        t.add_column(col, justify="left" if col == "instance" else "right", no_wrap=col == "instance")
    for i, c in enumerate(res.top, 1):
        t.add_row(str(i), _gen_label(c), f"{c.prefill_tokens_per_s_per_gpu:,.0f}",
                  f"{c.decode_tokens_per_s_per_gpu:,.0f}", f"{c.tokens_per_s_per_request:.1f}",
                  f"{c.batch_per_gpu:g}", f"{c.gpu_hours:,.3g}", f"{c.wall_clock_days:.3g}", f"{c.cost_usd:,.3g}")
    if res.top:
        console.print(t)
    if res.scenario_plan is not None:
        own = res.scenario_plan
        console.print(f"scenario: {_gen_label(own)}: {own.gpu_hours:,.0f} GPU-h, {own.wall_clock_days:.2f} days, "
                      f"${own.cost_usd:,.0f}{_vs_best(own, res.best)}", highlight=False)
    else:
        console.print(f"scenario: infeasible: {res.scenario_error}", highlight=False)


def generate_csv(res) -> str:
    """Every costed candidate (pair), best first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_GEN_COLS)
    for i, c in enumerate(res.ranked, 1):
        w.writerow([i, serving_label(c.prefill) if c.prefill is not None else "", serving_label(c.serving),
                    *(repr(getattr(c, k)) for k in _GEN_COLS[3:])])
    return buf.getvalue()

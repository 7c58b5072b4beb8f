"""`costsim calibrate run | fit | compare`: a typer sub-app, thin over run.py, fit.py and compare.py."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..cli import Format, FormatOpt, user_errors

calibrate_app = typer.Typer(
    name="calibrate", no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
    help="Microbenchmarks on this machine, hardware profiles fitted to them, and predicted-vs-measured checks.")

Files = Annotated[list[Path], typer.Argument(help="Results files (calibrate run output or calibration/reference/*.json).",
                                             show_default=False)]


@calibrate_app.command("run")
def run_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Results file to write.")] = Path("calibration-results.json"),
    device: Annotated[str, typer.Option("--device", help="cuda, cpu, or auto (cuda if visible).")] = "auto",
    quick: Annotated[bool, typer.Option("--quick", help="A short pass (about five minutes on a GPU; seconds on a CPU).")] = False,
    scenario: Annotated[Optional[list[Path]], typer.Option(
        "--scenario", help="Also time this scenario's GEMM shapes (forward, input-grad, weight-grad); repeatable.")] = None,
    only: Annotated[Optional[str], typer.Option(
        "--only", help="Comma-separated families: gemm,memory,attention,collective,launch.")] = None,
    ranks: Annotated[int, typer.Option("--ranks", help="Collective ranks (default: every visible GPU).")] = 0,
) -> None:
    """Run the microbenchmarks (PyTorch) and write a results file (format: calibration/README.md)."""
    from .results import save_results
    from .run import FAMILIES, RunConfig, run_calibration

    err = Console(stderr=True)
    families = tuple(f.strip() for f in only.split(",") if f.strip()) if only else FAMILIES
    cfg = RunConfig(device=device, quick=quick, scenarios=list(scenario or []), families=families, ranks=ranks)
    start = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with user_errors():
        from ..safe_write import check_target
        check_target(output, "--output")      # before the benchmarks: an unwritable output fails at once
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("calibrating", total=None)

            def progress(i: int, n: int, label: str) -> None:
                bar.update(task, completed=i, total=n, description=label[:48].ljust(48))

            raw = run_calibration(cfg, progress)
        results = save_results(raw, output)
    counts = {}
    for e in results.entries:
        counts[e.family] = counts.get(e.family, 0) + 1
    summary = ", ".join(f"{n} {f}" for f, n in counts.items())
    err.print(f"{results.environment.summary}: {summary} in {time.perf_counter() - start:.1f} s; wrote {output}",
              markup=False)
    for what, why in results.settings.get("skipped", {}).items():
        err.print(f"skipped {what}: {why}", markup=False)


@calibrate_app.command("fit")
def fit_cmd(
    files: Files,
    base: Annotated[str, typer.Option("--base", help="Profile to start from: a name (costsim profiles) or a YAML path.",
                                      show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Profile YAML to write.", show_default=False)],
    name: Annotated[Optional[str], typer.Option("--name", help="Profile name (default: the output file's stem).")] = None,
) -> None:
    """Fit the cost kernel's hardware parameters to results files; write a profile with provenance."""
    from .fit import fit_profile
    from .profile_yaml import write_profile

    with user_errors():
        fit = fit_profile(files, base)
        hw = write_profile(fit, output, name)
    console = Console()
    table = Table(title=f"fit of {hw.name} on {fit.base.name} ({len(files)} results files)")
    for col in ("family", "entries", "log-RMSE", "fitted"):
        table.add_column(col, justify="right" if col in ("entries", "log-RMSE") else "left")
    for f in fit.families:
        table.add_row(f.name, str(f.entries), f"{f.log_rmse:.3f}", f.note)
    console.print(table)
    changes = Table(title="fitted numbers vs the base profile")
    for col in ("parameter", "base", "fitted", "change"):
        changes.add_column(col, justify="left" if col == "parameter" else "right", overflow="fold")
    for p in fit.params:
        old = _base_value(fit.base.path, p.path)
        changes.add_row(p.path, _fmt(old), _fmt(p.value), _change(old, p.value))
    console.print(changes)
    for note in fit.notes:
        console.print(note, markup=False)
    console.print(f"wrote {output}", markup=False)


@calibrate_app.command("compare")
def compare_cmd(
    files: Files,
    profile: Annotated[str, typer.Option("--profile", help="Profile name or YAML path.", show_default=False)],
    format: FormatOpt = Format.table,
) -> None:
    """Predicted (cost kernel, this profile) vs measured for every entry, with the error per family."""
    from .compare import compare, summarize

    with user_errors():
        hw, rows = compare(files, profile)
    summary = summarize(rows)
    if format is Format.json:
        data = {"profile": hw.name, "summary": summary,
                "rows": [{"file": r.file, "family": r.family, "what": r.what, "unit": r.unit, "measured": r.measured,
                          "predicted": r.predicted, "error": r.error, "source": r.source} for r in rows]}
        typer.echo(json.dumps(data, indent=2, allow_nan=False))
        return
    console = Console()
    table = Table(title=f"{hw.name}: predicted vs measured")
    for col in ("family", "entry", "unit", "measured", "predicted", "error"):
        table.add_column(col, justify="left" if col in ("family", "entry", "unit") else "right")
    for r in rows:
        table.add_row(r.family, r.what, r.unit, f"{r.measured:.4g}", _fmt(r.predicted, 4),
                      "—" if r.error is None else f"{r.error:+.1%}")
    console.print(table)
    fam = Table(title="by family")
    for col in ("family", "entries", "log-RMSE", "median |error|", "worst"):
        fam.add_column(col, justify="left" if col == "family" else "right")
    for name, s in summary.items():
        fam.add_row(name, str(s["entries"]), _fmt(s["log_rmse"], 3, fixed=True),
                    "—" if s["median_abs_error"] is None else f"{s['median_abs_error']:.1%}",
                    "—" if s["worst_error"] is None else f"{s['worst_error']:+.1%}")
    console.print(fam)


def _base_value(path: str, dotted: str):
    import yaml
    node = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node.get("value") if isinstance(node, dict) else None


def _fmt(v, digits: int = 5, fixed: bool = False) -> str:
    if v is None:
        return "—"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x, digits) for x in v) + "]"
    return f"{v:.{digits}f}" if fixed else f"{v:.{digits}g}"


def _change(old, new) -> str:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and old:
        return f"{new / old - 1:+.1%}"
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and all(old):
        worst = max((b / a - 1 for a, b in zip(old, new)), key=abs)
        return f"{worst:+.1%} (worst)"
    return "new" if old is None else "changed"

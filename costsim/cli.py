"""Command line: one command per verb, each a thin shell over a library call and a report function.

User errors (costsim.errors.CostsimError) print one line `error: <message>` on stderr and exit with code 2;
anything else is a bug and propagates with its traceback.
"""
from __future__ import annotations

import os

import sys

# One BLAS thread for the command line: numpy's OpenBLAS otherwise starts a thread per core at import, and
# their spinning cost ~0.06 s CPU of a 0.5 s `costsim estimate` (2-core box, issue 8) for no work at all (the
# only linear algebra here is the fits' few-parameter solves). setdefault: the user's setting wins; no effect
# where numpy was imported already (costsim used as a library); `calibrate` keeps the machine's own threading
# (its microbenchmarks run torch, whose BLAS may be an OpenBLAS too).
if sys.argv[1:2] != ["calibrate"]:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import importlib  # noqa: E402
import importlib.abc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console

from . import __version__, report
from .errors import CostsimError

app = typer.Typer(
    name="costsim",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


def _one_line_usage_error(exc) -> None:   # noqa: ANN001 (typer's vendored click.ClickException)
    """Typer's usage errors (`--replicates abc`, `--seed 1.5`) as one line, like every other error."""
    if type(exc).__name__ == "NoArgsIsHelpError":     # help was printed already
        return
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    typer.echo(f"error: {where}{' '.join(exc.format_message().split())}{hint}", err=True)


class _PatchRichUtilsOnImport(importlib.abc.MetaPathFinder):
    """Install `_one_line_usage_error` in typer.rich_utils when typer imports it (for --help or an error; typer
    looks the function up at each error). Importing it up front cost ~0.08 s of every command (rich.markdown,
    rich.traceback and attrs behind it, `python -X importtime`), a sixth of a whole `costsim estimate`."""

    NAME = "typer.rich_utils"

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201
        if name != self.NAME:
            return None
        sys.meta_path.remove(self)            # find the real spec below; patch once
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module):  # noqa: ANN001, ANN202
            real_exec(module)
            module.rich_format_error = _one_line_usage_error
        spec.loader.exec_module = exec_module
        return spec


if _PatchRichUtilsOnImport.NAME in sys.modules:
    sys.modules[_PatchRichUtilsOnImport.NAME].rich_format_error = _one_line_usage_error
else:
    sys.meta_path.insert(0, _PatchRichUtilsOnImport())

_TyperOption = importlib.import_module("typer.core").TyperOption
_display_type = _TyperOption.display_type_rich


def _flag_without_type(self, ctx):  # noqa: ANN001, ANN202
    """Boolean flags are plain flags in --help (`--simulate`, not `--simulate <bool>`): they take no value."""
    return None if getattr(self, "is_flag", False) else _display_type(self, ctx)


_TyperOption.display_type_rich = _flag_without_type


class Format(str, Enum):
    table = "table"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table for people, json for programs.")]


class EstimateFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


EstimateFormatOpt = Annotated[EstimateFormat, typer.Option(
    "--format", "-f", help="table for people, json for programs, csv for spreadsheets (a row per phase, then the "
                           "total).")]


def _stderr() -> Console:
    return Console(stderr=True)


@contextmanager
def user_errors(also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn a CostsimError (and `also`) into one stderr line and exit code 2; let everything else through."""
    try:
        yield
    except (CostsimError, *also) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__   # one line, whatever the message holds
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None


def _print_json(data: dict) -> None:
    typer.echo(json.dumps(data, indent=2, allow_nan=False))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"costsim {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = None,
) -> None:
    """Training-cost simulator for large transformers: GPU-hours, days, dollars, MFU and memory per GPU.

    Describe a run in a scenario YAML (model, cluster, parallel plan, phases, pricing; keys in `costsim schema`),
    then run `costsim estimate scenario.yaml`; `costsim profiles` lists the GPUs and models it knows.
    """


@app.command()
def estimate(
    scenario: Annotated[Path, typer.Argument(
        help="Scenario YAML file (see `costsim schema`).", show_default=False)],
    format: EstimateFormatOpt = EstimateFormat.table,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", metavar="KEY=VALUE",
        help="Override a scenario key, value parsed as YAML; repeatable. "
             "E.g. --set parallelism.pp=8 --set phases.0.tokens=1e12")] = None,
    simulate: Annotated[bool, typer.Option(
        "--simulate", help="Also simulate each step (SimPy) and the whole run with failures and checkpoints "
                           "(the scenario's reliability: block).")] = False,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Seed of the run's Monte-Carlo (overrides reliability.seed).")] = None,
    replicates: Annotated[Optional[int], typer.Option(
        "--replicates", help="Monte-Carlo replicates (overrides reliability.replicates).")] = None,
    ranges: Annotated[bool, typer.Option(
        "--ranges/--no-ranges", help="Cost the scenario's `ranges:` (inputs it is not sure of) at each value and "
                                     "over all their combinations.")] = True,
    extra_ranges: Annotated[Optional[list[str]], typer.Option(
        "--range", "-r", metavar="KEY=[V1, V2, …]",
        help="Add a range to the scenario's (values as YAML); repeatable. E.g. --range "
             "'phases.0.tokens_per_s_per_request=[20, 22]'")] = None,
) -> None:
    """Estimate every phase of a training run: step time, GPU-hours, days, $, MFU, memory per GPU; and, where
    the scenario lists `ranges:`, what the inputs it is not sure of do to the answer."""
    from .estimate import estimate as run_estimate
    from .scenario import load_scenario

    extra = ([f"reliability.seed={seed}"] if seed is not None else []) + (
        [f"reliability.replicates={replicates}"] if replicates is not None else [])
    with user_errors():
        sc = load_scenario(scenario, (overrides or []) + extra, extra_ranges)
        if format is not EstimateFormat.table:
            est = run_estimate(sc, base_dir=scenario.parent, simulate=simulate)
        else:
            what = "simulating" if simulate else "estimating"
            with _stderr().status(f"{what} {sc.name}…", spinner="dots"):
                est = run_estimate(sc, base_dir=scenario.parent, simulate=simulate)
        if ranges and sc.ranges:
            est.ranges = _cost_ranges(sc, scenario, show=format is EstimateFormat.table)
    if format is EstimateFormat.json:
        _print_json(report.estimate_to_dict(est))
    elif format is EstimateFormat.csv:
        typer.echo(report.estimate_to_csv(est), nl=False)
    else:
        report.render_estimate(est, Console())


def _cost_ranges(sc, path: Path, show: bool):
    """costsim.ranges.assumption_ranges, with a progress bar on stderr when `show` or stderr is a terminal."""
    from .ranges import assumption_ranges, count_runs

    if not (show or sys.stderr.isatty()):
        return assumption_ranges(sc, path.parent, source=str(path))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("ranges"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_stderr(), transient=True) as bar:
        task = bar.add_task("ranges", total=count_runs(sc))
        return assumption_ranges(sc, path.parent, progress=lambda done, total: bar.update(task, completed=done),
                                 source=str(path))


@app.command()
def timeline(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("timeline.html"),
    phase: Annotated[Optional[str], typer.Option(
        "--phase", help="Phase to draw (default: the first simulated one).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", metavar="KEY=VALUE", help="Override a scenario key, as for estimate.")] = None,
) -> None:
    """Write a self-contained HTML Gantt chart of one simulated step: a row per pipeline stage."""
    from .estimate import estimate as run_estimate
    from .scenario import load_scenario
    from .sim.step import simulate_phase
    from .sim.timeline import write_timeline

    from .safe_write import check_target

    with user_errors():
        check_target(output, "--output")      # before the work: an unwritable output fails at once
        sc = load_scenario(scenario, overrides or [])
        est = run_estimate(sc, base_dir=scenario.parent)
        sims = [p for p in est.phases if p.trained]
        chosen = next((p for p in sims if phase in (None, p.name)), None)
        if chosen is None:
            names = ", ".join(p.name for p in sims) or "none"
            what = f"--phase {phase}: no training phase of that name" if phase else "no training phase to simulate"
            raise CostsimError(f"{what} (generate, rl and serve phases have no step timeline); training "
                               f"phases: {names}")
        with _stderr().status(f"simulating one step of {chosen.name}…", spinner="dots"):
            res = simulate_phase(chosen.costs, overlap_slowdown=est.efficiency.overlap_slowdown, trace=True)
        try:
            out = write_timeline(res, f"{sc.name} — {chosen.name}: one step, {res.step_time_s:.2f} s", output)
        except OSError as exc:
            raise CostsimError(f"--output {output}: cannot write ({exc.strerror})") from None
    _stderr().print(f"wrote {out} ({chosen.name}, {len({e.rank for e in res.trace})} stages, "
                    f"step {res.step_time_s:.2f} s)", markup=False)


@app.command("report")
def report_page(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write (- for standard output).")
                      ] = Path("report.html"),
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", metavar="KEY=VALUE", help="Override a scenario key, as for estimate.")] = None,
) -> None:
    """Write one self-contained HTML page (works offline): cost by phase, step waterfall, memory, timeline,
    GPU-count scaling, every GPU type at its own price, and the uncertainty band."""
    from .report_page import write_report
    from .safe_write import check_target

    def progress(msg: str) -> None:
        typer.echo(msg, err=True)

    with user_errors():
        check_target(output, "--output")      # before the work: an unwritable output fails at once
        out, data = write_report(scenario, output, overrides or [], progress)
    skipped = sum(v.est is None for v in data.by_count + data.by_gpu)
    if str(out) != "-":
        size = Path(out).stat().st_size if Path(out).is_file() else 0
        left_out = f"; {skipped} variants left out, see the page" if skipped else ""
        typer.echo(f"wrote {out} ({size / 1e6:.1f} MB{left_out})", err=True)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the scenario file (every key, its type, default and description)."""
    from .scenario import Scenario

    typer.echo(json.dumps(Scenario.model_json_schema(), indent=2))


@app.command()
def profiles(
    show: Annotated[Optional[str], typer.Option(
        "--show", metavar="NAME", help="Print every field of one hardware profile with its source.")] = None,
) -> None:
    """List the hardware profiles and built-in models, or show one profile in full."""
    from .hardware import list_profiles, load_profile
    from .model import builtin_model_names, load_builtin

    console = Console()
    with user_errors(also=(ValueError,)):
        if show is not None:
            console.print(report.profile_table(load_profile(show)))
            return
        hw = [load_profile(n) for n in list_profiles()]
        models = [load_builtin(n) for n in builtin_model_names()]
    console.print(report.profiles_table(hw))
    console.print(report.models_table(models))


@app.command()
def validate(
    format: FormatOpt = Format.table,
    fit: Annotated[bool, typer.Option(
        "--fit", help="Refit the global efficiency parameters (on every source, and once without each source "
                      "for the held-out errors) and write costsim/fitted.json first; several minutes.")] = False,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="PATH", help="With --fit: write the fitted parameters (and their error band) "
                                               "to PATH instead of the package's costsim/fitted.json, and "
                                               "validate with them.")] = None,
) -> None:
    """Run the public validation cases: predicted vs published, each predicted with its own source held out of
    the fit (leave one source out) and in-sample."""
    from . import report_validation
    from .crossval import cross_validate
    from .validate import all_cases

    if output is not None and not fit:
        raise typer.BadParameter("-o/--output is the file --fit writes; give --fit too", param_hint="--output")
    record = None
    if fit:
        with user_errors():
            if output is not None:
                from .safe_write import check_target
                check_target(output, "--output")    # refuse a directory or a missing folder before minutes of work
            written = _refit(str(output) if output is not None else None)
        if output is not None:
            record = json.loads(Path(written).read_text())
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    columns = (TextColumn("validating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_stderr(), transient=True) as bar:
        task = bar.add_task("cases", total=None)

        def progress(i: int, n: int) -> None:
            bar.update(task, completed=i, total=n)

        rows, summary = cross_validate(progress=progress, record=record)
    if fit:   # the p10–p90 band every estimate shows, from these held-out errors (costsim/uncertainty.py)
        from .uncertainty import error_band, write_band
        write_band(error_band(rows, list(all_cases())), str(output) if output is not None else None)
    if format is Format.json:
        _print_json(report_validation.rows_to_dict(rows, summary))
    else:
        report_validation.render(rows, summary, Console())


def _refit(path: str | None = None) -> str:
    from .fit import fit as run_fit, write_fitted

    err = _stderr()
    with err.status("fitting global efficiency parameters") as status:
        res = run_fit(progress=lambda msg: status.update(f"fitting ({msg})"))
    path = write_fitted(res, path)
    e = res.eff
    bound = f"; at a bound: {', '.join(res.at_bound())}" if res.at_bound() else ""
    err.print(f"fitted compute_derate {e.compute_derate:.4f}, kernel_overhead {e.kernel_overhead_s * 1e6:.2f} µs,"
              f" overlap_slowdown {e.overlap_slowdown:.4f}; log-RMSE {res.before ** .5:.3f} → {res.after ** .5:.3f}"
              f"{bound}; wrote {path}", markup=False)
    return path


from .calibrate.cli import calibrate_app  # noqa: E402  (after user_errors, which the sub-app uses)
app.add_typer(calibrate_app, name="calibrate")
from .search.cli import search_command  # noqa: E402
app.command(name="search")(search_command)

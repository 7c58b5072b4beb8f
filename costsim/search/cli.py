"""`costsim search`: the command (registered by costsim/cli.py)."""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..cli import user_errors
from ..errors import CostsimError


class SearchFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class Executor(str, Enum):
    local = "local"
    dask = "dask"


class Engine(str, Enum):
    fast = "fast"
    exact = "exact"


class Objective(str, Enum):
    cost = "cost"
    time = "time"
    pareto = "pareto"


def search_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file (its search: block, if any, sets the "
                                             "space).", show_default=False)],
    phase: Annotated[Optional[str], typer.Option(
        "--phase", help="Phase to plan (default: the first simulated one).")] = None,
    objective: Annotated[Objective, typer.Option(
        "--objective", help="Rank the top plans by cost, by wall-clock time, or list the Pareto front (a serve "
        "or generate phase: cost only, its work being fixed).")] = Objective.cost,
    top: Annotated[int, typer.Option("--top", help="How many top plans to show.")] = 10,
    space: Annotated[Optional[str], typer.Option(
        "--space", metavar="wide|PATH", help="`wide` (every dimension open, num_gpus ×¼…×4, every shipped GPU) "
        "or a YAML file of search keys; default: the scenario's search: block over sensible defaults.")] = None,
    format: Annotated[SearchFormat, typer.Option("--format", "-f", help="table, json or csv (every feasible "
                                                 "plan).")] = SearchFormat.table,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Also write a plotly HTML scatter of cost vs days, the frontier highlighted.")
    ] = None,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", metavar="KEY=VALUE", help="Override a scenario key, as for estimate.")] = None,
    executor: Annotated[Executor, typer.Option(
        "--executor", help="local: this process; dask: the space split over a dask.distributed cluster.")
    ] = Executor.local,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", help="Local processes for --executor local (the space split by gpu and num_gpus; "
                             "with --engine exact also by tp, sp, pp).")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(
        "--scheduler", metavar="ADDRESS", help="dask scheduler address (tcp://host:8786); default: a "
        "LocalCluster on this machine.")] = None,
    engine: Annotated[Engine, typer.Option(
        "--engine", help="fast: plans combined over arrays (numba); exact: `estimate` per plan (slow, the "
        "reference; the same figures).")] = Engine.fast,
) -> None:
    """Search parallel plans (and optionally GPU types and counts) for the cheapest or fastest way to run a
    phase: every legal plan costed by the same code as `estimate`, infeasible ones counted by reason. A serve
    phase: the prefill and decode instances needing the fewest nodes (whole instances) for its load, and the
    cheapest pair. A generate phase (--phase naming it): the serving instance(s) that generate cheapest."""
    from ..scenario import load_scenario
    from .engine import search
    from .generate import GenerateSearchResult, generate_phase_index
    from .output import generate_csv, render, render_generate, render_serve, serve_csv, to_csv, write_pareto_html
    from .serve import ServeSearchResult, serve_phase_index
    from .space import load_space_file

    with user_errors():
        sc = load_scenario(scenario, overrides or [])
        wide = space == "wide"
        sp = load_space_file(space) if space is not None and not wide else None
        if output is not None and (serve_phase_index(sc, phase) is not None
                                   or generate_phase_index(sc, phase) is not None):
            raise CostsimError("-o: the Pareto chart is for training phases (a serve or generate phase's work is "
                               "fixed: cost alone ranks its plans)")
        if output is not None:
            from ..safe_write import check_target
            check_target(output, "-o")          # a directory or a missing folder: refused before the search
        kwargs = dict(base_dir=scenario.parent, phase=phase, objective=objective.value, top=top, space=sp,
                      wide=wide, space_name=space, executor=executor.value, scheduler=scheduler, jobs=jobs,
                      engine=engine.value)
        if scheduler is not None and executor is not Executor.dask:
            raise CostsimError("--scheduler: only with --executor dask")
        if format is SearchFormat.table and sys.stderr.isatty():
            columns = (TextColumn("searching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("plans", total=None)
                res = search(sc, progress=lambda i, n: bar.update(task, completed=i, total=n), **kwargs)
        else:
            res = search(sc, **kwargs)
        written = write_pareto_html(res, output) if output is not None else None
    kind = "serve" if isinstance(res, ServeSearchResult) else "generate" if isinstance(
        res, GenerateSearchResult) else "train"
    if format is SearchFormat.json:
        typer.echo(json.dumps(res.to_dict(), indent=2, allow_nan=False))
    elif format is SearchFormat.csv:
        typer.echo({"serve": serve_csv, "generate": generate_csv, "train": to_csv}[kind](res), nl=False)
    else:
        {"serve": render_serve, "generate": render_generate, "train": render}[kind](res, Console())
    if written is not None:
        Console(stderr=True).print(f"wrote {written} ({len(res.feasible):,} feasible plans, "
                                   f"{len(res.pareto)} on the frontier)", markup=False, highlight=False)

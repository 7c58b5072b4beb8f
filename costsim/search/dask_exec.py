"""`costsim search --executor dask`: the space's (gpu, num_gpus, tp, sp, pp) parts on a dask cluster.

An existing scheduler by address (`dask scheduler` / `dask worker ADDRESS` on the machines, costsim installed
on each), or a LocalCluster on this machine when none is given. Each part runs the local executor's code for
the chosen engine (`engine.space_evaluator`) and the parts are merged in enumeration order, so the result is
the local one (tests/test_search.py checks it). Profiles and models named by path must be readable by the workers at
the same absolute path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import CostsimError
from .engine import PlanResult, gpu_partitions, merge_parts, partitions, space_evaluator


def _part(sc, base_dir: str, phase: str | None, dims: dict, engine: str = "exact"
          ) -> tuple[int, list[PlanResult], dict[str, int]]:
    return space_evaluator(engine)(sc, Path(base_dir), phase, dims)


def run_dask(sc, base_dir: Path, phase: str | None, dims: dict, scheduler: str | None = None,
             progress: Callable[[int, int], None] | None = None, cluster_kwargs: dict | None = None,
             engine: str = "exact") -> tuple[int, list[PlanResult], dict[str, int]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise CostsimError("--executor dask: needs dask.distributed (pip install -e '.[dask]')") from None
    # the fast engine shares its key tables across a part's plans: fewer, bigger parts (gpu, num_gpus) suit it
    parts = partitions(dims) if engine == "exact" else gpu_partitions(dims)
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="5s")
        else:
            cluster = LocalCluster(**(cluster_kwargs or {"processes": True, "threads_per_worker": 1,
                                                         "dashboard_address": None}))
            client = Client(cluster)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CostsimError(f"--scheduler {scheduler}: cannot connect ({' '.join(str(exc).split())[:200]})") from None
    try:
        futures = [client.submit(_part, sc, str(Path(base_dir).resolve()), phase, d, engine, pure=False) for d in parts]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(futures)
        done = 0
        for fut in as_completed(futures):
            results[index[fut.key]] = fut.result()
            done += 1
            if progress is not None:
                progress(done, len(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return merge_parts(results)

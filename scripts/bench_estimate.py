"""Benchmark: CPU seconds of a warm `costsim estimate` process, this tree against a baseline commit, paired.

    python scripts/bench_estimate.py [--baseline REF] [--runs N] [--scenario PATH]

Issue 8's target: `costsim estimate scenarios/deepseek-v3.yaml` as a warm process in at most half of the CPU
time it took before (0.89 s then). The baseline is `git archive REF` unpacked into a temporary directory (no
worktree, nothing written under .git); each tree runs as `python -m costsim` with that tree first on
PYTHONPATH. "Warm": the .pyc files and numba's on-disk cache are written by two untimed runs first (with
PYTHONDONTWRITEBYTECODE removed, which would otherwise recompile every module each time and charge the tree
that was edited last). Then the two trees alternate, run by run (paired: the machine's drift hits both), and
the CPU time is user + system of the child from os.wait4, threads included (OpenBLAS's idle spinning counts).

Prints each tree's median CPU seconds, the median of the per-pair ratios, and whether the two trees' JSON
output is byte-identical. Not a test. About 30 s on 2 cores with the default 9 runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = ROOT / "scenarios" / "deepseek-v3.yaml"


def cpu_seconds(cmd: list[str], env: dict, cwd: Path) -> tuple[float, bytes]:
    """(user + system CPU seconds of the child, its stdout)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        err = proc.stderr.read()
        proc.stderr.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} (cwd {cwd}) exited {proc.returncode}:\n{err.decode()[-2000:]}")
        out.seek(0)
        return usage.ru_utime + usage.ru_stime, out.read()


def tree_env(tree: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "NUMBA_DISABLE_JIT")}
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("COSTSIM_HWPROFILES", None)          # each tree reads its own hwprofiles/
    return env


def export(ref: str, dest: Path) -> None:
    """The tree of `ref` (a commit) as plain files under `dest`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="HEAD", help="commit to compare with (default HEAD: the last commit)")
    ap.add_argument("--runs", type=int, default=9, help="timed runs per tree (default 9)")
    ap.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    args = ap.parse_args()
    scenario = args.scenario.resolve()

    with tempfile.TemporaryDirectory(prefix="costsim-baseline-") as tmp:
        base = Path(tmp)
        export(args.baseline, base)
        trees = {"baseline": base, "current": ROOT}
        # the scenario from each tree where it exists there (relative paths inside it resolve alike)
        rel = scenario.relative_to(ROOT) if scenario.is_relative_to(ROOT) else None
        scen = {name: str(t / rel) if rel is not None and (t / rel).is_file() else str(scenario)
                for name, t in trees.items()}

        def run(name: str, fmt: str = "table") -> tuple[float, bytes]:
            cmd = [sys.executable, "-m", "costsim", "estimate", scen[name], "--format", fmt]
            return cpu_seconds(cmd, tree_env(trees[name]), trees[name])

        for name in trees:                      # warm: .pyc files, numba's cache, the OS page cache
            for _ in range(2):
                run(name)
        json_out = {name: run(name, "json")[1] for name in trees}
        cpu: dict[str, list[float]] = {name: [] for name in trees}
        for i in range(args.runs):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                cpu[name].append(run(name)[0])

    ratios = [c / b for b, c in zip(cpu["baseline"], cpu["current"])]
    print(f"costsim estimate {scenario.name}, warm process, CPU s (user+sys), {args.runs} paired runs, "
          f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    for name in trees:
        xs = cpu[name]
        label = f"{name} ({args.baseline})" if name == "baseline" else f"{name} (working tree)"
        print(f"  {label:<28} median {statistics.median(xs):.3f}  min {min(xs):.3f}  max {max(xs):.3f}")
    print(f"  current / baseline            median {statistics.median(ratios):.3f}  "
          f"(per pair {min(ratios):.3f} … {max(ratios):.3f})")
    same = json_out["baseline"] == json_out["current"]
    print(f"  --format json output          {'byte-identical' if same else 'DIFFERS'}")


if __name__ == "__main__":
    main()

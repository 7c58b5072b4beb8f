"""Execute every notebook in notebooks/ top to bottom (nbclient); fail on the first error.

    python scripts/run_notebooks.py            # CI: execute, fail on an error, write nothing
    python scripts/run_notebooks.py --write    # also save the outputs into the notebooks (to commit them)
    python scripts/run_notebooks.py --write notebooks/a.ipynb   # only some

Needs the `notebooks` extra: pip install -e '.[notebooks]'.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"


def run(path: Path, write: bool) -> float:
    nb = nbformat.read(path, as_version=4)
    t = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}}).execute()
    dt = time.perf_counter() - t



    if write:
        nbformat.write(nb, path)
    return dt


def main(argv: list[str]) -> int:
    write = "--write" in argv
    paths = [Path(a).resolve() for a in argv if a != "--write"] or sorted(NB_DIR.glob("*.ipynb"))
    total = 0.0
    for p in paths:
        dt = run(p, write)
        total += dt
        print(f"{p.name}: executed in {dt:.1f} s")
    print(f"{len(paths)} notebooks in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The shipped notebooks are committed executed, top to bottom, with a static image for every figure.

Executing them needs a Jupyter kernel (the `notebooks` extra); .ci/run does that with scripts/run_notebooks.py
and fails on an error in any cell. Here, without a kernel: each committed notebook was run in one pass, has its
outputs, no error, and every plotly figure carries a PNG beside it (renders where JavaScript does not).
"""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
EXPECTED = {"what-ifs", "deepseek-v3-5.6m", "gpu-types", "fp8-vs-bf16", "gpu-count-and-failures",
            "hundreds-of-millions", "compute-optimal"}
FIGURE_TYPES = ("application/vnd.plotly.v1+json", "text/html", "image/svg+xml")


def test_the_notebooks_are_there():
    assert EXPECTED <= {p.stem for p in NOTEBOOKS}


def _code_cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_from_one_run(path):
    cells = _code_cells(path)
    assert cells
    counts = [c.get("execution_count") for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: not executed top to bottom in one run: {counts}"
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert outputs, f"{path.name}: committed without outputs (python scripts/run_notebooks.py --write)"
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    text = "".join("".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream")
    assert "Traceback" not in text and "Error" not in text.replace("error", "")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_has_a_static_image(path):
    figures = 0
    for c in _code_cells(path):
        for o in c.get("outputs", []):
            data = o.get("data", {})
            if any(k in data for k in FIGURE_TYPES):
                figures += 1
                assert "image/png" in data and len(data["image/png"]) > 2000, \
                    f"{path.name}: a figure without a PNG fallback: {list(data)}"
    assert figures, f"{path.name}: no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_compiles_and_quotes_the_band(path):
    src = "\n".join("".join(c["source"]) for c in _code_cells(path))
    compile(src, str(path), "exec")
    assert "band(" in src, f"{path.name}: quote the estimate's p10-p90 band"

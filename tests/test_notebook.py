"""The shipped notebook runs top to bottom (examples are tests)."""
import json
import os
from pathlib import Path

NB = Path(__file__).resolve().parent.parent / "notebooks" / "what-ifs.ipynb"


def test_notebook_code_cells_run(capsys):
    nb = json.loads(NB.read_text())
    code = [("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    cwd = os.getcwd()
    os.chdir(NB.parent)
    try:
        env: dict = {}
        for cell in code:
            exec(compile(cell, str(NB), "exec"), env)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "GPU-hours" in out and "on H100" in out

"""Packaging: the data the installed package needs is package data (setup.py maps the top-level folders in),
and costsim/paths.py finds it in a checkout."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from costsim import paths
from costsim.hardware import list_profiles, profiles_dir

REPO = Path(__file__).resolve().parent.parent


def test_checkout_paths_are_the_repo_folders():
    assert paths.hwprofiles_dir() == REPO / "hwprofiles"
    assert paths.scenarios_dir() == REPO / "scenarios"
    assert paths.calibration_reference_dir() == REPO / "calibration" / "reference"
    assert paths.fitted_json().is_file() and paths.models_dir().is_dir()


def test_hwprofiles_override(monkeypatch, tmp_path):
    (tmp_path / "x.yaml").write_text("name: x\n")
    monkeypatch.setenv("COSTSIM_HWPROFILES", str(tmp_path))
    assert profiles_dir() == tmp_path and list_profiles() == ["x"]


def test_no_source_path_outside_the_package():
    # every data path goes through costsim/paths.py
    for py in (REPO / "costsim").rglob("*.py"):
        if py.name != "paths.py":
            assert "parent.parent" not in py.read_text(encoding="utf-8"), py


def test_wheel_carries_the_data(tmp_path):
    # built from a copy: pip builds in the source tree (build/), which concurrent runs would share
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("costsim", "hwprofiles", "scenarios", "calibration"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(src)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("costsim-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "costsim/fitted.json" in names and "costsim/paths.py" in names
    for name, folder in paths.DATA_DIRS.items():
        shipped = {p.name for p in (REPO / folder).iterdir() if p.suffix in (".yaml", ".json")}
        assert shipped and {f"costsim/_data/{name}/{f}" for f in shipped} <= names, name
    models = {f"costsim/models/{p.name}" for p in (REPO / "costsim" / "models").glob("*.json")}
    assert models <= names

"""Build hook: the repository's top-level data folders become package data under costsim/_data/.

pyproject.toml holds the metadata; this file only lists the packages, so that hwprofiles/, scenarios/ and
calibration/reference/ stay where they are in the repository and are mapped into the wheel at build time
(costsim/paths.py finds them in either layout).
"""
import runpy
from pathlib import Path

from setuptools import find_packages, setup

# the one mapping, read from costsim/paths.py without importing the package (it imports only pathlib)
DATA_DIRS = runpy.run_path(str(Path(__file__).resolve().parent / "costsim" / "paths.py"))["DATA_DIRS"]

data_packages = {f"costsim._data.{name}": folder for name, folder in DATA_DIRS.items()}

setup(
    # costsim.models holds only the built-in models' JSON (no __init__.py), so it is listed by name
    packages=find_packages(include=["costsim", "costsim.*"]) + ["costsim.models", *data_packages],
    package_dir=data_packages,
    package_data={"costsim": ["fitted.json"], "costsim.models": ["*.json"],
                  **{pkg: ["*.yaml", "*.yml", "*.json"] for pkg in data_packages}},
)

"""Where costsim's data lives, in a checkout and when installed.

The repository keeps its data in top-level folders (hwprofiles/, scenarios/, calibration/reference/); a wheel
carries copies of them as package data under costsim/_data/ (setup.py maps them in at build time). Each
function here returns the installed copy where there is one, else the checkout's folder (editable install,
or running from the source tree). Built-in models and fitted.json are package data in both layouts.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent

# name under costsim/_data/ in a wheel -> folder in the repository (setup.py reads this mapping too)
DATA_DIRS = {"hwprofiles": "hwprofiles", "scenarios": "scenarios", "calibration_reference": "calibration/reference"}


def data_dir(name: str) -> Path:
    """The folder holding data set `name` (a key of DATA_DIRS): the installed copy, else the checkout's."""
    installed = PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return REPO / DATA_DIRS[name]


def hwprofiles_dir() -> Path:
    """Shipped hardware profiles (hardware.profiles_dir() adds the $COSTSIM_HWPROFILES override)."""
    return data_dir("hwprofiles")


def scenarios_dir() -> Path:
    """Shipped scenarios (validation reads deepseek-v3.yaml from here)."""
    return data_dir("scenarios")


def calibration_reference_dir() -> Path:
    """Public measurements the shipped profiles are fitted from (calibration/reference/)."""
    return data_dir("calibration_reference")


def models_dir() -> Path:
    """Built-in model configs (costsim/models/*.json)."""
    return PACKAGE / "models"


def fitted_json() -> Path:
    """The global fitted parameters (costsim/fitted.json)."""
    return PACKAGE / "fitted.json"

"""Shipped reference data: valid results files with a source per entry; the shipped h100-sxm and h800-sxm
profiles are `costsim calibrate fit` on them (regenerated here and compared); compare reports their errors."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from costsim.calibrate.compare import compare, summarize
from costsim.calibrate.fit import fit_profile
from costsim.calibrate.fit_gemm import GemmPoint, fit_gemm
from costsim.calibrate.profile_yaml import render_profile
from costsim.calibrate.results import load_results
from costsim.hardware import load_profile

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "calibration" / "reference"
RECIPES = yaml.safe_load((REF / "recipes.yaml").read_text())


def recipe_files(name: str) -> list[str]:
    return [f"calibration/reference/{f}" for f in RECIPES[name]]


@pytest.mark.parametrize("path", sorted(REF.glob("*.json")), ids=lambda p: p.stem)
def test_reference_files_are_valid_and_cited(path):
    r = load_results(path)
    assert r.environment.device == "published" and r.entries
    assert all(e.source and e.source.startswith("hardware.md") for e in r.entries)


def test_recipes_name_existing_files():
    assert set(RECIPES) == {"h100-sxm", "h800-sxm"}
    for files in RECIPES.values():
        for f in files:
            assert (REF / f).is_file(), f


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_shipped_profile_is_the_fit_of_its_reference_data(name, monkeypatch):
    monkeypatch.chdir(ROOT)            # sources cite the files as the recipe names them
    fit = fit_profile(recipe_files(name), name)
    text = render_profile(fit, name, load_profile(name).description)
    committed = (ROOT / "hwprofiles" / f"{name}.yaml").read_text()
    assert text == committed, (f"hwprofiles/{name}.yaml is not the output of `costsim calibrate fit` on "
                               f"calibration/reference (recipes.yaml); regenerate it (calibration/README.md)")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_regenerated_numbers_are_the_cost_models(name, monkeypatch):
    """The numbers validation and the global fit rest on (README, Validation)."""
    monkeypatch.chdir(ROOT)
    values = {p.path: p.value for p in fit_profile(recipe_files(name), name).params}
    assert values["compute.gemm.mamf_tflops.bf16"] == 794.5 and values["compute.gemm.mamf_tflops.fp8"] == 1402.6
    assert values["compute.gemm.mamf_shape.bf16"] == [2048, 2048, 13312]
    assert (values["compute.gemm.tile_m"], values["compute.gemm.tile_n"], values["compute.gemm.k_half"]) == (128, 128, 500)
    assert values["compute.attention.fwd_tflops"] == [292, 423, 521, 579, 602, 616]
    assert values["compute.attention.bwd_tflops"] == [252.8, 366.2, 451.1, 501.3, 521.2, 533.3]
    assert values["memory.hbm_bw_stream_tbs"] == 3.0
    assert values["intra_node.latency_us"] == 3.33 and values["inter_node.latency_us"] == 3.7
    assert values["inter_node.busbw_gbs.all_to_all"] == 50 and values["inter_node.busbw_gbs.p2p"] == 47
    intra = {k.rsplit(".", 1)[1]: v for k, v in values.items() if k.startswith("intra_node.busbw_gbs.")}
    assert intra == ({"all_reduce": 370, "all_gather": 365, "reduce_scatter": 365, "all_to_all": 320}
                     if name == "h100-sxm" else {"all_to_all": 155})


def test_gemm_shape_fit_is_scripts_fit_gemm_shape():
    spec = importlib.util.spec_from_file_location("fit_gemm_shape", ROOT / "scripts" / "fit_gemm_shape.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rmse, k_half, plateau = script.fit(128, 128)
    best = min((script.fit(*t) + t for t in ((64, 128), (128, 128), (128, 256), (256, 128))), key=lambda r: r[0])
    r = load_results(REF / "deepgemm-h800-sxm.json")
    fit = fit_gemm([GemmPoint(e, None) for e in r.entries], load_profile("h800-sxm"), 3.0e12)
    assert fit.tile == best[3:] == (128, 128)
    assert fit.k_half == k_half == 500
    assert fit.shape_rmse == pytest.approx(rmse, abs=1e-9)
    assert fit.scales[("deepgemm", "fp8")] / 1e12 == pytest.approx(plateau, rel=1e-9)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_compare_on_reference_data(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    hw, rows = compare(recipe_files(name), name)
    assert all(r.predicted and r.predicted > 0 for r in rows)
    s = summarize(rows)
    assert set(s) >= {"gemm", "attention", "memory", "collective", "latency"}
    # what the fit used is reproduced exactly; the rest is reported, not fitted
    exact = [r for r in rows if r.family == "attention" and "fa3 fwd causal hd128" in r.what]
    assert len(exact) == 6 and all(abs(r.error) < 1e-9 for r in exact)
    assert s["memory"]["log_rmse"] < 1e-9
    assert s["gemm"]["log_rmse"] < 0.25 and s["attention"]["log_rmse"] < 0.4 and s["collective"]["log_rmse"] < 0.2

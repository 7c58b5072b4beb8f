"""calibrate fit: recovers known parameters from synthetic data; provenance; rounding; bad input is one line."""
from __future__ import annotations

import json

import pytest
import yaml

from costsim.calibrate.fit import fit_profile, round_value
from costsim.calibrate.profile_yaml import write_profile
from costsim.calibrate.results import ResultsError, load_results
from costsim.hardware import load_profile

from calibrate_synth import TRUE, all_entries, write


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synth")
    path = write(tmp / "synthetic.json", all_entries(), summary="8x Synthetic GPU")
    fit = fit_profile([path], "h100-sxm")
    hw = write_profile(fit, tmp / "my-gpu.yaml")
    return fit, hw, tmp


def test_recovers_gemm_tile_k_half_and_plateau(synthetic):
    fit, hw, _ = synthetic
    assert (hw.gemm_tile_m, hw.gemm_tile_n) == TRUE["tile"]
    assert hw.gemm_k_half == pytest.approx(TRUE["k_half"], rel=0.02)        # grid step 10
    from costsim.kernels import hw_row, P_RATE_BF16
    assert hw_row(hw)[P_RATE_BF16] == pytest.approx(TRUE["plateau_bf16"], rel=0.01)
    gemm = next(f for f in fit.families if f.name == "gemm")
    assert gemm.log_rmse < 0.01


def test_recovers_memory_bandwidth(synthetic):
    fit, hw, _ = synthetic
    assert hw.hbm_bw_stream == pytest.approx(TRUE["bw"], rel=0.01)
    assert hw.hbm_bw_elementwise == pytest.approx(TRUE["bw"], rel=0.01)
    mem = [f for f in fit.families if f.name.startswith("memory")]
    assert len(mem) == 2 and all(f.log_rmse < 0.01 for f in mem)


def test_recovers_collective_busbw_and_latency(synthetic):
    _, hw, _ = synthetic
    for coll, b in TRUE["busbw"].items():
        assert hw.nvlink_busbw[coll] == pytest.approx(b, rel=0.02), coll
    assert hw.nvlink_latency_s == pytest.approx(TRUE["alpha"], rel=0.05)
    assert hw.nvlink_busbw["p2p"] == load_profile("h100-sxm").nvlink_busbw["p2p"]   # no data: base kept


def test_recovers_attention_curve(synthetic):
    _, hw, _ = synthetic
    assert hw.attn_seq_len == TRUE["seq"]
    assert hw.attn_fwd_flops == pytest.approx(TRUE["fwd"], rel=0.002)
    assert hw.attn_bwd_flops == pytest.approx(TRUE["bwd"], rel=0.002)


def test_provenance_fitted_and_base_sources(synthetic):
    fit, hw, tmp = synthetic
    base = load_profile("h100-sxm")
    fitted = {p.path for p in fit.params}
    assert "compute.gemm.k_half" in fitted and "memory.hbm_capacity_gib" not in fitted
    for path, source in hw.sources.items():
        if path in fitted:
            assert source.startswith(f"fit: {(tmp / 'synthetic.json').as_posix()}, 2026-01-02, 8x Synthetic GPU"), path
        else:
            assert source == base.sources[path], path
    assert hw.name == "my-gpu" and "calibrated: 8x Synthetic GPU" in hw.description
    assert hw.hbm_capacity_bytes == base.hbm_capacity_bytes and hw.net_busbw == base.net_busbw


def test_rounding_keeps_published_figures():
    assert round_value(1402.6, "TFLOPS") == 1402.6
    assert round_value(252.796, "TFLOPS") == 252.8
    assert round_value(155.48, "GB/s") == 155 and round_value(49.99, "GB/s") == 50.0
    assert round_value(0.0123456, "TFLOPS") == 0.0123
    assert round_value(3.0, "TB/s") == 3.0 and round_value(3.33333, "us") == 3.33


def test_fit_is_deterministic(synthetic, tmp_path):
    fit, _, tmp = synthetic
    again = write_profile(fit_profile([tmp / "synthetic.json"], "h100-sxm"), tmp_path / "my-gpu.yaml")
    assert (tmp_path / "my-gpu.yaml").read_text() == (tmp / "my-gpu.yaml").read_text()
    assert again.gemm_k_half == load_profile(str(tmp / "my-gpu.yaml")).gemm_k_half


def test_fit_rejects_rates_above_the_base_peak(tmp_path):
    path = write(tmp_path / "fast.json", [{"family": "gemm", "dtype": "bf16", "tflops": 1500.0}])
    with pytest.raises(ValueError, match="exceeds|has the peak"):
        fit_profile([path], "h100-sxm")


@pytest.mark.parametrize("edit, match", [
    (lambda r: r.update(version=2), "version 2 is not supported"),
    (lambda r: r.update(format="something-else"), "not a costsim calibration results file"),
    (lambda r: r.update(entries={"a": 1}), "entries"),
    (lambda r: r["entries"][0].pop("tflops"), "entries.0.tflops"),
    (lambda r: r["entries"][0].update(m=None), "give all of m, n, k or none"),
    (lambda r: r["entries"][0].update(family="quantum"), "entries.0"),
    (lambda r: r["environment"].update(device="published"), "every published entry needs a source"),
])
def test_bad_results_files_one_line(tmp_path, edit, match):
    raw = json.loads(write(tmp_path / "r.json", all_entries()[:3]).read_text())
    edit(raw)
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ResultsError, match=match) as info:
        load_results(tmp_path / "bad.json")
    assert "\n" not in str(info.value)


def test_written_profile_keeps_base_comments(synthetic):
    _, hw, tmp = synthetic
    text = (tmp / "my-gpu.yaml").read_text()
    assert text.startswith("# NVIDIA H100 SXM5 80GB.") and "peak_tflops:  # dense, no sparsity" in text
    assert yaml.safe_load(text)["compute"]["gemm"]["tile_n"]["unit"] == "count"


def test_latency_bound_collectives_do_not_run_off_to_absurd_bandwidth():
    """Tiny messages only (a CPU --quick run): t ≈ α, so busbw is not identifiable; the fit caps it at 10× the
    best busbw measured instead of returning 7e12 GB/s (which the profile's bounds then refused in CI)."""
    from types import SimpleNamespace

    from costsim.calibrate.fit_curves import fit_collectives
    alpha = 50e-6
    entries = [SimpleNamespace(algo="ring", collective="all_reduce", ranks=2, size_bytes=s,
                               busbw_gbs=2 * (2 - 1) / 2 * s / alpha / 1e9) for s in (1024, 4096, 16384)]
    fits, _, _ = fit_collectives([(e, "r") for e in entries], alpha, fit_alpha=False)
    best = max(e.busbw_gbs for e in entries) * 1e9
    assert fits["all_reduce"].value <= 10 * best * (1 + 1e-9)

"""Hardware profiles: shipped files load, every number has a source, units convert, errors are one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from costsim.hardware import HardwareProfile, list_profiles, load_profile, profiles_dir

SHIPPED = ("a100-sxm-80gb", "b200", "h100-sxm", "h200-sxm", "h800-sxm")


def _numeric_leaves(node, path=""):
    """Yield (dotted path, node) for every {value: ...} leaf and every bare number or number list."""
    if isinstance(node, dict):
        if "value" in node:
            yield path, node
            return
        for key, child in node.items():
            yield from _numeric_leaves(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, (int, float, list)) and not isinstance(node, bool):
        yield path, node


def _write_broken(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((profiles_dir() / "h100-sxm.yaml").read_text())
    edit(raw)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _one_line_error(path: Path) -> str:
    with pytest.raises(ValueError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_shipped_profiles_listed():
    assert set(SHIPPED) <= set(list_profiles())


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads(name):
    hw = load_profile(name)
    assert isinstance(hw, HardwareProfile)
    assert hw.name == name and Path(hw.path).stem == name
    assert len(hw.attn_seq_len) == len(hw.attn_fwd_flops) == len(hw.attn_bwd_flops) == 6
    collectives = {"all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p"}
    assert set(hw.nvlink_busbw) == set(hw.net_busbw) == collectives
    for prec, flops in hw.gemm_mamf_flops.items():
        assert 0.5 * hw.peak_flops[prec] < flops <= hw.peak_flops[prec]
    assert hw.hbm_bw_elementwise < hw.hbm_bw_stream <= hw.hbm_bw_peak
    assert max(hw.nvlink_busbw.values()) < hw.nvlink_bw_bidir
    assert max(hw.net_busbw.values()) <= hw.net_bw_per_gpu
    assert hash(hw) == hash(load_profile(name))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_numeric_leaf_has_a_source(name):
    path = profiles_dir() / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    leaves = list(_numeric_leaves(raw))
    assert len(leaves) > 30
    hw = load_profile(name)
    for dotted, node in leaves:
        assert isinstance(node, dict), f"{name}: {dotted} is a bare number"
        assert isinstance(node.get("source"), str) and node["source"].strip(), f"{name}: {dotted}"
        assert node.get("unit"), f"{name}: {dotted} has no unit"
        assert hw.sources[dotted] == node["source"].strip()
    assert len(hw.sources) == len(leaves)


def test_h800_differs_from_h100_only_in_interconnect_and_price():
    h100, h800 = load_profile("h100-sxm"), load_profile("h800-sxm")
    for attr in ("num_sms", "peak_flops", "gemm_mamf_flops", "gemm_mamf_shape", "gemm_tile_m", "gemm_tile_n",
                 "gemm_k_half", "attn_seq_len", "attn_fwd_flops", "attn_bwd_flops", "hbm_capacity_bytes",
                 "hbm_bw_peak", "hbm_bw_stream", "hbm_bw_elementwise", "power_w"):
        assert getattr(h800, attr) == getattr(h100, attr), attr
    assert h800.nvlink_bw_bidir < h100.nvlink_bw_bidir
    for coll, busbw in h800.nvlink_busbw.items():
        assert busbw < h100.nvlink_busbw[coll], coll
    assert h800.price_usd_per_gpu_hour == 2.0  # DeepSeek-V3 report's assumed rental price


def test_unit_conversions_to_si():
    hw = load_profile("h100-sxm")
    assert hw.peak_flops["bf16"] == pytest.approx(9.894e14)
    assert hw.gemm_mamf_flops["fp8"] == pytest.approx(1.4026e15)
    assert hw.attn_fwd_flops[0] == pytest.approx(292e12)
    assert hw.attn_seq_len[-1] == 16384
    assert hw.hbm_capacity_bytes == pytest.approx(80 * 2**30)  # HBM is binary-sized: 80 GiB
    assert hw.hbm_bw_peak == pytest.approx(3.35e12)
    assert hw.nvlink_bw_bidir == pytest.approx(900e9)
    assert hw.nvlink_busbw["all_reduce"] == pytest.approx(370e9)
    assert hw.net_busbw["all_to_all"] == pytest.approx(50e9)
    assert hw.nvlink_latency_s == pytest.approx(3.33e-6)
    assert hw.net_latency_s == pytest.approx(3.7e-6)
    assert hw.gemm_mamf_shape["bf16"] == (2048, 2048, 13312)
    assert isinstance(hw.num_sms, int) and isinstance(hw.gpus_per_node, int)
    assert hw.power_w == 700 and hw.price_usd_per_gpu_hour == pytest.approx(4.92)


def test_a100_has_no_fp8():
    hw = load_profile("a100-sxm-80gb")
    assert not hw.supports("fp8") and "fp8" not in hw.gemm_mamf_flops
    assert hw.supports("bf16") and hw.supports("BF16")
    assert load_profile("h100-sxm").supports("fp8")


def test_unknown_name_lists_known_profiles():
    with pytest.raises(ValueError) as info:
        load_profile("tpu-v9")
    message = str(info.value)
    assert message.startswith("cluster.gpu: unknown hardware profile 'tpu-v9'; known: ")
    assert "a100-sxm-80gb, b200, h100-sxm" in message and "\n" not in message


def test_path_relative_to_base_dir(tmp_path):
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "mine.yaml").write_text((profiles_dir() / "h800-sxm.yaml").read_text())
    hw = load_profile("hw/mine.yaml", base_dir=tmp_path)
    assert hw.name == "h800-sxm" and hw.path == str(tmp_path / "hw" / "mine.yaml")
    with pytest.raises(ValueError, match="not found"):
        load_profile("hw/missing.yaml", base_dir=tmp_path)


def test_env_var_overrides_profiles_dir(tmp_path, monkeypatch):
    (tmp_path / "custom.yaml").write_text((profiles_dir() / "h100-sxm.yaml").read_text())
    monkeypatch.setenv("COSTSIM_HWPROFILES", str(tmp_path))
    assert list_profiles() == ["custom"]
    assert load_profile("custom").peak_flops["bf16"] == pytest.approx(9.894e14)


def _drop_source(raw):
    del raw["compute"]["peak_tflops"]["bf16"]["source"]


def _negative(raw):
    raw["memory"]["hbm_bw_peak_tbs"]["value"] = -3.35


def _bare_number(raw):
    raw["power"]["tdp_w"] = 700


def _missing_key(raw):
    del raw["inter_node"]["busbw_gbs"]["all_to_all"]


def _wrong_unit(raw):
    raw["intra_node"]["link_bw_bidir_gbs"]["unit"] = "TB/s"


def _unknown_key(raw):
    raw["memory"]["hbm_bw_peek_tbs"] = {"value": 3.0, "unit": "TB/s", "source": "typo"}


def _float_count(raw):
    raw["compute"]["num_sms"]["value"] = 132.5


def _ragged_attention(raw):
    raw["compute"]["attention"]["bwd_tflops"]["value"].pop()


def _ragged_fa2(raw):
    raw["compute"]["attention"]["fa2_tflops"]["value"].pop()


def _clock_above_one_unit(raw):
    raw["compute"]["sustained_clock_fraction"]["unit"] = "MHz"


@pytest.mark.parametrize("edit, expected", [
    (_ragged_fa2, "compute.attention.fa2_tflops: needs one value per seq_len"),
    (_clock_above_one_unit, "compute.sustained_clock_fraction: unit must be 'fraction'"),
    (_drop_source, "compute.peak_tflops.bf16: every number needs a source"),
    (_negative, "memory.hbm_bw_peak_tbs: value must be positive, got -3.35"),
    (_bare_number, "power.tdp_w: every number needs a source"),
    (_missing_key, "inter_node.busbw_gbs.all_to_all: missing required key"),
    (_wrong_unit, "intra_node.link_bw_bidir_gbs: unit must be 'GB/s'"),
    (_unknown_key, "memory.hbm_bw_peek_tbs: unknown key"),
    (_float_count, "compute.num_sms: value must be an integer"),
    (_ragged_attention, "compute.attention: fwd_tflops and bwd_tflops need one value per seq_len"),
])
def test_broken_profile_gives_one_line_error_naming_the_key(tmp_path, edit, expected):
    path = _write_broken(tmp_path, edit)
    message = _one_line_error(path)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_invalid_yaml_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n  compute: {\n")
    assert "cannot read hardware profile" in _one_line_error(path)


def test_optional_fields_default_and_load():
    """FlashAttention-2 curve and sustained clock are optional: absent, the curve is empty and the clock 1.0."""
    a100, h100 = load_profile("a100-sxm-80gb"), load_profile("h100-sxm")
    assert a100.sustained_clock_fraction == 1.0 and a100.attn_fa2_flops == ()
    assert h100.sustained_clock_fraction == pytest.approx(0.874)               # 1600 / 1830 MHz
    assert [round(x / 1e12) for x in h100.attn_fa2_flops] == [163, 221, 265, 294, 308, 328]


def test_profile_parsed_once_and_shared_read_only(tmp_path):
    """load_profile parses a file once per version (re-reading the YAML was 13.6 ms of a 20 ms estimate, issue
    8) and hands every caller the same profile, so its dict fields refuse changes; with_network and
    dataclasses.replace make changed copies; a profile still pickles (dask ships it to workers)."""
    import dataclasses
    import os
    import pickle

    from costsim.hardware import with_network

    hw = load_profile("h100-sxm")
    assert load_profile("h100-sxm") is hw
    before = dict(hw.net_busbw)
    for mutate in (lambda d: d.__setitem__("p2p", 1.0), lambda d: d.update(p2p=1.0), lambda d: d.pop("p2p"),
                   lambda d: d.clear(), lambda d: d.setdefault("x", 1.0), lambda d: d.__delitem__("p2p"),
                   lambda d: d.popitem()):
        for field in (hw.net_busbw, hw.nvlink_busbw, hw.peak_flops, hw.gemm_mamf_flops, hw.sources):
            with pytest.raises(TypeError, match="read-only"):
                mutate(field)
    fast = with_network(hw, 3200)
    ratio = 3200 / 8 * 1e9 / hw.net_bw_per_gpu
    assert fast.net_busbw["all_reduce"] == pytest.approx(hw.net_busbw["all_reduce"] * ratio, rel=1e-12)
    assert dict(load_profile("h100-sxm").net_busbw) == before and fast.net_busbw != before
    copy = dataclasses.replace(hw, peak_flops={**hw.peak_flops, "bf16": 1.0})
    assert copy.peak_flops["bf16"] == 1.0 and hw.peak_flops["bf16"] != 1.0
    back = pickle.loads(pickle.dumps(hw))
    assert back.net_busbw == hw.net_busbw and back.sources == hw.sources
    # a new version of the file is parsed again
    path = tmp_path / "mine.yaml"
    path.write_text((profiles_dir() / "h100-sxm.yaml").read_text())
    first = load_profile(str(path))
    assert load_profile(str(path)) is first
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_profile(str(path)) is not first

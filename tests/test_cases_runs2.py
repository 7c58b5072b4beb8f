"""The validation cases of docs/reference/published-runs-2.md (costsim/cases/): coverage of every table, faithful
transcription, models against published parameter counts, the FLOP formulas against published pairs, the
network rule, and that every case plans and estimates (or records the PlanError)."""
import math
import re
from pathlib import Path

import pytest

from costsim.cases import llm_foundry, megatron_core, nemo, runs2_cases
from costsim.cases._common import REFERENCE, builtin_with, network_gbps_per_gpu
from costsim.estimate import estimate
from costsim.hardware import load_profile
from costsim.model import load_builtin, resolve_model
from costsim.scenario import parse_scenario
from costsim.validate import all_cases, run_cases

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / REFERENCE
GROUPS = {"torchtitan", "llm-foundry", "fms-fsdp", "Megatron-Core README", "NeMo"}
TABLES = {"1.1", "1.2", "1.3", "1.4", "1.5", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "3.1", "3.2", "3.3", "4.1",
          "5.1", "5.2", "5.3", "5.4"}


@pytest.fixture(scope="module")
def cases():
    return runs2_cases()


@pytest.fixture(scope="module")
def results(cases):
    return run_cases(cases=cases)


def _doc_sections() -> dict[str, str]:
    """'### 2.1 H100 80GB BF16' → {'2.1': section text}."""
    parts = re.split(r"\n### ", DOC.read_text())
    return {p.split()[0]: p for p in parts[1:]}


def _doc_rows(section: str) -> list[list[str]]:
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows[1:]]   # without the header


# ---- coverage and bookkeeping ----

def test_at_least_80_cases_every_table_every_source(cases):
    assert len(cases) >= 80
    assert {c.group for c in cases} == GROUPS
    assert {c.case.split()[0] for c in cases} == TABLES
    tt13 = {c.case.split()[1] for c in cases if c.case.startswith("1.3 ")}
    assert tt13 == {"T1", "T2", "T3", "T4", "T5", "T6"}          # every table of torchtitan's 2024-12 file
    for group in GROUPS:
        names = [c.case for c in cases if c.group == group]
        assert len(names) == len(set(names)), f"duplicate case names in {group}"


def test_hooked_into_all_cases(cases):
    names = {(c.group, c.case) for c in all_cases()}
    assert {(c.group, c.case) for c in cases} <= names


def test_sources_cite_repo_file_commit_and_the_repo_copy(cases):
    assert DOC.is_file() and "# Published training-throughput measurements (set 2)" in DOC.read_text()
    for c in cases:
        assert REFERENCE in c.source and "../shared" not in c.source, c.case
        assert re.search(r"@ [0-9a-f]{9,40}", c.source), c.source      # a commit
        assert "/" in c.source.split(" @ ")[0], c.source                # repo/file


def test_repeats_are_not_fitted_on(cases):
    for c in cases:
        if c.case.startswith(("5.2 ", "5.3 ")):
            assert not c.fitted_on, c.case


def test_every_case_plans_and_estimates_or_records_a_plan_error(results):
    for r in results:
        if r.failed:
            assert r.note.startswith("plan error: "), r
        else:
            assert math.isfinite(r.predicted) and r.predicted > 0, r
    assert sum(not r.failed for r in results) >= 80


def test_torchtitan_peak_memory_is_recorded(cases, results):
    with_mem = [c for c in cases if c.group == "torchtitan" and c.published_memory_gib is not None]
    assert len(with_mem) == 2 + 4 + 2 + 2 + 2 + 4 + 2     # 1.3 T1..T6 (compiled rows) and 1.5
    by_case = {r.case: r for r in results}
    for c in with_mem:
        r = by_case[c.case]
        assert r.published_memory_gib == c.published_memory_gib
        assert r.failed or r.predicted_memory_gib > 0


# ---- transcription ----

def test_mpt_rows_match_the_document():
    sections = _doc_sections()
    for table, rows in llm_foundry.TABLES.items():
        doc = [(r[0], int(r[1]), int(r[2]), int(r[7]), int(r[8]), int(r[9]), int(r[12]), r[14], r[16],
                r[17] == "True", int(r[19])) for r in _doc_rows(sections[table])]
        assert [tuple(r) for r in rows] == doc, table


def test_published_values_appear_in_their_sections(cases):
    """Every published figure is printed in the section its case name cites."""
    sections = _doc_sections()
    for c in cases:
        table = c.case.split()[0]
        cells = {cell.replace(",", "").removesuffix(" token/gpu/sec") for row in _doc_rows(sections[table])
                 for cell in row}
        value = f"{c.published:g}"
        assert value in cells or f"{c.published:.1f}" in cells, (c.case, value)


# ---- models ----

@pytest.mark.parametrize("table", sorted(llm_foundry.TABLES))
def test_mpt_parameter_counts_equal_the_numparams_column(table):
    for size, seq, *_rest, num_params in llm_foundry.TABLES[table]:
        spec = resolve_model(llm_foundry.mpt_model(size, seq), ROOT)
        assert spec.total_params() == num_params, (table, size, seq)


@pytest.mark.parametrize("name, want, tol", [
    ("llama2-7b", 6_738_415_616, 0),            # HF safetensors count of meta-llama/Llama-2-7b-hf
    ("llama2-13b", 13_015_864_320, 0),          # meta-llama/Llama-2-13b-hf
    ("llama2-70b", 68_976_648_192, 0),          # meta-llama/Llama-2-70b-hf
    ("llama2-34b", 33_743_970_304, 0),          # CodeLlama-34B (32000-token vocab)
    ("gpt3-5b", 5.0e9, 0.03), ("gpt3-20b", 20.0e9, 0.03),   # NeMo's names
    ("nemotron-22b", 22.0e9, 0.05),
    ("mpt-125m", 125e6, 0.01), ("mpt-350m", 350e6, 0.02), ("mpt-760m", 760e6, 0.01),
])
def test_new_builtin_parameter_counts(name, want, tol):
    got = load_builtin(name).total_params()
    assert got == want if tol == 0 else abs(got - want) / want <= tol, f"{name}: {got:,}"


def test_builtin_with_changes_only_the_named_keys():
    a, b = load_builtin("mpt-7b"), resolve_model(builtin_with("mpt-7b", max_position_embeddings=65536), ROOT)
    assert b.total_params() - a.total_params() == (65536 - 2048) * 4096
    assert (a.hidden_size, a.num_layers, a.vocab_size) == (b.hidden_size, b.num_layers, b.vocab_size)


# ---- FLOP formulas against published pairs ----

def test_megatron_core_formula():
    # GPT with MHA and a 4h GELU MLP:
    # 12·B·s·L·h²·(2 + s/h + 4 + V/(2Lh)) = B·s·(72·L·h² + 12·L·s·h + 6·V·h)
    b, s, L, h, V = 192, 4096, 24, 2048, 131072
    assert megatron_core.mcore_flops(b, s, L, h, 16, V, 4 * h) == pytest.approx(
        b * s * (72 * L * h * h + 12 * L * s * h + 6 * V * h))
    # Llama-style GQA and SwiGLU terms (Megatron-Core r0.8): 8B = h 4096, 32 heads, 8 groups, FFN 14336
    assert megatron_core.mcore_flops(1, 1, 32, 4096, 32, 128256, 14336, groups=8, swiglu=True) == pytest.approx(
        12 * 32 * 4096 ** 2 * ((1 + 8 / 32 + 1 / 4096) + 14336 / 4096 * 1.5 + 128256 / (2 * 32 * 4096)))
    for size, heads, h, layers, tp, pp, dp, gpus, batch, tflops, mfu in megatron_core.T4_1:
        # the printed MFU is TFLOP/s over the H100 dense BF16 peak, and aggregate = per-GPU × GPUs
        assert tflops / megatron_core.H100_BF16_PEAK_TFLOPS == pytest.approx(mfu, abs=0.006), size
        # the model size column: 12·L·h² + 2·V·h (untied embeddings), e.g. 1.7B → 1.745B
        params = 12 * layers * h * h + 2 * megatron_core.VOCAB * h
        assert params / 1e9 == pytest.approx(float(size.rstrip("B")), rel=0.03), size
    assert 12 * 24 * 2048 ** 2 + 2 * 131072 * 2048 == pytest.approx(1.745e9, rel=1e-3)


def test_nemo_llama_formula_reproduces_printed_tflops_per_token():
    for k, gpus, gbs, mbs, tp, pp, cp, vp, dp, tps, tflops in nemo.T5_4:
        seq = k * 1024
        per_token = nemo.nemo_llama_flops(gbs, seq, **nemo.LLAMA2_7B) / (gbs * seq)
        assert per_token * tps / 1e12 == pytest.approx(tflops, rel=0.01), k
    # 5.3's "With CP" TFLOP/s are 5.4's (same runs)
    assert [r[-1] for r in nemo.T5_3_H100] == [r[-1] for r in nemo.T5_4]
    tps, tflops = next((t, f) for m, t, f in nemo.T5_1 if m == "LLAMA2-7B")     # 16934 tokens/s, 780 TFLOP/s
    assert nemo.nemo_llama_flops(1, 4096, **nemo.LLAMA2_7B) / 4096 * tps / 1e12 == pytest.approx(tflops, rel=0.01)


def test_tokens_metric_is_global_tokens_over_step_over_gpus(cases):
    c = next(c for c in cases if c.case.startswith("5.1 LLAMA2-7B"))
    est = estimate(parse_scenario(c.scenario), ROOT)
    ph, sc = est.phases[0], c.scenario
    tokens = sc["phases"][0]["global_batch_size"] * sc["phases"][0]["seq_len"]
    want = tokens / ph.step_time_s / sc["cluster"]["num_gpus"]
    assert c.extract(est) == pytest.approx(want) and c.metric == "tokens/s per GPU"
    assert ph.tokens_per_s_per_gpu == pytest.approx(want)


# ---- network rule and hardware ----

def test_network_rule():
    assert network_gbps_per_gpu(1600, "node") == 200        # MPT: 1600 Gbps RoCE per 8-GPU node
    assert network_gbps_per_gpu(400, "node") == 50          # fms-fsdp A100 "400Gbps"
    assert network_gbps_per_gpu(800, "node") == 100         # fms-fsdp H100 "800 Gbps"
    assert network_gbps_per_gpu(400, "gpu") == 400          # torchtitan: 400 Gb/s per GPU
    with pytest.raises(ValueError):
        network_gbps_per_gpu(400, "rack")


def test_network_rule_applied_per_source(cases):
    net = {c.case: c.scenario["cluster"].get("network_gbps_per_gpu") for c in cases}
    for name, value in net.items():
        if name.startswith(("2.4 ", "2.5 ")):
            assert value == 200, name
        elif name.startswith(("2.1 ", "2.2 ", "2.3 ", "2.6 ", "1.2 ", "4.1 ", "5.")):
            assert value is None, name                      # unstated → the profile's network
        elif name.startswith(("3.1 ", "3.2 ", "3.3 ")):
            assert value == (100 if name.endswith("H100") else 50), name
        elif name.startswith(("1.1 ", "1.3 ", "1.4 ", "1.5 ")):
            assert value == 400, name


def test_new_hardware_profiles():
    a40, a80 = load_profile("a100-sxm-40gb"), load_profile("a100-sxm-80gb")
    assert a40.hbm_capacity_bytes == 40 * 2**30 and a40.hbm_bw_peak == pytest.approx(1.555e12)
    ratio = 1.555 / 2.039
    assert a40.hbm_bw_stream == pytest.approx(a80.hbm_bw_stream * ratio, rel=1e-3)
    assert a40.hbm_bw_elementwise == pytest.approx(a80.hbm_bw_elementwise * ratio, rel=1e-3)
    assert a40.peak_flops == a80.peak_flops and a40.net_busbw == a80.net_busbw
    gt, h100 = load_profile("h100-sxm-96gb-hbm2e"), load_profile("h100-sxm")
    assert gt.hbm_capacity_bytes == 96 * 2**30 and gt.hbm_bw_peak == pytest.approx(2.4e12) and gt.power_w == 500
    assert gt.peak_flops == h100.peak_flops and gt.net_bw_per_gpu == pytest.approx(50e9)   # 400 Gb/s per GPU


def test_plan_rules(cases):
    by = {c.case: c.scenario["parallelism"] for c in cases}
    assert by["3.1 7b HSDP No AC bs2 A100"]["zero_shard_size"] == 8
    # p = 3·(HFU/MFU − 1) from the README's own MFU/HFU table, mean of A100 (0.69/0.61) and H100 (0.46/0.43)
    assert by["3.1 13b FSDP Selective AC bs2 H100"]["recompute_fraction"] == pytest.approx(
        (3 * (0.69 / 0.61 - 1) + 3 * (0.46 / 0.43 - 1)) / 2, abs=1e-3)
    assert by["1.2 Llama 3 8B bs1 AC selective layer"]["recompute_fraction"] == 0.5
    # op-level SAC recomputes every other matmul: half a forward again, like layer SAC (module docstring)
    assert by["1.2 Llama 3 8B bs1 AC selective op"]["recompute"] == "full"
    assert by["1.2 Llama 3 8B bs1 AC selective op"]["recompute_fraction"] == 0.5
    assert by["1.3 T5 405B Interleaved 1F1B"]["virtual_stages"] == 2
    assert by["1.3 T5 405B 1F1B"]["micro_batch_size"] == 4           # local 32 / PP 8 micro-batches
    assert by["2.2 MPT-3b 2048 tok 512 GPUs"]["zero_stage"] == 2                  # SHARD_GRAD_OP
    recipes = {c.case: c.scenario["phases"][0].get("fp8_recipe") for c in cases}
    assert recipes["1.4 70B float8 rowwise async TP"] == "rowwise"
    assert recipes["1.4 70B float8 tensorwise async TP"] == "current"
    assert recipes["5.1 LLAMA2-7B 8 GPUs TP1 PP1 CP1 VP1"] == "delayed"
    assert recipes["2.3 MPT-1b 512 tok 8 GPUs FP8"] == "delayed"
    # torch.compile: only the compiled rows of 1.3 Tables 1 and 3
    assert all("compile" in c.case for c in cases if c.case.startswith(("1.3 T1 ", "1.3 T3 ")))

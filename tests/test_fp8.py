"""FP8 recipes (costsim/fp8.py): the casts around one FP8 GEMM, by hand, per recipe; what each recipe keeps for
backward. Expected numbers are written out from the formats (BF16 2 B, FP8 1 B, one FP32 scale per 128 values),
not read back from the tables in fp8.py."""
from __future__ import annotations

import pytest

from conftest import build_plan
from costsim.layers import unit_ops
from costsim.memory import layer_activation_bytes
from costsim.model import from_hf_config, load_builtin
from costsim.ops import _Builder

REL = 1e-12
M, N, K = 4096.0, 1024.0, 512.0          # X: M×K, W: K×N, Y: M×N — N ≠ K so input and output casts differ
MK, MN, KN = M * K, M * N, K * N


def casts(microbatches=16, **kw) -> dict[str, tuple[float, float, bool]]:
    """{op name: (bytes, launches, per_step)} of the casts around one FP8 GEMM."""
    plan = build_plan(microbatches=microbatches, precision="fp8", **kw)
    b = _Builder(load_builtin("llama3.1-8b"), plan, "dense")
    b.gemm("g", M, N, K)
    return {o.name[2:]: (o.bytes, o.launches, o.per_step) for o in b.ops if ".fp8cast" in o.name}


def test_delayed_per_tensor_casts_with_transposes():
    """TE delayed scaling: cast-transpose of X (read 2, write 1 + 1) in F and of dY (the output gradient, M×N)
    in B; the weight cast-transpose once per step (16 micro-batches); + one amax/scale-update launch each."""
    c = casts(fp8_recipe="delayed")
    assert set(c) == {"fp8cast_x.F", "fp8cast_dy.B", "fp8cast_w.F"}
    assert c["fp8cast_x.F"] == pytest.approx((4 * MK, 2, False), rel=REL)
    assert c["fp8cast_dy.B"] == pytest.approx((4 * MN, 2, False), rel=REL)
    assert c["fp8cast_w.F"] == pytest.approx((4 * KN / 16, 2 / 16, True), rel=REL)


def test_backward_cast_is_over_the_output_gradient():
    """The backward cast scales with N (dY is M×N), not with K (the input)."""
    base = casts(fp8_recipe="delayed")["fp8cast_dy.B"][0]
    plan = build_plan(precision="fp8")
    b = _Builder(load_builtin("llama3.1-8b"), plan, "dense")
    b.gemm("g", M, 3 * N, K)
    wide = next(o.bytes for o in b.ops if o.name == "g.fp8cast_dy.B")
    assert wide == pytest.approx(3 * base, rel=REL)


def test_current_scaling_adds_an_amax_pass_and_recasts():
    """torchao tensorwise: amax pass (read 2) before every cast (read 2, write 1); X and W cast again in backward
    from the kept BF16; dY cast + transpose after its amax pass; the weight every micro-batch."""
    c = casts(fp8_recipe="current")
    assert c["fp8cast_x.F"] == pytest.approx((5 * MK, 2, False), rel=REL)
    assert c["fp8cast_x.B"] == pytest.approx((5 * MK, 2, False), rel=REL)
    assert c["fp8cast_dy.B"] == pytest.approx((6 * MN, 2, False), rel=REL)
    assert c["fp8cast_w.F"] == pytest.approx((5 * KN, 2, False), rel=REL)
    assert c["fp8cast_w.B"] == pytest.approx((5 * KN, 2, False), rel=REL)


def test_rowwise_row_cast_fused_column_cast_separate():
    c = casts(fp8_recipe="rowwise")
    assert c["fp8cast_x.F"][0] == pytest.approx(3 * MK, rel=REL)           # read 2, write 1, row amax fused
    assert c["fp8cast_x.B"][0] == pytest.approx(5 * MK, rel=REL)           # column amax 2 + read 2 + write 1
    assert c["fp8cast_dy.B"][0] == pytest.approx((3 + 5) * MN, rel=REL)    # both
    assert c["fp8cast_w.F"][0] == pytest.approx(3 * KN, rel=REL)
    assert c["fp8cast_w.B"][0] == pytest.approx(5 * KN, rel=REL)
    assert not any(per_step for _, _, per_step in c.values())


def test_blockwise_deepseek_tiles():
    """DeepSeek-V3 §3.3/§3.5: 1×128 tiles with an FP32 scale each (1/32 B per value); X re-tiled in backward from
    its FP8 copy; dY cast into both tilings; 128×128 weight blocks + transposed copy once per step."""
    c = casts(fp8_recipe="blockwise")
    s = 4 / 128
    assert c["fp8cast_x.F"] == pytest.approx((MK * (2 + 1 + s), 1, False), rel=REL)
    assert c["fp8cast_x.B"] == pytest.approx((MK * (1 + s + 1 + s), 1, False), rel=REL)
    assert c["fp8cast_dy.B"] == pytest.approx((MN * (2 + 2 * (1 + s)), 1, False), rel=REL)
    assert c["fp8cast_w.F"] == pytest.approx((KN * 4 / 16, 1 / 16, True), rel=REL)


def test_weight_cast_spread_over_the_microbatches_that_pass_the_chunk():
    """DualPipe: each of a rank's two stages is passed by half the micro-batches (16 of 32)."""
    w = casts(microbatches=32, fp8_recipe="delayed", pp=2, schedule="dualpipe")["fp8cast_w.F"]
    assert w == pytest.approx((4 * KN / 16, 2 / 16, True), rel=REL)


def test_zero3_casts_the_weight_every_microbatch():
    c = casts(fp8_recipe="delayed", zero_stage=3)
    assert c["fp8cast_w.F"] == pytest.approx((4 * KN, 2, False), rel=REL)
    c = casts(fp8_recipe="delayed", zero_stage=3, zero3_gather_once=True)
    assert c["fp8cast_w.F"][2]


def test_bf16_gemms_take_no_cast():
    plan = build_plan(precision="fp8")
    b = _Builder(load_builtin("llama3.1-8b"), plan, "dense")
    b.gemm("router", M, N, K, lowp=False)
    assert not [o for o in b.ops if "fp8cast" in o.name]
    b = _Builder(load_builtin("llama3.1-8b"), build_plan(precision="bf16"), "dense")
    b.gemm("g", M, N, K)
    assert not [o for o in b.ops if "fp8cast" in o.name]


def test_cached_weight_cast_is_not_recomputed():
    ops = unit_ops(load_builtin("llama3.1-8b"), build_plan(precision="fp8", recompute="full"), "dense")
    assert [o for o in ops if o.name.endswith("fp8cast_x.R")]
    assert not [o for o in ops if o.name.endswith("fp8cast_w.R")]


# ---- what each recipe keeps for backward ------------------------------------------------------------------------

# Korthikanti et al.'s GPT layer (GeLU MLP of 4h, dropout): 34·s·b·h bytes with flash attention in BF16.
GPT = from_hf_config({"hidden_size": 4096, "num_hidden_layers": 4, "num_attention_heads": 32, "hidden_act": "gelu",
                      "vocab_size": 51200, "max_position_embeddings": 2048, "hidden_dropout": 0.1,
                      "attention_dropout": 0.1}, "gpt-7b")


def gpt_layer(**kw) -> float:
    plan = build_plan(recompute="none", attention="flash", seq_len=2048, **kw)
    return layer_activation_bytes(GPT, plan, "dense") / (2048 * GPT.hidden_size)


def test_te_delayed_keeps_fp8_gemm_inputs():
    """Per s·b·h: norm inputs 2+2, masks 1+1, q/k/v 6 (FlashAttention), attention output 2 (FlashAttention) + 1
    (O-projection's FP8 copy), QKV and FC1 inputs 1+1 (FP8), GeLU input 8, FC2 input 4 (FP8) = 29 (34 in BF16)."""
    assert gpt_layer(precision="bf16") == pytest.approx(34, rel=REL)
    assert gpt_layer(precision="fp8", fp8_recipe="delayed") == pytest.approx(29, rel=REL)


@pytest.mark.parametrize("recipe", ["current", "rowwise"])
def test_torchao_recipes_keep_bf16_inputs(recipe):
    """torchao keeps the BF16 inputs (torchtitan: 77.0 GiB BF16 vs 76.8 GiB float8, published-runs-2.md §1.3)."""
    assert gpt_layer(precision="fp8", fp8_recipe=recipe) == pytest.approx(34, rel=REL)


def test_deepseek_moe_layer_under_its_recipe():
    """DeepSeek-V3 MoE layer, seq 4096, selective recompute (norms, MLA up-projections), blockwise FP8. Per token:
    attention norm input 2h; latents 2·1536 + 2·(512 + 64); attention output 1.5 B × 128 heads × 128 (E5M6);
    FFN norm input 2h; per routed copy (8): FP8 expert input h and SwiGLU inputs 2·2048, each with 1/32 B of
    scale, no expert output; shared expert SwiGLU inputs 2·2048 (FP8 + scales)."""
    model = load_builtin("deepseek-v3")
    plan = build_plan(precision="fp8", fp8_recipe="blockwise", recompute="selective", seq_len=4096, ep=8, dp=8)
    h, q = 7168, 1 + 1 / 32
    per_tok = (2 * h + 2 * 1536 + 2 * (512 + 64) + 1.5 * 128 * 128 + 2 * h
               + 8 * (q * h + q * 2 * 2048) + q * 2 * 2048)
    assert per_tok == 154624
    assert layer_activation_bytes(model, plan, "moe") == pytest.approx(per_tok * 4096, rel=REL)


def test_deepseek_moe_layer_under_te():
    """The same layer under TE delayed scaling: FP8 GEMM inputs, attention output 2 + 1 B, SwiGLU inputs in BF16
    (2·2·2048) and its output in FP8 (2048), the expert output in BF16 (2h) for the gating weight's gradient."""
    model = load_builtin("deepseek-v3")
    plan = build_plan(precision="fp8", fp8_recipe="delayed", recompute="selective", seq_len=4096, ep=8, dp=8)
    h = 7168
    swiglu = 2 * 2 * 2048 + 2048
    per_tok = 2 * h + 2 * 1536 + 2 * (512 + 64) + 3 * 128 * 128 + 2 * h + 8 * (h + swiglu + 2 * h) + swiglu
    assert per_tok == 346240
    assert layer_activation_bytes(model, plan, "moe") == pytest.approx(per_tok * 4096, rel=REL)


def test_mla_latent_projection_inputs_only_without_recompute():
    """Without recompute the normed latents (q_b, kv_b inputs) and q, k, v are kept too (BF16)."""
    model = load_builtin("deepseek-v3")
    sel = build_plan(recompute="selective", seq_len=4096, ep=8, dp=8)
    none = build_plan(recompute="none", seq_len=4096, ep=8, dp=8)
    extra = 2 * (1536 + 512) + 2 * 128 * (2 * 192 + 128)
    # selective also recomputes the norm outputs feeding q_a/kv_a, the router and the shared expert (2h each)
    norms = 3 * 2 * 7168
    diff = layer_activation_bytes(model, none, "moe") - layer_activation_bytes(model, sel, "moe")
    assert diff == pytest.approx((extra + norms) * 4096, rel=REL)

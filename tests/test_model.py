"""Tests for costsim.model: parameter counts against published figures, HF config import, FLOPs."""

import dataclasses
import json

import pytest

from costsim.model import (
    KNOWN_KEYS,
    ModelSpec,
    builtin_model_names,
    flops_per_token_6n,
    from_hf_config,
    load_builtin,
    load_hf_config_file,
    resolve_model,
)

B = 1e9

LLAMA_8B_INLINE = {
    "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "intermediate_size": 14336, "vocab_size": 128256, "hidden_act": "silu",
    "max_position_embeddings": 131072, "tie_word_embeddings": False,
}

GPT2_SMALL = {  # the shape of openai-community/gpt2 config.json (GPT-2 key names)
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
    "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": None, "n_positions": 1024, "n_ctx": 1024,
    "vocab_size": 50257, "resid_pdrop": 0.1, "attn_pdrop": 0.1, "embd_pdrop": 0.1,
    "layer_norm_epsilon": 1e-05, "summary_type": "cls_index",
}


def rel_err(got: float, want: float) -> float:
    return abs(got - want) / want


# ---- built-ins against published parameter counts ----

def test_builtin_names():
    assert builtin_model_names() == ["deepseek-v3", "gpt3-175b", "gpt3-20b", "gpt3-5b", "llama2-13b", "llama2-34b",
                                     "llama2-70b", "llama2-7b", "llama3.1-405b", "llama3.1-70b", "llama3.1-8b",
                                     "mpt-125m", "mpt-13b", "mpt-1b", "mpt-30b", "mpt-350m", "mpt-3b", "mpt-70b",
                                     "mpt-760m", "mpt-7b", "nemotron-22b"]


@pytest.mark.parametrize("name, want, tol", [
    ("llama3.1-8b", 8.03 * B, 0.01),  # Llama 3 paper / model card
    ("llama3.1-70b", 70.6 * B, 0.01),
    ("llama3.1-405b", 405.9 * B, 0.01),
    ("gpt3-175b", 175.0 * B, 0.015),  # Brown et al. 2020 Table 2.1
    ("deepseek-v3", 671.0 * B, 0.01),  # V3 report: 671B total (MTP excluded)
])
def test_total_params(name, want, tol):
    assert rel_err(load_builtin(name).total_params(), want) < tol


def test_dense_models_are_fully_active():
    for name in ("llama3.1-8b", "llama3.1-70b", "llama3.1-405b", "gpt3-175b"):
        spec = load_builtin(name)
        assert spec.active_params() == spec.total_params()
        assert spec.mtp_params() == 0 and spec.total_params(include_mtp=True) == spec.total_params()


def test_llama_8b_exact_breakdown():
    s = load_builtin("llama3.1-8b")
    assert s.attention_params() == 4096 * 4096 * 2 + 2 * 4096 * 1024  # q, o; k, v with 8 kv heads
    assert s.mlp_params(s.intermediate_size) == 3 * 4096 * 14336
    assert s.layer_params("dense") == s.attention_params() + s.mlp_params(14336) + 2 * 4096
    assert s.embedding_params() == s.head_params() == 128256 * 4096
    assert s.total_params() == 8_030_261_248  # the released checkpoint's count


def test_gpt3_unpadded_vocab_also_within_tolerance():
    padded = load_builtin("gpt3-175b")
    assert padded.vocab_size == 51200 and padded.tie_word_embeddings and padded.dropout == 0.1
    unpadded = dataclasses.replace(padded, vocab_size=50257)
    assert rel_err(unpadded.total_params(), 175.0 * B) < 0.015
    assert padded.total_params() - unpadded.total_params() == (51200 - 50257) * 12288
    assert padded.head_params() == 0  # tied


def test_deepseek_v3_structure():
    s = load_builtin("deepseek-v3")
    assert s.is_moe and s.uses_mla and s.gated_mlp
    assert s.layer_kinds() == ("dense",) * 3 + ("moe",) * 58
    assert (s.num_dense_layers, s.num_moe_layers) == (3, 58)
    assert (s.qk_head_dim, s.v_dim) == (192, 128)
    assert (s.n_group, s.topk_group, s.num_nextn_predict_layers) == (8, 4, 1)
    # MLA projections from modeling_deepseek.py, plus q_a/kv_a layernorms
    assert s.attention_params() == (7168 * 1536 + 1536 + 1536 * 128 * 192 + 7168 * 576 + 512
                                    + 512 * 128 * 256 + 128 * 128 * 7168)


def test_deepseek_v3_active_params():
    # V3 report: 37B activated (36.7B incl. 0.9B embedding + 0.9B head in the weights README)
    s = load_builtin("deepseek-v3")
    assert rel_err(s.active_params(), 37.0 * B) < 0.03
    assert rel_err(s.embedding_params(), 0.93 * B) < 0.01 and s.head_params() == s.embedding_params()


def test_deepseek_v3_mtp_params():
    # Weights README: MTP module 11.5B unique parameters (shared embedding and head excluded); we count
    # norms + eh_proj (0.10B) + one MoE block (11.51B) = 11.61B, i.e. +1%.
    s = load_builtin("deepseek-v3")
    assert rel_err(s.mtp_params(), 11.5 * B) < 0.02
    assert s.total_params(include_mtp=True) == s.total_params() + s.mtp_params()
    assert s.mtp_params() == s.num_nextn_predict_layers * s.mtp_params_per_depth()
    assert s.mtp_params(active=True) < s.mtp_params()
    assert s.active_params(include_mtp=True) == s.active_params() + s.mtp_params(active=True)


def test_deepseek_v3_flops_per_token():
    # ISCA '25 Table 2: 250 GFLOPs per token at seq 4096 (main model, causal attention)
    s = load_builtin("deepseek-v3")
    causal = flops_per_token_6n(s, 4096)
    assert rel_err(causal, 250e9) < 0.05
    assert flops_per_token_6n(s, 4096, causal=False) > causal
    assert flops_per_token_6n(s, 4096, include_mtp=True) > causal


def test_llama_405b_flops_per_token():
    # ISCA '25 Table 2 lists LLaMA-405B at 2448 GFLOPs per token (seq 4096)
    assert rel_err(flops_per_token_6n(load_builtin("llama3.1-405b"), 4096), 2448e9) < 0.02


def test_flops_formula_small_dense():
    s = ModelSpec(name="t", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=4, head_dim=16,
                  intermediate_size=256, vocab_size=100, hidden_act="silu", max_position_embeddings=128)
    n = s.total_params() - s.embedding_params()  # includes the untied head
    attn_fwd = 2 * 32 * 4 * (16 + 16)  # 4·s·d_attn per layer and token
    assert flops_per_token_6n(s, 32, causal=False) == 6 * n + 3 * 2 * attn_fwd
    assert flops_per_token_6n(s, 32) == 6 * n + 3 * 2 * attn_fwd / 2
    with pytest.raises(ValueError, match="seq_len"):
        flops_per_token_6n(s, 0)


# ---- attention and MLP shapes ----

def test_gqa_and_mha_head_dim():
    gqa = from_hf_config(LLAMA_8B_INLINE, "x")
    assert (gqa.num_kv_heads, gqa.head_dim, gqa.qk_head_dim, gqa.v_dim) == (8, 128, 128, 128)
    mha = from_hf_config({k: v for k, v in LLAMA_8B_INLINE.items() if k != "num_key_value_heads"}, "x")
    assert mha.num_kv_heads == 32
    assert mha.attention_params() == 4 * 4096 * 4096
    explicit = from_hf_config({**LLAMA_8B_INLINE, "head_dim": 256}, "x")  # Gemma-style explicit head_dim
    assert explicit.head_dim == 256 and explicit.attention_params() == 2 * 4096 * 32 * 256 + 2 * 4096 * 8 * 256


def test_silu_gated_gelu_plain():
    silu = from_hf_config(LLAMA_8B_INLINE, "x")
    gelu = from_hf_config({**LLAMA_8B_INLINE, "hidden_act": "gelu"}, "x")
    assert silu.gated_mlp and not gelu.gated_mlp
    assert silu.mlp_params(1000) == 3 * 4096 * 1000
    assert gelu.mlp_params(1000) == 2 * 4096 * 1000 + 1000 + 4096  # with fc biases
    assert gelu.norm_params() == 2 * 4096 and silu.norm_params() == 4096


def test_gpt2_style_config():
    s = from_hf_config(GPT2_SMALL, "gpt2")
    assert (s.hidden_size, s.num_layers, s.num_heads, s.head_dim) == (768, 12, 12, 64)
    assert s.intermediate_size == 4 * 768 and s.max_position_embeddings == 1024
    assert s.hidden_act == "gelu_new" and not s.gated_mlp
    assert s.tie_word_embeddings and s.dropout == 0.1
    assert s.total_params() == 124_439_808  # GPT-2 small as counted by PyTorch


def test_mla_without_q_lora():
    ds = load_builtin("deepseek-v3")
    lite = dataclasses.replace(ds, q_lora_rank=0)
    q_lora_part = 7168 * 1536 + 1536 + 1536 * 128 * 192
    assert lite.attention_params() == ds.attention_params() - q_lora_part + 7168 * 128 * 192


def test_mixtral_style_moe_defaults():
    cfg = {**LLAMA_8B_INLINE, "num_local_experts": 8, "num_experts_per_tok": 2}
    s = from_hf_config(cfg, "mixtral-like")
    assert s.is_moe and s.layer_kinds() == ("moe",) * 32 and s.moe_intermediate_size == 14336


# ---- validation messages ----

def test_strict_inline_rejects_unknown_key():
    with pytest.raises(ValueError, match=r"^model\.hiden_size: unknown model key \(did you mean hidden_size\?\)"):
        from_hf_config({**LLAMA_8B_INLINE, "hiden_size": 4096}, "x", strict=True)
    # one reader for every route: not strict is no longer lenient
    with pytest.raises(ValueError, match=r"^model\.hiden_size: unknown model key"):
        from_hf_config({**LLAMA_8B_INLINE, "hiden_size": 4096, "rope_theta": 5e5}, "x")
    assert "num_hidden_layers" in KNOWN_KEYS


def test_strict_allows_harmless_keys():
    s = from_hf_config({**LLAMA_8B_INLINE, "rms_norm_eps": 1e-5, "model_type": "llama",
                        "rope_scaling": {"rope_type": "llama3"}, "_comment": "ignored"}, "x", strict=True)
    assert s.num_layers == 32


def test_missing_required_key():
    cfg = {k: v for k, v in LLAMA_8B_INLINE.items() if k != "hidden_size"}
    with pytest.raises(ValueError, match=r"^model\.hidden_size: required$"):
        from_hf_config(cfg, "x")
    cfg = {k: v for k, v in LLAMA_8B_INLINE.items() if k != "intermediate_size"}
    with pytest.raises(ValueError, match=r"^model\.intermediate_size: required$"):
        from_hf_config(cfg, "x")


def test_bad_hidden_act_lists_supported():
    with pytest.raises(ValueError, match=r"model\.hidden_act: unsupported activation 'swish'.*silu"):
        from_hf_config({**LLAMA_8B_INLINE, "hidden_act": "swish"}, "x")
    with pytest.raises(ValueError, match=r"model\.activation_function: unsupported"):
        from_hf_config({**GPT2_SMALL, "activation_function": "tanh"}, "x")


@pytest.mark.parametrize("override, key", [
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"hidden_size": 4096.0}, "hidden_size"),
    ({"vocab_size": True}, "vocab_size"),
    ({"num_key_value_heads": 5}, "num_key_value_heads"),
    ({"n_routed_experts": 4, "num_experts_per_tok": 8}, "num_experts_per_tok"),
    ({"num_experts_per_tok": 2}, "num_experts_per_tok"),
    ({"n_routed_experts": 8, "num_experts_per_tok": 2, "first_k_dense_replace": 33}, "first_k_dense_replace"),
    ({"n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 3}, "n_group"),
    ({"n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 4, "topk_group": 5}, "topk_group"),
    ({"q_lora_rank": 64}, "q_lora_rank"),
    ({"attention_dropout": 1.5}, "attention_dropout"),
    ({"tie_word_embeddings": "no"}, "tie_word_embeddings"),
    ({"hidden_size": 4100}, "hidden_size"),  # not divisible by 32 heads, no head_dim
    ({"moe_layer_freq": 2}, "moe_layer_freq"),
    ({"n_embd": 2048}, "n_embd"),  # conflicts with hidden_size
])
def test_validation_names_the_key(override, key):
    with pytest.raises(ValueError, match=rf"^model\.{key}: "):
        from_hf_config({**LLAMA_8B_INLINE, **override}, "x")


def test_direct_construction_is_validated():
    with pytest.raises(ValueError, match=r"^model\.num_attention_heads: must be an integer >= 1"):
        ModelSpec(name="t", hidden_size=64, num_layers=2, num_heads=0, num_kv_heads=1, head_dim=16,
                  intermediate_size=256, vocab_size=100, hidden_act="silu", max_position_embeddings=128)


# ---- files and scenario values ----

def test_unknown_builtin_lists_known():
    with pytest.raises(ValueError, match=r"^model: unknown built-in model 'llama-9b'; known: deepseek-v3, "
                                         r"gpt3-175b, gpt3-20b, .*, llama3\.1-8b, mpt-125m, .*, nemotron-22b$"):
        load_builtin("llama-9b")


def test_resolve_builtin_name(tmp_path):
    assert resolve_model("llama3.1-70b", tmp_path) == load_builtin("llama3.1-70b")
    assert resolve_model("deepseek-v3", tmp_path).name == "deepseek-v3"


def test_resolve_hf_config_file_relative(tmp_path):
    folder = tmp_path / "my-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**LLAMA_8B_INLINE, "torch_dtype": "bfloat16"}))
    spec = resolve_model({"hf_config": "my-llama/config.json"}, tmp_path)
    assert spec.name == "my-llama" and spec.total_params() == load_builtin("llama3.1-8b").total_params()
    named = resolve_model({"hf_config": str(folder / "config.json"), "name": "L8"}, tmp_path / "elsewhere")
    assert named.name == "L8"
    with pytest.raises(ValueError, match=r"^model\.num_hidden_layers: not allowed next to hf_config"):
        resolve_model({"hf_config": "my-llama/config.json", "num_hidden_layers": 2}, tmp_path)


def test_hf_config_file_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^model\.hf_config: file not found: .*nope\.json$"):
        resolve_model({"hf_config": "nope.json"}, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"^model\.hf_config: .*bad\.json: not valid JSON"):
        load_hf_config_file(bad)


def test_resolve_inline_dict(tmp_path):
    spec = resolve_model({**LLAMA_8B_INLINE, "name": "tiny"}, tmp_path)
    assert spec.name == "tiny" and spec.num_kv_heads == 8
    assert resolve_model(LLAMA_8B_INLINE, tmp_path).name == "custom"
    with pytest.raises(ValueError, match=r"^model\.num_layers: unknown model key"):
        resolve_model({**LLAMA_8B_INLINE, "num_layers": 4}, tmp_path)  # inline mappings are strict


def test_resolve_rejects_other_types(tmp_path):
    with pytest.raises(ValueError, match=r"^model: expected a built-in name"):
        resolve_model(42, tmp_path)

"""Hugging Face configs: one reader for files and inline mappings, checked on real config.json files
(tests/hf_configs/, copied byte for byte; provenance in tests/hf_configs/SOURCES.md) against each publisher's
parameter count, and on Qwen2-MoE and Gemma, whose keys the old reader lost."""
import json
from pathlib import Path

import pytest

from costsim.model import from_hf_config, load_hf_config_file, resolve_model

HF = Path(__file__).resolve().parent / "hf_configs"

# file -> (total, active or None, relative tolerance): HF safetensors counts exact, rounded card figures to 2%
PUBLISHED = {
    "meta-llama__Llama-3.1-8B": (8_030_261_248, None, 0),
    "meta-llama__Llama-3.1-70B": (70_553_706_496, None, 0),
    "meta-llama__Llama-3.1-405B": (405_853_388_800, None, 0),
    "meta-llama__Llama-2-7b-hf": (6_738_415_616, None, 0),
    "mistralai__Mistral-7B-v0.1": (7_241_732_096, None, 0),
    "microsoft__Phi-3-mini-4k-instruct": (3_821_079_552, None, 0),
    "openai-community__gpt2": (124_439_808, None, 0),
    # GPT-NeoX: rotary, counted with learned positions (model.py: < 0.1% over); card 11,846,072,320
    "EleutherAI__pythia-12b": (11_846_072_320, None, 0.002),
    "mistralai__Mixtral-8x7B-v0.1": (46.7e9, 12.9e9, 0.02),
    "mistralai__Mixtral-8x22B-v0.1": (141e9, 39e9, 0.02),
    "Qwen__Qwen2.5-7B": (7.61e9, None, 0.01),
    "Qwen__Qwen3-8B": (8.2e9, None, 0.01),
    "Qwen__Qwen3-30B-A3B": (30.5e9, 3.3e9, 0.02),
    "Qwen__Qwen3-235B-A22B": (235e9, 22e9, 0.02),
    "deepseek-ai__DeepSeek-V2-Lite": (15.7e9, None, 0.01),   # the card's 2.4B active counts one of embedding/head
    "deepseek-ai__DeepSeek-V3": (671e9, 37e9, 0.02),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_real_config_matches_the_publisher(name):
    total, active, rel = PUBLISHED[name]
    spec = load_hf_config_file(HF / f"{name}.json")
    assert spec.total_params() == pytest.approx(total, rel=rel, abs=0 if rel else 0.5)
    if active:
        assert spec.active_params() == pytest.approx(active, rel=rel)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_file_and_inline_read_the_same(name, tmp_path):
    raw = json.loads((HF / f"{name}.json").read_text())
    from_file = resolve_model({"hf_config": str(HF / f"{name}.json"), "name": "m"}, tmp_path)
    inline = resolve_model({**{k: v for k, v in raw.items() if not k.startswith("_")}, "name": "m"}, tmp_path)
    assert from_file == inline


# Transcribed from the Hugging Face Hub (no byte-for-byte copy could be cited; tests/hf_configs/SOURCES.md).
QWEN15_MOE_A27B = {  # Qwen/Qwen1.5-MoE-A2.7B: "14.3B parameters, 2.7B activated" (model card)
    "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 5632, "max_position_embeddings": 8192, "max_window_layers": 21, "model_type": "qwen2_moe",
    "num_attention_heads": 16, "num_hidden_layers": 24, "num_key_value_heads": 16, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.39.0.dev0", "use_cache": True, "use_sliding_window": False, "vocab_size": 151936,
    "decoder_sparse_step": 1, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
    "num_experts_per_tok": 4, "num_experts": 60, "norm_topk_prob": False, "output_router_logits": False,
    "router_aux_loss_coef": 0.001}
GEMMA_7B = {  # google/gemma-7b: 8.54B (Gemma report Table 2: 786,825,216 embedding + 7,751,248,896 non-embedding)
    "architectures": ["GemmaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 2,
    "eos_token_id": 1, "head_dim": 256, "hidden_act": "gelu", "hidden_size": 3072, "initializer_range": 0.02,
    "intermediate_size": 24576, "max_position_embeddings": 8192, "model_type": "gemma", "num_attention_heads": 16,
    "num_hidden_layers": 28, "num_key_value_heads": 16, "pad_token_id": 0, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 10000.0, "torch_dtype": "bfloat16", "transformers_version": "4.38.0.dev0",
    "use_cache": True, "vocab_size": 256000}


@pytest.mark.parametrize("route", ["file", "inline"])
def test_qwen2_moe_shared_expert(route, tmp_path):
    if route == "file":
        (tmp_path / "config.json").write_text(json.dumps(QWEN15_MOE_A27B))
        spec = resolve_model({"hf_config": "config.json"}, tmp_path)
    else:
        spec = resolve_model(QWEN15_MOE_A27B, tmp_path)
    assert spec.n_shared_experts == 4 and spec.moe_intermediate_size == 1408   # 5632 = 4 × 1408
    assert spec.total_params() == pytest.approx(14.3e9, rel=0.005)
    assert spec.active_params() == pytest.approx(2.7e9, rel=0.01)


@pytest.mark.parametrize("route", ["file", "inline"])
def test_gemma_gated_gelu_and_tied_embeddings(route, tmp_path):
    if route == "file":
        (tmp_path / "config.json").write_text(json.dumps(GEMMA_7B))
        spec = resolve_model({"hf_config": "config.json"}, tmp_path)
    else:
        spec = resolve_model(GEMMA_7B, tmp_path)
    assert spec.gated_mlp and spec.tie_word_embeddings and spec.head_dim == 256
    non_embedding = spec.total_params() - spec.embedding_params()
    assert non_embedding == 7_751_248_896                      # the Gemma report's figure, exactly
    assert spec.total_params() == pytest.approx(8.54e9, rel=0.001)
    # the newer key names the same tanh-approximated GELU
    assert from_hf_config({**GEMMA_7B, "hidden_activation": "gelu_pytorch_tanh"}, "g").total_params() == spec.total_params()


@pytest.mark.parametrize("route", ["file", "inline"])
def test_unknown_key_is_an_error_in_both_routes(route, tmp_path):
    cfg = {**GEMMA_7B, "num_shared_moe_blocks": 3}
    with pytest.raises(ValueError, match=r"^model\.num_shared_moe_blocks: unknown model key.*could change parameters"):
        if route == "file":
            (tmp_path / "config.json").write_text(json.dumps(cfg))
            resolve_model({"hf_config": "config.json"}, tmp_path)
        else:
            resolve_model(cfg, tmp_path)


@pytest.mark.parametrize("override, key", [
    ({"model_type": "gemma3"}, "model_type"),
    ({"shared_expert_intermediate_size": 1000}, "shared_expert_intermediate_size"),   # not a multiple of 1408
    ({"decoder_sparse_step": 2}, "decoder_sparse_step"),
    ({"mlp_only_layers": [3, 7]}, "mlp_only_layers"),
    ({"use_sliding_window": True}, "use_sliding_window"),
])
def test_keys_that_would_change_counts_are_named(override, key):
    with pytest.raises(ValueError, match=rf"^model\.{key}: "):
        from_hf_config({**QWEN15_MOE_A27B, **override}, "q")


def test_first_dense_layers_from_mlp_only_layers():
    spec = from_hf_config({**QWEN15_MOE_A27B, "mlp_only_layers": [0, 1]}, "q")
    assert spec.layer_kinds()[:3] == ("dense", "dense", "moe") and spec.num_moe_layers == 22

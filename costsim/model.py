"""Transformer model specs: Hugging Face config import, parameter counts (ints), FLOPs per token.

Sources: DeepSeek-V3 report (arXiv 2412.19437) with its released `modeling_deepseek.py` and config.json;
Llama 3 (arXiv 2407.21783); GPT-3 (Brown et al. 2020); PaLM App. B; docs/reference/formulas.md. Conventions:
- 'silu' models are Llama/DeepSeek style: gated 3-matrix MLP, RMSNorm (h), no biases, rotary positions.
- plain-activation models are GPT-2/3 style: 2-matrix MLP, LayerNorm (2h), a bias on every linear layer,
  learned positions (max_position_embeddings·h; over-counts rotary GELU models such as GPT-NeoX by < 0.1%).
- Two norms per layer, one final norm. MoE router h·E plus E score-correction biases (DeepSeek-V3);
  experts are MLPs of moe_intermediate_size; active = router + shared + num_experts_per_tok routed.
- MTP per depth (V3 report §2.2): two norms, 2h→h projection, one block of the last layer's kind, the
  shared-head norm; embedding and head are shared and count 0 (the report's "11.5B unique").
- Active parameters include the input embedding and the output head (the report's "37B activated").
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

GATED_ACTS = frozenset({"silu"})
PLAIN_ACTS = frozenset({"gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "relu2"})
SUPPORTED_ACTS = tuple(sorted(GATED_ACTS | PLAIN_ACTS))


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a decoder-only transformer; sizes are element counts, not bytes."""
    name: str
    hidden_size: int
    num_layers: int  # num_hidden_layers
    num_heads: int  # num_attention_heads
    num_kv_heads: int  # num_key_value_heads (defaults to num_heads)
    head_dim: int  # HF `head_dim` if given, else hidden_size // num_heads
    intermediate_size: int  # dense FFN inner size
    vocab_size: int
    hidden_act: str  # 'silu' → gated 3-matrix MLP; the others → plain 2-matrix MLP
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    dropout: float = 0.0  # max of the HF dropout keys present
    # MoE (DeepSeek style); 0 routed experts = dense
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    first_k_dense_replace: int = 0  # first k layers dense, the rest MoE
    n_group: int = 0  # expert groups for node-limited routing, 0 = none
    topk_group: int = 0
    # MLA (DeepSeek-V2/V3); kv_lora_rank == 0 means ordinary MHA/GQA
    q_lora_rank: int = 0  # 0 = plain q projection
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    num_nextn_predict_layers: int = 0  # MTP depth
    # Llama-style block (gated 3-matrix MLP, RMSNorm, no biases, rotary) whatever the activation, e.g. Gemma's
    # gated GELU; None: decided by the activation (silu gated, the others GPT style)
    mlp_gated: bool | None = None
    # sliding-window attention (Mistral v0.1, Phi-3, Gemma 2): each query attends to at most this many keys, on
    # this share of the layers (Gemma 2 alternates local and global layers); 0 = full attention
    sliding_window: int = 0
    sliding_window_share: float = 1.0

    def attended_keys(self, seq_len: int) -> float:
        """Keys a query attends to on average under causal attention: (s + 1)/2 ≈ s/2 in full; with a window
        w < s, w − w²/(2s) (the first w queries see a growing prefix, the rest w keys); mixed by the share of
        windowed layers. FLOPs of the score and value products scale with it."""
        full = seq_len / 2
        w = self.sliding_window
        if not w or w >= seq_len:
            return full
        return self.sliding_window_share * (w - w * w / (2 * seq_len)) + (1 - self.sliding_window_share) * full

    def __post_init__(self) -> None:
        _check_spec(self)

    @property
    def gated_mlp(self) -> bool:
        """True for SwiGLU/GeGLU-style MLPs (gate, up, down matrices) in a Llama-style block."""
        return self.hidden_act in GATED_ACTS if self.mlp_gated is None else self.mlp_gated

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts > 0

    @property
    def uses_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def qk_head_dim(self) -> int:
        """Per-head width of queries and keys (MLA: nope + rope part)."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim if self.uses_mla else self.head_dim

    @property
    def v_dim(self) -> int:
        """Per-head width of values."""
        return self.v_head_dim if self.uses_mla else self.head_dim

    @property
    def num_dense_layers(self) -> int:
        return min(self.first_k_dense_replace, self.num_layers) if self.is_moe else self.num_layers

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers

    def layer_kinds(self) -> tuple[str, ...]:
        """'dense' or 'moe' for each main layer, in order."""
        return ("dense",) * self.num_dense_layers + ("moe",) * self.num_moe_layers

    def norm_params(self) -> int:
        """One norm: RMSNorm h (silu models) or LayerNorm 2h (GPT style)."""
        return self.hidden_size if self.gated_mlp else 2 * self.hidden_size

    def attention_params(self) -> int:
        """Attention block of one layer (projections, their biases or inner norms)."""
        return self._mla_params() if self.uses_mla else self._mha_params()

    def _mha_params(self) -> int:
        h, nh, nkv, hd = self.hidden_size, self.num_heads, self.num_kv_heads, self.head_dim
        weights = h * nh * hd + 2 * h * nkv * hd + nh * hd * h  # q; k and v (GQA); o
        biases = 0 if self.gated_mlp else (nh + 2 * nkv) * hd + h  # GPT style: qkv bias + o bias
        return weights + biases

    def _mla_params(self) -> int:
        # DeepseekV3Attention in modeling_deepseek.py: low-rank q and joint kv compression.
        h, nh, qk = self.hidden_size, self.num_heads, self.qk_head_dim
        if self.q_lora_rank:
            q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * nh * qk  # q_a, its norm, q_b
        else:
            q = h * nh * qk  # q_proj
        kv = (h * (self.kv_lora_rank + self.qk_rope_head_dim)  # kv_a_proj_with_mqa
              + self.kv_lora_rank  # kv_a_layernorm
              + self.kv_lora_rank * nh * (self.qk_nope_head_dim + self.v_head_dim))  # kv_b_proj
        o = nh * self.v_head_dim * h  # o_proj
        return q + kv + o

    def mlp_params(self, inner: int) -> int:
        """One MLP of inner size `inner`: gated 3·h·inner, plain 2·h·inner + biases."""
        h = self.hidden_size
        return 3 * h * inner if self.gated_mlp else 2 * h * inner + inner + h  # gate/up/down; fc1, fc2

    def moe_params(self, active: bool = False) -> int:
        """MoE block of one layer: router (+ score bias), routed and shared experts; top-k if active."""
        e = self.n_routed_experts
        router = self.hidden_size * e + e  # gate weight + e_score_correction_bias (DeepSeek-V3)
        expert = self.mlp_params(self.moe_intermediate_size)
        routed = (self.num_experts_per_tok if active else e) * expert
        return router + routed + self.n_shared_experts * expert

    def layer_params(self, kind: str, active: bool = False) -> int:
        """One transformer block of kind 'dense' or 'moe'."""
        if kind not in ("dense", "moe"):
            raise ValueError(f"layer kind must be 'dense' or 'moe', got {kind!r}")
        ffn = self.mlp_params(self.intermediate_size) if kind == "dense" else self.moe_params(active)
        return self.attention_params() + 2 * self.norm_params() + ffn

    def embedding_params(self) -> int:
        """Input token embedding, V·h."""
        return self.vocab_size * self.hidden_size

    def position_embedding_params(self) -> int:
        """Learned absolute positions (GPT style only), max_position_embeddings·h."""
        return 0 if self.gated_mlp else self.max_position_embeddings * self.hidden_size

    def head_params(self) -> int:
        """Output head, V·h; 0 when tied to the input embedding."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def final_norm_params(self) -> int:
        return self.norm_params()

    def mtp_params_per_depth(self, active: bool = False) -> int:
        """One MTP depth (DeepSeek-V3 §2.2); the shared embedding and head count 0."""
        return (3 * self.norm_params()  # enorm, hnorm, shared_head.norm
                + 2 * self.hidden_size ** 2  # eh_proj: concat(2h) → h, no bias
                + self.layer_params(self.layer_kinds()[-1], active))

    def mtp_params(self, active: bool = False) -> int:
        """All MTP depths."""
        return self.num_nextn_predict_layers * self.mtp_params_per_depth(active)

    def _params(self, active: bool, include_mtp: bool) -> int:
        layers = sum(self.layer_params(k, active) for k in self.layer_kinds())
        outer = (self.embedding_params() + self.position_embedding_params()
                 + self.final_norm_params() + self.head_params())
        return layers + outer + (self.mtp_params(active) if include_mtp else 0)

    def total_params(self, include_mtp: bool = False) -> int:
        """All parameters (tied embedding counted once)."""
        return self._params(active=False, include_mtp=include_mtp)

    def active_params(self, include_mtp: bool = False) -> int:
        """Parameters used per token: routed experts count top-k; embedding and head included."""
        return self._params(active=True, include_mtp=include_mtp)


def flops_per_token_6n(spec: ModelSpec, seq_len: int, causal: bool = True,
                       include_mtp: bool = False) -> float:
    """Model training FLOPs per token, "6·N·D plus attention" (formulas.md; PaLM App. B).

    N = active params less input/position embeddings (lookups), head counted V·h even when tied. Forward
    attention per layer and token 2·s·nh·(qk_head_dim + v_dim) (QKᵀ, AV; 4·s·d_attn if qk = v), halved if
    causal; training = 3× forward. include_mtp adds per depth a block and a head matmul (Megatron-LM).
    """
    if not _is_int(seq_len) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    depth = spec.num_nextn_predict_layers if include_mtp else 0
    head_matmul = spec.vocab_size * spec.hidden_size * (1 + depth)
    n_matmul = (spec.active_params(include_mtp) - spec.embedding_params()
                - spec.position_embedding_params() - spec.head_params() + head_matmul)
    causal_factor = 0.5 if causal else 1.0  # a causal mask skips half the query-key pairs
    attn_fwd_flops = 2 * seq_len * spec.num_heads * (spec.qk_head_dim + spec.v_dim) * causal_factor
    return 6.0 * n_matmul + 3.0 * (spec.num_layers + depth) * attn_fwd_flops


# ---- validation ----
# int fields of ModelSpec: those without a default must be >= 1, the optional ones (default 0) >= 0
_INT_FIELDS = {f.name: int(f.default is MISSING) for f in fields(ModelSpec)
               if f.type == "int" and f.name != "sliding_window"}   # sliding_window: _sliding_window()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_spec(s: ModelSpec) -> None:
    """Raise a one-line ValueError naming the HF key of the first inconsistent field."""
    for f, low in _INT_FIELDS.items():
        if not _is_int(v := getattr(s, f)) or v < low:
            raise ValueError(f"model.{_INT_KEYS[f][0]}: must be an integer >= {low}, got {_short(v)}")
    moe, e, k = s.is_moe, s.n_routed_experts, s.num_experts_per_tok
    rules = [  # (broken, key, message)
        (s.hidden_act not in SUPPORTED_ACTS, "hidden_act",
         f"unsupported activation {_short(s.hidden_act)}; supported: {', '.join(SUPPORTED_ACTS)}"),
        (s.num_heads % s.num_kv_heads != 0, "num_key_value_heads",
         f"{s.num_kv_heads} does not divide num_attention_heads {s.num_heads}"),
        (k > e, "num_experts_per_tok", f"{k} exceeds n_routed_experts {e}"),
        (moe and k < 1, "num_experts_per_tok", "required (>= 1) when n_routed_experts > 0"),
        (moe and s.moe_intermediate_size < 1, "moe_intermediate_size", "required (>= 1) when MoE"),
        (moe and s.first_k_dense_replace > s.num_layers, "first_k_dense_replace",
         f"{s.first_k_dense_replace} exceeds num_hidden_layers {s.num_layers}"),
        (moe and s.n_group > 0 and e % s.n_group != 0, "n_group", f"does not divide n_routed_experts {e}"),
        (moe and s.n_group > 0 and not 1 <= s.topk_group <= s.n_group, "topk_group",
         f"must be in 1..n_group ({s.n_group}), got {s.topk_group}"),
        (s.uses_mla and (s.qk_head_dim < 1 or s.v_head_dim < 1), "kv_lora_rank",
         "MLA needs qk_nope_head_dim + qk_rope_head_dim >= 1 and v_head_dim >= 1"),
        (not s.uses_mla and s.q_lora_rank > 0, "q_lora_rank", "only valid with MLA (kv_lora_rank > 0)"),
    ]
    for broken, key, message in rules:
        if broken:
            raise ValueError(f"model.{key}: {message}")


# ---- Hugging Face config import ----
# field → (HF key, GPT-2/Mixtral/Qwen aliases, required)
_INT_KEYS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "hidden_size": ("hidden_size", ("n_embd",), True),
    "num_layers": ("num_hidden_layers", ("n_layer",), True),
    "num_heads": ("num_attention_heads", ("n_head",), True),
    "vocab_size": ("vocab_size", (), True),
    "max_position_embeddings": ("max_position_embeddings", ("n_positions",), True),
    "num_kv_heads": ("num_key_value_heads", (), False),
    "head_dim": ("head_dim", (), False),
    "intermediate_size": ("intermediate_size", ("n_inner",), False),
    "n_routed_experts": ("n_routed_experts", ("num_local_experts", "num_experts"), False),
    **{f: (f, (), False) for f, low in _INT_FIELDS.items() if low == 0 and f != "n_routed_experts"},
}
_DROPOUT_KEYS = ("dropout", "attention_dropout", "hidden_dropout", "resid_pdrop", "attn_pdrop",
                 "embd_pdrop", "hidden_dropout_prob", "attention_probs_dropout_prob")
# Architectures (HF `model_type`) whose keys that change parameters, FLOPs or memory are all mapped:
# model_type -> (Llama-style block: gated MLP, RMSNorm, no biases, rotary — whatever the activation, so Gemma's
# GELU is a gated GeGLU; default of tie_word_embeddings, as each transformers config class has it). gpt3 and
# mpt are the built-ins' own (GPT style, every key explicit). Without model_type: the activation decides.
MODEL_TYPES: dict[str, tuple[bool, bool]] = {
    "llama": (True, False), "mistral": (True, False), "mixtral": (True, False), "qwen2": (True, False),
    "qwen2_moe": (True, False), "qwen3": (True, False), "qwen3_moe": (True, False),
    "deepseek_v2": (True, False), "deepseek_v3": (True, False), "gemma": (True, True), "gemma2": (True, True),
    "phi3": (True, False), "nemotron": (False, False), "gpt2": (False, True), "gpt_neox": (False, False),
    "gpt3": (False, False), "mpt": (False, False),
}
# Read by from_hf_config beside the integer keys (MoE layouts of Qwen; Gemma's activation key).
_LAYOUT_KEYS = ("shared_expert_intermediate_size", "decoder_sparse_step", "mlp_only_layers", "hidden_activation",
                "use_sliding_window", "sliding_window", "model_type")
KNOWN_KEYS = tuple(sorted({k for key, al, _ in _INT_KEYS.values() for k in (key, *al)} | set(_DROPOUT_KEYS)
                          | {"hidden_act", "activation_function", "tie_word_embeddings", "moe_layer_freq"}
                          | set(_LAYOUT_KEYS)))
# Accepted in both routes, unused: metadata, numerics, generation and routing details that change no count.
HARMLESS_KEYS = frozenset((
    "architectures model_type torch_dtype transformers_version auto_map use_cache tokenizer_class "
    "rms_norm_eps layer_norm_eps layer_norm_epsilon norm_eps rope_theta rope_scaling rotary_pct rotary_emb_base "
    "partial_rotary_factor rope_parameters original_max_position_embeddings use_mrope "
    "initializer_range bos_token_id eos_token_id pad_token_id sep_token_id decoder_start_token_id "
    "attention_bias mlp_bias pretraining_tp n_ctx max_window_layers "
    "use_parallel_residual scoring_func topk_method norm_topk_prob routed_scaling_factor aux_loss_alpha "
    "seq_aux ep_size quantization_config output_router_logits router_aux_loss_coef router_jitter_noise "
    "attn_logit_softcapping final_logit_softcapping query_pre_attn_scalar cache_implementation "
    "summary_activation summary_first_dropout summary_proj_to_labels summary_type summary_use_proj "
    "task_specific_params scale_attn_weights reorder_and_upcast_attn scale_attn_by_inverse_layer_idx "
    "classifier_dropout is_decoder is_encoder_decoder return_dict output_attentions output_hidden_states "
    "id2label label2id problem_type gradient_checkpointing").split())


def _pick(cfg: Mapping[str, Any], key: str, aliases: tuple[str, ...]) -> tuple[str, Any]:
    """(key used, value) of the first of key/aliases present and not None; (key, None) if none."""
    present = [k for k in (key, *aliases) if cfg.get(k) is not None]
    if len(present) > 1 and any(cfg[k] != cfg[present[0]] for k in present[1:]):
        raise ValueError(f"model.{present[1]}: conflicts with {present[0]}")
    return (present[0], cfg[present[0]]) if present else (key, None)


def _dropout(cfg: Mapping[str, Any]) -> float:
    """Largest dropout probability among the HF dropout keys present (0 if none)."""
    present = {k: cfg[k] for k in _DROPOUT_KEYS if cfg.get(k) is not None}
    for key, v in present.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise ValueError(f"model.{key}: must be a probability in [0, 1), got {_short(v)}")
    return float(max(present.values(), default=0.0))


# Upper bounds of the integer keys: far above any model built, low enough that sizes stay exact in float64
# and the op table stays small (a layer count of a million took 15 s to fail on memory).
INT_MAX = 10_000_000
_INT_MAX = {"num_layers": 10_000, "num_heads": 100_000, "num_kv_heads": 100_000, "n_routed_experts": 100_000}


def _short(v: Any) -> str:
    from .safe_load import short
    return short(v)


def _read_ints(cfg: Mapping[str, Any]) -> dict[str, int]:
    """Integer fields present in cfg (by HF key or alias), each checked; required ones must be there."""
    vals = {}
    for field, (key, aliases, required) in _INT_KEYS.items():
        used, v = _pick(cfg, key, aliases)
        if v is None and required:
            raise ValueError(f"model.{key}: required")
        if v is not None and (not _is_int(v) or v < required):
            raise ValueError(f"model.{used}: must be an integer >= {int(required)}, got {_short(v)}")
        if v is not None and v > (top := _INT_MAX.get(field, INT_MAX)):
            raise ValueError(f"model.{used}: {_short(v)} is above the limit {top:,}")
        vals[field] = v
    return {f: v for f, v in vals.items() if v is not None}


def _fill_defaults(vals: dict[str, int], act: str) -> None:
    """HF defaults: kv heads = heads, head_dim = h/heads, GPT-2 n_inner = 4h, Mixtral expert size."""
    h, nh = vals["hidden_size"], vals["num_heads"]
    vals.setdefault("num_kv_heads", nh)
    if "head_dim" not in vals:
        if h % nh:
            raise ValueError(f"model.hidden_size: {h} is not divisible by num_attention_heads {nh}; "
                             "give head_dim")
        vals["head_dim"] = h // nh
    if "intermediate_size" not in vals:
        if act in GATED_ACTS:
            raise ValueError("model.intermediate_size: required")
        vals["intermediate_size"] = 4 * h  # GPT-2: n_inner None → 4·n_embd
    if vals.get("n_routed_experts") and not vals.get("moe_intermediate_size"):
        vals["moe_intermediate_size"] = vals["intermediate_size"]  # Mixtral: one FFN size


def from_hf_config(cfg: Mapping[str, Any], name: str, strict: bool = True) -> ModelSpec:
    """ModelSpec from a Hugging Face config dict; keys starting with '_' are ignored.

    One reader for config.json files, built-ins and inline mappings alike (`strict` is kept for callers; both
    values read the same way): every key is mapped (KNOWN_KEYS) or known not to change parameters, FLOPs or
    memory (HARMLESS_KEYS); any other key is an error naming it, since costsim cannot tell what it changes.
    `model_type` (MODEL_TYPES) decides the block style and the default of tie_word_embeddings; without it the
    activation does (silu: Llama style; the others: GPT style, tied for GPT-2's n_embd aliases). GPT-2 aliases
    (n_embd, n_layer, n_head, n_inner, n_positions, activation_function) are accepted. Qwen2-MoE's
    `shared_expert_intermediate_size` is its shared expert (a whole number of routed-expert widths).
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f"model: expected a mapping of Hugging Face config keys, got {type(cfg).__name__}")
    cfg = {k: v for k, v in cfg.items() if not str(k).startswith("_")}
    unknown = [k for k in cfg if k not in KNOWN_KEYS and k not in HARMLESS_KEYS]
    if unknown:
        import difflib
        close = difflib.get_close_matches(str(unknown[0]), [*KNOWN_KEYS, *HARMLESS_KEYS], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        key = "".join(c if c.isprintable() else "?" for c in str(unknown[0])[:60])   # one line, whatever the key
        raise ValueError(f"model.{key}: unknown model key{hint}; it could change parameters, FLOPs "
                         "or memory, so it is refused: remove it if it does not (the keys read: costsim/model.py "
                         "KNOWN_KEYS, HARMLESS_KEYS)")
    model_type = cfg.get("model_type")
    if model_type is not None and model_type not in MODEL_TYPES:
        raise ValueError(f"model.model_type: {_short(model_type)} is not an architecture costsim maps (known: "
                         f"{', '.join(sorted(MODEL_TYPES))}); remove model_type to read the keys by the "
                         "activation (silu: gated Llama-style block; the others: GPT style)")
    gated, tie_default = MODEL_TYPES.get(model_type, (None, "n_embd" in cfg))
    if cfg.get("hidden_activation") is not None and cfg.get("hidden_act") is not None and gated:
        cfg.pop("hidden_act")   # Gemma: hidden_activation, where given, is the one the MLP runs
    act_key, act = _pick(cfg, "hidden_act", ("activation_function", "hidden_activation"))
    if act is None:
        raise ValueError("model.hidden_act: required")
    if act not in SUPPORTED_ACTS:
        raise ValueError(f"model.{act_key}: unsupported activation {_short(act)}; "
                         f"supported: {', '.join(SUPPORTED_ACTS)}")
    vals = _read_ints(cfg)
    _fill_defaults(vals, act)
    if cfg.get("moe_layer_freq", 1) != 1:
        raise ValueError(f"model.moe_layer_freq: only 1 is supported, got {_short(cfg['moe_layer_freq'])}")
    _qwen_moe_layout(cfg, vals)
    if cfg.get("use_sliding_window") not in (None, False):
        raise ValueError("model.use_sliding_window: sliding-window attention is not modelled; only false")
    window, share = _sliding_window(cfg, model_type)
    tie = cfg.get("tie_word_embeddings", tie_default)
    if not isinstance(tie, bool):
        raise ValueError(f"model.tie_word_embeddings: must be true or false, got {_short(tie)}")
    return ModelSpec(name=name, hidden_act=act, tie_word_embeddings=tie, dropout=_dropout(cfg), mlp_gated=gated,
                     sliding_window=window, sliding_window_share=share,
                     **vals)


def _sliding_window(cfg: Mapping[str, Any], model_type: str | None) -> tuple[int, float]:
    """(window, share of windowed layers) from `sliding_window`. Qwen configs carry a sliding_window that is off
    unless use_sliding_window is true (refused above), so there it changes nothing; Gemma 2 windows every other
    layer (its modeling code alternates local and global attention); elsewhere (Mistral v0.1, Phi-3) every layer."""
    w = cfg.get("sliding_window")
    if w is None or cfg.get("use_sliding_window") is False or (model_type or "").startswith("qwen"):
        return 0, 1.0
    if not _is_int(w) or w <= 0:
        raise ValueError(f"model.sliding_window: must be a positive integer or null, got {_short(w)}")
    return int(w), 0.5 if model_type == "gemma2" else 1.0


def _qwen_moe_layout(cfg: Mapping[str, Any], vals: dict[str, int]) -> None:
    """Qwen2-/Qwen3-MoE: a shared expert of shared_expert_intermediate_size (as n_shared_experts routed-expert
    widths: same parameters and FLOPs), MoE every decoder_sparse_step-th layer, dense mlp_only_layers."""
    shared = cfg.get("shared_expert_intermediate_size")
    if shared is not None and shared != 0:
        inner = vals.get("moe_intermediate_size", 0)
        if not _is_int(shared) or shared < 0:
            raise ValueError(f"model.shared_expert_intermediate_size: must be an integer >= 0, got {_short(shared)}")
        if not vals.get("n_routed_experts") or not inner or shared % inner:
            raise ValueError(f"model.shared_expert_intermediate_size: {shared} must be a whole multiple of "
                             f"moe_intermediate_size ({inner or 'missing'}) in an MoE model")
        if vals.get("n_shared_experts"):
            raise ValueError("model.shared_expert_intermediate_size: give it or n_shared_experts, not both")
        vals["n_shared_experts"] = shared // inner
    step = cfg.get("decoder_sparse_step", 1)
    if step != 1 and vals.get("n_routed_experts"):
        raise ValueError(f"model.decoder_sparse_step: only 1 (every layer MoE) is supported, got {_short(step)}")
    dense = cfg.get("mlp_only_layers") or []
    if not isinstance(dense, list) or not all(_is_int(i) for i in dense):
        raise ValueError(f"model.mlp_only_layers: must be a list of layer indices, got {_short(dense)}")
    if dense and vals.get("n_routed_experts"):
        if sorted(dense) != list(range(len(dense))) or vals.get("first_k_dense_replace"):
            raise ValueError("model.mlp_only_layers: only the first layers can be dense "
                             f"(0, 1, …, k-1), got {_short(dense)}")
        vals["first_k_dense_replace"] = len(dense)


# ---- built-ins, files and scenario values ----
_MODELS_DIR = resources.files("costsim").joinpath("models")  # package data, found wherever installed


def builtin_model_names() -> list[str]:
    """Names of the built-in models (costsim/models/<name>.json), sorted."""
    return sorted(p.name[: -len(".json")] for p in _MODELS_DIR.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def load_builtin(name: str) -> ModelSpec:
    """A built-in model by name, e.g. 'deepseek-v3'."""
    names = builtin_model_names()
    if name not in names:
        raise ValueError(f"model: unknown built-in model {_short(name)}; known: {', '.join(names)}")
    return from_hf_config(json.loads(_MODELS_DIR.joinpath(f"{name}.json").read_text()), name)


def load_hf_config_file(path: str | Path, name: str | None = None) -> ModelSpec:
    """ModelSpec from a Hugging Face config.json; the name defaults to its folder (or file stem)."""
    from .safe_load import LoadError, load_json
    path = Path(path)
    if not path.exists():
        raise ValueError(f"model.hf_config: file not found: {path}")
    try:
        cfg = load_json(path, "hf_config file")
    except LoadError as e:
        raise ValueError(f"model.hf_config: {e}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"model.hf_config: {path} must hold a JSON object")
    default_name = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
    return from_hf_config(cfg, name or default_name)


def resolve_model(value: Any, base_dir: Path) -> ModelSpec:
    """The scenario's `model:` value: a built-in name, {hf_config: path[, name]}, or inline HF keys.

    Relative hf_config paths are resolved against base_dir (the scenario file's folder); inline mappings
    are read strictly and may carry a `name` (default 'custom').
    """
    if isinstance(value, str):
        return load_builtin(value)
    if not isinstance(value, Mapping):
        raise ValueError("model: expected a built-in name, {hf_config: path} or a mapping of HF keys")
    cfg = dict(value)
    name = cfg.pop("name", None)
    if name is not None and not isinstance(name, str):
        raise ValueError(f"model.name: must be a string, got {_short(name)}")
    if "hf_config" not in cfg:
        return from_hf_config(cfg, name or "custom", strict=True)
    path = cfg.pop("hf_config")
    if cfg:
        raise ValueError(f"model.{next(iter(cfg))}: not allowed next to hf_config (allowed: hf_config, name)")
    if not isinstance(path, str):
        raise ValueError(f"model.hf_config: must be a path string, got {_short(path)}")
    full = Path(path) if Path(path).is_absolute() else Path(base_dir) / path
    return load_hf_config_file(full, name)


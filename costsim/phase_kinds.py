"""Scenario keys of the phases beyond training: `kind: generate`, `kind: rl` and `kind: serve`.

A training phase (`kind: train`, the default) is `scenario.Phase`. These phases describe work measured in
prompts, rollouts and served tokens rather than training tokens; each names the serving plan it generates
with (`costsim/infer/`). Figures and sources: docs/reference/deepseek-r1-and-inference.md.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .fields import MAX_SIZE, MAX_TOKENS, Float, Int
from .fields import Strict as _Strict

MAX_SEQS_PER_STEP = 10_000_000   # an RL step's sequences (each round's lengths are sampled as one array)
MAX_ROUNDS = 100_000             # rollout rounds of one RL phase (R1-Zero: 650), each simulated


PROMPT_SIGMA = ("spread of prompt lengths around the mean: log-sd of a lognormal, cut at the model's context "
                "(0: every prompt the mean length). Full attention grows with the square of a prompt's length, so "
                "a spread costs more prefill attention for the same tokens: exp(sigma²) times at equal rates")


class Serving(_Strict):
    """One serving instance: the GPUs that hold one copy of the model and serve a share of the requests."""
    tp: Int = Field(default=1, gt=0, le=MAX_SIZE, description="tensor parallel size inside an instance "
                    "(attention and dense layers)")
    dp: Int = Field(default=1, gt=0, le=MAX_SIZE, description="attention data-parallel ranks inside an instance "
                    "(DeepSeek: DP32 prefill, DP144 decode); the instance has tp·dp GPUs")
    ep: Int = Field(default=1, gt=0, le=MAX_SIZE, description="expert parallel size over the instance's tp·dp "
                    "GPUs (MoE models)")
    precision: Literal["bf16", "fp8"] = Field(default="bf16", description="GEMM precision (fp8: weights stored "
                                               "in FP8)")
    kv_dtype: Literal["bf16", "fp8"] = Field(default="bf16", description="KV-cache element type")
    mtp_tokens: Float = Field(default=1.0, ge=1, le=16, description="tokens emitted per decode step: 1 + the "
                              "accepted draft tokens of speculative decoding (DeepSeek-V3 MTP: 85–90% "
                              "acceptance of the second token, V3 report §5.4.3)")
    overlap_comm: bool = Field(default=False, description="expert all-to-all hidden behind compute (DeepSeek: "
                               "dual micro-batch prefill, 5-stage pipeline in decode)")
    redundant_experts: Int = Field(default=0, ge=0, le=MAX_SIZE, description="extra expert replicas spread over "
                                   "the instance (DeepSeek prefill: 32)")
    moe_load_imbalance: Float | None = Field(default=None, ge=1, le=64, description="measured max/mean routed "
                                             "tokens per EP rank of this instance (after any redundant experts), "
                                             "as moe.load_imbalance in training; default: the balanced floor, "
                                             "which sees no skew for redundant experts to even out")
    custom_all_reduce: bool = Field(default=True, description="TP all-reduces inside a node as inference engines "
                                    "run them (one-/two-shot over NVLink P2P: vLLM, SGLang, TensorRT-LLM): a "
                                    "barrier or two plus the bytes; false: NCCL's ring, 2(n−1) latency steps")
    comm_sms: Int = Field(default=0, ge=0, le=1024, description="SMs the all-to-all kernels hold while they "
                          "overlap compute, as parallelism.comm_sms in training (DeepEP's normal kernels, prefill: "
                          "20); DeepEP's low-latency kernels (decode across nodes) hold none whatever is set; "
                          "0: the fitted overlap_slowdown instead")


class LengthSpec(_Strict):
    """Response lengths in tokens: a named family, its mean (a number, or [step, mean] pairs interpolated
    linearly in the training step) and shape."""
    family: Literal["lognormal", "constant"] = Field(default="lognormal", description="distribution of one "
                                                     "response's length")
    mean: Float | list[tuple[Int, Float]] = Field(description="mean response tokens (before the length "
                                                  "limit); or a table [[step, mean], ...] by training step")
    sigma: Float = Field(default=0.6, gt=0, le=5, description="lognormal shape: standard deviation of "
                         "log(length) (equal lengths: family constant)")

    @model_validator(mode="after")
    def _table(self) -> "LengthSpec":
        if isinstance(self.mean, list):
            if not self.mean:
                raise ValueError("mean: the table is empty; give a number or [[step, mean], ...]")
            steps = [s for s, _ in self.mean]
            if steps != sorted(steps) or len(set(steps)) != len(steps):
                raise ValueError(f"mean: table steps must increase (got {steps[:8]})")
            if any(not 0 < m <= 1e7 for _, m in self.mean):
                raise ValueError("mean: every mean must be in (0, 1e7] tokens")
        elif not 0 < self.mean <= 1e7:
            raise ValueError(f"mean: {self.mean} must be in (0, 1e7] tokens")
        return self


class MaxTokens(_Strict):
    from_step: Int = Field(ge=0, le=1_000_000_000, description="first training step this limit applies to")
    tokens: Int = Field(gt=0, le=10_000_000, description="maximum response tokens from that step on")


class GeneratePhase(_Strict):
    """N prompts through a model: generated data, distillation, rejection sampling, evaluation."""
    kind: Literal["generate"] = Field(description="generate: prompts × input and output tokens through a model")
    name: str = Field(min_length=1, max_length=200, description="phase name, shown in the output")
    model: str | dict[str, Any] | None = Field(default=None, description="the generating model (e.g. a teacher "
                                               "for distillation); default: the scenario's model")
    num_gpus: Int | None = Field(default=None, gt=0, le=10_000_000, description="GPUs generating; default: "
                                 "cluster.num_gpus")
    prompts: Float = Field(gt=0, le=1e13, allow_inf_nan=False, description="requests (samples) generated")
    input_tokens: Float = Field(ge=1, le=1e7, description="mean prompt tokens per request")
    prompt_sigma: Float = Field(default=0.0, ge=0, le=2, description=PROMPT_SIGMA)
    output_tokens: Float = Field(gt=0, le=1e7, description="mean generated tokens per request")
    cache_hit: Float = Field(default=0.0, ge=0, lt=1, description="share of input tokens found in a prefix "
                             "cache (not recomputed)")
    tokens_per_s_per_request: Float | None = Field(default=None, gt=0, le=1e5, description="per-request "
                                                   "output speed target; default: the largest batch memory "
                                                   "allows (throughput)")
    serving: Serving = Field(default=Serving(), description="decode plan (and prefill, unless `prefill` given)")
    prefill: Serving | None = Field(default=None, description="a separate prefill plan (prefill/decode "
                                    "disaggregation); default: `serving`")


class RLPhase(_Strict):
    """Rounds of rollouts (generation) and policy updates (training on the generated tokens), GRPO-style."""
    kind: Literal["rl"] = Field(description="rl: rounds of rollouts and policy updates")
    name: str = Field(min_length=1, max_length=200, description="phase name, shown in the output")
    num_gpus: Int | None = Field(default=None, gt=0, le=10_000_000, description="GPUs of the phase; default: "
                                 "cluster.num_gpus")
    steps: Int = Field(gt=0, le=100_000_000, description="policy (optimizer) steps")
    prompts_per_step: Int = Field(gt=0, le=10_000_000, description="unique prompts per policy step")
    samples_per_prompt: Int = Field(default=1, gt=0, le=100_000, description="sampled outputs per prompt "
                                    "(GRPO group size)")
    outputs_per_rollout: Int | None = Field(default=None, gt=0, le=MAX_SEQS_PER_STEP, description="outputs "
                                            "generated per rollout round, split into mini-batches of "
                                            "prompts_per_step·samples_per_prompt (one policy step each); "
                                            "default: one step's batch")
    prompt_tokens: Float = Field(ge=1, le=1e7, description="mean prompt tokens")
    max_output_tokens: Int | list[MaxTokens] = Field(description="response length limit: a number, or "
                                                     "[{from_step, tokens}, ...]")
    response_length: LengthSpec = Field(description="response-length distribution (state its source: no "
                                        "published curve is exact)")
    rollout: Serving = Field(default=Serving(), description="generation plan on the rollout GPUs")
    max_batch_per_gpu: Int | None = Field(default=None, gt=0, le=1_000_000, description="concurrent sequences "
                                          "per GPU in generation; default: what KV-cache memory allows")
    placement: Literal["colocated", "split"] = Field(default="colocated", description="colocated: the same GPUs "
                                                     "generate then train; split: generation_gpus generate, "
                                                     "the rest train")
    generation_gpus: Int | None = Field(default=None, gt=0, le=10_000_000, description="GPUs generating under "
                                        "placement: split")
    async_rollout: bool = Field(default=False, description="one-step off-policy: the next round's generation "
                                "overlaps this round's update (placement: split)")
    reference_model: bool = Field(default=True, description="a frozen reference policy's forward pass over every "
                                  "sample (GRPO's KL term)")
    policy_logprobs: bool = Field(default=True, description="a forward pass of the policy over every sample to "
                                  "recompute the generating policy's log-probabilities (GRPO/PPO's ratio; verl and "
                                  "OpenRLHF recompute them in the trainer)")
    reward_model: bool = Field(default=False, description="a neural reward model's forward pass over every sample "
                               "(same architecture as the policy); false: rule-based rewards")
    precision: Literal["bf16", "fp8"] | None = Field(default=None, description="update GEMM precision; default: "
                                                      "the phase before's")
    fp8_recipe: Literal["delayed", "current", "rowwise", "blockwise"] | None = Field(
        default=None, description="FP8 scaling of the update; default: the phase before's")
    parallelism: dict[str, Any] | None = Field(default=None, description="overrides of scenario parallelism for "
                                               "the policy update")
    seed: Int = Field(default=0, ge=0, le=2**32 - 1, description="seed of the sampled response lengths")

    @model_validator(mode="after")
    def _consistent(self) -> "RLPhase":
        batch = self.prompts_per_step * self.samples_per_prompt
        if batch > MAX_SEQS_PER_STEP:
            raise ValueError(f"prompts_per_step·samples_per_prompt = {batch:,} sequences per step; the limit is "
                             f"{MAX_SEQS_PER_STEP:,}")
        per_round = self.outputs_per_rollout or batch
        rounds = -(-self.steps // (per_round // batch)) if per_round >= batch else self.steps
        if rounds > MAX_ROUNDS:
            raise ValueError(f"steps={self.steps:,} make {rounds:,} rollout rounds of {per_round:,} outputs; the "
                             f"limit is {MAX_ROUNDS:,} (more outputs_per_rollout, or fewer steps)")
        if self.outputs_per_rollout is not None and self.outputs_per_rollout % batch:
            raise ValueError(f"outputs_per_rollout={self.outputs_per_rollout} is not a multiple of "
                             f"prompts_per_step·samples_per_prompt = {batch}")
        if isinstance(self.max_output_tokens, list):
            if not self.max_output_tokens or self.max_output_tokens[0].from_step != 0:
                raise ValueError("max_output_tokens: the first entry must have from_step: 0")
            starts = [m.from_step for m in self.max_output_tokens]
            if starts != sorted(set(starts)):
                raise ValueError(f"max_output_tokens: from_step must increase (got {starts})")
        if self.placement == "split" and self.generation_gpus is None:
            raise ValueError("generation_gpus: required with placement: split")
        if self.placement == "colocated" and self.async_rollout:
            raise ValueError("async_rollout: needs placement: split (colocated GPUs cannot generate and train "
                             "at once)")
        return self

    def max_tokens_at(self, step: int) -> int:
        if isinstance(self.max_output_tokens, int):
            return self.max_output_tokens
        out = self.max_output_tokens[0].tokens
        for m in self.max_output_tokens:
            if step >= m.from_step:
                out = m.tokens
        return out


class ServePhase(_Strict):
    """A period of serving: token volumes in, nodes (GPUs) needed and their cost out."""
    kind: Literal["serve"] = Field(description="serve: a period of serving at given token volumes")
    name: str = Field(min_length=1, max_length=200, description="phase name, shown in the output")
    model: str | dict[str, Any] | None = Field(default=None, description="the served model; default: the "
                                               "scenario's model")
    hours: Float = Field(gt=0, le=1e6, description="length of the period")
    input_tokens: Float = Field(gt=0, le=MAX_TOKENS, description="input tokens served in the period, cache hits "
                                "included")
    output_tokens: Float = Field(gt=0, le=MAX_TOKENS, description="output tokens generated in the period")
    cache_hit: Float = Field(default=0.0, ge=0, lt=1, description="share of input tokens found in the KV cache "
                             "(not recomputed)")
    prompt_tokens: Float = Field(ge=1, le=1e7, description="mean prompt length per request (attention span of "
                                 "prefill)")
    prompt_sigma: Float = Field(default=0.0, ge=0, le=2, description=PROMPT_SIGMA)
    context_tokens: Float | None = Field(default=None, gt=0, le=1e7, description="mean KV-cache length per "
                                         "output token in decode; default: prompt_tokens + half the mean output")
    output_per_request: Float | None = Field(default=None, gt=0, le=1e7, description="mean output tokens per "
                                             "request; default: output_tokens·prompt_tokens/input_tokens")
    tokens_per_s_per_request: Float | None = Field(default=None, gt=0, le=1e5, description="per-request output "
                                                   "speed target; it picks the decode batch")
    utilization: Float = Field(default=1.0, ge=0.01, le=1, description="average load over the capacity the nodes "
                               "are provisioned for (bursts, idle hours); 1: sized for full load. The "
                               "per-node figures are then what a provisioned node delivers on average")
    whole_instances: bool = Field(default=True, description="run whole instances: each role's GPUs are its "
                                  "load rounded up to a whole number of instances (tp·dp GPUs each), as a "
                                  "deployment runs them; false: the fractional average, as if instances scaled "
                                  "continuously")
    prefill: Serving = Field(default=Serving(), description="prefill plan (one instance)")
    decode: Serving = Field(default=Serving(), description="decode plan (one instance)")

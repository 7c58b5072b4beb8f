"""`kind: rl`: rounds of rollouts (generation) and policy updates, GRPO-style (DeepSeek-R1, Nature 2025).

One round generates `outputs_per_rollout` responses on the rollout GPUs (continuous batching, simulated in
costsim/sim/rollout.py: the round ends when its longest response ends), then trains
outputs_per_rollout / (prompts_per_step · samples_per_prompt) policy steps on them (docs/reference/
deepseek-r1-and-inference.md §2: 8,192 outputs → 16 mini-batches, one inner epoch).

The pieces and where each comes from:
- decode step time (sequences per GPU, mean context) from the inference model (costsim/infer/), tabulated on a
  grid and interpolated so that the simulator can ask for it hundreds of thousands of times;
- a policy step: `estimate_phase` of the training plan at seq_len = prompt + mean response (the batch packed to
  its mean length: tokens are what a step costs), on a grid of lengths, interpolated in between;
- forward-only passes over every sample — the policy's log-probabilities, the reference model (KL term), a neural
  reward model where used: each the forward share of that step.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import PlanError
from .estimate import PhaseEstimate, energy_mwh, estimate_phase
from .plan import PhasePlan, _merged_parallelism, make_plan
from .post_training import check_serving, nodes

SEQ_GRID_POINTS = 8          # training step costed at this many sequence lengths, linear in between
DECODE_BATCH_POINTS = 12     # decode step tabulated on batch × context (log-spaced), bilinear in between
DECODE_CONTEXT_POINTS = 10


def inherited(sc, i: int) -> tuple[str, str]:
    """Precision and FP8 recipe an RL phase inherits from the training/RL phases before it (README)."""
    precision, recipe = "bf16", "delayed"
    for ph in sc.phases[:i + 1]:
        if ph.kind in ("train", "rl") and getattr(ph, "gpu_hours", None) is None:
            precision = ph.precision or precision
            recipe = ph.fp8_recipe or recipe
    return precision, recipe


def _log_grid(lo: float, hi: float, n: int) -> list[float]:
    return [lo] if hi <= lo else [float(p) for p in np.geomspace(lo, hi, n)]


def decode_table(model, hw, plan, eff, max_batch: float, max_context: float, min_context: float):
    """Decode step seconds (sequences per GPU, mean context) from the inference model on a log grid, bilinear
    in between (sim/rollout.bilinear_step_time: it takes whole arrays, as the simulator asks)."""
    from .infer.cost import decode_step
    from .sim.rollout import bilinear_step_time
    floor = 1.0 / (plan.tp * plan.dp)           # one sequence on the instance: the long tail's last batch
    batches = sorted({floor, *_log_grid(max(floor, 1.0), max(1.0, max_batch), DECODE_BATCH_POINTS)})
    contexts = _log_grid(max(1.0, min_context), max(min_context, max_context), DECODE_CONTEXT_POINTS)
    vals = [[decode_step(model, hw, plan, eff, b, c).seconds for c in contexts] for b in batches]
    return bilinear_step_time(batches, contexts, vals)


def update_times(sc, i, ph, model, hw, eff, price, gpus: int, seqs: list[float]):
    """Seconds of one policy step and of one reference/reward forward over its batch, at each mean sequence
    length in `seqs` (interpolated from SEQ_GRID_POINTS costed lengths)."""
    precision, recipe = inherited(sc, i)
    par = _merged_parallelism(sc.parallelism, ph.parallelism, f"{i}")
    sc_g = sc.model_copy(update={"cluster": sc.cluster.model_copy(update={"num_gpus": gpus})})
    quantum = par.cp                          # lengths the CP split divides (round up by < cp tokens)
    lo, hi = min(seqs), max(seqs)
    grid = sorted({quantum * max(1, math.ceil(s / quantum)) for s in _log_grid(lo, hi, SEQ_GRID_POINTS)})
    gbs = ph.prompts_per_step * ph.samples_per_prompt
    where = f"phases[{i}] ({ph.name})"
    step_s, fwd_s = [], []
    for seq in grid:
        try:
            plan = make_plan(sc_g, par, model, hw, precision, int(seq), gbs, where, recipe)
            est = estimate_phase(sc_g, model, hw, PhasePlan(ph.name, plan, 1, float(gbs * seq)), eff, price)
        except PlanError as exc:
            msg = str(exc)
            raise PlanError(msg if msg.startswith("phases[") else f"{where}: policy update at {int(seq):,} tokens "
                            f"per sequence: {msg}") from None
        bd = est.breakdown
        step_s.append(est.step_time_s)
        # a forward-only pass of the same batch: the step's forward share (no backward, no optimizer)
        fwd_s.append(est.step_time_s * bd.forward / max(bd.forward + bd.backward, 1e-30))
    # linear in length between grid points; below the first (the shortest length rounded up by < cp tokens), in
    # proportion to the tokens
    def at(values, s):
        return values[0] * s / grid[0] if s <= grid[0] else float(np.interp(s, grid, values))
    return [at(step_s, s) for s in seqs], [at(fwd_s, s) for s in seqs], grid


def estimate_rl(sc, i: int, ph, model, hw, eff, price: float) -> PhaseEstimate:
    from .infer.cost import max_decode_batch, prefill
    from .infer.plan import ServingPlan
    from .sim.rollout import RolloutPool, RoundSpec, simulate_rl

    n = ph.num_gpus or sc.cluster.num_gpus
    key = f"phases[{i}] ({ph.name})"
    gen_gpus = ph.generation_gpus if ph.placement == "split" else n
    train_gpus = n - gen_gpus if ph.placement == "split" else n
    if train_gpus <= 0:
        raise PlanError(f"{key}.generation_gpus: {gen_gpus} leaves no GPU of the phase's {n} to train")
    s = ph.rollout
    check_serving(model, hw, s, f"{key}.rollout")
    if s.tp * s.dp > gen_gpus or gen_gpus % (s.tp * s.dp):
        raise PlanError(f"{key}.rollout: instances of tp·dp = {s.tp * s.dp} GPUs do not tile the {gen_gpus} "
                        "generating GPUs")
    plan = ServingPlan(**s.model_dump())
    batch = ph.prompts_per_step * ph.samples_per_prompt
    per_round = ph.outputs_per_rollout or batch
    steps_per_round = per_round // batch
    rounds = math.ceil(ph.steps / steps_per_round)
    lengths = _length_model(ph.response_length)
    specs, seqs = [], []
    for r in range(rounds):
        step0 = r * steps_per_round
        mx = ph.max_tokens_at(step0)
        specs.append(RoundSpec(n=per_round if r < rounds - 1 else (ph.steps - step0) * batch, step=step0,
                               max_tokens=mx, prompt_tokens=ph.prompt_tokens, lengths=lengths))
        seqs.append(ph.prompt_tokens + lengths.expected(step0, mx))
    limit = max(sp.max_tokens for sp in specs)
    max_ctx = ph.prompt_tokens + limit
    # KV memory is paged (vLLM, SGLang): a sequence holds blocks for the tokens it has, so the batch memory
    # allows is set by the mean length a sequence ends at (the longest round's), not by the length limit
    cap = ph.max_batch_per_gpu or max_decode_batch(model, hw, plan, max(seqs))
    if cap <= 0:
        raise PlanError(f"{key}.rollout: no sequence of {max(seqs):,.0f} tokens fits beside the weights on an "
                        f"instance of {s.tp * s.dp} {hw.name} (more tp/ep, fp8 weights, or a shorter limit)")
    cap = min(cap, math.ceil(per_round / gen_gpus))   # never more concurrent sequences than the round has
    table = decode_table(model, hw, plan, eff, cap, max_ctx, ph.prompt_tokens)
    pre = prefill(model, hw, plan, eff, ph.prompt_tokens)
    # GPU-seconds per prompt: the batch's seconds on every GPU of the instance over the prompts it held
    prefill_gpu_s = pre.seconds * pre.gpus / (pre.tokens / ph.prompt_tokens)
    pool = RolloutPool(gpus=gen_gpus, max_batch_per_gpu=float(cap), step_time=table, tokens_per_step=s.mtp_tokens,
                       prefill_s_per_seq=prefill_gpu_s, gpus_per_replica=s.tp * s.dp)
    step_s, fwd_s, grid = update_times(sc, i, ph, model, hw, eff, price, train_gpus, seqs)
    extra = int(ph.reference_model) + int(ph.reward_model) + int(ph.policy_logprobs)   # forward-only passes
    update = [min(steps_per_round, ph.steps - r * steps_per_round) * (st + extra * fw)
              for r, (st, fw) in enumerate(zip(step_s, fwd_s))]
    res = simulate_rl(specs, pool, update, ph.async_rollout, ph.seed)
    seconds = res.seconds
    hours = n * seconds / 3600
    gen_tokens = float(res.tokens)
    # generation (the pool busy), update and idle (GPU time the long tail leaves unused), summing to 1 of the
    # rounds' generation + update time (= the wall clock when synchronous)
    work = res.generation_s + res.update_s
    figures = {"rounds": rounds, "steps_per_round": steps_per_round,
               "generation_s": res.generation_s, "update_s": res.update_s, "idle_s": res.idle_s,
               "time_split": {"generation": (res.generation_s - res.idle_s) / work, "update": res.update_s / work,
                              "idle": res.idle_s / work},
               "async_overlap_s": work - seconds,
               "generated_tokens": gen_tokens, "mean_response_tokens": gen_tokens / sum(sp.n for sp in specs),
               "generation_gpus": gen_gpus, "training_gpus": train_gpus,
               "decode_batch_per_gpu": cap, "update_seq_len_grid": grid,
               "nodes": nodes(n, hw)}
    return PhaseEstimate(ph.name, gen_tokens, ph.steps, seconds / ph.steps, hours, seconds / 86400, hours * price,
                         energy_mwh(sc, hw, hours), tokens_per_s_per_gpu=gen_tokens / (n * seconds),
                         kind="rl", num_gpus=n, figures=figures)


def _length_model(spec):
    from .rollout_lengths import LengthModel
    mean = spec.mean if not isinstance(spec.mean, list) else [(int(s), float(m)) for s, m in spec.mean]
    return LengthModel(spec.family, mean, spec.sigma)

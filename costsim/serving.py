"""`kind: serve` and `kind: generate` phases: token volumes through serving instances → GPUs, hours, dollars.

Both rest on two per-GPU rates from the inference model (costsim/infer/): prefill input tokens/s (cache hits
counted as DeepSeek counts them) and decode output tokens/s at the batch the per-request speed target allows.
- serve: a period of `hours` at given volumes; prefill and decode run on separate instances (disaggregation,
  as DeepSeek serves V3/R1). A role's load is its token rate over its per-GPU rate / utilization, in GPUs; it runs
  on that many GPUs rounded up to whole instances (`whole_instances`, default: a deployment runs whole units —
  DeepSeek's are 4 nodes for prefill, 18 for decode), averaged over the period as DeepSeek counts its "226.75
  nodes on average" (docs/reference/deepseek-r1-and-inference.md §4). `utilization` (default 1: sized for full
  load) is the average load over provisioned capacity. Per-node figures are what a deployed node delivers: the
  role's tokens over its node-time (DeepSeek's metric).
- generate: `prompts` requests on `num_gpus` GPUs that prefill and decode in turn; GPU-seconds = input / prefill
  rate + output / decode rate, and the wall clock is that over the GPUs (work shared evenly).
"""
from __future__ import annotations

from .errors import PlanError
from .estimate import PhaseEstimate, energy_mwh
from .post_training import ceil_div, check_serving, nodes


def _rates(model, hw, eff, prefill, decode, prompt_tokens: float, cache_hit: float, context: float,
           target: float | None, prefill_key: str, key: str, prompt_sigma: float = 0.0):
    """(prefill input tokens/s per GPU, the decode point) of these instances; errors name `prefill_key` or `key`
    (the decode instance). Both instances are checked before either is costed."""
    check_serving(model, hw, prefill, prefill_key)
    check_serving(model, hw, decode, key)
    pf = prefill_rate(model, hw, eff, prefill, decode.mtp_tokens, prompt_tokens, cache_hit, prompt_sigma,
                      prefill_key, check=False)
    return pf, decode_point(model, hw, eff, decode, context, target, key, check=False)


def prefill_rate(model, hw, eff, prefill, decode_mtp_tokens: float, prompt_tokens: float, cache_hit: float,
                 prompt_sigma: float, key: str, check: bool = True) -> float:
    """Input tokens/s per GPU of a prefill instance, its batch checked against memory; errors name `key`."""
    from .infer.cost import prefill_throughput
    from .infer.plan import ServingPlan

    if check:
        check_serving(model, hw, prefill, key)
    # the prefill instance runs the MTP module over the prompt when decode drafts with it (its KV cache is filled
    # there), so it takes the decode plan's draft tokens
    pp = ServingPlan(**(prefill.model_dump() | {"mtp_tokens": max(prefill.mtp_tokens, decode_mtp_tokens)}))
    _check_prefill_memory(model, hw, pp, prompt_tokens, cache_hit, key)
    return prefill_throughput(model, hw, pp, eff, prompt_tokens, cache_hit, prompt_sigma=prompt_sigma)


def decode_point(model, hw, eff, decode, context: float, target: float | None, key: str, check: bool = True):
    """The decode point of a decode instance at this context and speed target; errors name `key`."""
    from .infer.cost import decode_for_speed
    from .infer.plan import ServingPlan

    if check:
        check_serving(model, hw, decode, key)
    point = decode_for_speed(model, hw, ServingPlan(**decode.model_dump()), eff, context, target)
    if point.limited_by == "too-slow":
        raise PlanError(f"{key}: the speed target {target:g} tokens/s per request is out of reach: one sequence "
                        f"per data-parallel rank already runs at {point.tokens_per_s_per_request:.1f} tokens/s at {context:,.0f} "
                        "tokens of context (more tp, fewer GPUs per instance, or a lower target)")
    if not (point.batch_per_gpu > 0 and point.tokens_per_s_per_gpu > 0):
        raise PlanError(f"{key}: no decode batch fits: the model's weights and one sequence's KV cache at "
                        f"{context:,.0f} tokens do not fit in {hw.name}'s memory on an instance of "
                        f"{decode.tp * decode.dp} GPUs (more tp/ep, fp8, or a shorter context)"
                        + (f", or the speed target {target:g} tokens/s per request is out of reach"
                           if target else ""))
    return point


def serve_context(ph) -> tuple[float, float]:
    """(mean output tokens per request, mean KV length per output token in decode) of a serve phase."""
    out_per_req = ph.output_per_request or ph.output_tokens * ph.prompt_tokens / ph.input_tokens
    return out_per_req, ph.context_tokens or ph.prompt_tokens + out_per_req / 2


def _check_prefill_memory(model, hw, plan, prompt_tokens: float, cache_hit: float, key: str) -> None:
    """Weights, the prefill batch's KV cache (whole prompts) and its activations within the instance's memory."""
    from .infer.cost import default_prefill_seqs
    from .infer.memory import kv_budget_bytes, kv_bytes_per_token_gpu, weight_bytes_per_gpu
    seqs = default_prefill_seqs(plan, prompt_tokens, cache_hit)            # per GPU
    new = max(prompt_tokens * (1 - cache_hit), 1.0)
    kv = seqs * plan.tp * prompt_tokens * kv_bytes_per_token_gpu(model, plan)
    room = kv_budget_bytes(model, hw, plan, seqs * new)
    if kv > room:
        gib = 2 ** 30
        raise PlanError(f"{key}: a prefill batch does not fit: {seqs * plan.tp:.0f} prompt(s) of "
                        f"{prompt_tokens:,.0f} tokens need {kv / gib:.1f} GiB of KV cache per GPU but "
                        f"{max(room, 0) / gib:.1f} GiB is left beside {weight_bytes_per_gpu(model, plan) / gib:.1f} "
                        f"GiB of weights on {hw.name} (more ep/tp, fp8, or shorter prompts)")


def deployed_gpus(load_gpus: float, instance_gpus: int, whole: bool) -> float:
    """GPUs a role runs on: its load in GPUs, rounded up to whole instances of `instance_gpus` when `whole` (at
    least one: any load needs an instance running)."""
    return max(1, ceil_div(load_gpus, instance_gpus)) * instance_gpus if whole else load_gpus


def estimate_serve(sc, i: int, ph, model, hw, eff, price: float) -> PhaseEstimate:
    out_per_req, context = serve_context(ph)
    where = f"phases[{i}] ({ph.name})"
    pf, point = _rates(model, hw, eff, ph.prefill, ph.decode, ph.prompt_tokens, ph.cache_hit, context,
                       ph.tokens_per_s_per_request, f"{where}.prefill", f"{where}.decode", ph.prompt_sigma)
    seconds = ph.hours * 3600
    u = ph.utilization      # nodes run at this average share of their capacity: more of them, each delivering less
    in_rate, out_rate = ph.input_tokens / seconds, ph.output_tokens / seconds
    prefill_load = in_rate / (pf * u)
    decode_load = out_rate / (point.tokens_per_s_per_gpu * u)
    p_inst, d_inst = ph.prefill.tp * ph.prefill.dp, ph.decode.tp * ph.decode.dp
    prefill_gpus = deployed_gpus(prefill_load, p_inst, ph.whole_instances)
    decode_gpus = deployed_gpus(decode_load, d_inst, ph.whole_instances)
    gpus = prefill_gpus + decode_gpus
    hours = gpus * ph.hours
    figures = {
        "prefill_tokens_per_s_per_node": in_rate / nodes(prefill_gpus, hw),
        "decode_tokens_per_s_per_node": out_rate / nodes(decode_gpus, hw),
        "prefill_capacity_tokens_per_s_per_node": pf * hw.gpus_per_node,
        "decode_capacity_tokens_per_s_per_node": point.tokens_per_s_per_gpu * hw.gpus_per_node,
        "utilization": u,
        "whole_instances": ph.whole_instances,
        "tokens_per_s_per_request": point.tokens_per_s_per_request,
        "nodes": nodes(gpus, hw),
        "prefill_nodes": nodes(prefill_gpus, hw),
        "decode_nodes": nodes(decode_gpus, hw),
        "prefill_load_nodes": nodes(prefill_load, hw),
        "decode_load_nodes": nodes(decode_load, hw),
        "prefill_instances": ceil_div(prefill_gpus, p_inst),
        "decode_instances": ceil_div(decode_gpus, d_inst),
        "decode_batch_per_gpu": point.batch_per_gpu,
        "decode_context_tokens": context,
        "input_tokens": ph.input_tokens, "output_tokens": ph.output_tokens,
    }
    return PhaseEstimate(ph.name, ph.input_tokens + ph.output_tokens, 0, 0.0, hours, ph.hours / 24, hours * price,
                         energy_mwh(sc, hw, hours), tokens_per_s_per_gpu=(ph.input_tokens + ph.output_tokens)
                         / (hours * 3600), kind="serve", num_gpus=gpus, figures=figures)


def estimate_generate(sc, i: int, ph, model, hw, eff, price: float) -> PhaseEstimate:
    n = ph.num_gpus or sc.cluster.num_gpus
    where = f"phases[{i}] ({ph.name})"
    prefill_key = f"{where}.prefill" if ph.prefill else f"{where}.serving"
    prefill = ph.prefill or ph.serving
    for s, key in ((prefill, prefill_key), (ph.serving, f"{where}.serving")):
        check_serving(model, hw, s, key)      # the model's own divisibility first: it names the real culprit
        if s.tp * s.dp > n or n % (s.tp * s.dp):
            raise PlanError(f"{key}: instances of tp·dp = {s.tp}·{s.dp} = {s.tp * s.dp} GPUs do not tile the "
                            f"phase's {n} GPUs")
    context = ph.input_tokens + ph.output_tokens / 2
    pf, point = _rates(model, hw, eff, prefill, ph.serving, ph.input_tokens, ph.cache_hit, context,
                       ph.tokens_per_s_per_request, prefill_key, f"{where}.serving", ph.prompt_sigma)
    inp, outp = ph.prompts * ph.input_tokens, ph.prompts * ph.output_tokens
    gpu_s = inp / pf + outp / point.tokens_per_s_per_gpu
    hours = gpu_s / 3600
    wall = gpu_s / n
    figures = {
        "prefill_tokens_per_s_per_node": pf * hw.gpus_per_node,
        "decode_tokens_per_s_per_node": point.tokens_per_s_per_gpu * hw.gpus_per_node,
        "tokens_per_s_per_request": point.tokens_per_s_per_request,
        "nodes": nodes(n, hw),
        "decode_batch_per_gpu": point.batch_per_gpu,
        "prefill_share": (inp / pf) / gpu_s,
        "input_tokens": inp, "output_tokens": outp,
    }
    return PhaseEstimate(ph.name, outp, 0, 0.0, hours, wall / 86400, hours * price, energy_mwh(sc, hw, hours),
                         tokens_per_s_per_gpu=outp / gpu_s, kind="generate", num_gpus=n, figures=figures)

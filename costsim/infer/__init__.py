"""Inference cost model on the op-level kernel: prefill, decode steps, KV-cache memory and serving plans.

plan.py — ServingPlan (TP/DP/EP inside one serving instance, precision, KV dtype, MTP, overlap);
forward.py — forward-only op lists of one GPU (prefill and decode), built with the training op builder;
memory.py — KV-cache bytes per token, weight bytes per GPU, the largest decode batch that fits;
cost.py — InferCost of a prefill batch and a decode step, the decode batch a speed target allows, prefill
throughput.
"""
from .cost import (DecodePoint, InferCost, decode_for_speed, decode_step, kv_bytes_per_token, max_decode_batch,
                   prefill, prefill_throughput)
from .plan import ServingPlan

__all__ = ["DecodePoint", "InferCost", "ServingPlan", "decode_for_speed", "decode_step", "kv_bytes_per_token",
           "max_decode_batch", "prefill", "prefill_throughput"]

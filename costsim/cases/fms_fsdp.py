"""foundation-model-stack/fms-fsdp README throughput (docs/reference/published-runs-2.md, section 3) as cases.

Metric: tokens/s per GPU (the README's "Training throughput, tokens/sec/GPU") = global batch × 4096 /
predicted step / GPUs.

Rules for what the README leaves unstated (all three tables):
(Repository code cited in a rule — file names, defaults — is as recalled from that repository, not
re-read for this module; the published figures themselves come from the transcription.)
- Models: Llama 2 architecture (FMS implementation): 7b, 13b, 70b → costsim/models/llama2-*.json; 34b →
  llama2-34b.json (fms-fsdp's 'llama2_34b': h 8192, 48 layers, 64 heads, 8 KV heads, FFN 22016).
- Sequence length 4096 (README: "4k context length"); BF16 (README: HFU from "the theoretical bf16
  performance"); attention flash2 (README: "SDPA Flash v2 implementation").
- Batch Size is per GPU → micro-batch = batch, no grad accumulation, global batch = batch × GPUs.
- Sharding: FSDP (FULL_SHARD) → zero_stage 3; HSDP → zero_stage 3 with zero_shard_size 8 (shard inside a
  node, replicate across nodes).
- Activation checkpointing: "No AC" / False → none; "Full AC" / True → full. "Selective AC" → full with a
  recompute_fraction p per model size: fms-fsdp's `selective_checkpointing` wraps a fraction p of the
  transformer blocks in block-level checkpointing; p is not printed, but the README's own MFU/HFU table (3.1,
  the same runs) gives it: block recompute adds p/3 of the model FLOPs, so p = 3·(HFU/MFU − 1). The same
  configuration ran on both GPUs ("the exact same scripts and configurations"), so p is the mean of the two
  (the two-digit ratios differ by rounding): 13B (0.69/0.61, 0.46/0.43) → 0.30, 34B (0.74/0.55, 0.49/0.38) →
  0.93, 70B (0.74/0.55, 0.47/0.38) → 0.86, each capped at 1.
- Hardware: "A100 80G" → a100-sxm-80gb; "H100" (MFU column "H100 80G") → h100-sxm. 3.3 does not state the
  A100 memory: the same 128-A100 cluster as 3.1/3.2 → a100-sxm-80gb.
- Network: "A100 80G 128 GPUs with 400Gbps" and "H100 96 GPUs with 800 Gbps" are per 8-GPU node → 50 and
  100 Gb/s per GPU. 3.3 states none → the same cluster's 400 Gbps per node.
- torch.compile is not modelled: 3.1 (compiled) is used in full; of 3.2 (pre-compile) only the rows whose
  configuration 3.1 does not repeat are cases (34b and 70b with Full AC, on both GPUs); 3.3 (pre-compile,
  a different configuration) in full.

Skipped rows: 3.2's 7b (HSDP, No AC) and 13b (FSDP, Selective AC) on both GPUs: the same configuration is in
3.1 with torch.compile. The MFU/HFU tables are not cases (a derived figure of the same runs).
"""
from __future__ import annotations

from ..validate import Case
from ._common import FIT_ON, REFERENCE, network_gbps_per_gpu, scenario, tokens_per_s_per_gpu

GROUP = "fms-fsdp"
METRIC = "tokens/s per GPU"
_README = "foundation-model-stack/fms-fsdp README.md"
SRC_3_1 = f"{_README} @ 5a296afe42f9932f590783cb053fa0f9384e01fc ({REFERENCE} 3.1, with torch.compile)"
SRC_3_2 = f"{_README} @ 3759b766711f0af75fc05d50dddb313baa90c425 ({REFERENCE} 3.2, pre-torch.compile)"
SRC_3_3 = f"{_README} @ 0d319983c4b3b7f7b3b5e2c5e7f746746b6f73a9 ({REFERENCE} 3.3, earliest table)"

SEQ = 4096
MFU_HFU_3_1 = {  # size → ((A100 MFU, HFU), (H100 MFU, HFU)), 3.1's MFU/HFU table
    "13b": ((0.61, 0.69), (0.43, 0.46)), "34b": ((0.55, 0.74), (0.38, 0.49)), "70b": ((0.55, 0.74), (0.38, 0.47))}


def selective_fraction(size: str) -> float:
    """Blocks recomputed under "Selective AC": mean over the two GPUs of 3·(HFU/MFU − 1), capped at 1."""
    return sum(min(1.0, 3 * (hfu / mfu - 1)) for mfu, hfu in MFU_HFU_3_1[size]) / 2


SELECTIVE_FRACTION = {size: selective_fraction(size) for size in MFU_HFU_3_1}
MODEL = {"7b": "llama2-7b", "13b": "llama2-13b", "34b": "llama2-34b", "70b": "llama2-70b"}
AC = {"No AC": {"recompute": "none"}, "False": {"recompute": "none"},
      "Full AC": {"recompute": "full"}, "True": {"recompute": "full"},
      "Selective AC": {"recompute": "full"}}     # + the per-size fraction (selective_fraction)
SHARDING = {"FSDP": {"zero_stage": 3}, "HSDP": {"zero_stage": 3, "zero_shard_size": 8}}
CLUSTERS = {  # label → (profile, GPUs, Gb/s per GPU)
    "A100": ("a100-sxm-80gb", 128, network_gbps_per_gpu(400, "node")),
    "H100": ("h100-sxm", 96, network_gbps_per_gpu(800, "node")),
}

T3_1 = [  # size, sharding, AC, batch per GPU, A100 tokens/s/GPU, H100 tokens/s/GPU
    ("7b", "HSDP", "No AC", 2, 4550, 9600), ("13b", "FSDP", "Selective AC", 2, 2150, 4850),
    ("34b", "FSDP", "Selective AC", 2, 820, 1830), ("70b", "FSDP", "Selective AC", 2, 410, 890)]
T3_2 = [  # the rows 3.1 does not repeat (34b, 70b with Full AC)
    ("34b", "FSDP", "Full AC", 2, 700, 1550), ("70b", "FSDP", "Full AC", 2, 370, 800)]
T3_3 = [  # size, sharding, AC, batch per GPU, 128 A100 tokens/s/GPU
    ("7b", "HSDP", "False", 2, 3760), ("13b", "HSDP", "False", 1, 1700),
    ("34b", "FSDP", "True", 8, 772), ("70b", "FSDP", "True", 6, 380)]


def _case(table: str, src: str, size: str, shard: str, ac: str, batch: int, cluster: str, tps: float) -> Case:
    gpu, gpus, net = CLUSTERS[cluster]
    gbs = batch * gpus
    name = f"{table} {size} {shard} {ac if ac not in ('True', 'False') else 'AC ' + ac} bs{batch} {cluster}"
    ac_keys = dict(AC[ac])
    if ac == "Selective AC":
        ac_keys["recompute_fraction"] = round(SELECTIVE_FRACTION[size], 3)
    sc = scenario(f"fms-fsdp {name}", MODEL[size], gpu, gpus, SEQ, gbs, network_gbps=net, micro_batch_size=batch,
                  attention="flash2", **SHARDING[shard], **ac_keys)
    return Case(name, GROUP, METRIC, tps, src, sc, tokens_per_s_per_gpu(gbs, SEQ, gpus), FIT_ON)


def fms_fsdp_cases() -> list[Case]:
    out = []
    for table, src, rows in (("3.1", SRC_3_1, T3_1), ("3.2", SRC_3_2, T3_2)):
        for size, shard, ac, batch, a100, h100 in rows:
            out += [_case(table, src, size, shard, ac, batch, "A100", a100),
                    _case(table, src, size, shard, ac, batch, "H100", h100)]
    out += [_case("3.3", SRC_3_3, size, shard, ac, batch, "A100", tps) for size, shard, ac, batch, tps in T3_3]
    return out

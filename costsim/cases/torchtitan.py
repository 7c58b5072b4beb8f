"""pytorch/torchtitan published throughput (docs/reference/published-runs-2.md, section 1) as validation cases.

Metric: tokens/s per GPU (torchtitan's WPS / TPS per GPU) = global batch × seq_len / predicted step / GPUs.
Peak memory per GPU (GiB), where a table prints it, is kept on the case (`published_memory_gib`) next to
costsim's memory per GPU for later comparison; it is not part of the error.

Rules for what the tables leave unstated (one per table family, applied to every row):
(Repository code cited in a rule — file names, defaults — is as recalled from that repository, not
re-read for this module; the published figures themselves come from the transcription.)
- Parallelism: FSDP2 → zero_stage 3 sharded over all dp·cp ranks (torchtitan shards over dp_shard × cp);
  FSDP2 re-gathers parameters for the backward (reshard_after_forward) except with PP, where torchtitan's
  apply_fsdp sets reshard_after_forward=False → zero3_gather_once with pp > 1. TP → sequence_parallel (the
  torchtitan TP plan shards norms/dropout along the sequence). No gradient accumulation: micro-batch = local
  batch, except with PP, where torchtitan's default pipeline_parallel_microbatches = PP degree → micro-batch =
  local batch / PP. Global batch = local batch × FSDP degree where only the local batch is printed.
- Sequence length where unprinted (1.1, 1.3 Tables 1/3/4/5, 1.4, 1.5): 8192, the `seq_len` of torchtitan's
  train_configs/llama3_*.toml; Llama 2 (1.2): 4096, as the doc itself says ("halved compared with Llama 3").
- Activation checkpointing: "full" → recompute full; "selective op" / "per op SAC" → full with
  recompute_fraction 0.5 (torchtitan's op-level policy saves the outputs of every other matmul and recomputes
  the rest with the cheap ops, about half a forward again — the published 1.2 rows measure op and layer SAC
  within 3% of each other); "selective layer" → full with recompute_fraction 0.5 (torchtitan
  config_manager.py: selective_ac_option default "2", checkpoint every 2nd layer); "no" → none; 1.3's and 1.5's unqualified "selective" → op (the
  llama3_8b.toml default, selective_ac_option = 'op').
- Precision: BF16 (torchtitan mixed_precision_param = bfloat16). "Float8" / "float8 tensorwise" (torchao
  dynamic tensorwise scaling) → fp8, fp8_recipe current; "float8 rowwise" → fp8_recipe rowwise. Async TP →
  tp_comm_overlap. Attention: flash2 (PyTorch SDPA's flash backend is FlashAttention-2).
- torch.compile is not modelled (costsim assumes fused element-wise kernels): where a table has rows with and
  without compile (1.3 Tables 1 and 3) only the compiled rows are cases; tables that do not state compile
  (1.1, 1.2) are taken as printed.
- Hardware: the Grand Teton H100 of 1.1/1.3/1.4 → hwprofiles/h100-sxm-96gb-hbm2e.yaml (96 GB HBM2e, 2.4 TB/s,
  500 W; SXM peaks kept, torchtitan: "between SXM and NVL"); 1.2 → a100-sxm-80gb; 1.5 → h200-sxm.
- Network: 400 Gb/s per GPU where stated (1.3–1.5; 1.1 is the same Grand Teton fleet); 1.2 states none → the
  profile's (200 Gb/s HDR per GPU).
- 1.4's "tokens/sec" column does not say per GPU; its values match 1.3 Table 4 per GPU, so per GPU.
- Pipeline (1.3 Tables 5, 6): "Interleaved 1F1B" → interleaved with 2 stages per rank (torchtitan
  generate_split_points: num_stages_per_rank = 2 for multi-stage schedules when no split points are given).

Skipped rows: 1.3 Tables 1 and 3, row "FSDP" (no torch.compile; the compiled row of the same table is used).
1.1's superseded pre-fix values (commit 9515a140b) are not used, as the transcription says.
"""
from __future__ import annotations

from ..validate import Case
from ._common import FIT_ON, REFERENCE, network_gbps_per_gpu, scenario, tokens_per_s_per_gpu

GROUP = "torchtitan"
METRIC = "tokens/s per GPU"
TT = "pytorch/torchtitan"
SRC_1_1 = f"{TT} docs/performance.md @ 4d88a8a44fe439f73f564b83d60b29a906ef3507 ({REFERENCE} 1.1)"
SRC_1_2_L3 = f"{TT} docs/performance.md @ 4d88a8a44fe439f73f564b83d60b29a906ef3507 ({REFERENCE} 1.2)"
SRC_1_2_L2 = f"{TT} docs/performance.md @ 157a12c562288b3bccb077003a97f18a4ca657aa ({REFERENCE} 1.2)"
SRC_1_3 = (f"{TT} benchmarks/llama3_h100_202412_torchtitan.md @ b5bcd76c66d0acb1a08b176d9639425bc55e0b2a "
           f"({REFERENCE} 1.3)")
SRC_1_4 = (f"{TT} benchmarks/asyncTP_llama3_h100_2025-06_torchtitan.md @ b5bcd76c66d0acb1a08b176d9639425bc55e0b2a"
           f" ({REFERENCE} 1.4)")
SRC_1_5 = (f"{TT} benchmarks/llama3-8b_h200_202506_trainy-whitefiber.md @ "
           f"b5bcd76c66d0acb1a08b176d9639425bc55e0b2a ({REFERENCE} 1.5)")

GRAND_TETON = "h100-sxm-96gb-hbm2e"
NET_400_PER_GPU = network_gbps_per_gpu(400, "gpu")
LLAMA3_SEQ, LLAMA2_SEQ = 8192, 4096

AC = {  # torchtitan activation checkpointing → costsim (module docstring)
    "full": {"recompute": "full"},
    "selective op": {"recompute": "full", "recompute_fraction": 0.5},
    "selective layer": {"recompute": "full", "recompute_fraction": 0.5},
    "no": {"recompute": "none"},
}
PRECISION = {  # torchtitan quantization → (precision, fp8_recipe)
    "bf16": ("bf16", None), "float8": ("fp8", "current"), "float8 tensorwise": ("fp8", "current"),
    "float8 rowwise": ("fp8", "rowwise"),
}


def _case(name: str, src: str, published: float, model: str, gpu: str, gpus: int, seq: int, local_batch: int,
          fsdp: int, ac: str, quant: str = "bf16", tp: int = 1, pp: int = 1, cp: int = 1,
          async_tp: bool = False, schedule: str = "1f1b", network: float | None = None,
          memory_gib: float | None = None) -> Case:
    if fsdp * tp * pp * cp != gpus:
        raise ValueError(f"{name}: FSDP {fsdp} x TP {tp} x PP {pp} x CP {cp} != {gpus} GPUs")
    gbs = local_batch * fsdp
    precision, recipe = PRECISION[quant]
    par = {"tp": tp, "pp": pp, "cp": cp, "zero_stage": 3, "sequence_parallel": tp > 1, "attention": "flash2",
           "tp_comm_overlap": async_tp, "micro_batch_size": local_batch // pp if pp > 1 else local_batch,
           **AC[ac]}
    if pp > 1:
        par.update(schedule=schedule, zero3_gather_once=True,
                   virtual_stages=2 if schedule == "interleaved" else 1)
    sc = scenario(f"torchtitan {name}", model, gpu, gpus, seq, gbs, precision, recipe, network, **par)
    return Case(name, GROUP, METRIC, published, src, sc, tokens_per_s_per_gpu(gbs, seq, gpus), FIT_ON,
                published_memory_gib=memory_gib)


def _t1_1() -> list[Case]:
    """1.1: Llama 3.1 405B, 128 H100 (Grand Teton), FSDP2 16 × TP 8, local batch 2, full AC."""
    kw = dict(model="llama3.1-405b", gpu=GRAND_TETON, gpus=128, seq=LLAMA3_SEQ, local_batch=2, fsdp=16, tp=8,
              ac="full", network=NET_400_PER_GPU)
    return [_case("1.1 405B BF16", SRC_1_1, 109, **kw),
            _case("1.1 405B Float8", SRC_1_1, 177, quant="float8", **kw),
            _case("1.1 405B Float8 + Async TP", SRC_1_1, 185, quant="float8",
                  async_tp=True, **kw)]


T1_2 = [  # model, built-in, seq, local batch, AC, WPS
    ("Llama 3 8B", "llama3.1-8b", LLAMA3_SEQ, 1, "selective layer", 2904),
    ("Llama 3 8B", "llama3.1-8b", LLAMA3_SEQ, 1, "selective op", 2973),
    ("Llama 3 70B", "llama3.1-70b", LLAMA3_SEQ, 1, "full", 331),
    ("Llama 2 13B", "llama2-13b", LLAMA2_SEQ, 2, "no", 2162),
    ("Llama 2 13B", "llama2-13b", LLAMA2_SEQ, 2, "selective layer", 1914),
    ("Llama 2 13B", "llama2-13b", LLAMA2_SEQ, 2, "selective op", 1904),
    ("Llama 2 70B", "llama2-70b", LLAMA2_SEQ, 1, "selective op", 355),
    ("Llama 2 70B", "llama2-70b", LLAMA2_SEQ, 2, "full", 353),
]


def _t1_2() -> list[Case]:
    """1.2: FSDP2 (1D) on 64 A100 80GB."""
    return [_case(f"1.2 {label} bs{lb} AC {ac}", SRC_1_2_L3 if "Llama 3" in label else SRC_1_2_L2,
                  wps, model, "a100-sxm-80gb", 64, seq, lb, 64, ac)
            for label, model, seq, lb, ac, wps in T1_2]


def _t1_3() -> list[Case]:
    """1.3: Llama 3.1 on Grand Teton H100, end of 2024 (Tables 1-6; all with torch.compile and Float8 unless
    the row says otherwise)."""
    net = NET_400_PER_GPU
    out = []
    # Tables 1 and 3: 8B, FSDP, local batch 2, selective (op) AC; compiled rows only
    for t, gpus, rows in (("T1", 8, ((6667, 77.0, "bf16"), (8532, 76.8, "float8"))),
                          ("T3", 128, ((6514, 62.0, "bf16"), (8380, 61.8, "float8")))):
        for tps, mem, quant in rows:
            label = "compile" + (" + Float8" if quant != "bf16" else "")
            out.append(_case(f"1.3 {t} 8B {label} {gpus} GPUs", SRC_1_3, tps, "llama3.1-8b", GRAND_TETON, gpus,
                             LLAMA3_SEQ, 2, gpus, "selective op", quant, network=net, memory_gib=mem))
    # Table 2: 8B, 8 GPUs, FSDP + CP, local batch 1, full AC
    for fsdp, cp, seq, tps, mem in ((8, 1, 32768, 3890, 83.9), (4, 2, 65536, 2540, 84.2),
                                    (2, 4, 131072, 1071, 84.0), (1, 8, 262144, 548, 84.5)):
        out.append(_case(f"1.3 T2 8B FSDP {fsdp} CP {cp} {seq // 1024}K", SRC_1_3, tps, "llama3.1-8b", GRAND_TETON, 8,
                         seq, 1, fsdp, "full", "float8", cp=cp, network=net, memory_gib=mem))
    # Table 4: 70B, 256 GPUs, FSDP 32 × TP 8, local batch 16, full AC
    for label, tps, mem, async_tp in (("2D", 829, 71.9, False), ("2D + AsyncTP", 876, 67.6, True)):
        out.append(_case(f"1.3 T4 70B {label}", SRC_1_3, tps, "llama3.1-70b", GRAND_TETON, 256,
                         LLAMA3_SEQ, 16, 32, "full", "float8", tp=8, async_tp=async_tp, network=net,
                         memory_gib=mem))
    # Table 5: 405B, 512 GPUs, FSDP 8 × TP 8 × PP 8, local batch 32, full AC, async TP
    for label, schedule, tps, mem in (("1F1B", "1f1b", 100, 82.5), ("Interleaved 1F1B", "interleaved", 128, 72.7)):
        out.append(_case(f"1.3 T5 405B {label}", SRC_1_3, tps, "llama3.1-405b", GRAND_TETON, 512,
                         LLAMA3_SEQ, 32, 8, "full", "float8", tp=8, pp=8, async_tp=True, schedule=schedule,
                         network=net, memory_gib=mem))
    # Table 6: 405B, 512 GPUs, TP 8 × PP 8 × FSDP × CP, local batch 8, 1F1B, full AC, async TP
    for fsdp, cp, seq, tps, mem in ((8, 1, 32768, 76, 75.3), (4, 2, 65536, 47, 75.9),
                                    (2, 4, 131072, 31, 77.1), (1, 8, 262144, 16, 84.9)):
        out.append(_case(f"1.3 T6 405B FSDP {fsdp} CP {cp} {seq // 1024}K", SRC_1_3, tps, "llama3.1-405b",
                         GRAND_TETON, 512, seq, 8, fsdp, "full", "float8", tp=8, pp=8, cp=cp, async_tp=True,
                         network=net, memory_gib=mem))
    return out


def _t1_4() -> list[Case]:
    """1.4: async TP vs vanilla TP (June 2025), torch.compile on."""
    out = []
    for size, model, gpus, fsdp, lb, ac, rows in (
            ("70B", "llama3.1-70b", 256, 32, 16, "full",
             (("bf16", 597.3, 652.4), ("float8 tensorwise", 809.8, 942.4), ("float8 rowwise", 599.6, 624.8))),
            ("8B", "llama3.1-8b", 64, 8, 12, "selective op",
             (("bf16", 4378, 4809.4), ("float8 tensorwise", 5078.1, 5570.1), ("float8 rowwise", 3708.5, 3914.9)))):
        for quant, vanilla, async_ in rows:
            for label, tps, overlap in (("vanilla TP", vanilla, False), ("async TP", async_, True)):
                out.append(_case(f"1.4 {size} {quant} {label}", SRC_1_4, tps, model,
                                 GRAND_TETON, gpus, LLAMA3_SEQ, lb, fsdp, ac, quant, tp=8, async_tp=overlap,
                                 network=NET_400_PER_GPU))
    return out


def _t1_5() -> list[Case]:
    """1.5: Llama 3.1 8B on H200 (Trainy), FSDP over all GPUs (toml default), local batch 2, compile, Float8
    (tensorwise, float8 all-gather), selective op AC (toml default)."""
    return [_case(f"1.5 8B Float8 {gpus} H200", SRC_1_5, tps, "llama3.1-8b", "h200-sxm", gpus, LLAMA3_SEQ, 2,
                  gpus, "selective op", "float8", network=NET_400_PER_GPU, memory_gib=mem)
            for gpus, tps, mem in ((32, 10938, 47.96), (64, 10753, 46.97))]


def torchtitan_cases() -> list[Case]:
    return _t1_1() + _t1_2() + _t1_3() + _t1_4() + _t1_5()

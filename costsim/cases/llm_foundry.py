"""mosaicml/llm-foundry MPT benchmark tables (docs/reference/published-runs-2.md, section 2) as validation cases.

Source: mosaicml/llm-foundry scripts/train/benchmarking/README.md @ 495218376830947dce625efabc4d86be7c47cc45
(2.1-2.5) and @ 061f2c7ce64e655100286584a7629e2a09f827ba (2.6, the older version's 350m FP8 rows). Every row of
the transcription is a case: its Throughput (T/s/GPU) against predicted tokens/s per GPU = GlobalBatchSize ×
SeqLen / predicted step / GPUs. The rows below are copied from the transcription (model, SeqLen, # GPUs,
MicroBatchSize, GradAccum, GlobalBatchSize, Throughput (T/s/GPU), Precision, Sharding Strategy, Activation
Checkpointing, NumParams); tests/test_cases_runs2.py re-reads the document and checks them.

Rules (every table; the README states micro-batch, grad-accum, global batch, sharding and AC per row):
(Repository code cited in a rule — file names, defaults — is as recalled from that repository, not
re-read for this module; the published figures themselves come from the transcription.)
- Model: the MPT config of scripts/train/yamls/pretrain/mpt-<size>.yaml (costsim/models/mpt-*.json), with its
  learned position embeddings sized to the row's sequence length (max_seq_len = SeqLen, as the NumParams
  column shows: it grows by ΔSeqLen × d_model).
- Sharding Strategy FULL_SHARD → zero_stage 3 (FSDP1 re-gathers every micro-batch: zero3_gather_once false);
  SHARD_GRAD_OP → zero_stage 2. Activation Checkpointing True → recompute full, False → none. Attention:
  flash2 (MPT attn_impl flash / triton: FlashAttention-2-class kernels). No TP/PP.
- Precision: amp_bf16 / bf16 → bf16; amp_fp8 → fp8 with fp8_recipe delayed (llm-foundry's FP8 is Transformer
  Engine, whose default recipe is delayed scaling). "MP Mode" (FSDP mixed precision DEFAULT: fp32 gradient
  reduction; PURE: bf16) is not modelled.
- Hardware: h100_80gb → h100-sxm, a100_80gb → a100-sxm-80gb, a100_40gb → a100-sxm-40gb.
- Network: the A100 tables' "1600 Gbps node-node interconnect (RoCE)" is per 8-GPU node → 200 Gb/s per GPU;
  the H100 tables state none → the h100-sxm profile's (400 Gb/s per GPU).

Skipped rows: none of the transcribed ones (the README's 125m/350m/760m/3b A100 rows were not transcribed).
"""
from __future__ import annotations

from ..validate import Case
from ._common import FIT_ON, REFERENCE, builtin_with, network_gbps_per_gpu, scenario, tokens_per_s_per_gpu

GROUP = "llm-foundry"
METRIC = "tokens/s per GPU"
_README = "mosaicml/llm-foundry scripts/train/benchmarking/README.md"
SOURCES = {
    "2.1": f"{_README} @ 495218376830947dce625efabc4d86be7c47cc45 ({REFERENCE} 2.1, H100 80GB BF16)",
    "2.2": f"{_README} @ 495218376830947dce625efabc4d86be7c47cc45 ({REFERENCE} 2.2, H100 80GB BF16 >= 128 GPUs)",
    "2.3": f"{_README} @ 495218376830947dce625efabc4d86be7c47cc45 ({REFERENCE} 2.3, H100 80GB FP8)",
    "2.4": f"{_README} @ 495218376830947dce625efabc4d86be7c47cc45 ({REFERENCE} 2.4, A100 80GB, 1600 Gbps RoCE)",
    "2.5": f"{_README} @ 495218376830947dce625efabc4d86be7c47cc45 ({REFERENCE} 2.5, A100 40GB, 1600 Gbps RoCE)",
    "2.6": f"{_README} @ 061f2c7ce64e655100286584a7629e2a09f827ba ({REFERENCE} 2.6, H100 80GB FP8, 350m)",
}
GPU = {"2.1": "h100-sxm", "2.2": "h100-sxm", "2.3": "h100-sxm", "2.4": "a100-sxm-80gb", "2.5": "a100-sxm-40gb",
       "2.6": "h100-sxm"}
NETWORK = {"2.4": network_gbps_per_gpu(1600, "node"), "2.5": network_gbps_per_gpu(1600, "node")}  # else profile's
PRECISION = {"amp_bf16": ("bf16", None), "bf16": ("bf16", None), "amp_fp8": ("fp8", "delayed")}
SHARDING = {"FULL_SHARD": 3, "SHARD_GRAD_OP": 2}
DEFAULT_MAX_SEQ = 2048   # max_seq_len of the mpt-*.yaml configs and of costsim/models/mpt-*.json


def mpt_model(size: str, seq_len: int) -> str | dict:
    """The built-in MPT model, with learned position embeddings for seq_len positions."""
    name = f"mpt-{size}"
    return name if seq_len == DEFAULT_MAX_SEQ else builtin_with(name, max_position_embeddings=seq_len)


# (model, SeqLen, # GPUs, MicroBatchSize, GradAccum, GlobalBatchSize, T/s/GPU, Precision, Sharding, AC, NumParams)
T2_1 = [  # 2.1 H100 80GB BF16
    ("70b", 2048, 64, 8, 4, 2048, 1039, "amp_bf16", "FULL_SHARD", True, 64862437376),
    ("70b", 2048, 32, 2, 16, 1024, 882, "amp_bf16", "FULL_SHARD", True, 64862437376),
    ("30b", 8192, 8, 1, 21, 168, 1384, "amp_bf16", "FULL_SHARD", True, 30019254272),
    ("30b", 4096, 8, 1, 21, 168, 1802, "amp_bf16", "FULL_SHARD", True, 29989894144),
    ("30b", 2048, 32, 14, 3, 1344, 2308, "amp_bf16", "FULL_SHARD", True, 29975214080),
    ("30b", 2048, 16, 10, 3, 480, 2263, "amp_bf16", "FULL_SHARD", True, 29975214080),
    ("30b", 2048, 8, 3, 21, 504, 2002, "amp_bf16", "FULL_SHARD", True, 29975214080),
    ("30b", 1024, 8, 6, 21, 1008, 2084, "amp_bf16", "FULL_SHARD", True, 29967874048),
    ("13b", 32768, 8, 1, 3, 24, 1976, "amp_bf16", "FULL_SHARD", True, 13011240960),
    ("13b", 16384, 8, 3, 3, 72, 2985, "amp_bf16", "FULL_SHARD", True, 12927354880),
    ("13b", 4096, 8, 10, 3, 240, 4717, "amp_bf16", "FULL_SHARD", True, 12864440320),
    ("13b", 2048, 64, 2, 1, 128, 4800, "amp_bf16", "FULL_SHARD", False, 12853954560),
    ("13b", 2048, 32, 2, 1, 64, 4811, "amp_bf16", "FULL_SHARD", False, 12853954560),
    ("13b", 2048, 16, 2, 1, 32, 4767, "amp_bf16", "FULL_SHARD", False, 12853954560),
    ("13b", 2048, 8, 2, 1, 16, 4792, "amp_bf16", "FULL_SHARD", False, 12853954560),
    ("13b", 1024, 8, 40, 3, 960, 5502, "amp_bf16", "FULL_SHARD", True, 12848711680),
    ("7b", 65536, 8, 1, 2, 16, 1956, "amp_bf16", "FULL_SHARD", True, 6918905856),
    ("7b", 32768, 8, 2, 2, 32, 3318, "amp_bf16", "FULL_SHARD", True, 6784688128),
    ("7b", 8192, 8, 8, 2, 128, 6935, "amp_bf16", "FULL_SHARD", True, 6684024832),
    ("7b", 4096, 8, 16, 2, 256, 8611, "amp_bf16", "FULL_SHARD", True, 6667247616),
    ("7b", 2048, 8, 6, 1, 48, 10643, "amp_bf16", "FULL_SHARD", False, 6658859008),
    ("7b", 1024, 8, 64, 2, 1024, 10203, "amp_bf16", "FULL_SHARD", True, 6654664704),
    ("3b", 65536, 8, 1, 2, 16, 3262, "amp_bf16", "FULL_SHARD", True, 2814366720),
    ("3b", 32768, 8, 3, 6, 144, 5873, "amp_bf16", "FULL_SHARD", True, 2730480640),
    ("3b", 16384, 8, 1, 6, 48, 11152, "amp_bf16", "FULL_SHARD", False, 2688537600),
    ("3b", 8192, 8, 3, 6, 144, 16578, "amp_bf16", "FULL_SHARD", False, 2667566080),
    ("3b", 4096, 8, 5, 6, 240, 20964, "amp_bf16", "FULL_SHARD", False, 2657080320),
    ("3b", 2048, 64, 6, 3, 1152, 22525, "amp_bf16", "FULL_SHARD", False, 2651837440),
    ("3b", 2048, 32, 6, 3, 576, 23021, "amp_bf16", "FULL_SHARD", False, 2651837440),
    ("3b", 2048, 16, 10, 3, 480, 24142, "amp_bf16", "FULL_SHARD", False, 2651837440),
    ("3b", 1024, 8, 20, 6, 960, 27046, "amp_bf16", "FULL_SHARD", False, 2649216000),
    ("3b", 512, 8, 40, 6, 1920, 27965, "amp_bf16", "FULL_SHARD", False, 2647905280),
    ("1b", 65536, 8, 1, 2, 16, 5506, "amp_bf16", "FULL_SHARD", True, 1445974016),
    ("1b", 32768, 8, 1, 4, 32, 12025, "amp_bf16", "FULL_SHARD", False, 1378865152),
    ("1b", 16384, 8, 2, 4, 64, 19649, "amp_bf16", "FULL_SHARD", False, 1345310720),
    ("1b", 8192, 8, 3, 4, 96, 29157, "amp_bf16", "FULL_SHARD", False, 1328533504),
    ("1b", 4096, 8, 7, 4, 224, 38535, "amp_bf16", "FULL_SHARD", False, 1320144896),
    ("1b", 2048, 64, 20, 1, 1280, 44402, "amp_bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 2048, 32, 20, 1, 640, 45130, "amp_bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 2048, 16, 20, 1, 320, 46037, "amp_bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 2048, 8, 14, 1, 112, 45455, "amp_bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 1024, 8, 18, 4, 576, 48910, "amp_bf16", "FULL_SHARD", False, 1313853440),
    ("1b", 512, 8, 56, 4, 1792, 52275, "amp_bf16", "FULL_SHARD", False, 1312804864),
    ("760m", 32768, 8, 1, 2, 16, 16291, "amp_bf16", "FULL_SHARD", False, 807656448),
    ("760m", 16384, 8, 3, 2, 48, 27815, "amp_bf16", "FULL_SHARD", False, 782490624),
    ("760m", 8192, 8, 6, 2, 96, 41825, "amp_bf16", "FULL_SHARD", False, 769907712),
    ("760m", 4096, 8, 12, 2, 192, 55459, "amp_bf16", "FULL_SHARD", False, 763616256),
    ("760m", 2048, 32, 24, 1, 768, 67971, "amp_bf16", "FULL_SHARD", False, 760470528),
    ("760m", 2048, 16, 24, 1, 384, 68551, "amp_bf16", "FULL_SHARD", False, 760470528),
    ("760m", 2048, 8, 24, 2, 384, 63147, "amp_bf16", "FULL_SHARD", False, 760470528),
    ("760m", 1024, 8, 48, 2, 768, 78581, "amp_bf16", "FULL_SHARD", False, 758897664),
    ("760m", 512, 8, 96, 2, 1536, 83749, "amp_bf16", "FULL_SHARD", False, 758111232),
]
T2_2 = [  # 2.2 H100 80GB BF16 (Large Scale, >= 128 GPUs)
    ("70b", 2048, 512, 8, 1, 4096, 1007, "amp_bf16", "FULL_SHARD", True, 64862437376),
    ("70b", 2048, 256, 8, 1, 2048, 1035, "amp_bf16", "FULL_SHARD", True, 64862437376),
    ("70b", 2048, 128, 8, 1, 1024, 1058, "amp_bf16", "FULL_SHARD", True, 64862437376),
    ("30b", 2048, 512, 8, 1, 4096, 2115, "amp_bf16", "FULL_SHARD", True, 29975214080),
    ("30b", 2048, 256, 8, 1, 2048, 2148, "amp_bf16", "FULL_SHARD", True, 29975214080),
    ("30b", 2048, 128, 8, 1, 1024, 2199, "amp_bf16", "FULL_SHARD", True, 29975214080),
    ("13b", 2048, 512, 16, 1, 8192, 4952, "amp_bf16", "FULL_SHARD", True, 12853954560),
    ("13b", 2048, 256, 16, 1, 4096, 4989, "amp_bf16", "FULL_SHARD", True, 12853954560),
    ("13b", 2048, 128, 16, 1, 2048, 5080, "amp_bf16", "FULL_SHARD", True, 12853954560),
    ("7b", 2048, 512, 6, 1, 3072, 9670, "amp_bf16", "FULL_SHARD", False, 6658859008),
    ("7b", 2048, 256, 6, 1, 1536, 10119, "amp_bf16", "FULL_SHARD", False, 6658859008),
    ("7b", 2048, 128, 6, 1, 768, 10475, "amp_bf16", "FULL_SHARD", False, 6658859008),
    ("3b", 2048, 512, 8, 1, 4096, 21664, "amp_bf16", "SHARD_GRAD_OP", False, 2651837440),
    ("3b", 2048, 256, 8, 1, 2048, 22772, "amp_bf16", "SHARD_GRAD_OP", False, 2651837440),
    ("3b", 2048, 128, 8, 1, 1024, 23422, "amp_bf16", "SHARD_GRAD_OP", False, 2651837440),
    ("1b", 2048, 512, 12, 1, 6144, 39837, "amp_bf16", "SHARD_GRAD_OP", False, 1315950592),
    ("1b", 2048, 256, 12, 1, 3072, 42555, "amp_bf16", "SHARD_GRAD_OP", False, 1315950592),
    ("1b", 2048, 128, 12, 1, 1536, 44123, "amp_bf16", "SHARD_GRAD_OP", False, 1315950592),
]
T2_3 = [  # 2.3 H100 80GB FP8
    ("3b", 32768, 8, 3, 6, 144, 5856, "amp_fp8", "FULL_SHARD", True, 2730480640),
    ("3b", 8192, 8, 3, 6, 144, 19146, "amp_fp8", "FULL_SHARD", False, 2667566080),
    ("3b", 2048, 8, 10, 6, 480, 30586, "amp_fp8", "FULL_SHARD", False, 2651837440),
    ("3b", 512, 8, 40, 6, 1920, 36527, "amp_fp8", "FULL_SHARD", False, 2647905280),
    ("1b", 32768, 8, 1, 4, 32, 12580, "amp_fp8", "FULL_SHARD", False, 1378865152),
    ("1b", 8192, 8, 2, 4, 64, 32010, "amp_fp8", "FULL_SHARD", False, 1328533504),
    ("1b", 512, 8, 56, 4, 1792, 70315, "amp_fp8", "FULL_SHARD", False, 1312804864),
]
T2_4 = [  # 2.4 A100 80GB with 1600 Gbps node-node interconnect (RoCE)
    ("70b", 2048, 64, 8, 4, 2048, 410, "bf16", "FULL_SHARD", True, 64862437376),
    ("70b", 2048, 32, 2, 16, 1024, 373, "bf16", "FULL_SHARD", True, 64862437376),
    ("30b", 8192, 8, 1, 21, 168, 574, "amp_bf16", "FULL_SHARD", True, 30019254272),
    ("30b", 4096, 8, 1, 21, 168, 814, "amp_bf16", "FULL_SHARD", True, 29989894144),
    ("30b", 2048, 8, 3, 21, 504, 916, "amp_bf16", "FULL_SHARD", True, 29975214080),
    ("30b", 1024, 8, 6, 21, 1008, 946, "amp_bf16", "FULL_SHARD", True, 29967874048),
    ("30b", 512, 8, 12, 21, 2016, 967, "amp_bf16", "FULL_SHARD", True, 29964204032),
    ("13b", 32768, 8, 1, 3, 24, 1016, "amp_bf16", "FULL_SHARD", True, 13011240960),
    ("13b", 16384, 8, 3, 3, 72, 1431, "amp_bf16", "FULL_SHARD", True, 12927354880),
    ("13b", 8192, 8, 5, 3, 120, 1795, "amp_bf16", "FULL_SHARD", True, 12885411840),
    ("13b", 4096, 8, 10, 3, 240, 2060, "amp_bf16", "FULL_SHARD", True, 12864440320),
    ("13b", 2048, 8, 2, 3, 48, 2262, "amp_bf16", "FULL_SHARD", False, 12853954560),
    ("13b", 1024, 8, 40, 3, 960, 2330, "amp_bf16", "FULL_SHARD", True, 12848711680),
    ("7b", 65536, 8, 1, 2, 16, 1013, "amp_bf16", "FULL_SHARD", True, 6918905856),
    ("7b", 32768, 8, 2, 2, 32, 1672, "amp_bf16", "FULL_SHARD", True, 6784688128),
    ("7b", 16384, 8, 4, 2, 64, 2453, "amp_bf16", "FULL_SHARD", True, 6717579264),
    ("7b", 8192, 8, 8, 2, 128, 3206, "amp_bf16", "FULL_SHARD", True, 6684024832),
    ("7b", 4096, 8, 16, 2, 256, 3684, "amp_bf16", "FULL_SHARD", True, 6667247616),
    ("7b", 2048, 8, 6, 2, 96, 4641, "amp_bf16", "FULL_SHARD", False, 6658859008),
    ("7b", 1024, 8, 64, 2, 1024, 4357, "amp_bf16", "FULL_SHARD", True, 6654664704),
    ("1b", 65536, 8, 1, 2, 16, 3044, "amp_bf16", "FULL_SHARD", True, 1445974016),
    ("1b", 32768, 8, 1, 4, 32, 6275, "amp_bf16", "FULL_SHARD", False, 1378865152),
    ("1b", 16384, 8, 2, 4, 64, 9956, "amp_bf16", "FULL_SHARD", False, 1345310720),
    ("1b", 8192, 8, 3, 4, 96, 13814, "amp_bf16", "FULL_SHARD", False, 1328533504),
    ("1b", 4096, 8, 7, 4, 224, 17807, "amp_bf16", "FULL_SHARD", False, 1320144896),
    ("1b", 2048, 8, 14, 4, 448, 20513, "amp_bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 1024, 8, 18, 4, 576, 22112, "amp_bf16", "FULL_SHARD", False, 1313853440),
    ("1b", 512, 8, 56, 4, 1792, 23148, "amp_bf16", "FULL_SHARD", False, 1312804864),
]
T2_5 = [  # 2.5 A100 40GB with 1600 Gbps node-node interconnect (RoCE)
    ("70b", 2048, 128, 4, 1, 512, 376, "bf16", "FULL_SHARD", True, 64862437376),
    ("70b", 2048, 64, 2, 1, 128, 276, "bf16", "FULL_SHARD", True, 64862437376),
    ("30b", 2048, 128, 6, 1, 768, 865, "bf16", "FULL_SHARD", True, 29975214080),
    ("30b", 2048, 32, 4, 1, 128, 857, "bf16", "FULL_SHARD", True, 29975214080),
    ("13b", 8192, 8, 1, 16, 128, 1407, "bf16", "FULL_SHARD", True, 12885411840),
    ("13b", 4096, 8, 2, 16, 256, 1603, "bf16", "FULL_SHARD", True, 12864440320),
    ("13b", 2048, 128, 16, 1, 2048, 1972, "bf16", "FULL_SHARD", True, 12853954560),
    ("13b", 2048, 64, 16, 1, 1024, 1976, "bf16", "FULL_SHARD", True, 12853954560),
    ("13b", 2048, 32, 14, 1, 448, 1998, "bf16", "FULL_SHARD", True, 12853954560),
    ("13b", 2048, 16, 10, 1, 160, 1993, "bf16", "FULL_SHARD", True, 12853954560),
    ("13b", 2048, 8, 4, 16, 512, 1668, "bf16", "FULL_SHARD", True, 12853954560),
    ("13b", 1024, 8, 8, 16, 1024, 1727, "bf16", "FULL_SHARD", True, 12848711680),
    ("13b", 512, 8, 16, 16, 2048, 1763, "bf16", "FULL_SHARD", True, 12846090240),
    ("7b", 16384, 8, 1, 4, 32, 2249, "bf16", "FULL_SHARD", True, 6717579264),
    ("7b", 8192, 8, 3, 4, 96, 2887, "bf16", "FULL_SHARD", True, 6684024832),
    ("7b", 4096, 8, 6, 4, 192, 3366, "bf16", "FULL_SHARD", True, 6667247616),
    ("7b", 2048, 128, 18, 1, 2304, 3623, "bf16", "FULL_SHARD", True, 6658859008),
    ("7b", 2048, 64, 18, 1, 1152, 3665, "bf16", "FULL_SHARD", True, 6658859008),
    ("7b", 2048, 32, 18, 1, 576, 3725, "bf16", "FULL_SHARD", True, 6658859008),
    ("7b", 2048, 16, 16, 1, 256, 3645, "bf16", "FULL_SHARD", True, 6658859008),
    ("7b", 2048, 8, 12, 4, 384, 3679, "bf16", "FULL_SHARD", True, 6658859008),
    ("7b", 1024, 8, 24, 4, 768, 3854, "bf16", "FULL_SHARD", True, 6654664704),
    ("7b", 512, 8, 48, 4, 1536, 3895, "bf16", "FULL_SHARD", True, 6652567552),
    ("1b", 32768, 8, 1, 4, 32, 5095, "bf16", "FULL_SHARD", True, 1378865152),
    ("1b", 16384, 8, 1, 8, 64, 9715, "bf16", "FULL_SHARD", False, 1345310720),
    ("1b", 8192, 8, 2, 8, 128, 13474, "bf16", "FULL_SHARD", False, 1328533504),
    ("1b", 4096, 8, 4, 8, 256, 16856, "bf16", "FULL_SHARD", False, 1320144896),
    ("1b", 2048, 128, 10, 1, 1280, 18647, "bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 2048, 64, 10, 1, 640, 19001, "bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 2048, 32, 10, 1, 320, 15555, "bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 2048, 16, 8, 1, 128, 19085, "bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 2048, 8, 8, 8, 512, 19271, "bf16", "FULL_SHARD", False, 1315950592),
    ("1b", 1024, 8, 16, 8, 1024, 20959, "bf16", "FULL_SHARD", False, 1313853440),
    ("1b", 512, 8, 32, 8, 2048, 21782, "bf16", "FULL_SHARD", False, 1312804864),
]
T2_6 = [  # 2.6 H100 80GB FP8 — rows present only in the older version (350m)
    ("350m", 32768, 8, 1, 4, 32, 24439, "amp_fp8", "FULL_SHARD", False, 387442688),
    ("350m", 16384, 8, 2, 4, 64, 42929, "amp_fp8", "FULL_SHARD", False, 370665472),
    ("350m", 512, 8, 56, 4, 1792, 154420, "amp_fp8", "FULL_SHARD", False, 354412544),
]


TABLES = {"2.1": T2_1, "2.2": T2_2, "2.3": T2_3, "2.4": T2_4, "2.5": T2_5, "2.6": T2_6}


def _case(table: str, row: tuple) -> Case:
    size, seq, gpus, mbs, ga, gbs, tps, prec, shard, ac, _num_params = row
    if mbs * ga * gpus != gbs:
        raise ValueError(f"{table} {size} {seq}: MicroBatchSize {mbs} x GradAccum {ga} x GPUs {gpus} != {gbs}")
    precision, recipe = PRECISION[prec]
    name = f"{table} MPT-{size} {seq} tok {gpus} GPUs" + (" FP8" if precision == "fp8" else "")
    sc = scenario(f"llm-foundry {name}", mpt_model(size, seq), GPU[table], gpus, seq, gbs, precision, recipe,
                  NETWORK.get(table), zero_stage=SHARDING[shard], micro_batch_size=mbs,
                  recompute="full" if ac else "none", attention="flash2")
    return Case(name, GROUP, METRIC, tps, SOURCES[table], sc, tokens_per_s_per_gpu(gbs, seq, gpus), FIT_ON)


def llm_foundry_cases() -> list[Case]:
    return [_case(t, row) for t, rows in TABLES.items() for row in rows]

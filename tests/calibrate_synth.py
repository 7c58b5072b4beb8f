"""Synthetic results files with known parameters, for the calibration tests (not collected: no test_ prefix)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from costsim.calibrate.fit_curves import factor, steps
from costsim.calibrate.fit_gemm import shape_efficiency
from costsim.kernels import REF_FLOP_PER_BYTE

TRUE = dict(tile=(128, 256), k_half=655.0, plateau_bf16=800e12, bw=2.9e12, t0=5e-6, alpha=4e-6,
            busbw={"all_reduce": 350e9, "all_gather": 340e9, "reduce_scatter": 330e9, "all_to_all": 300e9},
            seq=(1024, 2048, 4096, 8192), fwd=(400e12, 500e12, 560e12, 590e12), bwd=(300e12, 380e12, 430e12, 450e12))


def results(entries: list[dict], summary: str = "synthetic", device: str = "cuda") -> dict:
    return {"format": "costsim-calibration-results", "version": 1, "created": "2026-01-02T03:04:05Z",
            "tool": "tests", "environment": {"summary": summary, "device": device}, "settings": {},
            "entries": entries}


def gemm_entries(sms: int = 132) -> list[dict]:
    t = TRUE
    shapes = [(m, n, k) for m in (1024, 4096, 8192) for n in (1024, 3072, 8192, 16384) for k in (512, 2048, 8192)]
    shapes += [(128 * w, 1024, 4096) for w in (16, 17, 33, 34, 49, 50)] + [(4096, 4096 + d, 4096) for d in (-64, 64, 128)]
    kh = t["k_half"] * t["plateau_bf16"] / t["bw"] / REF_FLOP_PER_BYTE
    out = []
    for m, n, k in shapes:
        eff = float(shape_efficiency(m, n, k, 1, *t["tile"], sms, kh))
        out.append({"family": "gemm", "dtype": "bf16", "m": m, "n": n, "k": k, "tflops": t["plateau_bf16"] * eff / 1e12})
    return out


def memory_entries() -> list[dict]:
    out = []
    for op in ("read", "copy"):
        for i in range(7):
            size = 2**20 * 4**i
            t = TRUE["t0"] + size / TRUE["bw"]
            out.append({"family": "memory", "op": op, "bytes": size, "gbps": size / t / 1e9})
    return out


def collective_entries(n: int = 8) -> list[dict]:
    out = []
    for coll, b in TRUE["busbw"].items():
        for i in range(8):
            size = 32 * 2**10 * 4**i
            wire = factor(coll, n) * size
            t = steps(coll, n) * TRUE["alpha"] + wire / b
            out.append({"family": "collective", "collective": coll, "tier": "intra_node", "ranks": n,
                        "size_bytes": size, "busbw_gbs": wire / t / 1e9})
    return out


def attention_entries() -> list[dict]:
    out = []
    for direction, rates in (("fwd", TRUE["fwd"]), ("bwd", TRUE["bwd"])):
        for s, r in zip(TRUE["seq"], rates):
            out.append({"family": "attention", "kernel": "sdpa-flash", "direction": direction, "causal": True,
                        "head_dim": 128, "seq_len": s, "tflops": r / 1e12})
            out.append({"family": "attention", "kernel": "sdpa-flash", "direction": direction, "causal": False,
                        "head_dim": 64, "seq_len": s, "tflops": 1.3 * r / 1e12})
    return out


def write(path: Path, entries: list[dict], **kw) -> Path:
    path.write_text(json.dumps(results(entries, **kw)))
    return path


def all_entries() -> list[dict]:
    return gemm_entries() + memory_entries() + collective_entries() + attention_entries()


__all__ = ["TRUE", "results", "write", "all_entries", "gemm_entries", "memory_entries", "collective_entries",
           "attention_entries", "np"]

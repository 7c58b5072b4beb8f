"""`costsim calibrate run`: every microbenchmark family in one pass, with a progress callback, to a results dict."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import CostsimError
from . import bench_attention, bench_collectives, bench_gemm, bench_launch, bench_memory
from .env import environment, now_utc
from .results import FORMAT, VERSION

FAMILIES = ("gemm", "memory", "attention", "collective", "launch")
FLUSH_BYTES = {"cuda": 256 * 2**20, "cpu": 32 * 2**20}


class CalibrateError(CostsimError):
    """The calibration cannot run here (no torch, no GPU, bad option): one line."""


@dataclass
class RunConfig:
    device: str = "auto"                  # auto | cpu | cuda
    quick: bool = False
    scenarios: list[Path] = field(default_factory=list)
    families: tuple[str, ...] = FAMILIES
    ranks: int = 0                        # collectives: 0 = every visible GPU (none on the CPU)
    seed: int = 0


def import_torch():
    try:
        import torch
    except ImportError:
        raise CalibrateError("calibrate run needs PyTorch, which is not installed: pip install torch (the "
                             "CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu), or "
                             "from a costsim checkout pip install -e '.[calibrate]'") from None
    return torch


def resolve_device(torch, device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise CalibrateError(f"--device: expected cpu, cuda or auto, got {device[:40]!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CalibrateError("--device cuda: no CUDA GPU is visible to PyTorch "
                             f"(torch {torch.__version__}); use --device cpu")
    return device


def _settings(device: str, quick: bool) -> dict:
    if device == "cpu":
        return {"warmup": 1, "repeats": 3 if quick else 7}
    return {"warmup": 5 if quick else 10, "repeats": 10 if quick else 50}


def plan_cases(torch, cfg: RunConfig, device: str) -> tuple[list[tuple[str, Callable]], dict]:
    """[(label, run(timer) -> entries)], and notes on what was skipped."""
    cases, skipped = [], {}
    if "gemm" in cfg.families:
        fp8 = bench_gemm.fp8_supported(torch, device)
        if not fp8:
            skipped["fp8"] = "torch._scaled_mm with float8_e4m3fn does not run on this device"
        shapes = [s for p in cfg.scenarios for s in bench_gemm.scenario_shapes(Path(p))]
        for c in bench_gemm.plan(device, cfg.quick, shapes, fp8):
            cases.append((c.label, lambda t, c=c: bench_gemm.run_case(torch, t, c, device)))
    if "memory" in cfg.families:
        for op, size in bench_memory.plan(device, cfg.quick):
            cases.append((f"memory {op} {size >> 20} MiB",
                          lambda t, op=op, size=size: bench_memory.run_case(torch, t, op, size, device)))
    if "attention" in cfg.families:
        for hd, causal, seq in bench_attention.plan(device, cfg.quick):
            cases.append((f"attention hd{hd} {'causal' if causal else 'full'} s{seq}",
                          lambda t, a=(hd, causal, seq): bench_attention.run_case(torch, t, *a, device)))
    if "collective" in cfg.families:
        ranks = cfg.ranks or (torch.cuda.device_count() if device == "cuda" else 0)
        if ranks > 1:
            cases.append((f"collectives, {ranks} ranks (torchrun)",
                          lambda t: bench_collectives.launch(ranks, device, cfg.quick)))
        else:
            skipped["collective"] = "one device visible (collectives need two or more; --ranks N on the CPU)"
    if "launch" in cfg.families:
        cases.append(("launch overhead", lambda t: bench_launch.run_case(torch, t, device)))
    return cases, skipped


def run_calibration(cfg: RunConfig, progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Run the microbenchmarks; returns a results-file dict (not yet validated)."""
    unknown = set(cfg.families) - set(FAMILIES)
    if unknown:
        raise CalibrateError(f"--only: unknown family {sorted(unknown)[0]!r}; known: {', '.join(FAMILIES)}")
    torch = import_torch()
    device = resolve_device(torch, cfg.device)
    torch.manual_seed(cfg.seed)
    created = now_utc()
    settings = {"quick": cfg.quick, **_settings(device, cfg.quick), "l2_flush_bytes": FLUSH_BYTES[device],
                "timing": "CUDA events per call" if device == "cuda" else "perf_counter per call",
                "statistic": "median", "inputs": "random normal", "seed": cfg.seed,
                "scenarios": [str(p) for p in cfg.scenarios]}
    cases, skipped = plan_cases(torch, cfg, device)
    from .timing import Timer
    timer = Timer(torch, device, settings["warmup"], settings["repeats"], FLUSH_BYTES[device])
    entries = []
    for i, (label, fn) in enumerate(cases):
        if progress:
            progress(i, len(cases), label)
        try:
            entries.extend(fn(timer))
        except (RuntimeError, MemoryError) as exc:   # e.g. out of memory on a big shape: note it, go on
            skipped[label] = " ".join(str(exc).split())[:200]
            if device == "cuda":
                torch.cuda.empty_cache()
    if progress:
        progress(len(cases), len(cases), "done")
    if skipped:
        settings["skipped"] = skipped
    return {"format": FORMAT, "version": VERSION, "created": created,
            "tool": f"costsim {__version__} calibrate run", "environment": environment(torch, device),
            "settings": settings, "entries": entries}

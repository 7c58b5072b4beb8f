"""GEMM microbenchmarks: a MAMF-style grid, tile/wave/K/small-M probes and the scenario's own shapes.

BF16 through torch.matmul (torch.bmm for grouped shapes), FP8 e4m3 through torch._scaled_mm (per-tensor
scales, BF16 output) where the device runs it. Sizes are divided by 16 on the CPU, so a quick CPU pass takes
seconds. FLOPs = 2·M·N·K·groups.
"""
from __future__ import annotations

from dataclasses import dataclass

GRID = (2048, 4096, 8192, 16384)
GRID_QUICK = (2048, 4096, 8192)
TILE = 128          # probes straddle multiples of a 128-wide tile ...
SMS_PROBE = 132     # ... and of an H100's 132 SMs; the fit, not the probe, decides the real ones
CPU_DIV = 16
CPU_MAX_FLOPS = 2e10   # skip (scenario) shapes the CPU would take seconds on


@dataclass(frozen=True)
class GemmCase:
    dtype: str
    m: int
    n: int
    k: int
    groups: int = 1
    probe: str = "grid"

    @property
    def label(self) -> str:
        g = f"x{self.groups}" if self.groups > 1 else ""
        return f"gemm {self.dtype} {self.m}x{self.n}x{self.k}{g} ({self.probe})"


def probe_shapes(quick: bool) -> list[tuple[int, int, int, str]]:
    """(M, N, K, probe) across wave, tile-padding, K and small-M boundaries (GPU sizes)."""
    waves = [t for w in (1, 2, 3) for t in (w * SMS_PROBE // 8, w * SMS_PROBE // 8 + 1)]   # N = 8 tiles wide
    out = [(TILE * t, 8 * TILE, 4096, "wave") for t in (waves[:4] if quick else waves)]
    out += [(4096, 4096 + d, 4096, "tile") for d in ((-64, 0, 64) if quick else (-64, 0, 64, 128))]
    out += [(4096, 4096, k, "k") for k in ((256, 1024, 4096) if quick else (256, 512, 1024, 2048, 4096, 8192, 16384))]
    out += [(m, 8192, 8192, "small_m") for m in ((32, 128, 512) if quick else (16, 32, 64, 128, 256, 512))]
    return out


def plan(device: str, quick: bool, scenario: list[tuple[str, int, int, int, int]], fp8: bool) -> list[GemmCase]:
    grid = GRID_QUICK if quick else GRID
    base = [(m, n, k, "grid") for m in grid for n in grid for k in grid] + probe_shapes(quick)
    if device == "cpu":
        base = [(max(16, m // CPU_DIV), max(16, n // CPU_DIV), max(16, k // CPU_DIV), p) for m, n, k, p in base]
        if quick:   # a handful of each kind
            base = base[:4] + [s for s in base if s[3] != "grid"][::3]
    dtypes = ("bf16", "fp8") if fp8 else ("bf16",)
    cases = [GemmCase(d, m, n, k, 1, p) for d in dtypes for m, n, k, p in dict.fromkeys(base)]
    for dtype, m, n, k, g in scenario:
        if dtype == "fp8" and (not fp8 or g > 1):
            dtype = "bf16"   # grouped FP8 has no single torch call; time it in BF16
        if device == "cpu" and 2.0 * m * n * k * g > CPU_MAX_FLOPS:
            continue
        cases.append(GemmCase(dtype, m, n, k, g, "scenario"))
    return list(dict.fromkeys(cases))


def fp8_supported(torch, device: str) -> bool:
    """True if torch._scaled_mm runs FP8 e4m3 here (Hopper/Ada on CUDA; some CPU builds)."""
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        return False
    if device == "cuda" and torch.cuda.get_device_capability(0) < (8, 9):
        return False
    try:
        a = torch.randn(32, 32, device=device).to(torch.float8_e4m3fn)
        one = torch.tensor(1.0, device=device)
        torch._scaled_mm(a, a.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        return True
    except (RuntimeError, TypeError, NotImplementedError):
        return False


def run_case(torch, timer, case: GemmCase, device: str) -> list[dict]:
    m, n, k, g = case.m, case.n, case.k, case.groups
    if case.dtype == "fp8":
        m, n, k = (max(16, (x + 15) // 16 * 16) for x in (m, n, k))   # _scaled_mm wants multiples of 16
        a = torch.randn(m, k, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(n, k, device=device).to(torch.float8_e4m3fn).t()   # column-major B
        one = torch.tensor(1.0, device=device)
        fn = lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    elif g > 1:
        a = torch.randn(g, m, k, device=device, dtype=torch.bfloat16)
        b = torch.randn(g, k, n, device=device, dtype=torch.bfloat16)
        fn = lambda: torch.bmm(a, b)
    else:
        a = torch.randn(m, k, device=device, dtype=torch.bfloat16)
        b = torch.randn(k, n, device=device, dtype=torch.bfloat16)
        fn = lambda: torch.matmul(a, b)
    t = timer.time(fn)
    flops = 2.0 * m * n * k * g
    return [{"family": "gemm", "dtype": case.dtype, "m": m, "n": n, "k": k, "groups": g, "kernel": "torch",
             "probe": case.probe, "tflops": flops / t.median_s / 1e12, "time_s": t.median_s, "repeats": t.repeats}]


def scenario_shapes(path) -> list[tuple[str, int, int, int, int]]:
    """Distinct per-GPU GEMMs (forward, input-grad, weight-grad) of a scenario's op tables, largest first."""
    from ..estimate import load_context
    from ..layers import pipeline_units, unit_ops
    from ..ops import GEMM
    from ..plan import resolve_phases
    from ..scenario import load_scenario

    sc = load_scenario(path)
    model, hw = load_context(sc, path.parent)
    seen: dict[tuple, float] = {}
    for ph in resolve_phases(sc, model, hw):
        if ph.plan is None:
            continue
        for unit in sorted(set(pipeline_units(model))):
            for op in unit_ops(model, ph.plan, unit):
                if op.kind == GEMM:
                    key = ("fp8" if op.prec == 1 else "bf16", max(1, round(op.m)), max(1, round(op.n)),
                           max(1, round(op.k)), max(1, round(op.groups)))
                    seen[key] = op.flops
    return sorted(seen, key=lambda s: -seen[s])[:48]

"""Collectives across the GPUs of one node through torchrun and NCCL (gloo on the CPU, for testing):
all-reduce, all-gather, reduce-scatter, all-to-all from 32 KiB to 1 GiB. busbw by nccl-tests' conventions
(formulas.md): size S is the whole buffer (n × the per-rank part for all-gather / reduce-scatter), algbw = S/t,
busbw = algbw × 2(n−1)/n for all-reduce and × (n−1)/n for the others. Each size is timed on every rank and
the slowest rank's median kept.

    python -m torch.distributed.run --standalone --nproc_per_node N -m costsim.calibrate.bench_collectives OUT.json [--quick] [--device cpu]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import CostsimError

KIB = 2**10
SIZES = [32 * KIB * 4**i for i in range(8)]     # 32 KiB … 512 MiB
SIZES_QUICK = [32 * KIB * 16**i for i in range(4)]
SIZES_CPU = [32 * KIB * 8**i for i in range(2)]
COLLS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")


def busbw_factor(coll: str, n: int) -> float:
    return 2.0 * (n - 1) / n if coll == "all_reduce" else (n - 1) / n


def launch(ranks: int, device: str, quick: bool, timeout_s: float = 900) -> list[dict]:
    """Run this module under torchrun on `ranks` processes; returns its entries (CalibrateError on failure)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coll.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               "-m", "costsim.calibrate.bench_collectives", str(out), "--device", device] + (["--quick"] if quick else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise CostsimError(f"collectives: torchrun did not finish in {timeout_s:.0f} s") from None
        if proc.returncode != 0 or not out.exists():
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:]) or f"exit {proc.returncode}"
            raise CostsimError(f"collectives: torchrun failed: {tail}")
        return json.loads(out.read_text())


def _ops(torch, dist, coll: str, size: int, n: int, device: str):
    """(callable, tensors kept alive) for one collective of `size` bytes (nccl-tests size)."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    elem = 2 if device == "cuda" else 4
    count = max(n, size // elem // n * n)
    if coll == "all_reduce":
        x = torch.randn(count, device=device, dtype=dtype)
        return lambda: dist.all_reduce(x)
    if coll == "all_gather":
        part = torch.randn(count // n, device=device, dtype=dtype)
        whole = torch.empty(count, device=device, dtype=dtype)
        return lambda: dist.all_gather_into_tensor(whole, part)
    if coll == "reduce_scatter":
        whole = torch.randn(count, device=device, dtype=dtype)
        part = torch.empty(count // n, device=device, dtype=dtype)
        return lambda: dist.reduce_scatter_tensor(part, whole)
    x = torch.randn(count, device=device, dtype=dtype)
    y = torch.empty_like(x)
    return lambda: dist.all_to_all_single(y, x)


def _time(torch, dist, fn, device: str, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    times = []
    for _ in range(repeats):
        dist.barrier()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    t = torch.tensor([times[len(times) // 2]], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)   # the slowest rank
    return float(t.item())


def worker(out: str, device: str, quick: bool) -> None:
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
        try:
            dist.init_process_group("nccl", device_id=torch.device("cuda", local))
        except TypeError:   # torch < 2.3 has no device_id
            dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    n, rank = dist.get_world_size(), dist.get_rank()
    sizes = SIZES_CPU if device == "cpu" else SIZES_QUICK if quick else SIZES
    entries = []
    for coll in COLLS:
        for size in sizes:
            try:
                fn = _ops(torch, dist, coll, size, n, device)
                t = _time(torch, dist, fn, device, 3 if quick else 5, 5 if quick or device == "cpu" else 20)
            except (RuntimeError, NotImplementedError, ValueError):   # e.g. gloo lacks reduce-scatter
                break
            entries.append({"family": "collective", "collective": coll, "tier": "intra_node", "ranks": n,
                            "ranks_per_node": n, "algo": "default", "size_bytes": size,
                            "busbw_gbs": size / t * busbw_factor(coll, n) / 1e9, "time_s": t})
    if rank == 0:
        Path(out).write_text(json.dumps(entries))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    args = sys.argv[1:]
    dev = args[args.index("--device") + 1] if "--device" in args else "cuda"
    worker(args[0], dev, "--quick" in args)

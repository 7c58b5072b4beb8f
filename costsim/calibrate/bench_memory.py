"""Memory bandwidth: copy (read + write counted), read (a sum) and write (a fill) from 1 MiB up."""
from __future__ import annotations

MIB = 2**20
SIZES = [MIB * 4**i for i in range(7)]            # 1 MiB … 4 GiB
SIZES_QUICK = [MIB * 4**i for i in range(6)]      # 1 MiB … 1 GiB
SIZES_CPU = [MIB * 4**i for i in range(4)]        # 1 MiB … 64 MiB
OPS = ("copy", "read", "write")


def plan(device: str, quick: bool) -> list[tuple[str, int]]:
    sizes = SIZES_CPU if device == "cpu" else SIZES_QUICK if quick else SIZES
    return [(op, s) for s in sizes for op in OPS]


def run_case(torch, timer, op: str, size: int, device: str) -> list[dict]:
    x = torch.randn(size // 4, device=device)          # float32
    if op == "copy":
        y = torch.empty_like(x)
        fn, moved = (lambda: y.copy_(x)), 2 * size
    elif op == "read":
        fn, moved = (lambda: x.sum()), size
    else:
        fn, moved = (lambda: x.fill_(1.0)), size
    t = timer.time(fn)
    return [{"family": "memory", "op": op, "bytes": moved, "gbps": moved / t.median_s / 1e9,
             "time_s": t.median_s, "repeats": t.repeats}]

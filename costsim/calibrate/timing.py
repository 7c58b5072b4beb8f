"""Timing a kernel properly (formulas.md, last section; stas00 mamf-finder; triton.testing.do_bench).

Warm up; synchronise; time every call on its own — CUDA events on the GPU, perf_counter on the CPU — after
flushing the last-level cache by zeroing a buffer larger than it (256 MiB on a GPU); inputs are random normal,
never zeros (made by the benchmarks); report the median of the repeats.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class Timing:
    median_s: float
    min_s: float
    repeats: int


class Timer:
    def __init__(self, torch, device: str, warmup: int, repeats: int, flush_bytes: int):
        self.torch, self.device, self.warmup, self.repeats = torch, device, warmup, repeats
        self.flush_buf = torch.empty(max(flush_bytes, 1), dtype=torch.uint8, device=device)

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def flush(self) -> None:
        self.flush_buf.zero_()

    def time(self, fn: Callable[[], object], before: Callable[[], object] | None = None,
             repeats: int | None = None) -> Timing:
        """Median seconds of `fn()`; `before()` runs untimed ahead of each call (e.g. a forward for a backward)."""
        n = repeats or self.repeats
        for _ in range(self.warmup):
            if before:
                before()
            fn()
        self.sync()
        times = []
        if self.device == "cuda":
            ev = self.torch.cuda.Event
            pairs = []
            for _ in range(n):
                if before:
                    before()
                self.flush()
                start, end = ev(enable_timing=True), ev(enable_timing=True)
                start.record()
                fn()
                end.record()
                pairs.append((start, end))
            self.sync()
            times = [s.elapsed_time(e) * 1e-3 for s, e in pairs]
        else:
            for _ in range(n):
                if before:
                    before()
                self.flush()
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return Timing(statistics.median(times), min(times), n)

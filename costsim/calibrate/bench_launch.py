"""Kernel launch overhead: host time per launch of a one-element add, many back to back, then one sync."""
from __future__ import annotations

import statistics
import time

LAUNCHES = 200


def run_case(torch, timer, device: str) -> list[dict]:
    x = torch.zeros(1, device=device)
    for _ in range(20):
        x.add_(1.0)
    timer.sync()
    trials = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(LAUNCHES):
            x.add_(1.0)
        timer.sync()
        trials.append((time.perf_counter() - t0) / LAUNCHES)
    t = statistics.median(trials)
    return [{"family": "launch", "op": "add_ 1 element", "time_us": t * 1e6, "repeats": 7}]

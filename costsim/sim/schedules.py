"""Pipeline schedules as data: for each rank, the ordered list of chunk actions it runs in one step.

An action is F (forward), B (backward: input- and weight-grad together, or input-grad only when `zb`), W (a
deferred weight-grad, first-in first-out), or FB (DualPipe: a forward and a backward chunk run as an overlapped
pair). Sources: 1F1B and interleaved 1F1B, Narayanan et al. 2021 (Megatron-LM's
`forward_backward_pipelining_with_interleaving` order); ZB-H1, Qi et al. 2023 ("Zero Bubble Pipeline
Parallelism"); DualPipe, DeepSeek-V3 report §3.2.1 and deepseek-ai/DualPipe's eight-step schedule.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    kind: str          # F | B | W | FB
    chunk: int         # model chunk on this rank (interleaved: virtual stage; DualPipe: phase 0 or 1)
    mb: int            # micro-batch (FB: the forward's)
    zb: bool = False   # B computes the input gradient only; its W comes later
    chunk2: int = -1   # FB: the backward's chunk and micro-batch
    mb2: int = -1


def one_f_one_b(p: int, m: int, rank: int, zero_bubble: bool = False) -> list[Action]:
    """1F1B: p−rank−1 warm-up forwards, then one forward and one backward each, then the cool-down.
    Zero-bubble (ZB-H1): the backward is the input gradient only, so the gradient chain between stages carries
    no weight-gradient work; rank r keeps r weight gradients in hand during the steady state (later stages defer
    more, keeping the chain fast) and spends them in the cool-down gaps that idle in 1F1B. With equal stages
    this gives exactly the (p−1)(F+B−2W) bubble (B = full backward)."""
    warm = min(p - rank - 1, m)
    out = [Action("F", 0, i) for i in range(warm)]
    lag = rank if zero_bubble else 0
    w_next = 0
    for i in range(m):
        steady = warm + i < m
        if steady:
            out.append(Action("F", 0, warm + i))
        out.append(Action("B", 0, i, zb=zero_bubble))
        # steady state: keep `lag` weight gradients in hand; cool-down: one after each backward, in the gap
        # where 1F1B waits for the next stage's gradient
        if zero_bubble and (i + 1 - w_next > lag or not steady):
            out.append(Action("W", 0, w_next))
            w_next += 1
    out += [Action("W", 0, j) for j in range(w_next, m)] if zero_bubble else []
    return out


def interleaved(p: int, m: int, v: int, rank: int) -> list[Action]:
    """Interleaved 1F1B over v chunks per rank (Megatron-LM order: groups of p micro-batches per chunk)."""
    if v == 1:
        return one_f_one_b(p, m, rank)
    total = m * v

    def fwd(k: int) -> tuple[int, int]:
        return (k // p) % v, (k // (p * v)) * p + k % p

    def bwd(k: int) -> tuple[int, int]:
        return v - 1 - (k // p) % v, (k // (p * v)) * p + k % p

    warm = min((p - rank - 1) * 2 + (v - 1) * p, total)
    out = [Action("F", *fwd(k)) for k in range(warm)]
    for k in range(total - warm):
        out.append(Action("F", *fwd(warm + k)))
        out.append(Action("B", *bwd(k)))
    out += [Action("B", *bwd(k)) for k in range(total - warm, total)]
    return out


def dualpipe(p: int, m: int, rank: int) -> list[Action]:
    """DualPipe (deepseek-ai/DualPipe): m micro-batches, half entering at each end; rank r runs stage r of
    direction 0 (chunk 0) and stage p−1−r of direction 1 (chunk 1). Needs p even and m ≥ 2p, m even."""
    half_ranks, half_m = p // 2, m // 2
    h = min(rank, p - 1 - rank)
    nxt = {("F", 0): 0, ("F", 1): 0, ("B", 0): 0, ("B", 1): 0}
    out: list[Action] = []

    def take(kind: str, chunk: int) -> int:
        i = nxt[(kind, chunk)]
        nxt[(kind, chunk)] = i + 1
        return i

    def F(c: int) -> None:
        out.append(Action("F", c, take("F", c)))

    def B(c: int, zb: bool = False) -> None:
        out.append(Action("B", c, take("B", c), zb=zb))

    def W() -> None:
        out.append(Action("W", -1, -1))

    def FB(cf: int, cb: int) -> None:
        out.append(Action("FB", cf, take("F", cf), chunk2=cb, mb2=take("B", cb)))

    for _ in range((half_ranks - h - 1) * 2):       # step 1: nF0
        F(0)
    for _ in range(h + 1):                          # step 2: nF0F1
        F(0)
        F(1)
    for _ in range(half_ranks - h - 1):             # step 3: nB1W1F1 (zero bubble)
        B(1, zb=True)
        W()
        F(1)
    for i in range(half_m - p + h + 1):             # step 4 (main): nF0B1F1B0
        if i == 0 and rank == p - 1:                # the last rank does not overlap its first pair
            F(0)
            B(1)
        else:
            FB(0, 1)
        FB(1, 0)
    for _ in range(half_ranks - h - 1):             # step 5: nB1F1B0
        B(1)
        FB(1, 0)
    zb = False
    for i in range(h + 1):                          # step 6: nB1B0, second half zero bubble
        if i == (h + 1) // 2 and h % 2 == 1:
            zb = True
        B(1, zb=zb)
        if i == (h + 1) // 2 and h % 2 == 0:
            zb = True
        B(0, zb=zb)
    for _ in range(half_ranks - h - 1):             # step 7: nWB0
        W()
        B(0, zb=True)
    for _ in range(h + 1):                          # step 8: nW
        W()
    if rank >= half_ranks:   # the second half of the ranks runs the same program with the directions swapped
        out = [Action(a.kind, 1 - a.chunk if a.chunk >= 0 else -1, a.mb, a.zb,
                      1 - a.chunk2 if a.chunk2 >= 0 else -1, a.mb2) for a in out]
    return out


def rank_actions(schedule: str, p: int, m: int, v: int, rank: int) -> list[Action]:
    if schedule == "dualpipe":
        return dualpipe(p, m, rank)
    if schedule == "interleaved":
        return interleaved(p, m, v, rank)
    return one_f_one_b(p, m, rank, zero_bubble=schedule == "zero-bubble")

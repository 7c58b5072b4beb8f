"""Which pipeline units (embedding, layers, MTP blocks, head) each pipeline chunk holds."""
from __future__ import annotations


def uniform_layout(units: list[str], chunks: int) -> list[list[str]]:
    """Equal layer counts per chunk (Megatron); the embedding joins the first chunk and the head the last.
    When layers do not divide evenly, the first and last chunks, which also hold the embedding and the head,
    get the smaller share."""
    body = units[1:-1]
    base, extra = divmod(len(body), chunks)
    order = list(range(1, chunks - 1)) + [0, chunks - 1] if chunks > 2 else list(range(chunks))
    counts = [base] * chunks
    for c in order[:extra]:
        counts[c] += 1
    out, i = [], 0
    for c in range(chunks):
        out.append(body[i:i + counts[c]])
        i += counts[c]
    out[0].insert(0, units[0])
    out[-1].append(units[-1])
    return out


def balanced_layout(units: list[str], cost: dict[str, float], chunks: int) -> list[list[str]]:
    """Contiguous split minimising the slowest chunk (binary search on the bound, greedy fill)."""
    w = [cost[u] for u in units]

    def split(limit: float) -> list[list[str]] | None:
        out, cur, load = [], [], 0.0
        for u, x in zip(units, w):
            if cur and load + x > limit:
                out.append(cur)
                cur, load = [], 0.0
            cur.append(u)
            load += x
        out.append(cur)
        return out if len(out) <= chunks else None

    lo, hi = max(w), sum(w)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if split(mid) else (mid, hi)
    out = split(hi)
    while len(out) < chunks:          # fewer chunks than allowed: split the largest multi-unit chunk
        big = max((c for c in out if len(c) > 1), key=lambda c: sum(cost[u] for u in c))
        i = out.index(big)
        out[i:i + 1] = [big[:len(big) // 2], big[len(big) // 2:]]
    return out


def layout(units: list[str], cost: dict[str, float], chunks: int, mode: str) -> list[list[str]]:
    return balanced_layout(units, cost, chunks) if mode == "balanced" else uniform_layout(units, chunks)


def rank_chunks(chunks: int, pp: int, schedule: str) -> list[list[int]]:
    """Chunk indices each pipeline rank holds: interleaved round-robin; DualPipe stage r and p−1−r."""
    if schedule == "dualpipe":
        return [[r, pp - 1 - r] for r in range(pp)]
    return [list(range(r, chunks, pp)) for r in range(pp)]

"""Which pipeline units each chunk holds (uniform and balanced layouts) and which chunks each rank runs."""
from __future__ import annotations

import numpy as np
import pytest

from costsim.layers import pipeline_units
from costsim.layout import balanced_layout, layout, rank_chunks, uniform_layout
from costsim.model import load_builtin


def units_of(n_layers: int, mtp: int = 0) -> list[str]:
    return ["embed"] + [f"L{i}" for i in range(n_layers)] + [f"mtp{i}" for i in range(mtp)] + ["head"]


def flat(chunks: list[list[str]]) -> list[str]:
    return [u for c in chunks for u in c]


CASES = [(n, c) for n in (4, 7, 16, 61, 62, 96, 126) for c in (1, 2, 3, 4, 5, 8, 16) if c <= n]


@pytest.mark.parametrize("n, chunks", CASES)
def test_uniform_layout(n, chunks):
    units = units_of(n)
    out = uniform_layout(units, chunks)
    assert len(out) == chunks
    assert flat(out) == units                                        # contiguous, in order, each unit once
    assert out[0][0] == "embed" and out[-1][-1] == "head"
    counts = [len([u for u in c if u not in ("embed", "head")]) for c in out]
    assert max(counts) - min(counts) <= 1
    base, extra = divmod(n, chunks)
    assert sorted(counts) == [base] * (chunks - extra) + [base + 1] * extra
    if chunks > 2:
        assert counts[-1] == base                                    # the head's (heavier) chunk never gets an extra
        if extra <= chunks - 2:
            assert counts[0] == base                                 # nor the embedding's, while the middle can


def test_uniform_layout_deepseek_v3_dualpipe():
    """61 layers + 1 MTP block on 16 stages: 62 = 16·3 + 14, the 14 extra layers go to the middle stages."""
    units = pipeline_units(load_builtin("deepseek-v3"))
    out = uniform_layout(units, 16)
    counts = [len([u for u in c if u not in ("embed", "head")]) for c in out]
    assert counts == [3] + [4] * 14 + [3]
    assert out[-1][-2:] == ["mtp", "head"]


def random_costs(rng: np.random.Generator, units: list[str]) -> dict[str, float]:
    return {u: float(rng.lognormal(0.0, 0.6)) for u in units}


@pytest.mark.parametrize("seed", range(20))
def test_balanced_layout(seed):
    rng = np.random.default_rng(seed)
    units = units_of(int(rng.integers(8, 80)), int(rng.integers(0, 2)))
    cost = random_costs(rng, units)
    cost["head"] *= 5                                                # a heavy output head, as in practice
    chunks = int(rng.integers(2, min(17, len(units) - 2)))
    out = balanced_layout(units, cost, chunks)
    assert len(out) == chunks and all(out)
    assert flat(out) == units                                        # contiguous, covers every unit once

    def worst(layout_):
        return max(sum(cost[u] for u in c) for c in layout_)

    assert worst(out) <= worst(uniform_layout(units, chunks)) * (1 + 1e-12)
    assert worst(out) >= max(cost.values()) and worst(out) >= sum(cost.values()) / chunks - 1e-12


def test_balanced_layout_is_optimal_on_a_small_case():
    """Brute force over all contiguous splits of 9 units into 3 chunks."""
    units = units_of(7)
    rng = np.random.default_rng(3)
    cost = random_costs(rng, units)
    best = min(max(sum(cost[u] for u in units[a:b]) for a, b in ((0, i), (i, j), (j, len(units))))
               for i in range(1, len(units) - 1) for j in range(i + 1, len(units)))
    out = balanced_layout(units, cost, 3)
    assert max(sum(cost[u] for u in c) for c in out) == pytest.approx(best, rel=1e-12)


def test_balanced_layout_equal_costs_fills_every_chunk():
    units = units_of(14)
    out = balanced_layout(units, {u: 1.0 for u in units}, 4)
    assert len(out) == 4 and sorted(len(c) for c in out) == [4, 4, 4, 4]


def test_layout_dispatch():
    units = units_of(10)
    cost = {u: 1.0 for u in units}
    assert layout(units, cost, 3, "uniform") == uniform_layout(units, 3)
    assert layout(units, cost, 3, "balanced") == balanced_layout(units, cost, 3)


@pytest.mark.parametrize("pp, v", [(1, 1), (2, 2), (4, 2), (4, 3), (8, 4)])
def test_rank_chunks_interleaved(pp, v):
    out = rank_chunks(pp * v, pp, "interleaved")
    assert out == [[r + i * pp for i in range(v)] for r in range(pp)]            # round-robin
    assert sorted(flat(out)) == list(range(pp * v))                               # each chunk once


@pytest.mark.parametrize("pp", [2, 4, 8, 16])
def test_rank_chunks_dualpipe(pp):
    out = rank_chunks(pp, pp, "dualpipe")
    assert out == [[r, pp - 1 - r] for r in range(pp)]
    held = flat(out)
    assert all(held.count(c) == 2 for c in range(pp))          # every stage lives on two ranks (2× parameters)
    assert out[0] == [0, pp - 1] and out[-1] == [pp - 1, 0]    # both pipeline ends on the edge ranks


@pytest.mark.parametrize("pp", [1, 4, 16])
def test_rank_chunks_1f1b(pp):
    assert rank_chunks(pp, pp, "1f1b") == [[r] for r in range(pp)]

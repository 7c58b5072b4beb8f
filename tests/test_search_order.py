"""Does costsim order plans as reality does? Kendall τ per group of published plans of one model on one GPU
count (costsim/search/order.py); `pytest -s tests/test_search_order.py` prints the table."""
from __future__ import annotations

import math

import pytest

from costsim.search.order import NARAYANAN_TABLE1, OrderGroup, kendall_tau, order_agreement, plan_groups
from costsim.validate import all_cases


def test_kendall_tau_hand_cases():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == -1.0
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert math.isnan(kendall_tau([1, 1], [1, 2]))
    # τ-b with a tie in x: (C − D) / sqrt((C + D + Tx)(C + D + Ty)) = (2 − 0) / sqrt(3 · 2)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


@pytest.fixture(scope="module")
def groups() -> list[OrderGroup]:
    return order_agreement()


def test_order_matches_reality(groups):
    conc = disc = 0
    print("\nKendall τ, predicted vs published order, per group of plans of one model on one GPU count:")
    for g in groups:
        c, d = g.pairs
        conc, disc = conc + c, disc + d
        print(f"  {g.key:64s} plans {len(g.cases):2d}  τ {g.tau:+.2f}  pairs in order {c}/{c + d}")
    print(f"  all groups: {conc}/{conc + disc} plan pairs in the published order ({conc / (conc + disc):.0%})")
    names = {c for g in groups for c in g.cases}
    assert any(n.startswith("1.4 ") for n in names), "torchtitan 1.4 (vanilla vs async TP, bf16/float8) grouped"
    assert any(n.startswith("3.") for n in names), "fms-fsdp AC / micro-batch variants grouped"
    assert len(groups) >= 15
    # measured when written: 55/74 pairs (74%); torchtitan 405B 1.1 τ +1.00, 70B (1.3+1.4) +0.30,
    # 8B 1.4 +0.07 (float8 rowwise measured slower than BF16: README, Limits), fms-fsdp 34B/70B +0.33
    assert conc / (conc + disc) >= 0.65
    for g in groups:
        if len(g.cases) >= 3:
            assert g.tau > -0.5, g.key


def test_narayanan_weak_scaling_orders_no_plans():
    """Narayanan et al. 2021 is in the validation set only through Table 1 (published-runs.md): each row its
    own model size on its own GPU count, so no two rows share a model and count and no group forms. Its
    §5.4–5.6 plan comparisons (tensor vs pipeline degree, micro-batch size) are not transcribed anywhere in
    docs/reference, so there is no measured order to check them against (order.py's docstring)."""
    rows = [c for c in all_cases() if c.group == NARAYANAN_TABLE1]
    assert len(rows) == 10                                   # published-runs.md, Table 1: 1.7B … 1008B
    assert len({(c.scenario["cluster"]["num_gpus"], str(c.scenario["model"])) for c in rows}) == len(rows)
    assert plan_groups(rows) == []

"""`usd_per_gpu_hour` listed in the search space: every plan at every price, its dollars those of `estimate`.

A price changes no plan's time, memory or feasibility, only cost_usd = gpu_hours × price, so the engines cost
each plan once and `space.with_prices` prices the merged result (issue 8: "optionally lists of num_gpus, gpu
… and usd_per_gpu_hour").
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from costsim.cli import app
from costsim.errors import ScenarioError
from costsim.estimate import estimate
from costsim.scenario import load_scenario
from costsim.search.engine import PlanResult, pareto_front, search
from costsim.search.space import PRICE_KEY, PricedTable, SearchSpace, parse_space, with_prices

runner = CliRunner()
PRICES = [3.25, 1.5, 2.0]      # not sorted: the order given is the order kept

SCENARIO = {
    "name": "Llama 2 7B priced search",
    "model": "llama2-7b",
    # a pinned price: the space's list must win over it
    "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 64},
    "pricing": {"usd_per_gpu_hour": 9.0},
    "phases": [{"name": "pre-training", "seq_len": 4096, "global_batch_size": 512, "tokens": 1e11}],
    "search": {"tp": [1, 2, 4], "pp": [1, 2], "micro_batch_size": [1, 4], "zero_stage": [0, 3],
               "recompute": ["none", "full"], "schedule": ["1f1b"], "gpu": ["a100-sxm-80gb", "h100-sxm"],
               "num_gpus": [32, 64]},
}
SCALAR_KEYS = ("tp", "pp", "cp", "ep", "etp", "dp", "zero_stage", "micro_batch_size", "recompute", "schedule",
               "virtual_stages", "sequence_parallel")


def _write(tmp_path: Path, raw: dict) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(scenario path, search without a price list, the same search with PRICES)."""
    tmp = tmp_path_factory.mktemp("price")
    plain = _write(tmp, SCENARIO)
    priced_raw = {**SCENARIO, "search": {**SCENARIO["search"], PRICE_KEY: PRICES}}
    priced = tmp / "priced.yaml"
    priced.write_text(yaml.safe_dump(priced_raw))
    return (priced, search(load_scenario(plain), base_dir=tmp, top=5),
            search(load_scenario(priced), base_dir=tmp, top=5))


def test_every_plan_at_every_price(runs):
    _, plain, priced = runs
    k = len(PRICES)
    assert priced.evaluated == k * plain.evaluated
    assert priced.rejected == {r: k * c for r, c in plain.rejected.items()}
    assert priced.evaluated == len(priced.feasible) + sum(priced.rejected.values())
    assert len(priced.feasible) == k * len(plain.feasible) > 0
    for i, r in enumerate(priced.feasible):          # plan-major, price innermost, in the order listed
        base = plain.feasible[i // k]
        price = PRICES[i % k]
        assert r.plan == {**base.plan, PRICE_KEY: price}
        assert r.cost_usd == base.gpu_hours * price
        for f in ("step_time_s", "wall_clock_days", "gpu_hours", "mfu", "memory_gib_per_gpu"):
            assert getattr(r, f) == getattr(base, f)
    assert all(PRICE_KEY not in r.plan for r in plain.feasible)    # no list: plans as before
    assert priced.dimensions[PRICE_KEY] == PRICES and plain.dimensions[PRICE_KEY] == [None]


def _sets(plan: dict) -> list[str]:
    return ([f"parallelism.{k}={json.dumps(plan[k])}" for k in SCALAR_KEYS]
            + [f"cluster.num_gpus={plan['num_gpus']}", f"cluster.gpu={plan['gpu']}",
               f"pricing.usd_per_gpu_hour={plan[PRICE_KEY]!r}"])


def test_priced_plans_equal_estimate_at_that_price(runs):
    """A priced plan is `estimate --set pricing.usd_per_gpu_hour=P` of the same plan: dollars bit for bit
    (both form gpu_hours × P from the same gpu_hours), the rest to the search's 1e-9."""
    path, _, priced = runs
    rng = random.Random(11)
    for r in rng.sample(priced.feasible, 12) + priced.top[:3]:
        est = estimate(load_scenario(path, _sets(r.plan)), base_dir=path.parent)
        ph = est.phases[0]
        assert est.usd_per_gpu_hour == r.plan[PRICE_KEY]
        assert r.cost_usd == pytest.approx(ph.cost_usd, rel=1e-9, abs=0)
        assert r.cost_usd == r.gpu_hours * r.plan[PRICE_KEY]
        assert ph.cost_usd == ph.gpu_hours * est.usd_per_gpu_hour
        assert r.gpu_hours == pytest.approx(ph.gpu_hours, rel=1e-9, abs=0)


def test_cheapest_price_wins_top_and_frontier(runs):
    _, plain, priced = runs
    low = min(PRICES)
    best = priced.top[0]
    assert best.plan[PRICE_KEY] == low
    assert best.cost_usd == min(r.gpu_hours for r in plain.feasible) * low
    # a price moves no plan in time, so a dearer copy of a plan is dominated by its cheapest copy
    assert {r.plan[PRICE_KEY] for r in priced.pareto} == {low}
    assert [r.wall_clock_days for r in priced.pareto] == [r.wall_clock_days for r in pareto_front(
        [PlanResult(**{**r.to_dict(), "cost_usd": r.gpu_hours * low}) for r in plain.feasible])]


def test_a_single_price_replaces_the_pinned_and_profile_price(tmp_path):
    raw = {**SCENARIO, "search": {**SCENARIO["search"], "gpu": "h100-sxm", "num_gpus": 64, "tp": 2, "pp": 1,
                                  PRICE_KEY: 1.25}}
    res = search(load_scenario(_write(tmp_path, raw)), base_dir=tmp_path)
    assert res.feasible
    for r in res.feasible:
        assert r.plan[PRICE_KEY] == 1.25 and r.cost_usd == r.gpu_hours * 1.25


@pytest.mark.parametrize("bad", [0, -2.0, 1e5, float("nan"), float("inf"), True, "2.5", [], [1.0, None]])
def test_bad_prices_are_one_line_errors(bad):
    with pytest.raises(ScenarioError) as exc:
        parse_space({PRICE_KEY: bad}, "search")
    assert "usd_per_gpu_hour" in str(exc.value) and "\n" not in str(exc.value)


def test_price_list_in_space_file_and_json(runs, tmp_path):
    """Through the CLI: a --space file lists prices; each JSON plan carries its price; CSV and table run."""
    path, _, _ = runs
    space = tmp_path / "space.yaml"
    space.write_text("tp: [2, 4]\npp: 1\ncp: 1\nmicro_batch_size: 1\nrecompute: selective\nzero_stage: 1\n"
                     "gpu: a100-sxm-80gb\nnum_gpus: 64\nusd_per_gpu_hour: [1.1, 2.2]\n")
    out = runner.invoke(app, ["search", str(path), "--space", str(space), "--format", "json", "--top", "10"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert d["evaluated"] == 2 * 2 * 2          # tp 2, 4 × sequence_parallel × 2 prices
    assert d["top"] and {r["plan"][PRICE_KEY] for r in d["top"]} == {1.1, 2.2}
    for r in d["top"]:
        assert r["cost_usd"] == r["gpu_hours"] * r["plan"][PRICE_KEY]
    for fmt in ("csv", "table"):
        out = runner.invoke(app, ["search", str(path), "--space", str(space), "--format", fmt])
        assert out.exit_code == 0, out.output


def test_schema_describes_the_price_key():
    field = SearchSpace.model_json_schema()["properties"][PRICE_KEY]
    assert "price" in field["description"]


# ---- the lazy table (column engines) ----------------------------------------------------------------------

@dataclass
class _Columns:
    """A minimal column table like costsim.search.fast.FeasibleTable: rows from numpy columns on read."""
    results: list

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i):
        return self.results[i]

    @property
    def cols(self) -> dict:
        return {f: np.array([getattr(r, f) for r in self.results]) for f in ("wall_clock_days", "gpu_hours",
                                                                              "cost_usd")}


def test_priced_table_equals_the_priced_list(runs):
    """A column table is priced lazily (PricedTable): the same rows, sort order and frontier as the list."""
    _, plain, _ = runs
    n, table, rej = with_prices(PRICES, plain.evaluated, _Columns(plain.feasible), dict(plain.rejected))
    _, listed, rej2 = with_prices(PRICES, plain.evaluated, list(plain.feasible), dict(plain.rejected))
    assert isinstance(table, PricedTable) and rej == rej2 and n == len(PRICES) * plain.evaluated
    assert len(table) == len(listed) and list(table) == listed and table[-1] == listed[-1]
    assert table[1:4] == listed[1:4] and table.rows([0, 5]) == [listed[0], listed[5]]
    assert np.array_equal(table.cols["cost_usd"], [r.cost_usd for r in listed])
    for objective, key in (("cost", lambda r: (r.cost_usd, r.wall_clock_days)),
                           ("time", lambda r: (r.wall_clock_days, r.cost_usd))):
        assert table.rows(table.order(objective)) == sorted(listed, key=key)
    assert table.rows(table.pareto_indices()) == pareto_front(listed)
    with pytest.raises(IndexError):
        table[len(table)]


def test_no_price_listed_changes_nothing(runs):
    _, plain, _ = runs
    feasible = list(plain.feasible)
    assert with_prices([None], 7, feasible, {"memory": 3}) == (7, feasible, {"memory": 3})


def test_both_engines_price_alike(runs):
    """The column engine's table (priced lazily) and the per-plan engine's list (priced eagerly) give the same
    priced plans, counts, top and frontier."""
    import inspect
    if "engine" not in inspect.signature(search).parameters:
        pytest.skip("one engine only")
    path, _, _ = runs
    sc = load_scenario(path)
    fast, exact = (search(sc, base_dir=path.parent, top=5, engine=e) for e in ("fast", "exact"))
    assert isinstance(fast.feasible, PricedTable) and isinstance(exact.feasible, list)
    assert (fast.evaluated, fast.rejected, len(fast.feasible)) == (exact.evaluated, exact.rejected,
                                                                   len(exact.feasible))
    for a, b in zip(fast.feasible, exact.feasible):          # enumeration order: plan by plan
        assert a.plan == b.plan
        assert a.cost_usd == pytest.approx(b.cost_usd, rel=1e-9, abs=0)
    # ranked lists by value (plans of equal cost may swap places between engines that round differently)
    for a, b in ((fast.top, exact.top), (fast.pareto, exact.pareto)):
        assert [r.cost_usd for r in a] == pytest.approx([r.cost_usd for r in b], rel=1e-9, abs=0)
        assert [r.plan[PRICE_KEY] for r in a] == [r.plan[PRICE_KEY] for r in b]

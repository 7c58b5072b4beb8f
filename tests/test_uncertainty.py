"""The p10–p90 band of the model's own error: computed from held-out errors, stored in fitted.json, shown on
every estimate (JSON keys beside each figure, per phase and in total), combined with --simulate."""
import json
import math
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from typer.testing import CliRunner

from costsim import uncertainty
from costsim.cli import app
from costsim.efficiency import fitted_record

ROOT = Path(__file__).resolve().parent.parent
V3 = str(ROOT / "scenarios" / "deepseek-v3.yaml")
GPT3 = str(ROOT / "scenarios" / "gpt3-175b-h100.yaml")
runner = CliRunner()
FIGURES = ("step_time_s", "gpu_hours", "wall_clock_days", "cost_usd")


def _row(group, metric, published, cv, precision="bf16", fitted_on=True):
    result = NS(group=group, metric=metric, published=published, fitted_on=fitted_on)
    return NS(result=result, cv_predicted=cv), NS(scenario={"model": {}, "phases": [{"precision": precision}]})


def _band(pairs):
    rows, cases = zip(*pairs)
    return uncertainty.error_band(list(rows), list(cases))


def test_time_and_rate_errors_point_the_same_way():
    # a step time predicted 10% long and a throughput predicted 10% low are the same error in time
    t = _band([_row("a", "step time (s)", 1.0, 1.1)])["regimes"]["all"]
    r = _band([_row("a", "tokens/s per GPU", 1.1, 1.0)])["regimes"]["all"]
    assert t["log_error_quantiles"] == pytest.approx(r["log_error_quantiles"], abs=1e-4)
    # the estimate runs long, so the truth is shorter: both factors below 1
    assert t["p10"] == pytest.approx(1 / 1.1, abs=1e-3) and t["p90"] == pytest.approx(1 / 1.1, abs=1e-3)


def test_every_source_weighs_the_same_and_duplicates_are_left_out():
    many = [_row("big", "step time (s)", 1.0, 1.0) for _ in range(99)]
    one = [_row("small", "step time (s)", 1.0, 2.0)]
    dup = [_row("small", "step time (s)", 1.0, 100.0, fitted_on=False), _row("x", "step time (s)", 1.0, math.nan)]
    r = _band(many + one + dup)["regimes"]["all"]
    assert r["cases"] == 100 and r["sources"] == 2
    # half the weight is on the one-row source: the upper quantiles of the time error are log 2
    assert r["log_error_quantiles"][-1] == pytest.approx(math.log(2), abs=1e-3)
    assert r["log_error_quantiles"][0] == pytest.approx(0.0, abs=1e-3)


def test_a_regime_needs_enough_cases_and_sources():
    rows = [_row(f"s{i % 4}", "step time (s)", 1.0, 1.0 + i / 100) for i in range(40)]
    rows += [_row("f", "step time (s)", 1.0, 1.0, precision="fp8") for _ in range(5)]
    band = _band(rows)
    assert set(band["regimes"]) == {"all", "bf16", "dense"} and band["too_few"]["fp8"] == {"cases": 5, "sources": 1}
    assert uncertainty.regime_for(band, "fp8") == "all" and uncertainty.regime_for(band, "bf16") == "bf16"


def test_committed_band_is_the_held_out_one():
    band = fitted_record()["error_band"]
    assert {"all", "bf16", "fp8"} <= set(band["regimes"])
    for r in band["regimes"].values():
        assert 0.7 < r["p10"] < 1.0 < r["p90"] < 1.4
        assert r["log_error_quantiles"] == sorted(r["log_error_quantiles"])
        assert r["p10"] == pytest.approx(math.exp(-r["log_error_quantiles"][band["quantiles"].index(0.9)]), abs=1e-3)
    assert band["regimes"]["all"]["cases"] >= 200


def test_band_recomputes_from_fitted_json_without_refitting():
    # what `python -m costsim.uncertainty` (or `costsim validate --fit`) writes matches the committed band;
    # a change to the cost model moves the held-out errors a little: rerun it when this fails
    fresh, committed = uncertainty.compute_band(), fitted_record()["error_band"]
    assert set(fresh["regimes"]) == set(committed["regimes"])
    for name, r in fresh["regimes"].items():
        assert r["p10"] == pytest.approx(committed["regimes"][name]["p10"], abs=0.02), name
        assert r["p90"] == pytest.approx(committed["regimes"][name]["p90"], abs=0.02), name


def _json(*args):
    res = runner.invoke(app, ["estimate", *args, "--format", "json"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_estimate_json_has_the_band_beside_each_figure():
    d = _json(V3)
    band = fitted_record()["error_band"]
    for p in d["phases"]:
        for k in FIGURES[1:]:
            assert p[f"{k}_p10"] <= p[k] <= p[f"{k}_p90"]
        if p["reported"]:
            assert p["gpu_hours_p10"] == p["gpu_hours_p90"] == p["gpu_hours"] and p["step_time_s_p10"] is None
        else:
            f = band["regimes"][d["error_band"]["by_phase"][p["name"]]["regime"]]
            assert p["step_time_s_p10"] == pytest.approx(p["step_time_s"] * f["p10"])
            assert p["cost_usd_p90"] == pytest.approx(p["cost_usd"] * f["p90"])
    for k in ("gpu_hours", "wall_clock_days", "cost_usd"):
        assert d["total"][f"{k}_p10"] == pytest.approx(sum(p[f"{k}_p10"] for p in d["phases"]))
        assert d["total"][f"{k}_p90"] == pytest.approx(sum(p[f"{k}_p90"] for p in d["phases"]))
    assert d["error_band"]["by_phase"]["pre-training"]["regime"] == "fp8"   # DeepSeek-V3 pre-trains in FP8


def test_table_shows_the_band():
    res = runner.invoke(app, ["estimate", GPT3], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert "p10–p90" in res.stdout and "held-out" in res.stdout


def test_simulate_combines_failures_with_the_model_error():
    d = _json(GPT3, "--simulate", "--replicates", "4", "--seed", "1")
    sim, both = d["simulation"], d["simulation"]["with_model_error"]
    # the model's error is much wider than the failures' spread, and contains it
    assert both["gpu_hours"]["p10"] < sim["gpu_hours"]["p10"] <= sim["gpu_hours"]["p90"] < both["gpu_hours"]["p90"]
    assert both["cost_usd"]["p90"] == pytest.approx(both["gpu_hours_with_reported_phases"]["p90"] * d["usd_per_gpu_hour"])


def test_combine_with_a_neutral_band_is_the_monte_carlo():
    band = {"quantiles": [0.5], "regimes": {"all": {"log_error_quantiles": [0.0]}}}
    assert uncertainty.combine([1.0, 2.0, 3.0], [(1.0, "bf16")], band) == pytest.approx((1.2, 2.8))
    assert uncertainty.combine([1.0], [(1.0, "bf16")], None) is None


def test_refit_keeps_the_band_and_write_band_touches_only_it(tmp_path, monkeypatch):
    from costsim import fit
    from costsim.efficiency import load_fitted
    record = fitted_record()
    path = tmp_path / "fitted.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    monkeypatch.setattr(fit, "fitted_path", lambda: str(path))
    res = fit.FitResult(load_fitted(record), 0.5, 0.25, {g: load_fitted(r) for g, r in record["loso"].items()},
                        record["fit"]["cases"])
    fit.write_fitted(res)                      # other values: rewritten, the band carried over
    assert json.loads(path.read_text())["error_band"] == record["error_band"]
    new_band = {**record["error_band"], "min_cases": 31}
    assert uncertainty.write_band(new_band, str(path)) and not uncertainty.write_band(new_band, str(path))
    after = json.loads(path.read_text())
    assert after["error_band"] == new_band and after["loso"] == record["loso"]


# ---- comparing two plans: the error of a ratio of two estimates (`comparison`, p_beats_best) ----

def _pair_rows(spec):
    """spec: (source, metric, held-out log error in time, fitted_on) → rows whose time error is that value."""
    rows = []
    for group, metric, e, fitted_on in spec:
        rows.append(NS(result=NS(group=group, metric=metric, published=1.0, fitted_on=fitted_on),
                       cv_predicted=math.exp(e)))
    return rows


def test_comparison_pairs_runs_of_one_source_and_metric_only():
    spec = [("a", "step time (s)", 0.0, True), ("a", "step time (s)", 0.1, True), ("a", "step time (s)", 0.3, True),
            ("a", "tokens/s per GPU", -5.0, True),            # alone in its metric: no pair
            ("b", "step time (s)", 0.0, True), ("b", "step time (s)", 1.0, True),
            ("b", "step time (s)", 9.0, False),                # a derived duplicate: left out
            ("c", "step time (s)", 0.2, True)]                 # alone in its source: no pair
    rec = uncertainty.comparison(_pair_rows(spec))
    assert rec["pairs"] == 4 and rec["sources"] == 2
    q = rec["abs_log_diff_quantiles"]
    assert q == sorted(q) and min(q) >= 0.1 - 1e-9 and max(q) <= 1.0 + 1e-9
    # every source weighs the same: b's one pair (|d| = 1) holds half the weight, so the top half is 1.0
    assert q[rec["quantiles"].index(0.8)] == pytest.approx(1.0)
    assert q[rec["quantiles"].index(0.2)] < 0.31
    assert uncertainty.comparison(_pair_rows([("a", "step time (s)", 0.1, True)])) is None


def test_p_beats_best_is_half_the_tail_of_the_pair_errors():
    rec = {"quantiles": [0.5, 0.8, 0.99], "abs_log_diff_quantiles": [0.05, 0.15, 0.4]}
    assert uncertainty.p_beats_best(1.0, rec) == pytest.approx(0.5)
    assert uncertainty.p_beats_best(0.9, rec) == pytest.approx(0.5)        # never above a tie
    assert uncertainty.p_beats_best(math.exp(0.05), rec) == pytest.approx(0.25)
    assert uncertainty.p_beats_best(math.exp(0.15), rec) == pytest.approx(0.10)
    assert uncertainty.p_beats_best(100.0, rec) == pytest.approx(0.005)    # past the last quantile: a bound
    ps = [uncertainty.p_beats_best(1 + i / 100, rec) for i in range(60)]
    assert all(a >= b for a, b in zip(ps, ps[1:]))
    assert uncertainty.p_beats_best(1.1, None) is None


def test_p_beats_best_agrees_with_sampled_pairs():
    """Monte-Carlo twin: draw pair errors from the committed record's own distribution of |e_a − e_b| (inverse
    CDF), give each a random sign, and count how often a plan costed r × the best comes out cheaper."""
    import numpy as np
    rec = fitted_record()["error_band"]["comparison"]
    rng = np.random.default_rng(7)
    u = rng.uniform(0.0, 0.99, 400_000)
    mag = np.interp(u, [0.0, *rec["quantiles"]], [0.0, *rec["abs_log_diff_quantiles"]])
    d = mag * rng.choice([-1.0, 1.0], size=mag.size)
    top = rec["abs_log_diff_quantiles"][-1]
    for r in (1.0, 1.02, 1.05, 1.1, 1.2, 1.3):
        assert math.log(r) < top
        # the draws cover the first 99% of |e_a − e_b|; the last 1% lies beyond every r here, half of it above
        sampled = 0.99 * float(np.mean(d > math.log(r))) + 0.01 * 0.5
        assert uncertainty.p_beats_best(r, rec) == pytest.approx(sampled, abs=0.003), r


def test_committed_comparison_record():
    rec = fitted_record()["error_band"]["comparison"]
    assert rec["sources"] >= 3 and rec["pairs"] >= 100
    assert 0.01 < rec["median"] < 0.3
    assert rec["abs_log_diff_quantiles"] == sorted(rec["abs_log_diff_quantiles"])


def test_search_says_how_sure_its_ranking_is():
    res = runner.invoke(app, ["search", GPT3, "--top", "5", "--format", "json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    ps = [t["p_beats_best"] for t in d["top"]]
    assert ps[0] is None and all(0.0 <= p <= 0.5 for p in ps[1:])
    costs = [t["cost_usd"] for t in d["top"]]
    record = fitted_record()["error_band"]["comparison"]
    for c, p in zip(costs[1:], ps[1:]):
        assert p == pytest.approx(uncertainty.p_beats_best(c / costs[0], record))
    assert d["comparison"]["pairs"] == record["pairs"]
    table = runner.invoke(app, ["search", GPT3, "--top", "5"], env={"COLUMNS": "200"})
    assert "beats #1" in table.output and "too close to call" in table.output
    pareto = json.loads(runner.invoke(app, ["search", GPT3, "--top", "3", "--objective", "pareto",
                                            "--format", "json"]).output)
    assert all(t["p_beats_best"] is None for t in pareto["top"])


def test_comparison_splits_gpu_types_and_reports_its_calibration():
    """Pairs on one GPU type make the record, pairs across types its `cross_gpu`; `calibration` counts how often
    the predicted order of a pair was in fact the other way (here: b predicted slower but published faster)."""
    def row(group, gpu, predicted, published):
        return (NS(result=NS(group=group, metric="step time (s)", published=published, fitted_on=True),
                   cv_predicted=predicted), NS(scenario={"cluster": {"gpu": gpu}}))
    pairs = [row("s", "h100", 1.0, 1.0), row("s", "h100", 1.1, 0.9),      # predicted slower, in fact faster
             row("s", "a100", 2.0, 2.0)]
    rows, cases = zip(*pairs)
    rec = uncertainty.comparison(list(rows), list(cases))
    assert rec["pairs"] == 1 and rec["cross_gpu"]["pairs"] == 2
    cal = rec["calibration"]
    assert cal["ordered_pairs"] == 1 and cal["flipped"] == 1.0
    assert cal["predicted"] == pytest.approx(uncertainty.p_beats_best(1.1, rec), abs=1e-4)
    assert rec["cross_gpu"]["calibration"]["flipped"] == 0.0


def test_the_same_run_at_another_price_is_no_contest(tmp_path):
    space = tmp_path / "price.yaml"
    space.write_text("tp: 8\npp: 2\nvirtual_stages: 4\nschedule: interleaved\nmicro_batch_size: 4\nzero_stage: 2\n"
                     "recompute: none\nsequence_parallel: true\nusd_per_gpu_hour: [2.0, 2.2]\n")
    d = json.loads(runner.invoke(app, ["search", GPT3, "--space", str(space), "--top", "2", "--format",
                                       "json"]).output)
    assert [t["p_beats_best"] for t in d["top"]] == [None, 0.0]
    t = json.loads(runner.invoke(app, ["search", GPT3, "--space", str(space), "--top", "2", "--format", "json",
                                       "--objective", "time"]).output)
    assert [x["p_beats_best"] for x in t["top"]] == [None, None]


def test_committed_calibration_is_close_overall():
    cal = fitted_record()["error_band"]["comparison"]["calibration"]
    assert abs(cal["flipped"] - cal["predicted"]) < 0.03
    assert sum(b["ordered_pairs"] for b in cal["by_margin"]) == cal["ordered_pairs"]

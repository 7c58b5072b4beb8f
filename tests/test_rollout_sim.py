"""The SimPy RL rollout simulator (costsim.sim.rollout) against its closed-form twin and a per-step brute force."""
import ast
import math
import time
from pathlib import Path

import numpy as np
import pytest

from costsim.rollout_lengths import LengthModel
from costsim.sim import rollout
from costsim.sim.rollout import (RolloutPool, RoundSpec, closed_form_round, rl_rounds, simulate_rl,
                                 simulate_round, tabulated_step_time, bilinear_step_time)


def linear(b, c):
    """Memory-bound decode: weights once per step, KV bytes ∝ batch × context (linear in context)."""
    return 0.02 + 0.001 * b + 1e-6 * b * c


def convex(b, c):
    """A quadratic context term (attention compute at long context): the midpoint rule is no longer exact."""
    return 0.02 + 0.001 * b + 1e-6 * b * c + 2e-10 * c * c


def roofline(b, c):
    """A kink: memory-bound floor, then compute-bound with batch (scalar-only: Python max)."""
    return max(0.03, 0.002 * b + 2e-6 * b * c)


def brute_force_round(pool, lengths, prompt):
    """One loop iteration per decode step: the active set, its mean context, refills FIFO after the step."""
    tps, cap, g = pool.tokens_per_step, pool.capacity, pool.gpus
    need = [max(1, math.ceil(x / tps - 1e-9)) for x in lengths]
    queue, active, t = list(range(len(lengths))), {}, 0.0

    def refill():
        nonlocal t
        while queue and len(active) < cap:
            active[queue.pop(0)] = 0
            t += pool.prefill_s_per_seq / g

    refill()
    while active:
        b = max(len(active), pool.replicas) / g
        t += pool.step_time(b, prompt + tps * float(np.mean(list(active.values()))))
        for i in list(active):
            active[i] += 1
            if active[i] >= need[i]:
                del active[i]
        refill()
    return t


CASES = [  # gpus, max batch per GPU, sequences, tokens per step, prefill s, gpus per replica
    (4, 4, 50, 1.0, 0.0, 1), (4, 4, 10, 1.0, 0.1, 1), (2, 8, 200, 2.0, 0.05, 1), (8, 2, 300, 1.5, 0.0, 1),
    (8, 4, 120, 1.0, 0.0, 4), (16, 1, 40, 1.0, 0.02, 8)]


def quadratic(b, c):
    """Pure quadratic in context from a zero prompt: the midpoint rule alone would be ~25% short here."""
    return 1e-3 + 1e-9 * b * c * c


@pytest.mark.parametrize("step_time", [linear, convex, quadratic, roofline], ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("prompt", [0.0, 500.0])
def test_brute_force_twin_within_1_percent(step_time, case, prompt):
    g, mb, n, tps, pre, gpr = case
    pool = RolloutPool(g, mb, step_time, tps, pre, gpr)
    lengths = LengthModel("lognormal", 300.0, 0.8).sample(np.random.default_rng(n), n, 0, 2000)
    got = simulate_round(pool, lengths, prompt).seconds
    want = brute_force_round(pool, lengths, prompt)
    assert got == pytest.approx(want, rel=0.01)
    if step_time is not roofline:   # the three-point rule is exact up to quadratic in context
        assert got == pytest.approx(want, rel=1e-9)
    else:                           # a kink inside a segment: measured ≤ 1.5e-5
        assert got == pytest.approx(want, rel=1e-4)


def test_tabulated_step_time_is_exact_for_bilinear_and_close_for_a_roofline():
    grid_b, grid_c = np.linspace(0.5, 40, 80), np.linspace(0, 70000, 141)
    lin = tabulated_step_time(lambda b, c: float(linear(b, c)), grid_b, grid_c)
    b, c = np.array([0.5, 3.3, 17.0, 40.0]), np.array([0.0, 1234.5, 33333.0, 70000.0])
    assert np.allclose(lin(b, c), linear(b, c), rtol=1e-12)
    pool = RolloutPool(8, 4, roofline)
    x = LengthModel("lognormal", 500.0, 1.0).sample(np.random.default_rng(4), 300, 0, 8000)
    exact = simulate_round(pool, x, 200.0).seconds
    tab = RolloutPool(8, 4, tabulated_step_time(roofline, grid_b, grid_c))
    assert simulate_round(tab, x, 200.0).seconds == pytest.approx(exact, rel=0.01)
    with pytest.raises(ValueError):
        tabulated_step_time(linear, [1.0], [0.0, 1.0])


def test_bilinear_table_broadcasts_clamps_and_takes_single_point_axes():
    f = bilinear_step_time([1, 2, 4], [100, 1000], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert np.allclose(f(np.array([1.5, 0.1, 9.0, 3.0]), np.array([550.0, 50.0, 5000.0, 100.0])),
                       [2.5, 1.0, 6.0, 4.0])
    g = bilinear_step_time([8], [100, 200], [[1.0, 3.0]])
    assert np.allclose(g(np.array([1.0, 50.0]), np.array([150.0, 500.0])), [2.0, 3.0])
    assert bilinear_step_time([8], [100], [[0.5]])(np.array([3.0]), np.array([7.0]))[0] == 0.5
    with pytest.raises(ValueError):
        bilinear_step_time([1, 2], [1], [[1.0, 2.0]])
    with pytest.raises(ValueError):
        bilinear_step_time([2, 1], [1], [[1.0], [2.0]])


@pytest.mark.parametrize("n", [1, 7, 64, 65, 200, 1000])
@pytest.mark.parametrize("tps, prefill", [(1.0, 0.0), (1.7, 0.3)])
def test_constant_lengths_equal_the_closed_form(n, tps, prefill):
    pool = RolloutPool(16, 4, convex, tps, prefill)          # 64 slots: 1, 2 or 16 waves
    for length in (1.0, 999.0, 4096.0):
        sim = simulate_round(pool, np.full(n, length), 700.0)
        assert sim.seconds == pytest.approx(closed_form_round(pool, n, length, 1e9, 700.0), rel=1e-12)
        assert sim.decode_steps == math.ceil(n / 64) * math.ceil(length / tps - 1e-9)


def test_closed_form_truncates_at_the_limit():
    pool = RolloutPool(4, 8, linear)
    assert closed_form_round(pool, 10, 5000.0, 2048, 0.0) == pytest.approx(
        simulate_round(pool, np.full(10, 2048.0), 0.0).seconds, rel=1e-12)


@pytest.mark.parametrize("tps", [1.0, 3.0])
def test_within_capacity_the_round_is_the_longest_responses_steps(tps):
    const = 0.05
    pool = RolloutPool(64, 32, lambda b, c: const + 0 * b, tps)
    x = LengthModel("lognormal", 2000.0, 1.0).sample(np.random.default_rng(0), 2048, 0, 32768)
    r = simulate_round(pool, x, 100.0)
    assert r.seconds == pytest.approx(math.ceil(x.max() / tps - 1e-9) * const, rel=1e-12)
    assert r.longest == x.max() and r.tokens == pytest.approx(x.sum())
    # every slot busy until the shortest response ends, then the tail
    assert r.full_s == pytest.approx(math.ceil(x.min() / tps - 1e-9) * const, rel=1e-9)


def test_idle_fraction_rises_with_sigma():
    pool = RolloutPool(64, 16, linear)                      # 1,024 slots, 4,096 sequences
    idle = []
    for sigma in (0.1, 0.4, 0.8, 1.2):
        m = LengthModel("lognormal", 2000.0, sigma)
        rs = [simulate_round(pool, m.sample(np.random.default_rng(s), 4096, 0, 32768), 300.0) for s in range(5)]
        idle.append(np.mean([r.idle_fraction for r in rs]))
    assert all(a < b for a, b in zip(idle, idle[1:])), idle
    assert idle[0] < 0.1 and idle[-1] > 0.4


def test_accounting_closes():
    pool = RolloutPool(8, 4, convex, 1.0, 0.05)
    x = LengthModel("lognormal", 500.0, 1.0).sample(np.random.default_rng(2), 300, 0, 8000)
    r = simulate_round(pool, x, 200.0)
    assert 0 < r.busy_gpu_s <= 8 * r.seconds and r.idle_fraction == pytest.approx(1 - r.busy_gpu_s / (8 * r.seconds))
    assert 0 < r.underfilled_s < r.seconds and r.full_s + r.underfilled_s == pytest.approx(r.seconds)
    assert r.prefill_s == pytest.approx(300 * 0.05 / 8)


def test_step_time_is_called_on_arrays_when_it_broadcasts_and_scalar_otherwise():
    calls = []

    def counting(b, c):
        calls.append(np.shape(b))
        return linear(b, c)

    pool = RolloutPool(8, 4, counting)
    x = LengthModel("lognormal", 500.0, 1.0).sample(np.random.default_rng(2), 300, 0, 8000)
    vec = simulate_round(pool, x, 200.0)
    assert len(calls) == 1 and vec.segments <= calls[0][0] <= 3 * vec.segments
    scalar = simulate_round(RolloutPool(8, 4, lambda b, c: float(linear(b, c))), x, 200.0)
    assert scalar.seconds == pytest.approx(vec.seconds, rel=1e-12)


@pytest.mark.parametrize("n, sigma, gpr", [(512, 0.6, 1), (1024, 0.6, 1), (4096, 0.6, 1), (4096, 1.0, 1),
                                           (1024, 1.2, 1), (8192, 0.3, 1), (2048, 0.8, 8)])
def test_closed_form_tracks_the_simulation_for_distributions(n, sigma, gpr):
    pool = RolloutPool(64, 16, linear, gpus_per_replica=gpr)
    m = LengthModel("lognormal", 2000.0, sigma)
    rng = np.random.default_rng(3)
    sim = np.mean([simulate_round(pool, m.sample(rng, n, 0, 16384), 300.0).seconds for _ in range(20)])
    assert closed_form_round(pool, n, m, 16384, 300.0) == pytest.approx(sim, rel=0.05)


def test_closed_form_shares_no_code_with_the_simulation():
    tree = ast.parse(Path(rollout.__file__).read_text())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "closed_form_round")
    called = {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not called & {"simulate_round", "_entry_steps", "_eval_step_time", "_sorted_unique"}


# -- the RL loop ---------------------------------------------------------------------------------------------

R1_LIKE = LengthModel("lognormal", [(0, 1000), (8200, 9000), (10400, 12000)], 1.0)


def _rounds(n=40, seqs=512):
    return rl_rounds(n, 16, seqs, 400, R1_LIKE, [(0, 32768), (320, 65536)])


def test_sync_is_generation_plus_update_and_async_is_no_slower():
    pool = RolloutPool(32, 8, linear)
    upd = lambda k, tokens: 2e-4 * tokens           # noqa: E731
    s = simulate_rl(_rounds(), pool, upd, async_overlap=False, seed=1)
    a = simulate_rl(_rounds(), pool, upd, async_overlap=True, seed=1)
    assert s.seconds == pytest.approx(s.generation_s + s.update_s, rel=1e-12)
    assert a.generation_s == s.generation_s and a.update_s == s.update_s      # same draws, same rounds
    assert max(a.generation_s, a.update_s) <= a.seconds <= s.seconds
    assert a.seconds < s.seconds
    assert s.idle_s == pytest.approx(sum(r.seconds * r.idle_fraction for r in s.rounds))
    assert 0 < s.idle_fraction < 1 and s.gen_wait_s == 0 and s.update_wait_s == 0


@pytest.mark.parametrize("gen_s, upd_s", [(10.0, 4.0), (4.0, 10.0), (5.0, 5.0)])
def test_async_pipeline_closed_form(gen_s, upd_s):
    # constant rounds: T_async = G + (n − 1)·max(G, U) + U; T_sync = n·(G + U)
    pool = RolloutPool(4, 4, lambda b, c: gen_s / 100 + 0 * b)
    rounds = [RoundSpec(16, 0.0, 1e9, sample_lengths=(100.0,) * 16) for _ in range(12)]
    a = simulate_rl(rounds, pool, [upd_s] * 12, async_overlap=True, seed=0)
    s = simulate_rl(rounds, pool, [upd_s] * 12, async_overlap=False, seed=0)
    assert a.seconds == pytest.approx(gen_s + 11 * max(gen_s, upd_s) + upd_s)
    assert s.seconds == pytest.approx(12 * (gen_s + upd_s))
    # one-step off-policy: generation k + 1 never starts before update k − 1 ended
    assert np.all(a.gen_start_s[2:] >= a.update_end_s[:-2] - 1e-9)


def test_deterministic_per_seed():
    pool = RolloutPool(32, 8, linear)
    a = simulate_rl(_rounds(), pool, lambda k, t: 1.0, False, seed=11)
    b = simulate_rl(_rounds(), pool, lambda k, t: 1.0, False, seed=11)
    c = simulate_rl(_rounds(), pool, lambda k, t: 1.0, False, seed=12)
    assert a.seconds == b.seconds and np.array_equal(a.round_gen_s, b.round_gen_s) and a.rounds == b.rounds
    assert a.seconds != c.seconds


def test_update_time_gets_each_rounds_tokens():
    seen = []
    r = simulate_rl(_rounds(5), RolloutPool(32, 8, linear), lambda k, t: seen.append((k, t)) or 0.0, False, 3)
    assert seen == [(k, rr.tokens) for k, rr in enumerate(r.rounds)]


def test_r1_zero_schedule_limits_and_truncation():
    rounds = rl_rounds(650, 16, 8192, 500, R1_LIKE, [(0, 32768), (8200, 65536)])
    assert len(rounds) == 650 and rounds[512].step == 8192 and rounds[512].max_tokens == 32768
    assert rounds[513].max_tokens == 65536 and rounds[-1].step == 10384


def test_full_r1_zero_simulation_under_5_s():
    # 650 rounds × 8,192 sequences on 512 GPUs (the performance target; scripts/bench_rollout.py)
    rounds = rl_rounds(650, 16, 8192, 500, R1_LIKE, [(0, 32768), (8200, 65536)])
    t0 = time.perf_counter()
    r = simulate_rl(rounds, RolloutPool(512, 32, linear), lambda k, t: 1e-4 * t, True, seed=0)
    assert time.perf_counter() - t0 < 5.0
    assert len(r.rounds) == 650 and r.round_longest[-1] > 32768     # the 65,536 limit is in force at the end
    assert sum(x.truncated for x in r.rounds) > 0


@pytest.mark.parametrize("kw", [dict(gpus=0, max_batch_per_gpu=4), dict(gpus=4, max_batch_per_gpu=0),
                                dict(gpus=4, max_batch_per_gpu=0.1), dict(gpus=4, max_batch_per_gpu=4,
                                                                          tokens_per_step=0),
                                dict(gpus=4, max_batch_per_gpu=4, gpus_per_replica=8)])
def test_bad_pools_are_refused(kw):
    with pytest.raises(ValueError):
        RolloutPool(step_time=linear, **kw)


def test_bad_inputs_are_refused():
    pool = RolloutPool(4, 4, linear)
    with pytest.raises(ValueError):
        simulate_round(pool, np.array([]), 0.0)
    with pytest.raises(ValueError):
        simulate_round(pool, np.array([1.0, -2.0]), 0.0)
    with pytest.raises(ValueError, match="step_time"):
        simulate_round(RolloutPool(4, 4, lambda b, c: 0.0 * b), np.array([5.0]), 0.0)
    with pytest.raises(ValueError, match="update_s"):
        simulate_rl(_rounds(3), pool, [1.0, 2.0], False, 0)

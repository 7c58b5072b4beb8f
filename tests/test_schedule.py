"""Closed-form pipeline bubbles and exposed communication against the published formulas (formulas.md).

F, B, W per micro-batch and stage: F forward, B the *full* backward (input grad b + weight grad w, as the
DeepSeek-V3 report's Table 2 counts it), W the weight-gradient part of B; p stages, v chunks per device.
"""
from __future__ import annotations

import itertools

import pytest

from costsim.schedule import (Overlap, RankTimes, StageCost, exposed, micro_batch_time, pipeline_bubble,
                              pipelined, rank_times, step_breakdown)

REL = 1e-12
F, b, W = 1.13, 1.51, 0.48          # DeepSeek-V3 (ISCA '25 Table 4): 1F 1.13 s; 1B 1.99 s = b + W; 1W 0.48 s
B = b + W


def uniform(p: int, f: float = F, b_: float = b, w: float = W, pair: float = 0.0) -> list[RankTimes]:
    return [RankTimes(f, b_, w, 0.0, 0.0, pair) for _ in range(p)]


# ---- bubbles, uniform stages ---------------------------------------------------------------------------

@pytest.mark.parametrize("p", [2, 4, 8, 16, 64])
def test_1f1b_bubble(p):
    assert pipeline_bubble(uniform(p), "1f1b", 1) == pytest.approx((p - 1) * (F + B), rel=REL)


@pytest.mark.parametrize("p, m", [(4, 8), (8, 32), (16, 128)])
def test_1f1b_bubble_fraction_is_p_minus_1_over_m(p, m):
    """Narayanan et al. 2021: bubble / ideal = (p−1)/m."""
    assert pipeline_bubble(uniform(p), "1f1b", 1) / (m * (F + B)) == pytest.approx((p - 1) / m, rel=REL)


@pytest.mark.parametrize("p, v", list(itertools.product([2, 4, 8, 16], [1, 2, 3, 4])))
def test_interleaved_bubble(p, v):
    assert pipeline_bubble(uniform(p), "interleaved", v) == pytest.approx((p - 1) * (F + B) / v, rel=REL)


@pytest.mark.parametrize("p", [2, 4, 8, 16])
def test_zero_bubble_zb1p(p):
    assert pipeline_bubble(uniform(p), "zero-bubble", 1) == pytest.approx((p - 1) * (F + B - 2 * W), rel=REL)


@pytest.mark.parametrize("p", [2, 4, 8, 16, 32])
def test_dualpipe_bubble(p):
    pair = 2.9                      # F&B: one overlapped forward + backward chunk pair
    got = pipeline_bubble(uniform(p, pair=pair), "dualpipe", 1)
    assert got == pytest.approx((p / 2 - 1) * (pair + B - 3 * W), rel=REL)


def test_dualpipe_bubble_from_stage_costs():
    """Through rank_times: with nothing to hide the pair is F + B, and the bubble is (p/2−1)(F + 2B − 3W)."""
    ranks = [rank_times(StageCost(f=F, b=b, w=W), "dualpipe", Overlap()) for _ in range(16)]
    assert ranks[0].pair == pytest.approx(F + B, rel=REL)
    assert pipeline_bubble(ranks, "dualpipe", 1) == pytest.approx(7 * (F + B + B - 3 * W), rel=REL)


@pytest.mark.parametrize("schedule", ["1f1b", "interleaved", "zero-bubble", "dualpipe"])
def test_one_stage_has_no_bubble(schedule):
    assert pipeline_bubble(uniform(1, pair=3.0), schedule, 2) == 0.0


# ---- unequal stages: fill and drain = Σ − max ------------------------------------------------------------

UNEQUAL = [RankTimes(1.0, 2.0, 0.5, 0.1, 0.2), RankTimes(1.5, 2.5, 0.7, 0.0, 0.0),
           RankTimes(0.8, 1.9, 0.4, 0.3, 0.0), RankTimes(1.1, 2.2, 0.6, 0.0, 0.4)]


def test_unequal_stages_sum_minus_max():
    x = [r.f + r.b + r.w for r in UNEQUAL]
    assert pipeline_bubble(UNEQUAL, "1f1b", 1) == pytest.approx(sum(x) - max(x), rel=REL)
    assert pipeline_bubble(UNEQUAL, "interleaved", 2) == pytest.approx((sum(x) - max(x)) / 2, rel=REL)
    z = [r.f + (r.b + r.w) - 2 * r.w for r in UNEQUAL]
    assert pipeline_bubble(UNEQUAL, "zero-bubble", 1) == pytest.approx(sum(z) - max(z), rel=REL)


def test_exposed_comm_counts_in_the_bubble():
    """RankTimes.f / .b include exposed communication, so the fill-and-drain sees it."""
    quiet = uniform(4)
    talking = [RankTimes(F, b, W, 0.2, 0.3) for _ in range(4)]
    assert pipeline_bubble(talking, "1f1b", 1) == pytest.approx(pipeline_bubble(quiet, "1f1b", 1) + 3 * 0.5, rel=REL)


# ---- exposed(): how much communication stays on the critical path ----------------------------------------

@pytest.mark.parametrize("comm, under", [(0.0, 1.0), (0.3, 1.0), (1.0, 1.0), (2.5, 1.0), (1.0, 0.0)])
def test_exposed_semantics(comm, under):
    assert exposed(comm, under, 0.0) == pytest.approx(max(0.0, comm - under), abs=1e-15)   # free overlap
    slowed = exposed(comm, under, 0.2)     # the overlapped part slows compute by 20 %
    # the pair ends at max(comm, under + 0.2·min(comm, under))
    assert slowed == pytest.approx(max(comm, under + 0.2 * min(comm, under)) - under, abs=1e-15)


def test_pipelined_first_piece_is_exposed():
    """8 layers, 0.8 s of gathers beside 1.6 s of compute: one 0.1 s gather exposed, the other 0.7 s hide
    behind 1.4 s of compute (costing 0.7 × slowdown)."""
    assert pipelined(0.8, 1.6, 8, 0.0) == pytest.approx(0.1, rel=REL)
    assert pipelined(0.8, 1.6, 8, 0.1) == pytest.approx(0.1 + 0.07, rel=REL)
    # comm-bound: 8 × 0.3 s of gathers beside 8 × 0.1 s of compute → 0.3 + (2.1 − 0.7), slowdown off the path
    assert pipelined(2.4, 0.8, 8, 0.1) == pytest.approx(0.3 + 1.4, rel=REL)
    assert pipelined(2.4, 0.8, 8, 0.0) == pytest.approx(0.3 + 1.4, rel=REL)
    assert pipelined(0.8, 1.6, 1, 0.1) == 0.8                       # one piece: nothing to hide behind


def test_rank_times_overlap_classes():
    """TP hides behind the pass's GEMMs (not attention) only with tp_comm_overlap; CP behind attention;
    ZeRO-3 layer by layer; PP never."""
    s = StageCost(f=1.0, b=1.5, w=0.5, attn_f=0.2, attn_b=0.4,
                  comm={("F", "tp"): 0.3, ("B", "tp"): 0.6, ("F", "cp"): 0.5, ("B", "cp"): 0.3,
                        ("F", "pp"): 0.05, ("B", "pp"): 0.05, ("F", "zero"): 0.4})
    off = rank_times(s, "1f1b", Overlap(tp=False, zero_pieces=4))
    # tp 0.3 exposed; cp 0.5 beside 0.2 of attention → 0.3; pp 0.05; zero: 0.1 first layer, 0.3 beside 0.75
    assert off.exposed_f == pytest.approx(0.3 + 0.3 + 0.05 + 0.1, rel=REL)
    assert off.exposed_b == pytest.approx(0.6 + 0.0 + 0.05, rel=REL)
    on = rank_times(s, "1f1b", Overlap(tp=True, zero_pieces=4))
    assert on.exposed_f == pytest.approx(0.0 + 0.3 + 0.05 + 0.1, rel=REL)      # 0.3 of TP beside 0.8 of GEMMs
    assert on.exposed_b == pytest.approx(0.05, rel=REL)
    slow = rank_times(s, "1f1b", Overlap(tp=True, slowdown=0.1, zero_pieces=4))
    # TP 0.3 beside 0.8 of GEMMs: 0.03; CP 0.5 beside 0.2: max(0.3, 0.02); zero: 0.1 + 0.03 beside 0.75
    assert slow.exposed_f == pytest.approx(0.1 * 0.3 + 0.3 + 0.05 + (0.1 + 0.1 * 0.3), rel=REL)


# ---- EP all-to-all: hidden by DualPipe's paired chunks, exposed otherwise ---------------------------------

def ep_stage(a2a_f: float, a2a_b: float) -> StageCost:
    return StageCost(f=F, b=b, w=W, comm={("F", "ep"): a2a_f, ("B", "ep"): a2a_b})


def test_dualpipe_hides_ep_all_to_all_up_to_the_compute():
    small = rank_times(ep_stage(0.6, 0.9), "dualpipe", Overlap())
    assert small.exposed_f == small.exposed_b == 0.0
    assert small.pair == pytest.approx(F + B, rel=REL)                 # compute ≥ comm: fully hidden
    assert small.steady == small.pair
    big = rank_times(ep_stage(2.0, 2.5), "dualpipe", Overlap())
    assert big.pair == pytest.approx(F + B + (4.5 - (F + B)), rel=REL)  # the excess is exposed
    slowed = rank_times(ep_stage(0.6, 0.9), "dualpipe", Overlap(slowdown=0.25))
    assert slowed.pair == pytest.approx(F + B + 0.25 * 1.5, rel=REL)


@pytest.mark.parametrize("schedule", ["1f1b", "interleaved", "zero-bubble"])
def test_other_schedules_expose_all_ep_comm(schedule):
    r = rank_times(ep_stage(0.6, 0.9), schedule, Overlap(tp=True))
    assert r.exposed_f == pytest.approx(0.6, rel=REL) and r.exposed_b == pytest.approx(0.9, rel=REL)
    assert r.pair == 0.0
    assert r.steady == pytest.approx(F + B + 1.5, rel=REL)


def test_ep_comm_overlap_hides_behind_the_pass():
    """Megatron-Core EP overlap: each pass's all-to-all runs beside that pass's compute of another micro-batch."""
    r = rank_times(ep_stage(0.6, 0.9), "1f1b", Overlap(ep=True, slowdown=0.1))
    assert r.exposed_f == pytest.approx(0.1 * 0.6, rel=REL)          # 0.6 s beside F = 1.13 s
    assert r.exposed_b == pytest.approx(0.1 * 0.9, rel=REL)          # 0.9 s beside b + W = 1.99 s


def test_dualpipe_unpaired_chunks_pay_their_all_to_all():
    r = rank_times(ep_stage(0.6, 0.9), "dualpipe", Overlap())
    m, k = 20, 17
    assert micro_batch_time(r, m, 0) == pytest.approx(m * r.pair, rel=REL)
    assert micro_batch_time(r, m, k) == pytest.approx((m - k) * r.pair + k * (F + B + 1.5), rel=REL)
    plain = rank_times(ep_stage(0.6, 0.9), "1f1b", Overlap())
    assert micro_batch_time(plain, m, k) == pytest.approx(m * plain.steady, rel=REL)   # only DualPipe pairs


# ---- step breakdown -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, v, unpaired", [("1f1b", 1, 0), ("interleaved", 2, 0), ("zero-bubble", 1, 0),
                                                   ("dualpipe", 1, 0), ("dualpipe", 1, 5)])
def test_step_breakdown_sums_to_total(schedule, v, unpaired):
    costs = [ep_stage(0.5 + 0.1 * i, 0.7) + StageCost(comm={("F", "tp"): 0.1 * i}) for i in range(4)]
    ranks = [rank_times(c, schedule, Overlap(slowdown=0.1)) for c in costs]
    m, dp, opt = 24, [0.3, 0.1, 0.0, 0.2], [0.29, 0.29, 0.31, 0.28]
    bd = step_breakdown(ranks, schedule, v, m, dp, opt, unpaired)
    parts = bd.as_dict()
    assert bd.total == pytest.approx(sum(parts.values()), rel=REL)
    per_rank = [micro_batch_time(r, m, unpaired) + d + o for r, d, o in zip(ranks, dp, opt)]
    assert bd.critical_rank == max(range(4), key=per_rank.__getitem__)
    assert bd.total == pytest.approx(max(per_rank) + pipeline_bubble(ranks, schedule, v), rel=REL)
    r = ranks[bd.critical_rank]
    assert bd.forward == pytest.approx(m * r.f_compute, rel=REL)
    assert bd.backward == pytest.approx(m * (r.b_compute + r.w), rel=REL)
    assert bd.exposed_comm >= 0.0


def test_step_breakdown_uniform_1f1b_matches_textbook():
    """m micro-batches of F + B plus (p−1)(F + B), nothing else when there is no communication."""
    p, m = 8, 32
    bd = step_breakdown(uniform(p), "1f1b", 1, m, [0.0] * p, [0.0] * p)
    assert bd.total == pytest.approx((m + p - 1) * (F + B), rel=REL)
    assert bd.exposed_comm == pytest.approx(0.0, abs=1e-12)


def test_async_pp_sends_hide_in_steady_state_but_delay_the_fill():
    """Interleaved/DualPipe issue PP sends asynchronously: 0.05 + 0.05 s of sends beside compute cost only the
    slowdown in steady state, but each of the p−1 hops of the fill and drain still waits for them."""
    s = StageCost(f=F, b=b, w=W, comm={("F", "pp"): 0.05, ("B", "pp"): 0.05})
    sync = rank_times(s, "1f1b", Overlap(pp=False))
    async_ = rank_times(s, "interleaved", Overlap(pp=True, slowdown=0.1))
    assert sync.exposed_f == pytest.approx(0.05, rel=REL) and sync.sends == 0.0
    assert async_.exposed_f == pytest.approx(0.1 * 0.05, rel=REL) and async_.sends == pytest.approx(0.1, rel=REL)
    p, v = 4, 2
    bubble = pipeline_bubble([async_] * p, "interleaved", v)
    assert bubble == pytest.approx((p - 1) * (F + B + 2 * 0.1 * 0.05 + 0.1) / v, rel=REL)


def test_dualpipe_unpaired_chunks_from_the_program():
    """deepseek-ai/DualPipe steps 1–3 leave 3·p/2 − h − 1 forwards without a partner (h = distance to the nearer
    end): 23 on the end ranks and 16 in the middle for p = 16; steps 3, 7 and 8 run 2·p/2 − h − 1 weight
    gradients on their own."""
    from costsim.schedule import dualpipe_separate_w, dualpipe_unpaired
    assert [dualpipe_unpaired(16, r, 240) for r in (0, 1, 7, 8, 15)] == [23, 22, 16, 16, 23]
    assert [dualpipe_separate_w(16, r, 240) for r in (0, 7, 15)] == [15, 8, 15]
    assert dualpipe_unpaired(16, 0, 10) == 10                  # never more than the micro-batches
    # the simulator's generated program agrees (independent code: it emits the eight steps as actions)
    from costsim.sim.schedules import dualpipe
    for r in (0, 3, 7):
        acts = dualpipe(16, 64, r)
        first_pair = next(i for i, a in enumerate(acts) if a.kind == "FB")
        assert sum(a.kind == "F" for a in acts[:first_pair]) == dualpipe_unpaired(16, r, 64)

"""RL rollouts: continuous-batching generation of sampled response lengths, then policy updates, in SimPy.

Why simulate: an RL round (GRPO and kin) generates a batch of responses and then trains on them. With
continuous batching the pool stays full while sequences wait; once the queue is empty the batch shrinks as
responses end, and the round lasts until its *longest* response ends. At tens of thousands of tokens that
long tail — not the FLOPs — sets RL wall-clock (issue 11; the R1-Zero settings are in
docs/reference/deepseek-r1-and-inference.md §2: 8,192 outputs per rollout, 650 rollouts, limits 32,768
then 65,536 tokens). Costing RL by tokens / throughput misses it.

The pool (one fluid model). `gpus` GPUs with `max_batch_per_gpu` slots each (the KV-cache limit), so
C = gpus · max_batch_per_gpu sequences decode at once. Every decode step advances each active sequence by
`tokens_per_step` tokens (> 1 with speculative decoding) and costs `step_time(b, ctx)` seconds, where b is
the sequences per GPU and ctx the mean context (prompt + tokens generated) of the active sequences; the
caller supplies it (the inference cost model: weights, KV reads, MoE experts touched). The load is spread
evenly (b = active / gpus), except in the far tail: with fewer sequences than model replicas
(gpus / gpus_per_replica) each remaining one runs alone on its replica, so b is never below
1 / gpus_per_replica. A finished sequence's slot is taken by the next waiting one (FIFO), whose prompt
costs `prefill_s_per_seq` GPU-seconds, charged as a stall of the pool's decode (prefill/decode interleaved
in one engine, as in vLLM/SGLang without chunked prefill; with disaggregated prefill pass 0 and cost the
prefill pool separately).

Granularity. Never one event per token or decode step (650 rounds × 8,192 sequences × up to 65,536 tokens
would be ~10¹¹ steps). Two observations make a round a handful of numpy operations:
1. In decode-step space the schedule does not depend on time: all active sequences advance together, so a
   sequence that needs s = ⌈L / tokens_per_step⌉ steps and enters at global step e ends at e + s, and a
   waiting sequence enters at the step the earliest slot frees (list scheduling; heapq, only when the
   round has more sequences than slots).
2. Between two consecutive entry/completion steps the active set is constant, so its size is constant and
   its mean context grows exactly linearly, by tokens_per_step per step. A segment of k steps from mean
   context c₀ costs Σ_{j<k} step_time(b, c₀ + j·tps); we evaluate step_time at the segment's first, middle
   and last step and sum with the three-point rule that is exact for step_time quadratic in context
   (_segment_seconds; linear — a decode step reading KV bytes ∝ context — reduces to the midpoint rule).
   A kink inside a segment (a roofline's max) or a higher-order term is the only approximation: against a
   per-step brute-force twin (tests/test_rollout_sim.py) linear and quadratic step times agree to rounding
   and a roofline kink to ≤ 1.5e-5 on the tested cases. `step_time` is called once
   per round on arrays when it broadcasts over numpy arrays, and element-wise otherwise (3 calls per
   segment: slow for a full R1 schedule; tabulated_step_time turns a scalar one into a broadcasting one).
So the work per round is O(n log n) numpy and Python work only proportional to the sequences that had to
wait; SimPy carries the RL loop, whose events are the interesting ones: per round, generation with the pool
full, generation in the underfilled tail, and the update (scripts/bench_rollout.py: the full R1-Zero
schedule, 650 rounds × 8,192 sequences, well under the 5 s goal).

The RL loop. Synchronous: round k's generation, then its update (training on the generated tokens; the
time comes from the caller: per round, or a function of (round index, response tokens)). Asynchronous
one-step off-policy (the pipeline of asynchronous RL trainers; an assumption the scenario states, R1's
paper does not say it overlapped): round k+1 is generated with the weights from before
update k, so it overlaps update k; generation k+1 waits for update k−1 (its weights), update k waits for
generation k. That needs the generator and the trainer on separate GPUs (split pools); on colocated GPUs
pass async_overlap=False.

Idle: GPU time in generation while the batch is below the round's peak, gpus · ∫ (1 − active/peak) dt with
peak = min(n, C) — the long tail once the queue is empty. A pool with more slots than the round has
sequences is not counted idle from the start: that is a sizing choice, priced by the smaller per-GPU batch
in step_time (slot_fill reports the share of all C slots used). In the async loop the time each side waits
for the other is reported separately (gen_wait_s, update_wait_s).
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import simpy

from ..rollout_lengths import LengthModel

StepTime = Callable[[float, float], float]


@dataclass(frozen=True)
class RolloutPool:
    """GPUs generating rollouts. step_time(b, ctx): seconds of one decode step at b sequences per GPU and
    mean context ctx tokens (prompt + generated); it may broadcast over numpy arrays (faster)."""
    gpus: int                          # GPUs generating
    max_batch_per_gpu: float           # concurrent sequences per GPU (KV-memory limit)
    step_time: StepTime                # seconds of one decode step, supplied by the caller
    tokens_per_step: float = 1.0       # tokens per sequence per decode step (speculative decoding)
    prefill_s_per_seq: float = 0.0     # prompt processing, GPU-seconds per sequence (charged when it enters)
    gpus_per_replica: int = 1          # GPUs holding one model replica (TP·EP·PP); sets the tail's floor of b

    def __post_init__(self):
        if self.gpus < 1:
            raise ValueError(f"rollout pool: gpus must be ≥ 1 (got {self.gpus})")
        if not (self.max_batch_per_gpu > 0 and math.isfinite(self.max_batch_per_gpu)):
            raise ValueError(f"rollout pool: max_batch_per_gpu must be positive (got {self.max_batch_per_gpu})")
        if self.capacity < 1:
            raise ValueError(f"rollout pool: {self.gpus} GPUs × {self.max_batch_per_gpu} sequences hold "
                             "no whole sequence")
        if not (self.tokens_per_step > 0 and math.isfinite(self.tokens_per_step)):
            raise ValueError(f"rollout pool: tokens_per_step must be positive (got {self.tokens_per_step})")
        if not (self.prefill_s_per_seq >= 0 and math.isfinite(self.prefill_s_per_seq)):
            raise ValueError(f"rollout pool: prefill_s_per_seq must be ≥ 0 (got {self.prefill_s_per_seq})")
        if not 1 <= self.gpus_per_replica <= self.gpus:
            raise ValueError(f"rollout pool: gpus_per_replica must be in [1, gpus] (got {self.gpus_per_replica})")

    @property
    def capacity(self) -> int:
        """Sequences decoding at once, C = ⌊gpus · max_batch_per_gpu⌋."""
        return int(math.floor(self.gpus * self.max_batch_per_gpu + 1e-9))

    @property
    def replicas(self) -> float:
        return self.gpus / self.gpus_per_replica


@dataclass(frozen=True)
class RoundResult:
    """One rollout round (generation only)."""
    seconds: float            # wall clock from the first prefill to the end of the longest response
    tokens: float             # response tokens generated (Σ lengths)
    busy_gpu_s: float         # gpus · ∫ active/peak dt + gpus · prefill, peak = min(n, C): the batch it starts at
    idle_fraction: float      # 1 − busy_gpu_s / (gpus · seconds): the long tail's share
    longest: float            # tokens of the longest response
    n_seqs: int
    decode_steps: int         # global decode steps of the round
    prefill_s: float          # wall seconds of prefill stalls (n · prefill_s_per_seq / gpus)
    underfilled_s: float      # seconds below the peak batch (the tail)
    segments: int             # constant-batch segments integrated
    slot_fill: float = 1.0    # ∫ active dt / (C · seconds), prefill counted full: the KV slots used
    truncated: int = 0        # responses at max_tokens (0 when simulate_round gets bare lengths)

    @property
    def full_s(self) -> float:
        """Seconds at the peak batch (prefill included): the round before its tail."""
        return self.seconds - self.underfilled_s


@dataclass(frozen=True)
class RoundSpec:
    """One rollout: n responses to prompts of prompt_tokens, lengths from `lengths` at training `step`,
    cut at max_tokens. `sample_lengths`, when given, replaces the draw (n is then its size)."""
    n: int
    prompt_tokens: float
    max_tokens: float
    lengths: LengthModel | None = None
    step: int = 0
    sample_lengths: tuple[float, ...] | None = None


@dataclass(frozen=True)
class RLResult:
    """Rounds of generation and update. Totals in wall seconds; per-round arrays have one entry per round."""
    seconds: float                 # wall clock of the whole loop
    generation_s: float            # Σ generation seconds
    update_s: float                # Σ update seconds
    idle_s: float                  # Σ seconds × idle fraction: tail time within generation_s (part of it)
    gen_wait_s: float              # generation pool waiting for weights (async; 0 in sync)
    update_wait_s: float           # trainer waiting for a rollout (async; in sync the loop is serial)
    async_overlap: bool
    seed: int
    rounds: tuple[RoundResult, ...]
    round_gen_s: np.ndarray = field(repr=False)       # (rounds,)
    round_update_s: np.ndarray = field(repr=False)    # (rounds,)
    round_idle_fraction: np.ndarray = field(repr=False)
    round_tokens: np.ndarray = field(repr=False)
    round_longest: np.ndarray = field(repr=False)
    gen_start_s: np.ndarray = field(repr=False)       # when each generation started
    update_end_s: np.ndarray = field(repr=False)      # when each update ended

    @property
    def tokens(self) -> float:
        """Response tokens generated over all rounds."""
        return float(self.round_tokens.sum())

    @property
    def idle_fraction(self) -> float:
        """Tail time / generation time."""
        return self.idle_s / self.generation_s if self.generation_s else 0.0

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "generation_s": self.generation_s, "update_s": self.update_s,
                "idle_s": self.idle_s, "idle_fraction": self.idle_fraction, "gen_wait_s": self.gen_wait_s,
                "update_wait_s": self.update_wait_s, "async_overlap": self.async_overlap, "seed": self.seed,
                "rounds": len(self.rounds), "tokens": self.tokens}


# --------------------------------------------------------------------------------------------------------
# one round
# --------------------------------------------------------------------------------------------------------

def _eval_step_time(f: StepTime, b: np.ndarray, ctx: np.ndarray) -> np.ndarray:
    """step_time on arrays: one call when it broadcasts, else element-wise. Checks positive and finite."""
    out = None
    try:
        r = f(b, ctx)
        r = np.asarray(r, dtype=float)
        if r.shape == b.shape:
            out = r
        elif r.ndim == 0 and b.size == 1:
            out = r.reshape(b.shape)
    except (TypeError, ValueError):
        out = None
    if out is None:
        out = np.fromiter((f(float(x), float(c)) for x, c in zip(b, ctx)), dtype=float, count=b.size)
    if not np.all(np.isfinite(out) & (out > 0)):
        bad = int(np.flatnonzero(~(np.isfinite(out) & (out > 0)))[0])
        raise ValueError(f"rollout pool: step_time({b[bad]:g}, {ctx[bad]:g}) = {out[bad]!r}; it must be "
                         "positive and finite")
    return out


def _segment_seconds(f: StepTime, b: np.ndarray, ctx0: np.ndarray, k: np.ndarray, tps: float) -> np.ndarray:
    """Σ_{j<k} f(b, ctx0 + j·tps) per segment, by the three-point rule exact for f quadratic in context.

    With m = (k−1)/2 and f(j) = A + B(j−m) + C(j−m)² on j = 0..k−1 the sum is k·A + C·k(k²−1)/12; from the
    values at the first, middle and last step, C = (f₀ + f_last − 2f_mid)/(2m²), so
    Σ = k·f_mid + (f₀ + f_last − 2f_mid)·k(k+1)/(6(k−1)). Linear f: k·f_mid (the midpoint rule). Kinks
    (a roofline's max) are smoothed over the segment; the brute-force twin bounds that error.
    """
    k = k.astype(float)
    long_ = k >= 2
    kl = k[long_]
    ctx_mid = ctx0 + tps * (k - 1.0) / 2.0
    bl = b[long_]
    vals = _eval_step_time(f, np.concatenate((b, bl, bl)),
                           np.concatenate((ctx_mid, ctx0[long_], ctx0[long_] + tps * (kl - 1.0))))
    n, nl = len(b), len(kl)
    f_mid, f_first, f_last = vals[:n], vals[n:n + nl], vals[n + nl:]
    out = k * f_mid
    out[long_] += (f_first + f_last - 2.0 * f_mid[long_]) * kl * (kl + 1.0) / (6.0 * (kl - 1.0))
    return out


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """Unique values of a sorted array (cheaper than np.unique, which sorts or hashes again)."""
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


def _entry_steps(steps: np.ndarray, capacity: int) -> np.ndarray:
    """Global decode step at which each sequence (FIFO) enters: 0 for the first C, then the earliest free
    slot (list scheduling on C slots)."""
    n = len(steps)
    entry = np.zeros(n, dtype=np.int64)
    if n <= capacity:
        return entry
    heap = steps[:capacity].tolist()
    heapq.heapify(heap)
    replace = heapq.heapreplace
    out = [0] * capacity
    append = out.append
    for s in steps[capacity:].tolist():
        free = heap[0]
        append(free)
        replace(heap, free + s)
    return np.asarray(out, dtype=np.int64)


def simulate_round(pool: RolloutPool, lengths: np.ndarray, prompt_tokens: float) -> RoundResult:
    """Continuous-batching generation of responses of the given lengths (tokens, in queue order).

    Up to C = gpus · max_batch sequences run at once; a finished one is replaced by the next waiting; each
    decode step costs step_time(max(active, replicas) / gpus, mean context); the round ends when the last
    response ends. See the module docstring for the segment integration (midpoint in context).
    """
    lengths = np.asarray(lengths, dtype=float)
    n = lengths.size
    if n == 0:
        raise ValueError("a rollout round needs at least one sequence")
    if not np.all(np.isfinite(lengths) & (lengths > 0)):
        raise ValueError("response lengths must be positive and finite")
    if not (prompt_tokens >= 0 and math.isfinite(prompt_tokens)):
        raise ValueError(f"prompt_tokens must be ≥ 0 (got {prompt_tokens})")
    tps, C, g = pool.tokens_per_step, pool.capacity, pool.gpus
    steps = np.maximum(1, np.ceil(lengths / tps - 1e-9)).astype(np.int64)   # decode steps per sequence
    entry = _entry_steps(steps, C)
    finish = entry + steps

    # segment boundaries: every step at which the active set changes
    if n <= C:      # everyone enters at step 0: active = n − finished, Σ entry = 0
        f_sorted = np.sort(finish)
        bounds = _sorted_unique(np.concatenate(([0], f_sorted)))
        starts, k = bounds[:-1], np.diff(bounds)
        active = n - np.searchsorted(f_sorted, starts, side="right")
        sum_entry = np.zeros(len(starts))
    else:
        order = np.argsort(finish, kind="stable")
        f_sorted = finish[order]
        # two sorted runs (entry is non-decreasing: FIFO): the stable sort (timsort) merges them in O(n)
        bounds = _sorted_unique(np.sort(np.concatenate((entry, f_sorted)), kind="stable"))
        starts, k = bounds[:-1], np.diff(bounds)
        e_cum = np.concatenate(([0], np.cumsum(entry)))
        f_entry_cum = np.concatenate(([0], np.cumsum(entry[order])))        # Σ entry steps, by finish order
        n_in = np.searchsorted(entry, starts, side="right")                # entered at or before the start
        n_out = np.searchsorted(f_sorted, starts, side="right")            # finished at or before the start
        active = n_in - n_out
        sum_entry = (e_cum[n_in] - f_entry_cum[n_out]).astype(float)
    keep = active > 0
    starts, k, active, sum_entry = starts[keep], k[keep], active[keep], sum_entry[keep]
    # mean generated tokens of the active set at the segment start, then at its step midpoint
    gen0 = tps * (starts - sum_entry / active)
    ctx0 = prompt_tokens + gen0
    b = np.maximum(active, pool.replicas) / g
    seg_s = _segment_seconds(pool.step_time, b.astype(float), ctx0.astype(float), k, tps)
    decode_s = float(seg_s.sum())
    prefill_s = n * pool.prefill_s_per_seq / g
    seconds = decode_s + prefill_s
    peak = min(n, C)                # the round's batch while sequences wait (or all of them, n ≤ C)
    slot_s = float(np.sum(seg_s * active))
    busy = g * slot_s / peak + g * prefill_s
    under = float(seg_s[active < peak].sum())
    return RoundResult(
        seconds=seconds, tokens=float(lengths.sum()), busy_gpu_s=busy,
        idle_fraction=max(0.0, 1.0 - busy / (g * seconds)), longest=float(lengths.max()), n_seqs=n,
        decode_steps=int(finish.max()), prefill_s=prefill_s, underfilled_s=under, segments=int(k.size),
        slot_fill=(slot_s + prefill_s * C) / (C * seconds))


def bilinear_step_time(b_points: Sequence[float], ctx_points: Sequence[float], values) -> StepTime:
    """A broadcasting step time from a table: values[i][j] = seconds at b_points[i], ctx_points[j] (both
    increasing), bilinear in between and clamped at the edges; an axis of one point is constant along it."""
    bp, cp = np.asarray(b_points, dtype=float), np.asarray(ctx_points, dtype=float)
    table = np.asarray(values, dtype=float)
    if table.shape != (len(bp), len(cp)) or not len(bp) or not len(cp):
        raise ValueError(f"step-time table: {table.shape} values for {len(bp)} batch × {len(cp)} context points")
    if np.any(np.diff(bp) <= 0) or np.any(np.diff(cp) <= 0):
        raise ValueError("step-time table: batch and context points must increase")
    if len(bp) == 1:                      # constant along b: duplicate the row one unit further
        bp, table = np.array([bp[0], bp[0] + 1.0]), np.vstack([table, table])
    if len(cp) == 1:
        cp, table = np.array([cp[0], cp[0] + 1.0]), np.hstack([table, table])

    def step_time(b, ctx):
        b = np.clip(np.asarray(b, dtype=float), bp[0], bp[-1])
        c = np.clip(np.asarray(ctx, dtype=float), cp[0], cp[-1])
        i = np.clip(np.searchsorted(bp, b, side="right") - 1, 0, len(bp) - 2)
        j = np.clip(np.searchsorted(cp, c, side="right") - 1, 0, len(cp) - 2)
        u = (b - bp[i]) / (bp[i + 1] - bp[i])
        v = (c - cp[j]) / (cp[j + 1] - cp[j])
        return ((1 - u) * (1 - v) * table[i, j] + u * (1 - v) * table[i + 1, j]
                + (1 - u) * v * table[i, j + 1] + u * v * table[i + 1, j + 1])

    return step_time


def tabulated_step_time(f: StepTime, b_points: Sequence[float], ctx_points: Sequence[float]) -> StepTime:
    """A broadcasting step time from a scalar one: f on the grid b_points × ctx_points, then bilinear
    (bilinear_step_time).

    A scalar step_time is called three times per segment (millions of calls for an R1-Zero schedule); a
    grid of a few thousand points is evaluated once. Exact for f bilinear in (b, ctx) — a decode step whose
    bytes and FLOPs are affine in batch and in batch × context; put grid points at the kinks of a roofline.
    """
    bp = sorted(set(float(x) for x in b_points))
    cp = sorted(set(float(x) for x in ctx_points))
    if len(bp) < 2 or len(cp) < 2:
        raise ValueError("tabulated_step_time needs at least two batch and two context points")
    return bilinear_step_time(bp, cp, [[float(f(x, c)) for c in cp] for x in bp])


# --------------------------------------------------------------------------------------------------------
# the closed-form twin (written apart from simulate_round: it shares no code with it)
# --------------------------------------------------------------------------------------------------------

def closed_form_round(pool: RolloutPool, n_seqs: int, mean_len: float | LengthModel, max_len: float,
                      prompt_tokens: float, *, step: int = 0, grid: int = 2048) -> float:
    """Round seconds in closed form, independent of simulate_round.

    Constant lengths (mean_len a number; L = min(mean_len, max_len)): ⌈n / C⌉ waves; a wave of m sequences
    all at the same length runs s = ⌈L / tps⌉ steps at b = max(m, replicas)/gpus with context growing from
    the prompt, Σ_{j<s} step_time(b, prompt + j·tps) summed step by step (s calls), plus n · prefill / gpus.
    With continuous batching and equal lengths every slot frees at the same step, so waves are exact.

    A length distribution (mean_len a LengthModel), fluid approximation in expectation:
    - n ≤ C: all start at once, so every active sequence has generated the same x tokens; the batch at x is
      n·S(x) (S the truncated survival) and the round lasts until x = E[max of n] (expected_max):
      T = ∫₀^{E[max]} step_time(max(n·S(x), replicas)/gpus, prompt + x) dx / tps.
    - n > C: the pool is full until the queue empties, after (n − C)·E[L]/C tokens per slot (work
      conservation), then the last C sequences drain as a fresh n = C round (they started at different times,
      so this overstates the tail somewhat: an approximation, tested loosely against the simulation).
      The full phase runs at b = C/gpus and a mean context of prompt + E[L²]/(2E[L]) (the length-biased
      mean age of a sequence in a full pool).
    """
    if n_seqs < 1:
        raise ValueError("closed_form_round needs n_seqs ≥ 1")
    g, tps = pool.gpus, pool.tokens_per_step
    cap = int(math.floor(g * pool.max_batch_per_gpu + 1e-9))
    reps = g / pool.gpus_per_replica
    prefill = n_seqs * pool.prefill_s_per_seq / g
    f = pool.step_time
    if not isinstance(mean_len, LengthModel):
        length = min(float(mean_len), float(max_len))
        s = max(1, math.ceil(length / tps - 1e-9))
        ctx = [prompt_tokens + j * tps for j in range(s)]

        def wave(m: int) -> float:
            bb = max(m, reps) / g
            return math.fsum(f(bb, c) for c in ctx)

        full_waves, rest = divmod(n_seqs, cap)
        t = full_waves * wave(cap) if full_waves else 0.0
        if rest:
            t += wave(rest)
        return float(t + prefill)

    model = mean_len
    m = min(n_seqs, cap)
    top = model.expected_max(m, step, max_len)
    x = (np.arange(grid) + 0.5) * (top / grid)                      # midpoints in generated tokens
    batch = np.maximum(m * model.survival(x, step, max_len), 1.0)   # at least the longest is running
    b = np.maximum(batch, reps) / g
    dt = np.array([f(float(bi), float(prompt_tokens + xi)) for bi, xi in zip(b, x)])
    t_drain = float(np.sum(dt) * (top / grid) / tps)
    if n_seqs <= cap:
        return t_drain + prefill
    mean = model.expected(step, max_len)
    # E[min(L,M)²] by quadrature of 2∫ x S(x) dx over [0, M]
    xs = (np.arange(grid) + 0.5) * (max_len / grid)
    second = float(2.0 * np.sum(xs * model.survival(xs, step, max_len)) * (max_len / grid))
    full_steps = (n_seqs - cap) * mean / cap / tps
    t_full = full_steps * f(max(cap, reps) / g, prompt_tokens + second / (2.0 * mean))
    return float(t_full + t_drain + prefill)


# --------------------------------------------------------------------------------------------------------
# the RL loop
# --------------------------------------------------------------------------------------------------------

def rl_rounds(n_rounds: int, steps_per_round: int, n_seqs: int, prompt_tokens: float, lengths: LengthModel,
              max_tokens: float | Sequence[tuple[int, float]]) -> list[RoundSpec]:
    """Rollout k at training step k · steps_per_round. max_tokens: one limit, or (from_step, limit) pairs
    (R1-Zero: [(0, 32768), (8200, 65536)], docs/reference/deepseek-r1-and-inference.md §2)."""
    if isinstance(max_tokens, (int, float)):
        sched = [(0, float(max_tokens))]
    else:
        sched = sorted((int(s), float(m)) for s, m in max_tokens)

    def limit(step: int) -> float:
        cur = sched[0][1]
        for s, m in sched:
            if step >= s:
                cur = m
        return cur

    return [RoundSpec(n_seqs, prompt_tokens, limit(k * steps_per_round), lengths, k * steps_per_round)
            for k in range(n_rounds)]


def _round_lengths(spec: RoundSpec, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    if spec.sample_lengths is not None:
        x = np.minimum(np.asarray(spec.sample_lengths, dtype=float), spec.max_tokens)
    elif spec.lengths is not None:
        x = spec.lengths.sample(rng, spec.n, spec.step, spec.max_tokens)
    else:
        raise ValueError("RoundSpec needs lengths (a LengthModel) or sample_lengths")
    return x, int(np.count_nonzero(x >= spec.max_tokens))


def _generator(env, res: list[RoundResult], upd_done: list, gen_done: list, lag: int, log: dict):
    """Generation rounds: round k needs the weights of update k − lag (lag 1 sync, 2 async one-step
    off-policy). Two timeouts per round: the full pool, then the underfilled tail."""
    for k, r in enumerate(res):
        if k >= lag:
            t0 = env.now
            yield upd_done[k - lag]
            log["gen_wait"] += env.now - t0
        log["gen_start"][k] = env.now
        if r.full_s > 0:
            yield env.timeout(r.full_s)
        if r.underfilled_s > 0:
            yield env.timeout(r.underfilled_s)
        gen_done[k].succeed()


def _trainer(env, upd: np.ndarray, upd_done: list, gen_done: list, log: dict):
    """Update k after generation k (and after update k − 1: one trainer)."""
    for k in range(len(upd)):
        t0 = env.now
        yield gen_done[k]
        log["update_wait"] += env.now - t0
        yield env.timeout(upd[k])
        log["update_end"][k] = env.now
        upd_done[k].succeed()


def simulate_rl(rounds: list[RoundSpec], pool: RolloutPool, update_s: Callable[[int, float], float] | Sequence[float],
                async_overlap: bool, seed: int) -> RLResult:
    """Rounds of generation then policy update; deterministic for `seed` (round k draws from
    PCG64([seed, k]), so a round's lengths do not depend on the others).

    update_s: seconds of update k, a list, or a function of (k, response tokens of round k) — the caller
    adds prompt tokens, reference/reward passes and the weight broadcast to the rollout pool as it models
    them. async_overlap: one-step off-policy (generation k+1 overlaps update k; split pools).
    """
    if not rounds:
        raise ValueError("simulate_rl needs at least one round")
    res = []
    for k, spec in enumerate(rounds):
        rng = np.random.Generator(np.random.PCG64([seed, k]))
        x, cut = _round_lengths(spec, rng)
        r = simulate_round(pool, x, spec.prompt_tokens)
        res.append(RoundResult(**{**r.__dict__, "truncated": cut}))
    if callable(update_s):
        upd = np.array([float(update_s(k, r.tokens)) for k, r in enumerate(res)])
    else:
        upd = np.asarray(update_s, dtype=float)
        if upd.shape != (len(res),):
            raise ValueError(f"update_s: {upd.size} values for {len(res)} rounds")
    if not np.all(np.isfinite(upd) & (upd >= 0)):
        raise ValueError("update_s: every update time must be ≥ 0 and finite")

    env = simpy.Environment()
    n = len(res)
    upd_done = [env.event() for _ in range(n)]
    gen_done = [env.event() for _ in range(n)]
    log = {"gen_wait": 0.0, "update_wait": 0.0, "gen_start": np.zeros(n), "update_end": np.zeros(n)}
    env.process(_generator(env, res, upd_done, gen_done, 2 if async_overlap else 1, log))
    trainer = env.process(_trainer(env, upd, upd_done, gen_done, log))
    env.run(until=trainer)

    gen = np.array([r.seconds for r in res])
    idle = np.array([r.idle_fraction for r in res])
    return RLResult(
        seconds=float(env.now), generation_s=float(gen.sum()), update_s=float(upd.sum()),
        idle_s=float(np.sum(gen * idle)), gen_wait_s=log["gen_wait"] if async_overlap else 0.0,
        update_wait_s=log["update_wait"] if async_overlap else 0.0, async_overlap=async_overlap, seed=seed,
        rounds=tuple(res), round_gen_s=gen, round_update_s=upd, round_idle_fraction=idle,
        round_tokens=np.array([r.tokens for r in res]), round_longest=np.array([r.longest for r in res]),
        gen_start_s=log["gen_start"], update_end_s=log["update_end"])

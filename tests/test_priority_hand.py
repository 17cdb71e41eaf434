"""The priority decoder (fedsllm_env.priority) against hand-worked examples, a plain-Python second implementation and
properties (hypothesis).

Hand examples use a noise power N0 B = 1 W (bandwidth 1 Hz, N0 = 1 W/Hz) so that rates are log2 of small numbers;
every expected number is derived in the comment above it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import noise_psd_w_per_hz
from fedsllm_env.priority import (BETA, DEADLINE_SCALE, decode_link, decode_priority, greedy_assign,
                                  min_power_for_rate, water_fill)

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def _b(*arrays):
    """Add the batch axis (B = 1)."""
    return [np.asarray(a, dtype=float)[None] for a in arrays]


# ---- hand-worked examples ----------------------------------------------------------------------------------------

def test_greedy_hand_example_weakest_first_then_largest_weighted_delay():
    # K = 2, S = 3, N0 B = 1, bits = 2, no fixed time, equal shares p0 = 1 W, p1 = 0.75 W.
    # best gains: client 0 -> 8 (ch 0), client 1 -> 4 (ch 0). Client 1 is the weakest: it goes first and takes
    # ch 0; client 0 then takes its best free one, ch 1 (gain 1, first of the equal gains 1, 1).
    gain = [[8.0, 1.0, 1.0], [4.0, 2.0, 0.5]]
    # rates after the first pass: client 0: log2(1 + 1 * 1) = 1 -> D0 = 2 / 1 = 2
    #                             client 1: log2(1 + 0.75 * 4) = 2 -> D1 = 2 / 2 = 1
    # equal weights: w0 D0 = 2 > w1 D1 = 1 -> client 0 takes the last subchannel, ch 2.
    g, w, bits, fixed, share = _b(gain, [1.0, 1.0], 2.0, [0.0, 0.0], [1.0, 0.75])
    owner, d = greedy_assign(g, w, bits, fixed, share, 1.0, 1.0)
    assert owner[0].tolist() == [1, 0, 0]
    # client 0 now spreads 1 W over ch 1 and ch 2: 2 log2(1 + 0.5 * 1) -> D0 = 2 / (2 log2 1.5)
    np.testing.assert_allclose(d[0], [2.0 / (2.0 * math.log2(1.5)), 1.0], rtol=1e-12)

    # priority on client 1, w1 = e^2: w1 D1 = 7.39 > w0 D0 = 2 -> client 1 takes ch 2 (gain 0.5):
    # client 1 then spreads 0.75 W over ch 0 and ch 2: log2(1 + 0.375 * 4) + log2(1 + 0.375 * 0.5)
    owner, d = greedy_assign(g, np.array([[1.0, math.exp(2.0)]]), bits, fixed, share, 1.0, 1.0)
    assert owner[0].tolist() == [1, 0, 1]
    np.testing.assert_allclose(d[0], [2.0, 2.0 / (math.log2(2.5) + math.log2(1.1875))], rtol=1e-12)


def test_greedy_hand_example_fixed_time_and_bandwidth_enter_the_delay():
    # K = 2, S = 3, bandwidth 2 Hz, N0 = 0.5 W/Hz -> N0 B = 1 W. Gains: client 0 [1, 1, 1], client 1 [3, 3, 3]:
    # client 0 (best 1) goes first, takes ch 0; client 1 takes ch 1. shares 1 W and 1 W, bits 8:
    # rates 2 log2(1 + 1) = 2 and 2 log2(1 + 3) = 4 bit/s -> D = fixed + [4, 2].
    # with fixed = [0, 3]: D = [4, 5] -> client 1 takes ch 2: rate 2 * 2 log2(1 + 0.5 * 3) = 4 log2 2.5.
    g, w, bits, fixed, share = _b([[1.0] * 3, [3.0] * 3], [1.0, 1.0], 8.0, [0.0, 3.0], [1.0, 1.0])
    owner, d = greedy_assign(g, w, bits, fixed, share, 2.0, 0.5)
    assert owner[0].tolist() == [0, 1, 1]
    np.testing.assert_allclose(d[0], [4.0, 3.0 + 8.0 / (4.0 * math.log2(2.5))], rtol=1e-12)
    # without the fixed time client 0 (D = 4 > 2) gets it: rate 2 * 2 log2(1 + 0.5) -> D0 = 8 / (4 log2 1.5)
    owner, d = greedy_assign(g, w, bits, np.zeros((1, 2)), share, 2.0, 0.5)
    assert owner[0].tolist() == [0, 1, 0]
    np.testing.assert_allclose(d[0], [8.0 / (4.0 * math.log2(1.5)), 2.0], rtol=1e-12)


@pytest.mark.parametrize("budget, expected", [
    (4.0, [2.5, 1.5, 0.0]),    # 1 wet: level 5 > 1; 2 wet: (4 + 1 + 2) / 2 = 3.5 > 2; 3 wet: 11 / 3 < 4 -> mu 3.5
    (1.0, [1.0, 0.0, 0.0]),    # 2 wet would need (1 + 3) / 2 = 2 > 2: no -> mu = 2
    (10.0, [14 / 3, 11 / 3, 5 / 3]),  # all wet: mu = (10 + 7) / 3
])
def test_water_fill_hand_example_one_client(budget, expected):
    noise, owner, b = _b([1.0, 2.0, 4.0], [0, 0, 0], [budget])
    p = water_fill(noise, owner.astype(np.int64), b)
    np.testing.assert_allclose(p[0], expected, rtol=1e-12, atol=1e-15)


def test_water_fill_hand_example_interleaved_clients():
    # owners [0, 1, 0, 1], floors [1, 1, 3, 2], budgets [1, 4]:
    # client 0 floors (1, 3): 2 wet needs (1 + 4) / 2 = 2.5 > 3: no -> mu0 = 1 + 1 = 2 -> p = 1 on ch 0, 0 on ch 2
    # client 1 floors (1, 2): (4 + 3) / 2 = 3.5 > 2 -> mu1 = 3.5 -> 2.5 on ch 1, 1.5 on ch 3
    p = water_fill(np.array([[1.0, 1.0, 3.0, 2.0]]), np.array([[0, 1, 0, 1]]), np.array([[1.0, 4.0]]))
    np.testing.assert_allclose(p[0], [1.0, 2.5, 0.0, 1.5], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("rate, power", [
    (1.0, 1.0),                            # one floor wet: log2(mu / 1) = 1 -> mu 2 (= the 2nd floor): P = 1
    (3.0, 5.0),                            # two wet: log2 mu + log2(mu / 2) = 3 -> mu = 4: P = 3 + 2
    (5.0, 3.0 * 2 ** (8 / 3) - 7.0),       # three wet: 3 log2 mu - log2 8 = 5 -> mu = 2^(8/3): P = 3 mu - 7
])
def test_min_power_for_rate_hand_example(rate, power):
    # floors 1, 2, 4 (W), bandwidth 1 Hz
    got = min_power_for_rate(np.array([[1.0, 2.0, 4.0]]), np.zeros((1, 3), dtype=np.int64), np.array([[rate]]), 1.0)
    np.testing.assert_allclose(got[0, 0], power, rtol=1e-12)


def test_min_power_for_rate_bandwidth_and_second_client():
    # client 1 owns floors 2 and 6 on bandwidth 2 Hz; rate 6 bit/s = 3 bit/Hz:
    # two wet: log2(mu / 2) + log2(mu / 6) = 3 -> mu^2 = 96 -> mu = 9.80 > 6: P = 2 mu - 8
    # client 0 owns floor 1, rate 2 bit/s = 1 bit/Hz: mu = 2, P = 1
    got = min_power_for_rate(np.array([[2.0, 1.0, 6.0]]), np.array([[1, 0, 1]]), np.array([[2.0, 6.0]]), 2.0)
    np.testing.assert_allclose(got[0], [1.0, 2.0 * math.sqrt(96.0) - 8.0], rtol=1e-12)


# decode_link on K = 2, S = 2, N0 B = 1: client 0 gains [0.5, 1e-3] (best 0.5 on ch 0), client 1 [1e-3, 1/6]
# (best 1/6 on ch 1, the weakest: takes ch 1 first; client 0 takes ch 0). Floors N0 B / g: ch 0 -> 2, ch 1 -> 6.
# p_max = 10 W, p_th = 12 W: equal share min(10, 12 / 2) = 6 W; bits 4.
# D_eq: client 0 log2(1 + 6 * 0.5) = 2 bit/s -> 2 s; client 1 log2(1 + 6 / 6) = 1 bit/s -> 4 s. D_ref = 4 s.
LINK = dict(gain=np.array([[[0.5, 1e-3], [1e-3, 1.0 / 6.0]]]), priority=np.zeros((1, 2)), bits=np.array([4.0]),
            max_power_w=np.array([[10.0, 10.0]]), total_power_w=12.0, bandwidth_hz=1.0, n0_w_per_hz=1.0)


@pytest.mark.parametrize("deadline, fixed, expected", [
    # T = 4: each needs 1 bit/s: client 0: log2(1 + p / 2) = 1 -> 2 W; client 1: log2(1 + p / 6) = 1 -> 6 W
    (0.0, [0.0, 0.0], [2.0, 6.0]),
    # T = 4 e^(ln 2) = 8: 0.5 bit/s each: p = floor (sqrt 2 - 1)
    (math.log(2.0) / DEADLINE_SCALE, [0.0, 0.0], [2.0 * (math.sqrt(2) - 1), 6.0 * (math.sqrt(2) - 1)]),
    # client 0 computes 2 s first: D_eq = [4, 4], T = 4, slack [2, 4]: client 0 needs 2 bit/s -> 2 (4 - 1) = 6 W
    (0.0, [2.0, 0.0], [6.0, 6.0]),
    # client 0 computes 5 s: D_eq = [7, 4], T = 7 e^(ln(4/7)) = 4 < 5: no slack -> p_max = 10 W;
    # client 1 needs 1 bit/s -> 6 W; 16 W > 12 W: both scaled by 12 / 16 -> [7.5, 4.5]
    (math.log(4.0 / 7.0) / DEADLINE_SCALE, [5.0, 0.0], [7.5, 4.5]),
])
def test_decode_link_hand_example(deadline, fixed, expected):
    owner, p = decode_link(deadline=np.array([deadline]), fixed_s=np.array([fixed]), **LINK)
    assert owner[0].tolist() == [0, 1]
    np.testing.assert_allclose(p[0], expected, rtol=1e-9)


def test_decode_link_hand_example_per_client_cap():
    # as LINK with client 1 capped at 3 W: shares min([10, 3], 6) = [6, 3]; D_eq1 = 4 / log2(1 + 3 / 6) = 6.84 s
    # = D_ref. A deadline T = 4 s asks 1 bit/s of each: client 0 needs 2 W, client 1 6 W, capped at 3 W; 5 W <= 12 W
    a = math.log(4.0 / (4.0 / math.log2(1.5))) / DEADLINE_SCALE
    owner, p = decode_link(deadline=np.array([a]), fixed_s=np.zeros((1, 2)),
                           **{**LINK, "max_power_w": np.array([[10.0, 3.0]])})
    assert owner[0].tolist() == [0, 1]
    np.testing.assert_allclose(p[0], [2.0, 3.0], rtol=1e-9)


def test_decode_priority_uses_the_forward_time_on_the_ms_link_only():
    # MS and FS differ in everything decode_priority passes: bandwidth, total power, gains, priorities, deadline
    cfg = FedsLLMConfig.from_dict({"wireless": {
        "num_clients": 3, "num_subchannels_ms": 5, "num_subchannels_fs": 4, "subchannel_bandwidth_ms_hz": 2e6,
        "subchannel_bandwidth_fs_hz": 5e5, "total_power_ms_w": 0.3, "total_power_fs_w": 0.2,
        "noise_psd_dbm_per_hz": -170.0}})
    rng = np.random.default_rng(7)
    g_ms, g_fs = 10 ** rng.uniform(-13, -9, (2, 3, 5)), 10 ** rng.uniform(-13, -9, (2, 3, 4))
    action = rng.uniform(-1, 1, (2, 10))
    fwd = np.array([[0.0, 0.4, 0.1], [0.3, 0.0, 0.2]])
    up, lora, pmax = np.array([3e6, 2e6]), np.array([5e5, 8e5]), np.full((2, 3), 0.15)
    got = decode_priority(cfg, action, g_ms, g_fs, fwd, up, lora, pmax)
    n0 = noise_psd_w_per_hz(-170.0)
    ms = decode_link(g_ms, action[:, :3], action[:, 6], up, fwd, pmax, 0.3, 2e6, n0)
    fs = decode_link(g_fs, action[:, 3:6], action[:, 7], lora, np.zeros((2, 3)), pmax, 0.2, 5e5, n0)
    for a, b in zip(got, (*ms, *fs)):
        np.testing.assert_array_equal(a, b)
    # the FS link does not wait for the forward pass: a longer one changes the MS decision only
    longer = decode_priority(cfg, action, g_ms, g_fs, fwd + np.array([[0.5, 0.0, 0.0]]), up, lora, pmax)
    np.testing.assert_array_equal(longer[2], got[2])
    np.testing.assert_array_equal(longer[3], got[3])
    assert not np.array_equal(longer[1], got[1])
    # actions beyond [-1, 1] are clipped
    clipped = decode_priority(cfg, action * 5.0, g_ms, g_fs, fwd, up, lora, pmax)
    for a, b in zip(clipped, decode_priority(cfg, np.clip(action * 5.0, -1, 1), g_ms, g_fs, fwd, up, lora, pmax)):
        np.testing.assert_array_equal(a, b)


# ---- a second implementation, in plain Python ---------------------------------------------------------------------

def _ref_greedy(gain, weight, bits, fixed, share, bw, n0):
    k, s = gain.shape
    nb = n0 * bw
    owner, mine = [-1] * s, [[] for _ in range(k)]

    def delay(c):
        rate = sum(bw * math.log2(1.0 + share[c] / len(mine[c]) * gain[c, i] / nb) for i in mine[c])
        return fixed[c] + bits / rate

    def give(c):
        free = [i for i in range(s) if owner[i] < 0]
        i = max(free, key=lambda i: (gain[c, i], -i))  # best free subchannel, the first of equals
        owner[i] = c
        mine[c].append(i)

    for c in sorted(range(k), key=lambda c: (max(gain[c]), c)):  # weakest first, ties in index order
        give(c)
    for _ in range(s - k):
        scores = [weight[c] * delay(c) for c in range(k)]
        give(max(range(k), key=lambda c: (scores[c], -c)))
    return owner, [delay(c) for c in range(k)]


def _ref_fill(floors, budget):
    """Water level mu with sum max(0, mu - n) = budget (bisection), and the powers."""
    if budget <= 0:
        return [0.0] * len(floors)
    lo = min(floors)
    mu = brentq(lambda m: sum(max(0.0, m - n) for n in floors) - budget, lo, lo + 2.0 * budget, xtol=1e-300, rtol=1e-15)
    return [max(0.0, mu - n) for n in floors]


def _ref_need(floors, rate_bps, bw):
    """Least power reaching ``rate_bps`` with water-filling over ``floors`` (bisection on the level)."""
    lo = min(floors)
    f = lambda m: sum(bw * math.log2(m / n) for n in floors if n < m) - rate_bps  # noqa: E731
    hi = lo * 2.0
    while f(hi) < 0:
        hi *= 2.0
    mu = brentq(f, lo, hi, xtol=1e-300, rtol=1e-15)
    return sum(max(0.0, mu - n) for n in floors)


def _ref_decode_link(gain, priority, deadline, bits, fixed, pmax, total, bw, n0):
    k, s = gain.shape
    share = [min(pmax[c], total / k) for c in range(k)]
    owner, d = _ref_greedy(gain, [math.exp(BETA * a) for a in priority], bits, fixed, share, bw, n0)
    target = max(d) * math.exp(DEADLINE_SCALE * deadline)
    floors = [n0 * bw / gain[owner[i], i] for i in range(s)]
    budget = []
    for c in range(k):
        mine = [floors[i] for i in range(s) if owner[i] == c]
        slack = target - fixed[c]
        budget.append(pmax[c] if slack <= 0 else min(pmax[c], _ref_need(mine, bits / slack, bw)))
    if sum(budget) > total:
        budget = [x * total / sum(budget) for x in budget]
    power = [0.0] * s
    for c in range(k):
        idx = [i for i in range(s) if owner[i] == c]
        for i, p in zip(idx, _ref_fill([floors[i] for i in idx], budget[c])):
            power[i] = p
    return owner, power, budget


def _random_link(rng, k, s):
    return dict(gain=10 ** rng.uniform(-13, -9, (k, s)), priority=rng.uniform(-1, 1, k),
                deadline=float(rng.uniform(-1, 1)), bits=float(10 ** rng.uniform(5, 7.5)),
                fixed=rng.uniform(0, 1.0, k) * rng.integers(0, 2), pmax=rng.uniform(0.02, 0.3, k),
                total=float(rng.uniform(0.05, 1.0)), bw=float(rng.choice([1e5, 1e6])), n0=noise_psd_w_per_hz(-174.0))


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), k=st.integers(1, 4), extra=st.integers(0, 5))
def test_decode_link_matches_a_plain_python_decoder(seed, k, extra):
    rng = np.random.default_rng(seed)
    x = _random_link(rng, k, k + extra)
    owner, power = decode_link(x["gain"][None], x["priority"][None], np.array([x["deadline"]]),
                               np.array([x["bits"]]), x["fixed"][None], x["pmax"][None], x["total"], x["bw"], x["n0"])
    ref_owner, ref_power, _ = _ref_decode_link(**x)
    assert owner[0].tolist() == ref_owner
    np.testing.assert_allclose(power[0], ref_power, rtol=1e-7, atol=1e-12)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), k=st.integers(1, 5), extra=st.integers(0, 6))
def test_greedy_matches_a_plain_python_greedy(seed, k, extra):
    rng = np.random.default_rng(seed)
    x = _random_link(rng, k, k + extra)
    weight = np.exp(BETA * x["priority"])
    share = np.minimum(x["pmax"], x["total"] / k)
    owner, d = greedy_assign(x["gain"][None], weight[None], np.array([x["bits"]]), x["fixed"][None], share[None],
                             x["bw"], x["n0"])
    ref_owner, ref_d = _ref_greedy(x["gain"], weight, x["bits"], x["fixed"], share, x["bw"], x["n0"])
    assert owner[0].tolist() == ref_owner
    np.testing.assert_allclose(d[0], ref_d, rtol=1e-12)


# ---- properties -----------------------------------------------------------------------------------------------------

gain_db = st.floats(-130.0, -90.0)


@st.composite
def links(draw, max_k=4, max_extra=5):
    k = draw(st.integers(1, max_k))
    s = k + draw(st.integers(0, max_extra))
    gain = 10 ** (np.array(draw(st.lists(gain_db, min_size=k * s, max_size=k * s))).reshape(k, s) / 10)
    unit = st.floats(-1.0, 1.0)
    return dict(gain=gain, priority=np.array(draw(st.lists(unit, min_size=k, max_size=k))),
                deadline=draw(unit), bits=draw(st.floats(1e4, 1e8)),
                fixed=np.array(draw(st.lists(st.floats(0.0, 2.0), min_size=k, max_size=k))),
                pmax=np.array(draw(st.lists(st.floats(0.01, 0.5), min_size=k, max_size=k))),
                total=draw(st.floats(0.01, 2.0)))


def _decode(x):
    return decode_link(x["gain"][None], x["priority"][None], np.array([x["deadline"]]), np.array([x["bits"]]),
                       x["fixed"][None], x["pmax"][None], x["total"], 1e6, noise_psd_w_per_hz(-174.0))


@SETTINGS
@given(x=links())
def test_decoded_link_is_feasible(x):
    owner, power = _decode(x)
    k, s = x["gain"].shape
    counts = np.bincount(owner[0], minlength=k)
    assert counts.min() >= 1 and counts.sum() == s  # every client at least one subchannel, each owned once
    assert np.all(power >= 0)
    per_client = np.bincount(owner[0], weights=power[0], minlength=k)
    assert np.all(per_client <= x["pmax"] * (1 + 1e-9))
    assert per_client.sum() <= x["total"] * (1 + 1e-9)


@SETTINGS
@given(x=links())
def test_each_client_water_fills_its_subchannels_to_one_level(x):
    owner, power = _decode(x)
    noise = noise_psd_w_per_hz(-174.0) * 1e6 / np.take_along_axis(x["gain"], owner, axis=0)[0]
    for c in range(x["gain"].shape[0]):
        mine = owner[0] == c
        wet = mine & (power[0] > 0)
        if not wet.any():
            continue
        level = power[0][wet] + noise[wet]
        np.testing.assert_allclose(level, level[0], rtol=1e-9)  # one water level per client ...
        assert np.all(noise[mine & ~wet] >= level[0] * (1 - 1e-9))  # ... that no dry subchannel lies under
        # and the wet ones are the client's lowest floors
        assert noise[wet].max() <= noise[mine & ~wet].min(initial=np.inf)


@SETTINGS
@given(x=links(), c=st.integers(0, 3))
def test_a_client_of_overwhelming_weight_takes_every_spare_subchannel(x, c):
    k, s = x["gain"].shape
    c = c % k
    weight = np.ones((1, k))
    weight[0, c] = 1e12
    owner, _ = greedy_assign(x["gain"][None], weight, np.array([x["bits"]]), x["fixed"][None],
                             np.minimum(x["pmax"], x["total"] / k)[None], 1e6, noise_psd_w_per_hz(-174.0))
    counts = np.bincount(owner[0], minlength=k)
    assert counts[c] == s - k + 1 and np.all(np.delete(counts, c) == 1)


@SETTINGS
@given(x=links(), c=st.integers(0, 3), up=st.floats(0.05, 2.0))
def test_raising_a_priority_never_costs_subchannels_when_gains_are_flat(x, c, up):
    # with one gain per client (flat over subchannels) D_k depends only on k's own count and falls with it: the
    # greedy hands the spare subchannels to the S - K largest values w_k D_k(n); scaling w_k up keeps k's values
    # in that set (ties aside: the raise is a factor e^(2 * 0.05) or more)
    k, s = x["gain"].shape
    c = c % k
    gain = np.repeat(x["gain"][:, :1], s, axis=1)
    args = (np.array([x["bits"]]), x["fixed"][None], np.minimum(x["pmax"], x["total"] / k)[None], 1e6,
            noise_psd_w_per_hz(-174.0))
    base = np.exp(BETA * x["priority"])[None]
    raised = base.copy()
    raised[0, c] *= math.exp(BETA * up)
    before = np.bincount(greedy_assign(gain[None], base, *args)[0][0], minlength=k)
    after = np.bincount(greedy_assign(gain[None], raised, *args)[0][0], minlength=k)
    assert after[c] >= before[c]


@SETTINGS
@given(x=links())
def test_a_later_deadline_never_costs_more_power(x):
    # every client needs less rate for a later deadline: its budget, hence the link's total, cannot grow
    early = _decode({**x, "deadline": -0.5})[1].sum()
    late = _decode({**x, "deadline": 0.5})[1].sum()
    assert late <= early * (1 + 1e-9)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), k=st.integers(1, 4), extra=st.integers(0, 4))
def test_water_fill_and_min_power_for_rate_are_inverse(seed, k, extra):
    # water-filling the least power for a rate gives that rate; and that power is the least: a plain bisection
    rng = np.random.default_rng(seed)
    s = k + extra
    owner = rng.permutation(np.r_[np.arange(k), rng.integers(0, k, extra)])
    noise = 10 ** rng.uniform(-6, -2, s)
    rate = 10 ** rng.uniform(4, 7, k)
    need = min_power_for_rate(noise[None], owner[None], rate[None], 1e6)[0]
    p = water_fill(noise[None], owner[None], need[None])[0]
    got = np.bincount(owner, weights=1e6 * np.log2(1 + p / noise), minlength=k)
    np.testing.assert_allclose(got, rate, rtol=1e-9)
    for c in range(k):
        assert need[c] == pytest.approx(_ref_need(list(noise[owner == c]), rate[c], 1e6), rel=1e-9)


# ---- the env wrapper and the heuristic --------------------------------------------------------------------------------

def test_priority_env_decodes_with_the_round_payloads_and_counts_its_time(calibration_path):
    from fedsllm_env.delay import client_compute_s, payload_bits, project_split_rank
    from fedsllm_env.priority import PriorityEnv, make_priority_env, split_rank_bins

    env = make_priority_env({"wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 5},
                             "calibration_path": calibration_path})
    assert isinstance(env, PriorityEnv) and env.action_space.shape == (10,)  # 2 K + 4 with the config's K = 3
    env.reset(seed=3)
    base = env.unwrapped
    action = np.random.default_rng(0).uniform(-1, 1, 10)
    got = env.decode(action)
    # the same decision from the parts: split/rank bins, their memory projection, the forward time and the
    # activation + label bits of the MS upload, the LoRA bits of the FS upload
    split_idx, rank_idx = split_rank_bins(base.config, base.shape.n_layer, action[None])
    split, rank = project_split_rank(int(split_idx[0]) + 1, base.config.model.ranks[int(rank_idx[0])], base.shape,
                                     base.config)
    fwd, _ = client_compute_s(base.shape, split, rank, base.scenario, base.channel.load, base.config)
    act, label, lora = payload_bits(base.shape, split, rank, base.config)
    want = decode_priority(base.config, action[None], base.channel.gain_ms[None], base.channel.gain_fs[None],
                           fwd[None], np.array([act + label]), np.array([lora]), base.scenario.client_max_power_w[None])
    assert (got.split, got.rank) == (split, rank)
    for a, b in zip((got.assign_ms, got.power_ms_w, got.assign_fs, got.power_fs_w), want):
        np.testing.assert_array_equal(a, b[0])
    env.step(action)
    first = env.decode_time_s
    env.step(action)
    assert env.decode_count == 2 and env.decode_time_s > first > 0  # accumulated over the steps


def test_heuristic_action_layout():
    from fedsllm_env.priority import HEURISTIC_DEADLINE, PriorityHeuristic, priority_space

    for k in (1, 3, 5):
        a, _ = PriorityHeuristic(priority_space(k)).predict(np.zeros(7))
        expected = np.r_[np.zeros(2 * k), HEURISTIC_DEADLINE, HEURISTIC_DEADLINE, -1.0, 1.0].astype(np.float32)
        np.testing.assert_array_equal(a, expected)  # neutral priorities, both deadlines, smallest cut, largest rank
        batch, _ = PriorityHeuristic(priority_space(k)).predict(np.zeros((3, 7)))
        np.testing.assert_array_equal(batch, np.stack([expected] * 3))


def test_ties_in_the_best_gain_are_served_in_client_order():
    # K = 20 > 16: numpy's default (quick)sort is not stable there; gains from three levels tie everywhere
    rng = np.random.default_rng(11)
    for _ in range(5):
        gain = rng.choice([0.1, 0.2, 0.5], (20, 20))
        gain[np.arange(20), rng.integers(0, 20, 20)] = rng.integers(1, 4, 20)  # best gains: 1, 2 or 3, tied
        gain *= 1e-11
        args = (np.array([1e6]), np.zeros((1, 20)), np.full((1, 20), 0.03), 1e6, noise_psd_w_per_hz(-174.0))
        owner, _ = greedy_assign(gain[None], np.ones((1, 20)), *args)
        assert owner[0].tolist() == _ref_greedy(gain, np.ones(20), 1e6, np.zeros(20), np.full(20, 0.03), 1e6,
                                                noise_psd_w_per_hz(-174.0))[0]


def test_each_row_of_a_batch_is_decoded_on_its_own():
    rng = np.random.default_rng(5)
    rows = [_random_link(rng, 4, 9) for _ in range(6)]
    rows = [{**x, "total": rows[0]["total"], "bw": 1e6} for x in rows]  # one link config, six envs
    stack = {key: np.stack([x[key] for x in rows]) for key in ("gain", "priority", "deadline", "bits", "fixed", "pmax")}
    n0 = noise_psd_w_per_hz(-174.0)
    owner, power = decode_link(stack["gain"], stack["priority"], stack["deadline"], stack["bits"], stack["fixed"],
                               stack["pmax"], rows[0]["total"], 1e6, n0)
    share = np.minimum(stack["pmax"], rows[0]["total"] / 4)
    g_owner, d = greedy_assign(stack["gain"], np.exp(BETA * stack["priority"]), stack["bits"], stack["fixed"], share,
                               1e6, n0)
    for i, x in enumerate(rows):
        one_owner, one_power = decode_link(x["gain"][None], x["priority"][None], np.array([x["deadline"]]),
                                           np.array([x["bits"]]), x["fixed"][None], x["pmax"][None], x["total"],
                                           1e6, n0)
        np.testing.assert_array_equal(owner[i], one_owner[0])
        np.testing.assert_allclose(power[i], one_power[0], rtol=1e-12, atol=1e-15)
        ref_owner, ref_d = _ref_greedy(x["gain"], np.exp(BETA * x["priority"]), x["bits"], x["fixed"], share[i],
                                       1e6, n0)
        assert g_owner[i].tolist() == ref_owner
        np.testing.assert_allclose(d[i], ref_d, rtol=1e-12)


def test_split_and_rank_bins_hand_example():
    from fedsllm_env.priority import split_rank_bins

    cfg = FedsLLMConfig.from_dict({"model": {"ranks": [2, 4, 8], "initial_rank": 4}})
    # n_layer 6: 5 cut bins; (a + 1) / 2 * 5 for a = -1, -0.61, -0.59, 0, 0.99, 1 -> 0, 0.975, 1.025, 2.5, 4.975, 5
    # -> bins 0, 0, 1, 2, 4 and the last bin for a = 1; 3 rank bins: (a + 1) / 2 * 3 -> 0, 0.585, 0.615, 1.5, 2.985, 3
    a = np.array([-1.0, -0.61, -0.59, 0.0, 0.99, 1.0])
    action = np.zeros((6, 6))
    action[:, -2], action[:, -1] = a, a[::-1]
    split, rank = split_rank_bins(cfg, 6, action)
    assert split.tolist() == [0, 0, 1, 2, 4, 4] and rank.tolist() == [2, 2, 1, 0, 0, 0]
    split, _ = split_rank_bins(cfg, 6, np.c_[np.zeros((2, 4)), [[-3.0, 0.0], [3.0, 0.0]]])  # clipped first
    assert split.tolist() == [0, 4]


def test_validate_takes_a_batch_of_one_and_names_the_bad_entries():
    from fedsllm_env.errors import InvalidActionError
    from fedsllm_env.priority import validate

    a = validate(np.arange(10, dtype=np.float32)[None], (10,))
    assert a.shape == (10,) and a.dtype == np.float64 and a.tolist() == list(range(10))
    bad = np.zeros(10)
    bad[[2, 7]] = [np.nan, np.inf]
    with pytest.raises(InvalidActionError, match=r"NaN/inf at indices \[2, 7\]$"):
        validate(bad, (10,))
    with pytest.raises(InvalidActionError, match=r"shape \(2, 10\), expected \(10,\)"):
        validate(np.zeros((2, 10)), (10,))
    with pytest.raises(InvalidActionError, match="must be numeric, got str"):
        validate("x", (10,))


def test_a_fresh_priority_env_has_spent_no_decode_time(calibration_path):
    from fedsllm_env.priority import make_priority_env

    env = make_priority_env({"calibration_path": calibration_path})
    assert env.decode_time_s == 0.0 and env.decode_count == 0

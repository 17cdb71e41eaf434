"""Water-filling and exact min-max power control of baselines/ (vs brute force, scipy and cvxpy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from fedsllm_env.delay import client_rates_bps, decision_violations, round_delay
from fedsllm_env.profile import ModelShape
from baselines.instances import random_problem, sized_config
from baselines.power import (
    equal_power,
    owned_inv_snr,
    reference_link_power_cvxpy,
    solve_link_power,
    solve_link_power_batch,
)
from baselines.steps import power_step
from baselines.subchannel import random_assignment
from baselines.alternating import initial_decision
from baselines.waterfill import max_rate_for_power, min_power_for_rate, powers_from_level

SHAPE = ModelShape(n_layer=6, n_embd=128, n_head=4, vocab_size=500, n_positions=128)


def rounds_needed(rank: int) -> float:
    return 20.0 + 30.0 * rank ** -0.8


B_HZ = 1e6


def _rate(a: np.ndarray, p: np.ndarray) -> float:
    return float(np.sum(B_HZ * np.log2(1.0 + p / a)))


@pytest.mark.parametrize("seed", range(5))
def test_water_filling_inverse_pair_and_kkt(seed):
    rng = np.random.default_rng(seed)
    a = np.sort(rng.exponential(1e-3, 6))
    budget = float(rng.uniform(1e-4, 0.2))
    rate, nu = max_rate_for_power(a, budget, B_HZ)
    p = powers_from_level(a, nu)
    assert p.sum() == pytest.approx(budget, rel=1e-12)
    assert _rate(a, p) == pytest.approx(float(rate), rel=1e-12)
    # KKT: active channels share the level, inactive ones have a_i >= nu
    assert np.all((p > 0) | (a >= nu - 1e-15))
    # min power for that rate gives back the budget
    power, nu2 = min_power_for_rate(a, rate, B_HZ)
    assert float(power) == pytest.approx(budget, rel=1e-10)
    assert float(nu2) == pytest.approx(float(nu), rel=1e-10)
    # no random feasible split of the budget beats water-filling
    w = rng.dirichlet(np.ones(6), 2000) * budget
    assert np.max(np.sum(B_HZ * np.log2(1.0 + w / a), axis=1)) <= float(rate) * (1 + 1e-12)


def test_water_filling_edge_cases():
    a = np.array([1e-3, np.inf, np.inf])
    assert float(max_rate_for_power(a, 0.0, B_HZ)[0]) == 0.0
    assert float(min_power_for_rate(a, 0.0, B_HZ)[0]) == 0.0
    assert float(min_power_for_rate(np.full(3, np.inf), 1e6, B_HZ)[0]) == np.inf
    # batched shapes broadcast
    rates, _ = max_rate_for_power(np.sort(np.random.default_rng(0).exponential(1e-3, (4, 3, 5)), -1),
                                  np.array([0.1, 0.2, 0.3]), B_HZ)
    assert rates.shape == (4, 3)


def _brute_level(spec, assign) -> float:
    """Independent scalar solve: brentq on sum of per-client minimum powers (scipy)."""
    a_sorted = np.sort(owned_inv_snr(spec.inv_snr_w, assign), axis=-1)
    cap = np.minimum(spec.max_power_w, spec.total_power_w)
    rcap, _ = max_rate_for_power(a_sorted, cap, spec.bandwidth_hz)
    lo = float(np.max(spec.offset_s + spec.bits / rcap))

    def excess(t: float) -> float:
        p, _ = min_power_for_rate(a_sorted, spec.bits / (t - spec.offset_s), spec.bandwidth_hz)
        return float(p.sum() - spec.total_power_w)

    if excess(lo) <= 0:
        return lo
    hi = lo * 2
    while excess(hi) > 0:
        hi *= 2
    return brentq(excess, lo, hi, xtol=1e-15, rtol=1e-13)


CASES = [(5, 10, 0.6), (5, 10, 0.1), (3, 4, 0.2), (8, 16, 0.3)]


@pytest.mark.parametrize("k,m,p_total", CASES)
@pytest.mark.parametrize("link", ["ms", "fs"])
def test_power_solution_feasible_and_matches_cvxpy(k, m, p_total, link):
    cfg = sized_config(k, m, m, total_power_ms_w=p_total, total_power_fs_w=p_total)
    for seed in range(2):
        problem = random_problem(seed, cfg, SHAPE, rounds_needed)
        spec = problem.link(link, 2, 4)
        assign = random_assignment(np.random.default_rng(seed), k, m)
        sol = solve_link_power(spec, assign)
        # constraints (through the env's own checker)
        d = initial_decision(problem)
        d = d.replace(**({"assign_ms": assign, "power_ms_w": sol.power_w} if link == "ms"
                         else {"assign_fs": assign, "power_fs_w": sol.power_w}))
        assert decision_violations(d, problem.scenario, problem.shape, problem.cfg) == []
        # independent solves
        ref_level, ref_power = reference_link_power_cvxpy(spec, assign)
        assert sol.delay_s == pytest.approx(ref_level, rel=1e-4)
        assert sol.delay_s <= ref_level * (1 + 1e-7)  # ours is exact, the interior-point one is not better
        assert sol.delay_s == pytest.approx(_brute_level(spec, assign), rel=1e-9)
        # the level is what the env's rate formula gives
        rates = client_rates_bps(assign, sol.power_w, problem.channel.gain_ms if link == "ms" else
                                 problem.channel.gain_fs, spec.bandwidth_hz, problem.n0_w_per_hz)
        assert np.max(spec.offset_s + spec.bits / rates) == pytest.approx(sol.delay_s, rel=1e-12)
        # and it beats equal power
        eq = equal_power(assign, spec.max_power_w, spec.total_power_w)
        assert sol.delay_s <= spec.delay_s(assign, eq) * (1 + 1e-12)


def test_both_regimes_are_exercised():
    cfg_cap = sized_config(5, 10, 10)  # default p_th: the straggler's own cap binds
    cfg_tot = sized_config(5, 10, 10, total_power_ms_w=0.05, total_power_fs_w=0.05)
    flags = []
    for cfg in (cfg_cap, cfg_tot):
        problem = random_problem(0, cfg, SHAPE, rounds_needed)
        spec = problem.link("ms", 1, 4)
        flags.append(solve_link_power(spec, np.arange(10) % 5).cap_bound)
    assert flags == [True, False]


def test_batch_solver_matches_single_and_rejects_unserved_client():
    cfg = sized_config(4, 8, 8, total_power_ms_w=0.2)
    problem = random_problem(3, cfg, SHAPE, rounds_needed)
    spec = problem.link("ms", 3, 8)
    rng = np.random.default_rng(1)
    assigns = np.stack([random_assignment(rng, 4, 8) for _ in range(6)])
    levels, powers, _, _ = solve_link_power_batch(owned_inv_snr(spec.inv_snr_w, assigns), spec.bandwidth_hz,
                                                  spec.bits, spec.offset_s, spec.max_power_w, spec.total_power_w)
    for x, lv, p in zip(assigns, levels, powers):
        single = solve_link_power(spec, x)
        assert single.delay_s == pytest.approx(lv, rel=1e-11)
        np.testing.assert_allclose(single.power_w, p, rtol=1e-9, atol=1e-15)
    with pytest.raises(ValueError, match="client 3 owns no usable subchannel"):
        solve_link_power(spec, np.array([0, 1, 2, 0, 1, 2, 0, 1]))


@pytest.mark.parametrize("seed", range(4))
def test_power_step_never_increases_objective(seed):
    cfg = sized_config(5, 10, 10, total_power_ms_w=0.3, total_power_fs_w=0.2)
    problem = random_problem(seed, cfg, SHAPE, rounds_needed)
    d0 = initial_decision(problem)
    d1 = power_step(problem, d0)
    assert problem.objective_s(d1) <= problem.objective_s(d0)
    assert problem.objective_s(d1) < problem.objective_s(d0)  # equal power is not optimal here
    assert decision_violations(d1, problem.scenario, problem.shape, problem.cfg) == []
    bd = round_delay(d1, problem.channel, problem.scenario, problem.shape, problem.cfg)
    assert np.ptp(bd.lora_upload_s) / bd.lora_upload_s.max() < 1e-8  # total-bound FS link: equalised
    # idempotent
    d2 = power_step(problem, d1)
    assert problem.objective_s(d2) == pytest.approx(problem.objective_s(d1), rel=1e-12)

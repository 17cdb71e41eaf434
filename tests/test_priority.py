"""The priority action parametrisation (fedsllm_env.priority): feasibility, water-filling, greedy and deadline rules."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import fedsllm_env  # noqa: F401 - registers the ids
from fedsllm_env.delay import decision_violations, noise_psd_w_per_hz
from fedsllm_env.errors import InvalidActionError
from fedsllm_env.priority import (
    PriorityEnv,
    PriorityHeuristic,
    decode_link,
    greedy_assign,
    min_power_for_rate,
    water_fill,
)

ID = "FedsLLM-Surrogate-Priority-v0"
ODD = {"wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 7, "total_power_fs_w": 0.25},
       "compute": {"client_memory_bytes": 2.5e6}}


@pytest.mark.parametrize("overrides", [{}, ODD], ids=["default", "odd"])
def test_every_action_decodes_to_a_feasible_decision(overrides, calibration_path):
    env = gym.make(ID, config={**overrides, "calibration_path": calibration_path})
    env.reset(seed=0)
    env.action_space.seed(0)
    wrapper = env.env
    while not isinstance(wrapper, PriorityEnv):
        wrapper = wrapper.env
    base = env.unwrapped
    for t in range(30):
        action = env.action_space.sample() if t % 3 else np.sign(env.action_space.sample())  # corners too
        decision = wrapper.decode(action)
        assert decision_violations(decision, base.scenario, base.shape, base.config) == []
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:  # stepping on would raise ResetNeeded
            env.reset()
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(InvalidActionError, match="NaN"):
        env.step(np.full(env.action_space.shape, np.nan))


def _random_link(rng, b=64, k=5, s=10):
    gain = 10 ** rng.uniform(-13, -9, (b, k, s))
    owner = np.stack([rng.permutation(np.r_[np.arange(k), rng.integers(0, k, s - k)]) for _ in range(b)])
    noise = noise_psd_w_per_hz(-174.0) * 1e6 / np.take_along_axis(gain, owner[:, None, :], axis=1)[:, 0, :]
    return gain, owner, noise


def test_water_fill_spends_the_budget_and_meets_the_kkt_conditions():
    rng = np.random.default_rng(0)
    gain, owner, noise = _random_link(rng)
    budget = rng.uniform(0.01, 0.2, (64, 5))
    p = water_fill(noise, owner, budget)
    per_client = np.stack([np.bincount(o, weights=x, minlength=5) for o, x in zip(owner, p)])
    np.testing.assert_allclose(per_client, budget, rtol=1e-12)
    level = p + noise
    for b in range(64):
        for k in range(5):
            mine = owner[b] == k
            wet = mine & (p[b] > 0)
            mu = level[b][wet]
            np.testing.assert_allclose(mu, mu[0], rtol=1e-12)  # one water level per client
            assert np.all(noise[b][mine & ~wet] >= mu[0] * (1 - 1e-12))  # dry floors lie above it


def test_min_power_for_rate_inverts_water_filling():
    rng = np.random.default_rng(1)
    gain, owner, noise = _random_link(rng)
    rate = rng.uniform(1e5, 2e7, (64, 5))
    need = min_power_for_rate(noise, owner, rate, 1e6)
    p = water_fill(noise, owner, need)
    got = np.stack([np.bincount(o, weights=1e6 * np.log2(1 + x / n), minlength=5) for o, x, n in zip(owner, p, noise)])
    np.testing.assert_allclose(got, rate, rtol=1e-9)


def test_greedy_serves_everyone_and_follows_priorities():
    rng = np.random.default_rng(2)
    gain = 10 ** rng.uniform(-13, -9, (200, 5, 10))
    args = (np.full(200, 2e6), np.zeros((200, 5)), np.full((200, 5), 0.12), 1e6, noise_psd_w_per_hz(-174.0))
    even, _ = greedy_assign(gain, np.ones((200, 5)), *args)
    counts = np.stack([np.bincount(o, minlength=5) for o in even])
    assert counts.min() >= 1 and (counts.sum(axis=1) == 10).all()
    favour = np.ones((200, 5))
    favour[:, 2] = np.exp(2.0)
    fav, _ = greedy_assign(gain, favour, *args)
    fav_counts = np.stack([np.bincount(o, minlength=5) for o in fav])
    assert (fav_counts[:, 2] >= counts[:, 2]).all() and (fav_counts[:, 2] > counts[:, 2]).mean() > 0.5


def test_deadline_trades_power_and_very_tight_means_equal_power():
    rng = np.random.default_rng(3)
    gain = 10 ** rng.uniform(-13, -9, (50, 5, 10))
    common = dict(bits=np.full(50, 2e6), fixed_s=np.zeros((50, 5)), max_power_w=np.full((50, 5), 0.2),
                  total_power_w=0.6, bandwidth_hz=1e6, n0_w_per_hz=noise_psd_w_per_hz(-174.0))
    totals = []
    for d in (1.0, 0.0, -1.0):
        owner, p = decode_link(gain, np.zeros((50, 5)), np.full(50, d), **common)
        totals.append(p.sum(axis=1))
        assert np.all(p.sum(axis=1) <= 0.6 * (1 + 1e-12))
    assert np.all(totals[0] <= totals[1] + 1e-12) and np.all(totals[1] <= totals[2] + 1e-12)
    # a deadline no client can meet: everyone asks for p_max, the total limit scales all to 0.12 W
    owner, p = decode_link(gain, np.zeros((50, 5)), np.full(50, -1.0), **{**common, "bits": np.full(50, 1e12)})
    per_client = np.stack([np.bincount(o, weights=x, minlength=5) for o, x in zip(owner, p)])
    np.testing.assert_allclose(per_client, 0.12, rtol=1e-9)


def test_heuristic_is_a_fixed_action(calibration_path):
    cfg = {"calibration_path": calibration_path}
    env = gym.make(ID, config=cfg)
    heur = PriorityHeuristic(env)
    obs, _ = env.reset(seed=0)
    a, _ = heur.predict(obs)
    assert env.action_space.contains(a) and a[-1] == 1.0 and a[-2] == -1.0
    batch, _ = heur.predict(np.stack([obs, obs]))
    assert batch.shape == (2, *env.action_space.shape)


def test_price_plays_nothing_and_the_search_teacher_beats_the_neutral_action(calibration_path):
    from agents.imitation import search_demonstrations
    from fedsllm_env.vector import make_priority_vector_env

    cfg = {"calibration_path": calibration_path}
    a_env, b_env = make_priority_vector_env(4, config=cfg), make_priority_vector_env(4, config=cfg)
    a_env.reset(seed=1)
    b_env.reset(seed=1)
    action = a_env.action_space.sample()
    a_env.price(action)
    a_env.price(np.zeros_like(action))  # pricing neither draws nor moves the state
    np.testing.assert_array_equal(a_env.step(action)[0], b_env.step(action)[0])

    obs, act = search_demonstrations(ID, 24, seed=5, config=cfg, num_envs=8)
    assert obs.shape == (24, a_env.single_observation_space.shape[0]) and act.shape == (24, 14)
    env = make_priority_vector_env(8, config=cfg)
    np.testing.assert_array_equal(env.reset(seed=5)[0], obs[:8])
    neutral = act[:8].copy()
    neutral[:, :12] = 0.0  # same split and rank, neutral priorities and deadlines
    assert np.all(env.price(act[:8])[1].round_s <= env.price(neutral)[1].round_s)
    with pytest.raises(ValueError, match="priority"):
        search_demonstrations("FedsLLM-Surrogate-v0", 8, seed=0, config=cfg, num_envs=2)


def test_bc_only_priority_agent_and_its_benchmark_row(tmp_path, calibration_path, one_torch_thread):
    import json
    import math

    from train_scripts import benchmark, train

    run = train.main(["--env-id", ID, "--bc-teacher", "search", "--bc-samples", "64", "--bc-epochs", "2", "--bc-only",
                      "--calibration-path", calibration_path, "--runs-dir", str(tmp_path), "--run-name", "bc",
                      "--no-progress-bar", "--no-tensorboard"])
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["num_timesteps"] == 0 and summary["bc_loss_first_last"][1] < summary["bc_loss_first_last"][0]
    out = benchmark.main(["--agents", str(run), "--train-algos", "--baselines", "priority_heuristic", "--seeds", "5",
                          "--max-rounds", "3", "--calibration-path", calibration_path, "--runs-dir", str(tmp_path)])
    rows = {r["policy"]: r for r in json.loads((out / "benchmark.json").read_text())["rows"]}
    assert set(rows) == {"optimizer", "priority_heuristic", "ppo (bc)"}
    assert rows["ppo (bc)"]["train_wall_s"] == pytest.approx(summary["wall_time_s"])
    assert math.isnan(rows["priority_heuristic"]["train_wall_s"])
    assert rows["priority_heuristic"]["decision_ms_per_step"] > 0.05  # the greedy/deadline decoding is counted

"""Baselines behind SB3's predict(): same objective as the env, every action space, and the hybrid env."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import fedsllm_env  # noqa: F401
from baselines.alternating import initial_decision
from baselines.policy import BASELINE_NAMES, make_baseline_policy
from baselines.problem import Problem

IDS = ["FedsLLM-Surrogate-v0", "FedsLLM-Surrogate-Discrete-v0", "FedsLLM-Surrogate-Hybrid-v0"]


def test_optimizer_action_realises_its_objective_in_the_box_env(calibration_path):
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path})
    obs, _ = env.reset(seed=3)
    policy = make_baseline_policy("optimizer", env)
    action, state = policy.predict(obs)
    assert state is None and env.action_space.contains(action)
    _, _, _, _, info = env.step(action)
    assert info["expected_total_delay_s"] == pytest.approx(policy.last_result.objective_s, rel=1e-4)


@pytest.mark.parametrize("env_id", IDS)
def test_every_baseline_gives_valid_actions_and_the_optimizer_wins(env_id, calibration_path):
    env = gym.make(env_id, config={"calibration_path": calibration_path})
    obs, _ = env.reset(seed=0)
    delays = {}
    for name in BASELINE_NAMES:
        action, _ = make_baseline_policy(name, env, seed=1).predict(obs)
        assert env.action_space.contains(action), name
        replay = gym.make(env_id, config={"calibration_path": calibration_path})
        replay.reset(seed=0)
        delays[name] = replay.step(action)[4]["expected_total_delay_s"]
    assert delays["optimizer"] <= min(delays.values()) * (1 + 1e-2)


def test_batched_predict_and_bad_inputs(calibration_path):
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path})
    obs, _ = env.reset(seed=0)
    policy = make_baseline_policy("equal_power", env)
    actions, _ = policy.predict(np.stack([obs, obs]))
    assert actions.shape == (2, *env.action_space.shape)
    np.testing.assert_array_equal(actions[0], actions[1])
    with pytest.raises(ValueError, match="shape"):
        policy.predict(obs[:-1])
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline_policy("oracle", env)


def test_hybrid_env_conforms_and_keeps_the_agents_split_and_rank(calibration_path):
    env = gym.make("FedsLLM-Surrogate-Hybrid-v0", config={"calibration_path": calibration_path})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
    assert [str(w.message) for w in caught] == []
    env.reset(seed=2)
    _, _, _, _, info = env.step(np.array([2, 2]))
    assert (info["split"], info["rank"]) == (3, 16)
    assert env.unwrapped.action_masks().all()
    # the allocator's subchannels and power are no worse than the equal-power greedy start
    base = env.unwrapped
    env.reset(seed=2)
    problem = Problem(base.scenario, base.channel, base.shape, base.config, base.rounds_needed)
    start_s = problem.breakdown(initial_decision(problem, 3, 16)).round_s
    info = env.step(np.array([2, 2]))[4]
    assert 0 < info["round_delay_s"] <= start_s * (1 + 1e-12)
    assert info["round_delay_s"] < start_s  # and the optimizer improves on it here


def _draws(policy_name: str, seeds, calibration_path, reuse: bool = False):
    """(splits, ranks, first MS assignment) per episode of the evaluation harness."""
    from agents.evaluation import evaluate_policy_on_seeds

    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path,
                                                   "training": {"max_rounds": 4}})
    shared = make_baseline_policy(policy_name, env) if reuse else None
    out = []
    for seed in seeds:
        policy = shared or make_baseline_policy(policy_name, env)  # the harness binds a fresh one per episode
        rec = evaluate_policy_on_seeds(policy, env, [seed])[0]
        out.append((rec.splits, rec.ranks, tuple(policy.last_result.decision.assign_ms)))
    return out


@pytest.mark.parametrize("reuse", [False, True])
def test_all_random_draws_depend_on_the_episode_seed(calibration_path, reuse):
    a, b, a_again = _draws("all_random", [1, 2, 1], calibration_path, reuse)
    assert a == a_again  # same reset seed: same draws, whatever was played before
    assert (a[0], a[1]) != (b[0], b[1])  # another seed: another split/rank sequence
    assert len(set(zip(*a[:2]))) > 1  # and the draws vary within an episode


def test_random_subchannels_depends_on_the_episode_seed(calibration_path):
    a, b, a_again = _draws("random_subchannels", [3, 4, 3], calibration_path)
    assert a == a_again and a[2] != b[2]


def test_unseeded_reset_draws_anew_and_the_base_seed_matters(calibration_path):
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path})
    obs1, _ = env.reset(seed=5)
    obs2, _ = env.reset()  # continues the env's RNG: same np_random_seed, another observation
    policy = make_baseline_policy("all_random", env)
    rng1, rng2 = policy.decision_rng(obs1), policy.decision_rng(obs2)
    assert rng1.integers(2**62) != rng2.integers(2**62)
    other = make_baseline_policy("all_random", env, seed=1)
    assert policy.decision_rng(obs1).integers(2**62) != other.decision_rng(obs1).integers(2**62)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        make_baseline_policy("all_random", env, seed=-1)

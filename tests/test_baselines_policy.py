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

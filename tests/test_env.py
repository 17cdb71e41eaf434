"""FedsLLMEnv API conformance, determinism, reward/termination semantics (surrogate mode)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.utils.env_checker import data_equivalence
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import fedsllm_env  # noqa: F401 - registers the ids
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.errors import ConfigError, InvalidActionError, ResetNeeded

SURROGATE_IDS = ["FedsLLM-Surrogate-v0", "FedsLLM-Surrogate-Discrete-v0"]
ALLOWED_WARNINGS: tuple[str, ...] = ()


@pytest.mark.parametrize("env_id", SURROGATE_IDS)
def test_gymnasium_and_sb3_checkers_pass_without_warnings(env_id, calibration_path):
    env = gym.make(env_id, config={"calibration_path": calibration_path})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED_WARNINGS)]
    assert unexpected == []


@pytest.mark.parametrize("env_id", SURROGATE_IDS)
def test_same_seed_same_episode(env_id, calibration_path):
    def rollout(seed):
        env = gym.make(env_id, config={"calibration_path": calibration_path})
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        traj = [obs]
        for _ in range(25):
            obs, r, term, trunc, info = env.step(env.action_space.sample())
            traj.append((obs, r, term, trunc, info))
            if term or trunc:
                break
        return traj

    assert data_equivalence(rollout(3), rollout(3), exact=True)
    assert not data_equivalence(rollout(3), rollout(4))


def test_step_before_reset_and_bad_actions(surrogate_config):
    env = FedsLLMEnv(surrogate_config)
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.zeros(3, dtype=np.float32))
    nan_action = env.action_space.sample()
    nan_action[5] = np.nan
    with pytest.raises(InvalidActionError, match="NaN"):
        env.step(nan_action)


def test_return_is_minus_total_delay_and_info_has_every_term(surrogate_config):
    env = FedsLLMEnv(surrogate_config)
    env.reset(seed=1)
    env.action_space.seed(1)
    total_reward, info = 0.0, {}
    for _ in range(200):
        _, r, term, trunc, info = env.step(env.action_space.sample())
        total_reward += r
        assert r == pytest.approx(sum(info["reward_terms"].values()))
        assert info["expected_total_delay_s"] == pytest.approx(info["expected_rounds"] * info["round_delay_s"])
        if term or trunc:
            break
    assert total_reward == pytest.approx(-info["cumulative_delay_s"])
    for key in ("client_forward_s", "activation_upload_s", "server_compute_s", "gradient_download_s",
                "lora_upload_s", "broadcast_s", "iteration_s", "round_s"):
        assert np.isfinite(info["delay_breakdown"][key])
    assert term  # the synthetic curves reach the target well before max_rounds
    assert info["val_loss"] <= info["target_val_loss"]


def test_truncates_at_round_cap(calibration_path):
    env = FedsLLMEnv({"calibration_path": calibration_path, "training": {"max_rounds": 3}})
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(3)]
    assert flags[-1] == (False, True) and flags[0] == (False, False)


def test_higher_rank_reaches_target_in_fewer_rounds(calibration_path):
    env = FedsLLMEnv({"calibration_path": calibration_path})
    codec = env.action_codec

    def rounds_with(rank):
        env.reset(seed=0)
        for t in range(1, 100):
            d = codec.decode(env.action_space.sample(), env.scenario, env.channel).replace(rank=rank)
            if env.step_decision(d)[2]:
                return t
        return None

    assert rounds_with(64) < rounds_with(4)


def test_render_and_bad_render_mode(surrogate_config):
    env = FedsLLMEnv(surrogate_config, render_mode="ansi")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert "T_round" in env.render()
    with pytest.raises(ConfigError, match="render_mode"):
        FedsLLMEnv(surrogate_config, render_mode="human")


def test_hybrid_with_an_unknown_allocator_is_a_clear_error(calibration_path):
    with pytest.raises(ConfigError, match="allocator.*'no-such-allocator'"):
        FedsLLMEnv({"calibration_path": calibration_path, "action_mode": "hybrid"}, allocator="no-such-allocator")


def test_unknown_config_key_through_gym_make(calibration_path):
    with pytest.raises(ConfigError, match="num_clientz"):
        gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path,
                                                 "wireless": {"num_clientz": 2}})

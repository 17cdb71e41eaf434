"""SB3 on the batched surrogate (agents.vec_env): same data as a DummyVecEnv, same PPO, masks, train wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure

from agents.callbacks import FedsLLMInfoCallback
from agents.training import make_training_env, train_agent
from agents.vec_env import BatchedVecEnv, has_batched_env, make_batched_vec_env

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_PPO = {"n_steps": 16, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [16, 16]}}


@pytest.fixture()
def cfg(calibration_path) -> dict:
    return {"calibration_path": calibration_path, "training": {"max_rounds": 9}}


def test_batched_vec_env_returns_what_a_dummy_vec_env_returns(cfg):
    batched = make_training_env("FedsLLM-Surrogate-v0", 4, seed=3, config=cfg, vec_env="batched")
    dummy = make_training_env("FedsLLM-Surrogate-v0", 4, seed=3, config=cfg, vec_env="dummy")
    assert isinstance(batched.unwrapped, BatchedVecEnv)
    np.testing.assert_array_equal(batched.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    ends = truncations = 0
    for _ in range(40):
        action = rng.uniform(-1, 1, (4, *batched.action_space.shape)).astype(np.float32)
        o1, r1, d1, i1 = batched.step(action)
        o2, r2, d2, i2 = dummy.step(action)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        assert r1.dtype == r2.dtype == np.float32
        np.testing.assert_array_equal(d1, d2)
        for a, b, done in zip(i1, i2, d1):
            if done:
                ends += 1
                np.testing.assert_array_equal(a["terminal_observation"], b["terminal_observation"])
                assert a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
                truncations += int(a["TimeLimit.truncated"])
                assert a["episode"]["l"] == b["episode"]["l"]
                for key in ("cumulative_delay_s", "round", "val_loss", "rank", "split"):
                    assert a[key] == b[key]
                assert a["delay_breakdown"] == b["delay_breakdown"]
    assert ends > 0 and truncations > 0
    means = batched.step_means  # VecMonitor forwards attribute reads to the adapter
    assert means["round_delay_s"] > 0 and "delay_breakdown/round_s" in means


def test_ppo_learns_the_same_on_batched_and_dummy(cfg):
    def train(kind):
        env = make_training_env("FedsLLM-Surrogate-v0", 4, seed=1, config=cfg, vec_env=kind)
        model = PPO("MlpPolicy", env, seed=7, device="cpu", **TINY_PPO)
        model.learn(64)
        return [p.detach().clone() for p in model.policy.parameters()]

    for a, b in zip(train("batched"), train("dummy")):
        assert torch.equal(a, b)


def test_maskable_ppo_on_the_batched_discrete_env(cfg):
    env = make_batched_vec_env("FedsLLM-Surrogate-Discrete-v0", 4, seed=0, config=cfg)
    masks = np.stack(env.env_method("action_masks"))
    assert masks.shape == (4, int(env.action_space.nvec.sum())) and masks.all()
    model = MaskablePPO("MlpPolicy", env, seed=0, device="cpu", **TINY_PPO)
    model.learn(64)
    assert model.num_timesteps >= 64


def test_train_agent_uses_the_batched_env_and_logs_episodes(cfg, tmp_path):
    result = train_agent("ppo", tmp_path / "run", seed=0, total_timesteps=256, config=cfg, hyperparams=TINY_PPO,
                         n_envs=8, tensorboard=False)
    assert (tmp_path / "run" / "monitor" / "batched.monitor.csv").is_file()
    assert result.episodes and all(e["rounds"] <= 9 for e in result.episodes)
    assert {"total_delay_s", "rounds", "terminated", "final_val_loss"} <= set(result.episodes[0])


def test_callback_logs_the_batch_means(cfg, tmp_path):
    env = make_batched_vec_env("FedsLLM-Surrogate-v0", 4, seed=0, config=cfg)
    model = PPO("MlpPolicy", env, seed=0, device="cpu", **TINY_PPO)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    cb = FedsLLMInfoCallback()
    model.learn(64, callback=cb)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("fedsllm/delay/round_s", "fedsllm/reward/delay", "fedsllm/round_delay_s", "fedsllm/rank",
                "fedsllm/episode/total_delay_s"):
        assert key in header
    assert cb.episodes and all(e["rounds"] <= 9 for e in cb.episodes)


def test_ids_without_a_batched_version(cfg):
    assert has_batched_env("FedsLLM-Surrogate-v0") and has_batched_env("FedsLLM-Surrogate-Discrete-v0")
    assert not has_batched_env("FedsLLM-Surrogate-Hybrid-v0") and not has_batched_env("FedsLLM-v0")
    with pytest.raises(ValueError, match="no batched version"):
        make_batched_vec_env("FedsLLM-Surrogate-Hybrid-v0", 2, 0, cfg)
    with pytest.raises(ValueError, match="unknown vec_env"):
        make_training_env("FedsLLM-Surrogate-v0", 2, 0, cfg, vec_env="threads")

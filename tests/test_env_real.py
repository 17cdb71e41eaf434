"""FedsLLMEnv in real mode: each step trains a (tiny, random) GPT-2 with split-federated LoRA."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.utils.env_checker import data_equivalence
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import fedsllm_env  # noqa: F401
from fedsllm_env.config import FedsLLMConfig, ModelConfig, TrainingConfig, WirelessConfig
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.splitfed import SplitFedEngine
from fedsllm_env.splitfed.model import build_random_gpt2
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore:dataset "),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def tiny_parts():
    tok = default_word_tokenizer()
    return build_random_gpt2(tok, n_layer=3, n_embd=32, n_head=4, n_positions=64, seed=3), tok


def _cfg(calibration_path, action_mode="box", max_rounds=4):
    return FedsLLMConfig(
        mode="real", action_mode=action_mode, calibration_path=calibration_path,
        wireless=WirelessConfig(num_clients=3, num_subchannels_ms=4, num_subchannels_fs=4),
        model=ModelConfig(ranks=(1, 2, 4), initial_rank=2),
        training=TrainingConfig(batch_size=4, seq_len=32, local_iterations=1, num_train_samples=96,
                                num_val_samples=8, val_batches=1, max_rounds=max_rounds, target_val_loss=0.5))


def _env(calibration_path, tiny_parts, **kw):
    model, tok = tiny_parts
    cfg = _cfg(calibration_path, **kw)
    with pytest.warns(UserWarning, match="differs from the calibrated"):
        return FedsLLMEnv(cfg, backend=SplitFedEngine(cfg, model=model, tokenizer=tok, progress=False))


@pytest.mark.parametrize("action_mode", ["box", "multidiscrete"])
def test_real_env_passes_both_checkers(calibration_path, tiny_parts, action_mode):
    env = _env(calibration_path, tiny_parts, action_mode=action_mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    assert [str(w.message) for w in caught if not issubclass(w.category, FutureWarning)] == []


def test_real_step_trains_and_reports_measured_payloads(calibration_path, tiny_parts):
    env = _env(calibration_path, tiny_parts)
    _, info0 = env.reset(seed=0)
    losses = []
    for _ in range(4):
        _, _, term, trunc, info = env.step(env.action_space.sample())
        losses.append(info["train_loss"])
        b = info["delay_breakdown"]
        m = info["measured"]
        assert m["activation_bytes"] * 8 == b["activation_bits"]
        assert m["lora_bytes"] * 8 == b["lora_bits"]
        assert env.last_timing["train_s"] > 0 and env.last_timing["wall_s"] >= env.last_timing["train_s"]
    assert trunc and not term
    assert np.isfinite(losses).all() and info["val_loss"] < info0["val_loss"]


def test_real_env_same_seed_same_episode(calibration_path, tiny_parts):
    def rollout(seed):
        env = _env(calibration_path, tiny_parts, max_rounds=3)
        env.action_space.seed(seed)
        out = [env.reset(seed=seed)]
        for _ in range(3):
            obs, r, term, trunc, info = env.step(env.action_space.sample())
            out.append((obs, r, term, trunc, info))
        return out

    assert data_equivalence(rollout(5), rollout(5), exact=True)


def test_registered_real_id_builds_through_gym_make(calibration_path, tiny_parts):
    model, tok = tiny_parts
    cfg = _cfg(calibration_path)
    backend = SplitFedEngine(cfg, model=model, tokenizer=tok, progress=False)
    with pytest.warns(UserWarning, match="differs"):
        env = gym.make("FedsLLM-v0", config=cfg, backend=backend)
    assert env.unwrapped.config.mode == "real"
    env.reset(seed=1)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["round"] == 1


def test_real_hybrid_id_trains_with_the_optimizers_allocation(calibration_path, tiny_parts):
    model, tok = tiny_parts
    cfg = _cfg(calibration_path, action_mode="hybrid")
    backend = SplitFedEngine(cfg, model=model, tokenizer=tok, progress=False)
    with pytest.warns(UserWarning, match="differs"):
        env = gym.make("FedsLLM-Hybrid-v0", config=cfg, backend=backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)  # re-makes the env from its spec: same warning
    assert [str(w.message) for w in caught
            if not issubclass(w.category, FutureWarning) and "differs from the calibrated" not in str(w.message)] == []
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1, 2]))
    assert (info["split"], info["rank"]) == (2, 4)
    assert info["measured"]["lora_bytes"] * 8 == info["delay_breakdown"]["lora_bits"]

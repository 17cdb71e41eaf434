"""The RLlib env creator without Ray: per-runner seeding from (worker_index, vector_index), lazy real engine."""

from __future__ import annotations

import importlib.util
import warnings

import gymnasium as gym
import numpy as np
import pytest

from agents.rllib import RunnerSeed, fedsllm_env_ids, make_rllib_env, runner_seed
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.splitfed.lazy import LazyEngine

SMALL = {"wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 4},
         "training": {"max_rounds": 5}}


class _Ctx(dict):
    """Mimics RLlib's EnvContext: the env_config dict with worker/vector indices as attributes."""

    def __init__(self, data, worker_index=0, vector_index=0):
        super().__init__(data)
        self.worker_index, self.vector_index = worker_index, vector_index


def _config(calibration_path, seed=0):
    return {"config": {**SMALL, "calibration_path": calibration_path}, "seed": seed}


def test_runner_seed_mixes_all_three_numbers():
    seeds = {runner_seed(s, w, v) for s in (0, 1) for w in range(3) for v in range(3)}
    assert len(seeds) == 18
    assert runner_seed(4, 1, 2) == runner_seed(4, 1, 2)
    with pytest.raises(ValueError, match=">= 0"):
        runner_seed(-1, 0, 0)


def test_envs_of_one_runner_are_numbered_and_seeded_from_their_place(calibration_path):
    ctx = _Ctx(_config(calibration_path, seed=3), worker_index=2)
    envs = [make_rllib_env("FedsLLM-Surrogate-v0", ctx) for _ in range(3)]  # RLlib's new stack: same context
    assert [e.vector_index for e in envs] == [0, 1, 2] and {e.worker_index for e in envs} == {2}
    first = [e.reset()[0] for e in envs]
    assert [e.unwrapped.np_random_seed for e in envs] == [runner_seed(3, 2, v) for v in range(3)]
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    # the same place gives the same episode; an explicit reset seed is mixed with the place
    again = make_rllib_env("FedsLLM-Surrogate-v0", _Ctx(_config(calibration_path, seed=3), worker_index=2))
    np.testing.assert_array_equal(again.reset()[0], first[0])
    envs[1].reset(seed=11)
    assert envs[1].unwrapped.np_random_seed == runner_seed(11, 2, 1)
    # a later reset without a seed continues the stream instead of restarting it
    assert not np.array_equal(envs[0].reset()[0], first[0])


def test_vector_entry_point_and_plain_dict(calibration_path):
    vec = make_rllib_env("FedsLLM-Surrogate-v0", _Ctx({**_config(calibration_path), "num_envs": 3}, worker_index=1))
    assert isinstance(vec, gym.vector.SyncVectorEnv) and vec.num_envs == 3
    vec.reset()
    assert [e.unwrapped.np_random_seed for e in vec.envs] == [runner_seed(0, 1, v) for v in range(3)]
    plain = make_rllib_env("FedsLLM-Surrogate-Discrete-v0", _config(calibration_path))
    assert isinstance(plain, RunnerSeed) and (plain.worker_index, plain.vector_index) == (0, 0)
    assert isinstance(plain.action_space, gym.spaces.MultiDiscrete)
    assert "FedsLLM-v0" in fedsllm_env_ids() and "FedsLLM-Surrogate-Hybrid-v0" in fedsllm_env_ids()
    with pytest.raises(Exception, match="num_clients"):
        make_rllib_env("FedsLLM-Surrogate-v0", {"config": {"wireless": {"num_clients": 0}}})


def test_real_mode_engine_is_built_at_the_first_reset(calibration_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSLLM_CACHE_DIR", str(tmp_path))
    config = {"calibration_path": calibration_path,
              "wireless": {"num_clients": 2, "num_subchannels_ms": 2, "num_subchannels_fs": 2},
              "model": {"tiny_n_layer": 2, "tiny_n_embd": 32, "tiny_n_head": 2, "tiny_pretrain_steps": 2,
                        "ranks": [1, 2], "initial_rank": 1},
              "training": {"batch_size": 2, "seq_len": 32, "local_iterations": 1, "num_train_samples": 16,
                           "num_val_samples": 4, "val_batches": 1, "max_rounds": 2}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic calibration was "measured" on another shape
        env = make_rllib_env("FedsLLM-v0", _Ctx({"config": config}, worker_index=1))
        backend = env.unwrapped.backend
        assert isinstance(backend, LazyEngine) and not backend.built
        assert env.observation_space.shape == env.unwrapped.observation_codec.space().shape
        with pytest.raises(RuntimeError, match="reset"):
            backend.run_round(1, 1)
        env.reset()
        assert backend.built and backend.engine.shape == backend.shape and backend.shape.n_layer == 2
        _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward)


@pytest.mark.parametrize("family", ["llama", "qwen2", "opt-proj"])
def test_backbone_shape_of_a_saved_model_without_its_weights(family, tmp_path):
    from fedsllm_env.splitfed.backbones import adapter_for
    from fedsllm_env.splitfed.lazy import backbone_shape
    from fedsllm_env.splitfed.model import build_random_model
    from fedsllm_env.splitfed.zoo import tiny_config

    model = build_random_model(tiny_config(family, 64), seed=0)
    model.save_pretrained(tmp_path / family)
    for weights in (tmp_path / family).glob("*.safetensors"):
        weights.unlink()  # the shape must come from the configuration alone
    cfg = FedsLLMConfig.from_dict({"model": {"backbone": str(tmp_path / family)}})
    assert backbone_shape(cfg) == adapter_for(model.config).shape(model)


def test_lazy_engine_refuses_an_engine_of_another_shape(calibration_path):
    from fedsllm_env.profile import ModelShape

    declared, other = ModelShape(2, 32, 2, 100), ModelShape(3, 32, 2, 100)
    built = type("Stub", (), {"shape": other, "reset": lambda self, seed: 1.0})()
    lazy = LazyEngine(FedsLLMConfig(), build=lambda: built, shape=declared)
    assert lazy.shape == declared and not lazy.built
    with pytest.raises(RuntimeError, match="differs from the declared"):
        lazy.reset(0)


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.rllib") is not None,
                    reason="RLlib is installed")
def test_rllib_framework_without_rllib_names_the_extra(tmp_path):
    from fedsllm_env.errors import DependencyNotInstalled
    from train_scripts import train

    with pytest.raises(DependencyNotInstalled, match=r"fedsllm-env\[rllib\]"):
        train.main(["--framework", "rllib", "--runs-dir", str(tmp_path), "--run-name", "x"])
    assert not (tmp_path / "x").exists()

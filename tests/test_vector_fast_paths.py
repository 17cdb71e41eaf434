"""The shortcuts of the batched surrogate's hot path against the single env's own code (beside the bit-for-bit
episode tests of tests/test_vector_env.py): a large batch with many simultaneous resets and repairs, gains
under the observation's floor, action dtypes, huge MultiDiscrete entries, and the vector-info layout."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import fedsllm_env  # noqa: F401 - registers the ids
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.errors import InvalidActionError
from fedsllm_env.types import ChannelState, Scenario
from fedsllm_env.vector import SurrogateVectorEnv
from fedsllm_env.vector.codecs import encode_observations


def test_large_batch_with_float64_and_integer_actions_matches_single_envs(calibration_path):
    """24 envs: many rows repaired in several passes and several envs reset in the same step; float32, float64
    and integer action arrays take the same path as the single env's float64 conversion."""
    config = {"calibration_path": calibration_path, "training": {"max_rounds": 12}}
    n = 24
    batch = gym.make_vec("FedsLLM-Surrogate-v0", num_envs=n, vectorization_mode="vector_entry_point", config=config)
    ref = SyncVectorEnv([lambda: gym.make("FedsLLM-Surrogate-v0", config=config) for _ in range(n)],
                        autoreset_mode=AutoresetMode.SAME_STEP)
    assert data_equivalence(batch.reset(seed=3), ref.reset(seed=3), exact=True)
    batch.action_space.seed(9)
    rng = np.random.default_rng(0)
    simultaneous = 0
    for t in range(60):
        action = batch.action_space.sample()
        if t % 3 == 1:
            action = action.astype(np.float64)
        elif t % 3 == 2:  # integers in [-1, 1]: many tied logits
            action = rng.integers(-1, 2, size=action.shape)
        got, want = batch.step(action), ref.step(action)
        assert data_equivalence(got, want, exact=True), f"step {t} differs"
        simultaneous = max(simultaneous, int((got[2] | got[3]).sum()))
    assert simultaneous >= 2


def test_observation_of_gains_below_the_floor_matches_the_single_codec(calibration_path):
    """The batch skips the single codec's max(gain, 1e-30): gains at, under and around the floor, and zero."""
    env = FedsLLMEnv({"calibration_path": calibration_path})
    codec, cfg, shape = env.observation_codec, env.config, env.shape
    w = cfg.wireless
    k, m, n = w.num_clients, w.num_subchannels_ms, w.num_subchannels_fs
    rng = np.random.default_rng(1)
    special = np.array([0.0, 1e-300, 1e-31, 1e-30, np.nextafter(1e-30, 1.0), 1e-20, 1e-4, 1.0, 1e3])
    gain = 10.0 ** rng.uniform(-35, 2, (4, k * (m + n)))
    gain[0, :special.size] = special
    load = rng.uniform(0, 0.9, (4, k))
    peak = rng.uniform(1e9, 4e9, (4, k))
    split = np.array([1, 2, 3, 1])
    rank_idx = np.array([0, 1, 2, 3])
    val = np.array([3.0, 2.5, 9.0, 0.1])
    rounds = np.array([0, 3, 7, 100])
    init = 3.2
    got = encode_observations(cfg, shape, gain, load, peak, split, rank_idx, val, init, rounds)
    for i in range(4):
        channel = ChannelState(gain[i, :k * m].reshape(k, m), gain[i, k * m:].reshape(k, n), load[i])
        scenario = Scenario(peak[i], np.ones(k), np.ones(k))
        want = codec.encode(channel, scenario, int(split[i]), cfg.model.ranks[rank_idx[i]], float(val[i]), init,
                            int(rounds[i]))
        np.testing.assert_array_equal(got[i], want)
    assert got[0, 0] == got[0, 1] == -1.0


def test_huge_multidiscrete_entries_project_like_the_single_env(calibration_path):
    """A 1e20 choice is clipped in float before the int cast (the last choice), as the single codec does."""
    config = {"calibration_path": calibration_path, "action_mode": "multidiscrete"}
    batch = SurrogateVectorEnv(2, config)
    batch.reset(seed=5)
    singles = [FedsLLMEnv(config) for _ in range(2)]
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    action = np.zeros((2, batch.single_action_space.shape[0]))
    action[0] = 1e20
    action[1, ::2] = -1e20
    obs, reward, *_ = batch.step(action)
    for i, env in enumerate(singles):
        o, r, *_ = env.step(action[i])
        np.testing.assert_array_equal(obs[i], o)
        assert reward[i] == r


def test_vector_info_rows_are_independent(calibration_path):
    """Every info array and mask is its own memory: Gymnasium's _add_info edits them in place."""
    env = SurrogateVectorEnv(4, {"calibration_path": calibration_path, "training": {"max_rounds": 2}})
    env.reset(seed=0)
    env.step(env.action_space.sample())
    _, _, term, trunc, info = env.step(env.action_space.sample())
    assert (term | trunc).all() and "final_info" in info
    final = info["final_info"]
    before = {key: value.copy() for key, value in final.items() if isinstance(value, np.ndarray)}
    final["_round"][0] = False
    final["round"][0] = -1
    final["delay_breakdown"]["round_s"][1] = -1.0
    for key, value in before.items():
        if key not in ("_round", "round"):
            np.testing.assert_array_equal(final[key], value)
    assert final["_split"][0] and final["_delay_breakdown"][0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinite_actions_are_rejected_for_every_dtype(calibration_path, dtype):
    env = SurrogateVectorEnv(3, {"calibration_path": calibration_path})
    env.reset(seed=0)
    bad = env.action_space.sample().astype(dtype)
    bad[2, 7] = np.inf
    with pytest.raises(InvalidActionError, match="env 2"):
        env.step(bad)
    with pytest.raises(InvalidActionError, match="numeric"):
        env.step([["a"] * bad.shape[1]] * 3)

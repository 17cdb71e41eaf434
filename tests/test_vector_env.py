"""The batched surrogate (SurrogateVectorEnv) against the single env: bit-for-bit over whole episodes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import fedsllm_env  # noqa: F401 - registers the ids
from fedsllm_env.backends import SurrogateBackend
from fedsllm_env.calibration import build_calibration, load_calibration
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import ConfigError, InvalidActionError, ResetNeeded
from fedsllm_env.vector import SurrogateVectorEnv
from fedsllm_env.batched import first_argmax, first_argmax_finite, repair_assignments
from fedsllm_env.codecs import repair_assignment
from fedsllm_env.vector.surrogate import BatchedSurrogate

ROOT = Path(__file__).resolve().parents[1]
IDS = {"box": "FedsLLM-Surrogate-v0", "multidiscrete": "FedsLLM-Surrogate-Discrete-v0",
       "priority": "FedsLLM-Surrogate-Priority-v0"}

# a config away from every default that the batch must follow: K != 5, M != N, mobility, progress reward,
# a delay scale, unequal power limits, a memory limit that projects split/rank, a short round cap
ODD = {"wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 6, "mobility_speed_mps": 5.0,
                    "total_power_fs_w": 0.25, "fading_correlation": 0.7},
       "compute": {"client_memory_bytes": 2.9e6, "load_ar_coef": 0.5},
       "reward": {"progress_weight": 0.5, "delay_scale_s": 3.0},
       "training": {"max_rounds": 10}}
# equal link sizes (M = N: the Box and MultiDiscrete decoders stack both links into one batch) with unequal total
# power limits and bandwidths per link, so a link that takes the other's limit or row shows
EQUAL = {"wireless": {"num_clients": 4, "num_subchannels_ms": 6, "num_subchannels_fs": 6, "total_power_ms_w": 0.35,
                      "total_power_fs_w": 0.15, "subchannel_bandwidth_fs_hz": 5e5},
         "training": {"max_rounds": 10}}


@pytest.fixture(scope="module")
def cut_calibration(tmp_path_factory) -> str:
    """A schema-v2 calibration whose curves depend on the cut (1 and 3 measured, 2 interpolated, 4-5 beyond) and
    whose (lowest rank, cut 3) cell never reaches the target (censored): test-only numbers."""
    from conftest import TEST_SHAPE

    ranks = FedsLLMConfig().model.ranks
    runs = []
    for r in ranks:
        for c in (1, 3):
            tau = 12.0 * r ** -0.3 * (1.0 + 0.25 * (c - 1)) * (3.0 if (r, c) == (ranks[0], 3) else 1.0)
            for seed in (0, 1):
                curve = [1.0 + 3.0 * float(np.exp(-(t + 1) / tau)) + 0.02 * float(np.sin(seed + t)) for t in range(30)]
                runs.append({"rank": r, "split": c, "partition": "iid", "seed": seed, "initial_val_loss": 4.0,
                             "val_loss_curve": curve, "train_loss_curve": curve})
    data = build_calibration(runs, TEST_SHAPE, {}, 30, "iid", "tests/test_vector_env.py synthetic")
    path = tmp_path_factory.mktemp("cal2") / "calibration.json"
    path.write_text(json.dumps(data))
    cal = load_calibration(path)
    assert math.isinf(cal.rounds_needed(ranks[0], 3)) and cal.rounds_needed(16, 3) > cal.rounds_needed(16, 1)
    return str(path)


def _reference(env_id: str, n: int, config: dict) -> SyncVectorEnv:
    """n single envs in Gymnasium's own SAME_STEP vectoriser: env i reset with seed + i, then plain reset()s."""
    return SyncVectorEnv([lambda: gym.make(env_id, config=config) for _ in range(n)],
                         autoreset_mode=AutoresetMode.SAME_STEP)


@pytest.mark.parametrize("mode", ["box", "multidiscrete", "priority"])
@pytest.mark.parametrize("overrides", [{}, ODD, EQUAL, "cuts"], ids=["default", "odd", "equal-links", "cut-dependent"])
def test_batch_equals_single_envs_bit_for_bit_with_autoreset(mode, overrides, calibration_path, cut_calibration):
    if overrides == "cuts":  # E(r, c) and curves that depend on the cut, one censored cell
        config = {"calibration_path": cut_calibration, "training": {"max_rounds": 16}}
    else:
        config = {**overrides, "calibration_path": calibration_path}
    n = 6
    batch = gym.make_vec(IDS[mode], num_envs=n, vectorization_mode="vector_entry_point", config=config)
    ref = _reference(IDS[mode], n, config)
    assert isinstance(batch.unwrapped, SurrogateVectorEnv)
    assert batch.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert batch.single_observation_space == ref.single_observation_space
    assert batch.single_action_space == ref.single_action_space
    assert data_equivalence(batch.reset(seed=11), ref.reset(seed=11), exact=True)
    batch.action_space.seed(5)
    terminated = truncated = 0
    for t in range(160):
        action = batch.action_space.sample()
        got, want = batch.step(action), ref.step(action)
        assert data_equivalence(got, want, exact=True), f"step {t} differs"
        terminated += int(got[2].sum())
        truncated += int(got[3].sum())
    # whole episodes, both ways of ending them, and the autoreset after each
    assert terminated > 0 and (truncated > 0 or overrides == {})


def test_env_i_is_the_single_env_seeded_s_plus_i(calibration_path):
    config = {"calibration_path": calibration_path, "training": {"max_rounds": 15}}
    n, seed = 3, 40
    batch = SurrogateVectorEnv(n, config)
    obs, _ = batch.reset(seed=seed)
    singles = [gym.make(IDS["box"], config=config) for _ in range(n)]
    expected = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack(expected))
    rng = np.random.default_rng(0)
    for _ in range(40):
        action = rng.uniform(-1, 1, batch.action_space.shape).astype(np.float32)
        obs, reward, term, trunc, info = batch.step(action)
        for i, env in enumerate(singles):
            o, r, te, tr, inf = env.step(action[i])
            assert (r, te, tr) == (reward[i], term[i], trunc[i])
            if te or tr:
                np.testing.assert_array_equal(info["final_obs"][i], o)
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)


def test_odd_config_exercises_the_projections(calibration_path):
    """The ODD config really projects split/rank and total power (else the equality test proves less)."""
    env = SurrogateVectorEnv(64, {**ODD, "calibration_path": calibration_path})
    env.reset(seed=0)
    env.action_space.seed(1)
    sb = env.step_batch(env.action_space.sample())
    split = sb.decisions.split_idx + 1
    assert set(split.tolist()) == {1, 2}  # random requests for cuts 3-5 were projected onto 2
    assert sb.decisions.rank_idx[split == 2].max() == 2  # and ranks above 16 at cut 2 onto 16
    assert np.isclose(sb.decisions.power_fs_w.sum(axis=1), 0.25).any()  # the FS total-power limit binds


@pytest.mark.parametrize("mode", ["box", "multidiscrete"])
def test_equal_links_config_binds_both_unequal_limits(mode, calibration_path):
    """With EQUAL both links are stacked and each link's own total-power limit binds (else equality proves less)."""
    env = SurrogateVectorEnv(64, {**EQUAL, "calibration_path": calibration_path, "action_mode": mode})
    env.reset(seed=0)
    env.action_space.seed(2)
    d = env.step_batch(env.action_space.sample()).decisions
    assert d.assign is not None  # the stacked path
    ms, fs = d.power_ms_w.sum(axis=1), d.power_fs_w.sum(axis=1)
    assert np.all(ms <= 0.35 * (1 + 1e-12)) and np.all(fs <= 0.15 * (1 + 1e-12))
    assert np.isclose(ms, 0.35).any() and np.isclose(fs, 0.15).any() and (ms > 0.15 * (1 + 1e-9)).any()


def test_reset_seed_lists_masks_and_unseeded(calibration_path):
    config = {"calibration_path": calibration_path}
    env = SurrogateVectorEnv(3, config)
    obs_a, _ = env.reset(seed=[7, 8, 9])
    obs_b, info = env.reset(seed=7)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert info["_val_loss"].all()
    mask = np.array([False, True, False])
    env.step(env.action_space.sample())
    before, _ = env.reset(seed=[None, 30, None], options={"reset_mask": mask})
    single = gym.make(IDS["box"], config=config)
    np.testing.assert_array_equal(before[1], single.reset(seed=30)[0])
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.zeros(3, bool)})
    with pytest.raises(ValueError, match="length"):
        env.reset(seed=[1, 2])
    obs, _ = env.reset()  # unseeded is allowed
    assert env.observation_space.contains(obs)


def test_errors(calibration_path):
    config = {"calibration_path": calibration_path}
    env = SurrogateVectorEnv(2, config)
    with pytest.raises(ResetNeeded):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.zeros((3, env.single_action_space.shape[0])))
    bad = env.action_space.sample()
    bad[1, 4] = np.nan
    with pytest.raises(InvalidActionError, match="env 1"):
        env.step(bad)
    disc = SurrogateVectorEnv(2, config, variant={"action_mode": "multidiscrete"})
    disc.reset(seed=0)
    with pytest.raises(InvalidActionError, match="integers"):
        disc.step(disc.action_space.sample() + 0.5)
    masks = disc.action_masks()
    assert masks.shape == (2, int(disc.single_action_space.nvec.sum())) and masks.all()
    with pytest.raises(InvalidActionError):
        env.action_masks()
    with pytest.raises(ConfigError, match="hybrid"):
        SurrogateVectorEnv(2, {**config, "action_mode": "hybrid"})
    with pytest.raises(ConfigError, match="surrogate"):
        SurrogateVectorEnv(2, {**config, "mode": "real"})
    with pytest.raises(ConfigError, match="render"):
        SurrogateVectorEnv(2, config, render_mode="ansi")
    with pytest.raises(ConfigError, match="'macro' only"):
        SurrogateVectorEnv(2, {**config, "wireless": {"channel_model": "umi"}})
    with pytest.raises(ConfigError, match="num_envs"):
        SurrogateVectorEnv(0, config)
    with pytest.raises(gym.error.Error, match="vector entry point"):
        gym.make_vec("FedsLLM-Surrogate-Hybrid-v0", num_envs=2, vectorization_mode="vector_entry_point")


def test_batched_surrogate_mirrors_the_single_backend(cut_calibration):
    """Drift guard: the batch replays SurrogateBackend's curves and noise exactly, rank and cut switches included."""
    cfg = FedsLLMConfig(calibration_path=cut_calibration)
    cal = load_calibration(cut_calibration)
    ranks = cfg.model.ranks
    n_split = cal.shape.n_layer - 1
    n, rounds = 5, 45
    batch = BatchedSurrogate(SurrogateBackend(cal, cfg), ranks, n_split, n, rounds)
    seeds = np.arange(100, 100 + n)
    batch.reset(np.arange(n), seeds)
    singles = [SurrogateBackend(cal, cfg) for _ in range(n)]
    for s, b in zip(singles, seeds):
        assert s.reset(int(b)) == batch.initial_val_loss
    rng = np.random.default_rng(3)
    for _ in range(rounds):
        rank_idx, split_idx = rng.integers(0, len(ranks), n), rng.integers(0, n_split, n)
        got = batch.run_round(split_idx, rank_idx)
        want = [s.run_round(int(c) + 1, ranks[j]).val_loss for s, c, j in zip(singles, split_idx, rank_idx)]
        np.testing.assert_array_equal(got, want)


def test_repair_and_argmax_match_the_single_codec():
    rng = np.random.default_rng(0)
    for k, s in ((5, 10), (10, 10), (3, 4), (8, 20)):
        pref = rng.standard_normal((300, s, k))
        pref[:50] = np.round(pref[:50])  # ties
        owner = first_argmax(pref)
        np.testing.assert_array_equal(owner, np.argmax(pref, axis=2))
        np.testing.assert_array_equal(first_argmax_finite(pref), owner)  # column walk: first of equal maxima
        fixed = repair_assignments(owner, pref, k)
        for i in range(300):
            np.testing.assert_array_equal(fixed[i], repair_assignment(owner[i], pref[i], k))


@pytest.mark.parametrize("numba_flag", ["0", "1"])
def test_batched_env_needs_only_the_core_dependencies(cut_calibration, numba_flag):
    # numba (the optional [fast] extra) imports scipy itself; the numpy path imports neither. The table stores its
    # fitted progress model, as every table `fedsllm calibrate` writes does (a table without one is fitted at load,
    # with scipy's NNLS)
    heavy = "('torch', 'stable_baselines3', 'scipy')" if numba_flag == "0" else "('torch', 'stable_baselines3')"
    code = ("import sys, gymnasium as gym, fedsllm_env;"
            "env = gym.make_vec('FedsLLM-Surrogate-v0', num_envs=3, "
            f"config={{'calibration_path': {cut_calibration!r}}});"
            "env.reset(seed=0); env.step(env.action_space.sample());"
            f"bad = [m for m in {heavy} if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "FEDSLLM_NUMBA": numba_flag})

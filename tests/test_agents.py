"""Agents: factory, hyperparameters, tiny trainings, determinism, callbacks, checkpoints, evaluation harness."""

from __future__ import annotations

import dataclasses
import math
import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecNormalize

from agents.callbacks import FedsLLMInfoCallback
from agents.checkpoint import (
    AtomicCheckpointCallback,
    atomic_save,
    detect_algo,
    latest_checkpoint,
    load_agent,
    read_clock,
    resume,
)
from agents.evaluation import (
    EpisodeRecord,
    Policy,
    comparison_rows,
    evaluate_policy_on_seeds,
    markdown_table,
    merge_config,
    summarize,
)
from agents.factory import ALGOS, BOX_ENV_ID, DISCRETE_ENV_ID, default_env_id, load_hyperparams, make_agent
from agents.training import train_agent

TINY = {
    "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [32, 32]}},
    "maskable_ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [32, 32]}},
    "a2c": {"n_steps": 8, "policy_kwargs": {"net_arch": [32, 32]}},
    "sac": {"learning_starts": 32, "batch_size": 32, "buffer_size": 1000, "policy_kwargs": {"net_arch": [32, 32]}},
    "td3": {"learning_starts": 32, "batch_size": 32, "buffer_size": 1000, "policy_kwargs": {"net_arch": [32, 32]}},
}
"""Hyperparameter overrides that keep every training in the tests well under a second or two."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def env_cfg(calibration_path) -> dict:
    """Env overrides pointing at the synthetic calibration, with short episodes."""
    return {"calibration_path": calibration_path, "training": {"max_rounds": 20}}


def _make(env_id: str, cfg: dict) -> gym.Env:
    return gym.make(env_id, config=cfg)


class RandomPolicy:
    """A seeded random policy speaking SB3's predict interface."""

    def __init__(self, space: gym.Space, seed: int = 0):
        self.space = space
        self.space.seed(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return self.space.sample(), None


class ConstantPolicy:
    """Always the same (mid-range) Box action."""

    def __init__(self, space: gym.Space):
        self.action = np.zeros(space.shape, dtype=space.dtype)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return self.action.copy(), None


# ---- factory ---------------------------------------------------------------------------------------

def test_default_env_ids():
    assert default_env_id("maskable_ppo") == DISCRETE_ENV_ID
    for algo in ("ppo", "sac", "a2c", "td3"):
        assert default_env_id(algo) == BOX_ENV_ID
    with pytest.raises(ValueError, match="unknown algorithm 'dqn'"):
        default_env_id("dqn")


def test_load_hyperparams_default_and_env_entry():
    ppo = load_hyperparams("ppo", BOX_ENV_ID)
    assert ppo["policy"] == "MlpPolicy" and ppo["batch_size"] == 64 and ppo["n_timesteps"] > 0
    fallback = load_hyperparams("ppo", "Some-Other-v0")
    assert fallback["n_steps"] == load_hyperparams("ppo", "default")["n_steps"]
    ppo["n_steps"] = -1  # a fresh copy each time
    assert load_hyperparams("ppo", BOX_ENV_ID)["n_steps"] > 0
    for algo in ALGOS:
        assert isinstance(load_hyperparams(algo, default_env_id(algo)), dict)
    assert load_hyperparams("sac", BOX_ENV_ID)["learning_starts"] <= 1000


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_tiny_training_predicts_valid_actions(algo, env_cfg):
    env_id = default_env_id(algo)
    env = _make(env_id, env_cfg)
    model = make_agent(algo, env, seed=0, hyperparams=TINY[algo])
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128
    check_env = _make(env_id, env_cfg)
    obs, _ = check_env.reset(seed=3)
    for _ in range(5):
        kwargs = {"action_masks": check_env.get_wrapper_attr("action_masks")()} if algo == "maskable_ppo" else {}
        action, _ = model.predict(obs, deterministic=True, **kwargs)
        assert check_env.action_space.contains(np.asarray(action, dtype=check_env.action_space.dtype))
        obs, _, terminated, truncated, _ = check_env.step(action)
        if terminated or truncated:
            break


def test_ppo_same_seed_same_actions(env_cfg):
    def trained_actions(seed: int) -> np.ndarray:
        model = make_agent("ppo", _make(BOX_ENV_ID, env_cfg), seed=seed, hyperparams=TINY["ppo"])
        model.learn(total_timesteps=128)
        probe = _make(BOX_ENV_ID, env_cfg)
        obs = np.stack([probe.reset(seed=s)[0] for s in range(4)])
        return model.predict(obs, deterministic=True)[0]

    first, second, other = trained_actions(7), trained_actions(7), trained_actions(8)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(("algo", "env_id", "hint"), [
    ("sac", DISCRETE_ENV_ID, BOX_ENV_ID),
    ("td3", DISCRETE_ENV_ID, BOX_ENV_ID),
    ("maskable_ppo", BOX_ENV_ID, DISCRETE_ENV_ID),
])
def test_incompatible_algo_and_env_id(algo, env_id, hint, env_cfg):
    with pytest.raises(ValueError, match=f"{algo}.*{hint}"):
        make_agent(algo, _make(env_id, env_cfg), seed=0)


def test_unknown_algo_and_bad_hyperparams(env_cfg):
    env = _make(BOX_ENV_ID, env_cfg)
    with pytest.raises(ValueError, match="unknown algorithm 'ddpg'"):
        make_agent("ddpg", env, seed=0)
    with pytest.raises(ValueError, match="bad hyperparameters"):
        make_agent("ppo", env, seed=0, hyperparams={"not_a_kwarg": 1})
    with pytest.raises(ValueError, match="activation_fn"):
        make_agent("ppo", env, seed=0, hyperparams={"policy_kwargs": {"activation_fn": "swish"}})


# ---- callbacks -------------------------------------------------------------------------------------

def test_info_callback_logs_env_terms(env_cfg):
    model = make_agent("ppo", _make(BOX_ENV_ID, env_cfg), seed=0, hyperparams=TINY["ppo"])
    cb = FedsLLMInfoCallback()
    model.learn(total_timesteps=64, callback=cb)
    assert cb.episodes, "no finished episode recorded"
    ep = cb.episodes[0]
    assert ep["total_delay_s"] > 0 and ep["rounds"] >= 1
    # the logger was dumped after the iteration; one more step shows the keys before the next dump
    cb.locals = {"infos": [{"round_delay_s": 1.0, "delay_breakdown": {"round_s": 1.0}, "reward_terms": {"delay": -1.0},
                            "val_loss": 2.0, "expected_total_delay_s": 10.0, "cumulative_delay_s": 3.0, "round": 3,
                            "target_val_loss": 2.5}], "dones": np.array([True])}
    cb._on_step()
    keys = set(model.logger.name_to_value)
    for key in ("fedsllm/delay/round_s", "fedsllm/reward/delay", "fedsllm/val_loss", "fedsllm/expected_total_delay_s",
                "fedsllm/episode/total_delay_s"):
        assert key in keys
    assert cb.episodes[-1] == {"total_delay_s": 3.0, "rounds": 3, "terminated": True, "final_val_loss": 2.0,
                               "timestep": model.num_timesteps}


# ---- checkpoints -----------------------------------------------------------------------------------

def test_checkpoints_are_atomic_and_resume_continues(tmp_path, env_cfg):
    env = _make(BOX_ENV_ID, env_cfg)
    model = make_agent("ppo", env, seed=0, hyperparams=TINY["ppo"])
    cb = AtomicCheckpointCallback(save_freq=64, save_dir=tmp_path / "ckpt")
    model.learn(total_timesteps=128, callback=cb)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["checkpoint_128_steps.zip", "checkpoint_128_steps_clock.json", "checkpoint_64_steps.zip",
                     "checkpoint_64_steps_clock.json"]  # no temp files left
    clock_64, clock_128 = (read_clock(tmp_path / "ckpt" / f"checkpoint_{n}_steps.zip", n) for n in (64, 128))
    assert 0 < clock_64 < clock_128 and read_clock(tmp_path / "ckpt" / "checkpoint_64_steps.zip", 128) is None
    last = latest_checkpoint(tmp_path / "ckpt")
    assert last is not None and last.name == "checkpoint_128_steps.zip"
    assert detect_algo(last) == "ppo"

    again = AtomicCheckpointCallback(save_freq=64, save_dir=tmp_path / "ckpt")
    again.start_clock(wall_time_before_s=1000.0)  # the run's earlier segments
    resumed = resume(last, _make(BOX_ENV_ID, env_cfg), total_timesteps=256, callback=again)
    assert resumed.num_timesteps == 256
    assert 1000.0 < read_clock(tmp_path / "ckpt" / "checkpoint_192_steps.zip") < 1000.0 + 600
    assert latest_checkpoint(tmp_path / "ckpt").name == "checkpoint_256_steps.zip"
    assert (tmp_path / "ckpt" / "checkpoint_192_steps.zip").is_file()
    # already there: nothing more is trained
    assert resume(last, _make(BOX_ENV_ID, env_cfg), total_timesteps=64).num_timesteps == 128


def test_atomic_save_leaves_no_partial_file(tmp_path, env_cfg, monkeypatch):
    model = make_agent("ppo", _make(BOX_ENV_ID, env_cfg), seed=0, hyperparams=TINY["ppo"])
    target = atomic_save(model, tmp_path / "model")
    assert target.name == "model.zip" and load_agent(target).num_timesteps == 0

    def broken_save(fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save(model, tmp_path / "other.zip")
    assert sorted(os.listdir(tmp_path)) == ["model.zip"]


def test_detect_algo_for_every_algorithm(tmp_path, env_cfg):
    for algo in ALGOS:
        env = _make(default_env_id(algo), env_cfg)
        path = atomic_save(make_agent(algo, env, seed=0, hyperparams=TINY[algo]), tmp_path / f"{algo}.zip")
        assert detect_algo(path) == algo


def test_train_agent_run_folder(tmp_path, env_cfg):
    result = train_agent("maskable_ppo", tmp_path / "run", seed=0, total_timesteps=128, config=env_cfg,
                         hyperparams=TINY["maskable_ppo"], checkpoint_freq=64)
    assert result.env_id == DISCRETE_ENV_ID and result.model_path.is_file()
    assert result.hyperparams["n_timesteps"] == 128 and result.hyperparams["n_steps"] == 64
    assert list((tmp_path / "run" / "monitor").glob("*.monitor.csv"))  # batched: one file for all envs
    assert any((tmp_path / "run" / "tb").iterdir())
    assert [p.name for p in result.checkpoints] == ["checkpoint_64_steps.zip", "checkpoint_128_steps.zip"]


def test_normalize_reward_trains_on_scaled_rewards(tmp_path, env_cfg):
    params = dict(TINY["ppo"], normalize_reward=True)
    result = train_agent("ppo", tmp_path / "run", seed=0, total_timesteps=128, config=env_cfg, hyperparams=params)
    assert isinstance(result.model.get_env(), VecNormalize)
    assert result.model.get_env().ret_rms.count > 1  # running return statistics were updated
    plain = train_agent("ppo", tmp_path / "plain", seed=0, total_timesteps=128, config=env_cfg,
                        hyperparams=TINY["ppo"])
    assert not isinstance(plain.model.get_env(), VecNormalize)


# ---- evaluation harness ----------------------------------------------------------------------------

def test_evaluation_harness_two_seeds(env_cfg):
    env = _make(BOX_ENV_ID, env_cfg)
    policy = ConstantPolicy(env.action_space)
    assert isinstance(policy, Policy)
    records = evaluate_policy_on_seeds(policy, BOX_ENV_ID, [11, 12], config=env_cfg, name="constant")
    assert [r.seed for r in records] == [11, 12]
    for r in records:
        assert isinstance(r, EpisodeRecord) and r.policy == "constant"
        assert r.rounds >= 1 and r.terminated != r.truncated
        assert r.total_delay_s == pytest.approx(r.mean_round_delay_s * r.rounds)
        assert r.episode_return == pytest.approx(-r.total_delay_s)  # default reward: -T_round / 1 s
        assert r.mean_expected_total_delay_s > 0 and r.decision_time_s >= 0
        assert len(r.ranks) == len(r.splits) == r.rounds
    again = evaluate_policy_on_seeds(policy, BOX_ENV_ID, [11, 12], config=env_cfg, name="constant")
    assert [r.total_delay_s for r in again] == [r.total_delay_s for r in records]
    # max_rounds truncates
    short = evaluate_policy_on_seeds(policy, BOX_ENV_ID, [11], config=env_cfg, max_rounds=2)
    assert short[0].rounds == 2 and short[0].truncated
    stats = summarize(records)
    assert stats["episodes"] == 2 and stats["total_delay_s_mean"] == pytest.approx(
        np.mean([r.total_delay_s for r in records]))
    assert stats["total_delay_s_std"] == pytest.approx(np.std([r.total_delay_s for r in records]))
    # an episode priced at inf (censored rank): mean inf, spread NaN, and no numpy inf - inf warning
    censored = [dataclasses.replace(records[0], mean_expected_total_delay_s=math.inf), records[1]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = summarize(censored)
    assert math.isinf(stats["mean_expected_total_delay_s_mean"])
    assert math.isnan(stats["mean_expected_total_delay_s_std"])
    assert stats["total_delay_s_std"] == pytest.approx(np.std([r.total_delay_s for r in records]))


def test_policy_factory_built_env_and_masks(env_cfg):
    built = []

    def factory(env):
        built.append(env)
        return RandomPolicy(env.action_space, seed=0)

    env = gym.make(DISCRETE_ENV_ID, config=merge_config(env_cfg, max_rounds=3))
    records = evaluate_policy_on_seeds(factory, env, [1, 2], name="random")
    assert built == [env, env] and all(r.rounds <= 3 for r in records)  # bound afresh per episode
    with pytest.raises(ValueError, match="apply only when env_id is an id"):
        evaluate_policy_on_seeds(factory, env, [1], max_rounds=2)
    with pytest.raises(ValueError, match="seeds is empty"):
        evaluate_policy_on_seeds(factory, DISCRETE_ENV_ID, [], config=env_cfg)

    # a policy with an action_masks argument gets the env's masks
    seen = []

    class MaskAware(RandomPolicy):
        def predict(self, observation, state=None, episode_start=None, deterministic=True, action_masks=None):
            seen.append(action_masks)
            return super().predict(observation)

    evaluate_policy_on_seeds(MaskAware(env.action_space), DISCRETE_ENV_ID, [1], config=env_cfg, max_rounds=2)
    assert len(seen) == 2 and all(m is not None and m.dtype == bool for m in seen)


def test_comparison_rows_and_markdown(env_cfg):
    env = _make(BOX_ENV_ID, env_cfg)
    results = {
        "optimizer": evaluate_policy_on_seeds(ConstantPolicy(env.action_space), BOX_ENV_ID, [1, 2], config=env_cfg),
        "random": evaluate_policy_on_seeds(RandomPolicy(env.action_space, 0), BOX_ENV_ID, [1, 2], config=env_cfg),
    }
    rows = comparison_rows(results, reference="optimizer")
    assert [r["policy"] for r in rows] == ["optimizer", "random"]
    assert rows[0]["relative_to_optimizer"] == pytest.approx(1.0)
    ratio = rows[1]["total_delay_mean_s"] / rows[0]["total_delay_mean_s"]
    assert rows[1]["relative_to_optimizer"] == pytest.approx(ratio)
    table = markdown_table(rows, ["policy", "total_delay_mean_s", "relative_to_optimizer"])
    lines = table.splitlines()
    assert lines[0] == "| policy | total delay mean (s) | relative to optimizer |" and len(lines) == 4
    results["other"] = results["random"][:1]
    with pytest.raises(ValueError, match="different seeds"):
        comparison_rows(results)


def test_baseline_policies_in_the_harness(env_cfg):
    from baselines.policy import BASELINE_NAMES, make_baseline_policy

    assert "optimizer" in BASELINE_NAMES
    results = {name: evaluate_policy_on_seeds(lambda env, n=name: make_baseline_policy(n, env), BOX_ENV_ID, [5, 6],
                                              config=env_cfg, max_rounds=3, name=name)
               for name in BASELINE_NAMES}
    rows = {r["policy"]: r for r in comparison_rows(results)}
    assert rows["optimizer"]["relative_to_optimizer"] == pytest.approx(1.0)
    assert all(r["rounds_mean"] == 3 for r in rows.values())  # max_rounds=3 before the synthetic target
    # per decision, the optimizer's E(r) T_round beats the schemes that leave parts random
    for name in ("all_random", "random_subchannels"):
        assert rows[name]["expected_total_delay_mean_s"] > rows["optimizer"]["expected_total_delay_mean_s"]

"""Behaviour-cloning warm start: demonstrations, fitting Box and MultiDiscrete agents, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import fedsllm_env  # noqa: F401
from agents.factory import BOX_ENV_ID, DISCRETE_ENV_ID, make_agent
from agents.imitation import behaviour_clone, collect_demonstrations
from agents.training import train_agent
from baselines.policy import make_baseline_policy


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def cfg(calibration_path):
    return {"calibration_path": calibration_path, "training": {"max_rounds": 10}}


def _teacher(name):
    return lambda env: make_baseline_policy(name, env)


def test_demonstrations_are_the_teachers_seeded_rollouts(cfg):
    obs, act = collect_demonstrations(BOX_ENV_ID, _teacher("equal_power"), 25, seed=7, config=cfg, progress=False)
    assert obs.shape[0] == act.shape[0] == 25 and obs.dtype == np.float32
    env = gym.make(BOX_ENV_ID, config=cfg)
    first, _ = env.reset(seed=7)
    np.testing.assert_array_equal(obs[0], first)
    again = collect_demonstrations(BOX_ENV_ID, _teacher("equal_power"), 25, seed=7, config=cfg, progress=False)
    np.testing.assert_array_equal(again[1], act)


@pytest.mark.parametrize("algo, env_id", [("ppo", BOX_ENV_ID), ("maskable_ppo", DISCRETE_ENV_ID)])
def test_cloning_moves_the_policy_onto_the_teacher(algo, env_id, cfg):
    obs, act = collect_demonstrations(env_id, _teacher("equal_power"), 60, seed=3, config=cfg, progress=False)
    env = gym.make(env_id, config=cfg)
    model = make_agent(algo, env, seed=0, hyperparams={"n_steps": 64, "batch_size": 32})

    def distance():
        pred = np.stack([model.predict(o, deterministic=True)[0] for o in obs])
        return float(np.mean(np.abs(pred - act))) if env_id == BOX_ENV_ID else float(np.mean(pred != act))

    before = distance()
    losses = behaviour_clone(model, obs, act, epochs=60, batch_size=32, seed=0)
    assert losses[-1] < 0.5 * losses[0]
    assert distance() < 0.5 * before


def test_bad_agent_or_data_is_a_clear_error(cfg):
    obs, act = collect_demonstrations(BOX_ENV_ID, _teacher("equal_power"), 8, seed=1, config=cfg, progress=False)
    env = gym.make(BOX_ENV_ID, config=cfg)
    sac = make_agent("sac", env, seed=0, hyperparams={"learning_starts": 10, "buffer_size": 100})
    with pytest.raises(ValueError, match="actor-critic"):
        behaviour_clone(sac, obs, act, epochs=1)
    ppo = make_agent("ppo", env, seed=0, hyperparams={"n_steps": 64, "batch_size": 32})
    with pytest.raises(ValueError, match="do not match"):
        behaviour_clone(ppo, obs, act[:, :-1], epochs=1)
    with pytest.raises(ValueError, match="n_samples"):
        collect_demonstrations(BOX_ENV_ID, _teacher("equal_power"), 0, seed=1, config=cfg)


def test_train_agent_with_a_teacher_records_the_warm_start(tmp_path, cfg):
    result = train_agent("ppo", tmp_path / "run", seed=0, total_timesteps=64, config=cfg,
                         hyperparams={"n_steps": 64, "batch_size": 32, "n_epochs": 1},
                         bc_teacher=_teacher("equal_power"), bc_samples=40, bc_epochs=5)
    assert len(result.bc_losses) == 5 and result.bc_losses[-1] < result.bc_losses[0]
    assert result.model_path.is_file()

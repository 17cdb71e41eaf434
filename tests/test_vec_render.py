"""Single-machine parallel envs without Ray: render_mode="rgb_array" frames, SB3 SubprocVecEnv / DummyVecEnv."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import fedsllm_env  # noqa: F401
from agents.training import make_training_env
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.render import FRAME_HEIGHT, FRAME_WIDTH, client_color, render_decision
from train_scripts import train

SMALL = {"wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 4}}


def _cell(frame: np.ndarray, band: int, index: int, cells: int) -> np.ndarray:
    """Colour at the centre of cell ``index`` of ``band`` (bands are 26 px high, 6 px apart)."""
    y = band * 32 + 13
    x = int((index + 0.5) * FRAME_WIDTH / cells)
    return frame[y, x]


def test_rgb_array_frame_shows_owners_power_split_and_rank(small_config):
    env = FedsLLMEnv(small_config, render_mode="rgb_array")
    env.reset(seed=3)
    empty = env.render()
    assert empty.shape == (FRAME_HEIGHT, FRAME_WIDTH, 3) and empty.dtype == np.uint8
    assert len(np.unique(empty.reshape(-1, 3), axis=0)) == 2  # empty bands on black
    env.step(env.action_space.sample())
    frame = env.render()
    d, pmax = env.last_decision, env.scenario.client_max_power_w
    for band, (owners, power) in enumerate(((d.assign_ms, d.power_ms_w), (d.assign_fs, d.power_fs_w))):
        for i, (k, p) in enumerate(zip(owners, power)):
            np.testing.assert_array_equal(_cell(frame, band, i, len(owners)), client_color(k, p / pmax[k]))
    n_layer = env.shape.n_layer
    split_cells = [tuple(_cell(frame, 2, j, n_layer)) for j in range(n_layer)]
    assert len(set(split_cells[:d.split])) == 1 and len(set(split_cells[d.split:])) == 1
    assert split_cells[0] != split_cells[-1]
    ranks = small_config.model.ranks
    rank_cells = [tuple(_cell(frame, 3, j, len(ranks))) for j in range(len(ranks))]
    assert rank_cells[ranks.index(d.rank)] == (255, 255, 255)
    assert sum(c == (255, 255, 255) for c in rank_cells) == 1


def test_brighter_cell_for_more_power_and_bad_inputs():
    assert client_color(1, 1.0).sum() > client_color(1, 0.1).sum() > 0
    assert not np.array_equal(client_color(0), client_color(1))
    with pytest.raises(ValueError, match="client_max_power_w"):
        from fedsllm_env.types import Decision

        d = Decision(np.zeros(2, int), np.zeros(2, int), np.ones(2), np.ones(2), 1, 2)
        render_decision(d, (2, 2), 3, (1, 2), None)


def test_sb3_default_render_mode_in_subprocess_workers(calibration_path):
    """The issue's reproduction: make_vec_env asks for rgb_array by default; workers must not die.

    "fedsllm_env:<id>" makes the fresh worker processes import the package that registers the ids
    (Gymnasium's module prefix; a script that imports fedsllm_env itself can pass the bare id).
    """
    vec = make_vec_env("fedsllm_env:FedsLLM-Surrogate-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                       env_kwargs={"config": {**SMALL, "calibration_path": calibration_path}})
    try:
        obs = vec.reset()
        assert obs.shape[0] == 2 and np.isfinite(obs).all()
        vec.step(np.stack([vec.action_space.sample() for _ in range(2)]))
        frames = vec.get_images()
        assert [f.shape for f in frames] == [(FRAME_HEIGHT, FRAME_WIDTH, 3)] * 2
        assert not np.array_equal(frames[0], frames[1])  # different seeds, different decisions
    finally:
        vec.close()


def test_subproc_and_dummy_training_envs_give_the_same_steps(calibration_path):
    cfg = {**SMALL, "calibration_path": calibration_path, "training": {"max_rounds": 5}}
    shape = gym.make("FedsLLM-Surrogate-v0", config=cfg).action_space.shape
    actions = np.random.default_rng(0).uniform(-1, 1, (4, 2) + shape).astype(np.float32)
    runs = {}
    for kind in ("dummy", "subproc"):
        vec = make_training_env("FedsLLM-Surrogate-v0", 2, seed=7, config=cfg, vec_env=kind)
        assert isinstance(vec, {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}[kind])
        try:
            steps = [vec.reset()]
            for a in actions:
                obs, reward, done, _ = vec.step(a)
                steps += [obs, reward, done]
        finally:
            vec.close()
        runs[kind] = steps
    for a, b in zip(runs["dummy"], runs["subproc"]):  # DummyVecEnv buffers rewards as float32
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    with pytest.raises(ValueError, match="vec_env"):
        make_training_env("FedsLLM-Surrogate-v0", 1, seed=0, config=cfg, vec_env="threads")


def test_train_cli_with_subproc_envs(tmp_path, calibration_path):
    hp = json.dumps({"n_steps": 32, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}})
    run = train.main(["--total-timesteps", "64", "--n-envs", "2", "--vec-env", "subproc", "--hyperparams", hp,
                      "--calibration-path", calibration_path, "--max-rounds", "5", "--runs-dir", str(tmp_path),
                      "--run-name", "sub", "--no-progress-bar", "--no-tensorboard"])
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["num_timesteps"] == 64 and summary["hyperparams"]["n_envs"] == 2
    assert sorted(p.name for p in (run / "monitor").iterdir()) == ["0.monitor.csv", "1.monitor.csv"]
    assert json.loads((run / "config.json").read_text())["args"]["vec_env"] == "subproc"

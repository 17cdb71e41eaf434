"""A fixed-K agent in an env of another K: one clear error naming both K (function, evaluate, benchmark), and the
figures' sweeps skip it where it cannot act, saying so (issue 22, item 4)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents.evaluation import check_policy_fits, clients_of_spaces, run_episode, spaces_fit
from fedsllm_env.errors import ConfigError
from train_scripts import cli, figures

K3 = {"wireless": {"num_clients": 3}}


@pytest.fixture(scope="module")
def k3_agent(tmp_path_factory, calibration_path) -> Path:
    """An untrained PPO built in a K = 3 cell, saved as a run folder (model.zip + config.json, as train writes)."""
    from stable_baselines3 import PPO

    run = tmp_path_factory.mktemp("agents") / "k3"
    run.mkdir()
    env = gym.make("FedsLLM-Surrogate-v0", config={**K3, "calibration_path": calibration_path})
    PPO("MlpPolicy", env, n_steps=8, batch_size=8, policy_kwargs={"net_arch": [8]}, seed=0, device="cpu").save(
        run / "model.zip")
    env.close()
    (run / "config.json").write_text(json.dumps({"algo": "ppo", "env_id": "FedsLLM-Surrogate-v0",
                                                 "env_overrides": K3}))
    return run


def _env(calibration_path, k, env_id="FedsLLM-Surrogate-v0", **wireless):
    return gym.make(env_id, config={"calibration_path": calibration_path,
                                    "wireless": {"num_clients": k, **wireless}})


@pytest.mark.parametrize("env_id", ["FedsLLM-Surrogate-v0", "FedsLLM-Surrogate-Discrete-v0",
                                    "FedsLLM-Surrogate-Hybrid-v0", "FedsLLM-Surrogate-Priority-v0"])
@pytest.mark.parametrize("k, m, n", [(1, 1, 1), (2, 4, 3), (3, 10, 10), (5, 10, 10), (20, 20, 20)])
def test_clients_of_spaces_reads_k_back_from_every_layout(env_id, k, m, n, calibration_path):
    env = _env(calibration_path, k, env_id, num_subchannels_ms=m, num_subchannels_fs=n)
    # the hybrid actions (cut and rank) say nothing of K: the observation does, given M + N
    assert clients_of_spaces(env.observation_space, env.action_space, m + n) == k
    if "Hybrid" not in env_id:
        assert clients_of_spaces(env.observation_space, env.action_space) == k
    env.close()


def test_clients_of_spaces_is_none_for_spaces_of_no_cell():
    box = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
    assert clients_of_spaces(box, box) is None
    assert clients_of_spaces(gym.spaces.Discrete(3), box) is None
    assert clients_of_spaces(gym.spaces.Box(-1.0, 1.0, (114,), np.float32), gym.spaces.MultiDiscrete([3, 5])) is None


def test_check_policy_fits_names_both_k_and_run_episode_refuses(k3_agent, calibration_path):
    from agents.checkpoint import load_agent

    agent = load_agent(k3_agent / "model.zip", algo="ppo")
    k4 = _env(calibration_path, 4)
    assert not spaces_fit(agent, k4)
    message = ("agent was trained with K = 3 (observation Box(70,), action Box(88,)), but FedsLLM-Surrogate-v0 has "
               "K = 4, M = 10, N = 10 (observation Box(92,), action Box(110,)): an agent's spaces are fixed by the K "
               "(and M, N) it was trained with")
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_policy_fits(agent, k4, "agent")
    with pytest.raises(ConfigError, match=re.escape("K = 3 (observation")):
        run_episode(agent, k4, seed=0)
    k4.close()
    k3 = _env(calibration_path, 3, num_subchannels_ms=10)
    check_policy_fits(agent, k3, "agent")  # the K it was trained with: it acts
    record = run_episode(agent, gym.make("FedsLLM-Surrogate-v0", config={**K3, "calibration_path": calibration_path,
                                                                         "training": {"max_rounds": 2}}), seed=0)
    assert record.rounds == 2


def _cli(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("form", ["run folder", "zip"])
def test_evaluate_refuses_an_agent_of_another_k_in_one_line(form, k3_agent, calibration_path, tmp_path, capsys):
    (tmp_path / "k4.json").write_text(json.dumps({"wireless": {"num_clients": 4}}))
    spec = str(k3_agent if form == "run folder" else k3_agent / "model.zip")
    runs = tmp_path / "runs"
    status, _, err = _cli(["evaluate", "--policies", spec, "--config", str(tmp_path / "k4.json"), "--seeds", "0",
                           "--max-rounds", "2", "--calibration-path", calibration_path, "--runs-dir", str(runs)],
                          capsys)
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    trained = "K = 3, M = 10, N = 10" if form == "run folder" else "K = 3 (observation"
    assert err.startswith(f"fedsllm evaluate: error: --policies {spec}: ppo (") and f"trained with {trained}" in err
    assert "but FedsLLM-Surrogate-v0 has K = 4, M = 10, N = 10" in err and not runs.exists()


def test_evaluate_plays_an_agent_at_its_own_k(k3_agent, calibration_path, tmp_path, capsys):
    (tmp_path / "k3.json").write_text(json.dumps(K3))
    common = ["--seeds", "0", "--max-rounds", "2", "--calibration-path", calibration_path, "--runs-dir",
              str(tmp_path / "runs"), "--no-progress-bar"]
    status, out, err = _cli(["evaluate", "--policies", str(k3_agent), *common], capsys)  # the run's own config
    assert status == 0 and "| ppo (k3) |" in out, err
    status, out, err = _cli(["evaluate", "--policies", str(k3_agent / "model.zip"), "--config",
                             str(tmp_path / "k3.json"), *common], capsys)
    assert status == 0 and "| ppo (k3) |" in out, err


def test_benchmark_refuses_an_agent_of_another_k_before_training(k3_agent, calibration_path, tmp_path, capsys):
    (tmp_path / "k4.json").write_text(json.dumps({"wireless": {"num_clients": 4}}))
    runs = tmp_path / "runs"
    status, _, err = _cli(["benchmark", "--agents", str(k3_agent), "--train-algos", "ppo", "--config",
                           str(tmp_path / "k4.json"), "--baselines", "optimizer", "--seeds", "0", "--max-rounds", "2",
                           "--calibration-path", calibration_path, "--runs-dir", str(runs)], capsys)
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"fedsllm benchmark: error: --agents {k3_agent}: ppo (k3) was trained with K = 3, M = 10, "
                          "N = 10") and "but FedsLLM-Surrogate-v0 has K = 4, M = 10, N = 10" in err
    assert "benchmark it with the env config it was trained with" in err and not runs.exists()  # nothing trained


def test_figures_skip_the_agent_where_its_k_does_not_fit(k3_agent, calibration_path):
    from agents.checkpoint import load_agent

    agent = load_agent(k3_agent / "model.zip", algo="ppo")
    defaults = {"calibration_path": calibration_path}
    assert figures._agent_env_id(agent, {**defaults, **K3}) == "FedsLLM-Surrogate-v0"
    assert figures._agent_env_id(agent, {**defaults, "wireless": {"num_clients": 4}}) is None
    assert figures.agent_cell(agent, K3, defaults) == "K = 3, M = 10, N = 10"
    assert figures.agent_cell(agent, {}, defaults) == "K = 3"  # a zip alone: K from its spaces
    line = figures.skipped_line("clients", "ppo (k3)", [2, 3, 4], [math.nan, 1.0, math.nan], "K = 3")
    assert line == ("delay_vs_clients: ppo (k3) skipped at K = 2, 4: a fixed-K agent acts only with the spaces it was "
                    "trained with (K = 3); drawn at the other points")
    assert figures.skipped_line("clients", "a", [2, 4], [math.nan] * 2, "K = 3").endswith("left out of the legend")
    assert figures.skipped_line("clients", "a", [3], [1.0], "K = 3") is None

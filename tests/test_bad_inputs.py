"""Bad and unusual inputs: every one gets a clear, typed error naming the problem (or a documented
projection), nothing is created when a command refuses its input, and no run loses or mixes data.

Table-driven: each table row is one input with the expected error type and a fragment of its
message. ``INPUT_TABLES`` lists the tables; :func:`count` says how many inputs they hold.
(Real-mode NaN losses and the backbone cache: tests/test_bad_inputs_engine.py; calibration files and
``fedsllm calibrate --out``: tests/test_bad_inputs_calibration.py.)
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import fedsllm_env  # noqa: F401  (registers the ids)
from agents.callbacks import read_episode_log
from baselines.alternating import AlternatingOptimizer
from baselines.instances import random_problem
from baselines.problem import Problem
from fedsllm_env.atomic import atomic_write_json
from fedsllm_env.calibration import load_calibration
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import (
    CalibrationError,
    ConfigError,
    InvalidActionError,
    MissingFileError,
    NonFiniteError,
    RunFolderBusyError,
    UsageError,
)
from fedsllm_env.progress import PlainProgress
from fedsllm_env.reward import reward_terms
from fedsllm_env.runlock import LOCK_NAME, RunLock
from train_scripts import benchmark, benchmark_env, benchmark_optimizer, cli, demo, evaluate, figures, train

REPO = Path(__file__).resolve().parents[1]
TINY_PPO = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}}
TINY = json.dumps(TINY_PPO)
INF = float("inf")
NAN = float("nan")


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _python(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


# ==== 1. config fields: physical bounds, item types, strings ========================================

CONFIG_CASES = [
    ({"wireless": {"total_power_ms_w": 1e-300}}, ConfigError, "WirelessConfig.total_power_ms_w must be in [1e-09"),
    ({"wireless": {"total_power_fs_w": 0.0}}, ConfigError, "WirelessConfig.total_power_fs_w"),
    ({"wireless": {"noise_psd_dbm_per_hz": 200.0}}, ConfigError, "noise_psd_dbm_per_hz must be in [-220, -100]"),
    ({"wireless": {"noise_psd_dbm_per_hz": -300.0}}, ConfigError, "noise_psd_dbm_per_hz"),
    ({"wireless": {"noise_psd_dbm_per_hz": INF}}, ConfigError, "noise_psd_dbm_per_hz must be finite"),
    ({"wireless": {"subchannel_bandwidth_ms_hz": 1e-300}}, ConfigError, "subchannel_bandwidth_ms_hz"),
    ({"wireless": {"subchannel_bandwidth_fs_hz": 1e13}}, ConfigError, "subchannel_bandwidth_fs_hz"),
    ({"wireless": {"cell_radius_m": 1e7}}, ConfigError, "cell_radius_m must be in [1, 100000]"),
    ({"wireless": {"shadowing_std_db": 100.0}}, ConfigError, "shadowing_std_db"),
    ({"wireless": {"mobility_speed_mps": 1e6}}, ConfigError, "mobility_speed_mps"),
    ({"wireless": {"mobility_interval_s": 1e300}}, ConfigError, "mobility_interval_s"),
    ({"wireless": {"downlink_rate_bps": 1e-300}}, ConfigError, "downlink_rate_bps"),
    ({"wireless": {"broadcast_rate_bps": 0.5}}, ConfigError, "broadcast_rate_bps"),
    ({"wireless": {"client_max_power_dbm": 100.0}}, ConfigError, "client_max_power_dbm"),
    ({"wireless": {"num_clients": True}}, TypeError, "num_clients must be an int"),
    ({"wireless": {"num_subchannels_ms": "10"}}, TypeError, "num_subchannels_ms must be an int"),
    ({"compute": {"client_cpu_freq_range_hz": [1e9, INF]}}, ConfigError, "client_cpu_freq_range_hz[1] must be finite"),
    ({"compute": {"client_cpu_freq_range_hz": [1e9, "2e9"]}}, TypeError, "client_cpu_freq_range_hz[1] must be a"),
    ({"compute": {"client_cpu_freq_range_hz": [1e-300, 1e9]}}, ConfigError, "client_cpu_freq_range_hz"),
    ({"compute": {"client_cpu_freq_range_hz": [1e9, 1e13]}}, ConfigError, "must hold values in [1, 1e+12] Hz"),
    ({"compute": {"client_flops_per_cycle_choices": ["a"]}}, TypeError, "client_flops_per_cycle_choices[0]"),
    ({"compute": {"client_flops_per_cycle_choices": [4, None]}}, TypeError, "client_flops_per_cycle_choices[1]"),
    ({"compute": {"client_flops_per_cycle_choices": [True]}}, TypeError, "must be a number, got bool"),
    ({"compute": {"client_flops_per_cycle_choices": [0.0]}}, ConfigError, "client_flops_per_cycle_choices"),
    ({"compute": {"client_flops_per_cycle_choices": [1e300]}}, ConfigError, "client_flops_per_cycle_choices"),
    ({"compute": {"client_flops_per_cycle_choices": []}}, ConfigError, "non-empty"),
    ({"compute": {"server_cpu_freq_hz": 1e300}}, ConfigError, "server_cpu_freq_hz"),
    ({"compute": {"server_flops_per_cycle": 1e-300}}, ConfigError, "server_flops_per_cycle"),
    ({"compute": {"backward_factor": 1e6}}, ConfigError, "backward_factor"),
    ({"model": {"lora_target_modules": [1]}}, TypeError, "lora_target_modules[0] must be a string"),
    ({"model": {"ranks": [1, "2"]}}, TypeError, "ranks[1] must be an int"),
    ({"model": {"backbone": 5}}, TypeError, "backbone must be a string"),
    ({"training": {"dataset": None}}, TypeError, "dataset must be a string"),
    ({"training": {"partition": "random"}}, ConfigError, "partition"),
    ({"reward": {"delay_scale_s": 1e-300}}, ConfigError, "delay_scale_s"),
    ({"reward": {"delay_weight": 1e300}}, ConfigError, "delay_weight"),
    ({"reward": {"progress_weight": INF}}, ConfigError, "progress_weight must be finite"),
    ({"calibration_path": 5}, TypeError, "calibration_path must be a string"),
    ({"mode": "fast"}, ConfigError, "mode"),
    ({"power_levels": 1}, ConfigError, "power_levels"),
    ({"wireles": {}}, ConfigError, "unknown FedsLLMConfig key(s) ['wireles']"),
]


@pytest.mark.parametrize("overrides, error, fragment", CONFIG_CASES, ids=[str(c[0]) for c in CONFIG_CASES])
def test_config_rejects(overrides, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        FedsLLMConfig.from_dict(overrides)


EXTREME = {  # every field at the end of its range that makes delays longest
    "wireless": {"num_clients": 4, "num_subchannels_ms": 4, "num_subchannels_fs": 4, "total_power_ms_w": 1e-9,
                 "total_power_fs_w": 1e-9, "noise_psd_dbm_per_hz": -100.0, "client_max_power_dbm": 40.0,
                 "cell_radius_m": 1e5, "shadowing_std_db": 30.0, "subchannel_bandwidth_ms_hz": 1.0,
                 "subchannel_bandwidth_fs_hz": 1e12, "downlink_rate_bps": 1.0, "broadcast_rate_bps": 1.0},
    "compute": {"client_cpu_freq_range_hz": [1.0, 1.0], "client_flops_per_cycle_choices": [1e-6],
                "server_cpu_freq_hz": 1.0, "server_flops_per_cycle": 1e-6, "backward_factor": 1e3},
    "reward": {"delay_scale_s": 1e-9, "delay_weight": 1e9, "progress_weight": 1e9},
}


@pytest.mark.parametrize("env_id", ["FedsLLM-Surrogate-v0", "FedsLLM-Surrogate-Discrete-v0"])
def test_rewards_and_observations_stay_finite_at_the_extremes_of_every_bound(env_id, calibration_path):
    env = gym.make(env_id, config={**EXTREME, "calibration_path": calibration_path})
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    rewards = []
    for _ in range(60):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.isfinite(obs).all() and env.observation_space.contains(obs)
        rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
    assert np.isfinite(rewards).all() and min(rewards) < -1e20  # huge, honest, finite


def test_a_tiny_snr_gives_a_finite_delay_instead_of_zero_rate(calibration_path):
    # SNR ~ 1e-20: log2(1 + snr) rounds to 0 in float64, log1p does not
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path, "wireless": {
        "noise_psd_dbm_per_hz": -100.0, "total_power_ms_w": 1e-9, "total_power_fs_w": 1e-9,
        "client_max_power_dbm": -60.0, "cell_radius_m": 1e5, "min_distance_m": 9e4}})
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert np.isfinite(reward) and np.all(info["delay_breakdown"]["activation_upload_s"] > 1e6)


# ==== 2. numerical guards: a reward or an observation is never NaN/inf ================================

REWARD_CASES = [
    (dict(round_s=INF, prev_val_loss=3.0, val_loss=2.9, initial_val_loss=4.0), NonFiniteError, "round delay"),
    (dict(round_s=1.0, prev_val_loss=3.0, val_loss=NAN, initial_val_loss=4.0), NonFiniteError, "'validation loss'"),
    (dict(round_s=1.0, prev_val_loss=INF, val_loss=2.0, initial_val_loss=4.0), NonFiniteError, "previous validation"),
    (dict(round_s=1.0, prev_val_loss=3.0, val_loss=2.0, initial_val_loss=NAN), NonFiniteError, "initial validation"),
    (dict(round_s=1e300, prev_val_loss=3.0, val_loss=2.0, initial_val_loss=4.0), NonFiniteError, "overflow"),
]


@pytest.mark.parametrize("kwargs, error, fragment", REWARD_CASES)
def test_reward_guard(kwargs, error, fragment):
    cfg = FedsLLMConfig.from_dict({"reward": {"delay_scale_s": 1e-9, "delay_weight": 1e9}}).reward
    with pytest.raises(error, match=re.escape(fragment)):
        reward_terms(cfg=cfg, **kwargs)


def test_observation_guard(calibration_path):
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path}).unwrapped
    env.reset(seed=0)
    env._val_loss = NAN  # what a diverged engine would report
    with pytest.raises(NonFiniteError, match="observation has NaN/inf"):
        env._observe()


# ==== 3. actions: huge values project onto the largest choice ========================================

ACTION_CASES = [  # (env id, action fill value, expected (split index from top, rank index from top) or error)
    ("FedsLLM-Surrogate-Discrete-v0", 1e20, "largest", None),
    ("FedsLLM-Surrogate-Discrete-v0", 1e300, "largest", None),
    ("FedsLLM-Surrogate-Discrete-v0", -1e20, "smallest", None),
    ("FedsLLM-Surrogate-Hybrid-v0", 1e20, "largest", None),
    ("FedsLLM-Surrogate-Hybrid-v0", -1e20, "smallest", None),
    ("FedsLLM-Surrogate-Discrete-v0", 2.5, InvalidActionError, "must hold integers"),
    ("FedsLLM-Surrogate-Discrete-v0", NAN, InvalidActionError, "NaN/inf"),
    ("FedsLLM-Surrogate-Hybrid-v0", INF, InvalidActionError, "NaN/inf"),
    ("FedsLLM-Surrogate-v0", NAN, InvalidActionError, "NaN/inf"),
]


@pytest.mark.parametrize("env_id, value, expected, fragment", ACTION_CASES)
def test_extreme_action_values(env_id, value, expected, fragment, calibration_path):
    env = gym.make(env_id, config={"calibration_path": calibration_path, "wireless": {
        "num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 4}}).unwrapped
    env.reset(seed=0)
    action = np.full(env.action_space.shape, value)
    if isinstance(expected, type):
        with pytest.raises(expected, match=re.escape(fragment)):
            env.step(action)
        return
    _, reward, _, _, info = env.step(action)
    ranks = env.config.model.ranks
    want = (env.shape.n_layer - 1, ranks[-1]) if expected == "largest" else (1, ranks[0])
    assert (info["split"], info["rank"]) == want and np.isfinite(reward)


# ==== 4. the optimizer on degenerate channel gains ================================================

def _problem(calibration_path, gain_ms_row0=None, gain_fs_row0=None, cols=slice(None)):
    cal = load_calibration(calibration_path)
    p = random_problem(0, FedsLLMConfig(), cal.shape, cal.rounds_needed)
    ch = p.channel
    gain_ms, gain_fs = ch.gain_ms.copy(), ch.gain_fs.copy()
    if gain_ms_row0 is not None:
        gain_ms[0, cols] = gain_ms_row0
    if gain_fs_row0 is not None:
        gain_fs[0, cols] = gain_fs_row0
    import dataclasses

    return Problem(p.scenario, dataclasses.replace(ch, gain_ms=gain_ms, gain_fs=gain_fs), cal.shape, p.cfg,
                   cal.rounds_needed)


GAIN_CASES = [  # (MS gain of client 0, FS gain, subchannels, error or expected success, message fragment)
    (0.0, None, slice(None), ValueError, "channel.gain_ms: client(s) [0] have zero gain on every subchannel"),
    (None, 0.0, slice(None), ValueError, "channel.gain_fs: client(s) [0] have zero gain on every subchannel"),
    (NAN, None, slice(0, 1), ValueError, "must hold finite gains >= 0"),
    (-1e-12, None, slice(0, 1), ValueError, "must hold finite gains >= 0"),
    (INF, None, slice(0, 1), ValueError, "must hold finite gains >= 0"),
    (1e-300, None, slice(None), False, "not optimised: on the MS link client(s) [0] have a best SNR"),
    (1e-30, None, slice(None), False, "not optimised"),
    (None, 1e-300, slice(None), False, "on the FS link client(s) [0]"),
    (0.0, None, slice(0, 5), True, "converged"),
    (1e-300, None, slice(0, 5), True, "converged"),
]


@pytest.mark.parametrize("ms, fs, cols, expected, fragment", GAIN_CASES)
def test_optimizer_on_degenerate_gains(ms, fs, cols, expected, fragment, calibration_path, recwarn):
    if isinstance(expected, type):
        with pytest.raises(expected, match=re.escape(fragment)):
            AlternatingOptimizer().solve(_problem(calibration_path, ms, fs, cols))
        return
    result = AlternatingOptimizer().solve(_problem(calibration_path, ms, fs, cols))
    assert result.success is expected and fragment in result.message
    assert math.isfinite(result.objective_s) and not any(math.isnan(h) for h in result.history)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


# ==== 5. `fedsllm train` arguments: one clear error, nothing created ===================================

@pytest.fixture(scope="module")
def files(tmp_path_factory, calibration_path):
    """Input files, good and broken, and one tiny trained run with checkpoints."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "broken.json").write_text('{"wireless": {')
    (d / "broken.yml").write_text("wireless: [1, 2\n")
    (d / "list.json").write_text("[1, 2]")
    (d / "latin1.json").write_bytes(b'{"training": {"dataset": "caf\xe9"}}')
    (d / "unknown.json").write_text('{"wireless": {"num_client": 3}}')
    (d / "hot.json").write_text('{"wireless": {"noise_psd_dbm_per_hz": 200}}')
    (d / "trace.json").write_text(json.dumps({"wireless": {"channel_model": "trace",
                                                           "channel_trace_path": str(d / "no_trace.npz")}}))
    (d / "notzip.zip").write_text("this is not a zip")
    (d / "empty_run").mkdir()
    runs = d / "runs"
    train.main(["--total-timesteps", "128", "--hyperparams", TINY, "--calibration-path", calibration_path,
                "--runs-dir", str(runs), "--run-name", "ppo", "--checkpoint-freq", "64", "--max-rounds", "5",
                "--eval-freq", "64", "--eval-episodes", "1", "--no-progress-bar"])
    broken = runs / "broken_cfg"
    broken.mkdir()
    (broken / "checkpoints").mkdir()
    (broken / "checkpoints" / "checkpoint_64_steps.zip").write_bytes(
        (runs / "ppo" / "checkpoints" / "checkpoint_64_steps.zip").read_bytes())
    (broken / "model.zip").write_bytes((runs / "ppo" / "model.zip").read_bytes())
    (broken / "config.json").write_text("{not json")
    return d


def _train_cases():
    ckpt = "{d}/runs/ppo/checkpoints/checkpoint_64_steps.zip"
    return [
        (["--total-timesteps", "-5"], UsageError, "--total-timesteps must be >= 0, got -5"),
        (["--n-envs", "-1"], UsageError, "--n-envs must be >= 0"),
        (["--checkpoint-freq", "-1"], UsageError, "--checkpoint-freq must be >= 0"),
        (["--eval-freq", "-3"], UsageError, "--eval-freq must be >= 0"),
        (["--eval-episodes", "-1"], UsageError, "--eval-episodes must be >= 0"),
        (["--torch-threads", "0"], UsageError, "--torch-threads must be >= 1"),
        (["--bc-samples", "0"], UsageError, "--bc-samples must be >= 1"),
        (["--bc-epochs", "0"], UsageError, "--bc-epochs must be >= 1"),
        (["--verbose", "5"], UsageError, "--verbose must be 0, 1 or 2"),
        (["--max-rounds", "-1"], UsageError, "--max-rounds must be >= 0"),
        (["--run-name", "../escape"], UsageError, "--run-name must be a plain folder name"),
        (["--hyperparams", "{bad"], UsageError, "--hyperparams is not valid JSON"),
        (["--hyperparams", "[1]"], UsageError, "--hyperparams must be a JSON object"),
        (["--hyperparams", '{"n_stepz": 5}'], UsageError, "['n_stepz'] that ppo does not take"),
        (["--hyperparams", '{"n_steps": -1}'], UsageError, "rejected by ppo: `n_steps * n_envs` must be greater"),
        (["--hyperparams", '{"learning_rate": "abc"}'], UsageError, "rejected by ppo: The learning rate schedule"),
        (["--algo", "sac", "--hyperparams", '{"policy_kwargs": {"net_arch": "x"}}'], UsageError, "rejected by sac"),
        (["--env-id", "Nope-v0"], UsageError, "'Nope-v0' is not a registered env id"),
        (["--algo", "sac", "--env-id", "FedsLLM-Surrogate-Discrete-v0"], UsageError, "sac cannot act in"),
        (["--algo", "maskable_ppo", "--env-id", "FedsLLM-Surrogate-v0"], UsageError, "maskable_ppo cannot act in"),
        (["--bc-teacher", "nope"], UsageError, "unknown baseline(s) ['nope']"),
        (["--env-id", "FedsLLM-Surrogate-Priority-v0", "--bc-teacher", "equal_power"], UsageError,
         "on FedsLLM-Surrogate-Priority-v0 the teacher is one of ['search', 'priority_heuristic']"),
        (["--bc-teacher", "search"], UsageError, "--bc-teacher search acts with priority actions"),
        (["--env-id", "FedsLLM-Surrogate-Hetero-Priority-v0", "--bc-teacher", "search"], UsageError,
         "on FedsLLM-Surrogate-Hetero-Priority-v0 the teacher is one of ['priority_heuristic']"),
        (["--algo", "sac", "--bc-teacher", "equal_power"], UsageError, "needs an actor-critic agent"),
        (["--calibration-path", "{d}/missing.json"], CalibrationError, "missing.json does not exist"),
        (["--config", "{d}/missing.yml"], MissingFileError, "config file {d}/missing.yml does not exist"),
        (["--config", "{d}/broken.json"], UsageError, "broken.json is not valid JSON"),
        (["--config", "{d}/broken.yml"], UsageError, "broken.yml is not valid YAML"),
        (["--config", "{d}/list.json"], UsageError, "must hold a mapping of overrides, got list"),
        (["--config", "{d}/latin1.json"], UsageError, "latin1.json is not valid JSON"),
        (["--config", "{d}/unknown.json"], ConfigError, "unknown WirelessConfig key(s) ['num_client']"),
        (["--config", "{d}/hot.json"], ConfigError, "noise_psd_dbm_per_hz must be in"),
        (["--config", "{d}/trace.json"], MissingFileError, "channel trace {d}/no_trace.npz does not exist"),
        (["--resume", "{d}/missing.zip"], MissingFileError, "no such checkpoint zip or run folder"),
        (["--resume", "{d}/notzip.zip"], UsageError, "notzip.zip is not a readable Stable-Baselines3"),
        (["--resume", "{d}/empty_run"], MissingFileError, "has neither checkpoints/*.zip nor model.zip"),
        (["--resume", ckpt, "--algo", "sac"], UsageError, "--algo is sac but the checkpoint"),
        (["--resume", ckpt, "--algo", "a2c"], UsageError, "holds a ppo agent; pass --algo ppo"),
        (["--resume", ckpt, "--hyperparams", '{"n_steps": 128}'], UsageError, "cannot change a resumed agent"),
        (["--resume", ckpt, "--env-id", "FedsLLM-Surrogate-Discrete-v0"], UsageError, "resumed run trained on"),
        (["--resume", ckpt, "--bc-teacher", "equal_power"], UsageError, "cannot be combined with --resume"),
        (["--resume", ckpt, "--eval-episodes", "3"], UsageError, "--eval-episodes 3 differs from the resumed run's 1"),
        (["--resume", "{d}/runs/broken_cfg"], UsageError, "broken_cfg/config.json is not valid JSON"),
        (["--run-name", "ppo", "--runs-dir", "{d}/runs"], UsageError, "already holds another run"),
    ]


TRAIN_CASES = _train_cases()


@pytest.mark.parametrize("argv, error, fragment", TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES])
def test_train_refuses_bad_arguments_before_creating_anything(argv, error, fragment, files, tmp_path,
                                                              calibration_path):
    argv = [a.replace("{d}", str(files)) for a in argv]
    if "--calibration-path" not in argv:
        argv += ["--calibration-path", calibration_path]
    runs = tmp_path / "runs"
    before = sorted(p.relative_to(files) for p in files.rglob("*"))
    with pytest.raises(error, match=re.escape(fragment.replace("{d}", str(files)))):
        train.main(["--runs-dir", str(runs), "--no-progress-bar", *argv])
    assert not runs.exists()  # no run folder, not even an empty one
    assert sorted(p.relative_to(files) for p in files.rglob("*")) == before  # nothing written into the inputs


# ==== 6. the other commands' arguments ===========================================================

OTHER_CASES = [
    (evaluate, ["--seeds"], UsageError, "--seeds is empty"),
    (evaluate, ["--policies"], UsageError, "--policies is empty"),
    (evaluate, ["--policies", "nothing_here"], UsageError, "neither an existing model zip / run folder"),
    (evaluate, ["--policies", "{d}/runs/broken_cfg"], UsageError, "config.json is not valid JSON"),
    (evaluate, ["--policies", "{d}/notzip.zip"], UsageError, "is not a readable Stable-Baselines3 model zip"),
    (evaluate, ["--policies", "{d}/runs/ppo", "--algo", "sac"], UsageError, "holds a ppo agent, not sac"),
    (evaluate, ["--env-id", "Nope-v0"], UsageError, "is not a registered env id"),
    (evaluate, ["--max-rounds", "-1"], UsageError, "--max-rounds must be >= 0"),
    (evaluate, ["--calibration-path", "{d}/missing.json"], CalibrationError, "does not exist"),
    (benchmark, ["--train-algos", "dqn"], UsageError, "unknown --train-algos ['dqn']"),
    (benchmark, ["--train-timesteps", "0"], UsageError, "--train-timesteps must be >= 1"),
    (benchmark, ["--baselines", "nope"], UsageError, "unknown baseline(s) ['nope']"),
    (benchmark, ["--hyperparams", '{"bogus": 1}'], UsageError, "['bogus'] that ppo does not take"),
    (benchmark, ["--agents", "{d}/missing_run"], UsageError, "neither an existing model zip"),
    (benchmark, ["--seeds"], UsageError, "--seeds is empty"),
    (figures, ["--seeds"], UsageError, "--seeds is empty"),
    (figures, ["--bandwidths-mhz", "0"], UsageError, "the bandwidth sweep at 0 gives an invalid config"),
    (figures, ["--power-budgets-w", "1e-300"], UsageError, "the power sweep at 1e-300"),
    (figures, ["--ranks", "0"], UsageError, "the rank sweep at 0"),
    (figures, ["--clients", "0"], UsageError, "the clients sweep at 0"),
    (figures, ["--run", "{d}/empty_run"], MissingFileError, "not a training run folder"),
    (figures, ["--rounds-per-point", "0"], UsageError, "--rounds-per-point must be >= 1"),
    (figures, ["--policies", "nope"], UsageError, "--policies: unknown baseline(s)"),
    (demo, ["--timesteps", "-1"], UsageError, "--timesteps must be >= 0"),
    (demo, ["--timesteps", "0", "--bc-teacher", ""], UsageError, "--timesteps 0 trains nothing"),
    (demo, ["--bc-teacher", "nope"], UsageError, "on FedsLLM-Surrogate-Priority-v0 the teacher is one of"),
    (demo, ["--env-id", "FedsLLM-Surrogate-v0", "--bc-teacher", "nope"], UsageError, "unknown baseline(s) ['nope']"),
    (demo, ["--env-id", "Nope-v0"], UsageError, "--env-id 'Nope-v0' is not a registered env id"),
    (demo, ["--real-env-id", "Nope-v0"], UsageError, "--real-env-id 'Nope-v0' is not a registered env id"),
    (demo, ["--baselines", "nope"], UsageError, "unknown baseline(s) ['nope']"),
    (demo, ["--real-rounds", "-1"], UsageError, "--real-rounds must be >= 0"),
    (benchmark_env, ["--surrogate-steps", "0"], UsageError, "--surrogate-steps must be >= 1"),
    (benchmark_env, ["--real-steps", "-1"], UsageError, "--real-steps must be >= 0"),
    (benchmark_env, ["--calibration-path", "{d}/missing.json"], CalibrationError, "does not exist"),
    (benchmark_optimizer, ["--seeds", "0"], SystemExit, "2"),
    (benchmark_optimizer, ["--clients", "0", "3"], SystemExit, "2"),
]


@pytest.mark.parametrize("module, argv, error, fragment", OTHER_CASES,
                         ids=[f"{c[0].__name__.split('.')[-1]} {' '.join(c[1])}" for c in OTHER_CASES])
def test_commands_refuse_bad_arguments_before_creating_anything(module, argv, error, fragment, files, tmp_path,
                                                                 calibration_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # benchmark-env / benchmark-optimizer have no --runs-dir: nothing may appear here
    argv = [a.replace("{d}", str(files)) for a in argv]
    if module in (evaluate, benchmark, figures, demo):
        argv += ["--runs-dir", str(tmp_path / "runs")]
        if "--calibration-path" not in argv:
            argv += ["--calibration-path", calibration_path]
    with pytest.raises(error) as exc:
        module.main(argv)
    assert fragment in str(exc.value.code if error is SystemExit else exc.value)
    assert list(tmp_path.iterdir()) == []


# ==== 7. files a command reads, cut or corrupted ====================================================

def test_monitor_reader_skips_a_torn_last_row_and_names_a_corrupt_one(tmp_path):
    header = '#{"t_start": 1.0, "env_id": "x"}\nr,l,t\n'
    (tmp_path / "0.monitor.csv").write_text(header + "-1.0,5,0.5\n-2.0,5,1.0\n-3.0,")  # killed mid-row
    steps, returns = figures.read_monitor(tmp_path)
    assert steps.tolist() == [5, 10] and returns.tolist() == [-1.0, -2.0]
    (tmp_path / "0.monitor.csv").write_text(header + "-1.0,five,0.5\n-2.0,5,1.0\n")
    with pytest.raises(UsageError, match=r"0\.monitor\.csv: row 1 is not a Monitor row"):
        figures.read_monitor(tmp_path)


def test_episode_log_skips_a_torn_line(tmp_path):
    (tmp_path / "episodes.jsonl").write_text('{"timestep": 5}\n{"timestep": 10}\n{"timest')
    assert [e["timestep"] for e in read_episode_log(tmp_path / "episodes.jsonl")] == [5, 10]


# ==== 8. files written: normal permissions ========================================================

MODE_CASES = [(0o022, None, 0o644), (0o077, None, 0o600), (0o002, None, 0o664), (0o022, 0o640, 0o640)]


@pytest.mark.parametrize("umask, existing, expected", MODE_CASES)
def test_atomic_files_get_the_permissions_of_a_plain_open(umask, existing, expected, tmp_path):
    path = tmp_path / "out.json"
    if existing is not None:
        path.write_text("{}")
        path.chmod(existing)
    old = os.umask(umask)
    try:
        atomic_write_json(path, {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == expected and json.loads(path.read_text()) == {"a": 1}


# ==== 9. progress in a log: a few plain lines, no carriage returns =================================

PROGRESS_CASES = [(1000, [1] * 1000, 4), (1000, [400, 600], 2), (10, [1] * 7, 3), (100, [1] * 30, 2)]


@pytest.mark.parametrize("total, updates, lines", PROGRESS_CASES)
def test_plain_progress_prints_a_line_per_quarter(total, updates, lines, capsys):
    with PlainProgress(total=total, desc="work") as bar:
        for n in updates:
            bar.update(n)
    err = capsys.readouterr().err
    assert bar.lines == lines == err.count("\n") and "\r" not in err and err.startswith("work: ")


# ==== 10. exit status, logs and the run-folder lock, in real processes =================================

def test_console_script_exits_0_and_logs_plain_progress(tmp_path, calibration_path):
    # exactly what the generated `fedsllm` script runs: sys.exit(main())
    proc = _python("-c", "import sys; from train_scripts.cli import main; sys.exit(main())", "train",
                   "--total-timesteps", "256", "--hyperparams", TINY, "--calibration-path", calibration_path,
                   "--runs-dir", str(tmp_path), "--run-name", "ok", "--max-rounds", "5")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "\r" not in err and 1 <= err.count("training ppo:") <= 5  # stderr is a pipe, not a terminal
    proc = _python("-m", "train_scripts.cli", "train", "--total-timesteps", "-5", "--runs-dir", str(tmp_path),
                   "--run-name", "neg")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and err.strip() == "fedsllm train: error: --total-timesteps must be >= 0, got -5"
    assert not (tmp_path / "neg").exists()


EXIT_CASES = [
    ["evaluate", "--policies", "equal_power", "--seeds", "3", "--max-rounds", "2"],
    ["benchmark", "--train-algos", "--baselines", "equal_power", "--seeds", "3", "--max-rounds", "2"],
    ["figures", "--policies", "equal_power", "--clients", "2", "--bandwidths-mhz", "1", "--power-budgets-w", "0.6",
     "--ranks", "4", "--seeds", "0", "--rounds-per-point", "1"],
    ["benchmark-env", "--surrogate-steps", "50", "--real-steps", "0"],
]


def _package_files() -> dict[str, float]:
    roots = [Path(m.__file__).parent for m in (fedsllm_env, sys.modules["agents"], sys.modules["baselines"], cli)]
    return {str(p): p.stat().st_mtime for root in roots for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.parametrize("argv", EXIT_CASES, ids=[c[0] for c in EXIT_CASES])
def test_successful_commands_return_exit_status_0_and_write_nothing_in_the_package(argv, tmp_path,
                                                                                  calibration_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = ["--calibration-path", calibration_path]
    if argv[0] != "benchmark-env":
        extra += ["--runs-dir", str(tmp_path)]
    before = _package_files()
    assert cli.main([*argv, *extra]) == 0
    assert _package_files() == before


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holder_frees_the_folder(tmp_path,
                                                                                          calibration_path):
    run = tmp_path / "busy"
    holder = _python("-c", "import sys, time; from fedsllm_env.runlock import RunLock; RunLock(sys.argv[1]).acquire(); "
                     "print('held', flush=True); time.sleep(120)", str(run))
    try:
        assert holder.stdout.readline().strip() == "held"
        argv = ["--total-timesteps", "64", "--hyperparams", TINY, "--calibration-path", calibration_path,
                "--runs-dir", str(tmp_path), "--run-name", "busy", "--no-progress-bar"]
        with pytest.raises(RunFolderBusyError, match=f"in use by pid {holder.pid} on host"):
            train.main(argv)
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing else written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / LOCK_NAME).is_file()  # left behind by the killed holder ...
    assert train.main(argv) == run and (run / "model.zip").is_file()  # ... and no obstacle
    assert not (run / LOCK_NAME).exists()


def test_lock_is_reentrant_in_one_process_and_released_on_error(tmp_path):
    with RunLock(tmp_path / "r"):
        with RunLock(tmp_path / "r"):
            pass
        assert (tmp_path / "r" / LOCK_NAME).is_file()
    with pytest.raises(KeyError):
        with RunLock(tmp_path / "r"):
            raise KeyError("crash")
    assert not (tmp_path / "r" / LOCK_NAME).exists()


# ==== 11. a killed run resumes in its own folder with nothing lost =================================

def _monitor_rows(run: Path) -> tuple[str, list[list[str]]]:
    lines = (run / "monitor" / "0.monitor.csv").read_text().splitlines()
    return lines[0], [ln.split(",") for ln in lines[2:]]


def test_killed_run_resumes_with_monitor_episodes_tensorboard_and_summary_intact(tmp_path, calibration_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "r"
    proc = _python("-m", "train_scripts.cli", "train", "--total-timesteps", "1000000", "--hyperparams", TINY,
                   "--calibration-path", calibration_path, "--runs-dir", str(tmp_path), "--run-name", "r",
                   "--checkpoint-freq", "64", "--max-rounds", "5", "--eval-freq", "96", "--eval-episodes", "1",
                   "--no-progress-bar")
    deadline = time.monotonic() + 240
    while not (run / "checkpoints" / "checkpoint_192_steps.zip").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t_start, rows_before = _monitor_rows(run)
    newest = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("checkpoint_*_steps.zip"))
    total = newest + 192

    assert train.main(["--resume", str(run), "--total-timesteps", str(total), "--no-progress-bar"]) == run

    header, rows = _monitor_rows(run)
    assert header == t_start  # the monitor keeps its original start time ...
    lengths = np.cumsum([int(r[1]) for r in rows])
    kept = int(np.searchsorted(lengths, newest, side="right"))
    assert rows[:kept] == rows_before[:kept] and lengths[kept - 1] <= newest  # ... and every episode up to N
    times = [float(r[2]) for r in rows]
    assert times == sorted(times)  # appended, wall time since the run began
    summary = json.loads((run / "train_summary.json").read_text())
    episodes = read_episode_log(run / "episodes.jsonl")
    assert summary["num_timesteps"] == total and summary["episodes"] == len(episodes) == len(rows)
    assert summary["resumes"][0]["resumed_at_timesteps"] == newest
    steps = sorted(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("checkpoint_*_steps.zip"))
    assert all(s % 64 == 0 for s in steps) and steps[-1] == total  # no stray checkpoint_<newest + 1>_steps
    config = json.loads((run / "config.json").read_text())
    assert config["hyperparams"]["n_steps"] == 64 and config["env_config"]["training"]["max_rounds"] == 5
    tb_runs = list((run / "tb").iterdir())
    assert len(tb_runs) == 1  # one TensorBoard run across the resume
    acc = EventAccumulator(str(tb_runs[0]))
    acc.Reload()
    logged = [e.step for e in acc.Scalars("rollout/ep_rew_mean")]
    assert logged == sorted(set(logged)) and logged[0] <= 64 and logged[-1] == total
    with np.load(run / "eval" / "evaluations.npz") as ev:  # the evaluation curve spans the resume
        evaluated = ev["timesteps"].tolist()
    assert evaluated == sorted(set(evaluated)) and evaluated[0] == 96 and evaluated[-1] > newest


# ==== the count: python -c "import sys; sys.path[:0] = ['tests', '.']; import test_bad_inputs as t; print(t.count())"

INPUT_TABLES = {"config": CONFIG_CASES, "reward": REWARD_CASES, "actions": ACTION_CASES, "gains": GAIN_CASES,
                "train": TRAIN_CASES, "other commands": OTHER_CASES, "file modes": MODE_CASES,
                "progress": PROGRESS_CASES, "exit status": EXIT_CASES}


def count() -> dict[str, int]:
    """Inputs per table, and their total."""
    counts = {name: len(rows) for name, rows in INPUT_TABLES.items()}
    return {**counts, "total": sum(counts.values())}

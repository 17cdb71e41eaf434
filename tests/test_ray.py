"""Scale-out on Ray: evaluation episodes as tasks (same tables as in-process), one RLlib PPO iteration.

Skipped when Ray (``pip install "fedsllm-env[ray]"``) or RLlib (``[rllib]``) is not installed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from agents.factory import make_agent  # noqa: E402
from agents.training import make_training_env  # noqa: E402
from train_scripts import benchmark, evaluate, train  # noqa: E402
from train_scripts._ray import ray_init  # noqa: E402

SMALL = {"wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 4},
         "training": {"max_rounds": 4}}
MEASURED = {"decision_time_s", "decision_ms_per_step"}
"""Wall-clock columns: the only ones allowed to differ between a sequential and a Ray run."""


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs for the whole module (started once: it takes seconds)."""
    if ray.is_initialized():
        ray.shutdown()
    ray_init("local", num_cpus=2)
    yield ray
    ray.shutdown()


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in MEASURED}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


@pytest.fixture()
def eval_inputs(tmp_path, calibration_path):
    cfg_file = tmp_path / "small.json"
    cfg_file.write_text(json.dumps(SMALL))
    cfg = {**SMALL, "calibration_path": calibration_path}
    env = make_training_env("FedsLLM-Surrogate-v0", 1, seed=0, config=cfg)
    agent = make_agent("ppo", env, 0, {"n_steps": 32, "batch_size": 32}, env_id="FedsLLM-Surrogate-v0")
    agent.learn(64)  # a few updates: its deterministic actions are no longer the initial ones
    agent.save(tmp_path / "agent.zip")
    env.close()
    return ["--config", str(cfg_file), "--calibration-path", calibration_path, "--seeds", "5", "6"], tmp_path


def test_evaluate_on_ray_gives_the_sequential_tables(local_ray, eval_inputs):
    common, tmp = eval_inputs
    policies = ["--policies", "equal_power", "random_subchannels", "all_random", str(tmp / "agent.zip")]
    seq = evaluate.main([*policies, *common, "--runs-dir", str(tmp / "seq")])
    par = evaluate.main([*policies, *common, "--runs-dir", str(tmp / "ray"), "--ray-address", "local"])
    a, b = (json.loads((d / "episodes.json").read_text()) for d in (seq, par))
    assert len(a["episodes"]) == 8 and len({e["policy"] for e in a["episodes"]}) == 4
    assert _strip(a) == _strip(b)
    assert len({tuple(e["ranks"]) for e in a["episodes"]}) > 1  # the policies really differ
    assert ray.is_initialized()  # joined the running instance, left it running


def test_benchmark_on_ray_gives_the_sequential_tables(local_ray, eval_inputs):
    common, tmp = eval_inputs
    args = ["--baselines", "equal_power", "all_random", "--agents", str(tmp / "agent.zip"), "--train-algos",
            *common]
    seq = benchmark.main([*args, "--runs-dir", str(tmp / "seq")])
    par = benchmark.main([*args, "--runs-dir", str(tmp / "ray"), "--ray-address", "local"])
    a, b = (json.loads((d / "benchmark.json").read_text()) for d in (seq, par))
    assert list(a["episodes"]) == ["optimizer", "equal_power", "all_random", "ppo (agent)"]
    assert _strip(a) == _strip(b)


def test_one_rllib_ppo_iteration_with_two_env_runners(local_ray, tmp_path, calibration_path):
    pytest.importorskip("ray.rllib")
    tiny = json.dumps({"train_batch_size_per_learner": 64, "minibatch_size": 32, "num_epochs": 1,
                       "model_config": {"fcnet_hiddens": [16]}})
    run = train.main(["--framework", "rllib", "--num-env-runners", "2", "--n-envs", "2", "--total-timesteps", "64",
                      "--hyperparams", tiny, "--calibration-path", calibration_path, "--max-rounds", "4",
                      "--seed", "3", "--runs-dir", str(tmp_path), "--run-name", "rl"])
    summary = json.loads((run / "train_summary.json").read_text())
    assert len(summary["iterations"]) == 1 and summary["num_timesteps"] >= 64
    it = summary["iterations"][0]
    assert it["env_steps_per_s"] > 0 and np.isfinite(it["episode_return_mean"]) and it["episode_return_mean"] < 0
    places = sorted((e["worker_index"], e["vector_index"]) for e in summary["runner_envs"])
    assert places == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert len({e["seed"] for e in summary["runner_envs"]}) == 4
    assert (run / "rllib_checkpoint" / "rllib_checkpoint.json").is_file()
    assert json.loads((run / "config.json").read_text())["framework"] == "rllib"
    # the trained module is scored by the same harness, in-process and as Ray tasks
    ev = ["--policies", str(run), "equal_power", "--seeds", "1", "2", "--max-rounds", "3"]
    seq = evaluate.main([*ev, "--runs-dir", str(tmp_path / "seq")])
    par = evaluate.main([*ev, "--runs-dir", str(tmp_path / "par"), "--ray-address", "local"])
    a, b = (json.loads((d / "episodes.json").read_text()) for d in (seq, par))
    assert [r["policy"] for r in a["rows"]] == ["rllib ppo (rl)", "equal_power"] and _strip(a) == _strip(b)
    # bad options are refused before Ray starts or anything is written
    for bad, match in ((["--algo", "sac"], "--framework rllib supports"), (["--vec-env", "subproc"], "--vec-env"),
                       (["--hyperparams", '{"n_steps": 64}'], "--hyperparams"),
                       (["--hyperparams", '{"model": {}}'], "model_config"),
                       (["--num-env-runners", "-1"], "--num-env-runners")):
        with pytest.raises(ValueError, match=match):
            train.main(["--framework", "rllib", *bad, "--runs-dir", str(tmp_path / "bad"), "--run-name", "b"])
        assert not (tmp_path / "bad").exists()

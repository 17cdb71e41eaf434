"""Scripts: subprocess smoke tests, in-process runs with tiny budgets, the ``fedsllm`` CLI dispatch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import train_scripts._common as common
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import UsageError
from train_scripts import benchmark, cli, demo, evaluate, figures, train

REPO = Path(__file__).resolve().parents[1]
TINY_PPO = json.dumps({"n_steps": 64, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [32, 32]}})


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The scripts set torch's thread count in their seeding block; restore it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class _FakeBaseline:
    """Stand-in for baselines.policy objects: "optimizer" = mid-range action, others seeded random."""

    def __init__(self, name, env):
        self.name, self.space = name, env.action_space
        self.space.seed(0)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        if self.name == "optimizer":
            return np.zeros(self.space.shape, dtype=self.space.dtype), None
        return self.space.sample(), None


@pytest.fixture()
def fake_baselines(monkeypatch):
    """Replace baselines.policy in every script by two fake baselines (tests of the orchestration only)."""
    names = ("optimizer", "all_random")

    def factory(name):
        if name not in names:
            raise ValueError(f"unknown baseline {name!r}")
        return lambda env: _FakeBaseline(name, env)

    for module in (common, benchmark, figures, demo, evaluate):
        if hasattr(module, "baseline_factory"):
            monkeypatch.setattr(module, "baseline_factory", factory)
        if hasattr(module, "baseline_names"):
            monkeypatch.setattr(module, "baseline_names", lambda: names)
    return names


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


# ---- subprocess smoke tests ------------------------------------------------------------------------

@pytest.mark.parametrize("module", ["train_scripts.train", "train_scripts.cli"])
def test_help_in_a_subprocess(module):
    proc = _run("-m", module, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout


HEAVY = ("torch", "stable_baselines3", "sb3_contrib", "transformers", "peft", "ray", "matplotlib")
"""Modules a command's --help must not load (seconds to import on a busy machine)."""


@pytest.mark.parametrize("command", ["train", "backbone-report", "evaluate", "demo", "figures"])
def test_help_loads_no_heavy_module(command):
    """`fedsllm <command> --help` answers without importing torch, Stable-Baselines3, transformers, Ray or
    matplotlib: they are imported by the functions that train, load or plot."""
    code = ("import sys; from train_scripts.cli import main\n"
            f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"fedsllm {command}" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "LOADED []", proc.stdout[-500:]


def test_help_descriptions_are_wrapped(capsys):
    """A module docstring passed as the help description prints in short lines (tyro joins a paragraph's lines)."""
    from train_scripts._checks import help_description

    text = help_description("Title.\n\n" + "word " * 80 + "\n  more\n\nLast.", width=50)
    assert text.split("\n\n")[0] == "Title." and text.endswith("\n\nLast.")
    assert max(len(line) for line in text.splitlines()) <= 52 and "  word" in text
    with pytest.raises(SystemExit):
        cli.main(["backbone-report", "--help"])
    out = capsys.readouterr().out
    assert "held-out pre-training text" in out
    assert max(len(line) for line in out.splitlines()) <= 110, max(out.splitlines(), key=len)


def test_tiny_train_in_a_subprocess(tmp_path, calibration_path):
    proc = _run("-m", "train_scripts.train", "--algo", "ppo", "--total-timesteps", "128", "--hyperparams", TINY_PPO,
                "--calibration-path", calibration_path, "--runs-dir", str(tmp_path), "--run-name", "smoke",
                "--no-progress-bar", "--seed", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the summary line gives the delay to four significant digits, not float repr (2117.6631047296933 s)
    import re

    found = re.search(r"mean total delay of the last 10: (n/a, no episode finished|(\S+) s)\)", proc.stdout)
    assert found, proc.stdout
    if found.group(2):
        assert f"{float(found.group(2)):.4g}" == found.group(2) and float(found.group(2)) > 0, found.group(0)
    run = tmp_path / "smoke"
    assert (run / "model.zip").is_file()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["args"]["seed"] == 3 and cfg["algo"] == "ppo" and cfg["env_id"] == "FedsLLM-Surrogate-v0"
    assert cfg["env_config"]["calibration_path"] == calibration_path and cfg["hyperparams"]["n_steps"] == 64
    assert json.loads((run / "train_summary.json").read_text())["num_timesteps"] == 128


# ---- in-process runs ---------------------------------------------------------------------------------

def test_train_default_run_name_and_resume(tmp_path, calibration_path):
    run = train.main(["--total-timesteps", "64", "--hyperparams", TINY_PPO, "--calibration-path", calibration_path,
                      "--runs-dir", str(tmp_path), "--no-progress-bar", "--checkpoint-freq", "64",
                      "--max-rounds", "5"])
    env_id, algo, seed, stamp = run.name.split("__")
    assert (env_id, algo, seed) == ("FedsLLM-Surrogate-v0", "ppo", "1") and stamp.isdigit()
    ckpt = run / "checkpoints" / "checkpoint_64_steps.zip"
    assert ckpt.is_file()
    resumed = train.main(["--total-timesteps", "128", "--hyperparams", TINY_PPO, "--calibration-path",
                          calibration_path, "--runs-dir", str(tmp_path), "--run-name", "resumed",
                          "--no-progress-bar", "--resume", str(ckpt)])
    assert json.loads((resumed / "train_summary.json").read_text())["num_timesteps"] == 128


def test_evaluate_run_folder_and_baseline(tmp_path, calibration_path, fake_baselines, capsys):
    run = train.main(["--total-timesteps", "64", "--hyperparams", TINY_PPO, "--calibration-path", calibration_path,
                      "--runs-dir", str(tmp_path), "--run-name", "agent", "--no-progress-bar"])
    capsys.readouterr()
    out = evaluate.main(["--policies", str(run), "optimizer", "--seeds", "5", "6", "--max-rounds", "4",
                         "--runs-dir", str(tmp_path)])
    captured = capsys.readouterr()
    text = captured.out
    assert "| ppo (agent) |" in text and "| optimizer |" in text
    # the episodes played, as plain lines in a log (stderr is not a terminal here): 25/50/75/100 %
    assert "evaluating 2 policies on 2 seeds: 4 episodes" in text
    lines = [line for line in captured.err.splitlines() if line.startswith("episodes: ")]
    assert [line.split()[1] for line in lines] == ["25%", "50%", "75%", "100%"], captured.err
    assert "(4/4)" in lines[-1] and "policy=optimizer, seed=6, round=" in lines[-1]
    data = json.loads((out / "episodes.json").read_text())
    assert {e["seed"] for e in data["episodes"]} == {5, 6} and all(e["rounds"] <= 4 for e in data["episodes"])
    with pytest.raises(ValueError, match="neither an existing model zip"):
        evaluate.main(["--policies", "no_such_policy", "--runs-dir", str(tmp_path)])


def _check_benchmark(out: Path, names) -> list[dict]:
    table = (out / "benchmark.md").read_text().splitlines()
    assert table[0].startswith("| policy | total delay mean (s) | std (s) | relative to optimizer | rounds mean |")
    assert "decision time (ms/step)" in table[0]
    data = json.loads((out / "benchmark.json").read_text())
    rows = {r["policy"]: r for r in data["rows"]}
    assert rows["optimizer"]["relative_to_optimizer"] == pytest.approx(1.0)
    ppo = [n for n in rows if n.startswith("ppo")]
    assert ppo and set(names) <= set(rows)
    seeds = {name: [e["seed"] for e in eps] for name, eps in data["episodes"].items()}
    assert all(s == data["seeds"] for s in seeds.values())  # side by side on the same seeds
    return data["rows"]


def test_benchmark_end_to_end_with_fake_baselines(tmp_path, calibration_path, fake_baselines):
    saved = train.main(["--algo", "maskable_ppo", "--total-timesteps", "64", "--hyperparams", TINY_PPO,
                        "--calibration-path", calibration_path, "--runs-dir", str(tmp_path), "--run-name", "mppo",
                        "--no-progress-bar"])
    out = benchmark.main(["--train-algos", "ppo", "--train-timesteps", "64", "--hyperparams", TINY_PPO,
                          "--agents", str(saved), "--seeds", "1000", "1001", "--max-rounds", "6",
                          "--calibration-path", calibration_path, "--runs-dir", str(tmp_path)])
    rows = _check_benchmark(out, fake_baselines)
    assert [r["policy"] for r in rows] == ["optimizer", "all_random", "priority_heuristic", "ppo (64 steps)",
                                          "maskable_ppo (mppo)"]
    assert (out / "agents" / "ppo" / "model.zip").is_file() and (out / "config.json").is_file()


def test_benchmark_with_the_real_baselines(tmp_path, calibration_path):
    from baselines.policy import BASELINE_NAMES

    out = benchmark.main(["--train-algos", "ppo", "--train-timesteps", "64", "--hyperparams", TINY_PPO,
                          "--seeds", "1000", "1001", "--max-rounds", "3", "--calibration-path", calibration_path,
                          "--runs-dir", str(tmp_path)])
    _check_benchmark(out, BASELINE_NAMES)


def test_figures_tiny(tmp_path, calibration_path, fake_baselines, capsys):
    run = train.main(["--total-timesteps", "128", "--hyperparams", TINY_PPO, "--calibration-path", calibration_path,
                      "--runs-dir", str(tmp_path), "--run-name", "agent", "--no-progress-bar",
                      "--eval-freq", "64", "--eval-episodes", "1"])
    out = figures.main(["--agent", str(run), "--run", str(run), "--seeds", "0", "--rounds-per-point", "1",
                        "--clients", "3", "5", "--bandwidths-mhz", "1", "2", "--power-budgets-w", "0.3", "0.6",
                        "--ranks", "4", "8", "--calibration-path", calibration_path,
                        "--out-dir", str(tmp_path / "fig")])
    for name in ("clients", "bandwidth", "power", "rank"):
        assert (out / f"delay_vs_{name}.png").stat().st_size > 1000
    assert (out / "training_curve.png").is_file()
    data = json.loads((out / "figures.json").read_text())
    agent = [k for k in data["clients"]["curves"] if k.startswith("ppo")][0]
    # the agent was trained with 5 clients: it cannot act with 3
    assert np.isnan(data["clients"]["curves"][agent][0]) and np.isfinite(data["clients"]["curves"][agent][1])
    # one seed: the spread is 0 (no error bars); the agent's missing point is named under the figure
    assert data["seeds"] == [0] and data["rounds_per_point"] == 1
    assert data["clients"]["std"]["optimizer"] == [0.0, 0.0]
    assert data["clients"]["not_drawn"][agent].startswith("points missing: not applicable at K = 3")
    printed = capsys.readouterr().out  # and one printed line says where it was skipped and why
    assert (f"delay_vs_clients: {agent} skipped at K = 3: a fixed-K agent acts only with the spaces it was trained "
            "with (K = 5, M = 10, N = 10); drawn at the other points") in printed
    assert "delay_vs_bandwidth: ppo" not in printed  # it acts at every bandwidth
    assert len(data["training"]["train_steps"]) > 0 and len(data["training"]["eval_steps"]) == 2


def test_demo_surrogate_only(tmp_path, calibration_path, fake_baselines, capsys):
    out = demo.main(["--timesteps", "64", "--real-rounds", "0", "--surrogate-seeds", "3", "4",
                     "--baselines", "optimizer", "all_random", "--calibration-path", calibration_path,
                     "--runs-dir", str(tmp_path), "--no-progress-bar", "--bc-teacher", ""])
    captured = capsys.readouterr()
    text = captured.out
    assert "| optimizer |" in text and "| ppo (64 steps) |" in text
    assert (out / "model.zip").is_file() and (out / "demo.md").is_file()
    assert "surrogate episodes:" not in captured.err  # --no-progress-bar: silent
    demo.main(["--timesteps", "64", "--real-rounds", "0", "--surrogate-seeds", "3", "4", "--baselines", "optimizer",
               "--calibration-path", calibration_path, "--runs-dir", str(tmp_path), "--bc-teacher", ""])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("surrogate episodes: ")]
    assert [line.split()[2] for line in lines] == ["25%", "50%", "75%", "100%"], err  # a line per quarter
    assert "(4/4)" in lines[-1] and "policy=ppo (64 steps), seed=4" in lines[-1], err


def test_demo_with_warm_start(tmp_path, calibration_path, fake_baselines, capsys):
    demo.main(["--env-id", "FedsLLM-Surrogate-v0", "--timesteps", "64", "--real-rounds", "0", "--surrogate-seeds",
               "3", "--bc-teacher", "optimizer", "--bc-samples", "16", "--baselines", "optimizer",
               "--calibration-path", calibration_path, "--runs-dir", str(tmp_path), "--no-progress-bar"])
    text = capsys.readouterr().out
    assert "warm start: clone optimizer on 16 steps" in text and "| ppo (cloned optimizer + 64 steps) |" in text


def test_demo_default_clones_the_search_teacher_in_the_priority_env(tmp_path, calibration_path, fake_baselines,
                                                                      capsys):
    out = demo.main(["--real-rounds", "0", "--surrogate-seeds", "3", "--bc-samples", "16", "--baselines",
                     "optimizer", "--calibration-path", calibration_path, "--runs-dir", str(tmp_path),
                     "--no-progress-bar"])
    text = capsys.readouterr().out
    assert "training PPO on FedsLLM-Surrogate-Priority-v0 (warm start: clone search on 16 steps, then 0 RL" in text
    assert "| ppo (cloned search + 0 steps) |" in text and "PPO in FedsLLM-Surrogate-Priority-v0" in text
    config = json.loads((out / "config.json").read_text())
    assert "Priority" in json.dumps(config)


@pytest.mark.parametrize("argv, fragment", [
    (["--timesteps", "0", "--bc-teacher", ""], "trains nothing"),
    (["--env-id", "FedsLLM-v0"], "not a surrogate id"),
    (["--bc-teacher", "equal_power"], "the teacher is one of"),
    (["--real-env-id", "FedsLLM-Discrete-v0"], "wraps a Box id"),
])
def test_demo_refuses_inconsistent_flags(tmp_path, argv, fragment):
    with pytest.raises(UsageError, match=fragment):
        demo.main([*argv, "--runs-dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_demo_real_env(tmp_path, calibration_path):
    out = demo.main(["--timesteps", "64", "--real-rounds", "1", "--seeds", "0", "--surrogate-seeds",
                     "--bc-samples", "16", "--baselines", "optimizer", "--calibration-path", calibration_path,
                     "--runs-dir", str(tmp_path), "--no-progress-bar"])
    report = json.loads((out / "demo.json").read_text())
    rows = {r["policy"]: r for r in report["real"]["rows"]}
    assert "optimizer" in rows and any(n.startswith("ppo") for n in rows)
    assert all(np.isfinite(r["final_val_loss_mean"]) for r in rows.values())
    # the (c, r) each policy chose is beside its loss, and the note says why equal choices give equal losses
    episodes = report["real"]["episodes"]["optimizer"][0]
    assert rows["optimizer"]["split_rank"] == f"({episodes['splits'][0]}, {episodes['ranks'][0]}) x1"
    table = (out / "demo.md").read_text()
    assert "| (c, r) chosen x rounds |" in table and "the validation loss depends only on the (c, r)" in table


def test_split_rank_text_counts_the_choices_most_frequent_first():
    rec = types.SimpleNamespace
    text = demo.split_rank_text([rec(splits=(1, 3, 1), ranks=(64, 32, 64)), rec(splits=(1,), ranks=(64,))])
    assert text == "(1, 64) x3, (3, 32) x1"


# ---- CLI -------------------------------------------------------------------------------------------

def test_cli_dispatch(tmp_path, calibration_path, capsys):
    assert cli.main([]) == 0
    assert "calibrate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--help"])
    assert exc.value.code == 0 and "fedsllm train" in capsys.readouterr().out
    status = cli.main(["train", "--total-timesteps", "64", "--hyperparams", TINY_PPO, "--calibration-path",
                       calibration_path, "--runs-dir", str(tmp_path), "--run-name", "cli", "--no-progress-bar"])
    assert status == 0 and (tmp_path / "cli" / "model.zip").is_file()
    assert set(cli.COMMANDS) >= {"train", "evaluate", "benchmark", "figures", "demo", "calibrate", "benchmark-env",
                                 "benchmark-engine", "benchmark-optimizer", "backbone-report", "fidelity"}


def test_cli_hides_only_the_known_third_party_warning(monkeypatch):
    """transformers' `is_gradient_checkpointing` FutureWarning (emitted on every model load) is not shown by the
    commands; any other warning, FutureWarnings included, still is, and the filter ends with the command."""
    import warnings

    command = types.ModuleType("fake_command")

    def fake_main(argv):
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6. Use "
                      "`is_activation_checkpointing` instead.", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
        warnings.warn("`is_gradient_checkpointing` is deprecated (as a UserWarning)", UserWarning)

    command.main = fake_main
    monkeypatch.setitem(sys.modules, "fake_command", command)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_command", "a test command"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert cli.main(["fake"]) == 0
        fake_main([])  # outside the command: shown again
    assert [str(w.message)[:40] for w in seen] == [
        "something else is deprecated", "`is_gradient_checkpointing` is deprecate",
        "`is_gradient_checkpointing` is deprecate", "something else is deprecated",
        "`is_gradient_checkpointing` is deprecate"]
    assert [w.category for w in seen][:2] == [FutureWarning, UserWarning]


def _kept_figure(monkeypatch):
    """Keep the figures a plotting function closes, so a test can read their artists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    return plt


def test_sweep_figure_says_what_it_averages_and_leaves_empty_policies_out_of_the_legend(tmp_path, monkeypatch):
    plt = _kept_figure(monkeypatch)
    left = figures._plot(tmp_path / "f.png", [2, 4, 6], {"optimizer": [40.0, 50.0, 60.0], "fixed_rank": [45, 55, 66],
                                                         "all_random": [math.inf] * 3,
                                                         "ppo": [math.nan, 45.0, math.nan]},
                         "number of clients K", "t", stds={"optimizer": [1.0, 2.0, 3.0]}, seeds=[0, 1, 2], rounds=3,
                         labels={"fixed_rank": "fixed_rank (r = 16)"}, short="K")
    fig = plt.gcf()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["optimizer", "fixed_rank (r = 16)", "ppo"]
    assert left == {"all_random": "not drawn: infinite at K = 2, 4, 6 (it chose a rank that never reaches the "
                                  "target)",
                    "ppo": "points missing: not applicable at K = 2, 6 (its observation/action spaces are fixed by "
                           "the K it was trained with)"}
    notes = " ".join(t.get_text().replace("\n  ", " ") for t in fig.texts)
    assert "mean over 3 scenario seeds (0, 1, 2)" in notes and "first 3 rounds" in notes
    assert "error bars: std over the seeds" in notes and "all_random: not drawn: infinite" in notes
    fig.canvas.draw()  # plain log tick labels over 40-60 s: 40, 50, 60, never 4x10^1
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True) + ax.get_yticklabels() if t.get_text()]
    assert {"40", "50", "60"} <= set(labels) and not any("10^" in lbl or "times" in lbl for lbl in labels), labels
    assert len(ax.containers) == 3 and ax.containers[0].has_yerr  # error bars on every drawn policy


def test_preset_chart_marks_infinite_bars(tmp_path, monkeypatch):
    plt = _kept_figure(monkeypatch)
    data = {p: {"delay_s": {"optimizer": 30.0, "all_random": math.inf if p == "a" else 60.0, "fixed_rank": 40.0},
                "delay_std_s": {"optimizer": 1.0, "all_random": math.nan if p == "a" else 6.0, "fixed_rank": 3.0},
                "choice": {"optimizer": [1, 64]}} for p in ("a", "b")}
    figures.plot_presets(tmp_path / "p.png", data, [0, 1, 2], 3)
    fig = plt.gcf()
    ax = fig.axes[0]
    hatched = [patch for patch in ax.patches if patch.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_height() >= ax.get_ylim()[1] / 1.5  # to the top, not left out
    assert [t.get_text() for t in ax.texts] == ["inf"]
    assert [t.get_text() for t in ax.get_legend().get_texts()].count("all_random") == 1
    notes = " ".join(t.get_text().replace("\n  ", " ") for t in fig.texts)
    assert "means over 3 scenario seeds (0, 1, 2)" in notes and "all_random at a" in notes


def test_figures_rank_sweep_leaves_out_ranks_censored_at_every_cut(capsys):
    # the shipped calibration: rank 4 reaches the target at no cut within its horizon (README E(r, c) table)
    cfg = FedsLLMConfig()
    assert figures.converging_ranks([4, 8, 64], cfg) == [8, 64]
    assert "rank(s) [4] left out" in capsys.readouterr().out
    with pytest.raises(UsageError, match="every rank is censored"):
        figures.converging_ranks([4], cfg)


def test_figures_place_a_priority_agent_in_the_priority_id(calibration_path):
    cfg = {"calibration_path": calibration_path}
    box = gym.make("FedsLLM-Surrogate-v0", config=cfg)
    prio = gym.make("FedsLLM-Surrogate-Priority-v0", config=cfg)
    fake = types.SimpleNamespace
    assert figures._agent_env_id(fake(observation_space=box.observation_space, action_space=box.action_space),
                                 cfg) == "FedsLLM-Surrogate-v0"
    assert figures._agent_env_id(fake(observation_space=prio.observation_space, action_space=prio.action_space),
                                 cfg) == "FedsLLM-Surrogate-Priority-v0"
    three = {**cfg, "wireless": {"num_clients": 3}}
    assert figures._agent_env_id(fake(observation_space=prio.observation_space, action_space=prio.action_space),
                                 three) is None


def test_figures_summary_tells_censored_from_misfit_points():
    assert figures._mean_label([math.nan, math.nan]) == "n/a (spaces differ)"
    assert figures._mean_label([1.0, math.inf, math.nan]) == "inf (censored at 1 of 3 points)"
    assert figures._mean_label([1.0, math.nan, 3.0]) == "2s"


@pytest.mark.parametrize("model", [{}, {"activation_bits": 8}, {"dtype": "bfloat16"}], ids=["fp32", "q8", "bf16"])
def test_regression_snapshot_memory_limit_admits_splits_1_2_at_rank_16_in_the_envs_memory_model(model):
    import dataclasses

    from fedsllm_env.calibration import load_calibration
    from fedsllm_env.delay import memory_violations
    from train_scripts.regression_snapshot import VARIANT, memory_limit

    # the limit prices frozen weights at model.dtype's bits, as the env does (not at the wire's activation_bits)
    cfg = FedsLLMConfig.from_dict({**VARIANT, "model": model})
    shape = load_calibration(None).shape
    limited = dataclasses.replace(cfg, compute=dataclasses.replace(cfg.compute,
                                                                   client_memory_bytes=memory_limit(cfg, shape)))
    assert memory_violations(2, 16, shape, limited) == [] and memory_violations(1, 16, shape, limited) == []
    assert memory_violations(3, 16, shape, limited) and memory_violations(2, 32, shape, limited)

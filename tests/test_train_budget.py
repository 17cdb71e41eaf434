"""`fedsllm train`: a run's budget is recorded when it starts and kept by every resume, the training wall time
counts every segment, and the flags that used to be tracebacks are one clear line (exit 2) before anything is
written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agents.checkpoint import read_clock
from fedsllm_env.errors import ConfigError, DeviceError, UsageError
from train_scripts import cli, train

REPO = Path(__file__).resolve().parents[1]
TINY = json.dumps({"n_steps": 64, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [32, 32]}})


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The script sets torch's thread count in its seeding block; restore it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _argv(runs: Path, calibration_path: str, *extra: str) -> list[str]:
    return ["--hyperparams", TINY, "--calibration-path", calibration_path, "--runs-dir", str(runs),
            "--max-rounds", "5", "--no-progress-bar", "--no-tensorboard", *extra]


def _steps(run: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("checkpoint_*_steps.zip"))


def _killed_run(tmp_path: Path, calibration_path: str, monkeypatch, budget: int = 512, killed_at: int = 128) -> Path:
    """A run of ``budget`` steps that died after its checkpoint at ``killed_at``: config.json as written at the
    start, checkpoints up to ``killed_at``, no model.zip and no train_summary.json."""
    real = train.train_agent

    def dies(*args, **kwargs):
        real(*args, **{**kwargs, "total_timesteps": killed_at})
        run = Path(args[1])
        for name in ("model.zip", "model_clock.json"):
            (run / name).unlink()
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(train, "train_agent", dies)
    with pytest.raises(KeyboardInterrupt):
        train.main(_argv(tmp_path, calibration_path, "--run-name", "r", "--total-timesteps", str(budget),
                         "--checkpoint-freq", "64"))
    monkeypatch.setattr(train, "train_agent", real)
    run = tmp_path / "r"
    config = json.loads((run / "config.json").read_text())
    assert "hyperparams" not in config and config["total_timesteps"] == budget  # recorded before training
    assert _steps(run) == list(range(64, killed_at + 1, 64)) and not (run / "train_summary.json").exists()
    return run


def test_resume_of_a_killed_run_keeps_its_budget_and_counts_every_segment(tmp_path, calibration_path, monkeypatch,
                                                                          capsys):
    run = _killed_run(tmp_path, calibration_path, monkeypatch)
    ckpt = run / "checkpoints" / "checkpoint_128_steps.zip"
    before_s = read_clock(ckpt, 128)
    assert before_s is not None and before_s > 0
    capsys.readouterr()

    assert train.main(["--algo", "ppo", "--resume", str(run), "--no-progress-bar"]) == run

    out = capsys.readouterr().out
    assert f"resumed from {ckpt} at step 128 of 512: 384 to train" in out and "nothing" not in out
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["num_timesteps"] == 512 and summary["total_timesteps"] == 512  # not the YAML's 50,000
    assert _steps(run) == list(range(64, 513, 64))  # 8 checkpoints, not 98
    assert summary["wall_time_s"] == pytest.approx(before_s + summary["segment_wall_time_s"], rel=1e-9)
    assert summary["wall_time_s"] > summary["segment_wall_time_s"] > 0
    assert read_clock(run / "model.zip", 512) == pytest.approx(summary["wall_time_s"], rel=1e-9)
    config = json.loads((run / "config.json").read_text())
    assert config["total_timesteps"] == 512 and config["args"]["total_timesteps"] == 512  # kept, not 0
    assert config["hyperparams"]["n_timesteps"] == 512
    assert config["resumes"] == [{"resumed_from": str(ckpt), "resumed_at_timesteps": 128, "total_timesteps": 512}]


def test_resume_of_a_finished_run_trains_nothing_and_an_explicit_budget_extends_it(tmp_path, calibration_path,
                                                                                   capsys):
    run = train.main(_argv(tmp_path, calibration_path, "--run-name", "f", "--total-timesteps", "128",
                           "--checkpoint-freq", "64"))
    first = json.loads((run / "train_summary.json").read_text())
    capsys.readouterr()
    train.main(["--resume", str(run), "--no-progress-bar"])
    out = capsys.readouterr().out
    assert "at step 128 of 128: nothing left to train" in out
    again = json.loads((run / "train_summary.json").read_text())
    assert again["num_timesteps"] == 128 and _steps(run) == [64, 128]
    assert again["wall_time_s"] >= first["wall_time_s"]  # the earlier segment still counts
    # an explicit --total-timesteps extends the budget, and the new budget is the run's from then on
    train.main(["--resume", str(run), "--total-timesteps", "192", "--no-progress-bar"])
    assert "at step 128 of 192: 64 to train" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["total_timesteps"] == 192
    # a checkpoint of an older version (no _clock.json): the wall time comes from train_summary.json
    (run / "checkpoints" / "checkpoint_192_steps_clock.json").unlink()
    (run / "model_clock.json").unlink()
    total_s = json.loads((run / "train_summary.json").read_text())["wall_time_s"]
    train.main(["--resume", str(run), "--no-progress-bar"])
    assert json.loads((run / "train_summary.json").read_text())["wall_time_s"] >= total_s


def test_killed_run_real_kill_resumes_to_its_own_budget(tmp_path, calibration_path):
    """The reported path: kill -9 after a checkpoint, then `fedsllm train --resume <run>` without a budget."""
    run = tmp_path / "k"
    cmd = [sys.executable, "-m", "train_scripts.cli", "train", "--algo", "ppo", "--total-timesteps", "4096",
           "--checkpoint-freq", "256", *_argv(tmp_path, calibration_path, "--run-name", "k")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoints" / "checkpoint_512_steps.zip").is_file():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (run / "train_summary.json").exists()  # killed before the end
    newest = _steps(run)[-1]
    assert newest < 4096
    done = subprocess.run([sys.executable, "-m", "train_scripts.cli", "train", "--algo", "ppo", "--resume", str(run),
                           "--no-progress-bar"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"at step {newest} of 4096" in done.stdout
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["num_timesteps"] == 4096 and _steps(run) == list(range(256, 4097, 256))
    assert json.loads((run / "config.json").read_text())["args"]["total_timesteps"] == 4096
    assert summary["wall_time_s"] > summary["segment_wall_time_s"]


# ---- flags refused before anything is written ---------------------------------------------------------

def _runs_file(tmp: Path) -> Path:
    (tmp / "runs").write_text("not a folder")
    return tmp / "runs"


NO_GPU = not torch.cuda.is_available()

BAD = [
    (["--seed", "-1"], UsageError, "--seed must be in [0, 4294967295] (numpy's seed range), got -1"),
    (["--seed", str(2**64)], UsageError, f"--seed must be in [0, 4294967295] (numpy's seed range), got {2**64}"),
    (["--env-id", "FedsLLM-Surrogate-Hybrid-v0", "--vec-env", "batched"], UsageError,
     "--vec-env batched: FedsLLM-Surrogate-Hybrid-v0 has no batched version"),
    (["--env-id", "FedsLLM-Hybrid-v0", "--vec-env", "batched"], UsageError,
     "--vec-env batched: FedsLLM-Hybrid-v0 has no batched"),
    (["--n-envs", "100000"], ConfigError, "--n-envs must be an int in [1, 65,536], got 100000"),
    (["--framework", "rllib", "--ray-address", "bogus://x"], UsageError, "--ray-address must be 'local'"),
    (["--framework", "rllib", "--seed", "-1"], UsageError, "--seed must be in [0, 4294967295]"),
]
if NO_GPU:
    BAD += [(["--framework", "rllib", "--gpus-per-learner", "1"], DeviceError,
             "--gpus-per-learner 1 but Ray at 'local' has 0 GPU(s); use --gpus-per-learner 0 (CPU)"),
            (["--framework", "rllib", "--gpus-per-env-runner", "1"], DeviceError,
             "--gpus-per-env-runner 1 but Ray at 'local' has 0 GPU(s)")]


@pytest.mark.parametrize("flags, error, fragment", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_train_flags_are_one_line_before_anything_is_written(tmp_path, calibration_path, capsys, flags, error,
                                                                 fragment):
    runs = tmp_path / "runs"
    with pytest.raises(error) as info:
        train.main(_argv(runs, calibration_path, "--total-timesteps", "64", *flags))
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert not runs.exists()
    assert cli.main(["train", *_argv(runs, calibration_path, "--total-timesteps", "64", *flags)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedsllm train: error: ") and err.count("\n") == 1 and fragment in err
    assert not runs.exists()


def test_runs_dir_that_is_a_file_or_not_writable(tmp_path, calibration_path):
    as_file = _runs_file(tmp_path)
    with pytest.raises(UsageError, match=r"--runs-dir .*/runs/sub: .*/runs is a file, not a folder; choose a folder"):
        train.main(_argv(as_file / "sub", calibration_path, "--total-timesteps", "64"))
    with pytest.raises(UsageError, match=r"is a file, not a folder"):
        train.main(_argv(as_file, calibration_path, "--total-timesteps", "64", "--run-name", "x"))
    assert as_file.read_text() == "not a folder"
    # /sys refuses new folders even to root; a read-only folder refuses them to everybody else
    with pytest.raises(UsageError, match=r"--runs-dir /sys/fedsllm-runs is not writable \(/sys: .*\); choose a "
                                         r"writable folder"):
        train.main(_argv(Path("/sys/fedsllm-runs"), calibration_path, "--total-timesteps", "64"))
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(UsageError, match="is not writable"):
                train.main(_argv(locked / "runs", calibration_path, "--total-timesteps", "64"))
            assert list(locked.iterdir()) == []
        finally:
            locked.chmod(0o700)


def test_batched_resume_is_refused_before_the_logs_are_cut(tmp_path, calibration_path):
    run = train.main(_argv(tmp_path, calibration_path, "--run-name", "b", "--total-timesteps", "64",
                           "--checkpoint-freq", "64"))
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    with pytest.raises(UsageError, match="--vec-env batched cannot resume a run"):
        train.main(["--resume", str(run), "--total-timesteps", "128", "--vec-env", "batched", "--no-progress-bar"])
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before

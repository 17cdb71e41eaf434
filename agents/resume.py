"""Resuming a killed or finished training run in its own folder with nothing lost or duplicated.

A run folder keeps growing across resumes: before training continues from a checkpoint taken at
step N, everything the run logged after step N (by a run that was killed later, or trained past
N) is cut back to N, and the loggers then append:

- ``monitor/<i>.monitor.csv`` (SB3 Monitor): rows after the checkpoint are dropped; the new Monitor
  appends (``override_existing=False``) and keeps the file's original ``t_start``, so ``t`` stays
  the wall time since the run began;
- ``episodes.jsonl`` (:class:`agents.callbacks.FedsLLMInfoCallback`): episodes after step N dropped;
- TensorBoard: SB3 continues in the same ``tb/<algo>_<i>`` folder (``reset_num_timesteps=False``);
  a ``purge_step=N+1`` marker makes TensorBoard discard the events the old run wrote after step N;
- ``eval/evaluations.npz`` (EvalCallback): the evaluations up to step N are loaded back into the new
  callback (:func:`restore_evaluations`), which rewrites the file with them first.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.utils import get_latest_run_id

from agents.callbacks import truncate_episode_log
from fedsllm_env.atomic import atomic_write
from fedsllm_env.errors import UsageError

__all__ = ["EPISODE_LOG", "checkpoint_timesteps", "truncate_monitor", "purge_tensorboard", "prepare_resume",
           "continue_monitor", "restore_evaluations"]

EPISODE_LOG = "episodes.jsonl"
"""Episode log of a run folder (one JSON object per finished training episode)."""

_MONITOR_RE = re.compile(r"^(\d+)\.monitor\.csv$")


def checkpoint_timesteps(path: str | os.PathLike[str]) -> int:
    """Environment steps recorded in an SB3 zip (``num_timesteps``).

    Raises:
        UsageError: the file is not a Stable-Baselines3 zip.
    """
    try:
        data, _, _ = load_from_zip_file(path, load_data=True, device="cpu", print_system_info=False)
    except Exception as e:  # zipfile.BadZipFile, ValueError, KeyError, ...: all mean "not a model zip"
        raise UsageError(f"{path} is not a readable Stable-Baselines3 checkpoint ({type(e).__name__}: {e})") from e
    if not data or "num_timesteps" not in data:
        raise UsageError(f"{path} is not a Stable-Baselines3 checkpoint (no num_timesteps in its data)")
    return int(data["num_timesteps"])


def _monitor_files(monitor_dir: Path) -> list[Path]:
    if not monitor_dir.is_dir():
        return []
    return sorted((p for p in monitor_dir.iterdir() if _MONITOR_RE.match(p.name)),
                  key=lambda p: int(_MONITOR_RE.match(p.name).group(1)))  # type: ignore[union-attr]


def truncate_monitor(monitor_dir: str | os.PathLike[str], timesteps: int, n_envs: int | None = None) -> int:
    """Drop the Monitor rows of episodes that ended after ``timesteps`` (all envs together).

    Env i of ``n_envs`` (default: the number of monitor files) did ``timesteps / n_envs`` steps by
    then; its rows are kept while their cumulative length stays within that. Returns the rows kept.
    """
    files = _monitor_files(Path(monitor_dir))
    n_envs = n_envs or len(files)
    kept_total = 0
    for path in files:
        lines = path.read_text().splitlines(keepends=True)
        head = [ln for ln in lines[:2] if ln.startswith("#") or ln.startswith("r,")]
        rows, steps = [], 0
        for line in lines[len(head):]:
            fields = line.rstrip("\n").split(",")
            try:
                steps += int(float(fields[1]))
            except (IndexError, ValueError):  # a row cut by a kill mid-write
                break
            if steps * n_envs > timesteps:
                break
            rows.append(line if line.endswith("\n") else line + "\n")
        kept_total += len(rows)
        atomic_write(path, lambda fh, text="".join(head + rows): fh.write(text.encode()))
    return kept_total


def purge_tensorboard(tb_dir: str | os.PathLike[str], tb_log_name: str, timesteps: int) -> Path | None:
    """Mark SB3's latest ``<tb_dir>/<tb_log_name>_<i>`` so TensorBoard drops its events after ``timesteps``.

    Returns the folder, or None when there is none yet.
    """
    run_id = get_latest_run_id(str(tb_dir), tb_log_name)
    if run_id == 0:
        return None
    folder = Path(tb_dir) / f"{tb_log_name}_{run_id}"
    from torch.utils.tensorboard import SummaryWriter

    # TensorBoard reads a folder's event files in name order, and names start with the creation second:
    # the marker must sort after the old run's files and before the files of the resumed run
    stamps = [int(m.group(1)) for p in folder.glob("events.out.tfevents.*")
              if (m := re.match(r"events\.out\.tfevents\.(\d+)\.", p.name))]
    _wait_past_second(max(stamps, default=0))
    marker_second = int(time.time())
    # events at step N itself were logged before or at the checkpoint (SB3 dumps a rollout's stats, then trains)
    SummaryWriter(log_dir=str(folder), purge_step=int(timesteps) + 1).close()
    _wait_past_second(marker_second)
    return folder


def _wait_past_second(second: int) -> None:
    """Sleep until the wall clock is past ``second`` (at most about a second)."""
    while int(time.time()) <= second:
        time.sleep(0.02)


def prepare_resume(run_dir: str | os.PathLike[str], timesteps: int, tb_log_name: str | None,
                   n_envs: int | None = None) -> dict[str, Any]:
    """Cut the monitor CSVs, the episode log and TensorBoard of ``run_dir`` back to ``timesteps``.

    Args:
        run_dir: the run folder training continues in.
        timesteps: the checkpoint's step count.
        tb_log_name: SB3's TensorBoard run name (None: no TensorBoard).
        n_envs: parallel envs of the run so far (default: the number of monitor files).

    Returns:
        What was kept: ``{"monitor_rows": ..., "episodes": ..., "tensorboard": folder or None}``.
    """
    run_dir = Path(run_dir)
    return {
        "monitor_rows": truncate_monitor(run_dir / "monitor", timesteps, n_envs),
        "episodes": truncate_episode_log(run_dir / EPISODE_LOG, timesteps),
        "tensorboard": None if tb_log_name is None else purge_tensorboard(run_dir / "tb", tb_log_name, timesteps),
    }


def continue_monitor(env: Monitor) -> Monitor:
    """``make_vec_env`` wrapper for an appending Monitor: keep the file's ``t_start``, or write the header.

    With ``override_existing=False`` SB3 opens the CSV in append mode and writes no header, so a new
    file would lack it and an old one would get times relative to the resumed process.
    """
    writer = env.results_writer
    if writer is None:
        return env
    handle = writer.file_handler
    path = Path(handle.name)
    if path.stat().st_size == 0:
        handle.write(f"#{json.dumps({'t_start': env.t_start, 'env_id': str(env.spec.id if env.spec else None)})}\n")
        writer.logger.writeheader()
        handle.flush()
        return env
    first = path.read_text().split("\n", 1)[0]
    try:
        env.t_start = float(json.loads(first[1:])["t_start"])
    except (ValueError, KeyError, TypeError):
        pass  # no readable header: times are relative to this process
    return env


def restore_evaluations(callback: Any, timesteps: int) -> int:
    """Load an EvalCallback's earlier evaluations (steps <= ``timesteps``) from its ``evaluations.npz``.

    SB3's EvalCallback starts its lists empty and rewrites the file at every evaluation, which would drop
    the curve of the run before the resume. Returns the number of evaluations restored.
    """
    path = getattr(callback, "log_path", None)  # ".../eval/evaluations"; np.savez adds ".npz"
    if not path:
        return 0
    path = path if str(path).endswith(".npz") else f"{path}.npz"
    if not os.path.isfile(path):
        return 0
    import numpy as np

    try:
        with np.load(path) as data:
            keep = data["timesteps"] <= timesteps
            restored = {"evaluations_timesteps": data["timesteps"][keep].tolist(),
                        "evaluations_results": data["results"][keep].tolist(),
                        "evaluations_length": data["ep_lengths"][keep].tolist()}
            if "successes" in data.files and len(data["successes"]) == len(keep):
                restored["evaluations_successes"] = data["successes"][keep].tolist()
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        # cut by a kill while SB3's EvalCallback rewrote it in place with np.savez (empty: EOFError, cut:
        # BadZipFile); agents.callbacks.AtomicEvaluations writes it atomically instead
        aside = f"{path}.unreadable"
        os.replace(path, aside)
        warnings.warn(f"{path} is unreadable ({e}); moved to {aside}, the evaluation curve restarts", stacklevel=2)
        return 0
    widths = {len(r) for r in restored["evaluations_results"]}
    if widths and widths != {callback.n_eval_episodes}:
        raise UsageError(f"{path} holds {widths.pop()} episodes per evaluation but this run evaluates "
                         f"{callback.n_eval_episodes}: resume with the run's --eval-episodes")
    for name, values in restored.items():
        setattr(callback, name, values)
    return len(restored["evaluations_timesteps"])

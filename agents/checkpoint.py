"""Atomic model checkpoints during training, detection of a saved agent's algorithm, and resuming.

A checkpoint is written to a temporary file in the target folder and moved into place with
``os.replace``, so a crash never leaves a truncated ``.zip`` under the final name. Beside a
checkpoint ``<name>.zip`` lie, when they exist, ``<name>_vecnormalize.pkl`` (the running reward
statistics of a ``normalize_reward`` run) and ``<name>_replay_buffer.pkl`` (off-policy agents, when
asked); :func:`resume` restores both. ``<name>_clock.json`` records the run's training wall time up to
that checkpoint, every segment before a resume included (:func:`write_clock`, :func:`read_clock`), so a
run killed and resumed still reports its whole training time.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from agents.factory import ALGOS
from fedsllm_env.atomic import atomic_write, atomic_write_json
from fedsllm_env.errors import MissingFileError, UsageError

__all__ = ["atomic_save", "save_vec_normalize", "sidecar", "clock_path", "write_clock", "read_clock",
           "AtomicCheckpointCallback", "latest_checkpoint", "detect_algo", "load_agent", "resume"]

_STEPS_RE = re.compile(r"_(\d+)_steps\.zip$")


def atomic_save(model: BaseAlgorithm, path: str | os.PathLike[str]) -> Path:
    """Save an SB3 model to ``path`` atomically.

    Args:
        model: the agent.
        path: target file; ``.zip`` is appended when missing (SB3's convention).

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_name(path.name + ".zip")
    return atomic_write(path, model.save)


def sidecar(checkpoint: str | os.PathLike[str], kind: str) -> Path:
    """Path of a checkpoint's companion file: ``kind`` is "vecnormalize" or "replay_buffer"."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}_{kind}.pkl")


def clock_path(checkpoint: str | os.PathLike[str]) -> Path:
    """Path of a checkpoint's training-clock record, ``<name>_clock.json``."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}_clock.json")


def write_clock(checkpoint: str | os.PathLike[str], num_timesteps: int, wall_time_s: float) -> Path:
    """Record, atomically beside ``checkpoint``, the run's training wall time up to it (all segments), s."""
    return atomic_write_json(clock_path(checkpoint), {"num_timesteps": int(num_timesteps),
                                                      "wall_time_s": float(wall_time_s)})


def read_clock(checkpoint: str | os.PathLike[str], num_timesteps: int | None = None) -> float | None:
    """The training wall time recorded beside ``checkpoint``, s; None when there is no readable record (an
    older checkpoint, a file cut by a kill) or it belongs to another step count than ``num_timesteps``."""
    try:
        data = json.loads(clock_path(checkpoint).read_text())
        wall_s, steps = float(data["wall_time_s"]), int(data["num_timesteps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not math.isfinite(wall_s) or wall_s < 0 or (num_timesteps is not None and steps != int(num_timesteps)):
        return None
    return wall_s


def save_vec_normalize(model: BaseAlgorithm, checkpoint: str | os.PathLike[str]) -> Path | None:
    """Save the agent's VecNormalize statistics beside ``checkpoint`` atomically (None if it has none)."""
    vec = model.get_vec_normalize_env()
    if vec is None:
        return None
    return atomic_write(sidecar(checkpoint, "vecnormalize"), lambda fh: pickle.dump(vec, fh))


class AtomicCheckpointCallback(BaseCallback):
    """Save the model atomically every ``save_freq`` environment steps and at the end of training.

    Files are ``<save_dir>/<name_prefix>_<num_timesteps>_steps.zip``, with the VecNormalize statistics
    (``..._vecnormalize.pkl``) when the agent trains on a VecNormalize env and, when
    ``save_replay_buffer`` is set for an off-policy agent, the replay buffer (``..._replay_buffer.pkl``,
    kept for the newest checkpoint only: it can be hundreds of MB), and ``..._clock.json``, the run's training
    wall time up to the checkpoint (earlier segments from :meth:`start_clock`). After a resume the first
    checkpoint is the first multiple of ``save_freq`` past the resumed step count.

    Args:
        save_freq: period in environment steps (counted over all parallel envs); 0 = only at the end.
        save_dir: folder of the checkpoints.
        name_prefix: file-name prefix.
        save_replay_buffer: also save the replay buffer of off-policy agents (SAC, TD3).
        keep_last: keep only this many most recent checkpoints (0 = keep all).
        verbose: 1 prints each save.
    """

    def __init__(self, save_freq: int, save_dir: str | os.PathLike[str], name_prefix: str = "checkpoint",
                 save_replay_buffer: bool = False, keep_last: int = 0, verbose: int = 0):
        super().__init__(verbose)
        if save_freq < 0:
            raise ValueError(f"save_freq must be >= 0 environment steps, got {save_freq}")
        if keep_last < 0:
            raise ValueError(f"keep_last must be >= 0, got {keep_last}")
        self.save_freq = int(save_freq)
        self.save_dir = Path(save_dir)
        self.name_prefix = name_prefix
        self.save_replay_buffer = save_replay_buffer
        self.keep_last = keep_last
        self.saved: list[Path] = []
        self._last_saved_at = -1
        self._next_save = 0
        self._clock_start: float | None = None
        self._wall_before_s = 0.0

    def start_clock(self, wall_time_before_s: float = 0.0, started_at: float | None = None) -> None:
        """Count this segment's training time from ``started_at`` (``time.perf_counter()``; default now) on top
        of ``wall_time_before_s`` (the run's earlier segments), for the ``_clock.json`` of every checkpoint."""
        self._wall_before_s = float(wall_time_before_s)
        self._clock_start = time.perf_counter() if started_at is None else float(started_at)

    def wall_time_s(self) -> float:
        """The run's training wall time so far (earlier segments included), s."""
        if self._clock_start is None:
            return self._wall_before_s
        return self._wall_before_s + time.perf_counter() - self._clock_start

    def _init_callback(self) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        if self._clock_start is None:
            self.start_clock()
        # the model's counter: BaseCallback.num_timesteps is still 0 here on a resumed run
        self._last_saved_at = int(self.model.num_timesteps)  # that state is already on disk when resuming
        if self.save_freq > 0:
            self._next_save = (int(self.model.num_timesteps) // self.save_freq + 1) * self.save_freq

    def checkpoint_path(self, num_timesteps: int) -> Path:
        """Path of the checkpoint taken at ``num_timesteps``."""
        return self.save_dir / f"{self.name_prefix}_{num_timesteps}_steps.zip"

    def _save(self) -> None:
        if self.num_timesteps == self._last_saved_at:
            return
        path = atomic_save(self.model, self.checkpoint_path(self.num_timesteps))
        save_vec_normalize(self.model, path)
        write_clock(path, self.num_timesteps, self.wall_time_s())
        if self.save_replay_buffer and isinstance(self.model, OffPolicyAlgorithm):
            atomic_write(sidecar(path, "replay_buffer"), self.model.save_replay_buffer)
            for older in self.saved:
                sidecar(older, "replay_buffer").unlink(missing_ok=True)
        self._last_saved_at = self.num_timesteps
        self.saved.append(path)
        if self.verbose:
            print(f"saved checkpoint {path}")
        if self.keep_last and len(self.saved) > self.keep_last:
            old = self.saved.pop(0)
            old.unlink(missing_ok=True)
            for kind in ("replay_buffer", "vecnormalize"):
                sidecar(old, kind).unlink(missing_ok=True)
            clock_path(old).unlink(missing_ok=True)

    def _on_step(self) -> bool:
        if self.save_freq > 0 and self.num_timesteps >= self._next_save:
            self._save()
            self._next_save = (self.num_timesteps // self.save_freq + 1) * self.save_freq
        return True

    def _on_training_end(self) -> None:
        self._save()


def latest_checkpoint(save_dir: str | os.PathLike[str], name_prefix: str = "checkpoint") -> Path | None:
    """The checkpoint with the most environment steps in ``save_dir`` (None if there is none)."""
    best: tuple[int, Path] | None = None
    folder = Path(save_dir)
    if not folder.is_dir():
        return None
    for path in folder.glob(f"{name_prefix}_*_steps.zip"):
        match = _STEPS_RE.search(path.name)
        if match and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), path)
    return None if best is None else best[1]


def detect_algo(path: str | os.PathLike[str]) -> str:
    """Infer the algorithm (key of :data:`~agents.factory.ALGOS`) of a saved SB3 zip.

    Args:
        path: a ``.zip`` written by ``model.save`` / :func:`atomic_save`.

    Returns:
        "maskable_ppo", "sac", "td3", "ppo" or "a2c" (PPO and A2C share a policy class; PPO is the
        one that stores ``clip_range``).
    """
    try:
        data, _, _ = load_from_zip_file(path, load_data=True, device="cpu", print_system_info=False)
    except Exception as e:  # BadZipFile, ValueError, JSON errors...: all mean "not a readable model zip"
        raise UsageError(f"{path} is not a readable Stable-Baselines3 model zip ({type(e).__name__}: {e})") from e
    if not data or "policy_class" not in data:
        raise UsageError(f"{path} is not a Stable-Baselines3 model zip (no policy_class in its data)")
    module = getattr(data["policy_class"], "__module__", "")
    if "maskable" in module:
        return "maskable_ppo"
    for name in ("sac", "td3"):
        if f".{name}." in module:
            return name
    return "ppo" if "clip_range" in data else "a2c"


def load_agent(path: str | os.PathLike[str], algo: str | None = None, env: gym.Env | VecEnv | None = None,
               device: str = "cpu", **kwargs: Any) -> BaseAlgorithm:
    """Load a saved agent.

    Args:
        path: the model ``.zip``.
        algo: its algorithm; default: :func:`detect_algo`.
        env: env to attach (needed to continue training; not needed to predict).
        device: torch device.
        **kwargs: passed to ``<Algo>.load`` (e.g. ``tensorboard_log``).

    Returns:
        The agent.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no saved agent at {path}")
    if algo is not None and algo not in ALGOS:
        raise UsageError(f"unknown algorithm {algo!r}; choose one of {sorted(ALGOS)}")
    saved = detect_algo(path)
    if algo is not None and algo != saved:
        raise UsageError(f"{path} holds a {saved} agent, not {algo}")
    return ALGOS[saved].load(path, env=env, device=device, **kwargs)


def resume(path: str | os.PathLike[str], env: gym.Env | VecEnv, total_timesteps: int,
           algo: str | None = None, callback: MaybeCallback = None, tensorboard_log: str | None = None,
           replay_buffer: str | os.PathLike[str] | None = None, progress_bar: bool = False,
           tb_log_name: str = "run", device: str = "cpu", **learn_kwargs: Any) -> BaseAlgorithm:
    """Load a checkpoint and continue training until ``total_timesteps`` steps in all.

    The step counter continues (``reset_num_timesteps=False``), so TensorBoard curves and checkpoint
    names follow on from the checkpoint.

    Args:
        path: checkpoint ``.zip``.
        env: env to continue on (same spaces as at save time).
        total_timesteps: the TOTAL budget including the steps already done; nothing is trained if the
            checkpoint is already there.
        algo: the checkpoint's algorithm; default: :func:`detect_algo`.
        callback: SB3 callback(s) for the continued run.
        tensorboard_log: TensorBoard folder.
        replay_buffer: a replay buffer ``.pkl`` to restore (off-policy agents).
        progress_bar: show SB3's tqdm/rich progress bar.
        tb_log_name: TensorBoard run name.
        device: torch device.
        **learn_kwargs: other ``model.learn`` arguments (e.g. ``log_interval``).

    Returns:
        The agent after training.
    """
    model = load_agent(path, algo=algo, env=env, device=device, tensorboard_log=tensorboard_log)
    if replay_buffer is not None:
        if not isinstance(model, OffPolicyAlgorithm):
            raise ValueError(f"replay_buffer given but {type(model).__name__} is on-policy (has no replay buffer)")
        model.load_replay_buffer(replay_buffer)
    remaining = int(total_timesteps) - int(model.num_timesteps)
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=callback, reset_num_timesteps=False,
                    progress_bar=progress_bar, tb_log_name=tb_log_name, **learn_kwargs)
    return model

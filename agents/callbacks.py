"""SB3 callbacks: the env's info (delay breakdown, reward terms, losses) to the SB3 logger and an
episode log that survives resumes; plain-line progress for non-interactive logs; an EvalCallback whose
``evaluations.npz`` is written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from fedsllm_env.atomic import atomic_write
from fedsllm_env.progress import PlainProgress

__all__ = ["FedsLLMInfoCallback", "PlainProgressCallback", "read_episode_log", "truncate_episode_log",
           "AtomicEvaluations", "AtomicEvalCallback", "atomic_eval_callback"]

_SCALARS = ("val_loss", "train_loss", "round_delay_s", "expected_total_delay_s", "expected_rounds", "split", "rank")
_GROUPS = {"delay_breakdown": "delay", "reward_terms": "reward"}


class FedsLLMInfoCallback(BaseCallback):
    """Average the per-step ``info`` of the FedsLLM env and record it with the SB3 logger.

    Per step (means over the steps between two logger dumps, via ``logger.record_mean``):
    ``fedsllm/delay/<term>`` for every entry of ``info["delay_breakdown"]`` (seconds, or bits for the
    ``*_bits`` payload sizes), ``fedsllm/reward/<term>`` for ``info["reward_terms"]``, and
    ``fedsllm/<key>`` for val_loss, train_loss, round_delay_s, expected_total_delay_s (E(r) * T_round, s),
    expected_rounds, split and rank. Per finished episode: ``fedsllm/episode/total_delay_s`` (the sum
    of round delays, s), ``fedsllm/episode/rounds`` and ``fedsllm/episode/reached_target``.

    The finished episodes are also kept in :attr:`episodes` (dicts with ``total_delay_s``, ``rounds``,
    ``terminated``, ``final_val_loss``, ``timestep``) for scripts and tests and, with ``log_path``,
    appended to that JSON-lines file as they finish (one flushed line each, so a killed run keeps
    them; :func:`truncate_episode_log` cuts it back to a checkpoint before a resume).

    Args:
        prefix: logger key prefix.
        log_path: JSON-lines episode log to append to (None: none).
        verbose: SB3 verbosity.
    """

    def __init__(self, prefix: str = "fedsllm", log_path: str | os.PathLike[str] | None = None, verbose: int = 0):
        super().__init__(verbose)
        self.prefix = prefix
        self.log_path = None if log_path is None else Path(log_path)
        self.episodes: list[dict[str, Any]] = []

    def _log(self, episode: dict[str, Any]) -> None:
        if self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps(episode) + "\n")

    def _on_step(self) -> bool:
        infos = self.locals.get("infos", ())
        dones = self.locals.get("dones", np.zeros(len(infos), dtype=bool))
        record = self.logger.record_mean
        p = self.prefix
        # the batched env (agents.vec_env) gives full infos only at episode ends and the step's means here
        means = getattr(self.training_env, "step_means", None) if self.training_env is not None else None
        if means:
            for key, value in means.items():
                group, _, term = key.partition("/")
                if group in _GROUPS and term:
                    record(f"{p}/{_GROUPS[group]}/{term}", value)
                elif key in _SCALARS:
                    record(f"{p}/{key}", value)
        for info, done in zip(infos, dones):
            if "round_delay_s" not in info:  # not a FedsLLM step info
                continue
            if not means:
                for key, value in info.get("delay_breakdown", {}).items():
                    record(f"{p}/delay/{key}", float(value))
                for key, value in info.get("reward_terms", {}).items():
                    record(f"{p}/reward/{key}", float(value))
                for key in _SCALARS:
                    if key in info:  # per-client cuts and ranks (heterogeneous envs) are logged by their mean
                        record(f"{p}/{key}", float(np.mean(info[key])))
            if done:
                terminated = not info.get("TimeLimit.truncated", False) and float(info["val_loss"]) <= float(
                    info.get("target_val_loss", -np.inf))
                episode = {
                    "total_delay_s": float(info["cumulative_delay_s"]),
                    "rounds": int(info["round"]),
                    "terminated": bool(terminated),
                    "final_val_loss": float(info["val_loss"]),
                    "timestep": int(self.num_timesteps),
                }
                self.episodes.append(episode)
                self._log(episode)
                record(f"{p}/episode/total_delay_s", episode["total_delay_s"])
                record(f"{p}/episode/rounds", float(episode["rounds"]))
                record(f"{p}/episode/reached_target", float(terminated))
        return True


def read_episode_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Episodes of a :class:`FedsLLMInfoCallback` log ([] if missing; a torn last line is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut by a kill mid-write
            continue
    return out


def truncate_episode_log(path: str | os.PathLike[str], max_timestep: int) -> int:
    """Keep the episodes that ended at or before ``max_timestep`` (a checkpoint's step); returns how many."""
    from fedsllm_env.atomic import atomic_write

    path = Path(path)
    if not path.is_file():
        return 0
    kept = [e for e in read_episode_log(path) if int(e.get("timestep", 0)) <= max_timestep]
    atomic_write(path, lambda fh: fh.write("".join(json.dumps(e) + "\n" for e in kept).encode()))
    return len(kept)


class PlainProgressCallback(BaseCallback):
    """SB3 progress as a few plain lines (:class:`~fedsllm_env.progress.PlainProgress`), for logs.

    SB3's own progress bar (tqdm/rich) redraws itself with carriage returns; this callback prints one
    line per quarter of the run instead. :func:`agents.training.train_agent` picks it when stderr is
    not a terminal.

    Args:
        desc: label of the lines.
        verbose: SB3 verbosity.
    """

    def __init__(self, desc: str = "training", verbose: int = 0):
        super().__init__(verbose)
        self.desc = desc
        self.bar: PlainProgress | None = None

    def _on_training_start(self) -> None:
        remaining = int(self.locals["total_timesteps"]) - int(self.model.num_timesteps)
        self.bar = PlainProgress(total=max(remaining, 1), desc=self.desc)

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


class AtomicEvaluations:
    """Mixin for SB3's ``EvalCallback`` (or sb3-contrib's ``MaskableEvalCallback``): ``evaluations.npz`` is written
    atomically (:func:`fedsllm_env.atomic.atomic_write`: a temporary file beside it, fsync, ``os.replace``).

    SB3 saves the whole curve after every evaluation with ``np.savez(log_path, ...)``, which opens the final file
    with truncation and fills it while the process runs on: a run killed in that moment (``kill -9``, an OOM kill,
    a lost node) leaves an empty or cut ``evaluations.npz``, and the evaluations before it are lost for a resume
    (:func:`agents.resume.restore_evaluations`). Here the evaluation step hands ``np.savez`` the open temporary file
    instead of the path (numpy writes into a file object as is), so the final file is always a complete one.
    """

    def _on_step(self) -> bool:
        log_path = self.log_path  # type: ignore[attr-defined]
        if log_path is None or not (self.eval_freq > 0 and self.n_calls % self.eval_freq == 0):  # type: ignore[attr-defined]
            return super()._on_step()  # type: ignore[misc]
        result = True

        def evaluate(fh: Any) -> None:
            nonlocal result
            self.log_path = fh
            try:
                result = super(AtomicEvaluations, self)._on_step()  # type: ignore[misc]
            finally:
                self.log_path = log_path

        atomic_write(f"{log_path}.npz", evaluate)
        return result


class AtomicEvalCallback(AtomicEvaluations, EvalCallback):
    """SB3's ``EvalCallback`` with ``evaluations.npz`` written atomically (:class:`AtomicEvaluations`)."""


_MASKABLE: list[type] = []


def atomic_eval_callback(eval_env: Any, maskable: bool = False, **kwargs: Any) -> EvalCallback:
    """An :class:`AtomicEvalCallback`, or with ``maskable`` the same over sb3-contrib's ``MaskableEvalCallback``
    (action masks in the evaluation); ``kwargs`` are the EvalCallback's."""
    if not maskable:
        return AtomicEvalCallback(eval_env, **kwargs)
    if not _MASKABLE:
        from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback

        _MASKABLE.append(type("AtomicMaskableEvalCallback", (AtomicEvaluations, MaskableEvalCallback),
                              {"__doc__": "sb3-contrib's MaskableEvalCallback with evaluations.npz written "
                                          "atomically (AtomicEvaluations)."}))
    return _MASKABLE[0](eval_env, **kwargs)

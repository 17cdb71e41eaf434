"""Train (or resume) one agent on a FedsLLM env id, with logging, checkpoints and an atomic final save.

Layout of a run folder::

    <run_dir>/model.zip                 final agent (atomic write)
    <run_dir>/checkpoints/*.zip         periodic checkpoints (if checkpoint_freq > 0)
    <run_dir>/monitor/<i>.monitor.csv   per-episode return / length / time of each training env
    <run_dir>/tb/                       TensorBoard logs (SB3 metrics + fedsllm/* info means)
    <run_dir>/eval/evaluations.npz      EvalCallback curve (if eval_freq > 0)
    <run_dir>/episodes.jsonl            every finished training episode (whole run, across resumes)
    <run_dir>/.fedsllm.lock             held while training (one writer per run folder)

Resuming from a checkpoint continues the same curves: see :mod:`agents.resume`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from agents.callbacks import FedsLLMInfoCallback, PlainProgressCallback, read_episode_log
from agents.checkpoint import (AtomicCheckpointCallback, atomic_save, read_clock, resume, save_vec_normalize,
                               sidecar, write_clock)
from agents.evaluation import Policy, merge_config
from agents.factory import build_agent, check_compatible, default_env_id, load_hyperparams, merge_hyperparams
from agents.imitation import behaviour_clone, collect_demonstrations, search_demonstrations
from agents.vec_env import has_batched_env, make_batched_vec_env
from agents.resume import EPISODE_LOG, checkpoint_timesteps, continue_monitor, prepare_resume, restore_evaluations
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.progress import is_interactive
from fedsllm_env.runlock import RunLock

__all__ = ["TrainResult", "VEC_ENVS", "resolve_hyperparams", "make_training_env", "train_agent"]

DEFAULT_TIMESTEPS = 20_000
"""Budget when neither the caller nor the YAML entry (``n_timesteps``) gives one."""

VEC_ENVS: dict[str, type[VecEnv]] = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}
"""``--vec-env`` name -> SB3 VecEnv class: envs stepped in this process, or one worker process per env."""


@dataclass
class TrainResult:
    """What :func:`train_agent` produced."""

    model: BaseAlgorithm
    """The trained agent."""
    model_path: Path
    """``<run_dir>/model.zip``."""
    run_dir: Path
    """Folder of the run."""
    algo: str
    """Algorithm name."""
    env_id: str
    """Env id trained on."""
    hyperparams: dict[str, Any]
    """Resolved hyperparameters (YAML entry + overrides, including n_timesteps / n_envs)."""
    wall_time_s: float
    """Training wall time of the whole run, s: this segment plus, after a resume, the segments before the
    checkpoint (``wall_time_before_s``)."""
    episodes: list[dict[str, Any]] = field(default_factory=list)
    """Finished training episodes of the whole run, resumed parts included (``episodes.jsonl``; see
    :class:`~agents.callbacks.FedsLLMInfoCallback`)."""
    checkpoints: list[Path] = field(default_factory=list)
    """Checkpoints written."""
    bc_losses: list[float] = field(default_factory=list)
    """Behaviour-cloning loss per epoch (empty without a teacher)."""
    segment_wall_time_s: float = 0.0
    """Training wall time of this call alone, s."""


def resolve_hyperparams(algo: str, env_id: str, overrides: dict[str, Any] | None = None,
                        total_timesteps: int | None = None, n_envs: int | None = None) -> dict[str, Any]:
    """The YAML entry of (algo, env_id) with overrides, and explicit budget / env count applied.

    Args:
        algo: algorithm name.
        env_id: env id.
        overrides: hyperparameter overrides (``policy_kwargs`` merged key by key).
        total_timesteps: training budget in env steps (None: YAML ``n_timesteps``, else 20000).
        n_envs: parallel training envs (None: YAML ``n_envs``, else 1).

    Returns:
        The merged dict.
    """
    params = merge_hyperparams(load_hyperparams(algo, env_id), overrides)
    params["n_timesteps"] = int(total_timesteps if total_timesteps is not None
                                else params.get("n_timesteps", DEFAULT_TIMESTEPS))
    params["n_envs"] = int(n_envs if n_envs is not None else params.get("n_envs", 1))
    if params["n_timesteps"] < 1:
        raise ValueError(f"total_timesteps must be >= 1, got {params['n_timesteps']}")
    if params["n_envs"] < 1:
        raise ValueError(f"n_envs must be >= 1, got {params['n_envs']}")
    return params


def _make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` after importing the package that registers the ids.

    Module-level on purpose: SubprocVecEnv pickles it by reference, so a fresh worker process imports
    ``agents.training`` (and through it ``fedsllm_env``) before making the env.
    """
    return gym.make(env_id, **kwargs)


def make_training_env(env_id: str, n_envs: int, seed: int, config: dict[str, Any] | None = None,
                      monitor_dir: str | Path | None = None, append_monitor: bool = False,
                      vec_env: str = "", env_kwargs: dict[str, Any] | None = None) -> VecEnv:
    """n training envs of a FedsLLM id: env i is reset with ``seed + i`` first, episodes monitored.

    ``vec_env="batched"`` steps them as one numpy batch (:mod:`agents.vec_env`; surrogate Box, Discrete and
    Priority ids, the default there for fresh runs of several envs); the keys of :data:`VEC_ENVS` use SB3's
    ``make_vec_env`` with one Monitor-wrapped env per copy. Batched and "dummy" give the same observations and
    rewards for the same actions. A resumed run (``append_monitor``) is never batched: :mod:`agents.resume`
    cuts and continues per-env Monitor CSVs.

    The training envs do not render (``render_mode=None``; "rgb_array", SB3's default, works too).

    Args:
        env_id: registered id.
        n_envs: number of envs.
        seed: base seed.
        config: nested config overrides.
        monitor_dir: folder of the Monitor CSVs (None: not written).
        append_monitor: append to existing Monitor CSVs (a resumed run) instead of starting them anew.
        vec_env: "batched", a key of :data:`VEC_ENVS` ("dummy": all envs in this process; "subproc": one
            process per env, for real-mode envs whose rounds take long), or "" (batched when the id has a
            batched version, ``n_envs`` > 1, the run is fresh and there are no ``env_kwargs``, else "dummy").
        env_kwargs: extra ``gym.make`` keyword arguments of every env (not for the batched envs).

    Returns:
        The VecEnv.
    """
    kind = vec_env or ("batched" if has_batched_env(env_id) and n_envs > 1 and not append_monitor and not env_kwargs
                       else "dummy")
    if kind == "batched":
        if env_kwargs:
            raise ValueError("the batched envs take no extra keyword arguments (env_kwargs): use vec_env='dummy'")
        if append_monitor:
            raise ValueError("a resumed run continues per-env Monitor logs: resume with --vec-env dummy (same data)")
        return make_batched_vec_env(env_id, n_envs, seed, config, monitor_dir)
    if kind not in VEC_ENVS:
        raise ValueError(f"unknown vec_env {vec_env!r}; choose one of {['batched', *sorted(VEC_ENVS)]}")
    append = {"monitor_kwargs": {"override_existing": False}, "wrapper_class": continue_monitor} \
        if append_monitor and monitor_dir is not None else {}
    return make_vec_env(functools.partial(_make_env, env_id), n_envs=n_envs, seed=seed,
                        env_kwargs={"config": config or {}, "render_mode": None, **(env_kwargs or {})},
                        monitor_dir=None if monitor_dir is None else str(monitor_dir), vec_env_cls=VEC_ENVS[kind],
                        **append)


def _eval_callback(algo: str, env_id: str, config: dict[str, Any], run_dir: Path, eval_freq: int,
                   eval_episodes: int, eval_seed: int, verbose: int,
                   vec_env: str = "", env_kwargs: dict[str, Any] | None = None) -> BaseCallback:
    eval_env = make_training_env(env_id, 1, eval_seed, config, vec_env=vec_env,
                                 env_kwargs=env_kwargs)  # same kind as training
    kwargs = dict(n_eval_episodes=eval_episodes, eval_freq=eval_freq, log_path=str(run_dir / "eval"),
                  best_model_save_path=None, deterministic=True, verbose=verbose)
    if algo == "maskable_ppo":
        from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback

        return MaskableEvalCallback(eval_env, **kwargs)
    return EvalCallback(eval_env, **kwargs)


def train_agent(algo: str, run_dir: str | Path, *, env_id: str | None = None, seed: int = 0,
                total_timesteps: int | None = None, config: FedsLLMConfig | dict[str, Any] | None = None,
                hyperparams: dict[str, Any] | None = None, n_envs: int | None = None,
                checkpoint_freq: int = 0, eval_freq: int = 0, eval_episodes: int = 5, eval_seed: int = 10_000,
                progress_bar: bool = False, tensorboard: bool = True, verbose: int = 0,
                resume_from: str | Path | None = None, device: str = "cpu", vec_env: str = "",
                bc_teacher: Callable[[gym.Env], Policy] | str | None = None, bc_samples: int = 8000,
                bc_epochs: int = 100, bc_seed: int = 20_000, save_replay_buffer: bool = False,
                n_envs_before: int | None = None, rl: bool = True,
                wall_time_before_s: float | None = None, env_kwargs: dict[str, Any] | None = None) -> TrainResult:
    """Train ``algo`` on ``env_id`` and save ``<run_dir>/model.zip`` atomically.

    Args:
        algo: algorithm name (key of :data:`~agents.factory.ALGOS`).
        run_dir: output folder (created).
        env_id: env id; default :func:`~agents.factory.default_env_id`.
        seed: seed of the agent and of the training envs (env i starts from ``seed + i``).
        total_timesteps: budget in env steps (rounds); with ``resume_from`` the total including the
            checkpoint's steps. None: the YAML ``n_timesteps``.
        config: nested env config overrides.
        hyperparams: overrides of the YAML hyperparameters.
        n_envs: parallel envs (None: YAML ``n_envs``).
        checkpoint_freq: save a checkpoint every this many env steps (0: none besides model.zip).
        eval_freq: run an EvalCallback every this many calls (0: none); writes ``eval/evaluations.npz``.
        eval_episodes: episodes per evaluation.
        eval_seed: seed of the evaluation env (keep it apart from the test seeds).
        progress_bar: report progress: SB3's tqdm/rich bar on a terminal, a few plain lines otherwise.
        tensorboard: write TensorBoard logs to ``<run_dir>/tb``.
        verbose: SB3 verbosity.
        resume_from: a checkpoint zip to continue from: the step counter, the monitor CSVs, the episode
            log and TensorBoard continue where the checkpoint was taken (:mod:`agents.resume`); its
            VecNormalize statistics and replay buffer are restored when saved beside it.
        device: torch device.
        vec_env: how the ``n_envs`` training envs run (:func:`make_training_env`): "batched", "dummy",
            "subproc", or "" (batched for the surrogate Box/Discrete/Priority ids with several envs on a fresh run).
        bc_teacher: optional teacher (factory ``env -> Policy``, e.g. a baseline, or ``"search"``: the search
            teacher of :func:`~agents.imitation.search_demonstrations`, priority ids only): before RL, the fresh
            agent is behaviour-cloned on ``bc_samples`` teacher steps for ``bc_epochs`` epochs
            (:mod:`agents.imitation`; actor-critic agents only, ignored when resuming).
        bc_samples: teacher env steps collected for the warm start.
        bc_epochs: supervised epochs over them.
        bc_seed: reset seed of the first teacher episode (apart from training and test seeds).
        save_replay_buffer: off-policy agents: save the replay buffer with the newest checkpoint, so a
            resume continues with it.
        n_envs_before: with ``resume_from``: the parallel envs of the run so far (default: the number
            of monitor CSVs), to cut the CSVs back to the checkpoint.
        rl: run the RL phase (False: behaviour cloning only; needs ``bc_teacher``).
        wall_time_before_s: with ``resume_from``: the run's training wall time up to the checkpoint, s
            (None: the checkpoint's ``_clock.json``, 0 when it has none). Every checkpoint and model.zip get
            a ``_clock.json`` with the run's total so far, and ``wall_time_s`` of the result counts it.
        env_kwargs: extra ``gym.make`` keyword arguments of every env the run makes (training, evaluation, teacher),
            e.g. ``{"clients": (3, 40)}`` for the AnyK ids.

    Returns:
        A :class:`TrainResult`.

    Raises:
        fedsllm_env.errors.RunFolderBusyError: another process is training in ``run_dir``.
    """
    env_id = env_id or default_env_id(algo)
    run_dir = Path(run_dir)
    if wall_time_before_s is None:
        wall_time_before_s = 0.0 if resume_from is None else (
            read_clock(resume_from, checkpoint_timesteps(resume_from)) or 0.0)
    with RunLock(run_dir):
        env_config = merge_config(config)
        params = resolve_hyperparams(algo, env_id, hyperparams, total_timesteps, n_envs)
        tb = str(run_dir / "tb") if tensorboard else None
        if resume_from is not None:
            prepare_resume(run_dir, checkpoint_timesteps(resume_from), algo if tb else None, n_envs_before)
        else:
            (run_dir / EPISODE_LOG).unlink(missing_ok=True)  # a fresh run starts its logs anew, like the Monitor
        env = make_training_env(env_id, params["n_envs"], seed, env_config, run_dir / "monitor",
                                append_monitor=resume_from is not None, vec_env=vec_env, env_kwargs=env_kwargs)
        if params.get("normalize_reward", False):
            # delays span orders of magnitude under exploration; scale rewards by a running return std
            stats = None if resume_from is None else sidecar(resume_from, "vecnormalize")
            if stats is not None and stats.is_file():
                env = VecNormalize.load(str(stats), env)
            else:
                env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=float(params.get("gamma", 0.99)))
        try:
            check_compatible(algo, env.action_space, env_id)
            info_cb = FedsLLMInfoCallback(log_path=run_dir / EPISODE_LOG)
            callbacks: list[BaseCallback] = [info_cb]
            show_progress = progress_bar
            if progress_bar and not is_interactive():  # SB3's bar would flood a log with carriage returns
                callbacks.append(PlainProgressCallback(desc=f"training {algo}"))
                progress_bar = False
            ckpt_cb = None
            if checkpoint_freq > 0:
                ckpt_cb = AtomicCheckpointCallback(checkpoint_freq, run_dir / "checkpoints", verbose=verbose,
                                                   save_replay_buffer=save_replay_buffer)
                callbacks.append(ckpt_cb)
            if eval_freq > 0:
                eval_cb = _eval_callback(algo, env_id, env_config, run_dir, eval_freq, eval_episodes, eval_seed,
                                         verbose, "dummy" if resume_from is not None else vec_env,
                                         env_kwargs=env_kwargs)
                if resume_from is not None:
                    restore_evaluations(eval_cb, checkpoint_timesteps(resume_from))
                callbacks.append(eval_cb)
            start = time.perf_counter()
            if ckpt_cb is not None:
                ckpt_cb.start_clock(wall_time_before_s, start)
            bc_losses: list[float] = []
            if resume_from is not None:
                buffer = sidecar(resume_from, "replay_buffer")
                model = resume(resume_from, env, params["n_timesteps"], algo=algo, callback=CallbackList(callbacks),
                               tensorboard_log=tb, progress_bar=progress_bar, tb_log_name=algo, device=device,
                               replay_buffer=buffer if buffer.is_file() else None)
            else:
                model = build_agent(algo, env, seed, params, tensorboard_log=tb, verbose=verbose, device=device,
                                    env_id=env_id)
                if bc_teacher == "search":
                    obs, actions = search_demonstrations(env_id, bc_samples, bc_seed, env_config,
                                                         progress=show_progress)
                elif isinstance(bc_teacher, str):
                    raise ValueError(f"unknown bc_teacher {bc_teacher!r}: give a policy factory or 'search'")
                elif bc_teacher is not None:
                    obs, actions = collect_demonstrations(env_id, bc_teacher, bc_samples, bc_seed, env_config,
                                                          progress=show_progress, env_kwargs=env_kwargs)
                if bc_teacher is not None:
                    bc_losses = behaviour_clone(model, obs, actions, epochs=bc_epochs, seed=seed,
                                                progress=show_progress)
                elif not rl:
                    raise ValueError("rl=False (behaviour cloning only) needs a bc_teacher")
                if rl:
                    model.learn(total_timesteps=params["n_timesteps"], callback=CallbackList(callbacks),
                                progress_bar=progress_bar, tb_log_name=algo)
            wall = time.perf_counter() - start
            model_path = atomic_save(model, run_dir / "model.zip")
            save_vec_normalize(model, model_path)
            write_clock(model_path, model.num_timesteps, wall_time_before_s + wall)
        finally:
            env.close()
        return TrainResult(model=model, model_path=model_path, run_dir=run_dir, algo=algo, env_id=env_id,
                           hyperparams=params, wall_time_s=wall_time_before_s + wall,
                           episodes=read_episode_log(run_dir / EPISODE_LOG),
                           checkpoints=list(ckpt_cb.saved) if ckpt_cb else [], bc_losses=bc_losses,
                           segment_wall_time_s=wall)

"""Train one RL agent (PPO, SAC, A2C, TD3 or MaskablePPO) on a FedsLLM env id.

Writes ``runs/<run_name>/``: ``model.zip`` (atomic), ``config.json``, ``tb/`` (TensorBoard),
``monitor/`` (episode CSVs), ``checkpoints/`` and ``eval/evaluations.npz`` when asked.

Example::

    python -m train_scripts.train --algo ppo --total-timesteps 50000
    python -m train_scripts.train --algo maskable_ppo --env-id FedsLLM-Surrogate-Discrete-v0
    tensorboard --logdir runs
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import tyro

from agents.factory import default_env_id
from agents.training import train_agent
from train_scripts._common import baseline_factory, env_overrides, run_name, save_run_config, write_json

AlgoName = Literal["ppo", "sac", "a2c", "td3", "maskable_ppo"]


@dataclass
class Args:
    """Train an agent on a FedsLLM env."""

    algo: AlgoName = "ppo"
    """RL algorithm."""
    env_id: str = ""
    """Env id ("" = FedsLLM-Surrogate-Discrete-v0 for maskable_ppo, FedsLLM-Surrogate-v0 otherwise)."""
    seed: int = 1
    """Seed of the agent, the training envs and the global RNGs."""
    total_timesteps: int = 0
    """Training budget in env steps (training rounds); 0 = the YAML n_timesteps."""
    n_envs: int = 0
    """Parallel training envs; 0 = the YAML n_envs."""
    hyperparams: str = ""
    """JSON object of hyperparameter overrides, e.g. '{"n_steps": 256, "learning_rate": 1e-4}'."""
    calibration_path: str = ""
    """Calibration JSON of the env ("" = the table shipped with the package)."""
    config: str = ""
    """JSON/YAML file of nested env config overrides ("" = none)."""
    max_rounds: int = 0
    """Round cap per episode (0 = the config's)."""
    checkpoint_freq: int = 0
    """Save an atomic checkpoint every this many env steps (0 = only model.zip at the end)."""
    eval_freq: int = 0
    """Evaluate every this many steps with an EvalCallback (0 = off); curve in eval/evaluations.npz."""
    eval_episodes: int = 5
    """Episodes per periodic evaluation."""
    resume: str = ""
    """Checkpoint zip to resume from (step counter continues; --total-timesteps is then the total)."""
    runs_dir: str = "runs"
    """Parent folder of the run folder."""
    run_name: str = ""
    """Run folder name ("" = {env_id}__{algo}__{seed}__{time})."""
    tensorboard: bool = True
    """Write TensorBoard logs to <run>/tb."""
    progress_bar: bool = True
    """Show SB3's tqdm/rich progress bar."""
    verbose: int = 0
    """SB3 verbosity (0 silent, 1 info)."""
    torch_deterministic: bool = True
    """Set torch.backends.cudnn.deterministic."""
    torch_threads: int = 1
    """torch intra-op threads (1 is fastest for these small MLPs, especially on a busy machine)."""
    bc_teacher: str = ""
    """Behaviour-clone a baseline (e.g. equal_power, optimizer) before RL ("" = no warm start; ppo, a2c,
    maskable_ppo only)."""
    bc_samples: int = 8000
    """Teacher env steps collected for the warm start."""
    bc_epochs: int = 100
    """Supervised epochs over the teacher's steps."""


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse the arguments, train, save; returns the run folder."""
    args = tyro.cli(Args, args=argv, prog="fedsllm train")
    env_id = args.env_id or default_env_id(args.algo)
    overrides = json.loads(args.hyperparams) if args.hyperparams else {}
    if not isinstance(overrides, dict):
        raise ValueError(f"--hyperparams must be a JSON object, got {args.hyperparams!r}")
    env_config = env_overrides(args.config, args.calibration_path, args.max_rounds)

    # ---- seeding: the only place global RNGs are touched --------------------------------------
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    torch.set_num_threads(args.torch_threads)

    name = args.run_name or run_name(env_id, args.algo, args.seed)
    run_dir = Path(args.runs_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    save_run_config(run_dir, args, env_config, algo=args.algo, env_id=env_id, hyperparam_overrides=overrides)
    result = train_agent(
        args.algo, run_dir, env_id=env_id, seed=args.seed, total_timesteps=args.total_timesteps or None,
        config=env_config, hyperparams=overrides, n_envs=args.n_envs or None,
        checkpoint_freq=args.checkpoint_freq, eval_freq=args.eval_freq, eval_episodes=args.eval_episodes,
        progress_bar=args.progress_bar, tensorboard=args.tensorboard, verbose=args.verbose,
        resume_from=args.resume or None, bc_teacher=baseline_factory(args.bc_teacher) if args.bc_teacher else None,
        bc_samples=args.bc_samples, bc_epochs=args.bc_epochs)
    delays = [e["total_delay_s"] for e in result.episodes]
    summary = {
        "model_path": str(result.model_path),
        "num_timesteps": int(result.model.num_timesteps),
        "wall_time_s": result.wall_time_s,
        "episodes": len(delays),
        "first_10_episodes_total_delay_mean_s": float(np.mean(delays[:10])) if delays else None,
        "last_10_episodes_total_delay_mean_s": float(np.mean(delays[-10:])) if delays else None,
        "hyperparams": result.hyperparams,
        "checkpoints": [str(p) for p in result.checkpoints],
        "bc_loss_first_last": [result.bc_losses[0], result.bc_losses[-1]] if result.bc_losses else None,
    }
    write_json(run_dir / "train_summary.json", summary)
    save_run_config(run_dir, args, env_config, algo=args.algo, env_id=env_id, hyperparam_overrides=overrides,
                    hyperparams=result.hyperparams)
    print(f"trained {args.algo} on {env_id} for {summary['num_timesteps']} steps in {result.wall_time_s:.1f} s "
          f"({len(delays)} episodes; mean total delay of the last 10: "
          f"{summary['last_10_episodes_total_delay_mean_s']} s)")
    print(f"model: {result.model_path}")
    return run_dir


if __name__ == "__main__":
    main()

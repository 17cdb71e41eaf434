"""The end-to-end demo: train PPO on the surrogate env, then compare it with the optimizer in REAL training.

1. Train PPO on ``FedsLLM-Surrogate-v0``: a behaviour-cloning warm start from a cheap baseline
   (``--bc-teacher``, default equal power) then a short RL budget (``--timesteps``).
2. Evaluate PPO, the paper's optimizer and a few heuristics on the same seeds: full episodes in the
   surrogate env (cheap), then ``--real-rounds`` rounds each in the real env ``FedsLLM-v0``, which
   fine-tunes the tiny GPT-2 with split-federated LoRA for every round (the backbone is pre-trained
   once and cached on first use, a couple of minutes the first time).
3. Print both comparison tables and save them with the model under ``runs/<run_name>/``.

Example::

    python -m train_scripts.demo                                # ~ a few minutes on 2 CPU cores
    python -m train_scripts.demo --timesteps 5000 --real-rounds 2 --seeds 0
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import torch
import tyro

from agents.evaluation import comparison_rows, evaluate_policy_on_seeds, markdown_table, merge_config
from agents.factory import BOX_ENV_ID
from agents.training import train_agent
from train_scripts._checks import at_least, check_baselines, check_env_config, check_env_id, new_output_dir, non_empty
from train_scripts._common import baseline_factory, env_overrides, run_name, save_run_config, write_json
from train_scripts.seeding import seed_everything

SURROGATE_COLUMNS = ("policy", "total_delay_mean_s", "total_delay_std_s", "relative_to_optimizer", "rounds_mean",
                     "success_rate", "decision_ms_per_step")
REAL_COLUMNS = ("policy", "total_delay_mean_s", "relative_to_optimizer", "expected_total_delay_mean_s",
                "final_val_loss_mean", "decision_ms_per_step")


@dataclass
class Args:
    """Train PPO on the surrogate env, then compare it with the optimizer in real split-fed training."""

    timesteps: int = 50000
    """PPO training budget on the surrogate env after the warm start, env steps (~30 s on one core)."""
    bc_teacher: str = "equal_power"
    """Baseline PPO is behaviour-cloned from before RL ("" = plain PPO from scratch). Measured on seeds
    1000-1004: from scratch PPO needs ~300k steps for ~2x the optimizer's delay; cloned from equal_power
    it is at ~1.24x before any RL step."""
    bc_samples: int = 8000
    """Teacher env steps for the warm start (~40 s with equal_power)."""
    real_rounds: int = 3
    """Rounds of REAL split-federated training per policy and seed (0 = skip the real env)."""
    seeds: tuple[int, ...] = (1000,)
    """Evaluation seeds shared by every policy (held out from training)."""
    surrogate_seeds: tuple[int, ...] = (1000, 1001, 1002, 1003, 1004)
    """Seeds of the full-episode comparison in the surrogate env (() = skip)."""
    baselines: tuple[str, ...] = ("optimizer", "equal_power", "random_subchannels")
    """Baselines compared with PPO (the optimizer is always included)."""
    real_env_id: str = "FedsLLM-v0"
    """Env id of the real-training comparison."""
    calibration_path: str = ""
    """Calibration JSON ("" = the table shipped with the package)."""
    config: str = ""
    """JSON/YAML file of nested env config overrides ("" = none)."""
    seed: int = 1
    """Seed of PPO, its training envs and the global RNGs."""
    runs_dir: str = "runs"
    """Parent folder of the run folder."""
    progress_bar: bool = True
    """Show SB3's progress bar while training."""
    torch_threads: int = 0
    """torch intra-op threads (0 = 1 while training PPO, all cores for the real LLM training)."""


def _compare(policies: dict[str, Any], env: str | gym.Env, seeds: Sequence[int], cfg: dict[str, Any] | None,
             columns: Sequence[str]) -> tuple[str, list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    results = {}
    for name, policy in policies.items():
        t0 = time.perf_counter()
        results[name] = evaluate_policy_on_seeds(policy, env, list(seeds), config=cfg, name=name)
        print(f"  {name}: {time.perf_counter() - t0:.1f} s")
    rows = comparison_rows(results, reference="optimizer")
    return markdown_table(rows, columns), rows, {n: [r.to_dict() for r in recs] for n, recs in results.items()}


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the demo; returns the run folder."""
    args = tyro.cli(Args, args=argv, prog="fedsllm demo")
    start = time.perf_counter()
    at_least(timesteps=(args.timesteps, 1), bc_samples=(args.bc_samples, 1), real_rounds=(args.real_rounds, 0),
             torch_threads=(args.torch_threads, 0))
    if args.real_rounds:
        non_empty(seeds=args.seeds)
        check_env_id(args.real_env_id, flag="--real-env-id")
    cfg = env_overrides(args.config, args.calibration_path)
    check_env_config(cfg)
    names = ("optimizer",) + tuple(b for b in args.baselines if b != "optimizer")
    check_baselines(names + ((args.bc_teacher,) if args.bc_teacher else ()))

    # ---- seeding: the only place global RNGs are touched --------------------------------------
    seed_everything(args.seed, args.torch_threads or 1)

    run_dir = new_output_dir(Path(args.runs_dir) / run_name(BOX_ENV_ID, "demo-ppo", args.seed))
    save_run_config(run_dir, args, cfg, algo="ppo", env_id=BOX_ENV_ID)
    report: dict[str, Any] = {}

    warm = f"warm start: clone {args.bc_teacher} on {args.bc_samples} steps, then " if args.bc_teacher else ""
    print(f"[1/3] training PPO on {BOX_ENV_ID} ({warm}{args.timesteps} RL steps)")
    result = train_agent("ppo", run_dir, env_id=BOX_ENV_ID, seed=args.seed, total_timesteps=args.timesteps,
                         config=cfg, progress_bar=args.progress_bar,
                         bc_teacher=baseline_factory(args.bc_teacher) if args.bc_teacher else None,
                         bc_samples=args.bc_samples)
    report["train_wall_time_s"] = result.wall_time_s
    print(f"      done in {result.wall_time_s:.1f} s -> {result.model_path}")
    policies: dict[str, Any] = {name: baseline_factory(name) for name in names}
    label = f"ppo (cloned {args.bc_teacher} + {args.timesteps} steps)" if args.bc_teacher else \
        f"ppo ({args.timesteps} steps)"
    policies[label] = result.model

    tables = []
    if args.surrogate_seeds:
        print(f"[2/3] surrogate env, full episodes, seeds {list(args.surrogate_seeds)}")
        table, rows, episodes = _compare(policies, BOX_ENV_ID, args.surrogate_seeds, cfg, SURROGATE_COLUMNS)
        report["surrogate"] = {"rows": rows, "episodes": episodes}
        tables.append(f"### Surrogate env ({BOX_ENV_ID}), full episodes, seeds {list(args.surrogate_seeds)}\n\n"
                      + table)
    if args.real_rounds > 0:
        if not args.torch_threads:
            torch.set_num_threads(_cores())
        real_cfg = merge_config(cfg, max_rounds=args.real_rounds)
        print(f"[3/3] real split-fed training ({args.real_env_id}), {args.real_rounds} rounds per policy, "
              f"seeds {list(args.seeds)} (first use pre-trains and caches the tiny GPT-2)")
        t0 = time.perf_counter()
        env = gym.make(args.real_env_id, config=real_cfg)  # one engine shared by every policy
        report["real_env_build_s"] = time.perf_counter() - t0
        try:
            table, rows, episodes = _compare(policies, env, args.seeds, None, REAL_COLUMNS)
        finally:
            env.close()
        report["real"] = {"rows": rows, "episodes": episodes}
        tables.append(f"### Real env ({args.real_env_id}), {args.real_rounds} rounds of real training, "
                      f"seeds {list(args.seeds)}\n\n" + table
                      + "\n\ntotal delay = sum of the round delays over these rounds; E(r)·T_round = the paper's "
                        "objective (rounds to target x round delay) of each decision.")
    report["wall_time_s"] = time.perf_counter() - start
    text = "\n\n".join(tables)
    (run_dir / "demo.md").write_text(text + "\n")
    write_json(run_dir / "demo.json", report)
    print()
    print(text)
    print(f"\ndemo finished in {report['wall_time_s']:.0f} s; outputs in {run_dir}")
    return run_dir


def _cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("demo")

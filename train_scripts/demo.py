"""The end-to-end demo: train PPO on the surrogate env, then compare it with the optimizer in REAL training.

1. Train PPO on ``FedsLLM-Surrogate-Priority-v0`` (priority actions, ``fedsllm_env/priority.py``): a
   behaviour-cloning warm start from the search teacher (``--bc-teacher``), then ``--timesteps`` RL steps
   (0 by default: the clone alone is the best agent of ``docs/benchmark.md``; RL did not improve it).
2. Evaluate PPO, the paper's optimizer and a few heuristics on the same seeds: full episodes in the
   surrogate env (cheap), then ``--real-rounds`` rounds each in the real env ``FedsLLM-v0`` (PPO acts
   through the priority wrapper around the same env), which fine-tunes the tiny GPT-2 with
   split-federated LoRA for every round (the default backbone ships with the package: nothing to pre-train
   or download).
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
import tyro

from fedsllm_env.errors import UsageError
from fedsllm_env.priority import PriorityEnv
from fedsllm_env.progress import progress_bar
from fedsllm_env.registration import PRIORITY_IDS, sibling_id, variant_of
from agents.evaluation import bar_callback, comparison_rows, evaluate_policy_on_seeds, markdown_table, merge_config
from train_scripts._checks import at_least, check_baselines, check_env_config, check_env_id, new_output_dir, non_empty
from train_scripts._common import (baseline_factory, bc_teacher_arg, check_bc_teacher, env_overrides, run_name,
                                   save_run_config, write_json)
from train_scripts.seeding import seed_everything

SURROGATE_COLUMNS = ("policy", "total_delay_mean_s", "total_delay_std_s", "relative_to_optimizer", "rounds_mean",
                     "success_rate", "decision_ms_per_step")
REAL_COLUMNS = ("policy", "total_delay_mean_s", "relative_to_optimizer", "expected_total_delay_mean_s",
                "final_val_loss_mean", "split_rank", "decision_ms_per_step")
REAL_NOTE = ("total delay = sum of the round delays over these rounds; E(r)·T_round = the paper's objective (rounds "
             "to target x round delay) of each decision. Every policy trains on the same data in the same order "
             "(seeded) and subchannels and powers change only the delay, so the validation loss depends only on the "
             "(c, r) of each round: policies that chose the same (c, r) end at the same loss, bit for bit, and differ "
             "in delay.")
"""The note under the real-mode table."""


def split_rank_text(records: Sequence[Any]) -> str:
    """The (c, r) a policy chose over its episodes' rounds, with counts: ``(1, 64) x3`` or ``(1, 64) x2, (3, 32) x1``
    (most frequent first)."""
    counts: dict[tuple[int, int], int] = {}
    for rec in records:
        for pair in zip(rec.splits, rec.ranks):
            counts[pair] = counts.get(pair, 0) + 1
    return ", ".join(f"({c}, {r}) x{n}" for (c, r), n in sorted(counts.items(), key=lambda kv: -kv[1]))


@dataclass
class Args:
    """Train PPO on the surrogate env, then compare it with the optimizer in real split-fed training."""

    env_id: str = "FedsLLM-Surrogate-Priority-v0"
    """Surrogate env id PPO trains and acts in (a Priority id, or a Box id such as FedsLLM-Surrogate-v0)."""
    timesteps: int = 0
    """PPO steps on the surrogate env after the warm start (0 = the clone alone; needs --bc-teacher)."""
    bc_teacher: str = "search"
    """Teacher PPO is behaviour-cloned from before RL: "search" (Priority ids: the best priority action of a
    grid, priced on each round's channel), a baseline name, or "" (plain PPO from scratch). Variants and
    their ratios to the optimizer: docs/benchmark.md."""
    bc_samples: int = 16384
    """Teacher env steps for the warm start."""
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
    preset: str = ""
    """Scenario preset (fedsllm_env.presets.PRESETS: paper-default, server-scarce, ...) under --config ("" = none)."""
    seed: int = 1
    """Seed of PPO, its training envs and the global RNGs."""
    runs_dir: str = "runs"
    """Parent folder of the run folder."""
    progress_bar: bool = True
    """Show progress: SB3's bar while training, then the episodes and rounds of every policy (a bar on a terminal,
    a few plain lines in a log)."""
    torch_threads: int = 0
    """torch intra-op threads (0 = 1 while training PPO, all cores for the real LLM training)."""


def _compare(policies: dict[str, tuple[Any, str | gym.Env]], seeds: Sequence[int], cfg: dict[str, Any] | None,
             columns: Sequence[str], desc: str = "episodes", rounds: int = 0, progress: bool = True
             ) -> tuple[str, list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Evaluate every ``name -> (policy, env id or built env)`` on ``seeds``; the markdown table and records.

    One progress bar for the whole stage (policy, seed and round in its postfix): it counts rounds when every
    episode has ``rounds`` rounds at most (the real env), else episodes. Each policy's wall time is printed after.
    """
    results, seconds = {}, {}
    total = rounds * len(policies) * len(seeds) if rounds else len(policies) * len(seeds)
    with progress_bar(total=total, desc=desc, enabled=progress) as bar:
        report = bar_callback(bar, unit="round" if rounds else "episode")
        for name, (policy, env) in policies.items():
            t0 = time.perf_counter()
            results[name] = evaluate_policy_on_seeds(policy, env, list(seeds), config=None if isinstance(env, gym.Env)
                                                     else cfg, name=name, progress=report)
            seconds[name] = time.perf_counter() - t0
    print("  " + ", ".join(f"{name}: {s:.1f} s" for name, s in seconds.items()))
    rows = comparison_rows(results, reference="optimizer")
    for row in rows:
        row["split_rank"] = split_rank_text(results[row["policy"]])
    return markdown_table(rows, columns), rows, {n: [r.to_dict() for r in recs] for n, recs in results.items()}


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the demo; returns the run folder."""
    args = tyro.cli(Args, args=argv, prog="fedsllm demo")
    start = time.perf_counter()
    at_least(timesteps=(args.timesteps, 0), bc_samples=(args.bc_samples, 1), real_rounds=(args.real_rounds, 0),
             torch_threads=(args.torch_threads, 0))
    check_env_id(args.env_id, flag="--env-id")
    if variant_of(args.env_id)[0] != "surrogate":
        raise UsageError(f"--env-id {args.env_id} is not a surrogate id (PPO trains on the surrogate; the real "
                         f"comparison uses --real-env-id)")
    if not args.timesteps and not args.bc_teacher:
        raise UsageError("--timesteps 0 trains nothing without --bc-teacher")
    priority = args.env_id in PRIORITY_IDS.values()
    base_id = sibling_id(args.env_id, "box") if priority else args.env_id
    if args.real_rounds:
        non_empty(seeds=args.seeds)
        check_env_id(args.real_env_id, flag="--real-env-id")
        if priority and variant_of(args.real_env_id)[1] != "box":
            raise UsageError(f"--real-env-id {args.real_env_id}: PPO acts through the priority wrapper, which "
                             f"wraps a Box id such as FedsLLM-v0")
    cfg = env_overrides(args.config, args.calibration_path, preset=args.preset)
    check_env_config(cfg)
    names = ("optimizer",) + tuple(b for b in args.baselines if b != "optimizer")
    check_baselines(names)
    if args.bc_teacher:
        check_bc_teacher(args.bc_teacher, args.env_id)

    # ---- seeding: the only place global RNGs are touched --------------------------------------
    seed_everything(args.seed, args.torch_threads or 1)

    run_dir = new_output_dir(Path(args.runs_dir) / run_name(args.env_id, "demo-ppo", args.seed))
    save_run_config(run_dir, args, cfg, algo="ppo", env_id=args.env_id)
    report: dict[str, Any] = {}

    import torch

    from agents.training import train_agent

    warm = f"warm start: clone {args.bc_teacher} on {args.bc_samples} steps, then " if args.bc_teacher else ""
    print(f"[1/3] training PPO on {args.env_id} ({warm}{args.timesteps} RL steps)")
    result = train_agent("ppo", run_dir, env_id=args.env_id, seed=args.seed,
                         total_timesteps=args.timesteps or None, config=cfg, progress_bar=args.progress_bar,
                         bc_teacher=bc_teacher_arg(args.bc_teacher), bc_samples=args.bc_samples, rl=args.timesteps > 0)
    report["train_wall_time_s"] = result.wall_time_s
    print(f"      done in {result.wall_time_s:.1f} s -> {result.model_path}")
    label = (f"ppo (cloned {args.bc_teacher} + {args.timesteps} steps)" if args.bc_teacher
             else f"ppo ({args.timesteps} steps)")

    tables = []
    if args.surrogate_seeds:
        print(f"[2/3] surrogate env, full episodes, seeds {list(args.surrogate_seeds)}")
        policies = {name: (baseline_factory(name), base_id) for name in names} | {label: (result.model, args.env_id)}
        table, rows, episodes = _compare(policies, args.surrogate_seeds, cfg, SURROGATE_COLUMNS,
                                         desc="surrogate episodes", progress=args.progress_bar)
        report["surrogate"] = {"rows": rows, "episodes": episodes}
        ppo_env = f"PPO in {args.env_id}, the others in {base_id}" if priority else base_id
        tables.append(f"### Surrogate env ({ppo_env}), full episodes, seeds {list(args.surrogate_seeds)}\n\n"
                      + table)
    if args.real_rounds > 0:
        if not args.torch_threads:
            torch.set_num_threads(_cores())
        real_cfg = merge_config(cfg, max_rounds=args.real_rounds)
        print(f"[3/3] real split-fed training ({args.real_env_id}), {args.real_rounds} rounds per policy, "
              f"seeds {list(args.seeds)}")
        t0 = time.perf_counter()
        env = gym.make(args.real_env_id, config=real_cfg)  # one engine shared by every policy
        report["real_env_build_s"] = time.perf_counter() - t0
        try:
            policies = ({name: (baseline_factory(name), env) for name in names}
                        | {label: (result.model, PriorityEnv(env) if priority else env)})
            table, rows, episodes = _compare(policies, args.seeds, None, REAL_COLUMNS, desc="real rounds",
                                             rounds=args.real_rounds, progress=args.progress_bar)
        finally:
            env.close()
        report["real"] = {"rows": rows, "episodes": episodes}
        tables.append(f"### Real env ({args.real_env_id}), {args.real_rounds} rounds of real training, "
                      f"seeds {list(args.seeds)}\n\n" + table + "\n\n" + REAL_NOTE)
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

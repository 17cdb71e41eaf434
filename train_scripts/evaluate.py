"""Evaluate saved agents and/or baselines on held-out seeds and print a comparison table.

Each policy plays one deterministic episode per seed; a seed fixes the scenario and the channel
trajectory, so all policies face the same conditions. Writes ``runs/<run_name>/`` with
``config.json``, ``episodes.json`` and ``evaluation.md``.

Example::

    python -m train_scripts.evaluate --policies runs/FedsLLM-Surrogate-v0__ppo__1__1700000000 optimizer equal_power
    python -m train_scripts.evaluate --policies optimizer equal_power --ray-address local   # episodes as Ray tasks
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import tyro

from agents.evaluation import bar_callback, comparison_rows, evaluate_policies, markdown_table
from fedsllm_env.config import check_seed
from fedsllm_env.errors import SeedError, UsageError
from fedsllm_env.progress import progress_bar
from train_scripts._checks import at_least, check_env_config, check_env_id, new_output_dir, non_empty
from train_scripts._common import check_agent_fits, env_overrides, resolve_policy, run_name, save_run_config, write_json
from train_scripts._ray import check_ray_address, check_ray_cpus, check_ray_gpus, ray_map_unordered, ray_session
from train_scripts.seeding import seed_everything

MAX_TORCH_THREADS = 1024
"""Most torch intra-op threads ``--torch-threads`` takes (each is an OS thread)."""

TABLE_COLUMNS = ("policy", "total_delay_mean_s", "total_delay_std_s", "relative_to_optimizer", "rounds_mean",
                 "success_rate", "expected_total_delay_mean_s", "final_val_loss_mean", "decision_ms_per_step")


@dataclass
class Args:
    """Evaluate agents and baselines on the same held-out seeds."""

    policies: tuple[str, ...] = ("optimizer",)
    """Baseline names (priority_heuristic included: it plays the Priority id), saved agent zips, or training run
    folders (holding model.zip + config.json)."""
    algo: str = ""
    """Algorithm of the zips ("" = read from the run's config.json or detected from the zip)."""
    env_id: str = ""
    """Env id for every policy ("" = the run's id for agents, FedsLLM-Surrogate-v0 for baselines)."""
    seeds: tuple[int, ...] = (1000, 1001, 1002, 1003, 1004)
    """Held-out reset seeds (ints >= 0), one episode each (training uses other seeds)."""
    calibration_path: str = ""
    """Calibration JSON ("" = the run's or the shipped table)."""
    config: str = ""
    """JSON/YAML file of nested env config overrides ("" = those the agent was trained with; baselines use
    the first agent's)."""
    preset: str = ""
    """Scenario preset (fedsllm_env.presets.PRESETS: paper-default, server-scarce, ...) under --config ("" = none)."""
    max_rounds: int = 0
    """Round cap per episode (0 = the config's)."""
    seed: int = 0
    """Seed of the global RNGs (random baselines draw from their own RNG, fresh every episode)."""
    runs_dir: str = "runs"
    """Parent folder of the output folder."""
    torch_threads: int = 1
    """torch intra-op threads."""
    ray_address: str = ""
    """Run every (policy, seed) episode as a Ray task: "local" (start Ray here), "auto" (join the cluster of
    `ray start`) or "ray://host:port" ("" = sequentially in this process). Same table either way."""
    ray_cpus_per_task: float = 1.0
    """CPUs each episode task declares."""
    ray_gpus_per_task: float = 0.0
    """GPU share each episode task declares (real mode on a GPU, e.g. 0.25)."""
    progress_bar: bool = True
    """Show the episodes played (a bar on a terminal with the policy, seed and round; a few plain lines in a log)."""


def _check_seeds(seeds: Sequence[int]) -> None:
    """Every ``--seeds`` value is an int >= 0 (a reset seed)."""
    for seed in seeds:
        try:
            check_seed(seed, "--seeds")
        except SeedError:
            raise UsageError(f"--seeds {seed}: every seed must be an int >= 0 (a reset seed)") from None


def main(argv: Sequence[str] | None = None) -> Path:
    """Evaluate, print and save the table; returns the output folder."""
    args = tyro.cli(Args, args=argv, prog="fedsllm evaluate")
    non_empty(policies=args.policies, seeds=args.seeds)
    _check_seeds(args.seeds)
    if args.ray_address:
        check_ray_address(args.ray_address)
    at_least(max_rounds=(args.max_rounds, 0), torch_threads=(args.torch_threads, 1),
             ray_cpus_per_task=(args.ray_cpus_per_task, 0), ray_gpus_per_task=(args.ray_gpus_per_task, 0))
    if args.torch_threads > MAX_TORCH_THREADS:
        raise UsageError(f"--torch-threads must be <= {MAX_TORCH_THREADS}, got {args.torch_threads} (this machine has "
                         f"{os.cpu_count()} CPUs)")
    if args.env_id:
        check_env_id(args.env_id)
    check_env_config(env_overrides(args.config, args.calibration_path, args.max_rounds, preset=args.preset))

    # ---- seeding: the only place global RNGs are touched --------------------------------------
    seed_everything(args.seed, args.torch_threads)

    resolved = [resolve_policy(spec, args.algo, args.env_id) for spec in args.policies]
    entries = []
    used = {}
    # baselines act in the env the (first) agent was trained in, unless --config says otherwise
    agent_overrides = next((r.env_overrides for r in resolved if r.algo is not None), {})
    for spec, res in zip(args.policies, resolved):
        base = res.env_overrides if res.algo is not None else agent_overrides
        cfg = env_overrides(args.config, args.calibration_path, args.max_rounds, base=None if args.config else base,
                            preset=args.preset)
        check_agent_fits(res, cfg, "--policies", spec)
        used[res.name] = {"env_id": res.env_id, "env_overrides": cfg}
        entries.append((res.name, res.policy, res.env_id, cfg))
    with ray_session(args.ray_address) if args.ray_address else contextlib.nullcontext() as ray:
        if ray is not None:  # a task the cluster can never schedule would wait forever
            check_ray_cpus(ray, args.ray_cpus_per_task, address=args.ray_address)
            check_ray_gpus(args.ray_gpus_per_task, "--ray-gpus-per-task", args.ray_address, ray)
        mapper = functools.partial(ray_map_unordered, num_cpus=args.ray_cpus_per_task,
                                   num_gpus=args.ray_gpus_per_task) if args.ray_address else None
        episodes = len(entries) * len(args.seeds)
        print(f"evaluating {len(entries)} policies on {len(args.seeds)} seeds: {episodes} episodes"
              + (f" as Ray tasks ({args.ray_address})" if args.ray_address else ""), flush=True)
        with progress_bar(total=episodes, desc="episodes", enabled=args.progress_bar) as bar:
            results = evaluate_policies(entries, list(args.seeds), mapper=mapper, torch_threads=args.torch_threads,
                                        global_seed=args.seed, progress=bar_callback(bar))
    episodes = [r.to_dict() for records in results.values() for r in records]
    rows = comparison_rows(results, reference="optimizer")
    table = markdown_table(rows, TABLE_COLUMNS)
    label = "eval" if len(resolved) > 1 else f"eval-{Path(args.policies[0]).name}"
    out = new_output_dir(Path(args.runs_dir) / run_name(resolved[0].env_id, label, args.seed))
    save_run_config(out, args, None, policies=used)
    write_json(out / "episodes.json", {"rows": rows, "episodes": episodes})
    (out / "evaluation.md").write_text(table + "\n")
    print(table)
    print(f"\nsaved to {out}")
    return out


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("evaluate")


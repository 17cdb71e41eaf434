"""Benchmark trained agents against the paper's optimizer and the heuristics on the same seeds.

Agents are saved zips / run folders (``--agents``) and/or trained on the fly with a small budget
(``--train-algos``). Every policy plays one deterministic episode per seed (same scenarios, same
channel trajectories). Prints a markdown table and saves ``benchmark.md`` and ``benchmark.json``
in ``runs/<run_name>/``. The column "relative to optimizer" is the ratio of mean total delays
(optimizer = 1.0; < 1 beats it).

Example::

    python -m train_scripts.benchmark --train-algos ppo maskable_ppo --train-timesteps 20000
    python -m train_scripts.benchmark --agents runs/FedsLLM-Surrogate-v0__ppo__1__1700000000 --train-algos
    python -m train_scripts.benchmark --train-algos --ray-address auto   # episodes as tasks on a Ray cluster
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import tyro

from agents.evaluation import comparison_rows, evaluate_policies, make_eval_env, markdown_table, run_episode
from agents.factory import ALGOS, BOX_ENV_ID
from agents.training import train_agent
from fedsllm_env.errors import UsageError
from fedsllm_env.priority import PriorityEnv, PriorityHeuristic
from fedsllm_env.registration import (ENV_IDS, HETERO_PRIORITY_IDS, PRIORITY_IDS, is_hetero_id, priority_id_of,
                                     id_in_mode, sibling_id, variant_of)
from train_scripts._checks import at_least, check_baselines, check_env_config, check_env_id, new_output_dir, non_empty
from train_scripts._checks import parse_hyperparams
from train_scripts._common import (
    baseline_factory,
    baseline_names,
    check_agent_fits,
    env_overrides,
    resolve_policy,
    run_name,
    save_run_config,
    write_json,
)
from train_scripts._ray import ray_map_unordered, ray_session
from train_scripts.seeding import seed_everything

TABLE_COLUMNS = ("policy", "total_delay_mean_s", "total_delay_std_s", "relative_to_optimizer", "rounds_mean",
                 "decision_ms_per_step", "train_wall_s", "success_rate", "expected_total_delay_mean_s")


@dataclass
class Args:
    """Benchmark agents and baselines on identical seeded episodes."""

    agents: tuple[str, ...] = ()
    """Saved agent zips or training run folders to include."""
    train_algos: tuple[str, ...] = ("ppo",)
    """Algorithms to train on the fly (each on its default surrogate id) before benchmarking; a bare
    ``--train-algos`` trains nothing (benchmark only --agents and the baselines)."""
    train_timesteps: int = 20000
    """Budget of each on-the-fly training, env steps."""
    hyperparams: str = ""
    """JSON object of hyperparameter overrides for the on-the-fly trainings."""
    baselines: tuple[str, ...] = ()
    """Baseline names (() = all of baselines.policy.BASELINE_NAMES and priority_heuristic)."""
    seeds: tuple[int, ...] = (1000, 1001, 1002, 1003, 1004)
    """Held-out reset seeds, one episode per policy and seed."""
    env_id: str = BOX_ENV_ID
    """Env id of the baselines and of Box agents (MaskablePPO uses its MultiDiscrete sibling)."""
    calibration_path: str = ""
    """Calibration JSON ("" = the table shipped with the package)."""
    config: str = ""
    """JSON/YAML file of nested env config overrides ("" = none)."""
    preset: str = ""
    """Scenario preset (fedsllm_env.presets.PRESETS: paper-default, server-scarce, ...) under --config ("" = none)."""
    max_rounds: int = 0
    """Round cap per episode (0 = the config's)."""
    seed: int = 1
    """Seed of the on-the-fly trainings and of the global RNGs."""
    runs_dir: str = "runs"
    """Parent folder of the output folder."""
    progress_bar: bool = False
    """Show SB3's progress bar during on-the-fly training."""
    torch_threads: int = 1
    """torch intra-op threads."""
    ray_address: str = ""
    """Run every (policy, seed) episode as a Ray task: "local" (start Ray here), "auto" (join the cluster of
    `ray start`) or "ray://host:port" ("" = sequentially in this process). On-the-fly training stays here."""
    ray_cpus_per_task: float = 1.0
    """CPUs each episode task declares."""
    ray_gpus_per_task: float = 0.0
    """GPU share each episode task declares (real mode on a GPU, e.g. 0.25)."""
    real_seeds: tuple[int, ...] = ()
    """Also play every policy in the REAL env (split-federated LoRA training each round) on these reset seeds, one
    full episode each (one Ray task each with --ray-address), and print the real table and each policy's
    sim-to-real difference against the surrogate on the same seeds (() = surrogate only). They must be among
    --seeds."""


def _sibling(env_id: str, action_space: gym.Space | None, own_id: str) -> str:
    """The id an agent acts in when the baselines use ``env_id``: same mode, the agent's kind of action.

    Args:
        env_id: the baselines' id.
        action_space: the agent's action space (None for a client-set agent, which acts in the Priority ids).
        own_id: the id the agent was trained on.
    """
    if own_id in PRIORITY_IDS.values() or own_id in HETERO_PRIORITY_IDS.values():
        return priority_id_of(env_id)
    if isinstance(action_space, gym.spaces.Box):
        return sibling_id(env_id, "box")
    if (own_id in ENV_IDS.values() or is_hetero_id(own_id)) and variant_of(own_id)[1] == "hybrid":
        return sibling_id(env_id, "hybrid")
    return sibling_id(env_id, "multidiscrete")


def _priority_heuristic(env: gym.Env) -> PriorityHeuristic:
    return PriorityHeuristic(env)


def _decode_ms(policy: Any, env_id: str, config: dict[str, Any], seed: int) -> float:
    """Mean time of the priority decoding per step (it runs inside the env: part of the decision), ms."""
    env = make_eval_env(env_id, config)
    try:
        run_episode(policy if hasattr(policy, "predict") else policy(env), env, seed)
        wrapper = env
        while not isinstance(wrapper, PriorityEnv):
            wrapper = wrapper.env
        return 1e3 * wrapper.decode_time_s / max(wrapper.decode_count, 1)
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> Path:
    """Train (optionally), evaluate everything, print and save the table; returns the output folder."""
    args = tyro.cli(Args, args=argv, prog="fedsllm benchmark")
    unknown = [a for a in args.train_algos if a not in ALGOS]
    if unknown:
        raise UsageError(f"unknown --train-algos {unknown}; choose from {sorted(ALGOS)}")
    non_empty(seeds=args.seeds)
    missing = [s for s in args.real_seeds if s not in args.seeds]
    if missing:
        raise UsageError(f"--real-seeds {missing} are not among --seeds {list(args.seeds)}: the sim-to-real "
                         "difference pairs each real episode with the surrogate's on the same seed")
    at_least(train_timesteps=(args.train_timesteps, 1), max_rounds=(args.max_rounds, 0),
             torch_threads=(args.torch_threads, 1), ray_cpus_per_task=(args.ray_cpus_per_task, 0),
             ray_gpus_per_task=(args.ray_gpus_per_task, 0))
    check_env_id(args.env_id)
    names = tuple(args.baselines) or baseline_names()
    check_baselines([n for n in names if n != "priority_heuristic"], env_id=args.env_id)
    if "optimizer" not in names:
        names = ("optimizer",) + tuple(names)
    cfg = env_overrides(args.config, args.calibration_path, args.max_rounds, preset=args.preset)
    check_env_config(cfg)
    overrides = parse_hyperparams(args.hyperparams, args.train_algos)
    agents = [resolve_policy(spec) for spec in args.agents]  # a bad path fails before any training
    agent_envs = []  # (env id, env overrides) of each agent; a fixed-K agent that cannot act there fails now too
    for spec, res in zip(args.agents, agents):
        agent_id = _sibling(args.env_id, getattr(res.policy, "action_space", None), res.env_id)
        agent_cfg = env_overrides(args.config, args.calibration_path, args.max_rounds, base=res.env_overrides,
                                  preset=args.preset)
        check_agent_fits(res, agent_cfg, "--agents", spec, agent_id,
                         hint="benchmark it with the env config it was trained with (drop --preset / --config, or "
                              "keep its clients and subchannels)")
        agent_envs.append((agent_id, agent_cfg))

    # ---- seeding: the only place global RNGs are touched --------------------------------------
    seed_everything(args.seed, args.torch_threads)

    out = new_output_dir(Path(args.runs_dir) / run_name(args.env_id, "benchmark", args.seed))
    save_run_config(out, args, cfg)

    policies: list[tuple[str, Any, str, dict[str, Any]]] = []  # name, policy/factory, env id, env overrides
    priority_id = priority_id_of(args.env_id)
    for name in names:
        policies.append((name, baseline_factory(name), priority_id if name == "priority_heuristic" else args.env_id,
                         cfg))
    if not args.baselines:  # the fixed action of the priority codec: what the priority agents start from
        policies.append(("priority_heuristic", _priority_heuristic, priority_id, cfg))
    trained: dict[str, Any] = {}
    wall: dict[str, float] = {}  # training wall time of each agent, s
    for algo in args.train_algos:
        env_id = sibling_id(args.env_id, "multidiscrete" if algo == "maskable_ppo" else "box")
        result = train_agent(algo, out / "agents" / algo, env_id=env_id, seed=args.seed,
                             total_timesteps=args.train_timesteps, config=cfg, hyperparams=overrides,
                             progress_bar=args.progress_bar)
        trained[algo] = {"model_path": str(result.model_path), "wall_time_s": result.wall_time_s,
                         "timesteps": int(result.model.num_timesteps), "env_id": env_id}
        print(f"trained {algo} on {env_id}: {result.model.num_timesteps} steps in {result.wall_time_s:.1f} s")
        policies.append((f"{algo} ({args.train_timesteps} steps)", result.model, env_id, cfg))
        wall[f"{algo} ({args.train_timesteps} steps)"] = result.wall_time_s
    for spec, res, (agent_id, agent_cfg) in zip(args.agents, agents, agent_envs):
        summary = Path(spec) / "train_summary.json"
        if summary.is_file():
            wall[res.name] = float(json.loads(summary.read_text())["wall_time_s"])
        policies.append((res.name, res.policy, agent_id, agent_cfg))

    with ray_session(args.ray_address) if args.ray_address else contextlib.nullcontext():
        mapper = functools.partial(ray_map_unordered, num_cpus=args.ray_cpus_per_task,
                                   num_gpus=args.ray_gpus_per_task) if args.ray_address else None
        results = evaluate_policies(policies, list(args.seeds), mapper=mapper, torch_threads=args.torch_threads,
                                    global_seed=args.seed)
        real_results = {}
        if args.real_seeds:
            real_policies = [(name, policy, real_id(env_id), env_cfg) for name, policy, env_id, env_cfg in policies]
            print(f"real episodes: {len(real_policies)} policies x {len(args.real_seeds)} seeds", flush=True)
            real_results = evaluate_policies(real_policies, list(args.real_seeds), mapper=mapper,
                                             torch_threads=args.torch_threads, global_seed=args.seed)
    rows = comparison_rows(results, reference="optimizer")
    decode_ms = {name: _decode_ms(policy, env_id, env_cfg, args.seeds[0])
                 for name, policy, env_id, env_cfg in policies if "Priority" in env_id}
    for row in rows:
        row["decision_ms_per_step"] += decode_ms.get(row["policy"], 0.0)
        row["train_wall_s"] = wall.get(row["policy"], math.nan)
    table = markdown_table(rows, TABLE_COLUMNS)
    text = table + "\n"
    report: dict[str, Any] = {
        "seeds": list(args.seeds), "rows": rows, "trained": trained,
        "episodes": {name: [r.to_dict() for r in recs] for name, recs in results.items()},
    }
    print(table)
    if real_results:
        real_rows = sim_to_real_rows(results, real_results)
        real_table = markdown_table(real_rows, REAL_COLUMNS)
        text += f"\nReal episodes (seeds {list(args.real_seeds)}):\n\n{real_table}\n"
        report.update(real_seeds=list(args.real_seeds), real_rows=real_rows,
                      real_episodes={name: [r.to_dict() for r in recs] for name, recs in real_results.items()})
        print(f"\nreal episodes (seeds {list(args.real_seeds)}):\n{real_table}")
    (out / "benchmark.md").write_text(text)
    write_json(out / "benchmark.json", report)
    print(f"\nsaved to {out}")
    return out


REAL_COLUMNS = ("policy", "real_total_delay_mean_s", "real_total_delay_std_s", "real_relative_to_optimizer",
                "real_rounds_mean", "surrogate_total_delay_mean_s", "surrogate_rounds_mean", "sim_to_real",
                "real_success_rate")


def real_id(env_id: str) -> str:
    """The real-mode id of the same action kind as ``env_id`` (surrogate or real)."""
    return id_in_mode(env_id, "real")


def sim_to_real_rows(surrogate: dict[str, list], real: dict[str, list]) -> list[dict[str, Any]]:
    """Per policy: the real episodes' mean total delay and rounds (relative to the real optimizer), the surrogate's
    on the same seeds, and the sim-to-real difference (surrogate mean / real mean - 1)."""
    real_rows = {r["policy"]: r for r in comparison_rows(real, reference="optimizer")}
    out = []
    for name, recs in real.items():
        seeds = {r.seed for r in recs}
        paired = [r for r in surrogate[name] if r.seed in seeds]
        sur_mean = float(np.mean([r.total_delay_s for r in paired])) if paired else math.nan
        row = real_rows[name]
        out.append({"policy": name, "real_total_delay_mean_s": row["total_delay_mean_s"],
                    "real_total_delay_std_s": row["total_delay_std_s"],
                    "real_relative_to_optimizer": row["relative_to_optimizer"], "real_rounds_mean": row["rounds_mean"],
                    "surrogate_total_delay_mean_s": sur_mean,
                    "surrogate_rounds_mean": float(np.mean([r.rounds for r in paired])) if paired else math.nan,
                    "sim_to_real": sur_mean / row["total_delay_mean_s"] - 1.0 if row["total_delay_mean_s"] else math.nan,
                    "real_success_rate": row["success_rate"]})
    return out


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("benchmark")

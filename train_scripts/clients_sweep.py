"""Agents and the optimizer at several numbers of clients K: full surrogate episodes, ratio to the optimizer per K.

For every K of ``--clients`` the cell is the config's with K clients and the subchannels per link raised to K when
fewer (the figures' clients-sweep rule, :func:`fedsllm_env.client_set.clients_overrides`). Every policy plays one
deterministic episode per seed and K: the paper's optimizer (Box id), the priority heuristic (Priority id), and
each agent of ``--agents``. A K-invariant agent (``ClientSetPolicy``, trained on ``FedsLLM-Surrogate-AnyK-v0``)
acts at every K; a fixed-K agent only where its spaces fit (elsewhere: one line, and n/a in the table).

Prints one markdown table (K, policy, mean total delay, ratio of mean total delays to the optimizer, the worst
per-seed ratio, rounds, decision time) and saves ``clients_sweep.md``, ``clients_sweep.json`` and
``clients_sweep.png`` (ratio vs K) in ``runs/<run_name>/``.

Example::

    fedsllm clients-sweep --agents runs/anyk_ppo --clients 2 4 6 8 10 25 40 --seeds 1000 1001 1002 --ray-address local
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import tyro

from agents.evaluation import comparison_rows, evaluate_policies, markdown_table
from agents.factory import BOX_ENV_ID
from fedsllm_env.client_set import clients_overrides
from fedsllm_env.errors import UsageError
from fedsllm_env.registration import PRIORITY_IDS
from train_scripts._checks import at_least, check_env_config, new_output_dir, non_empty
from train_scripts._common import (baseline_factory, check_agent_fits, env_overrides, resolve_policy, run_name,
                                   save_run_config, write_json)
from train_scripts._ray import ray_map_unordered, ray_session
from train_scripts.benchmark import _decode_ms
from train_scripts.seeding import seed_everything

__all__ = ["Args", "main", "sweep_rows"]

TABLE_COLUMNS = ("clients", "policy", "total_delay_mean_s", "relative_to_optimizer", "worst_seed_ratio",
                 "rounds_mean", "decision_ms_per_step")


@dataclass
class Args:
    """Command-line arguments of ``fedsllm clients-sweep``."""

    agents: tuple[str, ...] = ()
    """Saved agent zips or run folders (K-invariant ones act at every K)."""
    clients: tuple[int, ...] = (2, 4, 6, 8, 10)
    """Numbers of clients K."""
    seeds: tuple[int, ...] = (1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009)
    """Scenario seeds (keep them apart from the training seeds)."""
    heuristic: bool = True
    """Add the priority heuristic (the behaviour-cloning teacher of the priority agents)."""
    config: str = ""
    """JSON/YAML file of nested env config overrides ("" = none)."""
    preset: str = ""
    """Scenario preset under --config ("" = none)."""
    calibration_path: str = ""
    """Calibration JSON ("" = the table shipped with the package)."""
    max_rounds: int = 0
    """Episode cap in rounds (0 = the config's)."""
    seed: int = 1
    """Seed of the global RNGs."""
    runs_dir: str = "runs"
    """Parent folder of the output folder."""
    torch_threads: int = 1
    """torch intra-op threads per process."""
    ray_address: str = ""
    """Play the episodes as Ray tasks: "local", "auto" or "ray://host:port" ("" = in this process)."""


def sweep_rows(results: dict[int, dict[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    """Rows of the table from {K: {policy: records}} (the optimizer is the reference of every K)."""
    rows = []
    for k, per_policy in results.items():
        ref = {r.seed: r.total_delay_s for r in per_policy.get("optimizer", [])}
        for row in comparison_rows(per_policy, reference="optimizer"):
            recs = per_policy[row["policy"]]
            ratios = [r.total_delay_s / ref[r.seed] for r in recs if r.seed in ref and ref[r.seed] > 0]
            rows.append({"clients": k, **row, "worst_seed_ratio": max(ratios) if ratios else math.nan})
    return rows


def _plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["policy"] for r in rows):
        pts = [(r["clients"], r["relative_to_optimizer"]) for r in rows if r["policy"] == name]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("number of clients K")
    ax.set_ylabel("total delay / optimizer's")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> Path:
    """Play every policy at every K, print and save the table; returns the output folder."""
    args = tyro.cli(Args, args=argv, prog="fedsllm clients-sweep")
    non_empty(seeds=args.seeds, clients=args.clients)
    at_least(max_rounds=(args.max_rounds, 0), torch_threads=(args.torch_threads, 1),
             **{f"clients[{i}]": (k, 1) for i, k in enumerate(args.clients)})
    base = env_overrides(args.config, args.calibration_path, args.max_rounds, preset=args.preset)
    check_env_config(base)
    agents = [resolve_policy(spec) for spec in args.agents]
    entries: list[tuple[str, Any, str, dict[str, Any]]] = []
    where: dict[str, tuple[int, str]] = {}  # entry name -> (K, policy name)
    for k in args.clients:
        cfg = clients_overrides(base, k)
        check_env_config(cfg)
        cell = [("optimizer", baseline_factory("optimizer"), BOX_ENV_ID)]
        if args.heuristic:
            cell.append(("priority_heuristic", baseline_factory("priority_heuristic"), PRIORITY_IDS["surrogate"]))
        for spec, res in zip(args.agents, agents):
            try:
                check_agent_fits(res, cfg, "--agents", spec, res.env_id)
            except UsageError as e:
                print(f"K = {k}: {res.name} skipped ({e})")
                continue
            cell.append((res.name, res.policy, res.env_id))
        for name, policy, env_id in cell:
            key = f"{name} @ K={k}"
            where[key] = (k, name)
            entries.append((key, policy, env_id, cfg))
    seed_everything(args.seed, args.torch_threads)
    out = new_output_dir(Path(args.runs_dir) / run_name("clients", "sweep", args.seed))
    save_run_config(out, args, base)
    with ray_session(args.ray_address) if args.ray_address else contextlib.nullcontext():
        mapper = functools.partial(ray_map_unordered, num_cpus=1.0) if args.ray_address else None
        flat = evaluate_policies(entries, list(args.seeds), mapper=mapper, torch_threads=args.torch_threads,
                                 global_seed=args.seed)
    results: dict[int, dict[str, Any]] = {}
    for key, recs in flat.items():
        k, name = where[key]
        results.setdefault(k, {})[name] = recs
    rows = sweep_rows(dict(sorted(results.items())))
    for row in rows:  # the priority decoding runs inside the env: part of the decision (as in the benchmark)
        if row["policy"] != "optimizer":
            k = row["clients"]
            key = f"{row['policy']} @ K={k}"
            _, policy, env_id, cfg = next(e for e in entries if e[0] == key)
            row["decision_ms_per_step"] += _decode_ms(policy, env_id, cfg, args.seeds[0])
    table = markdown_table(rows, TABLE_COLUMNS)
    print(table)
    (out / "clients_sweep.md").write_text(table + "\n")
    write_json(out / "clients_sweep.json", {"seeds": list(args.seeds), "clients": list(args.clients), "rows": rows,
                                            "episodes": {key: [r.to_dict() for r in recs]
                                                         for key, recs in flat.items()}})
    _plot(rows, out / "clients_sweep.png")
    print(f"\nsaved to {out}")
    return out


if __name__ == "__main__":
    main()

"""Search the surrogate for (cut, rank) schedules that beat every fixed decision: the artefact check of issue 19.

An agent trained long enough in the surrogate learns whatever the surrogate rewards. If a schedule that switches
the cut or the rank beats every fixed (cut, rank) in the surrogate, either real training rewards it too (a real
gain, worth checking with ``fedsllm fidelity --schedules ...``) or the surrogate has an artefact. This search
answers the first half exactly over a family of schedules:

* every fixed (cut, rank);
* every two-phase schedule (c1, r1) for k rounds, then (c2, r2), k = 1..``max_switch_round``;
* every periodic schedule alternating (c1, r1) and (c2, r2) with phase lengths 1..``max_period`` each.

Each is priced on one scenario (``seed``): the per-round delay of every (cut, rank) on that seed's channel
trajectory with the priority heuristic's allocation (the fixed action of ``fedsllm_env/priority.py``: about a
millisecond per decision, so every (round, cut, rank) is priced), and the rounds the surrogate needs with each
of ``noise_seeds`` draws of its observation noise (the episode ends at the first noisy loss at or below the
target, as in the env). Total delay = the sum of the round delays of the rounds played, averaged over the noise
draws. Printed: the best fixed decision and the best schedules, with their ratio to it.

Example::

    fedsllm switch-search --seed 1000 --noise-seeds 0 1 2 3 4 5 6 7 8 9
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import tyro

from fedsllm_env.errors import UsageError

__all__ = ["Args", "round_delay_table", "price_schedules", "candidate_schedules", "main"]


@dataclass
class Args:
    """Price fixed, two-phase and periodic (cut, rank) schedules in the surrogate; print the best against the best
    fixed decision."""

    seed: int = 1000
    """Reset seed of the scenario (client positions, devices, channel trajectory)."""
    noise_seeds: tuple[int, ...] = tuple(range(10))
    """Draws of the surrogate's observation noise each schedule is priced on."""
    max_switch_round: int = 40
    """Two-phase schedules switch after k = 1..this many rounds."""
    max_period: int = 6
    """Periodic schedules: each phase lasts 1..this many rounds."""
    config: str = ""
    """JSON/YAML file of nested env config overrides ("" = none)."""
    preset: str = ""
    """Scenario preset under --config ("" = none)."""
    calibration_path: str = ""
    """Calibration ("" = the shipped table)."""
    top: int = 10
    """Schedules printed."""
    out: str = ""
    """JSON file for the result ("" = do not write)."""


def round_delay_table(cfg_overrides: dict[str, Any], seed: int) -> tuple[np.ndarray, Any]:
    """(T, L - 1, R) round delays, s, of every (cut, rank) in every round 1..T = max_rounds of the scenario
    ``seed``, with the priority heuristic's allocation; also returns the env (for its surrogate and config)."""
    from fedsllm_env.delay import round_delay
    from fedsllm_env.priority import HEURISTIC_DEADLINE, make_priority_env

    overrides = {**cfg_overrides, "mode": "surrogate"}
    overrides["training"] = {**overrides.get("training", {}), "target_val_loss": 1e-9}  # never ends before T
    env = make_priority_env(overrides)
    base = env.unwrapped
    cfg = base.config
    env.reset(seed=int(seed))
    n_split, ranks = base.shape.n_layer - 1, cfg.model.ranks
    k = cfg.wireless.num_clients
    action = np.zeros(2 * k + 4)
    action[2 * k: 2 * k + 2] = HEURISTIC_DEADLINE
    out = np.empty((cfg.training.max_rounds, n_split, len(ranks)))
    for t in range(cfg.training.max_rounds):
        for c in range(n_split):
            for j in range(len(ranks)):
                action[-2] = -1.0 + (2.0 * c + 1.0) / n_split  # bin centres of the split and rank bins
                action[-1] = -1.0 + (2.0 * j + 1.0) / len(ranks)
                decision = env.decode(action)
                if (decision.split, decision.rank) != (c + 1, ranks[j]):  # projected (memory cap): not playable
                    out[t, c, j] = np.inf
                else:
                    out[t, c, j] = round_delay(decision, base.channel, base.scenario, base.shape, cfg).round_s
        action[-2:] = -1.0, 1.0
        env.step(action)  # the channel trajectory does not depend on the actions: any action moves it on
    return out, env


def candidate_schedules(split_count: int, ranks: Sequence[int], max_switch_round: int, max_period: int) -> list[str]:
    """Fixed, two-phase and periodic schedules over cuts 1..split_count and ``ranks`` (schedules notation)."""
    cells = [(c, r) for c in range(1, split_count + 1) for r in ranks]
    out = [f"c{c}r{r}" for c, r in cells]
    for a in cells:
        for b in cells:
            if a == b:
                continue
            out += [f"c{a[0]}r{a[1]}x{k};c{b[0]}r{b[1]}" for k in range(1, max_switch_round + 1)]
            if a < b:
                out += [f"c{a[0]}r{a[1]}x{p};c{b[0]}r{b[1]}x{q}*" for p in range(1, max_period + 1)
                        for q in range(1, max_period + 1)]
    return out


def price_schedules(schedules: Sequence[str], delays: np.ndarray, backend: Any, ranks: Sequence[int],
                    target: float, noise: np.ndarray, played_switch: np.ndarray | None = None) -> np.ndarray:
    """Mean total delay (s) of each schedule over the rows of ``noise`` ((S, T) observation noise): rounds are
    played until the first noisy loss <= ``target`` or T rounds (then inf: the episode is truncated).

    ``played_switch`` ((n,) bool, optional) is set where the schedule changed its decision before its episode
    ended in every noise draw (a schedule whose switch comes after the target only ties the fixed decision)."""
    from fedsllm_env.convergence import ProgressState, advance
    from fedsllm_env.schedules import parse_schedule

    n, s_count = len(schedules), noise.shape[0]
    horizon = delays.shape[0]
    plans = np.array([parse_schedule(x).decisions(horizon) for x in schedules], dtype=np.int64)  # (n, T, 2)
    rank_index = {r: i for i, r in enumerate(backend.tables.ranks)}
    cfg_index = {r: i for i, r in enumerate(ranks)}
    b = n * s_count
    state = ProgressState.start(backend.initial_val_loss, b)
    prev_s = np.full(b, -1, dtype=np.int64)
    prev_k = np.full(b, -1, dtype=np.int64)
    total = np.zeros(b)
    done = np.zeros(b, dtype=bool)
    switched = np.zeros(b, dtype=bool)
    first = np.repeat(plans[:, 0, :], s_count, axis=0)
    for t in range(horizon):
        split = np.repeat(plans[:, t, 0], s_count)
        rank = np.repeat(plans[:, t, 1], s_count)
        k = np.array([rank_index[int(r)] for r in rank])
        state = advance(backend.tables, backend.switch, state, backend.initial_val_loss, prev_s, prev_k, split, k)
        prev_s, prev_k = split, k
        cost = delays[t, split - 1, np.array([cfg_index[int(r)] for r in rank])]
        total = np.where(done, total, total + cost)
        switched |= ~done & ((split != first[:, 0]) | (rank != first[:, 1]))
        done |= state.clean_loss + np.tile(noise[:, t], n) <= target
    total = np.where(done, total, np.inf)
    if played_switch is not None:
        played_switch[:] = switched.reshape(n, s_count).all(axis=1)
    return total.reshape(n, s_count).mean(axis=1)


def run(args: Args, command: str = "fedsllm switch-search") -> dict[str, Any]:
    """Price every candidate, print the best fixed decision and the best schedules; returns the result."""
    from fedsllm_env.convergence import ar1_noise
    from train_scripts._common import env_overrides, write_json

    if args.max_switch_round < 1 or args.max_period < 1 or args.top < 1 or not args.noise_seeds:
        raise UsageError("--max-switch-round, --max-period and --top must be >= 1 and --noise-seeds non-empty")
    t0 = time.perf_counter()
    cfg = env_overrides(args.config, args.calibration_path, 0, preset=args.preset)
    delays, env = round_delay_table(cfg, args.seed)
    base = env.unwrapped
    backend, ranks = base.backend, base.config.model.ranks
    horizon = delays.shape[0]
    noise = np.stack([ar1_noise(np.random.default_rng(int(s)).standard_normal(horizon), backend.noise)
                      for s in args.noise_seeds])
    schedules = candidate_schedules(delays.shape[1], ranks, args.max_switch_round, args.max_period)
    from fedsllm_env.config import FedsLLMConfig

    target = FedsLLMConfig.from_dict(cfg).training.target_val_loss or base.calibration.target_val_loss
    switched = np.zeros(len(schedules), dtype=bool)
    totals = np.concatenate([price_schedules(schedules[i:i + 2000], delays, backend, ranks, target, noise,
                                             switched[i:i + 2000]) for i in range(0, len(schedules), 2000)])
    fixed = [i for i, x in enumerate(schedules) if ";" not in x]
    best_fixed = min(fixed, key=lambda i: totals[i])
    # schedules that switch before their episode ends (the others tie a fixed decision), best first
    order = [i for i in np.argsort(totals, kind="stable") if switched[i]][:args.top]
    print(f"{len(schedules)} schedules priced on seed {args.seed} x {len(args.noise_seeds)} noise draws "
          f"({time.perf_counter() - t0:.1f} s); best fixed decision {schedules[best_fixed]}: "
          f"{totals[best_fixed]:.2f} s")
    print("best schedules that switch before the target (in every noise draw):")
    print("| schedule | mean total delay (s) | relative to the best fixed |")
    print("|---|---:|---:|")
    for i in order:
        print(f"| {schedules[i]} | {totals[i]:.2f} | {totals[i] / totals[best_fixed]:.4f} |")
    result = {"command": command, "seed": args.seed, "noise_seeds": list(args.noise_seeds),
              "candidates": len(schedules), "best_fixed": schedules[best_fixed],
              "best_fixed_total_delay_s": float(totals[best_fixed]),
              "top": [{"schedule": schedules[i], "total_delay_s": float(totals[i]),
                       "relative_to_best_fixed": float(totals[i] / totals[best_fixed])} for i in order]}
    if args.out:
        write_json(args.out, result)
    env.close()
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (``fedsllm switch-search``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = tyro.cli(Args, args=argv, prog="fedsllm switch-search", description=__doc__)
    run(args, command=shlex.join(["fedsllm", "switch-search", *argv]))


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("switch-search")

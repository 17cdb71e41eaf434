"""``fedsllm fidelity``: does the surrogate price what real split-federated training does?

Every entry of the suite (an open-loop (cut, rank) schedule, the paper's optimizer, a trained agent) plays full
episodes in the REAL env (torch + peft training each round) and in the surrogate, on the same scenario and
channel trajectory (the same reset seed), so every per-round delay of the same decision is the same in both
modes and the whole difference is in the number of rounds the training needs. The surrogate plays each entry
on ``--noise-seeds`` draws of its observation noise (the training's seed-to-seed spread); the real env plays it
once per ``--real-seeds``. Printed per entry: the real rounds and total delay, the surrogate's rounds range and
mean total delay, and the error of that mean. Target (issue 19): every entry within 5 % and the real rounds
inside the surrogate's range.

Schedules play in the hybrid ids (the entry picks the cut and rank each round, the optimizer's allocator
fills subchannels and powers); schedules of heterogeneous profiles (a phase lists K cuts or ranks, e.g.
``"c1r64x8;c1r64.64.8.8.8"``; the suite ``PROFILE_FIDELITY_SCHEDULES``) play in the heterogeneous hybrid ids
under their ``@rule``; "optimizer" plays the Box ids. Each episode is one job; with
``--ray-address`` one Ray task each (``--ray-cpus-per-task`` CPUs, one torch thread per CPU).

Example::

    fedsllm fidelity --ray-address local                                   # the whole suite (about an hour)
    fedsllm fidelity --schedules c1r64 "c1r64x8;c1r8" --policies --noise-seeds 0 1 2 --max-rounds 40
    fedsllm fidelity --real-from runs/fidelity.json --calibration-path refitted.json   # re-score the surrogate only

``--real-from`` takes the real episodes of an earlier ``--out`` file instead of training again (the real env
depends on the calibration only through its target loss, which must be the same), so a new progress model can
be scored against the same real runs in seconds.
"""

from __future__ import annotations

import contextlib
import functools
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import tyro

from fedsllm_env.errors import UsageError
from fedsllm_env.schedules import (FIDELITY_SCHEDULES, ProfileSchedule, Schedule, is_profile_schedule,
                                   parse_profile_schedule, parse_schedule)

__all__ = ["Args", "FidelityJob", "SchedulePolicy", "ProfileSchedulePolicy", "parse_any_schedule", "run_fidelity_job", "fidelity_rows", "main", "TARGET_ERROR"]

TARGET_ERROR = 0.05
"""Largest accepted |surrogate mean total delay / real total delay - 1| of an entry."""


@dataclass
class Args:
    """Real vs surrogate episodes of a suite of schedules and policies (see the module docstring)."""

    schedules: tuple[str, ...] = FIDELITY_SCHEDULES
    """Open-loop (cut, rank) schedules (fedsllm_env.schedules notation, e.g. "c1r64x8;c1r8"), or schedules of
    heterogeneous profiles (e.g. "c1r64x8;c1r64.64.8.8.8", played in the heterogeneous env; the suite
    fedsllm_env.schedules.PROFILE_FIDELITY_SCHEDULES)."""
    policies: tuple[str, ...] = ("optimizer",)
    """Baselines and agent run folders / zips played closed-loop (empty = none)."""
    real_seeds: tuple[int, ...] = (0,)
    """Reset seeds of the real episodes (scenario, channel, training seed)."""
    noise_seeds: tuple[int, ...] = tuple(range(10))
    """Surrogate noise draws per real seed (same scenario and channel as the real episode)."""
    config: str = ""
    """JSON/YAML file of nested env config overrides ("" = none)."""
    preset: str = ""
    """Scenario preset under --config ("" = none)."""
    calibration_path: str = ""
    """Calibration of the surrogate and of the real env's target ("" = the shipped table)."""
    max_rounds: int = 0
    """Round cap per episode (0 = the config's)."""
    ray_address: str = ""
    """"" = every episode here, one after another; "local", "auto" or "ray://host:port": one Ray task each."""
    ray_cpus_per_task: float = 1.0
    """CPUs each episode task declares (real episodes use that many torch threads)."""
    out: str = ""
    """JSON file for every episode and the table ("" = do not write)."""
    real_from: str = ""
    """Earlier --out file whose real episodes are reused (same env config and target loss; "" = train)."""


class _OpenLoopPolicy:
    """What both schedule players share: the ranks check and the round counted from reset."""

    def __init__(self, text: str, used_ranks: set[int], ranks: Sequence[int]):
        self.ranks = tuple(int(r) for r in ranks)
        missing = sorted(set(used_ranks) - set(self.ranks))
        if missing:
            raise UsageError(f"schedule {text!r} uses ranks {missing} outside model.ranks {list(self.ranks)}")
        self._round = 0

    def _next_round(self, episode_start: Any) -> int:
        """The 1-based round the next action is for (restarting at 1 on an episode start)."""
        if episode_start is not None and bool(np.asarray(episode_start).ravel()[0]):
            self._round = 0
        self._round += 1
        return self._round


class SchedulePolicy(_OpenLoopPolicy):
    """Plays an open-loop schedule in a hybrid env (action = [cut - 1, rank index]); round counted from reset."""

    def __init__(self, schedule: Schedule, ranks: Sequence[int]):
        super().__init__(schedule.text, {r for _, r, _ in schedule.phases}, ranks)
        self.schedule = schedule

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """The schedule's (cut, rank) of the next round as a hybrid action."""
        split, rank = self.schedule.at(self._next_round(episode_start))
        return np.array([split - 1, self.ranks.index(rank)], dtype=np.int64), None


class ProfileSchedulePolicy(_OpenLoopPolicy):
    """Plays an open-loop schedule of heterogeneous profiles in a heterogeneous hybrid env (action = K cuts - 1,
    then K rank indices); round counted from reset."""

    def __init__(self, schedule: ProfileSchedule, ranks: Sequence[int], num_clients: int):
        super().__init__(schedule.text, schedule.cuts_and_ranks()[1], ranks)
        self.schedule = schedule
        self.num_clients = int(num_clients)
        for profile, _ in schedule.phases:
            profile.per_client(self.num_clients)  # K values or one: refused otherwise

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """The schedule's profile of the next round as a heterogeneous hybrid action."""
        cuts, ranks = self.schedule.at(self._next_round(episode_start)).per_client(self.num_clients)
        return np.array([c - 1 for c in cuts] + [self.ranks.index(r) for r in ranks], dtype=np.int64), None


def parse_any_schedule(text: str) -> Schedule | ProfileSchedule:
    """A shared (cut, rank) schedule, or a schedule of heterogeneous profiles (:func:`is_profile_schedule`)."""
    return parse_profile_schedule(text) if is_profile_schedule(text) else parse_schedule(text)


def _schedule_config(text: str, config: dict[str, Any]) -> dict[str, Any]:
    """The env config of a schedule's episodes: a profile schedule's aggregation rule over ``config``."""
    if not is_profile_schedule(text):
        return config
    from fedsllm_env.config import merge_overrides

    return merge_overrides(config, {"model": {"aggregation": parse_profile_schedule(text).aggregation}})


class _NoiseSeed(gym.Wrapper):
    """Reset as usual (scenario, channel and the training's seed from the reset seed), then redraw the
    surrogate's observation noise from ``noise_seed``: the same channel, another draw of training luck."""

    def __init__(self, env: gym.Env, noise_seed: int):
        super().__init__(env)
        self.noise_seed = int(noise_seed)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.env.unwrapped.backend.reset(self.noise_seed)  # round 0, initial loss: only the noise changes
        return obs, info


@dataclass(frozen=True)
class FidelityJob:
    """One episode: entry (schedule text or policy spec), mode, reset seed, surrogate noise seed."""

    entry: str
    kind: str
    """"schedule" or "policy"."""
    mode: str
    """"real" or "surrogate"."""
    seed: int
    noise_seed: int
    config: dict[str, Any]


def _env_id(kind: str, mode: str, policy_env_id: str = "", heterogeneous: bool = False) -> str:
    from fedsllm_env.registration import ENV_IDS, HETERO_IDS, sibling_id

    if kind == "schedule":
        return (HETERO_IDS if heterogeneous else ENV_IDS)[(mode, "hybrid")]
    return sibling_id(policy_env_id or ENV_IDS[("surrogate", "box")], "box") if mode == "surrogate" else \
        _real_id(policy_env_id or ENV_IDS[("surrogate", "box")])


def _real_id(env_id: str) -> str:
    from fedsllm_env.registration import id_in_mode

    return id_in_mode(env_id, "real")


def _surrogate_id(env_id: str) -> str:
    from fedsllm_env.registration import id_in_mode

    return id_in_mode(env_id, "surrogate")


def run_fidelity_job(job: FidelityJob, torch_threads: int = 1) -> dict[str, Any]:
    """Play one :class:`FidelityJob`; returns its record (rounds, total delay, decisions, wall time)."""
    import fedsllm_env  # noqa: F401  (registers the ids in a Ray worker)
    from agents.evaluation import make_eval_env, run_episode

    if job.mode == "real":
        import torch

        torch.set_num_threads(max(1, int(torch_threads)))
    t0 = time.perf_counter()
    if job.kind == "schedule":
        hetero = is_profile_schedule(job.entry)
        env = make_eval_env(_env_id("schedule", job.mode, heterogeneous=hetero), _schedule_config(job.entry, job.config))
        cfg = env.unwrapped.config
        policy: Any = (ProfileSchedulePolicy(parse_profile_schedule(job.entry), cfg.model.ranks, cfg.wireless.num_clients)
                       if hetero else SchedulePolicy(parse_schedule(job.entry), cfg.model.ranks))
        name = job.entry
    else:
        from train_scripts._common import resolve_policy

        res = resolve_policy(job.entry)
        env_id = _real_id(res.env_id) if job.mode == "real" else _surrogate_id(res.env_id)
        env = make_eval_env(env_id, {**res.env_overrides, **job.config} if res.env_overrides else job.config)
        policy = res.policy(env) if not hasattr(res.policy, "predict") else res.policy
        name = res.name
    if job.mode == "surrogate":
        env = _NoiseSeed(env, job.noise_seed)
    try:
        rec = run_episode(policy, env, job.seed, name=name)
    finally:
        env.close()
    return {"entry": job.entry, "kind": job.kind, "mode": job.mode, "seed": job.seed,
            "noise_seed": job.noise_seed if job.mode == "surrogate" else None, "rounds": rec.rounds,
            "terminated": rec.terminated, "total_delay_s": rec.total_delay_s, "final_val_loss": rec.final_val_loss,
            "splits": _plain(rec.splits), "ranks": _plain(rec.ranks), "wall_s": time.perf_counter() - t0}


def _plain(values: Sequence[Any]) -> list[Any]:
    """A round's cut or rank as JSON: an int, or a list of ints per client."""
    return [np.asarray(v).tolist() for v in values]


def fidelity_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (entry, real seed): real rounds and delay, surrogate rounds range and mean delay, error."""
    rows = []
    keys = sorted({(r["entry"], r["kind"], r["seed"]) for r in records}, key=lambda k: (k[1] != "schedule", k))
    order = {e: i for i, e in enumerate(dict.fromkeys(r["entry"] for r in records))}
    keys.sort(key=lambda k: (order[k[0]], k[2]))
    for entry, kind, seed in keys:
        real = [r for r in records if (r["entry"], r["mode"], r["seed"]) == (entry, "real", seed)]
        sur = [r for r in records if (r["entry"], r["mode"], r["seed"]) == (entry, "surrogate", seed)]
        if not real or not sur:
            continue
        real_delay = real[0]["total_delay_s"]
        sur_delay = float(np.mean([r["total_delay_s"] for r in sur]))
        rounds = [r["rounds"] for r in sur]
        err = sur_delay / real_delay - 1.0 if real_delay > 0 else math.nan
        rows.append({"entry": entry, "kind": kind, "seed": seed, "real_rounds": real[0]["rounds"],
                     "real_terminated": real[0]["terminated"], "real_total_delay_s": real_delay,
                     "surrogate_rounds_min": min(rounds), "surrogate_rounds_max": max(rounds),
                     "surrogate_rounds_mean": float(np.mean(rounds)), "surrogate_total_delay_mean_s": sur_delay,
                     "noise_seeds": len(sur), "error": err,
                     "real_rounds_in_range": min(rounds) <= real[0]["rounds"] <= max(rounds),
                     "within_target": abs(err) <= TARGET_ERROR})
    return rows


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    """The fidelity table (markdown)."""
    print("| entry | seed | real rounds | real total delay | surrogate rounds (range, mean) | surrogate mean total "
          "delay | error | real rounds in range |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        real_r = f"{r['real_rounds']}" + ("" if r["real_terminated"] else " (truncated)")
        print(f"| {r['entry']} | {r['seed']} | {real_r} | {r['real_total_delay_s']:.1f} s | "
              f"{r['surrogate_rounds_min']}-{r['surrogate_rounds_max']} ({r['surrogate_rounds_mean']:.1f}) | "
              f"{r['surrogate_total_delay_mean_s']:.1f} s | {100 * r['error']:+.1f} % | "
              f"{'yes' if r['real_rounds_in_range'] else 'no'} |")
    if rows:
        errs = [abs(r["error"]) for r in rows]
        inside = sum(r["real_rounds_in_range"] for r in rows)
        within = sum(r["within_target"] for r in rows)
        print(f"\n{within}/{len(rows)} entries within {100 * TARGET_ERROR:.0f} % (worst |error| "
              f"{100 * max(errs):.1f} %, mean {100 * float(np.mean(errs)):.1f} %); real rounds inside the surrogate's "
              f"range: {inside}/{len(rows)}")


def _check(args: Args) -> None:
    if not args.real_seeds or not args.noise_seeds:
        raise UsageError("--real-seeds and --noise-seeds need at least one seed each")
    bad = [s for s in (*args.real_seeds, *args.noise_seeds) if s < 0]
    if bad:
        raise UsageError(f"seeds must be >= 0, got {bad}")
    if args.max_rounds < 0:
        raise UsageError(f"--max-rounds must be >= 0 (0 = the config's), got {args.max_rounds}")
    if not args.ray_cpus_per_task > 0:
        raise UsageError(f"--ray-cpus-per-task must be > 0, got {args.ray_cpus_per_task}")
    if not args.schedules and not args.policies:
        raise UsageError("nothing to check: give --schedules and/or --policies")
    for text in args.schedules:
        parse_any_schedule(text)


def reused_real_episodes(path: str, cfg: dict[str, Any], target_val_loss: float) -> dict[tuple[str, int], dict]:
    """The real episodes of an earlier ``fedsllm fidelity --out`` file, by (entry, seed).

    Refused (:class:`UsageError`) when the file is missing or unreadable, or was made with another env config
    (the calibration path aside) or another target loss (files from before the target was recorded are taken
    on the config check alone)."""
    import json

    from fedsllm_env.errors import MissingFileError

    if not Path(path).is_file():
        raise MissingFileError(f"--real-from {path}: no such file (an earlier `fedsllm fidelity --out` file)")
    try:
        data = json.loads(Path(path).read_text())
        episodes = data["episodes"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--real-from {path}: not a fidelity result ({type(e).__name__}: {e})") from e
    def strip(c: dict | None) -> dict:  # the calibration path does not change a real episode
        return {k: v for k, v in (c or {}).items() if k != "calibration_path"}

    if strip(data.get("config")) != strip(cfg):
        raise UsageError(f"--real-from {path}: made with env config {strip(data.get('config'))}, this run has "
                         f"{strip(cfg)}: its real episodes are other episodes")
    stored = data.get("target_val_loss")
    if stored is not None and abs(float(stored) - float(target_val_loss)) > 1e-12:
        raise UsageError(f"--real-from {path}: its real episodes ran to the target loss {stored}, this "
                         f"calibration's is {target_val_loss}")
    return {(e["entry"], int(e["seed"])): e for e in episodes if e.get("mode") == "real"}


def run(args: Args, command: str = "fedsllm fidelity") -> dict[str, Any]:
    """Play every job, print the table, optionally write ``--out``; returns rows and records."""
    from fedsllm_env.calibration import load_calibration
    from fedsllm_env.config import FedsLLMConfig
    from train_scripts._common import env_overrides, resolve_policy, write_json

    _check(args)
    cfg = env_overrides(args.config, args.calibration_path, args.max_rounds, preset=args.preset)
    full = FedsLLMConfig.from_dict(cfg)
    cal = load_calibration(full.calibration_path or None)
    n_layer = cal.shape.n_layer
    for text in args.schedules:  # ranks, cuts or K the env does not have: refused before anything runs
        if is_profile_schedule(text):
            plan = parse_profile_schedule(text)
            ProfileSchedulePolicy(plan, full.model.ranks, full.wireless.num_clients)
            cuts = plan.cuts_and_ranks()[0]
        else:
            sched = parse_schedule(text)
            SchedulePolicy(sched, full.model.ranks)
            cuts = {c for c, _, _ in sched.phases}
        bad = sorted(c for c in cuts if c > n_layer - 1)
        if bad:
            raise UsageError(f"schedule {text!r}: cut(s) {bad} beyond L - 1 = {n_layer - 1}")
    for spec in args.policies:
        resolve_policy(spec)  # a bad path or name fails before any episode
    jobs = [FidelityJob(text, "schedule", mode, seed, noise, cfg) for text in args.schedules
            for seed in args.real_seeds for mode, noises in (("real", (0,)), ("surrogate", args.noise_seeds))
            for noise in noises]
    jobs += [FidelityJob(spec, "policy", mode, seed, noise, cfg) for spec in args.policies
             for seed in args.real_seeds for mode, noises in (("real", (0,)), ("surrogate", args.noise_seeds))
             for noise in noises]
    records: list[dict[str, Any]] = []
    if args.real_from:
        stored = reused_real_episodes(args.real_from, cfg, cal.target_val_loss)
        reused = [stored[(j.entry, j.seed)] for j in jobs if j.mode == "real" and (j.entry, j.seed) in stored]
        jobs = [j for j in jobs if not (j.mode == "real" and (j.entry, j.seed) in stored)]
        records.extend(reused)
        print(f"real episodes reused from {args.real_from}: {len(reused)}; to play: "
              f"{sum(j.mode == 'real' for j in jobs)}", flush=True)
    threads = max(1, int(args.ray_cpus_per_task))
    from fedsllm_env.progress import progress_bar

    bar = progress_bar(total=len(jobs), desc="fidelity episodes")
    t0 = time.perf_counter()
    if args.ray_address:
        from train_scripts._ray import ray_map_unordered, ray_session

        with ray_session(args.ray_address):
            mapper = functools.partial(ray_map_unordered, num_cpus=args.ray_cpus_per_task)
            for _, rec in mapper(run_fidelity_job, [(j, threads) for j in jobs]):
                records.append(rec)
                bar.update(1)
    else:
        for job in jobs:
            records.append(run_fidelity_job(job, threads))
            bar.update(1)
    bar.close()
    rows = fidelity_rows(records)
    print_table(rows)
    result = {"command": command, "rows": rows, "episodes": records, "wall_s": time.perf_counter() - t0,
              "target_error": TARGET_ERROR, "config": cfg, "target_val_loss": cal.target_val_loss,
              "real_from": args.real_from or None}
    if args.out:
        write_json(args.out, result)
        print(f"written to {args.out}")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (``fedsllm fidelity``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from train_scripts._checks import help_description

    args = tyro.cli(Args, args=argv, prog="fedsllm fidelity", description=help_description(__doc__))
    with contextlib.suppress(BrokenPipeError):
        run(args, command=shlex.join(["fedsllm", "fidelity", *argv]))


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("fidelity")

"""``fedsllm calibrate``: measure E(r, c) and the loss curves with real split-federated LoRA training.

Every (rank, split, partition, seed) of the grid is one independent training run of ``--max-rounds``
rounds at a fixed cut and rank. Without ``--ray-address`` the runs go one after another in this process;
with it each run is one Ray task reserving ``--threads`` CPUs (and ``--gpus-per-run`` of a GPU when
``model.device`` is cuda): ``local`` starts Ray on this machine, ``auto`` joins the cluster started here
with ``ray start --head``, ``ray://host:port`` joins a remote one. Each run's record is written
atomically as soon as it finishes, next to the table (``<out stem>.runs/``); re-running the same command
skips finished runs, so a killed sweep loses only the runs in flight. The merged table (schema v2, see
``fedsllm_env/calibration.py``) is identical, loss for loss, whichever way the runs were executed.

The default ``--out`` is ``runs/calibration/<backbone>-<settings digest>/calibration.json``: the same
settings land in the same folder (so a plain re-run resumes), and nothing is ever written inside the
installed package; to ship a new table, copy the finished file to ``fedsllm_env/data/calibration.json``.

Time budget: about runs x max_rounds x (seconds per round) / (parallel runs); the default grid is the
config's ranks (5 by default) x 3 splits x 2 partitions x 2 seeds = 60 runs of 60 rounds.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, Sequence

import tyro

from fedsllm_env.atomic import atomic_write_json
from fedsllm_env.calibration import (Calibration, fit_progress_model, load_calibration, load_calibration_from_dict,
                                     progress_model_to_json)
from fedsllm_env.errors import FedsLLMError, UsageError
from fedsllm_env.schedules import CANDIDATE_SCHEDULES, DESIGNED_PROFILES, DESIGNED_SCHEDULES, HELD_OUT_PROFILES, \
    parse_profile, parse_schedule
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.presets import with_preset
from train_scripts._checks import help_description

__all__ = ["Args", "main", "run", "default_out"]


@dataclass
class Args:
    """Measure E(r, c) and validation-loss curves with real split-federated training (one run per grid cell and seed)."""

    out: str = ""
    """Merged calibration JSON ("" = runs/calibration/<backbone>-<settings digest>/calibration.json; re-running resumes)."""
    config: str = ""
    """JSON/YAML file of nested config overrides (backbone, training, wireless.num_clients, ...)."""
    preset: str = ""
    """Scenario preset (fedsllm_env.presets.PRESETS) under --config ("" = none)."""
    ranks: tuple[int, ...] = ()
    """LoRA ranks to measure (empty = the config's model.ranks: the surrogate needs every configured rank)."""
    splits: tuple[int, ...] = ()
    """Cut indices c to measure (empty = 1, L//2 and L-1 of the backbone)."""
    partitions: tuple[Literal["iid", "dirichlet"], ...] = ("iid", "dirichlet")
    """Data partitions across clients (dirichlet uses training.dirichlet_alpha)."""
    seeds: tuple[int, ...] = (0, 1)
    """Training seeds (adapter init, data order) per cell."""
    max_rounds: int = 60
    """Rounds per run: the horizon; a run not at the target by then is censored."""
    learning_rate: float = 0.0
    """AdamW learning rate of the LoRA parameters (0 = the config's training.learning_rate)."""
    local_iterations: int = 0
    """Local iterations I per round (0 = the config's training.local_iterations)."""
    target_fraction: float = 0.9
    """Target = where the best configuration completed this share of its loss reduction over the horizon."""
    target_val_loss: float = 0.0
    """Explicit target validation loss (0 = the --target-fraction rule)."""
    threads: int = 1
    """torch threads per run (= CPUs each Ray task reserves; results are bit-identical for a given value)."""
    ray_address: str = ""
    """"" = sequential in this process; "local" (start Ray here), "auto" or "ray://host:port" (join a cluster)."""
    ray_num_cpus: int = 0
    """CPUs a --ray-address local instance offers (0 = all of this machine's)."""
    gpus_per_run: float = 0.5
    """GPU fraction each Ray task reserves when model.device is cuda (ignored on CPU)."""
    show: str = ""
    """Print the E(r, c) tables of this existing calibration JSON and exit (nothing trained; "" = run the sweep)."""
    schedules: tuple[str, ...] = ()
    """Switch schedules measured beside the grid to fit the surrogate's switch model: "designed" (the package's set,
    fedsllm_env.schedules.DESIGNED_SCHEDULES), "candidates" (CANDIDATE_SCHEDULES, not in the shipped fit) and/or
    schedules such as "c1r64x8;c1r8" (empty = none)."""
    profiles: tuple[str, ...] = ()
    """Heterogeneous profiles (a cut and a rank per client) measured beside the grid: "designed" and/or "held-out"
    (fedsllm_env.schedules.DESIGNED_PROFILES / HELD_OUT_PROFILES) and/or profiles such as "c1r64.16.16.4.4@svd"
    (empty = none); they run with the schedules' seeds and partitions."""
    schedule_seeds: tuple[int, ...] = ()
    """Seeds of the schedule and profile runs (empty = --seeds)."""
    schedule_partitions: tuple[Literal["iid", "dirichlet"], ...] = ("iid",)
    """Partitions of the schedule runs."""
    refit: str = ""
    """Refit the surrogate's progress model of this existing calibration JSON and write it to --out (nothing trained)."""
    recheck: str = ""
    """Re-run a short prefix of one run of this calibration JSON and print how far it lands from the stored curve."""
    recheck_run: tuple[int, int, str, int] = (64, 1, "iid", 0)
    """The run --recheck re-runs: rank, split, partition, seed."""
    recheck_rounds: int = 3
    """Rounds --recheck re-runs."""


def _load_overrides(path: str) -> dict:
    """Nested overrides from a JSON or YAML ``--config`` file ("" = none)."""
    from train_scripts._common import load_overrides_file

    return load_overrides_file(path)


def _config(args: Args) -> FedsLLMConfig:
    cfg = FedsLLMConfig.from_dict(with_preset(args.preset, _load_overrides(args.config)))
    changes = {}
    if args.learning_rate:
        changes["learning_rate"] = args.learning_rate
    if args.local_iterations:
        changes["local_iterations"] = args.local_iterations
    return cfg.replace(training=cfg.training.replace(**changes)) if changes else cfg


def _check_args(args: Args) -> None:
    """Reject bad flag values before anything is loaded or written (:class:`UsageError`: exit 2, one line)."""
    if not 0.0 < args.target_fraction <= 1.0:
        raise UsageError(f"--target-fraction must be in (0, 1], got {args.target_fraction}")
    if not (math.isfinite(args.target_val_loss) and args.target_val_loss >= 0):
        raise UsageError(f"--target-val-loss must be >= 0 (0 = the fraction rule), got {args.target_val_loss}")
    if args.learning_rate < 0 or not math.isfinite(args.learning_rate):
        raise UsageError(f"--learning-rate must be > 0 (0 = the config's), got {args.learning_rate}")
    if args.local_iterations < 0:
        raise UsageError(f"--local-iterations must be >= 1 (0 = the config's), got {args.local_iterations}")
    if args.ray_num_cpus < 0:
        raise UsageError(f"--ray-num-cpus must be >= 0 (0 = all), got {args.ray_num_cpus}")
    if not 0.0 < args.gpus_per_run <= 1.0:
        raise UsageError(f"--gpus-per-run must be in (0, 1], got {args.gpus_per_run}")
    if args.recheck_rounds < 1:
        raise UsageError(f"--recheck-rounds must be >= 1, got {args.recheck_rounds}")
    from fedsllm_env.splitfed.calibrate import check_grid

    try:
        check_grid(list(args.ranks) or [1], list(args.splits) or [1], list(args.partitions), list(args.seeds),
                   args.max_rounds, args.threads)
        if args.schedule_seeds:
            check_grid([1], [1], list(args.schedule_partitions), list(args.schedule_seeds), args.max_rounds,
                       args.threads)
        _schedules(args)
        _profiles(args)
    except ValueError as e:
        raise UsageError(str(e)) from e


def _schedules(args: Args) -> list[str]:
    """--schedules with "designed" expanded, each checked (UsageError naming a bad one)."""
    out: list[str] = []
    for text in args.schedules:
        for item in {"designed": DESIGNED_SCHEDULES, "candidates": CANDIDATE_SCHEDULES}.get(text, (text,)):
            text_norm = parse_schedule(item).text
            if text_norm not in out:
                out.append(text_norm)
    return out


def _profiles(args: Args) -> list[str]:
    """--profiles with "designed" / "held-out" expanded, each checked (UsageError naming a bad one)."""
    named = {"designed": DESIGNED_PROFILES, "held-out": HELD_OUT_PROFILES}
    out: list[str] = []
    for text in args.profiles:
        for item in named.get(text, (text,)):
            text_norm = parse_profile(item).text
            if text_norm not in out:
                out.append(text_norm)
    return out


def _engine_checked(cfg: FedsLLMConfig, threads: int) -> int:
    """Build the engine once (data, backbone, device) before any folder is made; its errors become one line."""
    from fedsllm_env.splitfed.calibrate import _n_layer

    try:
        return _n_layer(cfg, threads)
    except FedsLLMError:
        raise
    except (ValueError, OSError, TypeError) as e:  # e.g. a device torch does not have, a bad data file
        raise UsageError(f"cannot train with this configuration: {type(e).__name__}: {e}") from e


def default_out(cfg: FedsLLMConfig, max_rounds: int, threads: int, root: str | Path = "runs") -> Path:
    """``<root>/calibration/<backbone>-<settings digest>/calibration.json`` (same settings, same folder)."""
    from fedsllm_env.splitfed.calibrate import run_digest

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(cfg.model.backbone).name or "backbone")
    return Path(root) / "calibration" / f"{name}-{run_digest(cfg.to_dict(), max_rounds, threads)}" / "calibration.json"


def _device(cfg: FedsLLMConfig) -> str:
    return str(getattr(cfg.model, "device", "cpu"))


def run(args: Args, command: str = "fedsllm calibrate") -> Path:
    """Run the sweep described by ``args``; print the table; return the path of the merged calibration.

    With ``args.show`` only print the tables of that existing file and return its path."""
    if args.show:
        cal = load_calibration(args.show)
        print_summary(cal)
        return Path(cal.path)
    _check_args(args)
    if args.refit:
        return refit(args.refit, args.out)
    if args.recheck:
        recheck(args.recheck, args.recheck_run, args.recheck_rounds)
        return Path(args.recheck)
    from fedsllm_env.splitfed.calibrate import calibrate, check_out_path  # torch: only when training

    cfg = _config(args)
    ranks = list(args.ranks) or list(cfg.model.ranks)
    out = check_out_path(args.out or default_out(cfg, args.max_rounds, args.threads), create=False)
    n_layer = _engine_checked(cfg, args.threads)
    bad = [c for c in args.splits if c > n_layer - 1]
    if bad:
        raise UsageError(f"--splits {bad} beyond L - 1 = {n_layer - 1} (this backbone has L = {n_layer} blocks)")
    for text in _schedules(args):
        bad = sorted({c for c, _, _ in parse_schedule(text).phases if c > n_layer - 1})
        if bad:
            raise UsageError(f"--schedules {text!r}: cut(s) {bad} beyond L - 1 = {n_layer - 1} (this backbone has "
                             f"L = {n_layer} blocks)")
    print(f"calibration -> {out}", flush=True)
    kwargs = dict(cfg=cfg, ranks=ranks, splits=args.splits, partitions=args.partitions, seeds=args.seeds,
                  max_rounds=args.max_rounds, out_path=out, threads=args.threads,
                  target_val_loss=args.target_val_loss or None, target_fraction=args.target_fraction,
                  command=command, log=lambda line: print(line, flush=True), schedules=_schedules(args),
                  schedule_seeds=list(args.schedule_seeds) or None,
                  schedule_partitions=list(args.schedule_partitions), profiles=_profiles(args))
    if args.ray_address:
        from train_scripts._ray import ray_map_unordered, ray_session

        gpus = args.gpus_per_run if _device(cfg).startswith("cuda") else 0.0
        with ray_session(args.ray_address, num_cpus=args.ray_num_cpus or None):
            calibrate(**kwargs, mapper=partial(ray_map_unordered, num_cpus=args.threads, num_gpus=gpus),
                      extra_settings={"ray_address": args.ray_address, "gpus_per_run": gpus})
    else:
        calibrate(**kwargs)
    print_summary(load_calibration(out))
    print(f"written to {out}")
    return out


def refit(path: str, out: str) -> Path:
    """Refit the progress model of the table ``path`` (curves, noise and, from its schedules, the switch model)
    and write the table with the new ``progress_model`` to ``out``."""
    if not out:
        raise UsageError("--refit needs --out (the refitted table is written there; the input is never changed)")
    from fedsllm_env.splitfed.calibrate import check_out_path

    target = check_out_path(out, create=False)
    if target.resolve() == Path(path).resolve():
        raise UsageError(f"--out {out} is the --refit input; write the refitted table elsewhere")
    cal = load_calibration(path)
    raw = dict(cal.raw)
    raw.pop("progress_model", None)
    fitted = load_calibration_from_dict(raw, path)
    raw["progress_model"] = progress_model_to_json(fit_progress_model(fitted))
    check_out_path(target)
    atomic_write_json(target, raw)
    print_summary(load_calibration(target))
    print(f"written to {target}")
    return target


def recheck(path: str, run: tuple[int, int, str, int], rounds: int) -> dict:
    """Re-run a prefix of one run of the table ``path`` and print the difference from its stored curve."""
    from fedsllm_env.splitfed.calibrate import recheck_cell

    cal = load_calibration(path)
    result = recheck_cell(cal.raw, *run, rounds=rounds)
    print(f"re-ran rank {run[0]}, split {run[1]}, {run[2]}, seed {run[3]} for {result['rounds']} round(s) with the "
          f"settings recorded in {path}")
    print(f"backbone recorded {result['backbone_recorded']}; now {result['backbone_now']}")
    print(f"initial val loss {result['initial']:.6f} (stored {result['stored_initial']:.6f})")
    for t, (a, b) in enumerate(zip(result["curve"], result["stored_curve"]), start=1):
        print(f"round {t}: {a:.6f} (stored {b:.6f}, diff {a - b:+.2e})")
    print(f"max |difference| {result['max_abs_diff']:.3g}")
    return result


def print_summary(cal: Calibration) -> None:
    """Print target, E(r, c) per cell with its seed spread and censoring, and the final losses."""
    rule = cal.raw.get("target_rule", {})
    best = rule.get("best")
    how = (f"{rule.get('fraction', 0) * 100:.0f} % of the reduction of rank {best['rank']}, split {best['split']}, "
           f"{best['partition']}" if best else "given")
    print(f"initial validation loss {cal.initial_val_loss:.4f}; target {cal.target_val_loss:.4f} ({how}); "
          f"horizon {cal.horizon_rounds} rounds")
    timing = cal.raw.get("settings", {}).get("timing") or {}
    if timing:
        wall = timing.get("sweep_wall_s")
        wall_text = "n/a (this table was merged from runs finished earlier)" if wall is None else f"{wall:.0f} s"
        print(f"sweep wall time {wall_text} (runs' wall times summed "
              f"{timing.get('run_wall_s_sum', math.nan):.0f} s, {timing.get('mean_round_wall_s', math.nan):.2f} s "
              f"per round on average; {cal.raw.get('settings', {}).get('ray_address') or 'sequential'})")
    print("| partition | split | rank | E (rounds to target) | seed spread (std) | censored | final val loss |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in sorted(cal.cell_table(), key=lambda r: (r["partition"], r["split"], r["rank"])):
        e = "censored" if math.isinf(row["mean_rounds"]) else f"{row['mean_rounds']:.1f}"
        std = "-" if math.isnan(row["std_rounds"]) else f"{row['std_rounds']:.1f}"
        print(f"| {row['partition']} | {row['split']} | {row['rank']} | {e} | {std} | "
              f"{row['censored']}/{row['seeds']} | {row['final_val_loss']:.4f} ± {row['final_val_loss_std']:.4f} |")
    print()
    print_grid(cal)
    print_progress_model(cal)
    print_profiles(cal)


def print_profiles(cal: Calibration) -> None:
    """The measured heterogeneous profiles against the surrogate's price of them, under every candidate form of
    the effective decision (the shipped one first); "held-out" rows were not used to choose the form."""
    if not cal.profiles:
        return
    import numpy as np

    from fedsllm_env.convergence import PROFILE_FORM, PROFILE_FORMS

    fit = cal.raw.get("progress_model", {}).get("profile_fit", {})
    print()
    fitted = "; ".join(f"{rule} {cal.profile_slowdown(rule):.3f}" + (
        f" (fitted to {fit[rule]['profiles']} designed profiles, curve rmse {fit[rule]['rmse']:.4f}, without it "
        f"{fit[rule]['rmse_no_slowdown']:.4f})" if rule in fit else "") for rule in ("zero_pad", "svd"))
    print(f"heterogeneous profiles (K per client; E = rounds to the target; surrogate: the round its clean curve "
          f"reaches it, form {PROFILE_FORM!r}, rank-spread slowdown {fitted}; {cal.horizon_rounds + 1} = not within "
          "the horizon)")
    print("| profile | partition | set | measured E per seed | measured mean | surrogate E | error | table E |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for row in cal.profile_report():
        seeds = ", ".join("censored" if h is None else str(h) for h in row["measured"])
        print(f"| `{row['profile']}` | {row['partition']} | {'held-out' if row['held_out'] else 'designed'} | "
              f"{seeds} | {row['measured_mean']:.1f} | {row['episode_e']:.0f} | {100 * row['error']:+.1f} % | "
              f"{row['table_e']:.1f} |")
    print()
    print("| form | slowdown | mean abs error, designed | mean abs error, held-out | within 5 %, all |")
    print("|---|---:|---:|---:|---:|")
    variants = [(PROFILE_FORM, None)] + [(f, 0.0) for f in PROFILE_FORMS]
    for form, slowdown in variants:
        rows = cal.profile_report(form, slowdown)
        des = [abs(r["error"]) for r in rows if not r["held_out"]]
        held = [abs(r["error"]) for r in rows if r["held_out"]]
        within = sum(abs(r["error"]) <= 0.05 for r in rows)
        shown = "fitted (shipped)" if slowdown is None else f"{slowdown:.3f}"
        print(f"| {form} | {shown} | {100 * np.mean(des) if des else math.nan:.1f} % | "
              f"{100 * np.mean(held) if held else math.nan:.1f} % | {within}/{len(rows)} |")


def print_progress_model(cal: Calibration) -> None:
    """The surrogate's fitted switch model and noise (fedsllm_env.convergence), with the fit's error."""
    fit = cal.raw.get("progress_model", {}).get("switch_fit", {})
    print()
    if fit.get("schedules"):
        print(f"switch model fitted to {fit['schedules']} measured schedules ({fit['points']} points): rmse "
              f"{fit['rmse']:.4f} (memoryless replay {fit['rmse_memoryless']:.4f})")
    else:
        print("switch model: none fitted (no measured schedules): switches replay the fixed curves memorylessly")
    print("  " + ", ".join(f"{k} {v:.3f}" for k, v in cal.switch_model.to_dict().items()))
    for part in cal.partitions:
        noise = cal.noise_model(part)
        print(f"observation noise ({part}): AR(1) std {noise.std:.4f}, lag-1 correlation {noise.phi:.3f}")
    if cal.schedules:
        print_schedules(cal)


def print_schedules(cal: Calibration) -> None:
    """Each measured schedule's rounds to the target: per seed, of the seed-mean curve, and as the fitted switch
    model and the memoryless replay predict them (clean curves, no observation noise)."""
    import numpy as np

    from fedsllm_env.calibration import rounds_to_target
    from fedsllm_env.convergence import SwitchModel, simulate_schedule
    from fedsllm_env.schedules import parse_schedule

    def hit(curve) -> str:
        h = rounds_to_target(curve, cal.target_val_loss)
        return "never" if h is None else str(h)

    print()
    print("| schedule | partition | rounds to target per seed | seed-mean curve | switch model | memoryless replay |")
    print("|---|---|---|---:|---:|---:|")
    for entry in cal.schedules:
        curves = entry["val_loss_curves"]
        horizon = min(len(c) for c in curves)
        tables = cal.progress_tables(cal.ranks, entry["partition"])
        decisions = parse_schedule(entry["schedule"]).decisions(horizon)
        fitted = simulate_schedule(tables, cal.switch_model, cal.initial_val_loss, decisions)[0]
        plain = simulate_schedule(tables, SwitchModel(), cal.initial_val_loss, decisions)[0]
        mean = np.mean([c[:horizon] for c in curves], axis=0)
        print(f"| {entry['schedule']} | {entry['partition']} | {', '.join(hit(c) for c in curves)} | {hit(mean)} | "
              f"{hit(fitted)} | {hit(plain)} |")


def print_grid(cal: Calibration) -> None:
    """E(r, c) as one row per (partition, split) and one column per rank: "mean ± seed std" (ddof 1), or
    "censored k/n" where k of the cell's n runs never reached the target within the horizon."""
    rows = {(r["partition"], r["split"], r["rank"]): r for r in cal.cell_table()}
    print("| partition | split | " + " | ".join(f"r = {r}" for r in cal.ranks) + " |")
    print("|---|---:|" + "---:|" * len(cal.ranks))
    for part in sorted(cal.partitions):
        for c in cal.splits:
            cells = []
            for r in cal.ranks:
                row = rows[(part, c, r)]
                cells.append(f"censored {row['censored']}/{row['seeds']}" if row["censored"]
                             else f"{row['mean_rounds']:.1f} ± {row['std_rounds']:.1f}")
            print(f"| {part} | {c} | " + " | ".join(cells) + " |")


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (``fedsllm calibrate``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = tyro.cli(Args, args=argv, prog="fedsllm calibrate", description=help_description(__doc__))
    run(args, command=shlex.join(["fedsllm", "calibrate", *argv]))


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("calibrate")

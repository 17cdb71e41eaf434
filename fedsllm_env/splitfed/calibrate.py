"""Measure E(r), the number of rounds to a target validation loss per LoRA rank, with real split-fed training.

For every rank r and seed, :func:`calibrate` resets the engine (fresh rank-r adapters, B = 0) and runs
``max_rounds`` rounds at a fixed cut, recording the validation loss after every round. The target loss,
unless given, is chosen by this deterministic rule::

    target = max over (rank, seed) of (the best validation loss that run reached)

i.e. the loosest of the per-run best losses, so EVERY run reaches it within ``max_rounds``. Then
``rounds_to_target`` is the first (1-based) round whose validation loss <= target (null if never, only
possible with an explicit target), and E(r) ~ a + b r^-c is fitted with
:func:`fedsllm_env.calibration.fit_rounds_curve` to the per-rank mean over seeds (a run that never reached
the target counts as ``max_rounds + 1``, the loader's convention). The JSON schema is documented in
:mod:`fedsllm_env.calibration`.

Usage::

    python -m fedsllm_env.splitfed.calibrate [--out PATH] [--ranks 1,2,4,8,16] [--seeds 0,1]
        [--max-rounds 60] [--split 1] [--target-val-loss X]
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fedsllm_env.calibration import atomic_write_json, fit_rounds_curve
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.splitfed.engine import SplitFedEngine

__all__ = ["calibrate", "choose_target", "rounds_to_target", "main", "DEFAULT_OUT", "DEFAULT_SEEDS",
           "DEFAULT_MAX_ROUNDS"]

DEFAULT_OUT = str(Path(__file__).resolve().parents[1] / "data" / "calibration.json")
DEFAULT_SEEDS = (0, 1)
DEFAULT_MAX_ROUNDS = 60


def choose_target(curves: dict[int, list[list[float]]]) -> float:
    """max over (rank, seed) of the best validation loss of that run (every run reaches it)."""
    return float(max(min(c) for runs in curves.values() for c in runs))


def rounds_to_target(curve: Sequence[float], target: float) -> int | None:
    """First 1-based round whose validation loss is <= ``target``; None if never."""
    for i, v in enumerate(curve):
        if v <= target:
            return i + 1
    return None


def calibrate(cfg: FedsLLMConfig, ranks: Sequence[int], seeds: Sequence[int], max_rounds: int, split: int,
              out_path: str | Path | None, target_val_loss: float | None = None, progress: bool = True,
              command: str | None = None, engine: SplitFedEngine | None = None) -> dict:
    """Run the calibration and write it (atomically) to ``out_path`` (None = do not write).

    Args:
        cfg: Configuration (backbone, data, K, I, b, n, learning rate).
        ranks: LoRA ranks to measure.
        seeds: Training seeds (adapter init, data order) per rank.
        max_rounds: Rounds per run.
        split: Fixed cut index used by every run.
        out_path: Where the JSON goes.
        target_val_loss: Target loss; None = :func:`choose_target`.
        progress: Show a tqdm progress bar.
        command: Command line recorded in the file (default: a python-call description).
        engine: A prebuilt engine for ``cfg`` (tests); default builds one.

    Returns:
        The calibration dict that was written.
    """
    ranks = [int(r) for r in ranks]
    seeds = [int(s) for s in seeds]
    if not ranks or not seeds or max_rounds < 1:
        raise ValueError(f"need >= 1 rank, >= 1 seed and max_rounds >= 1, got ranks={ranks}, seeds={seeds}, "
                         f"max_rounds={max_rounds}")
    if target_val_loss is not None and not target_val_loss > 0:
        raise ValueError(f"target_val_loss must be > 0, got {target_val_loss}")
    t_start = time.perf_counter()
    engine = engine if engine is not None else SplitFedEngine(cfg, progress=progress)
    from tqdm.auto import tqdm

    curves: dict[int, list[list[float]]] = {}
    train_curves: dict[int, list[list[float]]] = {}
    initial: list[float] = []
    round_walls: list[float] = []
    bar = tqdm(total=len(ranks) * len(seeds) * max_rounds, desc="calibrating E(r)", disable=not progress)
    for r in ranks:
        curves[r], train_curves[r] = [], []
        for s in seeds:
            initial.append(engine.reset(s, split=split, rank=r))
            vals, trains = [], []
            for _ in range(max_rounds):
                out = engine.run_round(split, r)
                vals.append(out.val_loss)
                trains.append(out.train_loss)
                round_walls.append(out.measured["wall_s"])
                bar.update(1)
                bar.set_postfix(rank=r, seed=s, val=f"{out.val_loss:.3f}")
            curves[r].append(vals)
            train_curves[r].append(trains)
    bar.close()
    target = choose_target(curves) if target_val_loss is None else float(target_val_loss)
    ranks_out: dict[str, dict] = {}
    mean_rounds: list[float] = []
    for r in ranks:
        hits = [rounds_to_target(c, target) for c in curves[r]]
        mean = float(np.mean([h if h is not None else max_rounds + 1 for h in hits]))
        mean_rounds.append(mean)
        ranks_out[str(r)] = {"rounds_to_target": hits, "mean_rounds_to_target": mean,
                             "val_loss_curves": curves[r], "train_loss_curves": train_curves[r]}
    fit = fit_rounds_curve(np.asarray(ranks, dtype=float), np.asarray(mean_rounds))
    if command is None:
        command = (f"fedsllm_env.splitfed.calibrate.calibrate(ranks={ranks}, seeds={seeds}, "
                   f"max_rounds={max_rounds}, split={split}, target_val_loss={target_val_loss})")
    result = {
        "version": 1,
        "command": command,
        "settings": {
            "model": cfg.model.to_dict(), "training": cfg.training.to_dict(),
            "num_clients": cfg.wireless.num_clients, "seeds": seeds, "max_rounds": int(max_rounds),
            "split": int(split), "target_rule": "given" if target_val_loss is not None else
            "max over (rank, seed) of the best validation loss reached",
            "torch": torch.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "mean_round_wall_s": float(np.mean(round_walls)), "total_wall_s": time.perf_counter() - t_start,
        },
        "model_shape": engine.shape.to_dict(),
        "target_val_loss": target,
        "initial_val_loss": float(np.mean(initial)),
        "ranks": ranks_out,
        "fit": fit,
    }
    if out_path is not None:
        atomic_write_json(out_path, result)
    return result


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m fedsllm_env.splitfed.calibrate``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = FedsLLMConfig()
    parser = argparse.ArgumentParser(prog="python -m fedsllm_env.splitfed.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT, help="output JSON (default: the shipped table)")
    parser.add_argument("--ranks", type=_int_list, default=list(cfg.model.ranks), help="e.g. 1,2,4,8,16")
    parser.add_argument("--seeds", type=_int_list, default=list(DEFAULT_SEEDS), help="e.g. 0,1")
    parser.add_argument("--max-rounds", type=int, default=DEFAULT_MAX_ROUNDS)
    parser.add_argument("--split", type=int, default=cfg.model.initial_split)
    parser.add_argument("--target-val-loss", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for this process (default 1: on a small shared CPU, "
                             "more threads contend badly; results are deterministic for a given value)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)  # the command owns its process; the engine never changes threads
    command = shlex.join(["python", "-m", "fedsllm_env.splitfed.calibrate", *argv])
    res = calibrate(cfg, args.ranks, args.seeds, args.max_rounds, args.split, args.out, args.target_val_loss,
                    progress=not args.no_progress, command=command)
    print(f"target validation loss {res['target_val_loss']:.4f} (initial {res['initial_val_loss']:.4f})")
    for r, entry in res["ranks"].items():
        print(f"rank {r:>3}: rounds to target {entry['rounds_to_target']} (mean {entry['mean_rounds_to_target']:.1f})")
    f = res["fit"]
    print(f"fit E(r) = {f['a']:.3f} + {f['b']:.3f} r^-{f['c']:.3f}  (sse {f['sse']:.3g}); written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark the alternating optimizer: solve time / iterations vs size, and optimality gaps.

Prints two tables:

1. solve time (mean over seeds) and iterations of :class:`baselines.AlternatingOptimizer` for K clients
   and M = N = f * K subchannels, next to the paper's plain greedy (no local-search refinement) and the
   ratio of their objectives;
2. the optimality-gap distribution (min / median / mean / max of T / T_exact - 1) against the
   brute-force optimum on small instances, for the optimizer, the plain greedy variant and the
   conventional schemes.

E(r) (and by default the model shape) come from the shipped calibration when it exists
(``--calibration`` for another file); otherwise a clearly labelled placeholder ``20 + 30 r^-0.8`` and
the config's tiny GPT-2 are used (the numbers then only show the solver's behaviour).

Run from the repository root as ``python -m train_scripts.benchmark_optimizer`` (or as a script once
the package is installed so that ``baselines`` resolves to this folder).

Usage::

    python train_scripts/benchmark_optimizer.py --quick
    python train_scripts/benchmark_optimizer.py --clients 5 10 20 50 --factors 2 4 --seeds 3
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Sequence

import numpy as np

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.profile import ModelShape
from baselines import SCHEMES, AlternatingOptimizer, exact_optimum, random_problem, sized_config
from train_scripts.seeding import seed_everything


def _rounds_needed(path: str | None) -> tuple[Callable[[int], float], str, ModelShape | None]:
    from fedsllm_env.calibration import load_calibration
    from fedsllm_env.errors import CalibrationError

    try:
        cal = load_calibration(path)
        return cal.rounds_needed, f"calibration {cal.path}", cal.shape
    except CalibrationError as e:
        if path:
            raise
        return (lambda r: 20.0 + 30.0 * float(r) ** -0.8), f"PLACEHOLDER E(r) = 20 + 30 r^-0.8 ({e})", None


def _shape(name: str, cfg: FedsLLMConfig, calibrated: ModelShape | None) -> ModelShape:
    if name == "auto":
        name = "calibration" if calibrated is not None else "tiny"
    if name == "calibration":
        if calibrated is None:
            raise ValueError("--shape calibration needs a calibration file")
        return calibrated
    if name == "tiny":
        m = cfg.model
        return ModelShape(n_layer=m.tiny_n_layer, n_embd=m.tiny_n_embd, n_head=m.tiny_n_head, vocab_size=500,
                          n_positions=128)
    if name == "gpt2":
        return ModelShape(n_layer=12, n_embd=768, n_head=12, vocab_size=50257)
    raise ValueError(f"unknown shape {name!r}; use 'auto', 'calibration', 'tiny' or 'gpt2'")


def _stats(x: Sequence[float]) -> str:
    a = np.asarray(x, dtype=float) * 100.0
    return f"{a.min():8.3f} {np.median(a):8.3f} {a.mean():8.3f} {a.max():8.3f}"


def timing_table(clients: Sequence[int], factors: Sequence[int], seeds: int, shape: ModelShape,
                 rounds_needed: Callable[[int], float]) -> None:
    """Print solve time and iterations vs K and M = N = f K."""
    print("\n== Solve time vs size (mean over seeds; 'greedy' = paper's greedy without our refinement) ==")
    print(f"{'K':>4} {'M=N':>5} {'time_s':>9} {'iters':>6} {'T_s':>10} | {'greedy time_s':>13} {'iters':>6} "
          f"{'T_greedy/T':>10}")
    for k in clients:
        for f in factors:
            cfg = sized_config(k, f * k, f * k)
            rows = []
            for seed in range(seeds):
                problem = random_problem(seed, cfg, shape, rounds_needed)
                t0 = time.perf_counter()
                full = AlternatingOptimizer().solve(problem)
                t1 = time.perf_counter()
                plain = AlternatingOptimizer(refine=False).solve(problem)
                t2 = time.perf_counter()
                rows.append((t1 - t0, full.n_iter, full.objective_s, t2 - t1, plain.n_iter,
                             plain.objective_s / full.objective_s))
            r = np.asarray(rows)
            print(f"{k:>4} {f * k:>5} {r[:, 0].mean():>9.3f} {r[:, 1].mean():>6.1f} {r[:, 2].mean():>10.4g} | "
                  f"{r[:, 3].mean():>13.3f} {r[:, 4].mean():>6.1f} {r[:, 5].mean():>10.4f}", flush=True)


def gap_table(k: int, m: int, n: int, seeds: int, shape: ModelShape, rounds_needed: Callable[[int], float],
              **wireless: float) -> None:
    """Print the optimality-gap distribution against the exact optimum."""
    cfg = sized_config(k, m, n, **wireless)
    methods: dict[str, list[float]] = {"optimizer": [], "optimizer (no refinement)": []}
    methods.update({name: [] for name in SCHEMES})
    exact_s = 0.0
    for seed in range(seeds):
        problem = random_problem(seed, cfg, shape, rounds_needed)
        t0 = time.perf_counter()
        best = exact_optimum(problem).objective_s
        exact_s += time.perf_counter() - t0
        methods["optimizer"].append(AlternatingOptimizer().solve(problem).objective_s / best - 1)
        methods["optimizer (no refinement)"].append(
            AlternatingOptimizer(refine=False).solve(problem).objective_s / best - 1)
        for name, scheme in SCHEMES.items():
            methods[name].append(scheme(problem, np.random.default_rng(seed)).objective_s / best - 1)
    extra = ", ".join(f"{key}={val}" for key, val in wireless.items()) or "default powers"
    print(f"\n== Optimality gap (%) vs exact optimum: K={k}, M={m}, N={n}, {seeds} seeds, {extra} "
          f"(exact solve {exact_s / seeds:.3f} s/instance) ==")
    print(f"{'method':<26} {'min':>8} {'median':>8} {'mean':>8} {'max':>8}")
    for name, gaps in methods.items():
        print(f"{name:<26} {_stats(gaps)}")


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="fedsllm benchmark-optimizer", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few seeds (about a minute)")
    parser.add_argument("--clients", type=int, nargs="+", default=[5, 10, 20, 50], help="values of K")
    parser.add_argument("--factors", type=int, nargs="+", default=[2, 4], help="M = N = factor * K")
    parser.add_argument("--seeds", type=int, default=3, help="instances per size for timing")
    parser.add_argument("--gap-seeds", type=int, default=30, help="instances per gap table")
    parser.add_argument("--shape", default="auto",
                        help="'calibration' (the calibrated model's shape), 'tiny' (the config's tiny GPT-2 with a "
                             "500-token vocabulary), 'gpt2' (124M) or 'auto' (calibration if present, else tiny)")
    parser.add_argument("--calibration", default=None, help="calibration JSON for E(r) (default: shipped)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the global RNGs (instances draw from their own seeds 0, 1, ...)")
    args = parser.parse_args(argv)
    for flag in ("clients", "factors"):
        if min(getattr(args, flag)) < 1:
            parser.error(f"--{flag} values must be >= 1, got {getattr(args, flag)}")
    for flag in ("seeds", "gap_seeds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    seed_everything(args.seed)
    if args.quick:
        args.clients, args.factors, args.seeds, args.gap_seeds = [5, 10, 20], [2], 2, 10
    cfg = FedsLLMConfig()
    rounds_needed, source, calibrated_shape = _rounds_needed(args.calibration)
    shape = _shape(args.shape, cfg, calibrated_shape)
    print(f"model shape: {shape.to_dict()}")
    print(f"E(r): {source}")
    print(f"E(r) at ranks {cfg.model.ranks}: {[round(rounds_needed(r), 3) for r in cfg.model.ranks]}")
    timing_table(args.clients, args.factors, args.seeds, shape, rounds_needed)
    gap_table(3, 4, 4, args.gap_seeds, shape, rounds_needed)
    gap_table(3, 4, 4, args.gap_seeds, shape, rounds_needed, total_power_ms_w=0.2, total_power_fs_w=0.15)
    if not args.quick:
        gap_table(3, 5, 4, args.gap_seeds, shape, rounds_needed)


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("benchmark-optimizer")

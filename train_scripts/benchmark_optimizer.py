"""Benchmark the alternating optimizer: solve time / iterations vs size, and optimality gaps.

Prints three parts (``--skip`` leaves any out; ``--hetero`` prints only the heterogeneous optimizer's gap
and timing, :func:`hetero_benchmark`):

1. ``timing``: solve time (wall and process CPU time, mean over seeds; CPU time is the robust figure
   on a shared machine), iterations and chosen split of
   :class:`baselines.AlternatingOptimizer` for K clients and M = N = f * K subchannels, next to the
   paper's plain greedy (no local-search refinement) and the ratio of their objectives;
2. ``schemes``: the optimality-gap distribution (min / median / mean / max of T / T_exact - 1)
   against the brute-force optimum on fixed small sizes, for the optimizer, the plain greedy variant
   and the conventional schemes;
3. ``regimes``: the optimizer's gap distribution over many random small instances per regime
   (default, server-scarce, binding total power, random per-client power; :mod:`baselines.regimes`),
   with progress lines while it runs.

E(r) (and by default the model shape) come from the shipped calibration when it exists
(``--calibration`` for another file); otherwise a clearly labelled placeholder ``20 + 30 r^-0.8`` and
the config's tiny GPT-2 are used (the numbers then only show the solver's behaviour).

Run from the repository root as ``python -m train_scripts.benchmark_optimizer`` (or as a script once
the package is installed so that ``baselines`` resolves to this folder).

Usage::

    python -m train_scripts.benchmark_optimizer --quick
    python -m train_scripts.benchmark_optimizer --clients 5 10 20 50 --factors 2 4 --seeds 3
    python -m train_scripts.benchmark_optimizer --skip timing schemes --instances 500   # 2,000 instances
    python -m train_scripts.benchmark_optimizer --hetero --instances 200 --clients 5 20 50 --seeds 1
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Sequence

import numpy as np

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.profile import ModelShape
from baselines import SCHEMES, AlternatingOptimizer, exact_optimum, random_problem, sized_config
from baselines.problem import Problem
from baselines.regimes import REGIMES, regime_problem
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
                 rounds_needed: Callable[[int], float], server_flops_per_cycle: float | None = None) -> None:
    """Print solve time and iterations vs K and M = N = f K (optionally with another server speed)."""
    base = FedsLLMConfig()
    if server_flops_per_cycle is not None:
        base = base.replace(compute=base.compute.replace(server_flops_per_cycle=float(server_flops_per_cycle)))
    print(f"\n== Solve time vs size (mean over seeds; 'greedy' = paper's greedy without our refinement; server "
          f"{base.compute.server_flops_per_cycle:g} FLOPs/cycle) ==")
    print(f"{'K':>4} {'M=N':>5} {'time_s':>9} {'cpu_s':>9} {'iters':>6} {'T_s':>10} {'split':>5} | "
          f"{'greedy time_s':>13} {'iters':>6} {'T_greedy/T':>10}")
    for k in clients:
        for f in factors:
            cfg = sized_config(k, f * k, f * k, base)
            rows = []
            for seed in range(seeds):
                problem = random_problem(seed, cfg, shape, rounds_needed)
                t0, c0 = time.perf_counter(), time.process_time()
                full = AlternatingOptimizer().solve(problem)
                t1, c1 = time.perf_counter(), time.process_time()
                plain = AlternatingOptimizer(refine=False).solve(problem)
                t2 = time.perf_counter()
                rows.append((t1 - t0, c1 - c0, full.n_iter, full.objective_s, full.decision.split, t2 - t1,
                             plain.n_iter, plain.objective_s / full.objective_s))
            r = np.asarray(rows).mean(axis=0)
            print(f"{k:>4} {f * k:>5} {r[0]:>9.3f} {r[1]:>9.3f} {r[2]:>6.1f} {r[3]:>10.4g} {r[4]:>5.1f} | "
                  f"{r[5]:>13.3f} {r[6]:>6.1f} {r[7]:>10.4f}", flush=True)


def gap_table(k: int, m: int, n: int, seeds: int, shape: ModelShape, rounds_needed: Callable[[int], float],
              **wireless: float) -> None:
    """Print the optimality-gap distribution of the optimizer and the conventional schemes on one size."""
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


def regime_gaps(regimes: Sequence[str], instances: int, shape: ModelShape, rounds_needed: Callable[..., float],
                clients: Sequence[int] = (3, 4), max_subchannels: int = 5, first_seed: int = 0,
                threshold: float = 0.005, progress_every: int = 100) -> dict[str, np.ndarray]:
    """Optimizer gap ``T / T_exact - 1`` on ``instances`` random small instances per regime.

    Prints progress every ``progress_every`` instances, then one row per regime and one over all:
    count, min / median / mean / max gap (%), how many exceed ``threshold``, the worst seed, the share of
    instances whose exact optimum cuts deeper than c = 1, and the mean exact / optimizer solve times.

    Returns:
        Regime -> (instances,) gaps.
    """
    print(f"\n== Optimizer gap (%) vs exact optimum over random small instances: {instances} per regime, "
          f"K in {tuple(clients)}, M, N in [K, {max_subchannels}], seeds {first_seed}..{first_seed + instances - 1} "
          f"(regimes: baselines/regimes.py) ==", flush=True)
    out: dict[str, np.ndarray] = {}
    rows = []
    start = time.perf_counter()
    total = len(regimes) * instances
    done = 0
    for regime in regimes:
        gaps, deep, t_exact, t_opt = [], 0, 0.0, 0.0
        for seed in range(first_seed, first_seed + instances):
            problem = regime_problem(regime, seed, shape, rounds_needed, clients, max_subchannels)
            t0 = time.perf_counter()
            exact = exact_optimum(problem)
            t1 = time.perf_counter()
            found = AlternatingOptimizer().solve(problem)
            t_exact, t_opt = t_exact + t1 - t0, t_opt + time.perf_counter() - t1
            gaps.append(found.objective_s / exact.objective_s - 1.0)
            deep += int(exact.decision.split > 1)
            done += 1
            if progress_every and done % progress_every == 0:
                elapsed = time.perf_counter() - start
                left = elapsed / done * (total - done)
                print(f"  [{done}/{total}] {regime} seed {seed}: worst gap so far in this regime "
                      f"{100 * max(gaps):.3f} %, {elapsed:.0f} s elapsed, ~{left:.0f} s left", flush=True)
        g = np.asarray(gaps)
        out[regime] = g
        rows.append((regime, g, first_seed + int(np.argmax(g)), deep / instances, t_exact / instances,
                     t_opt / instances))
    print(f"{'regime':<14} {'n':>5} {'min':>8} {'median':>8} {'mean':>8} {'max':>8} {f'>{100 * threshold:g}%':>6} "
          f"{'worst seed':>10} {'exact c>1':>9} {'exact s':>8} {'opt s':>8}")
    for regime, g, worst, deep, te, to in rows:
        print(f"{regime:<14} {g.size:>5} {_stats(g)} {int(np.sum(g > threshold)):>6} {worst:>10} {deep:>9.0%} "
              f"{te:>8.3f} {to:>8.3f}")
    every = np.concatenate(list(out.values()))
    print(f"{'all':<14} {every.size:>5} {_stats(every)} {int(np.sum(every > threshold)):>6}")
    return out


HETERO_PLACEHOLDER_E = "20 + 30 r^-0.8"
"""The E(r) of the homogeneous cells in the heterogeneous benchmark (a placeholder: it only drives the solver)."""


def hetero_benchmark(instances: int = 200, clients: Sequence[int] = (5, 20, 50), seeds: int = 1,
                     tiny_clients: Sequence[int] = (2, 3), first_seed: int = 0) -> dict[str, float]:
    """Heterogeneous optimizer (:class:`baselines.hetero_optimizer.HeteroOptimizer`): worst / mean gap against the
    brute force over every per-client profile (exact allocation) on ``instances`` tiny instances, then its solve
    time at K in ``clients`` (M = N = 2K, the config's tiny GPT-2, default and a slow server).

    E of mixed profiles is unmeasured: both parts use :func:`~baselines.hetero_optimizer.e_conservative_stand_in`
    over a placeholder homogeneous E(r) = 20 + 30 r^-0.8, so the numbers describe the solver, not training.

    Tiny instances: the regimes of :mod:`baselines.regimes` in turn (seed i -> regime i mod 4), K in
    ``tiny_clients``, M, N in [K, 4], a 4-block model (cuts 1..3) and ranks (4, 8, 16).

    Returns:
        ``worst_gap``, ``mean_gap``, ``hetero_optima`` (share of instances whose optimum is heterogeneous) and
        ``time_s_K<k>`` (mean over seeds and both servers).
    """
    from baselines.hetero_optimizer import HeteroOptimizer, brute_force_profiles

    def rounds_needed(r: int) -> float:
        return 20.0 + 30.0 * float(r) ** -0.8

    base = FedsLLMConfig()
    tiny_cfg = base.replace(model=base.model.replace(ranks=(4, 8, 16)))
    tiny_shape = ModelShape(n_layer=4, n_embd=base.model.tiny_n_embd, n_head=base.model.tiny_n_head, vocab_size=500,
                            n_positions=128)
    print(f"\n== Heterogeneous optimizer vs brute force over every per-client (cut, rank) profile: {instances} tiny "
          f"instances, K in {tuple(tiny_clients)}, M, N in [K, 4], cuts 1..3, ranks (4, 8, 16), seeds "
          f"{first_seed}..{first_seed + instances - 1}; E = e_conservative_stand_in over a placeholder "
          f"E(r) = {HETERO_PLACEHOLDER_E} (E of mixed profiles is unmeasured) ==", flush=True)
    gaps, hetero, t_opt, t_bf = [], 0, 0.0, 0.0
    for i, seed in enumerate(range(first_seed, first_seed + instances)):
        regime = REGIMES[seed % len(REGIMES)]
        problem = regime_problem(regime, seed, tiny_shape, rounds_needed, tuple(tiny_clients), 4, tiny_cfg)
        t0 = time.perf_counter()
        found = HeteroOptimizer().solve(problem)
        t1 = time.perf_counter()
        best = brute_force_profiles(problem, allocation="exact")
        t_opt, t_bf = t_opt + t1 - t0, t_bf + time.perf_counter() - t1
        gaps.append(found.objective_s / best.objective_s - 1.0)
        hetero += int(len(set(best.cuts.tolist())) > 1 or len(set(best.ranks.tolist())) > 1)
        if (i + 1) % 50 == 0:
            print(f"  [{i + 1}/{instances}] worst gap so far {100 * max(gaps):.4f} %", flush=True)
    g = np.asarray(gaps)
    out = {"worst_gap": float(g.max()), "mean_gap": float(g.mean()), "hetero_optima": hetero / instances}
    print(f"gap (%): min / median / mean / max {_stats(g)}; worst seed {first_seed + int(np.argmax(g))}; "
          f"{int(np.sum(g > 0.005))} above 0.5 %; heterogeneous optimum in {hetero}/{instances}; "
          f"mean solve {t_opt / instances:.3f} s (optimizer), {t_bf / instances:.3f} s (brute force)")
    m = base.model
    shape = ModelShape(n_layer=m.tiny_n_layer, n_embd=m.tiny_n_embd, n_head=m.tiny_n_head, vocab_size=500,
                       n_positions=128)
    print(f"\n== Heterogeneous optimizer solve time (M = N = 2K, tiny GPT-2 {m.tiny_n_layer} blocks, ranks "
          f"{m.ranks}, {seeds} seed(s); homogeneous start included) ==")
    print(f"{'K':>4} {'server':>7} {'time_s':>9} {'cpu_s':>9} {'hom_s':>8} {'sweeps':>6} {'moves':>6} "
          f"{'T_het/T_hom':>11} {'distinct (c,r)':>14}")
    for k in clients:
        times = []
        for server in (base.compute.server_flops_per_cycle, 2.0):
            cfg = sized_config(k, 2 * k, 2 * k, base.replace(compute=base.compute.replace(
                server_flops_per_cycle=float(server))))
            for seed in range(seeds):
                problem = random_problem(seed, cfg, shape, rounds_needed)
                t0, c0 = time.perf_counter(), time.process_time()
                res = HeteroOptimizer().solve(problem)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                times.append(wall)
                distinct = len(set(zip(res.cuts.tolist(), res.ranks.tolist())))
                print(f"{k:>4} {server:>7g} {wall:>9.2f} {cpu:>9.2f} {res.homogeneous.wall_s:>8.2f} "
                      f"{res.sweeps:>6} {res.moves:>6} {res.objective_s / res.homogeneous.objective_s:>11.4f} "
                      f"{distinct:>14}", flush=True)
        out[f"time_s_K{k}"] = float(np.mean(times))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="fedsllm benchmark-optimizer", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, few seeds, 25 instances per regime (about a minute)")
    parser.add_argument("--clients", type=int, nargs="+", default=[5, 10, 20, 50], help="values of K (timing)")
    parser.add_argument("--factors", type=int, nargs="+", default=[2, 4], help="M = N = factor * K (timing)")
    parser.add_argument("--seeds", type=int, default=3, help="instances per size for timing")
    parser.add_argument("--server-flops-per-cycle", type=float, default=None,
                        help="main-server FLOPs/cycle for the timing table (default: the config's; e.g. 4 for a "
                             "server-scarce cell)")
    parser.add_argument("--gap-seeds", type=int, default=30, help="instances per fixed-size gap table (with schemes)")
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES,
                        help="regimes of the random-instance gap study")
    parser.add_argument("--instances", type=int, default=500, help="random instances per regime (gap study)")
    parser.add_argument("--first-seed", type=int, default=0, help="first instance seed of the gap study")
    parser.add_argument("--gap-clients", type=int, nargs="+", default=[3, 4], help="values of K in the gap study")
    parser.add_argument("--max-subchannels", type=int, default=5, help="largest M, N in the gap study")
    parser.add_argument("--progress-every", type=int, default=100, help="print progress every N instances (0: never)")
    parser.add_argument("--skip", nargs="+", default=[], choices=["timing", "schemes", "regimes"],
                        help="parts to leave out: the timing table, the fixed-size tables with the conventional "
                             "schemes, the random-instance gap study")
    parser.add_argument("--shape", default="auto",
                        help="'calibration' (the calibrated model's shape), 'tiny' (the config's tiny GPT-2 with a "
                             "500-token vocabulary), 'gpt2' (124M) or 'auto' (calibration if present, else tiny)")
    parser.add_argument("--calibration", default=None, help="calibration JSON for E(r) (default: shipped)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the global RNGs (instances draw from their own seeds 0, 1, ...)")
    parser.add_argument("--hetero", action="store_true",
                        help="only the heterogeneous optimizer (a cut and rank per client): its gap against the brute "
                             "force on --instances tiny instances and its solve time at K in --clients (E of mixed "
                             "profiles is a stand-in: unmeasured)")
    args = parser.parse_args(argv)
    for flag in ("clients", "factors"):
        if min(getattr(args, flag)) < 1:
            parser.error(f"--{flag} values must be >= 1, got {getattr(args, flag)}")
    for flag in ("seeds", "gap_seeds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    seed_everything(args.seed)
    if args.hetero:
        hetero_benchmark(args.instances, args.clients, args.seeds, first_seed=args.first_seed)
        return
    if args.quick:
        args.clients, args.factors, args.seeds, args.gap_seeds, args.instances = [5, 10, 20], [2], 2, 10, 25
    cfg = FedsLLMConfig()
    rounds_needed, source, calibrated_shape = _rounds_needed(args.calibration)
    shape = _shape(args.shape, cfg, calibrated_shape)
    print(f"model shape: {shape.to_dict()}")
    print(f"E(r): {source}")
    print(f"E(r) at ranks {cfg.model.ranks}: {[round(rounds_needed(r), 3) for r in cfg.model.ranks]}")
    splits = range(1, shape.n_layer)
    by_split = [[Problem.rounds_of(rounds_needed, c, r) for r in cfg.model.ranks] for c in splits]
    if any(row != by_split[0] for row in by_split):
        for c, row in zip(splits, by_split):
            print(f"  E(r, c={c}): {[round(e, 3) for e in row]}")
    if "timing" not in args.skip:
        timing_table(args.clients, args.factors, args.seeds, shape, rounds_needed, args.server_flops_per_cycle)
    if "schemes" not in args.skip:
        gap_table(3, 4, 4, args.gap_seeds, shape, rounds_needed)
        gap_table(3, 4, 4, args.gap_seeds, shape, rounds_needed, total_power_ms_w=0.2, total_power_fs_w=0.15)
        if not args.quick:
            gap_table(3, 5, 4, args.gap_seeds, shape, rounds_needed)
    if "regimes" not in args.skip:
        regime_gaps(args.regimes, args.instances, shape, rounds_needed, args.gap_clients, args.max_subchannels,
                    args.first_seed, progress_every=args.progress_every)


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("benchmark-optimizer")

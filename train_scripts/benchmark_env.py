"""Env speed benchmark: surrogate steps/s on one core, real-mode seconds per step and the share of a
real step spent outside torch training (target < 5%)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from train_scripts.seeding import seed_everything


@dataclass
class Args:
    """Benchmark the environment itself (no agent)."""

    surrogate_steps: int = 20000
    """Surrogate env steps to time."""
    real_steps: int = 3
    """Real-mode env steps (training rounds) to time; 0 skips the real mode."""
    seed: int = 0
    """Seed of the env, of the sampled actions and of the global RNGs."""
    calibration_path: str = ""
    """Calibration JSON ("" = the measured table shipped with the package)."""
    torch_threads: int = 0
    """torch intra-op threads for the real mode (0 = torch's default)."""


def time_surrogate(steps: int, seed: int, calibration_path: str) -> dict[str, float]:
    """Steps/s of the raw surrogate env (no wrappers) under random actions."""
    from fedsllm_env.env import FedsLLMEnv

    env = FedsLLMEnv({"mode": "surrogate", "calibration_path": calibration_path})
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(256)]
    start = time.perf_counter()
    for i in range(steps):
        _, _, term, trunc, _ = env.step(actions[i % 256])
        if term or trunc:
            env.reset()
    elapsed = time.perf_counter() - start
    return {"steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed}


def time_real(steps: int, seed: int, calibration_path: str) -> dict[str, float]:
    """Seconds per real-mode step, split into training, validation, engine bookkeeping and the env itself."""
    from fedsllm_env.env import FedsLLMEnv

    t0 = time.perf_counter()
    env = FedsLLMEnv({"mode": "real", "calibration_path": calibration_path})
    env.reset(seed=seed)
    setup_s = time.perf_counter() - t0
    env.action_space.seed(seed)
    rows = []
    for _ in range(steps):
        a = env.action_space.sample()
        t = time.perf_counter()
        _, _, term, trunc, _ = env.step(a)
        step = time.perf_counter() - t
        tm = env.last_timing
        rows.append((step, tm.get("wall_s", np.nan), tm.get("train_s", np.nan), tm.get("val_s", np.nan)))
        if term or trunc:
            env.reset()
    step, wall, train, val = (float(x) for x in np.mean(rows, axis=0))
    return {"setup_s": setup_s, "step_s": step, "train_s": train, "val_s": val,
            "engine_other_s": wall - train - val, "env_s": step - wall,
            "env_share": (step - wall) / step, "outside_training_share": (step - train) / step}


def main(argv: list[str] | None = None) -> None:
    """Print the benchmark figures."""
    import tyro

    from fedsllm_env.calibration import load_calibration
    from train_scripts._checks import at_least

    args = tyro.cli(Args, args=argv, prog="fedsllm benchmark-env")
    at_least(surrogate_steps=(args.surrogate_steps, 1), real_steps=(args.real_steps, 0),
             torch_threads=(args.torch_threads, 0))
    load_calibration(args.calibration_path)
    seed_everything(args.seed, args.torch_threads)
    s = time_surrogate(args.surrogate_steps, args.seed, args.calibration_path)
    print(f"surrogate: {s['steps_per_s']:,.0f} steps/s ({s['steps']} steps in {s['seconds']:.2f} s, one process)")
    if args.real_steps > 0:
        r = time_real(args.real_steps, args.seed, args.calibration_path)
        print(f"real ({args.real_steps} random-action steps, torch threads {_torch_threads()}): setup {r['setup_s']:.1f} s, "
              f"{r['step_s']:.3f} s/step = training {r['train_s']:.3f} + validation {r['val_s']:.3f} + "
              f"adapter moves/batching {r['engine_other_s']:.3f} + env (delay, channel, codec) {r['env_s']:.4f}")
        print(f"  env share outside the engine: {100 * r['env_share']:.2f}% (target < 5%); "
              f"everything but training: {100 * r['outside_training_share']:.1f}%")


def _torch_threads() -> int | str:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return "n/a"


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("benchmark-env")

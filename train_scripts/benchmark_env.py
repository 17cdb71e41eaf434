"""Env speed benchmark: surrogate steps/s on one core, real-mode seconds per step and the share of a
real step spent outside torch training (target < 5%)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Args:
    """Benchmark the environment itself (no agent)."""

    surrogate_steps: int = 20000
    """Surrogate env steps to time."""
    real_steps: int = 3
    """Real-mode env steps (training rounds) to time; 0 skips the real mode."""
    seed: int = 0
    """Seed of the env and of the sampled actions."""
    calibration_path: str = ""
    """Calibration JSON ("" = the measured table shipped with the package)."""


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
    """Seconds per real-mode step and the share spent outside the engine's torch work."""
    from fedsllm_env.env import FedsLLMEnv

    t0 = time.perf_counter()
    env = FedsLLMEnv({"mode": "real", "calibration_path": calibration_path})
    env.reset(seed=seed)
    setup_s = time.perf_counter() - t0
    env.action_space.seed(seed)
    step_s, train_s = [], []
    for _ in range(steps):
        a = env.action_space.sample()
        t = time.perf_counter()
        _, _, term, trunc, info = env.step(a)
        step_s.append(time.perf_counter() - t)
        train_s.append(float(env.last_timing.get("train_s", np.nan)))
        if term or trunc:
            env.reset()
    step, train = float(np.mean(step_s)), float(np.mean(train_s))
    return {"setup_s": setup_s, "step_s": step, "train_s": train, "outside_share": (step - train) / step}


def main(argv: list[str] | None = None) -> None:
    """Print the benchmark figures."""
    import tyro

    args = tyro.cli(Args, args=argv)
    print(f"cores visible: {os.cpu_count()}, torch threads: {_torch_threads()}")
    s = time_surrogate(args.surrogate_steps, args.seed, args.calibration_path)
    print(f"surrogate: {s['steps_per_s']:,.0f} steps/s ({s['steps']} steps in {s['seconds']:.2f} s, one process)")
    if args.real_steps > 0:
        r = time_real(args.real_steps, args.seed, args.calibration_path)
        print(f"real: setup {r['setup_s']:.1f} s, {r['step_s']:.3f} s/step, torch training {r['train_s']:.3f} s/step, "
              f"outside training {100 * r['outside_share']:.2f}% (target < 5%)")


def _torch_threads() -> int | str:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return "n/a"


if __name__ == "__main__":
    main()

"""Env speed benchmark: surrogate steps/s on one core (the single env and the batched VectorEnv, in the
same run), real-mode seconds per step and the share of a real step spent outside torch training
(target < 5%)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fedsllm_env.presets import with_preset
from train_scripts.seeding import seed_everything


@dataclass
class Args:
    """Benchmark the environment itself (no agent)."""

    surrogate_steps: int = 20000
    """Surrogate env steps to time."""
    num_envs: tuple[int, ...] = (256,)
    """Batch sizes of the batched surrogate (``gym.make_vec(..., vectorization_mode="vector_entry_point")``)
    to time; () skips it."""
    batched_steps: int = 1_000_000
    """Env steps (summed over the batch) to time per batch size."""
    batched_ids: tuple[str, ...] = ("FedsLLM-Surrogate-v0",)
    """Ids of the batched surrogate to time (e.g. FedsLLM-Surrogate-Discrete-v0, FedsLLM-Surrogate-Priority-v0)."""
    ppo_steps: int = 0
    """Also time SB3 PPO training (env steps/s) for this many steps: today's single env (one env, the YAML
    hyperparameters) against the batched env (``ppo_envs`` envs, 64 steps each per rollout, minibatches of
    512); 0 skips it."""
    ppo_envs: int = 64
    """Envs of the batched PPO run."""
    real_steps: int = 3
    """Real-mode env steps (training rounds) to time; 0 skips the real mode."""
    seed: int = 0
    """Seed of the env, of the sampled actions and of the global RNGs."""
    calibration_path: str = ""
    """Calibration JSON ("" = the measured table shipped with the package)."""
    preset: str = ""
    """Scenario preset (fedsllm_env.presets.PRESETS) whose config every env uses ("" = the defaults)."""
    torch_threads: int = 0
    """torch intra-op threads for the real mode (0 = torch's default)."""


def time_surrogate(steps: int, seed: int, calibration_path: str, preset: str = "") -> dict[str, float]:
    """Steps/s of the raw surrogate env (no wrappers) under random actions."""
    from fedsllm_env.env import FedsLLMEnv

    env = FedsLLMEnv(with_preset(preset, {"mode": "surrogate", "calibration_path": calibration_path}))
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(256)]
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(steps):
        _, _, term, trunc, _ = env.step(actions[i % 256])
        if term or trunc:
            env.reset()
    return _rates(steps, time.perf_counter() - start, time.process_time() - cpu_start)


def _rates(steps: int, wall_s: float, cpu_s: float) -> dict[str, float]:
    """Steps/s by wall time and by this process's CPU time (the honest figure on a loaded machine)."""
    return {"steps": steps, "seconds": wall_s, "cpu_seconds": cpu_s, "steps_per_s": steps / wall_s,
            "steps_per_cpu_s": steps / max(cpu_s, 1e-9)}


def time_batched(num_envs: int, steps: int, seed: int, calibration_path: str,
                 env_id: str = "FedsLLM-Surrogate-v0", preset: str = "") -> dict[str, float]:
    """Env steps/s (summed over the batch) of the batched surrogate ``env_id`` under random actions, one process."""
    import gymnasium as gym

    import fedsllm_env  # noqa: F401 - registers the ids

    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                       config=with_preset(preset, {"calibration_path": calibration_path}))
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(16)]
    calls = max(1, steps // num_envs)
    for i in range(3):  # warm-up
        env.step(actions[i])
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(calls):
        env.step(actions[i % 16])
    out = _rates(calls * num_envs, time.perf_counter() - start, time.process_time() - cpu_start)
    draws = "numba" if env.unwrapped.uses_numba else "numpy"
    env.close()
    return {"num_envs": num_envs, "draws": draws, **out}


def time_ppo(steps: int, n_envs: int, seed: int, calibration_path: str, preset: str = "") -> dict[str, float]:
    """PPO env steps/s on the single env (DummyVecEnv of 1, YAML hyperparameters) and on the batched env."""
    import torch

    from agents.factory import make_agent
    from agents.training import make_training_env

    torch.set_num_threads(1)
    cfg = with_preset(preset, {"calibration_path": calibration_path})
    out = {}
    for kind, n, over in (("single", 1, {}), ("batched", n_envs, {"n_steps": 64, "batch_size": 512})):
        env = make_training_env("FedsLLM-Surrogate-v0", n, seed, cfg,
                                vec_env="dummy" if kind == "single" else "batched")
        model = make_agent("ppo", env, seed, over, env_id="FedsLLM-Surrogate-v0")
        start = time.perf_counter()
        model.learn(steps)
        out[kind] = model.num_timesteps / (time.perf_counter() - start)
        env.close()
    return out


def time_real(steps: int, seed: int, calibration_path: str, preset: str = "") -> dict[str, float]:
    """Seconds per real-mode step, split into training, validation, engine bookkeeping and the env itself."""
    from fedsllm_env.env import FedsLLMEnv

    t0 = time.perf_counter()
    env = FedsLLMEnv(with_preset(preset, {"mode": "real", "calibration_path": calibration_path}))
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
    s = time_surrogate(args.surrogate_steps, args.seed, args.calibration_path, args.preset)
    print(f"surrogate: {s['steps_per_s']:,.0f} steps/s wall, {s['steps_per_cpu_s']:,.0f} per CPU s ({s['steps']} steps "
          f"in {s['seconds']:.2f} s wall, {s['cpu_seconds']:.2f} s CPU, one process)")
    for env_id, n in ((i, n) for i in args.batched_ids for n in args.num_envs):
        b = time_batched(n, args.batched_steps, args.seed, args.calibration_path, env_id, args.preset)
        print(f"batched {env_id}, {n} envs: {b['steps_per_s']:,.0f} env steps/s wall, {b['steps_per_cpu_s']:,.0f} per "
              f"CPU s ({b['steps']} steps in {b['seconds']:.2f} s wall, {b['cpu_seconds']:.2f} s CPU, one process, "
              f"draws by {b['draws']}; "
              f"{b['steps_per_s'] / s['steps_per_s']:.1f}x the single env by wall time, "
              f"{b['steps_per_cpu_s'] / s['steps_per_cpu_s']:.1f}x by CPU time)")
    if args.ppo_steps > 0:
        p = time_ppo(args.ppo_steps, args.ppo_envs, args.seed, args.calibration_path, args.preset)
        print(f"PPO training: single env {p['single']:,.0f} env steps/s, batched ({args.ppo_envs} envs, n_steps 64, "
              f"batch 512) {p['batched']:,.0f} env steps/s ({p['batched'] / p['single']:.1f}x; 1 torch thread)")
    if args.real_steps > 0:
        r = time_real(args.real_steps, args.seed, args.calibration_path, args.preset)
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

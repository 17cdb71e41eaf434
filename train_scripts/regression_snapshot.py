"""Regression snapshot: every number a refactor must leave bit-identical, written to / compared with JSON.

Records, with exact floats (JSON ``repr`` round trip):

1. seeded surrogate episodes of every surrogate id (Box, MultiDiscrete, Hybrid) under seeded random
   actions and under every baseline policy: observations, rewards, flags, infos and decisions, on the
   default config and on a variant (3 clients, unequal power limits, delay scale 7, progress bonus,
   and, for random actions, a client-memory limit that forces the split/rank projection);
2. every baseline scheme and the exact optimum on seeded random problems (objective, history, decision).

Usage::

    python -m train_scripts.regression_snapshot --out before.json        # before a refactor
    python -m train_scripts.regression_snapshot --compare before.json    # after: exit 1 on any difference
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

import fedsllm_env  # noqa: F401  (registers the ids)
from baselines import SCHEMES, AlternatingOptimizer, exact_optimum, random_problem, sized_config
from baselines.policy import BASELINE_NAMES, make_baseline_policy
from fedsllm_env.calibration import load_calibration
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import client_memory_bytes
from fedsllm_env.profile import ModelShape
from train_scripts.seeding import seed_everything

IDS = ("FedsLLM-Surrogate-v0", "FedsLLM-Surrogate-Discrete-v0", "FedsLLM-Surrogate-Hybrid-v0")
VARIANT: dict[str, Any] = {
    "wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 5, "total_power_ms_w": 0.25,
                 "total_power_fs_w": 0.12, "client_max_power_dbm": 20.0},
    "reward": {"delay_scale_s": 7.0, "progress_weight": 0.5},
}


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer, bool, np.bool_)):
        return x.item() if hasattr(x, "item") else x
    return x


def _episode(env_id: str, config: dict[str, Any], policy: str, seed: int, rounds: int) -> dict[str, Any]:
    cfg = json.loads(json.dumps(config))
    cfg.setdefault("training", {})["max_rounds"] = rounds
    env = gym.make(env_id, config=cfg)
    obs, info = env.reset(seed=seed)
    steps: list[dict[str, Any]] = [{"obs": obs, "info": info}]
    if policy == "random":
        env.action_space.seed(seed)
        act = lambda o: env.action_space.sample()  # noqa: E731
    else:
        bp = make_baseline_policy(policy, env, seed=seed)
        act = lambda o: bp.predict(o)[0]  # noqa: E731
    done = False
    while not done:
        action = act(obs)
        obs, reward, term, trunc, info = env.step(action)
        decision = env.unwrapped.last_decision.to_dict()
        steps.append({"action": action, "obs": obs, "reward": reward, "flags": [term, trunc], "info": info,
                      "decision": decision})
        done = term or trunc
    env.close()
    return _plain({"id": env_id, "policy": policy, "seed": seed, "steps": steps})


def _problems() -> list[dict[str, Any]]:
    cal = load_calibration(None)
    out = []
    for k, m, n, extra in ((3, 4, 4, {}), (3, 4, 4, {"total_power_ms_w": 0.2, "total_power_fs_w": 0.15}),
                           (5, 10, 10, {})):
        cfg = sized_config(k, m, n, **extra)
        for seed in range(3):
            problem = random_problem(seed, cfg, cal.shape, cal.rounds_needed)
            rows = {"optimizer": AlternatingOptimizer().solve(problem),
                    "optimizer_no_refine": AlternatingOptimizer(refine=False).solve(problem)}
            rows.update({name: scheme(problem, np.random.default_rng(seed)) for name, scheme in SCHEMES.items()})
            if k * m <= 12:
                rows["exact"] = exact_optimum(problem)
            for name, res in rows.items():
                out.append(_plain({"size": [k, m, n, extra], "seed": seed, "method": name,
                                   "objective_s": res.objective_s, "history": list(res.history),
                                   "n_iter": res.n_iter, "decision": res.decision.to_dict()}))
    return out


def memory_limit(cfg: FedsLLMConfig, shape: ModelShape) -> float:
    """A client-memory limit that admits splits 1-2 at rank 16 only (so the projection of deeper splits is
    exercised): the env's own memory model (frozen weights at ``model.dtype``'s bits) at split 2, rank 16, + 1 byte."""
    return client_memory_bytes(2, 16, shape, cfg) + 1.0


def snapshot(rounds: int = 3, seeds: Sequence[int] = (0, 1)) -> dict[str, Any]:
    """Every recorded number (see the module docstring)."""
    episodes = []
    random_variant = json.loads(json.dumps(VARIANT))
    limit = memory_limit(FedsLLMConfig.from_dict(VARIANT), load_calibration(None).shape)
    random_variant["compute"] = {"client_memory_bytes": limit}
    for env_id in IDS:
        for seed in seeds:
            episodes.append(_episode(env_id, {}, "random", seed, rounds))
            episodes.append(_episode(env_id, random_variant, "random", seed, rounds))
            for name in BASELINE_NAMES:
                episodes.append(_episode(env_id, {}, name, seed, rounds))
                episodes.append(_episode(env_id, VARIANT, name, seed, rounds))
    return {"episodes": episodes, "problems": _problems()}


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if len(out) > 20:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'new' if key in b else 'reference'}")
            else:
                _diff(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out)
    elif a != b and not (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b)):
        out.append(f"{path}: {a!r} != {b!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Write (``--out``) or compare (``--compare``) the snapshot; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="", help="write the snapshot to this JSON file")
    parser.add_argument("--compare", default="", help="compare with this reference JSON file")
    args = parser.parse_args(argv)
    seed_everything(0)
    data = json.loads(json.dumps(snapshot()))
    if args.out:
        Path(args.out).write_text(json.dumps(data))
        print(f"wrote {args.out}: {len(data['episodes'])} episodes, {len(data['problems'])} solver results")
    if args.compare:
        ref = json.loads(Path(args.compare).read_text())
        diffs: list[str] = []
        _diff(ref, data, "", diffs)
        if diffs:
            print("DIFFERENT from the reference:\n" + "\n".join(diffs))
            return 1
        print(f"bit-identical to {args.compare}: {len(data['episodes'])} episodes, "
              f"{len(data['problems'])} solver results")
    return 0


if __name__ == "__main__":
    sys.exit(main())

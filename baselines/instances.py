"""Random problem instances drawn with the environment's own channel model (for tests and benchmarks)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from fedsllm_env.channel import make_channel_model
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.profile import ModelShape
from baselines.problem import Problem

__all__ = ["sized_config", "random_problem"]


def sized_config(num_clients: int, num_subchannels_ms: int, num_subchannels_fs: int,
                 cfg: FedsLLMConfig | None = None, **wireless_changes: float) -> FedsLLMConfig:
    """``cfg`` (default: the package defaults) with K, M, N (and any other wireless fields) replaced."""
    cfg = FedsLLMConfig() if cfg is None else cfg
    wireless = cfg.wireless.replace(num_clients=num_clients, num_subchannels_ms=num_subchannels_ms,
                                    num_subchannels_fs=num_subchannels_fs, **wireless_changes)
    return cfg.replace(wireless=wireless)


def random_problem(seed: int | np.random.Generator, cfg: FedsLLMConfig, shape: ModelShape,
                   rounds_needed: Callable[[int], float]) -> Problem:
    """A problem with a scenario and first channel state drawn by the config's channel model.

    Args:
        seed: seed or generator (the only source of randomness).
        cfg: configuration (K, M, N, powers, ...).
        shape: model dimensions.
        rounds_needed: E(r).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    model = make_channel_model(cfg.wireless, cfg.compute)
    scenario = model.draw_scenario(rng)
    channel = model.observe(model.initial_state(rng, scenario))
    return Problem(scenario, channel, shape, cfg, rounds_needed)

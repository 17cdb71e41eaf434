"""Random small instances in named regimes, for optimality-gap benchmarks and tests.

Each regime draws its own configuration changes from the instance's generator, then the scenario and
channel with :func:`baselines.instances.random_problem` (the environment's channel model):

- ``"default"``: the package defaults (server = 20 x the mean device; the per-client caps bind).
- ``"server-scarce"``: a slow shared main server, ``kappa_s`` log-uniform in [0.8, 16] FLOPs/cycle
  (1 %-20 % of the default 80), so that server compute per client can fall below the slowest
  client's and a deeper cut can pay.
- ``"total-power"``: binding total power limits, ``p_th`` uniform in [0.05, 0.4] W on each link
  (K x p_max = 0.6 W for K = 3 at the default 23 dBm cap).
- ``"random-power"``: per-client caps log-uniform in [7, 23] dBm, both totals uniform in
  [0.05, 0.6] W and ``kappa_s`` log-uniform in [0.8, 80] FLOPs/cycle (power and compute mixed).

Sizes are drawn too: K in ``clients`` and, per link, S uniform in [K, ``max_subchannels``].
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.profile import ModelShape
from fedsllm_env.units import dbm_to_watt
from baselines.instances import random_problem, sized_config
from baselines.problem import Problem

__all__ = ["REGIMES", "regime_problem"]

REGIMES: tuple[str, ...] = ("default", "server-scarce", "total-power", "random-power")
"""Names accepted by :func:`regime_problem`."""


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int | None = None) -> np.ndarray | float:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def regime_problem(regime: str, seed: int, shape: ModelShape, rounds_needed: Callable[..., float],
                   clients: Sequence[int] = (3, 4), max_subchannels: int = 5,
                   cfg: FedsLLMConfig | None = None) -> Problem:
    """One random small instance of a regime (see module docstring).

    Args:
        regime: one of :data:`REGIMES`.
        seed: seed of everything drawn (sizes, regime parameters, scenario, channel).
        shape: model dimensions.
        rounds_needed: E(r) or E(r, c).
        clients: values K is drawn from.
        max_subchannels: largest number of subchannels per link (S is drawn in [K, this]).
        cfg: base configuration (default: the package defaults).

    Raises:
        ValueError: for an unknown regime or ``max_subchannels < max(clients)``.
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose from {REGIMES}")
    if max_subchannels < max(clients):
        raise ValueError(f"max_subchannels={max_subchannels} is below the largest K={max(clients)}")
    rng = np.random.default_rng([REGIMES.index(regime), int(seed)])
    k = int(rng.choice(np.asarray(clients)))
    m, n = (int(x) for x in rng.integers(k, max_subchannels + 1, size=2))
    base = FedsLLMConfig() if cfg is None else cfg
    wireless: dict[str, float] = {}
    compute = base.compute
    caps_dbm: np.ndarray | None = None
    if regime == "server-scarce":
        compute = compute.replace(server_flops_per_cycle=float(_log_uniform(rng, 0.8, 16.0)))
    elif regime == "total-power":
        wireless = {"total_power_ms_w": float(rng.uniform(0.05, 0.4)),
                    "total_power_fs_w": float(rng.uniform(0.05, 0.4))}
    elif regime == "random-power":
        caps_dbm = rng.uniform(7.0, 23.0, k)
        wireless = {"total_power_ms_w": float(rng.uniform(0.05, 0.6)),
                    "total_power_fs_w": float(rng.uniform(0.05, 0.6))}
        compute = compute.replace(server_flops_per_cycle=float(_log_uniform(rng, 0.8, 80.0)))
    cfg = sized_config(k, m, n, base.replace(compute=compute), **wireless)
    problem = random_problem(rng, cfg, shape, rounds_needed)
    if caps_dbm is None:
        return problem
    scenario = replace(problem.scenario, client_max_power_w=np.asarray(dbm_to_watt(caps_dbm), dtype=float))
    return Problem(scenario, problem.channel, shape, cfg, rounds_needed)

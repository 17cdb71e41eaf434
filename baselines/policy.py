"""SB3-style ``predict(obs)`` adapters, so baselines plug into the same evaluation as the RL agents.

A baseline policy reconstructs the state it needs from the observation alone (channel gains, loads
and device compute are encoded exactly, up to float32; p_max and the model come from the env's config;
the channel model's hidden state, e.g. positions and fading, is neither observed nor needed),
builds a :class:`~baselines.problem.Problem` with the env's E(r), solves it, and encodes the decision
as an action of the env's action space (Box, MultiDiscrete or hybrid).
"""

from __future__ import annotations

import zlib
from typing import Any

import gymnasium as gym
import numpy as np

from baselines.heuristics import SCHEMES, Scheme, solve_optimizer
from baselines.problem import Problem
from baselines.result import BaselineResult
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.types import ChannelState, Scenario
from fedsllm_env.units import dbm_to_watt

__all__ = ["BASELINE_NAMES", "HETERO_BASELINE_NAMES", "KNOWN_BASELINE_NAMES", "BaselinePolicy", "make_baseline_policy",
           "problem_from_observation"]

BASELINE_NAMES: tuple[str, ...] = ("optimizer",) + tuple(SCHEMES)
"""The paper's optimizer and the conventional schemes: the baselines of every env (the default lists)."""
HETERO_BASELINE_NAMES: tuple[str, ...] = ("hetero_optimizer",)
"""Baselines of the heterogeneous envs only (a cut and a rank per client)."""
KNOWN_BASELINE_NAMES: tuple[str, ...] = BASELINE_NAMES + HETERO_BASELINE_NAMES
"""Every name :func:`make_baseline_policy` accepts."""


def problem_from_observation(env: FedsLLMEnv, observation: np.ndarray) -> tuple[Problem, Scenario]:
    """Rebuild the allocation problem of the round an observation describes."""
    cfg = env.config
    g_ms, g_fs, load, peak = env.observation_codec.decode_state(observation)
    k = cfg.wireless.num_clients
    # the delay model only needs f_k * kappa_k, so f_k carries the product and kappa_k = 1
    scenario = Scenario(client_cpu_freq_hz=peak, client_flops_per_cycle=np.ones(k),
                        client_max_power_w=np.full(k, float(dbm_to_watt(cfg.wireless.client_max_power_dbm))))
    channel = ChannelState(g_ms, g_fs, load)
    return Problem(scenario, channel, env.shape, cfg, env.rounds_needed), scenario


class BaselinePolicy:
    """A baseline scheme behind SB3's ``predict`` signature.

    The random schemes draw from a generator seeded afresh for every decision by ``(seed, the env's reset
    seed, the observation)``: episodes from different reset seeds draw differently, the same reset seed
    replays the same draws (whatever the policy played before), and an unseeded reset, which continues the
    env's RNG, still draws anew through its observation.

    Args:
        name: one of :data:`KNOWN_BASELINE_NAMES` (those of :data:`HETERO_BASELINE_NAMES` in heterogeneous envs
            only).
        env: the env (or a wrapper of it) whose observations and actions this policy speaks.
        seed: base seed of the scheme's randomness (random schemes only), mixed with the episode's.
    """

    def __init__(self, name: str, env: gym.Env, seed: int = 0):
        if name not in KNOWN_BASELINE_NAMES:
            raise ValueError(f"unknown baseline {name!r}; choose one of {KNOWN_BASELINE_NAMES}")
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        base = env.unwrapped
        if not isinstance(base, FedsLLMEnv):
            raise TypeError(f"baseline policies need a FedsLLMEnv, got {type(base).__name__}")
        if name == "hetero_optimizer" and not base.config.heterogeneous:
            raise ValueError("hetero_optimizer decides a cut and a rank per client: it needs a heterogeneous env "
                             "(heterogeneous=True, or a -Hetero- id)")
        self.name = name
        self.env = base
        self.seed = int(seed)
        self.scheme: Scheme = {"optimizer": solve_optimizer, "hetero_optimizer": self._solve_hetero}.get(
            name) or SCHEMES[name]
        self.last_result: BaselineResult | None = None

    def _solve_hetero(self, problem: Problem, rng: np.random.Generator | None = None) -> Any:
        """:class:`baselines.hetero_optimizer.HeteroOptimizer` with the env's E of a profile (the measured E(r, c)
        at the profile's effective cut and rank; the measured E itself on a homogeneous profile)."""
        from baselines.hetero_optimizer import HeteroOptimizer

        env = self.env
        return HeteroOptimizer().solve(problem, lambda cuts, ranks: env.rounds_needed(ranks, cuts))

    def decision_rng(self, observation: np.ndarray) -> np.random.Generator:
        """The generator of one decision: seeded by (``seed``, the env's reset seed, the observation's bytes)."""
        episode_seed = int(self.env.np_random_seed) % 2**128  # the seed of the last reset(seed=...); -1 if unknown
        obs = np.ascontiguousarray(observation)
        return np.random.default_rng(np.random.SeedSequence([self.seed, episode_seed, zlib.crc32(obs.tobytes())]))

    def _act(self, observation: np.ndarray) -> np.ndarray:
        problem, scenario = problem_from_observation(self.env, observation)
        self.last_result = self.scheme(problem, self.decision_rng(observation))
        return self.env.action_codec.encode(self.last_result.decision, scenario)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Action for one observation, or a batch (first axis) as from a VecEnv."""
        obs = np.asarray(observation)
        single = self.env.observation_space.shape
        if obs.shape == single:
            return self._act(obs), None
        if obs.ndim == len(single) + 1 and obs.shape[1:] == single:
            return np.stack([self._act(o) for o in obs]), None
        raise ValueError(f"observation has shape {obs.shape}, expected {single} or (n, *{single})")


def make_baseline_policy(name: str, env: gym.Env, seed: int = 0) -> BaselinePolicy:
    """A :class:`BaselinePolicy` named ``name`` for ``env``."""
    return BaselinePolicy(name, env, seed)

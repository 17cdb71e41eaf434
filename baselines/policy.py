"""SB3-style ``predict(obs)`` adapters, so baselines plug into the same evaluation as the RL agents.

A baseline policy reconstructs the state it needs from the observation alone (channel gains, loads
and device compute are encoded exactly, up to float32; p_max and the model come from the env's config;
the channel model's hidden state, e.g. positions and fading, is neither observed nor needed),
builds a :class:`~baselines.problem.Problem` with the env's E(r), solves it, and encodes the decision
as an action of the env's action space (Box, MultiDiscrete or hybrid).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from baselines.heuristics import SCHEMES, Scheme, solve_optimizer
from baselines.problem import Problem
from baselines.result import BaselineResult
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.types import ChannelState, Scenario
from fedsllm_env.units import dbm_to_watt

__all__ = ["BASELINE_NAMES", "BaselinePolicy", "make_baseline_policy", "problem_from_observation"]

BASELINE_NAMES: tuple[str, ...] = ("optimizer",) + tuple(SCHEMES)
"""Names accepted by :func:`make_baseline_policy`: the paper's optimizer and the conventional schemes."""


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

    Args:
        name: one of :data:`BASELINE_NAMES`.
        env: the env (or a wrapper of it) whose observations and actions this policy speaks.
        seed: seed of the scheme's randomness (random schemes only).
    """

    def __init__(self, name: str, env: gym.Env, seed: int = 0):
        if name not in BASELINE_NAMES:
            raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINE_NAMES}")
        base = env.unwrapped
        if not isinstance(base, FedsLLMEnv):
            raise TypeError(f"baseline policies need a FedsLLMEnv, got {type(base).__name__}")
        self.name = name
        self.env = base
        self.scheme: Scheme = solve_optimizer if name == "optimizer" else SCHEMES[name]
        self.rng = np.random.default_rng(seed)
        self.last_result: BaselineResult | None = None

    def _act(self, observation: np.ndarray) -> np.ndarray:
        problem, scenario = problem_from_observation(self.env, observation)
        self.last_result = self.scheme(problem, self.rng)
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

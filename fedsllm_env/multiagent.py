"""Clients as agents: a PettingZoo ``ParallelEnv`` over the priority env, each client deciding for itself.

Agent ``client_k`` (k = 0..K-1) observes its own row of the client-set layout (:mod:`fedsllm_env.client_set`: 12
features of its channel, load, compute, cut and rank) and the 7 features of the cell context (training progress
among them): ``Box(-1, 1, (19,))``. It acts with ``Box(-1, 1, (6,))``:

=================  =====================================================================================
shared cut/rank    (priority_ms, priority_fs, deadline_ms vote, deadline_fs vote, split vote, rank vote)
heterogeneous      (priority_ms, priority_fs, its own split, its own rank, deadline_ms vote, deadline_fs vote)
=================  =====================================================================================

The priorities (and, heterogeneous, the client's own cut and rank) are the client's entries of the priority
action; every cell-level entry (the deadlines, and the shared cut and rank) is the mean of the clients' votes, so the
joint action is one priority action of the K-client env (:func:`joint_action`). Agent actions are *residuals*
around the priority heuristic (:class:`fedsllm_env.priority.PriorityHeuristic`: neutral priorities, deadlines at
``HEURISTIC_DEADLINE``, the smallest cut, the largest rank): the priority action is ``clip(heuristic + a, -1, 1)``
entry by entry, so all-zero actions play the heuristic and a fresh policy (zero-mean) starts next to it. Every agent gets the env's reward
(-T_round / scale: a shared team reward); all agents terminate or truncate together. ``reset(seed)`` resets the
K-client env with that seed, so an episode is the same as the single env's for the same joint actions.

Optional: needs ``pip install "fedsllm-env[marl]"`` (PettingZoo); :func:`parallel_env` builds it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces

from fedsllm_env.client_set import CLIENT_FEATURES, CONTEXT_FEATURES, ClientSetLayout
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import ConfigError, InvalidActionError, require_extra
from fedsllm_env.priority import heuristic_action, make_priority_env

__all__ = ["AGENT_ACTIONS", "joint_action", "parallel_env"]

AGENT_ACTIONS = 6
"""Action entries per client agent (module docstring)."""


def joint_action(actions: np.ndarray, heterogeneous: bool) -> np.ndarray:
    """The K-client priority action of the agents' actions (K, 6): own entries kept, votes averaged, each added to
    the priority heuristic's entry and clipped to [-1, 1] (module docstring)."""
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != AGENT_ACTIONS:
        raise InvalidActionError(f"agent actions have shape {a.shape}, expected (K, {AGENT_ACTIONS})")
    if not np.isfinite(a).all():
        raise InvalidActionError("an agent's action contains NaN/inf")
    a = np.clip(a, -1.0, 1.0)
    k = a.shape[0]
    if heterogeneous:
        residual = np.concatenate([a[:, 0], a[:, 1], a[:, 4:6].mean(0), a[:, 2], a[:, 3]])
    else:
        residual = np.concatenate([a[:, 0], a[:, 1], a[:, 2:6].mean(0)])
    return np.clip(heuristic_action(k, heterogeneous) + residual, -1.0, 1.0).astype(np.float32)




def parallel_env(config: FedsLLMConfig | dict[str, Any] | None = None, mode: str = "surrogate",
                 heterogeneous: bool | None = None, render_mode: str | None = None) -> Any:
    """The clients-as-agents ``ParallelEnv`` (module docstring) of a K-client cell.

    Args:
        config: the cell (K = ``wireless.num_clients``).
        mode: "surrogate" or "real" (real split-federated training each round).
        heterogeneous: a cut and a rank per client (default: the config's ``heterogeneous``).
        render_mode: passed to the underlying env.
    """
    require_extra("marl", "clients as agents (fedsllm_env.multiagent)", "pettingzoo")
    import pettingzoo

    base = config.to_dict() if isinstance(config, FedsLLMConfig) else dict(config or {})
    hetero = bool(FedsLLMConfig.from_dict(base).heterogeneous if heterogeneous is None else heterogeneous)
    if mode not in ("surrogate", "real"):
        raise ConfigError(f"mode must be 'surrogate' or 'real', got {mode!r}")

    class ClientsParallelEnv(pettingzoo.ParallelEnv):
        """Each client of the cell is an agent (:mod:`fedsllm_env.multiagent`)."""

        metadata = {"name": "fedsllm_clients_v0", "render_modes": []}

        def __init__(self) -> None:
            self.env = make_priority_env(base, variant={"mode": mode, "action_mode": "box", "heterogeneous": hetero},
                                         render_mode=render_mode)
            self.config = self.env.unwrapped.config
            self.render_mode = render_mode
            k = self.config.wireless.num_clients
            self.layout = ClientSetLayout(k, hetero)
            self.possible_agents = [f"client_{i}" for i in range(k)]
            self.agents: list[str] = []
            self._obs_space = spaces.Box(-1.0, 1.0, (CLIENT_FEATURES + CONTEXT_FEATURES,), dtype=np.float32)
            self._act_space = spaces.Box(-1.0, 1.0, (AGENT_ACTIONS,), dtype=np.float32)

        @functools.lru_cache(maxsize=None)
        def observation_space(self, agent: str) -> spaces.Box:
            return self._obs_space

        @functools.lru_cache(maxsize=None)
        def action_space(self, agent: str) -> spaces.Box:
            return self._act_space

        def _observe(self, obs: np.ndarray) -> dict[str, np.ndarray]:
            per_agent = self.layout.agent_observations(self.config, obs)
            return {a: per_agent[i] for i, a in enumerate(self.agents)}

        def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
                  ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
            obs, info = self.env.reset(seed=seed, options=options)
            self.agents = list(self.possible_agents)
            return self._observe(obs), {a: dict(info) for a in self.agents}

        def step(self, actions: dict[str, np.ndarray]) -> tuple[dict, dict, dict, dict, dict]:
            missing = [a for a in self.agents if a not in actions]
            if missing:
                raise InvalidActionError(f"no action for agents {missing}")
            joint = joint_action(np.stack([np.asarray(actions[a], dtype=np.float64).reshape(-1)
                                           for a in self.agents]), hetero)
            obs, reward, terminated, truncated, info = self.env.step(joint)
            agents = list(self.agents)
            out_obs = self._observe(obs)
            rewards = {a: float(reward) for a in agents}
            terms = {a: bool(terminated) for a in agents}
            truncs = {a: bool(truncated) for a in agents}
            infos = {a: dict(info) for a in agents}
            if terminated or truncated:
                self.agents = []
            return out_obs, rewards, terms, truncs, infos

        def close(self) -> None:
            self.env.close()

    return ClientsParallelEnv()

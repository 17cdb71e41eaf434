"""A layout of observations and actions per client, padded to a maximum K, so one policy acts for any number of clients.

The priority env (:mod:`fedsllm_env.priority`) has spaces whose size depends on K (and on the subchannel counts
M, N). :class:`ClientSetLayout` re-arranges them into a *set of clients* plus a pooled cell context, padded to
``max_clients`` rows with a presence mask, so a permutation-equivariant network (``agents.set_policy``) can act at
any K up to ``max_clients`` with the same weights.

Observation (flat float32 Box), in order:

=========  =====================  ==============================================================================
block      size                   value
=========  =====================  ==============================================================================
mask       K_max                  1 for the K present clients (rows 0..K-1), 0 for padding
clients    K_max x F (F = 12)     per client: max, mean, min, std of its MS-link gains (the observation's [-1, 1]
                                  dB scale, over its M subchannels), the same for the FS link, load, compute,
                                  its cut and its rank (observation scale; the shared cut/rank when not
                                  heterogeneous); padding rows are 0
context    G = 7                  val-loss ratio / 2, rounds done / max, mean cut, mean rank, min(log2 K / 6, 1),
                                  min(M / K, 4) / 4, min(N / K, 4) / 4
=========  =====================  ==============================================================================

Action (flat Box(-1, 1)): ``K_max x A_c`` per-client entries then ``A_g`` cell entries. Shared cut/rank: per client
(priority_ms, priority_fs), cell (deadline_ms, deadline_fs, split, rank). Heterogeneous: per client (priority_ms,
priority_fs, split, rank), cell (deadline_ms, deadline_fs). Padding rows are ignored. :meth:`to_priority` /
:meth:`from_priority` map to and from the priority action of a K-client env exactly.

:class:`ClientSetEnv` (ids ``FedsLLM-Surrogate-AnyK-v0`` and ``FedsLLM-Surrogate-Hetero-AnyK-v0``) plays the
surrogate priority env in this layout and draws K per episode from a range (clients joining and leaving between
episodes), with M = max(K, M_base) and N = max(K, N_base) subchannels, the figures' clients-sweep rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fedsllm_env.config import FedsLLMConfig, merge_overrides
from fedsllm_env.errors import ConfigError, InvalidActionError

__all__ = ["CLIENT_FEATURES", "CONTEXT_FEATURES", "DEFAULT_MAX_CLIENTS", "ClientSetLayout", "clients_overrides",
           "ClientSetEnv", "make_client_set_env", "SetTeacher"]

CLIENT_FEATURES = 12
"""Features per client row (module docstring)."""
CONTEXT_FEATURES = 7
"""Features of the pooled cell context."""
DEFAULT_MAX_CLIENTS = 64
"""Rows of the padded layout in training (the policy's weights do not depend on it, and no feature does: the
context carries log2 K / 6, not K / K_max, so a trained policy acts at any K with a layout of K rows)."""


def clients_overrides(config: FedsLLMConfig | dict[str, Any] | None, num_clients: int) -> dict[str, Any]:
    """Nested overrides of ``config`` with K = ``num_clients`` and the subchannels per link raised to K when fewer."""
    base = config.to_dict() if isinstance(config, FedsLLMConfig) else dict(config or {})
    w = FedsLLMConfig.from_dict(base).wireless
    k = int(num_clients)
    return merge_overrides(base, {"wireless": {"num_clients": k, "num_subchannels_ms": max(k, w.num_subchannels_ms),
                                               "num_subchannels_fs": max(k, w.num_subchannels_fs)}})


@dataclass(frozen=True)
class ClientSetLayout:
    """The padded per-client layout of :mod:`fedsllm_env.client_set` (sizes, spaces, encode and decode)."""

    max_clients: int = DEFAULT_MAX_CLIENTS
    """Rows K_max."""
    heterogeneous: bool = False
    """Cut and rank per client (in the per-client action) instead of one for the cell."""

    def __post_init__(self) -> None:
        if int(self.max_clients) < 1:
            raise ConfigError(f"max_clients must be >= 1, got {self.max_clients}")

    @property
    def client_actions(self) -> int:
        """A_c: action entries per client."""
        return 4 if self.heterogeneous else 2

    @property
    def cell_actions(self) -> int:
        """A_g: action entries for the whole cell."""
        return 2 if self.heterogeneous else 4

    def observation_space(self) -> spaces.Box:
        """The flat float32 observation Box."""
        n = self.max_clients * (1 + CLIENT_FEATURES) + CONTEXT_FEATURES
        low = np.full(n, -1.0, dtype=np.float32)
        low[: self.max_clients] = 0.0
        high = np.ones(n, dtype=np.float32)
        return spaces.Box(low, high, dtype=np.float32)

    def action_space(self) -> spaces.Box:
        """The flat ``Box(-1, 1)`` action space."""
        return spaces.Box(-1.0, 1.0, shape=(self.max_clients * self.client_actions + self.cell_actions,),
                          dtype=np.float32)

    def _check_clients(self, k: int) -> None:
        if k > self.max_clients:
            raise ConfigError(f"the cell has K = {k} clients but this client-set layout holds at most "
                              f"max_clients = {self.max_clients}; build it with a larger max_clients")

    def encode(self, cfg: FedsLLMConfig, obs: np.ndarray) -> np.ndarray:
        """The set observation of a K-client env's flat observation ``obs`` (its layout: :mod:`fedsllm_env.spaces`)."""
        w = cfg.wireless
        k, m, n = w.num_clients, w.num_subchannels_ms, w.num_subchannels_fs
        self._check_clients(k)
        d = k if cfg.heterogeneous else 1
        obs = np.asarray(obs, dtype=np.float64)
        size = k * (m + n) + 2 * k + 2 * d + 2
        if obs.shape != (size,):
            raise ConfigError(f"observation has shape {obs.shape}, expected ({size},) for K = {k}, M = {m}, N = {n}")
        rows = np.zeros((self.max_clients, CLIENT_FEATURES))
        g_ms = obs[: k * m].reshape(k, m)
        g_fs = obs[k * m: k * (m + n)].reshape(k, n)
        for j, g in enumerate((g_ms, g_fs)):
            rows[:k, 4 * j: 4 * j + 4] = np.stack([g.max(1), g.mean(1), g.min(1), g.std(1)], axis=1)
        off = k * (m + n)
        rows[:k, 8] = obs[off: off + k]
        rows[:k, 9] = obs[off + k: off + 2 * k]
        cut = obs[off + 2 * k: off + 2 * k + d]
        rank = obs[off + 2 * k + d: off + 2 * k + 2 * d]
        rows[:k, 10] = cut
        rows[:k, 11] = rank
        mask = np.zeros(self.max_clients)
        mask[:k] = 1.0
        context = [obs[-2] / 2.0, obs[-1], cut.mean(), rank.mean(), min(np.log2(k) / 6.0, 1.0), min(m / k, 4.0) / 4.0,
                   min(n / k, 4.0) / 4.0]
        return np.concatenate([mask, rows.ravel(), context]).astype(np.float32)

    def agent_observations(self, cfg: FedsLLMConfig, obs: np.ndarray) -> np.ndarray:
        """Each present client's row followed by the cell context, (K, F + G) float32: what a client sees when it
        acts for itself (:mod:`fedsllm_env.multiagent`)."""
        x = self.encode(cfg, obs)
        k, n = cfg.wireless.num_clients, self.max_clients
        rows = x[n: n * (1 + CLIENT_FEATURES)].reshape(n, CLIENT_FEATURES)[:k]
        return np.concatenate([rows, np.repeat(x[None, -CONTEXT_FEATURES:], k, axis=0)], axis=1).astype(np.float32)

    def to_priority(self, action: np.ndarray, num_clients: int) -> np.ndarray:
        """The priority action (size 2 K + 4, or 4 K + 2 heterogeneous) of a set action; padding rows dropped."""
        a = np.asarray(action, dtype=np.float32)
        shape = self.action_space().shape
        if a.shape != shape:
            raise InvalidActionError(f"action has shape {a.shape}, expected {shape} (client-set actions)")
        k = int(num_clients)
        self._check_clients(k)
        per = a[: self.max_clients * self.client_actions].reshape(self.max_clients, self.client_actions)[:k]
        cell = a[self.max_clients * self.client_actions:]
        if self.heterogeneous:
            return np.concatenate([per[:, 0], per[:, 1], cell, per[:, 2], per[:, 3]])
        return np.concatenate([per[:, 0], per[:, 1], cell])

    def from_priority(self, action: np.ndarray, num_clients: int) -> np.ndarray:
        """The set action of a K-client priority action (padding rows 0): the inverse of :meth:`to_priority`."""
        a = np.asarray(action, dtype=np.float32)
        k = int(num_clients)
        self._check_clients(k)
        size = 4 * k + 2 if self.heterogeneous else 2 * k + 4
        if a.shape != (size,):
            raise InvalidActionError(f"priority action has shape {a.shape}, expected ({size},) for K = {k}")
        per = np.zeros((self.max_clients, self.client_actions), dtype=np.float32)
        per[:k, 0], per[:k, 1] = a[:k], a[k: 2 * k]
        if self.heterogeneous:
            per[:k, 2], per[:k, 3] = a[2 * k + 2: 3 * k + 2], a[3 * k + 2:]
            cell = a[2 * k: 2 * k + 2]
        else:
            cell = a[2 * k:]
        return np.concatenate([per.ravel(), cell]).astype(np.float32)


class ClientSetEnv(gym.Env):
    """The surrogate priority env in the client-set layout, K drawn per episode (module docstring).

    Args:
        config: base config (FedsLLMConfig or nested overrides); its K is replaced by the drawn one.
        clients: (K_min, K_max) inclusive range of K drawn at each ``reset`` (churn between episodes); a single
            int fixes K.
        max_clients: rows of the layout (>= the range's top).
        heterogeneous: a cut and a rank per client (default: the config's ``heterogeneous``).
        render_mode: unused (no rendering); accepted for ``gym.make``.

    ``info`` holds the inner env's info plus ``num_clients``. Seeding: ``reset(seed)`` seeds ``self.np_random``,
    which draws K and then the inner env's reset seed, so the same seed gives the same episode.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: FedsLLMConfig | dict[str, Any] | None = None,
                 clients: int | tuple[int, int] | list[int] = (3, 20), max_clients: int = DEFAULT_MAX_CLIENTS,
                 heterogeneous: bool | None = None, render_mode: str | None = None):
        base = config.to_dict() if isinstance(config, FedsLLMConfig) else dict(config or {})
        cfg = FedsLLMConfig.from_dict(base)
        if heterogeneous is not None:
            base = merge_overrides(base, {"heterogeneous": bool(heterogeneous)})
        lo, hi = (clients, clients) if isinstance(clients, (int, np.integer)) else tuple(int(c) for c in clients)
        if not 1 <= lo <= hi:
            raise ConfigError(f"clients must be a K or a range (K_min, K_max) with 1 <= K_min <= K_max, got {clients}")
        self.layout = ClientSetLayout(int(max_clients), bool(cfg.heterogeneous if heterogeneous is None
                                                             else heterogeneous))
        if hi > self.layout.max_clients:
            raise ConfigError(f"clients range tops at K = {hi} but max_clients = {self.layout.max_clients}")
        self.clients_range = (lo, hi)
        self.base_config = base
        self.render_mode = render_mode
        self.observation_space = self.layout.observation_space()
        self.action_space = self.layout.action_space()
        self._envs: dict[int, gym.Env] = {}
        self.inner: gym.Env | None = None
        self.num_clients = lo
        self.inner_observation: np.ndarray | None = None
        """The K-client env's last observation (what a priority-action teacher reads: :class:`SetTeacher`)."""

    def inner_env(self, num_clients: int) -> gym.Env:
        """The K-client surrogate priority env (built once per K, kept)."""
        if num_clients not in self._envs:
            from fedsllm_env.priority import make_priority_env

            cfg = clients_overrides(self.base_config, num_clients)
            self._envs[num_clients] = make_priority_env(cfg, variant={
                "mode": "surrogate", "action_mode": "box", "heterogeneous": self.layout.heterogeneous})
        return self._envs[num_clients]

    @property
    def config(self) -> FedsLLMConfig:
        """The config of the current episode's cell (its K)."""
        return self.inner_env(self.num_clients).unwrapped.config

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw K, reset the K-client env with a seed drawn from ``self.np_random``, return the set observation."""
        super().reset(seed=seed)
        lo, hi = self.clients_range
        self.num_clients = int(self.np_random.integers(lo, hi + 1))
        self.inner = self.inner_env(self.num_clients)
        obs, info = self.inner.reset(seed=int(self.np_random.integers(2 ** 31 - 1)), options=options)
        self.inner_observation = obs
        return self.layout.encode(self.config, obs), {**info, "num_clients": self.num_clients}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Map the set action onto the K-client priority action and play one round."""
        if self.inner is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = self.layout.to_priority(action, self.num_clients)
        obs, reward, terminated, truncated, info = self.inner.step(np.clip(a, -1.0, 1.0))
        self.inner_observation = obs
        return (self.layout.encode(self.config, obs), float(reward), terminated, truncated,
                {**info, "num_clients": self.num_clients})

    def close(self) -> None:
        """Close every inner env."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self.inner = None


def make_client_set_env(config: FedsLLMConfig | dict[str, Any] | None = None, **kwargs: Any) -> ClientSetEnv:
    """Entry point of the AnyK ids (``gym.make`` passes ``variant``; only its ``heterogeneous`` is read)."""
    variant = kwargs.pop("variant", None) or {}
    if "heterogeneous" in variant and "heterogeneous" not in kwargs:
        kwargs["heterogeneous"] = bool(variant["heterogeneous"])
    return ClientSetEnv(config, **kwargs)


class SetTeacher:
    """A priority-action policy acting in a :class:`ClientSetEnv` (SB3 ``predict``; a behaviour-cloning teacher).

    Args:
        env: the client-set env (or a wrapper of it).
        factory: binds the K-client policy to the current K-client env (e.g. ``PriorityHeuristic``); called once
            per K. Its ``predict`` reads the K-client env's observation, and its action is mapped back into the
            set layout (:meth:`ClientSetLayout.from_priority`).
    """

    def __init__(self, env: gym.Env, factory: Any):
        self.env = env.unwrapped
        if not isinstance(self.env, ClientSetEnv):
            raise ConfigError(f"SetTeacher acts in a ClientSetEnv, got {type(self.env).__name__}")
        self.factory = factory
        self._bound: dict[int, Any] = {}

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """The set action of the bound policy's action in the current K-client env (``observation`` unused)."""
        env, k = self.env, self.env.num_clients
        if env.inner is None:
            raise gym.error.ResetNeeded("reset the ClientSetEnv before asking the teacher")
        if k not in self._bound:
            self._bound[k] = self.factory(env.inner)
        action, _ = self._bound[k].predict(env.inner_observation, deterministic=deterministic)
        return env.layout.from_priority(np.asarray(action, dtype=np.float32), k), None

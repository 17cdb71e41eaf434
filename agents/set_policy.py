"""A K-invariant actor-critic over the set of clients (Deep Sets), for the client-set layout of any K.

:class:`ClientSetPolicy` is an SB3 ``ActorCriticPolicy`` for the observations/actions of
:mod:`fedsllm_env.client_set` (``FedsLLM-Surrogate-AnyK-v0`` and its heterogeneous twin):

* every client row (its 12 features and the 7 context features) goes through one shared encoder phi -> e_k;
* the cell summary g = rho(masked mean of e, masked max of e, context);
* client k's action mean = psi(e_k, g) (its priorities, and its cut and rank when heterogeneous), the cell's
  (deadlines, and the shared cut and rank) = chi(g), the value = V(g);
* one log-std per action kind (client entries share theirs), and log-probabilities and entropies summed over the
  present clients' entries only (padding rows are masked out of the PPO loss).

No weight depends on K or on the padding K_max, so the same network acts at K it never saw: :class:`ClientSetAgent`
binds a trained policy to any priority env (``FedsLLM[-Surrogate][-Hetero]-Priority-v0``, any K) with a layout of
exactly K rows, which gives the same actions as any larger padding (tested).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from fedsllm_env.client_set import CLIENT_FEATURES, CONTEXT_FEATURES, ClientSetLayout
from fedsllm_env.errors import ConfigError

__all__ = ["layout_of_spaces", "MaskedDiagGaussian", "SetNet", "ClientSetPolicy", "is_client_set_agent",
           "ClientSetAgent"]


def layout_of_spaces(observation_space: spaces.Space, action_space: spaces.Space,
                     heterogeneous: bool | None = None) -> ClientSetLayout:
    """The :class:`ClientSetLayout` whose spaces these are; ConfigError if they are not a client-set layout's."""
    if not (isinstance(observation_space, spaces.Box) and isinstance(action_space, spaces.Box)
            and len(observation_space.shape) == 1 and len(action_space.shape) == 1):
        raise ConfigError(f"a client-set policy needs flat Box spaces (FedsLLM-Surrogate[-Hetero]-AnyK-v0), got "
                          f"{observation_space} and {action_space}")
    k_max, rest = divmod(observation_space.shape[0] - CONTEXT_FEATURES, 1 + CLIENT_FEATURES)
    n_act = action_space.shape[0]
    if k_max < 1 or rest:
        raise ConfigError(f"observation of size {observation_space.shape[0]} is not a client-set layout's "
                          f"(K_max x {1 + CLIENT_FEATURES} + {CONTEXT_FEATURES})")
    if heterogeneous is None:
        heterogeneous = n_act == 4 * k_max + 2 and n_act != 2 * k_max + 4
    layout = ClientSetLayout(k_max, bool(heterogeneous))
    if layout.action_space().shape != action_space.shape:
        raise ConfigError(f"action of size {n_act} does not fit the client-set layout with K_max = {k_max} "
                          f"(expected {layout.action_space().shape[0]})")
    return layout


class MaskedDiagGaussian(DiagGaussianDistribution):
    """A diagonal Gaussian whose log-probability and entropy sum over the unmasked entries only."""

    def proba_distribution(self, mean_actions: torch.Tensor, log_std: torch.Tensor,
                           mask: torch.Tensor | None = None) -> "MaskedDiagGaussian":
        """Gaussian with means ``mean_actions`` (B, D), log-stds (D,) or (B, D) and entry mask (B, D) (1 = counted)."""
        super().proba_distribution(mean_actions, log_std)
        self.mask = torch.ones_like(mean_actions) if mask is None else mask
        return self

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """Sum of the present entries' log-densities, (B,)."""
        return (self.distribution.log_prob(actions) * self.mask).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        """Sum of the present entries' entropies, (B,)."""
        return (self.distribution.entropy() * self.mask).sum(dim=-1)


class SetNet(nn.Module):
    """phi / rho / psi / chi / V of the module docstring; K (and the padding) read from the observation's length."""

    def __init__(self, client_actions: int, cell_actions: int, hidden: int = 64):
        super().__init__()
        f, g, h = CLIENT_FEATURES, CONTEXT_FEATURES, int(hidden)
        self.client_actions, self.cell_actions = int(client_actions), int(cell_actions)
        self.phi = nn.Sequential(nn.Linear(f + g, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh())
        self.rho = nn.Sequential(nn.Linear(2 * h + g, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh())
        self.psi = nn.Sequential(nn.Linear(2 * h, h), nn.Tanh(), nn.Linear(h, self.client_actions))
        self.chi = nn.Linear(h, self.cell_actions)
        self.value = nn.Sequential(nn.Linear(h, h), nn.Tanh(), nn.Linear(h, 1))
        for head in (self.psi[-1], self.chi):  # small initial means: the policy starts near the zero action
            nn.init.orthogonal_(head.weight, gain=0.01)
            nn.init.zeros_(head.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action means (B, D), values (B, 1), entry mask (B, D)) of flat set observations (B, K_max x 13 + 7)."""
        f, g = CLIENT_FEATURES, CONTEXT_FEATURES
        b = obs.shape[0]
        k_max = (obs.shape[1] - g) // (1 + f)
        mask = obs[:, :k_max]
        rows = obs[:, k_max: k_max * (1 + f)].reshape(b, k_max, f)
        context = obs[:, -g:]
        e = self.phi(torch.cat([rows, context[:, None, :].expand(b, k_max, g)], dim=-1))
        m = mask[..., None]
        mean = (e * m).sum(1) / m.sum(1).clamp(min=1.0)
        top = (e * m + (m - 1.0) * 4.0).max(1).values  # tanh features lie in [-1, 1]: padding at -4 never wins
        cell = self.rho(torch.cat([mean, top, context], dim=-1))
        per_client = self.psi(torch.cat([e, cell[:, None, :].expand_as(e)], dim=-1)) * m
        means = torch.cat([per_client.reshape(b, -1), self.chi(cell)], dim=-1)
        entry_mask = torch.cat([mask.repeat_interleave(self.client_actions, dim=1),
                                torch.ones(b, self.cell_actions, dtype=obs.dtype, device=obs.device)], dim=-1)
        return means, self.value(cell), entry_mask


class ClientSetPolicy(ActorCriticPolicy):
    """SB3 actor-critic with :class:`SetNet` (module docstring): ``PPO(ClientSetPolicy, anyk_env)``.

    Args:
        observation_space: a client-set observation Box.
        action_space: a client-set action Box.
        lr_schedule: learning-rate schedule (SB3).
        hidden: width of every layer.
        heterogeneous: the layout's kind (default: read from the spaces; give it when K_max = 1).
        log_std_init: initial log-std of every action entry.
        **kwargs: other ``ActorCriticPolicy`` arguments (``net_arch`` and ``ortho_init`` are ignored).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Any,
                 hidden: int = 64, heterogeneous: bool | None = None, log_std_init: float = 0.0, **kwargs: Any):
        self.layout = layout_of_spaces(observation_space, action_space, heterogeneous)
        self.hidden = int(hidden)
        kwargs.pop("net_arch", None)
        kwargs["ortho_init"] = False
        super().__init__(observation_space, action_space, lr_schedule, log_std_init=log_std_init, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        lay = self.layout
        self.net = SetNet(lay.client_actions, lay.cell_actions, self.hidden)
        self.log_std = nn.Parameter(torch.full((lay.client_actions + lay.cell_actions,), float(self.log_std_init)))
        self.action_dist = MaskedDiagGaussian(self.action_space.shape[0])
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _full_log_std(self, k_max: int) -> torch.Tensor:
        c = self.layout.client_actions
        return torch.cat([self.log_std[:c].repeat(k_max), self.log_std[c:]])

    def _dist(self, obs: torch.Tensor) -> tuple[MaskedDiagGaussian, torch.Tensor]:
        x = self.extract_features(obs, self.pi_features_extractor).float()
        means, values, entry_mask = self.net(x)
        k_max = (x.shape[1] - CONTEXT_FEATURES) // (1 + CLIENT_FEATURES)
        return self.action_dist.proba_distribution(means, self._full_log_std(k_max), entry_mask), values

    def forward(self, obs: torch.Tensor, deterministic: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions, values and log-probabilities (SB3's contract)."""
        dist, values = self._dist(obs)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, values, dist.log_prob(actions)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities of ``actions`` and entropies (present entries only)."""
        dist, values = self._dist(obs)
        return values, dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: torch.Tensor) -> MaskedDiagGaussian:
        """The action distribution at ``obs``."""
        return self._dist(obs)[0]

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Values (B, 1)."""
        return self._dist(obs)[1]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(hidden=self.hidden, heterogeneous=self.layout.heterogeneous)
        data.pop("net_arch", None)
        return data

    @torch.no_grad()
    def mean_actions(self, set_obs: np.ndarray) -> np.ndarray:
        """Deterministic actions (the Gaussian means, clipped to [-1, 1]) of set observations (B, n) of any K_max."""
        x = torch.as_tensor(np.asarray(set_obs, dtype=np.float32), device=self.device)
        means = self.net(x)[0]
        return np.clip(means.cpu().numpy(), -1.0, 1.0)


def is_client_set_agent(model: Any) -> bool:
    """Whether ``model`` (an SB3 algorithm) carries a :class:`ClientSetPolicy`."""
    return isinstance(getattr(model, "policy", None), ClientSetPolicy)


class ClientSetAgent:
    """A trained client-set policy bound to a priority env of any K (an evaluation ``PolicyFactory``).

    ``ClientSetAgent(model)(env)`` returns a policy with SB3's ``predict`` that reads the env's K-client
    observation, encodes it with a layout of exactly K rows, and returns the K-client priority action
    (deterministic: the Gaussian means). The env must be a priority id of the policy's kind (shared or
    heterogeneous cut/rank); anything else is refused with one line.
    """

    def __init__(self, model: Any):
        if not is_client_set_agent(model):
            raise ConfigError(f"{type(model).__name__} does not carry a ClientSetPolicy")
        self.model = model
        self.heterogeneous = model.policy.layout.heterogeneous

    def __call__(self, env: gym.Env) -> "_BoundClientSetAgent":
        """Bind to ``env`` (a K-client priority env)."""
        from fedsllm_env.priority import priority_space

        cfg = getattr(env.unwrapped, "config", None)
        if cfg is None:
            raise ConfigError(f"a client-set agent acts in FedsLLM priority envs, got {type(env.unwrapped).__name__}")
        k = cfg.wireless.num_clients
        if bool(cfg.heterogeneous) != self.heterogeneous:
            kind = "heterogeneous (a cut and a rank per client)" if self.heterogeneous else "shared cut and rank"
            raise ConfigError(f"this client-set agent was trained with a {kind}, but the env has "
                              f"heterogeneous={cfg.heterogeneous}")
        if env.action_space.shape != priority_space(k, bool(cfg.heterogeneous)).shape:
            raise ConfigError(f"a client-set agent acts with priority actions (FedsLLM[-Surrogate][-Hetero]-Priority-v0)"
                              f"; this env's action space is {env.action_space}")
        return _BoundClientSetAgent(self.model.policy, ClientSetLayout(k, self.heterogeneous), cfg)


class _BoundClientSetAgent:
    """A client-set policy acting in one K-client priority env (SB3 ``predict``)."""

    def __init__(self, policy: ClientSetPolicy, layout: ClientSetLayout, cfg: Any):
        self.policy, self.layout, self.cfg = policy, layout, cfg

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """The K-client priority action for ``observation`` (a batch of them for a batch)."""
        obs = np.asarray(observation)
        batch = obs if obs.ndim == 2 else obs[None]
        x = np.stack([self.layout.encode(self.cfg, o) for o in batch])
        k = self.cfg.wireless.num_clients
        acts = np.stack([self.layout.to_priority(a, k) for a in self.policy.mean_actions(x)])
        return (acts if obs.ndim == 2 else acts[0]), None

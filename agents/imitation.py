"""Behaviour-cloning warm start: fit an on-policy agent's action distribution to a teacher's actions.

The teacher is any policy with SB3's ``predict`` (e.g. a baseline from ``baselines.policy``, bound by a
factory ``env -> Policy``). Demonstrations are the teacher's own rollouts on seeded episodes. Box
actions are fitted by mean-squared error of the Gaussian mean, MultiDiscrete actions by the negative
log-likelihood of every sub-action. Only actor-critic policies (PPO, A2C, MaskablePPO) are supported:
their ``policy.get_distribution(obs)`` is what acts.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from agents.evaluation import Policy, make_eval_env
from fedsllm_env.progress import progress_bar

__all__ = ["collect_demonstrations", "search_demonstrations", "behaviour_clone"]


def collect_demonstrations(env_id: str, teacher: Callable[[gym.Env], Policy], n_samples: int, seed: int,
                           config: dict[str, Any] | None = None, progress: bool = True,
                           env_kwargs: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Roll out ``teacher`` for ``n_samples`` env steps (episode i reset with ``seed + i``).

    Args:
        env_id: env id the agent will train on.
        teacher: factory binding the teacher policy to the env it acts in.
        n_samples: number of (observation, action) pairs.
        seed: reset seed of the first episode.
        config: nested env config overrides.
        progress: show a progress bar.
        env_kwargs: extra ``gym.make`` keyword arguments of the env.

    Returns:
        ``(observations (n, obs_dim) float32, actions (n, act_dim))``.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    env = make_eval_env(env_id, config, env_kwargs=env_kwargs)
    policy = teacher(env)
    observations, actions = [], []
    episode = 0
    obs, _ = env.reset(seed=seed)
    with progress_bar(total=n_samples, desc="teacher rollouts", enabled=progress, leave=False) as bar:
        while len(observations) < n_samples:
            action, _ = policy.predict(obs, deterministic=True)
            observations.append(np.asarray(obs, dtype=np.float32))
            actions.append(np.asarray(action))
            obs, _, terminated, truncated, _ = env.step(action)
            bar.update(1)
            if terminated or truncated:
                episode += 1
                obs, _ = env.reset(seed=seed + episode)
    env.close()
    return np.stack(observations), np.stack(actions)


def _bin_centres(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n * 2.0 - 1.0


def search_demonstrations(env_id: str, n_samples: int, seed: int, config: dict[str, Any] | None = None,
                          num_envs: int = 256, deadlines_ms: Sequence[float] = tuple(np.linspace(-1.0, 0.5, 11)),
                          deadlines_fs: Sequence[float] = (-1.0, -0.5, 0.0), progress: bool = False
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Demonstrations of a search teacher in the priority action space (:mod:`fedsllm_env.priority`).

    Each round the teacher prices candidate actions on the round's own channel with the delay model
    (``SurrogateVectorEnv.price``; nothing is played): first every (split, rank) with neutral priorities and
    deadlines, keeping the one of least E(r) T_round (the paper's objective, as the optimizer's exhaustive
    split/rank step), then a grid of deadlines per link, keeping the least T_round; priorities stay neutral.
    It plays its choice, so the states are its own trajectory. Episodes run in a batch of ``num_envs``
    (env i reset with ``seed + i``). ``progress``: show the teacher steps collected
    (:func:`fedsllm_env.progress.progress_bar`).

    Returns:
        ``(observations (n, obs_dim) float32, actions (n, 2 K + 4) float32)``.
    """
    import gymnasium as gym

    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", config=config or {})
    env = venv.unwrapped
    if getattr(env, "parametrisation", None) != "priority":
        raise ValueError(f"the search teacher acts in a batched priority env, got {env_id!r}")
    k = env.config.wireless.num_clients
    n_split, n_rank = env.shape.n_layer - 1, len(env.config.model.ranks)
    obs, _ = venv.reset(seed=seed)
    observations, actions = [], []
    bar = progress_bar(total=n_samples, desc="search teacher steps", enabled=progress, leave=False)
    while sum(len(o) for o in observations) < n_samples:
        base = np.zeros((num_envs, 2 * k + 4))
        best = np.full(num_envs, np.inf)
        choice = base.copy()
        for s_a in _bin_centres(n_split):
            for r_a in _bin_centres(n_rank):
                cand = base.copy()
                cand[:, -2], cand[:, -1] = s_a, r_a
                dec, delay = env.price(cand)
                value = env.rounds_needed(dec.split_idx, dec.rank_idx) * delay.round_s
                better = value < best
                best = np.where(better, value, best)
                choice[better] = cand[better]
        best[:] = np.inf
        base = choice.copy()
        for d_ms in deadlines_ms:
            for d_fs in deadlines_fs:
                cand = base.copy()
                cand[:, 2 * k], cand[:, 2 * k + 1] = d_ms, d_fs
                value = env.price(cand)[1].round_s
                better = value < best
                best = np.where(better, value, best)
                choice[better] = cand[better]
        observations.append(np.asarray(obs, dtype=np.float32))
        actions.append(choice.astype(np.float32))
        obs, *_ = venv.step(choice)
        bar.update(min(num_envs, n_samples - bar.n))
    bar.close()
    venv.close()
    return np.concatenate(observations)[:n_samples], np.concatenate(actions)[:n_samples]


def behaviour_clone(model: BaseAlgorithm, observations: np.ndarray, actions: np.ndarray, epochs: int = 100,
                    batch_size: int = 256, learning_rate: float = 1e-3, seed: int = 0,
                    progress: bool = False) -> list[float]:
    """Fit ``model.policy`` to the demonstrations in place; returns the mean loss of every epoch (``progress``:
    show the epochs done, :func:`fedsllm_env.progress.progress_bar`).

    Raises:
        ValueError: the policy is not an actor-critic policy (SAC/TD3), the action space is neither
            Box nor MultiDiscrete, or the data do not match the spaces.
    """
    policy = model.policy
    if not isinstance(policy, (ActorCriticPolicy, MaskableActorCriticPolicy)):
        raise ValueError(f"behaviour cloning supports actor-critic agents (ppo, a2c, maskable_ppo), "
                         f"got {type(model).__name__}")
    space = model.action_space
    if not isinstance(space, (spaces.Box, spaces.MultiDiscrete)):
        raise ValueError(f"behaviour cloning supports Box and MultiDiscrete actions, got {space}")
    if observations.shape[0] != actions.shape[0] or observations.shape[1:] != model.observation_space.shape \
            or actions.shape[1:] != space.shape:
        raise ValueError(f"demonstrations of shapes {observations.shape} / {actions.shape} do not match the "
                         f"spaces {model.observation_space.shape} / {space.shape}")
    device = policy.device
    x = torch.as_tensor(observations, dtype=torch.float32, device=device)
    y = torch.as_tensor(actions, dtype=torch.float32 if isinstance(space, spaces.Box) else torch.long, device=device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    gen = torch.Generator().manual_seed(seed)
    history = []
    policy.set_training_mode(True)
    for _ in progress_bar(range(epochs), desc="behaviour cloning epochs", enabled=progress, leave=False):
        perm = torch.randperm(x.shape[0], generator=gen)
        total, count = 0.0, 0
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i:i + batch_size]
            dist = policy.get_distribution(x[idx])
            if isinstance(space, spaces.Box):
                loss = ((dist.distribution.mean - y[idx]) ** 2).mean()
            else:
                loss = -dist.log_prob(y[idx]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        history.append(total / count)
    policy.set_training_mode(False)
    return history

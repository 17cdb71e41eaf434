"""Build Stable-Baselines3 agents for the FedsLLM env ids from rl-zoo style YAML hyperparameters.

The registry :data:`ALGOS` maps a short name to the SB3 / sb3-contrib class. Hyperparameters live in
``agents/hyperparams/<algo>.yml``, keyed by env id with a ``default`` entry (the rl-baselines3-zoo
layout, without ``eval``: ``policy_kwargs`` is a plain YAML mapping and ``activation_fn`` a name).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.vec_env import VecEnv

from fedsllm_env.registration import env_id, sibling_id

__all__ = [
    "ALGOS",
    "ACTION_SPACES",
    "BOX_ENV_ID",
    "DISCRETE_ENV_ID",
    "SCRIPT_KEYS",
    "default_env_id",
    "box_env_id",
    "discrete_env_id",
    "load_hyperparams",
    "merge_hyperparams",
    "split_hyperparams",
    "check_compatible",
    "make_agent",
    "build_agent",
    "algo_of",
]

ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "sac": SAC,
    "a2c": A2C,
    "td3": TD3,
    "maskable_ppo": MaskablePPO,
}
"""Short algorithm name -> Stable-Baselines3 (or sb3-contrib) class."""

_ON_POLICY_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
ACTION_SPACES: dict[str, tuple[type[spaces.Space], ...]] = {
    "ppo": _ON_POLICY_SPACES,
    "a2c": _ON_POLICY_SPACES,
    "sac": (spaces.Box,),
    "td3": (spaces.Box,),
    "maskable_ppo": (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
}
"""Action-space types each algorithm supports (SB3's ``supported_action_spaces``)."""

BOX_ENV_ID = env_id("surrogate", "box")
"""Default id for Box-action algorithms (PPO, SAC, A2C, TD3)."""
DISCRETE_ENV_ID = env_id("surrogate", "multidiscrete")
"""Default id for MaskablePPO (MultiDiscrete actions + ``env.action_masks()``)."""

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
"""Folder of the per-algorithm YAML files (shipped as package data)."""

SCRIPT_KEYS = ("n_timesteps", "n_envs", "normalize_reward")
"""Hyperparameter keys read by the training scripts, not passed to the algorithm's constructor
(``normalize_reward``: train on VecNormalize-scaled rewards; observations are never normalised, so the
saved policy needs no statistics at inference)."""

_ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
}


def _check_algo(algo: str) -> str:
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; choose one of {sorted(ALGOS)}")
    return algo


def default_env_id(algo: str) -> str:
    """The surrogate env id an algorithm trains on by default.

    Args:
        algo: a key of :data:`ALGOS`.

    Returns:
        ``FedsLLM-Surrogate-Discrete-v0`` for ``maskable_ppo``, ``FedsLLM-Surrogate-v0`` otherwise.
    """
    return DISCRETE_ENV_ID if _check_algo(algo) == "maskable_ppo" else BOX_ENV_ID


def load_hyperparams(algo: str, env_id: str) -> dict[str, Any]:
    """Read the hyperparameters of ``algo`` for ``env_id`` from ``agents/hyperparams/<algo>.yml``.

    Args:
        algo: a key of :data:`ALGOS`.
        env_id: a registered env id; the ``default`` entry is used when the id has none.

    Returns:
        A fresh dict (safe to mutate) with the YAML values, including the script keys
        :data:`SCRIPT_KEYS`; ``policy_kwargs.activation_fn`` is still a name here.
    """
    _check_algo(algo)
    ref = HYPERPARAMS_DIR / f"{algo}.yml"
    if not ref.is_file():
        raise FileNotFoundError(f"no hyperparameter file {ref} for algorithm {algo!r}")
    table = yaml.safe_load(ref.read_text()) or {}
    if env_id in table:
        entry = table[env_id]
    elif "default" in table:
        entry = table["default"]
    else:
        raise KeyError(f"{ref} has neither an entry for {env_id!r} nor a 'default' entry")
    return copy.deepcopy(dict(entry))


def merge_hyperparams(params: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``overrides`` over ``params`` (``policy_kwargs`` merged key by key), as a new dict.

    Args:
        params: e.g. from :func:`load_hyperparams`.
        overrides: hyperparameter overrides (None: none).
    """
    out = copy.deepcopy(params)
    for key, value in (overrides or {}).items():
        if key == "policy_kwargs" and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def split_hyperparams(hyperparams: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the script keys (:data:`SCRIPT_KEYS`) from the algorithm's constructor kwargs.

    Args:
        hyperparams: a dict as returned by :func:`load_hyperparams` (possibly with overrides).

    Returns:
        ``(algo_kwargs, script_kwargs)``.
    """
    algo_kwargs = {k: v for k, v in hyperparams.items() if k not in SCRIPT_KEYS}
    script_kwargs = {k: v for k, v in hyperparams.items() if k in SCRIPT_KEYS}
    return algo_kwargs, script_kwargs


def _spec_id(env: gym.Env | VecEnv) -> str | None:
    """Env id of a gym env or of the first env of a VecEnv (None if not made by ``gym.make``)."""
    if isinstance(env, VecEnv):
        spec = env.get_attr("spec", indices=[0])[0]
    else:
        spec = env.spec
    return None if spec is None else spec.id


def box_env_id(env_id: str | None) -> str:
    """The Box-action sibling of a FedsLLM id (``FedsLLM-Surrogate-Discrete-v0`` -> ``FedsLLM-Surrogate-v0``;
    :data:`BOX_ENV_ID` for None or another id)."""
    return sibling_id(env_id, "box")


def discrete_env_id(env_id: str | None) -> str:
    """The MultiDiscrete (maskable) sibling of a FedsLLM id (``FedsLLM-v0`` -> ``FedsLLM-Discrete-v0``;
    :data:`DISCRETE_ENV_ID` for None or another id)."""
    return sibling_id(env_id, "multidiscrete")


def check_compatible(algo: str, action_space: spaces.Space, env_id: str | None = None) -> None:
    """Raise a ValueError naming the right env id if ``algo`` cannot act in ``action_space``.

    Args:
        algo: a key of :data:`ALGOS`.
        action_space: the env's action space.
        env_id: the env's id, used in the message only.
    """
    _check_algo(algo)
    if isinstance(action_space, ACTION_SPACES[algo]):
        return
    where = f"env {env_id!r}" if env_id else "this env"
    if algo == "maskable_ppo":
        hint = f"use {discrete_env_id(env_id)!r} (MultiDiscrete with action masks), or 'ppo' on {where}"
    else:
        hint = f"use {box_env_id(env_id)!r} (Box actions)"
        if algo in ("sac", "td3"):
            hint += f", or 'maskable_ppo'/'ppo' on {where}"
    raise ValueError(
        f"algorithm {algo!r} does not support the {type(action_space).__name__} action space of {where}; {hint}")


def _resolve_policy_kwargs(policy_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    if policy_kwargs is None:
        return None
    resolved = dict(policy_kwargs)
    act = resolved.get("activation_fn")
    if isinstance(act, str):
        if act not in _ACTIVATIONS:
            raise ValueError(f"unknown policy_kwargs.activation_fn {act!r}; choose one of {sorted(_ACTIVATIONS)}")
        resolved["activation_fn"] = _ACTIVATIONS[act]
    return resolved


def _action_noise(noise_type: str | None, noise_std: float | None, action_space: spaces.Space) -> Any:
    if noise_type is None:
        return None
    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"noise_type {noise_type!r} needs a Box action space, got {type(action_space).__name__}")
    n = int(np.prod(action_space.shape))
    sigma = float(noise_std if noise_std is not None else 0.1) * np.ones(n)
    if noise_type == "normal":
        return NormalActionNoise(mean=np.zeros(n), sigma=sigma)
    if noise_type == "ornstein-uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(mean=np.zeros(n), sigma=sigma)
    raise ValueError(f"unknown noise_type {noise_type!r}; choose 'normal' or 'ornstein-uhlenbeck'")


def make_agent(algo: str, env: gym.Env | VecEnv, seed: int | None, hyperparams: dict[str, Any] | None = None,
               tensorboard_log: str | None = None, verbose: int = 0, device: str = "cpu",
               env_id: str | None = None) -> BaseAlgorithm:
    """Instantiate an SB3 agent for ``env`` with the YAML defaults, optionally overridden.

    Args:
        algo: a key of :data:`ALGOS`.
        env: a gym env (SB3 wraps it in a Monitor + DummyVecEnv) or a VecEnv.
        seed: seed of the agent's RNGs (SB3 seeds python, numpy, torch and the action space); None = unseeded.
        hyperparams: overrides merged over :func:`load_hyperparams` of the env's id (``policy_kwargs`` merged
            key by key); script keys (:data:`SCRIPT_KEYS`) are ignored here.
        tensorboard_log: TensorBoard log folder, or None.
        verbose: SB3 verbosity (0 silent, 1 info).
        device: torch device of the policy (CPU is faster for these small MLPs).
        env_id: env id used to pick the YAML entry; default: read from ``env.spec``.

    Returns:
        The untrained agent.

    Raises:
        ValueError: unknown algorithm, or an action space the algorithm does not support.
    """
    _check_algo(algo)
    env_id = env_id or _spec_id(env)
    params = merge_hyperparams(load_hyperparams(algo, env_id or "default"), hyperparams)
    return build_agent(algo, env, seed, params, tensorboard_log, verbose, device, env_id)


def build_agent(algo: str, env: gym.Env | VecEnv, seed: int | None, params: dict[str, Any],
                tensorboard_log: str | None = None, verbose: int = 0, device: str = "cpu",
                env_id: str | None = None) -> BaseAlgorithm:
    """Instantiate an SB3 agent from already resolved hyperparameters (no YAML read, no merge).

    Args:
        algo: a key of :data:`ALGOS`.
        env: the training env.
        seed: seed of the agent's RNGs.
        params: the complete hyperparameters (e.g. ``resolve_hyperparams``); script keys are dropped.
        tensorboard_log: TensorBoard log folder, or None.
        verbose: SB3 verbosity.
        device: torch device.
        env_id: env id, for error messages.
    """
    _check_algo(algo)
    check_compatible(algo, env.action_space, env_id)
    kwargs, _ = split_hyperparams(copy.deepcopy(params))
    policy = kwargs.pop("policy", "MlpPolicy")
    if policy == "ClientSetPolicy":  # the K-invariant Deep Sets policy of the AnyK ids (not one of SB3's names)
        from agents.set_policy import ClientSetPolicy

        policy = ClientSetPolicy
    kwargs["policy_kwargs"] = _resolve_policy_kwargs(kwargs.get("policy_kwargs"))
    noise_type, noise_std = kwargs.pop("noise_type", None), kwargs.pop("noise_std", None)
    if noise_type is not None:
        kwargs["action_noise"] = _action_noise(noise_type, noise_std, env.action_space)
    try:
        return ALGOS[algo](policy, env, seed=seed, tensorboard_log=tensorboard_log, verbose=verbose,
                           device=device, **kwargs)
    except TypeError as e:
        raise ValueError(f"bad hyperparameters for {algo!r} on {env_id!r}: {e}") from e


def algo_of(model: BaseAlgorithm) -> str:
    """Short name (key of :data:`ALGOS`) of an agent instance."""
    for name, cls in ALGOS.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not one of {sorted(ALGOS)}")

"""Stable-Baselines3 on the batched surrogate: a ``VecEnv`` adapter around
:class:`~fedsllm_env.vector.SurrogateVectorEnv`.

SB3 has no adapter for Gymnasium ``VectorEnv`` s (its ``make_vec_env`` builds one env object per copy), so
:class:`BatchedVecEnv` speaks SB3's ``VecEnv`` API over the batch: env i is reset with ``seed + i`` by
``VecEnv.seed`` (SB3's convention, as ``make_vec_env`` does), finished episodes restart in the same step
with ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` set (SAME_STEP autoreset, SB3's
own semantics), rewards are float32. Given the same actions it returns exactly what a ``DummyVecEnv`` of
single envs returns (``tests/test_vec_env.py`` trains PPO both ways and compares the weights).

Infos: building one dict per env and step would cost more than the step itself, so only finished envs
get their full step info (the single env's keys); the per-step means over the batch of every scalar
(``round_delay_s``, ``delay_breakdown/<term>``, ``reward_terms/<term>``, ...) are in :attr:`BatchedVecEnv.step_means`,
which :class:`~agents.callbacks.FedsLLMInfoCallback` logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices

import fedsllm_env  # noqa: F401 - registers the ids
from fedsllm_env.vector import SurrogateVectorEnv

__all__ = ["BatchedVecEnv", "has_batched_env", "make_batched_vec_env", "VEC_ENV_KINDS"]

VEC_ENV_KINDS = ("batched", "dummy", "subproc")
"""Ways to run n training envs: one batched numpy env (surrogate ids), or SB3's DummyVecEnv / SubprocVecEnv of
single envs (``agents.training.VEC_ENVS``)."""


def has_batched_env(env_id: str) -> bool:
    """Whether ``env_id`` is registered with a batched ``vector_entry_point`` (the surrogate Box/Discrete ids)."""
    return gym.spec(env_id).vector_entry_point is not None


def _flat(info: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in info.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = value
    return out


def _env_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Env i's entry of a batched info dict, as the single env's info (python scalars, nested dicts kept)."""
    return {key: _env_info(value, i) if isinstance(value, dict) else value[i].item() for key, value in info.items()}


class BatchedVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a :class:`SurrogateVectorEnv`.

    Args:
        venv: the batched env.
    """

    def __init__(self, venv: SurrogateVectorEnv):
        self.venv = venv
        self._actions: np.ndarray | None = None
        self.step_means: dict[str, float] = {}
        """Mean over the batch of every scalar of the last step's info (``delay_breakdown/round_s``, ...)."""
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> np.ndarray:
        """Reset every env with the seeds set by :meth:`seed` (then forgotten, as in SB3)."""
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, info = self.venv.reset(seed=seeds)
        self.reset_infos = [{"val_loss": float(info["val_loss"][i]),
                             "target_val_loss": float(info["target_val_loss"][i])} for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions for :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step the batch; returns ``(obs, rewards float32, dones, infos)``."""
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        sb = self.venv.step_batch(self._actions)
        self._actions = None
        done = sb.done
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            info = _env_info(sb.info, int(i))
            info["terminal_observation"] = sb.final_obs[i]
            info["TimeLimit.truncated"] = bool(sb.truncated[i] and not sb.terminated[i])
            infos[i] = info
        self.step_means = {key: float(np.mean(value)) for key, value in _flat(sb.info).items()}
        return sb.obs, sb.reward.astype(np.float32), done, infos

    def close(self) -> None:
        """Close the batched env."""
        self.venv.close()

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The batched env's attribute, once per requested env (they share one object)."""
        value = getattr(self.venv, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the batched env (all envs share it; only ``indices=None`` is accepted)."""
        if indices is not None and sorted(self._indices(indices)) != list(range(self.num_envs)):
            raise ValueError("the batched env shares its attributes between all envs; set them with indices=None")
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """``action_masks`` per env (MaskablePPO); other methods are called once on the batch and their result
        repeated per env."""
        idx = self._indices(indices)
        if method_name == "action_masks":
            masks = self.venv.action_masks()
            return [masks[i] for i in idx]
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No env of the batch is wrapped by a gym wrapper."""
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """The batched env does not render."""
        return [None for _ in range(self.num_envs)]


def make_batched_vec_env(env_id: str, n_envs: int, seed: int, config: dict[str, Any] | None = None,
                         monitor_dir: str | Path | None = None) -> VecEnv:
    """The batched counterpart of ``make_vec_env``: env i is reset with ``seed + i`` first; episode returns and
    lengths are recorded by a ``VecMonitor`` (``<monitor_dir>/batched.monitor.csv`` when given).

    Args:
        env_id: a surrogate id with a batched entry point (see :func:`has_batched_env`).
        n_envs: number of envs in the batch.
        seed: base seed.
        config: nested config overrides.
        monitor_dir: folder of the Monitor CSV (None: not written).

    Raises:
        ValueError: the id has no batched version (real mode, hybrid actions).
    """
    if not has_batched_env(env_id):
        raise ValueError(f"{env_id!r} has no batched version (real training and the hybrid ids step one env at a "
                         f"time); use --vec-env dummy or subproc")
    venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", config=config or {})
    env = BatchedVecEnv(venv)
    env.seed(seed)
    filename = None
    if monitor_dir is not None:
        Path(monitor_dir).mkdir(parents=True, exist_ok=True)
        filename = str(Path(monitor_dir) / "batched")
    return VecMonitor(env, filename=filename)

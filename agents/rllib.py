"""RLlib (Ray's RL library, current API stack) on the FedsLLM env ids: env creator, per-runner seeding, PPO.

Optional: needs ``pip install "fedsllm-env[rllib]"`` (``ray[rllib]``); nothing here imports Ray at module
level. After :func:`register_rllib_envs` every FedsLLM id works as RLlib's env descriptor::

    from ray.rllib.algorithms.ppo import PPOConfig
    from agents.rllib import register_rllib_envs

    register_rllib_envs()
    config = (PPOConfig().environment("FedsLLM-Surrogate-v0", env_config={"config": {"wireless": {"num_clients": 5}},
                                                                          "seed": 0})
              .env_runners(num_env_runners=2))
    algo = config.build_algo(); algo.train()

``env_config`` holds ``gym.make`` keyword arguments (``config``: nested overrides, ``render_mode``, ...) plus
``seed``, the base seed of the run. Each env runner makes its envs with :func:`make_rllib_env`:

* seeding: env ``vector_index`` of runner ``worker_index`` starts from
  :func:`runner_seed` ``(seed, worker_index, vector_index)``; a seed that RLlib itself passes to ``reset``
  (``config.debugging(seed=...)``) is mixed with the same two indices, so no two envs of a run share a
  random stream and the same seeds give the same episodes;
* real mode (``FedsLLM-v0`` and its siblings): the split-fed engine is built at the env's first ``reset``
  inside the runner (:class:`~fedsllm_env.splitfed.lazy.LazyEngine`), so building the algorithm (space
  inference) loads no model; runners may declare GPU fractions (``num_gpus_per_env_runner``), and an engine
  whose ``model.device`` is "cuda"/"auto" then uses the GPU share Ray assigned to the runner.

:func:`ppo_config` builds such a config with this project's defaults, :func:`train_rllib` runs it for a step
budget and saves a checkpoint (``fedsllm train --framework rllib``); :class:`RLlibPolicy` puts the trained
module behind SB3's ``predict`` so ``fedsllm evaluate`` / ``benchmark`` score it like any other agent.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import fedsllm_env  # noqa: F401  (registers the ids)
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import DependencyNotInstalled

__all__ = [
    "RLLIB_INSTALL_HINT",
    "RLLIB_ALGOS",
    "require_rllib",
    "fedsllm_env_ids",
    "runner_seed",
    "RunnerSeed",
    "make_rllib_env",
    "register_rllib_envs",
    "default_gpus_per_env_runner",
    "ppo_config",
    "RLlibTrainResult",
    "train_rllib",
    "RLlibPolicy",
    "CLIENTS_IDS",
    "make_rllib_clients_env",
    "RLlibClientsPolicy",
]

RLLIB_INSTALL_HINT = "pip install 'fedsllm-env[rllib]' (or 'fedsllm-env[all]')"
"""What to install when RLlib is missing."""

RLLIB_ALGOS = ("ppo",)
"""Algorithms ``fedsllm train --framework rllib`` builds (PPO: every action space of the ids)."""

CLIENTS_IDS: dict[bool, str] = {False: "FedsLLM-Surrogate-Clients-v0", True: "FedsLLM-Surrogate-Hetero-Clients-v0"}
"""heterogeneous -> RLlib-only id of the clients-as-agents env (:mod:`fedsllm_env.multiagent`, surrogate): a
multi-agent env with one shared policy ``"shared"`` (not a Gymnasium id)."""
CLIENTS_MODULE = "shared"
"""Module id of the policy every client agent shares."""

_SEED_KEY = "seed"
_VECTOR_COUNTER = "_fedsllm_next_vector_index"


def require_rllib() -> Any:
    """Import and return ``ray.rllib``, or raise DependencyNotInstalled naming the ``[rllib]`` extra."""
    try:
        import ray.rllib  # noqa: F401
        from ray import rllib
    except ImportError as e:  # no ray, or plain ray without RLlib's own dependencies
        raise DependencyNotInstalled(f"the RLlib framework needs ray[rllib], which is not installed ({e}): "
                                     f"{RLLIB_INSTALL_HINT}") from e
    return rllib


def fedsllm_env_ids() -> list[str]:
    """Every registered FedsLLM env id (real and surrogate, all action modes)."""
    return sorted(i for i in gym.registry if i.startswith("FedsLLM"))


def runner_seed(seed: int, worker_index: int, vector_index: int) -> int:
    """Seed of env ``vector_index`` on runner ``worker_index`` for the run seed ``seed`` (a 32-bit int).

    Distinct (worker, vector) pairs get unrelated streams (numpy ``SeedSequence`` over the three numbers).
    """
    if seed < 0 or worker_index < 0 or vector_index < 0:
        raise ValueError(f"seed, worker_index and vector_index must be >= 0, got {seed}, {worker_index}, {vector_index}")
    return int(np.random.SeedSequence([int(seed), int(worker_index), int(vector_index)]).generate_state(1)[0])


class RunnerSeed(gym.Wrapper):
    """Seeds an env from its place in a run: reset seeds are mixed with (worker_index, vector_index).

    The first ``reset()`` without a seed uses ``base_seed``; later resets without a seed continue the env's
    random stream (Gymnasium's convention); ``reset(seed=s)`` uses :func:`runner_seed` ``(s, worker, vector)``.
    """

    def __init__(self, env: gym.Env, base_seed: int, worker_index: int, vector_index: int):
        super().__init__(env)
        self.base_seed, self.worker_index, self.vector_index = int(base_seed), int(worker_index), int(vector_index)
        runner_seed(self.base_seed, self.worker_index, self.vector_index)  # validates
        self._seeded = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset with the mixed seed (see the class docstring)."""
        if seed is None and not self._seeded:
            seed = self.base_seed
        if seed is not None:
            seed = runner_seed(seed, self.worker_index, self.vector_index)
            self._seeded = True
        return self.env.reset(seed=seed, options=options)


def _variant(env_id: str) -> dict[str, Any]:
    spec = gym.spec(env_id)
    variant = (spec.kwargs or {}).get("variant") or {}
    return dict(variant)


def _make_one(env_id: str, make_kwargs: dict[str, Any], base_seed: int, worker_index: int,
              vector_index: int) -> gym.Env:
    kwargs = dict(make_kwargs)
    overrides = kwargs.get("config")
    cfg = overrides if isinstance(overrides, FedsLLMConfig) else FedsLLMConfig.from_dict(overrides or {})
    cfg = cfg.replace(**_variant(env_id))
    if cfg.mode == "real" and "backend" not in kwargs:
        from fedsllm_env.splitfed.lazy import LazyEngine

        kwargs["backend"] = LazyEngine(cfg)
    return RunnerSeed(gym.make(env_id, **kwargs), base_seed, worker_index, vector_index)


def make_rllib_env(env_id: str, env_config: dict[str, Any] | None = None) -> gym.Env:
    """RLlib's env creator for ``env_id``: ``gym.make(env_id, **env_config)`` seeded by its runner position.

    Args:
        env_id: a FedsLLM id.
        env_config: RLlib's ``EnvContext`` (a dict with ``worker_index`` / ``vector_index`` attributes) or a
            plain dict: ``gym.make`` keyword arguments plus ``seed`` (base seed of the run, default 0). With
            ``num_envs`` (RLlib's vector entry point) a ``SyncVectorEnv`` of that many envs is returned.

    Returns:
        The env (or vector env), wrapped in :class:`RunnerSeed`.
    """
    ctx = env_config if env_config is not None else {}
    make_kwargs = {k: v for k, v in dict(ctx).items() if k not in (_SEED_KEY, "num_envs")}
    base_seed = int(ctx.get(_SEED_KEY, 0))
    worker = int(getattr(ctx, "worker_index", 0) or 0)
    if "num_envs" in ctx:
        fns = [functools.partial(_make_one, env_id, make_kwargs, base_seed, worker, i) for i in range(int(ctx["num_envs"]))]
        return gym.vector.SyncVectorEnv(fns)
    vector = int(getattr(ctx, "vector_index", 0) or 0)
    if vector == 0 and hasattr(ctx, "worker_index"):
        # RLlib's new stack calls the creator once per sub-env with the same EnvContext (vector_index 0):
        # number the envs in creation order on the context object itself.
        vector = int(getattr(ctx, _VECTOR_COUNTER, 0))
        setattr(ctx, _VECTOR_COUNTER, vector + 1)
    return _make_one(env_id, make_kwargs, base_seed, worker, vector)


def register_rllib_envs(env_ids: list[str] | None = None) -> list[str]:
    """Register FedsLLM ids with RLlib (``ray.tune.registry.register_env``) so runners use :func:`make_rllib_env`.

    Safe to call before or after ``ray.init`` and more than once.

    Args:
        env_ids: ids to register (default: :func:`fedsllm_env_ids`).

    Returns:
        The ids registered.
    """
    require_rllib()
    from ray.tune.registry import register_env

    ids = list(env_ids) if env_ids is not None else fedsllm_env_ids() + sorted(CLIENTS_IDS.values())
    for env_id in ids:
        if env_id in CLIENTS_IDS.values():
            hetero = env_id == CLIENTS_IDS[True]
            register_env(env_id, functools.partial(make_rllib_clients_env, hetero))
            continue
        gym.spec(env_id)  # unknown ids fail here, with gymnasium's message
        register_env(env_id, functools.partial(make_rllib_env, env_id))
    return ids


def make_rllib_clients_env(heterogeneous: bool, env_config: dict[str, Any] | None = None) -> Any:
    """RLlib's creator of the clients-as-agents env: PettingZoo's ParallelEnv behind RLlib's
    ``ParallelPettingZooEnv``, reset seeds mixed with the runner position as :class:`RunnerSeed` does.

    Args:
        heterogeneous: a cut and a rank per client.
        env_config: ``config`` (nested overrides) and ``seed`` (base seed), plus RLlib's indices.
    """
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    from fedsllm_env.multiagent import parallel_env

    ctx = env_config if env_config is not None else {}
    base_seed = int(ctx.get(_SEED_KEY, 0))
    worker = int(getattr(ctx, "worker_index", 0) or 0)
    vector = int(getattr(ctx, "vector_index", 0) or 0)

    class SeededClients(ParallelPettingZooEnv):
        _seeded = False

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            if seed is None and not self._seeded:
                seed = base_seed
            if seed is not None:
                seed = runner_seed(seed, worker, vector)
                self._seeded = True
            return super().reset(seed=seed, options=options)

    return SeededClients(parallel_env(dict(ctx.get("config") or {}), mode="surrogate", heterogeneous=heterogeneous))


def default_gpus_per_env_runner(env_id: str, config: dict[str, Any] | None, num_env_runners: int) -> float:
    """GPU share each env runner declares when none is given: real mode on a cuda/auto device shares the
    cluster's GPUs evenly between the runners (at most 1 each); otherwise 0.

    Needs Ray to be initialised when the answer depends on the cluster's GPUs.
    """
    cfg = FedsLLMConfig.from_dict(config or {}).replace(**_variant(env_id))
    device = str(getattr(cfg.model, "device", "cpu"))
    if cfg.mode != "real" or not (device == "auto" or device.startswith("cuda")):
        return 0.0
    import ray

    gpus = float(ray.cluster_resources().get("GPU", 0.0)) if ray.is_initialized() else 0.0
    return min(1.0, gpus / max(1, num_env_runners)) if gpus > 0 else 0.0


def ppo_config(env_id: str = "FedsLLM-Surrogate-v0", *, config: dict[str, Any] | None = None, seed: int = 0,
               num_env_runners: int = 2, num_envs_per_env_runner: int = 1, rollout_fragment_length: int | str = "auto",
               num_cpus_per_env_runner: float = 1, num_gpus_per_env_runner: float | None = None,
               num_gpus_per_learner: float = 0, training: dict[str, Any] | None = None) -> Any:
    """A ``PPOConfig`` (current API stack) for a FedsLLM id, its ids registered with RLlib.

    Args:
        env_id: FedsLLM env id.
        config: nested env config overrides.
        seed: base seed of the envs (see :class:`RunnerSeed`) and of RLlib (``debugging(seed=...)``, which
            also seeds the module's initial weights).
        num_env_runners: remote env runners (0 = sample in the driver).
        num_envs_per_env_runner: envs per runner.
        rollout_fragment_length: env steps per runner and env per sample call ("auto": from the batch size).
        num_cpus_per_env_runner: CPUs each runner declares.
        num_gpus_per_env_runner: GPU share each runner declares (None: :func:`default_gpus_per_env_runner`).
        num_gpus_per_learner: GPU share of the learner.
        training: keyword arguments of ``PPOConfig.training`` (e.g. ``train_batch_size_per_learner``, ``lr``),
            plus ``model_config`` for ``rl_module(model_config=...)`` (e.g. ``{"fcnet_hiddens": [64, 64]}``).

    Returns:
        The config (``.build_algo()`` builds the algorithm).
    """
    require_rllib()
    from ray.rllib.algorithms.ppo import PPOConfig

    if num_env_runners < 0 or num_envs_per_env_runner < 1:
        raise ValueError(f"num_env_runners must be >= 0 and num_envs_per_env_runner >= 1, got {num_env_runners}, "
                         f"{num_envs_per_env_runner}")
    FedsLLMConfig.from_dict(config or {})  # fail early on typos, in the driver
    register_rllib_envs()
    gpus = num_gpus_per_env_runner
    clients = env_id in CLIENTS_IDS.values()
    if gpus is None:
        gpus = 0.0 if clients else default_gpus_per_env_runner(env_id, config, num_env_runners)
    train_kwargs = dict(training or {})
    if "model" in train_kwargs:
        raise ValueError("the old API stack's 'model' option has no effect here; use 'model_config' "
                         "(e.g. {\"model_config\": {\"fcnet_hiddens\": [64, 64]}})")
    model_config = train_kwargs.pop("model_config", None)
    pc = (PPOConfig()
          .environment(env_id, env_config={"config": dict(config or {}), _SEED_KEY: int(seed)})
          .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner,
                       rollout_fragment_length=rollout_fragment_length, num_cpus_per_env_runner=num_cpus_per_env_runner,
                       num_gpus_per_env_runner=float(gpus))
          .learners(num_gpus_per_learner=float(num_gpus_per_learner))
          .debugging(seed=int(seed)))
    if model_config is not None:
        pc = pc.rl_module(model_config=dict(model_config))
    if clients:  # every client agent acts with one shared policy
        pc = pc.multi_agent(policies={CLIENTS_MODULE}, policy_mapping_fn=_shared_module)
    try:
        return pc.training(**train_kwargs)
    except TypeError as e:
        raise ValueError(f"unknown PPO training option in {sorted(train_kwargs)}: {e}") from e


def _shared_module(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    return CLIENTS_MODULE


@dataclass
class RLlibTrainResult:
    """What :func:`train_rllib` produced."""

    checkpoint_path: Path
    """Folder of the final RLlib checkpoint (``Algorithm.from_checkpoint`` reloads it)."""
    env_steps: int
    """Env steps sampled in total."""
    wall_time_s: float
    """Wall time of the training iterations (without building the algorithm), s."""
    build_time_s: float
    """Wall time of building the algorithm (runners started, spaces inferred), s."""
    iterations: list[dict[str, float]] = field(default_factory=list)
    """Per iteration: ``env_steps``, ``time_s``, ``env_steps_per_s`` (whole iteration), ``sample_time_s`` and
    ``sample_env_steps_per_s`` (runners sampling), ``learn_time_s`` (learner update), ``episode_return_mean``,
    ``episode_len_mean``."""
    runner_envs: list[dict[str, int]] = field(default_factory=list)
    """Every env of every remote runner: ``worker_index``, ``vector_index`` and the seed of its first reset."""


def _save_checkpoint(algo: Any, path: Path) -> Path:
    """Save to a temporary sibling folder, then move it into place (a killed save leaves the old one intact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
    old = path.with_name(path.name + ".old")
    try:
        algo.save_to_path(str(tmp))
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def _runner_envs(runner: Any) -> list[dict[str, int]]:
    """The :class:`RunnerSeed` envs of one env runner (runs inside the runner)."""
    vec = runner.env
    while not hasattr(vec, "envs"):  # RLlib's DictInfoToList around gymnasium's SyncVectorEnv
        if not hasattr(vec, "env"):
            return []  # a multi-agent runner (the clients-as-agents env): no gymnasium vector env
        vec = vec.env
    out = []
    for env in vec.envs:
        while not isinstance(env, RunnerSeed) and hasattr(env, "env"):
            env = env.env
        if isinstance(env, RunnerSeed):
            out.append({"worker_index": env.worker_index, "vector_index": env.vector_index,
                        "seed": int(env.unwrapped.np_random_seed)})
    return out


def _iteration_row(result: dict[str, Any], steps_before: float) -> dict[str, float]:
    runners = result.get("env_runners", {})
    steps = float(runners.get("num_env_steps_sampled_lifetime", result.get("num_env_steps_sampled_lifetime", 0.0)))
    t = float(result.get("time_this_iter_s", float("nan")))
    timers = result.get("timers", {})
    sample_s = float(timers.get("env_runner_sampling_timer", float("nan")))
    n = steps - steps_before
    return {"env_steps": n, "env_steps_lifetime": steps, "time_s": t,
            "env_steps_per_s": n / t if t > 0 else float("nan"),
            "sample_time_s": sample_s, "sample_env_steps_per_s": n / sample_s if sample_s > 0 else float("nan"),
            "learn_time_s": float(timers.get("learner_update_timer", float("nan"))),
            "episode_return_mean": float(runners.get("episode_return_mean", float("nan"))),
            "episode_len_mean": float(runners.get("episode_len_mean", float("nan")))}


def train_rllib(run_dir: str | Path, config: Any, total_timesteps: int, max_iterations: int = 10_000,
                verbose: bool = True) -> RLlibTrainResult:
    """Build the algorithm of ``config``, train until ``total_timesteps`` env steps, save a checkpoint.

    Ray must be initialised (or is started locally by RLlib with its defaults).

    Args:
        run_dir: run folder; the checkpoint goes to ``<run_dir>/rllib_checkpoint``.
        config: an RLlib ``AlgorithmConfig`` (e.g. from :func:`ppo_config`).
        total_timesteps: env steps to sample (at least one iteration runs).
        max_iterations: safety cap on iterations.
        verbose: print one line per iteration.

    Returns:
        An :class:`RLlibTrainResult`.
    """
    if total_timesteps < 1:
        raise ValueError(f"total_timesteps must be >= 1, got {total_timesteps}")
    t0 = time.perf_counter()
    algo = config.build_algo()
    build_s = time.perf_counter() - t0
    rows: list[dict[str, float]] = []
    steps = 0.0
    try:
        t0 = time.perf_counter()
        while len(rows) < max_iterations:
            row = _iteration_row(algo.train(), steps)
            steps = row["env_steps_lifetime"]
            rows.append(row)
            if verbose:
                print(f"iteration {len(rows)}: {row['env_steps']:.0f} env steps in {row['time_s']:.2f} s "
                      f"({row['env_steps_per_s']:.0f} steps/s; sampling {row['sample_time_s']:.2f} s = "
                      f"{row['sample_env_steps_per_s']:.0f} steps/s, learner {row['learn_time_s']:.2f} s), "
                      f"episode return mean {row['episode_return_mean']:.4g}", flush=True)
            if steps >= total_timesteps:
                break
        wall = time.perf_counter() - t0
        envs = [e for per_runner in algo.env_runner_group.foreach_env_runner(_runner_envs, local_env_runner=False)
                for e in per_runner]
        ckpt = _save_checkpoint(algo, Path(run_dir) / "rllib_checkpoint")
    finally:
        algo.stop()
    return RLlibTrainResult(checkpoint_path=ckpt, env_steps=int(steps), wall_time_s=wall, build_time_s=build_s,
                            iterations=rows, runner_envs=envs)


class RLlibPolicy:
    """The RL module of an RLlib checkpoint behind SB3's ``predict`` (for :mod:`agents.evaluation`).

    Args:
        module: a torch ``RLModule`` (e.g. PPO's default module).
    """

    def __init__(self, module: Any):
        self.module = module
        self.observation_space = module.observation_space
        self.action_space = module.action_space
        self._dist_cls = module.get_inference_action_dist_cls()

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, module_id: str = "default_policy") -> RLlibPolicy:
        """Load the module ``module_id`` of an algorithm checkpoint folder (as written by :func:`train_rllib`)."""
        require_rllib()
        from ray.rllib.core.rl_module.rl_module import RLModule

        path = Path(checkpoint) / "learner_group" / "learner" / "rl_module" / module_id
        if not path.is_dir():
            raise FileNotFoundError(f"{checkpoint} is not an RLlib algorithm checkpoint with module {module_id!r} "
                                    f"(no {path})")
        module = RLModule.from_checkpoint(str(path))
        module.eval()
        return cls(module)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Action for one observation or a batch (first axis); deterministic = the distribution's mode."""
        import torch

        obs = np.asarray(observation, dtype=np.float32)
        single = obs.shape == self.observation_space.shape
        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.from_numpy(obs[None] if single else obs)})
            dist = self._dist_cls.from_logits(out["action_dist_inputs"])
            action = (dist.to_deterministic() if deterministic else dist).sample().cpu().numpy()
        if isinstance(self.action_space, gym.spaces.Box):
            action = np.clip(action, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)
        return (action[0] if single else action), None


class RLlibClientsPolicy:
    """The shared client policy of a clients-as-agents RLlib run, acting in a K-client priority env (a
    ``PolicyFactory``: ``RLlibClientsPolicy(module, heterogeneous)(env)`` has SB3's ``predict``).

    Each client's observation is built from the env's flat observation exactly as
    :mod:`fedsllm_env.multiagent` builds it, the module acts for all K clients at once (deterministic: the mode),
    and :func:`fedsllm_env.multiagent.joint_action` turns the K actions into the env's priority action.
    """

    def __init__(self, module: Any, heterogeneous: bool):
        self.module = module
        self.heterogeneous = bool(heterogeneous)
        self._dist_cls = module.get_inference_action_dist_cls()

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, heterogeneous: bool) -> "RLlibClientsPolicy":
        """Load the shared module of a :func:`train_rllib` checkpoint of a :data:`CLIENTS_IDS` run."""
        return cls(RLlibPolicy.from_checkpoint(checkpoint, CLIENTS_MODULE).module, heterogeneous)

    def __call__(self, env: gym.Env) -> "_BoundClients":
        """Bind to a K-client priority env (shared or heterogeneous cut/rank as the run was trained)."""
        from fedsllm_env.client_set import ClientSetLayout
        from fedsllm_env.errors import ConfigError

        cfg = getattr(env.unwrapped, "config", None)
        if cfg is None or bool(cfg.heterogeneous) != self.heterogeneous or \
                env.action_space.shape != (4 * cfg.wireless.num_clients + 2 if self.heterogeneous
                                           else 2 * cfg.wireless.num_clients + 4,):
            raise ConfigError(f"the clients-as-agents policy acts in the {'heterogeneous ' if self.heterogeneous else ''}"
                              f"priority ids, not in {getattr(getattr(env, 'spec', None), 'id', env)}")
        return _BoundClients(self, ClientSetLayout(cfg.wireless.num_clients, self.heterogeneous), cfg)


class _BoundClients:
    def __init__(self, owner: RLlibClientsPolicy, layout: Any, cfg: Any):
        self.owner, self.layout, self.cfg = owner, layout, cfg

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """The K-client priority action of one flat observation."""
        import torch

        from fedsllm_env.multiagent import joint_action

        per_agent = self.layout.agent_observations(self.cfg, observation)
        with torch.no_grad():
            out = self.owner.module.forward_inference({"obs": torch.from_numpy(per_agent)})
            dist = self.owner._dist_cls.from_logits(out["action_dist_inputs"])
            acts = (dist.to_deterministic() if deterministic else dist).sample().cpu().numpy()
        return joint_action(acts, self.owner.heterogeneous), None

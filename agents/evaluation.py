"""One evaluation harness for agents and baselines: identical seeded episodes, per-episode records, tables.

Anything with SB3's ``predict(observation, state=None, episode_start=None, deterministic=True)``
is a :class:`Policy`: a trained PPO/SAC/A2C/TD3/MaskablePPO model or a baseline adapter
(``baselines.policy.make_baseline_policy``). Every policy is run on the same list of seeds; a seed
fixes the scenario (client positions, devices) and the whole channel/load trajectory, which do not
depend on the actions, so the policies face identical conditions.

Progress: every function that plays episodes takes an optional ``progress`` callback (:data:`RoundCallback`),
called after every round; :func:`bar_callback` turns a bar of :func:`fedsllm_env.progress.progress_bar` into one.

Scale-out: :func:`evaluate_policies` runs every (policy, seed) episode as one Ray task (an
:class:`EpisodeJob` played by :func:`run_job` in a fresh env) when asked; an episode depends only on
its seed, so the records equal the sequential ones (all but the measured ``decision_time_s``).
"""

from __future__ import annotations

import functools
import inspect
import io
import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np

from fedsllm_env.config import FedsLLMConfig, merge_overrides
from fedsllm_env.errors import ConfigError

__all__ = [
    "Policy",
    "PolicyFactory",
    "EpisodeRecord",
    "RoundCallback",
    "bar_callback",
    "make_eval_env",
    "merge_config",
    "check_policy_fits",
    "spaces_fit",
    "clients_of_spaces",
    "run_episode",
    "evaluate_policy_on_seeds",
    "PolicySource",
    "policy_source",
    "EpisodeJob",
    "run_job",
    "Mapper",
    "evaluate_policies",
    "summarize",
    "comparison_rows",
    "markdown_table",
]


@runtime_checkable
class Policy(Protocol):
    """SB3's prediction interface (agents and baseline adapters)."""

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """Return ``(action, next_state)`` for one observation."""
        ...


PolicyFactory = Callable[[gym.Env], Policy]
"""Builds a policy bound to the env it will act in (e.g. ``lambda env: make_baseline_policy("optimizer", env)``)."""


RoundCallback = Callable[[str, int, int, bool], None]
"""``progress(policy name, seed, rounds played so far, episode finished)``: called after every round of an episode
played in this process, and once when an episode played elsewhere (a Ray task) comes back."""


def bar_callback(bar: Any, unit: str = "episode", min_interval_s: float = 0.5) -> RoundCallback:
    """A :data:`RoundCallback` that advances ``bar`` (a :func:`fedsllm_env.progress.progress_bar`) and shows the
    policy, seed and round in its postfix.

    Args:
        bar: anything with ``update(n)`` and ``set_postfix(**values)`` (tqdm, ``PlainProgress``).
        unit: ``"episode"`` (the bar counts finished episodes) or ``"round"`` (it counts rounds).
        min_interval_s: the postfix is refreshed at most this often within an episode (and at its first and last
            round), so thousands of fast rounds do not redraw a terminal thousands of times.
    """
    if unit not in ("episode", "round"):
        raise ValueError(f"unit must be 'episode' or 'round', got {unit!r}")
    counted: dict[tuple[str, int], int] = {}
    last = [-math.inf]

    def report(name: str, seed: int, rounds: int, done: bool) -> None:
        now = time.perf_counter()
        if rounds <= 1 or done or now - last[0] >= min_interval_s:
            bar.set_postfix(policy=name, seed=seed, round=rounds)
            last[0] = now
        if unit == "round":
            key = (name, int(seed))
            step = rounds - counted.get(key, 0)
            counted[key] = rounds
            if step > 0:
                bar.update(step)
        elif done:
            bar.update(1)

    return report


@dataclass(frozen=True)
class EpisodeRecord:
    """What one evaluation episode produced (times in seconds)."""

    policy: str
    """Name of the policy."""
    seed: int
    """Reset seed of the episode (fixes the scenario and the channel trajectory)."""
    total_delay_s: float
    """Sum of the round delays T_round over the episode, s."""
    rounds: int
    """Rounds (env steps) played."""
    terminated: bool
    """The validation loss reached the target."""
    truncated: bool
    """The round cap was hit first."""
    final_val_loss: float
    """Validation loss after the last round."""
    episode_return: float
    """Sum of rewards."""
    mean_round_delay_s: float
    """Mean T_round over the episode, s."""
    mean_expected_total_delay_s: float
    """Mean over rounds of E(r) * T_round (the paper's objective for each decision), s."""
    decision_time_s: float
    """Mean wall time per step spent in ``predict``, s."""
    splits: tuple[Any, ...]
    """Cut index chosen each round (heterogeneous mode: a tuple per round, one cut per client)."""
    ranks: tuple[Any, ...]
    """LoRA rank chosen each round (heterogeneous mode: a tuple per round, one rank per client)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        out = asdict(self)
        out["splits"], out["ranks"] = list(self.splits), list(self.ranks)
        return out


def merge_config(config: FedsLLMConfig | dict[str, Any] | None, max_rounds: int | None = None) -> dict[str, Any]:
    """Nested config overrides as a dict, with ``training.max_rounds`` set when given.

    Args:
        config: a config, a dict of nested overrides, or None.
        max_rounds: round cap of the episodes (None keeps the config's).

    Returns:
        A new dict suitable for ``gym.make(env_id, config=...)``.
    """
    if config is not None and not isinstance(config, (FedsLLMConfig, dict)):
        raise TypeError(f"config must be a FedsLLMConfig, dict or None, got {type(config).__name__}")
    if max_rounds is not None and max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    base = config.to_dict() if isinstance(config, FedsLLMConfig) else config
    return merge_overrides(base, None if max_rounds is None else {"training": {"max_rounds": int(max_rounds)}})


def make_eval_env(env_id: str, config: FedsLLMConfig | dict[str, Any] | None = None, max_rounds: int | None = None,
                  env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """``gym.make(env_id, config=..., **env_kwargs)`` with :func:`merge_config` applied."""
    return gym.make(env_id, config=merge_config(config, max_rounds), **(env_kwargs or {}))


def _accepts_masks(policy: Policy) -> bool:
    try:
        return "action_masks" in inspect.signature(policy.predict).parameters
    except (TypeError, ValueError):
        return False


def _space_text(space: Any) -> str:
    """A space in a few characters: ``Box(72,)``, ``MultiDiscrete(24)``."""
    if isinstance(space, gym.spaces.MultiDiscrete):
        return f"MultiDiscrete({len(space.nvec)})"
    return f"{type(space).__name__}{tuple(getattr(space, 'shape', ()) or ())}"


def _same_space(a: Any, b: Any) -> bool:
    """Same kind and shape (and, for MultiDiscrete, the same number of choices per entry)."""
    if type(a) is not type(b) or getattr(a, "shape", None) != getattr(b, "shape", None):
        return False
    if isinstance(a, gym.spaces.MultiDiscrete):
        return bool(np.array_equal(a.nvec, b.nvec))
    return True


def spaces_fit(policy: Any, env: gym.Env) -> bool:
    """Whether ``policy`` can act in ``env``: its observation and action spaces equal the env's (kind, shape and
    MultiDiscrete choices); a policy without spaces (a baseline, bound to its env) always fits."""
    obs_space, act_space = getattr(policy, "observation_space", None), getattr(policy, "action_space", None)
    if obs_space is None or act_space is None:
        return True
    return _same_space(obs_space, env.observation_space) and _same_space(act_space, env.action_space)


OBS_FIXED = 4
"""Observation entries that do not grow with K (split, rank, val_loss, round: :mod:`fedsllm_env.spaces`)."""


def clients_of_spaces(observation_space: Any, action_space: Any, num_subchannels: int | None = None) -> int | None:
    """The number of clients K a fixed-K agent's spaces were built for, read from the layouts of
    :mod:`fedsllm_env.spaces` (observation ``K (M + N + 2) + 4``) and :mod:`fedsllm_env.codecs` (Box actions
    ``(K + 1)(M + N + 2)``, priority actions ``2 K + 4``, MultiDiscrete owners with K choices); None when no K gives
    them.

    Args:
        observation_space: the agent's observation space.
        action_space: the agent's action space.
        num_subchannels: M + N, needed only for the hybrid actions (cut and rank only: the observation alone
            fixes K (M + N + 2)); None: K stays unknown there.
    """
    obs = getattr(observation_space, "shape", None)
    if not isinstance(observation_space, gym.spaces.Box) or obs is None or len(obs) != 1:
        return None
    grown = int(obs[0]) - OBS_FIXED  # K (M + N + 2)

    def fits(k: int, per_client: int) -> bool:  # M + N >= 2: at least one subchannel per link
        return k >= 1 and per_client >= 4 and k * per_client == grown

    if isinstance(action_space, gym.spaces.MultiDiscrete):
        nvec = np.asarray(action_space.nvec).ravel()
        if nvec.size > 2:  # owners of the M + N subchannels (K choices each), their power levels, cut, rank
            k = int(nvec[0])
            return k if fits(k, (nvec.size - 2) // 2 + 2) else None
        if num_subchannels is not None and grown > 0 and grown % (num_subchannels + 2) == 0:
            k = grown // (num_subchannels + 2)
            return k if fits(k, num_subchannels + 2) else None
        return None
    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape or ()) != 1:
        return None
    act = int(action_space.shape[0])
    per_client = act - grown  # Box codec: (K + 1)(M + N + 2) - K (M + N + 2)
    if per_client > 0 and grown % per_client == 0 and fits(grown // per_client, per_client):
        return grown // per_client
    if (act - 4) % 2 == 0 and act > 4:  # priority actions: 2 K + 4
        k = (act - 4) // 2
        if grown % k == 0 and fits(k, grown // k):
            return k
    return None


def _cell_text(cfg: Any, k: int | None = None) -> str:
    """``K = 5, M = 10, N = 10`` from a config, ``K = 5`` from the spaces alone, or ``an unknown K``."""
    w = getattr(cfg, "wireless", None)
    if w is not None:
        return f"K = {w.num_clients}, M = {w.num_subchannels_ms}, N = {w.num_subchannels_fs}"
    return "an unknown K" if k is None else f"K = {k}"


def check_policy_fits(policy: Any, env: gym.Env, name: str = "policy", trained_with: Any = None,
                      hint: str = "act with it in the cell it was trained in") -> None:
    """ConfigError (a ValueError) naming the agent's K and the env's K (and both spaces) when a trained fixed-K
    agent's observation or action space differs from ``env``'s, e.g. a K = 5 agent in a K = 20 preset; policies
    without spaces (baselines) always fit.

    Args:
        policy: the policy (an SB3 model has ``observation_space`` and ``action_space``).
        env: the env it is about to act in.
        name: the policy's name (or path), for the message.
        trained_with: the config the agent was trained with (its K, M, N go into the message), if known; else K
            is read from the agent's spaces (:func:`clients_of_spaces`).
        hint: what to do about it, at the end of the message.
    """
    if spaces_fit(policy, env):
        return
    obs_space, act_space = policy.observation_space, policy.action_space
    env_cfg = getattr(env.unwrapped, "config", None)
    w = getattr(env_cfg, "wireless", None)
    agent_k = None if trained_with is not None else clients_of_spaces(
        obs_space, act_space, None if w is None else w.num_subchannels_ms + w.num_subchannels_fs)
    env_id = getattr(getattr(env, "spec", None), "id", None) or type(env.unwrapped).__name__
    raise ConfigError(f"{name} was trained with {_cell_text(trained_with, agent_k)} (observation "
                      f"{_space_text(obs_space)}, action {_space_text(act_space)}), but {env_id} has "
                      f"{_cell_text(env_cfg)} (observation {_space_text(env.observation_space)}, action "
                      f"{_space_text(env.action_space)}): an agent's spaces are fixed by the K (and M, N) it was "
                      f"trained with; {hint}")


def run_episode(policy: Policy, env: gym.Env, seed: int, name: str = "policy",
                deterministic: bool = True, progress: RoundCallback | None = None) -> EpisodeRecord:
    """Play one episode of ``env`` from ``reset(seed=seed)`` with ``policy``.

    Policies whose ``predict`` takes ``action_masks`` (MaskablePPO) get ``env.action_masks()``.

    Args:
        policy: the policy.
        env: a FedsLLM env (any wrapper stack).
        seed: reset seed.
        name: policy name stored in the record.
        deterministic: passed to ``predict``.
        progress: called after every round (:data:`RoundCallback`); None = silent.

    Returns:
        The episode's record.
    """
    check_policy_fits(policy, env, name)
    use_masks = _accepts_masks(policy)
    obs, _ = env.reset(seed=int(seed))
    total_return, decide_s = 0.0, 0.0
    round_delays: list[float] = []
    expected: list[float] = []
    splits: list[Any] = []
    ranks: list[Any] = []
    terminated = truncated = False
    info: dict[str, Any] = {}
    episode_start = np.ones((1,), dtype=bool)
    while not (terminated or truncated):
        kwargs: dict[str, Any] = {}
        if use_masks:
            kwargs["action_masks"] = env.get_wrapper_attr("action_masks")()
        t0 = time.perf_counter()
        action, _ = policy.predict(obs, state=None, episode_start=episode_start, deterministic=deterministic,
                                   **kwargs)
        decide_s += time.perf_counter() - t0
        episode_start = np.zeros((1,), dtype=bool)
        obs, reward, terminated, truncated, info = env.step(action)
        total_return += float(reward)
        round_delays.append(float(info["round_delay_s"]))
        expected.append(float(info["expected_total_delay_s"]))
        splits.append(_decision_value(info["split"]))
        ranks.append(_decision_value(info["rank"]))
        if progress is not None:
            progress(name, int(seed), len(round_delays), bool(terminated or truncated))
    n = len(round_delays)
    return EpisodeRecord(
        policy=name,
        seed=int(seed),
        total_delay_s=float(info["cumulative_delay_s"]),
        rounds=n,
        terminated=bool(terminated),
        truncated=bool(truncated),
        final_val_loss=float(info["val_loss"]),
        episode_return=total_return,
        mean_round_delay_s=float(np.mean(round_delays)),
        mean_expected_total_delay_s=float(np.mean(expected)),
        decision_time_s=decide_s / n,
        splits=tuple(splits),
        ranks=tuple(ranks),
    )


def _decision_value(value: Any) -> int | tuple[int, ...]:
    """A round's cut or rank as recorded: an int, or a tuple of ints (one per client) in the heterogeneous mode."""
    return int(value) if np.ndim(value) == 0 else tuple(int(v) for v in np.asarray(value).ravel())


def evaluate_policy_on_seeds(policy: Policy | PolicyFactory, env_id: str | gym.Env, seeds: Sequence[int],
                             config: FedsLLMConfig | dict[str, Any] | None = None, max_rounds: int | None = None,
                             env_kwargs: dict[str, Any] | None = None, name: str | None = None,
                             deterministic: bool = True, progress: RoundCallback | None = None
                             ) -> list[EpisodeRecord]:
    """Run one deterministic episode per seed and record it.

    Args:
        policy: a :class:`Policy`, or a :data:`PolicyFactory` called with the env at the start of every
            episode (for baselines that must be bound to the env they act in; a fresh policy per episode
            makes each episode depend on its seed only).
        env_id: a registered id (the env is made with ``config`` / ``max_rounds`` / ``env_kwargs`` and
            closed afterwards), or an already built env (reused as is; ``config`` etc. must then be None).
        seeds: reset seeds, one episode each.
        config: nested config overrides (or a FedsLLMConfig).
        max_rounds: round cap per episode (``training.max_rounds``); None keeps the config's.
        env_kwargs: other ``gym.make`` keyword arguments.
        name: policy name in the records (default: the policy's class name).
        deterministic: passed to ``predict``.
        progress: called after every round of every episode (:data:`RoundCallback`, e.g. :func:`bar_callback`);
            None = silent.

    Returns:
        One :class:`EpisodeRecord` per seed, in order.
    """
    if len(seeds) == 0:
        raise ValueError("seeds is empty; give at least one evaluation seed")
    own_env = isinstance(env_id, str)
    if own_env:
        env = make_eval_env(env_id, config, max_rounds, env_kwargs)  # type: ignore[arg-type]
    else:
        if config is not None or max_rounds is not None or env_kwargs:
            raise ValueError("config/max_rounds/env_kwargs apply only when env_id is an id, not a built env")
        env = env_id  # type: ignore[assignment]
    try:
        records = []
        for seed in seeds:
            # a factory is bound afresh for every episode, so an episode (random baselines included)
            # depends on its seed only, not on the episodes played before it
            bound = policy if hasattr(policy, "predict") else policy(env)  # type: ignore[operator]
            records.append(run_episode(bound, env, seed, name or type(bound).__name__, deterministic, progress))
        return records
    finally:
        if own_env:
            env.close()


PolicySource = Callable[[], "Policy | PolicyFactory"]
"""A picklable zero-argument callable that builds a policy (or a per-env factory) in the process that plays."""


def _same(policy: Any) -> Any:
    return policy


def _load_sb3(cls: type, data: bytes) -> Policy:
    return cls.load(io.BytesIO(data), device="cpu")


def policy_source(policy: Policy | PolicyFactory) -> PolicySource:
    """A :data:`PolicySource` for ``policy`` that can travel to another process or machine.

    Stable-Baselines3 agents travel as their saved zip (bytes, no shared file system needed); baseline
    factories and other picklable policies travel as themselves.
    """
    from stable_baselines3.common.base_class import BaseAlgorithm

    if isinstance(policy, BaseAlgorithm):
        buf = io.BytesIO()
        policy.save(buf)
        return functools.partial(_load_sb3, type(policy), buf.getvalue())
    return functools.partial(_same, policy)


@dataclass(frozen=True)
class EpisodeJob:
    """One evaluation episode, described by picklable values only (a Ray task's argument)."""

    name: str
    """Policy name in the record."""
    source: PolicySource
    """Builds the policy (:func:`policy_source`)."""
    env_id: str
    """Env id."""
    config: dict[str, Any]
    """Nested env config overrides."""
    seed: int
    """Reset seed of the episode."""


def run_job(job: EpisodeJob, torch_threads: int = 0, global_seed: int | None = None) -> EpisodeRecord:
    """Play one :class:`EpisodeJob` in a fresh env (the body of a Ray task; also callable in-process).

    Args:
        job: the episode.
        torch_threads: torch intra-op threads of this process (0 = leave as is).
        global_seed: seeds Python's, numpy's and torch's global RNGs first, as the scripts do (None = don't).

    Returns:
        The episode's record.
    """
    if torch_threads or global_seed is not None:
        import torch

        if torch_threads:
            torch.set_num_threads(int(torch_threads))
        if global_seed is not None:
            random.seed(global_seed)
            np.random.seed(global_seed)
            torch.manual_seed(global_seed)
    return evaluate_policy_on_seeds(job.source(), job.env_id, [job.seed], config=job.config, name=job.name)[0]


Mapper = Callable[[Callable[..., Any], Sequence[tuple]], Iterable[tuple[int, Any]]]
"""Runs ``fn(*args)`` for every argument tuple, anywhere, yielding ``(index, result)`` in any order
(e.g. ``train_scripts._ray.ray_map_unordered``: one Ray task each)."""


def evaluate_policies(entries: Sequence[tuple[str, Policy | PolicyFactory, str, dict[str, Any]]], seeds: Sequence[int],
                      *, mapper: Mapper | None = None, torch_threads: int = 0,
                      global_seed: int | None = None,
                      progress: RoundCallback | None = None) -> dict[str, list[EpisodeRecord]]:
    """Evaluate several policies on the same seeds, in this process or one job per (policy, seed).

    Args:
        entries: ``(name, policy or factory, env id, env config overrides)`` per policy.
        seeds: reset seeds, one episode per policy and seed.
        mapper: runs the :class:`EpisodeJob` s through :func:`run_job` (e.g. as Ray tasks with declared
            resources); None: :func:`evaluate_policy_on_seeds` per policy, here.
        torch_threads: torch threads inside each job (0 = leave as is).
        global_seed: global RNG seed inside each job (see :func:`run_job`).
        progress: :data:`RoundCallback`: after every round here; with a mapper, once per episode as it comes back.

    Returns:
        Policy name -> its records in seed order, in the order of ``entries``.
    """
    names = [e[0] for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique, got {names}")
    if mapper is None:
        return {name: evaluate_policy_on_seeds(policy, env_id, list(seeds), config=cfg, name=name, progress=progress)
                for name, policy, env_id, cfg in entries}
    if len(seeds) == 0:
        raise ValueError("seeds is empty; give at least one evaluation seed")
    jobs = [EpisodeJob(name, source, env_id, dict(cfg or {}), int(seed))
            for name, source, env_id, cfg in ((n, policy_source(p), e, c) for n, p, e, c in entries) for seed in seeds]
    records: list[EpisodeRecord | None] = [None] * len(jobs)
    for i, record in mapper(run_job, [(job, torch_threads, global_seed) for job in jobs]):
        records[i] = record
        if progress is not None and record is not None:
            progress(record.policy, record.seed, record.rounds, True)
    out: dict[str, list[EpisodeRecord]] = {name: [] for name in names}
    for job, record in zip(jobs, records):
        if record is None:
            raise RuntimeError(f"the mapper returned no record for {job.name!r} on seed {job.seed}")
        out[job.name].append(record)
    return out


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std; with an infinite value (an episode that never ends within its cap is priced at
    inf) the mean is inf and the spread is undefined: NaN, without numpy's inf - inf warning."""
    arr = np.asarray(values, dtype=float)
    if not np.isfinite(arr).all():
        return float(arr.mean()), float("nan")
    return float(arr.mean()), float(arr.std(ddof=0))


def summarize(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Mean and standard deviation over episodes.

    Args:
        records: the episodes of one policy.

    Returns:
        ``episodes``, ``success_rate`` (fraction that reached the target), and ``<field>_mean`` /
        ``<field>_std`` for total_delay_s, rounds, final_val_loss, episode_return, mean_round_delay_s,
        mean_expected_total_delay_s and decision_time_s.
    """
    if not records:
        raise ValueError("no records to summarize")
    out: dict[str, float] = {"episodes": float(len(records)),
                             "success_rate": float(np.mean([r.terminated for r in records]))}
    for key in ("total_delay_s", "rounds", "final_val_loss", "episode_return", "mean_round_delay_s",
                "mean_expected_total_delay_s", "decision_time_s"):
        mean, std = _mean_std([getattr(r, key) for r in records])
        out[f"{key}_mean"], out[f"{key}_std"] = mean, std
    return out


def comparison_rows(results: dict[str, Sequence[EpisodeRecord]], reference: str = "optimizer") -> list[dict[str, Any]]:
    """One table row per policy, with the total delay relative to a reference policy.

    Args:
        results: policy name -> its records (all on the same seeds).
        reference: name of the policy whose mean total delay is 1.0 (missing -> NaN ratios).

    Returns:
        Rows with ``policy``, ``total_delay_mean_s``, ``total_delay_std_s``, ``relative_to_<reference>``
        (ratio of mean total delays), ``rounds_mean``, ``success_rate``, ``expected_total_delay_mean_s``,
        ``final_val_loss_mean`` and ``decision_ms_per_step``, in the order of ``results``.
    """
    seed_sets = {name: [r.seed for r in recs] for name, recs in results.items()}
    if len({tuple(s) for s in seed_sets.values()}) > 1:
        raise ValueError(f"policies were evaluated on different seeds: {seed_sets}")
    ref = summarize(results[reference])["total_delay_s_mean"] if reference in results else math.nan
    rows = []
    for name, recs in results.items():
        s = summarize(recs)
        rows.append({
            "policy": name,
            "total_delay_mean_s": s["total_delay_s_mean"],
            "total_delay_std_s": s["total_delay_s_std"],
            f"relative_to_{reference}": s["total_delay_s_mean"] / ref if ref and not math.isnan(ref) else math.nan,
            "rounds_mean": s["rounds_mean"],
            "success_rate": s["success_rate"],
            "expected_total_delay_mean_s": s["mean_expected_total_delay_s_mean"],
            "final_val_loss_mean": s["final_val_loss_mean"],
            "decision_ms_per_step": 1e3 * s["decision_time_s_mean"],
        })
    return rows


_HEADERS = {
    "policy": "policy",
    "total_delay_mean_s": "total delay mean (s)",
    "total_delay_std_s": "std (s)",
    "rounds_mean": "rounds mean",
    "success_rate": "reached target",
    "expected_total_delay_mean_s": "E(r)·T_round mean (s)",
    "final_val_loss_mean": "final val loss",
    "decision_ms_per_step": "decision time (ms/step)",
    "train_wall_s": "training wall time (s)",
    "split_rank": "(c, r) chosen x rounds",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows (e.g. from :func:`comparison_rows`) as a GitHub markdown table.

    Args:
        rows: dicts with the same keys.
        columns: keys to show, in order (default: all keys of the first row).

    Returns:
        The table text (no trailing newline).
    """
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    headers = [_HEADERS.get(c, c.replace("relative_to_", "relative to ").replace("_", " ")) for c in columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


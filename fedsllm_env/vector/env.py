"""``SurrogateVectorEnv``: B surrogate FedsLLM envs stepped together in numpy (a ``gymnasium.vector.VectorEnv``).

``gym.make_vec("FedsLLM-Surrogate-v0", num_envs=B, vectorization_mode="vector_entry_point")`` (and the
``-Discrete`` id) build it. Env i of a batch reset with seed ``s`` behaves exactly like
``gym.make(id).reset(seed=s + i)`` followed by plain ``reset()`` calls at episode ends: same
observations, rewards, flags and info values, bit for bit (``tests/test_vector_env.py``). The channel,
codec, delay and surrogate arithmetic runs once per step for the whole batch; only the random draws
are made env by env, each from that env's own generator.

Autoreset: ``AutoresetMode.SAME_STEP`` (``metadata["autoreset_mode"]``). When env i's episode ends,
the step returns the first observation of its next episode, the last observation in
``info["final_obs"][i]`` and the step's info in ``info["final_info"]`` (masked by
``info["_final_info"]``), exactly as ``SyncVectorEnv(..., autoreset_mode=SAME_STEP)`` over single envs
does; no step is spent on resets (SB3's convention too). Infos follow Gymnasium's vector layout: every
key of the single env's info holds a (B,) array with a boolean mask ``_key``. So stepping on after an episode
ends is correct here (the env has already started the next one), where the single env raises ``ResetNeeded``.

Guards, as the single env's: a round whose delay or reward is NaN/inf raises ``NonFiniteError`` naming the
envs (nothing is returned to the agent); ``reset(seed=...)`` takes an int >= 0 (numpy integers too), a list of
``num_envs`` of them (or None), and raises ``SeedError`` for a bool, a float or a negative seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from fedsllm_env.backends import SurrogateBackend
from fedsllm_env.calibration import Calibration
from fedsllm_env.config import FedsLLMConfig, check_num_envs, check_seed
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.errors import ConfigError, NonFiniteError, ResetNeeded, SeedError
from fedsllm_env.vector.channel import BatchedChannel
from fedsllm_env.vector.codecs import (
    BatchedActionDecoder,
    BatchedDecisions,
    BatchedPriorityDecoder,
    encode_observations,
)
from fedsllm_env.vector.delay import BatchedDelay, DelayTables, batched_round_delay
from fedsllm_env.vector.generators import EnvGenerators
from fedsllm_env.vector.surrogate import BatchedSurrogate

__all__ = ["SurrogateVectorEnv", "StepBatch", "make_priority_vector_env"]


@dataclass
class StepBatch:
    """Everything one batched step produced, as arrays (before Gymnasium's info formatting)."""

    obs: np.ndarray
    """(B, obs_dim) observations; rows of finished envs are already their next episode's first one."""
    reward: np.ndarray
    """(B,) rewards."""
    terminated: np.ndarray
    """(B,) target validation loss reached."""
    truncated: np.ndarray
    """(B,) round cap hit first."""
    final_obs: np.ndarray
    """(B, obs_dim) the observations after this round, before any reset (= ``obs`` where not done)."""
    info: dict[str, Any]
    """The single env's step info with (B,) arrays as values (nested dicts kept)."""
    decisions: BatchedDecisions
    """The decoded decisions."""
    delay: BatchedDelay
    """Every delay term of the round."""

    @property
    def done(self) -> np.ndarray:
        """(B,) terminated or truncated."""
        return self.terminated | self.truncated


class SurrogateVectorEnv(VectorEnv):
    """B copies of the surrogate FedsLLM env in one batched numpy state.

    Args:
        num_envs: B.
        config: a :class:`FedsLLMConfig`, a dict of nested overrides, or None (as for the single env).
        calibration: E(r) / loss-curve calibration (default: the config's or the shipped table).
        variant: config fields fixed by a registered id (``mode``, ``action_mode``).
        render_mode: must be None (the batch does not render).
        parametrisation: "native" (the actions of ``config.action_mode``) or "priority" (the priority
            actions of :mod:`fedsllm_env.priority` on top of the Box mode).

    Raises:
        ConfigError: real mode, the hybrid action mode, a render mode, or ``num_envs`` outside
            [1, :data:`~fedsllm_env.config.MAX_NUM_ENVS`].
        MemoryLimitError: ``num_envs`` envs of this config would not fit in the memory available now.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, config: FedsLLMConfig | dict[str, Any] | None = None, *,
                 calibration: Calibration | None = None, variant: dict[str, Any] | None = None,
                 render_mode: str | None = None, parametrisation: str = "native"):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if render_mode is not None:
            raise ConfigError(f"SurrogateVectorEnv does not render; render_mode must be None, got {render_mode!r}")
        if config is None or isinstance(config, dict):
            config = FedsLLMConfig.from_dict(config or {})
        elif not isinstance(config, FedsLLMConfig):
            raise TypeError(f"config must be a FedsLLMConfig, dict or None, got {type(config).__name__}")
        cfg = config.replace(**variant) if variant else config
        check_num_envs(cfg, int(num_envs))  # before any batched array is allocated
        if cfg.mode != "surrogate":
            raise ConfigError(f"SurrogateVectorEnv needs mode='surrogate', got {cfg.mode!r}; real training "
                              "cannot be batched (use gym.make_vec(..., vectorization_mode='sync'))")
        if cfg.action_mode == "hybrid":
            raise ConfigError("SurrogateVectorEnv supports action_mode 'box' and 'multidiscrete'; the hybrid "
                              "mode runs the optimizer every step, which a batch cannot speed up (use "
                              "vectorization_mode='sync')")
        # the single env builds spaces, calibration and surrogate from the config: one source of truth
        template = FedsLLMEnv(cfg, calibration=calibration)
        assert isinstance(template.backend, SurrogateBackend)
        self.template = template
        self.config = cfg
        self.shape = template.shape
        self.num_envs = int(num_envs)
        self.render_mode = None
        if parametrisation == "priority":
            if cfg.action_mode != "box":
                raise ConfigError(f"priority actions sit on action_mode 'box', got {cfg.action_mode!r}")
            self._decoder: BatchedActionDecoder | BatchedPriorityDecoder = BatchedPriorityDecoder(template.action_codec)
        elif parametrisation == "native":
            self._decoder = BatchedActionDecoder(template.action_codec)
        else:
            raise ConfigError(f"parametrisation must be 'native' or 'priority', got {parametrisation!r}")
        self.parametrisation = parametrisation
        self.single_observation_space = template.observation_space
        self.single_action_space = self._decoder.space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.target_val_loss = float(template.target_val_loss)
        self._tables = DelayTables.build(self.shape, cfg, template.rounds_needed)
        self._channel = BatchedChannel(self.num_envs, cfg.wireless, cfg.compute)
        self._surrogate = BatchedSurrogate(template.backend, cfg.model.ranks, self.shape.n_layer - 1, self.num_envs,
                                           cfg.training.max_rounds)
        self._rngs = EnvGenerators(self.num_envs)
        b = self.num_envs
        self._initial_val_loss = np.full(b, self._surrogate.initial_val_loss)
        self._val_loss = self._initial_val_loss.copy()
        per_env = (b, cfg.wireless.num_clients) if cfg.heterogeneous else (b,)  # a cut and a rank per client
        self._split = np.full(per_env, cfg.model.initial_split, dtype=np.int64)
        self._rank_idx = np.full(per_env, cfg.model.ranks.index(cfg.model.initial_rank), dtype=np.int64)
        self._rounds = np.zeros(b, dtype=np.int64)
        self._cumulative_delay_s = np.zeros(b)
        self._ranks = np.asarray(cfg.model.ranks, dtype=np.int64)
        self._masks: np.ndarray | None = template.action_masks() if cfg.action_mode != "box" else None
        self._ready = False

    @property
    def uses_numba(self) -> bool:
        """Whether the per-round draws are made by numba's compiled loop (same numbers as numpy's; see
        :mod:`fedsllm_env.vector.generators`)."""
        return self._rngs.uses_numba

    # ---- helpers -----------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """(B, sum(nvec)) valid MultiDiscrete choices of every env (MaskablePPO); see ``FedsLLMEnv.action_masks``."""
        if self._masks is None:
            return self.template.action_masks()  # raises the single env's error for Box actions
        return np.broadcast_to(self._masks, (self.num_envs, self._masks.shape[0])).copy()

    def _reset_envs(self, idx: np.ndarray) -> None:
        """Start a new episode in envs ``idx`` from their generators (``FedsLLMEnv.reset`` after seeding)."""
        self._channel.reset(idx, self._rngs)
        seeds = np.array([int(self._rngs[i].integers(2**31 - 1)) for i in idx], dtype=np.int64)
        self._surrogate.reset(idx, seeds)
        cfg = self.config
        self._initial_val_loss[idx] = self._surrogate.initial_val_loss
        self._val_loss[idx] = self._surrogate.initial_val_loss
        self._split[idx] = cfg.model.initial_split
        self._rank_idx[idx] = cfg.model.ranks.index(cfg.model.initial_rank)
        self._rounds[idx] = 0
        self._cumulative_delay_s[idx] = 0.0

    def _observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Observations of every env, or of envs ``idx`` only."""
        ch = self._channel
        if idx is None:
            return encode_observations(self.config, self.shape, ch.gain, ch.load, ch.peak_flops, self._split,
                                       self._rank_idx, self._val_loss, self._surrogate.initial_val_loss, self._rounds)
        return encode_observations(self.config, self.shape, ch.gain[idx], ch.load[idx], ch.peak_flops[idx],
                                   self._split[idx], self._rank_idx[idx], self._val_loss[idx],
                                   self._surrogate.initial_val_loss, self._rounds[idx])

    def _reset_info(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[idx] = True
        val = np.zeros(self.num_envs)
        val[idx] = self._val_loss[idx]
        target = np.where(mask, self.target_val_loss, 0.0)
        return {"val_loss": val, "_val_loss": mask, "target_val_loss": target, "_target_val_loss": mask.copy()}

    # ---- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env (or those of ``options["reset_mask"]``); env i gets ``seed + i`` for an int seed."""
        b = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * b
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            first = check_seed(seed, "reset(seed=...)")
            seeds = [first + i for i in range(b)]
        elif isinstance(seed, (list, tuple, np.ndarray)):
            seeds = [check_seed(s, f"reset(seed=...)[{i}]") for i, s in enumerate(seed)]
            if len(seeds) != b:
                raise SeedError(f"reset(seed=...) is a list of length {len(seeds)}, expected num_envs={b} seeds "
                                "(or one int: env i gets seed + i)")
        else:
            check_seed(seed, "reset(seed=...)")  # raises for a bool, a float, a string, ...
            raise SeedError(f"reset(seed=...) must be an int >= 0, a list of {b} of them, or None, got "
                            f"{type(seed).__name__} {seed!r}")
        mask = np.ones(b, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (b,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({b},) with a True entry")
        idx = np.nonzero(mask)[0]
        if not self._ready and not mask.all():
            raise ResetNeeded(f"the first reset() must reset every env; options['reset_mask'] leaves out envs "
                              f"{np.flatnonzero(~mask)[:10].tolist()}")
        for i in idx:  # FedsLLMEnv.reset -> Env.reset(seed): reseed, or keep the generator
            if seeds[i] is not None or not self._ready:
                self._rngs[i], _ = seeding.np_random(seeds[i])
        self._reset_envs(idx)
        self._ready = True
        return self._observe(), self._reset_info(idx)

    def price(self, actions: np.ndarray) -> tuple[BatchedDecisions, BatchedDelay]:
        """Decode ``actions`` and price them on the current round without playing it (no state change, no draw).

        Returns:
            The decisions and their delay terms (``delay.round_s``: T_round of each env, s).
        """
        if not self._ready:
            raise ResetNeeded("Call reset() before price().")
        dec = self._decoder.decode(actions, self._channel, self._tables)
        return dec, batched_round_delay(self._tables, self.config, dec, self._channel)

    def rounds_needed(self, split_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        """E(r, c) of each env's (split index, rank index), from the calibration (inf where censored); (B, K)
        indices (a cut and a rank per client): the surrogate's E of each env's profile, as the single env's."""
        if np.ndim(split_idx) == 1:
            return self._tables.rounds_needed[split_idx, rank_idx]
        return np.array([self.template.rounds_needed(self._ranks[r], s + 1) for s, r in zip(split_idx, rank_idx)])

    def step_batch(self, actions: np.ndarray) -> StepBatch:
        """One round in every env, with autoreset of finished envs; returns arrays (see :class:`StepBatch`)."""
        if not self._ready:
            raise ResetNeeded("Call reset() before step().")
        cfg = self.config
        ch = self._channel
        dec = self._decoder.decode(actions, ch, self._tables)
        delay = batched_round_delay(self._tables, cfg, dec, ch)
        prev_loss = self._val_loss
        val_loss = self._surrogate.run_round(dec.split_idx, dec.rank_idx)
        r = cfg.reward
        reward_delay = -r.delay_weight * delay.round_s / r.delay_scale_s
        reward_progress = r.progress_weight * (prev_loss - val_loss) / np.maximum(self._initial_val_loss, 1e-9)
        reward = reward_delay + reward_progress
        if not np.isfinite(reward).all():  # never hand NaN/inf to an agent (the single env's reward_terms guard)
            bad = np.flatnonzero(~np.isfinite(reward))
            i = int(bad[0])
            raise NonFiniteError(f"cannot compute a finite reward in env(s) {bad[:10].tolist()}: env {i} has round "
                                 f"delay {float(delay.round_s[i])!r} s, validation loss {float(val_loss[i])!r}, reward "
                                 f"{float(reward[i])!r} (a delay is infinite when a client's rate is 0 bit/s or a "
                                 "size overflows; a reward overflows when delay_weight / delay_scale_s is huge)")
        ch.step(self._rngs)
        self._val_loss = val_loss
        self._split = dec.split_idx + 1
        self._rank_idx = dec.rank_idx
        self._rounds = self._rounds + 1
        self._cumulative_delay_s = self._cumulative_delay_s + delay.round_s
        terminated = val_loss <= self.target_val_loss
        truncated = ~terminated & (self._rounds >= cfg.training.max_rounds)
        obs = self._observe()
        e_r = self.rounds_needed(dec.split_idx, dec.rank_idx)
        info = {
            "round": self._rounds.copy(),
            "split": self._split.copy(),
            "rank": self._ranks[dec.rank_idx],
            "train_loss": val_loss.copy(),
            "val_loss": val_loss.copy(),
            "target_val_loss": np.full(self.num_envs, self.target_val_loss),
            "round_delay_s": delay.round_s,
            "cumulative_delay_s": self._cumulative_delay_s.copy(),
            "expected_rounds": e_r,
            "expected_total_delay_s": e_r * delay.round_s,
            "reward_terms": {"delay": reward_delay, "progress": reward_progress},
            "delay_breakdown": delay.as_info(),
            "measured": {},
        }
        final_obs = obs
        done = terminated | truncated
        if done.any():
            idx = np.flatnonzero(done)
            final_obs = obs.copy()
            self._reset_envs(idx)
            obs[idx] = self._observe(idx)
        return StepBatch(obs, reward, terminated, truncated, final_obs, info, dec, delay)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One round in every env (SAME_STEP autoreset); infos in Gymnasium's vector layout."""
        sb = self.step_batch(actions)
        done = sb.done
        if not done.any():
            (infos,) = _masked_infos(sb.info, [~done])
            return sb.obs, sb.reward.copy(), sb.terminated.copy(), sb.truncated.copy(), infos
        live = ~done
        idx = np.flatnonzero(done)
        if live.any():
            infos, final_info = _masked_infos(sb.info, [live, done])
        else:
            infos, (final_info,) = {}, _masked_infos(sb.info, [done])
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in idx:
            final_obs[i] = sb.final_obs[i]
        infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
        infos["final_info"], infos["_final_info"] = final_info, done.copy()
        reset_info = self._reset_info(idx)
        for key in ("val_loss", "target_val_loss"):
            if key in infos:  # live envs keep their step value, finished ones show the reset value
                infos[key] = np.where(done, reset_info[key], infos[key])
                infos[f"_{key}"] = infos[f"_{key}"] | done
            else:
                infos[key], infos[f"_{key}"] = reset_info[key], reset_info[f"_{key}"]
        return sb.obs, sb.reward.copy(), sb.terminated.copy(), sb.truncated.copy(), infos


def _leaves(info: dict[str, Any]) -> list[np.ndarray]:
    """The arrays of a nested info dict, depth first in key order."""
    out: list[np.ndarray] = []
    for value in info.values():
        out.extend(_leaves(value) if isinstance(value, dict) else [value])
    return out


def _masked_infos(info: dict[str, Any], masks: list[np.ndarray]) -> list[dict[str, Any]]:
    """Gymnasium's vector-info layout of the per-env arrays of ``info``, once per mask: values zeroed where the
    mask is False, and a ``_key`` copy of the mask beside every key (nested dicts kept).

    The arrays of one dtype are stacked and masked in one operation; every returned array is a row of its own
    (so in-place edits such as ``VectorEnv._add_info``'s touch nothing else).
    """
    leaves = _leaves(info)
    by_dtype: dict[tuple[np.dtype, tuple[int, ...]], list[int]] = {}
    for j, value in enumerate(leaves):  # (B,) arrays, or (B, K) per-client ones (heterogeneous cuts and ranks)
        by_dtype.setdefault((value.dtype, value.shape), []).append(j)
    stacks = [(members, np.stack([leaves[j] for j in members])) for members in by_dtype.values()]
    n_keys = _count_keys(info)
    outs = []
    for mask in masks:
        rows: list[np.ndarray | None] = [None] * len(leaves)
        for members, stacked in stacks:
            where = mask.reshape(mask.shape + (1,) * (stacked.ndim - 2))
            for j, row in zip(members, np.where(where, stacked, np.zeros((), dtype=stacked.dtype))):
                rows[j] = row
        outs.append(_rebuild(info, iter(rows), iter(np.tile(mask, (n_keys, 1)))))
    return outs


def _count_keys(info: dict[str, Any]) -> int:
    return sum(1 + (_count_keys(v) if isinstance(v, dict) else 0) for v in info.values())


def _rebuild(info: dict[str, Any], rows: Any, mask_rows: Any) -> dict[str, Any]:
    """``info``'s nesting filled with the next of ``rows`` per array and the next of ``mask_rows`` per key."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        out[key] = _rebuild(value, rows, mask_rows) if isinstance(value, dict) else next(rows)
        out[f"_{key}"] = next(mask_rows)
    return out


def make_priority_vector_env(num_envs: int, **kwargs: Any) -> SurrogateVectorEnv:
    """``SurrogateVectorEnv(num_envs, parametrisation="priority", **kwargs)``: the Priority id's vector entry point."""
    return SurrogateVectorEnv(num_envs, parametrisation="priority", **kwargs)

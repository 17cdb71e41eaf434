"""The "priority" action parametrisation: per-client priorities for a greedy subchannel rule and a deadline per link.

Action: flat ``Box(-1, 1)`` of size ``2 K + 4`` (14 for the default K = 5, against the Box codec's 132):

==================  ======  =====================================================================
block               size    decoding (per link; MS first, then FS)
==================  ======  =====================================================================
priority_ms         K       w_k = exp(BETA a_k). Subchannels are handed out greedily: first each
                            client, weakest (lowest best gain) first, takes its best free
                            subchannel; then, M - K times, the client with the largest w_k D_k
                            takes its best free subchannel, where D_k is its delay with an equal
                            power share (min(p_max, p_th / K) spread evenly over its subchannels)
priority_fs         K       same for the FS link
deadline_ms         1       T = D_ref exp(DEADLINE_SCALE a), D_ref = max_k D_k after the greedy;
                            every client uses the least power that finishes its upload (after its
                            forward pass on the MS link) by T, at most p_max; if the link's total
                            exceeds p_th all budgets shrink uniformly; each client water-fills its
                            budget over its own subchannels (p_i = max(0, mu - N0 B / g_i))
deadline_fs         1       same for the FS link (LoRA upload, no compute before it)
split               1 (K)   c = 1 + bin of (a + 1) / 2 into L - 1 bins (memory limit projected)
rank                1 (K)   r = ranks[bin of (a + 1) / 2 into len(ranks) bins]
==================  ======  =====================================================================

With ``heterogeneous=True`` the split and rank blocks hold one entry per client (``4 K + 2`` in all): client k
runs blocks 1..c_k at rank r_k, each (c_k, r_k) projected onto the memory limit on its own, and on the FS link
each client's LoRA payload is its own.

With a = 0 the rule is a cheap heuristic (the paper's greedy with equal-share estimates, deadline at the
equal-share straggler); the agent steers who is served first and how hard each link pushes. Every
function takes a leading batch axis (B envs): the batched env and the single env (B = 1) share them, so
both decode identically. Values outside [-1, 1] are clipped; NaN/inf raise ``InvalidActionError``.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fedsllm_env.batched import first_argmax
from fedsllm_env.codecs.base import refuse_non_real
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import client_compute_s, client_memory_limits_bytes, client_payload_bits, noise_psd_w_per_hz, \
    payload_bits, project_split_rank
from fedsllm_env.errors import InvalidActionError
from fedsllm_env.types import Decision

__all__ = ["BETA", "DEADLINE_SCALE", "HEURISTIC_DEADLINE", "PriorityHeuristic", "heuristic_action", "priority_space", "greedy_assign",
           "min_power_for_rate", "water_fill",
           "decode_link", "decode_priority", "PriorityEnv", "make_priority_env"]

BETA = 2.0
"""Priority scale: a_k = +-1 multiplies client k's estimated delay by e^{+-2} in the greedy rule."""
DEADLINE_SCALE = 1.0
"""Deadline scale: a = +-1 sets the deadline to e^{+-1} times the equal-share straggler's delay (a very tight
deadline makes every client ask for p_max, so the total-power scaling gives equal power; a loose one lets
clients save power)."""
HEURISTIC_DEADLINE = -0.5
"""Deadline action of :class:`PriorityHeuristic` on both links: the best constant on training seeds 2000-2019
(grid -1..0 in steps of about 0.15; ``docs/benchmark.md``), i.e. T = e^-0.5 D_ref."""


def priority_space(num_clients: int, heterogeneous: bool = False) -> spaces.Box:
    """``Box(-1, 1, (2 K + 4,))``; per client (``heterogeneous``) ``Box(-1, 1, (4 K + 2,))``."""
    d = num_clients if heterogeneous else 1
    return spaces.Box(-1.0, 1.0, shape=(2 * num_clients + 2 + 2 * d,), dtype=np.float32)


def greedy_assign(gain: np.ndarray, weight: np.ndarray, bits: np.ndarray, fixed_s: np.ndarray, share_w: np.ndarray,
                  bandwidth_hz: float, n0_w_per_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy owners (B, S) and the equal-share delays D (B, K) of the final assignment, s.

    Args:
        gain: (B, K, S) linear gains.
        weight: (B, K) priority weights w_k > 0.
        bits: (B,) bits each client sends on this link, or (B, K) one number per client.
        fixed_s: (B, K) time before the upload starts (forward pass on the MS link, 0 on the FS link), s.
        share_w: (B, K) equal power share of each client, W.
        bandwidth_hz: subchannel bandwidth, Hz.
        n0_w_per_hz: noise PSD, W/Hz.
    """
    b, k, s = gain.shape
    rows = np.arange(b)
    owner = np.zeros((b, s), dtype=np.int64)
    free = np.ones((b, s), dtype=bool)
    counts = np.zeros((b, k))
    order = np.argsort(gain.max(axis=2), axis=1, kind="stable")  # weakest client first
    nb = n0_w_per_hz * bandwidth_hz
    rate = np.zeros((b, k))

    def give(client: np.ndarray) -> None:
        g = gain[rows, client, :]
        i = first_argmax(np.where(free, g, -np.inf))
        owner[rows, i] = client
        free[rows, i] = False
        counts[rows, client] += 1
        # only this client's rate changes: its share is now spread over one more subchannel
        mine = (owner == client[:, None]) & ~free
        snr = (share_w[rows, client] / counts[rows, client])[:, None] * g / nb
        rate[rows, client] = np.where(mine, bandwidth_hz * np.log2(1.0 + snr), 0.0).sum(axis=1)

    per_client_bits = bits if bits.ndim == 2 else bits[:, None]

    def delays() -> np.ndarray:
        with np.errstate(divide="ignore"):
            return fixed_s + per_client_bits / rate

    for j in range(k):
        give(order[:, j])
    for _ in range(s - k):
        give(first_argmax(weight * delays()))
    return owner, delays()


def min_power_for_rate(noise: np.ndarray, owner: np.ndarray, rate_bps: np.ndarray, bandwidth_hz: float) -> np.ndarray:
    """(B, K) least total power giving each client ``rate_bps`` over its own subchannels (inverse water-filling), W.

    Args:
        noise: (B, S) N0 B / g of each subchannel for its owner, W.
        owner: (B, S) owners.
        rate_bps: (B, K) target rates, bit/s.
        bandwidth_hz: subchannel bandwidth, Hz.
    """
    b, s = noise.shape
    k = rate_bps.shape[1]
    own = owner[:, None, :] == np.arange(k)[None, :, None]
    floors = np.sort(np.where(own, noise[:, None, :], np.inf), axis=2)  # (B, K, S), owned floors first
    j = np.arange(1, s + 1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # wetting the j lowest floors: sum_i B log2(mu / n_i) = R  ->  log2 mu = (R / B + sum log2 n_i) / j
        mu = np.exp2((rate_bps[:, :, None] / bandwidth_hz + np.cumsum(np.log2(floors), axis=2)) / j)
        nxt = np.concatenate([floors[:, :, 1:], np.full((b, k, 1), np.inf)], axis=2)
        valid = np.isfinite(floors) & (mu > floors) & (mu <= nxt)
        power = j * mu - np.cumsum(floors, axis=2)
    pick = first_argmax(valid.astype(np.int8))
    return np.take_along_axis(power, pick[:, :, None], axis=2)[:, :, 0]


def water_fill(noise: np.ndarray, owner: np.ndarray, budget_w: np.ndarray) -> np.ndarray:
    """(B, S) powers: each client water-fills its budget over its own subchannels (max sum rate), W."""
    b, s = noise.shape
    k = budget_w.shape[1]
    own = owner[:, None, :] == np.arange(k)[None, :, None]
    floors = np.sort(np.where(own, noise[:, None, :], np.inf), axis=2)
    with np.errstate(invalid="ignore"):
        levels = (budget_w[:, :, None] + np.cumsum(floors, axis=2)) / np.arange(1, s + 1)
        wet = np.isfinite(floors) & (levels > floors)  # a prefix: the lowest floors are wet first
    n_wet = np.maximum(wet.sum(axis=2), 1)
    mu = np.take_along_axis(levels, (n_wet - 1)[:, :, None], axis=2)[:, :, 0]
    return np.maximum(np.take_along_axis(mu, owner, axis=1) - noise, 0.0)


def decode_link(gain: np.ndarray, priority: np.ndarray, deadline: np.ndarray, bits: np.ndarray, fixed_s: np.ndarray,
                max_power_w: np.ndarray, total_power_w: float, bandwidth_hz: float, n0_w_per_hz: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Owners (B, S) and powers (B, S) W of one link (module docstring) from clipped actions in [-1, 1]."""
    k = gain.shape[1]
    share = np.minimum(max_power_w, total_power_w / k)
    owner, d_eq = greedy_assign(gain, np.exp(BETA * priority), bits, fixed_s, share, bandwidth_hz, n0_w_per_hz)
    target = d_eq.max(axis=1) * np.exp(DEADLINE_SCALE * deadline)
    owner_gain = np.take_along_axis(gain, owner[:, None, :], axis=1)[:, 0, :]
    noise = n0_w_per_hz * bandwidth_hz / np.maximum(owner_gain, 1e-300)
    slack = target[:, None] - fixed_s
    ok = slack > 0
    per_client_bits = bits if bits.ndim == 2 else bits[:, None]
    need = min_power_for_rate(noise, owner, per_client_bits / np.where(ok, slack, 1.0), bandwidth_hz)
    budget = np.where(ok & np.isfinite(need), np.minimum(need, max_power_w), max_power_w)
    total = budget.sum(axis=1, keepdims=True)
    budget = np.where(total > total_power_w, budget * (total_power_w / total), budget)
    power = water_fill(noise, owner, budget)
    s = power.sum(axis=1, keepdims=True)  # water-filling spends each budget exactly, up to round-off
    return owner, np.where(s > total_power_w, power * (total_power_w / s), power)


def decode_priority(cfg: FedsLLMConfig, action: np.ndarray, gain_ms: np.ndarray, gain_fs: np.ndarray,
                    fwd_s: np.ndarray, up_bits: np.ndarray, lora_bits: np.ndarray, max_power_w: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(assign_ms, power_ms_w, assign_fs, power_fs_w) of B envs; split and rank are decoded by the caller.

    Args:
        cfg: env config.
        action: (B, 2 K + 4) validated actions (clipped here); per client (B, 4 K + 2).
        gain_ms, gain_fs: (B, K, M), (B, K, N) linear gains.
        fwd_s: (B, K) client forward time at the decoded split/rank, s.
        up_bits, lora_bits: (B,) activation + label bits per iteration, LoRA bits per round (``lora_bits`` may
            be (B, K), one per client).
        max_power_w: (B, K) p_max, W.
    """
    w = cfg.wireless
    k = w.num_clients
    a = np.clip(action, -1.0, 1.0)
    n0 = noise_psd_w_per_hz(w.noise_psd_dbm_per_hz)
    own_ms, p_ms = decode_link(gain_ms, a[:, :k], a[:, 2 * k], up_bits, fwd_s, max_power_w, w.total_power_ms_w,
                               w.subchannel_bandwidth_ms_hz, n0)
    own_fs, p_fs = decode_link(gain_fs, a[:, k:2 * k], a[:, 2 * k + 1], lora_bits, np.zeros_like(fwd_s),
                               max_power_w, w.total_power_fs_w, w.subchannel_bandwidth_fs_hz, n0)
    return own_ms, p_ms, own_fs, p_fs


def split_rank_bins(cfg: FedsLLMConfig, n_layer: int, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) split and rank indices from the last two entries (the Box codec's binning); per client
    (``cfg.heterogeneous``) (B, K) each from the last 2 K entries."""
    n_split, n_rank = n_layer - 1, len(cfg.model.ranks)
    d = cfg.wireless.num_clients if cfg.heterogeneous else 1
    a = np.clip(action[:, -2 * d:], -1.0, 1.0)
    split_idx = np.minimum(((a[:, :d] + 1.0) / 2.0 * n_split).astype(np.int64), n_split - 1)
    rank_idx = np.minimum(((a[:, d:] + 1.0) / 2.0 * n_rank).astype(np.int64), n_rank - 1)
    return (split_idx, rank_idx) if cfg.heterogeneous else (split_idx[:, 0], rank_idx[:, 0])


def validate(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """float64 copy of ``action`` with shape ``shape`` and finite entries, else ``InvalidActionError`` (also for a
    complex action or one of strings, which numpy would cast silently: :func:`~fedsllm_env.codecs.base.refuse_non_real`,
    as the other codecs do)."""
    refuse_non_real(action)
    try:
        a = np.array(action, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidActionError(f"action must be numeric, got {type(action).__name__}") from e
    if a.shape != shape:
        if a.size == int(np.prod(shape)) and a.ndim == len(shape) + 1 and a.shape[0] == 1:
            a = a.reshape(shape)  # a batch of one, as SB3's predict returns for a single obs
        else:
            raise InvalidActionError(f"action has shape {a.shape}, expected {shape} (priority actions)")
    if not np.isfinite(a).all():
        raise InvalidActionError(f"action contains NaN/inf at indices {np.flatnonzero(~np.isfinite(a))[:10].tolist()}")
    return a


class PriorityEnv(gym.Wrapper):
    """The surrogate (or real) env with priority actions (module docstring); observations are the Box env's.

    Each step decodes the action with the current channel into a feasible :class:`Decision` and plays it
    with ``FedsLLMEnv.step_decision``.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        base = env.unwrapped
        self.action_space = priority_space(base.config.wireless.num_clients, base.config.heterogeneous)
        self.decode_time_s = 0.0
        """Wall time spent decoding actions since construction, s (kept out of ``info``: not reproducible)."""
        self.decode_count = 0
        """Actions decoded since construction."""

    def decode(self, action: np.ndarray) -> Decision:
        """The decision ``action`` stands for in the current round."""
        base = self.env.unwrapped
        cfg, shape, scenario, channel = base.config, base.shape, base.scenario, base.channel
        a = validate(action, self.action_space.shape)[None]
        split_idx, rank_idx = split_rank_bins(cfg, shape.n_layer, a)
        if cfg.heterogeneous:
            limits = client_memory_limits_bytes(cfg)
            pairs = [project_split_rank(int(c) + 1, cfg.model.ranks[int(r)], shape, cfg, float(lim))
                     for c, r, lim in zip(split_idx[0], rank_idx[0], limits)]
            split = np.array([c for c, _ in pairs], dtype=np.int64)
            rank = np.array([r for _, r in pairs], dtype=np.int64)
            act, label, lora = client_payload_bits(shape, split, rank, cfg)
            act, label = act[0], label[0]  # the cut activation and labels are the same for every client
        else:
            split, rank = project_split_rank(int(split_idx[0]) + 1, cfg.model.ranks[int(rank_idx[0])], shape, cfg)
            act, label, lora = payload_bits(shape, split, rank, cfg)
        fwd, _ = client_compute_s(shape, split, rank, scenario, channel.load, cfg)
        own_ms, p_ms, own_fs, p_fs = decode_priority(
            cfg, a, channel.gain_ms[None], channel.gain_fs[None], fwd[None], np.array([act + label]),
            np.asarray(lora, dtype=float)[None], scenario.client_max_power_w[None])
        return Decision(own_ms[0], own_fs[0], p_ms[0], p_fs[0], split, rank)

    def step(self, action: np.ndarray):
        """Decode and play one round."""
        start = time.perf_counter()
        decision = self.decode(action)
        self.decode_time_s += time.perf_counter() - start
        self.decode_count += 1
        return self.env.unwrapped.step_decision(decision)


def make_priority_env(config: FedsLLMConfig | dict[str, Any] | None = None, **kwargs: Any) -> PriorityEnv:
    """A :class:`~fedsllm_env.env.FedsLLMEnv` (Box mode underneath) with priority actions."""
    from fedsllm_env.env import FedsLLMEnv

    return PriorityEnv(FedsLLMEnv(config, **kwargs))


def heuristic_action(num_clients: int, heterogeneous: bool = False) -> np.ndarray:
    """The priority action of :class:`PriorityHeuristic` for K clients: neutral priorities, both deadlines at
    :data:`HEURISTIC_DEADLINE`, the smallest split and the largest rank (for every client when heterogeneous)."""
    k = int(num_clients)
    d = k if heterogeneous else 1
    action = np.zeros(priority_space(k, heterogeneous).shape, dtype=np.float32)
    action[2 * k: 2 * k + 2] = HEURISTIC_DEADLINE
    action[-2 * d: -d] = -1.0  # the smallest split for every client
    action[-d:] = 1.0  # the largest rank
    return action


class PriorityHeuristic:
    """A fixed priority action (SB3 ``predict`` interface): neutral priorities, both deadlines at
    :data:`HEURISTIC_DEADLINE`, the smallest split and the largest rank. The cheap heuristic of the priority
    codec (no optimisation, about a millisecond per decision), and a behaviour-cloning teacher.

    Args:
        env: a priority env (any wrapper of :class:`PriorityEnv`) or its action space (the paper's shared layout;
            pass the env for a heterogeneous one).
    """

    def __init__(self, env: gym.Env | spaces.Box):
        if isinstance(env, spaces.Box):
            self.action = heuristic_action((env.shape[0] - 4) // 2)
        else:
            cfg = env.unwrapped.config
            self.action = heuristic_action(cfg.wireless.num_clients, cfg.heterogeneous)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """The fixed action (a batch of them for a batch of observations)."""
        obs = np.asarray(observation)
        if obs.ndim == 2:
            return np.repeat(self.action[None], obs.shape[0], axis=0), None
        return self.action.copy(), None

"""Observation encoding and action decoding for B envs (batched mirrors of :mod:`fedsllm_env.spaces` and
:mod:`fedsllm_env.codecs`).

Layouts, projections and error rules are those of the single env's observation codec and Box / MultiDiscrete
action codecs; the arithmetic repeats theirs element by element, so env i's observation and decision are
bit-identical to the single env's (tested). The priority actions (:mod:`fedsllm_env.priority`) share their
batched functions with the single env.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import InvalidActionError
from fedsllm_env.profile import ModelShape
from fedsllm_env.batched import batched_bincount, first_argmax_finite, repair_assignments, take_rows
from fedsllm_env.priority import decode_priority, priority_space, split_rank_bins
from fedsllm_env.priority import validate as _validate_priority
from fedsllm_env.codecs import MIN_BUDGET_FRACTION
from fedsllm_env.codecs.base import SplitRankCodec, refuse_non_real
from fedsllm_env.spaces import GAIN_DB_RANGE

__all__ = ["BatchedDecisions", "encode_observations", "BatchedActionDecoder", "BatchedPriorityDecoder"]

_NATIVE_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64))


@dataclass
class BatchedDecisions:
    """Decisions of B envs: owners (B, S) int, powers (B, S) W, split and rank indices (B,), or (B, K) with a cut
    and a rank per client."""

    assign_ms: np.ndarray
    assign_fs: np.ndarray
    power_ms_w: np.ndarray
    power_fs_w: np.ndarray
    split_idx: np.ndarray
    """c - 1."""
    rank_idx: np.ndarray
    """Index into ``cfg.model.ranks``."""
    assign: np.ndarray | None = None
    """(B, M + N) owners of both links side by side (``assign_ms`` and ``assign_fs`` are views of it), when the
    decoder made them that way; None otherwise."""
    power_w: np.ndarray | None = None
    """(B, M + N) powers of both links side by side, as ``assign``."""

    def both_links(self) -> tuple[np.ndarray, np.ndarray]:
        """(B, M + N) owners and powers, MS subchannels then FS subchannels."""
        if self.assign is not None and self.power_w is not None:
            return self.assign, self.power_w
        return (np.concatenate([self.assign_ms, self.assign_fs], axis=1),
                np.concatenate([self.power_ms_w, self.power_fs_w], axis=1))


def encode_observations(cfg: FedsLLMConfig, shape: ModelShape, gain: np.ndarray, load: np.ndarray,
                        peak_flops: np.ndarray, split: np.ndarray, rank_idx: np.ndarray, val_loss: np.ndarray,
                        initial_val_loss: float, rounds_done: np.ndarray) -> np.ndarray:
    """(B, obs_dim) float32 observations (``ObservationCodec.encode`` per row).

    Args:
        cfg, shape: env config and model dimensions.
        gain: (B, K*M + K*N) linear gains, MS block then FS block, each client-major.
        load, peak_flops: (B, K) device loads and f_k kappa_k (FLOP/s).
        split: (B,) cut index c, or (B, K) one per client.
        rank_idx: (B,) index of the rank in ``cfg.model.ranks``, or (B, K) one per client.
        val_loss: (B,) current validation loss.
        initial_val_loss: the validation loss before round 1.
        rounds_done: (B,) rounds played.
    """
    lo, hi = GAIN_DB_RANGE
    b, k = load.shape
    n_g = gain.shape[1]
    # the single codec takes log10(max(gain, 1e-30)); every gain below 1e-30 (-300 dB, under the range's floor)
    # ends at -1 after the clip either way, so the floor is left out: the same numbers with one pass less
    assert lo > -300.0
    with np.errstate(divide="ignore"):
        g = np.log10(gain)
    g *= 20.0 / (hi - lo)
    g -= 2.0 * lo / (hi - lo) + 1.0
    np.clip(g, -1.0, 1.0, out=g)  # = minimum(maximum(g, -1), 1)
    c = cfg.compute
    dev = np.empty((b, 2 * k))
    dev[:, :k] = load / max(c.load_max, 1e-9)
    dev[:, k:] = peak_flops / (c.client_cpu_freq_range_hz[1] * max(c.client_flops_per_cycle_choices))
    np.minimum(np.maximum(dev, 0.0, out=dev), 1.0, out=dev)
    n_layer, n_rank = shape.n_layer, len(cfg.model.ranks)
    d = split.shape[1] if split.ndim == 2 else 1  # K per-client cuts and ranks (heterogeneous), else one of each
    out = np.empty((b, n_g + 2 * k + 2 * d + 2), dtype=np.float32)
    out[:, :n_g] = g
    out[:, n_g:n_g + 2 * k] = dev
    if d == 1:
        out[:, -4] = (split - 1) / (n_layer - 2) if n_layer > 2 else 0.0
        out[:, -3] = rank_idx / (n_rank - 1) if n_rank > 1 else 0.0
    else:
        out[:, -2 - 2 * d: -2 - d] = (split - 1.0) / (n_layer - 2) if n_layer > 2 else 0.0
        out[:, -2 - d: -2] = rank_idx / (n_rank - 1) if n_rank > 1 else 0.0
    out[:, -2] = np.minimum(np.maximum(val_loss / max(initial_val_loss, 1e-9), 0.0), 2.0)
    out[:, -1] = np.minimum(rounds_done / cfg.training.max_rounds, 1.0)
    return out


def _spread_power(owner: np.ndarray, weights: np.ndarray, budget_w: np.ndarray, num_clients: int) -> np.ndarray:
    """Row-wise ``spaces._spread_power``: p_i = budget_owner * w_i / sum of the owner's weights."""
    w = weights + 1e-12
    wsum = batched_bincount(owner, w, num_clients)
    w /= take_rows(wsum, owner)
    w *= take_rows(budget_w, owner)  # budget * (w / wsum), as the single codec multiplies
    return w


def _project_total_power(power_w: np.ndarray, total_w: float | np.ndarray) -> np.ndarray:
    """Row-wise ``spaces.project_total_power`` (``total_w``: one limit, or one per row), W; scales ``power_w`` in place."""
    s = power_w.sum(axis=1)
    over = np.flatnonzero(s > total_w)
    if over.size:
        scale = (total_w if np.ndim(total_w) == 0 else total_w[over]) / s[over]
        power_w[over] *= scale[:, None]
    return power_w


class BatchedActionDecoder:
    """Decodes (B, action_dim) actions of the Box or MultiDiscrete mode into feasible batched decisions.

    Args:
        codec: the single env's Box or MultiDiscrete codec (:mod:`fedsllm_env.codecs`; its space, mode and
            the memory projection of split and rank are reused).
    """

    def __init__(self, codec: SplitRankCodec):
        if codec.mode not in ("box", "multidiscrete"):
            raise InvalidActionError(f"batched decoding supports action_mode 'box' and 'multidiscrete', "
                                     f"got {codec.mode!r}")
        self.codec = codec
        self.cfg = codec.cfg
        self.space = codec.space
        w = self.cfg.wireless
        self.k, self.m, self.n = w.num_clients, w.num_subchannels_ms, w.num_subchannels_fs
        ranks = self.cfg.model.ranks
        self.n_split, self.n_rank = codec.shape.n_layer - 1, len(ranks)
        self.d = codec.num_decisions  # entries of the split and rank blocks: K per client, else 1
        # memory projection of every (split, rank) request, tabulated once through the single codec: (1, C, R)
        # under the cap a shared decision must fit, or per client (K, C, R) under each client's own cap
        owners = [None] if self.d == 1 else list(range(self.k))
        self._proj_split = np.empty((len(owners), self.n_split, self.n_rank), dtype=np.int64)
        self._proj_rank = np.empty((len(owners), self.n_split, self.n_rank), dtype=np.int64)
        for i, client in enumerate(owners):
            for s in range(self.n_split):
                for j, r in enumerate(ranks):
                    c, rr = codec.split_rank(s, j, client)
                    self._proj_split[i, s, j], self._proj_rank[i, s, j] = c - 1, ranks.index(rr)
        # offset of each decision's table in the flat layout (0 for a shared decision)
        self._cell_offset = np.arange(len(owners)) * (self.n_split * self.n_rank) if self.d > 1 else 0
        self._eye = np.eye(self.k)
        self._proj_flat = (self._proj_split.ravel(), self._proj_rank.ravel())
        self._bins = np.array([self.n_split, self.n_rank], dtype=float)
        self._last_bin = np.array([self.n_split - 1, self.n_rank - 1], dtype=np.int64)
        self._buffers: dict[int, np.ndarray] = {}  # num_envs -> (B, action_dim) float64 scratch of the Box mode
        self._caps: tuple[np.ndarray, list[np.ndarray], list[float | np.ndarray]] | None = None

    def _validate(self, actions: np.ndarray, num_envs: int) -> np.ndarray:
        """``actions`` as a numeric (B, action_dim) array (float32/float64/integer arrays as given, anything else
        converted to float64); InvalidActionError for a non-numeric, wrongly shaped or NaN/inf action."""
        expected = (num_envs, *self.space.shape)
        a = actions
        if not (isinstance(a, np.ndarray) and a.dtype in _NATIVE_DTYPES):
            refuse_non_real(actions, "actions")
            try:
                a = np.asarray(actions, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise InvalidActionError(f"actions must be numeric, got {type(actions).__name__}") from e
        if a.shape != expected:
            raise InvalidActionError(f"actions have shape {a.shape}, expected {expected} "
                                     f"(num_envs, action_dim) for action_mode={self.codec.mode!r}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            env, idx = np.nonzero(~np.isfinite(a))
            raise InvalidActionError(f"actions contain NaN/inf: env {int(env[0])} at indices "
                                     f"{idx[env == env[0]][:10].tolist()}")
        return a

    def _link_caps(self, max_power_w: np.ndarray) -> tuple[list[np.ndarray], list[float | np.ndarray]]:
        """Per-link p_max rows and total-power limits in the layout of :meth:`_pair` (cached: p_max is fixed)."""
        if self._caps is not None and self._caps[0] is max_power_w:
            return self._caps[1], self._caps[2]
        w = self.cfg.wireless
        b = max_power_w.shape[0]
        if self.m == self.n:
            caps: list[np.ndarray] = [np.repeat(max_power_w, 2, axis=0)]
            totals: list[float | np.ndarray] = [np.tile([w.total_power_ms_w, w.total_power_fs_w], b)]
        else:
            caps, totals = [max_power_w, max_power_w], [w.total_power_ms_w, w.total_power_fs_w]
        self._caps = (max_power_w, caps, totals)
        return caps, totals

    def _pair(self, x: np.ndarray, offset: int, ms_shape: tuple[int, ...], fs_shape: tuple[int, ...]
              ) -> list[np.ndarray]:
        """The adjacent MS and FS blocks of ``x[:, offset:]`` with per-env shapes ``ms_shape`` and ``fs_shape``:
        one stacked (2B, ...) view (row 2b: env b's MS block, row 2b + 1: its FS block) when M = N, else two."""
        b = x.shape[0]
        size_ms, size_fs = math.prod(ms_shape), math.prod(fs_shape)
        if self.m == self.n:
            return [x[:, offset: offset + 2 * size_ms].reshape(2 * b, *ms_shape)]
        return [x[:, offset: offset + size_ms].reshape(b, *ms_shape),
                x[:, offset + size_ms: offset + size_ms + size_fs].reshape(b, *fs_shape)]

    def decode(self, actions: np.ndarray, channel: Any, tables: Any = None) -> BatchedDecisions:
        """Feasible decisions of every env (same projections as the codec's ``decode``).

        The two links are decoded as one stacked batch when they have as many subchannels (the default).

        Args:
            actions: (B, action_dim) actions.
            channel: the :class:`~fedsllm_env.vector.channel.BatchedChannel` (its p_max is used).
            tables: unused (the priority decoder needs the delay tables).
        """
        max_power_w = channel.max_power_w
        b = max_power_w.shape[0]
        a = self._validate(actions, b)
        k, m, n = self.k, self.m, self.n
        caps, totals = self._link_caps(max_power_w)
        owners, powers = [], []
        if self.codec.mode == "box":
            buf = self._buffers.get(b)
            if buf is None:
                buf = self._buffers[b] = np.empty(a.shape)
            a = np.clip(a, -1.0, 1.0, out=buf)  # = minimum(maximum(a, -1), 1) in float64: a is finite
            o = m * k + n * k + m + n + 2 * k
            if self.d == 1:
                # split and rank bins together: min(int((x + 1) / 2 * n), n - 1)
                sr = ((a[:, o: o + 2] + 1.0) / 2.0 * self._bins).astype(np.int64)
                np.minimum(sr, self._last_bin, out=sr)
                cell = sr[:, 0] * self.n_rank + sr[:, 1]
            else:  # K split bins, then K rank bins: the action's last 2 K entries, binned as the priority actions'
                s_bin, r_bin = split_rank_bins(self.cfg, self.codec.shape.n_layer, a)
                cell = s_bin * self.n_rank + r_bin + self._cell_offset
            links = zip(self._pair(a, 0, (m, k), (n, k)), self._pair(a, m * k + n * k, (m,), (n,)),
                        self._pair(a, o - 2 * k, (k,), (k,)), caps, totals)
            for logits, raw_w, raw_b, cap, total in links:
                own = repair_assignments(first_argmax_finite(logits), logits, k)  # a is finite
                frac = raw_b + 1.0
                frac /= 2.0
                budget = cap * np.maximum(frac, MIN_BUDGET_FRACTION, out=frac)
                weights = raw_w + 1.0
                weights /= 2.0
                owners.append(own)
                powers.append(_project_total_power(_spread_power(own, weights, budget, k), total))
        else:
            a = np.asarray(a, dtype=np.float64)
            p = self.cfg.power_levels
            if np.any(a != np.round(a)):
                raise InvalidActionError("MultiDiscrete action must hold integers")
            # documented projection, clipped in float first as the single codec does (1e20 -> the last choice)
            idx = np.clip(a, 0, self.space.nvec - 1).astype(np.int64)
            o = 2 * (m + n)
            if self.d == 1:
                cell = idx[:, o] * self.n_rank + idx[:, o + 1]
            else:
                cell = idx[:, o: o + self.d] * self.n_rank + idx[:, o + self.d: o + 2 * self.d] + self._cell_offset
            for own, lv_idx, cap, total in zip(self._pair(idx, 0, (m,), (n,)), self._pair(idx, m + n, (m,), (n,)),
                                               caps, totals):
                lv = (lv_idx + 1.0) / p
                own = repair_assignments(own, self._eye[own], k)
                budget = cap * batched_bincount(own, lv, k) / batched_bincount(own, None, k)
                owners.append(own)
                powers.append(_project_total_power(_spread_power(own, lv, budget, k), total))
        proj_split, proj_rank = self._proj_flat
        if m == n:  # rows 2b and 2b + 1 of the stack are env b's links: (B, 2M) rows without a copy
            own, power = owners[0].reshape(b, 2 * m), powers[0].reshape(b, 2 * m)
            return BatchedDecisions(own[:, :m], own[:, m:], power[:, :m], power[:, m:], proj_split[cell],
                                    proj_rank[cell], own, power)
        (own_ms, own_fs), (p_ms, p_fs) = owners, powers
        return BatchedDecisions(own_ms, own_fs, p_ms, p_fs, proj_split[cell], proj_rank[cell])


class BatchedPriorityDecoder:
    """Decodes (B, 2 K + 4) priority actions (:mod:`fedsllm_env.priority`) into feasible batched decisions.

    Args:
        codec: the single env's :class:`~fedsllm_env.codecs.BoxCodec` (memory projection of split/rank).
    """

    def __init__(self, codec: SplitRankCodec):
        self.cfg = codec.cfg
        self.space = priority_space(self.cfg.wireless.num_clients, self.cfg.heterogeneous)
        self.n_layer = codec.shape.n_layer
        self._projection = BatchedActionDecoder(codec)

    def decode(self, actions: np.ndarray, channel: Any, tables: Any) -> BatchedDecisions:
        """Decisions of every env.

        Args:
            actions: (B, 2 K + 4) actions.
            channel: the :class:`~fedsllm_env.vector.channel.BatchedChannel`.
            tables: the :class:`~fedsllm_env.vector.delay.DelayTables` (forward FLOPs and payloads).
        """
        b = channel.num_envs
        if not (isinstance(actions, np.ndarray) and actions.dtype in _NATIVE_DTYPES):
            refuse_non_real(actions, "actions")
        a = _validate_priority(actions, (b, *self.space.shape))
        split_req, rank_req = split_rank_bins(self.cfg, self.n_layer, a)
        proj = self._projection
        owner = np.arange(proj.d) if proj.d > 1 else 0  # each client's own projection table, or the shared one
        split_idx, rank_idx = proj._proj_split[owner, split_req, rank_req], proj._proj_rank[owner, split_req, rank_req]
        cell = split_idx * tables.up_bits.shape[1] + rank_idx
        flops = tables.client_flops.ravel()[cell]
        fwd = (flops if flops.ndim == 2 else flops[:, None]) / (channel.peak_flops * (1.0 - channel.load))
        # per client ((B, K) cells): the activation and labels are every client's, the LoRA upload its own
        up_bits = tables.up_bits.ravel()[cell if cell.ndim == 1 else cell[:, 0]]
        own_ms, p_ms, own_fs, p_fs = decode_priority(self.cfg, a, channel.gain_ms, channel.gain_fs, fwd, up_bits,
                                                     tables.lora_bits.ravel()[cell], channel.max_power_w)
        return BatchedDecisions(own_ms, own_fs, p_ms, p_fs, split_idx, rank_idx)

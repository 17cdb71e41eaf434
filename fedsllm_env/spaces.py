"""Observation and action spaces, built once from the config, with pure encode/decode functions.

Observation (flat float32 Box, finite bounds), index blocks in order:

====================  ===========  ==================================================================
block                 size         value
====================  ===========  ==================================================================
gain_ms               K*M          channel gain in dB mapped from [-200, -40] dB to [-1, 1] (clipped)
gain_fs               K*N          same for the FS link
load                  K            device load / load_max, in [0, 1]
compute               K            f_k kappa_k / (max f * max kappa), in (0, 1]
split                 1            (c - 1) / (L - 2) (0 when L = 2)
rank                  1            index of r in ``ranks`` / (len(ranks) - 1) (0 for one rank)
val_loss              1            validation loss / initial validation loss, clipped to [0, 2]
round                 1            rounds done / max_rounds, clipped to [0, 1]
====================  ===========  ==================================================================

Action, ``action_mode="box"``: flat ``Box(-1, 1)``:

==================  ======  =====================================================================
block               size    decoding (documented projection onto the feasible set)
==================  ======  =====================================================================
assign_ms logits    M*K     owner of MS subchannel i = argmax_k; then every client without a
                            subchannel takes the one it prefers most among owners holding >= 2
assign_fs logits    N*K     same for the FS link
power_ms weights    M       w_i = (a_i + 1) / 2: share of its owner's budget (equal if all 0)
power_fs weights    N       same for the FS link
budget_ms           K       client budget P_k = p_max_k * max((a_k + 1) / 2, 1e-3)
budget_fs           K       same for the FS link
split               1       c = 1 + bin of (a + 1) / 2 into L - 1 bins
rank                1       r = ranks[bin of (a + 1) / 2 into len(ranks) bins]
==================  ======  =====================================================================

After decoding, powers on a link are scaled down uniformly if their sum exceeds p_th. Values
outside [-1, 1] are clipped; NaN/inf or a wrong shape raise :class:`InvalidActionError`.

``action_mode="multidiscrete"``: ``MultiDiscrete([K]*M + [K]*N + [P]*M + [P]*N + [L-1] + [R])``:
owners, power levels (level j -> p_max_k (j + 1) / P spread over the owner's subchannels as
weights), split index, rank index; same repair and total-power projection.
``action_mode="hybrid"``: ``MultiDiscrete([L-1, R])``: split and rank only; the environment's
allocator fills subchannels and power.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from gymnasium import spaces

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import InvalidActionError
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import ChannelState, Decision, Scenario

__all__ = ["GAIN_DB_RANGE", "MIN_BUDGET_FRACTION", "ObservationCodec", "ActionCodec", "repair_assignment",
           "project_total_power"]

GAIN_DB_RANGE = (-200.0, -40.0)
"""Channel gains (dB) mapped linearly onto [-1, 1] in the observation."""
MIN_BUDGET_FRACTION = 1e-3
"""Smallest share of p_max a client is given, so no rate is ever zero."""


def repair_assignment(owner: np.ndarray, preference: np.ndarray, num_clients: int) -> np.ndarray:
    """Give every client at least one subchannel.

    Args:
        owner: (S,) proposed owner per subchannel.
        preference: (S, K) score of giving subchannel i to client k (higher = preferred).
        num_clients: K (requires S >= K).

    Returns:
        (S,) owners where each client holds >= 1 subchannel; a client without one takes, among the
        subchannels whose owner holds >= 2, the one maximising its preference minus the owner's.
    """
    counts = np.bincount(owner, minlength=num_clients)
    if counts.min() > 0:
        return owner
    owner = owner.copy()
    for k in np.nonzero(counts == 0)[0]:
        donors = counts[owner] >= 2
        loss = preference[np.arange(owner.shape[0]), owner]
        score = np.where(donors, preference[:, k] - loss, -np.inf)
        i = int(np.argmax(score))
        counts[owner[i]] -= 1
        owner[i] = k
        counts[k] += 1
    return owner


def project_total_power(power_w: np.ndarray, total_w: float) -> np.ndarray:
    """Scale powers down uniformly when their sum exceeds ``total_w`` (W)."""
    s = float(power_w.sum())
    return power_w * (total_w / s) if s > total_w else power_w


def _spread_power(owner: np.ndarray, weights: np.ndarray, budget_w: np.ndarray, num_clients: int) -> np.ndarray:
    """p_i = budget_{owner} * w_i / sum of the owner's weights (an equal split when they are all zero)."""
    w = weights + 1e-12  # all-zero weights of a client become an exact equal split
    wsum = np.bincount(owner, weights=w, minlength=num_clients)
    return budget_w[owner] * (w / wsum[owner])


@dataclass(frozen=True)
class ObservationCodec:
    """Builds the observation space and encodes/decodes observations."""

    cfg: FedsLLMConfig
    shape: ModelShape

    @property
    def sizes(self) -> dict[str, int]:
        """Length of each observation block, in order."""
        w = self.cfg.wireless
        k = w.num_clients
        return {"gain_ms": k * w.num_subchannels_ms, "gain_fs": k * w.num_subchannels_fs, "load": k,
                "compute": k, "split": 1, "rank": 1, "val_loss": 1, "round": 1}

    def space(self) -> spaces.Box:
        """The flat float32 observation Box."""
        sz = self.sizes
        low = np.concatenate([np.full(sz["gain_ms"] + sz["gain_fs"], -1.0), np.zeros(sum(sz.values()) -
                                                                                sz["gain_ms"] - sz["gain_fs"])])
        high = np.ones_like(low)
        high[-2] = 2.0  # val_loss ratio
        return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

    def _peak_scale(self) -> float:
        c = self.cfg.compute
        return c.client_cpu_freq_range_hz[1] * max(c.client_flops_per_cycle_choices)

    def encode(self, channel: ChannelState, scenario: Scenario, split: int, rank: int, val_loss: float,
               initial_val_loss: float, rounds_done: int) -> np.ndarray:
        """Observation vector of the current state."""
        lo, hi = GAIN_DB_RANGE
        k = scenario.num_clients
        out = np.empty(self._size, dtype=np.float64)
        n_ms = channel.gain_ms.size
        n_g = n_ms + channel.gain_fs.size
        out[:n_ms] = channel.gain_ms.ravel()
        out[n_ms:n_g] = channel.gain_fs.ravel()
        g = out[:n_g]
        np.maximum(g, 1e-30, out=g)
        np.log10(g, out=g)
        g *= 20.0 / (hi - lo)  # 10 log10 -> dB, then onto [-1, 1]
        g -= 2.0 * lo / (hi - lo) + 1.0
        np.minimum(np.maximum(g, -1.0, out=g), 1.0, out=g)
        out[n_g:n_g + k] = channel.load / max(self.cfg.compute.load_max, 1e-9)
        out[n_g + k:n_g + 2 * k] = scenario.client_peak_flops / self._peak_scale()
        np.minimum(np.maximum(out[n_g:n_g + 2 * k], 0.0, out=out[n_g:n_g + 2 * k]), 1.0, out=out[n_g:n_g + 2 * k])
        n_layer, ranks = self.shape.n_layer, self.cfg.model.ranks
        out[-4] = (split - 1) / (n_layer - 2) if n_layer > 2 else 0.0
        out[-3] = ranks.index(rank) / (len(ranks) - 1) if len(ranks) > 1 else 0.0
        out[-2] = min(max(val_loss / max(initial_val_loss, 1e-9), 0.0), 2.0)
        out[-1] = min(rounds_done / self.cfg.training.max_rounds, 1.0)
        return out.astype(np.float32)

    @cached_property
    def _size(self) -> int:
        return sum(self.sizes.values())

    def decode_state(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Recover (gain_ms (K, M), gain_fs (K, N), load (K,), peak FLOP/s (K,)) from an observation.

        Exact up to float32 rounding unless a gain was clipped to the dB range.
        """
        w = self.cfg.wireless
        k, m, n = w.num_clients, w.num_subchannels_ms, w.num_subchannels_fs
        obs = np.asarray(obs, dtype=float)
        lo, hi = GAIN_DB_RANGE
        g_db = (obs[: k * (m + n)] + 1.0) / 2.0 * (hi - lo) + lo
        g = 10.0 ** (g_db / 10.0)
        off = k * (m + n)
        load = obs[off: off + k] * self.cfg.compute.load_max
        peak = obs[off + k: off + 2 * k] * self._peak_scale()
        return g[: k * m].reshape(k, m), g[k * m:].reshape(k, n), load, peak


@dataclass(frozen=True)
class ActionCodec:
    """Builds the action space of one ``action_mode`` and decodes actions into feasible decisions."""

    cfg: FedsLLMConfig
    shape: ModelShape

    @property
    def mode(self) -> str:
        """The action mode of the config."""
        return self.cfg.action_mode

    @cached_property
    def _space(self) -> spaces.Space:
        return self.space()

    def space(self) -> spaces.Space:
        """The action space (built once by the env)."""
        w, k = self.cfg.wireless, self.cfg.wireless.num_clients
        m, n = w.num_subchannels_ms, w.num_subchannels_fs
        n_split, n_rank = self.shape.n_layer - 1, len(self.cfg.model.ranks)
        if self.mode == "box":
            dim = m * k + n * k + m + n + 2 * k + 2
            return spaces.Box(-1.0, 1.0, shape=(dim,), dtype=np.float32)
        if self.mode == "multidiscrete":
            p = self.cfg.power_levels
            return spaces.MultiDiscrete([k] * m + [k] * n + [p] * m + [p] * n + [n_split, n_rank])
        return spaces.MultiDiscrete([n_split, n_rank])

    # ---- validation ----------------------------------------------------------------------------
    def _validate(self, action: np.ndarray) -> np.ndarray:
        expected = self._space.shape
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InvalidActionError(f"action must be numeric, got {type(action).__name__}") from e
        if a.shape != expected:
            if a.size == int(np.prod(expected)) and a.ndim == 2 and a.shape[0] == 1:
                a = a.reshape(expected)  # a batch of one, as SB3's predict returns for a single obs
            else:
                raise InvalidActionError(f"action has shape {a.shape}, expected {expected} "
                                         f"(action_mode={self.mode!r})")
        finite = np.isfinite(a)
        if not finite.all():
            bad = np.nonzero(~finite)[0][:10].tolist()
            raise InvalidActionError(f"action contains NaN/inf at indices {bad}")
        return a

    def _discrete_index(self, a: np.ndarray, nvec: np.ndarray) -> np.ndarray:
        if np.any(a != np.round(a)):
            raise InvalidActionError("MultiDiscrete action must hold integers")
        # documented projection of out-of-range entries: clip in float first, so huge values (1e20) map to
        # the largest choice instead of overflowing the int64 cast
        return np.clip(a, 0, nvec - 1).astype(np.int64)

    # ---- decoding ------------------------------------------------------------------------------
    def split_rank(self, split_idx: int, rank_idx: int) -> tuple[int, int]:
        """(c, r) from 0-based bin indices."""
        return int(split_idx) + 1, int(self.cfg.model.ranks[int(rank_idx)])

    @staticmethod
    def _bin(x: float, n: int) -> int:
        return min(int((x + 1.0) / 2.0 * n), n - 1)

    def decode(self, action: np.ndarray, scenario: Scenario) -> Decision | tuple[int, int]:
        """Decode an action into a feasible :class:`Decision` (hybrid mode: into ``(split, rank)``)."""
        a = self._validate(action)
        w, k = self.cfg.wireless, self.cfg.wireless.num_clients
        m, n = w.num_subchannels_ms, w.num_subchannels_fs
        n_split, n_rank = self.shape.n_layer - 1, len(self.cfg.model.ranks)
        pmax = scenario.client_max_power_w
        if self.mode == "hybrid":
            idx = self._discrete_index(a, np.array([n_split, n_rank]))
            return self.split_rank(idx[0], idx[1])
        if self.mode == "box":
            a = np.minimum(np.maximum(a, -1.0), 1.0)
            o = 0
            logit_ms = a[o: o + m * k].reshape(m, k); o += m * k
            logit_fs = a[o: o + n * k].reshape(n, k); o += n * k
            w_ms = (a[o: o + m] + 1.0) / 2.0; o += m
            w_fs = (a[o: o + n] + 1.0) / 2.0; o += n
            b_ms = np.maximum((a[o: o + k] + 1.0) / 2.0, MIN_BUDGET_FRACTION); o += k
            b_fs = np.maximum((a[o: o + k] + 1.0) / 2.0, MIN_BUDGET_FRACTION); o += k
            split, rank = self.split_rank(self._bin(a[o], n_split), self._bin(a[o + 1], n_rank))
            own_ms = repair_assignment(np.argmax(logit_ms, axis=1), logit_ms, k)
            own_fs = repair_assignment(np.argmax(logit_fs, axis=1), logit_fs, k)
            p_ms = _spread_power(own_ms, w_ms, pmax * b_ms, k)
            p_fs = _spread_power(own_fs, w_fs, pmax * b_fs, k)
        else:
            p = self.cfg.power_levels
            idx = self._discrete_index(a, self._space.nvec)  # type: ignore[union-attr]
            o = 0
            own_ms = idx[o: o + m]; o += m
            own_fs = idx[o: o + n]; o += n
            lv_ms = (idx[o: o + m] + 1.0) / p; o += m
            lv_fs = (idx[o: o + n] + 1.0) / p; o += n
            split, rank = self.split_rank(idx[o], idx[o + 1])
            own_ms = repair_assignment(own_ms, np.eye(k)[own_ms], k)
            own_fs = repair_assignment(own_fs, np.eye(k)[own_fs], k)
            # a client's budget is p_max times the mean level of its subchannels; levels weight the spread
            cnt_ms = np.bincount(own_ms, minlength=k)
            cnt_fs = np.bincount(own_fs, minlength=k)
            bud_ms = pmax * np.bincount(own_ms, weights=lv_ms, minlength=k) / cnt_ms
            bud_fs = pmax * np.bincount(own_fs, weights=lv_fs, minlength=k) / cnt_fs
            p_ms = _spread_power(own_ms, lv_ms, bud_ms, k)
            p_fs = _spread_power(own_fs, lv_fs, bud_fs, k)
        p_ms = project_total_power(p_ms, w.total_power_ms_w)
        p_fs = project_total_power(p_fs, w.total_power_fs_w)
        return Decision(own_ms, own_fs, p_ms, p_fs, split, rank)

    def encode(self, decision: Decision, scenario: Scenario) -> np.ndarray:
        """An action that decodes to ``decision`` (exactly for Box/hybrid; nearest levels for MultiDiscrete)."""
        w, k = self.cfg.wireless, self.cfg.wireless.num_clients
        ranks = self.cfg.model.ranks
        n_split, n_rank = self.shape.n_layer - 1, len(ranks)
        s_idx, r_idx = int(decision.split) - 1, ranks.index(int(decision.rank))
        if self.mode == "hybrid":
            return np.array([s_idx, r_idx], dtype=np.int64)
        pmax = scenario.client_max_power_w
        if self.mode == "box":
            parts = []
            for own, s in ((decision.assign_ms, w.num_subchannels_ms), (decision.assign_fs, w.num_subchannels_fs)):
                logits = -np.ones((s, k))
                logits[np.arange(s), own] = 1.0
                parts.append(logits.ravel())
            budgets = []
            for own, pw in ((decision.assign_ms, decision.power_ms_w), (decision.assign_fs, decision.power_fs_w)):
                per_client = np.bincount(own, weights=pw, minlength=k)
                peak = np.zeros(k)
                np.maximum.at(peak, own, pw)
                parts.append(np.where(peak[own] > 0, pw / np.where(peak[own] > 0, peak[own], 1.0), 1.0) * 2.0 - 1.0)
                budgets.append(np.clip(per_client / pmax, 0.0, 1.0) * 2.0 - 1.0)
            centre = lambda i, nb: (i + 0.5) / nb * 2.0 - 1.0  # noqa: E731 - middle of bin i
            action = np.concatenate(parts + budgets + [[centre(s_idx, n_split), centre(r_idx, n_rank)]])
            return action.astype(np.float32)
        p = self.cfg.power_levels
        levels = []
        for own, pw in ((decision.assign_ms, decision.power_ms_w), (decision.assign_fs, decision.power_fs_w)):
            cnt = np.bincount(own, minlength=k)
            frac = pw * cnt[own] / pmax[own]  # power relative to an equal split of p_max
            levels.append(np.clip(np.round(frac * p) - 1, 0, p - 1))
        return np.concatenate([decision.assign_ms, decision.assign_fs, levels[0], levels[1],
                               [s_idx, r_idx]]).astype(np.int64)

    def action_masks(self, scenario: Scenario) -> np.ndarray:
        """Flat boolean mask over every MultiDiscrete choice (sb3-contrib MaskablePPO convention).

        Only the split and rank choices are ever masked: those whose client memory
        (:meth:`ModelShape.client_memory_bytes`) exceeds ``compute.client_memory_bytes`` even with
        the smallest rank (for splits) or the first split (for ranks). At least one choice stays valid.
        """
        space = self.space()
        nvec = space.nvec  # type: ignore[union-attr]
        mask = np.ones(int(nvec.sum()), dtype=bool)
        split_ok, rank_ok = self.split_rank_feasibility()
        mask[-(len(split_ok) + len(rank_ok)):] = np.concatenate([split_ok, rank_ok])
        return mask

    def client_memory_bytes(self, split: int, rank: int) -> float:
        """Client memory of (split, rank), bytes (see :meth:`ModelShape.client_memory_bytes`)."""
        t, m = self.cfg.training, self.cfg.model
        return self.shape.client_memory_bytes(split, rank, m.lora_target_modules, t.batch_size, t.seq_len,
                                              m.activation_bits)

    def split_rank_feasibility(self) -> tuple[np.ndarray, np.ndarray]:
        """(splits (L-1,), ranks (R,)) boolean feasibility under the client memory limit."""
        limit = self.cfg.compute.client_memory_bytes
        ranks = self.cfg.model.ranks
        splits = range(1, self.shape.n_layer)
        if limit <= 0:
            return np.ones(len(splits), bool), np.ones(len(ranks), bool)
        split_ok = np.array([self.client_memory_bytes(c, ranks[0]) <= limit for c in splits])
        rank_ok = np.array([self.client_memory_bytes(1, r) <= limit for r in ranks])
        if not split_ok.any():
            split_ok[0] = True
        if not rank_ok.any():
            rank_ok[0] = True
        return split_ok, rank_ok

    def project_split_rank(self, split: int, rank: int) -> tuple[int, int]:
        """Largest split, then largest rank, not above the request that fits the memory limit."""
        if self.cfg.compute.client_memory_bytes <= 0:
            return split, rank
        for c in range(split, 0, -1):
            for r in [x for x in self.cfg.model.ranks if x <= rank][::-1]:
                if self.client_memory_bytes(c, r) <= self.cfg.compute.client_memory_bytes:
                    return c, r
        return 1, self.cfg.model.ranks[0]

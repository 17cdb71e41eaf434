"""``action_mode="multidiscrete"``: owners, power levels, split and rank, with masks for MaskablePPO."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from fedsllm_env.codecs.base import (
    SplitRankCodec,
    discrete_index,
    project_total_power,
    repair_assignment,
    spread_power,
    validate_action,
)
from fedsllm_env.types import ChannelState, Decision, Scenario

__all__ = ["MultiDiscreteCodec"]


@dataclass(frozen=True)
class MultiDiscreteCodec(SplitRankCodec):
    """``MultiDiscrete([K]*M + [K]*N + [P]*M + [P]*N + [L-1] + [R])`` (layout in :mod:`fedsllm_env.codecs`)."""

    def _build_space(self) -> spaces.MultiDiscrete:
        w, k, p = self.cfg.wireless, self.cfg.wireless.num_clients, self.cfg.power_levels
        m, n = w.num_subchannels_ms, w.num_subchannels_fs
        d = self.num_decisions
        return spaces.MultiDiscrete([k] * m + [k] * n + [p] * m + [p] * n + [self.num_splits] * d +
                                    [self.num_ranks] * d)

    def decode(self, action: np.ndarray, scenario: Scenario, channel: ChannelState | None = None) -> Decision:
        """Feasible decision of a MultiDiscrete action (out-of-range entries clipped; ``channel`` unused)."""
        a = validate_action(action, self.space.shape, self.mode)
        w, k, p = self.cfg.wireless, self.cfg.wireless.num_clients, self.cfg.power_levels
        m, n = w.num_subchannels_ms, w.num_subchannels_fs
        pmax = scenario.client_max_power_w
        idx = discrete_index(a, self.space.nvec)  # type: ignore[attr-defined]
        o = 0
        own_ms = idx[o: o + m]; o += m
        own_fs = idx[o: o + n]; o += n
        lv_ms = (idx[o: o + m] + 1.0) / p; o += m
        lv_fs = (idx[o: o + n] + 1.0) / p; o += n
        d = self.num_decisions
        split, rank = self.decisions_of(idx[o: o + d], idx[o + d: o + 2 * d])
        own_ms = repair_assignment(own_ms, np.eye(k)[own_ms], k)
        own_fs = repair_assignment(own_fs, np.eye(k)[own_fs], k)
        # a client's budget is p_max times the mean level of its subchannels; levels weight the spread
        bud_ms = pmax * np.bincount(own_ms, weights=lv_ms, minlength=k) / np.bincount(own_ms, minlength=k)
        bud_fs = pmax * np.bincount(own_fs, weights=lv_fs, minlength=k) / np.bincount(own_fs, minlength=k)
        p_ms = project_total_power(spread_power(own_ms, lv_ms, bud_ms, k), w.total_power_ms_w)
        p_fs = project_total_power(spread_power(own_fs, lv_fs, bud_fs, k), w.total_power_fs_w)
        return Decision(own_ms, own_fs, p_ms, p_fs, split, rank)

    def encode(self, decision: Decision, scenario: Scenario) -> np.ndarray:
        """The nearest MultiDiscrete action: owners exact, power levels rounded."""
        k, p = self.cfg.wireless.num_clients, self.cfg.power_levels
        s_idx, r_idx = self.decision_indices(decision)
        pmax = scenario.client_max_power_w
        levels = []
        for own, pw in ((decision.assign_ms, decision.power_ms_w), (decision.assign_fs, decision.power_fs_w)):
            cnt = np.bincount(own, minlength=k)
            frac = pw * cnt[own] / pmax[own]  # power relative to an equal split of p_max
            levels.append(np.clip(np.round(frac * p) - 1, 0, p - 1))
        return np.concatenate([decision.assign_ms, decision.assign_fs, levels[0], levels[1],
                               s_idx, r_idx]).astype(np.int64)

    def action_masks(self) -> np.ndarray:
        """Flat boolean mask over every choice (sb3-contrib MaskablePPO convention).

        Only split and rank choices are ever masked: those whose client memory exceeds the cap (a shared
        decision: the smallest client cap; per client: the client's own) even with the smallest rank (splits) or
        at split 1 (ranks).
        """
        mask = np.ones(int(self.space.nvec.sum()), dtype=bool)  # type: ignore[attr-defined]
        split_rank = self.split_rank_masks()
        mask[-split_rank.size:] = split_rank
        return mask

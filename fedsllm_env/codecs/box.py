"""``action_mode="box"``: one flat ``Box(-1, 1)`` for PPO / SAC / TD3 (layout in :mod:`fedsllm_env.codecs`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from fedsllm_env.codecs.base import (
    MIN_BUDGET_FRACTION,
    SplitRankCodec,
    project_total_power,
    repair_assignment,
    spread_power,
    validate_action,
)
from fedsllm_env.errors import InvalidActionError
from fedsllm_env.types import ChannelState, Decision, Scenario

__all__ = ["BoxCodec"]


def _bin(x: float, n: int) -> int:
    """Index of ``x`` in [-1, 1] cut into ``n`` equal bins."""
    return min(int((x + 1.0) / 2.0 * n), n - 1)


@dataclass(frozen=True)
class BoxCodec(SplitRankCodec):
    """Logits for subchannel owners, power weights and budgets, split and rank in one ``Box(-1, 1)``."""

    def _build_space(self) -> spaces.Box:
        w, k = self.cfg.wireless, self.cfg.wireless.num_clients
        m, n = w.num_subchannels_ms, w.num_subchannels_fs
        return spaces.Box(-1.0, 1.0, shape=(m * k + n * k + m + n + 2 * k + 2 * self.num_decisions,),
                          dtype=np.float32)

    def decode(self, action: np.ndarray, scenario: Scenario, channel: ChannelState | None = None) -> Decision:
        """Feasible decision of a Box action (values outside [-1, 1] are clipped; ``channel`` unused)."""
        a = validate_action(action, self.space.shape, self.mode)
        w, k = self.cfg.wireless, self.cfg.wireless.num_clients
        m, n = w.num_subchannels_ms, w.num_subchannels_fs
        pmax = scenario.client_max_power_w
        a = np.minimum(np.maximum(a, -1.0), 1.0)
        o = 0
        logit_ms = a[o: o + m * k].reshape(m, k); o += m * k
        logit_fs = a[o: o + n * k].reshape(n, k); o += n * k
        w_ms = (a[o: o + m] + 1.0) / 2.0; o += m
        w_fs = (a[o: o + n] + 1.0) / 2.0; o += n
        b_ms = np.maximum((a[o: o + k] + 1.0) / 2.0, MIN_BUDGET_FRACTION); o += k
        b_fs = np.maximum((a[o: o + k] + 1.0) / 2.0, MIN_BUDGET_FRACTION); o += k
        d = self.num_decisions
        split, rank = self.decisions_of(np.array([_bin(x, self.num_splits) for x in a[o: o + d]]),
                                        np.array([_bin(x, self.num_ranks) for x in a[o + d: o + 2 * d]]))
        own_ms = repair_assignment(np.argmax(logit_ms, axis=1), logit_ms, k)
        own_fs = repair_assignment(np.argmax(logit_fs, axis=1), logit_fs, k)
        p_ms = project_total_power(spread_power(own_ms, w_ms, pmax * b_ms, k), w.total_power_ms_w)
        p_fs = project_total_power(spread_power(own_fs, w_fs, pmax * b_fs, k), w.total_power_fs_w)
        return Decision(own_ms, own_fs, p_ms, p_fs, split, rank)

    def encode(self, decision: Decision, scenario: Scenario) -> np.ndarray:
        """A Box action that decodes exactly to ``decision`` (bin centres for split and rank)."""
        w, k = self.cfg.wireless, self.cfg.wireless.num_clients
        s_idx, r_idx = self.decision_indices(decision)
        pmax = scenario.client_max_power_w
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
        action = np.concatenate(parts + budgets + [centre(s_idx, self.num_splits), centre(r_idx, self.num_ranks)])
        return action.astype(np.float32)

    def action_masks(self) -> np.ndarray:
        """Box actions have no masks: InvalidActionError."""
        raise InvalidActionError("action masks exist only for action_mode 'multidiscrete' or 'hybrid'")

"""Reward terms (HighwayEnv style): each term is reported in ``info["reward_terms"]``, the reward is their sum."""

from __future__ import annotations

import math

from fedsllm_env.config import RewardConfig
from fedsllm_env.errors import NonFiniteError

__all__ = ["reward_terms", "total_reward"]


def reward_terms(round_s: float, prev_val_loss: float, val_loss: float, initial_val_loss: float,
                 cfg: RewardConfig) -> dict[str, float]:
    """Weighted terms: ``delay`` = -w_d T_round / scale (so the return is -total delay / scale) and
    ``progress`` = w_p (previous - current validation loss) / initial loss.

    Raises:
        NonFiniteError: if the round delay or a loss is NaN/inf (a reward is never non-finite).
    """
    inputs = {"round delay (s)": round_s, "previous validation loss": prev_val_loss,
              "validation loss": val_loss, "initial validation loss": initial_val_loss}
    bad = {name: value for name, value in inputs.items() if not math.isfinite(float(value))}
    if bad:
        raise NonFiniteError(f"cannot compute a finite reward: {bad} (a delay is infinite when a client's rate is "
                             "0 bit/s; a loss is NaN/inf when training diverged)")
    terms = {
        "delay": -cfg.delay_weight * float(round_s) / cfg.delay_scale_s,
        "progress": cfg.progress_weight * (float(prev_val_loss) - float(val_loss)) / max(initial_val_loss, 1e-9),
    }
    if not all(math.isfinite(v) for v in terms.values()):
        raise NonFiniteError(f"reward terms overflow: {terms} (round delay {round_s} s, reward config {cfg})")
    return terms


def total_reward(terms: dict[str, float]) -> float:
    """Sum of the (already weighted) terms."""
    return float(sum(terms.values()))

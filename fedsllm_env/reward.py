"""Reward terms (HighwayEnv style): each term is reported in ``info["reward_terms"]``, the reward is their sum."""

from __future__ import annotations

from fedsllm_env.config import RewardConfig

__all__ = ["reward_terms", "total_reward"]


def reward_terms(round_s: float, prev_val_loss: float, val_loss: float, initial_val_loss: float,
                 cfg: RewardConfig) -> dict[str, float]:
    """Weighted terms: ``delay`` = -w_d T_round / scale (so the return is -total delay / scale) and
    ``progress`` = w_p (previous - current validation loss) / initial loss."""
    return {
        "delay": -cfg.delay_weight * float(round_s) / cfg.delay_scale_s,
        "progress": cfg.progress_weight * (float(prev_val_loss) - float(val_loss)) / max(initial_val_loss, 1e-9),
    }


def total_reward(terms: dict[str, float]) -> float:
    """Sum of the (already weighted) terms."""
    return float(sum(terms.values()))

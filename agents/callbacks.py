"""SB3 callback that logs the env's info (delay breakdown, reward terms, losses) to the SB3 logger."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["FedsLLMInfoCallback"]

_SCALARS = ("val_loss", "train_loss", "round_delay_s", "expected_total_delay_s", "expected_rounds", "split", "rank")


class FedsLLMInfoCallback(BaseCallback):
    """Average the per-step ``info`` of the FedsLLM env and record it with the SB3 logger.

    Per step (means over the steps between two logger dumps, via ``logger.record_mean``):
    ``fedsllm/delay/<term>`` for every entry of ``info["delay_breakdown"]`` (seconds, or bits for the
    ``*_bits`` payload sizes), ``fedsllm/reward/<term>`` for ``info["reward_terms"]``, and
    ``fedsllm/<key>`` for val_loss, train_loss, round_delay_s, expected_total_delay_s (E(r) * T_round, s),
    expected_rounds, split and rank. Per finished episode: ``fedsllm/episode/total_delay_s`` (the sum
    of round delays, s), ``fedsllm/episode/rounds`` and ``fedsllm/episode/reached_target``.

    The finished episodes are also kept in :attr:`episodes` (dicts with ``total_delay_s``, ``rounds``,
    ``terminated``, ``final_val_loss``, ``timestep``) for scripts and tests.

    Args:
        prefix: logger key prefix.
        verbose: SB3 verbosity.
    """

    def __init__(self, prefix: str = "fedsllm", verbose: int = 0):
        super().__init__(verbose)
        self.prefix = prefix
        self.episodes: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        infos = self.locals.get("infos", ())
        dones = self.locals.get("dones", np.zeros(len(infos), dtype=bool))
        record = self.logger.record_mean
        p = self.prefix
        for info, done in zip(infos, dones):
            if "round_delay_s" not in info:  # not a FedsLLM step info
                continue
            for key, value in info.get("delay_breakdown", {}).items():
                record(f"{p}/delay/{key}", float(value))
            for key, value in info.get("reward_terms", {}).items():
                record(f"{p}/reward/{key}", float(value))
            for key in _SCALARS:
                if key in info:
                    record(f"{p}/{key}", float(info[key]))
            if done:
                terminated = not info.get("TimeLimit.truncated", False) and float(info["val_loss"]) <= float(
                    info.get("target_val_loss", -np.inf))
                episode = {
                    "total_delay_s": float(info["cumulative_delay_s"]),
                    "rounds": int(info["round"]),
                    "terminated": bool(terminated),
                    "final_val_loss": float(info["val_loss"]),
                    "timestep": int(self.num_timesteps),
                }
                self.episodes.append(episode)
                record(f"{p}/episode/total_delay_s", episode["total_delay_s"])
                record(f"{p}/episode/rounds", float(episode["rounds"]))
                record(f"{p}/episode/reached_target", float(terminated))
        return True

"""The observation space, built once from the config, with pure encode/decode functions.

Observation (flat float32 Box, finite bounds), index blocks in order:

====================  ===========  ==================================================================
block                 size         value
====================  ===========  ==================================================================
gain_ms               K*M          channel gain in dB mapped from [-200, -40] dB to [-1, 1] (clipped)
gain_fs               K*N          same for the FS link
load                  K            device load / load_max, in [0, 1]
compute               K            f_k kappa_k / (max f * max kappa), in (0, 1]
split                 1 (K)        (c - 1) / (L - 2) (0 when L = 2); per client (``heterogeneous``): K entries
rank                  1 (K)        index of r in ``ranks`` / (len(ranks) - 1) (0 for one rank); per client: K
val_loss              1            validation loss / initial validation loss, clipped to [0, 2]
round                 1            rounds done / max_rounds, clipped to [0, 1]
====================  ===========  ==================================================================

Actions are decoded by the codecs of :mod:`fedsllm_env.codecs` (one per ``action_mode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from gymnasium import spaces

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import ChannelState, Scenario

__all__ = ["GAIN_DB_RANGE", "ObservationCodec"]

GAIN_DB_RANGE = (-200.0, -40.0)
"""Channel gains (dB) mapped linearly onto [-1, 1] in the observation."""


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
        d = k if self.cfg.heterogeneous else 1
        return {"gain_ms": k * w.num_subchannels_ms, "gain_fs": k * w.num_subchannels_fs, "load": k,
                "compute": k, "split": d, "rank": d, "val_loss": 1, "round": 1}

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

    def encode(self, channel: ChannelState, scenario: Scenario, split: int | np.ndarray, rank: int | np.ndarray,
               val_loss: float, initial_val_loss: float, rounds_done: int) -> np.ndarray:
        """Observation vector of the current state (``split``/``rank``: ints, or (K,) arrays per client)."""
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
        d = self.sizes["split"]
        if d == 1:
            out[-4] = (split - 1) / (n_layer - 2) if n_layer > 2 else 0.0
            out[-3] = ranks.index(rank) / (len(ranks) - 1) if len(ranks) > 1 else 0.0
        else:
            cuts = np.broadcast_to(np.asarray(split, dtype=float), (d,))
            idx = np.array([ranks.index(int(r)) for r in np.broadcast_to(np.asarray(rank), (d,))], dtype=float)
            out[-2 - 2 * d: -2 - d] = (cuts - 1) / (n_layer - 2) if n_layer > 2 else 0.0
            out[-2 - d: -2] = idx / (len(ranks) - 1) if len(ranks) > 1 else 0.0
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

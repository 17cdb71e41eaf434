"""The calibrated surrogate loss model for B envs: a batched mirror of :class:`~fedsllm_env.backends.SurrogateBackend`.

Built from a ``SurrogateBackend`` (its replayed curve of every (rank, cut), noise level and initial loss),
so a change of the single backend's calibration handling reaches the batch; ``tests/test_vector_env.py``
compares the two round by round. The observation noise of env i comes from ``default_rng(seed_i)``
exactly as the single backend's, drawn for the whole episode at reset (one draw of ``max_rounds``
normals gives the same numbers as ``max_rounds`` scalar draws).
"""

from __future__ import annotations

import numpy as np

from fedsllm_env.backends import SurrogateBackend

__all__ = ["BatchedSurrogate"]


class BatchedSurrogate:
    """Equivalent-progress loss model of ``num_envs`` envs.

    Args:
        backend: the single-env surrogate whose curves and noise level are replayed.
        ranks: candidate ranks of the config (rank index j means ``ranks[j]``).
        num_splits: cuts 1..num_splits (split index i means cut i + 1).
        num_envs: B.
        max_rounds: longest episode (rounds of noise drawn per reset).
    """

    def __init__(self, backend: SurrogateBackend, ranks: tuple[int, ...], num_splits: int, num_envs: int,
                 max_rounds: int):
        self.initial_val_loss = float(backend.initial_val_loss)
        self.noise_std = float(backend.noise_std)
        self.num_ranks = len(ranks)
        # cell = split index * R + rank index
        self.curves = [np.asarray(backend.curve(r, c + 1), dtype=float) for c in range(num_splits) for r in ranks]
        self._steps = [np.arange(len(c)) for c in self.curves]
        self.clean_loss = np.full(num_envs, self.initial_val_loss)
        self.rounds = np.zeros(num_envs, dtype=np.int64)
        self._env_index = np.arange(num_envs)
        self._noise = np.zeros((num_envs, max_rounds))

    def reset(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        """Restart envs ``idx`` from the initial loss; env ``idx[j]``'s noise comes from ``default_rng(seeds[j])``."""
        for i, s in zip(idx, seeds):
            self._noise[i] = np.random.default_rng(int(s)).standard_normal(self._noise.shape[1])
        self.clean_loss[idx] = self.initial_val_loss
        self.rounds[idx] = 0

    def run_round(self, split_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        """Advance every env one round at cut ``split_idx + 1`` and rank ``ranks[rank_idx]``; returns the (B,)
        noisy validation losses."""
        clean = self.clean_loss
        cell = split_idx * self.num_ranks + rank_idx
        for j in np.flatnonzero(np.bincount(cell, minlength=len(self.curves))):
            sel = np.flatnonzero(cell == j)
            curve = self.curves[j]
            t = self._equivalent_round(curve, clean[sel]) + 1.0
            clean[sel] = np.interp(t, self._steps[j], curve)
        noise = self._noise[self._env_index, self.rounds]
        self.rounds += 1
        return clean + self.noise_std * noise

    @staticmethod
    def _equivalent_round(curve: np.ndarray, loss: np.ndarray) -> np.ndarray:
        """Batched ``SurrogateBackend._equivalent_round``: fractional index where the curve first reaches ``loss``."""
        n = len(curve)
        j = np.argmax(curve[None, :] <= loss[:, None], axis=1)  # first index at or below
        lo, hi = curve[np.maximum(j - 1, 0)], curve[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(lo > hi, (lo - loss) / (lo - hi), 1.0)
        out = (j - 1) + frac
        out = np.where(loss <= curve[-1], float(n - 1), out)
        return np.where(loss >= curve[0], 0.0, out)

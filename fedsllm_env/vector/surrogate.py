"""The calibrated surrogate loss model for B envs: a batched mirror of :class:`~fedsllm_env.backends.SurrogateBackend`.

Built from a ``SurrogateBackend`` (its replayed curve of every (rank, cut), noise level and initial loss),
so a change of the single backend's calibration handling reaches the batch; ``tests/test_vector_env.py``
compares the two round by round. The observation noise of env i comes from ``default_rng(seed_i)``
exactly as the single backend's, drawn for the whole episode at reset (one draw of ``max_rounds``
normals gives the same numbers as ``max_rounds`` scalar draws).

The curves sit in one padded (cells, L) table, so a round is a few whole-batch array operations: the
equivalent round of every env (``SurrogateBackend._equivalent_round``) and ``np.interp`` along its curve are
written out with the single backend's arithmetic (see :meth:`BatchedSurrogate.run_round`).
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
        for curve in self.curves:
            if not (np.diff(curve) <= 0).all():
                raise ValueError("the surrogate's curves must be non-increasing (SurrogateBackend.curve)")
        self._lengths = np.array([len(c) for c in self.curves], dtype=np.int64)
        width = max(2, int(self._lengths.max()))
        # each row padded with its last value: a padded entry is never above a loss the curve has not reached
        self._table = np.stack([np.concatenate([c, np.full(width - len(c), c[-1])]) for c in self.curves])
        self._first = self._table[:, 0].copy()
        self._last = self._table[np.arange(len(self.curves)), self._lengths - 1]
        self.clean_loss = np.full(num_envs, self.initial_val_loss)
        self.rounds = np.zeros(num_envs, dtype=np.int64)
        self._noise = np.zeros((num_envs, max_rounds))
        self._noise_row_start = np.arange(num_envs) * max_rounds  # flat index of each env's round 0

    def reset(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        """Restart envs ``idx`` from the initial loss; env ``idx[j]``'s noise comes from ``default_rng(seeds[j])``."""
        for i, s in zip(idx, seeds):
            np.random.default_rng(int(s)).standard_normal(out=self._noise[i])
        self.clean_loss[idx] = self.initial_val_loss
        self.rounds[idx] = 0

    def run_round(self, split_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        """Advance every env one round at cut ``split_idx + 1`` and rank ``ranks[rank_idx]``; returns the (B,)
        noisy validation losses."""
        cell = split_idx * self.num_ranks + rank_idx
        rows = self._table[cell]  # (B, L) each env's curve
        t = self._equivalent_round(rows, cell, self.clean_loss)
        t += 1.0
        self.clean_loss = self._interp(rows, cell, t)
        noise = self._noise.ravel()[self._noise_row_start + self.rounds]
        self.rounds += 1
        noise *= self.noise_std
        noise += self.clean_loss
        return noise

    def _equivalent_round(self, rows: np.ndarray, cell: np.ndarray, loss: np.ndarray) -> np.ndarray:
        """``SurrogateBackend._equivalent_round`` of every env: fractional index where its curve ``rows[b]`` (of
        table cell ``cell[b]``) leaves ``loss[b]`` for good (the end of a flat stretch at exactly that loss).

        The curves are non-increasing, so the first index strictly below the loss is the number of entries at or
        above it.
        """
        width = rows.shape[1]
        j = np.count_nonzero(rows >= loss[:, None], axis=1)
        np.minimum(j, width - 1, out=j)  # where the loss is below the whole curve (overwritten below)
        j_lo = np.maximum(j - 1, 0)
        b = np.arange(rows.shape[0])
        lo, hi = rows[b, j_lo], rows[b, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(lo > hi, (lo - loss) / (lo - hi), 1.0)
        out = (j - 1) + frac
        np.copyto(out, (self._lengths[cell] - 1).astype(float), where=loss <= self._last[cell])
        np.copyto(out, 0.0, where=loss > self._first[cell])
        return out

    def _interp(self, rows: np.ndarray, cell: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``np.interp(t[b], arange(n_b), curve_b)`` of every env, with numpy's arithmetic: at t in [i, i + 1),
        i < n - 1, ``(fp[i + 1] - fp[i]) * (t - i) + fp[i]`` (``t - i`` is exact); at t >= n - 1 the last value."""
        last = self._lengths[cell] - 1
        i = np.minimum(t.astype(np.int64), last - 1)  # t >= 1 > 0: astype floors
        np.maximum(i, 0, out=i)
        b = np.arange(rows.shape[0])
        fp_i = rows[b, i]
        out = (rows[b, i + 1] - fp_i) * (t - i) + fp_i
        np.copyto(out, self._last[cell], where=t >= last)
        return out

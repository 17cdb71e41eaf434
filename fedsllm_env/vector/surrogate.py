"""The calibrated surrogate loss model for B envs: a batched mirror of :class:`~fedsllm_env.backends.SurrogateBackend`.

Built from a ``SurrogateBackend`` (its progress tables, switch model, noise model and initial loss), so a change
of the single backend's calibration handling reaches the batch. Both call
:func:`fedsllm_env.convergence.advance`, the single backend on arrays of one env, this class on the whole batch,
so env i here and a single env of the same seed give the same numbers bit for bit (``tests/test_vector_env.py``
compares them round by round). The observation noise of env i comes from ``default_rng(seed_i)`` exactly as the
single backend's: ``max_rounds`` normals drawn at reset and turned into AR(1) noise.
"""

from __future__ import annotations

import numpy as np

from fedsllm_env.backends import SurrogateBackend
from fedsllm_env.convergence import PROFILE_FORM, ProgressState, advance, advance_effective, ar1_noise, \
    effective_profile, profile_pace

__all__ = ["BatchedSurrogate"]


class BatchedSurrogate:
    """Switch-aware progress model of ``num_envs`` envs (state: :class:`~fedsllm_env.convergence.ProgressState`).

    Args:
        backend: the single-env surrogate whose tables, switch and noise models are used.
        ranks: candidate ranks of the config (rank index j means ``ranks[j]``).
        num_splits: cuts 1..num_splits (split index i means cut i + 1).
        num_envs: B.
        max_rounds: longest episode (rounds of noise drawn per reset).
    """

    def __init__(self, backend: SurrogateBackend, ranks: tuple[int, ...], num_splits: int, num_envs: int,
                 max_rounds: int):
        self.initial_val_loss = float(backend.initial_val_loss)
        self.tables = backend.tables
        self.switch = backend.switch
        self.noise = backend.noise
        if num_splits != self.tables.num_splits:
            raise ValueError(f"num_splits={num_splits} but the surrogate's tables hold {self.tables.num_splits} cuts")
        self._to_table = np.array([self.tables.ranks.index(int(r)) for r in ranks], dtype=np.int64)
        self.state = ProgressState.start(self.initial_val_loss, num_envs)
        self.prev_split = np.full(num_envs, -1, dtype=np.int64)
        self.prev_rank = np.full(num_envs, -1, dtype=np.int64)
        self.ranks = np.asarray(ranks, dtype=float)
        self.n_layer = num_splits + 1
        # the heterogeneous path's settings (a bare stand-in backend without them prices shared decisions only)
        self.profile_form = getattr(backend, "profile_form", PROFILE_FORM)
        self.profile_slowdown = float(getattr(backend, "profile_slowdown", 0.0))
        self.num_clients = int(getattr(backend, "num_clients", 1))
        self.prev_cuts = np.full((num_envs, self.num_clients), np.nan)  # per-client path (heterogeneous)
        self.prev_log2 = np.full(num_envs, np.nan)
        self.rounds = np.zeros(num_envs, dtype=np.int64)
        self._noise = np.zeros((num_envs, max_rounds))
        self._noise_row_start = np.arange(num_envs) * max_rounds  # flat index of each env's round 0

    @property
    def noise_std(self) -> float:
        """Level of the observation noise."""
        return self.noise.std

    def reset(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        """Restart envs ``idx`` from the initial loss; env ``idx[j]``'s noise comes from ``default_rng(seeds[j])``."""
        normals = np.empty((len(idx), self._noise.shape[1]))
        for j, s in enumerate(seeds):
            np.random.default_rng(int(s)).standard_normal(out=normals[j])
        self._noise[idx] = ar1_noise(normals, self.noise)
        fresh = ProgressState.start(self.initial_val_loss, len(idx))
        self.state = ProgressState(*(np.array(field, dtype=float) for field in self.state))
        for field, start in zip(self.state, fresh):
            field[idx] = start
        self.prev_split[idx] = -1
        self.prev_rank[idx] = -1
        self.prev_cuts[idx] = np.nan
        self.prev_log2[idx] = np.nan
        self.rounds[idx] = 0

    def run_round(self, split_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        """Advance every env one round at cut ``split_idx + 1`` and rank ``ranks[rank_idx]``; returns the (B,)
        noisy validation losses."""
        if np.ndim(split_idx) == 2:  # (B, K): a cut and a rank per client, as SurrogateBackend prices a profile
            return self._run_profiles(split_idx + 1.0, self.ranks[rank_idx])
        split = split_idx + 1
        k = self._to_table[rank_idx]
        self.state = advance(self.tables, self.switch, self.state, self.initial_val_loss, self.prev_split,
                             self.prev_rank, split, k)
        self.prev_split, self.prev_rank = split, k
        noise = self._noise.ravel()[self._noise_row_start + self.rounds]
        self.rounds += 1
        return self.state.clean_loss + noise

    def _run_profiles(self, cuts: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """One round of (B, K) per-client profiles: each env at its profile's effective (cut, log2-rank)."""
        c_eff, rho = effective_profile(cuts, ranks, self.n_layer, self.profile_form)
        moved = np.where(np.isnan(self.prev_log2), 0.0, np.mean(np.abs(cuts - self.prev_cuts), axis=1))
        self.state = advance_effective(self.tables, self.switch, self.state, self.initial_val_loss, self.prev_log2,
                                       c_eff, rho, moved,
                                       profile_pace(cuts, ranks, self.n_layer, self.profile_slowdown))
        self.prev_cuts, self.prev_log2 = cuts, rho
        noise = self._noise.ravel()[self._noise_row_start + self.rounds]
        self.rounds += 1
        return self.state.clean_loss + noise

    @property
    def clean_loss(self) -> np.ndarray:
        """(B,) loss without observation noise."""
        return self.state.clean_loss

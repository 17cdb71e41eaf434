"""Training backends behind one small protocol: real split-fed training (torch) or the calibrated surrogate.

The env only talks to :class:`TrainingBackend`; ``make_backend`` picks one from ``cfg.mode`` and imports
the torch engine lazily, so ``mode="surrogate"`` never imports torch.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from fedsllm_env.calibration import Calibration
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.convergence import PROFILE_FORM, NoiseModel, ProgressState, advance_effective, ar1_noise, \
    effective_profile, profile_pace
from fedsllm_env.errors import CalibrationError
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import RoundOutcome

__all__ = ["TrainingBackend", "SurrogateBackend", "make_backend"]


@runtime_checkable
class TrainingBackend(Protocol):
    """What the env needs from a training implementation."""

    @property
    def shape(self) -> ModelShape:
        """Dimensions of the model being trained (feeds the delay model)."""
        ...

    def reset(self, seed: int) -> float:
        """Start a fresh fine-tuning run (new adapters, data order from ``seed``); return the initial val loss."""
        ...

    def run_round(self, split: int, rank: int) -> RoundOutcome:
        """Run one split-federated round with cut ``split`` and LoRA rank ``rank``."""
        ...


class SurrogateBackend:
    """Numpy-only loss model of real split-federated training, built from a calibration.

    Each round advances the clean validation loss with the switch-aware progress model of
    :mod:`fedsllm_env.convergence` (smooth monotone fits of the measured fixed-decision curves of
    ``cfg.training.partition``, an effective rank that keeps part of what the adapters learned at a higher rank,
    setbacks and transient shocks when the rank changes or blocks cross the cut, all fitted to measured real
    runs). A configuration whose
    curve never reaches the target (censored in the calibration) never terminates an episode: it is truncated at
    ``training.max_rounds``. The reported loss adds AR(1) noise with the measured seed-to-seed level and
    correlation, drawn from ``default_rng(seed)`` at ``reset`` (``max_rounds`` normals at a time).

    The arithmetic is :func:`fedsllm_env.convergence.advance_effective` on arrays of one env; the batched
    surrogate (:class:`fedsllm_env.vector.surrogate.BatchedSurrogate`) calls it (or :func:`~fedsllm_env.convergence.
    advance`, its wrapper for shared decisions, the same numbers) for many, so the two agree bit for bit.

    A heterogeneous profile (a (K,) cut and rank per client) is priced at its effective (cut, log2-rank)
    (:func:`fedsllm_env.convergence.effective_profile`, form :data:`fedsllm_env.convergence.PROFILE_FORM`), slowed
    by the spread of its ranks (:func:`fedsllm_env.convergence.profile_pace` with the calibration's
    ``profile_slowdown`` of ``model.aggregation``); the blocks that change sides between rounds are the clients'
    mean |c_k - c_k'|. A homogeneous profile gives the shared decision's numbers exactly.
    """

    def __init__(self, calibration: Calibration, cfg: FedsLLMConfig):
        missing = [r for r in cfg.model.ranks if r not in calibration.ranks]
        if missing:
            raise CalibrationError(f"ranks {missing} of the config are not in calibration {calibration.path} "
                                   f"(calibrated: {calibration.ranks}); recalibrate or change model.ranks")
        partition = cfg.training.partition
        if partition not in calibration.partitions:
            raise CalibrationError(f"training.partition={partition!r} is not calibrated in {calibration.path} "
                                   f"(calibrated: {calibration.partitions}); recalibrate with --partitions "
                                   f"{partition} or change training.partition")
        self._shape = calibration.shape
        self.partition = partition
        self.initial_val_loss = calibration.initial_val_loss
        self.tables = calibration.progress_tables(cfg.model.ranks, partition)
        self.switch = calibration.switch_model
        self.noise = calibration.noise_model(partition)
        self.noise_block = max(1, int(cfg.training.max_rounds))
        self._rank_index = {r: i for i, r in enumerate(self.tables.ranks)}
        self.num_clients = int(cfg.wireless.num_clients)
        self.profile_form = PROFILE_FORM
        self.profile_slowdown = calibration.profile_slowdown(cfg.model.aggregation)
        self.reset(0)

    @property
    def shape(self) -> ModelShape:
        """Shape of the model the calibration was measured on."""
        return self._shape

    @property
    def noise_std(self) -> float:
        """Level of the observation noise (0 = the clean loss is reported)."""
        return self.noise.std

    @noise_std.setter
    def noise_std(self, value: float) -> None:
        self.noise = NoiseModel(std=float(value), phi=self.noise.phi)
        self._noise = ar1_noise(self._normals, self.noise)

    def curve(self, rank: int, split: int, rounds: int | None = None) -> np.ndarray:
        """Clean loss of a fixed (rank, cut) after t = 0..``rounds`` rounds (default: the table's length)."""
        if int(rank) not in self._rank_index or not 1 <= int(split) <= self.tables.num_splits:
            raise CalibrationError(f"(rank {rank}, split {split}) not replayable: ranks {list(self.tables.ranks)}, "
                                   f"splits 1..{self.tables.num_splits}")
        row = self.tables.table[int(self.tables.row_index(int(split), self._rank_index[int(rank)]))]
        return row.copy() if rounds is None else row[:int(rounds) + 1].copy()

    def reset(self, seed: int) -> float:
        """Restart from the initial validation loss; ``seed`` drives the observation noise."""
        self._rng = np.random.default_rng(seed)
        self._normals = self._rng.standard_normal(self.noise_block)
        self._noise = ar1_noise(self._normals, self.noise)
        self._state = ProgressState.start(self.initial_val_loss, 1)
        self._prev_cuts = np.full(self.num_clients, np.nan)
        self._prev_log2 = np.full(1, np.nan)
        self._round = 0
        return self.initial_val_loss

    @property
    def clean_loss(self) -> float:
        """The current loss without observation noise (the underlying loss plus any transient shock)."""
        return float(self._state.clean_loss[0])

    @property
    def effective_rank(self) -> float:
        """2 ** (effective log2-rank) after the last round (NaN before round 1)."""
        return float(2.0 ** self._state.rho[0])

    def _check(self, splits: np.ndarray, ranks: np.ndarray) -> None:
        bad = sorted({(int(r), int(c)) for c, r in zip(splits.tolist(), ranks.tolist())
                      if int(r) not in self._rank_index or not 1 <= int(c) <= self.tables.num_splits})
        if bad:
            raise CalibrationError(f"(rank, split) {bad} not replayable: ranks {list(self.tables.ranks)}, "
                                   f"splits 1..{self.tables.num_splits}")

    def run_round(self, split: int | np.ndarray, rank: int | np.ndarray) -> RoundOutcome:
        """Advance one round at (``rank``, ``split``): two ints, or (K,) arrays (a cut and a rank per client)."""
        per_client = np.ndim(split) > 0 or np.ndim(rank) > 0
        cuts = np.broadcast_to(np.asarray(split), (self.num_clients,) if per_client else (1,))
        ranks = np.broadcast_to(np.asarray(rank), cuts.shape)
        self._check(cuts, ranks)
        pace: np.ndarray | float = 1.0
        if per_client:
            c_eff, rho = effective_profile(cuts[None, :], ranks[None, :], self._shape.n_layer, self.profile_form)
            pace = profile_pace(cuts[None, :], ranks[None, :], self._shape.n_layer, self.profile_slowdown)
        else:
            c_eff, rho = np.array([int(split)], dtype=float), np.log2(np.array([int(rank)], dtype=float))
        cuts = np.broadcast_to(cuts.astype(float), (self.num_clients,))
        moved = np.where(np.isnan(self._prev_log2), 0.0, np.mean(np.abs(cuts - self._prev_cuts)))
        self._state = advance_effective(self.tables, self.switch, self._state, self.initial_val_loss,
                                        self._prev_log2, c_eff, rho, moved, pace)
        self._prev_cuts, self._prev_log2 = cuts, rho
        if self._round >= len(self._normals):  # past max_rounds: the noise process continues
            more = self._rng.standard_normal(self.noise_block)
            self._normals = np.concatenate([self._normals, more])
            self._noise = ar1_noise(self._normals, self.noise)
        noisy = float(self._state.clean_loss[0] + self._noise[self._round])
        self._round += 1
        return RoundOutcome(train_loss=noisy, val_loss=noisy, round_index=self._round)


def make_backend(cfg: FedsLLMConfig, calibration: Calibration) -> TrainingBackend:
    """Backend for ``cfg.mode``: ``SurrogateBackend`` or the torch ``SplitFedEngine`` (imported lazily)."""
    if cfg.mode == "surrogate":
        return SurrogateBackend(calibration, cfg)
    from fedsllm_env.splitfed import SplitFedEngine  # DependencyNotInstalled naming [train] without torch

    return SplitFedEngine(cfg)

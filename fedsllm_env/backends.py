"""Training backends behind one small protocol: real split-fed training (torch) or the calibrated surrogate.

The env only talks to :class:`TrainingBackend`; ``make_backend`` picks one from ``cfg.mode`` and imports
the torch engine lazily, so ``mode="surrogate"`` never imports torch.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from fedsllm_env.calibration import Calibration
from fedsllm_env.config import FedsLLMConfig
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
    """Numpy-only loss model replaying measured real runs for the configured data partition.

    For each configured rank r and every cut c the seed-mean measured validation-loss curve of
    (r, c, ``cfg.training.partition``) (a cut between measured ones interpolates linearly in c; with a
    calibration measured at one cut every cut replays it) is turned into a monotone envelope prefixed by
    the initial loss. A round at (r, c) moves the state one round along that curve from the point where it
    reaches the current loss ("equivalent progress"), so switching rank or cut mid-run is consistent, and
    the cut changes convergence exactly as far as it was measured to. Past the measured horizon the loss
    stays at the curve's last value, so a configuration whose curve never reaches the target (censored in
    the calibration) never terminates an episode: it is truncated at ``training.max_rounds``. The reported
    loss adds Gaussian noise with the measured seed-to-seed standard deviation (seeded by ``reset``).
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
        self._curves: dict[tuple[int, int], np.ndarray] = {}
        for r in cfg.model.ranks:
            for c in range(1, self._shape.n_layer):
                measured = calibration.mean_curve(r, c, partition)
                self._curves[(r, c)] = np.minimum.accumulate(np.concatenate([[self.initial_val_loss], measured]))
        self.noise_std = calibration.loss_std(partition)
        self._rng = np.random.default_rng(0)
        self._clean_loss = self.initial_val_loss
        self._round = 0

    @property
    def shape(self) -> ModelShape:
        """Shape of the model the calibration was measured on."""
        return self._shape

    def curve(self, rank: int, split: int) -> np.ndarray:
        """Replayed clean loss at (rank, cut): index t = after t rounds (t = 0: the initial loss), non-increasing."""
        key = (int(rank), int(split))
        if key not in self._curves:
            raise CalibrationError(f"(rank {rank}, split {split}) not replayable: ranks "
                                   f"{sorted({k[0] for k in self._curves})}, splits 1..{self._shape.n_layer - 1}")
        return self._curves[key]

    def reset(self, seed: int) -> float:
        """Restart from the initial validation loss; ``seed`` drives the observation noise."""
        self._rng = np.random.default_rng(seed)
        self._clean_loss = self.initial_val_loss
        self._round = 0
        return self.initial_val_loss

    def _equivalent_round(self, curve: np.ndarray, loss: float) -> float:
        """Fractional round index at which the (non-increasing) curve leaves ``loss`` for good: on a flat stretch
        at exactly ``loss`` (the envelope of a measured curve that rose for a while) its last index, so the next
        round moves past the stretch instead of restarting it."""
        if loss > curve[0]:
            return 0.0
        if loss <= curve[-1]:
            return float(len(curve) - 1)
        j = int(np.argmax(curve < loss))  # first index strictly below: curve[j - 1] >= loss > curve[j]
        lo, hi = curve[j - 1], curve[j]
        frac = (lo - loss) / (lo - hi) if lo > hi else 1.0
        return j - 1 + frac

    def run_round(self, split: int, rank: int) -> RoundOutcome:
        """Advance one round at (``rank``, ``split``) along its measured curve."""
        curve = self.curve(rank, split)
        t = self._equivalent_round(curve, self._clean_loss) + 1.0
        self._clean_loss = float(np.interp(t, np.arange(len(curve)), curve))
        self._round += 1
        noisy = self._clean_loss + self.noise_std * float(self._rng.standard_normal())
        return RoundOutcome(train_loss=noisy, val_loss=noisy, round_index=self._round)


def make_backend(cfg: FedsLLMConfig, calibration: Calibration) -> TrainingBackend:
    """Backend for ``cfg.mode``: ``SurrogateBackend`` or the torch ``SplitFedEngine`` (imported lazily)."""
    if cfg.mode == "surrogate":
        return SurrogateBackend(calibration, cfg)
    from fedsllm_env.splitfed import SplitFedEngine  # DependencyNotInstalled naming [train] without torch

    return SplitFedEngine(cfg)

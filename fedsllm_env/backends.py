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
    """Numpy-only loss model calibrated from measured real runs.

    For each calibrated rank r the mean measured validation-loss curve (monotone envelope, prefixed by
    the initial loss) defines progress. A round at rank r moves the state one round along r's curve
    from the point where r's curve reaches the current loss ("equivalent progress"), so switching
    ranks mid-run is consistent. Past the measured horizon the loss stays at the last measured value.
    The reported loss adds Gaussian noise with the measured seed-to-seed standard deviation. The
    split point does not change the loss model (split training computes the same function).
    """

    def __init__(self, calibration: Calibration, cfg: FedsLLMConfig):
        missing = [r for r in cfg.model.ranks if r not in calibration.curves]
        if missing:
            raise CalibrationError(f"ranks {missing} of the config are not in calibration {calibration.path} "
                                   f"(calibrated: {calibration.ranks}); recalibrate or change model.ranks")
        self._shape = calibration.shape
        self.initial_val_loss = calibration.initial_val_loss
        self._curves: dict[int, np.ndarray] = {}
        stds = []
        for r in cfg.model.ranks:
            curve = np.minimum.accumulate(np.concatenate([[self.initial_val_loss], calibration.mean_curve(r)]))
            self._curves[r] = curve
            if calibration.curves[r].shape[0] > 1:
                stds.append(float(calibration.curves[r].std(axis=0, ddof=1).mean()))
        self.noise_std = float(np.mean(stds)) if stds else 0.0
        self._rng = np.random.default_rng(0)
        self._clean_loss = self.initial_val_loss
        self._round = 0

    @property
    def shape(self) -> ModelShape:
        """Shape of the model the calibration was measured on."""
        return self._shape

    def reset(self, seed: int) -> float:
        """Restart from the initial validation loss; ``seed`` drives the observation noise."""
        self._rng = np.random.default_rng(seed)
        self._clean_loss = self.initial_val_loss
        self._round = 0
        return self.initial_val_loss

    def _equivalent_round(self, curve: np.ndarray, loss: float) -> float:
        """Fractional round index at which the (non-increasing) curve first reaches ``loss``."""
        if loss >= curve[0]:
            return 0.0
        if loss <= curve[-1]:
            return float(len(curve) - 1)
        j = int(np.argmax(curve <= loss))  # first index at or below
        lo, hi = curve[j - 1], curve[j]
        frac = (lo - loss) / (lo - hi) if lo > hi else 1.0
        return j - 1 + frac

    def run_round(self, split: int, rank: int) -> RoundOutcome:
        """Advance one round at ``rank`` along its measured curve."""
        curve = self._curves.get(int(rank))
        if curve is None:
            raise CalibrationError(f"rank {rank} not calibrated; available {sorted(self._curves)}")
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

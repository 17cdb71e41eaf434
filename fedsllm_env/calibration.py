"""Measured calibration of training progress: E(r) table and per-rank validation-loss curves (numpy only).

The file is written by ``fedsllm calibrate`` (real split-federated training, see
``fedsllm_env.splitfed.calibrate``) and read by the delay model (E(r)), the surrogate backend (loss
curves) and the optimizer. Schema (JSON)::

    {
      "version": 1,
      "command": "...",                  # how it was produced
      "settings": {...},                 # model/training config + seeds used
      "model_shape": {...},              # ModelShape.to_dict() of the backbone measured
      "target_val_loss": float,          # E(r) = first round whose validation loss <= this
      "initial_val_loss": float,         # validation loss before round 1
      "ranks": {"<r>": {"rounds_to_target": [int|null per seed],
                        "val_loss_curves": [[float per round] per seed]}},
      "fit": {"a": float, "b": float, "c": float}   # E(r) ~ a + b r^-c (least squares)
    }
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from fedsllm_env.atomic import atomic_write_json
from fedsllm_env.errors import CalibrationError
from fedsllm_env.profile import ModelShape

__all__ = ["Calibration", "load_calibration", "fit_rounds_curve", "atomic_write_json", "DEFAULT_CALIBRATION"]

DEFAULT_CALIBRATION = "calibration.json"
"""File name of the measured table shipped in ``fedsllm_env/data``."""


def fit_rounds_curve(ranks: np.ndarray, rounds: np.ndarray) -> dict[str, float]:
    """Least-squares fit of E(r) = a + b r^-c (c searched on a grid, a, b by linear least squares)."""
    ranks = np.asarray(ranks, dtype=float)
    rounds = np.asarray(rounds, dtype=float)
    best: tuple[float, float, float, float] | None = None
    for c in np.linspace(0.0, 3.0, 301):
        x = ranks ** (-c)
        design = np.stack([np.ones_like(x), x], axis=1)
        coef, *_ = np.linalg.lstsq(design, rounds, rcond=None)
        err = float(np.sum((design @ coef - rounds) ** 2))
        if best is None or err < best[0]:
            best = (err, float(coef[0]), float(coef[1]), float(c))
    assert best is not None
    return {"a": best[1], "b": best[2], "c": best[3], "sse": best[0]}


@dataclass(frozen=True)
class Calibration:
    """A loaded, validated calibration file."""

    path: str
    shape: ModelShape
    target_val_loss: float
    initial_val_loss: float
    ranks: tuple[int, ...]
    rounds_mean: dict[int, float]
    """Mean over seeds of rounds to reach the target (seeds that never reached it count as their curve length + 1)."""
    curves: dict[int, np.ndarray]
    """Per rank, (seeds, rounds) validation loss after each round."""
    fit: dict[str, float]
    raw: dict[str, Any]

    def rounds_needed(self, rank: int) -> float:
        """E(r): measured mean rounds to the target for a calibrated rank, else the fitted a + b r^-c."""
        if rank in self.rounds_mean:
            return self.rounds_mean[rank]
        return float(self.fit["a"] + self.fit["b"] * float(rank) ** (-self.fit["c"]))

    def mean_curve(self, rank: int) -> np.ndarray:
        """Mean validation-loss curve over seeds for a calibrated rank (index t = after round t+1)."""
        if rank not in self.curves:
            raise CalibrationError(f"rank {rank} not calibrated in {self.path}; calibrated ranks: {self.ranks}")
        return self.curves[rank].mean(axis=0)


def _parse(raw: dict[str, Any], where: str) -> Calibration:
    try:
        if raw.get("version") != 1:
            raise CalibrationError(f"{where}: unsupported calibration version {raw.get('version')!r} (expected 1)")
        shape = ModelShape.from_dict(raw["model_shape"])
        target = float(raw["target_val_loss"])
        initial = float(raw["initial_val_loss"])
        ranks_raw = raw["ranks"]
        ranks = tuple(sorted(int(r) for r in ranks_raw))
        if not ranks:
            raise CalibrationError(f"{where}: no ranks in calibration")
        rounds_mean: dict[int, float] = {}
        curves: dict[int, np.ndarray] = {}
        for r in ranks:
            entry = ranks_raw[str(r)]
            curve_list = entry["val_loss_curves"]
            length = min(len(c) for c in curve_list)
            curves[r] = np.asarray([c[:length] for c in curve_list], dtype=float)
            hits = [float(e) if e is not None else float(len(c) + 1)
                    for e, c in zip(entry["rounds_to_target"], curve_list)]
            rounds_mean[r] = float(np.mean(hits))
        fit = {k: float(v) for k, v in raw["fit"].items()}
    except CalibrationError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise CalibrationError(f"{where}: malformed calibration file ({type(e).__name__}: {e})") from e
    return Calibration(where, shape, target, initial, ranks, rounds_mean, curves, fit, raw)


def load_calibration(path: str | os.PathLike[str] | None = None) -> Calibration:
    """Load a calibration JSON; ``None``/"" loads the measured table shipped with the package."""
    if not path:
        ref = resources.files("fedsllm_env") / "data" / DEFAULT_CALIBRATION
        if not ref.is_file():
            raise CalibrationError(
                f"the shipped calibration {ref} is missing; run `fedsllm calibrate` to measure one")
        return _parse(json.loads(ref.read_text()), str(ref))
    p = Path(path)
    if not p.is_file():
        raise CalibrationError(f"calibration file {p} does not exist; run `fedsllm calibrate --out {p}`")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise CalibrationError(f"{p}: not valid JSON ({e})") from e
    return _parse(raw, str(p))

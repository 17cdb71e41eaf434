"""Measured calibration of training progress: E(r, c) and validation-loss curves per (rank, split, partition).

The file is produced by ``fedsllm calibrate`` (real split-federated training, one run per
(rank, split, partition, seed); see ``fedsllm_env.splitfed.calibrate`` and ``train_scripts/calibrate.py``)
and read by the env and the optimizer (E(r, c)) and by the surrogate backend (loss curves). numpy only.

Target rule (schema v2, ``target_rule.kind == "fraction_of_best_reduction"``): the best configuration is
the (rank, split, partition) cell whose seed-mean validation-loss curve reaches the lowest value within
the horizon; its total loss reduction is ``L0 - min(mean curve)`` (L0 = the loss before round 1). The
target is where that configuration has completed ``fraction`` (default 0.9) of it::

    target_val_loss = L0 - fraction * (L0 - min(mean curve of the best cell))

A run reaches the target at the first (1-based) round whose validation loss is <= the target.

Censoring: a run that never reaches the target within the horizon gets ``rounds_to_target = null``; no
number is invented for it. A cell (rank, split, partition) with a censored seed is censored:
``rounds_needed`` returns ``inf`` ("does not converge within the horizon"), the optimizer must treat the
configuration as infeasible, and the surrogate replays its measured curve, which never reaches the target,
so an episode on it is truncated at ``training.max_rounds``. Otherwise E(r, c) is the mean over seeds of
the rounds to target, and its seed-to-seed spread is reported beside it (:meth:`Calibration.cell_table`).

Schema v2 (JSON)::

    {
      "version": 2,
      "command": "...",                        # how it was produced
      "settings": {"config": {...},            # FedsLLMConfig.to_dict() of the sweep (partition per cell)
                   "ranks": [...], "splits": [...], "partitions": [...], "seeds": [...],
                   "max_rounds": int, "threads": int, ...},   # plus timings, versions (informative)
      "model_shape": {...},                    # ModelShape.to_dict() of the backbone measured
      "horizon_rounds": int,                   # rounds of every run (the censoring horizon)
      "default_partition": "iid",              # partition used when none is asked for
      "target_rule": {"kind": "fraction_of_best_reduction" | "given", "fraction": 0.9,
                      "best": {"rank": r, "split": c, "partition": p}},
      "target_val_loss": float,                # 0 < target < initial_val_loss
      "initial_val_loss": float,               # mean validation loss before round 1 over all runs
      "cells": [{"rank": r, "split": c, "partition": p,
                 "seeds": [int per run],
                 "rounds_to_target": [int|null per run],      # null = censored
                 "val_loss_curves": [[float per round] per run],
                 "train_loss_curves": [[float per round] per run],
                 "mean_rounds_to_target": float|null,          # informative (null = censored)
                 "std_rounds_to_target": float|null}]          # informative (ddof 1; 0 for one seed)
    }

A curve shorter than the horizon belongs to a run that diverged (non-finite loss) at the next round; it
is kept as measured and left out of the cell's mean curve (a cell whose every run diverged never makes
progress in the surrogate).

Schema v1 (the shipped table of the first release) stays loadable: one split (``settings.split``, default
1), one partition (``settings.training.partition``, default "iid"), ``ranks: {"<r>": {"rounds_to_target",
"val_loss_curves"}}``, a stored least-squares ``fit`` E(r) ~ a + b r^-c used for uncalibrated ranks.

Lookups between measured points: a split that was not measured interpolates linearly in c between the two
nearest measured splits (the nearest one beyond the measured range; inf if either neighbour is censored);
a rank that was not measured uses the fit a + b r^-c over the measured, uncensored ranks (v2: computed at
load; v1: the stored fit), and is censored if a neighbouring measured rank is censored or fewer than two
ranks converged. Every value is validated on load; any problem raises :class:`CalibrationError` naming the
file and the field.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from fedsllm_env.convergence import (CURVE_TAUS, PROFILE_FORM, SWITCH_MODEL, NoiseModel, ProgressTables, SwitchModel,
                                     effective_profile, fit_curve, fit_noise, fit_profile_slowdown, fit_switch_model,
                                     rank_spread, simulate_profile)
from fedsllm_env.errors import CalibrationError
from fedsllm_env.profile import ModelShape
from fedsllm_env.schedules import parse_profile, parse_schedule

__all__ = ["Calibration", "CalibrationCell", "load_calibration", "fit_rounds_curve", "choose_target",
           "rounds_to_target", "build_calibration", "fit_progress_model", "progress_model_to_json",
           "load_calibration_from_dict", "DEFAULT_CALIBRATION",
           "DEFAULT_TARGET_FRACTION", "SCHEMA_VERSION", "CURVE_MODEL"]

DEFAULT_CALIBRATION = "calibration.json"
"""File name of the measured table shipped in ``fedsllm_env/data``."""
DEFAULT_TARGET_FRACTION = 0.9
"""Share of the best configuration's loss reduction over the horizon that defines the target."""
SCHEMA_VERSION = 2
"""Version written by :func:`build_calibration`."""
CURVE_MODEL = "nnls-exp-gauss-v1"
"""Name of the fitted curve model stored in ``progress_model`` (:mod:`fedsllm_env.convergence`)."""


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


def rounds_to_target(curve: Sequence[float], target: float) -> int | None:
    """First 1-based round whose validation loss is <= ``target``; None if never (censored)."""
    for i, v in enumerate(curve):
        if v <= target:
            return i + 1
    return None


def _mean_curve(curves: Sequence[np.ndarray], horizon: int, initial: float) -> np.ndarray:
    """Mean over the runs that lasted the horizon; flat at ``initial`` if every run diverged."""
    full = [c for c in curves if len(c) >= horizon]
    if not full:
        return np.full(horizon, float(initial))
    return np.mean([c[:horizon] for c in full], axis=0)


def choose_target(mean_curves: dict[tuple[int, int, str], np.ndarray], initial_val_loss: float,
                  fraction: float = DEFAULT_TARGET_FRACTION) -> tuple[float, tuple[int, int, str]]:
    """Target where the best cell has completed ``fraction`` of its loss reduction over the horizon.

    Args:
        mean_curves: (rank, split, partition) -> seed-mean validation loss after each round.
        initial_val_loss: Loss before round 1 (L0).
        fraction: Share of the reduction, in (0, 1].

    Returns:
        (target, best cell key). The best cell's mean curve always reaches the target.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"target fraction must be in (0, 1], got {fraction}")
    if not mean_curves:
        raise ValueError("no runs to choose a target from")
    best = min(sorted(mean_curves), key=lambda k: float(np.min(mean_curves[k])))
    lowest = float(np.min(mean_curves[best]))
    if not lowest < initial_val_loss:
        raise ValueError(f"no configuration reduced the validation loss below its initial {initial_val_loss:.4f} "
                         f"(best {lowest:.4f}); train longer or raise the learning rate")
    return float(initial_val_loss - fraction * (initial_val_loss - lowest)), best


@dataclass(frozen=True)
class CalibrationCell:
    """Measured runs of one (rank, split, partition): one entry per seed."""

    rank: int
    split: int
    partition: str
    seeds: tuple[int, ...]
    rounds_to_target: tuple[int | None, ...]
    """First round at or below the target per run; None = censored (never within the horizon)."""
    val_loss_curves: tuple[np.ndarray, ...]
    """Per run, the validation loss after each round (shorter than the horizon: diverged)."""

    @property
    def censored(self) -> int:
        """Runs that never reached the target."""
        return sum(h is None for h in self.rounds_to_target)

    @property
    def rounds_needed(self) -> float:
        """Mean rounds to target over seeds; inf if any seed is censored."""
        if self.censored:
            return math.inf
        return float(np.mean(self.rounds_to_target))

    @property
    def rounds_std(self) -> float:
        """Seed-to-seed standard deviation of the rounds to target (ddof 1; 0 for one seed; nan if censored)."""
        if self.censored:
            return math.nan
        return float(np.std(self.rounds_to_target, ddof=1)) if len(self.rounds_to_target) > 1 else 0.0


def _interp_split(splits: Sequence[int], split: int) -> tuple[int, int, float]:
    """(lower measured split, upper measured split, weight of the upper) for linear interpolation in c."""
    s = sorted(splits)
    if split <= s[0]:
        return s[0], s[0], 0.0
    if split >= s[-1]:
        return s[-1], s[-1], 0.0
    hi = next(x for x in s if x >= split)
    lo = max(x for x in s if x <= split)
    return lo, hi, 0.0 if hi == lo else (split - lo) / (hi - lo)


@dataclass(frozen=True)
class Calibration:
    """A loaded, validated calibration file (schema v1 or v2; see the module docstring)."""

    path: str
    shape: ModelShape
    target_val_loss: float
    initial_val_loss: float
    ranks: tuple[int, ...]
    splits: tuple[int, ...]
    partitions: tuple[str, ...]
    default_partition: str
    horizon_rounds: int
    cells: dict[tuple[int, int, str], CalibrationCell]
    version: int
    raw: dict[str, Any] = field(repr=False)
    stored_fit: dict[str, float] | None = field(default=None, repr=False)
    schedules: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    """Measured switch schedules (``schedule``, ``partition``, ``seeds``, ``val_loss_curves``)."""
    profiles: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    """Measured heterogeneous profiles (``profile``, ``partition``, ``seeds``, ``rounds_to_target``,
    ``val_loss_curves``)."""
    _fits: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    # ---- lookups --------------------------------------------------------------------------------------
    def _partition(self, partition: str | None) -> str:
        if partition is None:
            return self.default_partition
        if partition not in self.partitions:
            raise CalibrationError(f"partition {partition!r} not calibrated in {self.path}; "
                                   f"calibrated partitions: {self.partitions}")
        return partition

    def _measured_rounds(self, rank: int, split: int | None, partition: str) -> float:
        """E at a measured rank: one split (interpolated between measured splits) or pooled over splits."""
        if split is None:
            cells = [self.cells[(rank, c, partition)] for c in self.splits]
            hits = [h for cell in cells for h in cell.rounds_to_target]
            return math.inf if any(h is None for h in hits) else float(np.mean(hits))
        lo, hi, w = _interp_split(self.splits, int(split))
        e_lo = self.cells[(rank, lo, partition)].rounds_needed
        e_hi = self.cells[(rank, hi, partition)].rounds_needed
        if math.isinf(e_lo) or math.isinf(e_hi):
            return math.inf
        return (1.0 - w) * e_lo + w * e_hi

    def _fit(self, split: int | None, partition: str) -> dict[str, float] | None:
        """a + b r^-c over the uncensored measured ranks (v1: the stored fit); None if < 2 converged."""
        if self.stored_fit is not None:
            return self.stored_fit
        key = (split, partition)
        if key not in self._fits:
            pts = [(r, self._measured_rounds(r, split, partition)) for r in self.ranks]
            pts = [(r, e) for r, e in pts if math.isfinite(e)]
            self._fits[key] = fit_rounds_curve(np.array([p[0] for p in pts], float),
                                               np.array([p[1] for p in pts], float)) if len(pts) >= 2 else None
        return self._fits[key]

    def rounds_needed(self, rank: int, split: int | None = None, partition: str | None = None) -> float:
        """E(r, c): mean measured rounds to the target; ``inf`` where censored (no convergence in the horizon).

        Args:
            rank: LoRA rank r (uncalibrated ranks use the fit a + b r^-c, see the module docstring).
            split: Cut index c (None = pooled over every measured split; unmeasured = interpolated).
            partition: "iid" / "dirichlet" (None = :attr:`default_partition`).

        Returns:
            Rounds (float, > 0) or ``math.inf``.
        """
        rank = int(rank)
        part = self._partition(partition)
        if rank in self.ranks:
            return self._measured_rounds(rank, split, part)
        lower = [r for r in self.ranks if r < rank]
        upper = [r for r in self.ranks if r > rank]
        neighbours = ([max(lower)] if lower else []) + ([min(upper)] if upper else [])
        if any(math.isinf(self._measured_rounds(r, split, part)) for r in neighbours):
            return math.inf
        fit = self._fit(split, part)
        if fit is None:
            return math.inf
        return max(1.0, float(fit["a"] + fit["b"] * float(rank) ** (-fit["c"])))

    @property
    def fit(self) -> dict[str, float]:
        """E(r) ~ a + b r^-c for the default partition pooled over splits ({} if fewer than two ranks converged)."""
        return dict(self._fit(None, self.default_partition) or {})

    def seed_curves(self, rank: int, split: int, partition: str | None = None) -> tuple[np.ndarray, ...]:
        """Measured validation-loss curves (one per seed) of a measured (rank, split, partition)."""
        key = (int(rank), int(split), self._partition(partition))
        if key not in self.cells:
            raise CalibrationError(f"(rank {rank}, split {split}, partition {key[2]!r}) not measured in {self.path}; "
                                   f"ranks {self.ranks}, splits {self.splits}")
        return self.cells[key].val_loss_curves

    def mean_curve(self, rank: int, split: int | None = None, partition: str | None = None) -> np.ndarray:
        """Seed-mean validation-loss curve (index t = after round t+1), length :attr:`horizon_rounds`.

        ``split=None`` averages every measured split; an unmeasured split interpolates linearly in c.
        """
        rank = int(rank)
        part = self._partition(partition)
        if rank not in self.ranks:
            raise CalibrationError(f"rank {rank} not calibrated in {self.path}; calibrated ranks: {self.ranks}")
        if split is None:
            return np.mean([self.mean_curve(rank, c, part) for c in self.splits], axis=0)
        lo, hi, w = _interp_split(self.splits, int(split))
        curve_lo = _mean_curve(self.cells[(rank, lo, part)].val_loss_curves, self.horizon_rounds,
                               self.initial_val_loss)
        if w == 0.0:
            return curve_lo
        curve_hi = _mean_curve(self.cells[(rank, hi, part)].val_loss_curves, self.horizon_rounds,
                               self.initial_val_loss)
        return (1.0 - w) * curve_lo + w * curve_hi

    def loss_std(self, partition: str | None = None) -> float:
        """Seed-to-seed standard deviation of the validation loss, averaged over rounds and cells (0 if one seed)."""
        part = self._partition(partition)
        stds = []
        for (_, _, p), cell in sorted(self.cells.items()):
            full = [c[:self.horizon_rounds] for c in cell.val_loss_curves if len(c) >= self.horizon_rounds]
            if p == part and len(full) > 1:
                stds.append(float(np.std(np.asarray(full), axis=0, ddof=1).mean()))
        return float(np.mean(stds)) if stds else 0.0

    # ---- the surrogate's progress model (fedsllm_env.convergence) -------------------------------------------
    def _progress(self) -> dict[str, Any]:
        """The stored ``progress_model`` section, or one fitted now from the cells (no switch fit: that needs the
        schedules, so a table without a stored model replays the fixed curves memorylessly)."""
        if "progress" not in self._fits:
            stored = self.raw.get("progress_model") if isinstance(self.raw, dict) else None
            self._fits["progress"] = (_parse_progress(stored, self) if stored is not None
                                      else fit_progress_model(self, fit_switch=False))
        return self._fits["progress"]

    def profile_slowdown(self, rule: str = "zero_pad") -> float:
        """How much a heterogeneous profile's spread of ranks slows training under aggregation ``rule``
        (:func:`fedsllm_env.convergence.profile_pace`; fitted to the designed profiles of that rule, 0 without)."""
        return float(self._progress().get("profile_slowdown", {}).get(rule, 0.0))

    @property
    def switch_model(self) -> SwitchModel:
        """How training reacts to rank and cut switches (fitted to the measured schedules; 0 without them)."""
        return self._progress()["switch"]

    def noise_model(self, partition: str | None = None) -> NoiseModel:
        """AR(1) seed-to-seed noise of the validation loss of ``partition``."""
        return self._progress()["noise"][self._partition(partition)]

    def curve_weights(self, rank: int, split: int, partition: str | None = None) -> np.ndarray:
        """Weights of the fitted monotone curve of a measured cell (:func:`fedsllm_env.convergence.curve_at`)."""
        key = (int(rank), int(split), self._partition(partition))
        if key not in self.cells:
            raise CalibrationError(f"(rank {rank}, split {split}, partition {key[2]!r}) not measured in {self.path}")
        return self._progress()["weights"][key]

    def profile_rounds_needed(self, cuts: Sequence[int], ranks: Sequence[int], partition: str | None = None,
                              rule: str = "zero_pad") -> float:
        """E of a fixed heterogeneous profile: the measured E(r, c) read at the profile's effective cut and
        log2-rank (:func:`fedsllm_env.convergence.effective_profile`, form
        :data:`fedsllm_env.convergence.PROFILE_FORM`), linear in c between cuts and in log2 r between configured
        ranks (``inf`` when a corner it mixes is censored), times 1 + :meth:`profile_slowdown` of the aggregation
        ``rule`` x the profile's rank spread (:func:`fedsllm_env.convergence.profile_pace`). A homogeneous profile gives
        :meth:`rounds_needed` exactly (the surrogate reads its curves at the same point)."""
        part = self._partition(partition)
        key = ("profile-e", tuple(int(c) for c in cuts), tuple(int(r) for r in ranks), part, rule)
        if key not in self._fits:
            c_eff, rho = effective_profile(np.asarray(key[1]), np.asarray(key[2]), self.shape.n_layer, PROFILE_FORM)
            c_eff, rho = float(c_eff[0]), float(rho[0])
            log2 = np.log2(np.asarray(self.ranks, dtype=float))
            j = int(np.clip(np.searchsorted(log2, rho, side="right") - 1, 0, max(len(log2) - 2, 0)))
            w_r = 0.0 if len(log2) == 1 else float(np.clip((rho - log2[j]) / (log2[j + 1] - log2[j]), 0.0, 1.0))
            c_lo = int(math.floor(c_eff))
            w_c = c_eff - c_lo
            total = 0.0
            for rank_i, wr in ((j, 1.0 - w_r), (min(j + 1, len(log2) - 1), w_r)):
                for cut, wc in ((c_lo, 1.0 - w_c), (min(c_lo + 1, self.shape.n_layer - 1), w_c)):
                    if wr * wc > 0:
                        total += wr * wc * self.rounds_needed(self.ranks[rank_i], cut, part)
            spread = float(rank_spread(np.asarray(key[1]), np.asarray(key[2]), self.shape.n_layer)[0])
            self._fits[key] = float(total) * (1.0 + self.profile_slowdown(rule) * spread)
        return self._fits[key]

    def profile_report(self, form: str | None = None, slowdown: float | None = None) -> list[dict[str, Any]]:
        """How the surrogate prices each measured heterogeneous profile against its real runs.

        Per profile: ``measured`` (rounds to the target per seed, None = censored) and their ``measured_mean``
        (a censored seed counts as the horizon + 1), ``episode_e`` (the round the surrogate's clean curve
        reaches the target, :func:`fedsllm_env.convergence.simulate_profile`; horizon + 1 if it does not) and
        ``error`` (episode_e / measured_mean - 1), and ``table_e`` (:meth:`profile_rounds_needed`, the E the
        optimizer uses; only for ``form`` None, the shipped form). ``slowdown``: the rank-spread slowdown to price
        with (None = each profile's rule's :meth:`profile_slowdown`). ``held_out`` marks the profiles of
        :data:`fedsllm_env.schedules.HELD_OUT_PROFILES`.
        """
        from fedsllm_env.schedules import HELD_OUT_PROFILES

        held = {parse_profile(t).text for t in HELD_OUT_PROFILES}
        rows = []
        for entry in self.profiles:
            prof = parse_profile(entry["profile"])
            k = max(len(prof.cuts), len(prof.ranks), _settings_clients(self))
            cuts, ranks = prof.per_client(k)
            part = entry["partition"]
            horizon = self.horizon_rounds
            hits = list(entry["rounds_to_target"])
            mean = float(np.mean([horizon + 1 if h is None else h for h in hits]))
            curve = simulate_profile(self.progress_tables(self.ranks, part), self.switch_model,
                                     self.initial_val_loss, cuts, ranks, self.shape.n_layer, horizon,
                                     form or PROFILE_FORM,
                                     self.profile_slowdown(prof.aggregation) if slowdown is None else slowdown)
            hit = np.nonzero(curve <= self.target_val_loss)[0]
            episode_e = float(hit[0] + 1) if hit.size else float(horizon + 1)
            rows.append({"profile": prof.text, "partition": part, "held_out": prof.text in held,
                         "measured": hits, "measured_mean": mean, "episode_e": episode_e,
                         "error": episode_e / mean - 1.0,
                         "table_e": None if form or slowdown is not None else
                         self.profile_rounds_needed(cuts, ranks, part, prof.aggregation)})
        return rows

    def progress_tables(self, ranks: Sequence[int], partition: str | None = None) -> ProgressTables:
        """The fitted curves of ``ranks`` (all measured) at every cut, for the surrogate (cached)."""
        part = self._partition(partition)
        ranks = tuple(sorted(int(r) for r in ranks))
        missing = [r for r in ranks if r not in self.ranks]
        if missing:
            raise CalibrationError(f"ranks {missing} are not in calibration {self.path} (calibrated: {self.ranks})")
        key = ("tables", ranks, part)
        if key not in self._fits:
            weights = {(r, c): self.curve_weights(r, c, part) for r in ranks for c in self.splits}
            self._fits[key] = ProgressTables.build(weights, self.splits, ranks, self.shape.n_layer,
                                                   self.horizon_rounds)
        return self._fits[key]

    def cell_table(self) -> list[dict[str, Any]]:
        """One row per measured cell: E mean and seed spread, censored runs, final loss mean and spread."""
        rows = []
        for key in sorted(self.cells):
            cell = self.cells[key]
            finals = [float(c[-1]) for c in cell.val_loss_curves]
            rows.append({"rank": key[0], "split": key[1], "partition": key[2], "seeds": len(cell.seeds),
                         "rounds_to_target": list(cell.rounds_to_target), "mean_rounds": cell.rounds_needed,
                         "std_rounds": cell.rounds_std, "censored": cell.censored,
                         "final_val_loss": float(np.mean(finals)),
                         "final_val_loss_std": float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0})
        return rows


# ---- the progress model's fit ---------------------------------------------------------------------------------------
def fit_progress_model(cal: "Calibration", fit_switch: bool = True) -> dict[str, Any]:
    """Fit the surrogate's progress model (:mod:`fedsllm_env.convergence`) to a calibration.

    Returns ``{"weights": {(rank, split, partition): array}, "noise": {partition: NoiseModel}, "switch":
    SwitchModel, "switch_fit": report}``; the switch parameters are fitted to ``cal.schedules`` (every
    schedule's seed-mean curve, on the tables of its partition with every measured rank) when ``fit_switch``
    and there are schedules, else 0.
    """
    weights = {key: fit_curve(cell.val_loss_curves, cal.initial_val_loss) for key, cell in sorted(cal.cells.items())}
    noise = {p: fit_noise([cell.val_loss_curves for key, cell in sorted(cal.cells.items()) if key[2] == p])
             for p in cal.partitions}
    out = {"weights": weights, "noise": noise, "switch": SwitchModel(), "switch_fit": {"schedules": 0}}
    if fit_switch and cal.schedules:
        fits = []
        for entry in cal.schedules:
            part = entry["partition"]
            tables = ProgressTables.build({(r, c): weights[(r, c, part)] for r in cal.ranks for c in cal.splits},
                                          cal.splits, cal.ranks, cal.shape.n_layer, cal.horizon_rounds)
            curves = [np.asarray(c, float) for c in entry["val_loss_curves"]]
            horizon = min(len(c) for c in curves)
            measured = np.mean([c[:horizon] for c in curves], axis=0)
            fits.append((tables, parse_schedule(entry["schedule"]).decisions(horizon), measured))
        out["switch"], out["switch_fit"] = fit_switch_model(fits, cal.initial_val_loss)
    designed = [e for e in cal.profiles if parse_profile(e["profile"]).text in _designed_profiles()]
    if designed:
        k = _settings_clients(cal)
        out["profile_slowdown"], out["profile_fit"] = {}, {"form": PROFILE_FORM}
        for rule in ("zero_pad", "svd"):  # a shared-rank profile is the same under either rule
            fits_p = []
            for entry in designed:
                prof = parse_profile(entry["profile"])
                if prof.aggregation != rule and len(set(prof.ranks)) > 1:
                    continue
                part = entry["partition"]
                tables = ProgressTables.build({(r, c): weights[(r, c, part)] for r in cal.ranks for c in cal.splits},
                                              cal.splits, cal.ranks, cal.shape.n_layer, cal.horizon_rounds)
                cuts, ranks = prof.per_client(k)
                curves = [np.asarray(c, float) for c in entry["val_loss_curves"]]
                horizon = min(len(c) for c in curves)
                fits_p.append((tables, cuts, ranks, np.mean([c[:horizon] for c in curves], axis=0)))
            if any(len(set(r)) > 1 for _, _, r, _ in fits_p):
                out["profile_slowdown"][rule], out["profile_fit"][rule] = fit_profile_slowdown(
                    fits_p, out["switch"], cal.initial_val_loss, cal.shape.n_layer, PROFILE_FORM)
    return out


def _settings_clients(cal: "Calibration") -> int:
    """K of the configuration the table was measured with (5, the default, when it records none)."""
    raw = cal.raw if isinstance(cal.raw, dict) else {}
    return int(raw.get("settings", {}).get("config", {}).get("wireless", {}).get("num_clients", 5))


def _designed_profiles() -> set[str]:
    from fedsllm_env.schedules import DESIGNED_PROFILES

    return {parse_profile(t).text for t in DESIGNED_PROFILES}


def progress_model_to_json(fit: dict[str, Any]) -> dict[str, Any]:
    """The ``progress_model`` section of a calibration file for a :func:`fit_progress_model` result."""
    return {"curve_model": CURVE_MODEL, "curve_taus": list(CURVE_TAUS),
            "cells": [{"rank": r, "split": c, "partition": p, "weights": [float(x) for x in w]}
                      for (r, c, p), w in sorted(fit["weights"].items())],
            "noise": {p: n.to_dict() for p, n in sorted(fit["noise"].items())},
            "switch_model": SWITCH_MODEL, "switch": fit["switch"].to_dict(), "switch_fit": fit["switch_fit"],
            **({"profile_slowdown": {r: float(v) for r, v in fit["profile_slowdown"].items()},
                "profile_fit": fit["profile_fit"]} if "profile_slowdown" in fit else {})}


def _parse_progress(raw: Any, cal: "Calibration") -> dict[str, Any]:
    """Validate a stored ``progress_model`` section against the table's cells."""
    ck = _Checker(cal.path)
    if not isinstance(raw, dict):
        raise ck.fail("progress_model", f"must be an object, got {type(raw).__name__}")
    if raw.get("curve_model") != CURVE_MODEL or raw.get("curve_taus") != list(CURVE_TAUS):
        raise ck.fail("progress_model.curve_model", f"= {raw.get('curve_model')!r} is not {CURVE_MODEL!r} with "
                      "this package's time constants; refit with `fedsllm calibrate --refit FILE`")
    if raw.get("switch_model") != SWITCH_MODEL:
        raise ck.fail("progress_model.switch_model", f"= {raw.get('switch_model')!r} is not this package's switch "
                      f"model {SWITCH_MODEL!r} (its parameters mean other things); refit with "
                      "`fedsllm calibrate --refit FILE --out NEW`")
    weights = {}
    for i, entry in enumerate(ck.seq(ck.get(raw, "cells", "progress_model.cells"), "progress_model.cells")):
        name = f"progress_model.cells[{i}]"
        key = (ck.integer(ck.get(entry, "rank", f"{name}.rank"), f"{name}.rank", 1),
               ck.integer(ck.get(entry, "split", f"{name}.split"), f"{name}.split", 1),
               str(ck.get(entry, "partition", f"{name}.partition")))
        w = ck.curve(ck.get(entry, "weights", f"{name}.weights"), f"{name}.weights")
        if len(w) != 1 + 2 * len(CURVE_TAUS) or (w < 0).any():
            raise ck.fail(f"{name}.weights", f"must be {1 + 2 * len(CURVE_TAUS)} numbers >= 0")
        weights[key] = w
    if set(weights) != set(cal.cells):
        raise ck.fail("progress_model.cells", "does not cover exactly the table's cells; refit with "
                      "`fedsllm calibrate --refit FILE`")
    noise_raw = ck.get(raw, "noise", "progress_model.noise")
    try:
        noise = {p: NoiseModel(**{k: ck.number(ck.get(noise_raw.get(p), k, f"progress_model.noise.{p}.{k}"),
                                               f"progress_model.noise.{p}.{k}") for k in ("std", "phi")})
                 for p in cal.partitions}
        sw = ck.get(raw, "switch", "progress_model.switch")
        switch = SwitchModel(**{k: ck.number(ck.get(sw, k, f"progress_model.switch.{k}"), f"progress_model.switch.{k}")
                                for k in SwitchModel().to_dict()})
    except (ValueError, AttributeError) as e:
        if isinstance(e, CalibrationError):
            raise
        raise ck.fail("progress_model", f"is invalid ({e})") from e
    out = {"weights": weights, "noise": noise, "switch": switch, "switch_fit": raw.get("switch_fit", {})}
    if "profile_slowdown" in raw:
        slow = raw["profile_slowdown"]
        if not isinstance(slow, dict) or set(slow) - {"zero_pad", "svd"}:
            raise ck.fail("progress_model.profile_slowdown", f"must map 'zero_pad' / 'svd' to a number, got {slow!r}")
        out["profile_slowdown"] = {r: ck.number(v, f"progress_model.profile_slowdown.{r}") for r, v in slow.items()}
        bad = {r: v for r, v in out["profile_slowdown"].items() if v < 0}
        if bad:
            raise ck.fail("progress_model.profile_slowdown", f"= {bad} must be >= 0")
        out["profile_fit"] = raw.get("profile_fit", {})
        if out["profile_fit"].get("form", PROFILE_FORM) != PROFILE_FORM:
            raise ck.fail("progress_model.profile_fit.form", f"= {out['profile_fit'].get('form')!r} is not this "
                          f"package's profile form {PROFILE_FORM!r}; refit with `fedsllm calibrate --refit FILE`")
    return out



# ---- building a v2 table from run records ------------------------------------------------------------------
def build_calibration(runs: Iterable[dict[str, Any]], model_shape: dict[str, int], settings: dict[str, Any],
                      horizon_rounds: int, default_partition: str, command: str,
                      target_val_loss: float | None = None,
                      target_fraction: float = DEFAULT_TARGET_FRACTION) -> dict[str, Any]:
    """Merge per-run records into a schema-v2 calibration dict (deterministic: sorted by cell and seed).

    Args:
        runs: Records with ``rank``, ``split``, ``partition``, ``seed``, ``initial_val_loss``,
            ``val_loss_curve``, ``train_loss_curve`` (as written by ``fedsllm_env.splitfed.calibrate``).
        model_shape: ``ModelShape.to_dict()`` of the backbone.
        settings: Recorded as is (config, grid, timings).
        horizon_rounds: Rounds every run was given.
        default_partition: Partition used when a caller names none.
        command: Command line recorded in the file.
        target_val_loss: Explicit target; None = the fraction-of-best-reduction rule.
        target_fraction: Share of the best cell's reduction (see :func:`choose_target`).
    """
    runs = sorted(runs, key=lambda r: (r.get("profile", ""), r.get("schedule", ""), r["rank"], r["split"],
                                       r["partition"], r["seed"]))
    profile_runs = [r for r in runs if r.get("profile")]
    schedule_runs = [r for r in runs if r.get("schedule")]
    runs = [r for r in runs if not r.get("schedule") and not r.get("profile")]
    if not runs:
        raise ValueError("no runs to merge")
    grouped: dict[tuple[int, int, str], list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault((int(run["rank"]), int(run["split"]), str(run["partition"])), []).append(run)
    initial = float(np.mean([r["initial_val_loss"] for r in runs]))
    if target_val_loss is None:
        means = {k: _mean_curve([np.asarray(r["val_loss_curve"], float) for r in v], horizon_rounds, initial)
                 for k, v in grouped.items()}
        target, best = choose_target(means, initial, target_fraction)
        rule = {"kind": "fraction_of_best_reduction", "fraction": float(target_fraction),
                "best": {"rank": best[0], "split": best[1], "partition": best[2]}}
    else:
        target, rule = float(target_val_loss), {"kind": "given"}
    cells = []
    for (rank, split, part), group in sorted(grouped.items()):
        hits = [rounds_to_target(r["val_loss_curve"], target) for r in group]
        reached = [h for h in hits if h is not None]
        censored = len(reached) < len(hits)
        cells.append({
            "rank": rank, "split": split, "partition": part, "seeds": [int(r["seed"]) for r in group],
            "rounds_to_target": hits,
            "mean_rounds_to_target": None if censored else float(np.mean(reached)),
            "std_rounds_to_target": None if censored else (float(np.std(reached, ddof=1)) if len(reached) > 1
                                                           else 0.0),
            "val_loss_curves": [list(map(float, r["val_loss_curve"])) for r in group],
            "train_loss_curves": [list(map(float, r["train_loss_curve"])) for r in group],
        })
    schedules: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in schedule_runs:
        schedules.setdefault((str(run["schedule"]), str(run["partition"])), []).append(run)
    out = {"version": SCHEMA_VERSION, "command": command, "settings": settings, "model_shape": dict(model_shape),
           "horizon_rounds": int(horizon_rounds), "default_partition": default_partition, "target_rule": rule,
           "target_val_loss": float(target), "initial_val_loss": initial, "cells": cells}
    if schedules:
        out["schedules"] = [{"schedule": text, "partition": part, "seeds": [int(r["seed"]) for r in group],
                             "val_loss_curves": [list(map(float, r["val_loss_curve"])) for r in group],
                             "initial_val_losses": [float(r["initial_val_loss"]) for r in group]}
                            for (text, part), group in sorted(schedules.items())]
    profiles: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in profile_runs:
        profiles.setdefault((str(run["profile"]), str(run["partition"])), []).append(run)
    if profiles:
        out["profiles"] = [{"profile": text, "partition": part, "seeds": [int(r["seed"]) for r in group],
                            "rounds_to_target": [rounds_to_target(r["val_loss_curve"], target) for r in group],
                            "val_loss_curves": [list(map(float, r["val_loss_curve"])) for r in group],
                            "initial_val_losses": [float(r["initial_val_loss"]) for r in group]}
                           for (text, part), group in sorted(profiles.items())]
    out["progress_model"] = progress_model_to_json(fit_progress_model(_parse(out, "<table being built>")))
    return out


# ---- loading and validation ----------------------------------------------------------------------------------
class _Checker:
    """Typed field readers that raise CalibrationError naming the file and the field."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, name: str, problem: str) -> CalibrationError:
        return CalibrationError(f"{self.where}: field {name!r} {problem}")

    def get(self, obj: dict[str, Any], key: str, name: str) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(name.rsplit(".", 1)[0], f"must be an object, got {type(obj).__name__}")
        if key not in obj:
            raise self.fail(name, "is missing")
        return obj[key]

    def number(self, value: Any, name: str, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, f"must be a number, got {value!r}")
        v = float(value)
        if not math.isfinite(v):
            raise self.fail(name, f"must be finite, got {value!r}")
        if positive and not v > 0:
            raise self.fail(name, f"must be > 0, got {value!r}")
        return v

    def integer(self, value: Any, name: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(name, f"must be an int >= {minimum}, got {value!r}")
        return int(value)

    def seq(self, value: Any, name: str) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise self.fail(name, f"must be a non-empty list, got {value!r:.60}")
        return value

    def curve(self, value: Any, name: str) -> np.ndarray:
        items = self.seq(value, name)
        return np.asarray([self.number(v, f"{name}[{i}]") for i, v in enumerate(items)], dtype=float)

    def hits(self, value: Any, name: str, curves: Sequence[np.ndarray]) -> tuple[int | None, ...]:
        items = self.seq(value, name)
        if len(items) != len(curves):
            raise self.fail(name, f"has {len(items)} entries for {len(curves)} loss curves")
        out = []
        for i, (h, c) in enumerate(zip(items, curves)):
            if h is not None:
                h = self.integer(h, f"{name}[{i}]", 1)
                if h > len(c):
                    raise self.fail(f"{name}[{i}]", f"= {h} is beyond its loss curve ({len(c)} rounds)")
            out.append(h)
        return tuple(out)

    def shape(self, value: Any) -> ModelShape:
        try:
            if not isinstance(value, dict):
                raise TypeError(f"must be an object, got {type(value).__name__}")
            return ModelShape.from_dict(value)
        except (TypeError, ValueError) as e:
            raise self.fail("model_shape", f"is invalid ({e})") from e


def _parse_v1(raw: dict[str, Any], ck: _Checker) -> dict[str, Any]:
    settings = raw.get("settings") or {}
    split = ck.integer(settings.get("split", 1), "settings.split", 1)
    training = settings.get("training") or {}
    partition = str(training.get("partition", "iid")) if isinstance(training, dict) else "iid"
    ranks_raw = ck.get(raw, "ranks", "ranks")
    if not isinstance(ranks_raw, dict) or not ranks_raw:
        raise ck.fail("ranks", f"must be a non-empty object of rank -> runs, got {ranks_raw!r:.60}")
    cells: dict[tuple[int, int, str], CalibrationCell] = {}
    for key, entry in ranks_raw.items():
        try:
            rank = int(key)
        except ValueError:
            rank = 0
        if rank < 1:
            raise ck.fail(f"ranks.{key}", "is not a rank (int >= 1)")
        name = f"ranks.{key}"
        curves_raw = ck.seq(ck.get(entry, "val_loss_curves", f"{name}.val_loss_curves"), f"{name}.val_loss_curves")
        curves = [ck.curve(c, f"{name}.val_loss_curves[{i}]") for i, c in enumerate(curves_raw)]
        length = min(len(c) for c in curves)
        curves = [c[:length] for c in curves]
        hits = ck.hits(ck.get(entry, "rounds_to_target", f"{name}.rounds_to_target"), f"{name}.rounds_to_target",
                       curves)
        cells[(rank, split, partition)] = CalibrationCell(rank, split, partition, tuple(range(len(curves))), hits,
                                                          tuple(curves))
    fit_raw = ck.get(raw, "fit", "fit")
    if not isinstance(fit_raw, dict):
        raise ck.fail("fit", f"must be an object, got {fit_raw!r:.60}")
    fit = {k: ck.number(ck.get(fit_raw, k, f"fit.{k}"), f"fit.{k}") for k in ("a", "b", "c")}
    horizon = min(len(c) for cell in cells.values() for c in cell.val_loss_curves)
    return {"cells": cells, "horizon": horizon, "default_partition": partition, "stored_fit": fit}


def _parse_v2(raw: dict[str, Any], ck: _Checker) -> dict[str, Any]:
    horizon = ck.integer(ck.get(raw, "horizon_rounds", "horizon_rounds"), "horizon_rounds", 1)
    default = ck.get(raw, "default_partition", "default_partition")
    cells_raw = ck.seq(ck.get(raw, "cells", "cells"), "cells")
    cells: dict[tuple[int, int, str], CalibrationCell] = {}
    for i, entry in enumerate(cells_raw):
        name = f"cells[{i}]"
        rank = ck.integer(ck.get(entry, "rank", f"{name}.rank"), f"{name}.rank", 1)
        split = ck.integer(ck.get(entry, "split", f"{name}.split"), f"{name}.split", 1)
        part = ck.get(entry, "partition", f"{name}.partition")
        if not isinstance(part, str) or not part:
            raise ck.fail(f"{name}.partition", f"must be a non-empty string, got {part!r}")
        if (rank, split, part) in cells:
            raise ck.fail(name, f"repeats (rank {rank}, split {split}, partition {part!r})")
        curves_raw = ck.seq(ck.get(entry, "val_loss_curves", f"{name}.val_loss_curves"), f"{name}.val_loss_curves")
        curves = [ck.curve(c, f"{name}.val_loss_curves[{j}]") for j, c in enumerate(curves_raw)]
        for j, c in enumerate(curves):
            if len(c) > horizon:
                raise ck.fail(f"{name}.val_loss_curves[{j}]", f"has {len(c)} rounds, more than horizon_rounds={horizon}")
        seeds = ck.seq(ck.get(entry, "seeds", f"{name}.seeds"), f"{name}.seeds")
        if len(seeds) != len(curves):
            raise ck.fail(f"{name}.seeds", f"has {len(seeds)} entries for {len(curves)} loss curves")
        seeds = [ck.integer(s, f"{name}.seeds[{j}]", 0) for j, s in enumerate(seeds)]
        hits = ck.hits(ck.get(entry, "rounds_to_target", f"{name}.rounds_to_target"), f"{name}.rounds_to_target",
                       curves)
        cells[(rank, split, part)] = CalibrationCell(rank, split, part, tuple(seeds), hits, tuple(curves))
    ranks = sorted({k[0] for k in cells})
    splits = sorted({k[1] for k in cells})
    parts = sorted({k[2] for k in cells})
    missing = [(r, c, p) for r in ranks for c in splits for p in parts if (r, c, p) not in cells]
    if missing:
        raise ck.fail("cells", f"is not a full grid over ranks {ranks} x splits {splits} x partitions {parts}; "
                               f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    if default not in parts:
        raise ck.fail("default_partition", f"= {default!r} is not one of the measured partitions {parts}")
    schedules = [out for out, _, _ in _measured_runs(raw, ck, "schedules", "schedule", parse_schedule,
                                                      lambda plan: ({r for _, r, _ in plan.phases},
                                                                    {c for c, _, _ in plan.phases}), ranks, parts)]
    profiles = []
    for out, name, entry in _measured_runs(raw, ck, "profiles", "profile", parse_profile,
                                           lambda prof: (set(prof.ranks), set(prof.cuts)), ranks, parts):
        out["rounds_to_target"] = ck.hits(ck.get(entry, "rounds_to_target", f"{name}.rounds_to_target"),
                                          f"{name}.rounds_to_target", out["val_loss_curves"])
        profiles.append(out)
    return {"cells": cells, "horizon": horizon, "default_partition": default, "stored_fit": None,
            "schedules": tuple(schedules), "profiles": tuple(profiles)}


def _measured_runs(raw: dict[str, Any], ck: "_Checker", section: str, key: str, parse: Any, uses: Any,
                   ranks: list[int], parts: list[str]) -> list[tuple[dict[str, Any], str, Any]]:
    """The checked entries of a table's ``schedules`` or ``profiles`` section: per entry (``{key: normalised
    text, "partition", "seeds", "val_loss_curves"}``, its field name, the raw entry); ``parse`` reads the text,
    ``uses`` gives the (ranks, cuts) it plays, which must lie in the measured grid."""
    out = []
    for i, entry in enumerate(raw.get(section) or []):
        name = f"{section}[{i}]"
        text = ck.get(entry, key, f"{name}.{key}")
        try:
            plan = parse(text)
        except ValueError as e:
            raise ck.fail(f"{name}.{key}", f"is invalid ({e})") from e
        part = ck.get(entry, "partition", f"{name}.partition")
        if part not in parts:
            raise ck.fail(f"{name}.partition", f"= {part!r} is not one of the measured partitions {parts}")
        used_ranks, used_cuts = uses(plan)
        bad = sorted({r for r in used_ranks if r not in ranks} | {c for c in used_cuts if c < 1})
        if bad:
            raise ck.fail(f"{name}.{key}", f"= {text!r} uses ranks or cuts {bad} outside the measured grid")
        curves = [ck.curve(c, f"{name}.val_loss_curves[{j}]") for j, c in
                  enumerate(ck.seq(ck.get(entry, "val_loss_curves", f"{name}.val_loss_curves"),
                                   f"{name}.val_loss_curves"))]
        out.append(({key: plan.text, "partition": part, "seeds": list(entry.get("seeds", [])),
                     "val_loss_curves": curves}, name, entry))
    return out


def _parse(raw: Any, where: str) -> Calibration:
    ck = _Checker(where)
    if not isinstance(raw, dict):
        raise CalibrationError(f"{where}: a calibration file must hold a JSON object, got {type(raw).__name__}")
    version = raw.get("version")
    if version not in (1, 2) or isinstance(version, bool):
        raise ck.fail("version", f"= {version!r} is not supported (expected 1 or 2)")
    shape = ck.shape(ck.get(raw, "model_shape", "model_shape"))
    target = ck.number(ck.get(raw, "target_val_loss", "target_val_loss"), "target_val_loss", positive=True)
    initial = ck.number(ck.get(raw, "initial_val_loss", "initial_val_loss"), "initial_val_loss", positive=True)
    if not target < initial:
        raise ck.fail("target_val_loss", f"= {target} must be below initial_val_loss = {initial}")
    parsed = _parse_v1(raw, ck) if version == 1 else _parse_v2(raw, ck)
    cells = parsed["cells"]
    return Calibration(
        path=where, shape=shape, target_val_loss=target, initial_val_loss=initial,
        ranks=tuple(sorted({k[0] for k in cells})), splits=tuple(sorted({k[1] for k in cells})),
        partitions=tuple(sorted({k[2] for k in cells})), default_partition=parsed["default_partition"],
        horizon_rounds=int(parsed["horizon"]), cells=cells, version=int(version), raw=raw,
        stored_fit=parsed["stored_fit"], schedules=parsed.get("schedules", ()),
        profiles=parsed.get("profiles", ()))


def _read_json(data: bytes, where: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CalibrationError(f"{where}: not a UTF-8 text file ({e})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CalibrationError(f"{where}: not valid JSON ({e})") from e


def load_calibration_from_dict(raw: dict[str, Any], where: str = "<dict>") -> Calibration:
    """Validate a calibration given as a parsed JSON dict (``where`` names it in errors)."""
    return _parse(raw, where)


def load_calibration(path: str | os.PathLike[str] | None = None) -> Calibration:
    """Load and validate a calibration JSON; ``None``/"" loads the measured table shipped with the package.

    Raises:
        CalibrationError: Missing file, not UTF-8 / JSON, or a field with a bad value (named in the message).
    """
    if not path:
        ref = resources.files("fedsllm_env") / "data" / DEFAULT_CALIBRATION
        if not ref.is_file():
            raise CalibrationError(
                f"the shipped calibration {ref} is missing; run `fedsllm calibrate` to measure one")
        return _parse(_read_json(ref.read_bytes(), str(ref)), str(ref))
    p = Path(path)
    if not p.is_file():
        raise CalibrationError(f"calibration file {p} does not exist (or is not a file); "
                               f"run `fedsllm calibrate --out {p}`")
    return _parse(_read_json(p.read_bytes(), str(p)), str(p))

"""The surrogate's progress model: how far one round at (cut, rank) moves the validation loss, switches included.

Built from a calibration (``fedsllm_env.calibration``), numpy only. Three parts:

**Fixed-decision curves.** Each measured (rank, cut, partition) cell's seed-mean validation-loss curve is fitted
by a smooth, monotone model: ``L(t) = w_0 + sum_k w_k exp(-t / tau_k) + sum_k v_k exp(-(t / tau_k)^2)`` with
non-negative weights (NNLS) over a fixed grid of time constants (:data:`CURVE_TAUS`, rounds), pinned to the
measured initial loss at t = 0. Every term decreases in t, so the fit is non-increasing, has no bumps for a
schedule to ride, and continues past the horizon towards ``w_0`` (a loss below the measured range keeps
improving slowly instead of being pushed back up). The Gaussian terms let a curve start slowly (a fresh
adapter with B = 0 learns little in its first rounds). A cut between measured cuts interpolates the curves
linearly in c.

**Switches.** The state of a run is its clean loss ``L`` and an *effective log2-rank* ``rho``. A round at
rank r first moves ``rho`` towards ``log2 r``: ``rho <- log2 r + (rho - log2 r) exp(-1 / tau)`` with ``tau =
tau_rank_down_rounds`` when the rank went down (the SVD-truncated adapters keep the directions they learned
at the higher rank, so training stays faster than a fresh low-rank run at the same loss) and
``tau_rank_up_rounds`` when it went up (new directions start at B = 0 and take rounds to contribute). The
round then advances by "equivalent progress" on the curve of the effective rank (interpolated in log2 rank
between the configured ranks that bracket ``2^rho``, at the round's cut): the fractional round at which that
curve passes ``L``, plus ``1 - penalty`` rounds, where the penalty is ``cut_move_penalty_rounds`` per block
that crossed the cut and ``rank_change_penalty_rounds`` when the rank changed (both reset optimizer state in
the real engine). With every parameter 0 the model is the memoryless equivalent-progress replay of the fixed
curves. The parameters are fitted to measured switch schedules (``fedsllm calibrate --schedules designed``) and
stored in the calibration file; a table without schedules uses 0 (documented as untested for switches).

**Observation noise.** The reported loss is the clean loss plus AR(1) noise ``e_t = phi e_{t-1} + sqrt(1 -
phi^2) sigma z_t`` (``e_1 = sigma z_1``): seeds of a real run differ persistently, not independently each
round, so i.i.d. noise would end episodes early on lucky draws. ``sigma`` and ``phi`` are the seed-to-seed
residuals' standard deviation (corrected for the mean of n seeds) and lag-1 correlation, from round
:data:`NOISE_FROM_ROUND` on.

:func:`advance` is written for arrays of envs; the single-env backend calls it with arrays of one, so the
single and batched surrogates give the same numbers bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["CURVE_TAUS", "NOISE_FROM_ROUND", "SwitchModel", "NoiseModel", "fit_curve", "curve_at",
           "ProgressTables", "advance", "ar1_noise", "fit_noise", "simulate_schedule", "fit_switch_model",
           "TABLE_HORIZON_FACTOR"]

CURVE_TAUS = tuple(float(2.0 ** k) for k in range(-1, 9))
"""Time constants (rounds) of the fitted curves' exponential and Gaussian terms: 0.5, 1, 2, ..., 256."""
NOISE_FROM_ROUND = 5
"""First round (1-based) of the residuals the noise level is estimated on (the first rounds spread more)."""
TABLE_HORIZON_FACTOR = 1
"""The progress tables hold each fitted curve at integer rounds up to this many times the measured horizon."""


@dataclass(frozen=True)
class SwitchModel:
    """How training reacts to a rank or cut switch (see the module docstring); all 0 = memoryless replay."""

    tau_rank_down_rounds: float = 0.0
    tau_rank_up_rounds: float = 0.0
    cut_move_penalty_rounds: float = 0.0
    rank_change_penalty_rounds: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"SwitchModel.{name} must be a finite number >= 0, got {value!r}")

    def to_dict(self) -> dict[str, float]:
        """Plain dict (JSON)."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class NoiseModel:
    """AR(1) observation noise of the reported validation loss: level ``std`` and lag-1 correlation ``phi``."""

    std: float = 0.0
    phi: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.std) and self.std >= 0):
            raise ValueError(f"NoiseModel.std must be finite and >= 0, got {self.std!r}")
        if not (math.isfinite(self.phi) and 0 <= self.phi < 1):
            raise ValueError(f"NoiseModel.phi must be in [0, 1), got {self.phi!r}")

    def to_dict(self) -> dict[str, float]:
        """Plain dict (JSON)."""
        return {"std": float(self.std), "phi": float(self.phi)}


# ---- fixed-decision curves -----------------------------------------------------------------------------------
def _basis(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=float)[:, None]
    taus = np.asarray(CURVE_TAUS)[None, :]
    return np.concatenate([np.ones_like(t), np.exp(-t / taus), np.exp(-(t / taus) ** 2)], axis=1)


def fit_curve(curves: Sequence[np.ndarray], initial: float) -> np.ndarray:
    """Non-negative weights of the monotone curve model fitted to the mean of ``curves`` (after rounds 1..H).

    The point (0, ``initial``) is weighted 100x so the fit starts at the measured initial loss. Curves shorter
    than the longest (diverged runs) are left out, as in the calibration's mean curve; with none left the
    curve is flat at ``initial``.
    """
    from scipy.optimize import nnls

    horizon = max(len(c) for c in curves)
    full = [np.asarray(c, float) for c in curves if len(c) == horizon]
    if not full:
        weights = np.zeros(1 + 2 * len(CURVE_TAUS))
        weights[0] = float(initial)
        return weights
    y = np.concatenate([[float(initial)], np.mean(full, axis=0)])
    t = np.arange(horizon + 1, dtype=float)
    a = _basis(t)
    row_w = np.ones(horizon + 1)
    row_w[0] = 100.0
    weights, _ = nnls(a * row_w[:, None], y * row_w, maxiter=50 * a.shape[1])
    return weights


def curve_at(weights: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The fitted curve at rounds ``t`` (t = 0: before round 1)."""
    return _basis(np.asarray(t, dtype=float)) @ np.asarray(weights, dtype=float)


# ---- tables used each round ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProgressTables:
    """The fitted curve of every (cut, configured rank) at integer rounds 0..W-1, strictly usable by
    :func:`advance`. Row ``(cut - 1) * R + rank index``; ``log2_ranks`` ascending."""

    table: np.ndarray
    log2_ranks: np.ndarray
    ranks: tuple[int, ...]
    num_splits: int

    @classmethod
    def build(cls, cell_weights: Mapping[tuple[int, int], np.ndarray], measured_splits: Sequence[int],
              ranks: Sequence[int], n_layer: int, horizon: int) -> "ProgressTables":
        """Tables for ``ranks`` and every cut 1..n_layer-1 from the fitted weights of the measured cells
        ``(rank, split) -> weights`` (a cut between measured cuts interpolates linearly in c; beyond, the
        nearest)."""
        ranks = tuple(sorted(int(r) for r in ranks))
        width = TABLE_HORIZON_FACTOR * int(horizon) + 1
        t = np.arange(width, dtype=float)
        splits = sorted(int(c) for c in measured_splits)
        curves = {key: curve_at(w, t) for key, w in cell_weights.items()}
        rows = []
        for c in range(1, n_layer):
            if c <= splits[0] or c >= splits[-1]:
                lo = hi = splits[0] if c <= splits[0] else splits[-1]
                w = 0.0
            else:
                hi = next(x for x in splits if x >= c)
                lo = max(x for x in splits if x <= c)
                w = 0.0 if hi == lo else (c - lo) / (hi - lo)
            for r in ranks:
                row = curves[(r, lo)] if w == 0.0 else (1.0 - w) * curves[(r, lo)] + w * curves[(r, hi)]
                rows.append(np.minimum.accumulate(row))  # exact non-increase against rounding
        return cls(np.asarray(rows), np.log2(np.asarray(ranks, dtype=float)), ranks, n_layer - 1)

    def row_index(self, split: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        """Row of cut ``split`` (1-based) and configured rank index ``rank_idx``."""
        return (np.asarray(split) - 1) * len(self.ranks) + np.asarray(rank_idx)


def _equivalent_round(rows: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Fractional round at which each (non-increasing) row passes ``loss``; 0 above its start, the row's last
    index at or below its end (callers keep such a loss where it is)."""
    width = rows.shape[1]
    b = np.arange(rows.shape[0])
    j = np.count_nonzero(rows >= loss[:, None], axis=1)  # entries at or above the loss
    jc = np.clip(j, 1, width - 1)
    lo, hi = rows[b, jc - 1], rows[b, jc]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(lo > hi, (lo - loss) / (lo - hi), 1.0)
    out = (jc - 1) + np.clip(frac, 0.0, 1.0)
    out = np.where(j == 0, 0.0, out)
    return np.where(j >= width, float(width - 1), out)


def _at(rows: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row at fractional round t (clamped to [0, W-1])."""
    width = rows.shape[1]
    t = np.clip(t, 0.0, float(width - 1))
    i = np.minimum(t.astype(np.int64), width - 2)
    b = np.arange(rows.shape[0])
    fp_i = rows[b, i]
    return fp_i + (rows[b, i + 1] - fp_i) * (t - i)


def _step_on(rows: np.ndarray, loss: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Loss after moving ``gain`` rounds along each row from where it passes ``loss`` (never below the row's end:
    a loss already at or below the row's last value stays; a non-negative gain never raises the loss)."""
    t = _equivalent_round(rows, loss)
    new = _at(rows, t + gain)
    new = np.where(gain >= 0, np.minimum(new, loss), new)
    return np.where(loss <= rows[:, -1], loss, new)


def advance(tables: ProgressTables, switch: SwitchModel | Mapping[str, np.ndarray], loss: np.ndarray,
            rho: np.ndarray, prev_split: np.ndarray, prev_rank_idx: np.ndarray, split: np.ndarray,
            rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One round of every env: clean loss and effective log2-rank after playing (``split``, ``rank_idx``).

    Args:
        tables: The fitted curves.
        switch: The switch parameters (a :class:`SwitchModel`, or a mapping of its field names to arrays of
            one value per env, used when fitting).
        loss: Clean loss before the round, (B,).
        rho: Effective log2-rank before the round (NaN = none yet: the first round of an episode), (B,).
        prev_split, prev_rank_idx: The previous round's decision (-1 = none yet), (B,) int.
        split, rank_idx: This round's cut (1-based) and configured rank index, (B,) int.

    Returns:
        (clean loss, effective log2-rank) after the round, each (B,).
    """
    p = switch.to_dict() if isinstance(switch, SwitchModel) else switch
    target = tables.log2_ranks[rank_idx]
    first = np.isnan(rho)
    d = np.where(first, 0.0, rho - target)
    tau = np.where(d > 0, p["tau_rank_down_rounds"], p["tau_rank_up_rounds"])
    with np.errstate(divide="ignore", over="ignore"):
        keep = np.where(tau > 0, np.exp(-1.0 / np.where(tau > 0, tau, 1.0)), 0.0)
    new_rho = target + d * keep
    started = prev_split >= 0
    moved = np.where(started, np.abs(split - prev_split), 0)
    changed = np.where(started & (rank_idx != prev_rank_idx), 1.0, 0.0)
    gain = 1.0 - p["cut_move_penalty_rounds"] * moved - p["rank_change_penalty_rounds"] * changed
    gain = np.broadcast_to(np.asarray(gain, dtype=float), loss.shape)
    n_ranks = len(tables.ranks)
    if n_ranks == 1:
        k = np.zeros(loss.shape, dtype=np.int64)
        w = np.zeros(loss.shape)
    else:
        k = np.clip(np.searchsorted(tables.log2_ranks, new_rho, side="right") - 1, 0, n_ranks - 2)
        w = np.clip((new_rho - tables.log2_ranks[k]) / (tables.log2_ranks[k + 1] - tables.log2_ranks[k]), 0.0, 1.0)
    lo = _step_on(tables.table[tables.row_index(split, k)], loss, gain)
    if n_ranks == 1 or not np.any(w > 0):
        return lo, new_rho
    hi = _step_on(tables.table[tables.row_index(split, np.minimum(k + 1, n_ranks - 1))], loss, gain)
    return np.where(w > 0, (1.0 - w) * lo + w * hi, lo), new_rho


def ar1_noise(normals: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """AR(1) noise along the last axis from standard normals: ``e_1 = std z_1``, ``e_t = phi e_{t-1} +
    sqrt(1 - phi^2) std z_t``."""
    z = np.asarray(normals, dtype=float)
    out = np.empty_like(z)
    if z.shape[-1] == 0:
        return out
    innov = math.sqrt(1.0 - noise.phi ** 2) * noise.std
    out[..., 0] = noise.std * z[..., 0]
    for t in range(1, z.shape[-1]):
        out[..., t] = noise.phi * out[..., t - 1] + innov * z[..., t]
    return out


def fit_noise(cell_curves: Iterable[Sequence[np.ndarray]]) -> NoiseModel:
    """AR(1) level and lag-1 correlation of the seed-to-seed residuals (each run minus its cell's seed mean),
    rounds :data:`NOISE_FROM_ROUND` onwards, full-length runs of cells with at least two; none: no noise."""
    residuals = []
    for curves in cell_curves:
        horizon = max(len(c) for c in curves)
        full = np.asarray([c for c in curves if len(c) == horizon], dtype=float)
        if len(full) < 2 or horizon <= NOISE_FROM_ROUND:
            continue
        n = len(full)
        res = (full - full.mean(axis=0))[:, NOISE_FROM_ROUND - 1:] * math.sqrt(n / (n - 1))
        residuals.append(res)
    if not residuals:
        return NoiseModel()
    std = float(np.sqrt(np.mean([np.mean(r ** 2) for r in residuals])))
    num = sum(float(np.sum(r[:, 1:] * r[:, :-1])) for r in residuals)
    den = sum(float(np.sum(r[:, :-1] ** 2)) for r in residuals)
    phi = float(np.clip(num / den, 0.0, 0.99)) if den > 0 else 0.0
    return NoiseModel(std=std, phi=phi)


# ---- switch-model fit --------------------------------------------------------------------------------------------
def simulate_schedule(tables: ProgressTables, switch: SwitchModel | Mapping[str, np.ndarray], initial: float,
                      decisions: Sequence[tuple[int, int]], batch: int = 1) -> np.ndarray:
    """Clean loss after each round of ``decisions`` ((split, rank) per round), (batch, rounds); ``batch`` > 1
    when ``switch`` holds one parameter set per env."""
    rank_of = {r: i for i, r in enumerate(tables.ranks)}
    loss = np.full(batch, float(initial))
    rho = np.full(batch, np.nan)
    prev_s = np.full(batch, -1, dtype=np.int64)
    prev_r = np.full(batch, -1, dtype=np.int64)
    out = np.empty((batch, len(decisions)))
    for t, (c, r) in enumerate(decisions):
        s = np.full(batch, int(c), dtype=np.int64)
        k = np.full(batch, rank_of[int(r)], dtype=np.int64)
        loss, rho = advance(tables, switch, loss, rho, prev_s, prev_r, s, k)
        prev_s, prev_r = s, k
        out[:, t] = loss
    return out


TAU_GRID = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 50.0, 100.0)
"""Candidate time constants (rounds) of the switch fit."""
PENALTY_GRID = tuple(float(x) for x in np.arange(0.0, 3.01, 0.25))
"""Candidate penalties (rounds of progress) of the switch fit."""


def fit_switch_model(schedules: Sequence[tuple[ProgressTables, Sequence[tuple[int, int]], np.ndarray]],
                     initial: float, chunk: int = 4096) -> tuple[SwitchModel, dict[str, Any]]:
    """Fit the switch parameters to measured schedules: the least squared error over the full grid
    :data:`TAU_GRID` x :data:`TAU_GRID` x :data:`PENALTY_GRID` x :data:`PENALTY_GRID` (every candidate simulated,
    ``chunk`` at a time; ties go to the earliest candidate, i.e. the smallest parameters).

    Args:
        schedules: (the fixed-decision curves of the schedule's partition, its (split, rank) of each round, the
            measured seed-mean loss after each round) per schedule.
        initial: Loss before round 1.
        chunk: Candidates simulated together.

    Returns:
        (the fitted model, a report: schedules, points, root-mean-square error of the fit and of the memoryless
        model).
    """
    if not schedules:
        return SwitchModel(), {"schedules": 0}
    names = list(SwitchModel().to_dict())
    grids = np.meshgrid(np.asarray(TAU_GRID), np.asarray(TAU_GRID), np.asarray(PENALTY_GRID),
                        np.asarray(PENALTY_GRID), indexing="ij")
    candidates = np.stack([g.ravel() for g in grids], axis=1)  # (n, 4) in the order of ``names``

    def sse(params: np.ndarray) -> np.ndarray:
        p = {name: params[:, i] for i, name in enumerate(names)}
        total = np.zeros(len(params))
        for tables, decisions, measured in schedules:
            n = min(len(decisions), len(measured))
            sim = simulate_schedule(tables, p, initial, list(decisions)[:n], len(params))
            total += np.sum((sim - np.asarray(measured, dtype=float)[None, :n]) ** 2, axis=1)
        return total

    errors = np.concatenate([sse(candidates[i:i + chunk]) for i in range(0, len(candidates), chunk)])
    best = int(np.argmin(errors))
    n_points = sum(min(len(d), len(m)) for _, d, m in schedules)
    report = {"schedules": len(schedules), "points": n_points, "candidates": len(candidates),
              "rmse": math.sqrt(float(errors[best]) / n_points),
              "rmse_memoryless": math.sqrt(float(errors[0]) / n_points)}
    return SwitchModel(**{name: float(candidates[best, i]) for i, name in enumerate(names)}), report

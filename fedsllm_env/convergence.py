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

**Switches.** The state of a run (:class:`ProgressState`) is its underlying loss ``L`` on the fitted curves, an
*effective log2-rank* ``rho`` and a transient ``shock``; a round reports ``L + shock``. What the real engine does at
a switch, and what was measured (``fedsllm calibrate --schedules designed``; docs/surrogate.md):

* a rank *decrease* truncates the adapters by SVD: they keep the directions learned at the higher rank, and
  training goes on faster than a fresh low-rank run at the same loss. ``rho`` keeps ``rank_down_memory`` of the
  log2 drop, and the excess over the played rank fades by ``rank_memory_decay`` a round;
* a rank *increase* pads the adapters (B = 0 in the new directions) and, like a decrease, re-creates every
  optimizer: the first Adam steps move every parameter by about the learning rate, which shows as a loss spike
  that fades over a few rounds and a lasting setback. ``rho`` takes the new rank at once, the equivalent progress
  loses ``rank_up_setback`` of itself (``rank_down_setback`` at a decrease), and ``shock`` grows by
  ``rank_up_shock`` (``rank_down_shock``) times the progress made so far (L0 - L), each per octave of the change
  (``|log2 r' - log2 r|``: 64 -> 8 counts three times 32 -> 16);
* a block crossing the cut resets its optimizer state: ``cut_setback`` and ``cut_shock`` per block;
* the shock fades by ``shock_decay`` a round.

The round then moves one round along the curve of the effective rank (interpolated in log2 rank between the
configured ranks that bracket ``2^rho``, at the round's cut) from the equivalent round where that curve passes
``L``. With every parameter 0 the model is the memoryless equivalent-progress replay of the fixed curves. The
parameters (all in [0, 1]) are fitted by bounded least squares to the measured schedules' seed-mean curves and
stored in the calibration file; a table without schedules uses 0 (switches are then untested).

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
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

__all__ = ["CURVE_TAUS", "SWITCH_MODEL", "NOISE_FROM_ROUND", "SwitchModel", "NoiseModel", "fit_curve", "curve_at",
           "ProgressTables", "ProgressState", "advance", "advance_effective", "PROFILE_FORMS", "PROFILE_FORM",
           "effective_profile",
           "rank_spread", "profile_pace", "fit_profile_slowdown",
           "simulate_profile", "ar1_noise", "fit_noise", "simulate_schedule",
           "simulate_schedules", "fit_switch_model", "TABLE_HORIZON_FACTOR"]

CURVE_TAUS = tuple(float(2.0 ** k) for k in range(-1, 9))
"""Time constants (rounds) of the fitted curves' exponential and Gaussian terms: 0.5, 1, 2, ..., 256."""
SWITCH_MODEL = "octave-scaled-v2"
"""Name of the switch model's form (stored with its parameters: a table fitted to another form is refitted)."""
NOISE_FROM_ROUND = 5
"""First round (1-based) of the residuals the noise level is estimated on (the first rounds spread more)."""
TABLE_HORIZON_FACTOR = 1
"""The progress tables hold each fitted curve at integer rounds up to this many times the measured horizon."""


@dataclass(frozen=True)
class SwitchModel:
    """How training reacts to a rank or cut switch (see the module docstring); all 0 = memoryless replay.

    Every field is a fraction in [0, 1].
    """

    rank_down_memory: float = 0.0
    """Share of a rank decrease's log2 drop the effective rank keeps (the truncated adapters' learned directions)."""
    rank_memory_decay: float = 0.0
    """Share of the remaining excess of the effective rank over the played rank lost each round."""
    rank_up_setback: float = 0.0
    """Share of the equivalent progress lost at a rank increase, per octave (every optimizer state is reset)."""
    rank_down_setback: float = 0.0
    """Share of the equivalent progress lost at a rank decrease, per octave."""
    cut_setback: float = 0.0
    """Share of the equivalent progress lost per block that crosses the cut (its optimizer state is reset)."""
    rank_up_shock: float = 0.0
    """Transient loss added at a rank increase, per octave, as a share of the progress made so far (L0 - L)."""
    rank_down_shock: float = 0.0
    """Transient loss added at a rank decrease, per octave, as a share of the progress made so far."""
    cut_shock: float = 0.0
    """Transient loss added per block that crosses the cut, as a share of the progress made so far."""
    shock_decay: float = 0.0
    """Share of the transient loss that fades each round."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"SwitchModel.{name} must be a number in [0, 1], got {value!r}")

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


def _step_on(rows: np.ndarray, loss: np.ndarray, keep: np.ndarray, pace: np.ndarray | float = 1.0) -> np.ndarray:
    """Loss ``pace`` rounds (1: one round) after the point where each row passes ``loss``, that point first scaled by
    ``keep`` (the share of the equivalent progress kept: 1 = none lost). A loss at or below a row's last value stays
    (never pushed back up); with ``keep`` = 1 the loss never rises."""
    t = _equivalent_round(rows, loss) * keep + pace
    new = _at(rows, t)
    new = np.where(keep >= 1.0, np.minimum(new, loss), new)
    return np.where(loss <= rows[:, -1], loss, new)


class ProgressState(NamedTuple):
    """Per-env state of the progress model (arrays of shape (B,)); the clean loss reported is ``loss + shock``."""

    loss: np.ndarray
    """Underlying loss: where training stands on the fitted curves."""
    rho: np.ndarray
    """Effective log2-rank (NaN before the first round)."""
    shock: np.ndarray
    """Transient loss left by recent switches (fades each round)."""

    @property
    def clean_loss(self) -> np.ndarray:
        """What a round reports before observation noise: ``loss + shock``."""
        return self.loss + self.shock

    @classmethod
    def start(cls, initial_loss: float, batch: int) -> "ProgressState":
        """The state before round 1 of ``batch`` envs."""
        return cls(np.full(batch, float(initial_loss)), np.full(batch, np.nan), np.zeros(batch))


def advance(tables: ProgressTables, switch: SwitchModel | Mapping[str, np.ndarray], state: ProgressState,
            initial_loss: float, prev_split: np.ndarray, prev_rank_idx: np.ndarray, split: np.ndarray,
            rank_idx: np.ndarray) -> ProgressState:
    """One round of every env after playing (``split``, ``rank_idx``).

    Args:
        tables: The fitted curves.
        switch: The switch parameters (a :class:`SwitchModel`, or a mapping of its field names to arrays of
            one value per env, used when fitting).
        state: The state before the round.
        initial_loss: L0, the loss before round 1 (shocks are shares of the progress L0 - L).
        prev_split: The previous round's cut (-1 = none yet).
        prev_rank_idx: The previous round's rank index in ``tables.ranks`` (-1 = none yet).
        split: This round's cut (1-based).
        rank_idx: This round's rank index in ``tables.ranks``.

    Returns:
        The state after the round.
    """
    started = np.asarray(prev_split) >= 0
    prev_log2 = np.where(started, tables.log2_ranks[np.maximum(prev_rank_idx, 0)], np.nan)
    moved = np.where(started, np.abs(split - prev_split), 0).astype(float)
    return advance_effective(tables, switch, state, initial_loss, prev_log2, np.asarray(split, dtype=float),
                             tables.log2_ranks[rank_idx], moved)


def _rows_at_cut(tables: ProgressTables, split: np.ndarray, k: np.ndarray, loss: np.ndarray,
                 keep: np.ndarray, pace: np.ndarray | float = 1.0) -> np.ndarray:
    """:func:`_step_on` along the curve of rank index ``k`` at cut ``split``; a fractional cut (a heterogeneous
    profile's effective cut) interpolates linearly between the curves of the two integer cuts around it."""
    lo = np.floor(split).astype(np.int64)
    frac = split - lo
    out = _step_on(tables.table[tables.row_index(lo, k)], loss, keep, pace)
    if np.any(frac > 0):
        hi = _step_on(tables.table[tables.row_index(np.minimum(lo + 1, tables.num_splits), k)], loss, keep, pace)
        out = np.where(frac > 0, (1.0 - frac) * out + frac * hi, out)
    return out


def advance_effective(tables: ProgressTables, switch: SwitchModel | Mapping[str, np.ndarray],
                      state: ProgressState, initial_loss: float, prev_log2_rank: np.ndarray, split: np.ndarray,
                      log2_rank: np.ndarray, moved: np.ndarray, pace: np.ndarray | float = 1.0) -> ProgressState:
    """:func:`advance` on an effective decision: a (possibly fractional) cut and log2-rank per env.

    ``tables``, ``switch``, ``state`` and ``initial_loss`` are as in :func:`advance`.

    Args:
        prev_log2_rank: The previous round's (effective) log2-rank (NaN = no round yet).
        split: This round's (effective) cut, in [1, L-1] (fractional: the curves of the cuts around it mix).
        log2_rank: This round's (effective) log2-rank (between two configured ranks: their curves mix).
        moved: Blocks that changed sides of the cut since the previous round (0 before the first round).
        pace: Rounds of the curve one round moves along (1; a heterogeneous profile's ranks spread slows it,
            :func:`profile_pace`).

    Returns:
        The state after the round (with integer cuts and configured ranks exactly :func:`advance`'s).
    """
    p = switch.to_dict() if isinstance(switch, SwitchModel) else switch
    loss, rho, shock = state
    target = np.asarray(log2_rank, dtype=float)
    started = ~np.isnan(prev_log2_rank)
    # rank terms scale with the size of the change in octaves (|log2 r' - log2 r|): 64 <-> 8 costs three times
    # 32 <-> 16 (measured: a 32/16 alternation every 2 rounds trains like fixed r = 16, a 64/8 one far slower)
    prev = np.where(started, prev_log2_rank, target)
    octaves = np.abs(target - prev)
    down = np.where(started & (target < prev), octaves, 0.0)
    up = np.where(started & (target > prev), octaves, 0.0)
    # effective rank: a decrease keeps part of the drop, an increase counts at once; the excess fades
    rho = np.where(np.isnan(rho) | (up > 0), target, rho)
    rho = np.where(down > 0, target + p["rank_down_memory"] * (rho - target), rho)
    excess = np.maximum(rho - target, 0.0)
    new_rho = target + excess * (1.0 - p["rank_memory_decay"])
    # equivalent progress kept through the switch, then one round along the effective rank's curve
    lost = (p["rank_up_setback"] * up + p["rank_down_setback"] * down + p["cut_setback"] * moved)
    keep = np.broadcast_to(np.clip(1.0 - np.asarray(lost, dtype=float), 0.0, 1.0), loss.shape)
    n_ranks = len(tables.ranks)
    if n_ranks == 1:
        k = np.zeros(loss.shape, dtype=np.int64)
        w = np.zeros(loss.shape)
    else:
        k = np.clip(np.searchsorted(tables.log2_ranks, new_rho, side="right") - 1, 0, n_ranks - 2)
        w = np.clip((new_rho - tables.log2_ranks[k]) / (tables.log2_ranks[k + 1] - tables.log2_ranks[k]), 0.0, 1.0)
    split = np.broadcast_to(np.asarray(split, dtype=float), loss.shape)
    new_loss = _rows_at_cut(tables, split, k, loss, keep, pace)
    if n_ranks > 1 and np.any(w > 0):
        hi = _rows_at_cut(tables, split, np.minimum(k + 1, n_ranks - 1), loss, keep, pace)
        new_loss = np.where(w > 0, (1.0 - w) * new_loss + w * hi, new_loss)
    # transient: the optimizer-state reset of a switch perturbs the model for a few rounds
    kick = p["rank_up_shock"] * up + p["rank_down_shock"] * down + p["cut_shock"] * moved
    new_shock = shock * (1.0 - p["shock_decay"]) + kick * np.maximum(float(initial_loss) - loss, 0.0)
    return ProgressState(new_loss, new_rho, np.broadcast_to(np.asarray(new_shock, dtype=float), loss.shape))


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
def simulate_schedules(tables: ProgressTables, switch: SwitchModel | Mapping[str, np.ndarray], initial: float,
                       plans: np.ndarray) -> np.ndarray:
    """Clean loss (``loss + shock``) after each round of every env's plan: ``plans`` (B, T, 2) holds (split, rank)
    of each round; returns (B, T)."""
    rank_of = {r: i for i, r in enumerate(tables.ranks)}
    batch, rounds = plans.shape[:2]
    ranks = np.vectorize(rank_of.__getitem__, otypes=[np.int64])(plans[:, :, 1]) if plans.size else plans[:, :, 1]
    state = ProgressState.start(initial, batch)
    prev_s = np.full(batch, -1, dtype=np.int64)
    prev_r = np.full(batch, -1, dtype=np.int64)
    out = np.empty((batch, rounds))
    for t in range(rounds):
        s, k = plans[:, t, 0].astype(np.int64), ranks[:, t]
        state = advance(tables, switch, state, initial, prev_s, prev_r, s, k)
        prev_s, prev_r = s, k
        out[:, t] = state.clean_loss
    return out


def simulate_schedule(tables: ProgressTables, switch: SwitchModel | Mapping[str, np.ndarray], initial: float,
                      decisions: Sequence[tuple[int, int]], batch: int = 1) -> np.ndarray:
    """Clean loss after each round of ``decisions`` ((split, rank) per round), (batch, rounds); ``batch`` > 1
    when ``switch`` holds one parameter set per env."""
    plan = np.asarray(decisions, dtype=np.int64).reshape(1, -1, 2)
    return simulate_schedules(tables, switch, initial, np.repeat(plan, batch, axis=0))


def fit_switch_model(schedules: Sequence[tuple[ProgressTables, Sequence[tuple[int, int]], np.ndarray]],
                     initial: float, starts: int = 6, seed: int = 0) -> tuple[SwitchModel, dict[str, Any]]:
    """Fit the switch parameters to measured schedules: bounded least squares (scipy's ``least_squares``, every
    parameter in [0, 1]) on the residuals between each schedule's simulated clean loss and its measured seed-mean
    loss, from the memoryless model and ``starts`` - 1 random starting points (seeded); the best fit wins.

    Args:
        schedules: (the fixed-decision curves of the schedule's partition, its (split, rank) of each round, the
            measured seed-mean loss after each round) per schedule.
        initial: Loss before round 1.
        starts: Starting points.
        seed: Seed of the random starting points.

    Returns:
        (the fitted model, a report: schedules, points, root-mean-square error of the fit and of the memoryless
        model).
    """
    from scipy.optimize import least_squares

    if not schedules:
        return SwitchModel(), {"schedules": 0}
    names = list(SwitchModel().to_dict())
    by_tables: dict[int, tuple[ProgressTables, list[np.ndarray], list[np.ndarray]]] = {}
    for tables, decisions, measured in schedules:
        g = by_tables.setdefault(id(tables), (tables, [], []))
        g[1].append(np.asarray(list(decisions), dtype=np.int64))
        g[2].append(np.asarray(measured, dtype=float))
    groups = []  # the schedules sharing tables simulated as one batch, cut to their common length
    for tables, plans, measured in by_tables.values():
        n = min(min(len(p) for p in plans), min(len(m) for m in measured))
        groups.append((tables, np.stack([p[:n] for p in plans]), np.stack([m[:n] for m in measured])))

    def batch_residuals(xs: np.ndarray) -> np.ndarray:
        """Residuals of every parameter vector in ``xs`` (m, P), simulated together: (m, points)."""
        out = []
        for tables, plans, measured in groups:
            n_sched = len(plans)
            params = {name: np.repeat(xs[:, i], n_sched) for i, name in enumerate(names)}
            sim = simulate_schedules(tables, params, initial, np.tile(plans, (len(xs), 1, 1)))
            out.append((sim - np.tile(measured, (len(xs), 1))).reshape(len(xs), -1))
        return np.concatenate(out, axis=1)

    def residuals(x: np.ndarray) -> np.ndarray:
        return batch_residuals(np.asarray(x, dtype=float)[None])[0]

    step = 1e-3

    def jacobian(x: np.ndarray) -> np.ndarray:
        """Forward differences (backward at the upper bound), all columns in one batched simulation."""
        x = np.asarray(x, dtype=float)
        h = np.where(x + step <= 1.0, step, -step)
        xs = np.vstack([x, x + np.diag(h)])
        r = batch_residuals(xs)
        return ((r[1:] - r[0]) / h[:, None]).T

    rng = np.random.default_rng(seed)
    x0s = [np.zeros(len(names))] + [rng.uniform(0.0, 0.6, len(names)) for _ in range(max(0, starts - 1))]
    best = None
    for x0 in x0s:
        res = least_squares(residuals, x0, jac=jacobian, bounds=(0.0, 1.0), max_nfev=150)
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    r_fit, r_zero = residuals(best.x), residuals(np.zeros(len(names)))
    report = {"schedules": len(schedules), "points": int(r_fit.size), "starts": len(x0s),
              "rmse": float(np.sqrt(np.mean(r_fit ** 2))), "rmse_memoryless": float(np.sqrt(np.mean(r_zero ** 2)))}
    return SwitchModel(**{name: float(np.clip(v, 0.0, 1.0)) for name, v in zip(names, best.x)}), report


# ---- heterogeneous profiles ------------------------------------------------------------------------------------
PROFILE_FORMS = ("block-mean", "geometric-mean", "global-rank", "min-rank")
"""Candidate maps from a heterogeneous profile to the effective (cut, log2-rank) the curves are read at:

* ``block-mean``: per block j, the mean over clients of the log2-rank of the copy that trains on client k's data
  (r_k when block j runs on client k, j <= c_k, else the MS's global rank r_g), averaged over the L blocks;
* ``geometric-mean``: the mean of log2 r_k over clients (the clients' ranks only);
* ``global-rank``: log2 r_g (the MS's adapter rank);
* ``min-rank``: log2 of the smallest client rank (the weakest client sets the pace).

Every form reads the curves at the mean cut; each gives the homogeneous (c, r) itself."""


PROFILE_FORM = "block-mean"
"""The form the surrogate uses (chosen on the designed profiles' real runs; docs/surrogate.md)."""


def effective_profile(cuts: np.ndarray, ranks: np.ndarray, n_layer: int, form: str = "block-mean",
                      global_rank: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((B,) effective cut, (B,) effective log2-rank) of (B, K) profiles under ``form`` (:data:`PROFILE_FORMS`).

    Args:
        cuts: (B, K) or (K,) cut c_k of every client (blocks 1..c_k on client k).
        ranks: (B, K) or (K,) LoRA rank r_k of every client.
        n_layer: L, the backbone's blocks.
        form: One of :data:`PROFILE_FORMS`.
        global_rank: (B,) the MS's rank r_g (None = max_k r_k).
    """
    cuts = np.atleast_2d(np.asarray(cuts, dtype=float))
    log2 = np.log2(np.atleast_2d(np.asarray(ranks, dtype=float)))
    log2_g = log2.max(axis=1) if global_rank is None else np.log2(np.asarray(global_rank, dtype=float))
    c_eff = cuts.mean(axis=1)
    if form == "block-mean":
        blocks = np.arange(1, int(n_layer) + 1, dtype=float)  # 1-based block j on client k when j <= c_k
        on_client = blocks[None, None, :] <= cuts[:, :, None]  # (B, K, L)
        per = np.where(on_client, log2[:, :, None], log2_g[:, None, None])
        rho = per.mean(axis=(1, 2))
    elif form == "geometric-mean":
        rho = log2.mean(axis=1)
    elif form == "global-rank":
        rho = np.asarray(log2_g, dtype=float)
    elif form == "min-rank":
        rho = log2.min(axis=1)
    else:
        raise ValueError(f"profile form must be one of {list(PROFILE_FORMS)}, got {form!r}")
    return c_eff, rho


def rank_spread(cuts: np.ndarray, ranks: np.ndarray, n_layer: int, global_rank: np.ndarray | None = None) -> np.ndarray:
    """(B,) how unequal the copies aggregated per block are: for each block j, the standard deviation over clients
    of the log2-rank of the copy trained on client k's data (r_k when j <= c_k, else the MS's r_g), averaged over
    the L blocks; 0 when every client has the same rank. (B, K) or (K,) cuts and ranks."""
    cuts = np.atleast_2d(np.asarray(cuts, dtype=float))
    log2 = np.log2(np.atleast_2d(np.asarray(ranks, dtype=float)))
    log2_g = log2.max(axis=1) if global_rank is None else np.log2(np.asarray(global_rank, dtype=float))
    blocks = np.arange(1, int(n_layer) + 1, dtype=float)
    per = np.where(blocks[None, None, :] <= cuts[:, :, None], log2[:, :, None], log2_g[:, None, None])  # (B, K, L)
    return per.std(axis=1).mean(axis=1)


def profile_pace(cuts: np.ndarray, ranks: np.ndarray, n_layer: int, slowdown: float) -> np.ndarray:
    """(B,) rounds of the curve one round of a profile moves along: 1 / (1 + ``slowdown`` x :func:`rank_spread`);
    1 exactly for a shared rank (every copy of a block then covers the same directions, so nothing is averaged
    with a zero-padded or truncated copy)."""
    return 1.0 / (1.0 + float(slowdown) * rank_spread(cuts, ranks, n_layer))


def simulate_profile(tables: ProgressTables, switch: SwitchModel, initial: float, cuts: Sequence[int],
                     ranks: Sequence[int], n_layer: int, rounds: int, form: str = "block-mean",
                     slowdown: float = 0.0) -> np.ndarray:
    """Clean loss after rounds 1..``rounds`` of one fixed heterogeneous profile (no switches: the effective
    decision is the same every round; ``slowdown``: :func:`profile_pace`)."""
    c_eff, rho = effective_profile(np.asarray(cuts), np.asarray(ranks), n_layer, form)
    pace = profile_pace(np.asarray(cuts), np.asarray(ranks), n_layer, slowdown)
    state = ProgressState.start(initial, 1)
    prev = np.full(1, np.nan)
    out = np.empty(int(rounds))
    for t in range(int(rounds)):
        state = advance_effective(tables, switch, state, initial, prev, c_eff, rho, np.zeros(1), pace)
        prev = rho
        out[t] = state.clean_loss[0]
    return out


def fit_profile_slowdown(profiles: Sequence[tuple[ProgressTables, Sequence[int], Sequence[int], np.ndarray]],
                         switch: SwitchModel, initial: float, n_layer: int, form: str = PROFILE_FORM,
                         grid: np.ndarray | None = None) -> tuple[float, dict[str, Any]]:
    """The ``slowdown`` of :func:`profile_pace` that best matches measured profile curves.

    ``switch``, ``initial``, ``n_layer`` and ``form`` are as in :func:`simulate_profile`.

    Args:
        profiles: (tables of the profile's partition, (K,) cuts, (K,) ranks, the seed-mean measured curve).
        grid: candidate values (default: 0, 0.05, ..., 2, then steps of 0.005 within 0.05 of the best of those).

    Returns:
        (slowdown, report): the value with the least squared error of the clean simulated curves against the
        measured ones over every profile and round, and ``{"profiles", "points", "rmse", "rmse_no_slowdown"}``.
    """
    def sse(value: float) -> tuple[float, int]:
        total, n = 0.0, 0
        for tables, cuts, ranks, measured in profiles:
            sim = simulate_profile(tables, switch, initial, cuts, ranks, n_layer, len(measured), form, value)
            total += float(np.sum((sim - measured) ** 2))
            n += len(measured)
        return total, n

    def search(values: np.ndarray) -> tuple[float, float]:
        errors = [sse(float(v))[0] for v in values]
        return float(values[int(np.argmin(errors))]), float(min(errors))

    if grid is None:  # coarse, then fine around the coarse optimum
        coarse, _ = search(np.round(np.arange(0.0, 2.0001, 0.05), 3))
        grid = np.round(np.arange(max(coarse - 0.05, 0.0), coarse + 0.0501, 0.005), 3)
    grid = np.asarray(grid, dtype=float)
    best, best_sse = search(grid)
    n = sse(best)[1]
    return best, {"profiles": len(profiles), "points": n, "rmse": math.sqrt(best_sse / max(n, 1)),
                  "rmse_no_slowdown": math.sqrt(sse(0.0)[0] / max(n, 1)), "grid_step": float(grid[1] - grid[0])
                  if grid.size > 1 else 0.0}

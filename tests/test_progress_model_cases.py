"""Hand-worked cases of the surrogate's progress model (fedsllm_env.convergence) and of the batched surrogate
(fedsllm_env.vector.surrogate) that the behavioural tests left open: a loss sitting on a flat stretch of a curve,
a loss below a curve's end through a switch with a setback, a cut moved down, a shock fading by other than
half, the AR(1) noise's innovation scale, the seed-count correction of the noise level, a cut interpolated at
other than a midpoint, the fit's pin at the initial loss; a reset env of a batch that plays as a fresh one and
the batch's clean loss with its shock.

Each case was checked to fail with a plausible one-line bug in the code it names (a mutation probe).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from fedsllm_env.convergence import (NOISE_FROM_ROUND, NoiseModel, ProgressState, ProgressTables, SwitchModel,
                                     advance, ar1_noise, curve_at, fit_curve, fit_noise)

L0 = 4.0


def _one(x, dtype=float):
    return np.array([x], dtype=dtype)


def _step(tables, switch, loss, prev, now, rho=np.nan, shock=0.0):
    state = ProgressState(_one(loss), _one(rho), _one(shock))
    return advance(tables, switch, state, L0, _one(prev[0], int), _one(prev[1], int), _one(now[0], int),
                   _one(now[1], int))


def _flat_weights(level: float) -> np.ndarray:
    w = np.zeros(1 + 2 * 10)
    w[0] = level
    return w


# ---- where a loss sits on a curve ---------------------------------------------------------------------------------

def test_a_loss_sitting_on_a_flat_stretch_moves_past_it_not_stuck_on_it():
    # one cut, one rank; rounds 2..4 are flat at 2.0: the curve passes 2.0 at round 4, one round later is 1.0
    tables = ProgressTables(np.array([[4.0, 3.0, 2.0, 2.0, 2.0, 1.0]]), np.log2([8.0]), (8,), 1)
    assert _step(tables, SwitchModel(), 2.0, (1, 0), (1, 0), rho=3.0).loss[0] == 1.0
    # on an ordinary entry: 3.0 is round 1, one round later 2.0
    assert _step(tables, SwitchModel(), 3.0, (1, 0), (1, 0), rho=3.0).loss[0] == 2.0
    # between entries: 2.5 is round 1.5, one round later halfway along the flat stretch
    assert _step(tables, SwitchModel(), 2.5, (1, 0), (1, 0), rho=3.0).loss[0] == 2.0


def test_a_loss_below_the_curves_end_stays_through_a_switch_with_a_setback():
    # two cuts of one rank; the loss 0.5 is below both curves' ends (1.0): training does not unlearn, even when
    # a cut switch (or a rank switch) takes back part of the equivalent progress
    row = [4.0, 3.0, 2.0, 1.5, 1.2, 1.0]
    tables = ProgressTables(np.array([row, row]), np.log2([8.0]), (8,), 2)
    st = _step(tables, SwitchModel(cut_setback=0.5), 0.5, (1, 0), (2, 0), rho=3.0)
    assert st.loss[0] == 0.5
    two = ProgressTables(np.array([row, row]), np.log2([4.0, 16.0]), (4, 16), 1)
    st = _step(two, SwitchModel(rank_up_setback=0.6), 0.5, (1, 0), (1, 1), rho=2.0)
    assert st.loss[0] == 0.5


def test_a_cut_moved_down_costs_what_the_same_move_up_costs():
    row = [4.0, 3.0, 2.0, 1.5, 1.2, 1.0]
    tables = ProgressTables(np.array([row, row, row]), np.log2([8.0]), (8,), 3)
    sw = SwitchModel(cut_setback=0.25, cut_shock=0.1)
    up = _step(tables, sw, 2.0, (1, 0), (3, 0), rho=3.0)
    down = _step(tables, sw, 2.0, (3, 0), (1, 0), rho=3.0)
    # two blocks cross the cut either way: keep 1 - 2 x 0.25 of the 2 rounds of progress -> round 1, next 2.0;
    # shock 2 x 0.1 x (L0 - 2.0) = 0.4
    for st in (up, down):
        assert st.loss[0] == pytest.approx(2.0, abs=1e-15)
        assert st.shock[0] == pytest.approx(0.4, abs=1e-15)


def test_the_shock_fades_by_its_decay_share_each_round():
    row = [4.0, 3.0, 2.0, 1.5, 1.2, 1.0]
    tables = ProgressTables(np.array([row]), np.log2([8.0]), (8,), 1)
    st = _step(tables, SwitchModel(shock_decay=0.25), 2.0, (1, 0), (1, 0), rho=3.0, shock=0.4)
    assert st.shock[0] == pytest.approx(0.3, abs=1e-15)  # 0.4 x (1 - 0.25), no new kick without a switch
    assert st.clean_loss[0] == pytest.approx(1.5 + 0.3, abs=1e-15)


# ---- observation noise -------------------------------------------------------------------------------------------

def test_ar1_noise_by_hand():
    # e1 = 2 z1; e_t = 0.6 e_{t-1} + sqrt(1 - 0.36) 2 z_t = 0.6 e_{t-1} + 1.6 z_t
    e = ar1_noise(np.array([[1.0, 1.0, 0.0, -1.0]]), NoiseModel(std=2.0, phi=0.6))
    np.testing.assert_allclose(e[0], [2.0, 2.8, 1.68, 1.008 - 1.6], atol=1e-12)


def test_ar1_noise_is_stationary_at_its_level():
    z = np.random.default_rng(3).standard_normal((4000, 60))
    e = ar1_noise(z, NoiseModel(std=0.5, phi=0.9))
    assert np.std(e[:, -1]) == pytest.approx(0.5, rel=0.05)
    assert np.corrcoef(e[:, -1], e[:, -2])[0, 1] == pytest.approx(0.9, abs=0.02)


def test_fit_noise_corrects_the_residuals_for_the_seed_mean_by_hand():
    # two seeds that differ by +-d from their mean every round: the residuals are +-d, and the seed-to-seed level
    # with the n / (n - 1) correction is d sqrt(2); the lag-1 correlation is 1, clipped to 0.99
    horizon, d = NOISE_FROM_ROUND + 6, 0.05
    base = np.linspace(3.0, 2.0, horizon)
    noise = fit_noise([[base + d, base - d]])
    assert noise.std == pytest.approx(d * math.sqrt(2.0), rel=1e-12)
    assert noise.phi == 0.99
    # three seeds at -d, 0, +d: residual mean square 2 d^2 / 3, corrected by 3 / 2 -> d^2
    noise = fit_noise([[base - d, base, base + d]])
    assert noise.std == pytest.approx(d, rel=1e-12)


# ---- the curves ------------------------------------------------------------------------------------------------

def test_tables_interpolate_a_cut_linearly_at_other_than_midpoints():
    # measured cuts 1 and 4 (flat curves at 3.0 and 6.0): cut 2 is a third of the way, cut 3 two thirds; cut 5 is
    # beyond the measured cuts and takes the nearest
    weights = {(8, 1): _flat_weights(3.0), (8, 4): _flat_weights(6.0)}
    tables = ProgressTables.build(weights, [1, 4], [8], n_layer=6, horizon=5)
    np.testing.assert_allclose(tables.table[:, 0], [3.0, 4.0, 5.0, 6.0, 6.0], atol=1e-12)


def test_the_fitted_curve_is_pinned_to_the_initial_loss():
    # runs that never got below 2.0 from a measured start of 1.0 (a non-increasing curve cannot follow both):
    # the start wins, the curve stays near it
    w = fit_curve([np.full(10, 2.0)], initial=1.0)
    assert curve_at(w, np.array([0.0]))[0] == pytest.approx(1.0, abs=0.01)
    # an ordinary decreasing curve from 4.0 starts at 4.0 to well within the loss noise
    t = np.arange(1, 31)
    w = fit_curve([1.0 + 2.5 * np.exp(-t / 6.0)], initial=4.0)
    assert curve_at(w, np.array([0.0]))[0] == pytest.approx(4.0, abs=0.01)


# ---- the batched surrogate -------------------------------------------------------------------------------------

def _backend(initial, rows, ranks, n_splits, switch, noise=NoiseModel()):
    tables = ProgressTables(np.asarray(rows, dtype=float), np.log2(np.asarray(ranks, dtype=float)), tuple(ranks),
                            n_splits)
    return SimpleNamespace(initial_val_loss=initial, tables=tables, switch=switch, noise=noise)


def test_a_reset_env_of_the_batch_plays_as_a_fresh_one_whatever_it_played_before():
    from fedsllm_env.vector.surrogate import BatchedSurrogate

    # curves that start above the initial loss (a fit may), and switches that cost progress: a reset env that
    # remembered its last decision would take its first round for a switch
    row_a = [4.4, 3.6, 3.0, 2.5, 2.2, 2.0, 1.9, 1.8]
    row_b = [4.6, 3.9, 3.2, 2.8, 2.4, 2.1, 2.0, 1.9]
    sw = SwitchModel(cut_setback=0.3, rank_up_setback=0.3, rank_down_setback=0.3, cut_shock=0.2, rank_up_shock=0.2,
                     rank_down_shock=0.2, shock_decay=0.1)
    backend = _backend(L0, [row_a, row_b, row_b, row_a], (4, 16), 2, sw, NoiseModel(std=0.01, phi=0.5))
    used = BatchedSurrogate(backend, (4, 16), 2, 2, 8)
    used.reset(np.arange(2), np.array([1, 2]))
    for split, rank in [(0, 0), (1, 1), (1, 1)]:
        used.run_round(np.array([split, split]), np.array([rank, rank]))
    used.reset(np.array([1]), np.array([9]))  # env 1 starts over, env 0 plays on
    fresh = BatchedSurrogate(backend, (4, 16), 2, 1, 8)
    fresh.reset(np.array([0]), np.array([9]))
    for split, rank in [(0, 0), (1, 0), (0, 1)]:
        got = used.run_round(np.array([split, split]), np.array([rank, rank]))
        assert got[1] == fresh.run_round(np.array([split]), np.array([rank]))[0]
        assert used.clean_loss[1] == fresh.clean_loss[0]


def test_the_batchs_clean_loss_includes_the_shock_as_the_single_backends_does(calibration_path):
    from fedsllm_env.backends import SurrogateBackend
    from fedsllm_env.calibration import load_calibration
    from fedsllm_env.config import FedsLLMConfig
    from fedsllm_env.vector.surrogate import BatchedSurrogate

    cfg = FedsLLMConfig(mode="surrogate", calibration_path=calibration_path, training={"max_rounds": 12})
    single = SurrogateBackend(load_calibration(calibration_path), cfg)
    single.switch = SwitchModel(rank_up_shock=0.3, rank_down_shock=0.3, cut_shock=0.2, shock_decay=0.2)
    ranks = cfg.model.ranks
    plan = [(0, 0), (0, 0), (0, 0), (2, len(ranks) - 1), (2, len(ranks) - 1), (1, 0)]
    batched = BatchedSurrogate(single, ranks, 5, 1, 12)
    batched.reset(np.array([0]), np.array([4]))
    single.reset(4)
    for split, rank in plan:
        noisy = batched.run_round(np.array([split]), np.array([rank]))[0]
        out = single.run_round(split + 1, ranks[rank])
        assert noisy == out.val_loss
        assert batched.clean_loss[0] == single.clean_loss
        assert batched.state.shock[0] >= 0.0
    assert batched.state.shock[0] > 0.0  # the switches left a shock, so loss and clean loss differ
    assert batched.clean_loss[0] == batched.state.loss[0] + batched.state.shock[0]

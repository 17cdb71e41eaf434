"""Calibration file handling and the surrogate loss model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsllm_env.backends import SurrogateBackend
from fedsllm_env.calibration import fit_rounds_curve, load_calibration
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import CalibrationError


def test_loads_and_interprets_calibration(calibration_path):
    cal = load_calibration(calibration_path)
    assert cal.ranks == FedsLLMConfig().model.ranks == (4, 8, 16, 32, 64)
    assert cal.rounds_needed(4) > cal.rounds_needed(16)
    raw = json.load(open(calibration_path))
    hits = raw["ranks"]["4"]["rounds_to_target"]
    assert cal.rounds_needed(4) == pytest.approx(np.mean(hits))
    # an uncalibrated rank falls back on the fitted a + b r^-c
    f = cal.fit
    assert cal.rounds_needed(12) == pytest.approx(f["a"] + f["b"] * 12 ** -f["c"])


def test_fit_recovers_known_curve():
    ranks = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    fit = fit_rounds_curve(ranks, 5.0 + 20.0 * ranks ** -0.7)
    assert fit["a"] == pytest.approx(5.0, abs=1e-6) and fit["b"] == pytest.approx(20.0, abs=1e-6)
    assert fit["c"] == pytest.approx(0.7, abs=1e-9)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        load_calibration(bad)
    bad.write_text(json.dumps({"version": 1, "model_shape": {}}))
    with pytest.raises(CalibrationError, match="'model_shape' is invalid"):
        load_calibration(bad)


def test_config_rank_not_calibrated_is_an_error(calibration_path):
    cal = load_calibration(calibration_path)
    cfg = FedsLLMConfig.from_dict({"model": {"ranks": [4, 128], "initial_rank": 4}})
    with pytest.raises(CalibrationError, match=r"ranks \[128\]"):
        SurrogateBackend(cal, cfg)


def test_surrogate_follows_the_fitted_curves_and_switches_consistently(calibration_path):
    cal = load_calibration(calibration_path)
    s = SurrogateBackend(cal, FedsLLMConfig())
    s.noise_std = 0.0
    assert s.reset(0) == cal.initial_val_loss
    losses = [s.run_round(1, 4).val_loss for _ in range(5)]
    np.testing.assert_allclose(losses, s.curve(4, 1)[1:6], rtol=0, atol=1e-12)  # a fixed decision replays its curve
    # the fit is smooth and close to the measured seed mean (the synthetic curves wiggle by 0.02)
    assert np.abs(s.curve(4, 1, cal.horizon_rounds)[1:] - cal.mean_curve(4, 1)).max() < 0.06
    assert all(np.diff(losses) <= 0)
    nxt = s.run_round(1, 16).val_loss  # switching rank continues from the current loss, downwards
    assert nxt < losses[-1]


def test_surrogate_noise_is_seeded(calibration_path):
    cal = load_calibration(calibration_path)
    a, b = SurrogateBackend(cal, FedsLLMConfig()), SurrogateBackend(cal, FedsLLMConfig())
    assert a.noise_std > 0
    a.reset(5)
    b.reset(5)
    assert [a.run_round(1, 8).val_loss for _ in range(4)] == [b.run_round(1, 8).val_loss for _ in range(4)]


def _hand_tables():
    from fedsllm_env.convergence import ProgressTables

    rows = np.array([[4.0, 3.0, 2.0, 1.5, 1.0],    # cut 1, rank 4
                     [4.0, 2.0, 1.0, 0.8, 0.7],    # cut 1, rank 16
                     [4.0, 3.5, 3.0, 2.5, 2.0],    # cut 2, rank 4
                     [4.0, 3.0, 2.0, 1.0, 0.5]])   # cut 2, rank 16
    return ProgressTables(rows, np.log2([4.0, 16.0]), (4, 16), 2)


def _one(x, dtype=float):
    return np.array([x], dtype=dtype)


def _step(tables, switch, loss, rho, prev, now, shock=0.0):
    """One advance of one env from (loss, rho, shock) after decision ``prev`` = (split, rank index) to ``now``."""
    from fedsllm_env.convergence import ProgressState, advance

    state = ProgressState(_one(loss), _one(rho), _one(shock))
    return advance(tables, switch, state, 4.0, _one(prev[0], int), _one(prev[1], int), _one(now[0], int),
                   _one(now[1], int))


def test_advance_by_hand_equivalent_progress_memory_setbacks_and_shocks():
    from fedsllm_env.convergence import SwitchModel

    tables = _hand_tables()
    none = SwitchModel()
    # first round: no previous decision, rho is log2 r, one round along the row from the loss
    st = _step(tables, none, 4.0, np.nan, (-1, -1), (1, 0))
    assert st.loss[0] == 3.0 and st.rho[0] == 2.0 and st.shock[0] == 0.0
    # equivalent progress: 3.0 lies at t = 0.5 on rank 16's row, one round later t = 1.5 -> 1.5
    st = _step(tables, none, 3.0, 2.0, (1, 0), (1, 1))
    assert st.loss[0] == 1.5 and st.rho[0] == 4.0
    # a loss already below a row's end stays: training never unlearns
    assert _step(tables, none, 0.9, 2.0, (1, 0), (1, 0)).loss[0] == 0.9
    # rank 16 -> 4 keeping half the log2 drop: rho = 3, halfway between the rows in log2 rank
    st = _step(tables, SwitchModel(rank_down_memory=0.5), 2.0, 4.0, (1, 1), (1, 0))
    assert st.rho[0] == 3.0
    assert st.loss[0] == pytest.approx(0.5 * 1.5 + 0.5 * 1.0, abs=1e-15)  # rank 4: t 2 -> 3; rank 16: t 1 -> 2
    # ... and half the excess fades each round: rho = 2.5, a quarter of the way to rank 16's row
    st = _step(tables, SwitchModel(rank_down_memory=0.5, rank_memory_decay=0.5), 2.0, 4.0, (1, 1), (1, 0))
    assert st.rho[0] == 2.5 and st.loss[0] == pytest.approx(0.75 * 1.5 + 0.25 * 1.0, abs=1e-15)
    # a block crossing the cut loses half of the equivalent progress: cut 2, rank 16 from 3.0 (t = 1) -> t 0.5 + 1
    st = _step(tables, SwitchModel(cut_setback=0.5), 3.0, 4.0, (1, 1), (2, 1))
    assert st.loss[0] == pytest.approx(2.5, abs=1e-15)
    # a rank increase 4 -> 16 (two octaves) adds a transient shock of 2 x 5 % of the progress made (L0 - L = 2.0),
    # which fades by half a round; the underlying loss moves on as without it
    shock = SwitchModel(rank_up_shock=0.05, shock_decay=0.5)
    st = _step(tables, shock, 2.0, 2.0, (1, 0), (1, 1))
    assert st.loss[0] == 1.0 and st.shock[0] == pytest.approx(0.2) and st.clean_loss[0] == pytest.approx(1.2)
    st = _step(tables, shock, 1.0, 4.0, (1, 1), (1, 1), shock=0.2)
    assert st.shock[0] == pytest.approx(0.1) and st.loss[0] == pytest.approx(0.8)
    # setbacks count per octave too: 16 -> 4 at 20 % per octave loses 40 % of the equivalent progress: 2.0 lies at
    # t = 2 on rank 4's row, kept 0.6 x 2 = 1.2, one round on: t = 2.2 -> 2.0 - 0.2 x (2.0 - 1.5) = 1.9
    st = _step(tables, SwitchModel(rank_down_setback=0.2), 2.0, 4.0, (1, 1), (1, 0))
    assert st.loss[0] == pytest.approx(1.9, abs=1e-12)


def test_batched_surrogate_matches_the_single_one_with_switches(calibration_path):
    from fedsllm_env.convergence import SwitchModel
    from fedsllm_env.vector.surrogate import BatchedSurrogate

    cfg = FedsLLMConfig(mode="surrogate", calibration_path=calibration_path, training={"max_rounds": 30})
    single = SurrogateBackend(load_calibration(calibration_path), cfg)
    single.switch = SwitchModel(rank_down_memory=0.4, rank_memory_decay=0.1, rank_up_setback=0.2,
                                rank_down_setback=0.05, cut_setback=0.1, rank_up_shock=0.1, rank_down_shock=0.02,
                                cut_shock=0.03, shock_decay=0.4)
    rng = np.random.default_rng(0)
    ranks = cfg.model.ranks
    rank_idx = rng.integers(0, len(ranks), size=(30, 4))
    split_idx = rng.integers(0, 5, size=(30, 4))
    batched = BatchedSurrogate(single, ranks, 5, 4, 30)
    batched.reset(np.arange(4), np.array([5, 6, 7, 8]))
    got = np.array([batched.run_round(split_idx[t], rank_idx[t]) for t in range(30)])
    for b in range(4):
        single.reset(5 + b)
        expected = [single.run_round(int(split_idx[t, b]) + 1, ranks[rank_idx[t, b]]).val_loss for t in range(30)]
        assert got[:, b].tolist() == expected


def test_switch_fit_recovers_known_parameters_from_noise_free_schedules():
    """Schedules simulated with known switch parameters are fitted back (the residual vanishes), and the fit
    reports a lower error than the memoryless model."""
    from fedsllm_env.convergence import ProgressTables, SwitchModel, fit_switch_model, simulate_schedule
    from fedsllm_env.schedules import parse_schedule

    t = np.arange(41, dtype=float)
    rows = []
    for c in (1, 2):
        for r in (4, 16, 64):
            tau = 30.0 / np.log2(r) * (1.0 + 0.2 * (c - 1))
            rows.append(1.0 + 3.0 * np.exp(-t / tau))
    tables = ProgressTables(np.asarray(rows), np.log2([4.0, 16.0, 64.0]), (4, 16, 64), 2)
    truth = SwitchModel(rank_down_memory=0.4, rank_memory_decay=0.1, rank_up_setback=0.3, cut_setback=0.2,
                        rank_up_shock=0.1, shock_decay=0.5)
    texts = ["c1r64x6;c1r4", "c1r4x8;c1r64", "c1r16x5;c2r16", "c2r64x4;c1r16x4*", "c1r64x10;c1r16",
             "c1r16x12;c1r64", "c2r4x7;c1r4"]
    fits = [(tables, parse_schedule(x).decisions(40),
             simulate_schedule(tables, truth, 4.0, parse_schedule(x).decisions(40))[0]) for x in texts]
    fitted, report = fit_switch_model(fits, 4.0)
    assert report["rmse"] < 1e-6 < report["rmse_memoryless"]
    for name, value in truth.to_dict().items():
        assert getattr(fitted, name) == pytest.approx(value, abs=2e-3), name


def test_a_table_fitted_to_another_switch_model_form_is_refused_with_the_refit_command():
    import json

    from fedsllm_env.calibration import load_calibration_from_dict
    from fedsllm_env.errors import CalibrationError

    with open(load_calibration().path) as f:
        raw = json.load(f)
    raw["progress_model"]["switch_model"] = "per-switch-v1"  # parameters of another meaning
    cal = load_calibration_from_dict(raw, "old.json")
    with pytest.raises(CalibrationError, match="switch_model.*refit"):
        cal.switch_model

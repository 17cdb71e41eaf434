"""The surrogate's model of heterogeneous profiles: effective decision, rank-spread slowdown, its fit and its E."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from fedsllm_env.calibration import (fit_progress_model, load_calibration, load_calibration_from_dict,
                                     progress_model_to_json, rounds_to_target)
from fedsllm_env.convergence import fit_profile_slowdown, profile_pace, rank_spread, simulate_profile
from fedsllm_env.errors import CalibrationError
from fedsllm_env.schedules import DESIGNED_PROFILES, HELD_OUT_PROFILES, parse_profile


def test_pace_is_one_for_a_shared_rank_and_slower_with_spread():
    cuts = np.array([[1, 1, 3, 5, 5], [2] * 5])
    np.testing.assert_array_equal(profile_pace(cuts, np.array([[16] * 5, [4] * 5]), 6, 0.7), [1.0, 1.0])
    # by hand, L = 6: at cut 1 only block 1 holds the clients' own ranks [6, 6, 6, 6, 2]; blocks 2-6 run on the
    # MS at r_g = 64 for everyone (spread 0)
    spread = rank_spread(np.ones(5), np.array([64, 64, 64, 64, 4]), 6)[0]
    assert spread == pytest.approx(np.std([6, 6, 6, 6, 2]) / 6)
    # cuts 5, 5, 3, 1, 1 with ranks 64, 32, 16, 8, 4: blocks 2-3 [6, 5, 4, 6, 6], blocks 4-5 [6, 5, 6, 6, 6]
    deep = rank_spread(np.array([5, 5, 3, 1, 1]), np.array([64, 32, 16, 8, 4]), 6)[0]
    want = (np.std([6, 5, 4, 3, 2]) + 2 * np.std([6, 5, 4, 6, 6]) + 2 * np.std([6, 5, 6, 6, 6])) / 6
    assert deep == pytest.approx(want)
    assert profile_pace(np.ones(5), np.array([64, 64, 64, 64, 4]), 6, 0.5)[0] == pytest.approx(1 / (1 + 0.5 * spread))


@pytest.fixture(scope="module")
def cal():
    return load_calibration()


def test_slowdown_fit_recovers_a_known_value(cal):
    """Curves simulated with slowdown 0.3 are fitted back to 0.3 (the fit is a grid search on the curve error)."""
    tables = cal.progress_tables(cal.ranks, "iid")
    profiles = []
    for text in DESIGNED_PROFILES[:3]:
        cuts, ranks = parse_profile(text).per_client(5)
        curve = simulate_profile(tables, cal.switch_model, cal.initial_val_loss, cuts, ranks, 6, 40, slowdown=0.3)
        profiles.append((tables, cuts, ranks, curve))
    value, report = fit_profile_slowdown(profiles, cal.switch_model, cal.initial_val_loss, 6)
    assert value == pytest.approx(0.3)
    assert report["rmse"] == pytest.approx(0.0, abs=1e-12) and report["rmse_no_slowdown"] > 0.01


def test_a_rank_spread_needs_more_rounds_and_a_shared_rank_does_not(cal):
    tables = cal.progress_tables(cal.ranks, "iid")
    for slowdown in (0.0, 0.5):
        shared = simulate_profile(tables, cal.switch_model, cal.initial_val_loss, [1] * 5, [16] * 5, 6, 30,
                                  slowdown=slowdown)
        np.testing.assert_array_equal(shared, simulate_profile(tables, cal.switch_model, cal.initial_val_loss,
                                                               [1] * 5, [16] * 5, 6, 30))
    mixed = [simulate_profile(tables, cal.switch_model, cal.initial_val_loss, [1] * 5, [64, 64, 16, 16, 4], 6, 30,
                              slowdown=s) for s in (0.0, 0.5)]
    assert np.all(mixed[1] >= mixed[0]) and mixed[1][-1] > mixed[0][-1]


def _with_profiles(cal, slowdown_entries: list[str]):
    """The shipped table's raw dict with fake profile entries: the surrogate's own curves of the profiles at
    slowdown 0.2, so a refit must find 0.2 (test-only numbers)."""
    raw = copy.deepcopy(cal.raw)
    tables = cal.progress_tables(cal.ranks, "iid")
    entries = []
    for text in slowdown_entries:
        cuts, ranks = parse_profile(text).per_client(5)
        curve = simulate_profile(tables, cal.switch_model, cal.initial_val_loss, cuts, ranks, 6, cal.horizon_rounds,
                                 slowdown=0.2)
        entries.append({"profile": parse_profile(text).text, "partition": "iid", "seeds": [0],
                        "rounds_to_target": [rounds_to_target(curve, cal.target_val_loss)],
                        "val_loss_curves": [curve.tolist()], "initial_val_losses": [cal.initial_val_loss]})
    raw["profiles"] = entries
    return raw


def test_refit_stores_the_slowdown_and_the_surrogate_and_table_e_use_it(cal):
    raw = _with_profiles(cal, list(DESIGNED_PROFILES[:2]) + list(HELD_OUT_PROFILES[:1]))
    fresh = load_calibration_from_dict(raw, "<test>")
    fit = fit_progress_model(fresh, fit_switch=False)  # fixed profiles never switch: the switch model is moot
    assert fit["profile_fit"]["zero_pad"]["profiles"] == 2  # held-out profiles never enter the fit
    assert fit["profile_slowdown"] == {"zero_pad": pytest.approx(0.2, abs=0.006)}  # no svd profile: no svd fit
    raw["progress_model"] = json.loads(json.dumps(progress_model_to_json(fit)))
    fitted = load_calibration_from_dict(raw, "<test>")
    assert fitted.profile_slowdown("zero_pad") == pytest.approx(fit["profile_slowdown"]["zero_pad"])
    assert fitted.profile_slowdown("svd") == 0.0
    report = {r["profile"]: r for r in fitted.profile_report()}
    held = parse_profile(HELD_OUT_PROFILES[0]).text
    assert report[held]["held_out"] and abs(report[held]["error"]) <= 0.05
    cuts, ranks = parse_profile(DESIGNED_PROFILES[1]).per_client(5)
    base = load_calibration_from_dict(_strip_slowdown(raw), "<test>")
    assert base.profile_slowdown("zero_pad") == 0.0
    spread = rank_spread(cuts, ranks, 6)[0]
    assert fitted.profile_rounds_needed(cuts, ranks, "iid") == pytest.approx(
        base.profile_rounds_needed(cuts, ranks, "iid") * (1 + fitted.profile_slowdown("zero_pad") * spread))
    assert fitted.profile_rounds_needed([2] * 5, [16] * 5, "iid") == fitted.rounds_needed(16, 2, "iid")


def _strip_slowdown(raw):
    out = copy.deepcopy(raw)
    out["progress_model"].pop("profile_slowdown")
    out["progress_model"].pop("profile_fit")
    return out


def test_bad_stored_slowdown_is_refused(cal):
    raw = _with_profiles(cal, list(DESIGNED_PROFILES[:1]))
    raw["progress_model"] = json.loads(json.dumps(progress_model_to_json(fit_progress_model(
        load_calibration_from_dict(raw, "<test>"), fit_switch=False))))
    bad = copy.deepcopy(raw)
    bad["progress_model"]["profile_slowdown"] = {"zero_pad": -0.1}
    with pytest.raises(CalibrationError, match="profile_slowdown"):
        load_calibration_from_dict(bad, "<test>").profile_slowdown()
    bad["progress_model"]["profile_slowdown"] = 0.1
    with pytest.raises(CalibrationError, match="profile_slowdown"):
        load_calibration_from_dict(bad, "<test>").profile_slowdown()
    bad = copy.deepcopy(raw)
    bad["progress_model"]["profile_fit"]["form"] = "min-rank"
    with pytest.raises(CalibrationError, match="profile form"):
        load_calibration_from_dict(bad, "<test>").profile_slowdown()

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


def test_surrogate_follows_curves_and_switches_ranks_consistently(calibration_path):
    cal = load_calibration(calibration_path)
    s = SurrogateBackend(cal, FedsLLMConfig())
    s.noise_std = 0.0
    assert s.reset(0) == cal.initial_val_loss
    losses = [s.run_round(1, 4).val_loss for _ in range(5)]
    envelope = np.minimum.accumulate(cal.mean_curve(4))
    np.testing.assert_allclose(losses, envelope[:5])
    assert all(np.diff(losses) <= 0)
    # switching rank continues from the current loss: never jumps back up, then follows rank 16's slope
    nxt = s.run_round(1, 16).val_loss
    assert nxt < losses[-1]


def test_surrogate_noise_is_seeded(calibration_path):
    cal = load_calibration(calibration_path)
    a, b = SurrogateBackend(cal, FedsLLMConfig()), SurrogateBackend(cal, FedsLLMConfig())
    assert a.noise_std > 0
    a.reset(5)
    b.reset(5)
    assert [a.run_round(1, 8).val_loss for _ in range(4)] == [b.run_round(1, 8).val_loss for _ in range(4)]


def test_surrogate_walks_through_a_flat_stretch_of_the_envelope(calibration_path):
    # the envelope of a measured mean curve that rose for a few rounds is flat there; a round on it must move
    # past the stretch (a bug restarted the stretch every round: an r = 16 run never reached the target)
    cfg = FedsLLMConfig(mode="surrogate", calibration_path=calibration_path)
    backend = SurrogateBackend(load_calibration(calibration_path), cfg)
    backend._curves[(4, 1)] = np.array([4.0, 3.0, 2.0, 2.0, 2.0, 2.0, 1.5, 1.0])
    backend.noise_std = 0.0
    backend.reset(0)
    losses = [backend.run_round(1, 4).val_loss for _ in range(6)]
    assert losses == [3.0, 2.0, 1.5, 1.0, 1.0, 1.0]
    # entering the stretch from another curve lands at its end as well
    backend._curves[(8, 1)] = np.array([4.0, 2.0, 1.9])
    backend.reset(0)
    assert backend.run_round(1, 8).val_loss == 2.0 and backend.run_round(1, 4).val_loss == 1.5


def test_batched_surrogate_matches_the_single_one_on_flat_stretches(calibration_path):
    from fedsllm_env.vector.surrogate import BatchedSurrogate

    cfg = FedsLLMConfig(mode="surrogate", calibration_path=calibration_path)
    single = SurrogateBackend(load_calibration(calibration_path), cfg)
    single._curves[(4, 1)] = np.array([4.0, 3.0, 2.0, 2.0, 2.0, 2.0, 1.5, 1.0])
    single._curves[(8, 1)] = np.array([4.0, 3.9, 3.9, 2.0, 1.9, 1.9, 1.9])
    rank_idx = np.random.default_rng(0).integers(0, 2, size=(12, 3))  # (round, env): rank 4 or 8
    batched = BatchedSurrogate(single, (4, 8), 1, 3, 12)
    batched.reset(np.arange(3), np.array([5, 6, 7]))
    got = np.array([batched.run_round(np.zeros(3, dtype=np.int64), rank_idx[t]) for t in range(12)])
    for b in range(3):
        single.reset(5 + b)
        expected = [single.run_round(1, (4, 8)[rank_idx[t, b]]).val_loss for t in range(12)]
        assert got[:, b].tolist() == expected

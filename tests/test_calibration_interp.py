"""Calibration lookups (fedsllm_env.calibration): E(r, c) interpolated at cuts that are not midpoints, the bracketing
of the measured cuts, and per-partition statistics that stay per partition.

Synthetic run records (test-only numbers) with exact binary fractions, so every hit round is hand-computed: run
``seed`` of a cell with slope ``s`` has validation loss ``max(4 - s n, 1) + seed * d`` after round n (two seeds; the
target is given, 2.0). Seed 0 reaches 2.0 at n = 2 / s, seed 1 at the first n >= (2 + d) / s.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fedsllm_env.calibration import build_calibration, load_calibration

SHAPE = {"n_layer": 6, "n_embd": 8, "n_head": 2, "vocab_size": 10, "n_inner": 32, "n_positions": 16}
HORIZON = 80
SLOPE = {1: 1 / 4, 2: 1 / 8, 4: 1 / 16, 5: 1 / 16}
"""Slope per cut for rank 4 (rank 16 learns twice as fast) in the iid partition; dirichlet learns half as fast."""
OFFSET = {"iid": 1 / 64, "dirichlet": 1 / 4}
"""Seed 1's constant offset per partition: seed-to-seed std d / sqrt(2) at every round."""


def _curve(slope: float, offset: float) -> list[float]:
    return [max(4.0 - slope * n, 1.0) + offset for n in range(1, HORIZON + 1)]


def _table(tmp_path, cuts, partitions=("iid", "dirichlet"), default="iid", censor=()):
    runs = []
    for part in partitions:
        for rank in (4, 16):
            for c in cuts:
                s = SLOPE[c] * (2 if rank == 16 else 1) / (2 if part == "dirichlet" else 1)
                if (rank, c, part) in censor:
                    s = 1 / 64  # 4 - 80 / 64 = 2.75 at the horizon: never reaches 2.0
                for seed in (0, 1):
                    curve = _curve(s, seed * OFFSET[part])
                    runs.append({"rank": rank, "split": c, "partition": part, "seed": seed, "initial_val_loss": 4.0,
                                 "val_loss_curve": curve, "train_loss_curve": curve})
    data = build_calibration(runs, SHAPE, {}, HORIZON, default, "tests/test_calibration_interp.py", target_val_loss=2.0)
    path = tmp_path / f"cal_{'_'.join(map(str, cuts))}_{default}_{len(censor)}.json"
    path.write_text(json.dumps(data))
    return load_calibration(path)


# Hit rounds, rank 4 (n = ceil((2 + seed d) / s)):
#   iid (d = 1/64):      cut 1 (s 1/4): 8, 9 -> E 8.5;   cut 2 (s 1/8): 16, 17 -> 16.5;
#                        cut 4, 5 (s 1/16): 32, 33 -> 32.5
#   dirichlet (d = 1/4): cut 1 (s 1/8): 16, 18 -> 17;    cut 2 (s 1/16): 32, 36 -> 34;
#                        cut 4, 5 (s 1/32): 64, 72 -> 68
E4 = {"iid": {1: 8.5, 2: 16.5, 4: 32.5, 5: 32.5}, "dirichlet": {1: 17.0, 2: 34.0, 4: 68.0, 5: 68.0}}


def test_hit_rounds_are_the_hand_computed_ones(tmp_path):
    cal = _table(tmp_path, (1, 2, 5))
    assert cal.cells[(4, 1, "iid")].rounds_to_target == (8, 9)
    assert cal.cells[(4, 2, "dirichlet")].rounds_to_target == (32, 36)
    assert cal.cells[(16, 5, "dirichlet")].rounds_to_target == (32, 36)  # twice the slope of rank 4
    for part in OFFSET:
        for c in (1, 2, 5):
            assert cal.rounds_needed(4, c, part) == E4[part][c]


@pytest.mark.parametrize("part", ["iid", "dirichlet"])
def test_e_interpolates_linearly_at_cuts_that_are_not_midpoints(tmp_path, part):
    # measured cuts {1, 4}: cut 2 lies a third of the way, cut 3 two thirds
    cal = _table(tmp_path, (1, 4))
    e1, e4 = E4[part][1], E4[part][4]
    assert cal.rounds_needed(4, 2, part) == pytest.approx(e1 + (e4 - e1) / 3)  # iid 16.5, dirichlet 34.0
    assert cal.rounds_needed(4, 3, part) == pytest.approx(e1 + 2 * (e4 - e1) / 3)  # iid 24.5, dirichlet 51.0
    # the mean curve interpolates the same way between the two cuts' seed-mean curves
    slope = {c: SLOPE[c] / (2 if part == "dirichlet" else 1) for c in (1, 4)}
    mean = {c: np.mean([_curve(slope[c], 0.0), _curve(slope[c], OFFSET[part])], axis=0) for c in (1, 4)}
    np.testing.assert_allclose(cal.mean_curve(4, 2, part), 2 / 3 * mean[1] + 1 / 3 * mean[4], rtol=1e-12)
    np.testing.assert_allclose(cal.mean_curve(4, 3, part), 1 / 3 * mean[1] + 2 / 3 * mean[4], rtol=1e-12)
    np.testing.assert_allclose(cal.mean_curve(4, 4, part), mean[4], rtol=1e-12)


def test_the_bracket_is_the_nearest_measured_cut_on_each_side(tmp_path):
    # measured cuts {1, 2, 5}: cuts 3 and 4 lie between 2 and 5 (not between 1 and 5)
    cal = _table(tmp_path, (1, 2, 5))
    e2, e5 = E4["iid"][2], E4["iid"][5]
    assert cal.rounds_needed(4, 3) == pytest.approx(e2 + (e5 - e2) / 3)  # 21.83
    assert cal.rounds_needed(4, 4) == pytest.approx(e2 + 2 * (e5 - e2) / 3)  # 27.17
    # measured cuts {2, 4}: below the first cut and above the last one, the nearest measured cut, unchanged
    cal = _table(tmp_path, (2, 4))
    assert cal.rounds_needed(4, 1) == E4["iid"][2] and cal.rounds_needed(4, 1, "dirichlet") == E4["dirichlet"][2]
    assert cal.rounds_needed(4, 5) == E4["iid"][4] and cal.rounds_needed(4, 5, "dirichlet") == E4["dirichlet"][4]
    assert cal.rounds_needed(4, 3) == pytest.approx((E4["iid"][2] + E4["iid"][4]) / 2)
    np.testing.assert_array_equal(cal.mean_curve(4, 1), cal.mean_curve(4, 2))
    np.testing.assert_array_equal(cal.mean_curve(4, 5), cal.mean_curve(4, 4))


def test_a_censored_bracket_end_censors_the_interpolation_only_between_its_cuts(tmp_path):
    cal = _table(tmp_path, (1, 2, 5), censor={(4, 5, "iid")})
    assert math.isinf(cal.rounds_needed(4, 5)) and math.isinf(cal.rounds_needed(4, 3))
    assert cal.rounds_needed(4, 2) == E4["iid"][2] and cal.rounds_needed(4, 1) == E4["iid"][1]
    assert cal.rounds_needed(4, 3, "dirichlet") == pytest.approx(34.0 + (68.0 - 34.0) / 3)  # other partition intact
    assert math.isinf(cal.rounds_needed(4))  # pooled over the cuts: a censored seed censors the pool


def test_pooled_e_is_the_mean_of_every_measured_run_of_the_partition(tmp_path):
    cal = _table(tmp_path, (1, 4))
    # iid rank 4: hits 8, 9 (cut 1) and 32, 33 (cut 4): (8 + 9 + 32 + 33) / 4 = 20.5
    assert cal.rounds_needed(4) == pytest.approx(20.5)
    # dirichlet: 16, 18, 64, 72 -> 42.5
    assert cal.rounds_needed(4, None, "dirichlet") == pytest.approx(42.5)


def test_statistics_stay_per_partition(tmp_path):
    cal = _table(tmp_path, (1, 2, 5), default="dirichlet")
    # the default partition is the table's own
    assert cal.rounds_needed(4, 2) == E4["dirichlet"][2] and cal.rounds_needed(4, 2, "iid") == E4["iid"][2]
    assert cal.cells[(4, 2, "iid")].rounds_std == pytest.approx(math.sqrt(0.5))  # hits 16, 17
    assert cal.cells[(4, 2, "dirichlet")].rounds_std == pytest.approx(math.sqrt(8.0))  # hits 32, 36
    # two seeds a constant d apart: seed-to-seed std (ddof 1) d / sqrt(2) at every round, in every cell
    assert cal.loss_std("iid") == pytest.approx(OFFSET["iid"] / math.sqrt(2), rel=1e-9)
    assert cal.loss_std("dirichlet") == pytest.approx(OFFSET["dirichlet"] / math.sqrt(2), rel=1e-9)
    assert cal.loss_std() == cal.loss_std("dirichlet")
    # the surrogate's noise model is fitted per partition too: 16 times the offset, far more noise
    assert cal.noise_model("iid").std * 4 < cal.noise_model("dirichlet").std
    assert cal.noise_model() == cal.noise_model("dirichlet")
    # the interpolation between cuts uses the asked partition's cells only
    np.testing.assert_allclose(cal.mean_curve(4, 3, "iid"),
                               2 / 3 * cal.mean_curve(4, 2, "iid") + 1 / 3 * cal.mean_curve(4, 5, "iid"))

"""Calibration lookups (fedsllm_env.calibration) left open by tests/test_calibration_interp.py: at a measured cut E
is that cut's own, whatever its neighbours did (a censored cut below it censors nothing at or above it).

Each case was checked to fail with a plausible one-line bug in the bracketing (a mutation probe).
"""

from __future__ import annotations

import math

import pytest

from test_calibration_interp import E4, _table


def test_a_censored_cut_below_a_measured_one_leaves_the_measured_cut_its_own_e(tmp_path):
    cal = _table(tmp_path, (1, 2, 5), censor={(4, 1, "iid")})
    assert math.isinf(cal.rounds_needed(4, 1))
    assert cal.rounds_needed(4, 2) == E4["iid"][2]  # measured: its own cell, not a bracket reaching down to cut 1
    assert cal.rounds_needed(4, 3) == pytest.approx(E4["iid"][2] + (E4["iid"][5] - E4["iid"][2]) / 3)
    assert cal.rounds_needed(4, 5) == E4["iid"][5]
    # measured cuts {1, 4, 5} with cut 4 censored: cut 5 is measured and keeps its E
    cal = _table(tmp_path, (1, 4, 5), censor={(4, 4, "iid")})
    assert math.isinf(cal.rounds_needed(4, 4)) and math.isinf(cal.rounds_needed(4, 2))
    assert cal.rounds_needed(4, 5) == E4["iid"][5] and cal.rounds_needed(4, 1) == E4["iid"][1]

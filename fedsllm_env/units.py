"""Unit conversions (pure, numpy-friendly). Everything inside the package is SI."""

from __future__ import annotations

import numpy as np


def db_to_linear(x_db):
    """Convert a power ratio in dB to linear scale."""
    return np.power(10.0, np.asarray(x_db, dtype=float) / 10.0)


def dbm_to_watt(p_dbm):
    """Convert power in dBm to watts."""
    return np.power(10.0, (np.asarray(p_dbm, dtype=float) - 30.0) / 10.0)

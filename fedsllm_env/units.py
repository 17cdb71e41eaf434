"""Unit conversions (pure, numpy-friendly). Everything inside the package is SI."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-12
"""Guard for logs and divisions."""


def db_to_linear(x_db):
    """Convert a power ratio in dB to linear scale."""
    return np.power(10.0, np.asarray(x_db, dtype=float) / 10.0)


def linear_to_db(x):
    """Convert a linear power ratio to dB (floored at EPSILON)."""
    return 10.0 * np.log10(np.maximum(np.asarray(x, dtype=float), EPSILON))


def dbm_to_watt(p_dbm):
    """Convert power in dBm to watts."""
    return np.power(10.0, (np.asarray(p_dbm, dtype=float) - 30.0) / 10.0)


def watt_to_dbm(p_w):
    """Convert power in watts to dBm."""
    return 10.0 * np.log10(np.maximum(np.asarray(p_w, dtype=float), EPSILON)) + 30.0

"""Batched water-filling on parallel Gaussian subchannels of equal bandwidth (numpy only).

A client that owns subchannels with *inverse SNR coefficients* ``a_i = N0 B / g_i`` (W; the power that
would give an SNR of 1) gets the rate ``R(p) = sum_i B log2(1 + p_i / a_i)`` from the powers ``p_i``.
Two classic problems are solved exactly here, vectorised over any leading batch axes:

- :func:`max_rate_for_power`: maximise ``R(p)`` s.t. ``sum p_i <= P`` (water level
  ``nu = (P + sum_{i<=m} a_i) / m``);
- :func:`min_power_for_rate`: minimise ``sum p_i`` s.t. ``R(p) >= R`` (water level
  ``log2 nu = (R / B + sum_{i<=m} log2 a_i) / m``).

Both have the solution ``p_i = (nu - a_i)^+``. With the ``a_i`` sorted ascending, the active set is
the prefix ``1..m*`` where ``m*`` is the number of indices ``m`` with ``a_m < nu_m`` (``nu_m`` computed
from the first ``m`` channels); the valid indices always form a prefix, so counting them is exact.
Subchannels a client does not own are marked with ``a_i = inf`` and never become active.
"""

from __future__ import annotations

import numpy as np

__all__ = ["inverse_snr_w", "max_rate_for_power", "min_power_for_rate", "powers_from_level"]


def inverse_snr_w(gain: np.ndarray, bandwidth_hz: float, n0_w_per_hz: float) -> np.ndarray:
    """``N0 B / g`` in W for every (client, subchannel); ``inf`` where the gain is 0."""
    gain = np.asarray(gain, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(gain > 0, n0_w_per_hz * bandwidth_hz / np.maximum(gain, 1e-300), np.inf)


def _broadcast(sorted_inv_snr_w: np.ndarray, value: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast (..., S) coefficients and (...) values to a common batch shape."""
    a = np.asarray(sorted_inv_snr_w, dtype=float)
    v = np.asarray(value, dtype=float)
    batch = np.broadcast_shapes(a.shape[:-1], v.shape)
    return np.broadcast_to(a, batch + a.shape[-1:]), np.broadcast_to(v, batch)


def _prefix_count(valid: np.ndarray) -> np.ndarray:
    return np.sum(valid, axis=-1)


def max_rate_for_power(sorted_inv_snr_w: np.ndarray, power_w: np.ndarray | float,
                       bandwidth_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Best rate from a power budget by water-filling.

    Args:
        sorted_inv_snr_w: (..., S) inverse SNR coefficients sorted ascending along the last axis, W
            (``inf`` = subchannel not usable).
        power_w: (...) power budget, W (batch axes of both arguments broadcast).
        bandwidth_hz: bandwidth of one subchannel, Hz.

    Returns:
        ``(rate_bps (...), level_w (...))``: the achieved rate, bit/s, and the water level ``nu``, W
        (``0`` where no subchannel is active).
    """
    a, power = _broadcast(sorted_inv_snr_w, power_w)
    m = np.arange(1, a.shape[-1] + 1, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        nu_m = (power[..., None] + np.cumsum(a, axis=-1)) / m
        count = _prefix_count(a < nu_m)
    idx = np.maximum(count - 1, 0)[..., None]
    nu = np.where(count > 0, np.take_along_axis(nu_m, idx, axis=-1)[..., 0], 0.0)
    active = np.arange(a.shape[-1]) < count[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(active, np.log2(np.where(active, nu[..., None] / a, 1.0)), 0.0)
    return bandwidth_hz * np.sum(terms, axis=-1), nu


def min_power_for_rate(sorted_inv_snr_w: np.ndarray, rate_bps: np.ndarray | float,
                       bandwidth_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Least total power reaching a rate by water-filling.

    Args:
        sorted_inv_snr_w: (..., S) inverse SNR coefficients sorted ascending along the last axis, W.
        rate_bps: (...) required rate, bit/s, batch axes broadcast (``inf`` or a rate needing an overflowing level gives
            ``inf`` power).
        bandwidth_hz: bandwidth of one subchannel, Hz.

    Returns:
        ``(power_w (...), level_w (...))``: the minimum power, W (``inf`` if the rate is positive
        and no subchannel is usable), and the water level ``nu``, W (``0`` for a zero rate).
    """
    a, rate = _broadcast(sorted_inv_snr_w, rate_bps)
    m = np.arange(1, a.shape[-1] + 1, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log2a = np.log2(a)
        log2nu_m = (rate[..., None] / bandwidth_hz + np.cumsum(log2a, axis=-1)) / m
        count = _prefix_count(log2a < log2nu_m)
        idx = np.maximum(count - 1, 0)[..., None]
        log2nu = np.take_along_axis(log2nu_m, idx, axis=-1)[..., 0]
        nu = np.where(count > 0, np.exp2(log2nu), 0.0)
        active = np.arange(a.shape[-1]) < count[..., None]
        power = np.sum(np.where(active, nu[..., None] - np.where(active, a, 0.0), 0.0), axis=-1)
    power = np.where((count == 0) & (rate > 0), np.inf, power)
    power = np.where(np.isnan(power), np.inf, power)
    return power, nu


def powers_from_level(inv_snr_w: np.ndarray, level_w: np.ndarray) -> np.ndarray:
    """Per-subchannel powers ``(nu - a_i)^+`` in the *original* (unsorted) order, W.

    Args:
        inv_snr_w: (..., S) inverse SNR coefficients (``inf`` = not owned), any order, W.
        level_w: (...) water level of each row, W.

    Returns:
        (..., S) powers, W (0 on unowned subchannels).
    """
    a = np.asarray(inv_snr_w, dtype=float)
    nu = np.asarray(level_w, dtype=float)[..., None]
    with np.errstate(invalid="ignore"):
        p = np.where(np.isfinite(a), np.maximum(nu - np.where(np.isfinite(a), a, 0.0), 0.0), 0.0)
    return p

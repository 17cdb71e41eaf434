"""Channel model ``"umi"``: 3GPP TR 38.901 Urban Micro street-canyon large-scale gain over the default fading.

Large-scale part (3GPP TR 38.901, Section 7.4; base-station height h_BS = 10 m, user height h_UT = 1.5 m,
carrier ``WirelessConfig.carrier_frequency_hz`` = f_c, valid for 0.5-100 GHz and 10 m <= d_2D <= 5 km):

- LOS probability, Table 7.4.2-1 (UMi street canyon):
  Pr_LOS = 1 for d_2D <= 18 m, else 18 / d_2D + exp(-d_2D / 36) (1 - 18 / d_2D);
- LOS path loss, Table 7.4.1-1, with breakpoint d'_BP = 4 h'_BS h'_UT f_c / c, h' = h - 1 m,
  c = 3e8 m/s:  PL1 = 32.4 + 21 log10(d_3D) + 20 log10(f_c / 1 GHz) for d_2D <= d'_BP,
  PL2 = 32.4 + 40 log10(d_3D) + 20 log10(f_c / 1 GHz) - 9.5 log10(d'_BP^2 + (h_BS - h_UT)^2) beyond;
  shadow fading std 4 dB;
- NLOS path loss, Table 7.4.1-1: PL = max(PL_LOS, 35.3 log10(d_3D) + 22.4 + 21.3 log10(f_c / 1 GHz)
  - 0.3 (h_UT - 1.5)); shadow fading std 7.82 dB.

Per episode each client draws u_k ~ U(0, 1) and z_k ~ N(0, 1): it is LOS while u_k < Pr_LOS(d_2D), and
its shadowing is z_k times the std of its current state. So a client's LOS state and shadowing stay fixed
while it stays put and change consistently with its distance when it moves (a simplification of the
spatially consistent procedure of TR 38.901 Section 7.6.3). ``WirelessConfig.shadowing_std_db`` is not
used: the table fixes the std per state. Small-scale fading, mobility and device load are those of the
default model (:mod:`fedsllm_env.channel.macro`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsllm_env.channel.macro import MacroChannel, drop_clients
from fedsllm_env.config import ComputeConfig, WirelessConfig
from fedsllm_env.errors import ConfigError
from fedsllm_env.units import db_to_linear

__all__ = ["UMI_BS_HEIGHT_M", "UMI_UT_HEIGHT_M", "umi_los_probability", "umi_path_loss_db", "umi_shadowing_std_db",
           "UMiCell", "UMiChannel"]

UMI_BS_HEIGHT_M = 10.0
"""h_BS of the UMi street-canyon scenario (TR 38.901 Table 7.4.1-1), m."""
UMI_UT_HEIGHT_M = 1.5
"""h_UT used here (TR 38.901 allows 1.5-22.5 m), m."""
_ENV_HEIGHT_M = 1.0  # h_E of the UMi breakpoint distance
_LIGHT_SPEED_MPS = 3.0e8
_SIGMA_LOS_DB, _SIGMA_NLOS_DB = 4.0, 7.82


def umi_los_probability(d2d_m: np.ndarray) -> np.ndarray:
    """LOS probability of TR 38.901 Table 7.4.2-1 (UMi street canyon) at 2-D distances in m."""
    d = np.maximum(np.asarray(d2d_m, dtype=float), 1e-9)
    p = 18.0 / d + np.exp(-d / 36.0) * (1.0 - 18.0 / d)
    return np.where(d <= 18.0, 1.0, p)


def umi_path_loss_db(d2d_m: np.ndarray, carrier_hz: float, los: np.ndarray) -> np.ndarray:
    """UMi street-canyon path loss of TR 38.901 Table 7.4.1-1 in dB (LOS where ``los``, else NLOS)."""
    h_bs, h_ut = UMI_BS_HEIGHT_M, UMI_UT_HEIGHT_M
    d2d = np.asarray(d2d_m, dtype=float)
    d3d = np.sqrt(d2d**2 + (h_bs - h_ut) ** 2)
    fc_ghz = carrier_hz / 1e9
    d_bp = 4.0 * (h_bs - _ENV_HEIGHT_M) * (h_ut - _ENV_HEIGHT_M) * carrier_hz / _LIGHT_SPEED_MPS
    pl1 = 32.4 + 21.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz)
    pl2 = 32.4 + 40.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz) - 9.5 * np.log10(d_bp**2 + (h_bs - h_ut) ** 2)
    pl_los = np.where(d2d <= d_bp, pl1, pl2)
    pl_nlos = np.maximum(pl_los, 35.3 * np.log10(d3d) + 22.4 + 21.3 * np.log10(fc_ghz) - 0.3 * (h_ut - 1.5))
    return np.where(los, pl_los, pl_nlos)


def umi_shadowing_std_db(los: np.ndarray) -> np.ndarray:
    """Shadow-fading std of TR 38.901 Table 7.4.1-1: 4 dB LOS, 7.82 dB NLOS."""
    return np.where(los, _SIGMA_LOS_DB, _SIGMA_NLOS_DB)


@dataclass(frozen=True)
class UMiCell:
    """Hidden per-episode draw of the UMi model (``Scenario.hidden``)."""

    positions_m: np.ndarray
    """(K, 2) client positions at the start of the episode, m."""
    los_uniform: np.ndarray
    """(K,) u_k ~ U(0, 1): client k is LOS while u_k < Pr_LOS(d_2D)."""
    shadowing_normal: np.ndarray
    """(K,) z_k ~ N(0, 1): shadowing = z_k x the std of the current LOS/NLOS state, dB."""


class UMiChannel(MacroChannel):
    """The default fading/mobility/load dynamics with the UMi street-canyon large-scale gain (module docstring).

    Raises:
        ConfigError: the cell leaves the model's validity range (d_2D in [10 m, 5 km], f_c in [0.5, 100] GHz).
    """

    def __init__(self, wireless: WirelessConfig, compute: ComputeConfig):
        super().__init__(wireless, compute)
        if wireless.min_distance_m < 10.0 or wireless.cell_radius_m > 5000.0:
            raise ConfigError("channel_model='umi' is defined for 10 m <= d_2D <= 5 km: WirelessConfig needs "
                              f"min_distance_m >= 10 and cell_radius_m <= 5000, got {wireless.min_distance_m} "
                              f"and {wireless.cell_radius_m}")
        if not 0.5e9 <= wireless.carrier_frequency_hz <= 100e9:
            raise ConfigError("channel_model='umi' is defined for 0.5-100 GHz: WirelessConfig.carrier_frequency_hz "
                              f"must be in [5e8, 1e11], got {wireless.carrier_frequency_hz!r}")

    def draw_cell(self, rng: np.random.Generator) -> UMiCell:
        """Positions (uniform in the annulus), then u_k, then z_k."""
        w = self.wireless
        positions = drop_clients(rng, w.num_clients, w.cell_radius_m, w.min_distance_m)
        return UMiCell(positions, rng.random(w.num_clients), rng.standard_normal(w.num_clients))

    def large_scale_gain(self, positions_m: np.ndarray, cell: object) -> np.ndarray:
        """(K,) 10^(-(PL + z_k sigma) / 10) with each client's LOS state at its current distance."""
        assert isinstance(cell, UMiCell)
        d2d = np.sqrt((positions_m**2).sum(axis=-1))
        los = cell.los_uniform < umi_los_probability(d2d)
        pl = umi_path_loss_db(d2d, self.wireless.carrier_frequency_hz, los)
        return db_to_linear(-(pl + cell.shadowing_normal * umi_shadowing_std_db(los)))

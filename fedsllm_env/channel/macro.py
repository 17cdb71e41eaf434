"""The default channel model ``"macro"``: macro-cell path loss, log-normal shadowing, Gauss-Markov Rayleigh fading.

Model (defaults in :class:`~fedsllm_env.config.WirelessConfig`):
- clients dropped uniformly (by area) in an annulus [min_distance_m, cell_radius_m] around the AP;
- path loss 128.1 + 37.6 log10(d_km) dB (the macro-cell model of 3GPP TR 36.814, Annex A.2.1.1.2),
  log-normal shadowing with ``shadowing_std_db`` (drawn once per episode);
- Rayleigh small-scale fading per (client, subchannel), Gauss-Markov in time:
  h_t = rho h_{t-1} + sqrt(1 - rho^2) w_t, w_t ~ CN(0, 1);
- optional random-direction mobility, reflected at the cell edge;
- device load: AR(1) around ``load_mean`` clipped to [0, load_max].

The math lives in pure numpy functions that broadcast over leading (batch) axes; :class:`MacroChannel`
strings them together in a fixed draw order (the order is part of the model: same seed, same episode).
Subclasses change the large-scale gain only (see :mod:`fedsllm_env.channel.umi`) by overriding
:meth:`MacroChannel.draw_cell` and :meth:`MacroChannel.large_scale_gain`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsllm_env.channel.base import draw_devices, initial_load, step_load
from fedsllm_env.config import ComputeConfig, WirelessConfig
from fedsllm_env.types import ChannelState, Scenario
from fedsllm_env.units import db_to_linear

__all__ = [
    "path_loss_db",
    "drop_clients",
    "draw_rayleigh",
    "evolve_fading",
    "large_scale_gain",
    "channel_gain",
    "move_clients",
    "CellDraw",
    "FadingState",
    "MacroChannel",
]


def path_loss_db(distance_m: np.ndarray) -> np.ndarray:
    """Path loss 128.1 + 37.6 log10(d / 1 km) in dB for distances in metres (clamped at 1 m)."""
    d_km = np.maximum(np.asarray(distance_m, dtype=float), 1.0) / 1000.0
    return 128.1 + 37.6 * np.log10(d_km)


def drop_clients(rng: np.random.Generator, num_clients: int, radius_m: float, min_distance_m: float) -> np.ndarray:
    """(K, 2) positions uniform by area in the annulus [min_distance_m, radius_m], m."""
    u = rng.random(num_clients)
    r = np.sqrt(u * (radius_m**2 - min_distance_m**2) + min_distance_m**2)
    theta = rng.uniform(0.0, 2.0 * np.pi, num_clients)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)


def draw_rayleigh(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Complex CN(0, 1) samples, so |h|^2 ~ Exp(1)."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)


def evolve_fading(h: np.ndarray, rho: float, innovation: np.ndarray) -> np.ndarray:
    """One Gauss-Markov step h' = rho h + sqrt(1 - rho^2) w with w ~ CN(0, 1) given; keeps the CN(0, 1) marginal."""
    return rho * h + np.sqrt(max(0.0, 1.0 - rho * rho)) * innovation


def large_scale_gain(positions_m: np.ndarray, shadowing_db: np.ndarray) -> np.ndarray:
    """(..., K) linear large-scale gain 10^(-(PL(d) + shadowing) / 10) for (..., K, 2) positions in m."""
    distance = np.sqrt((positions_m**2).sum(axis=-1))
    return db_to_linear(-(path_loss_db(distance) + shadowing_db))


def channel_gain(large_scale: np.ndarray, fading: np.ndarray) -> np.ndarray:
    """(..., K, S) linear gain = large-scale gain (..., K) * |h|^2 (..., K, S)."""
    return large_scale[..., None] * (fading.real**2 + fading.imag**2)


def move_clients(rng: np.random.Generator, positions_m: np.ndarray, cfg: WirelessConfig) -> np.ndarray:
    """Random-direction move of ``speed * interval`` metres of (..., K, 2) positions, kept inside the annulus.

    Returns ``positions_m`` itself (no draw) when ``mobility_speed_mps`` is 0.
    """
    if cfg.mobility_speed_mps <= 0:
        return positions_m
    step = cfg.mobility_speed_mps * cfg.mobility_interval_s
    theta = rng.uniform(0.0, 2.0 * np.pi, positions_m.shape[:-1])
    moved = positions_m + step * np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    r = np.linalg.norm(moved, axis=-1, keepdims=True)
    # reflect radially at both borders of the annulus
    r_new = np.where(r > cfg.cell_radius_m, 2 * cfg.cell_radius_m - r, r)
    r_new = np.where(r_new < cfg.min_distance_m, 2 * cfg.min_distance_m - r_new, r_new)
    r_new = np.clip(r_new, cfg.min_distance_m, cfg.cell_radius_m)
    return moved / np.maximum(r, 1e-9) * r_new


@dataclass(frozen=True)
class CellDraw:
    """Hidden per-episode draw of the macro model (``Scenario.hidden``)."""

    positions_m: np.ndarray
    """(K, 2) client positions at the start of the episode, m."""
    shadowing_db: np.ndarray
    """(K,) log-normal shadowing, dB."""


@dataclass(frozen=True)
class FadingState:
    """Hidden per-round state of the fading models (what :meth:`MacroChannel.observe` reads)."""

    fading_ms: np.ndarray
    """(K, M) complex small-scale fading on the MS link."""
    fading_fs: np.ndarray
    """(K, N) complex small-scale fading on the FS link."""
    positions_m: np.ndarray
    """(K, 2) client positions this round, m."""
    large_scale_gain: np.ndarray
    """(K,) path loss and shadowing as a linear gain (kept while clients do not move)."""
    load: np.ndarray
    """(K,) device load this round."""


class MacroChannel:
    """The default model (module docstring); the draw order below fixes every episode for a seed.

    Args:
        wireless: cell geometry, shadowing, fading correlation, mobility, K, M, N.
        compute: device ranges and the load process.
    """

    def __init__(self, wireless: WirelessConfig, compute: ComputeConfig):
        self.wireless = wireless
        self.compute = compute

    # ---- large-scale hooks (the only part a path-loss variant changes) ---------------------------
    def draw_cell(self, rng: np.random.Generator) -> object:
        """Per-episode hidden draw: positions (uniform in the annulus), then shadowing N(0, std^2) dB."""
        w = self.wireless
        positions = drop_clients(rng, w.num_clients, w.cell_radius_m, w.min_distance_m)
        return CellDraw(positions, rng.normal(0.0, w.shadowing_std_db, w.num_clients))

    def large_scale_gain(self, positions_m: np.ndarray, cell: object) -> np.ndarray:
        """(K,) linear large-scale gain of clients at ``positions_m`` for the episode draw ``cell``."""
        assert isinstance(cell, CellDraw)
        return large_scale_gain(positions_m, cell.shadowing_db)

    # ---- protocol ----------------------------------------------------------------------------------
    def draw_scenario(self, rng: np.random.Generator) -> Scenario:
        """Hidden cell draw first, then the devices (f_k, kappa_k)."""
        cell = self.draw_cell(rng)
        return draw_devices(rng, self.wireless, self.compute, hidden=cell)

    def _cell(self, scenario: Scenario) -> object:
        if scenario.hidden is None:
            raise ValueError(f"{type(self).__name__} needs a scenario drawn by its own draw_scenario "
                              "(this one has no hidden channel draw: rebuilt from an observation?)")
        return scenario.hidden

    def initial_state(self, rng: np.random.Generator, scenario: Scenario) -> FadingState:
        """Stationary fading on both links (MS, then FS), then the first load."""
        cell = self._cell(scenario)
        k, w = scenario.num_clients, self.wireless
        h_ms = draw_rayleigh(rng, (k, w.num_subchannels_ms))
        h_fs = draw_rayleigh(rng, (k, w.num_subchannels_fs))
        load = initial_load(rng, k, self.compute)
        pos = cell.positions_m  # type: ignore[attr-defined]
        return FadingState(h_ms, h_fs, pos, self.large_scale_gain(pos, cell), load)

    def next_state(self, rng: np.random.Generator, state: FadingState, scenario: Scenario) -> FadingState:
        """Move clients (if mobile), then one Gauss-Markov step on both links and one AR(1) load step."""
        pos = move_clients(rng, state.positions_m, self.wireless)
        k, m = state.fading_ms.shape
        n = state.fading_fs.shape[1]
        # one draw for both links and the load keeps the step cheap: real parts, imaginary parts, load noise
        z = rng.standard_normal(2 * k * (m + n) + k)
        w = (z[: k * (m + n)] + 1j * z[k * (m + n): 2 * k * (m + n)]) / np.sqrt(2.0)
        rho = self.wireless.fading_correlation
        h_ms = evolve_fading(state.fading_ms, rho, w[: k * m].reshape(k, m))
        h_fs = evolve_fading(state.fading_fs, rho, w[k * m:].reshape(k, n))
        load = step_load(state.load, self.compute, z[-k:])
        ls = state.large_scale_gain if pos is state.positions_m else self.large_scale_gain(pos, self._cell(scenario))
        return FadingState(h_ms, h_fs, pos, ls, load)

    def observe(self, state: FadingState) -> ChannelState:
        """Gains = large-scale gain x |h|^2 per subchannel, and the loads."""
        return ChannelState(channel_gain(state.large_scale_gain, state.fading_ms),
                            channel_gain(state.large_scale_gain, state.fading_fs), state.load)

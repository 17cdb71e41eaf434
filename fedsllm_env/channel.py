"""Wireless channel and device-load dynamics (pure numpy; randomness only through a passed Generator).

Model (defaults in :class:`~fedsllm_env.config.WirelessConfig`):
- clients dropped uniformly (by area) in an annulus [min_distance_m, cell_radius_m] around the AP;
- path loss 128.1 + 37.6 log10(d_km) dB, log-normal shadowing (drawn once per episode);
- Rayleigh small-scale fading per (client, subchannel), Gauss-Markov in time:
  h_t = rho h_{t-1} + sqrt(1 - rho^2) w_t, w_t ~ CN(0, 1);
- optional random-direction mobility, reflected at the cell edge;
- device load: AR(1) around ``load_mean`` clipped to [0, load_max].
"""

from __future__ import annotations

import numpy as np

from fedsllm_env.config import ComputeConfig, WirelessConfig
from fedsllm_env.types import ChannelState, Scenario
from fedsllm_env.units import db_to_linear, dbm_to_watt

__all__ = [
    "path_loss_db",
    "drop_clients",
    "draw_rayleigh",
    "evolve_fading",
    "large_scale_gain",
    "channel_gain",
    "step_load",
    "move_clients",
    "make_scenario",
    "initial_channel",
    "next_channel",
]


def path_loss_db(distance_m: np.ndarray) -> np.ndarray:
    """Path loss 128.1 + 37.6 log10(d / 1 km) in dB for distances in metres."""
    d_km = np.maximum(np.asarray(distance_m, dtype=float), 1.0) / 1000.0
    return 128.1 + 37.6 * np.log10(d_km)


def drop_clients(rng: np.random.Generator, num_clients: int, radius_m: float, min_distance_m: float) -> np.ndarray:
    """(K, 2) positions uniform by area in the annulus [min_distance_m, radius_m], m."""
    u = rng.random(num_clients)
    r = np.sqrt(u * (radius_m**2 - min_distance_m**2) + min_distance_m**2)
    theta = rng.uniform(0.0, 2.0 * np.pi, num_clients)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def draw_rayleigh(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Complex CN(0, 1) samples, so |h|^2 ~ Exp(1)."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)


def evolve_fading(h: np.ndarray, rho: float, innovation: np.ndarray) -> np.ndarray:
    """One Gauss-Markov step h' = rho h + sqrt(1 - rho^2) w with w ~ CN(0, 1) given; keeps the CN(0, 1) marginal."""
    return rho * h + np.sqrt(max(0.0, 1.0 - rho * rho)) * innovation


def large_scale_gain(positions_m: np.ndarray, shadowing_db: np.ndarray) -> np.ndarray:
    """(K,) linear large-scale gain 10^(-(PL(d) + shadowing) / 10)."""
    distance = np.sqrt((positions_m**2).sum(axis=1))
    return db_to_linear(-(path_loss_db(distance) + shadowing_db))


def channel_gain(large_scale: np.ndarray, fading: np.ndarray) -> np.ndarray:
    """(K, S) linear gain = large-scale gain * |h|^2."""
    return large_scale[:, None] * (fading.real**2 + fading.imag**2)


def step_load(load: np.ndarray, cfg: ComputeConfig, noise: np.ndarray) -> np.ndarray:
    """One AR(1) step of the device load with standard-normal ``noise``, clipped to [0, load_max]."""
    nxt = cfg.load_mean + cfg.load_ar_coef * (load - cfg.load_mean) + cfg.load_noise_std * noise
    return np.minimum(np.maximum(nxt, 0.0), cfg.load_max)


def move_clients(rng: np.random.Generator, positions_m: np.ndarray, cfg: WirelessConfig) -> np.ndarray:
    """Random-direction move of ``speed * interval`` metres, kept inside the annulus."""
    if cfg.mobility_speed_mps <= 0:
        return positions_m
    step = cfg.mobility_speed_mps * cfg.mobility_interval_s
    theta = rng.uniform(0.0, 2.0 * np.pi, positions_m.shape[0])
    moved = positions_m + step * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    r = np.linalg.norm(moved, axis=1, keepdims=True)
    # reflect radially at both borders of the annulus
    r_new = np.where(r > cfg.cell_radius_m, 2 * cfg.cell_radius_m - r, r)
    r_new = np.where(r_new < cfg.min_distance_m, 2 * cfg.min_distance_m - r_new, r_new)
    r_new = np.clip(r_new, cfg.min_distance_m, cfg.cell_radius_m)
    return moved / np.maximum(r, 1e-9) * r_new


def make_scenario(rng: np.random.Generator, wcfg: WirelessConfig, ccfg: ComputeConfig) -> Scenario:
    """Draw the per-episode scenario: positions, shadowing, heterogeneous device compute, power caps."""
    k = wcfg.num_clients
    positions = drop_clients(rng, k, wcfg.cell_radius_m, wcfg.min_distance_m)
    shadowing = rng.normal(0.0, wcfg.shadowing_std_db, k)
    lo, hi = ccfg.client_cpu_freq_range_hz
    freq = rng.uniform(lo, hi, k)
    kappa = rng.choice(np.asarray(ccfg.client_flops_per_cycle_choices, dtype=float), size=k)
    pmax = np.full(k, float(dbm_to_watt(wcfg.client_max_power_dbm)))
    return Scenario(positions, shadowing, freq, kappa, pmax)


def initial_channel(rng: np.random.Generator, scenario: Scenario, wcfg: WirelessConfig,
                    ccfg: ComputeConfig) -> ChannelState:
    """First channel/load state of an episode (stationary fading, load at its mean plus noise)."""
    k = scenario.num_clients
    h_ms = draw_rayleigh(rng, (k, wcfg.num_subchannels_ms))
    h_fs = draw_rayleigh(rng, (k, wcfg.num_subchannels_fs))
    load = np.clip(ccfg.load_mean + ccfg.load_noise_std * rng.standard_normal(k), 0.0, ccfg.load_max)
    pos = scenario.positions_m
    ls = large_scale_gain(pos, scenario.shadowing_db)
    return ChannelState(channel_gain(ls, h_ms), channel_gain(ls, h_fs), load, h_ms, h_fs, pos, ls)


def next_channel(rng: np.random.Generator, state: ChannelState, scenario: Scenario, wcfg: WirelessConfig,
                 ccfg: ComputeConfig) -> ChannelState:
    """Advance fading (both links, one Gauss-Markov step), mobility and load by one round."""
    pos = move_clients(rng, state.positions_m, wcfg)
    k, m = state.fading_ms.shape
    n = state.fading_fs.shape[1]
    # one draw for both links and the load keeps the step cheap: real parts, imaginary parts, load noise
    z = rng.standard_normal(2 * k * (m + n) + k)
    w = (z[: k * (m + n)] + 1j * z[k * (m + n): 2 * k * (m + n)]) / np.sqrt(2.0)
    h_ms = evolve_fading(state.fading_ms, wcfg.fading_correlation, w[: k * m].reshape(k, m))
    h_fs = evolve_fading(state.fading_fs, wcfg.fading_correlation, w[k * m:].reshape(k, n))
    load = step_load(state.load, ccfg, z[-k:])
    ls = state.large_scale_gain if pos is state.positions_m else large_scale_gain(pos, scenario.shadowing_db)
    return ChannelState(channel_gain(ls, h_ms), channel_gain(ls, h_fs), load, h_ms, h_fs, pos, ls)

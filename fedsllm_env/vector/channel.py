"""Scenario, channel and load state of B envs with a leading batch axis (the default channel model, "macro").

Mirrors :class:`fedsllm_env.channel.MacroChannel`: every random draw is made by env i's own ``numpy.random.Generator``
with the same calls, in the same order and with the same sizes as the single env makes them, so env i
follows exactly the trajectory of a single env on that generator; the arithmetic on the draws runs
once for the whole batch.

Layout: the fading of both links is kept as real and imaginary float arrays of shape (B, K*M + K*N),
the MS block (client-major, as ``gain_ms.ravel()``) then the FS block: the layout of the innovation
draw of ``next_channel`` and of the gain block of the observation. The complex arithmetic of the single
env is repeated on the parts: ``(x + 1j y) / sqrt(2)`` is ``(x * s, y * s)`` with ``s = 1 / sqrt(2)``
(numpy divides complex numbers by a real one that way), ``rho h + c w`` acts on each part, ``|h|^2`` is
``re^2 + im^2``. ``tests/test_vector_env.py`` checks the result bit for bit against the single env.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fedsllm_env.channel import device_class_flops_per_cycle, large_scale_gain, step_load
from fedsllm_env.config import ComputeConfig, WirelessConfig
from fedsllm_env.errors import ConfigError
from fedsllm_env.units import dbm_to_watt
from fedsllm_env.vector.generators import EnvGenerators

__all__ = ["BatchedChannel"]

_INV_SQRT2 = 1.0 / np.sqrt(2.0)


class BatchedChannel:
    """Per-episode scenario and per-round channel/load state of ``num_envs`` envs.

    Attributes (``B`` envs, ``K`` clients, ``M``/``N`` subchannels): ``positions_m`` (B, K, 2),
    ``shadowing_db``, ``peak_flops`` (f_k kappa_k), ``max_power_w``, ``load``, ``large_scale`` (B, K);
    ``gain`` (B, K*M + K*N) linear gains in the layout above, with the views ``gain_ms`` (B, K, M) and
    ``gain_fs`` (B, K, N).
    """

    def __init__(self, num_envs: int, wcfg: WirelessConfig, ccfg: ComputeConfig):
        if wcfg.channel_model != "macro":
            raise ConfigError(f"the batched surrogate implements the default channel model 'macro' only, got "
                              f"channel_model={wcfg.channel_model!r}; use gym.make_vec(..., vectorization_mode='sync') "
                              "(or --vec-env dummy) for other channel models")
        self.wcfg, self.ccfg = wcfg, ccfg
        b, k = num_envs, wcfg.num_clients
        m, n = wcfg.num_subchannels_ms, wcfg.num_subchannels_fs
        self.num_envs, self.k, self.m, self.n = b, k, m, n
        self.km, self.kmn = k * m, k * (m + n)
        self.positions_m = np.zeros((b, k, 2))
        self.shadowing_db = np.zeros((b, k))
        self.peak_flops = np.ones((b, k))
        self.max_power_w = np.full((b, k), float(dbm_to_watt(wcfg.client_max_power_dbm)))
        self.load = np.zeros((b, k))
        self.large_scale = np.ones((b, k))
        # real parts then imaginary parts, as the innovation draw lays them out: one array op per round for both
        self.fading = np.zeros((b, 2 * self.kmn))
        self.fading_re = self.fading[:, :self.kmn]
        self.fading_im = self.fading[:, self.kmn:]
        self.gain = np.zeros((b, self.kmn))
        self._ls_flat = np.ones((b, self.kmn))  # large-scale gain of each entry's client
        self._kappas = np.asarray(ccfg.client_flops_per_cycle_choices, dtype=float)
        # a fleet of device classes fixes kappa_k (the choice is still drawn: same stream as without classes)
        self._class_kappa = device_class_flops_per_cycle(k, ccfg) if ccfg.device_class_flops_per_cycle else None
        # client of every entry of the flat link layout; initial_channel's draw (MS re, MS im, FS re, FS im) in the
        # fading layout (re then im, MS then FS within each)
        self._client_of = np.concatenate([np.repeat(np.arange(k), m), np.repeat(np.arange(k), n)])
        km, kn = k * m, k * n
        self._initial_order = np.concatenate([np.arange(km), 2 * km + np.arange(kn), km + np.arange(km),
                                              2 * km + kn + np.arange(kn)])
        self._z = np.empty((b, 2 * self.kmn + k))
        self._theta = np.empty((b, k))
        self._rho = float(wcfg.fading_correlation)
        self._innovation_scale = float(np.sqrt(max(0.0, 1.0 - self._rho * self._rho)))

    @property
    def gain_ms(self) -> np.ndarray:
        """(B, K, M) linear gains on the MS link (a view)."""
        return self.gain[:, :self.km].reshape(self.num_envs, self.k, self.m)

    @property
    def gain_fs(self) -> np.ndarray:
        """(B, K, N) linear gains on the FS link (a view)."""
        return self.gain[:, self.km:].reshape(self.num_envs, self.k, self.n)

    @property
    def fading_ms(self) -> np.ndarray:
        """(B, K, M) complex small-scale fading on the MS link."""
        return (self.fading_re[:, :self.km] + 1j * self.fading_im[:, :self.km]).reshape(self.num_envs, self.k, self.m)

    @property
    def fading_fs(self) -> np.ndarray:
        """(B, K, N) complex small-scale fading on the FS link."""
        return (self.fading_re[:, self.km:] + 1j * self.fading_im[:, self.km:]).reshape(self.num_envs, self.k, self.n)

    def reset(self, idx: np.ndarray, rngs: Sequence[np.random.Generator] | EnvGenerators) -> None:
        """Draw a new scenario and first channel for envs ``idx`` (``make_scenario`` + ``initial_channel``).

        Args:
            idx: (n,) env indices.
            rngs: every env's generator (indexed by env index).
        """
        w, c = self.wcfg, self.ccfg
        k, kmn = self.k, self.kmn
        cnt = len(idx)
        # one row per env: u, theta, shadowing, f_k (uniform and normal draws as the scenario draws them), then
        # initial_channel's five standard-normal blocks (MS re, MS im, FS re, FS im, load) in one call
        d = np.empty((cnt, 4 * k + 2 * kmn + k))
        kappa_idx = np.empty((cnt, k), dtype=np.int64)
        n_kappa = self._kappas.shape[0]
        for j, i in enumerate(idx):
            g, row = rngs[i], d[j]
            g.random(out=row[:2 * k])  # random(K), then uniform(0, 2 pi, K) = 0 + 2 pi * the same doubles
            g.standard_normal(out=row[2 * k: 3 * k])  # normal(0, std, K) = 0 + std * standard normals
            g.random(out=row[3 * k: 4 * k])  # uniform(lo, hi, K) = lo + (hi - lo) * doubles
            kappa_idx[j] = g.integers(0, n_kappa, size=k)  # = g.choice(kappas, size=K)
            g.standard_normal(out=row[4 * k:])
        lo, hi = c.client_cpu_freq_range_hz
        u = d[:, :k]
        theta = (2.0 * np.pi) * d[:, k: 2 * k]
        shadow = 0.0 + w.shadowing_std_db * d[:, 2 * k: 3 * k]
        z = d[:, 4 * k:]
        r = np.sqrt(u * (w.cell_radius_m**2 - w.min_distance_m**2) + w.min_distance_m**2)
        pos = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)
        ls = large_scale_gain(pos, shadow)
        ls_flat = ls[:, self._client_of]
        fading = z[:, self._initial_order]
        fading *= _INV_SQRT2
        sq = np.square(fading)
        gain = np.add(sq[:, :kmn], sq[:, kmn:])
        gain *= ls_flat
        self.positions_m[idx] = pos
        self.shadowing_db[idx] = shadow
        kappa = self._class_kappa if self._class_kappa is not None else self._kappas[kappa_idx]
        self.peak_flops[idx] = (lo + (hi - lo) * d[:, 3 * k: 4 * k]) * kappa
        self.load[idx] = np.clip(c.load_mean + c.load_noise_std * z[:, -k:], 0.0, c.load_max)
        self.large_scale[idx] = ls
        self._ls_flat[idx] = ls_flat
        self.fading[idx] = fading
        self.gain[idx] = gain

    def step(self, gens: EnvGenerators) -> None:
        """Advance every env by one round (``next_channel``): mobility, fading on both links, load.

        Args:
            gens: every env's generator; env i's draws are made from ``gens[i]`` in the single env's order
                (move, then the innovations), by numba's compiled loop when available.
        """
        k, kmn = self.k, self.kmn
        z, theta = self._z, self._theta
        if self.wcfg.mobility_speed_mps > 0:
            gens.uniform_normal_rows(0.0, 2.0 * np.pi, theta, z)
            self._move(theta)
        else:
            gens.standard_normal_rows(z)
        # h' = rho h + c (x + 1j y) / sqrt(2) on both parts at once, in place (the draw block is scratch), in the
        # single env's operation order
        work = z[:, :2 * kmn]
        np.multiply(work, _INV_SQRT2, out=work)
        work *= self._innovation_scale
        self.fading *= self._rho
        self.fading += work
        self.load = step_load(self.load, self.ccfg, z[:, -k:])
        # gain = large-scale gain * (re^2 + im^2) (``channel_gain``)
        sq = np.square(self.fading, out=work)
        np.add(sq[:, :kmn], sq[:, kmn:], out=self.gain)
        self.gain *= self._ls_flat  # one flat product: broadcasting over K x 10 blocks is several times slower

    def _move(self, theta: np.ndarray) -> None:
        """Batched ``channel.move_clients`` and the large-scale gain of the new positions."""
        w = self.wcfg
        step = w.mobility_speed_mps * w.mobility_interval_s
        moved = self.positions_m + step * np.stack([np.cos(theta), np.sin(theta)], axis=-1)
        r = np.linalg.norm(moved, axis=-1, keepdims=True)
        r_new = np.where(r > w.cell_radius_m, 2 * w.cell_radius_m - r, r)
        r_new = np.where(r_new < w.min_distance_m, 2 * w.min_distance_m - r_new, r_new)
        r_new = np.clip(r_new, w.min_distance_m, w.cell_radius_m)
        self.positions_m = moved / np.maximum(r, 1e-9) * r_new
        self.large_scale = large_scale_gain(self.positions_m, self.shadowing_db)
        np.take(self.large_scale, self._client_of, axis=1, out=self._ls_flat)

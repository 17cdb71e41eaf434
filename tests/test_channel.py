"""Channel and load dynamics: known values, statistics, bounds, determinism."""

from __future__ import annotations

import numpy as np

from fedsllm_env.channel import (
    MacroChannel,
    draw_rayleigh,
    drop_clients,
    evolve_fading,
    move_clients,
    path_loss_db,
    step_load,
)
from fedsllm_env.config import ComputeConfig, WirelessConfig


def test_path_loss_known_values():
    assert np.isclose(path_loss_db(1000.0), 128.1)
    assert np.isclose(path_loss_db(100.0), 128.1 - 37.6)
    assert np.all(np.diff(path_loss_db(np.array([50.0, 100.0, 400.0]))) > 0)


def test_drop_inside_annulus_and_uniform_by_area(rng):
    pos = drop_clients(rng, 20000, 500.0, 20.0)
    r = np.linalg.norm(pos, axis=1)
    assert r.min() >= 20.0 and r.max() <= 500.0
    # uniform by area: P(r <= R/sqrt(2)) ~= (R^2/2 - r0^2) / (R^2 - r0^2)
    expected = (500.0**2 / 2 - 20.0**2) / (500.0**2 - 20.0**2)
    assert abs(np.mean(r <= 500.0 / np.sqrt(2)) - expected) < 0.02


def test_rayleigh_power_is_unit_mean_and_markov_keeps_marginal(rng):
    h = draw_rayleigh(rng, (200, 200))
    assert abs(np.mean(np.abs(h) ** 2) - 1.0) < 0.02
    h2 = evolve_fading(h, 0.9, draw_rayleigh(rng, h.shape))
    assert abs(np.mean(np.abs(h2) ** 2) - 1.0) < 0.02
    corr = np.real(np.mean(h2 * np.conj(h)))
    assert abs(corr - 0.9) < 0.02
    assert np.array_equal(evolve_fading(h, 1.0, draw_rayleigh(rng, h.shape)), h)


def test_load_stays_in_bounds_and_reverts_to_mean(rng):
    cfg = ComputeConfig()
    load = np.full(1000, 0.9)
    for _ in range(60):
        load = step_load(load, cfg, rng.standard_normal(load.shape))
        assert load.min() >= 0.0 and load.max() <= cfg.load_max
    assert abs(load.mean() - cfg.load_mean) < 0.05


def test_mobility_keeps_clients_in_cell(rng):
    cfg = WirelessConfig(mobility_speed_mps=100.0)
    pos = drop_clients(rng, 50, cfg.cell_radius_m, cfg.min_distance_m)
    for _ in range(50):
        new = move_clients(rng, pos, cfg)
        r = np.linalg.norm(new, axis=1)
        assert r.min() >= cfg.min_distance_m - 1e-9 and r.max() <= cfg.cell_radius_m + 1e-9
        pos = new
    static = WirelessConfig()
    assert move_clients(rng, pos, static) is pos


def test_scenario_and_channel_shapes_and_determinism():
    w, c = WirelessConfig(num_clients=4, num_subchannels_ms=6, num_subchannels_fs=5), ComputeConfig()

    model = MacroChannel(w, c)

    def episode(seed):
        g = np.random.default_rng(seed)
        sc = model.draw_scenario(g)
        state = model.initial_state(g, sc)
        return sc, model.observe(state), model.observe(model.next_state(g, state, sc))

    sc, ch, ch2 = episode(7)
    assert ch.gain_ms.shape == (4, 6) and ch.gain_fs.shape == (4, 5) and ch.load.shape == (4,)
    assert np.all(ch.gain_ms > 0) and np.all(ch.gain_ms < 1e-5)
    assert set(np.unique(sc.client_flops_per_cycle)) <= set(c.client_flops_per_cycle_choices)
    assert np.all((sc.client_cpu_freq_hz >= 1e9) & (sc.client_cpu_freq_hz <= 2e9))
    assert not np.array_equal(ch.gain_ms, ch2.gain_ms)
    _, ch_b, ch2_b = episode(7)
    assert np.array_equal(ch.gain_ms, ch_b.gain_ms) and np.array_equal(ch2.gain_fs, ch2_b.gain_fs)
    _, ch_c, _ = episode(8)
    assert not np.array_equal(ch.gain_ms, ch_c.gain_ms)

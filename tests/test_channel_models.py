"""The channel-model seam: protocol, registry, the default model's dynamics, UMi path loss, trace replay."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import fedsllm_env  # noqa: F401  (registers the ids)
import fedsllm_env.channel as channel_pkg
from baselines.policy import make_baseline_policy, problem_from_observation
from fedsllm_env.channel import ChannelModel, MacroChannel, make_channel_model, path_loss_db, register_channel_model
from fedsllm_env.channel.trace import TraceChannel, load_trace, record_trace, save_trace
from fedsllm_env.channel.umi import UMiChannel, umi_los_probability, umi_path_loss_db
from fedsllm_env.config import ComputeConfig, FedsLLMConfig, WirelessConfig
from fedsllm_env.errors import ConfigError
from fedsllm_env.types import ChannelState, Scenario

SMALL = {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 5}


def _wireless(**changes) -> WirelessConfig:
    return WirelessConfig(**{**SMALL, **changes})


@pytest.fixture()
def trace_file(tmp_path):
    """A 12-round trace recorded from the default model on the SMALL cell."""
    arrays = record_trace(MacroChannel(_wireless(), ComputeConfig()), np.random.default_rng(5), 12)
    return save_trace(tmp_path / "trace.npz", **arrays), arrays


def _model(name: str, trace_path: str = "") -> ChannelModel:
    return make_channel_model(_wireless(channel_model=name, channel_trace_path=trace_path), ComputeConfig())


def _episode(model: ChannelModel, seed: int, rounds: int = 4) -> list[ChannelState]:
    g = np.random.default_rng(seed)
    scenario = model.draw_scenario(g)
    state = model.initial_state(g, scenario)
    seen = [model.observe(state)]
    for _ in range(rounds - 1):
        state = model.next_state(g, state, scenario)
        seen.append(model.observe(state))
    return seen


@pytest.mark.parametrize("name", ["macro", "umi", "trace"])
def test_every_model_follows_the_protocol_shows_only_gains_and_loads_and_is_seeded(name, trace_file):
    model = _model(name, str(trace_file[0]))
    assert isinstance(model, ChannelModel)
    scenario = model.draw_scenario(np.random.default_rng(0))
    assert scenario.client_cpu_freq_hz.shape == scenario.client_max_power_w.shape == (3,)
    assert scenario.hidden is not None
    for ch in _episode(model, 0):
        assert [f.name for f in dataclasses.fields(ch)] == ["gain_ms", "gain_fs", "load"]
        assert ch.gain_ms.shape == (3, 4) and ch.gain_fs.shape == (3, 5) and ch.load.shape == (3,)
        assert np.all(np.isfinite(ch.gain_ms)) and np.all(ch.gain_ms > 0) and np.all(ch.gain_fs > 0)
        assert np.all((ch.load >= 0) & (ch.load <= ComputeConfig().load_max))
    a, b = _episode(model, 11), _episode(model, 11)
    assert all(np.array_equal(x.gain_ms, y.gain_ms) and np.array_equal(x.load, y.load) for x, y in zip(a, b))
    others = [_episode(model, s)[0].gain_fs for s in range(12, 17)]
    assert any(not np.array_equal(a[0].gain_fs, o) for o in others)
    assert not np.array_equal(a[0].gain_ms, a[1].gain_ms)  # the state moves between rounds


def test_env_draws_exactly_what_the_configured_model_draws(calibration_path):
    cfg = FedsLLMConfig(calibration_path=calibration_path)
    env = gym.make("FedsLLM-Surrogate-v0", config=cfg.to_dict())
    env.reset(seed=5)
    model, g = MacroChannel(cfg.wireless, cfg.compute), np.random.default_rng(5)
    scenario = model.draw_scenario(g)
    state = model.initial_state(g, scenario)
    base = env.unwrapped
    assert np.array_equal(base.scenario.client_cpu_freq_hz, scenario.client_cpu_freq_hz)
    assert np.array_equal(base.channel.gain_ms, model.observe(state).gain_ms)
    g.integers(2**31 - 1)  # the env seeds its training backend next
    for _ in range(3):
        env.step(env.action_space.sample())
        state = model.next_state(g, state, scenario)
        seen = model.observe(state)
        assert np.array_equal(base.channel.gain_fs, seen.gain_fs) and np.array_equal(base.channel.load, seen.load)


@pytest.mark.parametrize("rho", [0.9, 0.3])
def test_fading_keeps_unit_power_and_lag_one_power_correlation_rho_squared(rho):
    # |h|^2 of a Gauss-Markov CN(0, 1) process has lag-1 correlation rho^2; MS and FS fade independently
    w = WirelessConfig(num_clients=20, num_subchannels_ms=200, num_subchannels_fs=200, fading_correlation=rho)
    model, g = MacroChannel(w, ComputeConfig()), np.random.default_rng(0)
    scenario = model.draw_scenario(g)
    state = model.initial_state(g, scenario)
    corr, cross, power = [], [], []
    for _ in range(6):
        nxt = model.next_state(g, state, scenario)
        x0, x1 = (model.observe(s).gain_ms / s.large_scale_gain[:, None] for s in (state, nxt))
        corr.append(np.corrcoef(x0.ravel(), x1.ravel())[0, 1])
        y1 = model.observe(nxt).gain_fs / nxt.large_scale_gain[:, None]
        cross.append(np.corrcoef(x1.ravel(), y1.ravel())[0, 1])
        power.append(x1.mean())
        state = nxt
    assert np.mean(corr) == pytest.approx(rho**2, abs=0.03)
    assert abs(np.mean(cross)) < 0.03
    assert np.mean(power) == pytest.approx(1.0, abs=0.03)


def test_load_is_ar1_around_its_mean():
    c = ComputeConfig(load_mean=0.4, load_ar_coef=0.6, load_noise_std=0.02)
    w = WirelessConfig(num_clients=50, num_subchannels_ms=50, num_subchannels_fs=50)
    loads = np.array([ch.load for ch in _episode(MacroChannel(w, c), 3, rounds=120)])
    assert loads[20:].mean() == pytest.approx(0.4, abs=0.01)
    lag1 = np.corrcoef(loads[20:-1].ravel() - 0.4, loads[21:].ravel() - 0.4)[0, 1]
    assert lag1 == pytest.approx(0.6, abs=0.05)
    assert loads[20:].std() == pytest.approx(0.02 / np.sqrt(1 - 0.36), rel=0.1)


def test_macro_large_scale_gain_is_path_loss_plus_shadowing_of_the_configured_std():
    w = WirelessConfig(num_clients=1000, num_subchannels_ms=1000, num_subchannels_fs=1000, shadowing_std_db=6.0)
    model = MacroChannel(w, ComputeConfig())
    cell = model.draw_cell(np.random.default_rng(2))
    excess_db = -10 * np.log10(model.large_scale_gain(cell.positions_m, cell)) - path_loss_db(
        np.linalg.norm(cell.positions_m, axis=1))
    assert np.allclose(excess_db, cell.shadowing_db)
    assert abs(excess_db.mean()) < 0.6 and excess_db.std() == pytest.approx(6.0, rel=0.06)


def test_mobility_moves_clients_and_updates_the_large_scale_gain_only_when_on():
    for speed in (0.0, 20.0):
        model = MacroChannel(_wireless(mobility_speed_mps=speed, mobility_interval_s=2.0), ComputeConfig())
        g = np.random.default_rng(4)
        scenario = model.draw_scenario(g)
        s0 = model.initial_state(g, scenario)
        s1 = model.next_state(g, s0, scenario)
        step = np.linalg.norm(s1.positions_m - s0.positions_m, axis=1)
        if speed == 0:
            assert s1.large_scale_gain is s0.large_scale_gain and np.all(step == 0)
        else:
            assert np.allclose(step, 40.0)
            assert not np.allclose(s1.large_scale_gain, s0.large_scale_gain, rtol=1e-3, atol=0)
            assert np.allclose(s1.large_scale_gain, model.large_scale_gain(s1.positions_m, scenario.hidden), atol=0)


def test_umi_los_probability_and_path_loss_known_values():
    # hand-computed from TR 38.901 Tables 7.4.2-1 and 7.4.1-1 (h_BS 10 m, h_UT 1.5 m, 3.5 GHz: d'_BP = 210 m)
    assert np.allclose(umi_los_probability(np.array([10.0, 18.0, 36.0, 100.0])), [1.0, 1.0, 0.683940, 0.230985])
    d = np.array([100.0, 400.0])
    assert np.allclose(umi_path_loss_db(d, 3.5e9, np.array([True, True])), [85.3142, 103.2388], atol=1e-3)
    assert np.allclose(umi_path_loss_db(d, 3.5e9, np.array([False, False])), [104.6438, 125.8448], atol=1e-3)
    # PL2 is built to meet PL1 at the breakpoint; NLOS never beats LOS
    bp = np.array([210.0 - 1e-9, 210.0 + 1e-9])
    assert np.ptp(umi_path_loss_db(bp, 3.5e9, np.array([True, True]))) < 1e-6
    grid = np.linspace(10.0, 5000.0, 500)
    nlos, los = (umi_path_loss_db(grid, 3.5e9, np.full(500, state)) for state in (False, True))
    assert np.all(nlos >= los)
    assert np.all(np.diff(umi_los_probability(grid)) <= 0)


def test_umi_uses_the_state_dependent_shadowing_and_the_los_draw():
    w = WirelessConfig(num_clients=2000, num_subchannels_ms=2000, num_subchannels_fs=2000, channel_model="umi")
    model = UMiChannel(w, ComputeConfig())
    cell = model.draw_cell(np.random.default_rng(8))
    assert cell.los_uniform.mean() == pytest.approx(0.5, abs=0.02)
    assert cell.shadowing_normal.std() == pytest.approx(1.0, abs=0.04)
    for d in (15.0, 36.0, 1000.0):
        pos = np.stack([np.full(2000, d), np.zeros(2000)], axis=1)
        los = cell.los_uniform < umi_los_probability(d)
        excess = -10 * np.log10(model.large_scale_gain(pos, cell)) - umi_path_loss_db(np.full(2000, d), 3.5e9, los)
        assert np.allclose(excess, cell.shadowing_normal * np.where(los, 4.0, 7.82))
        assert los.mean() == pytest.approx(float(umi_los_probability(d)), abs=0.03)


def test_umi_env_runs_and_differs_from_macro(calibration_path):
    gains = {}
    for name in ("macro", "umi"):
        env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path,
                                                       "wireless": {"channel_model": name}})
        env.reset(seed=0)
        env.step(env.action_space.sample())
        gains[name] = env.unwrapped.channel.gain_ms
    assert gains["umi"].shape == gains["macro"].shape and not np.allclose(gains["umi"], gains["macro"])


@pytest.mark.parametrize("changes, field", [({"min_distance_m": 5.0}, "min_distance_m"),
                                            ({"cell_radius_m": 6000.0}, "cell_radius_m"),
                                            ({"carrier_frequency_hz": 2e11}, "carrier_frequency_hz")])
def test_umi_rejects_a_cell_outside_its_validity_range(changes, field):
    with pytest.raises(ConfigError, match=field):
        UMiChannel(_wireless(channel_model="umi", **changes), ComputeConfig())


def test_unknown_model_fails_at_env_creation_listing_the_names(calibration_path):
    with pytest.raises(ConfigError, match=r"channel_model must be one of \['macro', 'trace', 'umi'\]"):
        gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path,
                                                 "wireless": {"channel_model": "rician"}})
    with pytest.raises(ConfigError, match="channel_model"):
        WirelessConfig(channel_model="")


class _ConstantChannel:
    """A test model: gain 1e-9 * (1 + subchannel index) on every link, load 0.25, no randomness."""

    def __init__(self, wireless, compute):
        self.wireless, self.compute = wireless, compute

    def draw_scenario(self, rng):
        return channel_pkg.draw_devices(rng, self.wireless, self.compute, hidden="constant")

    def initial_state(self, rng, scenario):
        return 0

    def next_state(self, rng, state, scenario):
        return state + 1

    def observe(self, state):
        w = self.wireless
        k = w.num_clients
        row = lambda s: np.tile(1e-9 * (1.0 + np.arange(s)), (k, 1))  # noqa: E731
        return ChannelState(row(w.num_subchannels_ms), row(w.num_subchannels_fs), np.full(k, 0.25))


def test_a_registered_model_drives_the_env(monkeypatch, calibration_path):
    monkeypatch.setattr(channel_pkg, "CHANNEL_MODELS", dict(channel_pkg.CHANNEL_MODELS))
    register_channel_model("constant", _ConstantChannel)
    with pytest.raises(ValueError, match="already registered"):
        register_channel_model("constant", _ConstantChannel)
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path,
                                                   "wireless": {"channel_model": "constant"}})
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    g_ms, g_fs, load, _ = env.unwrapped.observation_codec.decode_state(obs)
    assert np.allclose(g_ms, 1e-9 * (1.0 + np.arange(10)), rtol=1e-5) and np.allclose(load, 0.25, rtol=1e-5)


def test_trace_env_replays_the_file_row_by_row_and_wraps(trace_file, calibration_path):
    path, arrays = trace_file
    cfg = {"calibration_path": calibration_path, "training": {"target_val_loss": 1e-3},  # no termination
           "wireless": {**SMALL, "channel_model": "trace", "channel_trace_path": str(path)}}
    env = gym.make("FedsLLM-Surrogate-v0", config=cfg)
    starts = set()
    for seed in range(6):
        env.reset(seed=seed)
        starts.add(env.unwrapped.scenario.hidden.row)
    assert len(starts) > 1
    env.reset(seed=1)
    start = env.unwrapped.scenario.hidden.row
    for t in range(15):  # past the end of the 12-row trace
        row = (start + t) % 12
        ch = env.unwrapped.channel
        assert np.array_equal(ch.gain_ms, arrays["gain_ms"][row]) and np.array_equal(ch.load, arrays["load"][row])
        env.step(env.action_space.sample())


def test_optimizer_needs_only_the_observation_on_a_trace(trace_file, calibration_path):
    path, _ = trace_file
    env = gym.make("FedsLLM-Surrogate-v0", config={
        "calibration_path": calibration_path,
        "wireless": {**SMALL, "channel_model": "trace", "channel_trace_path": str(path)}})
    obs, _ = env.reset(seed=2)
    problem, scenario = problem_from_observation(env.unwrapped, obs)
    assert scenario.hidden is None and isinstance(problem.scenario, Scenario)
    policy = make_baseline_policy("optimizer", env)
    for _ in range(2):
        action, _ = policy.predict(obs)
        obs, _, _, _, info = env.step(action)
        assert info["expected_total_delay_s"] == pytest.approx(policy.last_result.objective_s, rel=1e-4)


def _mutated(arrays, key, value):
    out = {k: v.copy() for k, v in arrays.items()}
    if value is None:
        del out[key]
    else:
        out[key] = value(out[key]) if callable(value) else value
    return out


@pytest.mark.parametrize("mutate, message", [
    (lambda a: _mutated(a, "gain_ms", lambda g: g[:, :2]), r"gain_ms has shape \(12, 2, 4\), expected \(12, 3, 4\)"),
    (lambda a: _mutated(a, "gain_fs", lambda g: g[..., :4]), r"gain_fs has shape \(12, 3, 4\), expected \(12, 3, 5\)"),
    (lambda a: _mutated(a, "load", lambda x: x[:5]), r"load has shape \(5, 3\), expected \(12, 3\)"),
    (lambda a: _mutated(a, "gain_ms", lambda g: np.where(g == g.max(), np.nan, g)), "gain_ms holds a non-finite"),
    (lambda a: _mutated(a, "gain_fs", lambda g: -g), "gain_fs must be > 0"),
    (lambda a: _mutated(a, "load", lambda x: x + 1.0), r"load must be in \[0, load_max=0.9\]"),
    (lambda a: _mutated(a, "gain_ms", lambda g: g.astype(complex)), "gain_ms must hold real numbers"),
    (lambda a: _mutated(a, "load", None), r"missing \['load'\]"),
    (lambda a: {**a, "positions_m": np.zeros(3)}, r"unknown \['positions_m'\]"),
])
def test_a_bad_trace_is_rejected_naming_the_file_and_the_problem(tmp_path, trace_file, mutate, message):
    bad = tmp_path / "bad.npz"
    np.savez(bad, **mutate(trace_file[1]))
    w = _wireless(channel_model="trace", channel_trace_path=str(bad))
    with pytest.raises(ConfigError, match=message) as err:
        TraceChannel(w, ComputeConfig())
    assert str(bad) in str(err.value)


def test_unreadable_or_missing_trace_files(tmp_path):
    w, c = _wireless(), ComputeConfig()
    with pytest.raises(ConfigError, match="channel_trace_path"):
        TraceChannel(w.replace(channel_model="trace"), c)
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        load_trace(tmp_path / "nowhere.npz", w, c)
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with pytest.raises(ConfigError, match="notes.npz: cannot read"):
        load_trace(text, w, c)
    single = tmp_path / "single.npy"
    np.save(single, np.ones((2, 3, 4)))
    with pytest.raises(ConfigError, match="single.npy: expected an .npz archive"):
        load_trace(single, w, c)
    target = tmp_path / "x.npz"
    with pytest.raises(ConfigError, match=r"gain_fs has shape \(2, 4, 5\), expected \(2, 3, 5\)"):
        save_trace(target, np.ones((2, 3, 4)), np.ones((2, 4, 5)), np.zeros((2, 3)))
    assert not target.exists()


def test_devices_and_first_load_follow_the_compute_config():
    w = WirelessConfig(num_clients=3000, num_subchannels_ms=3000, num_subchannels_fs=3000, client_max_power_dbm=20.0)
    c = ComputeConfig(client_cpu_freq_range_hz=(1e9, 3e9), client_flops_per_cycle_choices=(2.0, 8.0),
                      load_mean=0.85, load_noise_std=0.2, load_max=0.9)
    g = np.random.default_rng(6)
    sc = channel_pkg.draw_devices(g, w, c)
    assert sc.client_cpu_freq_hz.min() >= 1e9 and sc.client_cpu_freq_hz.max() <= 3e9
    assert sc.client_cpu_freq_hz.mean() == pytest.approx(2e9, rel=0.02) and np.ptp(sc.client_cpu_freq_hz) > 1.9e9
    assert set(np.unique(sc.client_flops_per_cycle)) == {2.0, 8.0}
    assert np.mean(sc.client_flops_per_cycle == 2.0) == pytest.approx(0.5, abs=0.03)
    assert np.allclose(sc.client_max_power_w, 0.1, rtol=1e-3)  # 20 dBm
    load = channel_pkg.initial_load(g, 3000, c)
    assert load.max() == 0.9 and load.min() >= 0 and np.mean(load == 0.9) == pytest.approx(0.401, abs=0.03)  # P(z >= 0.25)

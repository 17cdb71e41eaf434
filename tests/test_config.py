"""Config validation: defaults from SPEC, clear errors, dict round trip."""

from __future__ import annotations

import dataclasses

import pytest

from fedsllm_env.config import ComputeConfig, FedsLLMConfig, ModelConfig, TrainingConfig, WirelessConfig
from fedsllm_env.errors import ConfigError


def test_defaults_follow_spec():
    w = WirelessConfig()
    assert w.noise_psd_dbm_per_hz == -174.0
    assert w.client_max_power_dbm == 23.0
    assert w.shadowing_std_db == 8.0
    assert w.subchannel_bandwidth_ms_hz == w.subchannel_bandwidth_fs_hz == 1e6
    c = ComputeConfig()
    lo, hi = c.client_cpu_freq_range_hz
    assert 1e9 <= lo <= hi <= 2e9
    mean_device = (lo + hi) / 2 * sum(c.client_flops_per_cycle_choices) / len(c.client_flops_per_cycle_choices)
    assert 10 <= c.server_cpu_freq_hz * c.server_flops_per_cycle / mean_device <= 100
    assert ComputeConfig().backward_factor == 2.0


@pytest.mark.parametrize("cls, kwargs, match", [
    (WirelessConfig, {"num_clients": 0}, "num_clients"),
    (WirelessConfig, {"num_clients": 11}, "num_subchannels_ms"),
    (WirelessConfig, {"total_power_ms_w": -1.0}, "total_power_ms_w"),
    (WirelessConfig, {"fading_correlation": 1.5}, "fading_correlation"),
    (WirelessConfig, {"min_distance_m": 600.0}, "min_distance_m"),
    (WirelessConfig, {"subchannel_bandwidth_fs_hz": float("nan")}, "subchannel_bandwidth_fs_hz"),
    (ComputeConfig, {"load_max": 1.0}, "load_max"),
    (ComputeConfig, {"client_cpu_freq_range_hz": (2e9, 1e9)}, "client_cpu_freq_range_hz"),
    (ModelConfig, {"ranks": (4, 2)}, "ranks"),
    (ModelConfig, {"initial_rank": 3}, "initial_rank"),
    (ModelConfig, {"activation_bits": 12}, "activation_bits"),
    (ModelConfig, {"tiny_n_embd": 130, "tiny_n_head": 4}, "tiny_n_embd"),
    (TrainingConfig, {"batch_size": 0}, "batch_size"),
    (TrainingConfig, {"partition": "weird"}, "partition"),
    (FedsLLMConfig, {"mode": "fast"}, "mode"),
    (FedsLLMConfig, {"power_levels": 1}, "power_levels"),
])
def test_bad_values_name_the_field(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="num_clients"):
        WirelessConfig(num_clients=2.5)
    with pytest.raises(TypeError, match="cell_radius_m"):
        WirelessConfig(cell_radius_m="500")
    with pytest.raises(TypeError, match="wireless"):
        FedsLLMConfig(wireless=3)


def test_unknown_keys_rejected_at_every_level():
    with pytest.raises(ConfigError, match="num_clientz"):
        FedsLLMConfig.from_dict({"wireless": {"num_clientz": 3}})
    with pytest.raises(ConfigError, match="bogus"):
        FedsLLMConfig.from_dict({"bogus": 1})


def test_dict_round_trip_and_nested_dicts():
    cfg = FedsLLMConfig.from_dict({"wireless": {"num_clients": 3}, "model": {"ranks": [2, 4], "initial_rank": 2}})
    assert cfg.wireless.num_clients == 3
    assert cfg.model.ranks == (2, 4)
    assert FedsLLMConfig.from_dict(cfg.to_dict()) == cfg
    assert FedsLLMConfig(wireless={"num_clients": 2}).wireless.num_clients == 2


def test_configs_are_frozen():
    cfg = FedsLLMConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.mode = "real"  # type: ignore[misc]
    assert cfg.replace(mode="real").mode == "real"

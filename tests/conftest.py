"""Shared fixtures: a synthetic calibration file (test-only numbers), tiny configs, RNGs."""

from __future__ import annotations

import numpy as np
import pytest

from fedsllm_env.atomic import atomic_write_json
from fedsllm_env.calibration import fit_rounds_curve
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import ChannelState, Decision, Scenario

TEST_SHAPE = {"n_layer": 6, "n_embd": 128, "n_head": 4, "vocab_size": 239, "n_inner": 512, "n_positions": 256}
"""Model shape of the synthetic calibration: the default tiny GPT-2 (239-word vocabulary)."""


def write_synthetic_calibration(path, ranks=FedsLLMConfig().model.ranks, initial=4.0, target=1.5, horizon=40):
    """Write a calibration JSON with smooth made-up curves (tests only; never shipped)."""
    data = {"version": 1, "command": "tests/conftest.py synthetic", "settings": {}, "model_shape": TEST_SHAPE,
            "target_val_loss": target, "initial_val_loss": initial, "ranks": {}}
    means = []
    for r in ranks:
        tau = 12.0 * r ** -0.3
        curves = [[1.0 + (initial - 1.0) * float(np.exp(-(t + 1) / tau)) + 0.02 * float(np.sin(s + t))
                   for t in range(horizon)] for s in range(2)]
        hits = [next((i + 1 for i, v in enumerate(c) if v <= target), None) for c in curves]
        means.append(np.mean([h if h is not None else horizon + 1 for h in hits]))
        data["ranks"][str(r)] = {"rounds_to_target": hits, "val_loss_curves": curves}
    data["fit"] = fit_rounds_curve(np.array(ranks, float), np.array(means))
    atomic_write_json(path, data)
    return str(path)


@pytest.fixture(scope="session")
def calibration_path(tmp_path_factory) -> str:
    """Path of a synthetic calibration file."""
    return write_synthetic_calibration(tmp_path_factory.mktemp("cal") / "calibration.json")


@pytest.fixture()
def surrogate_config(calibration_path) -> FedsLLMConfig:
    """Default config in surrogate mode on the synthetic calibration."""
    return FedsLLMConfig(mode="surrogate", calibration_path=calibration_path)


@pytest.fixture()
def small_config(calibration_path) -> FedsLLMConfig:
    """3 clients, 4 subchannels per link, surrogate mode."""
    return FedsLLMConfig.from_dict({
        "wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 4},
        "calibration_path": calibration_path,
    })


@pytest.fixture()
def one_torch_thread():
    """Small MLPs train fastest (and reproducibly) on one thread; restore afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def rng() -> np.random.Generator:
    """A seeded generator."""
    return np.random.default_rng(1234)


def _two_client_delay_case(cpu_freq_hz=(1e6, 2e6), load=(0.0, 0.5), snr_ms=(1.0, 3.0), snr_fs=(1.0, 1.0),
                           bandwidth_fs_hz=1000.0, broadcast_rate_bps=1e4):
    """K=2, M=N=2, one subchannel each at 0.1 W, tiny model: every delay term is easy by hand.

    The MS link has B_s = 1000 Hz; gains are set so each client's SNR is ``snr_ms`` / ``snr_fs``.
    """
    cfg = FedsLLMConfig.from_dict({
        "wireless": {"num_clients": 2, "num_subchannels_ms": 2, "num_subchannels_fs": 2,
                     "subchannel_bandwidth_ms_hz": 1000.0, "subchannel_bandwidth_fs_hz": bandwidth_fs_hz,
                     "downlink_rate_bps": 1e4, "broadcast_rate_bps": broadcast_rate_bps},
        "compute": {"server_cpu_freq_hz": 1e7, "server_flops_per_cycle": 1.0, "backward_factor": 2.0},
        "model": {"ranks": [2], "initial_rank": 2, "lora_target_modules": ["attn.c_attn"], "activation_bits": 16},
        "training": {"batch_size": 2, "seq_len": 8, "local_iterations": 3},
    })
    shape = ModelShape(n_layer=4, n_embd=8, n_head=2, vocab_size=16, n_inner=32)
    scenario = Scenario(client_cpu_freq_hz=np.array(cpu_freq_hz, dtype=float), client_flops_per_cycle=np.ones(2),
                        client_max_power_w=np.full(2, 0.2))
    p = 0.1
    n0 = 10 ** ((-174 - 30) / 10)
    gain_ms = np.diag(np.array(snr_ms) * n0 * 1000.0 / p)
    gain_fs = np.diag(np.array(snr_fs) * n0 * bandwidth_fs_hz / p)
    channel = ChannelState(gain_ms, gain_fs, np.array(load, dtype=float))
    decision = Decision(np.array([0, 1]), np.array([0, 1]), np.full(2, p), np.full(2, p), split=1, rank=2)
    return cfg, shape, scenario, channel, decision


@pytest.fixture()
def two_client_case():
    """Builder of the hand-computable two-client delay case (keyword arguments change its numbers)."""
    return _two_client_delay_case

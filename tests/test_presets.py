"""Scenario presets: valid configs usable as gym.make(..., config=PRESETS[name]) and as --preset on the commands,
documented, merged in the documented order; the figures' preset comparison."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import fedsllm_env  # noqa: F401  (registers the ids)
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import ConfigError
from fedsllm_env.presets import PRESET_DOCS, PRESETS, preset_overrides, with_preset
from tests.conftest import TEST_SHAPE


@pytest.fixture(scope="module")
def calibration_path(tmp_path_factory) -> str:
    """A synthetic v2 calibration (test-only curves) of the default ranks, 3 cuts, IID and Dirichlet."""
    from fedsllm_env.atomic import atomic_write_json
    from fedsllm_env.calibration import build_calibration

    horizon, runs = 40, []
    for r in FedsLLMConfig().model.ranks:
        for c in (1, 3, 5):
            for part in ("iid", "dirichlet"):
                tau = 12.0 * r ** -0.3 * (1 + 0.05 * c) * (1.1 if part == "dirichlet" else 1.0)
                for seed in (0, 1):
                    curve = [1.0 + 3.0 * float(np.exp(-(t + 1) / tau)) + 0.01 * seed for t in range(horizon)]
                    runs.append({"rank": r, "split": c, "partition": part, "seed": seed, "initial_val_loss": 4.0,
                                 "val_loss_curve": curve, "train_loss_curve": curve})
    path = tmp_path_factory.mktemp("cal2") / "calibration.json"
    atomic_write_json(path, build_calibration(runs, TEST_SHAPE, {}, horizon, "iid", "tests/test_presets.py"))
    return str(path)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_documented_valid_config_that_runs(name, calibration_path):
    assert len(PRESET_DOCS[name]) > 80  # states the regime and the source of its numbers
    cfg = FedsLLMConfig.from_dict(with_preset(name, {"calibration_path": calibration_path}))
    env = gym.make("FedsLLM-Surrogate-v0", config={**PRESETS[name], "calibration_path": calibration_path})
    obs, _ = env.reset(seed=0)
    assert env.unwrapped.config.wireless.num_clients == cfg.wireless.num_clients
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward) and env.observation_space.contains(obs)
    env.close()


def test_presets_change_only_their_regime():
    assert PRESETS["paper-default"] == {} and set(PRESET_DOCS) == set(PRESETS)
    assert {"paper-default", "server-scarce", "memory-capped", "narrow-fs-uplink", "single-tone-fs-uplink",
            "non-iid"} <= set(PRESETS)
    assert FedsLLMConfig.from_dict(PRESETS["non-iid"]).training.partition == "dirichlet"
    scarce = FedsLLMConfig.from_dict(PRESETS["server-scarce"])
    default = FedsLLMConfig()
    assert scarce.compute.server_flops_per_cycle < default.compute.server_flops_per_cycle
    assert scarce.wireless.num_clients > default.wireless.num_clients
    assert FedsLLMConfig.from_dict(PRESETS["memory-capped"]).compute.client_memory_bytes > 0
    narrow = FedsLLMConfig.from_dict(PRESETS["narrow-fs-uplink"]).wireless
    assert narrow.subchannel_bandwidth_fs_hz < default.wireless.subchannel_bandwidth_fs_hz
    assert narrow.subchannel_bandwidth_ms_hz == default.wireless.subchannel_bandwidth_ms_hz
    tone = FedsLLMConfig.from_dict(PRESETS["single-tone-fs-uplink"]).wireless
    assert tone.subchannel_bandwidth_fs_hz < narrow.subchannel_bandwidth_fs_hz


def test_merge_order_and_unknown_names():
    ov = {"wireless": {"num_clients": 7}, "training": {"max_rounds": 3}}
    under = with_preset("server-scarce", ov)  # the preset first, overrides on top
    assert under["wireless"] == {"num_clients": 7, "num_subchannels_ms": 20, "num_subchannels_fs": 20}
    assert under["training"] == {"max_rounds": 3} and under["compute"] == PRESETS["server-scarce"]["compute"]
    assert with_preset("", ov) == ov == {"wireless": {"num_clients": 7}, "training": {"max_rounds": 3}}
    preset_overrides("server-scarce")["wireless"]["num_clients"] = 99  # a copy: PRESETS stays intact
    assert PRESETS["server-scarce"]["wireless"]["num_clients"] == 20
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*paper-default"):
        with_preset("nope")


def test_env_overrides_put_the_preset_under_the_file_and_the_flags(tmp_path):
    from train_scripts._common import env_overrides

    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"compute": {"server_flops_per_cycle": 8.0}}))
    out = env_overrides(str(cfg_file), max_rounds=4, base={"wireless": {"num_clients": 3}}, preset="server-scarce")
    assert out["compute"]["server_flops_per_cycle"] == 8.0  # the file beats the preset
    assert out["wireless"]["num_clients"] == 20  # the preset beats the base
    assert out["training"]["max_rounds"] == 4
    with pytest.raises(ConfigError, match="unknown preset"):
        env_overrides(preset="nope")


def test_figures_compare_policies_per_preset(tmp_path, calibration_path):
    from train_scripts.figures import main

    out = main(["--presets", "paper-default", "narrow-fs-uplink", "--no-sweeps", "--seeds", "0",
                "--rounds-per-point", "1", "--policies", "optimizer", "fixed_rank", "--preset-clients", "3",
                "--calibration-path", calibration_path, "--out-dir", str(tmp_path / "fig")])
    data = json.loads((out / "figures.json").read_text())
    assert set(data) == {"seeds", "rounds_per_point", "presets", "preset_choices"}
    assert (out / "preset_comparison.png").stat().st_size > 0 and data["seeds"] == [0]
    row = data["presets"]["narrow-fs-uplink"]
    assert row["delay_std_s"]["optimizer"] == 0.0  # one seed: no spread
    assert row["delay_s"]["fixed_rank"] >= row["delay_s"]["optimizer"] * (1 - 1e-9)  # the optimizer is best
    c, r = row["choice"]["optimizer"]
    assert 1 <= c <= 5 and r in FedsLLMConfig().model.ranks
    assert set(data["preset_choices"]["paper-default"]) == {"3"}


def test_figures_draw_convergence_curves_beside_the_reference_losses(tmp_path, calibration_path):
    from train_scripts.figures import main

    report = {"task": {"uniform": 7.3, "unigram_pretrain": 6.0, "bigram_pretrain": 4.3, "unigram_task": 4.4,
                       "bigram_task": 1.2, "backbone": 4.0}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    out = main(["--backbone-report", str(tmp_path / "report.json"), "--no-sweeps", "--seeds", "0",
                "--calibration-path", calibration_path, "--out-dir", str(tmp_path / "fig")])
    conv = json.loads((out / "figures.json").read_text())["convergence"]
    assert (out / "convergence_curves.png").stat().st_size > 0
    assert conv["references"]["bigram (task counts)"] == 1.2 and len(conv["curves"]) == 5 * 3 * 2
    assert all(len(c) == 40 for c in conv["curves"].values())
    with pytest.raises(FileNotFoundError, match="backbone-report"):
        main(["--backbone-report", str(tmp_path / "missing.json"), "--no-sweeps",
              "--calibration-path", calibration_path, "--out-dir", str(tmp_path / "fig2")])

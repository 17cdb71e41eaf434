"""Action decoding/encoding and observation encoding: feasibility, round trips, reachability, errors."""

from __future__ import annotations

import numpy as np
import pytest

from fedsllm_env.channel import make_channel_model
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.codecs import make_action_codec, repair_assignment
from fedsllm_env.delay import decision_violations, project_split_rank, split_rank_feasibility
from fedsllm_env.errors import InvalidActionError
from fedsllm_env.profile import ModelShape
from fedsllm_env.spaces import ObservationCodec

SHAPE = ModelShape(n_layer=6, n_embd=128, n_head=4, vocab_size=500)


def _setup(action_mode="box", seed=0, **overrides):
    cfg = FedsLLMConfig(action_mode=action_mode, **overrides)
    g = np.random.default_rng(seed)
    model = make_channel_model(cfg.wireless, cfg.compute)
    scenario = model.draw_scenario(g)
    channel = model.observe(model.initial_state(g, scenario))
    # hybrid: an allocator that is never reached (these tests stop at the (split, rank) bins or before)
    return cfg, make_action_codec(cfg, SHAPE, allocator=lambda *a: None), scenario, channel


@pytest.mark.parametrize("mode", ["box", "multidiscrete"])
def test_random_actions_decode_to_feasible_decisions(mode):
    cfg, codec, scenario, channel = _setup(mode)
    space = codec.space
    space.seed(0)
    for _ in range(300):
        d = codec.decode(space.sample(), scenario, channel)
        assert decision_violations(d, scenario, SHAPE, cfg) == []
        assert d.power_ms_w.sum() <= cfg.wireless.total_power_ms_w * (1 + 1e-9)
        assert np.all(d.power_ms_w > 0) and np.all(d.power_fs_w > 0)


def test_out_of_range_box_values_are_clipped_not_rejected():
    cfg, codec, scenario, channel = _setup()
    a = np.full(codec.space.shape, 5.0, dtype=np.float32)
    d = codec.decode(a, scenario, channel)
    assert d.split == SHAPE.n_layer - 1 and d.rank == cfg.model.ranks[-1]
    assert decision_violations(d, scenario, SHAPE, cfg) == []


@pytest.mark.parametrize("mode", ["box", "multidiscrete", "hybrid"])
def test_bad_actions_raise_clear_errors(mode):
    _, codec, scenario, channel = _setup(mode)
    n = codec.space.shape[0]
    with pytest.raises(InvalidActionError, match="shape"):
        codec.decode(np.zeros(n + 1), scenario, channel)
    bad = np.zeros(n)
    bad[0] = np.nan
    with pytest.raises(InvalidActionError, match="NaN"):
        codec.decode(bad, scenario, channel)


def test_multidiscrete_rejects_fractions():
    _, codec, scenario, channel = _setup("multidiscrete")
    a = np.zeros(codec.space.shape[0])
    a[0] = 0.5
    with pytest.raises(InvalidActionError, match="integers"):
        codec.decode(a, scenario, channel)


@pytest.mark.parametrize("mode", ["box", "multidiscrete"])
def test_every_split_and_rank_bin_is_reachable(mode):
    cfg, codec, scenario, channel = _setup(mode)
    space = codec.space
    space.seed(1)
    seen = {(d.split, d.rank) for d in (codec.decode(space.sample(), scenario, channel) for _ in range(2000))}
    assert {s for s, _ in seen} == set(range(1, SHAPE.n_layer))
    assert {r for _, r in seen} == set(cfg.model.ranks)


def test_box_encode_decode_round_trip_up_to_float32():
    cfg, codec, scenario, channel = _setup()
    space = codec.space
    space.seed(3)
    for _ in range(50):
        d = codec.decode(space.sample(), scenario, channel)
        d2 = codec.decode(codec.encode(d, scenario), scenario, channel)
        assert np.array_equal(d.assign_ms, d2.assign_ms) and np.array_equal(d.assign_fs, d2.assign_fs)
        np.testing.assert_allclose(d2.power_ms_w, d.power_ms_w, rtol=1e-4)
        np.testing.assert_allclose(d2.power_fs_w, d.power_fs_w, rtol=1e-4)
        assert (d2.split, d2.rank) == (d.split, d.rank)


def test_multidiscrete_encode_keeps_owners_split_rank():
    _, codec, scenario, channel = _setup("multidiscrete")
    space = codec.space
    space.seed(4)
    for _ in range(50):
        d = codec.decode(space.sample(), scenario, channel)
        d2 = codec.decode(codec.encode(d, scenario), scenario, channel)
        assert np.array_equal(d.assign_ms, d2.assign_ms)
        assert (d2.split, d2.rank) == (d.split, d.rank)


def test_repair_gives_every_client_a_subchannel():
    pref = np.array([[3.0, 1.0, 0.0], [2.0, 1.5, 0.0], [1.0, 0.0, 0.5], [2.0, 0.0, 0.0]])
    out = repair_assignment(np.array([0, 0, 0, 0]), pref, 3)
    assert sorted(set(out.tolist())) == [0, 1, 2]
    assert out[1] == 1 and out[2] == 2  # the subchannels each lacking client prefers most


def test_observation_in_bounds_and_decodes_back():
    cfg, _, scenario, channel = _setup()
    oc = ObservationCodec(cfg, SHAPE)
    obs = oc.encode(channel, scenario, split=2, rank=4, val_loss=3.0, initial_val_loss=4.0, rounds_done=6)
    space = oc.space()
    assert obs.dtype == np.float32 and space.contains(obs)
    g_ms, g_fs, load, peak = oc.decode_state(obs)
    np.testing.assert_allclose(g_ms, channel.gain_ms, rtol=1e-5)
    np.testing.assert_allclose(g_fs, channel.gain_fs, rtol=1e-5)
    np.testing.assert_allclose(load, channel.load, atol=1e-6)
    np.testing.assert_allclose(peak, scenario.client_peak_flops, rtol=1e-6)
    assert obs[-4] == pytest.approx(0.25) and obs[-2] == pytest.approx(0.75) and obs[-1] == pytest.approx(6 / cfg.training.max_rounds)


def test_memory_limit_masks_and_projects_deep_splits():
    t = FedsLLMConfig().training
    targets = FedsLLMConfig().model.lora_target_modules
    limit = SHAPE.client_memory_bytes(2, 16, targets, t.batch_size, t.seq_len, 32) + 1.0
    cfg, codec, scenario, channel = _setup("multidiscrete", compute={"client_memory_bytes": limit})
    split_ok, rank_ok = split_rank_feasibility(SHAPE, cfg)
    assert split_ok.tolist() == [True, True, False, False, False]
    assert rank_ok.all()
    mask = codec.action_masks()
    assert mask.shape == (int(codec.space.nvec.sum()),)
    assert mask[-10:-5].tolist() == [True, True, False, False, False]
    assert project_split_rank(5, 16, SHAPE, cfg) == (2, 16)

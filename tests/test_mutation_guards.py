"""Guards against plausible one-line bugs that the behavioural tests elsewhere let through.

Each test names the wrong program it catches (checked by making the change locally and watching the
test fail): the observation's features, the reward's signs and settings away from their defaults,
the delay model's max-of-sums, FedAvg in the engine, the channel's dynamics across rounds, the
codecs' and the optimizer's heuristics.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import fedsllm_env  # noqa: F401  (registers the ids)
from fedsllm_env.channel import initial_channel, make_scenario, next_channel
from fedsllm_env.config import FedsLLMConfig, RewardConfig, merge_overrides
from fedsllm_env.delay import expected_total_delay_s, round_delay
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.profile import ModelShape
from fedsllm_env.reward import reward_terms, total_reward
from fedsllm_env.spaces import ObservationCodec
from fedsllm_env.types import ChannelState, Decision, Scenario

N0_W_PER_HZ = 10 ** ((-174 - 30) / 10)
SHAPE = ModelShape(n_layer=6, n_embd=128, n_head=4, vocab_size=500)


# ---- observation -------------------------------------------------------------------------------------------
def test_observation_rank_and_split_features_follow_the_decision():
    """Catches: zeroing (or mis-indexing) the rank feature of the observation."""
    cfg = FedsLLMConfig()
    oc = ObservationCodec(cfg, SHAPE)
    g = np.random.default_rng(0)
    scenario = make_scenario(g, cfg.wireless, cfg.compute)
    channel = initial_channel(g, scenario, cfg.wireless, cfg.compute)
    ranks = cfg.model.ranks
    for i, rank in enumerate(ranks):
        for split in range(1, SHAPE.n_layer):
            obs = oc.encode(channel, scenario, split, rank, 3.0, 4.0, 2)
            assert obs[-3] == pytest.approx(i / (len(ranks) - 1))
            assert obs[-4] == pytest.approx((split - 1) / (SHAPE.n_layer - 2))


def test_env_observation_reports_the_played_rank(calibration_path):
    env = FedsLLMEnv({"calibration_path": calibration_path})
    env.reset(seed=0)
    codec = env.action_codec
    seen = []
    for rank in (16, 1, 4):
        d = codec.decode(env.action_space.sample(), env.scenario, env.channel).replace(rank=rank)
        obs = env.step_decision(d)[0]
        seen.append(float(obs[-3]))
    ranks = env.config.model.ranks
    assert seen == pytest.approx([ranks.index(r) / (len(ranks) - 1) for r in (16, 1, 4)])


# ---- reward --------------------------------------------------------------------------------------------------
def test_reward_terms_signs_and_every_weight():
    """Catches: a flipped progress sign, a dropped weight or scale (defaults 1 hide them)."""
    cfg = RewardConfig(delay_scale_s=4.0, delay_weight=1.5, progress_weight=0.5)
    terms = reward_terms(2.0, prev_val_loss=3.0, val_loss=2.5, initial_val_loss=4.0, cfg=cfg)
    assert terms["delay"] == pytest.approx(-1.5 * 2.0 / 4.0)
    assert terms["progress"] == pytest.approx(0.5 * 0.5 / 4.0)
    assert total_reward(terms) == pytest.approx(-0.75 + 0.0625)
    worse = reward_terms(2.0, prev_val_loss=2.5, val_loss=3.0, initial_val_loss=4.0, cfg=cfg)
    assert worse["progress"] == pytest.approx(-0.0625)


def test_episode_progress_terms_telescope_to_the_loss_drop(calibration_path):
    cfg = {"calibration_path": calibration_path, "training": {"max_rounds": 6},
           "reward": {"progress_weight": 2.0, "delay_scale_s": 3.0, "delay_weight": 0.5}}
    env = FedsLLMEnv(cfg)
    _, info0 = env.reset(seed=1)
    env.action_space.seed(1)
    progress, delay_terms, rewards, round_s = [], [], [], []
    done = False
    while not done:
        _, r, term, trunc, info = env.step(env.action_space.sample())
        progress.append(info["reward_terms"]["progress"])
        delay_terms.append(info["reward_terms"]["delay"])
        rewards.append(r)
        round_s.append(info["round_delay_s"])
        done = term or trunc
    initial = info0["val_loss"]
    assert sum(progress) == pytest.approx(2.0 * (initial - info["val_loss"]) / initial)
    assert sum(progress) > 0  # the loss went down
    assert delay_terms == pytest.approx([-0.5 * t / 3.0 for t in round_s])
    assert rewards == pytest.approx([d + p for d, p in zip(delay_terms, progress)])


# ---- delay model ------------------------------------------------------------------------------------------------
def _crossed_two_clients():
    """Client 0 computes slowly but has the better link, client 1 the opposite: per-term maxima differ
    from the maximum of per-client sums."""
    cfg = FedsLLMConfig.from_dict({
        "wireless": {"num_clients": 2, "num_subchannels_ms": 2, "num_subchannels_fs": 2,
                     "subchannel_bandwidth_ms_hz": 1000.0, "subchannel_bandwidth_fs_hz": 500.0,
                     "downlink_rate_bps": 1e4, "broadcast_rate_bps": 2e4},
        "compute": {"server_cpu_freq_hz": 1e7, "server_flops_per_cycle": 1.0, "backward_factor": 2.0},
        "model": {"ranks": [2], "initial_rank": 2, "lora_target_modules": ["attn.c_attn"], "activation_bits": 16},
        "training": {"batch_size": 2, "seq_len": 8, "local_iterations": 3},
    })
    shape = ModelShape(n_layer=4, n_embd=8, n_head=2, vocab_size=16, n_inner=32)
    scenario = Scenario(np.zeros((2, 2)), np.zeros(2), np.array([1e5, 1e6]), np.ones(2), np.full(2, 0.2))
    p = 0.1
    g1 = N0_W_PER_HZ * 1000.0 / p  # SNR 1 on the MS link (B_s = 1000 Hz) -> rate B_s
    gain_ms = np.array([[15 * g1, 0.0], [0.0, g1]])  # client 0: SNR 15 -> rate 4 B_s
    gain_fs = np.array([[g1 / 2, 0.0], [0.0, 3 * g1 / 2]])  # B_f = 500 Hz: SNR 1 and 3 -> rates B_f, 2 B_f
    channel = ChannelState(gain_ms, gain_fs, np.zeros(2), gain_ms, gain_fs, np.zeros((2, 2)), np.ones(2))
    decision = Decision(np.array([0, 1]), np.array([0, 1]), np.full(2, p), np.full(2, p), split=1, rank=2)
    return cfg, shape, scenario, channel, decision


def test_iteration_delay_is_the_max_of_per_client_sums_by_hand():
    """Catches: T_iter as a sum of per-term maxima; a backward factor or I dropped; a link priced with
    the other link's bandwidth, the downlink at the broadcast rate (or the reverse)."""
    cfg, shape, scenario, channel, decision = _crossed_two_clients()
    flops = 2 * 15360  # b * (one block incl. LoRA), see tests/test_delay.py
    t_f = np.array([flops / 1e5, flops / 1e6])
    t_b = 2.0 * t_f
    up_bits = 2 * 8 * 8 * 16 + 2 * 8 * 4
    t_up = np.array([up_bits / 4000.0, up_bits / 1000.0])
    t_down = 2 * 8 * 8 * 16 / 1e4
    t_s = 2 * 2 * 3 * (3 * 15360 + 2048) / 1e7
    t_iter = max(t_f + t_up) + t_s + max(t_down + t_b)
    assert t_iter < max(t_f) + max(t_up) + t_s + t_down + max(t_b) - 0.1  # the case discriminates
    lora_bits = 2 * (8 + 24) * 16
    lora_up = np.array([lora_bits / 500.0, lora_bits / 1000.0])
    b = round_delay(decision, channel, scenario, shape, cfg)
    assert b.iteration_s == pytest.approx(t_iter, rel=1e-12)
    np.testing.assert_allclose(b.lora_upload_s, lora_up, rtol=1e-12)
    assert b.round_s == pytest.approx(3 * t_iter + max(lora_up) + lora_bits / 2e4, rel=1e-12)
    assert expected_total_delay_s(7.0, b.round_s) == pytest.approx(7.0 * b.round_s)


def test_unequal_power_limits_bind_their_own_link():
    """Catches: the FS total-power limit checked against the MS one (equal defaults hide it)."""
    from fedsllm_env.delay import decision_violations

    cfg = FedsLLMConfig.from_dict({"wireless": {"num_clients": 2, "num_subchannels_ms": 2, "num_subchannels_fs": 2,
                                                "total_power_ms_w": 0.3, "total_power_fs_w": 0.1}})
    scenario = Scenario(np.zeros((2, 2)), np.zeros(2), np.ones(2), np.ones(2), np.full(2, 0.2))
    ok = Decision(np.array([0, 1]), np.array([0, 1]), np.full(2, 0.14), np.full(2, 0.05), 1, 4)
    assert decision_violations(ok, scenario, SHAPE, cfg) == []
    fs_over = ok.replace(power_fs_w=np.full(2, 0.06))
    assert any("FS link: total power" in v for v in decision_violations(fs_over, scenario, SHAPE, cfg))
    ms_over = ok.replace(power_ms_w=np.full(2, 0.16))
    assert any("MS link: total power" in v for v in decision_violations(ms_over, scenario, SHAPE, cfg))


# ---- channel dynamics across rounds ----------------------------------------------------------------------------
def _channel_cfg(**wireless):
    return FedsLLMConfig.from_dict({"wireless": {"num_clients": 4, "num_subchannels_ms": 6,
                                                 "num_subchannels_fs": 5, **wireless}})


def test_fading_correlation_between_rounds_matches_rho():
    """Catches: the Gauss-Markov coefficient ignored or inverted, the FS link not evolving, the
    innovation of one link reused for the other."""
    for rho in (0.0, 0.5, 0.9):
        cfg = _channel_cfg(fading_correlation=rho, num_clients=8, num_subchannels_ms=40, num_subchannels_fs=30)
        g = np.random.default_rng(3)
        scenario = make_scenario(g, cfg.wireless, cfg.compute)
        state = initial_channel(g, scenario, cfg.wireless, cfg.compute)
        prev_ms, prev_fs, now_ms, now_fs = [], [], [], []
        for _ in range(60):
            nxt = next_channel(g, state, scenario, cfg.wireless, cfg.compute)
            prev_ms.append(state.fading_ms.ravel())
            now_ms.append(nxt.fading_ms.ravel())
            prev_fs.append(state.fading_fs.ravel())
            now_fs.append(nxt.fading_fs.ravel())
            state = nxt
        for prev, now in ((prev_ms, now_ms), (prev_fs, now_fs)):
            a, b = np.concatenate(prev), np.concatenate(now)
            corr = float(np.real(np.vdot(a, b)) / np.sqrt(np.vdot(a, a).real * np.vdot(b, b).real))
            assert corr == pytest.approx(rho, abs=0.03)
            assert float(np.mean(np.abs(b) ** 2)) == pytest.approx(1.0, abs=0.05)
        ms_innov = np.concatenate(now_ms) - rho * np.concatenate(prev_ms)
        fs_innov = np.concatenate(now_fs) - rho * np.concatenate(prev_fs)
        n = min(ms_innov.size, fs_innov.size)
        assert abs(np.vdot(ms_innov[:n], fs_innov[:n])) / n < 0.05  # independent innovations


def test_gains_follow_fading_and_large_scale_every_round():
    """Catches: gains computed from last round's fading, or without the large-scale factor."""
    cfg = _channel_cfg(mobility_speed_mps=30.0)
    g = np.random.default_rng(5)
    scenario = make_scenario(g, cfg.wireless, cfg.compute)
    state = initial_channel(g, scenario, cfg.wireless, cfg.compute)
    from fedsllm_env.channel import large_scale_gain

    for _ in range(5):
        state = next_channel(g, state, scenario, cfg.wireless, cfg.compute)
        ls = large_scale_gain(state.positions_m, scenario.shadowing_db)
        np.testing.assert_allclose(state.large_scale_gain, ls, rtol=1e-12)
        np.testing.assert_allclose(state.gain_ms, ls[:, None] * np.abs(state.fading_ms) ** 2, rtol=1e-12)
        np.testing.assert_allclose(state.gain_fs, ls[:, None] * np.abs(state.fading_fs) ** 2, rtol=1e-12)


def test_mobility_moves_clients_by_speed_times_interval():
    """Catches: the interval or the speed dropped from the step length (interval 1 s hides the former)."""
    cfg = _channel_cfg(mobility_speed_mps=3.0, mobility_interval_s=2.5, cell_radius_m=5000.0, min_distance_m=1.0)
    g = np.random.default_rng(8)
    scenario = make_scenario(g, cfg.wireless, cfg.compute)
    state = initial_channel(g, scenario, cfg.wireless, cfg.compute)
    nxt = next_channel(g, state, scenario, cfg.wireless, cfg.compute)
    step = np.linalg.norm(nxt.positions_m - state.positions_m, axis=1)
    inside = np.linalg.norm(state.positions_m, axis=1) < 4900
    np.testing.assert_allclose(step[inside], 7.5, rtol=1e-9)


def test_load_ar1_step_by_hand():
    """Catches: the AR coefficient applied to the load instead of its deviation from the mean."""
    from fedsllm_env.channel import step_load
    from fedsllm_env.config import ComputeConfig

    c = ComputeConfig(load_mean=0.3, load_ar_coef=0.5, load_noise_std=0.1, load_max=0.9)
    out = step_load(np.array([0.7, 0.1, 0.85]), c, np.array([1.0, -1.0, 10.0]))
    np.testing.assert_allclose(out, [0.3 + 0.5 * 0.4 + 0.1, 0.3 - 0.5 * 0.2 - 0.1, 0.9])


# ---- config merging --------------------------------------------------------------------------------------------
def test_merge_overrides_is_deep_and_leaves_inputs_alone():
    base = {"training": {"seq_len": 32, "batch_size": 4}, "mode": "real"}
    patch = {"training": {"max_rounds": 5}, "wireless": {"num_clients": 3}}
    out = merge_overrides(base, patch, None, {"training": {"seq_len": 16}})
    assert out == {"training": {"seq_len": 16, "batch_size": 4, "max_rounds": 5}, "mode": "real",
                   "wireless": {"num_clients": 3}}
    assert base == {"training": {"seq_len": 32, "batch_size": 4}, "mode": "real"}
    out["wireless"]["num_clients"] = 9
    assert patch["wireless"]["num_clients"] == 3


# ---- env wiring -----------------------------------------------------------------------------------------------
def test_step_prices_the_channel_the_observation_showed(calibration_path):
    """Catches: the channel advanced before pricing the round (the agent would act on stale gains)."""
    env = FedsLLMEnv({"calibration_path": calibration_path})
    env.reset(seed=4)
    for _ in range(3):
        channel = env.channel
        a = env.action_space.sample()
        d = env.action_codec.decode(a, env.scenario, channel)
        _, _, _, _, info = env.step(a)
        expected = round_delay(d, channel, env.scenario, env.shape, env.config).round_s
        assert info["round_delay_s"] == expected
        assert env.channel is not channel


def test_expected_total_delay_uses_the_rank_played(calibration_path):
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path})
    env.reset(seed=0)
    base = env.unwrapped
    for rank in (1, 16):
        d = base.action_codec.decode(env.action_space.sample(), base.scenario, base.channel).replace(rank=rank)
        info = base.step_decision(d)[4]
        assert info["expected_rounds"] == base.calibration.rounds_needed(rank)
        assert info["expected_total_delay_s"] == pytest.approx(base.calibration.rounds_needed(rank)
                                                               * info["round_delay_s"])
    assert math.isfinite(info["cumulative_delay_s"])

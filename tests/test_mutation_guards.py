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
from fedsllm_env.channel import MacroChannel
from fedsllm_env.config import FedsLLMConfig, RewardConfig, merge_overrides
from fedsllm_env.delay import expected_total_delay_s, round_delay
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.profile import ModelShape
from fedsllm_env.reward import reward_terms, total_reward
from fedsllm_env.spaces import ObservationCodec
from fedsllm_env.types import Decision, Scenario

SHAPE = ModelShape(n_layer=6, n_embd=128, n_head=4, vocab_size=500)


# ---- observation -------------------------------------------------------------------------------------------
def test_observation_rank_and_split_features_follow_the_decision():
    """Catches: zeroing (or mis-indexing) the rank feature of the observation."""
    cfg = FedsLLMConfig()
    oc = ObservationCodec(cfg, SHAPE)
    g = np.random.default_rng(0)
    model = MacroChannel(cfg.wireless, cfg.compute)
    scenario = model.draw_scenario(g)
    channel = model.observe(model.initial_state(g, scenario))
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
    for rank in (16, 4, 64):
        d = codec.decode(env.action_space.sample(), env.scenario, env.channel).replace(rank=rank)
        obs = env.step_decision(d)[0]
        seen.append(float(obs[-3]))
    ranks = env.config.model.ranks
    assert seen == pytest.approx([ranks.index(r) / (len(ranks) - 1) for r in (16, 4, 64)])


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
def test_iteration_delay_is_the_max_of_per_client_sums_by_hand(two_client_case):
    """Catches: T_iter as a sum of per-term maxima; a backward factor or I dropped; a link priced with
    the other link's bandwidth, the downlink at the broadcast rate (or the reverse).

    Client 0 computes slowly but has the better MS link, client 1 the opposite, so per-term maxima
    differ from the maximum of per-client sums; B_f = 500 Hz and the broadcast rate differ from the MS
    link's numbers.
    """
    cfg, shape, scenario, channel, decision = two_client_case(cpu_freq_hz=(1e5, 1e6), load=(0.0, 0.0),
                                                              snr_ms=(15.0, 1.0), snr_fs=(1.0, 3.0),
                                                              bandwidth_fs_hz=500.0, broadcast_rate_bps=2e4)
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
    scenario = Scenario(np.ones(2), np.ones(2), np.full(2, 0.2))
    ok = Decision(np.array([0, 1]), np.array([0, 1]), np.full(2, 0.14), np.full(2, 0.05), 1, 4)
    assert decision_violations(ok, scenario, SHAPE, cfg) == []
    fs_over = ok.replace(power_fs_w=np.full(2, 0.06))
    assert any("FS link: total power" in v for v in decision_violations(fs_over, scenario, SHAPE, cfg))
    ms_over = ok.replace(power_ms_w=np.full(2, 0.16))
    assert any("MS link: total power" in v for v in decision_violations(ms_over, scenario, SHAPE, cfg))


# ---- channel dynamics across rounds ----------------------------------------------------------------------------
def test_fading_of_each_link_correlates_with_rho_between_rounds():
    """Catches: the FS link's fading frozen (or re-drawn) across rounds, the Gauss-Markov coefficient
    ignored, one link's innovation reused for the other (tests/test_channel_models.py checks the MS
    gains' power correlation and the links' cross-correlation)."""
    for rho in (0.0, 0.5, 0.9):
        cfg = FedsLLMConfig.from_dict({"wireless": {"num_clients": 8, "num_subchannels_ms": 40,
                                                    "num_subchannels_fs": 30, "fading_correlation": rho}})
        model, g = MacroChannel(cfg.wireless, cfg.compute), np.random.default_rng(3)
        scenario = model.draw_scenario(g)
        state = model.initial_state(g, scenario)
        pairs = {"ms": ([], []), "fs": ([], [])}
        for _ in range(60):
            nxt = model.next_state(g, state, scenario)
            for link in pairs:
                pairs[link][0].append(getattr(state, f"fading_{link}").ravel())
                pairs[link][1].append(getattr(nxt, f"fading_{link}").ravel())
            state = nxt
        innovations = []
        for prev, now in pairs.values():
            a, b = np.concatenate(prev), np.concatenate(now)
            corr = float(np.real(np.vdot(a, b)) / np.sqrt(np.vdot(a, a).real * np.vdot(b, b).real))
            assert corr == pytest.approx(rho, abs=0.03)
            assert float(np.mean(np.abs(b) ** 2)) == pytest.approx(1.0, abs=0.05)
            innovations.append(b - rho * a)
        n = min(x.size for x in innovations)
        assert abs(np.vdot(innovations[0][:n], innovations[1][:n])) / n < 0.05  # independent innovations


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
    for rank in (8, 16):
        d = base.action_codec.decode(env.action_space.sample(), base.scenario, base.channel).replace(rank=rank)
        info = base.step_decision(d)[4]
        assert info["expected_rounds"] == base.calibration.rounds_needed(rank)
        assert info["expected_total_delay_s"] == pytest.approx(base.calibration.rounds_needed(rank)
                                                               * info["round_delay_s"])
    assert math.isfinite(info["cumulative_delay_s"])

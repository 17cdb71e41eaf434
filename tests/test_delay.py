"""Delay model on hand-computed cases, and the feasibility checker on every kind of violation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsllm_env.delay import (
    check_feasible,
    client_rates_bps,
    decision_violations,
    expected_total_delay_s,
    payload_bits,
    round_delay,
    subchannel_rates_bps,
)
from fedsllm_env.errors import InfeasibleDecisionError

N0_W_PER_HZ = 10 ** ((-174 - 30) / 10)


def test_rate_of_one_subchannel_by_hand():
    b_hz, p_w, g = 1e6, 0.1, 1e-10
    expected = b_hz * math.log2(1 + p_w * g / (N0_W_PER_HZ * b_hz))  # ~11.29 Mbit/s
    rate = subchannel_rates_bps(np.array([0]), np.array([p_w]), np.array([[g]]), b_hz, N0_W_PER_HZ)
    assert rate[0] == pytest.approx(expected, rel=1e-12)
    assert 11.2e6 < rate[0] < 11.4e6


def test_client_rate_sums_its_subchannels_and_uses_owner_gain():
    gain = np.array([[1e-10, 2e-10, 1e-12], [5e-11, 1e-13, 4e-10]])
    assign = np.array([0, 0, 1])
    power = np.array([0.1, 0.05, 0.2])
    rates = client_rates_bps(assign, power, gain, 1e6, N0_W_PER_HZ)
    r = lambda p, g: 1e6 * math.log2(1 + p * g / (N0_W_PER_HZ * 1e6))  # noqa: E731
    assert rates[0] == pytest.approx(r(0.1, 1e-10) + r(0.05, 2e-10))
    assert rates[1] == pytest.approx(r(0.2, 4e-10))


def test_two_client_round_delay_by_hand(two_client_case):
    cfg, shape, scenario, channel, decision = two_client_case()
    # FLOPs per sequence of one block: dense 2n(3d^2+d^2+2df) = 12288, attention 4n^2 d = 2048,
    # LoRA on c_attn 2n r (d + 3d) = 1024 -> 15360; LM head 2 n d V = 2048.
    t_f = 2 * 15360 / 1e6  # both clients have 1e6 FLOP/s available (2e6 at load 0.5)
    t_b = 2 * t_f
    t_s = 2 * 2 * 3 * (3 * 15360 + 2048) / 1e7
    up_bits = 2 * 8 * 8 * 16 + 2 * 8 * 4  # activations b n d q + labels b n log2 V
    t_up = np.array([up_bits / 1000.0, up_bits / 2000.0])
    t_down = 2 * 8 * 8 * 16 / 1e4
    t_iter = max(t_f + t_up) + t_s + (t_down + t_b)
    lora_bits = 1 * 2 * (8 + 24) * 16
    t_round = 3 * t_iter + lora_bits / 1000.0 + lora_bits / 1e4
    b = round_delay(decision, channel, scenario, shape, cfg)
    np.testing.assert_allclose(b.client_forward_s, [t_f, t_f])
    np.testing.assert_allclose(b.client_backward_s, [t_b, t_b])
    np.testing.assert_allclose(b.activation_upload_s, t_up)
    assert b.server_compute_s == pytest.approx(t_s)
    assert b.iteration_s == pytest.approx(t_iter)
    np.testing.assert_allclose(b.lora_upload_s, [lora_bits / 1000.0] * 2)
    assert b.round_s == pytest.approx(t_round)
    assert b.round_s == pytest.approx(8.5265408)
    assert expected_total_delay_s(12.5, b.round_s) == pytest.approx(12.5 * t_round)
    assert payload_bits(shape, 1, 2, cfg) == (2048.0, 64.0, 1024.0)


def test_delay_monotone_in_power_and_split_moves_compute(two_client_case):
    cfg, shape, scenario, channel, decision = two_client_case()
    base = round_delay(decision, channel, scenario, shape, cfg)
    more_power = round_delay(decision.replace(power_ms_w=decision.power_ms_w * 2), channel, scenario, shape, cfg)
    assert more_power.round_s < base.round_s
    deeper = round_delay(decision.replace(split=3), channel, scenario, shape, cfg)
    assert np.all(deeper.client_forward_s > base.client_forward_s)
    assert deeper.server_compute_s < base.server_compute_s
    assert deeper.lora_bits == 3 * base.lora_bits


def test_client_without_rate_gets_infinite_delay(two_client_case):
    cfg, shape, scenario, channel, decision = two_client_case()
    b = round_delay(decision.replace(power_ms_w=np.array([0.0, 0.1])), channel, scenario, shape, cfg)
    assert np.isinf(b.activation_upload_s[0]) and np.isinf(b.round_s)


@pytest.mark.parametrize("change, match", [
    ({"assign_ms": np.array([0, 0])}, r"MS link: clients \[1\] have no subchannel"),
    ({"assign_fs": np.array([0, 2])}, "FS assignment must hold client indices"),
    ({"assign_ms": np.array([0, 1, 1])}, "MS assignment must have shape"),
    ({"power_ms_w": np.array([0.3, 0.1])}, "MS link: client 0 power 0.3 W > p_max"),
    ({"power_fs_w": np.array([0.1, -0.1])}, "FS power must be >= 0"),
    ({"power_fs_w": np.array([np.nan, 0.1])}, "NaN"),
    ({"split": 4}, r"split 4 outside \[1, 3\]"),
    ({"rank": 3}, "rank 3 not in candidate ranks"),
])
def test_feasibility_checker_rejects_each_violation(change, match, two_client_case):
    cfg, shape, scenario, channel, decision = two_client_case()
    bad = decision.replace(**change)
    with pytest.raises(InfeasibleDecisionError, match=match):
        check_feasible(bad, scenario, shape, cfg)


def test_total_power_limit_and_multiple_violations_listed(two_client_case):
    cfg, shape, scenario, channel, decision = two_client_case()
    cfg = cfg.replace(wireless=cfg.wireless.replace(total_power_ms_w=0.15))
    assert decision_violations(decision, scenario, shape, cfg) == ["MS link: total power 0.2 W > limit 0.15 W"]
    bad = decision.replace(split=9, rank=5)
    assert len(decision_violations(bad, scenario, shape, cfg)) == 3
    check_feasible(decision.replace(power_ms_w=np.array([0.075, 0.075])), scenario, shape, cfg)


@pytest.mark.parametrize("dtype,wire_bits,bytes_per_weight", [
    ("float32", 32, 4), ("float32", 8, 4), ("float32", 16, 4),  # an 8-bit wire does not shrink fp32 weights
    ("bfloat16", 32, 2), ("bfloat16", 8, 2), ("float16", 16, 2),  # a 32-bit wire does not grow bf16 weights
])
def test_client_memory_counts_frozen_weights_at_the_compute_dtype(dtype, wire_bits, bytes_per_weight):
    from fedsllm_env.config import FedsLLMConfig
    from fedsllm_env.delay import client_memory_bytes
    from fedsllm_env.profile import ModelShape

    shape = ModelShape(n_layer=6, n_embd=128, n_head=4, vocab_size=1536, n_positions=256)
    base = FedsLLMConfig()
    cfg = base.replace(model=base.model.replace(dtype=dtype, activation_bits=wire_bits))
    t, targets = cfg.training, cfg.model.lora_target_modules
    for split, rank in ((1, 4), (3, 16), (5, 64)):
        frozen = shape.client_param_count(split) * bytes_per_weight
        lora_and_adam = shape.client_lora_params(split, rank, targets) * 4 * 4  # params, grads, 2 moments (fp32)
        saved = split * shape.activation_elements(t.batch_size, t.seq_len) * 4
        assert client_memory_bytes(split, rank, shape, cfg) == pytest.approx(frozen + lora_and_adam + saved, rel=1e-12)
    # one more block costs its frozen weights at the dtype's bytes, whatever the wire
    step = client_memory_bytes(3, 16, shape, cfg) - client_memory_bytes(2, 16, shape, cfg)
    lora_step = (shape.client_lora_params(3, 16, targets) - shape.client_lora_params(2, 16, targets)) * 16
    assert step - lora_step - shape.activation_elements(t.batch_size, t.seq_len) * 4 == pytest.approx(
        shape.block_params() * bytes_per_weight, rel=1e-9)
    with pytest.raises(ValueError, match="weight_bits must be an int >= 1"):
        shape.client_memory_bytes(1, 4, targets, 8, 80, 0)


def test_memory_capped_preset_numbers_match_its_doc():
    """The preset's doc: 4.73 MB at cut 2 / r = 64, 4.87 MB at cut 3 / r = 16, cut 4 from 5.6 MB (fp32)."""
    from fedsllm_env.calibration import load_calibration
    from fedsllm_env.config import FedsLLMConfig
    from fedsllm_env.delay import client_memory_bytes, memory_violations
    from fedsllm_env.presets import PRESET_DOCS, PRESETS

    cfg = FedsLLMConfig.from_dict(PRESETS["memory-capped"])
    shape = load_calibration().shape
    assert cfg.model.dtype == "float32" and "frozen weights at model.dtype (fp32 by default;" in PRESET_DOCS[
        "memory-capped"]
    assert client_memory_bytes(2, 64, shape, cfg) / 1e6 == pytest.approx(4.73, abs=0.005)
    assert client_memory_bytes(3, 16, shape, cfg) / 1e6 == pytest.approx(4.87, abs=0.005)
    assert client_memory_bytes(4, 4, shape, cfg) / 1e6 == pytest.approx(5.6, abs=0.005)
    fits = {(c, r) for c in range(1, 6) for r in cfg.model.ranks if not memory_violations(c, r, shape, cfg)}
    assert fits == {(c, r) for c in (1, 2) for r in cfg.model.ranks} | {(3, r) for r in (4, 8, 16)}
    bf16 = cfg.replace(model=cfg.model.replace(dtype="bfloat16"))
    fits_bf16 = {(c, r) for c in range(1, 6) for r in cfg.model.ranks if not memory_violations(c, r, shape, bf16)}
    assert [max(r for c, r in fits_bf16 if c == cut) for cut in (3, 4, 5)] == [32, 16, 8]
    assert client_memory_bytes(5, 8, shape, bf16) / 1e6 == pytest.approx(4.57, abs=0.005)

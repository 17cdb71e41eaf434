"""Heterogeneous clients in the delay and memory model (a cut c_k and a rank r_k per client; SPEC section
"Heterogeneous clients"): a hand-worked two-client case, the homogeneous profile bit for bit equal to the
shared-cut model (single and batched), batched == single row by row for mixed profiles, monotonicity,
payload scaling, the broadcast's max, and the errors on bad profiles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import (
    check_feasible,
    client_compute_s,
    client_memory_bytes,
    client_payload_bits,
    client_profile,
    decision_violations,
    memory_violations,
    payload_bits,
    round_delay,
    server_compute_s,
    server_rank,
)
from fedsllm_env.errors import InfeasibleDecisionError
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import ChannelState, Decision, DelayBreakdown, Scenario
from fedsllm_env.vector.channel import BatchedChannel
from fedsllm_env.vector.codecs import BatchedDecisions
from fedsllm_env.vector.delay import DelayTables, batched_round_delay, batched_round_delay_per_client

from tests.conftest import TEST_SHAPE

LLAMA_SHAPE = ModelShape(n_layer=5, n_embd=64, n_head=4, vocab_size=300, n_inner=176, n_kv_head=2, gated_mlp=True,
                         position_rows=0, tied_embeddings=False, qkv_bias=False, o_bias=False, mlp_bias=False,
                         norm_bias=False, modules=(("self_attn.q_proj", "q"), ("self_attn.k_proj", "k"),
                                                   ("self_attn.v_proj", "v"), ("self_attn.o_proj", "o"),
                                                   ("mlp.gate_proj", "gate"), ("mlp.up_proj", "up"),
                                                   ("mlp.down_proj", "down")))

FIELDS = [f.name for f in dataclasses.fields(DelayBreakdown)]


def _hetero_case(two_client_case, **kwargs):
    """The two-client hand case with candidate ranks {2, 4}."""
    cfg, shape, scenario, channel, decision = two_client_case(**kwargs)
    cfg = cfg.replace(model=cfg.model.replace(ranks=(2, 4)))
    return cfg, shape, scenario, channel, decision


# ---- a hand-worked example ---------------------------------------------------------------------------------
def test_two_clients_with_different_cuts_and_ranks_by_hand(two_client_case):
    cfg, shape, scenario, channel, decision = _hetero_case(two_client_case)
    # shape: L = 4, d = 8, f = 32, 2 heads of 4, V = 16; b = 2, n = 8, q = 16; LoRA on attn.c_attn (8 -> 24).
    # FLOPs per sequence of one block: dense 2n(3d^2 + d^2 + 2df) = 12288, attention 4 n^2 d = 2048,
    # LoRA 2 n r (d + 3d) = 512 r -> 15360 at r = 2, 16384 at r = 4; LM head 2 n d V = 2048.
    # client 0: cut 1, rank 2, 1e6 FLOP/s free; client 1: cut 2, rank 4, 2e6 FLOP/s at load 0.5.
    dec = decision.replace(split=np.array([1, 2]), rank=np.array([2, 4]))
    t_f = np.array([2 * 1 * 15360 / 1e6, 2 * 2 * 16384 / (2e6 * 0.5)])
    t_b = 2 * t_f
    # MS at r_g = max(2, 4) = 4: client 0's blocks 2..4, client 1's blocks 3..4, each + head, x b x (1 + 2)
    t_s = 2 * 3 * ((3 * 16384 + 2048) + (2 * 16384 + 2048)) / 1e7
    up_bits = 2 * 8 * 8 * 16 + 2 * 8 * 4  # activations b n d q + labels b n log2 V, whatever the cut
    t_up = np.array([up_bits / 1000.0, up_bits / 2000.0])  # SNR 1 and 3 on 1 kHz: 1 and 2 kbit/s
    t_down = 2 * 8 * 8 * 16 / 1e4
    lora_bits = np.array([1 * 2 * (8 + 24) * 16, 2 * 4 * (8 + 24) * 16])  # c_k r_k (d_in + d_out) q
    t_lora = lora_bits / 1000.0  # SNR 1 on 1 kHz
    t_bcast = 4096 / 1e4  # the larger truncated adapter (client 1's) at 10 kbit/s
    t_iter = max(t_f + t_up) + t_s + max(t_down + t_b)
    t_round = 3 * t_iter + max(t_lora) + t_bcast

    b = round_delay(dec, channel, scenario, shape, cfg)
    np.testing.assert_allclose(b.client_forward_s, t_f, rtol=1e-15)
    np.testing.assert_allclose(b.client_backward_s, t_b, rtol=1e-15)
    np.testing.assert_allclose(b.activation_upload_s, t_up, rtol=1e-15)
    np.testing.assert_allclose(b.gradient_download_s, [t_down, t_down], rtol=1e-15)
    assert b.server_compute_s == pytest.approx(t_s, rel=1e-15)
    np.testing.assert_array_equal(b.lora_bits, lora_bits)
    np.testing.assert_allclose(b.lora_upload_s, t_lora, rtol=1e-15)
    assert b.broadcast_s == pytest.approx(t_bcast, rel=1e-15)
    assert b.iteration_s == pytest.approx(t_iter, rel=1e-15)
    assert b.round_s == pytest.approx(t_round, rel=1e-15)
    # the numbers: T_iter = max(0.03072 + 2.112, 0.065536 + 1.056) + 0.0516096 + max(0.2048 + 0.06144,
    # 0.2048 + 0.131072); T_round = 3 T_iter + max(1.024, 4.096) + 0.4096
    assert b.round_s == pytest.approx(3 * (2.14272 + 0.0516096 + 0.335872) + 4.096 + 0.4096, rel=1e-12)
    assert b.round_s == pytest.approx(12.0962048, rel=1e-12)
    assert b.activation_bits == 2048.0 and b.label_bits == 64.0
    info = b.as_info()
    assert info["lora_bits"] == 4096.0 and info["client_forward_s"] == pytest.approx(0.065536)
    assert decision_violations(dec, scenario, shape, cfg) == []
    assert dec.to_dict()["split"] == [1, 2] and dec.to_dict()["rank"] == [2, 4]


def test_server_rank_is_the_largest_client_rank_or_the_configured_one(two_client_case):
    cfg, shape, scenario, channel, decision = _hetero_case(two_client_case)
    cuts = np.array([1, 2])
    assert server_rank(np.array([2, 4]), cfg) == 4
    assert server_rank(np.array([2, 2]), cfg, global_rank=4) == 4
    t_max = server_compute_s(shape, cuts, np.array([2, 4]), 2, cfg)
    # lowering the low-rank client's rank further cannot be seen on the MS: r_g is still 4 (only {2, 4} here,
    # so compare with client 0 at 4 too: the MS pays r_g for both)
    assert server_compute_s(shape, cuts, np.array([4, 4]), 2, cfg) == t_max
    t_2 = server_compute_s(shape, cuts, np.array([2, 2]), 2, cfg)
    assert t_2 == pytest.approx(2 * 3 * ((3 * 15360 + 2048) + (2 * 15360 + 2048)) / 1e7, rel=1e-15)
    assert server_compute_s(shape, cuts, np.array([2, 2]), 2, cfg, global_rank=4) == t_max
    dec = decision.replace(split=cuts, rank=np.array([2, 2]))
    assert round_delay(dec, channel, scenario, shape, cfg, global_rank=4).server_compute_s == t_max
    with pytest.raises(InfeasibleDecisionError, match=r"global rank 3 not in candidate ranks \(2, 4\)"):
        server_compute_s(shape, cuts, np.array([2, 2]), 2, cfg, global_rank=3)


# ---- the homogeneous profile, bit for bit ------------------------------------------------------------------
def _random_case(seed: int):
    """A random config, model shape, scenario, channel and decision (every client owns a subchannel per link)."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 7))
    m, n = k + int(rng.integers(0, 4)), k + int(rng.integers(0, 4))
    shape = ModelShape(**TEST_SHAPE) if seed % 2 else LLAMA_SHAPE
    targets = [["attn.c_attn", "attn.c_proj"], ["all"], ["mlp"]][seed % 3]
    cfg = FedsLLMConfig.from_dict({
        "wireless": {"num_clients": k, "num_subchannels_ms": m, "num_subchannels_fs": n,
                     "subchannel_bandwidth_ms_hz": float(rng.uniform(1e5, 2e6)),
                     "subchannel_bandwidth_fs_hz": float(rng.uniform(1e5, 2e6)),
                     "downlink_rate_bps": float(rng.uniform(1e6, 1e8)),
                     "broadcast_rate_bps": float(rng.uniform(1e6, 1e8))},
        "compute": {"server_cpu_freq_hz": float(rng.uniform(1e9, 4e9)),
                    "server_flops_per_cycle": float(rng.choice([16.0, 80.0, 33.3])),
                    "backward_factor": float(rng.choice([2.0, 1.7, 2.3]))},
        "model": {"lora_target_modules": targets, "activation_bits": int(rng.choice([8, 16, 32]))},
        "training": {"batch_size": int(rng.integers(1, 17)), "seq_len": int(rng.integers(8, 129)),
                     "local_iterations": int(rng.integers(1, 5))},
    })
    scenario = Scenario(client_cpu_freq_hz=rng.uniform(1e9, 2e9, k), client_flops_per_cycle=np.ones(k),
                        client_max_power_w=np.full(k, 0.2))
    channel = ChannelState(10 ** rng.uniform(-13, -9, (k, m)), 10 ** rng.uniform(-13, -9, (k, n)),
                           rng.uniform(0.0, 0.9, k))
    assign_ms = np.concatenate([rng.permutation(k), rng.integers(0, k, m - k)])
    assign_fs = np.concatenate([rng.permutation(k), rng.integers(0, k, n - k)])
    decision = Decision(assign_ms, assign_fs, rng.uniform(0.01, 0.1, m), rng.uniform(0.01, 0.1, n),
                        split=int(rng.integers(1, shape.n_layer)), rank=int(rng.choice(cfg.model.ranks)))
    return rng, cfg, shape, scenario, channel, decision


def _assert_breakdowns_identical(a: DelayBreakdown, b: DelayBreakdown) -> None:
    for name in FIELDS:
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert np.array_equal(np.broadcast_to(x, np.broadcast_shapes(x.shape, y.shape)),
                              np.broadcast_to(y, np.broadcast_shapes(x.shape, y.shape))), name


@pytest.mark.parametrize("seed", range(24))
def test_equal_per_client_profile_is_bit_identical_to_the_shared_one(seed):
    rng, cfg, shape, scenario, channel, decision = _random_case(seed)
    k = scenario.num_clients
    shared = round_delay(decision, channel, scenario, shape, cfg)
    c, r = decision.split, decision.rank
    for split, rank in ((np.full(k, c), np.full(k, r)), (c, np.full(k, r)), (np.full(k, c), r),
                        (np.full(k, float(c)), np.full(k, r, dtype=np.int32))):
        per_client = round_delay(decision.replace(split=split, rank=rank), channel, scenario, shape, cfg)
        _assert_breakdowns_identical(shared, per_client)
        assert per_client.round_s == shared.round_s and per_client.server_compute_s == shared.server_compute_s
    # an explicit global rank equal to the shared rank takes the per-client path: still the same numbers
    _assert_breakdowns_identical(shared, round_delay(decision, channel, scenario, shape, cfg, global_rank=r))
    assert server_compute_s(shape, np.full(k, c), np.full(k, r), k, cfg) == server_compute_s(shape, c, r, k, cfg)
    fwd, bwd = client_compute_s(shape, np.full(k, c), np.full(k, r), scenario, channel.load, cfg)
    fwd0, bwd0 = client_compute_s(shape, c, r, scenario, channel.load, cfg)
    assert np.array_equal(fwd, fwd0) and np.array_equal(bwd, bwd0)
    assert np.array_equal(client_memory_bytes(np.full(k, c), np.full(k, r), shape, cfg),
                          np.full(k, client_memory_bytes(c, r, shape, cfg)))


def _batched_state(cfg: FedsLLMConfig, shape: ModelShape, cases: list) -> tuple[DelayTables, BatchedChannel,
                                                                                  BatchedDecisions]:
    """The batch whose env i holds ``cases[i]`` = (scenario, channel, decision) (shared split/rank indices)."""
    b = len(cases)
    tables = DelayTables.build(shape, cfg, lambda r, c: 1.0)
    ch = BatchedChannel(b, cfg.wireless, cfg.compute)
    for i, (scenario, channel, _) in enumerate(cases):
        ch.gain_ms[i] = channel.gain_ms
        ch.gain_fs[i] = channel.gain_fs
        ch.load[i] = channel.load
        ch.peak_flops[i] = scenario.client_peak_flops
    ranks = cfg.model.ranks
    dec = BatchedDecisions(np.stack([d.assign_ms for _, _, d in cases]), np.stack([d.assign_fs for _, _, d in cases]),
                           np.stack([d.power_ms_w for _, _, d in cases]), np.stack([d.power_fs_w for _, _, d in cases]),
                           np.array([int(d.split) - 1 for _, _, d in cases]),
                           np.array([ranks.index(int(d.rank)) for _, _, d in cases]))
    return tables, ch, dec


def _cases(seed: int, b: int):
    """``b`` envs of one random config: random devices, channels, owners, powers, shared cut and rank."""
    rng, cfg, shape, scenario, channel, decision = _random_case(seed)
    k, m, n = scenario.num_clients, len(decision.assign_ms), len(decision.assign_fs)
    cases = []
    for _ in range(b):
        sc = Scenario(rng.uniform(1e9, 2e9, k), np.ones(k), np.full(k, 0.2))
        chn = ChannelState(10 ** rng.uniform(-13, -9, (k, m)), 10 ** rng.uniform(-13, -9, (k, n)),
                           rng.uniform(0.0, 0.9, k))
        dec = decision.replace(assign_ms=np.concatenate([rng.permutation(k), rng.integers(0, k, m - k)]),
                               power_ms_w=rng.uniform(0.01, 0.1, m), power_fs_w=rng.uniform(0.01, 0.1, n),
                               split=int(rng.integers(1, shape.n_layer)), rank=int(rng.choice(cfg.model.ranks)))
        cases.append((sc, chn, dec))
    return rng, cfg, shape, cases


BATCH_PER_CLIENT = ("client_forward_s", "client_backward_s", "activation_upload_s", "gradient_download_s",
                    "lora_upload_s", "rate_ms_bps", "rate_fs_bps")
BATCH_PER_ENV = ("server_compute_s", "iteration_s", "broadcast_s", "round_s", "activation_bits", "label_bits")


@pytest.mark.parametrize("seed", range(12))
def test_batched_equal_per_client_indices_are_bit_identical_to_shared_indices(seed):
    rng, cfg, shape, cases = _cases(seed, 7)
    tables, ch, dec = _batched_state(cfg, shape, cases)
    k = ch.k
    shared = batched_round_delay(tables, cfg, dec, ch)
    for split_idx, rank_idx in ((np.repeat(dec.split_idx[:, None], k, 1), np.repeat(dec.rank_idx[:, None], k, 1)),
                                (dec.split_idx, np.repeat(dec.rank_idx[:, None], k, 1))):
        per_client = batched_round_delay(tables, cfg, dataclasses.replace(dec, split_idx=split_idx,
                                                                          rank_idx=rank_idx), ch)
        for name in BATCH_PER_CLIENT + BATCH_PER_ENV:
            x, y = getattr(shared, name), getattr(per_client, name)
            assert np.array_equal(np.broadcast_to(x, y.shape), y), name
        assert np.array_equal(per_client.lora_bits, np.repeat(shared.lora_bits[:, None], k, 1))
        for key, value in shared.as_info().items():
            assert np.array_equal(value, per_client.as_info()[key]), key
    # and the shared path itself equals the single model env by env
    for i, (scenario, channel, decision) in enumerate(cases):
        single = round_delay(decision, channel, scenario, shape, cfg)
        assert single.round_s == shared.round_s[i] and single.server_compute_s == shared.server_compute_s[i]


@pytest.mark.parametrize("seed", range(12))
def test_batched_per_client_equals_single_per_client_row_by_row(seed):
    rng, cfg, shape, cases = _cases(seed, 9)
    tables, ch, dec = _batched_state(cfg, shape, cases)
    b, k, ranks = len(cases), ch.k, cfg.model.ranks
    split_idx = rng.integers(0, shape.n_layer - 1, (b, k))
    rank_idx = rng.integers(0, len(ranks), (b, k))
    split_idx[0] = split_idx[0, 0]  # one homogeneous row among mixed ones
    rank_idx[0] = rank_idx[0, 0]
    for global_rank_idx in (None, len(ranks) - 1):
        batch = batched_round_delay_per_client(tables, cfg, dataclasses.replace(dec, split_idx=split_idx,
                                                                                 rank_idx=rank_idx), ch,
                                               global_rank_idx=global_rank_idx)
        for i, (scenario, channel, decision) in enumerate(cases):
            hetero = decision.replace(split=split_idx[i] + 1, rank=np.array(ranks)[rank_idx[i]])
            single = round_delay(hetero, channel, scenario, shape, cfg,
                                 global_rank=None if global_rank_idx is None else ranks[global_rank_idx])
            for name in BATCH_PER_CLIENT + BATCH_PER_ENV + ("lora_bits",):
                assert np.array_equal(getattr(batch, name)[i], getattr(single, name)), (i, name)


# ---- properties that a wrong formula breaks ----------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_a_deeper_cut_for_one_client_moves_its_work_off_the_server(seed):
    rng, cfg, shape, scenario, channel, decision = _random_case(seed)
    k = scenario.num_clients
    cuts = rng.integers(1, shape.n_layer - 1, k)  # every cut below L-1: client 0 can go one deeper
    ranks = rng.choice(cfg.model.ranks, k)
    base = round_delay(decision.replace(split=cuts, rank=ranks), channel, scenario, shape, cfg)
    deeper_cuts = cuts.copy()
    deeper_cuts[0] += 1
    deeper = round_delay(decision.replace(split=deeper_cuts, rank=ranks), channel, scenario, shape, cfg)
    assert deeper.client_forward_s[0] > base.client_forward_s[0]
    assert deeper.client_backward_s[0] > base.client_backward_s[0]
    assert np.array_equal(deeper.client_forward_s[1:], base.client_forward_s[1:])  # the others are untouched
    assert deeper.server_compute_s < base.server_compute_s
    assert deeper.lora_bits[0] > base.lora_bits[0] and np.array_equal(deeper.lora_bits[1:], base.lora_bits[1:])
    # the MS saves exactly one block of client 0 at r_g (forward + backward): nothing else changes
    r_g = int(ranks.max())
    t, c = cfg.training, cfg.compute
    block = shape.block_forward_flops(t.seq_len, r_g, cfg.model.lora_target_modules)
    saved = t.batch_size * (1 + c.backward_factor) * block / (c.server_cpu_freq_hz * c.server_flops_per_cycle)
    assert base.server_compute_s - deeper.server_compute_s == pytest.approx(saved, rel=1e-9)


def test_upload_bits_scale_with_the_clients_own_rank_and_cut(two_client_case):
    cfg, shape, scenario, channel, decision = _hetero_case(two_client_case)
    cfg = cfg.replace(model=cfg.model.replace(ranks=(2, 4, 8)))
    _, _, lora = client_payload_bits(shape, np.array([1, 1, 2, 3]), np.array([2, 4, 2, 8]), cfg)
    unit = 2 * (8 + 24) * 16  # one block at rank 2
    np.testing.assert_array_equal(lora, [unit, 2 * unit, 2 * unit, 3 * 4 * unit])
    d = decision.replace(split=np.array([1, 3]), rank=np.array([8, 2]))
    b = round_delay(d, channel, scenario, shape, cfg)
    np.testing.assert_array_equal(b.lora_bits, [4 * unit, 3 * unit])
    # same FS rate for both clients (SNR 1 on 1 kHz): the upload times keep the ratio of the payloads
    assert b.lora_upload_s[0] / b.lora_upload_s[1] == pytest.approx(4 / 3, rel=1e-15)
    assert b.lora_bits[0] == payload_bits(shape, 1, 8, cfg)[2] and b.lora_bits[1] == payload_bits(shape, 3, 2, cfg)[2]


def test_broadcast_sends_the_largest_clients_adapter(two_client_case):
    cfg, shape, scenario, channel, decision = _hetero_case(two_client_case)
    cfg = cfg.replace(model=cfg.model.replace(ranks=(2, 4, 8)))
    rate = cfg.wireless.broadcast_rate_bps
    for cuts, ranks in (([1, 3], [8, 2]), ([3, 1], [2, 8]), ([2, 2], [2, 8]), ([1, 1], [4, 2])):
        b = round_delay(decision.replace(split=np.array(cuts), rank=np.array(ranks)), channel, scenario, shape, cfg)
        assert b.broadcast_s == max(b.lora_bits) / rate
        assert b.broadcast_s > min(b.lora_bits) / rate  # not the smallest, nor (for unequal sizes) the mean
        assert b.round_s == 3 * b.iteration_s + b.lora_upload_s.max() + b.broadcast_s


def test_per_client_memory_and_per_device_limits(two_client_case):
    cfg, shape, scenario, channel, decision = _hetero_case(two_client_case)
    cuts, ranks = np.array([1, 3]), np.array([4, 2])
    need = client_memory_bytes(cuts, ranks, shape, cfg)
    assert need.shape == (2,)
    assert need[0] == client_memory_bytes(1, 4, shape, cfg) and need[1] == client_memory_bytes(3, 2, shape, cfg)
    assert need[1] > need[0]  # two more blocks of frozen weights outweigh the rank
    assert memory_violations(cuts, ranks, shape, cfg) == []  # no limit configured
    limit = (need[0] + need[1]) / 2
    out = memory_violations(cuts, ranks, shape, cfg, limit_bytes=limit)
    assert len(out) == 1 and out[0].startswith("client 1: split 3 / rank 2 needs")
    # per-device caps: a small phone (client 0) and a laptop (client 1)
    assert memory_violations(cuts, ranks, shape, cfg, limit_bytes=np.array([need[0], need[1]])) == []
    out = memory_violations(cuts, ranks, shape, cfg, limit_bytes=np.array([need[0] - 1, 0.0]))
    assert len(out) == 1 and out[0].startswith("client 0:")
    capped = cfg.replace(compute=cfg.compute.replace(client_memory_bytes=limit))
    d = decision.replace(split=cuts, rank=ranks)
    with pytest.raises(InfeasibleDecisionError, match="client 1: split 3 / rank 2 needs"):
        check_feasible(d, scenario, shape, capped)
    # the scalar path keeps its message
    assert memory_violations(3, 2, shape, capped)[0].startswith("split 3 / rank 2 needs")
    with pytest.raises(InfeasibleDecisionError, match="memory limit must be"):
        memory_violations(cuts, ranks, shape, cfg, limit_bytes=np.array([1.0, 2.0, 3.0]))
    with pytest.raises(InfeasibleDecisionError, match="memory limit must be"):
        memory_violations(cuts, ranks, shape, cfg, limit_bytes=np.array([1.0, np.nan]))
    with pytest.raises(InfeasibleDecisionError, match="memory limit must be"):
        memory_violations(1, 2, shape, cfg, limit_bytes=float("nan"))


# ---- errors --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split, rank, match", [
    (np.array([1, 2, 3]), np.array([2, 4]),
     r"split must be a scalar or one per client, shape \(2,\), got shape \(3,\)"),
    (np.array([[1, 2]]), 2, r"got shape \(1, 2\)"),
    (np.array([1, 2]), np.array([2]), r"rank must be a scalar or one per client"),
    (np.array([1.0, np.nan]), np.array([2, 4]), "split contains NaN"),
    (np.array([1, 2]), np.array([2.0, np.inf]), "rank contains NaN/inf"),
    (np.array([1.5, 2.0]), np.array([2, 4]), "split must hold integers"),
    (np.array([True, True]), np.array([2, 4]), "split must hold integers"),
    (np.array([0, 2]), np.array([2, 4]), r"client 0: split 0 outside \[1, 3\]"),
    (np.array([1, 4]), np.array([2, 4]), r"client 1: split 4 outside \[1, 3\]"),
    (np.array([1, 2]), np.array([2, 3]), r"client 1: rank 3 not in candidate ranks \(2, 4\)"),
    (np.array(["1", "2"]), np.array([2, 4]), "split must hold integers"),
])
def test_bad_profiles_raise_naming_the_problem(split, rank, match, two_client_case):
    cfg, shape, scenario, channel, decision = _hetero_case(two_client_case)
    with pytest.raises(InfeasibleDecisionError, match=match):
        client_profile(split, rank, 2, shape, cfg)
    d = decision.replace(split=split, rank=rank)
    with pytest.raises(InfeasibleDecisionError, match=match):
        round_delay(d, channel, scenario, shape, cfg)
    with pytest.raises(InfeasibleDecisionError, match=match):
        check_feasible(d, scenario, shape, cfg)


def test_every_bad_client_is_listed(two_client_case):
    cfg, shape, scenario, channel, decision = _hetero_case(two_client_case)
    d = decision.replace(split=np.array([0, 7]), rank=np.array([3, 4]))
    assert decision_violations(d, scenario, shape, cfg) == [
        "client 0: split 0 outside [1, 3]", "client 1: split 7 outside [1, 3]",
        "client 0: rank 3 not in candidate ranks (2, 4)"]


def test_batched_bad_indices_raise(two_client_case):
    rng, cfg, shape, cases = _cases(3, 4)
    tables, ch, dec = _batched_state(cfg, shape, cases)
    b, k = len(cases), ch.k
    n_split, n_rank = shape.n_layer - 1, len(cfg.model.ranks)
    good = np.zeros((b, k), dtype=np.int64)
    for split_idx, rank_idx, match in (
            (np.zeros((b, k + 1), dtype=np.int64), good, r"split_idx must have shape"),
            (good, np.zeros((b + 1,), dtype=np.int64), r"rank_idx must have shape"),
            (np.full((b, k), np.nan), good, "split_idx must hold integer indices"),
            (np.full((b, k), n_split), good, rf"split_idx must be in \[0, {n_split - 1}\]"),
            (good, np.full((b, k), -1), rf"rank_idx must be in \[0, {n_rank - 1}\]"),
    ):
        with pytest.raises(InfeasibleDecisionError, match=match):
            batched_round_delay(tables, cfg, dataclasses.replace(dec, split_idx=split_idx, rank_idx=rank_idx), ch)
    with pytest.raises(InfeasibleDecisionError, match="global_rank_idx must be an int"):
        batched_round_delay_per_client(tables, cfg, dataclasses.replace(dec, split_idx=good, rank_idx=good), ch,
                                       global_rank_idx=n_rank)

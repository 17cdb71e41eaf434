"""More one-line-bug guards found by probing: the paper's greedy without its refinement, equal power and
budgets when p_max binds, the MultiDiscrete FS levels, unequal downlink / broadcast rates, independent
load and fading innovations, checkpoint retention.
"""

from __future__ import annotations

import numpy as np
import pytest

from baselines import random_problem, sized_config
from baselines.power import equal_power
from baselines.problem import LinkSpec
from baselines.subchannel import greedy_assignment, greedy_budget_w
from fedsllm_env.channel import MacroChannel
from fedsllm_env.codecs import make_action_codec
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import round_delay
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import Decision

SHAPE = ModelShape(n_layer=6, n_embd=128, n_head=4, vocab_size=500)


def test_paper_greedy_by_hand_without_refinement():
    """Catches: the greedy serving the fastest client, or giving the straggler its worst free subchannel
    (the local-search refinement repairs both, so only the bare greedy shows them).

    SNRs at the greedy budget of 1 W (B = 1 Hz, 1 bit): client 0 [3, 31, 31, 1, 7], client 1
    [63, 15, 1, 31, 31]; one-subchannel delays 1/log2(1 + SNR). Bottleneck matching: client 1 <- s0
    (0.167 s), client 0 <- s1 (0.2 s; s2 ties, first index). Straggler client 0 takes its best free s2
    (0.124 s); now client 1 is the straggler and takes s3 (0.110 s); client 0 again, takes s4.
    """
    snr = np.array([[3.0, 31.0, 31.0, 1.0, 7.0], [63.0, 15.0, 1.0, 31.0, 31.0]])
    spec = LinkSpec(1.0 / snr, 1.0, 1.0, np.zeros(2), np.ones(2), 2.0)
    assert greedy_budget_w(spec).tolist() == [1.0, 1.0]
    assert greedy_assignment(spec).tolist() == [1, 0, 0, 1, 0]


def test_equal_power_and_greedy_budget_respect_a_binding_p_max():
    """Catches: p_max dropped from min(p_max, p_th / K) (it never binds at the defaults)."""
    powers = equal_power(np.array([0, 0, 1]), np.array([0.01, 0.5]), 0.6)
    np.testing.assert_allclose(powers, [0.005, 0.005, 0.3])
    spec = LinkSpec(np.ones((2, 3)), 1.0, 1.0, np.zeros(2), np.array([0.01, 0.5]), 0.6)
    np.testing.assert_allclose(greedy_budget_w(spec), [0.01, 0.3])


def test_multidiscrete_levels_set_each_links_own_budget():
    """Catches: FS power levels read from the MS block (or the reverse)."""
    cfg = FedsLLMConfig.from_dict({"action_mode": "multidiscrete", "power_levels": 4,
                                   "wireless": {"num_clients": 2, "num_subchannels_ms": 2, "num_subchannels_fs": 2,
                                                "total_power_ms_w": 10.0, "total_power_fs_w": 10.0}})
    codec = make_action_codec(cfg, SHAPE)
    g = np.random.default_rng(0)
    model = MacroChannel(cfg.wireless, cfg.compute)
    scenario = model.draw_scenario(g)
    channel = model.observe(model.initial_state(g, scenario))
    pmax = scenario.client_max_power_w
    # owners MS [0, 1], FS [1, 0]; MS levels [0, 1], FS levels [3, 2]; split index 1, rank index 0
    d = codec.decode(np.array([0, 1, 1, 0, 0, 1, 3, 2, 1, 0]), scenario, channel)
    np.testing.assert_allclose(d.power_ms_w, [pmax[0] * 1 / 4, pmax[1] * 2 / 4])
    np.testing.assert_allclose(d.power_fs_w, [pmax[1] * 4 / 4, pmax[0] * 3 / 4])
    assert (d.split, d.rank) == (2, 4)
    np.testing.assert_array_equal(codec.encode(d, scenario), [0, 1, 1, 0, 0, 1, 3, 2, 1, 0])


def test_fast_objective_matches_env_with_unequal_rates_and_bandwidths():
    """Catches: the gradient downlink priced at the broadcast rate, a link priced with the other's
    bandwidth, a power limit of the other link (all equal at the defaults)."""
    cfg = sized_config(3, 5, 4, subchannel_bandwidth_ms_hz=2e6, subchannel_bandwidth_fs_hz=0.5e6,
                       downlink_rate_bps=5e6, broadcast_rate_bps=80e6, total_power_ms_w=0.3, total_power_fs_w=0.1)
    problem = random_problem(3, cfg, SHAPE, lambda r: 10.0 + r)
    rng = np.random.default_rng(0)
    for c in (1, 3, 5):
        for r in (4, 16):
            d = Decision(np.array([0, 1, 2, 0, 1]), np.array([2, 1, 0, 2]), rng.uniform(0.01, 0.06, 5),
                         rng.uniform(0.005, 0.025, 4), c, r)
            bd = round_delay(d, problem.channel, problem.scenario, problem.shape, problem.cfg)
            assert problem.fast_objective_s(d) == pytest.approx((10.0 + r) * bd.round_s, rel=1e-12)
    assert problem.link("ms", 1, 4).total_power_w == 0.3 and problem.link("fs", 1, 4).total_power_w == 0.1


def test_load_noise_is_independent_of_the_fading_draw():
    """Catches: the load's AR(1) innovation reusing numbers drawn for the fading."""
    cfg = FedsLLMConfig.from_dict({"wireless": {"num_clients": 6, "num_subchannels_ms": 6, "num_subchannels_fs": 6,
                                                "fading_correlation": 0.0},
                                   "compute": {"load_noise_std": 0.01, "load_mean": 0.5, "load_ar_coef": 0.5}})
    g = np.random.default_rng(11)
    model = MacroChannel(cfg.wireless, cfg.compute)
    scenario = model.draw_scenario(g)
    state = model.initial_state(g, scenario)
    c = cfg.compute
    load_noise, fading = [], []
    for _ in range(300):
        nxt = model.next_state(g, state, scenario)
        load_noise.append((nxt.load - c.load_mean - c.load_ar_coef * (state.load - c.load_mean)) / c.load_noise_std)
        fading.append(np.sqrt(2.0) * nxt.fading_ms.real[:, 0])  # rho = 0: the fresh innovation itself
        state = nxt
    x, y = np.concatenate(load_noise), np.concatenate(fading)
    assert np.std(x) == pytest.approx(1.0, abs=0.1)
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.15


class _FakeModel:
    """What AtomicCheckpointCallback needs from an SB3 model: ``num_timesteps``, ``save(file)`` and
    ``get_vec_normalize_env()`` (None: no VecNormalize sidecar)."""

    def __init__(self):
        self.num_timesteps = 0

    def save(self, fh):
        fh.write(f"model at {self.num_timesteps}".encode())

    def get_vec_normalize_env(self):
        return None


def test_checkpoint_retention_keeps_the_newest(tmp_path):
    """Catches: keep_last deleting the newest checkpoint instead of the oldest."""
    from agents.checkpoint import AtomicCheckpointCallback, latest_checkpoint

    cb = AtomicCheckpointCallback(10, tmp_path, keep_last=2)
    model = _FakeModel()
    cb.model = model
    cb._init_callback()
    for steps in (10, 20, 30, 40):
        model.num_timesteps = cb.num_timesteps = steps
        cb._on_step()
    names = sorted(p.name for p in tmp_path.glob("*.zip"))
    assert names == ["checkpoint_30_steps.zip", "checkpoint_40_steps.zip"]
    assert [p.name for p in cb.saved] == ["checkpoint_30_steps.zip", "checkpoint_40_steps.zip"]
    assert latest_checkpoint(tmp_path).read_bytes() == b"model at 40"


def test_box_all_minus_one_keeps_the_minimum_budget_on_both_links():
    """Catches: the MIN_BUDGET_FRACTION floor dropped (random samples never hit -1 exactly)."""
    from fedsllm_env.codecs import MIN_BUDGET_FRACTION

    cfg = FedsLLMConfig.from_dict({"wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 5}})
    codec = make_action_codec(cfg, SHAPE)
    model = MacroChannel(cfg.wireless, cfg.compute)
    g = np.random.default_rng(1)
    scenario = model.draw_scenario(g)
    d = codec.decode(-np.ones(codec.space.shape), scenario, model.observe(model.initial_state(g, scenario)))
    for assign, power in ((d.assign_ms, d.power_ms_w), (d.assign_fs, d.power_fs_w)):
        per_client = np.bincount(assign, weights=power, minlength=3)
        np.testing.assert_allclose(per_client, scenario.client_max_power_w * MIN_BUDGET_FRACTION, rtol=1e-9)
    assert (d.split, d.rank) == (1, cfg.model.ranks[0])


def test_memory_limit_is_inclusive_and_projection_keeps_what_fits():
    """Catches: a strict memory comparison, a projection that moves a request that already fits."""
    from fedsllm_env.delay import client_memory_bytes, memory_violations, project_split_rank

    base = FedsLLMConfig()
    need = client_memory_bytes(3, 4, SHAPE, base)
    cfg = base.replace(compute=base.compute.replace(client_memory_bytes=need))
    assert memory_violations(3, 4, SHAPE, cfg) == []
    assert memory_violations(3, 8, SHAPE, cfg) and memory_violations(4, 4, SHAPE, cfg)
    for c in range(1, SHAPE.n_layer):
        for r in cfg.model.ranks:
            pc, pr = project_split_rank(c, r, SHAPE, cfg)
            fits = client_memory_bytes(c, r, SHAPE, cfg) <= need
            assert ((pc, pr) == (c, r)) == fits
            assert pc <= c and pr <= r and not memory_violations(pc, pr, SHAPE, cfg)
            if not fits and c >= 3:  # the largest split that fits at some rank <= r comes first
                assert pc == max(x for x in range(1, c + 1)
                                 if any(client_memory_bytes(x, y, SHAPE, cfg) <= need
                                        for y in cfg.model.ranks if y <= r))


def test_observation_round_feature_follows_max_rounds():
    """Catches: the round feature normalised by a hard-coded cap instead of training.max_rounds."""
    from fedsllm_env.spaces import ObservationCodec

    cfg = FedsLLMConfig.from_dict({"training": {"max_rounds": 6}})
    model = MacroChannel(cfg.wireless, cfg.compute)
    g = np.random.default_rng(2)
    scenario = model.draw_scenario(g)
    channel = model.observe(model.initial_state(g, scenario))
    oc = ObservationCodec(cfg, SHAPE)
    assert [float(oc.encode(channel, scenario, 1, 4, 1.0, 2.0, t)[-1]) for t in (0, 3, 6, 9)] == \
        pytest.approx([0.0, 0.5, 1.0, 1.0])

"""Device classes (``compute.device_class_*``): kappa_k and a memory cap per client, in the channel draw, the memory
constraint, the codecs (single and batched), the optimizers and the presets built on them."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import baselines  # noqa: F401  (registers the hybrid allocator)
import fedsllm_env  # noqa: F401
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import (client_memory_bytes, client_memory_limits_bytes, decision_violations,
                               memory_violations, project_split_rank, shared_memory_limit_bytes)
from fedsllm_env.errors import ConfigError
from fedsllm_env.presets import PRESETS

CLASSES = {"device_class_flops_per_cycle": [2.0, 20.0], "device_class_memory_bytes": [1.6e6, 0.0]}


@pytest.mark.parametrize("bad,match", [
    ({"device_class_flops_per_cycle": [2.0, 8.0], "device_class_memory_bytes": [1e6]}, "one entry per device class"),
    ({"device_class_flops_per_cycle": [0.0]}, "positive"),
    ({"device_class_memory_bytes": [-1.0]}, ">= 0"),
    ({"device_class_memory_bytes": [3e6], "client_memory_bytes": 4e6}, "set one"),
])
def test_bad_device_classes_are_refused_with_the_field_named(bad, match):
    with pytest.raises(ConfigError, match=match):
        FedsLLMConfig.from_dict({"compute": bad})


def test_classes_set_kappa_by_client_index_and_keep_the_seeds_channels(calibration_path):
    plain = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path}).unwrapped
    fleet = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path,
                                                     "compute": CLASSES}).unwrapped
    plain.reset(seed=5)
    fleet.reset(seed=5)
    np.testing.assert_array_equal(fleet.scenario.client_flops_per_cycle, [2.0, 20.0, 2.0, 20.0, 2.0])
    np.testing.assert_array_equal(fleet.scenario.client_cpu_freq_hz, plain.scenario.client_cpu_freq_hz)
    np.testing.assert_array_equal(fleet.channel.gain_ms, plain.channel.gain_ms)
    np.testing.assert_array_equal(fleet.channel.gain_fs, plain.channel.gain_fs)


def test_limits_per_client_and_the_shared_cap_is_the_smallest():
    cfg = FedsLLMConfig.from_dict({"compute": {"device_class_memory_bytes": [3e6, 0.0, 2e6]}})
    np.testing.assert_array_equal(client_memory_limits_bytes(cfg), [3e6, 0.0, 2e6, 3e6, 0.0])
    assert shared_memory_limit_bytes(cfg) == 2e6
    assert shared_memory_limit_bytes(FedsLLMConfig()) == 0.0  # nobody capped: unlimited
    one = FedsLLMConfig.from_dict({"compute": {"client_memory_bytes": 4e6}})
    np.testing.assert_array_equal(client_memory_limits_bytes(one, 3), [4e6] * 3)


def test_a_shared_decision_fits_the_weakest_a_profile_each_its_own(calibration_path):
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path,
                                                   "compute": CLASSES}).unwrapped
    cfg, shape = env.config, env.shape
    assert client_memory_bytes(2, 4, shape, cfg) > 1.6e6 > client_memory_bytes(1, 16, shape, cfg)
    assert memory_violations(2, 4, shape, cfg)  # class 0 cannot hold cut 2: neither can a shared cut 2
    assert project_split_rank(5, 64, shape, cfg) == (1, 16)
    cuts, ranks = np.array([1, 5, 1, 5, 1]), np.array([16, 64, 16, 64, 16])
    assert memory_violations(cuts, ranks, shape, cfg) == []
    bad = memory_violations(np.array([1, 5, 2, 5, 1]), ranks, shape, cfg)
    assert len(bad) == 1 and bad[0].startswith("client 2:")


HETERO = {"box": "FedsLLM-Surrogate-Hetero-v0", "multidiscrete": "FedsLLM-Surrogate-Hetero-Discrete-v0",
          "priority": "FedsLLM-Surrogate-Hetero-Priority-v0"}


@pytest.mark.parametrize("mode", sorted(HETERO))
def test_each_client_is_projected_onto_its_own_cap_single_and_batched_alike(mode, calibration_path):
    from gymnasium.utils.env_checker import data_equivalence
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    config = {"calibration_path": calibration_path, "compute": CLASSES, "training": {"max_rounds": 8}}
    env_id, n = HETERO[mode], 3
    batch = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", config=config)
    ref = SyncVectorEnv([lambda: gym.make(env_id, config=config) for _ in range(n)],
                        autoreset_mode=AutoresetMode.SAME_STEP)
    assert data_equivalence(batch.reset(seed=11), ref.reset(seed=11), exact=True)
    batch.action_space.seed(4)
    deep = 0
    for t in range(30):
        action = batch.action_space.sample()
        got, want = batch.step(action), ref.step(action)
        assert data_equivalence(got, want, exact=True), f"step {t} differs"
        info = got[4]
        if "split" not in info:  # every env reset this step (same-step autoreset): only reset infos
            continue
        split, rank = info["split"][info["_split"]], info["rank"][info["_rank"]]
        weak = split[:, 0::2]  # class 0: clients 0, 2, 4 (1.6 MB holds cut 1 up to r = 16 on the test shape)
        assert np.all(weak == 1) and np.all(rank[:, 0::2] <= 16)
        deep += int(np.sum(split[:, 1::2] > 1))
    assert deep > 0  # the unlimited class does go deeper


def test_masks_are_per_client_under_each_cap(calibration_path):
    env = gym.make("FedsLLM-Surrogate-Hetero-Discrete-v0",
                   config={"calibration_path": calibration_path, "compute": CLASSES}).unwrapped
    env.reset(seed=0)
    masks = env.action_masks()[-2 * 5 * 5:].reshape(10, 5)  # K split masks (5 cuts), then K rank masks (5 ranks)
    np.testing.assert_array_equal(masks[[0, 2, 4]], [[1, 0, 0, 0, 0]] * 3)
    assert masks[[1, 3]].all() and masks[[6, 8]].all()
    np.testing.assert_array_equal(masks[5], [1, 1, 1, 0, 0])  # class 0 at cut 1: r <= 16


def test_hetero_optimizer_keeps_each_client_under_its_cap_and_matches_the_brute_force():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_hetero_optimizer import TINY_CFG, TINY_SHAPE, rounds_needed

    from baselines.hetero_optimizer import HeteroOptimizer, brute_force_profiles
    from baselines.regimes import regime_problem

    def problem(memory):
        compute = TINY_CFG.compute.replace(device_class_flops_per_cycle=(20.0, 20.0), device_class_memory_bytes=memory)
        return regime_problem("server-scarce", 29, TINY_SHAPE, rounds_needed, (2, 3), 4,
                              TINY_CFG.replace(compute=compute))

    free, capped = problem(()), problem((1.7e6, 0.0))  # 1.7 MB: cut 1 only (1.64 MB at r = 16, 2.66 at cut 2)
    best_free = brute_force_profiles(free, allocation="exact")
    best = brute_force_profiles(capped, allocation="exact")
    found = HeteroOptimizer().solve(capped)
    assert np.all(best_free.cuts > 1)  # unlimited, every client offloads the scarce server
    assert best.cuts[0] == 1 and best.cuts[1] > 1  # capped, only the class-1 client does
    assert best.objective_s >= best_free.objective_s
    assert found.homogeneous.decision.split == 1  # a shared cut must fit the weakest
    assert found.objective_s <= best.objective_s * (1 + 0.005)
    assert found.objective_s < found.homogeneous.objective_s
    assert decision_violations(found.decision, capped.scenario, capped.shape, capped.cfg) == []


@pytest.mark.parametrize("name", ["heterogeneous-devices", "mixed-fleet"])
def test_device_presets_bind_the_shared_decision_but_not_the_strong_clients(name, calibration_path):
    env = gym.make("FedsLLM-Surrogate-Hetero-v0", config={**PRESETS[name], "calibration_path": calibration_path})
    base = env.unwrapped
    base.reset(seed=0)
    cfg, shape = base.config, base.shape
    limits = client_memory_limits_bytes(cfg)
    weakest, strongest = int(np.argmin(limits)), int(np.argmax(limits))
    assert base.scenario.client_peak_flops[strongest] > base.scenario.client_peak_flops[weakest]
    top = (shape.n_layer - 1, cfg.model.ranks[-1])
    assert project_split_rank(*top, shape, cfg) != top  # a shared decision is capped by the weakest class
    assert project_split_rank(*top, shape, cfg, float(limits[strongest])) == top

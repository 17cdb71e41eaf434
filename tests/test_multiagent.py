"""Clients as agents: the PettingZoo ParallelEnv over the priority env."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from fedsllm_env.errors import InvalidActionError  # noqa: E402
from fedsllm_env.multiagent import joint_action, parallel_env  # noqa: E402
from fedsllm_env.priority import heuristic_action, make_priority_env  # noqa: E402


def _cfg(calibration_path, k=3, hetero=False):
    return {"calibration_path": str(calibration_path), "heterogeneous": hetero, "training": {"max_rounds": 6},
            "wireless": {"num_clients": k}}


@pytest.mark.parametrize("hetero", [False, True])
def test_parallel_api_and_seed_tests_pass(hetero, calibration_path):
    parallel_api_test(parallel_env(_cfg(calibration_path, hetero=hetero)), num_cycles=20)
    parallel_seed_test(lambda: parallel_env(_cfg(calibration_path, hetero=hetero)))


def test_joint_action_keeps_own_entries_averages_votes_around_the_heuristic():
    a = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [-0.1, -0.2, -0.5, 0.0, 0.1, 1.0]])
    # heuristic: priorities 0, deadlines -0.5, split -1, rank +1; sums clipped to [-1, 1]
    np.testing.assert_allclose(joint_action(a, False), [0.1, -0.1, 0.2, -0.2, -0.6, -0.3, -0.7, 1.0], rtol=1e-6)
    np.testing.assert_allclose(joint_action(a, True), [0.1, -0.1, 0.2, -0.2, -0.2, 0.3, -0.7, -1.0, 1.0, 1.0],
                               rtol=1e-6)
    for hetero in (False, True):
        np.testing.assert_array_equal(joint_action(np.zeros((3, 6)), hetero), heuristic_action(3, hetero))
    with pytest.raises(InvalidActionError, match="NaN"):
        joint_action(np.full((2, 6), np.nan), False)
    with pytest.raises(InvalidActionError, match="shape"):
        joint_action(np.zeros((2, 5)), False)


@pytest.mark.parametrize("hetero", [False, True])
def test_an_episode_equals_the_single_env_with_the_joint_action(hetero, calibration_path):
    cfg = _cfg(calibration_path, k=4, hetero=hetero)
    penv = parallel_env(cfg)
    single = make_priority_env(cfg, variant={"mode": "surrogate", "action_mode": "box", "heterogeneous": hetero})
    obs, _ = penv.reset(seed=9)
    single.reset(seed=9)
    assert sorted(obs) == [f"client_{i}" for i in range(4)]
    rng = np.random.default_rng(0)
    while penv.agents:
        acts = {a: rng.uniform(-1, 1, 6).astype(np.float32) for a in penv.agents}
        joint = joint_action(np.stack([acts[a] for a in penv.agents]), hetero)
        obs, rew, term, trunc, info = penv.step(acts)
        _, r, t, tr, i = single.step(joint)
        assert set(rew.values()) == {r}
        assert all(v == t for v in term.values()) and all(v == tr for v in trunc.values())
    assert penv.agents == []
    with pytest.raises(InvalidActionError, match="no action"):
        penv.reset(seed=1)
        penv.step({"client_0": np.zeros(6)})


def test_rllib_clients_env_is_seeded_from_its_runner_place_and_the_policy_maps_back(calibration_path):
    pytest.importorskip("ray.rllib")
    import torch
    from ray.rllib.models.torch.torch_distributions import TorchDiagGaussian

    from agents.rllib import CLIENTS_IDS, RLlibClientsPolicy, make_rllib_clients_env, ppo_config

    class Ctx(dict):
        worker_index, vector_index = 1, 0

    def first_obs(vector):
        ctx = Ctx(config=_cfg(calibration_path), seed=3)
        ctx.vector_index = vector
        env = make_rllib_clients_env(False, ctx)
        obs, _ = env.reset()
        return np.concatenate([obs[a] for a in sorted(obs)])

    np.testing.assert_array_equal(first_obs(0), first_obs(0))
    assert not np.array_equal(first_obs(0), first_obs(1))
    cfg = ppo_config(CLIENTS_IDS[False], config=_cfg(calibration_path), num_env_runners=0)
    assert set(cfg.policies) == {"shared"}

    class StubModule:  # a Gaussian head whose mean is each client's first feature
        def get_inference_action_dist_cls(self):
            return TorchDiagGaussian

        def forward_inference(self, batch):
            obs = batch["obs"]
            mean = obs[:, :1].repeat(1, 6)
            return {"action_dist_inputs": torch.cat([mean, torch.zeros_like(mean)], dim=1)}

    env = make_priority_env(_cfg(calibration_path, k=4),
                            variant={"mode": "surrogate", "action_mode": "box", "heterogeneous": False})
    obs, _ = env.reset(seed=2)
    act, _ = RLlibClientsPolicy(StubModule(), False)(env).predict(obs)
    m = env.unwrapped.config.wireless.num_subchannels_ms
    top = obs[: 4 * m].reshape(4, m).max(1)  # feature 0 of each client: its best MS gain
    expected = joint_action(np.repeat(top[:, None], 6, axis=1), False)
    np.testing.assert_allclose(act, expected, rtol=1e-6)
    from fedsllm_env.errors import ConfigError

    with pytest.raises(ConfigError, match="priority ids"):
        RLlibClientsPolicy(StubModule(), True)(env)

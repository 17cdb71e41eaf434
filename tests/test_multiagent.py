"""Clients as agents: the PettingZoo ParallelEnv over the priority env."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from fedsllm_env.errors import InvalidActionError  # noqa: E402
from fedsllm_env.multiagent import joint_action, parallel_env  # noqa: E402
from fedsllm_env.priority import make_priority_env  # noqa: E402


def _cfg(calibration_path, k=3, hetero=False):
    return {"calibration_path": str(calibration_path), "heterogeneous": hetero, "training": {"max_rounds": 6},
            "wireless": {"num_clients": k}}


@pytest.mark.parametrize("hetero", [False, True])
def test_parallel_api_and_seed_tests_pass(hetero, calibration_path):
    parallel_api_test(parallel_env(_cfg(calibration_path, hetero=hetero)), num_cycles=20)
    parallel_seed_test(lambda: parallel_env(_cfg(calibration_path, hetero=hetero)))


def test_joint_action_keeps_own_entries_and_averages_votes():
    a = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [-0.1, -0.2, -0.5, 0.0, 0.1, 1.0]])
    np.testing.assert_allclose(joint_action(a, False), [0.1, -0.1, 0.2, -0.2, -0.1, 0.2, 0.3, 0.8], rtol=1e-6)
    np.testing.assert_allclose(joint_action(a, True), [0.1, -0.1, 0.2, -0.2, 0.3, 0.8, 0.3, -0.5, 0.4, 0.0],
                               rtol=1e-6)
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

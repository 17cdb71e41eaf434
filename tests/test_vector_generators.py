"""The batched env's per-env generators: numba's compiled draws equal numpy's, bit for bit, and the batch is the
same episode whichever draws it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import fedsllm_env  # noqa: F401 - registers the ids
from fedsllm_env.errors import ResetNeeded
from fedsllm_env.vector import SurrogateVectorEnv
from fedsllm_env.vector import generators as gen_mod
from fedsllm_env.vector.generators import EnvGenerators

needs_numba = pytest.mark.skipif(gen_mod.numba_kernels() is None, reason="numba (the [fast] extra) not installed")


def _filled(use_numba: bool, seeds: list[int]) -> EnvGenerators:
    gens = EnvGenerators(len(seeds), use_numba=use_numba)
    for i, s in enumerate(seeds):
        gens[i] = np.random.default_rng(s)
    return gens


@needs_numba
def test_compiled_rows_equal_numpy_draws_and_share_the_state():
    seeds = list(range(100, 132))
    fast, slow = _filled(True, seeds), _filled(False, seeds)
    assert fast.uses_numba and not slow.uses_numba
    # 20,000 normals per env: the ziggurat's rare rejection and tail branches are taken many times
    a, b = np.empty((32, 20_000)), np.empty((32, 20_000))
    fast.standard_normal_rows(a)
    slow.standard_normal_rows(b)
    np.testing.assert_array_equal(a, b)
    ua, za, ub, zb = np.empty((32, 7)), np.empty((32, 9)), np.empty((32, 7)), np.empty((32, 9))
    fast.uniform_normal_rows(0.0, 2.0 * np.pi, ua, za)
    slow.uniform_normal_rows(0.0, 2.0 * np.pi, ub, zb)
    np.testing.assert_array_equal(ua, ub)
    np.testing.assert_array_equal(za, zb)
    # the compiled loop advanced the Python generators themselves: their next numpy draws agree
    for i in range(32):
        assert fast[i].random() == slow[i].random()


@needs_numba
def test_replacing_a_generator_reaches_the_compiled_list():
    fast, slow = _filled(True, [1, 2, 3]), _filled(False, [1, 2, 3])
    a, b = np.empty((3, 50)), np.empty((3, 50))
    fast.standard_normal_rows(a)  # builds the compiled list
    slow.standard_normal_rows(b)
    fast[1] = np.random.default_rng(99)
    slow[1] = np.random.default_rng(99)
    fast.standard_normal_rows(a)
    slow.standard_normal_rows(b)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[1], np.random.default_rng(99).standard_normal(50))


def test_generators_refuse_missing_and_non_generators():
    gens = EnvGenerators(2, use_numba=False)
    gens[0] = np.random.default_rng(0)
    with pytest.raises(ResetNeeded, match=r"envs \[1\]"):
        gens.standard_normal_rows(np.empty((2, 3)))
    with pytest.raises(TypeError, match="Generator"):
        gens[1] = np.random.RandomState(0)  # type: ignore[assignment]
    with pytest.raises(ResetNeeded, match="env 1"):
        _ = gens[1]
    with pytest.raises(TypeError, match="use_numba"):
        EnvGenerators(2, use_numba="yes")  # type: ignore[arg-type]


def test_switch_off_by_environment_variable(monkeypatch):
    monkeypatch.setenv("FEDSLLM_NUMBA", "0")
    assert gen_mod.numba_kernels() is None
    assert not EnvGenerators(2).uses_numba
    with pytest.raises(ImportError, match="numba"):
        EnvGenerators(2, use_numba=True)


@needs_numba
@pytest.mark.parametrize("overrides", [{}, {"wireless": {"mobility_speed_mps": 5.0, "num_clients": 3}}],
                         ids=["default", "mobile"])
def test_batch_is_the_same_episode_with_or_without_numba(overrides, calibration_path, monkeypatch):
    config = {**overrides, "calibration_path": calibration_path, "training": {"max_rounds": 12}}
    envs = []
    for flag in ("1", "0"):
        monkeypatch.setenv("FEDSLLM_NUMBA", flag)
        envs.append(gym.make_vec("FedsLLM-Surrogate-v0", num_envs=8, vectorization_mode="vector_entry_point",
                                 config=config))
    fast, slow = envs
    assert fast.unwrapped.uses_numba and not slow.unwrapped.uses_numba
    assert data_equivalence(fast.reset(seed=3), slow.reset(seed=3), exact=True)
    rng = np.random.default_rng(0)
    for t in range(40):  # several episode ends (round cap 12), so resets and reseeded generators too
        action = rng.uniform(-1, 1, fast.action_space.shape).astype(np.float32)
        assert data_equivalence(fast.step(action), slow.step(action), exact=True), f"step {t}"
        if t == 20:  # a reseed mid-run replaces generators in the compiled list
            assert data_equivalence(fast.reset(seed=[None, 50, None, None, 51, None, None, None]),
                                    slow.reset(seed=[None, 50, None, None, 51, None, None, None]), exact=True)


def test_first_reset_must_reset_every_env(calibration_path):
    env = SurrogateVectorEnv(3, {"calibration_path": calibration_path})
    with pytest.raises(ResetNeeded, match="first reset"):
        env.reset(seed=0, options={"reset_mask": np.array([True, False, True])})
    with pytest.raises(ResetNeeded):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    env.reset(options={"reset_mask": np.array([True, False, True])})  # later partial resets are fine


def test_copied_and_pickled_batches_continue_the_same_episode(calibration_path):
    import copy
    import pickle

    env = gym.make_vec("FedsLLM-Surrogate-v0", num_envs=4, vectorization_mode="vector_entry_point",
                       config={"calibration_path": calibration_path})
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    env.step(action)
    clones = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    want = env.step(action)
    for clone in clones:
        assert data_equivalence(clone.step(action), want, exact=True)


def test_a_broken_numba_falls_back_to_numpy_with_one_warning(monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.delenv("FEDSLLM_NUMBA", raising=False)
    monkeypatch.setattr(gen_mod, "_KERNELS", None)  # forget the compiled loops of this process

    def broken(numba, fn):
        raise TypeError("cannot type Generator")

    monkeypatch.setattr(gen_mod, "_jit", broken)
    with pytest.warns(RuntimeWarning, match="draws with numpy"):
        assert gen_mod.numba_kernels() is None
    assert not EnvGenerators(2).uses_numba  # decided once: no second warning, numpy draws
    monkeypatch.setattr(gen_mod, "_KERNELS", None)

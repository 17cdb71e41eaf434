"""The heterogeneous env (``heterogeneous=True``: a cut and a rank per client) in every action mode."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import baselines  # noqa: F401  (registers the hybrid allocator)
import fedsllm_env  # noqa: F401
from fedsllm_env.backends import SurrogateBackend
from fedsllm_env.calibration import load_calibration
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.convergence import PROFILE_FORMS, effective_profile
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.errors import InvalidActionError
from fedsllm_env.registration import HETERO_IDS, sibling_id, variant_of
from fedsllm_env.types import Decision

MODES = ("box", "multidiscrete", "hybrid")


def _env(small_config, action_mode, heterogeneous=True, **changes):
    return FedsLLMEnv(small_config.replace(action_mode=action_mode, heterogeneous=heterogeneous, **changes))


@pytest.mark.parametrize("action_mode", MODES)
def test_spaces_carry_a_cut_and_a_rank_per_client(small_config, action_mode):
    shared, hetero = _env(small_config, action_mode, False), _env(small_config, action_mode)
    k = small_config.wireless.num_clients
    # two more entries (one cut, one rank) per extra client, in the action and in the observation
    assert hetero.action_space.shape[0] - shared.action_space.shape[0] == 2 * (k - 1)
    assert hetero.observation_space.shape[0] - shared.observation_space.shape[0] == 2 * (k - 1)
    hetero.reset(seed=3)
    _, _, _, _, info = hetero.step(hetero.action_space.sample())
    assert info["split"].shape == (k,) and info["rank"].shape == (k,) and info["rank"].dtype == np.int64
    assert all(r in small_config.model.ranks for r in info["rank"])


@pytest.mark.parametrize("action_mode", MODES)
def test_both_checkers_pass(small_config, action_mode):
    env = _env(small_config, action_mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("action_mode", ["box", "multidiscrete"])
def test_encode_decode_round_trips_a_mixed_profile(small_config, action_mode):
    env = _env(small_config, action_mode)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    codec = env.action_codec
    for _ in range(10):
        first = codec.decode(env.action_space.sample(), env.scenario, env.channel)
        cuts = rng.integers(1, env.shape.n_layer, size=3)
        ranks = rng.choice(small_config.model.ranks, size=3)
        wanted = first.replace(split=cuts, rank=ranks)
        back = codec.decode(codec.encode(wanted, env.scenario), env.scenario, env.channel)
        np.testing.assert_array_equal(back.split, cuts)
        np.testing.assert_array_equal(back.rank, ranks)


def test_hybrid_allocator_fills_a_feasible_per_client_decision(small_config):
    env = _env(small_config, "hybrid")
    env.reset(seed=1)
    action = np.array([0, 1, 2, 0, 1, 2])  # cuts 1, 2, 3 and the three smallest ranks
    _, _, _, _, info = env.step(action)
    assert info["split"].tolist() == [1, 2, 3]
    assert info["rank"].tolist() == list(small_config.model.ranks[:3])
    np.testing.assert_array_equal(env.action_codec.encode(env.last_decision, env.scenario), action)


def test_masks_repeat_the_shared_masks_per_client(small_config):
    shared, hetero = _env(small_config, "multidiscrete", False), _env(small_config, "multidiscrete")
    k = small_config.wireless.num_clients
    n_wireless = shared.action_masks().size - (shared.shape.n_layer - 1) - len(small_config.model.ranks)
    s_mask = shared.action_masks()[n_wireless:]
    h_mask = hetero.action_masks()[n_wireless:]
    n_split = shared.shape.n_layer - 1
    np.testing.assert_array_equal(h_mask[: k * n_split], np.tile(s_mask[:n_split], k))
    np.testing.assert_array_equal(h_mask[k * n_split:], np.tile(s_mask[n_split:], k))


def test_homogeneous_profile_is_the_shared_decision_bit_for_bit(small_config):
    """A profile with every client at the same (c, r) prices and trains exactly like the paper's shared one."""
    shared, hetero = _env(small_config, "box", False), _env(small_config, "box")
    shared.reset(seed=11)
    hetero.reset(seed=11)
    rng = np.random.default_rng(5)
    for t in range(8):
        d = shared.action_codec.decode(shared.action_space.sample(), shared.scenario, shared.channel)
        c, r = int(rng.integers(1, shared.shape.n_layer)), int(rng.choice(small_config.model.ranks))
        d = d.replace(split=c, rank=r)
        _, rew_s, *_, info_s = shared.step_decision(d)
        _, rew_h, *_, info_h = hetero.step_decision(d.replace(split=np.full(3, c), rank=np.full(3, r)))
        assert rew_s == rew_h
        assert info_s["val_loss"] == info_h["val_loss"]
        assert info_s["round_delay_s"] == info_h["round_delay_s"]
        assert info_h["split"].tolist() == [c] * 3


def test_a_mixed_profile_trains_between_its_weakest_and_strongest_rank(small_config):
    """Surrogate: a rank mix at one cut moves the loss no faster than every client at the largest rank and no
    slower than every client at the smallest (every candidate form reads the curves between them)."""
    cal = load_calibration(small_config.calibration_path)
    lo_r, hi_r = small_config.model.ranks[0], small_config.model.ranks[-1]

    def losses(split, rank, rounds=12):
        backend = SurrogateBackend(cal, small_config)
        backend.reset(0)
        out = []
        for _ in range(rounds):
            backend.run_round(split, rank)
            out.append(backend.clean_loss)
        return np.array(out)

    mixed = losses(np.array([1, 1, 1]), np.array([hi_r, lo_r, lo_r]))
    assert np.all(losses(1, hi_r) <= mixed + 1e-12)
    assert np.all(mixed <= losses(1, lo_r) + 1e-12)
    assert np.any(losses(1, hi_r) < mixed) and np.any(mixed < losses(1, lo_r))


@pytest.mark.parametrize("form", PROFILE_FORMS)
def test_every_profile_form_gives_a_homogeneous_profile_itself(form):
    c_eff, rho = effective_profile(np.full((2, 4), 3), np.array([[16] * 4, [4] * 4]), n_layer=6, form=form)
    np.testing.assert_array_equal(c_eff, [3.0, 3.0])
    np.testing.assert_array_equal(rho, [4.0, 2.0])


def test_block_mean_form_by_hand():
    # L = 6; clients cut at 5, 5, 3, 1, 1 with ranks 64, 32, 16, 8, 4 (r_g = 64). Block 1: every client's own
    # rank (mean log2 4); blocks 2-3: 64, 32, 16 on clients, 64 on the MS for two (5.4); blocks 4-5: 64, 32 and
    # three MS copies (5.8); block 6: all on the MS (6) -> mean 5.4.
    c_eff, rho = effective_profile(np.array([5, 5, 3, 1, 1]), np.array([64, 32, 16, 8, 4]), 6, "block-mean")
    assert c_eff[0] == pytest.approx(3.0)
    assert rho[0] == pytest.approx((4 + 5.4 + 5.4 + 5.8 + 5.8 + 6) / 6)


def test_wrong_length_and_nan_actions_are_refused(small_config):
    env = _env(small_config, "box")
    env.reset(seed=0)
    shared_len = _env(small_config, "box", False).action_space.shape[0]
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.zeros(shared_len))
    bad = np.zeros(env.action_space.shape)
    bad[-1] = np.nan
    with pytest.raises(InvalidActionError, match="NaN"):
        env.step(bad)


def test_config_refuses_a_non_boolean_switch(small_config):
    with pytest.raises(TypeError, match="heterogeneous must be true or false"):
        FedsLLMConfig.from_dict({"heterogeneous": "yes"})
    with pytest.raises(Exception, match="aggregation"):
        FedsLLMConfig.from_dict({"model": {"aggregation": "mean"}})


def test_registered_ids_and_siblings(calibration_path):
    for (mode, action_mode), id_ in HETERO_IDS.items():
        assert variant_of(id_) == (mode, action_mode)
        assert sibling_id(id_, "box") == HETERO_IDS[(mode, "box")]
    env = gym.make(HETERO_IDS[("surrogate", "multidiscrete")], config={"calibration_path": calibration_path})
    assert env.unwrapped.config.heterogeneous
    env.reset(seed=0)
    assert len(env.step(env.action_space.sample())[4]["rank"]) == env.unwrapped.config.wireless.num_clients


def test_same_seed_same_episode(small_config):
    def run():
        env = _env(small_config, "multidiscrete")
        env.action_space.seed(4)
        env.reset(seed=4)
        return [env.step(env.action_space.sample())[1] for _ in range(5)]

    assert run() == run()


def test_per_client_decision_prices_each_client_at_its_own_cut(small_config):
    env = _env(small_config, "box")
    env.reset(seed=2)
    d = env.action_codec.decode(env.action_space.sample(), env.scenario, env.channel)
    shallow = d.replace(split=np.array([1, 1, 1]), rank=np.full(3, 4))
    deep_one = d.replace(split=np.array([1, 1, 5]), rank=np.full(3, 4))
    fwd_a = _fresh_step(small_config, shallow).last_breakdown.client_forward_s
    fwd_b = _fresh_step(small_config, deep_one).last_breakdown.client_forward_s
    assert fwd_a[:2] == pytest.approx(fwd_b[:2])  # clients 0 and 1 unchanged
    assert fwd_b[2] > fwd_a[2]  # client 2 now runs five blocks


def _fresh_step(cfg, decision: Decision):
    env = _env(cfg, "box")
    env.reset(seed=2)
    env.step_decision(decision)
    return env


# ---- real mode: the engine trains in its heterogeneous mode ----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_parts():
    from fedsllm_env.splitfed.model import build_random_gpt2
    from fedsllm_env.splitfed.tokenizer import default_word_tokenizer

    tok = default_word_tokenizer()
    return build_random_gpt2(tok, n_layer=3, n_embd=32, n_head=4, n_positions=64, seed=3), tok


def _real_env(calibration_path, tiny_parts, heterogeneous=True, aggregation="zero_pad"):
    from fedsllm_env.splitfed import SplitFedEngine

    cfg = FedsLLMConfig.from_dict({
        "mode": "real", "calibration_path": calibration_path, "heterogeneous": heterogeneous,
        "wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 4},
        "model": {"ranks": [1, 2, 4], "initial_rank": 2, "aggregation": aggregation},
        "training": {"batch_size": 4, "seq_len": 32, "local_iterations": 1, "num_train_samples": 96,
                     "num_val_samples": 8, "val_batches": 1, "max_rounds": 4, "target_val_loss": 0.5}})
    model, tok = tiny_parts
    with pytest.warns(UserWarning, match="differs from the calibrated"):
        return FedsLLMEnv(cfg, backend=SplitFedEngine(cfg, model=model, tokenizer=tok, progress=False))


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore:dataset ")
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("aggregation", ["zero_pad", "svd"])
def test_real_mode_trains_a_mixed_profile_reproducibly(calibration_path, tiny_parts, aggregation):
    def episode(heterogeneous=True, profile=(np.array([1, 2, 1]), np.array([4, 1, 2]))):
        env = _real_env(calibration_path, tiny_parts, heterogeneous, aggregation)
        env.reset(seed=7)
        d = env.action_codec.decode(env.action_space.sample(), env.scenario, env.channel)
        out = []
        for _ in range(2):
            out.append(env.step_decision(d.replace(split=profile[0], rank=profile[1]))[4]["val_loss"])
        assert env.backend.heterogeneous == heterogeneous
        return out

    first = episode()
    assert first == episode()  # same seed, same training losses on CPU
    # every client at (1, 2) in the heterogeneous engine trains exactly as the shared decision (1, 2)
    assert episode(True, (np.full(3, 1), np.full(3, 2))) == episode(False, (1, 2))
    assert first != episode(True, (np.full(3, 1), np.full(3, 2)))


# ---- the batched surrogate ---------------------------------------------------------------------------------------
HETERO_VECTOR_IDS = {"box": "FedsLLM-Surrogate-Hetero-v0", "multidiscrete": "FedsLLM-Surrogate-Hetero-Discrete-v0",
                     "priority": "FedsLLM-Surrogate-Hetero-Priority-v0"}
# K = 3, M != N, a memory limit that projects each client's (cut, rank) on its own, a short round cap
ODD_HETERO = {"wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 6},
              "compute": {"client_memory_bytes": 2.9e6}, "training": {"max_rounds": 10}}


@pytest.mark.parametrize("mode", sorted(HETERO_VECTOR_IDS))
@pytest.mark.parametrize("overrides", [{}, ODD_HETERO], ids=["default", "odd"])
def test_batch_equals_single_heterogeneous_envs_bit_for_bit(mode, overrides, calibration_path):
    from gymnasium.utils.env_checker import data_equivalence
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from fedsllm_env.vector import SurrogateVectorEnv

    config = {**overrides, "calibration_path": calibration_path}
    env_id, n = HETERO_VECTOR_IDS[mode], 4
    batch = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", config=config)
    ref = SyncVectorEnv([lambda: gym.make(env_id, config=config) for _ in range(n)],
                        autoreset_mode=AutoresetMode.SAME_STEP)
    assert isinstance(batch.unwrapped, SurrogateVectorEnv) and batch.unwrapped.config.heterogeneous
    assert batch.single_observation_space == ref.single_observation_space
    assert batch.single_action_space == ref.single_action_space
    assert data_equivalence(batch.reset(seed=3), ref.reset(seed=3), exact=True)
    batch.action_space.seed(8)
    done = 0
    for t in range(60):
        action = batch.action_space.sample()
        got, want = batch.step(action), ref.step(action)
        assert data_equivalence(got, want, exact=True), f"step {t} differs"
        done += int(got[2].sum() + got[3].sum())
    assert done > 0  # whole episodes and the autoreset after them
    info = got[4]
    assert info["rank"].shape == (n, overrides.get("wireless", {}).get("num_clients", 5))


def test_priority_and_real_siblings_keep_heterogeneity():
    from fedsllm_env.registration import HETERO_PRIORITY_IDS, PRIORITY_IDS, id_in_mode, priority_id_of

    def real_id_of(env_id):
        return id_in_mode(env_id, "real")

    assert priority_id_of("FedsLLM-Surrogate-Hetero-v0") == HETERO_PRIORITY_IDS["surrogate"]
    assert priority_id_of("FedsLLM-Surrogate-v0") == PRIORITY_IDS["surrogate"]
    assert priority_id_of("FedsLLM-Hetero-Discrete-v0") == HETERO_PRIORITY_IDS["real"]
    assert real_id_of("FedsLLM-Surrogate-Hetero-Discrete-v0") == "FedsLLM-Hetero-Discrete-v0"
    assert real_id_of(HETERO_PRIORITY_IDS["surrogate"]) == HETERO_PRIORITY_IDS["real"]
    assert real_id_of("FedsLLM-Surrogate-v0") == "FedsLLM-v0"
    assert id_in_mode("FedsLLM-Hetero-Priority-v0", "surrogate") == HETERO_PRIORITY_IDS["surrogate"]


def test_hetero_optimizer_policy_needs_a_heterogeneous_env_and_decides_per_client(small_config):
    from baselines.policy import make_baseline_policy

    with pytest.raises(ValueError, match="needs a heterogeneous env"):
        make_baseline_policy("hetero_optimizer", _env(small_config, "box", False))
    env = _env(small_config, "box")
    obs, _ = env.reset(seed=0)
    policy = make_baseline_policy("hetero_optimizer", env)
    _, _, _, _, info = env.step(policy.predict(obs)[0])
    np.testing.assert_array_equal(info["split"], policy.last_result.decision.split)
    np.testing.assert_array_equal(info["rank"], policy.last_result.decision.rank)
    # E of a homogeneous profile is the measured E(r, c) itself (the optimizer's start agrees with it)
    assert env.rounds_needed(np.full(3, 16), np.full(3, 2)) == env.rounds_needed(16, 2)


def test_an_agent_trains_and_acts_on_a_heterogeneous_id(tmp_path, calibration_path):
    """PPO on the heterogeneous priority id (the batched surrogate underneath): it trains, logs per-client cuts and
    ranks by their mean, and its greedy policy plays a (K,) profile in the single env."""
    from agents.training import train_agent

    result = train_agent("ppo", tmp_path / "ppo", env_id=HETERO_VECTOR_IDS["priority"], seed=0,
                         total_timesteps=128, config={"calibration_path": calibration_path},
                         hyperparams={"n_steps": 32, "batch_size": 32})
    env = gym.make(HETERO_VECTOR_IDS["priority"], config={"calibration_path": calibration_path})
    obs, _ = env.reset(seed=0)
    action, _ = result.model.predict(obs, deterministic=True)
    assert action.shape == env.action_space.shape == (4 * 5 + 2,)
    _, _, _, _, info = env.step(action)
    assert info["split"].shape == (5,) and info["rank"].shape == (5,)

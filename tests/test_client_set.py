"""The client-set layout (any K), its churn env, the Deep Sets policy and the clients-sweep CLI."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import fedsllm_env  # noqa: F401  (registers the ids)
from agents.set_policy import ClientSetAgent, ClientSetPolicy, layout_of_spaces
from fedsllm_env.client_set import ClientSetEnv, ClientSetLayout, SetTeacher, clients_overrides
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import ConfigError, InvalidActionError
from fedsllm_env.priority import PriorityHeuristic, make_priority_env

SURROGATE = {"mode": "surrogate", "action_mode": "box"}


def _priority_env(k, hetero=False, calibration_path=None):
    cfg = clients_overrides({"calibration_path": str(calibration_path)} if calibration_path else None, k)
    return make_priority_env(cfg, variant={**SURROGATE, "heterogeneous": hetero})


@pytest.mark.parametrize("hetero", [False, True])
def test_priority_actions_map_to_the_set_layout_and_back_exactly(hetero):
    rng = np.random.default_rng(0)
    lay = ClientSetLayout(9, hetero)
    for k in (1, 4, 9):
        a = rng.uniform(-1, 1, 4 * k + 2 if hetero else 2 * k + 4).astype(np.float32)
        s = lay.from_priority(a, k)
        assert s.shape == lay.action_space().shape
        np.testing.assert_array_equal(lay.to_priority(s, k), a)
        assert not s[k * lay.client_actions: 9 * lay.client_actions].any()  # padding rows hold zeros
    with pytest.raises(ConfigError, match="max_clients = 9"):
        lay.to_priority(np.zeros(lay.action_space().shape), 10)
    with pytest.raises(InvalidActionError, match="expected"):
        lay.to_priority(np.zeros(5), 3)


def test_encoding_is_per_client_statistics_and_permutes_with_the_clients(calibration_path):
    env = _priority_env(4, calibration_path=calibration_path)
    obs, _ = env.reset(seed=3)
    cfg = env.unwrapped.config
    k, m = 4, cfg.wireless.num_subchannels_ms
    lay = ClientSetLayout(6)
    x = lay.encode(cfg, obs)
    assert x.shape == lay.observation_space().shape and lay.observation_space().contains(x)
    np.testing.assert_array_equal(x[:6], [1, 1, 1, 1, 0, 0])
    rows = x[6: 6 + 6 * 12].reshape(6, 12)
    g1 = obs[m: 2 * m]  # client 1's MS gains
    np.testing.assert_allclose(rows[1, :4], [g1.max(), g1.mean(), g1.min(), g1.std()], rtol=1e-6, atol=1e-7)
    assert not rows[4:].any()
    # permuting the clients of the flat observation permutes the rows, context unchanged
    perm = np.array([2, 0, 3, 1])
    n = cfg.wireless.num_subchannels_fs
    p_obs = obs.copy()
    p_obs[: k * m] = obs[: k * m].reshape(k, m)[perm].ravel()
    p_obs[k * m: k * (m + n)] = obs[k * m: k * (m + n)].reshape(k, n)[perm].ravel()
    off = k * (m + n)
    p_obs[off: off + k] = obs[off: off + k][perm]
    p_obs[off + k: off + 2 * k] = obs[off + k: off + 2 * k][perm]
    y = lay.encode(cfg, p_obs)
    np.testing.assert_allclose(y[6: 6 + 4 * 12].reshape(4, 12), rows[:4][perm], rtol=1e-6)
    np.testing.assert_allclose(y[-7:], x[-7:], rtol=1e-6)
    with pytest.raises(ConfigError, match="expected"):
        lay.encode(cfg, obs[:-1])


def test_churn_env_draws_k_per_episode_and_is_seeded(calibration_path):
    cfg = {"calibration_path": str(calibration_path), "training": {"max_rounds": 4}}
    env = ClientSetEnv(cfg, clients=(2, 7), max_clients=8)
    ks = set()
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        ks.add(info["num_clients"])
        assert obs[:8].sum() == info["num_clients"]
    assert len(ks) >= 3 and ks <= set(range(2, 8))

    def episode(seed):
        e = ClientSetEnv(cfg, clients=(2, 7), max_clients=8)
        obs, info = e.reset(seed=seed)
        out = [obs]
        rng = np.random.default_rng(seed)
        done = False
        while not done:
            obs, r, term, trunc, info = e.step(rng.uniform(-1, 1, e.action_space.shape).astype(np.float32))
            out += [obs, np.array([r])]
            done = term or trunc
        return np.concatenate(out), info["num_clients"]

    a, b = episode(5), episode(5)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    with pytest.raises(ConfigError, match="max_clients"):
        ClientSetEnv(cfg, clients=(2, 9), max_clients=8)
    with pytest.raises(ConfigError, match="range"):
        ClientSetEnv(cfg, clients=(5, 2))


@pytest.mark.parametrize("env_id", ["FedsLLM-Surrogate-AnyK-v0", "FedsLLM-Surrogate-Hetero-AnyK-v0"])
def test_anyk_ids_pass_both_checkers(env_id, calibration_path):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id, config={"calibration_path": str(calibration_path)}, clients=(2, 6), max_clients=6)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped)
    assert env.unwrapped.layout.heterogeneous == ("Hetero" in env_id)


def test_the_heuristic_teacher_plays_the_k_client_heuristic(calibration_path):
    cfg = {"calibration_path": str(calibration_path), "training": {"max_rounds": 6}}
    env = ClientSetEnv(cfg, clients=(3, 6), max_clients=6)
    teacher = SetTeacher(env, PriorityHeuristic)
    obs, info = env.reset(seed=11)
    k = info["num_clients"]
    inner = _priority_env(k, calibration_path=calibration_path)
    inner.unwrapped.config  # same cell: K clients, subchannels raised to K
    assert env.config == FedsLLMConfig.from_dict(clients_overrides(cfg, k))
    # the same inner seed the churn env drew
    env2 = ClientSetEnv(cfg, clients=(3, 6), max_clients=6)
    env2.reset(seed=11)
    a, _ = teacher.predict(obs)
    np.testing.assert_array_equal(env.layout.to_priority(a, k), PriorityHeuristic(env.inner).action)
    _, r, *_ = env.step(a)
    _, r2, *_ = env2.inner.step(PriorityHeuristic(env2.inner).action)
    assert r == r2


def _policy(k_max, hetero=False, seed=0):
    lay = ClientSetLayout(k_max, hetero)
    torch.manual_seed(seed)
    return ClientSetPolicy(lay.observation_space(), lay.action_space(), lambda _: 1e-3)


def _random_set_obs(lay, k, rng):
    x = np.zeros(lay.observation_space().shape, dtype=np.float32)
    x[:k] = 1.0
    rows = x[lay.max_clients: lay.max_clients * 13].reshape(lay.max_clients, 12)
    rows[:k] = rng.uniform(-1, 1, (k, 12))
    x[-7:] = rng.uniform(0, 1, 7)
    return x


@pytest.mark.parametrize("hetero", [False, True])
def test_set_policy_is_permutation_equivariant_and_padding_invariant(hetero):
    rng = np.random.default_rng(1)
    pol = _policy(8, hetero)
    lay = pol.layout
    x = _random_set_obs(lay, 5, rng)
    a = pol.mean_actions(x[None])[0]
    c = lay.client_actions
    # permute the 5 present rows
    perm = np.array([3, 1, 4, 0, 2])
    y = x.copy()
    rows = y[8: 8 * 13].reshape(8, 12)
    rows[:5] = rows[:5][perm]
    b = pol.mean_actions(y[None])[0]
    np.testing.assert_allclose(b[: 5 * c].reshape(5, c), a[: 5 * c].reshape(5, c)[perm], atol=1e-6)
    np.testing.assert_allclose(b[8 * c:], a[8 * c:], atol=1e-6)
    # the same 5 clients in a 5-row layout: the same actions (no weight or feature depends on the padding)
    small = ClientSetLayout(5, hetero)
    z = np.concatenate([x[:5], x[8: 8 + 5 * 12], x[-7:]])
    s = pol.mean_actions(z[None])[0]
    np.testing.assert_allclose(s[: 5 * c], a[: 5 * c], atol=1e-6)
    np.testing.assert_allclose(s[5 * c:], a[8 * c:], atol=1e-6)
    assert small.action_space().shape == s.shape
    # padded entries do not count in the log-probability
    obs_t = torch.as_tensor(x[None])
    act = torch.as_tensor(rng.uniform(-1, 1, (1, lay.action_space().shape[0])).astype(np.float32))
    act2 = act.clone()
    act2[0, 5 * c: 8 * c] = 0.9
    _, lp1, ent = pol.evaluate_actions(obs_t, act)
    _, lp2, _ = pol.evaluate_actions(obs_t, act2)
    assert torch.allclose(lp1, lp2)
    act3 = act.clone()
    act3[0, 0] += 0.5
    assert not torch.allclose(pol.evaluate_actions(obs_t, act3)[1], lp1)
    n_entries = 5 * c + lay.cell_actions
    assert torch.allclose(ent, torch.tensor([n_entries * (0.5 + 0.5 * np.log(2 * np.pi))], dtype=ent.dtype)
                          + pol.log_std[:c].sum() * 5 + pol.log_std[c:].sum())


def test_layout_of_spaces_refuses_other_spaces():
    lay = ClientSetLayout(4, True)
    assert layout_of_spaces(lay.observation_space(), lay.action_space()) == lay
    with pytest.raises(ConfigError, match="client-set"):
        layout_of_spaces(gym.spaces.Box(-1, 1, (10,)), lay.action_space())
    with pytest.raises(ConfigError, match="does not fit"):
        layout_of_spaces(lay.observation_space(), gym.spaces.Box(-1, 1, (7,)))


def test_a_trained_set_agent_acts_at_unseen_k_and_is_refused_elsewhere(tmp_path, calibration_path):
    from stable_baselines3 import PPO

    cfg = {"calibration_path": str(calibration_path), "training": {"max_rounds": 5}}
    env = ClientSetEnv(cfg, clients=(2, 4), max_clients=4)
    model = PPO(ClientSetPolicy, env, n_steps=16, batch_size=16, n_epochs=1, seed=0)
    model.learn(32)
    model.save(tmp_path / "set.zip")
    loaded = PPO.load(tmp_path / "set.zip", device="cpu")
    agent = ClientSetAgent(loaded)
    for k in (2, 7):  # 7 > the training layout's 4 rows
        penv = _priority_env(k, calibration_path=calibration_path)
        obs, _ = penv.reset(seed=0)
        bound = agent(penv)
        act, _ = bound.predict(obs)
        assert act.shape == penv.action_space.shape
        np.testing.assert_array_equal(act, ClientSetAgent(model)(penv).predict(obs)[0])
        batch, _ = bound.predict(np.stack([obs, obs]))
        np.testing.assert_allclose(batch[1], act, atol=1e-6)  # batched matmuls may round differently
        penv.step(act)
    box = gym.make("FedsLLM-Surrogate-v0", config=cfg)
    with pytest.raises(ConfigError, match="priority actions"):
        agent(box)
    with pytest.raises(ConfigError, match="heterogeneous"):
        agent(_priority_env(3, hetero=True, calibration_path=calibration_path))


@pytest.mark.slow
def test_train_then_clients_sweep_cli(tmp_path, calibration_path):
    import json

    from train_scripts.clients_sweep import main as sweep_main
    from train_scripts.train import main as train_main

    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"calibration_path": str(calibration_path), "training": {"max_rounds": 4}}))
    train_main(["--algo", "ppo", "--env-id", "FedsLLM-Surrogate-AnyK-v0", "--total-timesteps", "64",
                "--n-envs", "2", "--hyperparams", '{"n_steps": 32, "batch_size": 32, "n_epochs": 1}',
                "--bc-teacher", "priority_heuristic", "--bc-samples", "40", "--bc-epochs", "2",
                "--env-kwargs", '{"clients": [2, 6], "max_clients": 6}', "--eval-freq", "16",
                "--config", str(cfg_file), "--runs-dir", str(tmp_path / "runs"), "--run-name", "anyk",
                "--no-progress-bar", "--no-tensorboard"])
    from stable_baselines3 import PPO

    trained = PPO.load(tmp_path / "runs" / "anyk" / "model.zip", device="cpu")
    assert trained.observation_space.shape == (6 * 13 + 7,)  # the layout of --env-kwargs' max_clients
    out = sweep_main(["--agents", str(tmp_path / "runs" / "anyk"), "--clients", "2", "5", "--seeds", "7",
                      "--config", str(cfg_file), "--runs-dir", str(tmp_path / "runs")])
    report = json.loads((out / "clients_sweep.json").read_text())
    rows = report["rows"]
    assert [(r["clients"], r["policy"].split(" ")[0]) for r in rows] == [
        (2, "optimizer"), (2, "priority_heuristic"), (2, "ppo"), (5, "optimizer"), (5, "priority_heuristic"),
        (5, "ppo")]
    assert all(r["relative_to_optimizer"] > 0 for r in rows)
    assert all(r["worst_seed_ratio"] == pytest.approx(r["relative_to_optimizer"]) for r in rows)  # one seed
    assert (out / "clients_sweep.png").is_file()
    # the figures' clients sweep draws the K-invariant agent at every K
    from train_scripts.figures import main as figures_main

    figures_main(["--agent", str(tmp_path / "runs" / "anyk"), "--clients", "2", "7", "--bandwidths-mhz", "1",
                  "--power-budgets-w", "0.4", "--ranks", "64", "--seeds", "7", "--rounds-per-point", "1",
                  "--policies", "equal_power", "--config", str(cfg_file), "--out-dir", str(tmp_path / "fig")])
    curves = json.loads((tmp_path / "fig" / "figures.json").read_text())["clients"]["curves"]
    agent = next(v for name, v in curves.items() if name.startswith("ppo"))
    assert len(agent) == 2 and all(np.isfinite(agent))


@pytest.mark.parametrize("kwargs,fragment", [
    ("{oops", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"config": {}}', "cannot set"),
    ('{"nope": 1}', "does not take them"),
])
def test_train_env_kwargs_errors_are_one_line(kwargs, fragment, tmp_path):
    from fedsllm_env.errors import UsageError
    from train_scripts.train import main as train_main

    with pytest.raises(UsageError, match=fragment):
        train_main(["--algo", "ppo", "--env-id", "FedsLLM-Surrogate-AnyK-v0", "--env-kwargs", kwargs,
                    "--runs-dir", str(tmp_path), "--run-name", "x", "--no-progress-bar"])
    assert not (tmp_path / "x").exists()


def test_a_resumed_run_keeps_its_env_kwargs(tmp_path, calibration_path):
    import json

    from fedsllm_env.errors import UsageError
    from train_scripts.train import main as train_main

    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"calibration_path": str(calibration_path), "training": {"max_rounds": 4}}))
    common = ["--algo", "ppo", "--env-id", "FedsLLM-Surrogate-AnyK-v0", "--n-envs", "1", "--config", str(cfg_file),
              "--hyperparams", '{"n_steps": 16, "batch_size": 16, "n_epochs": 1}', "--runs-dir", str(tmp_path),
              "--no-progress-bar", "--no-tensorboard"]
    train_main(common + ["--total-timesteps", "16", "--checkpoint-freq", "16", "--run-name", "r",
                         "--env-kwargs", '{"clients": [2, 3], "max_clients": 3}'])
    ckpt = next((tmp_path / "r" / "checkpoints").glob("*.zip"))
    with pytest.raises(UsageError, match="differs from the resumed run"):
        train_main(common + ["--total-timesteps", "32", "--resume", str(ckpt), "--env-kwargs", '{"clients": [2, 5]}'])
    train_main(common + ["--total-timesteps", "32", "--resume", str(ckpt)])  # its own (3-row layout) again
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert json.loads(saved["args"]["env_kwargs"]) == {"clients": [2, 3], "max_clients": 3}

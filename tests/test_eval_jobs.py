"""Evaluation episodes as self-contained jobs (what a Ray task runs): order independence, policies that travel."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from agents.evaluation import (EpisodeJob, bar_callback, evaluate_policies, evaluate_policy_on_seeds, policy_source,
                               run_job)
from agents.factory import make_agent
from agents.training import make_training_env
from baselines.policy import make_baseline_policy

ENV_ID = "FedsLLM-Surrogate-v0"


@pytest.fixture()
def cfg(calibration_path):
    return {"wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 4},
            "training": {"max_rounds": 4}, "calibration_path": calibration_path}


def _random_subchannels(env):
    return make_baseline_policy("random_subchannels", env)


def test_an_episode_depends_on_its_seed_only(cfg):
    both = evaluate_policy_on_seeds(_random_subchannels, ENV_ID, [5, 6], config=cfg, name="r")
    alone = evaluate_policy_on_seeds(_random_subchannels, ENV_ID, [6], config=cfg, name="r")
    assert both[1].total_delay_s == alone[0].total_delay_s and both[1].splits == alone[0].splits
    job = EpisodeJob("r", policy_source(_random_subchannels), ENV_ID, cfg, 6)
    record = run_job(pickle.loads(pickle.dumps(job)), torch_threads=1, global_seed=0)
    assert record.total_delay_s == alone[0].total_delay_s and record.ranks == alone[0].ranks


def test_sb3_agents_travel_as_their_zip(cfg, one_torch_thread):
    env = make_training_env(ENV_ID, 1, seed=0, config=cfg)
    agent = make_agent("ppo", env, 0, {"n_steps": 32, "batch_size": 32}, env_id=ENV_ID)
    agent.learn(32)
    env.close()
    copy = pickle.loads(pickle.dumps(policy_source(agent)))()
    obs = np.random.default_rng(0).uniform(-1, 1, (5,) + agent.observation_space.shape).astype(np.float32)
    np.testing.assert_array_equal(copy.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])
    results = evaluate_policies([("ppo", agent, ENV_ID, cfg), ("rand", _random_subchannels, ENV_ID, cfg)], [1, 2])
    assert list(results) == ["ppo", "rand"] and [r.seed for r in results["rand"]] == [1, 2]
    # jobs run anywhere and finish in any order (here: in reverse) still give the in-process records
    def reverse_mapper(fn, args_list):
        return reversed([(i, fn(*pickle.loads(pickle.dumps(args)))) for i, args in enumerate(args_list)])

    mapped = evaluate_policies([("ppo", agent, ENV_ID, cfg), ("rand", _random_subchannels, ENV_ID, cfg)], [1, 2],
                               mapper=reverse_mapper)
    for name in results:
        assert [(r.seed, r.total_delay_s, r.splits, r.ranks) for r in mapped[name]] == \
            [(r.seed, r.total_delay_s, r.splits, r.ranks) for r in results[name]]
    with pytest.raises(ValueError, match="unique"):
        evaluate_policies([("a", agent, ENV_ID, cfg), ("a", agent, ENV_ID, cfg)], [1])


class _Bar:
    """A stand-in for a progress bar: records updates and postfixes."""

    def __init__(self):
        self.n, self.postfixes = 0, []

    def update(self, n=1):
        self.n += n

    def set_postfix(self, **values):
        self.postfixes.append(values)


def test_progress_is_reported_after_every_round_and_every_episode(cfg):
    """evaluate_policy_on_seeds / evaluate_policies report (policy, seed, round, done) after every round played
    here, and once per episode that comes back from a mapper; without a callback they stay silent as before."""
    calls = []
    records = evaluate_policy_on_seeds(_random_subchannels, ENV_ID, [5, 6], config=cfg, name="r",
                                       progress=lambda *a: calls.append(a))
    expected = [("r", rec.seed, k, k == rec.rounds) for rec in records for k in range(1, rec.rounds + 1)]
    assert calls == expected and sum(done for *_, done in calls) == 2
    assert [r.total_delay_s for r in records] == \
        [r.total_delay_s for r in evaluate_policy_on_seeds(_random_subchannels, ENV_ID, [5, 6], config=cfg, name="r")]

    def mapper(fn, args_list):
        return [(i, fn(*args)) for i, args in enumerate(args_list)]

    entries = [("a", _random_subchannels, ENV_ID, cfg), ("b", _random_subchannels, ENV_ID, cfg)]
    for kind, map_with in (("here", None), ("mapped", mapper)):
        bar = _Bar()
        results = evaluate_policies(entries, [5, 6], mapper=map_with, progress=bar_callback(bar, "episode"))
        assert bar.n == 4, kind
        assert bar.postfixes[-1] == {"policy": "b", "seed": 6, "round": results["b"][1].rounds}, kind
        rounds_bar = _Bar()
        evaluate_policies(entries, [5, 6], mapper=map_with, progress=bar_callback(rounds_bar, "round"))
        assert rounds_bar.n == sum(r.rounds for recs in results.values() for r in recs), kind


def test_bar_callback_throttles_the_postfix_within_an_episode():
    bar = _Bar()
    report = bar_callback(bar, "round", min_interval_s=3600)
    for k in range(1, 101):
        report("p", 0, k, k == 100)
    assert bar.n == 100 and [p["round"] for p in bar.postfixes] == [1, 100]
    with pytest.raises(ValueError, match="unit"):
        bar_callback(bar, "seconds")

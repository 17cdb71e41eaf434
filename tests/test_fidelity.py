"""Schedules and `fedsllm fidelity`: the notation, the open-loop player, and a tiny real-vs-surrogate run."""

from __future__ import annotations

import numpy as np
import pytest

from fedsllm_env.errors import UsageError
from fedsllm_env.schedules import (DESIGNED_PROFILES, DESIGNED_SCHEDULES, FIDELITY_SCHEDULES, HELD_OUT_PROFILES,
                                   PROFILE_FIDELITY_SCHEDULES, is_profile_schedule, parse_profile,
                                   parse_profile_schedule, parse_schedule)


def test_schedule_notation_round_trips_and_plays_by_round():
    s = parse_schedule("c1r64x3;c5r8x2;c2r16")
    assert s.text == "c1r64x3;c5r8x2;c2r16" and not s.is_fixed
    assert s.decisions(7) == [(1, 64)] * 3 + [(5, 8)] * 2 + [(2, 16)] * 2
    cyc = parse_schedule("c1r64x2;c1r8x1*")
    assert cyc.decisions(7) == [(1, 64), (1, 64), (1, 8)] * 2 + [(1, 64)]
    assert cyc.name == "c1r64x2_c1r8x1_cycle"
    assert parse_schedule("c3r32").is_fixed and parse_schedule("c3r32").at(100) == (3, 32)


@pytest.mark.parametrize("text, fragment", [
    ("c1r64;c1r8", "only the last phase"),
    ("c1r64x2;c1r8*", "needs a number of rounds"),
    ("c0r8", "cut >= 1"),
    ("c1r8x0", "rounds >= 1"),
    ("r8c1", "is not c<cut>r<rank>"),
])
def test_bad_schedules_are_named(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_schedule(text)


def test_the_fidelity_suite_holds_switches_the_fit_never_saw():
    fit = {parse_schedule(t).text for t in DESIGNED_SCHEDULES}
    switches = [t for t in FIDELITY_SCHEDULES if not parse_schedule(t).is_fixed]
    assert len(switches) >= 5 and not fit & set(switches)


def test_schedule_policy_plays_its_schedule_in_the_hybrid_env(calibration_path):
    import gymnasium as gym

    from train_scripts.fidelity import SchedulePolicy

    env = gym.make("FedsLLM-Surrogate-Hybrid-v0", config={"calibration_path": calibration_path,
                                                          "training": {"max_rounds": 6}})
    policy = SchedulePolicy(parse_schedule("c1r64x2;c3r8"), env.unwrapped.config.model.ranks)
    obs, _ = env.reset(seed=0)
    played, start = [], True
    for _ in range(6):
        action, _ = policy.predict(obs, episode_start=np.array([start]))
        start = False
        obs, _, term, trunc, info = env.step(action)
        played.append((info["split"], info["rank"]))
        if term or trunc:
            break
    assert played == parse_schedule("c1r64x2;c3r8").decisions(len(played))
    with pytest.raises(UsageError, match="outside model.ranks"):
        SchedulePolicy(parse_schedule("c1r12"), (4, 8))


def test_profile_schedule_notation_round_trips_and_plays_by_round():
    s = parse_profile_schedule("c1r64x2;c5.5.1.1.1r64.64.8.8.8x1*@svd")
    assert s.text == "c1r64x2;c5.5.1.1.1r64.64.8.8.8x1*@svd" and s.aggregation == "svd" and s.cycle
    assert [s.at(t).per_client(5) for t in (1, 2, 3, 4)] == [((1,) * 5, (64,) * 5)] * 2 + [
        ((5, 5, 1, 1, 1), (64, 64, 8, 8, 8)), ((1,) * 5, (64,) * 5)]
    assert s.cuts_and_ranks() == ({1, 5}, {8, 64})
    assert is_profile_schedule("c1r64x8;c1r64.64.8.8.8") and is_profile_schedule("c1r64@svd")
    assert not is_profile_schedule("c1r64x8;c1r8")
    for text in PROFILE_FIDELITY_SCHEDULES:
        assert parse_profile_schedule(text).text == text


@pytest.mark.parametrize("text, fragment", [
    ("c1r64.64x2;c1r8.8.8", "different numbers of clients"),
    ("c1r64.64;c1r8.8", "only the last phase"),
    ("c1r64.64x2;c1r8.8*@mean", "aggregation rule"),
    ("c1r64.64x0;c1r8.8", "rounds >= 1"),
    ("c1.1r64.64;;", "is not c<cuts>r<ranks>"),
])
def test_bad_profile_schedules_are_named(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_profile_schedule(text)


def test_profile_switches_of_the_suite_were_never_fitted():
    fitted = {parse_profile(t).text for t in DESIGNED_PROFILES + HELD_OUT_PROFILES}
    for text in PROFILE_FIDELITY_SCHEDULES:
        plan = parse_profile_schedule(text)
        assert len(plan.phases) >= 2 and len({p.text for p, _ in plan.phases}) >= 2  # a switch
        assert not {p.text for p, _ in plan.phases} <= fitted


def test_profile_schedule_policy_plays_its_profiles_in_the_heterogeneous_env(calibration_path):
    import gymnasium as gym

    from train_scripts.fidelity import ProfileSchedulePolicy

    text = "c1r64x2;c3.3.1r8.64.64"
    env = gym.make("FedsLLM-Surrogate-Hetero-Hybrid-v0", config={
        "calibration_path": calibration_path, "training": {"max_rounds": 4},
        "wireless": {"num_clients": 3, "num_subchannels_ms": 4, "num_subchannels_fs": 4}})
    plan = parse_profile_schedule(text)
    policy = ProfileSchedulePolicy(plan, env.unwrapped.config.model.ranks, 3)
    obs, _ = env.reset(seed=0)
    played = []
    for t in range(4):
        action, _ = policy.predict(obs, episode_start=np.array([t == 0]))
        obs, _, term, trunc, info = env.step(action)
        played.append((tuple(info["split"].tolist()), tuple(info["rank"].tolist())))
        if term or trunc:
            break
    assert played == [plan.at(t + 1).per_client(3) for t in range(len(played))]
    with pytest.raises(UsageError, match="K = 5 clients"):
        ProfileSchedulePolicy(parse_profile_schedule("c1r8.8.8"), (8, 64), 5)


@pytest.mark.slow
def test_tiny_fidelity_run_pairs_real_and_surrogate_rounds_on_the_same_channel(tmp_path):
    """Two real rounds of the shipped backbone and two surrogate rounds per noise seed: the same decisions on the
    same channel cost the same delay in both modes, so with both truncated at 2 rounds the error is 0, and the
    decisions recorded are the schedule's."""
    import json

    from train_scripts.fidelity import Args, run

    out = tmp_path / "fidelity.json"
    hetero = "c1r64x1;c2.2.1.1.1r8.64.64.64.64@svd"
    result = run(Args(schedules=("c1r64x1;c2r8", hetero), policies=(), noise_seeds=(0, 1), max_rounds=2,
                      out=str(out)))
    assert [r["entry"] for r in result["rows"]] == ["c1r64x1;c2r8", hetero]
    for row in result["rows"]:
        assert row["real_rounds"] == 2 and row["surrogate_rounds_min"] == row["surrogate_rounds_max"] == 2
        assert row["error"] == pytest.approx(0.0, abs=1e-12) and row["real_rounds_in_range"]
    real = {e["entry"]: e for e in result["episodes"] if e["mode"] == "real"}
    assert list(zip(real["c1r64x1;c2r8"]["splits"], real["c1r64x1;c2r8"]["ranks"])) == [(1, 64), (2, 8)]
    assert real[hetero]["splits"] == [[1] * 5, [2, 2, 1, 1, 1]] and real[hetero]["ranks"][1] == [8, 64, 64, 64, 64]
    assert json.loads(out.read_text())["rows"][0]["entry"] == "c1r64x1;c2r8"


def test_benchmark_sim_to_real_pairs_each_policy_on_the_real_seeds():
    from agents.evaluation import EpisodeRecord
    from train_scripts.benchmark import real_id, sim_to_real_rows

    def rec(name, seed, delay, rounds):
        return EpisodeRecord(name, seed, delay, rounds, True, False, 1.0, -delay, delay / rounds, delay, 0.001,
                             (1,) * rounds, (64,) * rounds)

    surrogate = {"optimizer": [rec("optimizer", 0, 30.0, 20), rec("optimizer", 1, 50.0, 30)],
                 "agent": [rec("agent", 0, 33.0, 20), rec("agent", 1, 99.0, 40)]}
    real = {"optimizer": [rec("optimizer", 0, 25.0, 18)], "agent": [rec("agent", 0, 30.0, 21)]}
    rows = {r["policy"]: r for r in sim_to_real_rows(surrogate, real)}
    assert rows["optimizer"]["surrogate_total_delay_mean_s"] == 30.0  # seed 1 is not paired
    assert rows["optimizer"]["sim_to_real"] == pytest.approx(30.0 / 25.0 - 1.0)
    assert rows["agent"]["real_relative_to_optimizer"] == pytest.approx(30.0 / 25.0)
    assert rows["agent"]["sim_to_real"] == pytest.approx(0.1)
    assert real_id("FedsLLM-Surrogate-Priority-v0") == "FedsLLM-Priority-v0"
    assert real_id("FedsLLM-Surrogate-v0") == "FedsLLM-v0"


def test_switch_search_prices_a_schedule_as_the_env_would_play_it(calibration_path):
    """price_schedules: the total delay of a schedule is the sum of its per-round delays up to the first noisy
    loss at or below the target, the same rounds the surrogate backend reports when it plays the schedule."""
    from fedsllm_env.backends import SurrogateBackend
    from fedsllm_env.calibration import load_calibration
    from fedsllm_env.config import FedsLLMConfig
    from fedsllm_env.convergence import ar1_noise
    from train_scripts.switch_search import candidate_schedules, price_schedules

    cal = load_calibration(calibration_path)
    cfg = FedsLLMConfig(mode="surrogate", calibration_path=calibration_path, training={"max_rounds": 40})
    backend = SurrogateBackend(cal, cfg)
    ranks = cfg.model.ranks
    rng = np.random.default_rng(3)
    delays = rng.uniform(0.5, 2.0, size=(40, 5, len(ranks)))
    schedules = ["c1r64", "c2r8x5;c1r64", "c1r16x2;c3r32x3*"]
    normals = np.random.default_rng(7).standard_normal(40)
    totals = price_schedules(schedules, delays, backend, ranks, cal.target_val_loss,
                             ar1_noise(normals[None], backend.noise))
    for text, total in zip(schedules, totals):
        plan = parse_schedule(text)
        backend.reset(0)
        backend._normals = normals.copy()
        backend._noise = ar1_noise(normals, backend.noise)
        expected = 0.0
        for t in range(1, 41):
            c, r = plan.at(t)
            expected += delays[t - 1, c - 1, ranks.index(r)]
            if backend.run_round(c, r).val_loss <= cal.target_val_loss:
                break
        else:
            expected = np.inf
        assert total == pytest.approx(expected, rel=1e-12)
    cands = candidate_schedules(2, (8, 64), 3, 2)
    assert "c1r8" in cands and "c1r8x3;c2r64" in cands and "c1r8x2;c2r64x1*" in cands
    assert len(cands) == 4 + 4 * 3 * 3 + 6 * 4  # fixed, two-phase (k = 1..3), periodic (each unordered pair)


def test_real_from_reuses_stored_real_episodes_and_refuses_other_settings(tmp_path):
    """--real-from: the stored real episode stands in for training (only the surrogate plays); a file made with
    another env config or another target loss is refused by name."""
    import json

    from fedsllm_env.calibration import load_calibration
    from train_scripts._common import env_overrides
    from train_scripts.fidelity import Args, run

    cfg = env_overrides("", "", 3)
    target = load_calibration().target_val_loss
    stored = {"entry": "c1r64", "kind": "schedule", "mode": "real", "seed": 0, "noise_seed": None, "rounds": 3,
              "terminated": False, "total_delay_s": 123.0, "final_val_loss": 2.0, "splits": [1] * 3,
              "ranks": [64] * 3, "wall_s": 1.0}
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"config": cfg, "episodes": [stored], "target_val_loss": target}))
    result = run(Args(schedules=("c1r64",), policies=(), noise_seeds=(0, 1), max_rounds=3, real_from=str(path)))
    assert [e["mode"] for e in result["episodes"]].count("real") == 1
    (row,) = result["rows"]
    assert row["real_total_delay_s"] == 123.0 and row["real_rounds"] == 3
    assert result["real_from"] == str(path)
    path.write_text(json.dumps({"config": env_overrides("", "", 4), "episodes": [stored]}))
    with pytest.raises(UsageError, match="other episodes"):
        run(Args(schedules=("c1r64",), policies=(), noise_seeds=(0,), max_rounds=3, real_from=str(path)))
    path.write_text(json.dumps({"config": cfg, "episodes": [stored], "target_val_loss": target + 0.1}))
    with pytest.raises(UsageError, match="target loss"):
        run(Args(schedules=("c1r64",), policies=(), noise_seeds=(0,), max_rounds=3, real_from=str(path)))
    with pytest.raises(Exception, match="no such file"):
        run(Args(schedules=("c1r64",), policies=(), noise_seeds=(0,), real_from=str(tmp_path / "none.json")))

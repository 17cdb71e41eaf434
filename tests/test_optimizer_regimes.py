"""Near-exactness of the optimizer across regimes where the split matters, E(r, c), and the pieces added
for it (regime instances, split-aware reassignment, FS-once iterations, valid ILS kicks)."""

from __future__ import annotations

import numpy as np
import pytest

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import decision_violations
from fedsllm_env.profile import ModelShape
from baselines import (
    AlternatingOptimizer,
    exact_optimum,
    exact_optimum_joint,
    random_assignment,
    random_problem,
    sized_config,
    split_rank_search,
    split_rank_step,
    subchannel_step,
)
from baselines.regimes import REGIMES, regime_problem
from baselines.alternating import initial_decision
from baselines.steps import power_step, split_reassign_step
from baselines.subchannel import random_kick

SHAPE = ModelShape(n_layer=6, n_embd=128, n_head=4, vocab_size=239, n_positions=256)
CFG = FedsLLMConfig()
# the instances below (HARD seeds) were found with these settings; pinned so new package defaults keep them
CFG = CFG.replace(model=CFG.model.replace(ranks=(1, 2, 4, 8, 16), initial_rank=4),
                  training=CFG.training.replace(seq_len=64))


def rounds_needed(rank: int) -> float:
    return 20.0 + 30.0 * rank ** -0.8


def _problem(regime: str, seed: int, e=rounds_needed):
    return regime_problem(regime, seed, SHAPE, e, cfg=CFG)


def _gap(problem) -> float:
    exact = exact_optimum(problem)
    found = AlternatingOptimizer().solve(problem)
    assert decision_violations(found.decision, problem.scenario, problem.shape, problem.cfg) == []
    assert found.objective_s >= exact.objective_s * (1 - 1e-9)  # nothing beats the optimum
    return found.objective_s / exact.objective_s - 1.0


# ---- regime instances -----------------------------------------------------------------------------
def test_regime_problems_are_seeded_and_draw_their_regime():
    for regime in REGIMES:
        a, b = _problem(regime, 7), _problem(regime, 7)
        np.testing.assert_array_equal(a.channel.gain_ms, b.channel.gain_ms)
        assert a.cfg == b.cfg
        assert 3 <= a.num_clients <= 4 and a.num_clients <= a.cfg.wireless.num_subchannels_ms <= 5
    kappa = [_problem("server-scarce", s).cfg.compute.server_flops_per_cycle for s in range(20)]
    assert 0.8 <= min(kappa) and max(kappa) <= 16.0 and len(set(kappa)) == 20
    totals = [_problem("total-power", s).cfg.wireless.total_power_ms_w for s in range(20)]
    assert 0.05 <= min(totals) and max(totals) <= 0.4
    caps = _problem("random-power", 3).scenario.client_max_power_w
    assert np.unique(caps).size == caps.size and np.all(caps <= 0.2 + 1e-12)
    default = _problem("default", 3)
    assert default.cfg.compute == CFG.compute and default.cfg.wireless.total_power_ms_w == CFG.wireless.total_power_ms_w
    cap_w = 10 ** ((CFG.wireless.client_max_power_dbm - 30) / 10)
    np.testing.assert_allclose(default.scenario.client_max_power_w, cap_w)
    with pytest.raises(ValueError, match="unknown regime 'fast'"):
        _problem("fast", 0)
    with pytest.raises(ValueError, match="max_subchannels=3 is below the largest K=4"):
        regime_problem("default", 0, SHAPE, rounds_needed, clients=(4,), max_subchannels=3)


# ---- near-exactness -------------------------------------------------------------------------------
# seeds where the optimizer before the split-aware step / valid kicks ended 0.5-4 % above the optimum
HARD = [("server-scarce", 237), ("server-scarce", 292), ("total-power", 57), ("random-power", 182)]


def test_optimizer_within_half_percent_of_exact_across_regimes():
    cases = [(regime, seed) for regime in REGIMES for seed in range(5)] + HARD
    gaps = np.array([_gap(_problem(regime, seed)) for regime, seed in cases])
    print(f"gap over {gaps.size}: median {np.median(gaps):.4%} max {gaps.max():.4%}")
    assert gaps.max() <= 0.005


def test_split_reassign_finds_the_deeper_cut_the_plain_search_misses():
    problem = _problem("server-scarce", 292)
    exact = exact_optimum(problem)
    assert exact.decision.split > 1
    # the assignment optimised for c = 1 (one plain iteration) makes every deeper cut look worse
    d = AlternatingOptimizer(split_reassign=False, max_iter=1).solve(problem).decision
    plain = split_rank_step(problem, power_step(problem, d))
    assert plain.split == 1
    found = split_reassign_step(problem, power_step(problem, d))
    assert found.split == exact.decision.split
    assert problem.objective_s(found) < problem.objective_s(plain) * (1 - 1e-3)
    assert problem.objective_s(found) == pytest.approx(exact.objective_s, rel=5e-3)


@pytest.mark.parametrize("seed", range(3))
def test_split_reassign_never_worse_and_pruned_with_a_fast_server(seed):
    # default compute (fast server): every deeper cut is pruned, so the result equals the plain search
    problem = random_problem(seed, sized_config(5, 10, 10, CFG), SHAPE, rounds_needed)
    d = power_step(problem, subchannel_step(problem, AlternatingOptimizer(max_iter=1).solve(problem).decision))
    reassigned = split_reassign_step(problem, d)
    plain = split_rank_step(problem, d)
    assert reassigned.split == plain.split and reassigned.rank == plain.rank
    np.testing.assert_array_equal(reassigned.assign_ms, plain.assign_ms)
    # from random starts in a server-scarce regime: feasible and never worse than the input
    scarce = _problem("server-scarce", seed)
    rng = np.random.default_rng(seed)
    k, w = scarce.num_clients, scarce.cfg.wireless
    start = power_step(scarce, scarce_decision(scarce, rng))
    out = split_reassign_step(scarce, start)
    assert decision_violations(out, scarce.scenario, scarce.shape, scarce.cfg) == []
    assert scarce.objective_s(out) <= scarce.objective_s(start)
    assert out.assign_fs.shape == (w.num_subchannels_fs,) and set(out.assign_ms.tolist()) == set(range(k))


def scarce_decision(problem, rng):
    from fedsllm_env.types import Decision

    w = problem.cfg.wireless
    k = problem.num_clients
    return Decision(random_assignment(rng, k, w.num_subchannels_ms), random_assignment(rng, k, w.num_subchannels_fs),
                    np.full(w.num_subchannels_ms, 0.01), np.full(w.num_subchannels_fs, 0.01), 1, 4)


# ---- E(r, c) --------------------------------------------------------------------------------------
def rounds_needed_split(rank: int, split: int) -> float:
    """A split-dependent E: deeper cuts converge in fewer rounds (strongly enough to move the optimum)."""
    return rounds_needed(rank) * 3.0 / split


def test_rounds_may_depend_on_the_split():
    problem = _problem("default", 1, rounds_needed_split)
    tab = problem.tables
    assert tab.rounds.shape == (len(tab.splits), len(tab.ranks))
    assert tab.rounds[0, 0] == pytest.approx(rounds_needed_split(1, 1)) and tab.rounds[0, 0] > tab.rounds[-1, 0]
    d = AlternatingOptimizer().solve(problem).decision
    assert problem.objective_s(d) == pytest.approx(
        rounds_needed_split(d.rank, d.split) * problem.breakdown(d).round_s, rel=1e-12)
    # the split-dependent E moves the optimum off c = 1 (the default regime's answer with E(r))
    exact = exact_optimum(problem)
    assert exact.decision.split > 1 and exact_optimum(_problem("default", 1)).decision.split == 1
    assert AlternatingOptimizer().solve(problem).objective_s == pytest.approx(exact.objective_s, rel=5e-3)
    # each entry of the search table is E(r, c) * T_round
    _, table = split_rank_search(problem, d)
    for i, c in enumerate(tab.splits):
        for j, r in enumerate(tab.ranks):
            cand = power_step(problem, d.replace(split=c, rank=r))
            assert table[i, j] == pytest.approx(problem.objective_s(cand), rel=1e-9)


def test_exact_with_split_dependent_rounds_matches_joint_enumeration():
    cfg = sized_config(2, 3, 3, CFG, total_power_ms_w=0.25)
    problem = random_problem(0, cfg, SHAPE, rounds_needed_split)
    assert exact_optimum(problem).objective_s == pytest.approx(exact_optimum_joint(problem).objective_s, rel=1e-10)


def test_rounds_ignoring_the_split_change_nothing():
    one = _problem("server-scarce", 292)
    two = _problem("server-scarce", 292, lambda rank, split: rounds_needed(rank))
    a, b = AlternatingOptimizer().solve(one), AlternatingOptimizer().solve(two)
    assert a.objective_s == b.objective_s and (a.decision.split, a.decision.rank) == (b.decision.split, b.decision.rank)
    np.testing.assert_array_equal(a.decision.assign_ms, b.decision.assign_ms)
    assert exact_optimum(one).objective_s == exact_optimum(two).objective_s


# ---- pieces -----------------------------------------------------------------------------------------
def test_subchannel_step_links_keeps_the_other_link():
    problem = _problem("total-power", 4)
    d = scarce_decision(problem, np.random.default_rng(0))
    d = power_step(problem, d)
    out = subchannel_step(problem, d, links=("ms",))
    np.testing.assert_array_equal(out.assign_fs, d.assign_fs)
    np.testing.assert_array_equal(out.power_fs_w, d.power_fs_w)
    assert problem.objective_s(out) <= problem.objective_s(d)


def test_random_kick_keeps_every_client_served():
    rng = np.random.default_rng(0)
    changed = 0
    for k, s in [(1, 3), (2, 2), (3, 3), (3, 5), (4, 5), (6, 20)]:
        for _ in range(50):
            a = random_assignment(rng, k, s)
            a0 = a.copy()
            b = random_kick(rng, a, k, 3)
            assert set(b.tolist()) == set(range(k)) and b.shape == a.shape
            np.testing.assert_array_equal(a, a0)  # input untouched
            changed += int(not np.array_equal(a, b))
    assert changed > 200  # kicks do perturb (only K = 1 cannot)


def test_benchmark_optimizer_regime_study(capsys):
    from train_scripts import benchmark_optimizer

    benchmark_optimizer.main(["--skip", "timing", "schemes", "--regimes", "default", "server-scarce", "--instances",
                              "2", "--gap-clients", "2", "--max-subchannels", "3", "--progress-every", "2"])
    out = capsys.readouterr().out
    assert "[2/4] default seed 1" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["default"],
                                                                                            ["server-scarce"], ["all"])}
    assert set(rows) == {"default", "server-scarce", "all"} and rows["all"][1] == "4"
    assert all(float(rows[r][5]) <= 0.5 for r in rows)  # max gap (%) on these tiny instances


def test_censored_candidates_are_never_chosen():
    # E = inf (censored: no convergence in the horizon) for c = 1 and for the initial rank 4 at every split
    def censored(rank: int, split: int) -> float:
        return float("inf") if split == 1 or rank == 4 else rounds_needed(rank)

    problem = _problem("default", 2, censored)
    assert np.isinf(problem.tables.rounds[0]).all() and np.isfinite(problem.tables.rounds[1:, -1]).all()
    res = AlternatingOptimizer().solve(problem)  # starts at the censored (c, r) = (1, 4)
    exact = exact_optimum(problem)
    assert np.isinf(res.history[0]) and np.isfinite(res.objective_s) and res.decision.split > 1
    assert exact.decision.split > 1 and res.objective_s == pytest.approx(exact.objective_s, rel=1e-9)
    stuck = AlternatingOptimizer(search_split=False, search_rank=False).solve(problem)
    assert np.isinf(stuck.objective_s) and stuck.n_iter == 1
    with pytest.raises(ValueError, match="censored"):
        _ = _problem("default", 2, lambda rank, split: float("inf")).tables
    with pytest.raises(ValueError, match="must be a positive number"):
        _ = _problem("default", 2, lambda rank: float("nan")).tables


def censored_rank_4(rank: int, split: int) -> float:
    """E(r, c) censored (inf) at the start rank 4 for every split, finite elsewhere."""
    return float("inf") if rank == 4 else 20.0 + 30.0 * rank ** -0.8 + 1.5 * split


CFG_R4 = FedsLLMConfig().replace(model=FedsLLMConfig().model.replace(initial_rank=4),
                                 training=FedsLLMConfig().training.replace(seq_len=64))
"""Package-default ranks (4..64) starting at the censored rank 4."""


# seeds where the monotone accept rejected every first-iteration step (inf vs inf) and the FS link kept its
# greedy start: gaps 2.5 %, 1.2 %, 1.0 %, 0.8 %, 0.5 % before the per-round tie-break (0 % after)
CENSORED_START = [("total-power", 13), ("random-power", 12), ("total-power", 10), ("random-power", 11),
                  ("default", 1)]


@pytest.mark.parametrize("regime,seed", CENSORED_START)
def test_censored_start_cell_matches_brute_force(regime, seed):
    problem = regime_problem(regime, seed, SHAPE, censored_rank_4, cfg=CFG_R4)
    assert problem.ranks[0] == 4 and np.isinf(problem.tables.rounds[:, 0]).all()
    res = AlternatingOptimizer().solve(problem)
    assert np.isinf(res.history[0]) and np.isfinite(res.history[1])
    assert _gap(problem) < 1e-9


def test_steps_on_a_censored_cell_lower_the_round_delay():
    """inf vs inf: the per-round delay decides, so the first subchannel and power steps are not wasted."""
    problem = regime_problem("total-power", 13, SHAPE, censored_rank_4, cfg=CFG_R4)
    start = initial_decision(problem)
    assert np.isinf(problem.fast_objective_s(start))
    step = subchannel_step(problem, start)
    assert problem.fast_round_s(step) < problem.fast_round_s(start) * (1 - 1e-6)
    assert problem.fast_round_s(step) == pytest.approx(problem.breakdown(step).round_s, rel=1e-12)
    assert not np.array_equal(step.assign_fs, start.assign_fs)  # the FS link leaves its greedy start
    again = power_step(problem, step)
    assert problem.fast_round_s(again) <= problem.fast_round_s(step)


def test_shipped_calibration_with_initial_rank_4_matches_brute_force():
    """The reported case: ``model.initial_rank: 4`` on the shipped calibration (E(4, c) censored); this
    instance was 6.98 % above the optimum before the tie-break."""
    from fedsllm_env.calibration import load_calibration

    cal = load_calibration()
    base = FedsLLMConfig()
    cfg = base.replace(model=base.model.replace(initial_rank=4))
    problem = regime_problem("total-power", 21, cal.shape, cal.rounds_needed, cfg=cfg)
    assert np.isinf(problem.rounds(1, 4))
    assert _gap(problem) < 1e-9

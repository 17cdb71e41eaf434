"""Baselines for the FedsLLM environment (numpy/scipy only; cvxpy only for the reference power solve).

- :class:`Problem` / :class:`BaselineResult`: one instance and what a solver returns; the objective
  is exactly the env's ``E(r) * round_delay(...).round_s``.
- :class:`AlternatingOptimizer`: the paper's alternating optimisation (greedy subchannels + our
  local-search refinement, exact min-max power, exhaustive split/rank), monotone.
- :data:`SCHEMES`: conventional schemes (random subchannels, equal power, fixed split, fixed rank,
  all random).
- :func:`exact_optimum`: brute-force optimum of small instances; :func:`regime_problem`: random small
  instances in named regimes (default, server-scarce, binding total power, random power).
- :class:`OptimizerAllocator`: the hybrid ids' allocator (registered as ``"optimizer"`` on import).
- :class:`HeteroOptimizer`: a cut and a rank per client (coordinate search from the best homogeneous
  decision), :func:`brute_force_profiles` its tiny-instance reference; E of mixed profiles is unmeasured,
  :func:`e_conservative_stand_in` is a documented stand-in.
"""

from __future__ import annotations

from baselines.alternating import AlternatingOptimizer, initial_decision
from baselines.exact import enumerate_assignments, exact_optimum, exact_optimum_joint
from baselines.heuristics import SCHEMES, solve_optimizer
from baselines.hetero_optimizer import (HeteroOptimizer, HeteroResult, brute_force_profiles,
                                        e_conservative_stand_in)
from baselines.hybrid import OptimizerAllocator, make_hybrid_env
from baselines.instances import random_problem, sized_config
from baselines.power import equal_power, reference_link_power_cvxpy, solve_link_power
from baselines.problem import DelayTables, LinkSpec, Problem
from baselines.result import BaselineResult
from baselines.regimes import REGIMES, regime_problem
from baselines.steps import power_step, split_rank_search, split_rank_step, split_reassign_step, subchannel_step
from baselines.subchannel import greedy_assignment, random_assignment, refine_assignment, rematch_sets

__all__ = [
    "AlternatingOptimizer",
    "REGIMES",
    "BaselineResult",
    "DelayTables",
    "HeteroOptimizer",
    "HeteroResult",
    "LinkSpec",
    "OptimizerAllocator",
    "Problem",
    "SCHEMES",
    "brute_force_profiles",
    "e_conservative_stand_in",
    "enumerate_assignments",
    "equal_power",
    "exact_optimum",
    "exact_optimum_joint",
    "greedy_assignment",
    "initial_decision",
    "make_hybrid_env",
    "power_step",
    "random_assignment",
    "random_problem",
    "reference_link_power_cvxpy",
    "refine_assignment",
    "regime_problem",
    "rematch_sets",
    "sized_config",
    "solve_link_power",
    "solve_optimizer",
    "split_rank_search",
    "split_rank_step",
    "split_reassign_step",
    "subchannel_step",
]

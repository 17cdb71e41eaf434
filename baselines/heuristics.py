"""Conventional baseline schemes: the optimizer with one part fixed or randomised, and all-random.

Every scheme is a callable ``(problem, rng) -> BaselineResult`` returning a feasible decision; ``rng``
(a ``numpy.random.Generator``) is the only source of randomness. Exactly:

- ``random_subchannels``: each link gets a uniformly random assignment (every client >= 1 subchannel,
  :func:`~baselines.subchannel.random_assignment`), kept fixed; power (exact) and split/rank
  (exhaustive) are optimised by the alternating optimizer.
- ``equal_power``: each client spreads ``min(p_max_k, p_th / K)`` equally over its subchannels on each
  link; subchannels (paper's greedy, no refinement, candidates judged with equal power) and
  split/rank (exhaustive, equal power) are optimised.
- ``fixed_split``: split ``cfg.model.initial_split`` (clipped to L-1); everything else optimised.
- ``fixed_rank``: rank ``cfg.model.initial_rank``; everything else optimised.
- ``all_random``: random assignment per link; random power (client k uses a uniform fraction in
  (0, 1] of ``min(p_max_k, p_th / K)``, split over its subchannels by Dirichlet(1) weights); uniform
  random split in 1..L-1 and rank in ``cfg.model.ranks`` (projected onto the client-memory limit).
  Nothing optimised.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from fedsllm_env.delay import project_split_rank
from fedsllm_env.types import Decision
from baselines.alternating import AlternatingOptimizer, finish, initial_decision
from baselines.power import equal_power
from baselines.problem import Problem
from baselines.result import BaselineResult
from baselines.subchannel import random_assignment

__all__ = ["Scheme", "SCHEMES", "random_subchannels", "equal_power_scheme", "fixed_split", "fixed_rank",
           "all_random", "random_power_w", "solve_optimizer"]

Scheme = Callable[[Problem, np.random.Generator], BaselineResult]


def _random_assignments(problem: Problem, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    w = problem.cfg.wireless
    k = problem.num_clients
    return random_assignment(rng, k, w.num_subchannels_ms), random_assignment(rng, k, w.num_subchannels_fs)


def random_power_w(rng: np.random.Generator, assign: np.ndarray, max_power_w: np.ndarray,
                   total_power_w: float) -> np.ndarray:
    """Random feasible powers: a U(0, 1] fraction of ``min(p_max_k, p_th / K)`` per client, split by
    Dirichlet(1) weights over its subchannels, W."""
    assign = np.asarray(assign)
    pmax = np.asarray(max_power_w, dtype=float)
    k = pmax.shape[0]
    budget = np.minimum(pmax, total_power_w / k) * (1.0 - rng.random(k))  # in (0, budget]
    weights = rng.exponential(1.0, assign.shape[0])
    per_client = np.bincount(assign, weights=weights, minlength=k)
    return budget[assign] * weights / per_client[assign]


def solve_optimizer(problem: Problem, rng: np.random.Generator | None = None) -> BaselineResult:
    """The full alternating optimizer as a scheme (``rng`` unused: it is deterministic)."""
    return AlternatingOptimizer().solve(problem)


def random_subchannels(problem: Problem, rng: np.random.Generator) -> BaselineResult:
    """Random fixed subchannels; exact power and exhaustive split/rank (see module docstring)."""
    start = initial_decision(problem)
    a_ms, a_fs = _random_assignments(problem, rng)
    ms, fs = problem.link("ms", start.split, start.rank), problem.link("fs", start.split, start.rank)
    init = start.replace(assign_ms=a_ms, assign_fs=a_fs,
                         power_ms_w=equal_power(a_ms, ms.max_power_w, ms.total_power_w),
                         power_fs_w=equal_power(a_fs, fs.max_power_w, fs.total_power_w))
    return AlternatingOptimizer(subchannels="fixed").solve(problem, init)


def equal_power_scheme(problem: Problem, rng: np.random.Generator) -> BaselineResult:
    """Equal power; greedy subchannels and exhaustive split/rank (see module docstring)."""
    return AlternatingOptimizer(power="equal", refine=False).solve(problem)


def fixed_split(problem: Problem, rng: np.random.Generator) -> BaselineResult:
    """Split fixed at ``cfg.model.initial_split``; everything else optimised."""
    return AlternatingOptimizer(search_split=False).solve(problem)


def fixed_rank(problem: Problem, rng: np.random.Generator) -> BaselineResult:
    """Rank fixed at ``cfg.model.initial_rank``; everything else optimised."""
    return AlternatingOptimizer(search_rank=False).solve(problem)


def all_random(problem: Problem, rng: np.random.Generator) -> BaselineResult:
    """Random assignment, power, split and rank; nothing optimised."""
    t0 = time.perf_counter()
    a_ms, a_fs = _random_assignments(problem, rng)
    w = problem.cfg.wireless
    pmax = problem.scenario.client_max_power_w
    p_ms = random_power_w(rng, a_ms, pmax, w.total_power_ms_w)
    p_fs = random_power_w(rng, a_fs, pmax, w.total_power_fs_w)
    split = int(rng.integers(1, problem.shape.n_layer))
    rank = int(rng.choice(np.asarray(problem.ranks)))
    split, rank = project_split_rank(split, rank, problem.shape, problem.cfg)
    decision = Decision(a_ms, a_fs, p_ms, p_fs, split, rank)
    value = problem.fast_objective_s(decision)
    return finish(problem, decision, success=True, message="random decision", n_iter=0, history=[value],
                  start_s=t0)


SCHEMES: dict[str, Scheme] = {
    "random_subchannels": random_subchannels,
    "equal_power": equal_power_scheme,
    "fixed_split": fixed_split,
    "fixed_rank": fixed_rank,
    "all_random": all_random,
}
"""The conventional schemes by name, each ``(problem, rng) -> BaselineResult``."""

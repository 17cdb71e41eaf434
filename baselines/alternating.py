"""The paper's alternating optimizer (block-coordinate descent on subchannels, power, split/rank).

Loop (until the relative decrease of T in one iteration is below ``rtol`` = 1e-3, at most
``max_iter`` = 20 iterations)::

    1. subchannel step  (greedy per link [+ our local-search refinement], powers re-derived; the FS
                         link only in the first iteration: it has no offsets, so its best
                         assignment does not depend on (c, r))
    2. power step       (exact min-max power per link)
    3. split/rank step  (exhaustive over c in 1..L-1 and r in cfg.model.ranks; powers re-optimised
                         for every candidate inside the search, since (c, r) move the MS offsets
                         T_k^F and both payloads; [our addition] the MS assignment is also
                         re-optimised for every other split that a bound cannot rule out, so a
                         deeper cut is not judged with the assignment tuned for the current one)

The three steps live in :mod:`baselines.steps` (re-exported here). Each step is guarded (a candidate
that does not strictly lower T is rejected), so the history of T is non-increasing: the optimizer
never accepts a worse iterate. Between two infinite T (a start cell whose E is censored) the lower
per-round delay wins, so the first iteration still optimises the subchannels (the FS link's only chance)
and the power before the split/rank step leaves the censored cell. The objective is
``E(r, c) * T_round`` (E may ignore the split, see :meth:`baselines.problem.Problem.rounds`).

Start point (when ``init`` is None): split ``cfg.model.initial_split`` (clipped to L-1), rank
``cfg.model.initial_rank``, greedy subchannels at that (c, r), equal power.

Switches turn it into the conventional schemes of :mod:`baselines.heuristics`: ``subchannels="fixed"``
keeps the initial assignment, ``power="equal"`` uses the equal split throughout, and
``search_split`` / ``search_rank`` = False keep the initial split / rank; ``refine=False`` is the
paper's algorithm without our additions (no local search, no split-aware reassignment).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fedsllm_env.delay import decision_violations, expected_total_delay_s, project_split_rank
from fedsllm_env.types import Decision
from baselines.power import equal_power
from baselines.problem import Problem
from baselines.result import BaselineResult
from baselines.steps import (PowerPolicy, power_step, split_rank_search, split_rank_step, split_reassign_step,
                             subchannel_step)
from baselines.subchannel import greedy_assignment

__all__ = ["AlternatingOptimizer", "initial_decision", "finish", "split_rank_search", "split_rank_step",
           "split_reassign_step"]


def initial_decision(problem: Problem, split: int | None = None, rank: int | None = None) -> Decision:
    """The default start: greedy subchannels, equal power, and ``split``/``rank`` (default: the config's
    initial split, clipped to L-1, and initial rank), projected onto the client-memory limit."""
    m = problem.cfg.model
    split = min(int(m.initial_split), problem.shape.n_layer - 1) if split is None else int(split)
    rank = int(m.initial_rank) if rank is None else int(rank)
    split, rank = project_split_rank(split, rank, problem.shape, problem.cfg)
    ms, fs = problem.link("ms", split, rank), problem.link("fs", split, rank)
    a_ms, a_fs = greedy_assignment(ms), greedy_assignment(fs)
    return Decision(a_ms, a_fs, equal_power(a_ms, ms.max_power_w, ms.total_power_w),
                    equal_power(a_fs, fs.max_power_w, fs.total_power_w), split, rank)


def _rate_underflow(problem: Problem) -> str:
    """Why no allocation has a finite delay in the solvers' rate model ("" if some has).

    A client whose best SNR at full power is below float64's resolution gets ``log2(1 + snr) = 0``
    bit/s on every subchannel (e.g. a channel gain of 1e-300), so every candidate has T = inf.
    """
    pmax = np.asarray(problem.scenario.client_max_power_w, dtype=float)
    for link, inv_snr in (("MS", problem.inv_snr_ms_w), ("FS", problem.inv_snr_fs_w)):
        best_snr = np.max(pmax[:, None] / inv_snr, axis=1)
        dead = np.nonzero(np.log2(1.0 + best_snr) <= 0)[0]
        if dead.size:
            return (f"on the {link} link client(s) {dead.tolist()} have a best SNR of {best_snr[dead].max():.3g} at "
                    "full power, below float64 resolution, so the solvers' rate model gives it 0 bit/s (T = inf) "
                    "under every allocation")
    return ""


def finish(problem: Problem, decision: Decision, *, success: bool, message: str, n_iter: int,
           history: list[float] | tuple[float, ...], start_s: float, **extra) -> BaselineResult:
    """Package a decision as a :class:`BaselineResult` (env-exact objective and breakdown).

    Raises:
        RuntimeError: if the decision violates a constraint (a solver bug, never expected).
    """
    violations = decision_violations(decision, problem.scenario, problem.shape, problem.cfg)
    if violations:
        raise RuntimeError(f"solver produced an infeasible decision: {violations}")
    bd = problem.breakdown(decision)
    objective = float(expected_total_delay_s(problem.rounds(int(decision.split), int(decision.rank)),
                                             float(bd.round_s)))
    return BaselineResult(decision, objective, bd, success, message, n_iter, tuple(float(h) for h in history),
                          time.perf_counter() - start_s, dict(extra))


@dataclass(frozen=True)
class AlternatingOptimizer:
    """Alternating optimisation of subchannels, power, split and rank (see module docstring)."""

    rtol: float = 1e-3
    """Stop when one iteration lowers T by less than this relative amount."""
    max_iter: int = 20
    """Iteration cap."""
    subchannels: Literal["greedy", "fixed"] = "greedy"
    """"greedy": re-run the subchannel step every iteration; "fixed": keep the start's assignment."""
    power: PowerPolicy = "optimal"
    """Power policy of every step ("optimal" or "equal")."""
    refine: bool = True
    """Run the local-search refinement after the greedy (our addition; needs ``power="optimal"``)."""
    search_split: bool = True
    """Search the split; False keeps the start's split."""
    search_rank: bool = True
    """Search the rank; False keeps the start's rank."""
    split_reassign: bool = True
    """Re-optimise the MS assignment for other splits inside the split/rank step (our addition,
    :func:`~baselines.steps.split_reassign_step`); only with ``subchannels="greedy"``,
    ``power="optimal"``, ``refine=True`` and ``search_split=True``."""

    def __post_init__(self) -> None:
        if not self.rtol > 0:
            raise ValueError(f"rtol must be > 0, got {self.rtol!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter!r}")
        if self.subchannels not in ("greedy", "fixed"):
            raise ValueError(f"subchannels must be 'greedy' or 'fixed', got {self.subchannels!r}")
        if self.power not in ("optimal", "equal"):
            raise ValueError(f"power must be 'optimal' or 'equal', got {self.power!r}")

    def iterate(self, problem: Problem, decision: Decision, first: bool = True) -> Decision:
        """One iteration: subchannel -> power -> split/rank, each guarded.

        The FS link has no offsets, so its best assignment does not depend on (c, r) (the payload only
        scales its level): after the ``first`` iteration only the MS link is re-assigned.
        """
        if self.subchannels == "greedy":
            links = ("ms", "fs") if first else ("ms",)
            decision = subchannel_step(problem, decision, self.power, self.refine, links)
        decision = power_step(problem, decision, self.power)
        if self.split_reassign and self.search_split and self.refine and self.subchannels == "greedy" \
                and self.power == "optimal":
            ranks = None if self.search_rank else (int(decision.rank),)
            decision = split_reassign_step(problem, decision, self.refine, ranks)
        elif self.search_split or self.search_rank:
            splits = None if self.search_split else (int(decision.split),)
            ranks = None if self.search_rank else (int(decision.rank),)
            decision = split_rank_step(problem, decision, self.power, splits, ranks)
        return decision

    def solve(self, problem: Problem, init: Decision | None = None) -> BaselineResult:
        """Run the alternation from ``init`` (default :func:`initial_decision`).

        Args:
            problem: the instance.
            init: a feasible start (its split/rank are kept when not searched).

        Returns:
            The best decision found, with the objective history (start, then after every iteration).

        Raises:
            fedsllm_env.errors.InfeasibleDecisionError: if ``init`` violates a constraint.
        """
        start = time.perf_counter()
        hopeless = _rate_underflow(problem)
        if init is None:
            with np.errstate(divide="ignore", invalid="ignore") if hopeless else nullcontext():
                decision = initial_decision(problem)
        else:
            from fedsllm_env.delay import check_feasible

            check_feasible(init, problem.scenario, problem.shape, problem.cfg)
            decision = init.replace(assign_ms=np.asarray(init.assign_ms, dtype=np.int64),
                                    assign_fs=np.asarray(init.assign_fs, dtype=np.int64),
                                    power_ms_w=np.asarray(init.power_ms_w, dtype=float),
                                    power_fs_w=np.asarray(init.power_fs_w, dtype=float))
        current = problem.fast_objective_s(decision)
        history = [current]
        if hopeless:
            return finish(problem, decision, success=False, n_iter=0, history=history, start_s=start,
                          message=f"not optimised: {hopeless}; the start decision is returned")
        message = f"reached max_iter={self.max_iter} before the relative change fell below {self.rtol:g}"
        success = False
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            nxt = self.iterate(problem, decision, first=n_iter == 1)
            value = problem.fast_objective_s(nxt)
            if value > current:  # cannot happen (steps are guarded); keep the best anyway
                nxt, value = decision, current
            history.append(value)
            if not np.isfinite(value):  # cannot compare: stop instead of computing inf - inf
                decision, current = nxt, value
                message = ("stopped: the objective is infinite (a client's rate rounds to 0 bit/s, or E is censored "
                           "for every (split, rank) the search may reach)")
                break
            change = (current - value) / current if np.isfinite(current) else 1.0
            decision, current = nxt, value
            if change < self.rtol:
                success = True
                message = f"converged: relative change {change:.3g} < {self.rtol:g} after {n_iter} iteration(s)"
                break
        return finish(problem, decision, success=success, message=message, n_iter=n_iter, history=history,
                      start_s=start)

"""The three block-coordinate steps of the alternating optimizer, each guarded to never increase T.

Every step takes a feasible :class:`~fedsllm_env.types.Decision` and returns one whose objective
``E(r) * T_round`` is not larger (a candidate that is not strictly better is rejected and the input is
returned unchanged). ``power`` selects the power policy used when a step needs powers:

- ``"optimal"``: exact min-max power per link (:func:`baselines.power.solve_link_power`);
- ``"equal"``: each client spreads ``min(p_max_k, p_th / K)`` equally over its subchannels.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from fedsllm_env.types import Decision
from baselines.power import equal_power, owned_inv_snr, solve_link_power, solve_link_power_batch
from baselines.problem import LinkSpec, Problem
from baselines.subchannel import CYCLE_MAX_SUBCHANNELS, greedy_assignment, iterated_refine, refine_assignment

__all__ = ["PowerPolicy", "link_power_w", "power_step", "subchannel_step", "split_rank_search", "split_rank_step"]

PowerPolicy = Literal["optimal", "equal"]

_REL_IMPROVEMENT = 1e-12
"""A candidate must beat the input by this relative margin to be accepted (round-off guard)."""


def _check_policy(power: str) -> None:
    if power not in ("optimal", "equal"):
        raise ValueError(f"power policy must be 'optimal' or 'equal', got {power!r}")


def link_power_w(spec: LinkSpec, assign: np.ndarray, power: PowerPolicy) -> np.ndarray:
    """(S,) powers of one link under a policy, W."""
    _check_policy(power)
    if power == "optimal":
        return solve_link_power(spec, assign).power_w
    return equal_power(assign, spec.max_power_w, spec.total_power_w)


def _better(problem: Problem, candidate: Decision, current: Decision) -> Decision:
    t_new, t_old = problem.fast_objective_s(candidate), problem.fast_objective_s(current)
    return candidate if t_new < t_old * (1.0 - _REL_IMPROVEMENT) else current


def power_step(problem: Problem, decision: Decision, power: PowerPolicy = "optimal") -> Decision:
    """Re-allocate the powers of both links for the fixed assignment, split and rank.

    Args:
        problem: the instance.
        decision: the input (feasible) decision.
        power: the power policy.
    """
    c, r = int(decision.split), int(decision.rank)
    cand = decision.replace(
        power_ms_w=link_power_w(problem.link("ms", c, r), decision.assign_ms, power),
        power_fs_w=link_power_w(problem.link("fs", c, r), decision.assign_fs, power))
    return _better(problem, cand, decision)


def subchannel_step(problem: Problem, decision: Decision, power: PowerPolicy = "optimal",
                    refine: bool = True) -> Decision:
    """Re-assign the subchannels of both links (greedy, then optional local search), split/rank fixed.

    Per link, the greedy assignment (with its policy power) is compared with the current one; if
    ``refine`` and ``power == "optimal"``, the better of the two is then improved by
    :func:`~baselines.subchannel.refine_assignment` (on links with at most
    ``CYCLE_MAX_SUBCHANNELS`` subchannels both starts are refined, by the iterated local search
    :func:`~baselines.subchannel.iterated_refine`). The result replaces the link's current
    (assignment, power) only if it lowers that link's min-max delay (the links enter T separately,
    so per-link acceptance never increases T).

    Args:
        problem: the instance.
        decision: the input (feasible) decision.
        power: power policy pairing every candidate assignment.
        refine: run :func:`~baselines.subchannel.refine_assignment` (only with optimal power).
    """
    _check_policy(power)
    c, r = int(decision.split), int(decision.rank)
    out = {}
    for name, assign0, power0 in (("ms", decision.assign_ms, decision.power_ms_w),
                                  ("fs", decision.assign_fs, decision.power_fs_w)):
        spec = problem.link(name, c, r)
        best_assign, best_power = np.asarray(assign0), np.asarray(power0)
        best_level = spec.delay_s(best_assign, best_power)
        greedy = greedy_assignment(spec)
        greedy_power = link_power_w(spec, greedy, power)
        greedy_level = spec.delay_s(greedy, greedy_power)
        if refine and power == "optimal":
            # refine the better start; on small links (cheap) refine both and keep the best
            starts = [(greedy_level, greedy), (best_level, best_assign)]
            starts.sort(key=lambda x: x[0])
            if spec.num_subchannels > CYCLE_MAX_SUBCHANNELS:
                starts = starts[:1]
            small = spec.num_subchannels <= CYCLE_MAX_SUBCHANNELS
            for _, start in starts:
                cand = iterated_refine(spec, start)[0] if small else refine_assignment(spec, start)[0]
                cand_power = link_power_w(spec, cand, power)
                cand_level = spec.delay_s(cand, cand_power)
                if cand_level < best_level * (1.0 - _REL_IMPROVEMENT):
                    best_assign, best_power, best_level = cand, cand_power, cand_level
        elif greedy_level < best_level * (1.0 - _REL_IMPROVEMENT):
            best_assign, best_power, best_level = greedy, greedy_power, greedy_level
        out[name] = (best_assign, best_power)
    cand = decision.replace(assign_ms=out["ms"][0], power_ms_w=out["ms"][1],
                            assign_fs=out["fs"][0], power_fs_w=out["fs"][1])
    return _better(problem, cand, decision)


def split_rank_search(problem: Problem, decision: Decision, power: PowerPolicy | Literal["keep"] = "optimal",
                      splits: Sequence[int] | None = None,
                      ranks: Sequence[int] | None = None) -> tuple[Decision, np.ndarray]:
    """Exhaustive search over (split, rank) with the subchannel assignment fixed.

    Changing (c, r) changes the MS offsets ``T_k^F`` and both payloads, so powers are re-derived for
    every candidate: re-optimised exactly (``"optimal"``, one batched solve over all candidates),
    the equal split (``"equal"``), or the input's powers kept (``"keep"``).

    Args:
        problem: the instance.
        decision: supplies the assignments (and the powers for ``"keep"``).
        power: power policy per candidate.
        splits: candidate cuts (default 1..L-1).
        ranks: candidate ranks (default ``cfg.model.ranks``).

    Returns:
        ``(best_decision, objective_s)`` where ``objective_s`` is the (C, R) table of E(r) * T_round
        over the candidates searched (s).
    """
    if power not in ("optimal", "equal", "keep"):
        raise ValueError(f"power must be 'optimal', 'equal' or 'keep', got {power!r}")
    tab = problem.tables
    splits = tuple(tab.splits if splits is None else splits)
    ranks = tuple(tab.ranks if ranks is None else ranks)
    idx = [tab.index(c, r) for c in splits for r in ranks]
    ci = np.array([i for i, _ in idx])
    ri = np.array([j for _, j in idx])
    # channel data of each link (offsets and payloads are set per candidate below)
    ms0 = problem.link("ms", tab.splits[ci[0]], tab.ranks[ri[0]])
    fs0 = problem.link("fs", tab.splits[ci[0]], tab.ranks[ri[0]])
    a_ms, a_fs = np.asarray(decision.assign_ms), np.asarray(decision.assign_fs)
    n_b = ci.size
    up_bits, lora_bits, fwd = tab.upload_bits[ci, ri], tab.lora_bits[ci, ri], tab.forward_s[ci, ri]
    if power == "optimal":
        own_ms = np.broadcast_to(owned_inv_snr(ms0.inv_snr_w, a_ms), (n_b,) + (ms0.num_clients, ms0.num_subchannels))
        own_fs = np.broadcast_to(owned_inv_snr(fs0.inv_snr_w, a_fs), (n_b,) + (fs0.num_clients, fs0.num_subchannels))
        _, p_ms, _, _ = solve_link_power_batch(own_ms, ms0.bandwidth_hz, up_bits[:, None], fwd, ms0.max_power_w,
                                               ms0.total_power_w)
        _, p_fs, _, _ = solve_link_power_batch(own_fs, fs0.bandwidth_hz, lora_bits[:, None], np.zeros_like(fwd),
                                               fs0.max_power_w, fs0.total_power_w)
    else:
        if power == "equal":
            pm = equal_power(a_ms, ms0.max_power_w, ms0.total_power_w)
            pf = equal_power(a_fs, fs0.max_power_w, fs0.total_power_w)
        else:
            pm, pf = np.asarray(decision.power_ms_w, float), np.asarray(decision.power_fs_w, float)
        p_ms, p_fs = np.broadcast_to(pm, (n_b, pm.size)), np.broadcast_to(pf, (n_b, pf.size))
    t_ms = np.array([ms0.with_offset(fwd[b], up_bits[b]).delay_s(a_ms, p_ms[b]) for b in range(n_b)])
    t_fs = np.array([fs0.with_offset(np.zeros(fs0.num_clients), lora_bits[b]).delay_s(a_fs, p_fs[b])
                     for b in range(n_b)])
    total = tab.total_s(ci, ri, t_ms, t_fs)
    best = int(np.argmin(total))  # first candidate on ties
    cand = decision.replace(split=tab.splits[ci[best]], rank=tab.ranks[ri[best]],
                            power_ms_w=np.array(p_ms[best]), power_fs_w=np.array(p_fs[best]))
    return cand, total.reshape(len(splits), len(ranks))


def split_rank_step(problem: Problem, decision: Decision, power: PowerPolicy | Literal["keep"] = "optimal",
                    splits: Sequence[int] | None = None, ranks: Sequence[int] | None = None) -> Decision:
    """:func:`split_rank_search`, accepted only if it lowers T (see module docstring)."""
    cand, _ = split_rank_search(problem, decision, power, splits, ranks)
    return _better(problem, cand, decision)

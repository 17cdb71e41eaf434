"""The three block-coordinate steps of the alternating optimizer, each guarded to never increase T.

Every step takes a feasible :class:`~fedsllm_env.types.Decision` and returns one whose objective
``E(r) * T_round`` is not larger (a candidate that is not strictly better is rejected and the input is
returned unchanged; between two infinite objectives, e.g. a start on a censored cell, the lower
``T_round`` wins). ``power`` selects the power policy used when a step needs powers:

- ``"optimal"``: exact min-max power per link (:func:`baselines.power.solve_link_power`);
- ``"equal"``: each client spreads ``min(p_max_k, p_th / K)`` equally over its subchannels.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from fedsllm_env.types import Decision
from baselines.power import equal_power, owned_inv_snr, solve_link_power, solve_link_power_batch
from baselines.problem import Link, LinkSpec, Problem
from baselines.subchannel import CYCLE_MAX_SUBCHANNELS, greedy_assignment, iterated_refine, refine_assignment

__all__ = ["PowerPolicy", "link_power_w", "power_step", "subchannel_step", "improve_link_assignment",
           "split_rank_search", "split_rank_step", "split_reassign_step"]

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
    """``candidate`` if it lowers T by the round-off margin, else ``current``. When both T are inf (E censored
    or memory exceeded at both cells) the per-round delay decides, so a start on a censored cell still gets
    its subchannels and powers optimised (inf vs inf would reject every step)."""
    t_new, t_old = problem.fast_objective_s(candidate), problem.fast_objective_s(current)
    if np.isinf(t_new) and np.isinf(t_old):
        t_new, t_old = problem.fast_round_s(candidate), problem.fast_round_s(current)
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


def improve_link_assignment(spec: LinkSpec, assign: np.ndarray, power_w: np.ndarray, power: PowerPolicy = "optimal",
                            refine: bool = True, iterated: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """One link's part of :func:`subchannel_step`: the best of the current and the greedy assignment,
    refined by local search when ``refine`` and ``power == "optimal"``; never worse than the input.

    Args:
        spec: the link at the current split/rank.
        assign: (S,) current owners.
        power_w: (S,) current powers, W (feasible for ``spec``).
        power: power policy pairing every candidate assignment.
        refine: run the local search (only with optimal power).
        iterated: on small links, the iterated local search (else one local search per start).

    Returns:
        ``(assign, power_w, level_s)`` of the best candidate (the input unless a candidate lowers the
        link's min-max delay by the round-off margin).
    """
    best_assign, best_power = np.asarray(assign), np.asarray(power_w)
    best_level = spec.delay_s(best_assign, best_power)
    greedy = greedy_assignment(spec)
    greedy_power = link_power_w(spec, greedy, power)
    greedy_level = spec.delay_s(greedy, greedy_power)
    if refine and power == "optimal":
        # refine the better start; on small links (cheap) refine both and keep the best (the iterated
        # search perturbs each start with its own seed, so equal starts still explore differently)
        small = spec.num_subchannels <= CYCLE_MAX_SUBCHANNELS
        starts = sorted([(greedy_level, 0, greedy), (best_level, 1, best_assign)], key=lambda x: x[:2])
        if not small or (not iterated and np.array_equal(greedy, best_assign)):
            starts = starts[:1]
        for seed, (_, _, start) in enumerate(starts):
            cand = (iterated_refine(spec, start, seed=seed)[0] if small and iterated
                    else refine_assignment(spec, start)[0])
            cand_power = link_power_w(spec, cand, power)
            cand_level = spec.delay_s(cand, cand_power)
            if cand_level < best_level * (1.0 - _REL_IMPROVEMENT):
                best_assign, best_power, best_level = cand, cand_power, cand_level
    elif greedy_level < best_level * (1.0 - _REL_IMPROVEMENT):
        best_assign, best_power, best_level = greedy, greedy_power, greedy_level
    return best_assign, best_power, best_level


def subchannel_step(problem: Problem, decision: Decision, power: PowerPolicy = "optimal",
                    refine: bool = True, links: Sequence[Link] = ("ms", "fs")) -> Decision:
    """Re-assign the subchannels of both links (greedy, then optional local search), split/rank fixed.

    Per link, the greedy assignment (with its policy power) is compared with the current one; if
    ``refine`` and ``power == "optimal"``, the better of the two is then improved by
    :func:`~baselines.subchannel.refine_assignment` (on links with at most
    ``CYCLE_MAX_SUBCHANNELS`` subchannels both starts are refined, each by the iterated local search
    :func:`~baselines.subchannel.iterated_refine` with its own seed). The result replaces the link's current
    (assignment, power) only if it lowers that link's min-max delay (the links enter T separately,
    so per-link acceptance never increases T).

    Args:
        problem: the instance.
        decision: the input (feasible) decision.
        power: power policy pairing every candidate assignment.
        refine: run :func:`~baselines.subchannel.refine_assignment` (only with optimal power).
        links: the links to re-assign (the others keep their assignment and power).
    """
    _check_policy(power)
    c, r = int(decision.split), int(decision.rank)
    out = {"ms": (decision.assign_ms, decision.power_ms_w), "fs": (decision.assign_fs, decision.power_fs_w)}
    for name in links:
        out[name] = improve_link_assignment(problem.link(name, c, r), *out[name], power, refine)[:2]
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


def split_reassign_step(problem: Problem, decision: Decision, refine: bool = True,
                        ranks: Sequence[int] | None = None) -> Decision:
    """Split/rank search that also re-optimises the MS assignment for other splits (our addition).

    :func:`split_rank_search` judges every split with the assignment optimised for the current one, so
    a deeper cut whose MS offsets ``T_k^F`` call for another assignment can look worse than it is.
    This step first runs that search, then, for every other split c that could still beat the
    incumbent, re-optimises the MS assignment at c (:func:`improve_link_assignment` from the current
    assignment and the greedy one, at the rank whose bound below is smallest) and searches (split,
    rank) again with each new assignment; the best candidate is accepted if it lowers T.

    *Pruning.* The MS offsets of (c, r) are ``F(c, r) u_k`` (``u_k`` = 1 / client k's available
    FLOP/s), so the optimal MS level ``V(F)`` is non-decreasing in F and ``V(F) / F`` non-increasing
    (scaling a solution's offsets by ``F / F0 >= 1`` scales its delays by at most that much). With
    ``V0`` the current MS level at ``F0``, ``V(F) >= V0 min(1, F / F0)``; the FS link has no offsets, so
    its optimal assignment does not depend on (c, r) and ``t_fs`` scales with the LoRA payload. A split
    whose bound ``E (I (V0 min(1, F / F0) + T^S + T^{down+B}) + t_fs + T^bc)`` is not below the
    incumbent for any rank is skipped (the bound trusts the current assignment to be near-optimal at
    F0). With the package defaults (a fast server) the deeper cuts were pruned this way in every
    instance we timed, so the step then costs one extra bound evaluation.

    Args:
        problem: the instance.
        decision: the input (feasible) decision; its power must be optimal for its assignment.
        refine: run the local search when re-optimising (else greedy only).
        ranks: candidate ranks (default ``cfg.model.ranks``).
    """
    tab = problem.tables
    best, _ = split_rank_search(problem, decision, "optimal", None, ranks)
    best = _better(problem, best, decision)
    incumbent = problem.fast_objective_s(best)
    c0, r0 = int(decision.split), int(decision.rank)
    ci0, ri0 = tab.index(c0, r0)
    ms0, fs0 = problem.link("ms", c0, r0), problem.link("fs", c0, r0)
    v0 = ms0.delay_s(decision.assign_ms, decision.power_ms_w)
    t_fs0 = fs0.delay_s(decision.assign_fs, decision.power_fs_w)
    ranks = tuple(tab.ranks if ranks is None else ranks)
    ri = np.array([tab.index(c0, r)[1] for r in ranks])
    ci = np.arange(len(tab.splits))[:, None]
    # F(c, r) / F0 from one client's offsets (every client has the same ratio)
    k_ref = int(np.argmax(tab.forward_s[ci0, ri0]))
    ratio = tab.forward_s[ci, ri, k_ref] / tab.forward_s[ci0, ri0, k_ref]
    lb_ms = np.maximum(v0 * np.minimum(1.0, ratio), np.max(tab.forward_s[ci, ri], axis=-1))
    lb = tab.total_s(ci, ri, lb_ms, t_fs0 * tab.lora_bits[ci, ri] / tab.lora_bits[ci0, ri0])
    for i, c in enumerate(tab.splits):
        if c == c0 or lb[i].min() >= incumbent * (1.0 - _REL_IMPROVEMENT):
            continue
        r = ranks[int(np.argmin(lb[i]))]
        spec = problem.link("ms", c, r)
        power0 = link_power_w(spec, decision.assign_ms, "optimal")
        assign, _, _ = improve_link_assignment(spec, decision.assign_ms, power0, "optimal", refine, iterated=False)
        if np.array_equal(assign, decision.assign_ms):
            continue
        cand, _ = split_rank_search(problem, decision.replace(assign_ms=assign), "optimal", None, ranks)
        best = _better(problem, cand, best)
    return _better(problem, best, decision)

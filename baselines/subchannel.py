"""Subchannel allocation on one uplink: the paper's greedy plus our local-search refinement.

**Greedy (the paper's step 1).** Rates during the greedy are evaluated with a fixed per-client power
budget ``pbar_k = min(p_max_k, p_th / K)`` water-filled over the client's current subchannels (so adding
a subchannel never lowers a client's rate). A client's per-link delay is ``D_k + bits / R_k``
(``D_k`` = client forward time on the MS link, 0 on the FS link).

1. *Best subchannel each.* Every client gets exactly one subchannel. Conflicts (two clients whose best
   subchannel is the same) are resolved by a **bottleneck matching**: among all one-subchannel-per-client
   matchings, take one minimising the largest single-subchannel delay, ties broken by the least sum of
   delays (threshold search over the sorted delays + ``scipy.sparse.csgraph.maximum_bipartite_matching``,
   then ``scipy.optimize.linear_sum_assignment`` restricted to edges under the threshold). When the best
   subchannels do not conflict this is exactly "each client takes its best subchannel".
2. *Straggler filling.* While a subchannel is free, the current straggler (largest delay; lowest index
   on ties) takes the free subchannel that lowers its delay most (lowest index on ties).

**Refinement (our addition, not in the paper).** The greedy alone is up to ~20% above the exact
optimum on small instances (see ``train_scripts/benchmark_optimizer.py``), so
:func:`refine_assignment` runs a local search with *exact* power control (every candidate is judged
by its optimal min-max level) over:

- *moves*: one subchannel from its owner (who keeps >= 1) to another client;
- *swaps*: two subchannels of different owners exchanged;
- *3-cycles*: three subchannels of three different owners rotated, and *chains*: subchannel i
  passes from its owner to the owner c of subchannel i2 while i2 passes from c to a third client
  (links with at most ``CYCLE_MAX_SUBCHANNELS`` subchannels only, as there are S^3 / S^2 K of them);
- *set re-matching* (:func:`rematch_sets`): the partition is kept and the sets are re-assigned to the
  clients optimally (bisection on the level with a K x K min-power assignment), tried when the
  other neighbourhoods are exhausted.

Screening is exact at the current optimal level ``t*``: a candidate can reach a level below ``t*``
iff it is *strictly* feasible at ``t*`` (the minimum powers ``P_k(t)`` strictly decrease in t), i.e.
iff its smallest relative slack over the per-client caps and the total limit, computed from the
water-filling powers ``P_k(t*)`` of the clients it touches, is positive. The ``n_try``
candidates with the largest slack per neighbourhood are re-solved exactly and the best is applied.
When no candidate improves, *sideways* candidates (feasible at ``t*``, so the level cannot rise, and
needing less total power there) are accepted if they lower the total power of the minimum-power
solution: the search is lexicographic in (level, total power), which lets it walk across the
plateaus that a binding per-client cap creates. Links with more than ``CYCLE_MAX_SUBCHANNELS``
subchannels use variable-neighbourhood descent (swaps only when no move qualifies) for speed;
smaller links screen every neighbourhood each round. The search stops at a local optimum of all
neighbourhoods or after ``max_moves`` accepted changes; it never returns a worse assignment.

On small links (at most ``CYCLE_MAX_SUBCHANNELS`` subchannels) the optimizer wraps it in
:func:`iterated_refine`: 8 deterministic random 3-subchannel perturbations of the best assignment,
each followed by the local search, the best kept (iterated local search). Every perturbation keeps
each client served (:func:`random_kick`: random moves from clients that keep a subchannel, else
swaps), so no perturbation is wasted on an infeasible assignment.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from baselines.power import owned_inv_snr, solve_link_power_batch
from baselines.problem import LinkSpec
from baselines.waterfill import max_rate_for_power, min_power_for_rate

__all__ = ["client_bits", "greedy_budget_w", "bottleneck_matching", "greedy_assignment", "refine_assignment", "rematch_sets",
           "iterated_refine",
           "random_kick", "random_assignment", "CYCLE_MAX_SUBCHANNELS"]


def client_bits(spec: LinkSpec) -> np.ndarray:
    """(K,) payload of every client, bits: ``spec.bits`` is one payload for all (the paper) or one per client
    (heterogeneous profiles, :mod:`baselines.hetero_optimizer`); equal values give the scalar's arithmetic."""
    return np.broadcast_to(np.asarray(spec.bits, dtype=float), (spec.num_clients,))


def greedy_budget_w(spec: LinkSpec) -> np.ndarray:
    """(K,) power each client water-fills during the greedy: ``min(p_max_k, p_th / K)``, W."""
    return np.minimum(spec.max_power_w, spec.total_power_w / spec.num_clients)


def bottleneck_matching(delay_s: np.ndarray) -> np.ndarray:
    """One subchannel per client minimising the largest delay, then the sum of delays.

    Args:
        delay_s: (K, S) delay of client k if it had only subchannel i, s (K <= S).

    Returns:
        (K,) subchannel index matched to each client.
    """
    k, s = delay_s.shape
    if k > s:
        raise ValueError(f"cannot give {k} clients one subchannel each out of {s}")
    values = np.unique(delay_s)
    lo, hi = 0, values.size - 1  # hi is feasible: the complete bipartite graph has a K-matching
    while lo < hi:
        mid = (lo + hi) // 2
        graph = csr_matrix((delay_s <= values[mid]).astype(np.int8))
        if np.all(maximum_bipartite_matching(graph, perm_type="column") >= 0):
            hi = mid
        else:
            lo = mid + 1
    threshold = values[hi]
    finite = delay_s[np.isfinite(delay_s)]
    big = (float(np.max(np.abs(finite))) + 1.0) * (k + 1) * 10.0 if finite.size else 1.0
    cost = np.where(delay_s <= threshold, np.where(np.isfinite(delay_s), delay_s, big), big * 10.0)
    rows, cols = linear_sum_assignment(cost)
    out = np.empty(k, dtype=np.int64)
    out[rows] = cols
    return out


def _client_rate(a_row: np.ndarray, budget_w: float, bandwidth_hz: float) -> np.ndarray:
    rate, _ = max_rate_for_power(np.sort(a_row, axis=-1), budget_w, bandwidth_hz)
    return rate


def greedy_assignment(spec: LinkSpec) -> np.ndarray:
    """The paper's greedy subchannel allocation of one link (see module docstring).

    Args:
        spec: the link (offsets and payload at the current split/rank).

    Returns:
        (S,) int64 owner of every subchannel; every client owns at least one.
    """
    k, s = spec.num_clients, spec.num_subchannels
    a = spec.inv_snr_w
    budget = greedy_budget_w(spec)
    bits = client_bits(spec)
    single_rate = spec.bandwidth_hz * np.log2(1.0 + budget[:, None] / a)
    with np.errstate(divide="ignore"):
        single_delay = spec.offset_s[:, None] + np.where(single_rate > 0, bits[:, None] / single_rate, np.inf)
    first = bottleneck_matching(single_delay)
    assign = np.full(s, -1, dtype=np.int64)
    assign[first] = np.arange(k)
    delay = single_delay[np.arange(k), first].copy()
    owned = np.where(assign[None, :] == np.arange(k)[:, None], a, np.inf)  # (K, S)
    while np.any(assign < 0):
        straggler = int(np.argmax(delay))
        free = np.nonzero(assign < 0)[0]
        cand = np.repeat(owned[straggler][None, :], free.size, axis=0)
        cand[np.arange(free.size), free] = a[straggler, free]
        rate = _client_rate(cand, budget[straggler], spec.bandwidth_hz)
        best = int(np.argmax(rate))  # first index on ties
        i = int(free[best])
        assign[i] = straggler
        owned[straggler, i] = a[straggler, i]
        delay[straggler] = spec.offset_s[straggler] + bits[straggler] / rate[best]
    return assign


def _min_powers(spec: LinkSpec, owned: np.ndarray, rate_bps: np.ndarray) -> np.ndarray:
    p, _ = min_power_for_rate(np.sort(owned, axis=-1), rate_bps, spec.bandwidth_hz)
    return p


def _others_min(base_slack: np.ndarray, *excluded: np.ndarray) -> np.ndarray:
    """Smallest ``base_slack[c]`` over clients c not in ``excluded`` (elementwise; inf if none)."""
    smallest = np.argsort(base_slack, kind="stable")[:len(excluded) + 1]
    out = np.full(np.broadcast(*excluded).shape, np.inf)
    for idx in smallest[::-1]:  # last write = smallest allowed
        allowed = np.ones(out.shape, dtype=bool)
        for e in excluded:
            allowed &= e != idx
        out = np.where(allowed, base_slack[idx], out)
    return out


SIDEWAYS_SLACK_TOL = 1e-9
"""A sideways candidate may violate a limit at ``t*`` by at most this relative round-off."""
SIDEWAYS_MIN_SAVING = 1e-6
"""A sideways candidate must need this much less relative total power at ``t*``."""

CYCLE_MAX_SUBCHANNELS = 48
"""3-cycles (S^3 candidates) are screened only on links with at most this many subchannels."""


def _top(score: np.ndarray, n: int) -> np.ndarray:
    flat = score.ravel()
    if flat.size > n:
        idx = np.argpartition(-flat, n - 1)[:n]
    else:
        idx = np.arange(flat.size)
    idx = idx[np.argsort(-flat[idx], kind="stable")]
    return idx[flat[idx] > 0]


def _candidates(spec: LinkSpec, assign: np.ndarray, level_s: float, n_try: int,
                thorough: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Screen moves, then (if no move qualifies, or ``thorough``) swaps and 3-cycles at the level ``t*``.

    Returns:
        ``(improving (C1, S), sideways (C2, S))``: at most ``n_try`` per neighbourhood each. Improving
        candidates have positive slack (guaranteed optimal level below ``t*``); sideways ones are
        feasible at ``t*`` (level cannot rise) and need less total power there.
    """
    k, s = spec.num_clients, spec.num_subchannels
    a = spec.inv_snr_w
    ar = np.arange(s)
    owner = assign
    counts = np.bincount(assign, minlength=k)
    # compact rows: client c's own coefficients in columns 0..counts[c]-1, inf padding (width L)
    width = int(counts.max())
    order = np.argsort(assign, kind="stable")
    pos = np.empty(s, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos[order] = np.arange(s) - starts[assign[order]]
    owned = np.full((k, width), np.inf)
    owned[assign, pos] = a[assign, ar]
    gap = level_s - spec.offset_s
    rate = np.where(gap > 0, spec.bits / np.maximum(gap, 1e-300), np.inf)
    base = _min_powers(spec, owned, rate)  # (K,) = P_k(t*)
    cap = np.minimum(spec.max_power_w, spec.total_power_w)
    base_slack = (cap - base) / cap
    base_sum = float(base.sum())
    improving: list[np.ndarray] = []
    sideways: list[np.ndarray] = []

    def slack(p: np.ndarray, who: np.ndarray) -> np.ndarray:
        return (cap[who] - p) / cap[who]

    def total_slack(new_total: np.ndarray) -> np.ndarray:
        return (spec.total_power_w - new_total) / spec.total_power_w

    def keep(score: np.ndarray, new_total: np.ndarray, build) -> None:
        score = np.where(np.isfinite(score), score, -np.inf)
        idx = _top(score, n_try)
        if idx.size:
            improving.append(build(np.unravel_index(idx, score.shape)))
        # sideways: still feasible at t* (so the level cannot rise) and needing less total power
        saving = np.where((score >= -SIDEWAYS_SLACK_TOL) & (new_total < base_sum * (1.0 - SIDEWAYS_MIN_SAVING)),
                          base_sum - np.broadcast_to(new_total, score.shape), -np.inf)
        idx = _top(saving, n_try)
        if idx.size:
            sideways.append(build(np.unravel_index(idx, score.shape)))

    def result() -> tuple[np.ndarray, np.ndarray]:
        empty = np.zeros((0, s), np.int64)
        return (np.concatenate(improving) if improving else empty,
                np.concatenate(sideways) if sideways else empty)

    # ---- moves: subchannel i from owner(i) (keeping >= 1) to client c --------------------------
    plus = np.concatenate([np.repeat(owned[:, None, :], s, axis=1), a[:, :, None]], axis=-1)  # (K, S, L+1)
    p_plus = _min_powers(spec, plus, rate[:, None])  # (K, S): P_c with subchannel i added
    minus = owned[owner].copy()  # (S, L): row i = owned_{owner(i)} - i
    minus[ar, pos] = np.inf
    p_minus = _min_powers(spec, minus, rate[owner])  # (S,)
    recv = np.arange(k)[:, None]
    total_mv = base_sum + (p_plus - base[:, None]) + (p_minus - base[owner])[None, :]
    score_mv = np.minimum.reduce([
        total_slack(total_mv),
        slack(p_plus, np.broadcast_to(recv, (k, s))),
        np.broadcast_to(slack(p_minus, owner)[None, :], (k, s)),
        _others_min(base_slack, recv, owner[None, :]),
    ])
    score_mv = np.where((recv != owner[None, :]) & (counts[owner] >= 2)[None, :], score_mv, -np.inf)

    def build_moves(ix):
        cr, ci = ix
        out = np.repeat(assign[None, :], cr.size, axis=0)
        out[np.arange(cr.size), ci] = cr
        return out

    keep(score_mv, total_mv, build_moves)
    if (improving and not thorough) or k < 2:  # variable-neighbourhood descent: bigger moves only when stuck
        return result()

    # ---- exchange table: F[x, y] = P_{owner(x)}(t*) with x replaced by y -----------------------
    rows = np.repeat(owned[owner][:, None, :], s, axis=1)  # (S, S, L)
    rows[ar[:, None], ar[None, :], pos[:, None]] = a[owner[:, None], ar[None, :]]
    f_xy = np.where(owner[:, None] != owner[None, :], _min_powers(spec, rows, rate[owner][:, None]), np.inf)
    f_yx = f_xy.T
    xi, yi = np.meshgrid(ar, ar, indexing="ij")
    j, c = owner[xi], owner[yi]
    total_sw = base_sum - base[j] - base[c] + f_xy + f_yx
    score_sw = np.minimum.reduce([total_slack(total_sw), slack(f_xy, j),
                                  slack(f_yx, c), _others_min(base_slack, j, c)])
    score_sw = np.where(j != c, score_sw, -np.inf)

    def build_swaps(ix):
        x, y = ix
        out = np.repeat(assign[None, :], x.size, axis=0)
        rows = np.arange(x.size)
        out[rows, x] = owner[y]
        out[rows, y] = owner[x]
        return out

    keep(score_sw, total_sw, build_swaps)
    if improving and not thorough:
        return result()

    # ---- 3-cycles (small links only): owner(x) gets y, owner(y) gets z, owner(z) gets x ----------
    if s <= CYCLE_MAX_SUBCHANNELS and k >= 3:
        f = f_xy
        jx = owner[:, None, None]
        jy = owner[None, :, None]
        jz = owner[None, None, :]
        distinct = (jx != jy) & (jy != jz) & (jx != jz)
        fx, fy, fz = f[:, :, None], f[None, :, :], f.T[:, None, :]  # F[x,y], F[y,z], F[z,x]
        new_total = base_sum - base[jx] - base[jy] - base[jz] + fx + fy + fz
        score_cy = np.minimum.reduce([
            np.broadcast_to(total_slack(new_total), (s, s, s)),
            np.broadcast_to(slack(fx, np.broadcast_to(jx, fx.shape)), (s, s, s)),
            np.broadcast_to(slack(fy, np.broadcast_to(jy, fy.shape)), (s, s, s)),
            np.broadcast_to(slack(fz, np.broadcast_to(jz, fz.shape)), (s, s, s)),
            _others_min(base_slack, jx, jy, jz),
        ])
        score_cy = np.where(distinct, score_cy, -np.inf)

        def build_cycles(ix):
            x, y, z = ix
            out = np.repeat(assign[None, :], x.size, axis=0)
            rows = np.arange(x.size)
            out[rows, y] = owner[x]
            out[rows, z] = owner[y]
            out[rows, x] = owner[z]
            return out

        keep(score_cy, new_total, build_cycles)

    # ---- chains (small links only): i goes owner(i) -> c = owner(i2), i2 goes c -> d -------------
    if s <= CYCLE_MAX_SUBCHANNELS and k >= 3:
        ji = owner[:, None, None]
        ci2 = owner[None, :, None]
        dd = np.arange(k)[None, None, :]
        valid = (ji != ci2) & (dd != ci2) & (dd != ji) & (counts[owner] >= 2)[:, None, None]
        p_j = p_minus[:, None, None]  # owner(i) without i
        p_c = f_xy.T[:, :, None]  # F[i2, i]: owner(i2) with i2 replaced by i
        p_d = p_plus.T[None, :, :]  # client d with i2 added
        chain_total = base_sum - base[ji] - base[ci2] - base[dd] + p_j + p_c + p_d
        score_ch = np.minimum.reduce([
            total_slack(chain_total),
            np.broadcast_to(slack(p_j, np.broadcast_to(ji, p_j.shape)), (s, s, k)),
            np.broadcast_to(slack(p_c, np.broadcast_to(ci2, p_c.shape)), (s, s, k)),
            np.broadcast_to(slack(p_d, np.broadcast_to(dd, p_d.shape)), (s, s, k)),
            _others_min(base_slack, ji, ci2, dd),
        ])
        score_ch = np.where(valid, score_ch, -np.inf)

        def build_chains(ix):
            i, i2, d = ix
            out = np.repeat(assign[None, :], i.size, axis=0)
            rows = np.arange(i.size)
            out[rows, i] = owner[i2]
            out[rows, i2] = d
            return out

        keep(score_ch, np.broadcast_to(chain_total, (s, s, k)), build_chains)
    return result()


def rematch_sets(spec: LinkSpec, assign: np.ndarray, level_s: float, rtol: float = 1e-10) -> np.ndarray:
    """Optimal re-matching of the current subchannel *sets* to the clients (our addition).

    The partition of the subchannels into K sets is kept; which client gets which set is chosen
    optimally: the least level t at which some matching is feasible, found by bisection on t with a
    min-total-power assignment (``scipy.optimize.linear_sum_assignment`` on the K x K costs
    ``P_c(set_j, t)``, infinite above client c's cap) checked against the total limit.

    Args:
        spec: the link.
        assign: (S,) current owners (every client owns >= 1).
        level_s: the current optimal level (feasible with the current matching), s.
        rtol: relative bisection tolerance.

    Returns:
        (S,) the relabelled assignment (the input if no matching is better).
    """
    k, s = spec.num_clients, spec.num_subchannels
    counts = np.bincount(assign, minlength=k)
    width = int(counts.max())
    order = np.argsort(assign, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(s, dtype=np.int64)
    pos[order] = np.arange(s) - starts[assign[order]]
    # coeffs[c, j, :] = client c's coefficients on set j (the set currently owned by j)
    coeffs = np.full((k, k, width), np.inf)
    coeffs[:, assign, pos] = spec.inv_snr_w[:, np.arange(s)]
    coeffs = np.sort(coeffs, axis=-1)
    cap = np.minimum(spec.max_power_w, spec.total_power_w)
    rcap, _ = max_rate_for_power(coeffs, cap[:, None], spec.bandwidth_hz)
    with np.errstate(divide="ignore"):
        alone = spec.offset_s[:, None] + np.where(rcap > 0, client_bits(spec)[:, None] / np.maximum(rcap, 1e-300),
                                                     np.inf)

    def matching(t: float) -> np.ndarray | None:
        gap = t - spec.offset_s
        rate = np.where(gap > 0, spec.bits / np.maximum(gap, 1e-300), np.inf)
        p, _ = min_power_for_rate(coeffs, rate[:, None], spec.bandwidth_hz)  # (K clients, K sets)
        ok = np.isfinite(p) & (p <= cap[:, None] * (1.0 + 1e-12)) & (alone <= t)
        if not np.all(np.any(ok, axis=1)):
            return None
        big = 1e3 * spec.total_power_w * k
        rows, cols = linear_sum_assignment(np.where(ok, p, big))
        if not np.all(ok[rows, cols]) or p[rows, cols].sum() > spec.total_power_w:
            return None
        return cols

    lo = float(np.max(np.min(alone, axis=1)))
    hi = float(level_s)
    best = matching(hi)
    if best is None or lo >= hi:
        return assign
    if matching(lo) is not None:
        hi, best = lo, matching(lo)
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        m = matching(mid)
        if m is None:
            lo = mid
        else:
            hi, best = mid, m
    # client c gets the set of old owner best[c]
    new_owner = np.empty(k, dtype=np.int64)
    new_owner[best] = np.arange(k)
    return new_owner[assign]


def _level_and_power(spec: LinkSpec, assigns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact optimal level (s) and the total power of its minimum-power solution (W) per assignment."""
    _, power, _, _ = solve_link_power_batch(owned_inv_snr(spec.inv_snr_w, assigns), spec.bandwidth_hz, spec.bits,
                                            spec.offset_s, spec.max_power_w, spec.total_power_w)
    levels = np.array([spec.delay_s(x, p) for x, p in zip(assigns, power)])
    return levels, power.sum(axis=-1)


def refine_assignment(spec: LinkSpec, assign: np.ndarray, n_try: int = 4, max_moves: int | None = None,
                      rtol: float = 1e-9, thorough: bool | None = None) -> tuple[np.ndarray, float, int]:
    """Local search over moves, swaps, 3-cycles and set re-matching with exact power (our addition).

    See the module docstring for the neighbourhoods, the screening rule and the sideways steps.

    Args:
        spec: the link.
        assign: (S,) starting owner of every subchannel (every client owns >= 1).
        n_try: screened candidates (largest slack first) re-solved exactly per round.
        max_moves: cap on accepted moves/swaps (default ``2 * S``).
        rtol: a change must lower the exact level by more than this relative amount.
        thorough: screen all neighbourhoods every round instead of variable-neighbourhood descent;
            default (None): thorough on links with at most ``CYCLE_MAX_SUBCHANNELS`` subchannels.

    Returns:
        ``(assign, level_s, changes)``: the refined assignment, its exact optimal link delay, s, and
        the number of accepted changes.
    """
    assign = np.asarray(assign, dtype=np.int64).copy()
    max_moves = 2 * spec.num_subchannels if max_moves is None else max_moves
    if thorough is None:
        thorough = spec.num_subchannels <= CYCLE_MAX_SUBCHANNELS
    level, total = _level_and_power(spec, assign[None])
    level, total = float(level[0]), float(total[0])
    moves = 0
    while moves < max_moves:
        improving, sideways = _candidates(spec, assign, level, n_try, thorough)
        accepted = False
        for cand in (improving, sideways):
            if cand.shape[0] == 0:
                continue
            levels, totals = _level_and_power(spec, cand)
            # lexicographic (level, total power at the level): lower level first, then less power
            ok = (levels < level * (1.0 - rtol)) | ((levels <= level * (1.0 + 1e-12))
                                                     & (totals < total * (1.0 - SIDEWAYS_MIN_SAVING)))
            if np.any(ok):
                key = np.where(ok, levels, np.inf)
                j = int(np.lexsort((totals, key))[0])
                assign, level, total = cand[j], float(levels[j]), float(totals[j])
                accepted = True
                break
        if not accepted:
            cand = rematch_sets(spec, assign, level)[None]
            if np.array_equal(cand[0], assign):
                break
            levels, totals = _level_and_power(spec, cand)
            if not (levels[0] < level * (1.0 - rtol) or (levels[0] <= level * (1.0 + 1e-12)
                                                         and totals[0] < total * (1.0 - SIDEWAYS_MIN_SAVING))):
                break
            assign, level, total = cand[0], float(levels[0]), float(totals[0])
        moves += 1
    return assign, level, moves


def iterated_refine(spec: LinkSpec, assign: np.ndarray, kicks: int = 8, kick_size: int = 3,
                    seed: int = 0) -> tuple[np.ndarray, float]:
    """Iterated local search (our addition): refine, then repeatedly perturb the best assignment by
    ``kick_size`` random subchannel reassignments, refine again and keep the result if it is better.

    Deterministic (fixed ``seed``). Used on small links, where :func:`refine_assignment` is cheap.

    Args:
        spec: the link.
        assign: (S,) start (every client owns >= 1).
        kicks: perturbation rounds.
        kick_size: subchannels re-assigned at random per perturbation.
        seed: seed of the perturbation generator.

    Returns:
        ``(assign, level_s)``: the best assignment found and its exact optimal link delay, s.
    """
    rng = np.random.default_rng(seed)
    best, best_level, _ = refine_assignment(spec, assign)
    for _ in range(kicks):
        cand = random_kick(rng, best, spec.num_clients, kick_size)
        if not serves_every_client(spec, cand):
            continue  # a kick gave some client only subchannels it cannot use (zero gain): infinite delay
        cand, level, _ = refine_assignment(spec, cand)
        if level < best_level * (1.0 - 1e-9):
            best, best_level = cand, level
    return best, best_level


def serves_every_client(spec: LinkSpec, assign: np.ndarray) -> bool:
    """True when every client owns at least one usable subchannel: one whose SNR at the client's full power
    gives a positive rate in float64 (``1 + snr > 1``; a zero or 1e-300 gain does not)."""
    pmax = np.broadcast_to(np.asarray(spec.max_power_w, dtype=float), (spec.num_clients,))
    snr = pmax[assign] / spec.inv_snr_w[assign, np.arange(spec.num_subchannels)]
    served = np.zeros(spec.num_clients, dtype=bool)
    served[assign[1.0 + snr > 1.0]] = True
    return bool(served.all())


def random_kick(rng: np.random.Generator, assign: np.ndarray, num_clients: int, size: int) -> np.ndarray:
    """``size`` random changes that keep every client served: each picks a random subchannel and, with
    probability 1/2 when its owner keeps another one, gives it to a random other client, otherwise
    swaps it with a random subchannel of another owner (nothing happens if one client owns all).

    Args:
        rng: the random generator.
        assign: (S,) owners (every client owns >= 1); not modified.
        num_clients: K.
        size: number of changes.

    Returns:
        (S,) the perturbed owners.
    """
    out = np.array(assign, dtype=np.int64)
    counts = np.bincount(out, minlength=num_clients)
    for _ in range(size):
        i = int(rng.integers(out.size))
        owner = int(out[i])
        if counts[owner] >= 2 and num_clients >= 2 and rng.random() < 0.5:
            new = int(rng.integers(num_clients - 1))
            new += new >= owner  # uniform over the other clients
            out[i] = new
            counts[owner] -= 1
            counts[new] += 1
            continue
        others = np.nonzero(out != owner)[0]
        if others.size:
            j = int(rng.choice(others))
            out[i], out[j] = out[j], owner
    return out


def random_assignment(rng: np.random.Generator, num_clients: int, num_subchannels: int) -> np.ndarray:
    """Uniformly random owners with every client owning at least one subchannel.

    A random permutation gives the first K subchannels of it one to each client; the remaining ones
    get independent uniform owners.

    Args:
        rng: the random generator (the only source of randomness).
        num_clients: K.
        num_subchannels: S >= K.
    """
    if num_subchannels < num_clients:
        raise ValueError(f"{num_subchannels} subchannels cannot serve {num_clients} clients (need S >= K)")
    perm = rng.permutation(num_subchannels)
    assign = np.empty(num_subchannels, dtype=np.int64)
    assign[perm[:num_clients]] = rng.permutation(num_clients)
    assign[perm[num_clients:]] = rng.integers(0, num_clients, num_subchannels - num_clients)
    return assign

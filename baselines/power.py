"""Exact min-max power control on one uplink for a fixed subchannel assignment.

Problem (per link, assignment fixed)::

    minimise_p  max_k  D_k + bits / R_k(p),   R_k(p) = sum_{i owned by k} B log2(1 + p_i / a_i)
    s.t.        p >= 0,  sum_{i owned by k} p_i <= p_max_k,  sum_i p_i <= p_th

``R_k`` is concave, so the epigraph form (min t s.t. R_k(p) >= bits / (t - D_k)) is convex. It is solved
exactly by **a bracketing root search on the level t**: at a level t client k needs the rate ``bits / (t - D_k)``, whose
least power ``P_k(t)`` is a water-filling (:func:`~baselines.waterfill.min_power_for_rate`). Level t is
feasible iff every ``P_k(t) <= p_max_k`` and ``sum_k P_k(t) <= p_th``; ``P_k`` decreases in t, so
feasibility is monotone. The bracket is:

- ``t_lo = max_k (D_k + bits / Rcap_k)`` with ``Rcap_k`` the water-filling rate of ``min(p_max_k, p_th)``
  (no level below it is feasible; above it every per-client cap holds automatically);
- ``t_hi`` = the delay of the "each client water-fills ``min(p_max_k, p_th / K)``" point (feasible).

If ``sum_k P_k(t_lo) <= p_th`` the optimum is ``t_lo`` (a client's own cap binds), otherwise the root
of ``g(t) = sum_k P_k(t) - p_th`` is bracketed to a relative width ``rtol`` (default 1e-12). ``g`` is
convex and decreasing (``P_k`` convex increasing in the rate, the rate ``bits / (t - D_k)`` convex in
t), so Newton steps from the infeasible end and secant steps towards the feasible end shrink the
bracket from both sides superlinearly (bisection steps are added when progress stalls); this is as
exact as plain bisection but needs ~5-10 instead of ~45 evaluations.

Returned powers are the **minimum-power** solution at the optimal level (every client exactly meets
the level; leftover power, if a per-client cap binds, is not spent since it cannot lower the max).

:func:`reference_link_power_cvxpy` is an independent check: one DCP problem
``min t s.t. bits * inv_pos(t - D_k) <= sum_i B log(1 + p_i / a_i) / log 2`` solved by CLARABEL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsllm_env.errors import require_extra
from baselines.problem import LinkSpec
from baselines.waterfill import max_rate_for_power, min_power_for_rate, powers_from_level

__all__ = [
    "LinkPowerSolution",
    "owned_inv_snr",
    "solve_link_power",
    "solve_link_power_batch",
    "equal_power",
    "reference_link_power_cvxpy",
]


@dataclass(frozen=True)
class LinkPowerSolution:
    """Exact power solution of one link."""

    power_w: np.ndarray
    """(S,) per-subchannel power, W."""
    delay_s: float
    """The optimal level ``max_k (D_k + bits / R_k)``, s (recomputed from ``power_w``)."""
    iterations: int
    """Bisection iterations used."""
    cap_bound: bool
    """True if a per-client cap (not the total limit) set the optimum."""


def owned_inv_snr(inv_snr_w: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """(..., K, S) inverse SNR with ``inf`` where client k does not own subchannel i.

    Args:
        inv_snr_w: (K, S) inverse SNR coefficients, W.
        assign: (..., S) owner of each subchannel.
    """
    assign = np.asarray(assign)
    k = inv_snr_w.shape[0]
    owns = assign[..., None, :] == np.arange(k)[:, None]
    return np.where(owns, inv_snr_w, np.inf)


def solve_link_power_batch(owned_inv_snr_w: np.ndarray, bandwidth_hz: float, bits: np.ndarray | float,
                           offset_s: np.ndarray, max_power_w: np.ndarray, total_power_w: float,
                           rtol: float = 1e-12, max_iter: int = 200) -> tuple[np.ndarray, np.ndarray, int,
                                                                                np.ndarray]:
    """Exact min-max power for a batch of assignments / offsets on one link.

    Args:
        owned_inv_snr_w: (B, K, S) inverse SNR, ``inf`` where k does not own i, W.
        bandwidth_hz: subchannel bandwidth, Hz.
        bits: payload per client, bits, broadcastable to (B, K).
        offset_s: (B, K) or (K,) fixed per-client delay, s.
        max_power_w: (K,) per-client cap, W.
        total_power_w: total power limit, W.
        rtol: relative bracket width at which bisection stops.
        max_iter: bisection cap.

    Returns:
        ``(level_s (B,), power_w (B, S), iterations, cap_bound (B,))``.

    Raises:
        ValueError: if a client owns no subchannel in some batch entry (its delay is infinite).
    """
    a_owned = np.asarray(owned_inv_snr_w, dtype=float)
    n_b, k, _ = a_owned.shape
    a = np.sort(a_owned, axis=-1)
    used = np.any(np.isfinite(a), axis=tuple(range(a.ndim - 1)))  # sorted: unused columns are a suffix
    a = a[..., : max(int(np.sum(used)), 1)]
    bits = np.broadcast_to(np.asarray(bits, dtype=float), (n_b, k))
    offset = np.broadcast_to(np.asarray(offset_s, dtype=float), (n_b, k))
    pmax = np.asarray(max_power_w, dtype=float)
    if np.any(~np.isfinite(a[..., 0]) & (bits > 0)):
        b_bad, k_bad = np.argwhere(~np.isfinite(a[..., 0]) & (bits > 0))[0]
        raise ValueError(f"client {k_bad} owns no usable subchannel (batch entry {b_bad}); "
                         f"every client needs at least one")

    cap = np.minimum(pmax, total_power_w)
    rcap, _ = max_rate_for_power(a, cap, bandwidth_hz)
    share = np.minimum(pmax, total_power_w / k)
    rshare, _ = max_rate_for_power(a, share, bandwidth_hz)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_lo = np.max(offset + np.where(bits > 0, bits / rcap, 0.0), axis=-1)
        t_hi = np.max(offset + np.where(bits > 0, bits / rshare, 0.0), axis=-1)

    def total_power(t: np.ndarray, rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray,
                                                                                    np.ndarray]:
        """Sum of the clients' least powers at levels t (B', P) of the batch entries ``rows``
        -> (power (B', P), slope (B', P), nu (B', P, K))."""
        gap = t[..., None] - offset[rows][:, None, :]
        b = bits[rows][:, None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(b > 0, b / np.maximum(gap, 1e-300), 0.0)
            rate = np.where((b > 0) & (gap <= 0), np.inf, rate)
            p, nu = min_power_for_rate(a[rows][:, None], rate, bandwidth_hz)
            # dP_k/dt = (dP_k/dR)(dR/dt) = (nu ln2 / B) * (-bits / (t - D)^2)
            slope = -np.sum(np.where(b > 0, nu * np.log(2.0) / bandwidth_hz * rate * rate / np.where(b > 0, b, 1.0),
                                     0.0), axis=-1)
        return p.sum(axis=-1), slope, nu

    p_lo, slope_lo, _ = total_power(t_lo[:, None])
    p_lo, slope_lo = p_lo[:, 0], slope_lo[:, 0]
    cap_bound = p_lo <= total_power_w
    lo = t_lo.copy()
    hi = np.where(cap_bound, t_lo, t_hi)
    p_hi, _, _ = total_power(hi[:, None])
    p_hi = p_hi[:, 0]
    # make sure hi is feasible despite round-off
    for _ in range(60):
        bad = ~cap_bound & (p_hi > total_power_w)
        if not np.any(bad):
            break
        hi = np.where(bad, hi + (hi - lo) + 1e-12 * np.abs(hi), hi)
        p_hi = total_power(hi[:, None])[0][:, 0]
    # g(t) = sum_k P_k(t) - p_th is convex and decreasing, so a Newton step from lo (g > 0) stays
    # infeasible and the secant of (lo, hi) lands on the feasible side: both ends converge
    # superlinearly. Every evaluated point is classified by its own sign, so round-off cannot break
    # the bracket; a midpoint is added whenever an iteration fails to halve the bracket.
    iterations = 0
    g_lo, g_hi = p_lo - total_power_w, p_hi - total_power_w
    slow = np.zeros_like(cap_bound)
    while iterations < max_iter:
        open_ = ~cap_bound & (hi - lo > rtol * np.abs(hi))
        if not np.any(open_):
            break
        width = hi - lo
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = lo - g_lo / slope_lo
            secant = hi - g_hi * (hi - lo) / (g_hi - g_lo)
        mid = 0.5 * (lo + hi)
        newton = np.where(np.isfinite(newton) & (newton > lo) & (newton < hi), newton, mid)
        secant = np.where(np.isfinite(secant) & (secant > lo) & (secant < hi), secant, mid)
        pts = np.stack([newton, secant, mid], axis=1)
        if not np.any(slow):
            pts = pts[:, :2]
        pts = np.where(open_[:, None], pts, lo[:, None])
        # evaluate only the entries still open (closed ones keep their bracket)
        rows = np.nonzero(open_)[0]
        g_pts = np.full(pts.shape, np.inf)
        s_pts = np.zeros(pts.shape)
        p_open, s_open, _ = total_power(pts[rows], rows)
        g_pts[rows], s_pts[rows] = p_open - total_power_w, s_open
        feas = g_pts <= 0
        # new hi: smallest feasible point; new lo: largest infeasible point
        cand_hi = np.where(feas, pts, np.inf)
        j_hi = np.argmin(cand_hi, axis=1)
        new_hi = cand_hi[np.arange(n_b), j_hi]
        take_hi = open_ & (new_hi < hi)
        hi = np.where(take_hi, new_hi, hi)
        g_hi = np.where(take_hi, g_pts[np.arange(n_b), j_hi], g_hi)
        cand_lo = np.where(~feas, pts, -np.inf)
        j_lo = np.argmax(cand_lo, axis=1)
        new_lo = cand_lo[np.arange(n_b), j_lo]
        take_lo = open_ & (new_lo > lo)
        lo = np.where(take_lo, new_lo, lo)
        g_lo = np.where(take_lo, g_pts[np.arange(n_b), j_lo], g_lo)
        slope_lo = np.where(take_lo, s_pts[np.arange(n_b), j_lo], slope_lo)
        slow = open_ & (hi - lo > 0.5 * width)
        iterations += 1
    _, _, nu = total_power(hi[:, None])
    nu = nu[:, 0]
    per_client = powers_from_level(a_owned, nu)  # (B, K, S): only the owner's row is nonzero
    # guard against round-off above the limits (relative size ~1e-15)
    owner_power = per_client.sum(axis=-1)
    per_client = per_client * np.where(owner_power > pmax, pmax / np.maximum(owner_power, 1e-300), 1.0)[..., None]
    power = per_client.sum(axis=1)
    tot = power.sum(axis=-1)
    power = power * np.where(tot > total_power_w, total_power_w / np.maximum(tot, 1e-300), 1.0)[:, None]
    return hi, power, iterations, cap_bound


def solve_link_power(spec: LinkSpec, assign: np.ndarray, rtol: float = 1e-12) -> LinkPowerSolution:
    """Exact min-max power of one link for one assignment (see module docstring).

    Args:
        spec: the link (inverse SNR, payload, offsets, limits).
        assign: (S,) owner of each subchannel; every client must own at least one.
        rtol: relative bisection tolerance on the level.
    """
    assign = np.asarray(assign)
    owned = owned_inv_snr(spec.inv_snr_w, assign)[None]
    _, power, it, cap_bound = solve_link_power_batch(owned, spec.bandwidth_hz, spec.bits, spec.offset_s,
                                                     spec.max_power_w, spec.total_power_w, rtol=rtol)
    return LinkPowerSolution(power[0], spec.delay_s(assign, power[0]), it, bool(cap_bound[0]))


def equal_power(assign: np.ndarray, max_power_w: np.ndarray, total_power_w: float) -> np.ndarray:
    """Conventional equal power: client k spreads ``min(p_max_k, p_th / K)`` equally over its subchannels.

    Args:
        assign: (S,) owner of each subchannel.
        max_power_w: (K,) per-client caps, W.
        total_power_w: link total limit, W.

    Returns:
        (S,) per-subchannel powers, W (feasible by construction).
    """
    assign = np.asarray(assign)
    pmax = np.asarray(max_power_w, dtype=float)
    k = pmax.shape[0]
    budget = np.minimum(pmax, total_power_w / k)
    counts = np.bincount(assign, minlength=k)
    return budget[assign] / np.maximum(counts[assign], 1)


def reference_link_power_cvxpy(spec: LinkSpec, assign: np.ndarray, solver: str = "CLARABEL") -> tuple[float,
                                                                                                     np.ndarray]:
    """Independent reference: the epigraph problem as one DCP program solved by cvxpy.

    ``minimise t  s.t.  bits * inv_pos(t - D_k) <= sum_{i owned by k} B log(1 + p_i / a_i) / ln 2``,
    per-client and total power limits, ``p >= 0``. Rates are scaled to bit/s/Hz (divided by B) and
    the level to units of the fast solution's scale for conditioning.

    Args:
        spec: the link.
        assign: (S,) owner of each subchannel.
        solver: cvxpy solver name (needs exponential cones: CLARABEL or SCS).

    Returns:
        ``(level_s, power_w (S,))`` where ``level_s`` is recomputed from the (clipped) powers.
    """
    require_extra("dev", "the cvxpy reference power solve", "cvxpy")
    import cvxpy as cp  # lazy: only the reference solve needs cvxpy

    assign = np.asarray(assign)
    s = assign.shape[0]
    a = spec.inv_snr_w[assign, np.arange(s)]
    p_scale = float(spec.total_power_w)
    # time unit: the delay of the equal-share point
    eq = equal_power(assign, spec.max_power_w, spec.total_power_w)
    t_unit = max(spec.delay_s(assign, eq), 1e-12)
    p = cp.Variable(s, nonneg=True)  # in units of p_scale
    t = cp.Variable()  # in units of t_unit
    cons = [cp.sum(p) <= 1.0]
    bits_norm = spec.bits / spec.bandwidth_hz / t_unit  # bits / (B * t_unit): spectral efficiency scale
    for k in range(spec.num_clients):
        idx = np.nonzero(assign == k)[0]
        if idx.size == 0:
            raise ValueError(f"client {k} owns no subchannel; the reference solve needs every client served")
        cons.append(cp.sum(p[idx]) <= spec.max_power_w[k] / p_scale)
        se = cp.sum(cp.log(1.0 + cp.multiply(p_scale / a[idx], p[idx]))) / np.log(2.0)
        d_k = spec.offset_s[k] / t_unit
        cons.append(bits_norm * cp.inv_pos(t - d_k) <= se)
    prob = cp.Problem(cp.Minimize(t), cons)
    prob.solve(solver=solver)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"cvxpy reference solve failed with status {prob.status!r}")
    power = np.maximum(np.asarray(p.value, dtype=float), 0.0) * p_scale
    return spec.delay_s(assign, power), power

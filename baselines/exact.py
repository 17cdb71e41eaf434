"""Exact optimum of small instances by enumeration (the reference for optimality gaps).

Every subchannel assignment in which each client owns at least one subchannel is enumerated on each
link (``K! S(S, K)`` of them; 36 for K=3, S=4), each with its exact min-max power
(:func:`baselines.power.solve_link_power_batch`), for every (split, rank).

**Decoupling.** Given (c, r), ``T = E(r) * (I * (t_ms + T^S + max_k(T^down + T^B)) + t_fs + T^bc)``
where the MS link (assignment + power) enters only ``t_ms`` and the FS link only ``t_fs``, with
separate constraints. So the joint minimum over (assign_ms, assign_fs, powers) is
``min t_ms + min t_fs`` (each scaled by a positive factor): the links are minimised separately and
added, ``O(|A_ms| + |A_fs|)`` instead of ``O(|A_ms| |A_fs|)`` per (c, r). The FS link has no offsets, so
its best assignment and powers do not depend on (c, r) and its level scales with the LoRA payload: it
is solved once. E may depend on the split (E(r, c), :meth:`Problem.rounds`): it is a positive factor
per (c, r), so the decoupling holds unchanged.
:func:`exact_optimum_joint` does the naive joint enumeration to verify this on tiny cases.
"""

from __future__ import annotations

import functools
import itertools
import math
import time

import numpy as np

from fedsllm_env.types import Decision
from baselines.alternating import finish
from baselines.power import owned_inv_snr, solve_link_power_batch
from baselines.problem import Problem
from baselines.result import BaselineResult

__all__ = ["count_assignments", "enumerate_assignments", "exact_optimum", "exact_optimum_joint"]

MAX_ASSIGNMENTS = 200_000
"""Refuse enumerations larger than this per link."""


def count_assignments(num_clients: int, num_subchannels: int) -> int:
    """Number of surjective owner maps: ``sum_j (-1)^j C(K, j) (K - j)^S``."""
    k, s = num_clients, num_subchannels
    return sum((-1) ** j * math.comb(k, j) * (k - j) ** s for j in range(k + 1))


def enumerate_assignments(num_clients: int, num_subchannels: int) -> np.ndarray:
    """(A, S) every assignment in which each of the K clients owns at least one of the S subchannels.

    Raises:
        ValueError: if there would be more than ``MAX_ASSIGNMENTS``.
    """
    return _enumerate_assignments(int(num_clients), int(num_subchannels)).copy()


@functools.lru_cache(maxsize=32)
def _enumerate_assignments(num_clients: int, num_subchannels: int) -> np.ndarray:
    n = count_assignments(num_clients, num_subchannels)
    if n > MAX_ASSIGNMENTS:
        raise ValueError(f"{n} assignments of {num_subchannels} subchannels to {num_clients} clients; "
                         f"exact enumeration is limited to {MAX_ASSIGNMENTS}")
    grid = np.array(list(itertools.product(range(num_clients), repeat=num_subchannels)), dtype=np.int64)
    keep = np.all(np.stack([np.any(grid == k, axis=1) for k in range(num_clients)]), axis=0)
    return grid[keep]


def _link_levels(problem: Problem, name: str, assigns: np.ndarray, bits: np.ndarray,
                 offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact levels (C*R, A) and powers (C*R, A, S) of every assignment for every (c, r) candidate."""
    spec = problem.link(name, problem.splits[0], problem.ranks[0])
    n_cr, (n_a, s) = bits.shape[0], assigns.shape
    own = owned_inv_snr(spec.inv_snr_w, assigns)  # (A, K, S)
    own = np.broadcast_to(own[None], (n_cr,) + own.shape).reshape(n_cr * n_a, spec.num_clients, s)
    b = np.repeat(bits, n_a)[:, None]
    off = np.repeat(offsets, n_a, axis=0)
    _, power, _, _ = solve_link_power_batch(own, spec.bandwidth_hz, b, off, spec.max_power_w, spec.total_power_w)
    power = power.reshape(n_cr, n_a, s)
    # levels recomputed from the powers exactly as the env would
    a_owner = spec.inv_snr_w[assigns, np.arange(s)]  # (A, S)
    per_sub = spec.bandwidth_hz * np.log2(1.0 + power / a_owner[None])
    rate = np.zeros((n_cr, n_a, spec.num_clients))
    for k in range(spec.num_clients):
        rate[..., k] = np.sum(np.where(assigns[None] == k, per_sub, 0.0), axis=-1)
    level = np.max(offsets[:, None, :] + bits[:, None, None] / rate, axis=-1)
    return level, power


def exact_optimum(problem: Problem) -> BaselineResult:
    """Global optimum by enumeration with the per-link decoupling (see module docstring).

    Returns:
        The optimal decision; ``extra`` holds ``assignments_ms``, ``assignments_fs`` and the (C, R)
        table ``objective_table_s`` of the best T per (split, rank).
    """
    start = time.perf_counter()
    w, tab = problem.cfg.wireless, problem.tables
    k = problem.num_clients
    a_ms = enumerate_assignments(k, w.num_subchannels_ms)
    a_fs = enumerate_assignments(k, w.num_subchannels_fs)
    n_c, n_r = len(tab.splits), len(tab.ranks)
    ci, ri = np.meshgrid(np.arange(n_c), np.arange(n_r), indexing="ij")
    ci, ri = ci.ravel(), ri.ravel()
    lv_ms, p_ms = _link_levels(problem, "ms", a_ms, tab.upload_bits[ci, ri], tab.forward_s[ci, ri])
    # FS link: no offsets, so the powers and the best assignment do not depend on (c, r) and the level
    # scales with the LoRA payload: solve once (payload of the first candidate) and scale
    lv_fs1, p_fs = _link_levels(problem, "fs", a_fs, tab.lora_bits[ci[:1], ri[:1]], np.zeros((1, k)))
    best_fs = int(np.argmin(lv_fs1[0]))
    t_fs = lv_fs1[0, best_fs] * tab.lora_bits[ci, ri] / tab.lora_bits[ci[0], ri[0]]
    best_ms = np.argmin(lv_ms, axis=1)
    rows = np.arange(ci.size)
    total = tab.total_s(ci, ri, lv_ms[rows, best_ms], t_fs)
    b = int(np.argmin(total))
    decision = Decision(a_ms[best_ms[b]].copy(), a_fs[best_fs].copy(), p_ms[b, best_ms[b]].copy(),
                        p_fs[0, best_fs].copy(), tab.splits[ci[b]], tab.ranks[ri[b]])
    return finish(problem, decision, success=True, message="enumerated every assignment and (split, rank)",
                  n_iter=0, history=[float(total[b])], start_s=start, assignments_ms=int(a_ms.shape[0]),
                  assignments_fs=int(a_fs.shape[0]), objective_table_s=total.reshape(n_c, n_r))


def exact_optimum_joint(problem: Problem) -> BaselineResult:
    """Naive joint enumeration over (assign_ms, assign_fs, split, rank), each evaluated with the env's
    ``round_delay`` (exact power per link). Only for verifying :func:`exact_optimum` on tiny cases."""
    start = time.perf_counter()
    w, tab = problem.cfg.wireless, problem.tables
    k = problem.num_clients
    a_ms = enumerate_assignments(k, w.num_subchannels_ms)
    a_fs = enumerate_assignments(k, w.num_subchannels_fs)
    if a_ms.shape[0] * a_fs.shape[0] * len(tab.splits) * len(tab.ranks) > 50_000:
        raise ValueError("exact_optimum_joint is only meant for tiny instances (<= 50,000 joint candidates)")
    n_c, n_r = len(tab.splits), len(tab.ranks)
    ci, ri = np.meshgrid(np.arange(n_c), np.arange(n_r), indexing="ij")
    ci, ri = ci.ravel(), ri.ravel()
    _, p_ms = _link_levels(problem, "ms", a_ms, tab.upload_bits[ci, ri], tab.forward_s[ci, ri])
    _, p_fs = _link_levels(problem, "fs", a_fs, tab.lora_bits[ci, ri], np.zeros((ci.size, k)))
    best: tuple[float, Decision] | None = None
    for b in range(ci.size):
        for i in range(a_ms.shape[0]):
            for j in range(a_fs.shape[0]):
                d = Decision(a_ms[i], a_fs[j], p_ms[b, i], p_fs[b, j], tab.splits[ci[b]], tab.ranks[ri[b]])
                value = problem.objective_s(d)
                if best is None or value < best[0]:
                    best = (value, d)
    assert best is not None
    return finish(problem, best[1], success=True, message="joint enumeration", n_iter=0, history=[best[0]],
                  start_s=start)

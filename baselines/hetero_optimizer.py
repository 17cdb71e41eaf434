"""The alternating optimizer extended to heterogeneous clients: a cut c_k and a rank r_k per client.

Model: ``../shared/SPEC.md``, "Heterogeneous clients" (delay and memory of a per-client profile from
:func:`fedsllm_env.delay.round_delay`). The objective is ``E(profile) * T_round(profile, allocation)``.

**E of mixed profiles is unmeasured.** The engine and the convergence measurements of heterogeneous profiles
(issue 21, steps 1 and 3) do not exist yet, so E is a callable ``e_of_profile(cuts (K,), ranks (K,)) -> rounds``
supplied by the caller. The default, :func:`e_conservative_stand_in`, is a *stand-in*, not a model: the measured
E of the homogeneous cell at the profile's smallest rank and largest cut. Every number this module produces with
it is a statement about the solver and the delay model, not about training.

Algorithm (:class:`HeteroOptimizer`):

1. **Homogeneous start**: :class:`baselines.alternating.AlternatingOptimizer` (the paper's optimizer with our
   refinements) gives the best shared (c, r) with its subchannels and powers; its profile is (c, ..., c),
   (r, ..., r).
2. **Coordinate search**, sweep after sweep: for each client k in turn, every candidate (c, r) of that client
   (the others fixed) is scored with the current subchannel assignments and the powers of both links
   re-optimised exactly for that candidate (one batched :func:`baselines.power.solve_link_power_batch` per link);
   the best is accepted if it lowers the objective (monotone). When none pays, the ``probes`` (2) most promising
   other candidates of that client whose lower bound (MS level >= the slowest forward, FS level >= 0) could still
   beat the incumbent get their subchannels re-assigned (greedy vs current; a move can need another assignment
   to pay, as a deeper cut does in the homogeneous split-aware step), accepted if better. If no single client
   moved and K <= ``pair_max_clients`` (4), every pair of clients is tried moving together over all pairs of
   cells (same scoring and probes): with min-max links two slow clients may have to offload together before
   the level drops. After each sweep both links are re-assigned as the
   homogeneous optimizer's subchannel step does (:func:`baselines.steps.improve_link_assignment`: greedy vs
   current, refined by local search, exact power), each link accepted only if its min-max level drops.
3. Stop when a sweep moves no client and the re-assignment improves nothing (or after ``max_sweeps``).

The MS link's payload (activations + labels) is the same for every client; its per-client offsets are the client
forward times T_k^F(c_k, r_k). The FS link has no offset but a LoRA payload per client, so its
:class:`~baselines.problem.LinkSpec` carries (K,) bits (the subchannel and power solvers accept either).
T^S, the downlink/backward term and the broadcast follow the delay model's per-client formulas; the final
decision is scored by :func:`fedsllm_env.delay.round_delay` itself (``objective_s`` is the env's number).

:func:`brute_force_profiles` enumerates every per-client profile of a tiny instance (K = 2-3, few cuts and
ranks) with the allocation solved per profile by the same inner solver (``allocation="solver"``) or by
enumerating every subchannel assignment with exact power (``allocation="exact"``); it is the reference of the
optimality-gap study (``python -m train_scripts.benchmark_optimizer --hetero``).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np

from fedsllm_env.delay import _flops, check_feasible, expected_total_delay_s, payload_bits, server_flops_sum
from fedsllm_env.types import Decision, DelayBreakdown
from baselines.alternating import AlternatingOptimizer
from baselines.exact import enumerate_assignments
from baselines.power import owned_inv_snr, solve_link_power_batch
from baselines.problem import LinkSpec, Problem
from baselines.result import BaselineResult
from baselines.steps import improve_link_assignment, link_power_w
from baselines.subchannel import greedy_assignment

__all__ = ["EOfProfile", "HeteroOptimizer", "HeteroResult", "ProfileModel", "brute_force_profiles",
           "e_conservative_stand_in", "solve_profile_allocation"]

EOfProfile = Callable[[np.ndarray, np.ndarray], float]
"""``e_of_profile(cuts (K,), ranks (K,)) -> E``, rounds to the target (``inf`` = censored)."""

_REL_IMPROVEMENT = 1e-12
"""A move must lower T by this relative margin to be accepted (round-off guard, as in :mod:`baselines.steps`)."""


def e_conservative_stand_in(problem: Problem) -> EOfProfile:
    """STAND-IN for E of a mixed profile (E of mixed profiles is unmeasured): the problem's E of the homogeneous
    cell at the profile's smallest rank and largest cut, ``problem.rounds(max_k c_k, min_k r_k)``.

    Conservative in the sense that the mixed profile is charged the E of its weakest adapter (lowest rank) at
    its deepest cut; it equals the measured E on homogeneous profiles. Replace it with the measured model of
    issue 21 step 3 once that exists; do not read results obtained with it as predictions of training."""
    def e_of_profile(cuts: np.ndarray, ranks: np.ndarray) -> float:
        return problem.rounds(int(np.max(cuts)), int(np.min(ranks)))

    e_of_profile.__name__ = "e_conservative_stand_in"
    return e_of_profile


def _rounds(e_of_profile: EOfProfile, cuts: np.ndarray, ranks: np.ndarray) -> float:
    """``e_of_profile(cuts, ranks)`` checked: a positive number of rounds (inf = censored)."""
    value = e_of_profile(cuts.copy(), ranks.copy())
    if np.ndim(value) != 0:
        raise ValueError(f"e_of_profile must return one E (a scalar number of rounds) for the whole profile of "
                         f"K = {cuts.size} clients, got shape {np.shape(value)}: {np.asarray(value).tolist()}")
    value = float(value)
    if not value > 0:  # also NaN
        raise ValueError(f"e_of_profile(cuts={cuts.tolist()}, ranks={ranks.tolist()}) must be a positive number "
                         f"of rounds (inf = censored), got {value!r}")
    return value


@dataclass(frozen=True, eq=False)
class ProfileModel:
    """Per-client delay terms of ``problem`` for any profile, from the problem's (split, rank) tables.

    Client k's forward time at (c_k, r_k) is ``problem.tables.forward_s[ci_k, ri_k, k]`` (the same arithmetic as
    :func:`fedsllm_env.delay.client_compute_s`), T^S is summed cut by cut at r_g = max_k r_k with
    :func:`fedsllm_env.delay.server_flops_sum`, so a homogeneous profile reproduces the problem's numbers.
    """

    problem: Problem
    e_of_profile: EOfProfile

    def __post_init__(self) -> None:
        if not callable(self.e_of_profile):
            raise TypeError(f"e_of_profile must be a callable (cuts, ranks) -> E, got {type(self.e_of_profile)}")
        p = self.problem
        cfg, t, c = p.cfg, p.cfg.training, p.cfg.compute
        tab = p.tables
        per_cut = np.array([[_flops(p.shape, s, r, t.seq_len, cfg.model.lora_target_modules)[1]
                             for s in range(1, p.shape.n_layer)] for r in tab.ranks])
        object.__setattr__(self, "_server_flops", per_cut)  # (R, L-1) at r_g = ranks[j]
        object.__setattr__(self, "_act_bits", payload_bits(p.shape, tab.splits[0], tab.ranks[0], cfg)[0])

    # ---- helpers -----------------------------------------------------------------------------------------
    def indices(self, cuts: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table indices (ci, ri) of a validated profile."""
        tab = self.problem.tables
        ci = np.array([tab.splits.index(int(c)) for c in np.asarray(cuts).ravel()]).reshape(np.shape(cuts))
        ri = np.array([tab.ranks.index(int(r)) for r in np.asarray(ranks).ravel()]).reshape(np.shape(ranks))
        return ci, ri

    def forward_s(self, ci: np.ndarray, ri: np.ndarray) -> np.ndarray:
        """(..., K) client forward times of profiles given by index arrays (..., K)."""
        k = self.problem.num_clients
        return self.problem.tables.forward_s[ci, ri, np.arange(k)]

    def fixed_terms(self, ci: np.ndarray, ri: np.ndarray) -> tuple[np.ndarray, ...]:
        """For profiles (..., K): (MS offsets (..., K), FS bits (..., K), T^S, max_k(down + bwd), broadcast,
        fits memory), the last four (...,)."""
        p, tab = self.problem, self.problem.tables
        cfg = p.cfg
        fwd = self.forward_s(ci, ri)
        lora = tab.lora_bits[ci, ri]
        counts = np.stack([np.sum(ci == s, axis=-1) for s in range(len(tab.splits))], axis=-1)
        r_g = np.max(ri, axis=-1)
        server = server_flops_sum(counts, self._server_flops[r_g], cfg.training.batch_size,
                                  cfg.compute.backward_factor) / (cfg.compute.server_cpu_freq_hz *
                                                                  cfg.compute.server_flops_per_cycle)
        down_bwd = np.max(self._act_bits / cfg.wireless.downlink_rate_bps + cfg.compute.backward_factor * fwd,
                          axis=-1)
        bcast = np.max(lora, axis=-1) / cfg.wireless.broadcast_rate_bps
        fits = np.all(tab.fits_memory_client[ci, ri, np.arange(ci.shape[-1])], axis=-1)
        return fwd, lora, server, down_bwd, bcast, fits

    def links(self, ci: np.ndarray, ri: np.ndarray) -> tuple[LinkSpec, LinkSpec]:
        """(MS, FS) link of one profile: MS offsets T_k^F(c_k, r_k), FS payload (K,) LoRA bits."""
        p, tab = self.problem, self.problem.tables
        ms0 = p.link("ms", tab.splits[0], tab.ranks[0])
        fs0 = p.link("fs", tab.splits[0], tab.ranks[0])
        ms = LinkSpec(ms0.inv_snr_w, ms0.bandwidth_hz, ms0.bits, self.forward_s(ci, ri), ms0.max_power_w,
                      ms0.total_power_w)
        fs = LinkSpec(fs0.inv_snr_w, fs0.bandwidth_hz, tab.lora_bits[ci, ri].astype(float), fs0.offset_s,
                      fs0.max_power_w, fs0.total_power_w)
        return ms, fs

    def objective_s(self, cuts: np.ndarray, ranks: np.ndarray, decision: Decision) -> float:
        """``E(profile) * T_round`` of an allocation at a profile, from the tables, s (agrees with the env's
        :func:`fedsllm_env.delay.round_delay`; inf where a client breaks the memory limit)."""
        ci, ri = self.indices(cuts, ranks)
        ms, fs = self.links(ci, ri)
        return self._total(cuts, ranks, ci, ri, ms.delay_s(decision.assign_ms, decision.power_ms_w),
                           fs.delay_s(decision.assign_fs, decision.power_fs_w))

    def lower_bound_s(self, cuts: np.ndarray, ranks: np.ndarray) -> float:
        """A lower bound of the objective of a profile under any allocation, s: the MS level is at least the
        slowest client's forward time and the FS level at least 0."""
        ci, ri = self.indices(cuts, ranks)
        fwd, _, server, down_bwd, bcast, fits = self.fixed_terms(ci, ri)
        if not fits:
            return math.inf
        t_round = self.problem.tables.local_iterations * (float(np.max(fwd)) + server + down_bwd) + bcast
        return float(expected_total_delay_s(_rounds(self.e_of_profile, cuts, ranks), t_round))

    def _total(self, cuts, ranks, ci, ri, t_ms: float, t_fs: float) -> float:
        _, _, server, down_bwd, bcast, fits = self.fixed_terms(ci, ri)
        if not fits:
            return math.inf
        t_round = self.problem.tables.local_iterations * (t_ms + server + down_bwd) + t_fs + bcast
        return float(expected_total_delay_s(_rounds(self.e_of_profile, cuts, ranks), t_round))


def solve_profile_allocation(model: ProfileModel, cuts: np.ndarray, ranks: np.ndarray,
                             start: Decision | None = None, refine: bool = True, iterated: bool = True) -> Decision:
    """The inner solver: subchannels and powers of both links for a fixed profile, as the homogeneous optimizer's
    subchannel step does (greedy, vs ``start``'s assignment if given, refined by local search, exact power;
    ``iterated``: the iterated local search on small links, as the homogeneous subchannel step)."""
    ci, ri = model.indices(cuts, ranks)
    out = []
    for spec, name in zip(model.links(ci, ri), ("ms", "fs")):
        if start is None:
            assign = greedy_assignment(spec)
        else:
            assign = np.asarray(start.assign_ms if name == "ms" else start.assign_fs)
        power = link_power_w(spec, assign, "optimal")
        out.append(improve_link_assignment(spec, assign, power, "optimal", refine, iterated)[:2])
    (a_ms, p_ms), (a_fs, p_fs) = out
    return Decision(np.asarray(a_ms), np.asarray(a_fs), np.asarray(p_ms), np.asarray(p_fs), cuts.copy(),
                    ranks.copy())


@dataclass(frozen=True, eq=False)
class HeteroResult:
    """What :class:`HeteroOptimizer` (or :func:`brute_force_profiles`) returns."""

    decision: Decision
    """The allocation: ``split`` and ``rank`` are (K,) arrays (one cut and rank per client)."""
    objective_s: float
    """``E(profile) * T_round`` with T_round from :func:`fedsllm_env.delay.round_delay`, s."""
    rounds: float
    """E(profile) from ``e_of_profile`` (a stand-in unless the caller supplied a measured model)."""
    breakdown: DelayBreakdown
    """The env's delay breakdown of ``decision``."""
    homogeneous: BaselineResult | None
    """The homogeneous optimizer's result the search started from (None for the brute force)."""
    history: tuple[float, ...] = ()
    """Objective (s) of the start and after every accepted change, non-increasing."""
    sweeps: int = 0
    """Coordinate sweeps performed."""
    moves: int = 0
    """Accepted per-client (c_k, r_k) changes."""
    message: str = ""
    """Why it stopped."""
    wall_s: float = 0.0
    """Wall-clock solve time (homogeneous start included), s."""
    extra: dict = field(default_factory=dict)

    @property
    def cuts(self) -> np.ndarray:
        """(K,) cut of every client."""
        return np.asarray(self.decision.split)

    @property
    def ranks(self) -> np.ndarray:
        """(K,) rank of every client."""
        return np.asarray(self.decision.rank)


def _finish(model: ProfileModel, decision: Decision, **kw) -> HeteroResult:
    p = model.problem
    check_feasible(decision, p.scenario, p.shape, p.cfg)
    bd = p.breakdown(decision)
    cuts, ranks = np.asarray(decision.split), np.asarray(decision.rank)
    e = _rounds(model.e_of_profile, cuts, ranks)
    return HeteroResult(decision, float(expected_total_delay_s(e, float(bd.round_s))), e, bd, **kw)


@dataclass(frozen=True)
class HeteroOptimizer:
    """Coordinate search over per-client (c_k, r_k) from the best homogeneous decision (see module docstring)."""

    max_sweeps: int = 50
    """Cap on coordinate sweeps."""
    refine: bool = True
    """Local-search refinement in the subchannel re-assignment (as the homogeneous optimizer's ``refine``)."""
    probes: int = 2
    """When no (c, r) of a client pays with the current assignment, re-assign the subchannels for its ``probes``
    most promising other candidates (0: never)."""
    pair_max_clients: int = 4
    """When no single client's move pays, try every pair of clients moving together (all pairs of cells) if
    K <= this (the pair phase costs K (K - 1) / 2 batched scorings of (C R)^2 candidates; 0: never)."""
    probe_refine: bool = False
    """Local search (one start, not iterated) inside the probes; False: greedy vs current only (fast at large K)."""
    homogeneous: AlternatingOptimizer = field(default_factory=AlternatingOptimizer)
    """The optimizer of the homogeneous start."""

    def __post_init__(self) -> None:
        if self.max_sweeps < 0:
            raise ValueError(f"max_sweeps must be >= 0, got {self.max_sweeps!r}")
        if self.probes < 0:
            raise ValueError(f"probes must be >= 0, got {self.probes!r}")

    def solve(self, problem: Problem, e_of_profile: EOfProfile | None = None) -> HeteroResult:
        """Optimise per-client cuts and ranks, subchannels and powers.

        Args:
            problem: the instance (its ``rounds_needed`` drives the homogeneous start).
            e_of_profile: E of a whole profile, ``(cuts (K,), ranks (K,)) -> rounds``; default
                :func:`e_conservative_stand_in` (a stand-in: E of mixed profiles is unmeasured). On a
                homogeneous profile it must agree with ``problem.rounds`` (the start is optimised with that).

        Raises:
            ValueError: ``e_of_profile`` returns something other than one positive number (an array, NaN, <= 0),
                or disagrees with ``problem.rounds`` on the homogeneous start.
        """
        start = time.perf_counter()
        e_of_profile = e_conservative_stand_in(problem) if e_of_profile is None else e_of_profile
        model = ProfileModel(problem, e_of_profile)
        k, tab = problem.num_clients, problem.tables
        hom = self.homogeneous.solve(problem)
        d0 = hom.decision
        cuts = np.full(k, int(d0.split), dtype=np.int64)
        ranks = np.full(k, int(d0.rank), dtype=np.int64)
        e0 = _rounds(e_of_profile, cuts, ranks)
        e_hom = problem.rounds(int(d0.split), int(d0.rank))
        if not (e0 == e_hom or math.isclose(e0, e_hom, rel_tol=1e-9)):
            raise ValueError(f"e_of_profile on the homogeneous profile (split {int(d0.split)}, rank {int(d0.rank)}) "
                             f"gives {e0!r} but problem.rounds gives {e_hom!r}: E of a homogeneous profile must be "
                             "the problem's E")
        decision = d0.replace(split=cuts.copy(), rank=ranks.copy())
        current = model.objective_s(cuts, ranks, decision)
        history = [current]
        moves, sweeps = 0, 0
        message = f"reached max_sweeps={self.max_sweeps}"
        cand = [(i, j) for i in range(len(tab.splits)) for j in range(len(tab.ranks))]
        cand_ci = np.array([i for i, _ in cand])
        cand_ri = np.array([j for _, j in cand])
        if not np.isfinite(current):
            message = "homogeneous start has an infinite objective: no coordinate search"
        else:
            for sweeps in range(1, self.max_sweeps + 1):
                moved = False
                single = [((c,), cand_ci[:, None], cand_ri[:, None]) for c in range(k)]
                for clients, set_ci, set_ri in single:
                    ranked = self._moves(model, decision, clients, set_ci, set_ri)
                    if ranked and ranked[0][0] < current * (1.0 - _REL_IMPROVEMENT):
                        current, decision = ranked[0]
                        history.append(current)
                        moves += 1
                        moved = True
                        continue
                    # no move pays with the current assignment: re-assign the subchannels for the most promising
                    # other (c, r) of this client (a move can need another assignment to pay, as a deeper cut
                    # does in the homogeneous optimizer's split-aware step)
                    probed = 0
                    for _, cand_d in ranked:
                        if probed >= self.probes:
                            break
                        found = self._probe(model, cand_d, current)
                        if found is None:
                            continue  # no assignment can make this profile pay
                        probed += 1
                        if found[0] < current * (1.0 - _REL_IMPROVEMENT):
                            current, decision = found
                            history.append(current)
                            moves += 1
                            moved = True
                            break
                if not moved and k <= self.pair_max_clients:
                    # two clients at once (every pair, every pair of cells): a deeper offload can need two clients
                    # to move together before the min-max level drops
                    n_cell = cand_ci.size
                    pi, pj = np.divmod(np.arange(n_cell * n_cell), n_cell)
                    for pair in itertools.combinations(range(k), 2):
                        ranked = self._moves(model, decision, pair, np.stack([cand_ci[pi], cand_ci[pj]], axis=1),
                                             np.stack([cand_ri[pi], cand_ri[pj]], axis=1))
                        if ranked and ranked[0][0] < current * (1.0 - _REL_IMPROVEMENT):
                            current, decision = ranked[0]
                            history.append(current)
                            moves += 1
                            moved = True
                            continue
                        for _, cand_d in ranked[:self.probes]:
                            # with local search (K <= pair_max_clients: small): a pair's move can need a
                            # re-assignment greedy alone does not find
                            found = self._probe(model, cand_d, current, refine=True)
                            if found is not None and found[0] < current * (1.0 - _REL_IMPROVEMENT):
                                current, decision = found
                                history.append(current)
                                moves += 1
                                moved = True
                                break
                cuts, ranks = np.asarray(decision.split), np.asarray(decision.rank)
                re = solve_profile_allocation(model, cuts, ranks, decision, self.refine)
                value = model.objective_s(cuts, ranks, re)
                if value < current * (1.0 - _REL_IMPROVEMENT):
                    current, decision = value, re
                    history.append(current)
                    moved = True
                if not moved:
                    message = f"converged: no client's (cut, rank) and no re-assignment improves (sweep {sweeps})"
                    break
        return _finish(model, decision, homogeneous=hom, history=tuple(history), sweeps=sweeps, moves=moves,
                       message=message, wall_s=time.perf_counter() - start)

    def _probe(self, model: ProfileModel, cand: Decision, current: float,
               refine: bool | None = None) -> tuple[float, Decision] | None:
        """The candidate profile with its subchannels re-assigned (local search when ``refine``, default
        :attr:`probe_refine`) and its objective, s; None when its lower bound shows that no assignment can make it
        beat ``current``."""
        cuts, ranks = np.asarray(cand.split), np.asarray(cand.rank)
        if model.lower_bound_s(cuts, ranks) >= current * (1.0 - _REL_IMPROVEMENT):
            return None
        refine = self.probe_refine if refine is None else refine
        re = solve_profile_allocation(model, cuts, ranks, cand, refine, iterated=False)
        return model.objective_s(cuts, ranks, re), re

    @staticmethod
    def _moves(model: ProfileModel, decision: Decision, clients: tuple[int, ...], cand_ci: np.ndarray,
               cand_ri: np.ndarray) -> list[tuple[float, Decision]]:
        """Every other (c, r) of the ``clients`` (candidate cell indices (B, len(clients)); the others fixed,
        within the memory limit), best first: assignments kept, powers re-optimised per candidate."""
        p = model.problem
        tab = p.tables
        cuts, ranks = np.asarray(decision.split), np.asarray(decision.rank)
        ci0, ri0 = model.indices(cuts, ranks)
        n_b = cand_ci.shape[0]
        ci = np.repeat(ci0[None], n_b, axis=0)
        ri = np.repeat(ri0[None], n_b, axis=0)
        idx = list(clients)
        ci[:, idx], ri[:, idx] = cand_ci, cand_ri
        fwd, lora, server, down_bwd, bcast, fits = model.fixed_terms(ci, ri)
        ms, fs = model.links(ci0, ri0)
        a_ms, a_fs = np.asarray(decision.assign_ms), np.asarray(decision.assign_fs)
        own_ms = np.broadcast_to(owned_inv_snr(ms.inv_snr_w, a_ms), (n_b,) + ms.inv_snr_w.shape)
        own_fs = np.broadcast_to(owned_inv_snr(fs.inv_snr_w, a_fs), (n_b,) + fs.inv_snr_w.shape)
        _, p_ms, _, _ = solve_link_power_batch(own_ms, ms.bandwidth_hz, ms.bits, fwd, ms.max_power_w,
                                               ms.total_power_w)
        _, p_fs, _, _ = solve_link_power_batch(own_fs, fs.bandwidth_hz, lora, np.zeros_like(fwd), fs.max_power_w,
                                               fs.total_power_w)
        out: list[tuple[float, Decision]] = []
        changed = np.any((cand_ci != ci0[idx]) | (cand_ri != ri0[idx]), axis=1)
        for b in np.flatnonzero(fits & changed):
            c_b = np.asarray(tab.splits)[ci[b]]
            r_b = np.asarray(tab.ranks)[ri[b]]
            cand = decision.replace(power_ms_w=np.array(p_ms[b]), power_fs_w=np.array(p_fs[b]), split=c_b,
                                    rank=r_b)
            out.append((model.objective_s(c_b, r_b, cand), cand))
        out.sort(key=lambda x: x[0])  # stable: the first candidate on ties
        return out


def brute_force_profiles(problem: Problem, e_of_profile: EOfProfile | None = None,
                         allocation: Literal["solver", "exact"] = "exact",
                         max_profiles: int = 20_000) -> HeteroResult:
    """Best per-client profile of a tiny instance by enumerating every (c_1, r_1, ..., c_K, r_K).

    Args:
        problem: the instance (its candidate cuts 1..L-1 and ranks ``cfg.model.ranks``).
        e_of_profile: E of a profile; default :func:`e_conservative_stand_in` (a stand-in).
        allocation: ``"solver"``: each profile's allocation by :func:`solve_profile_allocation` from greedy (the
            optimizer's inner solver); ``"exact"``: every subchannel assignment of each link enumerated with exact
            min-max power (:func:`baselines.exact.enumerate_assignments`; the links separate given the profile).
        max_profiles: refuse larger enumerations.

    Raises:
        ValueError: more than ``max_profiles`` profiles, or an unknown ``allocation``.
    """
    if allocation not in ("solver", "exact"):
        raise ValueError(f"allocation must be 'solver' or 'exact', got {allocation!r}")
    start = time.perf_counter()
    e_of_profile = e_conservative_stand_in(problem) if e_of_profile is None else e_of_profile
    model = ProfileModel(problem, e_of_profile)
    k, tab = problem.num_clients, problem.tables
    fits_any = np.any(tab.fits_memory_client, axis=-1)  # the cells some client may hold
    cells = [(i, j) for i in range(len(tab.splits)) for j in range(len(tab.ranks)) if fits_any[i, j]]
    n = len(cells) ** k
    if n > max_profiles:
        raise ValueError(f"{n} profiles ({len(cells)} (cut, rank) cells per client, K = {k}); the brute force is "
                         f"limited to {max_profiles}")
    profiles = np.array(list(itertools.product(range(len(cells)), repeat=k)))
    ci = np.array([c for c, _ in cells])[profiles]
    ri = np.array([r for _, r in cells])[profiles]
    splits, ranks_set = np.asarray(tab.splits), np.asarray(tab.ranks)
    if allocation == "exact":
        w = problem.cfg.wireless
        fwd, lora, server, down_bwd, bcast, fits = model.fixed_terms(ci, ri)
        levels, powers, assigns = [], [], []
        ms, fs = model.links(ci[0], ri[0])
        for spec, n_sub, bits, off in ((ms, w.num_subchannels_ms, np.broadcast_to(ms.bits, fwd.shape), fwd),
                                       (fs, w.num_subchannels_fs, lora, np.zeros_like(fwd))):
            a = enumerate_assignments(k, n_sub)
            own = owned_inv_snr(spec.inv_snr_w, a)  # (A, K, S)
            n_p, n_a = profiles.shape[0], a.shape[0]
            own_b = np.broadcast_to(own[None], (n_p,) + own.shape).reshape(n_p * n_a, k, n_sub)
            b = np.repeat(bits, n_a, axis=0)
            o = np.repeat(off, n_a, axis=0)
            _, pw, _, _ = solve_link_power_batch(own_b, spec.bandwidth_hz, b, o, spec.max_power_w,
                                                 spec.total_power_w)
            a_owner = spec.inv_snr_w[a, np.arange(n_sub)]  # (A, S)
            per_sub = spec.bandwidth_hz * np.log2(1.0 + pw.reshape(n_p, n_a, n_sub) / a_owner[None])
            rate = np.stack([np.sum(np.where(a[None] == j, per_sub, 0.0), axis=-1) for j in range(k)], axis=-1)
            lv = np.max(off[:, None, :] + bits[:, None, :] / rate, axis=-1)  # (P, A)
            best_a = np.argmin(lv, axis=1)
            levels.append(lv[np.arange(n_p), best_a])
            powers.append(pw.reshape(n_p, n_a, n_sub)[np.arange(n_p), best_a])
            assigns.append(a[best_a])
        rounds = np.array([_rounds(e_of_profile, splits[ci[q]], ranks_set[ri[q]]) for q in range(len(profiles))])
        t_round = tab.local_iterations * (levels[0] + server + down_bwd) + levels[1] + bcast
        total = np.where(fits, expected_total_delay_s(rounds, t_round), np.inf)  # a client over its own cap
        q = int(np.argmin(total))
        decision = Decision(assigns[0][q].copy(), assigns[1][q].copy(), powers[0][q].copy(), powers[1][q].copy(),
                            splits[ci[q]], ranks_set[ri[q]])
    else:
        best: tuple[float, Decision] | None = None
        for q in range(len(profiles)):
            cuts, ranks = splits[ci[q]], ranks_set[ri[q]]
            d = solve_profile_allocation(model, cuts, ranks)
            value = model.objective_s(cuts, ranks, d)
            if best is None or value < best[0]:
                best = (value, d)
        assert best is not None
        decision = best[1]
    return _finish(model, decision, homogeneous=None, message=f"enumerated {n} profiles ({allocation} allocation)",
                   wall_s=time.perf_counter() - start, extra={"profiles": n})

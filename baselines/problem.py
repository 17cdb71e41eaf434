"""One instance of the joint allocation problem and fast, env-consistent evaluation of its objective.

The objective is exactly the environment's: ``T = E(r, c) * round_delay(decision, ...).round_s``, where
``rounds_needed`` is E(r) (one argument) or E(r, c) (called as ``rounds_needed(rank, split)``; see
:meth:`Problem.rounds`).
:meth:`Problem.objective_s` calls :func:`fedsllm_env.delay.round_delay` itself; the precomputed
:class:`DelayTables` (built from the same ``payload_bits`` / ``client_compute_s`` /
``server_compute_s`` functions) let the solvers evaluate many candidates without rebuilding a
``DelayBreakdown`` each time. Tests check that both agree.

Given (split c, rank r) the round delay separates over the two uplinks::

    T_round = I * (t_ms + T^S + max_k(T_k^down + T_k^B)) + t_fs + T^broadcast
    t_ms = max_k (T_k^F + (activation + label bits) / R_k^MS)    (MS link, offsets T_k^F)
    t_fs = max_k (LoRA bits / R_k^FS)                            (FS link, no offset)

so each link's assignment and power only enter through its own min-max term.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Literal

import numpy as np

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import (
    client_compute_s,
    client_memory_bytes,
    client_memory_limits_bytes,
    expected_total_delay_s,
    noise_psd_w_per_hz,
    payload_bits,
    round_delay,
    server_compute_s,
)
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import ChannelState, Decision, DelayBreakdown, Scenario
from baselines.waterfill import inverse_snr_w

__all__ = ["Problem", "DelayTables", "LinkSpec", "Link"]

Link = Literal["ms", "fs"]


def _accepts_two_positional(fn: Callable[..., float]) -> bool:
    """True if ``fn(rank, split)`` is a valid call (two positional parameters or ``*args``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: assume E(r)
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


@dataclass(frozen=True)
class LinkSpec:
    """One uplink's min-max delay problem data for a given (split, rank)."""

    inv_snr_w: np.ndarray
    """(K, S) ``N0 B / g_{k,i}``, W."""
    bandwidth_hz: float
    """Bandwidth of one subchannel, Hz."""
    bits: float | np.ndarray
    """Payload of each client on this link, bits: one for all (the paper) or (K,) one per client (heterogeneous
    profiles: the FS link's LoRA payload of client k)."""
    offset_s: np.ndarray
    """(K,) fixed delay added to each client's upload time (client forward on MS, 0 on FS), s."""
    max_power_w: np.ndarray
    """(K,) per-client power cap on this link, W."""
    total_power_w: float
    """Total power limit of all clients on this link, W."""

    @property
    def num_clients(self) -> int:
        """K."""
        return int(self.inv_snr_w.shape[0])

    @property
    def num_subchannels(self) -> int:
        """S."""
        return int(self.inv_snr_w.shape[1])

    def with_offset(self, offset_s: np.ndarray, bits: float) -> LinkSpec:
        """Same channel, other offsets/payload."""
        return LinkSpec(self.inv_snr_w, self.bandwidth_hz, float(bits), np.asarray(offset_s, dtype=float),
                        self.max_power_w, self.total_power_w)

    def delay_s(self, assign: np.ndarray, power_w: np.ndarray) -> float:
        """``max_k (offset_k + bits / R_k)`` for an assignment and per-subchannel powers, s."""
        return float(np.max(self.client_delay_s(assign, power_w)))

    def client_delay_s(self, assign: np.ndarray, power_w: np.ndarray) -> np.ndarray:
        """(K,) ``offset_k + bits / R_k``, s (inf for a client with zero rate)."""
        assign = np.asarray(assign)
        a = self.inv_snr_w[assign, np.arange(assign.shape[0])]
        per_sub = self.bandwidth_hz * np.log2(1.0 + np.asarray(power_w, dtype=float) / a)
        rate = np.bincount(assign, weights=per_sub, minlength=self.num_clients)
        with np.errstate(divide="ignore"):
            up = np.where(rate > 0, self.bits / np.maximum(rate, 1e-300), np.inf)
        return self.offset_s + up


@dataclass(frozen=True)
class DelayTables:
    """Every (split, rank)-dependent delay term, indexed ``[split_index, rank_index]``.

    ``splits[i]`` and ``ranks[j]`` give the actual values. Built only from fedsllm_env.delay.
    """

    splits: tuple[int, ...]
    ranks: tuple[int, ...]
    rounds: np.ndarray
    """(C, R) E(r, c), rounds (constant along C when E does not depend on the split; ``inf`` where censored,
    so the solvers never choose that candidate)."""
    forward_s: np.ndarray
    """(C, R, K) client forward time T_k^F of one iteration, s."""
    server_s: np.ndarray
    """(C, R) main-server compute of one iteration, s."""
    down_backward_s: np.ndarray
    """(C, R) max_k (T_k^down + T_k^B), s."""
    upload_bits: np.ndarray
    """(C, R) activation + label bits of one client per iteration."""
    lora_bits: np.ndarray
    """(C, R) client LoRA bits per round."""
    broadcast_s: np.ndarray
    """(C, R) FS broadcast time, s."""
    local_iterations: int
    """I."""
    fits_memory: np.ndarray
    """(C, R) True where (split, rank) fits every client's memory cap (``compute.client_memory_bytes`` or the
    smallest device-class cap; all True without a limit)."""
    fits_memory_client: np.ndarray
    """(C, R, K) True where client k may hold (split, rank) under its own cap (a per-client profile's test;
    :attr:`fits_memory` is its all-clients reduction)."""

    def index(self, split: int, rank: int) -> tuple[int, int]:
        """Table indices of (split, rank); ValueError naming the bad value otherwise."""
        if split not in self.splits:
            raise ValueError(f"split {split} is not a candidate; candidates: {self.splits}")
        if rank not in self.ranks:
            raise ValueError(f"rank {rank} is not a candidate; candidates: {self.ranks}")
        return self.splits.index(split), self.ranks.index(rank)

    def round_s(self, ci: np.ndarray | int, ri: np.ndarray | int, t_ms_s: np.ndarray | float,
                t_fs_s: np.ndarray | float) -> np.ndarray:
        """``T_round`` from the two link min-max terms (broadcasting over candidates), s (finite even where
        E is censored: the tie-break of the solvers' accept test)."""
        ci, ri = np.asarray(ci), np.asarray(ri)
        t_iter = np.asarray(t_ms_s) + self.server_s[ci, ri] + self.down_backward_s[ci, ri]
        return self.local_iterations * t_iter + np.asarray(t_fs_s) + self.broadcast_s[ci, ri]

    def total_s(self, ci: np.ndarray | int, ri: np.ndarray | int, t_ms_s: np.ndarray | float,
                t_fs_s: np.ndarray | float) -> np.ndarray:
        """``E(r) * T_round`` from the two link min-max terms (broadcasting over candidates), s; inf where
        (split, rank) breaks the client-memory limit, so no search ever picks it."""
        ci, ri = np.asarray(ci), np.asarray(ri)
        t_round = self.round_s(ci, ri, t_ms_s, t_fs_s)
        return np.where(self.fits_memory[ci, ri], expected_total_delay_s(self.rounds[ci, ri], t_round), np.inf)


@dataclass(frozen=True, eq=False)
class Problem:
    """Everything that defines one allocation instance (one round's state)."""

    scenario: Scenario
    channel: ChannelState
    shape: ModelShape
    cfg: FedsLLMConfig
    rounds_needed: Callable[..., float] = field(repr=False)
    """E(r) or E(r, c): rounds to reach the target validation loss at LoRA rank r (and split c); ``inf``
    marks a censored candidate (no convergence within the calibration's horizon), never chosen."""

    def __post_init__(self) -> None:
        w = self.cfg.wireless
        k = self.scenario.num_clients
        if k != w.num_clients:
            raise ValueError(f"scenario has {k} clients but cfg.wireless.num_clients={w.num_clients}")
        for name, arr, n_sub in (("gain_ms", self.channel.gain_ms, w.num_subchannels_ms),
                                 ("gain_fs", self.channel.gain_fs, w.num_subchannels_fs)):
            if np.shape(arr) != (k, n_sub):
                raise ValueError(f"channel.{name} has shape {np.shape(arr)}, expected ({k}, {n_sub}) "
                                 f"(num_clients, subchannels) from the config")
            gain = np.asarray(arr, dtype=float)
            if not np.all(np.isfinite(gain) & (gain >= 0)):
                raise ValueError(f"channel.{name} must hold finite gains >= 0, got {gain.tolist()}")
            deaf = np.nonzero(~np.any(gain > 0, axis=1))[0]
            if deaf.size:
                raise ValueError(f"channel.{name}: client(s) {deaf.tolist()} have zero gain on every subchannel, "
                                 "so no allocation gives them a positive rate (every decision has infinite delay)")
        if np.shape(self.channel.load) != (k,):
            raise ValueError(f"channel.load has shape {np.shape(self.channel.load)}, expected ({k},)")
        if self.shape.n_layer < 2:
            raise ValueError(f"model needs >= 2 blocks to split, got n_layer={self.shape.n_layer}")
        if not callable(self.rounds_needed):
            raise TypeError(f"rounds_needed must be a callable rank -> E(r) or (rank, split) -> E(r, c), "
                            f"got {type(self.rounds_needed).__name__}")

    # ---- env-exact evaluation --------------------------------------------------------------------
    def breakdown(self, decision: Decision) -> DelayBreakdown:
        """The environment's delay breakdown of ``decision`` (:func:`fedsllm_env.delay.round_delay`)."""
        return round_delay(decision, self.channel, self.scenario, self.shape, self.cfg)

    def objective_s(self, decision: Decision) -> float:
        """Total training delay ``E(r) * T_round`` of ``decision``, s (the env's objective)."""
        return float(expected_total_delay_s(self.rounds(int(decision.split), int(decision.rank)),
                                            float(self.breakdown(decision).round_s)))

    def rounds(self, split: int, rank: int) -> float:
        """E(r, c): ``rounds_needed(rank, split)`` when the callable takes two positional arguments,
        else ``rounds_needed(rank)`` (E independent of the split), rounds."""
        return self.rounds_of(self.rounds_needed, split, rank)

    @staticmethod
    def rounds_of(rounds_needed: Callable[..., float], split: int, rank: int) -> float:
        """:meth:`rounds` for a bare ``rounds_needed`` callable (E(r) or E(r, c)), rounds."""
        if _accepts_two_positional(rounds_needed):
            return float(rounds_needed(int(rank), int(split)))
        return float(rounds_needed(int(rank)))

    # ---- candidates and tables -----------------------------------------------------------------
    @property
    def num_clients(self) -> int:
        """K."""
        return self.scenario.num_clients

    @property
    def splits(self) -> tuple[int, ...]:
        """Candidate cut indices 1..L-1."""
        return tuple(range(1, self.shape.n_layer))

    @property
    def ranks(self) -> tuple[int, ...]:
        """Candidate LoRA ranks."""
        return tuple(int(r) for r in self.cfg.model.ranks)

    @cached_property
    def n0_w_per_hz(self) -> float:
        """Noise PSD, W/Hz."""
        return noise_psd_w_per_hz(self.cfg.wireless.noise_psd_dbm_per_hz)

    @cached_property
    def tables(self) -> DelayTables:
        """All (split, rank)-dependent delay terms (computed once per problem)."""
        cfg, k = self.cfg, self.num_clients
        splits, ranks = self.splits, self.ranks
        n_c, n_r = len(splits), len(ranks)
        rounds = np.empty((n_c, n_r))
        fwd = np.empty((n_c, n_r, k))
        server = np.empty((n_c, n_r))
        down_bwd = np.empty((n_c, n_r))
        up_bits = np.empty((n_c, n_r))
        lora = np.empty((n_c, n_r))
        bcast = np.empty((n_c, n_r))
        limits = client_memory_limits_bytes(cfg, k)
        fits_client = np.ones((n_c, n_r, k), dtype=bool)
        for j, r in enumerate(ranks):
            for i, c in enumerate(splits):
                e = self.rounds(c, r)
                if not e > 0:  # also catches NaN; +inf (censored: no convergence in the horizon) is allowed
                    raise ValueError(f"rounds_needed(rank={r}, split={c}) must be a positive number of rounds "
                                     f"(inf = censored), got {e!r}")
                rounds[i, j] = e
                act, labels, lora_bits = payload_bits(self.shape, c, r, cfg)
                f, b = client_compute_s(self.shape, c, r, self.scenario, self.channel.load, cfg)
                fwd[i, j] = f
                server[i, j] = server_compute_s(self.shape, c, r, k, cfg)
                down_bwd[i, j] = float(np.max(act / cfg.wireless.downlink_rate_bps + b))
                up_bits[i, j] = act + labels
                lora[i, j] = lora_bits
                bcast[i, j] = lora_bits / cfg.wireless.broadcast_rate_bps
                fits_client[i, j] = (limits <= 0) | (client_memory_bytes(c, r, self.shape, cfg) <= limits)
        if not np.any(np.isfinite(rounds)):
            raise ValueError("rounds_needed is inf (censored) for every (split, rank) candidate: no choice converges "
                             "within the calibration's horizon")
        return DelayTables(splits, ranks, rounds, fwd, server, down_bwd, up_bits, lora, bcast,
                           int(cfg.training.local_iterations), np.all(fits_client, axis=-1), fits_client)

    @cached_property
    def inv_snr_ms_w(self) -> np.ndarray:
        """(K, M) ``N0 B_s / g`` on the MS link, W."""
        return inverse_snr_w(self.channel.gain_ms, self.cfg.wireless.subchannel_bandwidth_ms_hz, self.n0_w_per_hz)

    @cached_property
    def inv_snr_fs_w(self) -> np.ndarray:
        """(K, N) ``N0 B_f / g`` on the FS link, W."""
        return inverse_snr_w(self.channel.gain_fs, self.cfg.wireless.subchannel_bandwidth_fs_hz, self.n0_w_per_hz)

    def link(self, name: Link, split: int, rank: int) -> LinkSpec:
        """The min-max problem of one uplink at (split, rank)."""
        w = self.cfg.wireless
        ci, ri = self.tables.index(int(split), int(rank))
        pmax = np.asarray(self.scenario.client_max_power_w, dtype=float)
        if name == "ms":
            return LinkSpec(self.inv_snr_ms_w, w.subchannel_bandwidth_ms_hz, float(self.tables.upload_bits[ci, ri]),
                            self.tables.forward_s[ci, ri].copy(), pmax, w.total_power_ms_w)
        if name == "fs":
            return LinkSpec(self.inv_snr_fs_w, w.subchannel_bandwidth_fs_hz, float(self.tables.lora_bits[ci, ri]),
                            np.zeros(self.num_clients), pmax, w.total_power_fs_w)
        raise ValueError(f"link must be 'ms' or 'fs', got {name!r}")

    def _link_delays_s(self, decision: Decision) -> tuple[int, int, float, float]:
        c, r = int(decision.split), int(decision.rank)
        ci, ri = self.tables.index(c, r)
        t_ms = self.link("ms", c, r).delay_s(decision.assign_ms, decision.power_ms_w)
        t_fs = self.link("fs", c, r).delay_s(decision.assign_fs, decision.power_fs_w)
        return ci, ri, t_ms, t_fs

    def fast_objective_s(self, decision: Decision) -> float:
        """``E(r) * T_round`` from the tables (agrees with :meth:`objective_s`; used inside solvers), s."""
        return float(self.tables.total_s(*self._link_delays_s(decision)))

    def fast_round_s(self, decision: Decision) -> float:
        """``T_round`` of ``decision`` from the tables (agrees with :meth:`breakdown`'s ``round_s``), s."""
        return float(self.tables.round_s(*self._link_delays_s(decision)))

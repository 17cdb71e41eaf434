"""The action-codec protocol and the pure helpers every codec shares (validation, repair, projections)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import (client_memory_limits_bytes, memory_violations, project_split_rank,
                               split_rank_feasibility)
from fedsllm_env.errors import ConfigError, InvalidActionError
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import ChannelState, Decision, Scenario

__all__ = ["ActionCodec", "SplitRankCodec", "MIN_BUDGET_FRACTION", "repair_assignment", "project_total_power",
           "spread_power", "validate_action", "refuse_non_real", "discrete_index"]

MIN_BUDGET_FRACTION = 1e-3
"""Smallest share of p_max a client is given, so no rate is ever zero."""


@runtime_checkable
class ActionCodec(Protocol):
    """Turns one env action into a feasible :class:`Decision` (and back).

    A codec is built once per env from the config and the model shape; ``decode`` and ``encode`` are
    pure functions of their arguments (no state changes, no randomness), so a vectorised env may call
    them per sub-env or re-implement them batched against the same contract.
    """

    mode: str
    """The ``action_mode`` it implements ("box", "multidiscrete" or "hybrid")."""
    space: spaces.Space
    """The action space (built once)."""

    def decode(self, action: np.ndarray, scenario: Scenario, channel: ChannelState) -> Decision:
        """A decision satisfying every constraint of :func:`fedsllm_env.delay.decision_violations`
        (after the codec's documented projection); InvalidActionError on a wrong shape or NaN/inf."""
        ...

    def encode(self, decision: Decision, scenario: Scenario) -> np.ndarray:
        """An action that decodes to ``decision`` (exactly or to the nearest representable one)."""
        ...

    def action_masks(self) -> np.ndarray:
        """Flat boolean mask of valid discrete choices (InvalidActionError for continuous spaces)."""
        ...


def refuse_non_real(action: Any, what: str = "action") -> None:
    """InvalidActionError for a complex action (numpy would drop the imaginary part without a word) or one of
    strings / bytes (numpy would parse "0.5" as a number)."""
    if isinstance(action, np.ndarray):
        probe = action
    else:
        try:
            probe = np.asarray(action)
        except (TypeError, ValueError):
            return  # ragged or odd: the float conversion that follows names it
    kind = probe.dtype.kind
    if kind == "O":
        items = probe.ravel().tolist()
        if any(isinstance(x, (complex, np.complexfloating)) for x in items):
            kind = "c"
        elif any(isinstance(x, (str, bytes)) for x in items):
            kind = "U"
    if kind == "c":
        raise InvalidActionError(f"{what} must hold real numbers, got a complex array (its imaginary part would be "
                                 "dropped); pass its .real if that is what you mean")
    if kind in "USV":
        raise InvalidActionError(f"{what} must be numeric, got strings or bytes")


def validate_action(action: np.ndarray, expected: tuple[int, ...], mode: str) -> np.ndarray:
    """``action`` as a float64 array of shape ``expected`` (a batch of one is squeezed, as SB3's predict
    returns); InvalidActionError naming the problem for a non-numeric (complex, strings), wrongly shaped or
    NaN/inf action."""
    refuse_non_real(action)
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidActionError(f"action must be numeric, got {type(action).__name__}") from e
    if a.shape != expected:
        if a.size == int(np.prod(expected)) and a.ndim == 2 and a.shape[0] == 1:
            a = a.reshape(expected)
        else:
            raise InvalidActionError(f"action has shape {a.shape}, expected {expected} (action_mode={mode!r})")
    finite = np.isfinite(a)
    if not finite.all():
        bad = np.nonzero(~finite)[0][:10].tolist()
        raise InvalidActionError(f"action contains NaN/inf at indices {bad}")
    return a


def discrete_index(a: np.ndarray, nvec: np.ndarray) -> np.ndarray:
    """Integer indices of a MultiDiscrete action, out-of-range entries clipped into ``[0, nvec - 1]``
    (documented projection); InvalidActionError for fractional entries."""
    if np.any(a != np.round(a)):
        raise InvalidActionError("MultiDiscrete action must hold integers")
    # clip in float first, so huge values (1e20) map to the largest choice instead of overflowing the int cast
    return np.clip(a, 0, nvec - 1).astype(np.int64)


def repair_assignment(owner: np.ndarray, preference: np.ndarray, num_clients: int) -> np.ndarray:
    """Give every client at least one subchannel.

    Args:
        owner: (S,) proposed owner per subchannel.
        preference: (S, K) score of giving subchannel i to client k (higher = preferred).
        num_clients: K (requires S >= K).

    Returns:
        (S,) owners where each client holds >= 1 subchannel; a client without one takes, among the
        subchannels whose owner holds >= 2, the one maximising its preference minus the owner's.
    """
    counts = np.bincount(owner, minlength=num_clients)
    if counts.min() > 0:
        return owner
    owner = owner.copy()
    for k in np.nonzero(counts == 0)[0]:
        donors = counts[owner] >= 2
        loss = preference[np.arange(owner.shape[0]), owner]
        score = np.where(donors, preference[:, k] - loss, -np.inf)
        i = int(np.argmax(score))
        counts[owner[i]] -= 1
        owner[i] = k
        counts[k] += 1
    return owner


def project_total_power(power_w: np.ndarray, total_w: float) -> np.ndarray:
    """Scale powers down uniformly when their sum exceeds ``total_w`` (W)."""
    s = float(power_w.sum())
    return power_w * (total_w / s) if s > total_w else power_w


def spread_power(owner: np.ndarray, weights: np.ndarray, budget_w: np.ndarray, num_clients: int) -> np.ndarray:
    """p_i = budget_{owner} * w_i / sum of the owner's weights (an equal split when they are all zero), W."""
    w = weights + 1e-12  # all-zero weights of a client become an exact equal split
    wsum = np.bincount(owner, weights=w, minlength=num_clients)
    return budget_w[owner] * (w / wsum[owner])


@dataclass(frozen=True)
class SplitRankCodec:
    """What every codec shares: config, model shape, the (split, rank) bins and the memory projection."""

    cfg: FedsLLMConfig
    shape: ModelShape

    def __post_init__(self) -> None:
        smallest = memory_violations(1, self.cfg.model.ranks[0], self.shape, self.cfg)
        if smallest:
            raise ConfigError(f"no (split, rank) fits the client memory limit: {smallest[0]}")

    @cached_property
    def memory_limits_bytes(self) -> np.ndarray:
        """(K,) each client's memory cap, bytes (0 = unlimited; :func:`fedsllm_env.delay.client_memory_limits_bytes`)."""
        return client_memory_limits_bytes(self.cfg)

    @property
    def mode(self) -> str:
        """The config's action mode."""
        return self.cfg.action_mode

    @cached_property
    def space(self) -> spaces.Space:
        """The action space (built once)."""
        return self._build_space()

    def _build_space(self) -> spaces.Space:
        raise NotImplementedError

    @property
    def per_client(self) -> bool:
        """A cut and a rank per client (``cfg.heterogeneous``): K split and K rank entries in every action."""
        return bool(self.cfg.heterogeneous)

    @property
    def num_decisions(self) -> int:
        """Entries of each of the split and rank blocks of an action: K per-client, else 1."""
        return self.cfg.wireless.num_clients if self.per_client else 1

    @property
    def num_splits(self) -> int:
        """L - 1 candidate cuts."""
        return self.shape.n_layer - 1

    @property
    def num_ranks(self) -> int:
        """R candidate ranks."""
        return len(self.cfg.model.ranks)

    def split_rank(self, split_idx: int, rank_idx: int, client: int | None = None) -> tuple[int, int]:
        """(c, r) from 0-based bin indices, projected onto the client-memory limit
        (:func:`fedsllm_env.delay.project_split_rank`): client ``client``'s own cap, or (None) the cap a
        shared decision must fit."""
        limit = None if client is None else float(self.memory_limits_bytes[int(client)])
        return project_split_rank(int(split_idx) + 1, int(self.cfg.model.ranks[int(rank_idx)]), self.shape,
                                  self.cfg, limit)

    def decisions_of(self, split_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[int | np.ndarray, int | np.ndarray]:
        """(split, rank) of the split and rank blocks of an action (each of :attr:`num_decisions` 0-based bin
        indices): two ints, or per client two (K,) int64 arrays, each client projected onto the memory limit
        on its own (:meth:`split_rank`)."""
        if not self.per_client:
            return self.split_rank(int(split_idx[0]), int(rank_idx[0]))
        pairs = [self.split_rank(int(c), int(r), k) for k, (c, r) in enumerate(zip(split_idx, rank_idx))]
        return (np.array([c for c, _ in pairs], dtype=np.int64), np.array([r for _, r in pairs], dtype=np.int64))

    def decision_indices(self, decision: Decision) -> tuple[np.ndarray, np.ndarray]:
        """The split and rank blocks (0-based bin indices, :attr:`num_decisions` each) of a decision; a shared
        (split, rank) fills every client's entry in the per-client layout."""
        ranks = self.cfg.model.ranks
        n = self.num_decisions
        splits = np.broadcast_to(np.asarray(decision.split, dtype=np.int64), (n,)) - 1
        rank_idx = np.array([ranks.index(int(r)) for r in np.broadcast_to(np.asarray(decision.rank), (n,))],
                            dtype=np.int64)
        return splits.astype(np.int64), rank_idx

    def split_rank_masks(self) -> np.ndarray:
        """Concatenated (L-1,) split and (R,) rank feasibility under the memory limit
        (:func:`fedsllm_env.delay.split_rank_feasibility`); per client, K split masks then K rank masks, each
        under the client's own cap. A fresh copy (the masks depend on the config only: computed once)."""
        return self._split_rank_masks.copy()

    @cached_property
    def _split_rank_masks(self) -> np.ndarray:
        if not self.per_client:
            return np.concatenate(split_rank_feasibility(self.shape, self.cfg))
        masks = [split_rank_feasibility(self.shape, self.cfg, float(lim)) for lim in self.memory_limits_bytes]
        return np.concatenate([m[0] for m in masks] + [m[1] for m in masks])

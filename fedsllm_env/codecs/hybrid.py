"""``action_mode="hybrid"``: the agent picks split and rank, an :class:`Allocator` fills subchannels and power.

The allocator is plugged in by the caller; fedsllm_env never imports one. ``FedsLLMEnv(allocator=None)``
in hybrid mode (what ``gym.make("FedsLLM-Surrogate-Hybrid-v0")`` does) asks :func:`make_allocator` for
:data:`DEFAULT_ALLOCATOR`, looked up in this order:

1. allocators registered in this process with :func:`register_allocator` (``import baselines``
   registers the paper's optimizer as ``"optimizer"``);
2. the ``fedsllm_env.allocators`` entry-point group of the installed distributions (this project's
   pyproject declares ``optimizer = "baselines.hybrid:OptimizerAllocator"``), so a plain
   ``import fedsllm_env`` + ``gym.make`` works once the package is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

from fedsllm_env.codecs.base import SplitRankCodec, discrete_index, validate_action
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import check_feasible
from fedsllm_env.errors import ConfigError
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import ChannelState, Decision, Scenario

__all__ = ["Allocator", "HybridCodec", "ALLOCATOR_ENTRY_POINTS", "DEFAULT_ALLOCATOR", "register_allocator",
           "make_allocator"]

ALLOCATOR_ENTRY_POINTS = "fedsllm_env.allocators"
"""Entry-point group where installed packages declare allocator factories (``name = "module:factory"``)."""
DEFAULT_ALLOCATOR = "optimizer"
"""Allocator used by the hybrid ids when none is passed: the paper's alternating optimizer."""

_REGISTERED: dict[str, Callable[[], "Allocator"]] = {}


@runtime_checkable
class Allocator(Protocol):
    """Fills subchannels and power for a given (split, rank): a feasible :class:`Decision`."""

    def __call__(self, scenario: Scenario, channel: ChannelState, shape: ModelShape, cfg: FedsLLMConfig,
                 split: int, rank: int) -> Decision:
        """The decision for this round's channel with the agent's ``split`` and ``rank``."""
        ...


def register_allocator(name: str, factory: Callable[[], Allocator]) -> None:
    """Make ``factory()`` available as allocator ``name`` in this process (overrides an entry point)."""
    _REGISTERED[name] = factory


def make_allocator(name: str = DEFAULT_ALLOCATOR) -> Allocator:
    """A new allocator by name: registered in this process, else from the entry-point group.

    Raises:
        ConfigError: no allocator of that name is registered or installed.
    """
    factory = _REGISTERED.get(name)
    if factory is None:
        found = [ep for ep in metadata.entry_points(group=ALLOCATOR_ENTRY_POINTS) if ep.name == name]
        if not found:
            known = sorted(set(_REGISTERED) | {ep.name for ep in metadata.entry_points(group=ALLOCATOR_ENTRY_POINTS)})
            raise ConfigError(f"action_mode='hybrid' needs an allocator: none named {name!r} is registered or "
                              f"installed (known: {known}); pass allocator=<callable>, `import baselines` (the "
                              f"paper's optimizer), or install the package so its entry points are visible")
        factory = found[0].load()
    allocator = factory()
    if not callable(allocator):
        raise ConfigError(f"allocator {name!r} built a {type(allocator).__name__}, which is not callable")
    return allocator


@dataclass(frozen=True)
class HybridCodec(SplitRankCodec):
    """``MultiDiscrete([L-1, R])`` (per client ``[L-1]*K + [R]*K``): split and rank bins; the allocator does
    the rest."""

    allocator: Allocator | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not callable(self.allocator):
            raise ConfigError(f"action_mode='hybrid' needs a callable allocator, got {self.allocator!r}")

    def _build_space(self) -> spaces.MultiDiscrete:
        d = self.num_decisions
        return spaces.MultiDiscrete([self.num_splits] * d + [self.num_ranks] * d)

    def decode(self, action: np.ndarray, scenario: Scenario, channel: ChannelState) -> Decision:
        """(split, rank) bins, projected onto the memory limit, then the allocator's decision for ``channel``
        (checked: InfeasibleDecisionError if the allocator breaks a constraint)."""
        a = validate_action(action, self.space.shape, self.mode)
        idx = discrete_index(a, self.space.nvec)  # type: ignore[attr-defined]
        d = self.num_decisions
        split, rank = self.decisions_of(idx[:d], idx[d:])
        assert self.allocator is not None
        decision = self.allocator(scenario, channel, self.shape, self.cfg, split, rank)
        check_feasible(decision, scenario, self.shape, self.cfg)
        return decision

    def encode(self, decision: Decision, scenario: Scenario) -> np.ndarray:
        """The (split, rank) bin indices of ``decision``."""
        return np.concatenate(self.decision_indices(decision)).astype(np.int64)

    def action_masks(self) -> np.ndarray:
        """Split and rank feasibility under the memory limit, concatenated."""
        return self.split_rank_masks()

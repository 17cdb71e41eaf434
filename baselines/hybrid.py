"""Hybrid control: the agent picks split and rank, the paper's optimizer fills subchannels and power.

:class:`OptimizerAllocator` is the :class:`fedsllm_env.codecs.Allocator` of the hybrid ids
(``FedsLLM-Surrogate-Hybrid-v0`` / ``FedsLLM-Hybrid-v0``): it is declared in the
``fedsllm_env.allocators`` entry-point group (pyproject) and registered as ``"optimizer"`` when
``baselines`` is imported. :func:`make_hybrid_env` builds the env with it directly (e.g. with ``refine=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from baselines.alternating import AlternatingOptimizer, initial_decision
from baselines.hetero_optimizer import ProfileModel, solve_profile_allocation
from baselines.problem import Problem
from fedsllm_env.codecs import DEFAULT_ALLOCATOR, register_allocator
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.env import FedsLLMEnv
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import ChannelState, Decision, Scenario

__all__ = ["OptimizerAllocator", "make_hybrid_env"]


class OptimizerAllocator:
    """Subchannels + power by the alternating optimizer with split and rank held fixed.

    Args:
        refine: also run our local-search refinement after the paper's greedy (slower, tighter).
    """

    def __init__(self, refine: bool = False):
        self.refine = refine
        self._optimizer = AlternatingOptimizer(refine=refine, search_split=False, search_rank=False)

    def __call__(self, scenario: Scenario, channel: ChannelState, shape: ModelShape, cfg: FedsLLMConfig,
                 split: int | np.ndarray, rank: int | np.ndarray) -> Decision:
        """Feasible decision for this round with the given ``split`` and ``rank`` (ints, or (K,) arrays: a cut
        and a rank per client, allocated by the heterogeneous optimizer's inner solver)."""
        # E(r) is a constant factor once the rank is fixed, so any positive E works here
        problem = Problem(scenario, channel, shape, cfg, lambda r: 1.0)
        if np.ndim(split) > 0 or np.ndim(rank) > 0:
            k = scenario.num_clients
            cuts = np.broadcast_to(np.asarray(split, dtype=np.int64), (k,)).copy()
            ranks = np.broadcast_to(np.asarray(rank, dtype=np.int64), (k,)).copy()
            model = ProfileModel(problem, lambda c, r: 1.0)
            return solve_profile_allocation(model, cuts, ranks, refine=self.refine)
        return self._optimizer.solve(problem, initial_decision(problem, split, rank)).decision


register_allocator(DEFAULT_ALLOCATOR, OptimizerAllocator)


def make_hybrid_env(config: FedsLLMConfig | dict[str, Any] | None = None, *, refine: bool = False,
                    **kwargs: Any) -> FedsLLMEnv:
    """A :class:`FedsLLMEnv` in hybrid action mode with an :class:`OptimizerAllocator` (``refine`` as given)."""
    env = FedsLLMEnv(config, allocator=OptimizerAllocator(refine), **kwargs)
    if env.config.action_mode != "hybrid":
        raise ValueError(f"make_hybrid_env needs action_mode='hybrid', got {env.config.action_mode!r}")
    return env

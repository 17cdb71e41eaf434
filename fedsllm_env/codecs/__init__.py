"""Action codecs: one per ``action_mode``, behind the :class:`ActionCodec` protocol, built by :func:`make_action_codec`.

The action's path is env -> codec -> delay model: ``codec.decode(action, scenario, channel)`` returns
a :class:`~fedsllm_env.types.Decision` that satisfies every constraint of
:func:`fedsllm_env.delay.decision_violations` (wireless limits and the client-memory limit), and the
env prices it with :func:`fedsllm_env.delay.round_delay`. Codecs hold no state besides the config,
the model shape (and, hybrid, the allocator); ``decode``/``encode`` are pure.

``action_mode="box"`` (:class:`BoxCodec`): flat ``Box(-1, 1)``:

==================  ======  =====================================================================
block               size    decoding (documented projection onto the feasible set)
==================  ======  =====================================================================
assign_ms logits    M*K     owner of MS subchannel i = argmax_k; then every client without a
                            subchannel takes the one it prefers most among owners holding >= 2
assign_fs logits    N*K     same for the FS link
power_ms weights    M       w_i = (a_i + 1) / 2: share of its owner's budget (equal if all 0)
power_fs weights    N       same for the FS link
budget_ms           K       client budget P_k = p_max_k * max((a_k + 1) / 2, 1e-3)
budget_fs           K       same for the FS link
split               1       c = 1 + bin of (a + 1) / 2 into L - 1 bins
rank                1       r = ranks[bin of (a + 1) / 2 into len(ranks) bins]
==================  ======  =====================================================================

After decoding, powers on a link are scaled down uniformly if their sum exceeds p_th. Values
outside [-1, 1] are clipped; NaN/inf or a wrong shape raise :class:`~fedsllm_env.errors.InvalidActionError`.

``action_mode="multidiscrete"`` (:class:`MultiDiscreteCodec`):
``MultiDiscrete([K]*M + [K]*N + [P]*M + [P]*N + [L-1] + [R])``: owners, power levels (level j ->
p_max_k (j + 1) / P spread over the owner's subchannels as weights), split index, rank index; same
repair and total-power projection; ``action_masks()`` for MaskablePPO.

``action_mode="hybrid"`` (:class:`HybridCodec`): ``MultiDiscrete([L-1, R])``: split and rank only;
its :class:`Allocator` (plugged in by the caller, see :mod:`fedsllm_env.codecs.hybrid`) fills
subchannels and power.

Every mode: a (split, rank) over ``compute.client_memory_bytes`` is projected to the largest split,
then the largest rank, not above the request that fits (:func:`fedsllm_env.delay.project_split_rank`).
"""

from __future__ import annotations

from fedsllm_env.codecs.base import (
    MIN_BUDGET_FRACTION,
    ActionCodec,
    project_total_power,
    repair_assignment,
)
from fedsllm_env.codecs.box import BoxCodec
from fedsllm_env.codecs.hybrid import (
    DEFAULT_ALLOCATOR,
    Allocator,
    HybridCodec,
    make_allocator,
    register_allocator,
)
from fedsllm_env.codecs.multidiscrete import MultiDiscreteCodec
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.profile import ModelShape

__all__ = ["ActionCodec", "Allocator", "BoxCodec", "MultiDiscreteCodec", "HybridCodec", "make_action_codec",
           "make_allocator", "register_allocator", "DEFAULT_ALLOCATOR", "MIN_BUDGET_FRACTION",
           "repair_assignment", "project_total_power"]


def make_action_codec(cfg: FedsLLMConfig, shape: ModelShape, allocator: Allocator | str | None = None) -> ActionCodec:
    """The codec of ``cfg.action_mode``.

    Args:
        cfg: the env config.
        shape: the backbone's dimensions.
        allocator: hybrid mode only: an :class:`Allocator`, the name of one (:func:`make_allocator`), or
            None for :data:`DEFAULT_ALLOCATOR`; ignored by the other modes.
    """
    if cfg.action_mode == "box":
        return BoxCodec(cfg, shape)
    if cfg.action_mode == "multidiscrete":
        return MultiDiscreteCodec(cfg, shape)
    if allocator is None or isinstance(allocator, str):
        allocator = make_allocator(allocator or DEFAULT_ALLOCATOR)
    return HybridCodec(cfg, shape, allocator)

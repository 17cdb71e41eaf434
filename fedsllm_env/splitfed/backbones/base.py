"""The backbone seam: what the split-fed engine needs to know about one architecture family.

An adapter is built from a transformers config and answers, for a model of its family: the shape for the
delay model (:class:`~fedsllm_env.profile.ModelShape`), where the blocks are, how to embed tokens (learned
positions, rotary positions, input projections), how to run a slice of blocks (causal mask, position ids
and rotary tables built for that slice alone, so a client and the main server each build their own), and
how to finish (final norm, output projection, LM head). The LoRA target names come from the shape's
``modules`` (module suffix inside a block and its role).
"""

from __future__ import annotations

import functools
import inspect
import operator
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from fedsllm_env.profile import ModelShape

__all__ = ["BackboneAdapter", "causal_mask"]


class BackboneAdapter:
    """Base class of one architecture family (subclass it in a new file and add one registry line).

    Subclasses set ``family``, ``blocks_path``, ``modules`` and implement :meth:`shape`, :meth:`embed`,
    :meth:`block_context`, :meth:`run_block` and :meth:`head`.
    """

    family: ClassVar[str] = ""
    """Human-readable family name."""
    blocks_path: ClassVar[str] = ""
    """Dotted path of the block list inside the ``*ForCausalLM`` model, e.g. ``"model.layers"``."""
    modules: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(module suffix inside a block, role) of every linear sub-module of a block."""
    fan_in_fan_out: ClassVar[bool] = False
    """True when the linear layers store (d_in, d_out) weights (GPT-2's Conv1D)."""
    required: ClassVar[tuple[str, ...]] = ()
    """Dotted attributes the model must have (checked by :meth:`check`)."""

    def __init__(self, config: Any) -> None:
        self.config = config

    # ---- structure ---------------------------------------------------------------------------
    def blocks(self, model: nn.Module) -> nn.ModuleList:
        """The model's list of transformer blocks."""
        return operator.attrgetter(self.blocks_path)(model)

    def check(self, model: nn.Module, where: str) -> None:
        """Raise TypeError unless ``model`` has the attributes this family's adapter uses."""
        missing = [a for a in (self.blocks_path, *self.required) if not _has_path(model, a)]
        if missing:
            raise TypeError(f"{where}: {type(model).__name__} is not a {self.family} causal LM (missing "
                            f"{', '.join(missing)})")

    def max_positions(self) -> int:
        """Longest sequence the model accepts."""
        return int(self.config.max_position_embeddings)

    def shape(self, model: nn.Module) -> ModelShape:
        """The model's dimensions for the delay model."""
        raise NotImplementedError

    def bias_flags(self, model: nn.Module, norm: str) -> dict[str, bool]:
        """qkv/o/mlp/norm bias flags read from the first block's modules (``norm``: a norm's suffix)."""
        block = self.blocks(model)[0]
        has = {role: operator.attrgetter(name)(block).bias is not None for name, role in self.modules}
        qkv = [has[r] for r in ("qkv", "q", "k", "v") if r in has]
        mlp = [has[r] for r in ("gate", "up", "down") if r in has]
        return {"qkv_bias": any(qkv), "o_bias": has["o"], "mlp_bias": any(mlp),
                "norm_bias": getattr(operator.attrgetter(norm)(block), "bias", None) is not None}

    # ---- computation -------------------------------------------------------------------------
    def embed(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids (b, n) -> hidden states (b, n, d) entering block 0."""
        raise NotImplementedError

    def block_context(self, model: nn.Module, hidden: torch.Tensor) -> dict[str, Any]:
        """Keyword arguments shared by the blocks of a slice (masks, position ids, rotary tables)."""
        raise NotImplementedError

    def run_block(self, block: nn.Module, j: int, hidden: torch.Tensor, ctx: dict[str, Any]) -> torch.Tensor:
        """Run block ``j`` (its index in the full model) on ``hidden``."""
        out = block(hidden, **ctx)
        return out[0] if isinstance(out, tuple) else out

    def run_blocks(self, model: nn.Module, blocks: Sequence[nn.Module], hidden: torch.Tensor,
                   indices: range) -> torch.Tensor:
        """Run the blocks ``indices`` of ``blocks`` (a client's copy or the server's) with their own context."""
        if len(indices) == 0:
            return hidden
        ctx = self.block_context(model, hidden)
        for j in indices:
            hidden = self.run_block(blocks[j], j, hidden, ctx)
        return hidden

    def head(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states after the last block -> logits (b, n, V)."""
        raise NotImplementedError

    @staticmethod
    def positions(hidden: torch.Tensor) -> torch.Tensor:
        """Position ids 0..n-1 as a (1, n) tensor on ``hidden``'s device."""
        return torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)


def _has_path(obj: Any, path: str) -> bool:
    try:
        operator.attrgetter(path)(obj)
    except AttributeError:
        return False
    return True


@functools.lru_cache(maxsize=8)
def _mask_params(fn: Any) -> frozenset[str]:
    return frozenset(inspect.signature(fn).parameters)


def causal_mask(fn: Any, config: Any, hidden: torch.Tensor, position_ids: torch.Tensor) -> Any:
    """Call a ``transformers.masking_utils`` mask builder (``create_causal_mask``, ...) for a slice of blocks
    without padding or cache, across transformers releases (the cache arguments changed names)."""
    params = _mask_params(fn)
    if "cache_position" in params:  # releases that still take cache_position
        extra = {n: None for n in ("past_key_values", "cache") if n in params}
        return fn(config, hidden, None, cache_position=position_ids[0], position_ids=position_ids, **extra)
    return fn(config, hidden, None, None, position_ids=position_ids)

"""GPT-2: learned absolute positions, fused q/k/v Conv1D, GELU MLP, LayerNorm, tied head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.masking_utils import create_causal_mask

from fedsllm_env.profile import GPT2_MODULES, ModelShape
from fedsllm_env.splitfed.backbones.base import BackboneAdapter, causal_mask

__all__ = ["GPT2Adapter"]


class GPT2Adapter(BackboneAdapter):
    """``GPT2LMHeadModel``: ``transformer.{wte, wpe, drop, h, ln_f}`` and ``lm_head``."""

    family = "GPT-2"
    blocks_path = "transformer.h"
    modules = GPT2_MODULES
    fan_in_fan_out = True
    required = ("transformer.wte", "transformer.wpe", "transformer.drop", "transformer.ln_f", "lm_head")

    def max_positions(self) -> int:
        return int(self.config.n_positions)

    def shape(self, model: nn.Module) -> ModelShape:
        return ModelShape.from_hf_config(self.config)

    def embed(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        tr = model.transformer
        return tr.drop(tr.wte(input_ids) + tr.wpe(self.positions(input_ids)))

    def block_context(self, model: nn.Module, hidden: torch.Tensor) -> dict[str, Any]:
        pos = self.positions(hidden)
        mask = causal_mask(create_causal_mask, self.config, hidden, pos)
        return {"attention_mask": mask, "position_ids": pos}

    def head(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return model.lm_head(model.transformer.ln_f(hidden))

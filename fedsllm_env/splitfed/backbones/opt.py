"""OPT: learned positions (offset 2), separate q/k/v/out projections, ReLU MLP (fc1, fc2), LayerNorm before
or after each sub-layer, optional embedding projections (project_in / project_out)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.masking_utils import create_causal_mask

from fedsllm_env.profile import ModelShape
from fedsllm_env.splitfed.backbones.base import BackboneAdapter, causal_mask

__all__ = ["OPTAdapter"]


class OPTAdapter(BackboneAdapter):
    """``OPTForCausalLM``: ``model.decoder.{embed_tokens, embed_positions, project_in, layers,
    final_layer_norm, project_out}`` and ``lm_head``."""

    family = "OPT"
    blocks_path = "model.decoder.layers"
    modules = (("self_attn.q_proj", "q"), ("self_attn.k_proj", "k"), ("self_attn.v_proj", "v"),
               ("self_attn.out_proj", "o"), ("fc1", "up"), ("fc2", "down"))
    required = ("model.decoder.embed_tokens", "model.decoder.embed_positions", "lm_head")

    def shape(self, model: nn.Module) -> ModelShape:
        c = self.config
        return ModelShape(
            n_layer=int(c.num_hidden_layers), n_embd=int(c.hidden_size), n_head=int(c.num_attention_heads),
            vocab_size=int(c.vocab_size), n_inner=int(c.ffn_dim), n_positions=int(c.max_position_embeddings),
            position_rows=int(model.model.decoder.embed_positions.num_embeddings),
            tied_embeddings=bool(getattr(c, "tie_word_embeddings", True)), embed_dim=int(c.word_embed_proj_dim),
            modules=self.modules, **self.bias_flags(model, "self_attn_layer_norm"))

    def embed(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        dec = model.model.decoder
        hidden = dec.embed_tokens(input_ids)
        if dec.project_in is not None:
            hidden = dec.project_in(hidden)
        pos = self.positions(input_ids)
        return hidden + dec.embed_positions(None, 0, position_ids=pos)

    def block_context(self, model: nn.Module, hidden: torch.Tensor) -> dict[str, Any]:
        pos = self.positions(hidden)
        mask = causal_mask(create_causal_mask, self.config, hidden, pos)
        return {"attention_mask": mask, "position_ids": pos}

    def head(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        dec = model.model.decoder
        if dec.final_layer_norm is not None:
            hidden = dec.final_layer_norm(hidden)
        if dec.project_out is not None:
            hidden = dec.project_out(hidden)
        return model.lm_head(hidden)

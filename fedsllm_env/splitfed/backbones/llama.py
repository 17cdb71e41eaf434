"""LLaMA-style decoders (LLaMA, SmolLM, Qwen2, Mistral): rotary positions, grouped-query attention, gated
SiLU MLP, RMSNorm, tied or untied head; per-layer sliding-window masks where the config asks for them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

from fedsllm_env.profile import ModelShape
from fedsllm_env.splitfed.backbones.base import BackboneAdapter, causal_mask

__all__ = ["LlamaAdapter"]


class LlamaAdapter(BackboneAdapter):
    """``*ForCausalLM`` with ``model.{embed_tokens, layers, norm, rotary_emb}`` and ``lm_head``."""

    family = "LLaMA-style"
    blocks_path = "model.layers"
    modules = (("self_attn.q_proj", "q"), ("self_attn.k_proj", "k"), ("self_attn.v_proj", "v"),
               ("self_attn.o_proj", "o"), ("mlp.gate_proj", "gate"), ("mlp.up_proj", "up"),
               ("mlp.down_proj", "down"))
    required = ("model.embed_tokens", "model.norm", "model.rotary_emb", "lm_head")

    def shape(self, model: nn.Module) -> ModelShape:
        c = self.config
        heads = int(c.num_attention_heads)
        return ModelShape(
            n_layer=int(c.num_hidden_layers), n_embd=int(c.hidden_size), n_head=heads,
            vocab_size=int(c.vocab_size), n_inner=int(c.intermediate_size),
            n_positions=int(c.max_position_embeddings),
            n_kv_head=int(getattr(c, "num_key_value_heads", None) or heads),
            head_dim=int(getattr(c, "head_dim", None) or c.hidden_size // heads), gated_mlp=True,
            position_rows=0, tied_embeddings=bool(getattr(c, "tie_word_embeddings", False)),
            modules=self.modules, **self.bias_flags(model, "input_layernorm"))

    def embed(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        return model.model.embed_tokens(input_ids)

    def _layer_type(self, j: int) -> str:
        types = getattr(self.config, "layer_types", None)
        if types is not None:
            return str(types[j])
        return "sliding_attention" if getattr(self.config, "sliding_window", None) else "full_attention"

    def block_context(self, model: nn.Module, hidden: torch.Tensor) -> dict[str, Any]:
        pos = self.positions(hidden)
        masks = {"full_attention": causal_mask(create_causal_mask, self.config, hidden, pos)}
        if any(self._layer_type(j) == "sliding_attention" for j in range(int(self.config.num_hidden_layers))):
            masks["sliding_attention"] = causal_mask(create_sliding_window_causal_mask, self.config, hidden, pos)
        return {"masks": masks, "position_ids": pos, "position_embeddings": model.model.rotary_emb(hidden, pos)}

    def run_block(self, block: nn.Module, j: int, hidden: torch.Tensor, ctx: dict[str, Any]) -> torch.Tensor:
        out = block(hidden, attention_mask=ctx["masks"][self._layer_type(j)], position_ids=ctx["position_ids"],
                    position_embeddings=ctx["position_embeddings"])
        return out[0] if isinstance(out, tuple) else out

    def head(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return model.lm_head(model.model.norm(hidden))

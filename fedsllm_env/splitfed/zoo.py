"""Configs of random-weight models built locally (no download): tiny ones of every supported family for
tests, and named shapes for benchmarks (GPT-2 small, a ~100M LLaMA-style model, ...)."""

from __future__ import annotations

from typing import Any

from transformers import GPT2Config, LlamaConfig, MistralConfig, OPTConfig, Qwen2Config

__all__ = ["TINY_FAMILIES", "tiny_config", "BENCHMARK_SHAPES", "benchmark_config"]

TINY_FAMILIES = ("gpt2", "llama", "llama-tied", "qwen2", "mistral", "opt", "opt-proj")
"""Tiny variants covering each family's options: GQA + untied head (llama), tied head (llama-tied), q/k/v
biases (qwen2), a sliding-window mask (mistral), OPT pre-norm, OPT post-norm with embedding projections."""


def tiny_config(family: str, vocab_size: int, n_layer: int = 3, n_embd: int = 32, n_head: int = 4,
                n_positions: int = 64, pad_id: int = 0, eos_id: int = 1) -> Any:
    """A tiny transformers config of ``family`` (one of :data:`TINY_FAMILIES`); dropout 0, eager-compatible."""
    ids = dict(pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=eos_id, vocab_size=vocab_size)
    if family == "gpt2":
        return GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=n_positions,
                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    llama = dict(hidden_size=n_embd, intermediate_size=3 * n_embd // 2, num_hidden_layers=n_layer,
                 num_attention_heads=n_head, num_key_value_heads=max(1, n_head // 2),
                 max_position_embeddings=n_positions, **ids)
    if family in ("llama", "llama-tied"):
        return LlamaConfig(tie_word_embeddings=family == "llama-tied", **llama)
    if family == "qwen2":
        return Qwen2Config(tie_word_embeddings=False, **llama)
    if family == "mistral":
        return MistralConfig(sliding_window=8, tie_word_embeddings=False, **llama)
    if family in ("opt", "opt-proj"):
        proj = family == "opt-proj"
        return OPTConfig(hidden_size=n_embd, ffn_dim=2 * n_embd, num_hidden_layers=n_layer, num_attention_heads=n_head,
                         max_position_embeddings=n_positions, word_embed_proj_dim=n_embd // 2 if proj else n_embd,
                         do_layer_norm_before=not proj, dropout=0.0, attention_dropout=0.0, **ids)
    raise ValueError(f"unknown tiny family {family!r}; known: {TINY_FAMILIES}")


BENCHMARK_SHAPES: dict[str, dict[str, Any]] = {
    "tiny-gpt2": {"family": "gpt2", "n_layer": 6, "n_embd": 128, "n_head": 4, "n_positions": 256,
                  "vocab_size": 239},
    "gpt2-small": {"family": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024,
                   "vocab_size": 50257},
    "llama-100m": {"family": "llama", "n_layer": 12, "n_embd": 768, "n_head": 12, "n_kv_head": 4,
                   "n_inner": 2048, "n_positions": 2048, "vocab_size": 32000, "tied": True},
    "smollm-135m": {"family": "llama", "n_layer": 30, "n_embd": 576, "n_head": 9, "n_kv_head": 3,
                    "n_inner": 1536, "n_positions": 2048, "vocab_size": 49152, "tied": True},
    "opt-125m": {"family": "opt", "n_layer": 12, "n_embd": 768, "n_head": 12, "n_inner": 3072,
                 "n_positions": 2048, "vocab_size": 50272},
}
"""Named shapes for ``fedsllm benchmark-engine`` (random weights; the real checkpoints' dimensions)."""


def benchmark_config(name: str, pad_id: int = 0, eos_id: int = 1) -> Any:
    """The transformers config of a named benchmark shape (:data:`BENCHMARK_SHAPES`)."""
    if name not in BENCHMARK_SHAPES:
        raise ValueError(f"unknown shape {name!r}; known: {sorted(BENCHMARK_SHAPES)}")
    s = BENCHMARK_SHAPES[name]
    ids = dict(pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=eos_id, vocab_size=s["vocab_size"])
    if s["family"] == "gpt2":
        return GPT2Config(n_layer=s["n_layer"], n_embd=s["n_embd"], n_head=s["n_head"], n_positions=s["n_positions"],
                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    if s["family"] == "llama":
        return LlamaConfig(hidden_size=s["n_embd"], intermediate_size=s["n_inner"], num_hidden_layers=s["n_layer"],
                           num_attention_heads=s["n_head"], num_key_value_heads=s["n_kv_head"],
                           max_position_embeddings=s["n_positions"], tie_word_embeddings=s["tied"], **ids)
    return OPTConfig(hidden_size=s["n_embd"], ffn_dim=s["n_inner"], num_hidden_layers=s["n_layer"],
                     num_attention_heads=s["n_head"], max_position_embeddings=s["n_positions"],
                     word_embed_proj_dim=s["n_embd"], dropout=0.0, attention_dropout=0.0, **ids)

"""Backbone adapters by ``config.model_type``.

Adding an architecture family = one new file with a :class:`BackboneAdapter` subclass plus one line per
``model_type`` in :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
from typing import Any

from fedsllm_env.splitfed.backbones.base import BackboneAdapter

__all__ = ["BackboneAdapter", "REGISTRY", "adapter_for", "supported_model_types"]

REGISTRY: dict[str, str] = {
    "gpt2": "gpt2:GPT2Adapter",
    "llama": "llama:LlamaAdapter",
    "qwen2": "llama:LlamaAdapter",
    "mistral": "llama:LlamaAdapter",
    "opt": "opt:OPTAdapter",
}
"""model_type -> "module:Class" of its adapter (modules of this package, imported on first use)."""


def supported_model_types() -> list[str]:
    """The ``model_type`` values with an adapter."""
    return sorted(REGISTRY)


def adapter_for(config: Any) -> BackboneAdapter:
    """The adapter of a transformers config (by ``config.model_type``).

    Raises:
        ValueError: no adapter for this model_type (the message lists the supported ones).
    """
    model_type = getattr(config, "model_type", None)
    if model_type not in REGISTRY:
        raise ValueError(f"backbone model_type {model_type!r} is not supported; supported: "
                         f"{supported_model_types()} (add an adapter: one file in fedsllm_env/splitfed/backbones/ "
                         f"and one line in its REGISTRY)")
    module, cls = REGISTRY[model_type].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(config)

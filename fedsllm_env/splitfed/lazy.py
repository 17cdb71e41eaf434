"""A real-mode backend that builds its :class:`SplitFedEngine` at the first ``reset``, not at construction.

Scale-out runners (RLlib env runners, SB3 subprocess workers) construct envs in places where only the
spaces are needed (space inference, a driver that never steps). :class:`LazyEngine` reports the model
shape at once (:func:`backbone_shape`: from the backbone's configuration, no weights) and loads weights,
data and (on a GPU, ``model.device``) device memory only when the env is first reset, inside the process
that will train.
"""

from __future__ import annotations

from typing import Any, Callable

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import RoundOutcome

__all__ = ["backbone_shape", "LazyEngine"]


def backbone_shape(cfg: FedsLLMConfig) -> ModelShape:
    """Shape of ``cfg.model.backbone`` without building an engine or reading weights.

    The built-in tiny backbone is loaded (it is small; pre-trained once and cached). Any other backbone is
    instantiated on torch's "meta" device from its configuration (structure only, no memory) and measured
    by its family's adapter, exactly as the engine measures the real model.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from fedsllm_env.splitfed.backbones import adapter_for
    from fedsllm_env.splitfed.model import TINY_BACKBONE, load_backbone, resolve_backbone_source

    m = cfg.model
    if m.backbone == TINY_BACKBONE:
        model, _ = load_backbone(m, cfg.training.seq_len, progress=False)
        return adapter_for(model.config).shape(model)
    hf_config = AutoConfig.from_pretrained(resolve_backbone_source(m.backbone))
    adapter = adapter_for(hf_config)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(hf_config)
    return adapter.shape(skeleton)


class LazyEngine:
    """:class:`~fedsllm_env.backends.TrainingBackend` whose engine is built at the first :meth:`reset`.

    Args:
        cfg: the env's full configuration (``mode="real"``).
        build: builds the engine (default: ``SplitFedEngine(cfg)``).
        shape: the engine's model shape if known (default: :func:`backbone_shape`); checked against the
            built engine's.
    """

    def __init__(self, cfg: FedsLLMConfig, build: Callable[[], Any] | None = None,
                 shape: ModelShape | None = None) -> None:
        self.cfg = cfg
        self._build = build
        self._shape = shape if shape is not None else backbone_shape(cfg)
        self.engine: Any = None
        """The engine once built (None before the first reset)."""

    @property
    def shape(self) -> ModelShape:
        """Model shape (known before the engine is built)."""
        return self._shape

    @property
    def built(self) -> bool:
        """Whether the engine exists yet."""
        return self.engine is not None

    def _ensure(self) -> Any:
        if self.engine is None:
            if self._build is None:
                from fedsllm_env.splitfed.engine import SplitFedEngine

                engine = SplitFedEngine(self.cfg, progress=False)
            else:
                engine = self._build()
            if engine.shape != self._shape:
                raise RuntimeError(f"LazyEngine: the built engine's shape {engine.shape} differs from the declared "
                                   f"{self._shape}; the spaces were built for the declared one")
            self.engine = engine
        return self.engine

    def reset(self, seed: int) -> float:
        """Build the engine if needed, then start a fresh fine-tuning run; returns the initial val loss."""
        return self._ensure().reset(seed)

    def run_round(self, split: int, rank: int) -> RoundOutcome:
        """One round on the engine (``reset`` must have been called, as for the engine itself)."""
        if self.engine is None:
            raise RuntimeError("call reset(seed) before run_round")
        return self.engine.run_round(split, rank)

"""Real split-federated LoRA training of decoder-only LMs: GPT-2, LLaMA-style (LLaMA, SmolLM, Qwen2, Mistral)
and OPT backbones (the environment's "real" mode; families in :mod:`fedsllm_env.splitfed.backbones`).

Public entry point: :class:`SplitFedEngine` (``reset(seed)``, ``run_round(split, rank)``). The calibration
runner ``fedsllm_env.splitfed.calibrate`` (CLI: ``fedsllm calibrate``) measures E(r, c) with it.
"""

from __future__ import annotations

from fedsllm_env.errors import require_extra

require_extra("train", "real split-fed training (mode='real')", "torch", "transformers", "peft", "tokenizers")

from fedsllm_env.splitfed.engine import SplitFedEngine  # noqa: E402  (after the extra check)

__all__ = ["SplitFedEngine"]

"""fedsllm-env: a Gymnasium environment wrapping real split-federated LoRA training over wireless networks."""

from __future__ import annotations

from fedsllm_env.config import (
    ComputeConfig,
    FedsLLMConfig,
    ModelConfig,
    RewardConfig,
    TrainingConfig,
    WirelessConfig,
)
from fedsllm_env.errors import ConfigError, FedsLLMError, InfeasibleDecisionError, InvalidActionError, ResetNeeded

__version__ = "0.1.0"

__all__ = [
    "ComputeConfig",
    "FedsLLMConfig",
    "ModelConfig",
    "RewardConfig",
    "TrainingConfig",
    "WirelessConfig",
    "ConfigError",
    "FedsLLMError",
    "InfeasibleDecisionError",
    "InvalidActionError",
    "ResetNeeded",
    "__version__",
]

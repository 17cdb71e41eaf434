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
from fedsllm_env.registration import ENV_IDS, env_id, register_envs
from fedsllm_env.errors import (
    CalibrationError,
    ConfigError,
    DependencyNotInstalled,
    FedsLLMError,
    InfeasibleDecisionError,
    InvalidActionError,
    ResetNeeded,
)
from fedsllm_env.types import ChannelState, Decision, DelayBreakdown, RoundOutcome, Scenario

__version__ = "0.1.0"

__all__ = [
    "FedsLLMEnv",
    "ENV_IDS",
    "env_id",
    "Decision",
    "Scenario",
    "ChannelState",
    "DelayBreakdown",
    "RoundOutcome",
    "CalibrationError",
    "ComputeConfig",
    "FedsLLMConfig",
    "ModelConfig",
    "RewardConfig",
    "TrainingConfig",
    "WirelessConfig",
    "ConfigError",
    "DependencyNotInstalled",
    "FedsLLMError",
    "InfeasibleDecisionError",
    "InvalidActionError",
    "ResetNeeded",
    "__version__",
]


def __getattr__(name: str):
    """``FedsLLMEnv`` is imported on first use: the engine and the delay model also work without gymnasium."""
    if name == "FedsLLMEnv":
        from fedsllm_env.env import FedsLLMEnv

        return FedsLLMEnv
    raise AttributeError(f"module 'fedsllm_env' has no attribute {name!r}")


register_envs()

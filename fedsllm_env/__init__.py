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


def _register_envs() -> None:
    """Register the versioned env ids once (idempotent); nothing to register without gymnasium."""
    try:
        from gymnasium.envs.registration import register, registry
    except ImportError:
        return

    variants = {
        # id: (entry point, config overrides, nondeterministic)
        "FedsLLM-v0": ("fedsllm_env.env:FedsLLMEnv", {"mode": "real", "action_mode": "box"}),
        "FedsLLM-Discrete-v0": ("fedsllm_env.env:FedsLLMEnv", {"mode": "real", "action_mode": "multidiscrete"}),
        "FedsLLM-Hybrid-v0": ("baselines.hybrid:make_hybrid_env", {"mode": "real", "action_mode": "hybrid"}),
        "FedsLLM-Surrogate-v0": ("fedsllm_env.env:FedsLLMEnv", {"mode": "surrogate", "action_mode": "box"}),
        "FedsLLM-Surrogate-Discrete-v0": ("fedsllm_env.env:FedsLLMEnv",
                                          {"mode": "surrogate", "action_mode": "multidiscrete"}),
        "FedsLLM-Surrogate-Hybrid-v0": ("baselines.hybrid:make_hybrid_env",
                                        {"mode": "surrogate", "action_mode": "hybrid"}),
        # priority actions (fedsllm_env.priority): 2K + 4 numbers decoded by a greedy rule and deadlines
        "FedsLLM-Priority-v0": ("fedsllm_env.priority:make_priority_env", {"mode": "real", "action_mode": "box"}),
        "FedsLLM-Surrogate-Priority-v0": ("fedsllm_env.priority:make_priority_env",
                                          {"mode": "surrogate", "action_mode": "box"}),
    }
    # batched numpy versions of the surrogate ids (gym.make_vec(..., vectorization_mode="vector_entry_point"))
    vector_entry_points = {"FedsLLM-Surrogate-v0": "fedsllm_env.vector:SurrogateVectorEnv",
                           "FedsLLM-Surrogate-Discrete-v0": "fedsllm_env.vector:SurrogateVectorEnv",
                           "FedsLLM-Surrogate-Priority-v0": "fedsllm_env.vector:make_priority_vector_env"}
    for env_id, (entry_point, fixed) in variants.items():
        if env_id in registry:
            continue
        # real training on CPU is bit-reproducible for a seed (tested), so no id is nondeterministic
        register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_points.get(env_id),
                 kwargs={"config": None, "variant": fixed}, nondeterministic=False, disable_env_checker=False)


_register_envs()

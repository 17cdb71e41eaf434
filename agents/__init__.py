"""RL agents for fedsllm-env: SB3 factory, logging callbacks, atomic checkpoints, training and evaluation.

Only :mod:`fedsllm_env`'s public API (registered ids, config, ``info`` keys) is used here. The names below are
imported from their submodules on first use, so ``import agents.evaluation`` (the harness, numpy only) does not
load Stable-Baselines3 and torch; ``import agents`` still checks that the ``[agents]`` extra is installed.
"""

from __future__ import annotations

import importlib
from typing import Any

import fedsllm_env  # noqa: F401  (registers the env ids)
from fedsllm_env.errors import require_extra

require_extra("agents", "fedsllm-env's RL agents", "stable_baselines3", "sb3_contrib", "yaml", "tqdm", load=False)

_SOURCES = {
    "FedsLLMInfoCallback": "agents.callbacks",
    "AtomicCheckpointCallback": "agents.checkpoint", "atomic_save": "agents.checkpoint",
    "detect_algo": "agents.checkpoint", "latest_checkpoint": "agents.checkpoint", "load_agent": "agents.checkpoint",
    "resume": "agents.checkpoint",
    "EpisodeRecord": "agents.evaluation", "Policy": "agents.evaluation", "comparison_rows": "agents.evaluation",
    "evaluate_policy_on_seeds": "agents.evaluation", "markdown_table": "agents.evaluation",
    "summarize": "agents.evaluation",
    "ALGOS": "agents.factory", "check_compatible": "agents.factory", "default_env_id": "agents.factory",
    "load_hyperparams": "agents.factory", "make_agent": "agents.factory",
    "TrainResult": "agents.training", "train_agent": "agents.training",
}
"""Public name -> the submodule that defines it."""

__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    """``agents.<name>`` of :data:`__all__`: imported from its submodule on first use."""
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))

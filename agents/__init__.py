"""RL agents for fedsllm-env: SB3 factory, logging callbacks, atomic checkpoints, training and evaluation.

Only :mod:`fedsllm_env`'s public API (registered ids, config, ``info`` keys) is used here.
"""
# ruff: noqa: E402  (the extra check runs before the SB3 imports)

from __future__ import annotations

import fedsllm_env  # noqa: F401  (registers the env ids)
from fedsllm_env.errors import require_extra

require_extra("agents", "fedsllm-env's RL agents", "stable_baselines3", "sb3_contrib", "yaml", "tqdm")

from agents.callbacks import FedsLLMInfoCallback
from agents.checkpoint import AtomicCheckpointCallback, atomic_save, detect_algo, latest_checkpoint, load_agent, resume
from agents.evaluation import (
    EpisodeRecord,
    Policy,
    comparison_rows,
    evaluate_policy_on_seeds,
    markdown_table,
    summarize,
)
from agents.factory import ALGOS, check_compatible, default_env_id, load_hyperparams, make_agent
from agents.training import TrainResult, train_agent

__all__ = [
    "ALGOS",
    "AtomicCheckpointCallback",
    "EpisodeRecord",
    "FedsLLMInfoCallback",
    "Policy",
    "TrainResult",
    "atomic_save",
    "check_compatible",
    "comparison_rows",
    "default_env_id",
    "detect_algo",
    "evaluate_policy_on_seeds",
    "latest_checkpoint",
    "load_agent",
    "load_hyperparams",
    "make_agent",
    "markdown_table",
    "resume",
    "summarize",
    "train_agent",
]

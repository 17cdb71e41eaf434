"""Batched surrogate environment: B FedsLLM surrogate envs stepped together in numpy (a Gymnasium VectorEnv).

``gym.make_vec("FedsLLM-Surrogate-v0", num_envs=B, vectorization_mode="vector_entry_point")``; see
:mod:`fedsllm_env.vector.env`.
"""

from __future__ import annotations

from fedsllm_env.vector.env import StepBatch, SurrogateVectorEnv, make_priority_vector_env

__all__ = ["SurrogateVectorEnv", "StepBatch", "make_priority_vector_env"]

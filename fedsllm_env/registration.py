"""The versioned env ids, tables keyed by (mode, action_mode), and their Gymnasium registration.

:data:`ENV_IDS` are the paper's model (one cut and one rank for every client); :data:`HETERO_IDS` the same modes
with a cut and a rank per client (``heterogeneous=True``).

Every id's entry point is :class:`fedsllm_env.env.FedsLLMEnv`; the id fixes ``mode`` and
``action_mode`` through the ``variant`` keyword. The hybrid ids need an allocator, which the env
looks up by name (:mod:`fedsllm_env.codecs.hybrid`) unless ``gym.make(..., allocator=...)`` passes one.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ENV_IDS", "HETERO_IDS", "ENTRY_POINT", "PRIORITY_IDS", "HETERO_PRIORITY_IDS", "VECTOR_ENTRY_POINTS",
           "env_id", "variant_of", "sibling_id",
           "is_hetero_id", "priority_id_of", "id_in_mode", "ANYK_IDS",
           "register_envs"]

Mode = Literal["real", "surrogate"]
ActionMode = Literal["box", "multidiscrete", "hybrid"]

ENV_IDS: dict[tuple[str, str], str] = {
    ("real", "box"): "FedsLLM-v0",
    ("real", "multidiscrete"): "FedsLLM-Discrete-v0",
    ("real", "hybrid"): "FedsLLM-Hybrid-v0",
    ("surrogate", "box"): "FedsLLM-Surrogate-v0",
    ("surrogate", "multidiscrete"): "FedsLLM-Surrogate-Discrete-v0",
    ("surrogate", "hybrid"): "FedsLLM-Surrogate-Hybrid-v0",
}
"""(mode, action_mode) -> registered id."""

HETERO_IDS: dict[tuple[str, str], str] = {
    ("real", "box"): "FedsLLM-Hetero-v0",
    ("real", "multidiscrete"): "FedsLLM-Hetero-Discrete-v0",
    ("real", "hybrid"): "FedsLLM-Hetero-Hybrid-v0",
    ("surrogate", "box"): "FedsLLM-Surrogate-Hetero-v0",
    ("surrogate", "multidiscrete"): "FedsLLM-Surrogate-Hetero-Discrete-v0",
    ("surrogate", "hybrid"): "FedsLLM-Surrogate-Hetero-Hybrid-v0",
}
"""(mode, action_mode) -> id of the heterogeneous variant (``heterogeneous=True``: a cut and a rank per client)."""

ENTRY_POINT = "fedsllm_env.env:FedsLLMEnv"
"""Entry point of every id of :data:`ENV_IDS`."""

PRIORITY_IDS: dict[str, str] = {"real": "FedsLLM-Priority-v0", "surrogate": "FedsLLM-Surrogate-Priority-v0"}
"""mode -> id of the priority actions (:mod:`fedsllm_env.priority`, a wrapper of the Box env: its siblings are
the Box ids)."""

HETERO_PRIORITY_IDS: dict[str, str] = {"real": "FedsLLM-Hetero-Priority-v0",
                                       "surrogate": "FedsLLM-Surrogate-Hetero-Priority-v0"}
"""mode -> id of the priority actions with a cut and a rank per client (siblings: the heterogeneous Box ids)."""

ANYK_IDS: dict[bool, str] = {False: "FedsLLM-Surrogate-AnyK-v0", True: "FedsLLM-Surrogate-Hetero-AnyK-v0"}
"""heterogeneous -> id of the client-set layout (:mod:`fedsllm_env.client_set`: surrogate priority actions padded
per client, K drawn per episode; for K-invariant policies)."""

VECTOR_ENTRY_POINTS: dict[str, str] = {
    "FedsLLM-Surrogate-v0": "fedsllm_env.vector:SurrogateVectorEnv",
    "FedsLLM-Surrogate-Discrete-v0": "fedsllm_env.vector:SurrogateVectorEnv",
    "FedsLLM-Surrogate-Priority-v0": "fedsllm_env.vector:make_priority_vector_env",
    "FedsLLM-Surrogate-Hetero-v0": "fedsllm_env.vector:SurrogateVectorEnv",
    "FedsLLM-Surrogate-Hetero-Discrete-v0": "fedsllm_env.vector:SurrogateVectorEnv",
    "FedsLLM-Surrogate-Hetero-Priority-v0": "fedsllm_env.vector:make_priority_vector_env",
}
"""Ids with a batched numpy version (``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``)."""


def env_id(mode: str, action_mode: str) -> str:
    """The registered id of (mode, action_mode); ValueError naming the valid pairs otherwise."""
    try:
        return ENV_IDS[(mode, action_mode)]
    except KeyError:
        raise ValueError(f"no env id for mode={mode!r}, action_mode={action_mode!r}; "
                         f"valid pairs: {sorted(ENV_IDS)}") from None


def variant_of(env_id_: str) -> tuple[str, str]:
    """(mode, action_mode) of a registered id; ValueError for an unknown id."""
    for key, value in ENV_IDS.items():
        if value == env_id_:
            return key
    for key, value in HETERO_IDS.items():
        if value == env_id_:
            return key
    for mode, value in (*PRIORITY_IDS.items(), *HETERO_PRIORITY_IDS.items()):
        if value == env_id_:
            return mode, "box"
    raise ValueError(f"{env_id_!r} is not a FedsLLM id; known: {sorted(ENV_IDS.values())}")


def sibling_id(env_id_: str | None, action_mode: str, default_mode: str = "surrogate") -> str:
    """The id with the same mode as ``env_id_`` (``default_mode`` for None or a foreign id) and another
    ``action_mode``, e.g. ``sibling_id("FedsLLM-v0", "multidiscrete") == "FedsLLM-Discrete-v0"``."""
    mode = default_mode
    if env_id_ is not None and (env_id_ in HETERO_IDS.values() or env_id_ in HETERO_PRIORITY_IDS.values()):
        mode = variant_of(env_id_)[0]
        if (mode, action_mode) not in HETERO_IDS:
            raise ValueError(f"no heterogeneous id for action_mode={action_mode!r}; valid: {sorted(HETERO_IDS)}")
        return HETERO_IDS[(mode, action_mode)]
    if env_id_ is not None and (env_id_ in ENV_IDS.values() or env_id_ in PRIORITY_IDS.values()):
        mode = variant_of(env_id_)[0]
    return env_id(mode, action_mode)


def is_hetero_id(env_id_: str | None) -> bool:
    """Whether ``env_id_`` is one of the heterogeneous ids (a cut and a rank per client)."""
    return env_id_ is not None and (env_id_ in HETERO_IDS.values() or env_id_ in HETERO_PRIORITY_IDS.values())


def priority_id_of(env_id_: str | None, default_mode: str = "surrogate") -> str:
    """The priority id with the mode of ``env_id_`` (``default_mode`` for None or a foreign id), heterogeneous
    when ``env_id_`` is."""
    mode = default_mode
    if env_id_ is not None and (env_id_ in ENV_IDS.values() or env_id_ in PRIORITY_IDS.values()
                                or is_hetero_id(env_id_)):
        mode = variant_of(env_id_)[0]
    return (HETERO_PRIORITY_IDS if is_hetero_id(env_id_) else PRIORITY_IDS)[mode]


def id_in_mode(env_id_: str, mode: str) -> str:
    """The id of ``mode`` ("real" or "surrogate") with the same action kind (and heterogeneity) as ``env_id_``."""
    if env_id_ in PRIORITY_IDS.values() or env_id_ in HETERO_PRIORITY_IDS.values():
        return (HETERO_PRIORITY_IDS if is_hetero_id(env_id_) else PRIORITY_IDS)[mode]
    return (HETERO_IDS if is_hetero_id(env_id_) else ENV_IDS)[(mode, variant_of(env_id_)[1])]


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` once (idempotent); nothing to register without gymnasium."""
    try:
        from gymnasium.envs.registration import register, registry
    except ImportError:
        return

    for (mode, action_mode), id_ in ENV_IDS.items():
        if id_ in registry:
            continue
        # real training on CPU is bit-reproducible for a seed (tested), so no id is nondeterministic
        register(id=id_, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINTS.get(id_),
                 kwargs={"config": None, "variant": {"mode": mode, "action_mode": action_mode}},
                 nondeterministic=False, disable_env_checker=False)
    for (mode, action_mode), id_ in HETERO_IDS.items():
        if id_ not in registry:
            register(id=id_, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINTS.get(id_),
                     kwargs={"config": None, "variant": {"mode": mode, "action_mode": action_mode,
                                                          "heterogeneous": True}},
                     nondeterministic=False, disable_env_checker=False)
    for mode, id_ in HETERO_PRIORITY_IDS.items():
        if id_ not in registry:
            register(id=id_, entry_point="fedsllm_env.priority:make_priority_env",
                     vector_entry_point=VECTOR_ENTRY_POINTS.get(id_),
                     kwargs={"config": None, "variant": {"mode": mode, "action_mode": "box", "heterogeneous": True}},
                     nondeterministic=False, disable_env_checker=False)
    for mode, id_ in PRIORITY_IDS.items():
        if id_ not in registry:
            register(id=id_, entry_point="fedsllm_env.priority:make_priority_env",
                     vector_entry_point=VECTOR_ENTRY_POINTS.get(id_),
                     kwargs={"config": None, "variant": {"mode": mode, "action_mode": "box"}},
                     nondeterministic=False, disable_env_checker=False)
    for hetero, id_ in ANYK_IDS.items():
        if id_ not in registry:
            register(id=id_, entry_point="fedsllm_env.client_set:make_client_set_env",
                     kwargs={"config": None, "variant": {"heterogeneous": hetero}},
                     nondeterministic=False, disable_env_checker=False)

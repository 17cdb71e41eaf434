"""Helpers shared by the scripts: run names, config overrides, JSON outputs, policy resolution.

Nothing here seeds global RNGs; each script does that once with :func:`train_scripts.seeding.seed_everything`.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import yaml

import fedsllm_env
from agents.evaluation import Policy, PolicyFactory  # the harness: numpy only (no SB3, no torch)
from fedsllm_env.atomic import atomic_write_json
from fedsllm_env.config import merge_overrides
from fedsllm_env.errors import MissingFileError, UsageError
from fedsllm_env.presets import preset_overrides
from fedsllm_env.registration import env_id as _env_id
from train_scripts._checks import check_baselines

BOX_ENV_ID = _env_id("surrogate", "box")
"""The id baselines act in by default (``agents.factory.BOX_ENV_ID``; Stable-Baselines3 is imported only where an
agent is loaded, so the commands' ``--help`` stays light)."""

__all__ = [
    "run_name",
    "env_overrides",
    "write_json",
    "read_json_or_yaml",
    "save_run_config",
    "baseline_names",
    "baseline_factory",
    "resolve_policy",
    "ResolvedPolicy",
    "check_agent_fits",
]


def run_name(env_id: str, algo: str, seed: int) -> str:
    """``{env_id}__{algo}__{seed}__{unix time}`` (cleanRL's convention)."""
    return f"{env_id}__{algo}__{seed}__{int(time.time())}"


def env_overrides(config_file: str = "", calibration_path: str = "", max_rounds: int = 0,
                  base: dict[str, Any] | None = None, preset: str = "") -> dict[str, Any]:
    """Nested env config overrides from a scenario preset, a JSON/YAML file and the common CLI fields.

    Args:
        config_file: path of a JSON or YAML file with nested overrides ("" = none).
        calibration_path: calibration JSON ("" = keep the file's / the shipped table).
        max_rounds: round cap per episode (0 = keep).
        base: overrides applied first (e.g. those a training run was made with).
        preset: name of a scenario preset (``fedsllm_env.presets.PRESETS``), applied over ``base`` and under
            the file and the other fields ("" = none).

    Returns:
        The merged overrides dict (validated by building a FedsLLMConfig).
    """
    loaded = load_overrides_file(config_file, flag="config file")
    out = merge_overrides(base, preset_overrides(preset) if preset else None, loaded,
                          {"calibration_path": calibration_path} if calibration_path else None,
                          {"training": {"max_rounds": int(max_rounds)}} if max_rounds else None)
    fedsllm_env.FedsLLMConfig.from_dict(out)  # fail early on typos / bad values
    return out


class _DuplicateKey(ValueError):
    pass


def _unique_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping key given twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(f"key {key!r} appears twice in one mapping (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_overrides_file(path: str, flag: str = "--config") -> dict[str, Any]:
    """Nested config overrides from the JSON or YAML file ``path`` given as ``flag`` ("" = none); a missing file
    or one that does not hold a mapping is a one-line error naming the flag."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{flag} {p} does not exist")
    data = read_json_or_yaml(p)
    if not isinstance(data, dict):
        raise UsageError(f"{flag} {p} must hold a mapping of overrides, got {type(data).__name__}")
    return data


def read_json_or_yaml(path: str | Path) -> Any:
    """Parse a JSON file (YAML for ``.yml``/``.yaml``); a UsageError naming the file if it is not readable or
    gives a key twice (the parsers would keep the last one without a word)."""
    path = Path(path)
    kind = "YAML" if path.suffix in (".yml", ".yaml") else "JSON"
    try:
        text = path.read_text(encoding="utf-8")
        if kind == "YAML":
            return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        return json.loads(text, object_pairs_hook=_unique_json_keys)
    except _DuplicateKey as e:
        raise UsageError(f"{path}: {e}; keep one") from None
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        raise UsageError(f"{path} is not valid {kind}: {e}") from e


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically; returns the path."""
    atomic_write_json(path, data)
    return Path(path)


def _versions() -> dict[str, str]:
    import stable_baselines3
    import torch

    import sb3_contrib

    return {"python": platform.python_version(), "fedsllm_env": fedsllm_env.__version__,
            "stable_baselines3": stable_baselines3.__version__, "sb3_contrib": sb3_contrib.__version__,
            "torch": torch.__version__, "gymnasium": gym.__version__, "platform": platform.platform()}


def save_run_config(run_dir: str | Path, args: Any, env_config: dict[str, Any] | None = None,
                    **extra: Any) -> Path:
    """Save ``config.json`` beside the results: the Args, the env overrides, the full resolved config.

    Args:
        run_dir: the run folder.
        args: the script's Args dataclass.
        env_config: env config overrides used.
        **extra: more JSON-serialisable entries (e.g. hyperparameters).

    Returns:
        The path of config.json.
    """
    data: dict[str, Any] = {
        "script": Path(sys.argv[0]).name if sys.argv else "",
        "argv": list(sys.argv),
        "args": dataclasses.asdict(args),
        "versions": _versions(),
    }
    if env_config is not None:
        data["env_overrides"] = env_config
        data["env_config"] = fedsllm_env.FedsLLMConfig.from_dict(env_config).to_dict()
    data.update(extra)
    return write_json(Path(run_dir) / "config.json", data)


def baseline_names() -> tuple[str, ...]:
    """Names of the baseline policies of every env (``baselines.policy.BASELINE_NAMES``, the default lists)."""
    try:
        from baselines.policy import BASELINE_NAMES
    except ImportError as e:
        raise ImportError(f"baseline policies need baselines.policy ({e})") from e
    return tuple(BASELINE_NAMES)


def hetero_baseline_names() -> tuple[str, ...]:
    """Names of the baselines of the heterogeneous envs only (``baselines.policy.HETERO_BASELINE_NAMES``)."""
    try:
        from baselines.policy import HETERO_BASELINE_NAMES
    except ImportError as e:
        raise ImportError(f"baseline policies need baselines.policy ({e})") from e
    return tuple(HETERO_BASELINE_NAMES)


PRIORITY_TEACHERS = ("search", "priority_heuristic")
"""``--bc-teacher`` values that exist only for the Priority ids (besides the baselines)."""


def check_bc_teacher(name: str, env_id: str, flag: str = "--bc-teacher") -> None:
    """``name`` can teach an agent acting in ``env_id``: ``search`` / ``priority_heuristic`` act with priority
    actions (the Priority ids only), a baseline acts with the Box / Discrete ids' actions (not the Priority ids).

    Raises:
        UsageError: naming the flag, the env id and the teachers that fit it.
    """
    from fedsllm_env.registration import ANYK_IDS, HETERO_PRIORITY_IDS, PRIORITY_IDS

    if env_id in ANYK_IDS.values():
        if name != "priority_heuristic":
            raise UsageError(f"{flag} {name}: on {env_id} the teacher is priority_heuristic (the K-client "
                             f"heuristic of each episode's K)")
    elif env_id in PRIORITY_IDS.values() or env_id in HETERO_PRIORITY_IDS.values():
        # the search teacher prices one shared (cut, rank); per client only the fixed heuristic teaches
        allowed = PRIORITY_TEACHERS if env_id in PRIORITY_IDS.values() else ("priority_heuristic",)
        if name not in allowed:
            raise UsageError(f"{flag} {name}: on {env_id} the teacher is one of {list(allowed)} "
                             f"(baselines act in the Box ids)")
    elif name in PRIORITY_TEACHERS:
        raise UsageError(f"{flag} {name} acts with priority actions: it teaches the Priority ids "
                         f"{sorted(PRIORITY_IDS.values()) + sorted(HETERO_PRIORITY_IDS.values())}, not {env_id}")
    else:
        check_baselines([name], flag, env_id)


def bc_teacher_arg(name: str) -> str | PolicyFactory | None:
    """The ``bc_teacher`` value ``agents.training.train_agent`` takes for ``--bc-teacher name``: None for "",
    "search" as is, otherwise the baseline's policy factory."""
    if not name:
        return None
    return name if name == "search" else baseline_factory(name)


def baseline_factory(name: str) -> PolicyFactory:
    """A factory binding the baseline ``name`` to the env it will act in (``priority_heuristic``: the fixed
    action of the priority codec, :class:`fedsllm_env.priority.PriorityHeuristic`, for the Priority ids)."""
    if name == "priority_heuristic":
        from fedsllm_env.priority import PriorityHeuristic

        def heuristic(env: gym.Env) -> Policy:
            from fedsllm_env.client_set import ClientSetEnv, SetTeacher

            if isinstance(env.unwrapped, ClientSetEnv):  # the AnyK ids: the heuristic of the episode's K
                return SetTeacher(env, PriorityHeuristic)
            return PriorityHeuristic(env)

        return heuristic
    from baselines.policy import KNOWN_BASELINE_NAMES, make_baseline_policy

    if name not in KNOWN_BASELINE_NAMES:
        raise UsageError(f"unknown baseline {name!r}; choose one of {list(KNOWN_BASELINE_NAMES)}")

    def build(env: gym.Env) -> Policy:
        return make_baseline_policy(name, env)

    return build


@dataclasses.dataclass
class ResolvedPolicy:
    """A policy named on the command line, ready for the evaluation harness."""

    name: str
    """Display name."""
    policy: Policy | Callable[[gym.Env], Policy]
    """The policy or a factory bound per env."""
    env_id: str
    """Env id it acts in."""
    env_overrides: dict[str, Any]
    """Env config overrides it was trained with ({} for baselines)."""
    algo: str | None
    """Algorithm of a trained agent ("rllib" for an RLlib run, None for baselines)."""


def resolve_policy(spec: str, algo: str = "", env_id: str = "") -> ResolvedPolicy:
    """Resolve a baseline name, a saved agent ``.zip`` or a training run folder.

    Args:
        spec: baseline name (``priority_heuristic`` too: it acts in the Priority ids), path of a model zip, or a
            run folder holding ``model.zip`` or an RLlib
            ``rllib_checkpoint/`` (and ``config.json`` written by train.py, whose env id and env overrides
            are reused).
        algo: algorithm of the zip ("" = detect).
        env_id: env id to act in ("" = the run's, else the algorithm's default; baselines: Box id).

    Returns:
        The resolved policy.
    """
    path = Path(spec)
    if not path.exists():
        try:
            names = baseline_names() + hetero_baseline_names()
        except ImportError:
            names = ()
        from fedsllm_env.registration import HETERO_PRIORITY_IDS, PRIORITY_IDS

        priority_ids = sorted(PRIORITY_IDS.values()) + sorted(HETERO_PRIORITY_IDS.values())
        if spec == "priority_heuristic":  # acts with priority actions: the Priority ids only
            own_id = env_id or PRIORITY_IDS["surrogate"]
            if own_id not in priority_ids:
                raise UsageError(f"priority_heuristic acts with priority actions, in {priority_ids} only, not in "
                                 f"--env-id {own_id}; drop --env-id or evaluate it in its own command")
            return ResolvedPolicy(spec, baseline_factory(spec), own_id, {}, None)
        if spec in names:
            check_baselines([spec], "--policies", env_id or BOX_ENV_ID)
            if env_id in priority_ids:
                raise UsageError(f"baseline {spec} acts in the Box / Discrete ids, not in the Priority id --env-id "
                                 f"{env_id} (there only priority_heuristic and agents trained on it play)")
            return ResolvedPolicy(spec, baseline_factory(spec), env_id or BOX_ENV_ID, {}, None)
        raise UsageError(f"{spec!r} is neither an existing model zip / run folder nor a baseline name "
                         f"{[*names, 'priority_heuristic']}")
    run_cfg: dict[str, Any] = {}
    if path.is_dir():
        cfg_path = path / "config.json"
        if cfg_path.is_file():
            run_cfg = read_json_or_yaml(cfg_path)
            if not isinstance(run_cfg, dict):
                raise UsageError(f"{cfg_path} must hold a JSON object, got {type(run_cfg).__name__}")
        if (path / "rllib_checkpoint").is_dir():  # a `train --framework rllib` run
            from agents.rllib import CLIENTS_IDS, RLlibClientsPolicy, RLlibPolicy

            if run_cfg.get("env_id") in CLIENTS_IDS.values():  # clients as agents: one shared policy, any K
                from fedsllm_env.registration import HETERO_PRIORITY_IDS, PRIORITY_IDS

                hetero = run_cfg["env_id"] == CLIENTS_IDS[True]
                return ResolvedPolicy(f"rllib clients {run_cfg.get('algo', 'ppo')} ({path.name})",
                                      RLlibClientsPolicy.from_checkpoint(path / "rllib_checkpoint", hetero),
                                      env_id or (HETERO_PRIORITY_IDS if hetero else PRIORITY_IDS)["surrogate"],
                                      dict(run_cfg.get("env_overrides", {})), "rllib")

            return ResolvedPolicy(f"rllib {run_cfg.get('algo', 'ppo')} ({path.name})",
                                  RLlibPolicy.from_checkpoint(path / "rllib_checkpoint"),
                                  env_id or run_cfg.get("env_id") or BOX_ENV_ID,
                                  dict(run_cfg.get("env_overrides", {})), "rllib")
        path = path / "model.zip"
        if not path.is_file():
            raise MissingFileError(f"run folder {spec} has no model.zip")
    from agents.checkpoint import detect_algo, load_agent
    from agents.factory import ALGOS, default_env_id

    algo = algo or run_cfg.get("algo") or detect_algo(path)
    if algo not in ALGOS:
        raise UsageError(f"unknown algorithm {algo!r}; choose one of {sorted(ALGOS)}")
    env_id = env_id or run_cfg.get("env_id") or default_env_id(algo)
    model = load_agent(path, algo=algo)
    name = f"{algo} ({path.parent.name})" if path.name == "model.zip" else f"{algo} ({path.stem})"
    from agents.set_policy import ClientSetAgent, is_client_set_agent

    if is_client_set_agent(model):  # K-invariant: acts in the priority id of its kind, at any K
        from fedsllm_env.registration import ANYK_IDS, HETERO_PRIORITY_IDS, PRIORITY_IDS

        agent = ClientSetAgent(model)
        ids = HETERO_PRIORITY_IDS if agent.heterogeneous else PRIORITY_IDS
        if env_id in ANYK_IDS.values():
            env_id = ids["surrogate"]
        elif env_id not in ids.values():
            raise UsageError(f"{spec} is a client-set agent: it acts in {sorted(ids.values())}, not {env_id}")
        return ResolvedPolicy(name, agent, env_id, dict(run_cfg.get("env_overrides", {})), algo)
    return ResolvedPolicy(name, model, env_id, dict(run_cfg.get("env_overrides", {})), algo)


def check_agent_fits(res: ResolvedPolicy, overrides: dict[str, Any], flag: str, spec: str, env_id: str = "",
                     hint: str = "evaluate it with the env config it was trained with (drop --preset / --config, or "
                                 "keep its clients and subchannels)") -> None:
    """UsageError naming ``flag``, the agent's path ``spec``, its K and the env's K when a trained (fixed-K) agent's
    spaces do not fit the env it is about to act in; checked on the id's surrogate twin (same spaces, no engine
    built), so call it before any episode is played or anything is written. Baselines always fit.

    Args:
        res: the resolved policy.
        overrides: the env config overrides it will act with.
        flag: the command-line flag that named it, for the message (e.g. ``--policies``).
        spec: the path (or name) given on the command line.
        env_id: the id it will act in ("" = ``res.env_id``).
        hint: what to do about a misfit, at the end of the message.
    """
    if not hasattr(res.policy, "observation_space"):
        return
    from agents.evaluation import check_policy_fits
    from fedsllm_env.config import FedsLLMConfig
    from fedsllm_env.errors import ConfigError

    env_id = env_id or res.env_id
    variant = dict(gym.spec(env_id).kwargs.get("variant") or {}, mode="surrogate")
    env = gym.make(env_id, config=overrides, variant=variant)
    try:
        trained = FedsLLMConfig.from_dict(res.env_overrides) if res.env_overrides else None
    except (ConfigError, TypeError):
        trained = None  # K is then read from the agent's spaces
    try:
        check_policy_fits(res.policy, env, res.name, trained, hint=hint)
    except ConfigError as e:
        raise UsageError(f"{flag} {spec}: {e}") from None
    finally:
        env.close()

"""Argument checks shared by the commands: each raises a :class:`~fedsllm_env.errors.UsageError` (or
``MissingFileError`` / ``ConfigError`` / ``CalibrationError``) naming the flag, before a command
creates any file or folder.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Iterable

import gymnasium as gym

from fedsllm_env.calibration import load_calibration
from fedsllm_env.config import FedsLLMConfig, check_num_envs
from fedsllm_env.errors import MissingFileError, UsageError

__all__ = ["at_least", "non_empty", "parse_hyperparams", "check_env_id", "check_agent", "check_env_config",
           "check_baselines", "check_n_envs", "new_output_dir", "ACTION_MODES"]

ACTION_MODES: dict[str, tuple[str, ...]] = {
    "ppo": ("box", "multidiscrete", "hybrid"),
    "a2c": ("box", "multidiscrete", "hybrid"),
    "sac": ("box",),
    "td3": ("box",),
    "maskable_ppo": ("multidiscrete", "hybrid"),
}
"""Action modes of the FedsLLM ids each algorithm can act in."""

_FACTORY_KEYS = ("policy", "noise_type", "noise_std")
"""Hyperparameter keys the agent factory consumes itself (besides ``agents.factory.SCRIPT_KEYS``)."""


def help_description(doc: str | None, width: int = 100) -> str:
    """A module docstring as a ``tyro.cli(description=...)`` that prints in lines of at most ``width`` characters.

    tyro joins the lines of a paragraph into one (a 300-character line on any terminal) unless a line starts
    with a character that is not a letter; each paragraph is re-wrapped here and its continuation lines are
    indented by two spaces, which tyro keeps.
    """
    import textwrap

    paragraphs = [" ".join(p.split()) for p in (doc or "").strip().split("\n\n")]
    return "\n\n".join("\n  ".join(textwrap.wrap(p, width)) for p in paragraphs if p)


def at_least(**flags: tuple[float, float]) -> None:
    """``at_least(n_envs=(value, 0), ...)``: each flag's value must be >= its bound."""
    for name, (value, low) in flags.items():
        if value < low:
            raise UsageError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")


def non_empty(**flags: Iterable[Any]) -> None:
    """Each named list flag must hold at least one value."""
    for name, values in flags.items():
        if not tuple(values):
            raise UsageError(f"--{name.replace('_', '-')} is empty; give at least one value")


def parse_json_object(text: str, flag: str, what: str = "") -> dict[str, Any]:
    """A flag's JSON object ({} for ""); UsageError naming ``flag`` for bad JSON or another JSON value.

    Args:
        text: the flag's value.
        flag: the flag, for the message (e.g. ``--hyperparams``).
        what: what the object holds, for the message (e.g. " of gym.make keyword arguments").
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{flag} is not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object{what}, got {text!r}")
    return value


def parse_hyperparams(text: str, algos: Iterable[str]) -> dict[str, Any]:
    """``--hyperparams``: a JSON object whose keys every algorithm in ``algos`` accepts."""
    overrides = parse_json_object(text, "--hyperparams")
    from agents.factory import ALGOS, SCRIPT_KEYS

    for algo in algos:
        accepted = set(inspect.signature(ALGOS[algo].__init__).parameters) - {"self", "env"}
        accepted |= set(SCRIPT_KEYS) | set(_FACTORY_KEYS)
        unknown = sorted(set(overrides) - accepted)
        if unknown:
            raise UsageError(f"--hyperparams has key(s) {unknown} that {algo} does not take; valid: {sorted(accepted)}")
    return overrides


def check_env_id(env_id: str, algo: str | None = None, flag: str = "--env-id") -> None:
    """``env_id`` is registered and, with ``algo``, has an action space that algorithm can use."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as e:
        ids = sorted(i for i in gym.registry if i.startswith("FedsLLM"))
        raise UsageError(f"{flag} {env_id!r} is not a registered env id; FedsLLM ids: {ids}") from e
    mode = (spec.kwargs.get("variant") or {}).get("action_mode")
    if algo is not None and mode is not None and mode not in ACTION_MODES[algo]:
        from agents.factory import default_env_id

        raise UsageError(f"--algo {algo} cannot act in {env_id} (action_mode {mode!r}); it needs one of "
                         f"{list(ACTION_MODES[algo])} (e.g. {default_env_id(algo)})")


def check_agent(algo: str, env_id: str, overrides: dict[str, Any], hyperparams: dict[str, Any]) -> None:
    """Build ``algo`` with ``hyperparams`` on the surrogate twin of ``env_id`` (same spaces, no engine), so a
    value SB3 rejects (``n_steps: -1``, a learning rate that is not a number, ...) fails before any file."""
    from agents.factory import make_agent

    variant = dict((gym.spec(env_id).kwargs.get("variant") or {}), mode="surrogate")
    env = gym.make(env_id, config=overrides, variant=variant)
    try:
        make_agent(algo, env, None, hyperparams, env_id=env_id)
    except (AssertionError, ValueError, TypeError, KeyError) as e:
        raise UsageError(f"--hyperparams {json.dumps(hyperparams)} rejected by {algo}: {e}") from e
    finally:
        env.close()


def check_env_config(overrides: dict[str, Any]) -> FedsLLMConfig:
    """Build the config of ``overrides``, its channel model and its calibration (a missing or broken file
    such as a channel trace or a calibration table fails now)."""
    from fedsllm_env.channel import make_channel_model

    cfg = FedsLLMConfig.from_dict(overrides)
    try:
        make_channel_model(cfg.wireless, cfg.compute)
    except FileNotFoundError as e:
        raise MissingFileError(str(e)) from e
    load_calibration(cfg.calibration_path)
    return cfg


def check_n_envs(overrides: dict[str, Any], n_envs: int, n_steps: int = 0, flag: str = "--n-envs") -> None:
    """``n_envs`` training envs of ``overrides`` (0 = the YAML's, not checked here) and, with ``n_steps``, their
    rollout buffer fit: at most ``fedsllm_env.config.MAX_NUM_ENVS`` and within the memory available now
    (:func:`fedsllm_env.config.check_num_envs`). Call before creating the run folder.

    Raises:
        ConfigError: ``n_envs`` above the bound. MemoryLimitError: the estimate exceeds the available memory.
    """
    if n_envs:
        check_num_envs(FedsLLMConfig.from_dict(overrides), n_envs, n_steps, flag=flag)


def check_baselines(names: Iterable[str], flag: str = "--baselines", env_id: str | None = None) -> None:
    """Every name is a baseline of :data:`baselines.policy.KNOWN_BASELINE_NAMES`, and the heterogeneous ones
    (:data:`baselines.policy.HETERO_BASELINE_NAMES`) play only in a heterogeneous ``env_id`` when one is given."""
    from baselines.policy import HETERO_BASELINE_NAMES, KNOWN_BASELINE_NAMES
    from fedsllm_env.registration import is_hetero_id

    names = list(names)
    unknown = [n for n in names if n not in KNOWN_BASELINE_NAMES]
    if unknown:
        raise UsageError(f"{flag}: unknown baseline(s) {unknown}; choose from {list(KNOWN_BASELINE_NAMES)}")
    hetero = [n for n in names if n in HETERO_BASELINE_NAMES]
    if hetero and env_id is not None and not is_hetero_id(env_id):
        raise UsageError(f"{flag}: {hetero} decide a cut and a rank per client: they need a heterogeneous env id "
                         f"(e.g. FedsLLM-Surrogate-Hetero-v0), not {env_id}")


def new_output_dir(path: str | Path) -> Path:
    """Create a new, empty output folder at ``path``, or at ``path-2``, ``path-3``, ... if it exists.

    Two commands started in the same second get timestamped names that collide; ``mkdir`` without
    ``exist_ok`` is atomic, so each gets its own folder and neither overwrites the other's files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, i = path, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            i += 1
            candidate = path.with_name(f"{path.name}-{i}")

"""Exception hierarchy of fedsllm-env (modelled on gymnasium.error)."""

from __future__ import annotations


class FedsLLMError(Exception):
    """Base class of every error raised by this package."""


class ConfigError(FedsLLMError, ValueError):
    """A configuration field has a bad value, a bad type or an unknown name."""


class InfeasibleDecisionError(FedsLLMError, ValueError):
    """A resource-allocation decision violates a constraint of the system model."""

    def __init__(self, violations: list[str]):
        self.violations = list(violations)
        super().__init__("infeasible decision: " + "; ".join(self.violations))


class InvalidActionError(FedsLLMError, ValueError):
    """An action has the wrong shape, dtype or contains NaN/inf."""


class ResetNeeded(FedsLLMError, RuntimeError):
    """``step`` was called before ``reset``."""


class CalibrationError(FedsLLMError, ValueError):
    """A calibration (E(r) / loss-curve) file is missing or malformed."""


class DependencyNotInstalled(FedsLLMError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""


EXTRA_OF: dict[str, str] = {
    "torch": "train",
    "transformers": "train",
    "peft": "train",
    "tokenizers": "train",
    "tqdm": "train",
    "stable_baselines3": "agents",
    "sb3_contrib": "agents",
    "tensorboard": "agents",
    "tyro": "agents",
    "yaml": "agents",
    "rich": "agents",
    "ray": "ray",
    "matplotlib": "figures",
    "cvxpy": "dev",
    "numba": "fast",
    "pettingzoo": "marl",
}
"""Top-level module of each optional dependency -> the pyproject extra that installs it."""


def missing_dependency(exc: ModuleNotFoundError, feature: str) -> ImportError:
    """``exc`` as a :class:`DependencyNotInstalled` naming the extra, when it is about an optional dependency.

    Args:
        exc: the error an import raised.
        feature: what needed it (e.g. "mode='real'"), for the message.

    Returns:
        The error to raise (``exc`` itself when the missing module is not an optional dependency).
    """
    top = (exc.name or "").split(".")[0]
    if top not in EXTRA_OF:
        return exc
    extra = EXTRA_OF[top]
    return DependencyNotInstalled(f"{feature} needs the optional dependency {top!r}, which is not installed: "
                                  f"pip install 'fedsllm-env[{extra}]' (or 'fedsllm-env[all]')")


def require_extra(extra: str, feature: str, *modules: str, load: bool = True) -> None:
    """Import ``modules`` now (``load=False``: only find them, without running them, e.g. to keep torch out of a
    light import), raising :class:`DependencyNotInstalled` naming ``extra`` if one is missing."""
    import importlib
    import importlib.util

    for module in modules:
        try:
            if load:
                importlib.import_module(module)
            elif importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != module.split(".")[0]:
                raise
            raise DependencyNotInstalled(f"{feature} needs {module!r}, which is not installed: "
                                         f"pip install 'fedsllm-env[{extra}]' (or 'fedsllm-env[all]')") from exc


class NonFiniteError(FedsLLMError, FloatingPointError):
    """A computed delay, loss, reward or observation is NaN or infinite (never passed on to an agent)."""


class UsageError(FedsLLMError, ValueError):
    """A command-line argument, or the content of a file a command reads, is invalid."""


class MissingFileError(FedsLLMError, FileNotFoundError):
    """A file or folder named by an argument or a config field does not exist."""


class RunFolderBusyError(FedsLLMError, RuntimeError):
    """Another live process is writing into the same run folder (see ``fedsllm_env.runlock``)."""


class BackboneError(FedsLLMError, ValueError):
    """A backbone cannot be used: truncated or corrupted weights, weights missing, NaN weights."""


class BackboneNotFoundError(FedsLLMError, FileNotFoundError):
    """A backbone is neither a local folder nor in the Hugging Face cache, and cannot be downloaded."""


class TrainingError(FedsLLMError, RuntimeError):
    """Real training cannot go on: a non-finite loss, a batch without labelled tokens, token ids outside the
    model's vocabulary (the message names the round, the client and the cause)."""


class TrainingDiverged(TrainingError):
    """A training or validation loss, or a LoRA adapter, became NaN/inf (the message names the likely cause)."""


class SeedError(FedsLLMError, ValueError):
    """A reset seed is not a non-negative integer (a bool, a float, a negative number)."""


class DataError(FedsLLMError, ValueError):
    """A dataset file is malformed (bad header, a row with extra fields, an unterminated quote, ...) or holds too
    few usable examples; the message names the file and the line."""


class TokenizerError(BackboneError):
    """A backbone's tokenizer cannot be used (empty, no end-of-sequence token)."""


class DeviceError(FedsLLMError, ValueError):
    """A device or an accelerator share that this machine (or Ray cluster) does not have, e.g. ``model.device:
    cuda`` without a GPU."""


class MemoryLimitError(ConfigError):
    """A configuration or a flag would need more memory than the machine has (an estimate checked before
    anything is allocated); the message names the sizes to lower."""

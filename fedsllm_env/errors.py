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

"""Result record of every baseline solver (modelled on ``scipy.optimize.OptimizeResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedsllm_env.types import Decision, DelayBreakdown

__all__ = ["BaselineResult"]


@dataclass(frozen=True, eq=False)
class BaselineResult:
    """What a solver returns."""

    decision: Decision
    """The allocation found (always feasible)."""
    objective_s: float
    """Its total training delay ``E(r) * T_round`` as the env computes it, s."""
    breakdown: DelayBreakdown
    """The env's delay breakdown of ``decision``."""
    success: bool
    """True if the solver met its stopping rule (converged / enumerated everything)."""
    message: str
    """Why it stopped."""
    n_iter: int
    """Outer iterations performed (0 for one-shot schemes)."""
    history: tuple[float, ...] = ()
    """Objective (s) of the initial point and after every iteration, non-increasing for the optimizer."""
    wall_s: float = 0.0
    """Wall-clock solve time, s."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Solver-specific details (e.g. number of assignments enumerated)."""

    def __repr__(self) -> str:
        d = self.decision
        return (f"BaselineResult(objective_s={self.objective_s:.6g}, success={self.success}, "
                f"n_iter={self.n_iter}, split={d.split}, rank={d.rank}, wall_s={self.wall_s:.3g}, "
                f"message={self.message!r})")

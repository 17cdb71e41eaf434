"""The ``fedsllm`` console script: ``fedsllm <command> [options]`` dispatching to the scripts' ``main(argv)``.

Commands are imported lazily, so ``fedsllm --help`` is instant and ``fedsllm calibrate`` does not load
Stable-Baselines3.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Sequence

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train_scripts.train", "train an RL agent (PPO/SAC/A2C/TD3/MaskablePPO) on a FedsLLM env"),
    "evaluate": ("train_scripts.evaluate", "evaluate saved agents and baselines on held-out seeds"),
    "benchmark": ("train_scripts.benchmark", "agents vs the paper's optimizer and the heuristics, same seeds"),
    "figures": ("train_scripts.figures", "delay vs clients / bandwidth / power / rank, training curves"),
    "demo": ("train_scripts.demo", "train PPO on the surrogate, compare with the optimizer in real training"),
    "calibrate": ("train_scripts.calibrate", "measure E(r, c) and loss curves with real split-fed training (Ray optional)"),
    "benchmark-env": ("train_scripts.benchmark_env", "surrogate steps/s, real-mode seconds per step and its breakdown"),
    "benchmark-optimizer": ("train_scripts.benchmark_optimizer",
                            "optimizer solve time vs size and optimality gaps vs the exact optimum"),
}
"""Command -> (module with ``main(argv)``, one-line help)."""


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: fedsllm <command> [options]   (fedsllm <command> --help for the options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> Any:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a command's ``main``.

    Args:
        argv: ``[command, *options]``.

    Returns:
        What the command's ``main`` returns (e.g. the run folder).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return None
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"fedsllm: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        raise SystemExit(2)
    try:
        module = importlib.import_module(COMMANDS[command][0])
    except ModuleNotFoundError as exc:  # an optional dependency of this command: name the extra
        from fedsllm_env.errors import missing_dependency

        raise missing_dependency(exc, f"`fedsllm {command}`") from exc
    return module.main(rest)


if __name__ == "__main__":
    main()

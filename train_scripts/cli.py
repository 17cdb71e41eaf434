"""The ``fedsllm`` console script: ``fedsllm <command> [options]`` dispatching to the scripts' ``main(argv)``.

Commands are imported lazily, so ``fedsllm --help`` is instant and ``fedsllm calibrate`` does not load
Stable-Baselines3.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
from typing import Sequence

__all__ = ["COMMANDS", "EXIT_OK", "EXIT_USAGE", "QUIET_WARNINGS", "main", "quiet_third_party_warnings", "run_as_script"]

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train_scripts.train", "train an RL agent (PPO/SAC/A2C/TD3/MaskablePPO) on a FedsLLM env"),
    "evaluate": ("train_scripts.evaluate", "evaluate saved agents and baselines on held-out seeds"),
    "benchmark": ("train_scripts.benchmark", "agents vs the paper's optimizer and the heuristics, same seeds"),
    "clients-sweep": ("train_scripts.clients_sweep",
                      "agents (K-invariant ones at every K) vs the optimizer at several numbers of clients"),
    "figures": ("train_scripts.figures", "delay vs clients / bandwidth / power / rank, training curves"),
    "demo": ("train_scripts.demo", "train PPO on the surrogate, compare with the optimizer in real training"),
    "calibrate": ("train_scripts.calibrate", "measure E(r, c) and loss curves with real split-fed training (Ray optional)"),
    "benchmark-env": ("train_scripts.benchmark_env", "surrogate steps/s, real-mode seconds per step and its breakdown"),
    "benchmark-engine": ("train_scripts.benchmark_engine",
                         "real-engine seconds per round and peak memory for named model shapes and devices"),
    "backbone-report": ("train_scripts.backbone_report",
                        "the backbone's loss before fine-tuning beside uniform, unigram and bigram models"),
    "fidelity": ("train_scripts.fidelity", "real vs surrogate episodes of schedules and policies (the surrogate's error)"),
    "switch-search": ("train_scripts.switch_search",
                      "price fixed, two-phase and periodic (cut, rank) schedules in the surrogate: any artefact?"),
    "benchmark-optimizer": ("train_scripts.benchmark_optimizer",
                            "optimizer solve time vs size and optimality gaps vs the exact optimum"),
}
"""Command -> (module with ``main(argv)``, one-line help)."""


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: fedsllm <command> [options]   (fedsllm <command> --help for the options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


QUIET_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # transformers 5 deprecates the attribute that peft (and transformers itself) still read on every model load:
    # nothing a user of this package can act on
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning),
)
"""(message regex, category) of third-party warnings the commands do not show (the test suite ignores them too,
pyproject.toml's ``filterwarnings``); every other warning is shown."""


def quiet_third_party_warnings() -> None:
    """Ignore exactly the :data:`QUIET_WARNINGS` (call inside ``warnings.catch_warnings()``)."""
    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


EXIT_OK = 0
"""Exit status of a command that finished."""
EXIT_USAGE = 2
"""Exit status of a command refused for bad input (argparse's convention)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a command's ``main``; the console script's entry point.

    Errors of the package's typed hierarchy (:class:`fedsllm_env.errors.FedsLLMError`: bad config or
    argument, missing file, busy run folder, ...) are printed as one ``fedsllm <command>: error: ...``
    line (set ``FEDSLLM_TRACEBACK=1`` for the traceback); anything else propagates with its traceback. The
    third-party warnings of :data:`QUIET_WARNINGS` are not shown while the command runs.

    Args:
        argv: ``[command, *options]``.

    Returns:
        The exit status: 0 when the command finished, 2 when it was refused for bad input (a command's
        own ``main`` returns its output folder; call it directly to get that).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return EXIT_OK
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"fedsllm: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    from fedsllm_env.errors import FedsLLMError, missing_dependency
    from fedsllm_env.progress import is_interactive

    quiet = not is_interactive() and "TQDM_DISABLE" not in os.environ
    if quiet:  # a log: third-party tqdm bars (e.g. transformers' weight loading) stay silent; ours print
        os.environ["TQDM_DISABLE"] = "1"  # plain lines (fedsllm_env.progress)
    try:
        with warnings.catch_warnings():
            quiet_third_party_warnings()
            try:
                module = importlib.import_module(COMMANDS[command][0])
            except ModuleNotFoundError as exc:  # an optional dependency of this command: name the extra
                raise missing_dependency(exc, f"`fedsllm {command}`") from exc
            module.main(rest)
    except FedsLLMError as e:
        if os.environ.get("FEDSLLM_TRACEBACK"):
            raise
        print(f"fedsllm {command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the output went to a pipe that closed early (`fedsllm ... | head`): not an error
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    finally:
        if quiet:
            del os.environ["TQDM_DISABLE"]
    return EXIT_OK


def run_as_script(command: str) -> None:
    """``python -m <the command's module>``: run ``command`` with ``sys.argv`` and exit with its status."""
    raise SystemExit(main([command, *sys.argv[1:]]))


if __name__ == "__main__":
    raise SystemExit(main())

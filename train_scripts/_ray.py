"""One way to start or join Ray for every command that takes ``--ray-address`` (optional extra ``[ray]``).

``ray_init(address)`` maps the CLI value onto :func:`ray.init`:

* ``"local"``: start a fresh Ray instance on this machine (never joins a running one), quietly: no
  dashboard, no usage-stats prompt, worker logs not echoed to the driver. Workers import this checkout
  of the project (its root is put first on the workers' ``PYTHONPATH``), so results never come from
  another installed copy.
* ``"auto"``: join the cluster already running on this machine (``ray start --head``); fails if none.
* ``"ray://host:port"`` or ``"host:port"``: join a remote cluster (Ray client / GCS address). Every node
  must have fedsllm-env installed (``pip install "fedsllm-env[all]"``), exactly as on the head node.

``ray_session(address)`` is the same as a context manager that shuts Ray down afterwards if it started
(or joined) it. ``ray_map_unordered(fn, args_list, num_cpus=..., num_gpus=...)`` runs one Ray task per
argument tuple with declared resources and yields ``(index, result)`` as tasks finish (callers write each
result at once, so a killed sweep loses only the tasks in flight). Nothing here imports Ray until called,
so scripts that never scale out do not need it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

__all__ = ["ray_init", "ray_session", "ray_map_unordered", "require_ray", "RAY_INSTALL_HINT"]

RAY_INSTALL_HINT = 'pip install "fedsllm-env[ray]"  (or: pip install ray)'
"""What to install when Ray is missing."""

_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


def require_ray() -> Any:
    """Import and return the ``ray`` module, or raise DependencyNotInstalled naming the ``[ray]`` extra."""
    try:
        import ray
    except ModuleNotFoundError as e:
        from fedsllm_env.errors import missing_dependency

        raise missing_dependency(e, "--ray-address") from e
    return ray


def _check_address(address: Any, num_cpus: int | None) -> str:
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"--ray-address must be 'local', 'auto' or 'ray://host:port', got {address!r}")
    if num_cpus is not None and num_cpus < 1:
        raise ValueError(f"num_cpus must be >= 1, got {num_cpus}")
    return address.strip()


def ray_init(address: str, num_cpus: int | None = None, num_gpus: int | None = None,
             log_to_driver: bool = False) -> Any:
    """Start (``"local"``) or join (``"auto"``, ``"ray://host:port"``) Ray; return the ``ray`` module.

    Args:
        address: ``"local"``, ``"auto"``, ``"ray://host:port"`` or a GCS ``"host:port"``.
        num_cpus: CPUs a local instance offers (None = all of this machine's); ignored when joining.
        num_gpus: GPUs a local instance offers (None = detected); ignored when joining.
        log_to_driver: echo the workers' stdout/stderr in this process.

    Returns:
        The initialised ``ray`` module. If Ray is already initialised in this process it is reused.
    """
    address = _check_address(address, num_cpus)
    ray = require_ray()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats banner or network call
    kwargs: dict[str, Any] = {"log_to_driver": log_to_driver, "logging_level": logging.WARNING}
    if address == "local":
        pythonpath = os.pathsep.join(p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH", "")) if p)
        kwargs.update(address="local", include_dashboard=False, num_cpus=num_cpus, num_gpus=num_gpus,
                      runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    else:
        kwargs.update(address=address)
    ray.init(**kwargs)
    return ray


@contextlib.contextmanager
def ray_session(address: str, num_cpus: int | None = None, num_gpus: int | None = None,
                log_to_driver: bool = False) -> Iterator[Any]:
    """:func:`ray_init` as a context manager; shuts Ray down on exit unless it was already running."""
    _check_address(address, num_cpus)
    ray = require_ray()
    owned = not ray.is_initialized()
    ray_init(address, num_cpus=num_cpus, num_gpus=num_gpus, log_to_driver=log_to_driver)
    try:
        yield ray
    finally:
        if owned:
            ray.shutdown()


def ray_map_unordered(fn: Callable[..., Any], args_list: Sequence[tuple], num_cpus: float = 1.0,
                      num_gpus: float = 0.0) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*args)`` as one Ray task per entry of ``args_list``; yield ``(index, result)`` as each finishes.

    Args:
        fn: A picklable top-level function (workers import it by module name).
        args_list: One argument tuple per task.
        num_cpus: CPUs each task reserves (Ray schedules at most ``cluster CPUs / num_cpus`` at once).
        num_gpus: GPU fraction each task reserves (e.g. 0.25: four tasks share one GPU; 0 on CPU).

    A task's exception is re-raised here (as Ray's ``RayTaskError``, which also subclasses the original
    exception type); tasks still pending are then cancelled. Ray must be initialised (:func:`ray_init`).
    """
    ray = require_ray()
    if not ray.is_initialized():
        raise RuntimeError("ray_map_unordered needs Ray initialised first: call ray_init(address)")
    if num_cpus < 0 or num_gpus < 0:
        raise ValueError(f"task resources must be >= 0, got num_cpus={num_cpus}, num_gpus={num_gpus}")
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(fn)
    index = {remote.remote(*args): i for i, args in enumerate(args_list)}
    pending = list(index)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield index[ref], ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref)

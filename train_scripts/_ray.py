"""One way to start or join Ray for every command that takes ``--ray-address`` (optional extra ``[ray]``).

``ray_init(address)`` maps the CLI value onto :func:`ray.init`:

* ``"local"``: start a fresh Ray instance on this machine (never joins a running one), quietly: no
  dashboard, no usage-stats prompt, worker logs not echoed to the driver. Workers import this checkout
  of the project (its root is put first on the workers' ``PYTHONPATH``), so results never come from
  another installed copy.
* ``"auto"``: join the cluster already running on this machine (``ray start --head``); fails if none.
* ``"ray://host:port"`` or ``"host:port"``: join a remote cluster (Ray client / GCS address). Every node
  must have fedsllm-env installed (``pip install "fedsllm-env[all]"``), exactly as on the head node.

Errors: a malformed address (``bogus://x``, ``nonsense``) is refused by :func:`check_ray_address` before Ray is
imported; an address where nothing answers, ``auto`` without a running cluster, or a failed ``ray.init`` raise
one :class:`~fedsllm_env.errors.UsageError` naming the address and the fix; :func:`check_ray_gpus` refuses a
GPU share the cluster does not have (:class:`~fedsllm_env.errors.DeviceError`). Commands call these before
they create any run folder.

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
import re
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from fedsllm_env.errors import DeviceError, UsageError

__all__ = ["ray_init", "ray_session", "ray_map_unordered", "require_ray", "check_ray_address", "check_ray_gpus",
           "check_ray_cpus",
           "RAY_INSTALL_HINT", "RAY_CONNECT_TIMEOUT_S"]

RAY_INSTALL_HINT = 'pip install "fedsllm-env[ray]"  (or: pip install ray)'
"""What to install when Ray is missing."""

_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])

RAY_CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for a TCP answer from a remote Ray address before giving up (Ray itself retries for minutes)."""

RAY_CLIENT_PORT = 10001
"""Port of ``ray://host`` without a port (the Ray client server's default)."""

_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?$")


def require_ray() -> Any:
    """Import and return the ``ray`` module, or raise DependencyNotInstalled naming the ``[ray]`` extra."""
    try:
        import ray
    except ModuleNotFoundError as e:
        from fedsllm_env.errors import missing_dependency

        raise missing_dependency(e, "--ray-address") from e
    return ray


def check_ray_address(address: Any, flag: str = "--ray-address") -> str:
    """``address`` stripped, if it is ``"local"``, ``"auto"``, ``"ray://host[:port]"`` or ``"host:port"``;
    :class:`~fedsllm_env.errors.UsageError` naming the flag and the value otherwise (nothing is imported)."""
    if not isinstance(address, str) or not address.strip():
        raise UsageError(f"{flag} must be 'local', 'auto', 'ray://host:port' or 'host:port', got {address!r}")
    address = address.strip()
    if address in ("local", "auto"):
        return address
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    match = _HOST_PORT.match(rest)
    port = match.group("port") if match else None
    if match is None or (port is None and rest == address) or (port is not None and not 1 <= int(port) <= 65535):
        raise UsageError(f"{flag} must be 'local' (start Ray here), 'auto' (join the cluster of `ray start`), "
                         f"'ray://host:port' (Ray client) or 'host:port' (GCS address, port 1-65535), got {address!r}")
    return address


def _endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) a remote address connects to; None for "local" / "auto"."""
    if address in ("local", "auto"):
        return None
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    match = _HOST_PORT.match(rest)
    assert match is not None  # check_ray_address ran
    return match.group("host").strip("[]"), int(match.group("port") or RAY_CLIENT_PORT)


def _probe(address: str, flag: str) -> None:
    """UsageError when nothing answers at a remote address within :data:`RAY_CONNECT_TIMEOUT_S`."""
    endpoint = _endpoint(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UsageError(f"{flag} {address!r}: nothing answers at {endpoint[0]}:{endpoint[1]} ({reason}); start the "
                         "cluster there (`ray start --head`), fix the address, or use --ray-address local") from None


def _check_address(address: Any, num_cpus: int | None) -> str:
    address = check_ray_address(address)
    if num_cpus is not None and num_cpus < 1:
        raise UsageError(f"num_cpus must be >= 1, got {num_cpus}")
    return address


def check_ray_gpus(gpus: float, flag: str = "--gpus-per-learner", address: str = "local", ray: Any = None) -> None:
    """DeviceError when a learner or task asks for ``gpus`` GPUs and Ray cannot offer them (RLlib fails deep inside
    with an assertion, a task waits forever).

    Args:
        gpus: the GPU share asked for (0 = none: always fine).
        flag: the flag that asks, for the message.
        address: the ``--ray-address``; for "local" the GPUs are counted without starting Ray (what Ray would
            detect: torch's CUDA devices), so this can run before anything is created.
        ray: the initialised ``ray`` module, to count the GPUs of a joined cluster.
    """
    if gpus <= 0:
        return
    if ray is not None and ray.is_initialized():
        have = float(ray.cluster_resources().get("GPU", 0.0))
    elif address == "local":
        try:
            import torch

            have = float(torch.cuda.device_count()) if torch.cuda.is_available() else 0.0
        except ImportError:
            have = 0.0
    else:
        return  # a remote cluster: count after joining it (pass ray)
    if gpus > have:
        raise DeviceError(f"{flag} {gpus:g} but Ray at {address!r} has {have:g} GPU(s); use {flag} 0 (CPU) or "
                          "join a cluster with GPUs (--ray-address)")


def check_ray_cpus(ray: Any, cpus: float, flag: str = "--ray-cpus-per-task", address: str = "") -> None:
    """UsageError when one task asks for more CPUs than the joined cluster has (Ray would wait for them forever).
    Call after :func:`ray_init`."""
    have = float(ray.cluster_resources().get("CPU", 0.0))
    if cpus > have:
        raise UsageError(f"{flag} {cpus:g} but Ray at {address!r} has {have:g} CPU(s) in all: no task could ever "
                         f"start; use at most {have:g}")


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

    Raises:
        UsageError: a malformed address, nothing answering at a remote one, no cluster for "auto", or any
            other ``ray.init`` failure (one line naming the address).
    """
    address = _check_address(address, num_cpus)
    ray = require_ray()
    if ray.is_initialized():
        return ray
    _probe(address, "--ray-address")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats banner or network call
    kwargs: dict[str, Any] = {"log_to_driver": log_to_driver, "logging_level": logging.WARNING}
    if address == "local":
        pythonpath = os.pathsep.join(p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH", "")) if p)
        kwargs.update(address="local", include_dashboard=False, num_cpus=num_cpus, num_gpus=num_gpus,
                      runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    else:
        kwargs.update(address=address)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        fix = ("start one with `ray start --head`, or use --ray-address local" if address == "auto" else
               "check the address and that the cluster runs the same Ray version" if address != "local" else
               "see the Ray log under /tmp/ray")
        verb = "start Ray here" if address == "local" else "join Ray"
        raise UsageError(f"--ray-address {address!r}: cannot {verb} ({type(e).__name__}: {first}); {fix}") from e
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

"""One writer per run folder: an advisory lock file ``<folder>/.fedsllm.lock`` naming its holder.

The lock is a ``flock`` on the lock file, so the kernel releases it when the holder exits for any
reason (return, exception, ``kill -9``): a lock left by a dead process is never "stale", the next
writer just takes it. The file holds the holder's pid, host, start time and command line, so a
refused writer's :class:`~fedsllm_env.errors.RunFolderBusyError` says who is writing. Within one
process the lock is re-entrant (a script holding it may call the library that takes it again).

On systems without ``fcntl`` (Windows) the file is created with ``O_EXCL`` instead and a lock whose
pid is no longer running on this host is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fedsllm_env.errors import RunFolderBusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunLock", "lock_holder"]

LOCK_NAME = ".fedsllm.lock"
"""File name of the lock inside a run folder."""

_HELD: dict[str, tuple[int, int, int]] = {}
"""realpath of a held lock file -> (pid that holds it, fd, depth), this process only."""
_GUARD = threading.Lock()


def lock_holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The holder record of ``folder``'s lock file (pid, host, started, command), None if absent or unreadable."""
    try:
        data = json.loads((Path(folder) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(folder: Path, holder: dict[str, Any] | None) -> str:
    if not holder:
        return f"run folder {folder} is locked by another process (lock file {folder / LOCK_NAME})"
    return (f"run folder {folder} is in use by pid {holder.get('pid')} on host {holder.get('host')} since "
            f"{holder.get('started')} ({holder.get('command')}); wait for it to finish or use another run "
            "folder (--run-name)")


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Exclusive, re-entrant (per process) writer lock of one run folder; creates the folder.

    Use as ``with RunLock(run_dir): ...`` or ``lock = RunLock(run_dir).acquire(); ...; lock.release()``.

    Args:
        folder: the run folder (created with its parents if missing).

    Raises:
        RunFolderBusyError: from :meth:`acquire`, when another live process holds the lock.
    """

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._held = False

    def _record(self) -> bytes:
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv)}
        return (json.dumps(record) + "\n").encode()

    def acquire(self) -> RunLock:
        """Take the lock (the folder is created first); returns self."""
        if self._held:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.path)
        with _GUARD:
            held = _HELD.get(key)
            if held is not None and held[0] == os.getpid():
                _HELD[key] = (held[0], held[1], held[2] + 1)
                self._held = True
                return self
            fd = self._lock_flock() if fcntl is not None else self._lock_excl()
            _HELD[key] = (os.getpid(), fd, 1)
        self._held = True
        return self

    def _lock_flock(self) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunFolderBusyError(_describe(self.folder, lock_holder(self.folder))) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else the previous holder removed the file between our open and flock: retry
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, self._record())
        return fd

    def _lock_excl(self) -> int:  # pragma: no cover - used only without fcntl
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = lock_holder(self.folder)
                pid = holder.get("pid") if holder else None
                if holder and holder.get("host") == socket.gethostname() and isinstance(pid, int) \
                        and not _pid_running(pid):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise RunFolderBusyError(_describe(self.folder, holder)) from None
            os.write(fd, self._record())
            return fd
        raise RunFolderBusyError(_describe(self.folder, lock_holder(self.folder)))

    def release(self) -> None:
        """Give the lock back (the outermost release of this process removes the lock file)."""
        if not self._held:
            return
        self._held = False
        key = os.path.realpath(self.path)
        with _GUARD:
            pid, fd, depth = _HELD[key]
            if depth > 1:
                _HELD[key] = (pid, fd, depth - 1)
                return
            del _HELD[key]
            try:
                self.path.unlink(missing_ok=True)  # while still locked, so no one takes a doomed file
            finally:
                os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

"""The run-folder lock (fedsllm_env.runlock) between two processes that both take it through ``RunLock``: the
lock is exclusive, so whichever holds it refuses the other, and it is free again once the holder exits.

(The lock tests in tests/test_locks_resume.py hold the conflicting lock with a bare exclusive ``flock``; a
shared ``flock`` taken by RunLock would pass those and still let two writers in.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedsllm_env.errors import RunFolderBusyError
from fedsllm_env.runlock import LOCK_NAME, RunLock, lock_holder

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys\nfrom fedsllm_env.runlock import RunLock\n"
        "lock = RunLock(sys.argv[1]).acquire()\nprint('held', flush=True)\nsys.stdin.read()\nlock.release()\n")
TRY = ("import sys\nfrom fedsllm_env.errors import RunFolderBusyError\nfrom fedsllm_env.runlock import RunLock\n"
       "try:\n    RunLock(sys.argv[1]).acquire()\nexcept RunFolderBusyError as e:\n    print(e)\n    sys.exit(3)\n")


def _python(code: str, folder: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, **kwargs)


def test_a_runlock_held_by_another_process_refuses_this_one_until_it_exits(tmp_path):
    holder = _python(HOLD, tmp_path, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusyError, match=f"in use by pid {holder.pid} "):
            RunLock(tmp_path).acquire()
        assert lock_holder(tmp_path)["pid"] == holder.pid  # the refused writer left the record alone
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path):
        assert lock_holder(tmp_path)["pid"] == os.getpid()


def test_a_runlock_held_here_refuses_another_process(tmp_path):
    with RunLock(tmp_path):
        other = _python(TRY, tmp_path)
        out, _ = other.communicate(timeout=60)
        assert other.returncode == 3, out
        assert f"in use by pid {os.getpid()} " in out
    other = _python(TRY, tmp_path)  # released: the other process takes it
    other.communicate(timeout=60)
    assert other.returncode == 0

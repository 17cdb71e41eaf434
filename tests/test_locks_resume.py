"""Run-folder lock (fedsllm_env.runlock) with stale bytes and dead holders, and the resume cuts (agents.resume,
agents.callbacks): the episode boundary where a monitor log is cut, the evaluation file a kill can leave behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import fcntl
import numpy as np
import pytest

from fedsllm_env import runlock
from fedsllm_env.errors import RunFolderBusyError, UsageError
from fedsllm_env.runlock import LOCK_NAME, RunLock, lock_holder

GARBAGE = b"\x00\xff{not json at all" + b"#" * 2000  # far longer than a holder record


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- the lock: stale bytes, dead holders, live holders ---------------------------------------------------------------

@pytest.mark.parametrize("stale", [GARBAGE, b"", b"[1, 2, 3]\n",
                                   json.dumps({"pid": 1, "host": "elsewhere", "started": "x", "command": "y"}).encode()])
def test_a_leftover_lock_file_is_taken_over_and_its_stale_bytes_replaced(tmp_path, stale):
    # flock: nobody holds the file (its writer is dead), so the next writer takes it whatever it holds
    (tmp_path / LOCK_NAME).write_bytes(stale)
    with RunLock(tmp_path):
        raw = (tmp_path / LOCK_NAME).read_bytes()
        record = json.loads(raw)  # the whole file is the new record: no stale byte after it
        assert raw.endswith(b"}\n") and raw.count(b"\n") == 1
        assert record["pid"] == os.getpid() and record["command"] == " ".join(sys.argv)
        assert lock_holder(tmp_path) == record
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_live_holder_with_an_unreadable_record_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / LOCK_NAME
    path.write_bytes(GARBAGE)
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: conflicts even within this process
    try:
        assert lock_holder(tmp_path) is None
        with pytest.raises(RunFolderBusyError) as exc:
            RunLock(tmp_path).acquire()
        assert str(exc.value) == f"run folder {tmp_path} is locked by another process (lock file {path})"
        assert path.read_bytes() == GARBAGE  # the refused writer changed nothing
        # a readable record names the holder
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": 4242, "host": "h1", "started": "s0", "command": "fedsllm train"}).encode(), 0)
        with pytest.raises(RunFolderBusyError) as exc:
            RunLock(tmp_path).acquire()
        assert str(exc.value) == (f"run folder {tmp_path} is in use by pid 4242 on host h1 since s0 (fedsllm train); "
                                  "wait for it to finish or use another run folder (--run-name)")
    finally:
        os.close(fd)
    with RunLock(tmp_path):  # the holder is gone: free again
        assert lock_holder(tmp_path)["pid"] == os.getpid()


def test_lock_holder_reads_only_a_json_object(tmp_path):
    assert lock_holder(tmp_path) is None  # no file
    for raw, expected in [(b"[1]", None), (b"7", None), (b"{bad", None), (b'{"pid": 5}', {"pid": 5})]:
        (tmp_path / LOCK_NAME).write_bytes(raw)
        assert lock_holder(tmp_path) == expected


def test_reentrant_depth_and_a_second_object_of_the_same_process(tmp_path):
    outer = RunLock(tmp_path / "run").acquire()
    assert (tmp_path / "run").is_dir()  # created with the lock
    inner = RunLock(tmp_path / "run")
    assert inner.acquire() is inner and inner.acquire() is inner  # a second acquire of one object is a no-op
    inner.release()
    inner.release()  # releasing twice is harmless
    assert (tmp_path / "run" / LOCK_NAME).is_file()  # the outer lock still holds
    outer.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    assert os.path.realpath(tmp_path / "run" / LOCK_NAME) not in runlock._HELD


def test_without_fcntl_a_dead_holder_on_this_host_is_taken_over_and_anything_else_refused(tmp_path, monkeypatch):
    import socket

    monkeypatch.setattr(runlock, "fcntl", None)  # the O_EXCL path of systems without flock
    path = tmp_path / LOCK_NAME
    host = socket.gethostname()
    path.write_text(json.dumps({"pid": _dead_pid(), "host": host, "started": "s", "command": "c"}))
    with RunLock(tmp_path):
        assert lock_holder(tmp_path)["pid"] == os.getpid()  # stale: its process is gone, taken over
    assert not path.exists()
    # a live pid on this host (a child of ours), a dead one on another host, stale garbage: refused, naming what is
    # known
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        cases = [({"pid": live.pid, "host": host, "started": "s", "command": "c"}, f"in use by pid {live.pid}"),
                 ({"pid": _dead_pid(), "host": "another-host", "started": "s", "command": "c"}, "on host another-host"),
                 (None, "is locked by another process")]
        for record, fragment in cases:
            path.write_bytes(GARBAGE if record is None else json.dumps(record).encode())
            with pytest.raises(RunFolderBusyError, match=fragment):
                RunLock(tmp_path).acquire()
            assert path.is_file()
        assert live.poll() is None  # asking whether the holder runs sends it no signal
    finally:
        live.kill()
        live.wait()


def test_the_holder_record_and_the_lock_file_mode(tmp_path, monkeypatch):
    import re
    import socket

    old = os.umask(0o022)
    try:
        for flock in (True, False):
            if not flock:
                monkeypatch.setattr(runlock, "fcntl", None)
            folder = tmp_path / f"a{flock}" / "b" / "run"  # parents created
            with RunLock(folder):
                record = lock_holder(folder)
                assert set(record) == {"pid", "host", "started", "command"}
                assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
                assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", record["started"])
                assert (folder / LOCK_NAME).stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_a_lock_file_removed_between_open_and_flock_is_opened_again(tmp_path, monkeypatch):
    # the previous holder's release unlinks the file it still holds: a writer that opened it just before must not
    # keep a lock on that doomed inode
    real_flock = fcntl.flock
    calls = {"n": 0}

    def flock(fd, op):
        real_flock(fd, op)
        calls["n"] += 1
        if calls["n"] == 1:
            os.unlink(tmp_path / LOCK_NAME)

    monkeypatch.setattr(runlock.fcntl, "flock", flock)
    with RunLock(tmp_path):
        assert calls["n"] == 2 and lock_holder(tmp_path)["pid"] == os.getpid()  # the file on disk is ours


def test_a_lock_file_removed_while_held_is_released_quietly(tmp_path):
    lock = RunLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).unlink()
    lock.release()
    assert os.path.realpath(tmp_path / LOCK_NAME) not in runlock._HELD


def test_pid_running_counts_a_process_of_another_user_as_running(monkeypatch):
    def kill(pid, sig):
        assert sig == 0
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(runlock.os, "kill", kill)
    assert runlock._pid_running(12345) is True


def test_without_fcntl_a_stale_lock_that_keeps_coming_back_is_refused_naming_it(tmp_path, monkeypatch):
    import socket

    monkeypatch.setattr(runlock, "fcntl", None)
    dead = _dead_pid()
    stale = {"pid": dead, "host": socket.gethostname(), "started": "s0", "command": "old run"}
    real_open = os.open

    def racing_open(path, flags, *args):
        if flags & os.O_EXCL:  # another writer recreates the stale file every time
            (tmp_path / LOCK_NAME).write_text(json.dumps(stale))
            raise FileExistsError(path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(runlock.os, "open", racing_open)
    with pytest.raises(RunFolderBusyError) as exc:
        RunLock(tmp_path).acquire()
    # two stale files taken away, a third in the way: refused (the last one was just removed, so no holder is named)
    assert str(exc.value) == f"run folder {tmp_path} is locked by another process (lock file {tmp_path / LOCK_NAME})"


# ---- the monitor log cut at the checkpoint's episode boundary --------------------------------------------------------

HEADER = '#{"t_start": 100.5, "env_id": "x"}\nr,l,t\n'


def _monitor(folder: Path, i: int, lengths, tail: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{i}.monitor.csv"
    path.write_text(HEADER + "".join(f"-{j}.5,{n},{j + 1}.25\n" for j, n in enumerate(lengths)) + tail)
    return path


def _lengths(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    assert lines[:2] == HEADER.splitlines()  # the header is kept as it was
    return [int(ln.split(",")[1]) for ln in lines[2:]]


def test_monitor_rows_are_cut_at_the_checkpoint_episode_boundary(tmp_path):
    from agents.resume import truncate_monitor

    mon = tmp_path / "monitor"
    # 2 envs, checkpoint at 20 steps = 10 steps per env.
    # env 0: episodes end at 5, 10 (exactly the checkpoint: kept), 15 (after it: dropped)
    # env 1: episodes end at 4, 11 (after: dropped), then a row cut by a kill
    a = _monitor(mon, 0, [5, 5, 5])
    b = _monitor(mon, 1, [4, 7], tail="-9.0,3")
    assert truncate_monitor(mon, 20) == 3
    assert _lengths(a) == [5, 5] and _lengths(b) == [4]
    assert a.read_text().endswith("\n")
    # one step earlier the boundary episode of env 0 goes too; an explicit n_envs overrides the file count
    _monitor(mon, 0, [5, 5, 5])
    assert truncate_monitor(mon, 19) == 2 and _lengths(a) == [5]
    _monitor(mon, 0, [5, 5, 5])
    _monitor(mon, 1, [4, 7])
    # as if 4 envs had run (2 of their files lost): 20 steps = 5 per env
    assert truncate_monitor(mon, 20, n_envs=4) == 2 and _lengths(a) == [5] and _lengths(b) == [4]


def test_monitor_files_are_matched_by_index_and_a_torn_row_ends_the_file(tmp_path):
    from agents.resume import truncate_monitor

    mon = tmp_path / "monitor"
    a = _monitor(mon, 0, [3, 3], tail="-2.0,x,1\n-3.0,2,9.0\n")  # a corrupt row: it and all after it go
    (mon / "notes.csv").write_text("r,l,t\n1,1000,1\n")
    (mon / "0.monitor.csv.bak").write_text("x")
    assert truncate_monitor(mon, 1000) == 2 and _lengths(a) == [3, 3]  # one file: n_envs = 1
    assert (mon / "notes.csv").read_text() == "r,l,t\n1,1000,1\n"
    assert truncate_monitor(tmp_path / "missing", 10) == 0
    # the last kept row of a file cut right after it gets its newline back
    a.write_text(HEADER + "-1.5,3,1.0\n-2.5,3,2.0")
    assert truncate_monitor(mon, 6) == 2 and a.read_text() == HEADER + "-1.5,3,1.0\n-2.5,3,2.0\n"


def test_episode_log_keeps_the_episodes_up_to_the_checkpoint_step(tmp_path):
    from agents.callbacks import read_episode_log, truncate_episode_log
    from agents.resume import EPISODE_LOG, prepare_resume

    log = tmp_path / EPISODE_LOG
    log.write_text("".join(json.dumps({"timestep": t, "rounds": t}) + "\n" for t in (5, 10, 11)) + '{"timest')
    _monitor(tmp_path / "monitor", 0, [5, 5, 1])
    kept = prepare_resume(tmp_path, 10, None)
    assert kept == {"monitor_rows": 2, "episodes": 2, "tensorboard": None}
    assert [e["timestep"] for e in read_episode_log(log)] == [5, 10]
    assert truncate_episode_log(log, 9) == 1 and truncate_episode_log(tmp_path / "none.jsonl", 9) == 0


def test_continue_monitor_keeps_the_start_time_or_writes_the_header(tmp_path):
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor

    from agents.resume import continue_monitor

    fresh = continue_monitor(Monitor(gym.make("CartPole-v1"), str(tmp_path / "0"), override_existing=False))
    lines = (tmp_path / "0.monitor.csv").read_text().splitlines()
    assert json.loads(lines[0][1:]) == {"t_start": fresh.t_start, "env_id": "CartPole-v1"} and lines[1] == "r,l,t"
    fresh.close()
    from gymnasium.envs.classic_control import CartPoleEnv

    bare = continue_monitor(Monitor(CartPoleEnv(), str(tmp_path / "2"), override_existing=False))  # no spec
    assert json.loads((tmp_path / "2.monitor.csv").read_text().split("\n")[0][1:])["env_id"] == "None"
    bare.close()
    _monitor(tmp_path, 1, [4])
    resumed = continue_monitor(Monitor(gym.make("CartPole-v1"), str(tmp_path / "1"), override_existing=False))
    assert resumed.t_start == 100.5  # t stays the time since the run began
    resumed.close()
    assert _lengths(tmp_path / "1.monitor.csv") == [4]


def test_checkpoint_timesteps_refuses_what_is_not_a_model_zip(tmp_path):
    from agents.resume import checkpoint_timesteps

    (tmp_path / "a.zip").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="is not a readable Stable-Baselines3 checkpoint"):
        checkpoint_timesteps(tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as z:
        z.writestr("data", json.dumps({"gamma": 0.9}))
    with pytest.raises(UsageError, match="no num_timesteps"):
        checkpoint_timesteps(tmp_path / "b.zip")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.writestr("data", json.dumps({"num_timesteps": 192}))
    assert checkpoint_timesteps(tmp_path / "c.zip") == 192


def test_purge_tensorboard_marks_the_latest_run_after_its_files(tmp_path):
    from agents.resume import purge_tensorboard

    assert purge_tensorboard(tmp_path / "tb", "ppo", 64) is None
    (tmp_path / "tb" / "ppo_1").mkdir(parents=True)
    old = tmp_path / "tb" / "ppo_2"
    old.mkdir()
    (old / "events.out.tfevents.1700000000.host.1.0").write_bytes(b"")
    assert purge_tensorboard(tmp_path / "tb", "ppo", 64) == old
    names = sorted(p.name for p in old.iterdir())
    assert len(names) == 2 and names[0] == "events.out.tfevents.1700000000.host.1.0"  # the marker sorts after

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    events = list(EventFileLoader(str(old / names[1])).Load())
    assert [e.session_log.status for e in events if e.HasField("session_log")] == [1]  # SessionLog.START
    assert [e.step for e in events if e.HasField("session_log")] == [65]  # purge_step = N + 1


# ---- the evaluation file: restored up to the checkpoint, never left half-written ----------------------------------

def _eval_file(path: Path, steps, width=2, successes=None) -> None:
    arrays = dict(timesteps=np.array(steps), results=np.arange(len(steps) * width, dtype=float).reshape(-1, width),
                  ep_lengths=np.full((len(steps), width), 5))
    if successes is not None:
        arrays["successes"] = np.array(successes)
    np.savez(path, **arrays)


def _callback(folder: Path, width=2) -> SimpleNamespace:
    return SimpleNamespace(log_path=str(folder / "evaluations"), n_eval_episodes=width)


def test_restore_evaluations_keeps_those_up_to_the_checkpoint_step(tmp_path):
    from agents.resume import restore_evaluations

    _eval_file(tmp_path / "evaluations.npz", [96, 192, 288], successes=[[1, 0], [1, 1], [0, 0]])
    cb = _callback(tmp_path)
    assert restore_evaluations(cb, 192) == 2  # the evaluation at the checkpoint's own step is kept
    assert cb.evaluations_timesteps == [96, 192] and cb.evaluations_results == [[0.0, 1.0], [2.0, 3.0]]
    assert cb.evaluations_length == [[5, 5], [5, 5]] and cb.evaluations_successes == [[1, 0], [1, 1]]
    cb = _callback(tmp_path)
    assert restore_evaluations(cb, 191) == 1 and cb.evaluations_timesteps == [96]
    assert restore_evaluations(SimpleNamespace(log_path=None), 10) == 0
    assert restore_evaluations(_callback(tmp_path / "none"), 10) == 0
    with pytest.raises(UsageError, match="holds 2 episodes per evaluation but this run evaluates 3"):
        restore_evaluations(_callback(tmp_path, width=3), 1000)


@pytest.mark.parametrize("cut", [0, 40, -22], ids=["empty", "head", "no-directory"])
def test_restore_evaluations_moves_a_file_cut_by_a_kill_aside(tmp_path, cut):
    from agents.resume import restore_evaluations

    _eval_file(tmp_path / "evaluations.npz", [96])
    data = (tmp_path / "evaluations.npz").read_bytes()
    (tmp_path / "evaluations.npz").write_bytes(data[:cut])  # what np.savez leaves when killed while writing
    cb = _callback(tmp_path)
    with pytest.warns(UserWarning, match="unreadable"):
        assert restore_evaluations(cb, 1000) == 0
    assert not (tmp_path / "evaluations.npz").exists()
    assert (tmp_path / "evaluations.npz.unreadable").read_bytes() == data[:cut]
    assert not hasattr(cb, "evaluations_timesteps")


class _Killed(BaseException):
    """Stands for the SIGKILL that stops a process in the middle of a write."""


def _kill_on_save(monkeypatch, at: int) -> None:
    """Make SB3's EvalCallback die inside its ``at``-th np.savez, after the target was opened for writing."""
    import stable_baselines3.common.callbacks as sb3_callbacks

    calls = {"n": 0}
    real = np.savez

    def savez(file, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] < at:
            return real(file, *args, **kwargs)
        if hasattr(file, "write"):
            file.write(b"PK\x03\x04 half")
        else:  # a path: np.savez opens it with truncation (zipfile.ZipFile(path, "w")) and buffers what it writes
            Path(f"{file}.npz").write_bytes(b"")
        raise _Killed

    monkeypatch.setattr(sb3_callbacks.np, "savez", savez)


def _learn_with(callback, tmp_path) -> None:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64, callback=callback)


@pytest.mark.parametrize("maskable", [False, True])
def test_atomic_eval_callback_writes_the_same_file_and_a_kill_mid_save_keeps_the_last_complete_one(
        tmp_path, monkeypatch, maskable):
    from agents.callbacks import atomic_eval_callback

    def make(folder):
        from stable_baselines3.common.env_util import make_vec_env

        return atomic_eval_callback(make_vec_env("CartPole-v1", n_envs=1, seed=1), maskable=maskable, eval_freq=16,
                                    n_eval_episodes=2, log_path=str(folder), verbose=0, warn=False,
                                    **({"use_masking": False} if maskable else {}))

    cb = make(tmp_path / "ok")
    _learn_with(cb, tmp_path)
    with np.load(tmp_path / "ok" / "evaluations.npz") as ev:
        assert ev["timesteps"].tolist() == cb.evaluations_timesteps == [16, 32, 48, 64]
        assert ev["results"].shape == (4, 2) and ev["results"].tolist() == cb.evaluations_results
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["evaluations.npz"]  # no temporary file left
    assert cb.log_path == str(tmp_path / "ok" / "evaluations")

    _kill_on_save(monkeypatch, at=3)
    cb = make(tmp_path / "killed")
    with pytest.raises(_Killed):
        _learn_with(cb, tmp_path)
    with np.load(tmp_path / "killed" / "evaluations.npz") as ev:  # the second evaluation's complete file
        assert ev["timesteps"].tolist() == [16, 32]
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["evaluations.npz"]


def test_sb3s_own_eval_callback_leaves_a_cut_file_behind(tmp_path, monkeypatch):
    # the cause of the flaky killed-run resume: SB3 rewrites evaluations.npz in place
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env

    _kill_on_save(monkeypatch, at=3)
    cb = EvalCallback(make_vec_env("CartPole-v1", n_envs=1, seed=1), eval_freq=16, n_eval_episodes=2,
                      log_path=str(tmp_path), verbose=0, warn=False)
    with pytest.raises(_Killed):
        _learn_with(cb, tmp_path)
    with pytest.raises(EOFError):  # the error of the flaky test: the file is empty
        np.load(tmp_path / "evaluations.npz")


KILL_INSIDE_SAVEZ = """
import os, signal, sys
import numpy as np
import numpy.lib.format as fmt
from fedsllm_env.atomic import atomic_write

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # a kill -9 while np.savez writes the first array

fmt.write_array = die
arrays = dict(timesteps=np.array([96, 192]), results=np.zeros((2, 1)), ep_lengths=np.ones((2, 1)))
if sys.argv[2] == "in-place":
    np.savez(sys.argv[1], **arrays)  # what SB3's EvalCallback does with log_path
else:
    atomic_write(sys.argv[1] + ".npz", lambda fh: np.savez(fh, **arrays))  # what AtomicEvaluations does
"""


@pytest.mark.parametrize("how", ["in-place", "atomic"])
def test_a_real_kill_inside_np_savez(tmp_path, how):
    import signal

    target = tmp_path / "evaluations"
    _eval_file(target, [96])  # the complete file of the evaluation before
    before = (tmp_path / "evaluations.npz").read_bytes()
    proc = subprocess.run([sys.executable, "-c", KILL_INSIDE_SAVEZ, str(target), how], capture_output=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    if how == "in-place":  # np.savez opened the file with truncation: the resume's np.load finds nothing
        assert (tmp_path / "evaluations.npz").read_bytes() == b""
        with pytest.raises(EOFError):
            np.load(tmp_path / "evaluations.npz")
    else:  # the final file is the complete one before; only a hidden temporary file is left over
        assert (tmp_path / "evaluations.npz").read_bytes() == before
        assert [p.name for p in tmp_path.iterdir() if p.name != "evaluations.npz"][0].startswith(".evaluations.npz.")


def test_restore_evaluations_without_successes_and_with_an_npz_log_path(tmp_path):
    from agents.resume import restore_evaluations

    _eval_file(tmp_path / "evaluations.npz", [96, 192])  # no "successes": an env without is_success
    cb = SimpleNamespace(log_path=str(tmp_path / "evaluations.npz"), n_eval_episodes=2)  # the suffix given
    assert restore_evaluations(cb, 100) == 1 and cb.evaluations_timesteps == [96]
    assert not hasattr(cb, "evaluations_successes")
    assert (tmp_path / "evaluations.npz").is_file()  # read, not moved aside
    assert restore_evaluations(object(), 100) == 0  # a callback without a log path


def test_prepare_resume_cuts_with_the_runs_env_count_and_marks_tensorboard(tmp_path):
    from agents.resume import prepare_resume

    _monitor(tmp_path / "monitor", 0, [5, 5, 5])  # env 1's file was lost: n_envs = 2 is given
    (tmp_path / "tb" / "ppo_1").mkdir(parents=True)  # SB3's run folder, no event file yet
    kept = prepare_resume(tmp_path, 20, "ppo", n_envs=2)
    assert kept == {"monitor_rows": 2, "episodes": 0, "tensorboard": tmp_path / "tb" / "ppo_1"}
    assert len(list((tmp_path / "tb" / "ppo_1").glob("events.out.tfevents.*"))) == 1


def test_the_purge_marker_is_stamped_after_the_newest_event_file_second(tmp_path):
    import time

    from agents.resume import purge_tensorboard

    folder = tmp_path / "tb" / "ppo_1"
    folder.mkdir(parents=True)
    now = int(time.time())
    (folder / f"events.out.tfevents.{now}.zzzz.1.0").write_bytes(b"")  # written this very second
    assert purge_tensorboard(tmp_path / "tb", "ppo", 10) == folder
    stamps = sorted(int(p.name.split(".")[3]) for p in folder.iterdir())
    assert stamps[0] == now and stamps[1] > now  # TensorBoard reads the marker after the old file
    assert int(time.time()) > stamps[1]  # and the resumed run's files will sort after the marker

"""The output directory's lock (one writer per ``--out``), on local files and child processes.

A child process takes the lock the way a job does; checked: a second holder is refused with
the directory and the holder's pid, a lock left by a child killed with SIGKILL is taken
over, Ctrl-C in the holder releases it, ``wait`` waits for the holder to end, a lock file
that is a symbolic link or holds someone's text is handled, and the fallback without
``flock`` decides by the pid. No sockets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import intake_helio as ih
from intake_helio.app import lock as lock_mod
from intake_helio.app.lock import LOCK_NAME, OutLock, check_wait
from intake_helio.app.outdir import OutputDirError
from intake_helio.base.errors import ArgumentError, HelioError

HOLDER = """
import sys, time
from intake_helio.app.lock import OutLock
out, seconds = sys.argv[1], float(sys.argv[2])
try:
    with OutLock(out):
        print("held", flush=True)
        time.sleep(seconds)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("released", flush=True)
"""


def _holder(out, seconds: float = 60.0) -> subprocess.Popen:
    """A child process holding the lock of ``out`` for ``seconds`` (it printed "held")."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if line != "held\n":
        proc.kill()
        raise AssertionError(f"the holder did not start: {line!r} {proc.communicate()}")
    return proc


@pytest.fixture
def children():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _record(out) -> dict:
    return json.loads((out / LOCK_NAME).read_text())


# ----------------------------------------------------------------------------- one process
def test_held_while_in_the_block_and_removed_after(tmp_path):
    out = tmp_path / "new" / "out"  # created with its parents
    with OutLock(out) as held:
        assert held.held and held.taken_over == {}
        record = _record(out)
        assert record["pid"] == os.getpid() and record["host"] and record["started"]
        with pytest.raises(ih.OutputLockedError) as refused:  # another open of it: refused
            OutLock(out).acquire()
    assert not (out / LOCK_NAME).exists() and not held.held
    err = refused.value
    assert isinstance(err, HelioError) and isinstance(err, OSError)
    assert err.pid == os.getpid() and err.path == str(out)
    assert str(out) in str(err) and f"pid {os.getpid()}" in str(err)
    with OutLock(out):  # free again
        pass


def test_released_on_an_error_in_the_block(tmp_path):
    with pytest.raises(ZeroDivisionError), OutLock(tmp_path):
        1 / 0  # noqa: B018
    assert not (tmp_path / LOCK_NAME).exists()
    OutLock(tmp_path).acquire().release()


def test_wait_is_checked():
    assert check_wait(None) == 0.0 and check_wait(2) == 2.0 and check_wait(float("inf")) > 1e9
    for bad in (-1, "5", True, float("nan")):
        with pytest.raises(ArgumentError, match="wait_lock="):
            check_wait(bad)


def test_a_symlinked_lock_file_is_refused_and_kept(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("theirs")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(victim)
    with pytest.raises(OutputDirError, match="lock file .* is a symbolic link"):
        OutLock(out).acquire()
    assert victim.read_text() == "theirs" and (out / LOCK_NAME).is_symlink()


def test_text_in_the_lock_file_is_not_shown(tmp_path):
    # a lock file anyone may have written: only a checked pid, host and time are used
    (tmp_path / LOCK_NAME).write_text('{"pid": 1, "host": "\\u001b[31mx\\u202e", "started": 5}')
    with OutLock(tmp_path) as held:
        assert held.taken_over == {"pid": 1}
    (tmp_path / LOCK_NAME).write_bytes(b"\xff not a record")
    with OutLock(tmp_path) as held:
        assert held.taken_over == {}


# ----------------------------------------------------------------------------- child processes
def test_a_second_holder_is_refused_then_a_killed_one_is_taken_over(tmp_path, children):
    out = tmp_path / "out"
    children.append(proc := _holder(out))
    t0 = time.monotonic()
    with pytest.raises(ih.OutputLockedError) as refused:
        OutLock(out).acquire()
    assert time.monotonic() - t0 < 1  # refused at once
    assert refused.value.pid == proc.pid
    assert f"pid {proc.pid} on host " in str(refused.value)
    assert repr(str(out)) in str(refused.value) and LOCK_NAME in str(refused.value)

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _record(out)["pid"] == proc.pid  # left behind, naming a dead process
    with OutLock(out) as held:  # stale: taken over
        assert held.taken_over["pid"] == proc.pid
        assert _record(out)["pid"] == os.getpid()
    assert not (out / LOCK_NAME).exists()


def test_ctrl_c_in_the_holder_releases_it(tmp_path, children):
    children.append(proc := _holder(tmp_path))
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and stdout == "interrupted\n"
    assert not (tmp_path / LOCK_NAME).exists()
    with OutLock(tmp_path) as held:
        assert held.taken_over == {}  # released, not left to be taken over


def test_wait_waits_for_the_holder_to_end(tmp_path, children):
    children.append(proc := _holder(tmp_path, seconds=1.5))
    with pytest.raises(ih.OutputLockedError, match=r"after waiting 0\.3 s"):
        OutLock(tmp_path, wait=0.3).acquire()
    t0 = time.monotonic()
    with OutLock(tmp_path, wait=30, poll=0.05) as held:
        waited = time.monotonic() - t0
        assert held.taken_over == {}  # the holder released it
        assert proc.wait(timeout=30) == 0 and proc.stdout.read() == "released\n"
    assert 0.3 < waited < 20


def test_without_flock_the_pid_decides(tmp_path, children, monkeypatch):
    children.append(proc := _holder(tmp_path / "live"))
    monkeypatch.setattr(lock_mod, "fcntl", None)  # as on a file system refusing flock
    with pytest.raises(ih.OutputLockedError) as refused:  # the record names a live process
        OutLock(tmp_path / "live").acquire()
    assert refused.value.pid == proc.pid

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = tmp_path / "gone"
    gone.mkdir()
    record = {"pid": int(dead.stdout), "host": lock_mod._hostname(), "started": "2024-01-01"}
    (gone / LOCK_NAME).write_text(json.dumps(record))
    with OutLock(gone) as held:
        assert held.taken_over["pid"] == int(dead.stdout)
        with pytest.raises(ih.OutputLockedError):  # this process now holds it
            OutLock(gone).acquire()
    assert not (gone / LOCK_NAME).exists()

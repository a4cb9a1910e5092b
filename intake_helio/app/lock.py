"""One writer per output directory: the lock a job holds on ``--out`` while it runs.

Two runs writing one ``--out`` at once would interleave their parts and manifests (and a
later ``--resume`` would fail on what they left). A job therefore holds
``<out>/.intake-helio.lock`` from before its first write until it returns, raises or is
interrupted (Ctrl-C, SIGTERM); a second run is refused with :class:`OutputLockedError`
naming the directory and the holder, or waits for it (``wait_lock`` seconds, the CLI's
``--wait-lock``).

Exclusion is :func:`fcntl.flock` on the lock file: the system releases it when the holding
process ends in any way, so a run killed with SIGKILL never leaves the directory locked;
its lock file (still naming it) is simply taken over by the next run. The file's content
only names the holder (pid, host, start time) for the message. On release the file is
removed while still locked; a run that opened it just before checks after locking that
the name still leads to the file it locked, and starts again otherwise.

Where ``flock`` is not available (no :mod:`fcntl`, or a file system that refuses it) the
content decides: a lock file naming a process that still exists on this host (or another
host, which cannot be checked) is held, one naming a process that no longer exists is
stale and taken over. That fallback is not atomic between two runs starting in the same
instant.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..base.errors import ArgumentError, OutputLockedError
from .outdir import refuse_symlink

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "OutLock", "OutputLockedError", "check_wait", "hold_out_dir"]

#: The lock file's name inside the output directory.
LOCK_NAME = ".intake-helio.lock"
_RECORD_BYTES = 4096
_HOST = re.compile(r"[A-Za-z0-9._-]{1,253}")
_STARTED = re.compile(r"[0-9T:.+Z-]{1,40}")
# errors of flock() meaning "not supported here", as opposed to "held by someone else"
_UNSUPPORTED = {errno.ENOLCK, errno.EINVAL, errno.ENOSYS, getattr(errno, "EOPNOTSUPP", -1)}
log = logging.getLogger(__name__)


def check_wait(wait: Any) -> float:
    """``wait_lock`` as seconds to wait for another run's lock (None: 0, refuse at once).

    Raises
    ------
    ArgumentError
        ``wait`` is not a number of seconds >= 0 (``math.inf``: wait as long as it takes).
    """
    if wait is None:
        return 0.0
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not wait >= 0:
        raise ArgumentError(
            f"wait_lock={wait!r}; expected seconds >= 0 to wait for another run on the same "
            "out directory (None or 0: refuse at once)"
        )
    return float(wait)


def _record() -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"tool": "intake-helio", "pid": os.getpid(), "host": _hostname(), "started": started}


def _hostname() -> str:
    host = socket.gethostname()
    return host if _HOST.fullmatch(host) else "?"


def _parse(raw: bytes) -> dict[str, Any]:
    """The holder named by a lock file's bytes: only a pid, a host name and a time (checked:
    the file sits in a directory anyone may have written); {} when it is not a record."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    pid, host, started = data.get("pid"), data.get("host"), data.get("started")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
        return {}
    out: dict[str, Any] = {"pid": pid}
    if isinstance(host, str) and _HOST.fullmatch(host):
        out["host"] = host
    if isinstance(started, str) and _STARTED.fullmatch(started):
        out["started"] = started
    return out


def describe(holder: dict[str, Any]) -> str:
    """A holder record as text: ``pid 123 on host h, started 2024-05-01T12:00:00Z``."""
    if not holder:
        return "a run whose record is not readable yet"
    text = f"pid {holder['pid']}"
    if "host" in holder:
        text += f" on host {holder['host']}"
    if "started" in holder:
        text += f", started {holder['started']}"
    return text


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the process a record names may still run (another host's: assumed so)."""
    if not holder:
        return False
    if holder.get("host", _hostname()) != _hostname():
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user
        return True
    return True


class OutLock:
    """The exclusive hold of one output directory by one run.

    Use it as a context manager (or :meth:`acquire` / :meth:`release`)::

        with OutLock(out, wait=0):
            ...  # the only run writing into out

    Parameters
    ----------
    out_dir : path
        The output directory; created (with its parents) if missing.
    wait : float, optional
        Seconds to wait for another run's lock to be released (None or 0: refuse at once).
    poll : float
        Seconds between tries while waiting.

    Attributes
    ----------
    taken_over : dict
        After :meth:`acquire`: the record of a run that ended without releasing its lock
        (killed) and whose lock file was taken over; empty otherwise.
    """

    def __init__(self, out_dir: str | os.PathLike, wait: float | None = None, poll: float = 0.1):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self.wait = check_wait(wait)
        self.poll = poll
        self.taken_over: dict[str, Any] = {}
        self._fd: int | None = None
        self._flock = True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> OutLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<OutLock {str(self.path)!r} {'held' if self.held else 'free'}>"

    # ------------------------------------------------------------------ acquire / release
    def acquire(self) -> OutLock:
        """Take the lock, waiting up to ``wait`` seconds for another run to release it.

        Raises
        ------
        OutputLockedError
            Another run still holds it (the message names the directory and its pid).
        ~intake_helio.app.outdir.OutputDirError
            The lock file is a symbolic link (never written through).
        """
        if self.held:
            raise RuntimeError(f"{self!r} is already held")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait
        while True:
            holder = self._try()
            if holder is None:
                return self
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._refusal(holder)
            time.sleep(min(self.poll, left))

    def release(self) -> None:
        """Give the lock back and remove the lock file (nothing if not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._is_path_of(fd):  # removed while still locked: see the module's notes
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        finally:
            try:
                self._unlock(fd)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ internals
    def _open(self) -> int:
        refuse_symlink(self.path, "lock file")
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a link planted after the check above
                refuse_symlink(self.path, "lock file")
            raise

    def _try(self) -> dict[str, Any] | None:
        """One try: None when the lock is now ours, else the holder's record."""
        while True:
            fd: int | None = self._open()
            try:
                if not self._lock(fd):
                    return self._holder(fd)
                if not self._is_path_of(fd):  # released and removed meanwhile: open anew
                    continue
                self._take(fd)
                self._fd, fd = fd, None
                return None
            finally:
                if fd is not None:
                    self._unlock(fd)
                    os.close(fd)

    def _take(self, fd: int) -> None:
        """Write this run's record into the locked file (noting a holder that was killed)."""
        previous = _parse(_read(fd))
        if previous.get("pid") == os.getpid() and previous.get("host") == _hostname():
            previous = {}  # this process's own earlier run
        if previous:
            self.taken_over = previous
            log.info(
                "took over %s of %s, which ended without releasing it",
                self.path,
                describe(previous),
            )
        _write(fd, json.dumps(_record()).encode())

    def _unlock(self, fd: int) -> None:
        if self._flock and fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock(self, fd: int) -> bool:
        """flock(fd) without blocking: True if taken, False if another holds it."""
        if self._flock and fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    raise
                self._flock = False  # this file system refuses flock: the content decides
        return not _alive(_parse(_read(fd)))

    def _holder(self, fd: int) -> dict[str, Any]:
        """The record of the run holding the lock (read again briefly: it may be writing it)."""
        for _ in range(5):
            holder = _parse(_read(fd))
            if holder:
                return holder
            time.sleep(0.02)
        return {}

    def _is_path_of(self, fd: int) -> bool:
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        own = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def _refusal(self, holder: dict[str, Any]) -> OutputLockedError:
        waited = f" after waiting {self.wait:g} s" if self.wait else ""
        return OutputLockedError(
            f"--out {str(self.out_dir)!r} is in use by another intake-helio run "
            f"({describe(holder)}; lock file {str(self.path)!r}){waited}: two runs writing "
            "one directory would corrupt its parts; wait for that run to end (--wait-lock "
            "SECONDS, or wait_lock= in Python, waits for it) or choose another --out",
            path=str(self.out_dir),
            lock=str(self.path),
            holder=holder,
        )


def _read(fd: int) -> bytes:
    return os.pread(fd, _RECORD_BYTES, 0)


def _write(fd: int, data: bytes) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


@contextlib.contextmanager
def hold_out_dir(out_dir: str | os.PathLike, wait: float | None = None) -> Iterator[OutLock]:
    """``with hold_out_dir(out, wait):``: the block runs as the only writer of ``out``.

    Raises
    ------
    OutputLockedError
        Another run holds ``out`` (after waiting ``wait`` seconds).
    """
    lock = OutLock(out_dir, wait)
    with lock:
        yield lock

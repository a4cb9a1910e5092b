"""Zero-copy relaying of response bodies for the test proxies (Linux ``os.splice``).

The shaping proxy stands in for the network between S3 and a worker; on a 2-core machine
it shares the cores with what it measures. Copying each body through Python (``readinto``
then ``sendall``: two copies between kernel and user space, ~1.3 ms of CPU per MB of
frames measured in ``benchmarks/cloud.py``) is a cost the real network does not put on the
worker's cores. :class:`Splicer` moves the bytes from the upstream socket to the client
socket through a pipe inside the kernel instead. Where ``os.splice`` is missing (not
Linux) :func:`splicer` returns None and the proxies copy as before.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from collections.abc import Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - not Unix
    fcntl = None  # type: ignore[assignment]

__all__ = ["Splicer", "splicer"]

_PIPE_BYTES = 1 << 20  # asked of F_SETPIPE_SZ; the kernel may give less (64 KiB default)


class Splicer:
    """A pipe that moves bytes between two sockets without copying them through Python.

    Parameters
    ----------
    timeout : float
        Seconds to wait for either socket to be ready, per wait; then ``TimeoutError``.
    """

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._r, self._w = os.pipe()
        self.capacity = 1 << 16
        set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
        if set_size is not None:
            with contextlib.suppress(OSError):
                self.capacity = fcntl.fcntl(self._w, set_size, _PIPE_BYTES)

    def close(self) -> None:
        """Close the pipe (idempotent)."""
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._r = self._w = -1

    def __enter__(self) -> Splicer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def move(
        self,
        src: socket.socket,
        dst: socket.socket,
        n: int,
        arrived: Callable[[int], None] | None = None,
    ) -> int:
        """Move up to ``n`` bytes from ``src`` to ``dst``; 0 when ``src`` has ended.

        Returns as soon as some bytes (at most the pipe's capacity) have arrived and all of
        them have been passed on. ``arrived(got)``, when given, is called once the bytes are
        in the pipe and before any of them reach ``dst``: whoever counts them never lags the
        peer that receives them.
        """
        n = min(n, self.capacity)
        while True:
            try:
                got = os.splice(src.fileno(), self._w, n)
                break
            except BlockingIOError:
                _wait(src, select.POLLIN, self.timeout)
        if got and arrived is not None:
            arrived(got)
        left = got
        while left:
            try:
                left -= os.splice(self._r, dst.fileno(), left)
            except BlockingIOError:
                _wait(dst, select.POLLOUT, self.timeout)
        return got


def _wait(sock: socket.socket, event: int, timeout: float) -> None:
    poller = select.poll()
    poller.register(sock.fileno(), event)
    if not poller.poll(timeout * 1000):
        raise TimeoutError(f"socket not ready within {timeout:g} s")


def splicer(timeout: float) -> Splicer | None:
    """A :class:`Splicer`, or None where ``os.splice`` is not available."""
    if not hasattr(os, "splice") or not hasattr(select, "poll"):
        return None
    try:
        return Splicer(timeout)
    except OSError:
        return None

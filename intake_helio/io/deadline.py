"""The total deadline of one storage request: ``allowance + bytes / min-rate`` seconds.

A read timeout (``intake_helio.timeouts.read``) only bounds the silence between two bytes: a
server that sends one byte every 29 s keeps a request alive for ever. A :class:`Deadline`
bounds the whole request instead, and scales with its size: a request whose body has ``N``
bytes completes within ``allowance + N / min_rate`` seconds. :class:`RequestClock` enforces
it progressively, on the event loop running the request:

* the response headers must arrive within ``allowance`` seconds of the start;
* while the body streams, the request is cut off once ``elapsed > allowance +
  received / min_rate`` (a trickling server fails after about ``allowance`` seconds; an
  honest download at ``min_rate`` or more never does);
* a body read in one call (its ``Content-Length`` known) has ``allowance + length /
  min_rate`` seconds from the start.

Then the request is cancelled (its connection dropped) and
:class:`~intake_helio.base.errors.ReadDeadlineError` raised, which is not retried.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..base.errors import ArgumentError, ReadDeadlineError

if TYPE_CHECKING:  # pragma: no cover
    from ..base.settings import CatalogSettings

__all__ = [
    "Deadline",
    "Late",
    "ReadDeadlineError",
    "RequestClock",
    "deadline_error",
    "read_body",
    "returning_late",
]

#: Bytes asked of a response body per read while it is streamed to a bound.
_BODY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Deadline:
    """How long one request may take: ``allowance + bytes / min_rate`` seconds.

    Picklable (it travels with frame tasks inside their settings).

    Parameters
    ----------
    allowance : float
        Seconds for the response headers, and on top of the body's time at ``min_rate``.
    min_rate : float
        The least rate, in bytes per second, a body must keep up on average.

    Raises
    ------
    ArgumentError
        A value is not a finite number > 0.
    """

    allowance: float
    min_rate: float

    def __post_init__(self) -> None:
        for name in ("allowance", "min_rate"):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and value > 0):
                raise ArgumentError(f"Deadline {name}={value!r}; expected a finite number > 0")

    @classmethod
    def from_settings(cls, settings: CatalogSettings) -> Deadline:
        """The deadline of ``intake_helio.timeouts.allowance`` and ``timeouts.min-rate``.

        Parameters
        ----------
        settings : CatalogSettings
            A settings snapshot (:func:`~intake_helio.base.settings.catalog_settings`, or
            the ``catalog`` of :func:`~intake_helio.base.settings.current`).

        Returns
        -------
        Deadline
        """
        return cls(float(settings.allowance), float(settings.min_rate))

    @classmethod
    def current(cls) -> Deadline:
        """The deadline of the settings in force now (``dask.config``), checked."""
        from ..base.settings import catalog_settings

        return cls.from_settings(catalog_settings())

    def seconds(self, nbytes: int) -> float:
        """The most seconds a request whose body has ``nbytes`` bytes may take."""
        return self.allowance + max(0, nbytes) / self.min_rate


def deadline_error(
    deadline: Deadline, elapsed: float, received: int, expected: int | None = None
) -> ReadDeadlineError:
    """The error of a request cut off after ``elapsed`` seconds and ``received`` bytes.

    ``expected``: the body's length, for a body read in one call (``received`` is then not
    known). The message names the settings, never the URL (the caller does, masked), and
    stays under the 200 characters a frame's detail shows.
    """
    a, r = deadline.allowance, deadline.min_rate
    rate = int(r) if r == int(r) else r
    got = f"{received} bytes" if expected is None else f"a {expected}-byte body"
    return ReadDeadlineError(
        f"no complete response in {elapsed:.1f} s ({got}; deadline: intake_helio.timeouts."
        f"allowance={a:g} s + bytes / timeouts.min-rate={rate} B/s); the server is too slow: "
        "retry later or lower min-rate",
        elapsed,
        received,
        a,
        r,
    )


class RequestClock:
    """The running deadline of one request: an async context manager around it.

    Enter it on the event loop that runs the request, before the request is sent; the
    request is cancelled when its time is up and :class:`ReadDeadlineError` raised on
    leaving the block (chained to the ``TimeoutError``). Inside, call :meth:`expect` before
    reading a body of known length in one call, or :meth:`received` after each piece of a
    streamed body.

    Parameters
    ----------
    deadline : Deadline
    """

    __slots__ = ("_loop", "_scope", "_t0", "deadline", "expected", "got")

    def __init__(self, deadline: Deadline):
        self.deadline = deadline
        self.got = 0
        self.expected: int | None = None

    async def __aenter__(self) -> RequestClock:
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._scope = asyncio.timeout_at(self._t0 + self.deadline.allowance)
        await self._scope.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        try:
            return await self._scope.__aexit__(exc_type, exc, tb)
        except TimeoutError as timeout:
            if not self._scope.expired():  # pragma: no cover - not this scope's
                raise
            raise self.error() from timeout

    def error(self) -> ReadDeadlineError:
        """The error for this request cut off now."""
        elapsed = self._loop.time() - self._t0
        return deadline_error(self.deadline, elapsed, self.got, self.expected)

    def expect(self, nbytes: int) -> None:
        """The body has ``nbytes`` bytes, read in one call: its deadline from the start."""
        self.expected = nbytes
        self._scope.reschedule(self._t0 + self.deadline.seconds(nbytes))

    def received(self, nbytes: int) -> None:
        """``nbytes`` more bytes of the body arrived: the deadline moves on by their time.

        Raises
        ------
        ReadDeadlineError
            At once when the time for the bytes received so far has passed already.
        """
        self.got += nbytes
        when = self._t0 + self.deadline.seconds(self.got)
        now = self._loop.time()
        if when <= now:
            raise self.error() from TimeoutError(
                f"{now - self._t0:.1f} s > {when - self._t0:.1f} s for {self.got} bytes"
            )
        self._scope.reschedule(when)


async def read_body(
    read: Callable[[int], Awaitable[bytes]],
    read_all: Callable[[], Awaitable[bytes]] | None,
    limit: int,
    clock: RequestClock,
    framed: int | None = None,
) -> tuple[bytes, bool]:
    """``(data, more)``: at most ``limit`` bytes, read with ``read(n)`` until the body ends.

    ``read_all`` (one read of a body framed by a ``Content-Length`` of ``framed``, at most
    ``limit``, without transfer or content coding, so the transport itself stops there) is
    used when given: it is the transport's own fast path, with the deadline of ``framed``
    bytes (:meth:`RequestClock.expect`). A streamed body moves the ``clock``'s deadline on
    with each piece (:meth:`RequestClock.received`). ``more``: the body went on past
    ``limit`` (one more chunk was looked at to tell).
    """
    if read_all is not None:
        clock.expect(framed or 0)
        return await read_all(), False
    parts: list[bytes] = []
    got = 0
    while got <= limit:
        piece = await read(min(_BODY_CHUNK, limit + 1 - got))
        if not piece:
            return b"".join(parts), False
        clock.received(len(piece))
        parts.append(piece)
        got += len(piece)
    parts[-1] = parts[-1][: len(parts[-1]) - (got - limit)]  # the byte that told "more"
    return b"".join(parts), True


class Late:
    """A :class:`ReadDeadlineError` as a value (see :func:`returning_late`)."""

    __slots__ = ("error",)

    def __init__(self, error: ReadDeadlineError):
        self.error = error


async def returning_late(func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """``await func(*args, **kwargs)``; a :class:`ReadDeadlineError` it raises is returned
    as a :class:`Late`.

    fsspec's ``sync()`` raises its own ``FSTimeoutError`` in place of any ``TimeoutError``
    a coroutine raises (or returns): a deadline's error crosses it boxed, to be raised as
    itself.
    """
    try:
        return await func(*args, **kwargs)
    except ReadDeadlineError as exc:
        return Late(exc)

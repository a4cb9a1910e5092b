"""Bounded reads: never more bytes than asked, within a deadline, on any fsspec filesystem.

fsspec's ``cat_file`` reads a response body to its end, whatever its size. The readers here
stream the body of s3fs and fsspec HTTP requests to a bound, with a total deadline per request
(:mod:`intake_helio.io.deadline`), and fall back to the public API elsewhere. They use private
APIs of fsspec, s3fs and aiobotocore: each names the version it was written against and its
fallback when the private API is gone. Third-party imports are made when first needed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..deadline import Deadline, Late, ReadDeadlineError, RequestClock, read_body, returning_late

__all__ = [
    "BoundedBody",
    "ConnectionRate",
    "Deadline",
    "ReadDeadlineError",
    "cat_bounded",
    "cat_ranges_bounded",
    "connection_rate",
    "fsspec_cat_file",
    "fsspec_sync",
    "split_ranges",
    "start_async_cat_file",
    "start_cat_bounded",
]


# --------------------------------------------------------------------------- fsspec
def start_async_cat_file(fs: Any, path: str, **kwargs: Any) -> concurrent.futures.Future | None:
    """Start ``fs.cat_file(path, **kwargs)`` on the event loop of an async filesystem.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The filesystem; only fsspec async filesystems used synchronously (s3fs, gcsfs,
        http, ...) have a loop thread of their own to run the request on.
    path : str
        Path of the file on ``fs``.
    **kwargs
        Passed to the read (e.g. ``max_concurrency=1``).

    Returns
    -------
    concurrent.futures.Future or None
        A future of the file's bytes, or None when ``fs`` has no running loop of its own
        (local files, memory, an async filesystem used with ``asynchronous=True``).
    """
    # fsspec private API: the AsyncFileSystem._cat_file coroutine and the ``loop`` attribute
    # of a filesystem used synchronously (written against fsspec 2026.9.0). Fallback when
    # they are gone: None, i.e. no read-ahead (the caller reads with the public cat_file).
    from fsspec.asyn import AsyncFileSystem

    if not isinstance(fs, AsyncFileSystem) or getattr(fs, "asynchronous", False):
        return None
    loop = getattr(fs, "loop", None)
    if loop is None or not loop.is_running():
        return None
    cat = getattr(fs, "_cat_file", None)
    if cat is None:  # pragma: no cover - only if fsspec renames it
        return None
    return asyncio.run_coroutine_threadsafe(cat(path, **kwargs), loop)


def fsspec_cat_file(fs: Any, path: str, **kwargs: Any) -> Awaitable[bytes]:
    """An awaitable of ``fs.cat_file(path, **kwargs)`` for an fsspec async filesystem.

    Await it on ``fs.loop`` (e.g. in a coroutine run by :func:`fsspec_sync`) to read many
    files concurrently.

    Parameters
    ----------
    fs : fsspec.asyn.AsyncFileSystem
        The filesystem (``fs.async_impl`` is True).
    path : str
        Path of the file on ``fs``.
    **kwargs
        Passed to the read.

    Returns
    -------
    Awaitable[bytes]
        The file's bytes, once awaited.
    """
    # fsspec private API: the AsyncFileSystem._cat_file coroutine (written against fsspec
    # 2026.9.0). Fallback when it is gone: the public, blocking cat_file in a worker thread.
    cat = getattr(fs, "_cat_file", None)
    if cat is None:  # pragma: no cover - only if fsspec renames it
        return asyncio.to_thread(fs.cat_file, path, **kwargs)
    return cat(path, **kwargs)


def fsspec_sync(
    loop: asyncio.AbstractEventLoop,
    func: Callable[..., Awaitable[Any]],
    *args: Any,
    timeout: float | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``await func(*args, **kwargs)`` on ``loop`` (another thread's) and wait for it.

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop
        The loop of an fsspec async filesystem (``fs.loop``), running in its own thread.
    func : callable
        A coroutine function.
    *args, **kwargs
        Passed to ``func``.
    timeout : float, optional
        Seconds to wait; None waits as long as it takes.

    Returns
    -------
    Any
        What the coroutine returns (its exception is raised; a
        :class:`~intake_helio.base.errors.ReadDeadlineError` as itself, not as fsspec's
        ``FSTimeoutError``).
    """
    # fsspec internal helper fsspec.asyn.sync (imported lazily; written against fsspec
    # 2026.9.0), which raises FSTimeoutError in place of any TimeoutError. Fallback when it
    # is gone: asyncio.run_coroutine_threadsafe on the same loop.
    try:
        from fsspec.asyn import sync
    except ImportError:  # pragma: no cover - only if fsspec moves it
        future = asyncio.run_coroutine_threadsafe(func(*args, **kwargs), loop)
        return future.result(timeout)
    out = sync(loop, returning_late, func, *args, timeout=timeout, **kwargs)
    if isinstance(out, Late):
        raise out.error
    return out


# --------------------------------------------------------------------------- bounded reads
@dataclass(frozen=True)
class BoundedBody:
    """At most ``limit`` bytes of one response body (see :func:`cat_bounded`).

    Attributes
    ----------
    data : bytes
        The body's first bytes, never more than the ``limit`` asked for.
    more : bool
        The body went on past ``limit`` bytes; reading stopped there (the rest was never
        read, the connection was dropped).
    ranged : bool
        False when the server answered a ranged request with the whole object (it ignores
        ``Range``): ``data`` then starts at byte 0, not at the requested start (for a range
        that does not start at 0, ``data`` is then empty and ``more`` True). True otherwise.
    """

    data: bytes
    more: bool
    ranged: bool = True


def _framed_length(headers: Any) -> int | None:
    """The body length the transport enforces by itself (``Content-Length``, no coding)."""
    get = headers.get
    if get("transfer-encoding") or get("Transfer-Encoding"):
        return None
    coding = get("content-encoding") or get("Content-Encoding") or "identity"
    if str(coding).strip().lower() != "identity":
        return None
    value = get("content-length") or get("Content-Length")
    try:
        length = int(value)
    except (TypeError, ValueError):
        return None
    return length if length >= 0 else None


def _range_header(start: int | None, end: int | None) -> dict[str, str]:
    return {} if start is None else {"Range": f"bytes={start}-{end - 1}"}


def _body_errors() -> tuple[type[BaseException], ...]:
    """Errors of a response body cut short in transfer (not timeouts): worth a new request."""
    from aiohttp import ClientPayloadError
    from botocore.exceptions import IncompleteReadError, ResponseStreamingError

    return (ClientPayloadError, IncompleteReadError, ResponseStreamingError)


async def _s3_bounded(
    fs: Any, path: str, start: int | None, end: int | None, limit: int, deadline: Deadline
):
    # s3fs private API: S3FileSystem.set_session, get_s3, _get_s3_method_kwargs and retries,
    # s3fs.core.version_id_kw and s3fs.errors.translate_boto_error, as _call_s3/_cat_file use
    # them (written against s3fs 2026.9.0, aiobotocore 3.10): the same GetObject request
    # and error translation, but the body is read to a bound instead of to its end, and only
    # a body cut short is requested again here (``fs.retries`` times, as s3fs does):
    # timeouts and errors are left to botocore's configured retries and the caller's, so
    # that a stalled read fails after the time its settings give. Each request has its
    # deadline (RequestClock). Fallback when they are gone: _generic_bounded.
    from botocore.exceptions import ClientError
    from s3fs.core import version_id_kw
    from s3fs.errors import translate_boto_error

    bucket, key, version = fs.split_path(path)
    await fs.set_session()
    s3 = await fs.get_s3(bucket)
    kwargs = fs._get_s3_method_kwargs(
        s3.get_object, Bucket=bucket, Key=key, **version_id_kw(version), **_range_header(start, end)
    )
    cut_short = _body_errors()
    attempts = max(1, int(getattr(fs, "retries", 1) or 1))
    for attempt in range(attempts):
        async with RequestClock(deadline) as clock:
            try:
                resp = await s3.get_object(**kwargs)
            except ClientError as exc:
                raise translate_boto_error(exc) from exc
            body = resp["Body"]
            try:
                meta = resp.get("ResponseMetadata", {})
                ranged = start is None or meta.get("HTTPStatusCode") == 206
                framed = _framed_length(meta.get("HTTPHeaders", {}))
                if (not ranged and start) or (framed is not None and framed > limit and ranged):
                    return BoundedBody(b"", True, ranged)  # nothing of use in this body
                fast = body.read if framed is not None and framed <= limit else None
                data, more = await read_body(body.read, fast, limit, clock, framed)
                return BoundedBody(data, more, ranged)
            except cut_short:
                if attempt == attempts - 1:
                    raise
            finally:
                body.close()  # drops the connection unless the body was read to its end
        await asyncio.sleep(min(1.7**attempt * 0.1, 15))  # s3fs' backoff
    raise AssertionError("unreachable")  # pragma: no cover


async def _http_bounded(
    fs: Any, url: str, start: int | None, end: int | None, limit: int, deadline: Deadline
):
    # fsspec private API: HTTPFileSystem.set_session, kwargs, encode_url and
    # _raise_not_found_for_status, as HTTPFileSystem._cat_file uses them (written against
    # fsspec 2026.9.0, aiohttp 3.14). Fallback when they are gone: _open_bounded.
    kw = dict(fs.kwargs)
    headers = {**kw.pop("headers", {}), **_range_header(start, end)}
    session = await fs.set_session()
    async with (
        RequestClock(deadline) as clock,
        session.get(fs.encode_url(url), headers=headers, **kw) as r,
    ):
        if start is not None and r.status == 416:  # the range starts past the end
            return BoundedBody(b"", False)
        fs._raise_not_found_for_status(r, url)
        ranged = start is None or r.status == 206
        framed = _framed_length(r.headers)
        if (not ranged and start) or (framed is not None and framed > limit and ranged):
            r.close()  # nothing of use in this body: drop the connection unread
            return BoundedBody(b"", True, ranged)
        fast = r.read if framed is not None and framed <= limit else None
        try:
            data, more = await read_body(r.content.read, fast, limit, clock, framed)
        except (asyncio.CancelledError, ReadDeadlineError):
            r.close()  # out of time: drop the connection
            raise
        if more:
            r.close()  # drop the connection: the rest of the body is never read
        return BoundedBody(data, more, ranged)


def _is_async(fs: Any) -> bool:
    from fsspec.asyn import AsyncFileSystem

    return isinstance(fs, AsyncFileSystem)


def _generic_bounded(fs: Any, path: str, start: int | None, end: int | None, limit: int):
    """Any other filesystem: the public API, and no more than ``limit`` bytes accepted.

    A whole file of a synchronous filesystem (local files, memory) is read with
    ``fs.open(path).read(limit + 1)``, which stops there. Ranges, and whole files of other
    async filesystems (gcsfs, adlfs, ...), use ``cat_file`` as before: what comes past
    ``limit`` is not accepted, though the transfer itself cannot be cut short.
    """
    if start is None and hasattr(fs, "open") and not _is_async(fs):
        with fs.open(path, "rb") as f:
            data = f.read(limit + 1)
    elif start is None:
        # s3fs-like stores ask for the size (a HEAD) before a whole read unless told not to
        concurrency = getattr(fs, "max_concurrency", None)
        one = {"max_concurrency": 1} if isinstance(concurrency, int) and concurrency > 1 else {}
        data = fs.cat_file(path, **one)
    else:
        data = fs.cat_file(path, start=start, end=end)
    if len(data) > limit:
        return BoundedBody(bytes(data[:limit]), True)
    return BoundedBody(bytes(data), False)


def _async_reader(fs: Any) -> Callable[..., Awaitable[BoundedBody]] | None:
    """The bounded reader of an fsspec async filesystem used synchronously, if known."""
    from fsspec.asyn import AsyncFileSystem

    if not isinstance(fs, AsyncFileSystem) or getattr(fs, "asynchronous", False):
        return None
    loop = getattr(fs, "loop", None)
    if loop is None or not loop.is_running():
        return None
    kind = type(fs).__module__.split(".")[0]
    needs = ("set_session", "get_s3", "_get_s3_method_kwargs", "split_path")
    if kind == "s3fs" and all(hasattr(fs, a) for a in needs):
        return _s3_bounded
    from fsspec.implementations.http import HTTPFileSystem

    if isinstance(fs, HTTPFileSystem) and hasattr(fs, "_raise_not_found_for_status"):
        return _http_bounded
    return None


def cat_bounded(
    fs: Any,
    path: str,
    start: int | None = None,
    end: int | None = None,
    *,
    limit: int,
    deadline: Deadline | None = None,
) -> BoundedBody:
    """Read ``[start, end)`` of a file (or all of it) but never more than ``limit`` bytes.

    ``fs.cat_file`` reads a response body to its end, whatever its size: a server that
    ignores ``Range`` or sends a body without end makes it allocate without bound. Here the
    body is read to ``limit`` bytes at most (one more chunk is looked at to tell whether
    it goes on), then the connection is dropped. Honest responses (a ``Content-Length`` of
    at most ``limit``, no transfer or content coding) are read in one call, as
    ``cat_file`` does. Streamed (s3fs, HTTP), the request has a total ``deadline``.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        Filesystem holding the file: s3fs and fsspec's HTTP filesystem stream the body;
        others use their public API (:func:`_generic_bounded`).
    path : str
        Path of the file on ``fs``.
    start, end : int, optional
        The byte range (``end`` exclusive); both None for the whole file.
    limit : int
        The most bytes accepted (``end - start`` for a range).
    deadline : Deadline, optional
        How long the request may take (``allowance + bytes / min_rate`` seconds); None:
        ``intake_helio.timeouts.*`` in force now (:meth:`Deadline.current`).

    Returns
    -------
    BoundedBody
        The bytes, whether the body had more, and whether they are the range asked for.
        A range past the end of the object gives no bytes.

    Raises
    ------
    ReadDeadlineError
        The request did not complete within its deadline (the connection was dropped).
    """
    reader = _async_reader(fs)
    if reader is None:
        return _generic_bounded(fs, path, start, end, limit)
    deadline = Deadline.current() if deadline is None else deadline
    return fsspec_sync(fs.loop, reader, fs, path, start, end, limit, deadline)


def cat_ranges_bounded(
    fs: Any, path: str, ranges: list[tuple[int, int]], *, deadline: Deadline | None = None
) -> list[BoundedBody | BaseException]:
    """:func:`cat_bounded` of several ranges of one file (concurrently when ``fs`` is async).

    Each range is a request of its own, with its own ``deadline`` (None: from the settings).

    Returns
    -------
    list
        Per range, a :class:`BoundedBody` (at most ``end - start`` bytes) or the exception
        that range raised.
    """
    reader = _async_reader(fs)
    if reader is None:
        n = len(ranges)
        got = fs.cat_ranges(
            [path] * n, [s for s, _ in ranges], [e for _, e in ranges], on_error="return"
        )
        out: list[BoundedBody | BaseException] = []
        for (s, e), data in zip(ranges, got, strict=True):
            if isinstance(data, BaseException):
                out.append(data)
            else:
                out.append(BoundedBody(bytes(data[: e - s]), len(data) > e - s))
        return out

    deadline = Deadline.current() if deadline is None else deadline

    async def gather() -> list[Any]:
        reads = [reader(fs, path, s, e, e - s, deadline) for s, e in ranges]
        return await asyncio.gather(*reads, return_exceptions=True)

    return fsspec_sync(fs.loop, gather)


def split_ranges(size: int, limit: int, part: int) -> list[tuple[int, int]] | None:
    """The concurrent ranges of a whole read of a ``size``-byte file, or None for one request.

    ``[0, size)`` in ``ceil(size / part)`` equal ranges (of at most ``part`` bytes), the
    last one running on to ``limit + 1``: a file longer than ``limit`` then shows it, as a
    whole read's one byte past ``limit`` does. None when ``part`` is 0, the size is not
    known or is not more than one part.
    """
    if part <= 0 or size <= part or limit < size:
        return None
    n = -(-size // part)
    starts = [size * i // n for i in range(n)]
    ends = [*starts[1:], limit + 1]
    return list(zip(starts, ends, strict=True))


class ConnectionRate:
    """Bytes per second one connection of a filesystem delivers, as measured on its reads.

    A moving average over reads of at least 1 MiB (whole files or ranges; first byte
    latency included, as a read waits for it too). It decides whether a large file is
    fetched as concurrent ranges: on a network that caps each connection (S3: ~90 MB/s)
    they hide the cap; on a fast one (a local server) they only add requests.
    """

    MIN_BYTES = 2**20

    def __init__(self) -> None:
        self.rate: float | None = None  # bytes/s
        self.samples = 0

    def observe(self, nbytes: int, seconds: float) -> None:
        """Add one read of ``nbytes`` that took ``seconds``."""
        if nbytes < self.MIN_BYTES or seconds <= 0:
            return
        r = nbytes / seconds
        self.rate = r if self.rate is None else 0.7 * self.rate + 0.3 * r
        self.samples += 1


_RATES: weakref.WeakKeyDictionary[Any, ConnectionRate] = weakref.WeakKeyDictionary()


def connection_rate(fs: Any) -> ConnectionRate:
    """The :class:`ConnectionRate` of filesystem ``fs`` in this process."""
    rate = _RATES.get(fs)
    if rate is None:
        rate = _RATES.setdefault(fs, ConnectionRate())
    return rate


async def _timed(reader, fs: Any, path: str, start, end, limit: int, deadline) -> BoundedBody:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    body = await reader(fs, path, start, end, limit, deadline)
    connection_rate(fs).observe(len(body.data), loop.time() - t0)
    return body


async def _split_whole(reader, fs: Any, path: str, ranges, limit: int, deadline) -> BoundedBody:
    """A whole file read as concurrent ranged requests, joined; one request if they fail.

    Any range that fails, comes back whole (the server ignores ``Range``) or short before
    the last one (the object is not the size the index says) makes the file be read again
    in one bounded request, so the result is exactly what a whole read would give. A range
    past its deadline (each has its own) fails the read: the server is too slow.
    """
    reads = [_timed(reader, fs, path, s, e, e - s, deadline) for s, e in ranges]
    bodies = await asyncio.gather(*reads, return_exceptions=True)
    late = [b for b in bodies if isinstance(b, ReadDeadlineError)]
    if late:
        raise late[0]
    usable = all(isinstance(b, BoundedBody) and b.ranged for b in bodies) and all(
        len(b.data) == e - s and not b.more for b, (s, e) in zip(bodies[:-1], ranges, strict=False)
    )
    if not usable:
        return await _timed(reader, fs, path, None, None, limit, deadline)
    data = b"".join(b.data for b in bodies)
    if len(data) > limit:
        return BoundedBody(data[:limit], True)
    return BoundedBody(data, bool(bodies[-1].more))


def start_cat_bounded(
    fs: Any,
    path: str,
    *,
    limit: int,
    size: int | None = None,
    part: int = 0,
    split_below: float = 0.0,
    deadline: Deadline | None = None,
) -> concurrent.futures.Future | None:
    """Start :func:`cat_bounded` of a whole file on the event loop of ``fs``.

    Parameters
    ----------
    fs, path
        The file.
    limit : int
        The most bytes accepted.
    size : int, optional
        The file's size as the index gives it; with ``part`` > 0, a file of at least two
        parts is fetched as concurrent ranged requests of about ``part`` bytes
        (:func:`split_ranges`) when one connection of ``fs`` has been measured to
        deliver less than ``split_below`` bytes/s (:func:`connection_rate`; 0: always).
    part : int
        Bytes per ranged request (0: one request).
    split_below : float
        The per-connection rate (bytes/s) under which large files are split.
    deadline : Deadline, optional
        Of each request, as for :func:`cat_bounded` (None: from the settings in force now).

    Returns
    -------
    concurrent.futures.Future or None
        A future of the :class:`BoundedBody`, or None when ``fs`` has no running loop of
        its own or no bounded streaming reader (local files, memory, ...: read them with
        :func:`cat_bounded` when needed).
    """
    reader = _async_reader(fs)
    if reader is None:
        return None
    ranges = split_ranges(size or 0, limit, part)
    if ranges is not None and split_below > 0:
        rate = connection_rate(fs).rate
        if rate is None or rate >= split_below:
            ranges = None  # not measured yet, or one connection is fast enough
    deadline = Deadline.current() if deadline is None else deadline
    if ranges is None:
        coro = _timed(reader, fs, path, None, None, limit, deadline)
    else:
        coro = _split_whole(reader, fs, path, ranges, limit, deadline)
    return asyncio.run_coroutine_threadsafe(coro, fs.loop)

"""Retry policy for storage reads: which errors are transient, and retrying them with backoff.

:func:`is_transient` tells a passing failure (a connection reset, a timeout, a 5xx, a body cut
short in transfer) from a permanent one (a missing object, a refused access, an invalid
request); :func:`retry_io` calls a function again on the first kind only, with exponential
backoff and jitter, and counts what it did in :data:`RETRY_STATS`.
"""

from __future__ import annotations

import errno
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from ..base.errors import FrameReadError, ReadDeadlineError

__all__ = ["RETRY_STATS", "is_transient", "retry_io"]

#: Per-process retry counters: ``retried`` (attempts repeated), ``gave_up`` (calls that
#: failed after all attempts).
RETRY_STATS: dict[str, int] = {"retried": 0, "gave_up": 0}
_STATS_LOCK = threading.Lock()

_NON_TRANSIENT_ERRNO = {
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.EINVAL,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
}
_TRANSIENT_NAME_PARTS = (
    "Connect",
    "Timeout",
    "Throttl",
    "ServerDisconnected",
    "Payload",
    "ContentLength",
    "IncompleteRead",
    "ResponseStreaming",
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an I/O failure that may not happen again if the call is repeated.

    Parameters
    ----------
    exc : BaseException
        The error raised by an I/O call.

    Returns
    -------
    bool
        True for ``TimeoutError``, ``ConnectionError``, ``OSError`` other than missing
        objects, permission errors and invalid requests (see ``_NON_TRANSIENT_ERRNO``), and
        untranslated aiohttp/botocore/urllib3/http.client connection, timeout, throttling
        and cut-short-body errors; False for :class:`~intake_helio.base.errors.FrameReadError`,
        for :class:`~intake_helio.base.errors.ReadDeadlineError` (a request past its total
        deadline: the deadline is the read's, retrying would multiply it) and everything else.
    """
    if isinstance(exc, FrameReadError | ReadDeadlineError | FileNotFoundError | PermissionError):
        return False
    if isinstance(exc, IsADirectoryError | NotADirectoryError | FileExistsError):
        return False
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OSError):
        return exc.errno not in _NON_TRANSIENT_ERRNO
    mod = type(exc).__module__ or ""
    # botocore/aiohttp/urllib3 network errors that were not translated to OSError, including
    # a body cut short in transfer (aiohttp ClientPayloadError/ContentLengthError, botocore
    # ResponseStreamingError/IncompleteReadError, http.client IncompleteRead): the object
    # itself may be fine, so reading it again can succeed
    if mod.startswith(("aiohttp", "botocore", "urllib3", "aiobotocore", "http.client")):
        name = type(exc).__name__
        return any(w in name for w in _TRANSIENT_NAME_PARTS)
    return False


def retry_io(
    fn: Callable[..., Any], *args: Any, attempts: int = 4, base_delay: float = 0.2, **kwargs: Any
) -> Any:
    """Call ``fn(*args, **kwargs)``, retrying transient I/O errors.

    Transient errors are ``OSError`` (other than missing objects, permission errors and
    invalid requests such as a range past the end of an object), ``TimeoutError``,
    ``ConnectionError`` and untranslated botocore/aiohttp connection, timeout and
    throttling errors (see :func:`is_transient`). They are retried with exponential backoff
    and jitter: the ``k``-th retry waits ``base_delay * 2**(k-1) * U(0.5, 1.5)`` seconds.

    Parameters
    ----------
    fn : callable
        The I/O call, e.g. ``fs.cat_file``.
    *args, **kwargs
        Passed to ``fn``.
    attempts : int
        Total number of calls, at least 1.
    base_delay : float
        Delay before the first retry, in seconds.

    Returns
    -------
    Any
        What ``fn`` returns.

    Raises
    ------
    Exception
        The last error, once ``attempts`` calls failed (counted in
        ``RETRY_STATS["gave_up"]``), or at once for a non-transient error.
    """
    attempts = max(1, int(attempts))
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts - 1:
                with _STATS_LOCK:
                    RETRY_STATS["gave_up"] += 1
                raise
            with _STATS_LOCK:
                RETRY_STATS["retried"] += 1
            time.sleep(base_delay * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover

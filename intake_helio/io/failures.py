"""The one table from an exception to a frame's reason (:class:`~intake_helio.Reason`).

Every reader (whatever its format) and the engine ask :func:`reason_for`; nothing else maps
exceptions to reasons. The rows, first match wins:

========================================================  =======================================
the error                                                 the reason
========================================================  =======================================
an intake-helio error with its own ``reason``             that reason (``"quality flag ..."``,
(``FrameReadError``, ``UrlNotAllowedError``, ...)         ``"URL not allowed"``, ...)
botocore's ``NoCredentialsError`` (in its chain)          ``no credentials``
``FileNotFoundError``                                     ``missing object``
``PermissionError``                                       ``permission denied``
``EOFError``                                              ``truncated``
``OSError``, ``TimeoutError``, a transient I/O error      ``read error``
``zlib.error``, an imagecodecs decoder error              ``corrupt data``
``MemoryError``                                           ``out of memory``
``ValueError``, ``TypeError``                             ``invalid argument``; ``corrupt data``
                                                          while decoding a file's bytes
anything else                                             ``unexpected error``; ``corrupt data``
                                                          while decoding a file's bytes
========================================================  =======================================

The one rule beside the table: an error that is not I/O, raised while a reader decodes a
file's bytes (``decoding=True``), is the file's fault.
"""

from __future__ import annotations

import zlib

from ..base.errors import HelioError
from ..base.reasons import Reason
from .retry import is_transient
from .storage import is_no_credentials

__all__ = ["reason_for"]


def reason_for(exc: BaseException, *, decoding: bool = False) -> str:
    """The reason of a frame (or file) that failed with ``exc``.

    Parameters
    ----------
    exc : BaseException
        The error.
    decoding : bool
        It was raised while decoding the file's bytes (a reader's parse or decompression):
        errors that are not I/O then mean ``corrupt data``.

    Returns
    -------
    str
        A :class:`~intake_helio.Reason`, or the error's own ``reason`` (which may carry
        detail, e.g. ``"quality flag 0x00000400"``).
    """
    own = getattr(exc, "reason", None) if isinstance(exc, HelioError) else None
    if isinstance(own, str) and own:
        return own
    if is_no_credentials(exc):
        return Reason.NO_CREDENTIALS
    if isinstance(exc, FileNotFoundError):
        return Reason.MISSING_OBJECT
    if isinstance(exc, PermissionError):
        return Reason.PERMISSION_DENIED
    if isinstance(exc, EOFError):
        return Reason.TRUNCATED
    if isinstance(exc, OSError | TimeoutError | ConnectionError) or is_transient(exc):
        return Reason.READ_ERROR
    # imagecodecs' decoder errors (the module may be missing: then none can be raised)
    if isinstance(exc, zlib.error) or type(exc).__module__.startswith("imagecodecs"):
        return Reason.CORRUPT_DATA
    if isinstance(exc, MemoryError):
        return Reason.OUT_OF_MEMORY
    if decoding:
        return Reason.CORRUPT_DATA
    if isinstance(exc, ValueError | TypeError):
        return Reason.INVALID_ARGUMENT
    return Reason.UNEXPECTED_ERROR

"""The one module that uses private APIs of third-party packages.

Nothing else in intake-helio touches another package's private names: when astropy or
fsspec moves one, this is the file to fix. Each shim names the package and version it was
written against and what happens when the private API is gone (its fallback). Third-party
imports are made when a shim is first called, so importing this module costs nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = [
    "bintable_header_to_image_header",
    "fsspec_cat_file",
    "fsspec_sync",
    "start_async_cat_file",
]


# --------------------------------------------------------------------------- astropy
@functools.cache
def _astropy_bintable_to_image() -> Callable[[fits.Header], fits.Header]:
    # astropy private API: astropy.io.fits.hdu.compressed.header._bintable_header_to_image_header
    # (CompImageHDU.header semantics; written against astropy 8.0.2). Fallback when astropy
    # moves or drops it: _bintable_header_to_image_header_fallback below, which keeps the
    # cards a frame reader needs (BITPIX, NAXISn, BLANK from ZBLANK, the user cards).
    try:
        from astropy.io.fits.hdu.compressed.header import _bintable_header_to_image_header
    except ImportError:  # pragma: no cover - only if astropy moves it
        return _bintable_header_to_image_header_fallback
    return _bintable_header_to_image_header


def bintable_header_to_image_header(bintable_header: fits.Header) -> fits.Header:
    """The uncompressed image header of a tile-compressed image's BINTABLE header.

    Parameters
    ----------
    bintable_header : astropy.io.fits.Header
        The raw header of the compressed HDU (``ZIMAGE = T``, ``ZBITPIX``, ``ZNAXISn`` ...).

    Returns
    -------
    astropy.io.fits.Header
        What astropy's ``CompImageHDU.header`` holds: ``XTENSION = 'IMAGE'``, ``BITPIX``,
        ``NAXISn``, ``BLANK`` ... instead of the table's cards.
    """
    return _astropy_bintable_to_image()(bintable_header)


def _bintable_header_to_image_header_fallback(bintable_header: fits.Header) -> fits.Header:
    from astropy.io import fits

    h = fits.Header()
    skip = re.compile(r"^(Z\w*|T(TYPE|FORM|UNIT|NULL|SCAL|ZERO|DISP|DIM)\d+|TFIELDS|THEAP)$")
    h["XTENSION"] = "IMAGE"
    h["BITPIX"] = bintable_header["ZBITPIX"]
    h["NAXIS"] = bintable_header["ZNAXIS"]
    for i in range(1, h["NAXIS"] + 1):
        h[f"NAXIS{i}"] = bintable_header[f"ZNAXIS{i}"]
    h["PCOUNT"], h["GCOUNT"] = 0, 1
    fixed = {"XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT"}
    for card in bintable_header.cards:
        key = card.keyword
        if key in fixed or key.startswith("NAXIS") or skip.match(key):
            continue
        h.append(card)
    if h["BITPIX"] > 0 and "BLANK" not in h and "ZBLANK" in bintable_header:
        h["BLANK"] = bintable_header["ZBLANK"]
    return h


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
        What the coroutine returns (its exception is raised).
    """
    # fsspec internal helper fsspec.asyn.sync (imported lazily; written against fsspec
    # 2026.9.0). Fallback when it is gone: asyncio.run_coroutine_threadsafe on the same loop.
    try:
        from fsspec.asyn import sync
    except ImportError:  # pragma: no cover - only if fsspec moves it
        future = asyncio.run_coroutine_threadsafe(func(*args, **kwargs), loop)
        return future.result(timeout)
    return sync(loop, func, *args, timeout=timeout, **kwargs)

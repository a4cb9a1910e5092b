"""Filesystems for URLs: the options that apply, timeouts, the door, bounded whole reads.

:func:`filesystem` is where every read of intake-helio gets its fsspec filesystem: the
``storage_options`` that apply to the URL (:func:`~intake_helio.io.storage.options_for`,
with the default timeouts), and for ``http(s)://`` the session of
:mod:`intake_helio.io.transport.session`. Filesystems come from fsspec's instance cache, so
each process (and thread) creates its S3 client once and reuses it for every file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import fsspec

from ..masking import mask_url, origin, shown
from ..storage import (
    _HTTP,
    ContentTooLargeError,
    CredentialsInURLError,
    _origin_options,
    _protocol,
    options_for,
)
from .session import with_door

__all__ = ["FileSystems", "filesystem", "read_limited", "too_large"]


def filesystem(
    url: str, storage_options: Mapping[str, Any] | None = None, *, catalog: bool = False
):
    """Return ``(fs, path)`` for ``url`` with the options that apply to it.

    Parameters
    ----------
    url : str
    storage_options : dict, optional
    catalog : bool
        For reads of catalog content (registry, ``catalog.json``, index files): on S3, a
        filesystem of its own whose s3fs retry loop (the ``retries`` attribute, 5 by
        default, around botocore's own attempts) is off, so that a server that accepts and
        never answers fails after ``intake_helio.timeouts.attempts`` x ``read`` seconds.
    """
    if _protocol(url) in ("s3", "s3a") and "@" in url.split("://", 1)[-1].split("/", 1)[0]:
        raise CredentialsInURLError(
            f"{mask_url(url)}: an s3:// URL cannot carry credentials (KEY:SECRET@bucket); "
            "pass them as storage_options key= and secret= (or set AWS_* variables)"
        )
    opts = options_for(url, storage_options)
    if _protocol(url) in _HTTP:
        scoped = _origin_options(url, storage_options) if storage_options else {}
        opts = with_door(url, opts, storage_options, scoped)
    if catalog and _protocol(url) in ("s3", "s3a"):
        return _catalog_s3(url, opts)
    fs, path = fsspec.core.url_to_fs(url, **opts)
    return fs, path


class FileSystems:
    """:func:`filesystem` for many URLs with the same options: one look-up per origin.

    A task reads hundreds of files of one bucket; :func:`filesystem` per file costs
    ~0.1 ms (the options and timeouts for the URL, fsspec's instance cache). Here the
    filesystem found for a URL's origin (``s3://bucket``, ``https://host:port``, the
    options of which depend on nothing else) is reused for the next URL of that origin.
    URLs with a query (``?versionId=``), chained URLs (``a::b``) and URLs with userinfo
    go through :func:`filesystem` each time (the last to its error for s3).

    Parameters
    ----------
    storage_options : dict, optional
        As for :func:`filesystem`.
    """

    def __init__(self, storage_options: Mapping[str, Any] | None = None):
        self.storage_options = storage_options
        self._by_origin: dict[str, Any] = {}

    def __call__(self, url: str) -> tuple[Any, str]:
        """``(fs, path)`` of ``url``, as :func:`filesystem` returns them."""
        plain = "?" not in url and "::" not in url and "@" not in url
        where = origin(url) if plain else None
        fs = self._by_origin.get(where) if where else None
        if fs is None:
            fs, path = filesystem(url, self.storage_options)
            if where:
                self._by_origin[where] = fs
            return fs, path
        return fs, fs._strip_protocol(url)


_CATALOG_FS: dict[str, Any] = {}
_CATALOG_FS_LOCK = threading.Lock()


def _catalog_s3(url: str, opts: dict[str, Any]):
    from fsspec.utils import tokenize

    cls = fsspec.get_filesystem_class(_protocol(url))
    # credentials may come from the environment: a change there gives a new client
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
    key = tokenize(os.getpid(), cls.__name__, opts, env)
    with _CATALOG_FS_LOCK:
        fs = _CATALOG_FS.get(key)
        if fs is None:
            if len(_CATALOG_FS) >= 16:
                _CATALOG_FS.pop(next(iter(_CATALOG_FS)))
            fs = cls(skip_instance_cache=True, **opts)
            fs.retries = 1  # s3fs' public class attribute: its own retry loop, per instance
            _CATALOG_FS[key] = fs
    fs.invalidate_cache()  # catalog content is read fresh: no listings from an earlier call
    return fs, fs._strip_protocol(url)


# --------------------------------------------------------------------------- bounded reads
def read_limited(fs, path: str, url: str, limit: int, what: str, setting: str) -> bytes:
    """The whole file ``path`` of ``fs``, refused when it has more than ``limit`` bytes.

    The body is streamed and reading stops after ``limit`` bytes (a server that sends
    without end cannot make it allocate more); a ``Content-Length`` above the limit is
    refused before the body is read.

    Parameters
    ----------
    fs, path
        Filesystem and path (from :func:`filesystem`).
    url : str
        The URL, for the message.
    limit : int
        The most bytes accepted.
    what : str
        What the file is ("registry", "bucket catalog", "index file").
    setting : str
        The ``dask.config`` key of the limit, named in the message.

    Raises
    ------
    ContentTooLargeError
        The file has more than ``limit`` bytes.
    """
    from .bounded import cat_bounded

    body = cat_bounded(fs, path, limit=limit)
    if body.more:
        raise too_large(url, limit, what, setting)
    return body.data


def too_large(url: str, limit: int, what: str, setting: str) -> ContentTooLargeError:
    """The error for a file of more than ``limit`` bytes (not raised)."""
    return ContentTooLargeError(
        f"{what} {shown(url)} has more than {limit} bytes (the limit "
        f"intake_helio.{setting}); it was not read further. If the file is genuine, raise the "
        f"limit: dask.config.set({{'intake_helio.{setting}': '2 GiB'}})",
        shown(url),
        limit,
    )

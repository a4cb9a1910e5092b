"""Fetching catalog content: bounded reads, JSON parsing and errors that name the URL.

Registry JSON, ``catalog.json`` and yearly index files are third-party content: each is read
to a size limit (``intake_helio.limits.*``; the body is streamed and reading stops there),
under the request timeouts and deadline of ``intake_helio.timeouts.*``, and every failure becomes an
intake-helio error that names the URL (credentials masked) and never quotes the content.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..base.errors import (
    CatalogFormatError,
    CatalogNotFoundError,
    HelioError,
    ReadDeadlineError,
    StorageAccessError,
    StorageReadError,
)
from ..base.reasons import Reason
from ..base.settings import catalog_settings
from ..io.storage import (
    MissingCredentialsError,
    is_no_credentials,
    masked_cause,
    options_for,
    redact,
    shown,
)
from ..io.transport import (
    InternalAddressError,
    RedirectRefusedError,
    filesystem,
    read_limited,
    too_large,
)

__all__ = ["StorageTimeoutError", "fetch_many", "read_json", "storage_error"]

logger = logging.getLogger(__name__)


class StorageTimeoutError(StorageReadError, TimeoutError):
    """A store did not answer within the request timeouts, or a request did not complete
    within its deadline (``intake_helio.timeouts.*``)."""


def _deadline_error(exc: BaseException | None) -> ReadDeadlineError | None:
    """The :class:`ReadDeadlineError` of ``exc``'s chain, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ReadDeadlineError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _is_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TimeoutError):
            return True
        if any("Timeout" in c.__name__ for c in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _is_unreachable(exc: BaseException) -> bool:
    """A name that does not resolve or a refused connection (aiohttp, botocore, socket)."""
    import socket

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, socket.gaierror | ConnectionRefusedError):
            return True
        names = {c.__name__ for c in type(exc).__mro__}
        if names & {"ClientConnectorDNSError", "ClientConnectorError", "EndpointConnectionError"}:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def storage_error(
    exc: BaseException, url: str, what: str, storage_options: Mapping[str, Any] | None = None
) -> HelioError:
    """The intake-helio error for ``exc`` raised while reading ``what`` at ``url`` (not raised).

    Parameters
    ----------
    exc : BaseException
        What the store raised.
    url : str
        The URL read (shown with credentials masked).
    what : str
        What it is: "registry", "bucket catalog", "index file".
    storage_options : dict, optional
        The options given; their names (never values) help a "does not exist" message.

    Returns
    -------
    HelioError
        :class:`MissingCredentialsError` (reason "no credentials"),
        :class:`~intake_helio.CatalogNotFoundError`, :class:`~intake_helio.StorageAccessError`,
        :class:`StorageTimeoutError` (also for a request past its deadline, a
        :class:`~intake_helio.base.errors.ReadDeadlineError` in the chain) or
        :class:`~intake_helio.StorageReadError`; ``exc`` itself when it already is another
        intake-helio error.
    """
    late = _deadline_error(exc)
    if late is not None:
        return StorageTimeoutError(
            f"{what} {shown(url)} did not complete within its deadline: {late.received} bytes "
            f"in {late.elapsed:.1f} s, where intake_helio.timeouts.allowance={late.allowance:g} "
            f"s plus its bytes at timeouts.min-rate={late.min_rate:.10g} bytes/s were allowed; the "
            "server stalls or is too slow: retry later, or raise timeouts.allowance or lower "
            "timeouts.min-rate for a slow host"
        )
    u = shown(url)
    if isinstance(exc, RedirectRefusedError | InternalAddressError):
        return type(exc)(f"{what} {u}: {exc.detail}")
    if isinstance(exc, HelioError):
        return exc
    if is_no_credentials(exc):
        return MissingCredentialsError(
            f"{Reason.NO_CREDENTIALS}: cannot read {what} {u}: the store asks for credentials "
            "and none were found; pass key/secret in storage_options (or set AWS_* environment "
            "variables or a profile), or anon=True if the bucket is public"
        )
    if isinstance(exc, FileNotFoundError):
        given: Any = sorted(options_for(url, storage_options, defaults=False))
        if not given and storage_options:  # given, but none apply to this URL's protocol
            given = (
                f"{redact(dict(storage_options))}, none of which apply to {u}; "
                "is it meant to be an s3:// URL"
            )
        given = given or "none"
        return CatalogNotFoundError(
            f"{what} {u} does not exist; check the URL and the storage options (given: {given})"
        )
    if isinstance(exc, PermissionError):
        return StorageAccessError(
            f"access denied to {what} {u}; pass credentials in storage_options, or "
            "anon=True if the bucket is public"
        )
    detail = shown(f"{type(exc).__name__}: {exc}", 300)
    if _is_timeout(exc):
        cs = catalog_settings()
        return StorageTimeoutError(
            f"{what} {u} did not answer within the timeouts (connect {cs.connect_timeout:g} s, "
            f"read {cs.read_timeout:g} s, dask config intake_helio.timeouts.*): {detail}; check "
            "the network and the endpoint, or raise the timeouts"
        )
    if _is_unreachable(exc):
        return StorageReadError(
            f"cannot read {what} {u}: its host cannot be reached (no network, or the name "
            f"does not resolve or refuses connections): {detail}; check the network "
            "connection and the URL"
        )
    return StorageReadError(
        f"cannot read {what} {u}: {detail}; check the network, the endpoint_url and the "
        "credentials in storage_options"
    )


def read_json(
    url: str, storage_options: Mapping[str, Any] | None, what: str, *, cache: bool = False
) -> dict:
    """Read a JSON object from any fsspec URL, at most ``intake_helio.limits.json-bytes``.

    With ``cache=True`` the file goes through :mod:`.cache` (revalidated on each read).

    Raises
    ------
    ContentTooLargeError
        The file passes the limit (reading stopped there).
    CatalogFormatError
        Not JSON, nested too deeply to parse, or not an object (the message gives the byte
        count, never the content).
    CatalogNotFoundError, StorageAccessError, MissingCredentialsError, StorageReadError
        From the store (see :func:`storage_error`).
    """
    limit = catalog_settings().max_json_bytes
    u = shown(url)
    logger.debug("reading %s %s (at most %d bytes)", what, u, limit)
    try:
        if cache:
            from .cache import cached_fetch

            def fetch(urls):
                fs, path = filesystem(url, storage_options, catalog=True)
                try:
                    return {url: read_limited(fs, path, url, limit, what, "limits.json-bytes")}
                except Exception as exc:
                    return {url: exc}

            data = cached_fetch([url], storage_options, fetch, limit=limit)[url]
            if isinstance(data, BaseException):
                raise data
        else:
            fs, path = filesystem(url, storage_options, catalog=True)
            data = read_limited(fs, path, url, limit, what, "limits.json-bytes")
    except Exception as exc:
        logger.debug("reading %s %s failed: %s", what, u, type(exc).__name__)
        raise storage_error(exc, url, what, storage_options) from masked_cause(exc)
    n = len(data)
    logger.debug("read %s %s: %d bytes", what, u, n)
    try:
        obj = json.loads(data)
    except RecursionError as exc:
        raise CatalogFormatError(
            f"{what} {u} is nested too deeply to parse ({n} bytes); expected a CloudCatalog "
            "JSON object a few levels deep"
        ) from exc
    except MemoryError as exc:
        raise CatalogFormatError(
            f"{what} {u} ({n} bytes) does not fit in memory once parsed; lower "
            "intake_helio.limits.json-bytes or free memory"
        ) from exc
    except json.JSONDecodeError as exc:
        raise CatalogFormatError(
            f"{what} {u} is not valid JSON ({n} bytes; {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}); expected a CloudCatalog JSON object"
        ) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise CatalogFormatError(
            f"{what} {u} is not valid JSON ({n} bytes; {type(exc).__name__}); expected a "
            "UTF-8 CloudCatalog JSON object"
        ) from exc
    if not isinstance(obj, dict):
        raise CatalogFormatError(
            f"{what} {u} must hold a JSON object, found {type(obj).__name__} ({n} bytes)"
        )
    return obj


def fetch_many(
    urls: Sequence[str],
    storage_options: Mapping[str, Any] | None,
    limit: int,
    what: str,
    setting: str,
) -> dict[str, bytes | BaseException]:
    """Fetch whole files concurrently: one bounded GET each, no existence checks first.

    All ``urls`` are on one filesystem (the years of one index prefix).

    Returns
    -------
    dict
        ``{url: bytes or the exception raised}``; a file above ``limit`` bytes gives a
        :class:`~intake_helio.io.storage.ContentTooLargeError`.
    """
    if not urls:
        return {}
    from ..io.transport import cat_bounded, start_cat_bounded

    fs, first = filesystem(urls[0], storage_options, catalog=True)
    paths = [first] + [fs._strip_protocol(u) for u in urls[1:]]

    def finish(url: str, body: Any) -> bytes | BaseException:
        if isinstance(body, BaseException):
            logger.debug("%s %s: %s", what, shown(url), type(body).__name__)
            return body
        logger.debug(
            "read %s %s: %d bytes%s", what, shown(url), len(body.data), " (more)" * body.more
        )
        return too_large(url, limit, what, setting) if body.more else body.data

    futures = [start_cat_bounded(fs, p, limit=limit) for p in paths] if len(paths) > 1 else []
    if futures and all(f is not None for f in futures):
        out: dict[str, bytes | BaseException] = {}
        for url, fut in zip(urls, futures, strict=True):
            try:
                out[url] = finish(url, fut.result())
            except Exception as exc:
                out[url] = exc
        return out

    def one(path: str) -> Any:
        try:
            return cat_bounded(fs, path, limit=limit)
        except Exception as exc:
            return exc

    if len(paths) == 1:
        return {urls[0]: finish(urls[0], one(paths[0]))}
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        bodies = list(pool.map(one, paths))
    return {u: finish(u, b) for u, b in zip(urls, bodies, strict=True)}

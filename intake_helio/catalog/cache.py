"""An on-disk cache of ``catalog.json`` and yearly index files, revalidated with the store.

A cached file is used only when the store still describes it the same way: before its body
would be fetched, one metadata request (``fs.info``: a HEAD on S3 and HTTP) compares the
file's ETag (else its Last-Modified time) and size with the ones saved next to the body.
Only object stores (``s3://``) are cached: a first read fetches only the body (no extra
request), which is then recognised by an S3 ETag that is its MD5 (single-part uploads); a
multipart upload is fetched once more on its first revalidation, which saves its ETag for
the next ones. ``https://`` catalogs and indexes are read fresh each time.
A changed file is fetched again; a file that is gone is gone (its entry is dropped).
With ``dask.config`` ``intake_helio.cache.trust-past-years: true``, index files of years
before the current one are served from the cache with no request at all (a finished year
is not expected to change).

Where: the ``INTAKE_HELIO_CACHE_DIR`` environment variable, else ``intake_helio.cache.dir``,
else the user's cache directory (``platformdirs``, else ``$XDG_CACHE_HOME`` or
``~/.cache``) + ``intake-helio``. Entries are keyed by a hash of the storage location
(protocol and ``endpoint_url`` origin, credentials removed) and a hash of the URL with its
credentials masked, so two endpoints never share an entry and no credential reaches a path
or a file. Files are written atomically (``tempfile.mkstemp`` + ``os.replace``); a damaged
entry (its checksum differs) is ignored. Turn the cache off with ``cache=False`` on
:func:`~intake_helio.open_bucket` / :func:`~intake_helio.open_registry`,
``intake_helio.cache.enabled: false`` or ``intake-helio --no-cache``; empty it with
:func:`clear_cache`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask.config

from ..io.storage import mask_url, options_for, origin, shown
from ..io.transport import filesystem

__all__ = ["CACHE_ENV", "cache_dir", "cache_enabled", "cached_fetch", "clear_cache"]

logger = logging.getLogger(__name__)

CACHE_ENV = "INTAKE_HELIO_CACHE_DIR"
_LAYOUT = "v1"  # bump when the entry format changes: old entries are then never read
_MAX_HEADER = 64 * 1024
CACHED_PROTOCOLS = ("s3", "s3a")

Fetch = Callable[[Sequence[str]], Mapping[str, "bytes | BaseException"]]


def cache_dir() -> Path:
    """The cache directory (it may not exist yet).

    ``INTAKE_HELIO_CACHE_DIR``, else ``dask.config`` ``intake_helio.cache.dir``, else the
    user's cache directory + ``intake-helio`` (``~/.cache/intake-helio`` on Linux).
    """
    given = os.environ.get(CACHE_ENV) or dask.config.get("intake_helio.cache.dir", None)
    if given:
        return Path(os.path.expanduser(str(given)))
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("intake-helio", appauthor=False))
    except ImportError:  # pragma: no cover - platformdirs is usually installed
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        return Path(os.path.expanduser(base)) / "intake-helio"


def cache_enabled(cache: bool | None = None) -> bool:
    """``cache`` when given, else ``dask.config`` ``intake_helio.cache.enabled`` (default on)."""
    if cache is not None:
        return bool(cache)
    return bool(dask.config.get("intake_helio.cache.enabled", True))


def clear_cache() -> int:
    """Remove every cached ``catalog.json`` and index file; returns how many were removed."""
    root = cache_dir() / _LAYOUT
    if not root.is_dir():
        return 0
    n = sum(1 for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    shutil.rmtree(root, ignore_errors=True)
    logger.debug("cleared %d cache entries in %s", n, root)
    return n


# --------------------------------------------------------------------------- keys
def _digest(text: str, n: int = 32) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def _store_id(url: str, storage_options: Mapping[str, Any] | None) -> str:
    """Where ``url`` is served from: its protocol and the endpoint's origin (no credentials)."""
    proto = url.split("://", 1)[0].lower() if "://" in url else "file"
    try:
        opts = options_for(url, storage_options, defaults=False)
    except Exception:
        opts = {}
    endpoint = opts.get("endpoint_url")
    client = opts.get("client_kwargs")
    if not endpoint and isinstance(client, Mapping):
        endpoint = client.get("endpoint_url")
    host = (origin(endpoint) or "") if isinstance(endpoint, str) else ""
    return f"{proto}|{host or 'default'}"


def entry_path(url: str, storage_options: Mapping[str, Any] | None) -> Path:
    """The cache file of ``url`` (hashes only: no URL or credential text in the path)."""
    store = _digest(_store_id(url, storage_options), 16)
    return cache_dir() / _LAYOUT / store / _digest(mask_url(url))


# --------------------------------------------------------------------------- entries
def _validator(info: Mapping[str, Any]) -> list[str] | None:
    """What identifies a version of a file: ETag (else Last-Modified) and size; None if
    the store gives neither (such a file is not cached)."""
    low = {str(k).lower(): v for k, v in info.items()}
    tag = next((low[k] for k in ("etag", "content-md5", "digest", "checksum") if low.get(k)), None)
    mtime = next(
        (low[k] for k in ("lastmodified", "last_modified", "last-modified", "mtime") if low.get(k)),
        None,
    )
    if tag is None and mtime is None:
        return None
    return [str(tag or ""), "" if tag else str(mtime), str(low.get("size"))]


def _load(path: Path, url: str) -> tuple[list[str], bytes] | None:
    try:
        with open(path, "rb") as f:
            head = json.loads(f.readline(_MAX_HEADER))
            body = f.read()
    except (OSError, ValueError):
        return None
    if not isinstance(head, dict) or head.get("url") != mask_url(url):
        return None
    if head.get("sha256") != hashlib.sha256(body).hexdigest():
        return None
    return list(head.get("validator") or []), body


def _unchanged(info: Mapping[str, Any], validator: list[str], body: bytes) -> bool:
    """Whether ``info`` (from the store) describes the cached ``body``.

    The saved validator, when one was learned, must be equal; before that, an S3 ETag that
    is the MD5 of the body (a single-part upload) with the same size proves it.
    """
    now = _validator(info)
    if now is None:
        return False
    if validator:
        return now == validator
    size = str(len(body))
    etag = now[0].strip().strip('"').lower()
    return now[2] == size and etag == hashlib.md5(body, usedforsecurity=False).hexdigest()


def _save(path: Path, url: str, validator: list[str] | None, body: bytes) -> None:
    head = {
        "url": mask_url(url),
        "validator": validator or [],
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(head).encode() + b"\n")
                f.write(body)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:  # a read-only or full disk: work without the cache
        logger.debug("not caching %s: %s", shown(url), exc)


def _drop(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


# --------------------------------------------------------------------------- fetching
def _infos(urls: Sequence[str], storage_options) -> dict[str, Any]:
    """``{url: fs.info(...) or the exception}``, concurrently (one metadata request each)."""
    if not urls:
        return {}
    fs, _ = filesystem(urls[0], storage_options, catalog=True)

    def one(url: str) -> Any:
        try:
            return fs.info(fs._strip_protocol(url))
        except Exception as exc:
            return exc

    if len(urls) == 1:
        return {urls[0]: one(urls[0])}
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        return dict(zip(urls, pool.map(one, urls), strict=True))


def cacheable(url: str) -> bool:
    """Whether ``url`` goes through the cache: object stores (``s3://``) only.

    Their ETag identifies a body without an extra request; an HTTP(S) server's validators
    could only be learned with one more request per file, so those files are read fresh.
    """
    return url.split("://", 1)[0].lower() in CACHED_PROTOCOLS if "://" in url else False


def cached_fetch(
    urls: Sequence[str],
    storage_options: Mapping[str, Any] | None,
    fetch: Fetch,
    *,
    limit: int,
    trusted: Collection[str] = (),
) -> dict[str, bytes | BaseException]:
    """Fetch ``urls`` (all on one filesystem) through the cache.

    Parameters
    ----------
    urls : sequence of str
    storage_options : dict, optional
    fetch : callable
        ``fetch(urls) -> {url: bytes or exception}``: the uncached, bounded fetch.
    limit : int
        The size limit of the fetch; larger cached bodies are not used.
    trusted : collection of str
        URLs served from the cache without revalidation when cached.

    Returns
    -------
    dict
        ``{url: bytes or the exception}``, as ``fetch``.
    """
    if not urls or not cacheable(urls[0]):
        return dict(fetch(urls))
    out: dict[str, bytes | BaseException] = {}
    entries: dict[str, tuple[Path, tuple[list[str], bytes] | None]] = {}
    for url in urls:
        path = entry_path(url, storage_options)
        loaded = _load(path, url)
        if loaded is not None and len(loaded[1]) > limit:
            loaded = None
        entries[url] = (path, loaded)
    check = [u for u, (_, e) in entries.items() if e is not None and u not in trusted]
    for url, (_, e) in entries.items():
        if e is not None and url in trusted:
            logger.debug("cache: %s served without revalidation", shown(url))
            out[url] = e[1]
    get = [u for u, (_, e) in entries.items() if e is None]
    seen: dict[str, Any] = {}  # metadata read before a changed file's body: its validator
    for url, info in _infos(check, storage_options).items():
        path, (validator, body) = entries[url]
        if isinstance(info, FileNotFoundError):
            _drop(path)
            out[url] = info
        elif isinstance(info, PermissionError):
            out[url] = info
        elif isinstance(info, BaseException) or not _unchanged(info, validator, body):
            get.append(url)
            seen[url] = info
        else:
            logger.debug("cache: %s unchanged (revalidated)", shown(url))
            out[url] = body
    if get:
        got = dict(fetch(get))
        for url in get:
            body = got.get(url)
            if not isinstance(body, bytes):
                continue
            # a file revalidated before this fetch: that metadata (read before the body)
            # is its validator; a new file: none (its ETag may be its MD5, see _unchanged)
            info = seen.get(url)
            validator = _validator(info) if isinstance(info, Mapping) else None
            if validator is not None and validator[2] not in (str(len(body)), "None"):
                validator = None
            _save(entries[url][0], url, validator, body)
        out.update(got)
    return {u: out[u] for u in urls if u in out}

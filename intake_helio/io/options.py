"""The names of storage options, checked once where the options are given.

A misspelt option (``anonn=True``) is not refused by fsspec: s3fs hands the names it does
not know to ``aiobotocore.AioSession(**kwargs)`` (a ``TypeError`` at the first request,
reported as a network problem), and ``HTTPFileSystem`` to every aiohttp request (each frame
fails). :func:`check_option_names` refuses such a name before any request, naming the
protocol and the nearest valid name.

Only what can be proved is checked: the options of ``s3``/``s3a`` (``s3fs.S3FileSystem``:
its parameters, fsspec's generic ones that it passes to fsspec, ``AioSession``'s, and inside
``config_kwargs`` botocore's config options) and of
``http``/``https`` (``HTTPFileSystem``'s parameters, fsspec's generic ones and aiohttp's
request arguments; inside ``client_kwargs`` ``aiohttp.ClientSession``'s). The options of
any other protocol are passed on unchecked: their filesystems forward ``**kwargs`` to
places this package cannot see.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from ..base.errors import ArgumentError

__all__ = ["check_option_names", "valid_option_names"]

#: fsspec's generic options that s3fs and HTTPFileSystem consume themselves (listings
#: cache, instance cache) instead of passing them on.
_FSSPEC_GENERIC = frozenset(
    {"use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache"}
)
_S3 = ("s3", "s3a")
_HTTP = ("http", "https")
#: Protocols that flat (not per-protocol) options never reach (see :mod:`.storage`).
_NO_FLAT_OPTIONS = frozenset({"http", "https", "file", "local", "memory"})
#: Object stores other than S3 whose flat options this package cannot check.
_OTHER_OBJECT_STORES = ("gcsfs", "adlfs", "ocifs", "ossfs")


class _Names(NamedTuple):
    names: frozenset[str]
    label: str  # "s3 (s3fs.S3FileSystem)"


def _params(func: Callable[..., Any], drop: Iterable[str] = ()) -> set[str]:
    """The names ``func`` takes as keywords (not ``self``, ``*args``, ``**kwargs``)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    out = {p.name for p in inspect.signature(func).parameters.values() if p.kind in kinds}
    return out - {"self", *drop}


@functools.cache
def _s3() -> dict[str, _Names] | None:
    try:
        import aiobotocore.config
        import aiobotocore.session
        import botocore.config
        import s3fs
    except ImportError:
        return None
    cls = s3fs.S3FileSystem
    top = _params(cls.__init__) | _FSSPEC_GENERIC | set(cls._strip_tokenize_options)
    # S3FileSystem(**kwargs): what it does not take itself goes to AioSession(**kwargs)
    top |= _params(aiobotocore.session.AioSession.__init__)
    config = _params(aiobotocore.config.AioConfig.__init__) | set(
        botocore.config.Config.OPTION_DEFAULTS
    )
    # client_kwargs (session.create_client("s3", **client_kwargs)) are left unchecked: flat
    # options also travel with local and https catalogs, whose callers may put names there
    # that never reach S3
    return {
        "": _Names(frozenset(top), "s3 (s3fs.S3FileSystem)"),
        "config_kwargs": _Names(frozenset(config), "botocore Config (s3's config_kwargs)"),
    }


@functools.cache
def _http() -> dict[str, _Names] | None:
    try:
        import aiohttp
        from fsspec.implementations.http import HTTPFileSystem
    except ImportError:
        return None
    # HTTPFileSystem(**storage_options): all but the cache options go to every request,
    # session.get(url, **kwargs) -> ClientSession._request(method, url, **kwargs)
    top = _params(HTTPFileSystem.__init__) | _FSSPEC_GENERIC
    top |= _params(aiohttp.ClientSession._request, ("method", "str_or_url"))
    top |= set(HTTPFileSystem._strip_tokenize_options)
    # the default get_client: aiohttp.ClientSession(**client_kwargs)
    client = _params(aiohttp.ClientSession.__init__)
    return {
        "": _Names(frozenset(top), "https (fsspec HTTPFileSystem and aiohttp requests)"),
        "client_kwargs": _Names(frozenset(client), "aiohttp.ClientSession (https's client_kwargs)"),
    }


def valid_option_names(protocol: str) -> frozenset[str] | None:
    """The storage option names ``protocol`` takes, or None when they cannot be known."""
    table = _table(protocol.lower())
    return None if table is None else table[""].names


def _table(protocol: str) -> dict[str, _Names] | None:
    if protocol in _S3:
        return _s3()
    if protocol in _HTTP:
        table = _http()
        if table is not None and protocol == "http":
            return {k: v._replace(label=v.label.replace("https", "http")) for k, v in table.items()}
        return table
    return None


def _protocol(url: str) -> str:
    from fsspec.core import split_protocol

    proto, _ = split_protocol(url)
    return (proto or "file").lower()


def _flat_protocol(url: str | None) -> str | None:
    """The protocol flat options are checked against, or None (not checked)."""
    proto = _protocol(url) if isinstance(url, str) else None
    if proto in _S3:
        return proto
    if proto is not None and proto not in _NO_FLAT_OPTIONS:
        return None  # another object store (gs://, az://, ...): its options are unknown
    # the URL takes no flat options (a registry on https, a local catalog): they are for
    # the buckets it names, S3 unless another object-store package is installed
    if any(importlib.util.find_spec(m) is not None for m in _OTHER_OBJECT_STORES):
        return None
    return "s3"


def _hint(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else "."


def _refuse(name: Any, nested: str, where: str, names: _Names) -> ArgumentError:
    from .masking import shown

    text = shown(repr(name), 80)
    text = f"{nested}[{text}]" if nested else text
    if not isinstance(name, str):
        return ArgumentError(
            f"storage option {text}{where} is not a name: the options of {names.label} "
            "are named by strings"
        )
    return ArgumentError(
        f"storage option {text}{where} is not an option of {names.label}"
        f"{_hint(name, names.names)} Valid: {', '.join(sorted(names.names))}"
    )


def _check_entry(options: Mapping[str, Any], protocol: str, where: str) -> None:
    table = _table(protocol)
    if table is None:
        return
    top = table[""]
    for name in options:
        if name not in top.names:
            raise _refuse(name, "", where, top)
    custom_client = protocol in _HTTP and options.get("get_client") is not None
    for nested, names in table.items():
        inner = options.get(nested) if nested else None
        if not isinstance(inner, Mapping) or custom_client:
            continue
        for name in inner:
            if name not in names.names:
                raise _refuse(name, nested, where, names)


def _origin_protocol(key: str) -> str:
    return key.split("://", 1)[0].lower()


def check_option_names(storage_options: Mapping[str, Any] | None, url: str | None = None) -> None:
    """Refuse a storage option that the filesystem it is for does not take.

    Parameters
    ----------
    storage_options : dict, optional
        Flat, keyed by protocol (``{"s3": {...}, "https": {...}}``) and/or keyed by origin
        (``{"https://host": {...}}``), as :func:`intake_helio.io.storage.options_for` reads
        them. Flat options are checked as S3's: those of ``url`` when it is an ``s3://``
        URL, and when it takes no flat options (``https://``, ``file://``) the ones of the
        buckets it leads to.
    url : str, optional
        The URL the options were given with.

    Raises
    ------
    ArgumentError
        A name is not an option of its protocol: the message names it, the protocol, the
        nearest valid name and the valid names.
    """
    if not isinstance(storage_options, Mapping) or not storage_options:
        return
    from fsspec import available_protocols

    from .masking import mask_url

    protocols = set(available_protocols())
    flat: dict[Any, Any] = {}
    for key, value in storage_options.items():
        if isinstance(key, str) and "://" in key:
            if isinstance(value, Mapping):
                _check_entry(
                    value, _origin_protocol(key), f" in storage_options[{mask_url(key)!r}]"
                )
        elif isinstance(key, str) and key in protocols and isinstance(value, Mapping):
            _check_entry(value, key.lower(), f" in storage_options[{key!r}]")
        else:
            flat[key] = value
    if flat:
        proto = _flat_protocol(url)
        if proto is not None:
            _check_entry(flat, proto, "")

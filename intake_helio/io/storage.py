"""fsspec access: one place that turns a URL plus ``storage_options`` into a filesystem.

``storage_options`` is either a flat dict (``{"anon": True, "endpoint_url": ...}``),
applied to object-store URLs such as ``s3://``, or a dict keyed by protocol
(``{"s3": {...}, "https": {...}}``) to configure each protocol separately. Flat options
are not sent to ``http(s)://``, ``file://`` or ``memory://`` URLs, because a registry
on https and buckets on S3 need different settings.

Filesystems come from fsspec's instance cache, so each process (and thread) creates
its S3 client once and reuses it for every file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec.core import split_protocol

__all__ = ["StorageOptions", "filesystem", "options_for", "redact"]

_NO_FLAT_OPTIONS = {"http", "https", "file", "local", "memory"}
_SECRET_WORDS = (
    "secret",
    "token",
    "password",
    "passwd",
    "key_id",
    "access_key",
    "auth",
    "credential",
)
_SECRET_NAMES = {
    "key",
    "username",
    "user",
    "apikey",
    "api_key",
    "private_key",
}  # s3fs' access key id is plainly "key"


def _protocol(url: str) -> str:
    proto, _ = split_protocol(url)
    return (proto or "file").lower()


def options_for(url: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the storage options that apply to ``url``."""
    if not storage_options:
        return {}
    proto = _protocol(url)
    per_protocol = {
        k: v
        for k, v in storage_options.items()
        if isinstance(v, Mapping) and k in fsspec.available_protocols()
    }
    if per_protocol:
        aliases = {"s3a": "s3", "local": "file"}
        return dict(per_protocol.get(proto) or per_protocol.get(aliases.get(proto, proto)) or {})
    if proto in _NO_FLAT_OPTIONS:
        return {}
    return dict(storage_options)


def filesystem(url: str, storage_options: Mapping[str, Any] | None = None):
    """Return ``(fs, path)`` for ``url`` with the options that apply to it."""
    fs, path = fsspec.core.url_to_fs(url, **options_for(url, storage_options))
    return fs, path


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with secret-looking entries replaced by ``'***'``.

    Used wherever storage options or configs could be shown (reprs, logs, YAML dumps,
    saved attributes) so that credentials never leave the process.
    """
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            low = k.lower() if isinstance(k, str) else ""
            if low in _SECRET_NAMES or any(w in low for w in _SECRET_WORDS):
                out[k] = "***"
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


class StorageOptions(dict):
    """A dict of storage options whose ``repr`` hides secrets.

    Travels inside dask graphs to the workers (they need the credentials) while any
    repr of a task, a graph or an error shows ``'***'`` in place of keys and tokens.
    """

    def __repr__(self) -> str:
        return repr(redact(dict(self)))

    __str__ = __repr__

    def __reduce__(self):
        return (StorageOptions, (dict(self),))

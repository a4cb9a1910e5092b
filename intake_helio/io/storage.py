"""Storage options: which apply to a URL, credentials kept to their origin, secrets hidden.

``storage_options`` is either a flat dict (``{"anon": True, "endpoint_url": ...}``),
applied to object-store URLs such as ``s3://``, or a dict keyed by protocol
(``{"s3": {...}, "https": {...}}``) to configure each protocol separately. Flat options
are not sent to ``http(s)://``, ``file://`` or ``memory://`` URLs, because a registry
on https and buckets on S3 need different settings.

Options may also be keyed by origin (``{"https://data.example.org": {"headers": ...}}``):
they then reach that scheme, host and port only. :func:`scope_options` uses this to bind the
credentials of the ``http``/``https`` entries (headers, auth, cookies) to the host of the URL
the user gave, so that a host named by catalog content never receives them.

Every S3 and HTTP(S) request gets the connect and read timeouts of ``intake_helio.timeouts.*``
(and a bounded number of S3 attempts) unless the options set their own. The read timeout
bounds a silence only; on top, every bounded read (:mod:`intake_helio.io.transport`, which
makes the filesystems with these options) has a total deadline of ``timeouts.allowance``
seconds plus its bytes at ``timeouts.min-rate`` (:mod:`intake_helio.io.deadline`), whatever
the options say.

Credentials inside URLs (``https://user:pass@host/``, ``s3://KEY:SECRET@bucket/``, query
parameters such as ``X-Amz-Signature=``) are masked by :func:`mask_url`, and
:func:`redact` masks them inside every string it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec.core import split_protocol

from ..base.errors import CatalogFormatError, HelioError
from ..base.settings import catalog_settings
from .masking import mask_url, origin, shown
from .options import check_option_names

__all__ = [
    "ContentTooLargeError",
    "CredentialsInURLError",
    "MissingCredentialsError",
    "StorageOptions",
    "check_option_names",
    "is_no_credentials",
    "mask_url",
    "masked_cause",
    "options_for",
    "origin",
    "redact",
    "scope_options",
    "shown",
]

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
_HTTP = ("http", "https")
#: Options of the http(s) entries that carry credentials: bound to one origin.
_HTTP_SECRET_OPTIONS = frozenset({"headers", "auth", "cookies", "proxy_auth", "proxy_headers"})
_HTTP_SECRET_CLIENT_KWARGS = frozenset(
    {"headers", "auth", "cookies", "cookie_jar", "proxy_auth", "proxy_headers"}
)


class ContentTooLargeError(CatalogFormatError):
    """A registry, catalog or index file (or a member it expands to) passes its size limit.

    Attributes
    ----------
    url : str
        The file (credentials masked).
    limit : int
        The limit in bytes, from ``intake_helio.limits.*``.
    """

    def __init__(self, message: str, url: str = "", limit: int = 0):
        super().__init__(message)
        self.url = url
        self.limit = limit

    def __reduce__(self):
        return (type(self), (self.args[0] if self.args else "", self.url, self.limit))


class MissingCredentialsError(HelioError, PermissionError):
    """A store needs credentials and none were found (botocore ``NoCredentialsError``)."""


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with secret-looking entries replaced by ``'***'``.

    Used wherever storage options or configs could be shown (reprs, logs, YAML dumps,
    saved attributes) so that credentials never leave the process. Strings (also nested
    ones) have the credentials of the URLs they hold masked (:func:`mask_url`).
    """
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            low = k.lower() if isinstance(k, str) else ""
            if low in _SECRET_NAMES or any(w in low for w in _SECRET_WORDS):
                out[k] = "***"
            else:
                out[mask_url(k)] = redact(v)
        return out
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return mask_url(value)
    return value


# --------------------------------------------------------------------------- options
def _protocol(url: str) -> str:
    proto, _ = split_protocol(url)
    return (proto or "file").lower()


def _is_origin_key(key: Any) -> bool:
    return isinstance(key, str) and "://" in key


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``extra``; dicts inside (headers, client_kwargs) merged."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _protocol_options(url: str, storage_options: Mapping[str, Any]) -> dict[str, Any]:
    proto = _protocol(url)
    plain = {k: v for k, v in storage_options.items() if not _is_origin_key(k)}
    per_protocol = {
        k: v
        for k, v in plain.items()
        if isinstance(v, Mapping) and k in fsspec.available_protocols()
    }
    if per_protocol:
        aliases = {"s3a": "s3", "local": "file"}
        return dict(per_protocol.get(proto) or per_protocol.get(aliases.get(proto, proto)) or {})
    if proto in _NO_FLAT_OPTIONS:
        return {}
    return plain


def _origin_options(url: str, storage_options: Mapping[str, Any]) -> dict[str, Any]:
    target = origin(url)
    if target is None:
        return {}
    out: dict[str, Any] = {}
    for k, v in storage_options.items():
        if _is_origin_key(k) and isinstance(v, Mapping) and origin(k) == target:
            out = _merge(out, v)
    return out


def _with_timeouts(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Default connect/read timeouts (and S3 attempts) where ``opts`` sets none."""
    proto = _protocol(url)
    if proto in ("s3", "s3a"):
        cs = catalog_settings()
        config = dict(opts.get("config_kwargs") or {})
        config.setdefault("connect_timeout", cs.connect_timeout)
        config.setdefault("read_timeout", cs.read_timeout)
        if "retries" not in config:
            config["retries"] = {"total_max_attempts": cs.request_attempts}
        # a worker's threads each read a frame and the next ones ahead, large files as
        # several ranged requests: botocore's default pool (10) would queue them
        config.setdefault("max_pool_connections", cs.max_connections)
        return {**opts, "config_kwargs": config}
    if proto in _HTTP:
        client = dict(opts.get("client_kwargs") or {})
        if "timeout" not in client:
            import aiohttp

            cs = catalog_settings()
            client["timeout"] = aiohttp.ClientTimeout(
                total=None, sock_connect=cs.connect_timeout, sock_read=cs.read_timeout
            )
        return {**opts, "client_kwargs": client}
    return opts


def options_for(
    url: str, storage_options: Mapping[str, Any] | None, *, defaults: bool = True
) -> dict[str, Any]:
    """Return the storage options that apply to ``url``.

    Parameters
    ----------
    url : str
        The URL to be read.
    storage_options : dict, optional
        Flat, keyed by protocol, and/or keyed by origin (``"https://host:port"``); see the
        module's docstring.
    defaults : bool
        Add the default timeouts of ``intake_helio.timeouts.*`` (S3: ``config_kwargs``
        ``connect_timeout``, ``read_timeout``, ``retries.total_max_attempts``; HTTP:
        ``client_kwargs["timeout"]``) where the options set none.

    Returns
    -------
    dict
        The options for fsspec's filesystem of ``url``.
    """
    opts: dict[str, Any] = {}
    if storage_options:
        opts = _merge(
            _protocol_options(url, storage_options), _origin_options(url, storage_options)
        )
    return _with_timeouts(url, opts) if defaults else opts


def _split_http(entry: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options without credentials, the credentials) of an http(s) options entry."""
    public = {k: v for k, v in entry.items() if k not in _HTTP_SECRET_OPTIONS}
    secret = {k: v for k, v in entry.items() if k in _HTTP_SECRET_OPTIONS}
    client = entry.get("client_kwargs")
    if isinstance(client, Mapping):
        public["client_kwargs"] = {
            k: v for k, v in client.items() if k not in _HTTP_SECRET_CLIENT_KWARGS
        }
        hidden = {k: v for k, v in client.items() if k in _HTTP_SECRET_CLIENT_KWARGS}
        if hidden:
            secret["client_kwargs"] = hidden
    return public, secret


def scope_options(storage_options: Mapping[str, Any] | None, url: str) -> dict[str, Any] | None:
    """Bind the credentials of the ``http``/``https`` options to the host of ``url``.

    Call it with the URL the user gave (a registry or bucket catalog): headers, ``auth``
    and cookies of the ``"http"``/``"https"`` entries then reach that scheme, host and
    port only (they move to an origin-keyed entry), never a host that catalog content
    names. Options already keyed by origin are kept as given. When ``url`` is not an
    http(s) URL, those credentials reach no host named by content: give them keyed by
    origin (``{"https://host": {"headers": ...}}``) to use them there.

    Parameters
    ----------
    storage_options : dict, optional
    url : str
        The URL the user gave.

    Returns
    -------
    dict or None
        A new dict (the input is not changed), with an entry keyed by the origin of an
        ``http(s)://`` ``url`` (empty unless credentials moved there), which marks the
        origin as the user's own (:mod:`intake_helio.io.transport`); None stays None for
        other URLs.

    Raises
    ------
    ArgumentError
        An option is not one of its protocol's (:func:`check_option_names`): refused here,
        where the user's options first arrive, before any request.
    """
    user = origin(url)
    on_http = user is not None and user.split("://")[0] in _HTTP
    if storage_options is None and not on_http:
        return None
    check_option_names(storage_options, url)
    out = dict(storage_options or {})
    if on_http:
        # the origin the user gave is trusted: its host name may resolve to an internal
        # address (intake_helio.io.transport); an empty entry adds no options
        out.setdefault(user, {})
    for proto in _HTTP:
        entry = out.get(proto)
        if not isinstance(entry, Mapping):
            continue
        public, secret = _split_http(entry)
        if not secret:
            continue
        out[proto] = public
        if user is not None and user.split("://")[0] in _HTTP:
            key = proto + "://" + user.split("://", 1)[1]
            out[key] = _merge(secret, dict(out.get(key) or {}))
    return out


class CredentialsInURLError(HelioError, ValueError):
    """An ``s3://`` URL holds credentials (``s3://KEY:SECRET@bucket``): never sent, refused."""


def masked_cause(exc: BaseException) -> BaseException:
    """``exc`` to chain as a cause, or a stand-in when its chain's text holds a credential.

    Store and transport errors quote the URL they failed on (``FileNotFoundError(
    'http://user:pass@host/...')``); a traceback prints every cause. When any error of the
    chain shows a credential, the stand-in is a ``RuntimeError`` with the first error's
    type and masked text, and no chain of its own.
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        text = f"{link!s} {link!r}"
        if mask_url(text) != text:
            return RuntimeError(f"{type(exc).__name__}: {mask_url(str(exc))}")
        link = link.__cause__ or link.__context__
    return exc


def is_no_credentials(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an error in its cause chain) is botocore's ``NoCredentialsError``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MissingCredentialsError):
            return True
        if any(c.__name__ == "NoCredentialsError" for c in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class StorageOptions(dict):
    """A dict of storage options whose ``repr`` hides secrets.

    Travels inside dask graphs to the workers (they need the credentials) while any
    repr of a task, a graph or an error shows ``'***'`` in place of keys and tokens.

    Made from the options given to ``open_frames``/``to_dataarray``/``read_headers``: the
    names are checked then (:func:`check_option_names`, an ``ArgumentError`` before any
    frame is read), not again when a worker unpickles them.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        check_option_names(self)

    def __repr__(self) -> str:
        return repr(redact(dict(self)))

    __str__ = __repr__

    def __reduce__(self):
        return (_unpickle_options, (dict(self),))


def _unpickle_options(options: dict[str, Any]) -> StorageOptions:
    """A :class:`StorageOptions` as pickled: its names were checked where it was made."""
    out = StorageOptions.__new__(StorageOptions)
    dict.update(out, options)
    return out

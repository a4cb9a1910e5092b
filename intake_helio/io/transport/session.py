"""The door of every HTTP(S) request: each hop under the URL policy, credentials on their origin.

Every catalog, index and frame read of intake-helio goes through
:func:`~intake_helio.io.transport.filesystem` (and the bounded readers of
:mod:`intake_helio.io.transport.bounded`, which use the filesystems it gives). For
``http(s)://`` URLs that filesystem is fsspec's ``HTTPFileSystem`` with the aiohttp session of
:func:`get_client`, which

- checks every redirect hop against the URL policy (:class:`~intake_helio.io.urlpolicy.UrlPolicy`)
  as if the document that named the URL had named the hop (the hop's referrer is the URL
  that redirected), before the hop is requested, and follows at most
  ``intake_helio.url-policy.max-redirects`` of them: a refused hop raises
  :class:`RedirectRefusedError` (a frame's reason ``URL not allowed``), naming the hop's
  scheme and host, never its text;
- keeps credentials to the origin they were given for: the headers of a
  ``storage_options`` entry keyed by origin (``{"https://host": {"headers": ...}}``) are
  dropped from any request to another origin, a redirect hop included (aiohttp itself
  drops ``auth``, ``Authorization`` and cookies on a redirect to another origin);
- checks, when it connects, the addresses a host name resolves to: a name whose addresses
  are all internal (loopback, link-local, private, ...) is refused
  (:class:`InternalAddressError`, ``URL not allowed``) unless its origin is trusted (the
  origins of ``url-policy.allowed-hosts`` and those the user's ``storage_options`` are
  keyed by, which :func:`~intake_helio.io.storage.scope_options` adds for the URL the
  user gave); the internal addresses of a name that also has public ones are not used.
  Literal addresses are checked by the URL policy before any request.

S3 requests go through botocore (aiobotocore), whose endpoint is the user's
(``endpoint_url``) and whose only redirects are its own region redirects between AWS
endpoints: the bucket names that content gives never become hosts of their own choice.

aiohttp public API used (written against aiohttp 3.14): ``ClientSession(middlewares=,
trace_configs=, connector=)``, ``TraceConfig.on_request_redirect``, ``TCPConnector(resolver=)``,
``abc.AbstractResolver``. A custom ``get_client`` in the storage options is called with
these keyword arguments too (pass them on to ``aiohttp.ClientSession``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...base.reasons import Reason
from ...base.settings import catalog_settings
from ..masking import origin, shown
from ..urlpolicy import UrlNotAllowedError, UrlPolicy, address_category

__all__ = [
    "Door",
    "InternalAddressError",
    "RedirectRefusedError",
    "door_for",
    "get_client",
]

_HTTP = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SETTING_REDIRECTS = "intake_helio.url-policy.max-redirects"


class RedirectRefusedError(UrlNotAllowedError):
    """A server answered with a redirect to a URL the policy refuses (or one hop too many).

    Attributes
    ----------
    reason : str
        ``"URL not allowed"``.
    detail : str
        Which hop was refused and why, naming scheme and host only.
    """

    def __init__(self, detail: str):
        super().__init__(f"{Reason.URL_NOT_ALLOWED}: {detail}")
        self.detail = detail

    def __reduce__(self):
        return (type(self), (self.detail,))


class InternalAddressError(UrlNotAllowedError):
    """A host name resolved to internal addresses only, and its origin is not trusted.

    Attributes
    ----------
    reason : str
        ``"URL not allowed"``.
    detail : str
        The name, its port and the category of its addresses.
    """

    def __init__(self, detail: str):
        super().__init__(f"{Reason.URL_NOT_ALLOWED}: {detail}")
        self.detail = detail

    def __reduce__(self):
        return (type(self), (self.detail,))


@dataclass(frozen=True)
class Door:
    """What the session of one HTTP filesystem enforces (see the module's docstring).

    A small frozen value: it is part of the filesystem's options (``client_kwargs``), so
    it travels with them to the workers and into fsspec's instance cache key.

    Parameters
    ----------
    origin : str, optional
        The origin that the ``scoped`` headers are for (None: no scoped headers).
    scoped : tuple of str
        Lower-case names of the headers sent to ``origin`` only.
    trusted : tuple of str
        Origins whose host names may resolve to internal addresses.
    schemes, hosts : tuple of str
        The URL policy every redirect hop meets (``url-policy.allowed-schemes`` and
        ``allowed-hosts``).
    max_redirects : int
        Redirects followed per request (``url-policy.max-redirects``).
    """

    origin: str | None = None
    scoped: tuple[str, ...] = ()
    trusted: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ("s3", "https")
    hosts: tuple[str, ...] = ()
    max_redirects: int = 5

    @property
    def policy(self) -> UrlPolicy:
        """The URL policy of every hop."""
        return UrlPolicy(self.schemes, self.hosts)

    def trusted_hostports(self) -> frozenset[tuple[str, int]]:
        """``(host, port)`` of the trusted origins, host lower case, no trailing dot."""
        out = set()
        for o in self.trusted:
            scheme, _, hostport = o.partition("://")
            if hostport.startswith("["):
                host, _, rest = hostport[1:].partition("]")
                port = rest[1:] if rest.startswith(":") else ""
            else:
                host, _, port = hostport.partition(":")
            try:
                number = int(port) if port else _DEFAULT_PORTS.get(scheme, 0)
            except ValueError:
                continue
            out.add((host.lower().rstrip("."), number))
        return frozenset(out)


def door_for(
    url: str, scoped_options: Mapping[str, Any], storage_options: Mapping[str, Any] | None
) -> Door:
    """The :class:`Door` of the filesystem that reads ``url``.

    Parameters
    ----------
    url : str
        An ``http(s)://`` URL.
    scoped_options : dict
        The options of the ``storage_options`` entries keyed by ``url``'s origin (their
        headers reach that origin only).
    storage_options : dict, optional
        All the options: their origin keys are trusted origins.
    """
    cs = catalog_settings()
    headers = scoped_options.get("headers")
    scoped = (
        tuple(sorted({str(k).lower() for k in headers})) if isinstance(headers, Mapping) else ()
    )
    hosts = tuple(o for o in (origin(h) for h in cs.allowed_hosts) if o)
    trusted = set(hosts)
    for key in storage_options or {}:
        o = origin(key) if isinstance(key, str) and "://" in key else None
        if o and o.split("://")[0] in _HTTP:
            trusted.add(o)
    return Door(
        origin=origin(url) if scoped else None,
        scoped=scoped,
        trusted=tuple(sorted(trusted)),
        schemes=tuple(cs.allowed_schemes),
        hosts=hosts,
        max_redirects=cs.max_redirects,
    )


# --------------------------------------------------------------------------- the session
def _redirect_check(door: Door):
    """An aiohttp ``on_request_redirect`` hook: every hop under the policy, a bounded number."""

    async def on_redirect(session: Any, ctx: Any, params: Any) -> None:
        from yarl import URL

        hops = getattr(ctx, "intake_helio_hops", 0) + 1
        ctx.intake_helio_hops = hops
        resp = params.response
        here = str(params.url)
        location = resp.headers.get("Location") or resp.headers.get("URI")
        if location is None:
            return  # aiohttp stops here and returns the 3xx response
        why = None
        if hops > door.max_redirects:
            why = (
                f"more than {door.max_redirects} redirects (the limit {_SETTING_REDIRECTS}); "
                "the next hop was not requested"
            )
        else:
            try:
                target = str(params.url.join(URL(location)))
            except ValueError:
                target = location
            refusal = door.policy.refusal(target, referrer=here)
            if refusal is not None:
                why = f"redirect {hops} from {shown(origin(here) or '?')} to {refusal}"
        if why is not None:
            resp.close()
            raise RedirectRefusedError(why)

    return on_redirect


def _scope_middleware(door: Door):
    """An aiohttp client middleware: scoped headers reach their origin only (every hop)."""

    async def scope(request: Any, handler: Callable[[Any], Any]) -> Any:
        if door.scoped and origin(str(request.url)) != door.origin:
            for name in door.scoped:
                request.headers.popall(name, None)
        return await handler(request)

    return scope


def _guarded_resolver(door: Door):
    """An aiohttp resolver that refuses names resolving to internal addresses (see module)."""
    import aiohttp
    from aiohttp.abc import AbstractResolver

    base = getattr(aiohttp, "DefaultResolver", None) or aiohttp.ThreadedResolver
    trusted = door.trusted_hostports()

    class GuardedResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = base()

        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
            infos = await self._inner.resolve(host, port, family)
            if (host.lower().rstrip("."), port) in trusted:
                return infos
            kept, seen = [], None
            for info in infos:
                try:
                    addr = ipaddress.ip_address(str(info["host"]).split("%", 1)[0])
                except ValueError:
                    continue
                category = address_category(addr)
                if category is None:
                    kept.append(info)
                else:
                    seen = seen or category
            if not kept:
                a = "an" if (seen or "x")[0] in "aeiou" else "a"
                raise InternalAddressError(
                    f"the host name {shown(host, 80)} (port {port}) resolves to "
                    f"{a} {seen or 'unusable'} address only, not connected to (names of "
                    "internal addresses are read only on the origins you gave and those in "
                    "dask config intake_helio.url-policy.allowed-hosts)"
                )
            return kept

        async def close(self) -> None:
            await self._inner.close()

    return GuardedResolver()


async def get_client(
    *, door: Door | None = None, inner: Callable[..., Any] | None = None, **kwargs: Any
):
    """The aiohttp session of an HTTP filesystem: fsspec's ``get_client`` with the door.

    Parameters
    ----------
    door : Door, optional
        What to enforce (None: the settings in force, no scoped headers, trusted origins
        of ``allowed-hosts`` only).
    inner : callable, optional
        A ``get_client`` of the user's storage options: called with the session's keyword
        arguments (``middlewares``, ``trace_configs``, ``connector`` included).
    **kwargs
        ``client_kwargs`` (and fsspec's ``loop``), passed to ``aiohttp.ClientSession``.

    Returns
    -------
    aiohttp.ClientSession
    """
    import aiohttp

    if door is None:
        door = door_for("", {}, None)
    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(_redirect_check(door))
    kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or ()), trace]
    kwargs["middlewares"] = (*(kwargs.get("middlewares") or ()), _scope_middleware(door))
    if kwargs.get("connector") is None:
        kwargs["connector"] = aiohttp.TCPConnector(resolver=_guarded_resolver(door))
    if inner is not None:
        return await inner(**kwargs)
    return aiohttp.ClientSession(**kwargs)


def with_door(
    url: str,
    opts: dict[str, Any],
    storage_options: Mapping[str, Any] | None,
    scoped: Mapping[str, Any],
) -> dict[str, Any]:
    """``opts`` of an ``http(s)://`` URL with the door's ``get_client`` and :class:`Door`."""
    import functools

    client = dict(opts.get("client_kwargs") or {})
    client["door"] = door_for(url, scoped, storage_options)
    user = opts.get("get_client")
    out = {**opts, "client_kwargs": client}
    if user is None or user is get_client:
        out["get_client"] = get_client
    elif not (isinstance(user, functools.partial) and user.func is get_client):
        out["get_client"] = functools.partial(get_client, inner=user)
    return out

"""Which URLs named by catalog content may be read.

A registry lists other people's buckets, and a bucket owner writes its ``catalog.json`` and
yearly index files: the URLs in them (registry endpoints, a dataset's ``index``, index
datakeys) are third-party content. Only these are followed:

- ``s3://`` and ``https://`` URLs, on any host (``intake_helio.url-policy.allowed-schemes``)
  but an internal one: an ``https://`` (or other network-scheme) URL whose host is a
  loopback, link-local, private, unspecified, multicast or reserved address, in any spelling
  (``127.1``, ``0x7f.1``, ``2130706433``, ``0177.0.0.1``, ``[::1]``, ``[::ffff:127.0.0.1]``,
  ``169.254.169.254``, ``10.0.0.1``, ``[fc00::1]``, ...), or ``localhost``/``*.localhost``
  (trailing dot or not), is refused unless it is one of the two origins below;
- URLs on the same scheme, host and port as the document that names them (a catalog on
  ``http://127.0.0.1:8000/`` may name index files there; ``memory://`` is one in-process
  namespace, so a ``memory://`` catalog may name any ``memory://`` URL);
- the origins listed in ``intake_helio.url-policy.allowed-hosts`` (``["http://host:port"]``).

Names other than ``localhost`` are not resolved here (no request is made to check a URL):
the addresses a name resolves to are checked when connecting, and every redirect hop
against this policy, by :mod:`intake_helio.io.transport`.

Refused: fsspec chains (``filecache::s3://...``), ``file://``, plain ``http://`` on another
host, and any other scheme (``ftp://``, ``memory://``, ...). A relative index prefix
(``./sub/``) resolves against the catalog's own URL and must stay under the bucket root.
Dataset ids are letters, digits, ``-`` and ``_`` (spaces are tolerated and URL-quoted).

URLs the user gives (``open_bucket(url)``, ``open_registry(url)``) are trusted as given.
Refusals never quote the refused text: they give its scheme, its host when it looks like
one, and its length.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..base.errors import CatalogFormatError
from ..base.reasons import Reason
from ..base.settings import catalog_settings
from .masking import origin, shown

__all__ = [
    "UrlNotAllowedError",
    "UrlPolicy",
    "check_dataset_id",
    "host_category",
    "quote_id",
    "resolve_prefix",
]

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
_SAFE_ORIGIN = re.compile(r"^[a-z][a-z0-9+.\-]*://[a-z0-9.\-_\[\]:]{1,100}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID = re.compile(r"^[A-Za-z0-9_\- ]{1,200}\Z")
_NO_HOST_SCHEMES = frozenset({"file", "local"})
#: Schemes of one in-process namespace: all their URLs count as one host.
_ONE_NAMESPACE = frozenset({"memory"})
_SETTING_HOSTS = "intake_helio.url-policy.allowed-hosts"
#: Schemes whose host is a network address (an ``s3://`` URL's "host" is a bucket name).
_NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "ftps", "sftp", "ssh", "webdav"})
#: The legacy IPv4 spellings inet_aton accepts (``127.1``, ``0x7f.1``, ``2130706433``, octal).
_INET_ATON = re.compile(r"^[0-9a-fx.]{1,64}\Z")
#: The host of a URL as :func:`~intake_helio.io.storage.origin` finds it (after userinfo).
_HOST = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#]*@)?(\[[^\]/?#]*\]|[^:/?#]*)"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` spells (any form the resolver accepts), else None."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _INET_ATON.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded_v4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4, Teredo or NAT64 IPv6 address."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def address_category(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """``"loopback"``, ``"link-local"``, ... for an internal address; None for a public one."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = _embedded_v4(addr)
        if inner is not None:
            return address_category(inner)
    for name in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(addr, f"is_{name}"):
            return name.replace("_", "-")
    if not addr.is_global:  # shared address space 100.64/10 and other non-public blocks
        return "non-public"
    return None


def _canonical_host(host: str) -> str:
    """``host`` lower-cased, IDNA-normalised (full-width digits...), without trailing dots."""
    host = host.strip().lower()
    if not (host.startswith("[") and host.endswith("]")):
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
        host = host.rstrip(".")
    return host


@lru_cache(maxsize=4096)
def host_category(host: str) -> str | None:
    """Why ``host`` (a URL's host, IPv6 in brackets) is internal, or None.

    Returns ``"loopback"`` (also ``localhost`` and ``*.localhost``), ``"link-local"``,
    ``"private"``, ``"unspecified"``, ``"multicast"``, ``"reserved"`` or ``"non-public"``
    for an address in any spelling the resolver accepts (dotted, ``127.1``, hexadecimal,
    octal, one integer, IPv6, IPv4-mapped IPv6); None for a public address or any other
    name (names are not resolved).
    """
    host = _canonical_host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    addr = _ip(host)
    return address_category(addr) if addr is not None else None


def _canonical_origin(o: str | None) -> str | None:
    """An origin with its host in one spelling (``https://0x7f.1`` -> ``https://127.0.0.1``)."""
    if not o or "://" not in o:
        return o
    scheme, rest = o.split("://", 1)
    if rest.startswith("["):
        host, _, port = rest.partition("]")
        host, port = host + "]", port[1:]
    else:
        host, _, port = rest.partition(":")
    host = _canonical_host(host)
    addr = _ip(host)
    if addr is not None:
        host = f"[{addr}]" if addr.version == 6 else str(addr)
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _url_host(url: str) -> str | None:
    m = re.match(_HOST, url.strip())
    return m.group(1) if m else None


class UrlNotAllowedError(CatalogFormatError):
    """Catalog content names a URL (or dataset id) that the URL policy refuses.

    Attributes
    ----------
    reason : str
        ``"URL not allowed"`` (:attr:`~intake_helio.Reason.URL_NOT_ALLOWED`).
    """

    reason = Reason.URL_NOT_ALLOWED


def _size(text: str) -> str:
    n = len(text.encode("utf-8", "replace"))
    return f"a {n}-byte value"


def _where(url: str) -> str:
    """The scheme and host of a refused URL when they look harmless, else its size."""
    o = origin(url)
    if o is not None and _SAFE_ORIGIN.match(o):
        return o
    m = _SCHEME.match(url)
    if m and len(m.group("scheme")) <= 20:
        return f"a {m.group('scheme').lower()}:// URL ({_size(url)})"
    return _size(url)


def _internal(scheme: str, category: str, url: str) -> str:
    a = "an" if category[0] in "aeiou" else "a"
    return (
        f"{_where(url)} is {scheme}:// on {a} {category} address, not allowed (internal "
        "addresses are read only on the host of the document that names them and the "
        f"origins in dask config {_SETTING_HOSTS})"
    )


@dataclass(frozen=True)
class UrlPolicy:
    """The schemes and origins catalog content may name (see the module's docstring).

    Parameters
    ----------
    schemes : tuple of str
        Schemes allowed on any host (lower case, no ``://``).
    hosts : tuple of str
        Origins (``scheme://host[:port]``) also allowed.
    """

    schemes: tuple[str, ...] = ("s3", "https")
    hosts: tuple[str, ...] = ()

    @classmethod
    def current(cls) -> UrlPolicy:
        """The policy of ``intake_helio.url-policy.*`` in ``dask.config``."""
        cs = catalog_settings()
        hosts = tuple(o for o in (origin(h) for h in cs.allowed_hosts) if o)
        return cls(tuple(cs.allowed_schemes), hosts)

    # ------------------------------------------------------------------ one URL
    def refusal(self, url: Any, referrer: str | None = None) -> str | None:
        """Why ``url`` is refused, or None when it may be read.

        Parameters
        ----------
        url : str
            A URL named by content.
        referrer : str, optional
            The URL of the document that names it (same-origin URLs are allowed).

        Returns
        -------
        str or None
            The reason (never quoting ``url`` itself), or None.
        """
        if not isinstance(url, str):
            return f"expected a URL string, found {type(url).__name__}"
        if not url.strip():
            return "the URL is empty"
        if "::" in url:
            host = _url_host(url)
            scheme = _SCHEME.match(url)
            if host and host.startswith("[") and scheme and host_category(host):
                return _internal(scheme.group("scheme").lower(), host_category(host), url)
            return f"a chained fsspec URL ('::', {_size(url)}) is never followed"
        if _CONTROL.search(url):
            return f"the URL holds control characters ({_size(url)})"
        m = _SCHEME.match(url)
        if not m:
            return f"not an absolute URL ({_size(url)}); expected s3://bucket/... or https://..."
        scheme = m.group("scheme").lower()
        target = origin(url)
        internal = None
        if scheme in self.schemes:
            host = _url_host(url) if scheme in _NETWORK_SCHEMES else None
            internal = host_category(host) if host is not None else None
            if internal is None:
                return None
        ref_scheme = _SCHEME.match(referrer) if isinstance(referrer, str) else None
        if scheme in _ONE_NAMESPACE and ref_scheme and ref_scheme.group("scheme").lower() == scheme:
            return None
        if target is not None and target.split("://", 1)[1] and scheme not in _NO_HOST_SCHEMES:
            if referrer is not None and target == origin(referrer):
                return None
            if target in self.hosts:
                return None
            if internal is not None:
                canonical = _canonical_origin(target)
                if referrer is not None and canonical == _canonical_origin(origin(referrer)):
                    return None
                if canonical in {_canonical_origin(h) for h in self.hosts}:
                    return None
        if internal is not None:
            return _internal(scheme, internal, url)
        allowed = ", ".join(f"{s}://" for s in self.schemes) or "no scheme"
        return (
            f"{_where(url)} is not allowed (allowed: {allowed}, the host of the document "
            f"that names it, and the origins in dask config {_SETTING_HOSTS})"
        )

    def check(self, url: Any, referrer: str | None = None, what: str = "URL") -> str:
        """``url`` itself when allowed.

        Raises
        ------
        UrlNotAllowedError
            With the reason, the document naming it (masked) and how to trust a host.
        """
        why = self.refusal(url, referrer)
        if why is None:
            return url
        named = f" named by {shown(referrer)}" if referrer else ""
        raise UrlNotAllowedError(
            f"{Reason.URL_NOT_ALLOWED}: {what}{named}: {why}; it was not read. If you trust "
            f"that host, add it to dask config {_SETTING_HOSTS} "
            "(e.g. dask.config.set({'intake_helio.url-policy.allowed-hosts': "
            "['http://host:port']}))"
        )

    # ------------------------------------------------------------------ many URLs
    def allowed_mask(self, urls: Sequence[str] | pd.Series, referrer: str | None) -> np.ndarray:
        """Whether each of ``urls`` may be read (vectorised :meth:`refusal` is None)."""
        s = urls if isinstance(urls, pd.Series) else pd.Series(list(urls), dtype=object)
        s = s.astype(str)
        prefixes = [f"{sc}://" for sc in self.schemes]
        ref = origin(referrer) if referrer else None
        for o in (ref, *self.hosts):
            if o and o.split("://")[0] in _ONE_NAMESPACE:
                prefixes.append(o.split("://")[0] + "://")
            elif o and o.split("://", 1)[1] and o.split("://")[0] not in _NO_HOST_SCHEMES:
                prefixes.append(o + "/")
        if not prefixes:
            ok = np.zeros(len(s), dtype=bool)
        else:
            ok = np.array(s.str.startswith(tuple(prefixes)).fillna(False), dtype=bool)
            ok &= ~np.array(s.str.contains("::", regex=False).fillna(True), dtype=bool)
            ok &= ~np.array(s.str.contains(_CONTROL.pattern, regex=True).fillna(True), dtype=bool)
            network = [f"{sc}://" for sc in self.schemes if sc in _NETWORK_SCHEMES]
            if network:
                # URLs allowed for their scheme alone: internal hosts go to the slow path
                # (one classification per distinct host)
                on_network = ok & np.array(
                    s.str.lower().str.startswith(tuple(network)).fillna(False), dtype=bool
                )
                if on_network.any():
                    hosts = s[on_network].str.extract(_HOST, expand=False).fillna("")
                    internal = hosts.map({h: host_category(h) is not None for h in hosts.unique()})
                    ok[np.flatnonzero(on_network)[internal.to_numpy(dtype=bool)]] = False
        slow = np.flatnonzero(~ok)
        if len(slow):
            values = s.to_numpy()
            for i in slow:
                ok[i] = self.refusal(values[i], referrer) is None
        return ok


# --------------------------------------------------------------------------- prefixes, ids
def _normalise(path: str) -> list[str] | None:
    """Segments of ``path`` with ``.`` and ``..`` applied; None when ``..`` leaves the root."""
    out: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not out:
                return None
            out.pop()
        else:
            out.append(seg)
    return out


def resolve_prefix(ref: Any, catalog_url: str, root: str, policy: UrlPolicy | None = None) -> str:
    """The absolute index prefix of a dataset's ``index`` value.

    Parameters
    ----------
    ref : str
        The ``index`` of a catalog entry: an absolute URL (checked by the policy against
        the catalog's URL) or a relative prefix such as ``./sub/`` or ``/sub/``.
    catalog_url : str
        The URL of the ``catalog.json`` naming it (relative prefixes resolve against it,
        never the working directory).
    root : str
        The bucket root (``s3://bucket/``): a relative prefix must stay under it.
    policy : UrlPolicy, optional
        Defaults to :meth:`UrlPolicy.current`.

    Returns
    -------
    str
        The prefix, ending in ``/``.

    Raises
    ------
    UrlNotAllowedError
        The policy refuses it, or it leaves the bucket root.
    """
    policy = policy or UrlPolicy.current()
    if not isinstance(ref, str) or not ref.strip():
        policy.check(ref, catalog_url, "index")
    ref = ref.strip()
    if _SCHEME.match(ref) or "::" in ref:
        url = policy.check(ref, catalog_url, "index")
        return url if url.endswith("/") else url + "/"
    problem = None
    low = ref.lower()
    if ref.startswith("//") or "\\" in ref:
        problem = "a network-path or backslash reference"
    elif "%2e" in low or "%2f" in low or "%5c" in low:
        problem = "percent-encoded dots or slashes"
    elif _CONTROL.search(ref) or "?" in ref or "#" in ref:
        problem = "control characters, '?' or '#'"
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)([^?#]*)", catalog_url)
    if problem is None and not m:
        problem = "a relative prefix named by a catalog that has no absolute URL"
    if problem is None:
        base, base_path = m.group(1), m.group(2) or "/"
        joined = ref if ref.startswith("/") else base_path.rsplit("/", 1)[0] + "/" + ref
        segments = _normalise(joined)
        if segments is None:
            problem = "a relative prefix that climbs above the host's root"
        else:
            url = base + "/" + "/".join(segments) + ("/" if segments else "")
            if url.startswith(root) or url + "/" == root:
                return url
            problem = "a relative prefix that leaves the bucket root"
    raise UrlNotAllowedError(
        f"{Reason.URL_NOT_ALLOWED}: index named by {shown(catalog_url)} is {problem} "
        f"({_size(ref)}); expected s3://..., https://..., or a relative prefix such as "
        f"'./sub/' under {shown(root)}; it was not read"
    )


def check_dataset_id(value: Any, where: str) -> str:
    """``value`` when it is a usable dataset id (letters, digits, ``-``, ``_``, spaces).

    Raises
    ------
    UrlNotAllowedError
        Before any request is made from it; the message gives the id's size, not the id.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UrlNotAllowedError(
            f"{where}: the dataset id has type {type(value).__name__}; expected a string of "
            "letters, digits, '-' and '_'"
        )
    text = str(value)
    if not _ID.match(text) or not text.strip():
        raise UrlNotAllowedError(
            f"{where}: the dataset id ({_size(text)}) is not 1 to 200 letters, digits, "
            "'-', '_' (or spaces); it is used in index URLs, so the dataset was skipped"
        )
    return text


def quote_id(dataset_id: str, index: str) -> str:
    """``dataset_id`` as it goes into an index URL under ``index`` (spaces quoted on http)."""
    if " " in dataset_id and index.lower().startswith(("http://", "https://")):
        return dataset_id.replace(" ", "%20")
    return dataset_id

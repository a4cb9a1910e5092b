"""URLs as text: their origin, their credentials masked, third-party text made safe to show.

:func:`origin` gives the ``scheme://host[:port]`` that credentials and the URL policy are
scoped by;
:func:`mask_url` hides the userinfo and secret-looking query values of URLs in any text;
:func:`shown` does that and then applies the one sanitiser,
:func:`~intake_helio.base.text.safe_text`.
"""

from __future__ import annotations

import re
from typing import Any

from ..base.text import safe_text

__all__ = ["mask_url", "origin", "shown"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_URL_START = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<netloc>[^/?#]*)")
# scheme://userinfo@ : the userinfo runs to the last "@" before the host's "/"
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s?#\"<>\\]*@")
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;][^=&#\s]*?(?:signature|token|secret|password|credential|key|sig|auth)"
    r"[^=&#\s]*=)[^&#\s'\"<>]*",
    re.IGNORECASE,
)


def mask_url(url: Any) -> Any:
    """``url`` with the credentials it holds replaced by ``***``.

    Masks the userinfo of every ``scheme://user:pass@host`` in the text (also
    ``s3://KEY:SECRET@bucket``) and the values of query parameters whose names look secret
    (``X-Amz-Signature``, ``X-Amz-Credential``, ``token``, ``sig``, ``password``, ...).
    Values that are not strings are returned unchanged.

    Parameters
    ----------
    url : str
        A URL, or any text holding URLs (an error message, a repr).

    Returns
    -------
    str
        The text with ``scheme://***@host`` and ``name=***``.
    """
    if not isinstance(url, str) or ("@" not in url and "=" not in url):
        return url
    text = _USERINFO.sub(r"\g<scheme>***@", url)
    return _SECRET_QUERY.sub(r"\g<name>***", text)


def shown(text: Any, limit: int = 200) -> str:
    """Third-party text made safe to show: credentials masked, then
    :func:`~intake_helio.base.text.safe_text` (escapes dropped, control and format
    characters such as bidi overrides replaced by ``?``, cut to ``limit`` characters)."""
    return safe_text(mask_url(str(text)), limit)


def origin(url: Any) -> str | None:
    """``scheme://host[:port]`` of an absolute URL, normalised; None for anything else.

    The scheme and host are lower-cased, the userinfo dropped and default ports (80 for
    http, 443 for https) left out, so ``HTTP://u:p@Example.org:80/x`` and
    ``http://example.org/`` have the same origin. ``s3://bucket/key`` has the origin
    ``s3://bucket``.
    """
    if not isinstance(url, str):
        return None
    m = _URL_START.match(url.strip())
    if not m:
        return None
    scheme = m.group("scheme").lower()
    hostport = m.group("netloc").rpartition("@")[2].lower()
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport.partition("]")
        host, port = host + "]", rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if port == _DEFAULT_PORTS.get(scheme):
        port = ""
    return f"{scheme}://{host}" + (f":{port}" if port else "")

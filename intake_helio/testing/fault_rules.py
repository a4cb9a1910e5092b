"""Which faults :class:`~intake_helio.testing.fault_proxy.FaultProxy` injects, and where.

A :class:`FaultRule` names a kind of fault and the requests it applies to:

``"status"``
    an S3 XML error response (e.g. ``503 SlowDown``, ``500 InternalError``) without contacting
    the upstream; a request body is read and discarded first, so the connection stays usable.
``"reset"``
    the connection is closed abruptly (TCP RST), no response at all.
``"stall"``
    the request is held for ``delay`` seconds and then forwarded normally; if the client
    disconnects (gives up) meanwhile, the request is dropped without reaching the upstream.
``"truncate"``
    the upstream response is forwarded with its full ``Content-Length`` but only the first
    ``fraction`` of the body is sent, then the connection is closed.
``"trickle"``
    the upstream response's head is forwarded at once, then its body one byte every
    ``delay`` seconds (a server that never goes silent for long but never finishes either),
    until the body ends or the client hangs up.

Matching
--------
A rule's ``match`` is searched with :func:`re.search` in the request's **full URL path,
percent-decoded, without the query string**, i.e. ``"/bucket/dir/key.fits"`` (path-style
addressing, as s3fs uses with ``endpoint_url``). A plain substring such as ``"key.fits"`` works
as a pattern too. ``match=None`` matches every path of the rule's ``methods``, including
bucket listings (``GET /bucket?list-type=2...``). Rules are tried in order; the first that
fires answers the request (:func:`choose_rule`).

Reproducibility
---------------
Every probabilistic decision (``rate < 1``) draws from one ``random.Random(seed)`` in request
arrival order, so the same sequence of requests under the same seed gets the same faults.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .errors import FaultConfigError, FaultConfigTypeError

__all__ = ["FAULT_KINDS", "FaultRule", "choose_rule", "s3_error_body"]

FAULT_KINDS = ("status", "reset", "stall", "truncate", "trickle")
"""The kinds of fault a :class:`FaultRule` can inject."""

_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "InternalError": "We encountered an internal error. Please try again.",
}


@dataclass(frozen=True)
class FaultRule:
    """One kind of fault and the requests it applies to.

    Parameters
    ----------
    kind : {"status", "reset", "stall", "truncate", "trickle"}
        What happens to a matching request (see the module docstring).
    status : int
        HTTP status of a ``"status"`` fault (400-599), e.g. 503 or 500.
    code : str
        S3 error code in the XML body of a ``"status"`` fault, e.g. ``"SlowDown"``,
        ``"ServiceUnavailable"``, ``"InternalError"``.
    delay : float
        Seconds a ``"stall"`` fault holds the request before forwarding it; for a
        ``"trickle"`` fault, seconds between two bytes of the body.
    fraction : float
        Share of the body a ``"truncate"`` fault sends, in ``[0, 1)``.
    match : str or None
        Regular expression searched (``re.search``) in the percent-decoded URL path
        ``/bucket/key``; a plain substring works too. ``None`` matches every path.
    methods : tuple of str
        HTTP methods the rule applies to (case-insensitive).
    times : int or None
        Inject at most this many faults, then let matching requests pass (``None``:
        unlimited). Counted per rule and reset by ``FaultProxy.set_rules``.
    rate : float
        Probability, in ``[0, 1]``, that a matching request gets the fault (seeded RNG).

    Raises
    ------
    FaultConfigError
        (a ``ValueError``) A value is out of range, or ``match`` is not a regular expression.
    FaultConfigTypeError
        (a ``TypeError``) ``methods`` is a single string instead of a tuple.
    """

    kind: str
    status: int = 503
    code: str = "SlowDown"
    delay: float = 5.0
    fraction: float = 0.5
    match: str | None = None
    methods: tuple = ("GET",)
    times: int | None = None
    rate: float = 1.0
    _pattern: re.Pattern | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultConfigError(
                f"FaultRule kind {self.kind!r} is not known; expected one of {FAULT_KINDS}"
            )
        if not 400 <= int(self.status) <= 599:
            raise FaultConfigError(
                f"FaultRule status {self.status!r} is not an HTTP error; expected 400-599"
            )
        if not self.delay >= 0:
            raise FaultConfigError(
                f"FaultRule delay {self.delay!r} is invalid; expected seconds >= 0"
            )
        if not 0 <= self.fraction < 1:
            raise FaultConfigError(
                f"FaultRule fraction {self.fraction!r} is invalid; expected 0 <= fraction < 1"
            )
        if not 0 <= self.rate <= 1:
            raise FaultConfigError(
                f"FaultRule rate {self.rate!r} is invalid; expected 0 <= rate <= 1"
            )
        if self.times is not None and self.times < 0:
            raise FaultConfigError(
                f"FaultRule times {self.times!r} is invalid; expected None or an int >= 0"
            )
        if isinstance(self.methods, str):
            raise FaultConfigTypeError(
                f"FaultRule methods {self.methods!r} must be a tuple of methods, "
                f"e.g. ({self.methods!r},)"
            )
        object.__setattr__(self, "methods", tuple(m.upper() for m in self.methods))
        if self.match is not None:
            try:
                pattern = re.compile(self.match)
            except re.error as exc:
                raise FaultConfigError(
                    f"FaultRule match {self.match!r} is not a valid regular expression ({exc}); "
                    "escape it with re.escape() to match it literally"
                ) from exc
            object.__setattr__(self, "_pattern", pattern)

    def applies_to(self, method: str, path: str) -> bool:
        """Whether ``method`` and the decoded URL ``path`` are selected by this rule."""
        if method.upper() not in self.methods:
            return False
        return self._pattern is None or self._pattern.search(path) is not None


def choose_rule(
    rules: Sequence[FaultRule],
    fired: list[int],
    rng: random.Random,
    method: str,
    path: str,
) -> FaultRule | None:
    """The first rule that fires for a request, or None to let it pass.

    A rule fires if it :meth:`~FaultRule.applies_to` the request, its ``times`` budget is
    not used up, and (when ``rate < 1``) a draw from ``rng`` falls below ``rate``; only rules
    that apply and have budget left draw, so decisions depend on the request sequence only.

    Parameters
    ----------
    rules : sequence of FaultRule
        Tried in order.
    fired : list of int
        Faults injected so far per rule (same length as ``rules``); the chosen rule's count
        is incremented in place.
    rng : random.Random
        The seeded generator of the ``rate < 1`` decisions.
    method : str
        HTTP method of the request.
    path : str
        Its percent-decoded URL path, without the query string.

    Returns
    -------
    FaultRule or None
    """
    for i, rule in enumerate(rules):
        if not rule.applies_to(method, path):
            continue
        if rule.times is not None and fired[i] >= rule.times:
            continue
        if rule.rate < 1 and rng.random() >= rule.rate:
            continue
        fired[i] += 1
        return rule
    return None


def s3_error_body(code: str, path: str, request_id: str) -> bytes:
    """The XML body of an S3 error response, as a ``"status"`` fault sends it.

    Parameters
    ----------
    code : str
        S3 error code, e.g. ``"SlowDown"``; known codes get S3's own message.
    path : str
        The requested resource (``/bucket/key``).
    request_id : str
        The request id (also sent as ``x-amz-request-id``).

    Returns
    -------
    bytes
        UTF-8 XML, ``<Error><Code>...</Code><Message>...</Message>...</Error>``.
    """
    message = _MESSAGES.get(code, f"Injected fault {code}.")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(path)}</Resource><RequestId>{escape(request_id)}</RequestId></Error>"
    ).encode()

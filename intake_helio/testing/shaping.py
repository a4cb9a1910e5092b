"""Cloud-shaped networking for :class:`~intake_helio.testing.fault_proxy.FaultProxy`.

A :class:`Shaping` makes the proxy on ``127.0.0.1`` answer like S3 seen from a cloud
instance instead of like a server on the loopback:

first-byte latency
    every response (forwarded, or an error the proxy makes up) starts no earlier than
    ``latency`` seconds after its request arrived. Fixed, or drawn per request from a
    log-normal distribution with median ``latency`` and shape ``latency_sigma``, bounded by
    ``latency_max``; draws come from one ``random.Random(seed)`` in request arrival order.
    The upstream's own time to answer is part of it, not added to it.
per-connection bandwidth
    a response body is sent at no more than ``bandwidth`` bytes/s on its connection (paced
    in slices of about 2 ms); several connections each get the full rate, as S3 gives each
    connection ~85-90 MB/s.
request rate
    a token bucket of ``burst`` tokens refilled at ``rate`` per second; a request that finds
    it empty is answered ``503 SlowDown`` with S3's XML error body, as S3 answers above
    ~5,500 GET/s per prefix (one bucket here: the proxy is one prefix). ``max_throttled``
    bounds how many requests are answered so (then they pass), so that a run can always
    finish. Decisions depend only on the arrival times.

:class:`~intake_helio.testing.proxy_process.ProxyProcess` runs a shaped ``FaultProxy`` in a
child process, so that pacing and relaying bodies take no CPU time from the process that
measures.

Examples
--------
>>> shaping = Shaping(latency=0.05, bandwidth=90e6, rate=5500)
>>> with LocalS3() as s3, FaultProxy(s3.endpoint_url, shaping=shaping) as proxy:  # doctest: +SKIP
...     fs = s3fs.S3FileSystem(**{**s3.storage_options, "endpoint_url": proxy.endpoint_url})
...     fs.cat("bucket/a.fits")        # the first byte after >= 50 ms, then 90 MB/s
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from .errors import FaultConfigError, FaultConfigTypeError

__all__ = ["Pacer", "Shaper", "Shaping"]

_PACE_SLICE = 0.002  # seconds of bandwidth sent per write when pacing
_MIN_CHUNK, _MAX_CHUNK = 16 << 10, 1 << 20


def _number(name: str, value: Any, low: float, optional: bool = False) -> float | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultConfigTypeError(f"Shaping {name}={value!r} must be a number")
    if not (math.isfinite(value) and value >= low):
        raise FaultConfigError(f"Shaping {name}={value!r} is invalid; expected a number >= {low}")
    return float(value)


@dataclass(frozen=True)
class Shaping:
    """How the proxy shapes its answers: latency, bandwidth per connection, request rate.

    Parameters
    ----------
    latency : float
        Seconds from a request's arrival to the first byte of its response (the median
        when ``latency_sigma > 0``); 0: none.
    latency_sigma : float
        Shape of a log-normal distribution of the latency (0: fixed), e.g. 0.5 for a
        long tail like S3's; draws are seeded by ``seed``.
    latency_max : float
        Upper bound of a drawn latency, in seconds.
    bandwidth : float or None
        Bytes per second of one response body on its connection; None: not capped.
    rate : float or None
        Requests per second admitted (token bucket); beyond it ``503 SlowDown``. None: no limit.
    burst : float or None
        Tokens the bucket holds (requests admitted at once); default ``max(1, rate / 10)``,
        i.e. 100 ms worth of requests.
    max_throttled : int or None
        Answer at most this many requests with ``SlowDown``, then let them pass (None:
        no bound).
    seed : int
        Seed of the latency draws.

    Raises
    ------
    FaultConfigError
        (a ``ValueError``) A value is negative, zero where it must be positive, or not finite.
    FaultConfigTypeError
        (a ``TypeError``) A value is not a number.
    """

    latency: float = 0.0
    latency_sigma: float = 0.0
    latency_max: float = 2.0
    bandwidth: float | None = None
    rate: float | None = None
    burst: float | None = None
    max_throttled: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _number("latency", self.latency, 0)
        _number("latency_sigma", self.latency_sigma, 0)
        _number("latency_max", self.latency_max, self.latency)
        for name in ("bandwidth", "rate", "burst"):
            value = _number(name, getattr(self, name), 1e-9, optional=True)
            if name == "burst" and value is not None and value < 1:
                raise FaultConfigError(f"Shaping burst={self.burst!r} is invalid; expected >= 1")
        bound = self.max_throttled
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, int) or bound < 0
        ):
            raise FaultConfigError(
                f"Shaping max_throttled={self.max_throttled!r} must be None or an int >= 0"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise FaultConfigTypeError(f"Shaping seed={self.seed!r} must be an int")

    @property
    def bucket_size(self) -> float | None:
        """The token bucket's capacity (``burst`` or its default); None without ``rate``."""
        if self.rate is None:
            return None
        return self.burst if self.burst is not None else max(1.0, self.rate / 10)

    def describe(self) -> str:
        """One line, e.g. ``latency 50 ms, 90 MB/s per connection, 5500 requests/s``."""
        parts = [f"latency {self.latency * 1e3:g} ms"]
        if self.latency_sigma:
            parts[0] += f" (log-normal sigma {self.latency_sigma:g}, <= {self.latency_max:g} s)"
        if self.bandwidth is not None:
            parts.append(f"{self.bandwidth / 1e6:g} MB/s per connection")
        if self.rate is not None:
            parts.append(f"{self.rate:g} requests/s (burst {self.bucket_size:g})")
        return ", ".join(parts)


class Pacer:
    """Paces one response body at ``bandwidth`` bytes/s: call :meth:`sent` after each write.

    Parameters
    ----------
    bandwidth : float
        Bytes per second.
    stopping : threading.Event
        Set when the proxy stops: waiting ends at once.
    """

    def __init__(self, bandwidth: float, stopping: threading.Event):
        self.bandwidth = bandwidth
        self.chunk = int(min(_MAX_CHUNK, max(_MIN_CHUNK, bandwidth * _PACE_SLICE)))
        self._stopping = stopping
        self._start = time.monotonic()
        self._sent = 0

    def sent(self, n: int) -> bool:
        """Account ``n`` bytes written; wait until the rate allows more. False: stopping."""
        self._sent += n
        left = self._start + self._sent / self.bandwidth - time.monotonic()
        return not (left > 0 and self._stopping.wait(left))


class Shaper:
    """The running state of a :class:`Shaping`: the token bucket and the latency RNG.

    Thread-safe; one per proxy (replaced by ``FaultProxy.set_shaping``).

    Parameters
    ----------
    shaping : Shaping
    stopping : threading.Event
        The proxy's stop event: waits end when it is set.
    """

    def __init__(self, shaping: Shaping, stopping: threading.Event):
        if not isinstance(shaping, Shaping):
            raise FaultConfigTypeError(
                f"shaping={shaping!r} is a {type(shaping).__name__}; expected a Shaping"
            )
        self.shaping = shaping
        self._stopping = stopping
        self._lock = threading.Lock()
        self._rng = random.Random(shaping.seed)
        self._tokens = shaping.bucket_size or 0.0
        self._refilled = time.monotonic()
        self._throttled = 0

    def admit(self, arrival: float) -> tuple[bool, float]:
        """``(admitted, first_byte_at)`` for a request that arrived at ``arrival``.

        Not admitted: the bucket is empty (answer ``503 SlowDown``). ``first_byte_at`` is
        the ``time.monotonic()`` before which its response must not start.
        """
        s = self.shaping
        with self._lock:
            delay = s.latency
            if s.latency_sigma and s.latency:
                delay = min(
                    s.latency_max, self._rng.lognormvariate(math.log(s.latency), s.latency_sigma)
                )
            admitted = True
            if s.rate is not None:
                now = time.monotonic()
                size = s.bucket_size or 1.0
                self._tokens = min(size, self._tokens + (now - self._refilled) * s.rate)
                self._refilled = now
                if self._tokens >= 1:
                    self._tokens -= 1
                elif s.max_throttled is None or self._throttled < s.max_throttled:
                    self._throttled += 1
                    admitted = False
        return admitted, arrival + delay

    def wait_until(self, when: float) -> bool:
        """Sleep until ``time.monotonic() >= when``; False if the proxy is stopping."""
        left = when - time.monotonic()
        return not (left > 0 and self._stopping.wait(left))

    def pacer(self) -> Pacer | None:
        """A :class:`Pacer` for one response body, or None when bandwidth is not capped."""
        bw = self.shaping.bandwidth
        return None if bw is None else Pacer(bw, self._stopping)

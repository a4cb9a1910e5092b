"""A fault-injecting HTTP proxy in front of an S3 endpoint, for reliability tests and benchmarks.

``FaultProxy`` listens on ``127.0.0.1`` (ephemeral port by default) and forwards every request
(any method, query string and headers, bodies streamed in both directions) to an upstream S3
server such as ``LocalS3``. Requests that match a :class:`FaultRule` are answered with a fault
instead: an S3 error status, a reset connection, a stall, a truncated or a trickling body. The
kinds, how rules match a request's path and how ``rate < 1`` stays reproducible are described
in :mod:`intake_helio.testing.fault_rules`; ``FaultRule`` and ``FAULT_KINDS`` are importable
from here too. Statistics per key use the same decoded ``/bucket/key`` path as matching. A
:class:`~intake_helio.testing.shaping.Shaping` (``shaping=``, :meth:`FaultProxy.set_shaping`)
makes every answer cloud-shaped: first-byte latency, a bandwidth cap per connection and a
request rate above which S3's ``503 SlowDown`` is answered (see
:mod:`intake_helio.testing.shaping`).

Bounds
------
The proxy serves at most ``max_requests`` requests and for at most ``max_seconds``; then it
closes its listening socket, refuses further requests on open connections (they are closed
without a response) and logs one warning. Requests in flight are completed.

Examples
--------
>>> from intake_helio.testing.local_s3 import LocalS3
>>> rule = FaultRule("status", status=503, code="SlowDown", match="a.fits", times=2)
>>> with LocalS3() as s3, FaultProxy(s3.endpoint_url, [rule]) as proxy:  # doctest: +SKIP
...     fs = s3fs.S3FileSystem(**{**s3.storage_options, "endpoint_url": proxy.endpoint_url})
...     fs.cat("bucket/a.fits")        # two 503s, retried by s3fs itself
...     proxy.stats["faults"]
2
"""

from __future__ import annotations

import copy
import http.client
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import FaultConfigError, FaultConfigTypeError
from .fault_rules import FAULT_KINDS, FaultRule, choose_rule, s3_error_body
from .proxy_base import CHUNK, HOP_BY_HOP, ClientGone, ProxyHandler, ProxyServer
from .shaping import Shaper, Shaping
from .splice import splicer

__all__ = ["FAULT_KINDS", "FaultProxy", "FaultRule", "Shaping"]

logger = logging.getLogger(__name__)

_UPSTREAM_TIMEOUT = 300.0  # seconds, per socket operation towards the upstream
_FAULT_LOG_LIMIT = 100_000
#: How a throttled request is answered (counted as ``"throttled"``, not as a fault).
_THROTTLED = FaultRule("status", status=503, code="SlowDown")


class _Handler(ProxyHandler):
    """Answers one request: forwarded, a fault, or throttled; shaped if asked."""

    def _handle(self) -> None:
        proxy = self.server.proxy
        arrival = time.monotonic()
        split = urlsplit(self.path)
        path = unquote(split.path or "/")
        # Signed requests carry an Authorization header or, when presigned, a signature
        # query parameter (SigV4 X-Amz-Signature; SigV2 Signature, as s3fs.url() makes);
        # anonymous (unsigned) ones carry neither
        query = parse_qs(split.query)
        signed = bool(self.headers.get("Authorization")) or bool(
            {"X-Amz-Signature", "Signature"} & query.keys()
        )
        rule, self._first_byte_at = proxy._admit(self.command, path, signed, arrival)
        if rule is None:  # bound reached: stop serving
            self._abort()
            return
        if rule is False:
            self._forward()
        elif rule.kind == "status":
            self._read_body(lambda _data: None)
            self._send_error(rule.status, rule.code, path)
        elif rule.kind == "reset":
            self._abort()
        elif rule.kind == "stall":
            deadline = time.monotonic() + rule.delay
            while (left := deadline - time.monotonic()) > 0:
                if proxy._stopping.wait(min(left, 0.05)) or self._client_gone():
                    logger.debug("fault proxy: stalled client of %s went away", path)
                    self._abort()
                    return
            self._forward()
        elif rule.kind == "trickle":
            self._forward(trickle=rule.delay)
        else:  # truncate
            self._forward(fraction=rule.fraction)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def _wait_first_byte(self) -> None:
        """Hold the response until the shaping's first-byte latency has passed."""
        shaper = self.server.proxy._shaper
        if shaper is not None and not shaper.wait_until(self._first_byte_at):
            raise ClientGone("the proxy is stopping")

    def _send_error(self, status: int, code: str, path: str) -> None:
        request_id = uuid.uuid4().hex[:16].upper()
        body = s3_error_body(code, path, request_id)
        self._wait_first_byte()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Date", self.date_time_string())
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _forward(self, fraction: float | None = None, trickle: float | None = None) -> None:
        proxy = self.server.proxy
        https = proxy._scheme == "https"
        cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
        conn = cls(proxy._up_host, proxy._up_port, timeout=_UPSTREAM_TIMEOUT)
        try:
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            conn.close()
            logger.warning("fault proxy: upstream %s unreachable: %r", proxy.upstream, exc)
            self._read_body(lambda _data: None)
            self._send_error(502, "BadGateway", self.path)
            return
        try:
            self._forward_with(conn, fraction, trickle)
        finally:
            conn.close()

    def _forward_with(
        self, conn: http.client.HTTPConnection, fraction: float | None, trickle: float | None
    ) -> None:
        proxy = self.server.proxy
        target = proxy._up_prefix + self.path
        chunked_in = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        body: bytearray | None = None
        if chunked_in:  # rare: buffer, then send with a Content-Length
            body = bytearray()
            self._read_body(body.extend)
        upstream: socket.socket | None = None
        try:
            conn.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                lname = name.lower()
                if lname in HOP_BY_HOP or (body is not None and lname == "content-length"):
                    continue
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Connection", "close")
            conn.endheaders()
            if body is not None:
                conn.send(bytes(body))
            else:
                self._read_body(conn.send)
            # the socket, for zero-copy relaying: getresponse() drops the connection's
            # reference to it when the upstream answers "Connection: close"
            upstream = conn.sock if type(conn.sock) is socket.socket else None
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            logger.warning("fault proxy: upstream %s failed: %r", proxy.upstream, exc)
            self.close_connection = True  # the request body may be partly unread
            self._send_error(502, "BadGateway", self.path)
            return
        proxy._count("forwarded")

        status = resp.status
        no_body = self.command == "HEAD" or status in (204, 304) or status < 200
        headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        length_header = resp.getheader("Content-Length")
        length = int(length_header) if length_header is not None else None

        if trickle is not None and not no_body:
            self._send_head(status, resp.reason, headers, close=True)
            self._trickle(resp, trickle)
            return
        if fraction is not None and not no_body:
            if length is None:  # unknown length: buffer to learn it
                data = resp.read()
                length = len(data)
                headers.append(("Content-Length", str(length)))
            else:
                data = b""
            self._send_head(status, resp.reason, headers, close=True)
            limit = int(length * fraction)
            try:
                if data:
                    self.wfile.write(memoryview(data)[:limit])
                else:
                    self._copy(resp, limit, upstream=upstream)
            except OSError:
                pass
            # Clean close (FIN): the client sees a short body, not a reset.
            return

        chunked_out = not no_body and length is None
        if chunked_out:
            headers.append(("Transfer-Encoding", "chunked"))
        self._send_head(status, resp.reason, headers, close=fraction is not None)
        if no_body:
            return
        if chunked_out:
            self._copy(resp, None, chunked=True)
        else:
            self._copy(resp, length, upstream=upstream)

    def _trickle(self, resp: http.client.HTTPResponse, delay: float) -> None:
        """Send the body one byte every ``delay`` seconds until it ends or the client goes."""
        proxy = self.server.proxy
        try:
            while byte := resp.read(1):
                self.wfile.write(byte)
                self.wfile.flush()
                proxy._count("body_bytes", 1)
                if proxy._stopping.wait(delay) or self._client_gone():
                    return
        except OSError:
            return  # the client hung up

    def _copy(
        self,
        resp: http.client.HTTPResponse,
        limit: int | None,
        chunked: bool = False,
        upstream: socket.socket | None = None,
    ):
        """Stream up to ``limit`` bytes (all if None) of ``resp`` to the client (paced if
        the shaping caps bandwidth). With the ``upstream`` socket and a known ``limit``, the
        bytes go from socket to socket inside the kernel (:mod:`.splice`)."""
        shaper = self.server.proxy._shaper
        pacer = None if shaper is None else shaper.pacer()
        size = CHUNK if pacer is None else pacer.chunk
        mover = splicer(_UPSTREAM_TIMEOUT) if upstream is not None and limit else None
        if mover is not None:
            with mover:
                remaining = self._splice(resp, upstream, mover, limit, size, pacer)
        else:
            remaining = self._stream(resp, limit, chunked, size, pacer)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        elif remaining:  # the upstream ended early: do not reuse this client connection
            self.close_connection = True

    def _stream(self, resp, limit: int | None, chunked: bool, size: int, pacer) -> int | None:
        """Copy the body through this process; return the bytes of ``limit`` not sent."""
        view = memoryview(bytearray(size))
        remaining = limit
        while remaining is None or remaining > 0:
            n = resp.readinto(view if remaining is None else view[: min(remaining, size)])
            if not n:
                break
            if remaining is not None:
                remaining -= n
            # counted before it is written: a client that has the bytes sees them counted
            self.server.proxy._count("body_bytes", n)
            if chunked:
                self.wfile.write(b"%x\r\n" % n)
                self.wfile.write(view[:n])
                self.wfile.write(b"\r\n")
            else:
                self.wfile.write(view[:n])
            if pacer is not None and not pacer.sent(n):
                raise ClientGone("the proxy is stopping")
        return remaining

    def _splice(self, resp, upstream: socket.socket, mover, limit: int, size: int, pacer) -> int:
        """``_stream`` of a known length, socket to socket: what ``resp`` has buffered
        first, then the rest of the body through the kernel pipe."""
        remaining = limit

        def count(n: int) -> None:  # called before the client can have the bytes
            self.server.proxy._count("body_bytes", n)

        buffered = resp.fp.peek(1)[:remaining]
        if buffered:
            data = resp.fp.read(len(buffered))  # from the buffer: no read of the socket
            self.server.proxy._count("body_bytes", len(data))  # before the client has it
            self.wfile.write(data)
            remaining -= len(data)
        while remaining > 0:
            step, moved = min(remaining, size), 0
            while moved < step:
                n = mover.move(upstream, self.connection, step - moved, arrived=count)
                if not n:
                    return remaining
                moved += n
                remaining -= n
            if pacer is not None and not pacer.sent(moved):
                raise ClientGone("the proxy is stopping")
        return remaining

    def _send_head(self, status: int, reason: str, headers, close: bool) -> None:
        self._wait_first_byte()
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()


class FaultProxy:
    """A bounded, fault-injecting HTTP proxy for an S3 endpoint, on ``127.0.0.1``.

    Parameters
    ----------
    upstream : str
        Base URL of the real endpoint, e.g. ``LocalS3().start().endpoint_url``.
    rules : sequence of FaultRule
        Faults to inject, tried in order; empty: pure pass-through.
    seed : int
        Seed of the RNG that decides ``rate < 1`` rules.
    port : int
        Port to bind on 127.0.0.1; 0 (default) lets the OS choose.
    max_requests : int
        Stop serving after this many requests.
    max_seconds : float
        Stop serving this many seconds after :meth:`start`.
    shaping : Shaping, optional
        Latency, bandwidth per connection and request rate of the answers (None: as fast
        as the upstream).

    Attributes
    ----------
    endpoint_url : str
        ``http://127.0.0.1:PORT`` once started; give it to s3fs as ``endpoint_url``.
    stats : dict
        Snapshot of the counters (see :attr:`stats`).

    Examples
    --------
    >>> rule = FaultRule("status", status=503, code="SlowDown", match="a.fits", times=2)
    >>> with FaultProxy("http://127.0.0.1:5000", [rule]) as proxy:     # doctest: +SKIP
    ...     fs = s3fs.S3FileSystem(endpoint_url=proxy.endpoint_url, key="k", secret="s")
    """

    def __init__(
        self,
        upstream: str,
        rules: Sequence[FaultRule] = (),
        seed: int = 0,
        port: int = 0,
        max_requests: int = 100_000,
        max_seconds: float = 600,
        shaping: Shaping | None = None,
    ):
        split = urlsplit(upstream)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise FaultConfigError(
                f"FaultProxy upstream {upstream!r} is not an http(s) URL; "
                "expected e.g. 'http://127.0.0.1:5000' (LocalS3().endpoint_url)"
            )
        if max_requests < 1 or max_seconds <= 0:
            raise FaultConfigError(
                f"FaultProxy bounds max_requests={max_requests!r}, max_seconds={max_seconds!r} "
                "are invalid; expected max_requests >= 1 and max_seconds > 0"
            )
        self.upstream = upstream
        self._scheme = split.scheme
        self._up_host = split.hostname
        self._up_port = split.port or (443 if split.scheme == "https" else 80)
        self._up_prefix = split.path.rstrip("/")
        self.seed = seed
        self.port = port
        self.max_requests = int(max_requests)
        self.max_seconds = float(max_seconds)
        self.endpoint_url: str | None = None
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._fired: list[int] = []
        self._stats: dict[str, Any] = {}
        self._fault_log: list[dict[str, Any]] = []
        self._conns: set[socket.socket] = set()
        self._server: ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._stopping = threading.Event()
        self._halted = False
        self._shaper: Shaper | None = None
        self.set_rules(rules)
        self.set_shaping(shaping)
        self.reset_stats()

    # ------------------------------------------------------------------ public API
    def start(self) -> FaultProxy:
        """Bind ``127.0.0.1`` and serve in a background thread; return ``self``."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._halted = False
        self._server = ProxyServer(("127.0.0.1", self.port), _Handler, self)
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"intake-helio-fault-proxy-{port}",
            daemon=True,
        )
        self._thread.start()
        self._timer = threading.Timer(
            self.max_seconds, self._halt, args=(f"max_seconds={self.max_seconds:g} elapsed",)
        )
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        self._stopping.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._close_listener()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def serving(self) -> bool:
        """Whether the proxy still accepts requests."""
        return self._server is not None and not self._halted and not self._stopping.is_set()

    @property
    def rules(self) -> list[FaultRule]:
        """The current rules (a copy)."""
        with self._lock:
            return list(self._rules)

    def set_rules(self, rules: Sequence[FaultRule]) -> None:
        """Replace the rules while running; each rule's ``times`` budget starts afresh."""
        rules = list(rules)
        for rule in rules:
            if not isinstance(rule, FaultRule):
                raise FaultConfigTypeError(
                    f"FaultProxy rule {rule!r} is a {type(rule).__name__}; expected a FaultRule"
                )
        with self._lock:
            self._rules = rules
            self._fired = [0] * len(rules)

    @property
    def shaping(self) -> Shaping | None:
        """The current :class:`~intake_helio.testing.shaping.Shaping` (None: none)."""
        shaper = self._shaper
        return None if shaper is None else shaper.shaping

    def set_shaping(self, shaping: Shaping | None) -> None:
        """Shape the answers from now on (a fresh token bucket and latency RNG); None: stop."""
        self._shaper = None if shaping is None else Shaper(shaping, self._stopping)

    def reset_stats(self) -> None:
        """Zero every counter and clear the fault log (the RNG is not reseeded)."""
        with self._lock:
            self._stats = {"requests": 0, "forwarded": 0, "faults": 0, "refused": 0}
            self._stats.update(unsigned=0, throttled=0, body_bytes=0)
            self._stats.update(dict.fromkeys(FAULT_KINDS, 0))
            self._stats["by_key"] = {}
            self._fault_log = []

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters.

        Keys: ``"requests"`` (admitted), ``"forwarded"`` (sent to the upstream and answered,
        including stalled, truncated and trickled ones), ``"faults"`` (total injected), one
        count per kind (``"status"``, ``"reset"``, ``"stall"``, ``"truncate"``,
        ``"trickle"``), ``"refused"`` (requests dropped after the bound), ``"unsigned"``
        (admitted requests with neither an ``Authorization`` header nor a presigned
        ``X-Amz-Signature``/``Signature``, i.e. anonymous ones; also per key when > 0),
        ``"throttled"`` (answered ``503 SlowDown`` by the shaping's rate limit; also per key
        when > 0), ``"body_bytes"`` (response body bytes forwarded to clients), and
        ``"by_key"``: ``{path: {"requests": n, "faults": n, kind: n, ...}}`` where ``path``
        is the decoded ``/bucket/key``.
        """
        with self._lock:
            return copy.deepcopy(self._stats)

    @property
    def fault_log(self) -> list[dict[str, Any]]:
        """Injected faults in order: ``{"request": n, "method", "path", "kind", "status"}``."""
        with self._lock:
            return [dict(e) for e in self._fault_log]

    def __repr__(self) -> str:
        state = "serving" if self.serving else "stopped"
        return (
            f"FaultProxy({self.endpoint_url or 'not started'} -> {self.upstream}, "
            f"{len(self._rules)} rules, seed={self.seed}, {state})"
        )

    # ------------------------------------------------------------------ internals
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._stats[name] += n

    def _admit(
        self, method: str, path: str, signed: bool = True, arrival: float = 0.0
    ) -> tuple[FaultRule | bool | None, float]:
        """Count a request that arrived at ``arrival`` (``time.monotonic()``).

        Returns the rule that fires (``False`` to pass, ``None`` to refuse) and the time its
        response may start (the shaping's first-byte latency after ``arrival``).
        """
        halt = False
        shaper = self._shaper
        admitted, first_byte_at = (True, arrival) if shaper is None else shaper.admit(arrival)
        with self._lock:
            if self._halted or self._stopping.is_set():
                self._stats["refused"] += 1
                return None, arrival
            self._stats["requests"] += 1
            n = self._stats["requests"]
            if n >= self.max_requests:
                halt = True
            per_key = self._stats["by_key"].setdefault(path, {"requests": 0, "faults": 0})
            per_key["requests"] += 1
            if not signed:
                self._stats["unsigned"] += 1
                per_key["unsigned"] = per_key.get("unsigned", 0) + 1
            if not admitted:
                self._stats["throttled"] += 1
                per_key["throttled"] = per_key.get("throttled", 0) + 1
                chosen = None
            else:
                chosen = choose_rule(self._rules, self._fired, self._rng, method, path)
            if chosen is not None:
                self._stats["faults"] += 1
                self._stats[chosen.kind] += 1
                per_key["faults"] += 1
                per_key[chosen.kind] = per_key.get(chosen.kind, 0) + 1
                if len(self._fault_log) < _FAULT_LOG_LIMIT:
                    self._fault_log.append(
                        {
                            "request": n,
                            "method": method,
                            "path": path,
                            "kind": chosen.kind,
                            "status": chosen.status if chosen.kind == "status" else None,
                        }
                    )
        if halt:
            self._halt(f"max_requests={self.max_requests} reached")
        if not admitted:
            return _THROTTLED, first_byte_at
        return (False if chosen is None else chosen), first_byte_at

    def _halt(self, reason: str) -> None:
        with self._lock:
            if self._halted or self._stopping.is_set():
                return
            self._halted = True
        logger.warning("fault proxy %s stopped serving: %s", self.endpoint_url, reason)
        # shutdown() waits for serve_forever to return: do it off the calling thread.
        threading.Thread(target=self._close_listener, daemon=True).start()

    def _close_listener(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

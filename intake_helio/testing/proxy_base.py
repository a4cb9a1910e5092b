"""The HTTP plumbing under :class:`~intake_helio.testing.fault_proxy.FaultProxy`.

:class:`ProxyServer` is a threading HTTP server bound to ``127.0.0.1`` (no reverse DNS
look-up, errors logged at DEBUG) that serves one proxy object; :class:`ProxyHandler` is the
base of its request handler: it tracks open connections with the proxy, logs request lines
without presigned credentials, reads request bodies (``Content-Length`` or chunked) in
bounded chunks, notices a client that went away and aborts a connection with a TCP RST.
What the proxy does with a request (forward it, inject a fault, shape the answer) lives in
:mod:`intake_helio.testing.fault_proxy`.
"""

from __future__ import annotations

import logging
import re
import select
import socket
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..base.errors import HelioError

__all__ = ["CHUNK", "HOP_BY_HOP", "ClientGone", "ProxyHandler", "ProxyServer"]

logger = logging.getLogger("intake_helio.testing.fault_proxy")

CHUNK = 1 << 20
"""Bytes copied per read/write when streaming bodies."""
_CLIENT_TIMEOUT = 300.0  # seconds, per socket operation towards the client (idle keep-alive)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
"""Headers that are not forwarded (they describe one connection, not the message)."""
_PRESIGNED = re.compile(
    r"(?i)\b(X-Amz-(?:Credential|Security-Token|Signature)|AWSAccessKeyId|Signature)=[^&\s]*"
)


class ClientGone(HelioError, ConnectionError):
    """The client closed its connection in the middle of a request (or the proxy stops)."""


class ProxyServer(ThreadingHTTPServer):
    """A threading HTTP server for ``proxy`` (which must have ``_track(conn, add)``)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address, handler, proxy: Any):
        self.proxy = proxy
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS look-up; not needed.
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        logger.debug("fault proxy: error serving %s", client_address, exc_info=True)


class ProxyHandler(BaseHTTPRequestHandler):
    """Request handler base: connection tracking, safe logging, request bodies, aborts."""

    protocol_version = "HTTP/1.1"
    timeout = _CLIENT_TIMEOUT
    disable_nagle_algorithm = True  # headers and body are separate writes
    server: ProxyServer

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.proxy._track(self.connection, add=False)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        # the request line of a presigned URL carries the access key id and session token
        args = tuple(_PRESIGNED.sub(r"\1=***", a) if isinstance(a, str) else a for a in args)
        logger.debug("fault proxy: " + format, *args)

    def _abort(self) -> None:
        """Close the client connection with a TCP RST, sending nothing more."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()  # holds a reference to the socket: release it first
            self.connection.close()
        except OSError:
            pass

    def _read_body(self, sink) -> int:
        """Stream the request body to ``sink(bytes)``; return its length."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return total
                self._read_exact(size, sink)
                total += size
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        self._read_exact(length, sink)
        return length

    def _read_exact(self, size: int, sink) -> None:
        """Pass exactly ``size`` bytes of the request body to ``sink``, in chunks."""
        remaining = size
        while remaining:
            data = self.rfile.read(min(remaining, CHUNK))
            if not data:
                raise ClientGone("client closed the connection mid-body")
            sink(data)
            remaining -= len(data)

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (OSError, ValueError):
            return True

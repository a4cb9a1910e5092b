"""Small HTTP servers on 127.0.0.1 for tests of hostile or slow catalog hosts.

:class:`LocalHTTP` serves in-memory files (``GET``/``HEAD``, 404 for the rest) from a
``http.server.ThreadingHTTPServer`` on an ephemeral port in a daemon thread, and records
every request's method, path and headers (to check which host received which credentials).
A file may be a body streamed without end (:class:`Endless`), one whose ``Content-Length``
lies (:class:`Declared`) or a redirect elsewhere (:class:`Redirect`).
:class:`SilentServer` accepts TCP connections and never answers.
Both always bind 127.0.0.1 and are stopped on ``stop()`` or on leaving the ``with`` block.

Examples
--------
>>> with LocalHTTP({"/catalog.json": b"{}"}) as web:      # doctest: +SKIP
...     url = web.url + "/catalog.json"
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Declared",
    "Endless",
    "LocalHTTP",
    "Redirect",
    "Request",
    "SilentServer",
    "loopback_name",
]


@dataclass(frozen=True)
class Endless:
    """A body sent without end (no ``Content-Length``) until the client hangs up."""

    chunk: bytes = b" " * 65536


@dataclass(frozen=True)
class Declared:
    """A body with a ``Content-Length`` of ``length`` but only ``data`` sent (then the
    connection is closed)."""

    length: int
    data: bytes = b""


@dataclass(frozen=True)
class Redirect:
    """A redirect answer: ``status`` with ``Location: location`` and no body."""

    location: str
    status: int = 302


_Content = bytes | str | Endless | Declared | Redirect


@dataclass(frozen=True)
class Request:
    """One request received: method, path and headers (names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "intake-helio-test"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _serve(self, body: bool) -> None:
        owner: LocalHTTP = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        owner._record(Request(self.command, path, {k.lower(): v for k, v in self.headers.items()}))
        content = owner.files.get(path)
        if content is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if isinstance(content, Redirect):
            self.send_response(content.status)
            self.send_header("Location", content.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if isinstance(content, Endless):
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if not body:
                return
            try:
                while not owner._stopping.is_set():
                    self.wfile.write(content.chunk)
            except OSError:  # the client hung up
                return
            return
        if isinstance(content, Declared):
            self.send_response(200)
            self.send_header("Content-Length", str(content.length))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if body:
                try:
                    self.wfile.write(content.data)
                except OSError:
                    pass
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if body:
            self.wfile.write(content)

    def do_GET(self) -> None:
        self._serve(True)

    def do_HEAD(self) -> None:
        self._serve(False)


class LocalHTTP:
    """An HTTP server of in-memory files on ``127.0.0.1`` (ephemeral port).

    Parameters
    ----------
    files : dict, optional
        Path (``"/catalog.json"``) -> ``bytes``, ``str``, :class:`Endless` or
        :class:`Declared`.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT`` once started.
    requests : list of Request
        Every request received, in order.
    """

    def __init__(self, files: Mapping[str, _Content] | None = None):
        self.files: dict[str, bytes | Endless | Declared] = {}
        for path, content in (files or {}).items():
            self.put(path, content)
        self.requests: list[Request] = []
        self.url: str | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def put(self, path: str, content: _Content) -> None:
        """Serve ``content`` at ``path`` (a leading ``/`` is added)."""
        path = path if path.startswith("/") else "/" + path
        self.files[path] = content.encode() if isinstance(content, str) else content

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> LocalHTTP:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._server is None:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            server.owner = self  # type: ignore[attr-defined]
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, daemon=True)
            self._thread.start()
            self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); endless bodies stop too."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> LocalHTTP:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SilentServer:
    """Accepts TCP connections on ``127.0.0.1`` and never answers (nor reads).

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT`` once started.
    accepted : int
        Connections accepted so far.
    """

    def __init__(self) -> None:
        self.url: str | None = None
        self.accepted = 0
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> SilentServer:
        """Listen on a free port and accept in a daemon thread."""
        if self._sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            sock.settimeout(0.1)
            self._sock = sock
            self._thread = threading.Thread(target=self._accept, daemon=True)
            self._thread.start()
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()  # type: ignore[union-attr]
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.accepted += 1

    def stop(self) -> None:
        """Close the listening socket and every accepted connection (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def loopback_name() -> str | None:
    """This machine's host name when it resolves to loopback addresses only, else None.

    A name other than ``localhost`` that reaches 127.0.0.1: what a hostile DNS answer
    looks like to the transport's connect-time check.
    """
    name = socket.gethostname()
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, None)}
    except OSError:
        return None
    return name if addrs and all(a.startswith("127.") or a == "::1" for a in addrs) else None

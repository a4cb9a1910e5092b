"""A real S3 endpoint on 127.0.0.1: moto's server, for the demo, tests and benchmarks.

``LocalS3`` starts moto's HTTP server on an ephemeral loopback port, either in this
process (a thread) or as a child process (so that serving bytes does not compete for
this process's GIL, as in benchmarks). It always binds 127.0.0.1 and is stopped on
``stop()``, on leaving the ``with`` block, and at interpreter exit.

moto is imported only when a server starts; without it (``pip install "intake-helio[demo]"``
brings ``moto[server]``) :meth:`LocalS3.start` raises
:class:`~intake_helio.testing.extras.MissingExtraError`.

Run ``python -m intake_helio.testing.local_s3`` to serve one in the foreground.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

from .errors import LocalServerError
from .extras import missing_extra, require_extra

__all__ = ["LocalS3"]

_READY = "INTAKE_HELIO_S3_READY"
_CHILD = "import sys; from intake_helio.testing.local_s3 import main; main(sys.argv[1:])"
_WHO, _REQUIREMENT = "LocalS3", "moto[server]"


def _moto_server_class():
    """``moto.server.ThreadedMotoServer``, imported now; MissingExtraError without moto."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise missing_extra(_WHO, _REQUIREMENT, "moto.server") from exc
    return ThreadedMotoServer


class LocalS3:
    """A moto S3 server on ``127.0.0.1`` with an ephemeral port.

    Parameters
    ----------
    process : bool
        Run the server in a child process instead of a thread of this process.
    port : int
        Port to bind; 0 (default) lets the OS choose a free one.

    Examples
    --------
    >>> with LocalS3() as s3:                           # doctest: +SKIP
    ...     fs = s3.filesystem()
    ...     fs.mkdir("demo")
    """

    key = "intake-helio-local"
    secret = "intake-helio-local-secret"

    def __init__(self, process: bool = False, port: int = 0):
        self.process = process
        self.port = port
        self._server = None
        self._proc: subprocess.Popen | None = None
        self.endpoint_url: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalS3:
        """Start the server and wait until it answers.

        If starting fails or is interrupted (Ctrl-C), whatever was started is stopped.

        Raises
        ------
        MissingExtraError
            (an ``ImportError``) moto's server is not installed; nothing was started.
        LocalServerError
            (a ``RuntimeError``) The child process did not report its address within 60 s.
        """
        if self.endpoint_url:
            return self
        require_extra(_WHO, _REQUIREMENT, "moto", "flask")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def _start(self) -> None:
        if self.process:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, "--port", str(self.port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._proc.stdout is not None
            deadline = time.monotonic() + 60
            line = ""
            while time.monotonic() < deadline:
                line = self._proc.stdout.readline()
                if not line or line.startswith(_READY):
                    break
            if not line.startswith(_READY):
                raise LocalServerError("local S3 server (moto) did not start within 60 s")
            self.endpoint_url = line.split()[1]
        else:
            server_class = _moto_server_class()
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            self._server = server_class(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            host, port = self._server.get_host_and_port()
            self.endpoint_url = f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None
        self.endpoint_url = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers
    @property
    def storage_options(self) -> dict[str, Any]:
        """Options for s3fs (and intake-helio) that reach this server."""
        if not self.endpoint_url:
            raise LocalServerError("LocalS3 is not started; call start() first")
        return {"endpoint_url": self.endpoint_url, "key": self.key, "secret": self.secret}

    def filesystem(self, **kwargs):
        """A fresh (uncached) s3fs filesystem for this server."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options, **kwargs)

    def reset(self) -> None:
        """Delete every bucket and object (moto's reset API)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()


def _serve(port: int) -> None:
    server_class = _moto_server_class()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = server_class(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, real_port = server.get_host_and_port()
    print(f"{_READY} http://{host}:{real_port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Serve a local S3 endpoint in the foreground until Ctrl-C or SIGTERM."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="Serve a local S3 endpoint (moto) on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    _serve(args.port)


if __name__ == "__main__":
    main()

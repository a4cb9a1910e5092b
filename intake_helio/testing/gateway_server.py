"""A local dask-gateway server on 127.0.0.1, for trying the gateway path and for tests.

``LocalGateway`` writes a dask-gateway-server config file into a private temporary
directory and runs ``python -m dask_gateway_server -f CONFIG`` as a child process in
its own session. Clusters are local processes (``UnsafeLocalBackend``: no user
separation, testing only) started with this interpreter, and every socket the server,
its proxy, the schedulers and the workers open is bound to 127.0.0.1.

Authentication is a single shared password (``SimpleAuthenticator``, HTTP basic auth);
clients use ``LocalGateway.auth``. The password reaches the server through an
environment variable, never through its command line, config file or log.

Like Daskhub, the gateway offers the cluster options ``worker_cores``,
``worker_memory`` (GiB) and ``environment`` (variables for scheduler and workers,
merged over the ``environment`` given to ``LocalGateway``), and a ``profile``
(``"default"`` or ``"gpu"``, as Daskhub's profiles; here only a label that the
scheduler and workers see as the environment variable ``HELIO_PROFILE``).

dask-gateway-server runs only in the child process and is not imported here; without it
(``pip install "intake-helio[demo]"`` brings it) :meth:`LocalGateway.start` raises
:class:`~intake_helio.testing.extras.MissingExtraError` before starting anything.

Run ``python -m intake_helio.testing.gateway_server`` to serve one in the foreground.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import LocalServerError
from .extras import require_extra

__all__ = ["LocalGateway", "main"]

_PASSWORD_VAR = "INTAKE_HELIO_GATEWAY_PASSWORD"
_ENVIRONMENT_VAR = "INTAKE_HELIO_GATEWAY_ENVIRONMENT"
_START_TIMEOUT = 60.0

# The config file read by dask-gateway-server. Secrets (the password and the workers'
# environment, which may hold credentials) come from environment variables of the
# server process, so the file itself holds none.
_CONFIG_TEMPLATE = """\
# Written by intake_helio.testing.gateway_server.LocalGateway; holds no secrets.
import json
import os

from dask_gateway_server.options import Float, Integer, Mapping, Options, Select

c.DaskGateway.address = {api_address!r}
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.DaskGateway.log_level = "INFO"
c.SimpleAuthenticator.password = os.environ.pop({password_var!r})

c.Proxy.address = {proxy_address!r}
c.Proxy.tcp_address = {tcp_address!r}
c.Proxy.log_level = "warn"

c.UnsafeLocalBackend.clusters_directory = {clusters_dir!r}
c.UnsafeLocalBackend.sigint_timeout = 5
c.UnsafeLocalBackend.sigterm_timeout = 3
c.UnsafeLocalBackend.sigkill_timeout = 3
c.UnsafeLocalBackend.cluster_start_timeout = 60
c.UnsafeLocalBackend.worker_start_timeout = 60
c.UnsafeLocalBackend.stop_clusters_on_shutdown = True

_base_environment = json.loads(os.environ.pop({environment_var!r}, "{{}}"))

c.ClusterConfig.scheduler_cmd = [{python!r}, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [
    {python!r}, "-m", "distributed.cli.dask_worker", "--host", "127.0.0.1",
    "--death-timeout", "60",
]
c.ClusterConfig.environment = _base_environment
# Idle clusters are shut down after a few minutes so that nothing lingers.
c.ClusterConfig.idle_timeout = {idle_timeout!r}
c.ClusterConfig.adaptive_period = 1.0


_extra_fields = []
if {environment_option!r}:
    _extra_fields.append(Mapping("environment", {{}}, label="Environment variables"))


def _options_handler(options):
    environment = dict(_base_environment)
    extra = options.get("environment", {{}})
    environment.update({{str(k): str(v) for k, v in extra.items()}})
    environment["HELIO_PROFILE"] = options.profile
    return {{
        "worker_cores": options.worker_cores,
        "worker_threads": options.worker_cores,
        "worker_memory": int(options.worker_memory * 2**30),
        "environment": environment,
    }}


c.Backend.cluster_options = Options(
    Integer("worker_cores", 1, min=1, max=4, label="Worker cores"),
    Float("worker_memory", 1, min=0.5, max=8, label="Worker memory (GiB)"),
    Select("profile", ["default", "gpu"], default="default", label="Profile"),
    *_extra_fields,
    handler=_options_handler,
)
"""


def _free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalGateway:
    """A dask-gateway server with its proxy on 127.0.0.1, run as a child process.

    Parameters
    ----------
    port : int
        Port of the HTTP proxy (the gateway's public address); 0 picks a free one.
    scheduler_port : int
        Port of the TCP proxy that clients reach schedulers through; 0 picks a free one.
    password : str, optional
        Shared password for basic auth; a random one by default.
    environment : dict, optional
        Environment variables set for every scheduler and worker (workers inherit only
        ``PATH``, ``PYTHONPATH``, ``VIRTUAL_ENV`` and a few more from the server).
    workdir : str, optional
        Directory for the config file, the server log and the clusters' working
        directories; a private temporary directory (removed on ``stop()``) by default.
    environment_option : bool
        Offer the ``environment`` cluster option (default). ``False`` mimics a gateway
        that offers only ``worker_cores`` and ``worker_memory``.

    Attributes
    ----------
    address : str
        ``http://127.0.0.1:PORT``, the address to give ``dask_gateway.Gateway``.
    proxy_address : str
        ``tcp://127.0.0.1:PORT``, the scheduler proxy (``Gateway(proxy_address=...)``).
    password : str
        The shared password.
    auth : dask_gateway.BasicAuth
        Credentials for ``Gateway(auth=...)``.
    log_path : pathlib.Path
        The server's log file (it never contains the password).

    Examples
    --------
    >>> from dask_gateway import Gateway                    # doctest: +SKIP
    >>> with LocalGateway() as gw:                          # doctest: +SKIP
    ...     gateway = Gateway(gw.address, gw.proxy_address, auth=gw.auth)
    ...     cluster = gateway.new_cluster()
    """

    idle_timeout = 300.0

    def __init__(
        self,
        port: int = 0,
        scheduler_port: int = 0,
        password: str | None = None,
        environment: dict | None = None,
        workdir: str | None = None,
        *,
        environment_option: bool = True,
    ):
        self.port = int(port)
        self.scheduler_port = int(scheduler_port)
        self.password = password if password is not None else secrets.token_urlsafe(24)
        self.environment = {str(k): str(v) for k, v in (environment or {}).items()}
        self.environment_option = environment_option
        self._workdir_arg = workdir
        self.workdir: Path | None = None
        self.address: str | None = None
        self.proxy_address: str | None = None
        self.api_address: str | None = None
        self.log_path: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._own_workdir = False

    def __repr__(self) -> str:
        state = self.address if self.running else "stopped"
        return f"<LocalGateway {state}>"

    # ------------------------------------------------------------------ properties
    @property
    def auth(self):
        """A ``dask_gateway.BasicAuth`` with this gateway's password."""
        from dask_gateway import BasicAuth

        return BasicAuth(username=_username(), password=self.password)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the dask-gateway-server process, or None when stopped."""
        return self._proc.pid if self._proc is not None else None

    @contextlib.contextmanager
    def gateway(self) -> Iterator[Any]:
        """A ``dask_gateway.Gateway`` client for this server, closed on leaving the block."""
        from dask_gateway import Gateway

        from ..compute.clusters import _close_gateway

        self._require_running()
        client = Gateway(self.address, proxy_address=self.proxy_address, auth=self.auth)
        try:
            yield client
        finally:
            _close_gateway(client)

    def list_clusters(self, status: str | list[str] | None = None) -> list:
        """``Gateway.list_clusters(status)``: by default the pending and running clusters."""
        with self.gateway() as client:
            return client.list_clusters(status=status)

    def dask_config(self, include_password: bool = False) -> dict[str, Any]:
        """Dask config (dotted keys, for ``dask.config.set``) that reaches this server.

        ``gateway.address``, ``gateway.proxy-address`` and basic auth, as Daskhub sets
        them, so that ``cluster("gateway")`` and ``dask_gateway.Gateway()`` need no
        arguments; the password only if ``include_password`` (keep such a config private).
        """
        self._require_running()
        kwargs: dict[str, str] = {"username": _username()}
        if include_password:
            kwargs["password"] = self.password
        return {
            "gateway.address": self.address,
            "gateway.proxy-address": self.proxy_address,
            "gateway.auth.type": "basic",
            "gateway.auth.kwargs": kwargs,
        }

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalGateway:
        """Start the server and wait until ``/api/health`` answers 200 through the proxy.

        Raises
        ------
        MissingExtraError
            (an ``ImportError``) dask-gateway-server is not installed; nothing was started.
        LocalServerError
            (a ``RuntimeError``) If the server exits or does not become healthy within 60 s;
            the message ends with the tail of its log.
        """
        if self.running:
            return self
        require_extra("LocalGateway", "dask-gateway-server", "dask_gateway_server")
        if self._workdir_arg is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="intake-helio-gateway-"))
            self._own_workdir = True
        else:
            self.workdir = Path(self._workdir_arg)
            self.workdir.mkdir(parents=True, exist_ok=True)
        clusters_dir = self.workdir / "clusters"
        clusters_dir.mkdir(mode=0o700, exist_ok=True)

        port = self.port or _free_port()
        tcp_port = self.scheduler_port or _free_port()
        while tcp_port == port:
            tcp_port = _free_port()
        api_port = _free_port()
        while api_port in (port, tcp_port):
            api_port = _free_port()
        self.api_address = f"127.0.0.1:{api_port}"

        config_path = self.workdir / "dask_gateway_config.py"
        config_path.write_text(
            _CONFIG_TEMPLATE.format(
                api_address=self.api_address,
                proxy_address=f"127.0.0.1:{port}",
                tcp_address=f"127.0.0.1:{tcp_port}",
                clusters_dir=str(clusters_dir),
                python=sys.executable,
                password_var=_PASSWORD_VAR,
                environment_var=_ENVIRONMENT_VAR,
                idle_timeout=float(self.idle_timeout),
                environment_option=bool(self.environment_option),
            )
        )
        config_path.chmod(0o600)

        env = dict(os.environ)
        env[_PASSWORD_VAR] = self.password
        env[_ENVIRONMENT_VAR] = json.dumps(self.environment)
        self.log_path = self.workdir / "dask-gateway-server.log"
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "dask_gateway_server", "-f", str(config_path)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self.stop)
        self.address = f"http://127.0.0.1:{port}"
        self.proxy_address = f"tcp://127.0.0.1:{tcp_port}"
        try:
            self._wait_healthy(_START_TIMEOUT)
        except Exception as exc:
            tail = self.log_tail()
            self.stop()
            raise LocalServerError(
                f"dask-gateway-server did not become healthy at http://127.0.0.1:{port}"
                f"/api/health within {_START_TIMEOUT:.0f} s ({exc}); last lines of its "
                f"log:\n{tail}"
            ) from exc
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        url = f"{self.address}/api/health"
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise LocalServerError(f"dask-gateway-server exited with code {code}")
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LocalServerError(f"no 200 from {url} within {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server, its clusters and every process it started (idempotent).

        Sends SIGTERM to the server (which stops its clusters), waits up to
        ``timeout`` seconds, then SIGKILLs whatever is left of the process tree recorded
        before stopping (schedulers and workers run in sessions of their own, so the
        tree, not only the process group, is killed).
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            tree = _process_tree(proc.pid)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            tree += [p for p in _process_tree(proc.pid) if p not in tree]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            _kill_all(tree, grace=min(timeout, 10.0))
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._own_workdir = False
        self.address = self.proxy_address = self.api_address = None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server log ('' if there is none)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def __enter__(self) -> LocalGateway:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _require_running(self) -> None:
        if not self.running:
            raise LocalServerError("LocalGateway is not running; call start() first")


def _username() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "intake-helio"


def _process_tree(pid: int) -> list:
    """``psutil.Process`` objects for ``pid`` and all its descendants (alive now)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _kill_all(procs: list, grace: float) -> None:
    """SIGTERM every process still alive, wait ``grace`` seconds, then SIGKILL."""
    import psutil

    alive = [p for p in procs if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(alive, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Run a ``LocalGateway`` in the foreground until Ctrl-C or SIGTERM.

    Prints the address and a dask config directory (readable only by you) that makes
    ``intake_helio.compute.clusters.cluster("gateway")`` and ``dask_gateway.Gateway()`` connect to
    it, as on Daskhub.
    """
    parser = argparse.ArgumentParser(
        prog="python -m intake_helio.testing.gateway_server",
        description="Serve a local dask-gateway (127.0.0.1 only) in the foreground.",
    )
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    parser.add_argument(
        "--scheduler-port", type=int, default=0, help="TCP proxy port (default: a free one)"
    )
    args = parser.parse_args(argv)

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    gw = LocalGateway(port=args.port, scheduler_port=args.scheduler_port)
    try:
        gw.start()
        assert gw.workdir is not None
        config_dir = gw.workdir / "dask-config"
        config_dir.mkdir(mode=0o700, exist_ok=True)
        config_file = config_dir / "gateway.json"
        config_file.touch(mode=0o600)
        nested: dict[str, Any] = {}
        for key, value in gw.dask_config(include_password=True).items():
            *parents, last = key.split(".")
            node = nested
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        config_file.write_text(json.dumps(nested, indent=2))
        print(f"dask-gateway running at {gw.address} (scheduler proxy {gw.proxy_address})")
        print(f"server log: {gw.log_path}")
        print("To connect, in another shell:\n")
        print(f"export DASK_CONFIG={config_dir}")
        print("python - <<'EOF'")
        print("from intake_helio.compute.clusters import cluster")
        print('with cluster("gateway", workers=2) as client:')
        print("    print(client)")
        print("EOF\n")
        print("Press Ctrl-C to stop.", flush=True)
        while gw.running:
            time.sleep(0.5)
        print("dask-gateway-server exited; last lines of its log:", file=sys.stderr)
        print(gw.log_tail(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping...", flush=True)
        return 0
    finally:
        # A second Ctrl-C must not interrupt stopping the clusters.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            gw.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

"""Where the job runs: a local process cluster or a dask-gateway cluster (as on Daskhub).

``cluster(...)`` is a context manager that yields a ``distributed.Client`` and always
shuts its cluster down when the block ends: normally, on an exception, and on Ctrl-C
(a second Ctrl-C during shutdown is held back until the shutdown has finished).

>>> from intake_helio.compute.clusters import cluster                  # doctest: +SKIP
>>> with cluster("local", workers=2) as client:               # doctest: +SKIP
...     total = client.compute(frames.sum()).result()
>>> with cluster("gateway", workers=8, worker_memory=4) as client:   # doctest: +SKIP
...     ...

On Daskhub the gateway address and authentication come from the dask config
(``gateway.address``, ``gateway.proxy-address``, ``gateway.auth``), so
``cluster("gateway", ...)`` needs no address. Credentials never appear in log messages,
reprs or exceptions raised here; ``describe_cluster`` is the safe way to show a
cluster request.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import dask
import distributed
from dask.utils import parse_bytes

from ..base.errors import ArgumentError, ArgumentTypeError, ClusterError, ClusterTimeoutError
from .scheduling import active_client

__all__ = ["KINDS", "active_client", "cluster", "describe_cluster"]

logger = logging.getLogger(__name__)

KINDS = ("local", "gateway")
AUTH_NAMES = ("basic", "jupyterhub", "kerberos")
_GIB = 2**30


# --------------------------------------------------------------------------- public API
def describe_cluster(
    kind: str = "local",
    workers: int | None = None,
    worker_cores: int | None = None,
    worker_memory: str | float | None = None,
    adapt: tuple[int, int] | None = None,
    address: str | None = None,
    auth: Any = None,
    environment: Mapping[str, Any] | None = None,
    **_ignored: Any,
) -> str:
    """A one-line description of a cluster request that is safe to log.

    Takes the same arguments as :func:`cluster`. Shows the auth method by name only
    and the names, never the values, of environment variables.

    Examples
    --------
    >>> describe_cluster("gateway", workers=4, address="http://gw:8000",
    ...                  environment={"AWS_SECRET_ACCESS_KEY": "x"})
    "gateway cluster at http://gw:8000 (auth: dask config), workers=4, environment: ['AWS_SECRET_ACCESS_KEY']"
    """  # noqa: E501
    parts = [f"{kind} cluster"]
    if kind == "gateway":
        where = address or dask.config.get("gateway.address", None) or "<no address>"
        parts[0] += f" at {_strip_userinfo(str(where))} (auth: {_describe_auth(auth)})"
    if adapt is not None:
        parts.append(f"adapt={tuple(adapt)!r}")
    elif workers is not None:
        parts.append(f"workers={workers}")
    if worker_cores is not None:
        parts.append(f"worker_cores={worker_cores}")
    if worker_memory is not None:
        parts.append(f"worker_memory={worker_memory!r}")
    if environment:
        parts.append(f"environment: {sorted(str(k) for k in environment)}")
    return ", ".join(parts)


@contextlib.contextmanager
def cluster(
    kind: str = "local",
    workers: int | None = None,
    worker_cores: int | None = None,
    worker_memory: str | float | None = None,
    adapt: tuple[int, int] | None = None,
    address: str | None = None,
    auth: Any = None,
    environment: dict | None = None,
    timeout: float = 120,
    proxy_address: str | None = None,
) -> Iterator[distributed.Client]:
    """Start a dask cluster, yield a client for it, and always shut it down.

    Parameters
    ----------
    kind : {"local", "gateway"}
        ``"local"``: worker processes on this machine (``distributed.LocalCluster``,
        bound to 127.0.0.1, no dashboard). ``"gateway"``: a new cluster from a
        dask-gateway server, as on Daskhub.
    workers : int, optional
        Number of workers. Local default: CPU count // ``worker_cores``; gateway
        default: 2. Ignored when ``adapt`` is given.
    worker_cores : int, optional
        Threads (local) or cores (gateway option ``worker_cores``) per worker;
        local default 1, gateway default: the server's.
    worker_memory : str or float, optional
        Memory per worker: a number of GiB (``4`` or ``0.5``) or a string such as
        ``"4 GiB"``. Local default: system memory split between workers; gateway
        default: the server's.
    adapt : (int, int), optional
        ``(minimum, maximum)`` workers for adaptive scaling instead of a fixed count.
    address : str, optional
        Gateway address (``http(s)://host:port``). Default: dask config
        ``gateway.address``, which Daskhub sets. Gateway only.
    auth : dask_gateway.auth.GatewayAuth or str, optional
        Gateway auth object or one of ``"basic"``, ``"jupyterhub"``, ``"kerberos"``;
        default: dask config ``gateway.auth``. Gateway only.
    environment : dict, optional
        Environment variables for the workers (e.g. S3 endpoint and credentials). For
        a gateway this uses its ``environment`` cluster option when offered,
        otherwise a ``distributed.diagnostics.plugin.Environ`` nanny plugin.
    timeout : float
        Seconds to wait for the cluster to start and the first worker to join.
    proxy_address : str, optional
        Gateway scheduler proxy address; default: dask config
        ``gateway.proxy-address``, else the gateway address. Gateway only.

    Yields
    ------
    distributed.Client
        A client that is the default client inside the block.

    Raises
    ------
    ValueError
        For an unknown ``kind``, bad sizes, or a gateway with no address.
    PermissionError
        If the gateway refuses the credentials (HTTP 401/403).
    ConnectionError
        If the gateway cannot be reached or answers with another HTTP error.
    TimeoutError
        If the cluster does not start or no worker joins within ``timeout`` seconds.
    """
    if kind not in KINDS:
        raise ArgumentError(
            f"unknown cluster kind {kind!r}: expected one of {', '.join(map(repr, KINDS))}"
        )
    _check_count("workers", workers)
    _check_count("worker_cores", worker_cores, minimum=1)
    memory_bytes = _memory_bytes(worker_memory)
    adapt = _check_adapt(adapt)
    if environment is not None and not isinstance(environment, Mapping):
        raise ArgumentTypeError(
            f"environment must be a dict of variable names to values, "
            f"got {type(environment).__name__}"
        )
    env = {str(k): str(v) for k, v in (environment or {}).items()}
    timeout = float(timeout)
    if kind == "gateway":
        import dask_gateway  # noqa: F401  (registers the 'gateway.*' dask config defaults)

        auth = _check_auth(auth)
    description = describe_cluster(
        kind, workers, worker_cores, worker_memory, adapt, address, auth, env
    )

    stack = contextlib.ExitStack()
    try:
        started = time.monotonic()
        logger.info("starting %s", description)
        if kind == "local":
            client = _start_local(stack, workers, worker_cores, memory_bytes, adapt, env, timeout)
        else:
            client = _start_gateway(
                stack,
                workers,
                worker_cores,
                memory_bytes,
                adapt,
                address,
                proxy_address,
                auth,
                env,
                timeout,
            )
        logger.info(
            "%s ready in %.1f s: %d worker(s)",
            description,
            time.monotonic() - started,
            len(client.scheduler_info(n_workers=-1).get("workers", {})),
        )
        yield client
    finally:
        interrupted = _close_shielded(stack)
        logger.info("shut down %s", description)
    if interrupted:
        raise KeyboardInterrupt


# --------------------------------------------------------------------------- local
# Measured on 2 cores with full-size AIA frames (benchmarks/throughput.py): dask's
# MALLOC_TRIM_THRESHOLD_ in the workers freezes glibc's mmap threshold, so every 15 MB
# read page-faults anew (~20 % of a frame's CPU); the statistical profiler and a 20 ms
# tick cost idle CPU for a dashboard we don't serve. Together ~25-30 % more frames/s.
# Memory checks every second (not 10 times a second, in each worker and nanny) and
# system metrics every 2 s (they feed the dashboard) take idle CPU from 8 to 2 ms/s per
# worker and from 22 to 6 ms/s in the scheduler's process; pausing and restarting a worker
# that runs out of memory still work, a second later at most.
LOCAL_WORKER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def _start_local(
    stack: contextlib.ExitStack,
    workers: int | None,
    worker_cores: int | None,
    memory_bytes: int | None,
    adapt: tuple[int, int] | None,
    env: dict[str, str],
    timeout: float,
) -> distributed.Client:
    threads = worker_cores or 1
    if adapt is not None:
        n_workers = adapt[0]
    elif workers is not None:
        n_workers = workers
    else:
        n_workers = max(1, dask.system.CPU_COUNT // threads)
    kwargs: dict[str, Any] = {}
    if env:
        kwargs["env"] = env  # passed on to each worker's Nanny
    with dask.config.set(LOCAL_WORKER_CONFIG):
        local = distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads,
            memory_limit=memory_bytes if memory_bytes is not None else "auto",
            processes=True,
            host="127.0.0.1",
            # No dashboard; the scheduler's small HTTP server (health, metrics) gets a
            # random loopback port instead of 8787.
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            worker_dashboard_address=None,
            **kwargs,
        )
    stack.callback(local.close)
    if adapt is not None:
        local.adapt(minimum=adapt[0], maximum=adapt[1])
    client = distributed.Client(local, set_as_default=True)
    stack.callback(client.close)
    if n_workers:
        try:
            client.wait_for_workers(n_workers, timeout=timeout)
        except TimeoutError as exc:
            raise ClusterTimeoutError(
                f"the local cluster did not start {n_workers} worker(s) within {timeout:g} s; "
                "pass a larger timeout= or fewer workers="
            ) from exc
    return client


# --------------------------------------------------------------------------- gateway
def _start_gateway(
    stack: contextlib.ExitStack,
    workers: int | None,
    worker_cores: int | None,
    memory_bytes: int | None,
    adapt: tuple[int, int] | None,
    address: str | None,
    proxy_address: str | None,
    auth: Any,
    env: dict[str, str],
    timeout: float,
) -> distributed.Client:
    from dask_gateway import Gateway

    address = address or dask.config.get("gateway.address", None)
    if not address:
        raise ArgumentError(
            "no dask-gateway address: pass address='http(s)://host:port' or set the dask "
            "config 'gateway.address' (Daskhub sets it; or export DASK_GATEWAY__ADDRESS)"
        )
    shown = _strip_userinfo(str(address))
    gateway = Gateway(address, proxy_address=proxy_address, auth=auth)
    stack.callback(_close_gateway, gateway)
    import aiohttp

    try:
        return _start_gateway_cluster(
            stack, gateway, shown, workers, worker_cores, memory_bytes, adapt, env, timeout
        )
    except aiohttp.ClientError as exc:
        err = _gateway_error(exc, shown)
    # raised outside the handler: no __context__ keeps aiohttp's error, whose request
    # headers hold the Authorization credential
    raise err from None


def _start_gateway_cluster(
    stack: contextlib.ExitStack,
    gateway,
    shown: str,
    workers: int | None,
    worker_cores: int | None,
    memory_bytes: int | None,
    adapt: tuple[int, int] | None,
    env: dict[str, str],
    timeout: float,
) -> distributed.Client:
    options = gateway.cluster_options()
    offered = set(options)
    if worker_cores is not None:
        _set_option(options, offered, "worker_cores", int(worker_cores), shown)
    if memory_bytes is not None:
        _set_option(options, offered, "worker_memory", memory_bytes / _GIB, shown)
    use_plugin = False
    if env:
        if "environment" in offered:
            options.environment = {**dict(options.environment or {}), **env}
        else:
            use_plugin = True

    name = gateway.submit(options)
    stack.callback(_stop_gateway_cluster, gateway, name)
    _wait_running(gateway, name, shown, timeout)
    gw_cluster = gateway.connect(name, shutdown_on_close=True)
    stack.callback(_shutdown_gateway_cluster, gw_cluster)

    client = gw_cluster.get_client(set_as_default=True)
    stack.callback(client.close)
    if use_plugin:
        from distributed.diagnostics.plugin import Environ

        logger.info(
            "gateway at %s offers no 'environment' option; setting %s with a nanny plugin",
            shown,
            sorted(env),
        )
        client.register_plugin(Environ(env), name="intake-helio-environment")

    if adapt is not None:
        gw_cluster.adapt(minimum=adapt[0], maximum=adapt[1])
        wanted = adapt[0]
    else:
        wanted = 2 if workers is None else workers
        gw_cluster.scale(wanted)
    if wanted:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError as exc:
            raise ClusterTimeoutError(
                f"no dask worker joined cluster {name} of the gateway at {shown} within "
                f"{timeout:g} s; check the gateway's quotas and logs, or pass a larger "
                "timeout="
            ) from exc
    return client


def _gateway_error(exc: Exception, shown: str) -> Exception:
    """An error for a failed gateway request that carries no credentials.

    aiohttp's ``ClientResponseError`` keeps the request headers (the ``Authorization``
    header, i.e. the password or token) and shows them in its repr: it is neither
    chained nor kept as context.
    """
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        status, url = exc.status, _strip_userinfo(str(exc.request_info.real_url))
        if status in (401, 403):
            return PermissionError(
                f"the gateway at {shown} refused the credentials (HTTP {status} from {url}); "
                "check auth= or the dask config 'gateway.auth'"
            )
        return ConnectionError(
            f"the gateway at {shown} answered HTTP {status} for {url}; see the gateway's logs"
        )
    return ConnectionError(
        f"cannot reach the gateway at {shown} ({type(exc).__name__}); check address= or "
        "the dask config 'gateway.address'"
    )


def _set_option(options, offered: set[str], key: str, value: Any, shown: str) -> None:
    if key not in offered:
        logger.warning(
            "gateway at %s offers no %r cluster option (it offers %s); %s=%r not applied",
            shown,
            key,
            sorted(offered),
            key,
            value,
        )
        return
    try:
        options[key] = value
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"gateway at {shown} does not accept {key}={value!r}: {exc}") from exc


def _wait_running(gateway, name: str, shown: str, timeout: float) -> None:
    from dask_gateway.client import ClusterStatus

    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        report = gateway.get_cluster(name)
        if report.status == ClusterStatus.RUNNING:
            return
        if report.status in (ClusterStatus.FAILED, ClusterStatus.STOPPED):
            raise ClusterError(
                f"cluster {name} of the gateway at {shown} is {report.status.name.lower()}; "
                "see the gateway's logs"
            )
        if time.monotonic() > deadline:
            raise ClusterTimeoutError(
                f"cluster {name} of the gateway at {shown} did not start within {timeout:g} s "
                f"(status {report.status.name.lower()}); pass a larger timeout="
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def _stop_gateway_cluster(gateway, name: str) -> None:
    """Ask the gateway to stop cluster ``name`` (idempotent; errors are logged)."""
    from dask_gateway.client import ClusterStatus

    try:
        report = gateway.get_cluster(name)
        if report.status in (ClusterStatus.PENDING, ClusterStatus.RUNNING):
            gateway.stop_cluster(name)
    except Exception as exc:
        logger.warning("could not stop gateway cluster %s: %s", name, type(exc).__name__)


def _shutdown_gateway_cluster(gw_cluster) -> None:
    try:
        gw_cluster.shutdown()  # also closes the cluster's own Gateway object
    finally:
        _forget_closed_gateway(gw_cluster.gateway)


def _close_gateway(gateway) -> None:
    """Close a ``dask_gateway.Gateway`` so that garbage collection leaves it alone."""
    try:
        gateway.close()
    finally:
        _forget_closed_gateway(gateway)


def _forget_closed_gateway(gateway) -> None:
    # dask-gateway 2026.3's Gateway.__del__ calls close() again, which with
    # distributed >= 2023.6 raises "Accessing the loop property while the loop is not
    # running" (printed as "Exception ignored in Gateway.__del__"). __del__ does
    # nothing once the (stopped) loop runner is gone.
    with contextlib.suppress(AttributeError):
        del gateway._loop_runner


# --------------------------------------------------------------------------- helpers
def _close_shielded(stack: contextlib.ExitStack) -> bool:
    """Close ``stack``, holding back Ctrl-C meanwhile; return whether one arrived."""
    interrupted: list[int] = []
    shielded = False
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
            shielded = True
    try:
        stack.close()
    finally:
        if shielded:
            # None means "installed outside Python": the best we can restore is the default.
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if interrupted:
        logger.warning("Ctrl-C during cluster shutdown was held back until it finished")
    return bool(interrupted)


def _check_count(name: str, value: Any, minimum: int = 0) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_adapt(adapt: Any) -> tuple[int, int] | None:
    if adapt is None:
        return None
    try:
        minimum, maximum = adapt
    except (TypeError, ValueError):
        raise ArgumentError(f"adapt must be (minimum, maximum) workers, got {adapt!r}") from None
    for v in (minimum, maximum):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ArgumentError(f"adapt must be two integers >= 0, got {adapt!r}")
    if minimum > maximum:
        raise ArgumentError(f"adapt minimum must not exceed maximum, got {adapt!r}")
    return (minimum, maximum)


def _memory_bytes(worker_memory: str | float | None) -> int | None:
    """Bytes from a number of GiB or a string like ``"4 GiB"``."""
    if worker_memory is None:
        return None
    if isinstance(worker_memory, str):
        try:
            value = parse_bytes(worker_memory)
        except ValueError as exc:
            raise ArgumentError(
                f"worker_memory {worker_memory!r} is not a size; use e.g. '4 GiB' or 4 (GiB)"
            ) from exc
    elif isinstance(worker_memory, int | float) and not isinstance(worker_memory, bool):
        value = worker_memory * _GIB
    else:
        raise ArgumentError(
            f"worker_memory must be a number of GiB or a string like '4 GiB', got {worker_memory!r}"
        )
    if value <= 0:
        raise ArgumentError(f"worker_memory must be positive, got {worker_memory!r}")
    return int(value)


def _check_auth(auth: Any) -> Any:
    """Validate ``auth`` without ever putting it in a message."""
    if auth is None:
        return None
    if isinstance(auth, str):
        if auth in AUTH_NAMES or "." in auth:
            return auth
        raise ArgumentError(
            f"unknown gateway auth {auth!r}: expected one of "
            f"{', '.join(map(repr, AUTH_NAMES))}, a dotted import path, or a "
            "dask_gateway auth object"
        )
    from dask_gateway.auth import GatewayAuth

    if isinstance(auth, GatewayAuth):
        return auth
    raise ArgumentTypeError(
        f"auth must be a dask_gateway auth object or one of {AUTH_NAMES}, "
        f"got an object of type {type(auth).__name__}"
    )


def _describe_auth(auth: Any) -> str:
    if auth is None:
        configured = dask.config.get("gateway.auth.type", None)
        return f"{configured} from dask config" if isinstance(configured, str) else "dask config"
    if isinstance(auth, str):
        return auth if (auth in AUTH_NAMES or "." in auth) else "<unknown>"
    return type(auth).__name__


def _strip_userinfo(url: str) -> str:
    """Drop ``user:password@`` from a URL."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable address>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=host))

"""Where the job runs: a local process cluster or a dask-gateway cluster (as on Daskhub).

``cluster(...)`` is a context manager that yields a ``distributed.Client`` and always
shuts its cluster down when the block ends: normally, on an exception, and on Ctrl-C
(a second Ctrl-C during shutdown is held back until the shutdown has finished).

>>> from intake_helio.compute.clusters import cluster                  # doctest: +SKIP
>>> with cluster("local", workers=2) as client:               # doctest: +SKIP
...     total = client.compute(frames.sum()).result()
>>> with cluster("gateway", workers=8, worker_memory=4,              # doctest: +SKIP
...              cluster_options={"profile": "gpu"}) as client:
...     ...
>>> with cluster("local", dashboard=True) as client:          # doctest: +SKIP
...     print(client.dashboard_link)                    # http://127.0.0.1:PORT/status

On Daskhub the gateway address and authentication come from the dask config
(``gateway.address``, ``gateway.proxy-address``, ``gateway.auth``), so
``cluster("gateway", ...)`` needs no address. Credentials never appear in log messages,
reprs or exceptions raised here; ``describe_cluster`` is the safe way to show a
cluster request. The gateway half lives in :mod:`intake_helio.compute.gateway`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import dask
import distributed
from dask.utils import parse_bytes

from ..base.errors import ArgumentError, ArgumentTypeError, ClusterTimeoutError
from .gateway import (
    AUTH_NAMES,
    check_auth,
    check_cluster_options,
    close_gateway,
    describe_auth,
    forget_closed_gateway,
    start_gateway,
    strip_userinfo,
)
from .scheduling import active_client, scheduler_workers

__all__ = [
    "AUTH_NAMES",
    "KINDS",
    "LOCAL_WORKER_CONFIG",
    "active_client",
    "cluster",
    "describe_cluster",
]

logger = logging.getLogger(__name__)

KINDS = ("local", "gateway")
_GIB = 2**30
# Former private names, still imported by the testing servers and tests.
_close_gateway = close_gateway
_forget_closed_gateway = forget_closed_gateway


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
    cluster_options: Mapping[str, Any] | None = None,
    dashboard: bool = False,
    **_ignored: Any,
) -> str:
    """A one-line description of a cluster request that is safe to log.

    Takes the same arguments as :func:`cluster`. Shows the auth method by name only
    and the names, never the values, of environment variables and cluster options.

    Examples
    --------
    >>> describe_cluster("gateway", workers=4, address="http://gw:8000",
    ...                  environment={"AWS_SECRET_ACCESS_KEY": "x"})
    "gateway cluster at http://gw:8000 (auth: dask config), workers=4, environment: ['AWS_SECRET_ACCESS_KEY']"
    """  # noqa: E501
    parts = [f"{kind} cluster"]
    if kind == "gateway":
        where = address or dask.config.get("gateway.address", None) or "<no address>"
        parts[0] += f" at {strip_userinfo(str(where))} (auth: {describe_auth(auth)})"
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
    if isinstance(cluster_options, Mapping) and cluster_options:
        parts.append(f"cluster_options: {sorted(str(k) for k in cluster_options)}")
    if dashboard:
        parts.append("dashboard")
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
    cluster_options: Mapping[str, Any] | None = None,
    dashboard: bool = False,
) -> Iterator[distributed.Client]:
    """Start a dask cluster, yield a client for it, and always shut it down.

    Parameters
    ----------
    kind : {"local", "gateway"}
        ``"local"``: worker processes on this machine (``distributed.LocalCluster``,
        bound to 127.0.0.1, no dashboard unless ``dashboard=True``). ``"gateway"``: a
        new cluster from a dask-gateway server, as on Daskhub.
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
    cluster_options : dict, optional
        Values for any cluster option the gateway offers (``{"profile": "gpu"}``,
        ``{"image": ...}``; see ``dask_gateway.Gateway().cluster_options()``), set
        before the cluster is submitted. ``environment`` here is merged with
        ``environment=``; ``worker_cores``/``worker_memory`` may be given here or as
        arguments, not both. A name the gateway does not offer fails, listing the
        offered ones. Gateway only.
    dashboard : bool
        Serve the Dask dashboard and print its link (also ``client.dashboard_link``).
        Local: on 127.0.0.1 with an ephemeral port (the live plots need bokeh; without
        it the ``/info`` pages are served and the message says what to install).
        Gateway: the link the gateway proxies. Default: no dashboard (local) and no
        message.

    Yields
    ------
    distributed.Client
        A client that is the default client inside the block.

    Raises
    ------
    ValueError
        For an unknown ``kind``, bad sizes, a gateway with no address, a cluster option
        the gateway does not offer or a value it does not accept, or ``cluster_options``
        for a local cluster.
    TypeError
        ``environment``, ``cluster_options`` or ``auth`` of the wrong type.
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
    options = check_cluster_options(cluster_options, worker_cores, worker_memory)
    if options and kind != "gateway":
        raise ArgumentError(
            f"cluster_options {sorted(options)} apply to gateway clusters only; a "
            f"{kind} cluster takes workers=, worker_cores=, worker_memory= and environment="
        )
    if not isinstance(dashboard, bool):
        raise ArgumentTypeError(f"dashboard must be True or False, got {dashboard!r}")
    if kind == "gateway":
        import dask_gateway  # noqa: F401  (registers the 'gateway.*' dask config defaults)

        auth = check_auth(auth)
    description = describe_cluster(
        kind, workers, worker_cores, worker_memory, adapt, address, auth, env, options, dashboard
    )

    stack = contextlib.ExitStack()
    try:
        started = time.monotonic()
        logger.info("starting %s", description)
        if kind == "local":
            client = _start_local(
                stack, workers, worker_cores, memory_bytes, adapt, env, timeout, dashboard
            )
        else:
            client = start_gateway(
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
                options,
            )
        logger.info(
            "%s ready in %.1f s: %d worker(s)",
            description,
            time.monotonic() - started,
            len(scheduler_workers(client)),
        )
        if dashboard:
            _announce_dashboard(client, kind)
        yield client
    finally:
        # after Ctrl-C (or SIGTERM in the CLI) the shutdown's warnings from distributed
        # (workers lost, tasks cancelled, comms closed) say nothing the user does not know
        quiet = _quiet_loggers() if _interrupting() else contextlib.nullcontext()
        with quiet:
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
_MALLOC_VAR = "MALLOC_TRIM_THRESHOLD_"
_DASK_MALLOC_VALUE = "65536"  # what distributed's nannies set by default

#: What a dashboard needs back from :data:`LOCAL_WORKER_CONFIG`: the profiler and the
#: system metrics at dask's default rate.
_DASHBOARD_NEEDS = (
    "distributed.worker.profile.enabled",
    "distributed.admin.system-monitor.interval",
)


def _start_local(
    stack: contextlib.ExitStack,
    workers: int | None,
    worker_cores: int | None,
    memory_bytes: int | None,
    adapt: tuple[int, int] | None,
    env: dict[str, str],
    timeout: float,
    dashboard: bool = False,
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
    config = LOCAL_WORKER_CONFIG
    if dashboard:
        config = {k: v for k, v in config.items() if k not in _DASHBOARD_NEEDS}
    # distributed's nannies also set MALLOC_TRIM_THRESHOLD_ in the process that starts them
    # (and leave it there), so a LocalCluster started earlier in this process would pass it on
    # to our workers: keep it out of their environment while they start
    inherited = os.environ.pop(_MALLOC_VAR, None)
    if inherited is not None and inherited != _DASK_MALLOC_VALUE:
        os.environ[_MALLOC_VAR] = inherited  # the user's own setting: respected
        inherited = None
    # Ctrl-C while the workers start is held back until the cluster is up and on the stack
    # (a half-started LocalCluster left to atexit fails with tracebacks), and is blocked in
    # the cluster's loop thread, which the worker processes inherit from birth
    _start_resource_tracker()
    with _ctrl_c_held():
        with contextlib.ExitStack() as restore, dask.config.set(config):
            if inherited is not None:
                restore.callback(os.environ.__setitem__, _MALLOC_VAR, inherited)
            local = distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads,
                memory_limit=memory_bytes if memory_bytes is not None else "auto",
                processes=True,
                host="127.0.0.1",
                # The scheduler's HTTP server (health, metrics, and the dashboard if asked
                # for) gets a random loopback port instead of 8787.
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": dashboard},
                worker_dashboard_address=None,
                worker_class=LocalNanny,
                **kwargs,
            )  # the nannies start their workers before this returns
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


class LocalWorker(distributed.Worker):
    """A local cluster's worker: its process leaves Ctrl-C to the one that started it.

    The worker processes share the terminal's process group, so Ctrl-C reaches them too;
    left to Python each would die with two tracebacks while the client closes the cluster.
    Ignored here, they stop when the cluster closes them (or when its process dies).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        super().__init__(*args, **kwargs)

    async def close(self, *args: Any, **kwargs: Any) -> Any:
        # the tasks still running when the cluster closes are cancelled: expected, not a
        # warning per task on the terminal
        logging.getLogger("distributed.worker.state_machine").addFilter(_not_cancelled)
        return await super().close(*args, **kwargs)


def _not_cancelled(record: logging.LogRecord) -> bool:
    return not str(record.msg).endswith("ended with CancelledError")


class LocalNanny(distributed.Nanny):
    """A nanny (in this process) whose worker processes run :class:`LocalWorker`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("worker_class", LocalWorker)
        super().__init__(*args, **kwargs)


def _announce_dashboard(client: distributed.Client, kind: str) -> None:
    """Print (and log) the dashboard's link; say what is missing without bokeh."""
    link = client.dashboard_link
    if not link:
        logger.warning("the %s cluster reports no dashboard link", kind)
        return
    print(f"Dask dashboard: {link}", flush=True)
    logger.info("dask dashboard: %s", link)
    if kind == "local" and importlib.util.find_spec("bokeh") is None:
        from distributed.versions import BOKEH_REQUIREMENT

        print(
            f"  (bokeh is not installed: only the /info pages are served; "
            f'pip install "{BOKEH_REQUIREMENT}" for the live plots)',
            flush=True,
        )


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


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold back Ctrl-C in the block and deliver it after; block SIGINT in threads started here.

    The handler only records a Ctrl-C (whichever thread the signal lands on, Python runs it
    in the main thread). SIGINT is also blocked in the main thread for the block's length,
    so that a thread started meanwhile (a local cluster's loop thread, and the threads it
    starts to spawn worker processes) keeps it blocked: its child processes are then born
    deaf to the terminal's Ctrl-C, even while they import, before a worker can ignore it.
    Outside the main thread, or without ``pthread_sigmask``, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):
        yield
        return
    held: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    except (ValueError, TypeError):
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        # a Ctrl-C pending on the main thread arrives (and is recorded) here
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        # None means "installed outside Python": the best we can restore is the default.
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if held:
        if callable(previous):
            previous(signal.SIGINT, None)  # default_int_handler raises KeyboardInterrupt
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, if the workers' start method uses one.

    Started on the first semaphore, from the cluster's loop thread, it would unblock SIGINT
    there (``ensure_running`` blocks it around the launch and then unblocks, not restores).
    """
    if os.name != "posix":
        return
    from multiprocessing import resource_tracker

    from distributed.utils import get_mp_context

    if get_mp_context().get_start_method() != "fork":
        resource_tracker.ensure_running()


def _interrupting() -> bool:
    """Whether the exception being handled is a Ctrl-C (or the CLI's SIGTERM)."""
    return isinstance(sys.exc_info()[1], KeyboardInterrupt)


#: The loggers that report a cluster's shutdown (in this process).
_SHUTDOWN_LOGGERS = ("distributed", "tornado", "asyncio")


@contextlib.contextmanager
def _quiet_loggers(names: tuple[str, ...] = _SHUTDOWN_LOGGERS) -> Iterator[None]:
    """Hold back warnings (not errors) of ``names`` and the loggers under them."""
    loggers = [logging.getLogger(n) for n in names]
    loggers += [
        lg
        for name, lg in list(logging.Logger.manager.loggerDict.items())
        if isinstance(lg, logging.Logger)
        and lg.level
        and name.startswith(tuple(f"{n}." for n in names))
    ]
    previous = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.ERROR))
    try:
        yield
    finally:
        for lg, level in zip(loggers, previous, strict=True):
            lg.setLevel(level)


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

"""The dask-gateway half of :func:`intake_helio.compute.clusters.cluster` (as on Daskhub).

Starting a gateway cluster: connect (address, proxy and auth from the arguments or the
dask config), fill the gateway's cluster options (``worker_cores``, ``worker_memory``,
``environment`` and any option the gateway offers, given as ``cluster_options``), submit,
wait until it runs, scale or adapt, and register every step's undo on an ``ExitStack``
so that the cluster is always stopped.

Credentials never appear in messages: errors from the HTTP client (whose request headers
hold the ``Authorization`` credential) are replaced, not chained; auth is shown by name.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import dask
import distributed

from ..base.errors import (
    ArgumentError,
    ArgumentTypeError,
    ClusterError,
    ClusterTimeoutError,
    HelioError,
)
from ..io.storage import redact

__all__ = [
    "AUTH_NAMES",
    "GatewayAuthError",
    "GatewayConnectionError",
    "apply_cluster_options",
    "check_auth",
    "check_cluster_options",
    "close_gateway",
    "describe_auth",
    "forget_closed_gateway",
    "start_gateway",
    "strip_userinfo",
]

logger = logging.getLogger(__name__)

AUTH_NAMES = ("basic", "jupyterhub", "kerberos")
_GIB = 2**30
#: Cluster options that :func:`~intake_helio.compute.clusters.cluster` also takes as
#: arguments of its own.
_OWN_ARGUMENTS = ("worker_cores", "worker_memory")


class GatewayAuthError(HelioError, PermissionError):
    """The gateway refused the credentials (HTTP 401/403)."""


class GatewayConnectionError(HelioError, ConnectionError):
    """The gateway could not be reached or answered with an HTTP error."""


# --------------------------------------------------------------------------- start
def start_gateway(
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
    cluster_options: Mapping[str, Any] | None = None,
) -> distributed.Client:
    """Start a gateway cluster and return its client; ``stack`` gets every cleanup.

    Parameters
    ----------
    stack : contextlib.ExitStack
        Receives the callbacks that stop the cluster and close the clients.
    workers, worker_cores, memory_bytes, adapt, address, proxy_address, auth, env, timeout
        As checked by :func:`intake_helio.compute.clusters.cluster` (memory in bytes).
    cluster_options : dict, optional
        Values for any of the gateway's cluster options (``profile``, ``image`` ...).

    Returns
    -------
    distributed.Client

    Raises
    ------
    ArgumentError
        No address, an option the gateway does not offer (the message lists those it
        offers), or a value the gateway does not accept.
    GatewayAuthError, GatewayConnectionError, ClusterError, ClusterTimeoutError
        The gateway refused, could not be reached, or the cluster did not start.
    """
    from dask_gateway import Gateway

    address = address or dask.config.get("gateway.address", None)
    if not address:
        raise ArgumentError(
            "no dask-gateway address: pass address='http(s)://host:port' or set the dask "
            "config 'gateway.address' (Daskhub sets it; or export DASK_GATEWAY__ADDRESS)"
        )
    shown = strip_userinfo(str(address))
    gateway = Gateway(address, proxy_address=proxy_address, auth=auth)
    stack.callback(close_gateway, gateway)
    import aiohttp

    try:
        return _start_cluster(
            stack,
            gateway,
            shown,
            workers,
            worker_cores,
            memory_bytes,
            adapt,
            env,
            timeout,
            dict(cluster_options or {}),
        )
    except aiohttp.ClientError as exc:
        err = _gateway_error(exc, shown)
    # raised outside the handler: no __context__ keeps aiohttp's error, whose request
    # headers hold the Authorization credential
    raise err from None


def _start_cluster(
    stack: contextlib.ExitStack,
    gateway,
    shown: str,
    workers: int | None,
    worker_cores: int | None,
    memory_bytes: int | None,
    adapt: tuple[int, int] | None,
    env: dict[str, str],
    timeout: float,
    cluster_options: dict[str, Any],
) -> distributed.Client:
    options = gateway.cluster_options()
    offered = set(options)
    # "environment" merges with env (an option not offered fails like any other)
    extra_env = cluster_options.pop("environment", None) if "environment" in offered else None
    apply_cluster_options(options, cluster_options, shown)
    if worker_cores is not None:
        _set_option(options, offered, "worker_cores", int(worker_cores), shown)
    if memory_bytes is not None:
        _set_option(options, offered, "worker_memory", memory_bytes / _GIB, shown)
    if extra_env:
        env = {**{str(k): str(v) for k, v in extra_env.items()}, **env}
    use_plugin = False
    if env:
        if "environment" in offered:
            options.environment = {**dict(options.environment or {}), **env}
        else:
            use_plugin = True

    name = gateway.submit(options)
    stack.callback(_stop_cluster, gateway, name)
    _wait_running(gateway, name, shown, timeout)
    gw_cluster = gateway.connect(name, shutdown_on_close=True)
    stack.callback(_shutdown_cluster, gw_cluster)

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


# --------------------------------------------------------------------------- options
def apply_cluster_options(options, requested: Mapping[str, Any], shown: str) -> None:
    """Set ``requested`` values on a gateway's ``Options``, all or none offered.

    Parameters
    ----------
    options : dask_gateway.options.Options
        From ``Gateway.cluster_options()``.
    requested : dict
        Option name -> value.
    shown : str
        The gateway's address without credentials, for messages.

    Raises
    ------
    ArgumentError
        A name the gateway does not offer (the message lists the offered ones), or a
        value it does not accept (chained to the gateway client's error).
    """
    offered = list(options)
    unknown = [k for k in requested if k not in offered]
    if unknown:
        raise ArgumentError(
            f"the gateway at {shown} offers no cluster option "
            f"{', '.join(repr(k) for k in unknown)}; it offers: "
            f"{', '.join(offered) or 'none'} (fix the name in cluster_options=)"
        )
    for key, value in requested.items():
        try:
            options[key] = value
        except (TypeError, ValueError) as exc:
            choices = getattr(getattr(options, "_fields", {}).get(key), "options", None)
            hint = f"; choose one of {list(choices)}" if choices else ""
            raise ArgumentError(
                f"the gateway at {shown} does not accept cluster option "
                f"{key}={redact({key: value})[key]!r} ({exc}){hint}"
            ) from exc


def _set_option(options, offered: set[str], key: str, value: Any, shown: str) -> None:
    """Set one of :func:`cluster`'s own arguments; a gateway without it gets a warning."""
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


def check_cluster_options(cluster_options: Any, worker_cores: Any, worker_memory: Any) -> dict:
    """Validate ``cluster_options`` before anything starts; return a plain dict copy.

    Raises
    ------
    ArgumentTypeError
        Not a dict, or a name that is not a string.
    ArgumentError
        ``worker_cores``/``worker_memory`` given both as arguments and in the dict.
    """
    if cluster_options is None:
        return {}
    if not isinstance(cluster_options, Mapping):
        raise ArgumentTypeError(
            f"cluster_options must be a dict of gateway option names to values such as "
            f"{{'profile': 'gpu'}}, got {type(cluster_options).__name__}"
        )
    for key in cluster_options:
        if not isinstance(key, str):
            raise ArgumentTypeError(
                f"cluster_options names must be strings, got {key!r} ({type(key).__name__})"
            )
    environment = cluster_options.get("environment")
    if environment is not None and not isinstance(environment, Mapping):
        raise ArgumentTypeError(
            "cluster_options['environment'] must be a dict of variable names to values, "
            f"got {type(environment).__name__}"
        )
    given = {"worker_cores": worker_cores, "worker_memory": worker_memory}
    for key in _OWN_ARGUMENTS:
        if key in cluster_options and given[key] is not None:
            raise ArgumentError(
                f"{key} is given twice, as {key}={given[key]!r} and in cluster_options; "
                "give it once"
            )
    return dict(cluster_options)


# --------------------------------------------------------------------------- errors
def _gateway_error(exc: Exception, shown: str) -> Exception:
    """An error for a failed gateway request that carries no credentials.

    aiohttp's ``ClientResponseError`` keeps the request headers (the ``Authorization``
    header, i.e. the password or token) and shows them in its repr: it is neither
    chained nor kept as context.
    """
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        status, url = exc.status, strip_userinfo(str(exc.request_info.real_url))
        if status in (401, 403):
            return GatewayAuthError(
                f"the gateway at {shown} refused the credentials (HTTP {status} from {url}); "
                "check auth= or the dask config 'gateway.auth'"
            )
        return GatewayConnectionError(
            f"the gateway at {shown} answered HTTP {status} for {url}; see the gateway's logs"
        )
    return GatewayConnectionError(
        f"cannot reach the gateway at {shown} ({type(exc).__name__}); check address= or "
        "the dask config 'gateway.address'"
    )


# --------------------------------------------------------------------------- lifecycle
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


def _stop_cluster(gateway, name: str) -> None:
    """Ask the gateway to stop cluster ``name`` (idempotent; errors are logged)."""
    from dask_gateway.client import ClusterStatus

    try:
        report = gateway.get_cluster(name)
        if report.status in (ClusterStatus.PENDING, ClusterStatus.RUNNING):
            gateway.stop_cluster(name)
    except Exception as exc:
        logger.warning("could not stop gateway cluster %s: %s", name, type(exc).__name__)


def _shutdown_cluster(gw_cluster) -> None:
    try:
        gw_cluster.shutdown()  # also closes the cluster's own Gateway object
    finally:
        forget_closed_gateway(gw_cluster.gateway)


def close_gateway(gateway) -> None:
    """Close a ``dask_gateway.Gateway`` so that garbage collection leaves it alone."""
    try:
        gateway.close()
    finally:
        forget_closed_gateway(gateway)


def forget_closed_gateway(gateway) -> None:
    """Make a closed ``dask_gateway.Gateway``'s ``__del__`` a no-op.

    dask-gateway 2026.3's ``Gateway.__del__`` calls ``close()`` again, which with
    distributed >= 2023.6 raises "Accessing the loop property while the loop is not
    running" (printed as "Exception ignored in Gateway.__del__"). ``__del__`` does
    nothing once the (stopped) loop runner is gone.
    """
    with contextlib.suppress(AttributeError):
        del gateway._loop_runner


# --------------------------------------------------------------------------- auth, urls
def check_auth(auth: Any) -> Any:
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


def describe_auth(auth: Any) -> str:
    """The auth method by name only (never its credentials)."""
    if auth is None:
        configured = dask.config.get("gateway.auth.type", None)
        return f"{configured} from dask config" if isinstance(configured, str) else "dask config"
    if isinstance(auth, str):
        return auth if (auth in AUTH_NAMES or "." in auth) else "<unknown>"
    return type(auth).__name__


def strip_userinfo(url: str) -> str:
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

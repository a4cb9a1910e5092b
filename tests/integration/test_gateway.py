"""cluster("gateway") against a real dask-gateway-server on 127.0.0.1 (LocalGateway)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import psutil
import pytest

from intake_helio.compute.clusters import cluster
from intake_helio.compute.scheduling import scheduler_workers
from intake_helio.testing.gateway_server import LocalGateway

pytestmark = [pytest.mark.gateway, pytest.mark.slow]

BASE_VAR = "INTAKE_HELIO_GATEWAY_BASE"
TEST_VAR = "INTAKE_HELIO_TEST_VAR"


@pytest.fixture(scope="module")
def gw():
    with LocalGateway(environment={BASE_VAR: "from-the-server"}) as gateway:
        yield gateway


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _has_worker_process(pid: int) -> bool:
    """Whether a nanny under ``pid`` has spawned its worker process yet."""
    tree = _tree(pid)
    return len(tree) >= 6 and any("spawn_main" in " ".join(p.cmdline()) for p in tree)


def _wait_gone(procs: list[psutil.Process], timeout: float = 20) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


def _worker_info(client, n: int) -> dict:
    client.wait_for_workers(n, timeout=60)
    return client.run(
        lambda: {
            "pid": os.getpid(),
            "test": os.environ.get(TEST_VAR),
            "base": os.environ.get(BASE_VAR),
        }
    )


def test_gateway_cluster_computes_on_gateway_worker_processes(gw, caplog):
    caplog.set_level(logging.DEBUG)
    with cluster(
        "gateway",
        workers=2,
        worker_cores=1,
        worker_memory=1.5,
        address=gw.address,
        proxy_address=gw.proxy_address,
        auth=gw.auth,
        environment={TEST_VAR: "visible-on-worker"},
    ) as client:
        info = _worker_info(client, 2)
        pids = {v["pid"] for v in info.values()}
        assert len(pids) == 2
        assert os.getpid() not in pids
        # Workers are processes started by the gateway server, not by this process.
        for pid in pids:
            assert gw.pid in {p.pid for p in psutil.Process(pid).parents()}
        assert {v["test"] for v in info.values()} == {"visible-on-worker"}
        assert {v["base"] for v in info.values()} == {"from-the-server"}

        workers = scheduler_workers(client).values()
        assert {w["nthreads"] for w in workers} == {1}
        assert {w["memory_limit"] for w in workers} == {int(1.5 * 2**30)}

        x = da.arange(3_000_000, dtype="int64", chunks=250_000)
        expected = np.arange(3_000_000, dtype="int64")
        assert (x * x % 7).sum().compute() == (expected * expected % 7).sum()
        worker_procs = [psutil.Process(pid) for pid in pids]
    assert gw.list_clusters() == []
    assert not _wait_gone(worker_procs), "gateway workers still alive after the block"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert gw.password not in logged


def test_nothing_listens_beyond_loopback(gw):
    with cluster(
        "gateway", workers=1, address=gw.address, proxy_address=gw.proxy_address, auth=gw.auth
    ) as client:
        _worker_info(client, 1)
        listening = []
        for proc in _tree(gw.pid):
            with_conns = proc.net_connections(kind="inet")
            listening += [
                (proc.pid, c.laddr.ip, c.laddr.port)
                for c in with_conns
                if c.status == psutil.CONN_LISTEN
            ]
    # Proxy HTTP + TCP, private API, scheduler + its HTTP server + gateway API,
    # nanny + worker.
    assert len(listening) >= 7, listening
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening


def test_gateway_cluster_from_dask_config_is_shut_down_when_body_raises(gw):
    # As on Daskhub: address, proxy address and auth come from the dask config.
    with (
        dask.config.set(gw.dask_config(include_password=True)),
        pytest.raises(ValueError, match="boom"),
        cluster("gateway", workers=1) as client,
    ):
        (info,) = _worker_info(client, 1).values()
        assert len(gw.list_clusters()) == 1
        worker = psutil.Process(info["pid"])
        raise ValueError("boom")
    assert gw.list_clusters() == []
    assert not _wait_gone([worker])


def test_wrong_password_is_refused_without_showing_it(gw):
    from dask_gateway import BasicAuth

    secret = "not-the-password-5f2e"
    with (
        pytest.raises(PermissionError) as info,
        cluster(
            "gateway",
            address=gw.address,
            proxy_address=gw.proxy_address,
            auth=BasicAuth(password=secret),
        ),
    ):
        pass
    assert "401" in str(info.value)
    assert gw.address in str(info.value)
    for exc in (info.value, info.value.__cause__):
        assert secret not in str(exc) and secret not in repr(exc)
    assert info.value.__suppress_context__


def test_server_log_never_shows_the_password(gw):
    assert gw.log_path is not None and gw.log_path.exists()
    log = gw.log_path.read_text()
    assert "Dask-Gateway server started" in log
    assert gw.password not in log
    assert "127.0.0.1" in log


def test_environment_via_nanny_plugin_when_gateway_has_no_such_option():
    with LocalGateway(environment_option=False) as plain:
        with plain.gateway() as g:
            assert "environment" not in set(g.cluster_options())
        with cluster(
            "gateway",
            workers=1,
            address=plain.address,
            proxy_address=plain.proxy_address,
            auth=plain.auth,
            environment={TEST_VAR: "via-plugin"},
        ) as client:
            deadline = time.monotonic() + 30
            while True:  # the plugin restarts the worker once
                values = {v["test"] for v in _worker_info(client, 1).values()}
                if values == {"via-plugin"} or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert values == {"via-plugin"}


def test_stop_leaves_no_process_behind():
    from intake_helio.compute.clusters import _forget_closed_gateway

    gateway = LocalGateway().start()
    workdir = gateway.workdir
    try:
        # A cluster left running on purpose: stop() must take it down too.
        with gateway.gateway() as g:
            running = g.new_cluster(shutdown_on_close=False)
            running.scale(1)
            deadline = time.monotonic() + 60
            # server, proxy, scheduler, nanny + worker + multiprocessing's resource tracker
            while not _has_worker_process(gateway.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            running.close(shutdown=False)
            _forget_closed_gateway(running.gateway)
            assert [c.name for c in g.list_clusters()] == [running.name]
        tree = _tree(gateway.pid)
        assert len(tree) >= 6, [p.cmdline()[:3] for p in tree]
        started = time.monotonic()
        gateway.stop()
        stop_time = time.monotonic() - started
    finally:
        gateway.stop()
    alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [(p.pid, p.cmdline()[:4]) for p in alive]
    assert gateway.pid is None and not gateway.running
    assert workdir is not None and not workdir.exists()
    assert stop_time < 30


def test_command_line_server_prints_how_to_connect_and_stops_on_ctrl_c(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "intake_helio.testing.gateway_server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        assert "dask-gateway running at http://127.0.0.1:" in text, text
        config_dir = next(
            line.split("=", 1)[1].strip() for line in lines if line.startswith("export DASK_CONFIG")
        )
        (config_file,) = Path(config_dir).iterdir()
        assert config_file.stat().st_mode & 0o077 == 0  # only the owner may read the password
        config = json.loads(config_file.read_text())
        assert config["gateway"]["address"] in text
        assert config["gateway"]["auth"]["type"] == "basic"
        assert config["gateway"]["auth"]["kwargs"]["password"] not in text
        tree = _tree(proc.pid)
        assert len(tree) >= 3  # this command, the server, its proxy
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert not _wait_gone(tree, timeout=10)
    assert not Path(config_dir).exists()

"""cluster("local"): real worker processes on 127.0.0.1, always shut down."""

from __future__ import annotations

import os
import signal
import time

import dask
import dask.array as da
import distributed
import numpy as np
import psutil
import pytest

from intake_helio.compute.clusters import active_client, cluster, describe_cluster
from intake_helio.compute.scheduling import scheduler_workers


def _worker_pids(client: distributed.Client) -> set[int]:
    """The pid of each worker process, asked of each worker by a task pinned to it."""
    addresses = list(scheduler_workers(client))
    futures = [client.submit(os.getpid, workers=[a], pure=False) for a in addresses]
    return set(client.gather(futures))


def _assert_gone(pids: set[int], timeout: float = 15) -> None:
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    assert not alive, f"worker processes still alive after the block: {alive}"


def test_local_cluster_runs_tasks_in_two_worker_processes():
    x = np.arange(2_000_000, dtype="int64").reshape(1000, 2000)
    with cluster("local", workers=2) as client:
        assert isinstance(client, distributed.Client)
        assert active_client() is client
        pids = _worker_pids(client)
        assert len(pids) == 2
        assert os.getpid() not in pids
        # Worker processes are children (via nannies) of this process.
        children = {p.pid for p in psutil.Process().children(recursive=True)}
        assert pids <= children

        before = client.run(lambda dask_worker: dask_worker.state.executed_count)
        total = (
            da.arange(x.size, dtype="int64", chunks=x.size // 16).reshape(x.shape).sum().compute()
        )
        assert total == x.sum()
        after = client.run(lambda dask_worker: dask_worker.state.executed_count)
        # The 16 chunks (and their reduction) ran on the workers.
        assert sum(after.values()) - sum(before.values()) >= 16
    _assert_gone(pids)
    assert active_client() is None


def test_local_cluster_listens_on_loopback_only():
    with cluster("local", workers=2) as client:
        pids = _worker_pids(client) | {os.getpid()}
        addresses = []
        for pid in pids:
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    addresses.append(conn.laddr.ip)
        # Scheduler, its HTTP server, two nannies, two workers.
        assert len(addresses) >= 6
        assert set(addresses) == {"127.0.0.1"}
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")


def test_local_cluster_is_shut_down_when_the_body_raises():
    pids: set[int] = set()
    with pytest.raises(ValueError, match="boom"), cluster("local", workers=2) as client:
        pids = _worker_pids(client)
        raise ValueError("boom")
    assert len(pids) == 2
    _assert_gone(pids)
    assert active_client() is None


def test_local_cluster_is_shut_down_on_keyboard_interrupt():
    pids: set[int] = set()
    with pytest.raises(KeyboardInterrupt), cluster("local", workers=1) as client:
        pids = _worker_pids(client)
        # a terminal's Ctrl-C reaches the workers too (one process group): they leave it to
        # this process, ignored, and blocked since their birth (so also while they import)
        sigint = client.run(
            lambda: (
                signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
                signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []),
            )
        )
        assert list(sigint.values()) == [(True, True)]
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the body runs
        time.sleep(5)  # if the signal is delivered late, it lands here
        pytest.fail("SIGINT did not interrupt the body")
    assert len(pids) == 1
    _assert_gone(pids)


def test_ctrl_c_during_shutdown_is_held_back_until_shutdown_finished(monkeypatch):
    original_close = distributed.LocalCluster.close

    def close_after_ctrl_c(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C again
        return original_close(self, *args, **kwargs)

    monkeypatch.setattr(distributed.LocalCluster, "close", close_after_ctrl_c)
    pids: set[int] = set()
    with pytest.raises(KeyboardInterrupt), cluster("local", workers=1) as client:
        pids = _worker_pids(client)
    assert len(pids) == 1
    _assert_gone(pids)
    # The usual handler is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_local_worker_sizes_and_environment():
    with cluster(
        "local",
        workers=1,
        worker_cores=2,
        worker_memory="600 MiB",
        environment={"INTAKE_HELIO_TEST_VAR": "on-the-worker"},
    ) as client:
        (info,) = scheduler_workers(client).values()
        assert info["nthreads"] == 2
        assert info["memory_limit"] == 600 * 2**20
        values = client.run(lambda: os.environ.get("INTAKE_HELIO_TEST_VAR"))
        assert list(values.values()) == ["on-the-worker"]
    assert "INTAKE_HELIO_TEST_VAR" not in os.environ


def _worker_settings():
    import dask as _dask

    return (
        os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        _dask.config.get("distributed.worker.profile.enabled"),
        _dask.config.get("distributed.worker.memory.monitor-interval"),
    )


def _system_monitor_ms(dask_worker):
    return dask_worker.periodic_callbacks["monitor"].callback_time


def test_local_workers_run_without_dask_malloc_setting_and_idle_overheads():
    """The measured speed-ups of ih.cluster("local") reach the worker processes."""
    with cluster("local", workers=2) as client:
        settings = set(client.run(_worker_settings).values())
        worker = client.run(_system_monitor_ms)
    assert settings == {(None, False, "1s")}
    # the system monitor (dashboard metrics) runs every 2 s, in ms
    assert set(worker.values()) == {2000}
    # this process is untouched by the workers' settings
    assert dask.config.get("distributed.worker.profile.enabled") is True


def test_local_memory_as_gib_number_and_default_worker_count():
    with cluster("local", worker_memory=0.5) as client:
        workers = scheduler_workers(client).values()
        assert len(workers) == max(1, dask.system.CPU_COUNT)
        assert {w["nthreads"] for w in workers} == {1}
        assert {w["memory_limit"] for w in workers} == {2**29}


def test_local_adaptive_cluster_scales_up_for_work():
    with cluster("local", adapt=(0, 2)) as client:
        assert scheduler_workers(client) == {}
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "kubernetes"}, r"'kubernetes'.*'local', 'gateway'"),
        ({"workers": -1}, r"workers must be an integer >= 0, got -1"),
        ({"worker_cores": 0}, r"worker_cores must be an integer >= 1, got 0"),
        ({"worker_memory": "lots"}, r"worker_memory 'lots' is not a size"),
        ({"adapt": (3, 1)}, r"adapt minimum must not exceed maximum, got \(3, 1\)"),
        ({"kind": "gateway", "auth": "magic"}, r"unknown gateway auth 'magic'"),
    ],
)
def test_bad_arguments_raise_before_anything_starts(kwargs, match):
    before = set(psutil.Process().children(recursive=True))
    with pytest.raises(ValueError, match=match), cluster(**kwargs):
        pass
    assert set(psutil.Process().children(recursive=True)) <= before


def test_gateway_without_address_names_the_config_key():
    import dask_gateway  # noqa: F401  (its config defaults must exist before config.set)

    with (
        dask.config.set({"gateway.address": None}),
        pytest.raises(ValueError, match=r"gateway\.address"),
        cluster("gateway"),
    ):
        pass


def test_describe_cluster_shows_no_secrets():
    from dask_gateway import BasicAuth

    text = describe_cluster(
        "gateway",
        workers=3,
        address="https://user:hunter2@gateway.example:8443",
        auth=BasicAuth("user", "hunter2"),
        environment={"AWS_SECRET_ACCESS_KEY": "s3cr3t-value"},
    )
    assert "hunter2" not in text
    assert "s3cr3t-value" not in text
    assert "AWS_SECRET_ACCESS_KEY" in text
    assert "https://gateway.example:8443" in text
    assert "BasicAuth" in text
    assert "workers=3" in text


def test_local_workers_stay_without_the_malloc_setting_after_a_plain_local_cluster():
    """distributed's nannies put MALLOC_TRIM_THRESHOLD_ into the starting process for good;
    a plain LocalCluster started first (e.g. earlier in a notebook) must not pass it on."""
    with distributed.LocalCluster(n_workers=1, processes=True, dashboard_address=None):
        pass
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == "65536"  # the control
    with cluster("local", workers=1) as client:
        settings = set(client.run(_worker_settings).values())
    assert {s[0] for s in settings} == {None}
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == "65536"  # the process's own: restored

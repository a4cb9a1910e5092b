"""The irradiance job on a real dask-gateway-server (127.0.0.1, subprocess workers).

Frames live in the real local S3 server; gateway workers are separate processes that
inherit no AWS_* variables, so a correct result proves storage_options reached them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import psutil
import pytest

import intake_helio as ih
from intake_helio.testing.demo_data import write_demo_dataset
from intake_helio.testing.gateway_server import LocalGateway

pytestmark = [pytest.mark.gateway, pytest.mark.slow]


@pytest.fixture(scope="module")
def gw():
    with LocalGateway() as gateway:
        yield gateway
        pid = gateway.pid
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    _, alive = psutil.wait_procs(tree, timeout=20)
    assert not alive, f"processes left after the gateway stopped: {alive}"


@pytest.fixture
def demo(s3):
    return write_demo_dataset(
        "s3://gw-demo/", s3.storage_options, frames=10, size=64, start="2020-12-31T23:40:00"
    )


def _frames(s3, demo):
    ds = ih.open_bucket(demo.root, s3.storage_options)[demo.dataset_id]
    return ds.to_dataarray(demo.start, demo.stop, on_error="nan")


def _server_children(gw) -> list[psutil.Process]:
    return psutil.Process(gw.pid).children(recursive=True)


def test_library_job_on_gateway_equals_local_cluster(gw, s3, demo):
    frames = _frames(s3, demo)
    with ih.cluster(
        "gateway", workers=2, address=gw.address, proxy_address=gw.proxy_address, auth=gw.auth
    ) as client:
        client.wait_for_workers(2, timeout=60)
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        assert all(p in {c.pid for c in _server_children(gw)} for p in pids)
        on_gateway = ih.irradiance(frames, progress=False)
    with ih.cluster("local", workers=2) as client:
        local = ih.irradiance(frames, progress=False)
    np.testing.assert_array_equal(on_gateway["irradiance"], local["irradiance"])
    assert list(on_gateway["status"].values) == list(local["status"].values)
    np.testing.assert_allclose(on_gateway["irradiance"], demo.expected_mean, rtol=1e-6)
    bad = on_gateway["status"].values != "ok"
    assert list(on_gateway["datakey"].values[bad]) == list(demo.corrupt)
    assert gw.list_clusters() == []
    _, alive = psutil.wait_procs(
        [psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=20
    )
    assert not alive


def test_cluster_is_shut_down_when_the_job_raises(gw, s3, demo):
    ds = ih.open_bucket(demo.root, s3.storage_options)[demo.dataset_id]
    frames = ds.to_dataarray(demo.start, demo.stop)  # on_error="raise"
    with (
        pytest.raises(ih.FrameReadError, match="truncated"),
        ih.cluster(
            "gateway", workers=1, address=gw.address, proxy_address=gw.proxy_address, auth=gw.auth
        ) as client,
    ):
        worker_pids = set(client.run(os.getpid).values())
        frames.mean(("y", "x")).compute()
    assert gw.list_clusters() == []
    procs = [psutil.Process(p) for p in worker_pids if psutil.pid_exists(p)]
    _, alive = psutil.wait_procs(procs, timeout=20)
    assert not alive


def test_cli_cluster_gateway_same_values_no_secret_printed(gw, s3, demo, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DASK_"))}
    env.update(
        {
            "DASK_GATEWAY__PROXY_ADDRESS": gw.proxy_address,
            "DASK_GATEWAY__AUTH__TYPE": "basic",
            "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": gw.password,
        }
    )
    so = s3.storage_options
    argv = [
        sys.executable,
        "-m",
        "intake_helio.app.cli",
        "irradiance",
        demo.root,
        demo.dataset_id,
        "--start",
        str(demo.start),
        "--stop",
        str(demo.stop),
        "--no-progress",
        "--endpoint-url",
        so["endpoint_url"],
        "--storage-option",
        f"key={so['key']}",
        "--storage-option",
        f"secret={so['secret']}",
    ]
    out_gw = tmp_path / "gw"
    run = subprocess.run(
        [
            *argv,
            "--out",
            str(out_gw),
            "--cluster",
            "gateway",
            "--gateway-address",
            gw.address,
            "--workers",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 3, run.stderr  # finished, with the corrupt frame listed
    assert gw.password not in run.stdout + run.stderr
    assert so["secret"] not in run.stdout + run.stderr
    # the generator's truth in DN/s, the CLI's default (the library test above shows
    # gateway == local cluster bit for bit)
    table = pd.read_csv(out_gw / "irradiance.csv")
    np.testing.assert_allclose(table["irradiance"], demo.expected_rate, rtol=1e-6)
    assert list(table.loc[table["status"] != "ok", "datakey"]) == list(demo.corrupt)
    assert set(table["status"]) == {"ok", "truncated"}
    assert gw.list_clusters() == []

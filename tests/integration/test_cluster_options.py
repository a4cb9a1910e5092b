"""cluster(..., cluster_options=...) on a real dask-gateway server, and dashboard=True.

The gateway is ``LocalGateway`` (dask-gateway-server with subprocess workers on
127.0.0.1); its ``profile`` option ("default"/"gpu") reaches the scheduler and workers as
the environment variable ``HELIO_PROFILE``, read back on the workers with
``client.run``. The local dashboard is fetched over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import urllib.request

import psutil
import pytest

from intake_helio.base.errors import ArgumentError, ArgumentTypeError, HelioError
from intake_helio.compute.clusters import cluster, describe_cluster
from intake_helio.compute.scheduling import scheduler_workers
from intake_helio.testing.gateway_server import LocalGateway

TEST_VAR = "INTAKE_HELIO_OPTIONS_TEST"


@pytest.fixture(scope="module")
def gw():
    with LocalGateway() as gateway:
        yield gateway


def _on_gateway(gw, **kwargs):
    return cluster(
        "gateway", address=gw.address, proxy_address=gw.proxy_address, auth=gw.auth, **kwargs
    )


def _worker_env(client, n: int) -> dict:
    client.wait_for_workers(n, timeout=60)
    return client.run(lambda: {k: os.environ.get(k) for k in ("HELIO_PROFILE", TEST_VAR)})


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, resp.read().decode("utf-8", errors="replace")


@pytest.mark.gateway
@pytest.mark.slow
def test_gateway_cluster_options_reach_the_workers(gw, capsys):
    with _on_gateway(
        gw,
        workers=2,
        cluster_options={
            "profile": "gpu",
            "worker_cores": 2,
            "environment": {TEST_VAR: "from-cluster-options"},
        },
        dashboard=True,
    ) as client:
        info = _worker_env(client, 2)
        assert len(info) == 2
        assert {v["HELIO_PROFILE"] for v in info.values()} == {"gpu"}
        assert {v[TEST_VAR] for v in info.values()} == {"from-cluster-options"}
        workers = scheduler_workers(client).values()
        assert {w["nthreads"] for w in workers} == {2}
        # dashboard=True prints the link the gateway proxies
        link = client.dashboard_link
        assert link.startswith(gw.address)
        assert capsys.readouterr().out.strip() == f"Dask dashboard: {link}"
        status, _ = _get(link)
        assert status == 200
    assert gw.list_clusters() == []

    # the gateway's default profile, and environment= merged over cluster_options
    with _on_gateway(
        gw,
        workers=1,
        environment={TEST_VAR: "from-environment"},
        cluster_options={"environment": {TEST_VAR: "overridden", "OTHER": "x"}},
    ) as client:
        (env,) = _worker_env(client, 1).values()
        assert env == {"HELIO_PROFILE": "default", TEST_VAR: "from-environment"}
        assert client.run(lambda: os.environ.get("OTHER")) == {
            w: "x" for w in scheduler_workers(client)
        }
    assert capsys.readouterr().out == ""  # no dashboard asked for: nothing printed


@pytest.mark.gateway
@pytest.mark.slow
def test_an_option_the_gateway_does_not_offer_fails_listing_the_offered_ones(gw):
    with pytest.raises(ArgumentError) as info, _on_gateway(gw, cluster_options={"profil": "gpu"}):
        pass
    message = str(info.value)
    assert "\n" not in message
    assert "'profil'" in message and gw.address in message
    assert "it offers: worker_cores, worker_memory, profile, environment" in message
    assert isinstance(info.value, HelioError)

    with pytest.raises(ArgumentError) as info, _on_gateway(gw, cluster_options={"profile": "tpu"}):
        pass
    assert "profile='tpu'" in str(info.value)
    assert "choose one of ['default', 'gpu']" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)  # the gateway client's own check
    assert gw.list_clusters() == []  # nothing was submitted


def test_cluster_options_are_checked_before_anything_starts():
    with (
        pytest.raises(ArgumentError, match="apply to gateway clusters only"),
        cluster("local", cluster_options={"profile": "gpu"}),
    ):
        pass
    with (
        pytest.raises(ArgumentTypeError, match="cluster_options must be a dict"),
        cluster("gateway", address="http://127.0.0.1:9", cluster_options=["profile"]),
    ):
        pass
    with (
        pytest.raises(ArgumentError, match="worker_cores is given twice"),
        cluster(
            "gateway",
            address="http://127.0.0.1:9",
            worker_cores=2,
            cluster_options={"worker_cores": 1},
        ),
    ):
        pass
    with (
        pytest.raises(ArgumentTypeError, match="dashboard must be True or False"),
        cluster("local", dashboard="yes"),
    ):
        pass
    shown = describe_cluster(
        "gateway",
        address="http://gw:8000",
        cluster_options={"profile": "gpu", "environment": {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}},
        dashboard=True,
    )
    assert "cluster_options: ['environment', 'profile']" in shown and "dashboard" in shown
    assert "s3cr3t" not in shown and "gpu" not in shown


def test_local_dashboard_is_served_on_loopback_and_its_link_printed(capsys):
    with cluster("local", workers=1, dashboard=True) as client:
        out = capsys.readouterr().out
        link = client.dashboard_link
        assert out.splitlines()[0] == f"Dask dashboard: {link}"
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/status", link)
        assert match, link
        port = int(match.group(1))
        assert port != 8787  # ephemeral
        listening = [
            c.laddr.ip
            for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
        assert listening == ["127.0.0.1"]

        status, _ = _get(link)
        assert status == 200
        status, page = _get(f"http://127.0.0.1:{port}/info/main/workers.html")
        assert status == 200
        (worker,) = scheduler_workers(client)
        assert worker in page
    capsys.readouterr()

    with cluster("local", workers=1):  # the default: no dashboard, nothing printed
        pass
    assert capsys.readouterr().out == ""

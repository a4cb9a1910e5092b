"""The on-disk catalog cache, counted on the real local S3 server through a FaultProxy.

Also: an unresolvable registry host is a HelioError naming the URL, and
``--scheduler-address`` runs the job on a cluster the user already runs.
"""

from __future__ import annotations

import json
import os

import dask
import numpy as np
import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.catalog.cache import CACHE_ENV, cache_dir, entry_path
from intake_helio.compute.scheduling import scheduler_workers
from intake_helio.testing.fault_proxy import FaultProxy
from tests.builders import demo_job_argv, loopback_cluster

THIS_YEAR = pd.Timestamp.now(tz="UTC").year
PAST = THIS_YEAR - 1  # no gap year between: a missing year is asked for each time
ROOT = "s3://helio-cache/"
CANARY_KEY = "AKIACANARY0CANARY0CA"
CANARY_SECRET = "canary-secret-Zq81xW"


def _index(year: int, rows: int, tag: str = "a") -> bytes:
    lines = ["start,stop,datakey,filesize"]
    for i in range(rows):
        t = pd.Timestamp(f"{year}-01-01") + pd.Timedelta(minutes=4 * i)
        lines.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{t:%Y-%m-%dT%H:%M:%SZ},{ROOT}{tag}/{i}.fits,2880")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def bucket_files(s3):
    fs = s3.filesystem()
    fs.mkdir("helio-cache")
    catalog = {
        "version": "1.0",
        "name": "cache test",
        "catalog": [
            {
                "id": "ds",
                "index": f"{ROOT}idx/",
                "title": "a past and a current year",
                "start": f"{PAST}-01-01T00:00:00Z",
                "stop": f"{THIS_YEAR}-12-31T00:00:00Z",
            }
        ],
    }
    fs.pipe_file("helio-cache/catalog.json", json.dumps(catalog).encode())
    fs.pipe_file(f"helio-cache/idx/ds_{PAST}.csv", _index(PAST, 500))
    fs.pipe_file(f"helio-cache/idx/ds_{THIS_YEAR}.csv", _index(THIS_YEAR, 20))
    return fs


def _options(s3, proxy, **extra):
    return {**s3.storage_options, "endpoint_url": proxy.endpoint_url, **extra}


def _read(so, **kw) -> pd.DataFrame:
    return ih.open_bucket(ROOT, so, **kw)["ds"].files()


def _requests(proxy, name: str) -> int:
    return proxy.stats["by_key"].get(f"/helio-cache/{name}", {}).get("requests", 0)


def _entries(cache) -> list:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_a_second_read_fetches_no_body_and_revalidates(s3, bucket_files, proxy, cache):
    so = _options(s3, proxy)
    first = _read(so)
    assert len(first) == 520
    assert proxy.stats["body_bytes"] > len(_index(PAST, 500))
    assert len(_entries(cache)) == 3  # catalog.json and two years
    proxy.reset_stats()
    second = _read(so)
    pd.testing.assert_frame_equal(first, second)
    stats = proxy.stats
    assert stats["body_bytes"] == 0  # no body fetched again
    assert _requests(proxy, "catalog.json") == 1  # revalidated (HEAD)
    assert _requests(proxy, f"idx/ds_{THIS_YEAR}.csv") == 1
    assert _requests(proxy, f"idx/ds_{PAST}.csv") == 1


def test_a_changed_current_year_is_fetched_again(s3, bucket_files, proxy, cache):
    so = _options(s3, proxy)
    _read(so)
    bucket_files.pipe_file(f"helio-cache/idx/ds_{THIS_YEAR}.csv", _index(THIS_YEAR, 30, "b"))
    proxy.reset_stats()
    df = _read(so)
    assert len(df) == 530 and df["datakey"].str.contains("/b/").sum() == 30
    assert proxy.stats["body_bytes"] == len(_index(THIS_YEAR, 30, "b"))  # that file only
    assert _requests(proxy, f"idx/ds_{THIS_YEAR}.csv") == 2  # HEAD, then GET
    assert _requests(proxy, f"idx/ds_{PAST}.csv") == 1  # HEAD only


def test_trusted_past_years_need_no_request_at_all(s3, bucket_files, proxy, cache):
    so = _options(s3, proxy)
    with dask.config.set({"intake_helio.cache.trust-past-years": True}):
        _read(so)
        proxy.reset_stats()
        assert len(_read(so)) == 520
    assert _requests(proxy, f"idx/ds_{PAST}.csv") == 0
    assert _requests(proxy, f"idx/ds_{THIS_YEAR}.csv") == 1  # the current year: revalidated
    assert _requests(proxy, "catalog.json") == 1
    assert proxy.stats["body_bytes"] == 0


@pytest.mark.parametrize("how", ["argument", "config"])
def test_cache_off_always_fetches(s3, bucket_files, proxy, cache, how):
    so = _options(s3, proxy)
    kw = {"cache": False} if how == "argument" else {}
    with dask.config.set({"intake_helio.cache.enabled": how != "config"}):
        for _ in range(2):
            proxy.reset_stats()
            assert len(_read(so, **kw)) == 520
            assert proxy.stats["body_bytes"] > len(_index(PAST, 500))
            assert _requests(proxy, "catalog.json") == 1  # one GET each, no HEAD
            assert _requests(proxy, f"idx/ds_{PAST}.csv") == 1
    assert _entries(cache) == []


def test_a_registry_opened_without_cache_gives_buckets_without_cache(s3, bucket_files, cache):
    reg_obj = {"version": "1.0", "registry": [{"endpoint": ROOT, "name": "c"}]}
    bucket_files.pipe_file("helio-cache/reg.json", json.dumps(reg_obj).encode())
    reg = ih.open_registry(f"{ROOT}reg.json", s3.storage_options, cache=False)
    assert len(reg.open_bucket("c")["ds"].files()) == 520
    assert _entries(cache) == []


def test_no_credentials_in_cache_paths_or_files(s3, bucket_files, cache, tmp_path):
    # moto accepts any key: the canary is a real, working credential here
    so = {"endpoint_url": s3.endpoint_url, "key": CANARY_KEY, "secret": CANARY_SECRET}
    assert len(_read(so)) == 520
    files = _entries(cache)
    assert len(files) == 3
    for p in cache.rglob("*"):
        text = str(p)
        assert CANARY_KEY not in text and CANARY_SECRET not in text
        if p.is_file():
            body = p.read_bytes()
            assert CANARY_KEY.encode() not in body and CANARY_SECRET.encode() not in body
            assert os.stat(p).st_mode & 0o077 == 0  # private to the user


def test_two_endpoints_never_share_an_entry(s3, bucket_files, cache):
    a = FaultProxy(s3.endpoint_url, max_seconds=120).start()
    b = FaultProxy(s3.endpoint_url, max_seconds=120).start()
    try:
        _read(_options(s3, a))
        _read(_options(s3, b))
        assert len(_entries(cache)) == 6
        b.reset_stats()
        _read(_options(s3, b))
        assert b.stats["body_bytes"] == 0
    finally:
        a.stop()
        b.stop()
    url = f"{ROOT}catalog.json"
    assert entry_path(url, {"endpoint_url": "http://h:1"}) != entry_path(
        url, {"endpoint_url": "http://h:2"}
    )


def test_a_damaged_entry_is_fetched_again(s3, bucket_files, proxy, cache):
    so = _options(s3, proxy)
    _read(so)
    for p in _entries(cache):
        p.write_bytes(p.read_bytes()[:-5])  # truncated
    proxy.reset_stats()
    assert len(_read(so)) == 520
    assert proxy.stats["body_bytes"] > len(_index(PAST, 500))


def test_clear_cache(s3, bucket_files, cache):
    _read(s3.storage_options)
    assert cache_dir() == cache
    assert ih.clear_cache() == 3
    assert _entries(cache) == []
    assert ih.clear_cache() == 0


def test_an_unresolvable_registry_host_names_the_url():
    url = "http://nonexistent.invalid/x.json"
    with pytest.raises(ih.HelioError) as info:
        ih.open_registry(url)
    assert url in str(info.value)
    assert "cannot be reached" in str(info.value)
    assert isinstance(info.value, OSError)
    assert info.value.__cause__ is not None
    assert "aiohttp" not in type(info.value).__module__


# ----------------------------------------------------------------------------- a user's cluster
def test_irradiance_on_an_existing_scheduler(s3_server, tmp_path, cache):
    distributed = pytest.importorskip("distributed")
    from intake_helio.app.cli import main
    from intake_helio.testing.demo_data import write_demo_dataset

    s3_server.reset()
    data = write_demo_dataset(
        "s3://helio-demo/", s3_server.storage_options, frames=12, size=64, corrupt=0
    )
    with (
        loopback_cluster(workers=2) as cluster,
        distributed.Client(cluster.scheduler_address) as watcher,
    ):
        watcher.wait_for_workers(2, timeout=60)
        code = main(
            demo_job_argv(
                "irradiance",
                data,
                tmp_path / "out",
                "--scheduler-address",
                cluster.scheduler_address,
                endpoint_url=s3_server.endpoint_url,
                key=s3_server.key,
                secret=s3_server.secret,
                cluster=None,
            )
        )
        assert code == 0
        table = pd.read_csv(tmp_path / "out" / "irradiance.csv")
        np.testing.assert_allclose(table["irradiance"], data.expected_rate, rtol=1e-6)
        # the job ran its tasks there and closed its own client only
        prefixes = watcher.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.task_prefixes)
        )
        assert prefixes
        clients = watcher.run_on_scheduler(
            lambda dask_scheduler: [c for c in dask_scheduler.clients if c != "fire-and-forget"]
        )
        assert clients == [watcher.id]
        # the scheduler still answers, with its workers
        assert len(scheduler_workers(watcher)) == 2
        assert watcher.submit(sum, [1, 2]).result(timeout=30) == 3
    s3_server.reset()

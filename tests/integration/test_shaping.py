"""Cloud-shaped networking through FaultProxy in front of the real local S3 server (moto).

Latency, a bandwidth cap per connection and S3's ``503 SlowDown`` above a request rate,
measured with raw clients (presigned URLs that point at the proxy) and through the whole
reader: ``ih.irradiance`` loses no frame when the proxy throttles it.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import statistics
import threading
import time
from urllib.parse import urlsplit

import dask
import numpy as np
import pytest
import requests

import intake_helio as ih
from intake_helio.testing.fault_proxy import FaultProxy
from intake_helio.testing.proxy_process import ProxyProcess
from intake_helio.testing.shaping import Shaper, Shaping

BUCKET = "shaping-test"
BIG = f"{BUCKET}/big.bin"
TINY = f"{BUCKET}/tiny.txt"
MB = 10**6


@pytest.fixture
def data(s3):
    payload = os.urandom(2 * MB)
    fs = s3.filesystem()
    fs.mkdir(BUCKET)
    fs.pipe({BIG: payload, TINY: b"x"})
    return payload


@pytest.fixture
def make_proxy(s3):
    proxies = []

    def make(shaping=None, **kwargs) -> FaultProxy:
        proxy = FaultProxy(s3.endpoint_url, shaping=shaping, max_seconds=120, **kwargs).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


def url_via(s3, proxy, path: str) -> str:
    """A presigned GET URL for ``path`` on the local server, pointing at ``proxy``."""
    url = s3.filesystem().url(path, expires=600)
    return proxy.endpoint_url + url[len(s3.endpoint_url) :]


def first_byte_seconds(url: str) -> float:
    """Seconds from sending a GET to having its status line and headers (body not read)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.connect()
        t0 = time.perf_counter()
        conn.request("GET", f"{u.path}?{u.query}")
        resp = conn.getresponse()
        elapsed = time.perf_counter() - t0
        assert resp.status == 200
        resp.read()
        return elapsed
    finally:
        conn.close()


# ---------------------------------------------------------------------- latency
def test_first_bytes_come_after_the_latency(s3, data, make_proxy):
    plain = make_proxy()
    base = statistics.median(first_byte_seconds(url_via(s3, plain, TINY)) for _ in range(3))
    shaped = make_proxy(Shaping(latency=0.15))
    got = [first_byte_seconds(url_via(s3, shaped, TINY)) for _ in range(3)]
    assert min(got) >= 0.15 - 0.005, got
    # the upstream's own time is within the latency, not added to it (generous: busy CI)
    assert statistics.median(got) <= 0.15 + base + 0.3, (got, base)
    # errors made up by the proxy wait too (a GET without credentials is refused: 403)
    t0 = time.perf_counter()
    assert requests.get(f"{shaped.endpoint_url}/{TINY}", timeout=10).status_code == 403
    assert time.perf_counter() - t0 >= 0.145


def test_latency_distribution_is_seeded_and_bounded():
    stop = threading.Event()

    def draws(seed: int) -> list[float]:
        shaper = Shaper(Shaping(latency=0.05, latency_sigma=0.8, latency_max=0.3, seed=seed), stop)
        return [shaper.admit(0.0)[1] for _ in range(2000)]

    a, b, c = draws(1), draws(1), draws(2)
    assert a == b and a != c
    assert min(a) > 0 and max(a) == 0.3  # the bound is reached, never passed
    assert 0.045 <= statistics.median(a) <= 0.055
    assert len(set(a)) > 1000  # a distribution, not a constant


def test_bad_shaping_values_name_the_value():
    for kwargs in ({"latency": -1}, {"bandwidth": 0}, {"rate": float("nan")}, {"burst": 0.5}):
        with pytest.raises(ValueError) as info:
            Shaping(**kwargs)
        assert repr(next(iter(kwargs.values())))[:3] in str(info.value)
    with pytest.raises(TypeError):
        Shaping(latency="50ms")
    assert isinstance(Shaping(latency=0.05).describe(), str)


# ---------------------------------------------------------------------- bandwidth
def test_bandwidth_is_capped_per_connection(s3, data, make_proxy):
    proxy = make_proxy(Shaping(bandwidth=4 * MB))
    url = url_via(s3, proxy, BIG)
    t0 = time.perf_counter()
    assert requests.get(url, timeout=30).content == data
    one = time.perf_counter() - t0
    assert one >= 0.5 - 0.02, one  # 2 MB at 4 MB/s
    assert proxy.stats["body_bytes"] == len(data)

    # two connections at once: each gets the full rate (2 MB at 2 MB/s: ~1 s, not 2 s)
    proxy.set_shaping(Shaping(bandwidth=2 * MB))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        bodies = list(pool.map(lambda u: requests.get(u, timeout=30).content, [url, url]))
        both = time.perf_counter() - t0
    assert bodies == [data, data]
    assert 1.0 - 0.02 <= both < 1.8, both


# ---------------------------------------------------------------------- rate limit
def test_a_burst_above_the_rate_gets_slowdown(s3, data, make_proxy):
    proxy = make_proxy(Shaping(rate=5, burst=3))
    url = url_via(s3, proxy, TINY)
    t0 = time.perf_counter()
    with requests.Session() as session:
        answers = [session.get(url, timeout=10) for _ in range(60)]
    elapsed = time.perf_counter() - t0
    codes = [r.status_code for r in answers]
    slow = [r for r in answers if r.status_code == 503]
    assert set(codes) == {200, 503}
    assert all("<Code>SlowDown</Code>" in r.text for r in slow)
    assert all(r.headers["Content-Type"] == "application/xml" for r in slow)
    assert codes.count(200) <= 3 + 5 * elapsed + 1  # the bucket, plus what it refilled
    stats = proxy.stats
    assert stats["throttled"] == len(slow) and stats["faults"] == 0
    assert stats["by_key"][f"/{TINY}"]["throttled"] == len(slow)
    assert stats["forwarded"] == codes.count(200)

    # bounded: at most max_throttled answers, then requests pass
    proxy.set_shaping(Shaping(rate=1, burst=1, max_throttled=3))
    proxy.reset_stats()
    with requests.Session() as session:
        codes = [session.get(url, timeout=10).status_code for _ in range(10)]
    assert codes.count(503) == 3 and proxy.stats["throttled"] == 3


# ---------------------------------------------------------------------- child process
def test_proxy_process_shapes_and_reports(s3, data):
    with ProxyProcess(s3.endpoint_url, Shaping(latency=0.1)) as proxy:
        assert urlsplit(proxy.endpoint_url).hostname == "127.0.0.1"
        assert first_byte_seconds(url_via(s3, proxy, TINY)) >= 0.095
        proxy.set_shaping(Shaping(rate=1, burst=1))
        proxy.reset_stats()
        with requests.Session() as session:
            codes = [
                session.get(url_via(s3, proxy, TINY), timeout=10).status_code for _ in range(5)
            ]
        assert proxy.stats["throttled"] == codes.count(503) >= 3
        pid = proxy.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ---------------------------------------------------------------------- the reader
def test_irradiance_through_a_throttled_shaped_network_loses_no_frame(s3, make_proxy):
    from intake_helio.testing.demo_data import write_demo_dataset

    demo = write_demo_dataset("s3://shaped-demo/", s3.storage_options, frames=6, size=64, corrupt=0)

    def run(so):
        ds = ih.open_bucket(demo.root, so)[demo.dataset_id]
        frames = ds.to_dataarray(demo.start, demo.stop, on_error="nan", storage_options=so)
        with dask.config.set(scheduler="threads", num_workers=4):
            return ih.irradiance(frames, progress=False, part_size=2)

    plain = run(s3.storage_options)
    shaping = Shaping(latency=0.02, bandwidth=2 * MB, rate=5, burst=1, max_throttled=200)
    proxy = make_proxy(shaping)
    shaped = run({**s3.storage_options, "endpoint_url": proxy.endpoint_url})

    assert list(shaped["status"].values) == ["ok"] * 6
    np.testing.assert_array_equal(shaped["irradiance"].values, plain["irradiance"].values)
    np.testing.assert_allclose(shaped["irradiance"].values, demo.expected_mean, rtol=1e-6)
    stats = proxy.stats
    assert stats["throttled"] >= 1, stats  # SlowDowns were answered, and retried
    assert stats["throttled"] < 200  # retries succeeded before the bound let them through
    fits_keys = [k for k in stats["by_key"] if k.endswith(".fits")]
    assert len(fits_keys) == 6

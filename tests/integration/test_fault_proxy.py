"""FaultProxy in front of the real local S3 server (moto): pass-through and each fault kind.

Raw clients (``requests``, ``http.client``) use presigned URLs that point at the proxy, so
they see exactly what the proxy sends. The s3fs tests pin what s3fs/botocore do by
themselves on each fault, which the frame reader's retry layer relies on.
"""

from __future__ import annotations

import errno
import http.client
import os
import time
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests
import s3fs

from intake_helio.testing.fault_proxy import FaultProxy, FaultRule

BUCKET = "fault-proxy-test"
KEY = f"{BUCKET}/dir/frame.bin"
OTHER = f"{BUCKET}/dir/other.bin"
SIZE = 2**20 + 17


@pytest.fixture
def data(s3):
    """Two objects on the local server, written directly (not through the proxy)."""
    payload = os.urandom(SIZE)
    fs = s3.filesystem()
    fs.mkdir(BUCKET)
    fs.pipe({KEY: payload, OTHER: payload[::-1]})
    return payload


@pytest.fixture
def make_proxy(s3):
    proxies = []

    def make(rules=(), **kwargs) -> FaultProxy:
        proxy = FaultProxy(s3.endpoint_url, rules, **kwargs).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


def proxied_fs(s3, proxy: FaultProxy, retries: int = 5, config=None) -> s3fs.S3FileSystem:
    """A fresh s3fs client that reaches the local server through ``proxy``."""
    opts = {**s3.storage_options, "endpoint_url": proxy.endpoint_url}
    fs = s3fs.S3FileSystem(skip_instance_cache=True, config_kwargs=config or {}, **opts)
    fs.retries = retries  # a class attribute in s3fs, not an __init__ option
    return fs


def presigned(s3, proxy: FaultProxy | None, path: str) -> str:
    """A presigned GET URL for ``path`` that points at ``proxy`` (path + query if None)."""
    url = s3.filesystem().url(path, expires=600)
    assert url.startswith(s3.endpoint_url + "/")
    tail = url[len(s3.endpoint_url) :]
    return tail if proxy is None else proxy.endpoint_url + tail


# botocore: "total_max_attempts" counts the first attempt ("max_attempts" counts only retries)
NO_BOTO_RETRY = {"retries": {"total_max_attempts": 1, "mode": "standard"}}


# ---------------------------------------------------------------------- pass-through
def test_passthrough_put_list_get_range(s3, make_proxy):
    proxy = make_proxy()
    assert urlsplit(proxy.endpoint_url).hostname == "127.0.0.1"
    fs = proxied_fs(s3, proxy)
    direct = s3.filesystem()
    big = os.urandom(14 * 2**20 + 3)
    fs.mkdir(BUCKET)
    # 14 MB through a multipart upload (POST ?uploads, PUT ?partNumber=..., POST ?uploadId=...)
    with fs.open(f"{BUCKET}/a/big.bin", "wb", block_size=5 * 2**20) as f:
        f.write(big)
    fs.pipe(f"{BUCKET}/a/small.txt", b"hello")
    assert direct.cat(f"{BUCKET}/a/big.bin") == big
    assert fs.ls(f"{BUCKET}/a", detail=False) == direct.ls(f"{BUCKET}/a", detail=False)
    assert sorted(fs.find(BUCKET)) == [f"{BUCKET}/a/big.bin", f"{BUCKET}/a/small.txt"]
    assert fs.info(f"{BUCKET}/a/big.bin")["size"] == len(big)
    assert fs.cat(f"{BUCKET}/a/big.bin") == big
    assert (
        fs.cat_file(f"{BUCKET}/a/big.bin", start=5_000_000, end=5_000_100)
        == big[5_000_000:5_000_100]
    )
    with fs.open(f"{BUCKET}/a/big.bin", block_size=2**20) as f:
        f.seek(9_999_999)
        assert f.read(1000) == big[9_999_999:10_000_999]
    # concurrent ranged reads of one object
    ranges = [(i * 2**20, (i + 1) * 2**20) for i in range(14)]
    paths = [f"{BUCKET}/a/big.bin"] * len(ranges)
    got = fs.cat_ranges(paths, [r[0] for r in ranges], [r[1] for r in ranges])
    assert b"".join(got) == big[: 14 * 2**20]
    fs.rm(f"{BUCKET}/a/small.txt")
    assert not s3.filesystem().exists(f"{BUCKET}/a/small.txt")

    stats = proxy.stats
    assert stats["faults"] == 0 and stats["refused"] == 0 and stats["unsigned"] == 0
    assert stats["forwarded"] == stats["requests"] > 20
    assert stats["by_key"][f"/{BUCKET}/a/big.bin"]["requests"] >= 14 + 3


# ---------------------------------------------------------------------- status
def test_status_503_times_2_then_200(s3, data, make_proxy):
    proxy = make_proxy([FaultRule("status", status=503, code="SlowDown", match="frame", times=2)])
    url = presigned(s3, proxy, KEY)
    with requests.Session() as session:
        first = session.get(url, timeout=10)
        assert first.status_code == 503
        assert "<Code>SlowDown</Code>" in first.text
        assert first.headers["Content-Type"] == "application/xml"
        assert session.get(url, timeout=10).status_code == 503
        third = session.get(url, timeout=10)
        assert third.status_code == 200 and third.content == data
        # another key is never affected
        assert session.get(presigned(s3, proxy, OTHER), timeout=10).content == data[::-1]
    stats = proxy.stats
    assert (stats["faults"], stats["status"], stats["forwarded"]) == (2, 2, 2)
    per_key = stats["by_key"][f"/{KEY}"]
    assert (per_key["requests"], per_key["faults"], per_key["status"]) == (3, 2, 2)
    assert [e["status"] for e in proxy.fault_log] == [503, 503]
    assert stats["unsigned"] == 0  # presigned (SigV2 query) requests count as signed
    assert requests.get(f"{proxy.endpoint_url}/{KEY}", timeout=10).status_code == 403
    assert proxy.stats["unsigned"] == 1

    proxy.reset_stats()
    proxy.set_rules([FaultRule("status", status=500, code="InternalError", methods=("HEAD",))])
    head = requests.head(url, timeout=10)
    assert head.status_code == 500 and head.headers["Content-Length"] == "0"
    assert requests.get(url, timeout=10).status_code == 200  # GET is not in methods
    assert proxy.stats["requests"] == 2 and proxy.stats["faults"] == 1


# ---------------------------------------------------------------------- reset
def test_reset_gives_connection_error(s3, data, make_proxy):
    proxy = make_proxy([FaultRule("reset", match=r"frame\.bin$", times=1)])
    url = presigned(s3, proxy, KEY)
    with pytest.raises(requests.ConnectionError) as info:
        requests.get(url, timeout=10)
    assert isinstance(info.value.__context__ or info.value.args[0], Exception)
    assert requests.get(url, timeout=10).content == data
    assert proxy.stats["reset"] == 1 and proxy.stats["forwarded"] == 1


# ---------------------------------------------------------------------- truncate
def test_truncate_sends_full_length_but_short_body(s3, data, make_proxy):
    proxy = make_proxy([FaultRule("truncate", fraction=0.25, match="frame")])
    url = urlsplit(presigned(s3, proxy, KEY))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("GET", f"{url.path}?{url.query}")
        resp = conn.getresponse()
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) == SIZE
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    finally:
        conn.close()
    assert len(info.value.partial) == int(SIZE * 0.25)
    assert info.value.partial == data[: int(SIZE * 0.25)]
    assert proxy.stats["truncate"] == 1


# ---------------------------------------------------------------------- stall
def test_stall_times_out_client_then_answers_after_delay(s3, data, make_proxy):
    proxy = make_proxy([FaultRule("stall", delay=2.0, match="frame", times=1)])
    url = presigned(s3, proxy, KEY)
    first = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, timeout=(5, 0.5))
    assert proxy.stats["stall"] == 1

    proxy.set_rules([FaultRule("stall", delay=0.4, match="frame")])
    start = time.monotonic()
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200 and resp.content == data
    assert time.monotonic() - start >= 0.4
    # past the first stall's 2 s: the proxy noticed that client gave up and never forwarded it
    time.sleep(max(0.0, first + 2.5 - time.monotonic()))
    assert proxy.stats["forwarded"] == 1 and proxy.stats["stall"] == 2


# ---------------------------------------------------------------------- seeded rate
def _pattern(s3, proxy: FaultProxy) -> list[int]:
    s3.filesystem().pipe(f"{BUCKET}/tiny.txt", b"x")
    url = presigned(s3, proxy, f"{BUCKET}/tiny.txt")
    with requests.Session() as session:
        return [session.get(url, timeout=10).status_code for _ in range(20)]


def test_rate_is_reproducible_with_seed(s3, data, make_proxy):
    rule = FaultRule("status", status=503, code="SlowDown", rate=0.5)
    first = make_proxy([rule], seed=7)
    a = _pattern(s3, first)
    b = _pattern(s3, make_proxy([rule], seed=7))
    c = _pattern(s3, make_proxy([rule], seed=8))
    assert a == b
    assert a != c
    assert 3 <= a.count(503) <= 17 and set(a) == {200, 503}
    assert first.stats["faults"] == a.count(503)
    assert [e["request"] for e in first.fault_log] == [i + 1 for i, s in enumerate(a) if s == 503]


# ---------------------------------------------------------------------- bounds
def test_max_requests_stops_the_proxy(s3, data, make_proxy, caplog):
    proxy = make_proxy(max_requests=3)
    url = presigned(s3, proxy, KEY)
    for _ in range(3):
        assert requests.get(url, timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    deadline = time.monotonic() + 5
    while proxy.serving and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not proxy.serving
    assert proxy.stats["requests"] == 3
    assert sum("max_requests=3" in r.getMessage() for r in caplog.records) == 1


def test_max_seconds_stops_the_proxy(s3, data, make_proxy):
    tail = presigned(s3, None, KEY)
    proxy = make_proxy(max_seconds=2)
    url = proxy.endpoint_url + tail
    assert requests.get(url, timeout=10).status_code == 200
    deadline = time.monotonic() + 5
    while proxy.serving and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not proxy.serving
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)


# ---------------------------------------------------------------------- s3fs behaviour
def test_s3fs_retries_transient_slowdown_by_itself(s3, data, make_proxy):
    proxy = make_proxy([FaultRule("status", status=503, code="SlowDown", match="frame", times=2)])
    fs = proxied_fs(s3, proxy, retries=3, config=NO_BOTO_RETRY)
    assert fs.cat_file(KEY, start=0, end=1000) == data[:1000]
    assert proxy.stats["faults"] == 2 and proxy.stats["forwarded"] == 1


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # s3fs' own loop retries SlowDown (and only the message-matched 503s) `retries` times
        (FaultRule("status", status=503, code="SlowDown"), (OSError, errno.EBUSY, 3)),
        # 500 and 503 ServiceUnavailable are left to botocore: one request when it does not retry
        (FaultRule("status", status=500, code="InternalError"), (OSError, errno.EREMOTEIO, 1)),
        (FaultRule("status", status=503, code="ServiceUnavailable"), (OSError, errno.EBUSY, 1)),
        # a short body is retried by s3fs, then the raw aiohttp error surfaces (not an OSError)
        (FaultRule("truncate", fraction=0.5), (aiohttp.ClientPayloadError, None, 3)),
    ],
    ids=["slowdown", "internalerror", "serviceunavailable", "truncate"],
)
def test_s3fs_error_surface_on_permanent_faults(s3, data, make_proxy, rule, expected):
    exc_type, code, requests_seen = expected
    proxy = make_proxy([rule])
    fs = proxied_fs(s3, proxy, retries=3, config=NO_BOTO_RETRY)
    with pytest.raises(exc_type) as info:
        fs.cat_file(KEY, start=0, end=500_000)
    if code is not None:
        assert info.value.errno == code
        assert not isinstance(info.value, FileNotFoundError)
    else:
        assert not isinstance(info.value, OSError)
    assert proxy.stats["requests"] == requests_seen


def test_s3fs_reset_surfaces_botocore_connection_error(s3, data, make_proxy):
    from botocore.exceptions import EndpointConnectionError

    proxy = make_proxy([FaultRule("reset")])
    fs = proxied_fs(s3, proxy, retries=3, config=NO_BOTO_RETRY)
    with pytest.raises(EndpointConnectionError):
        fs.cat_file(KEY, start=0, end=1000)
    # not retried by s3fs; aiohttp may retry an idempotent request once on its own
    assert 1 <= proxy.stats["requests"] <= 2


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "explode"},
        {"kind": "status", "status": 200},
        {"kind": "truncate", "fraction": 1.0},
        {"kind": "status", "rate": 1.5},
        {"kind": "status", "match": "("},
        {"kind": "status", "times": -1},
    ],
)
def test_rule_validation_names_the_bad_value(kwargs):
    with pytest.raises(ValueError) as info:
        FaultRule(**kwargs)
    bad = [v for k, v in kwargs.items() if k != "kind"] or [kwargs["kind"]]
    assert repr(bad[0]) in str(info.value)


def test_s3fs_read_timeout_is_retried_by_two_nested_loops(s3, data, make_proxy):
    from botocore.exceptions import ReadTimeoutError

    proxy = make_proxy([FaultRule("stall", delay=2.0)])
    config = {**NO_BOTO_RETRY, "read_timeout": 0.3, "connect_timeout": 2}
    fs = proxied_fs(s3, proxy, retries=2, config=config)
    with pytest.raises(ReadTimeoutError) as info:
        fs.cat_file(KEY, start=0, end=1000)
    assert isinstance(info.value, OSError)  # via requests' ReadTimeout base class
    # s3fs retries timeouts in _call_s3 and again around the body read: retries**2 requests
    assert proxy.stats["requests"] == proxy.stats["stall"] == 4

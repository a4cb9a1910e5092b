"""Whole-file reads of large files as concurrent ranged requests (issue 17).

A frame of known size (the index's ``filesize``) larger than ``read-part-bytes`` is
fetched as several ranged GETs (of at most that size) at once, so one connection's
bandwidth does not bound it.
Checked against the real local S3 server through the shaping proxy (which caps each
connection's bandwidth and counts requests) and a real http server that ignores ``Range``.
"""

from __future__ import annotations

import os
import time

import dask
import numpy as np
import pytest

import intake_helio as ih
from intake_helio.base.errors import FrameReadError
from intake_helio.base.settings import current
from intake_helio.fits.source import _Source, start_whole_read
from intake_helio.io.transport import ConnectionRate, connection_rate, filesystem
from intake_helio.testing.fault_proxy import FaultProxy
from intake_helio.testing.http_server import LocalHTTP
from intake_helio.testing.shaping import Shaping

BUCKET = "split-reads"
MB = 10**6
PART = 256 * 1024


@pytest.fixture
def big(s3):
    payload = os.urandom(2 * MB + 12345)
    fs = s3.filesystem()
    fs.mkdir(BUCKET)
    fs.pipe({f"{BUCKET}/big.bin": payload})
    return payload


def _whole(so, key, filesize, part=PART, split_below=0):
    config = {"intake_helio.read-part-bytes": part, "intake_helio.split-below-mbps": split_below}
    with dask.config.set(config):
        settings = current()
    fs, path = filesystem(key, so)
    fut = start_whole_read(fs, path, filesize, settings=settings)
    assert fut is not None
    return fut.result(), settings


def test_a_large_file_comes_in_concurrent_ranges_byte_for_byte(s3, big, proxy):
    so = {**s3.storage_options, "endpoint_url": proxy.endpoint_url}
    body, _ = _whole(so, f"s3://{BUCKET}/big.bin", len(big))
    assert body.data == big and not body.more
    requests = proxy.stats["by_key"][f"/{BUCKET}/big.bin"]["requests"]
    assert requests == 8, requests  # 7 full ranges of 256 KiB and the last 173 KiB

    before = proxy.stats["requests"]
    body, _ = _whole(so, f"s3://{BUCKET}/big.bin", len(big), part=0)  # 0: one request
    assert body.data == big and proxy.stats["requests"] - before == 1


def test_split_ranges_beat_one_connections_bandwidth(s3, big):
    with FaultProxy(s3.endpoint_url, shaping=Shaping(bandwidth=2 * MB), max_seconds=120) as p:
        so = {**s3.storage_options, "endpoint_url": p.endpoint_url}
        key = f"s3://{BUCKET}/big.bin"
        t0 = time.perf_counter()
        one, _ = _whole(so, key, len(big), part=0)
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        split, _ = _whole(so, key, len(big), part=512 * 1024)
        t_split = time.perf_counter() - t0
    assert one.data == split.data == big
    assert t_one >= 1.0, t_one  # 2 MB at 2 MB/s on one connection
    assert t_split < 0.6 * t_one, (t_split, t_one)  # 4 connections at once


def test_ranges_are_used_once_one_connection_is_measured_slow(s3, big):
    key = f"s3://{BUCKET}/big.bin"
    with FaultProxy(s3.endpoint_url, shaping=Shaping(bandwidth=4 * MB), max_seconds=120) as p:
        so = {**s3.storage_options, "endpoint_url": p.endpoint_url, "skip_instance_cache": True}
        fs, path = filesystem(key, so)
        with dask.config.set({"intake_helio.read-part-bytes": PART}):
            settings = current()  # splits below 120 MB/s per connection (the default)
        counts = []
        for _ in range(3):
            before = p.stats["requests"]
            body = start_whole_read(fs, path, len(big), settings=settings).result()
            assert body.data == big
            counts.append(p.stats["requests"] - before)
        rate = connection_rate(fs).rate
    assert counts == [1, 8, 8], counts  # not measured yet: whole; then ~4 MB/s: ranges
    assert rate is not None and rate < 5 * MB, rate


def test_a_fast_connection_keeps_one_request_per_file():
    rate = ConnectionRate()
    assert rate.rate is None
    rate.observe(100_000, 0.001)  # small reads say nothing of the bandwidth
    assert rate.rate is None
    rate.observe(14 * MB, 0.03)  # a local server: 467 MB/s
    assert rate.rate == pytest.approx(14 * MB / 0.03)
    rate.observe(14 * MB, 0.2)  # 70 MB/s: the average moves towards it
    assert 70 * MB < rate.rate < 467 * MB and rate.samples == 2


def test_an_index_size_that_is_wrong_still_gives_the_file_or_its_limit(s3, big, proxy):
    so = {**s3.storage_options, "endpoint_url": proxy.endpoint_url}
    key = f"s3://{BUCKET}/big.bin"
    # the index says more than the object has: the ranges past its end fail, one whole read
    body, _ = _whole(so, key, len(big) + 3 * PART)
    assert body.data == big and not body.more
    # the index says less (beyond the slack): the read stops at the limit, as a whole read does
    with dask.config.set({"intake_helio.filesize-slack": 0}):
        body, settings = _whole(so, key, len(big) - PART)  # 1,750,201 bytes
        assert body.more and len(body.data) == len(big) - PART
        fs, path = filesystem(key, so)
        with pytest.raises(FrameReadError, match="more than 1750201 bytes, past the index"):
            _Source(fs, path, settings, filesize=len(big) - PART).load_all()


def test_a_server_that_ignores_range_is_read_whole_once_more():
    payload = os.urandom(2 * MB)
    with LocalHTTP({"/f.bin": payload}) as web:  # it always answers 200 with the whole body
        body, _ = _whole({}, f"{web.url}/f.bin", len(payload))
        assert body.data == payload and not body.more
        gets = [r for r in web.requests if r.method == "GET"]
        assert len(gets) == 8 + 1, len(gets)  # 8 ranges, then 1 whole read


def test_irradiance_with_split_reads_equals_one_request_per_frame(s3):
    from intake_helio.testing.demo_data import write_demo_dataset

    demo = write_demo_dataset("s3://split-demo/", s3.storage_options, frames=6, size=256)
    so = s3.storage_options

    def run(part):
        with dask.config.set(
            {
                "intake_helio.read-part-bytes": part,
                "intake_helio.split-below-mbps": 0,
                "intake_helio.read-ahead": 2,
            },
            scheduler="threads",
            num_workers=2,
        ):
            ds = ih.open_bucket(demo.root, so)[demo.dataset_id]
            frames = ds.to_dataarray(demo.start, demo.stop, on_error="nan", storage_options=so)
            return ih.irradiance(frames, progress=False, part_size=3)

    one = run(0)
    split = run(16 * 1024)  # 256x256 int16 frames: several ranges each
    np.testing.assert_array_equal(split["irradiance"].values, one["irradiance"].values)
    assert list(split["status"].values) == list(one["status"].values)
    assert (one["status"] == "ok").sum() >= 5


def test_cutouts_of_a_task_are_read_several_at_once_through_latency(s3):
    from intake_helio.testing.demo_data import write_demo_dataset

    demo = write_demo_dataset(
        "s3://cutout-demo/", s3.storage_options, frames=8, size=256, corrupt=0
    )
    with FaultProxy(s3.endpoint_url, shaping=Shaping(latency=0.1), max_seconds=120) as p:
        so = {**s3.storage_options, "endpoint_url": p.endpoint_url}
        ds = ih.open_bucket(demo.root, so)[demo.dataset_id]

        def run(concurrency):
            with dask.config.set(
                {
                    "intake_helio.ranged-concurrency": concurrency,
                    "intake_helio.batch-size": 8,
                    # the header alone first: the demo's ~65 KB files would otherwise come
                    # whole with the default 64 KiB first read, cutout included
                    "intake_helio.header-read-size": 2880,
                },
                scheduler="sync",  # one task reads all 8 frames
            ):  # settings travel with the array: build it under them
                frames = ds.to_dataarray(
                    demo.start, demo.stop, cutout=dict(y=slice(100, 140)), storage_options=so
                )
                t0 = time.perf_counter()
                out = ih.map_frames(frames, ["mean", "max"], progress=False)
                return out, time.perf_counter() - t0

        before = p.stats["requests"]
        one, t_one = run(1)
        requests = p.stats["requests"] - before
        eight, t_eight = run(8)
    assert list(eight["status"].values) == ["ok"] * 8
    np.testing.assert_array_equal(eight["mean"].values, one["mean"].values)
    np.testing.assert_array_equal(eight["max"].values, one["max"].values)
    # frame after frame, 2 requests of >= 100 ms each (header, then the cutout's tiles)
    assert requests >= 16 and t_one >= 16 * 0.1, (requests, t_one)
    assert t_eight < t_one / 3, (t_eight, t_one)

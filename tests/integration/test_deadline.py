"""Every request has a total deadline: ``timeouts.allowance`` plus its bytes at ``min-rate``.

Real servers on 127.0.0.1 (moto S3, :class:`~intake_helio.testing.http_server.LocalHTTP`)
behind a :class:`~intake_helio.testing.fault_proxy.FaultProxy`:

- a server that trickles (one byte a second: never silent for the read timeout, never done)
  fails its frame with ``"read error"`` and the deadline's message, once and within the
  deadline, while the other frames of the array are valued (S3 and HTTP);
- a trickling catalog or index file fails with an intake-helio error naming the URL;
- a server that never answers is cut off once the allowance has passed;
- an honest read slower than the allowance but above ``min-rate`` completes (a body of
  known length and a streamed one); above the rate it would not.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager

import dask
import numpy as np
import pandas as pd
import pytest

import intake_helio as ih
import intake_helio.fits.frame as fits_frames
from intake_helio.base.settings import current
from intake_helio.catalog.fetch import StorageTimeoutError
from intake_helio.io.transport import Deadline, cat_bounded, filesystem
from intake_helio.testing.fault_proxy import FaultProxy, FaultRule, Shaping
from intake_helio.testing.http_server import Endless, LocalHTTP
from tests.builders import (
    astropy_mean,
    catalog_json,
    dataset_entry,
    good_frame,
    index_csv,
    make_rows,
)

pytestmark = pytest.mark.integration

BUCKET = "deadline"
ALLOWANCE = 2
MIN_RATE = "1 MB"  # a 32 x 32 frame (11520 bytes) then has 2.01 s
QUICK = {
    "intake_helio.timeouts.allowance": ALLOWANCE,
    "intake_helio.timeouts.min-rate": MIN_RATE,
    "intake_helio.retry.base-delay": 0.01,
}
DEADLINE_MESSAGE = (
    r"no complete response in 2\.\d s \(a 11520-byte body; deadline: intake_helio\.timeouts\."
    r"allowance=2 s \+ bytes / timeouts\.min-rate=1000000 B/s\); the server is too slow: "
    r"retry later or lower min-rate$"
)


def frame_list(keys, raws) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "start": pd.date_range("2020-01-01", periods=len(keys), freq="1min"),
            "datakey": list(keys),
            "filesize": np.array([len(r) for r in raws], dtype=np.int64),
        }
    )


@contextmanager
def proxy_for(upstream: str, rules=(), shaping=None, stop_after: float = 30):
    """A FaultProxy; stopped after ``stop_after`` s at the latest, so that a read the deadline
    does not cut off ends (with another error) instead of hanging for hours."""
    proxy = FaultProxy(upstream, rules, shaping=shaping, max_seconds=120).start()
    guard = threading.Timer(stop_after, proxy.stop)
    guard.daemon = True
    guard.start()
    try:
        yield proxy
    finally:
        guard.cancel()
        proxy.stop()


def publish(s3, files: dict[str, bytes]) -> list[str]:
    fs = s3.filesystem()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    fs.pipe({f"{BUCKET}/{name}": raw for name, raw in files.items()})
    return [f"s3://{BUCKET}/{name}" for name in files]


# ----------------------------------------------------------------------------- frames
@pytest.fixture(params=["s3", "http"])
def trickled_frames(request, s3):
    """Eight frames, the seventh (not among the frames probed for the shape) trickled one
    byte a second: ``(keys, raws, victim, proxy, storage_options)``."""
    raws = [good_frame(i) for i in range(8)]
    names = [f"f{i}.fits" for i in range(8)]
    rule = FaultRule("trickle", delay=1.0, match=re.escape(names[6]) + "$")
    if request.param == "s3":
        publish(s3, dict(zip(names, raws, strict=True)))
        with proxy_for(s3.endpoint_url, [rule]) as proxy:
            so = {**s3.storage_options, "endpoint_url": proxy.endpoint_url}
            yield [f"s3://{BUCKET}/{n}" for n in names], raws, names[6], proxy, so
    else:
        files = {f"/{BUCKET}/{n}": r for n, r in zip(names, raws, strict=True)}
        with LocalHTTP(files) as web, proxy_for(web.url, [rule]) as proxy:
            keys = [f"{proxy.endpoint_url}/{BUCKET}/{n}" for n in names]
            yield keys, raws, names[6], proxy, {}


def test_a_trickling_server_fails_its_frame_within_the_deadline(trickled_frames):
    keys, raws, victim, proxy, so = trickled_frames
    with dask.config.set({**QUICK, "scheduler": "threads", "num_workers": 4}):
        frames = ih.open_frames(frame_list(keys, raws), storage_options=so, on_error="nan")
        t0 = time.perf_counter()
        result = ih.irradiance(frames, progress=False)
        seconds = time.perf_counter() - t0
        settings = current()
    expected = ["read error" if k.endswith(victim) else "ok" for k in keys]
    assert list(result["status"].values) == expected
    good = np.array(expected) == "ok"
    want = [astropy_mean(r) for r, g in zip(raws, good, strict=True) if g]
    np.testing.assert_allclose(result["irradiance"].values[good], want, rtol=1e-6)
    # cut off after its 2.01 s, and not retried (4 attempts would take 4 x as long)
    assert ALLOWANCE <= seconds < ALLOWANCE + 3, seconds
    by_key = proxy.stats["by_key"]
    assert by_key[f"/{BUCKET}/{victim}"]["requests"] == 1, by_key
    assert proxy.stats["trickle"] == 1

    # read alone, the frame's error says what happened
    fs, path = filesystem(keys[6], so)
    t0 = time.perf_counter()
    with pytest.raises(ih.FrameReadError) as info:
        fits_frames.read_frame(fs, path, filesize=len(raws[6]), settings=settings)
    seconds = time.perf_counter() - t0
    err = info.value
    assert err.reason == ih.Reason.READ_ERROR == "read error"
    assert re.search(DEADLINE_MESSAGE, err.detail), err.detail
    assert err.detail.startswith("ReadDeadlineError: ") and victim in str(err)
    assert ALLOWANCE <= seconds < ALLOWANCE + 1.5, seconds
    assert isinstance(err.__cause__, ih.ReadDeadlineError)
    assert isinstance(err.__cause__.__cause__, TimeoutError)


def test_a_server_that_never_answers_is_cut_off_after_the_allowance(s3):
    """No response headers: the allowance alone (the 30 s read timeout never fires)."""
    (key,) = publish(s3, {"silent.fits": good_frame(0)})
    with proxy_for(s3.endpoint_url, [FaultRule("stall", delay=60)]) as proxy:
        so = {**s3.storage_options, "endpoint_url": proxy.endpoint_url}
        fs, path = filesystem(key, so)
        t0 = time.perf_counter()
        with pytest.raises(ih.ReadDeadlineError, match=r"in 1\.\d s \(0 bytes; .*allowance=1 s"):
            cat_bounded(fs, path, limit=1 << 20, deadline=Deadline(1, 1e6))
        seconds = time.perf_counter() - t0
    assert 1 <= seconds < 2.5, seconds


# ----------------------------------------------------------------------------- catalogs
def test_a_trickling_catalog_fails_naming_its_url():
    """A catalog.json sent without end, one byte a second: the streamed body is cut off
    once ``allowance + received / min-rate`` has passed."""
    with (
        LocalHTTP({"/slow/catalog.json": Endless()}) as web,
        proxy_for(web.url, [FaultRule("trickle", delay=1.0)]) as proxy,
        dask.config.set(QUICK),
    ):
        url = proxy.endpoint_url + "/slow/"
        t0 = time.perf_counter()
        with pytest.raises(StorageTimeoutError) as info:
            ih.open_bucket(url, cache=False)
        seconds = time.perf_counter() - t0
    message = str(info.value)
    assert message.startswith(f"bucket catalog {url}catalog.json did not complete within its")
    assert "intake_helio.timeouts.allowance=2 s" in message
    assert "timeouts.min-rate=1000000 bytes/s" in message
    assert "raise timeouts.allowance or lower timeouts.min-rate" in message
    assert isinstance(info.value, ih.HelioError) and isinstance(info.value, TimeoutError)
    assert ALLOWANCE <= seconds < ALLOWANCE + 1.5, seconds


def test_a_trickling_index_file_fails_naming_its_url(s3):
    fs = s3.filesystem()
    fs.mkdir(BUCKET)
    entry = dataset_entry("ds", index=f"s3://{BUCKET}/idx/")
    fs.pipe_file(f"{BUCKET}/catalog.json", catalog_json(f"s3://{BUCKET}/", [entry]).encode())
    fs.pipe_file(f"{BUCKET}/idx/ds_2020.csv", index_csv(make_rows("2020-03-01", 20)).encode())
    with (
        proxy_for(s3.endpoint_url, [FaultRule("trickle", delay=1.0, match=r"\.csv$")]) as proxy,
        dask.config.set(QUICK),
    ):
        so = {**s3.storage_options, "endpoint_url": proxy.endpoint_url}
        dataset = ih.open_bucket(f"s3://{BUCKET}/", so, cache=False)["ds"]
        t0 = time.perf_counter()
        with pytest.raises(StorageTimeoutError) as info:
            dataset.files("2020-03-01", "2020-03-02")
        seconds = time.perf_counter() - t0
        requests = proxy.stats["by_key"][f"/{BUCKET}/idx/ds_2020.csv"]["requests"]
    message = str(info.value)
    assert f"index file s3://{BUCKET}/idx/ds_2020.csv did not complete within" in message
    assert "timeouts.allowance=2 s" in message
    assert ALLOWANCE <= seconds < ALLOWANCE + 1.5, seconds
    assert requests == 1


# ----------------------------------------------------------------------------- honest reads
def test_an_honest_slow_frame_completes(s3):
    """A frame sent in 2 s, twice the allowance: at a min-rate of half its rate it is read
    (1 + 4 s allowed); at four times its rate it is cut off (1 + 0.5 s allowed)."""
    raw = good_frame(0, size=512)
    rate = len(raw) / 2  # bytes/s: the body takes 2 s
    (key,) = publish(s3, {"slow.fits": raw})
    with proxy_for(s3.endpoint_url, shaping=Shaping(bandwidth=rate)) as proxy:
        so = {**s3.storage_options, "endpoint_url": proxy.endpoint_url}
        fs, path = filesystem(key, so)
        got = {}
        for min_rate in (int(rate / 2), int(rate * 4)):
            config = {
                "intake_helio.timeouts.allowance": 1,
                "intake_helio.timeouts.min-rate": min_rate,
            }
            with dask.config.set(config):
                settings = current()
            t0 = time.perf_counter()
            try:
                data = fits_frames.read_frame(fs, path, filesize=len(raw), settings=settings)
                got[min_rate] = float(np.nanmean(data, dtype=np.float64))
            except ih.FrameReadError as exc:
                got[min_rate] = exc
            got[min_rate, "seconds"] = time.perf_counter() - t0
    slow, fast = int(rate / 2), int(rate * 4)
    assert got[slow] == pytest.approx(astropy_mean(raw), rel=1e-6)
    assert 1.8 < got[slow, "seconds"] < 4, got
    late = got[fast]
    assert isinstance(late, ih.FrameReadError) and late.reason == "read error", late
    assert f"a {len(raw)}-byte body" in late.detail, late.detail
    assert 1.4 < got[fast, "seconds"] < 1.9, got


def test_an_honest_slow_stream_is_not_cut_off():
    """A body without a length at 200 KB/s, read to 400 KB (2 s, twice the allowance):
    complete at a min-rate of 100 KB/s, cut off at 1 MB/s."""
    with (
        LocalHTTP({"/endless": Endless()}) as web,
        proxy_for(web.url, shaping=Shaping(bandwidth=200_000)) as proxy,
    ):
        fs, path = filesystem(proxy.endpoint_url + "/endless")
        t0 = time.perf_counter()
        body = cat_bounded(fs, path, limit=400_000, deadline=Deadline(1, 100_000))
        seconds = time.perf_counter() - t0
        assert (len(body.data), body.more) == (400_000, True)
        assert 1.5 < seconds < 4, seconds
        t0 = time.perf_counter()
        with pytest.raises(
            ih.ReadDeadlineError, match=r"in 1\.\d s \(\d+ bytes; .*min-rate=1000000 B/s"
        ):
            cat_bounded(fs, path, limit=400_000, deadline=Deadline(1, 1e6))
        assert time.perf_counter() - t0 < 1.8

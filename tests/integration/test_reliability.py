"""Faults and bad input never lose a frame: real S3 (moto), a FaultProxy, real clusters.

Frames are read back through :class:`~intake_helio.testing.fault_proxy.FaultProxy` on 127.0.0.1 with
the public path (``open_bucket`` -> ``to_dataarray(on_error="nan")`` -> ``irradiance``):

- transient faults (503 SlowDown, 500, resets, stalls past the read timeout, short bodies)
  are retried, by s3fs/botocore or by ``fits_frames.retry_io`` when those give up, and every
  frame gets exactly the generator's value; a fault that never ends gives a reason, after a
  bounded number of attempts;
- every kind of bad object gives its own reason, and the same reason as a FrameReadError
  that names the key when read with ``on_error="raise"``;
- a 403 AccessDenied is "permission denied" with the key named, never retried, and never
  retried anonymously (the proxy counts unsigned requests; ``anon=True`` is the control);
- a worker process SIGKILLed mid-run (local process cluster, dask-gateway cluster) changes
  no frame's value.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import signal
import threading
import time

import dask
import numpy as np
import psutil
import pytest
from astropy.io import fits

import intake_helio as ih
import intake_helio.fits.frame as fits_frames
import intake_helio.frames.tasks as tasks
from intake_helio.base.settings import current
from intake_helio.compute.batches import map_batch
from intake_helio.frames.spec import FrameSpec
from intake_helio.testing.aia import frame_bytes, make_aia_frame
from intake_helio.testing.demo_data import write_demo_dataset
from intake_helio.testing.fault_proxy import FaultProxy, FaultRule
from intake_helio.testing.local_s3 import LocalS3

FRAMES = 16
SIZE = 48
FITS_RE = r"\.fits$"
PACE = 0.25  # seconds each frame GET is held in the worker-loss tests
# a stall becomes a timeout quickly
FAST_TIMEOUTS = {
    "config_kwargs": {"read_timeout": 2, "connect_timeout": 2, "retries": {"max_attempts": 2}}
}
# botocore makes one attempt only ("total_max_attempts" counts the first one)
NO_BOTO_RETRY = {"config_kwargs": {"retries": {"total_max_attempts": 1, "mode": "standard"}}}
BAD = {
    2: "missing object",
    3: "empty file",
    4: "not FITS",
    5: "truncated",
    6: "no image HDU",
    7: "shape mismatch",
    8: "no EXPTIME",
}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def server():
    """A moto server of this module's own (child process): the ``s3`` fixture's resets
    of the shared server do not touch it. Holds a clean and a broken dataset."""
    with LocalS3(process=True) as s3:
        clean = write_demo_dataset(
            "s3://helio-reliable/", s3.storage_options, frames=FRAMES, size=SIZE, corrupt=0
        )
        broken = write_demo_dataset(
            "s3://helio-broken/", s3.storage_options, frames=FRAMES, size=SIZE, corrupt=0, seed=5
        )
        _break(s3.filesystem(), broken)
        yield s3, clean, broken


def _break(fs, demo) -> None:
    path = [k.split("://", 1)[1] for k in demo.datakeys]
    raw = fs.cat_file(path[0])
    fs.rm(path[2])
    fs.pipe_file(path[3], b"")
    fs.pipe_file(path[4], b"<html><body>503 Service Unavailable</body></html>\n" * 60)
    fs.pipe_file(path[5], raw[: len(raw) * 2 // 3])
    table = fits.BinTableHDU.from_columns([fits.Column("a", format="J", array=np.arange(8))])
    fs.pipe_file(path[6], frame_bytes(fits.HDUList([fits.PrimaryHDU(), table])))
    fs.pipe_file(path[7], frame_bytes(make_aia_frame(demo.times[7], size=SIZE // 2)))
    fs.pipe_file(path[8], without_exptime(fs.cat_file(path[8])))


def without_exptime(raw: bytes) -> bytes:
    """The file with its EXPTIME card turned into a COMMENT (pixels byte for byte the same)."""
    at = raw.index(b"EXPTIME =")
    assert at % 80 == 0 and raw.count(b"EXPTIME =") == 1
    return raw[:at] + b"COMMENT   EXPTIME removed".ljust(80) + raw[at + 80 :]


@pytest.fixture
def threads():
    """Compute with the threaded scheduler of this process (RETRY_STATS are this process's)."""
    with dask.config.set(scheduler="threads", num_workers=4):
        yield


@pytest.fixture
def proxy(server):
    made = []

    def make(rules=(), seed=0) -> FaultProxy:
        p = FaultProxy(server[0].endpoint_url, rules, seed=seed, max_seconds=300).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def options(server, proxy: FaultProxy, **extra) -> dict:
    return {**server[0].storage_options, "endpoint_url": proxy.endpoint_url, **extra}


def frames_of(demo, so):
    bucket = ih.open_bucket(demo.root, so)
    return bucket[demo.dataset_id].to_dataarray(
        demo.start, demo.stop, on_error="nan", storage_options=so
    )


def key_path(datakey: str) -> str:
    return "/" + datakey.split("://", 1)[1]


def per_key(proxy: FaultProxy, demo, field: str) -> list[int]:
    by_key = proxy.stats["by_key"]
    return [by_key.get(key_path(k), {}).get(field, 0) for k in demo.datakeys]


def astropy_means(server, demo) -> np.ndarray:
    """Every frame's NaN-aware mean as astropy reads it, straight from the server."""
    fs = server[0].filesystem()
    out = []
    for key in demo.datakeys:
        with fits.open(io.BytesIO(fs.cat_file(key.split("://", 1)[1]))) as hdul:
            out.append(np.nanmean(hdul[1].data, dtype=np.float64))
    return np.array(out)


# ----------------------------------------------------------------------------- transient
@pytest.fixture(scope="module")
def clean_run(server):
    """(result, requests per frame) of a run without faults through a pass-through proxy."""
    _, clean, _ = server
    with (
        dask.config.set(scheduler="threads", num_workers=4),
        FaultProxy(server[0].endpoint_url, max_seconds=300) as p,
    ):
        result = ih.irradiance(frames_of(clean, options(server, p)), progress=False, part_size=4)
        assert p.stats["faults"] == 0
        return result, per_key(p, clean, "requests")


def test_clean_run_through_the_proxy_equals_astropy(server, clean_run):
    _, clean, _ = server
    result, requests = clean_run
    assert list(result["status"].values) == ["ok"] * FRAMES
    np.testing.assert_array_equal(result["irradiance"].values, clean.expected_mean)
    np.testing.assert_allclose(result["irradiance"].values, astropy_means(server, clean), 1e-12)
    # one GET per frame; the first intake_helio.shape-probes (5) frames also have their
    # header probed when the frames are opened (the first one also by irradiance to choose
    # whole-file reads), one request each
    assert requests[5:] == [1] * (FRAMES - 5)
    assert requests[1:5] == [2] * 4
    assert 2 <= requests[0] <= 3


TRANSIENT = {
    "503-slowdown-burst": (
        [FaultRule("status", status=503, code="SlowDown", match=FITS_RE, rate=0.5, times=8)],
        {},
    ),
    "500-rate-0.2": (
        [FaultRule("status", status=500, code="InternalError", match=FITS_RE, rate=0.2)],
        {},
    ),
    "connection-reset": ([FaultRule("reset", match=FITS_RE, rate=0.3)], {}),
    "stall-past-read-timeout": (
        [FaultRule("stall", delay=4, match=FITS_RE, rate=0.5, times=2)],
        FAST_TIMEOUTS,
    ),
    "truncated-body": ([FaultRule("truncate", fraction=0.5, match=FITS_RE, rate=0.3)], {}),
}


@pytest.mark.parametrize("case", list(TRANSIENT))
def test_transient_faults_are_retried_and_every_frame_gets_its_value(
    server, proxy, threads, clean_run, case
):
    _, clean, _ = server
    rules, extra = TRANSIENT[case]
    p = proxy(rules, seed=11)
    result = ih.irradiance(frames_of(clean, options(server, p, **extra)), progress=False)

    assert list(result["status"].values) == ["ok"] * FRAMES
    np.testing.assert_array_equal(result["irradiance"].values, clean.expected_mean)
    faults = per_key(p, clean, "faults")
    requests = per_key(p, clean, "requests")
    assert sum(faults) >= 2, f"the seed injected too few faults to test anything: {faults}"
    # every fault was followed by exactly one more request for the same frame, and the
    # last request of each frame succeeded: the requests of the clean run, plus the faults
    assert requests == [c + f for c, f in zip(clean_run[1], faults, strict=True)]


@pytest.mark.parametrize(
    ("rule", "extra"),
    [
        # s3fs retries a short body 5 times, then raises aiohttp's ClientPayloadError
        (FaultRule("truncate", fraction=0.3, times=6), {}),
        # botocore does not retry; s3fs leaves a 500 to botocore
        (FaultRule("status", status=500, code="InternalError", times=2), NO_BOTO_RETRY),
        (FaultRule("reset", times=3), NO_BOTO_RETRY),
    ],
    ids=["truncate-beyond-s3fs", "500-without-botocore-retries", "reset-without-botocore"],
)
def test_retry_io_takes_over_when_s3fs_and_botocore_give_up(server, proxy, threads, rule, extra):
    _, clean, _ = server
    victim = clean.datakeys[5]
    rule = dataclasses.replace(rule, match=re.escape(key_path(victim)))
    p = proxy([rule])
    so = options(server, p, **extra)
    frames = frames_of(clean, so)
    before = dict(fits_frames.RETRY_STATS)
    result = ih.irradiance(frames, progress=False)
    assert list(result["status"].values) == ["ok"] * FRAMES
    np.testing.assert_array_equal(result["irradiance"].values, clean.expected_mean)
    assert p.stats["faults"] == rule.times
    assert fits_frames.RETRY_STATS["retried"] > before["retried"]
    assert fits_frames.RETRY_STATS["gave_up"] == before["gave_up"]


def test_a_fault_that_never_ends_gives_a_reason_after_bounded_attempts(server, proxy, threads):
    _, clean, _ = server
    victim = clean.datakeys[6]
    rule = FaultRule(
        "status", status=503, code="ServiceUnavailable", match=re.escape(key_path(victim))
    )
    p = proxy([rule])
    before = dict(fits_frames.RETRY_STATS)
    t0 = time.perf_counter()
    result = ih.irradiance(frames_of(clean, options(server, p, **NO_BOTO_RETRY)), progress=False)
    seconds = time.perf_counter() - t0
    expected = ["read error" if k == victim else "ok" for k in clean.datakeys]
    assert list(result["status"].values) == expected
    good = np.array(expected) == "ok"
    np.testing.assert_array_equal(
        result["irradiance"].values[good], np.array(clean.expected_mean)[good]
    )
    assert np.isnan(result["irradiance"].values[~good]).all()
    # retry_io's 4 attempts, one request each (neither s3fs nor botocore retries this one)
    assert p.stats["by_key"][key_path(victim)]["requests"] == 4
    assert fits_frames.RETRY_STATS["gave_up"] == before["gave_up"] + 1
    assert seconds < 30


# ----------------------------------------------------------------------------- read-ahead
WINDOW = (slice(0, SIZE), slice(0, SIZE), None, None)
MEAN = [("mean", "mean"), ("count", "count")]


def _spec(keys, so) -> FrameSpec:
    """What ``open_frames`` records for whole frames of these files."""
    full = slice(0, SIZE)
    return FrameSpec(tuple(keys), so, "auto", full, full, "DN", (SIZE, SIZE), current())


def test_batched_frames_fetch_the_next_file_while_one_is_reduced(server, proxy):
    """On a slow network (every GET held 0.4 s) a batch of 6 frames waits for ~3 GETs, not 6.

    Each frame is still fetched with exactly one request, and the values are the same.
    """
    _, clean, _ = server
    keys = list(clean.datakeys[:6])
    p = proxy([FaultRule("stall", delay=0.4, match=FITS_RE)])
    spec = _spec(keys, options(server, p))

    t0 = time.perf_counter()
    one_by_one = [map_batch(tasks.MapTask(spec, WINDOW, tuple(MEAN), "DN"), [k])[0] for k in keys]
    sequential = time.perf_counter() - t0
    p.reset_stats()
    t0 = time.perf_counter()
    batched = map_batch(tasks.MapTask(spec, WINDOW, tuple(MEAN), "DN"), keys)
    ahead = time.perf_counter() - t0

    assert batched == one_by_one
    assert [v["mean"] for v, _ in batched] == list(clean.expected_mean[:6])
    assert per_key(p, clean, "requests")[:6] == [1] * 6
    assert sequential >= 6 * 0.4  # the control: the stall holds every GET
    # reading ahead overlaps each frame's GET with the previous one: ~3 x 0.4 s
    assert ahead < 0.75 * sequential, (ahead, sequential)


def test_a_failed_read_ahead_is_retried(server, proxy):
    _, clean, _ = server
    keys = list(clean.datakeys[:4])
    victim = keys[2]  # fetched ahead, while frame 1 is reduced
    rule = FaultRule("status", status=500, code="InternalError", match=re.escape(key_path(victim)))
    p = proxy([dataclasses.replace(rule, times=1)])
    before = dict(fits_frames.RETRY_STATS)
    spec = _spec(keys, options(server, p, **NO_BOTO_RETRY))
    got = map_batch(tasks.MapTask(spec, WINDOW, tuple(MEAN), "DN"), keys)
    assert [st for _, st in got] == ["ok"] * 4
    assert [v["mean"] for v, _ in got] == list(clean.expected_mean[:4])
    stats = p.stats["by_key"][key_path(victim)]
    assert (stats["requests"], stats["faults"]) == (2, 1)
    assert fits_frames.RETRY_STATS["retried"] == before["retried"] + 1


# ----------------------------------------------------------------------------- bad objects
def test_every_bad_object_gets_its_own_reason(server, proxy, threads):
    _, _, broken = server
    p = proxy()
    frames = frames_of(broken, options(server, p))
    expected = ["ok"] * FRAMES
    for i, reason in BAD.items():
        expected[i] = reason
    result = ih.irradiance(frames, normalize=True, progress=False, part_size=5)
    assert list(result["status"].values) == expected
    assert len(set(BAD.values())) == len(BAD)  # each its own reason
    good = np.array(expected) == "ok"
    np.testing.assert_allclose(
        result["irradiance"].values[good],
        np.array(broken.expected_rate)[good],
        rtol=1e-12,
    )
    assert np.isnan(result["irradiance"].values[~good]).all()
    assert (result["n_valid"].values[~good] == 0).all()

    # in DN (no normalising) the frame without EXPTIME has its value
    dn = ih.irradiance(frames, progress=False)
    expected[8] = "ok"
    assert list(dn["status"].values) == expected
    assert dn["irradiance"].values[8] == broken.expected_mean[8]

    # the generic path (an array changed after opening) records the same reasons
    generic = ih.irradiance(frames * 1.0, progress=False)
    assert list(generic["status"].values) == expected
    np.testing.assert_allclose(
        generic["irradiance"].values[dn["status"].values == "ok"],
        dn["irradiance"].values[dn["status"].values == "ok"],
        rtol=1e-6,
    )


@pytest.mark.parametrize("index", sorted(BAD))
def test_each_bad_object_raises_a_frame_error_naming_the_key(server, proxy, threads, index):
    _, _, broken = server
    p = proxy()
    so = options(server, p)
    key = broken.datakeys[index]
    df = ih.open_bucket(broken.root, so)[broken.dataset_id].files(broken.start, broken.stop)
    units = "DN/s" if BAD[index] == "no EXPTIME" else "DN"
    # frame 0 is good: it is the probe, so the bad frame fails in its own read task
    frames = ih.open_frames(df.iloc[[0, index]], storage_options=so, units=units)
    with pytest.raises(ih.FrameReadError) as info:
        frames.compute()
    assert info.value.reason == BAD[index]
    assert info.value.datakey == key
    assert key in str(info.value) and BAD[index] in str(info.value)


# ----------------------------------------------------------------------------- 403
def test_access_denied_is_named_not_retried_and_not_retried_anonymously(server, proxy, threads):
    _, clean, _ = server
    victim = clean.datakeys[6]  # not among the 5 frames probed at open: read once
    p = proxy(
        [FaultRule("status", status=403, code="AccessDenied", match=re.escape(key_path(victim)))]
    )
    so = options(server, p)
    result = ih.irradiance(frames_of(clean, so), progress=False)
    expected = ["permission denied" if k == victim else "ok" for k in clean.datakeys]
    assert list(result["status"].values) == expected
    assert p.stats["by_key"][key_path(victim)]["requests"] == 1  # not retried at all
    assert p.stats["unsigned"] == 0  # every request signed: no anonymous fallback

    df = ih.open_bucket(clean.root, so)[clean.dataset_id].files(clean.start, clean.stop)
    frames = ih.open_frames(df.iloc[[0, 6]], storage_options=so)
    with pytest.raises(ih.FrameReadError) as info:
        frames.compute()
    assert isinstance(info.value, OSError)
    assert info.value.reason == "permission denied"
    assert victim in str(info.value)
    # +2: probed at open (the second of two frames: its error is left to its read), then
    # read once; neither retried
    assert p.stats["by_key"][key_path(victim)]["requests"] == 3
    assert p.stats["unsigned"] == 0


def test_denied_catalog_names_the_url_and_is_not_retried_anonymously(server, proxy):
    _, clean, _ = server
    denied = FaultRule(
        "status", status=403, code="AccessDenied", match="catalog.json", methods=("GET", "HEAD")
    )
    p = proxy([denied])
    with pytest.raises(PermissionError) as info:
        ih.open_bucket(clean.root, options(server, p))
    assert f"{clean.root}catalog.json" in str(info.value)
    assert "anon=True" in str(info.value)  # says how to ask for anonymous access
    stats = p.stats
    assert stats["requests"] == stats["faults"] == 1  # not retried
    assert stats["unsigned"] == 0  # and not retried anonymously


def test_anonymous_requests_only_when_asked(server, proxy):
    """The control for the unsigned counter: ``anon=True`` sends unsigned requests."""
    s3, clean, _ = server
    public = "helio-reliable/public/catalog.json"
    s3.filesystem().pipe_file(public, b'{"version": "1.0", "catalog": []}', ACL="public-read")
    p = proxy()
    anon = {"endpoint_url": p.endpoint_url, "anon": True}
    bucket = ih.open_bucket("s3://helio-reliable/public/", anon)
    assert len(bucket) == 0
    assert p.stats["unsigned"] == p.stats["requests"] >= 1
    # the private catalog is denied to an anonymous client, and says so
    with pytest.raises(PermissionError, match="access denied to bucket catalog"):
        ih.open_bucket(clean.root, anon)


# ----------------------------------------------------------------------------- worker loss
def _kill_a_worker_mid_run(client, frames, demo):
    """Run ``irradiance`` in a thread, SIGKILL a busy worker after the first part."""
    part_size = 2
    total_parts = -(-FRAMES // part_size)
    done: list[int] = []
    first_part = threading.Event()
    box: dict = {}

    def on_part(number, df):
        done.append(number)
        first_part.set()

    def work():
        try:
            box["result"] = ih.irradiance(
                frames, progress=False, part_size=part_size, on_part=on_part
            )
        except BaseException as exc:
            box["error"] = exc

    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    thread = threading.Thread(target=work)
    thread.start()
    assert first_part.wait(120), "no part finished"
    busy = [w for w, keys in client.processing().items() if keys and w in pids]
    victim = pids[(busy or sorted(pids))[0]]
    parts_at_kill = len(done)
    psutil.Process(victim).send_signal(signal.SIGKILL)
    thread.join(180)
    assert not thread.is_alive()
    assert "error" not in box, box.get("error")
    assert 0 < parts_at_kill < total_parts, "the kill did not land mid-run"
    after = client.run(os.getpid)
    assert victim not in after.values()
    result = box["result"]
    assert list(result["status"].values) == ["ok"] * FRAMES
    np.testing.assert_array_equal(result["irradiance"].values, demo.expected_mean)
    assert sorted(done) == list(range(total_parts))


@pytest.mark.slow
def test_worker_killed_mid_run_on_a_local_cluster(server, proxy):
    _, clean, _ = server
    p = proxy([FaultRule("stall", delay=PACE, match=FITS_RE)])
    frames = frames_of(clean, options(server, p))
    with ih.cluster("local", workers=2, worker_cores=1) as client:
        _kill_a_worker_mid_run(client, frames, clean)


@pytest.mark.slow
@pytest.mark.gateway
def test_worker_killed_mid_run_on_a_gateway_cluster(server, proxy):
    pytest.importorskip("sqlalchemy", reason="dask-gateway-server's local backend needs it")
    from intake_helio.testing.gateway_server import LocalGateway

    _, clean, _ = server
    p = proxy([FaultRule("stall", delay=PACE, match=FITS_RE)])
    frames = frames_of(clean, options(server, p))
    with (
        LocalGateway() as gw,
        ih.cluster(
            "gateway",
            workers=2,
            worker_cores=1,
            address=gw.address,
            proxy_address=gw.proxy_address,
            auth=gw.auth,
        ) as client,
    ):
        client.wait_for_workers(2, timeout=120)
        _kill_a_worker_mid_run(client, frames, clean)

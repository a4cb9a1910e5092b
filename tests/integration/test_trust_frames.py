"""Frames are third-party content: real servers on 127.0.0.1 that misbehave, and files that lie.

- a server that ignores ``Range`` or sends a body without end, reached as an S3 endpoint
  (s3fs) and as plain HTTP (fsspec's HTTP filesystem): every read stops at the bytes it
  asked for, or at the index's ``filesize`` plus ``intake_helio.filesize-slack``, or at
  ``intake_helio.max-file-bytes``; that frame gets a reason, the others their values. These
  run in a child process under an address-space limit (``RLIMIT_AS``) and report how much
  memory they took;
- files on a real S3 server (moto) that declare 80 GB images, hold 20,000 HDUs, are not
  FITS, or are larger than their index says: one odd frame first in the list gets its
  reason and the rest of the frames are valued; messages never quote the files' text;
- a stalled GET (the fault proxy's ``"stall"``) fails its frame with ``"read error"`` after
  the configured timeouts and retries, and the run completes.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import dask
import numpy as np
import pandas as pd
import pytest

import intake_helio as ih
import intake_helio.fits.frame as fits_frames
from intake_helio.testing.fault_proxy import FaultProxy, FaultRule
from intake_helio.testing.fits_bytes import huge_compressed, many_hdus
from tests.builders import SECRET, astropy_mean, good_frame

BUCKET = "trust-frames"
SIZE = 32


def frame_list(keys, sizes=None) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "start": pd.date_range("2020-01-01", periods=len(keys), freq="1min"),
            "datakey": list(keys),
        }
    )
    if sizes is not None:
        df["filesize"] = np.asarray(sizes, dtype=np.int64)
    return df


# ----------------------------------------------------------------------------- a bad server
class _Handler(BaseHTTPRequestHandler):
    """GETs of ``/bucket/key`` (S3 path style, or plain HTTP) answered per the key's mode.

    ``good``: honours ``Range`` (206 with ``Content-Range``). ``endless``: ignores ``Range``,
    answers 200 with the file and then zeros without end (chunked). ``endless-206``: claims
    a partial answer (206) and then sends without end. ``gzip``: sends the key's bytes with
    ``Content-Encoding: gzip`` (HTTP clients inflate them).
    """

    protocol_version = "HTTP/1.1"
    timeout = 10  # a client that stops reading frees this thread within 10 s

    def log_message(self, *args) -> None:
        pass

    def _head(self, status: int, headers: dict) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()

    def do_HEAD(self) -> None:
        raw = self.server.files.get(urlsplit(self.path).path)
        if raw is None:
            self._head(404, {"Content-Length": 0})
        else:
            self._head(200, {"Content-Length": len(raw)})

    def do_GET(self) -> None:
        srv = self.server
        path = urlsplit(self.path).path
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((path, rng))
        raw = srv.files.get(path)
        if raw is None:
            body = b"<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>"
            self._head(404, {"Content-Type": "application/xml", "Content-Length": len(body)})
            self.wfile.write(body)
            return
        mode = srv.modes.get(path, "good")
        if mode == "good":
            self._good(raw, rng)
        elif mode == "gzip":
            self._head(200, {"Content-Encoding": "gzip", "Content-Length": len(raw)})
            try:
                self.wfile.write(raw)
            except OSError:
                return  # the client dropped the connection
        else:
            self._endless(path, raw, 206 if mode == "endless-206" else 200)

    def _good(self, raw: bytes, rng: str | None) -> None:
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if not m:
            self._head(200, {"Content-Length": len(raw)})
            self.wfile.write(raw)
            return
        a = int(m.group(1))
        b = min(int(m.group(2)) if m.group(2) else len(raw) - 1, len(raw) - 1)
        if a >= len(raw):
            self._head(416, {"Content-Range": f"bytes */{len(raw)}", "Content-Length": 0})
            return
        part = raw[a : b + 1]
        headers = {"Content-Range": f"bytes {a}-{b}/{len(raw)}", "Content-Length": len(part)}
        self._head(206, headers)
        self.wfile.write(part)

    def _endless(self, path: str, raw: bytes, status: int) -> None:
        srv = self.server
        headers = {"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"}
        if status == 206:
            headers["Content-Range"] = "bytes 0-65535/*"
        self._head(status, headers)
        self.close_connection = True
        zeros = b"\0" * 65536
        try:
            for piece in itertools.chain([raw], itertools.repeat(zeros)):
                if srv.stopping.is_set():
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                with srv.lock:
                    srv.sent[path] = srv.sent.get(path, 0) + len(piece)
        except OSError:
            return  # the client stopped reading and dropped the connection


class BadServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.sent: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def bad_server():
    srv = BadServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield srv
    srv.stopping.set()
    srv.shutdown()
    srv.server_close()


# ----------------------------------------------------------------------------- child runs
CHILD = r"""
import json, resource, sys, time
args = json.loads(sys.argv[1])
import dask, numpy as np, pandas as pd, s3fs, aiohttp
import intake_helio as ih
import intake_helio.fits.frame as ff
from intake_helio.io.transport import filesystem

def vm():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

def run(call):
    t0 = time.monotonic()
    try:
        out = call()
        got = {"ok": True, "value": repr(getattr(out, "shape", out))[:100]}
    except ih.FrameReadError as exc:
        got = {"ok": False, "reason": str(exc.reason), "message": str(exc)}
    except MemoryError:
        got = {"ok": False, "reason": "MemoryError", "message": ""}
    got["seconds"] = time.monotonic() - t0
    return got

opts = args["options"]
fs, _ = filesystem(args["warm"], opts)  # the client, its loop and threads: before the limit
df = None
if args["frames"]:  # pandas and pyarrow reserve their memory pools: before the limit too
    df = pd.DataFrame(args["frames"])
    df["start"] = pd.to_datetime(df["start"])
limit = vm() + args["headroom"]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = {"calls": {}}
with dask.config.set(args["config"]):
    for name, (key, kw, config) in args["calls"].items():
        fs, path = filesystem(key, opts)
        fn = getattr(ff, kw.pop("fn", "read_frame"))
        for k in ("rows", "cols"):
            if k in kw:
                kw[k] = slice(*kw[k])
        with dask.config.set(config):
            out["calls"][name] = run(lambda: fn(fs, path, **kw))
    if df is not None:
        t0 = time.monotonic()
        with dask.config.set(scheduler="threads", num_workers=4):
            frames = ih.open_frames(df, storage_options=opts, on_error="nan")
            result = ih.irradiance(frames, progress=False)
        out["status"] = [str(s) for s in result["status"].values]
        out["values"] = [None if v != v else float(v) for v in result["irradiance"].values]
        out["shape"] = list(frames.shape)
        out["frames_seconds"] = time.monotonic() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out["growth"] = peak - peak0
print(json.dumps(out))
"""


def run_child(calls: dict, frames: pd.DataFrame | None, options: dict, config=None) -> dict:
    """Run reads in a child process whose address space is capped 1 GiB above its baseline."""
    frames_json = None
    if frames is not None:
        frames_json = frames.assign(start=frames["start"].astype(str)).to_dict("list")
    warm = next(iter(calls.values()))[0] if calls else frames["datakey"].iloc[0]
    args = {
        "calls": calls,
        "frames": frames_json,
        "options": options,
        "config": {"intake_helio.retry.base-delay": 0.01, **(config or {})},
        "headroom": 1 << 30,
        "warm": warm,
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MALLOC_ARENA_MAX": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- bad servers
@pytest.fixture(params=["s3", "http"])
def bad_files(request, bad_server):
    """Five frames on the bad server: good, good, endless-206, endless, good."""
    raws = [good_frame(i) for i in range(5)]
    modes = ["good", "good", "endless-206", "endless", "good"]
    keys = []
    for i, (raw, mode) in enumerate(zip(raws, modes, strict=True)):
        path = f"/{BUCKET}/f{i}.fits"
        bad_server.files[path] = raw
        bad_server.modes[path] = mode
        if request.param == "s3":
            keys.append(f"s3://{BUCKET}/f{i}.fits")
        else:
            keys.append(f"{bad_server.url}{path}")
    if request.param == "s3":
        options = {"endpoint_url": bad_server.url, "key": "k", "secret": "s"}
    else:
        options = {}
    return request.param, keys, raws, options


def test_a_body_without_end_stops_at_what_was_asked_for(bad_server, bad_files):
    _proto, keys, raws, options = bad_files
    n = len(raws[3])
    calls = {
        # the 64 KiB header read of a server that claims a range and never ends
        "probe-206": (keys[2], {"fn": "probe_frame"}, {}),
        # a server that ignores Range: the first 64 KiB are the file's, they are used
        "probe-200": (keys[3], {"fn": "probe_frame"}, {}),
        # a whole read stops at the index's filesize plus the slack
        "whole-indexed": (keys[3], {"filesize": n}, {}),
        # without a filesize, at intake_helio.max-file-bytes
        "whole-cap": (keys[3], {}, {"intake_helio.max-file-bytes": 32 << 20}),
        # a ranged read past byte 0 from a server that ignores Range (the header read is
        # one block: HDU 1 is read from byte 2880)
        "cutout": (
            keys[3],
            {"rows": [0, 4], "whole_file": False},
            {"intake_helio.header-read-size": 2880},
        ),
        "good": (keys[0], {"filesize": len(raws[0])}, {}),
    }
    out = run_child(calls, None, options)
    got = out["calls"]
    assert got["probe-206"]["reason"] == "read error"
    assert "sent more than those 65536 bytes" in got["probe-206"]["message"]
    assert got["probe-200"]["ok"], got["probe-200"]
    assert got["whole-indexed"]["reason"] == "read error"
    assert f"past the index's filesize {n}" in got["whole-indexed"]["message"]
    assert got["whole-cap"]["reason"] == "image too large"
    assert "intake_helio.max-file-bytes=33554432" in got["whole-cap"]["message"]
    assert got["cutout"]["reason"] == "read error"
    assert "ignores Range" in got["cutout"]["message"]
    assert got["good"] == {**got["good"], "ok": True, "value": f"({SIZE}, {SIZE})"}
    assert all(c["seconds"] < 30 for c in got.values()), got
    # the largest read accepted 32 MiB: the process grew by little more
    assert out["growth"] < 200 << 20, out["growth"]
    # and the connections were dropped, not drained: the server could send little more
    assert bad_server.sent[f"/{BUCKET}/f3.fits"] < 3 * (32 << 20)


def gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of ``inflated`` zero bytes, about 1,000 times smaller, made in ms.

    After a full flush the compressor starts afresh, so every further MiB of zeros
    compresses to the same bytes: they are repeated (the trailer's CRC is wrong, and never
    reached by a reader that stops in time).
    """
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    first = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    return first + again * ((inflated >> 20) - 2) + z.compress(block) + z.flush()


def test_a_compressed_body_never_inflates_past_the_limit(bad_server):
    """2 GiB of zeros in 2 MB of gzip, sent as a frame over HTTP: inflated to the limit only."""
    path = f"/{BUCKET}/bomb.fits"
    bad_server.files[path] = gzip_bomb(2 << 30)
    bad_server.modes[path] = "gzip"
    key = f"{bad_server.url}{path}"
    calls = {
        "whole": (key, {"filesize": 11520}, {}),
        "probe": (key, {"fn": "probe_frame"}, {}),
    }
    out = run_child(calls, None, {})
    got = out["calls"]
    assert got["whole"]["reason"] == "read error" and "index's filesize" in got["whole"]["message"]
    assert got["probe"]["reason"] == "not FITS"
    assert all(c["seconds"] < 30 for c in got.values()), got
    assert out["growth"] < 200 << 20, out["growth"]


def test_frames_from_a_bad_server_fail_alone(bad_server, bad_files):
    _proto, keys, raws, options = bad_files
    df = frame_list(keys, [len(r) for r in raws])
    out = run_child({}, df, options)
    assert out["status"] == ["ok", "ok", "read error", "read error", "ok"]
    assert out["shape"] == [5, SIZE, SIZE]
    for i in (0, 1, 4):
        assert out["values"][i] == pytest.approx(astropy_mean(raws[i]), rel=1e-6)
    assert out["growth"] < 200 << 20, out["growth"]
    assert out["frames_seconds"] < 60


# ----------------------------------------------------------------------------- lying files
def publish(s3, files: dict[str, bytes]) -> list[str]:
    fs = s3.filesystem()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    for name, raw in files.items():
        fs.pipe_file(f"{BUCKET}/{name}", raw)
    return [f"s3://{BUCKET}/{name}" for name in files]


ODD = {
    "smaller": (lambda: good_frame(99, size=SIZE // 2), "shape mismatch"),
    "declares-80-GB": (huge_compressed, "image too large"),
    "20000-hdus": (lambda: many_hdus(20_000), "no image HDU"),
    "not-fits": (lambda: (SECRET + "\n").encode() * 200, "not FITS"),
}


@pytest.mark.parametrize("odd", list(ODD))
def test_one_odd_frame_first_gets_its_reason_and_the_rest_are_valued(s3, odd):
    build, reason = ODD[odd]
    raws = [build()] + [good_frame(i) for i in range(1, 7)]
    keys = publish(s3, {f"{odd}-{i}.fits": raw for i, raw in enumerate(raws)})
    df = frame_list(keys, [len(r) for r in raws])
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=4):
        frames = ih.open_frames(df, storage_options=s3.storage_options, on_error="nan")
        result = ih.irradiance(frames, progress=False)
        means = frames.mean(("y", "x")).compute()
    assert time.perf_counter() - t0 < 60
    assert frames.shape == (7, SIZE, SIZE)
    assert list(result["status"].values) == [reason] + ["ok"] * 6
    assert list(means["read_status"].values) == [reason] + ["ok"] * 6
    want = [astropy_mean(r) for r in raws[1:]]
    np.testing.assert_allclose(result["irradiance"].values[1:], want, rtol=1e-6)
    np.testing.assert_allclose(means.values[1:], want, rtol=1e-6)
    assert np.isnan(result["irradiance"].values[0]) and np.isnan(means.values[0])

    # with on_error="raise": the message names the frame and never quotes its text
    with dask.config.set(scheduler="threads"), pytest.raises(ih.FrameReadError) as info:
        ih.open_frames(df, storage_options=s3.storage_options).compute()
    err = info.value
    assert err.reason == reason and err.datakey == keys[0]
    assert "root" not in str(err) and len(str(err)) < 500


def test_twenty_thousand_hdus_fail_fast_with_a_short_message(s3):
    (key,) = publish(s3, {"many.fits": many_hdus(20_000, kinds=("IMAGE", "BINTABLE"))})
    fs, path = s3.filesystem(), key.split("://", 1)[1]
    for read in (fits_frames.probe_frame, fits_frames.read_frame):
        t0 = time.perf_counter()
        with pytest.raises(ih.FrameReadError) as info:
            read(fs, path)
        assert time.perf_counter() - t0 < 20
        assert info.value.reason == "no image HDU"
        assert "first 1000 HDUs" in str(info.value) and "more)" in str(info.value)
        assert len(str(info.value)) < 400


def test_an_object_larger_than_its_index_says_is_not_taken(s3):
    raws = [good_frame(i, size=64) for i in range(3)]
    keys = publish(s3, {f"sized-{i}.fits": raw for i, raw in enumerate(raws)})
    sizes = [len(r) for r in raws]
    sizes[1] = 2880  # the index says this file is one block long
    df = frame_list(keys, sizes)
    so = s3.storage_options
    with dask.config.set({"scheduler": "threads", "intake_helio.filesize-slack": 0}):
        frames = ih.open_frames(df, storage_options=so, on_error="nan")
        result = ih.irradiance(frames, progress=False)
        with pytest.raises(ih.FrameReadError) as info:
            ih.open_frames(df.iloc[[0, 1]], storage_options=so).compute()
    assert list(result["status"].values) == ["ok", "read error", "ok"]
    assert info.value.datakey == keys[1]
    assert "past the index's filesize 2880" in str(info.value)
    with dask.config.set({"intake_helio.filesize-slack": len(raws[1])}):
        result = ih.irradiance(
            ih.open_frames(df, storage_options=s3.storage_options, on_error="nan"),
            progress=False,
        )
    assert list(result["status"].values) == ["ok"] * 3


# ----------------------------------------------------------------------------- stalls
def _stalled_run(s3, so_extra: dict, config: dict):
    raws = [good_frame(i) for i in range(8)]
    keys = publish(s3, {f"stall-{i}.fits": raw for i, raw in enumerate(raws)})
    victim = keys[6]  # not among the 5 frames probed when the frames are opened
    rule = FaultRule("stall", delay=60, match=re.escape(victim.split("://", 1)[1]))
    with FaultProxy(s3.endpoint_url, [rule]) as proxy:
        so = {**s3.storage_options, "endpoint_url": proxy.endpoint_url, **so_extra}
        settings = {
            "scheduler": "threads",
            "num_workers": 4,
            "intake_helio.retry.attempts": 2,
            "intake_helio.retry.base-delay": 0.05,
            **config,
        }
        with dask.config.set(settings):
            frames = ih.open_frames(frame_list(keys), storage_options=so, on_error="nan")
            t0 = time.perf_counter()
            result = ih.irradiance(frames, progress=False)
            seconds = time.perf_counter() - t0
        requests = proxy.stats["by_key"]["/" + victim.split("://", 1)[1]]["requests"]
    expected = ["read error" if k == victim else "ok" for k in keys]
    assert list(result["status"].values) == expected
    good = np.array(expected) == "ok"
    want = [astropy_mean(r) for r, g in zip(raws, good, strict=True) if g]
    np.testing.assert_allclose(result["irradiance"].values[good], want, rtol=1e-6)
    return seconds, requests


def test_a_stalled_read_fails_its_frame_in_the_configured_time(s3):
    """1 s read timeout, one botocore attempt, 2 attempts of retry_io: ~2 s, not 60."""
    seconds, requests = _stalled_run(
        s3,
        {
            "config_kwargs": {
                "read_timeout": 1,
                "connect_timeout": 1,
                "retries": {"total_max_attempts": 1, "mode": "standard"},
            }
        },
        {},
    )
    assert requests == 2  # retry_io's 2 attempts; nothing else retries a stalled GET
    assert seconds < 2 * 1 + 6


def test_the_storage_layers_default_timeouts_reach_frame_reads(s3):
    if dask.config.get("intake_helio.timeouts.read", None) is None:
        pytest.skip("the storage layer has no intake_helio.timeouts.* settings")
    config = {
        "intake_helio.timeouts.read": 1,
        "intake_helio.timeouts.connect": 1,
        "intake_helio.timeouts.attempts": 1,
    }
    seconds, requests = _stalled_run(s3, {}, config)
    assert requests == 2
    assert seconds < 2 * 1 + 6

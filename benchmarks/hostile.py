"""Hostile content never costs a good frame, a byte past a bound or a secret (issue 14).

Rows of the same table as ``benchmarks/faults.py`` (which runs them after its own, unless
``--no-hostile``); run alone, ``python benchmarks/hostile.py`` prints only these. Every case
runs the real code paths (the public API, ``run_irradiance_job`` or the CLI's ``main``)
against real servers on 127.0.0.1: a moto S3 server in a child process (``LocalS3``), the
small HTTP servers of :mod:`intake_helio.testing.http_server` (``LocalHTTP`` records every
request, ``SilentServer`` never answers) and a server of this module that ignores ``Range``
and streams without end. Cases whose danger is memory run in a child process under an
address-space limit (``RLIMIT_AS``, 1 GiB above its size after imports) and report how much
its resident memory grew (peak RSS, reset with ``/proc/self/clear_refs`` before the work).

1. index datakeys ``file:///etc/passwd``, ``file:///proc/self/environ``, a loopback "metadata
   service" (``LocalHTTP``), ``ftp://`` (a ``SilentServer`` counting connections),
   ``filecache::http://`` among good S3 frames: reported with ``index_errors="report"``
   (API and ``intake-helio files``); the job, which has no such option, must stop at the
   first one with an error naming the file and line;
2. dataset indexes ``file:///etc/``, ``../../etc/``, a loopback http index and dataset ids
   ``iam?`` and ``../../outside/x`` in a bucket's ``catalog.json``;
3. a frame server that ignores ``Range`` and streams without end (200, or 206 claiming a
   range), with and without the index's filesize;
4. a 3 MB csv-zip index that expands to 3 GiB (and one whose header says 1 KiB);
5. a catalog host that accepts connections and never answers (``intake-helio ls``);
6. frames that declare 200,000 x 200,000 pixels (tile-compressed, first; and plain);
7. a file of 20,000 empty HDUs;
8. index rows dated 2300 and 0001, filesizes ``inf``, ``1e23`` and ``-5``;
9. credentials in URLs: ``http://reader:CANARY@host/`` as the bucket (through the job),
   ``http://user:CANARY@host`` as the S3 endpoint, ``s3://KEY:SECRET@bucket/``;
10. a frame whose read makes its worker die (an endless body, ``max-file-bytes`` raised,
    workers of 0.6 GiB on a ``LocalCluster``): ``--no-worker-death`` skips it;
11. the output directory: a planted ``part-000099.csv`` of another dataset under a matching
    manifest with ``--resume``, a 12-row part where parts hold 6 frames, a foreign ``parts/``
    without our manifest, a symlinked ``parts/``, symlinks planted at the temporary file
    names a run used to write through (``.<name>.tmp-<pid>``) and at the output names;
12. redirects (to a counting listener, the metadata address, a loop, the same origin, an
    allowed origin that must not get the first one's ``X-Api-Key``), ``https://`` rows on
    internal addresses in seven spellings and a host name resolving to loopback;
13. a second writer on a locked ``--out``, index lines with wrong field counts, a stop
    before its start and duplicates, a title with U+202E and ANSI escapes
    (``benchmarks/hostile_doors.py`` holds 12 and 13).

Columns (as in faults.py): ``frames`` frames or rows of the case (good and hostile),
``valued`` good frames with their exact value, ``reason`` hostile items refused or given
their expected reason, ``inject`` hostile items, ``lost`` outcomes that are not the expected
one (a frame without its value or reason, a request to a forbidden host, a bound exceeded, a
file outside the output directory touched, a foreign file deleted, foreign rows merged; in
the output-directory row ``inject`` counts its scenarios and ``reason`` those handled),
``secret`` canary strings found in everything a user sees (stdout/stderr of this process and
of the children at the file-descriptor level, log records at DEBUG, messages, reprs, intake
YAML and every file written). ``note`` gives the measured bounds.

    python benchmarks/hostile.py [--no-worker-death] [--only 1,3,11]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import itertools
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from intake_helio.testing.fits_bytes import (
    huge_compressed,
    huge_image,
    many_hdus,
)

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import faultkit  # noqa: E402  (benchmarks/ is a plain directory)
from faultkit import (  # noqa: E402
    CANARY_KEY,
    CANARY_SECRET,
    CREDENTIALS,
    Capture,
    Row,
    count_secrets,
    files_text,
    print_table,
)

REPO = HERE.parent
START = pd.Timestamp("2020-06-01T00:00:00")
SIZE = 32
PART = 6
MIB = 1 << 20
PASSWD = "root:x:0:0:root:/root:/bin/bash"
#: A quick failure of a silent host (the test suite's values; defaults are 10/30/3).
QUICK_TIMEOUTS = {
    "intake_helio.timeouts.connect": 1,
    "intake_helio.timeouts.read": 1,
    "intake_helio.timeouts.attempts": 1,
}


# --------------------------------------------------------------------------- text
def shown_text(*things: Any) -> str:
    """``str`` and ``repr`` of things, plus the decoded values of any HTTP basic auth."""
    text = "\n".join(t if isinstance(t, str) else f"{t!s}\n{t!r}" for t in things)
    for m in re.finditer(r"Basic\s+([A-Za-z0-9+/=]{8,})", text):
        with contextlib.suppress(ValueError):
            text += "\n" + base64.b64decode(m.group(1) + "==").decode("latin-1")
    return text


def secrets_in(*things: Any) -> int:
    return count_secrets(shown_text(*things))


def error_text(exc: BaseException | None) -> str:
    """str and repr of an error and of its whole cause chain."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts += [f"{type(exc).__name__}: {exc}", repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def short(text: str, n: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def one_line(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


class _Tee(io.TextIOBase):
    """A stream that keeps what is written (per call) and passes it on to a real stream.

    The CLI's ``logging.basicConfig`` binds its handler to whatever ``sys.stderr`` is on
    its first call: this one object stays that stream for every later call.
    """

    def __init__(self, real) -> None:
        self.real = real
        self.buf = io.StringIO()

    def write(self, s: str) -> int:
        self.buf.write(s)
        with contextlib.suppress(Exception):
            self.real.write(s)
        return len(s)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            self.real.flush()

    def take(self) -> str:
        text = self.buf.getvalue()
        self.buf = io.StringIO()
        return text


_OUT = _Tee(sys.__stdout__)
_ERR = _Tee(sys.__stderr__)


def cli(argv: list[str]) -> tuple[int, str, str, float]:
    """``intake_helio.app.cli.main(argv)`` in this process: (code, stdout, stderr, seconds)."""
    from intake_helio.app.cli import main

    _OUT.take(), _ERR.take()
    handler = signal.getsignal(signal.SIGTERM)  # main() installs its own
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(_OUT), contextlib.redirect_stderr(_ERR):
            code = main(argv)
    finally:
        signal.signal(signal.SIGTERM, handler)
    return code, _OUT.take(), _ERR.take(), time.perf_counter() - t0


def cred_args() -> list[str]:
    return [f"--storage-option={k}={v}" for k, v in CREDENTIALS.items()]


# --------------------------------------------------------------------------- builders
# (copied from tests/builders.py and tests/unit/test_trust_fits.py: benchmarks never import
# tests/)
def dataset_entry(id: str, index: str, **kw: Any) -> dict:
    entry = {
        "id": id,
        "index": index,
        "title": f"{id} FITS data",
        "start": "2019-12-31T00:00:00Z",
        "stop": "2021-01-02T00:00:00Z",
        "modification": "2023-05-04T00:00:00Z",
        "indextype": "csv",
        "filetype": "fits",
    }
    entry.update(kw)
    return entry


def catalog_json(root: str, entries: list[dict]) -> str:
    return json.dumps(
        {
            "version": "1.0",
            "name": "Third-party bucket",
            "endpoint": root,
            "status": {"code": 1200, "message": "OK"},
            "catalog": entries,
        }
    )


def index_csv(rows) -> str:
    lines = ["# start, stop, datakey, filesize"]
    lines += [",".join(str(v) for v in r) for r in rows]
    return "\n".join(lines) + "\n"


def iso(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def deflated_zeros(mib: int) -> bytes:
    """A raw deflate stream of ``mib`` MiB of zeros (~1 KiB per MiB), built in milliseconds."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zero = bytes(MIB)
    first = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * (mib - 1) + c.flush(zlib.Z_FINISH)


def zip_one(comp: bytes, usize: int, name: bytes) -> bytes:
    """A zip archive of one deflated member whose header says ``usize`` bytes (CRC unset)."""
    head = (20, 0, 8, 0, 0x21, 0, len(comp), usize, len(name))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, *head, 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *head, 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(comp), 0)
    return local + comp + central + end


def aia_frames(n: int, size: int = SIZE, seed: int = 0) -> tuple[list[bytes], list[float]]:
    """``n`` small AIA-like frames and the float64 nanmean of the image astropy reads."""
    from astropy.io import fits

    from intake_helio.testing.aia import frame_bytes, make_aia_frame

    raws, means = [], []
    for i in range(n):
        raw = frame_bytes(make_aia_frame(START + pd.Timedelta(minutes=4 * i), size=size, seed=i))
        with fits.open(io.BytesIO(raw)) as hdul:
            means.append(float(np.nanmean(hdul[1].data, dtype=np.float64)))
        raws.append(raw)
    return raws, means


def values_right(values, expected, rtol: float = 1e-9) -> int:
    """How many values are not (close to) the expected ones."""
    values, expected = np.asarray(values, np.float64), np.asarray(expected, np.float64)
    if values.shape != expected.shape:
        return max(len(values), len(expected))
    return int((~np.isclose(values, expected, rtol=rtol, atol=0)).sum())


# --------------------------------------------------------------------------- a bad server
class _BadHandler(BaseHTTPRequestHandler):
    """GETs answered per the path's mode: ``good`` honours ``Range`` (206); ``endless``
    ignores it and sends the file then zeros without end (200, chunked); ``endless-206``
    claims a range (206) and sends without end. HEAD gives the file's length."""

    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, *args) -> None:
        pass

    def _head(self, status: int, headers: dict) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()

    def do_HEAD(self) -> None:
        srv = self.server
        path = urlsplit(self.path).path
        with srv.lock:
            srv.requests.append((path, "HEAD"))
        raw = srv.files.get(path)
        self._head(404 if raw is None else 200, {"Content-Length": 0 if raw is None else len(raw)})

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
            self._head(
                206, {"Content-Range": f"bytes {a}-{b}/{len(raw)}", "Content-Length": len(part)}
            )
            self.wfile.write(part)
            return
        headers = {"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"}
        if mode == "endless-206":
            headers["Content-Range"] = "bytes 0-65535/*"
        self._head(206 if mode == "endless-206" else 200, headers)
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

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _BadHandler)
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.sent: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> BadServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


# --------------------------------------------------------------------------- child runs
CHILD = r"""
import contextlib, io, json, resource, sys, time
args = json.loads(sys.argv[1])
import dask, numpy as np, pandas as pd
import intake_helio as ih
import intake_helio.catalog.index, intake_helio.catalog.registry, intake_helio.frames.build
from intake_helio.app.cli import main as cli_main
from intake_helio.compute.reduction import irradiance
from intake_helio.io.transport import filesystem

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

if args.get("warm"):  # the client, its event loop and threads: before the limit
    filesystem(args["warm"], args["options"])
tables = []
for table in args.get("frames") or []:  # pandas' memory pools too
    df = pd.DataFrame(table)
    df["start"] = pd.to_datetime(df["start"])
    tables.append(df)
limit = status("VmSize") + args["headroom"]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:  # reset the peak RSS (VmHWM): the growth is then the work's alone
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
rss0 = status("VmRSS")
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = {"calls": []}
with dask.config.set(args["config"]):
    for argv in args.get("cli", []):
        o, e = io.StringIO(), io.StringIO()
        t0 = time.monotonic()
        try:
            with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
                code = cli_main(argv)
        except MemoryError:
            code = "MemoryError"
        out["calls"].append({"code": code, "out": o.getvalue(), "err": e.getvalue(),
                             "seconds": time.monotonic() - t0})
    out["runs"] = []
    for df in tables:
        run = {}
        t0 = time.monotonic()
        try:
            with dask.config.set(scheduler="threads", num_workers=4):
                frames = ih.open_frames(df, storage_options=args["options"], on_error="nan")
                result = irradiance(frames, progress=False)
            run["status"] = [str(s) for s in result["status"].values]
            run["values"] = [None if v != v else float(v) for v in result["irradiance"].values]
        except MemoryError:
            run["status"] = ["MemoryError"] * len(df)
            run["values"] = [None] * len(df)
        run["frames_seconds"] = time.monotonic() - t0
        t0 = time.monotonic()
        try:
            with dask.config.set(scheduler="threads"):
                ih.open_frames(df.iloc[[0]], storage_options=args["options"]).compute()
            run["raised"] = None
        except ih.FrameReadError as exc:
            run["raised"] = {"reason": str(exc.reason), "message": str(exc), "repr": repr(exc)}
        except MemoryError:
            run["raised"] = {"reason": "MemoryError", "message": "", "repr": ""}
        run["raise_seconds"] = time.monotonic() - t0
        out["runs"].append(run)
if reset:
    out["growth"] = status("VmHWM") - rss0
else:
    out["growth"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak0
out["limit_headroom"] = args["headroom"]
print("HOSTILE-CHILD " + json.dumps(out))
"""


def run_child(
    ctx: Ctx,
    *,
    options: dict,
    frames: list[pd.DataFrame] = (),
    cli_calls: list[list[str]] = (),
    config: dict | None = None,
    headroom: int = 1 << 30,
) -> tuple[dict, str]:
    """Run CLI calls, then each frame table (``open_frames`` + ``irradiance`` with
    ``on_error="nan"``, then its first frame alone with ``"raise"``) in a child under an
    address-space limit. Returns (the child's report, its whole stdout and stderr)."""
    frames_json = [f.assign(start=f["start"].astype(str)).to_dict("list") for f in frames]
    warm = frames[0]["datakey"].iloc[0] if len(frames) else None
    args = {
        "frames": frames_json,
        "cli": list(cli_calls),
        "options": options,
        "config": {"intake_helio.retry.base-delay": 0.01, **(config or {})},
        "headroom": headroom,
        "warm": warm,
    }
    env = {
        **os.environ,
        "MALLOC_ARENA_MAX": "2",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        "INTAKE_HELIO_CACHE_DIR": str(ctx.tmp / "cache"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=str(ctx.tmp),
    )
    seen = proc.stdout + proc.stderr
    line = next((x for x in proc.stdout.splitlines() if x.startswith("HOSTILE-CHILD ")), None)
    if line is None:
        return {"error": f"child exit {proc.returncode}: {proc.stderr[-600:]}"}, seen
    return json.loads(line.split(" ", 1)[1]), seen


# --------------------------------------------------------------------------- context
@dataclass
class Ctx:
    s3: Any
    capture: Capture
    tmp: Path
    say: Any
    base: Any = None  # a clean 12-frame dataset on S3 (cases 6, 7 and 11)

    def options(self, **extra: Any) -> dict:
        return {"endpoint_url": self.s3.endpoint_url, **CREDENTIALS, **extra}

    def demo(self, bucket: str, frames: int, **kw: Any):
        from intake_helio.testing.demo_data import write_demo_dataset

        return write_demo_dataset(
            f"s3://{bucket}/",
            self.s3.storage_options,
            frames=frames,
            size=SIZE,
            corrupt=0,
            start=START,
            **kw,
        )

    def index_path(self, demo) -> str:
        return f"{demo.root[5:]}sdo/aia/registries/{demo.dataset_id}_{START.year}.csv"


def frames_df(keys, sizes) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "start": START + pd.to_timedelta(np.arange(len(keys)) * 4, unit="min"),
            "datakey": list(keys),
            "filesize": np.asarray(sizes, dtype=np.int64),
        }
    )


def job(ctx: Ctx, root: str, dataset: str, out: Path, so: dict, **kw: Any):
    """``run_irradiance_job`` on the threaded scheduler of this process."""
    import dask

    from intake_helio.app.job import run_irradiance_job

    with dask.config.set(scheduler="threads"):
        return run_irradiance_job(
            root,
            dataset,
            START,
            START + pd.Timedelta("1D"),
            str(out),
            storage_options=so,
            cluster_kind=None,
            part_size=PART,
            progress=False,
            **kw,
        )


# --------------------------------------------------------------------------- 1. datakeys
def case_datakeys(ctx: Ctx) -> Row:
    import inspect

    import intake_helio as ih
    from intake_helio.app.job import run_irradiance_job
    from intake_helio.testing.http_server import LocalHTTP, SilentServer

    demo = ctx.demo("hostile-urls", 8, dataset_id="aia_urls")
    fs = ctx.s3.filesystem()
    index = ctx.index_path(demo)
    lines = fs.cat_file(index).decode().splitlines()
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    with LocalHTTP() as web, SilentServer() as ftp:
        meta = "/latest/meta-data/iam/security-credentials/role"
        web.put(meta, f"{PASSWD}\n{CANARY_SECRET}\n")
        hostile = [
            "file:///etc/passwd",
            "file:///proc/self/environ",
            web.url + meta,
            "ftp://" + ftp.url.split("://")[1] + "/pub/x.fits",
            f"filecache::{web.url}/x.fits",
        ]
        rows = []
        for i, key in enumerate(hostile):
            t = START + pd.Timedelta(minutes=4 * i + 1)
            rows.append(f"{iso(t)},{iso(t + pd.Timedelta('4min'))},{key},2880")
        # the hostile rows are interleaved with the good ones (the index is unsorted)
        fs.pipe_file(index, ("\n".join(lines[:3] + rows + lines[3:]) + "\n").encode())
        so = ctx.options()
        out = ctx.tmp / "datakeys"
        # the job: the refused rows stop it with one error naming the file and the line,
        # unless it can skip bad index rows (then each must be reported)
        job_kw = {}
        if "index_errors" in inspect.signature(run_irradiance_job).parameters:
            job_kw["index_errors"] = "report"
        job_error, job_result = None, None
        try:
            job_result, _ = job(ctx, demo.root, demo.dataset_id, out, so, **job_kw)
        except Exception as exc:
            job_error = exc
        # the public API with index_errors="report": good frames valued, bad rows listed
        bucket = ih.open_bucket(demo.root, so)
        ds = bucket[demo.dataset_id]
        listed = ds.files(START, START + pd.Timedelta("1D"), errors="report")
        bad = listed.attrs.get("bad_rows", [])
        frames = ds.to_dataarray(
            START, START + pd.Timedelta("1D"), on_error="nan", index_errors="report"
        )
        import dask

        with dask.config.set(scheduler="threads"):
            result = ih.irradiance(frames, progress=False)
        code, cout, cerr, _ = cli(
            ["files", demo.root, demo.dataset_id, "--start", str(START), "--stop",
             str(START + pd.Timedelta("1D")), "--errors", "report",
             "--endpoint-url", ctx.s3.endpoint_url, *cred_args()]
        )  # fmt: skip
        requests = len(web.requests) + ftp.accepted
    seconds = time.perf_counter() - t0
    status = result["status"].to_numpy().astype(str)
    valued = int((status == "ok").sum())
    lost = values_right(result["irradiance"].to_numpy(), demo.expected_mean)
    lost += len(demo.datakeys) - valued
    refused = [b for b in bad if b.reason.startswith("URL not allowed")]
    expected_lines = [4, 5, 6, 7, 8]  # header, 2 good rows, then the 5 hostile ones
    lost += len(hostile) - len(refused)
    lost += [b.line for b in refused] != expected_lines
    lost += requests  # the loopback "metadata service" must never be asked
    job_msg = error_text(job_error)
    if job_kw:  # a job that skips bad rows: every good frame valued, the others reported
        ok = job_result is not None and int((job_result["status"] == "ok").sum()) == 8
        job_note = f"job (index_errors=report): {'all good frames valued' if ok else 'WRONG'}"
    else:
        ok = (
            isinstance(job_error, ih.IndexParseError)
            and "URL not allowed" in job_msg
            and f"{demo.dataset_id}_2020.csv line 4" in job_msg
        )
        job_note = f"the job stops: {short(str(job_error).split('.csv ', 1)[-1], 48)!r}"
    lost += not ok
    cli_lines = [x for x in one_line(cerr) if x.startswith("skipped bad index row")]
    lost += code != 0 or len(cli_lines) != len(hostile)
    seen = shown_text(
        ctx.capture.since(mark), job_msg, result, frames, bucket, ds, listed, bad, cout, cerr,
        files_text(out),
    )  # fmt: skip
    roots = seen.count("root:")
    lost += roots
    return Row(
        "hostile: datakeys file/loopback/ftp",
        len(demo.datakeys) + len(hostile),
        valued,
        len(refused),
        len(hostile),
        lost=lost,
        secrets=count_secrets(seen),
        seconds=seconds,
        note=f"index_errors=report (API, CLI files): {len(refused)} rows 'URL not allowed', "
        f"lines {[b.line for b in refused]}; requests/connections to the loopback servers "
        f"{requests}; 'root:' seen {roots}; {job_note}",
    )


# --------------------------------------------------------------------------- 2. indexes
def case_indexes(ctx: Ctx) -> Row:
    import dask

    import intake_helio as ih
    from intake_helio.testing.fault_proxy import FaultProxy
    from intake_helio.testing.http_server import LocalHTTP

    demo = ctx.demo("hostile-cat", 6, dataset_id="good")
    fs = ctx.s3.filesystem()
    catalog = json.loads(fs.cat_file("hostile-cat/catalog.json"))
    good_index = catalog["catalog"][0]["index"]
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    with LocalHTTP() as web:
        web.put("/idx/loop_2020.csv", fs.cat_file(ctx.index_path(demo)))
        hostile = {
            "local": "file:///etc/",
            "up": "../../etc/",
            "loop": web.url + "/idx/",
            "iam?": good_index,
            "../../outside/x": good_index,
        }
        catalog["catalog"] += [dataset_entry(k, index=v) for k, v in hostile.items()]
        fs.pipe_file("hostile-cat/catalog.json", json.dumps(catalog).encode())
        with FaultProxy(ctx.s3.endpoint_url, []) as proxy:
            so = ctx.options(endpoint_url=proxy.endpoint_url)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                bucket = ih.open_bucket(demo.root, so)
            warned = [str(w.message) for w in caught]
            shown = []
            raised = 0  # a lookup of each (the user asks for it by name) raises
            for name in hostile:
                try:
                    bucket[name].files(START, START + pd.Timedelta("1D"))
                except (ih.CatalogFormatError, ih.DatasetNotFoundError) as exc:
                    raised += 1
                    shown.append(error_text(exc))
            frames = bucket["good"].to_dataarray(START, START + pd.Timedelta("1D"), on_error="nan")
            with dask.config.set(scheduler="threads"):
                result = ih.irradiance(frames, progress=False)
            by_key = proxy.stats["by_key"]
        web_requests = len(web.requests)
    seconds = time.perf_counter() - t0
    allowed = {"/hostile-cat/catalog.json", "/" + ctx.index_path(demo)}
    allowed |= {"/" + k.split("://", 1)[1] for k in demo.datakeys}
    forbidden = sorted(p for p in by_key if p not in allowed)
    invalid = {str(k): str(v) for k, v in getattr(bucket, "invalid", {}).items()}
    refused = len(invalid)
    valued = int((result["status"] == "ok").sum())
    lost = len(hostile) - refused + len(hostile) - raised + len(forbidden) + web_requests
    lost += values_right(result["irradiance"].to_numpy(), demo.expected_mean)
    lost += list(bucket) != ["good"]
    # what the catalog's content makes us say never quotes the refused text
    said = "\n".join(warned) + "\n".join(f"{k}: {v}" for k, v in invalid.items())
    quoted = [w for w in ("etc/", "outside", "iam?") if w in said]
    lost += len(quoted)
    kinds = Counter(
        "file://" if "file://" in v else "climbs" if "climbs" in v
        else "host" if "127.0.0.1" in v else "id" if "dataset id" in v else "other"
        for v in invalid.values()
    )  # fmt: skip
    reasons = [f"{k} {c}" for k, c in sorted(kinds.items())]
    return Row(
        "hostile: dataset indexes and ids",
        len(demo.datakeys) + len(hostile),
        valued,
        refused,
        len(hostile),
        lost=lost,
        secrets=secrets_in(ctx.capture.since(mark), said, shown, bucket, result),
        seconds=seconds,
        note=f"skipped at open_bucket, unread: {refused}/5 ({', '.join(reasons)}); "
        f"lookups raise {raised}/5; requests to other paths {len(forbidden)}, to the loopback "
        f"index {web_requests}; refused text quoted: {quoted or 'no'}",
    )


# --------------------------------------------------------------------------- 3. endless
def case_endless(ctx: Ctx) -> Row:
    raws, means = aia_frames(4)
    cap = 32 * MIB
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    with BadServer() as bad:
        modes = ["good", "good", "endless-206", "endless", "endless", "good"]
        files = [raws[0], raws[1], raws[2], raws[2], raws[2], raws[3]]
        keys, sizes = [], []
        for i, (raw, mode) in enumerate(zip(files, modes, strict=True)):
            bad.files[f"/hostile-bad/f{i}.fits"] = raw
            bad.modes[f"/hostile-bad/f{i}.fits"] = mode
            keys.append(f"s3://hostile-bad/f{i}.fits")
            sizes.append(0 if i == 4 else len(raw))  # frame 4: the index gives no filesize
        so = {"endpoint_url": bad.url, **CREDENTIALS}
        out, seen = run_child(
            ctx,
            options=so,
            frames=[frames_df(keys, sizes)],
            config={"intake_helio.max-file-bytes": cap},
        )
        sent = {p: bad.sent.get(p, 0) for p in bad.files if bad.modes[p] != "good"}
        reqs = {p: sum(1 for r in bad.requests if r[0] == p) for p in sent}
    seconds = time.perf_counter() - t0
    if "error" in out:
        return Row("hostile: endless frame server", 6, lost=6, seconds=seconds, note=out["error"])
    expected = ["ok", "ok", "read error", "read error", "image too large", "ok"]
    run = out["runs"][0]
    status = run["status"]
    lost = sum(a != b for a, b in zip(status, expected, strict=True))
    good = [i for i, e in enumerate(expected) if e == "ok"]
    lost += values_right([run["values"][i] for i in good], [means[0], means[1], means[3]])
    # bytes the server could push: what one read accepts plus socket buffers, per request
    limit = {p: (cap if p.endswith("f4.fits") else len(raws[2]) + MIB) for p in sent}
    over = [p for p in sent if sent[p] > reqs[p] * (limit[p] + 16 * MIB)]
    lost += len(over)
    growth = out["growth"]
    lost += growth > 200 * MIB
    taken = ", ".join(f"{p.rsplit('/', 1)[1]} {sent[p] / MIB:.1f} MiB/{reqs[p]} req" for p in sent)
    return Row(
        "hostile: endless frame server",
        len(keys),
        sum(status[i] == "ok" for i in good),
        sum(status[i] == expected[i] for i in range(len(keys)) if expected[i] != "ok"),
        3,
        lost=lost,
        secrets=secrets_in(ctx.capture.since(mark), seen),
        seconds=seconds,
        note=f"{'/'.join(status[2:5])}; sent {taken}; child RSS +{growth / MIB:.0f} MiB "
        f"(AS limit +1 GiB); frames in {run['frames_seconds']:.1f} s",
    )


# --------------------------------------------------------------------------- 4. zip bomb
def case_zip_bomb(ctx: Ctx) -> Row:
    fs = ctx.s3.filesystem()
    fs.mkdir("hostile-zip")
    root = "s3://hostile-zip/"
    bomb = zip_one(deflated_zeros(3072), 3 << 30, b"bomb_2020.csv")  # ~3 MB -> 3 GiB
    liar = zip_one(deflated_zeros(3072), 1024, b"liar_2020.csv")  # the same, says 1 KiB
    entries = [
        dataset_entry("bomb", index="./idx/", indextype="csv-zip"),
        dataset_entry("liar", index="./lie/", indextype="csv-zip"),
    ]
    fs.pipe_file("hostile-zip/catalog.json", catalog_json(root, entries).encode())
    fs.pipe_file("hostile-zip/idx/bomb_2020.csv.zip", bomb)
    fs.pipe_file("hostile-zip/lie/liar_2020.csv.zip", liar)
    span = ["--start", "2020-01-01", "--stop", "2020-02-01"]
    common = ["--endpoint-url", ctx.s3.endpoint_url, *cred_args()]
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    out, seen = run_child(
        ctx,
        options=ctx.options(),
        cli_calls=[["files", root, name, *span, *common] for name in ("bomb", "liar")],
    )
    seconds = time.perf_counter() - t0
    if "error" in out:
        return Row("hostile: csv-zip 3 MB -> 3 GiB", 2, lost=2, seconds=seconds, note=out["error"])
    lost, refused, notes = 0, 0, []
    for name, call in zip(("bomb", "liar"), out["calls"], strict=True):
        err = one_line(call["err"])
        named = len(err) == 1 and f"{name}_2020.csv.zip" in err[0] and call["code"] == 4
        refused += named
        lost += not named
        notes.append(f"{name}: exit {call['code']} {short(err[0] if err else '', 60)!r}")
    growth = out["growth"]
    lost += growth > 300 * MIB
    return Row(
        "hostile: csv-zip 3 MB -> 3 GiB",
        2,
        0,
        refused,
        2,
        lost=lost,
        secrets=secrets_in(ctx.capture.since(mark), seen),
        seconds=seconds,
        note=f"{len(bomb) / 1e6:.1f} MB zips; child RSS +{growth / MIB:.0f} MiB (< 300); "
        + "; ".join(notes),
    )


# --------------------------------------------------------------------------- 5. silent
def case_silent(ctx: Ctx) -> Row:
    import dask

    from intake_helio.testing.http_server import SilentServer

    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    lost, refused, notes, shown = 0, 0, [], []
    with SilentServer() as silent, dask.config.set(QUICK_TIMEOUTS):
        for argv, url in [
            (["ls", silent.url + "/bkt/"], silent.url + "/bkt/catalog.json"),
            (
                ["ls", "s3://bkt/", "--endpoint-url", silent.url, *cred_args()],
                "s3://bkt/catalog.json",
            ),
        ]:
            code, cout, cerr, took = cli(argv)
            lines = one_line(cerr)
            ok = code == 1 and len(lines) == 1 and url in lines[0] and took < 4
            refused += ok
            lost += not ok
            shown += [cout, cerr]
            notes.append(f"{argv[1][:5]} exit {code} in {took:.1f} s, {len(lines)} line")
        accepted = silent.accepted
    seconds = time.perf_counter() - t0
    return Row(
        "hostile: silent catalog host (ls)",
        0,
        0,
        refused,
        2,
        lost=lost,
        secrets=secrets_in(ctx.capture.since(mark), *shown),
        seconds=seconds,
        note="; ".join(notes) + f" (timeouts 1 s, 1 attempt); connections {accepted}: "
        f"{short(one_line(shown[-1])[0] if one_line(shown[-1]) else '', 70)!r}",
    )


# --------------------------------------------------------------------------- 6. huge
def plain_frames(n: int) -> tuple[list[bytes], list[float]]:
    """``n`` frames with their image in the primary HDU (float32) and their means."""
    from astropy.io import fits

    raws, means = [], []
    for i in range(n):
        data = np.random.default_rng(i).normal(100, 10, (SIZE, SIZE)).astype(np.float32)
        buf = io.BytesIO()
        fits.PrimaryHDU(data).writeto(buf)
        raws.append(buf.getvalue())
        means.append(float(np.mean(data, dtype=np.float64)))
    return raws, means


def case_huge(ctx: Ctx) -> Row:
    """A first frame declaring 200,000 x 200,000 pixels, tile-compressed among the base's
    (compressed) frames, and in its primary HDU among primary-HDU frames; and, noted only,
    the primary-HDU one among compressed frames (``hdu="auto"`` is resolved once by the
    probe: that frame is then looked up in HDU 1)."""
    base = ctx.base
    fs = ctx.s3.filesystem()
    compressed, plain = huge_compressed(), huge_image()
    fs.pipe_file("hostile-base/odd/huge-compressed.fits", compressed)
    fs.pipe_file("hostile-base/odd/huge-plain.fits", plain)
    raws, means = plain_frames(8)
    for i, raw in enumerate(raws):
        fs.pipe_file(f"hostile-base/plain/f{i}.fits", raw)
    plain_keys = [f"s3://hostile-base/plain/f{i}.fits" for i in range(len(raws))]
    tables = [
        frames_df(["s3://hostile-base/odd/huge-compressed.fits", *base.datakeys], [0] * 13),
        frames_df(["s3://hostile-base/odd/huge-plain.fits", *plain_keys], [0] * 9),
        frames_df([*base.datakeys[:6], "s3://hostile-base/odd/huge-plain.fits"], [0] * 7),
    ]
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    out, seen = run_child(ctx, options=ctx.options(), frames=tables)
    seconds = time.perf_counter() - t0
    if "error" in out:
        return Row("hostile: 200000^2-pixel frames", 22, lost=2, note=out["error"])
    lost, reasons, valued, messages = 0, 0, 0, []
    for run, expected in zip(out["runs"][:2], (base.expected_mean, means), strict=True):
        status = run["status"]
        reasons += status[0] == "image too large"
        valued += sum(s == "ok" for s in status[1:])
        lost += (status[0] != "image too large") + sum(s != "ok" for s in status[1:])
        lost += values_right(run["values"][1:], expected, rtol=1e-7)
        raised = run["raised"] or {}
        lost += raised.get("reason") != "image too large"
        messages.append(raised.get("message", ""))
    mixed = out["runs"][2]["status"][-1]
    growth = out["growth"]
    lost += growth > 200 * MIB
    said = messages[0].split(": ", 1)[-1] if messages else ""
    return Row(
        "hostile: 200000^2-pixel frames",
        22,
        valued,
        reasons,
        2,
        lost=lost,
        secrets=secrets_in(ctx.capture.since(mark), seen),
        seconds=seconds,
        note=f"80 GB declared in {len(compressed)} (RICE) and {len(plain)} bytes (HDU 0), "
        f"first of 12 and 8; child RSS +{growth / MIB:.0f} MiB; {short(said, 56)!r}; "
        f"HDU-0 frame among RICE frames: {mixed!r}",
    )


# --------------------------------------------------------------------------- 7. HDUs
def case_hdus(ctx: Ctx) -> Row:
    base = ctx.base
    fs = ctx.s3.filesystem()
    raw = many_hdus(20_000, ("IMAGE", "BINTABLE"))
    fs.pipe_file("hostile-base/odd/many-hdus.fits", raw)
    keys = ["s3://hostile-base/odd/many-hdus.fits", *base.datakeys]
    sizes = [len(raw)] + [0] * len(base.datakeys)
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    out, seen = run_child(ctx, options=ctx.options(), frames=[frames_df(keys, sizes)])
    seconds = time.perf_counter() - t0
    if "error" in out:
        return Row("hostile: 20,000 empty HDUs", len(keys), lost=1, note=out["error"])
    run = out["runs"][0]
    status = run["status"]
    raised = run["raised"] or {}
    message = raised.get("message", "")
    lost = (status[0] != "no image HDU") + sum(s != "ok" for s in status[1:])
    lost += values_right(run["values"][1:], base.expected_mean)
    lost += raised.get("reason") != "no image HDU" or len(message) >= 400
    lost += run["raise_seconds"] > 5
    return Row(
        "hostile: 20,000 empty HDUs",
        len(keys),
        sum(s == "ok" for s in status[1:]),
        int(status[0] == "no image HDU"),
        1,
        lost=lost,
        secrets=secrets_in(ctx.capture.since(mark), seen),
        seconds=seconds,
        note=f"{len(raw) / 1e6:.1f} MB file; reason alone in {run['raise_seconds']:.1f} s, "
        f"message {len(message)} chars; all frames {run['frames_seconds']:.1f} s; child RSS "
        f"+{out['growth'] / MIB:.0f} MiB",
    )


# --------------------------------------------------------------------------- 8. dates
def case_dates(ctx: Ctx) -> Row:
    import dask

    import intake_helio as ih

    demo = ctx.demo("hostile-dates", 12, dataset_id="aia_dates")
    fs = ctx.s3.filesystem()
    index = ctx.index_path(demo)
    lines = fs.cat_file(index).decode().splitlines()
    edits = {  # row number (0-based, after the header) -> (column, value)
        1: (0, "2300-01-01T00:00:00Z"),
        2: (1, "0001-01-01T00:00:00Z"),
        3: (3, "inf"),
        4: (3, "1e23"),
        5: (3, "-5"),
    }
    for row, (col, value) in edits.items():
        cells = lines[row + 1].split(",")
        cells[col] = value
        lines[row + 1] = ",".join(cells)
    fs.pipe_file(index, ("\n".join(lines) + "\n").encode())
    span = (START, START + pd.Timedelta("1D"))
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    bucket = ih.open_bucket(demo.root, ctx.options())
    ds = bucket[demo.dataset_id]
    listed = ds.files(*span, errors="report")
    bad = listed.attrs.get("bad_rows", [])
    frames = ds.to_dataarray(*span, on_error="nan", index_errors="report")
    with dask.config.set(scheduler="threads"):
        result = ih.irradiance(frames, progress=False)
    try:
        ds.files(*span)
        first = None
    except ih.IndexParseError as exc:
        first = exc
    seconds = time.perf_counter() - t0
    keep = [i for i in range(len(demo.datakeys)) if i not in edits]
    status = result["status"].to_numpy().astype(str)
    lost = values_right(result["irradiance"].to_numpy(), [demo.expected_mean[i] for i in keep])
    lost += int((status != "ok").sum())
    got = [(b.line, b.reason.split(" (")[0]) for b in bad]
    want = [(r + 2, ("start", "stop", "filesize", "filesize", "filesize")[r - 1]) for r in edits]
    lost += got != want or not all(b.file.endswith(f"{demo.dataset_id}_2020.csv") for b in bad)
    lost += first is None or "line 3" not in str(first)
    return Row(
        "hostile: index 2300/0001, inf sizes",
        len(demo.datakeys),
        int((status == "ok").sum()),
        len(bad),
        len(edits),
        lost=lost,
        secrets=secrets_in(ctx.capture.since(mark), bad, result, first, bucket, ds),
        seconds=seconds,
        note=f"report: lines {[b.line for b in bad]} ({', '.join(sorted({w for _, w in got}))}); "
        f"default raise: {short(str(first).split('.csv ', 1)[-1], 60)!r}",
    )


# --------------------------------------------------------------------------- 9. URL creds
def case_url_credentials(ctx: Ctx) -> Row:
    """Credentials in the URLs a user gives: the bucket ``http://reader:CANARY@host/bkt/``
    (its index names its frames on the same host, without credentials), an S3
    ``endpoint_url`` ``http://KEY:CANARY@127.0.0.1:port`` and ``s3://KEY:CANARY@bucket/``.
    Secrets are counted per place a user sees (the note names the places with any)."""
    import dask
    import xarray as xr

    import intake_helio as ih
    from intake_helio.testing.http_server import LocalHTTP

    raws, means = aia_frames(4)
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    seen: dict[str, list[Any]] = {}  # where a user sees it -> what

    def show(where: str, *things: Any) -> None:
        seen.setdefault(where, []).extend(things)

    def failed(where: str, exc: BaseException) -> None:
        """str/repr of the error, and apart the causes a traceback shows under it."""
        show(f"{where} error", f"{exc}", repr(exc))
        show(f"{where} error's causes", error_text(exc.__cause__ or exc.__context__))

    def attempt(where: str, call) -> None:
        try:
            call()
        except Exception as exc:
            failed(where, exc)

    lost, notes, clis = 0, [], []
    with LocalHTTP() as web:
        host = web.url.split("://")[1]
        root = f"http://reader:{CANARY_SECRET}@{host}/bkt/"
        rows = []
        for i, raw in enumerate(raws):
            t = START + pd.Timedelta(minutes=4 * i)
            web.put(f"/bkt/data/f{i}.fits", raw)
            key = f"{web.url}/bkt/data/f{i}.fits"
            rows.append([iso(t), iso(t + pd.Timedelta("4min")), key, len(raw)])
        web.put("/bkt/catalog.json", catalog_json(root, [dataset_entry("aia", index="./idx/")]))
        web.put("/bkt/idx/aia_2020.csv", index_csv(rows))
        out = ctx.tmp / "url-credentials"
        result, summary = job(ctx, root, "aia", out, {})
        status = result["status"].to_numpy().astype(str)
        valued = int((status == "ok").sum())
        lost += len(raws) - valued + values_right(result["irradiance"].to_numpy(), means)
        written = [p for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"]
        show("CSV, netCDF, PNG, parts", *(p.read_bytes().decode("latin-1") for p in written))
        with xr.open_dataset(out / "irradiance.nc") as nc:
            show("netCDF attrs", nc.attrs, [nc[v].attrs for v in nc.variables])
        show("parts.zarr identity", (out / "parts.zarr" / "_resume" / ".zattrs").read_text())
        bucket = ih.open_bucket(root)
        frames = bucket["aia"].to_dataarray(START, START + pd.Timedelta("1D"))
        show("reprs", result, result.attrs, summary.text(), bucket, bucket["aia"], frames.attrs)
        attempt("unknown dataset", lambda: bucket["nope"])
        attempt("reversed range", lambda: bucket["aia"].files("2020-07-01", "2020-06-01"))
        attempt("missing bucket", lambda: ih.open_bucket(root.replace("/bkt/", "/none/")))
        for where, text in intake_yaml(root, ctx.tmp / "intake").items():
            show(where, text)
        basic = any(r.headers.get("authorization", "").startswith("Basic ") for r in web.requests)
        lost += not basic  # control: the password in the URL was really used
        notes.append(f"http bucket: {valued}/{len(raws)} valued, basic auth sent: {basic}")
    masked = "***@" in shown_text(*seen.get("reprs", []))
    lost += not masked  # control: the URLs are shown, masked
    # an S3 endpoint with credentials in its URL, and credentials in the s3:// URL
    s3_host = ctx.s3.endpoint_url.split("://")[1]
    for name, root, endpoint in [
        (
            "endpoint_url",
            "s3://hostile-base/",
            f"http://{CANARY_KEY}:{CANARY_SECRET}@{s3_host}",
        ),
        (
            "s3://KEY:SECRET@",
            f"s3://{CANARY_KEY}:{CANARY_SECRET}@hostile-base/",
            ctx.s3.endpoint_url,
        ),
    ]:
        out2 = ctx.tmp / re.sub(r"\W+", "-", name)
        so = {**CREDENTIALS, "endpoint_url": endpoint}
        try:
            with dask.config.set(QUICK_TIMEOUTS):
                res, summ = job(ctx, root, ctx.base.dataset_id, out2, so)
            show(f"{name} job", res, res.attrs, summ.text(), files_text(out2))
            notes.append(f"{name}: ran, {int((res['status'] == 'ok').sum())} ok")
        except Exception as exc:
            failed(f"{name} job", exc)
            notes.append(f"{name}: {type(exc).__name__}")
        _, cout, cerr, _ = cli(["ls", root, *cred_args(), "--endpoint-url", endpoint])
        show(f"{name} CLI ls", cout, cerr)
        clis.append(cout + cerr)
    captured = ctx.capture.since(mark)
    for text in clis:  # the CLI's lines, counted above, reach the captured stderr too
        captured = captured.replace(text.strip(), "", 1)
    show("stdout/stderr and logs", captured)
    seconds = time.perf_counter() - t0
    found = {where: secrets_in(*things) for where, things in seen.items()}
    leaks = ", ".join(f"{where} {n}" for where, n in found.items() if n)
    return Row(
        "hostile: credentials in URLs",
        len(raws),
        valued,
        0,
        3,
        lost=lost,
        secrets=sum(found.values()),
        seconds=seconds,
        note="; ".join(notes) + f"; searched {len(seen)} places; secrets in: {leaks or 'none'}",
    )


def intake_yaml(root: str, tmp: Path) -> dict[str, str]:
    """The intake YAML, describe() and reprs of a bucket and a frames source at ``root``
    (intake 1 drivers and intake 2 readers)."""
    shown: dict[str, str] = {}
    try:
        from intake_helio.intake import HelioBucketCatalog, HelioFramesSource

        cat = HelioBucketCatalog(root)
        src = HelioFramesSource(root, "aia", START, START + pd.Timedelta("1D"))
        shown["intake 1 YAML/describe"] = "\n".join(
            [cat.yaml(), str(cat.describe()), src.yaml(), str(src.describe()), repr(src)]
        )
    except Exception as exc:
        shown["intake 1 error"] = error_text(exc)
    try:
        from intake.readers.entry import Catalog

        import intake_helio as ih

        cat2 = Catalog()
        cat2["bucket"] = ih.HelioBucketReader(root)
        cat2["frames"] = ih.HelioFramesReader(root, "aia", START, START + pd.Timedelta("1D"))
        tmp.mkdir(parents=True, exist_ok=True)
        path = tmp / "catalog.yaml"
        cat2.to_yaml_file(str(path))
        shown["intake 2 YAML"] = path.read_text()
        shown["intake 2 reprs"] = f"{cat2!r} {cat2['bucket']!r} {cat2['frames']!r}"
    except Exception as exc:
        shown["intake 2 error"] = error_text(exc)
    return shown


# --------------------------------------------------------------------------- 10. died
def descendants() -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return set()


def case_worker_death(ctx: Ctx, workers: int = 2) -> Row:
    import dask

    import intake_helio as ih
    from intake_helio.app.job import run_irradiance_job

    n, victim = 12, 9
    raws, means = aia_frames(n, size=64)
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    with BadServer() as bad:
        root = bad.url + "/bkt/"
        rows = []
        for i, raw in enumerate(raws):
            t = START + pd.Timedelta(minutes=4 * i)
            bad.files[f"/bkt/data/f{i:02d}.fits"] = raw
            size = 0 if i == victim else len(raw)  # 0: the index does not know its size
            rows.append([iso(t), iso(t + pd.Timedelta("4min")), f"{root}data/f{i:02d}.fits", size])
        bad.modes[f"/bkt/data/f{victim:02d}.fits"] = "endless"
        bad.files["/bkt/catalog.json"] = catalog_json(
            root, [dataset_entry("aia", "./idx/")]
        ).encode()
        bad.files["/bkt/idx/aia_2020.csv"] = index_csv(rows).encode()
        out = ctx.tmp / "worker-death"
        settings = {
            # a worker's death fails its tasks at once (the default, 3, kills 4 workers per
            # try) and each worker holds only the task it runs, so that a death takes no
            # queued bystander with it (the engine retries those, but only 3 times)
            "distributed.scheduler.allowed-failures": 0,
            "distributed.scheduler.worker-saturation": 1.0,
            "intake_helio.max-file-bytes": 1 << 41,
        }
        error = None
        with dask.config.set(settings):
            with ih.cluster("local", workers=workers, worker_cores=1, worker_memory=0.6) as client:
                up = time.perf_counter() - t0
                started = descendants()
                seen_pids: set[int] = set()
                watching = threading.Event()
                watching.set()

                def watch() -> None:  # every process started below this one meanwhile
                    while watching.is_set():
                        seen_pids.update(descendants() - started)
                        time.sleep(0.1)

                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()
                try:
                    result, _ = run_irradiance_job(
                        root, "aia", START, START + pd.Timedelta("1D"), str(out),
                        storage_options={}, cluster_kind=None, part_size=PART, progress=False,
                        plot=False,
                    )  # fmt: skip
                except Exception as exc:
                    error, result = exc, None
                logs = faultkit.cluster_logs(client)
            watching.clear()
            watcher.join(5)
        sent = bad.sent.get(f"/bkt/data/f{victim:02d}.fits", 0)
    seconds = time.perf_counter() - t0
    if result is None:
        return Row(
            "hostile: read kills its worker", n, lost=n, seconds=seconds,
            note=f"job failed: {short(error_text(error), 120)}",
        )  # fmt: skip
    saved = pd.read_csv(out / "irradiance.csv", keep_default_na=False)
    status = saved["status"].astype(str).tolist()
    expected = ["worker died while reading" if i == victim else "ok" for i in range(n)]
    lost = sum(a != b for a, b in zip(status, expected, strict=True)) + abs(len(status) - n)
    good = [i for i in range(n) if i != victim]
    values = pd.to_numeric(saved["irradiance"], errors="coerce").to_numpy()
    others = dict(Counter(status[i] for i in good)) if len(status) == n else status
    lost += values_right(values[good], [means[i] for i in good])
    return Row(
        "hostile: read kills its worker",
        n,
        sum(status[i] == "ok" for i in good),
        int(status[victim] == expected[victim]),
        1,
        lost=lost,
        secrets=secrets_in(ctx.capture.since(mark), logs, files_text(out), result),
        seconds=seconds,
        note=f"victim: {status[victim]!r}; others: {others}; {len(seen_pids)} workers restarted "
        f"(0.6 GiB each, allowed-failures 0, saturation 1.0); endless body sent "
        f"{sent / 2**30:.1f} GiB in all; cluster up in {up:.0f} s",
    )


# --------------------------------------------------------------------------- 11. out dir
def snapshot(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under ``root`` (not following links): kind and content or target."""
    out: dict[str, tuple[str, bytes]] = {}
    if not root.exists() and not root.is_symlink():
        return out
    for p in sorted([root, *root.rglob("*")]):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p).encode())
        elif p.is_file():
            out[rel] = ("file", p.read_bytes())
        else:
            out[rel] = ("dir", b"")
    return out


def changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def legacy_parts(clean: Path) -> tuple[bytes, bytes]:
    """``(manifest.json, part-000000.csv)`` as an older version saved them for the run in
    ``clean`` (its parts were CSV files in ``parts/``; now it is the Zarr store's)."""
    import zarr

    from intake_helio.app.tables import write_csv

    group = zarr.open_group(str(clean / "parts.zarr"), mode="r", zarr_format=2)
    identity = {k: v for k, v in group["_resume"].attrs["identity"].items() if k != "job"}
    table = pd.read_csv(clean / "irradiance.csv", keep_default_na=False, dtype=str)
    part = clean / "legacy-part-000000.csv"
    write_csv(table.drop(columns="units").iloc[:PART], part)
    return json.dumps(identity, indent=1, sort_keys=True).encode(), part.read_bytes()


def case_out_dir(ctx: Ctx) -> Row:
    base = ctx.base
    n = len(base.datakeys)
    args = [
        "irradiance", base.root, base.dataset_id, "--start", str(START),
        "--stop", str(START + pd.Timedelta("1D")), "--cluster", "none", "--no-progress",
        "--part-size", str(PART), "--endpoint-url", ctx.s3.endpoint_url, *cred_args(),
    ]  # fmt: skip
    work = ctx.tmp / "outdir"
    foreign = work / "foreign"  # outside every --out
    foreign.mkdir(parents=True)
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    clean = work / "clean"
    code, cout, cerr, _ = cli([*args, "--out", str(clean)])
    if code != 0:
        return Row("hostile: output directory", n, lost=1, note=f"clean run exit {code}: {cerr}")
    clean_csv = (clean / "irradiance.csv").read_bytes()
    manifest, part0 = legacy_parts(clean)
    table = pd.read_csv(io.BytesIO(clean_csv), keep_default_na=False)
    values_ok = values_right(table["irradiance"].to_numpy(), base.expected_mean) == 0
    other = table.assign(
        datakey=table["datakey"].str.replace("s3://hostile-base/", "s3://someone-else/"),
        time=(pd.to_datetime(table["time"]) + pd.Timedelta("3650D")).dt.strftime(
            "%Y-%m-%dT%H:%M:%S.%f"
        ),
    )
    other_csv = other.to_csv(index=False, lineterminator="\n").encode()
    results: list[tuple[str, int, str]] = []  # (scenario, lost, note)
    shown: list[str] = [cout, cerr]

    said: dict[str, str] = {}

    def run(name: str, out: Path, *extra: str) -> tuple[int, str, bytes | None]:
        code, o, e, _ = cli([*args, "--out", str(out), *extra])
        shown.extend([o, e])
        said[name] = o
        csv = out / "irradiance.csv"
        got = csv.read_bytes() if csv.is_file() and not csv.is_symlink() else None
        return code, e, got

    def verdict(code: int, err: str, got: bytes | None, told: str = "") -> tuple[int, str]:
        """Nothing merged: the clean CSV (and, when ``told``, a note naming what was not
        used), or a refusal in one clear line."""
        lines = one_line(err.replace(str(work) + "/", ""))
        if code == 0:
            if got != clean_csv:
                return 1, "ran, CSV MERGED/WRONG"
            if not told:
                return 0, "ran, CSV = clean"
            notes = [
                x.replace(str(work) + "/", "")
                for x in said[current[0]].splitlines()
                if x.startswith("note:")
            ]
            named = [x for x in notes if told in x]
            if not named:
                return 1, f"ran, CSV = clean, but no note names {told} (silently dropped)"
            return 0, f"ran, CSV = clean; {short(named[0], 70)!r}"
        if code in (1, 2) and len(lines) == 1 and lines[0].startswith("intake-helio: error:"):
            return 0, f"refused: {short(lines[0][21:], 60)!r}"
        return 1, f"exit {code}, {len(lines)} lines: {short(err, 60)!r}"

    current = [""]

    # a) a part of another dataset, numbered past our parts, under our own manifest
    out = work / "planted"
    (out / "parts").mkdir(parents=True)
    (out / "parts" / "manifest.json").write_bytes(manifest)
    (out / "parts" / "part-000000.csv").write_bytes(part0)
    (out / "parts" / "part-000099.csv").write_bytes(other_csv)
    current[0] = "planted"
    code, err, got = run("planted", out, "--resume")
    bad, note = verdict(code, err, got, "part-000099")
    if got is not None and b"someone-else" in got:
        bad, note = bad + 1, note + " (foreign rows in the CSV)"
    results.append(("part-000099 of another dataset", bad, note))

    # b) a 12-row part where parts hold 6 frames
    out = work / "twelve"
    (out / "parts").mkdir(parents=True)
    (out / "parts" / "manifest.json").write_bytes(manifest)
    (out / "parts" / "part-000000.csv").write_bytes(clean_csv)
    current[0] = "twelve"
    code, err, got = run("twelve", out, "--resume")
    results.append(("12-row part in 6-frame parts", *verdict(code, err, got, "part-000000")))

    # c) a foreign parts/ without our manifest: nothing of it deleted
    out = work / "foreign-parts"
    (out / "parts").mkdir(parents=True)
    (out / "parts" / "part-000000.csv").write_bytes(other_csv)
    (out / "parts" / "part-000001.csv").write_bytes(other_csv)
    (out / "parts" / "notes.txt").write_text("someone's work\n")
    before = snapshot(out / "parts")
    current[0] = "foreign"
    code, err, got = run("foreign", out)
    after = snapshot(out / "parts")
    gone = [k for k in before if before[k] != after.get(k)]
    bad, note = verdict(code, err, got)
    results.append(
        ("foreign parts/, no manifest", bad + len(gone), f"{note}; foreign changed {gone}")
    )

    # d) parts/ a symlink to a directory elsewhere: the target untouched
    out = work / "linked"
    out.mkdir()
    target = foreign / "their-parts"
    target.mkdir()
    (target / "part-000000.csv").write_bytes(other_csv)
    (target / "manifest.json").write_text('{"theirs": true}')
    (out / "parts").symlink_to(target, target_is_directory=True)
    before = snapshot(target)
    current[0] = "linked"
    code, err, got = run("linked", out)
    touched = changed(before, snapshot(target))
    bad, note = verdict(code, err, got)
    results.append(("symlinked parts/", bad + len(touched), f"{note}; target changed {touched}"))

    # e) symlinks planted at the temporary names a run writes through (this process's pid),
    # in a fresh output directory and in one resumed (our manifest and part 0)
    victims = []
    pid = os.getpid()
    for label, resume in (("fresh", False), ("resumed", True)):
        out = work / f"tmp-links-{label}"
        (out / "parts").mkdir(parents=True)
        if resume:
            (out / "parts" / "manifest.json").write_bytes(manifest)
            (out / "parts" / "part-000000.csv").write_bytes(part0)
        names = [f".irradiance.{ext}.tmp-{pid}" for ext in ("csv", "nc", "png")]
        names += [f"parts/.manifest.json.tmp-{pid}", f"parts/.part-000001.csv.tmp-{pid}"]
        if not resume:
            (out / "parts").rmdir()
            names = names[:3]
        for i, name in enumerate(names):
            victim = foreign / f"victim-{label}-{i}.txt"
            victim.write_text(f"victim {i}: must stay as it is\n")
            victims.append(victim)
            (out / name).symlink_to(victim)
        before = {v: v.read_bytes() for v in victims}
        current[0] = f"tmp-{label}"
        code, err, got = run(current[0], out, *(["--resume"] if resume else []))
        hit = [v.name for v in victims if not v.is_file() or v.read_bytes() != before[v]]
        bad, note = verdict(code, err, got)
        results.append(
            (f"tmp-name symlinks ({label})", bad + len(hit), f"{note}; victims hit {hit}")
        )

    # f) symlinks at the output files' own names
    out = work / "out-links"
    out.mkdir()
    links = []
    for name in ("irradiance.csv", "irradiance.nc", "irradiance.png"):
        victim = foreign / f"victim-{name}"
        victim.write_text(f"{name}: must stay as it is\n")
        links.append((victim, victim.read_bytes()))
        (out / name).symlink_to(victim)
    current[0] = "out-links"
    code, err, got = run(current[0], out)
    hit = [v.name for v, b in links if not v.is_file() or v.read_bytes() != b]
    bad, note = verdict(code, err, got)
    results.append(("symlinks at output names", bad + len(hit), f"{note}; victims hit {hit}"))
    seconds = time.perf_counter() - t0
    lost = sum(b for _, b, _ in results) + (not values_ok)
    for name, b, note in results:
        note = note.replace(str(work) + "/", "")
        ctx.say(f"    11. {name}: {'LOST ' + str(b) if b else 'ok'}: {note}")
    secrets = secrets_in(ctx.capture.since(mark), *shown, files_text(work))
    return Row(
        "hostile: output directory",
        n,
        n if values_ok else 0,
        sum(1 for _, b, _ in results if not b),
        len(results),
        lost=lost,
        secrets=secrets,
        seconds=seconds,
        note="; ".join(f"{name}: {'ok' if not b else 'LOST ' + str(b)}" for name, b, _ in results),
    )


# --------------------------------------------------------------------------- 12, 13
def case_redirects(ctx: Ctx) -> Row:
    """Row 12: redirects, internal hosts and credentials (benchmarks/hostile_doors.py)."""
    import hostile_doors

    return hostile_doors.case_redirects(ctx, sys.modules[__name__])


def case_writer_and_text(ctx: Ctx) -> Row:
    """Row 13: one writer, index lines and text from content (benchmarks/hostile_doors.py)."""
    import hostile_doors

    return hostile_doors.case_writer_and_text(ctx, sys.modules[__name__])


# --------------------------------------------------------------------------- runner
CASES = {
    1: case_datakeys,
    2: case_indexes,
    3: case_endless,
    4: case_zip_bomb,
    5: case_silent,
    6: case_huge,
    7: case_hdus,
    8: case_dates,
    9: case_url_credentials,
    10: case_worker_death,
    11: case_out_dir,
    12: case_redirects,
    13: case_writer_and_text,
}


def run(tmp: Path, capture: Capture, say, *, worker_death: bool = True, only=None) -> list[Row]:
    """The hostile rows, each case against its own buckets on one local S3 server."""
    from intake_helio.catalog.cache import CACHE_ENV
    from intake_helio.testing.local_s3 import LocalS3

    wanted = [k for k in CASES if (only is None or k in only) and (worker_death or k != 10)]
    tmp.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp / "cache")  # the catalog cache stays in tmp
    try:
        with LocalS3(process=True) as s3:
            ctx = Ctx(s3, capture, tmp, say)
            t0 = time.perf_counter()
            ctx.base = ctx.demo("hostile-base", 12)
            took = time.perf_counter() - t0
            say(f"  hostile: local S3 up and base frames written in {took:.1f} s")
            for k in wanted:
                try:
                    row = CASES[k](ctx)
                except Exception as exc:  # a case that breaks is a lost row, not a crash
                    row = Row(f"hostile {k}: {CASES[k].__name__}", lost=1,
                              note=f"CRASHED: {short(error_text(exc), 150)}")  # fmt: skip
                rows.append(row)
                say(f"  {k}. {row.scenario}: {row.seconds:.1f} s, lost {row.lost}")
    finally:
        if old is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = old
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-worker-death", action="store_true", help="skip case 10 (a cluster)")
    ap.add_argument("--only", default=None, help="comma-separated case numbers, e.g. 1,3")
    args = ap.parse_args(argv)
    only = {int(x) for x in args.only.split(",")} if args.only else None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="intake-helio-hostile-") as tmp_name:
        tmp = Path(tmp_name)
        capture = Capture(tmp / "captured-output.txt")
        capture.say("hostile-content benchmark: the rows of issue 14")
        capture.start()
        try:
            rows = run(tmp, capture, capture.say, worker_death=not args.no_worker_death, only=only)
        finally:
            capture.stop()
        searched = capture.path.stat().st_size
        records = len(capture.records.lines)
    print_table(rows, print)
    lost = sum(r.lost for r in rows)
    secrets = sum(r.secrets for r in rows)
    print(
        f"searched for secrets: {searched:,} bytes of stdout/stderr, {records:,} log records "
        "(DEBUG), the children's output, messages, reprs, intake YAML and every file written"
    )
    print(f"total: {lost} lost, {secrets} secrets found; {time.perf_counter() - started:.0f} s")
    return 1 if lost or secrets else 0


if __name__ == "__main__":
    sys.exit(main())

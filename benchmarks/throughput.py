"""Irradiance throughput over full-size AIA-like frames from a local S3 endpoint (issue 8).

Writes ``--frames`` synthetic 4096² int16 RICE_1 frames (~15 MB, one row per tile) to a moto
S3 server running in a child process, then times, side by side in this process tree:

(a)  the seed's per-file code (a new boto3 Session + client per file, ``get_object``, astropy
     ``fits.open(BytesIO)``, ``hdul[1].data.mean()``), one task per file with ``client.map``
     on a LocalCluster of one worker with 2 threads (Daskhub's way);
(b)  the same code on a LocalCluster of 2 single-thread worker processes;
(c)  intake-helio: ``open_bucket(...)[id].to_dataarray(on_error="nan")`` and
     ``irradiance(frames)`` on ``intake_helio.compute.clusters.cluster("local", workers=2,
     worker_cores=1)`` started under ``dask.config.set(TUNED)`` (see below);
(c0) with ``--compare-defaults`` only: the same job on a plain ``distributed.LocalCluster``
     of 2 worker processes with dask's default settings (not run by default: its 2 idle
     workers take CPU from every other method);
(d)  the lean limit: 2 plain processes (``ProcessPoolExecutor``, spawned without dask's
     malloc setting), each with ONE boto3 client made by the pool initializer; per frame one
     GET, the FITS bintable descriptors parsed here and the tiles decoded with
     ``imagecodecs.rcomp_decode``, then the mean. No dask, no xarray, nothing from
     intake_helio: an independent limit;
(e)  intake-helio with ``cutout=dict(y=slice(1000, 1200))`` (200 rows) on the (c) cluster,
     which fetches only the header, the tile table and the touched tiles (ranged reads);
(f)  ``irradiance`` on a selection, ``frames.isel(time=slice(0, None))``, on the (c) cluster
     (the frame engine finds files and window in the selected array's graph);
(g)  ``map_frames(frames, ["mean", "max", "min", "std"])``: four built-ins from one read;
(h)  ``map_frames(frames, user_peak)``, a user's Python function ``np.nanmax(data)`` on the
     float32 frame;
(i)  the generic ``frames.mean(("y", "x")).compute()`` (dask computes each frame, then the
     mean), for scale. ``--skip-engine`` leaves (f)-(i) out;
(j)  ``irradiance(frames, correct_degradation=True, correction_table=...)`` on the (c)
     cluster, with the correction table aiapy ships in its test data (issue 24);
(k)  the user's way to the same values, on the first ``--aiapy-sample`` frames in the (d)
     pool's 2 processes: the file (one GET), ``sunpy.map.Map`` of it,
     ``aiapy.calibrate.correct_degradation`` and ``np.nanmean``. Without aiapy, or with
     ``--skip-calibration``, (j) and (k) are left out.

Why (c) and (c0): ``TUNED`` (``intake_helio.compute.clusters.LOCAL_WORKER_CONFIG``, which
``cluster("local")`` applies itself) changes dask's defaults for the workers.
(1) dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536``, and setting any glibc
malloc variable freezes glibc's mmap threshold at 128 KiB: every larger allocation is then a
fresh mmap with page faults. aiohttp (under s3fs) reads a 15 MB object as 256 KiB chunks
plus one joined copy, ~7,000 extra page faults a frame, ~20 % of the CPU a frame costs;
(c) leaves the variable unset. (2) Idle dask processes take CPU from the busy ones: the
statistical profiler (stacks sampled every 10 ms, for a dashboard ``cluster("local")``
does not serve), the event-loop tick (every 20 ms), memory checks (every 100 ms, in each
worker and each nanny) and system metrics (every 500 ms). (c) turns the profiler off,
ticks every second, checks memory every second and metrics every 2 s (measured here:
8 -> 2 ms/s of CPU per idle worker, 22 -> 6 ms/s in the scheduler's process). The seed
clusters (a, b) get (2) too, ``QUIET``, so that while idle they take little CPU from the
other methods (it also makes the seed a little faster, never slower); they keep dask's
malloc setting, as on Daskhub.

Each method is warmed up once outside the timed region (cluster start, imports, first
connections); then the repetitions are interleaved (a, b, [c0,] c, d, e, a, ...) so that the
machine's noise hits every method alike, and each timing covers only the processing of the
N frames (for c, c0 and e: the ``irradiance`` call on an array opened just before).
Reported: every run; the median files/s, MB/s (file bytes / s) and CPU time per frame of the
method's worker processes, of this process (schedulers, clients) and of the S3 server; the
ratios c/a, c/b, c/d; and the bytes the server sent for (e) and for a full pass, counted
by a TCP relay in front of the server (HTTP response bytes, headers included). Every
method's per-frame values are checked against each other and the generator's means.

(a) and (b) run the seed's code as published, ``hdul[1].data.mean()``, which is NaN for any
frame with a BLANK pixel (these frames have 0.1 %); for the value check the same code is run
once more, untimed, with ``np.nanmean`` (which costs more than ``.mean()``: both are printed).

Goals: c >= 5 x a and c >= 0.9 x d (with c the faster of (c) and (c0) when both run);
f >= 0.9 x d, g >= 0.9 x d, h >= 0.75 x d, j >= 0.95 x c (and (j) equal to (k)); the exit
status is 1 when one fails or values disagree.

    python benchmarks/throughput.py [--frames 30] [--size 4096] [--repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import numpy as np

BUCKET = "bench-throughput"
MALLOC_VAR = "MALLOC_TRIM_THRESHOLD_"


def _configs() -> tuple[dict, dict]:
    """``TUNED`` and ``QUIET`` (imported here: the lean processes (d) import nothing of ours)."""
    from intake_helio.compute.clusters import LOCAL_WORKER_CONFIG

    tuned = dict(LOCAL_WORKER_CONFIG)
    return tuned, {k: v for k, v in tuned.items() if MALLOC_VAR not in k}


CUTOUT_ROWS = slice(1000, 1200)
RTOL = 1e-6


# --------------------------------------------------------------------------- (a), (b): seed
def seed_mean(
    datakey: str, endpoint_url: str, key: str, secret: str, nan_aware: bool = False
) -> float:
    """The seed's per-file code: new Session + client, get_object, astropy, mean.

    ``nan_aware=True`` (used only for the value check, untimed) takes ``np.nanmean``: the
    seed's ``.mean()`` is NaN for a frame with any BLANK pixel.
    """
    import boto3
    from astropy.io import fits

    session = boto3.session.Session()
    s3 = session.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    bucket, _, name = datakey.removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=name)["Body"].read()
    with fits.open(io.BytesIO(body)) as hdul:
        data = hdul[1].data
        return float(np.nanmean(data) if nan_aware else data.mean())


# --------------------------------------------------------------------------- (d): lean limit
_LEAN: dict = {}


def lean_init(endpoint_url: str, key: str, secret: str) -> None:
    """Pool initializer: one boto3 client per process, reused for every frame."""
    import boto3

    _LEAN["s3"] = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )


def aiapy_table_path() -> str:
    """The correction table aiapy ships in its test data (no network)."""
    import aiapy

    data = os.path.join(os.path.dirname(aiapy.__file__), "tests", "data")
    return os.path.join(data, "aia_V8_20171210_050627_response_table.txt")


def aiapy_user_mean(datakey: str) -> float:
    """(k) the user's way: the file, a sunpy Map, aiapy's correct_degradation, the mean."""
    import tempfile
    import warnings

    import sunpy.map
    from aiapy.calibrate import correct_degradation
    from aiapy.calibrate.util import get_correction_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "table" not in _LEAN:
            _LEAN["table"] = get_correction_table(aiapy_table_path())
        bucket, _, name = datakey.removeprefix("s3://").partition("/")
        body = _LEAN["s3"].get_object(Bucket=bucket, Key=name)["Body"].read()
        with tempfile.NamedTemporaryFile(suffix=".fits") as f:
            f.write(body)
            f.flush()
            smap = correct_degradation(sunpy.map.Map(f.name), correction_table=_LEAN["table"])
            return float(np.nanmean(smap.data))


def _card_value(raw: bytes):
    raw = raw.strip()
    if raw.startswith(b"'"):
        return raw[1 : raw.index(b"'", 1)].decode().strip()
    raw = raw.split(b"/", 1)[0].strip()
    if raw in (b"T", b"F"):
        return raw == b"T"
    try:
        return int(raw)
    except ValueError:
        return float(raw)


def _header(buf: memoryview, off: int) -> tuple[dict, int]:
    """Cards of the header at ``off`` (keyword -> value) and the offset of its data."""
    cards = {}
    while True:
        block = bytes(buf[off : off + 2880])
        if len(block) < 2880:
            raise ValueError("truncated header")
        off += 2880
        for i in range(0, 2880, 80):
            key = block[i : i + 8].strip().decode()
            if key == "END":
                return cards, off
            if block[i + 8 : i + 10] == b"= " and key not in cards:
                cards[key] = _card_value(block[i + 10 : i + 80])


def lean_mean(datakey: str, rows: tuple[int, int] | None = None) -> float:
    """One GET, decode the RICE_1 tiles of extension 1 with imagecodecs, mean of valid pixels."""
    import imagecodecs

    bucket, _, name = datakey.removeprefix("s3://").partition("/")
    buf = memoryview(_LEAN["s3"].get_object(Bucket=bucket, Key=name)["Body"].read())
    h0, off = _header(buf, 0)
    if h0.get("NAXIS", 0):
        raise ValueError("expected an empty primary HDU")
    h, data = _header(buf, off)
    assert h["ZCMPTYPE"] == "RICE_1" and h["ZBITPIX"] == 16 and h["TFIELDS"] == 1
    ny, nx = h["ZNAXIS2"], h["ZNAXIS1"]
    assert h.get("ZTILE1", nx) == nx and h.get("ZTILE2", 1) == 1 and h["NAXIS2"] == ny
    assert h["TFORM1"].upper().startswith("1PB") and h["NAXIS1"] == 8
    params = {h.get(f"ZNAME{i}"): h.get(f"ZVAL{i}") for i in range(1, 10) if f"ZNAME{i}" in h}
    nblock = params.get("BLOCKSIZE", 32)
    blank = h.get("ZBLANK", h.get("BLANK"))
    heap = data + h.get("THEAP", 8 * ny)
    desc = np.frombuffer(buf, dtype=">i4", count=2 * ny, offset=data).reshape(ny, 2).tolist()
    y0, y1 = rows or (0, ny)
    out = np.empty((y1 - y0, nx), dtype=np.int16)
    for y in range(y0, y1):
        n, o = desc[y]
        tile = buf[heap + o : heap + o + n]
        imagecodecs.rcomp_decode(tile, shape=(nx,), dtype=np.int16, nblock=nblock, out=out[y - y0])
    total, count = int(out.sum(dtype=np.int64)), out.size
    if blank is not None:
        nb = int(np.count_nonzero(out == blank))
        total, count = total - blank * nb, count - nb
    return (h.get("BSCALE", 1.0) * total + h.get("BZERO", 0.0) * count) / count


def _getenv(name: str) -> str | None:
    """``os.environ.get(name)`` where it runs (``os.environ.get`` itself would be pickled with
    this process's environment)."""
    return os.environ.get(name)


def _dask_config(key: str):
    """A dask config value where it runs."""
    import dask

    return dask.config.get(key)


def _pool_ready(_: int) -> int:
    time.sleep(0.2)  # keep this process busy so that the other one takes the next call
    return os.getpid()


# --------------------------------------------------------------------------- byte counter
class ByteCounter:
    """A TCP relay on 127.0.0.1 in front of an HTTP server, counting the bytes it sends back."""

    def __init__(self, upstream_url: str):
        u = urlsplit(upstream_url)
        self.upstream = (u.hostname, u.port)
        self.down = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.down = 0
            self.connections = 0

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        buf = bytearray(1 << 20)
        try:
            while True:
                n = src.recv_into(buf)
                if not n:
                    break
                dst.sendall(memoryview(buf)[:n])
                if count:
                    with self._lock:
                        self.down += n
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            src.close()  # each socket is the source of one pump: closed once

    def close(self) -> None:
        self._closed = True
        self._sock.close()


# --------------------------------------------------------------------------- runners
def user_peak(data, header):
    """A user's own per-frame function, as a notebook would write it."""
    return np.nanmax(data)


#: What each intake-helio method computes on the opened frames -> per-frame values.
def _irradiance(frames):
    from intake_helio.compute.reduction import irradiance

    res = irradiance(frames, progress=False)
    return res["status"].values, res["irradiance"].values


def _irradiance_selection(frames):
    return _irradiance(frames.isel(time=slice(0, None)))


def _four_builtins(frames):
    from intake_helio.compute.engine import map_frames

    res = map_frames(frames, ["mean", "max", "min", "std"], progress=False)
    return res["status"].values, res["mean"].values


def _user_function(frames):
    from intake_helio.compute.engine import map_frames

    res = map_frames(frames, user_peak, progress=False)
    return res["status"].values, res["user_peak"].values


def _generic_mean(frames):
    return np.array(["ok"] * frames.sizes["time"]), frames.mean(("y", "x")).compute().values


def _calibrated(frames):
    from intake_helio.compute.reduction import irradiance

    table = aiapy_table_path()
    res = irradiance(frames, progress=False, correct_degradation=True, correction_table=table)
    return res["status"].values, res["irradiance"].values


HOW = {
    "irradiance": _irradiance,
    "selection": _irradiance_selection,
    "builtins": _four_builtins,
    "user": _user_function,
    "generic": _generic_mean,
    "calibrated": _calibrated,
}


def _library(root: str, so: dict, ds, cutout=None, how: str = "irradiance"):
    """Open the frames as intake-helio users do; return a callable that runs the job."""
    import intake_helio as ih

    kwargs = {"on_error": "nan"}
    if cutout is not None:
        kwargs["cutout"] = cutout
    frames = ih.open_bucket(root, so)[ds.dataset_id].to_dataarray(ds.start, ds.stop, **kwargs)
    if frames.sizes["time"] != len(ds.datakeys):
        raise RuntimeError(f"opened {frames.sizes['time']} frames, wrote {len(ds.datakeys)}")

    def run() -> list[float]:
        status, values = HOW[how](frames)
        bad = [s for s in status if s != "ok"]
        if bad:
            raise RuntimeError(f"{len(bad)} frame(s) failed: {sorted(set(bad))}")
        return np.asarray(values, dtype=np.float64).tolist()

    return run


class Meter:
    """Wall time and CPU time (user + system, all threads) of groups of processes."""

    def __init__(self, groups: dict[str, list[int]]):
        import psutil

        self.procs = {g: [psutil.Process(p) for p in pids] for g, pids in groups.items()}
        self.wall = 0.0
        self.cpu: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {}
        for g, procs in self.procs.items():
            out[g] = sum(t.user + t.system for t in (p.cpu_times() for p in procs))
        return out

    @contextlib.contextmanager
    def measure(self):
        c0, t0 = self._now(), time.perf_counter()
        yield
        self.wall = time.perf_counter() - t0
        c1 = self._now()
        self.cpu = {g: c1[g] - c0[g] for g in c1}


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def _check(name: str, got: Sequence[float], ref: Sequence[float], what: str) -> bool:
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    rel = np.abs(got - ref) / np.abs(ref)
    ok = bool(got.shape == ref.shape and np.all(rel <= RTOL))
    print(
        f"  {name:<16} vs {what:<20} max rel diff {np.nanmax(rel):.2e} over {len(ref)} frames "
        f"-> {'OK' if ok else 'MISMATCH'}"
    )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30, help="frames per run (default 30)")
    ap.add_argument("--size", type=int, default=4096, help="pixels per side (default 4096)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per method (default 5)")
    ap.add_argument("--reuse", type=int, default=4, help="distinct pixel arrays generated")
    ap.add_argument("--threads", type=int, default=1, help="threads per worker for (c), (c0)")
    ap.add_argument("--quick", action="store_true", help="6 frames, 3 runs (about a minute)")
    ap.add_argument("--skip-seed", action="store_true", help="leave out (a) and (b)")
    ap.add_argument(
        "--skip-engine", action="store_true", help="leave out the frame engine's (f)-(i)"
    )
    ap.add_argument("--skip-calibration", action="store_true", help="leave out (j) and (k) (aiapy)")
    ap.add_argument(
        "--aiapy-sample", type=int, default=4, help="frames of (k), the user's aiapy way (4)"
    )
    ap.add_argument(
        "--compare-defaults",
        action="store_true",
        help="also run (c0): intake-helio on a cluster with dask's default worker settings",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.frames = min(args.frames, 6)
        args.repeat = min(args.repeat, 3)
    if args.repeat < 1 or args.frames < 2:
        ap.error("--repeat must be >= 1 and --frames >= 2")
    if args.size < CUTOUT_ROWS.stop:
        ap.error(f"--size must be >= {CUTOUT_ROWS.stop} for the 200-row cutout")

    import dask
    import distributed

    from intake_helio.compute.clusters import cluster
    from intake_helio.testing.demo_data import write_demo_dataset

    TUNED, QUIET = _configs()
    from intake_helio.testing.local_s3 import LocalS3

    n = args.frames
    malloc_var = MALLOC_VAR
    own_malloc = os.environ.get(malloc_var)  # nannies write dask's value into os.environ
    with contextlib.ExitStack() as stack:
        s3 = stack.enter_context(LocalS3(process=True))
        so = s3.storage_options
        root = f"s3://{BUCKET}/"
        t = time.perf_counter()
        ds = write_demo_dataset(
            root, so, frames=n, size=args.size, reuse=min(args.reuse, n), corrupt=0, workers=2
        )
        fs = s3.filesystem()
        sizes = [fs.size(k) for k in ds.datakeys]
        total_mb = sum(sizes) / 1e6
        print(
            f"wrote {n} frames {args.size}x{args.size} RICE_1 ({total_mb / n:.1f} MB each, "
            f"{total_mb:.0f} MB) to a local S3 child process in {time.perf_counter() - t:.1f} s; "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        )
        seed_args = (s3.endpoint_url, s3.key, s3.secret)
        keys = list(ds.datakeys)
        warm = keys[: min(4, n)]
        base_groups = {"main": [os.getpid()], "server": [s3._proc.pid]}

        # ---- clusters and pools (started once, warmed up, then reused by every run)
        t = time.perf_counter()

        def local_cluster(workers: int, threads: int) -> distributed.Client:
            """A plain LocalCluster of processes with the dask config in effect."""
            lc = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=threads,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False},
                worker_dashboard_address=None,
            )
            stack.enter_context(lc)
            return stack.enter_context(distributed.Client(lc, set_as_default=False))

        with dask.config.set(TUNED):
            client_c = stack.enter_context(cluster("local", workers=2, worker_cores=args.threads))
        lib_clients = {"c": client_c}
        if args.compare_defaults:  # dask's defaults: not cluster("local"), which tunes them
            lib_clients["c0"] = local_cluster(2, args.threads)
        worker_env = {
            m: sorted(set(c.run(_getenv, malloc_var).values()), key=str)
            for m, c in lib_clients.items()
        }
        runners: dict[str, Callable[[], list[float]]] = {}
        clients: dict[str, distributed.Client] = {}
        if not args.skip_seed:
            for label, workers, threads in (("a", 1, 2), ("b", 2, 1)):
                with dask.config.set(QUIET):
                    clients[label] = local_cluster(workers, threads)

        def seed_runner(client, items=keys, nan_aware=False):
            meter = Meter({"workers": list(client.run(os.getpid).values()), **base_groups})

            def run() -> list[float]:
                with meter.measure():
                    futs = client.map(
                        seed_mean,
                        items,
                        *[[a] * len(items) for a in seed_args],
                        nan_aware=nan_aware,
                        pure=False,
                    )
                    out = client.gather(futs)
                return out

            run.meter = meter
            return run

        for label, client in clients.items():
            runners[label] = seed_runner(client)
            seed_runner(client, warm)()

        def library_runner(client, cutout=None, options=so, how="irradiance"):
            meter = Meter({"workers": list(client.run(os.getpid).values()), **base_groups})

            def run() -> list[float]:
                with client.as_current():
                    job = _library(root, options, ds, cutout, how)
                    with meter.measure():
                        out = job()
                return out

            run.meter = meter
            return run

        if "c0" in lib_clients:
            runners["c0"] = library_runner(lib_clients["c0"])
        runners["c"] = library_runner(client_c)
        runners["e"] = library_runner(client_c, dict(y=CUTOUT_ROWS))
        if not args.skip_engine:
            for m, how in (("f", "selection"), ("g", "builtins"), ("h", "user"), ("i", "generic")):
                runners[m] = library_runner(client_c, how=how)
        calibrate = not args.skip_calibration and _has("aiapy")
        if calibrate:
            runners["j"] = library_runner(client_c, how="calibrated")

        # the lean processes get this process's own environment, not the nannies' malloc value
        if own_malloc is None:
            os.environ.pop(malloc_var, None)
        else:
            os.environ[malloc_var] = own_malloc
        pool = stack.enter_context(
            concurrent.futures.ProcessPoolExecutor(
                2,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=lean_init,
                initargs=seed_args,
            )
        )
        list(pool.map(_pool_ready, range(2)))  # starts both processes
        worker_env["d"] = sorted(set(pool.map(_getenv, [malloc_var] * 2)), key=str)

        def pool_runner(fn, items):
            """``fn`` of every item in the pool's 2 processes, timed."""
            meter = Meter({"workers": sorted(pool._processes), **base_groups})

            def run() -> list[float]:
                with meter.measure():
                    out = list(pool.map(fn, items))
                return out

            run.meter = meter
            return run

        runners["d"] = pool_runner(lean_mean, keys)
        count = dict.fromkeys(("a", "b", "c0", "c", "d", "e", "f", "g", "h", "i", "j"), n)
        if calibrate:
            sample = keys[: max(1, min(args.aiapy_sample, n))]
            count["k"] = len(sample)
            runners["k"] = pool_runner(aiapy_user_mean, sample)
        for m in ("c0", "c", "d", "e", "f", "g", "h", "i", "j", "k"):
            if m in runners:
                runners[m]()  # warm-up
        profiler = {
            m: sorted(set(c.run(_dask_config, "distributed.worker.profile.enabled").values()))
            for m, c in {**clients, **lib_clients}.items()
        }
        print(
            f"clusters and pools started and warmed up in {time.perf_counter() - t:.1f} s; "
            f"in the workers of "
            + ", ".join(f"({m}): {malloc_var}={v}" for m, v in worker_env.items())
            + "; worker profiler on in "
            + ", ".join(f"({m}): {v}" for m, v in profiler.items())
        )

        # ---- timed runs, interleaved
        every = ("a", "b", "c0", "c", "d", "e", "f", "g", "h", "i", "j", "k")
        order = [m for m in every if m in runners]
        times: dict[str, list[float]] = {m: [] for m in order}
        cpu: dict[str, list[dict[str, float]]] = {m: [] for m in order}
        values: dict[str, list[float]] = {}
        for rep in range(args.repeat):
            for m in order:
                out = runners[m]()
                times[m].append(runners[m].meter.wall)
                cpu[m].append(runners[m].meter.cpu)
                values.setdefault(m, out)
            print(
                f"run {rep + 1}: files/s (worker CPU ms/frame) "
                + "  ".join(
                    f"{m} {count[m] / times[m][-1]:.2f} "
                    f"({cpu[m][-1]['workers'] / count[m] * 1e3:.0f})"
                    for m in order
                ),
                flush=True,
            )

        print(f"load average (1 min) after the timed runs: {os.getloadavg()[0]:.2f}")

        # ---- bytes on the wire, counted by a relay (one extra, untimed pass each)
        relay = ByteCounter(s3.endpoint_url)
        stack.callback(relay.close)
        relayed = {**so, "endpoint_url": relay.endpoint_url}
        wire = {}
        for m, cutout in (("c", None), ("e", dict(y=CUTOUT_ROWS))):
            job = library_runner(client_c, cutout, relayed)
            job()  # the first pass also opens the catalog and the index through the relay
            relay.reset()
            job()
            wire[m] = (relay.down, relay.connections)

        # ---- the seed's code with np.nanmean, for the value check of (a) and (b)
        if "b" in clients:
            values["seed nanmean"] = seed_runner(clients["b"], nan_aware=True)()

        # ---- astropy's nanmax of every frame, for (h)'s values
        if "h" in runners:
            from astropy.io import fits as _fits

            peaks = []
            for key in keys:
                with _fits.open(io.BytesIO(fs.cat_file(key))) as hdul:
                    peaks.append(float(np.nanmax(hdul[1].data)))
            values["seed max"] = peaks

        # ---- lean code on the cutout rows, for (e)'s values
        lean_rows = list(pool.map(lean_mean, keys, [(CUTOUT_ROWS.start, CUTOUT_ROWS.stop)] * n))

        # ---- mean vs nanmean cost in the seed code
        from astropy.io import fits

        with fits.open(io.BytesIO(fs.cat_file(keys[0]))) as hdul:
            data = hdul[1].data
            t0 = time.perf_counter()
            for _ in range(3):
                data.mean()
            t_mean = (time.perf_counter() - t0) / 3
            t0 = time.perf_counter()
            for _ in range(3):
                np.nanmean(data)
            t_nanmean = (time.perf_counter() - t0) / 3

    # ---- report
    labels = {
        "a": "(a) seed, 1 worker x 2 threads",
        "b": "(b) seed, 2 workers x 1 thread",
        "c0": f"(c0) intake-helio, 2w x {args.threads}t, defaults",
        "c": f"(c) intake-helio, 2w x {args.threads}t, TUNED",
        "d": "(d) lean limit, 2 processes",
        "e": "(e) intake-helio cutout, 200 rows",
        "f": "(f) irradiance on isel(time=0:)",
        "g": "(g) map_frames mean,max,min,std",
        "h": "(h) map_frames user fn np.nanmax",
        "i": "(i) generic frames.mean((y, x))",
        "j": "(j) irradiance correct_degradation",
        "k": "(k) user: sunpy Map + aiapy + mean",
    }
    print()
    print(f"{'method':<38}{'files/s':>8}{'MB/s':>7}   CPU ms/frame: work main  S3   runs (files/s)")
    rate = {}
    for m in order:
        rate[m] = count[m] / _median(times[m])
        runs = " ".join(f"{count[m] / x:.2f}" for x in times[m])
        ms = {g: _median([c[g] for c in cpu[m]]) / count[m] * 1e3 for g in cpu[m][0]}
        print(
            f"{labels[m]:<38}{rate[m]:>8.2f}{rate[m] * total_mb / n:>7.1f}   {'':<13}"
            f"{ms['workers']:>5.0f}{ms['main']:>5.0f}{ms['server']:>4.0f}   {runs}"
        )
    print(
        "MB/s: file bytes processed per second ((e) fetches far fewer). CPU ms/frame, medians: "
        "work = the method's worker processes, main = this process (schedulers, clients), "
        "S3 = the moto server."
    )
    best = "c0" if rate.get("c0", 0) > rate["c"] else "c"
    print()
    ratios = []
    pairs = (("c", "a"), ("c", "b"), ("c", "d"), ("c0", "a"), ("c0", "d"), ("e", "c"))
    pairs += (("f", "d"), ("g", "d"), ("h", "d"), ("i", "d"), ("j", "c"), ("j", "k"))
    for num, den in pairs:
        if num in rate and den in rate:
            ratios.append(f"{num}/{den} = {rate[num] / rate[den]:.2f}")
    print("ratios: " + ", ".join(ratios))
    full_bytes = sum(sizes)
    print(
        f"bytes sent by the server (relay count, HTTP headers included): full pass (c) "
        f"{wire['c'][0] / 1e6:.1f} MB in {wire['c'][1]} connections for {full_bytes / 1e6:.1f} "
        f"MB of files; cutout (e) {wire['e'][0] / 1e6:.2f} MB in {wire['e'][1]} connections "
        f"= {wire['e'][0] / full_bytes:.1%} of the files (each connection is one request: "
        "the server closes it after the response)"
    )
    print(
        f"seed code: data.mean() {t_mean * 1e3:.0f} ms, np.nanmean {t_nanmean * 1e3:.0f} ms per "
        "frame (timed runs use .mean(), as published)"
    )
    print("value checks (rtol 1e-6 on every frame):")
    expected = np.asarray(ds.expected_mean)
    ok_values = _check("(c) intake-helio", values["c"], expected, "generator's means")
    ok_values &= _check("(c) intake-helio", values["c"], values["d"], "(d) lean")
    if "c0" in values:
        ok_values &= _check("(c0) intake-helio", values["c0"], values["c"], "(c) intake-helio")
    if "seed nanmean" in values:
        ok_values &= _check(
            "(c) intake-helio", values["c"], values["seed nanmean"], "seed code, nanmean"
        )
        nan_a = int(np.isnan(values["a"]).sum())
        same = np.array_equal(values["a"], values["b"], equal_nan=True)
        print(
            f"  (a), (b) seed as published (.mean()): NaN for {nan_a} of {n} frames (BLANK "
            f"pixels); (a) and (b) identical: {same}"
        )
        ok_values &= same
    ok_values &= _check("(e) cutout", values["e"], lean_rows, "(d) lean on rows")
    if "f" in values:
        ok_values &= _check("(f) selection", values["f"], values["d"], "(d) lean")
        ok_values &= _check("(g) built-ins mean", values["g"], values["d"], "(d) lean")
        ok_values &= _check("(i) generic mean", values["i"], values["d"], "(d) lean")
        seed_max = values.get("seed max")
        if seed_max is not None:
            ok_values &= _check("(h) user nanmax", values["h"], seed_max, "astropy nanmax")
    if "j" in values:
        k = len(values["k"])
        ok_values &= _check("(j) corrected", values["j"][:k], values["k"], "(k) aiapy on Maps")
    ok = True
    print(f"goals, with ({best}) (the faster intake-helio configuration):")
    if "a" in rate:
        goal_a = rate[best] / rate["a"] >= 5
        print(f"  {best}/a = {rate[best] / rate['a']:.2f} >= 5: {'met' if goal_a else 'NOT met'}")
        ok &= goal_a
    goal_d = rate[best] / rate["d"] >= 0.9
    print(f"  {best}/d = {rate[best] / rate['d']:.2f} >= 0.9: {'met' if goal_d else 'NOT met'}")
    ok &= goal_d
    for m, bound, what in (
        ("f", 0.9, "irradiance on a selection"),
        ("g", 0.9, "four built-ins together"),
        ("h", 0.75, "a user's Python function"),
    ):
        if m in rate:
            met = rate[m] / rate["d"] >= bound
            print(
                f"  {m}/d = {rate[m] / rate['d']:.2f} >= {bound} ({what}): "
                + ("met" if met else "NOT met")
            )
            ok &= met
    if "j" in rate:
        met = rate["j"] / rate["c"] >= 0.95
        print(
            f"  j/c = {rate['j'] / rate['c']:.2f} >= 0.95 (degradation-corrected irradiance): "
            + ("met" if met else "NOT met")
        )
        ok &= met
    if not ok_values:
        print("values DISAGREE")
    return 0 if ok and ok_values else 1


if __name__ == "__main__":
    sys.exit(main())

"""A year of index rows through the real job: per-frame overhead, memory, resume.

A year of AIA 94 at 4-minute cadence is 129,758 index rows. Here they point at a few
hundred distinct SMALL frames (``make_aia_frame(size=32)``, ~8 KB each, reused by the rows
in turn) in a moto S3 server in a child process, so that what is measured is what every
frame costs besides its pixels: index, graph, scheduling, one request, header parsing,
results, saving. The index CSV and ``catalog.json`` are written with
:mod:`intake_helio.catalog.writer`. Then, in one run:

(job)    ``run_irradiance_job`` (the CLI's ``intake-helio irradiance``) on a local cluster of
         2 single-thread workers: catalog -> index -> lazy frames -> ``irradiance`` -> parts
         saved as they complete -> CSV, netCDF, PNG. Wall time (everything from the call to
         its return: catalog, index, graph, compute, saving), frames/s, the peak memory
         (RSS, psutil, sampled every 0.1 s in a thread) of this process (the client), of
         the scheduler and of each worker, and the size of the saved parts. ``--layout
         split`` (default): the scheduler runs in a process of its own (``dask scheduler``
         and ``dask worker`` with ``ih.cluster("local")``'s worker settings, started and
         warmed up before the timing, as the lean pool is), as on Daskhub, where client and
         scheduler live apart; ``--layout local``: the job starts ``ih.cluster("local")``
         itself (the CLI's ``--cluster local``), which runs the scheduler in the client's
         process, and the cluster's start is timed;
(resume) the same call with ``resume=True``, which must find every part done;
(lean)   the lean code of ``throughput.py`` (d): 2 processes, one boto3 client each, GET +
         decode + mean of every row, no dask (``chunksize`` rows per inter-process message);
(seed)   the seed's ``client.map`` of its per-file code (``throughput.seed_mean``) on a
         LocalCluster of 2 single-thread workers, over a sample (``--seed-sample``) of rows,
         for scale.

``--latency-ms`` puts a shaping proxy (:class:`~intake_helio.testing.shaping.ProxyProcess`)
with that first-byte latency in front of the server for every method: with small frames the
rate is then set by the requests each process keeps in flight.

Per-frame overhead: 2 processes x wall time / frames, the job's minus the lean code's (ms
of a worker's time per frame), and the CPU time per frame of each group of processes.
Every row's value is checked against the lean code's and against astropy's nanmean of its
object.

Goals: job frames/s >= 0.8 x lean frames/s, every frame valued ("ok" and equal), the client
process's peak RSS under 1.5 GB; the exit status is 1 if one is not met.

    python benchmarks/year.py [--rows 129758] [--objects 360] [--seed-sample 2000]
                              [--layout split|local] [--part-size N] [--batch-size N]
                              [--latency-ms MS]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # benchmarks/throughput.py: the lean and seed code, helpers
from throughput import MALLOC_VAR, Meter, _configs, _pool_ready, lean_init, lean_mean, seed_mean

BUCKET = "bench-year"
DATASET = "aia_0094"
YEAR_ROWS = 129_758
#: aia_0094's files from 2010-05-13 to 2022-12-31 (HelioCloud's index).
MISSION_ROWS = 1_496_151
MISSION = ("2010-05-13", "2023-01-01")
CADENCE_MIN = 4
GOAL_RATE, GOAL_MEMORY = 0.8, 1.5e9
#: AIA's EUV channels as HelioCloud's dataset ids (``--channels K``: the first K).
CHANNELS = ("aia_0094", "aia_0131", "aia_0171", "aia_0193", "aia_0211", "aia_0304", "aia_0335")
RTOL = 1e-6


# --------------------------------------------------------------------------- the data
def year_rows(rows: int, seed: int = 0):
    """The first ``rows`` of a year's starts: 4-minute slots of 2020 less seeded gaps."""
    import pandas as pd

    slots = pd.date_range("2020-01-01", "2021-01-01", freq=f"{CADENCE_MIN}min", inclusive="left")
    keep = np.ones(len(slots), bool)
    rng = np.random.default_rng(seed)
    keep[rng.choice(len(slots), len(slots) - YEAR_ROWS, replace=False)] = False
    return slots[keep][:rows]


def mission_rows(rows: int, seed: int = 0):
    """The first ``rows`` of the mission's starts: 4-minute slots from 2010-05-13 to the end
    of 2022 less seeded gaps, :data:`MISSION_ROWS` in all (a yearly index file a year)."""
    import pandas as pd

    slots = pd.date_range(*MISSION, freq=f"{CADENCE_MIN}min", inclusive="left")
    keep = np.ones(len(slots), bool)
    rng = np.random.default_rng(seed)
    keep[rng.choice(len(slots), len(slots) - MISSION_ROWS, replace=False)] = False
    return slots[keep][:rows]


def write_year(
    fs, rows: int, objects: int, span: str = "year", channels: int = 1
) -> tuple[str, list[str], np.ndarray, object]:
    """Write the objects, the index and ``catalog.json``; return what the rows point at.

    ``span``: ``"year"`` (2020, :func:`year_rows`) or ``"mission"`` (:func:`mission_rows`).
    ``channels``: datasets of the first K of :data:`CHANNELS`, each with ``objects`` frames
    of its own wavelength and the same rows, channel c's starts c seconds after the first's.

    Returns ``(root, datakey per row of the first channel, expected mean per row (per
    channel and row for several), the first channel's times)``.
    """
    import pandas as pd
    from astropy.io import fits

    from intake_helio.catalog import writer
    from intake_helio.testing.aia import frame_bytes, make_aia_frame

    root = f"s3://{BUCKET}/"
    fs.mkdir(BUCKET)
    first = year_rows(rows) if span == "year" else mission_rows(rows)
    step = pd.Timedelta(minutes=CADENCE_MIN)
    index = f"{root}sdo/aia/registries/"
    entries, expected, first_keys = [], [], []
    for c, ds_id in enumerate(CHANNELS[:channels]):
        wave = int(ds_id.split("_")[1])
        blobs, means = {}, []
        for k in range(objects):
            t = pd.Timestamp("2020-01-01") + pd.Timedelta(minutes=CADENCE_MIN * k, seconds=c)
            hdul = make_aia_frame(t, size=32, seed=k, intensity=1 + (k % 10) / 10, wavelength=wave)
            raw = frame_bytes(hdul)
            name = f"aia_lev1_{wave}a_{t:%Y_%m_%dt%H_%M_%S}_00z_image_lev1.fits"
            key = f"sdo/aia/2020/{wave:04d}/{name}"
            blobs[key] = raw
            with fits.open(io.BytesIO(raw)) as hdul:
                means.append(float(np.nanmean(hdul[1].data, dtype=np.float64)))
        fs.pipe({f"{BUCKET}/{k}": v for k, v in blobs.items()})
        names = list(blobs)
        sizes = {k: len(v) for k, v in blobs.items()}
        times = first + pd.Timedelta(seconds=c)
        datakeys = [root + names[i % objects] for i in range(len(times))]
        index_rows = [
            (t, t + step, dk, sizes[names[i % objects]])
            for i, (t, dk) in enumerate(zip(times, datakeys, strict=True))
        ]
        files = writer.yearly_index_files(index, ds_id, index_rows)
        fs.pipe({url.removeprefix("s3://"): text.encode() for url, text in files.items()})
        del index_rows, files
        entries.append(
            writer.dataset_entry(
                ds_id,
                index=index,
                title=f"AIA {wave:04d} (synthetic year of small frames)",
                start=times[0],
                stop=times[-1] + step,
            )
        )
        expected.append(np.array([means[i % objects] for i in range(len(times))]))
        first_keys = first_keys or datakeys
    catalog = writer.bucket_catalog(root, entries, name="intake-helio year benchmark")
    fs.pipe({f"{BUCKET}/catalog.json": json.dumps(catalog).encode()})
    return root, first_keys, expected[0] if channels == 1 else np.stack(expected), first


# --------------------------------------------------------------------------- measuring
class PeakMemory:
    """Peak RSS of this process and of its other descendants, sampled in a thread.

    Also keeps each descendant's last CPU time seen (user + system), for processes that
    start and end within the measurement (the job's workers).
    """

    def __init__(
        self, exclude: Sequence[int] = (), named: dict[str, int] | None = None, interval=0.1
    ):
        import psutil

        self._me = psutil.Process()
        self._exclude = set(exclude)
        self._named = {pid: name for name, pid in (named or {}).items()}
        self._interval = interval
        self.main = 0
        self.peaks: dict[str, int] = dict.fromkeys(self._named.values(), 0)
        self.workers: dict[int, int] = {}
        self.workers_sum = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        self.main = max(self.main, self._me.memory_info().rss)
        total = 0
        for child in self._me.children(recursive=True):
            if child.pid in self._exclude:
                continue
            try:
                rss = child.memory_info().rss
                times = child.cpu_times()
            except psutil.Error:
                continue
            self.cpu[child.pid] = times.user + times.system
            name = self._named.get(child.pid)
            if name is not None:
                self.peaks[name] = max(self.peaks[name], rss)
                continue
            self.workers[child.pid] = max(self.workers.get(child.pid, 0), rss)
            total += rss
        self.workers_sum = max(self.workers_sum, total)

    def name(self, pid: int, name: str) -> None:
        """Follow process ``pid`` (started after the measurement) as ``name``."""
        self._named[pid] = name
        self.peaks.setdefault(name, 0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


@contextmanager
def split_cluster(tmp: str, workers: int = 2) -> Iterator[tuple[object, int]]:
    """A scheduler process and ``workers`` single-thread workers (``dask scheduler``/``dask
    worker``), with ``ih.cluster("local")``'s worker settings; yields ``(client, scheduler
    pid)`` with the client set as the default. Everything is stopped on exit."""
    import distributed
    import yaml

    from intake_helio.compute.clusters import LOCAL_WORKER_CONFIG

    nested: dict = {}
    for dotted, value in LOCAL_WORKER_CONFIG.items():
        head, _, last = dotted.rpartition(".")
        d = nested
        for part in head.split("."):
            d = d.setdefault(part, {})
        d[last] = value
    config_dir = Path(tmp) / "dask-config"
    config_dir.mkdir()
    (config_dir / "tuned.yaml").write_text(yaml.safe_dump(nested))
    env = {k: v for k, v in os.environ.items() if k != MALLOC_VAR}
    env["DASK_CONFIG"] = str(config_dir)
    scheduler_file = str(Path(tmp) / "scheduler.json")
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    sched_args = ["--port", "0", "--scheduler-file", scheduler_file, *common]
    worker_args = ["--scheduler-file", scheduler_file, "--nworkers", str(workers), *common]
    sched = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", *sched_args],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    procs = [sched]
    try:
        deadline = time.monotonic() + 60
        while not Path(scheduler_file).exists():
            if time.monotonic() > deadline or sched.poll() is not None:
                raise RuntimeError("the dask scheduler did not start")
            time.sleep(0.1)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    "--nthreads",
                    "1",
                    *worker_args,
                ],
                env=env,
                stderr=subprocess.DEVNULL,
            )
        )
        with distributed.Client(scheduler_file=scheduler_file, set_as_default=True) as client:
            client.wait_for_workers(workers, timeout=120)
            client.scheduler_file = scheduler_file
            yield client, sched.pid
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def job_child(spec_file: str) -> int:
    """``year.py --job-child SPEC``: the job as a notebook runs it, alone in its process.

    Connects to the split cluster's scheduler, runs the untimed warm-up, then the timed
    job; writes ``{wall, cpu, computed, ok, elapsed}`` to the spec's ``report`` file (the
    result is the job's own ``irradiance.nc``).
    """
    import distributed

    from intake_helio.app.job import run_irradiance_job

    spec = json.loads(Path(spec_file).read_text())
    kwargs = dict(spec["kwargs"], cluster_kind=None)
    root, start, stop, warm = spec["root"], spec["start"], spec["stop"], spec["warm"]
    import dask

    with (
        dask.config.set(spec["dask_config"]),
        distributed.Client(scheduler_file=spec["scheduler_file"], set_as_default=True),
    ):
        ids = spec["dataset"]
        run_irradiance_job(root, ids, start, warm, spec["warm_out"], **kwargs)
        t, c = time.perf_counter(), time.process_time()
        _, summary = run_irradiance_job(root, ids, start, stop, spec["out"], **kwargs)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    report = {"wall": wall, "cpu": cpu, "computed": summary.computed, "ok": summary.ok,
              "elapsed": summary.elapsed}  # fmt: skip
    Path(spec["report"]).write_text(json.dumps(report))
    return 0


def _job_in_child(mem, tmp, root, ids, start, warm, stop, out, scheduler_file, kwargs):
    """Run :func:`job_child` in a child process followed by ``mem`` as ``"client"``;
    ``(result from its irradiance.nc, summary, its report)``."""
    import types

    import dask
    import xarray as xr

    report = Path(tmp) / "child-report.json"
    spec = Path(tmp) / "child-spec.json"
    spec.write_text(json.dumps({
        "root": root, "dataset": ids, "start": str(start), "warm": str(warm), "stop": str(stop),
        "out": str(out), "warm_out": f"{tmp}/warm", "report": str(report),
        "scheduler_file": scheduler_file, "kwargs": kwargs,
        "dask_config": {k: dask.config.get(k) for k in ("intake_helio.batch-size",)},
    }))  # fmt: skip
    proc = subprocess.Popen([sys.executable, __file__, "--job-child", str(spec)])
    mem.name(proc.pid, "client")
    if proc.wait() != 0:
        raise RuntimeError(f"the job's child process exited with {proc.returncode}")
    run = json.loads(report.read_text())
    with xr.open_dataset(Path(out) / "irradiance.nc") as nc:
        result = nc.load()
    summary = types.SimpleNamespace(**{k: run[k] for k in ("computed", "ok", "elapsed")})
    return result, summary, run


def _dir_bytes(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def _by_channel(values) -> np.ndarray:
    """A result's values, ``(channel, time)`` for several channels, ``(time,)`` for one."""
    return (values.transpose("channel", "time") if "channel" in values.dims else values).values


def _compare(name: str, got, ref) -> bool:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    ok = got.shape == ref.shape and bool(np.all(np.abs(got - ref) <= RTOL * np.abs(ref)))
    worst = float(np.nanmax(np.abs(got - ref) / np.abs(ref))) if got.shape == ref.shape else 1.0
    print(f"  {name:<44} max rel diff {worst:.1e} over {len(ref)} rows -> {'OK' if ok else 'BAD'}")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=YEAR_ROWS, help=f"index rows ({YEAR_ROWS})")
    ap.add_argument("--objects", type=int, default=360, help="distinct small objects (360)")
    ap.add_argument("--seed-sample", type=int, default=2000, help="rows for the seed (2000)")
    ap.add_argument("--chunksize", type=int, default=64, help="rows per lean message (64)")
    ap.add_argument(
        "--lean-rows",
        type=int,
        default=0,
        help="the lean code over an evenly spaced sample of this many rows, run once before "
        "and once after the job, the faster of the two taken (default 0: every row, once, "
        "before the job)",
    )
    ap.add_argument("--part-size", type=int, default=None, help="the job's part size")
    ap.add_argument(
        "--batch-size", type=int, default=None, help="intake_helio.batch-size for the job"
    )
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="read everything through a shaping proxy with this first-byte latency (default "
        "0: straight to the server); S3 CPU then includes the proxy's",
    )
    ap.add_argument(
        "--layout",
        choices=("split", "local"),
        default="split",
        help="split (default): the job's scheduler in a process of its own (dask scheduler + "
        "dask worker, ih.cluster('local')'s worker settings), started before the timing, so "
        "that client and scheduler memory are measured apart; local: the job starts "
        "ih.cluster('local') itself (the CLI's --cluster local; scheduler in the client's "
        "process; the cluster's start is timed)",
    )
    ap.add_argument(
        "--span",
        choices=("year", "mission"),
        default="year",
        help="year (default): rows of 2020; mission: rows from 2010-05-13 to 2022 (up to "
        f"{MISSION_ROWS}, a yearly index file a year)",
    )
    ap.add_argument(
        "--client-in-this-process",
        action="store_true",
        help="split layout: run the job in this process (default: in a child process of its "
        "own, whose peak RSS is the client's: this process also holds the benchmark's "
        "index rows and values)",
    )
    ap.add_argument(
        "--channels",
        type=int,
        default=1,
        help="the job over K channels at once (the first K of aia_0094, 0131, 0171, 0193, "
        "0211, 0304, 0335; open_channels, each channel's rows 1 s after the one before), "
        "K x --rows frames; the lean code runs on the first channel's rows",
    )
    ap.add_argument("--job-child", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.job_child:
        return job_child(args.job_child)
    most = YEAR_ROWS if args.span == "year" else MISSION_ROWS
    if not 1 <= args.rows <= most or args.objects < 1 or args.seed_sample < 0:
        ap.error(f"--rows must be in [1, {most}], --objects >= 1, --seed-sample >= 0")
    if not 1 <= args.channels <= len(CHANNELS):
        ap.error(f"--channels must be in [1, {len(CHANNELS)}], not {args.channels}")
    if args.lean_rows < 0:
        ap.error(f"--lean-rows must be >= 0, not {args.lean_rows}")

    import dask
    import distributed

    from intake_helio.app.job import run_irradiance_job
    from intake_helio.testing.local_s3 import LocalS3

    _, quiet = _configs()
    own_malloc = os.environ.get(MALLOC_VAR)
    report: dict = {}
    with contextlib.ExitStack() as outer:
        s3 = outer.enter_context(LocalS3(process=True))
        tmp = outer.enter_context(tempfile.TemporaryDirectory())
        so = s3.storage_options
        t = time.perf_counter()
        root, datakeys, expected, times = write_year(
            s3.filesystem(), args.rows, args.objects, args.span, args.channels
        )
        ids = list(CHANNELS[: args.channels])
        dataset = ids if len(ids) > 1 else DATASET
        n = len(datakeys) * len(ids)  # frames of the job
        print(
            f"wrote {args.objects} small frames (32x32 RICE_1) and a {len(datakeys)}-row index "
            + (f"for each of {len(ids)} channels ({n} frames) " if len(ids) > 1 else "")
            + f"({times[0]:%Y-%m-%d} to {times[-1]:%Y-%m-%d %H:%M}) to a local S3 child process "
            f"in {time.perf_counter() - t:.1f} s; {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )
        base = {"main": [os.getpid()], "server": [s3._proc.pid]}
        endpoint = s3.endpoint_url
        if args.latency_ms:  # every method reads through the shaping proxy
            from intake_helio.testing.proxy_process import ProxyProcess
            from intake_helio.testing.shaping import Shaping

            shaping = Shaping(latency=args.latency_ms / 1e3)
            proxy = outer.enter_context(ProxyProcess(s3.endpoint_url, shaping))
            endpoint = proxy.endpoint_url
            so = {**so, "endpoint_url": endpoint}
            base["server"].append(proxy.pid)
            print(f"every read goes through a shaping proxy: {shaping.describe()}", flush=True)

        # ---- (lean): 2 processes, one boto3 client each; on a sample, before and after the job
        rows0 = len(datakeys)  # the first channel's rows, the lean code's
        if args.lean_rows and args.lean_rows < rows0:
            lean_at = np.linspace(0, rows0 - 1, args.lean_rows).round().astype(np.int64)
        else:
            lean_at = np.arange(rows0)
        lean_keys = [datakeys[i] for i in lean_at]
        pool = outer.enter_context(
            concurrent.futures.ProcessPoolExecutor(
                2,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=lean_init,
                initargs=(endpoint, s3.key, s3.secret),
            )
        )
        list(pool.map(_pool_ready, range(2)))
        list(pool.map(lean_mean, datakeys[:200], chunksize=8))  # warm-up

        def run_lean(when: str) -> list[float]:
            meter = Meter({"workers": sorted(pool._processes), **base})
            with meter.measure():
                values = list(pool.map(lean_mean, lean_keys, chunksize=args.chunksize))
            report.setdefault("leans", []).append((when, meter.wall, meter.cpu))
            print(
                f"lean ({when}): {len(lean_keys) / meter.wall:.1f} frames/s over "
                f"{len(lean_keys)} rows ({meter.wall:.1f} s), load average "
                f"{os.getloadavg()[0]:.2f}",
                flush=True,
            )
            return values

        lean = run_lean("before the job")

        # ---- (job) and (resume): the real job, parts saved, then resumed
        out = Path(tmp) / "out"
        # DN, as the lean code and astropy's nanmean give (the job's default is DN/s)
        job_kwargs = dict(storage_options=so, progress=False, units="DN")
        if args.part_size is not None:
            job_kwargs["part_size"] = args.part_size
        stop = times[-1] + np.timedelta64(CADENCE_MIN, "m")
        with contextlib.ExitStack() as cluster_stack:
            if args.batch_size is not None:
                cluster_stack.enter_context(
                    dask.config.set({"intake_helio.batch-size": args.batch_size})
                )
            named = {}
            child = args.layout == "split" and not args.client_in_this_process
            if args.layout == "split":
                split, named["scheduler"] = cluster_stack.enter_context(split_cluster(tmp))
                job_kwargs["cluster_kind"] = None  # the default client's cluster
                warm = times[min(200, rows0 - 1)]  # warm-up (imports, connections), untimed
                if not child:
                    run_irradiance_job(root, dataset, times[0], warm, f"{tmp}/warm", **job_kwargs)
            else:
                job_kwargs["cluster_kind"] = "local"
                job_kwargs["cluster_kwargs"] = {"workers": 2, "worker_cores": 1}
            job_meter = Meter({**base})
            with (
                PeakMemory(exclude=[*base["server"], *pool._processes], named=named) as mem,
                job_meter.measure(),
            ):
                cpu0 = dict(mem.cpu)
                if child:
                    result, summary, child_run = _job_in_child(
                        mem, tmp, root, dataset, times[0], warm, stop, out, split.scheduler_file,
                        {k: v for k, v in job_kwargs.items() if k != "cluster_kind"},
                    )  # fmt: skip
                else:
                    result, summary = run_irradiance_job(
                        root, dataset, times[0], stop, str(out), **job_kwargs
                    )
            spent = {pid: c - cpu0.get(pid, 0.0) for pid, c in mem.cpu.items()}
            sched_pid = named.get("scheduler")
            others = {pid for pid, name in mem._named.items()}
            wall, cpu = job_meter.wall, dict(job_meter.cpu)
            if child:  # the child's own timing of the job, not its start and warm-up
                wall, cpu["main"] = child_run["wall"], child_run["cpu"]
            report["job"] = (
                wall,
                {
                    **cpu,
                    "workers": sum(c for pid, c in spent.items() if pid not in others),
                    "scheduler": spent.get(sched_pid, 0.0),
                },
                mem,
            )
            report["summary"] = summary
            print(f"job: {n / wall:.1f} frames/s ({wall:.1f} s)", flush=True)
            parts = _dir_bytes(out / "parts.zarr")
            outputs = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
            t = time.perf_counter()
            resumed, resumed_summary = run_irradiance_job(
                root, dataset, times[0], stop, str(out), resume=True, **job_kwargs
            )
            report["resume"] = (time.perf_counter() - t, resumed_summary)
        if len(lean_keys) < rows0:
            again = run_lean("after the job")
            lean = lean if _compare("lean after vs before", again, lean) else again

        # ---- (seed) on a sample
        sample = datakeys[: args.seed_sample]
        seed_values: list[float] = []
        if sample:
            if own_malloc is None:
                os.environ.pop(MALLOC_VAR, None)
            with (
                dask.config.set(quiet),
                distributed.LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    scheduler_kwargs={"dashboard": False},
                    worker_dashboard_address=None,
                ) as lc,
                distributed.Client(lc, set_as_default=False) as client,
            ):
                import cloudpickle

                cloudpickle.register_pickle_by_value(throughput)
                extra = [[a] * len(sample) for a in (endpoint, s3.key, s3.secret)]
                client.gather(client.map(seed_mean, sample[:20], *[e[:20] for e in extra]))
                meter = Meter({"workers": list(client.run(os.getpid).values()), **base})
                with meter.measure():
                    futs = client.map(seed_mean, sample, *extra, nan_aware=True, pure=False)
                    seed_values = client.gather(futs)
            report["seed"] = (meter.wall, meter.cpu)

    # ---- report
    m = len(lean_keys)  # the lean code's rows (every row, or the sample)
    _, lean_wall, lean_cpu = min(report["leans"], key=lambda r: r[1])  # the faster run
    job_wall, job_cpu, mem = report["job"]
    summary = report["summary"]
    lean_rate, job_rate = m / lean_wall, n / job_wall
    worker_ms = {"lean": 2 * lean_wall / m * 1e3, "job": 2 * job_wall / n * 1e3}
    print()
    print(f"{'method':<46}{'frames/s':>9}{'wall s':>8}   CPU ms/frame: work main  S3")
    print(
        f"{'(lean) 2 processes, boto3, no dask':<46}{lean_rate:>9.1f}{lean_wall:>8.1f}   "
        f"{'':<13}{lean_cpu['workers'] / m * 1e3:>5.2f}{lean_cpu['main'] / m * 1e3:>5.2f}"
        f"{lean_cpu['server'] / m * 1e3:>5.2f}"
        + (
            f"   ({m} of {rows0} rows; the faster of {len(report['leans'])} runs: "
            + ", ".join(f"{w} {m / t:.1f}" for w, t, _ in report["leans"])
            + " frames/s)"
            if m < rows0
            else ""
        )
    )
    print(
        f"{f'(job) run_irradiance_job, {args.layout} 2w x 1t':<46}{job_rate:>9.1f}"
        f"{job_wall:>8.1f}   {'':<13}{job_cpu['workers'] / n * 1e3:>5.2f}"
        f"{job_cpu['main'] / n * 1e3:>5.2f}{job_cpu['server'] / n * 1e3:>5.2f}"
        + (
            f"   (work: workers and nannies; the scheduler's process: "
            f"{job_cpu['scheduler'] / n * 1e3:.2f})"
            if args.layout == "split"
            else "   (work: workers and nannies, from their start; main: client + scheduler)"
        )
    )
    resume_wall, resume_summary = report["resume"]
    print(
        f"{'(resume) same call, resume=True':<46}{'':>9}{resume_wall:>8.1f}   "
        f"computed {resume_summary.computed} frames"
    )
    if "seed" in report:
        seed_wall, seed_cpu = report["seed"]
        seed_rate = len(sample) / seed_wall
        print(
            f"{f'(seed) client.map, 2w x 1t, {len(sample)} rows':<46}{seed_rate:>9.1f}"
            f"{seed_wall:>8.1f}   {'':<13}{seed_cpu['workers'] / len(sample) * 1e3:>5.2f}"
            f"{seed_cpu['main'] / len(sample) * 1e3:>5.2f}"
            f"{seed_cpu['server'] / len(sample) * 1e3:>5.2f}"
            f"   (a year's {YEAR_ROWS} rows: ~{YEAR_ROWS / seed_rate / 60:.0f} min)"
        )
    print(
        f"job: {summary.computed} frames computed in {summary.elapsed:.1f} s of its "
        f"{job_wall:.1f} s (the rest: catalog, index, graph); per-frame time of a worker "
        f"(2 x wall / frames): job {worker_ms['job']:.2f} ms, lean {worker_ms['lean']:.2f} ms, "
        f"overhead {worker_ms['job'] - worker_ms['lean']:+.2f} ms per frame"
    )
    peaks = sorted(mem.workers.values(), reverse=True)
    who = "client" if args.layout == "split" else "client + scheduler"
    client_rss = mem.peaks.get("client", mem.main)
    if "client" in mem.peaks:
        print(
            f"peak RSS: client (the job's own process) {client_rss / 1e9:.2f} GB; this "
            f"process (the benchmark: index rows, values, lean pool's parent) "
            f"{mem.main / 1e9:.2f} GB"
        )
        who = "benchmark"
    print(
        f"peak RSS: {who} (this process) {mem.main / 1e9:.2f} GB"
        + (f"; scheduler {mem.peaks['scheduler'] / 1e9:.2f} GB" if "scheduler" in mem.peaks else "")
        + "; worker processes "
        + ", ".join(f"{p / 1e9:.2f}" for p in peaks[:2])
        + f" GB (workers and nannies at once {mem.workers_sum / 1e9:.2f} GB)"
    )
    print(
        f"saved parts: {parts[0]} files, {parts[1] / 1e6:.2f} MB ({parts[1] / n:.0f} B per frame);"
        " outputs: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(outputs.items()))
    )

    print()
    print("value checks:")
    status = np.asarray(result["status"].values).astype(str)
    valued = int((status == "ok").sum())
    ok = valued == n and summary.ok == n
    print(f"  job: {valued} of {n} frames 'ok' -> {'OK' if ok else 'BAD'}")
    values, again = (_by_channel(r["irradiance"]) for r in (result, resumed))
    first = values[0] if values.ndim == 2 else values
    ok &= _compare("job vs lean (first channel)", first[lean_at], lean)
    ok &= _compare("job vs astropy nanmean of each object", values.ravel(), expected.ravel())
    ok &= _compare("resumed vs job", again.ravel(), values.ravel())
    ok &= resume_summary.computed == 0
    if seed_values:
        want = expected[0] if expected.ndim == 2 else expected
        ok &= _compare("seed (nanmean) vs astropy", seed_values, want[: len(sample)])
    goal_rate = job_rate / lean_rate >= GOAL_RATE
    goal_mem = client_rss < GOAL_MEMORY
    print("goals:")
    print(
        f"  job/lean = {job_rate / lean_rate:.2f} >= {GOAL_RATE}: "
        + ("met" if goal_rate else "NOT met")
    )
    print(f"  every frame valued: {'met' if ok else 'NOT met'}")
    print(
        f"  client process peak {client_rss / 1e9:.2f} GB < {GOAL_MEMORY / 1e9:.1f} GB: "
        + ("met" if goal_mem else "NOT met")
    )
    return 0 if goal_rate and goal_mem and ok else 1


if __name__ == "__main__":
    sys.exit(main())

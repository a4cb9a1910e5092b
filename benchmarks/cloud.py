"""Irradiance throughput through a cloud-shaped network: latency and bandwidth as on S3.

Real S3 seen from an instance in its region gives ~85-90 MB/s per connection, first bytes
after tens of ms, and ``503 SlowDown`` above ~5,500 GET/s per prefix; the loopback S3 of
``throughput.py`` gives a GET of a 15 MB frame in ~30 ms. Here the same full-size frames
(``--frames`` synthetic 4096² int16 RICE_1 frames, ~15 MB, written to a moto S3 server in a
child process) are read through :class:`~intake_helio.testing.shaping.ProxyProcess`, a
shaping proxy on 127.0.0.1 in another child process (default: 50 ms to the first byte,
90 MB/s per connection, 5,500 requests/s), and timed side by side, interleaved, medians of
``--repeat`` runs:

(d0) the lean limit of ``throughput.py`` (d), UNSHAPED: 2 processes, one boto3 client each,
     one GET + imagecodecs' Rice decoder + mean per frame, straight to the S3 server;
(d)  the same lean code through the shaped network (it fetches, then decodes: no overlap);
(s)  the seed's per-file code (``throughput.seed_mean``: a boto3 session per file, astropy)
     with ``client.map`` on a LocalCluster of 2 single-thread workers, shaped;
(c)  intake-helio, ``irradiance`` on ``ih.cluster("local", workers=2, worker_cores=1)``
     (as ``throughput.py``'s (c); ``--threads N``: N threads per worker), shaped;
(e)  intake-helio's cutout path, 200 rows (``cutout=dict(y=slice(1000, 1200))``), shaped.

Then a sweep over latency (10, 50, 100 ms) x bandwidth (50, 90, 200 MB/s per connection):
(c) and (d) at each point against (d0) measured in the same rounds.

The CPU columns are the methods' worker processes, this process (schedulers, clients), the
S3 server and the shaping proxy (both stand-ins for the network: on a real instance their
CPU is not on the node). ``req/frame`` and ``MB/frame`` are the requests and response body
bytes the proxy saw per frame in the timed part (opening the catalog, the index and the
probes are left out; the cutout reads a few % of each file), ``503`` the requests it
answered SlowDown. Values are checked frame by frame (rtol 1e-6) against (d0) and the
generator (the cutout against the lean code on the same rows).

Goal: (c) shaped >= 0.85 x (d0) unshaped; the exit status is 1 when it is not met or when
values disagree.

    python benchmarks/cloud.py [--frames 30] [--repeat 5] [--latency-ms 50] [--mbps 90]
                               [--rate 5500] [--sweep-repeat 3] [--no-sweep] [--quick]
                               [--threads 1] [--skip-seed]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # benchmarks/throughput.py: the lean and seed code, helpers
from throughput import (
    CUTOUT_ROWS,
    MALLOC_VAR,
    Meter,
    _check,
    _configs,
    _library,
    _median,
    _pool_ready,
    lean_init,
    lean_mean,
    seed_mean,
)

BUCKET = "bench-cloud"
GOAL = 0.85
SWEEP_LATENCY_MS = (10, 50, 100)
SWEEP_MBPS = (50, 90, 200)
LABELS = {
    "d0": "(d0) lean limit, UNSHAPED",
    "d": "(d) lean code, shaped",
    "s": "(s) seed, 2 workers x 1 thread, shaped",
    "c": "(c) intake-helio irradiance, shaped",  # 2 workers x --threads
    "e": "(e) intake-helio cutout 200 rows, shaped",
}


def _shaping(latency_ms: float, mbps: float, rate: float | None):
    from intake_helio.testing.shaping import Shaping

    return Shaping(latency=latency_ms / 1e3, bandwidth=mbps * 1e6, rate=rate)


def _lean_pool(stack: contextlib.ExitStack, endpoint_url: str, key: str, secret: str):
    """2 spawned processes, one boto3 client each, for ``endpoint_url``; started and warm."""
    pool = stack.enter_context(
        concurrent.futures.ProcessPoolExecutor(
            2,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=lean_init,
            initargs=(endpoint_url, key, secret),
        )
    )
    list(pool.map(_pool_ready, range(2)))
    return pool


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30, help="frames per run (default 30)")
    ap.add_argument("--size", type=int, default=4096, help="pixels per side (default 4096)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per method (default 5)")
    ap.add_argument("--latency-ms", type=float, default=50.0, help="first-byte latency (50)")
    ap.add_argument("--mbps", type=float, default=90.0, help="MB/s per connection (90)")
    ap.add_argument("--rate", type=float, default=5500.0, help="requests/s before SlowDown")
    ap.add_argument("--sweep-repeat", type=int, default=3, help="runs per sweep point (3)")
    ap.add_argument("--threads", type=int, default=1, help="threads per worker for (c), (e)")
    ap.add_argument("--no-sweep", action="store_true", help="leave the sweep out")
    ap.add_argument("--skip-seed", action="store_true", help="leave (s) out")
    ap.add_argument(
        "--quick", action="store_true", help="6 frames, 2 runs, a 4-point sweep of 1 run"
    )
    args = ap.parse_args(argv)
    lat_points, bw_points = SWEEP_LATENCY_MS, SWEEP_MBPS
    if args.quick:
        args.frames = min(args.frames, 6)
        args.repeat = min(args.repeat, 2)
        args.sweep_repeat = 1
        lat_points, bw_points = (10, 100), (50, 200)
    if args.repeat < 1 or args.frames < 2 or args.sweep_repeat < 1:
        ap.error("--repeat and --sweep-repeat must be >= 1 and --frames >= 2")
    if args.size < CUTOUT_ROWS.stop:
        ap.error(f"--size must be >= {CUTOUT_ROWS.stop} for the 200-row cutout")

    import cloudpickle
    import dask
    import distributed

    from intake_helio.compute.clusters import cluster
    from intake_helio.testing.demo_data import write_demo_dataset
    from intake_helio.testing.local_s3 import LocalS3
    from intake_helio.testing.proxy_process import ProxyProcess

    cloudpickle.register_pickle_by_value(throughput)  # dask workers need not import it
    tuned, quiet = _configs()
    main_shaping = _shaping(args.latency_ms, args.mbps, args.rate)
    n = args.frames
    own_malloc = os.environ.get(MALLOC_VAR)
    with contextlib.ExitStack() as stack:
        s3 = stack.enter_context(LocalS3(process=True))
        so = s3.storage_options
        root = f"s3://{BUCKET}/"
        t = time.perf_counter()
        ds = write_demo_dataset(
            root, so, frames=n, size=args.size, reuse=min(4, n), corrupt=0, workers=2
        )
        fs = s3.filesystem()
        sizes = [fs.size(k) for k in ds.datakeys]
        frame_mb = sum(sizes) / n / 1e6
        print(
            f"wrote {n} frames {args.size}x{args.size} RICE_1 ({frame_mb:.1f} MB each) to a "
            f"local S3 child process in {time.perf_counter() - t:.1f} s; {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        proxy = stack.enter_context(ProxyProcess(s3.endpoint_url, main_shaping))
        shaped = {**so, "endpoint_url": proxy.endpoint_url}
        print(f"shaping proxy (child process) on {proxy.endpoint_url}: {main_shaping.describe()}")
        keys = list(ds.datakeys)
        base = {"main": [os.getpid()], "server": [s3._proc.pid], "proxy": [proxy.pid]}

        # ---- clusters and pools, started once and warmed up
        t = time.perf_counter()
        with dask.config.set(tuned):
            client_c = stack.enter_context(cluster("local", workers=2, worker_cores=args.threads))
        client_s = None
        if not args.skip_seed:
            with dask.config.set(quiet):
                lc = stack.enter_context(
                    distributed.LocalCluster(
                        n_workers=2,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address="127.0.0.1:0",
                        scheduler_kwargs={"dashboard": False},
                        worker_dashboard_address=None,
                    )
                )
            client_s = stack.enter_context(distributed.Client(lc, set_as_default=False))
        # the lean processes get this process's environment, not the nannies' malloc value
        if own_malloc is None:
            os.environ.pop(MALLOC_VAR, None)
        else:
            os.environ[MALLOC_VAR] = own_malloc
        pool0 = _lean_pool(stack, s3.endpoint_url, s3.key, s3.secret)
        pool1 = _lean_pool(stack, proxy.endpoint_url, s3.key, s3.secret)

        def meter_for(pids):
            return Meter({"workers": sorted(pids), **base})

        def lean_runner(pool):
            meter = meter_for(pool._processes)

            def run() -> list[float]:
                with meter.measure():
                    return list(pool.map(lean_mean, keys))

            run.meter = meter
            return run

        def seed_runner(client):
            meter = meter_for(client.run(os.getpid).values())
            args_ = (proxy.endpoint_url, s3.key, s3.secret)

            def run() -> list[float]:
                with meter.measure():
                    futs = client.map(
                        seed_mean, keys, *[[a] * n for a in args_], nan_aware=True, pure=False
                    )
                    return client.gather(futs)

            run.meter = meter
            return run

        def library_runner(client, cutout=None):
            meter = meter_for(client.run(os.getpid).values())

            def run() -> list[float]:
                with client.as_current():
                    job = _library(root, shaped, ds, cutout)
                    proxy.reset_stats()  # count the timed part only (not catalog, index, probes)
                    with meter.measure():
                        return job()

            run.meter = meter
            return run

        runners: dict[str, Callable[[], list[float]]] = {
            "d0": lean_runner(pool0),
            "d": lean_runner(pool1),
        }
        if client_s is not None:
            runners["s"] = seed_runner(client_s)
        runners["c"] = library_runner(client_c)
        runners["e"] = library_runner(client_c, dict(y=CUTOUT_ROWS))
        for run in runners.values():
            run()  # warm-up: imports, connections, first reads
        print(f"clusters and pools started and warmed up in {time.perf_counter() - t:.1f} s")

        # ---- timed runs, interleaved
        order = list(runners)
        times: dict[str, list[float]] = {m: [] for m in order}
        cpu: dict[str, list[dict[str, float]]] = {m: [] for m in order}
        wire: dict[str, list[dict]] = {m: [] for m in order}
        values: dict[str, list[float]] = {}
        for rep in range(args.repeat):
            for m in order:
                proxy.reset_stats()
                out = runners[m]()
                stats = proxy.stats
                times[m].append(runners[m].meter.wall)
                cpu[m].append(runners[m].meter.cpu)
                wire[m].append(stats)
                values.setdefault(m, out)
            print(
                f"run {rep + 1}: files/s "
                + "  ".join(f"{m} {n / times[m][-1]:.2f}" for m in order),
                flush=True,
            )

        # ---- sweep: (c) and (d) at each latency x bandwidth, against (d0) in the same rounds
        sweep: dict[tuple[float, float], dict[str, list[float]]] = {}
        d0_sweep: list[float] = []
        sweep_bad: list[str] = []
        if not args.no_sweep:
            points = [(lat, bw) for lat in lat_points for bw in bw_points]
            for rep in range(args.sweep_repeat):
                runners["d0"]()
                d0_sweep.append(runners["d0"].meter.wall)
                for lat, bw in points:
                    proxy.set_shaping(_shaping(lat, bw, args.rate))
                    got = sweep.setdefault((lat, bw), {"c": [], "d": []})
                    for m in ("c", "d"):
                        out = runners[m]()
                        got[m].append(runners[m].meter.wall)
                        ref = np.asarray(values["d0"])
                        if not np.allclose(out, ref, rtol=throughput.RTOL, atol=0):
                            sweep_bad.append(f"({m}) at {lat:g} ms, {bw:g} MB/s")
                print(f"sweep round {rep + 1} of {args.sweep_repeat} done", flush=True)
            proxy.set_shaping(main_shaping)

        # ---- the lean code on the cutout rows, for (e)'s values
        lean_rows = list(pool0.map(lean_mean, keys, [(CUTOUT_ROWS.start, CUTOUT_ROWS.stop)] * n))
        load = os.getloadavg()[0]

    # ---- report
    fetch_ms = main_shaping.latency * 1e3 + frame_mb / args.mbps * 1e3
    print()
    print(
        f"{'method':<42}{'files/s':>8}{'MB/s':>7}  CPU ms/frame: work main  S3 proxy"
        f"  req/frame MB/frame  503   runs (files/s)"
    )
    rate = {}
    for m in order:
        rate[m] = n / _median(times[m])
        ms = {g: _median([c[g] for c in cpu[m]]) / n * 1e3 for g in cpu[m][0]}
        reqs = _median([w["requests"] for w in wire[m]]) / n
        body = _median([w["body_bytes"] for w in wire[m]]) / n / 1e6
        slow = sum(w["throttled"] for w in wire[m])
        proxied = m != "d0"
        print(
            f"{LABELS[m]:<42}{rate[m]:>8.2f}{rate[m] * frame_mb:>7.1f}  {'':<13}"
            f"{ms['workers']:>5.0f}{ms['main']:>5.0f}{ms['server']:>4.0f}"
            f"{ms['proxy'] if proxied else 0:>6.0f}"
            + (f"{reqs:>11.2f}{body:>9.2f}{slow:>5d}" if proxied else f"{'-':>11}{'-':>9}{'-':>5}")
            + "   "
            + " ".join(f"{n / x:.2f}" for x in times[m])
        )
    print(
        f"network per frame and connection: {main_shaping.latency * 1e3:.0f} ms + "
        f"{frame_mb:.1f} MB at {args.mbps:g} MB/s = {fetch_ms:.0f} ms; one connection per "
        f"worker at a time allows at most {2e3 / fetch_ms:.2f} files/s on 2 workers, two "
        f"{4e3 / fetch_ms:.2f}; load average after the runs {load:.2f}"
    )
    ratios = [f"{a}/{b} = {rate[a] / rate[b]:.2f}" for a, b in (("c", "d0"), ("c", "d"))]
    if "s" in rate:
        ratios.append(f"c/s = {rate['c'] / rate['s']:.2f}")
    ratios.append(f"e/c = {rate['e'] / rate['c']:.2f}")
    print("ratios: " + ", ".join(ratios))
    full = sum(sizes) / n
    cut = _median([w["body_bytes"] for w in wire["e"]]) / n
    print(f"cutout (e) fetched {cut / full:.1%} of each file's bytes")

    if sweep:
        d0_rate = n / _median(d0_sweep)
        print()
        print(
            f"sweep ({args.sweep_repeat} run(s) per point; (d0) unshaped in the same rounds: "
            f"{d0_rate:.2f} files/s)"
        )
        print(
            f"{'latency':>8}{'MB/s':>6}{'(c) files/s':>13}{'c/d0':>7}{'(d) files/s':>13}{'d/d0':>7}"
        )
        for (lat, bw), got in sweep.items():
            c_rate, d_rate = n / _median(got["c"]), n / _median(got["d"])
            print(
                f"{lat:>6g}ms{bw:>6g}{c_rate:>13.2f}{c_rate / d0_rate:>7.2f}"
                f"{d_rate:>13.2f}{d_rate / d0_rate:>7.2f}"
            )

    print()
    print("value checks (rtol 1e-6 on every frame):")
    ok_values = _check("(d0) lean", values["d0"], ds.expected_mean, "generator's means")
    for m in ("d", "s", "c"):
        if m in values:
            ok_values &= _check(LABELS[m][:4] + " shaped", values[m], values["d0"], "(d0) lean")
    ok_values &= _check("(e) cutout", values["e"], lean_rows, "(d0) lean on rows")
    if sweep:
        print(
            "  sweep: (c) and (d) vs (d0) lean at every point: "
            + (f"MISMATCH {', '.join(sweep_bad)}" if sweep_bad else "OK")
        )
        ok_values &= not sweep_bad
    goal = rate["c"] / rate["d0"]
    met = goal >= GOAL
    print(f"goal: c/d0 = {goal:.2f} >= {GOAL}: {'met' if met else 'NOT met'}")
    if not ok_values:
        print("values DISAGREE")
    return 0 if met and ok_values else 1


if __name__ == "__main__":
    sys.exit(main())

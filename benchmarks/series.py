"""A day of 1 Hz CDF files through intake-helio, beside a lean loop over the same objects.

The data: ``--files`` hourly CDF files (default 24: a day) of an ISTP-like magnetometer at
1 Hz (``B_GSE`` (N, 3) float32, ``B_mag``, and ``pos_gse`` on a second epoch at 1/min),
written with cdflib's writer (:func:`intake_helio.testing.cdf_files.magnetometer_cdf`) into a
moto S3 server in its own process and published as a CloudCatalog dataset
(:func:`intake_helio.testing.series_data.publish_series`). Then, each ``--runs`` times, in
turn (the same run, side by side):

(lean)     the lean loop: 2 processes, one boto3 client each; GET each object, write it to a
           temporary file, ``cdflib.xarray.cdf_to_xarray(..., to_datetime=True,
           fillval_to_nan=True)``, and in the parent ``xr.concat`` of the files along time;
(open)     ``bucket[id].to_dataset(day)``: the index, the first file whole, every other file's
           epoch (the lazy Dataset; no data variable decoded);
(compute)  ``.compute()`` of that Dataset on a local cluster of 2 single-thread workers;
(map)      ``ih.map_files`` of a per-file statistic on the same cluster.

It prints the medians of files/s and the ratios to the lean loop (``open+compute`` and
``compute`` alone), checks that the values equal the lean loop's, and measures what
opening ``--open-days`` daily files costs (1-min records): seconds, the client's memory
(tracemalloc peak, in a second opening) and the requests (counted by a proxy in front of the
server, in a third).

Goal: ``compute`` >= 0.9 x the lean loop's files/s (exit status 1 if not met).

    python benchmarks/series.py [--files 24] [--runs 3] [--open-days 365]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import pandas as pd
import xarray as xr

import intake_helio as ih
from intake_helio.testing.cdf_files import magnetometer_cdf
from intake_helio.testing.local_s3 import LocalS3
from intake_helio.testing.proxy_process import ProxyProcess
from intake_helio.testing.series_data import SeriesFile, publish_series

ROOT = "s3://helio-series-bench/"
DAY = pd.Timestamp("2020-06-01")


def _signal(t: np.ndarray) -> np.ndarray:
    s = (t - t[0]).astype("m8[ns]").astype(np.float64) / 1e9 if len(t) else np.zeros(0)
    return np.stack([np.sin(s / 600), np.cos(s / 900), 0.1 * np.sin(s / 60)], axis=1) * 20


def write_day(so: dict, files: int) -> str:
    rows = []
    for h in range(files):
        t0 = DAY + pd.Timedelta(hours=h)
        data = magnetometer_cdf(t0, t0 + pd.Timedelta("1h"), "1s", signal=_signal,
                                state_cadence="60s")  # fmt: skip
        rows.append(SeriesFile(f"mag/hourly/{t0:%Y%m%d_%H}.cdf", t0, t0 + pd.Timedelta("1h"), data))
    publish_series(ROOT, so, "mag_1s", rows, filetype="cdf")
    return "mag_1s"


def write_daily(so: dict, days: int) -> str:
    rows = []
    for d in range(days):
        t0 = pd.Timestamp("2019-01-01") + pd.Timedelta(days=d)
        data = magnetometer_cdf(t0, t0 + pd.Timedelta("1D"), "60s", signal=_signal)
        rows.append(SeriesFile(f"mag/daily/{t0:%Y%m%d}.cdf", t0, t0 + pd.Timedelta("1D"), data))
    publish_series(ROOT, so, "mag_daily", rows, filetype="cdf")
    return "mag_daily"


# --------------------------------------------------------------------------- the lean loop
_CLIENT = None
_TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None


def _init(endpoint_url: str, key: str, secret: str) -> None:
    global _CLIENT
    import boto3

    _CLIENT = boto3.client(
        "s3", endpoint_url=endpoint_url, aws_access_key_id=key, aws_secret_access_key=secret,
        region_name="us-east-1",
    )  # fmt: skip


def _lean_one(url: str) -> xr.Dataset:
    import cdflib.xarray

    bucket, key = url[len("s3://") :].split("/", 1)
    body = _CLIENT.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tempfile.NamedTemporaryFile(suffix=".cdf", dir=_TMP) as f:
        f.write(body)
        f.flush()
        ds = cdflib.xarray.cdf_to_xarray(f.name, to_datetime=True, fillval_to_nan=True)
    return ds[["B_GSE", "B_mag"]].load()


def lean(so: dict, urls: list[str], pool) -> tuple[float, xr.Dataset]:
    t = time.perf_counter()
    parts = list(pool.map(_lean_one, urls))
    out = xr.concat(parts, dim="Epoch")
    return time.perf_counter() - t, out


# --------------------------------------------------------------------------- intake-helio
def _file_mean(f: xr.Dataset) -> dict:
    return {"bx": float(f.B_GSE[:, 0].mean()), "n": f.sizes["time"]}


def ours(so: dict, dataset: str, client) -> tuple[float, float, float, xr.Dataset, xr.Dataset]:
    t0 = time.perf_counter()
    ds = ih.open_bucket(ROOT, so, cache=False)[dataset].to_dataset(
        DAY, DAY + pd.Timedelta("1D"), variables=["B_GSE", "B_mag"]
    )
    t1 = time.perf_counter()
    values = ds.compute()
    t2 = time.perf_counter()
    per_file = ih.map_files(ds, _file_mean)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, values, per_file


def _open_daily(so: dict, dataset: str, days: int) -> xr.Dataset:
    start = pd.Timestamp("2019-01-01")
    return ih.open_bucket(ROOT, so, cache=False)[dataset].to_dataset(
        start, start + pd.Timedelta(days=days)
    )


def open_cost(so: dict, dataset: str, proxy: ProxyProcess, days: int) -> dict:
    """Opening ``days`` daily files straight to the server: seconds; again under tracemalloc
    (which slows Python several times): the client's peak memory; and through ``proxy``:
    the requests (the proxy relays in Python and adds its own time to each)."""
    t = time.perf_counter()
    ds = _open_daily(so, dataset, days)
    seconds = time.perf_counter() - t
    tracemalloc.start()
    _open_daily(so, dataset, days)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    proxy.reset_stats()
    _open_daily({**so, "endpoint_url": proxy.endpoint_url}, dataset, days)
    return {
        "files": int(ds.sizes["file"]),
        "records": int(ds.sizes["time"]),
        "seconds": seconds,
        "requests": int(proxy.stats["requests"]),
        "peak_mb": peak / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--open-days", type=int, default=365)
    args = ap.parse_args(argv)

    with LocalS3(process=True) as s3:
        so = s3.storage_options
        print(f"writing {args.files} hourly 1 Hz CDF files and {args.open_days} daily files ...")
        dataset = write_day(so, args.files)
        daily = write_daily(so, args.open_days)
        urls = ih.open_bucket(ROOT, so, cache=False)[dataset].files()["datakey"].tolist()
        runs: dict[str, list[float]] = {"lean": [], "open": [], "compute": [], "map": []}
        ctx = multiprocessing.get_context("spawn")
        init = (so["endpoint_url"], so["key"], so["secret"])
        with (
            concurrent.futures.ProcessPoolExecutor(
                2, ctx, initializer=_init, initargs=init
            ) as pool,
            ih.cluster("local", workers=2, worker_cores=1) as client,
        ):
            lean(so, urls[:2], pool)  # warm both: imports, clients
            ours(so, dataset, client)
            for _ in range(args.runs):
                seconds, want = lean(so, urls, pool)
                runs["lean"].append(seconds)
                t_open, t_compute, t_map, got, per_file = ours(so, dataset, client)
                runs["open"].append(t_open)
                runs["compute"].append(t_compute)
                runs["map"].append(t_map)
        equal = np.array_equal(got.B_GSE.values, want.B_GSE.values, equal_nan=True) and (
            np.array_equal(got.time.values, want.Epoch.values)
        )
        valued = bool((per_file.status == "ok").all())
        valued = valued and int(per_file.n.sum()) == got.sizes["time"]
        n = len(urls)
        med = {k: statistics.median(v) for k, v in runs.items()}
        lean_rate = n / med["lean"]
        print(f"\n{n} files, {got.sizes['time']} records; medians of {args.runs} runs")
        print(f"{'method':<28}{'seconds':>9}{'files/s':>9}{'x lean':>8}")
        rows = [
            ("lean (2 procs, boto3)", med["lean"]),
            ("open (index, epochs)", med["open"]),
            ("compute (2 workers)", med["compute"]),
            ("open + compute", med["open"] + med["compute"]),
            ("map_files (2 workers)", med["map"]),
        ]
        for name, sec in rows:
            print(f"{name:<28}{sec:9.2f}{n / sec:9.1f}{(n / sec) / lean_rate:8.2f}")
        print(f"values equal to the lean loop's: {equal}; every file valued by map_files: {valued}")

        with ProxyProcess(s3.endpoint_url) as proxy:
            cost = open_cost(so, daily, proxy, args.open_days)
        print(
            f"\nopening {cost['files']} daily files ({cost['records']} records): "
            f"{cost['seconds']:.1f} s, {cost['requests']} requests, "
            f"client peak {cost['peak_mb']:.0f} MB (tracemalloc)"
        )
        ok = equal and valued and (n / med["compute"]) >= 0.9 * lean_rate
        print("goal (compute >= 0.9 x lean, values equal): " + ("met" if ok else "NOT met"))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

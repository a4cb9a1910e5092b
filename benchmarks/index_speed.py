"""Index speed: a 129,758-row unsorted 3-column year index from the local S3 server.

Fetches, parses, sorts and slices to one month with ``Dataset.files`` and prints the
median time and rows/s of several runs, next to a baseline measured in the same run:
the same bytes fetched and read with the standard library ``csv`` module and sorted
in Python (what a hand-written loop does). Goal (issue 2): < 1 s on this machine.

    python benchmarks/index_speed.py [--rows 129758] [--repeat 5]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import time

import numpy as np
import pandas as pd

import intake_helio as ih
from intake_helio.testing.local_s3 import LocalS3


def make_index(rows: int) -> bytes:
    t = pd.date_range("2020-01-01", "2021-01-01", periods=rows + 1)[:-1]
    rot = rows // 8  # rotated like the live 2020 AIA 94 index
    t = np.roll(t.to_numpy(), -rot)
    stamps = pd.DatetimeIndex(t).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    days = pd.DatetimeIndex(t).strftime("%Y%m%d")
    lines = [
        f"{s},s3://bench/sdo/aia/{d}/0094/aia_lev1_94a_{i:06d}_image_lev1.fits,{14_000_000 + i}"
        for i, (s, d) in enumerate(zip(stamps, days, strict=True))
    ]
    return ("\n".join(lines) + "\n").encode()


def baseline(fs, path: str, t0: str, t1: str) -> int:
    text = fs.cat_file(path).decode()
    rows = []
    for r in csv.reader(io.StringIO(text)):
        start = r[0][:19]
        rows.append((start, r[1], int(r[2])))
    rows.sort()
    return sum(1 for r in rows if t0 <= r[0] < t1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=129_758)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    with LocalS3(process=True) as s3:
        fs = s3.filesystem()
        fs.mkdir("bench")
        data = make_index(args.rows)
        fs.pipe_file("bench/idx/aia_0094_2020.csv", data)
        cat = {
            "version": "1.0",
            "name": "bench",
            "endpoint": "s3://bench/",
            "catalog": [
                {
                    "id": "aia_0094",
                    "index": "s3://bench/idx/",
                    "title": "AIA 94",
                    "start": "2020-01-01T00:00Z",
                    "stop": "2020-12-31T23:59Z",
                }
            ],
        }
        fs.pipe_file("bench/catalog.json", json.dumps(cat).encode())
        ds = ih.open_bucket("s3://bench/", s3.storage_options)["aia_0094"]
        ours, base = [], []
        n_ours = n_base = 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            df = ds.files("2020-03-01", "2020-04-01")
            ours.append(time.perf_counter() - t)
            n_ours = len(df)
            t = time.perf_counter()
            n_base = baseline(fs, "bench/idx/aia_0094_2020.csv", "2020-03-01", "2020-04-01")
            base.append(time.perf_counter() - t)
    mo, mb = statistics.median(ours), statistics.median(base)
    print(
        f"index: {args.rows} rows, {len(data) / 1e6:.1f} MB, unsorted, 3 columns; "
        f"sliced to one month: {n_ours} rows (baseline found {n_base})"
    )
    print(f"{'method':<34}{'median s':>10}{'rows/s':>14}   runs")
    for name, ts in (("intake-helio Dataset.files", ours), ("baseline csv module + sort", base)):
        med = statistics.median(ts)
        runs = " ".join(f"{x:.3f}" for x in ts)
        print(f"{name:<34}{med:>10.3f}{args.rows / med:>14,.0f}   {runs}")
    print(
        f"ratio baseline/intake-helio: {mb / mo:.1f}x faster; goal < 1 s: "
        + ("met" if mo < 1.0 else "NOT met")
    )
    return 0 if mo < 1.0 and n_ours == n_base else 1


if __name__ == "__main__":
    sys.exit(main())

"""Lazy-frames graph build: a year of AIA 94 (129,758 frames) as one lazy DataArray.

Prints build time and memory of ``open_frames`` (one HighLevelGraph layer, one task
per frame) next to a baseline measured in the same run: the common
``dask.delayed`` + ``da.from_delayed`` + ``da.stack`` construction (one layer per
frame), timed on fewer frames (``--baseline-frames``) and scaled per frame.
Goal (issue 3): < 3 s and < 500 MB for 129,758 frames.

Only the first frame exists (a small FITS file in ``memory://``): the other files
do not, so a build that opened any of them would fail.

    python benchmarks/graph_build.py [--frames 129758] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc

import dask
import dask.array as da
import numpy as np
import pandas as pd
from fsspec.implementations.memory import MemoryFileSystem

from intake_helio.frames.build import open_frames
from intake_helio.testing.aia import frame_bytes, make_aia_frame


def file_list(n: int) -> pd.DataFrame:
    t = pd.date_range("2020-01-01", periods=n, freq="4min")
    return pd.DataFrame(
        {
            "start": t,
            "stop": t + pd.Timedelta("4min"),
            "datakey": [f"memory://bench/aia/{i:06d}.fits" for i in range(n)],
            "filesize": np.full(n, 14_000_000, dtype=np.int64),
        }
    )


def ours(df):
    return open_frames(df, on_error="raise")


def baseline(df, shape):
    def read(key):  # never called: the graph is only built
        raise RuntimeError(key)

    parts = [
        da.from_delayed(dask.delayed(read)(k), shape=shape, dtype=np.float32) for k in df["datakey"]
    ]
    return da.stack(parts)


def measure(fn, *args):
    """(result, seconds, peak MB): time without tracing, then memory in a traced rerun."""
    gc.collect()
    t = time.perf_counter()
    out = fn(*args)
    elapsed = time.perf_counter() - t
    del out
    gc.collect()
    tracemalloc.start()
    out = fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, elapsed, peak / 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=129_758)
    ap.add_argument("--baseline-frames", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    fs = MemoryFileSystem()
    fs.pipe_file("/bench/aia/000000.fits", frame_bytes(make_aia_frame("2020-01-01", size=512)))
    df = file_list(args.frames)
    dfb = df.iloc[: args.baseline_frames]
    o_t, o_m, b_t, b_m = [], [], [], []
    layers = ntasks = 0
    for _ in range(args.repeat):
        arr, t, m = measure(ours, df)
        o_t.append(t)
        o_m.append(m)
        layers = len(arr.data.dask.layers)
        ntasks = len(arr.data.__dask_graph__())
        del arr
        arr, t, m = measure(baseline, dfb, (512, 512))
        b_t.append(t)
        b_m.append(m)
        del arr
    ot, om = statistics.median(o_t), statistics.median(o_m)
    per_frame_b = statistics.median(b_t) / args.baseline_frames
    per_frame_o = ot / args.frames
    print(f"open_frames: {args.frames} frames -> {layers} graph layer(s), {ntasks} tasks")
    print(f"{'method':<44}{'frames':>8}{'median s':>10}{'peak MB':>10}{'us/frame':>10}")
    print(
        f"{'intake-helio open_frames (one layer)':<44}{args.frames:>8}{ot:>10.3f}{om:>10.1f}"
        f"{per_frame_o * 1e6:>10.1f}"
    )
    print(
        f"{'baseline from_delayed + stack':<44}{args.baseline_frames:>8}"
        f"{statistics.median(b_t):>10.3f}{statistics.median(b_m):>10.1f}"
        f"{per_frame_b * 1e6:>10.1f}"
    )
    print(
        f"ratio (baseline/intake-helio time per frame): {per_frame_b / per_frame_o:.1f}x; "
        f"runs: {' '.join(f'{x:.2f}' for x in o_t)} s"
    )
    ok = ot < 3 and om < 500 and layers == 1
    print(f"goal < 3 s and < 500 MB, one layer: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

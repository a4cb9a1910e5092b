"""Frames -> irradiance: the mean of every frame, with a value or a reason for each.

``irradiance(frames)`` computes ``frames.mean(("y", "x"))`` (NaN-aware). For arrays
made by :func:`~intake_helio.open_frames` and not modified since, each frame is
reduced where it is read (BLANK-aware integer sums, no float copy of the frame),
which gives the same values as the generic path, much faster: a task reduces a
batch of up to :data:`MAX_BATCH` consecutive frames (see :func:`batch_sizes`) and
fetches the next frame's file while it decodes one, so that a core does not wait
for the network and dask's per-task cost is paid once per batch. Either way
work is computed in parts of ``part_size`` frames on the active scheduler
(a ``distributed.Client`` if one is active), so results can be saved as they
complete and a run can be resumed.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from ..fits import frame as fits_frames
from ..frames.build import FrameRecipe, recipe_of
from ..io.storage import filesystem

__all__ = [
    "MAX_BATCH",
    "PART_COLUMNS",
    "batch_sizes",
    "irradiance",
    "iter_parts",
    "parts_to_dataset",
    "reduce_frames",
]

PART_COLUMNS = ["time", "datakey", "irradiance", "n_valid", "status"]


#: Most consecutive frames reduced by one task (see :func:`reduce_frames`).
MAX_BATCH = 8


def reduce_frame(
    datakey, storage_options, hdu, rows, cols, units, shape, whole_file=None, prefetched=None
):
    """Mean of one frame inside its read task: ``(mean, n_valid, status)``."""
    try:
        fs, path = filesystem(datakey, storage_options)
        total, count = fits_frames.frame_sum(
            fs,
            path,
            hdu=hdu,
            rows=rows,
            cols=cols,
            units=units,
            expect_shape=shape,
            whole_file=whole_file,
            prefetched=prefetched,
        )
    except Exception as exc:
        return math.nan, 0, fits_frames.frame_error_reason(exc)
    mean = total / count if count else math.nan
    return mean, int(count), "ok" if count else "all pixels blank"


def _start_read(datakey, storage_options):
    try:
        fs, path = filesystem(datakey, storage_options)
        return fits_frames.start_whole_read(fs, path)
    except Exception:  # the frame's own read reports it
        return None


def reduce_frames(
    datakeys: Sequence[str],
    storage_options: Mapping[str, Any] | None,
    hdu: int | str,
    rows: slice | None,
    cols: slice | None,
    units: str,
    shape: tuple[int, int] | None,
    whole_file: bool | None = None,
) -> list[tuple[float, int, str]]:
    """Means of consecutive frames, in one task: a list of ``(mean, n_valid, status)``.

    With whole-file reads, the next frame's file is fetched (on the filesystem's I/O
    thread, :func:`~intake_helio.fits.frame.start_whole_read`) while one is decoded, so
    that the core does not wait for the network. A frame that cannot be read gets
    ``(nan, 0, reason)``; it never stops the others.

    Parameters
    ----------
    datakeys : sequence of str
        URLs of the frames' files.
    storage_options : mapping, optional
        fsspec options (flat or per protocol, see :mod:`intake_helio.io.storage`).
    hdu, rows, cols, units, whole_file
        As for :func:`~intake_helio.fits.frame.frame_sum`.
    shape : tuple of int, optional
        The ``(ny, nx)`` every frame (or cutout) must have; another shape is
        ``"shape mismatch"``.
    """
    ahead = {}
    prefetch = bool(whole_file) and len(datakeys) > 1

    def start(i):
        if prefetch and i < len(datakeys):
            ahead[i] = _start_read(datakeys[i], storage_options)

    out = []
    try:
        start(0)
        for i, key in enumerate(datakeys):
            start(i + 1)
            fetched = ahead.pop(i, None)
            args = (hdu, rows, cols, units, shape, whole_file, fetched)
            out.append(reduce_frame(key, storage_options, *args))
    finally:
        for fut in ahead.values():
            if fut is not None:
                fut.cancel()
    return out


def _part_range(p: int, part_size: int, n: int) -> range:
    """The frames of part ``p``: ``part_size`` consecutive frames, fewer in the last part."""
    return range(p * part_size, min(n, (p + 1) * part_size))


def _collect(*batches):
    return [r for batch in batches for r in batch]


def batch_sizes(frames: int, total: int, threads: int, single_part: bool) -> list[int]:
    """How many consecutive frames each task of a part reduces.

    Batches of up to :data:`MAX_BATCH` frames amortise dask's per-task cost and let a
    task fetch one frame while it decodes another; they stay small enough that the
    ``total`` frames of the job give every one of ``threads`` threads several tasks.
    A job of one part gets a multiple of ``threads`` tasks of equal size (+-1 frame),
    so that no thread is left with extra frames at the end.

    Parameters
    ----------
    frames : int
        Frames in the part.
    total : int
        Frames the whole job computes.
    threads : int
        Threads of the cluster (or of the local scheduler).
    single_part : bool
        Whether the part is the whole job.

    Returns
    -------
    list of int
        Batch sizes, in order, summing to ``frames``.
    """
    if frames <= 0:
        return []
    threads = max(1, threads)
    size = max(1, min(MAX_BATCH, total // (2 * threads)))
    tasks = -(-frames // size)
    if single_part and tasks % threads:
        tasks = min(frames, tasks + threads - tasks % threads)
    base, extra = divmod(frames, tasks)
    return [base + 1] * extra + [base] * (tasks - extra)


def _fast_part(recipe: FrameRecipe, idx: range, units: str, sizes: list[int]):
    tasks = []
    a = idx.start
    for size in sizes:
        b = a + size
        tasks.append(
            dask.delayed(reduce_frames, pure=True)(
                recipe.datakeys[a:b],
                recipe.storage_options,
                recipe.hdu,
                recipe.rows,
                recipe.cols,
                units,
                recipe.shape,
                recipe.whole,
                dask_key_name=f"helio-mean-{units}-{recipe.name}-{a}-{b}",
            )
        )
        a = b
    return dask.delayed(_collect, pure=True)(*tasks)


def _generic_part(frames: xr.DataArray, idx: range, normalize: bool):
    part = frames.isel(time=slice(idx.start, idx.stop))
    if normalize and part.attrs.get("units") != "DN/s":
        if "EXPTIME" not in part.coords:
            raise ValueError(
                "normalize=True needs each frame's EXPTIME: open the frames with "
                "header_keys=['EXPTIME'] or units='DN/s'"
            )
        part = part / part.coords["EXPTIME"]
    mean = part.mean(("y", "x"))
    count = part.notnull().sum(("y", "x"))
    status = part.coords.get("read_status", None)
    return mean.data, count.data, None if status is None else status.data


def _client():
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def _threads(client) -> int:
    """Threads that will run the tasks: the cluster's, or the local scheduler's."""
    if client is not None:
        return sum(client.nthreads().values()) or 1
    scheduler = dask.config.get("scheduler", None)
    if scheduler in ("sync", "synchronous", "single-threaded"):
        return 1
    return int(dask.config.get("num_workers", None) or dask.system.CPU_COUNT or 1)


def _interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def iter_parts(
    frames: xr.DataArray,
    *,
    normalize: bool = False,
    part_size: int = 256,
    skip: Iterable[int] = (),
    in_flight: int | None = None,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Compute the irradiance part by part, yielding ``(part_number, DataFrame)`` as parts finish.

    Parts are ``part_size`` consecutive frames; numbers in ``skip`` are not computed
    (already saved). With a distributed client, several parts are in flight at once
    and are yielded in completion order; otherwise parts are computed one after
    another with the current dask scheduler.
    """
    if part_size < 1:
        raise ValueError(f"part_size={part_size!r}; expected a positive number of frames")
    n = frames.sizes["time"]
    recipe = recipe_of(frames)
    units = frames.attrs.get("units", "DN")
    if recipe is not None and normalize and recipe.units == "DN":
        units = "DN/s"
    times = frames["time"].to_numpy()
    keys = np.asarray(frames["datakey"].to_numpy() if "datakey" in frames.coords else [""] * n)
    skip = set(skip)
    todo = [p for p in range(math.ceil(n / part_size)) if p not in skip]
    todo_frames = sum(len(_part_range(p, part_size, n)) for p in todo)
    client = _client()
    threads = _threads(client)

    def build(p):
        idx = _part_range(p, part_size, n)
        if recipe is not None:
            sizes = batch_sizes(len(idx), todo_frames, threads, len(todo) == 1)
            return idx, _fast_part(recipe, idx, units, sizes)
        return idx, _generic_part(frames, idx, normalize)

    def to_frame(idx, computed) -> pd.DataFrame:
        if recipe is not None:
            mean, count, status = zip(*computed, strict=True) if computed else ((), (), ())
        else:
            mean, count, status = computed
            mean = np.asarray(mean, dtype=np.float64)
            count = np.asarray(count, dtype=np.int64)
            status = (
                ["ok" if c else "all pixels blank" for c in count]
                if status is None
                else [
                    s if s != "ok" or c else "all pixels blank"
                    for s, c in zip(status, count, strict=True)
                ]
            )
        return pd.DataFrame(
            {
                "time": times[idx.start : idx.stop],
                "datakey": keys[idx.start : idx.stop].astype(str),
                "irradiance": np.asarray(mean, dtype=np.float64),
                "n_valid": np.asarray(count, dtype=np.int64),
                "status": np.asarray(status, dtype=object).astype(str),
            }
        )

    if client is None:
        for p in todo:
            idx, work = build(p)
            (computed,) = dask.compute(work)
            yield p, to_frame(idx, computed)
        return

    from distributed import as_completed

    if in_flight is None:  # enough parts that every thread has a few tasks queued
        per_task = MAX_BATCH if recipe is not None else 1
        in_flight = max(2, math.ceil(4 * threads * per_task / part_size) + 1)
    pending = iter(todo)
    futures = {}

    def submit_next() -> bool:
        p = next(pending, None)
        if p is None:
            return False
        idx, work = build(p)
        fut = client.compute(work)
        futures[fut] = (p, idx)
        return True

    for _ in range(in_flight):
        if not submit_next():
            break
    ac = as_completed(list(futures))
    try:
        for fut in ac:
            p, idx = futures.pop(fut)
            computed = fut.result()
            if submit_next():
                ac.add(list(futures)[-1])
            yield p, to_frame(idx, computed)
    finally:
        for fut in futures:
            fut.cancel()


def parts_to_dataset(parts: Iterable[pd.DataFrame], frames_attrs: dict, units: str) -> xr.Dataset:
    """Concatenate parts (in time order) into the result Dataset."""
    df = pd.concat(list(parts), ignore_index=True) if parts else pd.DataFrame(columns=PART_COLUMNS)
    df = df.sort_values("time", kind="stable", ignore_index=True)
    keep = ("dataset", "title", "endpoint", "WAVELNTH")
    attrs = {k: frames_attrs[k] for k in keep if k in frames_attrs}
    attrs["source"] = "intake-helio irradiance: mean of every frame (NaN-aware)"
    ds = xr.Dataset(
        {
            "irradiance": (
                "time",
                df["irradiance"].to_numpy(np.float64),
                {"long_name": "mean intensity of the frame", "units": units},
            ),
            "n_valid": (
                "time",
                df["n_valid"].to_numpy(np.int64),
                {"long_name": "number of valid (non-BLANK) pixels"},
            ),
            "status": (
                "time",
                df["status"].to_numpy(str).astype(object),
                {"long_name": "'ok' or the reason the frame has no value"},
            ),
            "datakey": (
                "time",
                df["datakey"].to_numpy(str).astype(object),
                {"long_name": "URL of the frame's file"},
            ),
        },
        coords={"time": ("time", pd.DatetimeIndex(df["time"]).as_unit("ns").to_numpy())},
        attrs=attrs,
    )
    return ds


def irradiance(
    frames: xr.DataArray,
    normalize: bool = False,
    progress: bool = True,
    part_size: int = 256,
    on_part: Callable[[int, pd.DataFrame], Any] | None = None,
    skip: Iterable[int] = (),
) -> xr.Dataset:
    """The irradiance time series of ``frames``: the NaN-aware mean of every frame.

    Parameters
    ----------
    frames : xarray.DataArray
        Lazy ``(time, y, x)`` frames, e.g. from :meth:`Dataset.to_dataarray`.
    normalize : bool
        Divide each frame by its own ``EXPTIME`` (values in DN/s).
    progress : bool
        Show a progress bar (frames done / total, rate, ETA) when stderr is a terminal
        or in a notebook.
    part_size : int
        Frames per unit of work and of progress.
    on_part : callable, optional
        Called with ``(part_number, DataFrame)`` as each part completes.
    skip : iterable of int
        Part numbers not to compute (saved by an earlier, interrupted run); the
        result then holds only the parts computed now.

    Returns
    -------
    xarray.Dataset
        Along ``time``: ``irradiance`` (float64), ``n_valid``, ``status`` (``"ok"`` or
        why the frame has no value) and ``datakey``. A frame that cannot be read never
        stops the computation: it has ``irradiance=NaN`` and a reason.
    """
    units = "DN/s" if normalize else frames.attrs.get("units", "DN")
    skip = set(skip)
    total = frames.sizes["time"]
    n = total - sum(len(_part_range(p, part_size, total)) for p in skip)
    bar = None
    if progress and _interactive():
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="frame", desc="irradiance", smoothing=0.1)
    parts = []
    t0 = time.perf_counter()
    try:
        for p, df in iter_parts(frames, normalize=normalize, part_size=part_size, skip=skip):
            parts.append(df)
            if on_part is not None:
                on_part(p, df)
            if bar is not None:
                bar.update(len(df))
    finally:
        if bar is not None:
            bar.close()
    ds = parts_to_dataset(parts, dict(frames.attrs), units)
    ds.attrs["elapsed_seconds"] = round(time.perf_counter() - t0, 3)
    return ds

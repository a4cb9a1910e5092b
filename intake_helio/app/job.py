"""The jobs end to end: catalog -> lazy frames -> per-frame science -> saved files.

:func:`run_irradiance_job` (``intake-helio irradiance`` and ``intake-helio demo``) saves
the mean of every frame; :func:`run_reduce_job` (``intake-helio reduce``) saves any
statistics and user functions of every frame. Both take the same public code path as a
notebook user (bucket -> dataset -> ``to_dataarray`` -> ``irradiance`` / ``map_frames``),
save parts as they complete and resume an interrupted run with the same arguments.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..base.errors import ArgumentError
from ..base.reasons import Reason
from ..base.settings import current
from ..catalog.registry import open_bucket
from ..compute.engine import frame_funcs, map_frames
from ..compute.reduction import irradiance, parts_to_dataset
from ..compute.shipping import func_id, ship_by_value
from .results import PartStore, save_outputs, save_results, to_dataframe
from .stores import ZarrStore

__all__ = [
    "FORMATS",
    "JobSummary",
    "func_id",
    "run_irradiance_job",
    "run_reduce_job",
    "ship_by_value",
]

#: What ``run_reduce_job`` can write: ``reduce.csv``, ``reduce.nc``, ``reduce.zarr``,
#: ``reduce.png``.
FORMATS: tuple[str, ...] = ("csv", "nc", "zarr", "png")

_STAT_NAMES = {
    "mean": "mean of the frame's valid pixels",
    "sum": "sum of the frame's valid pixels",
    "min": "minimum of the frame's valid pixels",
    "max": "maximum of the frame's valid pixels",
    "std": "standard deviation (population) of the frame's valid pixels",
    "count": "number of valid (non-BLANK) pixels",
}


@dataclass
class JobSummary:
    """What a run did: frame counts, failures by reason, time and rate, files written."""

    frames: int
    ok: int
    failed: dict[str, int]
    elapsed: float
    computed: int
    paths: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def files_per_second(self) -> float:
        return self.computed / self.elapsed if self.elapsed > 0 else float("nan")

    def text(self) -> str:
        lines = [
            f"frames: {self.frames}  ok: {self.ok}  failed: {sum(self.failed.values())}",
        ]
        for reason, count in sorted(self.failed.items(), key=lambda kv: -kv[1]):
            lines.append(f"  failed ({reason}): {count}")
        lines.append(
            f"elapsed: {self.elapsed:.1f} s  computed: {self.computed} frames  "
            f"rate: {self.files_per_second:.2f} files/s"
        )
        for kind, path in self.paths.items():
            lines.append(f"wrote {kind}: {path}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------- shared steps
def _check_part_size(part_size: Any) -> int:
    part_size = current().part_size if part_size is None else part_size
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
        raise ArgumentError(f"part_size={part_size!r}; expected a positive number of frames")
    return part_size


def _open_frames(endpoint, dataset, start, stop, storage_options, cutout):
    """``(bucket, frames)``: the dataset's lazy frames over ``[start, stop)``."""
    bucket = open_bucket(endpoint, storage_options)
    frames = bucket[dataset].to_dataarray(
        start, stop, cutout=cutout, on_error="nan", storage_options=storage_options
    )
    return bucket, frames


def _identity(bucket, dataset: str, frames: xr.DataArray, normalize, cutout, part_size) -> dict:
    """What makes two runs the same, for ``resume`` (never a credential)."""
    return {
        "endpoint": bucket.endpoint,
        "dataset": dataset,
        "start": str(frames["time"].values[0]),
        "stop": str(frames["time"].values[-1]),
        "frames": frames.sizes["time"],
        "files": PartStore.fingerprint(frames["datakey"].values),
        "normalize": normalize,
        "cutout": repr(cutout),
        "part_size": part_size,
    }


def _compute_on(cluster_kind: str | None, cluster_kwargs: Mapping[str, Any] | None):
    """A context with the cluster to compute on (None: the active dask scheduler)."""
    if cluster_kind is None:
        return contextlib.nullcontext()
    from ..compute.clusters import cluster

    return cluster(cluster_kind, **dict(cluster_kwargs or {}))


def _summary(status, elapsed: float, computed: int, paths, notes=()) -> JobSummary:
    status = np.asarray(status).astype(str)
    ok = status == str(Reason.OK)
    failed = Counter(status[~ok].tolist())
    return JobSummary(
        len(status), int(ok.sum()), dict(failed), elapsed, computed, dict(paths), list(notes)
    )


# --------------------------------------------------------------------------- irradiance
def run_irradiance_job(
    endpoint: str,
    dataset: str,
    start: Any,
    stop: Any,
    out: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    cluster_kind: str | None = "local",
    cluster_kwargs: Mapping[str, Any] | None = None,
    normalize: bool = False,
    resume: bool = False,
    cutout: Mapping[str, slice] | None = None,
    part_size: int = 256,
    progress: bool = True,
    plot: bool = True,
) -> tuple[xr.Dataset, JobSummary]:
    """Compute and save the irradiance of ``dataset`` over ``[start, stop)``.

    Parameters
    ----------
    endpoint, dataset : str
        Bucket root (``s3://bucket/``) and dataset id.
    start, stop : time-like
        Half-open range.
    out : str
        Output directory: ``irradiance.csv``, ``irradiance.nc``, ``irradiance.png`` and
        ``parts/`` (for ``resume``).
    storage_options : dict, optional
        fsspec options for the catalog, the indexes and every frame read.
    cluster_kind : {"local", "gateway", None}
        Where to compute; None uses the active dask scheduler.
    cluster_kwargs : dict, optional
        Passed to :func:`intake_helio.compute.clusters` (workers, worker_cores, address, ...).
    normalize, cutout
        As for :func:`intake_helio.compute.reduction` and :meth:`Dataset.to_dataarray`.
    resume : bool
        Keep the parts saved by an interrupted run with the same arguments.
    """
    part_size = _check_part_size(part_size)
    bucket, frames = _open_frames(endpoint, dataset, start, stop, storage_options, cutout)
    units = "DN/s" if normalize else frames.attrs.get("units", "DN")
    identity = _identity(bucket, dataset, frames, normalize, cutout, part_size)
    store = PartStore(out, identity, resume)
    done = store.done()
    computed = 0
    t0 = time.perf_counter()

    def on_part(p, df):
        nonlocal computed
        store.save(p, df)
        computed += len(df)

    with _compute_on(cluster_kind, cluster_kwargs):
        irradiance(
            frames,
            normalize=normalize,
            progress=progress,
            part_size=part_size,
            on_part=on_part,
            skip=done,
        )
    result = parts_to_dataset(store.load(), dict(frames.attrs), units)
    elapsed = time.perf_counter() - t0
    paths = save_results(result, out, plot=plot)
    table = to_dataframe(result)
    return result, _summary(table["status"], elapsed, computed, paths)


# --------------------------------------------------------------------------- reduce
def _check_formats(formats: Any) -> tuple[str, ...]:
    items = [formats] if isinstance(formats, str) else list(formats or ())
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise ArgumentError(
            f"formats={list(items)!r}; expected one or more of {', '.join(FORMATS)}"
        )
    return tuple(f for f in FORMATS if f in items)


def _var_attrs(specs, units: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, func in specs:
        if isinstance(func, str):
            out[name] = {"long_name": _STAT_NAMES[func]}
            if func != "count":
                out[name]["units"] = units
        else:
            out[name] = {"long_name": f"output of {func_id(func)}"}
    return out


def run_reduce_job(
    endpoint: str,
    dataset: str,
    start: Any,
    stop: Any,
    out: str,
    *,
    funcs: str | Callable | Sequence[str | Callable],
    formats: Sequence[str] = ("csv", "nc"),
    storage_options: Mapping[str, Any] | None = None,
    cluster_kind: str | None = "local",
    cluster_kwargs: Mapping[str, Any] | None = None,
    normalize: bool = False,
    resume: bool = False,
    cutout: Mapping[str, slice] | None = None,
    part_size: int | None = None,
    progress: bool = True,
) -> tuple[xr.Dataset, JobSummary]:
    """Compute and save statistics and user functions of every frame over ``[start, stop)``.

    Parameters
    ----------
    endpoint, dataset : str
        Bucket root (``s3://bucket/``) and dataset id.
    start, stop : time-like
        Half-open range.
    out : str
        Output directory.
    funcs : str, callable or list of those
        As for :func:`~intake_helio.compute.engine.map_frames`: built-in statistics
        (``"mean"``, ``"sum"``, ``"min"``, ``"max"``, ``"std"``, ``"count"``) and/or
        functions ``f(data, header)`` returning a number, a fixed-shape numpy array or a
        dict of those. Functions reach the workers by value (:func:`ship_by_value`).
    formats : sequence of str
        Any of ``"csv"`` (``reduce.csv``: time, datakey, the scalar outputs, status),
        ``"nc"`` (``reduce.nc``: every output), ``"zarr"`` (``reduce.zarr``: every output,
        written part by part) and ``"png"`` (``reduce.png``: one panel per output, made
        only when every output is a scalar).
    storage_options, cluster_kind, cluster_kwargs, normalize, cutout
        As for :func:`run_irradiance_job`.
    resume : bool
        Keep the parts saved by an interrupted run with the same arguments and functions
        (the Zarr store's own record); a store of another run is refused.
    part_size : int, optional
        Frames per part: the unit of saving, resuming and the Zarr chunks along time
        (setting ``intake_helio.part-size`` when None).

    Returns
    -------
    (xarray.Dataset, JobSummary)
        The whole result (as read back from the store, times in whole microseconds) and
        what the run did.

    Notes
    -----
    Parts are saved in a Zarr store as they complete: ``<out>/reduce.zarr`` when
    ``"zarr"`` is among ``formats``, otherwise ``<out>/parts.zarr``. Its attribute
    ``complete`` becomes True only when every part is saved.
    """
    formats = _check_formats(formats)
    part_size = _check_part_size(part_size)
    specs = frame_funcs(funcs)
    shipped = [f if isinstance(f, str) else ship_by_value(f) for _, f in specs]
    bucket, frames = _open_frames(endpoint, dataset, start, stop, storage_options, cutout)
    units = "DN/s" if normalize else str(frames.attrs.get("units", "DN"))
    ids = [func_id(f) for _, f in specs]
    identity = {
        **_identity(bucket, dataset, frames, normalize, cutout, part_size),
        "job": "reduce",
        "funcs": ids,
    }
    keep = ("dataset", "title", "endpoint", "WAVELNTH")
    attrs = {k: frames.attrs[k] for k in keep if k in frames.attrs}
    attrs["units"] = units
    attrs["source"] = f"intake-helio reduce: {', '.join(ids)} of every frame"
    store = ZarrStore(
        Path(out) / ("reduce.zarr" if "zarr" in formats else "parts.zarr"),
        identity,
        resume,
        times=frames["time"].to_numpy(),
        datakeys=frames["datakey"].to_numpy(),
        part_size=part_size,
        attrs=attrs,
        var_attrs=_var_attrs(specs, units),
    )
    done = store.done()
    computed = 0
    t0 = time.perf_counter()

    def on_part(p: int, part: xr.Dataset) -> None:
        nonlocal computed
        store.save(p, part)
        computed += part.sizes["time"]

    if len(done) < store.parts:
        with _compute_on(cluster_kind, cluster_kwargs):
            map_frames(
                frames,
                shipped,
                normalize=normalize,
                progress=progress,
                part_size=part_size,
                on_part=on_part,
                skip=done,
            )
    store.mark_complete()
    result = store.load()
    result.attrs.pop("complete", None)
    elapsed = time.perf_counter() - t0
    written, notes = save_outputs(result, out, formats, stem="reduce")
    if "zarr" in formats:
        written["zarr"] = str(store.path)
    paths = {k: written[k] for k in FORMATS if k in written}
    return result, _summary(result["status"].to_numpy(), elapsed, computed, paths, notes)

"""The jobs end to end: catalog -> lazy frames -> per-frame science -> saved files.

:func:`run_irradiance_job` (``intake-helio irradiance`` and ``intake-helio demo``) saves
the mean of every frame; :func:`run_reduce_job` (``intake-helio reduce``) saves any
statistics and user functions of every frame. Both take the same public code path as a
notebook user (bucket -> dataset -> ``to_dataarray`` -> ``irradiance`` / ``map_frames``),
save parts as they complete and resume an interrupted run with the same arguments.

Given several dataset ids, both jobs open them with
:func:`~intake_helio.catalog.channels.open_channels` (on the first one's time axis, within
``tolerance``) and save results with dimensions ``(channel, time)``: the same values as
``ih.irradiance(ih.open_channels(...))`` / ``ih.map_frames(...)``, computed channel by
channel, part by part, resumable in the same way.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from ..base.errors import ArgumentError
from ..base.options import TOLERANCE, UNITS, check_choice
from ..base.settings import current
from ..catalog.channels import open_channels
from ..catalog.registry import open_bucket
from ..compute.assembly import TIME_AXIS
from ..compute.calibration import corrected_units, correction_attrs, correction_for, table_for
from ..compute.engine import channel_arrays, frame_funcs, output_attrs
from ..compute.reduction import SOURCE, STATS, as_irradiance
from ..compute.shipping import func_id, ship_by_value
from ..compute.timeaxis import TIME_CHOICES, on_header_time
from ..io.storage import mask_url
from .legacy_parts import LegacyParts
from .lock import check_wait, hold_out_dir
from .outdir import check_outputs
from .results import save_outputs, save_results
from .runs import PartRun
from .stores import ZarrStore, fingerprint
from .summary import JobSummary
from .summary import summarize as _summary

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
#: What ``run_irradiance_job`` writes next to ``parts.zarr`` (none may be a symbolic link).
IRRADIANCE_FILES: tuple[str, ...] = ("irradiance.csv", "irradiance.nc", "irradiance.png")


# --------------------------------------------------------------------------- shared steps
def _check_part_size(part_size: Any) -> int:
    part_size = current().part_size if part_size is None else part_size
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
        raise ArgumentError(f"part_size={part_size!r}; expected a positive number of frames")
    return part_size


def _open_frames(
    endpoint, dataset, start, stop, storage_options, cutout, quality=None, header_keys=()
):
    """``(bucket, frames)``: the dataset's lazy frames over ``[start, stop)``."""
    bucket = open_bucket(endpoint, storage_options)
    frames = bucket[dataset].to_dataarray(
        start,
        stop,
        cutout=cutout,
        on_error="nan",
        storage_options=storage_options,
        quality=quality,
        header_keys=header_keys,
    )
    return bucket, frames


def _identity(
    bucket, dataset: str, frames: xr.DataArray, normalize, cutout, part_size, quality=None
) -> dict:
    """What makes two runs the same, for ``resume`` (never a credential; ``quality`` if set)."""
    return {
        "endpoint": mask_url(bucket.endpoint),
        "dataset": dataset,
        "start": str(frames["time"].values[0]),
        "stop": str(frames["time"].values[-1]),
        "frames": frames.sizes["time"],
        "files": fingerprint(frames["datakey"].values),
        "normalize": normalize,
        "cutout": repr(cutout),
        "part_size": part_size,
        **({"quality": quality} if quality else {}),
    }


# --------------------------------------------------------------------------- channels
def _dataset_ids(dataset: Any) -> list[str]:
    """``dataset`` (an id or a sequence of ids) as a list of one or more ids."""
    ids = [dataset] if isinstance(dataset, str) else list(dataset or ())
    if not ids or not all(isinstance(i, str) and i for i in ids):
        raise ArgumentError(
            f"dataset={dataset!r}; expected a dataset id such as 'aia_0094' or a list of ids"
        )
    return ids


def _seconds(tolerance: Any) -> str:
    """A tolerance as ``"<seconds> s"`` (``"6s"`` and ``"6000ms"`` are the same run)."""
    try:
        return f"{pd.Timedelta(tolerance).total_seconds():g} s"
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"tolerance={tolerance!r}; expected a duration such as '6s'") from exc


def _open_channels(
    endpoint, ids, start, stop, storage_options, cutout, tolerance, quality=None, header_keys=()
):
    """``(bucket, times, {id: lazy frames})``: the channels on the first one's time axis."""
    bucket = open_bucket(endpoint, storage_options)
    chans = open_channels(
        bucket,
        ids,
        start,
        stop,
        tolerance,
        cutout=cutout,
        on_error="nan",
        storage_options=storage_options,
        quality=quality,
        header_keys=header_keys,
    )
    return bucket, chans["time"].to_numpy(), channel_arrays(chans)


def _channels_identity(
    bucket, arrays, times, tolerance, normalize, cutout, part_size, quality=None
) -> dict:
    """:func:`_identity` of a run of several channels (their ids, files and the tolerance)."""
    keys = [str(k) for frames in arrays.values() for k in frames["datakey"].to_numpy()]
    return {
        "endpoint": mask_url(bucket.endpoint),
        "dataset": list(arrays),
        "tolerance": _seconds(tolerance),
        "start": str(times[0]),
        "stop": str(times[-1]),
        "frames": len(times),
        "files": fingerprint(keys),
        "normalize": normalize,
        "cutout": repr(cutout),
        "part_size": part_size,
        **({"quality": quality} if quality else {}),
    }


def _channels_attrs(bucket, arrays, tolerance, source: str) -> dict[str, Any]:
    """Attributes of a ``(channel, time)`` result (text only, so netCDF keeps them as they are)."""
    titles = [str(f.attrs.get("title") or name) for name, f in arrays.items()]
    return {
        "channels": ",".join(arrays),
        "titles": "; ".join(titles),
        "endpoint": mask_url(bucket.endpoint),
        "tolerance": _seconds(tolerance),
        "source": source,
        "time_axis": TIME_AXIS,
    }


# --------------------------------------------------------------------------- irradiance
def _corrections(arrays, table, normalize: bool, attrs: dict) -> tuple[dict, str]:
    """Each array's degradation correction (None without a ``table``) and the units the
    run computes in; ``attrs`` get the correction's record."""
    corrections = {name: correction_for(f, table) for name, f in arrays.items()}
    first_name, first = next(iter(arrays.items()))
    plain = "DN/s" if normalize else str(first.attrs.get("units", "DN"))
    attrs.update(correction_attrs(corrections[first_name]))
    return corrections, corrected_units(plain, corrections[first_name])


def _calibration_identity(table) -> dict:
    """The correction table's part of a run's identity (none without a correction, so
    that runs saved before corrections existed keep theirs)."""
    return {} if table is None else {"correction_table": table.describe()}


def _normalize(units: Any, normalize: bool | None) -> bool:
    """Whether frames are divided by ``EXPTIME``: ``normalize`` when given, else ``units``."""
    if normalize is not None:
        return bool(normalize)
    return check_choice("units", units, UNITS) == "DN/s"


def run_irradiance_job(
    endpoint: str,
    dataset: str | Sequence[str],
    start: Any,
    stop: Any,
    out: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    cluster_kind: str | None = "local",
    cluster_kwargs: Mapping[str, Any] | None = None,
    units: str = "DN/s",
    normalize: bool | None = None,
    resume: bool = False,
    cutout: Mapping[str, slice] | None = None,
    part_size: int | None = None,
    progress: bool = True,
    plot: bool = True,
    tolerance: Any = TOLERANCE,
    quality: str | None = None,
    time_axis: str = "start",
    wait_lock: float | None = None,
    correct_degradation: bool = False,
    correction_table: Any = None,
) -> tuple[xr.Dataset, JobSummary]:
    """Compute and save the irradiance of ``dataset`` over ``[start, stop)``.

    The light curve is in DN/s by default: each frame's mean divided by its own ``EXPTIME``
    (AIA's automatic exposure control shortens exposures in flares, so a curve in DN dips
    exactly there); ``units="DN"`` gives the mean DN per pixel. Every file says its units
    (the CSV's ``units`` column, the netCDF's ``units`` attribute, the PNG's axis).

    Parameters
    ----------
    endpoint : str
        Bucket root (``s3://bucket/``).
    dataset : str or sequence of str
        Dataset id, or several (channels, e.g. ``["aia_0094", "aia_0171"]``): then they are
        opened with :func:`~intake_helio.open_channels` on the first one's time axis and
        every variable of the result (and of the files) has dimensions ``(channel, time)``;
        the CSV is in long form (a ``channel`` column) and the PNG has one line per channel.
    start, stop : time-like
        Half-open range.
    out : str
        Output directory: ``irradiance.csv``, ``irradiance.nc``, ``irradiance.png`` and
        ``parts.zarr`` (the parts, saved as they complete, for ``resume``: as
        :func:`run_reduce_job` saves them). ``resume`` of a run interrupted by an older
        version imports the parts it saved in ``parts/`` that pass their check
        (:mod:`intake_helio.app.legacy_parts`), then deletes that directory.
    storage_options : dict, optional
        fsspec options for the catalog, the indexes and every frame read.
    cluster_kind : {"local", "gateway", None}
        Where to compute; None uses the active dask scheduler.
    cluster_kwargs : dict, optional
        Passed to :func:`intake_helio.compute.clusters` (workers, worker_cores, address, ...).
    units : {"DN/s", "DN"}
        ``"DN/s"`` (default): each frame divided by its ``EXPTIME``; ``"DN"``: as stored.
    normalize : bool, optional
        The older spelling of ``units``: True is ``"DN/s"``, False ``"DN"`` (when given, it
        decides).
    cutout
        As for :meth:`Dataset.to_dataarray`.
    resume : bool
        Keep the parts saved by an interrupted run with the same arguments.
    part_size : int, optional
        Frames per part: the unit of saving and resuming (setting
        ``intake_helio.part-size`` when None).
    tolerance : str or pandas.Timedelta
        With several datasets: how far another channel's frame may be from the first
        channel's time (see :func:`~intake_helio.open_channels`); unused with one.
    quality : {None, "good"}
        ``"good"``: frames whose header ``QUALITY`` is not 0 get the status ``"quality flag
        0x%08x"`` (not decoded; counted in the summary); see :meth:`Dataset.to_dataarray`.
    time_axis : {"start", "T_OBS"}
        The result's time axis: each frame's index start (``DATE-OBS``, the start of the
        exposure), or its header's ``T_OBS`` (mid-exposure; one header read per frame
        besides its pixels); see :func:`~intake_helio.irradiance`.
    wait_lock : float, optional
        Seconds to wait when another run holds ``out`` (its lock ``out/.intake-helio.lock``,
        held from before the first write until this returns, raises or is interrupted);
        None or 0 (default): refuse at once with :class:`~intake_helio.OutputLockedError`
        naming the holder's pid; ``math.inf``: wait as long as it takes.
    correct_degradation : bool
        Divide each frame by aiapy's degradation factor of its channel and time (see
        :func:`~intake_helio.irradiance`); needs aiapy (the ``aia`` extra).
    correction_table : str, os.PathLike, astropy.table.Table or None
        The correction table (None: aiapy's default source, JSOC). It is recorded in the
        results (``correction_table``) and in the saved parts' identity: ``resume`` with
        another table (or none) is refused.
    """
    part_size = _check_part_size(part_size)
    wait_lock = check_wait(wait_lock)
    normalize = _normalize(units, normalize)
    time_axis = check_choice("time_axis", time_axis, TIME_CHOICES)
    table = table_for(correct_degradation, correction_table)  # before anything is read
    ids = _dataset_ids(dataset)
    keys_read = ("T_OBS",) if time_axis == "T_OBS" else ()
    if len(ids) > 1:
        bucket, times, arrays = _open_channels(
            endpoint, ids, start, stop, storage_options, cutout, tolerance, quality, keys_read
        )
        legacy_id = _channels_identity(
            bucket, arrays, times, tolerance, normalize, cutout, part_size, quality
        )
        attrs = _channels_attrs(bucket, arrays, tolerance, f"{SOURCE} of each channel")
        legacy_id.update(_calibration_identity(table))
    else:
        bucket, frames = _open_frames(
            endpoint, ids[0], start, stop, storage_options, cutout, quality, keys_read
        )
        arrays, times = {ids[0]: frames}, frames["time"].to_numpy()
        legacy_id = _identity(bucket, ids[0], frames, normalize, cutout, part_size, quality)
        legacy_id.update(_calibration_identity(table))
        keep = ("dataset", "title", "endpoint", "WAVELNTH")
        attrs = {k: frames.attrs[k] for k in keep if k in frames.attrs}
        attrs.update(source=SOURCE, time_axis=TIME_AXIS)
    first = next(iter(arrays.values()))
    corrections, units = _corrections(arrays, table, normalize, attrs)
    identity = {**legacy_id, "job": "irradiance"}
    job = PartRun(arrays, identity, times, part_size, normalize, "irradiance", corrections)
    with hold_out_dir(out, wait_lock):  # the only writer of out until the files are saved
        check_outputs(out, IRRADIANCE_FILES)
        store, notes = _irradiance_store(job, out, resume, legacy_id, attrs, units)

        def finish(stats: xr.Dataset) -> xr.Dataset:
            result = as_irradiance(stats, units, attrs)
            if time_axis == "T_OBS":  # each frame's T_OBS card, read on the cluster
                result = on_header_time(result, arrays if len(arrays) > 1 else first)
            return result

        t0 = time.perf_counter()
        result, computed = job.fill(
            store, list(STATS), cluster_kind, cluster_kwargs, progress, finish, time_axis != "start"
        )
        elapsed = time.perf_counter() - t0
        channels = list(arrays) if job.several else ()
        # the frames are done with: their memory (~350 B a frame) is free for the saving
        job.release()
        arrays = first = frames = None  # also the cells that finish holds
        gc.collect()
        paths = save_results(result, out, plot=plot)
    status = result["status"].to_numpy()
    return result, _summary(status, elapsed, computed, paths, notes, channels)


def _irradiance_store(job: PartRun, out, resume: bool, legacy_id, attrs, units):
    """``(store, notes)``: the irradiance job's parts, ``<out>/parts.zarr``.

    With ``resume`` and no store of a run there, the parts an older version saved in
    ``<out>/parts/`` for this run (``legacy_id``, its identity then) are checked and
    imported (:class:`~intake_helio.app.legacy_parts.LegacyParts`); ``notes`` names those
    not used. A ``parts/`` that is not intake-helio's, or of another run, is refused before
    anything is written.
    """
    path = Path(out) / "parts.zarr"
    legacy = None
    if resume and not ZarrStore.recorded(path):
        legacy = LegacyParts(
            out, legacy_id, datakeys=job.datakeys, times=job.times, part_size=job.part_size
        )
    store = job.store(path, resume, attrs, output_attrs(list(STATS), units))
    if legacy is None:
        return store, []
    legacy.import_into(store)
    return store, legacy.notes


# --------------------------------------------------------------------------- reduce
def _check_formats(formats: Any) -> tuple[str, ...]:
    items = [formats] if isinstance(formats, str) else list(formats or ())
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise ArgumentError(
            f"formats={list(items)!r}; expected one or more of {', '.join(FORMATS)}"
        )
    return tuple(f for f in FORMATS if f in items)


def run_reduce_job(
    endpoint: str,
    dataset: str | Sequence[str],
    start: Any,
    stop: Any,
    out: str,
    *,
    funcs: str | Callable | Sequence[str | Callable],
    formats: Sequence[str] = ("csv", "nc"),
    storage_options: Mapping[str, Any] | None = None,
    cluster_kind: str | None = "local",
    cluster_kwargs: Mapping[str, Any] | None = None,
    units: str = "DN",
    normalize: bool | None = None,
    resume: bool = False,
    cutout: Mapping[str, slice] | None = None,
    part_size: int | None = None,
    progress: bool = True,
    tolerance: Any = TOLERANCE,
    quality: str | None = None,
    wait_lock: float | None = None,
    correct_degradation: bool = False,
    correction_table: Any = None,
) -> tuple[xr.Dataset, JobSummary]:
    """Compute and save statistics and user functions of every frame over ``[start, stop)``.

    Parameters
    ----------
    endpoint : str
        Bucket root (``s3://bucket/``).
    dataset : str or sequence of str
        Dataset id, or several (channels): as for :func:`run_irradiance_job`, every output
        then has a leading ``channel`` dimension (the CSV a ``channel`` column).
    start, stop : time-like
        Half-open range.
    out : str
        Output directory.
    funcs : str, callable or list of those
        As for :func:`~intake_helio.compute.engine.map_frames`: built-in statistics
        (``"mean"``, ``"sum"``, ``"min"``, ``"max"``, ``"std"``, ``"count"``,
        ``"disk_mean"``, ``"disk_sum"``, ``"offdisk_mean"``) and/or
        functions ``f(data, header)`` returning a number, a fixed-shape numpy array or a
        dict of those. Functions reach the workers by value (:func:`ship_by_value`).
    formats : sequence of str
        Any of ``"csv"`` (``reduce.csv``: time, datakey, the scalar outputs, status),
        ``"nc"`` (``reduce.nc``: every output), ``"zarr"`` (``reduce.zarr``: every output,
        written part by part) and ``"png"`` (``reduce.png``: one panel per output, made
        only when every output is a scalar).
    units : {"DN", "DN/s"}
        The frames' units (default ``"DN"``, as stored; ``"DN/s"``: each frame divided by
        its ``EXPTIME`` before the functions see it); every output's ``units`` says it.
    storage_options, cluster_kind, cluster_kwargs, normalize, cutout, tolerance, quality
    correct_degradation, correction_table
        As for :func:`run_irradiance_job` (every output linear in the pixels is corrected;
        functions receive corrected data).
    wait_lock : float, optional
        As for :func:`run_irradiance_job`: seconds to wait when another run holds ``out``.
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
    wait_lock = check_wait(wait_lock)
    normalize = _normalize(units, normalize)
    specs = frame_funcs(funcs)
    shipped = [f if isinstance(f, str) else ship_by_value(f) for _, f in specs]
    ids = _dataset_ids(dataset)
    table = table_for(correct_degradation, correction_table)  # before anything is read
    reduce_id = {
        "job": "reduce",
        "funcs": [func_id(f) for _, f in specs],
        **_calibration_identity(table),
    }
    job = dict(
        out=out,
        funcs=funcs,
        shipped=shipped,
        formats=formats,
        cluster_kind=cluster_kind,
        cluster_kwargs=cluster_kwargs,
        normalize=normalize,
        resume=resume,
        part_size=part_size,
        progress=progress,
        table=table,
    )
    if len(ids) > 1:
        bucket, times, arrays = _open_channels(
            endpoint, ids, start, stop, storage_options, cutout, tolerance, quality
        )
        ident = _channels_identity(
            bucket, arrays, times, tolerance, normalize, cutout, part_size, quality
        )
        attrs = _channels_attrs(bucket, arrays, tolerance, "")
        with hold_out_dir(out, wait_lock):  # the only writer of out until the files are saved
            return _reduce(arrays, {**ident, **reduce_id}, attrs, times, **job)
    dataset = ids[0]
    if open_bucket(endpoint, storage_options)[dataset].opens_as == "series":
        from .series_job import run_series_reduce

        if cutout is not None or quality is not None or normalize or table is not None:
            raise ArgumentError(
                f"dataset {dataset!r} is a time series: --cutout, --quality, --units DN/s "
                "and --correct-degradation apply to frames"
            )
        return run_series_reduce(
            endpoint,
            dataset,
            start,
            stop,
            out,
            funcs=[f for _, f in specs],
            formats=formats,
            storage_options=storage_options,
            cluster_kind=cluster_kind,
            cluster_kwargs=cluster_kwargs,
            resume=resume,
            part_size=part_size,
            progress=progress,
            wait_lock=wait_lock,
        )
    bucket, frames = _open_frames(endpoint, dataset, start, stop, storage_options, cutout, quality)
    identity = {
        **_identity(bucket, dataset, frames, normalize, cutout, part_size, quality),
        **reduce_id,
    }
    keep = ("dataset", "title", "endpoint", "WAVELNTH")
    attrs = {k: frames.attrs[k] for k in keep if k in frames.attrs}
    with hold_out_dir(out, wait_lock):  # the only writer of out until the files are saved
        return _reduce({dataset: frames}, identity, attrs, frames["time"].to_numpy(), **job)


def _reduce(
    arrays: Mapping[str, xr.DataArray],
    identity: dict,
    attrs: dict,
    times,
    *,
    out,
    funcs,
    shipped,
    formats,
    cluster_kind,
    cluster_kwargs,
    normalize,
    resume,
    part_size,
    progress,
    table=None,
) -> tuple[xr.Dataset, JobSummary]:
    """:func:`run_reduce_job` on one dataset's frames, or on several channels' (``(channel,
    time)`` results, parts numbered channel by channel: :meth:`ZarrStore.part_number`)."""
    corrections, units = _corrections(arrays, table, normalize, attrs)
    job = PartRun(arrays, identity, times, part_size, normalize, "map_frames", corrections)
    attrs["units"] = units
    attrs["source"] = f"intake-helio reduce: {', '.join(identity['funcs'])} of every frame"
    if job.several:
        attrs["source"] += " of each channel"
    check_outputs(out, [f"reduce.{f}" for f in formats if f != "zarr"])
    name = "reduce.zarr" if "zarr" in formats else "parts.zarr"
    store = job.store(Path(out) / name, resume, attrs, output_attrs(funcs, units))
    t0 = time.perf_counter()
    result, computed = job.fill(store, shipped, cluster_kind, cluster_kwargs, progress)
    elapsed = time.perf_counter() - t0
    written, notes = save_outputs(result, out, formats, stem="reduce")
    if "zarr" in formats:
        written["zarr"] = str(store.path)
    paths = {k: written[k] for k in FORMATS if k in written}
    status = result["status"].to_numpy()
    channels = list(arrays) if job.several else ()
    return result, _summary(status, elapsed, computed, paths, notes, channels)

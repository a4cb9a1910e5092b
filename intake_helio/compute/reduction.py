"""Frames -> irradiance: the mean of every frame, with a value or a reason for each.

``irradiance(frames)`` is :func:`~intake_helio.compute.engine.map_frames` with the
``"mean"`` and ``"count"`` statistics, laid out as the irradiance job saves it
(``irradiance``, ``n_valid``, ``status``, ``datakey``). There is no second code path:
selections, concatenations and pickled arrays are reduced inside their read tasks, and
arrays changed by arithmetic take the engine's generic path with the same contract.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..base.errors import InterruptedRun
from ..base.text import as_text
from .assembly import FRAME_TIME_ATTRS, TIME_AXIS
from .calibration import corrected_units, correction_attrs, correction_for, table_for
from .engine import (
    CHANNEL_ATTRS,
    by_channel,
    channel_arrays,
    frame_funcs,
    run_map,
)
from .progress import Progress
from .timeaxis import check_time, on_header_time

__all__ = [
    "PART_COLUMNS",
    "SOURCE",
    "STATS",
    "as_irradiance",
    "irradiance",
    "iter_parts",
    "part_stats",
    "parts_to_dataset",
    "ratio",
]

PART_COLUMNS = ["time", "frame_time", "datakey", "irradiance", "n_valid", "status"]
#: The statistics the irradiance is made of (``map_frames`` built-ins).
STATS = ("mean", "count")
#: The ``source`` attribute of an irradiance result of one dataset.
SOURCE = "intake-helio irradiance: mean of every frame (NaN-aware)"


def _part_frame(part: xr.Dataset) -> pd.DataFrame:
    """A part of ``map_frames(frames, ["mean", "count"])`` as the job's part table."""
    n = part.sizes["time"]
    mean = part["mean"].to_numpy() if "mean" in part else np.full(n, np.nan)
    count = part["count"].to_numpy() if "count" in part else np.zeros(n, dtype=np.int64)
    own = part["frame_time"].to_numpy() if "frame_time" in part else part["time"].to_numpy()
    return pd.DataFrame(
        {
            "time": part["time"].to_numpy(),
            "frame_time": own,
            "datakey": part["datakey"].to_numpy().astype(str),
            "irradiance": np.asarray(mean, dtype=np.float64),
            "n_valid": np.asarray(count, dtype=np.int64),
            "status": part["status"].to_numpy().astype(str).astype(object),
        }
    )


def iter_parts(
    frames: xr.DataArray,
    *,
    normalize: bool = False,
    part_size: int | None = None,
    skip: Iterable[int] = (),
    correction: Any = None,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Compute the irradiance part by part, yielding ``(part_number, DataFrame)`` as parts finish.

    Parts are ``part_size`` consecutive frames (setting ``intake_helio.part-size``);
    numbers in ``skip`` are not computed (already saved); ``correction``: a degradation
    factor each frame is divided by (:func:`~intake_helio.compute.calibration.correction_for`).
    """
    from .assembly import _dataset, _layout, frame_times
    from .engine import frame_funcs, iter_map_parts

    funcs = frame_funcs(STATS)
    times = frames["time"].to_numpy()
    own = frame_times(frames)
    keys = as_text(frames["datakey"].to_numpy())
    for p, idx, records in iter_map_parts(
        frames,
        funcs,
        normalize=normalize,
        part_size=part_size,
        skip=skip,
        progress=Progress(None),
        correction=correction,
    ):
        part = _dataset(
            times[idx.start : idx.stop],
            keys[idx.start : idx.stop],
            records,
            _layout(records) or {"mean": (), "count": ()},
            STATS,
            {},
            own[idx.start : idx.stop],
        )
        yield p, _part_frame(part)


def parts_to_dataset(
    parts: Iterable[pd.DataFrame],
    frames_attrs: dict,
    units: str,
    sort: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Concatenate parts into the result Dataset (in time order, or as given); ``extra``:
    more attributes (the correction's)."""
    df = pd.concat(list(parts), ignore_index=True) if parts else pd.DataFrame(columns=PART_COLUMNS)
    if sort:
        df = df.sort_values("time", kind="stable", ignore_index=True)
    keep = ("dataset", "title", "endpoint", "WAVELNTH")
    attrs = {k: frames_attrs[k] for k in keep if k in frames_attrs}
    attrs["source"] = SOURCE
    attrs["time_axis"] = TIME_AXIS
    attrs.update(extra or {})
    return as_irradiance(part_stats(df), units, attrs)


def part_stats(df: pd.DataFrame) -> xr.Dataset:
    """A part table (:data:`PART_COLUMNS`) as ``map_frames(frames, STATS)`` gives a part:
    ``mean``, ``count``, ``status``, ``datakey`` and ``frame_time`` along ``time``."""
    own = df["frame_time"] if "frame_time" in df else df["time"]
    return xr.Dataset(
        {
            "mean": ("time", df["irradiance"].to_numpy(np.float64)),
            "count": ("time", df["n_valid"].to_numpy(np.int64)),
            "status": ("time", df["status"].to_numpy(str).astype(object)),
            "datakey": ("time", df["datakey"].to_numpy(str).astype(object)),
            "frame_time": ("time", pd.DatetimeIndex(own).as_unit("ns").to_numpy()),
        },
        coords={"time": ("time", pd.DatetimeIndex(df["time"]).as_unit("ns").to_numpy())},
    )


def as_irradiance(stats: xr.Dataset, units: str, attrs: Mapping[str, Any]) -> xr.Dataset:
    """The result of ``map_frames(frames, ["mean", "count"])`` laid out as the irradiance.

    Parameters
    ----------
    stats : xarray.Dataset
        Along ``time`` (or ``(channel, time)``): ``mean`` and ``count`` (absent when no
        frame has values: then NaN and 0), ``status``, ``datakey`` and ``frame_time``.
    units : str
        The irradiance's units (``"DN/s"`` or the frames' own).
    attrs : mapping
        The result's attributes.

    Returns
    -------
    xarray.Dataset
        ``irradiance`` (float64), ``n_valid`` (int64), ``status``, ``datakey`` and
        ``frame_time`` (as :func:`irradiance` gives them), coordinates as ``stats``'.
    """
    dims = stats["status"].dims
    shape = stats["status"].shape
    mean = stats["mean"].to_numpy() if "mean" in stats else np.full(shape, np.nan)
    count = stats["count"].to_numpy() if "count" in stats else np.zeros(shape, dtype=np.int64)
    own = stats["frame_time"] if "frame_time" in stats else stats["time"]

    def order(name) -> bool:  # ``time`` first, as :func:`irradiance` gives it
        return name != "time"

    return xr.Dataset(
        {
            "irradiance": (
                dims,
                np.asarray(mean, dtype=np.float64),
                {"long_name": "mean intensity of the frame", "units": units},
            ),
            "n_valid": (
                dims,
                np.asarray(count, dtype=np.int64),
                {"long_name": "number of valid (non-BLANK) pixels"},
            ),
            "status": (
                dims,
                as_text(stats["status"].to_numpy()),
                {"long_name": "'ok' or the reason the frame has no value"},
            ),
            "datakey": (
                dims,
                as_text(stats["datakey"].to_numpy()),
                {"long_name": "URL of the frame's file"},
            ),
            "frame_time": (
                dims,
                np.broadcast_to(own.to_numpy().astype("datetime64[ns]"), shape).copy(),
                dict(FRAME_TIME_ATTRS),
            ),
        },
        coords={n: (stats[n].dims, stats[n].to_numpy()) for n in sorted(stats.coords, key=order)},
        attrs=dict(attrs),
    )


def irradiance(
    frames: xr.DataArray | xr.Dataset,
    normalize: bool = False,
    progress: bool = True,
    part_size: int | None = None,
    on_part: Callable[[int, pd.DataFrame], Any] | None = None,
    skip: Iterable[int] = (),
    time: str = "start",
    *,
    correct_degradation: bool = False,
    correction_table: Any = None,
) -> xr.Dataset:
    """The irradiance time series of ``frames``: the NaN-aware mean of every frame.

    Parameters
    ----------
    frames : xarray.DataArray or xarray.Dataset
        Lazy ``(time, y, x)`` frames, e.g. from :meth:`Dataset.to_dataarray`, selected in
        any way; or channels from :func:`~intake_helio.open_channels` (then every variable
        has dimensions ``(channel, time)``).
    normalize : bool
        Divide each frame by its own ``EXPTIME`` (values in DN/s).
    progress : bool
        Show a progress bar (frames done / total, rate, ETA) when stderr is a terminal
        or in a notebook.
    part_size : int, optional
        Frames per unit of work and of saving (setting ``intake_helio.part-size``).
    on_part : callable, optional
        Called with ``(part_number, DataFrame)`` as each part completes.
    skip : iterable of int, or dict of str to iterable of int
        Part numbers not to compute (saved by an earlier, interrupted run; for channels one
        list for all or ``{channel: parts}``, as :class:`InterruptedRun` gives); the
        result then holds only the parts computed now (for channels, the other frames
        have the status ``"not computed (interrupted)"``).
    time : {"start", "T_OBS"}
        The time axis: ``"start"`` (default), each frame's index start (``DATE-OBS``, the
        start of its exposure), known before any read; ``"T_OBS"``, each frame's
        mid-exposure time from its header, for frames opened with ``header_keys=["T_OBS"]``
        (one header read per frame besides its pixels; a frame without a readable ``T_OBS``
        keeps its start). ``frame_time`` and the ``time_axis`` attribute follow.
    correct_degradation : bool
        Divide each frame by aiapy's degradation factor
        (``aiapy.calibrate.degradation``) of its channel (header ``WAVELNTH``) and time
        (``DATE-OBS``, the time aiapy's ``correct_degradation`` takes from a sunpy Map):
        the values equal ``correct_degradation(Map(file), correction_table=...)`` then
        the mean. The factors come from aiapy once, on the client, and travel with the
        read tasks (a few hundred numbers; no aiapy on the workers). Needs aiapy (the
        ``aia`` extra). A frame the table has no factor for (its time outside the
        table's epochs) has the reason ``"no degradation correction: ..."``; a channel
        the table does not hold is refused before anything is read.
    correction_table : str, os.PathLike, astropy.table.Table or None
        AIA's correction table: a ``aia_V*_response_table.txt`` file, a table as
        ``aiapy.calibrate.util.get_correction_table`` returns it, or None for aiapy's
        default source (JSOC, over the network; unreachable: an error that says to pass
        a file). The table (file name, ``VER_NUM``, aiapy's version) is recorded in the
        result's ``correction_table`` attribute, and ``units`` says
        ``"DN/s, corrected for degradation"``.

    Returns
    -------
    xarray.Dataset
        Along ``time``: ``irradiance`` (float64, its ``units`` attribute the frames'
        units, ``"DN/s"`` with ``normalize``), ``n_valid``, ``status`` (``"ok"`` or why the
        frame has no value), ``datakey`` and ``frame_time`` (each frame's own start; with
        channels, each channel's, while ``time`` is the first channel's; the attribute
        ``time_axis`` says so). A frame that cannot be read never stops the computation:
        it has ``irradiance=NaN`` and a reason.

    Raises
    ------
    InterruptedRun
        On Ctrl-C (a ``KeyboardInterrupt``): its ``partial`` holds the frames of the parts
        finished so far and ``done`` their numbers (``skip=exc.done`` computes the rest).
    """
    time = check_time(time, frames)
    table = table_for(correct_degradation, correction_table)
    calibration = {"correct_degradation": table is not None, "correction_table": table}
    if time == "T_OBS":
        return on_header_time(
            irradiance(frames, normalize, progress, part_size, on_part, skip, **calibration),
            frames,
        )
    if isinstance(frames, xr.Dataset):
        return _irradiance_channels(
            frames, normalize, progress, part_size, on_part, skip, calibration
        )
    correction = correction_for(frames, table)
    units = corrected_units("DN/s" if normalize else frames.attrs.get("units", "DN"), correction)
    extra = correction_attrs(correction)
    parts: list[tuple[int, pd.DataFrame]] = []

    def collect(p: int, part: xr.Dataset) -> None:
        df = _part_frame(part)
        parts.append((p, df))
        if on_part is not None:
            on_part(p, df)

    try:
        t0 = _time.perf_counter()
        run_map(
            frames,
            frame_funcs(STATS),
            normalize,
            progress,
            part_size,
            collect,
            skip,
            desc="irradiance",
            correction=correction,
            keep=False,  # the parts are collected here, as tables
        )
    except KeyboardInterrupt as stop:
        done = sorted(p for p, _ in parts)
        ordered = [df for _, df in sorted(parts, key=lambda item: item[0])]
        partial = parts_to_dataset(ordered, dict(frames.attrs), units, sort=False, extra=extra)
        raise InterruptedRun(
            f"interrupted after {partial.sizes['time']} of {frames.sizes.get('time', 0)} "
            f"frames ({len(done)} part(s) done): the finished frames are in exc.partial; "
            "irradiance(frames, skip=exc.done) computes the rest, or run_irradiance_job(..., "
            "resume=True) saves every part as it ends",
            partial,
            done,
        ) from stop
    # in the frames' own order (parts finish in any order on a cluster)
    ordered = [df for _, df in sorted(parts, key=lambda item: item[0])]
    ds = parts_to_dataset(ordered, dict(frames.attrs), units, sort=False, extra=extra)
    ds.attrs["elapsed_seconds"] = round(_time.perf_counter() - t0, 3)
    return ds


def _irradiance_channels(
    frames, normalize, progress, part_size, on_part, skip, calibration
) -> xr.Dataset:
    """:func:`irradiance` of a channels Dataset, channel after channel.

    ``skip`` is one list of part numbers for every channel or ``{channel: parts}`` (what
    :class:`InterruptedRun` gives for channels); on Ctrl-C the partial result holds every
    channel finished so far and the interrupted one's finished parts.
    """
    per_channel = isinstance(skip, Mapping)
    skip = {str(k): list(v) for k, v in skip.items()} if per_channel else list(skip)
    finished: dict[str, xr.Dataset] = {}
    done: dict[str, list[int]] = {}

    def one(arr: xr.DataArray) -> xr.Dataset:
        name = str(arr.name)
        done[name] = []

        def saved(p: int, df: pd.DataFrame) -> None:
            done[name].append(p)
            if on_part is not None:
                on_part(p, df)

        mine = skip.get(name, []) if per_channel else skip
        try:
            res = irradiance(arr, normalize, progress, part_size, saved, mine, **calibration)
        except InterruptedRun as stop:
            partial = _stack_partial({**finished, name: stop.partial}, frames)
            raise InterruptedRun(
                f"interrupted in channel {name!r} ({len(finished)} of "
                f"{len(channel_arrays(frames))} channels done): the finished frames of every "
                "channel are in exc.partial (frames not computed have the status "
                f"{NOT_COMPUTED!r}); irradiance(channels, skip=exc.done) computes the rest",
                partial,
                {k: sorted(v) for k, v in done.items()},
            ) from stop.__cause__
        finished[name] = res
        return res

    if not any(skip.values() if per_channel else skip):
        return by_channel(frames, one)
    for arr in channel_arrays(frames).values():  # some parts skipped: on the whole axis
        one(arr)
    first = next(iter(finished.values()))
    out = _stack_partial(finished, frames)
    out.attrs = {"channels": list(finished), "time_axis": first.attrs.get("time_axis")}
    out.attrs.update({k: first.attrs[k] for k in CHANNEL_ATTRS if k in first.attrs})
    return out


#: The status of a frame a partial (interrupted) result has no value for.
NOT_COMPUTED = "not computed (interrupted)"


def _stack_partial(results: dict[str, xr.Dataset], frames: xr.Dataset) -> xr.Dataset:
    """Per-channel (partial) results on the channels' time axis, ``(channel, time)``."""
    axis = frames["time"].to_numpy()
    out = []
    for res in results.values():
        res = res.drop_attrs(deep=False).reindex(time=axis)
        status = res["status"].to_numpy().astype(object)
        status[pd.isna(status)] = NOT_COMPUTED
        keys = res["datakey"].to_numpy().astype(object)
        keys[pd.isna(keys)] = ""
        res = res.assign(
            status=("time", status, res["status"].attrs),
            datakey=("time", keys, res["datakey"].attrs),
        )
        out.append(res.drop_vars("n_valid").assign(n_valid=res["n_valid"].fillna(0).astype(int)))
    stacked = xr.concat(out, dim="channel", data_vars="all", coords="minimal", join="override")
    return stacked.assign_coords(channel=("channel", list(results)))


def ratio(result: xr.Dataset, numerator: str, denominator: str, var: str = "irradiance"):
    """The ratio of two channels of a ``(channel, time)`` result, frame by frame.

    Parameters
    ----------
    result : xarray.Dataset
        :func:`irradiance` (or :func:`~intake_helio.map_frames`) of channels from
        :func:`~intake_helio.open_channels` (or the job's ``irradiance.nc``).
    numerator, denominator : str
        Channel names (dataset ids), e.g. ``"aia_0171"`` and ``"aia_0094"``.
    var : str
        The output to divide (default ``"irradiance"``).

    Returns
    -------
    xarray.DataArray
        Along ``time``: ``numerator / denominator``, NaN where either frame has no value
        (its ``status`` is not ``"ok"``); coordinates ``<channel>_frame_time`` (each
        channel's own frame times, seconds apart) and ``<channel>_status``; ``units``
        ``"1"``.

    Raises
    ------
    ArgumentError
        ``result`` has no ``channel`` dimension, or a name is not one of its channels.
    """
    from ..base.errors import ArgumentError

    if "channel" not in result.dims or var not in result:
        raise ArgumentError(
            f"ratio needs a result of several channels with {var!r} (dimensions (channel, "
            "time)), e.g. ih.irradiance(ih.open_channels(...)); got dimensions "
            f"{dict(result.sizes)}"
        )
    names = [str(c) for c in result["channel"].to_numpy()]
    for name in (numerator, denominator):
        if name not in names:
            raise ArgumentError(f"channel {name!r} is not in the result; its channels: {names}")
    parts = {}
    for name in (numerator, denominator):
        one = result.sel(channel=name, drop=True)
        ok = one["status"] == "ok" if "status" in one else True
        parts[name] = (one[var].where(ok), one)
    (top, a), (bottom, b) = parts[numerator], parts[denominator]
    out = (top / bottom).rename(f"{numerator}/{denominator}")
    for name, one in ((numerator, a), (denominator, b)):
        for coord in ("frame_time", "status"):
            if coord in one:
                out = out.assign_coords({f"{name}_{coord}": ("time", one[coord].to_numpy())})
    # one variable of both channels: the same units, so the ratio is dimensionless
    out.attrs = {"long_name": f"{var} of {numerator} / {var} of {denominator}", "units": "1"}
    return out

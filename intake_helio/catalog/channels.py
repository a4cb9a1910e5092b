"""Several channels (datasets) of a bucket on one shared time axis.

AIA's wavelengths are separate datasets (``aia_0094``, ``aia_0171``, ...) whose frames are a
few seconds apart. :func:`open_channels` opens each as lazy frames and aligns them on the
first channel's times: each other channel contributes its nearest frame within
``tolerance``; where it has none, its frame is an all-NaN placeholder whose reason is
``"no frame within tolerance"`` (nothing is read for it).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..base.errors import ArgumentError, HelioWarning
from ..base.options import TOLERANCE
from ..base.reasons import Reason
from ..frames.build import open_frames
from ..frames.options import Cutout, frame_options
from ..frames.spec import REFUSED, frame_specs
from ..io.storage import check_option_names, mask_url

__all__ = ["align_files", "open_channels"]


def align_files(reference: pd.DataFrame, other: pd.DataFrame, tolerance: Any) -> pd.DataFrame:
    """``other``'s files aligned on ``reference``'s start times (nearest within tolerance).

    Returns a file list with ``reference``'s ``start`` and, per row, the matched file's
    ``datakey`` (empty where none is within ``tolerance``), ``filesize`` and its own start
    as ``frame_time`` (NaT where none).
    """
    try:
        tol = pd.Timedelta(tolerance)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"tolerance={tolerance!r}; expected a duration such as '6s'") from exc
    if tol < pd.Timedelta(0):
        raise ArgumentError(f"tolerance={tolerance!r}; expected a duration >= 0")
    ref_times = pd.DatetimeIndex(reference["start"])
    times = pd.DatetimeIndex(other["start"])
    order = np.argsort(times.asi8, kind="stable")
    sorted_times = times[order]
    if len(sorted_times):
        pos = sorted_times.get_indexer(ref_times, method="nearest", tolerance=tol)
    else:
        pos = np.full(len(ref_times), -1)
    found = pos >= 0
    idx = order[np.where(found, pos, 0)] if len(order) else np.zeros(len(pos), dtype=int)
    keys = np.where(found, other["datakey"].astype(str).to_numpy()[idx] if len(order) else "", "")
    out = pd.DataFrame({"start": ref_times, "datakey": keys.astype(object)})
    frame_time = times[idx] if len(order) else pd.DatetimeIndex([pd.NaT] * len(pos))
    out["frame_time"] = pd.DatetimeIndex(np.where(found, frame_time, pd.NaT))
    if "filesize" in other:
        sizes = other["filesize"].to_numpy()[idx] if len(order) else np.zeros(len(pos))
        out["filesize"] = np.where(found, sizes, 0).astype(np.int64)
    if REFUSED in other:
        why = other[REFUSED].to_numpy(dtype=object)[idx] if len(order) else ""
        out[REFUSED] = np.where(found, why, "").astype(object)
    return out


def open_channels(
    bucket: Any,
    ids: Sequence[str],
    start: Any = None,
    stop: Any = None,
    tolerance: Any = TOLERANCE,
    **open_kwargs: Any,
) -> xr.Dataset:
    """Lazy frames of several datasets of ``bucket`` on the first one's time axis.

    Parameters
    ----------
    bucket : Bucket
        From :func:`~intake_helio.open_bucket`.
    ids : sequence of str
        Dataset ids, e.g. ``["aia_0094", "aia_0171"]``; the first gives the time axis.
    start, stop : time-like
        Half-open range.
    tolerance : str or Timedelta
        How far another channel's frame may be from the first channel's time.
    **open_kwargs
        As for :meth:`~intake_helio.Dataset.to_dataarray` (``cutout``, ``units``,
        ``on_error``, ``quality``, ...); ``on_error`` defaults to ``"nan"`` here.
        ``quality="good"`` applies to every channel: a flagged frame of any channel gets
        the reason ``"quality flag 0x%08x"`` in that channel only.

    Returns
    -------
    xarray.Dataset
        One lazy ``(time, y, x)`` variable per dataset id, sharing ``time``; each has its
        own ``datakey`` and ``frame_time`` coordinates (``<id>_datakey``, ``<id>_time``).
        ``ih.irradiance`` and ``ih.map_frames`` on it give ``(channel, time)`` results.
    """
    if isinstance(ids, str) or not ids:
        raise ArgumentError(f"ids={ids!r}; expected a list of dataset ids such as ['aia_0094']")
    if len(set(ids)) != len(ids):
        raise ArgumentError(f"ids={list(ids)!r} repeats a dataset id")
    open_kwargs.setdefault("on_error", "nan")
    storage_options = open_kwargs.pop("storage_options", None)
    options = frame_options(**open_kwargs)  # every option checked before any index is read
    check_option_names(storage_options)
    datasets = [bucket[i] for i in ids]
    keep = options.on_error == "nan"  # refused datakeys: frames with their reason
    files = [d.files(start, stop, keep_refused=keep) for d in datasets]
    reference = files[0]
    if len(reference) == 0:
        raise ArgumentError(
            f"{ids[0]!r} has no files in [{start}, {stop}); the first channel gives the time "
            "axis: widen the range or put a channel with data first"
        )
    variables: dict[str, xr.DataArray] = {}
    for k, (ds, df) in enumerate(zip(datasets, files, strict=True)):
        aligned = align_files(reference, df, tolerance)
        so = ds.storage_options if storage_options is None else storage_options
        attrs = {"dataset": ds.id, "title": ds.title, "endpoint": mask_url(ds.endpoint)}
        opts, like = options, None
        if k and not (aligned["datakey"] != "").any():
            # no frame of this channel near any time: all its frames are NaN with the reason,
            # shaped as the first channel's (its pixel window); nothing is read for them
            like = frame_specs(variables[ids[0]].data)[0]
            opts = options.with_(cutout=Cutout(y=like.rows, x=like.cols), header_keys=())
            warnings.warn(
                f"{ds.id!r} has no frame within tolerance={tolerance!r} of any {ids[0]!r} "
                f"frame in [{start}, {stop}) ({_nearest(reference, df)}): all its frames are "
                f"'{Reason.NO_FRAME_WITHIN_TOLERANCE.value}'; raise the tolerance or leave it out",
                HelioWarning,
                stacklevel=2,
            )
        if k == 0:
            aligned["frame_time"] = pd.DatetimeIndex(reference["start"])
        frames = open_frames(aligned, attrs=attrs, storage_options=so, options=opts, _like=like)
        if k == 0 and options.cutout is not None and options.cutout.solar:
            # a box in arcsec is mapped once, through the first channel's reference frame:
            # every channel reads that pixel window (channels a pixel apart in pointing
            # would otherwise differ in shape); each keeps its own Tx/Ty and attrs
            first = frame_specs(frames.data)[0]
            options = options.with_(cutout=Cutout(y=first.rows, x=first.cols))
        frames = frames.assign_coords(frame_time=("time", aligned["frame_time"].to_numpy()))
        variables[ds.id] = frames
    shapes = {i: v.shape[1:] for i, v in variables.items()}
    if len(set(shapes.values())) > 1:
        raise ArgumentError(
            f"the channels' frames differ in shape {shapes}; give a cutout= that fits all, or "
            "open them separately"
        )
    return _as_dataset(variables)


def _nearest(reference: pd.DataFrame, other: pd.DataFrame) -> str:
    if len(other) == 0:
        return "it has no files there"
    a = pd.DatetimeIndex(reference["start"]).asi8
    b = np.sort(pd.DatetimeIndex(other["start"]).asi8)
    pos = np.clip(np.searchsorted(b, a), 1, len(b) - 1) if len(b) > 1 else np.zeros_like(a)
    gaps = np.abs(a - b[pos])
    if len(b) > 1:
        gaps = np.minimum(gaps, np.abs(a - b[pos - 1]))
    return f"the nearest is {pd.Timedelta(int(gaps.min()), 'ns')} away"


def _as_dataset(variables: Mapping[str, xr.DataArray]) -> xr.Dataset:
    out = {}
    for name, frames in variables.items():
        renamed = frames.rename(
            {c: f"{name}_{c}" for c in frames.coords if c not in ("time", "y", "x")}
        )
        out[name] = renamed
    return xr.Dataset(out, attrs={"channels": list(variables)})

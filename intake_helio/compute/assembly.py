"""A computation's parts as results: each part's records as columns, the parts joined.

The engine (:mod:`~intake_helio.compute.engine`) yields each part's ``(values, status)``
records; :func:`_dataset` makes them the part's Dataset (one variable per output, ``status``,
``datakey``, ``frame_time``) as it completes, and :func:`_joined` concatenates the parts
once along ``time``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..base.reasons import Reason
from ..base.text import as_text

__all__ = ["FRAME_TIME_ATTRS", "TIME_AXIS", "frame_times"]


def _layout(records: Iterable[tuple[dict[str, Any], str]]) -> dict[str, tuple[int, ...]]:
    for values, status in records:
        if status == Reason.OK and values:
            return {k: np.shape(v) for k, v in values.items()}
    return {}


def _dataset(
    times: np.ndarray,
    keys: np.ndarray,
    records: Sequence[tuple[dict[str, Any], str]],
    layout: Mapping[str, tuple[int, ...]],
    order: Sequence[str],
    attrs: Mapping[str, Any],
    frame_times: np.ndarray | None = None,
    var_attrs: Mapping[str, Mapping[str, Any]] | None = None,
) -> xr.Dataset:
    n = len(records)
    status = np.array([s for _, s in records], dtype=object)
    data: dict[str, Any] = {}
    names = [k for k in order if k in layout] + [k for k in layout if k not in order]
    arrays = {k: np.full((n, *layout[k]), np.nan, dtype=np.float64) for k in names}
    for i, (values, _) in enumerate(records):
        if not values:
            continue
        if set(values) != set(layout) or any(np.shape(values[k]) != layout[k] for k in layout):
            shapes = {k: np.shape(v) for k, v in values.items()}
            status[i] = (
                f"{Reason.FUNCTION_ERROR}: outputs {shapes} differ from the other frames' "
                f"{dict(layout)}"
            )
            continue
        for k in names:
            arrays[k][i] = values[k]
    for k in names:
        dims = ("time", *(f"{k}_dim_{d}" for d in range(len(layout[k]))))
        values = arrays[k]
        if k == "count":
            values = np.where(np.isnan(values), 0, values).astype(np.int64)
        data[k] = (dims, values, dict((var_attrs or {}).get(k, {})))
    data["status"] = ("time", status)
    ds = xr.Dataset(data, coords={"time": ("time", times)}, attrs=dict(attrs))
    ds["datakey"] = ("time", np.asarray(keys, dtype=object))
    ds["frame_time"] = ("time", times if frame_times is None else frame_times, FRAME_TIME_ATTRS)
    return ds


def _text(values: np.ndarray) -> np.ndarray:
    """``values`` as an object array of ``str`` (the same objects when they are already)."""
    if values.dtype == object and all(isinstance(v, str) for v in values[:64]):
        return values
    return as_text(values)


def _joined(parts: Sequence[xr.Dataset]) -> xr.Dataset:
    """Parts made by :func:`_dataset` with one layout, joined along ``time`` (their columns
    concatenated once: ``xr.concat`` of thousands of parts costs seconds)."""
    first = parts[0]
    data = {
        k: (v.dims, np.concatenate([p[k].values for p in parts]), dict(v.attrs))
        for k, v in first.data_vars.items()
    }
    coords = {"time": ("time", np.concatenate([p["time"].values for p in parts]))}
    return xr.Dataset(data, coords=coords, attrs=dict(first.attrs))


#: What a result's ``frame_time`` is (each frame's own start: with channels, a channel's
#: frames are seconds from the first channel's times on the ``time`` axis).
FRAME_TIME_ATTRS = {
    "long_name": "start of the frame's exposure (its index start, DATE-OBS)",
}
#: What a result's ``time`` axis is (an attribute of every result).
TIME_AXIS = (
    "start of each frame's exposure (the index's start, DATE-OBS); with several channels "
    "the first channel's, each channel's own in frame_time"
)


def frame_times(frames: xr.DataArray) -> np.ndarray:
    """Each frame's own start: the ``frame_time`` coordinate (channels), else ``time``."""
    name = "frame_time" if "frame_time" in frames.coords else "time"
    return pd.DatetimeIndex(frames[name].to_numpy()).as_unit("ns").to_numpy()


def _attrs(frames: xr.DataArray, units: str) -> dict[str, Any]:
    keep = ("dataset", "title", "endpoint", "WAVELNTH")
    out = {k: frames.attrs[k] for k in keep if k in frames.attrs}
    out["units"] = units
    out["time_axis"] = TIME_AXIS
    return out

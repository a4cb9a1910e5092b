"""Which time a result's axis is: the start of each exposure, or ``T_OBS`` (mid-exposure).

Frames are placed on the index's ``start`` (AIA's ``DATE-OBS``, the start of the exposure):
that is known before any file is read, so a lazy array can have it. ``T_OBS`` (AIA's
mid-exposure time, ``DATE-OBS + EXPTIME / 2``) is a header card: a result can be put on it
when the frames carry it as a coordinate (``header_keys=["T_OBS"]``, one header read per
frame besides the pixels). :func:`on_header_time` does that after the reduction; a frame
without a readable ``T_OBS`` keeps its start, and the result's ``time_axis`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..base.errors import ArgumentError
from ..base.text import as_text
from .engine import channel_arrays

__all__ = ["TIME_CHOICES", "check_time", "on_header_time"]

#: The time axes a result can have.
TIME_CHOICES = ("start", "T_OBS")

T_OBS_AXIS = (
    "mid-exposure time of each frame (its header's T_OBS; the index start where a frame has "
    "no readable T_OBS); with several channels the first channel's, each channel's own in "
    "frame_time"
)
T_OBS_ATTRS = {
    "long_name": "mid-exposure time of the frame (its header's T_OBS; the index start, the "
    "start of the exposure, where it has none)",
}


def check_time(time: Any, frames: xr.DataArray | xr.Dataset) -> str:
    """``time`` as one of :data:`TIME_CHOICES`, or an ``ArgumentError`` saying what to do.

    ``"T_OBS"`` needs the frames' ``T_OBS`` coordinate (for channels, every channel's
    ``<channel>_T_OBS``).
    """
    if time is None or time == "start":
        return "start"
    if not isinstance(time, str) or time.upper() != "T_OBS":
        raise ArgumentError(
            f"time={time!r} is not a time axis; expected one of {list(TIME_CHOICES)}: 'start' "
            "(the index start, DATE-OBS: start of the exposure) or 'T_OBS' (mid-exposure)"
        )
    names = (
        [f"{n}_T_OBS" for n, v in frames.data_vars.items() if v.dims == ("time", "y", "x")]
        if isinstance(frames, xr.Dataset)
        else ["T_OBS"]
    )
    missing = [n for n in names if n not in frames.coords]
    if missing:
        raise ArgumentError(
            f"time='T_OBS' needs each frame's T_OBS card, and the frames have no {missing[0]} "
            "coordinate: open them with header_keys=['T_OBS'] (to_dataarray or open_channels; "
            "one header read per frame besides its pixels)"
        )
    return "T_OBS"


def header_times(values: Any) -> np.ndarray:
    """ISO times from header cards as naive-UTC ``datetime64[ns]`` (NaT where unreadable)."""
    raw = pd.Series(np.asarray(values, dtype=object).ravel())
    text = raw.where(raw.map(lambda v: isinstance(v, str)), None)
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    return pd.DatetimeIndex(parsed).tz_localize(None).as_unit("ns").to_numpy()


def _by_key(arr: xr.DataArray) -> dict[str, np.datetime64]:
    """``datakey -> T_OBS`` of one channel's frames (computed: one header read per frame)."""
    keys = as_text(arr["datakey"].to_numpy())
    times = header_times(arr["T_OBS"].compute().to_numpy())
    return {k: t for k, t in zip(keys, times, strict=True) if k and not np.isnat(t)}


def _own_times(result: xr.Dataset, tobs: dict[str, np.datetime64]) -> np.ndarray:
    keys = as_text(result["datakey"].to_numpy())
    start = result["frame_time"].to_numpy()
    return np.array([tobs.get(k, s) for k, s in zip(keys, start, strict=True)], "datetime64[ns]")


def on_header_time(
    result: xr.Dataset, frames: xr.DataArray | xr.Dataset | Mapping[str, xr.DataArray]
) -> xr.Dataset:
    """``result`` (of :func:`~intake_helio.irradiance`) on the frames' ``T_OBS`` times.

    Each frame's ``frame_time`` becomes its ``T_OBS`` (matched by ``datakey``; its start
    where it has none) and the ``time`` axis the (first channel's) ``frame_time``. For
    channels, ``frames`` is the channels Dataset or ``{channel: frames}``.
    """
    if "channel" in result.dims:
        # (a Dataset is a Mapping too: its variables have prefixed coordinates)
        arrays = channel_arrays(frames) if isinstance(frames, xr.Dataset) else dict(frames)
        own = np.stack(
            [
                _own_times(result.sel(channel=name), _by_key(arrays[name]))
                for name in result["channel"].to_numpy().astype(str)
            ]
        )
        out = result.assign(frame_time=(("channel", "time"), own, dict(T_OBS_ATTRS)))
        axis = own[0]
    else:
        own = _own_times(result, _by_key(frames))
        out = result.assign(frame_time=("time", own, dict(T_OBS_ATTRS)))
        axis = own
    out = out.assign_coords(time=("time", axis, dict(result["time"].attrs)))
    out.attrs["time_axis"] = T_OBS_AXIS
    return out

"""Results as tables: the CSV's columns, and the names of a result's per-frame outputs.

A result of one dataset has dimension ``time``; of several channels (``ih.open_channels``)
``(channel, time)``, whose tables are in long form (a ``channel`` column, one row per channel
and frame, in time order).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..base.text import as_text

__all__ = [
    "CHANNEL",
    "NOT_OUTPUTS",
    "cf_times",
    "channel_names",
    "outputs_table",
    "scalar_outputs",
    "to_dataframe",
    "write_csv",
]

#: Variables of a result that are not per-frame outputs.
NOT_OUTPUTS = ("status", "datakey", "frame_time")
#: The dimension of a result of several channels.
CHANNEL = "channel"
_FLOAT = "%.17g"  # exact round trip: a table read back holds the values computed


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table with times as ``%Y-%m-%dT%H:%M:%S.%f`` and exact floats (``NaN``)."""
    out = df.copy()
    for name in ("time", "frame_time"):
        if name == "time" or name in out:  # NaT (no frame within tolerance): an empty field
            out[name] = pd.DatetimeIndex(out[name]).strftime("%Y-%m-%dT%H:%M:%S.%f").fillna("")
    out.to_csv(path, index=False, float_format=_FLOAT, na_rep="NaN", lineterminator="\n")


def cf_times(times) -> np.ndarray:
    """``times`` floored to whole microseconds (as the CSV and the CF encoding hold them)."""
    return pd.DatetimeIndex(np.asarray(times)).floor("us").as_unit("ns").to_numpy()


def channel_names(result: xr.Dataset) -> list[str]:
    """The channel names of a ``(channel, time)`` result; ``[]`` for one dataset's result."""
    if CHANNEL not in result.dims:
        return []
    return [str(c) for c in result[CHANNEL].to_numpy()]


def _long(result: xr.Dataset, table) -> pd.DataFrame:
    """``table(one channel's result)`` for every channel, with a ``channel`` column after
    ``time``, rows in time order (a time's channels in channel order)."""
    names = channel_names(result)
    frames = []
    for k, name in enumerate(names):
        df = table(result.isel({CHANNEL: k}, drop=True))
        df.insert(1, CHANNEL, name)
        df.index = np.arange(len(df)) * len(names) + k
        frames.append(df)
    return pd.concat(frames).sort_index(kind="stable").reset_index(drop=True)


def _frame_time(result: xr.Dataset) -> pd.DatetimeIndex:
    """Each frame's own time (``frame_time``; a result without it: ``time``)."""
    name = "frame_time" if "frame_time" in result else "time"
    return pd.DatetimeIndex(result[name].to_numpy())


def _units(result: xr.Dataset, names: list[str]) -> dict[str, str]:
    """The units columns of ``names``: ``{"units": u}`` when the outputs with units share
    them, else ``{"<name>_units": u}`` per output with units."""
    have = {n: str(result[n].attrs["units"]) for n in names if result[n].attrs.get("units")}
    if len(set(have.values())) == 1:
        return {"units": next(iter(have.values()))}
    return {f"{n}_units": u for n, u in have.items()}


def to_dataframe(result: xr.Dataset) -> pd.DataFrame:
    """The result as a table: time, frame_time, datakey, irradiance, units (and
    correction_table after a degradation correction), n_valid, status.

    ``frame_time`` is each frame's own time (with channels, each channel's; ``time`` is the
    first channel's) and ``units`` the irradiance's (``DN/s`` or ``DN``). A result of several
    channels gives the long form: time, channel, frame_time, ..., one row per channel and
    frame.
    """
    if channel_names(result):
        return _long(result, to_dataframe)
    units = result["irradiance"].attrs.get("units") or result.attrs.get("units") or "DN"
    return pd.DataFrame(
        {
            "time": pd.DatetimeIndex(result["time"].to_numpy()),
            "frame_time": _frame_time(result),
            "datakey": as_text(result["datakey"].to_numpy()),
            "irradiance": result["irradiance"].to_numpy(),
            "units": str(units),
            **_correction(result),
            "n_valid": result["n_valid"].to_numpy(),
            "status": as_text(result["status"].to_numpy()),
        }
    )


def _correction(result: xr.Dataset) -> dict[str, str]:
    """A ``correction_table`` column (the table a degradation correction used), if any."""
    table = result.attrs.get("correction_table")
    return {"correction_table": str(table)} if table else {}


def scalar_outputs(result: xr.Dataset) -> tuple[list[str], list[str]]:
    """The names of a result's per-frame outputs: ``(scalars, arrays)``, in result order."""
    scalars, arrays = [], []
    for name, var in result.data_vars.items():
        if name in NOT_OUTPUTS or "time" not in var.dims:
            continue
        frame_dims = [d for d in var.dims if d not in ("time", CHANNEL)]
        (arrays if frame_dims else scalars).append(str(name))
    return scalars, arrays


def outputs_table(result: xr.Dataset) -> pd.DataFrame:
    """The scalar outputs as a table: time, frame_time, datakey, one column per output,
    their units (a ``units`` column, or ``<name>_units`` when outputs differ), status.

    A result of several channels gives the long form, with a ``channel`` column after
    ``time`` (one row per channel and frame).
    """
    if channel_names(result):
        return _long(result, outputs_table)
    scalars, _ = scalar_outputs(result)
    cols: dict[str, Any] = {
        "time": pd.DatetimeIndex(result["time"].to_numpy()),
        "frame_time": _frame_time(result),
        "datakey": as_text(result["datakey"].to_numpy()),
    }
    for name in scalars:
        cols[name] = result[name].to_numpy()
    cols.update(_units(result, scalars))
    cols.update(_correction(result))
    cols["status"] = as_text(result["status"].to_numpy())
    return pd.DataFrame(cols)

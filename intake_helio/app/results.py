"""Saved results: CSV, netCDF and PNG of a run, and the irradiance job's resumable parts.

No pickle anywhere: parts and results are CSV, netCDF and Zarr. The irradiance job's
parts are in :mod:`intake_helio.app.parts` (:class:`PartStore`, imported here too), the
reduce job's in a Zarr store (:mod:`intake_helio.app.stores`). Every file is written
through a fresh temporary file and never through a symbolic link
(:mod:`intake_helio.app.outdir`).

Results of several channels (``ih.open_channels``) have dimensions ``(channel, time)``: the
netCDF and Zarr files keep them, the CSV is in long form (a ``channel`` column, one row per
channel and frame, in time order) and the PNG draws one line per channel.

Times are saved the same way everywhere: floored to whole microseconds (the CSV's
``%Y-%m-%dT%H:%M:%S.%f``) and, in netCDF and Zarr, CF-encoded as int64 microseconds since
1970 (:data:`TIME_ENCODING`), so every file decodes back to equal times.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..base.errors import ArgumentError
from .outdir import atomic_write as _atomic_write
from .parts import PartStore
from .parts import write_csv as _write_csv

__all__ = [
    "TIME_ENCODING",
    "PartStore",
    "cf_times",
    "irradiance_figure",
    "outputs_figure",
    "outputs_table",
    "plot_irradiance",
    "plot_outputs",
    "save_outputs",
    "save_results",
    "scalar_outputs",
    "to_dataframe",
    "write_netcdf",
]

#: CF encoding of ``time`` in netCDF and Zarr: int64 microseconds, exact for every time the
#: CSV holds (float64 seconds since 1970 are off by up to ~100 ns, so AIA's millisecond
#: times would not decode back equal).
TIME_ENCODING: dict[str, Any] = {
    "units": "microseconds since 1970-01-01T00:00:00",
    "calendar": "standard",
    "dtype": "int64",
}

#: Variables of a result that are not per-frame outputs.
_NOT_OUTPUTS = ("status", "datakey")
#: The dimension of a result of several channels.
CHANNEL = "channel"


def cf_times(times) -> np.ndarray:
    """``times`` floored to whole microseconds (as the CSV and the CF encoding hold them)."""
    return pd.DatetimeIndex(np.asarray(times)).floor("us").as_unit("ns").to_numpy()


def _channels(result: xr.Dataset) -> list[str]:
    """The channel names of a ``(channel, time)`` result; ``[]`` for one dataset's result."""
    if CHANNEL not in result.dims:
        return []
    return [str(c) for c in result[CHANNEL].to_numpy()]


def _long(result: xr.Dataset, table) -> pd.DataFrame:
    """``table(one channel's result)`` for every channel, with a ``channel`` column after
    ``time``, rows in time order (a time's channels in channel order)."""
    names = _channels(result)
    frames = []
    for k, name in enumerate(names):
        df = table(result.isel({CHANNEL: k}, drop=True))
        df.insert(1, CHANNEL, name)
        df.index = np.arange(len(df)) * len(names) + k
        frames.append(df)
    return pd.concat(frames).sort_index(kind="stable").reset_index(drop=True)


def to_dataframe(result: xr.Dataset) -> pd.DataFrame:
    """The result as a table: time, datakey, irradiance, n_valid, status.

    A result of several channels gives the long form: time, channel, datakey, irradiance,
    n_valid, status, one row per channel and frame.
    """
    if _channels(result):
        return _long(result, to_dataframe)
    return pd.DataFrame(
        {
            "time": pd.DatetimeIndex(result["time"].to_numpy()),
            "datakey": result["datakey"].to_numpy().astype(str),
            "irradiance": result["irradiance"].to_numpy(),
            "n_valid": result["n_valid"].to_numpy(),
            "status": result["status"].to_numpy().astype(str),
        }
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _save_figure(fig, path: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def irradiance_figure(result: xr.Dataset):
    """The matplotlib Figure :func:`plot_irradiance` saves (close it when done).

    One line per channel for a ``(channel, time)`` result, labelled with the channel's
    dataset id; :func:`plot_irradiance` for what is drawn.
    """
    if _channels(result):
        return _channels_figure(result, "irradiance", "irradiance")
    plt = _pyplot()
    df = to_dataframe(result)
    units = result["irradiance"].attrs.get("units", "DN")
    ok = df["status"] == "ok"
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    # failed frames are NaN here, so the line breaks at them instead of bridging them
    ax.plot(
        df["time"],
        df["irradiance"].where(ok),
        ".-",
        lw=1,
        ms=4,
        color="C0",
        label=f"frame mean ({int(ok.sum())} frames)",
    )
    if (~ok).any():
        y0 = float(np.nanmin(df.loc[ok, "irradiance"])) if ok.any() else 0.0
        for t in df.loc[~ok, "time"]:
            ax.axvline(t, color="C3", alpha=0.35, lw=1)
        ax.plot(
            df.loc[~ok, "time"],
            np.full((~ok).sum(), y0),
            "x",
            color="C3",
            ms=9,
            mew=2,
            label=f"failed frame ({int((~ok).sum())}): see status in irradiance.csv",
        )
    title = result.attrs.get("title") or result.attrs.get("dataset") or "irradiance"
    ax.set_title(f"{title}: irradiance (mean of each frame)")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(f"mean intensity [{units}]")
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    return fig


def plot_irradiance(result: xr.Dataset, path: str | os.PathLike) -> None:
    """PNG of the time series: time on x, labelled axes and units, failed frames marked.

    A result of several channels (dimensions ``(channel, time)``) has one line per channel,
    its legend naming the dataset ids; each channel's failed frames are marked with an ``x``
    in its colour at the bottom of its line.
    """
    _save_figure(irradiance_figure(result), path)


def _channels_figure(result: xr.Dataset, names, csv_stem: str):
    """One panel per output in ``names`` (a name or a list), one line per channel in each."""
    plt = _pyplot()
    names = [names] if isinstance(names, str) else list(names)
    channels = _channels(result)
    times = pd.DatetimeIndex(result["time"].to_numpy())
    status = result["status"].transpose(CHANNEL, "time").to_numpy().astype(str)
    ok = status == "ok"
    fig, axes = plt.subplots(
        len(names),
        1,
        sharex=True,
        squeeze=False,
        figsize=(10, 4.5) if len(names) == 1 else (10, 1.6 + 2.6 * len(names)),
        dpi=110,
    )
    for ax, name in zip(axes[:, 0], names, strict=True):
        values = result[name].transpose(CHANNEL, "time").to_numpy().astype(np.float64)
        for k, channel in enumerate(channels):
            good = ok[k]
            # failed frames are NaN here, so a line breaks at them instead of bridging them
            line = np.where(good, values[k], np.nan)
            ax.plot(
                times,
                line,
                ".-",
                lw=1.2,
                ms=4,
                color=f"C{k}",
                label=f"{channel} ({int(good.sum())} of {good.size} frames ok)",
            )
            if (~good).any():
                y0 = float(np.nanmin(line)) if good.any() else 0.0
                for t in times[~good]:
                    ax.axvline(t, color=f"C{k}", alpha=0.3, lw=1, ls="--")
                ax.plot(
                    times[~good],
                    np.full(int((~good).sum()), y0),
                    "x",
                    color=f"C{k}",
                    ms=9,
                    mew=2,
                    label=f"{channel}: failed frame ({int((~good).sum())})",
                )
        units = result[name].attrs.get("units")
        label = "mean intensity" if name == "irradiance" else name
        ax.set_ylabel(f"{label} [{units}]" if units else label)
        ax.grid(alpha=0.3)
    failed = int((~ok).sum())
    note = f"; failed frames marked x (status in {csv_stem}.csv)" if failed else ""
    what = "irradiance (mean of each frame)" if names == ["irradiance"] else ", ".join(names)
    axes[0, 0].set_title(f"{', '.join(channels)}: {what}{note}", fontsize=11)
    axes[0, 0].legend(loc="best", fontsize=9)
    axes[-1, 0].set_xlabel("time (UTC)")
    _date_axis(axes[-1, 0])
    fig.tight_layout()
    return fig


def save_results(result: xr.Dataset, out_dir: str | os.PathLike, plot: bool = True) -> dict:
    """Write ``irradiance.csv``, ``irradiance.nc`` (CF time) and ``irradiance.png``.

    Returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "irradiance.csv", "nc": out / "irradiance.nc"}
    _atomic_write(paths["csv"], lambda p: _write_csv(to_dataframe(result), p))
    write_netcdf(result, paths["nc"])
    if plot:
        paths["png"] = out / "irradiance.png"
        _atomic_write(paths["png"], lambda p: plot_irradiance(result, p))
    return {k: str(v) for k, v in paths.items()}


def write_netcdf(result: xr.Dataset, path: str | os.PathLike) -> None:
    """Write ``result`` atomically as NETCDF4: CF time in int64 microseconds, text as strings."""
    ds = result.copy()
    ds = ds.assign_coords(time=cf_times(ds["time"].to_numpy()))  # as the CSV holds them
    for var in _NOT_OUTPUTS:
        if var in ds:
            ds[var] = ds[var].astype(str)
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in ("elapsed_seconds", "complete")}
    for var in ds.variables.values():
        var.encoding = {}  # e.g. Zarr chunks and compressors of a result read from a store
    enc = {"time": dict(TIME_ENCODING)}
    _atomic_write(Path(path), lambda p: ds.to_netcdf(p, encoding=enc, format="NETCDF4"))


# --------------------------------------------------------------------------- any outputs
def scalar_outputs(result: xr.Dataset) -> tuple[list[str], list[str]]:
    """The names of a result's per-frame outputs: ``(scalars, arrays)``, in result order."""
    scalars, arrays = [], []
    for name, var in result.data_vars.items():
        if name in _NOT_OUTPUTS or "time" not in var.dims:
            continue
        frame_dims = [d for d in var.dims if d not in ("time", CHANNEL)]
        (arrays if frame_dims else scalars).append(str(name))
    return scalars, arrays


def outputs_table(result: xr.Dataset) -> pd.DataFrame:
    """The scalar outputs as a table: time, datakey, one column per output, status.

    A result of several channels gives the long form, with a ``channel`` column after
    ``time`` (one row per channel and frame).
    """
    if _channels(result):
        return _long(result, outputs_table)
    scalars, _ = scalar_outputs(result)
    cols: dict[str, Any] = {
        "time": pd.DatetimeIndex(result["time"].to_numpy()),
        "datakey": result["datakey"].to_numpy().astype(str),
    }
    for name in scalars:
        cols[name] = result[name].to_numpy()
    cols["status"] = result["status"].to_numpy().astype(str)
    return pd.DataFrame(cols)


def outputs_figure(result: xr.Dataset):
    """The matplotlib Figure :func:`plot_outputs` saves (close it when done)."""
    scalars, _ = scalar_outputs(result)
    if not scalars:
        raise ArgumentError("the result has no scalar outputs to plot")
    if _channels(result):
        return _channels_figure(result, scalars, "reduce")
    plt = _pyplot()
    df = outputs_table(result)
    ok = df["status"] == "ok"
    fig, axes = plt.subplots(
        len(scalars),
        1,
        sharex=True,
        squeeze=False,
        figsize=(10, 1.2 + 2.4 * len(scalars)),
        dpi=110,
    )
    for i, (ax, name) in enumerate(zip(axes[:, 0], scalars, strict=True)):
        values = df[name].astype(np.float64).where(ok)
        ax.plot(df["time"], values, ".-", lw=1, ms=3, color=f"C{i}", label=name)
        for t in df.loc[~ok, "time"]:
            ax.axvline(t, color="C3", alpha=0.35, lw=1)
        units = result[name].attrs.get("units")
        ax.set_ylabel(f"{name} [{units}]" if units else name)
        ax.grid(alpha=0.3)
    title = result.attrs.get("title") or result.attrs.get("dataset") or "frames"
    failed = int((~ok).sum())
    note = f"; {failed} failed frame(s) marked in red (see status)" if failed else ""
    axes[0, 0].set_title(f"{title}: {', '.join(scalars)} of {int(ok.sum())} frames{note}")
    axes[-1, 0].set_xlabel("time (UTC)")
    _date_axis(axes[-1, 0])
    fig.tight_layout()
    return fig


def plot_outputs(result: xr.Dataset, path: str | os.PathLike) -> None:
    """PNG of each scalar output against time (one panel and line each), failed frames marked.

    A result of several channels has one line per channel in each panel (legend: the dataset
    ids), each channel's failed frames marked in its colour.
    """
    _save_figure(outputs_figure(result), path)


def save_outputs(
    result: xr.Dataset, out_dir: str | os.PathLike, formats, stem: str = "reduce"
) -> tuple[dict[str, str], list[str]]:
    """Write ``<stem>.csv`` (the scalar outputs), ``<stem>.nc`` and ``<stem>.png``.

    Parameters
    ----------
    result : xarray.Dataset
        Outputs along ``time`` (arrays add dimensions), ``status`` and ``datakey``.
    out_dir : path
        Where to write.
    formats : collection of str
        Any of ``"csv"``, ``"nc"`` and ``"png"`` (others are ignored here). The PNG is
        made only when every output is a scalar; the CSV leaves array outputs out.

    Returns
    -------
    (dict, list of str)
        The paths written by format, and notes on what was left out.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scalars, arrays = scalar_outputs(result)
    paths: dict[str, Path] = {}
    notes: list[str] = []
    if "csv" in formats:
        paths["csv"] = out / f"{stem}.csv"
        _atomic_write(paths["csv"], lambda p: _write_csv(outputs_table(result), p))
        if arrays:
            notes.append(f"csv: array outputs {', '.join(arrays)} are in the nc/zarr files only")
    if "nc" in formats:
        paths["nc"] = out / f"{stem}.nc"
        write_netcdf(result, paths["nc"])
    if "png" in formats:
        if arrays or not scalars:
            why = f"outputs {', '.join(arrays)} are arrays" if arrays else "no frame has values"
            notes.append(f"png: not made ({why}; a plot needs scalar outputs only)")
        else:
            paths["png"] = out / f"{stem}.png"
            _atomic_write(paths["png"], lambda p: plot_outputs(result, p))
    return {k: str(v) for k, v in paths.items()}, notes

"""Saved results: CSV, netCDF and PNG of a run.

No pickle anywhere: results are CSV, netCDF and Zarr; both jobs save their parts in one
Zarr store (:mod:`intake_helio.app.stores`). Every file is written through a fresh
temporary file and never through a symbolic link (:mod:`intake_helio.app.outdir`).

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

import xarray as xr

from ..base.text import as_text
from .outdir import atomic_write as _atomic_write
from .plots import irradiance_figure, outputs_figure, plot_irradiance, plot_outputs
from .tables import cf_times, outputs_table, scalar_outputs, to_dataframe
from .tables import write_csv as _write_csv

__all__ = [
    "TIME_ENCODING",
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


def _cf_times_nd(var: xr.DataArray):
    """:func:`cf_times` of a time variable of any shape (NaT kept)."""
    values = var.to_numpy()
    return cf_times(values.reshape(-1)).reshape(values.shape)


def write_netcdf(result: xr.Dataset, path: str | os.PathLike) -> None:
    """Write ``result`` atomically as NETCDF4: CF time in int64 microseconds, text as strings."""
    ds = result.copy()
    ds = ds.assign_coords(time=cf_times(ds["time"].to_numpy()))  # as the CSV holds them
    for var in ("status", "datakey"):  # text as variable-length strings (no <U copy)
        if var in ds:
            ds[var] = (ds[var].dims, as_text(ds[var].to_numpy()), ds[var].attrs)
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in ("elapsed_seconds", "complete")}
    for var in ds.variables.values():
        var.encoding = {}  # e.g. Zarr chunks and compressors of a result read from a store
    enc = {"time": dict(TIME_ENCODING)}
    if "frame_time" in ds:  # each frame's own time, as exact as ``time``
        ds["frame_time"] = (
            ds["frame_time"].dims,
            _cf_times_nd(ds["frame_time"]),
            ds["frame_time"].attrs,
        )
        enc["frame_time"] = dict(TIME_ENCODING)
    _atomic_write(Path(path), lambda p: ds.to_netcdf(p, encoding=enc, format="NETCDF4"))


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

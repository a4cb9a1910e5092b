"""Saved results: CSV, netCDF and PNG of a run, and the irradiance job's resumable parts.

No pickle anywhere: parts and results are CSV, netCDF and Zarr. The irradiance job's
parts are written atomically as they complete, next to a manifest that identifies the
run, so an interrupted run resumed with the same arguments computes only what is missing
and ends with the same files as an uninterrupted one (the reduce job keeps its parts in
a Zarr store: :mod:`intake_helio.app.stores`).

Times are saved the same way everywhere: floored to whole microseconds (the CSV's
``%Y-%m-%dT%H:%M:%S.%f``) and, in netCDF and Zarr, CF-encoded as int64 microseconds since
1970 (:data:`TIME_ENCODING`), so every file decodes back to equal times.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..base.errors import ArgumentError
from ..compute.reduction import PART_COLUMNS

__all__ = [
    "TIME_ENCODING",
    "PartStore",
    "cf_times",
    "outputs_table",
    "plot_irradiance",
    "plot_outputs",
    "save_outputs",
    "save_results",
    "scalar_outputs",
    "to_dataframe",
    "write_netcdf",
]

_FLOAT = "%.17g"  # exact round trip, so resumed parts equal recomputed ones

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


def cf_times(times) -> np.ndarray:
    """``times`` floored to whole microseconds (as the CSV and the CF encoding hold them)."""
    return pd.DatetimeIndex(np.asarray(times)).floor("us").as_unit("ns").to_numpy()


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def to_dataframe(result: xr.Dataset) -> pd.DataFrame:
    """The result as a table: time, datakey, irradiance, n_valid, status."""
    return pd.DataFrame(
        {
            "time": pd.DatetimeIndex(result["time"].to_numpy()),
            "datakey": result["datakey"].to_numpy().astype(str),
            "irradiance": result["irradiance"].to_numpy(),
            "n_valid": result["n_valid"].to_numpy(),
            "status": result["status"].to_numpy().astype(str),
        }
    )


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    out = df.copy()
    out["time"] = pd.DatetimeIndex(out["time"]).strftime("%Y-%m-%dT%H:%M:%S.%f")
    out.to_csv(path, index=False, float_format=_FLOAT, na_rep="NaN", lineterminator="\n")


def _read_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(
        path,
        dtype={"datakey": str, "status": str},
        keep_default_na=False,
        na_values={"irradiance": ["NaN"]},
    )
    df["time"] = pd.to_datetime(df["time"], format="%Y-%m-%dT%H:%M:%S.%f").astype("datetime64[ns]")
    df["irradiance"] = df["irradiance"].astype(np.float64)
    df["n_valid"] = df["n_valid"].astype(np.int64)
    return df[PART_COLUMNS]


def plot_irradiance(result: xr.Dataset, path: str | os.PathLike) -> None:
    """PNG of the time series: time on x, labelled axes and units, failed frames marked."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

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
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


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
        (scalars if var.ndim == 1 else arrays).append(str(name))
    return scalars, arrays


def outputs_table(result: xr.Dataset) -> pd.DataFrame:
    """The scalar outputs as a table: time, datakey, one column per output, status."""
    scalars, _ = scalar_outputs(result)
    cols: dict[str, Any] = {
        "time": pd.DatetimeIndex(result["time"].to_numpy()),
        "datakey": result["datakey"].to_numpy().astype(str),
    }
    for name in scalars:
        cols[name] = result[name].to_numpy()
    cols["status"] = result["status"].to_numpy().astype(str)
    return pd.DataFrame(cols)


def plot_outputs(result: xr.Dataset, path: str | os.PathLike) -> None:
    """PNG of each scalar output against time (one panel and line each), failed frames marked."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    scalars, _ = scalar_outputs(result)
    if not scalars:
        raise ArgumentError("the result has no scalar outputs to plot")
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
    locator = mdates.AutoDateLocator()
    axes[-1, 0].xaxis.set_major_locator(locator)
    axes[-1, 0].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


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


# --------------------------------------------------------------------------- parts
class PartStore:
    """Parts of a run in ``<out>/parts/``, with a manifest that identifies the run.

    Parameters
    ----------
    out_dir : path
        The run's output directory.
    identity : dict
        What makes two runs the same (dataset, endpoint, range, options, frames);
        resuming with a different identity is refused.
    resume : bool
        Keep parts of an earlier run with the same identity; otherwise start afresh.
    """

    def __init__(self, out_dir: str | os.PathLike, identity: Mapping[str, Any], resume: bool):
        self.dir = Path(out_dir) / "parts"
        self.identity = json.loads(json.dumps(identity, default=str, sort_keys=True))
        manifest = self.dir / "manifest.json"
        if self.dir.exists():  # left by a run killed while writing a part
            for f in self.dir.glob(".part-*.csv.tmp-*"):
                f.unlink(missing_ok=True)
        if resume and manifest.exists():
            old = json.loads(manifest.read_text())
            if old != self.identity:
                diff = sorted(
                    k for k in set(old) | set(self.identity) if old.get(k) != self.identity.get(k)
                )
                raise ArgumentError(
                    f"--resume: {self.dir} holds parts of a different run (differs in "
                    f"{', '.join(diff)}); use another --out, or drop --resume to start afresh"
                )
        else:
            if self.dir.exists():
                for f in self.dir.glob("part-*.csv"):
                    f.unlink()
            self.dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(manifest, lambda p: p.write_text(json.dumps(self.identity, indent=1)))

    @staticmethod
    def fingerprint(datakeys) -> str:
        """A short hash of the frame list (part of a run's identity)."""
        return hashlib.sha1("\n".join(map(str, datakeys)).encode()).hexdigest()[:16]

    def _path(self, number: int) -> Path:
        return self.dir / f"part-{number:06d}.csv"

    def done(self) -> set[int]:
        """Numbers of the parts already saved."""
        return {int(p.stem.split("-")[1]) for p in self.dir.glob("part-*.csv")}

    def save(self, number: int, df: pd.DataFrame) -> None:
        """Save one part atomically."""
        _atomic_write(self._path(number), lambda p: _write_csv(df, p))

    def load(self) -> list[pd.DataFrame]:
        """Every saved part, in part order."""
        return [_read_csv(self._path(n)) for n in sorted(self.done())]

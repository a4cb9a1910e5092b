"""Saved results: CSV, netCDF and PNG of an irradiance run, and resumable parts.

No pickle anywhere: parts and results are CSV and netCDF. Parts are written
atomically as they complete, next to a manifest that identifies the run, so an
interrupted run resumed with the same arguments computes only what is missing and
ends with the same files as an uninterrupted one.
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

from ..compute.reduction import PART_COLUMNS

__all__ = ["PartStore", "plot_irradiance", "save_results", "to_dataframe"]

_FLOAT = "%.17g"  # exact round trip, so resumed parts equal recomputed ones


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
    # int64 microseconds: exact for every time the CSV holds (float64 seconds since 1970
    # are off by up to ~100 ns, so AIA's millisecond times would not decode back equal)
    enc = {
        "time": {
            "units": "microseconds since 1970-01-01T00:00:00",
            "calendar": "standard",
            "dtype": "int64",
        }
    }
    ds = result.copy()
    ds = ds.assign_coords(time=pd.DatetimeIndex(ds["time"].to_numpy()).floor("us"))  # as CSV
    for var in ("status", "datakey"):
        ds[var] = ds[var].astype(str)
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != "elapsed_seconds"}
    _atomic_write(paths["nc"], lambda p: ds.to_netcdf(p, encoding=enc, format="NETCDF4"))
    if plot:
        paths["png"] = out / "irradiance.png"
        _atomic_write(paths["png"], lambda p: plot_irradiance(result, p))
    return {k: str(v) for k, v in paths.items()}


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
                raise ValueError(
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

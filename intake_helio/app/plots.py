"""PNG figures of a run's results: the irradiance light curve and any scalar outputs.

matplotlib (the ``plot`` extra) is imported only when a figure is made, with the ``Agg``
backend unless one is chosen already.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..base.errors import ArgumentError
from ..base.text import as_text
from .tables import CHANNEL, channel_names, outputs_table, scalar_outputs

__all__ = [
    "irradiance_figure",
    "outputs_figure",
    "plot_irradiance",
    "plot_outputs",
    "plot_regions",
    "regions_figure",
]


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


def _date_range(times) -> str:
    """``"2020-12-31 22:00 – 23:00 UTC"`` (both dates when the run crosses midnight)."""
    idx = pd.DatetimeIndex(pd.to_datetime(times)).dropna()
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    if len(idx) == 0:
        return ""
    lo, hi = idx.min(), idx.max()
    fmt = "%Y-%m-%d %H:%M" if (hi - lo) >= pd.Timedelta("1min") else "%Y-%m-%d %H:%M:%S"
    if lo == hi:
        return f"{lo.strftime(fmt)} UTC"
    end = hi.strftime(fmt[len("%Y-%m-%d ") :] if lo.normalize() == hi.normalize() else fmt)
    return f"{lo.strftime(fmt)} \N{EN DASH} {end} UTC"


def _failed_rug(ax, times, color: str, label: str | None, level: float = 0.02) -> None:
    """Mark failed frames on the time axis: an ``x`` at ``level`` axes units above the bottom.

    The marks use the x axis' blended transform (x in data, y in axes units), so they stay on
    the time axis whatever the data's range and are never read as values.
    """
    ax.plot(
        times,
        np.full(len(times), level),
        "x",
        transform=ax.get_xaxis_transform(),
        color=color,
        ms=8,
        mew=2,
        clip_on=False,
        label=label,
    )


#: Points of a line drawn as they are; a longer one is drawn as its envelope (:func:`_line`).
DENSE_POINTS = 8_000
#: Time bins of an envelope (each drawn as its min and its max).
ENVELOPE_BINS = 2_000
#: Failed frames drawn as vertical lines too (more: the marks on the time axis only).
FAILED_LINES = 200


def _envelope(times, values: np.ndarray) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """``values`` over ``times`` as the min and max of each of :data:`ENVELOPE_BINS` equal
    time bins (NaN where a bin has no value, so the line breaks there)."""
    t = pd.DatetimeIndex(times).as_unit("ns").asi8
    span = max(int(t[-1] - t[0]), 1)
    width = span / ENVELOPE_BINS  # ns, as a float: span * bins overflows int64 for years
    bins = np.minimum(((t - t[0]) / width).astype(np.int64), ENVELOPE_BINS - 1)
    grouped = pd.Series(values).groupby(bins, sort=True)
    lo, hi = grouped.min(), grouped.max()
    start = t[0] + lo.index.to_numpy() * width
    at = np.column_stack([start + width / 4, start + 3 * width / 4]).ravel().astype(np.int64)
    return pd.DatetimeIndex(at), np.column_stack([lo.to_numpy(), hi.to_numpy()]).ravel()


def _line(ax, times, values, label: str, marker: str = ".-", **style) -> None:
    """``values`` (NaN: no value) against ``times``; more than :data:`DENSE_POINTS` points
    as their envelope, without markers: a mission's 1.5 million points drawn one by one
    take ~1 KB each of memory and minutes, and are no more readable at the figure's width."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) > DENSE_POINTS:
        times, values = _envelope(times, values)
        label = f"{label}; min and max in {ENVELOPE_BINS} time bins"
        marker = "-"
        style.pop("ms", None)
    ax.plot(times, values, marker, label=label, **style)


def _failed(ax, times, color: str, label: str | None, level: float = 0.02, ls: str = "-"):
    """Failed frames: a vertical line each (up to :data:`FAILED_LINES` of them) and the
    marks on the time axis (:func:`_failed_rug`)."""
    if len(times) <= FAILED_LINES:
        for t in times:
            ax.axvline(t, color=color, alpha=0.25, lw=1, ls=ls)
    _failed_rug(ax, times, color, label, level)


def _units(result: xr.Dataset, name: str, default: str | None = "DN") -> str | None:
    units = result[name].attrs.get("units") if name in result else None
    return str(units) if units else default


def _save_figure(fig, path: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def irradiance_figure(result: xr.Dataset, series: Sequence[xr.DataArray] = ()):
    """The matplotlib Figure :func:`plot_irradiance` saves (close it when done).

    One line per channel for a ``(channel, time)`` result, labelled with the channel's
    dataset id; with ``series``, a second panel under it on the same time axis;
    :func:`plot_irradiance` for what is drawn.
    """
    series = list(series)
    if channel_names(result):
        return _channels_figure(result, "irradiance", "irradiance", series)
    plt = _pyplot()
    times = pd.DatetimeIndex(result["time"].to_numpy())
    units = _units(result, "irradiance")
    ok = as_text(result["status"].to_numpy()) == "ok"
    fig, axes = plt.subplots(
        1 + bool(series), 1, sharex=True, squeeze=False, figsize=_figsize(1, series), dpi=110
    )
    ax = axes[0, 0]
    # failed frames are NaN here, so the line breaks at them instead of bridging them
    values = np.where(ok, result["irradiance"].to_numpy().astype(np.float64), np.nan)
    _line(ax, times, values, f"frame mean ({int(ok.sum())} frames)", lw=1, ms=4, color="C0")
    if (~ok).any():
        _failed(
            ax,
            times[~ok],
            "C3",
            f"failed frame ({int((~ok).sum())}), on the time axis: see status in irradiance.csv",
        )
    title = result.attrs.get("title") or result.attrs.get("dataset") or "irradiance"
    ax.set_title(f"{title}: irradiance (mean of each frame), {_date_range(times)}")
    ax.set_ylabel(f"mean intensity [{units}]")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    if series:
        _series_panel(axes[1, 0], series)
    axes[-1, 0].set_xlabel("time (UTC)")
    _date_axis(axes[-1, 0])
    fig.tight_layout()
    return fig


def plot_irradiance(
    result: xr.Dataset, path: str | os.PathLike, series: Sequence[xr.DataArray] = ()
) -> None:
    """PNG of the time series: time on x, labelled axes and units, failed frames marked.

    A result of several channels (dimensions ``(channel, time)``) has one line per channel,
    its legend naming the dataset ids; each channel's failed frames are marked with an ``x``
    in its colour on the time axis (at the bottom of the panel, never at a data value). The
    title gives the date range, the y axis the result's units (``DN`` when it has none).

    ``series`` (the demo's magnetometer ``|B|``): one-dimensional DataArrays along their own
    times, drawn in a second panel under the irradiance that shares its time axis, one line
    each (legend: ``long_name``; y axis: the first one's ``axis_label`` or name and its
    ``units``; panel title: its ``title``). A series of more than 2,000 points is drawn as a
    thin translucent line, so that a smoother one drawn over it stays readable.
    """
    _save_figure(irradiance_figure(result, series), path)


def _figsize(panels: int, series) -> tuple[float, float]:
    rows = panels + bool(series)
    return (10, 4.5) if rows == 1 else (10, 1.6 + 2.6 * rows)


def _series_panel(ax, series: Sequence[xr.DataArray]) -> None:
    """Draw each DataArray of ``series`` against its only dimension's times in ``ax``."""
    for k, da in enumerate(series):
        times = pd.DatetimeIndex(da[da.dims[0]].to_numpy())
        dense = da.size > 2000
        ax.plot(
            times,
            da.to_numpy().astype(np.float64),
            "-" if dense else ".-",
            lw=0.6 if dense else 1.4,
            ms=3,
            alpha=0.45 if dense else 1.0,
            color=f"C{2 + k}",
            label=str(da.attrs.get("long_name", da.name)),
        )
    first = series[0]
    units = first.attrs.get("units")
    label = str(first.attrs.get("axis_label") or first.name)
    ax.set_ylabel(f"{label} [{units}]" if units else label)
    if first.attrs.get("title"):
        ax.set_title(str(first.attrs["title"]), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)


def _channels_figure(result: xr.Dataset, names, csv_stem: str, series=()):
    """One panel per output in ``names`` (a name or a list), one line per channel in each.

    With ``series``, one more panel under them (:func:`_series_panel`).
    """
    plt = _pyplot()
    names = [names] if isinstance(names, str) else list(names)
    channels = channel_names(result)
    times = pd.DatetimeIndex(result["time"].to_numpy())
    status = as_text(result["status"].transpose(CHANNEL, "time").to_numpy())
    ok = status == "ok"
    fig, axes = plt.subplots(
        len(names) + bool(series),
        1,
        sharex=True,
        squeeze=False,
        figsize=_figsize(len(names), series),
        dpi=110,
    )
    for ax, name in zip(axes[: len(names), 0], names, strict=True):
        values = result[name].transpose(CHANNEL, "time").to_numpy().astype(np.float64)
        for k, channel in enumerate(channels):
            good = ok[k]
            # failed frames are NaN here, so a line breaks at them instead of bridging them
            line = np.where(good, values[k], np.nan)
            label = f"{channel} ({int(good.sum())} of {good.size} frames ok)"
            _line(ax, times, line, label, lw=1.2, ms=4, color=f"C{k}")
            if (~good).any():
                _failed(
                    ax,
                    times[~good],
                    f"C{k}",
                    f"{channel}: failed frame ({int((~good).sum())})",
                    level=0.02 + 0.04 * k,
                    ls="--",
                )
        units = _units(result, name, "DN" if name == "irradiance" else None)
        label = "mean intensity" if name == "irradiance" else name
        ax.set_ylabel(f"{label} [{units}]" if units else label)
        ax.grid(alpha=0.3)
    failed = int((~ok).sum())
    note = f"; failed frames marked x on the time axis (status in {csv_stem}.csv)" if failed else ""
    what = "irradiance (mean of each frame)" if names == ["irradiance"] else ", ".join(names)
    axes[0, 0].set_title(f"{', '.join(channels)}: {what}\n{_date_range(times)}{note}", fontsize=11)
    axes[0, 0].legend(loc="best", fontsize=9)
    if series:
        _series_panel(axes[-1, 0], series)
    axes[-1, 0].set_xlabel("time (UTC)")
    _date_axis(axes[-1, 0])
    fig.tight_layout()
    return fig


def outputs_figure(result: xr.Dataset):
    """The matplotlib Figure :func:`plot_outputs` saves (close it when done)."""
    scalars, _ = scalar_outputs(result)
    if not scalars:
        raise ArgumentError("the result has no scalar outputs to plot")
    if channel_names(result):
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
        _line(ax, df["time"], values, name, lw=1, ms=3, color=f"C{i}")
        if (~ok).any():
            _failed(
                ax, pd.DatetimeIndex(df.loc[~ok, "time"]), "C3", "failed frame" if i == 0 else None
            )
        units = _units(result, name, None)
        ax.set_ylabel(f"{name} [{units}]" if units else name)
        ax.grid(alpha=0.3)
    title = result.attrs.get("title") or result.attrs.get("dataset") or "frames"
    failed = int((~ok).sum())
    note = (
        f"; {failed} failed frame(s) marked x in red on the time axis (see status)"
        if failed
        else ""
    )
    axes[0, 0].set_title(
        f"{title}: {', '.join(scalars)} of {int(ok.sum())} frames\n{_date_range(df['time'])}{note}"
    )
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


def regions_figure(regions: xr.Dataset):
    """Light curves of several regions of one channel (``(region, time)``), close when done.

    Top: each region's values in its units (log axis); bottom: each over its first value,
    so that a flare box and quiet Sun can be compared with the whole frame.
    """
    plt = _pyplot()
    units = _units(regions, "irradiance")
    times = pd.DatetimeIndex(regions["time"].to_numpy())
    ok = regions["status"].to_numpy().astype(str) == "ok"
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), dpi=110, sharex=True)
    for k, name in enumerate(regions["region"].to_numpy().astype(str)):
        values = regions["irradiance"].isel(region=k).to_numpy().astype(np.float64)
        values = np.where(ok, values, np.nan)
        first = values[np.flatnonzero(~np.isnan(values))[0]] if (~np.isnan(values)).any() else 1
        top.plot(times, values, ".-", lw=1, ms=3, color=f"C{k}", label=name)
        bottom.plot(
            times,
            values / first,
            ".-",
            lw=1,
            ms=3,
            color=f"C{k}",
            label=f"{name}: peak x{np.nanmax(values) / first:.2f}",
        )
    for ax in (top, bottom):
        if (~ok).any():
            _failed_rug(ax, times[~ok], "C3", "failed frame" if ax is top else None)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=9)
    top.set_yscale("log")
    top.set_ylabel(f"mean intensity [{units}]")
    bottom.set_ylabel("over the first frame")
    title = regions.attrs.get("title") or regions.attrs.get("dataset") or "regions"
    top.set_title(f"{title}: regions of each frame, {_date_range(times)}")
    bottom.set_xlabel("time (UTC)")
    _date_axis(bottom)
    fig.tight_layout()
    return fig


def plot_regions(regions: xr.Dataset, path: str | os.PathLike) -> None:
    """Save :func:`regions_figure` as a PNG at ``path``."""
    _save_figure(regions_figure(regions), path)

"""Saved results (CSV, netCDF, PNG) and resumable parts (Zarr), on local files only (no sockets).

Every file written is read back with an independent reader (the ``csv`` module, xarray /
netCDF4 with and without CF decoding, Pillow) and compared with what was saved.
"""

from __future__ import annotations

import csv

import cftime
import dask.array as da
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from PIL import Image

from intake_helio.app.legacy_parts import read_part
from intake_helio.app.results import plot_irradiance, save_results, to_dataframe
from intake_helio.app.runs import PartRun
from intake_helio.app.stores import ZarrStore, fingerprint
from intake_helio.app.tables import write_csv
from intake_helio.compute.engine import map_frames
from intake_helio.compute.reduction import (
    PART_COLUMNS,
    as_irradiance,
    irradiance,
    iter_parts,
    parts_to_dataset,
)

RNG = np.random.default_rng(94)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- helpers
def _part(start: str, n: int, *, failed: dict[int, str] | None = None) -> pd.DataFrame:
    """A part as ``iter_parts`` yields it: awkward floats, microsecond times, reasons."""
    failed = failed or {}
    times = pd.date_range(start, periods=n, freq="12s") + pd.to_timedelta(
        RNG.integers(0, 10**6, n), unit="us"
    )
    values = RNG.lognormal(5, 2, n) * (1 + RNG.random(n) * 1e-12)
    values[::5] = np.nextafter(values[::5], np.inf)  # last-bit differences must survive
    status = np.array(["ok"] * n, dtype=object)
    n_valid = np.full(n, 16_000_000, dtype=np.int64)
    for i, reason in failed.items():
        values[i] = np.nan
        status[i] = reason
        n_valid[i] = 0
    own = (times + pd.Timedelta("3.004s")).as_unit("ns").to_numpy().copy()
    if n > 1:
        own[1] = np.datetime64("NaT")  # a channel's placeholder: no frame within tolerance
    return pd.DataFrame(
        {
            "time": times.as_unit("ns"),
            "frame_time": own,
            "datakey": [f"s3://b/aia/{t:%Y%m%d_%H%M%S_%f}, v1.fits" for t in times],
            "irradiance": values,
            "n_valid": n_valid,
            "status": status.astype(str),
        }
    )


def _frames(n: int = 10, ny: int = 6, nx: int = 5, exptime=None) -> xr.DataArray:
    """In-memory lazy (time, y, x) frames with BLANK pixels (NaN) and one all-blank frame."""
    data = RNG.normal(300, 40, (n, ny, nx)).astype(np.float32)
    data[RNG.random(data.shape) < 0.1] = np.nan
    data[3] = np.nan
    times = pd.date_range("2021-03-01", periods=n, freq="4min")
    coords = {
        "time": times,
        "datakey": ("time", [f"memory://f{i}.fits" for i in range(n)]),
        "y": np.arange(ny),
        "x": np.arange(nx),
    }
    if exptime is not None:
        coords["EXPTIME"] = ("time", np.asarray(exptime, dtype=np.float64))
    return xr.DataArray(
        da.from_array(data, chunks=(1, ny, nx)),
        dims=("time", "y", "x"),
        coords=coords,
        attrs={"units": "DN", "dataset": "unit_test", "title": "Unit test frames"},
        name="frames",
    )


def _stats_part(df: pd.DataFrame) -> xr.Dataset:
    """A part table as ``map_frames(frames, ["mean", "count"])`` gives the part."""
    return xr.Dataset(
        {
            "mean": ("time", df["irradiance"].to_numpy()),
            "count": ("time", df["n_valid"].to_numpy()),
            "status": ("time", df["status"].to_numpy().astype(object)),
        },
        coords={"time": df["time"].to_numpy()},
    )


def _result(parts: list[pd.DataFrame]) -> xr.Dataset:
    return parts_to_dataset(parts, {"dataset": "aia_0094", "title": "AIA 94", "X": 1}, "DN")


# ----------------------------------------------------------------------------- parts
def test_part_tables_round_trip_exactly(tmp_path):
    # the CSV layout of irradiance.csv, and of the parts older versions saved (read back on
    # --resume of such a run by the legacy reader)
    parts = {
        0: _part("2020-01-01", 8, failed={2: "truncated", 5: 'HTTP 503, "slow down"'}),
        1: _part("2020-01-01T00:02", 8),
        2: _part("2020-01-01T00:04", 4, failed={0: "missing object"}),
    }
    for number, df in parts.items():
        write_csv(df, tmp_path / f"part-{number:06d}.csv")
        back = read_part(tmp_path / f"part-{number:06d}.csv")
        assert list(back.columns) == PART_COLUMNS
        pd.testing.assert_frame_equal(back, df, check_exact=True)
    # the CSV is plain: a reason with a comma and quotes is quoted, NaN is spelled NaN
    with open(tmp_path / "part-000000.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == PART_COLUMNS
    assert rows[3][3:] == ["NaN", "0", "truncated"]
    assert rows[2][1] == ""  # a NaT frame time: an empty field
    assert rows[6][5] == 'HTTP 503, "slow down"'
    assert float(rows[1][3]) == parts[0]["irradiance"].iloc[0]


def _stats(rows: slice) -> xr.Dataset:
    """Frames ``rows`` of ``map_frames(frames, ["mean", "count"])`` (a part of 3 frames)."""
    return map_frames(_frames(6), ["mean", "count"], progress=False).isel(time=rows)


def _zarr(tmp_path, identity, resume, n=6):
    times = pd.date_range("2020-01-01", periods=n, freq="12s")
    keys = [f"s3://b/f{i}.fits" for i in range(n)]
    return ZarrStore(
        tmp_path / "parts.zarr", identity, resume, times=times, datakeys=keys, part_size=3
    )


def test_store_identity_is_plain_json_and_resumed_in_any_key_order(tmp_path):
    identity = {"dataset": "d", "start": pd.Timestamp("2020-01-01"), "normalize": False}
    first = _zarr(tmp_path, identity, resume=False)
    first.save(1, _stats(slice(3, 6)))
    saved = zarr.open_group(str(first.path), mode="r")["_resume"].attrs["identity"]
    assert dict(saved) == {"dataset": "d", "start": "2020-01-01 00:00:00", "normalize": False}

    resumed = _zarr(tmp_path, dict(reversed(list(identity.items()))), resume=True)
    assert resumed.resumed and resumed.done() == {1}
    fresh = _zarr(tmp_path, identity, resume=False)  # without --resume: the old parts go
    assert not fresh.resumed and fresh.done() == set()


def test_a_failed_save_leaves_the_part_unsaved(tmp_path):
    store = _zarr(tmp_path, {"dataset": "d"}, resume=False)
    good = _stats(slice(0, 3))
    store.save(0, good)
    with pytest.raises(KeyError):
        store.save(1, good.drop_vars("status"))  # cannot be saved
    assert store.done() == {0}  # the record is set only after a part's data


def test_fingerprint_depends_on_files_and_order():
    keys = [f"s3://b/f{i}.fits" for i in range(5)]
    fp = fingerprint(keys)
    assert fp == fingerprint(np.array(keys, dtype=object))
    assert fp != fingerprint(keys[::-1])
    assert fp != fingerprint(keys[:-1])
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert fingerprint(["a", "b"]) == "fcd127ffa1016069"  # as older versions made it


# ----------------------------------------------------------------------------- results files
def test_save_results_csv_netcdf_png(tmp_path):
    parts = [
        _part("2021-06-01", 9, failed={4: "truncated"}),
        _part("2021-06-01T00:02", 6),
    ]
    result = _result(parts[::-1])  # parts arrive in any order; the result is in time order
    result.attrs["elapsed_seconds"] = 1.5
    paths = save_results(result, tmp_path / "out")
    assert set(paths) == {"csv", "nc", "png"}
    expected = pd.concat(parts, ignore_index=True)

    # CSV: the columns in order, one row per frame, exact values
    text = (tmp_path / "out" / "irradiance.csv").read_text()
    assert text.splitlines()[0] == "time,frame_time,datakey,irradiance,units,n_valid,status"
    assert len(text.splitlines()) == 1 + 15
    table = pd.read_csv(paths["csv"], keep_default_na=False, na_values={"irradiance": ["NaN"]})
    assert list(table.columns) == [*PART_COLUMNS[:4], "units", *PART_COLUMNS[4:]]
    assert set(table["units"]) == {"DN"}
    assert (pd.to_datetime(table["time"]) == expected["time"]).all()
    own = pd.to_datetime(table["frame_time"].replace("", None))
    assert own.isna().tolist() == expected["frame_time"].isna().tolist()  # NaT: empty field
    assert (own.dropna() == expected["frame_time"].dropna()).all()
    np.testing.assert_array_equal(table["irradiance"], expected["irradiance"])
    assert table["status"].tolist() == expected["status"].tolist()
    assert table["datakey"].tolist() == expected["datakey"].tolist()
    assert table.loc[4, "status"] == "truncated" and np.isnan(table.loc[4, "irradiance"])

    # netCDF: CF time decodes to the same datetimes (with xarray and with cftime); values equal
    with netCDF4.Dataset(paths["nc"]) as raw:
        var = raw["time"]
        assert var.units.startswith("microseconds since 1970-01-01")
        assert var.calendar == "standard" and var.dtype == np.int64
        decoded = cftime.num2date(var[:], var.units, var.calendar, only_use_cftime_datetimes=False)
        assert "elapsed_seconds" not in raw.ncattrs()
    assert pd.DatetimeIndex(list(decoded)).equals(pd.DatetimeIndex(expected["time"]))
    with xr.open_dataset(paths["nc"]) as nc:
        nc = nc.load()
    np.testing.assert_array_equal(nc["time"].to_numpy(), expected["time"].to_numpy())
    np.testing.assert_array_equal(nc["irradiance"].to_numpy(), table["irradiance"].to_numpy())
    np.testing.assert_array_equal(nc["n_valid"].to_numpy(), expected["n_valid"].to_numpy())
    assert nc["status"].to_numpy().tolist() == expected["status"].tolist()
    assert nc["datakey"].to_numpy().tolist() == expected["datakey"].tolist()
    np.testing.assert_array_equal(nc["frame_time"].to_numpy(), expected["frame_time"].to_numpy())
    assert nc["irradiance"].attrs["units"] == "DN"
    assert nc.attrs["dataset"] == "aia_0094" and "X" not in nc.attrs

    # PNG: a real image written by matplotlib
    png = (tmp_path / "out" / "irradiance.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    with Image.open(paths["png"]) as img:
        assert img.format == "PNG"
        assert img.size[0] > 600 and img.size[1] > 300
        assert img.info["Software"].startswith("Matplotlib")
    assert not [p.name for p in (tmp_path / "out").iterdir() if ".tmp-" in p.name]


def test_netcdf_times_are_those_of_the_csv(tmp_path):
    part = _part("2020-12-31T23:59:59", 3)
    part["time"] = pd.DatetimeIndex(
        ["2020-12-31T23:59:59.570", "2021-01-01T00:00:11.5701239", "2021-01-01T00:00:23.999999999"]
    ).as_unit("ns")
    paths = save_results(_result([part]), tmp_path, plot=False)
    table = pd.read_csv(paths["csv"])
    assert table["time"].tolist() == [
        "2020-12-31T23:59:59.570000",
        "2021-01-01T00:00:11.570123",
        "2021-01-01T00:00:23.999999",
    ]
    with xr.open_dataset(paths["nc"]) as nc:
        times = nc["time"].to_numpy()
    np.testing.assert_array_equal(times, pd.to_datetime(table["time"]).to_numpy())


def test_save_results_without_plot_and_overwrite(tmp_path):
    first = _result([_part("2021-01-01", 4)])
    save_results(first, tmp_path)
    second = _result([_part("2021-01-02", 3)])
    paths = save_results(second, tmp_path, plot=False)
    assert set(paths) == {"csv", "nc"}
    assert len((tmp_path / "irradiance.csv").read_text().splitlines()) == 4
    with xr.open_dataset(paths["nc"]) as nc:
        assert nc.sizes["time"] == 3


@pytest.mark.parametrize("failed", [{}, {0: "truncated", 1: "missing object", 2: "not FITS"}])
def test_plot_with_no_or_only_failed_frames(tmp_path, failed):
    result = _result([_part("2021-01-01", 3, failed=failed)])
    plot_irradiance(result, tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as img:
        assert img.format == "PNG" and img.size[0] > 0


def test_to_dataframe_matches_the_dataset():
    part = _part("2021-01-01", 5, failed={3: "truncated"})
    df = to_dataframe(_result([part]))
    assert list(df.columns) == [*PART_COLUMNS[:4], "units", *PART_COLUMNS[4:]]
    assert set(df.pop("units")) == {"DN"}
    pd.testing.assert_frame_equal(df, part, check_exact=True, check_dtype=False)


# ----------------------------------------------------------------------------- parts of a run
def test_generic_irradiance_values_status_and_units():
    frames = _frames(exptime=np.linspace(1.0, 3.0, 10))
    data = frames.to_numpy()
    ds = irradiance(frames, progress=False, part_size=3)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="Mean of empty"):
        expected = np.nanmean(data.astype(np.float64), axis=(1, 2))
    np.testing.assert_allclose(ds["irradiance"], expected, rtol=1e-6)
    np.testing.assert_array_equal(ds["n_valid"], np.isfinite(data).sum(axis=(1, 2)))
    assert ds["status"].to_numpy().tolist() == ["ok"] * 3 + ["all pixels blank"] + ["ok"] * 6
    assert ds["irradiance"].attrs["units"] == "DN"
    assert ds.attrs["dataset"] == "unit_test"
    assert ds["datakey"].to_numpy().tolist() == frames["datakey"].to_numpy().tolist()

    norm = irradiance(frames, normalize=True, progress=False, part_size=4)
    np.testing.assert_allclose(norm["irradiance"], expected / np.linspace(1.0, 3.0, 10), rtol=1e-6)
    assert norm["irradiance"].attrs["units"] == "DN/s"


def test_generic_normalize_needs_exptime():
    with pytest.raises(ValueError, match="EXPTIME"):
        irradiance(_frames(), normalize=True, progress=False)


def test_parts_saved_then_resumed_give_the_full_result(tmp_path):
    frames = _frames(n=11, exptime=np.full(11, 2.9))
    full = irradiance(frames, progress=False, part_size=3)
    identity = {"dataset": "unit_test", "frames": 11, "part_size": 3, "job": "irradiance"}
    job = PartRun(
        {"unit_test": frames}, identity, frames["time"].to_numpy(), 3, False, "irradiance"
    )
    attrs = {k: full.attrs[k] for k in ("dataset", "title", "source", "time_axis")}

    # an interrupted run saved parts 0 and 2 only
    store = job.store(tmp_path / "parts.zarr", False, attrs, {})
    stats = dict(iter_parts(frames, part_size=3))
    for number in (0, 2):
        store.save(number, _stats_part(stats[number]))

    resumed = job.store(tmp_path / "parts.zarr", True, attrs, {})
    assert resumed.done() == {0, 2}
    merged, computed = job.fill(
        resumed, ["mean", "count"], None, None, False, lambda s: as_irradiance(s, "DN", attrs)
    )
    assert computed == 3 + 2  # parts 1 and 3 (the short last part)
    xr.testing.assert_identical(merged.drop_attrs(), full.drop_attrs())
    save_results(merged, tmp_path / "a", plot=False)
    save_results(full, tmp_path / "b", plot=False)
    assert (tmp_path / "a" / "irradiance.csv").read_bytes() == (
        tmp_path / "b" / "irradiance.csv"
    ).read_bytes()


def test_a_mission_long_light_curve_is_drawn_as_its_envelope(tmp_path):
    """1.5 million points are not drawn one by one: each time bin's min and max, so that a
    flare of a few frames still reaches its peak and failed frames still break the line."""
    from intake_helio.app import plots

    n = 3 * plots.DENSE_POINTS
    t = pd.date_range("2010-05-13", periods=n, freq="4min").to_numpy()
    v = 100.0 + np.sin(np.arange(n) / 5000)
    v[20_000:20_003] = 900.0  # a flare of 12 minutes
    status = np.array(["ok"] * n, dtype=object)
    status[5_000:5_300] = "truncated"  # a day without values: a gap in the line
    result = xr.Dataset(
        {
            "irradiance": ("time", v, {"units": "DN"}),
            "n_valid": ("time", np.full(n, 16)),
            "status": ("time", status),
            "datakey": ("time", np.array([f"s3://b/{i}.fits" for i in range(n)], dtype=object)),
        },
        coords={"time": t},
        attrs={"dataset": "aia_0094"},
    )
    fig = plots.irradiance_figure(result)
    try:
        (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"]
        y = np.asarray(line.get_ydata(), dtype=np.float64)
        assert len(y) <= 2 * plots.ENVELOPE_BINS < n
        assert np.nanmax(y) == 900.0 and np.nanmin(y) == pytest.approx(v.min())
        assert np.isnan(y).sum() >= 2  # the failed day's bins
        x = plots._envelope(t, v)[0]
        assert x.min() >= pd.Timestamp(t[0]) and x.max() <= pd.Timestamp(t[-1])
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    plot_irradiance(result, tmp_path / "mission.png")
    assert Image.open(tmp_path / "mission.png").size[0] > 500

"""The series layer on in-memory files (fsspec ``memory://``, no sockets): CDF files written by
cdflib's writer, opened lazily along time, each file's records of ``[start, stop)`` kept, and
every file's outcome in ``file_status``."""

from __future__ import annotations

import pickle
import tempfile

import cdflib.xarray
import dask
import fsspec
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask.base import collections_to_expr

import intake_helio as ih
from intake_helio.base.reasons import reason_of
from intake_helio.series.build import series_specs
from intake_helio.testing import netcdf_files as nc
from intake_helio.testing.cdf_files import declare_records, magnetometer_cdf, truncated

T0 = pd.Timestamp("2020-01-01")
HOUR = pd.Timedelta("1h")


def _files(n=4, bad=None, root="memory://series-unit", **kw) -> tuple[pd.DataFrame, list[bytes]]:
    """``n`` hourly 10-s CDF files; ``bad``: ``{i: bytes}`` to write instead."""
    fs = fsspec.filesystem("memory")
    rows, blobs = [], []
    for i in range(n):
        t = T0 + i * HOUR
        data = magnetometer_cdf(t, t + HOUR, "10s", **kw)
        data = (bad or {}).get(i, data)
        key = f"{root}/f{i}.cdf"
        fs.pipe_file(key[len("memory://") :], data)
        rows.append((t, t + HOUR, key, len(data)))
        blobs.append(data)
    return pd.DataFrame(rows, columns=["start", "stop", "datakey", "filesize"]), blobs


def _reference(data: bytes) -> xr.Dataset:
    with tempfile.NamedTemporaryFile(suffix=".cdf") as f:
        f.write(data)
        f.flush()
        return cdflib.xarray.cdf_to_xarray(f.name, to_datetime=True, fillval_to_nan=True).load()


def test_a_series_is_lazy_one_read_task_per_file_and_equals_cdflib():
    df, blobs = _files(4)
    ds = ih.open_series(df, format="cdf", start=T0 + 0.5 * HOUR, stop=T0 + 3.5 * HOUR)
    assert ds.sizes["time"] == 3 * 360 and ds.B_GSE.chunks[0] == (180, 360, 360, 180)
    (layer,) = series_specs(ds)
    assert len(layer) == 4 and layer.files == (0, 1, 2, 3)
    assert ds.attrs["intake_helio_time"] == "Epoch"
    want = xr.concat([_reference(b) for b in blobs], "Epoch")
    keep = (want.Epoch >= np.datetime64(T0 + 0.5 * HOUR)) & (
        want.Epoch < np.datetime64(T0 + 3.5 * HOUR)
    )
    got = ds.compute()
    np.testing.assert_array_equal(got.time.values, want.Epoch.values[keep.values])
    np.testing.assert_array_equal(got.B_GSE.values, want.B_GSE.values[keep.values])
    assert got.B_GSE.attrs["UNITS"] == want.B_GSE.attrs["UNITS"]
    assert list(got.file_status.values) == ["ok"] * 4
    assert list(got.file_records.values) == [180, 360, 360, 180]


def test_selections_read_only_the_files_they_touch_and_survive_pickling():
    df, _ = _files(4)
    ds = ih.open_series(df, format="cdf", start=T0, stop=T0 + 4 * HOUR)
    part = pickle.loads(pickle.dumps(ds)).B_mag.sel(time=slice(T0 + 1.2 * HOUR, T0 + 1.4 * HOUR))
    graph = dask.optimize(part.data)[0].__dask_graph__()
    reads = [k for k in graph if isinstance(k, tuple) and k[0].startswith("helio-series-read")]
    assert len(reads) == 1  # one file's task, not four
    assert part.compute().size == 73  # sel's slice includes both ends: 720 s at 10 s


def test_on_error_nan_keeps_the_good_files_and_names_each_bad_one():
    df, _ = _files(4, bad={1: truncated(magnetometer_cdf(T0 + HOUR, T0 + 2 * HOUR, "10s"))})
    with pytest.raises(ih.FileReadError, match=r"f1\.cdf.*truncated"):
        ih.open_series(df, format="cdf", start=T0, stop=T0 + 4 * HOUR)
    ds = ih.open_series(df, format="cdf", start=T0, stop=T0 + 4 * HOUR, on_error="nan")
    got = ds.compute()
    assert got.sizes["time"] == 3 * 360
    assert ih.Reason.TRUNCATED in got.file_status.values[1]
    assert [s == "ok" for s in got.file_status.values] == [True, False, True, True]


def test_variables_on_another_epoch_are_not_a_difference_and_are_named():
    # file 2 also has Epoch_state (pos_gse): the series' time is Epoch in every file
    other = magnetometer_cdf(T0 + 2 * HOUR, T0 + 3 * HOUR, "10s", state_cadence="60s")
    df, _ = _files(3, bad={2: other})
    ds = ih.open_series(df, format="cdf", start=T0, stop=T0 + 3 * HOUR)
    assert list(ds.file_status.values) == ["ok"] * 3 and ds.sizes["time"] == 3 * 360
    assert "pos_gse" not in ds
    state = ih.open_series(df.iloc[2:], format="cdf", start=T0, stop=T0 + 3 * HOUR,
                           time="Epoch_state")  # fmt: skip
    assert list(state.data_vars) == ["pos_gse", "file_status"] and state.sizes["time"] == 60
    assert state.attrs["intake_helio_other_times"].startswith("Epoch: ")


def test_a_file_over_max_file_bytes_is_refused_unread_past_the_limit():
    small = magnetometer_cdf(T0, T0 + HOUR, "60s")
    df, blobs = _files(2, bad={0: small}, root="memory://series-big")
    df["filesize"] = 0  # unknown: the cap alone bounds the read
    assert len(blobs[1]) > len(small) + 1000
    with dask.config.set({"intake_helio.max-file-bytes": len(small) + 1000}):
        ds = ih.open_series(df, format="cdf", start=T0, stop=T0 + 2 * HOUR, on_error="nan")
    assert ds.file_status.values[0] == "ok"
    assert ds.file_status.values[1].startswith(ih.Reason.FILE_TOO_LARGE)
    assert "max-file-bytes" in ds.file_status.values[1]


def test_a_failure_at_compute_gives_nan_records_and_the_reason():
    df, _ = _files(2, root="memory://series-late")
    ds = ih.open_series(df, format="cdf", start=T0, stop=T0 + 2 * HOUR, on_error="nan")
    fsspec.filesystem("memory").rm_file("/series-late/f1.cdf")  # gone after opening
    got = ds.compute()
    assert got.file_status.values.tolist() == ["ok", ih.Reason.MISSING_OBJECT]
    assert np.isnan(got.B_GSE.values[360:]).all() and not np.isnan(got.B_GSE.values[:360]).any()


def test_small_files_share_read_tasks_and_each_keeps_its_status():
    """12 small files on 2 threads: 4 tasks of 3 files (batch-bytes, two tasks a thread),
    chunked per task; a file gone at compute is NaN and its reason, its neighbours read."""
    df, blobs = _files(12, root="memory://series-batch")
    with dask.config.set({"num_workers": 2}):
        ds = ih.open_series(df, format="cdf", start=T0, stop=T0 + 12 * HOUR, on_error="nan")
        with dask.config.set({"intake_helio.batch-bytes": 0}):
            single = ih.open_series(df, format="cdf", start=T0, stop=T0 + 12 * HOUR)
    (layer,) = series_specs(ds)
    assert layer.batches == ((0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11)) and len(layer) == 4
    assert ds.B_GSE.chunks[0] == (1080,) * 4
    assert len(series_specs(single)[0]) == 12 and single.B_GSE.chunks[0] == (360,) * 12
    fsspec.filesystem("memory").rm_file("/series-batch/f4.cdf")  # gone after opening
    got = ds.compute()
    status = got.file_status.values.tolist()
    assert status[4] == ih.Reason.MISSING_OBJECT and status[:4] + status[5:] == ["ok"] * 11
    want = xr.concat([_reference(b) for b in blobs], "Epoch")
    bad = slice(4 * 360, 5 * 360)
    assert np.isnan(got.B_GSE.values[bad]).all()
    keep = np.ones(12 * 360, bool)
    keep[bad] = False
    np.testing.assert_array_equal(got.B_GSE.values[keep], want.B_GSE.values[keep])
    np.testing.assert_array_equal(got.time.values, want.Epoch.values)


def test_arguments_are_checked_before_any_file_is_read():
    df, _ = _files(1, root="memory://series-args")
    with pytest.raises(ih.HelioError, match="on_error='skip'"):
        ih.open_series(df, format="cdf", start=T0, stop=T0 + HOUR, on_error="skip")
    with pytest.raises(ih.HelioError, match="not a time-series format"):
        ih.open_series(df, format="fits", start=T0, stop=T0 + HOUR)
    with pytest.raises(ih.HelioError, match="variables="):
        ih.open_series(df, format="cdf", start=T0, stop=T0 + HOUR, variables=[3])
    with pytest.raises(ValueError, match="nope"):  # the first file lists what it has
        ih.open_series(df, format="cdf", start=T0, stop=T0 + HOUR, variables=["nope"])


def test_map_files_runs_per_file_and_keeps_each_files_reason():
    df, blobs = _files(3, bad={1: b"not a cdf at all"})
    ds = ih.open_series(df, format="cdf", start=T0, stop=T0 + 3 * HOUR, on_error="nan")

    def peak(f):
        if f.time.size and f.time.values[0] >= np.datetime64(T0 + 2 * HOUR):
            raise RuntimeError("boom")
        return {"peak": float(f.B_mag.max()), "n": f.sizes["time"]}

    out = ih.map_files(ds, peak)
    assert out.status.values[0] == "ok" and out.n.values[0] == 360
    assert out.peak.values[0] == pytest.approx(float(_reference(blobs[0]).B_mag.max()))
    assert out.status.values[1] == ih.Reason.NOT_CDF or out.status.values[1].startswith("not CDF")
    assert out.status.values[2].startswith("function error: peak raised RuntimeError: boom")
    # a selection maps only the files it touches, on its records
    one = ih.map_files(ds.sel(time=slice(T0, T0 + 0.5 * HOUR)), lambda f: f.sizes["time"])
    assert one.sizes["file"] == 1 and one.value.values[0] == 181
    with pytest.raises(ih.HelioError, match="map_files needs a Dataset opened by"):
        ih.map_files(xr.Dataset({"a": ("time", np.arange(3))}), len)


def _bad_cdf(kind: str) -> bytes:
    t = T0 + HOUR
    good = magnetometer_cdf(t, t + HOUR, "10s")
    return {
        "truncated": lambda: truncated(good),
        "no DEPEND_0": lambda: magnetometer_cdf(t, t + HOUR, "10s", depend_0=False),
        "unsorted epochs": lambda: magnetometer_cdf(t, t + HOUR, "10s", epochs="unsorted"),
        "fill epochs": lambda: magnetometer_cdf(t, t + HOUR, "10s", epochs="fill"),
        "huge record count": lambda: declare_records(good, 3, 2**31 - 2),  # B_GSE
        "not a CDF": lambda: b"\x89HDF\r\n\x1a\n" + bytes(100),
        "float64 B": lambda: magnetometer_cdf(t, t + HOUR, "10s", precision=8),
    }[kind]()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("truncated", ih.Reason.TRUNCATED),
        ("no DEPEND_0", ih.Reason.NO_TIME),
        ("unsorted epochs", ih.Reason.BAD_TIMES),
        ("fill epochs", ih.Reason.BAD_TIMES),
        ("huge record count", ih.Reason.FILE_TOO_LARGE),
        ("not a CDF", ih.Reason.NOT_CDF),
        ("float64 B", ih.Reason.VARIABLES_DIFFER),
    ],
)
def test_each_bad_file_gets_its_reason_and_the_good_files_keep_their_records(kind, reason):
    df, blobs = _files(3, bad={1: _bad_cdf(kind)}, root=f"memory://series-bad-{len(kind)}")
    ds = ih.open_series(df, format="cdf", start=T0, stop=T0 + 3 * HOUR, on_error="nan")
    status = list(ds.file_status.values)
    assert status[0] == status[2] == "ok" and reason_of(status[1]) == reason, status[1]
    got = ds.compute()
    want = np.concatenate([_reference(blobs[0]).B_GSE.values, _reference(blobs[2]).B_GSE.values])
    np.testing.assert_array_equal(got.B_GSE.values, want)
    with pytest.raises(ih.FileReadError, match=rf"f1\.cdf': {reason}"):
        ih.open_series(df, format="cdf", start=T0, stop=T0 + 3 * HOUR)


# --------------------------------------------------------------------------- netCDF and HDF5
def _nc_files(kind: str, bad: dict | None = None, root: str = "memory://series-nc"):
    """Three 60-record netCDF files (a minute each) of ``kind`` ("netcdf3"/"netcdf4")."""
    write = nc.netcdf3_bytes if kind == "netcdf3" else nc.netcdf4_bytes
    fs = fsspec.filesystem("memory")
    rows, sets = [], []
    for i in range(3):
        t = T0 + pd.Timedelta(minutes=i)
        ds = nc.series(60, start=t.isoformat())
        data = (bad or {}).get(i) or write(ds)
        key = f"{root}-{kind}/f{i}.nc"
        fs.pipe_file(key[len("memory://") :], data)
        rows.append((t, t + pd.Timedelta("1min"), key, len(data)))
        sets.append(ds)
    return pd.DataFrame(rows, columns=["start", "stop", "datakey", "filesize"]), sets


@pytest.mark.parametrize("kind", ["netcdf3", "netcdf4"])
def test_netcdf_series_equal_xarrays_own_reading(kind):
    df, sets = _nc_files(kind)
    ds = ih.open_series(df, format=kind, start=T0, stop=T0 + pd.Timedelta("3min"))
    assert ds.b_gse.chunks[0] == (60, 60, 60)
    got = ds.compute()
    want = xr.concat(sets, "time")
    np.testing.assert_array_equal(got.b_gse.values, want.b_gse.values)
    np.testing.assert_array_equal(got.time.values, want.time.values)
    assert got.b_gse.attrs["units"] == "nT"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (lambda: nc.netcdf4_bytes(nc.series(60, missing=["temp"])), ih.Reason.VARIABLES_DIFFER),
        (lambda: nc.netcdf4_bytes(nc.series(60, extra=["n_e"])), ih.Reason.VARIABLES_DIFFER),
        (lambda: nc.plain_hdf5_bytes(), ih.Reason.NOT_NETCDF),
        (lambda: nc.truncated(nc.netcdf4_bytes(nc.series(60))), None),
        (lambda: nc.netcdf4_bytes(nc.bad_times(nc.series(60), "nat")), ih.Reason.BAD_TIMES),
    ],
    ids=["missing variable", "extra variable", "plain HDF5", "truncated", "NaT time"],
)
def test_bad_netcdf_files_get_a_reason_and_the_good_files_keep_theirs(bad, reason):
    df, sets = _nc_files("netcdf4", bad={1: bad()}, root=f"memory://series-ncbad-{id(bad)}")
    ds = ih.open_series(df, format="netcdf4", start=T0, stop=T0 + pd.Timedelta("3min"),
                        on_error="nan")  # fmt: skip
    status = list(ds.file_status.values)
    assert status[0] == status[2] == "ok", status
    got = reason_of(status[1])
    assert got == reason if reason else got in (ih.Reason.TRUNCATED, ih.Reason.CORRUPT_DATA)
    np.testing.assert_array_equal(
        ds.temp.values, np.concatenate([sets[0].temp.values, sets[2].temp.values])
    )


def test_a_keys_task_is_the_same_whichever_variables_a_computation_asks_for():
    # dask fuses linear chains: a read fused into its one pick would give ('B_mag-...', j)
    # another task than when both variables are computed (distributed warns, dask #9888)
    df, _ = _files(2, root="memory://series-keys")
    ds = ih.open_series(df, format="cdf", start=T0, stop=T0 + 2 * HOUR)

    def graph(*arrays):  # the graph dask.compute (and a distributed client) would run
        return dict(
            collections_to_expr(list(arrays), optimize_graph=True).optimize().__dask_graph__()
        )

    key = ds.B_mag.data.__dask_keys__()[1]
    assert graph(ds.B_mag.data)[key] == graph(ds.B_mag.data, ds.B_GSE.data)[key]
    np.testing.assert_array_equal(*dask.compute(ds.B_mag.data, ds.B_mag.data.copy()))

"""The reduce job's Zarr store, its outputs and function shipping, on local files only.

No sockets: in-memory lazy frames through ``map_frames`` (the engine's generic path) and
hand-made part datasets. Every store is read back with an independent reader (``zarr``
without xarray, and ``xarray.open_zarr`` with its consolidated metadata).
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import uuid

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from PIL import Image

from intake_helio.app.results import outputs_table, save_outputs, scalar_outputs
from intake_helio.app.stores import StoreError, ZarrStore
from intake_helio.base.errors import ArgumentError, HelioError
from intake_helio.compute.engine import map_frames
from intake_helio.compute.shipping import func_id, ship_by_value

RNG = np.random.default_rng(7)
N, PART = 10, 4
IDENTITY = {"dataset": "unit", "frames": N, "funcs": ["mean", "tests:profile"]}


# ----------------------------------------------------------------------------- helpers
def _times(n: int = N) -> pd.DatetimeIndex:
    """Times with sub-microsecond parts (floored to whole microseconds in the store)."""
    base = pd.date_range("2021-03-01", periods=n, freq="12s")
    return base + pd.to_timedelta(RNG.integers(0, 10**9, n), unit="ns")


def _keys(n: int = N) -> list[str]:
    return [f"s3://b/aia/f{i:03d}, v1.fits" for i in range(n)]


def _store(path, resume=False, identity=IDENTITY, times=None, **kwargs) -> ZarrStore:
    times = _times() if times is None else times
    return ZarrStore(
        path,
        identity,
        resume,
        times=times,
        datakeys=_keys(len(times)),
        part_size=PART,
        attrs={"dataset": "unit", "units": "DN"},
        var_attrs={"mean": {"units": "DN", "long_name": "mean"}},
        **kwargs,
    )


def _part(store: ZarrStore, p: int, *, failed=(), values=True, width=3) -> xr.Dataset:
    """A part as map_frames' on_part gives it: mean, count, an array output, status."""
    a = p * PART
    b = min(a + PART, store.n)
    m = b - a
    status = np.array(["ok"] * m, dtype=object)
    data = {}
    if values:
        mean = RNG.lognormal(5, 2, m)
        count = RNG.integers(1, 4096, m).astype(np.int64)
        prof = RNG.normal(0, 1, (m, width))
        for i in failed:
            mean[i], count[i], prof[i] = np.nan, 0, np.nan
        data = {
            "mean": ("time", mean),
            "count": ("time", count),
            "profile": (("time", "profile_dim_0"), prof),
        }
    for i in failed:
        status[i] = "truncated"
    if not values:
        status[:] = "truncated"
    data["status"] = ("time", status)
    ds = xr.Dataset(data, coords={"time": ("time", np.arange(a, b))})
    ds["datakey"] = ("time", np.asarray(_keys(store.n)[a:b], dtype=object))
    return ds


def _text(values) -> list[str]:
    return [str(v) for v in np.asarray(values).tolist()]


def _frames(n: int = 9, ny: int = 6, nx: int = 5) -> xr.DataArray:
    data = RNG.normal(300, 40, (n, ny, nx)).astype(np.float32)
    data[RNG.random(data.shape) < 0.1] = np.nan
    data[3] = np.nan
    coords = {
        "time": _times(n),
        "datakey": ("time", [f"memory://f{i}.fits" for i in range(n)]),
        "y": np.arange(ny),
        "x": np.arange(nx),
    }
    return xr.DataArray(
        da.from_array(data, chunks=(1, ny, nx)),
        dims=("time", "y", "x"),
        coords=coords,
        attrs={"units": "DN", "dataset": "unit_test", "title": "Unit test frames"},
    )


def corners(data, header):
    """An array output: the four corner pixels."""
    return np.array([data[0, 0], data[0, -1], data[-1, 0], data[-1, -1]], dtype=np.float64)


# ----------------------------------------------------------------------------- layout
def test_new_store_holds_the_time_axis_and_is_not_complete(tmp_path):
    times = _times()
    store = _store(tmp_path / "s.zarr", times=times)
    assert store.parts == 3 and store.done() == set() and not store.complete
    raw = zarr.open_group(str(tmp_path / "s.zarr"), mode="r", use_consolidated=False)
    assert raw.metadata.zarr_format == 2
    assert raw.attrs["complete"] is False and raw.attrs["dataset"] == "unit"
    # CF time exactly as the netCDF writer: int64 microseconds since 1970, chunked by part
    t = raw["time"]
    assert t.dtype == np.int64 and t.chunks == (PART,)
    assert t.attrs["units"].startswith("microseconds since 1970-01-01")
    assert t.attrs["calendar"] == "standard"
    us = times.floor("us")
    np.testing.assert_array_equal(t[:], (us - pd.Timestamp(0)) // pd.Timedelta(1, "us"))
    assert _text(raw["datakey"][:]) == _keys()
    assert _text(raw["status"][:]) == [""] * N  # not yet saved
    ds = xr.open_zarr(tmp_path / "s.zarr")  # consolidated metadata, no warning
    np.testing.assert_array_equal(ds["time"].to_numpy(), us.as_unit("ns").to_numpy())
    assert ds.attrs["complete"] is False
    assert json.loads(json.dumps(raw["_resume"].attrs["identity"])) == IDENTITY


def test_parts_saved_in_any_order_then_loaded_whole(tmp_path):
    store = _store(tmp_path / "s.zarr")
    parts = {p: _part(store, p, failed=(1,) if p == 1 else ()) for p in (2, 0, 1)}
    for p, part in parts.items():
        store.save(p, part)
        assert p in store.done()
    assert store.done() == {0, 1, 2} and store.outputs() == {
        "mean": (),
        "count": (),
        "profile": (3,),
    }
    store.mark_complete()
    result = store.load()
    assert list(result.data_vars) == ["mean", "count", "profile", "status", "datakey", "frame_time"]
    np.testing.assert_array_equal(result["frame_time"].to_numpy(), result["time"].to_numpy())
    whole = xr.concat([parts[p] for p in (0, 1, 2)], dim="time")
    for name in ("mean", "count", "profile"):
        np.testing.assert_array_equal(result[name].to_numpy(), whole[name].to_numpy())
    assert result["count"].dtype == np.int64 and result["mean"].attrs["units"] == "DN"
    assert result["status"].dtype == object and _text(result["status"])[5] == "truncated"
    assert _text(result["datakey"]) == _keys()
    assert xr.open_zarr(tmp_path / "s.zarr").attrs["complete"] is True
    raw = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert raw["profile"].chunks == (PART, 3)
    assert raw["profile"].attrs["_ARRAY_DIMENSIONS"] == ["time", "profile_dim_0"]


def test_failed_parts_before_the_first_values(tmp_path):
    """Outputs are created by the first part with values; earlier failed frames stay empty."""
    store = _store(tmp_path / "s.zarr")
    store.save(0, _part(store, 0, values=False))
    assert store.outputs() == {} and store.done() == {0}
    store.save(2, _part(store, 2))
    store.save(1, _part(store, 1, values=False))
    store.mark_complete()
    result = store.load()
    assert np.isnan(result["mean"].to_numpy()[:8]).all()
    assert (result["count"].to_numpy()[:8] == 0).all()
    assert np.isnan(result["profile"].to_numpy()[:8]).all()
    assert _text(result["status"])[:8] == ["truncated"] * 8


def test_mark_complete_refused_while_a_part_is_missing(tmp_path):
    store = _store(tmp_path / "s.zarr")
    store.save(0, _part(store, 0))
    with pytest.raises(StoreError, match=r"2 part\(s\) not saved \(first: 1\).*--resume") as err:
        store.mark_complete()
    assert isinstance(err.value, HelioError)
    assert not store.complete
    assert xr.open_zarr(tmp_path / "s.zarr").attrs["complete"] is False


def test_a_part_of_the_wrong_size_or_number_is_refused(tmp_path):
    store = _store(tmp_path / "s.zarr")
    with pytest.raises(StoreError, match="part 0 has 2 frames; expected 4"):
        store.save(0, _part(store, 0).isel(time=slice(0, 2)))
    with pytest.raises(StoreError, match="part 3 is not a part"):
        store.save(3, _part(store, 2))
    assert store.done() == set()


# ----------------------------------------------------------------------------- resume
def test_resume_keeps_saved_parts_and_their_files(tmp_path):
    path = tmp_path / "s.zarr"
    times = _times()
    store = _store(path, times=times)
    first = _part(store, 1)
    store.save(1, first)
    files = {p: p.read_bytes() for p in path.rglob("*") if p.is_file() and "/1" in str(p)}
    again = _store(path, resume=True, times=times)
    assert again.done() == {1} and not again.complete
    assert {p: p.read_bytes() for p in files} == files
    again.save(0, _part(again, 0))
    again.save(2, _part(again, 2))
    again.mark_complete()
    np.testing.assert_array_equal(again.load()["mean"].to_numpy()[4:8], first["mean"].to_numpy())


def test_resume_with_another_identity_is_refused(tmp_path):
    path = tmp_path / "s.zarr"
    store = _store(path)
    store.save(0, _part(store, 0))
    other = {**IDENTITY, "funcs": ["mean", "tests:other"]}
    with pytest.raises(ArgumentError, match=r"holds parts of a different run \(differs in funcs\)"):
        _store(path, resume=True, identity=other)
    assert _store(path, resume=True).done() == {0}  # untouched


def test_without_resume_an_old_store_is_replaced(tmp_path):
    path = tmp_path / "s.zarr"
    store = _store(path)
    store.save(0, _part(store, 0))
    fresh = _store(path)
    assert fresh.done() == set() and fresh.outputs() == {}
    assert not (path / "mean").exists()


def test_resume_without_a_store_or_with_an_unfinished_one_starts_afresh(tmp_path):
    assert _store(tmp_path / "none.zarr", resume=True).done() == set()
    path = tmp_path / "s.zarr"
    _store(path)
    (path / "_resume" / ".zattrs").unlink()  # killed before the identity was written
    store = _store(path, resume=True)
    assert store.done() == set()
    store.save(0, _part(store, 0))
    assert store.done() == {0}


def test_a_path_that_is_not_a_store_is_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ArgumentError, match="not a Zarr store"):
        _store(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(ArgumentError, match="is a file"):
        _store(tmp_path / "file.zarr")


def test_outputs_that_changed_on_resume_become_function_errors(tmp_path):
    path = tmp_path / "s.zarr"
    times = _times()
    store = _store(path, times=times)
    store.save(0, _part(store, 0))
    again = _store(path, resume=True, times=times)
    changed = _part(again, 1, width=5, failed=(2,))
    again.save(1, changed)
    status = _text(again.load()["status"])[4:8]
    assert status[2] == "truncated"
    for i in (0, 1, 3):
        assert status[i].startswith("function error: outputs ")
        assert "'profile': (5,)" in status[i] and "'profile': (3,)" in status[i]
    assert np.isnan(again.load()["mean"].to_numpy()[4:8]).all()


# ----------------------------------------------------------------------------- with the engine
def test_map_frames_parts_saved_equal_the_in_memory_result(tmp_path):
    frames = _frames()
    funcs = ["mean", "max", "count", corners]
    expected = map_frames(frames, funcs, progress=False, part_size=PART)
    store = ZarrStore(
        tmp_path / "s.zarr",
        IDENTITY,
        False,
        times=frames["time"].to_numpy(),
        datakeys=frames["datakey"].to_numpy(),
        part_size=PART,
    )
    map_frames(frames, funcs, progress=False, part_size=PART, on_part=store.save, skip={1})
    assert store.done() == {0, 2}
    with pytest.raises(StoreError):
        store.mark_complete()
    resumed = ZarrStore(
        tmp_path / "s.zarr",
        IDENTITY,
        True,
        times=frames["time"].to_numpy(),
        datakeys=frames["datakey"].to_numpy(),
        part_size=PART,
    )
    map_frames(frames, funcs, progress=False, part_size=PART, on_part=resumed.save, skip={0, 2})
    resumed.mark_complete()
    result = resumed.load()
    assert list(result.data_vars) == [
        "mean",
        "max",
        "count",
        "corners",
        "status",
        "datakey",
        "frame_time",
    ]
    for name in ("mean", "max", "count", "corners"):
        np.testing.assert_array_equal(result[name].to_numpy(), expected[name].to_numpy())
    assert result["count"].dtype == expected["count"].dtype == np.int64
    assert _text(result["status"]) == _text(expected["status"])
    assert np.isnan(result["mean"].to_numpy()[3]) and result["count"].to_numpy()[3] == 0
    np.testing.assert_array_equal(
        result["time"].to_numpy(), pd.DatetimeIndex(expected["time"]).floor("us").to_numpy()
    )


# ----------------------------------------------------------------------------- outputs
def _result(store_path, arrays=True) -> xr.Dataset:
    store = _store(store_path)
    for p in range(store.parts):
        part = _part(store, p, failed=(0,) if p == 1 else ())
        store.save(p, part if arrays else part.drop_vars("profile"))
    store.mark_complete()
    return store.load()


def test_outputs_with_arrays_csv_of_scalars_nc_of_all_no_png(tmp_path):
    result = _result(tmp_path / "s.zarr")
    assert scalar_outputs(result) == (["mean", "count"], ["profile"])
    paths, notes = save_outputs(result, tmp_path / "out", ("csv", "nc", "png"))
    assert set(paths) == {"csv", "nc"}
    assert notes == [
        "csv: array outputs profile are in the nc/zarr files only",
        "png: not made (outputs profile are arrays; a plot needs scalar outputs only)",
    ]
    table = pd.read_csv(paths["csv"], keep_default_na=False, na_values={"mean": ["NaN"]})
    assert list(table.columns) == [
        "time",
        "frame_time",
        "datakey",
        "mean",
        "count",
        "units",
        "status",
    ]
    assert set(table["units"]) == {"DN"}
    np.testing.assert_array_equal(table["mean"].to_numpy(), result["mean"].to_numpy())
    assert table["status"].tolist() == _text(result["status"])
    with xr.open_dataset(paths["nc"]) as nc:
        nc = nc.load()
    assert nc["time"].encoding["units"].startswith("microseconds since 1970-01-01")
    assert nc["time"].encoding["dtype"] == np.int64
    np.testing.assert_array_equal(nc["time"].to_numpy(), result["time"].to_numpy())
    np.testing.assert_array_equal(nc["profile"].to_numpy(), result["profile"].to_numpy())
    assert "complete" not in nc.attrs


def test_outputs_of_scalars_make_a_png_with_a_panel_each(tmp_path):
    result = _result(tmp_path / "s.zarr", arrays=False)
    paths, notes = save_outputs(result, tmp_path / "out", ("png", "csv"))
    assert notes == [] and set(paths) == {"csv", "png"}
    with Image.open(paths["png"]) as img:
        assert img.format == "PNG" and img.size[1] > img.size[0] * 0.4  # two stacked panels
    columns = ["time", "frame_time", "datakey", "mean", "count", "units", "status"]
    assert list(outputs_table(result).columns) == columns


# ----------------------------------------------------------------------------- functions
def test_func_ids_name_statistics_and_functions():
    assert func_id("mean") == "mean"
    assert func_id(corners) == f"{__name__}:corners"
    assert func_id(ship_by_value(corners)) == f"{__name__}:corners"


def test_a_function_shipped_by_value_loads_where_its_module_does_not_exist(tmp_path, monkeypatch):
    name = f"client_only_{uuid.uuid4().hex[:8]}"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / f"{name}.py").write_text(
        "import numpy as np\nSCALE = 3.0\n"
        "def triple_sum(data, header):\n    return SCALE * float(np.nansum(data))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    module = __import__(name)
    shipped = ship_by_value(module.triple_sum)
    assert shipped.__name__ == "triple_sum" and shipped.__module__ == name
    assert shipped(np.ones((2, 2)), {}) == 12.0
    blob = pickle.dumps([("triple_sum", shipped)])  # as distributed pickles task graphs
    # a fresh interpreter without the module's directory: loaded by value, then called
    code = (
        "import pickle, sys, numpy as np, importlib.util\n"
        f"assert importlib.util.find_spec({name!r}) is None\n"
        "funcs = pickle.loads(sys.stdin.buffer.read())\n"
        "print(funcs[0][1](np.ones((2, 3)), {}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], input=blob, capture_output=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "18.0"
    assert ship_by_value(shipped) is shipped
    assert ship_by_value(ship_by_value) is ship_by_value  # the package's own: by reference

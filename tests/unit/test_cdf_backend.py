"""The CDF room: the bytes of one CDF as a Dataset along ``time`` (intake_helio.cdf).

Files are written by cdflib's writer (intake_helio.testing.cdf_files); the reference is
cdflib's own ``cdf_to_xarray`` on the same bytes. No sockets.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import cdflib
import numpy as np
import pytest
import xarray as xr
from cdflib.xarray import cdf_to_xarray

import intake_helio.cdf.backend as backend

try:
    import sunpy
except ImportError:  # pragma: no cover
    sunpy = None
from intake_helio.base.backends import records_of
from intake_helio.base.errors import ArgumentError, FileReadError
from intake_helio.base.reasons import Reason
from intake_helio.cdf import BACKEND, layout_of, records
from intake_helio.testing.cdf_files import (
    declare_records,
    default_signal,
    epoch_times,
    magnetometer_cdf,
    truncated,
)

START, STOP = "2024-03-01T00:00", "2024-03-01T00:20"
BIG = 1 << 30


def mag(**kw) -> bytes:
    return magnetometer_cdf(START, STOP, "2s", **kw)


def reference(data: bytes) -> xr.Dataset:
    """cdflib's own Dataset of the bytes (what open must equal)."""
    with tempfile.NamedTemporaryFile(suffix=".cdf") as f:
        f.write(data)
        f.flush()
        return cdf_to_xarray(f.name, to_datetime=True, fillval_to_nan=True)


def call(fn: str, data: bytes, variables=None, time=None, max_bytes=BIG):
    return getattr(BACKEND, fn)(
        data, datakey="bucket/f.cdf", variables=variables, time=time, max_bytes=max_bytes
    )


def reason(fn: str, data: bytes, **kw) -> FileReadError:
    with pytest.raises(FileReadError) as info:
        call(fn, data, **kw)
    assert info.value.datakey == "bucket/f.cdf"
    return info.value


FILES = {
    "mag": mag(),
    "state": mag(state_cadence="60s"),
    "fill": mag(fill_records=(0, 7)),
    "gzip": mag(state_cadence="60s", compress=True),
}
CASES = [  # file, variables, time, the epoch expected, the variables expected
    ("mag", None, None, "Epoch", ["B_GSE", "B_mag"]),
    ("state", None, None, "Epoch", ["B_GSE", "B_mag"]),
    ("state", ["B_mag"], None, "Epoch", ["B_mag"]),
    ("state", ["pos_gse"], None, "Epoch_state", ["pos_gse"]),
    ("state", None, "Epoch_state", "Epoch_state", ["pos_gse"]),
    ("fill", None, None, "Epoch", ["B_GSE", "B_mag"]),
    ("gzip", ["B_GSE", "pos_gse"], None, "Epoch", ["B_GSE"]),
]


@pytest.mark.parametrize(("file", "variables", "time", "epoch", "kept"), CASES)
def test_open_equals_cdf_to_xarray_renamed_and_restricted(file, variables, time, epoch, kept):
    data = FILES[file]
    ds = call("open", data, variables=variables, time=time)
    ref = reference(data).rename({epoch: "time"})
    assert list(ds.data_vars) == kept
    assert ds.attrs["intake_helio_time"] == epoch
    for name in kept:
        xr.testing.assert_identical(ds[name], ref[name])
    for name in ds.coords:
        xr.testing.assert_identical(ds[name], ref[name])
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert set(ds.dims) - {"time"} <= set(ref.dims) - {"time"}


MISSION_FILES = sorted(Path(sunpy.__file__).parent.glob("data/test/*.cdf")) if sunpy else []


@pytest.mark.skipif(not MISSION_FILES, reason="no mission CDF files (sunpy's test data)")
@pytest.mark.parametrize("path", MISSION_FILES, ids=lambda p: p.name)
def test_mission_files_open_as_cdf_to_xarray_and_scan_agrees(path):
    """Real CDFs (PSP FIELDS, Solar Orbiter EPD gzip-compressed, an empty SWA file)."""
    data = path.read_bytes()
    try:
        ds = call("open", data)
    except FileReadError as exc:
        assert exc.reason == Reason.NO_TIME and "no records" in exc.detail
        assert not any(n for n in cdf_to_xarray(str(path)).sizes.values())
        return
    ref = cdf_to_xarray(str(path), to_datetime=True, fillval_to_nan=True)
    ref = ref.rename({ds.attrs["intake_helio_time"]: "time"})
    for name in ds.variables:
        xr.testing.assert_identical(ds[name], ref[name])
    scan = call("scan", data)
    assert scan.layout == layout_of(ds)
    np.testing.assert_array_equal(scan.times, ds["time"].values)


def varying(ds: xr.Dataset) -> dict:
    """The record-varying variables of an opened file, as the series layer asks a read."""
    return {
        n: (str(v.dtype), tuple(v.transpose("time", ...).shape[1:]))
        for n, v in ds.variables.items()
        if "time" in v.dims and n != "time"
    }


def read(data: bytes, ds: xr.Dataset, start, stop, names=None, max_bytes=BIG) -> dict:
    return BACKEND.read(
        data, datakey="bucket/f.cdf", variables=None, time=ds.attrs["intake_helio_time"],
        names=varying(ds) if names is None else names, start=np.datetime64(start, "ns"),
        stop=np.datetime64(stop, "ns"), max_bytes=max_bytes,
    )  # fmt: skip


def assert_read_is_open_cut(data: bytes, ds: xr.Dataset, start, stop) -> None:
    got = read(data, ds, start, stop)
    want = records_of(ds, varying(ds), np.datetime64(start, "ns"), np.datetime64(stop, "ns"))
    assert got.keys() == want.keys()
    for name, values in want.items():
        assert got[name].dtype == values.dtype, name
        np.testing.assert_array_equal(got[name], values, err_msg=name)


RANGES = [  # whole; cut inside (on a record, between records); before the file; after it
    (START, STOP),
    ("2024-03-01T00:03:00", "2024-03-01T00:11:01"),
    ("2024-03-01T00:03:00.5", "2024-03-01T00:03:04"),
    ("2024-02-01", "2024-03-01"),
    ("2024-03-01T00:20", "2024-03-02"),
]


@pytest.mark.parametrize(("file", "variables", "time"), [c[:3] for c in CASES])
@pytest.mark.parametrize(("start", "stop"), RANGES)
def test_read_is_open_cut_to_the_range(file, variables, time, start, stop):
    data = FILES[file]
    ds = call("open", data, variables=variables, time=time)
    assert_read_is_open_cut(data, ds, start, stop)


@pytest.mark.skipif(not MISSION_FILES, reason="no mission CDF files (sunpy's test data)")
@pytest.mark.parametrize("path", MISSION_FILES, ids=lambda p: p.name)
def test_mission_files_read_as_open_cut(path):
    data = path.read_bytes()
    try:
        ds = call("open", data)
    except FileReadError:
        return  # the empty file: no time (the test above)
    t = ds["time"].values
    for start, stop in ((t[0], t[-1] + 1), (t[len(t) // 3], t[2 * len(t) // 3])):
        assert_read_is_open_cut(data, ds, start, stop)


def test_read_decodes_only_the_range_not_the_file():
    """An hour of a day's file (1 Hz): cdflib reads those records and converts those
    epochs only; decoding the whole file (open) holds several times more at its peak."""
    import tracemalloc

    data = magnetometer_cdf("2024-03-01", "2024-03-02", "1s", fill_records=(3700,))
    ds = call("open", data)
    tracemalloc.start()
    try:
        call("open", data)
        whole = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        got = read(data, ds, "2024-03-01T01:00", "2024-03-01T02:00")
        hour = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(got["time"]) == 3600 and np.isnan(got["B_mag"][100])  # record 3700: fill
    assert hour < whole / 4, (hour, whole)


def test_read_of_a_variable_the_file_lacks_is_variables_differ():
    data = FILES["mag"]
    ds = call("open", data)
    with pytest.raises(FileReadError) as info:
        read(data, ds, START, STOP, names={"B_mag": ("float32", ()), "N_i": ("float32", ())})
    assert info.value.reason == Reason.VARIABLES_DIFFER and "'N_i'" in info.value.detail


def test_read_refuses_a_range_over_max_bytes():
    data = FILES["mag"]
    ds = call("open", data)
    exc = reason_of_read(data, ds, max_bytes=2000)
    assert exc.reason == Reason.FILE_TOO_LARGE and "max_bytes=2000" in exc.detail


def reason_of_read(data: bytes, ds: xr.Dataset, **kw) -> FileReadError:
    with pytest.raises(FileReadError) as info:
        read(data, ds, START, STOP, **kw)
    assert info.value.datakey == "bucket/f.cdf"
    return info.value


def test_values_are_the_callers_signal_with_fill_as_nan():
    times = epoch_times(START, STOP, "2s")
    ds = call("open", FILES["fill"])
    np.testing.assert_array_equal(ds["time"].values, times)
    want = default_signal(times).astype(np.float32)
    want[[0, 7]] = np.nan
    np.testing.assert_array_equal(ds["B_GSE"].values, want)
    assert ds["B_GSE"].attrs["UNITS"] == "nT"
    assert list(ds["label_B_GSE"].values) == ["Bx  ", "By  ", "Bz  "]

    def ramp(t):
        return (t - t[0]) / np.timedelta64(1, "s")

    other = call("open", magnetometer_cdf(START, STOP, "10s", signal=ramp))
    np.testing.assert_array_equal(other["B_GSE"].values[:, 2], np.arange(120) * 10.0)


def test_other_epochs_are_named_with_their_variables():
    ds = call("open", FILES["state"])
    assert "pos_gse" not in ds and "Epoch_state" not in ds.coords
    assert ds.attrs["intake_helio_other_times"] == "Epoch_state: pos_gse"
    state = call("open", FILES["state"], time="Epoch_state")
    assert state.attrs["intake_helio_other_times"] == "Epoch: B_GSE, B_mag"
    assert call("open", FILES["mag"]).attrs["intake_helio_other_times"] == ""


def test_a_tie_between_epochs_takes_the_first_in_the_file():
    ds = call("open", FILES["state"], variables=["pos_gse", "B_mag"])
    assert ds.attrs["intake_helio_time"] == "Epoch"
    assert list(ds.data_vars) == ["B_mag"]


@pytest.mark.parametrize(("file", "variables", "time"), [c[:3] for c in CASES])
def test_scan_gives_the_times_and_the_layout_of_open(file, variables, time):
    data = FILES[file]
    scan = call("scan", data, variables=variables, time=time)
    ds = call("open", data, variables=variables, time=time)
    assert scan.time == ds.attrs["intake_helio_time"]
    assert scan.layout == layout_of(ds)
    np.testing.assert_array_equal(scan.times, ds["time"].values)
    assert scan.times.dtype == np.dtype("datetime64[ns]")


@pytest.mark.parametrize(("file", "variables", "time"), [c[:3] for c in CASES])
def test_the_template_is_the_structure_of_open(file, variables, time):
    data = FILES[file]
    scan, template = BACKEND.template(
        data, datakey="bucket/f.cdf", variables=variables, time=time, max_bytes=BIG
    )
    ds = call("open", data, variables=variables, time=time)
    again = call("scan", data, variables=variables, time=time)
    assert (scan.layout, scan.time, scan.signature) == (again.layout, again.time, again.signature)
    np.testing.assert_array_equal(scan.times, again.times)
    assert layout_of(template) == layout_of(ds) and template.attrs == ds.attrs
    assert template.sizes["time"] <= 2 < ds.sizes["time"]
    for name, var in ds.variables.items():  # the same but for the records along time
        cut = {"time": slice(0, 0)} if "time" in var.dims else {}
        xr.testing.assert_identical(template[name].isel(cut), ds[name].isel(cut))


def test_a_later_file_like_the_first_has_its_layout_and_an_other_its_own():
    first = call("scan", FILES["mag"])
    other_day = magnetometer_cdf("2024-03-02T00:00", "2024-03-02T00:30", "2s")
    like = BACKEND.scan(other_day, datakey="f", variables=None, time="Epoch",
                        max_bytes=BIG, like=first)  # fmt: skip
    assert like.signature == first.signature and like.layout == first.layout
    assert like.times[0] == np.datetime64("2024-03-02T00:00") and len(like.times) == 900
    wide = magnetometer_cdf("2024-03-02T00:00", "2024-03-02T00:30", "2s", precision=8)
    own = BACKEND.scan(wide, datakey="f", variables=None, time="Epoch", max_bytes=BIG,
                       like=first)  # fmt: skip
    assert own.signature != first.signature
    assert own.layout == call("scan", wide).layout != first.layout
    assert own.layout["B_GSE"][0] == "float64"


def test_layout_of_names_every_variable_but_time():
    ds = call("open", FILES["mag"])
    assert layout_of(ds) == {
        "B_GSE": ("float32", ("time", "B_comp"), (3,)),
        "B_mag": ("float32", ("time",), ()),
        "B_comp": ("float32", ("B_comp",), (3,)),
        "label_B_GSE": ("<U4", ("B_comp",), (3,)),
    }


def test_scan_decodes_the_epoch_alone(monkeypatch):
    """Other variables are read only from a copy that declares two records."""
    read = {}
    varget = cdflib.CDF.varget

    def counting(self, variable=None, *args, **kw):
        out = varget(self, variable, *args, **kw)
        read[variable] = max(read.get(variable, 0), np.shape(out)[0] if np.ndim(out) else 1)
        return out

    monkeypatch.setattr(cdflib.CDF, "varget", counting)
    call("scan", FILES["state"])
    assert read.pop("Epoch") == 600
    assert read and max(read.values()) <= 3  # two records, or the 3 labels/components


def test_an_unknown_epoch_names_the_files_epochs():
    err = reason("open", FILES["state"], time="Epoch_fast")
    assert err.reason == Reason.NO_TIME
    assert "Epoch, Epoch_state" in err.detail and "time=" in err.detail
    assert reason("scan", FILES["state"], time="B_mag").reason == Reason.NO_TIME


@pytest.mark.parametrize("fn", ["open", "scan"])
def test_a_file_without_depend_0_has_no_time(fn):
    err = reason(fn, mag(depend_0=False))
    assert err.reason == Reason.NO_TIME and "DEPEND_0" in err.detail


@pytest.mark.parametrize("fn", ["open", "scan"])
def test_unknown_variables_are_an_argument_error_listing_the_files(fn):
    with pytest.raises(ArgumentError, match="nope") as info:
        call(fn, FILES["state"], variables=["B_mag", "nope"])
    assert "pos_gse" in str(info.value) and "B_GSE" in str(info.value)


@pytest.mark.parametrize("fn", ["open", "scan"])
@pytest.mark.parametrize(("epochs", "record"), [("unsorted", "record 2"), ("fill", "record 1")])
def test_unsorted_or_fill_epochs_are_bad_times_naming_the_record(fn, epochs, record):
    err = reason(fn, mag(epochs=epochs))
    assert err.reason == Reason.BAD_TIMES
    assert record in err.detail and "'Epoch'" in err.detail


def test_not_cdf_and_empty():
    assert BACKEND.guess_can_open(FILES["mag"][:8])
    assert BACKEND.guess_can_open(FILES["gzip"][:8])
    assert not BACKEND.guess_can_open(b"\x89HDF\r\n\x1a\n")
    assert not BACKEND.guess_can_open(b"SIMPLE  =")
    err = reason("open", b"CDF\x00" + FILES["mag"][4:])
    assert err.reason == Reason.NOT_CDF and "cdf30001" in err.detail
    assert reason("scan", b"").reason == Reason.EMPTY_FILE


@pytest.mark.parametrize("file", ["state", "gzip"])
def test_cut_files_are_truncated_or_corrupt_never_a_raw_error(file):
    data = FILES[file]
    seen = set()
    for i in range(1, 100, 3):
        for fn in ("open", "scan"):
            seen.add(reason(fn, truncated(data, i / 100)).reason)
    assert seen <= {Reason.TRUNCATED, Reason.CORRUPT_DATA}
    assert Reason.TRUNCATED in seen


@pytest.mark.parametrize("file", ["state", "gzip"])
def test_corrupt_bytes_give_a_reason_never_a_raw_error(file):
    rng = np.random.default_rng(3)
    data = FILES[file]
    reasons = set()
    for _ in range(60):
        b = bytearray(data)
        for at in rng.integers(8, len(b), size=3):
            b[at] = int(rng.integers(256))
        for fn in ("open", "scan"):
            try:
                call(fn, bytes(b))
            except FileReadError as exc:
                reasons.add(exc.reason)
    assert Reason.CORRUPT_DATA in reasons


def test_a_record_size_larger_than_the_file_is_corrupt_before_cdflib_reads_it():
    data = bytearray(FILES["mag"])
    data[8:16] = (1 << 60).to_bytes(8, "big")  # the CDR's size
    err = reason("open", bytes(data))
    assert err.reason == Reason.CORRUPT_DATA and "byte 8" in err.detail


def patched(data: bytes, at: int, value: int, width: int = 4) -> bytes:
    out = bytearray(data)
    out[at : at + width] = value.to_bytes(width, "big", signed=True)
    return bytes(out)


def b_gse_vdr(data: bytes) -> int:
    return records.vdr_offsets(data)[3]  # Epoch, label_B_GSE, B_comp, B_GSE, ...


# Fields of a CDF v3 file that cdflib loops over or follows unchecked (each would have it
# loop or list without bound): the GDR's zVariable count (byte 60 of the GDR), a zVDR's
# zNumDims (byte 340), its VXR head (byte 28), a VXR's NusedEntries (byte 24), an
# ADR's NzEntries (byte 56; the first ADR at byte 28 of the GDR).
def hostile_fields(data: bytes) -> dict[str, bytes]:
    gdr = int.from_bytes(data[20:28], "big")
    adr = int.from_bytes(data[gdr + 28 : gdr + 36], "big")
    vdr = b_gse_vdr(data)
    vxr = int.from_bytes(data[vdr + 28 : vdr + 36], "big")
    return {
        "zVariable count": patched(data, gdr + 60, 2**31 - 1),
        "zNumDims": patched(data, vdr + 340, 838860801),
        "VXR head into a record": patched(data, vdr + 28, vxr + 16, width=8),
        "VXR used entries": patched(data, vxr + 24, 2**31 - 1),
        "VDR chain loop": patched(data, vdr + 12, vdr, width=8),
        "negative dimension": patched(data, vdr + 344, -(2**30)),
        "attribute entry count": patched(data, adr + 56, 2**31 - 1),
    }


@pytest.mark.parametrize("field", list(hostile_fields(FILES["state"])))
def test_record_fields_cdflib_follows_unchecked_are_refused_before_it_reads(field):
    data = hostile_fields(FILES["state"])[field]
    for fn in ("open", "scan"):
        err = reason(fn, data)
        assert err.reason == Reason.CORRUPT_DATA, err
        assert "cdflib cannot read it" not in err.detail  # refused by the room's checks


@pytest.mark.parametrize("fn", ["open", "scan"])
def test_declared_bytes_over_max_bytes_are_refused(fn):
    err = reason(fn, FILES["mag"], max_bytes=20_000)
    assert err.reason == Reason.FILE_TOO_LARGE
    assert "max_bytes=20000" in err.detail and "max-series-bytes" in err.detail
    call(fn, FILES["mag"], max_bytes=250_000)


def test_a_compressed_file_is_bounded_by_its_uncompressed_size():
    data = FILES["gzip"]
    size = len(reference(data).B_GSE)  # readable at all
    assert size == 600
    err = reason("open", data, max_bytes=5_000)
    assert err.reason == Reason.FILE_TOO_LARGE and "uncompressed" in err.detail


def test_a_compressed_file_that_lies_about_its_size_is_inflated_no_further_than_max_bytes():
    data = bytearray(mag(compress=True))
    data[28:36] = (100).to_bytes(8, "big")  # the CCR's uSize: 100 bytes (it inflates to ~23k)
    err = reason("open", bytes(data), max_bytes=5_000)
    assert err.reason == Reason.FILE_TOO_LARGE and "inflates to more than" in err.detail


def test_the_temporary_copy_is_removed_also_on_error(monkeypatch, tmp_path):
    monkeypatch.setattr(backend, "_temp_dir", lambda size: str(tmp_path))
    call("open", FILES["state"])
    call("scan", FILES["gzip"])
    reason("open", mag(epochs="fill"))
    reason("scan", mag(depend_0=False))
    reason("open", FILES["mag"], max_bytes=1000)
    with pytest.raises(ArgumentError):
        call("open", FILES["mag"], variables=["nope"])
    assert list(tmp_path.iterdir()) == []


def test_scan_leaves_the_copy_as_it_was(monkeypatch, tmp_path):
    """The records capped to learn the layout are restored before the epoch is read."""
    monkeypatch.setattr(backend, "_temp_dir", lambda size: str(tmp_path))
    seen = []
    epoch = backend._Local.epoch

    def spy(self, name):
        seen.append(Path(self.path).read_bytes() == self.plain)
        return epoch(self, name)

    monkeypatch.setattr(backend._Local, "epoch", spy)
    call("scan", FILES["state"])
    assert seen == [True]


def test_the_backend_is_picklable_and_module_level():
    assert pickle.loads(pickle.dumps(BACKEND)) is BACKEND
    assert BACKEND.name == "cdf" and BACKEND.formats == ("cdf",)


def test_the_builders_are_deterministic():
    assert mag(state_cadence="60s") == FILES["state"]
    assert mag(compress=True, state_cadence="60s") == FILES["gzip"]
    assert len(FILES["gzip"]) < len(FILES["state"])


CHILD = r"""
import json, resource, sys, time
import numpy as np, xarray, cdflib, cdflib.xarray
from intake_helio.cdf import BACKEND
from intake_helio.base.errors import FileReadError
data = open(sys.argv[1], "rb").read()
BACKEND.open(data[:0] + open(sys.argv[2], "rb").read(), datakey="warm", variables=None,
             time=None, max_bytes=1 << 30)  # imports and first use: before the limit
def vm():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
limit = vm() + (256 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
out = {}
for fn in ("open", "scan"):
    t0 = time.monotonic()
    try:
        getattr(BACKEND, fn)(data, datakey="huge", variables=None, time=None,
                             max_bytes=2 << 30)
        out[fn] = {"reason": "ok"}
    except FileReadError as exc:
        out[fn] = {"reason": str(exc.reason), "detail": exc.detail}
    except MemoryError:
        out[fn] = {"reason": "MemoryError"}
    out[fn]["seconds"] = time.monotonic() - t0
print(json.dumps(out))
"""


def test_a_huge_declared_record_count_is_refused_fast_with_bounded_memory(tmp_path):
    """B_GSE declares 2**31 - 1 records (25 GB) with 600 written: refused from its VDR."""
    huge = tmp_path / "huge.cdf"
    huge.write_bytes(declare_records(FILES["state"], 3, 2**31 - 2))
    good = tmp_path / "good.cdf"
    good.write_bytes(FILES["mag"])
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(huge), str(good)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MALLOC_ARENA_MAX": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for fn in ("open", "scan"):
        assert out[fn]["reason"] == "file too large", out
        assert "B_GSE (2147483647 records" in out[fn]["detail"]
        assert out[fn]["seconds"] < 5

"""Small netCDF3, netCDF4 and HDF5 files as bytes, good and bad, for tests and benchmarks.

A series Dataset (:func:`series`) has a known signal, a function of the seconds since its
first time; :func:`netcdf4_bytes` writes it with xarray's h5netcdf engine,
:func:`netcdf3_bytes` with its scipy engine (``time`` unlimited: a record dimension);
:func:`plain_hdf5_bytes` writes h5py datasets that are not netCDF. The bad ones:
:func:`bad_times` (unsorted, NaT), :func:`truncated`, :func:`huge_numrecs` (a netCDF3
header patched to declare a huge record count), :func:`huge_hdf5` (a few KiB declaring
far more), :func:`damaged_chunk` (one variable that does not decode) and
:func:`cdf5_head`. Everything is deterministic (same arguments, same bytes).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "bad_times",
    "cdf5_head",
    "damaged_chunk",
    "huge_hdf5",
    "huge_numrecs",
    "netcdf3_bytes",
    "netcdf4_bytes",
    "plain_hdf5_bytes",
    "series",
    "sine",
    "truncated",
    "two_times",
]

#: How every file here stores its times (float, so that NaT is written as NaN).
TIME_ENCODING = {"units": "seconds since 1970-01-01", "dtype": "float64"}


def sine(seconds: np.ndarray) -> np.ndarray:
    """The default signal: a sine of period 60 s."""
    return np.sin(2 * np.pi * np.asarray(seconds, dtype=float) / 60.0)


def series(
    n: int = 60,
    start: str = "2020-01-01T00:00:00",
    cadence: float = 1.0,
    signal: Callable[[np.ndarray], np.ndarray] = sine,
    extra: Sequence[str] = (),
    missing: Sequence[str] = (),
) -> xr.Dataset:
    """A time series with a known signal.

    Parameters
    ----------
    n : int
        Records.
    start : str
        The first time.
    cadence : float
        Seconds between records.
    signal : callable
        ``signal(seconds since start) -> values``.
    extra : sequence of str
        Names of more data variables along ``time`` (``signal + i + 1``, ``i`` their index).
    missing : sequence of str
        Variables to leave out (``"b_gse"``, ``"temp"``).

    Returns
    -------
    xarray.Dataset
        ``b_gse(time, component) = signal * [1, 2, 3]`` (float64, units nT),
        ``temp(time) = 10 + signal`` (float32), coordinate ``component = [0, 1, 2]``.
    """
    seconds = np.arange(n) * cadence
    times = pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s")
    s = np.asarray(signal(seconds), dtype=float)
    ds = xr.Dataset(
        {
            "b_gse": (("time", "component"), s[:, None] * [1.0, 2.0, 3.0], {"units": "nT"}),
            "temp": ("time", (10 + s).astype("float32"), {"units": "K"}),
        },
        coords={"time": ("time", times.values), "component": [0, 1, 2]},
        attrs={"title": "synthetic series", "mission": "testing"},
    )
    for i, name in enumerate(extra):
        ds[name] = ("time", s + i + 1)
    return ds.drop_vars(list(missing))


def two_times(n: int = 20, m: int = 4) -> xr.Dataset:
    """:func:`series` with a second time ``hk_time`` (``m`` records) and ``volt`` on it."""
    ds = series(n)
    hk = pd.date_range("2020-01-01", periods=m, freq="15s").values
    return ds.assign_coords(hk_time=("hk_time", hk)).assign(volt=("hk_time", np.arange(m) + 5.0))


def bad_times(ds: xr.Dataset, kind: str = "unsorted", at: int = 3) -> xr.Dataset:
    """``ds`` with record ``at`` made bad: ``"unsorted"`` (before its predecessor), ``"nat"``."""
    times = ds["time"].values.copy()
    if kind == "nat":
        times[at] = np.datetime64("NaT")
    else:
        times[at] = times[at - 1] - np.timedelta64(1, "s")
    return ds.assign_coords(time=("time", times, ds["time"].attrs))


def _encoding(ds: xr.Dataset) -> dict:
    return {k: dict(TIME_ENCODING) for k, v in ds.variables.items() if v.dtype.kind == "M"}


def netcdf4_bytes(ds: xr.Dataset) -> bytes:
    """``ds`` as netCDF4 bytes (xarray's h5netcdf engine)."""
    return bytes(ds.to_netcdf(engine="h5netcdf", encoding=_encoding(ds)))


def netcdf3_bytes(ds: xr.Dataset, version: int = 2) -> bytes:
    """``ds`` as netCDF3 bytes (scipy; ``version`` 1 classic, 2 64-bit offset), ``time``
    unlimited (the record dimension)."""
    fmt = "NETCDF3_CLASSIC" if version == 1 else "NETCDF3_64BIT"
    unlimited = ["time"] if "time" in ds.sizes else None
    return bytes(
        ds.to_netcdf(engine="scipy", format=fmt, encoding=_encoding(ds), unlimited_dims=unlimited)
    )


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` of the bytes."""
    return data[: int(len(data) * keep)]


def huge_numrecs(data: bytes, numrecs: int = 2**31 - 1) -> bytes:
    """netCDF3 bytes whose header declares ``numrecs`` records (bytes 4-8 patched)."""
    if data[:4] not in (b"CDF\x01", b"CDF\x02"):
        raise ValueError("huge_numrecs patches netCDF3 classic or 64-bit offset bytes")
    return data[:4] + struct.pack(">i", numrecs) + data[8:]


def cdf5_head() -> bytes:
    """The first bytes of a netCDF3 CDF5 (64-bit data) file, which scipy cannot read."""
    return b"CDF\x05" + b"\0" * 60


def damaged_chunk(ds: xr.Dataset, name: str) -> bytes:
    """``ds`` as netCDF4 with variable ``name`` zlib-compressed and its first chunk's bytes
    overwritten (0xff): the file opens, the variable does not decode."""
    import h5py

    encoding = {**_encoding(ds), name: {"zlib": True, "chunksizes": ds[name].shape}}
    data = bytearray(ds.to_netcdf(engine="h5netcdf", encoding=encoding))
    with h5py.File(io.BytesIO(bytes(data)), "r") as f:
        chunk = f[name].id.get_chunk_info(0)
    data[chunk.byte_offset : chunk.byte_offset + chunk.size] = b"\xff" * chunk.size
    return bytes(data)


def _h5(build: Callable) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w", track_order=False) as f:
        build(f)
    return buf.getvalue()


def plain_hdf5_bytes(n: int = 10, scales: bool = False, units: str | None = None) -> bytes:
    """HDF5 written by h5py: ``t`` (seconds, float) and ``b(n, 3)``.

    Parameters
    ----------
    n : int
        Records.
    scales : bool
        Make ``t`` and a ``c = [0, 1, 2]`` the dimension scales of ``b``'s axes (netCDF
        dimensions); without, the file is plain HDF5 (h5netcdf gives phony dimensions).
    units : str, optional
        ``t``'s ``units`` attribute (e.g. CF ``"seconds since 2020-01-01"``).
    """

    def build(f):
        t = f.create_dataset("t", data=np.arange(n, dtype=float), track_times=False)
        b = f.create_dataset("b", data=np.ones((n, 3)), track_times=False)
        if units:
            t.attrs["units"] = units
        if scales:
            c = f.create_dataset("c", data=np.arange(3), track_times=False)
            for axis, scale in enumerate((t, c)):
                scale.make_scale(scale.name.lstrip("/"))
                b.dims[axis].attach_scale(scale)

    return _h5(build)


def huge_hdf5(n: int = 2**34) -> bytes:
    """A few KiB of HDF5 with a time dimension scale ``time`` and ``b(time)`` declaring
    ``n`` float64 records each (chunked, none written: 128 GiB for the default)."""

    def build(f):
        kw = {"shape": (n,), "dtype": "f8", "chunks": (1024,), "track_times": False}
        t = f.create_dataset("time", **kw)
        t.attrs["units"] = "seconds since 2020-01-01"
        t.make_scale("time")
        b = f.create_dataset("b", **kw)
        b.dims[0].attach_scale(t)

    return _h5(build)

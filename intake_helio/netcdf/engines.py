"""The bytes of one netCDF3, netCDF4 or HDF5 file opened lazily by xarray's own engines.

Which engine reads a file is decided by its magic number, never by its name:

* ``b"\\x89HDF\\r\\n\\x1a\\n"`` (netCDF4 and HDF5): ``engine="h5netcdf"`` (h5py), with
  ``phony_dims="access"`` so that an HDF5 dataset without dimension scales opens with
  ``phony_dim_N`` dimensions instead of failing; a file whose dimensions are all phony is
  plain HDF5, not netCDF (:attr:`~intake_helio.base.reasons.Reason.NOT_NETCDF`);
* ``b"CDF\\x01"`` (classic) and ``b"CDF\\x02"`` (64-bit offset): ``engine="scipy"``;
  ``b"CDF\\x05"`` (CDF5, 64-bit data) is a netCDF format scipy cannot read: refused as
  ``NOT_NETCDF`` with a detail saying so.

The netCDF4 library is never used (an import-linter contract keeps it out of the core).
Both engines are opened on an in-memory file object with ``create_default_indexes=False``,
so opening reads the header only (h5netcdf reads data when a variable is loaded). scipy
reads a netCDF3 file's data at open when it is not memory-mapped, but never more than the
bytes there are: a header declaring more records than the file holds fails at once
(:attr:`~intake_helio.base.reasons.Reason.TRUNCATED`), without allocating what it declares.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import xarray as xr

from ..base.errors import FileReadError, picklable_cause
from ..base.reasons import Reason
from ..base.text import safe_text

__all__ = [
    "HDF5_MAGIC",
    "NETCDF3_MAGICS",
    "engine_of",
    "hdf5_kind",
    "open_lazy",
    "read_failure",
    "refuse_phony",
]

#: The first 8 bytes of every HDF5 file (netCDF4 is HDF5).
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: netCDF3 classic and 64-bit offset, which scipy reads.
NETCDF3_MAGICS = (b"CDF\x01", b"CDF\x02")
#: netCDF3 CDF5 (64-bit data), which scipy does not read.
CDF5_MAGIC = b"CDF\x05"
#: The prefix of the dimensions h5netcdf invents for HDF5 datasets without dimension scales.
PHONY_PREFIX = "phony_dim_"


def engine_of(head: bytes) -> str | None:
    """The xarray engine for a file starting with ``head``, or None when it is neither."""
    head = bytes(head[:8])
    if head == HDF5_MAGIC:
        return "h5netcdf"
    if head[:4] in NETCDF3_MAGICS:
        return "scipy"
    return None


def _refuse_magic(data: bytes, datakey: str) -> None:
    """Raise the reason a file that no engine here reads is refused."""
    head = bytes(data[:8])
    if not head:
        raise FileReadError(datakey, Reason.EMPTY_FILE, "the file has no bytes")
    if head[:4] == CDF5_MAGIC:
        raise FileReadError(
            datakey,
            Reason.NOT_NETCDF,
            "netCDF3 CDF5 (64-bit data, magic b'CDF\\x05'): scipy, the netCDF3 engine "
            "used here, reads only classic (b'CDF\\x01') and 64-bit offset (b'CDF\\x02') "
            "files; convert it, e.g. `nccopy -k nc4 file.nc out.nc`, to netCDF4",
        )
    if HDF5_MAGIC.startswith(head) or any(m.startswith(head) for m in NETCDF3_MAGICS):
        raise FileReadError(
            datakey,
            Reason.TRUNCATED,
            f"the file has only {len(data)} bytes, fewer than a netCDF/HDF5 signature",
        )
    raise FileReadError(
        datakey,
        Reason.NOT_NETCDF,
        f"starts with {safe_text(repr(head), 40)}; expected netCDF4/HDF5 "
        f"({HDF5_MAGIC!r}) or netCDF3 ({NETCDF3_MAGICS[0]!r}, {NETCDF3_MAGICS[1]!r}); "
        "check the dataset's filetype",
    )


def _numrecs(data: bytes) -> int | None:
    """The record count a netCDF3 header declares (bytes 4-8, big-endian), if present."""
    if len(data) < 8:
        return None
    return struct.unpack(">i", bytes(data[4:8]))[0]


def read_failure(
    exc: Exception, data: bytes, datakey: str, engine: str, kind: str | None = None
) -> FileReadError:
    """The :class:`FileReadError` for an engine's exception on a file (raise it ``from``).

    h5py says ``truncated file`` when an HDF5 file ends before its superblock's end of file;
    scipy fails to shape a netCDF3 variable when its file ends before the declared data
    (``cannot reshape``, ``buffer size``): both are ``TRUNCATED``. HDF5 that h5py walks
    whole (``kind``, :func:`hdf5_kind`) but h5netcdf does not open is ``NOT_NETCDF`` when it
    has no netCDF dimensions (``"plain"``), or has dimension scales that h5netcdf refuses
    (``"scales"``, a ``ValueError``). Anything else is ``CORRUPT_DATA``.
    """
    text = safe_text(f"{type(exc).__name__}: {exc}")
    lowered = text.lower()
    if engine == "scipy" and any(
        s in lowered for s in ("cannot reshape", "buffer size", "unpack requires")
    ):
        return FileReadError(
            datakey,
            Reason.TRUNCATED,
            f"the netCDF3 header declares {_numrecs(data)} records and data beyond the "
            f"file's {len(data)} bytes ({text}); the file is cut short or its header is wrong",
        )
    if "truncated file" in lowered:
        return FileReadError(
            datakey,
            Reason.TRUNCATED,
            f"the HDF5 file ends before its declared end ({len(data)} bytes here): {text}",
        )
    if kind == "plain":
        return FileReadError(
            datakey,
            Reason.NOT_NETCDF,
            "plain HDF5 without netCDF dimensions (no dimension scales, no "
            f"_NCProperties), which h5netcdf cannot open ({text}); write it with "
            "netCDF4/h5netcdf, or attach dimension scales with h5py",
        )
    if kind == "scales" and isinstance(exc, ValueError):
        return FileReadError(
            datakey,
            Reason.NOT_NETCDF,
            "HDF5 whose dimension scales do not make netCDF dimensions (h5py reads it, "
            f"h5netcdf does not: {text}); give every axis of every dataset a dimension "
            "scale, or write the file with netCDF4/h5netcdf",
        )
    return FileReadError(
        datakey, Reason.CORRUPT_DATA, f"{engine} cannot read the file's bytes ({text})"
    )


def hdf5_kind(data: bytes) -> str:
    """Walk every object of an HDF5 file with h5py (its attributes, its datasets' types
    and shapes): ``"netcdf"`` (``_NCProperties``), ``"scales"`` (dimension scales) or
    ``"plain"``. h5py's error, if any, is raised: then it is the file's, not one raised
    half-way through h5netcdf's constructor (which fails again when collected)."""
    import h5py

    found = []

    def visit(name: str, obj: object) -> None:
        attrs = dict(obj.attrs)
        if isinstance(obj, h5py.Dataset):
            obj.dtype, obj.shape  # noqa: B018 - h5py decodes them here
        if attrs.get("CLASS") == b"DIMENSION_SCALE" or "DIMENSION_LIST" in attrs:
            found.append(name)

    with h5py.File(io.BytesIO(data), "r") as f:
        netcdf = "_NCProperties" in dict(f.attrs)
        f.visititems(visit)
    return "netcdf" if netcdf else "scales" if found else "plain"


def refuse_phony(ds: xr.Dataset, datakey: str) -> None:
    """``NOT_NETCDF`` when every dimension of ``ds`` is one h5netcdf invented (plain HDF5)."""
    if ds.sizes and all(str(d).startswith(PHONY_PREFIX) for d in ds.sizes):
        names = ", ".join(safe_text(v, 60) for v in list(ds.variables)[:10])
        raise FileReadError(
            datakey,
            Reason.NOT_NETCDF,
            "plain HDF5 without netCDF dimensions: its datasets have no dimension scales "
            f"(h5netcdf names their dimensions phony_dim_N), so none is a time ({names}); "
            "write it with netCDF4/h5netcdf, or attach dimension scales with h5py",
        )


@contextmanager
def open_lazy(data: bytes, datakey: str) -> Iterator[xr.Dataset]:
    """The file's lazy Dataset (times decoded lazily, attrs kept, no index), closed on exit.

    Parameters
    ----------
    data : bytes
        The whole file.
    datakey : str
        The file's name in every error.

    Yields
    ------
    xarray.Dataset
        Variables are lazy (netCDF4/HDF5) or hold the file's own arrays (netCDF3).

    Raises
    ------
    FileReadError
        ``EMPTY_FILE``, ``NOT_NETCDF``, ``TRUNCATED`` or ``CORRUPT_DATA``.
    """
    engine = engine_of(data)
    if engine is None:
        _refuse_magic(data, datakey)
    extra = {"phony_dims": "access"} if engine == "h5netcdf" else {}
    kind = None
    try:
        if engine == "h5netcdf":
            kind = hdf5_kind(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", xr.SerializationWarning)
            ds = xr.open_dataset(
                io.BytesIO(data),
                engine=engine,
                decode_times=xr.coders.CFDatetimeCoder(time_unit="ns"),
                create_default_indexes=False,
                cache=False,
                **extra,
            )
    except Exception as exc:
        raise read_failure(exc, data, datakey, str(engine), kind) from picklable_cause(exc)
    try:
        if engine == "h5netcdf":
            refuse_phony(ds, datakey)
        yield ds
    finally:
        ds.close()

"""The CDF room's :class:`~intake_helio.base.backends.SeriesBackend`: bytes of one CDF to xarray.

Decoding is :func:`cdflib.xarray.cdf_to_xarray` (``to_datetime=True``,
``fillval_to_nan=True``: ISTP conventions, ``DEPEND_0`` epochs as ``datetime64[ns]``,
``FILLVAL`` to NaN, labels and support data as coordinates), on a private temporary copy of
the bytes (cdflib reads local paths only; the copy is in ``/dev/shm`` when it has room, and
is always removed). Before anything is decoded:

* the magic number (``not CDF``), a whole-file gzip inflated in bounded steps, the GDR's
  end of file against the bytes there are (``truncated``), every internal record's size
  and the lists and pointers cdflib follows unchecked (VDRs, VXR trees, attributes,
  dimension counts: ``corrupt data``) — :mod:`.records`;
* the declared bytes of the variables that would be decoded (every variable of the file:
  ``cdf_to_xarray`` decodes them all), from the VDRs (cdflib's ``varinq``: ``Last_Rec``,
  ``Dim_Sizes``, ``Num_Elements``, the data type's size), against ``max_bytes``
  (``file too large``); epoch variables count :data:`EPOCH_WORK` times their bytes, what
  cdflib's epoch conversion holds at its peak.

``template`` (the first file of a series) learns the layout ``open`` would give from
``cdf_to_xarray`` on a copy whose VDRs declare at most two records, so both go through the
same cdflib code and the same :mod:`.istp` choice; ``scan`` of a later file whose signature
(its variables, their metadata and attributes) is the first file's decodes its epoch alone
(``varget`` and ``cdfepoch.to_datetime``) and takes the first file's layout. ``read`` (a
task at compute) decodes the asked variables for the records of ``[start, stop)`` only
(:mod:`.ranges`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import xarray as xr

from ..base.backends import TIME, Kind, Scan, records_of
from ..base.errors import ArgumentError, FileReadError
from ..base.reasons import Reason
from . import istp, ranges, records

__all__ = ["BACKEND", "EPOCH_WORK", "CdfBackend", "layout_of"]

layout_of = istp.layout_of

#: Bytes cdflib's epoch conversion holds per byte of a TT2000/EPOCH value (measured: 34).
EPOCH_WORK = 40
#: The data variables asked of a file (None: all on the chosen epoch).
Names = Sequence[str] | None
_EPOCH_TYPES = frozenset({31, 32, 33})  # CDF_EPOCH, CDF_EPOCH16, CDF_TIME_TT2000
_SHM = "/dev/shm"


class CdfBackend:
    """Reads CDF files (``filetype`` ``cdf``) from their bytes; picklable, stateless."""

    name = "cdf"
    formats = ("cdf",)

    def __reduce__(self):
        return (_backend, ())

    def guess_can_open(self, head: bytes) -> bool:
        """Whether ``head`` starts with a CDF magic number (v3 ``cdf30001``, v2 ...)."""
        return records.cdf_version(head) is not None

    def scan(
        self,
        data: bytes,
        *,
        datakey: str,
        variables: Names,
        time: str | None,
        max_bytes: int,
        like: Scan | None = None,
    ) -> Scan:
        """The chosen epoch's times and the layout :meth:`open` would give.

        Parameters
        ----------
        data : bytes
            The whole file.
        datakey : str
            The file's datakey (named by every error).
        variables : sequence of str or None
            The data variables asked (None: every data variable on the chosen epoch).
        time : str or None
            The ``DEPEND_0`` epoch to put along ``time`` (None: the one most asked
            variables are on).
        max_bytes : int
            The most bytes the file's variables may decode to.
        like : Scan, optional
            The first file's scan (on the same ``variables`` and ``time``): when this
            file's signature (its variables, their metadata and attributes) is the same,
            its layout is the same and only its epoch is decoded; else its layout is
            learnt as the first file's was.

        Returns
        -------
        Scan

        Raises
        ------
        FileReadError
            Anything wrong with the file (reasons ``not CDF``, ``truncated``,
            ``corrupt data``, ``no time variable``, ``bad times``, ``file too large``).
        ArgumentError
            A name of ``variables`` is not a data variable of the file.
        """
        if like is not None and like.signature is not None and time in (None, like.time):
            with _local(data, datakey, max_bytes) as local:
                if local.signature == like.signature:
                    times = local.epoch(like.time)
                    _check_times(datakey, like.time, times)
                    return Scan(times, like.layout, like.time, local.signature)
        return self.template(
            data, datakey=datakey, variables=variables, time=time, max_bytes=max_bytes
        )[0]

    def template(
        self, data: bytes, *, datakey: str, variables: Names, time: str | None, max_bytes: int
    ) -> tuple[Scan, xr.Dataset]:
        """The file's scan and the structure of its :meth:`open`: ``cdf_to_xarray`` on a
        copy whose VDRs declare at most two records (the data variables' records are
        not decoded; their dtypes, attributes and the support data are the file's).
        Parameters, raises: as :meth:`scan`."""
        with _local(data, datakey, max_bytes) as local:
            with local.capped():
                ds = local.decode()
            chosen = local.choose(ds, variables, time)
            out = istp.select(ds, chosen)
            times = local.epoch(chosen.time)
            signature = local.signature
        _check_times(datakey, chosen.time, times)
        return Scan(times, layout_of(out), chosen.time, signature), out

    def open(
        self, data: bytes, *, datakey: str, variables: Names, time: str | None, max_bytes: int
    ) -> xr.Dataset:
        """The file as one Dataset along ``time`` (:mod:`intake_helio.base.backends`).

        The values are those of ``cdflib.xarray.cdf_to_xarray(path, to_datetime=True,
        fillval_to_nan=True)``, restricted to the asked variables on the chosen epoch and
        their coordinates, that epoch renamed to ``time``; ``attrs`` adds
        ``intake_helio_time`` and ``intake_helio_other_times``. Parameters, raises: as
        :meth:`scan`.
        """
        with _local(data, datakey, max_bytes) as local:
            ds = local.decode()
            chosen = local.choose(ds, variables, time)
        out = istp.select(ds, chosen)
        _check_times(datakey, chosen.time, out[TIME].values)
        return out

    def read(
        self,
        data: bytes,
        *,
        datakey: str,
        variables: Names,
        time: str,
        names: Mapping[str, Kind],
        start: np.datetime64,
        stop: np.datetime64,
        max_bytes: int,
    ) -> dict[str, np.ndarray]:
        """A read task's records (:meth:`~intake_helio.base.backends.SeriesBackend.read`).

        cdflib reads only the records of ``[start, stop)`` of the epoch ``time`` and of
        ``names`` (:mod:`.ranges`); a variable that path cannot give as ``cdf_to_xarray``
        would has the file decoded whole, as :meth:`open` does, then cut. Raises: as
        :meth:`scan`, and ``VARIABLES_DIFFER`` for a name the file lacks.
        """
        with _local(data, datakey, max_bytes, declared=False) as local:
            got = local.read_range(time, names, start, stop, max_bytes)
        if got is None:
            ds = self.open(
                data, datakey=datakey, variables=variables, time=time, max_bytes=max_bytes
            )
            missing = [n for n in names if n not in ds.variables]
            if missing:
                raise FileReadError(datakey, Reason.VARIABLES_DIFFER, _lacks(missing[0]))
            return records_of(ds, names, start, stop)
        _check_times(datakey, time, got[TIME])
        return got


def _lacks(name: str) -> str:
    return f"no variable {name!r} now (it had when the series was opened)"


def _backend() -> CdfBackend:
    return BACKEND


#: The room's backend (what the series layer dispatches ``cdf`` files to).
BACKEND = CdfBackend()


class _Local:
    """A checked CDF in a private temporary file, and cdflib's reads of it."""

    def __init__(self, path: str, plain: bytes, datakey: str):
        self.path = path
        self.plain = plain
        self.datakey = datakey
        self.order: list[str] = []
        self.records: dict[str, int] = {}
        #: What decides cdf_to_xarray's layout of the file (check_declared sets it):
        #: its variables, their metadata and attributes, up to two records each.
        self.signature: str | None = None

    def fail(self, reason: Reason, detail: str) -> FileReadError:
        return FileReadError(self.datakey, reason, detail)

    def check_declared(self, max_bytes: int) -> None:
        """Refuse (``file too large``) what the VDRs declare beyond ``max_bytes``."""
        import cdflib

        with self.cdflib_errors(metadata=True):
            cdf = cdflib.CDF(self.path)
            info = cdf.cdf_info()
            self.order = [*info.rVariables, *info.zVariables]
            cdf.globalattsget()
            total, parts = 0, []
            shape = [info.Encoding, info.Majority, info.Num_rdim, list(info.rDim_sizes)]
            for name in self.order:
                vi = cdf.varinq(name)
                atts = cdf.varattsget(name)
                shape.append((
                    name, vi.Var_Type, vi.Data_Type, vi.Num_Elements, list(vi.Dim_Sizes),
                    list(vi.Dim_Vary), vi.Rec_Vary, min(vi.Last_Rec + 1, 2), sorted(atts.items()),
                ))  # fmt: skip
                size = cdf._type_size(vi.Data_Type, vi.Num_Elements)
                if size < 1 or any(d < 0 for d in vi.Dim_Sizes):
                    raise self.fail(
                        Reason.CORRUPT_DATA,
                        f"variable {name!r} declares {vi.Num_Elements} elements of type "
                        f"{vi.Data_Type} and dimensions {vi.Dim_Sizes}",
                    )
                nrec = max(vi.Last_Rec + 1, 1) if vi.Rec_Vary else 1
                nbytes = nrec * int(np.prod(vi.Dim_Sizes or [1], dtype=object)) * size
                if vi.Data_Type in _EPOCH_TYPES:
                    nbytes *= EPOCH_WORK
                total += nbytes
                parts.append((nbytes, name, vi.Last_Rec + 1))
                self.records[name] = vi.Last_Rec + 1
            del cdf
        self.signature = hashlib.sha256(repr(shape).encode()).hexdigest()
        if total > max_bytes:
            big = ", ".join(f"{n} ({r} records, {b} bytes)" for b, n, r in sorted(parts)[-3:])
            raise self.fail(
                Reason.FILE_TOO_LARGE,
                f"its variables declare {total} bytes decoded, over max_bytes={max_bytes} "
                f"(largest: {big}); raise intake_helio.max-series-bytes to read it",
            )

    @contextlib.contextmanager
    def cdflib_errors(self, metadata: bool = False) -> Iterator[None]:
        """cdflib's and numpy's errors on this file as ``corrupt data`` FileReadErrors.

        With ``metadata`` (only records are read, nothing the size of the data), a
        ``MemoryError`` is a record pointer or size that is not what it says: corrupt too.
        """
        try:
            yield
        except (FileReadError, ArgumentError):
            raise
        except MemoryError:
            if not metadata:
                raise
            raise self.fail(
                Reason.CORRUPT_DATA,
                "a record of the file declares more bytes than memory holds (a corrupt "
                "pointer or size)",
            ) from None
        except Exception as exc:
            raise self.fail(
                Reason.CORRUPT_DATA, f"cdflib cannot read it: {type(exc).__name__}: {exc}"
            ) from None

    def decode(self) -> xr.Dataset:
        """``cdf_to_xarray`` of the file (the conventions CDAWeb users expect)."""
        from cdflib.xarray import cdf_to_xarray

        with self.cdflib_errors():
            return cdf_to_xarray(self.path, to_datetime=True, fillval_to_nan=True)

    def choose(
        self, ds: xr.Dataset, variables: Sequence[str] | None, time: str | None
    ) -> istp.Selection:
        try:
            return istp.choose(ds, self.order, variables, time)
        except istp.NoEpochError as exc:
            empty = "the file has no records (every variable declares 0); "
            empty = empty if not any(self.records.values()) else ""
            raise self.fail(Reason.NO_TIME, empty + str(exc)) from None

    def read_range(
        self,
        time: str,
        names: Mapping[str, Kind],
        start: np.datetime64,
        stop: np.datetime64,
        max_bytes: int,
    ) -> dict[str, np.ndarray] | None:
        """:func:`.ranges.read_range` of this file (None: decode it whole)."""
        import cdflib

        with self.cdflib_errors(metadata=True):
            cdf = cdflib.CDF(self.path)
            info = cdf.cdf_info()
            have = {*info.rVariables, *info.zVariables}
            missing = [n for n in (time, *names) if n not in have]
            if missing:
                raise self.fail(Reason.VARIABLES_DIFFER, _lacks(missing[0]))
        with self.cdflib_errors():
            return ranges.read_range(
                cdf,
                time=time,
                names=names,
                start=np.datetime64(start, "ns"),
                stop=np.datetime64(stop, "ns"),
                max_bytes=max_bytes,
                fail=self.fail,
            )

    def epoch(self, name: str) -> np.ndarray:
        """The epoch variable ``name`` alone, decoded to ``datetime64[ns]``."""
        import cdflib

        with self.cdflib_errors():
            cdf = cdflib.CDF(self.path)
            raw = cdf.varget(name)
            del cdf
            return np.atleast_1d(cdflib.cdfepoch.to_datetime(np.atleast_1d(raw)))

    @contextlib.contextmanager
    def capped(self) -> Iterator[None]:
        """The file's VDRs declare at most two records meanwhile (to learn the layout)."""
        try:
            offsets = [
                records.max_rec_offset(self.plain, v) for v in records.vdr_offsets(self.plain)
            ]
        except records.CdfRecordError as exc:
            raise _record_failure(self.datakey, exc) from None
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for at in offsets:
                last = int.from_bytes(self.plain[at : at + 4], "big", signed=True)
                os.pwrite(fd, min(last, 1).to_bytes(4, "big", signed=True), at)
            yield
        finally:
            for at in offsets:
                os.pwrite(fd, self.plain[at : at + 4], at)
            os.close(fd)


def _record_failure(datakey: str, exc: records.CdfRecordError) -> FileReadError:
    reason = Reason.TRUNCATED if exc.truncated else Reason.CORRUPT_DATA
    return FileReadError(datakey, reason, str(exc))


def _check(data: bytes, datakey: str, max_bytes: int) -> records.Uncompressed:
    """The bytes as an uncompressed CDF whose records fit them, or the reason why not."""
    if not data:
        raise FileReadError(datakey, Reason.EMPTY_FILE, "0 bytes")
    if records.cdf_version(data) is None:
        raise FileReadError(
            datakey,
            Reason.NOT_CDF,
            f"starts with {bytes(data[:4]).hex()!r}, expected a CDF magic number "
            "('cdf30001' for CDF 3, 'cdf26002' or '0000ffff' for CDF 2)",
        )
    try:
        plain = records.uncompressed(data, max_bytes)
        if plain.compressed and plain.data is data:  # RLE: cdflib inflates it
            return plain
        eof = records.declared_eof(plain.data)
        if eof <= len(plain.data):
            starts = records.record_starts(plain.data)
            vdrs = records.vdr_offsets(plain.data, starts)
            records.check_vxr_trees(plain.data, vdrs, starts)
            records.check_attribute_chains(plain.data, starts)
    except records.CdfRecordError as exc:
        raise _record_failure(datakey, exc) from None
    except OverflowError as exc:
        raise FileReadError(
            datakey,
            Reason.FILE_TOO_LARGE,
            f"compressed CDF: {exc} (max_bytes); raise intake_helio.max-series-bytes to read it",
        ) from None
    if eof > len(plain.data):
        raise FileReadError(
            datakey,
            Reason.TRUNCATED,
            f"the GDR declares {eof} bytes, the file has {len(plain.data)}"
            + (" uncompressed" if plain.compressed else "")
            + "; fetch the whole file again",
        )
    return plain


def _temp_dir(size: int) -> str | None:
    """``/dev/shm`` when it exists and has room for ``size`` bytes twice, else None."""
    try:
        if os.path.isdir(_SHM) and shutil.disk_usage(_SHM).free > 2 * size + (64 << 20):
            return _SHM
    except OSError:
        pass
    return None


@contextlib.contextmanager
def _local(data: bytes, datakey: str, max_bytes: int, declared: bool = True) -> Iterator[_Local]:
    """The checked bytes in a private temporary file (always removed) for cdflib; with
    ``declared``, every variable's declared bytes checked (what ``cdf_to_xarray`` decodes)."""
    plain = _check(data, datakey, max_bytes)
    fd, path = tempfile.mkstemp(
        suffix=".cdf", prefix="intake-helio-", dir=_temp_dir(len(plain.data))
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(plain.data)
        local = _Local(path, plain.data, datakey)
        if declared:
            local.check_declared(max_bytes)
        yield local
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _check_times(datakey: str, name: str, times: np.ndarray) -> None:
    """``bad times`` naming the first fill (NaT) or out-of-order record of the epoch."""
    times = np.asarray(times)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise FileReadError(
            datakey, Reason.BAD_TIMES, f"epoch {name!r} decodes to {times.dtype}, not datetimes"
        )
    fill = np.flatnonzero(np.isnat(times))
    if fill.size:
        raise FileReadError(
            datakey,
            Reason.BAD_TIMES,
            f"epoch {name!r} record {int(fill[0])} is a fill value (FILLVAL or pad: NaT); "
            "every record needs a time",
        )
    back = np.flatnonzero(times[1:] < times[:-1])
    if back.size:
        i = int(back[0]) + 1
        raise FileReadError(
            datakey,
            Reason.BAD_TIMES,
            f"epoch {name!r} is not sorted: record {i} ({times[i]}) is before record "
            f"{i - 1} ({times[i - 1]}); expected non-decreasing times",
        )

"""The records of a CDF inside ``[start, stop)``, for the asked variables only.

What a read task needs of a file it already scanned at opening: the series' record-varying
variables, cut to ``[start, stop)``, as ``cdf_to_xarray(path, to_datetime=True,
fillval_to_nan=True)`` would give them. cdflib reads CDF records by range
(``CDF.varget(name, startrec=, endrec=)``), so nothing else is decoded:

* the epoch's raw values are read whole (8 or 16 bytes a record), but converted to
  ``datetime64[ns]`` (``cdfepoch.to_datetime``, 34 bytes of work a byte) only for a
  sample of them and the kept records (:func:`bounds`);
* each asked variable is read for the kept records only, its ``FILLVAL`` made NaN for
  the float types (cdflib's own rule: ``_convert_fillvals_to_nan``);
* the bytes that reads declare (the epoch's raw values, the kept records of each
  variable) are checked against ``max_bytes`` first.

A variable this path cannot give as ``cdf_to_xarray`` would (text, an epoch-typed data
variable, a record count or shape that is not the series' own) makes :func:`read_range`
return None: the backend then decodes the file whole, as at opening.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..base.backends import TIME, Kind
from ..base.reasons import Reason

__all__ = ["FLOAT_TYPES", "bounds", "read_range"]

#: CDF data types whose ``FILLVAL`` cdflib makes NaN (CDF_REAL4, REAL8, FLOAT, DOUBLE).
FLOAT_TYPES = frozenset({21, 22, 44, 45})
#: Numeric CDF data types read here (integers of 1-8 bytes, unsigned, floats).
NUMERIC_TYPES = frozenset({1, 2, 4, 8, 11, 12, 14, 41, *FLOAT_TYPES})
_EPOCH_TYPES = frozenset({31, 32, 33})


def bounds(
    raw: np.ndarray, start: np.datetime64, stop: np.datetime64, convert: Callable
) -> tuple[int, int]:
    """``(lo, hi)``: the records of the sorted epoch ``raw`` inside ``[start, stop)``.

    ``convert`` (raw values to ``datetime64[ns]``) runs on about ``2 sqrt(n)`` values:
    a sample every ``sqrt(n)`` records, then the one stretch of the sample where each
    bound falls.
    """
    n = len(raw)
    if n == 0:
        return 0, 0
    step = max(1, int(np.sqrt(n)))
    at = np.arange(0, n, step)
    if at[-1] != n - 1:
        at = np.append(at, n - 1)
    sample = np.asarray(convert(raw[at]), dtype="datetime64[ns]")

    def first_at_or_after(t: np.datetime64) -> int:
        j = int(np.searchsorted(sample, t, side="left"))
        if j == 0:
            return 0
        if j == len(at):
            return n
        a, b = int(at[j - 1]) + 1, int(at[j])  # the answer is in (at[j-1], at[j]]
        block = np.asarray(convert(raw[a:b]), dtype="datetime64[ns]")
        return a + int(np.searchsorted(block, t, side="left"))

    lo = first_at_or_after(start)
    return lo, max(lo, first_at_or_after(stop))


def _fillval(cdf: Any, name: str) -> Any:
    """The variable's ``FILLVAL`` attribute, or None."""
    try:
        return cdf.attget("FILLVAL", name).Data
    except Exception:  # cdflib raises a bare error for an attribute a variable lacks
        return None


def read_range(
    cdf: Any,
    *,
    time: str,
    names: Mapping[str, Kind],
    start: np.datetime64,
    stop: np.datetime64,
    max_bytes: int,
    fail: Callable[[Reason, str], Exception],
) -> dict[str, np.ndarray] | None:
    """The records in ``[start, stop)`` of ``time`` and of each of ``names``, time first.

    Parameters
    ----------
    cdf : cdflib.CDF
        The open file (already checked: :mod:`.records`).
    time : str
        The file's epoch put along ``time``.
    names : mapping of str to Kind
        The record-varying variables to give, each with its dtype and non-time sizes in
        the series.
    start, stop : numpy.datetime64
        The half-open range kept.
    max_bytes : int
        The most bytes the reads may declare.
    fail : callable
        ``fail(reason, detail)``: the error to raise for this file.

    Returns
    -------
    dict or None
        ``{"time": datetime64[ns] records, name: records, ...}``; None when a variable
        needs the whole-file decode.
    """
    from cdflib import cdfepoch

    def convert(raw: np.ndarray) -> np.ndarray:
        return np.atleast_1d(cdfepoch.to_datetime(np.atleast_1d(raw)))

    tinfo = cdf.varinq(time)
    if tinfo.Data_Type not in _EPOCH_TYPES or not tinfo.Rec_Vary:
        return None
    n_all = tinfo.Last_Rec + 1
    declared = n_all * (16 if tinfo.Data_Type == 32 else 8)
    infos = {}
    for name in names:
        vi = cdf.varinq(name)
        if vi.Data_Type not in NUMERIC_TYPES or not vi.Rec_Vary or vi.Last_Rec + 1 != n_all:
            return None
        infos[name] = vi
    if declared > max_bytes:
        raise fail(
            Reason.FILE_TOO_LARGE,
            f"epoch {time!r} declares {n_all} records ({declared} bytes), over "
            f"max_bytes={max_bytes}; raise intake_helio.max-series-bytes to read it",
        )
    raw = np.atleast_1d(np.asarray(cdf.varget(time))).reshape(-1)
    if len(raw) != n_all:
        return None
    lo, hi = bounds(raw, start, stop, convert)
    n = hi - lo
    total = 0
    for name, vi in infos.items():
        size = cdf._type_size(vi.Data_Type, vi.Num_Elements)
        total += n * int(np.prod(names[name][1] or (1,), dtype=object)) * max(size, 1)
    if total > max_bytes:
        raise fail(
            Reason.FILE_TOO_LARGE,
            f"the {n} records in range of {', '.join(names)} declare {total} bytes, over "
            f"max_bytes={max_bytes}; raise intake_helio.max-series-bytes to read it",
        )
    out = {TIME: convert(raw[lo:hi]) if n else np.array([], "datetime64[ns]")}
    for name, vi in infos.items():
        dtype, sizes = np.dtype(names[name][0]), tuple(names[name][1])
        if n == 0:
            out[name] = np.zeros((0, *sizes), dtype)
            continue
        values = np.array(cdf.varget(name, startrec=lo, endrec=hi - 1))
        if values.dtype != dtype or values.size != n * int(np.prod(sizes, dtype=np.int64)):
            return None
        values = values.reshape((n, *sizes))
        fill = _fillval(cdf, name) if vi.Data_Type in FLOAT_TYPES else None
        if fill is not None:
            values[values == fill] = np.nan
        out[name] = values
    return out

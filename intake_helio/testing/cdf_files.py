"""CDF files for tests, benchmarks and the demo, written with cdflib's writer, as bytes.

:func:`magnetometer_cdf` writes an ISTP-like magnetometer file (a TT2000 ``Epoch``, a
``B_GSE`` vector with its label variable, a scalar ``B_mag``, optionally a second epoch
``Epoch_state`` with ``pos_gse``) whose field is a caller's function of time, and options
for bad files (unsorted or fill epochs, no ``DEPEND_0``). :func:`declare_records` and
:func:`truncated` make hostile files from good ones: cdflib's writer cannot declare more
records than it writes, so :func:`declare_records` patches the ``MaxRec`` field of a VDR
in the bytes (the 4-byte last record number; 2**31 - 1 at most).
Output is deterministic: the same arguments give the same bytes (the gzip header's
modification time of a compressed file is zeroed).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..cdf import records

__all__ = [
    "B_FILL",
    "TT2000_FILL",
    "declare_records",
    "default_signal",
    "epoch_times",
    "magnetometer_cdf",
    "truncated",
]

#: ``FILLVAL`` of ``B_GSE`` and ``B_mag`` (the ISTP fill for CDF_REAL4).
B_FILL = np.float32(-1e31)
#: ``FILLVAL`` of a TT2000 epoch (ISTP).
TT2000_FILL = np.int64(-9223372036854775808)

_TT2000, _REAL4, _REAL8, _CHAR = 33, 21, 22, 51


def default_signal(t: np.ndarray) -> np.ndarray:
    """A field of ``(N, 3)`` nT: slow sines of the seconds since 2000 (any smooth signal)."""
    s = (t - np.datetime64("2000-01-01", "ns")) / np.timedelta64(1, "s")
    return np.stack([5 * np.sin(s / 600), 3 * np.cos(s / 900), np.full_like(s, -2.0)], axis=1)


def epoch_times(start: Any, stop: Any, cadence: Any) -> np.ndarray:
    """The record times ``[start, stop)`` every ``cadence`` (``datetime64[ns]``)."""
    index = pd.date_range(pd.Timestamp(start), pd.Timestamp(stop), freq=pd.Timedelta(cadence))
    return index[index < pd.Timestamp(stop)].values.astype("datetime64[ns]")


def _tt2000(t: np.ndarray) -> np.ndarray:
    import cdflib

    if not len(t):
        return np.zeros(0, np.int64)
    return np.asarray(cdflib.cdfepoch.timestamp_to_tt2000(t.astype("int64") / 1e9), np.int64)


def magnetometer_cdf(
    start: Any,
    stop: Any,
    cadence: Any = "1s",
    *,
    signal: Callable[[np.ndarray], np.ndarray] = default_signal,
    state_cadence: Any = None,
    epochs: Literal["good", "unsorted", "fill"] = "good",
    depend_0: bool = True,
    fill_records: tuple[int, ...] = (),
    compress: bool = False,
    precision: Literal[4, 8] = 4,
) -> bytes:
    """An ISTP-like magnetometer CDF from ``start`` to ``stop``, as bytes.

    Parameters
    ----------
    start, stop : datetime-like
        The records are ``[start, stop)`` every ``cadence``.
    cadence : timedelta-like
        The spacing of the ``Epoch`` records.
    signal : callable
        ``signal(times)`` of the ``datetime64[ns]`` record times: ``(N, 3)`` (or ``(N,)``,
        broadcast to the three components) nT, written as ``B_GSE`` (float32);
        ``B_mag`` is its norm.
    state_cadence : timedelta-like, optional
        Also a second epoch ``Epoch_state`` at this cadence with ``pos_gse`` (km, float64).
    epochs : {"good", "unsorted", "fill"}
        ``"unsorted"`` swaps records 1 and 2 of ``Epoch``; ``"fill"`` writes the TT2000
        ``FILLVAL`` at record 1 (at least three records are needed).
    depend_0 : bool
        False: no variable has a ``DEPEND_0`` and ``Epoch`` is not record-varying (a file
        with no epoch to put along time).
    fill_records : tuple of int
        Records whose ``B_GSE`` and ``B_mag`` are ``FILLVAL``.
    compress : bool
        Compress the whole file (gzip, cdflib's ``Compressed``).
    precision : {4, 8}
        Bytes of each ``B_GSE`` and ``B_mag`` value (CDF_REAL4, float32; or CDF_REAL8,
        float64: a file whose layout is not the others').

    Returns
    -------
    bytes
    """
    import cdflib.cdfwrite

    times = epoch_times(start, stop, cadence)
    epoch = _tt2000(times)
    if epochs != "good":
        if len(epoch) < 3:
            raise ValueError("unsorted or fill epochs need at least three records")
        epoch = epoch.copy()
        if epochs == "unsorted":
            epoch[[1, 2]] = epoch[[2, 1]]
        else:
            epoch[1] = TT2000_FILL
    b = np.broadcast_to(
        np.asarray(signal(times), np.float64).reshape(len(times), -1), (len(times), 3)
    ).astype(np.float32 if precision == 4 else np.float64)
    b_mag = np.sqrt((b.astype(np.float64) ** 2).sum(axis=1)).astype(b.dtype)
    b_type = _REAL4 if precision == 4 else _REAL8
    b[list(fill_records)] = B_FILL
    b_mag[list(fill_records)] = B_FILL

    def spec(name: str, dtype: int, dims: list[int], rec_vary: bool = True, n: int = 1):
        return {
            "Variable": name,
            "Data_Type": dtype,
            "Num_Elements": n,
            "Rec_Vary": rec_vary,
            "Dim_Sizes": dims,
            "Compress": 0,
        }

    dep = {"DEPEND_0": "Epoch"} if depend_0 else {}
    fd, name = tempfile.mkstemp(suffix=".cdf")
    os.close(fd)
    os.unlink(name)  # cdflib's writer refuses an existing file
    path = Path(name)
    try:
        cdf = cdflib.cdfwrite.CDF(path, cdf_spec={"Compressed": 6 if compress else 0})
        cdf.write_globalattrs(
            {"Project": {0: "intake-helio test"}, "Source_name": {0: "MAG>magnetometer"}}
        )
        epoch_atts = {
            "FIELDNAM": "Epoch",
            "UNITS": "ns",
            "VAR_TYPE": "support_data",
            "FILLVAL": [TT2000_FILL, "CDF_TIME_TT2000"],
        }
        cdf.write_var(spec("Epoch", _TT2000, [], rec_vary=depend_0), epoch_atts, epoch)
        cdf.write_var(
            spec("label_B_GSE", _CHAR, [3], rec_vary=False, n=4),
            {"FIELDNAM": "label_B_GSE", "VAR_TYPE": "metadata"},
            ["Bx  ", "By  ", "Bz  "],
        )
        cdf.write_var(
            spec("B_comp", _REAL4, [3], rec_vary=False),
            {"FIELDNAM": "B_comp", "VAR_TYPE": "support_data"},
            np.arange(3, dtype=np.float32),
        )
        b_atts = {
            **dep,
            "FIELDNAM": "B_GSE",
            "UNITS": "nT",
            "VAR_TYPE": "data",
            "DEPEND_1": "B_comp",
            "LABL_PTR_1": "label_B_GSE",
            "FILLVAL": [B_FILL, "CDF_REAL4" if precision == 4 else "CDF_REAL8"],
        }
        cdf.write_var(spec("B_GSE", b_type, [3]), b_atts, b)
        mag_atts = {**dep, "FIELDNAM": "B_mag", "UNITS": "nT", "VAR_TYPE": "data"}
        mag_atts["FILLVAL"] = b_atts["FILLVAL"]
        cdf.write_var(spec("B_mag", b_type, []), mag_atts, b_mag)
        if state_cadence is not None:
            state_times = epoch_times(start, stop, state_cadence)
            state = {**epoch_atts, "FIELDNAM": "Epoch_state"}
            cdf.write_var(spec("Epoch_state", _TT2000, []), state, _tt2000(state_times))
            s = (state_times - state_times[:1]) / np.timedelta64(1, "s")
            pos = np.stack([7e4 + s, -1e4 + 0.5 * s, 3e3 + 0 * s], axis=1)
            pos_atts = {"DEPEND_0": "Epoch_state", "FIELDNAM": "pos_gse", "UNITS": "km"}
            cdf.write_var(spec("pos_gse", _REAL8, [3]), pos_atts, pos)
        cdf.close()
        data = bytearray(path.read_bytes())
    finally:
        path.unlink(missing_ok=True)
    if compress and data[40:42] == b"\x1f\x8b":  # the gzip stream after the CCR
        data[44:48] = bytes(4)  # its header's modification time
    return bytes(data)


def declare_records(data: bytes, variable: int, last_rec: int) -> bytes:
    """``data`` with VDR number ``variable`` (file order) declaring ``last_rec`` (0-based).

    Patches the VDR's 4-byte ``MaxRec`` field (``last_rec`` up to 2**31 - 1); the records
    written stay as they were, so the file declares far more than it holds.
    """
    out = bytearray(data)
    at = records.max_rec_offset(out, records.vdr_offsets(out)[variable])
    out[at : at + 4] = int(last_rec).to_bytes(4, "big", signed=True)
    return bytes(out)


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    """The first ``fraction`` of ``data`` (a file cut in the middle)."""
    return data[: int(len(data) * fraction)]

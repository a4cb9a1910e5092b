"""The checks of one index file's columns: times, filesizes, and each bad row's reason.

Messages give the size of a bad value, never the value (a time made only of ISO 8601
characters excepted): index content is third-party text.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..base.reasons import Reason
from ..base.sizes import MAX_FILESIZE

__all__ = ["filesizes", "row_reason", "size_of", "to_utc"]

_TIME_CHARS = re.compile(r"[0-9T:.\-+Z ]{1,40}")


def size_of(value: Any) -> str:
    """A value described by its size (never shown itself)."""
    return f"a {len(str(value).encode('utf-8', 'replace'))}-byte value"


def filesizes(raw: pd.DataFrame, as_str) -> tuple[Any, np.ndarray, np.ndarray]:
    """(raw values, int64 sizes with 0 where bad, bad mask) of the filesize column."""
    n = len(raw)
    if "filesize" not in raw.columns:
        return None, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    if pd.api.types.is_integer_dtype(raw["filesize"]) and not pd.api.types.is_bool_dtype(
        raw["filesize"]
    ):
        fs_raw = raw["filesize"]
        values = fs_raw.to_numpy()
    else:
        fs_raw = as_str("filesize")
        values = pd.to_numeric(fs_raw.astype(str), errors="coerce").to_numpy()
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = (
                ~np.isfinite(values)
                | (values < 0)
                | (values != np.floor(values))
                | (values > MAX_FILESIZE)
            )
    elif values.dtype.kind in "iu":
        bad = (values < 0) | (values > MAX_FILESIZE)
    else:  # pragma: no cover - to_numeric gives numbers
        bad = np.ones(n, dtype=bool)
    sizes = np.where(bad, 0, values).astype(np.int64)
    return fs_raw, sizes, np.asarray(bad, dtype=bool)


def to_utc(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(naive-UTC datetime64[ns] with NaT where bad, mask of times outside the ns range)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        t = pd.to_datetime(s, utc=True)
    else:
        t = pd.to_datetime(s.astype(str), format="ISO8601", utc=True, errors="coerce")
    t = t.dt.tz_localize(None)
    out_of_range = np.zeros(len(t), dtype=bool)
    if t.dtype != "datetime64[ns]":
        lo, hi = pd.Timestamp.min.ceil("us"), pd.Timestamp.max.floor("us")
        out_of_range = np.array(t.notna() & ((t < lo) | (t > hi)), dtype=bool)
        if out_of_range.any():
            t = t.where(~out_of_range)
        t = t.astype("datetime64[ns]")
    return t, out_of_range


def _time_reason(name: str, raw: Any, out_of_range: bool) -> str:
    text = str(raw)
    value = f"{text!r}, " if _TIME_CHARS.fullmatch(text) else ""
    if out_of_range:
        return (
            f"{name} ({value}{size_of(text)}) is outside 1677-09-22 to 2262-04-11, the times a "
            "nanosecond timestamp can hold"
        )
    return f"{name} ({value}{size_of(text)}) is not an ISO 8601 time such as 2020-01-01T00:00:00Z"


def row_reason(pos, start3, stop3, datakey, fs_raw, filesize, policy, path) -> str:
    start_raw, start, start_oor = start3
    stop_raw, stop, stop_oor = stop3
    if pd.isna(start.iloc[pos]):
        return _time_reason("start", start_raw.iloc[pos], bool(start_oor[pos]))
    if pd.isna(stop.iloc[pos]):
        return _time_reason("stop", stop_raw.iloc[pos], bool(stop_oor[pos]))
    if stop.iloc[pos] < start.iloc[pos]:
        return (
            f"stop ({stop.iloc[pos].isoformat()}Z) is before start "
            f"({start.iloc[pos].isoformat()}Z); expected stop >= start"
        )
    key = datakey.iloc[pos]
    if not key:
        return "datakey is missing"
    why = policy.refusal(key, path)
    if why is not None:
        return f"{Reason.URL_NOT_ALLOWED}: datakey {why}"
    raw = fs_raw.iloc[pos]
    value = pd.to_numeric(pd.Series([str(raw)]), errors="coerce").iloc[0]
    if pd.isna(value):
        problem = "is not a number"
    elif not np.isfinite(value):
        problem = "is not finite"
    elif value < 0:
        problem = "is negative"
    elif value != np.floor(value):
        problem = "is not a whole number"
    else:
        problem = "is larger than 2**53"
    return f"filesize ({size_of(raw)}) {problem}; expected a whole number of bytes from 0 to 2**53"

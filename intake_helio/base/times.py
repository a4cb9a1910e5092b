"""Time parsing: every accepted time becomes a naive UTC ``pandas.Timestamp``."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from ..base.errors import TimeRangeError

__all__ = ["TimeLike", "parse_range", "parse_time"]

TimeLike = str | _dt.datetime | _dt.date | np.datetime64 | pd.Timestamp


def parse_time(value: Any, name: str = "time") -> pd.Timestamp:
    """Parse a time into a naive UTC timestamp.

    Parameters
    ----------
    value : str, datetime, date, numpy.datetime64 or pandas.Timestamp
        ISO 8601 strings may be truncated (``"2020-01-01"``, ``"2017-01-15T23:00Z"``),
        with or without ``Z`` or a UTC offset. Timezone-aware values are converted to UTC.
    name : str
        What the value is (``"start"``, ``"stop"``), used in error messages.

    Raises
    ------
    TimeRangeError
        The value cannot be parsed as a time.
    """
    if isinstance(value, pd.Timestamp | _dt.datetime | np.datetime64 | _dt.date):
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError) as exc:  # pragma: no cover - defensive
            raise TimeRangeError(f"{name}={value!r} is not a valid time") from exc
    elif isinstance(value, str):
        text = value.strip()
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError) as exc:
            raise TimeRangeError(
                f"{name}={value!r} is not a time; expected ISO 8601 such as "
                "'2020-01-01', '2020-01-01T12:00' or '2020-01-01T12:00:00.000Z'"
            ) from exc
    else:
        raise TimeRangeError(
            f"{name}={value!r} has type {type(value).__name__}; expected a string, "
            "datetime, numpy.datetime64 or pandas.Timestamp"
        )
    if ts is pd.NaT or pd.isna(ts):
        raise TimeRangeError(f"{name}={value!r} is not a time (NaT)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    try:
        return ts.as_unit("ns")
    except (OverflowError, ValueError) as exc:  # pandas' OutOfBoundsDatetime
        raise TimeRangeError(
            f"{name}={value!r} is outside the supported time range "
            f"({pd.Timestamp.min:%Y-%m-%d} to {pd.Timestamp.max:%Y-%m-%d})"
        ) from exc


def parse_range(
    start: Any = None, stop: Any = None, *, allow_open: bool = True
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Parse ``start``/``stop`` and check that ``start < stop`` when both are given."""
    t0 = None if start is None else parse_time(start, "start")
    t1 = None if stop is None else parse_time(stop, "stop")
    if not allow_open and (t0 is None or t1 is None):
        raise TimeRangeError("both start and stop are required")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise TimeRangeError(
            f"start={t0.isoformat()} is not before stop={t1.isoformat()}; "
            "the range is half-open [start, stop): swap them or widen the range"
        )
    return t0, t1

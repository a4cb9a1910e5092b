"""The one rule for an index's ``filesize``: a known size or unknown, nothing in between.

An index row's ``filesize`` bounds every read of its file (plus
``intake_helio.filesize-slack``). It is *known* when it is a whole number of bytes from 1 to
:data:`MAX_FILESIZE` (2**53, the largest integer a float holds exactly); anything else
(missing, 0, negative, not a number, a bool, too large) is *unknown* and the read is bounded
by ``intake_helio.max-file-bytes`` alone. The catalog reports rows whose value is not a
valid size as bad rows; everything after the catalog applies this rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_FILESIZE", "file_limit", "known_size", "known_sizes"]

#: The largest filesize accepted (bytes).
MAX_FILESIZE = 2**53


def known_size(value: Any) -> int | None:
    """``value`` as a known file size in bytes, or None when it is unknown.

    Parameters
    ----------
    value : Any
        An index's ``filesize`` (int, float, str, None, ...).

    Returns
    -------
    int or None
        A whole number from 1 to :data:`MAX_FILESIZE`; None otherwise.
    """
    if value is None or isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, float | np.floating):
        if not np.isfinite(value) or value != int(value):
            return None
        value = int(value)
    try:
        size = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return size if 0 < size <= MAX_FILESIZE else None


def known_sizes(values: Any) -> np.ndarray:
    """:func:`known_size` of many values at once: an int64 array, 0 where unknown.

    Parameters
    ----------
    values : array-like
        A ``filesize`` column.

    Returns
    -------
    numpy.ndarray
        int64 sizes, 0 for every value that is not a known size.
    """
    s = values if isinstance(values, pd.Series) else pd.Series(list(values))
    if pd.api.types.is_bool_dtype(s):
        return np.zeros(len(s), dtype=np.int64)
    if pd.api.types.is_integer_dtype(s) and not s.isna().any():
        ints = s.to_numpy(dtype=np.int64)
        return np.where((ints > 0) & (ints <= MAX_FILESIZE), ints, 0)
    if pd.api.types.is_float_dtype(s):
        f = s.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(f) & (f > 0) & (f <= MAX_FILESIZE) & (f == np.floor(f))
        out = np.zeros(len(f), dtype=np.int64)
        out[ok] = f[ok].astype(np.int64)
        return out
    return np.fromiter((known_size(v) or 0 for v in s), dtype=np.int64, count=len(s))


def file_limit(settings: Any, filesize: Any = None) -> int:
    """The most bytes of one file any read takes (a frame's or a series file's).

    ``filesize + intake_helio.filesize-slack`` when the index gives the file's size
    (:func:`known_size`), never more than ``intake_helio.max-file-bytes``.

    Parameters
    ----------
    settings : Settings
        The limits (``max_file_bytes``, ``filesize_slack``).
    filesize : Any
        The index's ``filesize`` of the file.
    """
    size = known_size(filesize)
    cap = settings.max_file_bytes
    return cap if size is None else min(cap, size + settings.filesize_slack)

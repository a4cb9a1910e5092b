"""The science of one frame: the built-in statistics and the user's functions.

:data:`BUILTINS` (and the percentiles ``p<q>``, :func:`is_builtin`) are the statistics the
engine knows by name; :func:`apply_funcs` computes them and the user's functions
``f(data, header)`` on one frame's float32 data and its header cards, giving the values by
output name or the frame's reason (``"function error: ..."``). A reader calls it on each
frame it has read (:mod:`intake_helio.frames.reader`); the FITS reader computes the
streamed statistics on the raw pixels instead (:func:`~intake_helio.fits.stats.frame_stats`).
The disk statistics place the pixels on the frame's solar disk from its own header
(:func:`disk_pixels`).
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..base.reasons import Reason
from ..fits.disk import DiskGeometryError, disk_intervals, intervals_mask
from ..fits.stats import DISK_STATISTICS

__all__ = [
    "BUILTINS",
    "DISK_STATISTICS",
    "ItemResult",
    "apply_funcs",
    "disk_error",
    "disk_pixels",
    "is_builtin",
    "long_name",
    "percentile_of",
]

#: Statistics the engine computes itself (``func="mean"`` etc.), from one read per frame.
#: ``disk_mean``, ``disk_sum`` and ``offdisk_mean`` use the valid pixels on (off) the solar
#: disk of each frame's own header (:func:`~intake_helio.fits.disk.disk_intervals`).
#: ``median`` and the percentiles ``p<q>`` (``p99``, ``p99.9``, ``p5``: 0 <= q <= 100, the
#: valid pixels' ``numpy.percentile`` with linear interpolation) are built in too
#: (:func:`is_builtin`).
BUILTINS: tuple[str, ...] = (
    "mean",
    "sum",
    "min",
    "max",
    "std",
    "count",
    "median",
    *DISK_STATISTICS,
)
_PERCENTILE = re.compile(r"p(\d{1,3}(?:\.\d{1,6})?)")


def percentile_of(name: str) -> float | None:
    """The ``q`` of a percentile statistic ``"p<q>"`` (0 <= q <= 100), else None."""
    match = _PERCENTILE.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        return None
    q = float(match.group(1))
    return q if 0 <= q <= 100 else None


def is_builtin(name: Any) -> bool:
    """Whether ``name`` is a built-in statistic: one of :data:`BUILTINS` or ``"p<q>"``."""
    return isinstance(name, str) and (name in BUILTINS or percentile_of(name) is not None)


#: ``long_name`` of each built-in statistic's output (percentiles: :func:`long_name`).
_LONG_NAMES = {
    "mean": "mean of the frame's valid pixels",
    "sum": "sum of the frame's valid pixels",
    "min": "minimum of the frame's valid pixels",
    "max": "maximum of the frame's valid pixels",
    "std": "standard deviation (population) of the frame's valid pixels",
    "count": "number of valid (non-BLANK) pixels",
    "median": "median of the frame's valid pixels",
    "disk_mean": "mean of the frame's valid pixels on the solar disk",
    "disk_sum": "sum of the frame's valid pixels on the solar disk",
    "offdisk_mean": "mean of the frame's valid pixels off the solar disk",
}


def long_name(name: str) -> str:
    """The ``long_name`` of built-in statistic ``name``'s output (see :func:`is_builtin`)."""
    q = percentile_of(name)
    return _LONG_NAMES.get(name) or f"{q:g}th percentile of the frame's valid pixels"


#: One item's outcome: its values by output name (empty when it has none) and its status
#: (``"ok"`` or the reason).
ItemResult = tuple[dict[str, Any], str]


class _Header(Mapping):
    """A read-only view of a frame's header cards (``header["EXPTIME"]``)."""

    __slots__ = ("_cards",)

    def __init__(self, cards: Mapping[str, Any]):
        self._cards = types.MappingProxyType(dict(cards))

    def __getitem__(self, key: str) -> Any:
        return self._cards[key.upper() if isinstance(key, str) else key]

    def __iter__(self):
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def __repr__(self) -> str:
        return f"<header: {len(self._cards)} cards>"


def disk_pixels(
    header: Mapping[str, Any],
    rows: slice,
    cols: slice,
    pick_rows: np.ndarray | None = None,
    pick_cols: np.ndarray | None = None,
) -> np.ndarray:
    """Which pixels of a window (and of a pick inside it) lie on the frame's solar disk.

    Parameters
    ----------
    header : mapping
        The frame's own image header.
    rows, cols : slice
        The window read (0-based pixel indices of the frame).
    pick_rows, pick_cols : numpy.ndarray, optional
        Indices inside the window, as the array's data is indexed
        (``data[pick_rows][:, pick_cols]``).

    Returns
    -------
    numpy.ndarray
        A boolean mask of the data's shape.

    Raises
    ------
    DiskGeometryError
        When the header does not give the solar disk.
    """
    lo, hi = disk_intervals(header, rows, cols)
    if pick_rows is not None:
        lo, hi = lo[pick_rows], hi[pick_rows]
    if pick_cols is None:
        return intervals_mask(lo, hi, cols.stop - cols.start)
    c = np.asarray(pick_cols)[None, :]
    return (c >= lo[:, None]) & (c < hi[:, None])


def disk_error(name: str, exc: BaseException) -> str:
    """The status of a frame whose disk statistic ``name`` failed (header text not quoted)."""
    if isinstance(exc, DiskGeometryError):
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
    else:
        text = "the frame's header gives no usable solar disk"
    return f"{Reason.FUNCTION_ERROR}: {name} raised {type(exc).__name__}: {text}"


def _builtin(name: str, data: np.ndarray, disk: Callable[[], np.ndarray] | None = None) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "count":
            return int(np.count_nonzero(~np.isnan(data)))
        if name in DISK_STATISTICS:
            if disk is None:
                raise DiskGeometryError(f"{name} needs the frame's header and pixel window")
            on = disk()
            select = (on if name != "offdisk_mean" else ~on) & ~np.isnan(data)
            valid = data[select]
            if valid.size == 0:
                return math.nan
            if name == "disk_sum":
                return float(valid.sum(dtype=np.float64))
            return float(valid.mean(dtype=np.float64))
        valid = data[~np.isnan(data)]
        if valid.size == 0:
            return math.nan
        if name == "mean":
            return float(valid.mean(dtype=np.float64))
        if name == "sum":
            return float(valid.sum(dtype=np.float64))
        if name == "min":
            return float(valid.min())
        if name == "max":
            return float(valid.max())
        if name == "std":
            return float(valid.std(dtype=np.float64))
        if name == "median":
            return float(np.median(valid))
        q = percentile_of(name)
        if q is not None:
            return float(np.percentile(valid, q))
    raise ValueError(f"unknown statistic {name!r}; expected one of {list(BUILTINS)} or p<q>")


def _as_value(value: Any) -> Any:
    """A function's return value as a float or a float64 array, or raise TypeError."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.astype(np.float64, copy=False) if value.ndim else float(value)
    raise TypeError(
        f"returned {type(value).__name__}; expected a number, a numeric numpy array or a "
        "dict of those"
    )


def apply_funcs(
    funcs: Sequence[tuple[str, str | Callable]],
    data: np.ndarray,
    header: Mapping[str, Any],
    names: Sequence[str] | None = None,
    disk: Callable[[], np.ndarray] | None = None,
) -> tuple[dict[str, Any], str]:
    """Apply each function to one frame: ``(values by output name, status)``.

    A function that raises, or returns something other than a number, a numeric array or
    a dict of those, makes the frame's status ``"function error: <Type>: <message>"``.
    ``disk`` gives the on-disk mask of ``data``'s pixels for the disk statistics (called
    at most once); when it raises ``DiskGeometryError`` (or is None) the frame's status is
    ``"function error: disk_mean raised DiskGeometryError: ..."``.
    """
    out: dict[str, Any] = {}
    view = _Header(header)
    mask: list[np.ndarray] = []

    def on_disk() -> np.ndarray:
        if not mask:
            if disk is None:
                raise DiskGeometryError("the disk statistics need the frame's header and window")
            mask.append(disk())
        return mask[0]

    for name, func in funcs:
        if isinstance(func, str):
            try:
                out[name] = _builtin(func, data, on_disk)
            except Exception as exc:  # only the disk statistics can raise (the header's WCS)
                return {}, disk_error(name, exc)
            continue
        try:
            value = func(data, view)
            if isinstance(value, Mapping):
                for key, v in value.items():
                    out[str(key)] = _as_value(v)
            else:
                out[name] = _as_value(value)
        except Exception as exc:
            label = getattr(func, "__name__", name)
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            return {}, f"{Reason.FUNCTION_ERROR}: {label} raised {type(exc).__name__}: {text}"
    if names is not None and set(out) != set(names):
        return {}, (
            f"{Reason.FUNCTION_ERROR}: outputs {sorted(out)} differ from the other frames' "
            f"{sorted(names)}"
        )
    return out, str(Reason.OK)

"""Built-in statistics of one frame, computed on the raw pixels while they are decoded.

:func:`frame_stats` gives any of ``mean``, ``sum``, ``min``, ``max``, ``std`` (population)
and ``count`` (valid pixels) from one read, band by band, with no float copy of the frame:
integer pixels are summed exactly as integers (BLANK excluded), ``min``/``max`` use
masked reductions, ``std`` exact integer sums of squares (float64 with a pivot for float
images); BSCALE, BZERO and EXPTIME are applied to the results. Values equal numpy's
nan-functions on astropy's float32 data to float32 precision.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..base.settings import Settings, current
from .frame import _check_args, _check_shape, _guarded, _open_image
from .pixels import _int_sum, _MaskBuffer, _Pixels, _pixels, _sub

__all__ = ["STATISTICS", "frame_stats"]

#: What :func:`frame_stats` computes.
STATISTICS: tuple[str, ...] = ("mean", "sum", "min", "max", "std", "count")


class _Acc:
    """Running sums over bands: exact integers for integer pixels, float64 otherwise."""

    def __init__(self, want_minmax: bool, want_sq: bool):
        self.minmax, self.sq = want_minmax, want_sq
        self.s_int = 0
        self.ss_int = 0
        self.s_f = 0.0
        self.ss_f = 0.0
        self.pivot: float | None = None
        self.ipivot: int | None = None
        self.n = 0
        self.lo: float | None = None
        self.hi: float | None = None
        self.mask = _MaskBuffer()

    def _extremes(self, lo, hi) -> None:
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)

    def add_int(self, sub: np.ndarray, blank: int | None) -> None:
        n = sub.size
        s = _int_sum(sub)
        bad = None
        if blank is not None:
            bad = self.mask.equal(sub, blank)
            nb = int(np.count_nonzero(bad))
            s -= blank * nb
            n -= nb
        self.s_int += s
        self.n += n
        if n == 0:
            return
        if self.minmax:
            self._extremes(*_int_extremes(sub, bad, blank, n))
        if self.sq:
            # squares about a pivot (the first valid value), as float64 dot products (BLAS):
            # integers below 2**53 add up exactly, so 16-bit bands give exact sums
            if self.ipivot is None:
                first = np.flatnonzero(~bad)[0] if bad is not None else 0
                self.ipivot = int(sub.ravel()[first])
            d = sub.ravel().astype(np.float64)
            d -= self.ipivot
            ss = float(np.dot(d, d))
            if bad is not None:
                ss -= float(blank - self.ipivot) ** 2 * (sub.size - n)
            self.ss_f += ss

    def add_float(self, sub: np.ndarray) -> None:
        finite = ~np.isnan(sub)
        n = int(np.count_nonzero(finite))
        self.n += n
        if n == 0:
            return
        vals = sub[finite] if n != sub.size else sub.ravel()
        vals = vals.astype(np.float64, copy=False)
        if self.minmax:
            self._extremes(float(vals.min()), float(vals.max()))
        if self.pivot is None:
            self.pivot = float(vals[0])
        d = vals - self.pivot
        self.s_f += float(d.sum())
        if self.sq:
            self.ss_f += float(np.dot(d, d))


def _int_extremes(sub: np.ndarray, bad, blank: int | None, n: int) -> tuple[int, int]:
    """Min and max of the valid pixels of an integer band (``n`` of them, > 0)."""
    if bad is None or n == sub.size:
        return int(sub.min()), int(sub.max())
    info = np.iinfo(sub.dtype)
    if blank == info.min:  # AIA's BLANK: below every valid value
        # minus one wraps BLANK to the top of the range, every other value stays below it
        return int(np.subtract(sub, 1, dtype=sub.dtype).min()) + 1, int(sub.max())
    if blank == info.max:
        return int(sub.min()), int(np.add(sub, 1, dtype=sub.dtype).max()) - 1
    good = ~bad
    lo = np.minimum.reduce(sub, axis=None, where=good, initial=info.max)
    hi = np.maximum.reduce(sub, axis=None, where=good, initial=info.min)
    return int(lo), int(hi)


def _accumulate(pix: _Pixels, want: set[str]) -> _Acc:
    acc = _Acc(bool(want & {"min", "max"}), "std" in want)
    for by0, bx0, band in pix.bands:
        sub, _ = _sub(pix, by0, bx0, band)
        if sub.dtype.kind in "iu":
            acc.add_int(sub, pix.blank)
        else:
            acc.add_float(sub)
    return acc


def _finish(acc: _Acc, pix: _Pixels, exptime: float | None, want: set[str]) -> dict[str, Any]:
    n = acc.n
    out: dict[str, Any] = {"count": n}
    scale = 1.0 if exptime is None else 1.0 / exptime
    if n == 0:
        out.update({k: math.nan for k in want if k != "count"})
        return out
    bscale, bzero = pix.bscale, pix.bzero
    if acc.pivot is None:  # integer pixels: exact raw sums
        raw_sum = float(acc.s_int)
        raw_mean = acc.s_int / n
        raw_var = 0.0
        if acc.sq:
            sd = acc.s_int - acc.ipivot * n  # sum of (x - pivot), exact
            ssd = acc.ss_int + acc.ss_f  # sum of (x - pivot)**2
            raw_var = max(ssd / n - (sd / n) ** 2, 0.0)
    else:
        raw_sum = acc.pivot * n + acc.s_f
        raw_mean = acc.pivot + acc.s_f / n
        raw_var = max(acc.ss_f / n - (acc.s_f / n) ** 2, 0.0) if acc.sq else 0.0
    if "sum" in want:
        out["sum"] = (bscale * raw_sum + bzero * n) * scale
    if "mean" in want:
        out["mean"] = (bscale * raw_mean + bzero) * scale
    if "std" in want:
        out["std"] = abs(bscale) * math.sqrt(raw_var) * abs(scale)
    if want & {"min", "max"}:
        ends = sorted(((bscale * acc.lo + bzero) * scale, (bscale * acc.hi + bzero) * scale))
        out["min"], out["max"] = ends
    return out


def frame_stats(
    fs,
    path: str,
    stats: Sequence[str],
    hdu: int | str = "auto",
    rows: slice | None = None,
    cols: slice | None = None,
    units: str = "DN",
    expect_shape: tuple[int, int] | None = None,
    whole_file: bool | None = None,
    prefetched: concurrent.futures.Future | None = None,
    *,
    settings: Settings | None = None,
    filesize: int | None = None,
) -> dict[str, Any]:
    """Built-in statistics of one frame (or a cutout) from one read, without a float copy.

    Parameters
    ----------
    fs, path, hdu, rows, cols, units, whole_file, prefetched
        As for :func:`~intake_helio.fits.frame.read_frame`.
    stats : sequence of str
        Any of :data:`STATISTICS`.
    expect_shape : tuple of int, optional
        The ``(ny, nx)`` the selection must have; another shape raises
        ``FrameReadError`` with reason ``"shape mismatch"``.
    settings : Settings, optional
        Retries, read sizes, band size and limits; None reads ``dask.config``.
    filesize : int, optional
        The file's size from the index: no read goes past it (plus
        ``intake_helio.filesize-slack``). None or 0: unknown.

    Returns
    -------
    dict
        The requested statistics (float; NaN when no pixel is valid) and always
        ``"count"`` (int, valid pixels).

    Raises
    ------
    ValueError
        For an unknown statistic or ``units``, a slice with a step, or an empty cutout.
    FrameReadError
        When the file cannot be read.
    """
    want = set(stats)
    unknown = sorted(want - set(STATISTICS))
    if unknown:
        from .pixels import _BadArgument

        raise _BadArgument(f"stats {unknown} unknown; expected any of {list(STATISTICS)}")
    _check_args(units, hdu, rows, cols)
    settings = current() if settings is None else settings

    def run(src) -> dict[str, Any]:
        whole, info, exptime = _open_image(src, hdu, rows, cols, units, whole_file, settings)
        pixels = _pixels(src, info, whole, rows, cols, settings.band_pixels)
        _check_shape(fs, path, pixels.shape, expect_shape)
        return _finish(_accumulate(pixels, want), pixels, exptime, want)

    return _guarded(fs, path, settings, run, prefetched, filesize)

"""Built-in statistics of one frame, computed on the raw pixels while they are decoded.

:func:`frame_stats` gives any of ``mean``, ``sum``, ``min``, ``max``, ``std`` (population)
and ``count`` (valid pixels) from one read, band by band, with no float copy of the frame:
integer pixels are summed exactly as integers (BLANK excluded), ``min``/``max`` use
masked reductions, ``std`` exact integer sums of squares (8/16-bit pixels: squared in int32
and added in uint32/uint64, one rounding at the end; float64 with a pivot for float and
32-bit images); BSCALE, BZERO and EXPTIME are applied to the results. Values equal numpy's
nan-functions on astropy's float32 data to float32 precision.

``disk_mean``, ``disk_sum`` and ``offdisk_mean`` take the solar disk from the frame's own
header (one run of columns per row, :func:`~intake_helio.fits.disk.disk_intervals`) and add
up each band's on-disk runs with ``np.add.reduceat``, exactly for integer pixels; off-disk
values are the whole window's less the disk's.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..base.settings import Settings, current
from .disk import disk_intervals
from .frame import _check_args, _check_shape, _guarded, _open_image
from .hdu import _image_header
from .pixels import _int_sum, _MaskBuffer, _Pixels, _pixels, _sub

__all__ = ["DISK_STATISTICS", "STATISTICS", "frame_stats"]

#: The statistics of the pixels on (``disk_*``) or off (``offdisk_*``) the solar disk.
DISK_STATISTICS: tuple[str, ...] = ("disk_mean", "disk_sum", "offdisk_mean")
#: What :func:`frame_stats` computes.
STATISTICS: tuple[str, ...] = ("mean", "sum", "min", "max", "std", "count", *DISK_STATISTICS)


class _Scratch:
    """One reusable work buffer, viewed as the dtype and shape each use needs.

    No fresh allocation (hence no page faults) per band, and one cache footprint for the
    work arrays of a band's steps, which run one after the other (a view is valid until the
    next ``get``).
    """

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=np.uint8)

    def get(self, dtype, shape: tuple[int, ...]) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if self._buf.size < nbytes:
            self._buf = np.empty(nbytes, dtype=np.uint8)
        return self._buf[:nbytes].view(dtype).reshape(shape)


def _square_sum(u: np.ndarray, top: int) -> int:
    """Exact sum of a 2-D uint32 array of squares, each at most ``top`` (< ``2**32``).

    Rows are added in uint32 as many at a time as cannot overflow,
    ``k = (2**32 - 1) // top`` (3 for the squares of any int16 value, 1 for uint16): for
    ``k <= 3`` in place (every k-th row accumulates the next ones), otherwise with numpy's
    vectorised row additions; then the fewer rows left are summed in uint64.
    """
    rows, width = u.shape
    k = min(rows, (2**32 - 1) // max(top, 1))
    if k <= 1:
        return int(u.sum(dtype=np.uint64))
    g = rows // k
    if k <= 3:
        acc = u[0 : g * k : k]
        for j in range(1, k):
            np.add(acc, u[j : g * k : k], out=acc)
    else:  # each element adds k squares: rows i, i + g, ..., i + (k - 1) g
        acc = u[: g * k].reshape(k, g * width).sum(axis=0, dtype=np.uint32)
    total = int(acc.sum(dtype=np.uint64))
    if g * k < rows:
        total += int(u[g * k :].sum(dtype=np.uint64))
    return total


def _small_int_squares(sub: np.ndarray, top: int, scratch: _Scratch) -> int:
    """Exact sum of the squares of an 8- or 16-bit integer band (BLANKs included).

    The squares go to an int32 work array in one casting ``np.square`` (each at most
    ``top``; a uint16 square wraps to int32 but its bits are the uint32 square), which is
    then added up in uint32 row blocks (:func:`_square_sum`): integer passes only, no
    allocation per band, and never BLAS (whose threads compete with the decoding ones).
    On 4096 x 4096 AIA-like frames this is cheaper than a float64 copy and a dot product,
    and (unlike copying to int32 and squaring in place) it did not measurably slow down the
    decoding of the next tiles.
    """
    work = scratch.get(np.int32, sub.shape if sub.ndim == 2 else (1, sub.size))
    np.square(sub.reshape(work.shape), dtype=np.int32, out=work)
    return _square_sum(work.view(np.uint32), top)


class _Acc:
    """Running sums over bands: exact integers for integer pixels, float64 otherwise.

    With ``disk`` (per row of the window, the on-disk run of columns ``[lo, hi)``), the sums
    and counts of the valid pixels on the disk are kept too.
    """

    def __init__(self, want_minmax: bool, want_sq: bool, disk=None):
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
        self.scratch = _Scratch()
        self.disk = disk
        self.d_s_int = 0
        self.d_s_f = 0.0
        self.d_n = 0

    def _extremes(self, lo, hi) -> None:
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)

    def add_int(self, sub: np.ndarray, blank: int | None) -> np.ndarray | None:
        """Add an integer band; returns its BLANK mask (None when it has no BLANK)."""
        n = sub.size
        bad = None
        if blank is not None:
            bad = self.mask.equal(sub, blank)
            n -= int(np.count_nonzero(bad))
            if n == sub.size:
                bad = None
        self.n += n
        if n == 0:  # every pixel BLANK: nothing to add
            return bad
        nb = sub.size - n
        self.s_int += _int_sum(sub) - (blank * nb if nb else 0)
        extremes = None
        if self.minmax:
            extremes = _int_extremes(sub, bad, blank, n, self.scratch)
            self._extremes(*extremes)
        if self.sq and sub.dtype.itemsize <= 2:
            # exact integer squares, BLANKs included then taken out; the largest square
            # sets how many rows add up in uint32
            info = np.iinfo(sub.dtype)
            lo, hi = extremes if extremes else (int(info.min), int(info.max))
            top = max(lo * lo, hi * hi, blank * blank if nb else 0)
            ss = _small_int_squares(sub, top, self.scratch)
            self.ss_int += ss - (blank * blank * nb if nb else 0)
        elif self.sq:
            # squares about a pivot (the first valid value), as float64 dot products
            if self.ipivot is None:
                first = np.flatnonzero(~bad)[0] if bad is not None else 0
                self.ipivot = int(sub.ravel()[first])
            d = sub.ravel().astype(np.float64)
            d -= self.ipivot
            ss = float(np.dot(d, d))
            if bad is not None:
                ss -= float(blank - self.ipivot) ** 2 * nb
            self.ss_f += ss
        return bad

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

    def add_disk(self, src: np.ndarray, xoff: int, oy: int, bad, blank: int | None) -> None:
        """Add the on-disk pixels of a band's rows ``oy, oy + 1, ...`` of the window.

        ``src`` holds those rows (C-contiguous; the window's columns start at ``xoff``),
        ``bad`` is the BLANK mask of the band's window pixels (integer bands; None when
        the band has no BLANK).
        """
        lo, hi = self.disk
        nrows, width = src.shape
        lo, hi = lo[oy : oy + nrows], hi[oy : oy + nrows]
        rows = np.flatnonzero(hi > lo)
        if rows.size == 0:
            return
        base = rows * width + xoff
        idx = np.empty(2 * rows.size, dtype=np.intp)
        idx[0::2] = base + lo[rows]
        idx[1::2] = base + hi[rows]
        if idx[-1] == src.size:  # the last run ends the band: reduceat runs it to the end
            idx = idx[:-1]
        flat = src.reshape(-1)
        if src.dtype.kind in "iu":
            small = src.dtype.itemsize <= 2 and width << (8 * src.dtype.itemsize) < 2**31
            runs = np.add.reduceat(flat, idx, dtype=np.int32 if small else np.int64)
            s = int(runs[0::2].sum(dtype=np.int64))
            n = int((hi[rows] - lo[rows]).sum())
            if bad is not None:  # BLANKs on the disk, from their positions (few)
                pos = np.flatnonzero(bad)
                r, c = np.divmod(pos, bad.shape[1])
                nb = int(np.count_nonzero((c >= lo[r]) & (c < hi[r])))
                s -= int(blank) * nb
                n -= nb
            self.d_s_int += s
            self.d_n += n
        else:
            finite = ~np.isnan(flat)
            vals = np.where(finite, flat, 0.0).astype(np.float64, copy=False)
            self.d_s_f += float(np.add.reduceat(vals, idx)[0::2].sum())
            self.d_n += int(np.add.reduceat(finite, idx, dtype=np.int64)[0::2].sum())


def _int_extremes(
    sub: np.ndarray, bad, blank: int | None, n: int, scratch: _Scratch | None = None
) -> tuple[int, int]:
    """Min and max of the valid pixels of an integer band (``n`` of them, > 0)."""
    if bad is None or n == sub.size:
        return int(sub.min()), int(sub.max())
    info = np.iinfo(sub.dtype)
    if blank in (info.min, info.max):  # (native byte order: FITS rows are big-endian)
        work = (scratch or _Scratch()).get(sub.dtype.newbyteorder("="), sub.shape)
    if blank == info.min:  # AIA's BLANK: below every valid value
        # minus one wraps BLANK to the top of the range, every other value stays below it
        return int(np.subtract(sub, 1, out=work).min()) + 1, int(sub.max())
    if blank == info.max:
        return int(sub.min()), int(np.add(sub, 1, out=work).max()) - 1
    good = ~bad
    lo = np.minimum.reduce(sub, axis=None, where=good, initial=info.max)
    hi = np.maximum.reduce(sub, axis=None, where=good, initial=info.min)
    return int(lo), int(hi)


def _rows_of(pix: _Pixels, by0: int, bx0: int, band: np.ndarray, sub: np.ndarray):
    """``(src, xoff)``: a C-contiguous array of ``sub``'s rows, ``sub``'s columns from ``xoff``."""
    if sub.flags.c_contiguous:
        return sub, 0
    y0, _, x0, _ = pix.window
    a = max(y0, by0) - by0
    rows = band[a : a + sub.shape[0]]
    if rows.flags.c_contiguous:
        return rows, x0 - bx0
    return np.ascontiguousarray(sub), 0


def _accumulate(pix: _Pixels, want: set[str], disk=None) -> _Acc:
    acc = _Acc(bool(want & {"min", "max"}), "std" in want, disk)
    for by0, bx0, band in pix.bands:
        sub, oy = _sub(pix, by0, bx0, band)
        if sub.dtype.kind in "iu":
            bad = acc.add_int(sub, pix.blank)
        else:
            bad = None
            acc.add_float(sub)
        if disk is not None:
            src, xoff = _rows_of(pix, by0, bx0, band, sub)
            acc.add_disk(src, xoff, oy, bad, pix.blank)
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
        if acc.sq and acc.ipivot is None:  # 8/16-bit: exact, one rounding
            raw_var = (n * acc.ss_int - acc.s_int * acc.s_int) / (n * n)
        elif acc.sq:
            sd = acc.s_int - acc.ipivot * n  # sum of (x - pivot), exact
            ssd = acc.ss_int + acc.ss_f  # sum of (x - pivot)**2
            raw_var = max(ssd / n - (sd / n) ** 2, 0.0)
        disk_raw, all_raw = acc.d_s_int, acc.s_int
    else:
        raw_sum = acc.pivot * n + acc.s_f
        raw_mean = acc.pivot + acc.s_f / n
        raw_var = max(acc.ss_f / n - (acc.s_f / n) ** 2, 0.0) if acc.sq else 0.0
        disk_raw, all_raw = acc.d_s_f, raw_sum
    if "sum" in want:
        out["sum"] = (bscale * raw_sum + bzero * n) * scale
    if "mean" in want:
        out["mean"] = (bscale * raw_mean + bzero) * scale
    if "std" in want:
        out["std"] = abs(bscale) * math.sqrt(raw_var) * abs(scale)
    if want & {"min", "max"}:
        ends = sorted(((bscale * acc.lo + bzero) * scale, (bscale * acc.hi + bzero) * scale))
        out["min"], out["max"] = ends
    if want & set(DISK_STATISTICS):
        dn, on = acc.d_n, n - acc.d_n
        if "disk_sum" in want:
            out["disk_sum"] = (bscale * float(disk_raw) + bzero * dn) * scale if dn else math.nan
        if "disk_mean" in want:
            out["disk_mean"] = (bscale * (disk_raw / dn) + bzero) * scale if dn else math.nan
        if "offdisk_mean" in want:
            off = all_raw - disk_raw
            out["offdisk_mean"] = (bscale * (off / on) + bzero) * scale if on else math.nan
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
    good_only: bool = False,
    correction: Any = None,
) -> dict[str, Any]:
    """Built-in statistics of one frame (or a cutout) from one read, without a float copy.

    Parameters
    ----------
    fs, path, hdu, rows, cols, units, whole_file, prefetched, good_only, correction
        As for :func:`~intake_helio.fits.frame.read_frame` (``good_only``: a frame whose
        header ``QUALITY`` is not 0 raises ``"quality flag 0x%08x"``, nothing decoded).
    stats : sequence of str
        Any of :data:`STATISTICS`. ``disk_mean``, ``disk_sum`` and ``offdisk_mean`` use
        the pixels on (off) the solar disk of the frame's own header
        (:func:`~intake_helio.fits.disk.disk_intervals`).
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
        The requested statistics (float; NaN when no pixel is valid, or none on/off the
        disk for the disk statistics) and always ``"count"`` (int, valid pixels).

    Raises
    ------
    ValueError
        For an unknown statistic or ``units``, a slice with a step, or an empty cutout.
    FrameReadError
        When the file cannot be read.
    DiskGeometryError
        For a disk statistic, when the header does not give the solar disk.
    """
    want = set(stats)
    unknown = sorted(want - set(STATISTICS))
    if unknown:
        from .pixels import _BadArgument

        raise _BadArgument(f"stats {unknown} unknown; expected any of {list(STATISTICS)}")
    _check_args(units, hdu, rows, cols)
    settings = current() if settings is None else settings

    def run(src) -> dict[str, Any]:
        whole, info, exptime = _open_image(
            src, hdu, rows, cols, units, whole_file, settings, good_only, correction
        )
        pixels = _pixels(src, info, whole, rows, cols, settings.band_pixels)
        _check_shape(fs, path, pixels.shape, expect_shape)
        disk = None
        if want & set(DISK_STATISTICS):  # the frame's own disk, before any pixel is decoded
            y0, y1, x0, x1 = pixels.window
            disk = disk_intervals(_image_header(info), slice(y0, y1), slice(x0, x1))
        return _finish(_accumulate(pixels, want, disk), pixels, exptime, want)

    return _guarded(fs, path, settings, run, prefetched, filesize)

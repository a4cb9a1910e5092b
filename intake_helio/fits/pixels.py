"""Pixels: plan the reads of an image's pixels, convert them to float32 and reduce them.

:func:`_pixels` turns an image HDU (and an optional cutout) into a :class:`_Pixels`: bands of
raw pixels (decoded tiles, rows of an uncompressed image, or astropy's decoding of what the
fast path does not handle) plus BLANK, BSCALE and BZERO. :func:`_to_float32` makes the
float32 frame (BLANK as NaN, like astropy), :func:`_reduce` sums the valid pixels exactly
(integers as integers) without a float copy; :func:`_exptime` reads EXPTIME for ``DN/s``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from ..base.errors import ArgumentError, FrameReadError
from ..base.reasons import Reason
from .hdu import _BITPIX_DTYPE, _HDU, _int, _shape
from .source import _check_present, _sentinel, _Source
from .tiles import _Comp, _comp_bands, _comp_layout

__all__ = [
    "_BadArgument",
    "_MaskBuffer",
    "_Pixels",
    "_Unsupported",
    "_astropy_pixels",
    "_clip_window",
    "_exptime",
    "_int_sum",
    "_pixels",
    "_plan_compressed",
    "_reduce",
    "_scaling",
    "_sub",
    "_to_float32",
]


class _BadArgument(ArgumentError):
    """An argument error found after the header was read (e.g. an empty cutout)."""


class _Unsupported(Exception):
    """The fast path cannot decode this image: use astropy instead."""


@dataclass
class _Pixels:
    """A source of pixel bands plus how to turn them into physical values."""

    shape: tuple[int, int]  # (ny, nx) of the cutout
    window: tuple[int, int, int, int]  # y0, y1, x0, x1 in the frame
    bands: Iterator[tuple[int, int, np.ndarray]]
    bitpix: int
    blank: int | None
    bscale: float
    bzero: float


def _clip_window(rows: slice | None, cols: slice | None, ny: int, nx: int) -> tuple[int, ...]:
    y0, y1, _ = (rows or slice(None)).indices(ny)
    x0, x1, _ = (cols or slice(None)).indices(nx)
    if y1 <= y0 or x1 <= x0:
        raise _BadArgument(
            f"the cutout rows={rows!r}, cols={cols!r} is empty for a frame of shape "
            f"{(ny, nx)}; pass slices that select at least one pixel"
        )
    return y0, y1, x0, x1


def _exptime(src: _Source, info: _HDU) -> float:
    value = info.header.get("EXPTIME")
    try:
        exptime = float(value)
    except (TypeError, ValueError):
        exptime = float("nan")
    if not exptime > 0:
        got = (
            "is missing"
            if value is None
            else f"is {exptime:g}"
            if exptime == exptime
            else f"holds a {type(value).__name__}, not a number"
        )
        raise FrameReadError(
            src.key,
            Reason.NO_EXPTIME,
            f"EXPTIME in HDU {info.index} {got}; units='DN/s' needs EXPTIME > 0 (use units='DN')",
        )
    return exptime


def _scaling(info: _HDU, bitpix: int) -> tuple[int | None, float, float]:
    h = info.header
    bscale = float(h.get("BSCALE", 1.0))
    bzero = float(h.get("BZERO", 0.0))
    blank = None
    if bitpix > 0:
        b = h.get("BLANK", h.get("ZBLANK") if info.kind == "compressed" else None)
        if isinstance(b, int | np.integer) and not isinstance(b, bool):
            blank = int(b)
    return blank, bscale, bzero


def _pixels(src: _Source, info: _HDU, whole: bool, rows, cols, band_pixels: int) -> _Pixels:
    """Plan how to get the pixels of ``info`` (for the whole frame or a cutout).

    Pixels come in bands of about ``band_pixels`` pixels.
    """
    ny, nx = _shape(info)
    y0, y1, x0, x1 = _clip_window(rows, cols, ny, nx)
    window = (y0, y1, x0, x1)
    shape = (y1 - y0, x1 - x0)
    end = info.data_start + info.data_size
    if info.kind == "compressed":
        comp = _comp_layout(info)
        if not comp.unsupported:
            blank, bscale, bzero = _scaling(info, comp.zbitpix)
            try:
                bands = _plan_compressed(src, info, comp, whole, window, band_pixels)
            except _Unsupported:
                pass
            else:
                return _Pixels(shape, window, bands, comp.zbitpix, blank, bscale, bzero)
        return _astropy_pixels(src, info, window)
    # uncompressed image: rows are contiguous
    bitpix = _int(info.header, "BITPIX")
    dt = _BITPIX_DTYPE[bitpix].newbyteorder(">")
    row_len = nx * dt.itemsize
    start, stop = info.data_start + y0 * row_len, info.data_start + y1 * row_len
    if whole:
        src.load_all()
        _check_present(src, end)
    else:
        src.fetch_many([(start, stop), *_sentinel(src, end)])
        _check_present(src, end)
    buf = src.get(start, stop)
    if len(buf) < stop - start:
        raise FrameReadError(src.key, Reason.TRUNCATED, f"image data ends before byte {stop}")
    arr = np.frombuffer(buf, dtype=dt).reshape(y1 - y0, nx)
    blank, bscale, bzero = _scaling(info, bitpix)
    step = max(1, band_pixels // nx)
    bands = ((y0 + i, 0, arr[i : i + step]) for i in range(0, y1 - y0, step))
    return _Pixels(shape, window, bands, bitpix, blank, bscale, bzero)


def _plan_compressed(
    src: _Source, info: _HDU, comp: _Comp, whole: bool, window, band_pixels: int
) -> Iterator:
    y0, y1, x0, x1 = window
    th, tw, ntx = comp.th, comp.tw, comp.ntx
    ty0, ty1, tx0, tx1 = y0 // th, (y1 - 1) // th, x0 // tw, (x1 - 1) // tw
    r_first, r_last = ty0 * ntx + tx0, ty1 * ntx + tx1
    end = info.data_start + info.data_size
    if whole:
        src.load_all()
        _check_present(src, end)
    tstart = info.data_start + r_first * comp.row_bytes
    tstop = info.data_start + (r_last + 1) * comp.row_bytes
    table = src.get(tstart, tstop)
    if len(table) < tstop - tstart:
        raise FrameReadError(src.key, Reason.TRUNCATED, "the file ends inside the tile table")
    desc = np.frombuffer(table, dtype=comp.desc_dtype, count=r_last - r_first + 1)
    heap0 = info.data_start + comp.theap
    elem = comp.elem_size
    # the touched tiles' table rows (relative to r_first), checked with array operations
    touched = (
        np.arange(ty0, ty1 + 1, dtype=np.int64)[:, None] * ntx
        + np.arange(tx0, tx1 + 1, dtype=np.int64)[None, :]
        - r_first
    ).ravel()
    n_t = desc["n"].astype(np.int64)[touched]
    start_t = heap0 + desc["off"].astype(np.int64)[touched]
    stop_t = start_t + n_t * elem
    if n_t.min() <= 0:
        raise _Unsupported("some tiles are stored outside COMPRESSED_DATA")
    bad = (start_t < heap0) | (stop_t > end)
    if bad.any():
        r = int(touched[int(np.argmax(bad))])
        raise FrameReadError(
            src.key,
            Reason.CORRUPT_DATA,
            f"tile {r + r_first} points at heap bytes {int(desc['off'][r])}"
            f"+{int(desc['n'][r]) * elem}, "
            f"outside the HDU's data (which ends at byte {end})",
        )
    starts, stops = start_t.tolist(), stop_t.tolist()
    if whole:  # bounds were checked above against the file's data
        mv = memoryview(src.load_all())
        tiles = [mv[s:e] for s, e in zip(starts, stops, strict=True)]
    else:
        src.fetch_many(list(zip(starts, stops, strict=True)) + _sentinel(src, end))
        _check_present(src, end)
        tiles = []
        for s, e in zip(starts, stops, strict=True):
            got = src.get(s, e)
            if len(got) < e - s:
                raise FrameReadError(
                    src.key, Reason.TRUNCATED, f"tile data at byte {s} is past the end"
                )
            tiles.append(got)
    return _comp_bands(comp, tiles, y0, y1, x0, x1, band_pixels)


def _astropy_pixels(src: _Source, info: _HDU, window) -> _Pixels:
    """Decode with astropy from the whole file in memory (values are physical)."""
    y0, y1, x0, x1 = window
    data = src.load_all()
    _check_present(src, info.data_start + info.data_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True) as hdul:
            arr = np.asarray(hdul[info.index].data)
            arr = arr.reshape(arr.shape[-2:])[y0:y1, x0:x1].copy()
    # values are already physical: no BLANK, BSCALE or BZERO left to apply
    bitpix = arr.dtype.itemsize * 8 * (1 if arr.dtype.kind in "iu" else -1)
    return _Pixels(arr.shape, window, iter([(y0, x0, arr)]), bitpix, None, 1.0, 0.0)


def _sub(pix: _Pixels, by0: int, bx0: int, band: np.ndarray) -> tuple[np.ndarray, int]:
    y0, y1, x0, x1 = pix.window
    a, b = max(y0, by0), min(y1, by0 + band.shape[0])
    return band[a - by0 : b - by0, x0 - bx0 : x1 - bx0], a - y0


class _MaskBuffer:
    """A reusable boolean array for ``band == BLANK`` (no 256 KiB temporary per band)."""

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=bool)

    def equal(self, sub: np.ndarray, value: int) -> np.ndarray:
        if self._buf.size < sub.size:
            self._buf = np.empty(sub.size, dtype=bool)
        return np.equal(sub, value, out=self._buf[: sub.size].reshape(sub.shape))


def _to_float32(pix: _Pixels, exptime: float | None) -> np.ndarray:
    out = np.empty(pix.shape, dtype=np.float32)
    work32 = pix.bitpix in (8, 16, -32)  # astropy scales these in float32
    mask = _MaskBuffer()
    for by0, bx0, band in pix.bands:
        sub, oy = _sub(pix, by0, bx0, band)
        dst = out[oy : oy + sub.shape[0]]
        if work32:
            dst[...] = sub
            if pix.bscale != 1:
                dst *= np.float32(pix.bscale)
            if pix.bzero != 0:
                dst += np.float32(pix.bzero)
        elif pix.bscale != 1 or pix.bzero != 0:
            dst[...] = sub.astype(np.float64) * pix.bscale + pix.bzero
        else:
            dst[...] = sub
        if pix.blank is not None:
            dst[mask.equal(sub, pix.blank)] = np.nan
    if exptime is not None:
        out /= np.float32(exptime)
    return out


def _int_sum(sub: np.ndarray) -> int:
    """Exact sum of an integer band.

    8- and 16-bit bands are summed down their columns in int32 (vectorised row additions,
    ~30 % faster than numpy's casting int64 sum) when no column sum can overflow.
    """
    if (
        sub.ndim == 2
        and sub.dtype.itemsize <= 2
        and sub.shape[0] << (8 * sub.dtype.itemsize) < 2**31
    ):
        return int(sub.sum(axis=0, dtype=np.int32).sum(dtype=np.int64))
    return int(sub.sum(dtype=np.int64))


def _reduce(pix: _Pixels) -> tuple[float, int]:
    total_int = 0
    total_float = 0.0
    count = 0
    mask = _MaskBuffer()
    for by0, bx0, band in pix.bands:
        sub, _ = _sub(pix, by0, bx0, band)
        if sub.dtype.kind in "iu" and sub.dtype.itemsize <= 4:
            s = _int_sum(sub)
            n = sub.size
            if pix.blank is not None:
                nb = int(np.count_nonzero(mask.equal(sub, pix.blank)))
                s -= pix.blank * nb
                n -= nb
            total_int += s
            count += n
        else:
            if sub.dtype.kind in "iu":
                valid = sub if pix.blank is None else sub[sub != pix.blank]
                total_float += float(valid.sum(dtype=np.float64))
                count += valid.size
            else:
                total_float += float(np.nansum(sub, dtype=np.float64))
                count += sub.size - int(np.count_nonzero(np.isnan(sub)))
    raw = float(total_int) + total_float
    return pix.bscale * raw + pix.bzero * count, count

"""Read one frame (one FITS file) fast: the public API (probes, full frames, cutouts, sums).

Every function takes an fsspec filesystem ``fs`` and a ``path`` (as returned by
:func:`intake_helio.io.transport.filesystem`), is a picklable top-level function (they run
inside dask tasks on remote workers) and keeps no file handle open: all I/O goes through
bounded reads (:func:`~intake_helio.io.transport.cat_bounded`, :mod:`intake_helio.fits.source`).

How a frame is read
-------------------
* A whole frame is fetched with **one** request (a GET of the object, no HEAD first;
  ``whole_file=True`` does the same for a window that covers the frame, e.g.
  ``rows=slice(0, ny)``); :func:`start_whole_read`
  starts that request ahead of time, so that it overlaps other work (``ih.irradiance``
  fetches the next frame while it decodes one). The HDU headers are walked in the bytes
  (2880-byte blocks, :mod:`intake_helio.fits.hdu`), and a tile-compressed image
  (RICE_1 or GZIP_1, integer pixels, or lossless GZIP_1 floats) is decoded tile by tile
  with :func:`imagecodecs.rcomp_decode` / :mod:`zlib` (:mod:`intake_helio.fits.tiles`),
  which release the GIL, so that several threads of one worker decode in parallel.
  Anything else compressed (quantised floats, GZIP_2, HCOMPRESS_1, PLIO_1, per-tile
  ZBLANK/ZSCALE columns, ...) falls back to astropy on the same bytes.
* A cutout (``rows``/``cols``) of a compressed image reads only the header blocks, the
  descriptor rows and the heap bytes of the tiles it touches, merged into as few
  ranged reads as possible. A cutout of an uncompressed image reads only its rows.
* :func:`frame_sum` reduces integer pixels as integers (int64 accumulation, no float
  copy of the frame) and applies BSCALE/BZERO/EXPTIME to the sum
  (:mod:`intake_helio.fits.pixels`).

Pixel semantics follow astropy (``fits.open(...)[hdu].data``): integer BLANK pixels
are NaN, BSCALE/BZERO are applied, and the result is float32.

The tunables (retries, first header read, range merging, band size) come from
:mod:`intake_helio.base.settings`: each function takes ``settings=`` (default: the
``dask.config`` values in force when it is called).

Limits
------
What a file (or the server sending it) declares never makes a read allocate without bound
or take unbounded time, and messages never quote the file's bytes:

* no read takes more than the index's ``filesize`` (``filesize=``, when given) plus
  ``intake_helio.filesize-slack`` bytes, nor more than ``intake_helio.max-file-bytes``;
  a ranged read never accepts more bytes than it asked for
  (:mod:`intake_helio.fits.source`);
* an image declaring more than ``intake_helio.max-frame-pixels`` pixels gets the reason
  ``"image too large"`` before anything is allocated for its pixels;
* the HDU walk stops after ``intake_helio.max-hdus`` HDUs and a header after
  ``intake_helio.max-header-bytes`` bytes (:mod:`intake_helio.fits.hdu`); a GZIP tile
  never inflates past 8 bytes per pixel (:mod:`intake_helio.fits.tiles`);
* every request of a frame completes within ``intake_helio.timeouts.allowance`` seconds
  plus its bytes at ``intake_helio.timeouts.min-rate`` (:mod:`intake_helio.io.deadline`):
  a server that stalls or trickles is cut off, and the frame gets the reason
  ``"read error"`` with the deadline in its message, without retries.

Failures raise :class:`~intake_helio.base.errors.FrameReadError` with a stable ``reason``
(a :class:`~intake_helio.base.reasons.Reason`); transient I/O errors are retried first
(:func:`~intake_helio.io.retry.retry_io`).
"""

from __future__ import annotations

import concurrent.futures
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..base.errors import ArgumentError, ArgumentTypeError, FrameReadError, picklable_cause
from ..base.options import UNITS, check_choice
from ..base.reasons import Reason
from ..base.settings import Settings, current
from ..base.text import safe_text
from ..io.failures import reason_for
from ..io.retry import RETRY_STATS, is_transient, retry_io
from ..io.urlpolicy import UrlNotAllowedError
from .hdu import (
    _HDU,
    AutoHDU,
    _check_pixels,
    _check_quality,
    _header_dict,
    _HeaderValueError,
    _image_header,
    _locate,
    _shape,
)
from .pixels import _BadArgument, _exptime, _pixels, _reduce, _to_float32
from .source import _datakey, _Source, start_whole_read
from .tiles import _comp_layout, _TileError

__all__ = [
    "RETRY_STATS",
    "AutoHDU",
    "FrameInfo",
    "as_frame_error",
    "frame_error_reason",
    "frame_sum",
    "probe_frame",
    "read_frame",
    "read_header_values",
    "retry_io",
    "start_whole_read",
]


@dataclass(frozen=True)
class FrameInfo:
    """What a header-only probe of one frame found.

    Attributes
    ----------
    hdu : int
        Index of the image HDU.
    shape : tuple of int
        ``(ny, nx)``.
    header : dict
        The image header as plain Python values. For a tile-compressed image this is
        the *uncompressed* image header (astropy ``CompImageHDU.header`` semantics:
        ``BITPIX``, ``NAXIS1/2``, ``BLANK`` ... rather than ``ZBITPIX`` ...).
        COMMENT/HISTORY cards are joined with newlines; undefined values are ``None``.
    compressed : bool
        Whether the image is tile-compressed.
    compression : str or None
        ``"RICE_1"``, ``"GZIP_1"``, ... for compressed images.
    tile_shape : tuple of int or None
        ``(tile_ny, tile_nx)`` for compressed images (``(1, nx)`` = one row per tile).
    """

    hdu: int
    shape: tuple[int, int]
    header: dict = field(repr=False)
    compressed: bool
    compression: str | None
    tile_shape: tuple[int, int] | None


# --------------------------------------------------------------------------- error mapping
def frame_error_reason(exc: BaseException) -> str:
    """Map any exception met while reading a frame to a short, stable reason.

    The one table of :func:`intake_helio.io.failures.reason_for` (this reader's own
    decoding errors are classified there too, with ``decoding=True``).

    Parameters
    ----------
    exc : BaseException
        The error.

    Returns
    -------
    str
        ``exc.reason`` for a :class:`FrameReadError` (whole, e.g.
        ``"quality flag 0x00000400"`` with its flags); otherwise the
        :class:`~intake_helio.base.reasons.Reason` (a ``str``)
        ``"missing object"``, ``"permission denied"``, ``"truncated"``,
        ``"corrupt data"``, ``"read error"``, ``"invalid argument"``,
        ``"out of memory"`` or ``"unexpected error"``.
    """
    return reason_for(exc)


def as_frame_error(datakey: str, exc: BaseException) -> FrameReadError:
    """The :class:`FrameReadError` for any exception met while reading a frame.

    Parameters
    ----------
    datakey : str
        The file being read.
    exc : BaseException
        The error.

    Returns
    -------
    FrameReadError
        ``exc`` itself if it is one; otherwise a new error for ``datakey`` with the reason
        of :func:`frame_error_reason` and ``str(exc)`` as its detail (not raised: the
        caller chooses the cause to chain, e.g. a picklable one).
    """
    if isinstance(exc, FrameReadError):
        return exc
    return FrameReadError(datakey, frame_error_reason(exc), _detail(exc, typed=False))


def _printable(text: str, limit: int = 200) -> str:
    """``text`` on one line, printable characters only, at most ``limit`` characters."""
    return " ".join(safe_text(text, limit + 3).split())


def _detail(exc: BaseException, typed: bool = True) -> str:
    """An error's detail for a frame's message, never quoting the file's bytes.

    I/O errors (the store's or the transport's words), decoder status and this package's
    own header and tile errors keep their message, shortened (after their type name when
    ``typed``); any other error raised while parsing or decoding the file keeps only its
    type, as its text may quote the file.
    """
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if (
        isinstance(exc, OSError | _HeaderValueError | _TileError | zlib.error | ArgumentError)
        or is_transient(exc)
        or module.startswith("imagecodecs")
    ):
        return f"{name}: {_printable(str(exc))}" if typed else _printable(str(exc))
    return f"{name} while decoding the file (its text is not shown)"


def _guarded(
    fs,
    path: str,
    settings: Settings,
    fn: Callable[[_Source], Any],
    prefetched: concurrent.futures.Future | None = None,
    filesize: int | None = None,
) -> Any:
    """Run ``fn(source)`` and turn every failure into a FrameReadError.

    ``filesize`` (the index's, None: unknown) bounds every read of the file
    (:class:`~intake_helio.fits.source._Source`). The error is raised outside the
    ``except`` block with a picklable cause, so that it crosses process boundaries (dask,
    distributed) intact even when the original exception cannot be unpickled (as
    imagecodecs' decoder errors cannot).
    """
    src = _Source(fs, path, settings, prefetched, filesize)
    key = src.key
    try:
        return fn(src)
    except (FrameReadError, _BadArgument, MemoryError):
        raise
    except Exception as exc:
        err, cause = FrameReadError(key, *_classify(exc)), exc
    raise err from picklable_cause(cause)


def _classify(exc: Exception) -> tuple[str, str]:
    """The reason (the one table, as decoding) and detail of an error met reading a frame."""
    reason = reason_for(exc, decoding=True)
    if reason == Reason.NO_CREDENTIALS:
        return reason, (
            f"{type(exc).__name__}: the store needs credentials and none were found; give "
            "storage_options (anon=True for a public bucket) or configure AWS credentials"
        )
    if isinstance(exc, UrlNotAllowedError):
        return reason, _printable(getattr(exc, "detail", "") or str(exc))
    if reason in (Reason.MISSING_OBJECT, Reason.PERMISSION_DENIED):
        return reason, _printable(str(exc))
    return reason, _detail(exc)


# --------------------------------------------------------------------------- argument checks
def _check_slice(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, slice):
        raise ArgumentTypeError(f"{name} must be a slice or None, got {value!r}")
    if value.step not in (None, 1):
        raise ArgumentError(f"{name}={value!r} has a step; only contiguous slices are supported")


def _check_args(units: str, hdu: Any, rows: Any = None, cols: Any = None) -> None:
    check_choice("units", units, UNITS)
    if not (isinstance(hdu, str | AutoHDU) or (isinstance(hdu, int | np.integer) and hdu >= 0)):
        raise ArgumentTypeError(f"hdu must be 'auto', an EXTNAME or an index >= 0, got {hdu!r}")
    _check_slice("rows", rows)
    _check_slice("cols", cols)


def _open_image(
    src: _Source,
    hdu: int | str,
    rows,
    cols,
    units: str,
    whole_file: bool | None,
    settings: Settings,
    good_only: bool = False,
    correction: Callable[[Any, str], float] | None = None,
) -> tuple[bool, _HDU, float | None]:
    """How the frame is fetched (whole or ranged), its image HDU and what its pixels are
    divided by: EXPTIME for DN/s, times the ``correction`` factor of its header (None:
    nothing).

    A whole-file read fetches the file before the headers are walked, in one request.
    With ``good_only``, a frame whose header ``QUALITY`` is not 0 raises ``"quality flag
    0x..."`` here, before any tile or pixel is read (:func:`_check_quality`); so does a
    ``correction`` that has no factor for the frame (its own reason).
    """
    whole = (rows is None and cols is None) if whole_file is None else bool(whole_file)
    if whole:
        src.load_all()
    info = _locate(src, hdu, settings)
    if good_only:
        _check_quality(src, info)
    _check_pixels(src, info, settings)
    divisor = _exptime(src, info) if units == "DN/s" else None
    if correction is not None:  # e.g. aiapy's degradation factor of the frame's time
        factor = correction(info.header, src.key)
        divisor = factor if divisor is None else divisor * factor
    return whole, info, divisor


def probe_frame(
    fs,
    path: str,
    hdu: int | str = "auto",
    *,
    settings: Settings | None = None,
    filesize: int | None = None,
) -> FrameInfo:
    """Find the image HDU of one frame and describe it, reading only header bytes.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        Filesystem holding the file.
    path : str
        Path of the file on ``fs``.
    hdu : int or str
        ``"auto"`` (first HDU with a 2-D image, compressed or not), an HDU index, or an
        EXTNAME.
    settings : Settings, optional
        Retries, read sizes and limits (:mod:`intake_helio.base.settings`); None reads
        ``dask.config`` once (:func:`~intake_helio.base.settings.current`).
    filesize : int, optional
        The file's size from the index: no read goes past it (plus
        ``intake_helio.filesize-slack``). None or 0: unknown.

    Returns
    -------
    FrameInfo

    Raises
    ------
    FrameReadError
        With reason ``"missing object"``, ``"empty file"``, ``"not FITS"``,
        ``"truncated"``, ``"no image HDU"``, ``"image too large"``, ``"read error"`` ...
    """
    _check_args("DN", hdu)
    settings = current() if settings is None else settings

    def run(src: _Source) -> FrameInfo:
        info = _locate(src, hdu, settings)
        _check_pixels(src, info, settings)
        header = _header_dict(_image_header(info))
        if info.kind == "compressed":
            comp = _comp_layout(info)
            cmp = str(info.header.get("ZCMPTYPE", "")).strip() or None
            return FrameInfo(info.index, (comp.ny, comp.nx), header, True, cmp, (comp.th, comp.tw))
        return FrameInfo(info.index, _shape(info), header, False, None, None)

    return _guarded(fs, path, settings, run, filesize=filesize)


def read_frame(
    fs,
    path: str,
    hdu: int | str = "auto",
    rows: slice | None = None,
    cols: slice | None = None,
    units: str = "DN",
    whole_file: bool | None = None,
    prefetched: concurrent.futures.Future | None = None,
    *,
    settings: Settings | None = None,
    with_header: bool = False,
    filesize: int | None = None,
    good_only: bool = False,
    correction: Callable[[Any, str], float] | None = None,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Read one frame (or a cutout of it) as float32 physical values.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        Filesystem holding the file.
    path : str
        Path of the file on ``fs``.
    hdu : int or str
        ``"auto"``, an HDU index or an EXTNAME (see :func:`probe_frame`).
    rows, cols : slice or None
        Cutout along y then x (contiguous slices, clipped to the frame). Without a
        cutout the whole file is fetched in one request; with one, only the header,
        the tile table rows and the touched tiles (or image rows) are fetched.
    units : {"DN", "DN/s"}
        ``"DN/s"`` divides by the header's EXPTIME.
    whole_file : bool, optional
        How to fetch: ``True``, the whole file in one request even with ``rows``/``cols``
        (best when they cover the whole frame or most of it); ``False``, ranged reads
        of the header and the touched tiles only; ``None`` (default), the whole file
        when ``rows`` and ``cols`` are both None, ranged reads otherwise. The values
        returned do not depend on it.
    prefetched : concurrent.futures.Future, optional
        The file's bytes being read, from :func:`start_whole_read`; used (instead of
        a new request) by the first attempt of a whole-file read.
    settings : Settings, optional
        Retries, read sizes and band size (:mod:`intake_helio.base.settings`); None
        reads ``dask.config`` once (:func:`~intake_helio.base.settings.current`).
    with_header : bool
        Also return the image HDU's header cards (from the same read) as a dict.
    filesize : int, optional
        The file's size from the index: no read goes past it (plus
        ``intake_helio.filesize-slack``); pass the one given to :func:`start_whole_read`
        for ``prefetched``. None or 0: unknown (``intake_helio.max-file-bytes`` bounds).
    good_only : bool
        Refuse a frame whose header ``QUALITY`` is not 0 (a missing ``QUALITY`` is good):
        ``FrameReadError`` with reason ``"quality flag 0x%08x"``, raised after the header
        is read and before any tile or pixel is read or decoded.
    correction : callable, optional
        ``correction(header, datakey)``: a factor the pixels are also divided by (after
        EXPTIME for DN/s), e.g. :class:`~intake_helio.calibrate.Degradation`; it raises
        the frame's ``FrameReadError`` when it has none.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, dict)
        float32 array of shape ``(ny, nx)`` (or the cutout's), BLANK pixels as NaN,
        BSCALE/BZERO applied, like astropy's ``hdu.data``; with ``with_header``, also
        the header cards ``{keyword: value}``.

    Raises
    ------
    ValueError
        For an unknown ``units``, a slice with a step, or an empty cutout.
    FrameReadError
        When the file cannot be read (see :class:`~intake_helio.base.reasons.Reason`).
    """
    _check_args(units, hdu, rows, cols)
    settings = current() if settings is None else settings

    def run(src: _Source) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
        whole, info, exptime = _open_image(
            src, hdu, rows, cols, units, whole_file, settings, good_only, correction
        )
        pixels = _pixels(src, info, whole, rows, cols, settings.band_pixels)
        data = _to_float32(pixels, exptime)
        return (data, _header_dict(_image_header(info))) if with_header else data

    return _guarded(fs, path, settings, run, prefetched, filesize)


def _check_shape(fs, path: str, shape, expect_shape) -> None:
    """Raise ``shape mismatch`` when the selection's shape is not the expected one."""
    if expect_shape is not None and tuple(shape) != tuple(expect_shape):
        raise FrameReadError(
            _datakey(fs, path),
            Reason.SHAPE_MISMATCH,
            f"found {tuple(shape)}, expected {tuple(expect_shape)}",
        )


def frame_sum(
    fs,
    path: str,
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
    correction: Callable[[Any, str], float] | None = None,
) -> tuple[float, int]:
    """Sum the valid pixels of one frame (or a cutout) without a float copy of it.

    Integer pixels are summed as integers (int64) over non-BLANK pixels, band by band
    while tiles are decoded; BSCALE, BZERO and EXPTIME are applied to the sum:
    ``sum = (BSCALE * sum_int + BZERO * count) / EXPTIME``. ``sum / count`` equals
    ``np.nanmean(read_frame(...), dtype=np.float64)`` to float32 precision.

    Parameters
    ----------
    fs, path, hdu, rows, cols, units, whole_file, prefetched, settings, filesize, good_only
    correction
        As for :func:`read_frame`.
    expect_shape : tuple of int, optional
        The ``(ny, nx)`` the selection must have (e.g. from a probe of another frame);
        a different shape raises ``FrameReadError`` with reason ``"shape mismatch"``.

    Returns
    -------
    tuple of (float, int)
        Sum of the valid pixels (float64) and their count.

    Raises
    ------
    ValueError
        For an unknown ``units``, a slice with a step, or an empty cutout.
    FrameReadError
        When the file cannot be read (see :class:`~intake_helio.base.reasons.Reason`).
    """
    _check_args(units, hdu, rows, cols)
    settings = current() if settings is None else settings

    def run(src: _Source) -> tuple[float, int]:
        whole, info, exptime = _open_image(
            src, hdu, rows, cols, units, whole_file, settings, good_only, correction
        )
        pixels = _pixels(src, info, whole, rows, cols, settings.band_pixels)
        _check_shape(fs, path, pixels.shape, expect_shape)
        total, count = _reduce(pixels)
        if exptime is not None:
            total /= exptime
        return float(total), int(count)

    return _guarded(fs, path, settings, run, prefetched, filesize)


def read_header_values(
    fs,
    path: str,
    keys: Sequence[str] | None,
    hdu: int | str = "auto",
    *,
    settings: Settings | None = None,
    filesize: int | None = None,
) -> dict[str, Any]:
    """Read some header values of the image HDU, fetching only header bytes.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        Filesystem holding the file.
    path : str
        Path of the file on ``fs``.
    keys : sequence of str or None
        Header keywords (case-insensitive). For compressed images these are looked up
        in the uncompressed image header (``BITPIX``, ``NAXIS1``, ``BLANK`` ...).
        None returns every card.
    hdu : int or str
        ``"auto"``, an HDU index or an EXTNAME (see :func:`probe_frame`).
    settings : Settings, optional
        Retries and read sizes (:mod:`intake_helio.base.settings`); None reads
        ``dask.config`` once (:func:`~intake_helio.base.settings.current`).
    filesize : int, optional
        The file's size from the index (see :func:`probe_frame`).

    Returns
    -------
    dict
        ``{key: value}`` for every key asked for, ``None`` where it is missing.

    Raises
    ------
    TypeError
        When ``keys`` is a single string.
    FrameReadError
        When the header cannot be read.
    """
    if isinstance(keys, str):
        raise ArgumentTypeError(f"keys must be a sequence of keywords, not the string {keys!r}")
    _check_args("DN", hdu)
    settings = current() if settings is None else settings
    keys = None if keys is None else list(keys)

    def run(src: _Source) -> dict[str, Any]:
        info = _locate(src, hdu, settings)
        values = _header_dict(_image_header(info))
        if keys is None:
            return values
        return {key: values.get(key.strip().upper(), values.get(key)) for key in keys}

    return _guarded(fs, path, settings, run, filesize=filesize)

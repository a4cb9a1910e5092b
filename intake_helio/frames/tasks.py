"""The FITS reader's worker-side tasks: read a frame (or a batch of frames) and compute on
it in the same task.

The array tasks (:func:`read_block`, :func:`refused_block`, :func:`read_header_row`) are
the read tasks of :func:`~intake_helio.open_frames`' lazy arrays. :class:`MapTask` is the
FITS reader of the frame engine (:class:`~intake_helio.frames.reader.ItemReader`): the
engine's batch (:func:`~intake_helio.compute.batches.map_batch`) asks it for each frame's
values or reason, and :func:`generic_frame` applies the functions to a frame dask computed
(the generic path). Everything here is picklable and receives all it needs as arguments (a
:class:`~intake_helio.frames.spec.FrameSpec` and plain values), so that it runs the same on
the local scheduler, a ``LocalCluster``, a gateway cluster or any ``distributed.Client``. A
frame that cannot be read, or whose science function raises, gets a reason; it never stops
the other frames of its task.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base.errors import FrameReadError, picklable_cause
from ..base.reasons import Reason
from ..fits import frame as fits_frames
from ..fits.disk import DiskGeometryError
from ..fits.stats import STATISTICS, frame_stats
from ..io.failures import reason_for
from ..io.transport import FileSystems, filesystem
from .science import (
    BUILTINS,
    DISK_STATISTICS,
    ItemResult,
    apply_funcs,
    disk_error,
    disk_pixels,
    is_builtin,
)
from .spec import FrameSpec, ReadPlan, Window

__all__ = [
    "BUILTINS",
    "MapTask",
    "generic_frame",
    "header_source",
    "is_builtin",
    "no_header_row",
    "read_block",
    "read_header_row",
    "refused_block",
]


# --------------------------------------------------------------------------- array tasks
def read_block(datakey: str, filesize: int | None, window: Window, plan: ReadPlan):
    """Read one frame (or row band) as a ``(1, ny, nx)`` float32 block.

    With ``plan.on_error="nan"`` returns ``(block, reason)``, the block all NaN and the
    reason set when the frame cannot be read; ``reason`` is ``"ok"`` otherwise.
    ``datakey`` is the file ("": a placeholder, no frame here); ``filesize`` (the index's;
    None or 0: unknown) bounds the bytes read. ``plan.good_only``
    (``quality="good"``): a frame whose header ``QUALITY`` is not 0 fails with
    ``"quality flag 0x%08x"``, its pixels not decoded.
    """
    try:
        if not datakey:  # a placeholder: no frame here (open_channels)
            raise FrameReadError("", Reason.NO_FRAME_WITHIN_TOLERANCE)
        fs, path = filesystem(datakey, plan.storage_options)
        block = fits_frames.read_frame(
            fs,
            path,
            hdu=plan.hdu,
            rows=window.rows,
            cols=window.cols,
            units=plan.units,
            whole_file=plan.whole,
            settings=plan.settings,
            filesize=filesize,
            good_only=plan.good_only,
        )
        if block.shape != window.shape:
            raise FrameReadError(
                datakey,
                Reason.SHAPE_MISMATCH,
                f"found {block.shape}, expected {window.shape} from the probe",
            )
        block = block.astype(np.float32, copy=False)[np.newaxis]
    except Exception as exc:
        err = fits_frames.as_frame_error(datakey, exc)
        if plan.on_error == "nan":
            return np.full((1, *window.shape), np.nan, dtype=np.float32), str(err.reason)
        cause = exc
    else:
        return (block, str(Reason.OK)) if plan.on_error == "nan" else block
    # raised outside the except block: no unpicklable __context__ travels back from workers
    if err is cause:
        raise err
    raise err from picklable_cause(cause)


def refused_block(datakey: str, reason: str, window: Window, plan: ReadPlan):
    """The block of a frame never to be read (the URL policy refused its datakey).

    With ``plan.on_error="nan"``: an all-NaN ``(1, ny, nx)`` block and ``reason``; otherwise
    raises :class:`~intake_helio.FrameReadError` with it. Nothing is requested.
    """
    if plan.on_error == "nan":
        return np.full((1, *window.shape), np.nan, dtype=np.float32), reason
    raise FrameReadError(datakey, Reason.URL_NOT_ALLOWED, reason.partition(": ")[2])


def no_header_row(n: int) -> tuple[None, ...]:
    """The header values of a frame never read: ``(None,) * n``."""
    return (None,) * n


def read_header_row(
    datakey: str, filesize: int | None, plan: ReadPlan, keys: Sequence[str]
) -> tuple:
    """Header values of one file as a tuple in ``keys`` order, ``(None, ...)`` if unreadable."""
    try:
        fs, path = filesystem(datakey, plan.storage_options)
        values = fits_frames.read_header_values(
            fs, path, keys, hdu=plan.hdu, settings=plan.settings, filesize=filesize
        )
    except Exception:
        return tuple(None for _ in keys)
    return tuple(values.get(k) for k in keys)


# --------------------------------------------------------------------------- engine tasks
@dataclass(frozen=True)
class MapTask:
    """The FITS reader of one engine task: what it does with its frames (one value per
    task, beside the keys). It is an :class:`~intake_helio.frames.reader.ItemReader`.

    Attributes
    ----------
    spec : FrameSpec
        The frames' spec (for the task's keys only: :meth:`FrameSpec.subset`).
    window : tuple
        ``(rows, cols, pick_rows, pick_cols)``: the window read from each file and what is
        kept of it (a step or a list of rows/columns of the selection; None: all).
    funcs : tuple of (str, str or callable)
        The outputs: name and built-in statistic or function ``f(data, header)``.
    units : str
        ``"DN"`` or ``"DN/s"``.
    correction : callable, optional
        ``correction(header, datakey)``: a factor each frame is also divided by, from its
        header (:class:`~intake_helio.calibrate.Degradation`); None: none.
    """

    spec: FrameSpec
    window: tuple[slice, slice, Any, Any]
    funcs: tuple[tuple[str, str | Callable], ...]
    units: str
    correction: Any = None

    @property
    def whole(self) -> bool:
        """Each file is read whole in one request (the spec's whole window, no cutout)."""
        return self.spec.whole and (self.window[0], self.window[1]) == (
            self.spec.rows,
            self.spec.cols,
        )

    @property
    def storage_options(self) -> Any:
        """The frames' storage options (for the task's :class:`FileSystems`)."""
        return self.spec.storage_options

    @property
    def concurrency(self) -> int:
        """Cutouts (ranged reads) run at once: ``intake_helio.ranged-concurrency``."""
        return self.spec.settings.ranged_concurrency

    def read_ahead(self, keys: Sequence[str]) -> int:
        """Files fetched ahead: ``read-ahead``, more for small files (up to
        ``read-ahead-bytes``, at most 32).

        A small file is fetched in about one round trip and decoded in well under one:
        keeping only one ahead leaves the core waiting for each request's latency.
        """
        spec = self.spec
        depth = spec.settings.read_ahead
        sizes = [spec.filesize(k) or 0 for k in keys[:8]]
        typical = max(sizes) if sizes else 0
        if depth and typical > 0:
            depth = max(depth, min(32, spec.settings.read_ahead_bytes // typical))
        return depth

    def start(self, key: str, fs_of: FileSystems) -> concurrent.futures.Future | None:
        """Start fetching frame ``key``'s whole file (None: nothing to fetch ahead)."""
        spec = self.spec
        if not key or spec.refusal(key):
            return None
        try:
            fs, path = fs_of(key)
            return fits_frames.start_whole_read(
                fs, path, spec.filesize(key), settings=spec.settings
            )
        except Exception:  # the frame's own read reports it
            return None

    def item(self, key: str, prefetched, fs_of: FileSystems) -> ItemResult:
        """Frame ``key``'s values by output name and its status (``"ok"`` or the reason).

        Built-in statistics other than medians and percentiles are computed on the raw
        pixels while they are decoded (:func:`~intake_helio.fits.stats.frame_stats`);
        anything else on the float32 frame (:func:`~intake_helio.frames.science.apply_funcs`).
        """
        spec, funcs = self.spec, self.funcs
        rows, cols, pick_rows, pick_cols = self.window
        if not key:  # a placeholder: no frame here (open_channels)
            return {}, str(Reason.NO_FRAME_WITHIN_TOLERANCE)
        refusal = spec.refusal(key)
        if refusal:  # the URL policy refused its datakey: never requested
            return {}, refusal
        expect = (rows.stop - rows.start, cols.stop - cols.start)
        builtin_only = all(isinstance(f, str) for _, f in funcs)
        try:
            fs, path = fs_of(key)
            streamed = builtin_only and all(f in STATISTICS for _, f in funcs)  # not medians
            if streamed and pick_rows is None and pick_cols is None:
                stats = frame_stats(
                    fs,
                    path,
                    [f for _, f in funcs],
                    hdu=spec.hdu,
                    rows=rows,
                    cols=cols,
                    units=self.units,
                    expect_shape=expect,
                    whole_file=self.whole,
                    prefetched=prefetched,
                    settings=spec.settings,
                    filesize=spec.filesize(key),
                    good_only=spec.good_only,
                    correction=self.correction,
                )
                values = {name: stats[f] for name, f in funcs}
                return values, str(Reason.OK if stats["count"] else Reason.ALL_PIXELS_BLANK)
            data, header = fits_frames.read_frame(
                fs,
                path,
                hdu=spec.hdu,
                rows=rows,
                cols=cols,
                units=self.units,
                whole_file=self.whole,
                prefetched=prefetched,
                settings=spec.settings,
                with_header=True,
                filesize=spec.filesize(key),
                good_only=spec.good_only,
                correction=self.correction,
            )
            if data.shape != expect:
                raise FrameReadError(
                    key, Reason.SHAPE_MISMATCH, f"found {data.shape}, expected {expect}"
                )
            if pick_rows is not None:
                data = data[pick_rows]
            if pick_cols is not None:
                data = data[:, pick_cols]
        except DiskGeometryError as exc:  # a disk statistic on a frame without solar geometry
            first = next(n for n, f in funcs if isinstance(f, str) and f in DISK_STATISTICS)
            return {}, disk_error(first, exc)
        except Exception as exc:
            return {}, str(reason_for(exc))
        return _apply(
            funcs,
            data,
            header,
            lambda: disk_pixels(header, rows, cols, pick_rows, pick_cols),
        )


def _apply(funcs, data: np.ndarray, header, disk: Callable[[], np.ndarray]) -> ItemResult:
    """:func:`apply_funcs`, and ``"all pixels blank"`` for built-ins of an all-NaN frame."""
    values, status = apply_funcs(funcs, data, header, disk=disk)
    builtin_only = all(isinstance(f, str) for _, f in funcs)
    if status == Reason.OK and builtin_only and values and not np.any(~np.isnan(data)):
        status = str(Reason.ALL_PIXELS_BLANK)
    return values, status


# --------------------------------------------------------------------------- generic path
def header_source(spec: FrameSpec, key: str) -> tuple:
    """What :func:`generic_frame` needs to read frame ``key``'s header (a small tuple)."""
    return (key, spec.storage_options, spec.hdu, spec.settings)


def _header(source) -> dict[str, Any]:
    if source is None:
        return {}
    key, options, hdu, settings = source
    fs, path = filesystem(key, options)
    return fits_frames.read_header_values(fs, path, None, hdu=hdu, settings=settings)


def _disk(header: dict[str, Any], pixels: tuple | None) -> Callable[[], np.ndarray]:
    def mask() -> np.ndarray:
        if pixels is None or not header:
            raise DiskGeometryError(
                "the disk statistics need intake-helio frames (their headers) whose y/x "
                "coordinates are pixel indices"
            )
        return disk_pixels(header, *pixels)

    return mask


def generic_frame(
    block: np.ndarray,
    status: Any,
    funcs: Sequence[tuple[str, str | Callable]],
    normalize: bool,
    exptime: Any,
    source: tuple | None,
    pixels: tuple | None = None,
    correction: Any = None,
) -> list[ItemResult]:
    """Apply ``funcs`` to one frame dask computed: ``[(values, status)]`` (a one-frame batch).

    Parameters
    ----------
    block : numpy.ndarray
        The computed frame.
    status : object
        Its ``read_status`` (None: the array has none); a reason other than ``"ok"`` is the
        frame's.
    funcs : sequence of (str, str or callable)
        The outputs.
    normalize : bool
        Divide by the frame's ``EXPTIME`` (``exptime``, else its header's).
    exptime : object
        The frame's ``EXPTIME`` coordinate (None: read from the header).
    source : tuple, optional
        :func:`header_source` of the frame (None: no header).
    pixels : tuple, optional
        ``(rows, cols, pick_rows, pick_cols)`` of the frame's pixels: places them on the
        frame's disk for the disk statistics.
    correction : callable, optional
        ``correction(header, datakey)``: a factor the frame is also divided by (its
        header's; no header: the reason ``"no degradation correction"``).
    """
    if status is not None:
        status = str(np.asarray(status).reshape(-1)[0])
        if status != Reason.OK:
            return [({}, status)]
    try:
        header = _header(source)
    except Exception as exc:
        return [({}, str(reason_for(exc)))]
    data = np.asarray(block, dtype=np.float32)
    if normalize:
        value = np.asarray(exptime).reshape(-1)[0] if exptime is not None else None
        if value is None:
            value = header.get("EXPTIME")
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            return [({}, str(Reason.NO_EXPTIME))]
        data = data / np.float32(value)
    if correction is not None:
        if not header:
            return [({}, f"{Reason.NO_CORRECTION}: this array's frames have no FITS header")]
        try:
            data = data / np.float32(correction(header, source[0]))
        except Exception as exc:
            return [({}, str(reason_for(exc)))]
    return [_apply(funcs, data, header, _disk(header, pixels))]

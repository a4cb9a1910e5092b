"""Worker-side tasks: read a frame (or a batch of frames) and compute on it in the same task.

Every function here is a picklable top-level function that receives all it needs as
arguments (a :class:`~intake_helio.frames.spec.FrameSpec` and plain values), so that it
runs the same on the local scheduler, a ``LocalCluster``, a gateway cluster or any
``distributed.Client``. A frame that cannot be read, or whose science function raises,
gets a reason; it never stops the other frames of its task.
"""

from __future__ import annotations

import concurrent.futures
import math
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base.errors import FrameReadError, picklable_cause
from ..base.reasons import Reason
from ..fits import frame as fits_frames
from ..fits.disk import DiskGeometryError, disk_intervals, intervals_mask
from ..fits.stats import DISK_STATISTICS, STATISTICS, frame_stats
from ..io.failures import reason_for
from ..io.transport import FileSystems, filesystem
from .spec import FrameSpec, ReadPlan, Window

__all__ = [
    "BUILTINS",
    "FrameResult",
    "MapTask",
    "apply_funcs",
    "disk_pixels",
    "is_builtin",
    "map_batch",
    "no_header_row",
    "percentile_of",
    "read_block",
    "read_header_row",
    "refused_block",
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


#: One frame's outcome: ``(status, values)``, ``values`` aligned with the output names
#: (None when the frame has no value).
FrameResult = tuple[str, tuple[Any, ...] | None]


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


# --------------------------------------------------------------------------- science
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


def _disk_error(name: str, exc: BaseException) -> str:
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
                return {}, _disk_error(name, exc)
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


@dataclass(frozen=True)
class MapTask:
    """What one engine task does with its frames (one value per task, beside the keys).

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
    """

    spec: FrameSpec
    window: tuple[slice, slice, Any, Any]
    funcs: tuple[tuple[str, str | Callable], ...]
    units: str

    @property
    def whole(self) -> bool:
        """Each file is read whole in one request (the spec's whole window, no cutout)."""
        return self.spec.whole and (self.window[0], self.window[1]) == (
            self.spec.rows,
            self.spec.cols,
        )


def _read(task: MapTask, key: str, prefetched, fs_of: FileSystems):
    """``(data, header)`` of frame ``key`` in the task's window and units."""
    fs, path = fs_of(key)
    spec = task.spec
    return fits_frames.read_frame(
        fs,
        path,
        hdu=spec.hdu,
        rows=task.window[0],
        cols=task.window[1],
        units=task.units,
        whole_file=task.whole,
        prefetched=prefetched,
        settings=spec.settings,
        with_header=True,
        filesize=spec.filesize(key),
        good_only=spec.good_only,
    )


def _start_read(spec: FrameSpec, key: str, fs_of: FileSystems):
    if not key or spec.refusal(key):
        return None
    try:
        fs, path = fs_of(key)
        return fits_frames.start_whole_read(fs, path, spec.filesize(key), settings=spec.settings)
    except Exception:  # the frame's own read reports it
        return None


def _one(task: MapTask, key: str, prefetched, fs_of: FileSystems) -> tuple[dict[str, Any], str]:
    spec, funcs = task.spec, task.funcs
    rows, cols, pick_rows, pick_cols = task.window
    if not key:  # a placeholder: no frame here (open_channels)
        return {}, str(Reason.NO_FRAME_WITHIN_TOLERANCE)
    refusal = spec.refusal(key)
    if refusal:  # the URL policy refused its datakey: never requested
        return {}, refusal
    expect = (rows.stop - rows.start, cols.stop - cols.start)
    builtin_only = all(isinstance(f, str) for _, f in funcs)
    try:
        streamed = builtin_only and all(f in STATISTICS for _, f in funcs)  # not medians
        if streamed and pick_rows is None and pick_cols is None:
            fs, path = fs_of(key)
            stats = frame_stats(
                fs,
                path,
                [f for _, f in funcs],
                hdu=spec.hdu,
                rows=rows,
                cols=cols,
                units=task.units,
                expect_shape=expect,
                whole_file=task.whole,
                prefetched=prefetched,
                settings=spec.settings,
                filesize=spec.filesize(key),
                good_only=spec.good_only,
            )
            values = {name: stats[f] for name, f in funcs}
            return values, str(Reason.OK if stats["count"] else Reason.ALL_PIXELS_BLANK)
        data, header = _read(task, key, prefetched, fs_of)
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
        return {}, _disk_error(first, exc)
    except Exception as exc:
        return {}, str(reason_for(exc))
    values, status = apply_funcs(
        funcs, data, header, disk=lambda: disk_pixels(header, rows, cols, pick_rows, pick_cols)
    )
    if status == Reason.OK and builtin_only and values and not np.any(~np.isnan(data)):
        status = str(Reason.ALL_PIXELS_BLANK)
    return values, status


def _read_ahead(spec: FrameSpec, keys: Sequence[str]) -> int:
    """Frames fetched ahead: ``read-ahead``, more for small files (up to ``read-ahead-bytes``).

    A small file is fetched in about one round trip and decoded in well under one: keeping
    only one ahead leaves the core waiting for each request's latency.
    """
    depth = spec.settings.read_ahead
    sizes = [spec.filesize(k) or 0 for k in keys[:8]]
    typical = max(sizes) if sizes else 0
    if depth and typical > 0:
        depth = max(depth, min(32, spec.settings.read_ahead_bytes // typical))
    return depth


def map_batch(task: MapTask, keys: Sequence[str]) -> list[tuple[dict[str, Any], str]]:
    """Read consecutive frames of one spec and apply the task's functions to each.

    With whole-file reads the next ``intake_helio.read-ahead`` frames' files are fetched
    (on the filesystem's I/O thread; large files as concurrent ranged requests, see
    ``intake_helio.read-part-bytes``) while one is computed, so the core does not wait for
    the network (small files: up to ``read-ahead-bytes`` of them, at most 32). A task
    then holds at most ``1 + read-ahead`` large files in memory. Cutouts
    (ranged reads) of up to ``intake_helio.ranged-concurrency`` frames run at once.

    Parameters
    ----------
    task : MapTask
        The spec, window, functions and units.
    keys : sequence of str
        The task's frames, in order.

    Returns
    -------
    list of (dict, str)
        Per frame: the values by output name (empty when the frame has none) and its
        status (``"ok"`` or the reason).
    """
    spec = task.spec
    ahead: dict[int, Any] = {}
    depth = _read_ahead(spec, keys) if task.whole and len(keys) > 1 else 0
    started = 0  # frames whose read has been started (ahead) so far
    fs_of = FileSystems(spec.storage_options)  # one filesystem look-up per origin

    def start_until(stop: int) -> None:
        nonlocal started
        while started < min(stop, len(keys)):
            ahead[started] = _start_read(spec, keys[started], fs_of)
            started += 1

    if not task.whole and len(keys) > 1 and spec.settings.ranged_concurrency > 1:
        # cutouts: a few small ranged requests per frame, one after another; several frames
        # at once keep the core busy while each waits for its first bytes
        workers = min(len(keys), spec.settings.ranged_concurrency)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda k: _one(task, k, None, fs_of), keys))
    out = []
    try:
        for i, key in enumerate(keys):
            if depth:
                start_until(i + 1 + depth)
            out.append(_one(task, key, ahead.pop(i, None), fs_of))
    finally:
        for fut in ahead.values():
            if fut is not None:
                fut.cancel()
    return out

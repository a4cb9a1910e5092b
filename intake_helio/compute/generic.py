"""The generic path of the frame engine: arrays changed by arithmetic, ``where``, ...

Each frame is computed by dask as the array says (one task per frame, sharing the
frames' read tasks), then the functions run on it in the same task. A frame whose read
failed gets the read's reason (``read_status`` of ``on_error="nan"`` arrays, or the
``FrameReadError`` of ``on_error="raise"`` ones, caught per task); ``normalize=True``
divides by each frame's ``EXPTIME`` (its coordinate, or read from the frame's header).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..base.errors import HelioError
from ..base.reasons import Reason
from ..fits import frame as fits_frames
from ..fits.disk import DiskGeometryError
from ..fits.stats import DISK_STATISTICS
from ..frames.spec import frame_specs
from ..frames.tasks import apply_funcs, disk_pixels
from ..io.failures import reason_for
from ..io.transport import filesystem

__all__ = ["GenericError", "generic_frame", "generic_tasks"]


class GenericError(HelioError, ValueError):
    """A modified array lacks what the engine needs (e.g. EXPTIME for ``normalize``)."""


def _header(source) -> dict[str, Any]:
    if source is None:
        return {}
    key, options, hdu, settings = source
    fs, path = filesystem(key, options)
    return fits_frames.read_header_values(fs, path, None, hdu=hdu, settings=settings)


def _pixel_window(frames: xr.DataArray) -> tuple | None:
    """``(rows, cols, pick_rows, pick_cols)`` of the frames' pixels, from ``y``/``x``.

    None when the array's ``y``/``x`` are not the frame's pixel indices (e.g. after
    ``coarsen``): then its pixels have no place on the disk.
    """
    if frames.dims[1:] != ("y", "x") or "y" not in frames.coords or "x" not in frames.coords:
        return None
    out: list[Any] = []
    for dim in ("y", "x"):
        c = np.asarray(frames[dim].values)
        if c.ndim != 1 or c.size == 0 or not np.issubdtype(c.dtype, np.integer) or c.min() < 0:
            return None
        lo, hi = int(c.min()), int(c.max()) + 1
        contiguous = c.size == hi - lo and bool(np.array_equal(c, np.arange(lo, hi)))
        out.append((slice(lo, hi), None if contiguous else (c - lo).astype(np.intp)))
    (rows, pick_rows), (cols, pick_cols) = out
    return rows, cols, pick_rows, pick_cols


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
    header_source: tuple | None,
    pixels: tuple | None = None,
) -> list[tuple[dict[str, Any], str]]:
    """Apply ``funcs`` to one computed frame: ``[(values, status)]`` (a one-frame batch).

    ``pixels`` (``(rows, cols, pick_rows, pick_cols)`` of the frame's pixels) places them
    on the frame's disk for the disk statistics.
    """
    if status is not None:
        status = str(np.asarray(status).reshape(-1)[0])
        if status != Reason.OK:
            return [({}, status)]
    try:
        header = _header(header_source)
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
    values, st = apply_funcs(funcs, data, header, disk=_disk(header, pixels))
    builtin_only = all(isinstance(f, str) for _, f in funcs)
    if st == Reason.OK and builtin_only and not np.any(~np.isnan(data)):
        st = str(Reason.ALL_PIXELS_BLANK)
    return [(values, st)]


def generic_tasks(
    frames: xr.DataArray,
    idx: range,
    funcs: Sequence[tuple[str, str | Callable]],
    normalize: bool,
    token: str,
) -> tuple[list, list[tuple[int, int]]]:
    """One delayed task per frame of ``idx`` (and each task's frame span)."""
    needs_exptime = normalize and frames.attrs.get("units") != "DN/s"
    has_exptime = "EXPTIME" in frames.coords and frames["EXPTIME"].dims == ("time",)
    specs = {k: s for s in frame_specs(frames.data) for k in s.datakeys}
    if needs_exptime and not has_exptime and not specs:
        raise GenericError(
            "normalize=True needs each frame's EXPTIME: this array has no EXPTIME coordinate "
            "and is not made of intake-helio frames; open the frames with "
            "header_keys=['EXPTIME'] or units='DN/s'"
        )
    wants_disk = any(isinstance(f, str) and f in DISK_STATISTICS for _, f in funcs)
    wants_header = (
        wants_disk
        or any(not isinstance(f, str) for _, f in funcs)
        or (needs_exptime and not has_exptime)
    )
    pixels = _pixel_window(frames) if wants_disk else None
    keys = frames["datakey"].values if "datakey" in frames.coords else [None] * frames.sizes["time"]
    status = frames.coords.get("read_status")
    tasks, spans = [], []
    for i in idx:
        spec = specs.get(str(keys[i])) if keys[i] is not None else None
        source = (
            (str(keys[i]), spec.storage_options, spec.hdu, spec.settings)
            if wants_header and spec is not None and not spec.refusal(str(keys[i]))
            else None
        )
        st = status.data[i] if status is not None else None
        exptime = frames["EXPTIME"].data[i] if needs_exptime and has_exptime else None
        tasks.append(
            dask.delayed(generic_frame, pure=True)(
                frames.data[i],
                st,
                funcs,
                needs_exptime,
                exptime,
                source,
                pixels,
                dask_key_name=f"helio-generic-{token}-{i}",
            )
        )
        spans.append((i, i + 1))
    return tasks, spans

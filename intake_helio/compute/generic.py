"""The generic path of the frame engine: arrays changed by arithmetic, ``where``, ...

Each frame is computed by dask as the array says (one task per frame, sharing the
frames' read tasks), then the functions run on it in the same task. A frame whose read
failed gets the read's reason (``read_status`` of ``on_error="nan"`` arrays, or the
``FrameReadError`` of ``on_error="raise"`` ones, caught per task); ``normalize=True``
divides by each frame's ``EXPTIME`` (its coordinate, or read from the frame's header).
The graph is built here; what runs on each computed frame is the reader's
(:func:`~intake_helio.frames.reader.computed_item`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..base.errors import HelioError
from ..frames.reader import GEOMETRY_STATISTICS, computed_item, header_source
from ..frames.spec import FrameSpec, specs_by_key

__all__ = ["GenericError", "generic_tasks"]


class GenericError(HelioError, ValueError):
    """A modified array lacks what the engine needs (e.g. EXPTIME for ``normalize``)."""


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


def generic_tasks(
    frames: xr.DataArray,
    idx: range,
    funcs: Sequence[tuple[str, str | Callable]],
    normalize: bool,
    token: str,
    correction: Any = None,
    specs: Mapping[str, FrameSpec] | None = None,
) -> tuple[list, list[tuple[int, int]]]:
    """One delayed task per frame of ``idx`` (and each task's frame span); ``correction``:
    a factor each frame is also divided by, from its header; ``specs``: the array's
    :func:`~intake_helio.frames.spec.specs_by_key` (made here when not given: pass it when
    calling part after part, a pass over every file of the array each)."""
    needs_exptime = normalize and frames.attrs.get("units") != "DN/s"
    has_exptime = "EXPTIME" in frames.coords and frames["EXPTIME"].dims == ("time",)
    specs = specs_by_key(frames.data) if specs is None else specs
    if needs_exptime and not has_exptime and not specs:
        raise GenericError(
            "normalize=True needs each frame's EXPTIME: this array has no EXPTIME coordinate "
            "and is not made of intake-helio frames; open the frames with "
            "header_keys=['EXPTIME'] or units='DN/s'"
        )
    wants_disk = any(isinstance(f, str) and f in GEOMETRY_STATISTICS for _, f in funcs)
    wants_header = (
        wants_disk
        or any(not isinstance(f, str) for _, f in funcs)
        or (needs_exptime and not has_exptime)
        or correction is not None
    )
    pixels = _pixel_window(frames) if wants_disk else None
    keys = frames["datakey"].values if "datakey" in frames.coords else [None] * frames.sizes["time"]
    status = frames.coords.get("read_status")
    tasks, spans = [], []
    for i in idx:
        spec = specs.get(str(keys[i])) if keys[i] is not None else None
        source = (
            header_source(spec, str(keys[i]))
            if wants_header and spec is not None and not spec.refusal(str(keys[i]))
            else None
        )
        st = status.data[i] if status is not None else None
        exptime = frames["EXPTIME"].data[i] if needs_exptime and has_exptime else None
        tasks.append(
            dask.delayed(computed_item, pure=True)(
                frames.data[i],
                st,
                funcs,
                needs_exptime,
                exptime,
                source,
                pixels,
                correction,
                dask_key_name=f"helio-generic-{token}-{i}",
            )
        )
        spans.append((i, i + 1))
    return tasks, spans

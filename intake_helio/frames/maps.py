"""One frame of a lazy array as a sunpy Map, with its own full header.

``to_map(frames, i)`` reads the frame's image header (header bytes only) from its file and
its pixels through the lazy array (only the selected window's tiles), adjusts the WCS to
the window, and builds ``sunpy.map.Map(data, header)``: an ``AIAMap`` for AIA files, with
the frame's own date, wavelength, observer and pointing. sunpy is optional (the ``sunpy``
extra); it is imported only here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..base.errors import ArgumentError, HelioError
from ..base.times import parse_time
from ..fits import frame as fits_frames
from ..io.storage import filesystem
from .spec import frame_specs

__all__ = ["MissingSunpyError", "frame_header", "to_map"]

#: Cards that describe the stored integers, not the float pixels a Map receives.
_STORAGE_CARDS = ("BLANK", "BSCALE", "BZERO", "CHECKSUM", "DATASUM")


class MissingSunpyError(HelioError, ImportError):
    """sunpy (the ``sunpy`` extra) is needed and not installed."""


def _sunpy_map():
    try:
        import sunpy.map
    except ImportError as exc:
        raise MissingSunpyError(
            f'ih.to_map needs sunpy ({exc}): python -m pip install "intake-helio[sunpy]"'
        ) from exc
    return sunpy.map


def _one_frame(frames: xr.DataArray, i: Any) -> xr.DataArray:
    if frames.dims != ("time", "y", "x"):
        raise ArgumentError(
            f"frames has dimensions {frames.dims}; expected ('time', 'y', 'x') as made by "
            "ih.open_frames or Dataset.to_dataarray"
        )
    n = frames.sizes["time"]
    if isinstance(i, int | np.integer) and not isinstance(i, bool):
        if not -n <= int(i) < n:
            raise ArgumentError(f"frame index {i} is out of range for {n} frames")
        return frames.isel(time=int(i))
    try:
        t = parse_time(i, "i")
    except HelioError as exc:
        raise ArgumentError(
            f"i={i!r}; expected a frame index (int) or a time such as '2020-01-01T00:04'"
        ) from exc
    return frames.sel(time=t, method="nearest")


def frame_header(frames: xr.DataArray, i: Any) -> dict[str, Any]:
    """The full image header of frame ``i`` (index or time), read from its file.

    Only the header bytes are fetched. The cards are those of the image as stored (for a
    tile-compressed image, its uncompressed image header).

    Raises
    ------
    ArgumentError
        When ``frames`` is not made of intake-helio frames (no file to read the header from).
    """
    frame = _one_frame(frames, i)
    key = str(frame["datakey"].values) if "datakey" in frame.coords else ""
    specs = {k: s for s in frame_specs(frames.data) for k in s.datakeys}
    spec = specs.get(key)
    if spec is None:
        raise ArgumentError(
            "these frames do not come from ih.open_frames / Dataset.to_dataarray (no file "
            f"known for datakey {key!r}); open them with intake-helio to read their headers"
        )
    fs, path = filesystem(key, spec.storage_options)
    return fits_frames.read_header_values(fs, path, None, hdu=spec.hdu, settings=spec.settings)


def _window_start(coord: np.ndarray, name: str) -> int:
    start = int(coord[0])
    if not np.array_equal(coord, np.arange(start, start + coord.size)):
        raise ArgumentError(
            f"the frames' {name} pixels are not contiguous (a step or a list was selected); "
            "select a contiguous window (a slice with step 1) to make a Map"
        )
    return start


def to_map(frames: xr.DataArray, i: Any = 0) -> Any:
    """Frame ``i`` of ``frames`` as a ``sunpy.map.GenericMap`` (an ``AIAMap`` for AIA).

    Parameters
    ----------
    frames : xarray.DataArray
        Lazy ``(time, y, x)`` frames from :func:`~intake_helio.open_frames` or
        :meth:`~intake_helio.Dataset.to_dataarray`, possibly selected (a ``y``/``x`` window
        must be contiguous).
    i : int or time-like
        The frame's position, or a time (the nearest frame is taken).

    Returns
    -------
    sunpy.map.GenericMap
        The frame's pixels (its window, float32, NaN for BLANK; DN/s when the frames are
        in DN/s) with the frame's own full header, ``CRPIX1/2`` shifted to the window.

    Raises
    ------
    MissingSunpyError
        Without sunpy (``pip install "intake-helio[sunpy]"``).
    ArgumentError
        For an index out of range, a non-contiguous window, or frames not made by
        intake-helio.
    """
    smap = _sunpy_map()
    frame = _one_frame(frames, i)
    header = frame_header(frames, i)
    y0 = _window_start(np.asarray(frame["y"].values), "y")
    x0 = _window_start(np.asarray(frame["x"].values), "x")
    data = np.asarray(frame.values, dtype=np.float32)
    meta = {k: v for k, v in header.items() if k not in _STORAGE_CARDS and v is not None}
    meta["NAXIS"], meta["NAXIS1"], meta["NAXIS2"] = 2, data.shape[1], data.shape[0]
    meta["BITPIX"] = -32
    if "CRPIX1" in meta:
        meta["CRPIX1"] = float(meta["CRPIX1"]) - x0
    if "CRPIX2" in meta:
        meta["CRPIX2"] = float(meta["CRPIX2"]) - y0
    if frames.attrs.get("units") == "DN/s":
        meta["BUNIT"] = "DN/s"
    return smap.Map(data, meta)

"""One frame of a lazy array as a sunpy Map, with its own full header.

``to_map(frames, i)`` reads the frame's image header (header bytes only) from its file and
its pixels through the lazy array (only the selected window's tiles), adjusts the WCS to
the window, and builds ``sunpy.map.Map(data, header)``: an ``AIAMap`` for AIA files, with
the frame's own date, wavelength, observer and pointing. sunpy is optional (the ``sunpy``
extra); it is imported only here.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from ..base.errors import ArgumentError, FrameReadError, HelioError
from ..base.options import TOLERANCE
from ..base.reasons import Reason, reason_of
from ..base.times import parse_time
from ..calibrate.tables import aiapy_calibrate
from ..fits import frame as fits_frames
from ..io.transport import filesystem
from .spec import FrameSpec, frame_specs

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


def _one_frame(frames: xr.DataArray, i: Any, tolerance: Any = None) -> xr.DataArray:
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
    if tolerance is None:
        return frames.sel(time=t, method="nearest")
    try:
        tol = pd.Timedelta(tolerance)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(
            f"tolerance={tolerance!r}; expected a duration such as '6s' (or None: any)"
        ) from exc
    times = pd.DatetimeIndex(frames["time"].values)
    pos = times.get_indexer([t], method="nearest", tolerance=tol)[0] if len(times) else -1
    if pos < 0:
        gap = abs(times - t).min() if len(times) else None
        raise ArgumentError(
            f"no frame within tolerance={tolerance!r} of {t.isoformat()} (the nearest is "
            f"{gap} away); give a time nearer a frame, a larger tolerance, or tolerance=None"
        )
    return frames.isel(time=int(pos))


def frame_header(frames: xr.DataArray, i: Any, tolerance: Any = TOLERANCE) -> dict[str, Any]:
    """The full image header of frame ``i`` (index or time), read from its file.

    Only the header bytes are fetched. The cards are those of the image as stored (for a
    tile-compressed image, its uncompressed image header). ``tolerance``: as for
    :func:`to_map`.

    Raises
    ------
    ArgumentError
        When ``frames`` is not made of intake-helio frames (no file to read the header from),
        or no frame is within ``tolerance`` of a time ``i``.
    FrameReadError
        For a frame never to be read (a datakey the URL policy refused, a placeholder).
    """
    return _header_of(frames, _one_frame(frames, i, tolerance))


def _header_of(frames: xr.DataArray, frame: xr.DataArray) -> dict[str, Any]:
    spec, key = _spec_of(frames, frame)
    fs, path = filesystem(key, spec.storage_options)
    return fits_frames.read_header_values(fs, path, None, hdu=spec.hdu, settings=spec.settings)


def _spec_of(frames: xr.DataArray, frame: xr.DataArray) -> tuple[FrameSpec, str]:
    """The spec that reads ``frame`` and its datakey (raising when it is never read)."""
    key = str(frame["datakey"].values) if "datakey" in frame.coords else ""
    # a scan of the specs' files (no mapping of every file: a mission has 1.5 million)
    spec = next((s for s in frame_specs(frames.data) if key in s.datakeys), None)
    if spec is None:
        raise ArgumentError(
            "these frames do not come from ih.open_frames / Dataset.to_dataarray (no file "
            f"known for datakey {key!r}); open them with intake-helio to read their headers"
        )
    if not key or spec.refusal(key):
        why = spec.refusal(key) or str(Reason.NO_FRAME_WITHIN_TOLERANCE)
        raise FrameReadError(key, reason_of(why), why.partition(": ")[2])
    return spec, key


def _check_status(frame: xr.DataArray, status: str) -> None:
    """Raise the frame's reason when it has no value (``on_error="nan"`` frames)."""
    if status == Reason.OK:
        return
    key = str(frame["datakey"].values) if "datakey" in frame.coords else ""
    reason = reason_of(status)
    how = (
        "open the frames with quality=None to read a flagged frame anyway"
        if reason is Reason.QUALITY_FLAG
        else "choose another frame (result.status lists which have values)"
    )
    raise FrameReadError(
        key, status, f"frame at {pd.Timestamp(frame['time'].values).isoformat()}: {how}"
    )


def _window_start(coord: np.ndarray, name: str) -> int:
    start = int(coord[0])
    if not np.array_equal(coord, np.arange(start, start + coord.size)):
        raise ArgumentError(
            f"the frames' {name} pixels are not contiguous (a step or a list was selected); "
            "select a contiguous window (a slice with step 1) to make a Map"
        )
    return start


def to_map(
    frames: xr.DataArray,
    i: Any = 0,
    *,
    tolerance: Any = TOLERANCE,
    level: str | None = None,
    pointing_table: Any = None,
) -> Any:
    """Frame ``i`` of ``frames`` as a ``sunpy.map.GenericMap`` (an ``AIAMap`` for AIA).

    Parameters
    ----------
    frames : xarray.DataArray
        Lazy ``(time, y, x)`` frames from :func:`~intake_helio.open_frames` or
        :meth:`~intake_helio.Dataset.to_dataarray`, possibly selected (a ``y``/``x`` window
        must be contiguous).
    i : int or time-like
        The frame's position, or a time: the nearest frame within ``tolerance``.
    tolerance : str or Timedelta or None
        How far the frame taken for a time ``i`` may be from it (``"6s"``, as in
        :func:`~intake_helio.open_channels`); None: the nearest at any distance.
    level : {None, "1", "1.5"}
        ``"1.5"``: the Map registered with aiapy (``aiapy.calibrate.register``: rotated so
        that solar north is up, rescaled to AIA's 0.6 arcsec pixels, the Sun's centre at
        the image's centre), after ``aiapy.calibrate.update_pointing`` when a
        ``pointing_table`` is given. Needs aiapy (the ``aia`` extra) and a full-disk
        frame. For a window (a cutout or a ``y``/``x`` selection), aiapy registers the
        whole frame (which is then read whole) and the Map is its ``submap`` between the
        sky positions of the window's corners (as ``register(Map(file)).submap(...)``).
        None or ``"1"``: the frame as stored.
    pointing_table : astropy.table.QTable, optional
        With ``level="1.5"``: AIA's pointing table
        (``aiapy.calibrate.util.get_pointing_table``) for ``update_pointing`` first
        (full-resolution 4096x4096 frames only, as aiapy requires).

    Returns
    -------
    sunpy.map.GenericMap
        The frame's pixels (its window, float32, NaN for BLANK; DN/s when the frames are
        in DN/s, then with ``BUNIT = "DN/s"`` and ``EXPTIME = 1``, so its
        ``exposure_time`` is 1 s as after aiapy's ``normalize_exposure``) with the frame's
        own full header, ``CRPIX1/2`` shifted to the window.

    Raises
    ------
    MissingSunpyError
        Without sunpy (``pip install "intake-helio[sunpy]"``).
    ArgumentError
        For an index out of range, no frame within ``tolerance``, a non-contiguous window,
        or frames not made by intake-helio.
    FrameReadError
        When the frame has no value (its ``read_status`` with ``on_error="nan"``, e.g.
        ``"truncated"``, ``"quality flag 0x00000400"`` with ``quality="good"``, ``"URL not
        allowed"``): the reason is named; nothing all-NaN is returned as a Map.
    """
    if level not in (None, "1", "1.5"):
        raise ArgumentError(f"level={level!r}; expected None, '1' or '1.5'")
    if pointing_table is not None and level != "1.5":
        raise ArgumentError("pointing_table is used with level='1.5' only; pass level='1.5'")
    smap = _sunpy_map()
    frame = _one_frame(frames, i, tolerance)
    y0 = _window_start(np.asarray(frame["y"].values), "y")
    x0 = _window_start(np.asarray(frame["x"].values), "x")
    header = _header_of(frames, frame)
    dn_per_s = frames.attrs.get("units") == "DN/s"
    if level == "1.5":
        spec, _ = _spec_of(frames, frame)
        if (frame.sizes["y"], frame.sizes["x"]) != tuple(spec.shape):
            return _window_15(smap, frame, spec, header, (y0, x0), pointing_table)
    if "read_status" in frame.coords:  # pixels and status from the same (one) read
        pixels, status = dask.compute(frame.data, frame["read_status"].data)
        _check_status(frame, str(np.asarray(status).reshape(-1)[0]))
    else:
        pixels = frame.values
    out = smap.Map(*_map_args(pixels, header, y0, x0, dn_per_s))
    return _level_15(out, pointing_table) if level == "1.5" else out


def _map_args(
    pixels: Any, header: dict[str, Any], y0: int, x0: int, dn_per_s: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """The float32 data and the header of a Map of pixels starting at ``(y0, x0)``."""
    data = np.asarray(pixels, dtype=np.float32)
    meta = {k: v for k, v in header.items() if k not in _STORAGE_CARDS and v is not None}
    meta["NAXIS"], meta["NAXIS1"], meta["NAXIS2"] = 2, data.shape[1], data.shape[0]
    meta["BITPIX"] = -32
    if "CRPIX1" in meta:
        meta["CRPIX1"] = float(meta["CRPIX1"]) - x0
    if "CRPIX2" in meta:
        meta["CRPIX2"] = float(meta["CRPIX2"]) - y0
    if dn_per_s:
        # divided by EXPTIME in the read: an exposure of 1 s from here on, as aiapy's
        # normalize_exposure leaves it (``m / m.exposure_time`` does not divide twice)
        meta["BUNIT"] = "DN/s"
        meta["EXPTIME"] = 1.0
    return data, meta


def _window_15(
    smap: Any,
    frame: xr.DataArray,
    spec: FrameSpec,
    header: dict[str, Any],
    start: tuple[int, int],
    pointing_table: Any,
) -> Any:
    """Level 1.5 of a window: the whole frame registered, then the window's sky area of it.

    aiapy registers whole frames only (it rotates, rescales and recentres them), so the
    whole frame is read; the window's corners are taken to the sky with the frame's own
    (pointing-updated) WCS, and the registered Map's ``submap`` between them is returned.
    """
    import astropy.units as u  # with sunpy, which needs it

    key = str(frame["datakey"].values)
    fs, path = filesystem(key, spec.storage_options)
    pixels = fits_frames.read_frame(
        fs,
        path,
        spec.hdu,
        units=spec.units,
        settings=spec.settings,
        filesize=spec.filesize(key),
        good_only=spec.good_only,
    )
    whole = smap.Map(*_map_args(pixels, header, 0, 0, spec.units == "DN/s"))
    calibrate = aiapy_calibrate("level='1.5'")
    if pointing_table is not None:
        whole = _aiapy(calibrate.update_pointing, whole, pointing_table=pointing_table)
    (y0, x0), (ny, nx) = start, (frame.sizes["y"], frame.sizes["x"])
    corners = whole.pixel_to_world(
        [x0 - 0.5, x0 + nx - 0.5] * u.pix, [y0 - 0.5, y0 + ny - 0.5] * u.pix
    )
    registered = _aiapy(calibrate.register, whole)
    return registered.submap(corners[0], top_right=corners[1])


def _aiapy(step: Any, smap: Any, **kwargs: Any) -> Any:
    """``step(smap)`` (aiapy's register or update_pointing), its refusal in one line."""
    try:
        return step(smap, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(
            f"level='1.5': aiapy cannot register this frame ({exc}); aiapy registers "
            "whole AIA frames (full disk; update_pointing: 4096x4096)"
        ) from exc


def _level_15(smap: Any, pointing_table: Any) -> Any:
    """aiapy's ``register`` (after ``update_pointing`` with a table) of ``smap``."""
    calibrate = aiapy_calibrate("level='1.5'")
    if pointing_table is not None:
        smap = _aiapy(calibrate.update_pointing, smap, pointing_table=pointing_table)
    return _aiapy(calibrate.register, smap)

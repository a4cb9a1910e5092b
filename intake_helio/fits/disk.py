"""Solar geometry from a frame's own header: world coordinates, pixel windows, the disk.

Everything here works from one image header's WCS (``CRPIX``, ``CDELT``, ``CRVAL``, ``PC`` or
``CROTA2``, ``CTYPE``/``CUNIT``) and observer keys (``DSUN_OBS``, ``RSUN_REF``,
``RSUN_OBS``), with astropy's WCS, so that each frame uses its own pointing:

- :func:`solar_axes`: 1-D helioprojective ``Tx``/``Ty`` (arcsec) along a window's reference
  row and column;
- :func:`arcsec_window`: the pixel window covering a box in arcsec (or two SkyCoord corners);
- :func:`disk_mask`: which pixels of a window are on the solar disk, the same test as sunpy's
  ``coordinate_is_on_solar_disk`` (angular distance from disk centre below
  ``arcsin(RSUN_REF / DSUN_OBS)``), exact at the limb.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..base.errors import ArgumentError

__all__ = ["RSUN_REF_M", "arcsec_window", "disk_mask", "solar_axes", "wcs_of"]

#: sunpy's default solar radius (m) when a header has no ``RSUN_REF``.
RSUN_REF_M = 695_700_000.0
_WCS_KEYS = (
    "CTYPE1",
    "CTYPE2",
    "CUNIT1",
    "CUNIT2",
    "CRPIX1",
    "CRPIX2",
    "CDELT1",
    "CDELT2",
    "CRVAL1",
    "CRVAL2",
    "PC1_1",
    "PC1_2",
    "PC2_1",
    "PC2_2",
    "CROTA2",
    "LONPOLE",
    "LATPOLE",
)


def _ctype(value: Any) -> str:
    """A CTYPE for a message: quoted only when it looks like a WCS axis type (file text)."""
    if value is None:
        return "missing"
    text = str(value)
    return repr(text) if re.fullmatch(r"[A-Z0-9-]{1,8}", text) else "not a WCS axis type"


def wcs_of(header: Mapping[str, Any], rows: slice | None = None, cols: slice | None = None):
    """An ``astropy.wcs.WCS`` for the header's image, or its window (CRPIX shifted).

    Raises
    ------
    ArgumentError
        When the header has no helioprojective celestial WCS.
    """
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    h = fits.Header()
    h["NAXIS"] = 2
    for key in _WCS_KEYS:
        if header.get(key) is not None:
            h[key] = header[key]
    if not str(h.get("CTYPE1", "")).startswith("HPLN") or not str(h.get("CTYPE2", "")).startswith(
        "HPLT"
    ):
        raise ArgumentError(
            f"the frame's WCS is not helioprojective (CTYPE1 {_ctype(h.get('CTYPE1'))}, "
            f"CTYPE2 {_ctype(h.get('CTYPE2'))}); expected HPLN-TAN / HPLT-TAN"
        )
    for key in ("CUNIT1", "CUNIT2"):
        h.setdefault(key, "arcsec")
    if cols is not None and cols.start:
        h["CRPIX1"] = float(h.get("CRPIX1", 0.0)) - cols.start
    if rows is not None and rows.start:
        h["CRPIX2"] = float(h.get("CRPIX2", 0.0)) - rows.start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(h)


def _arcsec(wcs, x, y) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates (arcsec, wrapped to [-180, 180) deg) of 0-based pixels."""
    lon, lat = wcs.wcs_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
    lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
    return lon * 3600.0, np.asarray(lat) * 3600.0


def solar_axes(
    header: Mapping[str, Any], rows: slice, cols: slice
) -> tuple[np.ndarray, np.ndarray]:
    """``Tx`` along ``cols`` and ``Ty`` along ``rows`` (arcsec), from the reference pixel.

    ``Tx`` is taken along the row through the reference pixel and ``Ty`` along its column:
    exact for unrotated images, the reference row/column values for slightly rotated ones.
    """
    wcs = wcs_of(header)
    ref_x = float(header.get("CRPIX1", 1.0)) - 1.0
    ref_y = float(header.get("CRPIX2", 1.0)) - 1.0
    xs = np.arange(cols.start, cols.stop, dtype=float)
    ys = np.arange(rows.start, rows.stop, dtype=float)
    tx, _ = _arcsec(wcs, xs, np.full_like(xs, ref_y))
    _, ty = _arcsec(wcs, np.full_like(ys, ref_x), ys)
    return tx, ty


def arcsec_window(
    header: Mapping[str, Any], shape: tuple[int, int], tx: slice, ty: slice
) -> tuple[slice, slice]:
    """The pixel window ``(rows, cols)`` covering ``Tx`` in ``tx`` and ``Ty`` in ``ty`` (arcsec).

    The four corners of the box are mapped to pixels with the header's WCS and the window
    is their bounding box, rounded outwards and clipped to the frame (as sunpy's ``submap``
    with two corners).

    Raises
    ------
    ArgumentError
        When a bound is missing or the box does not overlap the frame.
    """
    for name, s in (("Tx", tx), ("Ty", ty)):
        if not isinstance(s, slice) or s.start is None or s.stop is None or s.step is not None:
            raise ArgumentError(
                f"cutout[{name!r}]={s!r}; expected slice(low, high) in arcsec, e.g. "
                "dict(Tx=slice(-600, 0), Ty=slice(-300, 300))"
            )
    wcs = wcs_of(header)
    corners_tx = np.array([tx.start, tx.stop, tx.start, tx.stop], float) / 3600.0
    corners_ty = np.array([ty.start, ty.start, ty.stop, ty.stop], float) / 3600.0
    px, py = wcs.wcs_world2pix(corners_tx, corners_ty, 0)
    ny, nx = shape
    x0, x1 = max(0, math.floor(px.min() + 0.5)), min(nx, math.ceil(px.max() + 0.5))
    y0, y1 = max(0, math.floor(py.min() + 0.5)), min(ny, math.ceil(py.max() + 0.5))
    if x1 <= x0 or y1 <= y0:
        raise ArgumentError(
            f"cutout Tx={tx.start}..{tx.stop}, Ty={ty.start}..{ty.stop} arcsec lies outside the "
            f"frame ({ny}x{nx} pixels); check the bounds (arcsec from disk centre)"
        )
    return slice(y0, y1), slice(x0, x1)


def _angular_radius_arcsec(header: Mapping[str, Any]) -> float:
    dsun = header.get("DSUN_OBS")
    if dsun:
        rsun = float(header.get("RSUN_REF") or RSUN_REF_M)
        return math.degrees(math.asin(rsun / float(dsun))) * 3600.0
    rsun_obs = header.get("RSUN_OBS")
    if rsun_obs:
        return float(rsun_obs)
    raise ArgumentError(
        "the frame's header has neither DSUN_OBS nor RSUN_OBS: the solar disk's size is unknown"
    )


def _separation_arcsec(tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    """Angular distance from disk centre (0, 0) of helioprojective points (arcsec)."""
    lon, lat = np.radians(tx / 3600.0), np.radians(ty / 3600.0)
    # haversine: accurate for small angles
    h = np.sin(lat / 2) ** 2 + np.cos(lat) * np.sin(lon / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h))) * 3600.0


def disk_mask(header: Mapping[str, Any], rows: slice, cols: slice) -> np.ndarray:
    """Boolean ``(ny, nx)`` mask of the window's pixels that lie on the solar disk.

    Uses the frame's own WCS and observer distance: a pixel is on the disk when its angular
    distance from disk centre is below ``arcsin(RSUN_REF / DSUN_OBS)`` (``RSUN_OBS`` when
    ``DSUN_OBS`` is missing), as sunpy's ``coordinate_is_on_solar_disk``. Pixels far from
    the limb are classified with a linear model of the WCS; those within two pixels of it
    with the exact projection.
    """
    wcs = wcs_of(header)
    radius = _angular_radius_arcsec(header)
    ny, nx = rows.stop - rows.start, cols.stop - cols.start
    # the disk centre and the scale in pixels, from the exact WCS
    (cx,), (cy,) = wcs.wcs_world2pix([0.0], [0.0], 0)
    scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0
    r_pix = radius / scale
    ys = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None] - cy
    xs = np.arange(cols.start, cols.stop, dtype=np.float64)[None, :] - cx
    r2 = ys * ys + xs * xs
    mask = r2 < r_pix * r_pix
    near = (r2 > max(r_pix - 2.0, 0.0) ** 2) & (r2 < (r_pix + 2.0) ** 2)
    if near.any():
        iy, ix = np.nonzero(near)
        tx, ty = _arcsec(wcs, ix + cols.start, iy + rows.start)
        mask[iy, ix] = _separation_arcsec(tx, ty) < radius
    return mask.reshape(ny, nx)

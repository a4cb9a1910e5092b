"""Solar geometry from a frame's own header: world coordinates, pixel windows, the disk.

Everything here works from one image header's WCS (``CRPIX``, ``CDELT``, ``CRVAL``, ``PC`` or
``CROTA2``, ``CTYPE``/``CUNIT``) and observer keys (``DSUN_OBS``, ``RSUN_REF``,
``RSUN_OBS``), with astropy's WCS, so that each frame uses its own pointing:

- :func:`solar_axes`: 1-D helioprojective ``Tx``/``Ty`` (arcsec) along a window's reference
  row and column;
- :func:`arcsec_window`: the pixel window covering a box in arcsec;
- :func:`pixel_window`: the pixel window covering a box's corners given in pixels (as sunpy's
  ``submap`` rounds them);
- :func:`disk_mask`: which pixels of a window are on the solar disk, the same test as sunpy's
  ``coordinate_is_on_solar_disk`` (angular distance from disk centre below
  ``arcsin(RSUN_REF / DSUN_OBS)``), exact at the limb;
- :func:`disk_intervals`: the same pixels as one run of columns per row, found in O(rows)
  from the disk's ellipse in pixel space (what the ``disk_*`` statistics use).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..base.errors import ArgumentError
from .pixels import _BadArgument

__all__ = [
    "RSUN_REF_M",
    "WCS_CARDS",
    "DiskGeometryError",
    "arcsec_window",
    "disk_intervals",
    "disk_mask",
    "intervals_mask",
    "pixel_window",
    "solar_axes",
    "wcs_of",
]

#: sunpy's default solar radius (m) when a header has no ``RSUN_REF``.
RSUN_REF_M = 695_700_000.0
#: The header cards of a frame's celestial WCS (what :func:`wcs_of` reads).
WCS_CARDS = (
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
    for key in WCS_CARDS:
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
    window = pixel_window(shape, px, py)
    if window is None:
        ny, nx = shape
        raise ArgumentError(
            f"cutout Tx={tx.start}..{tx.stop}, Ty={ty.start}..{ty.stop} arcsec lies outside the "
            f"frame ({ny}x{nx} pixels); check the bounds (arcsec from disk centre)"
        )
    return window


def pixel_window(
    shape: tuple[int, int], px: np.ndarray, py: np.ndarray
) -> tuple[slice, slice] | None:
    """The pixel window ``(rows, cols)`` of the pixels touched by a box's corners.

    ``px``/``py`` are the 0-based pixel positions of the corners; the window is their
    bounding box with every pixel that the box covers at least partly (rounded as sunpy's
    ``GenericMap.submap``: ``floor(low + 0.5)`` to ``ceil(high - 0.5) + 1``), clipped to a
    frame of ``shape`` ``(ny, nx)``.

    Returns
    -------
    (slice, slice) or None
        ``(rows, cols)``; None when the box does not overlap the frame or a corner is NaN.
    """
    px, py = np.asarray(px, float), np.asarray(py, float)
    if px.size == 0 or not (np.isfinite(px).all() and np.isfinite(py).all()):
        return None
    ny, nx = shape
    x0, x1 = max(0, math.floor(px.min() + 0.5)), min(nx, math.ceil(px.max() - 0.5) + 1)
    y0, y1 = max(0, math.floor(py.min() + 0.5)), min(ny, math.ceil(py.max() - 0.5) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1)


class DiskGeometryError(_BadArgument):
    """A frame's header does not give its solar disk (no helioprojective WCS or radius).

    An ``ArgumentError`` that frame readers pass on unchanged (not as a read failure), so
    that a disk statistic on such a frame gets its own status.
    """


def _angular_radius_rad(header: Mapping[str, Any]) -> float:
    """The solar disk's angular radius (radians): ``arcsin(RSUN_REF / DSUN_OBS)``, as sunpy."""
    dsun = header.get("DSUN_OBS")
    if dsun:
        rsun = float(header.get("RSUN_REF") or RSUN_REF_M)
        return math.asin(rsun / float(dsun))
    rsun_obs = header.get("RSUN_OBS")
    if rsun_obs:
        return math.radians(float(rsun_obs) / 3600.0)
    raise ArgumentError(
        "the frame's header has neither DSUN_OBS nor RSUN_OBS: the solar disk's size is unknown"
    )


def _on_disk_exact(wcs, x, y, radius: float) -> np.ndarray:
    """sunpy's test on 0-based frame pixels: ``arccos(cos(Tx) cos(Ty)) <= radius`` (radians)."""
    lon, lat = wcs.wcs_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
    lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
    lon, lat = np.radians(lon), np.radians(np.asarray(lat))
    return np.arccos(np.cos(lon) * np.cos(lat)) <= radius


def _unit(lon_deg, lat_deg) -> np.ndarray:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _tan_quadric(wcs, radius: float) -> tuple[np.ndarray, float, float] | None:
    """The disk as a conic in pixels: ``(Q, cx, cy)`` with ``h @ Q @ h >= 0`` on the disk.

    ``h = (x - cx, y - cy, 1)`` for 0-based frame pixels, ``(cx, cy)`` the disk centre. In
    the gnomonic (TAN) projection a pixel's direction is a linear map ``M`` of ``(x, y, 1)``
    (the intermediate coordinates are affine in the pixels, the native direction is
    ``(-y, x, 1)`` in them, a rotation takes it to helioprojective); a direction is within
    ``radius`` of disk centre ``e0`` when ``(e0 . v)**2 >= cos(radius)**2 |v|**2`` (and
    ``e0 . v > 0``), a quadratic form. None when the WCS is not a plain TAN projection
    whose tangent point is near the disk (then each pixel is tested exactly).
    """
    ctypes = [str(c) for c in wcs.wcs.ctype]
    if not all(c.endswith("-TAN") for c in ctypes) or wcs.wcs.lng != 0 or wcs.wcs.lat != 1:
        return None
    scale = np.radians(np.asarray(wcs.pixel_scale_matrix, float))  # rad per pixel
    c0 = np.asarray(wcs.wcs.crpix, float) - 1.0  # 0-based reference pixel
    if not np.all(np.isfinite(scale)) or abs(np.linalg.det(scale)) == 0:
        return None
    # K: homogeneous pixels -> unnormalised native direction (-y_i, x_i, 1), (x_i, y_i) in rad
    k = np.zeros((3, 3))
    k[0, :2], k[0, 2] = -scale[1], scale[1] @ c0
    k[1, :2], k[1, 2] = scale[0], -(scale[0] @ c0)
    k[2, 2] = 1.0
    # the native -> helioprojective rotation, from three well-separated points through astropy
    inter = np.array([[0.0, 0.0], [0.3, 0.0], [0.0, 0.3]])  # (x_i, y_i) in rad
    pix = c0 + np.linalg.solve(scale, inter.T).T
    lon, lat = wcs.wcs_pix2world(pix[:, 0], pix[:, 1], 0)
    u = _unit(lon, lat)  # columns: directions
    n = np.array([-inter[:, 1], inter[:, 0], np.ones(3)])
    n /= np.linalg.norm(n, axis=0)
    rot = u @ np.linalg.inv(n)
    if not np.all(np.isfinite(rot)) or np.abs(rot @ rot.T - np.eye(3)).max() > 1e-9:
        return None
    m = rot @ k
    # the tangent point must see the whole disk on the near side (an ellipse in the plane)
    if rot[0, 2] <= math.sin(radius) + 0.2:
        return None
    centre = np.linalg.solve(m, np.array([1.0, 0.0, 0.0]))
    cx, cy = centre[0] / centre[2], centre[1] / centre[2]
    m = m @ np.array([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])
    q = m.T @ np.diag([math.sin(radius) ** 2, -(math.cos(radius) ** 2), -(math.cos(radius) ** 2)])
    q = q @ m
    q = (q + q.T) / 2
    if not (q[0, 0] < 0 and q[0, 0] * q[1, 1] - q[0, 1] ** 2 > 0):
        return None
    return q, float(cx), float(cy)


def disk_intervals(
    header: Mapping[str, Any], rows: slice, cols: slice
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the window, the columns on the solar disk: ``cols[lo[i]:hi[i]]`` of row ``i``.

    The same pixels as :func:`disk_mask` (the disk is convex, so each row's disk pixels are
    one run), found per row from the disk's conic in pixel space (the gnomonic projection
    maps the disk's cone to an ellipse) in O(rows): pixel centres within a small margin of
    the limb are tested with astropy's WCS and sunpy's formula.

    Parameters
    ----------
    header : mapping
        The frame's image header (WCS keys and ``DSUN_OBS``/``RSUN_REF`` or ``RSUN_OBS``).
    rows, cols : slice
        The window (0-based pixel indices of the frame, no step).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``lo`` and ``hi`` (int64, one per row of the window, relative to ``cols.start``;
        ``lo == hi`` for a row without disk pixels).

    Raises
    ------
    DiskGeometryError
        (an ``ArgumentError``) When the header has no helioprojective WCS or no solar radius.
    """
    try:
        wcs = wcs_of(header)
        radius = _angular_radius_rad(header)
    except ArgumentError as exc:
        raise DiskGeometryError(str(exc)) from None
    except (ValueError, TypeError, ArithmeticError) as exc:  # astropy's text may quote the file
        raise DiskGeometryError(
            f"the frame's WCS or observer keys cannot be used ({type(exc).__name__})"
        ) from None
    nx = cols.stop - cols.start
    conic = _tan_quadric(wcs, radius)
    if conic is None:  # not TAN: every pixel through the WCS (slower, exact), in row blocks
        xs = np.arange(cols.start, cols.stop, dtype=np.float64)
        step = max(1, 2**20 // max(nx, 1))
        runs = []
        for y0 in range(rows.start, rows.stop, step):
            ys = np.arange(y0, min(rows.stop, y0 + step), dtype=np.float64)
            iy, ix = np.repeat(ys, nx), np.tile(xs, len(ys))
            runs.append(_runs(_on_disk_exact(wcs, ix, iy, radius).reshape(len(ys), nx)))
        return np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs])
    q, cx, cy = conic
    s = np.arange(rows.start, rows.stop, dtype=np.float64) - cy
    a = q[0, 0]
    b = 2.0 * (q[0, 1] * s + q[0, 2])
    c = (q[1, 1] * s + 2.0 * q[1, 2]) * s + q[2, 2]
    disc = b * b - 4.0 * a * c
    # rounding of disc, and the roots' error from it (a few 1e-5 pixels for AIA's limb)
    err = 16.0 * np.finfo(float).eps * (b * b + 4.0 * abs(a) * np.abs(c))
    tol = 1e-7 + np.sqrt(err) / (2.0 * abs(a))
    root = np.sqrt(np.maximum(disc, 0.0))
    mid = cx - b / (2.0 * a)
    half = root / (2.0 * abs(a))
    x1, x2 = mid - half, mid + half  # frame pixels; on disk for x1 <= x <= x2
    some = disc >= -err
    lo = np.where(some, np.ceil(x1), 0.0)
    hi = np.where(some, np.floor(x2) + 1.0, 0.0)
    lo = np.where(disc > err, lo, np.inf)  # tangent rows: decided below
    hi = np.where(disc > err, hi, -np.inf)
    # pixels whose centre is within tol of a root: test them exactly
    cand_rows, cand_x = [], []
    for e in (x1, x2):
        k = np.ceil(e - tol)
        near = some & (k <= e + tol)
        cand_rows.append(np.flatnonzero(near))
        cand_x.append(k[near])
    if cand_rows[0].size or cand_rows[1].size:
        r_idx = np.concatenate(cand_rows)
        x_idx = np.concatenate(cand_x)
        on = _on_disk_exact(wcs, x_idx, r_idx + rows.start, radius)
        for r, x, ok in zip(r_idx.tolist(), x_idx.tolist(), on.tolist(), strict=True):
            if ok:
                lo[r], hi[r] = min(lo[r], x), max(hi[r], x + 1.0)
            elif x < mid[r]:
                lo[r] = max(lo[r], x + 1.0)
            else:
                hi[r] = min(hi[r], x)
    lo = np.clip(lo, cols.start, cols.stop) - cols.start
    hi = np.clip(hi, cols.start, cols.stop) - cols.start
    empty = hi <= lo
    return np.where(empty, 0.0, lo).astype(np.int64), np.where(empty, 0.0, hi).astype(np.int64)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` of each row's first and last True + 1 (0, 0 for none)."""
    any_ = mask.any(axis=1)
    lo = np.where(any_, mask.argmax(axis=1), 0)
    hi = np.where(any_, mask.shape[1] - mask[:, ::-1].argmax(axis=1), 0)
    return lo.astype(np.int64), hi.astype(np.int64)


def intervals_mask(lo: np.ndarray, hi: np.ndarray, nx: int) -> np.ndarray:
    """The boolean ``(len(lo), nx)`` mask of per-row runs ``[lo, hi)``."""
    mask = np.zeros((len(lo), nx), dtype=bool)
    for i in np.flatnonzero(hi > lo).tolist():
        mask[i, lo[i] : hi[i]] = True
    return mask


def disk_mask(header: Mapping[str, Any], rows: slice, cols: slice) -> np.ndarray:
    """Boolean ``(ny, nx)`` mask of the window's pixels that lie on the solar disk.

    Uses the frame's own WCS and observer distance: a pixel is on the disk when its angular
    distance from disk centre is at most ``arcsin(RSUN_REF / DSUN_OBS)`` (``RSUN_OBS`` when
    ``DSUN_OBS`` is missing), as sunpy's ``coordinate_is_on_solar_disk``; the rows' runs come
    from :func:`disk_intervals` (the exact projection at the limb).
    """
    lo, hi = disk_intervals(header, rows, cols)
    return intervals_mask(lo, hi, cols.stop - cols.start)

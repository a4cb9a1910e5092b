"""Solar coordinates of lazy frames: ``Tx``/``Ty`` axes, reference attrs, arcsec cutouts.

:func:`~intake_helio.frames.build.open_frames` takes everything here from the header of its
reference frame (the first probed frame of the array's shape, read by the probe: no extra
request):

- :func:`solar_coords`: 1-D helioprojective ``Tx`` (along ``x``) and ``Ty`` (along ``y``) in
  arcsec for the array's window;
- :func:`reference_attrs`: the reference frame's WCS and observer cards, ``CRPIX1/2`` shifted
  to the window (as sunpy's ``submap`` does), so that ``sunpy.map.Map(frames[0].values,
  frames.attrs)`` is that frame's map;
- :func:`arcsec_window` and :func:`corners_window`: the pixel window of a cutout given in
  arcsec (``dict(Tx=slice(-600, 0), Ty=slice(-300, 300))``) or by two ``SkyCoord``
  corners, the window sunpy's ``Map.submap(bottom_left, top_right=...)`` gives (the
  cutout itself is read by :func:`intake_helio.frames.options.parse_cutout`).

astropy is imported when a coordinate is computed; sunpy only for ``SkyCoord`` corners that
need a transformation to the reference frame's helioprojective frame.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..base.errors import ArgumentError, HelioError
from ..fits.disk import WCS_CARDS, arcsec_window, pixel_window, solar_axes, wcs_of
from .maps import MissingSunpyError

__all__ = [
    "PIXEL_KEYS",
    "SOLAR_KEYS",
    "WCS_KEYS",
    "corners_window",
    "reference_attrs",
    "solar_coords",
]

#: Header cards of the reference frame copied to the array's attrs: its WCS and observer,
#: and what sunpy needs to pick the instrument's map class (``AIAMap`` ...).
WCS_KEYS = (
    *WCS_CARDS,
    "DATE-OBS",
    "T_OBS",
    "DSUN_OBS",
    "HGLN_OBS",
    "HGLT_OBS",
    "CRLN_OBS",
    "CRLT_OBS",
    "RSUN_OBS",
    "RSUN_REF",
    "WAVELNTH",
    "WAVEUNIT",
    "TELESCOP",
    "INSTRUME",
    "DETECTOR",
    "OBSRVTRY",
)
#: Cutout keys in pixels and in arcsec (helioprojective).
PIXEL_KEYS = ("y", "x")
SOLAR_KEYS = ("Tx", "Ty")
#: Cards that describe the stored integers, not float pixels (left out of a sunpy Map).
_STORAGE_CARDS = ("BLANK", "BSCALE", "BZERO", "CHECKSUM", "DATASUM")
_SOLAR_FORMS = (
    "dict(Tx=slice(-600, 0), Ty=slice(-300, 300)) in arcsec, or (bottom_left, top_right) "
    "SkyCoord corners"
)


# --------------------------------------------------------------------------- attrs, coords
def reference_attrs(header: Mapping[str, Any], rows: slice, cols: slice) -> dict[str, Any]:
    """The reference frame's WCS and observer cards, ``CRPIX1/2`` shifted to the window.

    Parameters
    ----------
    header : mapping
        The reference frame's image header (as probed).
    rows, cols : slice
        The array's pixel window in the frame.

    Returns
    -------
    dict
        The cards of :data:`WCS_KEYS` that the header has (``None`` values left out), with
        ``CRPIX1 - cols.start`` and ``CRPIX2 - rows.start`` (1-based pixels of the window).
    """
    out = {k: header[k] for k in WCS_KEYS if header.get(k) is not None}
    for key, start in (("CRPIX1", cols.start), ("CRPIX2", rows.start)):
        if key in out and start:
            try:
                out[key] = float(out[key]) - start
            except (TypeError, ValueError):
                del out[key]  # not a number: no reference pixel rather than a wrong one
    return out


def _rotation_deg(header: Mapping[str, Any]) -> float:
    """The image's rotation (deg) from ``CROTA2`` or the ``PC`` matrix (0 when neither)."""
    try:
        if header.get("PC2_1") is not None or header.get("PC1_2") is not None:
            return math.degrees(
                math.atan2(float(header.get("PC2_1") or 0.0), float(header.get("PC1_1") or 1.0))
            )
        return float(header.get("CROTA2") or 0.0)
    except (TypeError, ValueError):
        return float("nan")


def solar_coords(header: Mapping[str, Any], rows: slice, cols: slice) -> dict[str, Any]:
    """1-D ``Tx`` (dim ``x``) and ``Ty`` (dim ``y``) coordinates (arcsec) of a window.

    Computed from the reference frame's WCS along its reference row (``Tx``) and column
    (``Ty``), with :func:`intake_helio.fits.disk.solar_axes`.

    Parameters
    ----------
    header : mapping
        The reference frame's image header.
    rows, cols : slice
        The array's pixel window in the frame.

    Returns
    -------
    dict
        ``{"Tx": ("x", values, attrs), "Ty": ("y", values, attrs)}``, or ``{}`` when the
        header has no usable helioprojective WCS (the frames then have no solar axes).
    """
    try:
        tx, ty = solar_axes(header, rows, cols)
    except (ArgumentError, ValueError, TypeError, ArithmeticError):
        return {}  # not helioprojective, or cards astropy cannot use: no solar axes
    rotation = _rotation_deg(header)
    note = (
        "from the reference frame's WCS (attrs DATE-OBS, CRPIX1/2); "
        f"image rotation {rotation:.4g} deg: "
        + (
            "exact for every pixel"
            if rotation == 0.0
            else "for a rotated image (CROTA2 != 0) these are the values along the reference "
            "row (Tx) and reference column (Ty), not exact elsewhere; use sunpy for exact "
            "per-pixel coordinates"
        )
    )
    common = {"units": "arcsec", "frame": "helioprojective", "note": note}
    return {
        "Tx": ("x", tx, {"long_name": "helioprojective longitude (Tx)", **common}),
        "Ty": ("y", ty, {"long_name": "helioprojective latitude (Ty)", **common}),
    }


# --------------------------------------------------------------------------- cutouts
def _corners(cutout: Any):
    """``(bottom_left, top_right)`` SkyCoords, the top right in the bottom left's frame."""
    from astropy.coordinates import BaseCoordinateFrame, SkyCoord

    def one(c):
        return SkyCoord(c) if isinstance(c, BaseCoordinateFrame) else c

    if isinstance(cutout, tuple | list):
        bl, tr = (one(c) for c in cutout)
        if bl.shape != () or tr.shape != ():
            raise ArgumentError(
                f"cutout corners have shapes {bl.shape} and {tr.shape}; expected two scalar "
                "SkyCoords (bottom_left, top_right)"
            )
    else:
        both = one(cutout)
        if both.shape != (2,):
            raise ArgumentError(
                f"cutout is one SkyCoord of shape {both.shape}; expected (bottom_left, "
                "top_right) or one SkyCoord holding the two corners (shape (2,))"
            )
        bl, tr = both[0], both[1]
    if not tr.is_equivalent_frame(bl.frame):
        tr = tr.transform_to(bl.frame)
    return bl, tr


def _show(corner: Any) -> str:
    """A corner for a message: ``(lon, lat)`` in arcsec (helioprojective) or degrees."""
    import astropy.units as u
    from astropy.coordinates import UnitSphericalRepresentation

    r = corner.frame.represent_as(UnitSphericalRepresentation)
    unit = u.arcsec if corner.frame.name == "helioprojective" else u.deg
    lon = r.lon.wrap_at(180 * u.deg).to_value(unit)
    return f"({lon:.6g}, {r.lat.to_value(unit):.6g}) {unit}"


def _reference_map(header: Mapping[str, Any], shape: tuple[int, int]):
    """A sunpy Map of the reference frame's header, on a zero-cost broadcast array."""
    try:
        import sunpy.map
    except ImportError as exc:
        raise MissingSunpyError(
            f"SkyCoord cutout corners outside the helioprojective frame need sunpy ({exc}) to "
            'be transformed: python -m pip install "intake-helio[sunpy]", or give '
            "dict(Tx=slice(...), Ty=slice(...)) in arcsec"
        ) from exc
    meta = {k: v for k, v in header.items() if k not in _STORAGE_CARDS and v is not None}
    meta["NAXIS"], meta["NAXIS2"], meta["NAXIS1"] = 2, shape[0], shape[1]
    data = np.broadcast_to(np.zeros((), np.float32), tuple(shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sunpy.map.Map(data, meta)


def _skycoord_window(
    cutout: Any, header: Mapping[str, Any], shape: tuple[int, int]
) -> tuple[slice, slice]:
    import astropy.units as u
    from astropy.coordinates import SkyCoord, UnitSphericalRepresentation

    bl, tr = _corners(cutout)
    name = f"{bl.frame.name} corners {_show(bl)} to {_show(tr)}"
    if bl.frame.name == "helioprojective" and getattr(bl.frame, "observer", None) is None:
        # no observer: the corners' Tx/Ty are taken in the reference frame as they are
        # (sunpy's submap refuses such corners; nothing else could be meant)
        tx = slice(bl.Tx.to_value(u.arcsec), tr.Tx.to_value(u.arcsec))
        ty = slice(bl.Ty.to_value(u.arcsec), tr.Ty.to_value(u.arcsec))
        return arcsec_window(header, shape, tx, ty)
    wcs_of(header)  # not helioprojective: the clear error before sunpy is imported
    ref = _reference_map(header, shape)
    # as GenericMap.submap: the box's four corners in the corners' own frame, to pixels
    lo = bl.frame.represent_as(UnitSphericalRepresentation)
    hi = tr.frame.represent_as(UnitSphericalRepresentation)
    corners = SkyCoord(
        u.Quantity([lo.lon, lo.lon, hi.lon, hi.lon]),
        u.Quantity([lo.lat, hi.lat, hi.lat, lo.lat]),
        frame=bl.frame,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        px, py = ref.wcs.world_to_pixel(corners)
    if not (np.isfinite(px).all() and np.isfinite(py).all()):
        raise ArgumentError(
            f"the cutout's {name} do not land on the reference frame's pixels "
            "(they transform to NaN, e.g. off-disk 2-D coordinates seen by another observer); "
            "give corners on the disk, arcsec of this frame as dict(Tx=slice(...), "
            "Ty=slice(...)), or corners transformed with sunpy's SphericalScreen"
        )
    window = pixel_window(shape, px, py)
    if window is None:
        raise ArgumentError(
            f"the cutout's {name} lie outside the frame ({shape[0]}x{shape[1]} pixels); "
            "check the corners (Tx/Ty are arcsec from disk centre)"
        )
    return window


def corners_window(
    corners: Any, header: Mapping[str, Any], shape: tuple[int, int]
) -> tuple[slice, slice]:
    """The pixel window ``(rows, cols)`` of a cutout given by ``SkyCoord`` corners.

    Parameters
    ----------
    corners : (SkyCoord, SkyCoord) or SkyCoord
        ``(bottom_left, top_right)`` (or one ``SkyCoord`` of the two) in any frame that
        can be transformed to helioprojective.
    header : mapping
        The reference frame's image header: its WCS maps the corners to pixels.
    shape : tuple of int
        The frame's ``(ny, nx)``.

    Returns
    -------
    (slice, slice)
        Every pixel the box covers at least partly, clipped to the frame: the window of
        sunpy's ``Map.submap(bottom_left, top_right=top_right)`` on the reference frame.

    Raises
    ------
    ArgumentError
        Corners outside the frame, that do not land on its pixels, or a header without a
        helioprojective WCS.
    MissingSunpyError
        Corners that need transforming (not helioprojective) and sunpy is not installed.
    """
    try:
        return _skycoord_window(corners, header, shape)
    except HelioError:
        raise
    except Exception as exc:  # astropy / sunpy transformation errors (ConvertError ...)
        raise ArgumentError(
            f"the cutout could not be mapped to pixels of the reference frame "
            f"({type(exc).__name__}: {exc}); expected {_SOLAR_FORMS}: check the corners' "
            "frame, observer and obstime"
        ) from exc

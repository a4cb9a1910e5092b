"""How to open frames, checked once at the edge: :class:`FrameOptions` and :class:`Cutout`.

Every way in (``ih.open_frames``, ``Dataset.to_dataarray``, ``ih.open_channels``, the
intake drivers, the command line's ``--cutout``) turns what the user gave into one frozen
:class:`FrameOptions` with :func:`frame_options` before any request, and hands it down
whole. A cutout, in any of its spellings, is read by one function, :func:`parse_cutout`:

- pixels: ``dict(y=slice(y0, y1), x=slice(x0, x1))`` (either key may be left out; ``[a, b]``
  lists as in YAML), or the command line's text ``"Y0:Y1,X0:X1"``;
- arcsec (helioprojective): ``dict(Tx=slice(-600, 0), Ty=slice(-300, 300))``, bounds as
  numbers or angle Quantities, in the order (low, high);
- ``(bottom_left, top_right)`` ``SkyCoord`` corners (or one ``SkyCoord`` of the two).

What needs a frame (its shape, its WCS) is :meth:`Cutout.window`, called once the first
frame's header is known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..base.errors import ArgumentError
from ..base.options import ON_ERROR, UNITS, check_choice, check_quality
from ..fits.disk import arcsec_window
from .solar import PIXEL_KEYS, SOLAR_KEYS, corners_window

__all__ = ["Cutout", "FrameOptions", "FramesError", "frame_options", "parse_cutout"]


class FramesError(ArgumentError):
    """An argument of :func:`~intake_helio.open_frames` cannot be used (file list, cutout,
    chunks)."""


_FORMS = (
    "expected dict(y=slice(y0, y1), x=slice(x0, x1)) in pixels (either key may be left out), "
    "the text 'Y0:Y1,X0:X1' such as '1000:1200,0:4096', dict(Tx=slice(-600, 0), "
    "Ty=slice(-300, 300)) in arcsec, or (bottom_left, top_right) SkyCoord corners"
)
_WCS_NOTE = (
    " (the cutout is mapped to pixels with the WCS of the first frame's header; a pixel "
    "cutout dict(y=slice(y0, y1), x=slice(x0, x1)) needs no WCS)"
)


@dataclass(frozen=True)
class Cutout:
    """A checked cutout: pixel bounds, arcsec bounds or ``SkyCoord`` corners (one of them).

    Made by :func:`parse_cutout`. Pixel bounds are the user's slices (step 1; None ends),
    arcsec bounds ``slice(low, high)`` of floats, corners as given.
    """

    y: slice | None = None
    x: slice | None = None
    tx: slice | None = None
    ty: slice | None = None
    corners: Any = None

    @property
    def solar(self) -> bool:
        """Whether the cutout is in solar coordinates (mapped through a frame's WCS)."""
        return self.tx is not None or self.corners is not None

    def window(
        self, shape: Sequence[int], header: Mapping[str, Any] | None = None
    ) -> tuple[slice, slice]:
        """The pixel window ``(rows, cols)`` of a frame of ``shape`` (and WCS ``header``).

        Raises
        ------
        FramesError
            The window selects no pixel of the frame, or (solar) the box lies outside it
            or the header has no helioprojective WCS.
        """
        shape = (int(shape[0]), int(shape[1]))
        if self.solar:
            try:
                if self.corners is not None:
                    return corners_window(self.corners, header or {}, shape)
                return arcsec_window(header or {}, shape, self.tx, self.ty)
            except ArgumentError as exc:
                raise FramesError(f"{exc}{_WCS_NOTE}") from exc
        out = []
        for dim, given, n in (("y", self.y, shape[0]), ("x", self.x, shape[1])):
            start, stop, _ = (given or slice(None)).indices(n)
            if stop <= start:
                raise FramesError(
                    f"cutout[{dim!r}]={given!r} selects no pixels of a frame {n} pixels along {dim}"
                )
            out.append(slice(start, stop))
        return out[0], out[1]

    def plain(self) -> dict[str, slice] | Any:
        """The cutout as a plain value (a dict of slices, or the corners): YAML arguments,
        run identities."""
        if self.corners is not None:
            return self.corners
        if self.tx is not None:
            return {"Tx": self.tx, "Ty": self.ty}
        return {k: v for k, v in (("y", self.y), ("x", self.x)) if v is not None}


def parse_cutout(value: Any) -> Cutout | None:
    """Read a cutout in any of its spellings (see the module's docstring) into a :class:`Cutout`.

    The only reader of cutouts: the API, the intake drivers and the command line call it
    before any request; a :class:`Cutout` is returned as it is.

    Raises
    ------
    FramesError
        A malformed cutout: unknown keys, pixel and arcsec keys mixed, a slice with a
        step, an open or non-numeric arcsec bound, bounds in the order (high, low).
    """
    if value is None or isinstance(value, Cutout):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        keys = set(value)
        if keys & set(SOLAR_KEYS):
            return _arcsec(value, keys)
        if keys - set(PIXEL_KEYS):
            raise FramesError(f"cutout={value!r}; {_FORMS}")
        return Cutout(**{dim: _pixel_slice(value[dim], dim) for dim in keys})
    if _is_corners(value):
        return Cutout(corners=tuple(value) if isinstance(value, list) else value)
    raise FramesError(f"cutout={value!r}; {_FORMS}")


def _text(text: str) -> Cutout:
    """The command line's ``"Y0:Y1,X0:X1"``."""
    try:
        ys, xs = text.split(",")
        y0, y1 = (int(v) for v in ys.split(":"))
        x0, x1 = (int(v) for v in xs.split(":"))
    except ValueError:
        raise FramesError(f"cutout={text!r}; {_FORMS}") from None
    return Cutout(y=slice(y0, y1), x=slice(x0, x1))


def _pixel_slice(value: Any, dim: str) -> slice:
    if isinstance(value, tuple | list) and len(value) == 2:
        value = slice(*value)
    ends_ok = isinstance(value, slice) and all(
        v is None or (isinstance(v, int | np.integer) and not isinstance(v, bool))
        for v in (value.start, value.stop)
    )
    if not ends_ok or value.step not in (None, 1):
        raise FramesError(
            f"cutout[{dim!r}]={value!r}; expected a slice of whole pixel numbers with step 1, "
            f"e.g. {dim}=slice(1000, 1200)"
        )
    return value


def _arcsec(value: Mapping[str, Any], keys: set) -> Cutout:
    if keys & set(PIXEL_KEYS):
        raise FramesError(
            f"cutout has keys {sorted(keys, key=str)}: pixel keys (y, x) and arcsec keys "
            "(Tx, Ty) cannot be mixed; give dict(y=slice(y0, y1), x=slice(x0, x1)) in pixels "
            "or dict(Tx=slice(-600, 0), Ty=slice(-300, 300)) in arcsec"
        )
    if keys - set(SOLAR_KEYS) or len(keys) != 2:
        raise FramesError(
            f"cutout has keys {sorted(keys, key=str)}; an arcsec cutout needs exactly Tx and Ty, "
            "e.g. dict(Tx=slice(-600, 0), Ty=slice(-300, 300))"
        )
    return Cutout(tx=_arcsec_slice(value["Tx"], "Tx"), ty=_arcsec_slice(value["Ty"], "Ty"))


def _arcsec_value(value: Any, name: str, end: str) -> float:
    """One bound of an arcsec cutout as a float (a number or an angle Quantity)."""
    if hasattr(value, "unit") and hasattr(value, "to_value"):
        try:
            value = value.to_value("arcsec")
        except Exception as exc:  # astropy's UnitConversionError, unknown units ...
            raise FramesError(
                f"cutout[{name!r}] {end}={value!r} is not an angle; give arcsec (a number) "
                "or an angle Quantity, e.g. -600 * u.arcsec"
            ) from exc
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise FramesError(
            f"cutout[{name!r}] {end}={value!r}; expected a number of arcsec, e.g. "
            f"dict(Tx=slice(-600, 0), Ty=slice(-300, 300))"
        )
    value = float(value)
    if not math.isfinite(value):
        raise FramesError(f"cutout[{name!r}] {end}={value!r}; expected a finite number of arcsec")
    return value


def _arcsec_slice(value: Any, name: str) -> slice:
    """``slice(low, high)`` in arcsec from a slice or a 2-item list/tuple (YAML)."""
    if isinstance(value, tuple | list) and len(value) == 2:
        value = slice(*value)
    if not isinstance(value, slice) or value.step is not None:
        raise FramesError(
            f"cutout[{name!r}]={value!r}; expected slice(low, high) in arcsec (or [low, high]), "
            "e.g. dict(Tx=slice(-600, 0), Ty=slice(-300, 300))"
        )
    if value.start is None or value.stop is None:
        raise FramesError(
            f"cutout[{name!r}]={value!r} has an open end; give both bounds in arcsec, e.g. "
            "slice(-600, 0)"
        )
    low = _arcsec_value(value.start, name, "start")
    high = _arcsec_value(value.stop, name, "stop")
    if low > high:  # a reversed box would be read as the box the other way
        axis = "x" if name == "Tx" else "y"
        raise FramesError(
            f"cutout[{name!r}] runs from {low:g} to {high:g} arcsec: the bounds are reversed; "
            f"give them in the order (low, high), e.g. {name}=slice({high:g}, {low:g}) "
            f"({name} grows along {axis})"
        )
    return slice(low, high)


def _is_corners(value: Any) -> bool:
    if isinstance(value, bytes):
        return False
    from astropy.coordinates import BaseCoordinateFrame, SkyCoord

    types = (SkyCoord, BaseCoordinateFrame)
    if isinstance(value, types):
        return True
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(c, types) for c in value)
    )


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class FrameOptions:
    """How to open frames, checked: made by :func:`frame_options`, handed down whole.

    Attributes
    ----------
    hdu : "auto", int or str
        The image HDU (``"auto"``: each file's first image HDU).
    cutout : Cutout or None
        The window to read (None: whole frames).
    header_keys : tuple of str
        Header cards kept as lazy ``time`` coordinates (upper case).
    units : {"DN", "DN/s"}
    on_error : {"raise", "nan"}
    band_rows : int or None
        Rows per chunk (``chunks={"y": N}``); None: one chunk per frame.
    quality : {None, "good"}
    """

    hdu: int | str = "auto"
    cutout: Cutout | None = None
    header_keys: tuple[str, ...] = ()
    units: str = "DN"
    on_error: str = "raise"
    band_rows: int | None = None
    quality: str | None = None

    def with_(self, **changes: Any) -> FrameOptions:
        """A copy with some options changed (``cutout`` is parsed)."""
        if "cutout" in changes:
            changes["cutout"] = parse_cutout(changes["cutout"])
        return replace(self, **changes)

    def arguments(self) -> dict[str, Any]:
        """The options as the plain keyword arguments of :func:`frame_options` (YAML-safe
        but for ``SkyCoord`` corners): what intake entries store."""
        return {
            "hdu": self.hdu,
            "cutout": None if self.cutout is None else self.cutout.plain(),
            "header_keys": self.header_keys,
            "units": self.units,
            "on_error": self.on_error,
            "chunks": None if self.band_rows is None else {"y": self.band_rows},
            "quality": self.quality,
        }


def frame_options(
    hdu: int | str = "auto",
    cutout: Any = None,
    header_keys: Sequence[str] | str = (),
    units: str = "DN",
    on_error: str = "raise",
    chunks: Mapping[str, Any] | None = None,
    quality: str | None = None,
) -> FrameOptions:
    """Check the options that open frames, once, and return them as :class:`FrameOptions`.

    Parameters
    ----------
    hdu, cutout, header_keys, units, on_error, chunks, quality
        As for :func:`~intake_helio.open_frames` (a single header key may be a string).

    Raises
    ------
    FramesError
        A malformed cutout or chunks.
    ArgumentError
        ``units``, ``on_error`` or ``quality`` is not one of its choices.
    """
    if isinstance(header_keys, str):
        header_keys = (header_keys,)
    return FrameOptions(
        hdu=hdu,
        cutout=parse_cutout(cutout),
        header_keys=tuple(str(k).upper() for k in header_keys or ()),
        units=check_choice("units", units, UNITS),
        on_error=check_choice("on_error", on_error, ON_ERROR),
        band_rows=_band_rows(chunks),
        quality=check_quality(quality),
    )


def _band_rows(chunks: Any) -> int | None:
    if chunks is None:
        return None
    if not isinstance(chunks, Mapping) or set(chunks) - {"time", "y"}:
        raise FramesError(f"chunks={chunks!r}; expected None or {{'y': N}} (rows per chunk)")
    if chunks.get("time", 1) not in (1, None, -1):
        raise FramesError(f"chunks['time']={chunks['time']!r}; frames are always one per chunk")
    y = chunks.get("y")
    if y in (None, -1):
        return None
    if isinstance(y, bool) or not isinstance(y, int) or y < 1:
        raise FramesError(f"chunks['y']={y!r}; expected a positive number of rows")
    return y

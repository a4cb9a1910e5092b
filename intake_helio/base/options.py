"""The choices users make when opening frames, checked in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import HelioError

__all__ = [
    "ON_ERROR",
    "QUALITY",
    "TOLERANCE",
    "UNITS",
    "OptionError",
    "check_choice",
    "check_quality",
]

#: Pixel units of frames: raw data numbers, or data numbers per second of exposure.
UNITS: tuple[str, ...] = ("DN", "DN/s")
#: What a failed frame does: raise :class:`~intake_helio.FrameReadError`, or become NaN
#: with its reason.
ON_ERROR: tuple[str, ...] = ("raise", "nan")
#: Which frames to keep by their header's ``QUALITY``: ``"good"``, only those whose
#: ``QUALITY`` is 0 or missing (the others get the reason ``"quality flag 0x..."`` and are
#: not decoded). ``None`` (not listed here) keeps every frame.
QUALITY: tuple[str, ...] = ("good",)
#: How far another channel's frame may be from the first channel's time (or a frame from
#: the time asked of ``to_map``) by default: AIA's EUV cadence is 12 s.
TOLERANCE = "6s"


class OptionError(HelioError, ValueError):
    """An argument is not one of the accepted choices."""


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise :class:`OptionError`.

    Parameters
    ----------
    name : str
        The argument's name, shown in the message.
    value : Any
        What the user gave.
    allowed : sequence of str
        The accepted values.

    Returns
    -------
    str
    """
    if not isinstance(value, str) or value not in allowed:
        raise OptionError(f"{name}={value!r}; expected one of {list(allowed)}")
    return value


def check_quality(value: Any) -> str | None:
    """Return ``value`` if it is None or one of :data:`QUALITY`, else raise :class:`OptionError`.

    Parameters
    ----------
    value : Any
        What the user gave as ``quality``.

    Returns
    -------
    str or None
    """
    if value is None:
        return None
    try:
        return check_choice("quality", value, QUALITY)
    except OptionError:
        raise OptionError(
            f"quality={value!r}; expected 'good' (keep only frames whose header QUALITY is 0 "
            "or missing) or None (keep every frame, the default)"
        ) from None

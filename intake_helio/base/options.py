"""The choices users make when opening frames, checked in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import HelioError

__all__ = ["ON_ERROR", "UNITS", "OptionError", "check_choice"]

#: Pixel units of frames: raw data numbers, or data numbers per second of exposure.
UNITS: tuple[str, ...] = ("DN", "DN/s")
#: What a failed frame does: raise :class:`~intake_helio.FrameReadError`, or become NaN
#: with its reason.
ON_ERROR: tuple[str, ...] = ("raise", "nan")


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

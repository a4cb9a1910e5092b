"""What reading a series' files needs, in one picklable record that travels with its tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..base.backends import SeriesBackend
from ..base.errors import ArgumentError
from ..base.settings import Settings

__all__ = ["SeriesSpec", "backend_for", "series_spec"]

#: The catalog formats each room opens (its backend is imported when first used).
_ROOMS = {"cdf": "cdf", "netcdf3": "netcdf", "netcdf4": "netcdf", "hdf5": "netcdf"}


def backend_for(fmt: str) -> SeriesBackend:
    """The backend of a catalog format (``"cdf"``, ``"netcdf3"``, ``"netcdf4"``, ``"hdf5"``).

    Raises
    ------
    ArgumentError
        ``fmt`` is not a time-series format.
    """
    room = _ROOMS.get(fmt)
    if room is None:
        raise ArgumentError(
            f"format {fmt!r} is not a time-series format; expected one of {sorted(_ROOMS)}"
        )
    if room == "cdf":
        from ..cdf import BACKEND
    else:
        from ..netcdf import BACKEND
    return BACKEND


@dataclass(frozen=True)
class SeriesSpec:
    """The files of a series and how to read them (one per opened Dataset; picklable).

    Attributes
    ----------
    format : str
        The catalog format of the files (:func:`backend_for`).
    datakeys : tuple of str
        Every file of the series, in time order (the index's rows).
    filesizes : tuple of int
        The index's size of each file (0: unknown); bounds its read.
    storage_options : Mapping
        Options of the files' filesystems.
    settings : Settings
        Limits and retries, as on the client when the series was opened.
    variables : tuple of str or None
        The variables asked for (None: every variable on the chosen time).
    time : str or None
        The time variable asked for (None: the backend's choice on the first file).
    start, stop : numpy.datetime64
        The half-open range ``[start, stop)`` kept of every file (``datetime64[ns]``).
    """

    format: str
    datakeys: tuple[str, ...]
    filesizes: tuple[int, ...]
    storage_options: Mapping[str, Any] = field(repr=False)
    settings: Settings = field(repr=False)
    variables: tuple[str, ...] | None
    time: str | None
    start: np.datetime64
    stop: np.datetime64

    @property
    def backend(self) -> SeriesBackend:
        """The format's backend."""
        return backend_for(self.format)

    def keep(self, times: np.ndarray) -> np.ndarray:
        """The mask of ``times`` inside ``[start, stop)``."""
        return (times >= self.start) & (times < self.stop)


def series_spec(
    fmt: str,
    datakeys: Sequence[str],
    filesizes: Sequence[int],
    storage_options: Mapping[str, Any] | None,
    settings: Settings,
    variables: Sequence[str] | str | None,
    time: str | None,
    start: Any,
    stop: Any,
) -> SeriesSpec:
    """A checked :class:`SeriesSpec` (the user's ``variables`` and ``time`` checked here).

    Raises
    ------
    ArgumentError
        ``variables`` is not a list of names, ``time`` not a name.
    """
    backend_for(fmt)
    if isinstance(variables, str):
        variables = [variables]
    if variables is not None:
        names = list(variables)
        if not names or not all(isinstance(v, str) and v for v in names):
            raise ArgumentError(
                f"variables={variables!r}; expected a non-empty list of variable names "
                "(or None for every variable)"
            )
        variables = tuple(dict.fromkeys(names))
    if time is not None and (not isinstance(time, str) or not time):
        raise ArgumentError(f"time={time!r}; expected the name of a time variable, or None")
    return SeriesSpec(
        format=fmt,
        datakeys=tuple(str(k) for k in datakeys),
        filesizes=tuple(int(s) for s in filesizes),
        storage_options=storage_options if storage_options is not None else {},
        settings=settings,
        variables=variables,
        time=time,
        start=np.datetime64(start, "ns"),
        stop=np.datetime64(stop, "ns"),
    )

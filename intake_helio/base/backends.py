"""What a time-series format room gives the series layer: the one seam per format.

A format room (:mod:`intake_helio.cdf`, :mod:`intake_helio.netcdf`) turns the bytes of one
file, fetched by the series layer through the one door (:mod:`intake_helio.io.transport`:
URL policy, bounded reads, ``storage_options``), into xarray objects. It never fetches
anything itself, and checks what a file declares against ``max_bytes`` before decoding.

Like xarray's ``BackendEntrypoint``: each room has one :class:`SeriesBackend` (its
``BACKEND``), with the catalog ``filetype`` formats it opens and a ``guess_can_open`` of a
file's first bytes. Every method raises :class:`~intake_helio.base.errors.FileReadError`
with a :class:`~intake_helio.base.reasons.Reason` (``NOT_CDF``, ``NOT_NETCDF``,
``TRUNCATED``, ``NO_TIME``, ``BAD_TIMES``, ``FILE_TOO_LARGE``, ``CORRUPT_DATA``, ...) and
the file's datakey for anything wrong with the file; nothing else escapes for a bad file.

Conventions of the Datasets a backend gives (what the series layer concatenates):

* one record dimension named ``time``, with a ``time`` coordinate of ``datetime64[ns]``
  (the chosen time variable: a CDF ``DEPEND_0`` epoch, a netCDF time coordinate), sorted,
  without fill values (else ``BAD_TIMES``);
* only the variables asked (``variables=``; None: every variable on the chosen time) and
  the coordinates and support data they need; variables along another time are dropped;
* ``attrs["intake_helio_time"]``: the name of the time variable in the file; and
  ``attrs["intake_helio_other_times"]``: the other times of the file, with the variables
  on each (``"Epoch_state: pos_gse, vel_gse"``), so a user knows to pass ``time=``;
* data loaded in memory (numpy), no file handle kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import xarray

__all__ = ["TIME", "Kind", "Layout", "Scan", "SeriesBackend", "kinds_of", "records_of"]

#: The record dimension (and coordinate) of every series Dataset.
TIME = "time"

#: Per variable: ``(dtype string, dims, sizes of the dims other than time)``; the series'
#: files must agree on it (else ``VARIABLES_DIFFER``).
Layout = dict[str, tuple[str, tuple[str, ...], tuple[int, ...]]]
#: A record-varying variable as a read gives it: ``(dtype string, sizes other than time)``.
Kind = tuple[str, tuple[int, ...]]


@dataclass(frozen=True)
class Scan:
    """What opening a series needs of one file, without decoding its data variables.

    Attributes
    ----------
    times : numpy.ndarray
        The record times (``datetime64[ns]``, sorted, no fill), of the chosen time.
    layout : Layout
        The variables :meth:`SeriesBackend.open` would give (data variables and
        coordinates other than ``time``), as they would be in its Dataset.
    time : str
        The name of the chosen time variable in the file.
    signature : str, optional
        What the format's metadata says of the file's structure (a CDF's variables and
        their attributes), when the backend can tell it without decoding: a later file
        with the same signature has the same layout (:meth:`SeriesBackend.scan`'s
        ``like``).
    """

    times: np.ndarray
    layout: Layout
    time: str
    signature: str | None = None


class SeriesBackend(Protocol):
    """One format room's reader of time-series files (picklable; module-level)."""

    #: The room's name (``"cdf"``, ``"netcdf"``).
    name: str
    #: The catalog formats it opens (:data:`intake_helio.catalog.formats.FILETYPES`).
    formats: tuple[str, ...]

    def guess_can_open(self, head: bytes) -> bool:
        """Whether a file starting with ``head`` (its first 8 or more bytes) is this format."""
        ...

    def scan(
        self,
        data: bytes,
        *,
        datakey: str,
        variables: Sequence[str] | None,
        time: str | None,
        max_bytes: int,
        like: Scan | None = None,
    ) -> Scan:
        """The times and layout of one file (only the time variable is decoded); with
        ``like`` (the first file's scan), a file of the same signature has its layout."""
        ...

    def template(
        self,
        data: bytes,
        *,
        datakey: str,
        variables: Sequence[str] | None,
        time: str | None,
        max_bytes: int,
    ) -> tuple[Scan, xarray.Dataset]:
        """The first file of a series: its scan, and the structure of its :meth:`open`
        (every variable, dtype, attribute and support data; the records along ``time``
        may be cut short: only the structure is used)."""
        ...

    def open(
        self,
        data: bytes,
        *,
        datakey: str,
        variables: Sequence[str] | None,
        time: str | None,
        max_bytes: int,
    ) -> xarray.Dataset:
        """The file as one Dataset along ``time`` (the conventions above)."""
        ...

    def read(
        self,
        data: bytes,
        *,
        datakey: str,
        variables: Sequence[str] | None,
        time: str,
        names: Mapping[str, Kind],
        start: np.datetime64,
        stop: np.datetime64,
        max_bytes: int,
    ) -> dict[str, np.ndarray]:
        """A read task's records: ``time`` and each of ``names`` (time first) inside
        ``[start, stop)``, decoding only those variables and, where the format can, only
        those records. The values are those of :meth:`open` cut to the range; a name the
        file lacks is ``VARIABLES_DIFFER``."""
        ...


def kinds_of(ds: xarray.Dataset) -> dict[str, Kind]:
    """Each variable of ``ds`` along ``time`` (but ``time`` itself), in order: its dtype and
    its sizes other than time (what :meth:`SeriesBackend.read` is asked for)."""
    return {
        str(name): (str(var.dtype), tuple(var.transpose(TIME, ...).shape[1:]))
        for name, var in ds.variables.items()
        if TIME in var.dims and name != TIME
    }


def records_of(
    ds: xarray.Dataset, names: Mapping[str, Kind], start: np.datetime64, stop: np.datetime64
) -> dict[str, np.ndarray]:
    """:meth:`SeriesBackend.read`'s result from a Dataset :meth:`SeriesBackend.open` gave
    (a name it lacks: KeyError)."""
    t = ds[TIME].values
    keep = (t >= start) & (t < stop)
    out = {TIME: t[keep]}
    for name in names:
        out[name] = ds[name].transpose(TIME, ...).values[keep]
    return out

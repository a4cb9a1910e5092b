"""The netCDF room: the bytes of one netCDF3, netCDF4 or HDF5 file as an xarray Dataset.

The series layer fetches a file's bytes through the one door and hands them to
:data:`BACKEND` (a :class:`~intake_helio.base.backends.SeriesBackend`); this room never
fetches anything. It reads with xarray's own engines on an in-memory file object
(``h5netcdf`` for netCDF4/HDF5, ``scipy`` for netCDF3 classic and 64-bit offset; never the
netCDF4 library), decodes CF times as xarray does, and gives one Dataset along ``time``.

Modules
-------
``engines``
    Magic numbers to engines; the lazy open; engine errors to reasons.
``plan``
    Which time and which variables (the rule for variables along other times and for
    support data), the bound on declared bytes, the check of the times.
``backend``
    :class:`NetcdfBackend` (``scan``, ``open``), :data:`BACKEND` and :func:`layout_of`.
"""

from __future__ import annotations

from .backend import BACKEND, NetcdfBackend, layout_of

__all__ = ["BACKEND", "NetcdfBackend", "layout_of"]

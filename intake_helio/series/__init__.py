"""Time series (CDF, netCDF, HDF5) as lazy ``xarray.Dataset`` objects along ``time``.

The series layer is the format rooms' one user (:mod:`intake_helio.cdf`,
:mod:`intake_helio.netcdf`, their contract :mod:`intake_helio.base.backends`): it fetches
each file's bytes through the one door (:mod:`intake_helio.io.transport`: URL policy,
bounded reads, ``storage_options``), asks the format's backend for the file's times and
layout when a series is opened (:func:`open_series`), and builds a Dataset whose data are
read at compute, one task per file, records outside ``[start, stop)`` dropped in the task.
Every file ends with ``"ok"`` or its :class:`~intake_helio.Reason` in ``file_status``.
"""

from .build import SeriesError, open_series
from .spec import SeriesSpec, backend_for, series_spec

__all__ = ["SeriesError", "SeriesSpec", "backend_for", "open_series", "series_spec"]

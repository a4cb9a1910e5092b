"""Intake drivers (v1 API) and readers (intake 2 API) for HelioCloud's CloudCatalog.

Four v1 drivers, registered as ``intake.drivers`` entry points (so ``intake.open_helio_*``
openers and YAML ``driver:`` names work once the package is installed):

``helio_registry`` -> :class:`HelioRegistryCatalog`
    The global registry: one entry per bucket, keyed by the bucket's name.
``helio_bucket`` -> :class:`HelioBucketCatalog`
    One bucket's ``catalog.json``: one entry per dataset.
``helio_frames`` -> :class:`HelioFramesSource`
    The frames of one dataset in ``[start, stop)`` as a lazy ``(time, y, x)``
    ``xarray.DataArray`` (see :func:`intake_helio.frames.build.open_frames`).
``helio_series`` -> :class:`HelioSeriesSource`
    A time-series dataset (CDF, netCDF, HDF5) in ``[start, stop)`` as a lazy
    ``xarray.Dataset`` along ``time`` (see :func:`intake_helio.series.open_series`). A
    bucket's entries use the source their ``filetype`` opens as.

The drivers are thin layers over the intake-agnostic core
(:func:`intake_helio.catalog.registry.open_registry`,
:func:`~intake_helio.catalog.registry.open_bucket`,
:meth:`~intake_helio.catalog.registry.Dataset.to_dataarray`).

Catalogs are lazy: a bucket's ``catalog.json`` (or the registry JSON) is read on the
first access to the entries, and index files only when a source is discovered or read.
Without ``start``/``stop`` a dataset reads its last ``intake_helio.default-window``
(``dask.config``; one day by default).

Every ``yaml()``, ``repr``, ``describe()`` and ``serialize()`` output passes storage
options through :func:`intake_helio.io.storage.redact` (and also masks s3fs' ``key``), so
credentials are never shown; pickling keeps them, so sources still work on dask workers.

And four intake 2 readers (:mod:`.v2`), registered through the ``intake.imports``
entry point, over the same core and with the same arguments:
:class:`HelioRegistryReader` and :class:`HelioBucketReader` (-> an
:class:`intake.readers.entry.Catalog`), :class:`HelioFramesReader` (-> a lazy
``xarray.DataArray``) and :class:`HelioSeriesReader` (-> a lazy ``xarray.Dataset``).
Catalogs they make can be saved with ``to_yaml_file`` (credentials written as ``'***'``)
and opened with ``intake.from_yaml_file``.

Modules: :mod:`.common` (errors, argument checks, redacted output, lazy entries, time
ranges), :mod:`.source` (``helio_frames``, ``helio_series``), :mod:`.catalogs` (``helio_registry``,
``helio_bucket``), :mod:`.v2` (the intake 2 readers).
"""

from __future__ import annotations

from .catalogs import HelioBucketCatalog, HelioRegistryCatalog
from .source import HelioFramesSource, HelioSeriesSource
from .v2 import HelioBucketReader, HelioFramesReader, HelioRegistryReader, HelioSeriesReader

__all__ = [
    "HelioBucketCatalog",
    "HelioBucketReader",
    "HelioFramesReader",
    "HelioFramesSource",
    "HelioRegistryCatalog",
    "HelioRegistryReader",
    "HelioSeriesReader",
    "HelioSeriesSource",
]

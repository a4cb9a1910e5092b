"""Intake (v1 ``DataSource``/``Catalog`` API) drivers for HelioCloud's CloudCatalog.

Three drivers, registered as ``intake.drivers`` entry points (so ``intake.open_helio_*``
openers and YAML ``driver:`` names work once the package is installed):

``helio_registry`` -> :class:`HelioRegistryCatalog`
    The global registry: one entry per bucket, keyed by the bucket's name.
``helio_bucket`` -> :class:`HelioBucketCatalog`
    One bucket's ``catalog.json``: one entry per dataset.
``helio_frames`` -> :class:`HelioFramesSource`
    The frames of one dataset in ``[start, stop)`` as a lazy ``(time, y, x)``
    ``xarray.DataArray`` (see :func:`intake_helio.frames.build.open_frames`).

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

Modules: :mod:`.common` (errors, argument checks, redacted output, lazy entries),
:mod:`.source` (``helio_frames``), :mod:`.catalogs` (``helio_registry``, ``helio_bucket``).
"""

from __future__ import annotations

from .catalogs import HelioBucketCatalog, HelioRegistryCatalog
from .source import HelioFramesSource

__all__ = ["HelioBucketCatalog", "HelioFramesSource", "HelioRegistryCatalog"]

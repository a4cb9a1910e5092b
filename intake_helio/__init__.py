"""intake-helio: HelioCloud's CloudCatalog as intake catalogs and lazy xarray frames.

The package is layered (imports run downward only, checked by import-linter):

``intake`` (the intake drivers and readers: the plugin) beside ``app`` (CLI, job, results,
demo); neither imports the other
-> ``testing`` (local servers and synthetic data; never imported by the core)
-> ``compute`` (per-frame reductions, batching, clusters)
-> ``catalog`` (registry, buckets, datasets, yearly indexes)
-> ``frames`` (lazy frame arrays: spec, tasks, graph) beside ``series`` (lazy time
series of CDF, netCDF and HDF5 files as ``xarray.Dataset``)
-> the format rooms: ``fits`` (one FITS frame: bytes, HDUs, tiles, pixels), ``cdf``
(cdflib), ``netcdf`` (xarray's engines: netCDF3, netCDF4, HDF5)
-> ``io`` (storage options, retries, third-party shims)
-> ``base`` (errors, per-frame reasons, settings, times).

``import intake_helio`` stays light: clusters (``distributed``), plotting, netCDF and the
testing servers are imported when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base.errors import (
    BucketUnavailableError,
    CatalogFormatError,
    CatalogNotFoundError,
    DatasetNotFoundError,
    FileReadError,
    FrameReadError,
    HelioError,
    HelioWarning,
    IndexParseError,
    InterruptedRun,
    OutputLockedError,
    ReadDeadlineError,
    TimeRangeError,
)
from .base.reasons import Reason
from .base.times import parse_time
from .base.version import __version__
from .catalog.cache import clear_cache
from .catalog.channels import open_channels
from .catalog.formats import UnsupportedFormatError
from .catalog.index import BadRow
from .catalog.registry import (
    DEFAULT_REGISTRY_URL,
    Bucket,
    Dataset,
    Endpoint,
    Registry,
    SearchResults,
    open_bucket,
    open_registry,
)
from .frames.build import open_frames
from .frames.maps import to_map
from .series import SeriesError, open_series

# Public names whose modules import heavy dependencies (distributed, tqdm): loaded on first use.
_LAZY = {
    "cluster": "intake_helio.compute.clusters",
    "irradiance": "intake_helio.compute.reduction",
    "map_files": "intake_helio.compute.files",
    "map_frames": "intake_helio.compute.engine",
    "ratio": "intake_helio.compute.reduction",
    "HelioBucketReader": "intake_helio.intake.v2",
    "HelioFramesReader": "intake_helio.intake.v2",
    "HelioRegistryReader": "intake_helio.intake.v2",
    "HelioSeriesReader": "intake_helio.intake.v2",
}

if TYPE_CHECKING:  # pragma: no cover
    from .compute.clusters import cluster
    from .compute.engine import map_frames
    from .compute.files import map_files
    from .compute.reduction import irradiance, ratio
    from .intake.v2 import (
        HelioBucketReader,
        HelioFramesReader,
        HelioRegistryReader,
        HelioSeriesReader,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'intake_helio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEFAULT_REGISTRY_URL",
    "BadRow",
    "Bucket",
    "BucketUnavailableError",
    "CatalogFormatError",
    "CatalogNotFoundError",
    "Dataset",
    "DatasetNotFoundError",
    "Endpoint",
    "FileReadError",
    "FrameReadError",
    "HelioBucketReader",
    "HelioError",
    "HelioFramesReader",
    "HelioRegistryReader",
    "HelioSeriesReader",
    "HelioWarning",
    "IndexParseError",
    "InterruptedRun",
    "OutputLockedError",
    "ReadDeadlineError",
    "Reason",
    "Registry",
    "SearchResults",
    "SeriesError",
    "TimeRangeError",
    "UnsupportedFormatError",
    "__version__",
    "clear_cache",
    "cluster",
    "irradiance",
    "map_files",
    "map_frames",
    "open_bucket",
    "open_channels",
    "open_frames",
    "open_registry",
    "open_series",
    "parse_time",
    "ratio",
    "to_map",
]

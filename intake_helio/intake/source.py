"""The ``helio_frames`` intake driver: one dataset's frames as a lazy DataArray.

A thin intake v1 ``DataSource`` over :meth:`intake_helio.catalog.registry.Dataset.to_dataarray`
(which lists the files with the dataset's index and calls
:func:`intake_helio.frames.build.open_frames`); it adds the default time window and
intake's ``discover``/``read``/pickling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from intake.source.base import DataSource, Schema

from ..base.times import parse_range
from ..base.version import __version__
from ..catalog.registry import Dataset, endpoint_root, open_bucket
from .common import (
    PartitionIndexError,
    SafeOutputMixin,
    check_dataset_id,
    check_frame_options,
    check_series_options,
    check_storage_options,
    fill_range,
)

__all__ = ["HelioFramesSource", "HelioSeriesSource"]


class _DatasetSource(SafeOutputMixin, DataSource):
    """What the sources of one dataset share: its record, time range and intake's API."""

    container = "xarray"
    version = __version__
    partition_access = False

    def _init_dataset(self, endpoint, dataset, start, stop, storage_options, metadata) -> None:
        self.endpoint = endpoint_root(endpoint)
        self.dataset = check_dataset_id(dataset)
        self.start, self.stop = parse_range(start, stop)
        self._record: Dataset | None = None
        self._range: tuple[pd.Timestamp, pd.Timestamp] | None = None
        self._frames = None
        DataSource.__init__(
            self,
            storage_options=check_storage_options(storage_options),
            metadata=dict(metadata or {}),
        )

    # ---------------------------------------------------------------- records
    def _attach(self, record: Dataset) -> None:
        """Reuse a Dataset record already read by a catalog (no second catalog.json read)."""
        if record.id == self.dataset and self._record is None:
            self._record = dataclasses.replace(
                record, storage_options=dict(self.storage_options or {})
            )

    @property
    def record(self) -> Dataset:
        """The dataset's catalog record (reads ``catalog.json`` if not known yet)."""
        if self._record is None:
            self._record = open_bucket(self.endpoint, self.storage_options)[self.dataset]
        return self._record

    def time_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The ``[start, stop)`` this source reads, with defaults filled in.

        Missing ends come from the dataset's default window (the
        ``intake_helio.default-window`` setting, read on the first call; ``close()``
        forgets it).
        """
        if self.start is not None and self.stop is not None:
            return self.start, self.stop
        if self._range is None:
            self._range = fill_range(self.record, self.start, self.stop)
        return self._range

    def _get_partition(self, i: int):
        if i != 0:
            raise PartitionIndexError(
                f"partition {i} is out of range; this source has one partition"
            )
        return self.read()

    def read(self):
        """Compute everything (data and lazy coordinates) into memory."""
        return self.to_dask().compute()

    def read_partition(self, i: int):
        """The whole object for ``i == 0`` (this source is not partitioned)."""
        return self._get_partition(i)

    def _close(self) -> None:
        self._frames = None
        self._range = None
        self._schema = None


class HelioFramesSource(_DatasetSource):
    """The frames of one CloudCatalog dataset as a lazy ``(time, y, x)`` DataArray.

    Parameters
    ----------
    endpoint : str
        Bucket root such as ``"s3://gov-nasa-hdrl-data1/"``.
    dataset : str
        Dataset id in the bucket's ``catalog.json`` (e.g. ``"aia_0094"``).
    start, stop : str, datetime, date, numpy.datetime64 or pandas.Timestamp, optional
        Half-open range ``[start, stop)`` (UTC). Missing values default to the dataset's
        last window, ``[stop - window, stop)`` clipped to the dataset's start, where
        ``window`` is the ``intake_helio.default-window`` setting (one day by default).
    storage_options : dict, optional
        fsspec options for ``catalog.json``, the index files and every frame.
    hdu, cutout, header_keys, units, on_error, chunks, quality
        As in :func:`intake_helio.frames.build.open_frames`. ``cutout`` may give
        ``[start, stop]`` lists instead of slices (as in YAML), in pixels (``y``/``x``) or
        arcsec (``Tx``/``Ty``), or two ``SkyCoord`` corners. ``quality="good"``: frames
        whose header ``QUALITY`` is not 0 get the reason ``"quality flag 0x%08x"``.
    metadata : dict, optional
        Extra metadata.

    Raises
    ------
    TimeRangeError
        ``start`` or ``stop`` is not a time, or ``start`` is not before ``stop``.
    OptionError
        ``units``, ``on_error`` or ``quality`` is not one of the accepted choices.
    DriverArgumentError
        ``dataset`` is not a non-empty string, or ``storage_options`` has an empty
        ``endpoint_url``.

    Notes
    -----
    ``discover()`` reads the dataset's index and one frame's header (no pixels) and
    returns shape, dtype, dims and coords; ``to_dask()`` returns the lazy DataArray;
    ``read()`` computes it. Sources pickle with their arguments and re-open lazily. The
    default window is read from ``dask.config`` when the time range is first needed.
    """

    name = "helio_frames"

    def __init__(
        self,
        endpoint: str,
        dataset: str,
        start: Any = None,
        stop: Any = None,
        storage_options: Mapping[str, Any] | None = None,
        hdu: int | str = "auto",
        cutout: Mapping[str, Any] | Sequence[Any] | None = None,
        header_keys: Sequence[str] = (),
        units: str = "DN",
        on_error: str = "raise",
        chunks: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
        quality: str | None = None,
    ):
        options = check_frame_options(hdu, cutout, header_keys, units, on_error, chunks, quality)
        self.units, self.on_error = options["units"], options["on_error"]
        self.hdu, self.cutout = options["hdu"], options["cutout"]
        self.header_keys, self.chunks = options["header_keys"], options["chunks"]
        self.quality = options["quality"]
        self._init_dataset(endpoint, dataset, start, stop, storage_options, metadata)

    # ---------------------------------------------------------------- intake API
    def to_dask(self):
        """The lazy ``xarray.DataArray`` ``(time, y, x)`` (index and one header read)."""
        if self._frames is None:
            start, stop = self.time_range()
            self._frames = self.record.to_dataarray(
                start,
                stop,
                hdu=self.hdu,
                cutout=self.cutout,
                header_keys=self.header_keys,
                units=self.units,
                on_error=self.on_error,
                chunks=self.chunks,
                storage_options=dict(self.storage_options or {}),
                quality=self.quality,
            )
        return self._frames

    def _get_schema(self) -> Schema:
        frames = self.to_dask()
        start, stop = self.time_range()
        return Schema(
            datashape=None,
            dtype=frames.dtype,
            shape=tuple(frames.shape),
            npartitions=int(frames.data.npartitions),
            extra_metadata={
                "dims": list(frames.dims),
                "coords": {k: list(v.dims) for k, v in frames.coords.items()},
                "time_range": [start.isoformat(), stop.isoformat()],
            },
        )

    def discover(self) -> dict[str, Any]:
        """Shape, dtype, dims and coords, from the index and one header (no pixel read)."""
        self._load_metadata()
        frames = self.to_dask()
        return {
            "dtype": self.dtype,
            "shape": self.shape,
            "npartitions": self.npartitions,
            "dims": tuple(frames.dims),
            "coords": {k: tuple(v.dims) for k, v in frames.coords.items()},
            "metadata": self.metadata,
        }


class HelioSeriesSource(_DatasetSource):
    """A time-series dataset (CDF, netCDF, HDF5) as a lazy ``xarray.Dataset`` along time.

    Parameters
    ----------
    endpoint : str
        Bucket root such as ``"s3://gov-nasa-hdrl-data1/"``.
    dataset : str
        Dataset id in the bucket's ``catalog.json`` (e.g. ``"mms1_fgm_srvy_l2"``).
    start, stop : str, datetime, date, numpy.datetime64 or pandas.Timestamp, optional
        Half-open range ``[start, stop)`` (UTC); defaults as for ``helio_frames``.
    storage_options : dict, optional
        fsspec options for ``catalog.json``, the index files and every file.
    variables, time, on_error, filetype
        As in :meth:`intake_helio.catalog.registry.Dataset.to_dataset`.
    metadata : dict, optional
        Extra metadata.

    Notes
    -----
    ``to_dask()`` opens the lazy Dataset (the index, the first file and every file's time
    variable are read); ``read()`` computes it; ``discover()`` gives its dims and variables.
    """

    name = "helio_series"

    def __init__(
        self,
        endpoint: str,
        dataset: str,
        start: Any = None,
        stop: Any = None,
        storage_options: Mapping[str, Any] | None = None,
        variables: Sequence[str] | str | None = None,
        time: str | None = None,
        on_error: str = "raise",
        filetype: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ):
        options = check_series_options(variables, time, on_error, filetype)
        self.variables, self.time = options["variables"], options["time"]
        self.on_error, self.filetype = options["on_error"], options["filetype"]
        self._init_dataset(endpoint, dataset, start, stop, storage_options, metadata)

    def to_dask(self):
        """The lazy ``xarray.Dataset`` along ``time``."""
        if self._frames is None:
            start, stop = self.time_range()
            self._frames = self.record.to_dataset(
                start,
                stop,
                variables=self.variables,
                time=self.time,
                on_error=self.on_error,
                filetype=self.filetype,
                storage_options=dict(self.storage_options or {}),
            )
        return self._frames

    def _get_schema(self) -> Schema:
        ds = self.to_dask()
        start, stop = self.time_range()
        return Schema(
            datashape=None,
            dtype=None,
            shape=None,
            npartitions=1,
            extra_metadata={
                "dims": dict(ds.sizes),
                "data_vars": list(ds.data_vars),
                "coords": list(ds.coords),
                "time_range": [start.isoformat(), stop.isoformat()],
            },
        )

    def discover(self) -> dict[str, Any]:
        """Dims, variables and coordinates (opening reads the files' times, no data)."""
        self._load_metadata()
        ds = self.to_dask()
        return {
            "dims": dict(ds.sizes),
            "data_vars": tuple(ds.data_vars),
            "coords": tuple(ds.coords),
            "npartitions": 1,
            "metadata": self.metadata,
        }

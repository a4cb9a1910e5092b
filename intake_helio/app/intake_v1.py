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

Catalogs are lazy: a bucket's ``catalog.json`` (or the registry JSON) is read on the
first access to the entries, and index files only when a source is discovered or read.

Every ``yaml()``, ``repr``, ``describe()`` and ``serialize()`` output passes storage
options through :func:`intake_helio.io.storage.redact` (and also masks s3fs' ``key``), so
credentials are never shown; pickling keeps them, so sources still work on dask workers.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from intake.catalog.base import Catalog
from intake.catalog.local import LocalCatalogEntry, UserParameter
from intake.catalog.utils import merge_pars
from intake.source.base import DataSource, NoEntry, Schema

from .. import __version__
from ..base.errors import DatasetNotFoundError, TimeRangeError
from ..base.times import parse_time
from ..catalog.registry import (
    Bucket,
    Dataset,
    Endpoint,
    Registry,
    did_you_mean,
    endpoint_root,
    open_bucket,
    open_registry,
)
from ..io.storage import redact

__all__ = [
    "HelioBucketCatalog",
    "HelioEntry",
    "HelioFramesSource",
    "HelioRegistryCatalog",
    "default_window",
]

UNITS = ("DN", "DN/s")
ON_ERROR = ("raise", "nan")
DEFAULT_WINDOW = pd.Timedelta(days=1)
"""Default time window of a dataset entry: its last day (so a careless ``read()`` is small)."""


# --------------------------------------------------------------------------- helpers
def _check_storage_options(storage_options: Any) -> dict[str, Any]:
    """Validate ``storage_options`` and return a plain dict copy."""
    if storage_options is None:
        return {}
    if not isinstance(storage_options, Mapping):
        raise TypeError(
            f"storage_options has type {type(storage_options).__name__}; expected a dict such "
            "as {'anon': True} or {'endpoint_url': ..., 'key': ..., 'secret': ...}"
        )
    nested = [v for v in storage_options.values() if isinstance(v, Mapping)]
    for scope in [storage_options, *nested]:
        url = scope.get("endpoint_url", None)
        if url is not None and (not isinstance(url, str) or not url.strip()):
            raise ValueError(
                f"storage_options endpoint_url={url!r} is empty; set it to the S3 server's URL "
                "(if it comes from a catalog template such as {{ env('NAME') }}, that "
                "environment variable is not set), or leave it out to use AWS"
            )
    return dict(storage_options)


def _plain(value: Any) -> Any:
    """Turn a value into YAML-safe builtins (datetimes stay YAML timestamps)."""
    if isinstance(value, pd.Timestamp):
        return value.floor("us").to_pydatetime() if value is not pd.NaT else None
    if isinstance(value, np.datetime64):
        return _plain(pd.Timestamp(value))
    if isinstance(value, _dt.datetime | _dt.date):
        return value
    if isinstance(value, slice):
        return (
            [value.start, value.stop]
            if value.step in (None, 1)
            else [
                value.start,
                value.stop,
                value.step,
            ]
        )
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, np.dtype):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _safe(value: Any) -> Any:
    """Redacted and YAML-safe."""
    return _plain(redact(value))


def _iso(t: pd.Timestamp) -> str:
    return t.isoformat()


def default_window(dataset: Dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The default ``[start, stop)`` of a dataset: its last day, clipped to its start.

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    (pandas.Timestamp, pandas.Timestamp)
        ``(max(dataset.start, dataset.stop - 1 day), dataset.stop)``; a dataset whose
        ``stop`` is not after its ``start`` gets ``[start, start + 1 day)``.
    """
    stop = dataset.stop
    if stop <= dataset.start:
        stop = dataset.start + DEFAULT_WINDOW
    return max(dataset.start, stop - DEFAULT_WINDOW), stop


class _LazyEntries(MutableMapping):
    """The entries of a catalog, built by ``load()`` on first access (thread-safe)."""

    def __init__(self, load: Callable[[], dict[str, Any]]):
        self._load = load
        self._data: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the entries have been read."""
        return self._data is not None

    def _entries(self) -> dict[str, Any]:
        if self._data is None:
            with self._lock:
                if self._data is None:
                    self._data = self._load()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._entries()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._entries()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._entries()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def __contains__(self, key: object) -> bool:
        return key in self._entries()

    def __repr__(self) -> str:
        return f"<lazy entries: {'loaded' if self.loaded else 'not read yet'}>"


class HelioEntry(LocalCatalogEntry):
    """A catalog entry whose ``start``/``stop`` accept any time without intake warnings.

    intake 2.0.9 warns "Shell command not executed due to getshell=False" for every
    string value of a declared user parameter (intake issue #887). This entry parses
    ``start`` and ``stop`` (strings, datetimes, dates, ``numpy.datetime64``,
    ``pandas.Timestamp``) into naive-UTC ``pandas.Timestamp`` before intake sees them, and
    its ``describe()`` hides credentials.
    """

    _dataset: Dataset | None = None

    def get(self, **user_parameters: Any):
        """Instantiate the source; ``start=None``/``stop=None`` mean the defaults."""
        declared = {p["name"] if isinstance(p, dict) else p.name for p in self._user_parameters}
        for name in ("start", "stop"):
            if name in declared and name in user_parameters:
                value = user_parameters[name]
                if value is None:
                    del user_parameters[name]
                else:
                    user_parameters[name] = parse_time(value, name)
        source = super().get(**user_parameters)
        if self._dataset is not None and isinstance(source, HelioFramesSource):
            source._attach(self._dataset)
        return source

    def _create_open_args(self, user_parameters: dict[str, Any]):
        """Like intake's, but only ``{{ ... }}`` string arguments go through jinja.

        intake renders every string of the arguments and metadata as a jinja template;
        catalog descriptions and credentials are data here, not templates.
        """
        user_parameters = dict(user_parameters)
        user_parameters.pop("plugin", None)
        templated = {k: v for k, v in self._open_args.items() if isinstance(v, str) and "{{" in v}
        literal = {k: v for k, v in self._open_args.items() if k not in templated}
        merged = merge_pars(
            templated,
            user_parameters,
            self._user_parameters,
            getshell=self.getshell,
            getenv=self.getenv,
            client=False,
        )
        metadata = dict(self._metadata or {})
        metadata["catalog_dir"] = self._catalog_dir
        if not self._plugin:
            raise ValueError(f"no driver loaded for catalog entry {self.name!r}: {self._driver}")
        return self._plugin[0], {**literal, "metadata": metadata, **merged}

    def describe(self) -> dict[str, Any]:
        """Basic information about this entry, with credentials replaced by ``'***'``."""
        return redact(super().describe())

    def _yaml(self) -> dict[str, Any]:
        return {"sources": {self.name: _safe(self.describe())}}


class _SafeOutputMixin:
    """Redacted ``yaml()``/``repr``/``describe()`` for sources and catalogs."""

    def _yaml(self) -> dict[str, Any]:
        data = super()._yaml()
        for spec in data["sources"].values():
            spec["args"] = _safe(spec.get("args") or {})
            spec["metadata"] = _safe(spec.get("metadata") or {})
        return data

    def yaml(self) -> str:
        """YAML for an intake catalog that re-creates this object (credentials as ``'***'``)."""
        import yaml

        return yaml.dump(self._yaml(), default_flow_style=False, allow_unicode=True)

    def describe(self) -> dict[str, Any]:
        """Description from the catalog entry (or, for a directly opened object, its
        arguments), with credentials replaced by ``'***'``."""
        try:
            return redact(self.entry.describe())
        except NoEntry:
            spec = next(iter(self._yaml()["sources"].values()))
            return {
                "name": self.name,
                "container": self.container,
                "driver": type(self).name,
                "description": self.description or spec.get("description") or "",
                "user_parameters": [],
                "metadata": spec["metadata"],
                "args": spec["args"],
            }


class _HelioCatalogBase(_SafeOutputMixin, Catalog):
    """Lazy catalog: entries are built on first access; no automatic reload."""

    version = __version__
    container = "catalog"
    partition_access = None

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("ttl", None)  # reloads re-read remote JSON: only on force_reload()
        super().__init__(**kwargs)

    def _make_entries_container(self) -> _LazyEntries:
        return _LazyEntries(self._read_entries)

    def _load(self) -> None:
        # Called by force_reload(): forget what was read; the next access re-reads it.
        self._reset()
        self._entries = self._make_entries_container()

    def _reset(self) -> None:  # pragma: no cover - overridden
        pass

    def _read_entries(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def __getitem__(self, key: Any):
        try:
            return super().__getitem__(key)
        except DatasetNotFoundError:
            raise
        except KeyError:
            if not isinstance(key, str):
                raise
            names = list(self._get_entries())
            hint = did_you_mean(key, names)
            raise DatasetNotFoundError(
                f"no entry {key!r} in catalog {self.name!r}{hint} ({len(names)} entries; "
                "list them with list(catalog))"
            ) from None

    def serialize(self) -> str:
        """This catalog's entries as the text of an intake YAML catalog (no credentials)."""
        import yaml

        out: dict[str, Any] = {
            "metadata": _safe({**(self.metadata or {}), "version": 1}),
            "name": self.name,
            "description": self.description,
            "sources": {},
        }
        for key, entry in self._entries.items():
            desc = _safe(entry.describe())
            plugin = entry._plugin[0] if entry._plugin else None
            spec = {
                "driver": f"{plugin.__module__}.{plugin.__name__}" if plugin else desc["driver"],
                "description": desc.get("description") or "",
                "args": desc.get("args") or {},
                "metadata": desc.get("metadata") or {},
            }
            params = {
                p["name"]: {k: v for k, v in p.items() if k != "name"}
                for p in desc.get("user_parameters") or []
            }
            if params:
                spec["parameters"] = params
            out["sources"][key] = spec
        return yaml.dump(out, default_flow_style=False, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- bucket
def _dataset_metadata(ds: Dataset) -> dict[str, Any]:
    meta = {
        "id": ds.id,
        "title": ds.title,
        "start": _iso(ds.start),
        "stop": _iso(ds.stop),
        "index": ds.index,
        "indextype": ds.indextype,
        "filetype": ds.filetype,
        "multiyear": ds.multiyear,
        "endpoint": ds.endpoint,
    }
    for k, v in ds.metadata.items():
        meta.setdefault(k, v)
    return meta


class HelioBucketCatalog(_HelioCatalogBase):
    """One bucket's ``catalog.json`` as an intake catalog: one entry per dataset.

    Parameters
    ----------
    endpoint : str
        Bucket root such as ``"s3://gov-nasa-hdrl-data1/"``.
    storage_options : dict, optional
        fsspec/s3fs options (``anon``, ``endpoint_url``, ``key``/``secret`` ...), flat or
        keyed by protocol; used for ``catalog.json``, the index files and every frame.
    **kwargs
        Passed to :class:`intake.catalog.Catalog` (``name``, ``metadata``, ``ttl`` ...).

    Notes
    -----
    Nothing is read until the entries are first listed or accessed. Each entry opens a
    :class:`HelioFramesSource` and declares user parameters ``start`` and ``stop``
    (type datetime, default: the dataset's last day); ``cutout``, ``header_keys``,
    ``units``, ``on_error``, ``hdu``, ``chunks`` and ``storage_options`` pass through::

        src = cat.aia_0094(start="2020-01-01", stop="2020-02-01", header_keys=["EXPTIME"])
    """

    name = "helio_bucket"

    def __init__(
        self, endpoint: str, storage_options: Mapping[str, Any] | None = None, **kwargs: Any
    ):
        self.endpoint = endpoint_root(endpoint)
        storage_options = _check_storage_options(storage_options)
        self._bucket: Bucket | None = None
        kwargs.setdefault("name", self.endpoint)
        super().__init__(storage_options=storage_options, **kwargs)

    @property
    def bucket(self) -> Bucket:
        """The parsed ``catalog.json`` (read on first use)."""
        if self._bucket is None:
            bucket = open_bucket(self.endpoint, self.storage_options)
            # "version" is the CloudCatalog spec version; intake reads metadata["version"]
            # as its own catalog format version, so keep it under another name.
            meta = {
                ("catalog_version" if k == "version" else k): v
                for k, v in bucket.metadata.items()
                if k != "catalog"
            }
            self.metadata = {**meta, **(self.metadata or {})}
            if not self.description:
                self.description = str(bucket.metadata.get("description") or bucket.name)
            self._bucket = bucket
        return self._bucket

    def _reset(self) -> None:
        self._bucket = None

    def _read_entries(self) -> dict[str, HelioEntry]:
        return {ds.id: self._entry_for(ds) for ds in self.bucket.datasets.values()}

    def _entry_for(self, ds: Dataset) -> HelioEntry:
        t0, t1 = default_window(ds)
        params = [
            UserParameter(
                "start",
                "start of the half-open time range [start, stop) (UTC); default: "
                "one day before the dataset's stop",
                "datetime",
                default=t0,
            ),
            UserParameter(
                "stop",
                "end of the half-open time range [start, stop) (UTC); default: the dataset's stop",
                "datetime",
                default=t1,
            ),
        ]
        description = ds.title
        if ds.description:
            description += f"\n\n{ds.description}"
        entry = HelioEntry(
            name=ds.id,
            description=description,
            driver=HelioFramesSource,
            direct_access="allow",
            args={
                "endpoint": self.endpoint,
                "dataset": ds.id,
                "start": "{{ start }}",
                "stop": "{{ stop }}",
                "storage_options": dict(self.storage_options or {}),
            },
            parameters=params,
            metadata=_dataset_metadata(ds),
            getenv=self.getenv,
            getshell=self.getshell,
            catalog=self,
        )
        entry._dataset = ds
        return entry

    def __repr__(self) -> str:
        return f"<Intake catalog: {self.name} (helio_bucket {self.endpoint})>"


# --------------------------------------------------------------------------- registry
def _entry_names(endpoints: Sequence[Endpoint]) -> list[str]:
    """Bucket names, disambiguated with the region (then the endpoint) when they repeat."""
    counts: dict[str, int] = {}
    for e in endpoints:
        counts[e.name] = counts.get(e.name, 0) + 1
    names = [e.name if counts[e.name] == 1 else f"{e.name} ({e.region})" for e in endpoints]
    seen: dict[str, int] = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    return [
        n if seen[n] == 1 else f"{e.name} ({e.endpoint})"
        for n, e in zip(names, endpoints, strict=True)
    ]


class HelioRegistryCatalog(_HelioCatalogBase):
    """The global HelioCloud registry as an intake catalog: one entry per bucket.

    Parameters
    ----------
    url : str, optional
        Registry JSON; defaults to ``$ROOT_CATALOG_REGISTRY_URL``, else HelioCloud's
        public registry ``http://heliocloud.org/catalog/HelioDataRegistry.json``.
    storage_options : dict, optional
        fsspec options, flat (applied to object stores: the buckets) or keyed by
        protocol; passed to every bucket catalog opened from this registry.
    **kwargs
        Passed to :class:`intake.catalog.Catalog`.

    Notes
    -----
    Entries are keyed by the bucket's registry ``name``; a name that several buckets
    share becomes ``"Name (region)"`` (or ``"Name (endpoint)"`` if the region repeats
    too). Each entry opens a :class:`HelioBucketCatalog`.
    """

    name = "helio_registry"

    def __init__(
        self,
        url: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        if url is not None and not isinstance(url, str):
            raise TypeError(f"url has type {type(url).__name__}; expected a URL string or None")
        self.url = url.strip() if url and url.strip() else None
        storage_options = _check_storage_options(storage_options)
        self._registry: Registry | None = None
        kwargs.setdefault("name", "helio_registry")
        super().__init__(storage_options=storage_options, **kwargs)

    @property
    def registry(self) -> Registry:
        """The parsed registry JSON (read on first use)."""
        if self._registry is None:
            reg = open_registry(self.url, self.storage_options)
            self.metadata = {
                "url": reg.url,
                "registry_version": reg.version,
                "modificationDate": reg.modification_date,
                **(self.metadata or {}),
            }
            self._registry = reg
        return self._registry

    def _reset(self) -> None:
        self._registry = None

    def _read_entries(self) -> dict[str, HelioEntry]:
        endpoints = self.registry.endpoints
        entries = {}
        for key, ep in zip(_entry_names(endpoints), endpoints, strict=True):
            where = ", ".join(str(x) for x in (ep.provider, ep.region) if x)
            entries[key] = HelioEntry(
                name=key,
                description=f"{ep.name}: {ep.endpoint}" + (f" ({where})" if where else ""),
                driver=HelioBucketCatalog,
                direct_access="allow",
                args={"endpoint": ep.endpoint, "storage_options": dict(self.storage_options or {})},
                metadata={
                    "name": ep.name,
                    "endpoint": ep.endpoint,
                    "region": ep.region,
                    "provider": ep.provider,
                    **dict(ep.extra),
                },
                getenv=self.getenv,
                getshell=self.getshell,
                catalog=self,
            )
        return entries


# --------------------------------------------------------------------------- source
class HelioFramesSource(_SafeOutputMixin, DataSource):
    """The frames of one CloudCatalog dataset as a lazy ``(time, y, x)`` DataArray.

    Parameters
    ----------
    endpoint : str
        Bucket root such as ``"s3://gov-nasa-hdrl-data1/"``.
    dataset : str
        Dataset id in the bucket's ``catalog.json`` (e.g. ``"aia_0094"``).
    start, stop : str, datetime, date, numpy.datetime64 or pandas.Timestamp, optional
        Half-open range ``[start, stop)`` (UTC). Missing values default to the dataset's
        last day, ``[stop - 1 day, stop)`` clipped to the dataset's start.
    storage_options : dict, optional
        fsspec options for ``catalog.json``, the index files and every frame.
    hdu, cutout, header_keys, units, on_error, chunks
        As in :func:`intake_helio.frames.build.open_frames`. ``cutout`` may give
        ``[start, stop]`` lists instead of slices (as in YAML).
    metadata : dict, optional
        Extra metadata.

    Notes
    -----
    ``discover()`` reads the dataset's index and one frame's header (no pixels) and
    returns shape, dtype, dims and coords; ``to_dask()`` returns the lazy DataArray;
    ``read()`` computes it. Sources pickle with their arguments and re-open lazily.
    """

    container = "xarray"
    name = "helio_frames"
    version = __version__
    partition_access = False

    def __init__(
        self,
        endpoint: str,
        dataset: str,
        start: Any = None,
        stop: Any = None,
        storage_options: Mapping[str, Any] | None = None,
        hdu: int | str = "auto",
        cutout: Mapping[str, Any] | None = None,
        header_keys: Sequence[str] = (),
        units: str = "DN",
        on_error: str = "raise",
        chunks: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ):
        self.endpoint = endpoint_root(endpoint)
        if not isinstance(dataset, str) or not dataset:
            raise ValueError(f"dataset={dataset!r}; expected a dataset id such as 'aia_0094'")
        self.dataset = dataset
        self.start = None if start is None else parse_time(start, "start")
        self.stop = None if stop is None else parse_time(stop, "stop")
        if self.start is not None and self.stop is not None and self.start >= self.stop:
            raise TimeRangeError(
                f"start={_iso(self.start)} is not before stop={_iso(self.stop)}; the range is "
                "half-open [start, stop): swap them or widen the range"
            )
        if units not in UNITS:
            raise ValueError(f"units={units!r}; expected one of {UNITS}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error={on_error!r}; expected one of {ON_ERROR}")
        self.hdu = hdu
        self.cutout = None if cutout is None else dict(cutout)
        if isinstance(header_keys, str):
            header_keys = (header_keys,)
        self.header_keys = tuple(header_keys or ())
        self.units = units
        self.on_error = on_error
        self.chunks = None if chunks is None else dict(chunks)
        self._record: Dataset | None = None
        self._frames = None
        super().__init__(
            storage_options=_check_storage_options(storage_options), metadata=dict(metadata or {})
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
        """The ``[start, stop)`` this source reads, with defaults filled in."""
        if self.start is not None and self.stop is not None:
            return self.start, self.stop
        t0, t1 = default_window(self.record)
        start = self.start if self.start is not None else t0
        stop = self.stop if self.stop is not None else t1
        if start >= stop:  # only one end given and it falls outside the default window
            if self.start is None:
                start = max(self.record.start, stop - DEFAULT_WINDOW)
            else:
                stop = start + DEFAULT_WINDOW
        return start, stop

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
                "time_range": [_iso(start), _iso(stop)],
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

    def _get_partition(self, i: int):
        if i != 0:
            raise IndexError(f"partition {i} is out of range; this source has one partition")
        return self.read()

    def read(self):
        """Compute every frame (and lazy coordinate) into memory."""
        return self.to_dask().compute()

    def read_partition(self, i: int):
        """The whole array for ``i == 0`` (this source is not partitioned)."""
        return self._get_partition(i)

    def _close(self) -> None:
        self._frames = None
        self._schema = None

"""intake 2 readers for HelioCloud's CloudCatalog (``intake.readers`` API).

Three :class:`intake.readers.readers.BaseReader` subclasses, registered with intake through
the ``intake.imports`` entry point (importing this module is the registration):

:class:`HelioRegistryReader`
    The global registry -> an :class:`intake.readers.entry.Catalog` with one
    :class:`HelioBucketReader` entry per bucket.
:class:`HelioBucketReader`
    One bucket's ``catalog.json`` -> an :class:`intake.readers.entry.Catalog` with one
    :class:`HelioFramesReader` entry per dataset, keyed by the dataset id.
:class:`HelioFramesReader`
    One dataset's frames in ``[start, stop)`` -> a lazy ``(time, y, x)``
    :class:`xarray.DataArray` (the index and one header are read; pixels on compute).

They take the arguments of the intake v1 drivers (``helio_registry``, ``helio_bucket``,
``helio_frames``) and, like them, are thin over the intake-agnostic core
(:func:`intake_helio.catalog.registry.open_registry`,
:func:`~intake_helio.catalog.registry.open_bucket`,
:meth:`~intake_helio.catalog.registry.Dataset.to_dataarray`), with the checks and defaults
of :mod:`.common`.

Credentials. A reader keeps its ``storage_options`` privately; its public ``kwargs`` (what
intake tokenizes, shows and writes into catalogs) hold them redacted, with ``'***'`` in
place of keys, secrets and tokens. Catalog entries made from a reader (``to_entry()``,
``catalog[name] = reader``, the catalogs these readers return) carry the real options
privately too, so they read with them in this process, while ``Catalog.to_yaml_file``
writes only ``'***'``. A reader made from a saved entry leaves the ``'***'`` entries out,
so the credentials come from the environment (AWS variables, profiles, instance roles),
or pass ``storage_options=`` again: ``catalog["aia_0094"](storage_options={...})``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from intake.readers.entry import Catalog, ReaderDescription
from intake.readers.readers import BaseReader

from ..base.times import parse_range
from ..catalog.registry import endpoint_root, open_bucket, open_registry
from ..io.storage import mask_url
from .common import (
    DriverArgumentTypeError,
    check_dataset_id,
    check_frame_options,
    check_series_options,
    check_storage_options,
    dataset_metadata,
    drop_redacted,
    entry_names,
    fill_range,
    plain,
    safe,
)

__all__ = [
    "HelioBucketReader",
    "HelioFramesReader",
    "HelioReaderDescription",
    "HelioRegistryReader",
    "HelioSeriesReader",
]

_CATALOG = "intake.readers.entry:Catalog"


class HelioReaderDescription(ReaderDescription):
    """A catalog entry for a Helio reader that keeps the real storage options privately.

    Its public attributes (written by ``Catalog.to_yaml_file``, shown by ``repr``) hold
    the redacted ``kwargs``; :meth:`to_reader` gives the reader the private options
    unless ``storage_options`` is passed explicitly. Made by the readers' ``to_entry()``.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`intake.readers.entry.ReaderDescription`.
    storage_options : dict, optional
        The real options (keyword only).
    """

    def __init__(
        self,
        *args: Any,
        storage_options: Mapping[str, Any] | None = None,
        urls: Mapping[str, str] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self._storage_options = None if storage_options is None else dict(storage_options)
        self._urls = dict(urls or {})

    def to_reader(self, user_parameters=None, **kwargs):
        """The reader, with the real storage options unless ``storage_options`` is given."""
        real = getattr(self, "_storage_options", None)
        if real is not None and "storage_options" not in kwargs:
            kwargs["storage_options"] = real
        for name, url in getattr(self, "_urls", {}).items():  # URLs with credentials
            kwargs.setdefault(name, url)
        corners = getattr(self, "_cutout", None)  # SkyCoord corners (kwargs show them as text)
        if corners is None or "cutout" in kwargs:
            return super().to_reader(user_parameters=user_parameters, **kwargs)
        # intake walks the arguments (a SkyCoord is iterable but not a list): set them after
        reader = super().to_reader(user_parameters=user_parameters, cutout=None, **kwargs)
        reader._cutout = corners
        reader.kwargs["cutout"] = self.kwargs.get("cutout")
        return reader


class _HelioReader(BaseReader):
    """What the three readers share: private storage options, checked arguments."""

    imports: ClassVar[set[str]] = {"intake_helio", "xarray"}

    def _setup(
        self,
        storage_options: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        output_instance: str | None,
        **kwargs: Any,
    ) -> None:
        options = drop_redacted(check_storage_options(storage_options))
        self._storage_options = options
        # URLs holding credentials (http://user:pass@host/...) are kept privately too
        self._urls = {k: v for k, v in kwargs.items() if isinstance(v, str) and mask_url(v) != v}
        shown = {k: mask_url(v) if k in self._urls else v for k, v in kwargs.items()}
        super().__init__(
            metadata=safe(dict(metadata or {})),
            output_instance=output_instance,
            **plain(shown),
            storage_options=safe(options),
        )

    @property
    def storage_options(self) -> dict[str, Any]:
        """The storage options used for reading (with credentials; never shown)."""
        return self._storage_options

    def _arguments(self) -> dict[str, Any]:
        """The keyword arguments that re-create this reader, with the real options."""
        urls = getattr(self, "_urls", {})
        return {**self.kwargs, **urls, "storage_options": self._storage_options}

    def __call__(self, *args: Any, **kwargs: Any):
        """A new reader with some arguments changed (credentials are kept)."""
        if args:
            raise DriverArgumentTypeError(
                f"{type(self).__name__}(...) takes keyword arguments only, got {len(args)} "
                "positional; name them, e.g. reader(start='2020-01-01')"
            )
        return type(self)(**{"metadata": self.metadata, **self._arguments(), **kwargs})

    def read(self, *args: Any, **kwargs: Any):
        """Read; keyword arguments override the reader's (checked as in the constructor)."""
        reader = self(*args, **kwargs) if (args or kwargs) else self
        return reader._read(**reader._arguments())

    def to_entry(self) -> HelioReaderDescription:
        """A catalog entry: redacted ``kwargs``, real storage options kept privately."""
        return HelioReaderDescription(
            reader=self.qname(),
            kwargs=dict(self.kwargs),
            output_instance=self.output_instance,
            metadata=self.metadata,
            storage_options=self._storage_options,
            urls=getattr(self, "_urls", {}),
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if v not in (None, {}, []))
        return f"{type(self).__name__}({shown}) -> {self.output_instance}"


class HelioFramesReader(_HelioReader):
    """The frames of one CloudCatalog dataset as a lazy ``(time, y, x)`` DataArray.

    Parameters
    ----------
    endpoint : str
        Bucket root such as ``"s3://gov-nasa-hdrl-data1/"``.
    dataset : str
        Dataset id in the bucket's ``catalog.json`` (e.g. ``"aia_0094"``).
    start, stop : str, datetime, date, numpy.datetime64 or pandas.Timestamp, optional
        Half-open range ``[start, stop)`` (UTC). A missing end comes from the dataset's
        last ``intake_helio.default-window`` (``dask.config``; one day by default), read
        when the frames are opened.
    storage_options : dict, optional
        fsspec options for ``catalog.json``, the index files and every frame.
    hdu, cutout, header_keys, units, on_error, chunks, quality
        As in :func:`intake_helio.frames.build.open_frames`; ``cutout`` may give
        ``[start, stop]`` lists instead of slices (as in YAML), in pixels (``y``/``x``) or
        arcsec (``Tx``/``Ty``); ``SkyCoord`` corners are kept by the reader and its
        entries in this process (a saved catalog shows them as text). ``quality="good"``: frames
        whose header ``QUALITY`` is not 0 get the reason ``"quality flag 0x%08x"``.
    metadata : dict, optional
        Extra metadata.
    output_instance : str, optional
        Set by intake when the reader comes from a catalog entry.

    Raises
    ------
    TimeRangeError
        ``start`` or ``stop`` is not a time, or ``start`` is not before ``stop``.
    OptionError
        ``units``, ``on_error`` or ``quality`` is not one of the accepted choices.
    DriverArgumentError
        ``dataset`` is not a non-empty string, or ``storage_options`` has an empty
        ``endpoint_url``.

    Examples
    --------
    >>> reader = HelioFramesReader("s3://gov-nasa-hdrl-data1/", "aia_0094",
    ...                            start="2020-01-01", stop="2020-01-02",
    ...                            storage_options={"anon": True})   # doctest: +SKIP
    >>> frames = reader.read()                    # lazy; frames.mean(("y", "x")).compute()
    """

    output_instance = "xarray:DataArray"

    def __init__(
        self,
        endpoint: str,
        dataset: str,
        start: Any = None,
        stop: Any = None,
        storage_options: Mapping[str, Any] | None = None,
        hdu: int | str = "auto",
        cutout: Mapping[str, Any] | Sequence[Any] | None = None,
        header_keys: Sequence[str] | str = (),
        units: str = "DN",
        on_error: str = "raise",
        chunks: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
        output_instance: str | None = None,
        quality: str | None = None,
    ):
        t0, t1 = parse_range(start, stop)
        options = check_frame_options(hdu, cutout, header_keys, units, on_error, chunks, quality)
        self._setup(
            storage_options,
            metadata,
            output_instance,
            endpoint=endpoint_root(endpoint),
            dataset=check_dataset_id(dataset),
            start=None if t0 is None else t0.isoformat(),
            stop=None if t1 is None else t1.isoformat(),
            **options,
        )
        # SkyCoord corners are not YAML: ``kwargs`` show them as text, reads use the objects
        corners = options["cutout"]
        self._cutout = None if corners is None or isinstance(corners, Mapping) else corners

    def _arguments(self) -> dict[str, Any]:
        """The keyword arguments that re-create this reader (real options and corners)."""
        args = super()._arguments()
        if getattr(self, "_cutout", None) is not None:
            args["cutout"] = self._cutout
        return args

    def to_entry(self) -> HelioReaderDescription:
        """A catalog entry; SkyCoord cutout corners are kept privately, like the options."""
        entry = super().to_entry()
        entry._cutout = getattr(self, "_cutout", None)
        return entry

    def _read(self, endpoint, dataset, start=None, stop=None, storage_options=None, **options):
        record = open_bucket(endpoint, storage_options)[dataset]
        t0, t1 = fill_range(record, *parse_range(start, stop))
        return record.to_dataarray(t0, t1, storage_options=storage_options, **options)


class HelioSeriesReader(_HelioReader):
    """A time-series dataset (CDF, netCDF, HDF5) as a lazy ``xarray.Dataset`` along time.

    Parameters
    ----------
    endpoint : str
        Bucket root such as ``"s3://gov-nasa-hdrl-data1/"``.
    dataset : str
        Dataset id in the bucket's ``catalog.json``.
    start, stop : str, datetime, date, numpy.datetime64 or pandas.Timestamp, optional
        Half-open range ``[start, stop)`` (UTC); defaults as for :class:`HelioFramesReader`.
    storage_options : dict, optional
        fsspec options for ``catalog.json``, the index files and every file.
    variables, time, on_error, filetype
        As in :meth:`intake_helio.catalog.registry.Dataset.to_dataset`.
    metadata : dict, optional
        Extra metadata.
    output_instance : str, optional
        Set by intake when the reader comes from a catalog entry.
    """

    output_instance = "xarray:Dataset"

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
        output_instance: str | None = None,
    ):
        t0, t1 = parse_range(start, stop)
        self._setup(
            storage_options,
            metadata,
            output_instance,
            endpoint=endpoint_root(endpoint),
            dataset=check_dataset_id(dataset),
            start=None if t0 is None else t0.isoformat(),
            stop=None if t1 is None else t1.isoformat(),
            **check_series_options(variables, time, on_error, filetype),
        )

    def _read(self, endpoint, dataset, start=None, stop=None, storage_options=None, **options):
        record = open_bucket(endpoint, storage_options)[dataset]
        t0, t1 = fill_range(record, *parse_range(start, stop))
        return record.to_dataset(t0, t1, storage_options=storage_options, **options)


class HelioBucketReader(_HelioReader):
    """One bucket's ``catalog.json`` as an intake 2 catalog: one entry per dataset.

    Parameters
    ----------
    endpoint : str
        Bucket root such as ``"s3://gov-nasa-hdrl-data1/"``.
    storage_options : dict, optional
        fsspec options (``anon``, ``endpoint_url``, ``key``/``secret`` ...), flat or keyed
        by protocol; used for ``catalog.json``, the index files and every frame.
    metadata : dict, optional
        Extra metadata.
    output_instance : str, optional
        Set by intake when the reader comes from a catalog entry.

    Notes
    -----
    ``read()`` reads ``catalog.json`` and returns an :class:`intake.readers.entry.Catalog`
    whose entries are :class:`HelioFramesReader` descriptions keyed by dataset id, with the
    dataset's catalog record as metadata and no time range (the dataset's last
    ``intake_helio.default-window``); choose one by calling the entry::

        cat = HelioBucketReader("s3://gov-nasa-hdrl-data1/", {"anon": True}).read()
        frames = cat.aia_0094(start="2020-01-01", stop="2020-02-01").read()
    """

    output_instance = _CATALOG

    def __init__(
        self,
        endpoint: str,
        storage_options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        output_instance: str | None = None,
    ):
        self._setup(storage_options, metadata, output_instance, endpoint=endpoint_root(endpoint))

    def _read(self, endpoint, storage_options=None) -> Catalog:
        bucket = open_bucket(endpoint, storage_options)
        entries = {}
        for ds in bucket.datasets.values():
            description = ds.title + (f"\n\n{ds.description}" if ds.description else "")
            kind = HelioSeriesReader if ds.opens_as == "series" else HelioFramesReader
            reader = kind(
                endpoint,
                ds.id,
                storage_options=storage_options,
                metadata={**dataset_metadata(ds), "description": description},
            )
            entries[ds.id] = _named(reader.to_entry(), ds.id)
        # "version" is the CloudCatalog spec version; intake's own key is Catalog.version.
        meta = {
            ("catalog_version" if k == "version" else k): v
            for k, v in bucket.metadata.items()
            if k != "catalog"
        }
        meta.setdefault("description", str(bucket.metadata.get("description") or bucket.name))
        meta = {**meta, "endpoint": mask_url(endpoint), **self.metadata}
        return Catalog(entries=entries, aliases={k: k for k in entries}, metadata=safe(meta))


class HelioRegistryReader(_HelioReader):
    """The global HelioCloud registry as an intake 2 catalog: one entry per bucket.

    Parameters
    ----------
    url : str, optional
        Registry JSON; defaults (when read) to ``$ROOT_CATALOG_REGISTRY_URL``, else
        HelioCloud's public registry ``http://heliocloud.org/catalog/HelioDataRegistry.json``.
    storage_options : dict, optional
        fsspec options, flat (applied to object stores: the buckets) or keyed by protocol;
        passed to every bucket reader of the catalog.
    metadata : dict, optional
        Extra metadata.
    output_instance : str, optional
        Set by intake when the reader comes from a catalog entry.

    Notes
    -----
    ``read()`` returns an :class:`intake.readers.entry.Catalog` of
    :class:`HelioBucketReader` entries keyed by the bucket's registry ``name``; a name that
    several buckets share becomes ``"Name (region)"`` (or ``"Name (endpoint)"``).
    """

    output_instance = _CATALOG

    def __init__(
        self,
        url: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        output_instance: str | None = None,
    ):
        if url is not None and not isinstance(url, str):
            raise DriverArgumentTypeError(
                f"url has type {type(url).__name__}; expected a URL string or None"
            )
        url = url.strip() if url and url.strip() else None
        self._setup(storage_options, metadata, output_instance, url=url)

    def _read(self, url=None, storage_options=None) -> Catalog:
        registry = open_registry(url, storage_options)
        endpoints = registry.endpoints
        entries = {}
        for key, ep in zip(entry_names(endpoints), endpoints, strict=True):
            where = ", ".join(str(x) for x in (ep.provider, ep.region) if x)
            reader = HelioBucketReader(
                ep.endpoint,
                storage_options=storage_options,
                metadata={
                    "name": ep.name,
                    "endpoint": ep.endpoint,
                    "region": ep.region,
                    "provider": ep.provider,
                    **dict(ep.extra),
                    "description": f"{ep.name}: {ep.endpoint}" + (f" ({where})" if where else ""),
                },
            )
            entries[key] = _named(reader.to_entry(), key)
        meta = {
            "url": mask_url(registry.url),
            "registry_version": registry.version,
            "modificationDate": registry.modification_date,
            **self.metadata,
        }
        return Catalog(entries=entries, aliases={k: k for k in entries}, metadata=safe(meta))


def _named(entry: ReaderDescription, name: str) -> ReaderDescription:
    """``entry`` with its catalog key as token, as ``Catalog.from_dict`` gives it."""
    entry._tok = name
    return entry

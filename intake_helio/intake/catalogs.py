"""The ``helio_registry`` and ``helio_bucket`` intake drivers and their catalog entries.

Thin intake v1 ``Catalog`` classes over :func:`intake_helio.catalog.registry.open_registry`
and :func:`~intake_helio.catalog.registry.open_bucket`: the JSON is read on the first
access to the entries; each registry entry opens a :class:`HelioBucketCatalog` and each
bucket entry a :class:`~intake_helio.intake.source.HelioFramesSource`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from intake.catalog.base import Catalog
from intake.catalog.local import LocalCatalogEntry, UserParameter
from intake.catalog.utils import merge_pars

from ..base.errors import DatasetNotFoundError
from ..base.settings import current
from ..base.times import parse_time
from ..base.version import __version__
from ..catalog.registry import (
    Bucket,
    Dataset,
    Registry,
    did_you_mean,
    endpoint_root,
    open_bucket,
    open_registry,
)
from ..io.storage import mask_url, redact
from .common import (
    DriverArgumentError,
    DriverArgumentTypeError,
    LazyEntries,
    SafeOutputMixin,
    check_storage_options,
    dataset_metadata,
    default_window,
    entry_names,
    safe,
)
from .source import HelioFramesSource, HelioSeriesSource, _DatasetSource

__all__ = ["HelioBucketCatalog", "HelioEntry", "HelioRegistryCatalog"]


class HelioEntry(LocalCatalogEntry):
    """A catalog entry whose ``start``/``stop`` accept any time without intake warnings.

    intake 2.0.9 warns "Shell command not executed due to getshell=False" for every
    string value of a declared user parameter (intake issue #887). This entry parses
    ``start`` and ``stop`` (strings, datetimes, dates, ``numpy.datetime64``,
    ``pandas.Timestamp``) into naive-UTC ``pandas.Timestamp`` before intake sees them, and
    its ``describe()`` hides credentials.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`intake.catalog.local.LocalCatalogEntry`.
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
        if self._dataset is not None and isinstance(source, _DatasetSource):
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
            raise DriverArgumentError(
                f"no driver loaded for catalog entry {self.name!r}: {self._driver}"
            )
        return self._plugin[0], {**literal, "metadata": metadata, **merged}

    def describe(self) -> dict[str, Any]:
        """Basic information about this entry, with credentials replaced by ``'***'``."""
        return redact(super().describe())

    def _yaml(self) -> dict[str, Any]:
        return {"sources": {self.name: safe(self.describe())}}


class _HelioCatalogBase(SafeOutputMixin, Catalog):
    """Lazy catalog: entries are built on first access; no automatic reload."""

    version = __version__
    container = "catalog"
    partition_access = None
    #: Builds the entries (subclasses); called on the first access after (re)loading.
    _read_entries: Callable[[], dict[str, HelioEntry]]

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("ttl", None)  # reloads re-read remote JSON: only on force_reload()
        super().__init__(**kwargs)

    def _make_entries_container(self) -> LazyEntries:
        return LazyEntries(self._read_entries)

    def _load(self) -> None:
        # Called by force_reload(): forget what was read; the next access re-reads it.
        self._reset()
        self._entries = self._make_entries_container()

    def _reset(self) -> None:
        """Forget the parsed JSON (subclasses)."""

    def _close(self) -> None:
        pass

    def __getitem__(self, key: Any):
        try:
            return super().__getitem__(key)
        except DatasetNotFoundError:
            raise
        except KeyError:
            names = list(self._get_entries())
            hint = did_you_mean(key, names) if isinstance(key, str) else ""
            raise DatasetNotFoundError(
                f"no entry {key!r} in catalog {self.name!r}{hint} ({len(names)} entries; "
                "list them with list(catalog))"
            ) from None

    def serialize(self) -> str:
        """This catalog's entries as the text of an intake YAML catalog (no credentials)."""
        import yaml

        out: dict[str, Any] = {
            "metadata": safe({**(self.metadata or {}), "version": 1}),
            "name": self.name,
            "description": self.description,
            "sources": {},
        }
        for key, entry in self._entries.items():
            desc = safe(entry.describe())
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
    :class:`~intake_helio.intake.source.HelioFramesSource` and declares user
    parameters ``start`` and ``stop`` (type datetime, default: the dataset's last
    ``intake_helio.default-window``, one day unless changed in ``dask.config``, read when
    the entries are built); ``cutout``, ``header_keys``, ``units``, ``on_error``,
    ``quality``, ``hdu``, ``chunks`` and ``storage_options`` pass through::

        src = cat.aia_0094(start="2020-01-01", stop="2020-02-01", header_keys=["EXPTIME"])
    """

    name = "helio_bucket"

    def __init__(
        self, endpoint: str, storage_options: Mapping[str, Any] | None = None, **kwargs: Any
    ):
        self.endpoint = endpoint_root(endpoint)
        storage_options = check_storage_options(storage_options)
        self._bucket: Bucket | None = None
        kwargs.setdefault("name", mask_url(self.endpoint))
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
        window = current().default_window
        return {ds.id: self._entry_for(ds, window) for ds in self.bucket.datasets.values()}

    def _entry_for(self, ds: Dataset, window: pd.Timedelta) -> HelioEntry:
        t0, t1 = default_window(ds, window)
        params = [
            UserParameter(
                "start",
                "start of the half-open time range [start, stop) (UTC); default: "
                f"{window} (intake_helio.default-window) before the dataset's stop",
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
            # a time series opens as a Dataset; anything else as frames (whose to_dask()
            # says why a format intake-helio does not open is refused)
            driver=HelioSeriesSource if ds.opens_as == "series" else HelioFramesSource,
            direct_access="allow",
            args={
                "endpoint": self.endpoint,
                "dataset": ds.id,
                "start": "{{ start }}",
                "stop": "{{ stop }}",
                "storage_options": dict(self.storage_options or {}),
            },
            parameters=params,
            metadata=dataset_metadata(ds),
            getenv=self.getenv,
            getshell=self.getshell,
            catalog=self,
        )
        entry._dataset = ds
        return entry

    def __repr__(self) -> str:
        return f"<Intake catalog: {self.name} (helio_bucket {mask_url(self.endpoint)})>"


# --------------------------------------------------------------------------- registry
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
            raise DriverArgumentTypeError(
                f"url has type {type(url).__name__}; expected a URL string or None"
            )
        self.url = url.strip() if url and url.strip() else None
        storage_options = check_storage_options(storage_options)
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
        for key, ep in zip(entry_names(endpoints), endpoints, strict=True):
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

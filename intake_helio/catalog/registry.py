"""CloudCatalog JSON -> typed records: the global registry, bucket catalogs and datasets.

External JSON is parsed into frozen dataclasses at the boundary (:mod:`.records`); required
keys are checked once, with errors that say which file and which key. A registry and the
bucket catalogs it lists are third-party content: an entry that is malformed, names a URL
the URL policy refuses (:mod:`intake_helio.io.urlpolicy`) or has an unusable id or time is
skipped and reported (``.invalid`` and a :class:`~intake_helio.HelioWarning`); the other
entries work. Asking for a skipped one raises its error. Credentials in URLs are shown as
``***`` in reprs, errors and warnings.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from ..base.errors import (
    ArgumentError,
    BucketUnavailableError,
    CatalogFormatError,
    DatasetNotFoundError,
    HelioWarning,
)
from ..base.times import parse_range
from ..io.storage import mask_url, scope_options, shown
from ..io.urlpolicy import UrlPolicy
from .fetch import read_json
from .records import (
    Dataset,
    Endpoint,
    did_you_mean,
    display_text,
    endpoint_root,
    require,
    version_of,
)
from .reprs import bucket_html, listing, registry_html

__all__ = [
    "DEFAULT_REGISTRY_URL",
    "Bucket",
    "Dataset",
    "Endpoint",
    "Registry",
    "SearchResults",
    "did_you_mean",
    "endpoint_root",
    "open_bucket",
    "open_registry",
    "read_json",
]

DEFAULT_REGISTRY_URL = "http://heliocloud.org/catalog/HelioDataRegistry.json"
REGISTRY_ENV = "ROOT_CATALOG_REGISTRY_URL"


def _warn_skipped(kind: str, url: str, invalid: Mapping[str, str]) -> None:
    if invalid:
        warnings.warn(
            f"skipped {len(invalid)} {kind} of {shown(url)}: "
            + "; ".join(f"{k}: {v}" for k, v in invalid.items()),
            HelioWarning,
            stacklevel=3,
        )


class SearchResults(list):
    """A list of :class:`Dataset`; ``unreachable`` maps bucket endpoints to the reason."""

    def __init__(self, items=(), unreachable: Mapping[str, str] | None = None):
        super().__init__(items)
        self.unreachable = dict(unreachable or {})

    def to_dataframe(self) -> pd.DataFrame:
        """One row per dataset: endpoint (credentials masked), id, title, start, stop,
        filetype and what intake-helio opens it as (``opens_as``: ``"frames"``, or ``""``
        where it does not open the format; its files are listed all the same)."""
        return pd.DataFrame(
            [
                (mask_url(d.endpoint), d.id, d.title, d.start, d.stop, d.filetype, d.opens_as)
                for d in self
            ],
            columns=["endpoint", "id", "title", "start", "stop", "filetype", "opens_as"],
        )


def _matches(ds: Dataset, text: str | None) -> bool:
    if not text:
        return True
    t = text.lower()
    return t in ds.id.lower() or t in ds.title.lower() or t in ds.description.lower()


class Bucket(Mapping[str, Dataset]):
    """A bucket catalog (``<endpoint>catalog.json``): a mapping of dataset id -> Dataset.

    Attributes
    ----------
    datasets : dict
        The usable datasets by id.
    invalid : dict
        Datasets skipped (bad id, time, index URL or missing keys): their id (or
        ``catalog[i]`` when the id itself is unusable) -> the reason.
    """

    def __init__(
        self,
        endpoint: str,
        obj: Mapping[str, Any],
        storage_options=None,
        url="",
        *,
        warn=True,
        cache: bool | None = None,
    ):
        self.endpoint = endpoint_root(endpoint)
        self.url = url or self.endpoint + "catalog.json"
        self.storage_options = dict(storage_options or {})
        self.cache = cache
        where = f"bucket catalog {shown(self.url)}"
        self.version = version_of(obj, where, "catalog", "a CloudCatalog catalog.json")
        self.name = display_text(obj.get("name") or mask_url(self.endpoint), 200)
        status = obj.get("status") or {"code": 1200, "message": "OK"}
        if not isinstance(status, Mapping):
            status = {"code": 1200, "message": display_text(status, 200)}
        self.status = dict(status)
        try:
            code = int(self.status.get("code", 1200) or 1200)
        except (TypeError, ValueError, OverflowError):
            code = 1200
        if code == 1400:
            raise BucketUnavailableError(
                f"bucket {shown(self.endpoint)} is temporarily unavailable (status 1400: "
                f"{shown(self.status.get('message', ''))}); try again later"
            )
        self.metadata = {k: v for k, v in obj.items() if k != "catalog"}
        entries = obj["catalog"]
        if not isinstance(entries, list):
            raise CatalogFormatError(
                f"{where}: 'catalog' must be a list of datasets, found {type(entries).__name__}"
            )
        policy = UrlPolicy.current()
        self.datasets: dict[str, Dataset] = {}
        self.invalid: dict[str, str] = {}
        for i, entry in enumerate(entries):
            try:
                ds = Dataset.from_entry(
                    entry,
                    self.endpoint,
                    self.storage_options,
                    where=f"{where} catalog[{i}]",
                    catalog_url=self.url,
                    policy=policy,
                    cache=cache,
                )
            except CatalogFormatError as exc:
                self.invalid[self._invalid_key(entry, i)] = str(exc)
                continue
            self.datasets[ds.id] = ds
        if warn:
            _warn_skipped("dataset(s)", self.url, self.invalid)

    @staticmethod
    def _invalid_key(entry: Any, i: int) -> str:
        from ..io.urlpolicy import check_dataset_id

        try:
            return check_dataset_id(entry.get("id"), "")
        except (AttributeError, CatalogFormatError):
            return f"catalog[{i}]"

    def __getitem__(self, key: str) -> Dataset:
        try:
            return self.datasets[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable key
            key = repr(key)
        if isinstance(key, str) and key in self.invalid:
            raise CatalogFormatError(
                f"dataset {key!r} of {shown(self.url)} was skipped: {self.invalid[key]}"
            )
        hint = did_you_mean(key, list(self.datasets))
        raise DatasetNotFoundError(
            f"no dataset {display_text(key, 200)!r} in {shown(self.url)}{hint} "
            f"({len(self.datasets)} datasets; list them with intake-helio ls or bucket.datasets)"
        ) from None

    def __contains__(self, key: object) -> bool:
        try:
            return key in self.datasets
        except TypeError:
            return False

    def get(self, key: str, default: Any = None) -> Any:
        """The dataset ``key``, or ``default`` when it is not a usable dataset of the bucket."""
        return self.datasets.get(key, default) if key in self else default

    def __iter__(self) -> Iterator[str]:
        return iter(self.datasets)

    def __len__(self) -> int:
        return len(self.datasets)

    def __repr__(self) -> str:
        skipped = f" skipped={len(self.invalid)}" if self.invalid else ""
        return (
            f"<Bucket {shown(self.name)!r} {shown(self.endpoint)} datasets={len(self)}{skipped}"
            f"{listing(list(self.datasets))}>"
        )

    def _repr_html_(self) -> str:
        return bucket_html(self)

    def search(self, text: str | None = None, start: Any = None, stop: Any = None) -> SearchResults:
        """Datasets whose id/title/description contain ``text`` and overlap ``[start, stop)``."""
        t0, t1 = parse_range(start, stop)
        return SearchResults(
            d for d in self.datasets.values() if _matches(d, text) and d.overlaps(t0, t1)
        )

    def to_dataframe(self) -> pd.DataFrame:
        """id, title, start, stop of every dataset."""
        return SearchResults(self.datasets.values()).to_dataframe().drop(columns="endpoint")


def open_bucket(
    endpoint: str, storage_options: Mapping[str, Any] | None = None, *, cache: bool | None = None
) -> Bucket:
    """Read ``<endpoint>catalog.json``.

    Parameters
    ----------
    endpoint : str
        Bucket root such as ``"s3://gov-nasa-hdrl-data1/"`` (a trailing ``/`` is added).
        Trusted as given; the URLs the catalog names pass the URL policy.
    storage_options : dict, optional
        fsspec/s3fs options (``anon``, ``endpoint_url``, ``key``/``secret``, ...), flat,
        keyed by protocol or keyed by origin; they are used for the catalog, the index files
        and every data file. Credentials of the ``http``/``https`` entries (headers, auth,
        cookies) reach the host of ``endpoint`` only (see
        :func:`~intake_helio.io.storage.scope_options`).
    cache : bool, optional
        Read ``catalog.json`` and the index files through the on-disk cache
        (:mod:`intake_helio.catalog.cache`; each read is revalidated with the store).
        Default: ``dask.config`` ``intake_helio.cache.enabled`` (on).

    Raises
    ------
    CatalogNotFoundError, StorageAccessError, StorageReadError, CatalogFormatError
        The catalog is missing, refused, unreachable (timeouts), too large or malformed;
        the message names its URL (credentials masked).
    BucketUnavailableError
        The catalog says status 1400.
    """
    return _open_bucket(endpoint, storage_options, cache=cache)


def _open_bucket(
    endpoint: str, storage_options: Mapping[str, Any] | None, warn=True, cache=None
) -> Bucket:
    from .cache import cache_enabled

    root = endpoint_root(endpoint)
    url = root + "catalog.json"
    storage_options = scope_options(storage_options, url)
    obj = read_json(url, storage_options, "bucket catalog", cache=cache_enabled(cache))
    return Bucket(root, obj, storage_options, url=url, warn=warn, cache=cache)


class Registry:
    """The global registry: a list of bucket endpoints.

    Attributes
    ----------
    endpoints : list of Endpoint
        The usable entries.
    invalid : dict
        Entries skipped (missing keys, an endpoint the URL policy refuses): ``registry[i]``
        -> the reason.
    """

    def __init__(
        self, url: str, obj: Mapping[str, Any], storage_options=None, *, cache: bool | None = None
    ):
        self.url = url
        self.storage_options = dict(storage_options or {})
        self.cache = cache
        where = f"registry {shown(url)}"
        self.version = version_of(obj, where, "registry", "a HelioDataRegistry.json")
        modified = obj.get("modificationDate") or obj.get("modification")
        self.modification_date = display_text(modified, 100) if modified else None
        entries = obj["registry"]
        if not isinstance(entries, list):
            raise CatalogFormatError(
                f"{where}: 'registry' must be a list of endpoints, found {type(entries).__name__}"
            )
        policy = UrlPolicy.current()
        self.endpoints: list[Endpoint] = []
        self.invalid: dict[str, str] = {}
        self._invalid_names: dict[str, str] = {}
        for i, e in enumerate(entries):
            try:
                self.endpoints.append(self._entry(e, f"{where} registry[{i}]", policy))
            except CatalogFormatError as exc:
                self.invalid[f"registry[{i}]"] = str(exc)
                if isinstance(e, Mapping) and isinstance(e.get("name"), str):
                    self._invalid_names[e["name"]] = str(exc)
        _warn_skipped("registry entr(ies)", url, self.invalid)

    def _entry(self, e: Any, where: str, policy: UrlPolicy) -> Endpoint:
        if not isinstance(e, Mapping):
            raise CatalogFormatError(f"{where} must be an object, found {type(e).__name__}")
        require(e, ("endpoint", "name"), where)
        for key in ("endpoint", "name"):
            if not isinstance(e[key], str):
                raise CatalogFormatError(
                    f"{where}: {key!r} must be a string, found {type(e[key]).__name__}"
                )
        endpoint = endpoint_root(policy.check(e["endpoint"], self.url, f"{where} endpoint"))
        extra = {k: v for k, v in e.items() if k not in ("name", "endpoint", "region", "provider")}
        region, provider = e.get("region"), e.get("provider")
        return Endpoint(
            e["name"],
            endpoint,
            display_text(region, 100) if isinstance(region, str) else None,
            display_text(provider, 100) if isinstance(provider, str) else None,
            extra,
        )

    def __repr__(self) -> str:
        skipped = f" skipped={len(self.invalid)}" if self.invalid else ""
        names = [shown(e.endpoint) for e in self.endpoints]
        return (
            f"<Registry {shown(self.url)} endpoints={len(self.endpoints)}{skipped}{listing(names)}>"
        )

    def _repr_html_(self) -> str:
        return registry_html(self)

    def endpoint(self, name: str, region: str | None = None) -> str:
        """The endpoint URL of the bucket called ``name`` (and in ``region``, if given)."""
        hits = [
            e for e in self.endpoints if e.name == name and (region is None or e.region == region)
        ]
        if len(hits) == 1:
            return hits[0].endpoint
        if not hits:
            if name in self._invalid_names:
                raise CatalogFormatError(
                    f"the bucket named {display_text(name, 200)!r} in registry {shown(self.url)} "
                    f"was skipped: {self._invalid_names[name]}"
                )
            names = sorted({e.name for e in self.endpoints})
            hint = did_you_mean(name, names)
            where = f" in region {region!r}" if region else ""
            listed = ", ".join(repr(display_text(n, 80)) for n in names[:50])
            raise DatasetNotFoundError(
                f"no bucket named {display_text(name, 200)!r}{where} in registry "
                f"{shown(self.url)}{hint} (names: {listed})"
            )
        regions = ", ".join(repr(e.region) for e in hits)
        raise ArgumentError(
            f"{len(hits)} buckets are named {display_text(name, 200)!r} in registry "
            f"{shown(self.url)} (regions {regions}); pass region=... to choose one"
        )

    def open_bucket(self, name: str, region: str | None = None) -> Bucket:
        """Open the catalog of a bucket by registry name or endpoint URL."""
        url = name if "://" in name else self.endpoint(name, region)
        return open_bucket(url, self.storage_options, cache=self.cache)

    def search(self, text: str | None = None, start: Any = None, stop: Any = None) -> SearchResults:
        """Search every bucket; unreachable buckets are reported in ``.unreachable``.

        Bucket catalogs are read concurrently. A bucket that cannot be read (missing,
        denied, unavailable, timed out, too large, malformed, nested too deeply) does not
        stop the search; a :class:`~intake_helio.HelioWarning` names it and the reason.
        Registry entries that were skipped (:attr:`invalid`) are reported there too.
        """
        parse_range(start, stop)
        found: list[Dataset] = []
        unreachable: dict[str, str] = dict(self.invalid)

        def one(ep: Endpoint):
            try:
                bucket = _open_bucket(ep.endpoint, self.storage_options, False, self.cache)
                return ep, bucket, None
            except (Exception, RecursionError) as exc:
                return ep, None, f"{type(exc).__name__}: {shown(exc, 2000)}"

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(self.endpoints)))) as pool:
            for ep, bucket, err in pool.map(one, self.endpoints):
                if bucket is None:
                    unreachable[shown(ep.endpoint)] = err
                    continue
                found.extend(bucket.search(text, start, stop))
                _warn_skipped("dataset(s)", bucket.url, bucket.invalid)
        if unreachable:
            warnings.warn(
                "skipped unreachable bucket(s): "
                + "; ".join(f"{k} ({v})" for k, v in unreachable.items()),
                HelioWarning,
                stacklevel=2,
            )
        return SearchResults(found, unreachable)


def open_registry(
    url: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    *,
    cache: bool | None = None,
) -> Registry:
    """Read the global registry.

    Parameters
    ----------
    url : str, optional
        Defaults to the ``ROOT_CATALOG_REGISTRY_URL`` environment variable, else
        HelioCloud's public registry. Trusted as given; the endpoints it lists pass the
        URL policy.
    storage_options : dict, optional
        fsspec options, flat (object stores), keyed by protocol or by origin; also used for
        every bucket opened from this registry. Credentials of the ``http``/``https``
        entries reach the registry's host only.
    cache : bool, optional
        Whether buckets opened from this registry read through the on-disk cache
        (default: ``intake_helio.cache.enabled``). The registry itself is always read fresh.

    Raises
    ------
    CatalogNotFoundError, StorageAccessError, StorageReadError, CatalogFormatError
        The registry is missing, refused, unreachable (also an unresolvable host or no
        network), too large or malformed; the message names its URL (credentials masked).
    """
    url = url or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY_URL
    storage_options = scope_options(storage_options, url)
    obj = read_json(url, storage_options, "registry")
    return Registry(url, obj, storage_options, cache=cache)

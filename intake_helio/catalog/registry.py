"""CloudCatalog JSON -> typed records: the global registry, bucket catalogs and datasets.

External JSON is parsed into frozen dataclasses at the boundary; required keys are
checked once, here, with errors that say which file and which key. Malformed
optional fields are kept as raw values and never break a listing.
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..base.errors import (
    ArgumentError,
    BucketUnavailableError,
    CatalogFormatError,
    CatalogNotFoundError,
    DatasetNotFoundError,
    HelioWarning,
    StorageAccessError,
    StorageReadError,
    TimeRangeError,
)
from ..base.times import parse_range, parse_time
from ..catalog import index as file_index
from ..io.storage import filesystem, options_for

__all__ = [
    "DEFAULT_REGISTRY_URL",
    "Bucket",
    "Dataset",
    "Endpoint",
    "Registry",
    "SearchResults",
    "open_bucket",
    "open_registry",
]

DEFAULT_REGISTRY_URL = "http://heliocloud.org/catalog/HelioDataRegistry.json"
REGISTRY_ENV = "ROOT_CATALOG_REGISTRY_URL"


def read_json(url: str, storage_options: Mapping[str, Any] | None, what: str) -> dict:
    """Read a JSON object from any fsspec URL with clear errors."""
    fs, path = filesystem(url, storage_options)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError as exc:
        raise CatalogNotFoundError(
            f"{what} {url} does not exist; check the URL and the storage options "
            f"(given: {sorted(options_for(url, storage_options)) or 'none'})"
        ) from exc
    except PermissionError as exc:
        raise StorageAccessError(
            f"access denied to {what} {url}; pass credentials in storage_options, or "
            "anon=True if the bucket is public"
        ) from exc
    except OSError:
        raise
    except Exception as exc:  # botocore/aiohttp errors are not OSErrors
        raise StorageReadError(
            f"cannot read {what} {url}: {type(exc).__name__}: {exc}; check the network, the "
            "endpoint_url and the credentials in storage_options"
        ) from exc
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogFormatError(f"{what} {url} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise CatalogFormatError(
            f"{what} {url} must hold a JSON object, found {type(obj).__name__}"
        )
    return obj


def _require(obj: Mapping, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in obj or obj[k] in (None, "")]
    if missing:
        raise CatalogFormatError(
            f"{where} lacks required key(s) {', '.join(map(repr, missing))}; found {sorted(obj)}"
        )


def _version(obj: Mapping, where: str, list_key: str, kind: str) -> str:
    """The format version (``version``, or older ``Cloudy``/``CloudMe``); checks ``list_key``."""
    if not any(k in obj for k in ("version", "Cloudy", "CloudMe")):
        raise CatalogFormatError(
            f"{where} has no 'version' (or older 'Cloudy'/'CloudMe') key; is it {kind}?"
        )
    _require(obj, (list_key,), where)
    return str(obj.get("version") or obj.get("Cloudy") or obj.get("CloudMe"))


def did_you_mean(name: str, candidates: list[str]) -> str:
    """A "did you mean" hint: names containing ``name``, then spelling neighbours."""
    low = str(name).lower()
    close = [c for c in candidates if low and low in c.lower()]
    close += [
        c
        for c in difflib.get_close_matches(str(name), candidates, n=5, cutoff=0.5)
        if c not in close
    ]
    return f"; did you mean {', '.join(map(repr, close[:5]))}?" if close else ""


def endpoint_root(endpoint: str, what: str = "endpoint") -> str:
    """``s3://bucket``, ``s3://bucket/`` or ``s3://bucket/catalog.json`` -> ``s3://bucket/``."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ArgumentError(
            f"{what}={endpoint!r}; expected a bucket root URL such as 's3://gov-nasa-hdrl-data1/'"
        )
    endpoint = endpoint.strip()
    if endpoint.endswith("catalog.json"):
        endpoint = endpoint[: -len("catalog.json")]
    return endpoint if endpoint.endswith("/") else endpoint + "/"


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Endpoint:
    """One bucket listed in the global registry."""

    name: str
    endpoint: str
    region: str | None = None
    provider: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Dataset:
    """One dataset of a bucket catalog.

    Attributes
    ----------
    id, title, index : str
        Required catalog keys; ``index`` is the prefix of the yearly index files.
    start, stop : pandas.Timestamp
        The dataset's time range (naive UTC).
    filetype, indextype : str
    multiyear : bool
    metadata : Mapping
        Every other key of the catalog entry, as found (malformed values kept raw).
    endpoint : str
        The bucket root the dataset was listed in.
    """

    id: str
    title: str
    index: str
    start: pd.Timestamp
    stop: pd.Timestamp
    filetype: str = "fits"
    indextype: str = "csv"
    multiyear: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False)
    endpoint: str = ""
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_entry(
        cls, entry: Mapping[str, Any], endpoint: str, storage_options=None, where: str = ""
    ) -> Dataset:
        """Build a Dataset from one ``catalog`` entry of ``catalog.json``."""
        where = where or f"dataset entry in {endpoint}catalog.json"
        if not isinstance(entry, Mapping):
            raise CatalogFormatError(f"{where} must be a JSON object, found {entry!r}")
        _require(
            entry, ("id", "index", "title", "start", "stop"), f"{where} (id={entry.get('id')!r})"
        )
        try:
            start = parse_time(entry["start"], "start")
            stop = parse_time(entry["stop"], "stop")
        except TimeRangeError as exc:
            raise CatalogFormatError(f"dataset {entry['id']!r} in {where}: {exc}") from exc
        index = str(entry["index"])
        if not index.endswith("/"):
            index += "/"
        multiyear = entry.get("multiyear", False)
        if isinstance(multiyear, str):
            multiyear = multiyear.strip().lower() in ("true", "1", "yes")
        known = {"id", "index", "title", "start", "stop", "filetype", "indextype", "multiyear"}
        return cls(
            id=str(entry["id"]),
            title=str(entry["title"]),
            index=index,
            start=start,
            stop=stop,
            filetype=str(entry.get("filetype") or "fits"),
            indextype=str(entry.get("indextype") or "csv").lower(),
            multiyear=bool(multiyear),
            metadata={k: v for k, v in entry.items() if k not in known},
            endpoint=endpoint,
            storage_options=dict(storage_options or {}),
        )

    @property
    def description(self) -> str:
        return str(self.metadata.get("description") or "")

    def overlaps(self, start: pd.Timestamp | None, stop: pd.Timestamp | None) -> bool:
        """Whether the dataset's range overlaps ``[start, stop)``."""
        return (start is None or self.stop >= start) and (stop is None or self.start < stop)

    def files(self, start: Any = None, stop: Any = None, errors: str = "raise") -> pd.DataFrame:
        """The dataset's files that overlap ``[start, stop)``.

        Parameters
        ----------
        start, stop : str, datetime, numpy.datetime64 or pandas.Timestamp, optional
            Half-open time range; defaults to the dataset's own range.
        errors : {"raise", "report"}
            Bad index rows raise :class:`~intake_helio.IndexParseError` (default) or are
            skipped and listed in ``df.attrs["bad_rows"]``.

        Returns
        -------
        pandas.DataFrame
            ``start``, ``stop`` (datetime64, naive UTC), ``datakey``, ``filesize``
            (int64) and any extra columns, sorted by start.
        """
        t0, t1 = parse_range(start, stop)
        t0 = self.start if t0 is None else t0
        t1 = self.stop + pd.Timedelta(1, "ns") if t1 is None else t1
        if t0 >= t1:
            raise TimeRangeError(
                f"start={t0.isoformat()} is not before stop={t1.isoformat()}; the dataset "
                f"{self.id!r} covers {self.start.isoformat()} to {self.stop.isoformat()}"
            )
        years = file_index.index_years(self.start, self.stop, t0, t1, self.multiyear)
        return file_index.read_index(
            self.index,
            self.id,
            years,
            indextype=self.indextype,
            start=t0,
            stop=t1,
            storage_options=self.storage_options,
            errors=errors,
        )

    def to_dataarray(self, start: Any = None, stop: Any = None, **kwargs):
        """Lazy ``(time, y, x)`` frames of ``[start, stop)``; see :func:`~intake_helio.open_frames`.

        Keyword arguments go to :func:`~intake_helio.open_frames`.
        """
        from ..frames.build import open_frames

        errors = kwargs.pop("index_errors", "raise")
        kwargs.setdefault("storage_options", self.storage_options)
        df = self.files(start, stop, errors=errors)
        attrs = {"dataset": self.id, "title": self.title, "endpoint": self.endpoint}
        return open_frames(df, attrs=attrs, **kwargs)

    def headers(self, start: Any = None, stop: Any = None, keys=(), **kwargs) -> pd.DataFrame:
        """Header values of every file in range, read in parallel (no pixel data)."""
        from ..frames.build import read_headers

        kwargs.setdefault("storage_options", self.storage_options)
        return read_headers(self.files(start, stop), keys, **kwargs)


class SearchResults(list):
    """A list of :class:`Dataset`; ``unreachable`` maps bucket endpoints to the reason."""

    def __init__(self, items=(), unreachable: Mapping[str, str] | None = None):
        super().__init__(items)
        self.unreachable = dict(unreachable or {})

    def to_dataframe(self) -> pd.DataFrame:
        """One row per dataset: endpoint, id, title, start, stop."""
        return pd.DataFrame(
            [(d.endpoint, d.id, d.title, d.start, d.stop) for d in self],
            columns=["endpoint", "id", "title", "start", "stop"],
        )


def _matches(ds: Dataset, text: str | None) -> bool:
    if not text:
        return True
    t = text.lower()
    return t in ds.id.lower() or t in ds.title.lower() or t in ds.description.lower()


class Bucket(Mapping[str, Dataset]):
    """A bucket catalog (``<endpoint>catalog.json``): a mapping of dataset id -> Dataset."""

    def __init__(self, endpoint: str, obj: Mapping[str, Any], storage_options=None, url=""):
        self.endpoint = endpoint_root(endpoint)
        self.url = url or self.endpoint + "catalog.json"
        self.storage_options = dict(storage_options or {})
        where = f"bucket catalog {self.url}"
        self.version = _version(obj, where, "catalog", "a CloudCatalog catalog.json")
        self.name = str(obj.get("name") or self.endpoint)
        status = obj.get("status") or {"code": 1200, "message": "OK"}
        if not isinstance(status, Mapping):
            status = {"code": 1200, "message": str(status)}
        self.status = dict(status)
        if int(self.status.get("code", 1200) or 1200) == 1400:
            raise BucketUnavailableError(
                f"bucket {self.endpoint} is temporarily unavailable (status 1400: "
                f"{self.status.get('message', '')!s}); try again later"
            )
        self.metadata = {k: v for k, v in obj.items() if k != "catalog"}
        entries = obj["catalog"]
        if not isinstance(entries, list):
            raise CatalogFormatError(f"{where}: 'catalog' must be a list of datasets")
        self.datasets: dict[str, Dataset] = {}
        for i, entry in enumerate(entries):
            ds = Dataset.from_entry(
                entry, self.endpoint, self.storage_options, where=f"{where} catalog[{i}]"
            )
            self.datasets[ds.id] = ds

    def __getitem__(self, key: str) -> Dataset:
        try:
            return self.datasets[key]
        except KeyError:
            hint = did_you_mean(key, list(self.datasets))
            raise DatasetNotFoundError(
                f"no dataset {key!r} in {self.url}{hint} ({len(self.datasets)} datasets; "
                "list them with intake-helio ls or bucket.datasets)"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.datasets)

    def __len__(self) -> int:
        return len(self.datasets)

    def __repr__(self) -> str:
        return f"<Bucket {self.name!r} {self.endpoint} datasets={len(self)}>"

    def search(self, text: str | None = None, start: Any = None, stop: Any = None) -> SearchResults:
        """Datasets whose id/title/description contain ``text`` and overlap ``[start, stop)``."""
        t0, t1 = parse_range(start, stop)
        return SearchResults(
            d for d in self.datasets.values() if _matches(d, text) and d.overlaps(t0, t1)
        )

    def to_dataframe(self) -> pd.DataFrame:
        """id, title, start, stop of every dataset."""
        return SearchResults(self.datasets.values()).to_dataframe().drop(columns="endpoint")


def open_bucket(endpoint: str, storage_options: Mapping[str, Any] | None = None) -> Bucket:
    """Read ``<endpoint>catalog.json``.

    Parameters
    ----------
    endpoint : str
        Bucket root such as ``"s3://gov-nasa-hdrl-data1/"`` (a trailing ``/`` is added).
    storage_options : dict, optional
        fsspec/s3fs options (``anon``, ``endpoint_url``, ``key``/``secret``, ...), flat
        or keyed by protocol; they are used for the catalog, the index files and
        every data file.
    """
    root = endpoint_root(endpoint)
    url = root + "catalog.json"
    obj = read_json(url, storage_options, "bucket catalog")
    return Bucket(root, obj, storage_options, url=url)


class Registry:
    """The global registry: a list of bucket endpoints."""

    def __init__(self, url: str, obj: Mapping[str, Any], storage_options=None):
        self.url = url
        self.storage_options = dict(storage_options or {})
        where = f"registry {url}"
        self.version = _version(obj, where, "registry", "a HelioDataRegistry.json")
        self.modification_date = obj.get("modificationDate")
        entries = obj["registry"]
        if not isinstance(entries, list):
            raise CatalogFormatError(f"{where}: 'registry' must be a list of endpoints")
        self.endpoints: list[Endpoint] = []
        for i, e in enumerate(entries):
            if not isinstance(e, Mapping):
                raise CatalogFormatError(f"{where} registry[{i}] must be an object, found {e!r}")
            _require(e, ("endpoint", "name"), f"{where} registry[{i}]")
            extra = {
                k: v for k, v in e.items() if k not in ("name", "endpoint", "region", "provider")
            }
            self.endpoints.append(
                Endpoint(
                    str(e["name"]),
                    endpoint_root(str(e["endpoint"])),
                    e.get("region"),
                    e.get("provider"),
                    extra,
                )
            )

    def __repr__(self) -> str:
        return f"<Registry {self.url} endpoints={len(self.endpoints)}>"

    def endpoint(self, name: str, region: str | None = None) -> str:
        """The endpoint URL of the bucket called ``name`` (and in ``region``, if given)."""
        hits = [
            e for e in self.endpoints if e.name == name and (region is None or e.region == region)
        ]
        if len(hits) == 1:
            return hits[0].endpoint
        if not hits:
            names = sorted({e.name for e in self.endpoints})
            hint = did_you_mean(name, names)
            where = f" in region {region!r}" if region else ""
            raise DatasetNotFoundError(
                f"no bucket named {name!r}{where} in registry {self.url}{hint} "
                f"(names: {', '.join(map(repr, names))})"
            )
        regions = ", ".join(repr(e.region) for e in hits)
        raise ArgumentError(
            f"{len(hits)} buckets are named {name!r} in registry {self.url} (regions {regions}); "
            "pass region=... to choose one"
        )

    def open_bucket(self, name: str, region: str | None = None) -> Bucket:
        """Open the catalog of a bucket by registry name or endpoint URL."""
        url = name if "://" in name else self.endpoint(name, region)
        return open_bucket(url, self.storage_options)

    def search(self, text: str | None = None, start: Any = None, stop: Any = None) -> SearchResults:
        """Search every bucket; unreachable buckets are reported in ``.unreachable``.

        Bucket catalogs are read concurrently. A bucket that cannot be read (missing,
        denied, unavailable, malformed) does not stop the search; a
        :class:`~intake_helio.HelioWarning` names it and the reason.
        """
        parse_range(start, stop)
        found: list[Dataset] = []
        unreachable: dict[str, str] = {}

        def one(ep: Endpoint):
            try:
                return ep, open_bucket(ep.endpoint, self.storage_options), None
            except (OSError, ValueError) as exc:
                return ep, None, f"{type(exc).__name__}: {exc}"

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(self.endpoints)))) as pool:
            for ep, bucket, err in pool.map(one, self.endpoints):
                if bucket is None:
                    unreachable[ep.endpoint] = err
                else:
                    found.extend(bucket.search(text, start, stop))
        if unreachable:
            warnings.warn(
                "skipped unreachable bucket(s): "
                + "; ".join(f"{k} ({v})" for k, v in unreachable.items()),
                HelioWarning,
                stacklevel=2,
            )
        return SearchResults(found, unreachable)


def open_registry(
    url: str | None = None, storage_options: Mapping[str, Any] | None = None
) -> Registry:
    """Read the global registry.

    Parameters
    ----------
    url : str, optional
        Defaults to the ``ROOT_CATALOG_REGISTRY_URL`` environment variable, else
        HelioCloud's public registry.
    storage_options : dict, optional
        fsspec options, flat (object stores) or keyed by protocol; also used for
        every bucket opened from this registry.
    """
    url = url or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY_URL
    return Registry(url, read_json(url, storage_options, "registry"), storage_options)

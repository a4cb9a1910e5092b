"""Typed records parsed at the boundary: registry endpoints and bucket datasets.

Catalog JSON is third-party content. Each entry is checked once, here: required keys,
the dataset id (letters, digits, ``-``, ``_``; it goes into index URLs), the times (inside
pandas' nanosecond range) and the URLs it names (the URL policy of
:mod:`intake_helio.io.urlpolicy`; a relative ``index`` resolves against the catalog's own
URL). Malformed optional fields are kept raw and never break a listing. Errors say which
file and entry, what was expected and the size of the bad value, never the value itself.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..base.errors import ArgumentError, CatalogFormatError, HelioWarning, TimeRangeError
from ..base.text import safe_text
from ..base.times import parse_range, parse_time
from ..io.options import check_option_names
from ..io.storage import mask_url, shown
from ..io.urlpolicy import UrlPolicy, check_dataset_id, resolve_prefix
from . import index as file_index
from .formats import OPENS_AS, check_openable, format_of

__all__ = [
    "Dataset",
    "Endpoint",
    "did_you_mean",
    "display_text",
    "endpoint_root",
    "require",
    "version_of",
]


def display_text(value: Any, limit: int = 2000) -> str:
    """A catalog text field made safe to print (:func:`~intake_helio.base.text.safe_text`,
    unprintable characters as spaces), cut to ``limit`` characters."""
    return safe_text(value, limit, replacement=" ")


def require(obj: Mapping, keys: tuple[str, ...], where: str) -> None:
    """Raise :class:`~intake_helio.CatalogFormatError` when required ``keys`` are missing."""
    missing = [k for k in keys if k not in obj or obj[k] in (None, "")]
    if missing:
        raise CatalogFormatError(
            f"{where} lacks required key(s) {', '.join(map(repr, missing))} "
            f"(it has {len(obj)} keys); expected {', '.join(map(repr, keys))}"
        )


def version_of(obj: Mapping, where: str, list_key: str, kind: str) -> str:
    """The format version (``version``, or older ``Cloudy``/``CloudMe``/``CloudCatalog``);
    checks ``list_key``."""
    keys = ("version", "Cloudy", "CloudMe", "CloudCatalog")
    if not any(k in obj for k in keys):
        raise CatalogFormatError(
            f"{where} has no 'version' (or older 'Cloudy'/'CloudMe'/'CloudCatalog') key; "
            f"is it {kind}?"
        )
    require(obj, (list_key,), where)
    return display_text(next((obj[k] for k in keys if obj.get(k)), ""), 40)


def did_you_mean(name: str, candidates: list[str]) -> str:
    """A "did you mean" hint: names containing ``name``, then spelling neighbours."""
    low = str(name).lower()
    close = [c for c in candidates if low and low in c.lower()]
    close += [
        c
        for c in difflib.get_close_matches(str(name), candidates, n=5, cutoff=0.5)
        if c not in close
    ]
    shown_close = [display_text(c, 80) for c in close[:5]]
    return f"; did you mean {', '.join(map(repr, shown_close))}?" if close else ""


def endpoint_root(endpoint: str, what: str = "endpoint") -> str:
    """``s3://bucket``, ``s3://bucket/`` or ``s3://bucket/catalog.json`` -> ``s3://bucket/``."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ArgumentError(
            f"{what}={mask_url(endpoint)!r}; expected a bucket root URL such as "
            "'s3://gov-nasa-hdrl-data1/'"
        )
    endpoint = endpoint.strip()
    if endpoint.endswith("catalog.json"):
        endpoint = endpoint[: -len("catalog.json")]
    return endpoint if endpoint.endswith("/") else endpoint + "/"


def _time(entry: Mapping, key: str, ds_id: str, where: str) -> pd.Timestamp:
    value = entry[key]
    try:
        return parse_time(value, key)
    except (TimeRangeError, ValueError, OverflowError) as exc:
        size = len(str(value).encode("utf-8", "replace"))
        raise CatalogFormatError(
            f"dataset {ds_id!r} in {where}: {key} is not a usable time (a {size}-byte "
            f"{type(value).__name__}); expected ISO 8601 UTC between 1677-09-22 and "
            "2262-04-11 such as '2010-05-13T00:00:00Z'"
        ) from exc


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Endpoint:
    """One bucket listed in the global registry."""

    name: str
    endpoint: str
    region: str | None = None
    provider: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return (
            f"Endpoint(name={display_text(self.name, 200)!r}, endpoint={shown(self.endpoint)!r}"
            f", region={self.region!r}, provider={self.provider!r})"
        )


@dataclass(frozen=True)
class Dataset:
    """One dataset of a bucket catalog.

    Attributes
    ----------
    id, title, index : str
        Required catalog keys; ``index`` is the prefix of the yearly index files (absolute,
        checked by the URL policy; a relative one resolved against the catalog's URL).
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
    cache: bool | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        return (
            f"Dataset(id={self.id!r}, title={display_text(self.title, 200)!r}, "
            f"index={shown(self.index)!r}, start={self.start!r}, stop={self.stop!r}, "
            f"filetype={display_text(self.filetype, 80)!r}, indextype={self.indextype!r}, "
            f"multiyear={self.multiyear!r}, endpoint={shown(self.endpoint)!r})"
        )

    def _repr_html_(self) -> str:
        from .reprs import dataset_html

        return dataset_html(self)

    @property
    def format(self) -> str | None:
        """The format of the files (:func:`~intake_helio.catalog.formats.format_of` of
        ``filetype``: its first known entry, lower case), or None."""
        return format_of(self.filetype)

    @property
    def opens_as(self) -> str:
        """What intake-helio opens the dataset as (``"frames"``), or ``""`` when it does not
        open its format."""
        return OPENS_AS.get(self.format or "", "")

    @property
    def index_years(self) -> list[int]:
        """The years whose index files the dataset's own range covers."""
        return file_index.index_years(
            self.start, self.stop, self.start, self.stop + pd.Timedelta(1, "ns")
        )

    @classmethod
    def from_entry(
        cls,
        entry: Mapping[str, Any],
        endpoint: str,
        storage_options=None,
        where: str = "",
        catalog_url: str = "",
        policy: UrlPolicy | None = None,
        cache: bool | None = None,
    ) -> Dataset:
        """Build a Dataset from one ``catalog`` entry of ``catalog.json``.

        Parameters
        ----------
        entry : Mapping
            The entry.
        endpoint : str
            The bucket root (``s3://bucket/``).
        storage_options : dict, optional
        where : str
            Where the entry is, for messages.
        catalog_url : str
            The URL of the catalog naming it (defaults to ``<endpoint>catalog.json``):
            relative index prefixes resolve against it, and it is the "same host" of the
            URL policy.
        policy : UrlPolicy, optional
            Defaults to :meth:`UrlPolicy.current`.
        cache : bool, optional
            Read the index files through the on-disk cache (default:
            ``intake_helio.cache.enabled``).

        Raises
        ------
        CatalogFormatError
            A required key is missing, a time is unusable, or (as
            :class:`~intake_helio.io.urlpolicy.UrlNotAllowedError`) the id or the index
            is refused.
        """
        catalog_url = catalog_url or endpoint + "catalog.json"
        where = where or f"dataset entry in {shown(catalog_url)}"
        if not isinstance(entry, Mapping):
            raise CatalogFormatError(f"{where} must be a JSON object, found {type(entry).__name__}")
        require(entry, ("id", "index", "title", "start", "stop"), where)
        ds_id = check_dataset_id(entry["id"], where)
        start = _time(entry, "start", ds_id, where)
        stop = _time(entry, "stop", ds_id, where)
        index = resolve_prefix(entry["index"], catalog_url, endpoint, policy)
        multiyear = entry.get("multiyear", False)
        if isinstance(multiyear, str):
            multiyear = multiyear.strip().lower() in ("true", "1", "yes")
        indextype = entry.get("indextype") or "csv"
        indextype = indextype.lower() if isinstance(indextype, str) else "csv"
        known = {"id", "index", "title", "start", "stop", "filetype", "indextype", "multiyear"}
        return cls(
            id=ds_id,
            title=display_text(entry["title"]),
            index=index,
            start=start,
            stop=stop,
            filetype=display_text(entry.get("filetype") or "fits", 200),
            indextype=display_text(indextype, 40),
            multiyear=bool(multiyear),
            metadata={k: v for k, v in entry.items() if k not in known},
            endpoint=endpoint,
            storage_options=dict(storage_options or {}),
            cache=cache,
        )

    @property
    def description(self) -> str:
        return display_text(self.metadata.get("description") or "")

    def overlaps(self, start: pd.Timestamp | None, stop: pd.Timestamp | None) -> bool:
        """Whether the dataset's range overlaps ``[start, stop)``."""
        return (start is None or self.stop >= start) and (stop is None or self.start < stop)

    def files(
        self,
        start: Any = None,
        stop: Any = None,
        errors: str = "raise",
        *,
        keep_refused: bool = False,
    ) -> pd.DataFrame:
        """The dataset's files that overlap ``[start, stop)``.

        Parameters
        ----------
        start, stop : str, datetime, numpy.datetime64 or pandas.Timestamp, optional
            Half-open time range; defaults to the dataset's own range.
        errors : {"raise", "report"}
            Bad index rows (unparseable, out-of-range times or sizes, datakeys refused by
            the URL policy) raise :class:`~intake_helio.IndexParseError` (default) or are
            skipped and listed in ``df.attrs["bad_rows"]``.
        keep_refused : bool
            Keep rows whose only fault is a datakey the URL policy refuses, as frames that
            cannot be read: their reason is in a ``refused`` column and their datakey is
            masked (``to_dataarray(on_error="nan")`` does this, so that each such frame
            ends with the status ``"URL not allowed: ..."``, never requested).

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
            cache=self.cache,
            keep_refused=keep_refused,
        )

    def to_dataarray(
        self,
        start: Any = None,
        stop: Any = None,
        *,
        hdu: int | str = "auto",
        cutout: Mapping[str, Any] | Sequence[Any] | None = None,
        header_keys: Sequence[str] = (),
        units: str = "DN",
        on_error: str = "raise",
        chunks: Mapping[str, int] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        index_errors: str = "raise",
        quality: str | None = None,
        filetype: str | None = None,
    ):
        """Lazy ``(time, y, x)`` frames of ``[start, stop)`` (nothing is read but the index).

        Parameters
        ----------
        start, stop : str, datetime, numpy.datetime64 or pandas.Timestamp, optional
            Half-open time range; defaults to the dataset's own range.
        hdu : int or "auto"
            The image HDU; ``"auto"`` finds the first one with image data.
        cutout : dict or (SkyCoord, SkyCoord), optional
            ``{"y": slice, "x": slice}``: read only that window (only its tiles); or in
            solar coordinates, ``{"Tx": slice, "Ty": slice}`` (arcsec) or two ``SkyCoord``
            corners (see :func:`~intake_helio.open_frames`).
        header_keys : sequence of str
            Header keys kept as ``time`` coordinates.
        units : str
            The ``units`` attribute of the array.
        on_error : {"raise", "nan"}
            A frame that cannot be read raises, or becomes NaN with its reason. With
            ``"nan"`` an index row whose datakey the URL policy refuses is such a frame
            (status ``"URL not allowed: ..."``, never requested); with ``"raise"`` it
            raises :class:`~intake_helio.IndexParseError` here, as ``index_errors`` says.
        chunks : dict, optional
            Dask chunks along ``time``/``y``/``x``.
        storage_options : dict, optional
            Options for the data files; default: the bucket's.
        index_errors : {"raise", "report"}
            Bad index rows raise, or are skipped (see :meth:`files`) and listed in a
            :class:`~intake_helio.HelioWarning` (file, line and reason; the first 20).
        quality : {None, "good"}
            ``"good"``: frames whose header ``QUALITY`` is not 0 get the reason
            ``"quality flag 0x%08x"`` without their pixels being decoded (a frame with no
            ``QUALITY`` is good); None (default) keeps every frame.
        filetype : str, optional
            Read the files as this format, whatever the catalog's ``filetype`` says (for a
            catalog that names it wrongly). Default: the catalog's.

        Returns
        -------
        xarray.DataArray
            See :func:`~intake_helio.open_frames`.

        Raises
        ------
        UnsupportedFormatError
            The dataset's ``filetype`` (or ``filetype=``) is not a format intake-helio
            opens as frames; raised before the index or any file is read.
        """
        from ..frames.build import open_frames
        from ..frames.options import frame_options

        check_openable(self.id, self.filetype, filetype, want="frames")
        # every option checked once, before the index is read
        options = frame_options(hdu, cutout, header_keys, units, on_error, chunks, quality)
        if storage_options is None:
            storage_options = self.storage_options
        else:  # a misspelt option is named before the index is read, not per frame
            check_option_names(storage_options, self.endpoint)
        df = self.files(start, stop, errors=index_errors, keep_refused=on_error == "nan")
        _warn_bad_rows(self.id, df.attrs.get("bad_rows") or [])
        attrs = {"dataset": self.id, "title": self.title, "endpoint": mask_url(self.endpoint)}
        return open_frames(df, storage_options=storage_options, attrs=attrs, options=options)

    def to_dataset(
        self,
        start: Any = None,
        stop: Any = None,
        *,
        variables: Sequence[str] | str | None = None,
        time: str | None = None,
        on_error: str = "raise",
        storage_options: Mapping[str, Any] | None = None,
        index_errors: str = "raise",
        filetype: str | None = None,
    ):
        """A lazy Dataset along ``time`` of a time-series dataset (CDF, netCDF, HDF5).

        Opening reads the index, the first file whole and every other file's time
        variable (concurrently); the data variables are read at compute, one task per
        file, records outside ``[start, stop)`` dropped in the task.

        Parameters
        ----------
        start, stop : str, datetime, numpy.datetime64 or pandas.Timestamp, optional
            Half-open time range; defaults to the dataset's own range.
        variables : list of str, optional
            The variables to read (default: every variable on the chosen time).
        time : str, optional
            The time variable (a CDF ``DEPEND_0`` epoch such as ``"Epoch_state"``, a
            netCDF time coordinate); default: the one most variables use (the result's
            ``intake_helio_time`` and ``intake_helio_other_times`` attributes say which).
        on_error : {"raise", "nan"}
            A file that cannot be read raises, or keeps its reason in ``file_status``
            (its datakey along ``file``) and the good files' records are kept.
        storage_options : dict, optional
            Options for the data files; default: the bucket's.
        index_errors : {"raise", "report"}
            As for :meth:`to_dataarray`.
        filetype : str, optional
            Read the files as this format (``"cdf"``, ``"netcdf4"``, ...), whatever the
            catalog's ``filetype`` says.

        Returns
        -------
        xarray.Dataset
            See :func:`~intake_helio.open_series`.

        Raises
        ------
        UnsupportedFormatError
            The dataset's files are not a time-series format intake-helio opens; raised
            before the index or any file is read.
        """
        from ..series import open_series

        fmt = check_openable(self.id, self.filetype, filetype, want="series")
        if storage_options is None:
            storage_options = self.storage_options
        else:
            check_option_names(storage_options, self.endpoint)
        t0, t1 = parse_range(start, stop)
        t0 = self.start if t0 is None else t0
        t1 = self.stop + pd.Timedelta(1, "ns") if t1 is None else t1
        df = self.files(t0, t1, errors=index_errors, keep_refused=on_error == "nan")
        _warn_bad_rows(self.id, df.attrs.get("bad_rows") or [])
        attrs = {"dataset": self.id, "title": self.title, "endpoint": mask_url(self.endpoint)}
        return open_series(
            df,
            format=fmt,
            start=t0,
            stop=t1,
            variables=variables,
            time=time,
            on_error=on_error,
            storage_options=storage_options,
            attrs=attrs,
        )

    def headers(self, start: Any = None, stop: Any = None, keys=(), **kwargs) -> pd.DataFrame:
        """Header values of every file in range, read in parallel (no pixel data)."""
        from ..frames.build import read_headers

        kwargs.setdefault("storage_options", self.storage_options)
        return read_headers(self.files(start, stop), keys, **kwargs)


#: The bad index rows a warning of :meth:`Dataset.to_dataarray` names (the rest are counted).
_SHOWN_BAD_ROWS = 20


def _warn_bad_rows(dataset_id: str, bad: Sequence[Any]) -> None:
    if not bad:
        return
    listed = "; ".join(f"{shown(b.file)} line {b.line}: {b.reason}" for b in bad[:_SHOWN_BAD_ROWS])
    more = len(bad) - _SHOWN_BAD_ROWS
    rest = (
        f"; and {more} more (Dataset.files(..., errors='report').attrs['bad_rows'] lists all)"
        if more > 0
        else ""
    )
    warnings.warn(
        f"skipped {len(bad)} bad index row(s) of {dataset_id!r}: {listed}{rest}",
        HelioWarning,
        stacklevel=3,
    )

"""Write the three CloudCatalog levels: yearly file indexes, a bucket catalog, a registry.

The functions here only build content (text and JSON-ready dicts) and names; the caller
writes them wherever it likes (fsspec, a local folder, a test's ``memory://`` store).
They are the mirror image of :mod:`intake_helio.catalog.index` and
:mod:`intake_helio.catalog.registry`, and use the same naming: the yearly index files
are named by :func:`intake_helio.catalog.index.index_url`.

- :func:`index_csv` -> the text of one index file (``# start, stop, datakey, filesize``);
- :func:`yearly_index_files` -> ``{index file URL: text}``, one file per year of ``start``;
- :func:`dataset_entry` -> one dataset of a bucket's ``catalog.json``;
- :func:`bucket_catalog` -> a whole ``catalog.json``, optionally merged into an existing one;
- :func:`registry_json` -> a ``HelioDataRegistry.json``.

Times are written as ISO 8601 UTC with a ``Z`` (:func:`iso_time`).

Examples
--------
>>> rows = [("2021-01-01T00:00", "2021-01-01T00:04", "s3://b/a.fits", 2880)]
>>> list(yearly_index_files("s3://b/index/", "aia", rows))
['s3://b/index/aia_2021.csv']
>>> print(index_csv(rows), end="")
# start, stop, datakey, filesize
2021-01-01T00:00:00.000Z,2021-01-01T00:04:00.000Z,s3://b/a.fits,2880
"""

from __future__ import annotations

import datetime as _dt
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..base.errors import CatalogFormatError
from ..base.times import parse_time
from .index import index_url

__all__ = [
    "INDEX_HEADER",
    "bucket_catalog",
    "check_dataset_id",
    "dataset_entry",
    "index_csv",
    "iso_time",
    "registry_json",
    "yearly_index_files",
]

INDEX_HEADER = "# start, stop, datakey, filesize"
"""First line of every index file written (the CloudCatalog >= 0.5 columns)."""

_ID_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")
_BAD_IN_FIELD = re.compile(r'[,\r\n"]')


def iso_time(time: Any, ms: bool = False) -> str:
    """A time as CloudCatalog writes it: ISO 8601 UTC with a ``Z``.

    Parameters
    ----------
    time : str, datetime, numpy.datetime64 or pandas.Timestamp
        Naive values are UTC; aware ones are converted to UTC.
    ms : bool
        Keep milliseconds (``2021-01-01T00:00:00.000Z``, as in index files) instead of
        whole seconds (``2021-01-01T00:00:00Z``, as in catalogs). Finer digits are cut,
        not rounded.

    Returns
    -------
    str

    Raises
    ------
    TimeRangeError
        ``time`` cannot be parsed.
    """
    t = parse_time(time, "time")
    if ms:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_dataset_id(dataset_id: Any) -> str:
    """Return ``dataset_id`` if it is a valid CloudCatalog id (letters, digits, ``-``, ``_``).

    Parameters
    ----------
    dataset_id : str

    Returns
    -------
    str

    Raises
    ------
    CatalogFormatError
        Any other character, or not a string; the message names ``dataset_id``.
    """
    if not isinstance(dataset_id, str) or not _ID_RE.match(dataset_id):
        raise CatalogFormatError(
            f"dataset_id={dataset_id!r} may contain only letters, digits, '-' and '_' "
            "(CloudCatalog ids)"
        )
    return dataset_id


def _row(row: Any, number: int) -> tuple[Any, Any, str, int]:
    """``row`` checked: (start, stop, datakey, filesize) with a plain datakey and a size."""
    try:
        start, stop, datakey, filesize = row
    except (TypeError, ValueError):
        raise CatalogFormatError(
            f"index row {number} is {row!r}; expected (start, stop, datakey, filesize)"
        ) from None
    datakey = str(datakey)
    if not datakey or _BAD_IN_FIELD.search(datakey):
        raise CatalogFormatError(
            f"index row {number}: datakey {datakey!r} must be a non-empty URL without commas, "
            "double quotes or line breaks"
        )
    try:
        size = -1 if isinstance(filesize, bool) else operator.index(filesize)
    except TypeError:
        size = -1
    if size < 0:
        raise CatalogFormatError(
            f"index row {number}: filesize {filesize!r} must be a number of bytes (int >= 0)"
        )
    return start, stop, datakey, size


def index_csv(rows: Iterable[Sequence[Any]]) -> str:
    """The text of one index file: :data:`INDEX_HEADER`, then one line per row.

    Parameters
    ----------
    rows : iterable of (start, stop, datakey, filesize)
        ``start``/``stop`` are times (written with milliseconds and ``Z``), ``datakey`` the
        file's URL, ``filesize`` its size in bytes. Rows are written in the given order.

    Returns
    -------
    str
        Ends with a newline; :func:`intake_helio.catalog.index.parse_index` reads it back.

    Raises
    ------
    CatalogFormatError
        A row is malformed (a datakey with a comma, a negative size, ...).
    TimeRangeError
        A start or stop cannot be parsed.
    """
    lines = [INDEX_HEADER]
    for number, row in enumerate(rows, start=1):
        start, stop, datakey, size = _row(row, number)
        lines.append(f"{iso_time(start, ms=True)},{iso_time(stop, ms=True)},{datakey},{size}")
    return "\n".join(lines) + "\n"


def yearly_index_files(
    index: str, dataset_id: str, rows: Iterable[Sequence[Any]]
) -> dict[str, str]:
    """Split rows into yearly index files, each row in the year of its start.

    Parameters
    ----------
    index : str
        The dataset's ``index`` prefix (as in ``catalog.json``), ending with ``/``.
    dataset_id : str
    rows : iterable of (start, stop, datakey, filesize)
        As for :func:`index_csv`; the order is kept within each year.

    Returns
    -------
    dict
        ``{index_url(index, dataset_id, year): index_csv(rows of that year)}``, by year.

    Raises
    ------
    CatalogFormatError
        A bad ``dataset_id`` or row.
    TimeRangeError
        A start or stop cannot be parsed.
    """
    check_dataset_id(dataset_id)
    by_year: dict[int, list[tuple[Any, Any, str, int]]] = {}
    for number, row in enumerate(rows, start=1):
        checked = _row(row, number)
        by_year.setdefault(parse_time(checked[0], "start").year, []).append(checked)
    return {
        index_url(index, dataset_id, year, "csv"): index_csv(by_year[year])
        for year in sorted(by_year)
    }


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dataset_entry(
    dataset_id: str,
    *,
    index: str,
    title: str,
    start: Any,
    stop: Any,
    description: str = "",
    filetype: str = "fits",
    indextype: str = "csv",
    multiyear: bool = False,
    modification: str | None = None,
) -> dict[str, Any]:
    """One dataset of a bucket's ``catalog.json``.

    Parameters
    ----------
    dataset_id : str
        Letters, digits, ``-`` and ``_``.
    index : str
        Prefix of the yearly index files (see :func:`yearly_index_files`).
    title : str
    start, stop : time
        The dataset's range, written in whole seconds.
    description : str
    filetype, indextype : str
    multiyear : bool
        Whether an index file may hold rows that start in later years.
    modification : str, optional
        Modification time (ISO 8601 with ``Z``); default now.

    Returns
    -------
    dict
        Keys ``id``, ``index``, ``title``, ``start``, ``stop``, ``modification``,
        ``indextype``, ``filetype``, ``description``, ``multiyear``.

    Raises
    ------
    CatalogFormatError
        A bad ``dataset_id``, or an empty ``index`` or ``title``.
    TimeRangeError
        ``start`` or ``stop`` cannot be parsed.
    """
    check_dataset_id(dataset_id)
    for key, value in (("index", index), ("title", title)):
        if not isinstance(value, str) or not value:
            raise CatalogFormatError(f"dataset {dataset_id!r}: {key}={value!r} must not be empty")
    return {
        "id": dataset_id,
        "index": index,
        "title": title,
        "start": iso_time(start),
        "stop": iso_time(stop),
        "modification": modification or _now(),
        "indextype": indextype,
        "filetype": filetype,
        "description": description,
        "multiyear": bool(multiyear),
    }


def bucket_catalog(
    endpoint: str,
    datasets: Iterable[Mapping[str, Any]],
    *,
    name: str,
    contact: str = "",
    description: str = "",
    egress: str = "none",
    existing: Any = None,
) -> dict[str, Any]:
    """A bucket's ``catalog.json`` (status 1200 OK), datasets sorted by id.

    Parameters
    ----------
    endpoint : str
        The bucket root, ending with ``/``.
    datasets : iterable of dict
        Entries made by :func:`dataset_entry`.
    name, contact, description, egress : str
        Top-level fields of the catalog.
    existing : object, optional
        The parsed content of the ``catalog.json`` being replaced (anything: a malformed
        one is ignored); its datasets whose ids are not in ``datasets`` are kept.

    Returns
    -------
    dict
        Keys ``version``, ``name``, ``endpoint``, ``egress``, ``contact``,
        ``description``, ``status``, ``catalog``.

    Raises
    ------
    CatalogFormatError
        A dataset lacks an ``id``, or two share one.
    """
    new = list(datasets)
    ids = [d.get("id") if isinstance(d, Mapping) else None for d in new]
    if any(not i for i in ids) or len(set(ids)) != len(ids):
        raise CatalogFormatError(
            f"datasets must be dataset_entry() dicts with distinct ids; got ids {ids!r}"
        )
    old = existing.get("catalog") if isinstance(existing, Mapping) else None
    kept = [d for d in (old or []) if isinstance(d, Mapping) and d.get("id") not in ids]
    return {
        "version": "1.0",
        "name": name,
        "endpoint": endpoint,
        "egress": egress,
        "contact": contact,
        "description": description,
        "status": {"code": 1200, "message": "OK"},
        "catalog": sorted([*kept, *new], key=lambda d: str(d.get("id"))),
    }


def registry_json(
    endpoints: Iterable[Mapping[str, Any]], *, modification: str | None = None
) -> dict[str, Any]:
    """A ``HelioDataRegistry.json`` listing bucket endpoints.

    Parameters
    ----------
    endpoints : iterable of dict
        One per bucket, each with ``endpoint`` (the bucket root) and ``name``, and
        optionally ``provider``, ``region`` or other keys (kept as given).
    modification : str, optional
        ``modificationDate`` (ISO 8601 with ``Z``); default now.

    Returns
    -------
    dict
        Keys ``version``, ``modificationDate``, ``registry``.

    Raises
    ------
    CatalogFormatError
        An endpoint lacks ``endpoint`` or ``name``.
    """
    entries = []
    for i, entry in enumerate(endpoints):
        if not isinstance(entry, Mapping) or not entry.get("endpoint") or not entry.get("name"):
            raise CatalogFormatError(
                f"registry endpoint {i} is {entry!r}; expected a dict with 'endpoint' and 'name'"
            )
        entries.append(dict(entry))
    return {"version": "1.0", "modificationDate": modification or _now(), "registry": entries}

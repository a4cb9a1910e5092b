"""Yearly file indexes (``<index><id>_<YYYY>.csv``) -> one sorted, time-sliced DataFrame.

Reads every variant in the CloudCatalog format notes: 3 (``start, datakey, filesize``)
or 4 (``start, stop, datakey, filesize``) leading columns plus extras; a header line
that may start with ``#`` and contain spaces, a plain header or none; double or single
quotes; ``csv``, ``csv-zip`` and ``parquet`` files; unsorted rows; missing years
(gaps, not errors) and ``multiyear`` datasets. Years are fetched concurrently.

Index files are third-party content: each is fetched to ``intake_helio.limits.index-bytes``
(a csv-zip member or parquet data to ``limits.index-expanded-bytes``, checked from the zip
header or parquet metadata before expanding and while expanding). A row is bad (reported
with its file and line, like any other bad row) when a time is not ISO 8601 or outside
pandas' nanosecond range (1677-2262), the filesize is not a whole number of bytes from 0
to 2**53, the datakey is missing, the stop is before the start, the line has the wrong number of
fields, or the URL policy refuses the datakey (reason ``"URL not allowed"``; it is never
read). Exact duplicate rows (every column equal, within a file or across years) are one
frame: :func:`read_index` keeps the first and says how many it dropped (a
:class:`~intake_helio.HelioWarning`). Messages give the size of a bad value, never
the value (a time made only of ISO 8601 characters excepted).

With ``keep_refused=True`` a row whose only fault is a refused datakey is kept as a frame
that cannot be read: its reason is in the ``refused`` column (``""`` for other rows) and
its datakey is shown masked; readers give it the status ``"URL not allowed: ..."``
without any request (``on_error="nan"``: every row with a valid time ends as a frame).
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.config
import numpy as np
import pandas as pd

from ..base.errors import ArgumentError, CatalogNotFoundError, HelioWarning, IndexParseError
from ..base.reasons import Reason
from ..base.settings import catalog_settings
from ..frames.spec import REFUSED
from ..io.storage import mask_url, masked_cause, options_for, shown
from ..io.transport import filesystem
from ..io.urlpolicy import UrlPolicy, quote_id
from .fetch import fetch_many, storage_error
from .index_decode import decode_index
from .index_rows import filesizes, row_reason, to_utc

__all__ = [
    "REFUSED",
    "BadRow",
    "index_url",
    "index_years",
    "parse_index",
    "read_index",
    "select_range",
]

_SUFFIX = {"csv": ".csv", "csv-zip": ".csv.zip", "parquet": ".parquet"}
LEADING = ("start", "stop", "datakey", "filesize")
# REFUSED (frames.spec): the column of ``keep_refused=True``; an index's own column of that
# name is kept as ``refused_column``: content never decides which rows are refused.
#: The largest filesize accepted (2**53 bytes, 8 PiB: exact in a float).


@dataclass(frozen=True)
class BadRow:
    """An index row that could not be parsed (kept when ``errors="report"``)."""

    file: str
    line: int
    reason: str


def index_url(index: str, dataset_id: str, year: int, indextype: str = "csv") -> str:
    """URL of one yearly index file."""
    try:
        suffix = _SUFFIX[indextype]
    except KeyError:
        raise ArgumentError(
            f"indextype={indextype!r} is not supported; expected one of {sorted(_SUFFIX)}"
        ) from None
    return f"{index}{quote_id(dataset_id, index)}_{year:04d}{suffix}"


def index_years(
    ds_start: pd.Timestamp,
    ds_stop: pd.Timestamp,
    start: pd.Timestamp,
    stop: pd.Timestamp,
    multiyear: bool = False,
) -> list[int]:
    """Years whose index files can hold rows overlapping ``[start, stop)``.

    A row lives in the year of its start. Its stop is >= its start, so with
    ``multiyear`` a file that began in any earlier year of the dataset may overlap.
    """
    first = max(start, ds_start).year
    last = min((stop - pd.Timedelta(1, "ns")), ds_stop).year
    if multiyear:
        first = ds_start.year
    return list(range(first, last + 1))


# --------------------------------------------------------------------------- parsing
def _clean(token: str) -> str:
    return token.strip().strip("'\"").strip()


def _split_header(lines: list[str]) -> tuple[list[str] | None, int]:
    """Return (header names or None, index of first data line)."""
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            names = [_clean(t).lower() for t in line.lstrip("#").split(",")]
            if names and names[0] == "start":
                return names, i + 1
            continue  # a comment line
        names = [_clean(t).lower() for t in line.split(",")]
        if names and names[0] == "start":
            return names, i + 1
        return None, i
    return None, len(lines)


def _names_without_header(first_row: list[str]) -> list[str]:
    n = len(first_row)
    lead = ["start", "datakey", "filesize"] if n >= 2 and "://" in first_row[1] else list(LEADING)
    return lead[:n] + [f"extra_{i}" for i in range(1, n - len(lead) + 1)]


_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")


def _frame_from_csv(text: str, path: str) -> tuple[pd.DataFrame, np.ndarray, list[BadRow]]:
    """Columns of the CSV (types left to the C parser), the file line of each row, and the
    lines with the wrong number of fields (bad rows, left out of the frame)."""
    # the header (if any) is among the first lines; only those are split in Python
    head = text[:4096].splitlines()
    names, first = _split_header(head)
    offset = 0
    for _ in range(first):
        nl = text.find("\n", offset)
        offset = len(text) if nl < 0 else nl + 1
    body = text[offset:]
    if _BLANK_LINE.search(body) or body[:1].isspace():
        lines = body.splitlines()
        keep = [i for i, line in enumerate(lines) if line.strip()]
        body = "\n".join(lines[i] for i in keep)
        linenos = np.asarray(keep, dtype=np.int64) + first + 1
    else:
        linenos = None
    first_data = body[: body.find("\n")] if "\n" in body else body
    first_data = first_data.strip()
    if not first_data:
        empty = pd.DataFrame(columns=names or list(LEADING), dtype=str)
        return empty, np.zeros(0, np.int64), []
    quote = "'" if first_data.startswith("'") else '"'
    if names is None:
        names = _names_without_header([_clean(t) for t in first_data.split(",")])

    def read(csv_text: str) -> pd.DataFrame:
        return pd.read_csv(
            io.StringIO(csv_text),
            header=None,
            names=names,
            quotechar=quote,
            skipinitialspace=True,
            keep_default_na=False,
            skip_blank_lines=False,
            index_col=False,
        )

    # the fast path: the C parser, then one count of the commas; only a file whose count
    # is off (a line with too many or too few fields, or commas inside quotes) is split
    # into lines to find which lines are wrong
    try:
        df = read(body)
    except pd.errors.ParserError:
        df = None
    if df is not None and body.count(",") == (len(names) - 1) * len(df):
        if linenos is None:
            linenos = np.arange(first + 1, first + 1 + len(df), dtype=np.int64)
        return df, linenos, []
    lines = body.split("\n")
    if len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # the final newline
    if linenos is None:
        linenos = np.arange(first + 1, first + 1 + len(lines), dtype=np.int64)
    counts = _field_counts(lines, quote)
    least = max(sum(n in LEADING for n in names), 1)  # the extra columns may be left out
    wrong = (counts > len(names)) | (counts < least)
    file = mask_url(path)
    expected = f"{len(names)}" if least == len(names) else f"{least} to {len(names)}"
    shape_bad = [
        BadRow(
            file,
            int(linenos[i]),
            f"wrong number of fields ({int(counts[i])}; expected {expected}, as in the header "
            "or the first row)",
        )
        for i in np.flatnonzero(wrong)
    ]
    good = np.flatnonzero(~wrong)
    linenos = linenos[good]
    if not len(good):
        return pd.DataFrame(columns=names, dtype=str), linenos, shape_bad
    try:
        df = read("\n".join([lines[i] for i in good]))
    except pd.errors.ParserError as exc:  # the C parser and the csv module disagree
        m = re.search(r"line (\d+)", str(exc))
        row = int(m.group(1)) - 1 if m else -1
        line = int(linenos[row]) if 0 <= row < len(linenos) else 0
        where = shown(path)
        raise IndexParseError(
            f"{where} line {line}: wrong number of fields (expected {len(names)}, as in the "
            "header or the first row); fix the index file",
            where,
            line,
        ) from exc
    if len(df) != len(linenos):  # quoted newlines: line numbers cannot be told
        linenos = np.arange(first + 1, first + 1 + len(df), dtype=np.int64)
    return df, linenos, shape_bad


def _field_counts(lines: list[str], quote: str) -> np.ndarray:
    """Fields on each line, as a CSV reader with ``quote`` sees them (commas if it cannot)."""
    try:
        rows = csv.reader(lines, quotechar=quote, skipinitialspace=True)
        return np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(lines))
    except (csv.Error, ValueError):  # a lone \r, or an open quote spanning lines
        return np.fromiter((line.count(",") + 1 for line in lines), np.int64, len(lines))


def parse_index(
    data: bytes,
    path: str,
    indextype: str = "csv",
    errors: str = "raise",
    *,
    policy: UrlPolicy | None = None,
    keep_refused: bool = False,
) -> tuple[pd.DataFrame, list[BadRow]]:
    """Parse one index file's bytes into typed columns.

    Parameters
    ----------
    data : bytes
        The file's content.
    path : str
        Its URL, for error messages and as the "same host" of the URL policy.
    indextype : {"csv", "csv-zip", "parquet"}
    errors : {"raise", "report"}
        ``"raise"`` stops at the first bad row; ``"report"`` drops bad rows and
        returns them as :class:`BadRow` records.
    policy : UrlPolicy, optional
        Which datakeys may be read; defaults to :meth:`UrlPolicy.current`.
    keep_refused : bool
        Keep the rows whose only fault is a datakey the policy refuses (not bad rows
        then): their reason (``"URL not allowed: datakey ..."``) is in a ``refused``
        column, ``""`` for the other rows, and their datakey is masked (:func:`shown`).

    Returns
    -------
    (DataFrame, list of BadRow)
        Columns ``start``, ``stop`` (datetime64[ns], naive UTC), ``datakey`` (str),
        ``filesize`` (int64), then extra columns with their own names (and ``refused``
        with ``keep_refused``).

    Raises
    ------
    IndexParseError
        A bad row (with ``errors="raise"``) or an unreadable file; names file and line.
    ContentTooLargeError
        A csv-zip member or parquet data expands past ``intake_helio.limits.index-expanded-bytes``.
    """
    if errors not in ("raise", "report"):
        raise ArgumentError(f"errors={errors!r}; expected 'raise' or 'report'")
    policy = policy or UrlPolicy.current()
    decoded = decode_index(data, path, indextype, catalog_settings().max_index_expanded_bytes)
    if isinstance(decoded, pd.DataFrame):
        raw = decoded.copy()
        raw.columns = [str(c).strip().lstrip("#").strip().lower() for c in raw.columns]
        if "start" not in raw.columns and len(raw):
            raw.columns = _names_without_header([str(v) for v in raw.iloc[0].tolist()])[
                : len(raw.columns)
            ]
        linenos = np.arange(1, len(raw) + 1, dtype=np.int64)
        shape_bad = []
    else:
        raw, linenos, shape_bad = _frame_from_csv(decoded, path)
    for col in ("start", "datakey"):
        if col not in raw.columns:
            where = shown(path)
            raise IndexParseError(
                f"{where}: no {col!r} column (found {len(raw.columns)} columns); expected "
                "'start, stop, datakey, filesize' or 'start, datakey, filesize'",
                where,
                0,
            )

    def as_str(col: str) -> pd.Series:
        s = raw[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            s = s.astype(str).str.strip()
            if len(s) and s.iloc[0][:1] in ("'", '"'):
                s = s.str.strip("'\"")
            return s
        return s

    start_raw = as_str("start")
    start, start_oor = to_utc(start_raw)
    if "stop" in raw.columns:
        stop_raw = as_str("stop")
        stop, stop_oor = to_utc(stop_raw)
        empty_stop = (stop_raw.astype(str).str.len() == 0).to_numpy()
        stop = stop.where(~empty_stop, start)
        stop_oor = stop_oor & ~empty_stop
    else:
        stop_raw, stop, stop_oor = None, start.copy(), np.zeros(len(raw), dtype=bool)
    datakey = as_str("datakey").astype(str)
    fs_raw, filesize, bad_size = filesizes(raw, as_str)
    key_ok = policy.allowed_mask(datakey, path) | (datakey.str.len() == 0).to_numpy()

    start_ok, stop_ok = start.notna().to_numpy(), stop.notna().to_numpy()
    backwards = np.zeros(len(raw), dtype=bool)
    both = start_ok & stop_ok
    if both.any():
        backwards[both] = stop.to_numpy()[both] < start.to_numpy()[both]
    bad = ~start_ok | ~stop_ok | backwards | (datakey.str.len() == 0).to_numpy() | bad_size
    refused = ~key_ok & ~bad  # a valid row but for its datakey
    if not keep_refused:
        bad = bad | ~key_ok
    file = mask_url(path)
    positions = np.flatnonzero(bad)

    def bad_row(pos) -> BadRow:
        reason = row_reason(
            pos, (start_raw, start, start_oor), (stop_raw, stop, stop_oor), datakey,
            fs_raw, filesize, policy, path,
        )  # fmt: skip
        return BadRow(file, int(linenos[pos]), reason)

    if errors == "raise" and (len(positions) or shape_bad):
        first = [bad_row(positions[0])] if len(positions) else []
        b = min(first + shape_bad[:1], key=lambda r: r.line)
        where = shown(path)
        raise IndexParseError(
            f"{where} line {b.line}: {b.reason}; fix the index or pass errors='report' "
            "to skip bad rows and list them",
            where,
            b.line,
        )
    bad_rows = [bad_row(pos) for pos in positions]
    if shape_bad:
        bad_rows = sorted(bad_rows + shape_bad, key=lambda r: r.line)
    keep = ~bad if len(positions) else slice(None)
    out = pd.DataFrame(
        {
            "start": start.to_numpy()[keep],
            "stop": stop.to_numpy()[keep],
            "datakey": datakey.to_numpy()[keep],
            "filesize": filesize[keep],
        }
    )
    out["datakey"] = out["datakey"].astype(str)
    for col in raw.columns:
        if col not in LEADING:
            out[f"{col}_column" if col == REFUSED else col] = raw[col].to_numpy()[keep]
    if keep_refused:
        reasons = np.full(len(raw), "", dtype=object)
        for pos in np.flatnonzero(refused):
            why = policy.refusal(datakey.iloc[pos], path)
            reasons[pos] = f"{Reason.URL_NOT_ALLOWED}: datakey {why}"
        out[REFUSED] = reasons[keep]
        if refused.any():  # never a URL to read: shown masked, on one line
            shown_keys = [shown(k, 300) for k in datakey.to_numpy()[keep][refused[keep]]]
            out.loc[refused[keep], "datakey"] = shown_keys
    return out, bad_rows


# --------------------------------------------------------------------------- reading
def select_range(df: pd.DataFrame, start: pd.Timestamp | None, stop: pd.Timestamp | None):
    """Rows with ``stop >= start`` and ``start < stop`` (the reference client's half-open rule)."""
    mask = np.ones(len(df), dtype=bool)
    if start is not None:
        mask &= (df["stop"] >= start).to_numpy()
    if stop is not None:
        mask &= (df["start"] < stop).to_numpy()
    return df.loc[mask].reset_index(drop=True)


def read_index(
    index: str,
    dataset_id: str,
    years: Sequence[int],
    *,
    indextype: str = "csv",
    start: pd.Timestamp | None = None,
    stop: pd.Timestamp | None = None,
    storage_options: Mapping[str, Any] | None = None,
    errors: str = "raise",
    cache: bool | None = None,
    keep_refused: bool = False,
) -> pd.DataFrame:
    """Fetch the yearly index files of ``years`` concurrently and return the rows in range.

    ``cache`` (default: ``intake_helio.cache.enabled``) reads them through :mod:`.cache`.

    Missing years are gaps, not errors; if *no* year exists and the index prefix
    itself does not exist, :class:`CatalogNotFoundError` is raised. With
    ``errors="report"`` the bad rows are in ``df.attrs["bad_rows"]`` (list of
    :class:`BadRow`). Exact duplicate rows (every column equal, in one file or two) are
    kept once: a :class:`~intake_helio.HelioWarning` says how many were dropped, and
    ``df.attrs["duplicates_dropped"]`` holds the count. ``keep_refused``: see
    :func:`parse_index`.
    """
    urls = [index_url(index, dataset_id, y, indextype) for y in years]
    frames: list[pd.DataFrame] = []
    bad_rows: list[BadRow] = []
    if urls:
        limit = catalog_settings().max_index_bytes
        policy = UrlPolicy.current()
        try:
            results = _fetch(urls, years, storage_options, limit, cache)
        except Exception as exc:
            raise storage_error(exc, urls[0], "index file", storage_options) from masked_cause(exc)
        found = 0
        for url in urls:
            data = results.pop(url, None)  # each file's bytes freed once parsed (a mission: 13)
            if isinstance(data, FileNotFoundError) or data is None:
                continue
            if isinstance(data, BaseException):
                err = storage_error(data, url, "index file", storage_options)
                raise err from masked_cause(data)
            found += 1
            df, bad = parse_index(
                data, url, indextype, errors, policy=policy, keep_refused=keep_refused
            )
            bad_rows.extend(bad)
            frames.append(df)
        if not found:
            fs, _ = filesystem(urls[0], storage_options, catalog=True)
            _check_prefix_exists(fs, index, storage_options)
    if frames:
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    else:
        df = pd.DataFrame(
            {
                "start": pd.Series(dtype="datetime64[ns]"),
                "stop": pd.Series(dtype="datetime64[ns]"),
                "datakey": pd.Series(dtype=str),
                "filesize": pd.Series(dtype=np.int64),
            }
        )
    df = df.sort_values("start", kind="stable", ignore_index=True)
    df = select_range(df, start, stop)
    dropped = _drop_duplicates(df)
    if dropped:
        df = df.loc[~dropped.mask].reset_index(drop=True)
        warnings.warn(
            f"dropped {dropped.count} exact duplicate index row(s) of {dataset_id!r} in "
            f"{dropped.where}: every column equal to an earlier row's; each file is one "
            "frame (the first row kept)",
            HelioWarning,
            stacklevel=3,
        )
    if errors == "report":
        df.attrs["bad_rows"] = bad_rows
    df.attrs["duplicates_dropped"] = dropped.count if dropped else 0
    return df


@dataclass(frozen=True)
class _Dropped:
    mask: np.ndarray
    count: int
    where: str

    def __bool__(self) -> bool:
        return self.count > 0


def _drop_duplicates(df: pd.DataFrame) -> _Dropped | None:
    """The rows equal in every column to an earlier one (exact duplicates), or None."""
    if not len(df) or df["datakey"].is_unique:  # the cheap test first
        return None
    try:
        mask = df.duplicated(keep="first").to_numpy()
    except TypeError:  # an unhashable extra column (parquet lists): the leading ones
        mask = df.duplicated(subset=[c for c in LEADING if c in df.columns]).to_numpy()
    if not mask.any():
        return None
    years = sorted({int(y) for y in pd.DatetimeIndex(df["start"][mask]).year})
    return _Dropped(mask, int(mask.sum()), "the year(s) " + ", ".join(map(str, years)))


def _fetch(urls, years, storage_options, limit: int, cache: bool | None) -> dict:
    def fetch(some):
        return fetch_many(some, storage_options, limit, "index file", "limits.index-bytes")

    from .cache import cache_enabled, cached_fetch

    if not cache_enabled(cache):
        return fetch(urls)
    trusted: list[str] = []
    if dask.config.get("intake_helio.cache.trust-past-years", False):
        this_year = pd.Timestamp.now(tz="UTC").year
        trusted = [u for u, y in zip(urls, years, strict=True) if y < this_year]
    return cached_fetch(urls, storage_options, fetch, limit=limit, trusted=trusted)


def _check_prefix_exists(fs, index: str, storage_options) -> None:
    if index.lower().startswith(("http://", "https://")):
        return  # http has no listings to trust (and a page could be any size)
    path = fs._strip_protocol(index)
    try:
        exists = fs.exists(path.rstrip("/")) or bool(fs.ls(path, detail=False))
    except FileNotFoundError:
        exists = False
    except Exception:
        return  # cannot tell (e.g. https without listings): an empty result is honest
    if not exists:
        raise CatalogNotFoundError(
            f"index location {shown(index)} does not exist (no index files and no such "
            "prefix); check the dataset's 'index' in catalog.json and the storage options "
            f"({sorted(options_for(index, storage_options, defaults=False))})"
        )

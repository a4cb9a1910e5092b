"""Yearly file indexes (``<index><id>_<YYYY>.csv``) -> one sorted, time-sliced DataFrame.

Reads every variant in the CloudCatalog format notes: 3 (``start, datakey, filesize``)
or 4 (``start, stop, datakey, filesize``) leading columns plus extras; a header line
that may start with ``#`` and contain spaces, a plain header or none; double or single
quotes; ``csv``, ``csv-zip`` and ``parquet`` files; unsorted rows; missing years
(gaps, not errors) and ``multiyear`` datasets. Years are fetched concurrently.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..base.errors import (
    ArgumentError,
    CatalogNotFoundError,
    IndexParseError,
    StorageAccessError,
    StorageReadError,
)
from ..io.storage import filesystem, options_for

__all__ = ["BadRow", "index_url", "index_years", "parse_index", "read_index", "select_range"]

_SUFFIX = {"csv": ".csv", "csv-zip": ".csv.zip", "parquet": ".parquet"}
LEADING = ("start", "stop", "datakey", "filesize")


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
    return f"{index}{dataset_id}_{year:04d}{suffix}"


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


def _decode(data: bytes, path: str, indextype: str) -> str | pd.DataFrame:
    if indextype == "parquet":
        return pd.read_parquet(io.BytesIO(data))
    if indextype == "csv-zip" or data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
            if not members:
                raise IndexParseError(f"{path}: the zip archive is empty", path, 0)
            data = zf.read(members[0])
    return data.decode("utf-8-sig", errors="replace")


_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")


def _frame_from_csv(text: str, path: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Columns of the CSV (types left to the C parser) and the file line of each row."""
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
        return pd.DataFrame(columns=names or list(LEADING), dtype=str), np.zeros(0, np.int64)
    quote = "'" if first_data.startswith("'") else '"'
    if names is None:
        names = _names_without_header([_clean(t) for t in first_data.split(",")])
    try:
        df = pd.read_csv(
            io.StringIO(body),
            header=None,
            names=names,
            quotechar=quote,
            skipinitialspace=True,
            keep_default_na=False,
            skip_blank_lines=False,
            index_col=False,
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        row = int(m.group(1)) - 1 if m else -1
        if linenos is not None and 0 <= row < len(linenos):
            line = int(linenos[row])
        else:
            line = row + first + 1 if row >= 0 else 0
        raise IndexParseError(
            f"{path} line {line}: wrong number of fields (expected {len(names)}: "
            f"{', '.join(names)}); fix the index file",
            path,
            line,
        ) from exc
    if linenos is None:
        linenos = np.arange(first + 1, first + 1 + len(df), dtype=np.int64)
    return df, linenos


def parse_index(
    data: bytes, path: str, indextype: str = "csv", errors: str = "raise"
) -> tuple[pd.DataFrame, list[BadRow]]:
    """Parse one index file's bytes into typed columns.

    Parameters
    ----------
    data : bytes
        The file's content.
    path : str
        Its URL, for error messages.
    indextype : {"csv", "csv-zip", "parquet"}
    errors : {"raise", "report"}
        ``"raise"`` stops at the first bad row; ``"report"`` drops bad rows and
        returns them as :class:`BadRow` records.

    Returns
    -------
    (DataFrame, list of BadRow)
        Columns ``start``, ``stop`` (datetime64[ns], naive UTC), ``datakey`` (str),
        ``filesize`` (int64), then extra columns with their own names.
    """
    if errors not in ("raise", "report"):
        raise ArgumentError(f"errors={errors!r}; expected 'raise' or 'report'")
    decoded = _decode(data, path, indextype)
    if isinstance(decoded, pd.DataFrame):
        raw = decoded.copy()
        raw.columns = [str(c).strip().lstrip("#").strip().lower() for c in raw.columns]
        if "start" not in raw.columns:
            raw.columns = _names_without_header([str(v) for v in raw.iloc[0].tolist()])[
                : len(raw.columns)
            ]
        linenos = np.arange(1, len(raw) + 1, dtype=np.int64)
    else:
        raw, linenos = _frame_from_csv(decoded, path)
    for col in ("start", "datakey"):
        if col not in raw.columns:
            raise IndexParseError(
                f"{path}: no {col!r} column (columns: {list(raw.columns)}); expected "
                "'start, stop, datakey, filesize' or 'start, datakey, filesize'",
                path,
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
    start = _to_utc(start_raw)
    if "stop" in raw.columns:
        stop_raw = as_str("stop")
        stop = _to_utc(stop_raw)
        empty_stop = stop_raw.astype(str).str.len() == 0
        stop = stop.where(~empty_stop, start)
    else:
        stop_raw, stop = None, start.copy()
    datakey = as_str("datakey").astype(str)
    if "filesize" in raw.columns and pd.api.types.is_integer_dtype(raw["filesize"]):
        fs_raw, filesize = raw["filesize"], raw["filesize"]
    elif "filesize" in raw.columns:
        fs_raw = as_str("filesize")
        filesize = pd.to_numeric(fs_raw, errors="coerce")
    else:
        fs_raw, filesize = None, pd.Series(np.zeros(len(raw)), index=raw.index)

    bad = start.isna() | stop.isna() | (datakey.str.len() == 0) | filesize.isna()
    bad_rows: list[BadRow] = []
    if bad.any():
        for pos in np.flatnonzero(bad.to_numpy()):
            reason = _row_reason(pos, start_raw, start, stop_raw, stop, datakey, fs_raw, filesize)
            bad_rows.append(BadRow(path, int(linenos[pos]), reason))
            if errors == "raise":
                b = bad_rows[0]
                raise IndexParseError(
                    f"{path} line {b.line}: {b.reason}; fix the index or pass errors='report' "
                    "to skip bad rows and list them",
                    path,
                    b.line,
                )
        keep = ~bad.to_numpy()
    else:
        keep = slice(None)
    out = pd.DataFrame(
        {
            "start": start.to_numpy()[keep],
            "stop": stop.to_numpy()[keep],
            "datakey": datakey.to_numpy()[keep],
            "filesize": filesize.to_numpy()[keep].astype(np.int64),
        }
    )
    out["datakey"] = out["datakey"].astype(str)
    for col in raw.columns:
        if col not in LEADING:
            out[col] = raw[col].to_numpy()[keep]
    return out, bad_rows


def _to_utc(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        t = pd.to_datetime(s, utc=True)
    else:
        t = pd.to_datetime(s.astype(str), format="ISO8601", utc=True, errors="coerce")
    return t.dt.tz_localize(None).astype("datetime64[ns]")


def _row_reason(pos, start_raw, start, stop_raw, stop, datakey, fs_raw, filesize) -> str:
    if pd.isna(start.iloc[pos]):
        return f"start {start_raw.iloc[pos]!r} is not an ISO 8601 time"
    if pd.isna(stop.iloc[pos]):
        return f"stop {stop_raw.iloc[pos]!r} is not an ISO 8601 time"
    if not datakey.iloc[pos]:
        return "datakey is missing"
    return f"filesize {fs_raw.iloc[pos]!r} is not a number of bytes"


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
) -> pd.DataFrame:
    """Fetch the yearly index files of ``years`` concurrently and return the rows in range.

    Missing years are gaps, not errors; if *no* year exists and the index prefix
    itself does not exist, :class:`CatalogNotFoundError` is raised. With
    ``errors="report"`` the bad rows are in ``df.attrs["bad_rows"]`` (list of
    :class:`BadRow`).
    """
    urls = [index_url(index, dataset_id, y, indextype) for y in years]
    frames: list[pd.DataFrame] = []
    bad_rows: list[BadRow] = []
    if urls:
        fs, _ = filesystem(urls[0], storage_options)
        paths = [fs._strip_protocol(u) for u in urls]
        results = _cat_many(fs, paths)
        found = 0
        for url, path in zip(urls, paths, strict=True):
            data = results.get(path)
            if isinstance(data, FileNotFoundError) or data is None:
                continue
            if isinstance(data, PermissionError):
                raise StorageAccessError(
                    f"access denied to index file {url}; pass credentials in storage_options "
                    "(or anon=True if the bucket is public)"
                ) from data
            if isinstance(data, BaseException):
                raise StorageReadError(f"cannot read index file {url}: {data}") from data
            found += 1
            df, bad = parse_index(data, url, indextype, errors)
            bad_rows.extend(bad)
            frames.append(df)
        if not found:
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
    if errors == "report":
        df.attrs["bad_rows"] = bad_rows
    return df


def _cat_many(fs, paths: list[str]) -> dict:
    """Fetch whole files concurrently: one GET each (no existence checks first).

    Returns ``{path: bytes or the exception raised}``.
    """
    if getattr(fs, "async_impl", False) and len(paths) > 1:
        import asyncio

        from ..io.shims import fsspec_cat_file, fsspec_sync

        async def gather():
            return await asyncio.gather(
                *(fsspec_cat_file(fs, p) for p in paths), return_exceptions=True
            )

        return dict(zip(paths, fsspec_sync(fs.loop, gather), strict=True))

    def one(path):
        try:
            return fs.cat_file(path)
        except Exception as exc:
            return exc

    if len(paths) == 1:
        return {paths[0]: one(paths[0])}
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        return dict(zip(paths, pool.map(one, paths), strict=True))


def _check_prefix_exists(fs, index: str, storage_options) -> None:
    path = fs._strip_protocol(index)
    try:
        exists = fs.exists(path.rstrip("/")) or bool(fs.ls(path, detail=False))
    except FileNotFoundError:
        exists = False
    except Exception:
        return  # cannot tell (e.g. https without listings): an empty result is honest
    if not exists:
        raise CatalogNotFoundError(
            f"index location {index} does not exist (no index files and no such prefix); "
            f"check the dataset's 'index' in catalog.json and the storage options "
            f"({sorted(options_for(index, storage_options))})"
        )

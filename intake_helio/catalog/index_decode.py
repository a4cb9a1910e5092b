"""An index file's bytes as text or a table: csv-zip expanded and parquet read, bounded.

A csv-zip member or a parquet file's data may expand to at most ``limit`` bytes
(``intake_helio.limits.index-expanded-bytes``): checked from the zip header or the parquet
metadata before expanding, and while expanding.
"""

from __future__ import annotations

import io
import zipfile
import zlib

import pandas as pd

from ..base.errors import IndexParseError
from ..io.storage import ContentTooLargeError, shown

__all__ = ["decode_index"]

_CHUNK = 1 << 20


def _expand_zip(data: bytes, path: str, limit: int) -> bytes:
    """The first member of a zip archive, refused past ``limit`` bytes (header, then count)."""
    where = shown(path)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if not members:
                raise IndexParseError(f"{where}: the zip archive is empty", where, 0)
            info = members[0]
            if info.file_size > limit:
                raise _too_large_member(where, limit, info.file_size)
            parts, got = [], 0
            with zf.open(info) as member:
                while chunk := member.read(_CHUNK):
                    got += len(chunk)
                    if got > limit:
                        raise _too_large_member(where, limit, None)
                    parts.append(chunk)
            return b"".join(parts)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise IndexParseError(
            f"{where}: not a readable zip archive ({len(data)} bytes; {type(exc).__name__}); "
            "expected a csv-zip index (one CSV member)",
            where,
            0,
        ) from exc


def _too_large_member(where: str, limit: int, declared: int | None) -> ContentTooLargeError:
    said = f" (its header says {declared} bytes)" if declared is not None else ""
    return ContentTooLargeError(
        f"{where}: the csv-zip member expands past {limit} bytes{said}, the limit "
        "intake_helio.limits.index-expanded-bytes; it was not expanded further. If the file "
        "is genuine, raise the limit: dask.config.set("
        "{'intake_helio.limits.index-expanded-bytes': '2 GiB'})",
        where,
        limit,
    )


def _read_parquet(data: bytes, path: str, limit: int) -> pd.DataFrame:
    where = shown(path)
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(io.BytesIO(data)).metadata
        # the larger of the uncompressed size and 16 bytes a cell (dictionary-encoded
        # columns are small in the file, not once expanded)
        expanded = max(
            sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)),
            meta.num_rows * meta.num_columns * 16,
        )
        if expanded > limit:
            raise ContentTooLargeError(
                f"{where}: the parquet data expands to about {expanded} bytes, past the limit "
                f"intake_helio.limits.index-expanded-bytes ({limit}); it was not read. If the "
                "file is genuine, raise the limit",
                where,
                limit,
            )
        return pd.read_parquet(io.BytesIO(data))
    except ContentTooLargeError:
        raise
    except ImportError:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow's ArrowInvalid, OSError, ...
        raise IndexParseError(
            f"{where}: not a readable parquet file ({len(data)} bytes; {type(exc).__name__}); "
            "expected a parquet index",
            where,
            0,
        ) from exc


def decode_index(data: bytes, path: str, indextype: str, limit: int) -> str | pd.DataFrame:
    """The text of a csv or csv-zip index (its first member), or a parquet index's table."""
    if indextype == "parquet":
        return _read_parquet(data, path, limit)
    if indextype == "csv-zip" or data[:4] == b"PK\x03\x04":
        data = _expand_zip(data, path, limit)
    return data.decode("utf-8-sig", errors="replace")

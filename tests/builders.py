"""Builders for small CloudCatalog trees (registry, catalog.json, yearly indexes)."""

from __future__ import annotations

import io
import json
import zipfile

import fsspec
import pandas as pd


def put(url: str, data: bytes | str, storage_options=None) -> None:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if isinstance(data, str):
        data = data.encode()
    fs.pipe_file(path, data)


def dataset_entry(id="aia_0094", index=None, root="memory://bucket/", **kw) -> dict:
    entry = {
        "id": id,
        "index": index or f"{root}registries/",
        "title": kw.pop("title", f"{id} FITS data"),
        "start": kw.pop("start", "2019-12-31T00:00:00Z"),
        "stop": kw.pop("stop", "2021-01-02T00:00:00Z"),
        "modification": "2023-05-04T00:00:00Z",
        "indextype": "csv",
        "filetype": "fits",
    }
    entry.update(kw)
    return entry


def catalog_json(root: str, entries: list[dict], **kw) -> str:
    obj = {
        "version": "1.0",
        "name": kw.pop("name", "Test bucket"),
        "endpoint": root,
        "status": kw.pop("status", {"code": 1200, "message": "OK"}),
        "catalog": entries,
    }
    obj.update(kw)
    return json.dumps(obj)


def index_csv(rows, *, header="# start, stop, datakey, filesize", quote='"', stop=True, extras=()):
    """rows: iterable of (start, stop, datakey, filesize, *extras) strings."""
    lines = [header] if header else []
    for r in rows:
        r = list(r)
        if not stop:
            del r[1]
        lines.append(",".join(f"{quote}{v}{quote}" if quote else str(v) for v in r))
    return "\n".join(lines) + "\n"


def make_rows(start: str, n: int, cadence="4min", bucket="bucket", extra=None):
    t = pd.date_range(start, periods=n, freq=cadence)
    rows = []
    for i, ti in enumerate(t):
        r = [
            ti.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            (ti + pd.Timedelta(cadence)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            f"s3://{bucket}/data/{ti:%Y%m%d}/f_{i:05d}.fits",
            str(2880 * (100 + i)),
        ]
        if extra:
            r.append(extra(i))
        rows.append(r)
    return rows


def zip_bytes(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, text)
    return buf.getvalue()

"""Publish time-series files (CDF, netCDF, HDF5) as a CloudCatalog dataset, for demos and tests.

:func:`publish_series` writes each file's bytes under a bucket root, the yearly index
files (``start, stop, datakey, filesize``), merges the dataset into the root's
``catalog.json`` (other datasets kept) and writes the registry, as the AIA demo data does
(:func:`~intake_helio.testing.demo_data.write_demo_dataset`). The bytes come from the
format builders (:mod:`intake_helio.testing.cdf_files`,
:mod:`intake_helio.testing.netcdf_files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .demo_data import DemoDataError, _normalise_root, _publish, _writer

__all__ = ["SeriesFile", "publish_series"]


@dataclass(frozen=True)
class SeriesFile:
    """One file of a series: its key under the root, its index times and its bytes."""

    key: str
    start: Any
    stop: Any
    data: bytes


def publish_series(
    root: str,
    storage_options: dict | None,
    dataset_id: str,
    files: Sequence[SeriesFile],
    *,
    filetype: str = "cdf",
    title: str | None = None,
    description: str = "",
    registry_name: str = "Local demo (intake-helio)",
    index_dir: str | None = None,
) -> list[str]:
    """Write ``files`` and publish them as dataset ``dataset_id`` of the bucket ``root``.

    Parameters
    ----------
    root : str
        Bucket root (``s3://bucket/``, ``memory://name/``, a local path).
    storage_options : dict, optional
        fsspec options of the root (e.g. ``LocalS3().storage_options``).
    dataset_id : str
        The dataset's id in ``catalog.json``.
    files : sequence of SeriesFile
        The files, in time order; each row's ``filesize`` is its byte count.
    filetype : str
        The catalog's ``filetype`` (``"cdf"``, ``"netcdf4"``, ...; any text, to test).
    title, description : str
        The dataset's title (default from the id) and description.
    registry_name : str
        The bucket's name in the registry.
    index_dir : str, optional
        Folder of the yearly indexes under the root (default ``<dataset_id>/registries/``).

    Returns
    -------
    list of str
        The files' datakeys (URLs).
    """
    if not files:
        raise DemoDataError("publish_series needs at least one file")
    root = _normalise_root(root)
    writer = _writer(root, storage_options)
    rows, keys = [], []
    for f in files:
        url = root + f.key.lstrip("/")
        writer.put(url, f.data)
        rows.append((f.start, f.stop, url, len(f.data)))
        keys.append(url)
    _publish(
        writer,
        dataset_id,
        pd.Timestamp(min(pd.Timestamp(f.start) for f in files)),
        pd.Timestamp(max(pd.Timestamp(f.stop) for f in files)),
        rows,
        description,
        registry_name,
        title=title or f"{dataset_id} ({filetype}, synthetic)",
        filetype=filetype,
        index_dir=index_dir or f"{dataset_id}/registries/",
    )
    return keys

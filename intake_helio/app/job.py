"""The irradiance job end to end: catalog -> lazy frames -> per-frame means -> saved files.

Used by ``intake-helio irradiance`` and ``intake-helio demo``; the same public code
path as a notebook user (bucket -> dataset -> ``to_dataarray`` -> ``irradiance``).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

from ..app.results import PartStore, save_results, to_dataframe
from ..catalog.registry import open_bucket
from ..compute.reduction import irradiance, parts_to_dataset

__all__ = ["JobSummary", "run_irradiance_job"]


@dataclass
class JobSummary:
    """What a run did: frame counts, failures by reason, time and rate, files written."""

    frames: int
    ok: int
    failed: dict[str, int]
    elapsed: float
    computed: int
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def files_per_second(self) -> float:
        return self.computed / self.elapsed if self.elapsed > 0 else float("nan")

    def text(self) -> str:
        lines = [
            f"frames: {self.frames}  ok: {self.ok}  failed: {sum(self.failed.values())}",
        ]
        for reason, count in sorted(self.failed.items(), key=lambda kv: -kv[1]):
            lines.append(f"  failed ({reason}): {count}")
        lines.append(
            f"elapsed: {self.elapsed:.1f} s  computed: {self.computed} frames  "
            f"rate: {self.files_per_second:.2f} files/s"
        )
        for kind, path in self.paths.items():
            lines.append(f"wrote {kind}: {path}")
        return "\n".join(lines)


def run_irradiance_job(
    endpoint: str,
    dataset: str,
    start: Any,
    stop: Any,
    out: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    cluster_kind: str | None = "local",
    cluster_kwargs: Mapping[str, Any] | None = None,
    normalize: bool = False,
    resume: bool = False,
    cutout: Mapping[str, slice] | None = None,
    part_size: int = 256,
    progress: bool = True,
    plot: bool = True,
) -> tuple[xr.Dataset, JobSummary]:
    """Compute and save the irradiance of ``dataset`` over ``[start, stop)``.

    Parameters
    ----------
    endpoint, dataset : str
        Bucket root (``s3://bucket/``) and dataset id.
    start, stop : time-like
        Half-open range.
    out : str
        Output directory: ``irradiance.csv``, ``irradiance.nc``, ``irradiance.png`` and
        ``parts/`` (for ``resume``).
    storage_options : dict, optional
        fsspec options for the catalog, the indexes and every frame read.
    cluster_kind : {"local", "gateway", None}
        Where to compute; None uses the active dask scheduler.
    cluster_kwargs : dict, optional
        Passed to :func:`intake_helio.compute.clusters` (workers, worker_cores, address, ...).
    normalize, cutout
        As for :func:`intake_helio.compute.reduction` and :meth:`Dataset.to_dataarray`.
    resume : bool
        Keep the parts saved by an interrupted run with the same arguments.
    """
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
        raise ValueError(f"part_size={part_size!r}; expected a positive number of frames")
    bucket = open_bucket(endpoint, storage_options)
    ds = bucket[dataset]
    frames = ds.to_dataarray(
        start, stop, cutout=cutout, on_error="nan", storage_options=storage_options
    )
    units = "DN/s" if normalize else frames.attrs.get("units", "DN")
    identity = {
        "endpoint": bucket.endpoint,
        "dataset": dataset,
        "start": str(frames["time"].values[0]),
        "stop": str(frames["time"].values[-1]),
        "frames": frames.sizes["time"],
        "files": PartStore.fingerprint(frames["datakey"].values),
        "normalize": normalize,
        "cutout": repr(cutout),
        "part_size": part_size,
    }
    store = PartStore(out, identity, resume)
    done = store.done()
    computed = 0
    t0 = time.perf_counter()

    if cluster_kind is None:
        ctx = contextlib.nullcontext()
    else:
        from ..compute.clusters import cluster

        ctx = cluster(cluster_kind, **dict(cluster_kwargs or {}))

    def on_part(p, df):
        nonlocal computed
        store.save(p, df)
        computed += len(df)

    with ctx:
        irradiance(
            frames,
            normalize=normalize,
            progress=progress,
            part_size=part_size,
            on_part=on_part,
            skip=done,
        )
    result = parts_to_dataset(store.load(), dict(frames.attrs), units)
    elapsed = time.perf_counter() - t0
    paths = save_results(result, out, plot=plot)
    table = to_dataframe(result)
    failed = Counter(table.loc[table["status"] != "ok", "status"])
    summary = JobSummary(
        len(table), int((table["status"] == "ok").sum()), dict(failed), elapsed, computed, paths
    )
    return result, summary

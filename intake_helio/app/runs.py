"""One run's frames computed part by part into its :class:`~intake_helio.app.stores.ZarrStore`:
the step the irradiance and reduce jobs share (which parts are missing, computing them with
the engine on the chosen cluster, loading the whole result)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..compute.assembly import frame_times
from ..compute.engine import frame_funcs, run_map
from .stores import ZarrStore

__all__ = ["PartRun", "compute_on"]


def compute_on(cluster_kind: str | None, cluster_kwargs: Mapping[str, Any] | None):
    """A context with the cluster to compute on (None: the active dask scheduler).

    ``cluster_kwargs={"scheduler_address": ...}``: a client of a scheduler the user runs,
    the default inside the block and closed after it (the scheduler keeps running).
    """
    address = (cluster_kwargs or {}).get("scheduler_address")
    if address:
        import distributed

        return distributed.Client(address, set_as_default=True)
    if cluster_kind is None:
        return contextlib.nullcontext()
    from ..compute.clusters import cluster

    return cluster(cluster_kind, **dict(cluster_kwargs or {}))


class PartRun:
    """One run's frames (one dataset's, or several channels'), saved part by part in a
    :class:`ZarrStore` (channels' parts numbered channel by channel)."""

    def __init__(
        self,
        arrays: Mapping[str, xr.DataArray],
        identity,
        times,
        part_size,
        normalize,
        desc,
        corrections: Mapping[str, Any] | None = None,
    ):
        self.arrays = dict(arrays)
        #: Per array, the degradation factors its frames are divided by (None: none).
        self.corrections = dict(corrections or {})
        self.desc = desc  # the progress bar's label
        self.identity = identity
        self.times = times
        self.part_size = part_size
        self.normalize = normalize
        self.several = len(self.arrays) > 1
        frames = list(self.arrays.values())
        if self.several:
            self.datakeys = np.stack([f["datakey"].to_numpy() for f in frames])
            self.own = np.stack([frame_times(f) for f in frames])
        else:
            self.datakeys = frames[0]["datakey"].to_numpy()
            self.own = frame_times(frames[0])

    def release(self) -> None:
        """Drop the lazy frames and their datakeys (after :meth:`fill`): a mission's are
        ~0.5 GB, not needed to save the result that was loaded from the store."""
        self.arrays.clear()
        self.corrections.clear()
        self.datakeys = self.own = None

    def store(self, path: Path, resume: bool, attrs, var_attrs) -> ZarrStore:
        """The run's store at ``path`` (an earlier run's, with ``resume`` and its identity)."""
        return ZarrStore(
            path,
            self.identity,
            resume,
            times=self.times,
            datakeys=self.datakeys,
            part_size=self.part_size,
            attrs=attrs,
            var_attrs=var_attrs,
            channels=list(self.arrays) if self.several else None,
            frame_times=self.own,
        )

    def fill(
        self,
        store: ZarrStore,
        funcs,
        cluster_kind,
        cluster_kwargs,
        progress,
        finish: Callable[[xr.Dataset], xr.Dataset] | None = None,
        cluster_for_finish: bool = False,
    ) -> tuple[xr.Dataset, int]:
        """Compute and save the parts ``store`` lacks with ``map_frames(frames, funcs)``,
        mark it complete and load it: ``(finish(result), frames computed)``.

        ``finish`` runs on the cluster too when ``cluster_for_finish`` (e.g. header reads).
        """
        done = store.done()
        specs = frame_funcs(funcs)
        computed = 0

        def saver(k: int):
            def on_part(p: int, part: xr.Dataset) -> None:
                nonlocal computed
                store.save(store.part_number(k, p), part)
                computed += part.sizes["time"]

            return on_part

        missing = len(done) < store.parts
        on = missing or cluster_for_finish
        with compute_on(cluster_kind, cluster_kwargs) if on else contextlib.nullcontext():
            for k, (name, frames) in enumerate(self.arrays.items() if missing else ()):
                skip = {
                    p for p in range(store.parts_per_channel) if store.part_number(k, p) in done
                }
                if len(skip) == store.parts_per_channel:
                    continue
                # map_frames of one channel, with the progress bar's label of the job
                run_map(
                    frames,
                    specs,
                    self.normalize,
                    progress,
                    self.part_size,
                    saver(k),
                    skip,
                    desc=self.desc,
                    correction=self.corrections.get(name),
                    keep=False,  # the parts are in the store: none kept in memory
                )
            store.mark_complete()
            result = store.load()
            result.attrs.pop("complete", None)
            if finish is not None:
                result = finish(result)
        return result, computed

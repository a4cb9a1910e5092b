"""The engine's batches: which items one task reads, and how the task runs them.

On the client, :func:`batch_tasks` cuts a part of a resolved array into tasks of
consecutive items of one spec (up to :func:`most_per_task` of them) and :func:`single_task`
makes the task of one item again (after its batch's worker died). Each task is
``map_batch(reader, keys)``: the reader (:func:`~intake_helio.frames.reader.item_reader`)
says how to read an item; the batch decides what is in flight: whole files fetched ahead
while one is computed, or several ranged reads at once. No format is known here.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any

import dask
import numpy as np

from ..base.settings import Settings
from ..frames.reader import ItemReader, ItemResult, item_reader
from ..frames.spec import FrameSpec, Resolved
from ..io.transport import FileSystems

__all__ = ["batch_tasks", "map_batch", "most_per_task", "single_task"]

#: ``(output name, built-in statistic name or callable)`` of each output.
Funcs = Sequence[tuple[str, str | Callable]]


def _task(
    plan: Resolved, s: int, keys: list[str], funcs: Funcs, units_of, name: str, correction=None
):
    """The delayed ``map_batch`` of ``keys`` (all of spec ``s``) under dask key ``name``."""
    spec = plan.specs[s]
    window = (plan.rows, plan.cols, plan.pick_rows, plan.pick_cols)
    return dask.delayed(map_batch, pure=True)(
        # the spec of these keys only: a year's list is ~11 MB per task
        item_reader(spec.subset(keys), window, funcs, units_of(spec), correction),
        keys,
        dask_key_name=name,
    )


def batch_tasks(
    plan: Resolved,
    idx: range,
    funcs: Funcs,
    units_of: Callable[[FrameSpec], str],
    sizes: Sequence[int],
    token: str,
    correction: Any = None,
) -> tuple[list, list[tuple[int, int]]]:
    """Delayed batch tasks for the items ``idx`` of a resolved array, and their spans.

    Parameters
    ----------
    plan : Resolved
        The array's items and specs.
    idx : range
        The part's items.
    funcs : sequence of (str, str or callable)
        The outputs.
    units_of : callable
        The units each spec's items are computed in.
    sizes : sequence of int
        Items per batch (:func:`~intake_helio.compute.scheduling.batch_sizes`); a batch
        is split where the spec changes (a concat of arrays).
    token : str
        Makes the tasks' dask keys.
    correction : callable, optional
        A factor each item is also divided by (:func:`~intake_helio.frames.reader.item_reader`).

    Returns
    -------
    tuple of (list, list of (int, int))
        The tasks and, for each, the items ``[start, stop)`` it reads.
    """
    tasks, spans = [], []
    a = idx.start
    for size in sizes:
        b = a + size
        start = a
        while start < b:
            s = plan.frames[start][0]
            stop = start
            while stop < b and plan.frames[stop][0] == s:
                stop += 1
            keys = [k for _, k in plan.frames[start:stop]]
            name = f"helio-map-{token}-{start}-{stop}"
            tasks.append(_task(plan, s, keys, funcs, units_of, name, correction))
            spans.append((start, stop))
            start = stop
        a = b
    return tasks, spans


def single_task(
    plan: Resolved,
    i: int,
    funcs: Funcs,
    units_of: Callable[[FrameSpec], str],
    token: str,
    correction: Any = None,
):
    """A task for item ``i`` alone (after its batch failed as a whole)."""
    s, key = plan.frames[i]
    return _task(plan, s, [key], funcs, units_of, f"helio-map-{token}-one-{i}", correction)


def most_per_task(plan: Resolved | None, settings: Settings, part_size: int) -> int:
    """The most items one task reads: ``batch-size``, more for small files.

    With the index's file sizes known, a task takes up to ``batch-bytes`` of files (the
    median size; at most a part): small files then cost one task per many items, not per
    ``batch-size`` items, and dask's per-task overhead stops bounding the run. ``plan``
    None (the generic path): ``batch-size``.
    """
    if plan is None or settings.batch_bytes <= 0:
        return settings.batch_size
    sizes = [s for spec in plan.specs for s in (spec.filesizes or ()) if s > 0]
    if not sizes:
        return settings.batch_size
    typical = float(np.median(sizes[:: max(1, len(sizes) // 1000)]))
    by_bytes = int(settings.batch_bytes // max(typical, 1.0))
    return max(settings.batch_size, min(part_size, by_bytes))


def map_batch(reader: ItemReader, keys: Sequence[str]) -> list[ItemResult]:
    """Read consecutive items of one spec and apply the task's functions to each.

    With whole-file reads the next ``intake_helio.read-ahead`` items' files are fetched
    (on the filesystem's I/O thread; large files as concurrent ranged requests, see
    ``intake_helio.read-part-bytes``) while one is computed, so the core does not wait for
    the network (small files: up to ``read-ahead-bytes`` of them, at most 32). A task
    then holds at most ``1 + read-ahead`` large files in memory. Cutouts
    (ranged reads) of up to ``intake_helio.ranged-concurrency`` items run at once.

    Parameters
    ----------
    reader : ItemReader
        The task's reader (spec, window, functions and units).
    keys : sequence of str
        The task's items, in order.

    Returns
    -------
    list of (dict, str)
        Per item: the values by output name (empty when the item has none) and its
        status (``"ok"`` or the reason).
    """
    fs_of = FileSystems(reader.storage_options)  # one filesystem look-up per origin
    whole = reader.whole
    if not whole and len(keys) > 1 and reader.concurrency > 1:
        # cutouts: a few small ranged requests per item, one after another; several items
        # at once keep the core busy while each waits for its first bytes
        workers = min(len(keys), reader.concurrency)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda k: reader.item(k, None, fs_of), keys))
    depth = reader.read_ahead(keys) if whole and len(keys) > 1 else 0
    ahead: dict[int, Any] = {}
    started = 0  # items whose read has been started (ahead) so far
    out = []
    try:
        for i, key in enumerate(keys):
            if depth:
                while started < min(i + 1 + depth, len(keys)):
                    ahead[started] = reader.start(keys[started], fs_of)
                    started += 1
            out.append(reader.item(key, ahead.pop(i, None), fs_of))
    finally:
        for fut in ahead.values():
            if fut is not None:
                fut.cancel()
    return out

"""The engine's worker-side batch: a task's items, read ahead, each to values or a reason.

One task of :func:`~intake_helio.compute.engine.iter_map_parts` is ``map_batch(reader,
keys)``: the reader (:func:`~intake_helio.frames.reader.item_reader`) says how to read an
item; the batch decides what is in flight: whole files fetched ahead while one is computed,
or several ranged reads at once. No format is known here.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import Any

from ..frames.reader import ItemReader, ItemResult
from ..io.transport import FileSystems

__all__ = ["map_batch"]


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

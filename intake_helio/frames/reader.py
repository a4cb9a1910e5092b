"""What the frame engine asks of a reader: the one seam between ``compute`` and a format.

The engine (:mod:`intake_helio.compute`) knows items (frames), not files: it batches the
items of a resolved array (:func:`~intake_helio.frames.spec.resolve`), ships each batch as
one task, reads ahead inside the task, keeps the work in parts, shows progress and resumes
from saved parts. Everything it takes from the reading side is here; it imports no format
(an import-linter contract: ``intake_helio.compute`` never imports ``intake_helio.fits``).

The contract a reader implements (the FITS reader: :class:`~intake_helio.frames.tasks.MapTask`;
a CDF or netCDF reader would add its own spec and task beside it):

* :func:`item_reader` gives, for a spec, the items' window, the functions and the units, an
  :class:`ItemReader`: a small picklable value, one per task, that travels to a worker
  with the task's keys.
* There :func:`~intake_helio.compute.batches.map_batch` asks it, for each item in order,
  :meth:`ItemReader.item`: the item's values by output name or its reason
  (:data:`ItemResult`). An item that cannot be read, or whose function raises, gets a
  reason; ``item`` never raises. With :attr:`ItemReader.whole` items, the batch first
  calls :meth:`ItemReader.start` on the next :meth:`ItemReader.read_ahead` items (fetches
  that overlap the computation; None: nothing to fetch) and hands each its handle; other
  items (ranged reads) run :attr:`ItemReader.concurrency` at a time.
* :func:`computed_item` is the generic path's: the functions on an item dask computed
  (an array changed by arithmetic), given the item's :func:`header_source`.
* The statistics the engine accepts by name are :data:`BUILTINS` and the percentiles
  ``p<q>`` (:func:`is_builtin`, :func:`percentile_of`, :func:`long_name`). Those in
  :data:`GEOMETRY_STATISTICS` need the reader's geometry of each item (the solar disk
  from a FITS header); the reader computes them, or gives the item the reason it cannot.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .science import BUILTINS, ItemResult, is_builtin, long_name, percentile_of
from .science import DISK_STATISTICS as GEOMETRY_STATISTICS
from .spec import FrameSpec
from .tasks import MapTask, header_source
from .tasks import generic_frame as computed_item

__all__ = [
    "BUILTINS",
    "GEOMETRY_STATISTICS",
    "ItemReader",
    "ItemResult",
    "computed_item",
    "header_source",
    "is_builtin",
    "item_reader",
    "long_name",
    "percentile_of",
]


class ItemReader(Protocol):
    """One task's reader of items, as the engine's batch uses it (picklable, frozen)."""

    @property
    def whole(self) -> bool:
        """Each item is one whole file fetched in one request: read ahead applies."""
        ...

    @property
    def storage_options(self) -> Any:
        """Storage options of the items' files (one filesystem look-up per origin)."""
        ...

    @property
    def concurrency(self) -> int:
        """Items (ranged reads) read at once when they are not :attr:`whole`."""
        ...

    def read_ahead(self, keys: Sequence[str]) -> int:
        """How many items of ``keys`` to fetch ahead of the one computed (0: none)."""
        ...

    def start(self, key: str, fs_of: Callable) -> concurrent.futures.Future | None:
        """Start fetching item ``key`` (None: nothing to fetch); never raises."""
        ...

    def item(self, key: str, prefetched: Any, fs_of: Callable) -> ItemResult:
        """Item ``key``'s values by output name, or its reason; never raises."""
        ...


def item_reader(
    spec: FrameSpec,
    window: tuple[slice, slice, Any, Any],
    funcs: Sequence[tuple[str, str | Callable]],
    units: str,
    correction: Any = None,
) -> ItemReader:
    """The reader of the items of ``spec`` (for one task: the spec of its keys only).

    Parameters
    ----------
    spec : FrameSpec
        What to read (files, options, settings).
    window : tuple
        ``(rows, cols, pick_rows, pick_cols)`` of each item, as the resolved array says.
    funcs : sequence of (str, str or callable)
        The outputs: name and built-in statistic or function ``f(data, header)``.
    units : str
        The units computed on (``"DN/s"``: each frame divided by its ``EXPTIME``).
    correction : callable, optional
        ``correction(header, datakey)``: a factor each item is also divided by (e.g.
        :class:`~intake_helio.calibrate.Degradation`); None: none.

    Returns
    -------
    ItemReader
        The FITS reader, :class:`~intake_helio.frames.tasks.MapTask` (the only one yet;
        a second reader's spec would choose its own here).
    """
    return MapTask(spec, window, tuple(funcs), units, correction)

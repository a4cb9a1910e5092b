"""Graph layers of a lazy frames array that make their tasks when asked.

A year of one channel is 130,000 frames and the mission 1.5 million: a layer holding a
Python task per frame (dask's ``MaterializedLayer``) costs the client ~0.5 kB and ~3 us a
frame before anything is computed. These layers hold what every task is made of (the
:class:`~intake_helio.frames.spec.FrameSpec`, the bands' windows, the
:class:`~intake_helio.frames.spec.ReadPlan`) and make the task of a key when dask asks
for it, after culling to the chunks a computation needs. Their tasks are ``dask._task_spec``
nodes (``Task``, ``TaskRef``), so that :meth:`dask.highlevelgraph.HighLevelGraph.cull` never
lists the keys of every layer.

* :class:`FrameLayer`: the read of frame ``i``, band ``j`` (key ``(name, i, j, *suffix)``);
* :class:`PickLayer`: item ``index`` of each read's result (``on_error="nan"``: the block or
  its reason);
* :class:`StatusLayer`: each frame's reason over its bands (key ``(name, i)``);
* :class:`HeaderLayer` and :class:`HeaderValueLayer`: the header cards of ``header_keys``
  (one header read per frame, one lazy coordinate per card).

A layer culled to some keys keeps those keys only (:attr:`GridLayer.keep`); it pickles as
its parts.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from dask._task_spec import Task, TaskRef
from dask.highlevelgraph import Layer

from .spec import FrameSpec, ReadPlan, Window
from .tasks import no_header_row, read_block, read_header_row, refused_block

__all__ = [
    "FrameLayer",
    "GridLayer",
    "HeaderLayer",
    "HeaderValueLayer",
    "PickLayer",
    "StatusLayer",
    "band_status",
]

Cell = tuple[int, int]  # (frame, band); band 0 for layers without bands


class GridLayer(Layer):
    """Keys ``(name, i, j, *suffix)`` for frames ``i < n`` and bands ``j < bands`` (or
    ``(name, i)`` when ``bands`` is None), each task made by :meth:`task` when asked.

    Parameters
    ----------
    name : str
        The keys' name.
    n : int
        Frames.
    bands : int or None
        Bands per frame (None: keys have no band).
    suffix : tuple
        Trailing key items (``(0,)`` for the x chunk of a 3-D array's block).
    keep : sequence of (int, int), optional
        The cells kept by a cull (None: all), in order.
    *parts
        What the subclass makes its tasks of (:meth:`setup`).
    """

    #: Whether keys have a band (``(name, i, j, *suffix)``) or not (``(name, i)``).
    banded = True

    def __init__(
        self,
        name: str,
        n: int,
        bands: int | None = None,
        suffix: tuple = (),
        keep: Sequence[Cell] | None = None,
        *parts: Any,
    ):
        super().__init__()
        self.name = name
        self.n = int(n)
        self.bands = bands if self.banded else None
        self.suffix = tuple(suffix) if self.banded else ()
        self.keep = None if keep is None else tuple(keep)
        self._kept = None if keep is None else frozenset(self.keep)
        self.parts = parts
        self.setup(*parts)

    # ---------------------------------------------------------------- what subclasses give
    def setup(self, *parts: Any) -> None:
        """Keep what the tasks are made of (the constructor's ``parts``)."""

    def task(self, key: Any, i: int, j: int) -> Task:
        """The task of frame ``i``, band ``j`` (``key`` is its key)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- keys
    def key(self, i: int, j: int) -> tuple:
        return (self.name, i) if self.bands is None else (self.name, i, j, *self.suffix)

    def cell(self, key: Any) -> Cell | None:
        """``(i, j)`` of ``key`` when it is one of this layer's keys, else None."""
        if not isinstance(key, tuple) or not key or key[0] != self.name:
            return None
        if self.bands is None:
            if len(key) != 2:
                return None
            i, j = key[1], 0
        else:
            if len(key) != 3 + len(self.suffix) or tuple(key[3:]) != self.suffix:
                return None
            i, j = key[1], key[2]
        if not isinstance(i, int | np.integer) or not isinstance(j, int | np.integer):
            return None
        i, j = int(i), int(j)
        if not (0 <= i < self.n and 0 <= j < (self.bands or 1)):
            return None
        if self._kept is not None and (i, j) not in self._kept:
            return None
        return i, j

    def cells(self) -> Iterator[Cell]:
        if self.keep is not None:
            return iter(self.keep)
        nb = self.bands or 1
        return ((i, j) for i in range(self.n) for j in range(nb))

    # ---------------------------------------------------------------- Mapping
    def __getitem__(self, key: Any) -> Task:
        cell = self.cell(key)
        if cell is None:
            raise KeyError(key)
        return self.task(self.key(*cell), *cell)

    def __contains__(self, key: object) -> bool:
        return self.cell(key) is not None

    def __iter__(self) -> Iterator[tuple]:
        return (self.key(i, j) for i, j in self.cells())

    def __len__(self) -> int:
        return len(self.keep) if self.keep is not None else self.n * (self.bands or 1)

    # ---------------------------------------------------------------- Layer
    def is_materialized(self) -> bool:
        return False

    @property
    def has_legacy_tasks(self) -> bool:
        return False  # every task is a dask._task_spec Task

    def get_output_keys(self) -> set:
        return set(self)

    def get_dependencies(self, key: Any, all_hlg_keys: Any) -> set:
        return set(self[key].dependencies)

    def cull(self, keys: set, all_hlg_keys: Any) -> tuple[GridLayer, dict]:
        """This layer for the cells of ``keys`` only, and their dependencies."""
        wanted = sorted(c for c in map(self.cell, keys) if c is not None)
        if len(wanted) == len(self):
            culled = self
        else:
            culled = type(self)(self.name, self.n, self.bands, self.suffix, wanted, *self.parts)
        deps = {culled.key(i, j): set(culled.task(None, i, j).dependencies) for i, j in wanted}
        return culled, deps

    def __reduce__(self):
        args = (self.name, self.n, self.bands, self.suffix, self.keep, *self.parts)
        return (type(self), args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}<{self.name}: {len(self)} tasks, made when asked>"


class FrameLayer(GridLayer):
    """The read tasks of one lazy frames array: frame ``i``'s band ``j`` (its window) read
    with the array's :class:`ReadPlan`; carries the array's :class:`FrameSpec`.
    ``parts``: ``(spec, windows, plan)``."""

    #: The layer whose spec :func:`~intake_helio.frames.spec.frame_specs` finds.
    reads_frames = True

    def setup(self, spec: FrameSpec, windows: Sequence[Window], plan: ReadPlan) -> None:
        if len(spec.datakeys) != self.n:
            raise ValueError(f"FrameLayer of {self.n} frames got a spec of {len(spec.datakeys)}")
        self.spec = spec
        self.windows = tuple(windows)
        self.plan = plan

    def task(self, key: Any, i: int, j: int) -> Task:
        datakey = self.spec.datakeys[i]
        why = self.spec.refusal(datakey)
        if why is not None:
            return Task(key, refused_block, datakey, why, self.windows[j], self.plan)
        size = self.spec.filesizes[i] if self.spec.filesizes is not None else None
        return Task(key, read_block, datakey, size or None, self.windows[j], self.plan)


class PickLayer(GridLayer):
    """Item ``index`` of each result of the layer ``source`` (same frames and bands).
    ``parts``: ``(source, index)``."""

    def setup(self, source: str, index: int) -> None:
        self.source = source
        self.index = index

    def task(self, key: Any, i: int, j: int) -> Task:
        return Task(key, operator.getitem, TaskRef((self.source, i, j)), self.index)


def band_status(*reasons: str) -> np.ndarray:
    """A frame's reason over its bands: ``"ok"``, or the first band's failure."""
    out = np.empty(1, dtype=object)
    out[0] = next((r for r in reasons if r != "ok"), "ok")
    return out


class StatusLayer(GridLayer):
    """Each frame's reason (key ``(name, i)``) over the ``source_bands`` bands of the read
    layer ``source`` (item 1 of each read's result). ``parts``: ``(source, source_bands)``."""

    banded = False

    def setup(self, source: str, source_bands: int) -> None:
        self.source = source
        self.source_bands = source_bands

    def task(self, key: Any, i: int, j: int) -> Task:
        picks = [
            Task(None, operator.getitem, TaskRef((self.source, i, b)), 1)
            for b in range(self.source_bands)
        ]
        return Task(key, band_status, *picks)


class HeaderLayer(GridLayer):
    """Each frame's header ``cards`` (key ``(name, i)``): one header read per frame.
    ``parts``: ``(spec, cards)``."""

    banded = False

    def setup(self, spec: FrameSpec, cards: tuple[str, ...]) -> None:
        self.spec = spec
        self.cards = tuple(cards)  # not "keys": a Mapping's keys() is dask's
        self._plan = spec.plan()

    def task(self, key: Any, i: int, j: int) -> Task:
        datakey = self.spec.datakeys[i]
        if self.spec.refusal(datakey) is not None:
            return Task(key, no_header_row, len(self.cards))
        size = self.spec.filesizes[i] if self.spec.filesizes is not None else None
        return Task(key, read_header_row, datakey, size or None, self._plan, self.cards)


class HeaderValueLayer(GridLayer):
    """Card ``index`` of each frame's header row (layer ``source``), as ``convert`` makes
    it. ``parts``: ``(source, index, convert)``."""

    banded = False

    def setup(self, source: str, index: int, convert: Any) -> None:
        self.source = source
        self.index = index
        self.convert = convert

    def task(self, key: Any, i: int, j: int) -> Task:
        card = Task(None, operator.getitem, TaskRef((self.source, i)), self.index)
        return Task(key, self.convert, card)

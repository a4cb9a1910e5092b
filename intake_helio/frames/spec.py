"""What a task needs to read frames, carried by the lazy array's own graph.

:func:`~intake_helio.frames.build.open_frames` puts its read tasks in a
:class:`~intake_helio.frames.layers.FrameLayer`: a dask graph layer that also holds the
:class:`FrameSpec` (files, storage options, HDU, pixel window, units, settings). Layers
travel with every dask collection built from the array: ``sel``/``isel``/slices/steps/
boolean masks, ``xr.concat``, pickling to another process. :func:`resolve` finds, for any
such array, which file and which pixel window each of its frames is, so that the frame
engine can read each frame once and compute inside the read task.
No process-local registry is involved.

An array changed by anything other than selection (arithmetic, ``where``, ``astype``, ...)
is not resolved: the engine then computes its chunks as dask would (the generic path).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ..base.errors import ArgumentError
from ..base.reasons import REFUSED_COLUMN
from ..base.settings import Settings
from ..base.sizes import known_size, known_sizes

__all__ = [
    "REFUSED",
    "FrameSpec",
    "ReadPlan",
    "Resolved",
    "Window",
    "frame_specs",
    "resolve",
    "specs_by_key",
]

REFUSED = REFUSED_COLUMN  # the file list's column of rows never read (base.reasons)

#: Layers that only select, reorder or regroup existing chunks (dask's own names).
_SELECTION_LAYERS = ("getitem", "concatenate", "rechunk", "rechunk-merge", "rechunk-split")


class _Frames(tuple):
    """A tuple of per-frame values (datakeys, filesizes) that dask passes through as is.

    dask walks plain tuples given to ``dask.delayed`` (and dataclass fields) item by item,
    looking for collections: for a year of frames that is ~0.5 s per task made with the
    spec. A subclass is left alone; it equals, hashes and pickles as its items' tuple.
    """

    __slots__ = ()


@dataclass(frozen=True)
class Window:
    """The pixel window of a read: rows and columns of the frame (one value per row band).

    A read task carries its frame as plain values (the datakey and the index's filesize:
    a year's graph of 130,000 tasks builds as fast as before), the band's ``Window`` and
    the array's :class:`ReadPlan`.

    Attributes
    ----------
    rows, cols : slice
        The pixel window to read.
    """

    rows: slice
    cols: slice

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of the window."""
        return (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)


@dataclass(frozen=True)
class ReadPlan:
    """How every frame of one array is read: one value per array, shared by its tasks.

    Attributes
    ----------
    storage_options : mapping
        fsspec options for the files (not shown in reprs).
    hdu : int, str or AutoHDU
        The image HDU.
    units : str
        ``"DN"`` or ``"DN/s"``.
    settings : Settings
        The ``intake_helio.*`` settings in force when the array was built.
    on_error : {"raise", "nan"}
        ``"nan"``: a frame that cannot be read is NaN with its reason.
    whole : bool
        Each window is the whole frame: its file is fetched in one request.
    good_only : bool
        A frame whose header ``QUALITY`` is not 0 fails (``quality="good"``).
    """

    storage_options: Mapping[str, Any] = field(repr=False)
    hdu: Any
    units: str
    settings: Settings = field(repr=False)
    on_error: str = "raise"
    whole: bool = False
    good_only: bool = False


@dataclass(frozen=True)
class FrameSpec:
    """How to read the frames of one array made by ``open_frames``.

    Attributes
    ----------
    datakeys : tuple of str
        The frames' files, in the array's time order.
    storage_options : mapping
        fsspec options for the files (not shown in reprs).
    hdu : int or str
        The image HDU (resolved from ``"auto"`` by the probe).
    rows, cols : slice
        The array's pixel window in each frame.
    units : str
        ``"DN"`` or ``"DN/s"``.
    shape : tuple of int
        The full frame's ``(ny, nx)`` as probed.
    settings : Settings
        The ``intake_helio.*`` settings in force when the array was built.
    filesizes : tuple of int, optional
        The index's size of each file (aligned with ``datakeys``; 0: unknown): no read of
        a file goes past it plus ``intake_helio.filesize-slack``. None: all unknown.
    quality : {None, "good"}
        ``"good"``: a frame whose header ``QUALITY`` is not 0 gets the reason
        ``"quality flag 0x%08x"`` before any pixel is decoded. None: every frame is read.
    refused : mapping, optional
        ``{datakey: reason}`` of frames never to be read (the URL policy refused them):
        they get that reason without any request (:meth:`refusal`).
    """

    datakeys: tuple[str, ...]
    storage_options: Mapping[str, Any] = field(repr=False)
    hdu: int | str
    rows: slice
    cols: slice
    units: str
    shape: tuple[int, int]
    settings: Settings = field(repr=False)
    filesizes: tuple[int, ...] | None = field(default=None, repr=False)
    quality: str | None = None
    refused: Mapping[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.refused:
            object.__setattr__(self, "refused", None)
        object.__setattr__(self, "datakeys", _Frames(self.datakeys))
        if self.filesizes is not None:
            if len(self.filesizes) != len(self.datakeys):
                raise ArgumentError(
                    f"FrameSpec got {len(self.filesizes)} filesizes for {len(self.datakeys)} "
                    "datakeys; expected one per datakey (or filesizes=None)"
                )
            # one vectorised pass (a Python call per frame costs ~1 s for the mission)
            object.__setattr__(self, "filesizes", _Frames(known_sizes(self.filesizes).tolist()))

    def filesize(self, key: str) -> int | None:
        """The index's size of file ``key`` (None when unknown or not in the spec)."""
        if self.filesizes is None:
            return None
        sizes = self.__dict__.get("_sizes")
        if sizes is None:  # built once per process (not pickled: see __getstate__)
            sizes = dict(zip(self.datakeys, self.filesizes, strict=True))
            object.__setattr__(self, "_sizes", sizes)
        return sizes.get(key) or None

    def plan(self, units: str | None = None, on_error: str = "nan") -> ReadPlan:
        """The :class:`ReadPlan` of this spec's frames (in ``units``, default its own)."""
        return ReadPlan(
            self.storage_options,
            self.hdu,
            self.units if units is None else units,
            self.settings,
            on_error,
            self.whole,
            self.good_only,
        )

    def refusal(self, key: str) -> str | None:
        """Why frame ``key`` must not be read (``"URL not allowed: ..."``), or None."""
        return self.refused.get(key) if self.refused else None

    def subset(self, keys: Sequence[str]) -> FrameSpec:
        """This spec for ``keys`` only (a task's frames): a task never carries the year's list.

        Parameters
        ----------
        keys : sequence of str
            Datakeys of this spec.

        Returns
        -------
        FrameSpec
            The same HDU, window, units, shape, settings and options, with ``keys`` and
            their filesizes.
        """
        sizes = None if self.filesizes is None else tuple(self.filesize(k) or 0 for k in keys)
        refused = {k: self.refused[k] for k in keys if k in self.refused} if self.refused else None
        return dataclasses.replace(self, datakeys=tuple(keys), filesizes=sizes, refused=refused)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_sizes", None)
        return state

    @property
    def good_only(self) -> bool:
        """Whether frames flagged by their header ``QUALITY`` are refused (``quality="good"``)."""
        return self.quality == "good"

    @property
    def window_shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of the array's window."""
        return (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)

    @property
    def whole(self) -> bool:
        """Whether the window is the whole frame (each file is then fetched in one request)."""
        return (self.rows.start, self.cols.start) == (0, 0) and (
            self.rows.stop,
            self.cols.stop,
        ) == tuple(self.shape)


def _size(value: Any) -> int:
    """A filesize as an int, 0 when unknown (:func:`~intake_helio.base.sizes.known_size`)."""
    return known_size(value) or 0


def frame_specs(data: Any) -> list[FrameSpec]:
    """The specs of every read layer (:class:`~intake_helio.frames.layers.FrameLayer`) in
    a dask collection's graph (none for others)."""
    graph = getattr(data, "dask", None)
    layers = getattr(graph, "layers", None)
    if not layers:
        return []
    return [layer.spec for layer in layers.values() if _is_read_layer(layer)]


def specs_by_key(data: Any) -> dict[str, FrameSpec]:
    """``{datakey: spec}`` of every frame read by the layers of ``data`` (empty for arrays
    not made of frames). One pass over the files: make it once per array, not per part."""
    return {k: s for s in frame_specs(data) for k in s.datakeys}


def _is_read_layer(layer: Any) -> bool:
    """Whether ``layer`` is the read layer of a frames array (it carries the FrameSpec)."""
    return getattr(layer, "reads_frames", False) and isinstance(layer.spec, FrameSpec)


def _only_selections(data: Any) -> bool:
    for name, layer in data.dask.layers.items():
        if _is_read_layer(layer) or name.startswith("helio-"):
            continue
        if name.rsplit("-", 1)[0] not in _SELECTION_LAYERS:
            return False
    return True


def _window(coord: np.ndarray, full: slice) -> tuple[slice, np.ndarray | None] | None:
    """The pixel window covering ``coord`` (pixel indices), and a pick inside it if needed."""
    if coord.size == 0 or not np.issubdtype(coord.dtype, np.integer):
        return None
    lo, hi = int(coord.min()), int(coord.max()) + 1
    if lo < full.start or hi > full.stop:
        return None
    if coord.size == hi - lo and np.array_equal(coord, np.arange(lo, hi)):
        return slice(lo, hi), None
    return slice(lo, hi), (coord - lo).astype(np.intp)


@dataclass(frozen=True)
class Resolved:
    """Which file, spec and window each frame of an (unmodified) array is.

    Attributes
    ----------
    specs : tuple of FrameSpec
        The distinct specs the frames come from.
    frames : tuple of (int, str)
        Per frame of the array, in its order: the index into ``specs`` and the datakey.
    rows, cols : slice
        The window read from every frame (pixel indices of the full frame).
    pick_rows, pick_cols : numpy.ndarray or None
        Indices inside the window when the array's ``y``/``x`` are not contiguous.
    """

    specs: tuple[FrameSpec, ...]
    frames: tuple[tuple[int, str], ...]
    rows: slice
    cols: slice
    pick_rows: np.ndarray | None = None
    pick_cols: np.ndarray | None = None


def resolve(frames: xr.DataArray) -> Resolved | None:
    """How to read each frame of ``frames`` directly, or None for the generic path.

    Parameters
    ----------
    frames : xarray.DataArray
        ``(time, y, x)`` frames from :func:`~intake_helio.open_frames`, possibly selected
        along any dimension, concatenated along ``time`` or unpickled elsewhere.

    Returns
    -------
    Resolved or None
        None when the array is not made of our frames, was changed by anything other than
        selection, or its frames cannot be told apart unambiguously.
    """
    data = frames.data
    if frames.dims != ("time", "y", "x") or not hasattr(data, "dask"):
        return None
    if "datakey" not in frames.coords or "y" not in frames.coords or "x" not in frames.coords:
        return None
    specs = frame_specs(data)
    if not specs or not _only_selections(data):
        return None
    distinct: list[FrameSpec] = []
    by_key: dict[str, int] = {}
    for spec in specs:
        if spec in distinct:
            continue
        distinct.append(spec)
        s = len(distinct) - 1
        for key in spec.datakeys:
            if by_key.setdefault(key, s) != s:
                return None  # the same file in two differently read arrays: ambiguous
    first = distinct[0]
    if any((s.rows, s.cols) != (first.rows, first.cols) for s in distinct[1:]):
        return None
    rows = _window(np.asarray(frames["y"].values), first.rows)
    cols = _window(np.asarray(frames["x"].values), first.cols)
    if rows is None or cols is None:
        return None
    items = []
    for key in np.asarray(frames["datakey"].values, dtype=object):
        s = by_key.get(str(key))
        if s is None:
            return None
        items.append((s, str(key)))
    return Resolved(tuple(distinct), tuple(items), rows[0], cols[0], rows[1], cols[1])
